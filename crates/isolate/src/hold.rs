//! The two policies of `vmbench isolate` that are about the host, not the
//! command line: holding an applied host until a stop signal, and when a
//! restore may run while another vmbench holds the host.

use crate::IsolateError;
use crate::apply::{self, Applied, RestoreReport};
use crate::lock::HostLock;
use nix::sys::signal::{SigSet, Signal};
use std::path::{Path, PathBuf};
use vmbench_host::SysRoot;

/// The stop signals (SIGINT, SIGTERM, SIGHUP, SIGQUIT), blocked on this
/// thread from before the first change: one that arrives mid-apply waits
/// until the host can be restored (or, without holding, until the journal
/// is written and the command exits), instead of killing it half-way.
pub struct StopSignals(SigSet);

impl StopSignals {
    /// Blocks them on the calling thread (threads it starts inherit it).
    pub fn block() -> Result<StopSignals, IsolateError> {
        let mut set = SigSet::empty();
        for sig in vmbench_host::signals::HANDLED {
            set.add(sig);
        }
        set.thread_block().map_err(|e| IsolateError::Signals {
            what: "blocking the stop signals",
            source: e,
        })?;
        Ok(StopSignals(set))
    }
}

/// Holds `applied` until a stop signal arrives, then restores the host. A
/// second signal during the restore is handled as it arrives: it says what
/// is left to restore and exits at once.
pub fn hold_until_signal(
    applied: Applied,
    signals: StopSignals,
) -> Result<(Signal, RestoreReport), IsolateError> {
    let sig = signals.0.wait().map_err(|e| IsolateError::Signals {
        what: "waiting for a stop signal",
        source: e,
    })?;
    vmbench_host::signals::note_received(sig as i32);
    vmbench_host::signals::install();
    signals
        .0
        .thread_unblock()
        .map_err(|e| IsolateError::Signals {
            what: "unblocking the stop signals",
            source: e,
        })?;
    Ok((sig, applied.restore()?))
}

/// The lock a restore runs under.
#[derive(Debug)]
pub enum RestoreLock {
    /// No other vmbench holds the host: the lock is ours for the restore.
    Held(HostLock),
    /// Another vmbench holds the host, and the restore was forced past it.
    Forced {
        /// Who holds it.
        holder: String,
        /// The lock file.
        lock: String,
    },
}

impl RestoreLock {
    /// Takes the host lock for a restore. While another vmbench holds it,
    /// that vmbench restores the host itself when it ends, so a restore is
    /// refused unless `force` (it removes the holder's changes under it).
    pub fn take(root: &SysRoot, command: &str, force: bool) -> Result<RestoreLock, IsolateError> {
        match HostLock::acquire(root, command) {
            Ok(l) => Ok(RestoreLock::Held(l)),
            Err(IsolateError::Busy { holder, lock }) if force => {
                Ok(RestoreLock::Forced { holder, lock })
            }
            Err(IsolateError::Busy { holder, lock }) => {
                Err(IsolateError::RestoreWhileHeld { holder, lock })
            }
            Err(e) => Err(e),
        }
    }

    fn lock(&self) -> Option<&HostLock> {
        match self {
            RestoreLock::Held(l) => Some(l),
            RestoreLock::Forced { .. } => None,
        }
    }

    /// Restores from the journal at `journal`, or says there is none (and
    /// where the host's live changes are journaled, when elsewhere).
    pub fn restore(&self, root: &SysRoot, journal: &Path) -> Result<Restore, IsolateError> {
        if !journal.exists() {
            let ours = std::path::absolute(journal).unwrap_or_else(|_| journal.to_path_buf());
            let live_elsewhere = self
                .lock()
                .and_then(HostLock::active_journal)
                .filter(|active| *active != ours && active.exists());
            return Ok(Restore::NoJournal { live_elsewhere });
        }
        apply::restore(root, journal, self.lock()).map(Restore::Done)
    }
}

/// What a restore found.
#[derive(Debug)]
pub enum Restore {
    /// No journal at the path given: nothing to restore there.
    NoJournal {
        /// The journal of the host's live changes, when it is another.
        live_elsewhere: Option<PathBuf>,
    },
    /// The journal was restored (what failed stays in it).
    Done(RestoreReport),
}
