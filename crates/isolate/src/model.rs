//! What an audit says about each knob, and what apply would change.

use serde::{Deserialize, Serialize};
use vmbench_host::CpuList;
pub use vmbench_results::{KnobClass, KnobId, Verdict};

/// Version of the JSON shape of [`Audit`] (`vmbench isolate check --json`);
/// 2 names classes and verdicts as the tables print them (`boot`, `WARN`).
pub const ISOLATE_SCHEMA_VERSION: u32 = 2;

/// One change `apply` would make, with what is there now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Change {
    /// Write `target` to a sysfs/procfs file. `original` is the value to write
    /// back; `original_raw` the exact bytes read (which differ for files the
    /// kernel renders, e.g. THP's `always [madvise] never`).
    File {
        /// The file.
        path: String,
        /// The exact bytes read.
        original_raw: String,
        /// The value to write back.
        original: String,
        /// The value to write.
        target: String,
    },
    /// Stop a systemd unit that was running (started again on restore).
    StopService {
        /// The unit.
        unit: String,
    },
    /// Rewrite a service's configuration file, then restart the service
    /// (on restore: the original bytes back, and restart again).
    ServiceConfig {
        /// The unit restarted after the write.
        unit: String,
        /// The configuration file.
        path: String,
        /// Its exact bytes before.
        original_raw: String,
        /// Its bytes after.
        target: String,
    },
    /// Move a thread: set its CPU affinity (on restore: the original back,
    /// if it is still the same thread and still where apply put it).
    Affinity {
        /// Its process.
        pid: u32,
        /// The thread.
        tid: u32,
        /// Its name when journaled.
        comm: String,
        /// Its start time (ticks after boot): a reused tid has another.
        start_time: u64,
        /// The CPU list it had.
        original: String,
        /// The CPU list apply gives it.
        target: String,
    },
}

impl Change {
    /// The change in one line (`path: from -> to`, `systemctl stop unit`).
    pub fn describe(&self) -> String {
        match self {
            Change::File {
                path,
                original,
                target,
                ..
            } => format!("{path}: {original} -> {target}"),
            Change::StopService { unit } => format!("systemctl stop {unit}"),
            Change::ServiceConfig { unit, path, .. } => {
                format!("{path} rewritten, systemctl restart {unit}")
            }
            Change::Affinity {
                tid,
                comm,
                original,
                target,
                ..
            } => format!("thread {tid} ({comm}): cpus {original} -> {target}"),
        }
    }

    /// The change undone, in one line (`path = original`, `systemctl start unit`).
    pub fn describe_restored(&self) -> String {
        match self {
            Change::File { path, original, .. } => format!("{path} = {original}"),
            Change::StopService { unit } => format!("systemctl start {unit}"),
            Change::ServiceConfig { unit, path, .. } => {
                format!("{path} put back, {unit} restarted")
            }
            Change::Affinity {
                tid,
                comm,
                original,
                ..
            } => format!("thread {tid} ({comm}): cpus {original}"),
        }
    }
}

/// One knob: what is wanted, what is there, and what apply would do.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct KnobReport {
    /// Stable id, used by `--skip` and in reports.
    pub id: KnobId,
    /// Its class.
    pub class: KnobClass,
    /// The value wanted.
    pub wanted: String,
    /// The value found.
    pub found: String,
    /// The verdict.
    pub verdict: Verdict,
    /// Why it matters for VM-exit and shared-memory timing.
    pub why: String,
    /// How to fix it, when the verdict is not ok.
    pub fix: Option<String>,
    /// What `apply` would change (runtime knobs that are not ok).
    pub changes: Vec<Change>,
    /// Why `apply` could not make those changes here (privilege, read-only fs).
    pub blocked: Vec<String>,
    /// The current value could not be understood: apply refuses to touch it.
    pub invalid: Option<String>,
    /// Further remarks (what was seen, what could not be checked).
    pub notes: Vec<String>,
    /// The residual noise measured per benchmark CPU (`residual_noise` only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub noise: Vec<vmbench_results::CpuNoise>,
}

impl KnobReport {
    /// A knob with verdict ok and nothing to change yet; its class and
    /// why from the catalogue.
    pub fn new(id: KnobId) -> Self {
        let knob = crate::catalogue::knob(id);
        KnobReport {
            id,
            class: knob.class,
            wanted: String::new(),
            found: String::new(),
            verdict: Verdict::Ok,
            why: knob.why.to_string(),
            fix: None,
            changes: Vec::new(),
            blocked: Vec::new(),
            invalid: None,
            notes: Vec::new(),
            noise: Vec::new(),
        }
    }
}

/// How the benchmark CPUs were chosen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CpuSelection {
    /// The online CPUs.
    pub online: CpuList,
    /// The benchmark CPUs (the vCPUs run here).
    pub bench: CpuList,
    /// The housekeeping CPUs (everything else runs here).
    pub housekeeping: CpuList,
    /// e.g. "--cpus", "isolated CPUs (/sys/devices/system/cpu/isolated)".
    pub source: String,
}

impl CpuSelection {
    /// `mask` without the benchmark CPUs; the housekeeping CPUs if nothing
    /// is left.
    pub fn off_bench(&self, mask: &CpuList) -> CpuList {
        let rest = mask.difference(&self.bench);
        if rest.is_empty() {
            self.housekeeping.clone()
        } else {
            rest
        }
    }
}

/// Who is running, and what that allows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Privileges {
    /// The effective user id.
    pub euid: u32,
    /// Effective capabilities that matter here (CAP_SYS_ADMIN, CAP_SYS_NICE, …).
    pub capabilities: Vec<String>,
    /// Capabilities that are missing and what they block.
    pub missing: Vec<String>,
}

/// What `vmbench isolate check` reports (JSON: `--json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Audit {
    /// [`ISOLATE_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The root /proc and /sys were read under.
    pub root: String,
    /// The CPUs.
    pub cpus: CpuSelection,
    /// The privileges.
    pub privileges: Privileges,
    /// Every knob.
    pub knobs: Vec<KnobReport>,
}

impl Audit {
    /// The worst verdict of any knob.
    pub fn worst(&self) -> Verdict {
        self.knobs
            .iter()
            .map(|k| k.verdict)
            .max()
            .unwrap_or(Verdict::Ok)
    }

    /// How many knobs have verdict `v`.
    pub fn count(&self, v: Verdict) -> usize {
        self.knobs.iter().filter(|k| k.verdict == v).count()
    }

    /// The knob with this id.
    pub fn knob(&self, id: KnobId) -> Option<&KnobReport> {
        self.knobs.iter().find(|k| k.id == id)
    }
}
