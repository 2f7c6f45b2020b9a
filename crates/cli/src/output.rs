//! What the suite commands print with `--json`, as types: each a
//! `schema_version` and a JSON Schema (`vmbench report schema OUTPUT`).
//! results.json, `compare`, `info`, `isolate check|suggest` and `image
//! build` have theirs in the libraries that write them.

use serde::Serialize;
use vmbench_proto::spec::GuestSpec;
use vmbench_results::{Accel, Pinning, Results};

/// Version of [`VmexitOutput`]'s shape.
pub const VMEXIT_SCHEMA_VERSION: u32 = 1;
/// Version of [`ShmOutput`]'s shape.
pub const SHM_SCHEMA_VERSION: u32 = 1;
/// Version of [`BootOutput`]'s shape.
pub const BOOT_SCHEMA_VERSION: u32 = 1;

/// `vmbench vmexit --json`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct VmexitOutput {
    /// [`VMEXIT_SCHEMA_VERSION`] at the time of writing.
    pub schema_version: u32,
    /// The accelerator the guest ran under.
    pub accel: Accel,
    /// `qemu --version`'s first line, when read.
    pub qemu_version: Option<String>,
    /// QEMU's command line.
    pub qemu_command_line: String,
    /// What the guest agent reported about the guest.
    pub guest: GuestSpec,
    /// The rows, as results.json's `results`.
    pub results: Results,
}

/// `vmbench shm --json` (loopback or in a VM).
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct ShmOutput {
    /// [`SHM_SCHEMA_VERSION`] at the time of writing.
    pub schema_version: u32,
    /// Where the two ends ran: `loopback` or `VM (<accelerator>)`.
    pub setting: String,
    /// The rows, as results.json's `results`.
    pub results: Results,
    /// What the guest end reported when stopped (absent when it did not).
    pub guest: Option<vmbench_shm::guest::GuestSummary>,
    /// Why the suite stopped early, when it did (its rows so far are kept).
    pub error: Option<String>,
}

/// `vmbench vm boot --json`.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub struct BootOutput {
    /// [`BOOT_SCHEMA_VERSION`] at the time of writing.
    pub schema_version: u32,
    /// The accelerator the guest ran under.
    pub accel: Accel,
    /// Why not the accelerator asked for, when it was not.
    pub accel_warning: Option<String>,
    /// The QEMU binary.
    pub qemu: String,
    /// `qemu --version`'s first line, when read.
    pub qemu_version: Option<String>,
    /// QEMU's command line.
    pub command_line: String,
    /// The guest's memory.
    pub memory_mib: u32,
    /// (vCPU index, host thread id), from QMP `query-cpus-fast`.
    pub vcpu_threads: Vec<(u32, u32)>,
    /// Where the vCPU threads were pinned (`--pin-cpus`).
    pub pinning: Option<Pinning>,
    /// QEMU start to QMP answering, ms.
    pub qemu_start_to_qmp_ms: f64,
    /// QEMU start to the agent's handshake, ms.
    pub qemu_start_to_ready_ms: f64,
    /// What the guest agent reported about the guest.
    pub guest: GuestSpec,
}

/// The `--json` outputs that have a schema, for `vmbench report schema`.
#[derive(Debug, Clone, Copy, Default, clap::ValueEnum)]
pub enum Output {
    /// results.json (docs/results.schema.json).
    #[default]
    Results,
    /// `vmbench compare --json`.
    Compare,
    /// `vmbench vmexit --json`.
    Vmexit,
    /// `vmbench shm --json`.
    Shm,
    /// `vmbench vm boot --json`.
    VmBoot,
    /// `vmbench info --json`.
    Info,
    /// `vmbench isolate check --json`.
    IsolateCheck,
    /// `vmbench isolate suggest --json`.
    IsolateSuggest,
    /// `vmbench image build --json` (and the image's manifest.json).
    ImageBuild,
}

impl Output {
    /// Its JSON Schema.
    pub fn schema(self) -> serde_json::Value {
        let schema = match self {
            Output::Results => return vmbench_results::results_json_schema(),
            Output::Compare => schemars::schema_for!(vmbench_publish::compare::ComparisonOutput),
            Output::Vmexit => schemars::schema_for!(VmexitOutput),
            Output::Shm => schemars::schema_for!(ShmOutput),
            Output::VmBoot => schemars::schema_for!(BootOutput),
            Output::Info => schemars::schema_for!(vmbench_host::HostSpec),
            Output::IsolateCheck => schemars::schema_for!(vmbench_isolate::Audit),
            Output::IsolateSuggest => schemars::schema_for!(vmbench_isolate::suggest::Suggestion),
            Output::ImageBuild => schemars::schema_for!(vmbench_vm::image::ImageManifest),
        };
        serde_json::to_value(schema).unwrap_or_default()
    }
}
