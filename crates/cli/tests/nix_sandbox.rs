//! `checks.tests` of flake.nix runs the library tests inside Nix's build
//! sandbox. Nix cannot build here, so this test runs them the way that check
//! does, inside bwrap:
//!
//! - over exactly the flake's source set for the `vmbench` package (the
//!   paths of its `lib.fileset.unions`, as git tracks them: no `.cargo/`);
//! - with the dependencies vendored and a `.cargo/config.toml` above the
//!   source that points cargo at them, as nixpkgs' cargo-setup-hook does;
//! - as cargoCheckHook runs cargo (`--profile release --target <triple>
//!   --frozen`), with the package's RUSTFLAGS taken from flake.nix;
//! - `checks.clippy`'s own `cargo clippy` command line, read from flake.nix,
//!   with the same RUSTFLAGS (crt-static: without `--target` rustc refuses
//!   the proc-macros);
//! - with no network, an unprivileged uid (30001, nixbld1), `/bin/sh` as the
//!   only file in `/bin`, no `/sys`, a minimal `/dev`, `HOME=/homeless-shelter`
//!   (which does not exist), and nothing of the caller's environment.
//!
//! What differs from Nix: the toolchain is this machine's (rustc from rustup,
//! gcc and binutils from Debian), so `/usr` is mounted read-only, and PATH
//! holds only the tools of nixpkgs' stdenv plus the compiler and cargo.
//!
//! Needs bubblewrap (`scripts/install-deps --dev`): #[ignore]d, run with
//! `cargo test -- --include-ignored`.
#![allow(clippy::unwrap_used)]

use vmbench_testkit::{have_tool, require};

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// The `<name> = pkgs.rustPlatform.buildRustPackage { ... }` block.
fn derivation<'f>(flake: &'f str, name: &str) -> &'f str {
    let head = format!("{name} = pkgs.rustPlatform.buildRustPackage {{");
    let start = flake
        .find(&head)
        .unwrap_or_else(|| panic!("flake.nix has no `{head}`"));
    let rest = &flake[start..];
    let end = rest
        .find("\n          };")
        .unwrap_or_else(|| panic!("end of the {name} derivation"));
    &rest[..end]
}

/// The paths of the derivation's `lib.fileset.unions [ ... ]`.
fn fileset_paths(derivation: &str) -> Vec<String> {
    let start = derivation
        .find("lib.fileset.unions [")
        .expect("the derivation has no lib.fileset.unions");
    let list = &derivation[start + "lib.fileset.unions [".len()..];
    let list = &list[..list.find(']').unwrap()];
    list.split_whitespace()
        .map(|p| {
            p.strip_prefix("./")
                .unwrap_or_else(|| panic!("fileset entry {p:?} is not a ./path"))
                .to_string()
        })
        .collect()
}

/// `checks.clippy`'s `cargo clippy ...` line, with the store's target
/// triple for this host.
fn clippy_command(flake: &str) -> String {
    let check = &flake[flake
        .find("clippy = p.vmbench.overrideAttrs")
        .expect("checks.clippy")..];
    let line = check
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("cargo clippy"))
        .expect("checks.clippy runs cargo clippy");
    line.replace(
        "${pkgs.stdenv.hostPlatform.rust.rustcTargetSpec}",
        "x86_64-unknown-linux-gnu",
    )
}

/// The derivation's `RUSTFLAGS = "...";`, if any.
fn rustflags(derivation: &str) -> Option<String> {
    let i = derivation.find("RUSTFLAGS = \"")?;
    let rest = &derivation[i + "RUSTFLAGS = \"".len()..];
    Some(rest[..rest.find('"').unwrap()].to_string())
}

#[test]
fn the_flake_source_set_is_read_from_flake_nix() {
    let flake = std::fs::read_to_string(repo().join("flake.nix")).unwrap();
    let d = derivation(&flake, "vmbench");
    let paths = fileset_paths(d);
    for must in ["Cargo.toml", "Cargo.lock", "crates"] {
        assert!(paths.iter().any(|p| p == must), "{paths:?}");
    }
    assert!(
        !paths.iter().any(|p| p.starts_with(".cargo")),
        "the flake's source set has no .cargo/: {paths:?}"
    );
    assert_eq!(
        rustflags(d).as_deref(),
        Some("-C target-feature=+crt-static")
    );
}

/// Tools of nixpkgs' stdenv (coreutils, findutils, diffutils, sed, grep,
/// gawk, tar, gzip, bzip2, xz, make, bash, patch, file) and the C toolchain.
const STDENV_TOOLS: &[&str] = &[
    "basename", "cat", "chmod", "cp", "cut", "date", "dirname", "echo", "env", "false", "head",
    "id", "ln", "ls", "mkdir", "mktemp", "mv", "readlink", "realpath", "rm", "rmdir", "sleep",
    "sort", "stat", "tail", "tee", "test", "touch", "tr", "true", "uname", "uniq", "wc", "find",
    "xargs", "cmp", "diff", "sed", "grep", "awk", "gawk", "tar", "gzip", "bzip2", "xz", "make",
    "bash", "patch", "file", "cc", "gcc", "c++", "g++", "ld", "as", "ar", "nm", "objcopy",
    "ranlib", "strip",
];

/// Copies the files git tracks (staged ones too) under the flake's source
/// paths: what a flake's source is.
/// Returns how many files it copied.
fn copy_source_set(repo: &Path, paths: &[String], source: &Path) -> usize {
    let _ = std::fs::remove_dir_all(source);
    std::fs::create_dir_all(source).unwrap();
    let listed = Command::new("git")
        .current_dir(repo)
        .args(["ls-files", "-z", "--cached", "--"])
        .args(paths)
        .output()
        .unwrap();
    assert!(
        listed.status.success(),
        "git ls-files: {}",
        String::from_utf8_lossy(&listed.stderr)
    );
    let mut copied = 0;
    for rel in listed.stdout.split(|&b| b == 0).filter(|r| !r.is_empty()) {
        let rel = Path::new(std::str::from_utf8(rel).unwrap());
        let from = repo.join(rel);
        if !from.exists() {
            continue; // deleted in the work tree, not yet in the index
        }
        let to = source.join(rel);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(&from, &to).unwrap();
        copied += 1;
    }
    assert!(!source.join(".cargo").exists());
    copied
}

/// Vendors the dependencies, as nixpkgs' importCargoLock fetches them
/// outside the sandbox, and points cargo at them from above the source.
fn vendor(top: &Path, source: &Path) {
    let vendor = top.join("vendor");
    let _ = std::fs::remove_dir_all(&vendor);
    let v = Command::new(env!("CARGO"))
        .current_dir(source)
        .args(["vendor", "--locked", "--quiet"])
        .arg(&vendor)
        .output()
        .unwrap();
    assert!(
        v.status.success(),
        "cargo vendor: {}",
        String::from_utf8_lossy(&v.stderr)
    );
    std::fs::create_dir_all(top.join(".cargo")).unwrap();
    std::fs::write(
        top.join(".cargo/config.toml"),
        "[source.crates-io]\nreplace-with = \"vendored-sources\"\n\n\
         [source.vendored-sources]\ndirectory = \"/build/vendor\"\n",
    )
    .unwrap();
}

/// PATH (stdenv's tools and the Rust toolchain, nothing else) and the
/// builder's /etc/passwd and /etc/group. Returns the toolchain's sysroot.
fn build_environment(top: &Path) -> String {
    let sysroot = String::from_utf8(
        Command::new("rustc")
            .args(["--print", "sysroot"])
            .output()
            .unwrap()
            .stdout,
    )
    .unwrap()
    .trim()
    .to_string();
    let bin = top.join("bin");
    let _ = std::fs::remove_dir_all(&bin);
    std::fs::create_dir_all(&bin).unwrap();
    for tool in STDENV_TOOLS {
        // Resolved: /usr/bin/cc goes through /etc/alternatives, not mounted.
        if let Ok(p) = Path::new("/usr/bin").join(tool).canonicalize() {
            std::os::unix::fs::symlink(&p, bin.join(tool)).unwrap();
        }
    }
    for tool in ["cargo", "rustc", "cargo-clippy", "clippy-driver"] {
        std::os::unix::fs::symlink(Path::new(&sysroot).join("bin").join(tool), bin.join(tool))
            .unwrap();
    }
    std::fs::create_dir_all(top.join("etc")).unwrap();
    std::fs::write(
        top.join("etc/passwd"),
        "root:x:0:0:Nix build user:/build:/noshell\n\
         nixbld:x:30001:30000:Nix build user:/build:/noshell\n\
         nobody:x:65534:65534:Nobody:/:/noshell\n",
    )
    .unwrap();
    std::fs::write(
        top.join("etc/group"),
        "root:x:0:\nnixbld:!:30000:\nnogroup:x:65534:\n",
    )
    .unwrap();
    sysroot
}

/// `script` under /bin/sh in the sandbox, with `top` as /build.
fn sandbox(top: &Path, sysroot: &str, script: &str) -> Command {
    let mut c = Command::new("bwrap");
    c.args(["--unshare-all", "--die-with-parent", "--new-session"])
        .args(["--uid", "30001", "--gid", "30000"])
        .args(["--ro-bind", "/usr", "/usr"])
        .args([
            "--symlink",
            "usr/lib",
            "/lib",
            "--symlink",
            "usr/lib64",
            "/lib64",
        ])
        .args(["--dir", "/bin", "--ro-bind", "/bin/bash", "/bin/sh"])
        .arg("--ro-bind")
        .arg(sysroot)
        .arg(sysroot)
        .arg("--bind")
        .arg(top)
        .arg("/build")
        .arg("--bind")
        .arg(top.join("target"))
        .arg("/build/source/target")
        .args(["--ro-bind"])
        .arg(top.join("etc/passwd"))
        .arg("/etc/passwd")
        .args(["--ro-bind"])
        .arg(top.join("etc/group"))
        .arg("/etc/group")
        .args(["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"])
        .args(["--chdir", "/build/source", "--clearenv"])
        .args(["--setenv", "PATH", "/build/bin"])
        .args(["--setenv", "HOME", "/homeless-shelter"])
        .args(["--setenv", "TMPDIR", "/build", "--setenv", "TMP", "/build"])
        .args([
            "--setenv",
            "NIX_BUILD_TOP",
            "/build",
            "--setenv",
            "NIX_BUILD_CORES",
            "2",
        ])
        .args([
            "--setenv",
            "USER",
            "nixbld",
            "--setenv",
            "TERM",
            "xterm-256color",
        ])
        .args(["/bin/sh", "-c", script]);
    c
}

#[test]
#[ignore = "needs bubblewrap: builds and runs the library tests in a Nix-like sandbox"]
fn library_tests_and_clippy_pass_in_a_nix_like_build_sandbox() {
    require(&[(have_tool("bwrap"), "bubblewrap")]);
    let repo = repo();
    let flake = std::fs::read_to_string(repo.join("flake.nix")).unwrap();
    let derivation = derivation(&flake, "vmbench");
    // The build top: source/, vendor/, .cargo/config.toml, bin/ (PATH), etc/.
    let top = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("nix-sandbox");
    let source = top.join("source");
    let copied = copy_source_set(&repo, &fileset_paths(derivation), &source);
    assert!(copied > 50, "only {copied} files in the flake's source set");
    vendor(&top, &source);
    let sysroot = build_environment(&top);
    // The target directory lives on between runs: only compilation is saved.
    std::fs::create_dir_all(top.join("target")).unwrap();

    // The sandbox is what it claims to be.
    let probe = sandbox(
        &top,
        &sysroot,
        "test \"$(id -u)\" = 30001 && test ! -e /homeless-shelter && test ! -e /sys/class \
         && test ! -e /bin/false && test ! -e /dev/kvm && ls /bin",
    )
    .output()
    .unwrap();
    assert!(
        probe.status.success(),
        "sandbox probe: {}{}",
        String::from_utf8_lossy(&probe.stdout),
        String::from_utf8_lossy(&probe.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&probe.stdout).trim(), "sh");

    let rustflags = rustflags(derivation).unwrap_or_default();
    // The flake hands the build its commit (there is no .git in the source
    // set); a dirty tree's `self.dirtyRev` ends in -dirty. The identity's
    // unit test checks the binary recorded what it was given.
    assert!(
        derivation.contains("VMBENCH_COMMIT = self.rev or self.dirtyRev or \"unknown\";"),
        "flake.nix does not hand vmbench its commit"
    );
    let script = format!(
        "export RUSTFLAGS='{rustflags}'; \
         export VMBENCH_COMMIT=0123456789abcdef0123456789abcdef01234567-dirty; \
         cargo test -j 2 --profile release --target x86_64-unknown-linux-gnu --frozen \
         --workspace --lib -- --test-threads=2"
    );
    let out = sandbox(&top, &sysroot, &script).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "library tests failed in the Nix-like sandbox:\n{stdout}\n{stderr}"
    );
    let passed: usize = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("test result: ok. "))
        .filter_map(|l| l.split(' ').next()?.parse::<usize>().ok())
        .sum();
    assert!(passed > 50, "only {passed} library tests ran:\n{stdout}");
    assert!(
        stdout.contains("the_build_identity_is_the_commit_the_build_was_given ... ok"),
        "{stdout}"
    );
    assert!(!stdout.contains("FAILED"), "{stdout}");

    // checks.clippy: its command line as flake.nix gives it, in the same
    // sandbox with the package's RUSTFLAGS.
    let clippy = clippy_command(&flake);
    assert!(
        !clippy.contains("${"),
        "unresolved interpolation in {clippy}"
    );
    let out = sandbox(
        &top,
        &sysroot,
        &format!("export RUSTFLAGS='{rustflags}'; {clippy}"),
    )
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "checks.clippy failed in the Nix-like sandbox ({clippy}):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The micro-guest derivation builds from its own source set: crates/microguest
/// and the crates it depends on by path, nothing else of the repository (no
/// root Cargo.toml), as cargoBuildHook runs cargo in `buildAndTestSubdir`.
#[test]
#[ignore = "needs bubblewrap: builds the micro-guest in a Nix-like sandbox"]
fn micro_guest_builds_from_its_flake_source_set() {
    require(&[(have_tool("bwrap"), "bubblewrap")]);
    let repo = repo();
    let flake = std::fs::read_to_string(repo.join("flake.nix")).unwrap();
    let derivation = derivation(&flake, "microguest");
    let subdir = "crates/microguest";
    assert!(derivation.contains(&format!("buildAndTestSubdir = \"{subdir}\";")));
    let top = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("nix-sandbox-microguest");
    let source = top.join("source");
    copy_source_set(&repo, &fileset_paths(derivation), &source);
    assert!(
        !source.join("Cargo.toml").exists(),
        "the micro-guest's source set has no root Cargo.toml"
    );
    let sysroot = build_environment(&top);
    std::fs::create_dir_all(top.join("target")).unwrap();

    let rustflags = rustflags(derivation).expect("the micro-guest derivation sets RUSTFLAGS");
    let script = format!(
        "export RUSTFLAGS='{rustflags}'; cd {subdir} && \
         cargo build -j 2 --profile release --target x86_64-unknown-linux-gnu --frozen"
    );
    let out = sandbox(&top, &sysroot, &script).output().unwrap();
    assert!(
        out.status.success(),
        "the micro-guest did not build from its flake source set:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let elf = std::fs::read(
        source
            .join(subdir)
            .join("target/x86_64-unknown-linux-gnu/release/vmbench-microguest"),
    )
    .unwrap();
    assert_eq!(&elf[..4], b"\x7fELF");
}
