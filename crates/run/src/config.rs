//! `vmbench run --config FILE`: YAML, every field optional (documented in
//! `examples/vmbench.yaml`). Unknown keys and bad values are errors with the
//! line and column, from serde-saphyr.

use crate::Suite;
use serde::{Deserialize, Deserializer};
use std::path::{Path, PathBuf};
use vmbench_host::CpuList;
use vmbench_proto::vmexit::Row;
use vmbench_vm::{AccelChoice, GuestKind};

/// A `vmbench run` config file (YAML; examples/ has a documented one). Command-line flags win over it.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Suites to run, in order: `vmexit`, `shm`.
    pub suites: Option<Vec<Suite>>,
    /// The accelerator: `auto` (KVM when it works, else TCG), `kvm` or `tcg`.
    pub accel: Option<AccelChoice>,
    /// Benchmark CPUs: isolation audit and vCPU pinning.
    #[serde(default, deserialize_with = "cpus")]
    pub cpus: Option<CpuList>,
    /// Fewer samples: every measurement, in seconds instead of minutes
    /// (default: true when every guest runs under TCG, false otherwise).
    pub quick: Option<bool>,
    /// Run the suites this many times, each in fresh guest boots (1 to
    /// 100; default 3, or 1 with `quick`).
    #[serde(default, deserialize_with = "repeat")]
    pub repeat: Option<u32>,
    /// Output directory (must be new or empty).
    pub out: Option<PathBuf>,
    /// Sign the report with this key (see `vmbench report sign --key`).
    pub sign: Option<PathBuf>,
    /// Host isolation.
    pub isolation: Option<IsolationConfig>,
    /// The guest VMs.
    pub vm: Option<VmConfig>,
    /// The VM-exit suite.
    pub vmexit: Option<VmexitConfig>,
    /// The shared-memory suite.
    pub shm: Option<ShmConfig>,
}

/// Whether to change host knobs: `auto` applies when running as root and
/// audits only otherwise; `yes` refuses to start if it cannot apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApplyMode {
    /// Apply when running as root, audit only otherwise.
    Auto,
    /// Apply, and refuse to start if that is not possible.
    Yes,
    /// Audit only: change nothing.
    No,
}

/// The config's `isolation:` section.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IsolationConfig {
    /// Whether to change host knobs.
    pub apply: Option<ApplyMode>,
    /// Runtime knobs to leave alone (ids as `vmbench isolate check` prints them).
    pub skip: Option<Vec<vmbench_results::KnobId>>,
    /// The journal of original values (default under /run/vmbench).
    pub journal: Option<PathBuf>,
    /// Read and write /proc and /sys under this directory (fixture trees).
    pub root: Option<PathBuf>,
    /// How long the residual-noise detector runs on each benchmark CPU,
    /// before and after isolation, in ms (0: not at all; default 1000).
    #[serde(default, deserialize_with = "noise_window_ms")]
    pub noise_window_ms: Option<u64>,
    /// The shortest gap it counts as noise, in µs (default 5, the osnoise
    /// tracer's).
    #[serde(default, deserialize_with = "noise_threshold_us")]
    pub noise_threshold_us: Option<u64>,
    /// More threads to leave where they are (glob patterns on thread and
    /// process names), on top of the defaults.
    pub exclude_threads: Option<Vec<String>>,
    /// Move every thread: drop the default exclusion list (other VMs,
    /// DPDK/OVS polling threads).
    pub move_all_threads: Option<bool>,
}

/// The config's `vm:` section.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmConfig {
    /// The guest image directory (default: built on first use).
    pub image: Option<PathBuf>,
    /// The QEMU binary.
    pub qemu: Option<PathBuf>,
    /// The VM-exit suite's guest (the shm suite always uses the Linux guest).
    pub guest: Option<GuestKind>,
    /// The micro-guest ELF (default: built from crates/microguest).
    pub micro_elf: Option<PathBuf>,
    /// Guest RAM (`--memory`); default: what the image's manifest asks for.
    #[serde(default, deserialize_with = "memory_mib")]
    pub memory_mib: Option<u32>,
    /// The ivshmem region in MiB (a power of two, at least 2).
    #[serde(default, deserialize_with = "region_mib")]
    pub shm_mib: Option<u64>,
    /// Seconds a guest may take to answer its first command (1 to 86400).
    #[serde(default, deserialize_with = "seconds")]
    pub boot_timeout_s: Option<u64>,
    /// Extra guest kernel command-line words.
    pub append: Option<Vec<String>>,
    /// QEMU `-cpu` model under KVM (`vmbench vmexit --kvm-cpu`).
    pub kvm_cpu: Option<String>,
    /// Guest vCPUs (`vmbench vmexit --vcpus`; 2 runs kernel-ipi-halt).
    #[serde(default, deserialize_with = "vcpus")]
    pub vcpus: Option<u32>,
}

/// The config's `vmexit:` section.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VmexitConfig {
    /// Rows by id (default: every row that runs by default).
    #[serde(default, deserialize_with = "rows")]
    pub rows: Option<Vec<Row>>,
    /// Timed iterations per row.
    #[serde(default, deserialize_with = "positive")]
    pub iterations: Option<u64>,
    /// Discarded iterations before the timed ones.
    pub warmup: Option<u64>,
    /// Back-to-back iterations timed as a whole.
    pub batch: Option<u64>,
}

/// The config's `shm:` section.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShmConfig {
    /// Also run the UC and WC mapping arms (a guest boot each).
    pub arms: Option<bool>,
    /// Measure the doorbell round trip (ivshmem-doorbell).
    pub doorbell: Option<bool>,
    /// Seconds one request may take before the guest is declared hung (1 to 86400).
    #[serde(default, deserialize_with = "seconds")]
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

fn vcpus<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    let v = Option::<u32>::deserialize(d)?;
    match v {
        Some(n) if !(1..=64).contains(&n) => Err(serde::de::Error::custom(format!(
            "vcpus {n}: give 1 to 64 (2 runs the kernel-ipi-halt row)"
        ))),
        v => Ok(v),
    }
}

fn noise_window_ms<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let v = Option::<u64>::deserialize(d)?;
    match v {
        Some(ms) if ms > 600_000 => Err(serde::de::Error::custom(format!(
            "noise_window_ms {ms}: give 0 (no detector) to 600000 ms"
        ))),
        v => Ok(v),
    }
}

fn noise_threshold_us<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let v = Option::<u64>::deserialize(d)?;
    match v {
        Some(us) if !(1..=1000).contains(&us) => Err(serde::de::Error::custom(format!(
            "noise_threshold_us {us}: give 1 to 1000 µs (5 is the osnoise tracer's default)"
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

/// A timeout in seconds: at least 1, at most a day (a deadline past the
/// end of time is not a deadline, and overflows the clock).
fn seconds<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    let v = Option::<u64>::deserialize(d)?;
    match v {
        Some(s) if !(1..=86_400).contains(&s) => Err(serde::de::Error::custom(format!(
            "{s} s: give between 1 and 86400 seconds"
        ))),
        _ => Ok(v),
    }
}

/// The most repeats a run takes (each is a full set of guest boots).
pub const MAX_REPEAT: u32 = 100;

fn repeat<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    let v = Option::<u32>::deserialize(d)?;
    match v {
        Some(n) if !(1..=MAX_REPEAT).contains(&n) => Err(serde::de::Error::custom(format!(
            "repeat {n}: give between 1 and {MAX_REPEAT}"
        ))),
        _ => Ok(v),
    }
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
    /// The file could not be read (or is not a regular file of at most
    /// [`MAX_CONFIG_BYTES`]).
    #[error("--config")]
    Read(#[source] vmbench_host::files::FileError),
    /// The file is not a valid config.
    #[error("--config {path}: {source}")]
    Parse {
        /// The file.
        path: String,
        /// The parser's error, with line and column.
        #[source]
        source: Box<serde_saphyr::Error>,
    },
}

/// The largest config file read (the documented example is 3 KB).
pub const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// Reads and parses a config file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = vmbench_host::files::read_regular_text(path, MAX_CONFIG_BYTES)
        .map_err(ConfigError::Read)?;
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
            ("vm:\n  vcpus: 0\n", "give 1 to 64"),
            ("cpus: \"1-x\"\n", "line 1"),
            (
                "vmexit:\n  rows: [user-fast, nope]\n",
                "unknown row \"nope\"",
            ),
            ("vmexit:\n  iterations: 0\n", "at least 1"),
            (
                "vm:\n  boot_timeout_s: 18446744073709551615\n",
                "between 1 and 86400",
            ),
            ("shm:\n  request_timeout_s: 0\n", "between 1 and 86400"),
            ("accel: hvf\n", "line 1"),
            ("isolation:\n  noise_threshold_us: 0\n", "give 1 to 1000 µs"),
            (
                "isolation:\n  noise_window_ms: 600001\n",
                "0 (no detector) to 600000 ms",
            ),
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
