//! A suite on booted guests: the same steps for `vmbench run`, `vmbench
//! vmexit` and `vmbench shm vm`.

use crate::progress::Progress;
use crate::session::{BootRequest, GuestLauncher, GuestSession, SessionError};
use std::sync::atomic::{AtomicBool, Ordering};
use vmbench_host::CpuList;
use vmbench_proto::Mapping;
use vmbench_proto::vmexit::Row;
use vmbench_results::{MeasurementId, Skipped, Suite, Warning, WarningKind};
use vmbench_shm::host::{HostRun, Plan};
use vmbench_suites::SuiteError;
use vmbench_suites::shm::VmShmOptions;
use vmbench_suites::vmexit::{VmexitOptions, VmexitRun};
use vmbench_vm::{Accel, GuestKind};

/// What the VM-exit suite measures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VmexitRequest {
    /// Rows to run (empty: the default rows).
    pub rows: Vec<Row>,
    /// Timed iterations per row.
    pub iterations: u64,
    /// Discarded iterations before the timed ones.
    pub warmup: u64,
    /// Back-to-back iterations timed as a whole (the batch mean).
    pub batch: u64,
    /// Test only: the rows the micro-guest executes another instruction in
    /// (to watch the path verification catch them).
    pub test_substitute: Vec<Row>,
}

/// The suite's options for this guest. The TSC frequency is the guest's own
/// figure, else the host's (`host_khz`, or measured now): KVM keeps guest
/// TSC = host TSC unless asked to scale it, and the micro-guest has no
/// clock to calibrate.
pub fn vmexit_options(
    session: &dyn GuestSession,
    request: &VmexitRequest,
    host_khz: Option<f64>,
) -> VmexitOptions {
    let mut o = VmexitOptions::new(session.accel());
    o.guest = session.guest();
    if !request.rows.is_empty() {
        o.rows = request.rows.clone();
    }
    o.samples = request.iterations;
    o.warmup = request.warmup;
    o.batch = request.batch;
    o.test_substitute.clone_from(&request.test_substitute);
    if o.accel == Accel::Kvm {
        o.tracepoints = vmbench_host::tracefs::kvm_tracepoints(&vmbench_host::SysRoot::host())
            .map_err(Into::into);
    }
    let spec = session.spec();
    o.tsc_khz = spec
        .tsc_khz_kernel
        .or(spec.tsc_khz_calibrated)
        .or_else(|| host_khz.or_else(vmbench_host::tsc::host_khz));
    o
}

/// Runs the VM-exit suite; rows completed before a failure are kept.
pub fn vmexit(
    session: &mut dyn GuestSession,
    request: &VmexitRequest,
    host_khz: Option<f64>,
    progress: &dyn Progress,
) -> (VmexitOptions, VmexitRun, Result<(), SuiteError>) {
    let options = vmexit_options(session, request, host_khz);
    let (run, outcome) = session.vmexit(&options, &mut |line| progress.step(line));
    (options, run, outcome)
}

/// Why the shm suite or one of its arms stopped.
#[derive(Debug, thiserror::Error)]
pub enum DriveError {
    /// The guest could not be booted or pinned.
    #[error(transparent)]
    Session(#[from] SessionError),
    /// The suite failed.
    #[error(transparent)]
    Suite(#[from] SuiteError),
}

impl DriveError {
    /// A protocol violation by the guest (a measurement failure, not a
    /// setup problem).
    pub fn is_violation(&self) -> bool {
        matches!(self, DriveError::Suite(SuiteError::Shm(e)) if e.is_violation())
    }
}

/// The shared-memory suite and its arms, as they ended.
pub struct ShmOutcome {
    /// What the host end measured, over the main guest and the arms.
    pub run: HostRun,
    /// The suite on the main guest.
    pub suite: Result<(), DriveError>,
    /// The UC and WC arms (Ok when they were not asked for or not reached).
    pub arms: Result<(), DriveError>,
}

/// What the shm suite needs beside its guest.
pub struct ShmRequest<'a> {
    /// What to measure.
    pub plan: Plan,
    /// Also run the UC and WC arms, each in a guest of its own.
    pub arms: bool,
    /// Pin each arm's guest like the main one.
    pub pin: Option<&'a CpuList>,
    /// The host CPU's vendor: what the arms mean under KVM depends on it.
    pub vendor: Option<String>,
}

/// Runs the suite on `session` (then shuts it down), and the arms when
/// asked, unless the suite failed or the run was interrupted.
pub fn shm(
    mut session: Box<dyn GuestSession>,
    launcher: &mut dyn GuestLauncher,
    request: &ShmRequest,
    interrupt: &AtomicBool,
    progress: &dyn Progress,
) -> ShmOutcome {
    let accel = session.accel();
    progress.step("transfers, round trips and integrity");
    let options = VmShmOptions {
        plan: request.plan.clone(),
        accel,
    };
    let (mut run, suite) = session.shm(&options);
    session.shutdown();
    run.note_counters();
    let mut outcome = ShmOutcome {
        run,
        suite: suite.map_err(DriveError::from),
        arms: Ok(()),
    };
    if !request.arms || outcome.suite.is_err() || interrupt.load(Ordering::Relaxed) {
        return outcome;
    }
    progress.step("UC and WC mapping arms (one guest each)");
    let (arm_run, arms) = mapping_arms(launcher, request, accel, progress);
    outcome.run.absorb(arm_run);
    outcome.arms = arms;
    if let Some(n) =
        vmbench_suites::shm::pat_note(request.vendor.as_deref().unwrap_or("unknown"), accel)
    {
        outcome
            .run
            .results
            .warnings
            .push(Warning::new(WarningKind::MemoryTypeArms, n));
    }
    outcome
}

/// The UC and WC comparison arms: the guest's PAT allows only one memory
/// type per physical range (the module's WB mapping makes a sysfs UC mapping
/// fail with EINVAL), so each arm is a fresh guest booted with
/// `vmbench.mapping=uc|wc`, running a reduced plan.
fn mapping_arms(
    launcher: &mut dyn GuestLauncher,
    request: &ShmRequest,
    accel: Accel,
    progress: &dyn Progress,
) -> (HostRun, Result<(), DriveError>) {
    let mut all = HostRun::default();
    for mapping in Mapping::ARMS {
        let boot = BootRequest {
            guest: GuestKind::Linux,
            doorbell: false,
            mapping: Some(mapping),
        };
        let mut session = match launcher.boot(&boot, progress) {
            Ok(s) => s,
            Err(e) => return (all, Err(e.into())),
        };
        if session.spec().mapping != mapping {
            all.results.skipped.push(Skipped {
                id: MeasurementId::new(Suite::Shm, mapping.id()),
                reason: format!(
                    "the guest mapped the BAR as {:?}, not {mapping}",
                    session.spec().mapping.id()
                ),
            });
            session.shutdown();
            continue;
        }
        if let Some(cpus) = request.pin
            && let Err(e) = session.pin(cpus)
        {
            session.shutdown();
            return (all, Err(e.into()));
        }
        let options = VmShmOptions {
            plan: request.plan.arm(mapping),
            accel,
        };
        let (run, outcome) = session.shm(&options);
        session.shutdown();
        all.absorb(run);
        if let Err(e) = outcome {
            return (all, Err(e.into()));
        }
    }
    if accel == Accel::Tcg {
        all.results.warnings.push(Warning::new(
            WarningKind::MemoryTypeArms,
            vmbench_suites::shm::TCG_ARMS_NOTE,
        ));
    }
    (all, Ok(()))
}
