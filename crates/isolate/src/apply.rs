//! Apply the runtime knobs with a journal; restore from it.

use crate::IsolateError;
use crate::affinity::{self, MoveError};
use crate::journal::{Journal, JournalEntry};
use crate::lock::HostLock;
use crate::model::{Audit, Change, KnobClass, KnobId};
use crate::sysfs::{Sysfs, errno_of};
use serde::Serialize;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

/// What `apply` did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ApplyReport {
    /// The journal written.
    pub journal: String,
    /// Each change made.
    pub applied: Vec<ChangeOutcome>,
    /// Changes the kernel refused (EIO/EPERM/EINVAL): managed or per-CPU
    /// IRQs, ordered workqueues, threads whose cpuset excludes the target.
    pub unmovable: Vec<String>,
    /// Runtime knobs left alone (`--skip`).
    pub skipped: Vec<KnobId>,
    /// Threads that exited between the audit and the move.
    pub threads_gone: usize,
}

/// What `restore` did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RestoreReport {
    /// Each change put back.
    pub restored: Vec<ChangeOutcome>,
    /// Changes already at their original value.
    pub already_original: usize,
    /// Changes that could not be put back.
    pub failed: Vec<RestoreFailure>,
    /// Restored, but the file reads back differently from the original bytes.
    pub notes: Vec<String>,
    /// Moved threads that exited (or whose tid now names another thread)
    /// before the restore: skipped.
    pub threads_gone: usize,
    /// Tasks started while the host was isolated that inherited a mask
    /// apply imposed (a child or new thread of a moved process): widened
    /// to that process's original mask.
    pub inherited: Vec<InheritedMove>,
}

/// A task that inherited an imposed mask, put where its ancestor was.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InheritedMove {
    /// Its process.
    pub pid: u32,
    /// The thread.
    pub tid: u32,
    /// Its name.
    pub comm: String,
    /// The moved process it descends from.
    pub ancestor: u32,
    /// The mask it had (the one apply imposed on the ancestor).
    pub from: String,
    /// The mask it was given (the ancestor's original).
    pub to: String,
}

/// One change made (by apply) or put back (by restore).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChangeOutcome {
    /// The knob the change belongs to.
    pub knob: KnobId,
    /// The change, with its original value.
    pub change: Change,
}

impl ChangeOutcome {
    /// A thread's affinity (hundreds of them: tables count them).
    pub fn is_thread_move(&self) -> bool {
        matches!(self.change, Change::Affinity { .. })
    }
}

/// Why one change could not be made or put back.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    /// Writing a sysfs/procfs file or a configuration file failed (the
    /// error names the file).
    #[error(transparent)]
    File(#[from] vmbench_host::ReadError),
    /// systemctl failed.
    #[error(transparent)]
    Systemctl(#[from] SystemctlError),
    /// A thread could not be moved.
    #[error(transparent)]
    Move(#[from] MoveError),
}

/// A journaled change that could not be put back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RestoreFailure {
    /// The knob the change belongs to.
    pub knob: KnobId,
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
/// It holds the tree it changed and the [`HostLock`] it was applied under
/// (shared with the caller): the host stays locked for as long as its
/// changes are live, and whoever holds the guard needs nothing else.
pub struct Applied {
    fs: Arc<dyn Sysfs>,
    lock: Arc<HostLock>,
    journal_path: PathBuf,
    /// What was journaled, kept in memory: the restore puts back exactly
    /// this, even if the file was removed or replaced meanwhile.
    journal: Option<Journal>,
    /// What was applied.
    pub report: ApplyReport,
    /// What is held while the benchmark runs.
    pub held: Held,
    armed: bool,
}

impl Applied {
    /// Puts the host back now, from the journal applied.
    pub fn restore(mut self) -> Result<RestoreReport, IsolateError> {
        self.armed = false;
        self.restore_now()
    }

    fn restore_now(&mut self) -> Result<RestoreReport, IsolateError> {
        let Some(journal) = self.journal.clone() else {
            return Ok(RestoreReport::default());
        };
        let vanished = !self.journal_path.exists();
        let mut report = restore_journal(&*self.fs, journal, &self.journal_path, Some(&self.lock))?;
        if vanished {
            report.notes.insert(
                0,
                format!(
                    "the journal {} was removed while this run held the host (by `vmbench isolate restore --force`?); restored from the copy this run kept",
                    self.journal_path.display()
                ),
            );
        }
        Ok(report)
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

impl Drop for Applied {
    fn drop(&mut self) {
        if self.armed
            && let Err(e) = self.restore_now()
        {
            use std::io::Write;
            let _ = writeln!(std::io::stderr(), "vmbench: restoring the host failed: {e}");
        }
    }
}

/// Whose an unrestored journal is, and what to do about it.
fn owner_of(j: &Journal, path: &Path) -> String {
    if crate::lock::owner_alive(j.pid, j.pid_start_ticks) {
        format!(
            "written by pid {}, a vmbench that is still running: it restores the host itself when it ends",
            j.pid
        )
    } else {
        format!(
            "from an earlier run (pid {}, no longer running): run `{}` first",
            j.pid,
            crate::journal::restore_command(&j.root, path)
        )
    }
}

/// The error for a journal that still holds changes.
pub fn unrestored(j: &Journal, path: &Path) -> IsolateError {
    IsolateError::Unrestored {
        path: path.display().to_string(),
        pid: j.pid,
        entries: j.entries.len(),
        owner: owner_of(j, path),
    }
}

/// Refuses when another journal holds live changes on this host.
fn check_no_other_journal(lock: &HostLock, journal_path: &Path) -> Result<(), IsolateError> {
    let Some(active) = lock.active_journal() else {
        return Ok(());
    };
    let ours = std::path::absolute(journal_path).unwrap_or_else(|_| journal_path.to_path_buf());
    if active == ours {
        return Ok(());
    }
    match Journal::load(&active) {
        Ok(None) => Ok(()),
        Ok(Some(j)) => Err(IsolateError::AnotherJournal {
            restore: crate::journal::restore_command(&j.root, &active),
            active: active.display().to_string(),
            detail: format!(
                "pid {}, benchmark CPUs {}, {} change(s)",
                j.pid,
                j.bench_cpus,
                j.entries.len()
            ),
        }),
        Err(e) => Err(IsolateError::AnotherJournal {
            // Unreadable: its root is unknown, the journal path is not.
            restore: crate::journal::restore_command("", &active),
            active: active.display().to_string(),
            detail: e.to_string(),
        }),
    }
}

/// The changes to journal and make: every runtime knob's, except `skip`;
/// refused whole when a current value is not understood, a change is
/// blocked, or a change is one a restore would not accept back.
fn planned_entries(audit: &Audit, skip: &[KnobId]) -> Result<Vec<JournalEntry>, IsolateError> {
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
                knob: k.id,
                change: c.clone(),
            })
        })
        .collect();
    // Journal only what a restore will accept back (the same lists).
    let unjournalable: Vec<String> = entries
        .iter()
        .filter_map(|e| {
            crate::trust::check_change(e.knob, &e.change)
                .err()
                .map(|why| format!("{}: {why}", e.knob))
        })
        .collect();
    if !unjournalable.is_empty() {
        return Err(IsolateError::InvalidValues(unjournalable));
    }
    Ok(entries)
}

/// Applies every runtime change the audit planned, except `skip`, under
/// `lock` (which must cover the same root as `fs`). The guard returned
/// keeps both.
///
/// Refuses, with nothing changed, when an unrestored journal exists (this
/// one, or another named active), a knob's current value is not understood,
/// or a change is blocked by privileges. Writes the journal before the
/// first change. An unexpected failure mid-apply restores what was already
/// changed.
pub fn apply(
    fs: Arc<dyn Sysfs>,
    audit: &Audit,
    skip: &[KnobId],
    journal_path: &Path,
    lock: Arc<HostLock>,
) -> Result<Applied, IsolateError> {
    let not_runtime: Vec<KnobId> = skip
        .iter()
        .copied()
        .filter(|k| crate::catalogue::knob(*k).class != KnobClass::Runtime)
        .collect();
    if !not_runtime.is_empty() {
        return Err(IsolateError::NotRuntime(not_runtime));
    }
    if let Some(j) = Journal::load(journal_path)? {
        return Err(unrestored(&j, journal_path));
    }
    check_no_other_journal(&lock, journal_path)?;
    let entries = planned_entries(audit, skip)?;
    let mut report = ApplyReport {
        journal: journal_path.display().to_string(),
        skipped: skip.to_vec(),
        ..Default::default()
    };
    if entries.is_empty() {
        let held = Held::acquire(&*fs);
        return Ok(Applied {
            fs,
            lock,
            journal_path: journal_path.to_path_buf(),
            journal: None,
            report,
            held,
            armed: false,
        });
    }
    let mut journal = Journal {
        schema_version: crate::journal::JOURNAL_SCHEMA_VERSION,
        pid: std::process::id(),
        pid_start_ticks: vmbench_host::files::process_start_ticks(std::process::id()),
        created_unix: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        // Absolute: a restore from another working directory must find it.
        root: std::path::absolute(fs.root().root())
            .unwrap_or_else(|_| fs.root().root().to_path_buf())
            .display()
            .to_string(),
        bench_cpus: audit.cpus.bench.to_string(),
        window_start_ticks: affinity::boot_ticks(&*fs),
        entries: entries.clone(),
    };
    lock.set_active_journal(journal_path)?;
    journal.store(journal_path)?;
    // A service restarted to read its new configuration runs as a new
    // process the audit never saw: its threads are journaled and moved
    // after the restart, like every other thread.
    let restarted = entries
        .iter()
        .any(|e| matches!(e.change, Change::ServiceConfig { .. }));
    let mut pending = entries;
    let mut rescanned = false;
    while !pending.is_empty() {
        let batch = std::mem::take(&mut pending);
        apply_batch(&*fs, &batch, &journal, journal_path, &lock, &mut report)?;
        if restarted && !rescanned && !skip.contains(&KnobId::ThreadAffinity) {
            rescanned = true;
            pending = restarted_threads(&*fs, &batch, &journal, audit);
            if !pending.is_empty() {
                journal.entries.extend(pending.iter().cloned());
                journal.store(journal_path)?;
            }
        }
    }
    let held = Held::acquire(&*fs);
    Ok(Applied {
        fs,
        lock,
        journal_path: journal_path.to_path_buf(),
        journal: Some(journal),
        report,
        held,
        armed: true,
    })
}

/// The threads of the services `batch` restarted that started since the
/// apply began and may run on the benchmark CPUs, as journal entries.
fn restarted_threads(
    fs: &dyn Sysfs,
    batch: &[JournalEntry],
    journal: &Journal,
    audit: &Audit,
) -> Vec<JournalEntry> {
    let Some(start) = journal.window_start_ticks else {
        return Vec::new();
    };
    let names: Vec<&str> = batch
        .iter()
        .filter_map(|e| match &e.change {
            Change::ServiceConfig { unit, .. } => unit.strip_suffix(".service"),
            _ => None,
        })
        .collect();
    let pids = affinity::processes_named(fs, &names);
    let journaled: std::collections::BTreeSet<(u32, u64)> = journal
        .entries
        .iter()
        .filter_map(|e| match &e.change {
            Change::Affinity {
                tid, start_time, ..
            } => Some((*tid, *start_time)),
            _ => None,
        })
        .collect();
    let bench = &audit.cpus.bench;
    affinity::tasks(fs, &affinity::ThreadScope::Processes(pids))
        .into_iter()
        .filter(|t| {
            t.start_time >= start
                && !t.pinned_by_kernel
                && !journaled.contains(&(t.tid, t.start_time))
                && !t.allowed.intersection(bench).is_empty()
        })
        .map(|t| {
            let target = audit.cpus.off_bench(&t.allowed);
            JournalEntry {
                knob: KnobId::ThreadAffinity,
                change: Change::Affinity {
                    pid: t.pid,
                    tid: t.tid,
                    comm: t.comm,
                    start_time: t.start_time,
                    original: t.allowed_raw,
                    target: target.to_string(),
                },
            }
        })
        .collect()
}

/// Makes each change of `batch` (journaled already); on a failure, restores
/// the whole journal and says so.
fn apply_batch(
    fs: &dyn Sysfs,
    batch: &[JournalEntry],
    journal: &Journal,
    journal_path: &Path,
    lock: &HostLock,
    report: &mut ApplyReport,
) -> Result<(), IsolateError> {
    for e in batch {
        match apply_change(fs, e) {
            Ok(Outcome::Done) => report.applied.push(ChangeOutcome {
                knob: e.knob,
                change: e.change.clone(),
            }),
            Ok(Outcome::Unmovable(why)) => report.unmovable.push(why),
            Ok(Outcome::ThreadGone) => report.threads_gone += 1,
            Err(why) => {
                let rollback = restore_journal(fs, journal.clone(), journal_path, Some(lock));
                return Err(IsolateError::ApplyFailed {
                    change: e.change.describe(),
                    why: Box::new(why),
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
    Ok(())
}

/// How one change went.
enum Outcome {
    Done,
    /// The kernel refused it, as it may (not a failure of the run).
    Unmovable(String),
    /// The thread to move exited meanwhile.
    ThreadGone,
}

fn apply_change(fs: &dyn Sysfs, e: &JournalEntry) -> Result<Outcome, ChangeError> {
    match &e.change {
        Change::File { path, target, .. } => match fs.write(path, target) {
            Ok(()) => Ok(Outcome::Done),
            // Managed and per-CPU IRQs, ordered workqueues: the kernel keeps them.
            Err(err)
                if matches!(e.knob, KnobId::IrqAffinity | KnobId::WorkqueueCpumask)
                    && matches!(
                        errno_of(&err),
                        Some(nix::Error::EIO) | Some(nix::Error::EPERM) | Some(nix::Error::EINVAL)
                    ) =>
            {
                Ok(Outcome::Unmovable(err.to_string()))
            }
            Err(source) => Err(source.into()),
        },
        Change::StopService { unit } => Ok(systemctl("stop", unit).map(|()| Outcome::Done)?),
        Change::ServiceConfig {
            unit, path, target, ..
        } => {
            fs.root().rewrite_file(path, target)?;
            if fs.root().is_host() {
                systemctl("restart", unit)?;
            }
            Ok(Outcome::Done)
        }
        Change::Affinity {
            pid,
            tid,
            start_time,
            target,
            ..
        } => {
            let Some(task) = affinity::same_task(fs, *pid, *tid, *start_time) else {
                return Ok(Outcome::ThreadGone);
            };
            match affinity::set(fs, &task, target) {
                Ok(()) => Ok(Outcome::Done),
                Err(MoveError::Gone(_)) => Ok(Outcome::ThreadGone),
                Err(e @ MoveError::Refused { .. }) => Ok(Outcome::Unmovable(e.to_string())),
                Err(e) => Err(e.into()),
            }
        }
    }
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
    // `--` ends the options: a unit name is never read as one.
    let out = Command::new("systemctl")
        .args([verb, "--", unit])
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

/// Restores every change in the journal at `journal_path`, newest first.
/// Idempotent: entries whose file already holds its original bytes are left
/// alone. The journal is removed when everything is back, else rewritten
/// with what failed. `lock` is the host lock held (None only for `restore
/// --force` while another process holds it). A journal that fails
/// [`Journal::load`]'s checks, or that was written for another root, is
/// refused whole: nothing is restored from it.
pub fn restore(
    fs: &dyn Sysfs,
    journal_path: &Path,
    lock: Option<&HostLock>,
) -> Result<RestoreReport, IsolateError> {
    let Some(journal) = Journal::load(journal_path)? else {
        return Ok(RestoreReport::default());
    };
    let same_root = match (
        std::fs::canonicalize(&journal.root),
        std::fs::canonicalize(fs.root().root()),
    ) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    };
    if !same_root {
        return Err(IsolateError::Journal {
            path: journal_path.display().to_string(),
            why: format!(
                "written for the root {}, not {}: restore it with --root {}",
                journal.root,
                fs.root().root().display(),
                journal.root
            ),
        });
    }
    restore_journal(fs, journal, journal_path, lock)
}

/// Puts a moved thread back, if it is still the thread that was moved and
/// still where apply put it (a thread someone else moved since is left
/// alone, and said so).
fn restore_affinity(
    fs: &dyn Sysfs,
    entry: &JournalEntry,
    report: &mut RestoreReport,
) -> Result<(), ChangeError> {
    let Change::Affinity {
        pid,
        tid,
        comm,
        start_time,
        original,
        target,
    } = &entry.change
    else {
        return Ok(());
    };
    let Some(task) = affinity::same_task(fs, *pid, *tid, *start_time) else {
        report.threads_gone += 1;
        return Ok(());
    };
    let same = |a: &str, b: &str| match (
        vmbench_host::CpuList::parse(a),
        vmbench_host::CpuList::parse(b),
    ) {
        (Ok(x), Ok(y)) => x == y,
        _ => a == b,
    };
    if task.allowed_raw == *original {
        report.already_original += 1;
        return Ok(());
    }
    if !same(&task.allowed_raw, target) {
        report.notes.push(format!(
            "thread {tid} ({comm}) was moved by someone else since (now cpus {}): left there",
            task.allowed_raw
        ));
        return Ok(());
    }
    match affinity::set(fs, &task, original) {
        Ok(()) => {
            report.restored.push(ChangeOutcome {
                knob: entry.knob,
                change: entry.change.clone(),
            });
            Ok(())
        }
        Err(MoveError::Gone(_)) => {
            report.threads_gone += 1;
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// Puts one journaled change back; Err says why it could not.
fn restore_entry(
    fs: &dyn Sysfs,
    entry: &JournalEntry,
    host: bool,
    report: &mut RestoreReport,
) -> Result<(), ChangeError> {
    let done = || ChangeOutcome {
        knob: entry.knob,
        change: entry.change.clone(),
    };
    match &entry.change {
        Change::File {
            path,
            original_raw,
            original,
            ..
        } => {
            match fs.root().read_raw(path) {
                Ok(now) if &now == original_raw => {
                    report.already_original += 1;
                    return Ok(());
                }
                Err(err) if err.is_missing() => {
                    // The device or IRQ is gone: nothing left to restore.
                    report.notes.push(format!("{path} no longer exists"));
                    return Ok(());
                }
                _ => {}
            }
            // On a real host the kernel renders what we write; a fixture tree
            // is plain files, so there the exact bytes are written back.
            let value = if host { original } else { original_raw };
            fs.write(path, value)?;
            report.restored.push(done());
            if let Ok(back) = fs.root().read_raw(path)
                && &back != original_raw
            {
                report.notes.push(format!(
                    "{path} reads back {:?}, originally {:?}",
                    back.trim(),
                    original_raw.trim()
                ));
            }
            Ok(())
        }
        Change::ServiceConfig {
            unit,
            path,
            original_raw,
            target,
        } => {
            let now = fs.root().read_raw(path);
            if now.as_ref().is_ok_and(|now| now == original_raw) {
                report.already_original += 1;
                return Ok(());
            }
            // Edited while the host was isolated: the edits stay, only the
            // banned variables go back to what they were.
            let value = match now {
                Ok(now) if &now != target && entry.knob == KnobId::Irqbalance => {
                    report.notes.push(format!(
                        "{path} was changed by someone else while the host was isolated: their changes are kept, only the banned-CPU variables were put back"
                    ));
                    crate::knobs::irqbalance::revert_banned(&now, original_raw)
                }
                _ => original_raw.clone(),
            };
            fs.root().rewrite_file(path, &value)?;
            if host {
                systemctl("restart", unit)?;
            }
            report.restored.push(done());
            Ok(())
        }
        Change::Affinity { .. } => restore_affinity(fs, entry, report),
        Change::StopService { unit } => {
            if host {
                systemctl("start", unit)?;
                report.restored.push(done());
            }
            Ok(())
        }
    }
}

/// How far up the process tree a task is followed to a moved ancestor.
const MAX_ANCESTRY: usize = 64;

/// The moved process `pid` descends from, through processes started since
/// `window_start` (an older process that was not moved passed on its own
/// mask, not one apply imposed). A moved process is still the one journaled
/// when one of its journaled threads is alive with its start time.
fn moved_ancestor(
    fs: &dyn Sysfs,
    pid: u32,
    window_start: u64,
    moved: &std::collections::BTreeMap<u32, Vec<&JournalEntry>>,
) -> Option<u32> {
    let alive = |p: u32| {
        moved.get(&p).is_some_and(|es| {
            es.iter().any(|e| match &e.change {
                Change::Affinity {
                    pid,
                    tid,
                    start_time,
                    ..
                } => affinity::same_task(fs, *pid, *tid, *start_time).is_some(),
                _ => false,
            })
        })
    };
    if alive(pid) {
        return Some(pid);
    }
    let mut current = pid;
    for _ in 0..MAX_ANCESTRY {
        let (parent, started) = affinity::parent_of(fs, current)?;
        if started < window_start || parent == 0 {
            return None;
        }
        if alive(parent) {
            return Some(parent);
        }
        current = parent;
    }
    None
}

/// Tasks started while the host was isolated inherit the mask apply gave
/// their parent (fork and clone copy it), and nothing in the journal names
/// them: every such task whose mask is exactly one apply imposed on its
/// moved ancestor gets that ancestor's original mask. A task whose mask is
/// anything else was placed deliberately and is left alone.
fn widen_inherited(
    fs: &dyn Sysfs,
    entries: &[JournalEntry],
    window_start: u64,
    report: &mut RestoreReport,
) {
    let mut moved: std::collections::BTreeMap<u32, Vec<&JournalEntry>> = Default::default();
    let mut journaled = std::collections::BTreeSet::new();
    for e in entries {
        if let Change::Affinity { pid, tid, .. } = &e.change {
            moved.entry(*pid).or_default().push(e);
            journaled.insert(*tid);
        }
    }
    if moved.is_empty() {
        return;
    }
    for task in affinity::tasks(fs, &affinity::ThreadScope::All) {
        if task.start_time < window_start || task.pinned_by_kernel || journaled.contains(&task.tid)
        {
            continue;
        }
        let Some(ancestor) = moved_ancestor(fs, task.pid, window_start, &moved) else {
            continue;
        };
        // The ancestor's entry whose imposed mask this task has (the
        // process's main thread first).
        let mut candidates = moved[&ancestor].clone();
        candidates.sort_by_key(|e| match &e.change {
            Change::Affinity { tid, .. } => *tid != ancestor,
            _ => true,
        });
        let original = candidates.iter().find_map(|e| match &e.change {
            Change::Affinity {
                target, original, ..
            } if vmbench_host::CpuList::parse(target).is_ok_and(|t| t == task.allowed) => {
                Some(original.clone())
            }
            _ => None,
        });
        let Some(original) = original else {
            continue;
        };
        match affinity::set(fs, &task, &original) {
            Ok(()) => report.inherited.push(InheritedMove {
                pid: task.pid,
                tid: task.tid,
                comm: task.comm.clone(),
                ancestor,
                from: task.allowed_raw.clone(),
                to: original,
            }),
            Err(MoveError::Gone(_)) => {}
            Err(e) => report.notes.push(format!(
                "thread {} ({}) inherited cpus {} from {ancestor} and could not be widened: {e}",
                task.tid, task.comm, task.allowed_raw
            )),
        }
    }
}

fn restore_journal(
    fs: &dyn Sysfs,
    mut journal: Journal,
    journal_path: &Path,
    lock: Option<&HostLock>,
) -> Result<RestoreReport, IsolateError> {
    let mut report = RestoreReport::default();
    let mut remaining = Vec::new();
    let host = fs.root().is_host();
    let _second_signal = vmbench_host::signals::restoring(
        journal.entries.len(),
        &crate::journal::restore_command(&journal.root, journal_path),
    );
    for e in journal.entries.iter().rev() {
        if let Err(error) = restore_entry(fs, e, host, &mut report) {
            report.failed.push(RestoreFailure {
                knob: e.knob,
                error: error.to_string(),
            });
            remaining.push(e.clone());
        }
        vmbench_host::signals::restored_one();
    }
    if let Some(start) = journal.window_start_ticks {
        widen_inherited(fs, &journal.entries, start, &mut report);
    }
    if remaining.is_empty() {
        Journal::remove(journal_path)?;
        if let Some(l) = lock {
            l.clear_active_journal(journal_path);
        }
    } else {
        remaining.reverse();
        journal.entries = remaining;
        journal.store(journal_path)?;
    }
    Ok(report)
}
