//! Files vmbench makes or reads on a machine other users share.
//!
//! vmbench runs as root there, and a directory others can write to (/tmp,
//! /dev/shm, a report directory) may hold what they planted: a symbolic link
//! to a root-owned file, a FIFO that blocks whoever opens it, a file they
//! keep open and truncate. So:
//!
//! - what vmbench creates in a shared directory gets an unguessable name and
//!   is created with `O_EXCL` (it never follows or reuses what is there),
//!   mode 0600 (files) or 0700 (directories) — [`private_file`], [`private_dir`];
//! - those names start with `vmbench-<pid>-`, so a later start removes what a
//!   killed run left behind (the pid no longer alive, the owner this user) —
//!   [`sweep_stale`];
//! - files read from paths vmbench was given must be regular files of bounded
//!   size (a FIFO would block, `/dev/zero` would never end) — [`read_regular`];
//! - state that decides what root writes (the isolation journal, the lock)
//!   must be owned by root or the running user and writable by no one else,
//!   in a directory no one else can rename it out of — [`read_trusted`],
//!   [`ensure_private_dir`];
//! - output files are written through a directory descriptor, under a fresh
//!   temporary name then renamed into place, never through a symbolic link
//!   (a rename replaces a planted link instead of following it) — [`OutputDir`].

mod output_dir;
#[cfg(test)]
mod tests;

pub use output_dir::{EntryKind, Ledger, OutputDir, write_named};

use nix::fcntl::{AtFlags, OFlag, open, openat, renameat};
use nix::sys::stat::{Mode, SFlag, fstat, mkdirat};
use nix::unistd::{UnlinkatFlags, unlinkat};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

/// Why a file could not be made, read or trusted.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The system call failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What the system said.
        #[source]
        source: io::Error,
    },
    /// Not a regular file (a FIFO, a device, a directory, a socket).
    #[error("{path} is {kind}, not a regular file")]
    NotRegular {
        /// The file.
        path: String,
        /// What it is.
        kind: &'static str,
    },
    /// Larger than a file of its kind can be.
    #[error("{path} is larger than the {limit} bytes a file of this kind can be")]
    TooLarge {
        /// The file.
        path: String,
        /// The limit in bytes.
        limit: u64,
    },
    /// Someone other than root or this user could have written or placed it.
    #[error("{path}: {why}; refusing to trust it")]
    Untrusted {
        /// The file or directory.
        path: String,
        /// What makes it untrustworthy.
        why: String,
    },
    /// Something is already where vmbench was to write.
    #[error("{path} {why}")]
    Occupied {
        /// The path.
        path: String,
        /// What is there.
        why: String,
    },
}

impl FileError {
    fn io(path: &Path, source: impl Into<io::Error>) -> FileError {
        FileError::Io {
            path: path.display().to_string(),
            source: source.into(),
        }
    }

    fn untrusted(path: &Path, why: impl Into<String>) -> FileError {
        FileError::Untrusted {
            path: path.display().to_string(),
            why: why.into(),
        }
    }

    /// The underlying I/O error's kind, when there is one.
    pub fn io_kind(&self) -> Option<io::ErrorKind> {
        match self {
            FileError::Io { source, .. } => Some(source.kind()),
            _ => None,
        }
    }
}

/// This process's tag in the names it creates: random, so that two
/// processes with the same pid in different PID namespaces (sharing /tmp or
/// /dev/shm) never share a name.
fn process_tag() -> &'static str {
    static TAG: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TAG.get_or_init(|| {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        format!("{:08x}", h.finish() as u32)
    })
}

/// The prefix of every name this process creates in a shared directory:
/// `vmbench-<pid>-<tag>-`.
pub fn run_prefix() -> String {
    format!("vmbench-{}-{}-", std::process::id(), process_tag())
}

/// The file whose `flock` says process `pid` (tagged `tag`) is alive:
/// `vmbench-<pid>-<tag>.alive`.
fn alive_name(pid: u32, tag: &str) -> String {
    format!("vmbench-{pid}-{tag}.alive")
}

/// This process's `.alive` file name.
fn own_alive_name() -> String {
    alive_name(std::process::id(), process_tag())
}

/// Holds, for the life of this process, an exclusive `flock` on
/// `dir/vmbench-<pid>-<tag>.alive` (made once per directory): what
/// [`sweep_stale`] asks before removing this process's entries. A lock is
/// seen from every PID namespace and goes with the process however it
/// ends; a pid is neither.
fn hold_alive_lock(dir: &Path) -> Result<(), FileError> {
    use nix::fcntl::{Flock, FlockArg};
    let mut held = alive_locks()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if held.iter().any(|(d, _)| d == dir) {
        return Ok(());
    }
    let path = dir.join(own_alive_name());
    let fd = open(
        &path,
        OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o600),
    )
    .map_err(|e| FileError::io(&path, e))?;
    let lock = Flock::lock(File::from(fd), FlockArg::LockExclusiveNonblock)
        .map_err(|(_, e)| FileError::io(&path, e))?;
    held.push((dir.to_path_buf(), lock));
    Ok(())
}

/// Removes this process's `.alive` lock files and lets go of their locks:
/// for the end of a process that removed its own entries (a process that
/// is killed leaves them, released, for the next [`sweep_stale`]).
pub fn release_alive_locks() {
    let mut held = alive_locks()
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    for (dir, lock) in held.drain(..) {
        let _ = fs::remove_file(dir.join(own_alive_name()));
        drop(lock);
    }
}

/// The `.alive` locks this process holds, by directory.
fn alive_locks() -> &'static std::sync::Mutex<Vec<(PathBuf, nix::fcntl::Flock<File>)>> {
    static HELD: std::sync::Mutex<Vec<(PathBuf, nix::fcntl::Flock<File>)>> =
        std::sync::Mutex::new(Vec::new());
    &HELD
}

/// Creates a fresh directory `vmbench-<pid>-<tag>-<random>` in `parent`,
/// mode 0700.
pub fn private_dir(parent: &Path) -> Result<PathBuf, FileError> {
    use std::os::unix::fs::PermissionsExt;
    hold_alive_lock(parent)?;
    let dir = tempfile::Builder::new()
        .prefix(&run_prefix())
        .rand_bytes(12)
        .permissions(fs::Permissions::from_mode(0o700))
        .tempdir_in(parent)
        .map_err(|e| FileError::io(parent, e))?;
    Ok(dir.keep())
}

/// Creates a fresh file `vmbench-<pid>-<random><suffix>` in `dir`, mode
/// 0600, with `O_EXCL`: nothing already there (a planted link, another
/// user's file) is followed or reused.
pub fn private_file(dir: &Path, suffix: &str) -> Result<(File, PathBuf), FileError> {
    use std::os::unix::fs::PermissionsExt;
    hold_alive_lock(dir)?;
    let file = tempfile::Builder::new()
        .prefix(&run_prefix())
        .suffix(suffix)
        .rand_bytes(12)
        .permissions(fs::Permissions::from_mode(0o600))
        .tempfile_in(dir)
        .map_err(|e| FileError::io(dir, e))?;
    file.keep().map_err(|e| FileError::io(dir, e.error))
}

/// Whether process `pid` exists (a process of another user counts).
pub fn process_alive(pid: u32) -> bool {
    let Ok(raw) = i32::try_from(pid) else {
        return false;
    };
    !matches!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(raw), None),
        Err(nix::Error::ESRCH)
    )
}

/// When process `pid` started, in clock ticks since boot (field 22 of
/// `/proc/<pid>/stat`): with the pid it names one process for its whole
/// life, where a pid alone may be reused by another. `None` when there is
/// no such process.
pub fn process_start_ticks(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: the
    // fields after it start after its last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    // Field 3 (state) is the first after the name; field 22 the 20th.
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Whether the process that holds (or held) `dir/<alive>` has ended: its
/// lock can be taken. `None` when there is no such lock file of this user
/// (entries of a vmbench from before these locks).
fn alive_lock_released(dir: &Path, alive: &str, euid: u32) -> Option<bool> {
    use nix::fcntl::{Flock, FlockArg};
    let path = dir.join(alive);
    let fd = open(
        &path,
        OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    let st = fstat(&fd).ok()?;
    if st.st_uid != euid || !is_regular(st.st_mode) {
        return None;
    }
    match Flock::lock(File::from(fd), FlockArg::LockExclusiveNonblock) {
        Ok(_released_on_drop) => Some(true),
        Err(_) => Some(false),
    }
}

/// Removes what killed vmbench processes left in `dir`: entries named
/// `vmbench-<pid>-<tag>-…` owned by this user whose process has ended, as
/// its `vmbench-<pid>-<tag>.alive` lock says (a vmbench in another PID
/// namespace sharing the directory holds its lock too, whatever its pid
/// means here). Entries without such a lock (an older vmbench's) are judged
/// by their pid. Returns what was removed. Entries of running processes, of
/// other users, and anything else are left alone.
pub fn sweep_stale(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let euid = nix::unistd::geteuid().as_raw();
    let mine = own_alive_name();
    let mut removed = Vec::new();
    let mut released_locks = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some((pid, rest)) = name
            .to_str()
            .and_then(|n| n.strip_prefix("vmbench-"))
            .and_then(|rest| rest.split_once('-'))
            .and_then(|(p, rest)| Some((p.parse::<u32>().ok()?, rest)))
        else {
            continue;
        };
        let path = entry.path();
        // lstat: a planted link is judged (and removed) as a link.
        let Ok(meta) = path.symlink_metadata() else {
            continue;
        };
        if meta.uid() != euid || name.to_str() == Some(mine.as_str()) {
            continue;
        }
        // `<tag>.alive` is a lock itself; `<tag>-<random>` an entry.
        let tag = rest
            .strip_suffix(".alive")
            .or_else(|| rest.split_once('-').map(|(t, _)| t))
            .filter(|t| t.len() == 8 && t.bytes().all(|b| b.is_ascii_hexdigit()));
        let ended = match tag.and_then(|t| alive_lock_released(dir, &alive_name(pid, t), euid)) {
            Some(released) => released,
            // An older vmbench's entry, or a lock already gone: the pid.
            None => pid != std::process::id() && !process_alive(pid),
        };
        if !ended {
            continue;
        }
        if rest.ends_with(".alive") {
            released_locks.push(path);
            continue;
        }
        // remove_dir_all does not follow links inside the tree.
        let gone = if meta.is_dir() {
            fs::remove_dir_all(&path)
        } else {
            fs::remove_file(&path)
        };
        if gone.is_ok() {
            removed.push(path);
        }
    }
    // The locks of ended processes go last, after what they vouched for.
    for lock in released_locks {
        if fs::remove_file(&lock).is_ok() {
            removed.push(lock);
        }
    }
    removed
}

fn kind_of(mode: u32) -> &'static str {
    match SFlag::from_bits_truncate(mode & SFlag::S_IFMT.bits()) {
        SFlag::S_IFIFO => "a FIFO",
        SFlag::S_IFCHR => "a character device",
        SFlag::S_IFBLK => "a block device",
        SFlag::S_IFDIR => "a directory",
        SFlag::S_IFSOCK => "a socket",
        SFlag::S_IFLNK => "a symbolic link",
        _ => "not a regular file",
    }
}

fn is_regular(mode: u32) -> bool {
    mode & SFlag::S_IFMT.bits() == SFlag::S_IFREG.bits()
}

/// Reads all of an opened file, failing past `limit` bytes.
fn read_limited(fd: OwnedFd, path: &Path, limit: u64) -> Result<Vec<u8>, FileError> {
    let st = fstat(&fd).map_err(|e| FileError::io(path, e))?;
    let mode = st.st_mode;
    if !is_regular(mode) {
        return Err(FileError::NotRegular {
            path: path.display().to_string(),
            kind: kind_of(mode),
        });
    }
    let too_large = || FileError::TooLarge {
        path: path.display().to_string(),
        limit,
    };
    if u64::try_from(st.st_size).unwrap_or(u64::MAX) > limit {
        return Err(too_large());
    }
    let mut bytes = Vec::new();
    File::from(fd)
        .take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| FileError::io(path, e))?;
    if bytes.len() as u64 > limit {
        return Err(too_large());
    }
    Ok(bytes)
}

/// Opens `path` for reading without blocking on a FIFO (`O_NONBLOCK`) and
/// checks that it is a regular file.
pub fn open_regular(path: &Path) -> Result<File, FileError> {
    let fd = open(
        path,
        OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| FileError::io(path, e))?;
    let st = fstat(&fd).map_err(|e| FileError::io(path, e))?;
    if !is_regular(st.st_mode) {
        return Err(FileError::NotRegular {
            path: path.display().to_string(),
            kind: kind_of(st.st_mode),
        });
    }
    Ok(File::from(fd))
}

/// Reads a file the user named: a regular file of at most `limit` bytes.
pub fn read_regular(path: &Path, limit: u64) -> Result<Vec<u8>, FileError> {
    let file = open_regular(path)?;
    read_limited(OwnedFd::from(file), path, limit)
}

/// [`read_regular`] as UTF-8 text.
pub fn read_regular_text(path: &Path, limit: u64) -> Result<String, FileError> {
    String::from_utf8(read_regular(path, limit)?).map_err(|_| FileError::Io {
        path: path.display().to_string(),
        source: io::Error::new(io::ErrorKind::InvalidData, "not UTF-8 text"),
    })
}

/// Checks that a file or directory may decide what root does: owned by
/// root or this user, writable by no one else.
pub fn check_owner_and_mode(path: &Path, uid: u32, mode: u32) -> Result<(), FileError> {
    let euid = nix::unistd::geteuid().as_raw();
    if uid != 0 && uid != euid {
        return Err(FileError::untrusted(
            path,
            format!("owned by uid {uid}, neither root nor this user (uid {euid})"),
        ));
    }
    if mode & 0o022 != 0 {
        return Err(FileError::untrusted(
            path,
            format!("writable by group or others (mode {:04o})", mode & 0o7777),
        ));
    }
    Ok(())
}

/// Checks the directory holding a trusted file: owned by root or this user,
/// and, when others may write to it, sticky (so they cannot rename the file
/// away and put their own in its place).
pub fn check_parent(path: &Path) -> Result<(), FileError> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    check_may_hold(parent, "what is in it")
}

/// Checks a directory that holds what root trusts (`what`): owned by root
/// or this user and, when others may write to it, sticky (so they cannot
/// rename what is in it away and put their own in its place).
fn check_may_hold(dir: &Path, what: &str) -> Result<(), FileError> {
    let meta = fs::metadata(dir).map_err(|e| FileError::io(dir, e))?;
    let euid = nix::unistd::geteuid().as_raw();
    if meta.uid() != 0 && meta.uid() != euid {
        return Err(FileError::untrusted(
            dir,
            format!(
                "the directory is owned by uid {}, who could replace {what}",
                meta.uid()
            ),
        ));
    }
    if meta.mode() & 0o022 != 0 && meta.mode() & 0o1000 == 0 {
        return Err(FileError::untrusted(
            dir,
            format!(
                "others may write to the directory (mode {:04o}) and it is not sticky: they could replace {what}",
                meta.mode() & 0o7777
            ),
        ));
    }
    Ok(())
}

/// Reads a file whose content decides what root does (the isolation
/// journal): not a symbolic link, a regular file of at most `limit` bytes,
/// owned by root or this user and writable by no one else, in a directory
/// that passes [`check_parent`]. `Ok(None)` when it does not exist.
pub fn read_trusted(path: &Path, limit: u64) -> Result<Option<Vec<u8>>, FileError> {
    let fd = match open(
        path,
        OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(nix::Error::ENOENT) => return Ok(None),
        Err(nix::Error::ELOOP) => {
            return Err(FileError::untrusted(path, "it is a symbolic link"));
        }
        Err(e) => return Err(FileError::io(path, e)),
    };
    let st = fstat(&fd).map_err(|e| FileError::io(path, e))?;
    check_owner_and_mode(path, st.st_uid, st.st_mode)?;
    check_parent(path)?;
    read_limited(fd, path, limit).map(Some)
}

/// Makes sure `dir` is a directory only root or this user controls:
/// created mode 0700 (with its parents) when missing; when present, not a
/// symbolic link, owned by root or this user, writable by no one else.
pub fn ensure_private_dir(dir: &Path) -> Result<(), FileError> {
    match dir.symlink_metadata() {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if let Some(parent) = dir.parent() {
                fs::create_dir_all(parent).map_err(|e| FileError::io(parent, e))?;
            }
            match fs::DirBuilder::new().mode(0o700).create(dir) {
                Ok(()) => {}
                // Someone made it meanwhile: judge what is there.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(FileError::io(dir, e)),
            }
            ensure_existing_private_dir(dir)
        }
        Err(e) => Err(FileError::io(dir, e)),
        Ok(_) => ensure_existing_private_dir(dir),
    }
}

fn ensure_existing_private_dir(dir: &Path) -> Result<(), FileError> {
    let meta = dir.symlink_metadata().map_err(|e| FileError::io(dir, e))?;
    if meta.file_type().is_symlink() {
        return Err(FileError::untrusted(dir, "it is a symbolic link"));
    }
    if !meta.is_dir() {
        return Err(FileError::NotRegular {
            path: dir.display().to_string(),
            kind: "not a directory",
        });
    }
    check_owner_and_mode(dir, meta.uid(), meta.mode())
}

/// Checks that only root or this user can change what is at `dir` (an
/// existing directory), the way OpenSSH checks the path to a key: `dir`
/// itself owned by root or this user and writable by no one else, and, when
/// this is root, every directory above it (on the path as given and on the
/// path its links lead to) owned by root and, when others may write to it,
/// sticky (/tmp): otherwise another user could rename `dir` away and put a
/// directory of theirs in its place. (For another user the parents are not
/// judged: a build sandbox shows the directories above its output as owned
/// by an unmapped uid, and what such a user writes is theirs to lose.)
pub fn check_trusted_dir(dir: &Path) -> Result<(), FileError> {
    let abs = std::path::absolute(dir).map_err(|e| FileError::io(dir, e))?;
    let meta = abs.symlink_metadata().map_err(|e| FileError::io(&abs, e))?;
    let real = if meta.file_type().is_symlink() {
        // The link itself sits in a directory checked below; what it
        // points to is checked as the real path.
        abs.canonicalize().map_err(|e| FileError::io(&abs, e))?
    } else {
        abs.clone()
    };
    let real_meta = fs::metadata(&real).map_err(|e| FileError::io(&real, e))?;
    if !real_meta.is_dir() {
        return Err(FileError::NotRegular {
            path: real.display().to_string(),
            kind: "not a directory",
        });
    }
    check_owner_and_mode(&real, real_meta.uid(), real_meta.mode())?;
    if !nix::unistd::geteuid().is_root() {
        return Ok(());
    }
    let canonical = real.canonicalize().map_err(|e| FileError::io(&real, e))?;
    check_ancestors(dir, &[abs.as_path(), canonical.as_path()], 1)
}

/// Checks where a directory that does not exist yet would be made: its
/// nearest existing ancestor and every directory above that must be ones
/// only root or this user can change (sticky ones such as /tmp count: the
/// directory vmbench makes there is its own). An existing `dir` is
/// checked with [`check_trusted_dir`].
pub fn check_trusted_new_dir(dir: &Path) -> Result<(), FileError> {
    let abs = std::path::absolute(dir).map_err(|e| FileError::io(dir, e))?;
    if abs.symlink_metadata().is_ok() {
        return check_trusted_dir(dir);
    }
    let existing = abs
        .ancestors()
        .find(|a| a.symlink_metadata().is_ok())
        .unwrap_or(Path::new("/"));
    check_may_hold(existing, &format!("{} once made", dir.display()))?;
    if !nix::unistd::geteuid().is_root() {
        return Ok(());
    }
    let canonical = existing
        .canonicalize()
        .map_err(|e| FileError::io(existing, e))?;
    check_ancestors(dir, &[existing, canonical.as_path()], 0)
}

/// Every directory above each of `paths` (skipping the first `skip`
/// components counted from the path itself) owned by root and, when
/// others may write to it, sticky.
fn check_ancestors(dir: &Path, paths: &[&Path], skip: usize) -> Result<(), FileError> {
    for path in paths {
        for ancestor in path.ancestors().skip(skip) {
            let m = ancestor
                .symlink_metadata()
                .map_err(|e| FileError::io(ancestor, e))?;
            if m.uid() != 0 {
                return Err(FileError::untrusted(
                    ancestor,
                    format!(
                        "owned by uid {}, who could replace {} (give a directory whose every parent belongs to root)",
                        m.uid(),
                        dir.display()
                    ),
                ));
            }
            if !m.file_type().is_symlink() && m.mode() & 0o022 != 0 && m.mode() & 0o1000 == 0 {
                return Err(FileError::untrusted(
                    ancestor,
                    format!(
                        "others may write to it (mode {:04o}) and it is not sticky: they could replace {}",
                        m.mode() & 0o7777,
                        dir.display()
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Opens (creating, mode 0600, when missing) a file in a directory that
/// passed [`ensure_private_dir`], without following a symbolic link, for
/// reading and writing. Checks owner and mode like [`read_trusted`].
pub fn open_private(path: &Path) -> Result<File, FileError> {
    let fd = open(
        path,
        OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o600),
    )
    .map_err(|e| match e {
        nix::Error::ELOOP => FileError::untrusted(path, "it is a symbolic link"),
        e => FileError::io(path, e),
    })?;
    let st = fstat(&fd).map_err(|e| FileError::io(path, e))?;
    if !is_regular(st.st_mode) {
        return Err(FileError::NotRegular {
            path: path.display().to_string(),
            kind: kind_of(st.st_mode),
        });
    }
    check_owner_and_mode(path, st.st_uid, st.st_mode)?;
    Ok(File::from(fd))
}

/// Whether `name` is one [`temp_name`] makes.
fn is_temp_name(name: &str) -> bool {
    let Some(rest) = name.strip_prefix('.').and_then(|r| r.strip_suffix(".tmp")) else {
        return false;
    };
    let Some((base, hash)) = rest.rsplit_once('.') else {
        return false;
    };
    !base.is_empty() && hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A random name for a temporary file next to its final name (std's
/// per-process random hash keys: unguessable enough, and `O_EXCL` makes a
/// collision an error, never a reuse).
fn temp_name(name: &str) -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write(name.as_bytes());
    h.write_u32(std::process::id());
    format!(".{name}.{:016x}.tmp", h.finish())
}
