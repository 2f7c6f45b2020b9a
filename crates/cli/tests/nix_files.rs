//! Every .nix file in the repository parses (`nix-instantiate --parse`).
//! Nix cannot build here, so this is the offline gate that keeps the Nix code
//! syntactically right. CI installs nix-bin; elsewhere the test says it skipped.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn nix_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        if p.is_dir() {
            if !name.starts_with('.') && name != "target" {
                nix_files(&p, out);
            }
        } else if name.ends_with(".nix") {
            out.push(p);
        }
    }
}

#[test]
fn every_nix_file_parses() {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files = Vec::new();
    nix_files(&repo, &mut files);
    assert!(
        !files.is_empty(),
        "no .nix files found under {}",
        repo.display()
    );
    let have_nix = Command::new("nix-instantiate")
        .arg("--version")
        .output()
        .is_ok();
    if !have_nix {
        assert!(
            std::env::var_os("CI").is_none(),
            "nix-instantiate is missing in CI: .ci/run must install nix-bin"
        );
        eprintln!(
            "skipped: nix-instantiate not installed (apt-get install --no-install-recommends nix-bin)"
        );
        return;
    }
    for f in files {
        let out = Command::new("nix-instantiate")
            .arg("--parse")
            .arg(&f)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{} does not parse:\n{}",
            f.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The pin of DESIGN.md §8, exactly.
const NIXPKGS_REV: &str = "8fd9daa3db09ced9700431c5b7ad0e8ba199b575";
const NIXPKGS_LAST_MODIFIED: u64 = 1778430510;
const NIXPKGS_NAR_HASH: &str = "sha256-Ti+ZBvW6yrWWAg2szExVTwCd4qOJ3KlVr1tFHfyfi8Q=";

#[test]
fn flake_lock_carries_the_pinned_nixpkgs() {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let lock: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(repo.join("flake.lock")).unwrap()).unwrap();
    assert_eq!(lock["version"], 7);
    let root = lock["root"].as_str().unwrap();
    let inputs = lock["nodes"][root]["inputs"].as_object().unwrap();
    assert_eq!(inputs.len(), 1, "exactly one input (nixpkgs): {inputs:?}");
    let node = &lock["nodes"][inputs["nixpkgs"].as_str().unwrap()];
    assert_eq!(node["locked"]["type"], "github");
    assert_eq!(node["locked"]["owner"], "NixOS");
    assert_eq!(node["locked"]["repo"], "nixpkgs");
    assert_eq!(node["locked"]["rev"], NIXPKGS_REV);
    assert_eq!(node["locked"]["lastModified"], NIXPKGS_LAST_MODIFIED);
    assert_eq!(node["locked"]["narHash"], NIXPKGS_NAR_HASH);
    assert_eq!(node["original"]["ref"], "nixos-25.11");
    let flake = std::fs::read_to_string(repo.join("flake.nix")).unwrap();
    assert!(flake.contains("github:NixOS/nixpkgs/nixos-25.11"));
    assert!(
        !flake.contains("flake-utils"),
        "plain genAttrs over systems"
    );
}

/// `nix flake metadata --offline --no-update-lock-file`: fails when flake.nix
/// and flake.lock disagree. Runs in a throwaway store, so /nix is untouched.
#[test]
fn flake_metadata_offline_gate() {
    if Command::new("nix").arg("--version").output().is_err() {
        assert!(
            std::env::var_os("CI").is_none(),
            "nix is missing in CI: .ci/run must install nix-bin"
        );
        eprintln!("skipped: nix not installed");
        return;
    }
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let store = tempfile::tempdir().unwrap();
    let out = Command::new("nix")
        .arg("--store")
        .arg(store.path())
        .args(["flake", "metadata", "--offline", "--no-update-lock-file"])
        .arg(&repo)
        .env(
            "NIX_CONFIG",
            "experimental-features = nix-command flakes\nflake-registry = ",
        )
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    assert!(text.contains(NIXPKGS_REV), "{text}");
}
