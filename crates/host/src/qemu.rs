//! Which QEMU binary a run would use, and its version.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The binary name searched in PATH when none is configured.
pub const DEFAULT_QEMU: &str = "qemu-system-x86_64";

/// The QEMU found, and its version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct QemuVersion {
    /// The binary's path.
    pub path: String,
    /// First line of `--version`, e.g. "QEMU emulator version 7.2.19 (Debian 1:7.2+dfsg-7+deb12u17)".
    pub banner: String,
    /// The dotted version, e.g. "7.2.19".
    pub version: String,
    /// Major version.
    pub major: u32,
    /// Minor version.
    pub minor: u32,
}

/// Why no usable QEMU was found.
#[derive(Debug, thiserror::Error)]
pub enum QemuError {
    /// A bare name not found in PATH.
    #[error("{name} not found in PATH: install qemu-system-x86 (Debian) or pass --qemu PATH")]
    NotInPath {
        /// The name.
        name: String,
    },
    /// The path does not exist.
    #[error("{path}: no such file: pass --qemu with the path of qemu-system-x86_64")]
    Missing {
        /// The path given.
        path: String,
    },
    /// The binary could not be started.
    #[error("{path} could not be run: {source}")]
    Spawn {
        /// The binary.
        path: String,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// `--version` hung.
    #[error("{path} --version did not finish within {secs} s")]
    Timeout {
        /// The binary.
        path: String,
        /// How long was waited.
        secs: u64,
    },
    /// `--version` failed.
    #[error("{path} --version exited with {status}: is this a QEMU binary?")]
    Failed {
        /// The binary.
        path: String,
        /// Its exit status.
        status: String,
    },
    /// `--version` printed no version.
    #[error("{path} --version printed no recognisable version: {banner:?}")]
    NoVersion {
        /// The binary.
        path: String,
        /// What it printed.
        banner: String,
    },
}

/// Resolves a configured QEMU (a path, or a bare name looked up in PATH).
pub fn resolve(configured: Option<&Path>) -> Result<PathBuf, QemuError> {
    let name = configured.unwrap_or(Path::new(DEFAULT_QEMU));
    if name.components().count() > 1 || name.is_absolute() {
        return if name.exists() {
            Ok(name.to_path_buf())
        } else {
            Err(QemuError::Missing {
                path: name.display().to_string(),
            })
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| QemuError::NotInPath {
            name: name.display().to_string(),
        })
}

/// Runs `<qemu> --version` with a deadline.
pub fn version(path: &Path) -> Result<QemuVersion, QemuError> {
    let p = path.display().to_string();
    let mut child = Command::new(path)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|source| QemuError::Spawn {
            path: p.clone(),
            source,
        })?;
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break s,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(QemuError::Timeout { path: p, secs: 10 });
            }
            Err(source) => return Err(QemuError::Spawn { path: p, source }),
        }
    };
    let mut out = String::new();
    if let Some(mut so) = child.stdout.take() {
        use std::io::Read;
        let _ = so.read_to_string(&mut out);
    }
    if !status.success() {
        return Err(QemuError::Failed {
            path: p,
            status: status.to_string(),
        });
    }
    parse_banner(&p, &out)
}

/// Parses "QEMU emulator version X.Y.Z (...)".
pub fn parse_banner(path: &str, out: &str) -> Result<QemuVersion, QemuError> {
    let banner = out.lines().next().unwrap_or("").trim().to_string();
    let no = || QemuError::NoVersion {
        path: path.to_string(),
        banner: banner.clone(),
    };
    let rest = banner.split("version").nth(1).ok_or_else(no)?;
    let version = rest.split_whitespace().next().ok_or_else(no)?.to_string();
    let mut nums = version.split('.').map(|n| n.parse::<u32>());
    let major = nums.next().and_then(Result::ok).ok_or_else(no)?;
    let minor = nums.next().and_then(Result::ok).ok_or_else(no)?;
    Ok(QemuVersion {
        path: path.to_string(),
        banner: banner.clone(),
        version,
        major,
        minor,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_debian_and_nixpkgs_banners() {
        let v = parse_banner(
            "/usr/bin/q",
            "QEMU emulator version 7.2.19 (Debian 1:7.2+dfsg-7+deb12u17)\nCopyright (c) 2003-2022\n",
        )
        .unwrap();
        assert_eq!((v.major, v.minor, v.version.as_str()), (7, 2, "7.2.19"));
        let v = parse_banner("q", "QEMU emulator version 10.1.2\n").unwrap();
        assert_eq!((v.major, v.minor), (10, 1));
        assert!(parse_banner("q", "hello\n").is_err());
    }

    #[test]
    fn missing_path_and_not_a_qemu_are_clear_errors() {
        let e = resolve(Some(Path::new("/nonexistent/qemu"))).unwrap_err();
        assert!(e.to_string().contains("--qemu"), "{e}");
        // Scripts of our own, not /bin/false: the Nix build sandbox has
        // only /bin/sh.
        let dir = tempfile::tempdir().unwrap();
        for (name, body, want) in [
            ("fails", "exit 1", "is this a QEMU binary"),
            ("not-qemu", "echo 'hello, world'", "hello, world"),
        ] {
            let script = dir.path().join(name);
            std::fs::write(&script, format!("#!/bin/sh\n{body}\n")).unwrap();
            std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .unwrap();
            // A thread of another test may fork while the script is still
            // open for writing here (ETXTBSY until it execs): try again.
            let e = (0..50)
                .map(|_| version(&script).unwrap_err())
                .find(|e| !e.to_string().contains("Text file busy"))
                .unwrap();
            assert!(e.to_string().contains(want), "{name}: {e}");
        }
    }
}
