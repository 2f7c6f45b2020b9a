//! The second vCPU, for the IPI-to-HLT row: started on first use with the
//! SDM's INIT-SIPI-SIPI sequence through boot.s's real-mode trampoline,
//! then halted in HLT with interrupts on, forever. Its only work is the
//! row's IPI: boot.s's `ipi_isr` EOIs and counts, which is the answer the
//! boot CPU waits for.

use crate::apic::Lapic;
use core::sync::atomic::{AtomicU32, Ordering};
use vmbench_abi::timing::t_start;

/// Where the trampoline is copied: page 8, below 1 MiB (a STARTUP IPI's
/// vector is the page number), above the real-mode IVT and BIOS data.
const TRAMPOLINE: u64 = 0x8000;
/// How long to wait for the second CPU, in TSC ticks (about 2 s at 2 GHz:
/// generous for TCG, which starts a CPU in milliseconds).
const START_TIMEOUT_TICKS: u64 = 4 << 30;

unsafe extern "C" {
    static ap_trampoline: u8;
    static ap_trampoline_end: u8;
}

/// The second CPU's APIC ID + 1 once it runs (0: not started).
static AP_READY: AtomicU32 = AtomicU32::new(0);

/// The second CPU's entry from boot.s, in long mode on its own stack.
#[unsafe(no_mangle)]
extern "C" fn rust_ap_main() -> ! {
    crate::cpu::load_idt();
    let lapic = Lapic::get();
    lapic.enable();
    AP_READY.store(lapic.id() + 1, Ordering::Release);
    loop {
        // SAFETY: STI's one-instruction shadow makes STI;HLT atomic: an IPI
        // that arrives in between wakes the HLT instead of being missed.
        // The handler (ipi_isr) EOIs and returns here; CLI until the next.
        unsafe { core::arch::asm!("sti", "hlt", "cli", options(nostack)) };
    }
}

/// Spins for about `ticks` TSC ticks.
fn delay(ticks: u64) {
    let t0 = t_start();
    while t_start().wrapping_sub(t0) < ticks {
        core::hint::spin_loop();
    }
}

/// The second CPU's APIC ID, starting it on first use; None when no CPU
/// answered (the VM has one vCPU).
pub fn second_cpu() -> Option<u32> {
    if let Some(id) = AP_READY.load(Ordering::Acquire).checked_sub(1) {
        return Some(id);
    }
    // SAFETY: copies boot.s's position-independent-by-construction
    // trampoline (its addresses are relative to TRAMPOLINE) to free
    // conventional memory nobody uses after boot.
    unsafe {
        let start = &raw const ap_trampoline;
        let len = (&raw const ap_trampoline_end as usize) - (start as usize);
        core::ptr::copy_nonoverlapping(start, TRAMPOLINE as *mut u8, len);
    }
    // QEMU numbers APIC IDs from 0: the boot CPU is 0, the next one 1.
    let lapic = Lapic::get();
    let target = lapic.id() ^ 1;
    // SDM: 10 ms after INIT, 200 µs after each STARTUP (ticks at ~3 GHz).
    lapic.start_cpu(target, (TRAMPOLINE >> 12) as u8, |us| delay(us * 3000));
    let t0 = t_start();
    while t_start().wrapping_sub(t0) < START_TIMEOUT_TICKS {
        if let Some(id) = AP_READY.load(Ordering::Acquire).checked_sub(1) {
            return Some(id);
        }
        core::hint::spin_loop();
    }
    None
}
