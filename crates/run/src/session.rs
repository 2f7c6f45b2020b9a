//! A guest session: boot, pin, run a suite, shut down. `vmbench run`,
//! `vmbench vmexit` and `vmbench shm vm` all go through it, so the three
//! cannot drift apart; tests put a fake in its place.

use crate::progress::Progress;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use vmbench_host::{CpuList, SysRoot};
use vmbench_isolate::pin::{PinError, Pinning};
use vmbench_proto::{GuestSpec, Mapping};
use vmbench_results::QemuRecord;
use vmbench_shm::host::HostRun;
use vmbench_suites::SuiteError;
use vmbench_suites::shm::VmShmOptions;
use vmbench_suites::vmexit::{VmexitOptions, VmexitRun};
use vmbench_vm::{Accel, GuestKind, GuestSettings, SettingsError, Vm, VmError};

/// What to boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BootRequest {
    /// The Linux guest or the micro-guest.
    pub guest: GuestKind,
    /// ivshmem-doorbell (for the shm suite's doorbell round trip) instead of
    /// ivshmem-plain.
    pub doorbell: bool,
    /// A mapping arm of the shm suite: the guest maps the region UC or WC.
    pub mapping: Option<Mapping>,
}

impl BootRequest {
    /// The plain guest of `kind`.
    pub fn plain(guest: GuestKind) -> BootRequest {
        BootRequest {
            guest,
            doorbell: false,
            mapping: None,
        }
    }

    /// The Linux guest for the shm suite on its own (`vmbench shm vm`):
    /// ivshmem-doorbell for the doorbell round trip, unless the guest
    /// settings already ask for it with their own vector count
    /// (`--doorbell-vectors`), which the request must not override.
    pub fn shm_suite(doorbell_in_settings: bool) -> BootRequest {
        BootRequest {
            guest: GuestKind::Linux,
            doorbell: !doorbell_in_settings,
            mapping: None,
        }
    }
}

/// A guest that did not boot, or could not be pinned.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The guest settings do not resolve (no image, no QEMU, bad memory size).
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// QEMU or the guest failed to come up.
    #[error(transparent)]
    Boot(#[from] VmError),
    /// The vCPU threads could not be pinned.
    #[error("pinning the guest: {0}")]
    Pin(#[from] PinError),
    /// QEMU exited before it could be pinned.
    #[error("QEMU is not running")]
    NoQemu,
}

/// Boots guests.
pub trait GuestLauncher {
    /// Boots a guest and returns once its agent answered.
    fn boot(
        &mut self,
        request: &BootRequest,
        progress: &dyn Progress,
    ) -> Result<Box<dyn GuestSession>, SessionError>;
}

/// A booted guest.
pub trait GuestSession {
    /// The Linux guest or the micro-guest.
    fn guest(&self) -> GuestKind;
    /// The accelerator the guest runs under.
    fn accel(&self) -> Accel;
    /// What the launcher had to say about the accelerator (a TCG fallback says why).
    fn accel_notice(&self) -> Option<&str>;
    /// The guest agent's specification.
    fn spec(&self) -> &GuestSpec;
    /// QEMU's path, version and command line.
    fn qemu(&self) -> QemuRecord;
    /// vCPU `i` to the i-th CPU of `bench`, QEMU's other threads to the
    /// housekeeping CPUs.
    fn pin(&mut self, bench: &CpuList) -> Result<Pinning, SessionError>;
    /// The VM-exit suite; rows completed before a failure are kept.
    fn vmexit(
        &mut self,
        options: &VmexitOptions,
        progress: &mut dyn FnMut(&str),
    ) -> (VmexitRun, Result<(), SuiteError>);
    /// The shared-memory suite; measurements completed before a failure are kept.
    fn shm(&mut self, options: &VmShmOptions) -> (HostRun, Result<(), SuiteError>);
    /// Powers the guest off (QMP quit, then SIGKILL, if it does not); says how QEMU ended.
    fn shutdown(self: Box<Self>) -> String;
}

/// Boots real guests under QEMU.
pub struct VmLauncher {
    /// The guest as configured; each request sets the guest kind, doorbell
    /// and mapping arm.
    pub settings: GuestSettings,
    /// Set by Ctrl-C: boot and commands stop waiting.
    pub interrupt: Option<Arc<AtomicBool>>,
    /// Copy the guest console to stdout (`vmbench vm boot`).
    pub echo_console: bool,
    /// Where pinning reads /proc and /sys.
    pub root: SysRoot,
}

impl VmLauncher {
    /// A launcher for `settings`, with no console echo, on the running host.
    pub fn new(settings: GuestSettings, interrupt: Option<Arc<AtomicBool>>) -> VmLauncher {
        VmLauncher {
            settings,
            interrupt,
            echo_console: false,
            root: SysRoot::host(),
        }
    }
}

impl GuestLauncher for VmLauncher {
    fn boot(
        &mut self,
        request: &BootRequest,
        progress: &dyn Progress,
    ) -> Result<Box<dyn GuestSession>, SessionError> {
        let mut settings = self.settings.clone();
        settings.guest = request.guest;
        if request.doorbell {
            settings.doorbell_vectors = Some(vmbench_suites::shm::DOORBELL_VECTOR + 1);
        }
        if let Some(m) = request.mapping {
            settings.append.push(format!("vmbench.mapping={}", m.id()));
        }
        let (mut options, decision) =
            settings.resolve(self.interrupt.clone(), &mut |m| progress.step(m))?;
        options.echo_console = self.echo_console;
        progress.step(&format!(
            "booting the {} guest ({})",
            request.guest.name(),
            options.accel.name()
        ));
        let vm = Vm::boot(&options)?;
        progress.detail(&format!("QEMU: {}", vm.config.command_line()));
        Ok(Box::new(VmSession {
            vm,
            guest: request.guest,
            notice: decision.notice,
            root: self.root.clone(),
        }))
    }
}

/// A real guest.
pub struct VmSession {
    /// The VM.
    pub vm: Vm,
    guest: GuestKind,
    notice: Option<String>,
    root: SysRoot,
}

impl GuestSession for VmSession {
    fn guest(&self) -> GuestKind {
        self.guest
    }

    fn accel(&self) -> Accel {
        self.vm.config.accel
    }

    fn accel_notice(&self) -> Option<&str> {
        self.notice.as_deref()
    }

    fn spec(&self) -> &GuestSpec {
        &self.vm.spec
    }

    fn qemu(&self) -> QemuRecord {
        crate::records::qemu_record(&self.vm)
    }

    fn pin(&mut self, bench: &CpuList) -> Result<Pinning, SessionError> {
        let pid = self.vm.qemu_pid().ok_or(SessionError::NoQemu)?;
        Ok(vmbench_isolate::pin::pin_guest_threads(
            &self.root,
            pid,
            &self.vm.vcpu_threads,
            bench,
        )?)
    }

    fn vmexit(
        &mut self,
        options: &VmexitOptions,
        progress: &mut dyn FnMut(&str),
    ) -> (VmexitRun, Result<(), SuiteError>) {
        vmbench_suites::vmexit::run_partial(&mut self.vm, options, progress)
    }

    fn shm(&mut self, options: &VmShmOptions) -> (HostRun, Result<(), SuiteError>) {
        vmbench_suites::shm::run(&mut self.vm, options)
    }

    fn shutdown(self: Box<Self>) -> String {
        match self.vm.shutdown() {
            Ok(how) => how,
            Err(e) => format!("shutdown failed: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shm_vm_asks_for_the_doorbell_unless_the_settings_already_give_it() {
        let own = BootRequest::shm_suite(false);
        assert!(own.doorbell && own.guest == GuestKind::Linux && own.mapping.is_none());
        assert!(!BootRequest::shm_suite(true).doorbell);
    }
}
