//! `vmbench`: the command line. Parses, calls the library crates, prints.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use vmbench_host::{HostSpec, SpecOptions, SysRoot};

mod isolate;
mod table;

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
    /// Print the specification of this host that every report carries.
    Info(InfoArgs),
    /// Host isolation: audit, apply (journaled), restore, suggest a cmdline.
    #[command(subcommand)]
    Isolate(isolate::IsolateCmd),
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("vmbench: error: {e:#}");
            match e.downcast_ref::<vmbench_isolate::IsolateError>() {
                Some(ie) => ExitCode::from(ie.exit_code()),
                None => ExitCode::from(2),
            }
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Info(args) => info(args),
        Command::Isolate(cmd) => isolate::run(cmd),
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
