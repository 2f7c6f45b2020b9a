//! A run's output directory — what users publish:
//!
//! ```text
//! report.md          the report (rendered from results.json)
//! results.json       the run record (vmbench_results::RunRecord), schema-versioned
//! vmexit.csv shm.csv one summary line per measurement
//! plots/*.svg        CDFs, drift series, the shm bandwidth curve
//! MANIFEST.sha256    sha256sum of every file above
//! report.sig         optional SSHSIG over MANIFEST.sha256 (namespace vmbench-report)
//! ```

pub mod compare;
pub mod csv;
pub mod manifest;
pub mod markdown;
pub mod plots;
pub mod sign;

use std::path::{Path, PathBuf};
use vmbench_results::{RUN_SCHEMA_VERSION, RunRecord};

/// Why writing, reading, signing or verifying a report directory failed.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// results.json could not be read or written as a run record.
    #[error("results.json: {0}")]
    Json(String),
    /// A plot could not be drawn.
    #[error("plot: {0}")]
    Plot(String),
    /// MANIFEST.sha256 is missing or malformed.
    #[error("manifest: {0}")]
    Manifest(String),
    /// The signing key could not be used.
    #[error("key: {0}")]
    Key(String),
    /// The signature does not verify.
    #[error("signature: {0}")]
    BadSignature(String),
    /// Files differ from what MANIFEST.sha256 lists.
    #[error("files do not match MANIFEST.sha256: {0}")]
    Tampered(String),
}

impl PublishError {
    /// An I/O error on `path`.
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        PublishError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// The run record's file name in a report directory.
pub const RESULTS: &str = "results.json";
/// The rendered report's file name.
pub const REPORT: &str = "report.md";

/// Writes results.json, then renders everything else from it, then the manifest.
pub fn write_dir(r: &RunRecord, dir: &Path) -> Result<(), PublishError> {
    std::fs::create_dir_all(dir).map_err(|e| PublishError::io(dir, e))?;
    let json = serde_json::to_string_pretty(r).map_err(|e| PublishError::Json(e.to_string()))?;
    let path = dir.join(RESULTS);
    std::fs::write(&path, json + "\n").map_err(|e| PublishError::io(&path, e))?;
    render_dir(dir)
}

/// Re-renders report.md, the CSVs and the plots from results.json, and
/// rewrites the manifest (an existing signature no longer matches and is removed).
pub fn render_dir(dir: &Path) -> Result<(), PublishError> {
    let r = load(dir)?;
    let plots_dir = dir.join("plots");
    if plots_dir.is_dir() {
        std::fs::remove_dir_all(&plots_dir).map_err(|e| PublishError::io(&plots_dir, e))?;
    }
    let plots = plots::write_all(&r, dir)?;
    let md = markdown::render(&r, &plots);
    let path = dir.join(REPORT);
    std::fs::write(&path, md).map_err(|e| PublishError::io(&path, e))?;
    csv::write_all(&r, dir)?;
    let sig = dir.join(manifest::SIGNATURE);
    if sig.exists() {
        std::fs::remove_file(&sig).map_err(|e| PublishError::io(&sig, e))?;
    }
    manifest::write(dir)?;
    Ok(())
}

/// Reads a directory's results.json, refusing other schema versions.
pub fn load(dir: &Path) -> Result<RunRecord, PublishError> {
    let path = dir.join(RESULTS);
    let text = std::fs::read_to_string(&path).map_err(|e| PublishError::io(&path, e))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| PublishError::Json(e.to_string()))?;
    let version = v.get("schema_version").and_then(|x| x.as_u64());
    if version != Some(u64::from(RUN_SCHEMA_VERSION)) {
        return Err(PublishError::Json(format!(
            "schema_version {version:?}; this vmbench reads version {RUN_SCHEMA_VERSION}"
        )));
    }
    let mut record: RunRecord =
        serde_json::from_value(v).map_err(|e| PublishError::Json(e.to_string()))?;
    record.results.upgrade();
    Ok(record)
}
