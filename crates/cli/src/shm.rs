//! `vmbench shm`: the shared-memory suite (loopback, one role each, or in a VM).

use crate::vm::GuestArgs;
use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};
use vmbench_proto::{HostEnd, MappedRegion};
use vmbench_results::Results;
use vmbench_run::drive::{DriveError, ShmRequest};
use vmbench_run::{BootRequest, GuestLauncher, Silent, VmLauncher};
use vmbench_shm::host::{self, HostRun, Plan};
use vmbench_shm::loopback::{self, LoopbackOptions};

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ShmArgs {
    #[command(subcommand)]
    role: Option<ShmRole>,
    /// Run both ends as host processes on two pinned CPUs (the physical reference).
    #[arg(long)]
    loopback: bool,
    /// CPUs for the loopback: host end, guest end (default: the last two this process may use).
    #[arg(long, value_name = "A,B", value_delimiter = ',')]
    cpus: Vec<usize>,
    /// Size of the loopback's shared file in MiB (4K frames need 128).
    #[arg(long, value_name = "MIB", default_value_t = 128)]
    region_mib: usize,
    /// Skip the eventfd doorbell round trip.
    #[arg(long)]
    no_doorbell: bool,
    #[command(flatten)]
    out: OutputArgs,
}

#[derive(Args, Clone)]
pub struct OutputArgs {
    /// Fewer samples: every measurement, in seconds instead of minutes.
    #[arg(long)]
    pub quick: bool,
    /// Print JSON (the results model) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Write one summary line per measurement to FILE.
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
    /// Write every raw sample (id,ticks) to FILE.
    #[arg(long, value_name = "FILE")]
    pub raw_csv: Option<PathBuf>,
}

#[derive(Subcommand)]
enum ShmRole {
    /// The host end over a shared file; a `vmbench shm guest` may start before or after it.
    Host {
        /// The shared file both ends map (created if absent).
        #[arg(long, value_name = "FILE")]
        path: PathBuf,
        /// Its size in MiB (4K frames need 128).
        #[arg(long, value_name = "MIB", default_value_t = 128)]
        region_mib: usize,
        /// Seconds to wait for the guest end.
        #[arg(long, value_name = "S", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400))]
        wait: u64,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// The guest end over a shared file (inside a VM the agent plays it).
    Guest {
        /// The shared file the host end maps.
        #[arg(long, value_name = "FILE")]
        path: PathBuf,
        /// Pin to this CPU.
        #[arg(long, value_name = "N")]
        cpu: Option<usize>,
        /// Inherited eventfds: ring,wait (the loopback passes them).
        #[arg(long, value_name = "TX,RX", value_delimiter = ',')]
        doorbell_fds: Vec<i32>,
        /// Seconds to wait for the file, a host session, and each command.
        #[arg(long, value_name = "S", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=86_400))]
        wait: u64,
        /// Exit when this process is no longer the parent (the loopback passes its pid).
        #[arg(long, value_name = "PID", hide = true)]
        parent_pid: Option<u32>,
    },
    /// Boot the guest and run the suite against its agent over ivshmem.
    Vm {
        #[command(flatten)]
        guest: GuestArgs,
        /// Pin vCPU i to the i-th CPU of LIST and QEMU's other threads to the rest.
        #[arg(long, value_name = "LIST", value_parser = vmbench_host::CpuList::parse)]
        pin_cpus: Option<vmbench_host::CpuList>,
        /// Skip the UC and WC comparison arms.
        #[arg(long)]
        no_arms: bool,
        #[command(flatten)]
        out: OutputArgs,
    },
}

pub fn shm_cmd(a: ShmArgs) -> Result<ExitCode> {
    // The guest end keeps the default signal actions: it changes nothing,
    // and a signal should simply end it.
    if let Some(ShmRole::Guest {
        path,
        cpu,
        doorbell_fds,
        wait,
        parent_pid,
    }) = &a.role
    {
        return guest_role(
            path,
            *cpu,
            doorbell_fds,
            Duration::from_secs(*wait),
            *parent_pid,
        );
    }
    let interrupt = crate::interrupt_flag();
    match a.role {
        Some(ShmRole::Guest { .. }) => unreachable!("handled above"),
        Some(ShmRole::Host {
            path,
            region_mib,
            wait,
            out,
        }) => host_role(
            &path,
            region_mib,
            Duration::from_secs(wait),
            &out,
            &interrupt,
        ),
        Some(ShmRole::Vm {
            guest,
            pin_cpus,
            no_arms,
            out,
        }) => vm_role(&guest, pin_cpus.as_ref(), !no_arms, &out, interrupt),
        None if a.loopback => loopback_cmd(&a, &interrupt),
        None => bail!(
            "say which: `vmbench shm --loopback` (both ends here), `vmbench shm vm` (against a guest), or `vmbench shm host|guest --path FILE`"
        ),
    }
}

fn plan(out: &OutputArgs, tsc_khz: f64) -> Plan {
    let mut p = if out.quick {
        Plan::quick(tsc_khz)
    } else {
        Plan::full(tsc_khz)
    };
    p.keep_raw = out.raw_csv.is_some();
    p
}

fn tsc_khz() -> Result<f64> {
    vmbench_host::tsc::host_khz()
        .context("the host TSC frequency is unknown (CPUID 15H absent and calibration failed): no ticks→ns conversion possible")
}

fn loopback_cmd(a: &ShmArgs, interrupt: &AtomicBool) -> Result<ExitCode> {
    let cpus = loopback::cpus(&a.cpus)?;
    let region_bytes = vmbench_proto::region_bytes(a.region_mib as u64)?;
    let o = LoopbackOptions {
        exe: std::env::current_exe().context("finding the vmbench binary")?,
        cpus,
        region_bytes,
        dir: loopback::default_dir(),
        doorbell: !a.no_doorbell,
        plan: plan(&a.out, tsc_khz()?),
    };
    if !a.out.json {
        errln!(
            "shm loopback: host end on CPU {}, guest end on CPU {}, {} MiB in {}",
            cpus.0,
            cpus.1,
            a.region_mib,
            o.dir.display()
        );
    }
    let (mut run, outcome) = loopback::run(&o, interrupt);
    run.note_counters();
    finish(
        run,
        outcome.map_err(|e| DriveError::Suite(e.into())),
        &a.out,
        "loopback (two host processes, no VM)",
        vmbench_publish::csv::Setting {
            accel: "none",
            guest: "loopback (host process)",
        },
    )
}

fn host_role(
    path: &Path,
    region_mib: usize,
    wait: Duration,
    out: &OutputArgs,
    interrupt: &AtomicBool,
) -> Result<ExitCode> {
    let bytes = vmbench_proto::region_bytes(region_mib as u64)?;
    let (_file, mapped) = MappedRegion::create_file(path, bytes)
        .with_context(|| format!("creating the shared file {}", path.display()))?;
    // The file is ours (created new): it goes when we do, however we end.
    struct RemoveOnExit<'p>(&'p Path);
    impl Drop for RemoveOnExit<'_> {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(self.0);
        }
    }
    let _remove = RemoveOnExit(path);
    let r = mapped.region();
    let mut host = HostEnd::start(r);
    let mut abort = || {
        interrupt
            .load(std::sync::atomic::Ordering::Relaxed)
            .then(|| "interrupted".to_string())
    };
    host.wait_ready(r, Instant::now() + wait, &mut abort)
        .context("waiting for `vmbench shm guest` to attach")?;
    let p = plan(out, tsc_khz()?);
    let (mut run, outcome) = host::run_and_close(r, &mut host, &p, None, &mut abort, false);
    run.note_counters();
    finish(
        run,
        outcome.map_err(|e| DriveError::Suite(e.into())),
        out,
        "two processes over a shared file",
        vmbench_publish::csv::Setting {
            accel: "none",
            guest: "shm guest (host process)",
        },
    )
}

fn guest_role(
    path: &Path,
    cpu: Option<usize>,
    fds: &[i32],
    wait: Duration,
    parent: Option<u32>,
) -> Result<ExitCode> {
    // Started by a loopback that died before our death signal was armed.
    let orphaned = move || {
        parent
            .filter(|p| nix::unistd::getppid().as_raw() != *p as i32)
            .map(|p| format!("the loopback (pid {p}) that started this guest end is gone"))
    };
    if let Some(why) = orphaned() {
        bail!("{why}");
    }
    if let Some(c) = cpu {
        vmbench_shm::reference::pin_current_thread(c)?;
    }
    let mapped = vmbench_shm::guest::attach_shared_file(path, wait)?;
    let mut pair = match fds {
        // SAFETY: the parent passed these descriptors for this purpose;
        // nothing else in this process uses or closes them.
        [tx, rx] => Some(
            unsafe { vmbench_shm::eventfd::EventFdPair::from_inherited(*tx, *rx) }
                .context("--doorbell-fds")?,
        ),
        [] => None,
        other => bail!("--doorbell-fds takes two descriptors (ring, wait), got {other:?}"),
    };
    let db = pair.as_mut().map(|p| p as &mut dyn vmbench_shm::Doorbell);
    vmbench_shm::guest::serve_commands(
        mapped.region(),
        db,
        wait,
        &mut |m| errln!("vmbench shm guest: {m}"),
        &mut { orphaned },
    )?;
    Ok(ExitCode::SUCCESS)
}

fn vm_role(
    g: &GuestArgs,
    pin: Option<&vmbench_host::CpuList>,
    arms: bool,
    out: &OutputArgs,
    interrupt: Arc<AtomicBool>,
) -> Result<ExitCode> {
    let mut launcher = VmLauncher::new(g.settings(), Some(interrupt.clone()));
    let request = BootRequest::shm_suite(g.doorbell_vectors.is_some());
    let mut session = launcher.boot(&request, &Silent)?;
    if let Some(w) = session.accel_notice() {
        errln!("vmbench: WARNING: {w}");
    }
    let accel = session.accel();
    let pinning = match pin {
        Some(cpus) => Some(session.pin(cpus)?),
        None => None,
    };
    let mut plan = plan(out, tsc_khz()?);
    plan.ref_cpus = pinning.as_ref().and_then(|pins| pins.reference_cpus());
    let shm = ShmRequest {
        plan,
        arms,
        pin,
        vendor: vmbench_host::cpuinfo::vendor(&vmbench_host::SysRoot::host()),
    };
    let outcome = vmbench_run::drive::shm(session, &mut launcher, &shm, &interrupt, &Silent);
    let mut run = outcome.run;
    vmbench_run::outcome::label_accel(&mut run.results, accel);
    finish(
        run,
        outcome.suite.and(outcome.arms),
        out,
        &format!("VM ({})", accel.name()),
        vmbench_publish::csv::Setting {
            accel: accel.name(),
            guest: "linux",
        },
    )
}

/// Prints, writes CSVs; a failure mid-suite still prints what was
/// measured, then the error.
fn finish(
    run: HostRun,
    outcome: std::result::Result<(), DriveError>,
    out: &OutputArgs,
    setting: &str,
    csv: vmbench_publish::csv::Setting<'_>,
) -> Result<ExitCode> {
    if let Some(p) = &out.csv {
        crate::vmexit::write_csv(p, &run.results.measurements, csv)
            .with_context(|| format!("writing {}", p.display()))?;
    }
    if let Some(p) = &out.raw_csv {
        write_raw(p, &run).with_context(|| format!("writing {}", p.display()))?;
    }
    let status = vmbench_run::outcome::shm_status(&run.results, outcome.as_ref().err());
    if out.json {
        let v = crate::output::ShmOutput {
            schema_version: crate::output::SHM_SCHEMA_VERSION,
            setting: setting.to_string(),
            results: run.results,
            guest: run.guest,
            error: outcome.as_ref().err().map(|e| vmbench_shm::describe(e)),
        };
        outln!("{}", serde_json::to_string_pretty(&v)?)?;
    } else {
        out!("{}", render_table(&run.results, setting))?;
    }
    if let Err(e) = &outcome {
        errln!("vmbench: error: {}", vmbench_shm::describe(e));
        errln!("vmbench: the measurements above were completed before the error");
    }
    Ok(ExitCode::from(status.code()))
}

/// `--raw-csv`: every sample, written through a temporary file in the
/// target's directory and renamed over it (never through a link planted
/// at the name).
fn write_raw(path: &Path, run: &HostRun) -> Result<(), vmbench_host::files::FileError> {
    use std::fmt::Write as _;
    let mut text = String::from("id,tsc_ticks\n");
    for (id, v) in &run.raw {
        for x in v {
            let _ = writeln!(text, "{id},{x}");
        }
    }
    vmbench_host::files::write_named(path, text.as_bytes())
}

fn gbps(m: &vmbench_results::Measurement) -> String {
    if m.beats_its_reference() {
        return "!ref".into();
    }
    m.p50_bytes_per_sec()
        .map_or("-".into(), |b| format!("{:.2}", b / 1e9))
}

/// The round trips against their references, one line each: what the
/// table's numbers say about the protocol.
fn round_trip_lines(r: &Results) -> Vec<String> {
    let find = |id: &str| r.measurements.iter().find(|m| m.id == id);
    let mut lines = Vec::new();
    for (id, what) in [
        ("shm.rtt.poll", "polling round trip, no PAUSE"),
        ("shm.rtt.poll-pause", "polling round trip, PAUSE"),
        ("shm.rtt.doorbell", "doorbell round trip"),
    ] {
        let Some(m) = find(id) else { continue };
        let Some(reference) = m.reference.as_ref().and_then(|rid| find(rid.as_str())) else {
            continue;
        };
        let Some((mine, theirs)) = m.compared_ns(reference) else {
            continue;
        };
        let how = if m.batch_mean.is_some() && reference.batch_mean.is_some() {
            "batch means"
        } else {
            "p50s"
        };
        let mut line = format!(
            "{what}: {mine:.1} ns = {:.2} × {} {theirs:.1} ns ({how}, same run)",
            mine / theirs,
            reference.id
        );
        if let (Some(net), Some(ovh)) = (&m.overhead_subtracted, m.overhead_p50)
            && let (Some(p50), Some(p99), Some(ovh)) =
                (m.ns(net.p50 as f64), m.ns(net.p99 as f64), m.ns(ovh as f64))
        {
            let _ = std::fmt::Write::write_fmt(
                &mut line,
                format_args!(
                    "; one round trip alone: p50 {p50:.0} ns, p99 {p99:.0} ns without the timer's {ovh:.0} ns"
                ),
            );
        }
        lines.push(line);
    }
    lines
}

/// The suite as a plain-text table (ns from the host TSC frequency).
pub fn render_table(r: &Results, setting: &str) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(s, "shared-memory suite: {setting}");
    for w in &r.warnings {
        let _ = writeln!(s, "WARNING: {w}");
    }
    let _ = writeln!(
        s,
        "{:<44} {:>6} {:>10} {:>10} {:>10} {:>10} {:>9} {:>8} {:>8}",
        "measurement",
        "N",
        "p50 ns",
        "p99 ns",
        "p99.9 ns",
        "max ns",
        "batch ns",
        "GB/s@p50",
        "vs ref"
    );
    for m in &r.measurements {
        let ns = |t: u64| m.ns(t as f64).map_or("-".into(), |v| format!("{v:.0}"));
        let vs = r
            .reference_ratio(m)
            .map_or("-".into(), |x| format!("{x:.2}x"));
        let batch = m
            .batch_mean
            .and_then(|b| m.ns(b))
            .map_or("-".into(), |v| format!("{v:.1}"));
        let _ = writeln!(
            s,
            "{:<44} {:>6} {:>10} {:>10} {:>10} {:>10} {:>9} {:>8} {:>8}",
            m.id,
            m.summary.n,
            ns(m.summary.p50),
            ns(m.summary.p99),
            ns(m.summary.p999),
            ns(m.summary.max),
            batch,
            gbps(m),
            vs
        );
    }
    for k in &r.skipped {
        let _ = writeln!(s, "{:<44} skipped: {}", k.id, k.reason);
    }
    let _ = writeln!(
        s,
        "\n'batch ns' = the median over the run's batches of the mean per round trip of a back-to-back batch timed as a whole (no timestamp per round trip); 'vs ref' = time / time of the physical reference measured in this run: batch means where both have one, else p50s, each without the timer's own cost (1.00x = as fast as the bare hardware path); GB/s over the p50 time; '!ref' = faster than its reference: not a bandwidth."
    );
    for line in round_trip_lines(r) {
        let _ = writeln!(s, "{line}");
    }
    for c in &r.checks {
        let _ = writeln!(
            s,
            "[{}] {}: {} — {}",
            if c.passed { "PASS" } else { "FAIL" },
            c.id,
            c.statement,
            c.observed
        );
    }
    s
}
