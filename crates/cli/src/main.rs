//! `vmbench`: the command line. Parses, calls the library crates, prints.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use vmbench_host::{HostSpec, SpecOptions, SysRoot};

mod isolate;
mod report;
mod run;
mod shm;
mod table;
mod vm;
mod vmexit;

#[derive(Parser)]
#[command(
    name = "vmbench",
    version,
    about = "Reproducible VM-exit and host-guest shared-memory benchmarks for KVM hosts"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Everything in one go: preflight, isolation, guest, suites, restore, report.
    Run(run::RunArgs),
    /// Print the specification of this host that every report carries.
    Info(InfoArgs),
    /// Host isolation: audit, apply (journaled), restore, suggest a cmdline.
    #[command(subcommand)]
    Isolate(isolate::IsolateCmd),
    /// Guest images.
    #[command(subcommand)]
    Image(vm::ImageCmd),
    /// The guest VM.
    #[command(subcommand)]
    Vm(vm::VmCmd),
    /// The VM-exit suite alone: six round trips (user/kernel, in KVM/through QEMU), baselines and extras.
    Vmexit(vmexit::VmexitArgs),
    /// The shared-memory suite: ivshmem latency, bandwidth and integrity.
    Shm(shm::ShmArgs),
    /// A run's output directory: re-render, sign, verify.
    #[command(subcommand)]
    Report(report::ReportCmd),
    /// Several runs side by side (each verified first when signed).
    Compare(report::CompareArgs),
    /// Run the guest agent (what the guest's /init does).
    #[command(hide = true)]
    GuestAgent {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

#[derive(clap::Args)]
struct InfoArgs {
    /// Print JSON (schema in docs/info-schema.md) instead of a table.
    #[arg(long)]
    json: bool,
    /// Read /proc and /sys under DIR instead of / (fixture trees). CPUID, TSC
    /// and /dev/kvm probes are then skipped: they describe the running machine.
    #[arg(long, value_name = "DIR", default_value = "/")]
    root: PathBuf,
    /// QEMU binary a run would use (path, or name looked up in PATH).
    #[arg(long, value_name = "PATH", env = "VMBENCH_QEMU")]
    qemu: Option<PathBuf>,
    /// Skip the ~100 ms TSC calibration against CLOCK_MONOTONIC_RAW.
    #[arg(long)]
    no_calibrate: bool,
}

/// Set by SIGINT/SIGTERM; every long wait checks it and tears down cleanly.
static INTERRUPTED: std::sync::OnceLock<Arc<AtomicBool>> = std::sync::OnceLock::new();

extern "C" fn on_signal(_: nix::libc::c_int) {
    if let Some(f) = INTERRUPTED.get() {
        f.store(true, Ordering::Relaxed);
    }
}

fn interrupt_flag() -> Arc<AtomicBool> {
    let flag = INTERRUPTED
        .get_or_init(|| Arc::new(AtomicBool::new(false)))
        .clone();
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
    let act = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for sig in [Signal::SIGINT, Signal::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        let _ = unsafe { sigaction(sig, &act) };
    }
    flag
}

fn main() -> ExitCode {
    // The same static binary is the guest's /init: as PID 1, be the agent.
    if std::process::id() == 1 {
        return guest_agent(&[]);
    }
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("vmbench: error: {e:#}");
            ExitCode::from(vmbench_run::outcome::error_status(e.as_ref()).code())
        }
    }
}

fn guest_agent(args: &[String]) -> ExitCode {
    vmbench_guest::main_with_args(args)
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Run(args) => run::run_cmd(args, interrupt_flag()),
        Command::Info(args) => info(args),
        Command::Isolate(cmd) => isolate::run(cmd),
        Command::Image(cmd) => vm::image_cmd(cmd),
        Command::Vm(cmd) => vm::vm_cmd(cmd, interrupt_flag()),
        Command::Vmexit(args) => vmexit::vmexit_cmd(args, interrupt_flag()),
        Command::Shm(args) => shm::shm_cmd(args, interrupt_flag()),
        Command::Report(cmd) => report::report_cmd(cmd),
        Command::Compare(args) => report::compare_cmd(args),
        Command::GuestAgent { args } => Ok(guest_agent(&args)),
    }
}

fn info(args: InfoArgs) -> Result<ExitCode> {
    if !args.root.is_dir() {
        anyhow::bail!(
            "--root {}: not a directory (give the directory that holds proc/ and sys/)",
            args.root.display()
        );
    }
    let root = SysRoot::new(&args.root);
    let spec = HostSpec::gather(
        &root,
        &SpecOptions {
            qemu: args.qemu,
            skip_calibration: args.no_calibrate,
        },
    );
    if args.json {
        let text = serde_json::to_string_pretty(&spec).context("serialising the host spec")?;
        println!("{text}");
    } else {
        print!("{}", table::render(&spec.rows()));
    }
    Ok(ExitCode::SUCCESS)
}
