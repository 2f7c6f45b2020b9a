//! The report's first screen: front matter, at a glance, the headline, warnings and checks.

use super::*;

/// The title, what kind of run it is, and when and where it ran.
pub(super) fn front_matter(o: &mut String, r: &RunRecord) {
    let _ = writeln!(
        o,
        "# vmbench report: {}\n",
        vmbench_results::suite_names(&r.suites, " + ")
    );
    if r.is_tcg() {
        let _ = writeln!(
            o,
            "> **{}** QEMU emulated the guest in software: there are no VM exits, every figure below is the cost of emulation on this host, and no `path` can be verified (`n/a (TCG)`).\n",
            RunRecord::TCG_RUN
        );
    } else if r.is_mixed() {
        let _ = writeln!(
            o,
            "> **Mixed accelerators — not every figure is a KVM measurement.** The {} suite ran under TCG (software emulation): its figures are the cost of emulation on this host, not VM exits. Only the guests listed under KVM below measured KVM.\n",
            vmbench_results::suite_names(&r.tcg_suites(), " and ")
        );
    }
    if !r.complete {
        let _ = writeln!(
            o,
            "> **INCOMPLETE run.** {} Every measurement completed before that is kept below.\n",
            r.incomplete_text()
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

/// What ran, and where (the full specification is further down).
pub(super) fn at_a_glance(o: &mut String, r: &RunRecord) {
    let _ = writeln!(o, "## Run\n");
    let mut rows = vec![
        vec![
            "suites".into(),
            vmbench_results::suite_names(&r.suites, ", "),
        ],
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
                    .map(|g| {
                        format!(
                            "{} ({})",
                            g.kind,
                            vmbench_results::suite_names(&g.suites, ", ")
                        )
                    })
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

/// The headline's rows: measurement, p50, p99 and path, in human units
/// (the report's table and `vmbench run`'s summary on the terminal).
pub fn headline_rows(r: &RunRecord) -> Vec<[String; 4]> {
    let mut rows = Vec::new();
    for row in Row::HEADLINE {
        if let Some(m) = find(r, &MeasurementId::new(Suite::Vmexit, row.id())) {
            rows.push([
                m.id.to_string(),
                in_ns_or_unit(m, m.summary.p50 as f64),
                in_ns_or_unit(m, m.summary.p99 as f64),
                m.path_label().to_string(),
            ]);
        }
    }
    // The polling round trip both ways: one round trip alone (the timer's
    // own cost taken out), and the batch mean beside the bare cache-line
    // round trip it is compared with.
    if let Some(m) = find_shm(r, "rtt.poll") {
        let net = m.overhead_subtracted.as_ref().unwrap_or(&m.summary);
        let label = if m.overhead_subtracted.is_some() {
            " · one, timer cost out"
        } else {
            ""
        };
        rows.push([
            format!("{}{label}", m.id),
            in_ns_or_unit(m, net.p50 as f64),
            in_ns_or_unit(m, net.p99 as f64),
            "-".into(),
        ]);
        if let Some(batch) = m.batch_mean {
            let versus = m
                .reference
                .as_ref()
                .and_then(|id| find(r, id))
                .filter(|reference| reference.batch_mean.is_some())
                .and_then(|reference| {
                    let (mine, theirs) = m.compared_ns(reference)?;
                    (theirs > 0.0).then(|| {
                        format!(
                            " = {:.2}× {} {}",
                            mine / theirs,
                            reference.id,
                            fmt_ns_precise(theirs)
                        )
                    })
                })
                .unwrap_or_default();
            rows.push([
                format!("{} · batch mean", m.id),
                format!("{}{versus}", batch_in_ns_or_unit(m, batch)),
                "-".into(),
                "-".into(),
            ]);
        }
    }
    if let Some(m) = find_shm(r, "rtt.doorbell") {
        rows.push([
            m.id.to_string(),
            in_ns_or_unit(m, m.summary.p50 as f64),
            in_ns_or_unit(m, m.summary.p99 as f64),
            "-".into(),
        ]);
    }
    // Pure copies only: the end-to-end windows hold the guest's CLFLUSH and
    // SHA-256, which are not transfer time.
    for local in ["h2g.4k-32bpp.host-write", "h2g.4k-32bpp.guest-read-warm"] {
        if let Some(m) = find_shm(r, local) {
            let rate = if m.beats_its_reference() {
                format!(" · {NOT_A_BANDWIDTH}")
            } else {
                gbps_value(m).map_or_else(String::new, |g| format!(" · {g:.2} GB/s"))
            };
            rows.push([
                m.id.to_string(),
                format!("{}{rate}", in_ns_or_unit(m, m.summary.p50 as f64)),
                in_ns_or_unit(m, m.summary.p99 as f64),
                "-".into(),
            ]);
        }
    }
    rows
}

/// The numbers most readers came for.
pub(super) fn headline(o: &mut String, r: &RunRecord, plots: &PlotIndex) {
    let rows: Vec<Vec<String>> = headline_rows(r).into_iter().map(Vec::from).collect();
    // A ring whose RDTSC exits publishes batch means, not p50−ovh: its
    // headline percentiles carry two timestamp exits each.
    let rdtsc_exits: Vec<&str> = Row::HEADLINE
        .iter()
        .filter_map(|row| find(r, &MeasurementId::new(Suite::Vmexit, row.id())))
        .filter(|m| m.overhead_p50.is_some() && m.overhead_subtracted.is_none())
        .map(|m| m.id.local())
        .collect();
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
            "Times from TSC ticks (the suite tables below give the ticks); `path` says whether KVM's tracepoints confirm the path each VM exit claims.{fallback}{rdtsc} A transfer's GB/s is over its p50 without the timer's own cost.\n"
        );
        table(o, &["measurement", "p50", "p99", "path"], &rows);
    }
    // Both figures in one paragraph: side by side in report.html.
    let figures: Vec<String> = [
        ("vmexit", "VM-exit round trips by percentile"),
        ("shm-rtt", "shared-memory round trips by percentile"),
    ]
    .into_iter()
    .filter_map(|(group, alt)| plots.group(group).map(|f| format!("![{alt}]({f})")))
    .collect();
    if !figures.is_empty() {
        let _ = writeln!(o, "{}\n", figures.join(" "));
    }
}

/// One line of the condensed warnings.
struct Line {
    severity: Severity,
    kind: Option<WarningKind>,
    text: String,
}

/// Whether the TCG banner has said what a warning of `k` says.
fn banner_said(r: &RunRecord, k: WarningKind) -> bool {
    k == WarningKind::Tcg && r.is_tcg()
}

/// The run-wide warnings by kind, each said once.
fn run_wide_kinds(r: &RunRecord) -> Vec<(WarningKind, Vec<&Warning>)> {
    let mut run_kinds: Vec<(WarningKind, Vec<&Warning>)> = Vec::new();
    for w in r
        .results
        .warnings
        .iter()
        .filter(|w| !banner_said(r, w.kind))
    {
        match run_kinds.iter_mut().find(|(k, _)| *k == w.kind) {
            Some((_, ws)) if !ws.iter().any(|x| x.to_string() == w.to_string()) => ws.push(w),
            Some(_) => {}
            None => run_kinds.push((w.kind, vec![w])),
        }
    }
    run_kinds
}

/// The measurements' warnings by kind: each measurement once, with its
/// first warning of the kind.
fn measurement_kinds(r: &RunRecord) -> Vec<(WarningKind, Vec<(&str, &Warning)>)> {
    let mut kinds: Vec<(WarningKind, Vec<(&str, &Warning)>)> = Vec::new();
    for m in &r.results.measurements {
        for w in m.warnings.iter().filter(|w| !banner_said(r, w.kind)) {
            match kinds.iter_mut().find(|(k, _)| *k == w.kind) {
                Some((_, rows)) => {
                    if !rows.iter().any(|(id, _)| *id == m.id.as_str()) {
                        rows.push((m.id.as_str(), w));
                    }
                }
                None => kinds.push((w.kind, vec![(m.id.as_str(), w)])),
            }
        }
    }
    kinds
}

/// At most this many warning lines on the first screens; the rest, and
/// every warning in full, are folded below them.
const WARNING_LINES: usize = 8;

/// The warnings condensed: one line per kind, cautions before notes (a
/// stopped run first of all), each with how many measurements or repeats
/// it concerns and one example; every warning in full, and which
/// measurements each kind is about, folded below. Under TCG the banner
/// has already said what TCG means.
pub(super) fn warnings(o: &mut String, r: &RunRecord) {
    let mut lines: Vec<Line> = r
        .incomplete
        .iter()
        .map(|i| Line {
            severity: Severity::Caution,
            kind: None,
            text: format!("**stopped early**: {i}"),
        })
        .collect();
    let run_kinds = run_wide_kinds(r);
    let kinds = measurement_kinds(r);
    for (kind, ws) in &run_kinds {
        let text = match ws.as_slice() {
            [one] => one.to_string(),
            [first, rest @ ..] => format!(
                "{}: {} (and {} more like it, in full below)",
                kind.label(),
                first,
                rest.len()
            ),
            [] => continue,
        };
        lines.push(Line {
            severity: kind.severity(),
            kind: Some(*kind),
            text,
        });
    }
    for (kind, rows) in &kinds {
        let (id, example) = rows[0];
        let text = if rows.len() == 1 {
            format!("{id}: {example}")
        } else {
            format!(
                "{} ({} measurements), e.g. {id}: {example}",
                kind.label(),
                rows.len()
            )
        };
        lines.push(Line {
            severity: kind.severity(),
            kind: Some(*kind),
            text,
        });
    }
    if lines.is_empty() {
        return;
    }
    // Stable: within a severity, the order the run found them in.
    lines.sort_by_key(|l| l.severity);
    let _ = writeln!(o, "## Warnings\n");
    let shown = if lines.len() > WARNING_LINES {
        WARNING_LINES - 1
    } else {
        lines.len()
    };
    for l in &lines[..shown] {
        let tag = match l.severity {
            Severity::Caution => "caution",
            Severity::Note => "note",
        };
        let _ = writeln!(o, "- {tag}: {}", l.text);
    }
    if shown < lines.len() {
        let rest: Vec<&str> = lines[shown..]
            .iter()
            .filter_map(|l| l.kind.map(WarningKind::label))
            .collect();
        let _ = writeln!(
            o,
            "- {} more kinds, below: {}",
            lines.len() - shown,
            rest.join("; ")
        );
    }
    o.push('\n');
    folded(
        o,
        "Every warning in full, and the measurements each is about",
        |o| {
            let mut rows: Vec<Vec<String>> = Vec::new();
            for (kind, ws) in &run_kinds {
                for w in ws {
                    rows.push(vec![
                        kind.label().to_string(),
                        "the run".into(),
                        w.to_string(),
                    ]);
                }
            }
            for (kind, ms) in &kinds {
                let ids: Vec<&str> = ms.iter().map(|(id, _)| *id).collect();
                rows.push(vec![
                    kind.label().to_string(),
                    ids.join(", "),
                    ms[0].1.to_string(),
                ]);
            }
            table(
                o,
                &["warning", "about", "what it says (first of them)"],
                &rows,
            );
        },
    );
}

pub(super) fn checks(o: &mut String, r: &RunRecord) {
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
