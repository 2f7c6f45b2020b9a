//! `MANIFEST.sha256`: every file of the output directory in `sha256sum`
//! format, so `sha256sum -c MANIFEST.sha256` checks it with stock tools.
//!
//! The directory is read through its descriptor ([`OutputDir`]): links,
//! FIFOs and devices are refused (never followed, never opened in a way
//! that blocks), and files are hashed as a stream, so a huge file costs
//! time, not memory.

use crate::PublishError;
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::Path;
use vmbench_host::files::{EntryKind, OutputDir};

/// The manifest's file name: `sha256sum` lines for every other file.
pub const MANIFEST: &str = "MANIFEST.sha256";
/// The signature's file name: SSHSIG over the manifest.
pub const SIGNATURE: &str = "report.sig";
/// The largest manifest read (a run lists a few hundred files).
pub const MAX_MANIFEST_BYTES: u64 = 4 << 20;
/// How deep a report directory's subdirectories may go (it has one level).
const MAX_DEPTH: usize = 8;

/// Every regular file under `dir` except the manifest and the signature,
/// as sorted relative paths with `/` separators.
pub fn files(dir: &OutputDir) -> Result<Vec<String>, PublishError> {
    let mut out = Vec::new();
    walk(dir, "", 0, &mut out)?;
    out.sort();
    Ok(out)
}

fn walk(
    dir: &OutputDir,
    prefix: &str,
    depth: usize,
    out: &mut Vec<String>,
) -> Result<(), PublishError> {
    if depth > MAX_DEPTH {
        return Err(PublishError::Manifest(format!(
            "{} nests directories deeper than {MAX_DEPTH}",
            dir.path().display()
        )));
    }
    for (name, kind) in dir.entries()? {
        // The manifest and the signature are not listed, whatever stands
        // at their names now: both are replaced by rename (or removed),
        // never written through.
        if prefix.is_empty() && (name == MANIFEST || name == SIGNATURE) {
            continue;
        }
        let rel = format!("{prefix}{name}");
        match kind {
            EntryKind::Dir => walk(
                &dir.existing_subdir(&name)?,
                &format!("{rel}/"),
                depth + 1,
                out,
            )?,
            EntryKind::File => {
                if rel.contains('\n') || rel.contains('\\') || rel.starts_with('-') {
                    return Err(PublishError::Manifest(format!(
                        "file name {rel:?} cannot be listed in a sha256sum manifest"
                    )));
                }
                out.push(rel);
            }
            EntryKind::Other => {
                return Err(PublishError::Manifest(format!(
                    "{} is neither a file nor a directory (links, FIFOs and devices are not published)",
                    dir.path().join(&name).display()
                )));
            }
        }
    }
    Ok(())
}

/// Opens `rel` (`a/b/c`) under `dir`, every component without following a link.
fn open_rel(dir: &OutputDir, rel: &str) -> Result<std::fs::File, PublishError> {
    let mut parts: Vec<&str> = rel.split('/').collect();
    let name = parts.pop().unwrap_or_default();
    let mut sub: Option<OutputDir> = None;
    for p in parts {
        let next = sub.as_ref().unwrap_or(dir).existing_subdir(p)?;
        sub = Some(next);
    }
    Ok(sub.as_ref().unwrap_or(dir).open_file(name)?)
}

/// The SHA-256 of the file `rel` under `dir`, as lowercase hex, read as a stream.
pub fn sha256_file(dir: &OutputDir, rel: &str) -> Result<String, PublishError> {
    let mut f = open_rel(dir, rel)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| PublishError::io(&dir.path().join(rel), e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Writes the manifest; returns its bytes (what a signature covers). A
/// file written or read through `dir` in this process (its ledger) is
/// listed with the hash of those bytes; any other file with the hash of
/// what is on disk.
pub fn write(dir: &OutputDir) -> Result<Vec<u8>, PublishError> {
    let mut text = String::new();
    for f in files(dir)? {
        let hash = match dir.ledger().and_then(|l| l.sha256(&f)) {
            Some(h) => hex(&h),
            None => sha256_file(dir, &f)?,
        };
        text.push_str(&format!("{hash}  {f}\n"));
    }
    dir.write(MANIFEST, text.as_bytes())?;
    Ok(text.into_bytes())
}

/// Rewrites the manifest of the directory at `path`.
pub fn write_at(path: &Path) -> Result<Vec<u8>, PublishError> {
    write(&OutputDir::open(path)?)
}

/// Reads the manifest (bounded; not through a link).
pub fn read(dir: &OutputDir) -> Result<Vec<u8>, PublishError> {
    Ok(dir.read(MANIFEST, MAX_MANIFEST_BYTES)?)
}

/// What a check of the directory against its manifest found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ManifestCheck {
    /// Files whose hash matches.
    pub ok: Vec<String>,
    /// Files whose hash differs.
    pub changed: Vec<String>,
    /// Files listed but absent.
    pub missing: Vec<String>,
    /// Files present but not listed.
    pub unlisted: Vec<String>,
}

impl ManifestCheck {
    /// Whether every listed file is there and unchanged, and nothing else is.
    pub fn passed(&self) -> bool {
        self.changed.is_empty() && self.missing.is_empty() && self.unlisted.is_empty()
    }
}

/// Checks every listed hash, and that nothing unlisted was added.
pub fn check(dir: &OutputDir, manifest: &[u8]) -> Result<ManifestCheck, PublishError> {
    let text = std::str::from_utf8(manifest)
        .map_err(|_| PublishError::Manifest("MANIFEST.sha256 is not UTF-8".into()))?;
    let mut c = ManifestCheck::default();
    let mut listed = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let (hash, name) = line
            .split_once("  ")
            .ok_or_else(|| PublishError::Manifest(format!("line {}: not `HASH  PATH`", i + 1)))?;
        if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(PublishError::Manifest(format!(
                "line {}: bad SHA-256 {hash:?}",
                i + 1
            )));
        }
        // Paths stay inside the directory: relative, plain components.
        if name.is_empty()
            || name.starts_with('/')
            || name
                .split('/')
                .any(|p| p.is_empty() || p == "." || p == "..")
        {
            return Err(PublishError::Manifest(format!(
                "line {}: path {name:?} leaves the directory",
                i + 1
            )));
        }
        listed.push(name.to_string());
        match sha256_file(dir, name) {
            Ok(h) if h == hash.to_ascii_lowercase() => c.ok.push(name.to_string()),
            Ok(_) => c.changed.push(name.to_string()),
            Err(PublishError::Files(e)) if e.io_kind() == Some(std::io::ErrorKind::NotFound) => {
                c.missing.push(name.to_string())
            }
            Err(e) => return Err(e),
        }
    }
    for f in files(dir)? {
        if !listed.contains(&f) {
            c.unlisted.push(f);
        }
    }
    Ok(c)
}
