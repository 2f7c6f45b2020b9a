//! The guest specification the agent reports.

use std::time::Duration;
use vmbench_host::cpuinfo;
use vmbench_host::spec::FLAGS_OF_INTEREST;
use vmbench_host::tsc;
use vmbench_proto::GuestSpec;

/// Facts about the shared-memory mapping, filled in by the agent.
#[derive(Debug, Clone, Default)]
pub struct MappingFacts {
    /// How the region is mapped.
    pub mapping: vmbench_proto::Mapping,
    /// Why it is not write-back, when it is not.
    pub note: Option<String>,
    /// The region's size.
    pub shm_bytes: u64,
    /// The ivshmem device's PCI address.
    pub pci_address: Option<String>,
    /// BAR0 IVPosition (doorbell mode).
    pub iv_position: Option<u32>,
    /// MSI-X vectors (0 for ivshmem-plain).
    pub msix_vectors: u32,
    /// BAR2's physical address, when the region is the PCI BAR.
    pub bar2_phys: Option<u64>,
    /// The cache mode of the agent's own PTE for the region (through the
    /// module), or why it could not be read.
    pub pte_mode: Option<Result<&'static str, nix::Error>>,
}

fn read(path: &str) -> String {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// The TSC frequency the guest kernel logged ("Refined TSC clocksource
/// calibration" wins over "Detected"), from /dev/kmsg.
pub fn tsc_khz_from_kernel_log() -> Option<f64> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open("/dev/kmsg")
        .ok()?;
    let mut detected = None;
    let mut refined = None;
    let mut buf = vec![0u8; 8192];
    // One record per read; EAGAIN at the end of the buffer.
    for _ in 0..100_000 {
        let n = match f.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let line = String::from_utf8_lossy(&buf[..n]);
        let msg = line.split_once(';').map(|x| x.1).unwrap_or("");
        let mhz = |prefix: &str| -> Option<f64> {
            let rest = msg.split(prefix).nth(1)?;
            rest.split_whitespace().next()?.parse::<f64>().ok()
        };
        if let Some(m) = mhz("Refined TSC clocksource calibration: ") {
            refined = Some(m * 1000.0);
        } else if let Some(m) = mhz("tsc: Detected ") {
            detected = Some(m * 1000.0);
        }
    }
    refined.or(detected)
}

/// Median ticks between two back-to-back RDTSCs.
pub fn rdtsc_back_to_back_p50() -> u64 {
    let mut d: Vec<u64> = (0..4001)
        .map(|_| {
            let a = tsc::rdtsc();
            let b = tsc::rdtsc();
            b.wrapping_sub(a)
        })
        .collect();
    d.sort_unstable();
    d[d.len() / 2]
}

/// What the mapping's memory type was seen to be: the agent's own PTE (what
/// the CPU is told for every access the suite makes), then the kernel's
/// reservation of the BAR (its MTRR-adjusted view of the physical range).
fn observed_mapping(m: &MappingFacts) -> Option<String> {
    let pte = match &m.pte_mode {
        Some(Ok(mode)) => format!("user PTE: {mode}"),
        Some(Err(why)) => format!("user PTE not observed: VMBENCH_IOC_MEMTYPE: {why}"),
        None => "user PTE not observed (no vmbench module for this mapping)".into(),
    };
    let reservation = m.bar2_phys.map(|phys| {
        format!(
            "kernel reservation of the BAR: {}",
            observed_memtype(&read_raw(PAT_MEMTYPES), phys, m.shm_bytes)
        )
    })?;
    Some(format!("{pte}; {reservation}"))
}

/// The kernel's list of PAT memory types by physical range (debugfs).
const PAT_MEMTYPES: &str = "/sys/kernel/debug/x86/pat_memtype_list";

fn read_raw(path: &str) -> std::io::Result<String> {
    std::fs::read_to_string(path)
}

/// The memory type the kernel's PAT tracking gave the range `[phys,
/// phys+len)`, from `pat_memtype_list` lines such as
/// `PAT: [mem 0x00000000fd000000-0x00000000fd3fffff] write-back`: what the
/// mapping is, observed rather than asserted by whoever mapped it.
pub fn observed_memtype(list: &std::io::Result<String>, phys: u64, len: u64) -> String {
    let text = match list {
        Ok(t) => t,
        Err(why) => return format!("not observed: {PAT_MEMTYPES}: {why}"),
    };
    let end = phys.saturating_add(len.max(1) - 1);
    // Every entry that overlaps the range: more than one (a reservation of
    // the whole BAR and another of its pages) is itself worth seeing.
    let found: Vec<String> = text
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("PAT: [mem ")?;
            let (range, kind) = rest.split_once("] ")?;
            let (a, b) = range.split_once('-')?;
            let parse = |h: &str| u64::from_str_radix(h.trim_start_matches("0x"), 16).ok();
            let (a, b) = (parse(a)?, parse(b)?);
            (a <= end && phys <= b).then(|| format!("{} (PAT memtype list: {range})", kind.trim()))
        })
        .collect();
    if found.is_empty() {
        return format!("not observed: no entry of {PAT_MEMTYPES} covers {phys:#x}-{end:#x}");
    }
    found.join("; ")
}

/// Above this many ticks per back-to-back pair, RDTSC is taking an exit.
pub const RDTSC_EXIT_THRESHOLD: u64 = 1000;

/// The guest's specification from /proc, /sys, CPUID and the TSC, plus what the agent learned about the mapping.
pub fn collect(m: &MappingFacts, uptime_at_ready_ms: u64) -> GuestSpec {
    let blocks = cpuinfo::parse(&read("/proc/cpuinfo"));
    let first = blocks.first().cloned().unwrap_or_default();
    let hypervisor = vmbench_host::cpuid::hypervisor_signature_raw();
    let p50 = rdtsc_back_to_back_p50();
    let rdtsc_exiting = match hypervisor.as_deref() {
        Some(h) if h.starts_with("TCG") => format!(
            "not applicable under TCG: QEMU emulates RDTSC, there are no exits ({p50} ticks back to back)"
        ),
        _ if p50 > RDTSC_EXIT_THRESHOLD => format!(
            "RDTSC appears to exit: {p50} ticks between back-to-back reads (timing would include an exit per read)"
        ),
        _ => format!("not intercepted: {p50} ticks between back-to-back reads"),
    };
    let online = vmbench_host::CpuList::parse(&read("/sys/devices/system/cpu/online"))
        .map(|l| l.len() as u32)
        .unwrap_or(0);
    let mem_total_kib = read("/proc/meminfo")
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0);
    GuestSpec {
        agent_version: env!("CARGO_PKG_VERSION").to_string(),
        protocol_version: vmbench_proto::PROTOCOL_VERSION,
        kernel_release: read("/proc/sys/kernel/osrelease"),
        kernel_version: read("/proc/sys/kernel/version"),
        cmdline: read("/proc/cmdline"),
        cpu_vendor: first.get("vendor_id").unwrap_or("").to_string(),
        cpu_model_name: first.get("model name").unwrap_or("").to_string(),
        cpu_flags: FLAGS_OF_INTEREST
            .iter()
            .map(|f| format!("{}{f}", if first.has_flag(f) { "+" } else { "-" }))
            .collect(),
        hypervisor,
        clocksource: read("/sys/devices/system/clocksource/clocksource0/current_clocksource"),
        tsc_khz_kernel: tsc_khz_from_kernel_log(),
        tsc_khz_calibrated: tsc::calibrate(3, Duration::from_millis(20))
            .ok()
            .map(|c| c.khz),
        rdtsc_ticks_p50: p50,
        rdtsc_exiting,
        online_cpus: online,
        mem_total_kib,
        mapping: m.mapping,
        mapping_note: m.note.clone(),
        mapping_observed: observed_mapping(m),
        mapping_pte: match m.pte_mode {
            Some(Ok(mode)) => Some(mode.to_string()),
            _ => None,
        },
        shm_bytes: m.shm_bytes,
        pci_address: m.pci_address.clone(),
        iv_position: m.iv_position,
        msix_vectors: m.msix_vectors,
        uptime_at_ready_ms,
    }
}

/// Milliseconds since the guest kernel booted (/proc/uptime).
pub fn uptime_ms() -> u64 {
    read("/proc/uptime")
        .split_whitespace()
        .next()
        .and_then(|s| s.parse::<f64>().ok())
        .map_or(0, |s| (s * 1000.0) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_memory_type_is_read_from_the_pat_memtype_list() {
        let list = Ok(
            "PAT: [mem 0x00000000fd000000-0x00000000fd3fffff] write-back\n\
                       PAT: [mem 0x00000000fe000000-0x00000000fe003fff] uncached-minus\n"
                .to_string(),
        );
        assert_eq!(
            observed_memtype(&list, 0xfd00_0000, 4 << 20),
            "write-back (PAT memtype list: 0x00000000fd000000-0x00000000fd3fffff)"
        );
        assert!(observed_memtype(&list, 0xfe00_0000, 4096).starts_with("uncached-minus"));
        // A range no entry overlaps is not claimed.
        assert!(observed_memtype(&list, 0x1000_0000, 8 << 20).starts_with("not observed"));
        assert_eq!(
            observed_memtype(&Err(std::io::ErrorKind::NotFound.into()), 0, 1),
            "not observed: /sys/kernel/debug/x86/pat_memtype_list: entity not found"
        );
    }
}
