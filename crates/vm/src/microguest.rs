//! The OS-free micro-guest ELF (crates/microguest): built from this source
//! tree on demand. It is its own cargo workspace (no_std, panic=abort, PVH).

use std::path::PathBuf;
use std::process::Command;

/// Where the sources are in a checkout.
pub fn source_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../microguest")
}

/// Why the micro-guest could not be built here.
#[derive(Debug, thiserror::Error)]
pub enum MicroGuestError {
    /// The sources are not where this build of vmbench was made.
    #[error(
        "the micro-guest sources are not at {0} (a vmbench built outside its source tree): pass --micro-elf PATH"
    )]
    NoSources(String),
    /// cargo could not be started.
    #[error("running cargo to build the micro-guest: {0} (pass --micro-elf to use a built one)")]
    Cargo(#[source] std::io::Error),
    /// cargo failed (its output).
    #[error("building the micro-guest failed:\n{0}")]
    Build(String),
}

/// Builds the ELF (a no-op when it is up to date) and returns its path.
pub fn build() -> Result<PathBuf, MicroGuestError> {
    let dir = source_dir();
    if !dir.join("Cargo.toml").exists() {
        return Err(MicroGuestError::NoSources(dir.display().to_string()));
    }
    // The parent cargo's settings (when run from `cargo test`) must not leak
    // into the micro-guest's own build.
    let out = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args(["build", "--release", "--quiet"])
        .current_dir(&dir)
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .output()
        .map_err(MicroGuestError::Cargo)?;
    if !out.status.success() {
        return Err(MicroGuestError::Build(
            String::from_utf8_lossy(&out.stderr).into_owned(),
        ));
    }
    Ok(dir.join("target/x86_64-unknown-linux-gnu/release/vmbench-microguest"))
}
