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
    /// Which threads the thread-affinity knob looks at.
    pub threads: crate::affinity::ThreadScope,
}

impl Ctx<'_> {
    pub(crate) fn bench(&self) -> &CpuList {
        &self.cpus.bench
    }
    pub(crate) fn hk(&self) -> &CpuList {
        &self.cpus.housekeeping
    }
    pub(crate) fn read(&self, path: &str) -> Result<String, ReadError> {
        self.fs.read(path).map(|s| s.trim().to_string())
    }
    /// Plans a write of `target` to `path`, recording the current content.
    pub(crate) fn plan(&self, knob: &mut KnobReport, path: &str, original: &str, target: &str) {
        let raw = self.fs.root().read_raw(path).unwrap_or_default();
        if let Err(why) = self.fs.writable(path) {
            knob.blocked.push(why.to_string());
        }
        knob.changes.push(Change::File {
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

pub(crate) const APPLY_HINT: &str = "`vmbench isolate apply` sets it (and restore puts it back)";

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
        crate::partitioning::irqbalance(ctx),
        default_irq_affinity(ctx),
        irq_affinity(ctx),
        crate::partitioning::workqueues(ctx),
        crate::partitioning::machinecheck(ctx),
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
        sysctl(
            ctx,
            "hung_task_timeout_secs",
            "/proc/sys/kernel/hung_task_timeout_secs",
            Want::OffOrAtLeast(600),
            "khungtaskd wakes every hung_task_timeout_secs (120 by default) and walks every task on the host; tuned's cpu-partitioning raises it to 600 (0 turns the check off)",
        ),
        thp(ctx),
        ksm(ctx),
        cpu_dma_latency(ctx),
        memlock(ctx),
        crate::partitioning::systemd_cpu_affinity(ctx),
        crate::partitioning::threads(ctx),
        interrupts_seen(ctx),
        runnable_seen(ctx),
        crate::osnoise::knob(ctx),
    ]
}

// ---------------------------------------------------------------- boot-only

fn isolcpus(ctx: &Ctx) -> KnobReport {
    let mut knob = KnobReport::new(
        "isolcpus",
        KnobClass::BootOnly,
        "keeps the scheduler's load balancer and unrelated tasks off the benchmark CPUs",
    );
    knob.wanted = format!(
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
            knob.verdict = Verdict::Fail;
            knob.found = format!("malformed isolcpus= on the cmdline: {e}");
            knob.fix = Some(suggest_hint(ctx));
            return knob;
        }
    };
    let domain = match (&sys, &cmd) {
        (Some(s), _) => s.clone(),
        (None, Some(c)) if c.has_domain() => c.cpus.clone(),
        _ => CpuList::new(),
    };
    let isolated = domain.union(&cg);
    knob.found = match &cmd {
        Some(c) if c.flags.is_empty() => format!("isolcpus={}", c.cpus),
        Some(c) => format!("isolcpus={},{}", c.flags.join(","), c.cpus),
        None => "no isolcpus=".into(),
    };
    if !cg.is_empty() {
        knob.found
            .push_str(&format!("; cgroup isolated partition: {cg}"));
    }
    if ctx.cmdline.count("isolcpus") > 1 {
        knob.notes
            .push("isolcpus= appears more than once; the last one is used".into());
    }
    let missing = ctx.bench().difference(&isolated);
    if !missing.is_empty() {
        knob.verdict = Verdict::Fail;
        knob.fix = Some(format!(
            "add isolcpus=managed_irq,domain,{} to the kernel cmdline and reboot ({}); cpu {} is not isolated",
            ctx.bench(),
            suggest_hint(ctx),
            missing
        ));
    } else if !cmd.as_ref().is_some_and(|c| c.has_managed_irq()) && cg.is_empty() {
        knob.verdict = Verdict::Warn;
        knob.fix =
            Some("add the managed_irq flag so managed device interrupts avoid these CPUs".into());
    }
    knob
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
    let mut knob = KnobReport::new(
        "nohz_full",
        KnobClass::BootOnly,
        "stops the scheduler tick on a CPU running one task: no timer interrupt in the middle of a sample",
    );
    knob.wanted = format!("nohz_full={}", ctx.bench());
    match sysfs_cpulist(ctx, "/sys/devices/system/cpu/nohz_full") {
        None => {
            knob.verdict = Verdict::Warn;
            knob.found =
                "kernel without CONFIG_NO_HZ_FULL (no /sys/devices/system/cpu/nohz_full)".into();
            knob.fix = Some("boot a kernel built with CONFIG_NO_HZ_FULL=y".into());
        }
        Some(Err(e)) => {
            knob.verdict = Verdict::Warn;
            knob.found = format!("unreadable: {e}");
        }
        Some(Ok(set)) => {
            knob.found = if set.is_empty() {
                "none (null)".into()
            } else {
                format!("nohz_full={set}")
            };
            if !ctx.bench().is_subset(&set) {
                knob.verdict = Verdict::Warn;
                knob.fix = Some(add_to_cmdline(ctx, "nohz_full"));
            }
        }
    }
    knob
}

fn rcu_nocbs(ctx: &Ctx) -> KnobReport {
    let mut knob = KnobReport::new(
        "rcu_nocbs",
        KnobClass::BootOnly,
        "offloads RCU callbacks from the benchmark CPUs to kthreads on housekeeping CPUs",
    );
    knob.wanted = format!("rcu_nocbs={} (nohz_full implies it)", ctx.bench());
    let nohz = nohz_set(ctx);
    let set = match ctx.cmdline.rcu_nocbs() {
        Err(e) => {
            knob.verdict = Verdict::Warn;
            knob.found = format!("malformed rcu_nocbs=: {e}");
            return knob;
        }
        Ok(Some(RcuNocbs::All)) => {
            knob.found = "rcu_nocbs=all".into();
            ctx.cpus.online.clone()
        }
        Ok(Some(RcuNocbs::Cpus(l))) => {
            knob.found = if l.is_empty() {
                "rcu_nocbs (no CPU offloaded at boot)".into()
            } else {
                format!("rcu_nocbs={l}")
            };
            l
        }
        Ok(None) => {
            knob.found = "no rcu_nocbs=".into();
            CpuList::new()
        }
    };
    if !nohz.is_empty() {
        knob.found
            .push_str(&format!("; nohz_full={nohz} (implies offload)"));
    }
    if !ctx.bench().is_subset(&set.union(&nohz)) {
        knob.verdict = Verdict::Warn;
        knob.fix = Some(add_to_cmdline(ctx, "rcu_nocbs"));
    }
    knob
}

fn irqaffinity(ctx: &Ctx) -> KnobReport {
    let mut knob = KnobReport::new(
        "irqaffinity",
        KnobClass::BootOnly,
        "the boot-time default affinity of interrupts; keeps device IRQs off the benchmark CPUs from boot on",
    );
    knob.wanted = format!("irqaffinity={}", ctx.hk());
    match ctx.cmdline.cpulist("irqaffinity") {
        Err(e) => {
            knob.verdict = Verdict::Warn;
            knob.found = format!("malformed irqaffinity=: {e}");
        }
        Ok(None) => {
            knob.verdict = Verdict::Warn;
            knob.found = "no irqaffinity=".into();
            knob.fix = Some(format!(
                "add irqaffinity={} to the cmdline; until then apply moves existing IRQs and sets default_smp_affinity",
                ctx.hk()
            ));
        }
        Ok(Some(l)) => {
            knob.found = format!("irqaffinity={l}");
            let overlap = l.intersection(ctx.bench());
            if !overlap.is_empty() {
                knob.verdict = Verdict::Warn;
                knob.fix = Some(format!(
                    "irqaffinity= includes benchmark CPU(s) {overlap}: use irqaffinity={}",
                    ctx.hk()
                ));
            }
        }
    }
    knob
}

fn smt(ctx: &Ctx) -> KnobReport {
    let mut knob = KnobReport::new(
        "smt",
        KnobClass::BootOnly,
        "an SMT sibling shares the core's pipeline, caches and TLB with the benchmark CPU",
    );
    knob.wanted = "no online SMT sibling of a benchmark CPU (nosmt, or siblings offline)".into();
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
    knob.found = match &control {
        Some(c) => format!("smt/control={c}"),
        None => "no /sys/devices/system/cpu/smt".into(),
    };
    if shared.is_empty() {
        knob.found.push_str("; no online sibling");
    } else {
        knob.found.push_str(&format!("; {}", shared.join(", ")));
        knob.verdict = Verdict::Warn;
        knob.fix = Some("boot with nosmt, or take the siblings offline (echo 0 > /sys/devices/system/cpu/cpuN/online)".into());
    }
    knob
}

fn pstate_mode(ctx: &Ctx) -> KnobReport {
    let mut knob = KnobReport::new(
        "cpufreq_driver",
        KnobClass::BootOnly,
        "which driver scales frequency decides how governor and turbo are controlled",
    );
    knob.wanted =
        "any driver; intel_pstate with nohz_full is known to misbehave (rhbz 1378529)".into();
    let first = ctx.bench().first().unwrap_or(0);
    let driver = ctx.read(&format!(
        "/sys/devices/system/cpu/cpu{first}/cpufreq/scaling_driver"
    ));
    match driver {
        Err(_) => {
            knob.verdict = Verdict::NotApplicable;
            knob.found =
                "no cpufreq driver (frequency is not controlled by this kernel, typical in a VM)"
                    .into();
        }
        Ok(d) => {
            let status = ctx
                .read("/sys/devices/system/cpu/intel_pstate/status")
                .or_else(|_| ctx.read("/sys/devices/system/cpu/amd_pstate/status"))
                .ok();
            knob.found = match &status {
                Some(s) => format!("{d} (status {s})"),
                None => d.clone(),
            };
            if d == "intel_pstate" && !nohz_set(ctx).is_empty() {
                knob.verdict = Verdict::Warn;
                knob.fix = Some("with nohz_full, prefer intel_pstate=passive or intel_pstate=disable on the cmdline".into());
            }
        }
    }
    knob
}

fn clocksource(ctx: &Ctx) -> KnobReport {
    let mut knob = KnobReport::new(
        "clocksource",
        KnobClass::BootOnly,
        "nohz_full needs a stable clocksource; timestamps are read from the TSC",
    );
    knob.wanted = "tsc (add tsc=reliable when the TSC is invariant)".into();
    match ctx.read("/sys/devices/system/clocksource/clocksource0/current_clocksource") {
        Ok(c) => {
            knob.found = c.clone();
            if c != "tsc" {
                knob.verdict = Verdict::Warn;
                knob.fix = Some("boot with tsc=reliable (if constant_tsc and nonstop_tsc are set) or clocksource=tsc".into());
            }
        }
        Err(e) => {
            knob.verdict = Verdict::NotApplicable;
            knob.found = format!("unknown ({e})");
        }
    }
    knob
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
    let mut knob = KnobReport::new(
        "governor",
        KnobClass::Runtime,
        "any governor but performance changes frequency under load: cycles per exit drift between samples",
    );
    knob.wanted = "performance on every benchmark CPU".into();
    let cpus = cpufreq_cpus(ctx);
    if cpus.is_empty() {
        knob.verdict = Verdict::NotApplicable;
        knob.found = NO_CPUFREQ.into();
        return knob;
    }
    let mut found = Vec::new();
    for cpu in cpus {
        let d = format!("/sys/devices/system/cpu/cpu{cpu}/cpufreq");
        let gov = match ctx.read(&format!("{d}/scaling_governor")) {
            Ok(g) => g,
            Err(e) => {
                knob.invalid = Some(e.to_string());
                knob.verdict = Verdict::Fail;
                continue;
            }
        };
        found.push(format!("cpu{cpu}={gov}"));
        if gov != "performance" {
            if let Ok(avail) = ctx.read(&format!("{d}/scaling_available_governors"))
                && !avail.split_whitespace().any(|g| g == "performance")
            {
                knob.verdict = Verdict::Fail;
                knob.notes.push(format!(
                    "cpu{cpu}: driver offers no performance governor ({avail})"
                ));
                continue;
            }
            knob.verdict = Verdict::Fail;
            ctx.plan(
                &mut knob,
                &format!("{d}/scaling_governor"),
                &gov,
                "performance",
            );
        }
    }
    knob.found = found.join(" ");
    if knob.verdict != Verdict::Ok {
        knob.fix = Some(APPLY_HINT.into());
    }
    knob
}

fn min_freq(ctx: &Ctx) -> KnobReport {
    let mut knob = KnobReport::new(
        "min_freq",
        KnobClass::Runtime,
        "a minimum below the maximum lets the driver lower the clock between bursts of exits",
    );
    knob.wanted = "scaling_min_freq = scaling_max_freq on every benchmark CPU".into();
    let cpus = cpufreq_cpus(ctx);
    if cpus.is_empty() {
        knob.verdict = Verdict::NotApplicable;
        knob.found = NO_CPUFREQ.into();
        return knob;
    }
    let mut found = Vec::new();
    for cpu in cpus {
        let d = format!("/sys/devices/system/cpu/cpu{cpu}/cpufreq");
        let min = ctx.read(&format!("{d}/scaling_min_freq"));
        let max = ctx.read(&format!("{d}/scaling_max_freq"));
        let (Ok(min_s), Ok(max_s)) = (min, max) else {
            knob.notes.push(format!(
                "cpu{cpu}: scaling_min_freq/scaling_max_freq unreadable"
            ));
            continue;
        };
        let (Ok(min), Ok(max)) = (min_s.parse::<u64>(), max_s.parse::<u64>()) else {
            knob.invalid = Some(format!(
                "cpu{cpu}: unexpected frequencies min={min_s:?} max={max_s:?}"
            ));
            knob.verdict = Verdict::Fail;
            continue;
        };
        found.push(format!("cpu{cpu}={min}-{max} kHz"));
        if min < max {
            knob.verdict = knob.verdict.max(Verdict::Warn);
            ctx.plan(&mut knob, &format!("{d}/scaling_min_freq"), &min_s, &max_s);
        }
    }
    knob.found = found.join(" ");
    if !knob.changes.is_empty() {
        knob.fix = Some(APPLY_HINT.into());
    }
    knob
}

fn boost(ctx: &Ctx) -> KnobReport {
    let mut knob = KnobReport::new(
        "turbo",
        KnobClass::Runtime,
        "turbo/boost makes the core clock depend on temperature and on the other cores: TSC ticks per exit vary",
    );
    knob.wanted =
        "turbo/boost off, through the driver's own interface (never MSRs on non-Intel CPUs)".into();
    let control = match power::boost_control(ctx.fs.root()) {
        vmbench_host::Fact::Known(c) => c,
        vmbench_host::Fact::Unknown { unknown } => {
            knob.verdict = Verdict::NotApplicable;
            knob.found = unknown;
            return knob;
        }
    };
    let mut found = Vec::new();
    for f in control.files() {
        let v = match ctx.read(&f) {
            Ok(v) => v,
            Err(e) => {
                knob.invalid = Some(e.to_string());
                knob.verdict = Verdict::Fail;
                continue;
            }
        };
        if v != "0" && v != "1" {
            knob.invalid = Some(format!("{f}: unexpected value {v:?} (expected 0 or 1)"));
            knob.verdict = Verdict::Fail;
            continue;
        }
        found.push(format!("{f}={v}"));
        if v != control.off_value() {
            knob.verdict = Verdict::Fail;
            ctx.plan(&mut knob, &f, &v, control.off_value());
        }
    }
    if matches!(control, BoostControl::IntelPstateNoTurbo) {
        knob.notes.push("no_turbo=1 means turbo off".into());
    }
    knob.found = found.join(" ");
    if !knob.changes.is_empty() {
        knob.fix = Some(APPLY_HINT.into());
    }
    knob
}

/// PIDs whose comm is `name`.
pub(crate) fn processes_named(ctx: &Ctx, name: &str) -> Vec<u32> {
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

/// `mask` without the benchmark CPUs; the housekeeping CPUs if nothing is left.
pub(crate) fn without_bench(ctx: &Ctx, mask: &CpuList) -> CpuList {
    let rest = mask.difference(ctx.bench());
    if rest.is_empty() {
        ctx.hk().clone()
    } else {
        rest
    }
}

pub(crate) fn mask_knob(ctx: &Ctx, knob: &mut KnobReport, paths: &[&str]) {
    let mut found = Vec::new();
    let mut any = false;
    for path in paths {
        let raw = match ctx.read(path) {
            Ok(r) => r,
            Err(e) if e.is_missing() => continue,
            Err(e) => {
                knob.notes.push(e.to_string());
                continue;
            }
        };
        any = true;
        let mask = match CpuList::parse_mask(&raw) {
            Ok(m) => m,
            Err(e) => {
                knob.invalid = Some(format!("{path}: {e}"));
                knob.verdict = Verdict::Fail;
                continue;
            }
        };
        found.push(format!(
            "{path}={raw} (cpus {})",
            vmbench_host::rows::cpus_or_none(&mask)
        ));
        if !mask.intersection(ctx.bench()).is_empty() {
            knob.verdict = knob.verdict.max(Verdict::Warn);
            let groups = raw.split(',').count() as u32;
            let target = without_bench(ctx, &mask).to_mask(ctx.mask_width.max(groups * 32 - 31));
            ctx.plan(knob, path, &raw, &target);
        }
    }
    if !any {
        knob.verdict = Verdict::NotApplicable;
        knob.found = format!("{} not present", paths.join(", "));
        return;
    }
    knob.found = found.join("; ");
    if !knob.changes.is_empty() {
        knob.fix = Some(APPLY_HINT.into());
    }
}

fn default_irq_affinity(ctx: &Ctx) -> KnobReport {
    let mut knob = KnobReport::new(
        "default_irq_affinity",
        KnobClass::Runtime,
        "the affinity newly activated interrupts get; without it a device that comes up mid-run can land on a benchmark CPU",
    );
    knob.wanted = format!("housekeeping CPUs only ({})", ctx.hk());
    mask_knob(ctx, &mut knob, &["/proc/irq/default_smp_affinity"]);
    knob
}

fn irq_affinity(ctx: &Ctx) -> KnobReport {
    let mut knob = KnobReport::new(
        "irq_affinity",
        KnobClass::Runtime,
        "a device interrupt on a benchmark CPU lands inside a sample as a multi-microsecond outlier",
    );
    knob.wanted = format!("every movable IRQ on housekeeping CPUs ({})", ctx.hk());
    let irqs: Vec<u32> = match ctx.fs.root().numbered("/proc/irq", "") {
        Ok(v) => v,
        Err(e) => {
            knob.verdict = Verdict::NotApplicable;
            knob.found = e.to_string();
            return knob;
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
                knob.invalid = Some(format!("{path}: {e}"));
                knob.verdict = Verdict::Fail;
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
            ctx.plan(&mut knob, &path, &raw, &target.to_string());
        }
    }
    knob.found = if on_bench.is_empty() {
        format!("none of {total} IRQs may run on the benchmark CPUs")
    } else {
        knob.verdict = Verdict::Warn;
        knob.fix = Some(APPLY_HINT.into());
        format!(
            "{} of {total} IRQs may run on the benchmark CPUs: {}",
            on_bench.len(),
            short_list(&on_bench)
        )
    };
    if !effective_on_bench.is_empty() {
        knob.notes.push(format!(
            "effective affinity on a benchmark CPU now: IRQ {}",
            short_list(&effective_on_bench)
        ));
    }
    knob
}

fn short_list(v: &[u32]) -> String {
    let shown: Vec<String> = v.iter().take(12).map(u32::to_string).collect();
    if v.len() > 12 {
        format!("{} … (+{})", shown.join(","), v.len() - 12)
    } else {
        shown.join(",")
    }
}

pub(crate) enum Want {
    Eq(i64),
    AtLeast(i64),
    /// 0 (off), or at least this; the target is this.
    OffOrAtLeast(i64),
}

pub(crate) fn sysctl(ctx: &Ctx, id: &str, path: &str, want: Want, why: &str) -> KnobReport {
    let mut knob = KnobReport::new(id, KnobClass::Runtime, why);
    let (wanted_text, target) = match want {
        Want::Eq(v) => (format!("= {v}"), v),
        Want::AtLeast(v) => (format!(">= {v}"), v),
        Want::OffOrAtLeast(v) => (format!("= 0 or >= {v}"), v),
    };
    knob.wanted = format!(
        "{} {wanted_text}",
        path.trim_start_matches("/proc/sys/").replace('/', ".")
    );
    let raw = match ctx.read(path) {
        Ok(r) => r,
        Err(e) => {
            knob.verdict = Verdict::NotApplicable;
            knob.found = if e.is_missing() {
                format!("{path} not present in this kernel")
            } else {
                e.to_string()
            };
            return knob;
        }
    };
    knob.found = raw.clone();
    let Ok(v) = raw.parse::<i64>() else {
        knob.invalid = Some(format!(
            "{path}: unexpected value {raw:?} (expected an integer)"
        ));
        knob.verdict = Verdict::Fail;
        return knob;
    };
    let ok = match want {
        Want::Eq(w) => v == w,
        Want::AtLeast(w) => v >= w,
        Want::OffOrAtLeast(w) => v == 0 || v >= w,
    };
    if !ok {
        knob.verdict = Verdict::Warn;
        knob.fix = Some(APPLY_HINT.into());
        ctx.plan(&mut knob, path, &raw, &target.to_string());
    }
    knob
}

/// The selected word of a file like `always [madvise] never`.
pub fn bracketed(raw: &str) -> Option<&str> {
    let open = raw.find('[')?;
    let close = raw[open..].find(']')? + open;
    Some(&raw[open + 1..close])
}

fn thp(ctx: &Ctx) -> KnobReport {
    let mut knob = KnobReport::new(
        "transparent_hugepage",
        KnobClass::Runtime,
        "with `always`, khugepaged scans and compacts memory of every process; `madvise` still backs QEMU's guest RAM (it madvises it) with huge pages",
    );
    knob.wanted = "madvise (or never)".into();
    let path = "/sys/kernel/mm/transparent_hugepage/enabled";
    let raw = match ctx.read(path) {
        Ok(r) => r,
        Err(e) => {
            knob.verdict = Verdict::NotApplicable;
            knob.found = e.to_string();
            return knob;
        }
    };
    let Some(sel) = bracketed(&raw).filter(|s| ["always", "madvise", "never"].contains(s)) else {
        knob.invalid = Some(format!("{path}: unexpected content {raw:?}"));
        knob.verdict = Verdict::Fail;
        return knob;
    };
    knob.found = sel.to_string();
    if sel == "always" {
        knob.verdict = Verdict::Warn;
        knob.fix = Some(APPLY_HINT.into());
        ctx.plan(&mut knob, path, sel, "madvise");
    }
    knob
}

fn ksm(ctx: &Ctx) -> KnobReport {
    let mut knob = KnobReport::new(
        "ksm",
        KnobClass::Runtime,
        "KSM merges identical guest pages: ksmd scans steal CPU, merged pages take copy-on-write faults",
    );
    knob.wanted = "ksm/run = 0 (stopped; merged pages stay merged)".into();
    let path = "/sys/kernel/mm/ksm/run";
    let raw = match ctx.read(path) {
        Ok(r) => r,
        Err(e) => {
            knob.verdict = Verdict::NotApplicable;
            knob.found = if e.is_missing() {
                "no KSM in this kernel".into()
            } else {
                e.to_string()
            };
            return knob;
        }
    };
    knob.found = raw.clone();
    match raw.as_str() {
        "0" | "2" => {}
        "1" => {
            knob.verdict = Verdict::Warn;
            knob.fix = Some(APPLY_HINT.into());
            ctx.plan(&mut knob, path, &raw, "0");
        }
        _ => {
            knob.invalid = Some(format!(
                "{path}: unexpected value {raw:?} (expected 0, 1 or 2)"
            ));
            knob.verdict = Verdict::Fail;
        }
    }
    knob
}

// ---------------------------------------------------------------- held

fn cpu_dma_latency(ctx: &Ctx) -> KnobReport {
    let mut knob = KnobReport::new(
        "cpu_dma_latency",
        KnobClass::HeldWhileRunning,
        "deep C-states take tens of microseconds to leave; a PM QoS request of 0 keeps the CPUs in C0/C1 while it is held",
    );
    knob.wanted = "/dev/cpu_dma_latency held open at 0 during the run".into();
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
        knob.verdict = Verdict::Warn;
        knob.found = "no /dev/cpu_dma_latency".into();
        knob.fix = Some("limit C-states on the cmdline instead (processor.max_cstate=1 intel_idle.max_cstate=1)".into());
    } else if let Err(why) = ctx.fs.writable(dev) {
        knob.verdict = Verdict::Warn;
        knob.found = "present".into();
        knob.blocked.push(why.to_string());
        knob.fix = Some("run as root so the request can be held".into());
    } else {
        knob.found =
            "present and writable: held by `isolate apply --hold` and `vmbench run`".into();
    }
    if !latencies.is_empty() {
        knob.found.push_str(&format!("; {}", latencies.join(", ")));
    }
    knob
}

/// Guest RAM size the memlock check must cover by default.
pub const DEFAULT_MEMLOCK_BYTES: u64 = 1 << 30;

fn memlock(ctx: &Ctx) -> KnobReport {
    let mut knob = KnobReport::new(
        "memlock",
        KnobClass::HeldWhileRunning,
        "QEMU's -overcommit mem-lock=on needs RLIMIT_MEMLOCK >= guest RAM, else it fails or the guest pages fault in mid-measurement",
    );
    knob.wanted = format!(
        "RLIMIT_MEMLOCK >= {} MiB, or CAP_IPC_LOCK",
        DEFAULT_MEMLOCK_BYTES >> 20
    );
    if !ctx.live {
        knob.verdict = Verdict::NotApplicable;
        knob.found = "not probed: a limit of this process says nothing about a --root tree".into();
        return knob;
    }
    use nix::sys::resource::{Resource, getrlimit};
    let (soft, hard) = match getrlimit(Resource::RLIMIT_MEMLOCK) {
        Ok(l) => l,
        Err(e) => {
            knob.verdict = Verdict::Warn;
            knob.found = format!("getrlimit failed: {e}");
            return knob;
        }
    };
    let show = |v: u64| {
        if v == nix::libc::RLIM_INFINITY {
            "unlimited".to_string()
        } else {
            format!("{} KiB", v >> 10)
        }
    };
    knob.found = format!("soft {}, hard {}", show(soft), show(hard));
    let ipc_lock = caps::has_cap(
        None,
        caps::CapSet::Effective,
        caps::Capability::CAP_IPC_LOCK,
    )
    .unwrap_or(false);
    if ipc_lock {
        knob.found.push_str("; CAP_IPC_LOCK (no limit applies)");
    } else if soft >= DEFAULT_MEMLOCK_BYTES {
    } else if hard >= DEFAULT_MEMLOCK_BYTES {
        knob.notes
            .push("the soft limit is raised to the hard limit for QEMU when a run starts".into());
    } else {
        knob.verdict = Verdict::Fail;
        knob.fix = Some(
            "raise it: `ulimit -l unlimited` as root, or LimitMEMLOCK= / limits.conf for this user"
                .into(),
        );
    }
    knob
}

// ---------------------------------------------------------------- noise

fn interrupts_seen(ctx: &Ctx) -> KnobReport {
    let mut knob = KnobReport::new(
        "interrupts_seen",
        KnobClass::Noise,
        "interrupts that actually hit the benchmark CPUs: each one is an outlier in some sample",
    );
    let secs = ctx.noise_window.as_secs_f64();
    knob.wanted = format!(
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
        knob.verdict = Verdict::NotApplicable;
        knob.found = "/proc/interrupts unreadable".into();
        return knob;
    };
    std::thread::sleep(ctx.noise_window);
    let Some(after) = read() else {
        knob.verdict = Verdict::NotApplicable;
        knob.found = "/proc/interrupts unreadable".into();
        return knob;
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
    knob.found = format!(
        "{total} in {:.0} ms ({rate:.0}/s per CPU){}",
        secs * 1000.0,
        if top.is_empty() {
            String::new()
        } else {
            format!(": {}", top.join(", "))
        }
    );
    if rate > MAX_IRQ_RATE {
        knob.verdict = Verdict::Warn;
        knob.fix = Some("isolate the CPUs (isolcpus, nohz_full, irqaffinity) and apply the runtime knobs, then check again".into());
    }
    knob
}

/// Interrupts per second per benchmark CPU that still count as quiet.
pub const MAX_IRQ_RATE: f64 = 5.0;

fn runnable_seen(ctx: &Ctx) -> KnobReport {
    let mut knob = KnobReport::new(
        "runnable_threads",
        KnobClass::Noise,
        "another runnable thread on a benchmark CPU preempts the vCPU",
    );
    knob.wanted = "none besides vmbench".into();
    let own = ctx.live.then(std::process::id);
    let threads = noise::runnable_on(ctx.fs, ctx.bench(), own);
    if threads.is_empty() {
        knob.found = "none".into();
    } else {
        knob.verdict = Verdict::Warn;
        knob.found = threads
            .iter()
            .take(6)
            .map(|t| format!("{} (tid {}) on cpu{}", t.comm, t.tid, t.cpu))
            .collect::<Vec<_>>()
            .join(", ");
        knob.fix = Some(
            "stop or move them (taskset -pc <housekeeping> <pid>), or isolate the CPUs at boot"
                .into(),
        );
    }
    knob
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
