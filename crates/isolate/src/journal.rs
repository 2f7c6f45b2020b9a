//! The journal: the original value of everything `apply` changes, on disk
//! before the first change, so `restore` works even after a SIGKILL.

use crate::IsolateError;
use crate::model::Change;
use serde::{Deserialize, Serialize};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use vmbench_host::SysRoot;
use vmbench_host::files;

/// Default location, under the root, in the root-only state directory
/// ([`crate::lock::STATE_DIR`]; tmpfs on a real host: gone after a reboot,
/// which also undoes every runtime knob).
pub const DEFAULT_JOURNAL: &str = "/run/vmbench/isolate-journal.json";

/// The journal's path under `root`.
pub fn default_path(root: &SysRoot) -> PathBuf {
    root.path(DEFAULT_JOURNAL)
}

/// Version of the journal's JSON shape (a journal a crashed run left must
/// stay readable by the next vmbench).
pub const JOURNAL_SCHEMA_VERSION: u32 = 1;

/// One journaled change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalEntry {
    /// The knob it belongs to.
    pub knob: crate::model::KnobId,
    /// The change, with the original value to restore.
    pub change: Change,
}

/// The journal of original values, written before the first change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Journal {
    /// [`JOURNAL_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The process that applied (a live one still owns the changes).
    pub pid: u32,
    /// When that process started (clock ticks since boot): a live process
    /// with the pid but another start time is not it (the pid was reused).
    /// Absent in journals of earlier versions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid_start_ticks: Option<u64>,
    /// Seconds since the Unix epoch.
    pub created_unix: u64,
    /// The root the changes were made under.
    pub root: String,
    /// The benchmark CPUs of the run.
    pub bench_cpus: String,
    /// Clock ticks since boot when apply began: a task started since then
    /// whose affinity is one apply imposed on an ancestor inherited it, and
    /// restore widens it too. Absent in journals of earlier versions (and
    /// where /proc/uptime could not be read): then only journaled threads
    /// are put back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_start_ticks: Option<u64>,
    /// In apply order; restore walks it backwards.
    pub entries: Vec<JournalEntry>,
}

/// The largest journal a restore reads (tens of thousands of IRQs fit).
pub const MAX_JOURNAL_BYTES: u64 = 16 << 20;

/// The command that restores the journal at `path`, written for the root
/// `root` (`--root` said unless it is the real root `/`).
pub fn restore_command(root: &str, path: &Path) -> String {
    let mut c = String::from("vmbench isolate restore");
    if !root.is_empty() && root != "/" {
        c.push_str(&format!(" --root {root}"));
    }
    c.push_str(&format!(" --journal {}", path.display()));
    c
}

impl Journal {
    /// Reads the journal at `path`; None if there is none. A journal decides
    /// what root writes, so it must be trustworthy
    /// ([`vmbench_host::files::read_trusted`]: not a link, owned by root or
    /// this user, writable by no one else, in a directory no one else
    /// controls), and every entry must be a change `apply` could have made
    /// ([`crate::trust::check_change`]). Otherwise nothing in it is used.
    pub fn load(path: &Path) -> Result<Option<Journal>, IsolateError> {
        let untrusted = |why: String| IsolateError::UntrustedJournal {
            path: path.display().to_string(),
            why,
        };
        let bytes = match files::read_trusted(path, MAX_JOURNAL_BYTES) {
            Ok(Some(b)) => b,
            Ok(None) => return Ok(None),
            Err(e @ files::FileError::Untrusted { .. }) => return Err(untrusted(e.to_string())),
            Err(e) => {
                return Err(IsolateError::Journal {
                    path: path.display().to_string(),
                    why: e.to_string(),
                });
            }
        };
        let j: Journal = serde_json::from_slice(&bytes).map_err(|e| IsolateError::Journal {
            path: path.display().to_string(),
            why: format!(
                "not a vmbench journal ({e}); it is JSON listing original values: restore them by hand, then delete it"
            ),
        })?;
        if j.schema_version != JOURNAL_SCHEMA_VERSION {
            return Err(IsolateError::Journal {
                path: path.display().to_string(),
                why: format!(
                    "schema version {} (this vmbench reads {JOURNAL_SCHEMA_VERSION})",
                    j.schema_version
                ),
            });
        }
        for e in &j.entries {
            crate::trust::check_change(e.knob, &e.change)
                .map_err(|why| untrusted(format!("entry `{}`: {why}", e.change.describe())))?;
        }
        Ok(Some(j))
    }

    /// Writes atomically: a fresh temporary file (`O_EXCL`, 0600) in the
    /// journal's directory, fsync, rename, fsync of the directory. The
    /// directory must be one only root or this user controls.
    pub fn store(&self, path: &Path) -> Result<(), IsolateError> {
        let err = |e: std::io::Error| IsolateError::Journal {
            path: path.display().to_string(),
            why: e.to_string(),
        };
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        fs::create_dir_all(dir).map_err(err)?;
        files::check_parent(path).map_err(|e| IsolateError::UntrustedJournal {
            path: path.display().to_string(),
            why: e.to_string(),
        })?;
        let text = serde_json::to_string_pretty(self).map_err(|e| IsolateError::Journal {
            path: path.display().to_string(),
            why: e.to_string(),
        })?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".isolate-journal.")
            .suffix(".tmp")
            .tempfile_in(dir)
            .map_err(err)?;
        tmp.write_all(text.as_bytes()).map_err(err)?;
        tmp.as_file().sync_all().map_err(err)?;
        tmp.persist(path).map_err(|e| err(e.error))?;
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
