//! Per-phase counters of the calling thread through perf_event_open: the
//! hardware events where a PMU is exposed (user-space work only: the crate
//! excludes the kernel, which also works under perf_event_paranoid=2), and
//! context switches where the kernel allows counting them.
//!
//! Where the hardware events cannot be opened (no PMU, as in many VMs, or
//! perf_event_paranoid), the reason is kept once and only the software
//! counter is reported: never zeros standing in for "unknown".

use perf_event::events::{Cache, CacheId, CacheOp, CacheResult, Hardware, Software};
use perf_event::{Builder, Counter, Group};
use std::collections::BTreeMap;

const HW_EVENTS: [(&str, HwKind); 5] = [
    ("cycles", HwKind::Hw(Hardware::CPU_CYCLES)),
    ("instructions", HwKind::Hw(Hardware::INSTRUCTIONS)),
    ("l1d_read_misses", HwKind::Cache(CacheId::L1D)),
    ("llc_read_misses", HwKind::Cache(CacheId::LL)),
    ("dtlb_read_misses", HwKind::Cache(CacheId::DTLB)),
];

#[derive(Clone, Copy)]
enum HwKind {
    Hw(Hardware),
    Cache(CacheId),
}

fn read_miss(which: CacheId) -> Cache {
    Cache {
        which,
        operation: CacheOp::READ,
        result: CacheResult::MISS,
    }
}

/// A hardware counter group and its named members.
type HwGroup = (Group, Vec<(&'static str, Counter)>);

/// Counter totals by phase name, e.g. `{"h2g.4k-32bpp": {"cycles": …}}`.
pub type PhaseCounts = BTreeMap<String, BTreeMap<String, u64>>;

/// The counters of one thread, started and stopped around each unit of work.
pub struct Counters {
    hw: Option<HwGroup>,
    sw: Option<Counter>,
    /// Why the hardware counters are absent, when they are.
    pub hw_unavailable: Option<String>,
    /// Counter totals by phase, then by counter name.
    pub totals: PhaseCounts,
}

impl Counters {
    /// Opens what this thread can count; never fails (absence is recorded).
    pub fn open() -> Counters {
        let (hw, hw_unavailable) = match open_hw() {
            Ok(g) => (Some(g), None),
            Err(e) => (None, Some(e.to_string())),
        };
        // A context switch happens in the kernel: counting it needs kernel
        // events (perf_event_paranoid <= 1); where refused it is absent, not 0.
        let sw = Builder::new(Software::CONTEXT_SWITCHES)
            .include_kernel()
            .build()
            .ok();
        Counters {
            hw,
            sw,
            hw_unavailable,
            totals: BTreeMap::new(),
        }
    }

    /// Starts counting (outside any timed window: this is a syscall).
    pub fn start(&mut self) {
        if let Some((g, _)) = &mut self.hw {
            let _ = g.reset();
            let _ = g.enable();
        }
        if let Some(c) = &mut self.sw {
            let _ = c.reset();
            let _ = c.enable();
        }
    }

    /// Stops counting and adds the counts to `phase`.
    pub fn stop(&mut self, phase: &str) {
        let mut got = BTreeMap::new();
        if let Some((g, members)) = &mut self.hw {
            let _ = g.disable();
            if let Ok(counts) = g.read() {
                for (name, c) in members.iter() {
                    got.insert(name.to_string(), counts[c]);
                }
            }
        }
        if let Some(c) = &mut self.sw {
            let _ = c.disable();
            if let Ok(n) = c.read() {
                got.insert("context_switches".into(), n);
            }
        }
        let slot = self.totals.entry(phase.to_string()).or_default();
        for (k, v) in got {
            *slot.entry(k).or_insert(0) += v;
        }
    }
}

/// Why there are no hardware counters.
#[derive(Debug, thiserror::Error)]
enum NoCounters {
    #[error("perf_event_open group: {0}")]
    Group(#[source] std::io::Error),
    #[error(
        "no hardware performance counters ({event}: {source}); this usually means no PMU is exposed (a VM without vPMU) or kernel.perf_event_paranoid forbids it"
    )]
    NoPmu {
        event: &'static str,
        #[source]
        source: std::io::Error,
    },
}

fn open_hw() -> Result<HwGroup, NoCounters> {
    let mut group = Group::new().map_err(NoCounters::Group)?;
    let mut members = Vec::new();
    for (name, kind) in HW_EVENTS {
        // User-space work only, so that perf_event_paranoid=2 allows it.
        let built = match kind {
            HwKind::Hw(h) => group.add(Builder::new(h).exclude_kernel(true).exclude_hv(true)),
            HwKind::Cache(w) => group.add(
                Builder::new(read_miss(w))
                    .exclude_kernel(true)
                    .exclude_hv(true),
            ),
        };
        match built {
            Ok(c) => members.push((name, c)),
            // Without cycles there is no PMU worth reporting; a missing cache
            // event (not every PMU has DTLB) only drops that event.
            Err(source) if members.is_empty() => {
                return Err(NoCounters::NoPmu {
                    event: name,
                    source,
                });
            }
            Err(_) => {}
        }
    }
    Ok((group, members))
}

/// IPC from a phase's totals, when both counts are there.
pub fn ipc(c: &BTreeMap<String, u64>) -> Option<f64> {
    let cycles = *c.get("cycles")?;
    let ins = *c.get("instructions")?;
    (cycles > 0).then(|| ins as f64 / cycles as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_context_switches_or_says_why_not() {
        let mut c = Counters::open();
        c.start();
        std::thread::sleep(std::time::Duration::from_millis(5));
        c.stop("sleep");
        let t = &c.totals["sleep"];
        match c.hw_unavailable {
            Some(ref why) => {
                assert!(why.contains("no hardware"), "{why}");
                assert!(!t.contains_key("cycles"));
            }
            None => assert!(t["cycles"] > 0),
        }
        // A sleep is at least one context switch, where perf is allowed at all.
        if let Some(n) = t.get("context_switches") {
            assert!(*n >= 1, "{t:?}");
        }
    }
}
