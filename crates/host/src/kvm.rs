//! KVM on the host: which module drives /dev/kvm, its parameters, and whether
//! /dev/kvm actually works (open, KVM_GET_API_VERSION, KVM_CREATE_VM).

use crate::{Fact, SysRoot};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// The stable KVM API version (Documentation/virt/kvm/api.rst §4.1).
pub const KVM_API_VERSION: i32 = 12;

/// Which vendor module provides KVM. Under any other module (e.g. `kvm_pvm`)
/// a normal Linux guest may not boot, so the launcher treats it differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum KvmFlavour {
    /// kvm_intel (VMX).
    Intel,
    /// kvm_amd (SVM).
    Amd,
    /// Another vendor module (kvm_pvm, ...): a normal Linux guest may not boot.
    Other,
}

/// The KVM modules loaded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct KvmModules {
    /// Every loaded module whose name starts with `kvm` (from /sys/module).
    pub loaded: Vec<String>,
    /// The vendor module (kvm_intel, kvm_amd, or e.g. kvm_pvm), if one is loaded.
    pub vendor_module: Option<String>,
    /// What the vendor module is, if one is loaded.
    pub flavour: Option<KvmFlavour>,
}

/// Finds the KVM modules under /sys/module.
pub fn modules(root: &SysRoot) -> Fact<KvmModules> {
    let names = match root.list("/sys/module") {
        Ok(n) => n,
        Err(e) => return Fact::unknown(e.to_string()),
    };
    let loaded: Vec<String> = names.into_iter().filter(|n| n.starts_with("kvm")).collect();
    if loaded.is_empty() {
        return Fact::unknown(
            "no kvm module under /sys/module: KVM is not loaded (modprobe kvm_intel or kvm_amd)",
        );
    }
    let vendor_module = ["kvm_intel", "kvm_amd"]
        .iter()
        .find(|m| loaded.iter().any(|l| l == *m))
        .map(|m| m.to_string())
        .or_else(|| loaded.iter().find(|l| l.starts_with("kvm_")).cloned());
    let flavour = vendor_module.as_deref().map(|m| match m {
        "kvm_intel" => KvmFlavour::Intel,
        "kvm_amd" => KvmFlavour::Amd,
        _ => KvmFlavour::Other,
    });
    Fact::Known(KvmModules {
        loaded,
        vendor_module,
        flavour,
    })
}

/// `/sys/module/<m>/parameters/*` for every loaded kvm module. A parameter that
/// cannot be read is kept with the reason in place of its value.
pub fn parameters(root: &SysRoot, mods: &KvmModules) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for m in &mods.loaded {
        let dir = format!("/sys/module/{m}/parameters");
        let mut params = BTreeMap::new();
        if let Ok(names) = root.list(&dir) {
            for p in names {
                let v = root
                    .read(&format!("{dir}/{p}"))
                    .unwrap_or_else(|e| format!("unknown ({e})"));
                params.insert(p, v);
            }
        }
        out.insert(m.clone(), params);
    }
    out
}

/// What opening /dev/kvm showed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DevKvmProbe {
    /// KVM_GET_API_VERSION (12 on every Linux since 2.6.22).
    pub api_version: i32,
    /// Whether KVM_CREATE_VM succeeded.
    pub create_vm: bool,
    /// Why KVM_CREATE_VM failed, when it did.
    pub create_vm_error: Option<String>,
}

/// Why /dev/kvm could not be probed.
#[derive(Debug, thiserror::Error)]
pub enum KvmProbeError {
    /// No /dev/kvm.
    #[error(
        "/dev/kvm is missing: load kvm_intel or kvm_amd, or enable virtualization in the firmware"
    )]
    Missing,
    /// /dev/kvm may not be opened by this user.
    #[error(
        "/dev/kvm cannot be opened: permission denied (add this user to group kvm, or run as root)"
    )]
    Denied,
    /// Opening failed otherwise.
    #[error("/dev/kvm cannot be opened: {0}")]
    Open(nix::Error),
    /// KVM_GET_API_VERSION failed.
    #[error("KVM_GET_API_VERSION failed: {0}")]
    ApiVersion(nix::Error),
}

mod ioctls {
    // KVMIO = 0xAE (include/uapi/linux/kvm.h).
    // KVM_GET_API_VERSION rejects a non-zero argument with EINVAL, and
    // `ioctl_none!` leaves whatever is in the argument register: pass 0.
    nix::ioctl_write_int_bad!(kvm_get_api_version, nix::request_code_none!(0xAE, 0x00));
    // KVM_CREATE_VM takes the machine type by value (0 = default).
    nix::ioctl_write_int_bad!(kvm_create_vm, nix::request_code_none!(0xAE, 0x01));
}

/// Opens `/dev/kvm`, checks the API version and creates (and drops) one VM.
/// Only meaningful on the running machine.
pub fn probe_dev_kvm() -> Result<DevKvmProbe, KvmProbeError> {
    use nix::fcntl::{OFlag, open};
    use nix::sys::stat::Mode;
    let fd = match open("/dev/kvm", OFlag::O_RDWR | OFlag::O_CLOEXEC, Mode::empty()) {
        Ok(fd) => fd,
        Err(nix::Error::ENOENT) => return Err(KvmProbeError::Missing),
        Err(nix::Error::EACCES) | Err(nix::Error::EPERM) => return Err(KvmProbeError::Denied),
        Err(e) => return Err(KvmProbeError::Open(e)),
    };
    // SAFETY: KVM_GET_API_VERSION takes a zero argument and only returns an int;
    // `fd` is an open /dev/kvm descriptor owned by this function.
    let api_version = unsafe { ioctls::kvm_get_api_version(fd.as_raw_fd(), 0) }
        .map_err(KvmProbeError::ApiVersion)?;
    // SAFETY: KVM_CREATE_VM takes the machine type by value and returns a new
    // fd that we take ownership of immediately; no memory is passed.
    let created = unsafe { ioctls::kvm_create_vm(fd.as_raw_fd(), 0) };
    let (create_vm, create_vm_error) = match created {
        Ok(vm_fd) => {
            // SAFETY: the kernel just returned this fd to us and nothing else owns it.
            drop(unsafe { OwnedFd::from_raw_fd(vm_fd) });
            (true, None)
        }
        Err(e) => (false, Some(e.to_string())),
    };
    Ok(DevKvmProbe {
        api_version,
        create_vm,
        create_vm_error,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn tree(mods: &[(&str, &[(&str, &str)])]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (m, params) in mods {
            let p = dir.path().join("sys/module").join(m).join("parameters");
            fs::create_dir_all(&p).unwrap();
            for (k, v) in *params {
                fs::write(p.join(k), format!("{v}\n")).unwrap();
            }
        }
        fs::create_dir_all(dir.path().join("sys/module/ext4")).unwrap();
        dir
    }

    #[test]
    fn finds_intel_module_and_params() {
        let dir = tree(&[
            ("kvm", &[("halt_poll_ns", "200000")]),
            ("kvm_intel", &[("nested", "Y"), ("ple_gap", "128")]),
        ]);
        let root = SysRoot::new(dir.path());
        let m = modules(&root).into_known().unwrap();
        assert_eq!(m.vendor_module.as_deref(), Some("kvm_intel"));
        assert_eq!(m.flavour, Some(KvmFlavour::Intel));
        let p = parameters(&root, &m);
        assert_eq!(p["kvm_intel"]["ple_gap"], "128");
        assert_eq!(p["kvm"]["halt_poll_ns"], "200000");
    }

    #[test]
    fn pvm_is_other() {
        let dir = tree(&[("kvm", &[]), ("kvm_pvm", &[("force", "N")])]);
        let m = modules(&SysRoot::new(dir.path())).into_known().unwrap();
        assert_eq!(m.vendor_module.as_deref(), Some("kvm_pvm"));
        assert_eq!(m.flavour, Some(KvmFlavour::Other));
    }

    #[test]
    fn no_kvm_says_how_to_load_it() {
        let dir = tree(&[]);
        let m = modules(&SysRoot::new(dir.path()));
        assert!(m.reason().unwrap().contains("modprobe"));
    }
}

#[cfg(test)]
mod live_tests {
    use super::*;

    /// Runs the real ioctls where /dev/kvm exists; elsewhere checks the error.
    #[test]
    fn probe_dev_kvm_matches_the_machine() {
        match probe_dev_kvm() {
            Ok(p) => assert_eq!(p.api_version, KVM_API_VERSION),
            Err(KvmProbeError::Missing) => {
                assert!(!std::path::Path::new("/dev/kvm").exists())
            }
            Err(KvmProbeError::Denied) => {}
            Err(e) => panic!("unexpected /dev/kvm failure: {e}"),
        }
    }
}
