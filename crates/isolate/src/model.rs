//! What an audit says about each knob, and what apply would change.

use serde::{Deserialize, Serialize};
use vmbench_host::CpuList;

/// Version of the JSON shape of [`Audit`] and the journal.
pub const ISOLATE_SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KnobClass {
    /// Kernel cmdline: checked and advised, never edited.
    BootOnly,
    /// Changed by `apply`, restored from the journal.
    Runtime,
    /// Held by the applying process while it runs; gone when it exits.
    HeldWhileRunning,
    /// What was actually seen on the benchmark CPUs.
    Noise,
}

impl KnobClass {
    pub fn label(self) -> &'static str {
        match self {
            KnobClass::BootOnly => "boot",
            KnobClass::Runtime => "runtime",
            KnobClass::HeldWhileRunning => "held",
            KnobClass::Noise => "noise",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Ok,
    NotApplicable,
    Warn,
    Fail,
}

impl Verdict {
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::NotApplicable => "n/a",
            Verdict::Warn => "WARN",
            Verdict::Fail => "FAIL",
        }
    }
}

/// One change `apply` would make, with what is there now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Change {
    /// Write `target` to a sysfs/procfs file. `original` is the value to write
    /// back; `original_raw` the exact bytes read (which differ for files the
    /// kernel renders, e.g. THP's `always [madvise] never`).
    File {
        path: String,
        original_raw: String,
        original: String,
        target: String,
    },
    /// Stop a systemd unit that was running (started again on restore).
    StopService { unit: String },
}

impl Change {
    pub fn describe(&self) -> String {
        match self {
            Change::File {
                path,
                original,
                target,
                ..
            } => format!("{path}: {original} -> {target}"),
            Change::StopService { unit } => format!("systemctl stop {unit}"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KnobReport {
    /// Stable id, used by `--skip` and in reports.
    pub id: String,
    pub class: KnobClass,
    pub wanted: String,
    pub found: String,
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
    pub notes: Vec<String>,
}

impl KnobReport {
    pub fn new(id: &str, class: KnobClass, why: &str) -> Self {
        KnobReport {
            id: id.to_string(),
            class,
            wanted: String::new(),
            found: String::new(),
            verdict: Verdict::Ok,
            why: why.to_string(),
            fix: None,
            changes: Vec::new(),
            blocked: Vec::new(),
            invalid: None,
            notes: Vec::new(),
        }
    }
}

/// How the benchmark CPUs were chosen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CpuSelection {
    pub online: CpuList,
    pub bench: CpuList,
    pub housekeeping: CpuList,
    /// e.g. "--cpus", "isolated CPUs (/sys/devices/system/cpu/isolated)".
    pub source: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Privileges {
    pub euid: u32,
    /// Effective capabilities that matter here (CAP_SYS_ADMIN, CAP_SYS_NICE, …).
    pub capabilities: Vec<String>,
    /// Capabilities that are missing and what they block.
    pub missing: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Audit {
    pub schema_version: u32,
    pub root: String,
    pub cpus: CpuSelection,
    pub privileges: Privileges,
    pub knobs: Vec<KnobReport>,
}

impl Audit {
    pub fn worst(&self) -> Verdict {
        self.knobs
            .iter()
            .map(|k| k.verdict)
            .max()
            .unwrap_or(Verdict::Ok)
    }

    pub fn count(&self, v: Verdict) -> usize {
        self.knobs.iter().filter(|k| k.verdict == v).count()
    }

    pub fn knob(&self, id: &str) -> Option<&KnobReport> {
        self.knobs.iter().find(|k| k.id == id)
    }
}
