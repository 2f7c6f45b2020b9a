//! How results.json writes derived statistics: to 7 significant digits.
//!
//! A mean of 2,000 tick counts is exact at 4 decimals, but its float sum
//! prints as `76.91099999999993`, and a t interval or a geometric mean
//! carries 17 digits its own uncertainty makes meaningless. Seven
//! significant digits keep every figure a report or a comparison uses (a
//! tick is resolved below 10,000,000 ticks, and no derived statistic is
//! known to better than 1 part in 10^7) at half the characters.

use serde::Serializer;

/// The significant digits written.
pub const SIGNIFICANT: i32 = 7;

/// `v` rounded to [`SIGNIFICANT`] significant digits (non-finite and zero unchanged).
pub fn round_significant(v: f64) -> f64 {
    if v == 0.0 || !v.is_finite() {
        return v;
    }
    let decimals = SIGNIFICANT - 1 - v.abs().log10().floor() as i32;
    // Scale by an exact power of ten in the direction that keeps it one:
    // 10^k for k ≥ 0 is exact, 10^-k is not.
    if decimals >= 0 {
        let p = 10f64.powi(decimals);
        (v * p).round() / p
    } else {
        let p = 10f64.powi(-decimals);
        (v / p).round() * p
    }
}

/// serde's `serialize_with` for one number.
pub fn seven_digits<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(round_significant(*v))
}

/// serde's `serialize_with` for a pair of numbers (an interval).
pub fn seven_digits_pair<S: Serializer>(v: &[f64; 2], s: S) -> Result<S::Ok, S::Error> {
    use serde::Serialize;
    [round_significant(v[0]), round_significant(v[1])].serialize(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seven_significant_digits_at_every_magnitude() {
        assert_eq!(round_significant(76.91099999999993), 76.911);
        assert_eq!(round_significant(75.32739835423665), 75.3274);
        assert_eq!(round_significant(51_410_387.684_951_85), 51_410_390.0);
        assert_eq!(round_significant(2.631578947368421), 2.631579);
        assert_eq!(round_significant(0.000_123_456_789), 0.000_123_456_8);
        assert_eq!(round_significant(-14.886869665722942), -14.88687);
        assert_eq!(round_significant(0.0), 0.0);
        assert!(round_significant(f64::NAN).is_nan());
        // Exact small values stay exact.
        assert_eq!(round_significant(76.0), 76.0);
        assert_eq!(
            serde_json::to_string(&round_significant(12.2001333)).unwrap(),
            "12.20013"
        );
    }
}
