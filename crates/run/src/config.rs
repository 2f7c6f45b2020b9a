//! `vmbench run --config FILE`: YAML, every field optional (documented in
//! `examples/vmbench.yaml`). Unknown keys and bad values are errors with the
//! line and column, from serde-saphyr.

use crate::Suite;
use serde::{Deserialize, Deserializer};
use std::path::{Path, PathBuf};
use vmbench_host::CpuList;
use vmbench_proto::vmexit::Row;
use vmbench_vm::{AccelChoice, GuestKind};

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Suites to run, in order: `vmexit`, `shm`.
    pub suites: Option<Vec<Suite>>,
    pub accel: Option<AccelChoice>,
    /// Benchmark CPUs: isolation audit and vCPU pinning.
    #[serde(default, deserialize_with = "cpus")]
    pub cpus: Option<CpuList>,
    pub quick: Option<bool>,
    pub out: Option<PathBuf>,
    /// Sign the report with this key (see `vmbench report sign --key`).
    pub sign: Option<PathBuf>,
    pub isolation: Option<IsolationConfig>,
    pub vm: Option<VmConfig>,
    pub vmexit: Option<VmexitConfig>,
    pub shm: Option<ShmConfig>,
}

/// Whether to change host knobs: `auto` applies when running as root and
/// audits only otherwise; `yes` refuses to start if it cannot apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApplyMode {
    Auto,
    Yes,
    No,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IsolationConfig {
    pub apply: Option<ApplyMode>,
    /// Runtime knobs to leave alone (ids as `vmbench isolate check` prints them).
    pub skip: Option<Vec<String>>,
    pub journal: Option<PathBuf>,
    /// Read and write /proc and /sys under this directory (fixture trees).
    pub root: Option<PathBuf>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmConfig {
    pub image: Option<PathBuf>,
    pub qemu: Option<PathBuf>,
    /// The VM-exit suite's guest (the shm suite always uses the Linux guest).
    pub guest: Option<GuestKind>,
    pub micro_elf: Option<PathBuf>,
    /// Guest RAM (`--memory`); default: what the image's manifest asks for.
    #[serde(default, deserialize_with = "memory_mib")]
    pub memory_mib: Option<u32>,
    #[serde(default, deserialize_with = "region_mib")]
    pub shm_mib: Option<u64>,
    pub boot_timeout_s: Option<u64>,
    pub append: Option<Vec<String>>,
    /// QEMU `-cpu` model under KVM (`vmbench vmexit --kvm-cpu`).
    pub kvm_cpu: Option<String>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmexitConfig {
    #[serde(default, deserialize_with = "rows")]
    pub rows: Option<Vec<Row>>,
    #[serde(default, deserialize_with = "positive")]
    pub iterations: Option<u64>,
    pub warmup: Option<u64>,
    pub batch: Option<u64>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShmConfig {
    /// Also run the UC and WC mapping arms (a guest boot each).
    pub arms: Option<bool>,
    /// Measure the doorbell round trip (ivshmem-doorbell).
    pub doorbell: Option<bool>,
    /// Seconds one request may take before the guest is declared hung.
    #[serde(default, deserialize_with = "positive")]
    pub request_timeout_s: Option<u64>,
}

fn cpus<'de, D: Deserializer<'de>>(d: D) -> Result<Option<CpuList>, D::Error> {
    let Some(s) = Option::<String>::deserialize(d)? else {
        return Ok(None);
    };
    CpuList::parse(&s)
        .map(Some)
        .map_err(|e| serde::de::Error::custom(format!("cpus {s:?}: {e}")))
}

fn region_mib<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let v = Option::<u64>::deserialize(d)?;
    if let Some(m) = v {
        vmbench_proto::region_bytes(m)
            .map_err(|e| serde::de::Error::custom(format!("shm_mib: {e}")))?;
    }
    Ok(v)
}

fn memory_mib<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    let v = Option::<u32>::deserialize(d)?;
    match v {
        Some(m) if m < 64 => Err(serde::de::Error::custom(format!(
            "memory_mib {m}: a Linux guest needs at least 64"
        ))),
        v => Ok(v),
    }
}

fn positive<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let v = Option::<u64>::deserialize(d)?;
    if v == Some(0) {
        return Err(serde::de::Error::custom("must be at least 1"));
    }
    Ok(v)
}

fn rows<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<Row>>, D::Error> {
    let Some(ids) = Option::<Vec<String>>::deserialize(d)? else {
        return Ok(None);
    };
    Row::parse_list(&ids)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

/// A config file that cannot be used; the message names the file and, for
/// a bad value, its line and column.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("--config {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("--config {path}: {source}")]
    Parse {
        path: String,
        #[source]
        source: Box<serde_saphyr::Error>,
    },
}

/// Reads and parses a config file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.display().to_string(),
        source,
    })?;
    parse(&text).map_err(|source| ConfigError::Parse {
        path: path.display().to_string(),
        source: Box::new(source),
    })
}

/// Parses config text (an empty file is every default).
pub fn parse(text: &str) -> Result<Config, serde_saphyr::Error> {
    if text.trim().is_empty() {
        return Ok(Config::default());
    }
    serde_saphyr::from_str(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_example_parses() {
        let text = include_str!("../../../examples/vmbench.yaml");
        let c = parse(text).unwrap();
        assert_eq!(c.suites, Some(vec![Suite::Vmexit, Suite::Shm]));
        assert_eq!(c.accel, Some(AccelChoice::Auto));
        assert!(c.vm.unwrap().shm_mib.is_some());
    }

    #[test]
    fn errors_carry_line_and_column() {
        for (text, want) in [
            ("quick: true\nsuites: [vmexit, gpu]\n", "line 2"),
            ("vm:\n  shm_mib: 3\n", "line 2"),
            ("vm:\n  shm_mb: 64\n", "unknown field `shm_mb`"),
            ("vm:\n  memory_mib: 16\n", "at least 64"),
            ("cpus: \"1-x\"\n", "line 1"),
            (
                "vmexit:\n  rows: [user-fast, nope]\n",
                "unknown row \"nope\"",
            ),
            ("vmexit:\n  iterations: 0\n", "at least 1"),
            ("accel: hvf\n", "line 1"),
        ] {
            let e = parse(text).unwrap_err().to_string();
            assert!(e.contains(want), "{text:?}: {e}");
            assert!(e.contains("column"), "{text:?}: {e}");
        }
    }

    #[test]
    fn empty_file_is_all_defaults() {
        let c = parse("# nothing\n").unwrap();
        assert!(c.suites.is_none() && c.vm.is_none());
    }
}
