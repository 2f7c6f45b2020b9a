//! `vmbench`: the command line. Parses, calls the library crates, prints.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use vmbench_host::{HostSpec, SpecOptions, SysRoot};

#[macro_use]
mod out;
mod isolate;
mod output;
mod report;
mod run;
mod shm;
mod table;
mod vm;
mod vmexit;

#[derive(Parser)]
#[command(
    name = "vmbench",
    version = vmbench_run::identity::LONG_VERSION,
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

/// Handles SIGINT, SIGTERM, SIGHUP and SIGQUIT for commands that start
/// guests or change the host: every long wait checks the flag and tears
/// down cleanly. Commands that change nothing keep the default dispositions.
fn interrupt_flag() -> Arc<AtomicBool> {
    vmbench_host::signals::install()
}

fn main() -> ExitCode {
    // The same static binary is the guest's /init: as PID 1, be the agent.
    if std::process::id() == 1 {
        return guest_agent(&[]);
    }
    let cli = Cli::parse();
    let result = run(cli).and_then(|code| out::flush().map(|()| code).map_err(Into::into));
    // What this process made in shared directories is gone by now; the
    // locks that vouched for it go too.
    vmbench_host::files::release_alive_locks();
    let status = match result {
        Ok(code) => return code,
        Err(e) => e,
    };
    if let Some(o) = status
        .chain()
        .find_map(|c| c.downcast_ref::<out::OutputError>())
        && o.is_closed_pipe()
    {
        // The reader went away: nothing to say, nobody to say it to.
        return ExitCode::SUCCESS;
    }
    errln!("vmbench: error: {}", error_chain(&status));
    ExitCode::from(vmbench_run::outcome::error_status(status.as_ref()).code())
}

/// The error and its causes on one line, each cause said once: many
/// errors already print their source in their own message (`{path}:
/// {source}`), and anyhow's `{:#}` would repeat it.
pub(crate) fn error_chain(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    vmbench_host::text::printable(&line)
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
        Command::Shm(args) => shm::shm_cmd(args),
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
        outln!("{text}")?;
    } else {
        out!("{}", table::render(&spec.rows()))?;
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    /// Every visible subcommand says what it does, and every argument of
    /// every command has a `--help` line.
    #[test]
    fn every_help_entry_is_filled() {
        fn walk(cmd: &clap::Command, path: &str, empty: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if arg.is_hide_set() || id == "help" || id == "version" {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    empty.push(format!("{path} {id}"));
                }
            }
            for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
                let p = format!("{path} {}", sub.get_name());
                if sub.get_name() != "help" && sub.get_about().is_none() {
                    empty.push(p.clone());
                }
                walk(sub, &p, empty);
            }
        }
        let mut empty = Vec::new();
        walk(&Cli::command(), "vmbench", &mut empty);
        assert!(empty.is_empty(), "no --help text: {empty:#?}");
    }
}
