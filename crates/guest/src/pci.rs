//! Finding the ivshmem PCI device through sysfs.

use std::path::PathBuf;

/// ivshmem's PCI vendor id as sysfs prints it.
pub const IVSHMEM_VENDOR: &str = "0x1af4";
/// ivshmem's PCI device id as sysfs prints it.
pub const IVSHMEM_DEVICE: &str = "0x1110";

/// An ivshmem device found in sysfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IvshmemDevice {
    /// Its PCI address (`0000:00:03.0`).
    pub address: String,
    /// Its sysfs directory.
    pub sysfs: PathBuf,
}

/// BAR `bar`'s physical start address, from the device's sysfs `resource`
/// file (one `start end flags` line per BAR).
pub fn bar_start(sysfs: &std::path::Path, bar: usize) -> Option<u64> {
    let text = std::fs::read_to_string(sysfs.join("resource")).ok()?;
    let start = text.lines().nth(bar)?.split_whitespace().next()?;
    u64::from_str_radix(start.trim_start_matches("0x"), 16)
        .ok()
        .filter(|&s| s != 0)
}

/// Every ivshmem device on the guest's PCI buses, in sysfs order.
pub fn find_ivshmem() -> Vec<IvshmemDevice> {
    let base = PathBuf::from("/sys/bus/pci/devices");
    let Ok(rd) = std::fs::read_dir(&base) else {
        return Vec::new();
    };
    let mut out: Vec<IvshmemDevice> = rd
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let p = e.path();
            let v = std::fs::read_to_string(p.join("vendor")).ok()?;
            let d = std::fs::read_to_string(p.join("device")).ok()?;
            (v.trim() == IVSHMEM_VENDOR && d.trim() == IVSHMEM_DEVICE).then(|| IvshmemDevice {
                address: e.file_name().to_string_lossy().into_owned(),
                sysfs: p,
            })
        })
        .collect();
    out.sort_by(|a, b| a.address.cmp(&b.address));
    out
}
