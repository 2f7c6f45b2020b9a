//! `nix build .#guest-image` runs `vmbench image build` with store paths for
//! its inputs. Nix cannot build here, so this test runs that exact command
//! line, taken from flake.nix, with stand-ins for the store paths:
//! `vmbench` and `vmbench-agent` built as `nix build .#vmbench` builds them
//! (the flake's source set, cargoBuildHook's line, the flake's RUSTFLAGS,
//! GNU ld with nixpkgs' `-L` order for its buildInputs: nixlike/mod.rs),
//! Debian's kernel, the module built against its headers by kmod/Makefile
//! as the flake's kmod derivation runs it, busybox-static. It then boots
//! the image under TCG to the agent's handshake.
//!
//! Needs bubblewrap, a Debian kernel with headers, busybox-static, make,
//! gcc and qemu-system-x86 (`scripts/install-deps --dev`): #[ignore]d, run
//! with `cargo test -- --include-ignored`.
#![allow(clippy::unwrap_used)]

mod nixlike;

use vmbench_testkit::{have_tool, require};

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const BEGIN: &str = "# vmbench-image-build: begin";
const END: &str = "# vmbench-image-build: end";

/// The flake's guest initrd must stay below 12 MB (decimal): it boots faster
/// under TCG and copies faster to a fleet.
const MAX_INITRD_BYTES: u64 = 12_000_000;

/// The shell words of the `vmbench image build` command in flake.nix's
/// guest-image derivation (between the begin and end markers).
fn flake_image_build_words() -> Vec<String> {
    let flake = std::fs::read_to_string(nixlike::repo().join("flake.nix")).unwrap();
    let start = flake
        .find(BEGIN)
        .unwrap_or_else(|| panic!("flake.nix lost its {BEGIN:?} marker"));
    let end = flake
        .find(END)
        .unwrap_or_else(|| panic!("flake.nix lost its {END:?} marker"));
    let block = &flake[start..end];
    let script: String = block
        .lines()
        .skip(1) // the marker line
        .map(|l| l.trim().trim_end_matches('\\').to_string())
        .collect::<Vec<_>>()
        .join(" ");
    script.split_whitespace().map(str::to_string).collect()
}

/// Builds vmbench.ko from kmod/ with its Makefile against `kdir`, the way
/// kmod/default.nix does (make in the source directory, KDIR set).
fn build_module(kdir: &Path, work: &Path) -> PathBuf {
    let src = work.join("kmod");
    std::fs::create_dir_all(&src).unwrap();
    for name in ["vmbench.c", "vmbench_uapi.h", "Kbuild", "Makefile"] {
        std::fs::copy(nixlike::repo().join("kmod").join(name), src.join(name)).unwrap();
    }
    let out = Command::new("make")
        .current_dir(&src)
        .arg(format!("KDIR={}", kdir.display()))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "make in kmod/ failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    src.join("vmbench.ko")
}

/// `vmbench` and `vmbench-agent` as the flake's vmbench derivation builds
/// and links them (nixlike/mod.rs): static, and linked by GNU ld.
fn nix_like_binaries() -> (PathBuf, PathBuf) {
    let (vmbench, agent) = nixlike::build_vmbench();
    for bin in [&vmbench, &agent] {
        assert!(
            !nixlike::has_interpreter(bin),
            "{} is not static",
            bin.display()
        );
        assert!(
            !nixlike::linked_by_lld(bin),
            "{} was linked by rust-lld, not GNU ld",
            bin.display()
        );
        assert!(
            nixlike::has_dependency_list(bin),
            "{} was not built through cargo-auditable, as nixpkgs builds it",
            bin.display()
        );
    }
    (vmbench, agent)
}

#[test]
fn the_flake_builds_its_image_with_vmbench_image_build() {
    let words = flake_image_build_words();
    assert!(
        words.len() > 3 && words[1..3] == ["image", "build"],
        "not a `vmbench image build` command: {words:?}"
    );
}

#[test]
#[ignore = "needs bubblewrap, a Linux kernel with headers, busybox-static, make and qemu-system-x86: builds vmbench and the module, boots the image under TCG"]
fn the_flakes_image_build_command_makes_a_small_image_that_boots() {
    let words = flake_image_build_words();

    let kernel = vmbench_vm::image::default_kernel();
    let qemu = Path::new("/usr/bin/qemu-system-x86_64");
    let busybox = Path::new("/bin/busybox");
    require(&[
        (kernel.is_ok(), "linux-image-amd64"),
        (qemu.exists(), "qemu-system-x86"),
        (busybox.exists(), "busybox-static"),
        (have_tool("make"), "make"),
        (have_tool("bwrap"), "bubblewrap"),
    ]);
    let kernel = kernel.unwrap();
    let (vmbench, agent) = nix_like_binaries();
    let release = {
        let bytes = std::fs::read(&kernel).unwrap();
        let v = vmbench_vm::image::bzimage_version(&bytes).unwrap();
        v.split_whitespace().next().unwrap().to_string()
    };
    let kdir = PathBuf::from("/lib/modules").join(&release).join("build");
    let work = tempfile::tempdir().unwrap();
    let module = build_module(&kdir, work.path());
    let out = work.path().join("out");

    // Each Nix expression the command may use, and what stands in for it.
    let stand_ins: BTreeMap<&str, String> = [
        ("${vmbench}/bin/vmbench", vmbench.display().to_string()),
        ("${vmbench}/bin/vmbench-agent", agent.display().to_string()),
        (
            "${guestKernel}/${pkgs.stdenv.hostPlatform.linux-kernel.target}",
            kernel.display().to_string(),
        ),
        (
            "${guestModule}/lib/modules/${guestKernel.modDirVersion}/extra/vmbench.ko",
            module.display().to_string(),
        ),
        ("${guestBusybox}/bin/busybox", busybox.display().to_string()),
        ("$out", out.display().to_string()),
    ]
    .into_iter()
    .collect();
    let argv: Vec<String> = words
        .iter()
        .map(|w| match stand_ins.get(w.as_str()) {
            Some(s) => s.clone(),
            None => {
                assert!(
                    !w.contains('$'),
                    "flake.nix's image build uses {w:?}, which this test has no Debian stand-in for: add one"
                );
                w.clone()
            }
        })
        .collect();

    let run = Command::new(&argv[0]).args(&argv[1..]).output().unwrap();
    assert!(
        run.status.success(),
        "{argv:?}:\n{}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    for f in ["bzImage", "initrd", "cmdline", "manifest.json"] {
        assert!(out.join(f).is_file(), "{f} missing from the image");
    }
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(manifest["kernel_release"], release.as_str());
    assert_eq!(manifest["module"], module.display().to_string().as_str());
    assert_eq!(manifest["busybox"], "/bin/busybox");
    let initrd = std::fs::metadata(out.join("initrd")).unwrap().len();
    assert_eq!(manifest["initrd_bytes"], initrd);
    assert!(
        initrd < MAX_INITRD_BYTES,
        "initrd is {initrd} bytes, over {MAX_INITRD_BYTES}"
    );
    let agent_bytes = manifest["agent_bytes"].as_u64().unwrap();
    assert_eq!(
        manifest["agent_source"],
        agent.display().to_string().as_str(),
        "the image's /init is the agent-only binary"
    );
    let unstripped = std::fs::metadata(&agent).unwrap().len();
    assert!(
        agent_bytes < unstripped / 4,
        "agent not stripped: {agent_bytes} of {unstripped} bytes"
    );
    let memory = manifest["memory_mib"].as_u64().unwrap();
    assert!((256..512).contains(&memory), "memory_mib {memory}");
    eprintln!(
        "flake image: initrd {initrd} bytes (limit {MAX_INITRD_BYTES}), agent {agent_bytes} bytes stripped, guest RAM {memory} MiB"
    );

    // The image boots to the agent's handshake with the RAM it asks for.
    let boot = Command::new(&vmbench)
        .args([
            "vm",
            "boot",
            "--accel",
            "tcg",
            "--json",
            "--boot-timeout",
            "240",
        ])
        .arg("--qemu")
        .arg(qemu)
        .arg("--image")
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&boot.stderr);
    assert!(boot.status.success(), "{stderr}");
    let v: serde_json::Value = serde_json::from_slice(&boot.stdout).unwrap();
    assert_eq!(v["guest"]["kernel_release"], release.as_str());
    assert_eq!(v["memory_mib"], memory);
    assert_eq!(
        v["guest"]["mapping"], "wb",
        "the module maps the region write-back: {v}"
    );
    assert!(v["qemu_start_to_ready_ms"].as_f64().unwrap() > 0.0);
}
