//! Repeats: the same suites run again in independent guest boots, and what
//! varies between them.
//!
//! One boot's p50 hides what changes from boot to boot (page placement,
//! which physical core the vCPU lands on, cache colouring). With repeats,
//! each row keeps every repeat's distribution and histogram, the median of
//! the repeats' p50s, a 95% interval of the typical repeat p50 and the
//! run-to-run spread; a spread above [`SPREAD_FLAG_PCT`] is flagged with the
//! repeats that differ. The interval is Student's t on the logs of the
//! repeats' p50s ([`crate::inference`]): it holds its 95% at 3 repeats,
//! where a bootstrap of 3 values is their range and covers 75%.

use crate::id::MeasurementId;
use crate::inference::{LogSample, resolution};
use crate::model::{Check, Measurement, Results, Verification};
use crate::stats::{Summary, decode_histogram, pooled};
use crate::warning::{Warning, WarningKind};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// A row whose repeats' p50s spread wider than this (percent of their
/// median) is flagged.
pub const SPREAD_FLAG_PCT: f64 = 1.0;

/// A row's repeats.
///
/// In results.json the repeats' distributions are columns (`"p50": [76,
/// 76, 74]`, one list per statistic), not one object per repeat: what a
/// reader compares across repeats sits on one line, and the keys are not
/// repeated per repeat.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(into = "RepeatsColumns", try_from = "RepeatsColumns")]
pub struct Repeats {
    /// Which repeats (numbered from 1) measured the row: all of them,
    /// unless a repeat stopped early.
    pub repeat_numbers: Vec<u32>,
    /// Each of those repeats' distribution, in the row's unit.
    pub summaries: Vec<Summary>,
    /// Each of those repeats' histogram, encoded as `Measurement::histogram`.
    pub histograms: Vec<String>,
    /// Median of the repeats' p50s, in the row's unit.
    pub median_p50: f64,
    /// Geometric mean of the repeats' p50s: the centre of `ci95`.
    pub geometric_mean_p50: f64,
    /// 95% interval of the typical repeat p50 ([`RepeatsColumns::ci95`]).
    pub ci95: [f64; 2],
    /// (largest p50 − smallest p50) / median p50, in percent.
    pub spread_pct: f64,
    /// Repeats whose p50 lies more than [`SPREAD_FLAG_PCT`] from the median.
    pub differing: Vec<u32>,
}

/// [`Repeats`] as results.json holds it: each statistic of the repeats'
/// distributions as one list, in the order of `repeat_numbers`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[schemars(rename = "Repeats")]
pub struct RepeatsColumns {
    /// Which repeats (numbered from 1) measured the row: all of them,
    /// unless a repeat stopped early.
    pub repeat_numbers: Vec<u32>,
    /// Each repeat's number of samples.
    pub n: Vec<u64>,
    /// Each repeat's smallest sample (exact), in the row's unit.
    pub min: Vec<u64>,
    /// Each repeat's median (nearest-rank).
    pub p50: Vec<u64>,
    /// Each repeat's 90th percentile.
    pub p90: Vec<u64>,
    /// Each repeat's 99th percentile.
    pub p99: Vec<u64>,
    /// Each repeat's 99.9th percentile.
    pub p999: Vec<u64>,
    /// Each repeat's largest sample (exact).
    pub max: Vec<u64>,
    /// Each repeat's mean (exact; 7 significant digits).
    pub mean: Vec<f64>,
    /// Each repeat's sample standard deviation (n − 1; 7 significant digits).
    pub stddev: Vec<f64>,
    /// Each repeat's histogram, encoded as `Measurement::histogram`.
    pub histograms: Vec<String>,
    /// Median of the repeats' p50s, in the row's unit.
    pub median_p50: f64,
    /// Geometric mean of the repeats' p50s, in the row's unit: the centre
    /// of `ci95`, and what comparisons compare.
    #[serde(default, serialize_with = "crate::float::seven_digits")]
    pub geometric_mean_p50: f64,
    /// 95% interval of the typical repeat p50 (the median of the host's
    /// boot-to-boot distribution, taken as log-symmetric): Student's t on
    /// the logs of the repeats' p50s, n − 1 degrees of freedom, each
    /// log-variance at least that of rounding to the p50's resolution.
    /// With a single repeat, that repeat's p50 twice (no width: one value
    /// says nothing about how values vary).
    #[serde(serialize_with = "crate::float::seven_digits_pair")]
    pub ci95: [f64; 2],
    /// (largest p50 − smallest p50) / median p50, in percent.
    #[serde(serialize_with = "crate::float::seven_digits")]
    pub spread_pct: f64,
    /// Repeats whose p50 lies more than [`SPREAD_FLAG_PCT`] from the median.
    pub differing: Vec<u32>,
}

impl schemars::JsonSchema for Repeats {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        RepeatsColumns::schema_name()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        RepeatsColumns::json_schema(generator)
    }
}

impl From<Repeats> for RepeatsColumns {
    fn from(r: Repeats) -> Self {
        let col = |f: fn(&Summary) -> u64| r.summaries.iter().map(f).collect();
        let round = crate::float::round_significant;
        RepeatsColumns {
            n: col(|s| s.n),
            min: col(|s| s.min),
            p50: col(|s| s.p50),
            p90: col(|s| s.p90),
            p99: col(|s| s.p99),
            p999: col(|s| s.p999),
            max: col(|s| s.max),
            mean: r.summaries.iter().map(|s| round(s.mean)).collect(),
            stddev: r.summaries.iter().map(|s| round(s.stddev)).collect(),
            repeat_numbers: r.repeat_numbers,
            histograms: r.histograms,
            median_p50: r.median_p50,
            geometric_mean_p50: r.geometric_mean_p50,
            ci95: r.ci95,
            spread_pct: r.spread_pct,
            differing: r.differing,
        }
    }
}

/// Columns of different lengths: a crafted or damaged results.json.
#[derive(Debug, thiserror::Error)]
#[error("repeats: {column} has {found} entries for {expected} repeats")]
pub struct RaggedColumns {
    column: &'static str,
    found: usize,
    expected: usize,
}

impl TryFrom<RepeatsColumns> for Repeats {
    type Error = RaggedColumns;

    fn try_from(c: RepeatsColumns) -> Result<Self, RaggedColumns> {
        let expected = c.repeat_numbers.len();
        let lengths = [
            ("n", c.n.len()),
            ("min", c.min.len()),
            ("p50", c.p50.len()),
            ("p90", c.p90.len()),
            ("p99", c.p99.len()),
            ("p999", c.p999.len()),
            ("max", c.max.len()),
            ("mean", c.mean.len()),
            ("stddev", c.stddev.len()),
        ];
        if let Some((column, found)) = lengths.into_iter().find(|(_, l)| *l != expected) {
            return Err(RaggedColumns {
                column,
                found,
                expected,
            });
        }
        let summaries = (0..expected)
            .map(|i| Summary {
                n: c.n[i],
                min: c.min[i],
                p50: c.p50[i],
                p90: c.p90[i],
                p99: c.p99[i],
                p999: c.p999[i],
                max: c.max[i],
                mean: c.mean[i],
                stddev: c.stddev[i],
            })
            .collect();
        Ok(Repeats {
            repeat_numbers: c.repeat_numbers,
            summaries,
            histograms: c.histograms,
            median_p50: c.median_p50,
            geometric_mean_p50: c.geometric_mean_p50,
            ci95: c.ci95,
            spread_pct: c.spread_pct,
            differing: c.differing,
        })
    }
}

/// SplitMix64: a small, well-known generator, enough for resampling (no
/// cryptographic use), written here so that intervals do not change with
/// a dependency's version.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator with a fixed seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in 0..n (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.unit().max(f64::MIN_POSITIVE);
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

/// The median of `values` (the mean of the middle two for an even count).
pub fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

/// The repeats' p50s on the log scale, each with its resolution read from
/// its histogram (1 where the histogram is missing or unreadable).
pub fn log_sample(summaries: &[Summary], histograms: &[String]) -> Option<LogSample> {
    let decoded: Vec<Option<Histogram<u64>>> = histograms
        .iter()
        .map(|h| decode_histogram(h).ok())
        .collect();
    log_sample_of(summaries, &decoded)
}

/// [`log_sample`] from histograms already decoded.
fn log_sample_of(
    summaries: &[Summary],
    histograms: &[Option<Histogram<u64>>],
) -> Option<LogSample> {
    let p50s: Vec<f64> = summaries.iter().map(|s| s.p50 as f64).collect();
    let resolutions: Vec<f64> = summaries
        .iter()
        .enumerate()
        .map(|(i, s)| {
            histograms
                .get(i)
                .and_then(Option::as_ref)
                .map_or(1.0, |h| resolution(h, s.p50))
        })
        .collect();
    LogSample::new(&p50s, &resolutions)
}

impl Repeats {
    /// The statistics of repeats that measured p50s `p50s` (numbered
    /// `numbers`), with their summaries and histograms (encoded, and as
    /// decoded by the caller).
    fn of(
        numbers: Vec<u32>,
        summaries: Vec<Summary>,
        histograms: Vec<String>,
        decoded: &[Option<Histogram<u64>>],
    ) -> Repeats {
        let p50s: Vec<f64> = summaries.iter().map(|s| s.p50 as f64).collect();
        let med = median(&p50s);
        let logs = log_sample_of(&summaries, decoded);
        let geometric_mean_p50 = logs.map_or(med, |l| l.centre());
        let ci95 = logs
            .and_then(|l| l.interval())
            .unwrap_or([geometric_mean_p50, geometric_mean_p50]);
        let (lo, hi) = p50s
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &p| {
                (lo.min(p), hi.max(p))
            });
        let spread_pct = if med > 0.0 {
            (hi - lo) / med * 100.0
        } else {
            0.0
        };
        let differing = numbers
            .iter()
            .zip(&p50s)
            .filter(|(_, p)| med > 0.0 && ((*p - med) / med * 100.0).abs() > SPREAD_FLAG_PCT)
            .map(|(n, _)| *n)
            .collect();
        Repeats {
            repeat_numbers: numbers,
            summaries,
            histograms,
            median_p50: med,
            geometric_mean_p50,
            ci95,
            spread_pct,
            differing,
        }
    }

    /// The flag a reader sees when the spread is above [`SPREAD_FLAG_PCT`]
    /// (short: it is on nearly every row of a noisy host, and the row's
    /// `repeats` holds the figures).
    pub fn flag(&self) -> Option<Warning> {
        (self.spread_pct > SPREAD_FLAG_PCT).then(|| {
            let off = if self.differing.is_empty() {
                String::new()
            } else {
                let list: Vec<String> = self.differing.iter().map(u32::to_string).collect();
                format!(
                    "; more than {SPREAD_FLAG_PCT}% off the median p50: repeat {}",
                    list.join(", ")
                )
            };
            Warning::new(
                WarningKind::RepeatSpread,
                format!(
                    "run-to-run spread {:.1}% over {} repeats (above {SPREAD_FLAG_PCT}%){off}",
                    self.spread_pct,
                    self.summaries.len()
                ),
            )
        })
    }
}

/// One row from its repeats (repeat number, measurement).
fn combine_row(parts: &[(u32, &Measurement)]) -> Measurement {
    let p50s: Vec<f64> = parts.iter().map(|(_, m)| m.summary.p50 as f64).collect();
    let med = median(&p50s);
    // The median repeat: the one whose p50 is closest to the median.
    let mid = p50s
        .iter()
        .enumerate()
        .min_by(|a, b| (a.1 - med).abs().total_cmp(&(b.1 - med).abs()))
        .map_or(0, |(i, _)| i);
    let mut row = parts[mid].1.clone();
    let histograms: Vec<String> = parts
        .iter()
        .map(|(_, m)| m.histogram.clone().unwrap_or_default())
        .collect();
    let decoded: Vec<Option<Histogram<u64>>> = histograms
        .iter()
        .map(|h| decode_histogram(h).ok())
        .collect();
    match decoded.iter().map(Option::as_ref).collect::<Option<Vec<_>>>() {
        Some(hists) => {
            let pairs: Vec<_> = parts
                .iter()
                .zip(hists)
                .map(|((_, m), h)| (&m.summary, h))
                .collect();
            // The row keeps the median repeat's drift (a time series of
            // one boot); its histogram is the repeats' sum, not written
            // again (Measurement::pooled_histogram).
            if let Ok((p, _)) = pooled(&pairs) {
                row.summary = p;
                row.histogram = None;
            }
        }
        None => row.warnings.push(Warning::new(
            WarningKind::HistogramMissing,
            "a repeat's histogram is missing: the distribution shown is the median repeat's, not all repeats pooled",
        )),
    }
    let overheads: Option<Vec<f64>> = parts
        .iter()
        .map(|(_, m)| m.overhead_p50.map(|p| p as f64))
        .collect();
    if let Some(o) = overheads {
        let p = median(&o).round() as u64;
        row.overhead_p50 = Some(p);
        // A row whose timestamps exit has a baseline but publishes no
        // p50−ovh (its batch mean is its figure): pooling keeps it so.
        row.overhead_subtracted = parts
            .iter()
            .all(|(_, m)| m.overhead_subtracted.is_some())
            .then(|| row.summary.minus(p));
    }
    for (n, m) in parts {
        for w in &m.warnings {
            let mut w = w.clone();
            if parts.len() > 1
                && w.repeats.is_empty()
                && !parts
                    .iter()
                    .all(|(_, o)| o.warnings.iter().any(|x| x.same_as(&w)))
            {
                w.repeats = vec![*n];
            }
            crate::warning::add(&mut row.warnings, w);
        }
        if matches!(m.verification, Verification::Failed { .. }) {
            row.verification = m.verification.clone();
        }
    }
    let summaries = parts.iter().map(|(_, m)| m.summary.clone()).collect();
    let stats = Repeats::of(
        parts.iter().map(|(n, _)| *n).collect(),
        summaries,
        histograms,
        &decoded,
    );
    if let Some(flag) = stats.flag() {
        row.warnings.push(flag);
    }
    row.repeats = Some(stats);
    row
}

/// Checks of every repeat, one per id: a failing repeat's when any failed
/// (saying which), else the first's.
fn combine_checks(repeats: &[Results]) -> Vec<Check> {
    let mut out: Vec<Check> = Vec::new();
    for (i, r) in repeats.iter().enumerate() {
        for c in &r.checks {
            match out.iter_mut().find(|o| o.id == c.id) {
                Some(o) if o.passed && !c.passed => {
                    *o = c.clone();
                    o.observed = format!("repeat {}: {}", i + 1, c.observed);
                }
                Some(_) => {}
                None => {
                    let mut c = c.clone();
                    if !c.passed {
                        c.observed = format!("repeat {}: {}", i + 1, c.observed);
                    }
                    out.push(c);
                }
            }
        }
    }
    out
}

impl Results {
    /// One set of results from the repeats of a run, in the order rows
    /// first appeared. With one repeat, that repeat unchanged.
    pub fn combine_repeats(repeats: Vec<Results>) -> Results {
        if repeats.len() <= 1 {
            return repeats.into_iter().next().unwrap_or_default();
        }
        let mut order: Vec<&MeasurementId> = Vec::new();
        for r in &repeats {
            for m in &r.measurements {
                if !order.contains(&&m.id) {
                    order.push(&m.id);
                }
            }
        }
        let mut out = Results {
            checks: combine_checks(&repeats),
            ..Results::default()
        };
        for id in order {
            let parts: Vec<(u32, &Measurement)> = repeats
                .iter()
                .enumerate()
                .filter_map(|(i, r)| {
                    r.measurements
                        .iter()
                        .find(|m| &m.id == id)
                        .map(|m| (i as u32 + 1, m))
                })
                .collect();
            out.measurements.push(combine_row(&parts));
        }
        for r in &repeats {
            for s in &r.skipped {
                if !out.skipped.iter().any(|o| o.id == s.id) {
                    out.skipped.push(s.clone());
                }
            }
            for w in &r.warnings {
                crate::warning::add(&mut out.warnings, w.clone());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Unit;
    use crate::stats::SampleSet;

    fn row(id: &str, values: impl IntoIterator<Item = u64>) -> Measurement {
        let mut s = SampleSet::new();
        s.extend(values).unwrap();
        Measurement::from_samples(id, "x", Unit::TscTicks, &s, Verification::NotApplicable).unwrap()
    }

    fn results(rows: Vec<Measurement>) -> Results {
        Results {
            measurements: rows,
            ..Results::default()
        }
    }

    #[test]
    fn repeats_keep_every_summary_pool_the_samples_and_flag_a_spread() {
        let r = Results::combine_repeats(vec![
            results(vec![
                row("vmexit.a", [100; 1000]),
                row("vmexit.b", [50; 10]),
            ]),
            results(vec![
                row("vmexit.a", [110; 1000]),
                row("vmexit.b", [50; 10]),
            ]),
            results(vec![row("vmexit.a", [100; 1000])]),
        ]);
        let a = &r.measurements[0];
        let rep = a.repeats.as_ref().unwrap();
        assert_eq!(rep.repeat_numbers, [1, 2, 3]);
        assert_eq!(rep.summaries.len(), 3);
        assert_eq!(rep.histograms.len(), 3);
        assert_eq!(rep.median_p50, 100.0);
        assert!((rep.spread_pct - 10.0).abs() < 1e-9, "{}", rep.spread_pct);
        assert_eq!(rep.differing, [2]);
        assert!(
            rep.ci95[0] <= 100.0 && rep.ci95[1] >= 100.0,
            "{:?}",
            rep.ci95
        );
        assert!(
            a.warnings
                .iter()
                .any(|w| w.kind == WarningKind::RepeatSpread
                    && w.message.ends_with("off the median p50: repeat 2")),
            "{:?}",
            a.warnings
        );
        // Pooled: 3000 samples, exact mean of all of them.
        assert_eq!(a.summary.n, 3000);
        assert!((a.summary.mean - 310.0 / 3.0).abs() < 1e-9);
        let sd = (1000.0 * 2.0 * (100.0f64 - 310.0 / 3.0).powi(2)
            + 1000.0 * (110.0f64 - 310.0 / 3.0).powi(2))
            / 2999.0;
        assert!((a.summary.stddev - sd.sqrt()).abs() < 1e-6);
        assert_eq!(a.summary.p50, 100);
        assert_eq!(a.summary.max, 110);
        // A row two repeats measured, with no spread: not flagged.
        let b = &r.measurements[1];
        assert_eq!(b.repeats.as_ref().unwrap().repeat_numbers, [1, 2]);
        assert!(b.warnings.is_empty(), "{:?}", b.warnings);
    }

    #[test]
    fn the_interval_is_students_t_on_the_logs() {
        let r = Results::combine_repeats(vec![
            results(vec![row("vmexit.a", [10_000; 100])]),
            results(vec![row("vmexit.a", [10_100; 100])]),
            results(vec![row("vmexit.a", [9_900; 100])]),
        ]);
        let rep = r.measurements[0].repeats.clone().unwrap();
        // ln of 9900, 10000, 10100: sd 0.0100 (to 4 digits), mean ≈ ln 9999.7;
        // t(0.975, 2 df) = 4.303, so ±4.303 × 0.0100 / √3 = ±2.48%.
        let half = (rep.ci95[1] / rep.geometric_mean_p50).ln();
        assert!((half - 0.02485).abs() < 2e-4, "{rep:?}");
        assert!(rep.ci95[0] < 9_900.0 && rep.ci95[1] > 10_100.0);
        assert!((rep.geometric_mean_p50 - 9_999.67).abs() < 0.01, "{rep:?}");
    }

    #[test]
    fn a_row_without_p50_minus_overhead_keeps_none_when_pooled() {
        let with_ovh = |values: [u64; 100], published: bool| {
            let mut m = row("vmexit.kernel-fast", values);
            m.overhead_p50 = Some(5_000);
            m.overhead_subtracted = published.then(|| m.summary.minus(5_000));
            m
        };
        let withheld = Results::combine_repeats(vec![
            results(vec![with_ovh([20_000; 100], false)]),
            results(vec![with_ovh([20_100; 100], false)]),
        ]);
        let m = &withheld.measurements[0];
        assert_eq!(m.overhead_p50, Some(5_000));
        assert!(m.overhead_subtracted.is_none(), "{m:?}");
        let published = Results::combine_repeats(vec![
            results(vec![with_ovh([20_000; 100], true)]),
            results(vec![with_ovh([20_100; 100], true)]),
        ]);
        let m = &published.measurements[0];
        assert_eq!(
            m.overhead_subtracted.as_ref().map(|s| s.p50),
            Some(m.summary.p50 - 5_000)
        );
    }

    #[test]
    fn histograms_round_trip_and_a_crafted_one_is_an_error() {
        let m = row("vmexit.a", 1..=5000);
        let h = decode_histogram(m.histogram.as_deref().unwrap()).unwrap();
        assert_eq!(h.len(), 5000);
        assert!(decode_histogram("not base64!").is_err());
        assert!(decode_histogram(&"A".repeat(2 << 20)).is_err());
    }

    #[test]
    fn the_pooled_histogram_is_the_sum_of_the_repeats_and_is_not_written_again() {
        // Ranges far apart: each histogram read back has its own range.
        let r = Results::combine_repeats(vec![
            results(vec![row("shm.rtt.poll", (1..=100).map(|v| v * 10))]),
            results(vec![row("shm.rtt.poll", (1..=100).map(|v| v * 1_000_000))]),
            results(vec![row("shm.rtt.poll", 1..=100)]),
        ]);
        let m = &r.measurements[0];
        assert_eq!(m.histogram, None);
        let all = m.pooled_histogram().unwrap();
        assert_eq!(all.len(), 300);
        assert_eq!(all.len(), m.summary.n);
        assert!(all.equivalent(all.value_at_quantile(0.5), m.summary.p50));
        assert!(all.equivalent(all.max(), m.summary.max));
        // Written and read back: still the sum, from the repeats'.
        let back: Measurement = serde_json::from_str(&serde_json::to_string(m).unwrap()).unwrap();
        assert_eq!(back.pooled_histogram().map(|h| h.len()), Some(300));
        assert!(!serde_json::to_string(m).unwrap().contains("\"histogram\""));
    }

    #[test]
    fn ragged_columns_are_refused() {
        let r = Results::combine_repeats(vec![
            results(vec![row("vmexit.a", 1..=10)]),
            results(vec![row("vmexit.a", 1..=10)]),
        ]);
        let mut v = serde_json::to_value(&r.measurements[0]).unwrap();
        v["repeats"]["p90"] = serde_json::json!([1]);
        let err = serde_json::from_value::<Measurement>(v).unwrap_err();
        assert!(
            err.to_string().contains("p90 has 1 entries for 2 repeats"),
            "{err}"
        );
    }
}
