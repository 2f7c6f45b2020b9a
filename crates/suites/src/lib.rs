//! The host side of the suites: commands the guest agent, checks the path
//! each measurement took, and turns raw samples into results.

pub mod kvmstats;
pub mod pci;
pub mod shm;
pub mod tracepoints;
pub mod verify;
pub mod vmexit;

/// Why a suite stopped.
#[derive(Debug, thiserror::Error)]
pub enum SuiteError {
    /// The VM failed (QEMU gone, command timed out, protocol violated).
    #[error(transparent)]
    Vm(#[from] vmbench_vm::VmError),
    /// The guest refused a row it should be able to run.
    #[error("row {row}: the guest refused: {why}")]
    Refused {
        /// The row's id.
        row: String,
        /// The guest's message.
        why: String,
    },
    /// The guest's answer failed the host's checks.
    #[error("row {row}: the guest answered something unusable: {why}")]
    BadAnswer {
        /// The row's id.
        row: String,
        /// Which check failed.
        why: String,
    },
    /// The samples could not be summarised.
    #[error("row {row}: {why}")]
    Stats {
        /// The row's id.
        row: String,
        /// What the statistics said.
        why: String,
    },
    /// The shared-memory suite failed.
    #[error(transparent)]
    Shm(#[from] vmbench_shm::ShmError),
}
