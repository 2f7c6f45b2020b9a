//! The vmbench guest agent.
//!
//! Runs inside the guest — as PID 1 of the initramfs that `vmbench image
//! build` makes (`vmbench-agent`, or `vmbench` itself) — maps the ivshmem region
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

/// The agent's entry point (`vmbench-agent` or `vmbench` as the guest's PID
/// 1, or the hidden `vmbench guest-agent`): parse options, run, map the outcome to an exit code.
pub fn main_with_args(args: &[String]) -> std::process::ExitCode {
    // Keeps the sources' fingerprint in every binary that can be /init:
    // `vmbench image build` reads it to tell a current agent from a stale one.
    std::hint::black_box(vmbench_proto::AGENT_SOURCES);
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

/// Why the guest agent could not serve the host.
#[derive(Debug, thiserror::Error)]
pub enum GuestError {
    /// No ivshmem device on the guest's PCI bus.
    #[error("no ivshmem device (1af4:1110) on the PCI bus: QEMU needs -device ivshmem-plain")]
    NoDevice,
    /// A file the agent needs could not be opened.
    #[error("{path}")]
    Open {
        /// The file.
        path: String,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// The vmbench module failed.
    #[error(transparent)]
    Module(#[from] ModuleError),
    /// The agent's options (command line, kernel cmdline) are wrong.
    #[error(transparent)]
    Options(#[from] options::OptionError),
    /// The command channel failed.
    #[error(transparent)]
    Proto(#[from] vmbench_proto::ProtoError),
}

/// The vmbench module could not be loaded or used.
#[derive(Debug, thiserror::Error)]
pub enum ModuleError {
    /// The module file or its device could not be opened.
    #[error("{path}")]
    Open {
        /// The file.
        path: String,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// finit_module refused the module.
    #[error("loading {path}")]
    Load {
        /// The module file.
        path: String,
        /// What the kernel said.
        #[source]
        source: nix::Error,
    },
    /// An ioctl on the device failed.
    #[error("{what}")]
    Ioctl {
        /// Which ioctl, for what.
        what: String,
        /// What the kernel said.
        #[source]
        source: nix::Error,
    },
    /// The module speaks another ABI version than the agent.
    #[error("module ABI {got} but the agent speaks {want}")]
    Abi {
        /// The module's version.
        got: u32,
        /// The agent's.
        want: u32,
    },
}
