//! The types every suite emits and every renderer reads.

use crate::id::MeasurementId;
use crate::stats::{Drift, SampleSet, StatsError, Summary, decode_histogram};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Version of the JSON shape of [`Results`]. Bump on any incompatible change.
pub const RESULTS_SCHEMA_VERSION: u32 = 2;

/// The unit of a measurement's samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// Time-stamp counter ticks: reference cycles at the TSC frequency, not core cycles.
    TscTicks,
    /// Nanoseconds.
    Nanoseconds,
    /// Bytes per second.
    BytesPerSecond,
    /// Bytes.
    Bytes,
    /// A count of events.
    Count,
}

impl Unit {
    /// How tables print the unit.
    pub fn symbol(self) -> &'static str {
        match self {
            Unit::TscTicks => "TSC ticks",
            Unit::Nanoseconds => "ns",
            Unit::BytesPerSecond => "B/s",
            Unit::Bytes => "B",
            Unit::Count => "count",
        }
    }
}

/// Did the measurement take the path it claims (e.g. an exit handled inside
/// KVM, not in QEMU)? Part of the result, never an afterthought.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", tag = "verdict")]
pub enum Verification {
    /// Counters confirm the expected path.
    Verified {
        /// Which counters, and how many events.
        evidence: String,
    },
    /// Counters show another path: the row is a failed measurement.
    Failed {
        /// Which counters, and what they showed instead.
        evidence: String,
    },
    /// The path could not be checked.
    Unverified {
        /// What kind of reason, where a program acts on it (absent: any
        /// other, said in `reason`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cause: Option<Unverifiable>,
        /// Why not (TCG, no stats, inconsistent counters).
        reason: String,
    },
    /// The measurement has no path to verify (e.g. a timer baseline).
    NotApplicable,
}

/// A reason for "unverified" that decides something.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Unverifiable {
    /// The guest was emulated (TCG): there are no VM exits to verify.
    Emulated,
    /// KVM's counters do not track the work (a row that must exit showed
    /// too few exits): no row of the same run can be verified or failed
    /// from them.
    CountersInconsistent,
}

impl Unverifiable {
    /// The reason an emulated row gives (what follows it, after "; ", is
    /// the row's own evidence, e.g. pci-testdev's count).
    pub const EMULATED_REASON: &'static str =
        "not verifiable: TCG (software emulation has no VM exits; these are emulation costs)";
}

impl Verification {
    /// The verdict in one word, as tables show it.
    pub fn label(&self) -> &'static str {
        match self {
            Verification::Verified { .. } => "verified",
            Verification::Failed { .. } => "FAILED",
            Verification::Unverified { .. } => "unverified",
            Verification::NotApplicable => "n/a",
        }
    }
}

impl Measurement {
    /// The verdict as tables show it, naming the fallback: a VM-exit row
    /// verified without KVM's tracepoint counts ([`Measurement::exit_events`])
    /// was verified by QMP query-stats, which can confirm only that a
    /// baseline does not exit.
    pub fn path_label(&self) -> &'static str {
        match (&self.verification, &self.exit_events) {
            (Verification::Verified { .. }, None) => "verified (query-stats)",
            (
                Verification::Unverified {
                    cause: Some(Unverifiable::Emulated),
                    ..
                },
                _,
            ) => "n/a (TCG)",
            (v, _) => v.label(),
        }
    }
}

/// One row of a suite's results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Measurement {
    /// Stable id, e.g. `vmexit.user-fast` or `shm.h2g.4k-32bpp.host-write`.
    pub id: MeasurementId,
    /// Exactly what sits inside the timed window, in words a reader can check
    /// against the code.
    pub definition: String,
    /// The unit of every value in `summary`.
    pub unit: Unit,
    /// The distribution of the samples.
    pub summary: Summary,
    /// The samples in recording order as block means (with repeats, the
    /// median repeat's: a time series belongs to one boot).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift: Option<Drift>,
    /// Things a reader must know before trusting the numbers.
    pub warnings: Vec<crate::Warning>,
    /// Whether the measurement took the path it claims.
    pub verification: Verification,
    /// The same samples minus the median of the matching timer-overhead
    /// baseline (saturating at 0): its percentiles, mean and spread.
    /// Absent for the baselines themselves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overhead_subtracted: Option<Summary>,
    /// The baseline p50 that was subtracted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overhead_p50: Option<u64>,
    /// Mean per iteration over a long back-to-back loop timed as a whole
    /// (what kvm-unit-tests' vmexit prints), in `unit`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_mean: Option<f64>,
    /// TSC frequency for converting ticks to ns, when `unit` is TSC ticks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tsc_khz: Option<f64>,
    /// The path the measurement is expected to take, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier: Option<String>,
    /// KVM events counted around the measurement: the evidence of the path
    /// it took, per execution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_events: Option<ExitEvents>,
    /// Counter deltas observed around the measurement (e.g. KVM `exits`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub counters: BTreeMap<String, u64>,
    /// Bytes moved per sample, for measurements of a transfer: bandwidth is
    /// `bytes` over the sample's time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// Id of the physical-reference measurement of the same run that this
    /// one is compared with (a ratio of p50s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<MeasurementId>,
    /// The samples' histogram: HdrHistogram's compressed V2 encoding in
    /// base64 (as in its interval logs), so runs and repeats can be merged
    /// and re-analysed without the raw samples. Absent when `repeats`
    /// holds each repeat's: the row's is their sum (HdrHistogram's `add`,
    /// exact), which [`Measurement::pooled_histogram`] returns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub histogram: Option<String>,
    /// Run-to-run variation when the run repeated its suites in
    /// independent guest boots: every repeat's distribution, the median of
    /// their medians with a 95% interval, and the spread. Then
    /// `summary` is of all repeats' samples pooled (its drift series the
    /// median repeat's), and the other fields (exit events, counters, batch
    /// mean) are the median repeat's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repeats: Option<crate::repeats::Repeats>,
}

impl Measurement {
    /// Ticks → ns at `tsc_khz`, when both are known.
    pub fn ns(&self, ticks: f64) -> Option<f64> {
        match (self.unit, self.tsc_khz) {
            (Unit::TscTicks, Some(khz)) if khz > 0.0 => Some(ticks / khz * 1e6),
            _ => None,
        }
    }
}

impl Measurement {
    /// A measurement of `samples`, with no overhead subtraction, counters, bytes or reference yet.
    pub fn from_samples(
        id: impl Into<MeasurementId>,
        definition: impl Into<String>,
        unit: Unit,
        samples: &SampleSet,
        verification: Verification,
    ) -> Result<Self, StatsError> {
        Ok(Measurement {
            id: id.into(),
            definition: definition.into(),
            unit,
            summary: samples.summary()?,
            drift: samples.drift(),
            warnings: Vec::new(),
            verification,
            overhead_subtracted: None,
            overhead_p50: None,
            exit_events: None,
            batch_mean: None,
            tsc_khz: None,
            tier: None,
            counters: BTreeMap::new(),
            bytes: None,
            reference: None,
            histogram: Some(samples.encoded_histogram()).filter(|h| !h.is_empty()),
            repeats: None,
        })
    }
}

impl Measurement {
    /// The histogram of all the row's samples: its own, or with repeats the
    /// sum of theirs. None when one is missing or unreadable.
    pub fn pooled_histogram(&self) -> Option<Histogram<u64>> {
        let encoded: Vec<&str> = match (&self.histogram, &self.repeats) {
            (Some(h), _) => vec![h.as_str()],
            (None, Some(r)) if !r.histograms.is_empty() => {
                r.histograms.iter().map(String::as_str).collect()
            }
            _ => return None,
        };
        // A histogram read back has the range it was written with; the sum
        // needs one that grows (as `stats::pooled` merges them).
        let mut all = Histogram::<u64>::new(crate::stats::SIGNIFICANT_DIGITS).ok()?;
        for h in encoded {
            all.add(decode_histogram(h).ok()?).ok()?;
        }
        Some(all)
    }
}

impl Measurement {
    /// p50 as nanoseconds, when the unit allows.
    pub fn p50_ns(&self) -> Option<f64> {
        self.time_ns(self.summary.p50 as f64)
    }

    /// `v`, a value in the row's unit, as ns when the row is a time (in ns
    /// already, or in ticks at a known TSC frequency).
    pub fn time_ns(&self, v: f64) -> Option<f64> {
        match self.unit {
            Unit::Nanoseconds => Some(v),
            _ => self.ns(v),
        }
    }

    /// The p50 time in ns without the timer's own cost where that was
    /// measured: what two measurements on different clocks compare by.
    pub fn p50_net_ns(&self) -> Option<f64> {
        let ticks = self
            .overhead_subtracted
            .as_ref()
            .map_or(self.summary.p50, |o| o.p50);
        match self.unit {
            Unit::Nanoseconds => Some(ticks as f64),
            _ => self.ns(ticks as f64),
        }
    }

    /// The time, in ns, by which the row is compared with its reference:
    /// the batch mean when both rows have one (back-to-back iterations
    /// timed as a whole, no timestamp per iteration), else the p50 without
    /// the timer's own cost.
    pub fn compared_ns(&self, reference: &Measurement) -> Option<(f64, f64)> {
        match (self.batch_mean, reference.batch_mean) {
            (Some(mine), Some(theirs)) => Some((self.time_ns(mine)?, reference.time_ns(theirs)?)),
            _ => Some((self.p50_net_ns()?, reference.p50_net_ns()?)),
        }
    }

    /// Bandwidth at the median time, in bytes per second: over the p50 minus
    /// the timer's own cost where that was measured (`overhead_subtracted`).
    pub fn p50_bytes_per_sec(&self) -> Option<f64> {
        let ns = self.p50_net_ns()?;
        let bytes = self.bytes?;
        (ns > 0.0).then(|| bytes as f64 / ns * 1e9)
    }
}

impl Measurement {
    /// Whether the transfer beat its physical reference (in any repeat):
    /// its figure is then not a bandwidth, and a report must not show it as one.
    pub fn beats_its_reference(&self) -> bool {
        self.warnings
            .iter()
            .any(|w| w.kind == crate::WarningKind::FasterThanReference)
    }

    /// Whether the timed window is within 3× the timer's own cost: most of
    /// its time is then the timestamps, not what the row names.
    pub fn times_the_timer(&self) -> bool {
        self.overhead_p50
            .is_some_and(|ovh| self.summary.p50 < 3 * ovh)
    }
}

/// What a check is about.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    /// The data arrived intact (SHA-256 of every frame): a failure fails the run.
    Integrity,
    /// A performance target checked against the run's own reference: a
    /// miss is reported, not a failure of the run.
    #[default]
    Target,
}

/// KVM events counted around a VM-exit row, as `perf kvm stat` would show
/// them: how many of each, and how many per execution of the row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ExitEvents {
    /// Where the counts come from (KVM's tracepoints on the vCPU thread).
    pub source: String,
    /// Executions of the row's instruction while counting (warm-up,
    /// samples and batch).
    pub executions: u64,
    /// Event (`kvm_cpuid`, `kvm_pio write port 0xe9`, ...) → count.
    pub counts: BTreeMap<String, u64>,
    /// Event → count per execution.
    pub per_execution: BTreeMap<String, f64>,
    /// The event that proves the path the row claims (one per execution),
    /// when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proof: Option<String>,
}

impl ExitEvents {
    /// Counts over `executions`, with the per-execution figures derived.
    pub fn new(
        source: impl Into<String>,
        executions: u64,
        counts: BTreeMap<String, u64>,
        proof: Option<String>,
    ) -> ExitEvents {
        let per_execution = counts
            .iter()
            .map(|(k, v)| (k.clone(), *v as f64 / executions.max(1) as f64))
            .collect();
        ExitEvents {
            source: source.into(),
            executions,
            counts,
            per_execution,
            proof,
        }
    }
}

/// A pass/fail statement about the run: integrity of the data, or a
/// performance target the tool checks against its own reference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Check {
    /// Stable id, e.g. `shm.integrity.h2g` or `shm.target.rtt-vs-cacheline`.
    pub id: String,
    /// Absent in results written before it existed: those were targets,
    /// except the ids that name integrity (see [`Results::upgrade`]).
    #[serde(default)]
    pub kind: CheckKind,
    /// What is claimed, e.g. "loopback polling RTT p50 <= 1.5 x cache-line RTT p50".
    pub statement: String,
    /// What was measured, in words and figures.
    pub observed: String,
    /// Whether the check held.
    pub passed: bool,
}

/// A measurement that was asked for and could not run here, with why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Skipped {
    /// The measurement that did not run.
    pub id: MeasurementId,
    /// Why it did not run here.
    pub reason: String,
}

/// Everything one run produced, as written to `results.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Results {
    /// [`RESULTS_SCHEMA_VERSION`] at the time of writing.
    pub schema_version: u32,
    /// Every measurement, in the order they ran.
    pub measurements: Vec<Measurement>,
    /// Measurements that were asked for and could not run here.
    #[serde(default)]
    pub skipped: Vec<Skipped>,
    /// Warnings about the run as a whole (TCG, noisy host, unrestored knob).
    pub warnings: Vec<crate::Warning>,
    /// Integrity and target checks.
    #[serde(default)]
    pub checks: Vec<Check>,
}

impl Results {
    /// The row's time over its reference's (see [`Measurement::compared_ns`]):
    /// 1.00 is as fast as the reference. None without a reference in these
    /// results or a time for both.
    pub fn reference_ratio(&self, m: &Measurement) -> Option<f64> {
        let id = m.reference.as_ref()?;
        let reference = self.measurements.iter().find(|r| &r.id == id)?;
        let (mine, theirs) = m.compared_ns(reference)?;
        (theirs > 0.0).then(|| mine / theirs)
    }

    /// Fills in what results written by an older vmbench lack: the kind of
    /// their integrity checks.
    pub fn upgrade(&mut self) {
        for c in &mut self.checks {
            if c.id.contains(".integrity.") {
                c.kind = CheckKind::Integrity;
            }
        }
    }

    /// Takes in another part of the same run (a later suite, a comparison
    /// arm): its rows after ours, each run-wide warning once.
    pub fn absorb(&mut self, other: Results) {
        self.measurements.extend(other.measurements);
        self.skipped.extend(other.skipped);
        self.checks.extend(other.checks);
        for w in other.warnings {
            crate::warning::add(&mut self.warnings, w);
        }
    }
}

impl Default for Results {
    fn default() -> Self {
        Results {
            schema_version: RESULTS_SCHEMA_VERSION,
            measurements: Vec::new(),
            skipped: Vec::new(),
            warnings: Vec::new(),
            checks: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_convert_to_ns_at_the_recorded_frequency() {
        let mut set = SampleSet::new();
        set.extend([2_000, 2_000, 6_000]).unwrap();
        let mut m = Measurement::from_samples(
            "vmexit.kernel-fast",
            "x",
            Unit::TscTicks,
            &set,
            Verification::NotApplicable,
        )
        .unwrap();
        assert_eq!(m.ns(2_000.0), None, "no frequency, no ns");
        // 2 GHz: 2,000 ticks are 1,000 ns; 2.5 GHz: 800 ns.
        m.tsc_khz = Some(2_000_000.0);
        assert_eq!(m.p50_ns(), Some(1_000.0));
        m.tsc_khz = Some(2_500_000.0);
        assert_eq!(m.ns(2_000.0), Some(800.0));
        m.unit = Unit::Count;
        assert_eq!(m.ns(2_000.0), None, "only TSC ticks convert");
    }

    #[test]
    fn results_round_trip_through_json() {
        let mut s = SampleSet::new();
        s.extend([100, 110, 120, 5000]).unwrap();
        let m = Measurement::from_samples(
            "vmexit.kernel-fast",
            "lfence;rdtsc | cpuid(0) | rdtscp;lfence, CPL0, IRQs off",
            Unit::TscTicks,
            &s,
            Verification::Unverified {
                cause: None,
                reason: "TCG: no VM exits".into(),
            },
        )
        .unwrap();
        let r = Results {
            measurements: vec![m],
            ..Results::default()
        };
        let json = serde_json::to_string_pretty(&r).unwrap();
        assert!(json.contains(r#""verdict": "unverified""#), "{json}");
        assert!(json.contains(r#""unit": "tsc_ticks""#));
        let back: Results = serde_json::from_str(&json).unwrap();
        // Everything comes back, the mean and standard deviation to the 7
        // significant digits written; writing again changes nothing.
        let mut expected = r.clone();
        let s = &mut expected.measurements[0].summary;
        s.stddev = crate::float::round_significant(s.stddev);
        assert_ne!(
            s.stddev, r.measurements[0].summary.stddev,
            "a stddev of many digits"
        );
        assert_eq!(back, expected);
        assert_eq!(serde_json::to_string_pretty(&back).unwrap(), json);
        assert_eq!(back.measurements[0].summary.max, 5000);
    }

    #[test]
    fn absorbing_keeps_order_and_each_warning_once() {
        use crate::{Warning, WarningKind};
        let tcg = Warning::new(WarningKind::Tcg, "TCG");
        let arms = Warning::new(WarningKind::MemoryTypeArms, "arms");
        let mut a = Results {
            warnings: vec![tcg.clone()],
            skipped: vec![Skipped {
                id: "a".into(),
                reason: "x".into(),
            }],
            ..Results::default()
        };
        let b = Results {
            warnings: vec![tcg.clone(), arms.clone()],
            skipped: vec![Skipped {
                id: "b".into(),
                reason: "y".into(),
            }],
            ..Results::default()
        };
        a.absorb(b);
        assert_eq!(a.warnings, [tcg, arms]);
        let ids: Vec<&str> = a.skipped.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["a", "b"]);
    }

    #[test]
    fn no_samples_no_measurement() {
        let err = Measurement::from_samples(
            "x",
            "y",
            Unit::Count,
            &SampleSet::new(),
            Verification::NotApplicable,
        )
        .unwrap_err();
        assert_eq!(err, StatsError::Empty);
    }
}
