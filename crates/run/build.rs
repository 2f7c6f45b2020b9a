//! The build's identity, for `vmbench --version`, results.json and the
//! report: the commit it was built from (and whether tracked files differed
//! from it), and the rustc that compiled it. A reader of a published report
//! can then rebuild the exact binary.
//!
//! The commit comes from `VMBENCH_COMMIT` when set (the flake sets it from
//! `self.rev`, or `self.dirtyRev`, which Nix ends with `-dirty`; a Nix build
//! has no `.git`), else from `git` in the source tree, else "unknown".
//! Dirty means a tracked file differs from the commit, as Nix decides it
//! (untracked files do not count).

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let workspace = manifest_dir
        .parent()
        .and_then(Path::parent)
        .unwrap_or(&manifest_dir)
        .to_path_buf();
    println!("cargo:rerun-if-env-changed=VMBENCH_COMMIT");

    let (commit, dirty) = match std::env::var("VMBENCH_COMMIT") {
        Ok(c) if !c.trim().is_empty() => {
            let c = c.trim();
            match c.strip_suffix("-dirty") {
                Some(rev) => (rev.to_string(), true),
                None => (c.to_string(), false),
            }
        }
        _ => from_git(&workspace),
    };
    let rustc = rustc_version();
    let version = std::env::var("CARGO_PKG_VERSION").unwrap_or_default();
    let long = format!(
        "{version} (commit {commit}{}, {rustc})",
        if dirty { ", dirty" } else { "" }
    );
    println!("cargo:rustc-env=VMBENCH_BUILD_COMMIT={commit}");
    println!("cargo:rustc-env=VMBENCH_BUILD_DIRTY={dirty}");
    println!("cargo:rustc-env=VMBENCH_BUILD_RUSTC={rustc}");
    println!("cargo:rustc-env=VMBENCH_BUILD_LONG_VERSION={long}");
}

/// HEAD and whether tracked files differ from it; "unknown" outside a
/// git checkout or without git.
fn from_git(workspace: &Path) -> (String, bool) {
    let git = |args: &[&str]| -> Option<String> {
        let out = Command::new("git")
            .arg("-C")
            .arg(workspace)
            .args(args)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
    };
    let Some(commit) = git(&["rev-parse", "HEAD"]).filter(|c| !c.is_empty()) else {
        return ("unknown".into(), false);
    };
    // Re-run when HEAD moves or the index changes (a commit, a checkout,
    // `git add`), and when a source file changes: an edit to a tracked file
    // that is not staged touches neither HEAD nor the index. Directories
    // are scanned by cargo recursively; the crates' `target/` dirs are
    // left out on purpose (tests write to them).
    for p in ["HEAD", "index", "packed-refs"] {
        if let Some(path) = git(&["rev-parse", "--git-path", p]) {
            println!("cargo:rerun-if-changed={}", workspace.join(path).display());
        }
    }
    if let Some(head_ref) = git(&["symbolic-ref", "-q", "HEAD"])
        && let Some(path) = git(&["rev-parse", "--git-path", &head_ref])
    {
        println!("cargo:rerun-if-changed={}", workspace.join(path).display());
    }
    for f in ["Cargo.toml", "Cargo.lock", "flake.nix", "kmod"] {
        println!("cargo:rerun-if-changed={}", workspace.join(f).display());
    }
    if let Ok(crates) = std::fs::read_dir(workspace.join("crates")) {
        for c in crates.flatten() {
            for part in ["src", "Cargo.toml", "build.rs"] {
                let p = c.path().join(part);
                if p.exists() {
                    println!("cargo:rerun-if-changed={}", p.display());
                }
            }
        }
    }
    let dirty =
        git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    (commit, dirty)
}

/// `rustc --version` of the compiler cargo uses for this build.
fn rustc_version() -> String {
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "rustc unknown".into())
}
