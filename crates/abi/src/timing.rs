//! The fenced TSC reads and CPUID every timed window is built from, shared by
//! the host, the Linux guest agent (as `vmbench_proto::timing`) and the
//! no_std micro-guest. `core` only.

use core::arch::asm;

/// `lfence; rdtsc; lfence`: the start of a timed window. The first LFENCE
/// keeps earlier work out of the window, the second keeps the timed code
/// from starting before RDTSC has read the counter (Intel SDM, RDTSC: "If
/// software requires RDTSC to be executed prior to execution of any
/// subsequent instruction, it can execute LFENCE immediately after
/// RDTSC"). Never CPUID as a fence: in a guest it is itself an exit.
#[inline(always)]
pub fn t_start() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: LFENCE and RDTSC only read the TSC; the asm is a compiler
    // barrier (no `nomem`), so timed code cannot move across it.
    unsafe {
        asm!("lfence", "rdtsc", "lfence", out("eax") lo, out("edx") hi, options(nostack, preserves_flags))
    };
    (u64::from(hi) << 32) | u64::from(lo)
}

/// `rdtscp; lfence`: the end of a timed window.
#[inline(always)]
pub fn t_end() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: RDTSCP reads the TSC and TSC_AUX (ecx, discarded); LFENCE keeps
    // later instructions from starting before it.
    unsafe {
        asm!("rdtscp", "lfence", out("eax") lo, out("edx") hi, out("ecx") _, options(nostack, preserves_flags))
    };
    (u64::from(hi) << 32) | u64::from(lo)
}

/// A bare `rdtsc`, no fences: kvm-unit-tests' timestamp, for the rows that
/// reproduce its method. The CPU may reorder it with the work around it.
#[inline(always)]
pub fn rdtsc_unfenced() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: RDTSC only reads the TSC.
    unsafe { asm!("rdtsc", out("eax") lo, out("edx") hi, options(nostack, preserves_flags)) };
    (u64::from(hi) << 32) | u64::from(lo)
}

/// `mfence; rdtscp; lfence`: the end of a window whose work ends in stores
/// (a copy). RDTSCP waits for earlier loads, not for stores still in the
/// store buffer; MFENCE first makes every earlier store globally visible, so
/// the window holds the whole copy (Intel SDM, RDTSCP).
#[inline(always)]
pub fn t_end_stores() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: MFENCE orders memory and touches none; RDTSCP reads the TSC
    // and TSC_AUX (ecx, discarded); LFENCE keeps later work out.
    unsafe {
        asm!("mfence", "rdtscp", "lfence", out("eax") lo, out("edx") hi, out("ecx") _, options(nostack, preserves_flags))
    };
    (u64::from(hi) << 32) | u64::from(lo)
}

/// `lfence; rdtsc; lfence`: the same ordering as [`t_end`] without RDTSCP,
/// which some hosts fail to emulate at CPL0 (kvm_pvm stops the VM with a KVM
/// internal error). The micro-guest closes its ring-0 windows with it.
#[inline(always)]
pub fn t_end_lfence() -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: LFENCE; RDTSC; LFENCE read the TSC only.
    unsafe {
        asm!("lfence", "rdtsc", "lfence", out("eax") lo, out("edx") hi, options(nostack, preserves_flags))
    };
    (u64::from(hi) << 32) | u64::from(lo)
}

/// CPUID's four output registers.
#[allow(missing_docs)] // the registers' own names
pub struct Cpuid {
    pub eax: u32,
    pub ebx: u32,
    pub ecx: u32,
    pub edx: u32,
}

/// CPUID leaf `leaf`, subleaf `sub`. Never elided (the asm is not `pure`), so
/// it also serves as the exiting instruction of the timed rows.
#[inline(always)]
pub fn cpuid(leaf: u32, sub: u32) -> Cpuid {
    let (a, b, c, d): (u32, u32, u32, u32);
    // SAFETY: CPUID has no memory effects; rbx (reserved by LLVM) is saved in
    // a scratch register and swapped back.
    unsafe {
        asm!(
            "mov {tmp:r}, rbx",
            "cpuid",
            "xchg {tmp:r}, rbx",
            tmp = out(reg) b,
            inout("eax") leaf => a,
            inout("ecx") sub => c,
            out("edx") d,
            options(nostack, preserves_flags),
        )
    };
    Cpuid {
        eax: a,
        ebx: b,
        ecx: c,
        edx: d,
    }
}
