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

mod claim;
#[cfg(test)]
mod tests;

use claim::*;
pub use claim::{
    Absorbed, Claim, QemuExit, Vendor, WITNESSES_PER_ROW, claim, probes, takes_fast_mmio,
};

use crate::tracepoints::Probe;
use std::collections::BTreeMap;
use vmbench_proto::vmexit::{Expect, Mode, Row, WITNESS_CPUID_LEAF};
use vmbench_results::{Unverifiable, Verification};

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
                cause: Some(Unverifiable::Emulated),
                reason: Unverifiable::EMULATED_REASON.into(),
            };
        }
        Evidence::Unavailable(why) => {
            return Verification::Unverified {
                cause: None,
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
            cause: None,
            reason: format!(
                "{shown}: this exit may be virtualized away (APICv, AVIC, MSR pass-through, TPR shadow), and query-stats cannot tell which exit the counts are (KVM's tracepoints can: run as root)"
            ),
        };
    }
    if matches!(expect, Expect::QemuMmio | Expect::Ioeventfd) {
        return Verification::Unverified {
            cause: None,
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
            cause: Some(Unverifiable::CountersInconsistent),
            reason: format!(
                "counters inconsistent: {shown}, each of which must exit; this host's KVM statistics do not track the work done"
            ),
        };
    }
    let Some(io) = io else {
        return Verification::Unverified {
            cause: None,
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
        cause: None,
        reason: format!(
            "{shown}: consistent with {claimed}; query-stats counts exits, not which exit each was, so it cannot confirm this row's own (KVM's tracepoints can: run as root)"
        ),
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
pub(super) const INJECTED: &str = "kvm_inj_virq";

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
pub const EVENTS_PER_INTERRUPT: u64 = 7;

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
            cause: None,
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
            cause: None,
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
                cause: None,
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
            cause: None,
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
