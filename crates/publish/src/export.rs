//! A run's rows in formats other tools read: Bencher's Metric Format (to
//! track results over time in Bencher), and hyperfine's `--export-json`
//! layout (for the scripts and plots people already have for it).

use serde_json::{Map, Value, json};
use vmbench_results::{Measurement, RunRecord};

/// Bencher Metric Format: `{ "<row>": { "latency": { "value", "lower_value",
/// "upper_value" } } }` with the p50 in ns (the median of the repeats, and
/// its 95% confidence interval as the bounds, when the run has repeats),
/// plus `throughput` in bytes per second for transfers. Rows that are not
/// times (or whose TSC frequency is unknown) are left out.
pub fn bmf(r: &RunRecord) -> Value {
    let mut out = Map::new();
    for m in &r.results.measurements {
        let Some(p50) = m.p50_ns() else { continue };
        let mut latency = Map::new();
        match &m.repeats {
            Some(rep) => {
                let bound = |v: f64| m.time_ns(v).map_or(Value::Null, |x| json!(x));
                latency.insert("value".into(), bound(rep.median_p50));
                latency.insert("lower_value".into(), bound(rep.ci95[0]));
                latency.insert("upper_value".into(), bound(rep.ci95[1]));
            }
            None => {
                latency.insert("value".into(), json!(p50));
            }
        }
        let mut measures = Map::new();
        measures.insert("latency".into(), Value::Object(latency));
        if let Some(bps) = m.p50_bytes_per_sec().filter(|_| !m.beats_its_reference()) {
            measures.insert("throughput".into(), json!({ "value": bps }));
        }
        out.insert(m.id.to_string(), Value::Object(measures));
    }
    Value::Object(out)
}

/// hyperfine's JSON layout, one entry per row, times in seconds: `mean`,
/// `stddev`, `median`, `min`, `max` of the row's samples (pooled over
/// repeats), and `times`: each repeat's p50 (one value without repeats),
/// since vmbench keeps histograms, not every sample.
pub fn hyperfine(r: &RunRecord) -> Value {
    let s = |m: &Measurement, v: f64| m.time_ns(v).map(|ns| ns / 1e9);
    let results: Vec<Value> = r
        .results
        .measurements
        .iter()
        .filter_map(|m| {
            let sum = &m.summary;
            let times: Vec<f64> = match &m.repeats {
                Some(rep) => rep
                    .summaries
                    .iter()
                    .filter_map(|x| s(m, x.p50 as f64))
                    .collect(),
                None => vec![s(m, sum.p50 as f64)?],
            };
            Some(json!({
                "command": m.id.to_string(),
                "mean": s(m, sum.mean)?,
                "stddev": s(m, sum.stddev)?,
                "median": s(m, sum.p50 as f64)?,
                "user": 0.0,
                "system": 0.0,
                "min": s(m, sum.min as f64)?,
                "max": s(m, sum.max as f64)?,
                "times": times,
            }))
        })
        .collect();
    json!({ "results": results })
}
