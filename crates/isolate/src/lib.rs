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

pub mod apply;
pub mod cmdline;
pub mod cpus;
pub mod journal;
pub mod knobs;
pub mod model;
pub mod noise;
pub mod pin;
pub mod privileges;
pub mod suggest;
pub mod sysfs;

pub use model::{Audit, KnobClass, KnobReport, Verdict};

use std::time::Duration;
use sysfs::Sysfs;
use vmbench_host::CpuList;

#[derive(Debug, thiserror::Error)]
pub enum IsolateError {
    #[error("cannot tell which CPUs are online")]
    Online(#[source] vmbench_host::ReadError),
    #[error("/sys/devices/system/cpu/online")]
    OnlineList(#[source] vmbench_host::CpuListError),
    #[error(
        "only CPU(s) {0} are online: isolation needs at least two, one for the benchmark and one for housekeeping"
    )]
    TooFewOnline(CpuList),
    #[error("--cpus is empty: name at least one CPU")]
    NoCpus,
    #[error("--cpus {requested}: CPU(s) {offline} are not online (online: {online})")]
    Offline {
        requested: CpuList,
        offline: CpuList,
        online: CpuList,
    },
    #[error(
        "--cpus {bench} takes every online CPU: leave at least one for housekeeping (online: {online})"
    )]
    NoHousekeeping { bench: CpuList, online: CpuList },
    #[error("--skip: unknown knob(s) {}; runtime knobs are: {}", .unknown.join(", "), .known.join(", "))]
    UnknownKnobs {
        unknown: Vec<String>,
        known: Vec<String>,
    },
    #[error(
        "an unrestored isolation journal exists at {path} (pid {pid}, {entries} change(s)): run `vmbench isolate restore` first (with the same --root/--journal)"
    )]
    Unrestored {
        path: String,
        pid: u32,
        entries: usize,
    },
    #[error("refusing to apply, nothing changed: unexpected current value(s):\n  {}", .0.join("\n  "))]
    InvalidValues(Vec<String>),
    #[error("check-only: these changes are blocked, nothing changed:\n  {}\n(run as root, or --skip the knobs listed)", .0.join("\n  "))]
    Blocked(Vec<String>),
    #[error("applying `{change}` failed: {why}; {rollback}")]
    ApplyFailed {
        change: String,
        why: String,
        rollback: String,
    },
    #[error("journal {path}: {why}")]
    Journal { path: String, why: String },
}

impl IsolateError {
    /// 2 for usage/environment errors (nothing changed), 1 for a failed apply.
    pub fn exit_code(&self) -> u8 {
        match self {
            IsolateError::ApplyFailed { .. } => 1,
            _ => 2,
        }
    }
}

#[derive(Debug, Clone)]
pub struct AuditOptions {
    pub cpus: Option<CpuList>,
    pub noise_window: Duration,
}

impl Default for AuditOptions {
    fn default() -> Self {
        AuditOptions {
            cpus: None,
            noise_window: Duration::from_millis(500),
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
        noise_window: opts.noise_window,
    };
    Ok(Audit {
        schema_version: model::ISOLATE_SCHEMA_VERSION,
        root: fs.root().root().display().to_string(),
        cpus,
        privileges: privileges::current(),
        knobs: knobs::audit_all(&ctx),
    })
}
