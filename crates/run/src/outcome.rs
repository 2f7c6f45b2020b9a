//! Exit statuses: what a finished command tells its caller.

use crate::drive::DriveError;
use vmbench_results::{CheckKind, Results, Verification};

/// The process exit status, as every command uses it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// 0: everything measured and verified where verifiable.
    Success,
    /// 1: a measurement or check failed, a suite stopped, or the host was not restored.
    Failed,
    /// 2: usage or environment error, or interrupted.
    Usage,
}

impl ExitStatus {
    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            ExitStatus::Success => 0,
            ExitStatus::Failed => 1,
            ExitStatus::Usage => 2,
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

/// `vmbench run`: 2 when interrupted; 1 when a suite stopped, a measurement
/// or check failed, or the host was not restored; else 0.
pub fn run_status(end: &RunEnd, results: &Results) -> ExitStatus {
    if end.interrupted {
        ExitStatus::Usage
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
            ExitStatus::Usage
        );
        assert_eq!(
            shm_status(&with_check(CheckKind::Integrity, false), None),
            ExitStatus::Failed
        );
        assert_eq!(shm_status(&Results::default(), None).code(), 0);
    }
}
