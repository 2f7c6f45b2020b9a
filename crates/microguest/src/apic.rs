//! The local APIC in xAPIC mode (its register page at the address
//! IA32_APIC_BASE names, inside the identity-mapped first 4 GiB), as the
//! interrupt rows use it, and the interrupt they take (boot.s's `ipi_isr`:
//! EOI, then count).

use crate::io::{IA32_APIC_BASE, rdmsr};
use core::sync::atomic::{AtomicU64, Ordering};

/// Spurious-interrupt vector register: bit 8 enables the APIC.
const SVR: u64 = 0xf0;
const SVR_ENABLE: u32 = 1 << 8;
/// The spurious-interrupt vector (boot.s's `spurious_isr`).
pub const SPURIOUS_VECTOR: u8 = 0xff;
/// End of interrupt.
const EOI: u64 = 0xb0;
/// Interrupt command register, low and high halves.
const ICR_LOW: u64 = 0x300;
const ICR_HIGH: u64 = 0x310;
/// ICR: destination shorthand "self" (bits 19:18 = 01); fixed delivery,
/// physical destination, edge: all zero.
const ICR_SELF: u32 = 1 << 18;
/// ICR: the delivery status bit (send pending).
const ICR_PENDING: u32 = 1 << 12;
/// APIC ID register (bits 31:24).
const ID: u64 = 0x20;

unsafe extern "C" {
    /// boot.s: where `ipi_isr` writes its EOI.
    static mut apic_eoi_addr: u64;
    /// boot.s: interrupts `ipi_isr` took.
    static ipi_count: AtomicU64;
}

/// This CPU's APIC registers (the address is read from IA32_APIC_BASE
/// once, outside any timed window: RDMSR is an exit of its own).
#[derive(Clone, Copy)]
pub struct Lapic {
    base: u64,
}

impl Lapic {
    /// The APIC of the CPU this runs on.
    pub fn get() -> Lapic {
        Lapic {
            base: rdmsr(IA32_APIC_BASE) & 0xf_ffff_f000,
        }
    }

    #[inline(always)]
    fn write(self, reg: u64, v: u32) {
        // SAFETY: the APIC's register page, identity-mapped; 32-bit aligned
        // volatile accesses as the SDM requires.
        unsafe { core::ptr::write_volatile((self.base + reg) as *mut u32, v) };
    }

    fn read(self, reg: u64) -> u32 {
        // SAFETY: as in write.
        unsafe { core::ptr::read_volatile((self.base + reg) as *const u32) }
    }

    /// Enables the APIC and tells `ipi_isr` where the EOI register is.
    pub fn enable(self) {
        self.write(SVR, SVR_ENABLE | u32::from(SPURIOUS_VECTOR));
        // SAFETY: the same address on every CPU (xAPIC registers are per
        // CPU at one physical address); written with IF clear.
        unsafe { (&raw mut apic_eoi_addr).write_volatile(self.base + EOI) };
    }

    /// The APIC ID.
    pub fn id(self) -> u32 {
        self.read(ID) >> 24
    }

    /// An EOI, with or without an interrupt in service.
    #[inline(always)]
    pub fn eoi(self) {
        self.write(EOI, 0);
    }

    /// A fixed IPI of `vector` to this CPU: one ICR write.
    #[inline(always)]
    pub fn send_self(self, vector: u8) {
        self.write(ICR_LOW, ICR_SELF | u32::from(vector));
    }

    /// Sets the destination of the next [`Lapic::send`] (ICR high keeps it).
    pub fn set_destination(self, dest: u32) {
        self.write(ICR_HIGH, dest << 24);
    }

    /// A fixed IPI of `vector` to the destination set before: one ICR write.
    #[inline(always)]
    pub fn send(self, vector: u8) {
        self.write(ICR_LOW, u32::from(vector));
    }

    /// INIT, then two STARTUP IPIs at `page` (the 4 KiB page number of the
    /// real-mode entry), to the CPU with APIC ID `dest`; `delay(µs)` waits
    /// between them as the SDM's MP start-up sequence asks.
    pub fn start_cpu(self, dest: u32, page: u8, mut delay: impl FnMut(u64)) {
        const INIT: u32 = 0b101 << 8 | 1 << 14;
        const STARTUP: u32 = 0b110 << 8 | 1 << 14;
        self.set_destination(dest);
        self.write(ICR_LOW, INIT);
        self.wait_sent();
        delay(10_000);
        for _ in 0..2 {
            self.set_destination(dest);
            self.write(ICR_LOW, STARTUP | u32::from(page));
            self.wait_sent();
            delay(200);
        }
    }

    fn wait_sent(self) {
        while self.read(ICR_LOW) & ICR_PENDING != 0 {
            core::hint::spin_loop();
        }
    }
}

/// Interrupts `ipi_isr` has taken so far, on every CPU.
#[inline(always)]
pub fn taken() -> u64 {
    // SAFETY: an atomic in boot.s's data, only ever updated with LOCK INC.
    unsafe { ipi_count.load(Ordering::Acquire) }
}
