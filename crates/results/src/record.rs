//! One run as published: `results.json` of an output directory. Everything
//! `report.md` shows is rendered from this, so a reader can re-render and
//! trace every figure.

use crate::model::Results;
use serde::{Deserialize, Serialize};

/// Version of the JSON shape of [`RunRecord`]. Bump on any incompatible change.
pub const RUN_SCHEMA_VERSION: u32 = 1;

/// The accelerator a guest ran under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    /// Hardware virtualization: the figures are VM exits.
    Kvm,
    /// QEMU's software emulation: no VM exits happen.
    Tcg,
}

impl Accel {
    /// `kvm` or `tcg`, as QEMU's `-accel` and the report name it.
    pub fn name(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

/// `accel` of a run in which no guest booted was written as this text
/// before it became an enum; it reads back as None.
fn accel_or_none<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Accel>, D::Error> {
    let v = Option::<String>::deserialize(d)?;
    Ok(match v.as_deref() {
        Some("kvm") => Some(Accel::Kvm),
        Some("tcg") => Some(Accel::Tcg),
        _ => None,
    })
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub schema_version: u32,
    pub vmbench_version: String,
    /// The exact command that reproduces the run.
    pub command: String,
    /// UTC start time (shown once, outside any table).
    pub started_utc: String,
    /// The accelerator of the guests, None when no guest booted.
    #[serde(deserialize_with = "accel_or_none")]
    pub accel: Option<Accel>,
    /// `linux` or `micro`.
    pub guest_flavour: String,
    /// Suites asked for, in order (`vmexit`, `shm`).
    pub suites: Vec<String>,
    /// False when a suite ended early; `incomplete` says why.
    pub complete: bool,
    #[serde(default)]
    pub incomplete: Vec<String>,
    /// The host specification as `vmbench info` prints it: (section, key, value).
    pub host_rows: Vec<SpecRow>,
    /// The host specification as JSON (docs/info-schema.md).
    pub host: serde_json::Value,
    /// The guest agent's specification, when a guest booted.
    #[serde(default)]
    pub guest: Option<serde_json::Value>,
    #[serde(default)]
    pub qemu: Option<QemuRecord>,
    /// Every isolation knob: wanted, found, what was changed and restored.
    #[serde(default)]
    pub isolation: Vec<KnobRecord>,
    /// Isolation remarks (privilege missing, boot-only knobs to fix).
    #[serde(default)]
    pub isolation_notes: Vec<String>,
    /// CPUs the vCPU threads were pinned to, and the housekeeping CPUs.
    #[serde(default)]
    pub pinning: Option<String>,
    pub results: Results,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpecRow {
    pub section: String,
    pub key: String,
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QemuRecord {
    pub path: String,
    pub version: Option<String>,
    /// The Nix store path, when QEMU came from the flake.
    #[serde(default)]
    pub store_path: Option<String>,
    pub command_line: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnobRecord {
    pub knob: String,
    pub kind: String,
    pub wanted: String,
    pub found: String,
    pub verdict: String,
    /// What the run changed it to, if it changed it.
    #[serde(default)]
    pub changed_to: Option<String>,
    /// `restored`, `failed: …`, or empty when nothing was changed.
    #[serde(default)]
    pub restored: String,
}

impl RunRecord {
    /// A host spec value by its section and key as `vmbench info` names them
    /// (e.g. `("cpu", "model name")`, `("kernel", "release")`).
    pub fn host_value(&self, section: &str, key: &str) -> Option<&str> {
        self.host_rows
            .iter()
            .find(|r| r.section == section && r.key == key)
            .map(|r| r.value.as_str())
    }

    /// The accelerator as the report shows it.
    pub fn accel_label(&self) -> &'static str {
        match self.accel {
            Some(a) => a.name(),
            None => "none (no guest booted)",
        }
    }

    /// True when the numbers are not VM exits (software emulation).
    pub fn is_tcg(&self) -> bool {
        self.accel == Some(Accel::Tcg)
    }
}
