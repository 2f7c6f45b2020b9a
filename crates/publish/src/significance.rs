//! Is one run slower than another, for sure? Per row, the difference of the
//! typical p50 in percent with a 95% interval, and a verdict held to a 5%
//! family-wise error over every row compared (docs/repeats.md).
//!
//! - **Unit.** Two runs whose TSC frequencies agree within their recorded
//!   calibration errors (the same host, calibrated twice) are compared in
//!   ticks: converting each at its own calibration would turn a 1 ppm
//!   calibration difference into a difference of the data. Otherwise each
//!   run's ticks are converted to ns at its own frequency.
//! - **Interval.** Over repeats (independent guest boots): Welch's t on the
//!   logs of the repeats' p50s, each log-variance at least that of rounding
//!   to the p50's resolution ([`vmbench_results::inference`]). It holds its
//!   95% at 3 repeats; a bootstrap of 3 values does not.
//! - **Verdict.** Slower or faster only by more than a band (default
//!   [`DEFAULT_BAND_PCT`]), with Holm's adjustment over the rows compared, so
//!   that chance alone gives a false verdict on any of them at most 5% of
//!   the time; "within ±band" when the whole interval is inside the band.
//! - **One boot.** A run without repeats has no measure of boot-to-boot
//!   variation, which is usually larger than one boot's sampling noise: its
//!   rows get an interval over samples, shown, and no verdict.

use crate::compare::Run;
use serde::{Deserialize, Serialize};
use vmbench_results::inference::{self, Difference, Judgement, LogSample};
use vmbench_results::repeats::log_sample;
use vmbench_results::{Measurement, RunRecord, Unit};

/// The default band: differences smaller than 1% are not called slower or
/// faster (the spread at which a row's repeats are flagged).
pub const DEFAULT_BAND_PCT: f64 = 1.0;

/// How rows are compared.
#[derive(Debug, Clone, PartialEq)]
pub struct Method {
    /// A difference must exceed ±this many percent to be a verdict.
    pub band_pct: f64,
    /// Rows to compare: ids, or prefixes ending in `*`; empty: every row.
    pub rows: Vec<String>,
}

impl Default for Method {
    fn default() -> Method {
        Method {
            band_pct: DEFAULT_BAND_PCT,
            rows: Vec::new(),
        }
    }
}

impl Method {
    /// Whether row `id` is one of the rows to compare.
    pub fn selects(&self, id: &str) -> bool {
        self.rows.is_empty()
            || self.rows.iter().any(|p| match p.strip_suffix('*') {
                Some(prefix) => id.starts_with(prefix),
                None => id == p,
            })
    }
}

/// What a row's comparison says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Slower by more than the band, at 5% family-wise error.
    Slower,
    /// Faster by more than the band.
    Faster,
    /// The whole 95% interval is inside the band.
    Within,
    /// Neither: the interval reaches beyond the band but the data cannot
    /// say which way.
    NoSignificantDifference,
    /// No verdict possible: a run has no repeats, or the interval has no
    /// width (see `basis`).
    NotJudged,
}

impl Verdict {
    /// In words, for tables.
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Slower => "slower",
            Verdict::Faster => "faster",
            Verdict::Within => "same within the band",
            Verdict::NoSignificantDifference => "no significant difference",
            Verdict::NotJudged => "no verdict",
        }
    }
}

/// One row of one run against the baseline run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RowDifference {
    /// The measurement.
    pub id: String,
    /// The baseline run's label.
    pub baseline: String,
    /// The compared run's label.
    pub run: String,
    /// What the comparison is in: "ticks" (one TSC frequency), "ns", or
    /// the rows' own unit.
    pub compared_in: String,
    /// Baseline typical p50 (geometric mean of its repeats' p50s, or its
    /// p50), ns.
    pub baseline_p50_ns: f64,
    /// The compared run's, ns.
    pub run_p50_ns: f64,
    /// (run / baseline − 1) × 100, in `compared_in`: above 0 is slower.
    pub difference_pct: f64,
    /// 95% interval of `difference_pct`.
    pub ci95_pct: [f64; 2],
    /// The verdict.
    pub verdict: Verdict,
    /// The p-value of differing by more than the band, Holm-adjusted over
    /// the rows judged for this run (absent when not judged).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p_adjusted: Option<f64>,
    /// What the interval is over, and why there is no verdict if there is none.
    pub basis: String,
}

/// The rows compared for one run against the baseline, as a family.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Family {
    /// The compared run's label.
    pub run: String,
    /// Rows with a verdict possible (repeats on both sides).
    pub judged: usize,
    /// Rows without (one boot, or no interval).
    pub not_judged: usize,
    /// Slower or faster verdicts.
    pub verdicts: usize,
    /// How many false verdicts per-row 95% intervals alone (no band, no
    /// adjustment) would give on average if nothing differed: 5% of `judged`.
    pub unadjusted_false_verdicts: f64,
}

/// Every row's difference from the first run, for each later run, and each
/// run's family summary.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    /// The band, percent.
    pub band_pct: f64,
    /// The family-wise error rate verdicts are held to.
    pub family_wise_error: f64,
    /// Per row and run.
    pub differences: Vec<RowDifference>,
    /// Per compared run.
    pub families: Vec<Family>,
}

impl Comparison {
    /// The rows called slower.
    pub fn slower(&self) -> Vec<&RowDifference> {
        self.differences
            .iter()
            .filter(|d| d.verdict == Verdict::Slower)
            .collect()
    }

    /// One line per compared run: how many rows were judged, how many
    /// verdicts, and what chance alone would give.
    pub fn summary_lines(&self) -> Vec<String> {
        self.families
            .iter()
            .map(|f| {
                let mut line = format!(
                    "{}: {} rows judged, {} slower or faster by more than ±{}%; chance alone gives a false verdict on any of them at most {:.0}% of the time (Holm), where per-row 95% intervals alone would give about {:.1} false verdicts",
                    f.run,
                    f.judged,
                    f.verdicts,
                    self.band_pct,
                    self.family_wise_error * 100.0,
                    f.unadjusted_false_verdicts
                );
                if f.not_judged > 0 {
                    line.push_str(&format!(
                        "; {} rows not judged (one boot per run or no interval: rerun with --repeat 3 or more)",
                        f.not_judged
                    ));
                }
                line
            })
            .collect()
    }
}

/// Compares every later run with the first.
pub fn compare(runs: &[Run], method: &Method) -> Comparison {
    let mut out = Comparison {
        band_pct: method.band_pct,
        family_wise_error: inference::ALPHA,
        differences: Vec::new(),
        families: Vec::new(),
    };
    let Some((base, rest)) = runs.split_first() else {
        return out;
    };
    for run in rest {
        // Frequencies this close are one clock, calibrated twice.
        let tolerance_ppm =
            calibration_error_ppm(&base.record) + calibration_error_ppm(&run.record);
        let mut rows: Vec<(RowDifference, Option<Difference>)> = Vec::new();
        for a in base
            .record
            .results
            .measurements
            .iter()
            .filter(|m| method.selects(m.id.as_str()))
        {
            let Some(b) = run
                .record
                .results
                .measurements
                .iter()
                .find(|m| m.id == a.id)
            else {
                continue;
            };
            let Some(scale) = common_scale(a, b, tolerance_ppm) else {
                continue;
            };
            if let Some((mut d, welch)) = row(a, b, &scale) {
                d.baseline = base.label.clone();
                d.run = run.label.clone();
                rows.push((d, welch));
            }
        }
        let judged: Vec<Difference> = rows.iter().filter_map(|(_, w)| *w).collect();
        let mut judgements = inference::judge(&judged, method.band_pct).into_iter();
        let mut family = Family {
            run: run.label.clone(),
            judged: judged.len(),
            not_judged: rows.len() - judged.len(),
            verdicts: 0,
            unadjusted_false_verdicts: judged.len() as f64 * (1.0 - inference::LEVEL),
        };
        for (mut d, welch) in rows {
            if welch.is_some()
                && let Some((j, p)) = judgements.next()
            {
                d.p_adjusted = Some(p);
                d.verdict = match j {
                    Judgement::Slower => Verdict::Slower,
                    Judgement::Faster => Verdict::Faster,
                    Judgement::Within => Verdict::Within,
                    Judgement::Inconclusive => Verdict::NoSignificantDifference,
                };
                if matches!(d.verdict, Verdict::Slower | Verdict::Faster) {
                    family.verdicts += 1;
                }
            }
            out.differences.push(d);
        }
        out.families.push(family);
    }
    out
}

/// How two rows' values become comparable numbers.
struct Scale {
    /// Multiplies a's values.
    a: f64,
    /// Multiplies b's values.
    b: f64,
    /// ns per scaled unit, for display (the same for both); None when not
    /// a time.
    ns: Option<f64>,
    /// "ticks", "ns", or the unit.
    name: String,
}

/// A run's TSC calibration error in ppm: the recorded one when its
/// frequency came from the calibration, 0 when CPUID stated it.
fn calibration_error_ppm(r: &RunRecord) -> f64 {
    let tsc = &r.host.tsc;
    let calibrated = tsc
        .frequency
        .known()
        .is_some_and(|f| f.origin == Some(vmbench_host::tsc::TscOrigin::Calibration));
    match tsc.calibration.known() {
        Some(c) if calibrated => c.error_ppm.max(0.0),
        _ => 0.0,
    }
}

/// How rows `a` and `b` compare: in ticks when their TSC frequencies are
/// within `tolerance_ppm` of each other, else in ns, or in their shared unit.
fn common_scale(a: &Measurement, b: &Measurement, tolerance_ppm: f64) -> Option<Scale> {
    match (a.unit, b.unit) {
        (Unit::TscTicks, Unit::TscTicks) => {
            let (fa, fb) = (
                a.tsc_khz.filter(|f| *f > 0.0)?,
                b.tsc_khz.filter(|f| *f > 0.0)?,
            );
            let apart_ppm = ((fa - fb) / fa).abs() * 1e6;
            if apart_ppm <= tolerance_ppm {
                // One clock: compare ticks, show ns at the baseline's rate.
                Some(Scale {
                    a: 1.0,
                    b: 1.0,
                    ns: Some(1e6 / fa),
                    name: "ticks".into(),
                })
            } else {
                Some(Scale {
                    a: 1e6 / fa,
                    b: 1e6 / fb,
                    ns: Some(1.0),
                    name: "ns".into(),
                })
            }
        }
        (ua, ub) if ua == ub => {
            let ns = (ua == Unit::Nanoseconds).then_some(1.0);
            Some(Scale {
                a: 1.0,
                b: 1.0,
                ns,
                name: ua.symbol().into(),
            })
        }
        _ => None,
    }
}

/// A row's repeats on the log scale, scaled; None without repeats.
fn repeats(m: &Measurement, scale: f64) -> Option<LogSample> {
    let r = m.repeats.as_ref().filter(|r| r.summaries.len() >= 2)?;
    let mut s = log_sample(&r.summaries, &r.histograms)?;
    s.mean += scale.ln();
    Some(s)
}

/// One boot's p50 on the log scale with the standard error of a median of
/// n samples (its value at quantile ½ ± 1/(2√n) from the histogram), at
/// least its resolution's rounding error.
fn one_boot(m: &Measurement, scale: f64) -> Option<(f64, f64)> {
    let p50 = m.summary.p50 as f64;
    if p50 <= 0.0 {
        return None;
    }
    let se = match m.pooled_histogram() {
        Some(h) => {
            let n = h.len().max(1) as f64;
            let z = 1.96;
            let lo = h
                .value_at_quantile((0.5 - z * 0.5 / n.sqrt()).max(0.0))
                .max(1) as f64;
            let hi = h
                .value_at_quantile((0.5 + z * 0.5 / n.sqrt()).min(1.0))
                .max(1) as f64;
            let sampling = (hi.ln() - lo.ln()) / (2.0 * z);
            let rounding = inference::resolution(&h, m.summary.p50) / p50 / 12f64.sqrt();
            sampling.max(rounding)
        }
        None => 1.0 / p50 / 12f64.sqrt(),
    };
    Some(((p50 * scale).ln(), se))
}

fn row(
    a: &Measurement,
    b: &Measurement,
    scale: &Scale,
) -> Option<(RowDifference, Option<Difference>)> {
    let base = RowDifference {
        id: a.id.to_string(),
        baseline: String::new(),
        run: String::new(),
        compared_in: scale.name.clone(),
        baseline_p50_ns: f64::NAN,
        run_p50_ns: f64::NAN,
        difference_pct: f64::NAN,
        ci95_pct: [f64::NAN, f64::NAN],
        verdict: Verdict::NotJudged,
        p_adjusted: None,
        basis: String::new(),
    };
    let ns = |log_value: f64| log_value.exp() * scale.ns.unwrap_or(1.0);
    if let (Some(la), Some(lb)) = (repeats(a, scale.a), repeats(b, scale.b)) {
        let mut d = RowDifference {
            baseline_p50_ns: ns(la.mean),
            run_p50_ns: ns(lb.mean),
            ..base
        };
        let basis = format!(
            "repeats ({} vs {}): Welch's t on the logs of their p50s",
            la.n, lb.n
        );
        return Some(match Difference::welch(&la, &lb) {
            Some(w) => {
                d.difference_pct = w.percent();
                d.ci95_pct = w.interval_pct();
                d.basis = basis;
                (d, Some(w))
            }
            None => {
                d.difference_pct = inference::pct(lb.mean - la.mean);
                d.basis = format!(
                    "{basis}: the interval has no width (identical exact values), so no verdict"
                );
                (d, None)
            }
        });
    }
    let ((ma, sa), (mb, sb)) = (one_boot(a, scale.a)?, one_boot(b, scale.b)?);
    let (diff, se) = (mb - ma, (sa * sa + sb * sb).sqrt());
    let pct = inference::pct;
    Some((
        RowDifference {
            baseline_p50_ns: ns(ma),
            run_p50_ns: ns(mb),
            difference_pct: pct(diff),
            ci95_pct: [pct(diff - 1.96 * se), pct(diff + 1.96 * se)],
            basis: "one boot in a run: the interval is over its samples and knows nothing of boot-to-boot variation, so no verdict (rerun with --repeat 3 or more)".into(),
            ..base
        },
        None,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_are_selected_by_id_or_prefix() {
        let m = Method {
            rows: vec!["vmexit.kernel-*".into(), "shm.rtt.poll".into()],
            ..Method::default()
        };
        assert!(m.selects("vmexit.kernel-fast"));
        assert!(m.selects("shm.rtt.poll"));
        assert!(!m.selects("shm.rtt.poll.batch"));
        assert!(!m.selects("vmexit.user-fast"));
        assert!(Method::default().selects("anything"));
    }
}
