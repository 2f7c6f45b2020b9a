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

/// A directory written through its descriptor: files are created under a
/// fresh temporary name with `O_EXCL | O_NOFOLLOW` and renamed into place,
/// subdirectories are opened with `O_NOFOLLOW`; nothing written ever
/// follows a symbolic link someone placed in it.
#[derive(Debug)]
pub struct OutputDir {
    fd: OwnedFd,
    path: PathBuf,
    /// Where what is written (or read) here is recorded, and this
    /// directory's path inside the recorded tree (`""` or `"plots/"`).
    ledger: Option<(Ledger, String)>,
}

/// The SHA-256 of every file written or read through an [`OutputDir`] (and
/// its subdirectories) that records into it, by path relative to that
/// directory: what a manifest must say of those files is what this
/// process wrote or read, whatever stands on disk when the manifest is
/// made (a file swapped after it was written no longer matches).
#[derive(Debug, Default, Clone)]
pub struct Ledger(std::sync::Arc<std::sync::Mutex<std::collections::BTreeMap<String, [u8; 32]>>>);

impl Ledger {
    /// An empty ledger.
    pub fn new() -> Ledger {
        Ledger::default()
    }

    fn record(&self, rel: String, bytes: &[u8]) {
        use sha2::Digest;
        let hash: [u8; 32] = sha2::Sha256::digest(bytes).into();
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(rel, hash);
    }

    /// The recorded SHA-256 of `rel` (`a/b`), if it was written or read.
    pub fn sha256(&self, rel: &str) -> Option<[u8; 32]> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(rel)
            .copied()
    }

    /// Forgets every path under `prefix` (`plots/`): it was removed.
    fn forget_under(&self, prefix: &str) {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|k, _| !k.starts_with(prefix));
    }
}

impl OutputDir {
    /// Creates `path` (and its parents) when missing, then opens it. `path`
    /// itself must not be a symbolic link.
    pub fn create(path: &Path) -> Result<OutputDir, FileError> {
        fs::create_dir_all(path).map_err(|e| FileError::io(path, e))?;
        OutputDir::open(path)
    }

    /// Checks, before a long run, that [`OutputDir::create`] will succeed
    /// at `path` and that files can be written there: an existing `path`
    /// must be a directory (not a symbolic link) where a file can be made;
    /// a new one needs its nearest existing ancestor to take a new
    /// directory. The probe (a file or directory with a random name) is
    /// removed at once; nothing else changes.
    pub fn check_writable(path: &Path) -> Result<(), FileError> {
        if fs::symlink_metadata(path).is_ok() {
            let dir = OutputDir::open(path)?;
            tempfile::Builder::new()
                .prefix(".vmbench-probe-")
                .tempfile_in(dir.path())
                .map_err(|e| FileError::io(path, e))?;
            return Ok(());
        }
        let mut ancestor = path.parent();
        while let Some(a) = ancestor {
            let a = if a.as_os_str().is_empty() {
                Path::new(".")
            } else {
                a
            };
            if fs::symlink_metadata(a).is_ok() {
                if !a.is_dir() {
                    return Err(FileError::Occupied {
                        path: a.display().to_string(),
                        why: "is not a directory".into(),
                    });
                }
                tempfile::Builder::new()
                    .prefix(".vmbench-probe-")
                    .tempdir_in(a)
                    .map_err(|e| FileError::io(a, e))?;
                return Ok(());
            }
            ancestor = a.parent();
        }
        Err(FileError::Occupied {
            path: path.display().to_string(),
            why: "has no existing parent directory".into(),
        })
    }

    /// Opens an existing directory (not through a symbolic link at its last
    /// component).
    pub fn open(path: &Path) -> Result<OutputDir, FileError> {
        let fd = open(
            path,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| match e {
            nix::Error::ELOOP => FileError::untrusted(
                path,
                "it is a symbolic link: give the directory it points to",
            ),
            e => FileError::io(path, e),
        })?;
        Ok(OutputDir {
            fd,
            path: path.to_path_buf(),
            ledger: None,
        })
    }

    /// This directory, recording every file written or read through it
    /// (and its subdirectories) in `ledger`.
    pub fn recording(mut self, ledger: &Ledger) -> OutputDir {
        self.ledger = Some((ledger.clone(), String::new()));
        self
    }

    /// The ledger this directory records into, if it records.
    pub fn ledger(&self) -> Option<&Ledger> {
        self.ledger.as_ref().map(|(l, _)| l)
    }

    fn sub_ledger(&self, name: &str) -> Option<(Ledger, String)> {
        self.ledger
            .as_ref()
            .map(|(l, prefix)| (l.clone(), format!("{prefix}{name}/")))
    }

    fn record(&self, name: &str, bytes: &[u8]) {
        if let Some((l, prefix)) = &self.ledger {
            l.record(format!("{prefix}{name}"), bytes);
        }
    }

    /// Forgets what was recorded under the subdirectory `name` (it is
    /// being removed).
    pub fn forget_subdir(&self, name: &str) {
        if let Some((l, prefix)) = &self.ledger {
            l.forget_under(&format!("{prefix}{name}/"));
        }
    }

    /// The directory holding `file`, for writing `file` in it.
    pub fn parent_of(file: &Path) -> Result<(OutputDir, String), FileError> {
        let name =
            file.file_name()
                .and_then(|n| n.to_str())
                .ok_or_else(|| FileError::Occupied {
                    path: file.display().to_string(),
                    why: "does not end in a file name".into(),
                })?;
        let parent = match file.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        Ok((OutputDir::open(parent)?, name.to_string()))
    }

    /// The directory's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn child(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Opens the subdirectory `name`, never through a link.
    fn open_subdir(&self, name: &str) -> nix::Result<OwnedFd> {
        openat(
            &self.fd,
            name,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
    }

    /// A subdirectory, created (mode 0755) when missing; one that is a
    /// symbolic link is refused.
    pub fn subdir(&self, name: &str) -> Result<OutputDir, FileError> {
        match mkdirat(&self.fd, name, Mode::from_bits_truncate(0o755)) {
            Ok(()) | Err(nix::Error::EEXIST) => {}
            Err(e) => return Err(FileError::io(&self.child(name), e)),
        }
        let fd = self.open_subdir(name).map_err(|e| match e {
            nix::Error::ELOOP | nix::Error::ENOTDIR => FileError::Occupied {
                path: self.child(name).display().to_string(),
                why: "is not a directory vmbench made (a symbolic link or a file was placed there)"
                    .into(),
            },
            e => FileError::io(&self.child(name), e),
        })?;
        Ok(OutputDir {
            fd,
            path: self.child(name),
            ledger: self.sub_ledger(name),
        })
    }

    /// An existing subdirectory (not created; a link is refused).
    pub fn existing_subdir(&self, name: &str) -> Result<OutputDir, FileError> {
        let fd = self.open_subdir(name).map_err(|e| match e {
            nix::Error::ELOOP | nix::Error::ENOTDIR => FileError::NotRegular {
                path: self.child(name).display().to_string(),
                kind: "not a directory (a link or a file)",
            },
            e => FileError::io(&self.child(name), e),
        })?;
        Ok(OutputDir {
            fd,
            path: self.child(name),
            ledger: self.sub_ledger(name),
        })
    }

    /// Writes `name` whole: a fresh temporary file, then a rename over
    /// `name` (which replaces a link there rather than writing through it).
    pub fn write(&self, name: &str, bytes: &[u8]) -> Result<(), FileError> {
        let tmp = temp_name(name);
        let fd = openat(
            &self.fd,
            tmp.as_str(),
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o644),
        )
        .map_err(|e| FileError::io(&self.child(&tmp), e))?;
        // Synced before the rename: a full disk or an I/O error shows here,
        // not as a short file under the final name.
        let written = {
            let mut f = File::from(fd);
            f.write_all(bytes)
                .and_then(|()| f.flush())
                .and_then(|()| f.sync_data())
        };
        let placed = written
            .map_err(|e| FileError::io(&self.child(name), e))
            .and_then(|()| {
                renameat(&self.fd, tmp.as_str(), &self.fd, name)
                    .map_err(|e| FileError::io(&self.child(name), e))
            });
        match placed {
            Ok(()) => self.record(name, bytes),
            Err(_) => {
                let _ = unlinkat(&self.fd, tmp.as_str(), UnlinkatFlags::NoRemoveDir);
            }
        }
        placed
    }

    /// Removes what a write killed before its rename left here: files
    /// named like [`OutputDir::write`]'s temporary files
    /// (`.<name>.<16 hex digits>.tmp`). Returns how many.
    pub fn remove_stale_temporaries(&self) -> Result<usize, FileError> {
        let mut removed = 0;
        for (name, kind) in self.entries()? {
            if kind == EntryKind::File && is_temp_name(&name) {
                self.remove(&name)?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Opens `name` for reading: a regular file, not through a link.
    pub fn open_file(&self, name: &str) -> Result<File, FileError> {
        let fd = openat(
            &self.fd,
            name,
            OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| match e {
            nix::Error::ELOOP => FileError::NotRegular {
                path: self.child(name).display().to_string(),
                kind: "a symbolic link",
            },
            e => FileError::io(&self.child(name), e),
        })?;
        let st = fstat(&fd).map_err(|e| FileError::io(&self.child(name), e))?;
        if !is_regular(st.st_mode) {
            return Err(FileError::NotRegular {
                path: self.child(name).display().to_string(),
                kind: kind_of(st.st_mode),
            });
        }
        Ok(File::from(fd))
    }

    /// Reads `name` whole: a regular file of at most `limit` bytes, not
    /// through a link.
    pub fn read(&self, name: &str, limit: u64) -> Result<Vec<u8>, FileError> {
        let file = self.open_file(name)?;
        let bytes = read_limited(OwnedFd::from(file), &self.child(name), limit)?;
        self.record(name, &bytes);
        Ok(bytes)
    }

    /// Whether `name` exists here (a link counts, and is not followed).
    pub fn contains(&self, name: &str) -> bool {
        nix::sys::stat::fstatat(&self.fd, name, AtFlags::AT_SYMLINK_NOFOLLOW).is_ok()
    }

    /// Removes the file `name` (a link is removed, not followed); none is fine.
    pub fn remove(&self, name: &str) -> Result<(), FileError> {
        match unlinkat(&self.fd, name, UnlinkatFlags::NoRemoveDir) {
            Ok(()) | Err(nix::Error::ENOENT) => Ok(()),
            Err(e) => Err(FileError::io(&self.child(name), e)),
        }
    }

    /// The names in the directory with whether each is a directory, a
    /// regular file, or something else (links are not followed).
    pub fn entries(&self) -> Result<Vec<(String, EntryKind)>, FileError> {
        let dup = self
            .fd
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| FileError::io(&self.path, e))?;
        let mut dir = nix::dir::Dir::from_fd(dup).map_err(|e| FileError::io(&self.path, e))?;
        let mut out = Vec::new();
        for entry in dir.iter() {
            let entry = entry.map_err(|e| FileError::io(&self.path, e))?;
            let Ok(name) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if name == "." || name == ".." {
                continue;
            }
            let kind = match nix::sys::stat::fstatat(
                &self.fd,
                name.as_str(),
                AtFlags::AT_SYMLINK_NOFOLLOW,
            ) {
                Ok(st) if is_regular(st.st_mode) => EntryKind::File,
                Ok(st) if st.st_mode & SFlag::S_IFMT.bits() == SFlag::S_IFDIR.bits() => {
                    EntryKind::Dir
                }
                _ => EntryKind::Other,
            };
            out.push((name, kind));
        }
        out.sort();
        Ok(out)
    }
}

/// What a directory entry is, as [`OutputDir::entries`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A link, FIFO, socket or device.
    Other,
}

/// Writes a file the user named (`--csv FILE`): through [`OutputDir::write`]
/// in its directory, so a link planted at that name is replaced, not followed.
pub fn write_named(path: &Path, bytes: &[u8]) -> Result<(), FileError> {
    let (dir, name) = OutputDir::parent_of(path)?;
    dir.write(&name, bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn private_files_and_dirs_are_fresh_unguessable_and_private() {
        let tmp = tempfile::tempdir().unwrap();
        let (_f1, a) = private_file(tmp.path(), ".shm").unwrap();
        let (_f2, b) = private_file(tmp.path(), ".shm").unwrap();
        assert_ne!(a, b);
        let name = a.file_name().unwrap().to_str().unwrap();
        assert!(
            name.starts_with(&run_prefix()) && name.ends_with(".shm"),
            "{name}"
        );
        assert!(name.len() >= run_prefix().len() + 12 + 4, "{name}");
        assert_eq!(fs::metadata(&a).unwrap().mode() & 0o777, 0o600);
        let d = private_dir(tmp.path()).unwrap();
        assert_eq!(fs::metadata(&d).unwrap().mode() & 0o777, 0o700);
    }

    #[test]
    fn a_fifo_or_an_oversized_file_is_refused_without_blocking() {
        let tmp = tempfile::tempdir().unwrap();
        let fifo = tmp.path().join("fifo");
        nix::unistd::mkfifo(&fifo, Mode::from_bits_truncate(0o600)).unwrap();
        let err = read_regular(&fifo, 100).unwrap_err();
        assert!(err.to_string().contains("a FIFO"), "{err}");
        let big = tmp.path().join("big");
        fs::write(&big, vec![b'x'; 101]).unwrap();
        assert!(matches!(
            read_regular(&big, 100),
            Err(FileError::TooLarge { limit: 100, .. })
        ));
        fs::write(&big, b"ok").unwrap();
        assert_eq!(read_regular(&big, 100).unwrap(), b"ok");
        let err = read_regular(Path::new("/dev/zero"), 100).unwrap_err();
        assert!(err.to_string().contains("character device"), "{err}");
    }

    #[test]
    fn trusted_files_must_not_be_links_nor_writable_by_others() {
        let tmp = tempfile::tempdir().unwrap();
        let f = tmp.path().join("journal.json");
        assert!(read_trusted(&f, 100).unwrap().is_none());
        fs::write(&f, b"{}").unwrap();
        fs::set_permissions(&f, fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(read_trusted(&f, 100).unwrap().unwrap(), b"{}");
        fs::set_permissions(&f, fs::Permissions::from_mode(0o666)).unwrap();
        let err = read_trusted(&f, 100).unwrap_err();
        assert!(
            err.to_string().contains("writable by group or others"),
            "{err}"
        );
        let link = tmp.path().join("link.json");
        std::os::unix::fs::symlink(&f, &link).unwrap();
        let err = read_trusted(&link, 100).unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        // A world-writable directory without the sticky bit lets anyone
        // swap the file: refused even though the file itself is fine.
        let open_dir = tmp.path().join("open");
        fs::create_dir(&open_dir).unwrap();
        fs::set_permissions(&open_dir, fs::Permissions::from_mode(0o777)).unwrap();
        let inside = open_dir.join("j.json");
        fs::write(&inside, b"{}").unwrap();
        fs::set_permissions(&inside, fs::Permissions::from_mode(0o600)).unwrap();
        let err = read_trusted(&inside, 100).unwrap_err();
        assert!(err.to_string().contains("not sticky"), "{err}");
        fs::set_permissions(&open_dir, fs::Permissions::from_mode(0o1777)).unwrap();
        assert!(read_trusted(&inside, 100).is_ok());
    }

    #[test]
    fn private_dirs_are_made_0700_and_a_planted_link_or_open_dir_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().join("run/vmbench");
        ensure_private_dir(&d).unwrap();
        assert_eq!(fs::metadata(&d).unwrap().mode() & 0o7777, 0o700);
        ensure_private_dir(&d).unwrap();
        fs::set_permissions(&d, fs::Permissions::from_mode(0o777)).unwrap();
        assert!(ensure_private_dir(&d).is_err());
        let link = tmp.path().join("elsewhere");
        std::os::unix::fs::symlink(tmp.path(), &link).unwrap();
        let err = ensure_private_dir(&link).unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
    }

    #[test]
    fn output_files_replace_a_planted_link_instead_of_writing_through_it() {
        let tmp = tempfile::tempdir().unwrap();
        let victim = tmp.path().join("victim");
        fs::write(&victim, b"precious").unwrap();
        let out = tmp.path().join("out");
        let dir = OutputDir::create(&out).unwrap();
        std::os::unix::fs::symlink(&victim, out.join("report.md")).unwrap();
        dir.write("report.md", b"# report").unwrap();
        assert_eq!(fs::read(&victim).unwrap(), b"precious");
        assert_eq!(fs::read(out.join("report.md")).unwrap(), b"# report");
        assert!(
            !out.join("report.md")
                .symlink_metadata()
                .unwrap()
                .file_type()
                .is_symlink()
        );
        // A subdirectory replaced by a link is refused, not followed.
        std::os::unix::fs::symlink(tmp.path(), out.join("plots")).unwrap();
        let err = dir.subdir("plots").unwrap_err();
        assert!(
            err.to_string().contains("not a directory vmbench made"),
            "{err}"
        );
        // The top directory itself given as a link is refused.
        let link = tmp.path().join("out-link");
        std::os::unix::fs::symlink(&out, &link).unwrap();
        assert!(OutputDir::open(&link).is_err());
        // Reading refuses links too.
        let err = dir.read("report.md", 100).map(|_| ()).and_then(|()| {
            std::os::unix::fs::symlink(&victim, out.join("x")).unwrap();
            dir.read("x", 100).map(|_| ())
        });
        assert!(err.unwrap_err().to_string().contains("symbolic link"));
        let names: Vec<_> = dir.entries().unwrap();
        assert!(
            names.contains(&("plots".into(), EntryKind::Other)),
            "{names:?}"
        );
        assert!(
            names.contains(&("report.md".into(), EntryKind::File)),
            "{names:?}"
        );
    }

    #[test]
    fn stale_entries_of_dead_processes_are_swept_and_live_ones_kept() {
        let tmp = tempfile::tempdir().unwrap();
        // A pid that cannot be running (above pid_max's ceiling).
        let dead = tmp.path().join("vmbench-4194305-abc.shm");
        fs::write(&dead, b"").unwrap();
        let dead_dir = tmp.path().join("vmbench-4194306-xyz");
        fs::create_dir_all(dead_dir.join("inner")).unwrap();
        let mine = tmp.path().join(format!("{}live", run_prefix()));
        fs::write(&mine, b"").unwrap();
        let init = tmp.path().join("vmbench-1-running");
        fs::write(&init, b"").unwrap();
        let other = tmp.path().join("not-ours");
        fs::write(&other, b"").unwrap();
        let mut removed = sweep_stale(tmp.path());
        removed.sort();
        assert_eq!(removed, vec![dead.clone(), dead_dir.clone()]);
        assert!(mine.exists() && init.exists() && other.exists());
    }
}
