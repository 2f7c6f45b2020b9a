//! Port I/O and MSR access, and the ports and MSRs the micro-guest uses.

use core::arch::asm;

/// COM1's data register: boot and fault messages.
pub const COM1_DATA: u16 = 0x3f8;
/// COM1's line status register.
pub const COM1_LINE_STATUS: u16 = 0x3fd;
/// Line status: the transmit holding register is empty.
pub const LSR_THR_EMPTY: u8 = 0x20;
/// QEMU's isa-debug-exit (`iobase=0xf4`): a write ends QEMU with status
/// `(value << 1) | 1`.
pub const DEBUG_EXIT: u16 = 0xf4;
/// PCI configuration mechanism #1: address register.
pub const PCI_CONFIG_ADDRESS: u16 = 0xcf8;
/// PCI configuration mechanism #1: data register.
pub const PCI_CONFIG_DATA: u16 = 0xcfc;
/// The PIC's edge/level control register (ELCR1): a port KVM's in-kernel
/// PIC serves without QEMU.
pub const PIC_ELCR1: u16 = 0x4d0;
/// A port no device claims on q35: KVM hands the access to QEMU.
pub const UNASSIGNED_PORT: u16 = 0x1234;

/// IA32_APIC_BASE: an MSR KVM emulates in its handler.
pub const IA32_APIC_BASE: u32 = 0x1b;
/// IA32_TSC_ADJUST: kvm-unit-tests' MSR rows.
pub const IA32_TSC_ADJUST: u32 = 0x3b;
/// IA32_TSC_DEADLINE: the write KVM's fastpath handles on some hosts.
pub const IA32_TSC_DEADLINE: u32 = 0x6e0;
/// IA32_STAR: SYSCALL/SYSRET segment selectors.
pub const IA32_STAR: u32 = 0xC000_0081;
/// IA32_LSTAR: the 64-bit SYSCALL entry point.
pub const IA32_LSTAR: u32 = 0xC000_0082;
/// IA32_FMASK: RFLAGS bits SYSCALL clears.
pub const IA32_FMASK: u32 = 0xC000_0084;

#[inline(always)]
pub fn outb(port: u16, v: u8) {
    // SAFETY: port I/O at CPL0 (or CPL3 with IOPL 3); no memory is touched.
    unsafe { asm!("out dx, al", in("dx") port, in("al") v, options(nostack, preserves_flags)) };
}

#[inline(always)]
pub fn inb(port: u16) -> u8 {
    let v: u8;
    // SAFETY: as for outb.
    unsafe { asm!("in al, dx", in("dx") port, out("al") v, options(nostack, preserves_flags)) };
    v
}

#[inline(always)]
pub fn outl(port: u16, v: u32) {
    // SAFETY: as for outb.
    unsafe { asm!("out dx, eax", in("dx") port, in("eax") v, options(nostack, preserves_flags)) };
}

#[inline(always)]
pub fn inl(port: u16) -> u32 {
    let v: u32;
    // SAFETY: as for outb.
    unsafe { asm!("in eax, dx", in("dx") port, out("eax") v, options(nostack, preserves_flags)) };
    v
}

pub fn rdmsr(msr: u32) -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: CPL0; every MSR read here exists on x86_64.
    unsafe {
        asm!("rdmsr", in("ecx") msr, out("eax") lo, out("edx") hi, options(nostack, preserves_flags))
    };
    (u64::from(hi) << 32) | u64::from(lo)
}

pub fn wrmsr(msr: u32, v: u64) {
    // SAFETY: CPL0; the callers write architectural MSRs with valid values.
    unsafe {
        asm!("wrmsr", in("ecx") msr, in("eax") v as u32, in("edx") (v >> 32) as u32, options(nostack, preserves_flags))
    };
}

/// One NOP: the baselines' body.
#[inline(always)]
pub fn nop() {
    // SAFETY: NOP has no effect at all.
    unsafe { asm!("nop", options(nostack)) };
}

/// INVD (CPL0): exits unconditionally under VMX and SVM; KVM skips it as a NOP.
#[inline(always)]
pub fn invd() {
    // SAFETY: CPL0; nothing in this guest depends on dirty cache lines
    // reaching memory, and under KVM the instruction exits and is emulated.
    unsafe { asm!("invd", options(nostack)) };
}

/// VMCALL (Intel) or VMMCALL (AMD) with rax = 0, which is no KVM hypercall:
/// KVM's handler answers -KVM_ENOSYS in rax.
#[inline(always)]
pub fn hypercall_none(amd: bool) {
    if amd {
        // SAFETY: under KVM the instruction exits; the handler writes rax only.
        unsafe { asm!("vmmcall", inout("rax") 0u64 => _, options(nostack)) };
    } else {
        // SAFETY: as above.
        unsafe { asm!("vmcall", inout("rax") 0u64 => _, options(nostack)) };
    }
}
