//! `vmbench info` as a user runs it.
#![allow(clippy::unwrap_used)] // test helpers: a failure is the test failing

mod common;
use common::vmbench;

fn fixture(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    vmbench_host::fixture::load(&[name], dir.path()).unwrap();
    dir
}

#[test]
fn json_on_this_machine_parses_and_has_real_values() {
    let out = vmbench().args(["info", "--json"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    common::assert_matches_schema("info", &out.stdout);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["schema_version"], 1);
    assert_eq!(v["live_probes"], true);
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
    assert_eq!(v["kernel"]["release"], release.trim());
    // The TSC frequency is known on any x86_64 Linux: from CPUID or calibrated.
    assert!(v["tsc"]["frequency"]["khz"].as_f64().unwrap() > 100_000.0);
    // Whatever KVM module drives /dev/kvm here is named.
    for m in ["kvm_intel", "kvm_amd", "kvm_pvm"] {
        if std::path::Path::new("/sys/module").join(m).exists() {
            assert_eq!(v["kvm"]["modules"]["vendor_module"], m);
        }
    }
    // The QEMU a run would use, when one is installed.
    if std::path::Path::new("/usr/bin/qemu-system-x86_64").exists() {
        let banner = v["qemu"]["banner"].as_str().unwrap();
        assert!(banner.starts_with("QEMU emulator version"), "{banner}");
    }
}

#[test]
fn table_on_a_fixture_tree() {
    let dir = fixture("intel-pstate-turbo");
    let out = vmbench()
        .args([
            "info",
            "--no-calibrate",
            "--qemu",
            "/nonexistent/qemu",
            "--root",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("[cpu]"));
    assert!(text.contains("Intel(R) Xeon(R) Gold 6338"), "{text}");
    assert!(text.contains("6 (0x6) / 106 (0x6a) / 6"), "{text}");
    assert!(text.contains("enabled via /sys/devices/system/cpu/intel_pstate/no_turbo"));
    assert!(text.contains("kvm_intel parameters"));
    assert!(
        text.contains("unknown (/nonexistent/qemu: no such file"),
        "{text}"
    );
}

#[test]
fn bad_root_is_a_usage_error() {
    let out = vmbench()
        .args(["info", "--root", "/nonexistent/tree"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("not a directory"), "{err}");
}

#[test]
fn unknown_subcommand_is_exit_2() {
    let out = vmbench().arg("frobnicate").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}
