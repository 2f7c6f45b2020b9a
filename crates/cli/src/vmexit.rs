//! `vmbench vmexit`: the VM-exit suite alone.

use crate::vm::{GuestArgs, pin_guest, vm_options};
use anyhow::{Context, Result, bail};
use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use vmbench_proto::vmexit::Row;
use vmbench_report::{Measurement, Results, Verification};
use vmbench_suites::vmexit::{VmexitOptions, run};
use vmbench_vm::{Accel, Vm};

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
    /// Back-to-back iterations timed as a whole (the kvm-unit-tests-style batch mean).
    #[arg(long, value_name = "N", default_value_t = 100_000)]
    batch: u64,
    /// Pin vCPU i to the i-th CPU of LIST and QEMU's other threads to the rest.
    #[arg(long, value_name = "LIST", value_parser = crate::vm::parse_cpus)]
    pin_cpus: Option<vmbench_host::CpuList>,
    /// Print JSON (results model + context) instead of a table.
    #[arg(long)]
    json: bool,
    /// Also write a per-row summary CSV.
    #[arg(long, value_name = "FILE")]
    csv: Option<PathBuf>,
}

fn parse_rows(names: &[String]) -> Result<Vec<Row>> {
    if names.is_empty() {
        return Ok(Row::ALL
            .iter()
            .copied()
            .filter(|r| r.default_on())
            .collect());
    }
    names
        .iter()
        .map(|n| {
            Row::parse(n).ok_or_else(|| {
                let ids: Vec<&str> = Row::ALL.iter().map(|r| r.id()).collect();
                anyhow::anyhow!("unknown row {n:?}; rows are: {}", ids.join(", "))
            })
        })
        .collect()
}

pub fn vmexit_cmd(a: VmexitArgs, interrupt: Arc<AtomicBool>) -> Result<ExitCode> {
    let rows = parse_rows(&a.rows)?;
    if a.iterations == 0 {
        bail!("--iterations must be at least 1");
    }
    let (opts, warning) = vm_options(&a.guest, interrupt)?;
    if let Some(w) = &warning {
        eprintln!("vmbench: WARNING: {w}");
    }
    let mut vm = Vm::boot(&opts)?;
    if let Some(cpus) = &a.pin_cpus {
        pin_guest(&vm, cpus)?;
    }
    let s = suite_options(
        &vm,
        opts.accel,
        rows,
        (a.iterations, a.warmup, a.batch),
        None,
    );
    let quiet = a.json;
    let measured = run(&mut vm, &s, &mut |line| {
        if !quiet {
            eprintln!("{line}");
        }
    });
    let spec = vm.spec.clone();
    let qemu_version = vm.qemu_version.clone();
    let command_line = vm.config.command_line();
    let _ = vm.shutdown();
    let measured = measured?;
    let mut results = Results {
        measurements: measured.measurements,
        skipped: measured.skipped,
        ..Results::default()
    };
    if opts.accel == Accel::Tcg {
        results.warnings.push(
            "TCG (software emulation): there are no VM exits; every number below is QEMU's emulation cost, not an exit".into(),
        );
    }
    if let Some(path) = &a.csv {
        write_csv(path, &results.measurements)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    let failed = results
        .measurements
        .iter()
        .any(|m| matches!(m.verification, Verification::Failed { .. }));
    if a.json {
        let v = serde_json::json!({
            "accel": opts.accel.name(),
            "qemu_version": qemu_version,
            "qemu_command_line": command_line,
            "guest": spec,
            "results": results,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print_table(&results, opts.accel, &spec, s.tsc_khz);
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// The suite's options for this guest: `sizes` is (iterations, warm-up,
/// batch). The TSC frequency is the guest's own figure, else the host's
/// (`host_khz`, or measured now): KVM keeps guest TSC = host TSC unless asked
/// to scale it, and the micro-guest has no clock to calibrate.
pub fn suite_options(
    vm: &Vm,
    accel: Accel,
    rows: Vec<Row>,
    sizes: (u64, u64, u64),
    host_khz: Option<f64>,
) -> VmexitOptions {
    let mut s = VmexitOptions::new(accel);
    if !rows.is_empty() {
        s.rows = rows;
    }
    (s.samples, s.warmup, s.batch) = sizes;
    s.tsc_khz = vm
        .spec
        .tsc_khz_kernel
        .or(vm.spec.tsc_khz_calibrated)
        .or_else(|| host_khz.or_else(host_tsc_khz));
    s
}

/// The host's TSC frequency, chosen as `vmbench info` chooses it (CPUID,
/// else a calibration), without gathering the rest of the host spec.
pub fn host_tsc_khz() -> Option<f64> {
    use vmbench_host::{Fact, cpuid, tsc};
    let calibration: Fact<tsc::Calibration> = tsc::calibrate_default().into();
    tsc::choose(&Fact::Known(cpuid::read()), &calibration)
        .into_known()
        .map(|f| f.khz)
}

fn f1(v: f64) -> String {
    format!("{v:.1}")
}

fn print_table(r: &Results, accel: Accel, spec: &vmbench_proto::GuestSpec, tsc_khz: Option<f64>) {
    for w in &r.warnings {
        println!("WARNING: {w}");
    }
    println!(
        "accel {}, guest kernel {}, TSC {} (ticks are TSC reference cycles, not core cycles)",
        accel.name(),
        spec.kernel_release,
        tsc_khz.map_or("unknown".into(), |k| format!("{:.3} MHz", k / 1000.0))
    );
    let tsc_flags: Vec<&str> = spec
        .cpu_flags
        .iter()
        .map(String::as_str)
        .filter(|f| f.contains("tsc"))
        .collect();
    println!(
        "guest TSC: {}; rdtsc {}",
        tsc_flags.join(" "),
        spec.rdtsc_exiting
    );
    println!(
        "{:<27} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9} {:>10} {:>9}  verdict",
        "row", "N", "min", "p50", "p90", "p99", "p99.9", "max", "p50-ovh", "batch", "p50 ns"
    );
    for m in &r.measurements {
        let s = &m.summary;
        println!(
            "{:<27} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>9} {:>9} {:>10} {:>9}  {}",
            m.id.trim_start_matches("vmexit."),
            s.n,
            s.min,
            s.p50,
            s.p90,
            s.p99,
            s.p999,
            s.max,
            m.overhead_subtracted
                .as_ref()
                .map_or("-".into(), |o| o.p50.to_string()),
            m.batch_mean.map_or("-".into(), f1),
            m.ns(s.p50 as f64).map_or("-".into(), f1),
            m.verification.label()
        );
    }
    for s in &r.skipped {
        println!(
            "{:<27} skipped: {}",
            s.id.trim_start_matches("vmexit."),
            s.reason
        );
    }
    println!();
    for m in &r.measurements {
        let detail = match &m.verification {
            Verification::Verified { evidence } | Verification::Failed { evidence } => {
                evidence.clone()
            }
            Verification::Unverified { reason } => reason.clone(),
            Verification::NotApplicable => String::new(),
        };
        println!(
            "{}: {}; {}",
            m.id.trim_start_matches("vmexit."),
            m.tier.as_deref().unwrap_or(""),
            detail
        );
        for w in &m.warnings {
            println!("    warning: {w}");
        }
    }
}

/// One line per measurement (the report's CSV format).
pub fn write_csv(path: &std::path::Path, ms: &[Measurement]) -> Result<()> {
    let refs: Vec<&Measurement> = ms.iter().collect();
    Ok(vmbench_publish::csv::write(path, &refs)?)
}
