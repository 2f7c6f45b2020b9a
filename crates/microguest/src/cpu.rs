//! The CPU state an OS would set up: TSS, IDT, SYSCALL, page tables for a
//! high BAR, and the way into ring 3 and back. The GDT, the first 4 GiB of
//! page tables and the entry stubs are in boot.s.

use crate::io::{IA32_FMASK, IA32_LSTAR, IA32_STAR, outb, wrmsr};

/// The legacy PICs' data ports (interrupt mask registers).
const PIC1_DATA: u16 = 0x21;
const PIC2_DATA: u16 = 0xa1;
use crate::rows::UserParams;
use core::arch::asm;

/// boot.s's GDT selectors.
const KERNEL_CODE: u64 = 0x08;
const KERNEL_DATA: u64 = 0x10;
const TSS_SELECTOR: u16 = 0x28;
/// boot.s's GDT slots of the 16-byte TSS descriptor.
const TSS_SLOT: usize = 5;
/// RFLAGS bits SYSCALL clears: TF, IF, DF.
const SYSCALL_CLEARS: u64 = 0x700;
/// Descriptor types: available 64-bit TSS; present ring-0 interrupt gate.
const TSS_AVAILABLE: u64 = 0x89;
const INTERRUPT_GATE: u64 = 0x8e;
/// Page-table entries: present | writable | user (| 2 MiB page).
const PTE_USER_RW: u64 = 0x7;
const PDE_USER_RW_2M: u64 = 0x87;
const STACK_BYTES: usize = 65536;

unsafe extern "C" {
    static isr_table: [u64; 32];
    fn ipi_isr();
    fn spurious_isr();
    static mut gdt: [u64; 7];
    static mut pdpt: [u64; 512];
    static mut extra_pds: [[u64; 512]; 8];
    fn syscall_entry();
    fn enter_user(
        entry: extern "C" fn(*mut UserParams) -> !,
        stack_top: *mut u8,
        arg: *mut UserParams,
    );
}

#[repr(C, packed)]
struct Tss {
    reserved0: u32,
    rsp0: u64,
    rsp1: u64,
    rsp2: u64,
    reserved1: u64,
    ist: [u64; 7],
    reserved2: u64,
    reserved3: u16,
    iomap_base: u16,
    /// I/O permission bitmap: all ports allowed for ring 3 (a zero bit each),
    /// for hypervisors that do not honour IOPL 3 in the guest; 0xff ends it.
    iomap: [u8; 8193],
}

#[repr(C, align(16))]
struct Stack([u8; STACK_BYTES]);

static mut TSS: Tss = Tss {
    reserved0: 0,
    rsp0: 0,
    rsp1: 0,
    rsp2: 0,
    reserved1: 0,
    ist: [0; 7],
    reserved2: 0,
    reserved3: 0,
    // The bitmap starts right after the 104-byte architectural TSS.
    iomap_base: 104,
    iomap: {
        let mut m = [0u8; 8193];
        m[8192] = 0xff;
        m
    },
};
static mut IDT: [[u64; 2]; 256] = [[0; 2]; 256];
static mut RING0_STACK: Stack = Stack([0; STACK_BYTES]);
static mut USER_STACK: Stack = Stack([0; STACK_BYTES]);

/// Loads the TSS and IDT and enables SYSCALL into boot.s's `syscall_entry`.
pub fn setup() {
    // SAFETY: single CPU, interrupts off, nothing else touches these tables;
    // the descriptors written follow the SDM's 64-bit formats.
    unsafe {
        let rsp0 = (&raw mut RING0_STACK as u64) + STACK_BYTES as u64;
        TSS.rsp0 = rsp0;
        let base = &raw const TSS as u64;
        let limit = (core::mem::size_of::<Tss>() - 1) as u64;
        let g = &raw mut gdt;
        (*g)[TSS_SLOT] = (limit & 0xffff)
            | ((base & 0xff_ffff) << 16)
            | (TSS_AVAILABLE << 40)
            | (((base >> 24) & 0xff) << 56);
        (*g)[TSS_SLOT + 1] = base >> 32;
        asm!("ltr {0:x}", in(reg) TSS_SELECTOR, options(nostack));

        let idt = &raw mut IDT;
        let gate = |handler: u64| {
            [
                (handler & 0xffff)
                    | (KERNEL_CODE << 16)
                    | (INTERRUPT_GATE << 40)
                    | (((handler >> 16) & 0xffff) << 48),
                handler >> 32,
            ]
        };
        for (vector, &handler) in isr_table.iter().enumerate() {
            (*idt)[vector] = gate(handler);
        }
        (*idt)[usize::from(vmbench_abi::IPI_VECTOR)] = gate(ipi_isr as *const () as usize as u64);
        (*idt)[usize::from(crate::apic::SPURIOUS_VECTOR)] =
            gate(spurious_isr as *const () as usize as u64);
    }
    load_idt();
    // The firmware left the legacy PICs on with IRQ 0 (the PIT) at vector 8:
    // masked, so that the interrupt rows' STI lets in only their own IPI.
    outb(PIC1_DATA, 0xff);
    outb(PIC2_DATA, 0xff);
    // SYSCALL enters at CS KERNEL_CODE / SS KERNEL_DATA.
    wrmsr(IA32_STAR, (KERNEL_DATA << 48) | (KERNEL_CODE << 32));
    wrmsr(IA32_LSTAR, syscall_entry as *const () as usize as u64);
    wrmsr(IA32_FMASK, SYSCALL_CLEARS);
}

/// Loads the IDT [`setup`] filled (the second CPU shares it).
pub fn load_idt() {
    // SAFETY: the IDT is a static that lives forever; LIDT only reads the
    // 10-byte pointer.
    unsafe {
        let idt = &raw const IDT;
        let ptr: [u64; 2] = [
            ((256 * 16 - 1) as u64) | ((idt as u64) << 16),
            (idt as u64) >> 48,
        ];
        asm!("lidt [{0}]", in(reg) ptr.as_ptr(), options(nostack));
    }
}

/// Puts the local APIC's timer in TSC-deadline mode, masked: writes to
/// IA32_TSC_DEADLINE then arm a timer (in xAPIC mode, at the address
/// IA32_APIC_BASE names, inside the identity-mapped first 4 GiB).
pub fn lapic_timer_tsc_deadline_masked() {
    use crate::io::{IA32_APIC_BASE, rdmsr};
    /// Spurious-interrupt vector register: bit 8 enables the APIC.
    const SVR: u64 = 0xf0;
    const SVR_ENABLE: u32 = 1 << 8;
    /// LVT timer register: mode in bits 18:17 (0b10: TSC-deadline), mask bit 16.
    const LVT_TIMER: u64 = 0x320;
    const LVT_TSC_DEADLINE: u32 = 0b10 << 17;
    const LVT_MASKED: u32 = 1 << 16;
    const SPURIOUS_VECTOR: u32 = 0xff;
    const TIMER_VECTOR: u32 = 0xef;
    let base = rdmsr(IA32_APIC_BASE) & 0xf_ffff_f000;
    // SAFETY: the APIC's register page, identity-mapped with the rest of the
    // first 4 GiB; 32-bit aligned volatile accesses as the SDM requires.
    unsafe {
        core::ptr::write_volatile((base + SVR) as *mut u32, SVR_ENABLE | SPURIOUS_VECTOR);
        core::ptr::write_volatile(
            (base + LVT_TIMER) as *mut u32,
            LVT_TSC_DEADLINE | LVT_MASKED | TIMER_VECTOR,
        );
    }
}

/// Maps `[addr, addr+len)` with 2 MiB identity pages when it lies above the
/// 4 GiB the boot code mapped (a 64-bit BAR placed high).
pub fn map_identity(addr: u64, len: u64) -> Result<(), &'static str> {
    let end = addr.checked_add(len).ok_or("BAR wraps")?;
    if end <= 1 << 32 {
        return Ok(());
    }
    if end > 512 << 30 {
        return Err("BAR beyond 512 GiB");
    }
    let mut next_pd = 0usize;
    let mut gib = (addr >> 30).max(4);
    while gib << 30 < end {
        if next_pd >= 8 {
            return Err("BAR spans more than 8 GiB above 4 GiB");
        }
        // SAFETY: boot-time page tables, single CPU; each new PD maps a
        // whole GiB identity with user-accessible 2 MiB pages.
        unsafe {
            let pd = &raw mut extra_pds;
            for i in 0..512u64 {
                (*pd)[next_pd][i as usize] = ((gib << 30) + (i << 21)) | PDE_USER_RW_2M;
            }
            pdpt[gib as usize] = ((&raw const (*pd)[next_pd]) as u64) | PTE_USER_RW;
            asm!("mov {0}, cr3", "mov cr3, {0}", out(reg) _, options(nostack));
        }
        next_pd += 1;
        gib += 1;
    }
    Ok(())
}

/// Runs `entry(arg)` in ring 3 (IOPL 3, interrupts off) until it makes
/// SYSCALL [`syscall::RETURN`].
///
/// # Safety
/// `arg` must stay valid, and untouched by ring 0, until this returns.
pub unsafe fn run_user(entry: extern "C" fn(*mut UserParams) -> !, arg: *mut UserParams) {
    // SAFETY: single CPU; enter_user returns once ring 3 makes SYSCALL 0;
    // the user stack is a static reserved for ring 3.
    unsafe {
        let top = (&raw mut USER_STACK as *mut u8).add(STACK_BYTES);
        enter_user(entry, top, arg);
    }
}

/// The SYSCALL numbers boot.s's `syscall_entry` serves (rax; argument in rdi).
pub mod syscall {
    /// Back to ring 0: ends [`super::run_user`].
    pub const RETURN: u64 = 0;
    /// Return at once: the null system call.
    pub const NULL: u64 = 1;
    /// CPUID leaf 0 in ring 0.
    pub const CPUID: u64 = 2;
    /// OUTB 0 to the port in rdi, in ring 0.
    pub const OUTB: u64 = 3;
}

/// SYSCALL `nr` with one argument.
#[inline(always)]
pub fn sys(nr: u64, arg: u64) {
    // SAFETY: boot.s's SYSCALL ABI: rax = number, rdi = argument; the kernel
    // side clobbers rax and rdx, SYSCALL itself rcx and r11.
    unsafe {
        asm!("syscall", inlateout("rax") nr => _, in("rdi") arg, lateout("rdx") _,
             lateout("rcx") _, lateout("r11") _, options(nostack))
    };
}
