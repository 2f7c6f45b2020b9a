//! `report.md`: a first screen a reader takes in at a glance, then the full
//! specification, one table per suite, plots, and how to reproduce.
//! Deterministic: the same record gives the same bytes.

use crate::plots::PlotIndex;
use std::fmt::Write;
use vmbench_proto::vmexit::Row;
use vmbench_results::{
    ExitEvents, Measurement, MeasurementId, QemuRecord, RunRecord, Suite, Unit, Verification,
    Warning, WarningKind,
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

fn table(out: &mut String, header: &[&str], rows: &[Vec<String>]) {
    let _ = writeln!(out, "| {} |", header.join(" | "));
    let _ = writeln!(out, "|{}|", vec!["---"; header.len()].join("|"));
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
        return "⚠ faster than its reference: not a bandwidth".into();
    }
    m.p50_bytes_per_sec()
        .map_or_else(|| "-".into(), |b| format!("{:.2}", b / 1e9))
}

fn verdict(m: &Measurement) -> String {
    match &m.verification {
        Verification::Verified { evidence } => format!("verified: {evidence}"),
        Verification::Failed { evidence } => format!("FAILED: {evidence}"),
        Verification::Unverified { reason } => format!("unverified: {reason}"),
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
    at_a_glance(&mut o, r);
    headline(&mut o, r, plots);
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

/// The title, what kind of run it is, and when and where it ran.
fn front_matter(o: &mut String, r: &RunRecord) {
    let _ = writeln!(o, "# vmbench report: {}\n", r.suites.join(" + "));
    if r.is_tcg() {
        let _ = writeln!(
            o,
            "> **{}** QEMU emulated the guest in software: there are no VM exits, and every figure below is the cost of emulation on this host.\n",
            RunRecord::TCG_RUN
        );
    } else if r.is_mixed() {
        let _ = writeln!(
            o,
            "> **Mixed accelerators — not every figure is a KVM measurement.** The {} suite ran under TCG (software emulation): its figures are the cost of emulation on this host, not VM exits. Only the guests listed under KVM below measured KVM.\n",
            r.tcg_suites().join(" and ")
        );
    }
    if !r.complete {
        let _ = writeln!(
            o,
            "> **INCOMPLETE run.** {} Every measurement completed before that is kept below.\n",
            r.incomplete.join(" ")
        );
    }
    let _ = writeln!(
        o,
        "Run with vmbench {} on {} (started {}).\n",
        r.vmbench_version,
        cell(cpu_model(r)),
        r.started_utc
    );
}

/// The first screen: what ran, and where.
fn at_a_glance(o: &mut String, r: &RunRecord) {
    let mut rows = vec![
        vec!["suites".into(), r.suites.join(", ")],
        vec![
            "accelerator".into(),
            if r.is_tcg() {
                "tcg (software emulation)".into()
            } else {
                r.accel_label()
            },
        ],
        vec![
            "guest".into(),
            if r.guests.len() > 1 {
                r.guests
                    .iter()
                    .map(|g| format!("{} ({})", g.kind, g.suites.join(", ")))
                    .collect::<Vec<_>>()
                    .join(", ")
            } else {
                r.guest_flavour.clone()
            },
        ],
        vec!["host CPU".into(), cpu_model(r).to_string()],
    ];
    if let Some(k) = r.host_value("kernel", "release") {
        rows.push(vec!["host kernel".into(), k.to_string()]);
    }
    if let Some(q) = &r.qemu {
        rows.push(vec![
            "QEMU".into(),
            q.version.clone().unwrap_or_else(|| q.path.clone()),
        ]);
    }
    rows.push(vec![
        "complete".into(),
        if r.complete {
            "yes".into()
        } else {
            "NO".into()
        },
    ]);
    table(o, &["", ""], &rows);
}

/// `body` folded under `summary` (GitHub and browsers render `<details>`;
/// the blank lines keep the Markdown inside it Markdown).
fn folded(o: &mut String, summary: &str, body: impl FnOnce(&mut String)) {
    let _ = writeln!(o, "<details><summary>{summary}</summary>\n");
    body(o);
    let _ = writeln!(o, "</details>\n");
}

/// The numbers most readers came for.
fn headline(o: &mut String, r: &RunRecord, plots: &PlotIndex) {
    let mut rows = Vec::new();
    // A ring whose RDTSC exits publishes batch means, not p50−ovh: its
    // headline percentiles carry two timestamp exits each.
    let mut rdtsc_exits = Vec::new();
    for row in Row::HEADLINE {
        if let Some(m) = find(r, &MeasurementId::new(Suite::Vmexit, row.id())) {
            if m.overhead_p50.is_some() && m.overhead_subtracted.is_none() {
                rdtsc_exits.push(m.id.local());
            }
            rows.push(vec![
                m.id.to_string(),
                ticks_ns(m, m.summary.p50),
                ticks_ns(m, m.summary.p99),
                m.path_label().to_string(),
            ]);
        }
    }
    for local in ["rtt.poll", "rtt.doorbell"] {
        if let Some(m) = find_shm(r, local) {
            rows.push(vec![
                m.id.to_string(),
                ticks_ns(m, m.summary.p50),
                ticks_ns(m, m.summary.p99),
                "n/a".into(),
            ]);
        }
    }
    // Pure copies only: the end-to-end windows hold the guest's CLFLUSH and
    // SHA-256, which are not transfer time.
    for local in ["h2g.4k-32bpp.host-write", "h2g.4k-32bpp.guest-read-warm"] {
        if let Some(m) = find_shm(r, local) {
            rows.push(vec![
                m.id.to_string(),
                format!("{} ({} GB/s)", ticks_ns(m, m.summary.p50), gbps(m)),
                ticks_ns(m, m.summary.p99),
                "n/a".into(),
            ]);
        }
    }
    if !rows.is_empty() {
        let _ = writeln!(o, "## Headline\n");
        // Under KVM, a VM-exit row without tracepoint counts was judged by
        // the fallback: the headline must not claim the tracepoints did.
        let untraced = r
            .results
            .measurements
            .iter()
            .filter(|m| {
                m.id.suite() == Some(Suite::Vmexit)
                    && m.exit_events.is_none()
                    && m.verification != Verification::NotApplicable
            })
            .count();
        let fallback = if r.accel == Some(vmbench_results::Accel::Kvm) && untraced > 0 {
            format!(
                " KVM's tracepoints could not be counted for {untraced} VM-exit row(s): their `path` comes from the fallback, QMP query-stats, which counts exits but not which exit each was, so it verifies only that a baseline does not exit (`verified (query-stats)`); each row's verdict says why the tracepoints were not counted."
            )
        } else {
            String::new()
        };
        let rdtsc = if rdtsc_exits.is_empty() {
            String::new()
        } else {
            format!(
                " RDTSC exits in the ring of {}: their p50 and p99 include two timestamp exits per sample, and their figure is the batch mean in the VM-exit table.",
                rdtsc_exits.join(", ")
            )
        };
        let _ = writeln!(
            o,
            "Times are TSC ticks (reference cycles) with ns in brackets; `path` says whether KVM's tracepoints confirm the path each VM exit claims.{fallback}{rdtsc} Transfers show GB/s over the p50 without the timer's own cost.\n"
        );
        table(o, &["measurement", "p50", "p99", "path"], &rows);
    }
    for (group, alt) in [
        ("vmexit", "VM-exit round trips by percentile"),
        ("shm-rtt", "shared-memory round trips by percentile"),
    ] {
        if let Some(f) = plots.group(group) {
            let _ = writeln!(o, "![{alt}]({f})\n");
        }
    }
}

/// Run-wide warnings, then one line per kind of per-measurement warning
/// (how many rows, one example); every row's own warnings folded below.
fn warnings(o: &mut String, r: &RunRecord) {
    let mut kinds: Vec<(WarningKind, Vec<(&str, &Warning)>)> = Vec::new();
    for m in &r.results.measurements {
        for w in &m.warnings {
            match kinds.iter_mut().find(|(k, _)| *k == w.kind) {
                Some((_, rows)) => rows.push((m.id.as_str(), w)),
                None => kinds.push((w.kind, vec![(m.id.as_str(), w)])),
            }
        }
    }
    if r.results.warnings.is_empty() && r.incomplete.is_empty() && kinds.is_empty() {
        return;
    }
    let _ = writeln!(o, "## Warnings\n");
    let mut seen = std::collections::BTreeSet::new();
    let run_wide = r.results.warnings.iter().map(Warning::to_string);
    for w in r.incomplete.iter().cloned().chain(run_wide) {
        if seen.insert(w.clone()) {
            let _ = writeln!(o, "- {w}");
        }
    }
    for (_, rows) in &kinds {
        let (id, example) = rows[0];
        if rows.len() == 1 {
            let _ = writeln!(o, "- {id}: {example}");
        } else {
            let _ = writeln!(o, "- {} measurements, e.g. {id}: {example}", rows.len());
        }
    }
    o.push('\n');
    if kinds.iter().any(|(_, rows)| rows.len() > 1) {
        folded(o, "Which measurements each warning is about", |o| {
            let rows: Vec<Vec<String>> = kinds
                .iter()
                .filter(|(_, rows)| rows.len() > 1)
                .map(|(kind, rows)| {
                    let mut ids: Vec<&str> = Vec::new();
                    for (id, _) in rows {
                        if !ids.contains(id) {
                            ids.push(id);
                        }
                    }
                    vec![kind.label().to_string(), ids.join(", ")]
                })
                .collect();
            table(o, &["warning", "measurements"], &rows);
        });
    }
}

fn checks(o: &mut String, r: &RunRecord) {
    if r.results.checks.is_empty() {
        return;
    }
    let _ = writeln!(o, "## Checks\n");
    let rows: Vec<Vec<String>> = r
        .results
        .checks
        .iter()
        .map(|c| {
            vec![
                if c.passed { "PASS" } else { "FAIL" }.into(),
                c.id.clone(),
                c.statement.clone(),
                c.observed.clone(),
            ]
        })
        .collect();
    table(o, &["", "check", "statement", "observed"], &rows);
}

/// A value in the row's unit, as ns when the row converts.
fn in_ns_or_unit(m: &Measurement, v: f64) -> String {
    match m.ns(v) {
        Some(ns) => fmt_ns(ns),
        None => format!("{v:.0} {}", m.unit.symbol()),
    }
}

/// Every row's repeats: their p50s, the median with a 95% interval, the spread.
fn repeats_section(o: &mut String, r: &RunRecord) {
    let rows: Vec<Vec<String>> = r
        .results
        .measurements
        .iter()
        .filter_map(|m| m.repeats.as_ref().map(|rep| (m, rep)))
        .map(|(m, rep)| {
            let p50s = rep
                .summaries
                .iter()
                .map(|s| in_ns_or_unit(m, s.p50 as f64))
                .collect::<Vec<_>>()
                .join(", ");
            vec![
                m.id.to_string(),
                rep.summaries.len().to_string(),
                p50s,
                format!(
                    "{} [{}, {}]",
                    in_ns_or_unit(m, rep.median_p50),
                    in_ns_or_unit(m, rep.ci95[0]),
                    in_ns_or_unit(m, rep.ci95[1])
                ),
                format!(
                    "{:.1}%{}",
                    rep.spread_pct,
                    if rep.spread_pct > vmbench_results::repeats::SPREAD_FLAG_PCT {
                        " ⚠"
                    } else {
                        ""
                    }
                ),
                rep.differing
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(", "),
            ]
        })
        .collect();
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(
        o,
        "## Run-to-run variation
"
    );
    let _ = writeln!(
        o,
        "Each repeat booted its guests afresh. Per row: each repeat's p50, the median of those p50s with a 95% interval of the typical repeat p50 (Student's t on the logs of the p50s, n − 1 degrees of freedom: wide with few repeats, because few repeats say little), and the spread, (largest − smallest p50) / median; ⚠ marks a spread above {}%, and the last column the repeats more than {}% from the median. The tables above show all repeats' samples pooled.\n",
        vmbench_results::repeats::SPREAD_FLAG_PCT,
        vmbench_results::repeats::SPREAD_FLAG_PCT
    );
    let flagged = rows.iter().filter(|r| r[4].ends_with('⚠')).count();
    folded(
        o,
        &format!(
            "{} rows, {flagged} with a spread above {}%",
            rows.len(),
            vmbench_results::repeats::SPREAD_FLAG_PCT
        ),
        |o| {
            table(
                o,
                &[
                    "measurement",
                    "repeats",
                    "p50 of each repeat",
                    "median p50 [95% CI]",
                    "spread",
                    "differ",
                ],
                &rows,
            );
        },
    );
}

fn skipped(o: &mut String, r: &RunRecord) {
    if r.results.skipped.is_empty() {
        return;
    }
    let _ = writeln!(o, "## Skipped\n");
    let rows: Vec<Vec<String>> = r
        .results
        .skipped
        .iter()
        .map(|s| vec![s.id.to_string(), s.reason.clone()])
        .collect();
    table(o, &["measurement", "why"], &rows);
}

/// What sits inside each timed window, once per kind of measurement.
fn definitions(o: &mut String, r: &RunRecord) {
    let _ = writeln!(o, "## Definitions\n");
    let _ = writeln!(
        o,
        "What sits inside each timed window, as the code does it.\n"
    );
    let mut defs: Vec<Vec<String>> = Vec::new();
    let mut seen_defs = std::collections::BTreeSet::new();
    for m in &r.results.measurements {
        let key = generic_id(&m.id);
        if seen_defs.insert(key.clone()) {
            defs.push(vec![key, m.definition.clone()]);
        }
    }
    folded(o, &format!("{} definitions", defs.len()), |o| {
        table(o, &["measurement", "definition"], &defs);
    });
}

fn reproduce(o: &mut String, r: &RunRecord) {
    let _ = writeln!(o, "## Reproduce\n");
    match &r.build {
        Some(b) => {
            let _ = writeln!(
                o,
                "Built from vmbench {} at commit `{}`{}, compiled by {} (build it from that commit: `git checkout {}`, then `cargo build --release` or `nix build`).\n",
                b.version,
                b.commit,
                if b.dirty {
                    " **with uncommitted changes to tracked files** (the commit alone does not rebuild this binary)"
                } else {
                    ""
                },
                b.rustc,
                b.commit
            );
        }
        None => {
            let _ = writeln!(
                o,
                "vmbench {} (this record predates build identities: no commit recorded).\n",
                r.vmbench_version
            );
        }
    }
    let _ = writeln!(o, "{}", code_block("sh", &r.command));
    let _ = writeln!(
        o,
        "Raw data: [`results.json`](results.json) (every figure above is rendered from it; `vmbench report render DIR` re-renders), CSVs per suite. Integrity: [`MANIFEST.sha256`](MANIFEST.sha256) (`sha256sum -c MANIFEST.sha256`), and `report.sig` when signed (see reports/README.md)."
    );
}

/// Ids that differ only by frame or size share a definition.
fn generic_id(id: &MeasurementId) -> String {
    if id.suite() != Some(Suite::Shm) {
        return id.to_string();
    }
    match id.local_parts().as_slice() {
        [dir @ ("h2g" | "g2h"), _, kind] => format!("shm.{dir}.FRAME.{kind}"),
        [arm, dir @ ("h2g" | "g2h"), _, kind] => format!("shm.{arm}.{dir}.FRAME.{kind}"),
        ["sweep", _, kind] => format!("shm.sweep.SIZE.{kind}"),
        ["ref", kind @ ("memcpy" | "memcpy-cold"), _] => format!("shm.ref.{kind}.SIZE"),
        _ => id.to_string(),
    }
}

/// A guest's specification and the QEMU that ran it.
fn guest_section(
    o: &mut String,
    title: &str,
    spec: &vmbench_proto::spec::GuestSpec,
    qemu: Option<&QemuRecord>,
) {
    // Every field, as results.json names it: rendered from its JSON form.
    if let Ok(serde_json::Value::Object(g)) = serde_json::to_value(spec) {
        let _ = writeln!(o, "### {title}\n");
        let rows: Vec<Vec<String>> = g
            .iter()
            .map(|(k, v)| {
                let text = match v {
                    serde_json::Value::String(s) => s.clone(),
                    serde_json::Value::Null => "—".into(),
                    serde_json::Value::Array(a) => a
                        .iter()
                        .map(|x| x.as_str().map_or_else(|| x.to_string(), String::from))
                        .collect::<Vec<_>>()
                        .join(" "),
                    other => other.to_string(),
                };
                vec![k.clone(), text]
            })
            .collect();
        table(o, &["item", "value"], &rows);
    }
    if let Some(q) = qemu {
        let _ = writeln!(o, "QEMU:\n");
        let mut rows = vec![vec!["binary".into(), q.path.clone()]];
        if let Some(v) = &q.version {
            rows.push(vec!["version".into(), v.clone()]);
        }
        if let Some(s) = &q.store_path {
            rows.push(vec!["Nix store path".into(), s.clone()]);
        }
        table(o, &["item", "value"], &rows);
        let _ = writeln!(
            o,
            "Full command line:\n\n{}",
            code_block("sh", &q.command_line)
        );
    }
}

fn spec_sections(o: &mut String, r: &RunRecord) {
    let _ = writeln!(o, "## Specification\n");
    let _ = writeln!(o, "### Host\n");
    let rows: Vec<Vec<String>> = r
        .host_rows
        .iter()
        .map(|x| vec![x.section.clone(), x.key.clone(), x.value.clone()])
        .collect();
    table(o, &["section", "item", "value"], &rows);
    if r.guests.is_empty() {
        // A record from before `guests`: one guest, one QEMU.
        if let Some(g) = &r.guest {
            guest_section(o, "Guest", g, r.qemu.as_ref());
        }
    } else {
        for g in &r.guests {
            let title = format!(
                "Guest: {} ({}, {})",
                g.kind,
                g.suites.join(" and "),
                g.accel.name()
            );
            guest_section(o, &title, &g.spec, g.qemu.as_ref());
        }
    }
    let _ = writeln!(o, "### Isolation\n");
    if let Some(p) = &r.pinning {
        let _ = writeln!(o, "Pinning: {p}\n");
    }
    if r.isolation.is_empty() {
        let _ = writeln!(o, "No isolation audit in this run.\n");
    } else {
        let rows: Vec<Vec<String>> = r
            .isolation
            .iter()
            .map(|k| {
                vec![
                    k.knob.name().to_string(),
                    k.kind.label().to_string(),
                    k.wanted.clone(),
                    k.found.clone(),
                    k.verdict.label().to_string(),
                    k.changed_to.clone().unwrap_or_else(|| "—".into()),
                    match &k.restored {
                        vmbench_results::RestoreState::Unchanged => "—".into(),
                        state => state.label(),
                    },
                ]
            })
            .collect();
        table(
            o,
            &[
                "knob",
                "kind",
                "wanted",
                "found",
                "verdict",
                "changed to",
                "restored",
            ],
            &rows,
        );
    }
    for n in &r.isolation_notes {
        let _ = writeln!(o, "- {n}");
    }
    if !r.isolation_notes.is_empty() {
        o.push('\n');
    }
    residual_noise(o, r);
    suite_context(o, r);
}

/// The noise the isolation left on each benchmark CPU, before and after.
fn residual_noise(o: &mut String, r: &RunRecord) {
    let Some(first) = r.residual_noise.first() else {
        return;
    };
    let _ = writeln!(o, "#### Residual noise on the benchmark CPUs\n");
    let _ = writeln!(
        o,
        "A thread pinned to each benchmark CPU read the monotonic clock back to back for {} ms; every gap over {} ns between two reads is time the CPU spent elsewhere (`µs/s`: the sum of those gaps per second). Causes: what the kernel counted on that CPU meanwhile (/proc/interrupts, /proc/softirqs) and how often another thread preempted the detector; gaps no counter explains are the hypervisor's when this host is itself a VM, or SMIs on bare metal.\n",
        first.window_ms, first.threshold_ns
    );
    let rows: Vec<Vec<String>> = r
        .residual_noise
        .iter()
        .map(|n| {
            vec![
                n.phase.clone(),
                format!("cpu{}", n.cpu),
                format!("{:.1}", n.noise_us_per_s),
                format!("{:.1}", n.max_us),
                n.interruptions.to_string(),
                n.causes
                    .iter()
                    .take(8)
                    .map(|c| format!("{} {} ×{}", c.kind, c.name, c.count))
                    .collect::<Vec<_>>()
                    .join("; "),
            ]
        })
        .collect();
    table(
        o,
        &[
            "when",
            "CPU",
            "noise µs/s",
            "longest µs",
            "interruptions",
            "causes",
        ],
        &rows,
    );
}

/// Load, runnable threads and thermal throttling around each suite.
fn suite_context(o: &mut String, r: &RunRecord) {
    if r.suite_context.is_empty() {
        return;
    }
    let _ = writeln!(o, "#### The host during each suite\n");
    let load = |l: &[f64; 3]| format!("{:.2} {:.2} {:.2}", l[0], l[1], l[2]);
    let rows: Vec<Vec<String>> = r
        .suite_context
        .iter()
        .map(|c| {
            vec![
                c.suite.clone(),
                format!("{} → {}", load(&c.load_before), load(&c.load_after)),
                format!("{} → {}", c.runnable_before, c.runnable_after),
                if c.throttled.is_empty() {
                    "none".into()
                } else {
                    c.throttled
                        .iter()
                        .map(|t| format!("{} +{}", t.counter, t.delta))
                        .collect::<Vec<_>>()
                        .join(", ")
                },
            ]
        })
        .collect();
    table(
        o,
        &[
            "suite",
            "load average",
            "runnable threads",
            "thermal throttling",
        ],
        &rows,
    );
}

fn plot_links(o: &mut String, plots: &PlotIndex, ids: &[&str]) {
    let mut lines = Vec::new();
    for id in ids {
        for (kind, file) in plots.for_measurement(id) {
            lines.push(format!("[{id} {kind}]({file})"));
        }
    }
    if !lines.is_empty() {
        let _ = writeln!(o, "Plots: {}\n", lines.join(" · "));
    }
}

fn vmexit_section(o: &mut String, r: &RunRecord, plots: &PlotIndex) {
    let ms: Vec<&Measurement> = r
        .results
        .measurements
        .iter()
        .filter(|m| m.id.suite() == Some(Suite::Vmexit))
        .collect();
    if ms.is_empty() {
        return;
    }
    let _ = writeln!(o, "## VM-exit suite\n");
    let _ = writeln!(
        o,
        "TSC ticks per round trip (ns in brackets for p50). `p50−ovh`: p50 of the samples minus the timer-overhead baseline's p50. `batch`: mean over a back-to-back loop timed as a whole. Where a ring's RDTSC exits, `p50−ovh` is not published and the batch is the row's figure (docs/vmexit-rows.md).\n"
    );
    let rows: Vec<Vec<String>> = ms
        .iter()
        .map(|m| {
            let summary = &m.summary;
            vec![
                m.id.local().to_string(),
                summary.n.to_string(),
                summary.min.to_string(),
                ticks_ns(m, summary.p50),
                summary.p90.to_string(),
                summary.p99.to_string(),
                summary.p999.to_string(),
                summary.max.to_string(),
                m.overhead_subtracted
                    .as_ref()
                    .map_or_else(|| "-".into(), |x| x.p50.to_string()),
                m.batch_mean
                    .map_or_else(|| "-".into(), |b| format!("{b:.1}")),
                m.tier.clone().unwrap_or_default(),
                verdict(m),
            ]
        })
        .collect();
    table(
        o,
        &[
            "row",
            "N",
            "min",
            "p50",
            "p90",
            "p99",
            "p99.9",
            "max",
            "p50−ovh",
            "batch",
            "tier",
            "path",
        ],
        &rows,
    );
    let ids: Vec<&str> = ms.iter().map(|m| m.id.as_str()).collect();
    plot_links(o, plots, &ids);
    if let Some(f) = plots.group("vmexit-io") {
        let _ = writeln!(
            o,
            "![MMIO and port I/O to QEMU and through an ioeventfd, by percentile]({f})\n"
        );
    }
    exit_event_table(o, &ms);
}

/// KVM's events per execution of each row, as `perf kvm stat` shows exit
/// reasons: the proof of each path, and everything else that happened.
fn exit_event_table(o: &mut String, ms: &[&Measurement]) {
    let traced: Vec<(&Measurement, &ExitEvents)> = ms
        .iter()
        .filter_map(|m| Some((*m, m.exit_events.as_ref()?)))
        .collect();
    let Some((_, first)) = traced.first() else {
        return;
    };
    let proofs: Vec<&str> = traced
        .iter()
        .filter_map(|(_, e)| e.proof.as_deref())
        .collect();
    // One column per event some row saw (proofs have their own column);
    // an event that is zero in every row says nothing.
    let mut columns: Vec<&str> = Vec::new();
    for (_, e) in &traced {
        for (name, count) in &e.counts {
            if *count > 0 && !proofs.contains(&name.as_str()) && !columns.contains(&name.as_str()) {
                columns.push(name);
            }
        }
    }
    columns.sort_unstable();
    let _ = writeln!(
        o,
        "KVM events per execution of each row ({}; executions = warm-up + samples + batch, or what the guest ran). `proof` is the event the row's path must show once per execution.\n",
        first.source
    );
    let mut head = vec!["row", "executions", "proof"];
    head.extend(
        columns
            .iter()
            .map(|c| c.strip_prefix("kvm_userspace_exit ").unwrap_or(c)),
    );
    let rows: Vec<Vec<String>> = traced
        .iter()
        .map(|(m, e)| {
            let proof = e.proof.as_ref().map_or_else(
                || "-".into(),
                |p| {
                    let v = e.per_execution.get(p).copied().unwrap_or(0.0);
                    format!("{p}: {v:.2}")
                },
            );
            let mut row = vec![m.id.local().to_string(), e.executions.to_string(), proof];
            row.extend(columns.iter().map(|c| {
                e.per_execution
                    .get(*c)
                    .map_or_else(|| "-".into(), |v| format!("{v:.2}"))
            }));
            row
        })
        .collect();
    table(o, &head, &rows);
}

fn shm_section(o: &mut String, r: &RunRecord, plots: &PlotIndex) {
    let ms: Vec<&Measurement> = r
        .results
        .measurements
        .iter()
        .filter(|m| m.id.suite() == Some(Suite::Shm))
        .collect();
    if ms.is_empty() {
        return;
    }
    let _ = writeln!(o, "## Shared-memory suite\n");
    let _ = writeln!(
        o,
        "Times in ns from TSC ticks (ticks where no frequency is known); GB/s is bytes over the p50 time minus the timer's own cost (the empty window, measured on each side); `vs ref` is that time over the same for the physical reference (or, for a UC/WC arm, the same measurement over WB) measured in the same run; cold reads compare with a cold memcpy. A transfer faster than its reference is flagged, not shown as a bandwidth.\n"
    );
    let rows: Vec<Vec<String>> = ms
        .iter()
        .map(|m| {
            let summary = &m.summary;
            // Without a TSC frequency a tick is not a ns: the cell says ticks.
            let ns = |v: u64| match m.unit {
                Unit::TscTicks => m.ns(v as f64).map_or_else(|| format!("{v} ticks"), fmt_ns),
                _ => v.to_string(),
            };
            let vs_reference = m
                .reference
                .as_ref()
                .and_then(|id| {
                    let (mine, theirs) = (m.p50_net_ns()?, find(r, id)?.p50_net_ns()?);
                    (theirs > 0.0).then(|| mine / theirs)
                })
                .map_or_else(|| "-".into(), |x| format!("{x:.2}×"));
            vec![
                m.id.local().to_string(),
                summary.n.to_string(),
                ns(summary.p50),
                ns(summary.p90),
                ns(summary.p99),
                ns(summary.p999),
                ns(summary.max),
                m.bytes.map_or_else(|| "-".into(), |b| b.to_string()),
                gbps(m),
                vs_reference,
            ]
        })
        .collect();
    folded(
        o,
        &format!("All {} shared-memory measurements", rows.len()),
        |o| {
            table(
                o,
                &[
                    "measurement",
                    "N",
                    "p50",
                    "p90",
                    "p99",
                    "p99.9",
                    "max",
                    "bytes",
                    "GB/s",
                    "vs ref",
                ],
                &rows,
            );
        },
    );
    let counters: Vec<Vec<String>> = ms
        .iter()
        .filter(|m| !m.counters.is_empty())
        .map(|m| {
            vec![
                m.id.local().to_string(),
                m.counters
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(", "),
            ]
        })
        .collect();
    if !counters.is_empty() {
        let _ = writeln!(
            o,
            "Counters per phase (totals over the phase's transfers; `host.`/`guest.` by side):\n"
        );
        table(o, &["phase", "counters"], &counters);
    }
    if let Some(f) = plots.bandwidth() {
        let _ = writeln!(o, "![shm bandwidth over transfer size]({f})\n");
    }
    plot_links(
        o,
        plots,
        &["shm.rtt.poll", "shm.rtt.doorbell", "shm.ref.cacheline-rtt"],
    );
}
