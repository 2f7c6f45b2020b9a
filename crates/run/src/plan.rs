//! The plan: every setting of a run, decided before anything runs, from the
//! command line's flags, the config file and the environment (in that order
//! of precedence).

use crate::Suite;
use crate::config::{ApplyMode, Config};
use std::path::{Path, PathBuf};
use std::time::Duration;
use vmbench_host::{CpuList, SysRoot};
use vmbench_proto::vmexit::Row;
use vmbench_vm::{Accel, AccelChoice, GuestKind, GuestSettings};

/// What the command line gave (`vmbench run` flags).
#[derive(Debug, Clone, Default)]
pub struct RunFlags {
    /// Suites to run, in order; empty: the config's, else both.
    pub suites: Vec<Suite>,
    /// The accelerator (`auto`, `kvm`, `tcg`).
    pub accel: Option<AccelChoice>,
    /// Benchmark CPUs: the isolation audit and vCPU pinning.
    pub cpus: Option<CpuList>,
    /// Fewer samples: every measurement, in seconds instead of minutes.
    pub quick: bool,
    /// Full sample counts and repeats even where every guest runs under TCG.
    pub full: bool,
    /// Leave the host's knobs alone (audit only), whatever the config says.
    pub no_isolation: bool,
    /// Repeats, each in fresh guest boots.
    pub repeat: Option<u32>,
    /// Output directory (must be new or empty).
    pub out: Option<PathBuf>,
    /// Key to sign the report with.
    pub sign: Option<PathBuf>,
    /// The command as typed, for the report's "reproduce with" line.
    pub command: String,
}

/// The `VMBENCH_*` variables `nix run .#bench` sets, so that nothing is
/// looked up in PATH. A config file's value wins over them.
#[derive(Debug, Clone, Default)]
pub struct Environment {
    /// `VMBENCH_GUEST_IMAGE`: the guest image directory.
    pub guest_image: Option<PathBuf>,
    /// `VMBENCH_QEMU`: the QEMU binary.
    pub qemu: Option<PathBuf>,
    /// `VMBENCH_MICRO_ELF`: the micro-guest ELF.
    pub micro_elf: Option<PathBuf>,
    /// What `--accel auto` picks here for a Linux guest and for the
    /// micro-guest (None: TCG for both, as in a test).
    pub auto_kvm: AutoKvm,
}

/// Whether `--accel auto` takes KVM on this host, per guest kind (a
/// kvm_pvm host runs the micro-guest under KVM but a Linux guest under TCG).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AutoKvm {
    /// KVM can run a Linux guest here.
    pub linux: bool,
    /// KVM can run the OS-free micro-guest here.
    pub micro: bool,
}

impl Environment {
    /// Reads this process's environment (empty values count as unset).
    pub fn from_process() -> Environment {
        let path = |name: &str| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        Environment {
            guest_image: path("VMBENCH_GUEST_IMAGE"),
            qemu: path("VMBENCH_QEMU"),
            micro_elf: path("VMBENCH_MICRO_ELF"),
            auto_kvm: AutoKvm {
                linux: AccelChoice::Auto.resolve(GuestKind::Linux).accel == Accel::Kvm,
                micro: AccelChoice::Auto.resolve(GuestKind::Micro).accel == Accel::Kvm,
            },
        }
    }
}

/// A plan that cannot be made.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// Neither the flags nor the config name a suite.
    #[error("no suite to run: give --suite vmexit,shm (or suites: in the config)")]
    NoSuite,
}

/// Repeats by default: three independent boots give a median and a spread
/// at three times the run's length; `--quick`, and a run whose guests all
/// run under TCG, stay one boot.
const FULL_REPEATS: u32 = 3;
const QUICK_REPEATS: u32 = 1;

/// Sample counts: (timed iterations, warm-up, batch) per VM-exit row.
const QUICK_VMEXIT_SIZES: (u64, u64, u64) = (2_000, 100, 2_000);
const FULL_VMEXIT_SIZES: (u64, u64, u64) = (100_000, 1_000, 100_000);
/// The ivshmem region: 3 slots of 4K frames and the 64 MiB sweep (full);
/// the quick plan's largest transfer fits in half.
const QUICK_SHM_MIB: u64 = 128;
const FULL_SHM_MIB: u64 = 256;
/// How long one shm request may take before the guest is declared hung.
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the isolation audit watches for interrupts and runnable threads
/// and runs the residual-noise detector, per CPU: a second holds hundreds of
/// ticks on a CPU that has them, and costs two seconds per CPU a run.
const DEFAULT_NOISE_WINDOW: Duration = Duration::from_secs(1);

/// How many samples a run takes, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Depth {
    /// Full sample counts and three repeats: what the statistics need.
    Full,
    /// `--quick` (or `quick: true`): seconds per measurement, one repeat.
    Quick,
    /// Nothing asked, and every guest of the run is emulated (TCG): its
    /// figures are not VM exits, so the run only shows that everything
    /// works, at the quick sizes; `--full` takes the full ones.
    TcgShort,
}

impl Depth {
    /// Whether the sample counts are the quick ones.
    pub fn is_short(self) -> bool {
        self != Depth::Full
    }

    /// What to tell the user at the start and in the summary, if anything
    /// (`repeat`: the run's repeats).
    pub fn note(self, repeat: u32) -> Option<String> {
        (self == Depth::TcgShort).then(|| {
            format!(
                "a short run (TCG: every guest is emulated, so no figure is a VM exit): \
                 {} samples per row, {repeat} repeat{}; --full takes {} samples and {FULL_REPEATS} repeats",
                QUICK_VMEXIT_SIZES.0,
                if repeat == 1 { "" } else { "s" },
                FULL_VMEXIT_SIZES.0,
            )
        })
    }
}

/// Every setting of the run.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Suites to run, in order.
    pub suites: Vec<Suite>,
    /// Benchmark CPUs (None: what the audit picks).
    pub cpus: Option<CpuList>,
    /// Fewer samples (`--quick`, or a TCG run's default).
    pub quick: bool,
    /// Why the sample counts are what they are.
    pub depth: Depth,
    /// Times the suites run, each in fresh guest boots (at least 1).
    pub repeat: u32,
    /// The report directory.
    pub out: PathBuf,
    /// Key to sign the report with.
    pub sign: Option<PathBuf>,
    /// Whether to change host knobs.
    pub apply: ApplyMode,
    /// Runtime knobs to leave alone.
    pub skip: Vec<vmbench_results::KnobId>,
    /// The journal of original knob values.
    pub journal: PathBuf,
    /// Where /proc and /sys are read and written for isolation.
    pub root: SysRoot,
    /// Where the host specification is read (the running host, except in tests).
    pub spec_root: SysRoot,
    /// How long the audit samples interrupts and runs the residual-noise
    /// detector, and the detector's threshold.
    pub noise: vmbench_isolate::osnoise::NoiseSettings,
    /// Threads isolation leaves where they are.
    pub keep_threads: vmbench_isolate::affinity::ThreadExclusion,
    /// The guest, as for `vmbench vm boot`; `guest.guest` is the VM-exit
    /// suite's guest (the shm suite always boots the Linux guest).
    pub guest: GuestSettings,
    /// VM-exit rows (empty: the default rows).
    pub rows: Vec<Row>,
    /// Timed iterations per VM-exit row.
    pub iterations: u64,
    /// Discarded iterations before them.
    pub warmup: u64,
    /// Back-to-back iterations timed as a whole.
    pub batch: u64,
    /// Also run the UC and WC mapping arms (a guest boot each).
    pub arms: bool,
    /// Measure the doorbell round trip (ivshmem-doorbell).
    pub doorbell: bool,
    /// How long one shm request may take before the guest is declared hung.
    pub request_timeout: Duration,
    /// The command as typed.
    pub command: String,
}

impl Plan {
    /// Flags over config over environment over defaults.
    pub fn new(flags: RunFlags, config: Config, env: Environment) -> Result<Plan, PlanError> {
        let suites = if flags.suites.is_empty() {
            config
                .suites
                .unwrap_or_else(|| vec![Suite::Vmexit, Suite::Shm])
        } else {
            flags.suites
        };
        if suites.is_empty() {
            return Err(PlanError::NoSuite);
        }
        let iso = config.isolation.unwrap_or_default();
        let vm = config.vm.unwrap_or_default();
        let accel = flags.accel.or(config.accel).unwrap_or_default();
        let vmexit_guest = vm.guest.unwrap_or(GuestKind::Linux);
        let all_tcg = suites.iter().all(|s| {
            let guest = match s {
                Suite::Vmexit => vmexit_guest,
                Suite::Shm => GuestKind::Linux,
            };
            match accel {
                AccelChoice::Tcg => true,
                AccelChoice::Kvm => false,
                AccelChoice::Auto => match guest {
                    GuestKind::Linux => !env.auto_kvm.linux,
                    GuestKind::Micro => !env.auto_kvm.micro,
                },
            }
        });
        let depth = if flags.quick || (!flags.full && config.quick == Some(true)) {
            Depth::Quick
        } else if flags.full || config.quick == Some(false) || !all_tcg {
            Depth::Full
        } else {
            Depth::TcgShort
        };
        let quick = depth.is_short();
        let vx = config.vmexit.unwrap_or_default();
        let shm = config.shm.unwrap_or_default();
        let root = SysRoot::new(iso.root.as_deref().unwrap_or(Path::new("/")));
        let journal = iso
            .journal
            .unwrap_or_else(|| vmbench_isolate::journal::default_path(&root));
        let out = flags.out.or(config.out).unwrap_or_else(|| {
            PathBuf::from("vmbench-results")
                .join(format!("run-{}", crate::records::utc_stamp(true)))
        });
        let (iterations, warmup, batch) = if quick {
            QUICK_VMEXIT_SIZES
        } else {
            FULL_VMEXIT_SIZES
        };
        let guest = GuestSettings {
            image: vm.image.or(env.guest_image),
            guest: vmexit_guest,
            micro_elf: vm.micro_elf.or(env.micro_elf),
            accel,
            qemu: vm.qemu.or(env.qemu),
            append: vm.append.unwrap_or_default(),
            boot_timeout: vm.boot_timeout_s.map(Duration::from_secs),
            memory_mib: vm.memory_mib,
            shm_mib: vm
                .shm_mib
                .unwrap_or(if quick { QUICK_SHM_MIB } else { FULL_SHM_MIB }),
            doorbell_vectors: None,
            kvm_cpu: vm.kvm_cpu,
            vcpus: vm.vcpus.unwrap_or(1),
        };
        Ok(Plan {
            suites,
            cpus: flags.cpus.or(config.cpus),
            quick,
            depth,
            repeat: flags.repeat.or(config.repeat).unwrap_or(if quick {
                QUICK_REPEATS
            } else {
                FULL_REPEATS
            }),
            out,
            sign: flags.sign.or(config.sign),
            apply: if flags.no_isolation {
                ApplyMode::No
            } else {
                iso.apply.unwrap_or(ApplyMode::Auto)
            },
            skip: iso.skip.unwrap_or_default(),
            journal,
            root,
            spec_root: SysRoot::host(),
            keep_threads: vmbench_isolate::affinity::ThreadExclusion::with(
                iso.move_all_threads.unwrap_or(false),
                iso.exclude_threads.as_deref().unwrap_or_default(),
            ),
            noise: vmbench_isolate::osnoise::NoiseSettings {
                window: iso
                    .noise_window_ms
                    .map_or(DEFAULT_NOISE_WINDOW, Duration::from_millis),
                threshold: iso.noise_threshold_us.map_or(
                    vmbench_isolate::osnoise::DEFAULT_THRESHOLD,
                    Duration::from_micros,
                ),
            },
            guest,
            rows: vx.rows.unwrap_or_default(),
            iterations: vx.iterations.unwrap_or(iterations),
            warmup: vx.warmup.unwrap_or(warmup),
            batch: vx.batch.unwrap_or(batch),
            arms: shm.arms.unwrap_or(true),
            doorbell: shm.doorbell.unwrap_or(true),
            request_timeout: shm
                .request_timeout_s
                .map_or(DEFAULT_REQUEST_TIMEOUT, Duration::from_secs),
            command: flags.command,
        })
    }

    /// The guest `suite` boots.
    pub fn guest_for(&self, suite: Suite) -> GuestKind {
        match suite {
            Suite::Vmexit => self.guest.guest,
            Suite::Shm => GuestKind::Linux,
        }
    }

    /// Whether the Linux guest boots at all (the preflight then checks its image).
    pub fn needs_linux_guest(&self) -> bool {
        self.suites
            .iter()
            .any(|s| self.guest_for(*s) == GuestKind::Linux)
    }

    /// Whether the Linux guest of the VM-exit suite stays up for the shm
    /// suite (one boot for both; it then boots with the doorbell).
    pub fn shares_linux_guest(&self) -> bool {
        self.suites.contains(&Suite::Vmexit)
            && self.suites.contains(&Suite::Shm)
            && self.guest.guest == GuestKind::Linux
    }
}

/// The command that reproduces a run, from its arguments: shell-quoted
/// where needed, and without `--sign KEY` (a published report should not
/// tell where its signer keeps the private key, and a reproduction signs
/// with its own key or none).
pub fn reproduce_command<I, S>(args: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut out: Vec<String> = Vec::new();
    let mut args = args.into_iter();
    while let Some(a) = args.next() {
        let a = a.as_ref();
        if a == "--sign" {
            args.next();
            continue;
        }
        if a.starts_with("--sign=") {
            continue;
        }
        out.push(shell_word(a));
    }
    out.join(" ")
}

/// `word` as one POSIX shell word: unchanged when it holds only characters
/// no shell treats specially, else in single quotes.
fn shell_word(word: &str) -> String {
    let plain = !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:=,@+%".contains(c));
    if plain {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reproduce_command_leaves_out_the_signing_key_and_quotes_words() {
        let cmd = reproduce_command([
            "vmbench",
            "run",
            "--sign",
            "/root/.ssh/id_ed25519",
            "--quick",
            "--sign=/k",
            "--out",
            "my results",
            "--cpus",
            "2,3",
            "it's",
        ]);
        assert_eq!(
            cmd,
            r"vmbench run --quick --out 'my results' --cpus 2,3 'it'\''s'"
        );
    }

    fn flags() -> RunFlags {
        RunFlags {
            command: "vmbench run".into(),
            ..RunFlags::default()
        }
    }

    #[test]
    fn flags_win_over_the_config_and_the_config_over_the_environment() {
        let config = crate::config::parse(
            "accel: kvm\nquick: false\nvm:\n  qemu: /config/qemu\n  shm_mib: 64\nsuites: [shm]\n",
        )
        .unwrap();
        let env = Environment {
            qemu: Some("/env/qemu".into()),
            guest_image: Some("/env/image".into()),
            micro_elf: None,
            auto_kvm: AutoKvm::default(),
        };
        let p = Plan::new(
            RunFlags {
                accel: Some(AccelChoice::Tcg),
                quick: true,
                ..flags()
            },
            config,
            env,
        )
        .unwrap();
        assert_eq!(p.guest.accel, AccelChoice::Tcg);
        assert!(p.quick);
        assert_eq!(p.iterations, QUICK_VMEXIT_SIZES.0);
        assert_eq!(p.guest.qemu.as_deref(), Some(Path::new("/config/qemu")));
        assert_eq!(p.guest.image.as_deref(), Some(Path::new("/env/image")));
        assert_eq!(p.guest.shm_mib, 64);
        assert_eq!(p.suites, [Suite::Shm]);
    }

    fn kvm_host() -> Environment {
        Environment {
            auto_kvm: AutoKvm {
                linux: true,
                micro: true,
            },
            ..Environment::default()
        }
    }

    #[test]
    fn defaults_and_the_shared_guest() {
        let p = Plan::new(flags(), Config::default(), kvm_host()).unwrap();
        assert_eq!(p.suites, [Suite::Vmexit, Suite::Shm]);
        assert_eq!(p.guest.shm_mib, FULL_SHM_MIB);
        assert_eq!((p.depth, p.repeat), (Depth::Full, FULL_REPEATS));
        assert!(p.out.starts_with("vmbench-results"));
        assert!(p.shares_linux_guest() && p.needs_linux_guest());
        let micro = Plan::new(
            flags(),
            crate::config::parse("vm:\n  guest: micro\nsuites: [vmexit]\n").unwrap(),
            Environment::default(),
        )
        .unwrap();
        assert!(!micro.needs_linux_guest() && !micro.shares_linux_guest());
        assert_eq!(micro.guest_for(Suite::Shm), GuestKind::Linux);
    }

    #[test]
    fn an_emulated_run_is_short_unless_asked_for_more() {
        let plan = |f: RunFlags, config: &str, env: Environment| {
            let p = Plan::new(f, crate::config::parse(config).unwrap(), env).unwrap();
            (p.depth, p.repeat, p.iterations)
        };
        let short = (Depth::TcgShort, QUICK_REPEATS, QUICK_VMEXIT_SIZES.0);
        let full = (Depth::Full, FULL_REPEATS, FULL_VMEXIT_SIZES.0);
        // No KVM for any guest: short.
        assert_eq!(plan(flags(), "{}", Environment::default()), short);
        // --accel tcg on a KVM host: short too.
        let tcg = RunFlags {
            accel: Some(AccelChoice::Tcg),
            ..flags()
        };
        assert_eq!(plan(tcg, "{}", kvm_host()), short);
        // A kvm_pvm host: the micro-guest's exits are real, the shm suite's
        // Linux guest is emulated: not every guest is emulated, so full.
        let pvm = Environment {
            auto_kvm: AutoKvm {
                linux: false,
                micro: true,
            },
            ..Environment::default()
        };
        assert_eq!(plan(flags(), "vm:\n  guest: micro\n", pvm.clone()), full);
        assert_eq!(plan(flags(), "{}", pvm), short);
        // Asked for: --full, `quick: false`, a repeat count.
        let more = RunFlags {
            full: true,
            ..flags()
        };
        assert_eq!(plan(more, "quick: true\n", Environment::default()), full);
        assert_eq!(
            plan(flags(), "quick: false\n", Environment::default()),
            full
        );
        let repeat = RunFlags {
            repeat: Some(5),
            ..flags()
        };
        assert_eq!(
            plan(repeat, "{}", Environment::default()),
            (Depth::TcgShort, 5, QUICK_VMEXIT_SIZES.0)
        );
        // --quick on KVM.
        let quick = RunFlags {
            quick: true,
            ..flags()
        };
        assert_eq!(
            plan(quick, "{}", kvm_host()),
            (Depth::Quick, QUICK_REPEATS, QUICK_VMEXIT_SIZES.0)
        );
        assert!(
            Depth::TcgShort
                .note(1)
                .is_some_and(|n| n.contains("1 repeat;") && n.contains("--full"))
        );
        assert_eq!(Depth::Full.note(3), None);
    }

    #[test]
    fn no_isolation_wins_over_the_config() {
        let f = RunFlags {
            no_isolation: true,
            ..flags()
        };
        let c = crate::config::parse("isolation:\n  apply: yes\n").unwrap();
        let p = Plan::new(f, c, Environment::default()).unwrap();
        assert_eq!(p.apply, ApplyMode::No);
    }

    #[test]
    fn an_empty_suite_list_is_refused() {
        let c = crate::config::parse("suites: []\n").unwrap();
        assert!(matches!(
            Plan::new(flags(), c, Environment::default()),
            Err(PlanError::NoSuite)
        ));
    }
}
