//! The VM-exit suite's rows, shared by host and guest: the six headline round
//! trips (user and kernel, handled in KVM or through QEMU), their baselines,
//! and ring-0 extras that show KVM's three tiers side by side.

use serde::{Deserialize, Serialize};
use vmbench_abi::row;

/// Where the timed code runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// A guest user process (the agent).
    User,
    /// Guest user process → ioctl → the guest module executes the instruction → back.
    UserToKernel,
    /// A loop inside the guest module, IRQs and preemption off.
    Kernel,
}

/// The path an exit is expected to take. A "fast path" in the usual sense
/// means handled inside KVM; KVM itself has three tiers (its literal
/// fastpath, its in-kernel handlers, the exit to QEMU), and every row names
/// its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Expect {
    /// A baseline: no exit at all.
    NoExit,
    /// KVM's in-kernel exit handler (CPUID, RDMSR, VMCALL): never KVM's fastpath.
    KvmHandler,
    /// KVM's literal fastpath where the host kernel has it for this exit, else its handler.
    KvmFastpath,
    /// A port I/O exit served by an in-kernel device (no QEMU).
    KernelPio,
    /// A port I/O exit that KVM returns to QEMU (KVM_RUN exits to user space).
    Qemu,
    /// An MMIO exit that KVM returns to QEMU (`KVM_EXIT_MMIO`).
    QemuMmio,
    /// An MMIO or port-I/O exit KVM completes itself by signalling an
    /// ioeventfd: QEMU's device is only told later, through the eventfd.
    Ioeventfd,
    /// An access to the local APIC (ICR, EOI): KVM's APIC emulation, or no
    /// exit at all where APICv / AVIC virtualize it.
    Apic,
    /// An IPI to a second vCPU halted in HLT: KVM delivers it and wakes the
    /// halted vCPU's thread, which answers.
    IpiWake,
    /// A WRMSR KVM may pass through to the hardware (no exit) or handle.
    MsrMaybePassthrough,
    /// MOV to CR8: no exit with a TPR shadow (VMX) or when AVIC is on,
    /// else KVM's CR8 handler.
    Cr8,
}

impl Expect {
    /// Exits per executed iteration the KVM counters should show.
    pub fn exits_per_iteration(self) -> u64 {
        match self {
            Expect::NoExit => 0,
            _ => 1,
        }
    }

    /// Port-I/O exits per executed iteration (`io_exits` counts in-kernel and QEMU PIO alike).
    pub fn io_exits_per_iteration(self) -> u64 {
        match self {
            Expect::KernelPio | Expect::Qemu => 1,
            _ => 0,
        }
    }

    /// The path in words, as the report's `tier` column shows it.
    pub fn tier(self) -> &'static str {
        match self {
            Expect::NoExit => "no exit (baseline)",
            Expect::KvmHandler => "inside KVM: in-kernel exit handler",
            Expect::KvmFastpath => {
                "inside KVM: fastpath where the host kernel has it, else handler"
            }
            Expect::KernelPio => "inside KVM: in-kernel PIO device",
            Expect::Qemu => "through QEMU: userspace exit",
            Expect::QemuMmio => "through QEMU: MMIO userspace exit",
            Expect::Ioeventfd => "inside KVM: ioeventfd signalled, no QEMU",
            Expect::Apic => "inside KVM: local APIC (no exit with APICv/AVIC)",
            Expect::IpiWake => "inside KVM: IPI delivered, halted vCPU woken",
            Expect::MsrMaybePassthrough => {
                "inside KVM: MSR handler, or no exit when passed through"
            }
            Expect::Cr8 => "inside KVM: CR8 handler, or no exit with a TPR shadow",
        }
    }
}

macro_rules! rows {
    ($($variant:ident = $n:path, $mode:ident, $insn:expr, $expect:ident, $default:expr, $def:expr;)*) => {
        /// One measurement of the suite.
        #[repr(u32)]
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub enum Row { $(#[doc = $def] $variant = $n,)* }

        impl Row {
            /// Every row, by number.
            pub const ALL: &'static [Row] = &[$(Row::$variant,)*];
            /// The row with this number (`vmbench_abi::row`), if there is one.
            pub fn from_raw(v: u32) -> Option<Row> { match v { $($n => Some(Row::$variant),)* _ => None } }
            /// The row's id, as the guests answer it (`vmbench_abi::row::IDS`).
            pub fn id(self) -> &'static str { row::IDS[self as usize] }
            /// Where the timed code runs.
            pub fn mode(self) -> Mode { match self { $(Row::$variant => Mode::$mode,)* } }
            /// The instruction that exits (or the baseline's body), in words.
            pub fn instruction(self) -> &'static str { match self { $(Row::$variant => $insn,)* } }
            /// The path the exit is expected to take.
            pub fn expect(self) -> Expect { match self { $(Row::$variant => Expect::$expect,)* } }
            /// Run unless asked otherwise (VMCALL rows #UD under TCG and are opt-in).
            pub fn default_on(self) -> bool { match self { $(Row::$variant => $default,)* } }
            /// Exactly what sits inside the timed window.
            pub fn definition(self) -> &'static str { match self { $(Row::$variant => $def,)* } }
        }
    };
}

rows! {
    TimerOverhead = row::TIMER_OVERHEAD, User, "(none)", NoExit, true,
        "guest user: lfence;rdtsc;lfence | (empty) | rdtscp;lfence";
    UserNop = row::USER_NOP, User, "nop", NoExit, true,
        "guest user: lfence;rdtsc;lfence | nop | rdtscp;lfence";
    UserFast = row::USER_FAST, User, "cpuid (leaf 0)", KvmHandler, true,
        "guest user: lfence;rdtsc;lfence | cpuid leaf 0 (exit, guest user -> KVM -> guest user) | rdtscp;lfence";
    UserSlow = row::USER_SLOW, User, "outb to the debugcon port", Qemu, true,
        "guest user (ioperm): lfence;rdtsc;lfence | outb al,0xe9 (exit, KVM -> QEMU isa-debugcon -> KVM) | rdtscp;lfence";
    NullSyscall = row::NULL_SYSCALL, User, "syscall getppid", NoExit, true,
        "guest user: lfence;rdtsc;lfence | syscall(getppid) round trip to the guest kernel | rdtscp;lfence";
    NullIoctl = row::NULL_IOCTL, UserToKernel, "ioctl VMBENCH_IOC_NULL", NoExit, true,
        "guest user: lfence;rdtsc;lfence | ioctl(/dev/vmbench0, NULL): user -> guest kernel -> user, no exit | rdtscp;lfence";
    UserKernelFast = row::USER_KERNEL_FAST, UserToKernel, "ioctl -> cpuid (leaf 0)", KvmHandler, true,
        "guest user: lfence;rdtsc;lfence | ioctl -> guest kernel executes cpuid leaf 0 (exit) -> user | rdtscp;lfence";
    UserKernelSlow = row::USER_KERNEL_SLOW, UserToKernel, "ioctl -> outb to the debugcon port", Qemu, true,
        "guest user: lfence;rdtsc;lfence | ioctl -> guest kernel executes outb 0xe9 (exit to QEMU) -> user | rdtscp;lfence";
    KernelTimerOverhead = row::KERNEL_TIMER_OVERHEAD, Kernel, "(none)", NoExit, true,
        "guest kernel, IRQs off: lfence;rdtsc;lfence | (empty) | rdtscp;lfence";
    KernelNop = row::KERNEL_NOP, Kernel, "nop", NoExit, true,
        "guest kernel, IRQs off: lfence;rdtsc;lfence | nop | rdtscp;lfence";
    KernelFast = row::KERNEL_FAST, Kernel, "cpuid (leaf 0)", KvmHandler, true,
        "guest kernel, IRQs off: lfence;rdtsc;lfence | cpuid leaf 0 (exit handled in KVM) | rdtscp;lfence";
    KernelSlow = row::KERNEL_SLOW, Kernel, "outb to the debugcon port", Qemu, true,
        "guest kernel, IRQs off: lfence;rdtsc;lfence | outb al,0xe9 (exit to QEMU) | rdtscp;lfence";
    KernelRdmsr = row::KERNEL_RDMSR, Kernel, "rdmsr IA32_APIC_BASE", KvmHandler, true,
        "guest kernel, IRQs off: lfence;rdtsc;lfence | rdmsr 0x1b (emulated by KVM) | rdtscp;lfence";
    KernelWrmsrTscDeadline = row::KERNEL_WRMSR_TSC_DEADLINE, Kernel, "wrmsr IA32_TSC_DEADLINE (same value)", KvmFastpath, true,
        "guest kernel, IRQs off: lfence;rdtsc;lfence | wrmsr 0x6e0 with the same deadline ~2^40 ticks ahead (re-arms the timer; the kernel's deadline is put back after the loop) | rdtscp;lfence";
    KernelInvd = row::KERNEL_INVD, Kernel, "invd", KvmFastpath, true,
        "guest kernel, IRQs off: lfence;rdtsc;lfence | invd (KVM fastpath from Linux 6.18) | rdtscp;lfence";
    KernelPio = row::KERNEL_PIO, Kernel, "inb 0x4d0 (PIC ELCR)", KernelPio, true,
        "guest kernel, IRQs off: lfence;rdtsc;lfence | inb 0x4d0 (in-kernel PIC, no QEMU) | rdtscp;lfence";
    KernelInbQemu = row::KERNEL_INB_QEMU, Kernel, "inb 0x1234 (unassigned)", Qemu, true,
        "guest kernel, IRQs off: lfence;rdtsc;lfence | inb 0x1234 (unassigned port: QEMU) | rdtscp;lfence";
    KernelVmcall = row::KERNEL_VMCALL, Kernel, "vmcall/vmmcall (rax=0)", KvmHandler, false,
        "guest kernel, IRQs off: lfence;rdtsc;lfence | vmcall (KVM hypercall handler, -KVM_ENOSYS) | rdtscp;lfence";
    KutCpuid = row::KUT_CPUID, Kernel, "cpuid (leaf: the previous cpuid's eax, as kvm-unit-tests leaves it)", KvmHandler, false,
        "kvm-unit-tests' method, micro-guest ring 0: rdtsc | N x cpuid, eax = the previous cpuid output (kvm-unit-tests does not set it) | rdtsc (no fences), N doubled from 64 until the loop takes >= 2^30 ticks; sample = the loop's ticks / N";
    KutVmcall = row::KUT_VMCALL, Kernel, "vmcall/vmmcall (rax=0)", KvmHandler, false,
        "kvm-unit-tests' method, micro-guest ring 0: rdtsc | N x vmcall, rax = 0 | rdtsc (no fences), N doubled from 64 until the loop takes >= 2^30 ticks; sample = the loop's ticks / N";
    KutInlFromQemu = row::KUT_INL_FROM_QEMU, Kernel, "inl 0x1234 (32-bit, unassigned: QEMU)", Qemu, false,
        "kvm-unit-tests' method, micro-guest ring 0: rdtsc | N x inl 0x1234 (32-bit read, unassigned port: QEMU) | rdtsc (no fences), N doubled from 64 until the loop takes >= 2^30 ticks; sample = the loop's ticks / N";
    KutInlFromKernel = row::KUT_INL_FROM_KERNEL, Kernel, "inb 0x4d0 (in-kernel PIC)", KernelPio, false,
        "kvm-unit-tests' method, micro-guest ring 0: rdtsc | N x inb 0x4d0 (kvm-unit-tests names it inl_from_kernel; it is an 8-bit read) | rdtsc (no fences), N doubled from 64 until the loop takes >= 2^30 ticks; sample = the loop's ticks / N";
    KutOutlToKernel = row::KUT_OUTL_TO_KERNEL, Kernel, "outb 0x4d0 (in-kernel PIC)", KernelPio, false,
        "kvm-unit-tests' method, micro-guest ring 0: rdtsc | N x outb 0, 0x4d0 (kvm-unit-tests names it outl_to_kernel; it is an 8-bit write) | rdtsc (no fences), N doubled from 64 until the loop takes >= 2^30 ticks; sample = the loop's ticks / N";
    KutRdTscAdjustMsr = row::KUT_RD_TSC_ADJUST_MSR, Kernel, "rdmsr IA32_TSC_ADJUST", KvmHandler, false,
        "kvm-unit-tests' method, micro-guest ring 0: rdtsc | N x rdmsr 0x3b | rdtsc (no fences), N doubled from 64 until the loop takes >= 2^30 ticks; sample = the loop's ticks / N";
    KutWrTscAdjustMsr = row::KUT_WR_TSC_ADJUST_MSR, Kernel, "wrmsr IA32_TSC_ADJUST (0)", KvmHandler, false,
        "kvm-unit-tests' method, micro-guest ring 0: rdtsc | N x wrmsr 0x3b = 0 | rdtsc (no fences), N doubled from 64 until the loop takes >= 2^30 ticks; sample = the loop's ticks / N";
    UserMmioQemu = row::USER_MMIO_QEMU, User, "movb to pci-testdev BAR0, no eventfd", QemuMmio, true,
        "guest user (BAR0 mapped uncached through /dev/vmbench0): lfence;rdtsc;lfence | movb to pci-testdev's no-eventfd register (exit, KVM -> QEMU's pci-testdev -> KVM) | rdtscp;lfence";
    UserMmioIoeventfd = row::USER_MMIO_IOEVENTFD, User, "movb to pci-testdev BAR0, ioeventfd", Ioeventfd, true,
        "guest user (BAR0 mapped uncached through /dev/vmbench0): lfence;rdtsc;lfence | movb to pci-testdev's wildcard-ioeventfd register (exit, KVM signals the eventfd, no QEMU) | rdtscp;lfence";
    UserPioQemu = row::USER_PIO_QEMU, User, "outb to pci-testdev BAR1, no eventfd", Qemu, true,
        "guest user (ioperm): lfence;rdtsc;lfence | outb to pci-testdev's no-eventfd port (exit, KVM -> QEMU's pci-testdev -> KVM) | rdtscp;lfence";
    UserPioIoeventfd = row::USER_PIO_IOEVENTFD, User, "outb to pci-testdev BAR1, ioeventfd", Ioeventfd, true,
        "guest user (ioperm): lfence;rdtsc;lfence | outb to pci-testdev's wildcard-ioeventfd port (exit, KVM signals the eventfd, no QEMU) | rdtscp;lfence";
    KernelMmioQemu = row::KERNEL_MMIO_QEMU, Kernel, "movb to pci-testdev BAR0, no eventfd", QemuMmio, true,
        "guest kernel, IRQs off: lfence;rdtsc;lfence | writeb to pci-testdev's no-eventfd register (exit to QEMU) | rdtscp;lfence";
    KernelMmioIoeventfd = row::KERNEL_MMIO_IOEVENTFD, Kernel, "movb to pci-testdev BAR0, ioeventfd", Ioeventfd, true,
        "guest kernel, IRQs off: lfence;rdtsc;lfence | writeb to pci-testdev's wildcard-ioeventfd register (KVM signals the eventfd, no QEMU) | rdtscp;lfence";
    KernelPioQemu = row::KERNEL_PIO_QEMU, Kernel, "outb to pci-testdev BAR1, no eventfd", Qemu, true,
        "guest kernel, IRQs off: lfence;rdtsc;lfence | outb to pci-testdev's no-eventfd port (exit to QEMU) | rdtscp;lfence";
    KernelPioIoeventfd = row::KERNEL_PIO_IOEVENTFD, Kernel, "outb to pci-testdev BAR1, ioeventfd", Ioeventfd, true,
        "guest kernel, IRQs off: lfence;rdtsc;lfence | outb to pci-testdev's wildcard-ioeventfd port (KVM signals the eventfd, no QEMU) | rdtscp;lfence";
    KernelSelfIpi = row::KERNEL_SELF_IPI, Kernel, "self-IPI, taken and acknowledged", Apic, true,
        "guest kernel, IRQs on: lfence;rdtsc;lfence | irq_work_queue() sends a fixed IPI to this CPU (ICR write), the interrupt is taken, its handler runs and EOIs | rdtscp;lfence";
    KernelEoi = row::KERNEL_EOI, Kernel, "EOI, nothing in service", Apic, true,
        "guest kernel, IRQs off: lfence;rdtsc;lfence | write 0 to the local APIC's EOI register (x2APIC MSR 0x80b or xAPIC MMIO 0xb0) with no interrupt in service | rdtscp;lfence";
    KernelIpiHalt = row::KERNEL_IPI_HALT, Kernel, "IPI to a vCPU in HLT, which answers", IpiWake, true,
        "guest kernel: lfence;rdtsc;lfence | smp_call_function_single() to CPU 1, idle in HLT: IPI (ICR write), the halted vCPU wakes, runs the call and releases the sender | rdtscp;lfence";
    KernelWrmsrIbpb = row::KERNEL_WRMSR_IBPB, Kernel, "wrmsr IA32_PRED_CMD = IBPB", MsrMaybePassthrough, true,
        "guest kernel, IRQs off: lfence;rdtsc;lfence | wrmsr 0x49 = 1 (an indirect branch prediction barrier) | rdtscp;lfence";
    KernelWrmsrSpecCtrl = row::KERNEL_WRMSR_SPEC_CTRL, Kernel, "wrmsr IA32_SPEC_CTRL (same value)", MsrMaybePassthrough, true,
        "guest kernel, IRQs off: lfence;rdtsc;lfence | wrmsr 0x48 with the value it holds (read once before the loop) | rdtscp;lfence";
    KernelMovCr8 = row::KERNEL_MOV_CR8, Kernel, "mov to cr8 (0)", Cr8, true,
        "guest kernel, IRQs off: lfence;rdtsc;lfence | mov cr8 = 0 (the task priority it already has) | rdtscp;lfence";
}

impl Row {
    /// The six headline round trips: from guest user, from guest user into
    /// the guest kernel, and from the guest kernel, each handled inside KVM
    /// (CPUID) and through QEMU (OUTB to the debugcon port).
    pub const HEADLINE: [Row; 6] = [
        Row::UserFast,
        Row::UserSlow,
        Row::UserKernelFast,
        Row::UserKernelSlow,
        Row::KernelFast,
        Row::KernelSlow,
    ];

    /// The row with this id.
    pub fn parse(s: &str) -> Option<Row> {
        Row::ALL.iter().copied().find(|r| r.id() == s)
    }

    /// Rows by id; an empty list means every row that runs by default.
    pub fn parse_list<S: AsRef<str>>(ids: &[S]) -> Result<Vec<Row>, UnknownRow> {
        if ids.is_empty() {
            return Ok(Row::ALL
                .iter()
                .copied()
                .filter(|r| r.default_on())
                .collect());
        }
        ids.iter()
            .map(|id| Row::parse(id.as_ref()).ok_or_else(|| UnknownRow(id.as_ref().to_string())))
            .collect()
    }

    /// Exactly what sits inside the timed window in the OS-free
    /// micro-guest, which has no OS: ring 3 is entered with IRETQ (IOPL 3,
    /// no ioperm), the user-to-kernel rows are SYSCALL into its ring-0 stub
    /// and IRETQ back (no ioctl), nothing interrupts it, and its ring-0
    /// windows end with `lfence;rdtsc;lfence` (RDTSCP at CPL0 stops the VM
    /// on some hosts).
    pub fn micro_definition(self) -> String {
        if self.reproduces_kvm_unit_tests() {
            // Only the micro-guest runs them: the definition is already its own.
            return self.definition().to_string();
        }
        let (ring, end) = match self.mode() {
            Mode::Kernel if matches!(self, Row::KernelSelfIpi | Row::KernelIpiHalt) => (
                "micro-guest ring 0, no interrupts but the row's own",
                "lfence;rdtsc;lfence",
            ),
            Mode::Kernel => ("micro-guest ring 0, no interrupts", "lfence;rdtsc;lfence"),
            _ => (
                "micro-guest ring 3 (IOPL 3), no interrupts",
                "rdtscp;lfence",
            ),
        };
        let body = match self {
            Row::TimerOverhead | Row::KernelTimerOverhead => "(empty)",
            Row::UserNop | Row::KernelNop => "nop",
            Row::UserFast | Row::KernelFast => "cpuid leaf 0 (exit, handled in KVM)",
            Row::UserSlow | Row::KernelSlow => "outb al,port to the debugcon port (exit to QEMU)",
            Row::NullSyscall => "SYSCALL -> ring-0 stub -> IRETQ (no exit)",
            Row::NullIoctl => "(not run: no ioctl without an OS)",
            Row::UserKernelFast => "SYSCALL -> ring 0 executes cpuid leaf 0 (exit) -> IRETQ",
            Row::UserKernelSlow => {
                "SYSCALL -> ring 0 executes outb to the debugcon port (exit to QEMU) -> IRETQ"
            }
            Row::KernelRdmsr => "rdmsr 0x1b (emulated by KVM)",
            Row::KernelWrmsrTscDeadline => {
                "wrmsr 0x6e0 with the same deadline ~2^40 ticks ahead, LAPIC timer in TSC-deadline mode and masked (re-arms the timer)"
            }
            Row::KernelInvd => "invd",
            Row::KernelPio => "inb 0x4d0 (KVM's in-kernel PIC)",
            Row::KernelInbQemu => "inb 0x1234 (unassigned port: QEMU)",
            Row::KernelVmcall => "vmcall/vmmcall, rax=0 (KVM hypercall handler)",
            Row::UserMmioQemu | Row::KernelMmioQemu => {
                "movb to pci-testdev's no-eventfd register in BAR0 (exit to QEMU)"
            }
            Row::UserMmioIoeventfd | Row::KernelMmioIoeventfd => {
                "movb to pci-testdev's wildcard-ioeventfd register in BAR0 (KVM signals the eventfd, no QEMU)"
            }
            Row::UserPioQemu | Row::KernelPioQemu => {
                "outb to pci-testdev's no-eventfd port in BAR1 (exit to QEMU)"
            }
            Row::UserPioIoeventfd | Row::KernelPioIoeventfd => {
                "outb to pci-testdev's wildcard-ioeventfd port in BAR1 (KVM signals the eventfd, no QEMU)"
            }
            Row::KernelSelfIpi => {
                "xAPIC ICR write: fixed IPI to self (vector 0xf0), sti, the handler EOIs, cli"
            }
            Row::KernelEoi => "xAPIC EOI register write (MMIO 0xfee000b0), nothing in service",
            Row::KernelIpiHalt => {
                "xAPIC ICR write: fixed IPI to vCPU 1, halted in HLT; it wakes, EOIs and sets a flag this vCPU spins on"
            }
            Row::KernelWrmsrIbpb => "wrmsr 0x49 = 1 (IBPB)",
            Row::KernelWrmsrSpecCtrl => "wrmsr 0x48 with the value it holds",
            Row::KernelMovCr8 => "mov cr8 = 0",
            _ => "(not a micro-guest row)",
        };
        format!("{ring}: lfence;rdtsc;lfence | {body} | {end}")
    }

    /// One of kvm-unit-tests' reproduction rows: its method (one unfenced,
    /// auto-scaled batch per sample), no timer baseline, no batch of ours.
    pub fn reproduces_kvm_unit_tests(self) -> bool {
        row::is_kut(self as u32)
    }

    /// The rows that write to QEMU's pci-testdev (and answer its count).
    pub fn uses_testdev(self) -> bool {
        matches!(
            self,
            Row::UserMmioQemu
                | Row::UserMmioIoeventfd
                | Row::UserPioQemu
                | Row::UserPioIoeventfd
                | Row::KernelMmioQemu
                | Row::KernelMmioIoeventfd
                | Row::KernelPioQemu
                | Row::KernelPioIoeventfd
        )
    }

    /// The baseline whose p50 is subtracted from this row's samples.
    pub fn overhead_row(self) -> Row {
        match self.mode() {
            Mode::Kernel => Row::KernelTimerOverhead,
            _ => Row::TimerOverhead,
        }
    }
}

/// A row id that names no row.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown row {0:?}; rows are: {ids}", ids = Row::ALL.iter().map(|r| r.id()).collect::<Vec<_>>().join(", "))]
pub struct UnknownRow(pub String);

/// The port of the slow-path rows when `Command::RunVmexit`'s port argument is 0.
pub use vmbench_abi::DEFAULT_DEBUGCON_PORT;

/// The CPUID leaf the guests execute before and after each row.
pub use vmbench_abi::WITNESS_CPUID_LEAF;

/// The guest's answer (JSON in the mailbox); samples are in the data area
/// as little-endian u64 ticks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RowRun {
    /// The row's id (the host checks it is the row it asked for).
    pub row: String,
    /// Samples written to the data area.
    pub samples: u64,
    /// Iterations run and discarded before the samples.
    pub warmup: u64,
    /// Iterations of the timed batch.
    pub batch_iterations: u64,
    /// TSC ticks the whole batch took.
    pub batch_ticks: u64,
    /// Executions of the instruction, when the guest chose how many (the
    /// reproduction rows' auto-scaled loops); else warm-up + samples + batch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executions: Option<u64>,
    /// The MMIO and port-I/O rows: writes QEMU's pci-testdev served itself,
    /// by its own count (an access KVM completed through the ioeventfd
    /// never reaches it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_writes: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_round_trip() {
        let mut seen = std::collections::HashSet::new();
        for r in Row::ALL {
            assert!(seen.insert(r.id()), "duplicate id {}", r.id());
            assert_eq!(Row::parse(r.id()), Some(*r));
            assert_eq!(Row::from_raw(*r as u32), Some(*r));
        }
        assert_eq!(Row::parse("user-fast"), Some(Row::UserFast));
        assert!(Row::from_raw(999).is_none());
        // Every number the guests know is a row, and only those.
        assert_eq!(Row::ALL.len(), row::IDS.len());
        for (n, r) in Row::ALL.iter().enumerate() {
            assert_eq!(*r as usize, n);
            assert_eq!(row::id(n as u64), Some(r.id()));
        }
        assert_eq!(row::id(row::IDS.len() as u64), None);
        assert_eq!(
            Row::parse_list(&["kernel-fast", "user-slow"]),
            Ok(vec![Row::KernelFast, Row::UserSlow])
        );
        let e = Row::parse_list(&["user-fast", "nope"]).unwrap_err();
        assert_eq!(e, UnknownRow("nope".into()));
        assert!(
            e.to_string().contains("rows are: timer-overhead, user-nop"),
            "{e}"
        );
        let defaults = Row::parse_list::<&str>(&[]).unwrap();
        assert!(defaults.contains(&Row::UserFast) && !defaults.contains(&Row::KernelVmcall));
        assert_eq!(Row::KernelFast.overhead_row(), Row::KernelTimerOverhead);
        assert_eq!(Row::UserKernelSlow.overhead_row(), Row::TimerOverhead);
    }

    /// Every micro-guest row has a definition of its own.
    #[test]
    fn every_micro_guest_row_is_defined() {
        for r in Row::ALL {
            if !r.reproduces_kvm_unit_tests() && *r != Row::NullIoctl {
                assert!(
                    !r.micro_definition().contains("not a micro-guest row"),
                    "{}",
                    r.id()
                );
            }
        }
        assert!(Row::KutWrTscAdjustMsr.reproduces_kvm_unit_tests());
        assert!(!Row::UserMmioQemu.reproduces_kvm_unit_tests());
        assert!(Row::KernelPioIoeventfd.uses_testdev() && !Row::KernelPio.uses_testdev());
    }

    #[test]
    fn the_six_headline_rows_exist() {
        let ids: Vec<&str> = Row::HEADLINE.iter().map(|r| r.id()).collect();
        assert_eq!(
            ids,
            [
                "user-fast",
                "user-slow",
                "user-kernel-fast",
                "user-kernel-slow",
                "kernel-fast",
                "kernel-slow"
            ]
        );
        for r in Row::HEADLINE {
            assert!(r.default_on());
            assert_ne!(r.expect(), Expect::NoExit);
        }
    }
}
