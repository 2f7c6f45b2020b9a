//! Run-to-run variation, skipped rows, definitions and how to reproduce the run.

use super::*;

/// Every row's repeats: their p50s, the median with a 95% interval, the spread.
pub(super) fn repeats_section(o: &mut String, r: &RunRecord) {
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

pub(super) fn skipped(o: &mut String, r: &RunRecord) {
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
pub(super) fn definitions(o: &mut String, r: &RunRecord) {
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

pub(super) fn reproduce(o: &mut String, r: &RunRecord) {
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
pub(super) fn generic_id(id: &MeasurementId) -> String {
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
