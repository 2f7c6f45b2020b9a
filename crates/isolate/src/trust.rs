//! What a journal may ask `restore` to do: exactly what `apply` could have
//! done, nothing else.
//!
//! `restore` runs as root and writes the journal's "original" values back.
//! A journal is a file, and a file can be planted or edited, so a journal
//! entry is only acted on when its path is one a runtime knob writes (the
//! patterns below, one list per knob) and its unit is one a knob stops.
//! `apply` checks its own entries against the same lists before journaling
//! them, so the two cannot drift apart.

use crate::model::Change;

/// The files each runtime knob writes; `{n}` stands for a decimal number.
const KNOB_PATHS: &[(&str, &[&str])] = &[
    (
        "governor",
        &["/sys/devices/system/cpu/cpu{n}/cpufreq/scaling_governor"],
    ),
    (
        "min_freq",
        &["/sys/devices/system/cpu/cpu{n}/cpufreq/scaling_min_freq"],
    ),
    (
        "turbo",
        &[
            "/sys/devices/system/cpu/intel_pstate/no_turbo",
            "/sys/devices/system/cpu/cpufreq/boost",
            "/sys/devices/system/cpu/cpufreq/policy{n}/boost",
        ],
    ),
    ("default_irq_affinity", &["/proc/irq/default_smp_affinity"]),
    ("irq_affinity", &["/proc/irq/{n}/smp_affinity_list"]),
    (
        "workqueue_cpumask",
        &[
            "/sys/devices/virtual/workqueue/cpumask",
            "/sys/devices/virtual/workqueue/{name}/cpumask",
            "/sys/bus/workqueue/devices/writeback/cpumask",
        ],
    ),
    (
        "machinecheck_ignore_ce",
        &["/sys/devices/system/machinecheck/machinecheck{n}/ignore_ce"],
    ),
    (
        "hung_task_timeout_secs",
        &["/proc/sys/kernel/hung_task_timeout_secs"],
    ),
    ("timer_migration", &["/proc/sys/kernel/timer_migration"]),
    ("numa_balancing", &["/proc/sys/kernel/numa_balancing"]),
    (
        "sched_rt_runtime_us",
        &["/proc/sys/kernel/sched_rt_runtime_us"],
    ),
    ("stat_interval", &["/proc/sys/vm/stat_interval"]),
    ("nmi_watchdog", &["/proc/sys/kernel/nmi_watchdog"]),
    ("watchdog", &["/proc/sys/kernel/watchdog"]),
    (
        "transparent_hugepage",
        &["/sys/kernel/mm/transparent_hugepage/enabled"],
    ),
    ("ksm", &["/sys/kernel/mm/ksm/run"]),
];

/// The systemd units each runtime knob stops (and restore starts again).
const KNOB_UNITS: &[(&str, &[&str])] = &[("irqbalance", &["irqbalance.service"])];

/// The longest value a knob file takes (a CPU mask of 8192 CPUs is 2,048
/// hex digits plus commas).
pub const MAX_VALUE_BYTES: usize = 4096;

/// Whether `path` matches `pattern`, where `{n}` matches one or more digits.
fn matches(pattern: &str, path: &str) -> bool {
    if let Some((head, tail)) = pattern.split_once("{name}") {
        // One path component of a workqueue's name: no '/', never "." or "..".
        let Some(rest) = path.strip_prefix(head) else {
            return false;
        };
        let len = rest
            .bytes()
            .take_while(|b| b.is_ascii_alphanumeric() || b"_-.:".contains(b))
            .count();
        let name = &rest[..len];
        return len > 0 && name != "." && name != ".." && matches(tail, &rest[len..]);
    }
    match pattern.split_once("{n}") {
        None => pattern == path,
        Some((head, tail)) => {
            let Some(rest) = path.strip_prefix(head) else {
                return false;
            };
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            digits > 0 && matches(tail, &rest[digits..])
        }
    }
}

fn value_ok(what: &str, v: &str) -> Result<(), String> {
    if v.len() > MAX_VALUE_BYTES {
        return Err(format!(
            "its {what} value is {} bytes (a knob file holds at most {MAX_VALUE_BYTES})",
            v.len()
        ));
    }
    if v.contains('\0') {
        return Err(format!("its {what} value contains a NUL byte"));
    }
    Ok(())
}

/// Checks one journaled change of knob `knob`: Ok when `apply` could have
/// made it; else why not.
pub fn check_change(knob: &str, change: &Change) -> Result<(), String> {
    match change {
        Change::File {
            path,
            original_raw,
            original,
            target,
        } => {
            let Some((_, patterns)) = KNOB_PATHS.iter().find(|(k, _)| *k == knob) else {
                return Err(format!(
                    "knob {knob:?} writes no files (knobs that do: {})",
                    KNOB_PATHS
                        .iter()
                        .map(|(k, _)| *k)
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            };
            if !patterns.iter().any(|p| matches(p, path)) {
                return Err(format!(
                    "knob {knob} never writes {path:?} (it writes {})",
                    patterns.join(", ")
                ));
            }
            value_ok("original", original)?;
            value_ok("original_raw", original_raw)?;
            value_ok("target", target)
        }
        Change::ServiceConfig {
            unit,
            path,
            original_raw,
            target,
        } => {
            if knob != "irqbalance"
                || unit != crate::partitioning::IRQBALANCE_UNIT
                || !crate::partitioning::IRQBALANCE_CONFIGS.contains(&path.as_str())
            {
                return Err(format!(
                    "knob {knob} never rewrites {path:?} for {unit:?} (only irqbalance's configuration, {})",
                    crate::partitioning::IRQBALANCE_CONFIGS.join(" or ")
                ));
            }
            value_ok("original_raw", original_raw)?;
            value_ok("target", target)
        }
        Change::Affinity {
            pid,
            tid,
            comm,
            original,
            target,
            ..
        } => {
            if knob != "thread_affinity" {
                return Err(format!("knob {knob:?} moves no threads"));
            }
            if *pid == 0 || *tid == 0 {
                return Err("thread id 0".into());
            }
            if comm.len() > 64 || comm.contains('\0') {
                return Err("a thread name longer than 64 bytes or with a NUL".into());
            }
            for (what, list) in [("original", original), ("target", target)] {
                match vmbench_host::CpuList::parse(list) {
                    Ok(l) if !l.is_empty() => {}
                    _ => return Err(format!("its {what} CPU list {list:?} is not one")),
                }
            }
            Ok(())
        }
        Change::StopService { unit } => {
            let Some((_, units)) = KNOB_UNITS.iter().find(|(k, _)| *k == knob) else {
                return Err(format!("knob {knob:?} stops no service"));
            };
            if units.contains(&unit.as_str()) {
                Ok(())
            } else {
                Err(format!(
                    "knob {knob} never stops {unit:?} (it stops {})",
                    units.join(", ")
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str) -> Change {
        Change::File {
            path: path.into(),
            original_raw: "1\n".into(),
            original: "1".into(),
            target: "0".into(),
        }
    }

    #[test]
    fn only_the_files_and_units_a_knob_writes_pass() {
        for (knob, path) in [
            (
                "governor",
                "/sys/devices/system/cpu/cpu12/cpufreq/scaling_governor",
            ),
            ("irq_affinity", "/proc/irq/0/smp_affinity_list"),
            ("turbo", "/sys/devices/system/cpu/cpufreq/policy3/boost"),
            ("watchdog", "/proc/sys/kernel/watchdog"),
        ] {
            assert_eq!(check_change(knob, &file(path)), Ok(()), "{knob} {path}");
        }
        for (knob, path) in [
            ("watchdog", "/root/.ssh/authorized_keys"),
            ("irq_affinity", "/proc/irq/../../etc/passwd"),
            ("irq_affinity", "/proc/irq//smp_affinity_list"),
            ("irq_affinity", "/proc/irq/1x/smp_affinity_list"),
            ("irq_affinity", "/proc/irq/1/smp_affinity_list/../../x"),
            ("governor", "/proc/sys/kernel/watchdog"),
            ("made_up", "/proc/sys/kernel/watchdog"),
        ] {
            assert!(check_change(knob, &file(path)).is_err(), "{knob} {path}");
        }
        let unit = |u: &str| Change::StopService { unit: u.into() };
        assert_eq!(
            check_change("irqbalance", &unit("irqbalance.service")),
            Ok(())
        );
        for (knob, u) in [
            ("irqbalance", "--version"),
            ("irqbalance", "sshd.service"),
            ("watchdog", "irqbalance.service"),
        ] {
            assert!(check_change(knob, &unit(u)).is_err(), "{knob} {u}");
        }
        let mut long = file("/proc/sys/kernel/watchdog");
        if let Change::File { original, .. } = &mut long {
            *original = "1".repeat(MAX_VALUE_BYTES + 1);
        }
        assert!(check_change("watchdog", &long).is_err());
    }
}
