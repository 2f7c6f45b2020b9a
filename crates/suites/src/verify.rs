//! Did each row take the path it claims?
//!
//! The proof is KVM's own tracepoints, counted on the vCPU thread around the
//! row ([`verify_tracepoints`]): a row is verified only when the exit it
//! claims happened once per execution, within a two-sided band, and the exits
//! it claims not to take did not happen. Where tracepoints cannot be counted,
//! QMP `query-stats` is the second source ([`verify`]): its `exits` can show
//! one exit per execution, but `io_exits` counts in-kernel and QEMU port I/O
//! alike, so it never verifies which of the two served a port. Counters that
//! cannot account for the work done make the row "unverified", never
//! "verified".

use crate::tracepoints::Probe;
use std::collections::BTreeMap;
use vmbench_proto::vmexit::{Expect, Mode, Row, WITNESS_CPUID_LEAF};
use vmbench_results::Verification;

/// Exits that are not the row's own (timer ticks, interrupts) allowed per
/// iteration count: 5% plus a constant.
fn slack(n: u64) -> u64 {
    n / 20 + 200
}

/// How a verdict from the fallback names its source: the headline and the
/// row both say when query-stats, not tracepoints, judged a row.
pub const QUERY_STATS_NAME: &str = "QMP query-stats (fallback: KVM's tracepoints were not counted)";

/// What the KVM counters around a row say.
pub enum Evidence<'a> {
    /// TCG: there are no VM exits to count.
    Tcg,
    /// The counters could not be read, and why.
    Unavailable(&'a str),
    /// Counter deltas over the row (`exits`, `io_exits`, ...).
    Deltas(&'a BTreeMap<String, u64>),
}

/// `n` is every execution of the instruction between the two readings
/// (warm-up, samples and batch).
pub fn verify(expect: Expect, n: u64, evidence: Evidence<'_>) -> Verification {
    let deltas = match evidence {
        Evidence::Tcg => {
            return Verification::Unverified {
                reason: "not verifiable: TCG (software emulation has no VM exits; these are emulation costs)".into(),
            };
        }
        Evidence::Unavailable(why) => {
            return Verification::Unverified {
                reason: format!("KVM counters unavailable: {why}"),
            };
        }
        Evidence::Deltas(d) => d,
    };
    let exits = deltas.get("exits").copied().unwrap_or(0);
    let io = deltas.get("io_exits").copied();
    let want_exits = n * expect.exits_per_iteration();
    let want_io = n * expect.io_exits_per_iteration();
    let s = slack(n);
    let shown = format!(
        "{QUERY_STATS_NAME}: KVM exits +{exits}, io_exits +{} over {n} executions",
        io.map_or("?".into(), |v| v.to_string())
    );
    if matches!(
        expect,
        Expect::Apic | Expect::IpiWake | Expect::MsrMaybePassthrough | Expect::Cr8
    ) {
        return Verification::Unverified {
            reason: format!(
                "{shown}: this exit may be virtualized away (APICv, AVIC, MSR pass-through, TPR shadow), and query-stats cannot tell which exit the counts are (KVM's tracepoints can: run as root)"
            ),
        };
    }
    if matches!(expect, Expect::QemuMmio | Expect::Ioeventfd) {
        return Verification::Unverified {
            reason: format!(
                "{shown}: query-stats cannot show whether QEMU or an ioeventfd in KVM completed each access (KVM's tracepoints can: run as root)"
            ),
        };
    }
    if expect == Expect::NoExit {
        // The one claim query-stats can check whole: no exit at all.
        return if exits <= s {
            Verification::Verified {
                evidence: format!("{shown}: the baseline does not exit"),
            }
        } else {
            Verification::Failed {
                evidence: format!("{shown}: the baseline exits (expected at most {s})"),
            }
        };
    }
    if exits > want_exits + s {
        return Verification::Failed {
            evidence: format!(
                "{shown}: more than one exit per execution ({:.2} per execution)",
                exits as f64 / n.max(1) as f64
            ),
        };
    }
    if exits + s < want_exits * 9 / 10 {
        return Verification::Unverified {
            reason: format!(
                "counters inconsistent: {shown}, each of which must exit; this host's KVM statistics do not track the work done"
            ),
        };
    }
    let Some(io) = io else {
        return Verification::Unverified {
            reason: format!("{shown}; no io_exits counter to tell port I/O from other exits"),
        };
    };
    if want_io > 0 && io + s < want_io * 9 / 10 {
        return Verification::Failed {
            evidence: format!("{shown}: expected about {want_io} port-I/O exits"),
        };
    }
    if want_io == 0 && io > s {
        return Verification::Failed {
            evidence: format!("{shown}: expected no port-I/O exits"),
        };
    }
    // Consistent with the claim, but exits and io_exits cannot say which
    // exit each was (CPUID, RDMSR, a timer interrupt): query-stats never
    // verifies a claim it cannot tell from another.
    let claimed = match expect {
        Expect::KvmHandler => "one exit per execution, none of them port I/O, handled inside KVM",
        Expect::KvmFastpath => "one exit per execution, none of them port I/O, inside KVM",
        Expect::KernelPio | Expect::Qemu => {
            "one port-I/O exit per execution, but io_exits counts in-kernel and QEMU port I/O alike"
        }
        Expect::NoExit
        | Expect::QemuMmio
        | Expect::Ioeventfd
        | Expect::Apic
        | Expect::IpiWake
        | Expect::MsrMaybePassthrough
        | Expect::Cr8 => unreachable!("handled above"),
    };
    Verification::Unverified {
        reason: format!(
            "{shown}: consistent with {claimed}; query-stats counts exits, not which exit each was, so it cannot confirm this row's own (KVM's tracepoints can: run as root)"
        ),
    }
}

/// The unfiltered probe of userspace exits, and the ones of port-I/O
/// (`KVM_EXIT_IO` = 2) and MMIO (`KVM_EXIT_MMIO` = 6) exits to QEMU.
const USERSPACE: &str = "kvm_userspace_exit";
const USERSPACE_IO: &str = "kvm_userspace_exit KVM_EXIT_IO";
const USERSPACE_MMIO: &str = "kvm_userspace_exit KVM_EXIT_MMIO";

/// The kind of userspace exit a row that reaches QEMU takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QemuExit {
    /// `KVM_EXIT_IO`: port I/O.
    Io,
    /// `KVM_EXIT_MMIO`: a memory access no memory slot backs.
    Mmio,
}

impl QemuExit {
    fn label(self) -> &'static str {
        match self {
            QemuExit::Io => USERSPACE_IO,
            QemuExit::Mmio => USERSPACE_MMIO,
        }
    }

    fn name(self) -> &'static str {
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
fn witness_probe() -> Probe {
    Probe::filtered(
        "kvm_cpuid",
        WITNESS_LABEL,
        format!("function == {WITNESS_CPUID_LEAF}"),
    )
}

const WITNESS_LABEL: &str = "kvm_cpuid witness";

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
fn pio(port: u16, write: bool) -> Option<Probe> {
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
fn testdev_claim(row: Row) -> (Option<Probe>, Option<QemuExit>, &'static str) {
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
fn accelerable_claim(row: Row) -> Claim {
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
fn kut_claim(row: Row) -> (Option<Probe>, Option<QemuExit>, &'static str) {
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
fn exit_reason_probe(kind: &ExitKind) -> Probe {
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

const INVD_REASON: &str = "kvm_exit reason INVD";
const WBINVD_REASON: &str = "kvm_exit reason WBINVD";

/// The kind of exit a proof probe counts.
enum ExitKind {
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

/// The exit events of the table: what a baseline must not show.
const EXIT_EVENTS: [&str; 11] = vmbench_host::tracefs::KVM_EVENTS;

/// The counts a row's verdict quotes: its proof, the exits to QEMU it
/// claims or must not take, and for a `kvm_exit` proof the handler events
/// that would say what the exits were.
fn evidence_labels<'a>(claim: &'a Claim, proof: &'a Probe) -> Vec<&'a str> {
    let mut labels = vec![proof.label.as_str()];
    labels.extend(claim.alternative.iter().map(|a| a.label.as_str()));
    match claim.to_qemu {
        Some(exit) => labels.push(exit.label()),
        // The port-I/O and handler rows quote the port-I/O exits they must not take.
        None if proof.event != "kvm_mmio" && claim.accelerated.is_none() => {
            labels.extend([USERSPACE_IO, USERSPACE]);
        }
        None => labels.push(USERSPACE),
    }
    if proof.event == "kvm_exit" {
        labels.extend(["kvm_cpuid", "kvm_msr", "kvm_pio", "kvm_hypercall"]);
    }
    labels
}

/// The interrupts KVM injected into the guest, counted around baselines.
const INJECTED: &str = "kvm_inj_virq";

/// Instructions KVM's emulator executed for the guest.
pub const EMULATED: &str = "kvm_emulate_insn";

/// More emulated instructions per execution than this (and the slack) mean
/// the row's own body ran in KVM's emulator: an emulated loop executes at
/// least three per iteration (the instruction, the counter, the branch).
pub const EMULATED_PER_EXECUTION: u64 = 2;

/// The KVM events one interrupt injected in the window may bring: the
/// external-interrupt exit that carried it, an interrupt-window exit, and
/// the guest handler's EOI (an exit, a `kvm_msr` for the x2APIC register, a
/// `kvm_eoi`) and timer re-arm (an exit and a `kvm_msr`). Measured under
/// kvm_amd (nested): about 2.6 `kvm_exit`, 1.6 `kvm_msr` and one `kvm_eoi`
/// per injected timer tick.
const EVENTS_PER_INTERRUPT: u64 = 7;

/// A baseline: no KVM event of its own (within the slack), `seen` being
/// every event's count per execution. Up to [`EVENTS_PER_INTERRUPT`] events
/// per interrupt injected in the window (`kvm_inj_virq`: a guest timer tick
/// lands in a long window, and in a nested, emulated guest every window is
/// long) are the interrupts', not the baseline's.
fn verify_baseline(n: u64, counts: &BTreeMap<String, u64>, seen: &str) -> Verification {
    let s = slack(n);
    let exits: u64 = EXIT_EVENTS.iter().filter_map(|e| counts.get(*e)).sum();
    let interrupts = counts.get(INJECTED).copied().unwrap_or(0);
    let theirs = (EVENTS_PER_INTERRUPT * interrupts).min(exits);
    let own = exits - theirs;
    let accounted = if interrupts > 0 {
        format!(
            "; {exits} events, of which up to {theirs} are the {interrupts} injected interrupts' (at most {EVENTS_PER_INTERRUPT} each)"
        )
    } else {
        String::new()
    };
    // Emulated instructions beyond what the interrupts bring (an xAPIC
    // EOI is one) and what the guest's own code around the row may bring
    // (the micro-guest waits for its next command in ring 0: on a host that
    // emulates ring 0 that wait is emulated too, about 750 instructions in a
    // 1,020-execution ring-3 row here): more than EMULATED_PER_EXECUTION per
    // execution is the baseline's own body in the emulator (11–14 per
    // execution for kvm_pvm's ring-0 baselines).
    let emulated = counts
        .get(EMULATED)
        .copied()
        .unwrap_or(0)
        .saturating_sub(EVENTS_PER_INTERRUPT * interrupts);
    if emulated > EMULATED_PER_EXECUTION * n + s {
        return Verification::Failed {
            evidence: format!(
                "per execution: {seen} over {n} executions{accounted}: KVM emulated the baseline's instructions ({emulated} {EMULATED} of its own, at most {EMULATED_PER_EXECUTION} per execution and {s} more allowed): nothing in this window ran natively (kvm_pvm executes an OS-free guest's ring 0 in KVM's instruction emulator), so it is not a baseline"
            ),
        };
    }
    if own <= s {
        Verification::Verified {
            evidence: format!(
                "per execution: {seen} over {n} executions{accounted}: no KVM event of its own (an exit without a tracepoint, such as an intercepted RDTSC, is not counted; the run's warnings say when RDTSC exits)"
            ),
        }
    } else {
        Verification::Failed {
            evidence: format!(
                "per execution: {seen} over {n} executions{accounted}: the baseline exits ({own} events of its own, at most {s} allowed)"
            ),
        }
    }
}

/// An exit the hardware may absorb that raised no event: verified on VMX
/// and SVM, naming the vendor's mechanism, when the witness CPUIDs show the
/// counters were live; unverified otherwise.
fn verify_absorbed(
    claim: &Claim,
    absorbed: Absorbed,
    counts: &BTreeMap<String, u64>,
    seen: &str,
    proof_name: &str,
) -> Verification {
    let Some(vendor) = claim.vendor else {
        return Verification::Unverified {
            reason: format!(
                "{seen}: no {proof_name} event, and this KVM (not VMX or SVM) has no APICv, AVIC, virtual TPR or MSR pass-through to absorb the exit: it was handled on a path without this tracepoint"
            ),
        };
    };
    // No event is evidence only if the counters were seen working on
    // this vCPU in the same window.
    let witnessed = counts.get(WITNESS_LABEL).copied().unwrap_or(0);
    if witnessed != WITNESSES_PER_ROW {
        return Verification::Unverified {
            reason: format!(
                "{seen}: no {proof_name} event, but the counters' liveness witness is missing ({witnessed} of the guest's {WITNESSES_PER_ROW} CPUID {WITNESS_CPUID_LEAF:#x} counted around the row), so no event is not evidence that the hardware absorbed the exit"
            ),
        };
    }
    let why = match vendor {
        Vendor::Vmx => absorbed.vmx,
        Vendor::Svm => absorbed.svm,
    };
    Verification::Verified {
        evidence: format!(
            "{seen}, witness CPUIDs {witnessed} of {WITNESSES_PER_ROW} (the counters were live): {why}"
        ),
    }
}

/// The INVD row, whose proof is kvm_exit itself: no handler event may
/// account for the exits, and where kvm_exit carries a reason (VMX, SVM)
/// each must be INVD's. None: nothing against the claim.
fn verify_invd_exits(
    claim: &Claim,
    n: u64,
    counts: &BTreeMap<String, u64>,
    seen: &str,
) -> Option<Verification> {
    let s = slack(n);
    let per = |v: u64| v as f64 / n.max(1) as f64;
    let others: u64 = [
        "kvm_cpuid",
        "kvm_msr",
        "kvm_pio",
        "kvm_hypercall",
        USERSPACE,
    ]
    .iter()
    .filter_map(|e| counts.get(*e))
    .sum();
    if others > s {
        return Some(Verification::Failed {
            evidence: format!("{seen}: the exits were other events ({others} of them)"),
        });
    }
    // On VMX and SVM kvm_exit carries the exit reason: each exit must
    // be the INVD itself.
    if claim.vendor.is_some() {
        let reason = |label: &str| counts.get(label).copied().unwrap_or(0);
        let (invd, wbinvd) = (reason(INVD_REASON), reason(WBINVD_REASON));
        let band = n..=n + s;
        if band.contains(&invd) {
            return Some(Verification::Verified {
                evidence: format!("{seen}, {INVD_REASON} {:.2}: {}", per(invd), claim.meaning),
            });
        }
        if claim.outer_tcg && band.contains(&wbinvd) {
            return Some(Verification::Verified {
                evidence: format!(
                    "{seen}, {WBINVD_REASON} {:.2}: {}; the exits carry WBINVD's code because this host runs on QEMU's TCG, whose SVM reports INVD so (hardware reports INVD: VMX 13, SVM 0x76)",
                    per(wbinvd),
                    claim.meaning
                ),
            });
        }
        return Some(Verification::Failed {
            evidence: format!(
                "{seen}: {INVD_REASON} {:.2}, {WBINVD_REASON} {:.2} per execution: the exits were not INVD",
                per(invd),
                per(wbinvd)
            ),
        });
    }
    None
}

/// Judges `row` from tracepoint `counts` over `n` executions (warm-up,
/// samples and batch). Every count outside its band fails the row, naming
/// the counts per execution.
pub fn verify_tracepoints(
    row: Row,
    claim: &Claim,
    n: u64,
    counts: &BTreeMap<String, u64>,
) -> Verification {
    let s = slack(n);
    let per = |v: u64| v as f64 / n.max(1) as f64;
    let shown = |labels: &[&str]| {
        labels
            .iter()
            .filter_map(|l| counts.get(*l).map(|v| format!("{l} {:.2}", per(*v))))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let Some(proof) = &claim.proof else {
        let mut labels = EXIT_EVENTS.to_vec();
        labels.extend([INJECTED, EMULATED]);
        return verify_baseline(n, counts, &shown(&labels));
    };
    let alternative = claim
        .alternative
        .as_ref()
        .and_then(|a| counts.get(&a.label).copied());
    let got = match (counts.get(&proof.label).copied(), alternative) {
        (None, None) => {
            return Verification::Unverified {
                reason: format!("this kernel has no {} tracepoint", proof.event),
            };
        }
        (a, b) => a.unwrap_or(0) + b.unwrap_or(0),
    };
    let userspace = counts.get(USERSPACE).copied().unwrap_or(0);
    let qemu_label = claim.to_qemu.map_or(USERSPACE_IO, QemuExit::label);
    let to_qemu = counts.get(qemu_label).copied().unwrap_or(0);
    let seen = format!(
        "per execution: {} over {n} executions",
        shown(&evidence_labels(claim, proof))
    );
    let proof_name = match &claim.alternative {
        Some(a) => format!("{} or {}", proof.label, a.label),
        None => proof.label.clone(),
    };
    if proof.event == "kvm_exit" && got == 0 {
        return Verification::Unverified {
            reason: format!(
                "{seen}: kvm:kvm_exit does not fire under this KVM (its vendor module emits none: kvm_pvm), and no other tracepoint records this exit"
            ),
        };
    }
    if let Some(absorbed) = claim.accelerated
        && got <= s
        && userspace <= s
    {
        return verify_absorbed(claim, absorbed, counts, &seen, &proof_name);
    }
    if got < n {
        let never = if got * 100 < n {
            match row.mode() {
                Mode::Kernel => " (it never reached this KVM)".to_string(),
                _ => format!(
                    " (it never reached this KVM: from the guest's {} the instruction went elsewhere; under kvm_pvm guest user mode runs in host ring 3, so what it traps on goes to the outer hypervisor)",
                    if row.mode() == Mode::User {
                        "user mode"
                    } else {
                        "user-to-kernel path"
                    }
                ),
            }
        } else {
            String::new()
        };
        return Verification::Failed {
            evidence: format!("{seen}: only {got} {proof_name} events for {n} executions{never}"),
        };
    }
    if got > n + s {
        return Verification::Failed {
            evidence: format!(
                "{seen}: {got} {proof_name} events for {n} executions, more than one per execution"
            ),
        };
    }
    if proof.event == "kvm_exit"
        && let Some(v) = verify_invd_exits(claim, n, counts, &seen)
    {
        return v;
    }
    if let Some(exit) = claim.to_qemu
        && !(n..=n + s).contains(&to_qemu)
    {
        return Verification::Failed {
            evidence: format!(
                "{seen}: {to_qemu} {} userspace exits for {n} executions, expected one each",
                exit.name()
            ),
        };
    }
    if claim.to_qemu.is_none() && userspace > s {
        return Verification::Failed {
            evidence: format!("{seen}: {userspace} exits to QEMU, expected none"),
        };
    }
    Verification::Verified {
        evidence: format!("{seen}: {}", claim.meaning),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(exits: u64, io: u64) -> BTreeMap<String, u64> {
        [
            ("exits".to_string(), exits),
            ("io_exits".to_string(), io),
            ("irq_exits".to_string(), 3),
        ]
        .into()
    }

    #[test]
    fn query_stats_never_verifies_a_claim_it_cannot_tell_from_another() {
        // One non-I/O exit per execution: a CPUID row, but an RDMSR row (or
        // a timer tick per execution) shows the same counts.
        for expect in [Expect::KvmHandler, Expect::KvmFastpath] {
            let v = verify(expect, 10_000, Evidence::Deltas(&d(10_041, 0)));
            assert!(
                matches!(&v, Verification::Unverified { reason } if reason.starts_with(QUERY_STATS_NAME) && reason.contains("consistent with")),
                "{v:?}"
            );
        }
        // What it can check whole, it verifies, naming itself.
        let v = verify(Expect::NoExit, 10_000, Evidence::Deltas(&d(3, 0)));
        assert!(
            matches!(&v, Verification::Verified { evidence } if evidence.starts_with(QUERY_STATS_NAME)),
            "{v:?}"
        );
    }

    #[test]
    fn a_fast_row_that_went_to_port_io_fails() {
        let v = verify(
            Expect::KvmHandler,
            10_000,
            Evidence::Deltas(&d(10_010, 10_000)),
        );
        assert!(
            matches!(&v, Verification::Failed { evidence } if evidence.contains("expected no port-I/O")),
            "{v:?}"
        );
    }

    #[test]
    fn a_slow_row_reaching_qemu_and_one_that_did_not() {
        // Port I/O, one per execution: consistent, but query-stats cannot
        // show that QEMU served it.
        let ok = verify(Expect::Qemu, 10_000, Evidence::Deltas(&d(10_020, 10_000)));
        assert!(
            matches!(&ok, Verification::Unverified { reason } if reason.contains("QEMU")),
            "{ok:?}"
        );
        let bad = verify(Expect::Qemu, 10_000, Evidence::Deltas(&d(10_020, 3)));
        assert!(matches!(bad, Verification::Failed { .. }), "{bad:?}");
    }

    #[test]
    fn counters_that_lag_the_work_are_inconsistent_not_verified() {
        // What kvm_pvm shows: io_exits stays 0 and exits grows far slower.
        let v = verify(Expect::Qemu, 100_000, Evidence::Deltas(&d(4_000, 0)));
        assert!(
            matches!(&v, Verification::Unverified { reason } if reason.contains("inconsistent")),
            "{v:?}"
        );
        let v = verify(Expect::KvmHandler, 100_000, Evidence::Deltas(&d(30_000, 0)));
        assert!(matches!(v, Verification::Unverified { .. }));
    }

    #[test]
    fn baselines_must_not_exit() {
        assert!(matches!(
            verify(Expect::NoExit, 100_000, Evidence::Deltas(&d(150, 0))),
            Verification::Verified { .. }
        ));
        assert!(matches!(
            verify(Expect::NoExit, 100_000, Evidence::Deltas(&d(100_000, 0))),
            Verification::Failed { .. }
        ));
    }

    #[test]
    fn missing_stats_and_tcg() {
        assert!(matches!(
            verify(Expect::KvmHandler, 10, Evidence::Tcg),
            Verification::Unverified { reason } if reason.starts_with("not verifiable: TCG")
        ));
        assert!(matches!(
            verify(Expect::KvmHandler, 10, Evidence::Unavailable("QEMU 7.0 has no query-stats")),
            Verification::Unverified { reason } if reason.contains("7.0")
        ));
        let only_exits: BTreeMap<String, u64> = [("exits".to_string(), 10u64)].into();
        assert!(matches!(
            verify(Expect::Qemu, 10, Evidence::Deltas(&only_exits)),
            Verification::Unverified { .. }
        ));
    }

    #[test]
    fn query_stats_has_an_upper_bound_and_never_verifies_which_side_served_a_port() {
        // Three exits per execution are not "one exit per execution" (D2).
        let v = verify(Expect::KvmHandler, 10_000, Evidence::Deltas(&d(30_000, 0)));
        assert!(
            matches!(&v, Verification::Failed { evidence } if evidence.contains("more than one exit")),
            "{v:?}"
        );
        // io_exits cannot tell the in-kernel PIC from QEMU (D3).
        for expect in [Expect::KernelPio, Expect::Qemu] {
            let v = verify(expect, 10_000, Evidence::Deltas(&d(10_020, 10_000)));
            assert!(
                matches!(&v, Verification::Unverified { reason } if reason.contains("io_exits counts in-kernel and QEMU")),
                "{v:?}"
            );
        }
    }

    fn counts(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    const N: u64 = 20_100;

    /// Judged as on an AMD host (kvm_amd).
    fn traced(row: Row, pairs: &[(&str, u64)]) -> Verification {
        on(Some(Vendor::Svm), row, pairs)
    }

    fn on(vendor: Option<Vendor>, row: Row, pairs: &[(&str, u64)]) -> Verification {
        let mut c = claim(row, 0xe9);
        c.vendor = vendor;
        verify_tracepoints(row, &c, N, &counts(pairs))
    }

    #[test]
    fn tracepoints_verify_a_row_only_inside_its_band() {
        let exact = traced(
            Row::KernelFast,
            &[
                ("kvm_cpuid", N),
                ("kvm_cpuid leaf 0", N),
                ("kvm_userspace_exit", 2),
            ],
        );
        assert!(
            matches!(&exact, Verification::Verified { evidence } if evidence.contains("kvm_cpuid leaf 0 1.00")),
            "{exact:?}"
        );
        // Under: some executions did not reach KVM's handler.
        let under = traced(Row::KernelFast, &[("kvm_cpuid leaf 0", N - 1)]);
        assert!(matches!(under, Verification::Failed { .. }), "{under:?}");
        // None at all from user mode: the CPUID went elsewhere, and the
        // evidence says so.
        let never = traced(Row::UserFast, &[("kvm_cpuid leaf 0", 3)]);
        assert!(
            matches!(&never, Verification::Failed { evidence } if evidence.contains("never reached this KVM")),
            "{never:?}"
        );
        // Over: three per execution is not one.
        let over = traced(Row::KernelFast, &[("kvm_cpuid leaf 0", 3 * N)]);
        assert!(
            matches!(&over, Verification::Failed { evidence } if evidence.contains("more than one per execution")),
            "{over:?}"
        );
        // An in-KVM row that went to QEMU fails.
        let to_qemu = traced(
            Row::KernelRdmsr,
            &[("kvm_msr read 0x1b", N), ("kvm_userspace_exit", N)],
        );
        assert!(
            matches!(&to_qemu, Verification::Failed { evidence } if evidence.contains("exits to QEMU")),
            "{to_qemu:?}"
        );
    }

    #[test]
    fn qemu_rows_need_one_kvm_exit_io_per_execution() {
        let served = traced(
            Row::KernelSlow,
            &[
                ("kvm_pio write port 0xe9", N),
                ("kvm_userspace_exit KVM_EXIT_IO", N),
                ("kvm_userspace_exit", N + 2),
            ],
        );
        assert!(
            matches!(served, Verification::Verified { .. }),
            "{served:?}"
        );
        // The in-kernel PIO row must not reach QEMU, the QEMU row must.
        let in_kernel = traced(
            Row::KernelPio,
            &[
                ("kvm_pio read port 0x4d0", N),
                ("kvm_userspace_exit KVM_EXIT_IO", N),
                ("kvm_userspace_exit", N),
            ],
        );
        assert!(
            matches!(in_kernel, Verification::Failed { .. }),
            "{in_kernel:?}"
        );
        let not_to_qemu = traced(
            Row::KernelInbQemu,
            &[
                ("kvm_pio read port 0x1234", N),
                ("kvm_userspace_exit KVM_EXIT_IO", 0),
            ],
        );
        assert!(
            matches!(&not_to_qemu, Verification::Failed { evidence } if evidence.contains("KVM_EXIT_IO")),
            "{not_to_qemu:?}"
        );
    }

    #[test]
    fn baselines_invd_and_missing_tracepoints() {
        let quiet = traced(
            Row::KernelNop,
            &[("kvm_cpuid", 0), ("kvm_userspace_exit", 2)],
        );
        assert!(matches!(quiet, Verification::Verified { .. }), "{quiet:?}");
        let exits = traced(Row::UserNop, &[("kvm_cpuid", N)]);
        assert!(matches!(exits, Verification::Failed { .. }), "{exits:?}");
        // A guest timer tick every few executions (a nested, emulated
        // guest): each injected interrupt accounts for up to seven events,
        // the rest must stay within the slack.
        let ticks = N / 20;
        let ticked = traced(
            Row::UserNop,
            &[
                ("kvm_exit", 3 * ticks),
                ("kvm_msr", 2 * ticks),
                ("kvm_eoi", ticks),
                (INJECTED, ticks),
            ],
        );
        assert!(
            matches!(&ticked, Verification::Verified { evidence } if evidence.contains("injected interrupts'")),
            "{ticked:?}"
        );
        let exiting = traced(
            Row::UserNop,
            &[
                ("kvm_exit", 3 * ticks + N),
                ("kvm_cpuid", N),
                ("kvm_msr", 2 * ticks),
                (INJECTED, ticks),
            ],
        );
        assert!(
            matches!(&exiting, Verification::Failed { evidence } if evidence.contains("of its own")),
            "{exiting:?}"
        );
        // Every instruction emulated (kvm_pvm's OS-free ring 0): about
        // three per NOP-loop iteration, no exit event at all.
        let emulated = traced(Row::KernelNop, &[("kvm_cpuid", 0), (EMULATED, 3 * N)]);
        assert!(
            matches!(&emulated, Verification::Failed { evidence } if evidence.contains("emulated")),
            "{emulated:?}"
        );
        // The guest's ring-0 wait around a ring-3 row, emulated on such a
        // host: under one per execution, not the baseline's own.
        let waited = traced(Row::UserNop, &[("kvm_cpuid", 0), (EMULATED, N * 3 / 4)]);
        assert!(
            matches!(waited, Verification::Verified { .. }),
            "{waited:?}"
        );
        // kvm_exit silent (kvm_pvm): INVD cannot be proven either way.
        let invd = traced(Row::KernelInvd, &[("kvm_exit", 0), ("kvm_cpuid", 0)]);
        assert!(
            matches!(&invd, Verification::Unverified { reason } if reason.contains("kvm_exit does not fire")),
            "{invd:?}"
        );
        let invd = traced(
            Row::KernelInvd,
            &[("kvm_exit", N + 40), (INVD_REASON, N), ("kvm_cpuid", 0)],
        );
        assert!(matches!(invd, Verification::Verified { .. }), "{invd:?}");
        // kvm_exit carries the reason on VMX and SVM: exits of another
        // reason are not INVD's.
        let other = traced(
            Row::KernelInvd,
            &[("kvm_exit", N + 40), (INVD_REASON, 0), (WBINVD_REASON, N)],
        );
        assert!(
            matches!(&other, Verification::Failed { evidence } if evidence.contains("not INVD")),
            "{other:?}"
        );
        // ...unless this host runs on QEMU's TCG, whose SVM reports INVD
        // with WBINVD's code: verified, saying so.
        let mut c = claim(Row::KernelInvd, 0xe9);
        c.vendor = Some(Vendor::Svm);
        c.outer_tcg = true;
        let tcg = verify_tracepoints(
            Row::KernelInvd,
            &c,
            N,
            &counts(&[("kvm_exit", N + 40), (INVD_REASON, 0), (WBINVD_REASON, N)]),
        );
        assert!(
            matches!(&tcg, Verification::Verified { evidence } if evidence.contains("QEMU's TCG")),
            "{tcg:?}"
        );
        let no_event = traced(Row::KernelVmcall, &[("kvm_cpuid", 0)]);
        assert!(
            matches!(&no_event, Verification::Unverified { reason } if reason.contains("no kvm_hypercall tracepoint")),
            "{no_event:?}"
        );
    }

    #[test]
    fn each_exiting_row_also_counts_kvm_exit_by_its_reason() {
        let filter = |row: Row| {
            probes(&claim(row, 0xe9))
                .into_iter()
                .find(|p| p.label.starts_with("kvm_exit reason"))
                .and_then(|p| p.filter)
        };
        assert_eq!(
            filter(Row::KernelFast).as_deref(),
            Some("(isa == 1 && exit_reason == 10) || (isa == 2 && exit_reason == 114)")
        );
        assert!(
            filter(Row::KernelWrmsrTscDeadline)
                .unwrap()
                .contains("exit_reason == 32")
        );
        assert!(
            filter(Row::KernelSlow)
                .unwrap()
                .contains("exit_reason == 30")
        );
        assert_eq!(filter(Row::KernelNop), None, "a baseline has no reason");
    }

    #[test]
    fn mmio_and_pio_rows_reach_qemu_or_stop_at_the_ioeventfd() {
        let mmio = "kvm_mmio write 1 byte";
        let pio = "kvm_pio write 1 byte, port >= 0x1000";
        let to_qemu = traced(
            Row::KernelMmioQemu,
            &[
                (mmio, N),
                (USERSPACE, N + 3),
                (USERSPACE_MMIO, N),
                (USERSPACE_IO, 3),
            ],
        );
        assert!(
            matches!(&to_qemu, Verification::Verified { .. }),
            "{to_qemu:?}"
        );
        // Completed in KVM when it claims QEMU: fails, naming the exit kind.
        let missed = traced(Row::UserMmioQemu, &[(mmio, N), (USERSPACE, 2)]);
        assert!(
            matches!(&missed, Verification::Failed { evidence } if evidence.contains("KVM_EXIT_MMIO")),
            "{missed:?}"
        );
        let eventfd = traced(Row::KernelMmioIoeventfd, &[(mmio, N), (USERSPACE, 5)]);
        assert!(
            matches!(&eventfd, Verification::Verified { evidence } if evidence.contains("ioeventfd")),
            "{eventfd:?}"
        );
        // An ioeventfd row whose writes went to QEMU after all.
        let leaked = traced(
            Row::KernelPioIoeventfd,
            &[(pio, N), (USERSPACE, N), (USERSPACE_IO, N)],
        );
        assert!(
            matches!(&leaked, Verification::Failed { evidence } if evidence.contains("exits to QEMU")),
            "{leaked:?}"
        );
        let pio_qemu = traced(
            Row::UserPioQemu,
            &[(pio, N), (USERSPACE, N), (USERSPACE_IO, N)],
        );
        assert!(
            matches!(&pio_qemu, Verification::Verified { .. }),
            "{pio_qemu:?}"
        );
        // Half the writes never exited at all.
        let half = traced(Row::KernelMmioIoeventfd, &[(mmio, N / 2)]);
        assert!(matches!(&half, Verification::Failed { .. }), "{half:?}");
        // The probes: the row's filtered proof, both userspace-exit kinds,
        // and the exit reason of an MMIO access.
        let labels: Vec<String> = probes(&claim(Row::KernelMmioQemu, 0xe9))
            .into_iter()
            .map(|p| p.label)
            .collect();
        for want in [
            mmio,
            USERSPACE_MMIO,
            USERSPACE_IO,
            "kvm_exit reason EPT_MISCONFIG/NPF",
        ] {
            assert!(labels.iter().any(|l| l == want), "{want} not in {labels:?}");
        }
    }

    #[test]
    fn exits_the_hardware_may_absorb_are_verified_either_way_but_only_on_vmx_and_svm() {
        let reached = traced(Row::KernelEoi, &[("kvm_eoi", N)]);
        assert!(
            matches!(&reached, Verification::Verified { evidence } if evidence.contains("reached KVM's local APIC")),
            "{reached:?}"
        );
        // No event, and the counters saw both witness CPUIDs: absorbed, and
        // the row names the mechanism of the host's vendor.
        let live = (WITNESS_LABEL, WITNESSES_PER_ROW);
        let absorbed = traced(Row::KernelEoi, &[("kvm_eoi", 0), live]);
        assert!(
            matches!(&absorbed, Verification::Verified { evidence } if evidence.contains("AVIC")),
            "{absorbed:?}"
        );
        let vmx = on(Some(Vendor::Vmx), Row::KernelEoi, &[("kvm_eoi", 0), live]);
        assert!(
            matches!(&vmx, Verification::Verified { evidence } if evidence.contains("APICv")),
            "{vmx:?}"
        );
        // CR8: a TPR shadow on VMX; on SVM KVM simply does not intercept
        // the write (V_TPR), AVIC or not.
        let cr8 = [("kvm_cr write cr8", 0), live];
        let svm = traced(Row::KernelMovCr8, &cr8);
        assert!(
            matches!(&svm, Verification::Verified { evidence } if evidence.contains("V_TPR") && !evidence.contains("TPR shadow")),
            "{svm:?}"
        );
        let vmx = on(Some(Vendor::Vmx), Row::KernelMovCr8, &cr8);
        assert!(
            matches!(&vmx, Verification::Verified { evidence } if evidence.contains("TPR shadow") && !evidence.contains("AVIC")),
            "{vmx:?}"
        );
        // All-zero counts without the witness: the counters may not have
        // worked at all, so no event proves nothing.
        for witnessed in [0, 1, 3] {
            let dead = traced(
                Row::KernelWrmsrSpecCtrl,
                &[("kvm_msr write 0x48", 0), (WITNESS_LABEL, witnessed)],
            );
            assert!(
                matches!(&dead, Verification::Unverified { reason } if reason.contains("liveness witness")),
                "{witnessed}: {dead:?}"
            );
        }
        // Elsewhere (kvm_pvm) no event is no proof of anything.
        let pvm = on(None, Row::KernelMovCr8, &cr8);
        assert!(
            matches!(&pvm, Verification::Unverified { reason } if reason.contains("not VMX or SVM")),
            "{pvm:?}"
        );
        // Some executions exited and some did not: neither path.
        let mixed = traced(Row::KernelWrmsrIbpb, &[("kvm_msr write 0x49", N / 2)]);
        assert!(matches!(&mixed, Verification::Failed { .. }), "{mixed:?}");
        // Absorbed, yet exits to QEMU happened: not the claimed path.
        let to_qemu = traced(Row::KernelSelfIpi, &[("kvm_apic_ipi", 0), (USERSPACE, N)]);
        assert!(
            matches!(&to_qemu, Verification::Failed { .. }),
            "{to_qemu:?}"
        );
        // query-stats cannot tell these paths apart.
        for expect in [Expect::Apic, Expect::Ioeventfd, Expect::QemuMmio] {
            let v = verify(expect, 10_000, Evidence::Deltas(&d(10_000, 0)));
            assert!(
                matches!(v, Verification::Unverified { .. }),
                "{expect:?}: {v:?}"
            );
        }
    }
}
