//! The statistics of repeats and comparisons, simulated where the truth is
//! known: pairs of runs drawn from one distribution (no real difference) at
//! the default repeat count. A 95% interval must cover the truth about 95%
//! of the time (at least 93% here), and a comparison of one row must call a
//! difference that is not there at most 5% of the time. Three kinds of
//! repeat p50s: log-normal (a quiet KVM host), heavy-tailed (a host with
//! the odd slow boot), and quantised to one or two timestamp steps (TCG).

#![allow(clippy::unwrap_used)] // test: a failure is the test failing

use vmbench_results::inference::{Difference, Judgement, LogSample, judge};
use vmbench_results::repeats::Rng;

/// `vmbench run`'s default repeat count.
const REPEATS: usize = 3;
const PAIRS: usize = 2000;
/// `vmbench compare`'s default band, percent.
const BAND: f64 = 1.0;

#[derive(Clone, Copy, Debug)]
enum Kind {
    /// exp(σZ) around 10,000 ticks, 1-tick resolution.
    LogNormal { sigma: f64 },
    /// Student t with 3 degrees of freedom on the logs, scaled to σ.
    HeavyTailed { sigma: f64 },
    /// 1.5 steps × exp(0.3 Z), rounded to whole steps (resolution 1 step).
    Quantised,
}

fn draw(kind: Kind, rng: &mut Rng) -> (f64, f64) {
    match kind {
        Kind::LogNormal { sigma } => ((10_000.0 * (sigma * rng.normal()).exp()).round(), 1.0),
        Kind::HeavyTailed { sigma } => {
            let z = rng.normal();
            let chi2: f64 = (0..3).map(|_| rng.normal().powi(2)).sum();
            // t3 has variance 3: scale it to unit variance, then to σ.
            let t = z / (chi2 / 3.0).sqrt() / 3f64.sqrt();
            ((10_000.0 * (sigma * t).exp()).round(), 1.0)
        }
        Kind::Quantised => ((1.5 * (0.3 * rng.normal()).exp()).round().max(1.0), 1.0),
    }
}

fn run(kind: Kind, rng: &mut Rng) -> LogSample {
    let (values, resolutions): (Vec<f64>, Vec<f64>) = (0..REPEATS).map(|_| draw(kind, rng)).unzip();
    LogSample::new(&values, &resolutions).unwrap()
}

/// (coverage of 0 by the difference's interval, false verdicts per row),
/// over `PAIRS` A/A pairs.
fn null_rates(kind: Kind) -> (f64, f64) {
    let mut rng = Rng::new(0x5eed ^ kind_seed(kind));
    let (mut covered, mut judged, mut false_verdicts) = (0, 0, 0);
    for _ in 0..PAIRS {
        let (a, b) = (run(kind, &mut rng), run(kind, &mut rng));
        // Identical repeats in both runs with exact values would have no
        // interval; every kind here has a resolution, so every pair has one.
        let d = Difference::welch(&a, &b).expect("an interval");
        judged += 1;
        let [lo, hi] = d.interval_pct();
        if lo <= 0.0 && 0.0 <= hi {
            covered += 1;
        }
        // One row: a family of one, so no multiplicity adjustment helps.
        if matches!(
            judge(&[d], BAND)[0].0,
            Judgement::Slower | Judgement::Faster
        ) {
            false_verdicts += 1;
        }
    }
    (
        covered as f64 / judged as f64,
        false_verdicts as f64 / judged as f64,
    )
}

fn kind_seed(kind: Kind) -> u64 {
    match kind {
        Kind::LogNormal { .. } => 1,
        Kind::HeavyTailed { .. } => 2,
        Kind::Quantised => 3,
    }
}

#[test]
fn under_no_difference_intervals_cover_and_verdicts_are_rare() {
    for kind in [
        Kind::LogNormal { sigma: 0.01 },
        Kind::LogNormal { sigma: 0.05 },
        Kind::HeavyTailed { sigma: 0.03 },
        Kind::Quantised,
    ] {
        let (coverage, false_rate) = null_rates(kind);
        eprintln!("{kind:?}: coverage {coverage:.3}, false verdicts {false_rate:.3}");
        assert!(coverage >= 0.93, "{kind:?}: coverage {coverage}");
        assert!(false_rate <= 0.05, "{kind:?}: false verdicts {false_rate}");
    }
}

#[test]
fn a_run_interval_covers_the_typical_repeat() {
    // The true centre of exp(σZ)·10,000 is 10,000 (its median).
    for kind in [
        Kind::LogNormal { sigma: 0.02 },
        Kind::HeavyTailed { sigma: 0.02 },
    ] {
        let mut rng = Rng::new(0xc0ffee ^ kind_seed(kind));
        let covered = (0..PAIRS)
            .filter(|_| {
                let [lo, hi] = run(kind, &mut rng).interval().unwrap();
                // Values are whole ticks: the truth is covered to the tick.
                lo - 0.5 <= 10_000.0 && 10_000.0 <= hi + 0.5
            })
            .count();
        let coverage = covered as f64 / PAIRS as f64;
        eprintln!("{kind:?}: one run's interval covers the centre {coverage:.3}");
        assert!(coverage >= 0.93, "{kind:?}: {coverage}");
    }
}

#[test]
fn a_real_difference_is_found_at_the_default_repeat_count() {
    // Power, so the rates above are not bought by never deciding: a row 5%
    // slower with repeats 1% apart, and a row twice as slow with the
    // quantised kind's spread.
    let mut rng = Rng::new(7);
    let mut found = 0;
    for _ in 0..PAIRS {
        let a = run(Kind::LogNormal { sigma: 0.01 }, &mut rng);
        let mut b = run(Kind::LogNormal { sigma: 0.01 }, &mut rng);
        b.mean += 1.05f64.ln();
        if judge(&[Difference::welch(&a, &b).unwrap()], BAND)[0].0 == Judgement::Slower {
            found += 1;
        }
    }
    assert!(
        found as f64 / PAIRS as f64 > 0.8,
        "found {found} of {PAIRS}"
    );
}
