//! What a journal may ask `restore` to do: exactly what `apply` could have
//! done, nothing else.
//!
//! `restore` runs as root and writes the journal's "original" values back.
//! A journal is a file, and a file can be planted or edited, so a journal
//! entry is only acted on when its path is one its knob writes and its unit
//! one its knob stops, as the knob catalogue says.
//! `apply` checks its own entries against the same lists before journaling
//! them, so the two cannot drift apart.

use crate::catalogue::{self, matches};
use crate::model::{Change, KnobId};

/// The longest value a knob file takes (a CPU mask of 8192 CPUs is 2,048
/// hex digits plus commas).
pub const MAX_VALUE_BYTES: usize = 4096;

/// Why a journaled change is not one `apply` could have made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Untrusted {
    /// A value too long for a knob file.
    #[error("its {what} value is {len} bytes (a knob file holds at most {MAX_VALUE_BYTES})")]
    TooLong {
        /// Which value.
        what: &'static str,
        /// Its length.
        len: usize,
    },
    /// A value with a NUL byte.
    #[error("its {what} value contains a NUL byte")]
    Nul {
        /// Which value.
        what: &'static str,
    },
    /// A file the knob never writes.
    #[error("knob {knob} never writes {path:?} (it writes {})", list(catalogue::knob(*.knob).writes))]
    Path {
        /// The knob.
        knob: KnobId,
        /// The file.
        path: String,
    },
    /// A configuration or unit the knob never rewrites.
    #[error("knob {knob} never rewrites {path:?} for {unit:?} (it rewrites {})", list(catalogue::knob(*.knob).configs))]
    Config {
        /// The knob.
        knob: KnobId,
        /// The unit.
        unit: String,
        /// The file.
        path: String,
    },
    /// A unit the knob never stops.
    #[error("knob {knob} never stops {unit:?} (it stops {})", list(catalogue::knob(*.knob).units))]
    Unit {
        /// The knob.
        knob: KnobId,
        /// The unit.
        unit: String,
    },
    /// A thread move by a knob that moves none.
    #[error("knob {0} moves no threads")]
    Threads(KnobId),
    /// A thread move with thread id 0.
    #[error("thread id 0")]
    ThreadZero,
    /// A thread name longer than the kernel's or with a NUL.
    #[error("a thread name longer than 64 bytes or with a NUL")]
    ThreadName,
    /// A CPU list that is not one.
    #[error("its {what} CPU list {list:?} is not one")]
    CpuList {
        /// Which list.
        what: &'static str,
        /// The text.
        list: String,
    },
}

fn list(items: &[&str]) -> String {
    if items.is_empty() {
        "nothing".into()
    } else {
        items.join(", ")
    }
}

fn value_ok(what: &'static str, v: &str) -> Result<(), Untrusted> {
    if v.len() > MAX_VALUE_BYTES {
        return Err(Untrusted::TooLong { what, len: v.len() });
    }
    if v.contains('\0') {
        return Err(Untrusted::Nul { what });
    }
    Ok(())
}

/// Checks one journaled change of knob `knob`: Ok when `apply` could have
/// made it; else why not.
pub fn check_change(knob: KnobId, change: &Change) -> Result<(), Untrusted> {
    let k = catalogue::knob(knob);
    match change {
        Change::File {
            path,
            original_raw,
            original,
            target,
        } => {
            if !k.writes.iter().any(|p| matches(p, path)) {
                return Err(Untrusted::Path {
                    knob,
                    path: path.clone(),
                });
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
            if !k.units.contains(&unit.as_str()) || !k.configs.contains(&path.as_str()) {
                return Err(Untrusted::Config {
                    knob,
                    unit: unit.clone(),
                    path: path.clone(),
                });
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
            if !k.moves_threads {
                return Err(Untrusted::Threads(knob));
            }
            if *pid == 0 || *tid == 0 {
                return Err(Untrusted::ThreadZero);
            }
            if comm.len() > 64 || comm.contains('\0') {
                return Err(Untrusted::ThreadName);
            }
            for (what, list) in [("original", original), ("target", target)] {
                match vmbench_host::CpuList::parse(list) {
                    Ok(l) if !l.is_empty() => {}
                    _ => {
                        return Err(Untrusted::CpuList {
                            what,
                            list: list.clone(),
                        });
                    }
                }
            }
            Ok(())
        }
        Change::StopService { unit } => {
            if k.units.contains(&unit.as_str()) {
                Ok(())
            } else {
                Err(Untrusted::Unit {
                    knob,
                    unit: unit.clone(),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use KnobId as K;

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
                K::Governor,
                "/sys/devices/system/cpu/cpu12/cpufreq/scaling_governor",
            ),
            (K::IrqAffinity, "/proc/irq/0/smp_affinity_list"),
            (K::Turbo, "/sys/devices/system/cpu/cpufreq/policy3/boost"),
            (K::Watchdog, "/proc/sys/kernel/watchdog"),
        ] {
            assert_eq!(check_change(knob, &file(path)), Ok(()), "{knob} {path}");
        }
        for (knob, path) in [
            (K::Watchdog, "/root/.ssh/authorized_keys"),
            (K::IrqAffinity, "/proc/irq/../../etc/passwd"),
            (K::IrqAffinity, "/proc/irq//smp_affinity_list"),
            (K::IrqAffinity, "/proc/irq/1x/smp_affinity_list"),
            (K::IrqAffinity, "/proc/irq/1/smp_affinity_list/../../x"),
            (K::Governor, "/proc/sys/kernel/watchdog"),
        ] {
            assert!(check_change(knob, &file(path)).is_err(), "{knob} {path}");
        }
        let unit = |u: &str| Change::StopService { unit: u.into() };
        assert_eq!(
            check_change(K::Irqbalance, &unit("irqbalance.service")),
            Ok(())
        );
        for (knob, u) in [
            (K::Irqbalance, "--version"),
            (K::Irqbalance, "sshd.service"),
            (K::Watchdog, "irqbalance.service"),
        ] {
            assert!(check_change(knob, &unit(u)).is_err(), "{knob} {u}");
        }
        let mut long = file("/proc/sys/kernel/watchdog");
        if let Change::File { original, .. } = &mut long {
            *original = "1".repeat(MAX_VALUE_BYTES + 1);
        }
        assert!(check_change(K::Watchdog, &long).is_err());
    }
}
