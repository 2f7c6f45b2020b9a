//! The host around each suite: load, runnable threads, the CPUs'
//! thermal-throttle counters, the benchmark CPUs' clock and the hottest
//! thermal zone, read before and after (a throttled or hot CPU measures
//! slower than its sustained speed, and says so in the report).

use std::collections::BTreeMap;
use vmbench_host::{CpuList, SysRoot};
use vmbench_results::{CpuFrequency, SuiteContext, Temperature, ThrottleDelta};

/// One reading of the host.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    load: [f64; 3],
    runnable: u64,
    /// `cpu<N> core_throttle_count` (and package) → count.
    throttle: BTreeMap<String, u64>,
    /// Benchmark CPU → `scaling_cur_freq` (kHz).
    freq: BTreeMap<u32, u64>,
    /// The hottest thermal zone: its type and reading (m°C).
    hottest: Option<(String, i64)>,
}

/// The hottest of `/sys/class/thermal/thermal_zone*/temp`.
fn hottest_zone(root: &SysRoot) -> Option<(String, i64)> {
    const DIR: &str = "/sys/class/thermal";
    root.list(DIR)
        .unwrap_or_default()
        .into_iter()
        .filter(|n| n.starts_with("thermal_zone"))
        .filter_map(|z| {
            let t: i64 = root
                .read(&format!("{DIR}/{z}/temp"))
                .ok()?
                .trim()
                .parse()
                .ok()?;
            let kind = root
                .read(&format!("{DIR}/{z}/type"))
                .map(|k| k.trim().to_string())
                .unwrap_or(z);
            Some((kind, t))
        })
        .max_by_key(|(_, t)| *t)
}

/// Reads load, runnable threads, every thermal-throttle counter, the clock
/// of each of `bench` and the hottest thermal zone.
pub fn snapshot(root: &SysRoot, bench: &CpuList) -> Snapshot {
    let mut s = Snapshot::default();
    for cpu in bench.iter() {
        let path = format!("/sys/devices/system/cpu/cpu{cpu}/cpufreq/scaling_cur_freq");
        if let Some(khz) = root.read(&path).ok().and_then(|t| t.trim().parse().ok()) {
            s.freq.insert(cpu, khz);
        }
    }
    s.hottest = hottest_zone(root);
    if let Ok(text) = root.read("/proc/loadavg") {
        for (slot, v) in s.load.iter_mut().zip(text.split_whitespace()) {
            *slot = v.parse().unwrap_or(0.0);
        }
    }
    if let Ok(text) = root.read("/proc/stat") {
        s.runnable = text
            .lines()
            .find_map(|l| l.strip_prefix("procs_running"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
    }
    for cpu in root
        .list("/sys/devices/system/cpu")
        .unwrap_or_default()
        .into_iter()
        .filter(|n| {
            n.strip_prefix("cpu")
                .is_some_and(|d| d.parse::<u32>().is_ok())
        })
    {
        for counter in ["core_throttle_count", "package_throttle_count"] {
            let path = format!("/sys/devices/system/cpu/{cpu}/thermal_throttle/{counter}");
            if let Some(v) = root.read(&path).ok().and_then(|t| t.trim().parse().ok()) {
                s.throttle.insert(format!("{cpu} {counter}"), v);
            }
        }
    }
    s
}

/// The context of `suite` from readings before and after it, and the
/// warning to give when throttling happened meanwhile.
pub fn between(
    suite: &str,
    before: &Snapshot,
    after: &Snapshot,
) -> (SuiteContext, Option<vmbench_results::Warning>) {
    let throttled: Vec<ThrottleDelta> = after
        .throttle
        .iter()
        .filter_map(|(k, &v)| {
            let delta = v.saturating_sub(*before.throttle.get(k)?);
            (delta > 0).then(|| ThrottleDelta {
                counter: k.clone(),
                delta,
            })
        })
        .collect();
    let warning = (!throttled.is_empty()).then(|| {
        vmbench_results::Warning::new(
            vmbench_results::WarningKind::HostChanged,
            format!(
                "thermal throttling during the {suite} suite ({}): CPUs ran below their sustained speed, its figures may be slow",
                throttled
                    .iter()
                    .map(|t| format!("{} +{}", t.counter, t.delta))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
    });
    (
        SuiteContext {
            suite: suite.to_string(),
            load_before: before.load,
            load_after: after.load,
            runnable_before: before.runnable,
            runnable_after: after.runnable,
            throttled,
            frequency: after
                .freq
                .iter()
                .filter_map(|(&cpu, &after_khz)| {
                    Some(CpuFrequency {
                        cpu,
                        before_khz: *before.freq.get(&cpu)?,
                        after_khz,
                    })
                })
                .collect(),
            temperature: match (&before.hottest, &after.hottest) {
                (Some((_, b)), Some((zone, a))) => Some(Temperature {
                    zone: zone.clone(),
                    before_millicelsius: *b,
                    after_millicelsius: *a,
                }),
                _ => None,
            },
        },
        warning,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_counters_that_moved_warn() {
        let dir = tempfile::tempdir().unwrap();
        let root = SysRoot::new(dir.path());
        let write = |p: &str, v: &str| {
            let f = dir.path().join(p.trim_start_matches('/'));
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(f, v).unwrap();
        };
        write("/proc/loadavg", "0.50 0.40 0.30 2/300 1234\n");
        write(
            "/proc/stat",
            "cpu 1 2 3\nprocs_running 2\nprocs_blocked 0\n",
        );
        write(
            "/sys/devices/system/cpu/cpu0/thermal_throttle/core_throttle_count",
            "5\n",
        );
        write(
            "/sys/devices/system/cpu/cpu1/thermal_throttle/core_throttle_count",
            "0\n",
        );
        write(
            "/sys/devices/system/cpu/cpu1/cpufreq/scaling_cur_freq",
            "2900000\n",
        );
        write("/sys/class/thermal/thermal_zone0/type", "acpitz\n");
        write("/sys/class/thermal/thermal_zone0/temp", "41000\n");
        write("/sys/class/thermal/thermal_zone1/type", "x86_pkg_temp\n");
        write("/sys/class/thermal/thermal_zone1/temp", "52000\n");
        let bench = CpuList::from_cpus([1]);
        let before = snapshot(&root, &bench);
        assert_eq!(before.load, [0.5, 0.4, 0.3]);
        assert_eq!(before.runnable, 2);
        let (c, w) = between("vmexit", &before, &snapshot(&root, &bench));
        assert!(c.throttled.is_empty() && w.is_none());
        write(
            "/sys/devices/system/cpu/cpu1/thermal_throttle/core_throttle_count",
            "3\n",
        );
        write("/proc/stat", "procs_running 7\n");
        write(
            "/sys/devices/system/cpu/cpu1/cpufreq/scaling_cur_freq",
            "2100000\n",
        );
        write("/sys/class/thermal/thermal_zone1/temp", "88000\n");
        let (c, w) = between("vmexit", &before, &snapshot(&root, &bench));
        assert_eq!(c.runnable_after, 7);
        assert_eq!(
            c.frequency,
            [CpuFrequency {
                cpu: 1,
                before_khz: 2_900_000,
                after_khz: 2_100_000
            }]
        );
        assert_eq!(
            c.temperature,
            Some(Temperature {
                zone: "x86_pkg_temp".into(),
                before_millicelsius: 52_000,
                after_millicelsius: 88_000
            })
        );
        assert_eq!(
            c.throttled,
            [ThrottleDelta {
                counter: "cpu1 core_throttle_count".into(),
                delta: 3
            }]
        );
        let w = w.unwrap();
        assert_eq!(w.kind, vmbench_results::WarningKind::HostChanged);
        assert!(w.message.contains("cpu1 core_throttle_count +3"));
    }
}
