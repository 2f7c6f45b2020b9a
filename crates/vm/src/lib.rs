//! Booting the guest under QEMU, fast, deterministically and under control.
//!
//! - [`image`]: assemble a guest image (bzImage + initramfs + cmdline) from a
//!   host kernel without Nix: the static agent as `/init`, the vmbench module
//!   built against that kernel's headers, busybox if present.
//! - [`qemu`]: the QEMU command line (TCG or KVM, ivshmem, debugcon, QMP, serial).
//! - [`qmp`]: a small QMP client.
//! - [`launch`]: a running guest: readiness as an event (the agent's handshake)
//!   with a deadline, console capture, and teardown that never leaves a QEMU
//!   process or a shared-memory file behind.

pub mod accel;
pub mod elf;
mod error;
pub mod image;
pub mod ivshmem_server;
pub mod launch;
pub mod microguest;
pub mod qemu;
pub mod qmp;
pub mod settings;

pub use accel::{AccelChoice, AccelDecision, GuestKind, TCG_NOTICE};
pub use image::{ImageManifest, ImageOptions};
pub use launch::{Vm, VmError, VmOptions};
pub use qemu::{Accel, QemuConfig};
pub use settings::{GuestSettings, SettingsError};
