//! Is one run slower than another, for sure? Per row, the relative
//! difference of the p50 time with a 95% confidence interval, and a verdict.
//!
//! Times are compared in nanoseconds, each run's ticks converted at its own
//! TSC frequency (a tick of one host is not a tick of another). The
//! interval comes from a percentile bootstrap of the ratio of p50s:
//!
//! - when both runs have repeats (independent guest boots), over the
//!   repeats: each draw resamples each run's repeat p50s and takes their
//!   medians. This is the interval that includes boot-to-boot variation,
//!   and the one to trust;
//! - otherwise from each run's histogram: the p50 of n samples drawn from a
//!   distribution is its value at quantile U₍n/2₎, a uniform order
//!   statistic, approximately normal with mean ½ and standard deviation
//!   1/(2√n); each draw takes that quantile of the run's histogram. This
//!   interval knows nothing of what changes between boots, and says so.
//!
//! A row is slower (or faster) when the whole interval lies above (below)
//! zero; otherwise there is no significant difference.

use crate::compare::Run;
use serde::Serialize;
use vmbench_results::Measurement;
use vmbench_results::repeats::{median, percentile_interval, resample};
use vmbench_results::stats::decode_histogram;

/// What a row's interval says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The whole interval is above zero.
    Slower,
    /// The whole interval is below zero.
    Faster,
    /// The interval contains zero.
    NoSignificantDifference,
}

impl Verdict {
    /// In words, for tables.
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Slower => "slower",
            Verdict::Faster => "faster",
            Verdict::NoSignificantDifference => "no significant difference",
        }
    }
}

/// One row of one run against the baseline run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RowDifference {
    /// The measurement.
    pub id: String,
    /// The baseline run's label.
    pub baseline: String,
    /// The compared run's label.
    pub run: String,
    /// Baseline p50 time (median of repeats when it has them), ns.
    pub baseline_p50_ns: f64,
    /// The compared run's, ns.
    pub run_p50_ns: f64,
    /// (run / baseline − 1) × 100: above 0 is slower.
    pub difference_pct: f64,
    /// 95% confidence interval of `difference_pct`.
    pub ci95_pct: [f64; 2],
    /// Slower, faster, or no significant difference.
    pub verdict: Verdict,
    /// What the interval is over: "repeats (3 vs 3)" or "samples (histograms)".
    pub basis: String,
}

/// Every row's difference from the first run, for each later run; rows
/// that cannot be compared in time (no TSC frequency, other units) are
/// left out.
pub fn differences(runs: &[Run]) -> Vec<RowDifference> {
    let Some((base, rest)) = runs.split_first() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for run in rest {
        for a in &base.record.results.measurements {
            let Some(b) = run
                .record
                .results
                .measurements
                .iter()
                .find(|m| m.id == a.id)
            else {
                continue;
            };
            if let Some(d) = row_difference(a, b) {
                out.push(RowDifference {
                    id: a.id.to_string(),
                    baseline: base.label.clone(),
                    run: run.label.clone(),
                    ..d
                });
            }
        }
    }
    out
}

/// What a run offers for the interval of its p50.
enum Basis {
    /// Each repeat's p50, ns.
    Repeats(Vec<f64>),
    /// The p50 of `n` samples from this histogram, converted by `scale`.
    Histogram {
        hist: hdrhistogram::Histogram<u64>,
        n: f64,
        scale: f64,
    },
}

fn basis(m: &Measurement) -> Option<Basis> {
    let scale = m.time_ns(1.0)?;
    if let Some(r) = m.repeats.as_ref().filter(|r| r.summaries.len() >= 2) {
        return Some(Basis::Repeats(
            r.summaries.iter().map(|s| s.p50 as f64 * scale).collect(),
        ));
    }
    let hist = decode_histogram(m.histogram.as_deref()?).ok()?;
    Some(Basis::Histogram {
        n: hist.len().max(1) as f64,
        hist,
        scale,
    })
}

impl Basis {
    fn point(&self, m: &Measurement) -> f64 {
        match self {
            Basis::Repeats(p) => median(p),
            Basis::Histogram { scale, .. } => m.summary.p50 as f64 * scale,
        }
    }

    fn draw(&self, rng: &mut vmbench_results::repeats::Rng) -> f64 {
        match self {
            Basis::Repeats(p) => median(&resample(p, rng)),
            Basis::Histogram { hist, n, scale } => {
                let q = (0.5 + rng.normal() * 0.5 / n.sqrt()).clamp(0.0, 1.0);
                hist.value_at_quantile(q) as f64 * scale
            }
        }
    }
}

fn row_difference(a: &Measurement, b: &Measurement) -> Option<RowDifference> {
    let (ba, bb) = (basis(a)?, basis(b)?);
    let (pa, pb) = (ba.point(a), bb.point(b));
    if pa <= 0.0 || !pa.is_finite() || !pb.is_finite() {
        return None;
    }
    let ci = percentile_interval(|rng| {
        let (x, y) = (ba.draw(rng), bb.draw(rng));
        if x > 0.0 {
            (y / x - 1.0) * 100.0
        } else {
            f64::NAN
        }
    });
    let verdict = if ci[0] > 0.0 {
        Verdict::Slower
    } else if ci[1] < 0.0 {
        Verdict::Faster
    } else {
        Verdict::NoSignificantDifference
    };
    let basis = match (&ba, &bb) {
        (Basis::Repeats(x), Basis::Repeats(y)) => format!("repeats ({} vs {})", x.len(), y.len()),
        _ => "samples (one boot each: boot-to-boot variation not included)".into(),
    };
    Some(RowDifference {
        id: a.id.to_string(),
        baseline: String::new(),
        run: String::new(),
        baseline_p50_ns: pa,
        run_p50_ns: pb,
        difference_pct: (pb / pa - 1.0) * 100.0,
        ci95_pct: ci,
        verdict,
        basis,
    })
}

/// The rows significantly slower by more than `pct`: slower with 95%
/// confidence (the whole interval above 0), and by more than `pct` percent
/// at the estimate (a tolerance a team sets for an upgrade).
pub fn slower_than(diffs: &[RowDifference], pct: f64) -> Vec<&RowDifference> {
    diffs
        .iter()
        .filter(|d| d.verdict == Verdict::Slower && d.difference_pct > pct)
        .collect()
}
