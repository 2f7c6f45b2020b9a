//! `vmbench run` as a library, and the guest sessions every command that
//! boots a guest shares.
//!
//! A run is a sequence of phases, each a type that only the phase before it
//! can produce:
//!
//! ```text
//! Plan ──preflight()──▶ Preflighted ──isolate()──▶ Isolated ──run_suites()──▶ SuitesDone
//!      (changes nothing)          (journal, then knobs)     (guests, suites)
//!   ──restore()──▶ Restored ──record()──▶ Recorded ──publish()──▶ output directory
//! ```
//!
//! So "nothing on the host changes before the preflight has passed" and "the
//! host is restored before the report is written" are facts the compiler
//! keeps: [`Isolated`] exists only after [`preflight`] succeeded, and a
//! [`Recorded`] only after [`SuitesDone::restore`]. An error, a panic or
//! Ctrl-C between the two restores the host too (the isolation guard's
//! `Drop`).
//!
//! Guests are booted through a [`GuestLauncher`]; [`VmLauncher`] boots real
//! ones, tests use fakes. [`drive`] runs a suite on a session, for `vmbench
//! run`, `vmbench vmexit` and `vmbench shm vm` alike. Progress goes to a
//! [`Progress`], which the command line implements.

pub mod config;
pub mod context;
pub mod drive;
pub mod identity;
pub mod outcome;
pub mod phases;
pub mod plan;
pub mod preflight;
pub mod progress;
pub mod records;
pub mod session;

pub use outcome::ExitStatus;
pub use phases::{Isolated, Recorded, Restored, RunError, SuitesDone};
pub use plan::{Environment, Plan, PlanError, RunFlags};
pub use preflight::{Blocked, Preflighted, preflight};
pub use progress::{Progress, Silent};
pub use session::{BootRequest, GuestLauncher, GuestSession, SessionError, VmLauncher};

/// The suites a run can take (in `vmbench-results`, which names measurements
/// by suite).
pub use vmbench_results::Suite;

/// Runs every phase in order: what `vmbench run` does. The caller prints
/// the summary and turns [`Recorded::exit_status`] into the process status.
pub fn run(
    plan: Plan,
    launcher: &mut dyn GuestLauncher,
    progress: &dyn Progress,
    interrupt: &std::sync::atomic::AtomicBool,
) -> Result<Recorded, RunError> {
    let preflighted = preflight(plan, progress)?;
    let isolated = preflighted.isolate(progress)?;
    let done = isolated.run_suites(launcher, progress, interrupt);
    let restored = done.restore(progress);
    let recorded = restored.record();
    recorded.publish(progress)?;
    Ok(recorded)
}
