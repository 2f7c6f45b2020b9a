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
pub mod vmexit;

pub use agent::run;
pub use options::{AgentOptions, Mapping};

/// The agent's entry point (`vmbench` as the guest's PID 1, or the hidden
/// `vmbench guest-agent`): parse options, run, map the outcome to an exit code.
pub fn main_with_args(args: &[String]) -> std::process::ExitCode {
    let opts = match AgentOptions::from_args_and_cmdline(args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("vmbench-guest: {e}");
            if std::process::id() == 1 {
                pid1::poweroff();
            }
            return std::process::ExitCode::from(2);
        }
    };
    match run(&opts) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vmbench-guest: error: {}", vmbench_shm::describe(&e));
            std::process::ExitCode::from(1)
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GuestError {
    #[error("no ivshmem device (1af4:1110) on the PCI bus: QEMU needs -device ivshmem-plain")]
    NoDevice,
    #[error("{path}")]
    Open {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Module(#[from] ModuleError),
    #[error(transparent)]
    Options(#[from] options::OptionError),
    #[error(transparent)]
    Proto(#[from] vmbench_proto::ProtoError),
}

/// The vmbench module could not be loaded or used.
#[derive(Debug, thiserror::Error)]
pub enum ModuleError {
    #[error("{path}")]
    Open {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("loading {path}")]
    Load {
        path: String,
        #[source]
        source: nix::Error,
    },
    #[error("{what}")]
    Ioctl {
        what: String,
        #[source]
        source: nix::Error,
    },
    #[error("module ABI {got} but the agent speaks {want}")]
    Abi { got: u32, want: u32 },
}
