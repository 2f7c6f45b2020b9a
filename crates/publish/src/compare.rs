//! `vmbench compare DIR...`: several runs side by side, the spec
//! differences that matter above the numbers.

use crate::markdown::{cell, fmt_ns};
use crate::{PublishError, manifest, sign};
use std::fmt::Write;
use std::path::Path;
use vmbench_host::files::OutputDir;
use vmbench_results::{Measurement, RunRecord, Unit};

/// Version of `vmbench compare --json`'s shape ([`ComparisonOutput`]).
pub const COMPARE_SCHEMA_VERSION: u32 = 2;

/// `vmbench compare --json`: every row's difference from the baseline, and
/// each compared run's family summary.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct ComparisonOutput {
    /// [`COMPARE_SCHEMA_VERSION`] at the time of writing.
    pub schema_version: u32,
    /// The baseline run's label (the first directory).
    pub baseline: String,
    /// Every run compared, the baseline first.
    pub runs: Vec<RunLabel>,
    /// Differences within ±this percent are "same within the band".
    pub band_pct: f64,
    /// The family-wise error rate verdicts are held to.
    pub family_wise_error: f64,
    /// Per compared run: how many rows were judged, and what chance alone gives.
    pub families: Vec<crate::significance::Family>,
    /// Per row and compared run.
    pub differences: Vec<crate::significance::RowDifference>,
}

/// A run as a comparison names it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct RunLabel {
    /// Its label (its directory's name).
    pub label: String,
    /// What its signature or manifest check said.
    pub provenance: String,
}

impl ComparisonOutput {
    /// The comparison of `runs` (the first is the baseline).
    pub fn new(runs: &[Run], c: &crate::significance::Comparison) -> ComparisonOutput {
        ComparisonOutput {
            schema_version: COMPARE_SCHEMA_VERSION,
            baseline: runs.first().map(|r| r.label.clone()).unwrap_or_default(),
            runs: runs
                .iter()
                .map(|r| RunLabel {
                    label: r.label.clone(),
                    provenance: r.provenance.clone(),
                })
                .collect(),
            band_pct: c.band_pct,
            family_wise_error: c.family_wise_error,
            families: c.families.clone(),
            differences: c.differences.clone(),
        }
    }
}

/// One run to compare, with what its signature check said.
pub struct Run {
    /// How the comparison names the run (its directory, unless given).
    pub label: String,
    /// The run's record (`results.json`).
    pub record: RunRecord,
    /// "signed by …, verified", "unsigned", …
    pub provenance: String,
}

impl Run {
    /// Opens a run's output directory for comparison: its record, its
    /// directory name as the label, and its provenance. A signed run is
    /// verified when `allowed_signers` is given (and is an error when it does
    /// not verify); an unsigned run's files are checked against its manifest.
    pub fn open(dir: &Path, allowed_signers: Option<&Path>) -> Result<Run, PublishError> {
        crate::check_run_dir(dir)?;
        let provenance = provenance(dir, allowed_signers)?;
        let record = crate::load(dir)?;
        let label = dir.file_name().map_or_else(
            || dir.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        Ok(Run {
            label,
            record,
            provenance,
        })
    }
}

/// "signed by …, verified", "signed, NOT verified …", or for an unsigned run
/// whether its files still match its manifest.
fn provenance(dir: &Path, allowed_signers: Option<&Path>) -> Result<String, PublishError> {
    let signed = dir.join(manifest::SIGNATURE).is_file();
    Ok(match (signed, allowed_signers) {
        (true, Some(allowed)) => {
            let v = sign::verify(dir, allowed).map_err(|e| PublishError::SignatureOf {
                dir: dir.to_path_buf(),
                source: Box::new(e),
            })?;
            format!("signed by {}, verified", v.signer.principals)
        }
        (true, None) => "signed, NOT verified (no --allowed-signers)".into(),
        (false, _) => {
            // Unsigned: at least the files must match their manifest.
            let out = OutputDir::open(dir)?;
            match manifest::read(&out).ok().map(|m| manifest::check(&out, &m)) {
                Some(Ok(c)) if c.passed() => "unsigned; manifest matches".into(),
                Some(Ok(c)) => format!(
                    "unsigned; files CHANGED since the manifest: {:?}",
                    [c.changed, c.missing, c.unlisted].concat()
                ),
                Some(Err(e)) => format!("unsigned; manifest unreadable: {e}"),
                None => "unsigned; no manifest".into(),
            }
        }
    })
}

/// Writes the comparison's Markdown to `file`, its figures beside it in
/// `<name>-plots/` (linked from the Markdown), each through its directory's
/// descriptor.
pub fn write_markdown(
    runs: &[Run],
    diffs: &crate::significance::Comparison,
    file: &Path,
) -> Result<(), PublishError> {
    let (parent, name) = OutputDir::parent_of(file)?;
    let stem = name.strip_suffix(".md").unwrap_or(&name);
    let dir_name = format!("{stem}-plots");
    let figures = figures(runs)?;
    let mut links = Vec::new();
    if !figures.is_empty() {
        let dir = parent.subdir(&dir_name)?;
        for (group, svg) in &figures {
            let svg_name = format!("{group}.svg");
            dir.write(&svg_name, svg.as_bytes())?;
            links.push((*group, format!("{dir_name}/{svg_name}")));
        }
    }
    let text = markdown_with(runs, diffs, &links);
    parent.write(&name, text.as_bytes())?;
    Ok(())
}

/// The spec items that decide whether numbers are comparable: (shown as,
/// section, key) of `vmbench info`'s rows.
const SPEC_ITEMS: [(&str, &str, &str); 9] = [
    ("CPU model", "cpu", "model name"),
    ("microcode", "cpu", "microcode"),
    ("SMT", "cpu", "smt"),
    ("TSC", "tsc", "frequency"),
    ("kernel", "kernel", "release"),
    ("kernel cmdline", "kernel", "cmdline"),
    ("clocksource", "kernel", "clocksource"),
    ("KVM modules", "kvm", "modules"),
    ("turbo/boost", "power", "turbo/boost"),
];

fn p50_text(m: &Measurement) -> String {
    if let Some(bps) = m.p50_bytes_per_sec() {
        return format!("{:.2} GB/s", bps / 1e9);
    }
    match m.ns(m.summary.p50 as f64) {
        Some(ns) => format!("{} ({})", m.summary.p50, fmt_ns(ns)),
        None => m.summary.p50.to_string(),
    }
}

fn row(out: &mut String, cells: &[String]) {
    let cells: Vec<String> = cells.iter().map(|c| cell(c)).collect();
    let _ = writeln!(out, "| {} |", cells.join(" | "));
}

/// The comparison as Markdown: what differs between the runs, the
/// differences with confidence, the figures (`figures`: group name and the
/// relative path it was written to), then every measurement's p50 side by
/// side.
pub fn markdown(runs: &[Run]) -> String {
    let method = crate::significance::Method::default();
    markdown_with(runs, &crate::significance::compare(runs, &method), &[])
}

/// [`markdown`] from the comparison already computed
/// ([`crate::significance::compare`]), with links to figures written
/// beside it.
pub fn markdown_with(
    runs: &[Run],
    diffs: &crate::significance::Comparison,
    figures: &[(&str, String)],
) -> String {
    let mut o = String::new();
    let _ = writeln!(o, "# vmbench comparison of {} runs\n", runs.len());
    differences(&mut o, runs);
    significance_table(&mut o, runs, diffs);
    for (group, path) in figures {
        let _ = writeln!(o, "![{group} by run]({path})\n");
    }
    p50_table(&mut o, runs);
    o
}

/// The comparison's figures: one per group of rows, every run's spectra on
/// it (see [`crate::plots::compare_figures`]).
pub fn figures(runs: &[Run]) -> Result<Vec<(&'static str, String)>, crate::PublishError> {
    let pairs: Vec<(&str, &RunRecord)> =
        runs.iter().map(|r| (r.label.as_str(), &r.record)).collect();
    crate::plots::compare_figures(&pairs)
}

fn significance_table(o: &mut String, runs: &[Run], c: &crate::significance::Comparison) {
    use crate::significance::Verdict;
    if c.differences.is_empty() {
        return;
    }
    let _ = writeln!(o, "## Differences\n");
    let _ = writeln!(
        o,
        "Each run's typical p50 against {}'s: the difference in percent (above 0 is slower) with its 95% interval. Runs whose TSC frequencies agree within their calibration errors are compared in ticks, others in ns at each run's frequency. Over repeats (independent boots) the interval is Welch's t on the logs of the repeats' p50s (the typical p50 is their geometric mean); a run without repeats gets an interval over its samples, which knows nothing of boot-to-boot variation, and no verdict. A row is **slower** or **faster** only by more than ±{}%, with Holm's adjustment over the rows compared (5% family-wise error); *same within the band* when the whole interval lies inside ±{}%. Method and assumptions: docs/repeats.md.\n",
        runs[0].label, c.band_pct, c.band_pct
    );
    for line in c.summary_lines() {
        let _ = writeln!(o, "- {line}");
    }
    o.push('\n');
    row(
        o,
        &[
            "measurement".into(),
            "run".into(),
            "p50".into(),
            "difference [95% CI]".into(),
            "verdict".into(),
            "over".into(),
        ],
    );
    let _ = writeln!(o, "|---|---|---:|---:|---|---|");
    for d in &c.differences {
        let verdict = match d.verdict {
            Verdict::Slower | Verdict::Faster => format!("**{}**", d.verdict.label()),
            v => v.label().to_string(),
        };
        row(
            o,
            &[
                d.id.clone(),
                d.run.clone(),
                format!("{} → {}", fmt_ns(d.baseline_p50_ns), fmt_ns(d.run_p50_ns)),
                format!(
                    "{:+.1}% [{:+.1}%, {:+.1}%] in {}",
                    d.difference_pct, d.ci95_pct[0], d.ci95_pct[1], d.compared_in
                ),
                verdict,
                d.basis.clone(),
            ],
        );
    }
    o.push('\n');
}

/// Isolation in one line: what a second run of the same host would repeat.
fn isolation_summary(r: &Run) -> String {
    let k = &r.record.isolation;
    let failing = k
        .iter()
        .filter(|x| x.verdict == vmbench_results::Verdict::Fail)
        .count();
    let changed = k.iter().filter(|x| x.changed_to.is_some()).count();
    // Thread ids differ on every run: compare where the vCPU ran.
    let pinning = r.record.pinning.as_ref().map_or("none".to_string(), |p| {
        format!(
            "vCPU → CPU {}; QEMU's other threads → CPUs {}",
            p.vcpu_cpus(),
            p.housekeeping
        )
    });
    format!(
        "{} knobs, {failing} failing, {changed} changed; pinning {pinning}",
        k.len()
    )
}

fn differences(o: &mut String, runs: &[Run]) {
    let mut header = vec!["".to_string()];
    header.extend(runs.iter().map(|r| r.label.clone()));
    let sep = format!("|{}|", vec!["---"; header.len()].join("|"));
    let _ = writeln!(o, "## What differs\n");
    row(o, &header);
    let _ = writeln!(o, "{sep}");
    let mut items: Vec<(String, Vec<String>)> = vec![
        (
            "provenance".into(),
            runs.iter().map(|r| r.provenance.clone()).collect(),
        ),
        (
            "accelerator".into(),
            runs.iter().map(|r| r.record.accel_label()).collect(),
        ),
        (
            "guest".into(),
            runs.iter()
                .map(|r| r.record.guest_flavour.clone())
                .collect(),
        ),
        (
            "QEMU".into(),
            runs.iter()
                .map(|r| {
                    r.record
                        .qemu
                        .as_ref()
                        .and_then(|q| q.version.clone())
                        .unwrap_or_else(|| "—".into())
                })
                .collect(),
        ),
        (
            "isolation".into(),
            runs.iter().map(isolation_summary).collect(),
        ),
        (
            "complete".into(),
            runs.iter()
                .map(|r| {
                    if r.record.complete {
                        "yes".into()
                    } else {
                        "NO".into()
                    }
                })
                .collect(),
        ),
    ];
    for (shown, section, key) in SPEC_ITEMS {
        let values = runs
            .iter()
            .map(|r| r.record.host_value(section, key).unwrap_or("—").to_string())
            .collect();
        items.push((shown.to_string(), values));
    }
    for (name, values) in &items {
        // The CPU and provenance always show; other items only where runs differ.
        let differs = values.windows(2).any(|w| w[0] != w[1]);
        if differs || name == "CPU model" || name == "provenance" || name == "accelerator" {
            let mut cells = vec![if differs {
                format!("**{name}**")
            } else {
                name.clone()
            }];
            cells.extend(values.iter().cloned());
            row(o, &cells);
        }
    }
    o.push('\n');
    if runs.iter().any(|r| r.record.is_tcg()) {
        let _ = writeln!(
            o,
            "> At least one run is **TCG** (software emulation): its figures are not VM exits.\n"
        );
    }
}

/// `b`'s p50 time over `a`'s. TSC ticks are converted to ns first, each at
/// its own run's frequency: a tick of one host is not a tick of another.
/// Other units compare directly when they are the same unit.
pub fn time_ratio(a: &Measurement, b: &Measurement) -> Option<f64> {
    let (ta, tb) = match (a.unit, b.unit) {
        (Unit::TscTicks, Unit::TscTicks) => (a.p50_ns()?, b.p50_ns()?),
        (ua, ub) if ua == ub => (a.summary.p50 as f64, b.summary.p50 as f64),
        _ => return None,
    };
    (ta > 0.0).then(|| tb / ta)
}

fn p50_table(o: &mut String, runs: &[Run]) {
    let _ = writeln!(o, "## p50 side by side\n");
    let _ = writeln!(
        o,
        "Ticks with ns in brackets, or GB/s for transfers; the ratio is this run's p50 time over the first run's, in ns (each run's ticks converted at its own TSC frequency: hosts' TSCs differ), so above 1 is slower. No ratio where a run's TSC frequency is unknown.\n"
    );
    let mut head = vec!["measurement".to_string()];
    for (i, r) in runs.iter().enumerate() {
        head.push(r.label.clone());
        if i > 0 {
            head.push(format!("{} / {}", r.label, runs[0].label));
        }
    }
    row(o, &head);
    let _ = writeln!(o, "|{}|", vec!["---"; head.len()].join("|"));
    let mut ids: Vec<&str> = Vec::new();
    for r in runs {
        for m in &r.record.results.measurements {
            if !ids.contains(&m.id.as_str()) {
                ids.push(m.id.as_str());
            }
        }
    }
    for id in ids {
        let ms: Vec<Option<&Measurement>> = runs
            .iter()
            .map(|r| r.record.results.measurements.iter().find(|m| m.id == id))
            .collect();
        let mut cells = vec![id.to_string()];
        for (i, m) in ms.iter().enumerate() {
            cells.push(m.map_or_else(|| "—".into(), p50_text));
            if i > 0 {
                let ratio = match (ms[0], m) {
                    (Some(a), Some(b)) => {
                        time_ratio(a, b).map_or_else(|| "—".into(), |x| format!("{x:.2}×"))
                    }
                    _ => "—".into(),
                };
                cells.push(ratio);
            }
        }
        row(o, &cells);
    }
    o.push('\n');
}
