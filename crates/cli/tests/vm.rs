//! Real guest boots under TCG: `vmbench image build` + QEMU + the agent's
//! handshake over ivshmem, and the ways a boot can go wrong.
//!
//! Needs a Debian kernel, busybox-static and qemu-system-x86
//! (`scripts/install-deps --dev`): the boot tests are #[ignore]d, and
//! `cargo test -- --include-ignored` runs them (see vmbench-testkit).
#![allow(clippy::unwrap_used)]

mod common;
use common::vmbench;
use vmbench_testkit::{QEMU, local_id as id_of, processes_mentioning};

use std::path::Path;
use std::process::Command;
use std::time::Duration;
use vmbench_proto::Command as GuestCommand;
use vmbench_vm::{Accel, Vm, VmError, VmOptions};

fn image() -> &'static Path {
    common::guest_image()
}

fn opts(image: &Path) -> VmOptions {
    let mut o = VmOptions::new(QEMU, Accel::Tcg, image);
    o.boot_timeout = Duration::from_secs(240);
    o
}

/// What process `pid` made in /dev/shm, but for its `.alive` lock: that
/// lives as long as the process (this test's, here) and says it is alive.
fn shm_files_of(pid: u32) -> Vec<String> {
    std::fs::read_dir("/dev/shm")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&format!("vmbench-{pid}-")) && !n.ends_with(".alive"))
        .collect()
}

#[test]
#[ignore = "needs qemu-system-x86 and a Linux kernel: boots a guest under TCG"]
fn image_build_then_tcg_boot_reaches_the_handshake() {
    let img = image();
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(img.join("manifest.json")).unwrap()).unwrap();
    let out = vmbench()
        .args([
            "vm",
            "boot",
            "--accel",
            "tcg",
            "--json",
            "--boot-timeout",
            "240",
            "--image",
        ])
        .arg(img)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains(vmbench_vm::TCG_NOTICE),
        "TCG must be announced: {stderr}"
    );
    common::assert_matches_schema("vm-boot", &out.stdout);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let g = &v["guest"];
    assert_eq!(g["kernel_release"], manifest["kernel_release"]);
    assert_eq!(g["protocol_version"], vmbench_proto::PROTOCOL_VERSION);
    assert!(g["hypervisor"].as_str().unwrap().starts_with("TCG"), "{g}");
    assert_eq!(
        g["mapping"], "wb",
        "the vmbench module maps BAR2 write-back: {g}"
    );
    assert_eq!(g["shm_bytes"], 64 << 20);
    assert!(g["rdtsc_exiting"].as_str().unwrap().contains("TCG"));
    assert_eq!(g["online_cpus"], 1);
    assert!(g["cmdline"].as_str().unwrap().contains("console=ttyS0"));
    assert_eq!(v["accel"], "tcg");
    assert_eq!(v["vcpu_threads"].as_array().unwrap().len(), 1);
    assert!(v["qemu_start_to_ready_ms"].as_f64().unwrap() > 0.0);
    assert!(
        v["command_line"]
            .as_str()
            .unwrap()
            .contains("ivshmem-plain")
    );
}

#[test]
#[ignore = "needs qemu-system-x86 and a Linux kernel: boots a guest under TCG"]
fn the_module_refuses_bad_arguments_from_inside_the_guest() {
    let img = image();
    let mut vm = Vm::boot(&opts(img)).unwrap();
    let r = vm
        .call(GuestCommand::SelfTest, [0; 6], Duration::from_secs(60))
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&r.payload).unwrap();
    assert_eq!(v["device"], true, "{v}");
    let checks = v["checks"].as_array().unwrap();
    assert!(checks.len() >= 4, "{v}");
    for c in checks {
        assert_eq!(c["ok"], true, "{c}");
    }
    // The agent is still there after the bad calls.
    let r = vm
        .call(
            GuestCommand::Ping,
            [99, 0, 0, 0, 0, 0],
            Duration::from_secs(30),
        )
        .unwrap();
    assert_eq!(r.payload, 99u64.to_le_bytes());
    vm.shutdown().unwrap();
}

/// ivshmem-doorbell with vmbench as the ivshmem server: the host rings the
/// guest (MSI-X into the module's eventfd), the guest rings back through BAR0.
#[test]
#[ignore = "needs qemu-system-x86 and a Linux kernel: boots a guest under TCG"]
fn doorbell_round_trip_through_our_ivshmem_server() {
    let img = image();
    let mut o = opts(img);
    o.doorbell_vectors = Some(2);
    let mut vm = Vm::boot(&o).unwrap();
    assert_eq!(vm.spec.msix_vectors, 2, "{:?}", vm.spec);
    assert_eq!(vm.spec.iv_position, Some(1));
    assert_eq!(vm.spec.mapping, vmbench_proto::Mapping::Wb);
    for vector in [0u32, 1] {
        vm.doorbell().unwrap().ring_guest(vector).unwrap();
        let r = vm
            .call(
                GuestCommand::DoorbellWait,
                [u64::from(vector), 30_000, 0, 0, 0, 0],
                Duration::from_secs(60),
            )
            .unwrap();
        assert_eq!(
            r.status,
            vmbench_proto::Status::Ok,
            "{}",
            String::from_utf8_lossy(&r.payload)
        );
        assert_eq!(
            r.payload,
            1u64.to_le_bytes(),
            "one interrupt on vector {vector}"
        );
        let got = vm
            .doorbell()
            .unwrap()
            .wait_from_guest(vector, Duration::from_secs(30))
            .unwrap();
        assert_eq!(got, 1);
    }
    // A vector the guest does not listen on is refused, not a hang.
    let r = vm
        .call(
            GuestCommand::DoorbellWait,
            [9, 10, 0, 0, 0, 0],
            Duration::from_secs(30),
        )
        .unwrap();
    assert_eq!(r.status, vmbench_proto::Status::BadArgs);
    vm.shutdown().unwrap();
}

/// The shm suite's guest end inside a TCG guest, over the module's WB
/// mapping with the doorbell, then the UC and WC arms (guests booted with
/// vmbench.mapping=uc|wc): every frame's SHA-256 must match.
#[test]
#[ignore = "needs qemu-system-x86 and a Linux kernel: boots a guest under TCG"]
fn shm_suite_runs_in_the_guest_with_full_integrity_and_both_arms() {
    let img = image();
    let out = vmbench()
        .args([
            "shm",
            "vm",
            "--accel",
            "tcg",
            "--quick",
            "--json",
            "--shm-mib",
            "128",
            "--boot-timeout",
            "240",
            "--image",
        ])
        .arg(img)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = out.id();
    let out = out.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(shm_files_of(pid).is_empty(), "{:?}", shm_files_of(pid));
    common::assert_matches_schema("shm", &out.stdout);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let r = &v["results"];
    let ids: Vec<&str> = r["measurements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    for id in [
        "shm.rtt.poll",
        "shm.rtt.doorbell",
        "shm.h2g.4k-32bpp.guest-read-cold",
        "shm.g2h.4k-32bpp.host-read",
        "shm.uc.h2g.1080p-32bpp.guest-read-cold",
        "shm.wc.g2h.1080p-32bpp.guest-write",
    ] {
        assert!(ids.contains(&id), "{id} missing from {ids:?}");
    }
    let checks = r["checks"].as_array().unwrap();
    for id in [
        "shm.integrity.h2g",
        "shm.integrity.g2h",
        "shm.uc.integrity.h2g",
        "shm.uc.integrity.g2h",
        "shm.wc.integrity.h2g",
        "shm.wc.integrity.g2h",
    ] {
        let c = checks
            .iter()
            .find(|c| c["id"] == id)
            .unwrap_or_else(|| panic!("{id}"));
        assert_eq!(c["passed"], true, "{c}");
        assert!(c["observed"].as_str().unwrap().contains("(100%)"), "{c}");
    }
    let warnings = r["warnings"].to_string();
    assert!(warnings.contains("TCG"), "{warnings}");
    let uc = r["measurements"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == "shm.uc.h2g.1080p-32bpp.guest-read-cold")
        .unwrap();
    assert_eq!(uc["reference"], "shm.h2g.1080p-32bpp.guest-read-cold");
}

#[test]
#[ignore = "needs qemu-system-x86 and a Linux kernel: boots a guest under TCG"]
fn killing_qemu_mid_run_is_a_clear_error_and_leaves_nothing() {
    let img = image();
    let run_dir = tempfile::tempdir().unwrap();
    let mut o = opts(img);
    o.run_dir = Some(run_dir.path().to_path_buf());
    let mut vm = Vm::boot(&o).unwrap();
    let qemu = vm.qemu_pid().unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(qemu as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let err = vm
        .call(GuestCommand::Ping, [0; 6], Duration::from_secs(30))
        .unwrap_err();
    assert!(matches!(err, VmError::QemuExited { .. }), "{err}");
    assert!(err.to_string().contains("signal: 9"), "{err}");
    drop(vm);
    assert!(processes_mentioning(&run_dir.path().display().to_string()).is_empty());
    assert!(
        shm_files_of(std::process::id()).is_empty(),
        "{:?}",
        shm_files_of(std::process::id())
    );
}

#[test]
#[ignore = "needs qemu-system-x86 and a Linux kernel: boots a guest under TCG"]
fn a_guest_that_never_answers_hits_the_deadline_and_leaves_nothing() {
    let img = image();
    let run_dir = tempfile::tempdir().unwrap();
    let mut o = opts(img);
    o.run_dir = Some(run_dir.path().to_path_buf());
    o.append = vec!["vmbench.hang=1".into()];
    o.boot_timeout = Duration::from_secs(25);
    let err = Vm::boot(&o).err().unwrap();
    let msg = err.to_string();
    assert!(matches!(err, VmError::Timeout { .. }), "{msg}");
    assert!(msg.contains("handshake"), "{msg}");
    assert!(
        msg.contains("vmbench.hang"),
        "the console tail explains: {msg}"
    );
    assert!(processes_mentioning(&run_dir.path().display().to_string()).is_empty());
    assert!(shm_files_of(std::process::id()).is_empty());
}

#[test]
fn missing_kernel_and_bad_qemu_are_usage_errors() {
    let empty = tempfile::tempdir().unwrap();
    let cases: [(&[&str], &[&str]); 3] = [
        (
            &["vm", "boot", "--accel", "tcg", "--image"],
            &["no kernel image", "vmbench image build"],
        ),
        (
            &[
                "vm",
                "boot",
                "--accel",
                "tcg",
                "--qemu",
                "/nonexistent/qemu",
                "--image",
            ],
            &["/nonexistent/qemu"],
        ),
        (
            &[
                "image",
                "build",
                "--kernel",
                "/nonexistent/vmlinuz",
                "--out",
            ],
            &["no such kernel file"],
        ),
    ];
    for (args, expected) in cases {
        let out = vmbench().args(args).arg(empty.path()).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        for e in expected {
            assert!(err.contains(e), "{args:?}: {err}");
        }
    }
}

#[test]
#[ignore = "needs qemu-system-x86 and a Linux kernel: boots a guest under TCG"]
fn ctrl_c_during_boot_tears_everything_down() {
    let img = image();
    let child = vmbench()
        .args(["vm", "boot", "--accel", "tcg", "--json", "--image"])
        .arg(img)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    // Wait until QEMU is up (its shm file exists), then interrupt.
    let start = std::time::Instant::now();
    while shm_files_of(pid).is_empty()
        && processes_mentioning(&format!("vmbench-{pid}-")).is_empty()
    {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "QEMU never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGINT,
    )
    .unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted"), "{err}");
    assert!(processes_mentioning(&format!("vmbench-{pid}-")).is_empty());
    assert!(shm_files_of(pid).is_empty());
}

/// The VM-exit suite under TCG: every row runs inside the guest (real module,
/// real agent), and no number is presented as a VM exit.
#[test]
#[ignore = "needs qemu-system-x86 and a Linux kernel: boots a guest under TCG"]
fn vmexit_suite_runs_every_row_under_tcg() {
    let img = image();
    let csv = tempfile::NamedTempFile::new().unwrap();
    let out = vmbench()
        .args([
            "vmexit",
            "--accel",
            "tcg",
            "--iterations",
            "300",
            "--warmup",
            "10",
            "--batch",
            "300",
            "--json",
            // vCPU 1 halts for kernel-ipi-halt to wake.
            "--vcpus",
            "2",
        ])
        .args(["--boot-timeout", "240", "--csv"])
        .arg(csv.path())
        .arg("--image")
        .arg(img)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let results = &v["results"];
    let first: vmbench_results::Warning =
        serde_json::from_value(results["warnings"][0].clone()).unwrap();
    assert_eq!(first.kind, vmbench_results::WarningKind::Tcg);
    assert!(first.message.contains("no VM exits"), "{first}");
    let measured: Vec<&serde_json::Value> =
        results["measurements"].as_array().unwrap().iter().collect();
    let skipped: Vec<&serde_json::Value> = results["skipped"].as_array().unwrap().iter().collect();
    for row in vmbench_proto::vmexit::Row::ALL
        .iter()
        .filter(|r| r.default_on())
    {
        let in_m = measured.iter().any(|m| id_of(m) == row.id());
        let in_s = skipped.iter().any(|s| id_of(s) == row.id());
        assert!(in_m || in_s, "row {} missing", row.id());
    }
    for id in vmbench_proto::vmexit::Row::HEADLINE.map(|r| r.id()) {
        assert!(
            measured.iter().any(|m| id_of(m) == id),
            "headline row {id} was not measured"
        );
    }
    for s in &skipped {
        assert!(!s["reason"].as_str().unwrap().is_empty());
    }
    for m in &measured {
        assert_eq!(m["summary"]["n"], 300, "{m}");
        assert_eq!(m["verification"]["verdict"], "unverified");
        assert!(
            m["verification"]["reason"]
                .as_str()
                .unwrap()
                .starts_with("not verifiable: TCG")
        );
        assert!(m["definition"].as_str().unwrap().contains("rdtsc"));
        assert!(m["tier"].is_string());
        // A baseline's batch would time an empty loop: it has none (D21).
        let baseline = m["tier"] == "no exit (baseline)";
        assert_eq!(m["batch_mean"].is_number(), !baseline, "{m}");
        let id = id_of(m);
        if !id.contains("timer-overhead") {
            assert!(
                m["overhead_subtracted"]["p50"].is_number(),
                "{id}: no overhead-subtracted view"
            );
        }
    }
    common::assert_device_and_interrupt_rows_under_tcg(results);
    // The timer overhead sits next to every row in the CSV.
    let text = std::fs::read_to_string(csv.path()).unwrap();
    assert!(text.starts_with("id,unit,n,min,p50"));
    assert_eq!(text.lines().count(), measured.len() + 1);
    assert!(
        text.lines()
            .any(|l| l.starts_with("vmexit.kernel-fast,tsc_ticks,300,"))
    );
}

/// `vmbench image build` without `--agent` puts `vmbench-agent` from beside
/// `vmbench` into the image only when it was built from the same sources;
/// a stale one (an earlier build's, here one whose fingerprint differs) is
/// passed over for `vmbench` itself, and the manifest says which.
#[test]
#[ignore = "needs a Linux kernel: builds guest images"]
fn the_default_agent_is_the_agent_binary_only_when_built_from_the_same_sources() {
    vmbench_testkit::require(&[(
        vmbench_vm::image::default_kernel().is_ok(),
        "linux-image-amd64",
    )]);
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_vmbench"), bin.join("vmbench")).unwrap();
    let agent = std::fs::read(env!("CARGO_BIN_EXE_vmbench-agent")).unwrap();
    let ours = vmbench_proto::agent_sources_in(&agent).expect("the agent carries its fingerprint");
    let build = |name: &str| -> serde_json::Value {
        let out = Command::new(bin.join("vmbench"))
            .args(["image", "build", "--no-module", "--json", "--out"])
            .arg(dir.path().join(name))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        common::assert_matches_schema("image-build", &out.stdout);
        serde_json::from_slice(&out.stdout).unwrap()
    };

    std::fs::write(bin.join("vmbench-agent"), &agent).unwrap();
    let m = build("current");
    assert_eq!(
        m["agent_source"],
        bin.join("vmbench-agent").display().to_string()
    );
    assert_eq!(m["agent_sources"], ours);

    // The same agent with another fingerprint: an earlier build's.
    let tag = b"vmbench-agent-sources:";
    let at = agent.windows(tag.len()).position(|w| w == tag).unwrap() + tag.len();
    let mut stale = agent.clone();
    stale[at] = if stale[at] == b'0' { b'1' } else { b'0' };
    std::fs::write(bin.join("vmbench-agent"), &stale).unwrap();
    let m = build("stale");
    assert_eq!(m["agent_source"], bin.join("vmbench").display().to_string());
    assert_eq!(m["agent_sources"], ours);
}
