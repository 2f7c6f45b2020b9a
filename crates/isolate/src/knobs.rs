//! The knob catalogue: each function audits one knob for the chosen CPUs and,
//! for runtime knobs, plans the writes that would fix it.

use crate::cmdline::{Cmdline, RcuNocbs};
use crate::model::{Change, CpuSelection, KnobClass, KnobReport, Verdict};
use crate::noise;
use crate::sysfs::Sysfs;
use std::time::Duration;
use vmbench_host::power::{self, BoostControl};
use vmbench_host::{CpuList, ReadError};

/// Everything a knob needs to judge itself.
pub struct Ctx<'a> {
    /// /proc and /sys.
    pub fs: &'a dyn Sysfs,
    /// The kernel command line.
    pub cmdline: Cmdline,
    /// The benchmark and housekeeping CPUs.
    pub cpus: CpuSelection,
    /// Bits in an IRQ affinity mask (the highest possible CPU + 1).
    pub mask_width: u32,
    /// Probing the running machine (root is `/`): services, rlimits.
    pub live: bool,
    /// How long to count interrupts on the benchmark CPUs.
    pub noise_window: Duration,
}

impl Ctx<'_> {
    fn bench(&self) -> &CpuList {
        &self.cpus.bench
    }
    fn hk(&self) -> &CpuList {
        &self.cpus.housekeeping
    }
    fn read(&self, path: &str) -> Result<String, ReadError> {
        self.fs.read(path).map(|s| s.trim().to_string())
    }
    /// Plans a write of `target` to `path`, recording the current content.
    fn plan(&self, k: &mut KnobReport, path: &str, original: &str, target: &str) {
        let raw = self.fs.root().read_raw(path).unwrap_or_default();
        if let Err(why) = self.fs.writable(path) {
            k.blocked.push(why.to_string());
        }
        k.changes.push(Change::File {
            path: path.to_string(),
            original_raw: raw,
            original: original.to_string(),
            target: target.to_string(),
        });
    }
}

fn suggest_hint(ctx: &Ctx) -> String {
    format!("see `vmbench isolate suggest --cpus {}`", ctx.bench())
}

fn add_to_cmdline(ctx: &Ctx, param: &str) -> String {
    format!(
        "add {param}={} to the kernel cmdline and reboot ({})",
        ctx.bench(),
        suggest_hint(ctx)
    )
}

const APPLY_HINT: &str = "`vmbench isolate apply` sets it (and restore puts it back)";

/// All knobs in audit order; runtime knobs in the order apply writes them
/// (governor before turbo: setting the governor can reset no_turbo).
pub fn audit_all(ctx: &Ctx) -> Vec<KnobReport> {
    vec![
        isolcpus(ctx),
        nohz_full(ctx),
        rcu_nocbs(ctx),
        irqaffinity(ctx),
        smt(ctx),
        pstate_mode(ctx),
        clocksource(ctx),
        governor(ctx),
        min_freq(ctx),
        boost(ctx),
        irqbalance(ctx),
        default_irq_affinity(ctx),
        irq_affinity(ctx),
        workqueue(ctx),
        sysctl(
            ctx,
            "timer_migration",
            "/proc/sys/kernel/timer_migration",
            Want::Eq(0),
            "timers armed on a benchmark CPU can be migrated to it from idle CPUs; 0 keeps them where they were armed",
        ),
        sysctl(
            ctx,
            "numa_balancing",
            "/proc/sys/kernel/numa_balancing",
            Want::Eq(0),
            "automatic NUMA balancing unmaps guest pages to sample accesses: page faults and migrations inside the timed loop",
        ),
        sysctl(
            ctx,
            "sched_rt_runtime_us",
            "/proc/sys/kernel/sched_rt_runtime_us",
            Want::Eq(-1),
            "RT throttling takes the CPU from a SCHED_FIFO vCPU thread for 50 ms of every second",
        ),
        sysctl(
            ctx,
            "stat_interval",
            "/proc/sys/vm/stat_interval",
            Want::AtLeast(10),
            "vmstat refresh runs per-CPU work every interval (seconds); longer means fewer interruptions",
        ),
        sysctl(
            ctx,
            "nmi_watchdog",
            "/proc/sys/kernel/nmi_watchdog",
            Want::Eq(0),
            "the hard-lockup detector takes a perf NMI on every CPU periodically",
        ),
        sysctl(
            ctx,
            "watchdog",
            "/proc/sys/kernel/watchdog",
            Want::Eq(0),
            "the soft-lockup detector wakes a per-CPU thread every few seconds",
        ),
        thp(ctx),
        ksm(ctx),
        cpu_dma_latency(ctx),
        memlock(ctx),
        interrupts_seen(ctx),
        runnable_seen(ctx),
    ]
}

// ---------------------------------------------------------------- boot-only

fn isolcpus(ctx: &Ctx) -> KnobReport {
    let mut k = KnobReport::new(
        "isolcpus",
        KnobClass::BootOnly,
        "keeps the scheduler's load balancer and unrelated tasks off the benchmark CPUs",
    );
    k.wanted = format!(
        "isolcpus=managed_irq,domain,{} (or a cgroup v2 isolated partition)",
        ctx.bench()
    );
    let sys = ctx
        .read("/sys/devices/system/cpu/isolated")
        .ok()
        .and_then(|t| CpuList::parse(&t).ok());
    let cg = ctx
        .read("/sys/fs/cgroup/cpuset.cpus.isolated")
        .ok()
        .and_then(|t| CpuList::parse(&t).ok())
        .unwrap_or_default();
    let cmd = match ctx.cmdline.isolcpus() {
        Ok(c) => c,
        Err(e) => {
            k.verdict = Verdict::Fail;
            k.found = format!("malformed isolcpus= on the cmdline: {e}");
            k.fix = Some(suggest_hint(ctx));
            return k;
        }
    };
    let domain = match (&sys, &cmd) {
        (Some(s), _) => s.clone(),
        (None, Some(c)) if c.has_domain() => c.cpus.clone(),
        _ => CpuList::new(),
    };
    let isolated = domain.union(&cg);
    k.found = match &cmd {
        Some(c) if c.flags.is_empty() => format!("isolcpus={}", c.cpus),
        Some(c) => format!("isolcpus={},{}", c.flags.join(","), c.cpus),
        None => "no isolcpus=".into(),
    };
    if !cg.is_empty() {
        k.found
            .push_str(&format!("; cgroup isolated partition: {cg}"));
    }
    if ctx.cmdline.count("isolcpus") > 1 {
        k.notes
            .push("isolcpus= appears more than once; the last one is used".into());
    }
    let missing = ctx.bench().difference(&isolated);
    if !missing.is_empty() {
        k.verdict = Verdict::Fail;
        k.fix = Some(format!(
            "add isolcpus=managed_irq,domain,{} to the kernel cmdline and reboot ({}); cpu {} is not isolated",
            ctx.bench(),
            suggest_hint(ctx),
            missing
        ));
    } else if !cmd.as_ref().is_some_and(|c| c.has_managed_irq()) && cg.is_empty() {
        k.verdict = Verdict::Warn;
        k.fix =
            Some("add the managed_irq flag so managed device interrupts avoid these CPUs".into());
    }
    k
}

/// A CPU list a sysfs file holds that could not be read.
#[derive(Debug, thiserror::Error)]
enum UnreadableList {
    #[error(transparent)]
    Read(vmbench_host::ReadError),
    #[error(transparent)]
    Parse(vmbench_host::CpuListError),
}

/// The CPU list in a sysfs file; None when the file does not exist.
fn sysfs_cpulist(ctx: &Ctx, path: &str) -> Option<Result<CpuList, UnreadableList>> {
    match ctx.read(path) {
        Ok(t) => Some(CpuList::parse(&t).map_err(UnreadableList::Parse)),
        Err(e) if e.is_missing() => None,
        Err(e) => Some(Err(UnreadableList::Read(e))),
    }
}

fn nohz_set(ctx: &Ctx) -> CpuList {
    match sysfs_cpulist(ctx, "/sys/devices/system/cpu/nohz_full") {
        Some(Ok(l)) => l,
        _ => CpuList::new(),
    }
}

fn nohz_full(ctx: &Ctx) -> KnobReport {
    let mut k = KnobReport::new(
        "nohz_full",
        KnobClass::BootOnly,
        "stops the scheduler tick on a CPU running one task: no timer interrupt in the middle of a sample",
    );
    k.wanted = format!("nohz_full={}", ctx.bench());
    match sysfs_cpulist(ctx, "/sys/devices/system/cpu/nohz_full") {
        None => {
            k.verdict = Verdict::Warn;
            k.found =
                "kernel without CONFIG_NO_HZ_FULL (no /sys/devices/system/cpu/nohz_full)".into();
            k.fix = Some("boot a kernel built with CONFIG_NO_HZ_FULL=y".into());
        }
        Some(Err(e)) => {
            k.verdict = Verdict::Warn;
            k.found = format!("unreadable: {e}");
        }
        Some(Ok(set)) => {
            k.found = if set.is_empty() {
                "none (null)".into()
            } else {
                format!("nohz_full={set}")
            };
            if !ctx.bench().is_subset(&set) {
                k.verdict = Verdict::Warn;
                k.fix = Some(add_to_cmdline(ctx, "nohz_full"));
            }
        }
    }
    k
}

fn rcu_nocbs(ctx: &Ctx) -> KnobReport {
    let mut k = KnobReport::new(
        "rcu_nocbs",
        KnobClass::BootOnly,
        "offloads RCU callbacks from the benchmark CPUs to kthreads on housekeeping CPUs",
    );
    k.wanted = format!("rcu_nocbs={} (nohz_full implies it)", ctx.bench());
    let nohz = nohz_set(ctx);
    let set = match ctx.cmdline.rcu_nocbs() {
        Err(e) => {
            k.verdict = Verdict::Warn;
            k.found = format!("malformed rcu_nocbs=: {e}");
            return k;
        }
        Ok(Some(RcuNocbs::All)) => {
            k.found = "rcu_nocbs=all".into();
            ctx.cpus.online.clone()
        }
        Ok(Some(RcuNocbs::Cpus(l))) => {
            k.found = if l.is_empty() {
                "rcu_nocbs (no CPU offloaded at boot)".into()
            } else {
                format!("rcu_nocbs={l}")
            };
            l
        }
        Ok(None) => {
            k.found = "no rcu_nocbs=".into();
            CpuList::new()
        }
    };
    if !nohz.is_empty() {
        k.found
            .push_str(&format!("; nohz_full={nohz} (implies offload)"));
    }
    if !ctx.bench().is_subset(&set.union(&nohz)) {
        k.verdict = Verdict::Warn;
        k.fix = Some(add_to_cmdline(ctx, "rcu_nocbs"));
    }
    k
}

fn irqaffinity(ctx: &Ctx) -> KnobReport {
    let mut k = KnobReport::new(
        "irqaffinity",
        KnobClass::BootOnly,
        "the boot-time default affinity of interrupts; keeps device IRQs off the benchmark CPUs from boot on",
    );
    k.wanted = format!("irqaffinity={}", ctx.hk());
    match ctx.cmdline.cpulist("irqaffinity") {
        Err(e) => {
            k.verdict = Verdict::Warn;
            k.found = format!("malformed irqaffinity=: {e}");
        }
        Ok(None) => {
            k.verdict = Verdict::Warn;
            k.found = "no irqaffinity=".into();
            k.fix = Some(format!(
                "add irqaffinity={} to the cmdline; until then apply moves existing IRQs and sets default_smp_affinity",
                ctx.hk()
            ));
        }
        Ok(Some(l)) => {
            k.found = format!("irqaffinity={l}");
            let overlap = l.intersection(ctx.bench());
            if !overlap.is_empty() {
                k.verdict = Verdict::Warn;
                k.fix = Some(format!(
                    "irqaffinity= includes benchmark CPU(s) {overlap}: use irqaffinity={}",
                    ctx.hk()
                ));
            }
        }
    }
    k
}

fn smt(ctx: &Ctx) -> KnobReport {
    let mut k = KnobReport::new(
        "smt",
        KnobClass::BootOnly,
        "an SMT sibling shares the core's pipeline, caches and TLB with the benchmark CPU",
    );
    k.wanted = "no online SMT sibling of a benchmark CPU (nosmt, or siblings offline)".into();
    let control = ctx.read("/sys/devices/system/cpu/smt/control").ok();
    let mut shared = Vec::new();
    for cpu in ctx.bench().iter() {
        let t = format!("/sys/devices/system/cpu/cpu{cpu}/topology");
        let sib = ctx
            .read(&format!("{t}/thread_siblings_list"))
            .or_else(|_| ctx.read(&format!("{t}/core_cpus_list")))
            .ok()
            .and_then(|s| CpuList::parse(&s).ok());
        if let Some(sib) = sib {
            let others = sib
                .intersection(&ctx.cpus.online)
                .difference(&CpuList::from_cpus([cpu]));
            if !others.is_empty() {
                shared.push(format!("cpu{cpu} shares its core with cpu {others}"));
            }
        }
    }
    k.found = match &control {
        Some(c) => format!("smt/control={c}"),
        None => "no /sys/devices/system/cpu/smt".into(),
    };
    if shared.is_empty() {
        k.found.push_str("; no online sibling");
    } else {
        k.found.push_str(&format!("; {}", shared.join(", ")));
        k.verdict = Verdict::Warn;
        k.fix = Some("boot with nosmt, or take the siblings offline (echo 0 > /sys/devices/system/cpu/cpuN/online)".into());
    }
    k
}

fn pstate_mode(ctx: &Ctx) -> KnobReport {
    let mut k = KnobReport::new(
        "cpufreq_driver",
        KnobClass::BootOnly,
        "which driver scales frequency decides how governor and turbo are controlled",
    );
    k.wanted =
        "any driver; intel_pstate with nohz_full is known to misbehave (rhbz 1378529)".into();
    let first = ctx.bench().first().unwrap_or(0);
    let driver = ctx.read(&format!(
        "/sys/devices/system/cpu/cpu{first}/cpufreq/scaling_driver"
    ));
    match driver {
        Err(_) => {
            k.verdict = Verdict::NotApplicable;
            k.found =
                "no cpufreq driver (frequency is not controlled by this kernel, typical in a VM)"
                    .into();
        }
        Ok(d) => {
            let status = ctx
                .read("/sys/devices/system/cpu/intel_pstate/status")
                .or_else(|_| ctx.read("/sys/devices/system/cpu/amd_pstate/status"))
                .ok();
            k.found = match &status {
                Some(s) => format!("{d} (status {s})"),
                None => d.clone(),
            };
            if d == "intel_pstate" && !nohz_set(ctx).is_empty() {
                k.verdict = Verdict::Warn;
                k.fix = Some("with nohz_full, prefer intel_pstate=passive or intel_pstate=disable on the cmdline".into());
            }
        }
    }
    k
}

fn clocksource(ctx: &Ctx) -> KnobReport {
    let mut k = KnobReport::new(
        "clocksource",
        KnobClass::BootOnly,
        "nohz_full needs a stable clocksource; timestamps are read from the TSC",
    );
    k.wanted = "tsc (add tsc=reliable when the TSC is invariant)".into();
    match ctx.read("/sys/devices/system/clocksource/clocksource0/current_clocksource") {
        Ok(c) => {
            k.found = c.clone();
            if c != "tsc" {
                k.verdict = Verdict::Warn;
                k.fix = Some("boot with tsc=reliable (if constant_tsc and nonstop_tsc are set) or clocksource=tsc".into());
            }
        }
        Err(e) => {
            k.verdict = Verdict::NotApplicable;
            k.found = format!("unknown ({e})");
        }
    }
    k
}

// ---------------------------------------------------------------- runtime

fn cpufreq_cpus(ctx: &Ctx) -> Vec<u32> {
    ctx.bench()
        .iter()
        .filter(|c| {
            ctx.fs
                .exists(&format!("/sys/devices/system/cpu/cpu{c}/cpufreq"))
        })
        .collect()
}

const NO_CPUFREQ: &str = "no cpufreq on the benchmark CPUs (frequency is not controlled by this kernel, typical in a VM)";

fn governor(ctx: &Ctx) -> KnobReport {
    let mut k = KnobReport::new(
        "governor",
        KnobClass::Runtime,
        "any governor but performance changes frequency under load: cycles per exit drift between samples",
    );
    k.wanted = "performance on every benchmark CPU".into();
    let cpus = cpufreq_cpus(ctx);
    if cpus.is_empty() {
        k.verdict = Verdict::NotApplicable;
        k.found = NO_CPUFREQ.into();
        return k;
    }
    let mut found = Vec::new();
    for cpu in cpus {
        let d = format!("/sys/devices/system/cpu/cpu{cpu}/cpufreq");
        let gov = match ctx.read(&format!("{d}/scaling_governor")) {
            Ok(g) => g,
            Err(e) => {
                k.invalid = Some(e.to_string());
                k.verdict = Verdict::Fail;
                continue;
            }
        };
        found.push(format!("cpu{cpu}={gov}"));
        if gov != "performance" {
            if let Ok(avail) = ctx.read(&format!("{d}/scaling_available_governors"))
                && !avail.split_whitespace().any(|g| g == "performance")
            {
                k.verdict = Verdict::Fail;
                k.notes.push(format!(
                    "cpu{cpu}: driver offers no performance governor ({avail})"
                ));
                continue;
            }
            k.verdict = Verdict::Fail;
            ctx.plan(
                &mut k,
                &format!("{d}/scaling_governor"),
                &gov,
                "performance",
            );
        }
    }
    k.found = found.join(" ");
    if k.verdict != Verdict::Ok {
        k.fix = Some(APPLY_HINT.into());
    }
    k
}

fn min_freq(ctx: &Ctx) -> KnobReport {
    let mut k = KnobReport::new(
        "min_freq",
        KnobClass::Runtime,
        "a minimum below the maximum lets the driver lower the clock between bursts of exits",
    );
    k.wanted = "scaling_min_freq = scaling_max_freq on every benchmark CPU".into();
    let cpus = cpufreq_cpus(ctx);
    if cpus.is_empty() {
        k.verdict = Verdict::NotApplicable;
        k.found = NO_CPUFREQ.into();
        return k;
    }
    let mut found = Vec::new();
    for cpu in cpus {
        let d = format!("/sys/devices/system/cpu/cpu{cpu}/cpufreq");
        let min = ctx.read(&format!("{d}/scaling_min_freq"));
        let max = ctx.read(&format!("{d}/scaling_max_freq"));
        let (Ok(min_s), Ok(max_s)) = (min, max) else {
            k.notes.push(format!(
                "cpu{cpu}: scaling_min_freq/scaling_max_freq unreadable"
            ));
            continue;
        };
        let (Ok(min), Ok(max)) = (min_s.parse::<u64>(), max_s.parse::<u64>()) else {
            k.invalid = Some(format!(
                "cpu{cpu}: unexpected frequencies min={min_s:?} max={max_s:?}"
            ));
            k.verdict = Verdict::Fail;
            continue;
        };
        found.push(format!("cpu{cpu}={min}-{max} kHz"));
        if min < max {
            k.verdict = k.verdict.max(Verdict::Warn);
            ctx.plan(&mut k, &format!("{d}/scaling_min_freq"), &min_s, &max_s);
        }
    }
    k.found = found.join(" ");
    if !k.changes.is_empty() {
        k.fix = Some(APPLY_HINT.into());
    }
    k
}

fn boost(ctx: &Ctx) -> KnobReport {
    let mut k = KnobReport::new(
        "turbo",
        KnobClass::Runtime,
        "turbo/boost makes the core clock depend on temperature and on the other cores: TSC ticks per exit vary",
    );
    k.wanted =
        "turbo/boost off, through the driver's own interface (never MSRs on non-Intel CPUs)".into();
    let control = match power::boost_control(ctx.fs.root()) {
        vmbench_host::Fact::Known(c) => c,
        vmbench_host::Fact::Unknown { unknown } => {
            k.verdict = Verdict::NotApplicable;
            k.found = unknown;
            return k;
        }
    };
    let mut found = Vec::new();
    for f in control.files() {
        let v = match ctx.read(&f) {
            Ok(v) => v,
            Err(e) => {
                k.invalid = Some(e.to_string());
                k.verdict = Verdict::Fail;
                continue;
            }
        };
        if v != "0" && v != "1" {
            k.invalid = Some(format!("{f}: unexpected value {v:?} (expected 0 or 1)"));
            k.verdict = Verdict::Fail;
            continue;
        }
        found.push(format!("{f}={v}"));
        if v != control.off_value() {
            k.verdict = Verdict::Fail;
            ctx.plan(&mut k, &f, &v, control.off_value());
        }
    }
    if matches!(control, BoostControl::IntelPstateNoTurbo) {
        k.notes.push("no_turbo=1 means turbo off".into());
    }
    k.found = found.join(" ");
    if !k.changes.is_empty() {
        k.fix = Some(APPLY_HINT.into());
    }
    k
}

/// PIDs whose comm is `name`.
fn processes_named(ctx: &Ctx, name: &str) -> Vec<u32> {
    let Ok(entries) = ctx.fs.list("/proc") else {
        return Vec::new();
    };
    entries
        .iter()
        .filter_map(|p| p.parse::<u32>().ok())
        .filter(|pid| {
            ctx.read(&format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c == name)
        })
        .collect()
}

fn irqbalance(ctx: &Ctx) -> KnobReport {
    let mut k = KnobReport::new(
        "irqbalance",
        KnobClass::Runtime,
        "irqbalance rewrites IRQ affinities every 10 s, undoing the move off the benchmark CPUs",
    );
    k.wanted = "not running while benchmarking".into();
    let pids = processes_named(ctx, "irqbalance");
    if pids.is_empty() {
        k.found = "not running".into();
        return k;
    }
    k.found = format!(
        "running (pid {})",
        pids.iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    k.verdict = Verdict::Warn;
    k.fix = Some(APPLY_HINT.into());
    if !ctx.live {
        k.blocked
            .push("services are only stopped on the running host (--root is not /)".into());
    } else if !std::path::Path::new("/bin/systemctl").exists()
        && !std::path::Path::new("/usr/bin/systemctl").exists()
    {
        k.blocked
            .push("no systemctl: stop irqbalance by hand, and start it again afterwards".into());
    }
    k.changes.push(Change::StopService {
        unit: "irqbalance.service".into(),
    });
    k
}

/// `mask` without the benchmark CPUs; the housekeeping CPUs if nothing is left.
fn without_bench(ctx: &Ctx, mask: &CpuList) -> CpuList {
    let rest = mask.difference(ctx.bench());
    if rest.is_empty() {
        ctx.hk().clone()
    } else {
        rest
    }
}

fn mask_knob(ctx: &Ctx, k: &mut KnobReport, paths: &[&str]) {
    let mut found = Vec::new();
    let mut any = false;
    for path in paths {
        let raw = match ctx.read(path) {
            Ok(r) => r,
            Err(e) if e.is_missing() => continue,
            Err(e) => {
                k.notes.push(e.to_string());
                continue;
            }
        };
        any = true;
        let mask = match CpuList::parse_mask(&raw) {
            Ok(m) => m,
            Err(e) => {
                k.invalid = Some(format!("{path}: {e}"));
                k.verdict = Verdict::Fail;
                continue;
            }
        };
        found.push(format!(
            "{path}={raw} (cpus {})",
            vmbench_host::rows::cpus_or_none(&mask)
        ));
        if !mask.intersection(ctx.bench()).is_empty() {
            k.verdict = k.verdict.max(Verdict::Warn);
            let groups = raw.split(',').count() as u32;
            let target = without_bench(ctx, &mask).to_mask(ctx.mask_width.max(groups * 32 - 31));
            ctx.plan(k, path, &raw, &target);
        }
    }
    if !any {
        k.verdict = Verdict::NotApplicable;
        k.found = format!("{} not present", paths.join(", "));
        return;
    }
    k.found = found.join("; ");
    if !k.changes.is_empty() {
        k.fix = Some(APPLY_HINT.into());
    }
}

fn default_irq_affinity(ctx: &Ctx) -> KnobReport {
    let mut k = KnobReport::new(
        "default_irq_affinity",
        KnobClass::Runtime,
        "the affinity newly activated interrupts get; without it a device that comes up mid-run can land on a benchmark CPU",
    );
    k.wanted = format!("housekeeping CPUs only ({})", ctx.hk());
    mask_knob(ctx, &mut k, &["/proc/irq/default_smp_affinity"]);
    k
}

fn workqueue(ctx: &Ctx) -> KnobReport {
    let mut k = KnobReport::new(
        "workqueue_cpumask",
        KnobClass::Runtime,
        "unbound kworkers (writeback and friends) run wherever this mask allows",
    );
    k.wanted = format!("housekeeping CPUs only ({})", ctx.hk());
    mask_knob(
        ctx,
        &mut k,
        &[
            "/sys/devices/virtual/workqueue/cpumask",
            "/sys/bus/workqueue/devices/writeback/cpumask",
        ],
    );
    k
}

fn irq_affinity(ctx: &Ctx) -> KnobReport {
    let mut k = KnobReport::new(
        "irq_affinity",
        KnobClass::Runtime,
        "a device interrupt on a benchmark CPU lands inside a sample as a multi-microsecond outlier",
    );
    k.wanted = format!("every movable IRQ on housekeeping CPUs ({})", ctx.hk());
    let irqs: Vec<u32> = match ctx.fs.root().numbered("/proc/irq", "") {
        Ok(v) => v,
        Err(e) => {
            k.verdict = Verdict::NotApplicable;
            k.found = e.to_string();
            return k;
        }
    };
    let mut on_bench = Vec::new();
    let mut effective_on_bench = Vec::new();
    let mut total = 0;
    for irq in irqs {
        let path = format!("/proc/irq/{irq}/smp_affinity_list");
        let Ok(raw) = ctx.read(&path) else { continue };
        total += 1;
        let aff = match CpuList::parse(&raw) {
            Ok(a) => a,
            Err(e) => {
                k.invalid = Some(format!("{path}: {e}"));
                k.verdict = Verdict::Fail;
                continue;
            }
        };
        if let Ok(eff) = ctx.read(&format!("/proc/irq/{irq}/effective_affinity_list"))
            && CpuList::parse(&eff).is_ok_and(|e| !e.intersection(ctx.bench()).is_empty())
        {
            effective_on_bench.push(irq);
        }
        if !aff.intersection(ctx.bench()).is_empty() {
            on_bench.push(irq);
            let target = without_bench(ctx, &aff);
            ctx.plan(&mut k, &path, &raw, &target.to_string());
        }
    }
    k.found = if on_bench.is_empty() {
        format!("none of {total} IRQs may run on the benchmark CPUs")
    } else {
        k.verdict = Verdict::Warn;
        k.fix = Some(APPLY_HINT.into());
        format!(
            "{} of {total} IRQs may run on the benchmark CPUs: {}",
            on_bench.len(),
            short_list(&on_bench)
        )
    };
    if !effective_on_bench.is_empty() {
        k.notes.push(format!(
            "effective affinity on a benchmark CPU now: IRQ {}",
            short_list(&effective_on_bench)
        ));
    }
    k
}

fn short_list(v: &[u32]) -> String {
    let shown: Vec<String> = v.iter().take(12).map(u32::to_string).collect();
    if v.len() > 12 {
        format!("{} … (+{})", shown.join(","), v.len() - 12)
    } else {
        shown.join(",")
    }
}

enum Want {
    Eq(i64),
    AtLeast(i64),
}

fn sysctl(ctx: &Ctx, id: &str, path: &str, want: Want, why: &str) -> KnobReport {
    let mut k = KnobReport::new(id, KnobClass::Runtime, why);
    let (wanted_text, target) = match want {
        Want::Eq(v) => (format!("= {v}"), v),
        Want::AtLeast(v) => (format!(">= {v}"), v),
    };
    k.wanted = format!(
        "{} {wanted_text}",
        path.trim_start_matches("/proc/sys/").replace('/', ".")
    );
    let raw = match ctx.read(path) {
        Ok(r) => r,
        Err(e) => {
            k.verdict = Verdict::NotApplicable;
            k.found = if e.is_missing() {
                format!("{path} not present in this kernel")
            } else {
                e.to_string()
            };
            return k;
        }
    };
    k.found = raw.clone();
    let Ok(v) = raw.parse::<i64>() else {
        k.invalid = Some(format!(
            "{path}: unexpected value {raw:?} (expected an integer)"
        ));
        k.verdict = Verdict::Fail;
        return k;
    };
    let ok = match want {
        Want::Eq(w) => v == w,
        Want::AtLeast(w) => v >= w,
    };
    if !ok {
        k.verdict = Verdict::Warn;
        k.fix = Some(APPLY_HINT.into());
        ctx.plan(&mut k, path, &raw, &target.to_string());
    }
    k
}

/// The selected word of a file like `always [madvise] never`.
pub fn bracketed(raw: &str) -> Option<&str> {
    let open = raw.find('[')?;
    let close = raw[open..].find(']')? + open;
    Some(&raw[open + 1..close])
}

fn thp(ctx: &Ctx) -> KnobReport {
    let mut k = KnobReport::new(
        "transparent_hugepage",
        KnobClass::Runtime,
        "with `always`, khugepaged scans and compacts memory of every process; `madvise` still backs QEMU's guest RAM (it madvises it) with huge pages",
    );
    k.wanted = "madvise (or never)".into();
    let path = "/sys/kernel/mm/transparent_hugepage/enabled";
    let raw = match ctx.read(path) {
        Ok(r) => r,
        Err(e) => {
            k.verdict = Verdict::NotApplicable;
            k.found = e.to_string();
            return k;
        }
    };
    let Some(sel) = bracketed(&raw).filter(|s| ["always", "madvise", "never"].contains(s)) else {
        k.invalid = Some(format!("{path}: unexpected content {raw:?}"));
        k.verdict = Verdict::Fail;
        return k;
    };
    k.found = sel.to_string();
    if sel == "always" {
        k.verdict = Verdict::Warn;
        k.fix = Some(APPLY_HINT.into());
        ctx.plan(&mut k, path, sel, "madvise");
    }
    k
}

fn ksm(ctx: &Ctx) -> KnobReport {
    let mut k = KnobReport::new(
        "ksm",
        KnobClass::Runtime,
        "KSM merges identical guest pages: ksmd scans steal CPU, merged pages take copy-on-write faults",
    );
    k.wanted = "ksm/run = 0 (stopped; merged pages stay merged)".into();
    let path = "/sys/kernel/mm/ksm/run";
    let raw = match ctx.read(path) {
        Ok(r) => r,
        Err(e) => {
            k.verdict = Verdict::NotApplicable;
            k.found = if e.is_missing() {
                "no KSM in this kernel".into()
            } else {
                e.to_string()
            };
            return k;
        }
    };
    k.found = raw.clone();
    match raw.as_str() {
        "0" | "2" => {}
        "1" => {
            k.verdict = Verdict::Warn;
            k.fix = Some(APPLY_HINT.into());
            ctx.plan(&mut k, path, &raw, "0");
        }
        _ => {
            k.invalid = Some(format!(
                "{path}: unexpected value {raw:?} (expected 0, 1 or 2)"
            ));
            k.verdict = Verdict::Fail;
        }
    }
    k
}

// ---------------------------------------------------------------- held

fn cpu_dma_latency(ctx: &Ctx) -> KnobReport {
    let mut k = KnobReport::new(
        "cpu_dma_latency",
        KnobClass::HeldWhileRunning,
        "deep C-states take tens of microseconds to leave; a PM QoS request of 0 keeps the CPUs in C0/C1 while it is held",
    );
    k.wanted = "/dev/cpu_dma_latency held open at 0 during the run".into();
    let mut latencies = Vec::new();
    for cpu in ctx.bench().iter() {
        let dir = format!("/sys/devices/system/cpu/cpu{cpu}/cpuidle");
        if let Ok(states) = ctx.fs.root().numbered(&dir, "state") {
            let deepest = states
                .iter()
                .filter(|s| {
                    ctx.read(&format!("{dir}/state{s}/disable"))
                        .is_ok_and(|d| d == "0")
                })
                .filter_map(|s| {
                    let name = ctx.read(&format!("{dir}/state{s}/name")).ok()?;
                    let lat: u64 = ctx
                        .read(&format!("{dir}/state{s}/latency"))
                        .ok()?
                        .parse()
                        .ok()?;
                    Some((lat, name))
                })
                .max();
            if let Some((lat, name)) = deepest {
                latencies.push(format!("cpu{cpu}: deepest enabled {name} ({lat} us exit)"));
            }
        }
    }
    let dev = "/dev/cpu_dma_latency";
    if !ctx.fs.exists(dev) {
        k.verdict = Verdict::Warn;
        k.found = "no /dev/cpu_dma_latency".into();
        k.fix = Some("limit C-states on the cmdline instead (processor.max_cstate=1 intel_idle.max_cstate=1)".into());
    } else if let Err(why) = ctx.fs.writable(dev) {
        k.verdict = Verdict::Warn;
        k.found = "present".into();
        k.blocked.push(why.to_string());
        k.fix = Some("run as root so the request can be held".into());
    } else {
        k.found = "present and writable: held by `isolate apply --hold` and `vmbench run`".into();
    }
    if !latencies.is_empty() {
        k.found.push_str(&format!("; {}", latencies.join(", ")));
    }
    k
}

/// Guest RAM size the memlock check must cover by default.
pub const DEFAULT_MEMLOCK_BYTES: u64 = 1 << 30;

fn memlock(ctx: &Ctx) -> KnobReport {
    let mut k = KnobReport::new(
        "memlock",
        KnobClass::HeldWhileRunning,
        "QEMU's -overcommit mem-lock=on needs RLIMIT_MEMLOCK >= guest RAM, else it fails or the guest pages fault in mid-measurement",
    );
    k.wanted = format!(
        "RLIMIT_MEMLOCK >= {} MiB, or CAP_IPC_LOCK",
        DEFAULT_MEMLOCK_BYTES >> 20
    );
    if !ctx.live {
        k.verdict = Verdict::NotApplicable;
        k.found = "not probed: a limit of this process says nothing about a --root tree".into();
        return k;
    }
    use nix::sys::resource::{Resource, getrlimit};
    let (soft, hard) = match getrlimit(Resource::RLIMIT_MEMLOCK) {
        Ok(l) => l,
        Err(e) => {
            k.verdict = Verdict::Warn;
            k.found = format!("getrlimit failed: {e}");
            return k;
        }
    };
    let show = |v: u64| {
        if v == nix::libc::RLIM_INFINITY {
            "unlimited".to_string()
        } else {
            format!("{} KiB", v >> 10)
        }
    };
    k.found = format!("soft {}, hard {}", show(soft), show(hard));
    let ipc_lock = caps::has_cap(
        None,
        caps::CapSet::Effective,
        caps::Capability::CAP_IPC_LOCK,
    )
    .unwrap_or(false);
    if ipc_lock {
        k.found.push_str("; CAP_IPC_LOCK (no limit applies)");
    } else if soft >= DEFAULT_MEMLOCK_BYTES {
    } else if hard >= DEFAULT_MEMLOCK_BYTES {
        k.notes
            .push("the soft limit is raised to the hard limit for QEMU when a run starts".into());
    } else {
        k.verdict = Verdict::Fail;
        k.fix = Some(
            "raise it: `ulimit -l unlimited` as root, or LimitMEMLOCK= / limits.conf for this user"
                .into(),
        );
    }
    k
}

// ---------------------------------------------------------------- noise

fn interrupts_seen(ctx: &Ctx) -> KnobReport {
    let mut k = KnobReport::new(
        "interrupts_seen",
        KnobClass::Noise,
        "interrupts that actually hit the benchmark CPUs: each one is an outlier in some sample",
    );
    let secs = ctx.noise_window.as_secs_f64();
    k.wanted = format!(
        "<= {:.0} per second per CPU (the residual 1 Hz tick and a little)",
        MAX_IRQ_RATE
    );
    let read = || {
        ctx.fs
            .read("/proc/interrupts")
            .ok()
            .and_then(|t| noise::parse_interrupts(&t))
    };
    let Some(before) = read() else {
        k.verdict = Verdict::NotApplicable;
        k.found = "/proc/interrupts unreadable".into();
        return k;
    };
    std::thread::sleep(ctx.noise_window);
    let Some(after) = read() else {
        k.verdict = Verdict::NotApplicable;
        k.found = "/proc/interrupts unreadable".into();
        return k;
    };
    let d = noise::delta_on(&before, &after, ctx.bench());
    let total: u64 = d.iter().map(|x| x.1).sum();
    let rate = if secs > 0.0 {
        total as f64 / secs / ctx.bench().len().max(1) as f64
    } else {
        0.0
    };
    let top: Vec<String> = d
        .iter()
        .take(4)
        .map(|(src, n)| {
            let name = after.names.get(src).map(String::as_str).unwrap_or("");
            format!("{src} {n} ({name})")
        })
        .collect();
    k.found = format!(
        "{total} in {:.0} ms ({rate:.0}/s per CPU){}",
        secs * 1000.0,
        if top.is_empty() {
            String::new()
        } else {
            format!(": {}", top.join(", "))
        }
    );
    if rate > MAX_IRQ_RATE {
        k.verdict = Verdict::Warn;
        k.fix = Some("isolate the CPUs (isolcpus, nohz_full, irqaffinity) and apply the runtime knobs, then check again".into());
    }
    k
}

/// Interrupts per second per benchmark CPU that still count as quiet.
pub const MAX_IRQ_RATE: f64 = 5.0;

fn runnable_seen(ctx: &Ctx) -> KnobReport {
    let mut k = KnobReport::new(
        "runnable_threads",
        KnobClass::Noise,
        "another runnable thread on a benchmark CPU preempts the vCPU",
    );
    k.wanted = "none besides vmbench".into();
    let own = ctx.live.then(std::process::id);
    let threads = noise::runnable_on(ctx.fs, ctx.bench(), own);
    if threads.is_empty() {
        k.found = "none".into();
    } else {
        k.verdict = Verdict::Warn;
        k.found = threads
            .iter()
            .take(6)
            .map(|t| format!("{} (tid {}) on cpu{}", t.comm, t.tid, t.cpu))
            .collect::<Vec<_>>()
            .join(", ");
        k.fix = Some(
            "stop or move them (taskset -pc <housekeeping> <pid>), or isolate the CPUs at boot"
                .into(),
        );
    }
    k
}

#[cfg(test)]
mod tests {
    #[test]
    fn bracketed_selection() {
        assert_eq!(super::bracketed("always [madvise] never"), Some("madvise"));
        assert_eq!(super::bracketed("[always] madvise never"), Some("always"));
        assert_eq!(super::bracketed("madvise"), None);
    }
}
