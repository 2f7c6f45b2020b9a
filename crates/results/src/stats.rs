//! Distribution summaries: exact min/max/mean/stddev, percentiles from an
//! HdrHistogram.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Significant decimal digits kept by the histogram: percentiles are exact up
/// to 2048 and within 0.1% above that.
pub const SIGNIFICANT_DIGITS: u8 = 3;

/// Why samples could not become a summary.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum StatsError {
    /// Nothing was recorded.
    #[error("no samples recorded")]
    Empty,
    /// The histogram could not hold this value.
    #[error("sample {0} could not be recorded in the histogram")]
    Record(u64),
    /// A histogram in results.json could not be read back.
    #[error("histogram: {0}")]
    Histogram(String),
}

/// The longest encoded histogram read back (a row's is a few KiB).
const MAX_ENCODED_HISTOGRAM: usize = 1 << 20;

/// `hist` as HdrHistogram's compressed V2 encoding in base64: the format
/// of HdrHistogram's own interval logs, readable by its tools.
pub fn encode_histogram(hist: &Histogram<u64>) -> String {
    use base64::Engine;
    use hdrhistogram::serialization::Serializer;
    let mut bytes = Vec::new();
    // Serializing to memory fails only for a histogram it cannot describe,
    // which a SampleSet's never is; an empty string then says "none".
    if hdrhistogram::serialization::V2DeflateSerializer::new()
        .serialize(hist, &mut bytes)
        .is_err()
    {
        return String::new();
    }
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Reads back what [`encode_histogram`] wrote (bounded: results.json may
/// have been crafted).
pub fn decode_histogram(text: &str) -> Result<Histogram<u64>, StatsError> {
    use base64::Engine;
    if text.len() > MAX_ENCODED_HISTOGRAM {
        return Err(StatsError::Histogram(format!(
            "{} bytes encoded (at most {MAX_ENCODED_HISTOGRAM})",
            text.len()
        )));
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| StatsError::Histogram(e.to_string()))?;
    hdrhistogram::serialization::Deserializer::new()
        .deserialize(&mut bytes.as_slice())
        .map_err(|e| StatsError::Histogram(format!("{e:?}")))
}

/// One distribution from several of the same measurement (repeats): the
/// percentiles of the merged histograms, min/max exact, mean and standard
/// deviation combined exactly from each part's (n, mean, stddev). Returns
/// the merged histogram beside it.
pub fn pooled(
    parts: &[(&Summary, &Histogram<u64>)],
) -> Result<(Summary, Histogram<u64>), StatsError> {
    let Some((first, _)) = parts.first() else {
        return Err(StatsError::Empty);
    };
    let mut merged = Histogram::<u64>::new(SIGNIFICANT_DIGITS)
        .map_err(|e| StatsError::Histogram(e.to_string()))?;
    let (mut n, mut mean, mut m2) = (0u64, 0.0f64, 0.0f64);
    let (mut min, mut max) = (first.min, first.max);
    for (s, h) in parts {
        merged
            .add(*h)
            .map_err(|e| StatsError::Histogram(format!("{e:?}")))?;
        // Chan et al.'s parallel combination of (n, mean, M2).
        let (nb, mb) = (s.n as f64, s.mean);
        let m2b = s.stddev * s.stddev * (nb - 1.0).max(0.0);
        let na = n as f64;
        let delta = mb - mean;
        let total = na + nb;
        if total > 0.0 {
            mean += delta * nb / total;
            m2 += m2b + delta * delta * na * nb / total;
        }
        n += s.n;
        min = min.min(s.min);
        max = max.max(s.max);
    }
    if n == 0 {
        return Err(StatsError::Empty);
    }
    let q = |q: f64| merged.value_at_quantile(q).clamp(min, max);
    let summary = Summary {
        n,
        min,
        p50: q(0.50),
        p90: q(0.90),
        p99: q(0.99),
        p999: q(0.999),
        max,
        mean,
        stddev: if n > 1 {
            (m2 / (n - 1) as f64).sqrt()
        } else {
            0.0
        },
    };
    Ok((summary, merged))
}

/// The distribution of one measurement.
///
/// Percentiles are nearest-rank: `p50` is the smallest recorded value v such
/// that at least 50% of the samples are ≤ v (to the histogram's precision).
/// `min`, `max`, `mean` and `stddev` are exact. `stddev` is the sample
/// standard deviation (n − 1 in the denominator).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Summary {
    /// Number of samples.
    pub n: u64,
    /// Smallest sample (exact).
    pub min: u64,
    /// Median (nearest-rank).
    pub p50: u64,
    /// 90th percentile.
    pub p90: u64,
    /// 99th percentile.
    pub p99: u64,
    /// 99.9th percentile.
    pub p999: u64,
    /// Largest sample (exact).
    pub max: u64,
    /// Arithmetic mean (exact; written to 7 significant digits).
    #[serde(serialize_with = "crate::float::seven_digits")]
    pub mean: f64,
    /// Sample standard deviation (exact, n − 1; written to 7 significant digits).
    #[serde(serialize_with = "crate::float::seven_digits")]
    pub stddev: f64,
}

/// The samples in recording order, as means of consecutive blocks: the
/// time series that shows warm-up, throttling or a neighbour arriving.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Drift {
    /// Samples per point (a trailing partial block is left out).
    pub block: u64,
    /// The blocks' means, in the row's unit, to 0.1 (at most [`DRIFT_POINTS`]).
    pub means: Vec<f64>,
}

impl Summary {
    /// The distribution of every sample minus `offset`, floored at 0 (a
    /// constant cost such as the timer's, taken out). Subtracting a constant
    /// keeps the order, so the percentiles are exact; the mean and standard
    /// deviation are exact unless samples fall below `offset` (then the
    /// mean is of the floored values only approximately).
    pub fn minus(&self, offset: u64) -> Summary {
        let sub = |v: u64| v.saturating_sub(offset);
        Summary {
            n: self.n,
            min: sub(self.min),
            p50: sub(self.p50),
            p90: sub(self.p90),
            p99: sub(self.p99),
            p999: sub(self.p999),
            max: sub(self.max),
            mean: (self.mean - offset as f64).max(0.0),
            stddev: self.stddev,
        }
    }
}

/// The drift series never holds more points than this: a time series of 64
/// block means shows a trend or a step, and at 100,000 samples each point
/// is still the mean of 1,500 (more points are noise that results.json
/// would carry for every row).
pub const DRIFT_POINTS: usize = 64;

/// Fewer block means than this are no time series (a row of 9 transfers
/// has no trend to show): the row then has no drift series.
pub const DRIFT_MIN_POINTS: usize = 20;

/// Raw samples on their way to a [`Summary`]. Memory does not grow with N.
#[derive(Debug, Clone)]
pub struct SampleSet {
    hist: Histogram<u64>,
    n: u64,
    min: u64,
    max: u64,
    // Welford's running mean and sum of squared deviations: stable for large N.
    mean: f64,
    m2: f64,
    // Block means for the drift series: (sum, count) of full blocks, the
    // open block, and the block size (doubles when the series is full).
    blocks: Vec<f64>,
    open_sum: f64,
    open_n: u64,
    block: u64,
}

impl Default for SampleSet {
    fn default() -> Self {
        Self::new()
    }
}

impl SampleSet {
    /// An empty set.
    pub fn new() -> Self {
        SampleSet {
            // Auto-resizing histogram: any u64 value fits.
            hist: Histogram::new(SIGNIFICANT_DIGITS).unwrap_or_else(|_| {
                unreachable!("3 significant digits is within hdrhistogram's 0..=5")
            }),
            n: 0,
            min: u64::MAX,
            max: 0,
            mean: 0.0,
            m2: 0.0,
            blocks: Vec::new(),
            open_sum: 0.0,
            open_n: 0,
            block: 1,
        }
    }

    /// Adds one sample.
    pub fn record(&mut self, v: u64) -> Result<(), StatsError> {
        self.hist.record(v).map_err(|_| StatsError::Record(v))?;
        self.n += 1;
        self.min = self.min.min(v);
        self.max = self.max.max(v);
        let x = v as f64;
        let delta = x - self.mean;
        self.mean += delta / self.n as f64;
        self.m2 += delta * (x - self.mean);
        self.open_sum += x;
        self.open_n += 1;
        if self.open_n == self.block {
            self.blocks.push(self.open_sum / self.block as f64);
            self.open_sum = 0.0;
            self.open_n = 0;
            if self.blocks.len() == 2 * DRIFT_POINTS {
                // Halve the resolution: pairwise means of equal-sized blocks.
                self.blocks = self
                    .blocks
                    .chunks_exact(2)
                    .map(|p| (p[0] + p[1]) / 2.0)
                    .collect();
                self.block *= 2;
            }
        }
        Ok(())
    }

    /// Adds every sample of `values`.
    pub fn extend(&mut self, values: impl IntoIterator<Item = u64>) -> Result<(), StatsError> {
        values.into_iter().try_for_each(|v| self.record(v))
    }

    /// Number of samples recorded.
    pub fn len(&self) -> u64 {
        self.n
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// The value at quantile `q` (0.0..=1.0), nearest-rank.
    pub fn quantile(&self, q: f64) -> Result<u64, StatsError> {
        if self.n == 0 {
            return Err(StatsError::Empty);
        }
        // hdrhistogram reports the highest value equivalent to the bucket; clamp
        // into the exact observed range so p100 == max and p0 == min.
        Ok(self.hist.value_at_quantile(q).clamp(self.min, self.max))
    }

    /// The histogram, encoded ([`encode_histogram`]).
    pub fn encoded_histogram(&self) -> String {
        encode_histogram(&self.hist)
    }

    /// The distribution: exact min/max/mean/stddev, nearest-rank percentiles.
    pub fn summary(&self) -> Result<Summary, StatsError> {
        if self.n == 0 {
            return Err(StatsError::Empty);
        }
        let stddev = if self.n > 1 {
            (self.m2 / (self.n - 1) as f64).sqrt()
        } else {
            0.0
        };
        Ok(Summary {
            n: self.n,
            min: self.min,
            p50: self.quantile(0.50)?,
            p90: self.quantile(0.90)?,
            p99: self.quantile(0.99)?,
            p999: self.quantile(0.999)?,
            max: self.max,
            mean: self.mean,
            stddev,
        })
    }

    /// The drift series: at most [`DRIFT_POINTS`] block means (a trailing
    /// partial block is left out), none below [`DRIFT_MIN_POINTS`].
    pub fn drift(&self) -> Option<Drift> {
        let (means, block) = if self.blocks.len() <= DRIFT_POINTS {
            (self.blocks.clone(), self.block)
        } else {
            let halved = self
                .blocks
                .chunks_exact(2)
                .map(|p| (p[0] + p[1]) / 2.0)
                .collect();
            (halved, self.block * 2)
        };
        // 0.1 in the row's unit is finer than any drift a plot can show.
        let means: Vec<f64> = means.iter().map(|v| (v * 10.0).round() / 10.0).collect();
        (means.len() >= DRIFT_MIN_POINTS).then_some(Drift { block, means })
    }

    /// The histogram the percentiles come from.
    pub fn histogram(&self) -> &Histogram<u64> {
        &self.hist
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minus_shifts_every_figure_and_floors_at_zero() {
        let mut set = SampleSet::new();
        set.extend([100, 200, 300, 400, 500]).unwrap();
        let s = set.summary().unwrap();
        let m = s.minus(150);
        assert_eq!((m.min, m.p50, m.max), (0, s.p50 - 150, 350));
        assert_eq!(m.n, 5);
        assert!((m.mean - 150.0).abs() < 1e-9);
        assert_eq!(m.stddev, s.stddev);
    }

    #[test]
    fn uniform_one_to_thousand_has_exact_percentiles() {
        let mut s = SampleSet::new();
        s.extend(1..=1000).unwrap();
        let sum = s.summary().unwrap();
        assert_eq!(sum.n, 1000);
        assert_eq!((sum.min, sum.max), (1, 1000));
        assert_eq!((sum.p50, sum.p90, sum.p99, sum.p999), (500, 900, 990, 999));
        assert!((sum.mean - 500.5).abs() < 1e-9);
        // Sample stddev of 1..=n is sqrt(n(n+1)/12).
        let expected = (1000.0_f64 * 1001.0 / 12.0).sqrt();
        assert!((sum.stddev - expected).abs() < 1e-6, "{}", sum.stddev);
    }

    #[test]
    fn constant_distribution_has_zero_spread() {
        let mut s = SampleSet::new();
        s.extend(std::iter::repeat_n(42, 10_000)).unwrap();
        let sum = s.summary().unwrap();
        assert_eq!((sum.min, sum.p50, sum.p999, sum.max), (42, 42, 42, 42));
        assert_eq!(sum.stddev, 0.0);
    }

    #[test]
    fn rare_outliers_show_only_in_the_tail() {
        // 99.5% at 100 ticks, 0.5% at 50_000 (an interrupt landing in the window).
        let mut s = SampleSet::new();
        s.extend(std::iter::repeat_n(100, 995)).unwrap();
        s.extend(std::iter::repeat_n(50_000, 5)).unwrap();
        let sum = s.summary().unwrap();
        assert_eq!(sum.p50, 100);
        assert_eq!(sum.p99, 100);
        // p99.9 lands among the outliers; above 2048 the histogram keeps 3 digits.
        assert!(
            (sum.p999 as f64 - 50_000.0).abs() / 50_000.0 < 0.001,
            "{}",
            sum.p999
        );
        assert_eq!(sum.max, 50_000);
        assert!((sum.mean - (995.0 * 100.0 + 5.0 * 50_000.0) / 1000.0).abs() < 1e-6);
    }

    #[test]
    fn large_values_are_within_histogram_precision() {
        let mut s = SampleSet::new();
        // A two-point distribution of large values: 30k-tick exits.
        s.extend(std::iter::repeat_n(27_000, 500)).unwrap();
        s.extend(std::iter::repeat_n(31_000, 500)).unwrap();
        let sum = s.summary().unwrap();
        assert!((sum.p50 as i64 - 27_000).abs() <= 27);
        assert!((sum.p90 as i64 - 31_000).abs() <= 31);
        assert_eq!(sum.max, 31_000);
    }

    #[test]
    fn drift_follows_the_samples() {
        let mut s = SampleSet::new();
        // A slow drift upwards: 0..100_000.
        s.extend(0..100_000).unwrap();
        let d = s.drift().unwrap();
        assert!(d.means.len() <= DRIFT_POINTS && d.means.len() > DRIFT_POINTS / 2);
        assert!(d.means.windows(2).all(|w| w[0] < w[1]), "drift rises");
        // Blocks cover the samples, and the first block's mean is exact.
        let k = d.block;
        assert!(d.means.len() as u64 * k <= 100_000);
        assert!(d.means.len() as u64 * k > 100_000 - 2 * k);
        assert_eq!(d.means[0], (k - 1) as f64 / 2.0);
        assert_eq!(SampleSet::new().drift(), None);
        let mut few = SampleSet::new();
        few.extend(0..DRIFT_MIN_POINTS as u64 - 1).unwrap();
        assert_eq!(few.drift(), None, "too few points for a time series");
        few.record(7).unwrap();
        assert_eq!(few.drift().map(|d| d.means.len()), Some(DRIFT_MIN_POINTS));
    }

    #[test]
    fn empty_set_is_an_error() {
        assert_eq!(SampleSet::new().summary(), Err(StatsError::Empty));
    }

    #[test]
    fn single_sample() {
        let mut s = SampleSet::new();
        s.record(7).unwrap();
        let sum = s.summary().unwrap();
        assert_eq!(
            (sum.n, sum.min, sum.p50, sum.p999, sum.max),
            (1, 7, 7, 7, 7)
        );
        assert_eq!(sum.stddev, 0.0);
    }
}
