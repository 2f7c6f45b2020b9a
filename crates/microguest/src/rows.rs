//! The VM-exit rows: the same timed windows as the Linux guest's rows
//! (`vmbench_abi::timing`), with ring 3 entered directly instead of through
//! a process, and the user→kernel rows carried by SYSCALL instead of ioctl.

use crate::apic::{self, Lapic};
use crate::cpu::{run_user, sys, syscall};
use crate::io::{
    IA32_APIC_BASE, IA32_TSC_ADJUST, IA32_TSC_DEADLINE, PIC_ELCR1, UNASSIGNED_PORT, hypercall_none,
    inb, inl, invd, nop, outb, rdmsr, wrmsr,
};
use crate::region::Shm;
use crate::spec::{
    cpu_is_amd, has_pred_cmd, has_spec_ctrl, has_tsc_adjust, has_tsc_deadline, under_tcg,
};
use crate::testdev::{self, Space, Target};
use vmbench_abi::testdev::{TEST_NO_EVENTFD, TEST_WILDCARD_EVENTFD};
use vmbench_abi::timing::{cpuid, rdtsc_unfenced, t_end, t_end_lfence, t_start};
use vmbench_abi::{DEFAULT_DEBUGCON_PORT, IPI_VECTOR, row, run_vmexit_flags, status};

/// IA32_SPEC_CTRL and IA32_PRED_CMD (the IBPB command MSR).
const IA32_SPEC_CTRL: u32 = 0x48;
const IA32_PRED_CMD: u32 = 0x49;
const PRED_CMD_IBPB: u64 = 1;

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
    /// The pci-testdev register of the MMIO and PIO rows, and its value.
    io_addr: u64,
    io_data: u8,
    /// [`run_vmexit_flags::TEST_SUBSTITUTE`] given.
    substitute: bool,
}

static mut PARAMS: UserParams = UserParams {
    row: 0,
    port: DEFAULT_DEBUGCON_PORT,
    warmup: 0,
    samples: 0,
    batch: 0,
    out: core::ptr::null_mut(),
    batch_ticks: 0,
    io_addr: 0,
    io_data: 0,
    substitute: false,
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
    /// Writes QEMU's pci-testdev served itself (its own count), for the
    /// MMIO and PIO rows.
    pub device_writes: Option<u64>,
}

/// Runs the row `args` names (`[row, samples, warmup, batch, port, flags]`),
/// samples to the data area, between the two CPUIDs of the host's liveness
/// witness (vmbench_abi::WITNESS_CPUID_LEAF).
pub fn run(shm: &Shm, args: &[u64; 6]) -> Result<Ran, Refusal> {
    core::hint::black_box(cpuid(vmbench_abi::WITNESS_CPUID_LEAF, 0).eax);
    let ran = run_row(shm, args);
    core::hint::black_box(cpuid(vmbench_abi::WITNESS_CPUID_LEAF, 0).eax);
    ran
}

fn run_row(shm: &Shm, args: &[u64; 6]) -> Result<Ran, Refusal> {
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
    if substitute
        && !matches!(
            row,
            row::KERNEL_FAST | row::USER_FAST | row::USER_KERNEL_FAST
        )
    {
        return Err((
            status::BAD_ARGS,
            "the test substitution exists for kernel-fast, user-fast and user-kernel-fast only",
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
    let target = testdev_target(row)?;
    let batch_ticks = match row {
        row::TIMER_OVERHEAD
        | row::USER_NOP
        | row::USER_FAST
        | row::USER_SLOW
        | row::NULL_SYSCALL
        | row::USER_KERNEL_FAST
        | row::USER_KERNEL_SLOW
        | row::USER_MMIO_QEMU
        | row::USER_MMIO_IOEVENTFD
        | row::USER_PIO_QEMU
        | row::USER_PIO_IOEVENTFD => in_ring3(&req, target),
        row::NULL_IOCTL => {
            return Err((
                status::UNSUPPORTED,
                "null-ioctl: no ioctl in the micro-guest (null-syscall is its user->kernel baseline)",
            ));
        }
        r if row::is_kut(r) => {
            return kvm_unit_tests_row(&req).map(|executions| Ran {
                batch_ticks: 0,
                executions: Some(executions),
                device_writes: None,
            });
        }
        _ => in_ring0(&req, target)?,
    };
    Ok(Ran {
        batch_ticks,
        executions: None,
        device_writes: target.map(|t| t.served_by_qemu()),
    })
}

/// The pci-testdev test an MMIO or PIO row uses, selected; None for the
/// other rows.
fn testdev_target(r: u32) -> Result<Option<Target>, Refusal> {
    let (space, test) = match r {
        row::USER_MMIO_QEMU | row::KERNEL_MMIO_QEMU => (Space::Mmio, TEST_NO_EVENTFD),
        row::USER_MMIO_IOEVENTFD | row::KERNEL_MMIO_IOEVENTFD => {
            (Space::Mmio, TEST_WILDCARD_EVENTFD)
        }
        row::USER_PIO_QEMU | row::KERNEL_PIO_QEMU => (Space::Pio, TEST_NO_EVENTFD),
        row::USER_PIO_IOEVENTFD | row::KERNEL_PIO_IOEVENTFD => (Space::Pio, TEST_WILDCARD_EVENTFD),
        _ => return Ok(None),
    };
    let dev = testdev::device().ok_or((
        status::UNSUPPORTED,
        "no pci-testdev (1b36:0005) with both BARs assigned in this VM",
    ))?;
    Ok(Some(testdev::select(dev, space, test)))
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
                    "kut-method-vmcall: VMCALL raises #UD under TCG",
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
fn in_ring0(req: &Request, target: Option<Target>) -> Result<u64, Refusal> {
    let port = req.port;
    if let Some(t) = target {
        let (addr, data) = (t.addr, t.data);
        return Ok(match t.space {
            Space::Mmio => time(t_end_lfence, req, || {
                // SAFETY: the test's register in pci-testdev's BAR0, identity-mapped.
                unsafe { core::ptr::write_volatile(addr as *mut u8, data) }
            }),
            Space::Pio => time(t_end_lfence, req, || outb(addr as u16, data)),
        });
    }
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
        row::KERNEL_SELF_IPI | row::KERNEL_EOI | row::KERNEL_IPI_HALT => interrupt_row(req)?,
        row::KERNEL_WRMSR_IBPB => {
            if !has_pred_cmd() {
                return Err((
                    status::UNSUPPORTED,
                    "kernel-wrmsr-ibpb: the guest CPU has no IA32_PRED_CMD (IBPB: CPUID.7:EDX[26] or 80000008h:EBX[12])",
                ));
            }
            time(t_end_lfence, req, || wrmsr(IA32_PRED_CMD, PRED_CMD_IBPB))
        }
        row::KERNEL_WRMSR_SPEC_CTRL => {
            if !has_spec_ctrl() {
                return Err((
                    status::UNSUPPORTED,
                    "kernel-wrmsr-spec-ctrl: the guest CPU has no IA32_SPEC_CTRL (CPUID.7:EDX[26] or 80000008h:EBX[14])",
                ));
            }
            let value = rdmsr(IA32_SPEC_CTRL);
            time(t_end_lfence, req, || wrmsr(IA32_SPEC_CTRL, value))
        }
        row::KERNEL_MOV_CR8 => time(t_end_lfence, req, || {
            // SAFETY: CPL0 in long mode; TPR 0 is what it already holds
            // (nothing here ever raises it), so no interrupt is masked.
            unsafe { core::arch::asm!("mov cr8, {0}", in(reg) 0u64, options(nostack)) }
        }),
        _ => return Err((status::BAD_ARGS, "unknown row")),
    })
}

/// The interrupt rows: each iteration waits until its interrupt was taken
/// (boot.s's `ipi_isr` counts it), so none is left pending for the next.
fn interrupt_row(req: &Request) -> Result<u64, Refusal> {
    let lapic = Lapic::get();
    lapic.enable();
    Ok(match req.row {
        row::KERNEL_EOI => time(t_end_lfence, req, || lapic.eoi()),
        row::KERNEL_SELF_IPI => time(t_end_lfence, req, || {
            let before = apic::taken();
            lapic.send_self(IPI_VECTOR);
            // SAFETY: the only interrupt that can arrive is the row's own,
            // whose handler EOIs and returns; IF is cleared again below.
            unsafe { core::arch::asm!("sti", options(nostack)) };
            while apic::taken() == before {
                core::hint::spin_loop();
            }
            // SAFETY: back to the rows' interrupts-off state.
            unsafe { core::arch::asm!("cli", options(nostack)) };
        }),
        row::KERNEL_IPI_HALT => {
            let Some(other) = crate::smp::second_cpu() else {
                return Err((
                    status::UNSUPPORTED,
                    "kernel-ipi-halt: no second vCPU answered INIT/STARTUP (boot the guest with --vcpus 2)",
                ));
            };
            lapic.set_destination(other);
            time(t_end_lfence, req, || {
                let before = apic::taken();
                lapic.send(IPI_VECTOR);
                while apic::taken() == before {
                    core::hint::spin_loop();
                }
            })
        }
        _ => return Err((status::BAD_ARGS, "unknown row")),
    })
}

/// Runs a user row in ring 3 and returns its batch ticks.
fn in_ring3(req: &Request, target: Option<Target>) -> u64 {
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
        (*p).io_addr = target.map_or(0, |t| t.addr);
        (*p).io_data = target.map_or(0, |t| t.data);
        (*p).substitute = req.substitute;
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
        substitute: p.substitute,
    };
    let port = req.port;
    p.batch_ticks = match req.row {
        row::TIMER_OVERHEAD => time(t_end, &req, || {}),
        row::USER_NOP => time(t_end, &req, nop),
        // Test only: no CPUID where the row names one (see run_vmexit_flags).
        row::USER_FAST if req.substitute => time(t_end, &req, nop),
        row::USER_FAST => time(t_end, &req, || {
            core::hint::black_box(cpuid(0, 0).eax);
        }),
        // IOPL 3 (and the TSS's all-zero I/O bitmap) let ring 3 do port I/O.
        row::USER_SLOW => time(t_end, &req, || outb(port, 0)),
        row::NULL_SYSCALL => time(t_end, &req, || sys(syscall::NULL, 0)),
        row::USER_KERNEL_FAST if req.substitute => time(t_end, &req, || sys(syscall::NULL, 0)),
        row::USER_KERNEL_FAST => time(t_end, &req, || sys(syscall::CPUID, 0)),
        row::USER_KERNEL_SLOW => time(t_end, &req, || sys(syscall::OUTB, u64::from(port))),
        row::USER_MMIO_QEMU | row::USER_MMIO_IOEVENTFD => {
            let (addr, data) = (p.io_addr, p.io_data);
            // SAFETY: the test's register in pci-testdev's BAR0, identity-mapped
            // user-accessible like the rest of the first 4 GiB.
            time(t_end, &req, || unsafe {
                core::ptr::write_volatile(addr as *mut u8, data)
            })
        }
        row::USER_PIO_QEMU | row::USER_PIO_IOEVENTFD => {
            let (port, data) = (p.io_addr as u16, p.io_data);
            time(t_end, &req, || outb(port, data))
        }
        _ => 0,
    };
    sys(syscall::RETURN, 0);
    // Not reached: SYSCALL RETURN resumes ring 0 in run_user.
    loop {
        core::hint::spin_loop();
    }
}
