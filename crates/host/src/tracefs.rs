//! KVM's tracepoints as perf_event_open needs them: their ids, from tracefs.
//!
//! Counting a tracepoint (`PERF_TYPE_TRACEPOINT`, no ring buffer) needs only
//! its id, so tracefs is needed for a moment: where it is not mounted (the
//! default on many hosts) and this process is root on the running host, it is
//! mounted on a fresh directory under /run, the ids are read, and it is
//! unmounted again before this returns; nothing stays behind, whatever ends
//! the read.

use crate::fs::SysRoot;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The KVM tracepoints vmbench counts per VM-exit row, as
/// `events/kvm/<name>` names them.
pub const KVM_EVENTS: [&str; 11] = [
    "kvm_exit",
    "kvm_cpuid",
    "kvm_msr",
    "kvm_pio",
    "kvm_mmio",
    "kvm_fast_mmio",
    "kvm_userspace_exit",
    "kvm_hypercall",
    "kvm_apic_ipi",
    "kvm_eoi",
    "kvm_cr",
];

/// KVM events counted beside [`KVM_EVENTS`] but not exits themselves:
/// `kvm_inj_virq`, an interrupt injected into the guest (what accounts
/// for the exits a timer tick brings into a baseline's window), and
/// `kvm_emulate_insn`, an instruction KVM's emulator executed for the
/// guest (an MMIO access on the slow path; under kvm_pvm, every
/// instruction of an OS-free guest's ring 0).
pub const KVM_AUX_EVENTS: [&str; 2] = ["kvm_inj_virq", "kvm_emulate_insn"];

/// Where tracefs usually is.
const MOUNTS: [&str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];

/// The ids of the KVM tracepoints this kernel has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvmTracepoints {
    /// Event name (`kvm_cpuid`) → tracepoint id.
    pub ids: BTreeMap<String, u64>,
    /// Where they were read: a tracefs mount, or the private mount made for
    /// the read.
    pub source: String,
}

/// Why KVM's tracepoints cannot be counted here.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TracefsError {
    /// tracefs is not mounted and this process may not mount it.
    #[error(
        "tracefs is not mounted (not at /sys/kernel/tracing or /sys/kernel/debug/tracing) and mounting it needs root on the running host"
    )]
    NotMounted,
    /// tracefs has no `events/kvm`: the kvm module is not loaded, or built
    /// without tracepoints.
    #[error("{dir} has no KVM events (kvm not loaded, or built without tracepoints)")]
    NoKvmEvents {
        /// The events directory looked at.
        dir: String,
    },
    /// Mounting tracefs for the read failed.
    #[error("mounting tracefs on {dir}: {source}")]
    Mount {
        /// The directory.
        dir: String,
        /// What the kernel said.
        #[source]
        source: nix::Error,
    },
    /// A tracepoint's id file could not be read or parsed.
    #[error("{path}: {source}")]
    Id {
        /// The file.
        path: String,
        /// What was wrong.
        #[source]
        source: std::num::ParseIntError,
    },
}

/// The ids of [`KVM_EVENTS`] and [`KVM_AUX_EVENTS`] under `root`'s tracefs; on the running host as
/// root, tracefs is mounted for the read when it is not mounted yet.
pub fn kvm_tracepoints(root: &SysRoot) -> Result<KvmTracepoints, TracefsError> {
    for mount in MOUNTS {
        let dir = root.path(mount);
        if dir.join("events").is_dir() {
            return read_ids(&dir, mount.to_string());
        }
    }
    if !root.is_host() || !nix::unistd::geteuid().is_root() {
        return Err(TracefsError::NotMounted);
    }
    let mount = PrivateMount::new()?;
    let source = format!(
        "tracefs mounted at {} for the read, unmounted after",
        mount.dir.display()
    );
    read_ids(&mount.dir, source)
}

fn read_ids(tracefs: &Path, source: String) -> Result<KvmTracepoints, TracefsError> {
    let kvm = tracefs.join("events/kvm");
    let mut ids = BTreeMap::new();
    for event in KVM_EVENTS.iter().chain(&KVM_AUX_EVENTS) {
        let path = kvm.join(event).join("id");
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue; // this kernel does not have it (kvm_exit under kvm_pvm does exist, but never fires)
        };
        let id = text.trim().parse::<u64>().map_err(|e| TracefsError::Id {
            path: path.display().to_string(),
            source: e,
        })?;
        ids.insert(event.to_string(), id);
    }
    if ids.is_empty() {
        return Err(TracefsError::NoKvmEvents {
            dir: kvm.display().to_string(),
        });
    }
    Ok(KvmTracepoints { ids, source })
}

/// tracefs on a fresh root-owned directory, unmounted and removed on drop.
struct PrivateMount {
    dir: PathBuf,
}

impl PrivateMount {
    fn new() -> Result<PrivateMount, TracefsError> {
        use nix::mount::{MsFlags, mount};
        // /run is root's and not world-writable: nobody can plant the
        // directory or swap it for a symlink (mkdtemp creates it 0700).
        let template = Path::new("/run").join("vmbench-tracefs-XXXXXX");
        let dir = nix::unistd::mkdtemp(&template).map_err(|source| TracefsError::Mount {
            dir: template.display().to_string(),
            source,
        })?;
        let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
        if let Err(source) = mount(Some("nodev"), &dir, Some("tracefs"), flags, None::<&str>) {
            let _ = std::fs::remove_dir(&dir);
            return Err(TracefsError::Mount {
                dir: dir.display().to_string(),
                source,
            });
        }
        Ok(PrivateMount { dir })
    }
}

impl Drop for PrivateMount {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.dir, nix::mount::MntFlags::MNT_DETACH);
        let _ = std::fs::remove_dir(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_read_from_a_mounted_tracefs_tree() {
        let root = tempfile::tempdir().unwrap();
        let kvm = root.path().join("sys/kernel/tracing/events/kvm");
        for (event, id) in [("kvm_cpuid", "1234\n"), ("kvm_pio", "110\n")] {
            std::fs::create_dir_all(kvm.join(event)).unwrap();
            std::fs::write(kvm.join(event).join("id"), id).unwrap();
        }
        let tp = kvm_tracepoints(&SysRoot::new(root.path())).unwrap();
        assert_eq!(tp.ids.get("kvm_cpuid"), Some(&1234));
        assert_eq!(tp.ids.get("kvm_pio"), Some(&110));
        assert!(!tp.ids.contains_key("kvm_msr"));
        assert_eq!(tp.source, "/sys/kernel/tracing");

        std::fs::write(kvm.join("kvm_pio/id"), "not a number").unwrap();
        let err = kvm_tracepoints(&SysRoot::new(root.path())).unwrap_err();
        assert!(err.to_string().contains("kvm_pio/id"), "{err}");
    }

    #[test]
    fn a_tree_without_tracefs_is_not_mounted_and_one_without_kvm_says_so() {
        let root = tempfile::tempdir().unwrap();
        let err = kvm_tracepoints(&SysRoot::new(root.path())).unwrap_err();
        assert!(matches!(err, TracefsError::NotMounted), "{err}");
        std::fs::create_dir_all(root.path().join("sys/kernel/debug/tracing/events/sched")).unwrap();
        let err = kvm_tracepoints(&SysRoot::new(root.path())).unwrap_err();
        assert!(matches!(err, TracefsError::NoKvmEvents { .. }), "{err}");
    }
}
