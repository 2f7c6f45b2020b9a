//! The Nix bench wrapper's settings reach the binary: every `VMBENCH_*`
//! variable flake.nix's `bench` exports is read by the code, and
//! `VMBENCH_SSH_KEYGEN` really replaces the PATH lookup.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Command;

fn read(rel: &str) -> String {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    std::fs::read_to_string(repo.join(rel)).unwrap()
}

/// Every `VMBENCH_*` variable the bench wrapper exports is read by the code,
/// and `VMBENCH_SSH_KEYGEN` really replaces the PATH lookup.
#[test]
fn bench_wrapper_variables_are_honoured() {
    let flake = read("flake.nix");
    let start = flake.find("bench = pkgs.writeShellApplication").unwrap();
    let block = &flake[start..start + flake[start..].find("};").unwrap()];
    let vars: Vec<&str> = block
        .split_whitespace()
        .filter_map(|w| w.strip_prefix("VMBENCH_"))
        .filter_map(|w| w.split('=').next())
        .collect();
    assert!(vars.len() >= 4, "{vars:?}");
    let mut sources = String::new();
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    for dir in ["crates/cli/src", "crates/publish/src", "crates/vm/src"] {
        for e in std::fs::read_dir(repo.join(dir)).unwrap() {
            sources += &std::fs::read_to_string(e.unwrap().path()).unwrap_or_default();
        }
    }
    for v in &vars {
        assert!(
            sources.contains(&format!("\"VMBENCH_{v}\"")),
            "the bench wrapper exports VMBENCH_{v}, which no code reads"
        );
    }

    // A stand-in ssh-keygen that leaves a mark: `report sign` with a .pub
    // key (signing through ssh-agent) must run it, not the one in PATH.
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    std::fs::create_dir(&run).unwrap();
    std::fs::copy(
        repo.join("reports/example-tcg/results.json"),
        run.join("results.json"),
    )
    .unwrap();
    let key = dir.path().join("key.pub");
    std::fs::write(
        &key,
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIE3DbqvRAWfmWVuTRmAzEVZ4Jq2ClYyWW9rbyVsKnCJT test\n",
    )
    .unwrap();
    let mark = dir.path().join("ran");
    let fake = dir.path().join("fake-ssh-keygen");
    std::fs::write(
        &fake,
        format!("#!/bin/sh\necho \"$@\" > {}\nexit 3\n", mark.display()),
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vmbench"))
        .args(["report", "sign"])
        .arg(&run)
        .arg("--key")
        .arg(&key)
        .env("VMBENCH_SSH_KEYGEN", &fake)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let args = std::fs::read_to_string(&mark).expect("VMBENCH_SSH_KEYGEN was not run");
    assert!(args.starts_with("-Y sign -n vmbench-report"), "{args}");
}
