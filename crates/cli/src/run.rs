//! `vmbench run`: preflight, isolation (journaled), guest boot with pinning,
//! the suites, restore, report, signature — the product's main job.
//!
//! Ordering guarantees: nothing on the host changes before the preflight
//! has passed; the journal is written before the first change; the host is
//! restored on success, error, Ctrl-C and panic (the `Applied` guard), and
//! after a SIGKILL the next run refuses to start until `vmbench isolate
//! restore` ran. A suite that fails mid-way keeps what it measured; the
//! report then says INCOMPLETE.

use crate::config::{self, ApplyMode, Config, Guest, Suite};
use crate::vm::{AccelArg, GuestArgs, GuestKind, pin_guest, vm_options};
use anyhow::{Context, Result};
use clap::Args;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use vmbench_host::{CpuList, HostSpec, SpecOptions, SysRoot};
use vmbench_isolate::apply::{self, Applied, RestoreReport};
use vmbench_isolate::{Audit, AuditOptions, KnobClass, Verdict, journal};
use vmbench_report::{KnobRecord, QemuRecord, RUN_SCHEMA_VERSION, Results, RunRecord, SpecRow};
use vmbench_shm::host::Plan;
use vmbench_vm::{Accel, Vm, VmOptions};

#[derive(Args)]
pub struct RunArgs {
    /// YAML config (every field optional; see examples/vmbench.yaml).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Suites to run (comma-separated): vmexit, shm.
    #[arg(long, value_delimiter = ',', value_name = "SUITE,...")]
    suite: Vec<String>,
    #[arg(long, value_enum)]
    accel: Option<AccelArg>,
    /// Benchmark CPUs (isolation audit, vCPU pinning).
    #[arg(long, value_name = "LIST", value_parser = crate::vm::parse_cpus)]
    cpus: Option<CpuList>,
    /// Fewer samples: every measurement, minutes become seconds.
    #[arg(long)]
    quick: bool,
    /// Output directory (must be new or empty).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Sign the report: an ed25519 private key, or a .pub with its key in ssh-agent.
    #[arg(long, value_name = "KEY")]
    sign: Option<PathBuf>,
    /// Only errors and the final summary.
    #[arg(short, long, conflicts_with = "verbose")]
    quiet: bool,
    /// More detail: QEMU command lines, every isolation change.
    #[arg(short, long)]
    verbose: bool,
}

/// Everything decided before anything runs.
struct Settings {
    suites: Vec<Suite>,
    accel: AccelArg,
    cpus: Option<CpuList>,
    quick: bool,
    out: PathBuf,
    sign: Option<PathBuf>,
    apply: ApplyMode,
    skip: Vec<String>,
    journal: PathBuf,
    root: SysRoot,
    guest: Guest,
    image: Option<PathBuf>,
    qemu: Option<PathBuf>,
    micro_elf: Option<PathBuf>,
    memory_mib: Option<u32>,
    shm_mib: u64,
    boot_timeout: Option<u64>,
    append: Vec<String>,
    kvm_cpu: Option<String>,
    rows: Vec<String>,
    iterations: u64,
    warmup: u64,
    batch: u64,
    arms: bool,
    doorbell: bool,
    request_timeout: Duration,
    command: String,
}

fn settings(a: &RunArgs, c: Config) -> Result<Settings> {
    let suites = if a.suite.is_empty() {
        c.suites.unwrap_or_else(|| vec![Suite::Vmexit, Suite::Shm])
    } else {
        a.suite
            .iter()
            .map(|s| match s.as_str() {
                "vmexit" => Ok(Suite::Vmexit),
                "shm" => Ok(Suite::Shm),
                other => Err(anyhow::anyhow!("--suite {other:?}: suites are vmexit, shm")),
            })
            .collect::<Result<_>>()?
    };
    if suites.is_empty() {
        anyhow::bail!("no suite to run: give --suite vmexit,shm (or suites: in the config)");
    }
    let accel = a.accel.unwrap_or(match c.accel {
        Some(config::Accel::Kvm) => AccelArg::Kvm,
        Some(config::Accel::Tcg) => AccelArg::Tcg,
        _ => AccelArg::Auto,
    });
    let quick = a.quick || c.quick.unwrap_or(false);
    let iso = c.isolation.unwrap_or_default();
    let vm = c.vm.unwrap_or_default();
    let vx = c.vmexit.unwrap_or_default();
    let shm = c.shm.unwrap_or_default();
    let root = SysRoot::new(iso.root.as_deref().unwrap_or(Path::new("/")));
    let journal = iso.journal.unwrap_or_else(|| journal::default_path(&root));
    let out = a.out.clone().or(c.out).unwrap_or_else(|| {
        PathBuf::from("vmbench-results").join(format!("run-{}", utc_stamp(true)))
    });
    let (iterations, warmup, batch) = if quick {
        (2_000, 100, 2_000)
    } else {
        (100_000, 1_000, 100_000)
    };
    Ok(Settings {
        suites,
        accel,
        cpus: a.cpus.clone().or(c.cpus),
        quick,
        out,
        sign: a.sign.clone().or(c.sign),
        apply: iso.apply.unwrap_or(ApplyMode::Auto),
        skip: iso.skip.unwrap_or_default(),
        journal,
        root,
        guest: vm.guest.unwrap_or(Guest::Linux),
        // The config wins; else the environment `nix run .#bench` sets (no PATH lookups then).
        image: vm.image.or_else(|| env_path("VMBENCH_GUEST_IMAGE")),
        qemu: vm.qemu.or_else(|| env_path("VMBENCH_QEMU")),
        micro_elf: vm.micro_elf.or_else(|| env_path("VMBENCH_MICRO_ELF")),
        memory_mib: vm.memory_mib,
        shm_mib: vm.shm_mib.unwrap_or(if quick { 128 } else { 256 }),
        boot_timeout: vm.boot_timeout_s,
        append: vm.append.unwrap_or_default(),
        kvm_cpu: vm.kvm_cpu,
        rows: vx.rows.unwrap_or_default(),
        iterations: vx.iterations.unwrap_or(iterations),
        warmup: vx.warmup.unwrap_or(warmup),
        batch: vx.batch.unwrap_or(batch),
        arms: shm.arms.unwrap_or(true),
        doorbell: shm.doorbell.unwrap_or(true),
        request_timeout: Duration::from_secs(shm.request_timeout_s.unwrap_or(30)),
        command: std::env::args().collect::<Vec<_>>().join(" "),
    })
}

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// Phase and measurement progress: a spinner on a TTY, plain lines otherwise.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    quiet: bool,
    verbose: bool,
}

impl Progress {
    fn new(quiet: bool, verbose: bool) -> Progress {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let b = indicatif::ProgressBar::new_spinner();
            b.enable_steady_tick(Duration::from_millis(120));
            b
        });
        Progress {
            bar,
            quiet,
            verbose,
        }
    }

    /// A new phase: kept on screen.
    fn phase(&self, msg: &str) {
        match &self.bar {
            Some(b) => b.println(format!("== {msg}")),
            None if !self.quiet => eprintln!("vmbench run: {msg}"),
            None => {}
        }
    }

    /// A step within a phase: the spinner's message, or a plain line.
    fn step(&self, msg: &str) {
        match &self.bar {
            Some(b) => b.set_message(msg.to_string()),
            None if !self.quiet => eprintln!("vmbench run:   {msg}"),
            None => {}
        }
    }

    fn detail(&self, msg: &str) {
        if self.verbose {
            self.phase(msg);
        }
    }

    fn done(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

fn utc_stamp(compact: bool) -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let (h, mi, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    if compact {
        format!("{y:04}{m:02}{d:02}-{h:02}{mi:02}{s:02}")
    } else {
        format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
    }
}

fn guest_args(s: &Settings, kind: GuestKind) -> GuestArgs {
    GuestArgs {
        image: s.image.clone(),
        guest: kind,
        micro_elf: s.micro_elf.clone(),
        accel: s.accel,
        qemu: s.qemu.clone(),
        append: s.append.clone(),
        boot_timeout: s.boot_timeout,
        memory: s.memory_mib,
        shm_mib: s.shm_mib,
        doorbell_vectors: None,
        kvm_cpu: s.kvm_cpu.clone(),
    }
}

/// Every reason the run cannot start, each with what to do; nothing changed.
fn preflight(s: &Settings, audit: &Result<Audit, vmbench_isolate::IsolateError>) -> Vec<String> {
    let mut blockers = Vec::new();
    match journal::Journal::load(&s.journal) {
        Ok(Some(j)) => blockers.push(format!(
            "an unrestored isolation journal from an earlier run (pid {}, {} change(s)) is at {}: run `vmbench isolate restore --journal {}` first",
            j.pid,
            j.entries.len(),
            s.journal.display(),
            s.journal.display()
        )),
        Ok(None) => {}
        Err(e) => blockers.push(format!("isolation journal: {e}")),
    }
    if let Err(e) = vmbench_host::qemu::resolve(s.qemu.as_deref()) {
        blockers.push(format!(
            "QEMU: {e} (install qemu-system-x86, or set vm.qemu / VMBENCH_QEMU)"
        ));
    }
    let linux_needed = s.suites.contains(&Suite::Shm) || s.guest == Guest::Linux;
    if linux_needed {
        let kind = GuestKind::Linux;
        let (accel, _) = crate::vm::choose_accel(s.accel, kind);
        if s.accel == AccelArg::Kvm && accel != Accel::Kvm {
            blockers.push("--accel kvm: /dev/kvm cannot run the Linux guest here (no usable kvm_intel/kvm_amd); use --accel auto or tcg".into());
        }
        match &s.image {
            Some(d) if !d.join("bzImage").is_file() => blockers.push(format!(
                "guest image {}: no bzImage there (build one with `vmbench image build --out {}` or `nix build .#guest-image`)",
                d.display(),
                d.display()
            )),
            None if !crate::vm::default_image_dir().join("bzImage").is_file() => {
                if let Err(e) = vmbench_vm::image::default_kernel() {
                    blockers.push(format!(
                        "no guest image yet and none can be built: {e} (install linux-image-amd64 and linux-headers-amd64)"
                    ));
                }
            }
            _ => {}
        }
    }
    if let Some(k) = &s.sign
        && !k.is_file()
    {
        blockers.push(format!("--sign {}: no such key file", k.display()));
    }
    if s.out.exists() {
        let empty = std::fs::read_dir(&s.out)
            .map(|mut d| d.next().is_none())
            .unwrap_or(false);
        if !empty {
            blockers.push(format!(
                "--out {}: exists and is not empty; choose another directory (nothing is overwritten)",
                s.out.display()
            ));
        }
    }
    match audit {
        Err(e) => blockers.push(format!("isolation audit: {e}")),
        Ok(a) => {
            if a.cpus.housekeeping.is_empty() {
                blockers.push(format!(
                    "benchmark CPUs {} leave no housekeeping CPU for QEMU's other threads; give fewer with --cpus",
                    a.cpus.bench
                ));
            }
            if s.apply == ApplyMode::Yes {
                let blocked: Vec<String> = a
                    .knobs
                    .iter()
                    .filter(|k| {
                        k.class == KnobClass::Runtime
                            && !s.skip.contains(&k.id)
                            && !k.changes.is_empty()
                    })
                    .flat_map(|k| k.blocked.iter().map(move |b| format!("{}: {b}", k.id)))
                    .collect();
                if !blocked.is_empty() {
                    blockers.push(format!(
                        "isolation.apply is yes but these changes are blocked: {} (run as root, skip them, or set apply: auto)",
                        blocked.join("; ")
                    ));
                }
            }
        }
    }
    blockers
}

fn qemu_record(vm: &Vm, opts: &VmOptions) -> QemuRecord {
    let path = opts.qemu.display().to_string();
    // /nix/store/HASH-NAME/bin/qemu-… → the store path.
    let store_path = path
        .strip_prefix("/nix/store/")
        .and_then(|rest| rest.split('/').next())
        .map(|p| format!("/nix/store/{p}"));
    QemuRecord {
        path,
        version: vm.qemu_version.clone(),
        store_path,
        command_line: vm.config.command_line(),
    }
}

pub fn run_cmd(a: RunArgs, interrupt: Arc<AtomicBool>) -> Result<ExitCode> {
    let cfg = match &a.config {
        Some(p) => config::load(p)?,
        None => Config::default(),
    };
    let s = settings(&a, cfg)?;
    let p = Progress::new(a.quiet, a.verbose);
    let started = utc_stamp(false);
    p.phase("preflight (nothing is changed yet)");
    let audit = vmbench_isolate::audit(
        &s.root,
        &AuditOptions {
            cpus: s.cpus.clone(),
            noise_window: Duration::from_millis(500),
        },
    );
    let blockers = preflight(&s, &audit);
    if !blockers.is_empty() {
        p.done();
        eprintln!("vmbench run: cannot start; nothing was changed:");
        for b in &blockers {
            eprintln!("  - {b}");
        }
        return Ok(ExitCode::from(2));
    }
    let audit = audit?;
    std::fs::create_dir_all(&s.out).with_context(|| format!("creating {}", s.out.display()))?;
    p.step("host specification");
    let spec = HostSpec::gather(
        &SysRoot::host(),
        &SpecOptions {
            qemu: s.qemu.clone(),
            skip_calibration: false,
        },
    );
    // The host spec has already chosen the TSC frequency (and calibrated it).
    let host_khz = spec.tsc.frequency.known().map(|f| f.khz);

    // Isolation: apply (journaled) or audit only.
    let mut notes = Vec::new();
    let euid = nix::unistd::geteuid().as_raw();
    let do_apply = match s.apply {
        ApplyMode::No => {
            notes.push("isolation audited only (isolation.apply: no)".into());
            false
        }
        ApplyMode::Auto if euid != 0 && s.root.is_host() => {
            notes.push(
                "not root: isolation audited, not applied (run as root to apply the runtime knobs)"
                    .into(),
            );
            false
        }
        _ => true,
    };
    for k in audit.knobs.iter().filter(|k| {
        k.class == KnobClass::BootOnly && matches!(k.verdict, Verdict::Warn | Verdict::Fail)
    }) {
        notes.push(format!(
            "boot-only knob {} not in place: {}",
            k.id,
            k.fix
                .clone()
                .unwrap_or_else(|| "see `vmbench isolate suggest`".into())
        ));
    }
    let mut unmovable: Vec<String> = Vec::new();
    let applied: Option<Applied> = if do_apply {
        p.phase("isolation: applying runtime knobs (journal first)");
        let applied = apply::apply(&s.root, &audit, &s.skip, &s.journal)?;
        for c in &applied.report.applied {
            p.detail(&format!("changed {c}"));
        }
        for u in &applied.report.unmovable {
            notes.push(format!("unmovable interrupt: {u}"));
        }
        unmovable = applied.report.unmovable.clone();
        notes.extend(applied.held.notes.iter().cloned());
        Some(applied)
    } else {
        None
    };

    let mut results = Results::default();
    let mut incomplete: Vec<String> = Vec::new();
    let mut guest_spec = None;
    let mut qemu = None;
    let mut pinning = None;
    let mut accel_used: Option<Accel> = None;
    let mut plan = if s.quick {
        Plan::quick(host_khz.unwrap_or(0.0))
    } else {
        Plan::full(host_khz.unwrap_or(0.0))
    };
    plan.request_timeout = s.request_timeout;
    if !s.doorbell {
        plan.doorbell_rounds = 0;
    }
    let bench = audit.cpus.bench.iter().next();
    let housekeeping = audit.cpus.housekeeping.iter().next();
    let vcpu_cpu = CpuList::from_cpus(bench);
    plan.ref_cpus = housekeeping
        .zip(bench)
        .map(|(h, b)| (h as usize, b as usize));
    // The Linux guest of the VM-exit suite stays up for the shm suite.
    let mut kept: Option<(Vm, VmOptions)> = None;
    for suite in s.suites.clone() {
        if interrupt.load(Ordering::Relaxed) || !incomplete.is_empty() {
            incomplete.push(format!(
                "suite {} did not run (the run stopped before it)",
                suite.name()
            ));
            continue;
        }
        let kind = match suite {
            Suite::Vmexit if s.guest == Guest::Micro => GuestKind::Micro,
            _ => GuestKind::Linux,
        };
        p.phase(match suite {
            Suite::Vmexit => "VM-exit suite",
            Suite::Shm => "shared-memory suite",
        });
        let doorbell = kind == GuestKind::Linux && s.suites.contains(&Suite::Shm) && s.doorbell;
        let booted = match kept.take() {
            Some(v) => Ok(v),
            None => boot(&s, kind, doorbell, &interrupt, &p, &mut results.warnings),
        };
        let (mut vm, opts) = match booted {
            Ok(v) => v,
            Err(e) => {
                incomplete.push(format!(
                    "{} suite: the guest did not come up: {e:#}",
                    suite.name()
                ));
                continue;
            }
        };
        if !vcpu_cpu.is_empty() {
            match pin(&vm, &vcpu_cpu) {
                Ok(text) => pinning = Some(text),
                Err(e) => notes.push(format!("vCPU pinning failed: {e:#}")),
            }
        }
        if kind == GuestKind::Linux || guest_spec.is_none() {
            guest_spec = serde_json::to_value(&vm.spec).ok();
            qemu = Some(qemu_record(&vm, &opts));
            accel_used = Some(opts.accel);
        }
        match suite {
            Suite::Vmexit => {
                let rows = s
                    .rows
                    .iter()
                    .filter_map(|r| vmbench_proto::vmexit::Row::parse(r))
                    .collect();
                let vo = crate::vmexit::suite_options(
                    &vm,
                    opts.accel,
                    rows,
                    (s.iterations, s.warmup, s.batch),
                    host_khz,
                );
                let (run, outcome) =
                    vmbench_suites::vmexit::run_partial(&mut vm, &vo, &mut |l| p.step(l));
                results.measurements.extend(run.measurements);
                results.skipped.extend(run.skipped);
                match outcome {
                    Err(e) => {
                        incomplete.push(format!("the VM-exit suite stopped: {e:#}"));
                        let _ = vm.shutdown();
                    }
                    Ok(()) if kind == GuestKind::Linux && s.suites.contains(&Suite::Shm) => {
                        kept = Some((vm, opts));
                    }
                    Ok(()) => {
                        let _ = vm.shutdown();
                    }
                }
            }
            Suite::Shm => {
                p.step("transfers, round trips and integrity");
                let o = vmbench_suites::shm::VmShmOptions {
                    plan: plan.clone(),
                    accel: opts.accel,
                };
                let (mut run, outcome) = vmbench_suites::shm::run(&mut vm, &o);
                let _ = vm.shutdown();
                crate::shm::note_counters(&mut run);
                results.absorb(run.results);
                if let Err(e) = outcome {
                    incomplete.push(format!("the shared-memory suite stopped: {e:#}"));
                    continue;
                }
                if s.arms && !interrupt.load(Ordering::Relaxed) {
                    p.step("UC and WC mapping arms (one guest each)");
                    let (arm_run, outcome) = vmbench_suites::shm::arms(&opts, &plan, |vm| {
                        if vcpu_cpu.is_empty() {
                            return Ok(());
                        }
                        pin(vm, &vcpu_cpu).map(|_| ()).map_err(|e| format!("{e:#}"))
                    });
                    results.absorb(arm_run.results);
                    if let Some(n) =
                        vmbench_suites::shm::pat_note(&crate::shm::host_vendor(), opts.accel)
                    {
                        results.warnings.push(n);
                    }
                    if let Err(e) = outcome {
                        incomplete.push(format!("the shm UC/WC arms stopped: {e:#}"));
                    }
                }
            }
        }
    }
    if let Some((vm, _)) = kept.take() {
        let _ = vm.shutdown();
    }
    let was_interrupted = interrupt.load(Ordering::Relaxed);
    if was_interrupted {
        incomplete.insert(
            0,
            "interrupted (SIGINT/SIGTERM): the run stopped early".into(),
        );
    }

    // Restore before writing anything else: the host comes first.
    let restore = match applied {
        Some(a) => {
            p.phase("isolation: restoring the host from the journal");
            Some(a.restore())
        }
        None => None,
    };
    let (restored_ok, restore_text) = match &restore {
        None => (true, String::new()),
        Some(Ok(r)) if r.failed.is_empty() => (true, "restored".to_string()),
        Some(Ok(r)) => (false, format!("FAILED: {}", r.failed.join("; "))),
        Some(Err(e)) => (false, format!("FAILED: {e}")),
    };
    if !restored_ok {
        results.warnings.push(format!(
            "the host was NOT fully restored ({restore_text}); run `vmbench isolate restore --journal {}`",
            s.journal.display()
        ));
    }
    let isolation = knob_records(
        &audit,
        do_apply,
        &s.skip,
        &unmovable,
        &restore,
        &restore_text,
    );

    if accel_used == Some(Accel::Tcg) {
        results.warnings.insert(
            0,
            "TCG (software emulation): no VM exits happened; every figure is QEMU's emulation cost on this host".into(),
        );
    }
    let record = RunRecord {
        schema_version: RUN_SCHEMA_VERSION,
        vmbench_version: env!("CARGO_PKG_VERSION").into(),
        command: s.command.clone(),
        started_utc: started,
        accel: accel_used.map_or_else(|| "none (no guest booted)".into(), |a| a.name().into()),
        guest_flavour: match s.guest {
            Guest::Linux => "linux".into(),
            Guest::Micro => "micro (VM-exit suite), linux (shm suite)".into(),
        },
        suites: s.suites.iter().map(|x| x.name().to_string()).collect(),
        complete: incomplete.is_empty(),
        incomplete: incomplete.clone(),
        host_rows: spec
            .rows()
            .into_iter()
            .map(|r| SpecRow {
                section: r.section.to_string(),
                key: r.key,
                value: r.value,
            })
            .collect(),
        host: serde_json::to_value(&spec).unwrap_or_default(),
        guest: guest_spec,
        qemu,
        isolation,
        isolation_notes: notes,
        pinning,
        results,
    };
    p.phase(&format!("writing the report to {}", s.out.display()));
    vmbench_publish::write_dir(&record, &s.out)?;
    if let Some(key) = &s.sign {
        let fp = vmbench_publish::sign::sign(&s.out, key)?;
        p.step(&format!("signed with {fp}"));
    }
    p.done();
    print_summary(&record, &s.out);
    let failed = record
        .results
        .measurements
        .iter()
        .any(|m| m.verification.label() == "FAILED")
        || record
            .results
            .checks
            .iter()
            .any(|c| !c.passed && c.id.contains("integrity"));
    Ok(if was_interrupted {
        ExitCode::from(2)
    } else if !record.complete || failed || !restored_ok {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn boot(
    s: &Settings,
    kind: GuestKind,
    doorbell: bool,
    interrupt: &Arc<AtomicBool>,
    p: &Progress,
    warnings: &mut Vec<String>,
) -> Result<(Vm, VmOptions)> {
    let (mut opts, warning) = vm_options(&guest_args(s, kind), interrupt.clone())?;
    // The report states TCG itself, once; other accelerator warnings are kept.
    if let Some(w) = warning
        && !warnings.contains(&w)
        && opts.accel != Accel::Tcg
    {
        warnings.push(w);
    }
    if doorbell {
        opts.doorbell_vectors = Some(vmbench_suites::shm::DOORBELL_VECTOR + 1);
    }
    p.step(&format!(
        "booting the {} guest ({})",
        if kind == GuestKind::Micro {
            "micro"
        } else {
            "Linux"
        },
        opts.accel.name()
    ));
    let vm = Vm::boot(&opts)?;
    p.detail(&format!("QEMU: {}", vm.config.command_line()));
    Ok((vm, opts))
}

fn pin(vm: &Vm, cpus: &CpuList) -> Result<String> {
    let pins = pin_guest(vm, cpus)?;
    Ok(format!(
        "vCPU thread(s) {} → CPU {}; QEMU's other threads → CPUs {}",
        pins.vcpus
            .iter()
            .map(|v| v.tid.to_string())
            .collect::<Vec<_>>()
            .join(","),
        cpus,
        pins.housekeeping
    ))
}

fn knob_records(
    audit: &Audit,
    applied: bool,
    skip: &[String],
    unmovable: &[String],
    restore: &Option<Result<RestoreReport, vmbench_isolate::IsolateError>>,
    restore_text: &str,
) -> Vec<KnobRecord> {
    audit
        .knobs
        .iter()
        .map(|k| {
            let changed = applied
                && k.class == KnobClass::Runtime
                && !skip.contains(&k.id)
                && !k.changes.is_empty();
            let targets: Vec<String> = k
                .changes
                .iter()
                .filter(|c| match c {
                    // The kernel refused these (managed or per-CPU IRQs): not changed.
                    vmbench_isolate::model::Change::File { path, .. } => {
                        !unmovable.iter().any(|u| u.starts_with(path.as_str()))
                    }
                    _ => true,
                })
                .map(|c| match c {
                    vmbench_isolate::model::Change::File { path, target, .. } => {
                        format!("{path} = {target}")
                    }
                    vmbench_isolate::model::Change::StopService { unit } => {
                        format!("{unit} stopped")
                    }
                })
                .collect();
            let restored = match (changed, restore) {
                (false, _) => String::new(),
                (true, Some(Ok(r))) => {
                    let failed: Vec<&String> = r
                        .failed
                        .iter()
                        .filter(|f| {
                            k.changes.iter().any(|c| {
                                f.contains(&c.describe())
                                    || match c {
                                        vmbench_isolate::model::Change::File { path, .. } => {
                                            f.contains(path.as_str())
                                        }
                                        vmbench_isolate::model::Change::StopService { unit } => {
                                            f.contains(unit.as_str())
                                        }
                                    }
                            })
                        })
                        .collect();
                    if failed.is_empty() {
                        "restored".into()
                    } else {
                        format!(
                            "FAILED: {}",
                            failed
                                .iter()
                                .map(|s| s.as_str())
                                .collect::<Vec<_>>()
                                .join("; ")
                        )
                    }
                }
                (true, _) => restore_text.to_string(),
            };
            KnobRecord {
                knob: k.id.clone(),
                kind: k.class.label().to_string(),
                wanted: k.wanted.clone(),
                found: k.found.clone(),
                verdict: k.verdict.label().to_string(),
                changed_to: (changed && !targets.is_empty()).then(|| targets.join("; ")),
                restored,
            }
        })
        .collect()
}

fn print_summary(r: &RunRecord, out: &Path) {
    if r.is_tcg() {
        println!("TCG run — not a KVM measurement.");
    }
    if !r.complete {
        println!("INCOMPLETE: {}", r.incomplete.join(" "));
    }
    println!(
        "{} measurements, {} skipped; report: {}",
        r.results.measurements.len(),
        r.results.skipped.len(),
        out.join(vmbench_publish::REPORT).display()
    );
    for c in r
        .results
        .checks
        .iter()
        .filter(|c| c.id.contains("integrity"))
    {
        println!(
            "[{}] {}: {}",
            if c.passed { "PASS" } else { "FAIL" },
            c.id,
            c.observed
        );
    }
}
