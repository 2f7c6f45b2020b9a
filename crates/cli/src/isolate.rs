//! `vmbench isolate check | apply | restore | suggest`.

use crate::out;
use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use vmbench_host::{CpuList, SysRoot};
use vmbench_isolate::apply::{self, RestoreReport};
use vmbench_isolate::lock::HostLock;
use vmbench_isolate::{Audit, AuditOptions, Verdict};
use vmbench_isolate::{hold, journal};
use vmbench_run::outcome;

#[derive(Subcommand)]
pub enum IsolateCmd {
    /// Audit every isolation knob for the benchmark CPUs (read-only). Exit 1 if any fails.
    Check(CheckArgs),
    /// Apply the runtime knobs, journaling the original values first.
    Apply(ApplyArgs),
    /// Put back everything the journal lists (also after the applier was killed).
    Restore(RestoreArgs),
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
pub struct RestoreArgs {
    #[command(flatten)]
    common: CommonArgs,
    /// Restore even while another vmbench holds the host (its changes are
    /// then undone under it; it notices and says so in its report).
    #[arg(long)]
    force: bool,
}

#[derive(Args)]
pub struct CheckArgs {
    /// Benchmark CPUs, e.g. "2-3" [default: the isolated CPUs, else the last online CPU].
    #[arg(long, value_name = "LIST", value_parser = vmbench_host::CpuList::parse)]
    cpus: Option<CpuList>,
    /// Read /proc and /sys under DIR instead of / (fixture trees).
    #[arg(long, value_name = "DIR", default_value = "/")]
    root: PathBuf,
    /// How long to count interrupts and run the residual-noise detector on
    /// each benchmark CPU, 0 (not at all) to 600000 ms.
    #[arg(long, value_name = "MS", default_value_t = 500, value_parser = clap::value_parser!(u64).range(0..=600_000))]
    window_ms: u64,
    /// The shortest gap between two clock reads counted as noise, 1 to
    /// 1000 µs (5: the osnoise tracer's default, so figures compare with
    /// `rtla osnoise`).
    #[arg(long, value_name = "US", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=1000))]
    threshold_us: u64,
    #[command(flatten)]
    keep: KeepArgs,
    /// Print JSON (`vmbench report schema isolate-check`) instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct ApplyArgs {
    /// Benchmark CPUs, e.g. "2-3" [default: the isolated CPUs, else the last online CPU].
    #[arg(long, value_name = "LIST", value_parser = vmbench_host::CpuList::parse)]
    cpus: Option<CpuList>,
    #[command(flatten)]
    common: CommonArgs,
    /// Runtime knobs to leave alone (comma-separated ids from `check`).
    #[arg(long, value_name = "KNOB,...", value_delimiter = ',')]
    skip: Vec<vmbench_isolate::KnobId>,
    /// Stay running, holding /dev/cpu_dma_latency and the host lock, until
    /// SIGINT, SIGTERM, SIGHUP or SIGQUIT; then restore.
    #[arg(long)]
    hold: bool,
    #[command(flatten)]
    keep: KeepArgs,
}

/// Which threads thread_affinity leaves where they are.
#[derive(Args)]
pub struct KeepArgs {
    /// More threads to leave where they are: glob patterns (`*` matches any
    /// run of characters) matched against thread and process names, on top
    /// of the defaults (other VMs' QEMU processes and vCPU threads, DPDK and
    /// OVS polling threads).
    #[arg(long, value_name = "GLOB,...", value_delimiter = ',')]
    exclude_threads: Vec<String>,
    /// Move every thread, other VMs' and polling threads included (the
    /// default exclusion list is dropped; --exclude-threads still applies).
    #[arg(long)]
    move_all_threads: bool,
}

impl KeepArgs {
    fn exclusion(&self) -> vmbench_isolate::affinity::ThreadExclusion {
        vmbench_isolate::affinity::ThreadExclusion::with(
            self.move_all_threads,
            &self.exclude_threads,
        )
    }
}

#[derive(Args)]
pub struct SuggestArgs {
    /// Benchmark CPUs, e.g. "2-3" [default: the isolated CPUs, else the last online CPU].
    #[arg(long, value_name = "LIST", value_parser = vmbench_host::CpuList::parse)]
    cpus: Option<CpuList>,
    /// Read /proc and /sys under DIR instead of / (fixture trees).
    #[arg(long, value_name = "DIR", default_value = "/")]
    root: PathBuf,
    /// Print JSON (`vmbench report schema isolate-suggest`) instead of text.
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
            noise: vmbench_isolate::osnoise::NoiseSettings {
                window: Duration::from_millis(a.window_ms),
                threshold: Duration::from_micros(a.threshold_us),
            },
            threads: Default::default(),
            keep: a.keep.exclusion(),
        },
    )?;
    if a.json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&audit).context("serialising the audit")?
        )?;
    } else {
        out!("{}", render_audit(&audit))?;
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
    let id_w = audit
        .knobs
        .iter()
        .map(|k| k.id.name().len())
        .max()
        .unwrap_or(0);
    for k in &audit.knobs {
        out.push_str(&format!(
            "{:<4}  {:<7}  {:<id_w$}  {}\n",
            k.verdict.label(),
            k.class.label(),
            k.id.name(),
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

/// The command line, as the host lock records its holder.
fn command_line() -> String {
    std::env::args().collect::<Vec<_>>().join(" ")
}

fn apply_cmd(a: ApplyArgs) -> Result<ExitCode> {
    let root = sysroot(&a.common.root)?;
    let jpath = journal_path(&a.common, &root);
    let signals = hold::StopSignals::block()?;
    let lock = Arc::new(HostLock::acquire(&root, &command_line())?);
    let audit = vmbench_isolate::audit(
        &root,
        &AuditOptions {
            cpus: a.cpus,
            noise: vmbench_isolate::osnoise::NoiseSettings::window(Duration::ZERO),
            threads: Default::default(),
            keep: a.keep.exclusion(),
        },
    )?;
    let applied = apply::apply(Arc::new(root.clone()), &audit, &a.skip, &jpath, lock)?;
    if !a.hold {
        // The host stays tuned whatever becomes of the output below (a
        // closed pipe, `| true`): kept before anything is printed, so an
        // output error cannot roll the apply back behind a success.
        let journal = applied.journal_path().display().to_string();
        let notes = applied.held.notes.clone();
        let report = applied.keep();
        print_applied(&audit, &report, &notes)?;
        if !report.applied.is_empty() {
            outln!(
                "journal  {journal}\nthe host stays tuned; undo with `vmbench isolate restore{}`",
                restore_args(&a.common)
            )?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    print_applied(&audit, &applied.report, &applied.held.notes)?;
    outln!("holding; send SIGINT (Ctrl-C), SIGTERM, SIGHUP or SIGQUIT to restore and exit")?;
    out::flush()?;
    // Restoring with a closed terminal is fine: output errors wait until
    // the host is back.
    let (sig, report) = hold::hold_until_signal(applied, signals)?;
    outln!("{sig}: restored")?;
    print_restore(&report)?;
    Ok(ExitCode::from(outcome::restore_status(&report).code()))
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

/// What an apply changed, what it could not, and the boot-only knobs
/// still missing.
fn print_applied(
    audit: &vmbench_isolate::Audit,
    r: &apply::ApplyReport,
    held_notes: &[String],
) -> Result<(), out::OutputError> {
    outln!(
        "benchmark CPUs: {} ({}); housekeeping: {}",
        audit.cpus.bench,
        audit.cpus.source,
        audit.cpus.housekeeping
    )?;
    if r.applied.is_empty() {
        outln!("nothing to change: every runtime knob already has its wanted value")?;
    }
    // Moved threads are many: counted, not listed (the journal lists them).
    print_changes(
        "changed ",
        &r.applied,
        |c| c.describe(),
        "threads moved off the benchmark CPUs",
        r.threads_gone,
        "threads that exited before they could be moved",
    )?;
    for u in &r.unmovable {
        outln!("unmovable {u}")?;
    }
    for n in held_notes {
        outln!("held     {n}")?;
    }
    let boot: Vec<_> = audit
        .knobs
        .iter()
        .filter(|k| k.class == vmbench_isolate::KnobClass::BootOnly && k.verdict != Verdict::Ok)
        .map(|k| k.id.name())
        .collect();
    if !boot.is_empty() {
        outln!(
            "boot-only knobs not in place (see `vmbench isolate suggest`): {}",
            boot.join(", ")
        )?;
    }
    Ok(())
}

/// One line per change, except moved threads: hundreds of them, so
/// counted (the journal lists each), with those that had exited.
fn print_changes(
    verb: &str,
    changes: &[vmbench_isolate::apply::ChangeOutcome],
    line: fn(&vmbench_isolate::model::Change) -> String,
    threads_what: &str,
    gone: usize,
    gone_what: &str,
) -> Result<(), out::OutputError> {
    let (threads, rest): (Vec<_>, Vec<_>) = changes.iter().partition(|c| c.is_thread_move());
    for c in rest {
        outln!("{verb} {}", line(&c.change))?;
    }
    if !threads.is_empty() {
        outln!("{verb} {} {threads_what}", threads.len())?;
    }
    if gone > 0 {
        outln!("skipped  {gone} {gone_what}")?;
    }
    Ok(())
}

fn print_restore(r: &RestoreReport) -> Result<(), out::OutputError> {
    print_changes(
        "restored",
        &r.restored,
        |c| c.describe_restored(),
        "threads' affinities",
        r.threads_gone,
        "moved threads that exited before the restore",
    )?;
    for m in &r.inherited {
        outln!(
            "widened  thread {} ({}): cpus {} -> {} (started during isolation, inherited from {})",
            m.tid,
            m.comm,
            m.from,
            m.to,
            m.ancestor
        )?;
    }
    for n in &r.notes {
        outln!("note     {n}")?;
    }
    for f in &r.failed {
        outln!("FAILED   {f}")?;
    }
    outln!(
        "{} restored, {} already original, {} failed",
        r.restored.len(),
        r.already_original,
        r.failed.len()
    )
}

fn restore_cmd(a: RestoreArgs) -> Result<ExitCode> {
    let c = &a.common;
    let root = sysroot(&c.root)?;
    let jpath = journal_path(c, &root);
    // A second Ctrl-C while restoring then says what is left and exits.
    vmbench_host::signals::install();
    let lock = hold::RestoreLock::take(&root, &command_line(), a.force)?;
    if let hold::RestoreLock::Forced { holder, lock } = &lock {
        errln!("vmbench: WARNING: {holder} holds {lock}; restoring anyway (--force)");
    }
    let report = match lock.restore(&root, &jpath)? {
        hold::Restore::NoJournal { live_elsewhere } => {
            outln!("no journal at {}: nothing to restore", jpath.display())?;
            if let Some(active) = live_elsewhere {
                outln!(
                    "the host's live changes are journaled at {}: restore with --journal {}",
                    active.display(),
                    active.display()
                )?;
            }
            return Ok(ExitCode::SUCCESS);
        }
        hold::Restore::Done(report) => report,
    };
    print_restore(&report)?;
    if !report.failed.is_empty() {
        outln!("the journal keeps what failed: {}", jpath.display())?;
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
        outln!(
            "{}",
            serde_json::to_string_pretty(&s).context("serialising the suggestion")?
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        "# benchmark CPUs {}, housekeeping CPUs {}",
        s.bench_cpus,
        s.housekeeping_cpus
    )?;
    outln!(
        "# add to the kernel command line, then reboot:\n{}\n",
        s.cmdline
    )?;
    let w = s.params.iter().map(|p| p.param.len()).max().unwrap_or(0);
    for p in &s.params {
        outln!("#   {:<w$}  {}", p.param, p.why)?;
    }
    for n in &s.notes {
        outln!("# note: {n}")?;
    }
    outln!("\n{}\n\n{}\n\n{}", s.grub, s.nixos, s.systemd)?;
    outln!(
        "\n# runtime knobs (governor, turbo, IRQs, ...) are set by `vmbench isolate apply --cpus {}`",
        s.bench_cpus
    )?;
    Ok(ExitCode::SUCCESS)
}
