//! One vmbench at a time changes a host.
//!
//! Two runs tuning the same host undo each other: the second would journal
//! the first one's values as "original", and either restore would leave the
//! host wrong. So whatever applies or restores holds [`HostLock`] (an
//! exclusive `flock` on `<root>/run/vmbench/lock`, a directory only root may
//! write) for as long as its changes are live, and records who holds it so a
//! second command can say whom it waits for. The lock goes with the process,
//! however it ends: a killed holder never leaves a stale lock.
//!
//! The lock alone does not cover `isolate apply` without `--hold`, which
//! leaves the host tuned after it exits. So the journal holding live changes
//! is also named in `<root>/run/vmbench/active-journal`: a second apply with
//! another journal (other CPUs, another `--journal`) is refused until that
//! one is restored.

use crate::IsolateError;
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use vmbench_host::SysRoot;
use vmbench_host::files;

/// The directory of the lock, the default journal and the active-journal
/// pointer, under the root: root-only (0700).
pub const STATE_DIR: &str = "/run/vmbench";

/// Who holds the lock, as it writes into the lock file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    /// Its process id.
    pub pid: u32,
    /// Its command line.
    pub command: String,
    /// Since when, in seconds since the Unix epoch.
    pub since_unix: u64,
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let age = now_unix().saturating_sub(self.since_unix);
        write!(f, "pid {} (`{}`, for {age} s)", self.pid, self.command)
    }
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn state_error(path: &Path, e: files::FileError) -> IsolateError {
    IsolateError::State {
        path: path.display().to_string(),
        source: e,
    }
}

/// The exclusive right to change this host (or fixture root); released when dropped.
#[derive(Debug)]
pub struct HostLock {
    _lock: Flock<File>,
    root: SysRoot,
}

impl HostLock {
    /// Takes the lock, or says who holds it. Creates the state directory
    /// (0700) when missing; refuses one that is a link or that others may
    /// write to.
    pub fn acquire(root: &SysRoot, command: &str) -> Result<HostLock, IsolateError> {
        let dir = root.path(STATE_DIR);
        files::ensure_private_dir(&dir).map_err(|e| state_error(&dir, e))?;
        let path = dir.join("lock");
        let file = files::open_private(&path).map_err(|e| state_error(&path, e))?;
        let mut lock = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(l) => l,
            Err((mut file, nix::Error::EWOULDBLOCK)) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                return Err(IsolateError::Busy {
                    lock: path.display().to_string(),
                    holder: serde_json::from_str::<Holder>(&text)
                        .map(|h| h.to_string())
                        .unwrap_or_else(|_| "a process that has not said who it is yet".into()),
                });
            }
            Err((_, e)) => {
                return Err(state_error(
                    &path,
                    files::FileError::Io {
                        path: path.display().to_string(),
                        source: e.into(),
                    },
                ));
            }
        };
        let holder = Holder {
            pid: std::process::id(),
            command: command.chars().take(500).collect(),
            since_unix: now_unix(),
        };
        let text = serde_json::to_string(&holder).unwrap_or_default();
        let io = |e: std::io::Error| {
            state_error(
                &path,
                files::FileError::Io {
                    path: path.display().to_string(),
                    source: e,
                },
            )
        };
        lock.set_len(0).map_err(io)?;
        lock.rewind().map_err(io)?;
        lock.write_all(text.as_bytes()).map_err(io)?;
        Ok(HostLock {
            _lock: lock,
            root: root.clone(),
        })
    }

    /// The root this lock covers.
    pub fn root(&self) -> &SysRoot {
        &self.root
    }

    fn pointer(&self) -> PathBuf {
        self.root.path(STATE_DIR).join("active-journal")
    }

    /// The journal that holds live changes, if one is named.
    pub fn active_journal(&self) -> Option<PathBuf> {
        let text = files::read_trusted(&self.pointer(), 4096).ok()??;
        let s = String::from_utf8(text).ok()?;
        let p = s.trim();
        (!p.is_empty()).then(|| PathBuf::from(p))
    }

    /// Names `journal` as the one holding live changes.
    pub fn set_active_journal(&self, journal: &Path) -> Result<(), IsolateError> {
        let pointer = self.pointer();
        let dir = files::OutputDir::open(&self.root.path(STATE_DIR))
            .map_err(|e| state_error(&pointer, e))?;
        let abs = std::path::absolute(journal).unwrap_or_else(|_| journal.to_path_buf());
        dir.write("active-journal", abs.display().to_string().as_bytes())
            .map_err(|e| state_error(&pointer, e))?;
        // Written 0644 by OutputDir; nobody but root may change it.
        set_mode_0600(&pointer);
        Ok(())
    }

    /// Forgets `journal` as the active one (when it is the one named).
    pub fn clear_active_journal(&self, journal: &Path) {
        let abs = std::path::absolute(journal).unwrap_or_else(|_| journal.to_path_buf());
        if self.active_journal().is_some_and(|p| p == abs) {
            let _ = std::fs::remove_file(self.pointer());
        }
    }
}

fn set_mode_0600(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
}

/// Whether the process that wrote a journal is still running as a vmbench
/// (same program name as this one and, when the journal recorded it, the
/// same start time: a reused pid is another process): its changes are
/// live, not left over.
pub fn owner_alive(pid: u32, start_ticks: Option<u64>) -> bool {
    if pid == std::process::id() || !files::process_alive(pid) {
        return false;
    }
    if let Some(start) = start_ticks
        && files::process_start_ticks(pid) != Some(start)
    {
        return false;
    }
    let comm = |p: &str| std::fs::read_to_string(format!("/proc/{p}/comm")).ok();
    match (comm(&pid.to_string()), comm("self")) {
        (Some(theirs), Some(ours)) => theirs == ours,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_told_who_holds_the_lock() {
        let tmp = tempfile::tempdir().unwrap();
        let root = SysRoot::new(tmp.path());
        let first = HostLock::acquire(&root, "vmbench run --quick").unwrap();
        // flock is per open file description: a second open in this process
        // conflicts just as another process would.
        let err = HostLock::acquire(&root, "vmbench isolate apply").unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("pid {}", std::process::id()))
                && msg.contains("vmbench run --quick"),
            "{msg}"
        );
        drop(first);
        HostLock::acquire(&root, "vmbench isolate apply").unwrap();
    }

    #[test]
    fn the_active_journal_is_named_and_forgotten() {
        let tmp = tempfile::tempdir().unwrap();
        let root = SysRoot::new(tmp.path());
        let lock = HostLock::acquire(&root, "t").unwrap();
        assert_eq!(lock.active_journal(), None);
        let j = tmp.path().join("j.json");
        lock.set_active_journal(&j).unwrap();
        assert_eq!(lock.active_journal(), Some(j.clone()));
        lock.clear_active_journal(&tmp.path().join("other.json"));
        assert_eq!(lock.active_journal(), Some(j.clone()));
        lock.clear_active_journal(&j);
        assert_eq!(lock.active_journal(), None);
    }

    #[test]
    fn a_planted_state_directory_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("run")).unwrap();
        std::os::unix::fs::symlink("/tmp", tmp.path().join("run/vmbench")).unwrap();
        let err = HostLock::acquire(&SysRoot::new(tmp.path()), "t").unwrap_err();
        let cause = std::error::Error::source(&err).map(ToString::to_string);
        assert!(
            cause
                .as_deref()
                .is_some_and(|c| c.contains("symbolic link")),
            "{err}: {cause:?}"
        );
    }
}
