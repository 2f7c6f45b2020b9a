//! One run as published: `results.json` of an output directory. Everything
//! `report.md` shows is rendered from this, so a reader can re-render and
//! trace every figure.

use crate::model::Results;
use serde::{Deserialize, Serialize};

/// Version of the JSON shape of [`RunRecord`]. Bump on any incompatible change.
pub const RUN_SCHEMA_VERSION: u32 = 3;

/// The JSON Schema (draft 2020-12) of `results.json`, generated from
/// [`RunRecord`] and its field docs: what `vmbench report schema` prints and
/// docs/results.schema.json holds.
pub fn results_json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(RunRecord)).unwrap_or_default()
}

/// The accelerator a guest ran under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
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

/// The vmbench build that ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct BuildRecord {
    /// The crate version.
    pub version: String,
    /// The git commit it was built from (`unknown` when built outside a
    /// checkout without `VMBENCH_COMMIT`).
    pub commit: String,
    /// A tracked file differed from that commit.
    pub dirty: bool,
    /// `rustc --version` of the compiler.
    pub rustc: String,
}

/// Everything a run wrote about itself: `results.json` in the report directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RunRecord {
    /// [`RUN_SCHEMA_VERSION`] at the time of writing.
    pub schema_version: u32,
    /// The vmbench version that ran.
    pub vmbench_version: String,
    /// The build that ran: commit, dirty flag, rustc. None in records
    /// written before it was recorded.
    #[serde(default)]
    pub build: Option<BuildRecord>,
    /// The command that reproduces the run (as typed, less `--sign KEY`).
    pub command: String,
    /// UTC start time (shown once, outside any table).
    pub started_utc: String,
    /// The accelerator of the guests when they all ran under one; None when
    /// no guest booted or they differ (then `guests` says which ran where).
    #[serde(deserialize_with = "accel_or_none")]
    pub accel: Option<Accel>,
    /// `linux` or `micro`: the VM-exit suite's guest.
    pub guest_flavour: String,
    /// Every guest that ran a suite: its kind, accelerator, specification and
    /// QEMU. Empty in records written before it existed.
    #[serde(default)]
    pub guests: Vec<GuestRecord>,
    /// Suites asked for, in order (`vmexit`, `shm`).
    pub suites: Vec<crate::Suite>,
    /// False when a suite ended early; `incomplete` says why.
    pub complete: bool,
    /// Why the run is incomplete (which suite ended early, and how).
    #[serde(default)]
    pub incomplete: Vec<crate::Incomplete>,
    /// The host specification as `vmbench info` prints it: (section, key, value).
    pub host_rows: Vec<SpecRow>,
    /// The host specification (`vmbench info --json`; docs/info-schema.md).
    pub host: vmbench_host::HostSpec,
    /// The main guest's specification (the Linux guest's when one ran), when
    /// a guest booted; every guest's is in `guests`.
    #[serde(default)]
    pub guest: Option<vmbench_proto::spec::GuestSpec>,
    /// The main guest's QEMU, when one ran; every guest's is in `guests`.
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
    pub pinning: Option<Pinning>,
    /// The residual noise measured on each benchmark CPU, before and after
    /// isolation (empty when not measured: a fixture root, or an older record).
    #[serde(default)]
    pub residual_noise: Vec<crate::CpuNoise>,
    /// Load, runnable threads and thermal throttling around each suite.
    #[serde(default)]
    pub suite_context: Vec<crate::SuiteContext>,
    /// The suites' measurements, skips, checks and warnings.
    pub results: Results,
}

/// Which guest boots.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum GuestKind {
    /// The Linux guest (image from `vmbench image build` or `nix build .#guest-image`).
    #[default]
    Linux,
    /// The OS-free micro-guest (a PVH ELF; no guest interrupts or scheduler).
    Micro,
}

impl std::fmt::Display for GuestKind {
    /// The guest's id, as results.json and the config write it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            GuestKind::Linux => "linux",
            GuestKind::Micro => "micro",
        })
    }
}

/// Suite ids joined with `sep` (`vmexit, shm`).
pub fn suite_names(suites: &[crate::Suite], sep: &str) -> String {
    suites
        .iter()
        .map(|s| s.name())
        .collect::<Vec<_>>()
        .join(sep)
}

impl GuestKind {
    /// The guest's name in messages and reports.
    pub fn name(self) -> &'static str {
        match self {
            GuestKind::Linux => "Linux",
            GuestKind::Micro => "micro",
        }
    }
}

/// One guest of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct GuestRecord {
    /// The suites it ran (`vmexit`, `shm`).
    pub suites: Vec<crate::Suite>,
    /// `linux` or `micro`.
    pub kind: GuestKind,
    /// The accelerator it ran under.
    pub accel: Accel,
    /// The guest agent's specification.
    pub spec: vmbench_proto::spec::GuestSpec,
    /// Its QEMU: path, version and command line.
    pub qemu: Option<QemuRecord>,
}

/// One row of the host specification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SpecRow {
    /// The section (`CPU`, `memory`, `kernel`, ...).
    pub section: String,
    /// The key within the section.
    pub key: String,
    /// The value, as `vmbench info` prints it.
    pub value: String,
}

/// The QEMU a run used.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct QemuRecord {
    /// The binary's path.
    pub path: String,
    /// `qemu-system-x86_64 --version`'s first line, when it answered.
    pub version: Option<String>,
    /// The Nix store path, when QEMU came from the flake.
    #[serde(default)]
    pub store_path: Option<String>,
    /// The whole command line the guests were started with.
    pub command_line: String,
}

/// One isolation knob: what was wanted, found and done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct KnobRecord {
    /// The knob's id (`vmbench isolate check` lists them; host-tuning/README.md says what each is).
    pub knob: crate::KnobId,
    /// Its class: `boot` (kernel command line), `runtime` (applied and restored), `held` (held while the run lasts), `noise` (only observed).
    pub kind: crate::KnobClass,
    /// The value the run wants.
    pub wanted: String,
    /// The value found before the run.
    pub found: String,
    /// The audit's verdict: `ok`, `n/a`, `WARN` or `FAIL`.
    pub verdict: crate::Verdict,
    /// What the run changed it to, if it changed it.
    #[serde(default)]
    pub changed_to: Option<String>,
    /// What became of the change: `unchanged` (the run changed nothing), `restored`, or `failed` with the errors.
    pub restored: crate::RestoreState,
}

impl RunRecord {
    /// Why the run is incomplete, in sentences (empty when complete).
    pub fn incomplete_text(&self) -> String {
        let why: Vec<String> = self.incomplete.iter().map(ToString::to_string).collect();
        why.join("; ")
    }

    /// A host spec value by its section and key as `vmbench info` names them
    /// (e.g. `("cpu", "model name")`, `("kernel", "release")`).
    pub fn host_value(&self, section: &str, key: &str) -> Option<&str> {
        self.host_rows
            .iter()
            .find(|r| r.section == section && r.key == key)
            .map(|r| r.value.as_str())
    }

    /// The accelerator as the report shows it: one name, or each guest's
    /// when they differ.
    pub fn accel_label(&self) -> String {
        if self.is_mixed() {
            return self
                .guests
                .iter()
                .map(|g| {
                    format!(
                        "{} ({}: {} guest)",
                        g.accel.name(),
                        suite_names(&g.suites, ", "),
                        g.kind
                    )
                })
                .collect::<Vec<_>>()
                .join(", ");
        }
        match self.accel.or_else(|| self.guests.first().map(|g| g.accel)) {
            Some(a) => a.name().to_string(),
            None => "none (no guest booted)".to_string(),
        }
    }

    /// The label a run whose guests all ran under TCG carries first, in
    /// the report and on the console.
    pub const TCG_RUN: &'static str = "TCG run — not a KVM measurement.";

    /// True when no number is a VM exit: every guest ran under TCG.
    pub fn is_tcg(&self) -> bool {
        if self.guests.is_empty() {
            return self.accel == Some(Accel::Tcg);
        }
        self.guests.iter().all(|g| g.accel == Accel::Tcg)
    }

    /// True when the guests ran under different accelerators (e.g. the
    /// micro-guest under KVM and the Linux guest under TCG).
    pub fn is_mixed(&self) -> bool {
        self.guests.iter().any(|g| g.accel == Accel::Tcg)
            && self.guests.iter().any(|g| g.accel == Accel::Kvm)
    }

    /// The guest that ran `suite` (none in a record from before `guests`,
    /// or a run without a guest).
    pub fn guest_of(&self, suite: crate::Suite) -> Option<&GuestRecord> {
        self.guests.iter().find(|g| g.suites.contains(&suite))
    }

    /// The suites whose guests ran under TCG.
    pub fn tcg_suites(&self) -> Vec<crate::Suite> {
        self.guests
            .iter()
            .filter(|g| g.accel == Accel::Tcg)
            .flat_map(|g| g.suites.iter().copied())
            .collect()
    }
}

/// Where the guest's threads were pinned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Pinning {
    /// Each vCPU's thread and the CPU it was pinned to, in vCPU order.
    pub vcpus: Vec<PinnedVcpu>,
    /// The CPUs QEMU's other threads were confined to.
    pub housekeeping: vmbench_host::CpuList,
}

/// One vCPU thread and its CPU.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PinnedVcpu {
    /// The thread id (differs on every run).
    pub tid: u32,
    /// The CPU it was pinned to.
    pub cpu: u32,
}

impl Pinning {
    /// The CPUs the vCPUs ran on: what two runs of one host compare by
    /// (thread ids differ on every run).
    pub fn vcpu_cpus(&self) -> vmbench_host::CpuList {
        vmbench_host::CpuList::from_cpus(self.vcpus.iter().map(|v| v.cpu))
    }
}

impl std::fmt::Display for Pinning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tids: Vec<String> = self.vcpus.iter().map(|v| v.tid.to_string()).collect();
        write!(
            f,
            "vCPU thread(s) {} → CPU {}; QEMU's other threads → CPUs {}",
            tids.join(","),
            self.vcpu_cpus(),
            self.housekeeping
        )
    }
}
