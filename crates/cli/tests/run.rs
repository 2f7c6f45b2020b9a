//! `vmbench run` end to end under TCG, and the ways a run can be cut short.
//!
//! Isolation runs against a fixture tree (`isolation.root`), so tests never
//! retune the machine running them, and each test has its own journal; the
//! tree must come back byte-identical.
#![allow(clippy::unwrap_used)]

mod common;
use common::vmbench;
use vmbench_results::Stopped;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

struct Setup {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    journal: PathBuf,
    config: PathBuf,
    out: PathBuf,
    before: std::collections::BTreeMap<PathBuf, Vec<u8>>,
}

/// A fixture host (2 CPUs, acpi-cpufreq) and a config pointing at it.
fn setup(image: &Path, extra: &str) -> Setup {
    setup_vm(image, extra, "")
}

/// As `setup`, with extra lines for the `vm:` section.
fn setup_vm(image: &Path, extra: &str, vm_extra: &str) -> Setup {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    vmbench_host::fixture::load(&["acpi-cpufreq"], &root).unwrap();
    let journal = tmp.path().join("journal.json");
    let config = tmp.path().join("vmbench.yaml");
    std::fs::write(
        &config,
        format!(
            "isolation:\n  root: {}\n  journal: {}\nvm:\n  image: {}\n  boot_timeout_s: 240\n{vm_extra}{extra}",
            root.display(),
            journal.display(),
            image.display()
        ),
    )
    .unwrap();
    let before = vmbench_host::fixture::snapshot(&root).unwrap();
    let out = tmp.path().join("out");
    Setup {
        _tmp: tmp,
        root,
        journal,
        config,
        out,
        before,
    }
}

impl Setup {
    fn command(&self) -> Command {
        let mut c = vmbench();
        c.args([
            "run", "--accel", "tcg", "--quick", "--cpus", "1", "--config",
        ])
        .arg(&self.config)
        .arg("--out")
        .arg(&self.out);
        c
    }

    /// The host came back as it was, and no journal is left.
    fn assert_restored(&self) {
        let after = vmbench_host::fixture::snapshot(&self.root).unwrap();
        assert_eq!(after, self.before, "the fixture host was not restored");
        assert!(
            !self.journal.exists(),
            "journal left at {}",
            self.journal.display()
        );
    }

    /// Runs `cmd` to its end, then checks that it left no QEMU or shm file
    /// behind and restored the host.
    fn run_to_end(&self, mut cmd: Command) -> Output {
        let child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = child.id();
        let out = child.wait_with_output().unwrap();
        no_leftovers(pid);
        self.assert_restored();
        out
    }

    fn record(&self) -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(self.out.join("results.json")).unwrap())
            .unwrap()
    }

    /// The record in its types, as `vmbench report render` reads it.
    fn typed_record(&self) -> vmbench_results::RunRecord {
        serde_json::from_str(&std::fs::read_to_string(self.out.join("results.json")).unwrap())
            .unwrap()
    }
}

fn no_leftovers(pid: u32) {
    let tag = format!("/vmbench-{pid}-");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !vmbench_testkit::processes_mentioning(&tag).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        vmbench_testkit::processes_mentioning(&tag).is_empty(),
        "QEMU left running"
    );
    let shm: Vec<String> = std::fs::read_dir("/dev/shm")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&format!("vmbench-{pid}-")))
        .collect();
    assert!(shm.is_empty(), "shm files left: {shm:?}");
}

fn ids(v: &serde_json::Value) -> Vec<String> {
    v["results"]["measurements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
#[ignore = "needs qemu-system-x86 and a Linux kernel: boots a guest under TCG"]
fn quick_tcg_run_writes_a_complete_signed_report_and_restores() {
    let img = common::guest_image();
    let s = setup(img, "");
    let keys = tempfile::tempdir().unwrap();
    let key = keys.path().join("id");
    assert!(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "ci@vmbench", "-f"])
            .arg(&key)
            .status()
            .unwrap()
            .success()
    );
    let mut cmd = s.command();
    cmd.arg("--sign").arg(&key);
    let out = s.run_to_end(cmd);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Every expected file.
    for f in [
        "report.md",
        "results.json",
        "vmexit.csv",
        "shm.csv",
        "MANIFEST.sha256",
        "report.sig",
        "plots/shm-bandwidth.svg",
        "plots/vmexit.user-fast.spectrum.svg",
        "plots/vmexit.spectrum.svg",
        "plots/shm-rtt.spectrum.svg",
        "report.html",
        "plots/shm.rtt.poll.spectrum.svg",
    ] {
        assert!(s.out.join(f).is_file(), "{f} missing");
    }
    let md = std::fs::read_to_string(s.out.join("report.md")).unwrap();
    let head: String = md.lines().take(4).collect::<Vec<_>>().join("\n");
    assert!(head.contains("TCG run — not a KVM measurement"), "{head}");
    // The first screen: the headline with verdicts and two inline figures.
    let first: Vec<&str> = md.lines().take(60).collect();
    assert!(
        first
            .iter()
            .any(|l| l.starts_with("| vmexit.user-fast |") && l.ends_with("| n/a (TCG) |")),
        "{first:#?}"
    );
    assert!(
        first
            .iter()
            .filter(|l| l.starts_with("!["))
            .map(|l| l.matches("![").count())
            .sum::<usize>()
            >= 2,
        "{first:#?}"
    );
    let v = s.record();
    assert_eq!(v["complete"], true, "{}", v["incomplete"]);
    assert_eq!(v["accel"], "tcg");
    let ids = ids(&v);
    for row in vmbench_proto::vmexit::Row::HEADLINE {
        assert!(
            ids.contains(&format!("vmexit.{}", row.id())),
            "{} missing",
            row.id()
        );
    }
    for id in [
        "shm.rtt.poll",
        "shm.rtt.doorbell",
        "shm.ref.cacheline-rtt",
        "shm.h2g.4k-32bpp.end-to-end",
        "shm.g2h.1080p-24bpp.host-read",
        "shm.uc.h2g.1080p-32bpp.guest-read-cold",
    ] {
        assert!(ids.contains(&id.to_string()), "{id} missing");
    }
    let checks = v["results"]["checks"].as_array().unwrap();
    assert!(
        checks
            .iter()
            .filter(|c| c["id"].as_str().unwrap().contains("integrity"))
            .all(|c| c["passed"] == true)
    );
    // Isolation was applied to the fixture and every change restored.
    let knobs = v["isolation"].as_array().unwrap();
    let changed: Vec<_> = knobs
        .iter()
        .filter(|k| !k["changed_to"].is_null())
        .collect();
    assert!(!changed.is_empty(), "nothing was applied");
    assert!(
        changed.iter().all(|k| k["restored"] == "restored"),
        "{changed:?}"
    );
    let pinning = s.typed_record().pinning.unwrap();
    assert_eq!(pinning.vcpu_cpus().to_string(), "1", "{pinning}");
    // The signature checks out with stock tools and with vmbench.
    let pubkey = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let allowed = keys.path().join("allowed");
    std::fs::write(&allowed, format!("ci@vmbench {pubkey}")).unwrap();
    let verify = vmbench()
        .args(["report", "verify"])
        .arg(&s.out)
        .arg("--allowed-signers")
        .arg(&allowed)
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    let sums = Command::new("sha256sum")
        .args(["-c", "--quiet", "MANIFEST.sha256"])
        .current_dir(&s.out)
        .status()
        .unwrap();
    assert!(sums.success());
}

/// Reads the run's stderr until a line containing `marker`; the rest is
/// drained in the background so the child never blocks on a full pipe.
fn wait_for_line(child: &mut Child, marker: &str) -> std::thread::JoinHandle<String> {
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let wanted = marker.to_string();
    let h = std::thread::spawn(move || {
        let mut all = String::new();
        let mut sent = false;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if !sent && line.contains(&wanted) {
                let _ = tx.send(());
                sent = true;
            }
            all.push_str(&line);
            all.push('\n');
        }
        all
    });
    rx.recv_timeout(Duration::from_secs(300))
        .unwrap_or_else(|_| panic!("no {marker:?} line within 300 s"));
    h
}

fn finish(mut child: Child, log: std::thread::JoinHandle<String>) -> (Output, String) {
    let deadline = Instant::now() + Duration::from_secs(300);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "vmbench run did not end");
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    (out, log.join().unwrap())
}

const SHORT: &str =
    "suites: [vmexit, shm]\nvmexit:\n  rows: [user-fast, kernel-fast]\nshm:\n  arms: false\n";

/// Starts the run, waits for `marker` on its progress, does `cut` (given the
/// run's pid), and checks the common outcome: exit `code`, no QEMU or shm
/// file left, the host restored, and an INCOMPLETE report that says `why`.
fn cut_short(
    s: &Setup,
    marker: &str,
    cut: impl FnOnce(u32),
    code: i32,
    why: impl Fn(&vmbench_results::Incomplete) -> bool,
) {
    let mut child = s
        .command()
        .stderr(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let log = wait_for_line(&mut child, marker);
    cut(pid);
    let (out, log) = finish(child, log);
    assert_eq!(out.status.code(), Some(code), "{log}");
    no_leftovers(pid);
    s.assert_restored();
    let r = s.typed_record();
    assert!(!r.complete);
    assert!(r.incomplete.iter().any(why), "{:?}", r.incomplete);
    let md = std::fs::read_to_string(s.out.join("report.md")).unwrap();
    assert!(md.contains("INCOMPLETE run"));
}

fn signal(pid: u32, sig: nix::sys::signal::Signal) {
    let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig);
}

#[test]
#[ignore = "needs qemu-system-x86 and a Linux kernel: boots a guest under TCG"]
fn qemu_killed_mid_suite_keeps_what_was_measured() {
    let img = common::guest_image();
    let s = setup(
        img,
        "vmexit:\n  rows: [user-fast, kernel-fast, user-slow]\n",
    );
    let kill_qemu = |pid: u32| {
        let qemu = vmbench_testkit::processes_mentioning(&format!("/vmbench-{pid}-"));
        assert!(!qemu.is_empty(), "no QEMU found");
        for q in qemu {
            signal(q, nix::sys::signal::Signal::SIGKILL);
        }
    };
    // The kill lands in whichever suite is running by then (TCG is quick):
    // that suite stops with QEMU's end as the reason.
    cut_short(&s, "user-fast: measuring", kill_qemu, 1, |i| {
        matches!(
            i.what,
            Stopped::SuiteStopped { .. } | Stopped::MemoryTypeArmsStopped { .. }
        ) && i.to_string().contains("stopped: QEMU exited")
    });
    // Kernel rows run first: they were complete before the kill.
    let ids = ids(&s.record());
    assert!(ids.contains(&"vmexit.kernel-fast".to_string()), "{ids:?}");
}

#[test]
#[ignore = "needs qemu-system-x86 and a Linux kernel: boots a guest under TCG"]
fn a_guest_that_hangs_mid_run_ends_the_suite_at_its_deadline() {
    let img = common::guest_image();
    // The hang is injected through the guest cmdline: the agent stops
    // answering when the shm suite's command arrives.
    let s = setup_vm(
        img,
        &format!("{SHORT}  request_timeout_s: 5\n"),
        "  append: [vmbench.hang_on=shm]\n",
    );
    let out = s.run_to_end(s.command());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let r = s.typed_record();
    assert!(!r.complete);
    assert!(
        r.incomplete.iter().any(|i| matches!(
            &i.what,
            Stopped::SuiteStopped {
                suite: vmbench_results::Suite::Shm,
                ..
            }
        )),
        "{:?}",
        r.incomplete
    );
    let v = s.record();
    // The VM-exit rows measured before the hang are kept.
    let ids = ids(&v);
    assert!(ids.contains(&"vmexit.user-fast".to_string()), "{ids:?}");
    assert!(ids.contains(&"vmexit.kernel-fast".to_string()), "{ids:?}");
}

#[test]
#[ignore = "needs qemu-system-x86 and a Linux kernel: boots a guest under TCG"]
fn sigint_during_the_run_restores_and_keeps_partial_results() {
    let img = common::guest_image();
    let s = setup(img, SHORT);
    let sigint = |pid: u32| signal(pid, nix::sys::signal::Signal::SIGINT);
    cut_short(&s, "kernel-fast: measuring", sigint, 130, |i| {
        i.what == Stopped::Interrupted
    });
}

#[test]
#[ignore = "needs qemu-system-x86 and a Linux kernel: boots a guest under TCG"]
fn an_unrestored_journal_blocks_the_next_run_until_restored() {
    let img = common::guest_image();
    let s = setup(img, SHORT);
    // A previous applier that never restored (as after a SIGKILL).
    let apply = vmbench()
        .args(["isolate", "apply", "--cpus", "1", "--root"])
        .arg(&s.root)
        .arg("--journal")
        .arg(&s.journal)
        .output()
        .unwrap();
    assert!(
        apply.status.success(),
        "{}",
        String::from_utf8_lossy(&apply.stderr)
    );
    assert!(s.journal.exists());
    let out = s.command().output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    // The hint names the fixture root (a restore without it would not
    // find the files the journal names).
    assert!(
        stderr.contains(&format!(
            "vmbench isolate restore --root {} --journal",
            std::path::absolute(&s.root).unwrap().display()
        )),
        "{stderr}"
    );
    assert!(
        !s.out.exists(),
        "nothing may be written before the preflight passes"
    );
    let restore = vmbench()
        .args(["isolate", "restore", "--root"])
        .arg(&s.root)
        .arg("--journal")
        .arg(&s.journal)
        .output()
        .unwrap();
    assert!(restore.status.success());
    s.assert_restored();
}

#[test]
fn config_errors_name_the_line_and_column_and_change_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    for (text, want) in [
        ("suites: [vmexit]\nvm:\n  shm_mb: 64\n", "line 3"),
        ("accel: hvf\n", "line 1"),
        ("vmexit:\n  rows: [user-fast, nope]\n", "unknown row"),
    ] {
        let cfg = tmp.path().join("c.yaml");
        std::fs::write(&cfg, text).unwrap();
        let out = vmbench()
            .args(["run", "--config"])
            .arg(&cfg)
            .arg("--out")
            .arg(tmp.path().join("out"))
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{text}: {stderr}");
        assert!(
            stderr.contains(want) && stderr.contains("column"),
            "{text}: {stderr}"
        );
        assert!(!tmp.path().join("out").exists());
    }
}

#[test]
#[ignore = "needs qemu-system-x86 and a Linux kernel: boots a guest under TCG"]
fn repeats_give_every_row_its_repeats_a_median_with_a_ci_and_a_spread() {
    let img = common::guest_image();
    let s = setup(img, SHORT);
    let mut cmd = s.command();
    cmd.args(["--repeat", "3"]);
    let out = s.run_to_end(cmd);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        stderr.matches("booting the Linux guest").count(),
        3,
        "{stderr}"
    );
    let record = s.typed_record();
    let ms = &record.results.measurements;
    assert!(ms.len() > 20);
    let mut flagged = 0;
    for m in ms {
        let rep = m.repeats.as_ref().unwrap();
        assert_eq!(rep.summaries.len(), 3, "{}", m.id);
        assert_eq!(rep.histograms.len(), 3, "{}", m.id);
        // The row's distribution is all repeats' samples: the sum of theirs.
        assert_eq!(m.histogram, None, "{}: the sum is not written again", m.id);
        let pooled = m.pooled_histogram().unwrap();
        assert_eq!(pooled.len(), m.summary.n, "{}", m.id);
        assert_eq!(
            rep.summaries.iter().map(|s| s.n).sum::<u64>(),
            m.summary.n,
            "{}",
            m.id
        );
        let [lo, hi] = rep.ci95;
        let med = rep.median_p50;
        assert!(lo <= med && med <= hi, "{}: {lo} {med} {hi}", m.id);
        if rep.spread_pct > 1.0 {
            flagged += 1;
            assert!(
                m.warnings
                    .iter()
                    .any(|w| w.kind == vmbench_results::WarningKind::RepeatSpread),
                "{}: spread {}% not flagged",
                m.id,
                rep.spread_pct
            );
        }
    }
    let md = std::fs::read_to_string(s.out.join("report.md")).unwrap();
    assert!(md.contains("## Run-to-run variation"), "{md}");
    // Under TCG some row always spreads by more than 1%.
    assert!(flagged > 0);
    assert_eq!(md.matches("% ⚠").count(), flagged, "{md}");
}

/// On the running host, as root: the report's isolation section carries the
/// residual noise on the benchmark CPU before and after isolation, in µs/s
/// with its causes, and results.json the same figures. Every runtime knob is
/// skipped, so the machine running the tests is measured, not retuned.
#[test]
#[ignore = "needs root and qemu-system-x86: measures this host's benchmark CPU around a micro-guest run (CI runs it as root)"]
fn a_run_on_this_host_reports_the_residual_noise_before_and_after_isolation() {
    vmbench_testkit::require(&[
        (nix::unistd::geteuid().is_root(), "root"),
        (vmbench_testkit::have_qemu(), "qemu-system-x86"),
    ]);
    let check = vmbench()
        .args([
            "isolate",
            "check",
            "--json",
            "--cpus",
            "1",
            "--window-ms",
            "0",
        ])
        .output()
        .unwrap();
    let audit: serde_json::Value = serde_json::from_slice(&check.stdout).unwrap();
    let runtime: Vec<String> = audit["knobs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["class"] == "runtime")
        .map(|k| k["id"].as_str().unwrap().to_string())
        .collect();
    assert!(
        runtime.iter().any(|k| k == "thread_affinity"),
        "{runtime:?}"
    );
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("vmbench.yaml");
    std::fs::write(
        &config,
        format!(
            "isolation:\n  apply: yes\n  skip: [{}]\n  journal: {}\nvm:\n  guest: micro\n",
            runtime.join(", "),
            tmp.path().join("journal.json").display()
        ),
    )
    .unwrap();
    let out_dir = tmp.path().join("out");
    let out = vmbench()
        .args([
            "run", "--accel", "tcg", "--quick", "--cpus", "1", "--suite", "vmexit", "--config",
        ])
        .arg(&config)
        .arg("--out")
        .arg(&out_dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("results.json")).unwrap())
            .unwrap();
    let noise = v["residual_noise"].as_array().unwrap();
    let phases: Vec<&str> = noise.iter().map(|n| n["phase"].as_str().unwrap()).collect();
    assert_eq!(phases, ["before isolation", "after isolation"], "{noise:?}");
    for n in noise {
        assert_eq!(n["cpu"], 1);
        assert!(n["noise_us_per_s"].as_f64().unwrap() >= 0.0);
        assert!(n["causes"].is_array());
    }
    let contexts = v["suite_context"].as_array().unwrap();
    assert_eq!(contexts.len(), 1);
    assert_eq!(contexts[0]["suite"], "vmexit");
    let md = std::fs::read_to_string(out_dir.join("report.md")).unwrap();
    assert!(
        md.contains("#### Residual noise on the benchmark CPUs"),
        "{md}"
    );
    for phase in ["| before isolation | cpu1 |", "| after isolation | cpu1 |"] {
        assert!(md.contains(phase), "{phase} missing");
    }
    assert!(md.contains("#### The host during each suite"));
}
