//! Pinning QEMU's threads: each vCPU thread to its own benchmark CPU, every
//! other QEMU thread to the housekeeping CPUs. By thread id, with
//! sched_setaffinity (core_affinity can only pin the calling thread).

use crate::sysfs::Sysfs;
use nix::sched::{CpuSet, sched_setaffinity};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};
use vmbench_host::CpuList;

/// Why QEMU's threads could not be pinned.
#[derive(Debug, thiserror::Error)]
pub enum PinError {
    /// The process has no thread list.
    #[error("process {pid} has no thread list under /proc: {why}")]
    NoProcess {
        /// The process.
        pid: u32,
        /// What reading it said.
        why: String,
    },
    /// More vCPU threads than benchmark CPUs.
    #[error(
        "{vcpus} vCPU thread(s) but only {cpus} benchmark CPU(s) ({list}): give --cpus one CPU per vCPU"
    )]
    TooFewCpus {
        /// vCPU threads found.
        vcpus: usize,
        /// Benchmark CPUs given.
        cpus: usize,
        /// The benchmark CPUs.
        list: String,
    },
    /// A thread id that does not belong to the process.
    #[error("vCPU thread {tid} is not a thread of process {pid}")]
    NotOurThread {
        /// The thread.
        tid: u32,
        /// The process.
        pid: u32,
    },
    /// sched_setaffinity failed.
    #[error("sched_setaffinity({tid}, {cpus}) failed: {errno}{hint}")]
    SetAffinity {
        /// The thread.
        tid: u32,
        /// The CPUs asked for.
        cpus: String,
        /// What the kernel said.
        errno: nix::Error,
        /// What to do about it, when known.
        hint: &'static str,
    },
    /// A CPU number beyond what a cpu_set_t holds.
    #[error("CPU {0} is beyond what a cpu_set_t holds")]
    CpuTooLarge(u32),
    /// The benchmark CPUs leave none for housekeeping, or are not online.
    #[error(
        "pinning to CPUs {bench}: they must be online CPUs, leaving at least one of {online} for housekeeping"
    )]
    NoHousekeeping {
        /// The benchmark CPUs.
        bench: String,
        /// The online CPUs.
        online: String,
    },
    /// The online CPUs could not be read.
    #[error("pinning needs the online CPUs")]
    Online(#[source] Box<crate::IsolateError>),
}

/// One thread as /proc shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ThreadInfo {
    /// The thread id.
    pub tid: u32,
    /// Its name (`CPU 0/KVM`, `IO mon_iothread`, ...).
    pub comm: String,
    /// `Cpus_allowed_list`.
    pub cpus_allowed: Option<CpuList>,
    /// `voluntary_ctxt_switches`.
    pub voluntary_switches: Option<u64>,
    /// `nonvoluntary_ctxt_switches`.
    pub involuntary_switches: Option<u64>,
}

/// Every thread of process `pid` (/proc/PID/task).
pub fn threads_of(fs: &dyn Sysfs, pid: u32) -> Result<Vec<ThreadInfo>, PinError> {
    let tids = fs
        .root()
        .numbered(&format!("/proc/{pid}/task"), "")
        .map_err(|e| PinError::NoProcess {
            pid,
            why: e.to_string(),
        })?;
    Ok(tids
        .into_iter()
        .map(|tid| thread_info(fs, pid, tid))
        .collect())
}

/// One thread's name, affinity and context switches (fields it cannot read are None).
pub fn thread_info(fs: &dyn Sysfs, pid: u32, tid: u32) -> ThreadInfo {
    let base = format!("/proc/{pid}/task/{tid}");
    let comm = fs
        .read(&format!("{base}/comm"))
        .map(|c| c.trim().to_string())
        .unwrap_or_default();
    let status = fs.read(&format!("{base}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':').map(str::trim))
    };
    ThreadInfo {
        tid,
        comm,
        cpus_allowed: field("Cpus_allowed_list").and_then(|v| CpuList::parse(v).ok()),
        voluntary_switches: field("voluntary_ctxt_switches").and_then(|v| v.parse().ok()),
        involuntary_switches: field("nonvoluntary_ctxt_switches").and_then(|v| v.parse().ok()),
    }
}

/// vCPU threads found by name (`CPU <n>/KVM`, or `CPU <n>/TCG` under TCG): the
/// fallback when QMP's `query-cpus-fast` is not available. QEMU names its
/// threads only with `-name ...,debug-threads=on`.
pub fn vcpu_threads_by_comm(threads: &[ThreadInfo]) -> Vec<(u32, u32)> {
    let mut out: Vec<(u32, u32)> = threads
        .iter()
        .filter_map(|t| {
            let rest = t.comm.strip_prefix("CPU ")?;
            let (idx, accel) = rest.split_once('/')?;
            if accel != "KVM" && accel != "TCG" {
                return None;
            }
            Some((idx.parse().ok()?, t.tid))
        })
        .collect();
    out.sort_unstable();
    out
}

/// Sets a thread's CPU affinity.
pub fn set_affinity(tid: u32, cpus: &CpuList) -> Result<(), PinError> {
    let mut set = CpuSet::new();
    for c in cpus.iter() {
        set.set(c as usize).map_err(|_| PinError::CpuTooLarge(c))?;
    }
    sched_setaffinity(Pid::from_raw(tid as i32), &set).map_err(|errno| PinError::SetAffinity {
        tid,
        cpus: cpus.to_string(),
        errno,
        hint: match errno {
            nix::Error::EPERM => " (another user's thread: needs CAP_SYS_NICE)",
            nix::Error::EINVAL => {
                " (CPU offline, or in a cgroup isolated partition the thread is not in)"
            }
            nix::Error::ESRCH => " (the thread has exited)",
            _ => "",
        },
    })
}

/// One vCPU thread and where it was pinned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VcpuPin {
    /// The vCPU's index (QEMU's `CPU n/KVM`).
    pub index: u32,
    /// The thread.
    pub tid: u32,
    /// The CPU it was pinned to.
    pub cpu: u32,
}

/// How QEMU's threads were pinned.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pinning {
    /// QEMU's process id.
    pub pid: u32,
    /// The vCPU threads.
    pub vcpus: Vec<VcpuPin>,
    /// The CPUs every other thread went to.
    pub housekeeping: CpuList,
    /// The other threads, moved to `housekeeping`.
    pub others: Vec<u32>,
    /// Context switches per vCPU thread right after pinning (for the later check).
    pub switches_at_pin: Vec<(u32, u64, u64)>,
}

/// Pins vCPU `i` (thread `tid`) to the i-th benchmark CPU, and every other
/// thread of `pid` to the housekeeping CPUs. Threads that exit meanwhile are skipped.
pub fn pin_qemu(
    fs: &dyn Sysfs,
    pid: u32,
    vcpus: &[(u32, u32)],
    bench: &CpuList,
    housekeeping: &CpuList,
) -> Result<Pinning, PinError> {
    if vcpus.len() > bench.len() {
        return Err(PinError::TooFewCpus {
            vcpus: vcpus.len(),
            cpus: bench.len(),
            list: bench.to_string(),
        });
    }
    let threads = threads_of(fs, pid)?;
    let mut pins = Vec::new();
    for ((index, tid), cpu) in vcpus.iter().zip(bench.iter()) {
        if !threads.iter().any(|t| t.tid == *tid) {
            return Err(PinError::NotOurThread { tid: *tid, pid });
        }
        set_affinity(*tid, &CpuList::from_cpus([cpu]))?;
        pins.push(VcpuPin {
            index: *index,
            tid: *tid,
            cpu,
        });
    }
    let mut others = Vec::new();
    for t in &threads {
        if vcpus.iter().any(|(_, tid)| *tid == t.tid) {
            continue;
        }
        match set_affinity(t.tid, housekeeping) {
            Ok(()) => others.push(t.tid),
            Err(PinError::SetAffinity {
                errno: nix::Error::ESRCH,
                ..
            }) => {}
            Err(e) => return Err(e),
        }
    }
    let switches_at_pin = pins
        .iter()
        .map(|p| {
            let t = thread_info(fs, pid, p.tid);
            (
                p.tid,
                t.voluntary_switches.unwrap_or(0),
                t.involuntary_switches.unwrap_or(0),
            )
        })
        .collect();
    Ok(Pinning {
        pid,
        vcpus: pins,
        housekeeping: housekeeping.clone(),
        others,
        switches_at_pin,
    })
}

/// The housekeeping rule: vCPU `i` goes to the i-th CPU of `bench`, and
/// everything else QEMU runs goes to the online CPUs outside `bench`, of
/// which there must be at least one.
pub fn pin_guest_threads(
    fs: &dyn Sysfs,
    pid: u32,
    vcpus: &[(u32, u32)],
    bench: &CpuList,
) -> Result<Pinning, PinError> {
    let online = crate::cpus::online(fs).map_err(|e| PinError::Online(Box::new(e)))?;
    let housekeeping = online.difference(bench);
    if housekeeping.is_empty() || !bench.is_subset(&online) {
        return Err(PinError::NoHousekeeping {
            bench: bench.to_string(),
            online: online.to_string(),
        });
    }
    pin_qemu(fs, pid, vcpus, bench, &housekeeping)
}

impl Pinning {
    /// The CPUs of the shm suite's physical reference: a housekeeping CPU
    /// (where the host end runs) and the first vCPU's CPU (where the guest
    /// end runs), the two ends of the real transfer.
    pub fn reference_cpus(&self) -> Option<(usize, usize)> {
        let housekeeping = self.housekeeping.first()?;
        let vcpu = self.vcpus.first()?.cpu;
        Some((housekeeping as usize, vcpu as usize))
    }

    /// Which threads went where, as the run record keeps it.
    pub fn record(&self) -> vmbench_results::Pinning {
        vmbench_results::Pinning {
            vcpus: self
                .vcpus
                .iter()
                .map(|v| vmbench_results::PinnedVcpu {
                    tid: v.tid,
                    cpu: v.cpu,
                })
                .collect(),
            housekeeping: self.housekeeping.clone(),
        }
    }

    /// One line for a report: which threads went where.
    pub fn describe(&self) -> String {
        self.record().to_string()
    }
}

/// What changed since pinning: affinity drift (tuned or another daemon
/// re-affining threads) and involuntary context switches of the vCPU threads.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PinCheck {
    /// Threads whose affinity changed since pinning.
    pub drifted: Vec<String>,
    /// (tid, voluntary, involuntary) switches since pinning.
    pub switches: Vec<(u32, u64, u64)>,
}

/// What changed since `p` was made.
pub fn verify(fs: &dyn Sysfs, p: &Pinning) -> PinCheck {
    let mut check = PinCheck::default();
    for v in &p.vcpus {
        let t = thread_info(fs, p.pid, v.tid);
        let want = CpuList::from_cpus([v.cpu]);
        match &t.cpus_allowed {
            Some(c) if *c == want => {}
            Some(c) => check.drifted.push(format!(
                "vCPU {} (tid {}) allowed on {c}, pinned to {}",
                v.index, v.tid, v.cpu
            )),
            None => check
                .drifted
                .push(format!("vCPU {} (tid {}) is gone", v.index, v.tid)),
        }
        if let Some((_, vol0, inv0)) = p.switches_at_pin.iter().find(|s| s.0 == v.tid) {
            check.switches.push((
                v.tid,
                t.voluntary_switches.unwrap_or(0).saturating_sub(*vol0),
                t.involuntary_switches.unwrap_or(0).saturating_sub(*inv0),
            ));
        }
    }
    for tid in &p.others {
        let t = thread_info(fs, p.pid, *tid);
        if let Some(c) = &t.cpus_allowed
            && !c.is_subset(&p.housekeeping)
        {
            check.drifted.push(format!(
                "thread {tid} ({}) allowed on {c}, pinned to {}",
                t.comm, p.housekeeping
            ));
        }
    }
    check
}
