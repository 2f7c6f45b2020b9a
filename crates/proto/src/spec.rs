//! What the guest agent reports about the guest (`Command::GetSpec`, as JSON).
//! The host parses it from an untrusted copy: every field is plain data.

use serde::{Deserialize, Serialize};

/// How the guest maps the shared memory.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Mapping {
    /// Write-back, through the vmbench module (struct pages for BAR2).
    #[default]
    Wb,
    /// Uncached (UC-): sysfs `resource2`, what a plain mmap of the BAR gives.
    Uc,
    /// Write-combining: sysfs `resource2_wc`.
    Wc,
    /// A file, not a PCI BAR: both ends on the host (`--loopback`, tests).
    File,
    /// The OS-free micro-guest's page tables map BAR2 at its physical
    /// address; the memory type comes from the firmware's MTRRs.
    Identity,
}

impl Mapping {
    /// The comparison arms of the shm suite, each in a guest of its own.
    pub const ARMS: [Mapping; 2] = [Mapping::Uc, Mapping::Wc];

    /// As on the kernel cmdline (`vmbench.mapping=`) and in measurement ids.
    pub fn id(self) -> &'static str {
        match self {
            Mapping::Wb => "wb",
            Mapping::Uc => "uc",
            Mapping::Wc => "wc",
            Mapping::File => "file",
            Mapping::Identity => "identity",
        }
    }
}

impl Mapping {
    /// How Linux's PAT tracking names this memory type (`pat_memtype_list`).
    pub fn pat_names(self) -> &'static [&'static str] {
        match self {
            Mapping::Wb => &["write-back"],
            Mapping::Uc => &["uncached-minus", "uncached"],
            Mapping::Wc => &["write-combining"],
            Mapping::File | Mapping::Identity => &[],
        }
    }
}

impl GuestSpec {
    /// When the memory type the guest kernel gave the region differs from
    /// the mapping the agent reports: what each says.
    pub fn mapping_mismatch(&self) -> Option<String> {
        // Only the agent's own PTE is the mapping's type; the kernel's
        // reservation of the BAR is its view of the physical range.
        let pte = self.mapping_pte.as_deref()?;
        let names = self.mapping.pat_names();
        if names.is_empty() {
            return None;
        }
        (!names.contains(&pte)).then(|| {
            format!(
                "the guest reports a {} mapping of the region, but its own page-table entry says otherwise: {}",
                self.mapping,
                self.mapping_observed.as_deref().unwrap_or(pte)
            )
        })
    }
}

impl std::fmt::Display for Mapping {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.id())
    }
}

/// What the guest agent reports about its guest (`GET_SPEC`), for the report.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct GuestSpec {
    /// The agent's name and version (`vmbench 0.1.0`, `micro-guest 0.1.0`).
    pub agent_version: String,
    /// The protocol version the agent speaks.
    pub protocol_version: u32,
    /// `uname -r` (the micro-guest: none).
    pub kernel_release: String,
    /// `uname -v`.
    pub kernel_version: String,
    /// The guest kernel's command line.
    pub cmdline: String,
    /// CPUID vendor string as the guest sees it.
    pub cpu_vendor: String,
    /// CPUID brand string as the guest sees it.
    pub cpu_model_name: String,
    /// Flags that matter for timing, as the guest sees them (`+flag` / `-flag`).
    pub cpu_flags: Vec<String>,
    /// CPUID 40000000H signature ("KVMKVMKVM", "TCGTCGTCGTCG", …), if any.
    pub hypervisor: Option<String>,
    /// The guest kernel's clocksource (`tsc`, `kvm-clock`, ...).
    pub clocksource: String,
    /// The guest kernel's TSC frequency from its boot log (kHz), if it logged one.
    pub tsc_khz_kernel: Option<f64>,
    /// RDTSC calibrated against the guest's CLOCK_MONOTONIC_RAW (kHz).
    pub tsc_khz_calibrated: Option<f64>,
    /// Median TSC ticks between two back-to-back RDTSCs; thousands mean RDTSC exits.
    pub rdtsc_ticks_p50: u64,
    /// The agent's verdict on RDTSC interception, in words.
    pub rdtsc_exiting: String,
    /// CPUs online in the guest.
    pub online_cpus: u32,
    /// The guest's MemTotal.
    pub mem_total_kib: u64,
    /// How the shared memory is mapped.
    pub mapping: Mapping,
    /// Why the mapping is not write-back, when it is not.
    pub mapping_note: Option<String>,
    /// The memory type the guest kernel's PAT tracking gave the region, as
    /// observed (not as asserted by what mapped it), or why it could not be.
    #[serde(default)]
    pub mapping_observed: Option<String>,
    /// The memory type of the agent's own page-table entry for the region,
    /// as Linux's PAT names it (`write-back`, `uncached-minus`,
    /// `write-combining`), when it was read (through the vmbench module).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mapping_pte: Option<String>,
    /// The shared region's size in bytes.
    pub shm_bytes: u64,
    /// The ivshmem device's PCI address, when found on PCI.
    pub pci_address: Option<String>,
    /// BAR0 IVPosition: this guest's peer id (doorbell mode), if known.
    pub iv_position: Option<u32>,
    /// MSI-X vectors of the ivshmem device (0 for ivshmem-plain).
    pub msix_vectors: u32,
    /// Guest uptime when the agent answered the handshake (ms since kernel start).
    pub uptime_at_ready_ms: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mapping_the_pat_contradicts_is_named() {
        // What the agent writes: the PTE's type when it read one, and the
        // sentence for the report.
        let spec = |mapping, observed: Option<&str>| GuestSpec {
            mapping,
            mapping_observed: observed.map(String::from),
            mapping_pte: observed
                .and_then(|o| o.strip_prefix("user PTE: "))
                .and_then(|o| o.split(';').next())
                .map(String::from),
            ..GuestSpec::default()
        };
        let kernel = "; kernel reservation of the BAR: uncached-minus (PAT memtype list: x)";
        let wb = format!("user PTE: write-back{kernel}");
        assert_eq!(spec(Mapping::Wb, Some(&wb)).mapping_mismatch(), None);
        // The kernel's reservation alone is not the mapping's type.
        let unseen = format!("user PTE not observed: ENOTTY{kernel}");
        assert_eq!(spec(Mapping::Wb, Some(&unseen)).mapping_mismatch(), None);
        assert_eq!(spec(Mapping::Wb, None).mapping_mismatch(), None);
        let uc = format!("user PTE: uncached-minus{kernel}");
        let w = spec(Mapping::Wb, Some(&uc)).mapping_mismatch().unwrap();
        assert!(
            w.contains("wb mapping") && w.contains("user PTE: uncached-minus"),
            "{w}"
        );
        let uc_ok = format!("user PTE: uncached-minus{kernel}");
        assert_eq!(spec(Mapping::Uc, Some(&uc_ok)).mapping_mismatch(), None);
        // The sentence alone decides nothing.
        let words_only = GuestSpec {
            mapping: Mapping::Wb,
            mapping_observed: Some(uc),
            ..GuestSpec::default()
        };
        assert_eq!(words_only.mapping_mismatch(), None);
    }
}
