//! The numbers the host, the Linux guest agent and the OS-free micro-guest
//! agree on, in one `no_std` crate without dependencies so that all three
//! build from it: the shared region's layout, the command, state and
//! status codes of its control blocks, the VM-exit rows, and the fenced TSC
//! reads every timed window is built from.
//!
//! `vmbench-proto` re-exports it and builds the host's typed view (enums,
//! serde) on these values.
#![no_std]

pub mod layout;
pub mod timing;

/// Commands the host writes to [`layout::HC_CMD`]. Unknown numbers are
/// answered with [`status::UNKNOWN_COMMAND`].
pub mod command {
    /// Answer at once; the payload is args[0] echoed (8 bytes, little-endian).
    pub const PING: u32 = 1;
    /// Answer with the guest's specification as JSON.
    pub const GET_SPEC: u32 = 2;
    /// Answer, then power the guest off.
    pub const SHUTDOWN: u32 = 3;
    /// Exercise the guest's own error paths (the Linux module's argument
    /// checks; the micro-guest's fault report, which ends the VM).
    pub const SELF_TEST: u32 = 4;
    /// Wait for an ivshmem interrupt, then ring the host back (Linux guest).
    pub const DOORBELL_WAIT: u32 = 5;
    /// Run one VM-exit row: args `[row, samples, warmup, batch, port, flags]`
    /// (flags: [`crate::run_vmexit_flags`]).
    pub const RUN_VMEXIT: u32 = 6;
    /// Serve the shared-memory suite until the host stops it (Linux guest).
    pub const RUN_SHM: u32 = 7;
}

/// Flags of [`command::RUN_VMEXIT`]'s sixth argument. A guest refuses flags
/// it does not know.
pub mod run_vmexit_flags {
    /// Test only: the row executes something other than the CPUID its name
    /// says, so that a test can watch the path verification catch it
    /// (micro-guest only): kernel-fast executes RDMSR IA32_APIC_BASE,
    /// user-fast a NOP in ring 3 (what a CPUID looks like to this KVM when
    /// it is served elsewhere: no event at all), user-kernel-fast the null
    /// system call.
    pub const TEST_SUBSTITUTE: u64 = 1;
}

/// Answer statuses the guest writes to [`layout::GC_STATUS`].
pub mod status {
    /// Done; the payload is the answer.
    pub const OK: u32 = 0;
    /// The command number is not one this guest knows.
    pub const UNKNOWN_COMMAND: u32 = 1;
    /// The arguments are out of range; the payload says which.
    pub const BAD_ARGS: u32 = 2;
    /// The command ran and failed; the payload says why.
    pub const FAILED: u32 = 3;
    /// The request is valid but this guest cannot do it (CPU feature missing).
    pub const UNSUPPORTED: u32 = 4;
}

/// The host's state ([`layout::HC_STATE`]).
pub mod host_state {
    /// Not set up yet, or gone.
    pub const ABSENT: u32 = 0;
    /// Header and session written: commands may follow.
    pub const READY: u32 = 1;
    /// The host is leaving this session.
    pub const CLOSING: u32 = 2;
}

/// The guest's state ([`layout::GC_STATE`]).
pub mod guest_state {
    /// Not attached to the current session.
    pub const ABSENT: u32 = 0;
    /// Attached and idle: the last command is answered.
    pub const READY: u32 = 1;
    /// Working on a command.
    pub const BUSY: u32 = 2;
    /// The guest could not work with this host (message in the mailbox).
    pub const FAILED: u32 = 3;
    /// Powering off.
    pub const EXITED: u32 = 4;
}

/// The VM-exit suite's rows by number ([`command::RUN_VMEXIT`]'s first
/// argument), and their ids: the guests answer with the id, the host checks
/// it. What each row times is defined once, in `vmbench_proto::vmexit::Row`.
#[allow(missing_docs)] // each constant is its row's id in SCREAMING_CASE
pub mod row {
    pub const TIMER_OVERHEAD: u32 = 0;
    pub const USER_NOP: u32 = 1;
    pub const USER_FAST: u32 = 2;
    pub const USER_SLOW: u32 = 3;
    pub const NULL_SYSCALL: u32 = 4;
    pub const NULL_IOCTL: u32 = 5;
    pub const USER_KERNEL_FAST: u32 = 6;
    pub const USER_KERNEL_SLOW: u32 = 7;
    pub const KERNEL_TIMER_OVERHEAD: u32 = 8;
    pub const KERNEL_NOP: u32 = 9;
    pub const KERNEL_FAST: u32 = 10;
    pub const KERNEL_SLOW: u32 = 11;
    pub const KERNEL_RDMSR: u32 = 12;
    pub const KERNEL_WRMSR_TSC_DEADLINE: u32 = 13;
    pub const KERNEL_INVD: u32 = 14;
    /// Id `kernel-inb-kernel-pio`.
    pub const KERNEL_PIO: u32 = 15;
    /// Id `kernel-inb-unassigned`.
    pub const KERNEL_INB_QEMU: u32 = 16;
    pub const KERNEL_VMCALL: u32 = 17;
    /// kvm-unit-tests' reproduction rows (micro-guest, ring 0): its method
    /// and instructions, named after its tests.
    pub const KUT_CPUID: u32 = 18;
    pub const KUT_VMCALL: u32 = 19;
    pub const KUT_INL_FROM_QEMU: u32 = 20;
    pub const KUT_INL_FROM_KERNEL: u32 = 21;
    pub const KUT_OUTL_TO_KERNEL: u32 = 22;
    pub const KUT_RD_TSC_ADJUST_MSR: u32 = 23;
    pub const KUT_WR_TSC_ADJUST_MSR: u32 = 24;
    /// The exits real workloads pay for: MMIO and port I/O to QEMU's
    /// `pci-testdev`, without an eventfd (QEMU serves each access) and with
    /// its wildcard ioeventfd (KVM completes the access itself).
    pub const USER_MMIO_QEMU: u32 = 25;
    pub const USER_MMIO_IOEVENTFD: u32 = 26;
    pub const USER_PIO_QEMU: u32 = 27;
    pub const USER_PIO_IOEVENTFD: u32 = 28;
    pub const KERNEL_MMIO_QEMU: u32 = 29;
    pub const KERNEL_MMIO_IOEVENTFD: u32 = 30;
    pub const KERNEL_PIO_QEMU: u32 = 31;
    pub const KERNEL_PIO_IOEVENTFD: u32 = 32;
    /// Interrupts: a fixed IPI to this vCPU, taken and acknowledged; an EOI
    /// with nothing in service; an IPI to a second vCPU halted in HLT, which
    /// answers.
    pub const KERNEL_SELF_IPI: u32 = 33;
    pub const KERNEL_EOI: u32 = 34;
    pub const KERNEL_IPI_HALT: u32 = 35;
    /// Mitigation MSRs: IA32_PRED_CMD (IBPB) and IA32_SPEC_CTRL.
    pub const KERNEL_WRMSR_IBPB: u32 = 36;
    pub const KERNEL_WRMSR_SPEC_CTRL: u32 = 37;
    /// MOV to CR8 (the task-priority register, long mode only).
    pub const KERNEL_MOV_CR8: u32 = 38;

    /// Every row's id, by number.
    pub const IDS: [&str; 39] = [
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
        "kut-method-cpuid",
        "kut-method-vmcall",
        "kut-method-inl-from-qemu",
        "kut-method-inl-from-kernel",
        "kut-method-outl-to-kernel",
        "kut-method-rd-tsc-adjust-msr",
        "kut-method-wr-tsc-adjust-msr",
        "user-mmio-qemu",
        "user-mmio-ioeventfd",
        "user-pio-qemu",
        "user-pio-ioeventfd",
        "kernel-mmio-qemu",
        "kernel-mmio-ioeventfd",
        "kernel-pio-qemu",
        "kernel-pio-ioeventfd",
        "kernel-self-ipi",
        "kernel-eoi",
        "kernel-ipi-halt",
        "kernel-wrmsr-ibpb",
        "kernel-wrmsr-spec-ctrl",
        "kernel-mov-cr8",
    ];

    /// The first of kvm-unit-tests' reproduction rows: they run its method
    /// (one auto-scaled, unfenced batch per sample).
    pub const FIRST_KUT: u32 = KUT_CPUID;
    /// The last of them.
    pub const LAST_KUT: u32 = KUT_WR_TSC_ADJUST_MSR;

    /// Whether row `n` is one of kvm-unit-tests' reproduction rows.
    pub const fn is_kut(n: u32) -> bool {
        n >= FIRST_KUT && n <= LAST_KUT
    }

    /// The id of row `n`, if there is one.
    pub fn id(n: u64) -> Option<&'static str> {
        usize::try_from(n).ok().and_then(|i| IDS.get(i)).copied()
    }
}

/// QEMU's `pci-testdev` (docs/specs/pci-testdev.rst in QEMU): BAR0 is
/// memory, BAR1 port I/O, each starting with a header whose byte 0 selects a
/// test (write) and whose bytes 4..8 (the offset to write in this BAR) and
/// byte 8 (the value) describe it (read, one byte at a time). Test 0 has no
/// eventfd, so QEMU serves each write and counts it in bytes 12..16; test 1
/// has a wildcard ioeventfd (any value), test 2 one that matches the value.
pub mod testdev {
    /// Red Hat's vendor id and the test device's, as configuration offset 0
    /// reads them.
    pub const PCI_ID: u32 = 0x0005_1b36;
    /// Header: write the test number here.
    pub const HDR_TEST: u64 = 0;
    /// Header: the access width of the selected test (1).
    pub const HDR_WIDTH: u64 = 1;
    /// Header: where in this BAR the selected test's accesses go (u32).
    pub const HDR_OFFSET: u64 = 4;
    /// Header: the value the selected test's accesses write (u8).
    pub const HDR_DATA: u64 = 8;
    /// Header: writes QEMU itself served for the selected test (u32).
    pub const HDR_COUNT: u64 = 12;
    /// Test: no eventfd (QEMU serves the write).
    pub const TEST_NO_EVENTFD: u8 = 0;
    /// Test: an ioeventfd that any value triggers (KVM completes the write).
    pub const TEST_WILDCARD_EVENTFD: u8 = 1;
}

/// The vector of the interrupt rows' IPIs (above every exception and the
/// legacy PIC's range; the Linux guest uses its own IRQ_WORK and
/// CALL_FUNCTION vectors instead).
pub const IPI_VECTOR: u8 = 0xf0;

/// The CPUID leaf a guest executes once on the row's vCPU before each
/// VM-exit row and once after it ("VMBW"): the host counts it with KVM's
/// `kvm_cpuid` tracepoint as proof that its counters saw that vCPU during
/// the row, so that a row "verified" on no event at all (an exit the
/// hardware absorbed) is never verified on counters that did not work. No
/// CPU defines it: KVM answers it as any out-of-range leaf, without side
/// effects.
pub const WITNESS_CPUID_LEAF: u32 = 0x564d_4257;

/// The port the slow-path rows write to when the host names none (port
/// argument 0): QEMU's isa-debugcon.
pub const DEFAULT_DEBUGCON_PORT: u16 = 0xe9;
