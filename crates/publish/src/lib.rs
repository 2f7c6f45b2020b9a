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
pub mod export;
pub mod html;
pub mod json;
pub mod manifest;
pub mod markdown;
pub mod plots;
pub mod sign;
pub mod significance;
mod upgrade;

use std::path::{Path, PathBuf};
use vmbench_host::files::{Ledger, OutputDir};
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
    /// An export could not be written (a histogram in results.json that
    /// does not decode, a row id that cannot be a tag).
    #[error("export: {0}")]
    Export(String),
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
    /// A file of the directory is not what vmbench writes or reads there
    /// (a link, a FIFO, too large), or could not be made.
    #[error(transparent)]
    Files(#[from] vmbench_host::files::FileError),
    /// A directory given as a run's output is not one: no results.json, or
    /// a results.json that is not a regular file.
    #[error("{}: {why}", dir.display())]
    NotARun {
        /// The directory (or its results.json) as given.
        dir: PathBuf,
        /// What is wrong, and what to give instead.
        why: &'static str,
    },
    /// A compared run is signed and its signature does not verify.
    #[error("{}: its signature does not verify", dir.display())]
    SignatureOf {
        /// The run's directory.
        dir: PathBuf,
        /// Why it does not verify.
        #[source]
        source: Box<PublishError>,
    },
    /// A file given on the command line (not one of the directory's) is not
    /// one vmbench can read: a FIFO, a link's target that is not a file,
    /// too large, missing.
    #[error(transparent)]
    Input(vmbench_host::files::FileError),
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
/// The same report as one self-contained HTML page.
pub const REPORT_HTML: &str = "report.html";
/// The largest results.json read (a full run's is a few MB).
pub const MAX_RESULTS_BYTES: u64 = 256 << 20;

/// Writes results.json, then renders everything else from it, then the
/// manifest; returns the manifest's bytes (what a signature must cover).
/// Every file is written through the directory's descriptor
/// ([`OutputDir`]): a link someone placed in `dir` is replaced, never
/// written through. The manifest lists the hashes of the bytes this
/// process wrote, not of what is on disk by then: a file swapped after it
/// was written fails the check against it.
pub fn write_dir(r: &RunRecord, dir: &Path) -> Result<Vec<u8>, PublishError> {
    let out = OutputDir::create(dir)?.recording(&Ledger::new());
    let json = json::to_text(r).map_err(|e| PublishError::Json(e.to_string()))?;
    out.write(RESULTS, json.as_bytes())?;
    render_in(&out)
}

/// Re-renders report.md, the CSVs and the plots from results.json, and
/// rewrites the manifest (an existing signature no longer matches and is
/// removed); returns the manifest's bytes.
pub fn render_dir(dir: &Path) -> Result<Vec<u8>, PublishError> {
    render_in(&OutputDir::open(dir)?.recording(&Ledger::new()))
}

fn render_in(out: &OutputDir) -> Result<Vec<u8>, PublishError> {
    let (r, read_version) = load_versioned(out)?;
    if read_version < u64::from(RUN_SCHEMA_VERSION) {
        // Written by an older vmbench: the record in this version's format,
        // so that what the manifest covers is what this report renders.
        let json = json::to_text(&r).map_err(|e| PublishError::Json(e.to_string()))?;
        out.write(RESULTS, json.as_bytes())?;
    }
    // What a write killed before its rename left is not part of the report.
    out.remove_stale_temporaries()?;
    if out.contains("plots") {
        // remove_dir_all removes a link itself, never what it points to.
        let plots = out.path().join("plots");
        std::fs::remove_dir_all(&plots).map_err(|e| PublishError::io(&plots, e))?;
        out.forget_subdir("plots");
    }
    let plots = plots::write_all(&r, out)?;
    let md = markdown::render(&r, &plots);
    out.write(REPORT, md.as_bytes())?;
    let title = md
        .lines()
        .next()
        .unwrap_or("vmbench report")
        .trim_start_matches("# ");
    out.write(REPORT_HTML, html::render(&md, title, &plots).as_bytes())?;
    csv::write_all(&r, out)?;
    out.remove(manifest::SIGNATURE)?;
    manifest::write(out)
}

/// Whether `dir` is a run's output directory: its results.json exists and
/// is a regular file (a link, FIFO or device is never read as a run's
/// results).
pub fn check_run_dir(dir: &Path) -> Result<(), PublishError> {
    let results = dir.join(RESULTS);
    match results.symlink_metadata() {
        Err(_) => Err(PublishError::NotARun {
            dir: dir.to_path_buf(),
            why: "no results.json here (give the output directory of a `vmbench run`)",
        }),
        Ok(m) if !m.file_type().is_file() => Err(PublishError::NotARun {
            dir: results,
            why: "not a regular file (a link, FIFO or device is never read as a run's results)",
        }),
        Ok(_) => Ok(()),
    }
}

/// Reads a directory's results.json, refusing other schema versions.
pub fn load(dir: &Path) -> Result<RunRecord, PublishError> {
    load_from(&OutputDir::open(dir)?)
}

fn load_from(out: &OutputDir) -> Result<RunRecord, PublishError> {
    load_versioned(out).map(|(r, _)| r)
}

/// The record, upgraded to this version's shape, and the schema version
/// the file was written with.
fn load_versioned(out: &OutputDir) -> Result<(RunRecord, u64), PublishError> {
    let bytes = out.read(RESULTS, MAX_RESULTS_BYTES)?;
    let mut v: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| PublishError::Json(e.to_string()))?;
    let read_version = v
        .get("schema_version")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0);
    upgrade::to_current(&mut v);
    let version = v.get("schema_version").and_then(|x| x.as_u64());
    if version != Some(u64::from(RUN_SCHEMA_VERSION)) {
        return Err(PublishError::Json(format!(
            "schema_version {version:?}; this vmbench reads version {RUN_SCHEMA_VERSION}"
        )));
    }
    let mut record: RunRecord =
        serde_json::from_value(v).map_err(|e| PublishError::Json(e.to_string()))?;
    record.results.upgrade();
    if read_version == 1 {
        // Version 1 wrote one copy of a warning per repeat that had it.
        for m in &mut record.results.measurements {
            let mut merged = Vec::new();
            for w in std::mem::take(&mut m.warnings) {
                vmbench_results::warning::add(&mut merged, w);
            }
            m.warnings = merged;
        }
    }
    check_plausible(&record)?;
    Ok((record, read_version))
}

/// TSC frequencies a machine can have, in kHz (1 MHz to 100 GHz).
const TSC_KHZ_RANGE: std::ops::RangeInclusive<f64> = 1e3..=1e8;

/// Refuses values no run writes, which would make figures meaningless (a
/// TSC frequency of 1e300 kHz, a transfer of 0 bytes): results.json may
/// come from anyone.
fn check_plausible(r: &RunRecord) -> Result<(), PublishError> {
    for m in &r.results.measurements {
        if let Some(khz) = m.tsc_khz
            && !TSC_KHZ_RANGE.contains(&khz)
        {
            return Err(PublishError::Json(format!(
                "{}: tsc_khz {khz} is not a TSC frequency (1 MHz to 100 GHz)",
                m.id
            )));
        }
        if m.bytes == Some(0) {
            return Err(PublishError::Json(format!(
                "{}: a transfer of 0 bytes",
                m.id
            )));
        }
    }
    Ok(())
}
