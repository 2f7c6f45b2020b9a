//! A run's rows in the formats other tools read, exactly as they read
//! them: Bencher's Metric Format (to track results over time in Bencher),
//! hyperfine's `--export-json` (for its scripts and Bencher's
//! `shell_hyperfine` adapter) and HdrHistogram's interval log (for
//! HistogramLogProcessor and every HdrHistogram port). docs/repeats.md
//! says what each field holds.

use crate::PublishError;
use serde_json::{Map, Value, json};
use vmbench_results::stats::decode_histogram;
use vmbench_results::{Measurement, RunRecord, Unit};

/// Bencher measure slugs for what its built-in measures do not hold
/// (`latency` is ns; `throughput` is operations per second, not bytes).
pub const BMF_TICKS: &str = "tsc-ticks";
/// Bytes per second, over the p50 without the timer's cost.
pub const BMF_BYTES_PER_SECOND: &str = "bytes-per-second";

/// The accelerator that measured `m`: the guest that ran its suite, else
/// the run's; `host` for a run without a guest (a loopback).
pub fn accelerator(r: &RunRecord, m: &Measurement) -> &'static str {
    m.id.suite()
        .and_then(|s| r.guest_of(s))
        .map(|g| g.accel)
        .or(r.accel)
        .map_or("host", |a| a.name())
}

/// A row's name in an export: its id and the accelerator that measured it,
/// so that a TCG run and a KVM run never share a benchmark.
pub fn export_name(r: &RunRecord, m: &Measurement) -> String {
    format!("{} [{}]", m.id, accelerator(r, m))
}

/// The row's typical p50 in its unit with its 95% interval when it has
/// repeats (geometric mean of the repeats' p50s; docs/repeats.md), else
/// its p50 alone.
fn typical(m: &Measurement) -> (f64, Option<[f64; 2]>) {
    match &m.repeats {
        Some(rep) if rep.summaries.len() >= 2 => {
            let centre = if rep.geometric_mean_p50 > 0.0 {
                rep.geometric_mean_p50
            } else {
                rep.median_p50
            };
            (centre, Some(rep.ci95))
        }
        _ => (m.summary.p50 as f64, None),
    }
}

fn metric(value: f64, bounds: Option<[f64; 2]>) -> Value {
    match bounds {
        Some([lo, hi]) => json!({ "value": value, "lower_value": lo, "upper_value": hi }),
        None => json!({ "value": value }),
    }
}

/// Bencher Metric Format: per row (named by [`export_name`]) `latency` in
/// ns, [`BMF_TICKS`] in TSC ticks (both the typical p50, with the 95%
/// interval of its repeats as bounds when it has them) and, for transfers,
/// [`BMF_BYTES_PER_SECOND`]. Rows that are not times are left out.
pub fn bmf(r: &RunRecord) -> Value {
    let mut out = Map::new();
    for m in &r.results.measurements {
        let (centre, bounds) = typical(m);
        let Some(ns) = m.time_ns(centre) else {
            continue;
        };
        let mut measures = Map::new();
        let ns_bounds = bounds.and_then(|[lo, hi]| Some([m.time_ns(lo)?, m.time_ns(hi)?]));
        measures.insert("latency".into(), metric(ns, ns_bounds));
        if m.unit == Unit::TscTicks {
            measures.insert(BMF_TICKS.into(), metric(centre, bounds));
        }
        if let Some(bps) = m.p50_bytes_per_sec().filter(|_| !m.beats_its_reference()) {
            measures.insert(BMF_BYTES_PER_SECOND.into(), json!({ "value": bps }));
        }
        out.insert(export_name(r, m), Value::Object(measures));
    }
    Value::Object(out)
}

/// How many values stand for a row's samples in hyperfine's `times`: its
/// percentiles 0, 1, …, 100 (vmbench keeps a histogram, not every sample).
pub const HYPERFINE_TIMES: usize = 101;

/// hyperfine's `--export-json` layout, one result per row (named by
/// [`export_name`]), in seconds for `per` back-to-back executions of the
/// row (1: one execution; hyperfine's scripts print seconds or
/// milliseconds with three decimals, so `--per 1000000` prints µs per
/// execution as seconds per million). `mean`, `stddev`, `min` and `max`
/// are exact over all samples (every repeat pooled), `median` is the p50,
/// and `times` is the same samples' distribution as its percentiles 0 to
/// 100 (`times[0]` = min, `times[50]` = median, `times[100]` = max), one
/// exit code 0 each. `user` and `system` are 0: vmbench does not measure
/// CPU time per execution. `parameters` say what the numbers are.
pub fn hyperfine(r: &RunRecord, per: u64) -> Value {
    let per = per.max(1) as f64;
    let results: Vec<Value> = r
        .results
        .measurements
        .iter()
        .filter_map(|m| {
            let s = |v: f64| m.time_ns(v).map(|ns| ns * per / 1e9);
            let sum = &m.summary;
            let hist = m.pooled_histogram()?;
            let times: Vec<f64> = (0..HYPERFINE_TIMES)
                .map(|i| {
                    let q = i as f64 / (HYPERFINE_TIMES - 1) as f64;
                    let v = hist.value_at_quantile(q).clamp(sum.min, sum.max);
                    s(v as f64)
                })
                .collect::<Option<_>>()?;
            Some(json!({
                "command": if per > 1.0 { format!("{} ×{per}", export_name(r, m)) } else { export_name(r, m) },
                "mean": s(sum.mean)?,
                "stddev": (sum.n > 1).then(|| s(sum.stddev)).flatten(),
                "median": s(sum.p50 as f64)?,
                "user": 0.0,
                "system": 0.0,
                "min": s(sum.min as f64)?,
                "max": s(sum.max as f64)?,
                "times": times,
                "exit_codes": vec![0; HYPERFINE_TIMES],
                "parameters": {
                    "accelerator": accelerator(r, m),
                    "executions_per_time": format!("{per}"),
                    "samples": sum.n.to_string(),
                    "times_are": "the samples' percentiles 0 to 100",
                    "path": m.path_label(),
                },
            }))
        })
        .collect();
    json!({ "results": results })
}

/// HdrHistogram's interval log: one interval per row and repeat, in the
/// row's unit (TSC ticks for times), tagged `<row>@<accelerator>/r<N>`,
/// with a comment per row naming its unit. Rows without a histogram are
/// left out. Every interval is stamped at the run's start with no
/// duration: vmbench records when a run started, not when each row did.
pub fn hdr_interval_log(r: &RunRecord) -> Result<Vec<u8>, PublishError> {
    use hdrhistogram::serialization::V2DeflateSerializer;
    use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
    let io = |e: std::io::Error| PublishError::Export(format!("interval log: {e}"));
    let start = std::time::UNIX_EPOCH
        + std::time::Duration::from_secs(started_unix_seconds(&r.started_utc).unwrap_or(0));
    let mut out = Vec::new();
    let mut serializer = V2DeflateSerializer::new();
    let mut log = IntervalLogWriterBuilder::new()
        .add_comment(&format!(
            "vmbench {} run of {}: one interval per row and repeat, tagged <row>@<accelerator>/r<repeat>",
            r.vmbench_version, r.started_utc
        ))
        .with_start_time(start)
        .with_base_time(start)
        .begin_log_with(&mut out, &mut serializer)
        .map_err(io)?;
    for m in &r.results.measurements {
        let encoded: Vec<&str> = match &m.repeats {
            Some(rep) if !rep.histograms.is_empty() => {
                rep.histograms.iter().map(String::as_str).collect()
            }
            _ => m.histogram.as_deref().into_iter().collect(),
        };
        if encoded.is_empty() {
            continue;
        }
        let unit = match (m.unit, m.tsc_khz) {
            (Unit::TscTicks, Some(khz)) => format!("TSC ticks at {khz:.3} kHz"),
            (u, _) => u.symbol().to_string(),
        };
        log.write_comment(&format!("{}: {unit}", m.id))
            .map_err(io)?;
        for (i, text) in encoded.iter().enumerate() {
            let hist = decode_histogram(text)
                .map_err(|e| PublishError::Export(format!("{}: {e}", m.id)))?;
            let tag_text = format!("{}@{}/r{}", m.id, accelerator(r, m), i + 1);
            let tag = Tag::new(&tag_text)
                .ok_or_else(|| PublishError::Export(format!("{tag_text}: not a valid tag")))?;
            log.write_histogram(
                &hist,
                std::time::Duration::ZERO,
                std::time::Duration::ZERO,
                Some(tag),
            )
            .map_err(|e| PublishError::Export(format!("interval log: {e}")))?;
        }
    }
    Ok(out)
}

/// `2026-12-06T11:58:16Z` as seconds since the epoch (None if not that form).
fn started_unix_seconds(utc: &str) -> Option<u64> {
    let (date, time) = utc.trim_end_matches('Z').split_once('T')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>());
    let (y, mo, da) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let mut t = time
        .split(':')
        .map(|x| x.split('.').next().unwrap_or(x).parse::<i64>());
    let (h, mi, s) = (t.next()?.ok()?, t.next()?.ok()?, t.next()?.ok()?);
    let days = crate::sign::days_from_civil(y, mo, da);
    u64::try_from(days * 86_400 + h * 3600 + mi * 60 + s).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_times_are_unix_seconds() {
        assert_eq!(started_unix_seconds("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(
            started_unix_seconds("2026-12-06T11:58:16Z"),
            Some(1_796_558_296)
        );
        assert_eq!(started_unix_seconds("not a date"), None);
    }
}
