//! Just enough PCI to find ivshmem: configuration mechanism #1 on bus 0.

use crate::io::{PCI_CONFIG_ADDRESS, PCI_CONFIG_DATA, inl, outl};

/// ivshmem's vendor (Red Hat, 0x1af4) and device (0x1110) in one dword as
/// configuration offset 0 reads them.
const IVSHMEM_ID: u32 = 0x1110_1af4;
/// BAR2: the shared memory (BAR0 is registers, BAR1 MSI-X).
const BAR2: u32 = 0x18;
const BAR3: u32 = 0x1c;
/// BAR type bits 2:1 = 0b10: a 64-bit BAR (the next BAR holds the high half).
const BAR_TYPE_MASK: u32 = 0x6;
const BAR_TYPE_64: u32 = 0x4;
const BAR_FLAGS: u32 = 0xf;

fn config_read(bus: u32, dev: u32, func: u32, off: u32) -> u32 {
    const ENABLE: u32 = 0x8000_0000;
    outl(
        PCI_CONFIG_ADDRESS,
        ENABLE | (bus << 16) | (dev << 11) | (func << 8) | (off & 0xfc),
    );
    inl(PCI_CONFIG_DATA)
}

/// Finds ivshmem on bus 0; returns (device number, BAR2 address).
pub fn find_ivshmem() -> Option<(u32, u64)> {
    (0..32).find_map(|dev| {
        if config_read(0, dev, 0, 0) != IVSHMEM_ID {
            return None;
        }
        let lo = config_read(0, dev, 0, BAR2);
        let hi = if lo & BAR_TYPE_MASK == BAR_TYPE_64 {
            config_read(0, dev, 0, BAR3)
        } else {
            0
        };
        Some((dev, (u64::from(hi) << 32) | u64::from(lo & !BAR_FLAGS)))
    })
}
