//! KVM's per-vCPU counters through QMP `query-stats` (QEMU ≥ 7.1).

use serde_json::{Value, json};
use std::collections::BTreeMap;

/// The `query-stats` request for the KVM vCPU counters.
pub fn request() -> Value {
    json!({"target": "vcpu", "providers": [{"provider": "kvm"}]})
}

/// KVM's counters could not be read.
#[derive(Debug, thiserror::Error)]
pub enum StatsUnavailable {
    /// The VM has no QMP connection to ask.
    #[error("no QMP connection")]
    NoQmp,
    /// QMP failed.
    #[error("query-stats")]
    Qmp(#[from] vmbench_vm::qmp::QmpError),
    /// query-stats answered something other than a list.
    #[error("query-stats returned {0}, not a list")]
    NotAList(Value),
    /// No KVM provider among the answer's entries.
    #[error("query-stats returned no KVM provider (not running under KVM?)")]
    NoKvmProvider,
    /// A KVM entry without its stats.
    #[error("query-stats entry without stats: {0}")]
    NoStats(Value),
    /// The stats lack the `exits` counter.
    #[error("query-stats has no `exits` counter")]
    NoExits,
}

/// Numeric counters of the first vCPU in a `query-stats` answer (the guest
/// has one vCPU; histograms and booleans are skipped).
pub fn parse(answer: &Value) -> Result<BTreeMap<String, u64>, StatsUnavailable> {
    let list = answer
        .as_array()
        .ok_or_else(|| StatsUnavailable::NotAList(answer.clone()))?;
    let vcpu = list
        .iter()
        .find(|e| e["provider"] == "kvm")
        .ok_or(StatsUnavailable::NoKvmProvider)?;
    let stats = vcpu["stats"]
        .as_array()
        .ok_or_else(|| StatsUnavailable::NoStats(vcpu.clone()))?;
    let mut out = BTreeMap::new();
    for s in stats {
        if let (Some(name), Some(v)) = (s["name"].as_str(), s["value"].as_u64()) {
            out.insert(name.to_string(), v);
        }
    }
    if !out.contains_key("exits") {
        return Err(StatsUnavailable::NoExits);
    }
    Ok(out)
}

/// after − before for every counter present in both (saturating: a counter
/// that went backwards reads as 0, and the verdict says why elsewhere).
pub fn delta(
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
) -> BTreeMap<String, u64> {
    after
        .iter()
        .filter_map(|(k, a)| before.get(k).map(|b| (k.clone(), a.saturating_sub(*b))))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Shape recorded from QEMU 7.2 (`{"execute":"query-stats",...}` under KVM).
    pub const RECORDED: &str = r#"[{"provider": "kvm", "qom-path": "/machine/unattached/device[0]",
        "stats": [{"name": "guest_mode", "value": 0}, {"name": "exits", "value": 123456},
                  {"name": "io_exits", "value": 789}, {"name": "halt_wait_hist", "value": [1, 2, 3]},
                  {"name": "irq_exits", "value": 12}]}]"#;

    #[test]
    fn parses_numbers_and_skips_histograms() {
        let v: Value = serde_json::from_str(RECORDED).unwrap();
        let m = parse(&v).unwrap();
        assert_eq!(m["exits"], 123456);
        assert_eq!(m["io_exits"], 789);
        assert!(!m.contains_key("halt_wait_hist"));
        let mut after = m.clone();
        after.insert("exits".into(), 123456 + 1000);
        after.insert("io_exits".into(), 700);
        let d = delta(&m, &after);
        assert_eq!((d["exits"], d["io_exits"], d["irq_exits"]), (1000, 0, 0));
    }

    #[test]
    fn tcg_and_odd_answers_are_errors() {
        assert!(matches!(
            parse(&serde_json::json!([])),
            Err(StatsUnavailable::NoKvmProvider)
        ));
        assert!(matches!(
            parse(&serde_json::json!({"x": 1})),
            Err(StatsUnavailable::NotAList(_))
        ));
        let no_exits =
            serde_json::json!([{"provider": "kvm", "stats": [{"name": "io_exits", "value": 1}]}]);
        assert!(matches!(parse(&no_exits), Err(StatsUnavailable::NoExits)));
    }
}
