//! vmbench micro-guest: the VM-exit rows with no guest OS in the way.
//!
//! Booted by QEMU's `-kernel` as a PVH ELF (see boot.s). Ring 0 runs the
//! kernel rows with interrupts off (there are no guest interrupts at all:
//! no timer, no scheduler); ring 3, entered with IOPL 3, runs the user rows;
//! SYSCALL (returning with IRETQ) carries the user→kernel rows. Commands and results travel
//! over the same shared region as with the Linux guest (ivshmem-plain, found
//! by scanning PCI configuration space through 0xCF8/0xCFC, BAR2
//! identity-mapped). The serial port carries only boot and fault messages: each
//! byte written there is itself an exit.
#![no_std]
#![no_main]

use core::arch::{asm, global_asm};
use core::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use core::sync::atomic::{AtomicU32, AtomicU64};

global_asm!(include_str!("boot.s"), options(att_syntax));

/// The same offsets the host and the Linux agent use.
#[allow(dead_code)]
#[path = "../../proto/src/layout.rs"]
mod layout;
use layout::*;

/// The fenced TSC reads and CPUID, the same code the Linux agent times with.
#[path = "../../proto/src/timing.rs"]
mod timing;
use timing::{cpuid, t_end, t_end_lfence, t_start};

// ---------------------------------------------------------------- port I/O

#[inline(always)]
fn outb(port: u16, v: u8) {
    // SAFETY: port I/O at CPL0 (or CPL3 with IOPL 3); no memory is touched.
    unsafe { asm!("out dx, al", in("dx") port, in("al") v, options(nostack, preserves_flags)) };
}

#[inline(always)]
fn inb(port: u16) -> u8 {
    let v: u8;
    // SAFETY: as for outb.
    unsafe { asm!("in al, dx", in("dx") port, out("al") v, options(nostack, preserves_flags)) };
    v
}

#[inline(always)]
fn outl(port: u16, v: u32) {
    // SAFETY: as for outb.
    unsafe { asm!("out dx, eax", in("dx") port, in("eax") v, options(nostack, preserves_flags)) };
}

#[inline(always)]
fn inl(port: u16) -> u32 {
    let v: u32;
    // SAFETY: as for outb.
    unsafe { asm!("in eax, dx", in("dx") port, out("eax") v, options(nostack, preserves_flags)) };
    v
}

fn rdmsr(msr: u32) -> u64 {
    let (lo, hi): (u32, u32);
    // SAFETY: CPL0; every MSR read here exists on x86_64.
    unsafe {
        asm!("rdmsr", in("ecx") msr, out("eax") lo, out("edx") hi, options(nostack, preserves_flags))
    };
    (u64::from(hi) << 32) | u64::from(lo)
}

fn wrmsr(msr: u32, v: u64) {
    // SAFETY: CPL0; the callers write architectural MSRs with valid values.
    unsafe {
        asm!("wrmsr", in("ecx") msr, in("eax") v as u32, in("edx") (v >> 32) as u32, options(nostack, preserves_flags))
    };
}

// ---------------------------------------------------------------- serial, exit

/// Output without core::fmt: the precompiled libcore's integer formatting
/// and padding use SSE, which this guest must not execute (see boot.s).
trait Sink: Sized {
    fn put(&mut self, b: &[u8]);
    fn s(&mut self, t: &str) -> &mut Self {
        self.put(t.as_bytes());
        self
    }
    /// Decimal.
    fn u(&mut self, mut v: u64) -> &mut Self {
        let mut d = [0u8; 20];
        let mut i = d.len();
        loop {
            i -= 1;
            d[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        self.put(&d[i..]);
        self
    }
    /// `0x`-prefixed hexadecimal.
    fn x(&mut self, v: u64) -> &mut Self {
        let mut d = [0u8; 16];
        let mut i = d.len();
        let mut v = v;
        loop {
            i -= 1;
            d[i] = b"0123456789abcdef"[(v & 0xf) as usize];
            v >>= 4;
            if v == 0 {
                break;
            }
        }
        self.put(b"0x");
        self.put(&d[i..]);
        self
    }
    /// A JSON string: printable ASCII kept, anything else replaced by '?'.
    fn q(&mut self, t: &str) -> &mut Self {
        self.put(b"\"");
        for &c in t.as_bytes() {
            let ok = (c == b' ' || c.is_ascii_graphic()) && c != b'"' && c != b'\\';
            self.put(&[if ok { c } else { b'?' }]);
        }
        self.put(b"\"");
        self
    }
}

struct Serial;

impl Sink for Serial {
    fn put(&mut self, b: &[u8]) {
        for &c in b {
            while inb(0x3fd) & 0x20 == 0 {}
            outb(0x3f8, c);
        }
    }
}

/// isa-debug-exit (iobase 0xf4): QEMU exits with status (code << 1) | 1.
fn qemu_exit(code: u32) -> ! {
    outl(0xf4, code);
    loop {
        // SAFETY: halting with interrupts off stops this (only) vCPU.
        unsafe { asm!("cli; hlt", options(nomem, nostack)) };
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    let mut out = Serial;
    out.s("micro-guest: PANIC");
    if let Some(l) = info.location() {
        out.s(" at ").s(l.file()).s(":").u(u64::from(l.line()));
    }
    out.s("\n");
    qemu_exit(0x7e)
}

/// Called by the exception stubs: report and stop (exit status 7).
#[unsafe(no_mangle)]
extern "C" fn rust_exception(frame: *const u64) -> ! {
    // SAFETY: the stub passes its stack: vector, error code, then the CPU's
    // interrupt frame (rip, cs, rflags, rsp, ss), seven valid u64.
    let f = unsafe { core::slice::from_raw_parts(frame, 7) };
    Serial
        .s("micro-guest: EXCEPTION vector ")
        .u(f[0])
        .s(" error ")
        .x(f[1])
        .s(" at RIP ")
        .x(f[2])
        .s(" (CS ")
        .x(f[3])
        .s(", RSP ")
        .x(f[5])
        .s(")\n");
    qemu_exit(3)
}

// ---------------------------------------------------------------- runtime
// What libc would provide: the gnu target's compiler_builtins leaves these to it.

/// Referenced by the precompiled libcore (built with unwinding); with
/// `panic = "abort"` nothing ever calls it.
#[unsafe(no_mangle)]
extern "C" fn rust_eh_personality() {}

#[unsafe(no_mangle)]
unsafe extern "C" fn memcpy(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // SAFETY: the caller guarantees both ranges are valid and disjoint; REP
    // MOVSB copies forward (DF is clear: SFMASK and the ABI keep it so).
    unsafe {
        asm!("rep movsb", inout("rcx") n => _, inout("rdi") dst => _, inout("rsi") src => _, options(nostack, preserves_flags))
    };
    dst
}

#[unsafe(no_mangle)]
unsafe extern "C" fn memmove(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    if (dst as usize) <= (src as usize) || (dst as usize) >= (src as usize) + n {
        // SAFETY: forward copy is correct when dst does not start inside src.
        return unsafe { memcpy(dst, src, n) };
    }
    // SAFETY: overlapping with dst above src: copy backwards (STD; REP MOVSB; CLD).
    unsafe {
        asm!("std", "rep movsb", "cld",
             inout("rcx") n => _, inout("rdi") dst.add(n - 1) => _, inout("rsi") src.add(n - 1) => _,
             options(nostack))
    };
    dst
}

#[unsafe(no_mangle)]
unsafe extern "C" fn memset(dst: *mut u8, c: i32, n: usize) -> *mut u8 {
    // SAFETY: the caller guarantees dst..dst+n is writable.
    unsafe {
        asm!("rep stosb", inout("rcx") n => _, inout("rdi") dst => _, in("al") c as u8, options(nostack, preserves_flags))
    };
    dst
}

#[unsafe(no_mangle)]
unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    for i in 0..n {
        // SAFETY: the caller guarantees both ranges hold n bytes.
        let (x, y) = unsafe { (*a.add(i), *b.add(i)) };
        if x != y {
            return i32::from(x) - i32::from(y);
        }
    }
    0
}

#[unsafe(no_mangle)]
unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
    // SAFETY: same contract as memcmp.
    unsafe { memcmp(a, b, n) }
}

// ---------------------------------------------------------------- CPU setup

unsafe extern "C" {
    static isr_table: [u64; 32];
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
struct Stack([u8; 65536]);

static mut TSS: Tss = Tss {
    reserved0: 0,
    rsp0: 0,
    rsp1: 0,
    rsp2: 0,
    reserved1: 0,
    ist: [0; 7],
    reserved2: 0,
    reserved3: 0,
    iomap_base: 104,
    iomap: {
        let mut m = [0u8; 8193];
        m[8192] = 0xff;
        m
    },
};
static mut IDT: [[u64; 2]; 256] = [[0; 2]; 256];
static mut RING0_STACK: Stack = Stack([0; 65536]);
static mut USER_STACK: Stack = Stack([0; 65536]);

fn setup_cpu() {
    // SAFETY: single CPU, interrupts off, nothing else touches these tables;
    // the descriptors written follow the SDM's 64-bit formats.
    unsafe {
        let rsp0 = (&raw mut RING0_STACK as u64) + 65536;
        TSS.rsp0 = rsp0;
        let base = &raw const TSS as u64;
        let limit = (core::mem::size_of::<Tss>() - 1) as u64;
        let g = &raw mut gdt;
        (*g)[5] = (limit & 0xffff)
            | ((base & 0xff_ffff) << 16)
            | (0x89 << 40)
            | (((base >> 24) & 0xff) << 56);
        (*g)[6] = base >> 32;
        asm!("ltr {0:x}", in(reg) 0x28u16, options(nostack));

        let idt = &raw mut IDT;
        for (v, &handler) in isr_table.iter().enumerate() {
            (*idt)[v][0] = (handler & 0xffff)
                | (0x08 << 16)
                | (0x8e << 40)
                | (((handler >> 16) & 0xffff) << 48);
            (*idt)[v][1] = handler >> 32;
        }
        let ptr: [u64; 2] = [
            ((256 * 16 - 1) as u64) | ((idt as u64) << 16),
            (idt as u64) >> 48,
        ];
        asm!("lidt [{0}]", in(reg) ptr.as_ptr(), options(nostack));
    }
    // SYSCALL enters at CS 0x08 / SS 0x10 with TF, IF, DF cleared.
    wrmsr(0xC000_0081, (0x10u64 << 48) | (0x08u64 << 32));
    wrmsr(0xC000_0082, syscall_entry as *const () as usize as u64);
    wrmsr(0xC000_0084, 0x700);
}

/// Maps `[addr, addr+len)` with 2 MiB identity pages when it lies above the
/// 4 GiB the boot code mapped (a 64-bit BAR placed high).
fn map_identity(addr: u64, len: u64) -> Result<(), &'static str> {
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
                (*pd)[next_pd][i as usize] = ((gib << 30) + (i << 21)) | 0x87;
            }
            pdpt[gib as usize] = ((&raw const (*pd)[next_pd]) as u64) | 7;
            asm!("mov {0}, cr3", "mov cr3, {0}", out(reg) _, options(nostack));
        }
        next_pd += 1;
        gib += 1;
    }
    Ok(())
}

// ---------------------------------------------------------------- PCI

fn pci_read(bus: u32, dev: u32, func: u32, off: u32) -> u32 {
    outl(
        0xcf8,
        0x8000_0000 | (bus << 16) | (dev << 11) | (func << 8) | (off & 0xfc),
    );
    inl(0xcfc)
}

/// Finds ivshmem (1af4:1110) on bus 0; returns (device number, BAR2 address).
fn find_ivshmem() -> Option<(u32, u64)> {
    for dev in 0..32 {
        let id = pci_read(0, dev, 0, 0);
        if id == 0x1110_1af4 {
            let lo = pci_read(0, dev, 0, 0x18);
            let hi = if lo & 0x6 == 0x4 {
                pci_read(0, dev, 0, 0x1c)
            } else {
                0
            };
            return Some((dev, (u64::from(hi) << 32) | u64::from(lo & !0xf)));
        }
    }
    None
}

// ---------------------------------------------------------------- shared region

struct Shm {
    base: u64,
    len: u64,
}

impl Shm {
    fn u32(&self, off: usize) -> &AtomicU32 {
        // SAFETY: `off` is a layout constant inside the mapped region (checked
        // against MIN_REGION_BYTES at attach), 4-aligned; the region is only
        // ever accessed atomically at control offsets.
        unsafe { AtomicU32::from_ptr((self.base + off as u64) as *mut u32) }
    }
    fn u64(&self, off: usize) -> &AtomicU64 {
        // SAFETY: as above, 8-aligned.
        unsafe { AtomicU64::from_ptr((self.base + off as u64) as *mut u64) }
    }
    fn put(&self, off: usize, bytes: &[u8]) {
        for (i, b) in bytes.iter().enumerate() {
            // SAFETY: callers keep off + len inside the mailbox (checked).
            unsafe { core::ptr::write_volatile((self.base as *mut u8).add(off + i), *b) };
        }
    }
    fn data(&self) -> *mut u64 {
        (self.base + DATA_OFF as u64) as *mut u64
    }
    fn capacity(&self) -> u64 {
        (self.len - DATA_OFF as u64) / 8
    }
}

/// A fixed buffer for the JSON answers (no allocator here).
struct Buf {
    b: [u8; 4096],
    n: usize,
    full: bool,
}

impl Sink for Buf {
    /// Truncates (and remembers it) rather than overflow.
    fn put(&mut self, b: &[u8]) {
        let room = self.b.len() - self.n;
        let k = b.len().min(room);
        self.b[self.n..self.n + k].copy_from_slice(&b[..k]);
        self.n += k;
        self.full |= k < b.len();
    }
}

static mut BUF: Buf = Buf {
    b: [0; 4096],
    n: 0,
    full: false,
};

const ST_OK: u32 = 0;
const ST_UNKNOWN: u32 = 1;
const ST_BADARGS: u32 = 2;
const ST_UNSUPPORTED: u32 = 4;

fn respond(s: &Shm, seq: u64, status: u32, payload: &[u8]) {
    let len = payload.len().min(MAILBOX_BYTES);
    s.put(MAILBOX_OFF, &payload[..len]);
    s.u64(GC_RESP_LEN).store(len as u64, Relaxed);
    s.u32(GC_STATUS).store(status, Relaxed);
    s.u64(GC_RESP_SEQ).store(seq, Release);
    s.u32(GC_STATE).store(1, Release); // Ready
}

/// Waits for the host's session and answers it; returns the session.
fn attach(s: &Shm) -> u64 {
    loop {
        if s.u32(HC_STATE).load(Acquire) == 1 && s.u64(H_MAGIC).load(Relaxed) == MAGIC {
            break;
        }
        core::hint::spin_loop();
    }
    let session = s.u64(HC_SESSION).load(Relaxed);
    if s.u32(H_VERSION).load(Relaxed) != PROTOCOL_VERSION {
        let msg = b"micro-guest: incompatible protocol version";
        s.put(MAILBOX_OFF, msg);
        s.u64(GC_RESP_LEN).store(msg.len() as u64, Relaxed);
        s.u64(GC_SESSION).store(session, Relaxed);
        s.u32(GC_STATE).store(3, Release); // Failed
        qemu_exit(4);
    }
    s.u64(GC_RESP_SEQ)
        .store(s.u64(HC_CMD_SEQ).load(Acquire), Relaxed);
    s.u32(GC_VERSION).store(PROTOCOL_VERSION, Relaxed);
    s.u64(GC_SESSION).store(session, Relaxed);
    s.u32(GC_STATE).store(1, Release);
    session
}

// ---------------------------------------------------------------- timing, rows

/// Row ids, by the numbers of vmbench_proto::vmexit::Row (the host checks
/// every answer's id against its own table).
const ROW_IDS: [&str; 18] = [
    "timer-overhead",
    "user-nop",
    "user-fast",
    "user-slow",
    "null-syscall",
    "null-ioctl",
    "user-kernel-fast",
    "user-kernel-slow",
    "kernel-timer-overhead",
    "kernel-nop",
    "kernel-fast",
    "kernel-slow",
    "kernel-rdmsr",
    "kernel-wrmsr-tsc-deadline",
    "kernel-invd",
    "kernel-inb-kernel-pio",
    "kernel-inb-unassigned",
    "kernel-vmcall",
];

/// What a ring-3 row needs; lives in a static the user code can reach.
#[repr(C)]
struct UserParams {
    row: u32,
    port: u16,
    warmup: u64,
    n: u64,
    batch: u64,
    out: *mut u64,
    batch_ticks: u64,
}

static mut PARAMS: UserParams = UserParams {
    row: 0,
    port: 0xe9,
    warmup: 0,
    n: 0,
    batch: 0,
    out: core::ptr::null_mut(),
    batch_ticks: 0,
};

/// The timed loops, shared by ring 0 and ring 3: warm-up (discarded), `n`
/// samples stored outside the timed window, then one timed batch.
#[inline(always)]
fn run_loops(warmup: u64, n: u64, batch: u64, out: *mut u64, body: impl FnMut()) -> u64 {
    run_loops_with(t_end, warmup, n, batch, out, body)
}

/// Ring-0 loops: the same, ending each window with `t_end_lfence`.
#[inline(always)]
fn run_loops_k(warmup: u64, n: u64, batch: u64, out: *mut u64, body: impl FnMut()) -> u64 {
    run_loops_with(t_end_lfence, warmup, n, batch, out, body)
}

#[inline(always)]
fn run_loops_with(
    end: fn() -> u64,
    warmup: u64,
    n: u64,
    batch: u64,
    out: *mut u64,
    mut body: impl FnMut(),
) -> u64 {
    for _ in 0..warmup {
        let t0 = t_start();
        body();
        core::hint::black_box(end().wrapping_sub(t0));
    }
    for i in 0..n {
        let t0 = t_start();
        body();
        let d = end().wrapping_sub(t0);
        // SAFETY: `out` is the data area, checked to hold `n` samples.
        unsafe { core::ptr::write_volatile(out.add(i as usize), d) };
    }
    let t0 = t_start();
    for _ in 0..batch {
        body();
    }
    end().wrapping_sub(t0)
}

#[inline(always)]
fn sys(nr: u64, arg: u64) {
    // SAFETY: our own SYSCALL ABI (boot.s): rax = number, rdi = argument;
    // the kernel side clobbers rax and rdx, SYSCALL itself rcx and r11.
    unsafe {
        asm!("syscall", inlateout("rax") nr => _, in("rdi") arg, lateout("rdx") _,
             lateout("rcx") _, lateout("r11") _, options(nostack))
    };
}

/// Ring-3 entry: runs the row in PARAMS, then SYSCALL 0 returns to ring 0.
extern "C" fn user_main(p: *mut UserParams) -> ! {
    // SAFETY: PARAMS is a static mapped user-accessible; ring 0 waits in
    // enter_user and does not touch it meanwhile.
    let p = unsafe { &mut *p };
    let port = p.port;
    let t = match p.row {
        0 => run_loops(p.warmup, p.n, p.batch, p.out, || {}),
        // SAFETY (each asm): NOP; CPUID; OUT to the debugcon port (IOPL 3).
        1 => run_loops(p.warmup, p.n, p.batch, p.out, || unsafe {
            asm!("nop", options(nostack))
        }),
        2 => run_loops(p.warmup, p.n, p.batch, p.out, || {
            core::hint::black_box(cpuid(0, 0).eax);
        }),
        3 => run_loops(p.warmup, p.n, p.batch, p.out, || outb(port, 0)),
        4 => run_loops(p.warmup, p.n, p.batch, p.out, || sys(1, 0)),
        6 => run_loops(p.warmup, p.n, p.batch, p.out, || sys(2, 0)),
        7 => run_loops(p.warmup, p.n, p.batch, p.out, || sys(3, u64::from(port))),
        _ => 0,
    };
    p.batch_ticks = t;
    sys(0, 0);
    // Not reached: SYSCALL 0 resumes ring 0 in enter_user.
    loop {
        core::hint::spin_loop();
    }
}

/// Runs `entry` in ring 3 until it makes SYSCALL 0.
fn run_user(entry: extern "C" fn(*mut UserParams) -> !) {
    // SAFETY: single CPU; enter_user returns once ring 3 makes SYSCALL 0;
    // PARAMS and the user stack are statics reserved for ring 3.
    unsafe {
        let top = (&raw mut USER_STACK as *mut u8).add(65536);
        enter_user(entry, top, &raw mut PARAMS);
    }
}

fn under_tcg() -> bool {
    hypervisor_sig().starts_with(b"TCG")
}

fn hypervisor_sig() -> [u8; 12] {
    let mut sig = [0u8; 12];
    if cpuid(1, 0).ecx & (1 << 31) != 0 {
        let c = cpuid(0x4000_0000, 0);
        sig[0..4].copy_from_slice(&c.ebx.to_le_bytes());
        sig[4..8].copy_from_slice(&c.ecx.to_le_bytes());
        sig[8..12].copy_from_slice(&c.edx.to_le_bytes());
    }
    sig
}

/// Runs one row; Err = (status, message).
fn run_row(s: &Shm, args: &[u64; 6]) -> Result<u64, (u32, &'static str)> {
    let (row, n, warmup, batch) = (args[0], args[1], args[2], args[3]);
    let port = match args[4] {
        0 => 0xe9u16,
        p if p <= 0xffff => p as u16,
        _ => return Err((ST_BADARGS, "port out of range")),
    };
    if row >= ROW_IDS.len() as u64 {
        return Err((ST_BADARGS, "unknown row"));
    }
    if n == 0 || n > s.capacity() {
        return Err((ST_BADARGS, "samples must be 1..=the data area's capacity"));
    }
    let out = s.data();
    let amd = cpuid(0, 0).ebx == u32::from_le_bytes(*b"Auth");
    let ticks = match row {
        0..=4 | 6 | 7 => {
            // SAFETY: PARAMS is only touched here and by user_main, which runs
            // to completion inside enter_user before we read it back.
            unsafe {
                let p = &raw mut PARAMS;
                (*p).row = row as u32;
                (*p).port = port;
                (*p).warmup = warmup;
                (*p).n = n;
                (*p).batch = batch;
                (*p).out = out;
                (*p).batch_ticks = 0;
                run_user(user_main);
                (*p).batch_ticks
            }
        }
        5 => {
            return Err((
                ST_UNSUPPORTED,
                "null-ioctl: no ioctl in the micro-guest (null-syscall is its user->kernel baseline)",
            ));
        }
        8 => run_loops_k(warmup, n, batch, out, || {}),
        // SAFETY (each asm below): CPL0 with interrupts off; the instruction
        // exits to the hypervisor (or is a NOP); no memory is touched.
        9 => run_loops_k(warmup, n, batch, out, || unsafe {
            asm!("nop", options(nostack))
        }),
        10 => run_loops_k(warmup, n, batch, out, || {
            core::hint::black_box(cpuid(0, 0).eax);
        }),
        11 => run_loops_k(warmup, n, batch, out, || outb(port, 0)),
        12 => run_loops_k(warmup, n, batch, out, || {
            core::hint::black_box(rdmsr(0x1b));
        }),
        13 => {
            if cpuid(1, 0).ecx & (1 << 24) == 0 {
                return Err((
                    ST_UNSUPPORTED,
                    "kernel-wrmsr-tsc-deadline: the guest CPU has no TSC-deadline timer",
                ));
            }
            let v = rdmsr(0x6e0);
            run_loops_k(warmup, n, batch, out, || wrmsr(0x6e0, v))
        }
        14 => run_loops_k(warmup, n, batch, out, || unsafe {
            asm!("invd", options(nostack))
        }),
        15 => run_loops_k(warmup, n, batch, out, || {
            core::hint::black_box(inb(0x4d0));
        }),
        16 => run_loops_k(warmup, n, batch, out, || {
            core::hint::black_box(inb(0x1234));
        }),
        17 => {
            if under_tcg() {
                return Err((ST_UNSUPPORTED, "kernel-vmcall: VMCALL raises #UD under TCG"));
            }
            if amd {
                run_loops_k(warmup, n, batch, out, || unsafe {
                    asm!("vmmcall", inout("rax") 0u64 => _, options(nostack))
                })
            } else {
                run_loops_k(warmup, n, batch, out, || unsafe {
                    asm!("vmcall", inout("rax") 0u64 => _, options(nostack))
                })
            }
        }
        _ => return Err((ST_BADARGS, "unknown row")),
    };
    Ok(ticks)
}

fn rdtsc_p50() -> u64 {
    let mut d = [0u64; 501];
    for x in d.iter_mut() {
        let a = t_start();
        *x = t_start().wrapping_sub(a);
    }
    d.sort_unstable();
    d[250]
}

fn spec_json(b: &mut Buf, s: &Shm, dev: u32) {
    let sig = hypervisor_sig();
    let sig_len = sig.iter().position(|&c| c == 0).unwrap_or(12);
    let sig = core::str::from_utf8(&sig[..sig_len]).unwrap_or("?");
    let v = cpuid(0, 0);
    let mut vendor = [0u8; 12];
    vendor[0..4].copy_from_slice(&v.ebx.to_le_bytes());
    vendor[4..8].copy_from_slice(&v.edx.to_le_bytes());
    vendor[8..12].copy_from_slice(&v.ecx.to_le_bytes());
    let mut brand = [0u8; 48];
    for (i, leaf) in (0x8000_0002u32..=0x8000_0004).enumerate() {
        let c = cpuid(leaf, 0);
        for (j, r) in [c.eax, c.ebx, c.ecx, c.edx].iter().enumerate() {
            brand[i * 16 + j * 4..i * 16 + j * 4 + 4].copy_from_slice(&r.to_le_bytes());
        }
    }
    let blen = brand.iter().position(|&c| c == 0).unwrap_or(48);
    let brand = core::str::from_utf8(&brand[..blen]).unwrap_or("?").trim();
    let leaf1 = cpuid(1, 0);
    let ext7 = cpuid(0x8000_0007, 0);
    let flags: [(&str, bool); 3] = [
        ("invariant_tsc", ext7.edx & (1 << 8) != 0),
        ("tsc_deadline_timer", leaf1.ecx & (1 << 24) != 0),
        ("hypervisor", leaf1.ecx & (1 << 31) != 0),
    ];
    let p50 = rdtsc_p50();
    let tcg = sig.starts_with("TCG");
    b.s(r#"{"agent_version":"micro-guest "#)
        .s(env!("CARGO_PKG_VERSION"));
    b.s(r#"","protocol_version":"#)
        .u(u64::from(PROTOCOL_VERSION));
    b.s(r#","kernel_release":"none (vmbench micro-guest, no OS)","kernel_version":"","cmdline":"","#);
    b.s(r#""cpu_vendor":"#)
        .q(core::str::from_utf8(&vendor).unwrap_or("?"));
    b.s(r#","cpu_model_name":"#).q(brand).s(r#","cpu_flags":["#);
    for (i, (name, on)) in flags.iter().enumerate() {
        b.s(if i > 0 { "," } else { "" })
            .s("\"")
            .s(if *on { "+" } else { "-" })
            .s(name)
            .s("\"");
    }
    b.s(r#"],"hypervisor":"#);
    if sig.is_empty() {
        b.s("null");
    } else {
        b.q(sig);
    }
    b.s(r#","clocksource":"none (no OS)","tsc_khz_kernel":null,"tsc_khz_calibrated":null,"rdtsc_ticks_p50":"#).u(p50);
    let verdict = if tcg {
        "not applicable under TCG: QEMU emulates RDTSC, there are no exits"
    } else if p50 > 1000 {
        "RDTSC appears to exit (thousands of ticks between back-to-back reads)"
    } else {
        "not intercepted"
    };
    b.s(r#","rdtsc_exiting":""#)
        .s(verdict)
        .s(" (")
        .u(p50)
        .s(r#" ticks back to back)","online_cpus":1,"mem_total_kib":0,"#);
    b.s(r#""mapping":"identity","mapping_note":"BAR2 at "#)
        .x(s.base)
        .s(r#", identity-mapped; memory type from the firmware's MTRRs","#);
    b.s(r#""shm_bytes":"#)
        .u(s.len)
        .s(r#","pci_address":"0000:00:"#);
    b.put(&[
        b"0123456789abcdef"[(dev >> 4) as usize & 0xf],
        b"0123456789abcdef"[dev as usize & 0xf],
    ]);
    b.s(r#".0","iv_position":null,"msix_vectors":0,"uptime_at_ready_ms":0}"#);
}

#[unsafe(no_mangle)]
extern "C" fn rust_main() -> ! {
    Serial.s("micro-guest: long mode\n");
    setup_cpu();
    let Some((dev, bar2)) = find_ivshmem() else {
        Serial.s("micro-guest: no ivshmem device (1af4:1110) on PCI bus 0\n");
        qemu_exit(5);
    };
    if bar2 == 0 {
        Serial.s("micro-guest: ivshmem BAR2 is unassigned\n");
        qemu_exit(5);
    }
    if let Err(e) = map_identity(bar2, 2 << 20) {
        Serial
            .s("micro-guest: cannot map BAR2 at ")
            .x(bar2)
            .s(": ")
            .s(e)
            .s("\n");
        qemu_exit(5);
    }
    let mut shm = Shm {
        base: bar2,
        len: MIN_REGION_BYTES as u64,
    };
    Serial
        .s("micro-guest: ivshmem at device ")
        .u(u64::from(dev))
        .s(", BAR2 ")
        .x(bar2)
        .s("; waiting for the host\n");
    loop {
        let session = attach(&shm);
        let region = shm.u64(H_REGION_BYTES).load(Relaxed);
        if region < MIN_REGION_BYTES as u64 || map_identity(bar2, region).is_err() {
            Serial.s("micro-guest: bad region size ").u(region).s("\n");
            qemu_exit(5);
        }
        shm.len = region;
        let mut last = shm.u64(GC_RESP_SEQ).load(Relaxed);
        loop {
            if shm.u32(HC_STATE).load(Acquire) != 1 || shm.u64(HC_SESSION).load(Relaxed) != session
            {
                break; // host gone or restarted: attach again
            }
            let seq = shm.u64(HC_CMD_SEQ).load(Acquire);
            if seq == last {
                core::hint::spin_loop();
                continue;
            }
            last = seq;
            let cmd = shm.u32(HC_CMD).load(Relaxed);
            let mut args = [0u64; 6];
            for (i, a) in args.iter_mut().enumerate() {
                *a = shm.u64(HC_ARGS + 8 * i).load(Relaxed);
            }
            shm.u32(GC_STATE).store(2, Release); // Busy
            // SAFETY: BUF is used only here, on this single thread.
            // `&mut BUF` directly is denied (static_mut_refs): go through a raw pointer.
            #[allow(clippy::deref_addrof)]
            let b = unsafe { &mut *(&raw mut BUF) };
            b.n = 0;
            b.full = false;
            match cmd {
                1 => respond(&shm, seq, ST_OK, &args[0].to_le_bytes()),
                2 => {
                    spec_json(b, &shm, dev);
                    respond(&shm, seq, if b.full { 3 } else { ST_OK }, &b.b[..b.n]);
                }
                3 => {
                    respond(&shm, seq, ST_OK, b"");
                    shm.u32(GC_STATE).store(4, Release); // Exited
                    qemu_exit(0);
                }
                6 => match run_row(&shm, &args) {
                    Ok(ticks) => {
                        b.s(r#"{"row":""#).s(ROW_IDS[args[0] as usize]);
                        b.s(r#"","samples":"#)
                            .u(args[1])
                            .s(r#","warmup":"#)
                            .u(args[2]);
                        b.s(r#","batch_iterations":"#)
                            .u(args[3])
                            .s(r#","batch_ticks":"#)
                            .u(ticks)
                            .s("}");
                        respond(&shm, seq, ST_OK, &b.b[..b.n]);
                    }
                    Err((st, msg)) => respond(&shm, seq, st, msg.as_bytes()),
                },
                // SelfTest: prove the fault path (an undefined instruction in
                // ring 0 must end the run with the vector and RIP on the console).
                4 => {
                    // SAFETY: UD2 raises #UD, which rust_exception reports before
                    // ending QEMU; nothing after it runs.
                    unsafe { asm!("ud2", options(nostack)) };
                    respond(&shm, seq, 3, b"ud2 did not fault");
                }
                _ => respond(&shm, seq, ST_UNKNOWN, b""),
            }
        }
    }
}
