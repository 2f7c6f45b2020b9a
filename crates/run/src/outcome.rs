//! Exit statuses: what a finished command tells its caller.

use crate::drive::DriveError;
use vmbench_isolate::apply::RestoreReport;
use vmbench_isolate::{Audit, IsolateError, Verdict};
use vmbench_publish::PublishError;
use vmbench_results::{Accel, CheckKind, Results, Verification};
use vmbench_results::{Warning, WarningKind};
use vmbench_vm::TCG_NOTICE;

/// The process exit status, as every command uses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// 0: everything measured and verified where verifiable.
    Success,
    /// 1: a measurement or check failed, a suite stopped, or the host was not restored.
    Failed,
    /// 2: usage or environment error.
    Usage,
    /// 128 + the signal's number (130 for Ctrl-C, 143 for SIGTERM, 129 for
    /// SIGHUP): a signal ended the command, after it cleaned up.
    Interrupted(i32),
}

impl ExitStatus {
    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            ExitStatus::Success => 0,
            ExitStatus::Failed => 1,
            ExitStatus::Usage => 2,
            ExitStatus::Interrupted(sig) => vmbench_host::signals::exit_code(sig),
        }
    }
}

/// Whether a path verification or an integrity check failed.
pub fn measurement_failed(results: &Results) -> bool {
    results
        .measurements
        .iter()
        .any(|m| matches!(m.verification, Verification::Failed { .. }))
        || integrity_failed(results)
}

/// Whether a frame arrived corrupted.
pub fn integrity_failed(results: &Results) -> bool {
    results
        .checks
        .iter()
        .any(|c| !c.passed && c.kind == CheckKind::Integrity)
}

/// `vmbench vmexit`: 1 when a row took another path than it claims.
pub fn vmexit_status(results: &Results) -> ExitStatus {
    if results
        .measurements
        .iter()
        .any(|m| matches!(m.verification, Verification::Failed { .. }))
    {
        ExitStatus::Failed
    } else {
        ExitStatus::Success
    }
}

/// `vmbench shm …`: a guest that broke the protocol or a corrupted frame is
/// a failed measurement (1); any other error stopped the suite before it
/// could measure (2).
pub fn shm_status(results: &Results, error: Option<&DriveError>) -> ExitStatus {
    match error {
        Some(e) if e.is_violation() => ExitStatus::Failed,
        Some(_) => ExitStatus::Usage,
        None if integrity_failed(results) => ExitStatus::Failed,
        None => ExitStatus::Success,
    }
}

/// `vmbench isolate check`: 1 when a knob fails (the figures would not be
/// trustworthy), 0 for warnings.
pub fn audit_status(audit: &Audit) -> ExitStatus {
    if audit.worst() == Verdict::Fail {
        ExitStatus::Failed
    } else {
        ExitStatus::Success
    }
}

/// `vmbench isolate restore` (and `apply --hold` at its end): 1 when a
/// change could not be put back.
pub fn restore_status(report: &RestoreReport) -> ExitStatus {
    if report.failed.is_empty() {
        ExitStatus::Success
    } else {
        ExitStatus::Failed
    }
}

/// `vmbench report verify`: a signature or file that does not verify is a
/// failed check (1); a directory that cannot be read is an environment
/// error (2).
pub fn verify_status(error: &PublishError) -> ExitStatus {
    match error {
        PublishError::Io { .. } | PublishError::Input(_) | PublishError::NotARun { .. } => {
            ExitStatus::Usage
        }
        _ => ExitStatus::Failed,
    }
}

/// `vmbench compare --fail-if-slower PCT`: 1 when a row was called slower
/// than the first run (`slower`, from
/// [`vmbench_publish::significance::Comparison::slower`]: by more than PCT,
/// at 5% family-wise error), else 0.
pub fn compare_status(slower: &[&vmbench_publish::significance::RowDifference]) -> ExitStatus {
    if slower.is_empty() {
        ExitStatus::Success
    } else {
        ExitStatus::Failed
    }
}

/// Any command's error that reached `main`: a failed isolation apply is 1
/// (the host was touched and rolled back); everything else stopped the
/// command before it measured anything (2).
pub fn error_status(error: &(dyn std::error::Error + 'static)) -> ExitStatus {
    // An error after a stop signal is the command stopping for it.
    if let Some(sig) = vmbench_host::signals::received() {
        return ExitStatus::Interrupted(sig);
    }
    let mut cause = Some(error);
    while let Some(e) = cause {
        if let Some(isolate) = e.downcast_ref::<IsolateError>() {
            return isolate_status(isolate);
        }
        if let Some(run) = e.downcast_ref::<crate::RunError>() {
            return run.exit_status();
        }
        cause = e.source();
    }
    ExitStatus::Usage
}

/// An isolation error: 1 for a failed apply (the host was changed and
/// rolled back), 2 for the rest (nothing changed).
pub fn isolate_status(error: &IsolateError) -> ExitStatus {
    match error {
        IsolateError::ApplyFailed { .. } => ExitStatus::Failed,
        _ => ExitStatus::Usage,
    }
}

/// Puts the TCG notice first among the run-wide warnings when the guests
/// ran under TCG: every figure's reader must see that no VM exit happened.
pub fn label_accel(results: &mut Results, accel: Accel) {
    if accel == Accel::Tcg && !results.warnings.iter().any(|w| w.kind == WarningKind::Tcg) {
        results
            .warnings
            .insert(0, Warning::new(WarningKind::Tcg, TCG_NOTICE));
    }
}

/// Labels a run's results by its guests' accelerators: the TCG notice
/// first when every guest ran under TCG; when only some did, a notice that
/// names the suites whose figures are emulation costs, not VM exits.
pub fn label_guests(results: &mut Results, guests: &[vmbench_results::GuestRecord]) {
    let tcg: Vec<&str> = guests
        .iter()
        .filter(|g| g.accel == Accel::Tcg)
        .flat_map(|g| g.suites.iter().map(|s| s.name()))
        .collect();
    if tcg.is_empty() {
        return;
    }
    if guests.iter().all(|g| g.accel == Accel::Tcg) {
        label_accel(results, Accel::Tcg);
        return;
    }
    let kvm: Vec<&str> = guests
        .iter()
        .filter(|g| g.accel == Accel::Kvm)
        .flat_map(|g| g.suites.iter().map(|s| s.name()))
        .collect();
    results.warnings.insert(
        0,
        Warning::new(
            WarningKind::PartlyTcg,
            format!(
                "Mixed accelerators: the {} suite ran under TCG (software emulation): its figures are QEMU's emulation cost, not VM exits; the {} suite ran under KVM",
                tcg.join(" and "),
                kvm.join(" and ")
            ),
        ),
    );
}

/// How a `vmbench run` ended, as its exit status needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunEnd {
    /// Ctrl-C or a signal ended the run.
    pub interrupted: bool,
    /// Every suite ran to its end.
    pub complete: bool,
    /// Every changed knob was restored.
    pub restored: bool,
}

/// `vmbench run`: 128 + the signal when a signal stopped it (130 when no
/// handled signal was recorded, as for Ctrl-C); 1 when a suite stopped, a
/// measurement or check failed, or the host was not restored; else 0.
pub fn run_status(end: &RunEnd, results: &Results) -> ExitStatus {
    if end.interrupted {
        ExitStatus::Interrupted(vmbench_host::signals::received().unwrap_or(2))
    } else if !end.complete || !end.restored || measurement_failed(results) {
        ExitStatus::Failed
    } else {
        ExitStatus::Success
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vmbench_results::Check;

    fn with_check(kind: CheckKind, passed: bool) -> Results {
        Results {
            checks: vec![Check {
                id: "shm.integrity.h2g".into(),
                kind,
                statement: String::new(),
                observed: String::new(),
                passed,
            }],
            ..Results::default()
        }
    }

    #[test]
    fn compare_fails_only_when_a_row_was_called_slower() {
        use vmbench_publish::significance::{RowDifference, Verdict};
        let row = |pct: f64, verdict: Verdict| RowDifference {
            id: "vmexit.kernel-fast".into(),
            baseline: "a".into(),
            run: "b".into(),
            compared_in: "ticks".into(),
            baseline_p50_ns: 100.0,
            run_p50_ns: 100.0 + pct,
            difference_pct: pct,
            ci95_pct: [pct - 1.0, pct + 1.0],
            verdict,
            p_adjusted: None,
            basis: "repeats (3 vs 3)".into(),
        };
        let slow = row(30.0, Verdict::Slower);
        assert_eq!(compare_status(&[]), ExitStatus::Success);
        assert_eq!(compare_status(&[&slow]), ExitStatus::Failed);
        assert_eq!(compare_status(&[&slow]).code(), 1);
    }

    #[test]
    fn a_failed_target_is_not_a_failed_run_but_corruption_is() {
        let end = RunEnd {
            interrupted: false,
            complete: true,
            restored: true,
        };
        assert_eq!(
            run_status(&end, &with_check(CheckKind::Target, false)),
            ExitStatus::Success
        );
        assert_eq!(
            run_status(&end, &with_check(CheckKind::Integrity, false)),
            ExitStatus::Failed
        );
        assert_eq!(
            run_status(
                &RunEnd {
                    restored: false,
                    ..end.clone()
                },
                &Results::default()
            ),
            ExitStatus::Failed
        );
        assert_eq!(
            run_status(
                &RunEnd {
                    interrupted: true,
                    complete: false,
                    ..end
                },
                &Results::default()
            ),
            ExitStatus::Interrupted(2)
        );
        assert_eq!(
            shm_status(&with_check(CheckKind::Integrity, false), None),
            ExitStatus::Failed
        );
        assert_eq!(shm_status(&Results::default(), None).code(), 0);
    }

    #[test]
    fn errors_map_to_statuses_through_their_causes() {
        #[derive(Debug, thiserror::Error)]
        #[error("applying isolation")]
        struct Context(#[source] IsolateError);

        let failed_apply = IsolateError::ApplyFailed {
            change: "x".into(),
            why: Box::new(vmbench_isolate::apply::ChangeError::File(
                vmbench_host::ReadError::Denied { path: "x".into() },
            )),
            rollback: "rolled back".into(),
        };
        assert_eq!(isolate_status(&failed_apply), ExitStatus::Failed);
        assert_eq!(
            error_status(&Context(failed_apply)),
            ExitStatus::Failed,
            "found through the source chain"
        );
        assert_eq!(
            error_status(&Context(IsolateError::NoCpus)),
            ExitStatus::Usage
        );
        let io = std::io::Error::other("anything else");
        assert_eq!(error_status(&io), ExitStatus::Usage);
        let blocked = crate::RunError::Isolate(IsolateError::ApplyFailed {
            change: "x".into(),
            why: Box::new(vmbench_isolate::apply::ChangeError::File(
                vmbench_host::ReadError::Denied { path: "x".into() },
            )),
            rollback: "rolled back".into(),
        });
        assert_eq!(blocked.exit_status(), ExitStatus::Failed);
        assert_eq!(error_status(&blocked), ExitStatus::Failed);
    }

    #[test]
    fn verification_failures_are_1_and_unreadable_directories_2() {
        let unreadable = PublishError::io(
            std::path::Path::new("/nope"),
            std::io::Error::from(std::io::ErrorKind::NotFound),
        );
        assert_eq!(verify_status(&unreadable), ExitStatus::Usage);
        assert_eq!(
            verify_status(&PublishError::Tampered("report.md".into())),
            ExitStatus::Failed
        );
        assert_eq!(
            verify_status(&PublishError::BadSignature("wrong key".into())),
            ExitStatus::Failed
        );
    }

    #[test]
    fn a_failed_restore_is_1() {
        let mut report = RestoreReport::default();
        assert_eq!(restore_status(&report), ExitStatus::Success);
        report.failed.push(vmbench_isolate::apply::RestoreFailure {
            knob: vmbench_isolate::KnobId::Governor,
            error: "cpu0: EIO".into(),
        });
        assert_eq!(restore_status(&report), ExitStatus::Failed);
    }

    #[test]
    fn the_tcg_notice_comes_first_and_once() {
        let noisy = Warning::new(WarningKind::HostChanged, "noisy host");
        let mut results = Results {
            warnings: vec![noisy.clone()],
            ..Results::default()
        };
        label_accel(&mut results, Accel::Kvm);
        assert_eq!(results.warnings, std::slice::from_ref(&noisy));
        label_accel(&mut results, Accel::Tcg);
        label_accel(&mut results, Accel::Tcg);
        assert_eq!(
            results.warnings,
            [Warning::new(WarningKind::Tcg, TCG_NOTICE), noisy]
        );
    }
}
