//! Did each row take the path it claims? Judged from KVM's counters.
//!
//! `exits` counts every VM exit (KVM's fastpath included); `io_exits` counts
//! every port-I/O exit, whether an in-kernel device or QEMU served it. So the
//! counters prove "this many exits, this many of them PIO"; that a PIO exit
//! reached QEMU follows from the port having no in-kernel device, and the
//! evidence says so instead of claiming more. Counters that cannot account
//! for the work done make the row "unverified", never "verified".

use std::collections::BTreeMap;
use vmbench_proto::vmexit::Expect;
use vmbench_results::Verification;

/// Exits that are not the row's own (timer ticks, interrupts) allowed per
/// iteration count: 5% plus a constant.
fn slack(n: u64) -> u64 {
    n / 20 + 200
}

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
        "KVM exits +{exits}, io_exits +{} over {n} executions",
        io.map_or("?".into(), |v| v.to_string())
    );
    if expect == Expect::NoExit {
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
    let why = match expect {
        Expect::KvmHandler => "one exit per execution, none of them port I/O: handled inside KVM",
        Expect::KvmFastpath => {
            "one exit per execution, inside KVM; the counters cannot tell KVM's fastpath from its handler (INVD is fastpath from Linux 6.18; WRMSR TSC_DEADLINE on 6.12 VMX with the preemption timer, everywhere from 6.18)"
        }
        Expect::KernelPio => {
            "one port-I/O exit per execution; port 0x4d0 is the in-kernel PIC's ELCR, so KVM serves it"
        }
        Expect::Qemu => {
            "one port-I/O exit per execution; the port has no in-kernel device, so each one returns to QEMU (inferred from the port owner: kvm:kvm_userspace_exit was not counted)"
        }
        Expect::NoExit => unreachable!("handled above"),
    };
    Verification::Verified {
        evidence: format!("{shown}: {why}"),
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
    fn a_correct_fast_row() {
        let v = verify(Expect::KvmHandler, 10_000, Evidence::Deltas(&d(10_041, 0)));
        assert!(matches!(v, Verification::Verified { .. }), "{v:?}");
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
        let ok = verify(Expect::Qemu, 10_000, Evidence::Deltas(&d(10_020, 10_000)));
        assert!(
            matches!(&ok, Verification::Verified { evidence } if evidence.contains("QEMU")),
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
}
