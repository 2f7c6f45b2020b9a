//! What only this package's integration tests can provide to
//! vmbench-testkit: the test build of `vmbench` and its target directory.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The guest image the boot tests use, with the test build of vmbench as its
/// agent; fails the test when QEMU or a kernel is missing.
pub fn guest_image() -> &'static Path {
    vmbench_testkit::guest_image(
        Path::new(env!("CARGO_BIN_EXE_vmbench")),
        &PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("guest-image"),
    )
}
