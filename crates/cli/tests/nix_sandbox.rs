//! `checks.tests` and `checks.clippy` of flake.nix, and the link of every
//! Rust derivation, the way nixpkgs does them. Nix cannot build here, so
//! these tests run the hooks' cargo lines in a bwrap sandbox with a link
//! like nixpkgs' (GNU ld through a cc wrapper, `-L` for each of the
//! derivation's `buildInputs` in its order, stand-ins holding what each
//! nixpkgs output holds): crates/cli/tests/nixlike/mod.rs says what is
//! reproduced and what is not (this machine's rustc and clippy, not the
//! pin's). `flake_image.rs` boots the image made from the binaries built
//! this way.
//!
//! Needs bubblewrap (`scripts/install-deps --dev`): #[ignore]d, run with
//! `cargo test -- --include-ignored`.
#![allow(clippy::unwrap_used)]

mod nixlike;

use nixlike::{
    TARGET, build_inputs, clippy_command, derivation, fileset_paths, flake, has_interpreter,
    linked_by_lld, prepare, repo, rustflags, sandbox,
};
use vmbench_testkit::{have_tool, require};

use std::process::Command;

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

#[test]
#[ignore = "needs bubblewrap: builds and runs the library tests in a Nix-like sandbox"]
fn library_tests_and_clippy_pass_in_a_nix_like_build_sandbox() {
    require(&[(have_tool("bwrap"), "bubblewrap")]);
    let flake = flake();
    let derivation = derivation(&flake, "vmbench");
    // The build top: source/, vendor/, .cargo/config.toml, bin/ (PATH), etc/.
    let (top, sysroot) = prepare("vmbench", "nix-sandbox", true);

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
    // checks.tests: cargoCheckHook's line with its `cargoTestFlags`.
    let test_flags = cargo_test_flags(&flake);
    assert_eq!(test_flags, ["--workspace", "--lib"]);
    let script = format!(
        "export RUSTFLAGS='{rustflags}'; \
         export VMBENCH_COMMIT=0123456789abcdef0123456789abcdef01234567-dirty; \
         cargo test -j 2 --profile release --target {TARGET} --offline {} -- --test-threads=2",
        test_flags.join(" ")
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
    // The test binaries were linked as nixpkgs links: GNU ld, not rust-lld.
    let deps = top.join("target").join(TARGET).join("release/deps");
    let test_bin = std::fs::read_dir(&deps)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmbench_results-"))
                && p.extension().is_none()
        })
        .expect("the results crate's test binary");
    assert!(
        !linked_by_lld(&test_bin),
        "{} was linked by rust-lld",
        test_bin.display()
    );

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

/// `checks.tests`'s `cargoTestFlags = [ "..." ... ];`.
fn cargo_test_flags(flake: &str) -> Vec<String> {
    let i = flake
        .find("cargoTestFlags = [")
        .expect("checks.tests sets cargoTestFlags");
    let list = &flake[i + "cargoTestFlags = [".len()..];
    list[..list.find(']').unwrap()]
        .split_whitespace()
        .map(|w| w.trim_matches('"').to_string())
        .collect()
}

/// A crate with a build script (as proc-macro2, libc and most crates have)
/// and a static binary, linked in the sandbox with `buildInputs` as given:
/// the build script is dynamic, the binary static-pie (crt-static).
fn link_probe(top_name: &str, inputs: &[&str]) -> (std::process::Output, std::path::PathBuf) {
    let top = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(top_name);
    let source = top.join("source");
    let _ = std::fs::remove_dir_all(&top);
    std::fs::create_dir_all(source.join("src")).unwrap();
    std::fs::write(
        source.join("Cargo.toml"),
        "[package]\nname = \"link-probe\"\nversion = \"0.1.0\"\nedition = \"2024\"\n",
    )
    .unwrap();
    // Threads, TLS, allocation, formatting: what a build script does.
    std::fs::write(
        source.join("build.rs"),
        "fn main() {\n    let v: Vec<String> = std::thread::spawn(|| (0..64).map(|i| format!(\"{i}\")).collect())\n        .join()\n        .unwrap();\n    println!(\"cargo:rustc-env=PROBE={}\", v.len());\n}\n",
    )
    .unwrap();
    std::fs::write(
        source.join("src/main.rs"),
        "fn main() {\n    println!(\"probe {}\", env!(\"PROBE\"));\n}\n",
    )
    .unwrap();
    let inputs: Vec<String> = inputs.iter().map(|s| s.to_string()).collect();
    let sysroot = nixlike::build_environment(&top, &inputs, false);
    std::fs::create_dir_all(top.join("target")).unwrap();
    let script = format!(
        "export RUSTFLAGS='-C target-feature=+crt-static'; \
         cargo build -j 2 --target {TARGET} --offline --profile release"
    );
    let out = sandbox(&top, &sysroot, &script).output().unwrap();
    (
        out,
        top.join("target").join(TARGET).join("release/link-probe"),
    )
}

/// The stand-in sees what breaks in nixpkgs (nixpkgs issue #59267): glibc's
/// static output alone in buildInputs puts a directory of only `.a` files
/// before the C library's own, so the dynamically linked build scripts get
/// the static libc and crash or fail to link. With the shared libc first,
/// as flake.nix has it now (and nixpkgs' busybox does), both link.
#[test]
#[ignore = "needs bubblewrap: links a probe crate in a Nix-like sandbox"]
fn the_nix_like_link_fails_with_a_static_only_libc_first_and_works_as_the_flake_has_it() {
    require(&[(have_tool("bwrap"), "bubblewrap")]);
    let (broken, _) = link_probe("nix-link-probe-static-only", &["pkgs.glibc.static"]);
    // How the static libc in a dynamic link shows depends on the glibc:
    // nixpkgs' gave a build script that crashes (SIGSEGV) or a TPOFF32
    // relocation error; Debian 12's libc.a leaves `__tls_get_addr`, which
    // only the dynamic loader defines, unresolved.
    let stderr = String::from_utf8_lossy(&broken.stderr);
    assert!(
        !broken.status.success()
            && stderr.contains("(build script)")
            && [
                "SIGSEGV",
                "signal: 11",
                "can not be used when making a shared object",
                "__tls_get_addr"
            ]
            .iter()
            .any(|symptom| stderr.contains(symptom)),
        "a static-only libc first should break the build script's link:\n{stderr}"
    );

    let flake = flake();
    let inputs = build_inputs(derivation(&flake, "vmbench"));
    let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
    let (ok, probe) = link_probe("nix-link-probe-flake", &inputs);
    assert!(
        ok.status.success(),
        "with flake.nix's buildInputs {inputs:?}:\n{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(!has_interpreter(&probe), "the crt-static binary is static");
    assert!(!linked_by_lld(&probe), "linked by GNU ld");
    let run = Command::new(&probe).output().unwrap();
    assert_eq!(String::from_utf8_lossy(&run.stdout), "probe 64\n");
}

/// The micro-guest derivation builds from its own source set (crates/microguest
/// and the crates it depends on by path, no root Cargo.toml), as
/// cargoBuildHook runs cargo in `buildAndTestSubdir` with the target
/// directory at the source root, links with GNU ld, and runs its rows
/// under TCG.
#[test]
#[ignore = "needs bubblewrap and qemu-system-x86: builds the micro-guest in a Nix-like sandbox and boots it"]
fn micro_guest_builds_from_its_flake_source_set_and_runs() {
    require(&[
        (have_tool("bwrap"), "bubblewrap"),
        (vmbench_testkit::have_qemu(), "qemu-system-x86"),
    ]);
    let flake = flake();
    let derivation = derivation(&flake, "microguest");
    let subdir = "crates/microguest";
    assert!(derivation.contains(&format!("buildAndTestSubdir = \"{subdir}\";")));
    assert!(derivation.contains(&format!("cargoRoot = \"{subdir}\";")));
    let (top, sysroot) = prepare("microguest", "nix-sandbox-microguest", false);
    assert!(
        !top.join("source/Cargo.toml").exists(),
        "the micro-guest's source set has no root Cargo.toml"
    );
    let rustflags = rustflags(derivation).expect("the micro-guest derivation sets RUSTFLAGS");
    let script = format!(
        "export RUSTFLAGS='{rustflags}'; export CARGO_TARGET_DIR=/build/source/target; \
         cd {subdir} && cargo build -j 2 --target {TARGET} --offline --profile release"
    );
    let out = sandbox(&top, &sysroot, &script).output().unwrap();
    assert!(
        out.status.success(),
        "the micro-guest did not build from its flake source set:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let elf = top
        .join("target")
        .join(TARGET)
        .join("release/vmbench-microguest");
    assert_eq!(&std::fs::read(&elf).unwrap()[..4], b"\x7fELF");
    assert!(
        !linked_by_lld(&elf),
        "the micro-guest was linked by rust-lld"
    );
    assert!(!has_interpreter(&elf));

    // It runs: the headline rows under TCG, from this ELF.
    let run = Command::new(env!("CARGO_BIN_EXE_vmbench"))
        .args(["vmexit", "--guest", "micro", "--accel", "tcg", "--json"])
        .args(["--rows", "user-fast,kernel-fast,kernel-slow"])
        .args(["--iterations", "200", "--warmup", "20"])
        .arg("--micro-elf")
        .arg(&elf)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    let rows = v["results"]["measurements"].as_array().unwrap();
    for row in ["user-fast", "kernel-fast", "kernel-slow"] {
        let m = rows
            .iter()
            .find(|m| vmbench_testkit::local_id(m) == row)
            .unwrap_or_else(|| panic!("{row} missing: {v}"));
        assert_eq!(m["summary"]["n"], 200, "{m}");
    }
}
