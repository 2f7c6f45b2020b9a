//! TSC reads and frequency: from CPUID where the CPU or hypervisor publishes it,
//! otherwise calibrated against CLOCK_MONOTONIC_RAW with a stated error.

use crate::Fact;
use crate::cpuid::CpuidFacts;
use nix::time::{ClockId, clock_gettime};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// RDTSC. Not serializing: callers that time code add their own fences.
#[inline(always)]
pub fn rdtsc() -> u64 {
    // Some toolchains mark `_rdtsc` safe, older ones unsafe: accept both.
    #[allow(unused_unsafe)]
    // SAFETY: RDTSC has no memory effects; every x86_64 CPU implements it.
    unsafe {
        core::arch::x86_64::_rdtsc()
    }
}

fn monotonic_raw_ns() -> Result<u128, nix::Error> {
    let ts = clock_gettime(ClockId::CLOCK_MONOTONIC_RAW)?;
    Ok(ts.tv_sec() as u128 * 1_000_000_000 + ts.tv_nsec() as u128)
}

/// The calibration every vmbench report uses: 5 busy windows of 20 ms.
pub fn calibrate_default() -> Result<Calibration, nix::Error> {
    calibrate(5, Duration::from_millis(20))
}

/// The result of timing the TSC against CLOCK_MONOTONIC_RAW.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Calibration {
    /// The frequency measured.
    pub khz: f64,
    /// Half the spread between rounds, or the clock-read bracket, whichever is larger.
    pub error_ppm: f64,
    /// Rounds measured.
    pub rounds: u32,
    /// Length of each round.
    pub window_ms: u32,
}

/// One (tsc, ns) pair whose TSC value is known to within `half_width` ticks:
/// the tightest of several bracketed clock reads.
fn paired_read() -> Result<(f64, u128, f64), nix::Error> {
    let mut best: Option<(f64, u128, f64)> = None;
    for _ in 0..16 {
        let a = rdtsc();
        let ns = monotonic_raw_ns()?;
        let b = rdtsc();
        let half = b.wrapping_sub(a) as f64 / 2.0;
        let mid = a as f64 + half;
        if best.is_none_or(|(_, _, h)| half < h) {
            best = Some((mid, ns, half));
        }
    }
    // The loop ran at least once, so `best` is set; fall back defensively.
    Ok(best.unwrap_or((rdtsc() as f64, monotonic_raw_ns()?, 0.0)))
}

/// Calibrates over `rounds` windows of `window` each (busy-waiting, so the
/// caller's CPU stays awake and the kernel does not migrate it mid-window more
/// than it would anyway).
pub fn calibrate(rounds: u32, window: Duration) -> Result<Calibration, nix::Error> {
    let rounds = rounds.max(1);
    let window_ns = window.as_nanos().max(1_000_000);
    let mut freqs = Vec::with_capacity(rounds as usize);
    let mut worst_bracket_ppm: f64 = 0.0;
    for _ in 0..rounds {
        let (t0, n0, h0) = paired_read()?;
        while monotonic_raw_ns()? - n0 < window_ns {
            std::hint::spin_loop();
        }
        let (t1, n1, h1) = paired_read()?;
        let dt = t1 - t0;
        let dn = (n1 - n0) as f64;
        if dt <= 0.0 || dn <= 0.0 {
            continue;
        }
        freqs.push(dt / dn * 1e6); // ticks per ns * 1e6 = kHz
        worst_bracket_ppm = worst_bracket_ppm.max((h0 + h1) / dt * 1e6);
    }
    if freqs.is_empty() {
        return Err(nix::Error::EINVAL);
    }
    freqs.sort_by(f64::total_cmp);
    let median = freqs[freqs.len() / 2];
    let spread_ppm = (freqs[freqs.len() - 1] - freqs[0]) / 2.0 / median * 1e6;
    Ok(Calibration {
        khz: median,
        error_ppm: spread_ppm.max(worst_bracket_ppm),
        rounds: freqs.len() as u32,
        window_ms: (window_ns / 1_000_000) as u32,
    })
}

/// The TSC frequency a report uses, and where it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TscFrequency {
    /// The frequency.
    pub khz: f64,
    /// Where it came from, for a reader (CPUID 15H, CPUID 40000010H, or a
    /// calibration with its rounds and error).
    pub source: String,
    /// Where it came from, for a program (absent in specs written before it existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<TscOrigin>,
}

/// Which source gave the TSC frequency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum TscOrigin {
    /// CPUID leaf 15H: the CPU's own statement.
    Cpuid15h,
    /// CPUID leaf 40000010H: the hypervisor's timing leaf.
    HypervisorLeaf,
    /// Timed against CLOCK_MONOTONIC_RAW (its error is the calibration's).
    Calibration,
}

/// This host's TSC frequency in kHz, chosen as `vmbench info` chooses it
/// (CPUID, else a ~100 ms calibration), without gathering the rest of the
/// host specification.
pub fn host_khz() -> Option<f64> {
    let calibration: Fact<Calibration> = calibrate_default().into();
    choose(&Fact::Known(crate::cpuid::read()), &calibration)
        .into_known()
        .map(|f| f.khz)
}

/// Picks the most authoritative TSC frequency: CPUID 15H (the CPU's own
/// statement), then the hypervisor's timing leaf, then the calibration.
/// CPUID 16H is a nominal base frequency and is only reported, never chosen.
pub fn choose(cpuid: &Fact<CpuidFacts>, calibration: &Fact<Calibration>) -> Fact<TscFrequency> {
    if let Some(c) = cpuid.known() {
        if let Some(hz) = c.leaf_15h_tsc_hz.known() {
            return Fact::Known(TscFrequency {
                khz: *hz as f64 / 1000.0,
                source: "CPUID 15H (crystal clock ratio)".into(),
                origin: Some(TscOrigin::Cpuid15h),
            });
        }
        if let Some(khz) = c.leaf_40000010h_tsc_khz.known() {
            return Fact::Known(TscFrequency {
                khz: f64::from(*khz),
                source: "CPUID 40000010H (hypervisor timing leaf)".into(),
                origin: Some(TscOrigin::HypervisorLeaf),
            });
        }
    }
    match calibration.known() {
        Some(cal) => Fact::Known(TscFrequency {
            khz: cal.khz,
            source: format!(
                "calibrated against CLOCK_MONOTONIC_RAW ({} x {} ms, ±{:.0} ppm)",
                cal.rounds, cal.window_ms, cal.error_ppm
            ),
            origin: Some(TscOrigin::Calibration),
        }),
        None => Fact::unknown(format!(
            "no CPUID leaf publishes it and calibration was not possible: {}",
            calibration.reason().unwrap_or("no reason given")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calibration_agrees_with_itself() {
        let a = calibrate(3, Duration::from_millis(10)).unwrap();
        assert!(a.khz > 100_000.0 && a.khz < 10_000_000.0, "{a:?}");
        assert!(a.error_ppm >= 0.0);
        assert_eq!(a.window_ms, 10);
    }

    #[test]
    fn choice_prefers_cpuid_then_hypervisor_then_calibration() {
        let cal = Fact::Known(Calibration {
            khz: 2_600_100.0,
            error_ppm: 40.0,
            rounds: 5,
            window_ms: 20,
        });
        let mut facts = CpuidFacts {
            invariant_tsc: true,
            leaf_15h_tsc_hz: Fact::unknown("n/a"),
            leaf_16h_base_mhz: Fact::Known(2600),
            hypervisor_signature: Fact::Known("KVM".into()),
            leaf_40000010h_tsc_khz: Fact::Known(2_596_148),
        };
        let f = choose(&Fact::Known(facts.clone()), &cal)
            .into_known()
            .unwrap();
        assert_eq!(f.khz, 2_596_148.0);
        assert!(f.source.contains("40000010H"));
        facts.leaf_15h_tsc_hz = Fact::Known(2_100_000_000);
        let f = choose(&Fact::Known(facts.clone()), &cal)
            .into_known()
            .unwrap();
        assert_eq!(f.khz, 2_100_000.0);
        let f = choose(&Fact::unknown("fixture"), &cal)
            .into_known()
            .unwrap();
        assert!(f.source.contains("calibrated"));
        let none = choose(&Fact::unknown("fixture"), &Fact::unknown("fixture"));
        assert!(none.reason().unwrap().contains("fixture"));
    }
}
