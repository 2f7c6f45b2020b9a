//! The shared-memory suite against the guest agent in a VM.

use crate::SuiteError;
use std::time::Duration;
use vmbench_shm::host::{self, HostRun, Plan};
use vmbench_shm::{Doorbell, DoorbellError};
use vmbench_vm::ivshmem_server::{DoorbellServer, HOST_PEER};
use vmbench_vm::{Accel, Vm};

/// The MSI-X vector the suite's doorbell uses (0 is the control plane's).
pub const DOORBELL_VECTOR: u32 = 1;

/// The shared-memory suite against a booted VM.
pub struct VmShmOptions {
    /// What to measure and how often.
    pub plan: Plan,
    /// The accelerator the VM runs under (the report's labels depend on it).
    pub accel: Accel,
}

/// The host's side of ivshmem-doorbell: rings the guest through the
/// server's eventfd (KVM irqfd → MSI-X), hears it through ioeventfd.
struct ServerBell<'a> {
    server: &'a DoorbellServer,
    vector: u32,
}

impl Doorbell for ServerBell<'_> {
    fn ring(&mut self) -> Result<(), DoorbellError> {
        self.server
            .ring_guest(self.vector)
            .map_err(|e| DoorbellError::Peer(Box::new(e)))
    }

    fn wait(&mut self, timeout: Duration) -> Result<(), DoorbellError> {
        self.server
            .wait_from_guest(self.vector, timeout)
            .map(|_| ())
            .map_err(|e| DoorbellError::Peer(Box::new(e)))
    }
}

/// Runs the suite over the mapping the guest's agent uses; every completed
/// measurement is kept in the returned run even when the error is set.
pub fn run(vm: &mut Vm, o: &VmShmOptions) -> (HostRun, Result<(), SuiteError>) {
    let mut plan = o.plan.clone();
    // Guest-side windows are in the guest's ticks.
    plan.guest_tsc_khz = vm.spec.tsc_khz_kernel.or(vm.spec.tsc_khz_calibrated);
    if plan.arm.is_none()
        && plan.doorbell_rounds > 0
        && let Some((a, b)) = plan.ref_cpus
    {
        // The vCPU's CPU must be free while the eventfd reference runs on
        // it: the VM is paused (QMP stop) for it, then resumed.
        match vm.paused(|| {
            vmbench_shm::reference::eventfd_rtt(a, b, plan.warmup.min(1_000), plan.doorbell_rounds)
        }) {
            Ok(Ok(set)) => plan.eventfd = Some(set),
            Ok(Err(e)) => return (HostRun::default(), Err(e.into())),
            Err(e) => return (HostRun::default(), Err(SuiteError::Vm(e))),
        }
    }
    let o = &VmShmOptions {
        plan,
        accel: o.accel,
    };
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
    if o.plan.arm.is_none() {
        let targets = host::targets(&run.results, false, o.accel == Accel::Kvm);
        run.results.checks.extend(targets);
    }
    // The memory type as the guest kernel records it, not as the mapper says.
    if let Some(w) = vm.spec.mapping_mismatch() {
        run.results.warnings.push(vmbench_results::Warning::new(
            vmbench_results::WarningKind::MappingMismatch,
            w,
        ));
    }
    if let Some(f) = failure {
        return (run, Err(f.into()));
    }
    (run, outcome.map_err(SuiteError::from))
}

/// What TCG does to the UC and WC arms (reported with them).
pub const TCG_ARMS_NOTE: &str = "TCG ignores memory types: the UC and WC arms run at WB speed here; they differ only under KVM (on AMD hosts KVM honours the guest's PAT; on Intel by default it does not)";

/// What the UC/WC arms mean on this host under KVM: whether the guest's
/// memory types take effect depends on the CPU vendor.
pub fn pat_note(vendor: &str, accel: Accel) -> Option<String> {
    if accel != Accel::Kvm {
        return None;
    }
    Some(match vendor {
        "AuthenticAMD" | "HygonGenuine" => format!(
            "host CPU {vendor}: KVM honours the guest's PAT, so the UC and WC arms are really uncached and write-combining"
        ),
        "GenuineIntel" => "host CPU GenuineIntel: KVM ignores the guest's PAT by default (KVM_X86_QUIRK_IGNORE_GUEST_PAT), so the UC and WC arms may run at WB speed; a difference between them and WB is then noise".into(),
        other => format!("host CPU vendor {other:?}: whether KVM honours the guest's PAT is not known here"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pat_note_depends_on_vendor_and_only_applies_to_kvm() {
        assert_eq!(pat_note("AuthenticAMD", Accel::Tcg), None);
        assert!(
            pat_note("AuthenticAMD", Accel::Kvm)
                .unwrap()
                .contains("honours")
        );
        assert!(
            pat_note("GenuineIntel", Accel::Kvm)
                .unwrap()
                .contains("ignores")
        );
        assert!(
            pat_note("Zhaoxin", Accel::Kvm)
                .unwrap()
                .contains("not known")
        );
    }
}
