//! The host around each suite: load, runnable threads and the CPUs'
//! thermal-throttle counters, read before and after (a throttled CPU
//! measures slower than its sustained speed, and says so in the report).

use std::collections::BTreeMap;
use vmbench_host::SysRoot;
use vmbench_results::{SuiteContext, ThrottleDelta};

/// One reading of the host.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    load: [f64; 3],
    runnable: u64,
    /// `cpu<N> core_throttle_count` (and package) → count.
    throttle: BTreeMap<String, u64>,
}

/// Reads load, runnable threads and every thermal-throttle counter.
pub fn snapshot(root: &SysRoot) -> Snapshot {
    let mut s = Snapshot::default();
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
        let before = snapshot(&root);
        assert_eq!(before.load, [0.5, 0.4, 0.3]);
        assert_eq!(before.runnable, 2);
        let (c, w) = between("vmexit", &before, &snapshot(&root));
        assert!(c.throttled.is_empty() && w.is_none());
        write(
            "/sys/devices/system/cpu/cpu1/thermal_throttle/core_throttle_count",
            "3\n",
        );
        write("/proc/stat", "procs_running 7\n");
        let (c, w) = between("vmexit", &before, &snapshot(&root));
        assert_eq!(c.runnable_after, 7);
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
