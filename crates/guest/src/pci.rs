//! Finding the ivshmem PCI device through sysfs.

use std::path::PathBuf;

pub const IVSHMEM_VENDOR: &str = "0x1af4";
pub const IVSHMEM_DEVICE: &str = "0x1110";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IvshmemDevice {
    pub address: String,
    pub sysfs: PathBuf,
}

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
