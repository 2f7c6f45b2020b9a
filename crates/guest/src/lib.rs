//! The vmbench guest agent.
//!
//! Runs inside the guest — as PID 1 of the initramfs that `vmbench image
//! build` makes, or as a service of the NixOS guest — maps the ivshmem region
//! (write-back through the vmbench kernel module when it is there), answers
//! the host's handshake, and executes the host's commands. It never talks over
//! the network or the serial line: the serial console only carries boot and
//! fault messages.

pub mod agent;
pub mod kmod;
pub mod options;
pub mod pci;
pub mod pid1;
pub mod spec;

pub use agent::run;
pub use options::{AgentOptions, Mapping};

#[derive(Debug, thiserror::Error)]
pub enum GuestError {
    #[error("{0}")]
    Setup(String),
    #[error(transparent)]
    Proto(#[from] vmbench_proto::ProtoError),
}
