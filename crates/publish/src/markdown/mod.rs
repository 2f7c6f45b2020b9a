//! `report.md`: a first screen a reader takes in at a glance, then the full
//! specification, one table per suite, plots, and how to reproduce.
//! Deterministic: the same record gives the same bytes.

mod front;
mod sections;
mod spec;
mod suites;

pub use front::headline_rows;
use front::*;
use sections::*;
use spec::*;
use suites::*;

use crate::plots::PlotIndex;
use std::fmt::Write;
use vmbench_proto::vmexit::Row;
use vmbench_results::{
    ExitEvents, Measurement, MeasurementId, QemuRecord, RunRecord, Severity, Suite, Unit,
    Verification, Warning, WarningKind,
};
/// `s` as Markdown text that cannot make a link, an image, an autolink or
/// raw HTML: `[`, `]` and `<` are escaped, and the backslash (else `\[`
/// would turn our escape into an escaped backslash and the bracket live
/// again); line breaks and other control characters become spaces (no new
/// block can start). Emphasis and code spans are left alone: they change
/// how text looks, never what it does. `|` is left to [`cell`].
pub fn text(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' | '[' | ']' | '<' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// The record with every string made inert by [`text`], except the command
/// lines, which are only ever shown in code blocks ([`code_block`]).
fn inert_strings(r: &RunRecord) -> Option<RunRecord> {
    fn walk(v: &mut serde_json::Value, key: Option<&str>) {
        match v {
            serde_json::Value::String(s) if !matches!(key, Some("command" | "command_line")) => {
                *s = text(s);
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(|x| walk(x, key)),
            serde_json::Value::Object(m) => {
                for (k, x) in m.iter_mut() {
                    walk(x, Some(k));
                }
            }
            _ => {}
        }
    }
    let mut v = serde_json::to_value(r).ok()?;
    walk(&mut v, None);
    // Escaping changes no enum tag, number or id a record holds, so the
    // copy reads back; were it ever not to, nothing of the record is shown
    // rather than its raw strings.
    serde_json::from_value(v).ok()
}

/// A fenced code block holding `content` as it is: the fence is longer
/// than any run of backticks in it, and control characters (a line break
/// among them) become spaces, so nothing can close the block early.
fn code_block(lang: &str, content: &str) -> String {
    let content: String = content
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let longest = content.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat((longest + 1).max(3));
    format!("{fence}{lang}\n{content}\n{fence}\n")
}

/// One table cell: no pipes or line breaks may break the table.
pub fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}

/// A Markdown table; a column whose every cell is a number (or `-`) is
/// right-aligned, so that digits line up.
fn table(out: &mut String, header: &[&str], rows: &[Vec<String>]) {
    let _ = writeln!(out, "| {} |", header.join(" | "));
    let align: Vec<&str> = (0..header.len())
        .map(|col| {
            let numeric = !rows.is_empty()
                && rows.iter().all(|r| {
                    r.get(col)
                        .is_some_and(|c| c == "-" || c.starts_with(|ch: char| ch.is_ascii_digit()))
                });
            if numeric { "---:" } else { "---" }
        })
        .collect();
    let _ = writeln!(out, "|{}|", align.join("|"));
    for r in rows {
        debug_assert_eq!(r.len(), header.len());
        let cells: Vec<String> = r.iter().map(|c| cell(c)).collect();
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
    out.push('\n');
}

/// A tick count with its ns equivalent, when the TSC frequency is known.
pub fn ticks_ns(m: &Measurement, v: u64) -> String {
    match m.ns(v as f64) {
        Some(ns) => format!("{v} ({})", fmt_ns(ns)),
        None => v.to_string(),
    }
}

/// A duration given in ns, printed in ns (below 10 µs), µs or ms.
pub fn fmt_ns(ns: f64) -> String {
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e4 {
        format!("{:.1} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

/// GB/s at the p50, unless the transfer beat its physical reference (then
/// it is not a bandwidth, and the cell says so).
fn gbps(m: &Measurement) -> String {
    if m.beats_its_reference() {
        return NOT_A_BANDWIDTH.into();
    }
    gbps_value(m).map_or_else(|| "-".into(), |g| format!("{g:.2}"))
}

/// What a transfer faster than its physical reference shows instead of GB/s.
const NOT_A_BANDWIDTH: &str = "⚠ faster than its reference: not a bandwidth";

/// GB/s at the p50, when the row has a rate and did not beat its reference.
fn gbps_value(m: &Measurement) -> Option<f64> {
    if m.beats_its_reference() {
        return None;
    }
    m.p50_bytes_per_sec().map(|b| b / 1e9)
}

/// A row's path verdict in full; for an emulated row (TCG) only what is
/// particular to the row, since the banner says why nothing is verified.
fn verdict(m: &Measurement) -> String {
    if let Verification::Unverified {
        cause: Some(vmbench_results::Unverifiable::Emulated),
        reason,
    } = &m.verification
    {
        return match reason
            .strip_prefix(vmbench_results::Unverifiable::EMULATED_REASON)
            .and_then(|rest| rest.strip_prefix("; "))
        {
            Some(rest) => format!("n/a (TCG); {rest}"),
            None => "n/a (TCG)".into(),
        };
    }
    match &m.verification {
        Verification::Verified { evidence } => format!("verified: {evidence}"),
        Verification::Failed { evidence } => format!("FAILED: {evidence}"),
        Verification::Unverified { reason, .. } => format!("unverified: {reason}"),
        Verification::NotApplicable => "n/a".into(),
    }
}

fn find<'a>(r: &'a RunRecord, id: &MeasurementId) -> Option<&'a Measurement> {
    r.results.measurements.iter().find(|m| m.id == *id)
}

/// A measurement of the shared-memory suite by its id within the suite.
fn find_shm<'a>(r: &'a RunRecord, local: &str) -> Option<&'a Measurement> {
    find(r, &MeasurementId::new(Suite::Shm, local))
}

/// The whole report.md of a run.
pub fn render(r: &RunRecord, plots: &PlotIndex) -> String {
    // Every string of the record may have been crafted (results.json comes
    // from anyone; the guest's spec from a hostile guest): rendered from a
    // copy whose strings cannot make links, images, HTML or new blocks.
    let Some(safe) = inert_strings(r) else {
        return "# vmbench report\n\nThis record could not be rendered: its strings do not survive escaping.\n".into();
    };
    let r = &safe;
    let mut o = String::new();
    // The first screen answers the question: what ran where, the headline
    // numbers with their verdicts and figures, what to be wary of.
    front_matter(&mut o, r);
    headline(&mut o, r, plots);
    at_a_glance(&mut o, r);
    warnings(&mut o, r);
    checks(&mut o, r);
    // Everything else below, long tables folded.
    vmexit_section(&mut o, r, plots);
    shm_section(&mut o, r, plots);
    repeats_section(&mut o, r);
    let mut spec = String::new();
    spec_sections(&mut spec, r);
    let _ = writeln!(o, "## Specification\n");
    folded(
        &mut o,
        "The host, the guests and the isolation, in full",
        |o| {
            o.push_str(spec.strip_prefix("## Specification\n\n").unwrap_or(&spec));
        },
    );
    skipped(&mut o, r);
    definitions(&mut o, r);
    reproduce(&mut o, r);
    o
}

fn cpu_model(r: &RunRecord) -> &str {
    r.host_value("cpu", "model name").unwrap_or("unknown CPU")
}

/// `body` folded under `summary` (GitHub and browsers render `<details>`;
/// the blank lines keep the Markdown inside it Markdown).
fn folded(o: &mut String, summary: &str, body: impl FnOnce(&mut String)) {
    let _ = writeln!(o, "<details><summary>{summary}</summary>\n");
    body(o);
    let _ = writeln!(o, "</details>\n");
}

/// A value in the row's unit, as ns when the row converts.
/// A batch mean (a fraction of a tick matters at this scale): ns with one
/// decimal below 1 µs.
fn batch_in_ns_or_unit(m: &Measurement, v: f64) -> String {
    match m.ns(v) {
        Some(ns) => fmt_ns_precise(ns),
        None => format!("{v:.1} {}", m.unit.symbol()),
    }
}

/// ns with one decimal below 1 µs, else as [`fmt_ns`].
fn fmt_ns_precise(ns: f64) -> String {
    if ns < 1_000.0 {
        format!("{ns:.1} ns")
    } else {
        fmt_ns(ns)
    }
}

fn in_ns_or_unit(m: &Measurement, v: f64) -> String {
    match m.ns(v) {
        Some(ns) => fmt_ns(ns),
        None => format!("{v:.0} {}", m.unit.symbol()),
    }
}

/// The per-row figures of `ids`, folded: images, so that report.html
/// carries each one inline like the headline's (report.md links the files).
fn row_figures(o: &mut String, plots: &PlotIndex, ids: &[&str]) {
    let mut figures = Vec::new();
    for id in ids {
        for (kind, file) in plots.for_measurement(id) {
            figures.push(format!("![{id} {kind}]({file})"));
        }
    }
    if !figures.is_empty() {
        folded(
            o,
            &format!("{} figures, one per row and kind", figures.len()),
            |o| {
                for f in &figures {
                    let _ = writeln!(o, "{f}\n");
                }
            },
        );
    }
}
