//! The guest side of the VM-exit suite: timed loops in this process (user
//! rows), around ioctls (user→kernel rows), and in the module (kernel rows).

use crate::kmod::{self, Insn};
use std::arch::asm;
use std::os::fd::AsRawFd;
use vmbench_proto::timing::{cpuid, t_end, t_start};
use vmbench_proto::vmexit::{Mode, Row, RowRun};

/// CPUID leaf 0: the exiting instruction of the fast rows.
#[inline(always)]
fn cpuid0() {
    let _ = cpuid(0, 0);
}

#[inline(always)]
fn outb(port: u16) {
    // SAFETY: the port was opened with ioperm(); writing 0 to the debugcon
    // port has no effect on this process's memory.
    unsafe { asm!("out dx, al", in("dx") port, in("al") 0u8, options(nostack, preserves_flags)) };
}

#[inline(always)]
fn null_syscall() {
    // SAFETY: getppid (110) takes no arguments and touches no memory;
    // SYSCALL clobbers rcx and r11.
    unsafe {
        asm!("syscall", inlateout("rax") 110usize => _, lateout("rcx") _, lateout("r11") _, options(nostack))
    };
}

/// Runs `body` `n` times, recording each timed iteration (when `out` is given).
#[inline(always)]
fn timed(n: u64, out: Option<&mut Vec<u64>>, mut body: impl FnMut()) {
    match out {
        Some(v) => {
            for _ in 0..n {
                let t0 = t_start();
                body();
                v.push(t_end().wrapping_sub(t0));
            }
        }
        None => {
            for _ in 0..n {
                let t0 = t_start();
                body();
                std::hint::black_box(t_end().wrapping_sub(t0));
            }
        }
    }
}

#[inline(always)]
fn batch(n: u64, mut body: impl FnMut()) -> u64 {
    let t0 = t_start();
    for _ in 0..n {
        body();
    }
    t_end().wrapping_sub(t0)
}

/// Why a row could not run.
#[derive(Debug, thiserror::Error)]
pub enum VmexitError {
    /// The request is out of range.
    #[error("{0}")]
    BadArgs(String),
    /// The row ran and failed (an ioctl or syscall error).
    #[error("{0}")]
    Failed(String),
    /// This guest cannot run the row (CPU feature or privilege missing).
    #[error("{0}")]
    Unsupported(String),
}

fn kernel_insn(row: Row) -> Option<Insn> {
    Some(match row {
        Row::KernelTimerOverhead => Insn::None,
        Row::KernelNop => Insn::Nop,
        Row::KernelFast => Insn::Cpuid,
        Row::KernelSlow => Insn::Outb,
        Row::KernelRdmsr => Insn::Rdmsr,
        Row::KernelWrmsrTscDeadline => Insn::WrmsrTscDeadline,
        Row::KernelInvd => Insn::Invd,
        Row::KernelPio => Insn::Inb,
        Row::KernelInbQemu => Insn::Inb,
        Row::KernelVmcall => Insn::Vmcall,
        Row::KernelMmioQemu
        | Row::KernelMmioIoeventfd
        | Row::KernelPioQemu
        | Row::KernelPioIoeventfd => Insn::Testdev,
        Row::KernelEoi => Insn::Eoi,
        Row::KernelSelfIpi => Insn::SelfIpi,
        Row::KernelIpiHalt => Insn::IpiHalt,
        Row::KernelWrmsrIbpb => Insn::WrmsrIbpb,
        Row::KernelWrmsrSpecCtrl => Insn::WrmsrSpecCtrl,
        Row::KernelMovCr8 => Insn::MovCr8,
        _ => return None,
    })
}

fn port_for(row: Row, debugcon: u16) -> u16 {
    match row {
        Row::KernelPio => 0x4d0,
        Row::KernelInbQemu => 0x1234,
        _ => debugcon,
    }
}

/// One row to run: `warmup` discarded iterations, `samples` timed ones,
/// then `batch` back-to-back iterations timed as a whole.
#[derive(Debug, Clone, Copy)]
pub struct RowRequest {
    /// The row.
    pub row: Row,
    /// Timed iterations.
    pub samples: u64,
    /// Discarded iterations before the samples.
    pub warmup: u64,
    /// Back-to-back iterations timed as a whole.
    pub batch: u64,
    /// The port of the slow-path rows.
    pub debugcon: u16,
    /// QEMU TCG: VMCALL raises #UD there.
    pub under_tcg: bool,
}

/// Runs one row; the timed samples land in `samples`.
pub fn run_row(
    req: RowRequest,
    dev: Option<&std::fs::File>,
    samples: &mut Vec<u64>,
) -> Result<RowRun, VmexitError> {
    if req.row.reproduces_kvm_unit_tests() {
        return Err(VmexitError::Unsupported(format!(
            "{}: kvm-unit-tests' reproduction rows run in the OS-free micro-guest (--guest micro), as kvm-unit-tests does",
            req.row.id()
        )));
    }
    if req.row == Row::KernelVmcall && req.under_tcg {
        return Err(VmexitError::BadArgs(
            "VMCALL raises #UD under TCG: kernel-vmcall needs KVM".into(),
        ));
    }
    samples.clear();
    samples
        .try_reserve_exact(req.samples as usize)
        .map_err(|e| VmexitError::Failed(format!("sample buffer: {e}")))?;
    let target = match testdev_test(req.row) {
        Some((space, test)) => Some(select_testdev(
            req.row,
            need_dev(req.row, dev)?,
            space,
            test,
        )?),
        None => None,
    };
    let batch_ticks = match req.row.mode() {
        Mode::User | Mode::UserToKernel => user_row(&req, dev, target, samples)?,
        Mode::Kernel => kernel_row(&req, need_dev(req.row, dev)?, samples)?,
    };
    let device_writes = match (target, dev) {
        (Some(_), Some(dev)) => {
            Some(u64::from(kmod::testdev_count(dev).map_err(|e| {
                VmexitError::Failed(format!("VMBENCH_IOC_TESTDEV_COUNT: {e}"))
            })?))
        }
        _ => None,
    };
    Ok(RowRun {
        row: req.row.id().to_string(),
        samples: samples.len() as u64,
        warmup: req.warmup,
        batch_iterations: req.batch,
        batch_ticks,
        executions: None,
        device_writes,
    })
}

/// Executes CPUID [`vmbench_proto::vmexit::WITNESS_CPUID_LEAF`] once: the
/// event the host counts around each row to know its counters were live.
pub fn witness() {
    std::hint::black_box(cpuid(vmbench_proto::vmexit::WITNESS_CPUID_LEAF, 0).eax);
}

/// The pci-testdev BAR and test an MMIO or PIO row writes to.
fn testdev_test(row: Row) -> Option<(kmod::TestdevSpace, u8)> {
    use kmod::TestdevSpace::{Mmio, Pio};
    use vmbench_proto::testdev::{TEST_NO_EVENTFD, TEST_WILDCARD_EVENTFD};
    Some(match row {
        Row::UserMmioQemu | Row::KernelMmioQemu => (Mmio, TEST_NO_EVENTFD),
        Row::UserMmioIoeventfd | Row::KernelMmioIoeventfd => (Mmio, TEST_WILDCARD_EVENTFD),
        Row::UserPioQemu | Row::KernelPioQemu => (Pio, TEST_NO_EVENTFD),
        Row::UserPioIoeventfd | Row::KernelPioIoeventfd => (Pio, TEST_WILDCARD_EVENTFD),
        _ => return None,
    })
}

fn select_testdev(
    row: Row,
    dev: &std::fs::File,
    space: kmod::TestdevSpace,
    test: u8,
) -> Result<kmod::Testdev, VmexitError> {
    kmod::testdev_select(dev, space, test).map_err(|e| match e {
        nix::Error::ENODEV => VmexitError::Unsupported(format!(
            "{}: no pci-testdev (1b36:0005) in this VM",
            row.id()
        )),
        e => VmexitError::Failed(format!("VMBENCH_IOC_TESTDEV_SELECT: {e}")),
    })
}

fn need_dev(row: Row, dev: Option<&std::fs::File>) -> Result<&std::fs::File, VmexitError> {
    dev.ok_or_else(|| {
        VmexitError::Failed(format!(
            "{} needs the vmbench module (/dev/vmbench0)",
            row.id()
        ))
    })
}

/// A row timed in the agent itself (ring 3), directly or through an ioctl
/// into the module; returns the batch's total ticks.
fn user_row(
    req: &RowRequest,
    dev: Option<&std::fs::File>,
    target: Option<kmod::Testdev>,
    samples: &mut Vec<u64>,
) -> Result<u64, VmexitError> {
    let RowRequest {
        row,
        samples: n,
        warmup,
        batch: batch_n,
        debugcon,
        ..
    } = *req;
    if row == Row::UserSlow {
        allow_port(debugcon)?;
    }
    macro_rules! run_user {
        ($body:expr) => {{
            timed(warmup, None, $body);
            timed(n, Some(samples), $body);
            batch(batch_n, $body)
        }};
    }
    Ok(match row {
        Row::TimerOverhead => run_user!(|| {}),
        Row::UserNop => run_user!(nop),
        Row::UserFast => run_user!(cpuid0),
        Row::UserSlow => run_user!(|| outb(debugcon)),
        Row::NullSyscall => run_user!(null_syscall),
        Row::NullIoctl => {
            let fd = need_dev(row, dev)?.as_raw_fd();
            let mut err = None;
            let t = run_user!(|| if let Err(e) = kmod::null(fd) {
                err = Some(e)
            });
            if let Some(e) = err {
                return Err(VmexitError::Failed(format!("VMBENCH_IOC_NULL: {e}")));
            }
            t
        }
        Row::UserKernelFast | Row::UserKernelSlow => {
            let fd = need_dev(row, dev)?.as_raw_fd();
            let arg = kmod::ExitOnce {
                insn: if row == Row::UserKernelFast {
                    Insn::Cpuid
                } else {
                    Insn::Outb
                } as u32,
                port: u32::from(debugcon),
            };
            let mut err = None;
            let t = run_user!(|| if let Err(e) = kmod::exit_once(fd, &arg) {
                err = Some(e)
            });
            if let Some(e) = err {
                return Err(VmexitError::Failed(format!("VMBENCH_IOC_EXIT_ONCE: {e}")));
            }
            t
        }
        Row::UserMmioQemu | Row::UserMmioIoeventfd => {
            let (t, dev) = (need_target(row, target)?, need_dev(row, dev)?);
            let page = testdev_page(dev)?;
            let offset = usize::try_from(t.addr)
                .ok()
                .filter(|&o| o < page.len())
                .ok_or_else(|| {
                    VmexitError::Failed(format!(
                        "pci-testdev register at BAR0 + {:#x}: outside its page",
                        t.addr
                    ))
                })?;
            let reg = page.as_ptr().wrapping_add(offset).cast_mut();
            let data = t.data as u8;
            // SAFETY: `reg` lies inside the mapped page (checked above),
            // which stays mapped until `page` drops after the loops.
            run_user!(|| unsafe { std::ptr::write_volatile(reg, data) })
        }
        Row::UserPioQemu | Row::UserPioIoeventfd => {
            let t = need_target(row, target)?;
            let port = u16::try_from(t.addr)
                .map_err(|_| VmexitError::Failed(format!("pci-testdev port {:#x}", t.addr)))?;
            let data = t.data as u8;
            allow_port(port)?;
            run_user!(|| outb_val(port, data))
        }
        _ => {
            return Err(VmexitError::BadArgs(format!(
                "{} is not a user row",
                row.id()
            )));
        }
    })
}

/// Lets this process do port I/O on `port` (ioperm).
fn allow_port(port: u16) -> Result<(), VmexitError> {
    // SAFETY: ioperm only changes this process's I/O permission bitmap.
    if unsafe { nix::libc::ioperm(u64::from(port), 1, 1) } != 0 {
        return Err(VmexitError::Failed(format!(
            "ioperm({port:#x}): {} (needs CAP_SYS_RAWIO)",
            std::io::Error::last_os_error()
        )));
    }
    Ok(())
}

fn need_target(row: Row, t: Option<kmod::Testdev>) -> Result<kmod::Testdev, VmexitError> {
    t.ok_or_else(|| VmexitError::BadArgs(format!("{}: no pci-testdev test selected", row.id())))
}

/// pci-testdev's BAR0 page, mapped uncached through the module.
fn testdev_page(dev: &std::fs::File) -> Result<memmap2::MmapMut, VmexitError> {
    // SAFETY: the module maps one page of the device's BAR0 (a PFN mapping,
    // no file contents): nothing else in this process aliases it.
    unsafe {
        memmap2::MmapOptions::new()
            .offset(kmod::MMAP_TESTDEV as u64)
            .len(4096)
            .map_mut(dev)
    }
    .map_err(|e| VmexitError::Failed(format!("mmap of pci-testdev's BAR0: {e}")))
}

#[inline(always)]
fn outb_val(port: u16, v: u8) {
    // SAFETY: the port was opened with ioperm(); it is pci-testdev's
    // register, which only counts writes.
    unsafe { asm!("out dx, al", in("dx") port, in("al") v, options(nostack, preserves_flags)) };
}

/// A row timed in a loop inside the module (ring 0, IRQs off), in chunks
/// that bound how long IRQs stay off; returns the batch's total ticks.
fn kernel_row(
    req: &RowRequest,
    dev: &std::fs::File,
    samples: &mut Vec<u64>,
) -> Result<u64, VmexitError> {
    let row = req.row;
    let insn = kernel_insn(row)
        .ok_or_else(|| VmexitError::BadArgs(format!("{} is not a kernel row", row.id())))?
        as u32;
    let port = u32::from(port_for(row, req.debugcon));
    let fail = |what: &str, e: nix::Error| match e {
        nix::Error::EOPNOTSUPP => VmexitError::Unsupported(format!(
            "{}: the guest CPU has no {}",
            row.id(),
            match row {
                Row::KernelWrmsrIbpb => "IA32_PRED_CMD (IBPB: X86_FEATURE_IBPB)",
                Row::KernelWrmsrSpecCtrl => "IA32_SPEC_CTRL (X86_FEATURE_MSR_SPEC_CTRL)",
                Row::KernelEoi | Row::KernelSelfIpi => "local APIC",
                _ => "TSC-deadline timer",
            }
        )),
        nix::Error::EPERM => {
            VmexitError::Unsupported(format!("{}: refused outside a VM", row.id()))
        }
        nix::Error::ESRCH => VmexitError::Unsupported(format!(
            "{}: needs a second vCPU, idle in HLT (boot the guest with --vcpus 2)",
            row.id()
        )),
        e => VmexitError::Failed(format!("VMBENCH_IOC_EXIT_LOOP ({what}): {e}")),
    };
    let mut chunk = vec![0u64; kmod::MAX_SAMPLES as usize];
    // Warm-up, discarded; then samples in chunks (bounded IRQs-off windows).
    let mut left = req.warmup;
    while left > 0 {
        let k = left.min(kmod::MAX_SAMPLES);
        kmod::exit_loop(dev, insn, port, &mut chunk[..k as usize], 0)
            .map_err(|e| fail("warm-up", e))?;
        left -= k;
    }
    let mut left = req.samples;
    while left > 0 {
        let k = left.min(kmod::MAX_SAMPLES);
        kmod::exit_loop(dev, insn, port, &mut chunk[..k as usize], 0)
            .map_err(|e| fail("samples", e))?;
        samples.extend_from_slice(&chunk[..k as usize]);
        left -= k;
    }
    // The batch in chunks of the same size as the samples' (the module would
    // take 65,536 at once: 0.65 s with IRQs off for a row that exits to
    // QEMU); the batch time is the sum of the chunks' windows.
    let mut total = 0u64;
    let mut left = req.batch;
    while left > 0 {
        let k = left.min(kmod::MAX_SAMPLES);
        total += kmod::exit_loop(dev, insn, port, &mut [], k).map_err(|e| fail("batch", e))?;
        left -= k;
    }
    Ok(total)
}

#[inline(always)]
fn nop() {
    // SAFETY: NOP does nothing.
    unsafe { asm!("nop", options(nostack, preserves_flags)) };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(row: Row, samples: u64, under_tcg: bool) -> RowRequest {
        RowRequest {
            row,
            samples,
            warmup: 10,
            batch: 100,
            debugcon: 0xe9,
            under_tcg,
        }
    }

    /// The user rows that need no module run on any x86_64 machine.
    #[test]
    fn user_rows_run_natively() {
        let mut v = Vec::new();
        for row in [
            Row::TimerOverhead,
            Row::UserNop,
            Row::UserFast,
            Row::NullSyscall,
        ] {
            let r = run_row(req(row, 200, false), None, &mut v).unwrap();
            assert_eq!(r.samples, 200);
            assert_eq!(v.len(), 200);
            assert!(r.batch_ticks > 0);
        }
        let r = run_row(req(Row::NullIoctl, 10, false), None, &mut v);
        assert!(
            r.unwrap_err()
                .to_string()
                .contains("needs the vmbench module")
        );
        let r = run_row(req(Row::KernelVmcall, 10, true), None, &mut v);
        assert!(r.unwrap_err().to_string().contains("#UD under TCG"));
    }

    /// kvm-unit-tests' method runs without an OS: the Linux agent says so.
    #[test]
    fn the_reproduction_rows_are_the_micro_guests() {
        let mut v = Vec::new();
        let r = run_row(req(Row::KutCpuid, 5, false), None, &mut v);
        assert!(
            matches!(&r, Err(VmexitError::Unsupported(why)) if why.contains("--guest micro")),
            "{r:?}"
        );
    }
}
