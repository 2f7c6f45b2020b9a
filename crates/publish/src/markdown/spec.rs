//! The full specification: host, guests and their QEMU, isolation, residual noise, suite context.

use super::*;

/// A guest's specification and the QEMU that ran it.
pub(super) fn guest_section(
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

pub(super) fn spec_sections(o: &mut String, r: &RunRecord) {
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
                vmbench_results::suite_names(&g.suites, " and "),
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
pub(super) fn residual_noise(o: &mut String, r: &RunRecord) {
    let Some(first) = r.residual_noise.first() else {
        return;
    };
    let _ = writeln!(o, "#### Residual noise on the benchmark CPUs\n");
    let _ = writeln!(
        o,
        "A thread pinned to each benchmark CPU read the monotonic clock back to back for {} ms; every gap over {} between two reads is time the CPU spent elsewhere (`µs/s`: the sum of those gaps per second of the time the detector ran, at most 1,000,000, as `rtla osnoise` counts). Causes: what the kernel counted on that CPU meanwhile (/proc/interrupts, /proc/softirqs) and how often another thread preempted the detector; gaps beyond every counted event (`unexplained`) are the hypervisor's when this host is itself a VM, or SMIs on bare metal.\n",
        first.window_ms,
        if first.threshold_ns % 1000 == 0 {
            format!("{} µs", first.threshold_ns / 1000)
        } else {
            format!("{} ns", first.threshold_ns)
        }
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
                if n.unexplained > 0 {
                    format!("{} ({} unexplained)", n.interruptions, n.unexplained)
                } else {
                    n.interruptions.to_string()
                },
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
pub(super) fn suite_context(o: &mut String, r: &RunRecord) {
    if r.suite_context.is_empty() {
        return;
    }
    let _ = writeln!(o, "#### The host during each suite\n");
    let load = |l: &[f64; 3]| format!("{:.2} {:.2} {:.2}", l[0], l[1], l[2]);
    // Columns for what the host reports at all (a VM has neither).
    let with_freq = r.suite_context.iter().any(|c| !c.frequency.is_empty());
    let with_temp = r.suite_context.iter().any(|c| c.temperature.is_some());
    let rows: Vec<Vec<String>> = r
        .suite_context
        .iter()
        .map(|c| {
            let mut row = vec![
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
            ];
            if with_freq {
                row.push(
                    c.frequency
                        .iter()
                        .map(|f| {
                            format!(
                                "cpu{} {} → {}",
                                f.cpu,
                                f.before_khz / 1000,
                                f.after_khz / 1000
                            )
                        })
                        .collect::<Vec<_>>()
                        .join(", "),
                );
            }
            if with_temp {
                row.push(c.temperature.as_ref().map_or(String::new(), |t| {
                    format!(
                        "{} {:.1} → {:.1}",
                        t.zone,
                        t.before_millicelsius as f64 / 1000.0,
                        t.after_millicelsius as f64 / 1000.0
                    )
                }));
            }
            row
        })
        .collect();
    let mut headers = vec![
        "suite",
        "load average",
        "runnable threads",
        "thermal throttling",
    ];
    if with_freq {
        headers.push("benchmark CPU clock (MHz)");
    }
    if with_temp {
        headers.push("hottest thermal zone (°C)");
    }
    table(o, &headers, &rows);
}
