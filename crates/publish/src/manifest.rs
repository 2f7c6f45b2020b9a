//! `MANIFEST.sha256`: every file of the output directory in `sha256sum`
//! format, so `sha256sum -c MANIFEST.sha256` checks it with stock tools.

use crate::PublishError;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// The manifest's file name: `sha256sum` lines for every other file.
pub const MANIFEST: &str = "MANIFEST.sha256";
/// The signature's file name: SSHSIG over the manifest.
pub const SIGNATURE: &str = "report.sig";

/// Every regular file under `dir` except the manifest and the signature,
/// as sorted relative paths with `/` separators.
pub fn files(dir: &Path) -> Result<Vec<String>, PublishError> {
    let mut out = Vec::new();
    walk(dir, dir, &mut out)?;
    out.retain(|p| p != MANIFEST && p != SIGNATURE);
    out.sort();
    Ok(out)
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) -> Result<(), PublishError> {
    let entries = std::fs::read_dir(dir).map_err(|e| PublishError::io(dir, e))?;
    for e in entries {
        let e = e.map_err(|e| PublishError::io(dir, e))?;
        let path = e.path();
        let ft = e.file_type().map_err(|e| PublishError::io(&path, e))?;
        if ft.is_dir() {
            walk(root, &path, out)?;
        } else if ft.is_file() {
            let rel = path.strip_prefix(root).map_err(|_| {
                PublishError::Manifest(format!("{} is outside {}", path.display(), root.display()))
            })?;
            let rel = rel.to_string_lossy().replace('\\', "/");
            if rel.contains('\n') || rel.starts_with('-') {
                return Err(PublishError::Manifest(format!(
                    "file name {rel:?} cannot be listed in a sha256sum manifest"
                )));
            }
            out.push(rel);
        } else {
            return Err(PublishError::Manifest(format!(
                "{} is neither a file nor a directory (symlinks are not published)",
                path.display()
            )));
        }
    }
    Ok(())
}

/// The SHA-256 of a file, as lowercase hex.
pub fn sha256_file(path: &Path) -> Result<String, PublishError> {
    let bytes = std::fs::read(path).map_err(|e| PublishError::io(path, e))?;
    Ok(hex(&Sha256::digest(&bytes)))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Writes the manifest; returns its bytes (what a signature covers).
pub fn write(dir: &Path) -> Result<Vec<u8>, PublishError> {
    let mut text = String::new();
    for f in files(dir)? {
        text.push_str(&format!("{}  {f}\n", sha256_file(&dir.join(&f))?));
    }
    let path = dir.join(MANIFEST);
    std::fs::write(&path, &text).map_err(|e| PublishError::io(&path, e))?;
    Ok(text.into_bytes())
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
pub fn check(dir: &Path, manifest: &[u8]) -> Result<ManifestCheck, PublishError> {
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
        // Paths stay inside the directory.
        let rel = PathBuf::from(name);
        if rel.is_absolute()
            || rel
                .components()
                .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            return Err(PublishError::Manifest(format!(
                "line {}: path {name:?} leaves the directory",
                i + 1
            )));
        }
        listed.push(name.to_string());
        let path = dir.join(&rel);
        if !path.is_file() {
            c.missing.push(name.to_string());
        } else if sha256_file(&path)? == hash.to_ascii_lowercase() {
            c.ok.push(name.to_string());
        } else {
            c.changed.push(name.to_string());
        }
    }
    for f in files(dir)? {
        if !listed.contains(&f) {
            c.unlisted.push(f);
        }
    }
    Ok(c)
}
