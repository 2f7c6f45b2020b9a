//! Helpers shared by the integration tests that boot guests.
#![allow(dead_code, clippy::unwrap_used)]

/// Processes whose command line mentions `needle` (QEMU gets our run dir and
/// shm path in its arguments): what a test checks is left behind.
pub fn processes_mentioning(needle: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(c) = std::fs::read(e.path().join("cmdline"))
            && String::from_utf8_lossy(&c).contains(needle)
        {
            out.push(pid);
        }
    }
    out
}

/// A measurement's row id without the `vmexit.` prefix.
pub fn id_of(m: &serde_json::Value) -> String {
    m["id"]
        .as_str()
        .unwrap()
        .trim_start_matches("vmexit.")
        .to_string()
}

pub const QEMU: &str = "/usr/bin/qemu-system-x86_64";

/// Whether every `(installed, package)` holds. Outside CI a missing package
/// makes the test say it skipped (and what it would have run); under CI it
/// is a failure, since .ci/run installs everything the tests use.
pub fn prerequisites(have: &[(bool, &str)], to_run: &str) -> bool {
    let Some((_, pkg)) = have.iter().find(|(ok, _)| !ok) else {
        return true;
    };
    assert!(
        std::env::var_os("CI").is_none(),
        "{pkg} is missing in CI: .ci/run must install it (scripts/install-deps --dev)"
    );
    eprintln!("skipped: install {pkg} to run {to_run}");
    false
}

/// Whether `tool --version` runs.
pub fn have_tool(tool: &str) -> bool {
    std::process::Command::new(tool)
        .arg("--version")
        .output()
        .is_ok()
}

/// The guest image the boot tests use (the test build of vmbench as its
/// agent), built once per test binary. None, with a note, when QEMU or a
/// kernel is missing outside CI; under CI that is a failure.
pub fn guest_image() -> Option<&'static std::path::Path> {
    use std::path::{Path, PathBuf};
    use std::sync::OnceLock;
    static IMAGE: OnceLock<Option<PathBuf>> = OnceLock::new();
    IMAGE
        .get_or_init(|| {
            if !prerequisites(
                &[
                    (Path::new(QEMU).exists(), "qemu-system-x86"),
                    (
                        vmbench_vm::image::default_kernel().is_ok(),
                        "linux-image-amd64",
                    ),
                ],
                "the guest boot tests",
            ) {
                return None;
            }
            let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("guest-image");
            let mut o = vmbench_vm::ImageOptions::new(&dir);
            o.agent = Some(PathBuf::from(env!("CARGO_BIN_EXE_vmbench")));
            vmbench_vm::image::build(&o).unwrap();
            Some(dir)
        })
        .as_deref()
}
