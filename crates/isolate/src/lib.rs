//! Host isolation for low-noise VM benchmarks.
//!
//! - [`audit`]: read-only check of every knob for the benchmark CPUs
//!   (boot-only, runtime, held-while-running, and the noise actually seen).
//! - [`apply::apply`]: change the runtime knobs, journaling the ORIGINAL values
//!   on disk before the first write; [`apply::restore`] puts them back, also
//!   from another process after a SIGKILL.
//! - [`pin`]: pin QEMU's vCPU threads by thread id.
//! - [`suggest::suggest`]: the kernel cmdline (and NixOS config) for the CPUs.
//!
//! Every path goes through [`sysfs::Sysfs`] under a root, so the whole crate
//! runs against fixture trees; with a root other than `/` nothing outside it
//! is touched (no services, no real sysfs, no held devices).

pub mod affinity;
pub mod apply;
pub mod catalogue;
pub mod cmdline;
pub mod cpus;
pub mod hold;
pub mod journal;
pub mod knobs;
pub mod lock;
pub mod model;
pub mod noise;
pub mod osnoise;
pub mod pin;
pub mod privileges;
pub mod suggest;
pub mod sysfs;
pub mod trust;

pub use knobs::partitioning;
pub use model::{Audit, KnobClass, KnobId, KnobReport, Verdict};

use std::time::Duration;

fn names(knobs: &[KnobId]) -> String {
    knobs
        .iter()
        .map(|k| k.name())
        .collect::<Vec<_>>()
        .join(", ")
}
use sysfs::Sysfs;
use vmbench_host::CpuList;

/// Why isolation could not be audited, applied or restored.
#[derive(Debug, thiserror::Error)]
pub enum IsolateError {
    /// /sys/devices/system/cpu/online could not be read.
    #[error("cannot tell which CPUs are online")]
    Online(#[source] vmbench_host::ReadError),
    /// /sys/devices/system/cpu/online is not a CPU list.
    #[error("/sys/devices/system/cpu/online")]
    OnlineList(#[source] vmbench_host::CpuListError),
    /// Fewer than two CPUs online.
    #[error(
        "only CPU(s) {0} are online: isolation needs at least two, one for the benchmark and one for housekeeping"
    )]
    TooFewOnline(CpuList),
    /// `--cpus` names no CPU.
    #[error("--cpus is empty: name at least one CPU")]
    NoCpus,
    /// `--cpus` names CPUs that are not online.
    #[error("--cpus {requested}: CPU(s) {offline} are not online (online: {online})")]
    Offline {
        /// The CPUs asked for.
        requested: CpuList,
        /// Those not online.
        offline: CpuList,
        /// The online CPUs.
        online: CpuList,
    },
    /// The benchmark CPUs leave none for housekeeping.
    #[error(
        "--cpus {bench} takes every online CPU: leave at least one for housekeeping (online: {online})"
    )]
    NoHousekeeping {
        /// The benchmark CPUs.
        bench: CpuList,
        /// The online CPUs.
        online: CpuList,
    },
    /// `--skip` names knobs that apply never changes.
    #[error("--skip: {} not runtime knob(s), apply never changes them; runtime knobs are: {}", names(.0), names(&catalogue::runtime_ids().collect::<Vec<_>>()))]
    NotRuntime(Vec<KnobId>),
    /// A journal still holds changes not restored: an earlier run's, or a
    /// running vmbench's.
    #[error("an unrestored isolation journal exists at {path} ({entries} change(s)) {owner}")]
    Unrestored {
        /// The journal.
        path: String,
        /// The process that wrote it.
        pid: u32,
        /// How many changes it holds.
        entries: usize,
        /// Whose it is, and what to do.
        owner: String,
    },
    /// Current values that are not what the knob can hold: nothing is applied.
    #[error("refusing to apply, nothing changed: unexpected current value(s):\n  {}", .0.join("\n  "))]
    InvalidValues(Vec<String>),
    /// Check-only: changes that would be needed are not possible without root.
    #[error("check-only: these changes are blocked, nothing changed:\n  {}\n(run as root, or --skip the knobs listed)", .0.join("\n  "))]
    Blocked(Vec<String>),
    /// A change failed; what was applied before it is rolled back.
    #[error("applying `{change}` failed: {why}; {rollback}")]
    ApplyFailed {
        /// The change.
        change: String,
        /// Why it failed (said in the message, so not a `source`).
        why: Box<apply::ChangeError>,
        /// What the rollback did.
        rollback: String,
    },
    /// The journal is not one vmbench can trust: restore uses nothing in it.
    #[error(
        "refusing the isolation journal {path}: {why}. Nothing was restored from it; if you know what it holds, restore those values by hand and delete it"
    )]
    UntrustedJournal {
        /// The journal.
        path: String,
        /// What is wrong with it.
        why: String,
    },
    /// Another vmbench holds the host.
    #[error(
        "another vmbench is changing this host: {holder} holds {lock}. Wait for it to end, or stop it (on SIGTERM it restores the host and exits)"
    )]
    Busy {
        /// The lock file.
        lock: String,
        /// Who holds it.
        holder: String,
    },
    /// A restore was asked for while another vmbench holds the host.
    #[error(
        "refusing to restore while {holder} holds the host ({lock}): that vmbench restores it itself when it ends. `vmbench isolate restore --force` restores now anyway"
    )]
    RestoreWhileHeld {
        /// The lock file.
        lock: String,
        /// Who holds it.
        holder: String,
    },
    /// Signals could not be blocked, waited for or unblocked.
    #[error("{what}")]
    Signals {
        /// What was being done.
        what: &'static str,
        /// Why it failed.
        #[source]
        source: nix::Error,
    },
    /// Another journal holds live changes.
    #[error(
        "the host is already tuned by the journal {active} ({detail}): restore it first (`{restore}`); applying on top would journal its values as the originals"
    )]
    AnotherJournal {
        /// The command that restores it.
        restore: String,
        /// The active journal.
        active: String,
        /// Its pid and CPUs.
        detail: String,
    },
    /// The state directory or lock file is not usable.
    #[error("vmbench's state at {path}")]
    State {
        /// The file or directory.
        path: String,
        /// What is wrong.
        #[source]
        source: vmbench_host::files::FileError,
    },
    /// The journal could not be read or written.
    #[error("journal {path}: {why}")]
    Journal {
        /// The journal.
        path: String,
        /// What failed.
        why: String,
    },
}

/// What to audit for.
#[derive(Debug, Clone)]
pub struct AuditOptions {
    /// The benchmark CPUs (None: the isolated ones, else the last online CPU).
    pub cpus: Option<CpuList>,
    /// How long to watch for interrupts and runnable threads, and the
    /// residual-noise detector's threshold.
    pub noise: osnoise::NoiseSettings,
    /// Which threads the thread-affinity knob covers (all but in tests).
    pub threads: affinity::ThreadScope,
    /// Threads it leaves alone (other VMs, DPDK/OVS polling threads).
    pub keep: affinity::ThreadExclusion,
}

impl Default for AuditOptions {
    fn default() -> Self {
        AuditOptions {
            cpus: None,
            noise: osnoise::NoiseSettings::window(Duration::from_millis(500)),
            threads: affinity::ThreadScope::All,
            keep: affinity::ThreadExclusion::default(),
        }
    }
}

/// Audits every knob for the benchmark CPUs. Read-only.
pub fn audit(fs: &dyn Sysfs, opts: &AuditOptions) -> Result<Audit, IsolateError> {
    let cmdline = cmdline::Cmdline::parse(&fs.read("/proc/cmdline").unwrap_or_default());
    let cpus = cpus::select(fs, &cmdline, opts.cpus.as_ref())?;
    let mask_width = cpus::mask_width(fs, &cpus.online);
    let ctx = knobs::Ctx {
        fs,
        cmdline,
        cpus: cpus.clone(),
        mask_width,
        live: fs.root().is_host(),
        noise: opts.noise,
        threads: opts.threads.clone(),
        keep: opts.keep.clone(),
    };
    Ok(Audit {
        schema_version: model::ISOLATE_SCHEMA_VERSION,
        root: fs.root().root().display().to_string(),
        cpus,
        privileges: privileges::current(),
        knobs: knobs::audit_all(&ctx),
    })
}
