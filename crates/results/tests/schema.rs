//! docs/results.schema.json is the schema the types generate, and the
//! example report's results.json is a record those types read.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use vmbench_results::{RunRecord, results_json_schema};

fn repo_file(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel)
}

#[test]
fn the_documented_schema_is_the_generated_one() {
    let path = repo_file("docs/results.schema.json");
    let committed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert!(
        committed == results_json_schema(),
        "{} is stale: regenerate it with `cargo run -q -- report schema > docs/results.schema.json`",
        path.display()
    );
}

#[test]
fn the_example_report_matches_the_schema_s_shape() {
    let text = std::fs::read_to_string(repo_file("reports/example-tcg/results.json")).unwrap();
    let record: RunRecord = serde_json::from_str(&text).unwrap();
    assert!(!record.results.measurements.is_empty());
    // Every key the example has is one the schema describes (no validator
    // crate: the top level and one measurement are checked by name).
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    let schema = results_json_schema();
    let top = schema["properties"].as_object().unwrap();
    for key in value.as_object().unwrap().keys() {
        assert!(
            top.contains_key(key),
            "results.json key {key:?} is not in the schema"
        );
    }
    let measurement = schema["$defs"]["Measurement"]["properties"]
        .as_object()
        .unwrap();
    for key in value["results"]["measurements"][0]
        .as_object()
        .unwrap()
        .keys()
    {
        assert!(
            measurement.contains_key(key),
            "measurement key {key:?} is not in the schema"
        );
    }
    for required in schema["required"].as_array().unwrap() {
        assert!(
            value.get(required.as_str().unwrap()).is_some(),
            "the example lacks required key {required}"
        );
    }
}
