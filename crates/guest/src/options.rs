//! Agent options: from the kernel cmdline (`vmbench.*=`) and argv.

use std::path::PathBuf;
pub use vmbench_proto::Mapping;

/// How the agent runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentOptions {
    /// Running as init: mount /proc, /sys, /dev and power off at the end.
    pub pid1: bool,
    /// Map this file instead of the ivshmem device (tests, `--loopback`).
    pub path: Option<PathBuf>,
    /// The vmbench module to load (`vmbench.module=`; default the initramfs's).
    pub module: PathBuf,
    /// How to map the shared memory (`vmbench.mapping=wb|uc|wc`).
    pub mapping: Mapping,
    /// Never answer the handshake (fault tests: a guest that hangs).
    pub hang: bool,
    /// Stop answering when this suite's command arrives (`vmexit` or `shm`):
    /// fault tests of a guest that hangs mid-run.
    pub hang_on: Option<String>,
    /// Start /bin/sh on the console next to the agent (`vmbench vm boot --shell`).
    pub shell: bool,
    /// Power off when the host says shutdown (always true as PID 1).
    pub poweroff: bool,
}

impl Default for AgentOptions {
    fn default() -> Self {
        AgentOptions {
            pid1: false,
            path: None,
            module: PathBuf::from("/lib/modules/vmbench.ko"),
            mapping: Mapping::Wb,
            hang: false,
            hang_on: None,
            shell: false,
            poweroff: false,
        }
    }
}

/// An agent option that is not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OptionError {
    /// `vmbench.mapping` is not wb, uc or wc.
    #[error("vmbench.mapping={0}: expected wb, uc or wc")]
    Mapping(String),
    /// `vmbench.hang_on` is not vmexit or shm.
    #[error("vmbench.hang_on={0}: expected vmexit or shm")]
    HangOn(String),
    /// A `vmbench.` option the agent does not know.
    #[error("unknown option vmbench.{0}")]
    Unknown(String),
    /// An argument given without its value.
    #[error("{0} needs a value")]
    MissingValue(&'static str),
    /// An argument the agent does not know.
    #[error("unknown argument {0:?} (expected --path FILE, --mapping M, --poweroff)")]
    Argument(String),
}

impl AgentOptions {
    /// Reads `vmbench.*` options from a kernel cmdline.
    pub fn apply_cmdline(&mut self, cmdline: &str) -> Result<(), OptionError> {
        for tok in cmdline.split_whitespace() {
            if tok == "--" {
                break;
            }
            let Some(rest) = tok.strip_prefix("vmbench.") else {
                continue;
            };
            let (k, v) = rest.split_once('=').unwrap_or((rest, "1"));
            match k {
                "mapping" => {
                    self.mapping = match v {
                        "wb" => Mapping::Wb,
                        "uc" => Mapping::Uc,
                        "wc" => Mapping::Wc,
                        _ => return Err(OptionError::Mapping(v.to_string())),
                    }
                }
                "module" => self.module = PathBuf::from(v),
                "hang" => self.hang = v == "1",
                "hang_on" => match v {
                    "vmexit" | "shm" => self.hang_on = Some(v.to_string()),
                    _ => return Err(OptionError::HangOn(v.to_string())),
                },
                "shell" => self.shell = v == "1",
                _ => return Err(OptionError::Unknown(k.to_string())),
            }
        }
        Ok(())
    }

    /// argv (`--path FILE`, `--poweroff`, `--mapping wb|uc|wc`) after the
    /// kernel cmdline, so argv wins.
    pub fn from_args_and_cmdline(args: &[String]) -> Result<AgentOptions, OptionError> {
        let mut o = AgentOptions {
            pid1: std::process::id() == 1,
            ..Default::default()
        };
        if o.pid1 {
            // As init nothing is mounted yet, and the options are in /proc/cmdline.
            for p in crate::pid1::mount_basics() {
                println!("vmbench-guest: {p}");
            }
        }
        if let Ok(c) = std::fs::read_to_string("/proc/cmdline") {
            o.apply_cmdline(&c)?;
        }
        let mut it = args.iter();
        while let Some(a) = it.next() {
            match a.as_str() {
                "--path" => {
                    o.path = Some(PathBuf::from(
                        it.next().ok_or(OptionError::MissingValue("--path"))?,
                    ))
                }
                "--poweroff" => o.poweroff = true,
                "--mapping" => {
                    let v = it.next().ok_or(OptionError::MissingValue("--mapping"))?;
                    o.apply_cmdline(&format!("vmbench.mapping={v}"))?;
                }
                other => return Err(OptionError::Argument(other.to_string())),
            }
        }
        if o.pid1 {
            o.poweroff = true;
        }
        Ok(o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cmdline_options() {
        let mut o = AgentOptions::default();
        o.apply_cmdline(
            "console=ttyS0 vmbench.mapping=uc vmbench.shell vmbench.hang=1 -- vmbench.mapping=wc",
        )
        .unwrap();
        assert_eq!(o.mapping, Mapping::Uc);
        assert!(o.shell && o.hang);
        assert!(o.apply_cmdline("vmbench.mapping=fast").is_err());
        assert!(o.apply_cmdline("vmbench.frobnicate=1").is_err());
    }
}
