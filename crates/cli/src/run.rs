//! `vmbench run`: arguments, the progress display and the summary. The run
//! itself (plan, preflight, isolation, suites, restore, record) is the
//! `vmbench-run` library.

use anyhow::Result;
use clap::Args;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;
use vmbench_host::CpuList;
use vmbench_results::{CheckKind, RunRecord};
use vmbench_run::{Environment, Plan, Progress, RunError, RunFlags, Suite, VmLauncher};
use vmbench_vm::AccelChoice;

#[derive(Args)]
pub struct RunArgs {
    /// YAML config (every field optional; see examples/vmbench.yaml).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Suites to run, in order.
    #[arg(long, value_enum, value_delimiter = ',', value_name = "SUITE,...")]
    suite: Vec<Suite>,
    /// The accelerator: KVM where it can run the guest, else TCG (auto).
    #[arg(long, value_enum)]
    accel: Option<AccelChoice>,
    /// Benchmark CPUs (isolation audit, vCPU pinning).
    #[arg(long, value_name = "LIST", value_parser = vmbench_host::CpuList::parse)]
    cpus: Option<CpuList>,
    /// Fewer samples (2,000 per row) and one repeat: minutes become
    /// seconds. The default when every guest runs under TCG.
    #[arg(long, conflicts_with = "full")]
    quick: bool,
    /// Full samples (100,000 per row) and three repeats, even under TCG.
    #[arg(long)]
    full: bool,
    /// Change nothing on the host: audit isolation only (as `isolation:
    /// apply: no` in the config).
    #[arg(long)]
    no_isolation: bool,
    /// Run the suites N times, each in fresh guest boots: per row, every
    /// repeat, the median with a 95% CI and the spread (default 3; 1 with
    /// --quick and under TCG).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=i64::from(vmbench_run::config::MAX_REPEAT)))]
    repeat: Option<u32>,
    /// Output directory (must be new or empty).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Sign the report: an ed25519 private key, or a .pub with its key in ssh-agent.
    #[arg(long, value_name = "KEY")]
    sign: Option<PathBuf>,
    /// Only errors and the final summary.
    #[arg(short, long, conflicts_with = "verbose")]
    quiet: bool,
    /// More detail: QEMU command lines, every isolation change.
    #[arg(short, long)]
    verbose: bool,
}

/// `d` as the terminal shows it: `1m05s`, `42s`.
fn elapsed(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

/// Phase and measurement progress: a spinner on a TTY, plain lines otherwise.
struct Display {
    bar: Option<indicatif::ProgressBar>,
    start: std::time::Instant,
    quiet: bool,
    verbose: bool,
}

impl Display {
    fn new(quiet: bool, verbose: bool) -> Display {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let b = indicatif::ProgressBar::new_spinner();
            // The elapsed time beside the step (which counts rows itself).
            if let Ok(style) =
                indicatif::ProgressStyle::with_template("{spinner} [{elapsed}] {msg}")
            {
                b.set_style(style);
            }
            b.enable_steady_tick(Duration::from_millis(120));
            b
        });
        Display {
            bar,
            start: std::time::Instant::now(),
            quiet,
            verbose,
        }
    }

    fn done(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

impl Progress for Display {
    fn phase(&self, msg: &str) {
        match &self.bar {
            Some(b) => b.println(format!("== [{}] {msg}", elapsed(b.elapsed()))),
            None if !self.quiet => {
                errln!("vmbench run: [{}] {msg}", elapsed(self.start.elapsed()))
            }
            None => {}
        }
    }

    fn step(&self, msg: &str) {
        match &self.bar {
            Some(b) => b.set_message(msg.to_string()),
            None if !self.quiet => errln!("vmbench run:   {msg}"),
            None => {}
        }
    }

    fn detail(&self, msg: &str) {
        if self.verbose {
            self.phase(msg);
        }
    }
}

pub fn run_cmd(a: RunArgs, interrupt: Arc<AtomicBool>) -> Result<ExitCode> {
    let config = match &a.config {
        Some(p) => vmbench_run::config::load(p)?,
        None => vmbench_run::config::Config::default(),
    };
    let flags = RunFlags {
        suites: a.suite,
        accel: a.accel,
        cpus: a.cpus,
        quick: a.quick,
        full: a.full,
        no_isolation: a.no_isolation,
        repeat: a.repeat,
        out: a.out,
        sign: a.sign,
        command: vmbench_run::plan::reproduce_command(
            std::env::args_os().map(|a| a.to_string_lossy().into_owned()),
        ),
    };
    let plan = Plan::new(flags, config, Environment::from_process())?;
    let depth_note = plan.depth.note(plan.repeat);
    let display = Display::new(a.quiet, a.verbose);
    let mut launcher = VmLauncher::new(plan.guest.clone(), Some(interrupt.clone()));
    let result = vmbench_run::run(plan, &mut launcher, &display, &interrupt);
    display.done();
    match result {
        Ok(recorded) => {
            print_summary(&recorded.record, &recorded.out, depth_note.as_deref())?;
            Ok(ExitCode::from(recorded.status.code()))
        }
        Err(e @ RunError::Blocked(_)) => {
            errln!("vmbench run: {e}");
            Ok(ExitCode::from(e.exit_status().code()))
        }
        Err(e) => {
            let status = e.exit_status();
            errln!(
                "vmbench: error: {}",
                crate::error_chain(&anyhow::Error::from(e))
            );
            Ok(ExitCode::from(status.code()))
        }
    }
}

fn print_summary(
    r: &RunRecord,
    out: &Path,
    depth_note: Option<&str>,
) -> Result<(), crate::out::OutputError> {
    if r.is_tcg() {
        outln!("{}", RunRecord::TCG_RUN)?;
    }
    if !r.complete {
        outln!("INCOMPLETE: {}", r.incomplete_text())?;
    }
    // The report's headline, aligned: what most readers came for.
    let rows = vmbench_publish::markdown::headline_rows(r);
    let header = [
        "measurement".to_string(),
        "p50".into(),
        "p99".into(),
        "path".into(),
    ];
    let width = |col: usize| {
        rows.iter()
            .chain(std::iter::once(&header))
            .map(|row| row[col].chars().count())
            .max()
            .unwrap_or(0)
    };
    let (w0, w1, w2) = (width(0), width(1), width(2));
    if !rows.is_empty() {
        for row in std::iter::once(&header).chain(&rows) {
            outln!(
                "  {:<w0$}  {:>w1$}  {:>w2$}  {}",
                row[0],
                row[1],
                row[2],
                row[3]
            )?;
        }
    }
    outln!(
        "{} measurements, {} skipped; report: {} (and report.html beside it)",
        r.results.measurements.len(),
        r.results.skipped.len(),
        out.join(vmbench_publish::REPORT).display()
    )?;
    if let Some(note) = depth_note {
        outln!("This was {note}.")?;
    }
    for c in r
        .results
        .checks
        .iter()
        .filter(|c| c.kind == CheckKind::Integrity)
    {
        outln!(
            "[{}] {}: {}",
            if c.passed { "PASS" } else { "FAIL" },
            c.id,
            c.observed
        )?;
    }
    Ok(())
}
