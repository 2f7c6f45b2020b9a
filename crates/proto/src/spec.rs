//! What the guest agent reports about the guest (`Command::GetSpec`, as JSON).
//! The host parses it from an untrusted copy: every field is plain data.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GuestSpec {
    pub agent_version: String,
    pub protocol_version: u32,
    pub kernel_release: String,
    pub kernel_version: String,
    pub cmdline: String,
    pub cpu_vendor: String,
    pub cpu_model_name: String,
    /// Flags that matter for timing, as the guest sees them (`+flag` / `-flag`).
    pub cpu_flags: Vec<String>,
    /// CPUID 40000000H signature ("KVMKVMKVM", "TCGTCGTCGTCG", …), if any.
    pub hypervisor: Option<String>,
    pub clocksource: String,
    /// The guest kernel's TSC frequency from its boot log (kHz), if it logged one.
    pub tsc_khz_kernel: Option<f64>,
    /// RDTSC calibrated against the guest's CLOCK_MONOTONIC_RAW (kHz).
    pub tsc_khz_calibrated: Option<f64>,
    /// Median TSC ticks between two back-to-back RDTSCs; thousands mean RDTSC exits.
    pub rdtsc_ticks_p50: u64,
    /// The agent's verdict on RDTSC interception, in words.
    pub rdtsc_exiting: String,
    pub online_cpus: u32,
    pub mem_total_kib: u64,
    /// How the shared memory is mapped: "wb" (vmbench module), "uc" (sysfs
    /// resource2), "wc" (resource2_wc) or "file" (not in a VM).
    pub mapping: String,
    /// Why the mapping is not write-back, when it is not.
    pub mapping_note: Option<String>,
    pub shm_bytes: u64,
    pub pci_address: Option<String>,
    /// BAR0 IVPosition: this guest's peer id (doorbell mode), if known.
    pub iv_position: Option<u32>,
    /// MSI-X vectors of the ivshmem device (0 for ivshmem-plain).
    pub msix_vectors: u32,
    /// Guest uptime when the agent answered the handshake (ms since kernel start).
    pub uptime_at_ready_ms: u64,
}
