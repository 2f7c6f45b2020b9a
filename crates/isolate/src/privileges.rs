//! Who we are and what that allows.

use crate::model::Privileges;
use caps::{CapSet, Capability};

const RELEVANT: &[(Capability, &str)] = &[
    (
        Capability::CAP_DAC_OVERRIDE,
        "writing root-owned sysfs/procfs knobs (or run as uid 0)",
    ),
    (
        Capability::CAP_SYS_ADMIN,
        "some sysfs writes and systemd units",
    ),
    (
        Capability::CAP_SYS_NICE,
        "pinning QEMU threads owned by another user, RT priorities",
    ),
    (
        Capability::CAP_IPC_LOCK,
        "locking guest memory beyond RLIMIT_MEMLOCK",
    ),
    (
        Capability::CAP_SYS_RESOURCE,
        "raising RLIMIT_MEMLOCK's hard limit",
    ),
];

/// This process's euid and the capabilities that matter to isolation.
pub fn current() -> Privileges {
    let euid = nix::unistd::geteuid().as_raw();
    let mut have = Vec::new();
    let mut missing = Vec::new();
    for (cap, what) in RELEVANT {
        if caps::has_cap(None, CapSet::Effective, *cap).unwrap_or(false) {
            have.push(cap.to_string());
        } else {
            missing.push(format!("{cap}: {what}"));
        }
    }
    Privileges {
        euid,
        capabilities: have,
        missing,
    }
}
