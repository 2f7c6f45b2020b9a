//! The knobs tuned's cpu-partitioning profile sets beyond the core ones:
//! every workqueue's cpumask, the machine-check polling timer, systemd's
//! CPUAffinity, and the threads already running on the benchmark CPUs
//! (irqbalance's banned CPUs are in [`super::irqbalance`]). Each is audited, planned, journaled and restored like
//! the knobs in [`crate::knobs`].

use super::ctx::{APPLY_HINT, Ctx, mask_knob, without_bench};
use crate::affinity::{self, Task};
use crate::model::{Change, KnobId, KnobReport, Verdict};
use vmbench_host::CpuList;

/// Where the per-workqueue masks are (each `WQ_SYSFS` workqueue has a
/// directory with a `cpumask`), and the mask of every unbound workqueue.
const WORKQUEUES: &str = "/sys/devices/virtual/workqueue";

/// Every workqueue's cpumask: the global unbound mask and each
/// `WQ_SYSFS` workqueue's own (writeback, blkcg_punt_bio, nvme-wq, ...).
pub(super) fn workqueues(ctx: &Ctx) -> KnobReport {
    let mut knob = KnobReport::new(KnobId::WorkqueueCpumask);
    knob.wanted = format!("housekeeping CPUs only ({}), every workqueue", ctx.hk());
    let mut paths = vec![format!("{WORKQUEUES}/cpumask")];
    for name in ctx.fs.list(WORKQUEUES).unwrap_or_default() {
        let p = format!("{WORKQUEUES}/{name}/cpumask");
        if ctx.fs.exists(&p) {
            paths.push(p);
        }
    }
    let refs: Vec<&str> = paths.iter().map(String::as_str).collect();
    mask_knob(ctx, &mut knob, &refs);
    knob
}

/// `ignore_ce` of every machine-check device: 1 stops the periodic poll of
/// the corrected-error banks (and CMCI) on every CPU.
pub(super) fn machinecheck(ctx: &Ctx) -> KnobReport {
    const DIR: &str = "/sys/devices/system/machinecheck";
    let mut knob = KnobReport::new(KnobId::MachinecheckIgnoreCe);
    knob.wanted = "ignore_ce = 1 (corrected errors not polled while benchmarking)".into();
    let mut found = Vec::new();
    for dev in ctx.fs.list(DIR).unwrap_or_default() {
        if !dev.starts_with("machinecheck") {
            continue;
        }
        let path = format!("{DIR}/{dev}/ignore_ce");
        let Some(raw) = ctx.read_present(&mut knob, &path) else {
            continue;
        };
        match raw.as_str() {
            "1" => {}
            "0" => {
                knob.verdict = Verdict::Warn;
                ctx.plan(&mut knob, &path, &raw, "1");
            }
            other => {
                knob.invalid = Some(format!("{path}: unexpected value {other:?} (0 or 1)"));
                knob.verdict = Verdict::Fail;
            }
        }
        found.push(raw);
    }
    if found.is_empty() {
        knob.verdict = Verdict::NotApplicable;
        knob.found = format!("{DIR} not present (no MCE support, or a VM without it)");
        return knob;
    }
    let zeros = found.iter().filter(|v| *v == "0").count();
    knob.found = format!(
        "ignore_ce = 0 on {zeros} of {} machinecheck devices",
        found.len()
    );
    if !knob.changes.is_empty() {
        knob.fix = Some(APPLY_HINT.into());
    }
    knob
}

pub(super) fn has_systemctl() -> bool {
    std::path::Path::new("/bin/systemctl").exists()
        || std::path::Path::new("/usr/bin/systemctl").exists()
}

/// The last `CPUAffinity=` of systemd's manager configuration, with the file
/// it is in (drop-ins are read after the main file, in name order).
fn systemd_affinity(ctx: &Ctx) -> Option<(String, String)> {
    const MAIN: &str = "/etc/systemd/system.conf";
    const DROPINS: &str = "/etc/systemd/system.conf.d";
    let mut files = vec![MAIN.to_string()];
    let mut dropins: Vec<String> = ctx
        .fs
        .list(DROPINS)
        .unwrap_or_default()
        .into_iter()
        .filter(|n| n.ends_with(".conf"))
        .map(|n| format!("{DROPINS}/{n}"))
        .collect();
    dropins.sort();
    files.extend(dropins);
    let mut found = None;
    for f in files {
        let Ok(text) = ctx.fs.read(&f) else { continue };
        for line in text.lines() {
            if let Some(v) = line.trim_start().strip_prefix("CPUAffinity=") {
                found = Some((v.trim().to_string(), f.clone()));
            }
        }
    }
    found
}

/// systemd's `CPUAffinity=`: the affinity every service starts with. Read
/// by systemd at boot, so audited and advised like the kernel cmdline; the
/// threads already running are moved by [`threads`].
pub(super) fn systemd_cpu_affinity(ctx: &Ctx) -> KnobReport {
    let mut knob = KnobReport::new(KnobId::SystemdCpuAffinity);
    knob.wanted = format!(
        "CPUAffinity={} in /etc/systemd/system.conf [Manager]",
        ctx.hk()
    );
    let fix = format!(
        "set CPUAffinity={} under [Manager] in /etc/systemd/system.conf and reboot (tuned does the same); until then `vmbench isolate apply` moves the threads already running (thread_affinity)",
        ctx.hk()
    );
    let systemd = ctx.read("/proc/1/comm").is_ok_and(|c| c == "systemd");
    match systemd_affinity(ctx) {
        _ if !systemd => {
            knob.verdict = Verdict::NotApplicable;
            knob.found = "systemd is not PID 1 here".into();
        }
        None => {
            knob.verdict = Verdict::Warn;
            knob.found = "not set (services may run on every CPU)".into();
            knob.fix = Some(fix);
        }
        Some((value, file)) => match CpuList::parse(&value.replace(' ', ",")) {
            Ok(cpus) if cpus.intersection(ctx.bench()).is_empty() => {
                knob.found = format!("CPUAffinity={value} ({file})");
            }
            Ok(_) => {
                knob.verdict = Verdict::Warn;
                knob.found = format!("CPUAffinity={value} ({file}) includes benchmark CPUs");
                knob.fix = Some(fix);
            }
            Err(e) => {
                knob.verdict = Verdict::Warn;
                knob.found = format!("CPUAffinity={value} ({file}): {e}");
                knob.fix = Some(fix);
            }
        },
    }
    knob
}

/// The threads that may run on the benchmark CPUs, moved to the rest of
/// their mask (or to the housekeeping CPUs when nothing is left), as tuned
/// does at profile activation. Per-CPU kernel threads the kernel will not
/// move are counted, not touched; so are vmbench's own threads, which the
/// run places itself.
pub(super) fn threads(ctx: &Ctx) -> KnobReport {
    let mut knob = KnobReport::new(KnobId::ThreadAffinity);
    knob.wanted = format!(
        "no movable thread allowed on the benchmark CPUs ({})",
        ctx.bench()
    );
    let me = ctx.live.then(std::process::id);
    let all = affinity::tasks(ctx.fs, &ctx.threads);
    let process_name: std::collections::BTreeMap<u32, &str> = all
        .iter()
        .filter(|t| t.tid == t.pid)
        .map(|t| (t.pid, t.comm.as_str()))
        .collect();
    let mut kept: Vec<String> = Vec::new();
    let on_bench: Vec<&Task> = all
        .iter()
        .filter(|t| !t.allowed.intersection(ctx.bench()).is_empty())
        .filter(|t| Some(t.pid) != me)
        .filter(|t| {
            let process = process_name.get(&t.pid).copied().unwrap_or("");
            match ctx.keep.matching(&t.comm, process) {
                Some(pattern) => {
                    kept.push(format!("{} {} ({pattern})", t.tid, t.comm));
                    false
                }
                None => true,
            }
        })
        .collect();
    if !kept.is_empty() {
        knob.notes.push(format!(
            "left where they are (exclusion list; `--move-all-threads`, or `isolation.move_all_threads: true` in a run's config, moves them too): {}",
            super::ctx::short_names(&kept)
        ));
    }
    let (kernel_pinned, movable): (Vec<&Task>, Vec<&Task>) =
        on_bench.iter().partition(|t| t.pinned_by_kernel);
    if all.is_empty() {
        knob.verdict = Verdict::NotApplicable;
        knob.found = "no thread could be read under /proc".into();
        return knob;
    }
    let kernel = movable.iter().filter(|t| t.kernel).count();
    knob.found = format!(
        "{} of {} threads may run on the benchmark CPUs ({kernel} of them kernel threads); {} per-CPU kernel threads stay (the kernel does not move them)",
        movable.len(),
        all.len(),
        kernel_pinned.len()
    );
    if movable.is_empty() {
        return knob;
    }
    knob.verdict = Verdict::Warn;
    knob.fix = Some(APPLY_HINT.into());
    if ctx.live && !nix::unistd::geteuid().is_root() {
        knob.blocked
            .push("moving other users' threads needs root (CAP_SYS_NICE)".into());
    }
    for t in movable {
        let target = without_bench(ctx, &t.allowed);
        knob.changes.push(Change::Affinity {
            pid: t.pid,
            tid: t.tid,
            comm: t.comm.clone(),
            start_time: t.start_time,
            original: t.allowed_raw.clone(),
            target: target.to_string(),
        });
    }
    knob
}
