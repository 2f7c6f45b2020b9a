//! The OS-free micro-guest ELF (crates/microguest): built from this source
//! tree on demand. It is its own cargo workspace (no_std, panic=abort, PVH).

use std::path::PathBuf;
use std::process::Command;

/// Where the sources are in a checkout.
pub fn source_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../microguest")
}

/// Builds the ELF (a no-op when it is up to date) and returns its path.
pub fn build() -> Result<PathBuf, String> {
    let dir = source_dir();
    if !dir.join("Cargo.toml").exists() {
        return Err(format!(
            "the micro-guest sources are not at {} (a vmbench built outside its source tree): pass --micro-elf PATH",
            dir.display()
        ));
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
        .map_err(|e| {
            format!(
                "running cargo to build the micro-guest: {e} (pass --micro-elf to use a built one)"
            )
        })?;
    if !out.status.success() {
        return Err(format!(
            "building the micro-guest failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(dir.join("target/x86_64-unknown-linux-gnu/release/vmbench-microguest"))
}
