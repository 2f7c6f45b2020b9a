//! What the host was doing around the measurements: the residual noise on
//! the benchmark CPUs (before and after isolation), and per suite the load
//! and the thermal-throttle counters.

use serde::{Deserialize, Serialize};

/// The residual noise on one benchmark CPU, from an osnoise-style
/// detector: a thread pinned to the CPU reads the monotonic clock back to
/// back for a window, and every gap between two reads longer than the
/// threshold is time something else took the CPU.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CpuNoise {
    /// The benchmark CPU.
    pub cpu: u32,
    /// When it was measured: `before isolation`, `after isolation`, or
    /// `as found` (isolation only audited).
    pub phase: String,
    /// How long the detector was asked to run, in ms.
    pub window_ms: u64,
    /// How long it ran, first clock read to last, in µs (0 in records
    /// before this field: read `window_ms` then).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub elapsed_us: u64,
    /// The shortest gap counted as an interruption, in ns.
    pub threshold_ns: u64,
    /// The sum of the gaps per second of elapsed time, in µs (µs/s): at
    /// most 1,000,000, as `rtla osnoise` reports noise per runtime.
    pub noise_us_per_s: f64,
    /// The longest single interruption, in µs.
    pub max_us: f64,
    /// Gaps longer than the threshold.
    pub interruptions: u64,
    /// Gaps beyond the events counted in `causes` (one event makes at most
    /// one gap): time no counter of the kernel sees, the hypervisor's when
    /// the host is a VM, SMIs on bare metal. A lower bound.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub unexplained: u64,
    /// The cross-check: elapsed time minus the detector thread's own CPU
    /// time as the scheduler accounts it, per second (µs/s). Close to
    /// `noise_us_per_s` when other threads take the CPU; lower when
    /// interrupts do (their time is charged to the interrupted thread).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub off_cpu_us_per_s: Option<f64>,
    /// What ran on the CPU meanwhile, from /proc/interrupts, /proc/softirqs
    /// and the detector's own involuntary context switches.
    pub causes: Vec<NoiseCause>,
}

// An absent field reads as 0: older records rewrite byte for byte.
fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// One source of interruptions seen on a CPU during a noise window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct NoiseCause {
    /// `irq`, `nmi`, `softirq` or `thread`.
    pub kind: String,
    /// The interrupt line (`LOC: Local timer interrupts`, `24: nvme0q0`), the
    /// softirq (`TIMER`, `RCU`) or, for `thread`, what happened.
    pub name: String,
    /// How many times, on this CPU, during the window.
    pub count: u64,
}

impl CpuNoise {
    /// One line: the figures and the main causes.
    pub fn summary(&self) -> String {
        let causes: Vec<String> = self
            .causes
            .iter()
            .take(6)
            .map(|c| format!("{} {} ×{}", c.kind, c.name, c.count))
            .collect();
        let ms = if self.elapsed_us > 0 {
            self.elapsed_us as f64 / 1000.0
        } else {
            self.window_ms as f64
        };
        let unexplained = if self.unexplained > 0 {
            format!(" ({} unexplained)", self.unexplained)
        } else {
            String::new()
        };
        format!(
            "cpu{}: {:.1} µs/s, longest {:.1} µs, {} interruptions{unexplained} over {ms:.0} ms{}",
            self.cpu,
            self.noise_us_per_s,
            self.max_us,
            self.interruptions,
            if causes.is_empty() {
                String::new()
            } else {
                format!(" ({})", causes.join(", "))
            }
        )
    }
}

/// The host around one suite: load, runnable threads and thermal throttling
/// before and after it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SuiteContext {
    /// The suite (`vmexit`, `shm`), with ` (repeat N of M)` when the run
    /// repeats: one entry per suite and repeat, in run order.
    pub suite: String,
    /// `/proc/loadavg`'s three averages before the suite.
    pub load_before: [f64; 3],
    /// The same after it.
    pub load_after: [f64; 3],
    /// Runnable threads host-wide (`procs_running` of /proc/stat) before.
    pub runnable_before: u64,
    /// The same after.
    pub runnable_after: u64,
    /// Thermal-throttle counters that moved during the suite
    /// (`cpu2 core_throttle_count`: how many more throttling events).
    pub throttled: Vec<ThrottleDelta>,
    /// Each benchmark CPU's clock before and after the suite, as cpufreq
    /// reports it (`scaling_cur_freq`); empty where the kernel does not
    /// control the frequency (a VM).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub frequency: Vec<CpuFrequency>,
    /// The hottest thermal zone before and after the suite; None where the
    /// host reports none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<Temperature>,
}

/// One CPU's clock around a suite.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CpuFrequency {
    /// The CPU.
    pub cpu: u32,
    /// Before the suite, in kHz.
    pub before_khz: u64,
    /// After it, in kHz.
    pub after_khz: u64,
}

/// The hottest thermal zone around a suite.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Temperature {
    /// The zone's type (`x86_pkg_temp`, `acpitz`, ...), as after the suite.
    pub zone: String,
    /// The hottest zone's reading before the suite, in m°C.
    pub before_millicelsius: i64,
    /// After it, in m°C.
    pub after_millicelsius: i64,
}

/// A thermal-throttle counter that moved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ThrottleDelta {
    /// `cpu<N> core_throttle_count` or `cpu<N> package_throttle_count`.
    pub counter: String,
    /// By how much it grew.
    pub delta: u64,
}
