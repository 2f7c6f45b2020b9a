//! `vmbench shm --loopback`: host and guest ends as two host processes on
//! two pinned CPUs, over a file in /dev/shm: the physical reference of the
//! suite, and what CI measures.

use crate::eventfd::EventFdPair;
use crate::host::{self, HostRun, Plan};
use crate::{ShmError, reference};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use vmbench_proto::{HostEnd, MappedRegion};

/// The shared-memory suite between two processes on this host, over a file in tmpfs.
pub struct LoopbackOptions {
    /// The vmbench binary that plays the guest end (`vmbench shm guest`).
    pub exe: PathBuf,
    /// (host end's CPU, guest end's CPU).
    pub cpus: (usize, usize),
    /// The shared file's size.
    pub region_bytes: usize,
    /// Directory of the shared file (tmpfs: /dev/shm).
    pub dir: PathBuf,
    /// Whether to measure doorbell round trips too (an eventfd pair).
    pub doorbell: bool,
    /// What to measure.
    pub plan: Plan,
}

/// Removes the shared file and kills the guest process, whatever happens.
struct Cleanup {
    path: PathBuf,
    child: Option<Child>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.kill();
            let _ = c.wait();
        }
        if !self.path.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn child_exit(child: &mut Option<Child>) -> Option<String> {
    match child.as_mut()?.try_wait() {
        Ok(Some(st)) => Some(format!("the guest-end process exited ({st})")),
        _ => None,
    }
}

/// Runs the suite; on a failure mid-suite the partial run comes back with the error.
pub fn run(o: &LoopbackOptions, interrupt: &AtomicBool) -> (HostRun, Result<(), ShmError>) {
    let mut cleanup = Cleanup {
        path: PathBuf::new(),
        child: None,
    };
    match run_inner(o, interrupt, &mut cleanup) {
        Ok(v) => v,
        Err(e) => (HostRun::default(), Err(e)),
    }
}

fn run_inner(
    o: &LoopbackOptions,
    interrupt: &AtomicBool,
    cleanup: &mut Cleanup,
) -> Result<(HostRun, Result<(), ShmError>), ShmError> {
    // The eventfd reference before the guest end exists: nothing else
    // runs on its CPU yet.
    let mut plan = o.plan.clone();
    plan.ref_cpus = Some(o.cpus);
    if plan.doorbell_rounds > 0 {
        plan.eventfd = Some(crate::reference::eventfd_rtt(
            o.cpus.0,
            o.cpus.1,
            plan.warmup.min(1_000),
            plan.doorbell_rounds,
        )?);
    }
    // What killed vmbench processes left behind (their pid gone) goes
    // first: region files here, run directories in the temporary one.
    vmbench_host::files::sweep_stale(&o.dir);
    vmbench_host::files::sweep_stale(&std::env::temp_dir());
    // A fresh 0600 file with an unguessable name: only this process and
    // its child (same user) can open it, so nobody can truncate it under us.
    let (file, path) =
        vmbench_host::files::private_file(&o.dir, ".shm").map_err(ShmError::SharedFile)?;
    cleanup.path = path;
    let mapped = MappedRegion::map_new_file(&file, &cleanup.path, o.region_bytes)?;
    drop(file);
    let r = mapped.region();
    let mut host = HostEnd::start(r);
    let (h2g, g2h) = EventFdPair::new_inheritable().map_err(ShmError::Doorbell)?;
    let mut cmd = Command::new(&o.exe);
    cmd.args(["shm", "guest", "--path"])
        .arg(&cleanup.path)
        .args(["--cpu", &o.cpus.1.to_string()])
        .args(["--parent-pid", &std::process::id().to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null());
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: runs in the forked child before exec; prctl is
        // async-signal-safe and touches no memory of the parent. The guest
        // end dies with us, however we die (it also checks that its parent
        // is still us, for a death before this took effect).
        unsafe {
            cmd.pre_exec(|| {
                nix::sys::prctl::set_pdeathsig(Some(nix::sys::signal::Signal::SIGKILL))
                    .map_err(std::io::Error::from)
            });
        }
    }
    if o.doorbell {
        cmd.arg("--doorbell-fds")
            .arg(format!("{},{}", g2h.as_raw_fd(), h2g.as_raw_fd()));
    }
    cleanup.child = Some(cmd.spawn().map_err(|source| ShmError::Spawn {
        exe: o.exe.display().to_string(),
        source,
    })?);
    let mut pair = EventFdPair { tx: h2g, rx: g2h };
    reference::pin_current_thread(o.cpus.0)?;
    let child = &mut cleanup.child;
    let mut abort = || {
        if interrupt.load(Ordering::Relaxed) {
            return Some("interrupted".to_string());
        }
        child_exit(child)
    };
    host.wait_ready(r, Instant::now() + Duration::from_secs(10), &mut abort)?;
    // Both ends have it mapped: the name can go, so nothing is left behind
    // even if both processes are killed.
    let _ = std::fs::remove_file(&cleanup.path);
    let db = o
        .doorbell
        .then_some((&mut pair as &mut dyn crate::Doorbell, 0, 0));
    let (run, outcome) = host::run_and_close(r, &mut host, &plan, db, &mut abort, true);
    Ok((run, outcome))
}

/// The loopback's two CPUs (host end, guest end) from `--cpus`: two
/// different CPUs, or none for [`default_cpus`].
pub fn cpus(given: &[usize]) -> Result<(usize, usize), crate::ShmError> {
    match given {
        [] => default_cpus(),
        [host, guest] if host != guest => Ok((*host, *guest)),
        other => Err(crate::ShmError::LoopbackCpus(other.to_vec())),
    }
}

/// The CPUs the loopback pins its two ends to when none are given: the
/// last two this process may run on.
pub fn default_cpus() -> Result<(usize, usize), crate::ShmError> {
    use nix::sched::{CpuSet, sched_getaffinity};
    let set = sched_getaffinity(nix::unistd::Pid::from_raw(0)).map_err(|source| {
        crate::ShmError::Scheduler {
            what: "sched_getaffinity".into(),
            source,
        }
    })?;
    let cpus: Vec<usize> = (0..CpuSet::count())
        .filter(|c| set.is_set(*c).unwrap_or(false))
        .collect();
    match cpus.as_slice() {
        [.., a, b] => Ok((*a, *b)),
        _ => Err(crate::ShmError::TooFewCpus(cpus)),
    }
}

/// Where the loopback's file goes: tmpfs when there is one, as QEMU's would.
pub fn default_dir() -> PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ShmError;

    #[test]
    fn the_loopback_takes_two_different_cpus_or_picks_them() {
        assert_eq!(cpus(&[1, 0]).ok(), Some((1, 0)));
        for bad in [&[3, 3][..], &[1][..], &[0, 1, 2][..]] {
            let err = cpus(bad).unwrap_err();
            assert!(matches!(err, ShmError::LoopbackCpus(_)), "{err:?}");
            assert!(err.to_string().contains("two different CPUs"), "{err}");
        }
        // None given: the last two this process may use (or why not).
        match cpus(&[]) {
            Ok((a, b)) => assert!(a < b),
            Err(e) => assert!(matches!(e, ShmError::TooFewCpus(_)), "{e:?}"),
        }
    }
}
