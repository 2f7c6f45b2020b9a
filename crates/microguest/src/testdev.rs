//! QEMU's pci-testdev as the MMIO and port-I/O rows use it: select a test
//! by writing its number to the BAR's header, read where (offset) and what
//! (value) its accesses write, and, after the row, how many of them QEMU
//! itself served (the header's count; an ioeventfd access never reaches it).

use crate::io::{inb, outb};
use crate::pci::Testdev;
use core::sync::atomic::{AtomicU64, Ordering::Relaxed};
use vmbench_abi::testdev::{HDR_COUNT, HDR_DATA, HDR_OFFSET, HDR_TEST};

/// The device found at boot: BAR0 address and BAR1 port (0: none).
static MMIO: AtomicU64 = AtomicU64::new(0);
static PORT: AtomicU64 = AtomicU64::new(0);

/// Records the device [`crate::pci::find_testdev`] found.
pub fn remember(dev: Testdev) {
    MMIO.store(dev.mmio, Relaxed);
    PORT.store(u64::from(dev.port), Relaxed);
}

/// The device, if the VM has one.
pub fn device() -> Option<Testdev> {
    let mmio = MMIO.load(Relaxed);
    let port = u16::try_from(PORT.load(Relaxed)).ok()?;
    (mmio != 0 && port != 0).then_some(Testdev { mmio, port })
}

/// Which BAR a test's accesses go to.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Space {
    /// BAR0: byte writes to memory.
    Mmio,
    /// BAR1: OUTB.
    Pio,
}

/// A selected test: the address (or port) its writes go to, and the value.
#[derive(Clone, Copy)]
pub struct Target {
    pub space: Space,
    /// The header's base: BAR0's address or BAR1's port.
    base: u64,
    /// BAR0 address or BAR1 port of the test's register.
    pub addr: u64,
    pub data: u8,
}

fn read8(space: Space, base: u64, off: u64) -> u8 {
    match space {
        // SAFETY: the device's header inside BAR0, identity-mapped; the
        // device answers one byte per access.
        Space::Mmio => unsafe { core::ptr::read_volatile((base + off) as *const u8) },
        Space::Pio => inb((base + off) as u16),
    }
}

fn read32(space: Space, base: u64, off: u64) -> u32 {
    u32::from_le_bytes(core::array::from_fn(|i| read8(space, base, off + i as u64)))
}

/// Selects test `test` of the BAR `space` names and reads its register.
pub fn select(dev: Testdev, space: Space, test: u8) -> Target {
    let base = match space {
        Space::Mmio => dev.mmio,
        Space::Pio => u64::from(dev.port),
    };
    match space {
        // SAFETY: as in read8; a write to byte 0 selects the test.
        Space::Mmio => unsafe { core::ptr::write_volatile((base + HDR_TEST) as *mut u8, test) },
        Space::Pio => outb((base + HDR_TEST) as u16, test),
    }
    Target {
        space,
        base,
        addr: base + u64::from(read32(space, base, HDR_OFFSET)),
        data: read8(space, base, HDR_DATA),
    }
}

impl Target {
    /// Writes QEMU's device served itself since the test was selected.
    pub fn served_by_qemu(&self) -> u64 {
        u64::from(read32(self.space, self.base, HDR_COUNT))
    }
}
