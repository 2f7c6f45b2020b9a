//! results.json as a reader and `git diff` see it: one key per line, but a
//! list of numbers (a drift series, a CDF, a repeat's p50s) and a small
//! object of plain values (a repeat's summary, an interval) on one line.
//! serde_json's pretty printer puts every number of a drift series on its
//! own line, so each regeneration of a report rewrote hundreds of
//! thousands of lines; here a line changes when a value on it does.

use serde::Serialize;
use serde_json::Value;

/// The longest object kept on one line (its compact form).
const ONE_LINE_OBJECT: usize = 160;

/// `value` as JSON text in this layout, with a final newline.
pub fn to_text<T: Serialize>(value: &T) -> Result<String, serde_json::Error> {
    let v = serde_json::to_value(value)?;
    let mut out = String::new();
    write(&v, 0, &mut out)?;
    out.push('\n');
    Ok(out)
}

fn is_scalar(v: &Value) -> bool {
    !matches!(v, Value::Array(_) | Value::Object(_))
}

/// A list of plain values, or of lists of plain values (CDF pairs).
fn is_flat_array(v: &Value) -> bool {
    match v {
        Value::Array(a) => a.iter().all(|x| match x {
            Value::Array(inner) => inner.iter().all(is_scalar),
            other => is_scalar(other),
        }),
        _ => false,
    }
}

/// An object whose values are plain values or flat lists.
fn is_flat_object(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.values().all(|x| is_scalar(x) || is_flat_array(x)),
        _ => false,
    }
}

fn write(v: &Value, indent: usize, out: &mut String) -> Result<(), serde_json::Error> {
    // Serialised whole only when it may go on one line: a subtree is not
    // turned into text once per level above it.
    let one_line = match v {
        Value::Array(a) => a.is_empty() || is_flat_array(v),
        Value::Object(m) if m.is_empty() => true,
        Value::Object(_) if is_flat_object(v) => {
            let compact = serde_json::to_string(v)?;
            if compact.len() <= ONE_LINE_OBJECT {
                out.push_str(&compact);
                return Ok(());
            }
            false
        }
        Value::Object(_) => false,
        _ => true,
    };
    if one_line {
        out.push_str(&serde_json::to_string(v)?);
        return Ok(());
    }
    let pad = " ".repeat(indent + 2);
    match v {
        Value::Object(m) => {
            out.push_str("{\n");
            for (i, (k, x)) in m.iter().enumerate() {
                out.push_str(&pad);
                out.push_str(&serde_json::to_string(k)?);
                out.push_str(": ");
                write(x, indent + 2, out)?;
                out.push_str(if i + 1 < m.len() { ",\n" } else { "\n" });
            }
            out.push_str(&" ".repeat(indent));
            out.push('}');
        }
        Value::Array(a) => {
            out.push_str("[\n");
            for (i, x) in a.iter().enumerate() {
                out.push_str(&pad);
                write(x, indent + 2, out)?;
                out.push_str(if i + 1 < a.len() { ",\n" } else { "\n" });
            }
            out.push_str(&" ".repeat(indent));
            out.push(']');
        }
        _ => out.push_str(&serde_json::to_string(v)?),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_share_a_line_objects_do_not_and_the_text_is_the_same_json() {
        let v = serde_json::json!({
            "id": "vmexit.user-fast",
            "summary": {"p50": 74, "drift": [80.0, 76.5, 76.0], "cdf": [[0.0, 56], [1.0, 318]],
                        "definition": "x".repeat(200)},
            "ci95": [98.5, 101.5],
            "repeat": {"n": 2000, "p50": 74},
            "nested": [{"a": {"b": 1}}],
        });
        let text = to_text(&v).unwrap();
        assert!(text.contains("\"drift\": [80.0,76.5,76.0]"), "{text}");
        assert!(text.contains("\"cdf\": [[0.0,56],[1.0,318]]"), "{text}");
        assert!(
            text.contains("\"repeat\": {\"n\":2000,\"p50\":74}"),
            "{text}"
        );
        // Too long for one line: one key per line.
        assert!(
            text.contains("\"summary\": {\n    \"p50\": 74,\n"),
            "{text}"
        );
        assert!(
            text.contains("\"nested\": [\n    {\n      \"a\": {\"b\":1}\n    }\n  ]"),
            "{text}"
        );
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), v);
        assert!(text.ends_with("}\n"));
    }

    #[test]
    fn a_changed_value_changes_one_line() {
        let drift: Vec<f64> = (0..512).map(f64::from).collect();
        let mut v = serde_json::json!({
            "measurements": [{"id": "a", "summary": {"p50": 74, "p99": 100, "drift": drift}},
                             {"id": "b", "summary": {"p50": 80, "p99": 120, "drift": drift}}]
        });
        let before = to_text(&v).unwrap();
        v["measurements"][1]["summary"]["p99"] = serde_json::json!(121);
        let after = to_text(&v).unwrap();
        let changed = before
            .lines()
            .zip(after.lines())
            .filter(|(a, b)| a != b)
            .count();
        assert_eq!(before.lines().count(), after.lines().count());
        assert_eq!(changed, 1, "{after}");
        assert!(before.lines().count() < 30, "{before}");
    }
}
