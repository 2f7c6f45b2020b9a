//! One section per suite: the VM-exit table with its exit events, and the shared-memory tables.

use super::*;

pub(super) fn vmexit_section(o: &mut String, r: &RunRecord, plots: &PlotIndex) {
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
    row_figures(o, plots, &ids);
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
pub(super) fn exit_event_table(o: &mut String, ms: &[&Measurement]) {
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

pub(super) fn shm_section(o: &mut String, r: &RunRecord, plots: &PlotIndex) {
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
        "Times in ns from TSC ticks (ticks where no frequency is known); GB/s is bytes over the p50 time minus the timer's own cost (the empty window, measured on each side); `batch` is the median over the run's batches of the mean per round trip of back-to-back round trips timed as a whole (no timestamp per round trip); `vs ref` is the row's time over the same for the physical reference (or, for a UC/WC arm, the same measurement over WB) measured in the same run: batch means where both rows have one, else those p50s; cold reads compare with a cold memcpy. docs/shm-round-trips.md defines the round trips and their references. A transfer faster than its reference is flagged, not shown as a bandwidth.\n"
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
            let vs_reference = r
                .results
                .reference_ratio(m)
                .map_or_else(|| "-".into(), |x| format!("{x:.2}×"));
            let batch = m
                .batch_mean
                .map_or_else(|| "-".into(), |b| batch_in_ns_or_unit(m, b));
            vec![
                m.id.local().to_string(),
                summary.n.to_string(),
                ns(summary.p50),
                ns(summary.p90),
                ns(summary.p99),
                ns(summary.p999),
                ns(summary.max),
                batch,
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
                    "batch",
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
    row_figures(
        o,
        plots,
        &[
            "shm.rtt.poll",
            "shm.ref.cacheline-rtt",
            "shm.rtt.doorbell",
            "shm.ref.eventfd-rtt",
        ],
    );
}
