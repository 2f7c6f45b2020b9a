//! Fingerprints the sources of the guest agent (`vmbench-agent`): the crates
//! it is built from, its entry point and the lock file. Both binaries carry
//! the fingerprint ([`AGENT_SOURCES`](src/lib.rs)), so `vmbench image build`
//! can tell a `vmbench-agent` built from these sources from one left over
//! by an earlier build, and a cached image from one made by another
//! vmbench.
//!
//! The hash is std's SipHash with its fixed keys: the same sources give the
//! same fingerprint in every build by the same toolchain (Nix builds stay
//! reproducible), and nothing here needs a cryptographic hash.

use std::hash::{DefaultHasher, Hasher};
use std::path::{Path, PathBuf};

/// What the agent is built from, relative to this crate's directory.
const SOURCES: &[&str] = &[
    "../abi",
    "../proto",
    "../host",
    "../results",
    "../shm",
    "../guest",
    "../cli/src/bin/vmbench-agent.rs",
    "../../Cargo.lock",
];

/// Every file under `path`, each with its name as `shown` (the SOURCES
/// entry and the path below it: the same on every machine).
fn files(path: &Path, shown: &str, out: &mut Vec<(String, PathBuf)>) {
    if path.is_dir() {
        let Ok(entries) = std::fs::read_dir(path) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            // Build outputs never count (a crate's own target/, if any).
            if name == "target" {
                continue;
            }
            files(&e.path(), &format!("{shown}/{name}"), out);
        }
    } else if path.is_file() {
        out.push((shown.to_string(), path.to_path_buf()));
    }
}

fn main() {
    let dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let mut all = Vec::new();
    for s in SOURCES {
        let p = dir.join(s);
        println!("cargo::rerun-if-changed={}", p.display());
        files(&p, s, &mut all);
    }
    all.sort();
    let mut h = DefaultHasher::new();
    for (shown, f) in &all {
        h.write(shown.as_bytes());
        h.write(&std::fs::read(f).unwrap_or_default());
    }
    println!("cargo::rustc-env=VMBENCH_AGENT_SOURCES={:016x}", h.finish());
}
