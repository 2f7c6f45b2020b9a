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
            "> **{}** QEMU emulated the guest in software: there are no VM exits, and every figure below is the cost of emulation on this host.\n",
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

/// The first screen: what ran, and where.
pub(super) fn at_a_glance(o: &mut String, r: &RunRecord) {
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

/// The numbers most readers came for.
pub(super) fn headline(o: &mut String, r: &RunRecord, plots: &PlotIndex) {
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
pub(super) fn warnings(o: &mut String, r: &RunRecord) {
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
    for w in r.incomplete.iter().map(ToString::to_string).chain(run_wide) {
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
