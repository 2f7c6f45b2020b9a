//! The host side of the suites: commands the guest agent, checks the path
//! each measurement took, and turns raw samples into results.

pub mod kvmstats;
pub mod shm;
pub mod verify;
pub mod vmexit;

#[derive(Debug, thiserror::Error)]
pub enum SuiteError {
    #[error(transparent)]
    Vm(#[from] vmbench_vm::VmError),
    #[error("row {row}: the guest refused: {why}")]
    Refused { row: String, why: String },
    #[error("row {row}: the guest answered something unusable: {why}")]
    BadAnswer { row: String, why: String },
    #[error("row {row}: {why}")]
    Stats { row: String, why: String },
    #[error(transparent)]
    Shm(#[from] vmbench_shm::ShmError),
}
