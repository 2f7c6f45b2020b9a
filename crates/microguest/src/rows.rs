//! The VM-exit rows: the same timed windows as the Linux guest's rows
//! (`vmbench_abi::timing`), with ring 3 entered directly instead of through
//! a process, and the user→kernel rows carried by SYSCALL instead of ioctl.

use crate::cpu::{run_user, sys, syscall};
use crate::io::{
    IA32_APIC_BASE, IA32_TSC_ADJUST, IA32_TSC_DEADLINE, PIC_ELCR1, UNASSIGNED_PORT, hypercall_none,
    inb, inl, invd, nop, outb, rdmsr, wrmsr,
};
use crate::region::Shm;
use crate::spec::{cpu_is_amd, has_tsc_adjust, has_tsc_deadline, under_tcg};
use vmbench_abi::timing::{cpuid, rdtsc_unfenced, t_end, t_end_lfence, t_start};
use vmbench_abi::{DEFAULT_DEBUGCON_PORT, row, run_vmexit_flags, status};

/// What a ring-3 row needs; lives in a static the user code can reach.
#[repr(C)]
pub struct UserParams {
    row: u32,
    port: u16,
    warmup: u64,
    samples: u64,
    batch: u64,
    out: *mut u64,
    batch_ticks: u64,
}

static mut PARAMS: UserParams = UserParams {
    row: 0,
    port: DEFAULT_DEBUGCON_PORT,
    warmup: 0,
    samples: 0,
    batch: 0,
    out: core::ptr::null_mut(),
    batch_ticks: 0,
};

/// One row's request: `RUN_VMEXIT`'s arguments, checked.
struct Request {
    row: u32,
    samples: u64,
    warmup: u64,
    batch: u64,
    port: u16,
    out: *mut u64,
    /// [`run_vmexit_flags::TEST_SUBSTITUTE`] given.
    substitute: bool,
}

/// A refused request: the status and the message for the mailbox.
pub type Refusal = (u32, &'static str);

/// What a row run answers besides its samples.
pub struct Ran {
    /// Ticks of the timed batch (0 for the reproduction rows: no batch).
    pub batch_ticks: u64,
    /// Executions of the instruction, when this guest chose how many.
    pub executions: Option<u64>,
}

/// Runs the row `args` names (`[row, samples, warmup, batch, port, flags]`),
/// samples to the data area.
pub fn run(shm: &Shm, args: &[u64; 6]) -> Result<Ran, Refusal> {
    let port = match args[4] {
        0 => DEFAULT_DEBUGCON_PORT,
        p => u16::try_from(p).map_err(|_| (status::BAD_ARGS, "port out of range"))?,
    };
    let row = match u32::try_from(args[0]) {
        Ok(n) if row::id(args[0]).is_some() => n,
        _ => return Err((status::BAD_ARGS, "unknown row")),
    };
    let samples = args[1];
    if samples == 0 || samples > shm.capacity() {
        return Err((
            status::BAD_ARGS,
            "samples must be 1..=the data area's capacity",
        ));
    }
    let flags = args[5];
    if flags & !run_vmexit_flags::TEST_SUBSTITUTE != 0 {
        return Err((status::BAD_ARGS, "unknown flags"));
    }
    let substitute = flags & run_vmexit_flags::TEST_SUBSTITUTE != 0;
    if substitute && row != row::KERNEL_FAST {
        return Err((
            status::BAD_ARGS,
            "the test substitution exists for kernel-fast only",
        ));
    }
    let req = Request {
        row,
        samples,
        warmup: args[2],
        batch: args[3],
        port,
        out: shm.data(),
        substitute,
    };
    let batch_ticks = match row {
        row::TIMER_OVERHEAD
        | row::USER_NOP
        | row::USER_FAST
        | row::USER_SLOW
        | row::NULL_SYSCALL
        | row::USER_KERNEL_FAST
        | row::USER_KERNEL_SLOW => in_ring3(&req),
        row::NULL_IOCTL => {
            return Err((
                status::UNSUPPORTED,
                "null-ioctl: no ioctl in the micro-guest (null-syscall is its user->kernel baseline)",
            ));
        }
        r if r >= row::FIRST_KUT => {
            return kvm_unit_tests_row(&req).map(|executions| Ran {
                batch_ticks: 0,
                executions: Some(executions),
            });
        }
        _ => in_ring0(&req)?,
    };
    Ok(Ran {
        batch_ticks,
        executions: None,
    })
}

/// kvm-unit-tests' `x86/vmexit` loop: bare RDTSC around `iterations` back
/// to back executions, `iterations` doubled from 64 until the loop takes at
/// least 2^30 ticks; one sample = that loop's ticks / iterations. Returns
/// every execution, the discarded shorter loops included.
fn kut_time(req: &Request, mut body: impl FnMut()) -> u64 {
    const GOAL: u64 = 1 << 30;
    let mut executions = 0u64;
    for i in 0..req.samples {
        let mut iterations = 32u64;
        let per = loop {
            iterations *= 2;
            let t1 = rdtsc_unfenced();
            for _ in 0..iterations {
                body();
            }
            let t2 = rdtsc_unfenced();
            executions += iterations;
            if t2.wrapping_sub(t1) >= GOAL {
                break t2.wrapping_sub(t1) / iterations;
            }
        };
        // SAFETY: `out` is the data area, checked to hold `samples` u64.
        unsafe { core::ptr::write_volatile(req.out.add(i as usize), per) };
    }
    executions
}

/// kvm-unit-tests' instructions, its way.
fn kvm_unit_tests_row(req: &Request) -> Result<u64, Refusal> {
    Ok(match req.row {
        row::KUT_CPUID => {
            // kvm-unit-tests does not set eax: each CPUID takes the leaf the
            // previous one left in it.
            let mut leaf = 0;
            kut_time(req, || leaf = cpuid(leaf, 0).eax)
        }
        row::KUT_VMCALL => {
            if under_tcg() {
                return Err((
                    status::UNSUPPORTED,
                    "kut-vmcall: VMCALL raises #UD under TCG",
                ));
            }
            let amd = cpu_is_amd();
            kut_time(req, || hypercall_none(amd))
        }
        row::KUT_INL_FROM_QEMU => kut_time(req, || {
            core::hint::black_box(inl(UNASSIGNED_PORT));
        }),
        row::KUT_INL_FROM_KERNEL => kut_time(req, || {
            core::hint::black_box(inb(PIC_ELCR1));
        }),
        row::KUT_OUTL_TO_KERNEL => kut_time(req, || outb(PIC_ELCR1, 0)),
        row::KUT_RD_TSC_ADJUST_MSR | row::KUT_WR_TSC_ADJUST_MSR => {
            if !has_tsc_adjust() {
                return Err((
                    status::UNSUPPORTED,
                    "the guest CPU has no IA32_TSC_ADJUST (CPUID.7:EBX[1])",
                ));
            }
            if req.row == row::KUT_RD_TSC_ADJUST_MSR {
                kut_time(req, || {
                    core::hint::black_box(rdmsr(IA32_TSC_ADJUST));
                })
            } else {
                kut_time(req, || wrmsr(IA32_TSC_ADJUST, 0))
            }
        }
        _ => return Err((status::BAD_ARGS, "unknown row")),
    })
}

/// The timed loops, shared by ring 0 and ring 3: warm-up (discarded),
/// `samples` windows stored outside the timed window, then one timed batch.
/// `end` closes each window.
#[inline(always)]
fn time(end: fn() -> u64, req: &Request, mut body: impl FnMut()) -> u64 {
    for _ in 0..req.warmup {
        let t0 = t_start();
        body();
        core::hint::black_box(end().wrapping_sub(t0));
    }
    for i in 0..req.samples {
        let t0 = t_start();
        body();
        let ticks = end().wrapping_sub(t0);
        // SAFETY: `out` is the data area, checked to hold `samples` u64.
        unsafe { core::ptr::write_volatile(req.out.add(i as usize), ticks) };
    }
    let t0 = t_start();
    for _ in 0..req.batch {
        body();
    }
    end().wrapping_sub(t0)
}

/// Ring-0 windows end with `t_end_lfence`: RDTSCP at CPL0 stops the VM on
/// some hosts (see `vmbench_abi::timing`).
fn in_ring0(req: &Request) -> Result<u64, Refusal> {
    let port = req.port;
    Ok(match req.row {
        row::KERNEL_TIMER_OVERHEAD => time(t_end_lfence, req, || {}),
        row::KERNEL_NOP => time(t_end_lfence, req, nop),
        // Test only: RDMSR where the row names CPUID (see run_vmexit_flags).
        row::KERNEL_FAST if req.substitute => time(t_end_lfence, req, || {
            core::hint::black_box(rdmsr(IA32_APIC_BASE));
        }),
        row::KERNEL_FAST => time(t_end_lfence, req, || {
            core::hint::black_box(cpuid(0, 0).eax);
        }),
        row::KERNEL_SLOW => time(t_end_lfence, req, || outb(port, 0)),
        row::KERNEL_RDMSR => time(t_end_lfence, req, || {
            core::hint::black_box(rdmsr(IA32_APIC_BASE));
        }),
        row::KERNEL_WRMSR_TSC_DEADLINE => {
            if !has_tsc_deadline() {
                return Err((
                    status::UNSUPPORTED,
                    "kernel-wrmsr-tsc-deadline: the guest CPU has no TSC-deadline timer",
                ));
            }
            // The LAPIC timer in TSC-deadline mode (masked: it never
            // interrupts), so that every write arms a real timer; the same
            // deadline far in the future each time, so every iteration takes
            // the same KVM path (re-arm), never "expired" or "disarmed".
            crate::cpu::lapic_timer_tsc_deadline_masked();
            let future = t_start().wrapping_add(1 << 40);
            let ticks = time(t_end_lfence, req, || wrmsr(IA32_TSC_DEADLINE, future));
            wrmsr(IA32_TSC_DEADLINE, 0);
            ticks
        }
        row::KERNEL_INVD => time(t_end_lfence, req, invd),
        row::KERNEL_PIO => time(t_end_lfence, req, || {
            core::hint::black_box(inb(PIC_ELCR1));
        }),
        row::KERNEL_INB_QEMU => time(t_end_lfence, req, || {
            core::hint::black_box(inb(UNASSIGNED_PORT));
        }),
        row::KERNEL_VMCALL => {
            if under_tcg() {
                return Err((
                    status::UNSUPPORTED,
                    "kernel-vmcall: VMCALL raises #UD under TCG",
                ));
            }
            let amd = cpu_is_amd();
            time(t_end_lfence, req, || hypercall_none(amd))
        }
        _ => return Err((status::BAD_ARGS, "unknown row")),
    })
}

/// Runs a user row in ring 3 and returns its batch ticks.
fn in_ring3(req: &Request) -> u64 {
    // SAFETY: PARAMS is only touched here and by user_main, which runs to
    // completion inside run_user before it is read back.
    unsafe {
        let p = &raw mut PARAMS;
        (*p).row = req.row;
        (*p).port = req.port;
        (*p).warmup = req.warmup;
        (*p).samples = req.samples;
        (*p).batch = req.batch;
        (*p).out = req.out;
        (*p).batch_ticks = 0;
        run_user(user_main, p);
        (*p).batch_ticks
    }
}

/// Ring-3 entry: runs the row in PARAMS, then SYSCALL RETURN to ring 0.
extern "C" fn user_main(p: *mut UserParams) -> ! {
    // SAFETY: PARAMS is a static mapped user-accessible; ring 0 waits in
    // run_user and does not touch it meanwhile.
    let p = unsafe { &mut *p };
    let req = Request {
        row: p.row,
        samples: p.samples,
        warmup: p.warmup,
        batch: p.batch,
        port: p.port,
        out: p.out,
        substitute: false,
    };
    let port = req.port;
    p.batch_ticks = match req.row {
        row::TIMER_OVERHEAD => time(t_end, &req, || {}),
        row::USER_NOP => time(t_end, &req, nop),
        row::USER_FAST => time(t_end, &req, || {
            core::hint::black_box(cpuid(0, 0).eax);
        }),
        // IOPL 3 (and the TSS's all-zero I/O bitmap) let ring 3 do port I/O.
        row::USER_SLOW => time(t_end, &req, || outb(port, 0)),
        row::NULL_SYSCALL => time(t_end, &req, || sys(syscall::NULL, 0)),
        row::USER_KERNEL_FAST => time(t_end, &req, || sys(syscall::CPUID, 0)),
        row::USER_KERNEL_SLOW => time(t_end, &req, || sys(syscall::OUTB, u64::from(port))),
        _ => 0,
    };
    sys(syscall::RETURN, 0);
    // Not reached: SYSCALL RETURN resumes ring 0 in run_user.
    loop {
        core::hint::spin_loop();
    }
}
