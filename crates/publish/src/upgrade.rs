//! Records older vmbench versions wrote, brought to this version's shape
//! on the JSON before it is read into the types: each step takes one
//! version to the next, so a version 1 file goes through all of them.

use serde_json::Value;
use vmbench_results::RUN_SCHEMA_VERSION;

/// `v` in [`RUN_SCHEMA_VERSION`]'s shape, when it is an older version's
/// (unknown and newer versions are left for the caller to refuse).
pub(crate) fn to_current(v: &mut Value) {
    v1_to_v2(v);
    v2_to_v3(v);
}

/// Version 3 writes less of what can be derived: no CDF (the histogram
/// holds the curve), the drift series beside the summary instead of in it
/// (and in no other summary), the repeats' distributions as columns, and
/// no pooled histogram beside the repeats' (their sum); and says why a run
/// is incomplete as kinds (older text becomes `unclassified`).
fn v2_to_v3(v: &mut Value) {
    if v.get("schema_version").and_then(Value::as_u64) != Some(2) {
        return;
    }
    let measurements = v
        .get_mut("results")
        .and_then(|r| r.get_mut("measurements"))
        .and_then(Value::as_array_mut);
    for m in measurements.into_iter().flatten() {
        let Some(m) = m.as_object_mut() else { continue };
        let mut drift = None;
        if let Some(s) = m.get_mut("summary").and_then(Value::as_object_mut) {
            s.remove("cdf");
            let means = s.remove("drift");
            let block = s.remove("drift_block");
            if let (Some(means), Some(block)) = (means, block)
                && means.as_array().is_some_and(|a| !a.is_empty())
            {
                drift = Some(serde_json::json!({ "block": block, "means": means }));
            }
        }
        if let Some(d) = drift {
            m.insert("drift".into(), d);
        }
        if let Some(o) = m
            .get_mut("overhead_subtracted")
            .and_then(Value::as_object_mut)
        {
            for k in ["cdf", "drift", "drift_block"] {
                o.remove(k);
            }
        }
        let pooled_is_their_sum = m
            .get("repeats")
            .and_then(|r| r.get("histograms"))
            .and_then(Value::as_array)
            .is_some_and(|h| !h.is_empty());
        if pooled_is_their_sum {
            m.remove("histogram");
        }
        let Some(r) = m.get_mut("repeats").and_then(Value::as_object_mut) else {
            continue;
        };
        let rows = match r.remove("summaries") {
            Some(Value::Array(rows)) => rows,
            _ => Vec::new(),
        };
        for key in [
            "n", "min", "p50", "p90", "p99", "p999", "max", "mean", "stddev",
        ] {
            let column: Vec<Value> = rows
                .iter()
                .map(|row| row.get(key).cloned().unwrap_or(Value::Null))
                .collect();
            r.insert(key.into(), Value::Array(column));
        }
    }
    if let Some(r) = v.get_mut("results").and_then(Value::as_object_mut) {
        r.insert("schema_version".into(), Value::from(2));
    }
    if let Some(text) = v.get("pinning").and_then(Value::as_str).map(String::from) {
        v["pinning"] = match pinning_v2(&text) {
            Some(p) => p,
            None => {
                // Kept for the reader where it cannot be a record.
                if let Some(notes) = v.get_mut("isolation_notes").and_then(Value::as_array_mut) {
                    notes.push(Value::from(format!("pinning: {text}")));
                }
                Value::Null
            }
        };
    }
    if let Some(list) = v.get_mut("incomplete").and_then(Value::as_array_mut) {
        for why in list {
            if let Some(text) = why.as_str() {
                *why = serde_json::json!({ "kind": "unclassified", "text": text });
            }
        }
    }
    v["schema_version"] = Value::from(RUN_SCHEMA_VERSION);
}

/// Version 1 wrote warnings as bare text and each knob's restore state as
/// text (empty, `restored` or `FAILED: …`); version 2 gives each warning a
/// kind (the one a report decides on, "not a bandwidth", is recognised by
/// the words version 1 wrote; the others become `unclassified`) and the
/// restore state as a state, and drops the copies noted below.
fn v1_to_v2(v: &mut serde_json::Value) {
    use serde_json::Value;
    if v.get("schema_version").and_then(Value::as_u64) != Some(1) {
        return;
    }
    let typed = |w: &mut Value| {
        let Some(text) = w.as_str() else {
            return;
        };
        let (repeat, message) = match text
            .strip_prefix("repeat ")
            .and_then(|t| t.split_once(": "))
        {
            Some((n, rest)) if n.parse::<u32>().is_ok() => (n.parse::<u32>().ok(), rest),
            _ => (None, text),
        };
        let kind = v1_kind(message);
        let mut typed = serde_json::json!({ "kind": kind, "message": message });
        if let Some(n) = repeat {
            typed["repeats"] = serde_json::json!([n]);
        }
        *w = typed;
    };
    if let Some(results) = v.get_mut("results") {
        if let Some(ws) = results.get_mut("warnings").and_then(Value::as_array_mut) {
            ws.iter_mut().for_each(typed);
        }
        if let Some(ms) = results
            .get_mut("measurements")
            .and_then(Value::as_array_mut)
        {
            for m in ms {
                if let Some(ws) = m.get_mut("warnings").and_then(Value::as_array_mut) {
                    ws.iter_mut().for_each(typed);
                }
                // Version 2 no longer keeps what nothing reads and the row
                // already has: each repeat's CDF (its histogram is kept),
                // and the CDF and drift of p50−ovh (the row's, shifted).
                if let Some(o) = m
                    .get_mut("overhead_subtracted")
                    .and_then(Value::as_object_mut)
                {
                    o.remove("cdf");
                    o.remove("drift");
                }
                let summaries = m
                    .get_mut("repeats")
                    .and_then(|r| r.get_mut("summaries"))
                    .and_then(Value::as_array_mut);
                for s in summaries.into_iter().flatten() {
                    if let Some(s) = s.as_object_mut() {
                        s.remove("cdf");
                    }
                }
            }
        }
    }
    if let Some(knobs) = v.get_mut("isolation").and_then(Value::as_array_mut) {
        for k in knobs {
            let Some(state) = k.get_mut("restored") else {
                continue;
            };
            *state = match state.as_str() {
                Some("") | None => Value::from("unchanged"),
                Some("restored") => Value::from("restored"),
                Some(text) => {
                    let why = text.strip_prefix("FAILED: ").unwrap_or(text);
                    serde_json::json!({ "failed": [why] })
                }
            };
        }
    }
    v["schema_version"] = Value::from(2);
}

/// The kind of a warning version 1 wrote as text, by the words each kind
/// of warning began with (or, for a few, contained) in that version: the
/// one place a warning's prose is read, for records written before it had
/// a kind.
fn v1_kind(message: &str) -> &'static str {
    const BY_START: &[(&str, &str)] = &[
        ("TCG (software emulation): no VM exits happen", "tcg"),
        ("Mixed accelerators:", "partly-tcg"),
        ("The host itself runs under a hypervisor", "nested-host"),
        ("The host is a guest of QEMU's TCG", "tcg-hosted-kvm"),
        ("RDTSC exits", "rdtsc-exits"),
        ("KVM emulates this guest's ring 0", "ring0-emulated"),
        (
            "the window is within 3× the timer's own cost",
            "timer-dominates",
        ),
        (
            "faster than its physical reference",
            "faster-than-reference",
        ),
        ("timed on the guest's TSC", "guest-clock"),
        ("the guest's TSC runs at", "tsc-mismatch"),
        ("host: no hardware counters", "no-hardware-counters"),
        ("guest: no hardware counters", "no-hardware-counters"),
        ("the guest reports a", "mapping-mismatch"),
        ("TCG ignores memory types", "memory-type-arms"),
        ("host CPU ", "memory-type-arms"),
        ("thermal throttling during", "host-changed"),
        ("run-to-run spread", "repeat-spread"),
        ("a repeat's histogram is missing", "histogram-missing"),
        ("the host was NOT fully restored", "host-not-restored"),
    ];
    const CONTAINED: &[(&str, &str)] = &[
        ("x the median (interrupts or preemption", "outliers"),
        ("external-interrupt exits happened", "interrupt-exits"),
        ("below the timer baseline's p50", "overhead-floored"),
    ];
    BY_START
        .iter()
        .find(|(start, _)| message.starts_with(start))
        .or_else(|| CONTAINED.iter().find(|(words, _)| message.contains(words)))
        .map_or("unclassified", |(_, kind)| kind)
}

/// The pinning versions 1 and 2 wrote as a line (`vCPU thread(s) 4242
/// → CPU 1; QEMU's other threads → CPUs 0`), as a record: the one place its
/// text is read.
fn pinning_v2(text: &str) -> Option<Value> {
    let rest = text.strip_prefix("vCPU thread(s) ")?;
    let (tids, rest) = rest.split_once(" → CPU ")?;
    let (cpus, housekeeping) = rest.split_once("; QEMU's other threads → CPUs ")?;
    let cpus: vmbench_host::CpuList = cpus.parse().ok()?;
    let housekeeping: vmbench_host::CpuList = housekeeping.parse().ok()?;
    let tids: Vec<u32> = tids
        .split(',')
        .map(|t| t.parse().ok())
        .collect::<Option<_>>()?;
    let cpus: Vec<u32> = cpus.iter().collect();
    (tids.len() == cpus.len()).then(|| {
        let vcpus: Vec<Value> = tids
            .iter()
            .zip(cpus)
            .map(|(tid, cpu)| serde_json::json!({ "tid": tid, "cpu": cpu }))
            .collect();
        serde_json::json!({ "vcpus": vcpus, "housekeeping": housekeeping.to_string() })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_version_2_pinning_line_becomes_a_record_or_a_note() {
        let mut v = serde_json::json!({
            "schema_version": 2,
            "pinning": "vCPU thread(s) 4242,4243 → CPU 2-3; QEMU's other threads → CPUs 0-1",
            "isolation_notes": [],
        });
        to_current(&mut v);
        let p: vmbench_results::Pinning = serde_json::from_value(v["pinning"].clone()).unwrap();
        assert_eq!(
            p.to_string(),
            "vCPU thread(s) 4242,4243 → CPU 2-3; QEMU's other threads → CPUs 0-1"
        );
        assert_eq!(p.vcpus[1].tid, 4243);
        assert_eq!(p.vcpus[1].cpu, 3);
        let mut odd = serde_json::json!({
            "schema_version": 2, "pinning": "pinned somehow", "isolation_notes": [],
        });
        to_current(&mut odd);
        assert_eq!(odd["pinning"], Value::Null);
        assert_eq!(odd["isolation_notes"][0], "pinning: pinned somehow");
    }

    #[test]
    fn version_2_reasons_become_unclassified_kinds_with_their_text() {
        let mut v = serde_json::json!({
            "schema_version": 2,
            "incomplete": ["repeat 2 of 3: the shared-memory suite stopped: timeout"],
            "results": {"schema_version": 1, "measurements": []},
        });
        to_current(&mut v);
        assert_eq!(v["schema_version"], RUN_SCHEMA_VERSION);
        let why: Vec<vmbench_results::Incomplete> =
            serde_json::from_value(v["incomplete"].clone()).unwrap();
        assert_eq!(
            why[0].what,
            vmbench_results::Stopped::Unclassified {
                text: "repeat 2 of 3: the shared-memory suite stopped: timeout".into()
            }
        );
        assert_eq!(
            why[0].to_string(),
            "repeat 2 of 3: the shared-memory suite stopped: timeout"
        );
    }
}
