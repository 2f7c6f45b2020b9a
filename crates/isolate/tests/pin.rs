//! Pinning real threads by tid, as the VM launcher will pin QEMU's.
#![allow(clippy::unwrap_used)]

use std::sync::mpsc;
use std::time::Duration;
use vmbench_host::{CpuList, SysRoot};
use vmbench_isolate::noise::parse_stat;
use vmbench_isolate::pin::{self, PinError};

fn online() -> CpuList {
    CpuList::parse(&std::fs::read_to_string("/sys/devices/system/cpu/online").unwrap()).unwrap()
}

fn gettid() -> u32 {
    nix::unistd::gettid().as_raw() as u32
}

/// Spawns a named thread that reports its tid and parks until told to stop.
fn named_thread(name: &str) -> (u32, mpsc::Sender<()>, std::thread::JoinHandle<()>) {
    let (tid_tx, tid_rx) = mpsc::channel();
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let h = std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            tid_tx.send(gettid()).unwrap();
            let _ = stop_rx.recv();
        })
        .unwrap();
    (tid_rx.recv().unwrap(), stop_tx, h)
}

/// Not a test on its own: with VMBENCH_PIN_HELPER set, this process plays
/// QEMU (a `CPU 0/KVM` thread and an I/O thread) until stdin closes.
#[test]
#[ignore = "not a test: the stand-in for QEMU that pins_another_processes_vcpu_threads_by_tid starts"]
fn helper_process() {
    if std::env::var_os("VMBENCH_PIN_HELPER").is_none() {
        return;
    }
    let (vcpu, _s1, _h1) = named_thread("CPU 0/KVM");
    let (io, _s2, _h2) = named_thread("IO mon_iothread");
    println!("tids {vcpu} {io}");
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    std::process::exit(0);
}

#[test]
#[ignore = "needs two online CPUs"]
fn pins_another_processes_vcpu_threads_by_tid() {
    use std::io::{BufRead, BufReader};
    use std::process::{Command, Stdio};
    let cpus = online();
    vmbench_testkit::require(&[(cpus.len() >= 2, "a second online CPU")]);
    let bench = CpuList::from_cpus([cpus.iter().last().unwrap()]);
    let hk = cpus.difference(&bench);
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "helper_process",
            "--include-ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("VMBENCH_PIN_HELPER", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let (vcpu_tid, io_tid) = loop {
        let mut line = String::new();
        assert!(out.read_line(&mut line).unwrap() > 0, "helper exited early");
        if let Some(rest) = line.trim().split("tids ").nth(1) {
            let v: Vec<u32> = rest.split(' ').map(|t| t.parse().unwrap()).collect();
            break (v[0], v[1]);
        }
    };
    let pid = child.id();
    let root = SysRoot::host();
    let threads = pin::threads_of(&root, pid).unwrap();
    let found = pin::vcpu_threads_by_comm(&threads);
    assert_eq!(found, vec![(0, vcpu_tid)]);

    let pinning = pin::pin_qemu(&root, pid, &found, &bench, &hk).unwrap();
    assert_eq!(pinning.vcpus[0].cpu, bench.first().unwrap());
    assert_eq!(
        pin::thread_info(&root, pid, vcpu_tid).cpus_allowed.unwrap(),
        bench
    );
    assert_eq!(
        pin::thread_info(&root, pid, io_tid).cpus_allowed.unwrap(),
        hk
    );
    assert!(
        pinning.others.contains(&pid),
        "the main thread goes to housekeeping"
    );
    let check = pin::verify(&root, &pinning);
    assert!(check.drifted.is_empty(), "{:?}", check.drifted);
    assert_eq!(check.switches.len(), 1);

    // Someone (tuned, a script) re-affines the vCPU: verify notices.
    pin::set_affinity(vcpu_tid, &cpus).unwrap();
    let check = pin::verify(&root, &pinning);
    assert_eq!(check.drifted.len(), 1, "{:?}", check.drifted);
    assert!(check.drifted[0].contains("vCPU 0"));

    drop(child.stdin.take());
    assert!(child.wait().unwrap().success());
}

#[test]
fn stat_reports_the_cpu_a_pinned_thread_runs_on() {
    let cpus = online();
    let target = cpus.iter().last().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let me = gettid();
        pin::set_affinity(me, &CpuList::from_cpus([target])).unwrap();
        std::thread::sleep(Duration::from_millis(20));
        let stat = std::fs::read_to_string(format!("/proc/self/task/{me}/stat")).unwrap();
        tx.send(parse_stat(&stat).unwrap()).unwrap();
    })
    .join()
    .unwrap();
    let (_, state, cpu) = rx.recv().unwrap();
    assert_eq!(state, 'R');
    assert_eq!(cpu, target);
}

#[test]
fn pin_errors_are_clear() {
    let root = SysRoot::host();
    let pid = std::process::id();
    let one = CpuList::from_cpus([0]);
    let err = pin::pin_qemu(&root, pid, &[(0, 1), (1, 2)], &one, &one).unwrap_err();
    assert!(matches!(err, PinError::TooFewCpus { .. }), "{err}");
    let err = pin::pin_qemu(&root, pid, &[(0, 1)], &one, &one).unwrap_err();
    assert!(err.to_string().contains("not a thread of process"), "{err}");
    let err = pin::pin_qemu(&root, u32::MAX - 1, &[], &one, &one).unwrap_err();
    assert!(matches!(err, PinError::NoProcess { .. }));
    let err = pin::set_affinity(u32::MAX / 2, &one).unwrap_err();
    assert!(err.to_string().contains("exited"), "{err}");
}
