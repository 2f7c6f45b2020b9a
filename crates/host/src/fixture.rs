//! Fixture trees for tests: one text file describes a whole /proc + /sys tree.
//!
//! ```text
//! # comment
//! === /proc/cmdline
//! quiet isolcpus=2-3
//! === /sys/devices/system/cpu/cpu{0-3}/cpufreq/scaling_governor
//! powersave
//! === /sys/module/kvm_intel/
//! ```
//! A header names a file; the lines up to the next header are its content
//! (`$n` in them becomes the number from a `{list}` in the path, which makes
//! one file per listed CPU). A path ending in `/` is an empty directory.

use crate::CpuList;
use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The repository's `fixtures/hosts` directory.
pub fn hosts_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/hosts")
}

/// Materializes the named host fixtures (`fixtures/hosts/<name>.tree`) into
/// `dir`, later ones overlaying earlier ones.
pub fn load(names: &[&str], dir: &Path) -> io::Result<()> {
    for n in names {
        let text = fs::read_to_string(hosts_dir().join(format!("{n}.tree")))?;
        materialize(&text, dir)?;
    }
    Ok(())
}

/// Every file under `dir` (directories themselves are not compared):
/// relative path → bytes. Two equal snapshots are byte-identical trees.
/// vmbench's host lock file (`run/vmbench/lock`) is left out: it stays once
/// made, as lock files must (removing one on release would race a waiter).
pub fn snapshot(dir: &Path) -> io::Result<BTreeMap<PathBuf, Vec<u8>>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d)? {
            let p = e?.path();
            let rel = p.strip_prefix(dir).unwrap_or(&p).to_path_buf();
            if p.is_dir() {
                stack.push(p);
            } else if rel != Path::new("run/vmbench/lock") {
                out.insert(rel, fs::read(&p)?);
            }
        }
    }
    Ok(out)
}

/// Writes the tree described by `spec` under `dir`.
pub fn materialize(spec: &str, dir: &Path) -> io::Result<()> {
    let bad = |msg: String| io::Error::new(io::ErrorKind::InvalidData, msg);
    let mut entries: Vec<(String, Vec<String>)> = Vec::new();
    for line in spec.lines() {
        if let Some(path) = line.strip_prefix("=== ") {
            entries.push((path.trim().to_string(), Vec::new()));
        } else if let Some((_, body)) = entries.last_mut() {
            body.push(line.to_string());
        } else if !(line.trim().is_empty() || line.starts_with('#')) {
            return Err(bad(format!(
                "fixture text before the first header: {line:?}"
            )));
        }
    }
    for (path, body) in entries {
        let (expanded, numbers) = expand(&path)?;
        for (p, n) in expanded.iter().zip(numbers) {
            let target = dir.join(p.trim_start_matches('/'));
            if p.ends_with('/') {
                fs::create_dir_all(&target)?;
                continue;
            }
            if let Some(parent) = target.parent() {
                fs::create_dir_all(parent)?;
            }
            let mut text = body.join("\n");
            if let Some(n) = n {
                text = text.replace("$n", &n.to_string());
            }
            // Keep blank lines inside a file, drop the trailing ones before the
            // next header, and end with one newline as kernel files do.
            let text = text.trim_end_matches('\n').to_string();
            fs::write(
                &target,
                if text.is_empty() {
                    String::new()
                } else {
                    text + "\n"
                },
            )?;
        }
    }
    Ok(())
}

/// Expands one `{cpulist}` group in a path.
fn expand(path: &str) -> io::Result<(Vec<String>, Vec<Option<u32>>)> {
    let bad = |why: String| io::Error::new(io::ErrorKind::InvalidData, why);
    let (Some(open), Some(close)) = (path.find('{'), path.find('}')) else {
        return Ok((vec![path.to_string()], vec![None]));
    };
    if close < open {
        return Err(bad(format!("bad brace group in {path:?}")));
    }
    let list = CpuList::parse(&path[open + 1..close]).map_err(|e| bad(format!("{path:?}: {e}")))?;
    let mut paths = Vec::new();
    let mut nums = Vec::new();
    for n in list.iter() {
        paths.push(format!("{}{n}{}", &path[..open], &path[close + 1..]));
        nums.push(Some(n));
    }
    Ok((paths, nums))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_files_dirs_and_expansions() {
        let dir = tempfile::tempdir().unwrap();
        let spec = "# a host\n=== /proc/cmdline\nquiet\n\n=== /sys/c/cpu{0-1}/id\n$n\n=== /sys/module/kvm/\n=== /empty\n";
        materialize(spec, dir.path()).unwrap();
        let r = |p: &str| fs::read_to_string(dir.path().join(p)).unwrap();
        assert_eq!(r("proc/cmdline"), "quiet\n");
        assert_eq!(r("sys/c/cpu1/id"), "1\n");
        assert!(dir.path().join("sys/module/kvm").is_dir());
        assert_eq!(r("empty"), "");
    }
}
