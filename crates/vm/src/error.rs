//! Why a VM could not be started, or stopped answering.

use crate::ivshmem_server::DoorbellError;
use crate::qmp::QmpError;
use vmbench_proto::ProtoError;

/// Why a VM could not be started, or stopped answering.
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    /// The guest ELF does not exist.
    #[error("{0}: no such guest ELF")]
    NoElf(String),
    /// The image has no kernel where the manifest says.
    #[error("{kernel}: no kernel image (run `vmbench image build --out {image}` first)")]
    NoKernel {
        /// The kernel path.
        kernel: String,
        /// The image directory.
        image: String,
    },
    /// A file of the VM (run directory, logs, the shared file) could not be made.
    #[error("{path}")]
    Files {
        /// The file.
        path: String,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// The shared region could not be set up.
    #[error("the shared-memory region")]
    Region(#[source] ProtoError),
    /// A private file or directory of the VM could not be made.
    #[error("creating the VM's {what}")]
    Private {
        /// Which one.
        what: &'static str,
        /// Why not.
        #[source]
        source: vmbench_host::files::FileError,
    },
    /// The ivshmem server failed.
    #[error("the ivshmem server (doorbell mode)")]
    DoorbellServer(#[from] DoorbellError),
    /// QEMU could not be started.
    #[error("cannot run {qemu}: {source} (install qemu-system-x86, or pass --qemu PATH)")]
    Spawn {
        /// The QEMU binary.
        qemu: String,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// QEMU exited.
    #[error(
        "QEMU exited ({status})\n--- QEMU output ---\n{qemu_log}\n--- guest console (last lines) ---\n{console}"
    )]
    QemuExited {
        /// Its exit status.
        status: String,
        /// What QEMU printed.
        qemu_log: String,
        /// The guest console's last lines.
        console: String,
    },
    /// QEMU stopped the guest (paused VM).
    #[error(
        "QEMU stopped the guest (status {status}): a KVM internal error, a guest panic or an outside `stop`\n--- QEMU output ---\n{qemu_log}\n--- guest console (last lines) ---\n{console}"
    )]
    GuestStopped {
        /// The VM's run state.
        status: String,
        /// What QEMU printed.
        qemu_log: String,
        /// The guest console's last lines.
        console: String,
    },
    /// The guest kernel panicked (its console says so).
    #[error("the guest kernel panicked\n--- guest console (last lines) ---\n{console}")]
    GuestPanic {
        /// The console's last lines.
        console: String,
    },
    /// Something did not happen in time.
    #[error(
        "{what} did not happen within {secs:.0} s\n--- guest console (last lines) ---\n{console}"
    )]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long was waited.
        secs: f64,
        /// The guest console's last lines.
        console: String,
    },
    /// Ctrl-C.
    #[error("interrupted")]
    Interrupted,
    /// The guest broke the protocol or failed a command.
    #[error("guest protocol: {0}")]
    Proto(ProtoError),
    /// QMP failed.
    #[error(transparent)]
    Qmp(#[from] QmpError),
    /// The guest's specification failed the host's checks.
    #[error("the guest sent an unusable specification: {0}")]
    BadSpec(String),
}
