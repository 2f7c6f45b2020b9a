//! Every .nix file in the repository parses (`nix-instantiate --parse`).
//! Nix cannot build here, so this is the offline gate that keeps the Nix code
//! syntactically right. CI installs nix-bin; elsewhere the test says it skipped.
#![allow(clippy::unwrap_used)]

use vmbench_testkit::{have_tool, require};

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
#[ignore = "needs nix-bin: nix-instantiate --parse on every .nix file"]
fn every_nix_file_parses() {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files = Vec::new();
    nix_files(&repo, &mut files);
    assert!(
        !files.is_empty(),
        "no .nix files found under {}",
        repo.display()
    );
    require(&[(have_tool("nix-instantiate"), "nix-bin")]);
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

/// The nixpkgs pin (nixos-25.11; docs/nix.md), exactly.
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
#[ignore = "needs nix-bin: nix flake metadata --offline"]
fn flake_metadata_offline_gate() {
    require(&[(have_tool("nix"), "nix-bin")]);
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

/// `nix flake check` on the flake's `nixosModules` output and the module
/// file, with the Nix this machine has (Debian 12's 2.8, older than any a
/// user of nixpkgs 25.11 runs): it checks that each module is a function
/// or an attribute set, and older Nix versions reject a bare path there.
/// A flake with no inputs, in a throwaway store: nothing is fetched.
#[test]
#[ignore = "needs nix-bin: nix flake check on the nixosModules output"]
fn nix_flake_check_accepts_the_nixos_module() {
    require(&[(have_tool("nix"), "nix-bin")]);
    let flake = read("flake.nix");
    let start = flake
        .find("nixosModules.host-tuning = ")
        .expect("flake.nix has nixosModules.host-tuning");
    let end = start + flake[start..].find("};").expect("its end") + 2;
    let output = &flake[start..end];
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("host-tuning")).unwrap();
    std::fs::copy(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../host-tuning/module.nix"),
        dir.path().join("host-tuning/module.nix"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("flake.nix"),
        format!("{{\n  outputs = {{ self }}: {{\n    {output}\n  }};\n}}\n"),
    )
    .unwrap();
    let store = tempfile::tempdir().unwrap();
    let out = Command::new("nix")
        .arg("--store")
        .arg(store.path())
        .args(["flake", "check", "--offline", "--no-write-lock-file"])
        .arg(format!("path:{}", dir.path().display()))
        .env(
            "NIX_CONFIG",
            "experimental-features = nix-command flakes\nflake-registry = ",
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "nix flake check rejected {output}:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// deadnix (from crates.io; `scripts/install-deps --dev` installs it): no
/// unused bindings or lambda arguments in any .nix file.
#[test]
#[ignore = "needs deadnix (cargo install deadnix)"]
fn no_dead_nix_code() {
    require(&[(have_tool("deadnix"), "deadnix (cargo install)")]);
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files = Vec::new();
    nix_files(&repo, &mut files);
    let out = Command::new("deadnix")
        .arg("--fail")
        .args(&files)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "deadnix found dead code:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn read(rel: &str) -> String {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    std::fs::read_to_string(repo.join(rel)).unwrap()
}

/// The rustflags of `[target.x86_64-unknown-linux-gnu]` in a cargo config.
fn config_rustflags(config: &str) -> Vec<String> {
    let line = config
        .lines()
        .find(|l| l.trim_start().starts_with("rustflags"))
        .expect("no rustflags line");
    line.split('"')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// The micro-guest derivation sets RUSTFLAGS, which makes cargo ignore the
/// crate's .cargo/config.toml rustflags: the two must say the same.
#[test]
fn microguest_rustflags_match_its_cargo_config() {
    let flake = read("flake.nix");
    let start = flake
        .find("microguest = pkgs.rustPlatform.buildRustPackage")
        .unwrap();
    let block = &flake[start..];
    let i = block.find("RUSTFLAGS = \"").unwrap() + "RUSTFLAGS = \"".len();
    let nix: Vec<String> = block[i..i + block[i..].find('"').unwrap()]
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let cargo = config_rustflags(&read("crates/microguest/.cargo/config.toml"));
    assert_eq!(
        nix, cargo,
        "flake.nix vs crates/microguest/.cargo/config.toml"
    );
    assert!(block.contains("auditable = false;"));
    assert!(block.contains("cargoRoot = \"crates/microguest\";"));
}

/// The vmbench derivation builds the binary static, as .cargo/config.toml
/// does without Nix: the guest image runs it as /init.
#[test]
fn vmbench_is_built_static_like_without_nix() {
    let flake = read("flake.nix");
    let cargo = config_rustflags(&read(".cargo/config.toml"));
    let want = format!("RUSTFLAGS = \"{}\";", cargo.join(" "));
    let start = flake
        .find("vmbench = pkgs.rustPlatform.buildRustPackage")
        .unwrap();
    let block = &flake[start..start + flake[start..].find("\n          };").unwrap()];
    assert!(
        block.contains(&want),
        "{want} missing from the vmbench derivation"
    );
}

/// Findings of the reading of nixpkgs 25.11 that must not come back.
#[test]
fn known_nixpkgs_pitfalls_stay_fixed() {
    let flake = read("flake.nix");
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut files = Vec::new();
    nix_files(&repo, &mut files);
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        assert!(
            !text.contains("extraStructuredConfig"),
            "{}: nixpkgs 25.11 throws on extraStructuredConfig (structuredExtraConfig)",
            f.display()
        );
    }
    assert!(
        flake.contains("formatter = forAllSystems (pkgs: pkgs.nixfmt-tree);"),
        "`nix fmt` with plain nixfmt reads stdin since Nix 2.24: use nixfmt-tree"
    );
    assert!(
        flake.contains(
            "nixosModules.host-tuning = {\n        imports = [ ./host-tuning/module.nix ];\n      };"
        ),
        "a module imported by path keeps its file name in evaluation errors"
    );
    assert!(
        !flake.contains("nixosConfigurations"),
        "the NixOS guest is retired"
    );
}
