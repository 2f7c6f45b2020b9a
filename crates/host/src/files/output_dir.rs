//! [`OutputDir`]: a report directory written through its descriptor, and
//! the [`Ledger`] of what was written to it.

use super::*;

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
