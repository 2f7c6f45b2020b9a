//! `vmbench report render|sign|verify` and `vmbench compare`.

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use vmbench_publish::{compare, manifest, sign};
use vmbench_run::ExitStatus;

#[derive(Subcommand)]
pub enum ReportCmd {
    /// Re-render report.md, the CSVs and the plots from DIR/results.json
    /// (and rewrite the manifest; an old signature is removed).
    Render {
        /// A run's output directory.
        dir: PathBuf,
    },
    /// Sign DIR/MANIFEST.sha256 (SSHSIG, namespace vmbench-report) into DIR/report.sig.
    Sign {
        /// A run's output directory.
        dir: PathBuf,
        /// An unencrypted OpenSSH ed25519 private key, or a `.pub` file whose
        /// private half is in ssh-agent (signed through ssh-keygen then).
        #[arg(long, value_name = "PATH")]
        key: PathBuf,
    },
    /// Check DIR/report.sig against an allowed_signers file, then every file's hash.
    Verify {
        /// A run's output directory.
        dir: PathBuf,
        /// OpenSSH allowed_signers: `principal [namespaces="vmbench-report"] ssh-ed25519 KEY`.
        #[arg(long, value_name = "FILE")]
        allowed_signers: PathBuf,
        /// Require the signer's allowed_signers line to name this principal
        /// (as `ssh-keygen -Y verify -I`): e.g. the host the report is from,
        /// so that one host's key cannot sign for another.
        #[arg(long, value_name = "NAME")]
        principal: Option<String>,
    },
    /// Print the JSON Schema of results.json (also in
    /// docs/results.schema.json), or of another command's --json output.
    Schema {
        /// Whose schema.
        #[arg(value_enum, default_value_t)]
        output: crate::output::Output,
    },
    /// Print DIR's rows for other tools: Bencher's metric format,
    /// hyperfine's JSON, or HdrHistogram's interval log
    /// (docs/repeats.md#exports).
    Export {
        /// A run's output directory.
        dir: PathBuf,
        /// Which tool's format.
        #[arg(long, value_enum)]
        format: ExportFormat,
        /// hyperfine only: each time is of N back-to-back executions
        /// (hyperfine's scripts print s or ms with three decimals: with
        /// 1000000, seconds read as µs per execution).
        #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=1_000_000_000))]
        per: u64,
        /// Export only these rows: ids, or prefixes ending in `*`, comma-separated.
        #[arg(long, value_name = "ROW,...", value_delimiter = ',')]
        rows: Vec<String>,
    },
}

/// What `report export` writes.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum ExportFormat {
    /// Bencher Metric Format: per row `latency` (ns) and `tsc-ticks`, the
    /// typical p50 with its repeats' 95% interval as bounds, and
    /// `bytes-per-second` for transfers; names carry the accelerator.
    Bmf,
    /// hyperfine's `--export-json`: seconds, `times` = the samples'
    /// percentiles 0 to 100, exit codes, parameters.
    Hyperfine,
    /// HdrHistogram's interval log: one histogram per row and repeat, tagged.
    HdrLog,
}

#[derive(Args)]
pub struct CompareArgs {
    /// The baseline: a run's output directory (with results.json) that
    /// every other run is compared with.
    #[arg(value_name = "BASELINE")]
    baseline: PathBuf,
    /// The runs compared with the baseline (output directories).
    #[arg(value_name = "RUN", required = true, num_args = 1..)]
    runs: Vec<PathBuf>,
    /// Names for the runs in tables and figures, the baseline's first,
    /// comma-separated, one per directory [default: each directory's name,
    /// with as many parent directories as it takes to tell them apart].
    #[arg(long, value_name = "NAME,...", value_delimiter = ',')]
    label: Vec<String>,
    /// Verify signed runs against this allowed_signers file first.
    #[arg(long, value_name = "FILE")]
    allowed_signers: Option<PathBuf>,
    /// Write the Markdown (or JSON) to FILE instead of stdout.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Every row's difference from the first run as JSON, not Markdown.
    #[arg(long)]
    json: bool,
    /// A difference must exceed ±PCT percent to be called slower or
    /// faster (docs/repeats.md).
    #[arg(long, value_name = "PCT", value_parser = pct, default_value_t = vmbench_publish::significance::DEFAULT_BAND_PCT)]
    band: f64,
    /// Compare only these rows: ids, or prefixes ending in `*`
    /// (`vmexit.kernel-*`), comma-separated. Fewer rows, fewer chances for
    /// a false verdict: the gate's family is the rows compared.
    #[arg(long, value_name = "ROW,...", value_delimiter = ',')]
    rows: Vec<String>,
    /// Exit 1 when a row is slower than the first run by more than PCT
    /// percent (and the band), at 5% family-wise error over the rows
    /// compared (Holm). Rows of runs without repeats get no verdict and
    /// cannot fail the gate: stderr says how many.
    #[arg(long, value_name = "PCT", value_parser = pct)]
    fail_if_slower: Option<f64>,
}

fn pct(s: &str) -> anyhow::Result<f64> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..=1000.0).contains(&v) => Ok(v),
        _ => anyhow::bail!("{s}: give a percentage between 0 and 1000"),
    }
}

pub fn report_cmd(cmd: ReportCmd) -> Result<ExitCode> {
    match cmd {
        ReportCmd::Export {
            dir,
            format,
            per,
            rows,
        } => {
            vmbench_publish::check_run_dir(&dir)?;
            let mut record = vmbench_publish::load(&dir)?;
            let method = vmbench_publish::significance::Method {
                rows: rows.clone(),
                ..Default::default()
            };
            record
                .results
                .measurements
                .retain(|m| method.selects(m.id.as_str()));
            if record.results.measurements.is_empty() {
                anyhow::bail!(
                    "{}: no row to export{}",
                    dir.display(),
                    if rows.is_empty() {
                        String::new()
                    } else {
                        format!(" matching --rows {}", rows.join(","))
                    }
                );
            }
            let text = match format {
                ExportFormat::Bmf => {
                    serde_json::to_string_pretty(&vmbench_publish::export::bmf(&record))? + "\n"
                }
                ExportFormat::Hyperfine => {
                    serde_json::to_string_pretty(&vmbench_publish::export::hyperfine(&record, per))?
                        + "\n"
                }
                ExportFormat::HdrLog => {
                    String::from_utf8(vmbench_publish::export::hdr_interval_log(&record)?)
                        .context("the interval log is not text")?
                }
            };
            out!("{text}")?;
            Ok(ExitCode::SUCCESS)
        }
        ReportCmd::Schema { output } => {
            let schema = output.schema();
            outln!("{}", serde_json::to_string_pretty(&schema)?)?;
            Ok(ExitCode::SUCCESS)
        }
        ReportCmd::Render { dir } => {
            vmbench_publish::check_run_dir(&dir)?;
            vmbench_publish::render_dir(&dir)?;
            outln!("rendered {}", dir.join(vmbench_publish::REPORT).display())?;
            Ok(ExitCode::SUCCESS)
        }
        ReportCmd::Sign { dir, key } => {
            vmbench_publish::check_run_dir(&dir)?;
            // Sign what is there now: the manifest is rewritten first.
            manifest::write_at(&dir)?;
            let fp = sign::sign(&dir, &key)?;
            outln!(
                "signed {} with {fp} (namespace {})",
                dir.join(manifest::SIGNATURE).display(),
                sign::NAMESPACE
            )?;
            Ok(ExitCode::SUCCESS)
        }
        ReportCmd::Verify {
            dir,
            allowed_signers,
            principal,
        } => {
            vmbench_publish::check_run_dir(&dir)?;
            match sign::verify(&dir, &allowed_signers) {
                Ok(v)
                    if principal
                        .as_deref()
                        .is_some_and(|p| !v.signer.vouches_for(p)) =>
                {
                    errln!(
                        "vmbench: verification FAILED: the signature is good, but its key ({}) is allowed for {}, not for {}",
                        v.signer.fingerprint,
                        v.signer.principals,
                        principal.as_deref().unwrap_or_default()
                    );
                    Ok(ExitCode::from(ExitStatus::Failed.code()))
                }
                Ok(v) => {
                    outln!(
                        "good signature by {} ({}), namespace {}; {} files match MANIFEST.sha256",
                        v.signer.principals,
                        v.signer.fingerprint,
                        sign::NAMESPACE,
                        v.files.ok.len()
                    )?;
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => match vmbench_run::outcome::verify_status(&e) {
                    status @ ExitStatus::Failed => {
                        errln!("vmbench: verification FAILED: {e}");
                        Ok(ExitCode::from(status.code()))
                    }
                    _ => Err(e.into()),
                },
            }
        }
    }
}

/// One label per directory: its name, or as many trailing components as
/// it takes to tell it from every other (`a/run-1`, `b/run-1`); a path
/// given twice gets `#2`.
fn unique_labels(dirs: &[PathBuf]) -> Vec<String> {
    let parts: Vec<Vec<String>> = dirs
        .iter()
        .map(|d| {
            d.components()
                .rev()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .filter(|c| c != "/" && c != ".")
                .collect()
        })
        .collect();
    let depth_max = parts.iter().map(Vec::len).max().unwrap_or(1).max(1);
    let label = |p: &Vec<String>, depth: usize| {
        let mut tail: Vec<&str> = p.iter().take(depth).map(String::as_str).collect();
        tail.reverse();
        tail.join("/")
    };
    let mut labels: Vec<String> = parts.iter().map(|p| label(p, 1)).collect();
    for depth in 2..=depth_max {
        let clash =
            |i: usize, labels: &[String]| labels.iter().filter(|l| **l == labels[i]).count() > 1;
        let clashing: Vec<usize> = (0..labels.len()).filter(|i| clash(*i, &labels)).collect();
        if clashing.is_empty() {
            break;
        }
        for i in clashing {
            labels[i] = label(&parts[i], depth);
        }
    }
    let mut seen: Vec<String> = Vec::new();
    for l in &mut labels {
        let n = seen.iter().filter(|s| *s == l).count();
        seen.push(l.clone());
        if n > 0 {
            l.push_str(&format!(" #{}", n + 1));
        }
    }
    labels
}

pub fn compare_cmd(a: CompareArgs) -> Result<ExitCode> {
    let dirs: Vec<PathBuf> = std::iter::once(a.baseline.clone())
        .chain(a.runs.iter().cloned())
        .collect();
    let labels = if a.label.is_empty() {
        unique_labels(&dirs)
    } else {
        if a.label.len() != dirs.len() {
            anyhow::bail!(
                "--label gives {} names for {} directories: give one per directory, the baseline's first",
                a.label.len(),
                dirs.len()
            );
        }
        if let Some(dup) = a
            .label
            .iter()
            .find(|l| a.label.iter().filter(|m| m == l).count() > 1)
        {
            anyhow::bail!("--label names {dup:?} twice: each run needs its own name");
        }
        a.label.clone()
    };
    let mut runs = dirs
        .iter()
        .map(|dir| compare::Run::open(dir, a.allowed_signers.as_deref()))
        .collect::<Result<Vec<_>, _>>()?;
    for (run, label) in runs.iter_mut().zip(labels) {
        run.label = label;
    }
    // The gate's threshold widens the band: a row fails it only when it is
    // slower by more than PCT with the family's confidence.
    let method = vmbench_publish::significance::Method {
        band_pct: a.band.max(a.fail_if_slower.unwrap_or(0.0)),
        rows: a.rows.clone(),
    };
    let comparison = vmbench_publish::significance::compare(&runs, &method);
    if comparison.differences.is_empty() {
        anyhow::bail!(
            "no row to compare: the runs share no measurement{} (rows in the first run: `vmbench report export --format bmf {}`)",
            if a.rows.is_empty() {
                String::new()
            } else {
                format!(" matching --rows {}", a.rows.join(","))
            },
            a.baseline.display()
        );
    }
    match (&a.out, a.json) {
        (_, true) => {
            let output = compare::ComparisonOutput::new(&runs, &comparison);
            let text = serde_json::to_string_pretty(&output)? + "\n";
            match &a.out {
                Some(p) => vmbench_host::files::write_named(p, text.as_bytes())
                    .with_context(|| format!("writing {}", p.display()))?,
                None => out!("{text}")?,
            }
        }
        (Some(p), false) => compare::write_markdown(&runs, &comparison, p)
            .with_context(|| format!("writing {}", p.display()))?,
        (None, false) => out!("{}", compare::markdown_with(&runs, &comparison, &[]))?,
    }
    let Some(limit) = a.fail_if_slower else {
        return Ok(ExitCode::SUCCESS);
    };
    for line in comparison.summary_lines() {
        errln!("vmbench compare: {line}");
    }
    let slower = comparison.slower();
    for d in &slower {
        errln!(
            "vmbench compare: {} is slower in {} by {:+.1}% [95% CI {:+.1}%, {:+.1}%], more than {}% (Holm-adjusted p = {:.2e})",
            d.id,
            d.run,
            d.difference_pct,
            d.ci95_pct[0],
            d.ci95_pct[1],
            method.band_pct.max(limit),
            d.p_adjusted.unwrap_or(f64::NAN)
        );
    }
    Ok(ExitCode::from(
        vmbench_run::outcome::compare_status(&slower).code(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_named_runs_get_labels_that_tell_them_apart() {
        let dirs: Vec<PathBuf> = ["a/run-1", "b/run-1", "c/x/run-2", "/abs/y/run-3", "a/run-1"]
            .iter()
            .map(PathBuf::from)
            .collect();
        assert_eq!(
            unique_labels(&dirs),
            ["a/run-1", "b/run-1", "run-2", "run-3", "a/run-1 #2"]
        );
        let plain: Vec<PathBuf> = ["x/base", "y/new"].iter().map(PathBuf::from).collect();
        assert_eq!(unique_labels(&plain), ["base", "new"]);
    }
}
