//! `vmbench isolate check | apply | restore | suggest`.

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use vmbench_host::{CpuList, SysRoot};
use vmbench_isolate::apply::{self, RestoreReport};
use vmbench_isolate::journal;
use vmbench_isolate::{Audit, AuditOptions, Verdict};
use vmbench_run::outcome;

#[derive(Subcommand)]
pub enum IsolateCmd {
    /// Audit every isolation knob for the benchmark CPUs (read-only). Exit 1 if any fails.
    Check(CheckArgs),
    /// Apply the runtime knobs, journaling the original values first.
    Apply(ApplyArgs),
    /// Put back everything the journal lists (also after the applier was killed).
    Restore(CommonArgs),
    /// Print the kernel cmdline (and NixOS config) that isolates the benchmark CPUs.
    Suggest(SuggestArgs),
}

#[derive(Args, Clone)]
pub struct CommonArgs {
    /// Read and write /proc and /sys under DIR instead of / (fixture trees).
    /// Nothing outside DIR is touched: no services, no held devices.
    #[arg(long, value_name = "DIR", default_value = "/")]
    root: PathBuf,
    /// Journal file [default: <root>/run/vmbench/isolate-journal.json].
    #[arg(long, value_name = "PATH")]
    journal: Option<PathBuf>,
}

#[derive(Args)]
pub struct CheckArgs {
    /// Benchmark CPUs, e.g. "2-3" [default: the isolated CPUs, else the last online CPU].
    #[arg(long, value_name = "LIST", value_parser = vmbench_host::CpuList::parse)]
    cpus: Option<CpuList>,
    #[arg(long, value_name = "DIR", default_value = "/")]
    root: PathBuf,
    /// How long to count interrupts on the benchmark CPUs.
    #[arg(long, value_name = "MS", default_value_t = 500)]
    window_ms: u64,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct ApplyArgs {
    #[arg(long, value_name = "LIST", value_parser = vmbench_host::CpuList::parse)]
    cpus: Option<CpuList>,
    #[command(flatten)]
    common: CommonArgs,
    /// Runtime knobs to leave alone (comma-separated ids from `check`).
    #[arg(long, value_name = "KNOB,...", value_delimiter = ',')]
    skip: Vec<String>,
    /// Stay running, holding /dev/cpu_dma_latency, until SIGINT/SIGTERM; then restore.
    #[arg(long)]
    hold: bool,
}

#[derive(Args)]
pub struct SuggestArgs {
    #[arg(long, value_name = "LIST", value_parser = vmbench_host::CpuList::parse)]
    cpus: Option<CpuList>,
    #[arg(long, value_name = "DIR", default_value = "/")]
    root: PathBuf,
    #[arg(long)]
    json: bool,
}

fn sysroot(root: &PathBuf) -> Result<SysRoot> {
    if !root.is_dir() {
        anyhow::bail!(
            "--root {}: not a directory (give the directory that holds proc/ and sys/)",
            root.display()
        );
    }
    Ok(SysRoot::new(root))
}

pub fn run(cmd: IsolateCmd) -> Result<ExitCode> {
    match cmd {
        IsolateCmd::Check(a) => check(a),
        IsolateCmd::Apply(a) => apply_cmd(a),
        IsolateCmd::Restore(a) => restore_cmd(a),
        IsolateCmd::Suggest(a) => suggest_cmd(a),
    }
}

fn check(a: CheckArgs) -> Result<ExitCode> {
    let root = sysroot(&a.root)?;
    let audit = vmbench_isolate::audit(
        &root,
        &AuditOptions {
            cpus: a.cpus,
            noise_window: Duration::from_millis(a.window_ms),
        },
    )?;
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&audit).context("serialising the audit")?
        );
    } else {
        print!("{}", render_audit(&audit));
    }
    Ok(ExitCode::from(outcome::audit_status(&audit).code()))
}

pub fn render_audit(audit: &Audit) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "benchmark CPUs: {} ({})\nhousekeeping CPUs: {}\n",
        audit.cpus.bench, audit.cpus.source, audit.cpus.housekeeping
    ));
    out.push_str(&format!(
        "privileges: euid {}{}\n\n",
        audit.privileges.euid,
        if audit.privileges.capabilities.is_empty() {
            String::new()
        } else {
            format!(", {}", audit.privileges.capabilities.join(" "))
        }
    ));
    let id_w = audit.knobs.iter().map(|k| k.id.len()).max().unwrap_or(0);
    for k in &audit.knobs {
        out.push_str(&format!(
            "{:<4}  {:<7}  {:<id_w$}  {}\n",
            k.verdict.label(),
            k.class.label(),
            k.id,
            k.found
        ));
        if matches!(k.verdict, Verdict::Warn | Verdict::Fail) {
            let pad = " ".repeat(17 + id_w);
            out.push_str(&format!("{pad}wanted: {}\n", k.wanted));
            out.push_str(&format!("{pad}why:    {}\n", k.why));
            if let Some(inv) = &k.invalid {
                out.push_str(&format!("{pad}INVALID: {inv}\n"));
            }
            if let Some(fix) = &k.fix {
                out.push_str(&format!("{pad}fix:    {fix}\n"));
            }
            for b in &k.blocked {
                out.push_str(&format!("{pad}blocked: {b}\n"));
            }
        }
        for n in &k.notes {
            out.push_str(&format!("{}note:   {n}\n", " ".repeat(17 + id_w)));
        }
    }
    out.push_str(&format!(
        "\n{} fail, {} warn, {} ok, {} n/a\n",
        audit.count(Verdict::Fail),
        audit.count(Verdict::Warn),
        audit.count(Verdict::Ok),
        audit.count(Verdict::NotApplicable)
    ));
    out
}

fn journal_path(common: &CommonArgs, root: &SysRoot) -> PathBuf {
    common
        .journal
        .clone()
        .unwrap_or_else(|| journal::default_path(root))
}

fn apply_cmd(a: ApplyArgs) -> Result<ExitCode> {
    let root = sysroot(&a.common.root)?;
    let jpath = journal_path(&a.common, &root);
    // Block the stop signals before changing anything: one arriving mid-apply
    // then waits until we can restore, instead of killing us half-way.
    let signals = stop_signals();
    if a.hold {
        signals.thread_block().context("blocking SIGINT/SIGTERM")?;
    }
    let audit = vmbench_isolate::audit(
        &root,
        &AuditOptions {
            cpus: a.cpus,
            noise_window: Duration::ZERO,
        },
    )?;
    let applied = apply::apply(&root, &audit, &a.skip, &jpath)?;
    let r = &applied.report;
    println!(
        "benchmark CPUs: {} ({}); housekeeping: {}",
        audit.cpus.bench, audit.cpus.source, audit.cpus.housekeeping
    );
    if r.applied.is_empty() {
        println!("nothing to change: every runtime knob already has its wanted value");
    }
    for c in &r.applied {
        println!("changed  {c}");
    }
    for u in &r.unmovable {
        println!("unmovable {u}");
    }
    for n in &applied.held.notes {
        println!("held     {n}");
    }
    let boot: Vec<_> = audit
        .knobs
        .iter()
        .filter(|k| k.class == vmbench_isolate::KnobClass::BootOnly && k.verdict != Verdict::Ok)
        .map(|k| k.id.as_str())
        .collect();
    if !boot.is_empty() {
        println!(
            "boot-only knobs not in place (see `vmbench isolate suggest`): {}",
            boot.join(", ")
        );
    }
    if !a.hold {
        let journal = applied.journal_path().display().to_string();
        let report = applied.keep();
        if !report.applied.is_empty() {
            println!(
                "journal  {journal}\nthe host stays tuned; undo with `vmbench isolate restore{}`",
                restore_args(&a.common)
            );
        }
        return Ok(ExitCode::SUCCESS);
    }
    println!("holding; send SIGINT (Ctrl-C) or SIGTERM to restore and exit");
    let _ = std::io::stdout().flush();
    let sig = signals.wait().context("waiting for a signal")?;
    println!("{sig}: restoring");
    let report = applied.restore()?;
    print_restore(&report);
    Ok(ExitCode::from(outcome::restore_status(&report).code()))
}

fn stop_signals() -> nix::sys::signal::SigSet {
    use nix::sys::signal::{SigSet, Signal};
    let mut s = SigSet::empty();
    s.add(Signal::SIGINT);
    s.add(Signal::SIGTERM);
    s.add(Signal::SIGHUP);
    s
}

fn restore_args(c: &CommonArgs) -> String {
    let mut s = String::new();
    if c.root != std::path::Path::new("/") {
        s.push_str(&format!(" --root {}", c.root.display()));
    }
    if let Some(j) = &c.journal {
        s.push_str(&format!(" --journal {}", j.display()));
    }
    s
}

fn print_restore(r: &RestoreReport) {
    for x in &r.restored {
        println!("restored {x}");
    }
    for n in &r.notes {
        println!("note     {n}");
    }
    for f in &r.failed {
        println!("FAILED   {f}");
    }
    println!(
        "{} restored, {} already original, {} failed",
        r.restored.len(),
        r.already_original,
        r.failed.len()
    );
}

fn restore_cmd(c: CommonArgs) -> Result<ExitCode> {
    let root = sysroot(&c.root)?;
    let jpath = journal_path(&c, &root);
    if !jpath.exists() {
        println!("no journal at {}: nothing to restore", jpath.display());
        return Ok(ExitCode::SUCCESS);
    }
    let report = apply::restore(&root, &jpath)?;
    print_restore(&report);
    if !report.failed.is_empty() {
        println!("the journal keeps what failed: {}", jpath.display());
    }
    Ok(ExitCode::from(outcome::restore_status(&report).code()))
}

fn suggest_cmd(a: SuggestArgs) -> Result<ExitCode> {
    let root = sysroot(&a.root)?;
    let cmdline =
        vmbench_isolate::cmdline::Cmdline::parse(&root.read("/proc/cmdline").unwrap_or_default());
    let cpus = vmbench_isolate::cpus::select(&root, &cmdline, a.cpus.as_ref())?;
    let s = vmbench_isolate::suggest::suggest(&root, &cpus);
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&s).context("serialising the suggestion")?
        );
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "# benchmark CPUs {}, housekeeping CPUs {}",
        s.bench_cpus, s.housekeeping_cpus
    );
    println!(
        "# add to the kernel command line, then reboot:\n{}\n",
        s.cmdline
    );
    let w = s.params.iter().map(|p| p.param.len()).max().unwrap_or(0);
    for p in &s.params {
        println!("#   {:<w$}  {}", p.param, p.why);
    }
    println!("\n{}\n\n{}", s.grub, s.nixos);
    println!(
        "\n# runtime knobs (governor, turbo, IRQs, ...) are set by `vmbench isolate apply --cpus {}`",
        s.bench_cpus
    );
    Ok(ExitCode::SUCCESS)
}
