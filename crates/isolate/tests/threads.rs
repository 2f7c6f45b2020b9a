//! Moving real threads off the benchmark CPU and back, on the running host:
//! two processes started with known affinities, the apply limited to their
//! threads (a test must not move the rest of the machine's).
#![allow(clippy::unwrap_used)] // test helpers: a failure is the test failing

use nix::sched::{CpuSet, sched_getaffinity, sched_setaffinity};
use nix::unistd::Pid;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::Duration;
use vmbench_host::{CpuList, SysRoot};
use vmbench_isolate::KnobId;
use vmbench_isolate::affinity::ThreadScope;
use vmbench_isolate::apply::apply;
use vmbench_isolate::catalogue::runtime_ids;
use vmbench_isolate::lock::HostLock;
use vmbench_isolate::{AuditOptions, audit};

fn cpus_of(pid: u32) -> Vec<usize> {
    let set = sched_getaffinity(Pid::from_raw(pid as i32)).unwrap();
    (0..CpuSet::count())
        .filter(|&c| set.is_set(c).unwrap())
        .collect()
}

/// `sleep` started on `cpus`.
fn sleeper(cpus: &[usize]) -> Child {
    let mut set = CpuSet::new();
    for &c in cpus {
        set.set(c).unwrap();
    }
    let mut cmd = Command::new("sleep");
    cmd.arg("120");
    // SAFETY: between fork and exec only sched_setaffinity runs, a plain
    // system call (async-signal-safe), on the child itself.
    unsafe {
        cmd.pre_exec(move || {
            sched_setaffinity(Pid::from_raw(0), &set).map_err(std::io::Error::from)
        });
    }
    cmd.spawn().unwrap()
}

#[test]
#[ignore = "needs root and two online CPUs: moves real threads (CI runs it as root)"]
fn threads_with_known_affinities_are_moved_and_put_back() {
    let online = std::fs::read_to_string("/sys/devices/system/cpu/online").unwrap();
    let online = CpuList::parse(online.trim()).unwrap();
    vmbench_testkit::require(&[
        (nix::unistd::geteuid().is_root(), "root"),
        (online.len() >= 2, "two online CPUs"),
    ]);
    let cpus: Vec<u32> = online.iter().collect();
    let (hk, bench) = (cpus[0] as usize, cpus[1] as usize);
    let mut wide = sleeper(&[hk, bench]);
    let mut narrow = sleeper(&[bench]);
    // Let both exec: the affinity belongs to `sleep` by then.
    std::thread::sleep(Duration::from_millis(200));
    let root = SysRoot::host();
    let a = audit(
        &root,
        &AuditOptions {
            cpus: Some(CpuList::from_cpus([bench as u32])),
            noise: vmbench_isolate::osnoise::NoiseSettings::window(Duration::ZERO),
            keep: Default::default(),
            threads: ThreadScope::Processes(vec![wide.id(), narrow.id()]),
        },
    )
    .unwrap();
    let knob = a.knob(KnobId::ThreadAffinity).unwrap();
    assert_eq!(knob.changes.len(), 2, "{knob:?}");
    // Only the threads: every other runtime knob is skipped.
    let skip: Vec<KnobId> = runtime_ids()
        .filter(|k| *k != KnobId::ThreadAffinity)
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal.json");
    let lock = Arc::new(HostLock::acquire(&root, "threads test").unwrap());
    let applied = apply(Arc::new(root.clone()), &a, &skip, &journal, lock.clone()).unwrap();
    assert_eq!(cpus_of(wide.id()), [hk], "the rest of its mask");
    assert_eq!(
        cpus_of(narrow.id()),
        [hk],
        "nothing left: the housekeeping CPUs"
    );
    let text = std::fs::read_to_string(&journal).unwrap();
    assert!(text.contains("\"kind\": \"affinity\""), "{text}");
    // One of them exits before the restore: skipped and counted.
    wide.kill().unwrap();
    wide.wait().unwrap();
    let r = applied.restore().unwrap();
    assert!(r.failed.is_empty(), "{:?}", r.failed);
    assert_eq!(r.threads_gone, 1);
    assert_eq!(cpus_of(narrow.id()), [bench], "put back");
    assert!(!journal.exists());
    narrow.kill().unwrap();
    narrow.wait().unwrap();
}
