//! Intervals and tests over repeats that hold their stated level at the
//! repeat counts vmbench runs (3 by default), and multiplicity control for
//! comparisons of many rows at once.
//!
//! The model (docs/repeats.md): a row's repeat p50s are independent draws
//! from the host's boot-to-boot distribution, log-symmetric (a slower boot
//! is slower by a factor, not by an offset), each known only to the
//! resolution of its measurement. So the work is on the logs of the p50s,
//! with Student's t: with 3 repeats its 95% interval is wide (±2.5 standard
//! deviations of one repeat) because 3 values say little; a percentile
//! bootstrap of 3 values is [min, max] and covers 75%, not 95%.
//!
//! Resolution: a p50 read from a histogram of quantised timestamps (TCG's
//! TSC moves in steps; HdrHistogram keeps 3 significant digits) cannot
//! differ by less than one step. Repeats that all landed on the same step
//! have no spread, and an interval of zero width would call any other value
//! significant; so each log-variance is at least that of rounding to the
//! step, (step / value)² / 12.

use hdrhistogram::Histogram;
use statrs::distribution::{ContinuousCDF, StudentsT};

/// The level of every interval: 95%.
pub const LEVEL: f64 = 0.95;

/// The family-wise error rate verdicts are held to: 5%.
pub const ALPHA: f64 = 0.05;

/// The standard Student's t distribution with `df` degrees of freedom.
fn students_t(df: f64) -> Option<StudentsT> {
    StudentsT::new(0.0, 1.0, df.max(1e-9)).ok()
}

/// Student's t quantile at probability `p` with `df` degrees of freedom.
pub fn t_quantile(p: f64, df: f64) -> f64 {
    students_t(df).map_or(f64::NAN, |t| t.inverse_cdf(p))
}

/// P(T > x) for Student's t with `df` degrees of freedom.
pub fn t_upper_tail(x: f64, df: f64) -> f64 {
    students_t(df).map_or(f64::NAN, |t| t.sf(x))
}

/// The resolution of `value` read from `hist`: the larger of the width of
/// its bucket and the distance to the nearest other recorded value (the
/// timestamp's quantum, where samples only take multiples of it).
pub fn resolution(hist: &Histogram<u64>, value: u64) -> f64 {
    let bucket = hist
        .highest_equivalent(value)
        .saturating_sub(hist.lowest_equivalent(value))
        + 1;
    // Recorded values come in ascending order: the last one below `value`
    // and the first one above are its neighbours.
    let mut below: Option<u64> = None;
    let mut above: Option<u64> = None;
    for v in hist.iter_recorded() {
        let x = hist.median_equivalent(v.value_iterated_to());
        if x < value {
            below = Some(x);
        } else if x > value {
            above = Some(x);
            break;
        }
    }
    let gap = match (below, above) {
        (Some(b), Some(a)) => (value - b).min(a - value),
        (Some(b), None) => value - b,
        (None, Some(a)) => a - value,
        (None, None) => 1,
    };
    bucket.max(gap) as f64
}

/// Repeat values on the log scale: the mean of their logs and the variance
/// of one log value (at least the rounding variance of its resolution).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogSample {
    /// Mean of ln(value).
    pub mean: f64,
    /// Variance of one ln(value): the sample variance (n − 1), at least
    /// the mean rounding variance (resolution / value)² / 12.
    pub var: f64,
    /// How many values.
    pub n: usize,
}

impl LogSample {
    /// From positive finite `values` and each one's `resolutions` (same
    /// length, or empty for exact values). None when a value is not
    /// positive and finite, or there is none.
    pub fn new(values: &[f64], resolutions: &[f64]) -> Option<LogSample> {
        if values.is_empty() || values.iter().any(|v| !(v.is_finite() && *v > 0.0)) {
            return None;
        }
        let n = values.len();
        let logs: Vec<f64> = values.iter().map(|v| v.ln()).collect();
        let mean = logs.iter().sum::<f64>() / n as f64;
        let sample_var = if n > 1 {
            logs.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / (n - 1) as f64
        } else {
            0.0
        };
        let rounding = if resolutions.len() == n {
            values
                .iter()
                .zip(resolutions)
                .map(|(v, q)| (q / v).powi(2) / 12.0)
                .sum::<f64>()
                / n as f64
        } else {
            0.0
        };
        Some(LogSample {
            mean,
            var: sample_var.max(rounding),
            n,
        })
    }

    /// The centre: the geometric mean of the values (the median of a
    /// log-symmetric distribution).
    pub fn centre(&self) -> f64 {
        self.mean.exp()
    }

    /// The 95% interval of the centre (Student's t, n − 1 degrees of
    /// freedom, on the logs). None with fewer than 2 values: one value
    /// says nothing about how values vary.
    pub fn interval(&self) -> Option<[f64; 2]> {
        if self.n < 2 {
            return None;
        }
        let half =
            t_quantile(0.5 + LEVEL / 2.0, (self.n - 1) as f64) * (self.var / self.n as f64).sqrt();
        Some([(self.mean - half).exp(), (self.mean + half).exp()])
    }
}

/// The difference of two rows' centres, b over a, on the log scale, with
/// its standard error and Welch–Satterthwaite degrees of freedom.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Difference {
    /// ln(centre_b / centre_a).
    pub log_ratio: f64,
    /// Its standard error.
    pub se: f64,
    /// Degrees of freedom of its t distribution.
    pub df: f64,
}

impl Difference {
    /// Welch's comparison of `b` with `a`: None unless both have at least
    /// two values and the standard error is positive (an interval of zero
    /// width gives no verdict).
    pub fn welch(a: &LogSample, b: &LogSample) -> Option<Difference> {
        if a.n < 2 || b.n < 2 {
            return None;
        }
        let (va, vb) = (a.var / a.n as f64, b.var / b.n as f64);
        let se2 = va + vb;
        if !(se2 > 0.0 && se2.is_finite()) {
            return None;
        }
        let df = se2 * se2 / (va * va / (a.n - 1) as f64 + vb * vb / (b.n - 1) as f64);
        // Between the smaller sample's n − 1 and n_a + n_b − 2, as Welch's
        // approximation always is; clamped for rounding.
        let df = df.clamp((a.n.min(b.n) - 1) as f64, (a.n + b.n - 2) as f64);
        Some(Difference {
            log_ratio: b.mean - a.mean,
            se: se2.sqrt(),
            df,
        })
    }

    /// The difference in percent (above 0: b is slower).
    pub fn percent(&self) -> f64 {
        pct(self.log_ratio)
    }

    /// Its 95% interval, in percent.
    pub fn interval_pct(&self) -> [f64; 2] {
        let half = t_quantile(0.5 + LEVEL / 2.0, self.df) * self.se;
        [pct(self.log_ratio - half), pct(self.log_ratio + half)]
    }

    /// The p-value of "the centres differ by more than `band_pct` percent,
    /// in either direction": twice the smaller one-sided p-value of the
    /// tests against ln(1 + band) and −ln(1 + band). Below 0.05 exactly when
    /// the 95% interval lies wholly beyond the band on one side.
    pub fn p_beyond(&self, band_pct: f64) -> f64 {
        let band = log_band(band_pct);
        let slower = t_upper_tail((self.log_ratio - band) / self.se, self.df);
        let faster = t_upper_tail((-band - self.log_ratio) / self.se, self.df);
        (2.0 * slower.min(faster)).min(1.0)
    }

    /// Whether the 95% interval lies wholly within ±`band_pct`: the
    /// difference is smaller than the band, with 95% confidence.
    pub fn within(&self, band_pct: f64) -> bool {
        let [lo, hi] = self.interval_pct();
        lo > pct(-log_band(band_pct)) && hi < band_pct
    }
}

/// What one row's comparison says, once the family is accounted for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Judgement {
    /// Slower by more than the band (family-wise error at most [`ALPHA`]).
    Slower,
    /// Faster by more than the band.
    Faster,
    /// The 95% interval lies within the band: the same, to the band.
    Within,
    /// Neither: the data cannot tell.
    Inconclusive,
}

/// Judges a family of differences at once: each row's p-value of
/// differing by more than `band_pct` ([`Difference::p_beyond`]), adjusted
/// by Holm over the family, is a verdict below [`ALPHA`]; the rest are
/// within the band when their 95% interval is, else inconclusive. Returns
/// each row's judgement and adjusted p-value, in order.
pub fn judge(diffs: &[Difference], band_pct: f64) -> Vec<(Judgement, f64)> {
    let p: Vec<f64> = diffs.iter().map(|d| d.p_beyond(band_pct)).collect();
    holm(&p)
        .into_iter()
        .zip(diffs)
        .map(|(adjusted, d)| {
            let j = if adjusted < ALPHA {
                if d.log_ratio > 0.0 {
                    Judgement::Slower
                } else {
                    Judgement::Faster
                }
            } else if d.within(band_pct) {
                Judgement::Within
            } else {
                Judgement::Inconclusive
            };
            (j, adjusted)
        })
        .collect()
}

/// A difference of logs as a difference in percent (above 0: larger).
pub fn pct(log_ratio: f64) -> f64 {
    (log_ratio.exp() - 1.0) * 100.0
}

/// ±`band_pct` percent on the log scale: ln(1 + band).
fn log_band(band_pct: f64) -> f64 {
    (1.0 + band_pct.max(0.0) / 100.0).ln()
}

/// Holm's step-down adjustment of `p` (same order): reject where the
/// adjusted value is below the family-wise error rate. Controls the chance
/// of any false rejection among all of them, whatever their dependence.
pub fn holm(p: &[f64]) -> Vec<f64> {
    let m = p.len();
    let mut order: Vec<usize> = (0..m).collect();
    order.sort_by(|&i, &j| p[i].total_cmp(&p[j]));
    let mut adjusted = vec![1.0; m];
    let mut running: f64 = 0.0;
    for (rank, &i) in order.iter().enumerate() {
        let a = ((m - rank) as f64 * p[i]).min(1.0);
        running = running.max(a);
        adjusted[i] = running;
    }
    adjusted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t_quantiles_are_the_tables() {
        // Student's t tables: 0.975 quantile at 2, 4 and 30 df.
        assert!((t_quantile(0.975, 2.0) - 4.303).abs() < 1e-3);
        assert!((t_quantile(0.975, 4.0) - 2.776).abs() < 1e-3);
        assert!((t_quantile(0.975, 30.0) - 2.042).abs() < 1e-3);
        assert!((t_upper_tail(2.776, 4.0) - 0.025).abs() < 1e-4);
    }

    #[test]
    fn holm_is_the_textbook_example() {
        // p = 0.01, 0.04, 0.03, 0.005 → sorted 0.005×4, 0.01×3, 0.03×2, 0.04×1.
        let a = holm(&[0.01, 0.04, 0.03, 0.005]);
        let want = [0.03, 0.06, 0.06, 0.02];
        for (x, w) in a.iter().zip(want) {
            assert!((x - w).abs() < 1e-12, "{a:?}");
        }
    }

    #[test]
    fn identical_repeats_have_the_width_of_their_resolution() {
        let s = LogSample::new(&[100.0, 100.0, 100.0], &[10.0, 10.0, 10.0]).unwrap();
        assert!((s.var - 0.01 / 12.0).abs() < 1e-12);
        let [lo, hi] = s.interval().unwrap();
        assert!(lo < 100.0 && hi > 100.0);
        // Exact values with no spread: no interval width, no comparison.
        let exact = LogSample::new(&[100.0, 100.0], &[]).unwrap();
        assert!(Difference::welch(&exact, &exact).is_none());
    }

    #[test]
    fn a_doubled_row_is_beyond_any_small_band_and_the_same_row_is_within() {
        let a = LogSample::new(&[10_000.0, 10_040.0, 10_090.0], &[10.0; 3]).unwrap();
        let b = LogSample::new(&[20_000.0, 20_080.0, 20_180.0], &[20.0; 3]).unwrap();
        let d = Difference::welch(&a, &b).unwrap();
        assert!((d.percent() - 100.0).abs() < 1e-9);
        assert!(d.p_beyond(1.0) < 1e-6, "{d:?}");
        let same = Difference::welch(&a, &a).unwrap();
        assert_eq!(same.percent(), 0.0);
        assert!(same.p_beyond(1.0) > 0.5);
        // Repeats 0.9% apart, 3 of them: ±1.02% at 95%, so within ±2% but
        // not shown to be within ±1%.
        assert!(
            same.within(2.0) && !same.within(1.0),
            "{:?}",
            same.interval_pct()
        );
    }

    #[test]
    fn resolution_is_the_quantum_of_quantised_samples() {
        let mut h = Histogram::<u64>::new(3).unwrap();
        for v in [16, 16, 32, 32, 32, 48] {
            h.record(v).unwrap();
        }
        assert_eq!(resolution(&h, 32), 16.0);
        let mut dense = Histogram::<u64>::new(3).unwrap();
        for v in 1000..1100 {
            dense.record(v).unwrap();
        }
        assert_eq!(resolution(&dense, 1050), 1.0);
    }
}
