//! A build that links the way nixpkgs links, for the tests that stand in
//! for `nix build` (nixpkgs cannot be reached from this project's build
//! machines). Shared by `nix_sandbox.rs` and `flake_image.rs`.
//!
//! What it reproduces of a nixpkgs build of flake.nix's Rust derivations:
//!
//! - **the source set**: exactly the paths of the derivation's
//!   `lib.fileset.unions`, as git tracks them (no `.cargo/`);
//! - **vendored dependencies** and a `.cargo/config.toml` above the source
//!   pointing at them, as cargo-setup-hook writes it;
//! - **the sandbox** (bwrap): no network, uid 30001 (nixbld1), `/bin/sh`
//!   alone in `/bin`, no `/sys`, a minimal `/dev`, `HOME=/homeless-shelter`
//!   (absent), nothing of the caller's environment;
//! - **the hooks' cargo lines**: `cargo build -j N --target <triple>
//!   --offline --profile release` (cargoBuildHook) and `cargo test -j N
//!   --profile release --target <triple> --offline <cargoTestFlags> --
//!   --test-threads=N` (cargoCheckHook), with the derivation's RUSTFLAGS;
//! - **the link**: nixpkgs builds rustc with `--disable-lld`, so rustc runs
//!   `cc` from PATH, the cc wrapper, which links with GNU ld. The wrapper's
//!   setup hook (`bintoolsWrapper_addLDVars`) adds `-L<input>/lib` for every
//!   build input that has libraries there, in the order of `buildInputs`,
//!   and GNU ld searches those before the C library's own directory. Here
//!   `cc` in PATH is a script that drops what rustup's rustc adds for its
//!   bundled lld (`-fuse-ld=lld`, `-B…/gcc-ld`), links with GNU ld
//!   (`-fuse-ld=bfd`) and appends `-L` for each of the derivation's
//!   `buildInputs`, read from flake.nix, with a stand-in directory holding
//!   what that nixpkgs output holds (see [`stand_in_lib_dir`]).
//!
//! - **cargo-auditable**: unless the derivation says `auditable = false`,
//!   buildRustPackage puts nixpkgs' cargo-auditable-cargo-wrapper first in
//!   PATH (`cargo` that runs `cargo auditable …` with
//!   `CARGO_AUDITABLE_IGNORE_UNSUPPORTED=1`), which links each binary with
//!   its dependency list (a `.dep-v0` section); so does `cargo` here
//!   (`cargo-auditable` from crates.io, `scripts/install-deps --dev`).
//!
//! What still differs from Nix, and cannot be made equal here: the
//! toolchain is this machine's (rustup's rustc and clippy, which may be
//! newer than the pin's; Debian's gcc, binutils and glibc; cargo-auditable
//! from crates.io), mounted read-only from `/usr` and the rustup sysroot.
#![allow(dead_code)] // each test file uses its own part

use std::path::{Path, PathBuf};
use std::process::Command;

/// The host triple nixpkgs' `stdenv.hostPlatform.rust.rustcTargetSpec` is
/// on x86_64-linux.
pub const TARGET: &str = "x86_64-unknown-linux-gnu";

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

pub fn flake() -> String {
    std::fs::read_to_string(repo().join("flake.nix")).unwrap()
}

/// The `<name> = pkgs.rustPlatform.buildRustPackage { ... }` block.
pub fn derivation<'f>(flake: &'f str, name: &str) -> &'f str {
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
pub fn fileset_paths(derivation: &str) -> Vec<String> {
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

/// The derivation's `RUSTFLAGS = "...";`, if any.
pub fn rustflags(derivation: &str) -> Option<String> {
    let i = derivation.find("RUSTFLAGS = \"")?;
    let rest = &derivation[i + "RUSTFLAGS = \"".len()..];
    Some(rest[..rest.find('"').unwrap()].to_string())
}

/// Whether nixpkgs builds the derivation through cargo-auditable (its
/// default, unless the derivation says `auditable = false;`).
pub fn auditable(derivation: &str) -> bool {
    !derivation.contains("auditable = false;")
}

/// The words of the derivation's `buildInputs = [ ... ];` (none if it has
/// none), in their order.
pub fn build_inputs(derivation: &str) -> Vec<String> {
    let Some(i) = derivation.find("buildInputs = [") else {
        return Vec::new();
    };
    let list = &derivation[i + "buildInputs = [".len()..];
    let list = &list[..list.find(']').expect("buildInputs list ends")];
    list.split_whitespace().map(str::to_string).collect()
}

/// `checks.clippy`'s `cargo clippy ...` line, with the store's target
/// triple for this host.
pub fn clippy_command(flake: &str) -> String {
    let check = &flake[flake
        .find("clippy = p.vmbench.overrideAttrs")
        .expect("checks.clippy")..];
    let line = check
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("cargo clippy"))
        .expect("checks.clippy runs cargo clippy");
    line.replace("${pkgs.stdenv.hostPlatform.rust.rustcTargetSpec}", TARGET)
}

/// Tools of nixpkgs' stdenv (coreutils, findutils, diffutils, sed, grep,
/// gawk, tar, gzip, bzip2, xz, make, bash, patch, file) and the C toolchain
/// (`cc` and `gcc` are the link wrapper, written by [`build_environment`]).
const STDENV_TOOLS: &[&str] = &[
    "basename", "cat", "chmod", "cp", "cut", "date", "dirname", "echo", "env", "false", "head",
    "id", "ln", "ls", "mkdir", "mktemp", "mv", "readlink", "realpath", "rm", "rmdir", "sleep",
    "sort", "stat", "tail", "tee", "test", "touch", "tr", "true", "uname", "uniq", "wc", "find",
    "xargs", "cmp", "diff", "sed", "grep", "awk", "gawk", "tar", "gzip", "bzip2", "xz", "make",
    "bash", "patch", "file", "c++", "g++", "ld", "ld.bfd", "as", "ar", "nm", "objcopy", "ranlib",
    "strip", "readelf",
];

/// Copies the files git tracks (staged ones too) under the flake's source
/// paths: what a flake's source is. Returns how many files it copied.
pub fn copy_source_set(repo: &Path, paths: &[String], source: &Path) -> usize {
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
pub fn vendor(top: &Path, source: &Path) {
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

/// Where the C library lives on this Debian (libc6, libc6-dev).
const DEBIAN_LIBDIR: &str = "/usr/lib/x86_64-linux-gnu";

/// A directory under `/build/store` holding what the nixpkgs output
/// `input` has in its `lib/` for linking, made of Debian's files
/// (absolute symlinks into /usr, which the sandbox mounts read-only):
///
/// - `pkgs.glibc` (`stdenv.cc.libc`): the shared libraries' link names
///   (`libc.so`, `libm.so`, …, and the `libpthread.so`, `librt.so`,
///   `libdl.so`, `libutil.so` links nixpkgs' glibc adds) and
///   `lib*_nonshared.a`, which nixpkgs keeps there; no other archive;
/// - `pkgs.glibc.static` (`stdenv.cc.libc.static`): every other `lib*.a`
///   of glibc, which nixpkgs' glibc moves to its `static` output.
///
/// From `pkgs/development/libraries/glibc/default.nix`, `postInstall`:
/// `mv $out/lib/*.a $static/lib; mv $static/lib/lib*_nonshared.a $out/lib`.
pub fn stand_in_lib_dir(top: &Path, input: &str) -> String {
    let (name, keep): (&str, fn(&str) -> bool) = match input {
        "pkgs.glibc" | "pkgs.stdenv.cc.libc" => ("glibc", |f| {
            f.ends_with(".so") || f.ends_with("_nonshared.a")
        }),
        "pkgs.glibc.static" | "pkgs.stdenv.cc.libc.static" => ("glibc-static", |f| {
            f.ends_with(".a") && !f.ends_with("_nonshared.a")
        }),
        other => panic!(
            "flake.nix's buildInputs has {other}, which the Nix-like link has no stand-in for: \
             add one to crates/cli/tests/nixlike/mod.rs (what that output holds in lib/)"
        ),
    };
    let lib = top.join("store").join(name).join("lib");
    let _ = std::fs::remove_dir_all(&lib);
    std::fs::create_dir_all(&lib).unwrap();
    let listed = Command::new("dpkg")
        .args(["-L", "libc6-dev"])
        .output()
        .unwrap();
    assert!(
        listed.status.success(),
        "dpkg -L libc6-dev: is libc6-dev installed?"
    );
    let mut linked = 0;
    for path in String::from_utf8_lossy(&listed.stdout).lines() {
        let Some(file) = path.strip_prefix(&format!("{DEBIAN_LIBDIR}/")) else {
            continue;
        };
        if file.starts_with("lib") && !file.contains('/') && keep(file) {
            std::os::unix::fs::symlink(path, lib.join(file)).unwrap();
            linked += 1;
        }
    }
    if name == "glibc" {
        for (link, target) in [
            ("libpthread.so", "libpthread.so.0"),
            ("librt.so", "librt.so.1"),
            ("libdl.so", "libdl.so.2"),
            ("libutil.so", "libutil.so.1"),
        ] {
            std::os::unix::fs::symlink(format!("{DEBIAN_LIBDIR}/{target}"), lib.join(link))
                .unwrap();
        }
    }
    assert!(linked > 3, "only {linked} files of libc6-dev for {input}");
    format!("/build/store/{name}/lib")
}

/// The `cc` that rustc runs, as nixpkgs' rustc (built `--disable-lld`)
/// runs the cc wrapper: GNU ld, and the build inputs' `-L` in their order.
/// Written as `bin/cc` and `bin/gcc` under `top` (PATH in the sandbox).
pub fn link_wrapper(top: &Path, build_inputs: &[String]) {
    let dirs: Vec<String> = build_inputs
        .iter()
        .map(|i| format!("-L{}", stand_in_lib_dir(top, i)))
        .collect();
    let gcc = Path::new("/usr/bin/gcc").canonicalize().unwrap();
    let script = format!(
        "#!/bin/sh\n\
         # The link as nixpkgs' cc wrapper does it (crates/cli/tests/nixlike/mod.rs).\n\
         # rustup's rustc asks for its bundled lld; nixpkgs' rustc has none.\n\
         for a in \"$@\"; do\n\
         \x20   shift\n\
         \x20   case \"$a\" in\n\
         \x20   -fuse-ld=lld | -B*/gcc-ld) ;;\n\
         \x20   *) set -- \"$@\" \"$a\" ;;\n\
         \x20   esac\n\
         done\n\
         exec {} \"$@\" -fuse-ld=bfd {}\n",
        gcc.display(),
        dirs.join(" ")
    );
    for name in ["cc", "gcc"] {
        let p = top.join("bin").join(name);
        let _ = std::fs::remove_file(&p);
        std::fs::write(&p, &script).unwrap();
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }
}

/// PATH (stdenv's tools, the link wrapper and the Rust toolchain, nothing
/// else) and the builder's /etc/passwd and /etc/group, for a derivation
/// with these `buildInputs`, built through cargo-auditable when `auditable`.
/// Returns the toolchain's sysroot.
pub fn build_environment(top: &Path, build_inputs: &[String], auditable: bool) -> String {
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
    link_wrapper(top, build_inputs);
    for tool in ["cargo", "rustc", "cargo-clippy", "clippy-driver"] {
        std::os::unix::fs::symlink(Path::new(&sysroot).join("bin").join(tool), bin.join(tool))
            .unwrap();
    }
    if auditable {
        auditable_cargo(&bin, &sysroot);
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

/// `cargo` in `bin` as nixpkgs' cargo-auditable-cargo-wrapper makes it:
/// the real cargo with `auditable` before the arguments and
/// `CARGO_AUDITABLE_IGNORE_UNSUPPORTED=1`, `cargo-auditable` beside it
/// (copied: the sandbox does not see `~/.cargo`).
fn auditable_cargo(bin: &Path, sysroot: &str) {
    let found = Command::new("sh")
        .args(["-c", "command -v cargo-auditable"])
        .output()
        .unwrap();
    let path = String::from_utf8_lossy(&found.stdout).trim().to_string();
    assert!(
        found.status.success() && !path.is_empty(),
        "cargo-auditable is not installed (scripts/install-deps --dev: cargo install cargo-auditable)"
    );
    std::fs::copy(&path, bin.join("cargo-auditable")).unwrap();
    let cargo = bin.join("cargo");
    std::fs::remove_file(&cargo).unwrap();
    std::fs::write(
        &cargo,
        format!(
            "#!/bin/sh
# nixpkgs' cargo-auditable-cargo-wrapper (crates/cli/tests/nixlike/mod.rs)
             CARGO_AUDITABLE_IGNORE_UNSUPPORTED=1 exec {sysroot}/bin/cargo auditable \"$@\"
"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&cargo, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
}

/// `script` under /bin/sh in the sandbox, with `top` as /build and
/// `top/source` as the working directory.
pub fn sandbox(top: &Path, sysroot: &str, script: &str) -> Command {
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

/// A build top for the derivation `name` of flake.nix: its source set
/// copied to `top/source`, its dependencies vendored (if it has a
/// Cargo.lock at the top), PATH with the link wrapper for its buildInputs.
/// Returns (top, sysroot).
pub fn prepare(name: &str, top_name: &str, vendored: bool) -> (PathBuf, String) {
    let repo = repo();
    let flake = flake();
    let d = derivation(&flake, name);
    let top = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(top_name);
    let source = top.join("source");
    let copied = copy_source_set(&repo, &fileset_paths(d), &source);
    assert!(copied > 10, "only {copied} files in {name}'s source set");
    if vendored {
        vendor(&top, &source);
    }
    let sysroot = build_environment(&top, &build_inputs(d), auditable(d));
    // The target directory lives on between runs: only compilation is saved.
    std::fs::create_dir_all(top.join("target")).unwrap();
    (top, sysroot)
}

/// The ELF's `.comment` strings: rust-lld writes "Linker: LLD …" there,
/// GNU ld writes nothing of its own.
pub fn linked_by_lld(elf: &Path) -> bool {
    readelf(&["-p", ".comment"], elf).1.contains("Linker: LLD")
}

/// Whether the ELF asks for a dynamic loader (has a PT_INTERP).
pub fn has_interpreter(elf: &Path) -> bool {
    let (ok, text) = readelf(&["-l", "-W"], elf);
    assert!(ok, "readelf -l {}", elf.display());
    text.contains("INTERP")
}

/// Whether the ELF carries cargo-auditable's dependency list.
pub fn has_dependency_list(elf: &Path) -> bool {
    readelf(&["-S", "-W"], elf).1.contains(".dep-v0")
}

/// `readelf ARGS elf`: whether it succeeded, and what it printed.
fn readelf(args: &[&str], elf: &Path) -> (bool, String) {
    let out = Command::new("readelf")
        .args(args)
        .arg(elf)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// `vmbench` and `vmbench-agent` as `nix build .#vmbench` builds them:
/// cargoBuildHook's line in the sandbox, with the flake's RUSTFLAGS and
/// the Nix-like link. Panics with cargo's output when the build fails.
pub fn build_vmbench() -> (PathBuf, PathBuf) {
    let (top, sysroot) = prepare("vmbench", "nix-sandbox", true);
    let flake = flake();
    let rustflags = rustflags(derivation(&flake, "vmbench")).unwrap_or_default();
    let script = format!(
        "export RUSTFLAGS='{rustflags}'; \
         export VMBENCH_COMMIT=0123456789abcdef0123456789abcdef01234567; \
         cargo build -j 2 --target {TARGET} --offline --profile release"
    );
    let out = sandbox(&top, &sysroot, &script).output().unwrap();
    assert!(
        out.status.success(),
        "`nix build .#vmbench`'s cargo build failed with the Nix-like link:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let bin = top.join("target").join(TARGET).join("release");
    (bin.join("vmbench"), bin.join("vmbench-agent"))
}
