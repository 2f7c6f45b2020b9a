//! What each row claims: the KVM event that proves its path, the exits to
//! QEMU it takes or must not take, and the probes that count them.

use super::{EMULATED, INJECTED};
use crate::tracepoints::Probe;
use vmbench_proto::vmexit::{Row, WITNESS_CPUID_LEAF};

/// The unfiltered probe of userspace exits, and the ones of port-I/O
/// (`KVM_EXIT_IO` = 2) and MMIO (`KVM_EXIT_MMIO` = 6) exits to QEMU.
pub(super) const USERSPACE: &str = "kvm_userspace_exit";
pub(super) const USERSPACE_IO: &str = "kvm_userspace_exit KVM_EXIT_IO";
pub(super) const USERSPACE_MMIO: &str = "kvm_userspace_exit KVM_EXIT_MMIO";

/// The kind of userspace exit a row that reaches QEMU takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QemuExit {
    /// `KVM_EXIT_IO`: port I/O.
    Io,
    /// `KVM_EXIT_MMIO`: a memory access no memory slot backs.
    Mmio,
}

impl QemuExit {
    pub(super) fn label(self) -> &'static str {
        match self {
            QemuExit::Io => USERSPACE_IO,
            QemuExit::Mmio => USERSPACE_MMIO,
        }
    }

    pub(super) fn name(self) -> &'static str {
        match self {
            QemuExit::Io => "KVM_EXIT_IO",
            QemuExit::Mmio => "KVM_EXIT_MMIO",
        }
    }
}

/// The hardware-assisted KVM a host runs, whose virtualization features
/// decide which exits the hardware may absorb without a KVM event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vendor {
    /// Intel VT-x (kvm_intel).
    Vmx,
    /// AMD-V (kvm_amd).
    Svm,
}

impl Vendor {
    /// The vendor of a KVM vendor module (`kvm_intel`, `kvm_amd`); None for
    /// others (kvm_pvm), which have no APICv, AVIC or TPR virtualization.
    pub fn of_module(module: &str) -> Option<Vendor> {
        match module {
            "kvm_intel" => Some(Vendor::Vmx),
            "kvm_amd" => Some(Vendor::Svm),
            _ => None,
        }
    }
}

/// What no event at all means for an exit the hardware may absorb, on each
/// vendor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Absorbed {
    /// On VMX.
    pub vmx: &'static str,
    /// On SVM.
    pub svm: &'static str,
}

/// How many witness CPUIDs each row's window holds.
pub const WITNESSES_PER_ROW: u64 = 2;

/// The probe of the witness CPUIDs.
pub(super) fn witness_probe() -> Probe {
    Probe::filtered(
        "kvm_cpuid",
        WITNESS_LABEL,
        format!("function == {WITNESS_CPUID_LEAF}"),
    )
}

pub(super) const WITNESS_LABEL: &str = "kvm_cpuid witness";

/// What each execution of a row must show in KVM's tracepoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The probe that counts the row's own exit; None for a baseline, which
    /// must not exit at all.
    pub proof: Option<Probe>,
    /// A second event that proves the same path where another vendor's KVM
    /// takes another route to it (VMX completes a zero-length MMIO
    /// ioeventfd in `handle_ept_misconfig()` with `kvm_fast_mmio`, never
    /// `kvm_mmio`). Each execution must show exactly one of the two: the
    /// band applies to their sum.
    pub alternative: Option<Probe>,
    /// Whether each execution also returns to QEMU, and how; otherwise no
    /// execution may.
    pub to_qemu: Option<QemuExit>,
    /// What a verified count means, in words.
    pub meaning: &'static str,
    /// For an exit the hardware may virtualize (APICv, AVIC, MSR
    /// pass-through, a virtual TPR): what no event at all means, per vendor.
    /// The row is then verified either way, and says which path it took,
    /// provided the counters were seen working in the same window (the
    /// witness CPUIDs).
    pub accelerated: Option<Absorbed>,
    /// The host's hardware-assisted KVM, whose features
    /// [`Claim::accelerated`] names. None elsewhere (kvm_pvm): there no event
    /// does not mean the hardware absorbed the exit.
    pub vendor: Option<Vendor>,
    /// Whether this host is itself a guest of QEMU's TCG, whose SVM
    /// emulation reports INVD with WBINVD's exit code.
    pub outer_tcg: bool,
}

/// The rows whose writes VMX may complete on its fast-MMIO bus: those that
/// need pci-testdev's MMIO BAR ([`Claim::with_testdev_mmio_bar`]).
pub fn takes_fast_mmio(row: Row) -> bool {
    matches!(row, Row::UserMmioIoeventfd | Row::KernelMmioIoeventfd)
}

impl Claim {
    /// For the MMIO ioeventfd rows: also accept `kvm_fast_mmio` inside
    /// pci-testdev's MMIO BAR (`bar`, read from QEMU), the event VMX emits
    /// for them instead of `kvm_mmio`.
    pub fn with_testdev_mmio_bar(mut self, row: Row, bar: std::ops::Range<u64>) -> Claim {
        if takes_fast_mmio(row) {
            self.alternative = Some(Probe::filtered(
                "kvm_fast_mmio",
                format!("kvm_fast_mmio in BAR {:#x}", bar.start),
                format!("gpa >= {} && gpa < {}", bar.start, bar.end),
            ));
        }
        self
    }
}

/// `kvm_pio` on one port and direction.
pub(super) fn pio(port: u16, write: bool) -> Option<Probe> {
    let (dir, rw) = if write { ("write", 1) } else { ("read", 0) };
    Some(Probe::filtered(
        "kvm_pio",
        format!("kvm_pio {dir} port {port:#x}"),
        format!("port == {port} && rw == {rw}"),
    ))
}

/// The claim of `row`, whose slow-path port is `debugcon_port`.
pub fn claim(row: Row, debugcon_port: u16) -> Claim {
    let cpuid = || {
        Some(Probe::filtered(
            "kvm_cpuid",
            "kvm_cpuid leaf 0",
            "function == 0",
        ))
    };
    let (proof, to_qemu, meaning) = match row {
        Row::UserFast | Row::UserKernelFast | Row::KernelFast => (
            cpuid(),
            None,
            "every execution's CPUID reached KVM's CPUID handler, none went to QEMU",
        ),
        Row::KernelRdmsr => (
            Some(Probe::filtered(
                "kvm_msr",
                "kvm_msr read 0x1b",
                "ecx == 27 && write == 0",
            )),
            None,
            "every RDMSR IA32_APIC_BASE was emulated by KVM, none went to QEMU",
        ),
        Row::KernelWrmsrTscDeadline => (
            Some(Probe::filtered(
                "kvm_msr",
                "kvm_msr write 0x6e0",
                "ecx == 1760 && write == 1",
            )),
            None,
            "every WRMSR IA32_TSC_DEADLINE was handled by KVM (fastpath or handler: the tracepoint fires in both), none went to QEMU",
        ),
        Row::KernelInvd => (
            Some(Probe::all("kvm_exit")),
            None,
            "one VM exit per execution, no other KVM event, none to QEMU",
        ),
        Row::KernelPio => (
            pio(0x4d0, false),
            None,
            "every INB 0x4d0 was a port-I/O exit served in the kernel (the PIC's ELCR), none went to QEMU",
        ),
        Row::KernelInbQemu => (
            pio(0x1234, false),
            Some(QemuExit::Io),
            "every INB 0x1234 was a port-I/O exit that KVM returned to QEMU (KVM_EXIT_IO)",
        ),
        Row::UserSlow | Row::UserKernelSlow | Row::KernelSlow => (
            pio(debugcon_port, true),
            Some(QemuExit::Io),
            "every OUTB to the debugcon port was a port-I/O exit that KVM returned to QEMU (KVM_EXIT_IO)",
        ),
        Row::KernelVmcall => (
            Some(Probe::filtered(
                "kvm_hypercall",
                "kvm_hypercall nr 0",
                "nr == 0",
            )),
            None,
            "every VMCALL reached KVM's hypercall handler, none went to QEMU",
        ),
        r @ (Row::KutCpuid
        | Row::KutVmcall
        | Row::KutInlFromQemu
        | Row::KutInlFromKernel
        | Row::KutOutlToKernel
        | Row::KutRdTscAdjustMsr
        | Row::KutWrTscAdjustMsr) => kut_claim(r),
        Row::TimerOverhead
        | Row::UserNop
        | Row::NullSyscall
        | Row::NullIoctl
        | Row::KernelTimerOverhead
        | Row::KernelNop => (None, None, "no VM exit at all"),
        r @ (Row::UserMmioQemu
        | Row::UserMmioIoeventfd
        | Row::UserPioQemu
        | Row::UserPioIoeventfd
        | Row::KernelMmioQemu
        | Row::KernelMmioIoeventfd
        | Row::KernelPioQemu
        | Row::KernelPioIoeventfd) => testdev_claim(r),
        r @ (Row::KernelSelfIpi
        | Row::KernelEoi
        | Row::KernelIpiHalt
        | Row::KernelWrmsrIbpb
        | Row::KernelWrmsrSpecCtrl
        | Row::KernelMovCr8) => return accelerable_claim(r),
    };
    Claim {
        proof,
        alternative: None,
        to_qemu,
        meaning,
        accelerated: None,
        vendor: None,
        outer_tcg: false,
    }
}

/// The claims of the pci-testdev rows. Its BARs are placed by the guest's
/// firmware, so the probes select by access, not address: a one-byte MMIO
/// write (nothing else in these rows writes MMIO), a one-byte OUTB to a
/// port from 0x1000 up (where PCI I/O BARs live; the debugcon port is
/// below). QEMU registers the MMIO wildcard test's ioeventfd with length 0
/// (logged with QEMU 7.2: `KVM_IOEVENTFD addr=0xfebfe801 len=0 … mmio
/// assign`), which KVM puts on its fast-MMIO bus too: on SVM, and on VMX
/// for a nested guest, the write is emulated and completed on the MMIO bus
/// (`kvm_mmio`); on VMX otherwise `handle_ept_misconfig()` completes it
/// before any emulation, with `kvm_fast_mmio` and no `kvm_mmio`. The
/// ioeventfd rows accept that event inside pci-testdev's MMIO BAR
/// ([`Claim::with_testdev_mmio_bar`]).
pub(super) fn testdev_claim(row: Row) -> (Option<Probe>, Option<QemuExit>, &'static str) {
    let mmio = || {
        Some(Probe::filtered(
            "kvm_mmio",
            "kvm_mmio write 1 byte",
            "type == 2 && len == 1",
        ))
    };
    let pio = || {
        Some(Probe::filtered(
            "kvm_pio",
            "kvm_pio write 1 byte, port >= 0x1000",
            "rw == 1 && size == 1 && port >= 4096",
        ))
    };
    match row {
        Row::UserMmioQemu | Row::KernelMmioQemu => (
            mmio(),
            Some(QemuExit::Mmio),
            "every MMIO write was emulated by KVM and returned to QEMU (KVM_EXIT_MMIO)",
        ),
        Row::UserMmioIoeventfd | Row::KernelMmioIoeventfd => (
            mmio(),
            None,
            "every MMIO write was completed by KVM through the ioeventfd, none went to QEMU",
        ),
        Row::UserPioQemu | Row::KernelPioQemu => (
            pio(),
            Some(QemuExit::Io),
            "every OUTB to pci-testdev was a port-I/O exit that KVM returned to QEMU (KVM_EXIT_IO)",
        ),
        _ => (
            pio(),
            None,
            "every OUTB to pci-testdev was completed by KVM through the ioeventfd, none went to QEMU",
        ),
    }
}

/// The claims of the rows whose exit the hardware may virtualize away.
pub(super) fn accelerable_claim(row: Row) -> Claim {
    let (proof, meaning, vmx, svm) = match row {
        Row::KernelSelfIpi => (
            Probe::all("kvm_apic_ipi"),
            "every self-IPI's ICR write reached KVM's local APIC emulation, none went to QEMU",
            "no ICR write reached KVM: APICv's virtual-interrupt delivery or IPI virtualization handled the self-IPI",
            "no ICR write reached KVM: AVIC delivered the self-IPI",
        ),
        Row::KernelIpiHalt => (
            Probe::all("kvm_apic_ipi"),
            "every IPI's ICR write reached KVM's local APIC emulation, which woke the halted vCPU; none went to QEMU",
            "no ICR write reached KVM: IPI virtualization delivered the IPI",
            "no ICR write reached KVM: AVIC delivered the IPI",
        ),
        Row::KernelEoi => (
            Probe::all("kvm_eoi"),
            "every EOI reached KVM's local APIC emulation, none went to QEMU",
            "no EOI reached KVM: APICv's virtual-interrupt delivery completed it",
            "no EOI reached KVM: AVIC completed it",
        ),
        Row::KernelWrmsrIbpb => (
            Probe::filtered("kvm_msr", "kvm_msr write 0x49", "ecx == 73 && write == 1"),
            "every WRMSR IA32_PRED_CMD was handled by KVM, none went to QEMU",
            "no WRMSR IA32_PRED_CMD reached KVM: it passes the MSR through to the hardware",
            "no WRMSR IA32_PRED_CMD reached KVM: it passes the MSR through to the hardware",
        ),
        Row::KernelWrmsrSpecCtrl => (
            Probe::filtered("kvm_msr", "kvm_msr write 0x48", "ecx == 72 && write == 1"),
            "every WRMSR IA32_SPEC_CTRL was handled by KVM, none went to QEMU",
            "no WRMSR IA32_SPEC_CTRL reached KVM: it passes the MSR through once the guest has written it",
            "no WRMSR IA32_SPEC_CTRL reached KVM: it passes the MSR through once the guest has written it",
        ),
        // VMX: with a TPR shadow a MOV to CR8 exits only when it lowers the
        // TPR below the threshold KVM sets for a pending interrupt. SVM: KVM
        // intercepts CR8 writes only while an interrupt is pending at or
        // below the current priority (svm_update_cr8_intercept()); otherwise
        // the write lands in the VMCB's V_TPR (V_INTR_MASKING), with or
        // without AVIC.
        _ => (
            Probe::filtered("kvm_cr", "kvm_cr write cr8", "cr == 8 && rw == 1"),
            "every MOV to CR8 was handled by KVM, none went to QEMU",
            "no MOV to CR8 reached KVM: the TPR shadow absorbed it (a write exits only when it drops below the TPR threshold of a pending interrupt)",
            "no MOV to CR8 reached KVM: it does not intercept CR8 writes while no interrupt is pending (svm_update_cr8_intercept()); the write went to the VMCB's virtual TPR (V_TPR), not to AVIC",
        ),
    };
    Claim {
        proof: Some(proof),
        alternative: None,
        to_qemu: None,
        meaning,
        accelerated: Some(Absorbed { vmx, svm }),
        vendor: None,
        outer_tcg: false,
    }
}

/// The claims of kvm-unit-tests' reproduction rows.
pub(super) fn kut_claim(row: Row) -> (Option<Probe>, Option<QemuExit>, &'static str) {
    match row {
        Row::KutCpuid => (
            Some(Probe::all("kvm_cpuid")),
            None,
            "every CPUID (of whatever leaf eax held) reached KVM's CPUID handler, none went to QEMU",
        ),
        Row::KutVmcall => (
            Some(Probe::filtered(
                "kvm_hypercall",
                "kvm_hypercall nr 0",
                "nr == 0",
            )),
            None,
            "every VMCALL reached KVM's hypercall handler, none went to QEMU",
        ),
        Row::KutInlFromQemu => (
            Some(Probe::filtered(
                "kvm_pio",
                "kvm_pio read port 0x1234 size 4",
                "port == 4660 && rw == 0 && size == 4",
            )),
            Some(QemuExit::Io),
            "every INL 0x1234 was a port-I/O exit that KVM returned to QEMU (KVM_EXIT_IO)",
        ),
        Row::KutInlFromKernel => (
            pio(0x4d0, false),
            None,
            "every INB 0x4d0 was a port-I/O exit served in the kernel, none went to QEMU",
        ),
        Row::KutOutlToKernel => (
            pio(0x4d0, true),
            None,
            "every OUTB 0x4d0 was a port-I/O exit served in the kernel, none went to QEMU",
        ),
        Row::KutRdTscAdjustMsr => (
            Some(Probe::filtered(
                "kvm_msr",
                "kvm_msr read 0x3b",
                "ecx == 59 && write == 0",
            )),
            None,
            "every RDMSR IA32_TSC_ADJUST was emulated by KVM, none went to QEMU",
        ),
        Row::KutWrTscAdjustMsr => (
            Some(Probe::filtered(
                "kvm_msr",
                "kvm_msr write 0x3b",
                "ecx == 59 && write == 1",
            )),
            None,
            "every WRMSR IA32_TSC_ADJUST was handled by KVM, none went to QEMU",
        ),
        _ => (None, None, "no VM exit at all"),
    }
}

/// The probes to count for a row: every KVM event unfiltered (the table),
/// the row's proof, and the userspace exits that are port I/O.
pub fn probes(claim: &Claim) -> Vec<Probe> {
    let mut probes = crate::tracepoints::table_probes();
    probes.push(Probe::filtered(USERSPACE, USERSPACE_IO, "reason == 2"));
    probes.push(Probe::filtered(USERSPACE, USERSPACE_MMIO, "reason == 6"));
    if let Some(p) = &claim.proof
        && p.filter.is_some()
    {
        probes.push(p.clone());
    }
    probes.extend(claim.alternative.iter().cloned());
    probes.push(witness_probe());
    let kind = claim.proof.as_ref().and_then(|p| p.event_kind());
    if let Some(kind) = &kind {
        probes.push(exit_reason_probe(kind));
    }
    // A baseline's window: the interrupts that account for events in it.
    if claim.proof.is_none() {
        probes.push(Probe::all(INJECTED));
    }
    // Instructions KVM emulated: a baseline's body must not be among them,
    // and kernel-nop's count says whether this KVM emulates ring 0.
    probes.push(Probe::all(EMULATED));
    // QEMU's TCG reports INVD with WBINVD's code: counted to say so.
    if matches!(kind, Some(ExitKind::Invd)) {
        probes.push(exit_reason_probe(&ExitKind::Wbinvd));
    }
    probes
}

/// `kvm:kvm_exit` filtered to the exit reason of the row's instruction, on
/// VMX (`isa` 1: basic exit reasons) and SVM (`isa` 2: exit codes) alike.
/// Only a VMX or SVM host emits kvm_exit (kvm_pvm does not); the count is
/// shown beside the others, as `perf kvm stat` shows reasons, and is not
/// part of the verdict: the handler tracepoints prove the path.
pub(super) fn exit_reason_probe(kind: &ExitKind) -> Probe {
    let (name, vmx, svm) = match kind {
        ExitKind::Cpuid => ("CPUID", 10, 0x72),
        ExitKind::Msr { write: false } => ("RDMSR", 31, 0x7c),
        ExitKind::Msr { write: true } => ("WRMSR", 32, 0x7c),
        ExitKind::Pio => ("I/O", 30, 0x7b),
        ExitKind::Hypercall => ("VMCALL", 18, 0x81),
        ExitKind::Invd => ("INVD", 13, 0x76),
        ExitKind::Wbinvd => ("WBINVD", 54, 0x89),
        // An EPT misconfiguration (VMX) or nested page fault (SVM): how an
        // access to a GPA without memory exits.
        ExitKind::Mmio => ("EPT_MISCONFIG/NPF", 49, 0x400),
        ExitKind::Cr8Write => ("CR_ACCESS/CR8_WRITE", 28, 0x18),
    };
    Probe::filtered(
        "kvm_exit",
        format!("kvm_exit reason {name}"),
        format!("(isa == 1 && exit_reason == {vmx}) || (isa == 2 && exit_reason == {svm})"),
    )
}

pub(super) const INVD_REASON: &str = "kvm_exit reason INVD";
pub(super) const WBINVD_REASON: &str = "kvm_exit reason WBINVD";

/// The kind of exit a proof probe counts.
pub(super) enum ExitKind {
    Cpuid,
    Msr { write: bool },
    Pio,
    Hypercall,
    Invd,
    Wbinvd,
    Mmio,
    Cr8Write,
}

impl Probe {
    /// The exit reason behind the probe's event; None where several reasons
    /// lead to it (an APIC access exits as APIC_ACCESS, APIC_WRITE or
    /// WRMSR, depending on xAPIC, x2APIC and APICv).
    fn event_kind(&self) -> Option<ExitKind> {
        let write = self
            .filter
            .as_deref()
            .is_some_and(|f| f.contains("write == 1"));
        Some(match self.event {
            "kvm_cpuid" => ExitKind::Cpuid,
            "kvm_msr" => ExitKind::Msr { write },
            "kvm_pio" => ExitKind::Pio,
            "kvm_hypercall" => ExitKind::Hypercall,
            "kvm_exit" => ExitKind::Invd,
            "kvm_mmio" => ExitKind::Mmio,
            "kvm_cr" => ExitKind::Cr8Write,
            _ => return None,
        })
    }
}
