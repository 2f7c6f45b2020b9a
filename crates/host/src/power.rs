//! Frequency scaling, turbo/boost and idle state, read-only. The `isolate`
//! crate changes them; this module only says what they are and which
//! interface controls them on this host.

use crate::{Fact, SysRoot};
use serde::{Deserialize, Serialize};

/// cpufreq state of one CPU.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CpuFreq {
    /// The CPU.
    pub cpu: u32,
    /// `scaling_driver` (intel_pstate, acpi-cpufreq, amd-pstate, ...).
    pub driver: Fact<String>,
    /// `scaling_governor`.
    pub governor: Fact<String>,
    /// `scaling_min_freq`.
    pub min_khz: Fact<u64>,
    /// `scaling_max_freq`.
    pub max_khz: Fact<u64>,
    /// `cpuinfo_min_freq`: the hardware's lowest.
    pub hw_min_khz: Fact<u64>,
    /// `cpuinfo_max_freq`: the hardware's highest.
    pub hw_max_khz: Fact<u64>,
    /// `scaling_cur_freq` when read.
    pub cur_khz: Fact<u64>,
}

/// Which interface switches turbo/boost, by cpufreq driver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", tag = "interface")]
pub enum BoostControl {
    /// `/sys/devices/system/cpu/intel_pstate/no_turbo` (1 = turbo off).
    IntelPstateNoTurbo,
    /// `/sys/devices/system/cpu/cpufreq/boost` (acpi-cpufreq and others; 1 = on).
    GlobalBoost,
    /// `/sys/devices/system/cpu/cpufreq/policyN/boost` (amd-pstate on 6.11+; 1 = on).
    PerPolicyBoost {
        /// The policies with a `boost` file.
        policies: Vec<u32>,
    },
}

impl BoostControl {
    /// The sysfs files that hold the boost state.
    pub fn files(&self) -> Vec<String> {
        match self {
            BoostControl::IntelPstateNoTurbo => {
                vec!["/sys/devices/system/cpu/intel_pstate/no_turbo".into()]
            }
            BoostControl::GlobalBoost => vec!["/sys/devices/system/cpu/cpufreq/boost".into()],
            BoostControl::PerPolicyBoost { policies } => policies
                .iter()
                .map(|p| format!("/sys/devices/system/cpu/cpufreq/policy{p}/boost"))
                .collect(),
        }
    }

    /// The value to write to each file so that turbo/boost is off.
    pub fn off_value(&self) -> &'static str {
        match self {
            BoostControl::IntelPstateNoTurbo => "1",
            _ => "0",
        }
    }
}

/// Turbo/boost: which interface controls it, and whether it is on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct BoostState {
    /// The interface.
    pub control: BoostControl,
    /// True when turbo/boost is enabled on at least one policy.
    pub enabled: bool,
}

/// Finds the boost interface for this host's cpufreq driver. intel_pstate's
/// `no_turbo` wins when present (it overrides `cpufreq/boost` there), then the
/// global `cpufreq/boost`, then per-policy files.
pub fn boost_control(root: &SysRoot) -> Fact<BoostControl> {
    if root.exists("/sys/devices/system/cpu/intel_pstate/no_turbo") {
        return Fact::Known(BoostControl::IntelPstateNoTurbo);
    }
    if root.exists("/sys/devices/system/cpu/cpufreq/boost") {
        return Fact::Known(BoostControl::GlobalBoost);
    }
    let policies: Vec<u32> = root
        .numbered("/sys/devices/system/cpu/cpufreq", "policy")
        .unwrap_or_default()
        .into_iter()
        .filter(|p| root.exists(&format!("/sys/devices/system/cpu/cpufreq/policy{p}/boost")))
        .collect();
    if !policies.is_empty() {
        return Fact::Known(BoostControl::PerPolicyBoost { policies });
    }
    if root
        .numbered("/sys/devices/system/cpu/cpufreq", "policy")
        .map(|p| p.is_empty())
        .unwrap_or(true)
    {
        Fact::unknown(
            "no cpufreq policy: frequency is not controlled by this kernel (typical in a VM)",
        )
    } else {
        Fact::unknown(
            "the cpufreq driver exposes no boost control (no intel_pstate/no_turbo, cpufreq/boost or policyN/boost)",
        )
    }
}

/// Turbo/boost as the cpufreq driver exposes it.
pub fn boost_state(root: &SysRoot) -> Fact<BoostState> {
    boost_control(root).and_then(|control| {
        let mut enabled = false;
        for f in control.files() {
            let v = match root.read(&f) {
                Ok(v) => v,
                Err(e) => return Fact::unknown(e.to_string()),
            };
            let on = match (&control, v.trim()) {
                (BoostControl::IntelPstateNoTurbo, "0") => true,
                (BoostControl::IntelPstateNoTurbo, "1") => false,
                (_, "1") => true,
                (_, "0") => false,
                (_, other) => {
                    return Fact::unknown(format!(
                        "{f}: unexpected value {other:?} (expected 0 or 1)"
                    ));
                }
            };
            enabled |= on;
        }
        Fact::Known(BoostState { control, enabled })
    })
}

/// Per-CPU cpufreq, or unknown when the kernel has no cpufreq driver.
pub fn cpufreq(root: &SysRoot, cpus: &[u32]) -> Fact<Vec<CpuFreq>> {
    let any = cpus
        .iter()
        .any(|c| root.exists(&format!("/sys/devices/system/cpu/cpu{c}/cpufreq")));
    if !any {
        return Fact::unknown(
            "no cpufreq directory for any CPU: no frequency scaling driver (typical in a VM)",
        );
    }
    let list = cpus
        .iter()
        .map(|&cpu| {
            let d = format!("/sys/devices/system/cpu/cpu{cpu}/cpufreq");
            let s = |f: &str| Fact::from(root.read(&format!("{d}/{f}")));
            let n = |f: &str| Fact::from(root.read_parsed::<u64>(&format!("{d}/{f}")));
            CpuFreq {
                cpu,
                driver: s("scaling_driver"),
                governor: s("scaling_governor"),
                min_khz: n("scaling_min_freq"),
                max_khz: n("scaling_max_freq"),
                hw_min_khz: n("cpuinfo_min_freq"),
                hw_max_khz: n("cpuinfo_max_freq"),
                cur_khz: n("scaling_cur_freq"),
            }
        })
        .collect();
    Fact::Known(list)
}

/// The cpuidle driver and governor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CpuIdle {
    /// `/sys/devices/system/cpu/cpuidle/current_driver`.
    pub driver: Fact<String>,
    /// `/sys/devices/system/cpu/cpuidle/current_governor`.
    pub governor: Fact<String>,
}

/// Reads the cpuidle driver and governor ("none" counts as no driver).
pub fn cpuidle(root: &SysRoot) -> CpuIdle {
    let clean = |r: Result<String, crate::ReadError>| -> Fact<String> {
        match r {
            Ok(v) if v.trim() == "none" || v.trim().is_empty() => {
                Fact::unknown("no cpuidle driver registered")
            }
            other => other.into(),
        }
    };
    CpuIdle {
        driver: clean(root.read("/sys/devices/system/cpu/cpuidle/current_driver")),
        governor: clean(
            root.read("/sys/devices/system/cpu/cpuidle/current_governor_ro")
                .or_else(|_| root.read("/sys/devices/system/cpu/cpuidle/current_governor")),
        ),
    }
}
