//! The isolation knobs' closed vocabulary: their ids, classes, verdicts and
//! restore states, as the run record stores them and `vmbench isolate`
//! prints them. What each knob does (files, units, why) is described once,
//! in `vmbench_isolate::catalogue`.

use serde::{Deserialize, Serialize};

/// Declares [`KnobId`] with each knob's name written once: the JSON name,
/// the `--skip` argument and the label in every table.
macro_rules! knob_ids {
    ($($variant:ident = $name:literal,)*) => {
        /// A knob's stable id.
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash,
            Serialize, Deserialize, schemars::JsonSchema,
        )]
        pub enum KnobId {
            $(
                #[allow(missing_docs)]
                #[serde(rename = $name)]
                $variant,
            )*
        }

        impl KnobId {
            /// Every knob, in declaration order.
            pub const ALL: &'static [KnobId] = &[$(KnobId::$variant),*];

            /// The name `--skip`, JSON and tables use.
            pub fn name(self) -> &'static str {
                match self {
                    $(KnobId::$variant => $name,)*
                }
            }
        }
    };
}

knob_ids! {
    Isolcpus = "isolcpus",
    NohzFull = "nohz_full",
    RcuNocbs = "rcu_nocbs",
    Irqaffinity = "irqaffinity",
    Smt = "smt",
    CpufreqDriver = "cpufreq_driver",
    Clocksource = "clocksource",
    NxHugePages = "nx_huge_pages",
    PleGap = "ple_gap",
    KvmclockPeriodicSync = "kvmclock_periodic_sync",
    PowerSupply = "power_supply",
    Governor = "governor",
    MinFreq = "min_freq",
    Turbo = "turbo",
    EnergyPerformancePreference = "energy_performance_preference",
    EnergyPerfBias = "energy_perf_bias",
    Irqbalance = "irqbalance",
    DefaultIrqAffinity = "default_irq_affinity",
    IrqAffinity = "irq_affinity",
    WorkqueueCpumask = "workqueue_cpumask",
    MachinecheckIgnoreCe = "machinecheck_ignore_ce",
    TimerMigration = "timer_migration",
    NumaBalancing = "numa_balancing",
    SchedRtRuntimeUs = "sched_rt_runtime_us",
    StatInterval = "stat_interval",
    NmiWatchdog = "nmi_watchdog",
    Watchdog = "watchdog",
    HungTaskTimeoutSecs = "hung_task_timeout_secs",
    PerfEventMaxSampleRate = "perf_event_max_sample_rate",
    RandomizeVaSpace = "randomize_va_space",
    TransparentHugepage = "transparent_hugepage",
    Ksmtuned = "ksmtuned",
    Ksm = "ksm",
    CpuDmaLatency = "cpu_dma_latency",
    Memlock = "memlock",
    SystemdCpuAffinity = "systemd_cpu_affinity",
    ThreadAffinity = "thread_affinity",
    InterruptsSeen = "interrupts_seen",
    RunnableThreads = "runnable_threads",
    ResidualNoise = "residual_noise",
}

impl std::fmt::Display for KnobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is no knob's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown knob {given:?}; knobs are: {}", KnobId::ALL.iter().map(|k| k.name()).collect::<Vec<_>>().join(", "))]
pub struct UnknownKnob {
    /// What was given.
    pub given: String,
}

impl std::str::FromStr for KnobId {
    type Err = UnknownKnob;
    fn from_str(s: &str) -> Result<Self, UnknownKnob> {
        KnobId::ALL
            .iter()
            .copied()
            .find(|k| k.name() == s)
            .ok_or_else(|| UnknownKnob {
                given: s.to_string(),
            })
    }
}

/// What kind of knob it is: who may change it, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
pub enum KnobClass {
    /// Kernel cmdline: checked and advised, never edited.
    #[serde(rename = "boot")]
    BootOnly,
    /// Changed by `apply`, restored from the journal.
    #[serde(rename = "runtime")]
    Runtime,
    /// Held by the applying process while it runs; gone when it exits.
    #[serde(rename = "held")]
    HeldWhileRunning,
    /// What was actually seen on the benchmark CPUs.
    #[serde(rename = "noise")]
    Noise,
    /// The machine's own state (its power source): checked, never changed.
    #[serde(rename = "hardware")]
    Hardware,
}

impl KnobClass {
    /// How tables print the class (its JSON name).
    pub fn label(self) -> &'static str {
        match self {
            KnobClass::BootOnly => "boot",
            KnobClass::Runtime => "runtime",
            KnobClass::HeldWhileRunning => "held",
            KnobClass::Noise => "noise",
            KnobClass::Hardware => "hardware",
        }
    }
}

/// How a knob stands, worst last.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
pub enum Verdict {
    /// As wanted.
    #[serde(rename = "ok")]
    Ok,
    /// Does not apply to this host (no such driver, no such file).
    #[serde(rename = "n/a")]
    NotApplicable,
    /// Not as wanted; the figures may be noisier.
    #[serde(rename = "WARN")]
    Warn,
    /// Not as wanted in a way that makes the figures untrustworthy.
    #[serde(rename = "FAIL")]
    Fail,
}

impl Verdict {
    /// How tables print the verdict (its JSON name).
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::NotApplicable => "n/a",
            Verdict::Warn => "WARN",
            Verdict::Fail => "FAIL",
        }
    }
}

/// What became of a knob the run changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RestoreState {
    /// The run changed nothing here.
    Unchanged,
    /// Every change was put back.
    Restored,
    /// Some change could not be put back: what failed, per change.
    Failed(Vec<String>),
}

impl RestoreState {
    /// The state as tables print it: empty, `restored` or `FAILED: …`.
    pub fn label(&self) -> String {
        match self {
            RestoreState::Unchanged => String::new(),
            RestoreState::Restored => "restored".into(),
            RestoreState::Failed(errors) => format!("FAILED: {}", errors.join("; ")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_json_and_from_str() {
        for &k in KnobId::ALL {
            assert_eq!(
                serde_json::to_string(&k).unwrap(),
                format!("\"{}\"", k.name())
            );
            assert_eq!(k.name().parse::<KnobId>(), Ok(k));
        }
        let e = "turbo_boost".parse::<KnobId>().unwrap_err();
        assert!(
            e.to_string().contains("knobs are: isolcpus, nohz_full"),
            "{e}"
        );
    }
}
