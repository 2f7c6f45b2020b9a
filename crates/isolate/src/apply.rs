//! Apply the runtime knobs with a journal; restore from it.

use crate::IsolateError;
use crate::journal::{Journal, JournalEntry};
use crate::model::{Audit, Change, ISOLATE_SCHEMA_VERSION, KnobClass};
use crate::sysfs::{Sysfs, errno_of};
use serde::Serialize;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Knob ids `--skip` accepts.
pub fn runtime_knob_ids(audit: &Audit) -> Vec<&str> {
    audit
        .knobs
        .iter()
        .filter(|k| k.class == KnobClass::Runtime)
        .map(|k| k.id.as_str())
        .collect()
}

/// What `apply` did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ApplyReport {
    /// The journal written.
    pub journal: String,
    /// Each change made.
    pub applied: Vec<String>,
    /// IRQs the kernel refused to move (EIO/EPERM/EINVAL): managed or per-CPU.
    pub unmovable: Vec<String>,
    /// Runtime knobs left alone (`--skip`).
    pub skipped: Vec<String>,
}

/// What `restore` did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RestoreReport {
    /// Each change put back.
    pub restored: Vec<String>,
    /// Changes already at their original value.
    pub already_original: usize,
    /// Changes that could not be put back.
    pub failed: Vec<RestoreFailure>,
    /// Restored, but the file reads back differently from the original bytes.
    pub notes: Vec<String>,
}

/// A journaled change that could not be put back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RestoreFailure {
    /// The knob the change belongs to.
    pub knob: String,
    /// What failed, with the path or unit and the error.
    pub error: String,
}

impl std::fmt::Display for RestoreFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.knob, self.error)
    }
}

impl RestoreReport {
    /// Every failure on one line.
    pub fn failures(&self) -> String {
        self.failed
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// Resources held while the benchmark runs; released when dropped.
#[derive(Debug, Default)]
pub struct Held {
    /// PM QoS request (`/dev/cpu_dma_latency` = 0), dropped with the fd.
    pub cpu_dma_latency: Option<File>,
    /// Remarks on what could not be held.
    pub notes: Vec<String>,
}

impl Held {
    /// Takes the held-while-running resources; only on the running host.
    pub fn acquire(fs: &dyn Sysfs) -> Held {
        let mut held = Held::default();
        if !fs.root().is_host() {
            held.notes.push("nothing held: --root is not /".into());
            return held;
        }
        match std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/cpu_dma_latency")
        {
            Ok(mut f) => {
                use std::io::Write;
                // A 4-byte write is read as a binary s32 (pm_qos_interface.rst).
                match f.write_all(&0i32.to_ne_bytes()) {
                    Ok(()) => {
                        held.notes
                            .push("holding /dev/cpu_dma_latency = 0 us".into());
                        held.cpu_dma_latency = Some(f);
                    }
                    Err(e) => held
                        .notes
                        .push(format!("/dev/cpu_dma_latency: write failed: {e}")),
                }
            }
            Err(e) => held
                .notes
                .push(format!("/dev/cpu_dma_latency not held: {e}")),
        }
        use nix::sys::resource::{Resource, getrlimit, setrlimit};
        if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_MEMLOCK)
            && soft < hard
        {
            match setrlimit(Resource::RLIMIT_MEMLOCK, hard, hard) {
                Ok(()) => held.notes.push(
                    "RLIMIT_MEMLOCK soft limit raised to the hard limit (inherited by QEMU)".into(),
                ),
                Err(e) => held.notes.push(format!("RLIMIT_MEMLOCK not raised: {e}")),
            }
        }
        held
    }
}

/// An applied host. Restores itself when dropped unless [`Applied::keep`] was
/// called, so an error or panic in the caller never leaves the host tuned.
pub struct Applied<'a> {
    fs: &'a dyn Sysfs,
    journal_path: PathBuf,
    /// What was applied.
    pub report: ApplyReport,
    /// What is held while the benchmark runs.
    pub held: Held,
    armed: bool,
}

impl Applied<'_> {
    /// Puts the host back now, from the journal.
    pub fn restore(mut self) -> Result<RestoreReport, IsolateError> {
        self.armed = false;
        restore(self.fs, &self.journal_path)
    }

    /// Leaves the host tuned (journal kept); the held resources are released.
    pub fn keep(mut self) -> ApplyReport {
        self.armed = false;
        std::mem::take(&mut self.report)
    }

    /// The journal of this apply.
    pub fn journal_path(&self) -> &Path {
        &self.journal_path
    }
}

impl Drop for Applied<'_> {
    fn drop(&mut self) {
        if self.armed
            && let Err(e) = restore(self.fs, &self.journal_path)
        {
            eprintln!("vmbench: restoring the host failed: {e}");
        }
    }
}

/// Applies every runtime change the audit planned, except `skip`.
///
/// Refuses, with nothing changed, when an unrestored journal exists, a knob's
/// current value is not understood, or a change is blocked by privileges.
/// Writes the journal before the first change. An unexpected failure
/// mid-apply restores what was already changed.
pub fn apply<'a>(
    fs: &'a dyn Sysfs,
    audit: &Audit,
    skip: &[String],
    journal_path: &Path,
) -> Result<Applied<'a>, IsolateError> {
    let known = runtime_knob_ids(audit);
    let unknown: Vec<&String> = skip
        .iter()
        .filter(|s| !known.contains(&s.as_str()))
        .collect();
    if !unknown.is_empty() {
        return Err(IsolateError::UnknownKnobs {
            unknown: unknown.into_iter().cloned().collect(),
            known: known.into_iter().map(str::to_string).collect(),
        });
    }
    if let Some(j) = Journal::load(journal_path)? {
        return Err(IsolateError::Unrestored {
            path: journal_path.display().to_string(),
            pid: j.pid,
            entries: j.entries.len(),
        });
    }
    let selected: Vec<_> = audit
        .knobs
        .iter()
        .filter(|k| k.class == KnobClass::Runtime && !skip.contains(&k.id))
        .collect();
    let invalid: Vec<String> = selected
        .iter()
        .filter_map(|k| k.invalid.as_ref().map(|why| format!("{}: {why}", k.id)))
        .collect();
    if !invalid.is_empty() {
        return Err(IsolateError::InvalidValues(invalid));
    }
    let blocked: Vec<String> = selected
        .iter()
        .filter(|k| !k.changes.is_empty())
        .flat_map(|k| k.blocked.iter().map(move |b| format!("{}: {b}", k.id)))
        .collect();
    if !blocked.is_empty() {
        return Err(IsolateError::Blocked(blocked));
    }
    let entries: Vec<JournalEntry> = selected
        .iter()
        .flat_map(|k| {
            k.changes.iter().map(|c| JournalEntry {
                knob: k.id.clone(),
                change: c.clone(),
            })
        })
        .collect();
    let mut report = ApplyReport {
        journal: journal_path.display().to_string(),
        skipped: skip.to_vec(),
        ..Default::default()
    };
    if entries.is_empty() {
        return Ok(Applied {
            fs,
            journal_path: journal_path.to_path_buf(),
            report,
            held: Held::acquire(fs),
            armed: false,
        });
    }
    let journal = Journal {
        schema_version: ISOLATE_SCHEMA_VERSION,
        pid: std::process::id(),
        created_unix: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        root: fs.root().root().display().to_string(),
        bench_cpus: audit.cpus.bench.to_string(),
        entries: entries.clone(),
    };
    journal.store(journal_path)?;
    for e in &entries {
        let result = match &e.change {
            Change::File { path, target, .. } => fs.write(path, target).map_err(|err| {
                let unmovable = e.knob == "irq_affinity"
                    && matches!(
                        errno_of(&err),
                        Some(nix::Error::EIO) | Some(nix::Error::EPERM) | Some(nix::Error::EINVAL)
                    );
                (unmovable, err.to_string())
            }),
            Change::StopService { unit } => {
                systemctl("stop", unit).map_err(|s| (false, s.to_string()))
            }
        };
        match result {
            Ok(()) => report.applied.push(e.change.describe()),
            Err((true, why)) => report.unmovable.push(why),
            Err((false, why)) => {
                let rollback = restore(fs, journal_path);
                return Err(IsolateError::ApplyFailed {
                    change: e.change.describe(),
                    why,
                    rollback: match rollback {
                        Ok(r) if r.failed.is_empty() => {
                            "everything already changed was restored".into()
                        }
                        Ok(r) => format!("restoring failed for: {}", r.failures()),
                        Err(e) => format!("restoring failed: {e}"),
                    },
                });
            }
        }
    }
    Ok(Applied {
        fs,
        journal_path: journal_path.to_path_buf(),
        report,
        held: Held::acquire(fs),
        armed: true,
    })
}

/// `systemctl VERB UNIT` failed.
#[derive(Debug, thiserror::Error)]
#[error("systemctl {verb} {unit}: {why}")]
pub struct SystemctlError {
    verb: &'static str,
    unit: String,
    why: String,
}

fn systemctl(verb: &'static str, unit: &str) -> Result<(), SystemctlError> {
    let fail = |why: String| SystemctlError {
        verb,
        unit: unit.to_string(),
        why,
    };
    let out = Command::new("systemctl")
        .args([verb, unit])
        .output()
        .map_err(|e| fail(e.to_string()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(fail(
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ))
    }
}

/// Restores every journaled change, newest first. Idempotent: entries whose
/// file already holds its original bytes are left alone. The journal is
/// removed when everything is back, else rewritten with what failed.
pub fn restore(fs: &dyn Sysfs, journal_path: &Path) -> Result<RestoreReport, IsolateError> {
    let Some(mut journal) = Journal::load(journal_path)? else {
        return Ok(RestoreReport::default());
    };
    let mut report = RestoreReport::default();
    let mut remaining = Vec::new();
    let host = fs.root().is_host();
    for e in journal.entries.iter().rev() {
        match &e.change {
            Change::File {
                path,
                original_raw,
                original,
                ..
            } => {
                match fs.root().read_raw(path) {
                    Ok(now) if &now == original_raw => {
                        report.already_original += 1;
                        continue;
                    }
                    Err(err) if err.is_missing() => {
                        // The device or IRQ is gone: nothing left to restore.
                        report.notes.push(format!("{path} no longer exists"));
                        continue;
                    }
                    _ => {}
                }
                // On a real host the kernel renders what we write; a fixture tree
                // is plain files, so there the exact bytes are written back.
                let value = if host {
                    original.as_str()
                } else {
                    original_raw.as_str()
                };
                match fs.write(path, value) {
                    Ok(()) => {
                        report.restored.push(format!("{path} = {original}"));
                        if let Ok(back) = fs.root().read_raw(path)
                            && &back != original_raw
                        {
                            report.notes.push(format!(
                                "{path} reads back {:?}, originally {:?}",
                                back.trim(),
                                original_raw.trim()
                            ));
                        }
                    }
                    Err(err) => {
                        report.failed.push(RestoreFailure {
                            knob: e.knob.clone(),
                            error: format!("{path}: {err}"),
                        });
                        remaining.push(e.clone());
                    }
                }
            }
            Change::StopService { unit } => {
                if !host {
                    continue;
                }
                match systemctl("start", unit) {
                    Ok(()) => report.restored.push(format!("systemctl start {unit}")),
                    Err(why) => {
                        report.failed.push(RestoreFailure {
                            knob: e.knob.clone(),
                            error: why.to_string(),
                        });
                        remaining.push(e.clone());
                    }
                }
            }
        }
    }
    if remaining.is_empty() {
        Journal::remove(journal_path)?;
    } else {
        remaining.reverse();
        journal.entries = remaining;
        journal.store(journal_path)?;
    }
    Ok(report)
}
