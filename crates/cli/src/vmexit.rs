//! `vmbench vmexit`: the VM-exit suite alone.

use crate::vm::GuestArgs;
use anyhow::{Context, Result, bail};
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use vmbench_proto::vmexit::Row;
use vmbench_results::{Measurement, Results, Verification};
use vmbench_run::drive::VmexitRequest;
use vmbench_run::{BootRequest, GuestLauncher, Progress, VmLauncher};
use vmbench_vm::Accel;

#[derive(Args)]
pub struct VmexitArgs {
    #[command(flatten)]
    guest: GuestArgs,
    /// Rows to run (comma-separated ids; default: all but the opt-in ones).
    #[arg(long, value_delimiter = ',', value_name = "ROW,...")]
    rows: Vec<String>,
    /// Timed iterations per row.
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    iterations: u64,
    /// Discarded iterations before the timed ones.
    #[arg(long, value_name = "N", default_value_t = 1_000)]
    warmup: u64,
    /// Back-to-back iterations timed as a whole (the batch mean; the kut-method-* rows
    /// reproduce kvm-unit-tests' own method instead, see docs/kvm-unit-tests.md).
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    batch: u64,
    /// Pin vCPU i to the i-th CPU of LIST and QEMU's other threads to the rest.
    #[arg(long, value_name = "LIST", value_parser = vmbench_host::CpuList::parse)]
    pin_cpus: Option<vmbench_host::CpuList>,
    /// Print JSON (results model + context) instead of a table.
    #[arg(long)]
    json: bool,
    /// Also write a per-row summary CSV.
    #[arg(long, value_name = "FILE")]
    csv: Option<PathBuf>,
    /// Test only: the micro-guest executes something other than the CPUID
    /// these rows name (kernel-fast, user-fast, user-kernel-fast), so the
    /// path verification must fail them.
    #[arg(long, value_name = "ROW,...", hide = true, value_parser = parse_row, value_delimiter = ',')]
    test_substitute: Vec<Row>,
}

fn parse_row(id: &str) -> Result<Row, vmbench_proto::vmexit::UnknownRow> {
    Row::parse(id).ok_or_else(|| vmbench_proto::vmexit::UnknownRow(id.to_string()))
}

/// Suite progress on stderr, one line per row (none with --json).
struct Lines {
    quiet: bool,
}

impl Progress for Lines {
    fn phase(&self, msg: &str) {
        self.step(msg);
    }

    fn step(&self, msg: &str) {
        if !self.quiet {
            errln!("{msg}");
        }
    }

    fn detail(&self, _: &str) {}
}

pub fn vmexit_cmd(a: VmexitArgs, interrupt: Arc<AtomicBool>) -> Result<ExitCode> {
    let rows = Row::parse_list(&a.rows)?;
    if a.iterations == 0 {
        bail!("--iterations must be at least 1");
    }
    let lines = Lines { quiet: a.json };
    let mut launcher = VmLauncher::new(a.guest.settings(), Some(interrupt));
    let mut session = launcher.boot(&BootRequest::plain(a.guest.guest), &lines)?;
    if let Some(w) = session.accel_notice() {
        errln!("vmbench: WARNING: {w}");
    }
    if let Some(cpus) = &a.pin_cpus {
        session.pin(cpus)?;
    }
    let request = VmexitRequest {
        rows,
        iterations: a.iterations,
        warmup: a.warmup,
        batch: a.batch,
        test_substitute: a.test_substitute,
    };
    let (options, measured, outcome) =
        vmbench_run::drive::vmexit(session.as_mut(), &request, None, &lines);
    let accel = session.accel();
    let spec = session.spec().clone();
    let qemu = session.qemu();
    session.shutdown();
    outcome?;
    let mut results = Results {
        measurements: measured.measurements,
        skipped: measured.skipped,
        warnings: measured.warnings,
        ..Results::default()
    };
    vmbench_run::outcome::label_accel(&mut results, accel);
    if let Some(path) = &a.csv {
        let setting = vmbench_publish::csv::Setting {
            accel: accel.name(),
            guest: &a.guest.guest.name().to_lowercase(),
        };
        write_csv(path, &results.measurements, setting)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let status = vmbench_run::outcome::vmexit_status(&results);
    if a.json {
        let v = crate::output::VmexitOutput {
            schema_version: crate::output::VMEXIT_SCHEMA_VERSION,
            accel,
            qemu_version: qemu.version,
            qemu_command_line: qemu.command_line,
            guest: spec,
            results,
        };
        outln!("{}", serde_json::to_string_pretty(&v)?)?;
    } else {
        print_table(&results, accel, &spec, options.tsc_khz)?;
    }
    Ok(ExitCode::from(status.code()))
}

fn f1(v: f64) -> String {
    format!("{v:.1}")
}

fn print_table(
    r: &Results,
    accel: Accel,
    spec: &vmbench_proto::GuestSpec,
    tsc_khz: Option<f64>,
) -> Result<(), crate::out::OutputError> {
    for w in &r.warnings {
        outln!("WARNING: {w}")?;
    }
    outln!(
        "accel {}, guest kernel {}, TSC {} (ticks are TSC reference cycles, not core cycles)",
        accel.name(),
        spec.kernel_release,
        tsc_khz.map_or("unknown".into(), |k| format!("{:.3} MHz", k / 1000.0))
    )?;
    let tsc_flags: Vec<&str> = spec
        .cpu_flags
        .iter()
        .map(String::as_str)
        .filter(|f| f.contains("tsc"))
        .collect();
    outln!(
        "guest TSC: {}; rdtsc {}",
        tsc_flags.join(" "),
        spec.rdtsc_exiting
    )?;
    outln!(
        "{:<27} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9} {:>10} {:>9}  verdict",
        "row",
        "N",
        "min",
        "p50",
        "p90",
        "p99",
        "p99.9",
        "max",
        "p50-ovh",
        "batch",
        "p50 ns"
    )?;
    for measurement in &r.measurements {
        let summary = &measurement.summary;
        outln!(
            "{:<27} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9} {:>10} {:>9}  {}",
            measurement.id.local(),
            summary.n,
            summary.min,
            summary.p50,
            summary.p90,
            summary.p99,
            summary.p999,
            summary.max,
            measurement
                .overhead_subtracted
                .as_ref()
                .map_or("-".into(), |o| o.p50.to_string()),
            measurement.batch_mean.map_or("-".into(), f1),
            measurement.ns(summary.p50 as f64).map_or("-".into(), f1),
            measurement.path_label()
        )?;
    }
    for skipped in &r.skipped {
        outln!("{:<27} skipped: {}", skipped.id.local(), skipped.reason)?;
    }
    outln!()?;
    for m in &r.measurements {
        let detail = match &m.verification {
            Verification::Verified { evidence } | Verification::Failed { evidence } => {
                evidence.clone()
            }
            Verification::Unverified { reason, .. } => reason.clone(),
            Verification::NotApplicable => String::new(),
        };
        outln!(
            "{}: {}; {}",
            m.id.local(),
            m.tier.as_deref().unwrap_or(""),
            detail
        )?;
        for w in &m.warnings {
            outln!("    warning: {w}")?;
        }
    }
    Ok(())
}

/// One line per measurement (the report's CSV format).
pub fn write_csv(
    path: &std::path::Path,
    ms: &[Measurement],
    setting: vmbench_publish::csv::Setting<'_>,
) -> Result<()> {
    let refs: Vec<&Measurement> = ms.iter().collect();
    Ok(vmbench_publish::csv::write(path, &refs, setting)?)
}
