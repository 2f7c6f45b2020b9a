//! The shared-memory suite against the guest agent in a VM.

use crate::SuiteError;
use std::time::Duration;
use vmbench_shm::Doorbell;
use vmbench_shm::host::{self, HostRun, Plan};
use vmbench_vm::ivshmem_server::{DoorbellServer, HOST_PEER};
use vmbench_vm::{Accel, Vm};

/// The MSI-X vector the suite's doorbell uses (0 is the control plane's).
pub const DOORBELL_VECTOR: u32 = 1;

pub struct VmShmOptions {
    pub plan: Plan,
    /// Also run the UC (`resource2`) and WC (`resource2_wc`) comparison arms.
    pub arms: bool,
    pub accel: Accel,
}

/// The host's side of ivshmem-doorbell: rings the guest through the
/// server's eventfd (KVM irqfd → MSI-X), hears it through ioeventfd.
struct ServerBell<'a> {
    server: &'a DoorbellServer,
    vector: u32,
}

impl Doorbell for ServerBell<'_> {
    fn ring(&mut self) -> Result<(), String> {
        self.server
            .ring_guest(self.vector)
            .map_err(|e| e.to_string())
    }

    fn wait(&mut self, timeout: Duration) -> Result<(), String> {
        self.server
            .wait_from_guest(self.vector, timeout)
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// Runs the suite (and the arms); every completed measurement is kept in the
/// returned run even when the error is set.
pub fn run(vm: &mut Vm, o: &VmShmOptions) -> (HostRun, Result<(), SuiteError>) {
    let ((mut run, outcome), failure) = vm.with_region(|host_end, r, server, abort| {
        let mut bell = server
            .filter(|s| s.vectors() > DOORBELL_VECTOR)
            .map(|server| ServerBell {
                server,
                vector: DOORBELL_VECTOR,
            });
        let db = bell.as_mut().map(|b| {
            (
                b as &mut dyn Doorbell,
                u64::from(DOORBELL_VECTOR),
                u64::from(HOST_PEER),
            )
        });
        host::run(r, host_end, 0, &o.plan, db, abort)
    });
    if let Some(f) = failure {
        return (run, Err(f.into()));
    }
    if let Err(e) = outcome {
        return (run, Err(e.into()));
    }
    if o.arms {
        for (arm, name) in [(1u64, "uc"), (2, "wc")] {
            let plan = o.plan.arm(name);
            let ((arm_run, outcome), failure) = vm.with_region(|host_end, r, _, abort| {
                host::run(r, host_end, arm, &plan, None, abort)
            });
            run.results
                .measurements
                .extend(arm_run.results.measurements);
            run.results.checks.extend(arm_run.results.checks);
            run.raw.extend(arm_run.raw);
            if let Some(f) = failure {
                return (run, Err(f.into()));
            }
            if let Err(e) = outcome {
                return (run, Err(e.into()));
            }
        }
        if o.accel == Accel::Tcg {
            run.results.warnings.push(
                "TCG ignores memory types: the UC and WC arms run at WB speed here; they differ only under KVM (on AMD hosts KVM honours the guest's PAT; on Intel by default it does not)".into(),
            );
        }
    }
    let targets = host::targets(&run.results, false, o.accel == Accel::Kvm);
    run.results.checks.extend(targets);
    (run, Ok(()))
}
