//! The journal: the original value of everything `apply` changes, on disk
//! before the first change, so `restore` works even after a SIGKILL.

use crate::IsolateError;
use crate::model::{Change, ISOLATE_SCHEMA_VERSION};
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use vmbench_host::SysRoot;

/// Default location, under the root (tmpfs on a real host: gone after a
/// reboot, which also undoes every runtime knob).
pub const DEFAULT_JOURNAL: &str = "/run/vmbench/isolate-journal.json";

/// The journal's path under `root`.
pub fn default_path(root: &SysRoot) -> PathBuf {
    root.path(DEFAULT_JOURNAL)
}

/// One journaled change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalEntry {
    /// The knob it belongs to.
    pub knob: String,
    /// The change, with the original value to restore.
    pub change: Change,
}

/// The journal of original values, written before the first change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Journal {
    /// [`crate::model::ISOLATE_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The process that applied (a live one still owns the changes).
    pub pid: u32,
    /// Seconds since the Unix epoch.
    pub created_unix: u64,
    /// The root the changes were made under.
    pub root: String,
    /// The benchmark CPUs of the run.
    pub bench_cpus: String,
    /// In apply order; restore walks it backwards.
    pub entries: Vec<JournalEntry>,
}

impl Journal {
    /// Reads the journal at `path`; None if there is none.
    pub fn load(path: &Path) -> Result<Option<Journal>, IsolateError> {
        let text = match fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(IsolateError::Journal {
                    path: path.display().to_string(),
                    why: e.to_string(),
                });
            }
        };
        let j: Journal = serde_json::from_str(&text).map_err(|e| IsolateError::Journal {
            path: path.display().to_string(),
            why: format!(
                "not a vmbench journal ({e}); it is JSON listing original values: restore them by hand, then delete it"
            ),
        })?;
        if j.schema_version != ISOLATE_SCHEMA_VERSION {
            return Err(IsolateError::Journal {
                path: path.display().to_string(),
                why: format!(
                    "schema version {} (this vmbench reads {ISOLATE_SCHEMA_VERSION})",
                    j.schema_version
                ),
            });
        }
        Ok(Some(j))
    }

    /// Writes atomically: temp file, fsync, rename, fsync of the directory.
    pub fn store(&self, path: &Path) -> Result<(), IsolateError> {
        let err = |e: std::io::Error| IsolateError::Journal {
            path: path.display().to_string(),
            why: e.to_string(),
        };
        let dir = path.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(dir).map_err(err)?;
        let tmp = path.with_extension("json.tmp");
        {
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)
                .map_err(err)?;
            let text = serde_json::to_string_pretty(self).map_err(|e| IsolateError::Journal {
                path: path.display().to_string(),
                why: e.to_string(),
            })?;
            f.write_all(text.as_bytes()).map_err(err)?;
            f.sync_all().map_err(err)?;
        }
        fs::rename(&tmp, path).map_err(err)?;
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }

    /// Deletes the journal (none is fine).
    pub fn remove(path: &Path) -> Result<(), IsolateError> {
        match fs::remove_file(path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(IsolateError::Journal {
                path: path.display().to_string(),
                why: e.to_string(),
            }),
        }
    }
}
