//! File access under a configurable root, so fixture trees stand in for /proc and /sys.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Where /proc, /sys and /dev are read from. `/` on a real host; a fixture tree in tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysRoot {
    root: PathBuf,
}

/// Why a file under the root could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file does not exist.
    #[error("{path} is not present")]
    Missing {
        /// The file.
        path: String,
    },
    /// The file may not be read.
    #[error("{path} is not readable: permission denied")]
    Denied {
        /// The file.
        path: String,
    },
    /// Reading failed otherwise.
    #[error("{path} could not be read: {source}")]
    Io {
        /// The file.
        path: String,
        /// What the system said.
        #[source]
        source: io::Error,
    },
    /// Writing failed.
    #[error("{path} could not be written: {source}")]
    Write {
        /// The file.
        path: String,
        /// What the system said.
        #[source]
        source: io::Error,
    },
    /// The file is not UTF-8 text.
    #[error("{path} is not valid UTF-8")]
    NotUtf8 {
        /// The file.
        path: String,
    },
    /// A write outside the /proc and /sys trees under the root (a `..`, or a
    /// link that leads out): refused, nothing written.
    #[error("{path}: {why}; refusing to write there")]
    Outside {
        /// The path asked for.
        path: String,
        /// Where it leads.
        why: String,
    },
    /// The content is not what the file should hold.
    #[error("{path}: unexpected content {content:?}: {why}")]
    Malformed {
        /// The file.
        path: String,
        /// What it held.
        content: String,
        /// What was expected.
        why: String,
    },
}

impl ReadError {
    /// Whether the file does not exist.
    pub fn is_missing(&self) -> bool {
        matches!(self, ReadError::Missing { .. })
    }

    /// A [`ReadError::Malformed`] for `path`.
    pub fn malformed(path: &str, content: &str, why: impl Into<String>) -> Self {
        ReadError::Malformed {
            path: path.to_string(),
            content: content.chars().take(80).collect(),
            why: why.into(),
        }
    }

    fn from_io(path: &str, e: io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::NotFound => ReadError::Missing {
                path: path.to_string(),
            },
            io::ErrorKind::PermissionDenied => ReadError::Denied {
                path: path.to_string(),
            },
            _ => ReadError::Io {
                path: path.to_string(),
                source: e,
            },
        }
    }
}

impl SysRoot {
    /// Paths resolve under `root` (a fixture tree of /proc and /sys).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        SysRoot { root: root.into() }
    }

    /// The running machine.
    pub fn host() -> Self {
        SysRoot::new("/")
    }

    /// True when paths resolve to the running machine, so live probes (CPUID,
    /// ioctls, RDTSC) describe the same machine as the files.
    pub fn is_host(&self) -> bool {
        self.root == Path::new("/")
    }

    /// The directory paths resolve under (`/` for the running machine).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Maps an absolute machine path such as `/proc/cmdline` under the root.
    pub fn path(&self, abs: &str) -> PathBuf {
        self.root.join(abs.trim_start_matches('/'))
    }

    /// Reads a whole file as text, with the trailing newline(s) removed.
    pub fn read(&self, abs: &str) -> Result<String, ReadError> {
        let bytes = fs::read(self.path(abs)).map_err(|e| ReadError::from_io(abs, e))?;
        let text = String::from_utf8(bytes).map_err(|_| ReadError::NotUtf8 {
            path: abs.to_string(),
        })?;
        Ok(text.trim_end_matches(['\n', '\r', '\0']).to_string())
    }

    /// Reads a whole file exactly as it is (no trimming), for byte-exact restores.
    pub fn read_raw(&self, abs: &str) -> Result<String, ReadError> {
        let bytes = fs::read(self.path(abs)).map_err(|e| ReadError::from_io(abs, e))?;
        String::from_utf8(bytes).map_err(|_| ReadError::NotUtf8 {
            path: abs.to_string(),
        })
    }

    /// Reads a file holding one value and parses it.
    pub fn read_parsed<T: std::str::FromStr>(&self, abs: &str) -> Result<T, ReadError> {
        let text = self.read(abs)?;
        let trimmed = text.trim();
        trimmed
            .parse()
            .map_err(|_| ReadError::malformed(abs, trimmed, "not a number of the expected kind"))
    }

    /// Whether `abs` exists under the root.
    pub fn exists(&self, abs: &str) -> bool {
        self.path(abs).exists()
    }

    /// Names in a directory, sorted so output is stable.
    pub fn list(&self, abs: &str) -> Result<Vec<String>, ReadError> {
        let rd = fs::read_dir(self.path(abs)).map_err(|e| ReadError::from_io(abs, e))?;
        let mut names = Vec::new();
        for entry in rd {
            let entry = entry.map_err(|e| ReadError::from_io(abs, e))?;
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
        names.sort_by(|a, b| natural_cmp(a, b));
        Ok(names)
    }

    /// Entries named `<prefix><number>` (cpu0, node1, policy3, index2), sorted by number.
    pub fn numbered(&self, abs: &str, prefix: &str) -> Result<Vec<u32>, ReadError> {
        let mut ids: Vec<u32> = self
            .list(abs)?
            .iter()
            .filter_map(|n| n.strip_prefix(prefix)?.parse().ok())
            .collect();
        ids.sort_unstable();
        Ok(ids)
    }

    /// `abs` (absolute, without `..`) with every link followed, and the
    /// root, both canonical: what a write's checks compare.
    fn resolve_for_write(&self, abs: &str) -> Result<(PathBuf, PathBuf), ReadError> {
        if !abs.starts_with('/')
            || Path::new(abs)
                .components()
                .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            return Err(ReadError::Outside {
                path: abs.to_string(),
                why: "not an absolute path without `..`".into(),
            });
        }
        let real = fs::canonicalize(self.path(abs)).map_err(|e| ReadError::from_io(abs, e))?;
        let root = fs::canonicalize(&self.root).map_err(|e| ReadError::from_io(abs, e))?;
        Ok((real, root))
    }

    /// Where a write to `abs` lands, checked: no `..`, and after following
    /// every link the file is still inside `<root>/proc` or `<root>/sys` (the
    /// only trees vmbench changes). A journal or a fixture naming anything
    /// else cannot make a write escape.
    pub fn writable_path(&self, abs: &str) -> Result<PathBuf, ReadError> {
        let outside = |why: String| ReadError::Outside {
            path: abs.to_string(),
            why,
        };
        let (real, root) = self.resolve_for_write(abs)?;
        if ["proc", "sys"]
            .iter()
            .any(|tree| real.starts_with(root.join(tree)))
        {
            Ok(real)
        } else {
            Err(outside(format!(
                "it resolves to {}, outside {}/proc and {}/sys",
                real.display(),
                root.display(),
                root.display()
            )))
        }
    }

    /// Rewrites a configuration file (outside /proc and /sys: irqbalance's
    /// environment file) in place: the same inode is truncated and written,
    /// so its owner, group, mode, extended attributes (an SELinux label) and
    /// hard links stay exactly as they were, and no temporary file is left
    /// behind by a kill. Not atomic: the caller journals the original bytes
    /// first (a half-written file is repaired by the restore), and the
    /// service reads it only when restarted afterwards. Refused unless `abs`
    /// is an absolute path without `..` that reaches a regular file through
    /// no symbolic link (checked again on the open file); on the running
    /// host the file must also be root's and writable by no one else
    /// (nobody else could have planted it).
    pub fn rewrite_file(&self, abs: &str, value: &str) -> Result<(), ReadError> {
        use std::io::Write;
        use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
        let outside = |why: String| ReadError::Outside {
            path: abs.to_string(),
            why,
        };
        let (real, root) = self.resolve_for_write(abs)?;
        if real != root.join(abs.trim_start_matches('/')) {
            return Err(outside(format!(
                "it resolves to {} through a symbolic link",
                real.display()
            )));
        }
        let write_err = |e: io::Error| ReadError::Write {
            path: abs.to_string(),
            source: e,
        };
        // No link followed at the last step, and no blocking on a FIFO; the
        // checks below are on what was opened, not on the name.
        let flags = nix::fcntl::OFlag::O_NOFOLLOW | nix::fcntl::OFlag::O_NONBLOCK;
        let mut f = fs::OpenOptions::new()
            .write(true)
            .custom_flags(flags.bits())
            .open(&real)
            .map_err(|e| ReadError::from_io(abs, e))?;
        let meta = f.metadata().map_err(|e| ReadError::from_io(abs, e))?;
        if !meta.file_type().is_file() {
            return Err(outside("not a regular file".into()));
        }
        if self.is_host() && (meta.uid() != 0 || meta.mode() & 0o022 != 0) {
            return Err(outside(format!(
                "owned by uid {} with mode {:o}: only a root-owned file no one else can write is rewritten",
                meta.uid(),
                meta.mode() & 0o7777
            )));
        }
        f.set_len(0).map_err(write_err)?;
        f.write_all(value.as_bytes()).map_err(write_err)?;
        f.sync_all().map_err(write_err)?;
        Ok(())
    }

    /// Writes a value to an existing sysfs/procfs file, in one write(2) as
    /// `echo v > file` does (kernel files parse each write whole). Only
    /// inside `<root>/proc` and `<root>/sys` ([`SysRoot::writable_path`]).
    pub fn write(&self, abs: &str, value: &str) -> Result<(), ReadError> {
        use std::io::Write;
        let write_err = |e: io::Error| match e.kind() {
            io::ErrorKind::NotFound => ReadError::Missing {
                path: abs.to_string(),
            },
            _ => ReadError::Write {
                path: abs.to_string(),
                source: e,
            },
        };
        let target = self.writable_path(abs)?;
        let mut f = fs::OpenOptions::new()
            .write(true)
            .truncate(true)
            .open(target)
            .map_err(write_err)?;
        f.write_all(value.as_bytes()).map_err(write_err)
    }
}

/// Orders `cpu2` before `cpu10`.
pub fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    fn split(s: &str) -> (&str, Option<u64>) {
        let idx = s
            .char_indices()
            .rev()
            .take_while(|(_, c)| c.is_ascii_digit())
            .last()
            .map(|(i, _)| i);
        match idx {
            Some(i) => (&s[..i], s[i..].parse().ok()),
            None => (s, None),
        }
    }
    let (pa, na) = split(a);
    let (pb, nb) = split(b);
    pa.cmp(pb).then(na.cmp(&nb)).then(a.cmp(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_under_root_and_trims_newline() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("proc")).unwrap();
        std::fs::write(dir.path().join("proc/cmdline"), "quiet\n").unwrap();
        let root = SysRoot::new(dir.path());
        assert!(!root.is_host());
        assert_eq!(root.read("/proc/cmdline").unwrap(), "quiet");
        assert!(root.read("/proc/nope").unwrap_err().is_missing());
    }

    #[test]
    fn numbered_entries_sort_numerically() {
        let dir = tempfile::tempdir().unwrap();
        for n in ["cpu10", "cpu2", "cpufreq", "cpu0"] {
            std::fs::create_dir_all(dir.path().join("c").join(n)).unwrap();
        }
        let root = SysRoot::new(dir.path());
        assert_eq!(root.numbered("/c", "cpu").unwrap(), vec![0, 2, 10]);
        assert_eq!(
            root.list("/c").unwrap(),
            vec!["cpu0", "cpu2", "cpu10", "cpufreq"]
        );
    }

    #[test]
    fn writes_stay_inside_the_roots_proc_and_sys() {
        let dir = tempfile::tempdir().unwrap();
        let root_dir = dir.path().join("root");
        std::fs::create_dir_all(root_dir.join("proc/sys/kernel")).unwrap();
        std::fs::write(root_dir.join("proc/sys/kernel/watchdog"), "1\n").unwrap();
        let victim = dir.path().join("authorized_keys");
        std::fs::write(&victim, "key\n").unwrap();
        std::fs::write(root_dir.join("notes"), "x\n").unwrap();
        // A link inside /proc that leads out of the root.
        std::os::unix::fs::symlink(&victim, root_dir.join("proc/sys/kernel/escape")).unwrap();
        let root = SysRoot::new(&root_dir);
        root.write("/proc/sys/kernel/watchdog", "0").unwrap();
        assert_eq!(root.read("/proc/sys/kernel/watchdog").unwrap(), "0");
        for bad in [
            "/proc/../../authorized_keys",
            "/proc/sys/kernel/escape",
            "/notes",
            "proc/sys/kernel/watchdog",
        ] {
            let err = root.write(bad, "pwned").unwrap_err();
            assert!(matches!(err, ReadError::Outside { .. }), "{bad}: {err}");
        }
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "key\n");
        assert_eq!(
            std::fs::read_to_string(root_dir.join("notes")).unwrap(),
            "x\n"
        );
    }

    #[test]
    fn malformed_number_is_an_error_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("n"), "12abc\n").unwrap();
        let root = SysRoot::new(dir.path());
        let err = root.read_parsed::<u32>("/n").unwrap_err();
        assert!(err.to_string().contains("12abc"), "{err}");
    }
}
