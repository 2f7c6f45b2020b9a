//! What vmbench's integration tests share.
//!
//! Tests that need something beyond Rust (QEMU, a Linux kernel, busybox,
//! bubblewrap, Nix, ssh-keygen, KVM, a second CPU) are
//! `#[ignore = "needs …"]`: a plain `cargo test` lists them as ignored
//! rather than passing them silently. `cargo test -- --include-ignored`
//! (what the README's test command and CI run, after
//! `scripts/install-deps --dev`) runs them, and then a missing prerequisite
//! is a failure that names the package to install, never a quiet pass.
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// The QEMU the boot tests run (Debian's qemu-system-x86).
pub const QEMU: &str = "/usr/bin/qemu-system-x86_64";

/// Fails the test unless every `(present, package)` holds, naming the first
/// missing package and how to install it.
pub fn require(needs: &[(bool, &str)]) {
    if let Some((_, package)) = needs.iter().find(|(present, _)| !present) {
        panic!(
            "this test needs {package}, which is missing here: `scripts/install-deps --dev` \
             installs everything the tests use (the test is #[ignore]d, so a plain \
             `cargo test` skips it)"
        );
    }
}

/// Whether `tool` can be started (`tool --version`).
pub fn have_tool(tool: &str) -> bool {
    std::process::Command::new(tool)
        .arg("--version")
        .output()
        .is_ok()
}

/// Whether QEMU is installed.
pub fn have_qemu() -> bool {
    Path::new(QEMU).exists()
}

/// Fails the test unless QEMU and a Linux kernel for the guest are there.
pub fn require_guest_boot() {
    require(&[
        (have_qemu(), "qemu-system-x86"),
        (
            vmbench_vm::image::default_kernel().is_ok(),
            "linux-image-amd64",
        ),
    ]);
}

/// The guest image the boot tests use, with `agent` (the test build of
/// vmbench) as its agent, built into `dir` once per test binary. Fails the
/// test when QEMU or a kernel is missing.
pub fn guest_image(agent: &Path, dir: &Path) -> &'static Path {
    static IMAGE: OnceLock<PathBuf> = OnceLock::new();
    require_guest_boot();
    IMAGE.get_or_init(|| {
        let mut o = vmbench_vm::ImageOptions::new(dir);
        o.agent = Some(agent.to_path_buf());
        vmbench_vm::image::build(&o).unwrap();
        dir.to_path_buf()
    })
}

/// Processes whose command line mentions `needle` (QEMU gets our run dir and
/// shm path in its arguments): what a test checks is left behind.
pub fn processes_mentioning(needle: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline"))
            && String::from_utf8_lossy(&cmdline).contains(needle)
        {
            out.push(pid);
        }
    }
    out
}

/// A measurement's id within its suite, from results JSON
/// (`user-fast` for `vmexit.user-fast`).
pub fn local_id(measurement: &serde_json::Value) -> String {
    let id = measurement["id"].as_str().unwrap();
    id.split_once('.')
        .map_or(id, |(_, local)| local)
        .to_string()
}
