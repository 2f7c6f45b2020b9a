//! Threads and their CPU affinities: which may run on the benchmark CPUs,
//! and moving them off and back, as tuned's cpu-partitioning does.
//!
//! Every task is read from `/proc/<pid>/task/<tid>/`: `stat` for its flags
//! and start time (a tid the kernel reused for a new thread has another
//! start time, so a restore never touches a stranger), `status` for its
//! `Cpus_allowed_list`. On the running host a change is
//! `sched_setaffinity(2)`; under a fixture root it rewrites that line of the
//! task's `status` file, so that apply and restore are tested byte for byte.

use crate::sysfs::Sysfs;
use vmbench_host::CpuList;

/// `PF_KTHREAD` (include/linux/sched.h): a kernel thread.
const PF_KTHREAD: u64 = 0x0020_0000;
/// `PF_NO_SETAFFINITY`: the kernel refuses to move it (per-CPU kthreads,
/// workqueue workers: their placement is the workqueue masks' business).
const PF_NO_SETAFFINITY: u64 = 0x0400_0000;
/// The line of `status` that holds the affinity.
const ALLOWED: &str = "Cpus_allowed_list:";

/// Which tasks a scan covers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ThreadScope {
    /// Every task on the host (what `isolate` and `run` use).
    #[default]
    All,
    /// Only the threads of these processes (tests: a run must not move the
    /// threads of whatever else the machine runs meanwhile).
    Processes(Vec<u32>),
}

/// Threads apply leaves where they are, as tuned's `ps_blacklist` does:
/// glob patterns (`*` matches any run of characters) matched against a
/// thread's name and its process's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ThreadExclusion {
    /// The patterns.
    pub patterns: Vec<String>,
}

/// What is left alone by default: other VMs (QEMU processes, and vCPU
/// threads as QEMU names them with `debug-threads=on`), and the polling
/// threads of DPDK and Open vSwitch, whose owners pinned them on purpose
/// (tuned's example list: `.*pmd.*;.*PMD.*;^DPDK;.*qemu-kvm.*`).
pub const DEFAULT_EXCLUSIONS: &[&str] = &[
    "qemu-system-*",
    "qemu-kvm*",
    "CPU */KVM",
    "*pmd*",
    "*PMD*",
    "DPDK*",
    "lcore-worker-*",
    "dpdk-worker*",
];

impl Default for ThreadExclusion {
    fn default() -> Self {
        ThreadExclusion {
            patterns: DEFAULT_EXCLUSIONS.iter().map(|p| p.to_string()).collect(),
        }
    }
}

impl ThreadExclusion {
    /// Nothing excluded.
    pub fn none() -> Self {
        ThreadExclusion {
            patterns: Vec::new(),
        }
    }

    /// The default list (dropped when `move_all`), with `extra` added: what
    /// `--move-all-threads`/`--exclude-threads` and the config's
    /// `move_all_threads`/`exclude_threads` ask for.
    pub fn with(move_all: bool, extra: &[String]) -> Self {
        let mut keep = if move_all {
            ThreadExclusion::none()
        } else {
            ThreadExclusion::default()
        };
        keep.patterns.extend(extra.iter().cloned());
        keep
    }

    /// The pattern that keeps a thread named `comm` of a process named
    /// `process`, if any.
    pub fn matching(&self, comm: &str, process: &str) -> Option<&str> {
        self.patterns
            .iter()
            .find(|p| glob(p, comm) || glob(p, process))
            .map(String::as_str)
    }
}

/// Whether `text` matches `pattern`, where `*` matches any run of characters
/// (a pattern language small enough to need no crate).
pub fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let (first, rest) = match parts.split_first() {
        Some(x) => x,
        None => return text.is_empty(),
    };
    let Some(mut remaining) = text.strip_prefix(first) else {
        return false;
    };
    let Some((last, middle)) = rest.split_last() else {
        return remaining.is_empty();
    };
    for part in middle {
        match remaining.find(part) {
            Some(i) => remaining = &remaining[i + part.len()..],
            None => return false,
        }
    }
    remaining.len() >= last.len() && remaining.ends_with(last)
}

/// One thread as `/proc` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    /// Its process.
    pub pid: u32,
    /// The thread.
    pub tid: u32,
    /// Its name (`comm`).
    pub comm: String,
    /// Start time in clock ticks after boot (`stat` field 22).
    pub start_time: u64,
    /// A kernel thread.
    pub kernel: bool,
    /// The kernel refuses to move it.
    pub pinned_by_kernel: bool,
    /// The CPUs it may run on, as `status` lists them.
    pub allowed_raw: String,
    /// The same, parsed.
    pub allowed: CpuList,
}

/// `comm`, flags and start time from a `stat` line (the name may hold
/// spaces and parentheses: it ends at the last `)`).
pub fn parse_stat(text: &str) -> Option<(String, u64, u64)> {
    let (comm, fields) = crate::noise::split_stat(text)?;
    let flags = fields.get(9 - 3)?.parse().ok()?;
    let start = fields.get(22 - 3)?.parse().ok()?;
    Some((comm, flags, start))
}

/// The `Cpus_allowed_list` of a `status` file.
pub fn allowed_in_status(text: &str) -> Option<&str> {
    text.lines()
        .find_map(|l| l.strip_prefix(ALLOWED))
        .map(str::trim)
}

fn task_dir(pid: u32, tid: u32) -> String {
    format!("/proc/{pid}/task/{tid}")
}

/// The task `tid` of `pid`, if it exists and `/proc` can be read for it.
pub fn read_task(fs: &dyn Sysfs, pid: u32, tid: u32) -> Option<Task> {
    let dir = task_dir(pid, tid);
    let (comm, flags, start_time) = parse_stat(&fs.read(&format!("{dir}/stat")).ok()?)?;
    let status = fs.read(&format!("{dir}/status")).ok()?;
    let allowed_raw = allowed_in_status(&status)?.to_string();
    let allowed = CpuList::parse(&allowed_raw).ok()?;
    Some(Task {
        pid,
        tid,
        comm,
        start_time,
        kernel: flags & PF_KTHREAD != 0,
        pinned_by_kernel: flags & PF_NO_SETAFFINITY != 0,
        allowed_raw,
        allowed,
    })
}

fn numbers(fs: &dyn Sysfs, dir: &str) -> Vec<u32> {
    let mut v: Vec<u32> = fs
        .list(dir)
        .unwrap_or_default()
        .iter()
        .filter_map(|n| n.parse().ok())
        .collect();
    v.sort_unstable();
    v
}

/// PIDs whose comm is one of `names`.
pub fn processes_named(fs: &dyn Sysfs, names: &[&str]) -> Vec<u32> {
    numbers(fs, "/proc")
        .into_iter()
        .filter(|pid| {
            fs.read(&format!("/proc/{pid}/comm"))
                .is_ok_and(|c| names.contains(&c.trim()))
        })
        .collect()
}

/// Clock ticks since boot now, in the unit of `stat`'s start time (both
/// count boot time: `/proc/uptime`'s first field and `start_time` are
/// CLOCK_BOOTTIME based). None when `/proc/uptime` cannot be read.
pub fn boot_ticks(fs: &dyn Sysfs) -> Option<u64> {
    let text = fs.read("/proc/uptime").ok()?;
    let secs: f64 = text.split_whitespace().next()?.parse().ok()?;
    // USER_HZ, the unit of /proc's tick counts (100 on x86; a fixture tree
    // is written in it too).
    let hz = if fs.root().is_host() {
        nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
            .ok()
            .flatten()
            .filter(|&h| h > 0)
            .unwrap_or(100) as f64
    } else {
        100.0
    };
    (secs.is_finite() && secs >= 0.0).then_some((secs * hz) as u64)
}

/// A process's parent and start time, from its main thread's `stat`
/// (fields 4 and 22).
pub fn parent_of(fs: &dyn Sysfs, pid: u32) -> Option<(u32, u64)> {
    let text = fs.read(&format!("{}/stat", task_dir(pid, pid))).ok()?;
    let (_, fields) = crate::noise::split_stat(&text)?;
    let ppid = fields.get(4 - 3)?.parse().ok()?;
    let start = fields.get(22 - 3)?.parse().ok()?;
    Some((ppid, start))
}

/// Every task in `scope` (tasks that vanish while being read are left out).
pub fn tasks(fs: &dyn Sysfs, scope: &ThreadScope) -> Vec<Task> {
    let pids = match scope {
        ThreadScope::All => numbers(fs, "/proc"),
        ThreadScope::Processes(p) => p.clone(),
    };
    pids.iter()
        .flat_map(|&pid| {
            numbers(fs, &format!("/proc/{pid}/task"))
                .into_iter()
                .filter_map(move |tid| read_task(fs, pid, tid))
        })
        .collect()
}

/// What moving a thread can run into.
#[derive(Debug, thiserror::Error)]
pub enum MoveError {
    /// The thread exited, or its tid now names another thread.
    #[error("thread {0} exited")]
    Gone(u32),
    /// The kernel refused the mask (a cpuset that excludes the target CPUs,
    /// or a thread pinned meanwhile).
    #[error("thread {tid} ({comm}): the kernel refused cpus {target}: {source}")]
    Refused {
        /// The thread.
        tid: u32,
        /// Its name.
        comm: String,
        /// The mask refused.
        target: String,
        /// What sched_setaffinity said.
        #[source]
        source: nix::Error,
    },
    /// The fixture's status file could not be rewritten.
    #[error("thread {tid}: {source}")]
    Fixture {
        /// The thread.
        tid: u32,
        /// Why.
        #[source]
        source: vmbench_host::ReadError,
    },
}

/// The thread `tid` of `pid` as it was when journaled: the same start time.
pub fn same_task(fs: &dyn Sysfs, pid: u32, tid: u32, start_time: u64) -> Option<Task> {
    read_task(fs, pid, tid).filter(|t| t.start_time == start_time)
}

/// Sets the affinity of `task` to `list` (a CPU list as `status` shows it).
pub fn set(fs: &dyn Sysfs, task: &Task, list: &str) -> Result<(), MoveError> {
    if fs.root().is_host() {
        let cpus = CpuList::parse(list).map_err(|_| MoveError::Refused {
            tid: task.tid,
            comm: task.comm.clone(),
            target: list.to_string(),
            source: nix::Error::EINVAL,
        })?;
        let mut set = nix::sched::CpuSet::new();
        for c in cpus.iter() {
            set.set(c as usize).map_err(|source| MoveError::Refused {
                tid: task.tid,
                comm: task.comm.clone(),
                target: list.to_string(),
                source,
            })?;
        }
        let tid = nix::unistd::Pid::from_raw(task.tid as i32);
        return match nix::sched::sched_setaffinity(tid, &set) {
            Ok(()) => Ok(()),
            Err(nix::Error::ESRCH) => Err(MoveError::Gone(task.tid)),
            Err(source) => Err(MoveError::Refused {
                tid: task.tid,
                comm: task.comm.clone(),
                target: list.to_string(),
                source,
            }),
        };
    }
    let path = format!("{}/status", task_dir(task.pid, task.tid));
    let raw = fs
        .root()
        .read_raw(&path)
        .map_err(|source| MoveError::Fixture {
            tid: task.tid,
            source,
        })?;
    let text: String = raw
        .split_inclusive('\n')
        .map(|line| match line.strip_prefix(ALLOWED) {
            Some(rest) => {
                // Keep the separator and line ending as they were.
                let sep_len = rest.len() - rest.trim_start().len();
                let end = if line.ends_with('\n') { "\n" } else { "" };
                format!("{ALLOWED}{}{list}{end}", &rest[..sep_len])
            }
            None => line.to_string(),
        })
        .collect();
    fs.write(&path, &text).map_err(|source| MoveError::Fixture {
        tid: task.tid,
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_like_a_shell() {
        for (p, t, want) in [
            ("qemu-system-*", "qemu-system-x86", true),
            ("qemu-system-*", "xqemu-system-x86", false),
            ("CPU */KVM", "CPU 3/KVM", true),
            ("CPU */KVM", "CPU 3/KVMx", false),
            ("*pmd*", "pmd-c03/id:7", true),
            ("*pmd*", "bash", false),
            ("DPDK*", "DPDK", true),
            ("a*b*a", "aba", true),
            ("a*b*a", "ab", false),
            ("exact", "exact", true),
            ("exact", "exactly", false),
        ] {
            assert_eq!(glob(p, t), want, "{p} ~ {t}");
        }
        let keep = ThreadExclusion::default();
        assert_eq!(
            keep.matching("worker", "qemu-system-x86"),
            Some("qemu-system-*")
        );
        assert_eq!(keep.matching("sshd", "sshd"), None);
    }

    #[test]
    fn stat_fields_survive_odd_names() {
        let line =
            "4242 (my (odd) name) S 1 4242 4242 0 -1 4194560 1 2 3 4 5 6 7 8 20 0 1 0 977 10 11";
        assert_eq!(
            parse_stat(line),
            Some(("my (odd) name".into(), 4_194_560, 977))
        );
        assert_eq!(parse_stat("12 (x) S 1"), None);
        let status = "Name:\tx\nCpus_allowed:\tf\nCpus_allowed_list:\t0-3\nMems_allowed:\t1\n";
        assert_eq!(allowed_in_status(status), Some("0-3"));
    }
}
