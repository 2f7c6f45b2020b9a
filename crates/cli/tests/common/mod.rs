//! What only this package's integration tests can provide to
//! vmbench-testkit: the test build of `vmbench` and its target directory.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// The test build of `vmbench`.
pub const BIN: &str = env!("CARGO_BIN_EXE_vmbench");

/// A command running the test build of `vmbench`.
pub fn vmbench() -> Command {
    Command::new(BIN)
}

/// The guest image the boot tests use, with the test build of
/// `vmbench-agent` as its /init; fails the test when QEMU or a kernel is
/// missing.
pub fn guest_image() -> &'static Path {
    vmbench_testkit::guest_image(
        Path::new(env!("CARGO_BIN_EXE_vmbench-agent")),
        &PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("guest-image"),
    )
}

/// The rows of the exits real workloads pay for, run under TCG with two
/// vCPUs: each is measured and labelled emulation, except the mitigation
/// MSRs, which TCG's CPU does not have (skipped, saying so); the pci-testdev
/// rows carry the device's own count, every write for the rows without an
/// eventfd and none for the ioeventfd rows.
pub fn assert_device_and_interrupt_rows_under_tcg(results: &serde_json::Value) {
    use vmbench_testkit::local_id;
    let measured = results["measurements"].as_array().unwrap();
    let skipped = results["skipped"].as_array().unwrap();
    for row in [
        "user-mmio-qemu",
        "user-mmio-ioeventfd",
        "user-pio-qemu",
        "user-pio-ioeventfd",
        "kernel-mmio-qemu",
        "kernel-mmio-ioeventfd",
        "kernel-pio-qemu",
        "kernel-pio-ioeventfd",
        "kernel-self-ipi",
        "kernel-eoi",
        "kernel-ipi-halt",
        "kernel-mov-cr8",
    ] {
        let m = measured
            .iter()
            .find(|m| local_id(m) == row)
            .unwrap_or_else(|| panic!("{row} not measured; skipped: {skipped:?}"));
        let reason = m["verification"]["reason"]
            .as_str()
            .unwrap_or_else(|| panic!("{row}: {}", m["verification"]));
        assert!(reason.starts_with("not verifiable: TCG"), "{row}: {reason}");
        let n = m["summary"]["n"].as_u64().unwrap();
        assert!(n > 0, "{row}");
        if row.contains("mmio") || row.contains("pio") {
            let served = if row.ends_with("qemu") {
                // warm-up + samples + batch: every write reached the device.
                let exec = reason
                    .split("served ")
                    .nth(1)
                    .and_then(|t| t.split(" of ").nth(1))
                    .and_then(|t| t.split(' ').next())
                    .unwrap_or_else(|| panic!("{row}: no device count in {reason}"));
                format!("served {exec} of {exec} writes")
            } else {
                "served 0 of".to_string()
            };
            assert!(reason.contains(&served), "{row}: {reason}");
        }
    }
    for row in ["kernel-wrmsr-ibpb", "kernel-wrmsr-spec-ctrl"] {
        let s = skipped
            .iter()
            .find(|s| local_id(s) == row)
            .unwrap_or_else(|| panic!("{row}: TCG has no such MSR, yet not skipped"));
        assert!(
            s["reason"].as_str().unwrap().contains("has no IA32_"),
            "{s}"
        );
    }
}

/// Checks `json` (what `vmbench … --json` printed) against the schema
/// `vmbench report schema OUTPUT` prints, with python3's jsonschema (pinned
/// in scripts/install-deps), and that it carries a schema_version.
pub fn assert_matches_schema(output: &str, json: &[u8]) {
    let dir = tempfile::tempdir().unwrap();
    let schema = vmbench()
        .args(["report", "schema", output])
        .output()
        .unwrap();
    assert!(
        schema.status.success(),
        "{}",
        String::from_utf8_lossy(&schema.stderr)
    );
    let (s, i) = (
        dir.path().join("schema.json"),
        dir.path().join("output.json"),
    );
    std::fs::write(&s, &schema.stdout).unwrap();
    std::fs::write(&i, json).unwrap();
    let check = Command::new("python3")
        .args([
            "-c",
            "import json, sys, jsonschema; jsonschema.validate(json.load(open(sys.argv[1])), json.load(open(sys.argv[2])))",
        ])
        .arg(&i)
        .arg(&s)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{output}: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(json).unwrap();
    assert!(
        v["schema_version"].as_u64().is_some(),
        "{output}: no schema_version"
    );
}
