//! Which vmbench this is: the version, the commit it was built from, whether
//! tracked files differed from that commit, and the rustc that compiled it
//! (computed by the crate's build script). `vmbench --version`, results.json
//! and the report's Reproduce section all show it.

use vmbench_results::BuildRecord;

/// `vmbench --version`: `0.1.0 (commit 0123abc…, dirty, rustc 1.88.0 …)`.
pub const LONG_VERSION: &str = env!("VMBENCH_BUILD_LONG_VERSION");

/// The build as results.json records it.
pub fn build_record() -> BuildRecord {
    BuildRecord {
        version: env!("CARGO_PKG_VERSION").into(),
        commit: env!("VMBENCH_BUILD_COMMIT").into(),
        dirty: env!("VMBENCH_BUILD_DIRTY") == "true",
        rustc: env!("VMBENCH_BUILD_RUSTC").into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the build script recorded is what it was given: `VMBENCH_COMMIT`
    /// as Nix sets it (`rev`, or `dirtyRev` ending in `-dirty`), else the
    /// checkout's HEAD, else "unknown".
    #[test]
    fn the_build_identity_is_the_commit_the_build_was_given() {
        let b = build_record();
        assert_eq!(b.version, env!("CARGO_PKG_VERSION"));
        assert!(b.rustc.starts_with("rustc "), "{}", b.rustc);
        match option_env!("VMBENCH_COMMIT").filter(|c| !c.trim().is_empty()) {
            Some(c) => {
                let c = c.trim();
                assert_eq!(b.dirty, c.ends_with("-dirty"));
                assert_eq!(b.commit, c.trim_end_matches("-dirty"));
            }
            None => assert!(
                b.commit == "unknown"
                    || (b.commit.len() == 40 && b.commit.chars().all(|c| c.is_ascii_hexdigit())),
                "{}",
                b.commit
            ),
        }
        assert!(LONG_VERSION.contains(&format!("commit {}", b.commit)));
        assert_eq!(LONG_VERSION.contains(", dirty"), b.dirty);
    }
}
