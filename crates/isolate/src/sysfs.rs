//! The file layer every knob reads and writes through. The real one is the
//! host crate's [`SysRoot`]; tests wrap it to inject the failures real sysfs
//! produces (EIO for an unmovable IRQ, EACCES without privilege).

use std::collections::BTreeMap;
use std::sync::Mutex;
use vmbench_host::{ReadError, SysRoot};

/// /proc and /sys under a root: what every knob reads and writes through.
pub trait Sysfs: Sync {
    /// The root paths resolve under.
    fn root(&self) -> &SysRoot;
    /// Reads a file (trailing newlines removed).
    fn read(&self, path: &str) -> Result<String, ReadError> {
        self.root().read(path)
    }
    /// Whether a path exists.
    fn exists(&self, path: &str) -> bool {
        self.root().exists(path)
    }
    /// Names in a directory, sorted.
    fn list(&self, path: &str) -> Result<Vec<String>, ReadError> {
        self.root().list(path)
    }
    /// Writes a value.
    fn write(&self, path: &str, value: &str) -> Result<(), ReadError> {
        self.root().write(path, value)
    }
    /// Would a write be allowed? Checked with access(2), so nothing changes.
    fn writable(&self, path: &str) -> Result<(), NotWritable> {
        use nix::unistd::{AccessFlags, access};
        match access(&self.root().path(path), AccessFlags::W_OK) {
            Ok(()) => Ok(()),
            Err(nix::Error::EROFS) => Err(NotWritable::ReadOnly(path.to_string())),
            Err(nix::Error::EACCES) | Err(nix::Error::EPERM) => {
                Err(NotWritable::NotRoot(path.to_string()))
            }
            Err(source) => Err(NotWritable::Other {
                path: path.to_string(),
                source,
            }),
        }
    }
}

/// Why a knob's file cannot be written (the change is then blocked).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotWritable {
    /// The file is on a read-only filesystem.
    #[error("{0} is on a read-only filesystem (a container with /sys mounted read-only?)")]
    ReadOnly(String),
    /// This user may not write it.
    #[error("{0} is not writable: run as root")]
    NotRoot(String),
    /// access(2) failed otherwise.
    #[error("{path}: {source}")]
    Other {
        /// The file.
        path: String,
        /// What the system said.
        #[source]
        source: nix::Error,
    },
}

impl Sysfs for SysRoot {
    fn root(&self) -> &SysRoot {
        self
    }
}

/// A [`SysRoot`] with injected failures, for tests.
pub struct FaultySysfs {
    /// The tree.
    pub inner: SysRoot,
    /// path → errno returned by `write`.
    pub write_errors: BTreeMap<String, nix::Error>,
    /// paths `writable` reports as blocked.
    pub not_writable: Vec<String>,
    /// Fail the write that follows this many successful ones (once).
    pub fail_after: Option<usize>,
    writes: Mutex<usize>,
}

impl FaultySysfs {
    /// No failures yet.
    pub fn new(inner: SysRoot) -> Self {
        FaultySysfs {
            inner,
            write_errors: BTreeMap::new(),
            not_writable: Vec::new(),
            fail_after: None,
            writes: Mutex::new(0),
        }
    }
}

impl FaultySysfs {
    /// The tree.
    pub fn root_ref(&self) -> &SysRoot {
        &self.inner
    }
}

impl Sysfs for FaultySysfs {
    fn root(&self) -> &SysRoot {
        &self.inner
    }
    fn write(&self, path: &str, value: &str) -> Result<(), ReadError> {
        if let Some(e) = self.write_errors.get(path) {
            return Err(ReadError::Write {
                path: path.to_string(),
                source: std::io::Error::from_raw_os_error(*e as i32),
            });
        }
        let mut n = self.writes.lock().unwrap_or_else(|p| p.into_inner());
        *n += 1;
        if self.fail_after.is_some_and(|limit| *n == limit + 1) {
            return Err(ReadError::Write {
                path: path.to_string(),
                source: std::io::Error::from_raw_os_error(nix::Error::EINVAL as i32),
            });
        }
        self.inner.write(path, value)
    }
    fn writable(&self, path: &str) -> Result<(), NotWritable> {
        if self.not_writable.iter().any(|p| p == path) {
            return Err(NotWritable::NotRoot(path.to_string()));
        }
        self.inner.writable(path)
    }
}

/// The errno behind a write failure, if any.
pub fn errno_of(e: &ReadError) -> Option<nix::Error> {
    match e {
        ReadError::Io { source, .. } | ReadError::Write { source, .. } => {
            source.raw_os_error().map(nix::Error::from_raw)
        }
        ReadError::Denied { .. } => Some(nix::Error::EACCES),
        _ => None,
    }
}
