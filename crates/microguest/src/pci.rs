//! Just enough PCI to find ivshmem and QEMU's pci-testdev: configuration
//! mechanism #1 on bus 0, with the BARs the firmware assigned.

use crate::io::{PCI_CONFIG_ADDRESS, PCI_CONFIG_DATA, inl, outl};

/// ivshmem's vendor (Red Hat, 0x1af4) and device (0x1110) in one dword as
/// configuration offset 0 reads them.
const IVSHMEM_ID: u32 = 0x1110_1af4;
/// BAR0 and BAR1 (pci-testdev: memory, then port I/O).
const BAR0: u32 = 0x10;
const BAR1: u32 = 0x14;
/// An I/O BAR's address bits.
const IO_BAR_MASK: u32 = !0x3;
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

/// QEMU's pci-testdev: its memory BAR and its first port.
#[derive(Clone, Copy)]
pub struct Testdev {
    /// BAR0, a 32-bit memory BAR inside the identity-mapped first 4 GiB.
    pub mmio: u64,
    /// BAR1's first port.
    pub port: u16,
}

/// Finds pci-testdev (1b36:0005) on bus 0, if QEMU has one and the firmware
/// gave it both BARs.
pub fn find_testdev() -> Option<Testdev> {
    (0..32).find_map(|dev| {
        if config_read(0, dev, 0, 0) != vmbench_abi::testdev::PCI_ID {
            return None;
        }
        let mmio = u64::from(config_read(0, dev, 0, BAR0) & !BAR_FLAGS);
        let port = u16::try_from(config_read(0, dev, 0, BAR1) & IO_BAR_MASK).ok()?;
        (mmio != 0 && port != 0).then_some(Testdev { mmio, port })
    })
}
