//! The knob catalogue: one descriptor per knob, in audit order (runtime
//! knobs in the order apply writes them: governor before turbo, since
//! setting the governor can reset no_turbo). The journal's allow-list
//! (`trust`), `--skip`, the tests' host snapshot and the docs' checklist
//! are all derived from it; the audit of each knob is `knobs::audit`.

use crate::model::{KnobClass, KnobId};

/// What a sysctl knob wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// Exactly this.
    Eq(i64),
    /// This or more.
    AtLeast(i64),
    /// 0 (off), or at least this; the target is this.
    OffOrAtLeast(i64),
}

/// One knob: what it is for and everything `apply` may touch for it.
#[derive(Debug)]
pub struct Knob {
    /// Its id.
    pub id: KnobId,
    /// Who may change it, and when.
    pub class: KnobClass,
    /// Why it matters for VM-exit and shared-memory timing.
    pub why: &'static str,
    /// The sysfs/procfs files apply may write (`{n}` is a decimal number,
    /// `{name}` one path component).
    pub writes: &'static [&'static str],
    /// The service configuration files apply may rewrite (restarting `units`).
    pub configs: &'static [&'static str],
    /// The systemd units apply may stop or restart.
    pub units: &'static [&'static str],
    /// Whether apply moves threads for it.
    pub moves_threads: bool,
    /// A sysctl knob: its one file is `writes[0]`, and this is the value wanted.
    pub sysctl: Option<Want>,
}

/// Every knob.
pub const CATALOGUE: &[Knob] = &[
    Knob {
        id: KnobId::Isolcpus,
        class: KnobClass::BootOnly,
        why: "keeps the scheduler's load balancer and unrelated tasks off the benchmark CPUs",
        writes: &[],
        configs: &[],
        units: &[],
        moves_threads: false,
        sysctl: None,
    },
    Knob {
        id: KnobId::NohzFull,
        class: KnobClass::BootOnly,
        why: "stops the scheduler tick on a CPU running one task: no timer interrupt in the middle of a sample",
        writes: &[],
        configs: &[],
        units: &[],
        moves_threads: false,
        sysctl: None,
    },
    Knob {
        id: KnobId::RcuNocbs,
        class: KnobClass::BootOnly,
        why: "offloads RCU callbacks from the benchmark CPUs to kthreads on housekeeping CPUs",
        writes: &[],
        configs: &[],
        units: &[],
        moves_threads: false,
        sysctl: None,
    },
    Knob {
        id: KnobId::Irqaffinity,
        class: KnobClass::BootOnly,
        why: "the boot-time default affinity of interrupts; keeps device IRQs off the benchmark CPUs from boot on",
        writes: &[],
        configs: &[],
        units: &[],
        moves_threads: false,
        sysctl: None,
    },
    Knob {
        id: KnobId::Smt,
        class: KnobClass::BootOnly,
        why: "an SMT sibling shares the core's pipeline, caches and TLB with the benchmark CPU",
        writes: &[],
        configs: &[],
        units: &[],
        moves_threads: false,
        sysctl: None,
    },
    Knob {
        id: KnobId::CpufreqDriver,
        class: KnobClass::BootOnly,
        why: "which driver scales frequency decides how governor and turbo are controlled",
        writes: &[],
        configs: &[],
        units: &[],
        moves_threads: false,
        sysctl: None,
    },
    Knob {
        id: KnobId::Clocksource,
        class: KnobClass::BootOnly,
        why: "nohz_full needs a stable clocksource; timestamps are read from the TSC",
        writes: &[],
        configs: &[],
        units: &[],
        moves_threads: false,
        sysctl: None,
    },
    Knob {
        id: KnobId::NxHugePages,
        class: KnobClass::BootOnly,
        why: "KVM's iTLB-multihit mitigation: executable guest pages are mapped at 4 KiB (a huge page is split on the first instruction fetch: extra EPT/NPT violations), and a kvm-nx-lpage-recovery thread per VM zaps split pages back every minute (new faults, and a thread that can run on a benchmark CPU)",
        writes: &[],
        configs: &[],
        units: &[],
        moves_threads: false,
        sysctl: None,
    },
    Knob {
        id: KnobId::PleGap,
        class: KnobClass::BootOnly,
        why: "PAUSE-loop exiting (Intel ple_gap, AMD pause_filter_count): a vCPU spinning on PAUSE longer than the window exits to KVM to yield; a pinned vCPU has nothing to yield to, and a guest polling shared memory takes exits that are not the ones measured (tuned's realtime-virtual-host sets ple_gap=0)",
        writes: &[],
        configs: &[],
        units: &[],
        moves_threads: false,
        sysctl: None,
    },
    Knob {
        id: KnobId::KvmclockPeriodicSync,
        class: KnobClass::BootOnly,
        why: "every 300 s KVM re-synchronises each guest's kvmclock: a clock-update request on every vCPU (extra work on its next entry, a step in the guest's clock); tuned's realtime-virtual-host turns it off",
        writes: &[],
        configs: &[],
        units: &[],
        moves_threads: false,
        sysctl: None,
    },
    Knob {
        id: KnobId::PowerSupply,
        class: KnobClass::Hardware,
        why: "on battery, firmware and the cpufreq driver lower power limits and clocks: figures measured unplugged are not the machine's (pyperf checks the same)",
        writes: &[],
        configs: &[],
        units: &[],
        moves_threads: false,
        sysctl: None,
    },
    Knob {
        id: KnobId::Governor,
        class: KnobClass::Runtime,
        why: "any governor but performance changes frequency under load: cycles per exit drift between samples",
        writes: &["/sys/devices/system/cpu/cpu{n}/cpufreq/scaling_governor"],
        configs: &[],
        units: &[],
        moves_threads: false,
        sysctl: None,
    },
    Knob {
        id: KnobId::MinFreq,
        class: KnobClass::Runtime,
        why: "a minimum below the maximum lets the driver lower the clock between bursts of exits",
        writes: &["/sys/devices/system/cpu/cpu{n}/cpufreq/scaling_min_freq"],
        configs: &[],
        units: &[],
        moves_threads: false,
        sysctl: None,
    },
    Knob {
        id: KnobId::Turbo,
        class: KnobClass::Runtime,
        why: "turbo/boost makes the core clock depend on temperature and on the other cores: TSC ticks per exit vary",
        writes: &[
            "/sys/devices/system/cpu/intel_pstate/no_turbo",
            "/sys/devices/system/cpu/cpufreq/boost",
            "/sys/devices/system/cpu/cpufreq/policy{n}/boost",
        ],
        configs: &[],
        units: &[],
        moves_threads: false,
        sysctl: None,
    },
    Knob {
        id: KnobId::EnergyPerformancePreference,
        class: KnobClass::Runtime,
        why: "with hardware P-states (HWP, amd-pstate) the CPU picks its own clock within the governor's range, biased by this preference: anything but performance ramps the clock after idle, and an exit storm after a pause runs slower",
        writes: &["/sys/devices/system/cpu/cpu{n}/cpufreq/energy_performance_preference"],
        configs: &[],
        units: &[],
        moves_threads: false,
        sysctl: None,
    },
    Knob {
        id: KnobId::EnergyPerfBias,
        class: KnobClass::Runtime,
        why: "Intel's energy-performance bias (0 performance … 15 power saving) steers turbo and C-state decisions where HWP is not in control; tuned's throughput-performance sets performance",
        writes: &["/sys/devices/system/cpu/cpu{n}/power/energy_perf_bias"],
        configs: &[],
        units: &[],
        moves_threads: false,
        sysctl: None,
    },
    Knob {
        id: KnobId::Irqbalance,
        class: KnobClass::Runtime,
        why: "irqbalance rewrites IRQ affinities every 10 s, undoing the move off the benchmark CPUs, unless they are banned; tuned bans them instead of stopping it",
        writes: &[],
        configs: &["/etc/default/irqbalance", "/etc/sysconfig/irqbalance"],
        units: &["irqbalance.service"],
        moves_threads: false,
        sysctl: None,
    },
    Knob {
        id: KnobId::DefaultIrqAffinity,
        class: KnobClass::Runtime,
        why: "the affinity newly activated interrupts get; without it a device that comes up mid-run can land on a benchmark CPU",
        writes: &["/proc/irq/default_smp_affinity"],
        configs: &[],
        units: &[],
        moves_threads: false,
        sysctl: None,
    },
    Knob {
        id: KnobId::IrqAffinity,
        class: KnobClass::Runtime,
        why: "a device interrupt on a benchmark CPU lands inside a sample as a multi-microsecond outlier",
        writes: &["/proc/irq/{n}/smp_affinity_list"],
        configs: &[],
        units: &[],
        moves_threads: false,
        sysctl: None,
    },
    Knob {
        id: KnobId::WorkqueueCpumask,
        class: KnobClass::Runtime,
        why: "unbound kworkers (writeback, block I/O completion, crypto, ...) run wherever their workqueue's mask allows; tuned sets every one",
        writes: &[
            "/sys/devices/virtual/workqueue/cpumask",
            "/sys/devices/virtual/workqueue/{name}/cpumask",
            "/sys/bus/workqueue/devices/writeback/cpumask",
        ],
        configs: &[],
        units: &[],
        moves_threads: false,
        sysctl: None,
    },
    Knob {
        id: KnobId::MachinecheckIgnoreCe,
        class: KnobClass::Runtime,
        why: "the machine-check poll timer wakes every CPU (every 5 minutes, more often after errors) to scan the corrected-error banks; ignore_ce=1 stops it, as tuned does",
        writes: &["/sys/devices/system/machinecheck/machinecheck{n}/ignore_ce"],
        configs: &[],
        units: &[],
        moves_threads: false,
        sysctl: None,
    },
    Knob {
        id: KnobId::TimerMigration,
        class: KnobClass::Runtime,
        why: "timers armed on a benchmark CPU can be migrated to it from idle CPUs; 0 keeps them where they were armed",
        writes: &["/proc/sys/kernel/timer_migration"],
        configs: &[],
        units: &[],
        moves_threads: false,
        sysctl: Some(Want::Eq(0)),
    },
    Knob {
        id: KnobId::NumaBalancing,
        class: KnobClass::Runtime,
        why: "automatic NUMA balancing unmaps guest pages to sample accesses: page faults and migrations inside the timed loop",
        writes: &["/proc/sys/kernel/numa_balancing"],
        configs: &[],
        units: &[],
        moves_threads: false,
        sysctl: Some(Want::Eq(0)),
    },
    Knob {
        id: KnobId::SchedRtRuntimeUs,
        class: KnobClass::Runtime,
        why: "RT throttling takes the CPU from a SCHED_FIFO vCPU thread for 50 ms of every second",
        writes: &["/proc/sys/kernel/sched_rt_runtime_us"],
        configs: &[],
        units: &[],
        moves_threads: false,
        sysctl: Some(Want::Eq(-1)),
    },
    Knob {
        id: KnobId::StatInterval,
        class: KnobClass::Runtime,
        why: "vmstat refresh runs per-CPU work every interval (seconds); longer means fewer interruptions",
        writes: &["/proc/sys/vm/stat_interval"],
        configs: &[],
        units: &[],
        moves_threads: false,
        sysctl: Some(Want::AtLeast(10)),
    },
    Knob {
        id: KnobId::NmiWatchdog,
        class: KnobClass::Runtime,
        why: "the hard-lockup detector takes a perf NMI on every CPU periodically",
        writes: &["/proc/sys/kernel/nmi_watchdog"],
        configs: &[],
        units: &[],
        moves_threads: false,
        sysctl: Some(Want::Eq(0)),
    },
    Knob {
        id: KnobId::Watchdog,
        class: KnobClass::Runtime,
        why: "the soft-lockup detector wakes a per-CPU thread every few seconds",
        writes: &["/proc/sys/kernel/watchdog"],
        configs: &[],
        units: &[],
        moves_threads: false,
        sysctl: Some(Want::Eq(0)),
    },
    Knob {
        id: KnobId::HungTaskTimeoutSecs,
        class: KnobClass::Runtime,
        why: "khungtaskd wakes every hung_task_timeout_secs (120 by default) and walks every task on the host; tuned's cpu-partitioning raises it to 600 (0 turns the check off)",
        writes: &["/proc/sys/kernel/hung_task_timeout_secs"],
        configs: &[],
        units: &[],
        moves_threads: false,
        sysctl: Some(Want::OffOrAtLeast(600)),
    },
    Knob {
        id: KnobId::PerfEventMaxSampleRate,
        class: KnobClass::Runtime,
        why: "the most perf samples per second the kernel allows; each sample is an NMI on the CPU it lands on, so a profiler or monitoring agent sampling the host interrupts the vCPU; 1 caps it (pyperf's `system tune` does the same); vmbench's own counters count, they do not sample",
        writes: &["/proc/sys/kernel/perf_event_max_sample_rate"],
        configs: &[],
        units: &[],
        moves_threads: false,
        sysctl: Some(Want::Eq(1)),
    },
    Knob {
        id: KnobId::RandomizeVaSpace,
        class: KnobClass::Runtime,
        why: "full address-space randomisation (2) is how hosts run: a benchmark with ASLR off measures one lucky or unlucky layout of QEMU's and the kernel's hot paths; pyperf's `system tune` sets 2 as well",
        writes: &["/proc/sys/kernel/randomize_va_space"],
        configs: &[],
        units: &[],
        moves_threads: false,
        sysctl: Some(Want::Eq(2)),
    },
    Knob {
        id: KnobId::TransparentHugepage,
        class: KnobClass::Runtime,
        why: "with `always`, khugepaged scans and compacts memory of every process; `madvise` still backs QEMU's guest RAM (it madvises it) with huge pages",
        writes: &["/sys/kernel/mm/transparent_hugepage/enabled"],
        configs: &[],
        units: &[],
        moves_threads: false,
        sysctl: None,
    },
    Knob {
        id: KnobId::Ksmtuned,
        class: KnobClass::Runtime,
        why: "ksmtuned turns KSM back on (ksm/run = 1) when memory gets tight, undoing the ksm knob mid-run; it is stopped for the run and started again by restore (before the ksm knob, so it cannot race it)",
        writes: &[],
        configs: &[],
        units: &["ksmtuned.service"],
        moves_threads: false,
        sysctl: None,
    },
    Knob {
        id: KnobId::Ksm,
        class: KnobClass::Runtime,
        why: "KSM merges identical guest pages: ksmd scans steal CPU, merged pages take copy-on-write faults",
        writes: &["/sys/kernel/mm/ksm/run"],
        configs: &[],
        units: &[],
        moves_threads: false,
        sysctl: None,
    },
    Knob {
        id: KnobId::CpuDmaLatency,
        class: KnobClass::HeldWhileRunning,
        why: "deep C-states take tens of microseconds to leave; a PM QoS request of 0 keeps the CPUs in C0/C1 while it is held",
        writes: &[],
        configs: &[],
        units: &[],
        moves_threads: false,
        sysctl: None,
    },
    Knob {
        id: KnobId::Memlock,
        class: KnobClass::HeldWhileRunning,
        why: "QEMU's -overcommit mem-lock=on needs RLIMIT_MEMLOCK >= guest RAM, else it fails or the guest pages fault in mid-measurement",
        writes: &[],
        configs: &[],
        units: &[],
        moves_threads: false,
        sysctl: None,
    },
    Knob {
        id: KnobId::SystemdCpuAffinity,
        class: KnobClass::BootOnly,
        why: "systemd starts every service (and what it forks) with this affinity; unset, a service started mid-run may land on a benchmark CPU",
        writes: &[],
        configs: &[],
        units: &[],
        moves_threads: false,
        sysctl: None,
    },
    Knob {
        id: KnobId::ThreadAffinity,
        class: KnobClass::Runtime,
        why: "every thread already running (daemons, kernel threads such as rcu_gp) may be scheduled on a benchmark CPU until its affinity says otherwise; isolcpus covers only threads started after boot's domain setup",
        writes: &[],
        configs: &[],
        units: &[],
        moves_threads: true,
        sysctl: None,
    },
    Knob {
        id: KnobId::InterruptsSeen,
        class: KnobClass::Noise,
        why: "interrupts that actually hit the benchmark CPUs: each one is an outlier in some sample",
        writes: &[],
        configs: &[],
        units: &[],
        moves_threads: false,
        sysctl: None,
    },
    Knob {
        id: KnobId::RunnableThreads,
        class: KnobClass::Noise,
        why: "another runnable thread on a benchmark CPU preempts the vCPU",
        writes: &[],
        configs: &[],
        units: &[],
        moves_threads: false,
        sysctl: None,
    },
    Knob {
        id: KnobId::ResidualNoise,
        class: KnobClass::Noise,
        why: "what the kernel (ticks, RCU, IRQs), other threads and the hypervisor still take from a benchmark CPU after every knob; an exit takes 1-10 µs, so interruptions of tens of µs show in the tails",
        writes: &[],
        configs: &[],
        units: &[],
        moves_threads: false,
        sysctl: None,
    },
];

/// The descriptor of `id`.
pub fn knob(id: KnobId) -> &'static Knob {
    // The catalogue lists every id once, in declaration order (tested
    // below): an id's position is its discriminant.
    &CATALOGUE[id as usize]
}

/// The knobs `--skip` accepts: the runtime ones.
pub fn runtime_ids() -> impl Iterator<Item = KnobId> {
    CATALOGUE
        .iter()
        .filter(|k| k.class == KnobClass::Runtime)
        .map(|k| k.id)
}

/// Whether `path` matches `pattern`, where `{n}` matches one or more digits.
pub fn matches(pattern: &str, path: &str) -> bool {
    if let Some((head, tail)) = pattern.split_once("{name}") {
        // One path component of a workqueue's name: no '/', never "." or "..".
        let Some(rest) = path.strip_prefix(head) else {
            return false;
        };
        let len = rest
            .bytes()
            .take_while(|b| b.is_ascii_alphanumeric() || b"_-.:".contains(b))
            .count();
        let name = &rest[..len];
        return len > 0 && name != "." && name != ".." && matches(tail, &rest[len..]);
    }
    match pattern.split_once("{n}") {
        None => pattern == path,
        Some((head, tail)) => {
            let Some(rest) = path.strip_prefix(head) else {
                return false;
            };
            let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
            digits > 0 && matches(tail, &rest[digits..])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_id_has_one_descriptor_in_declaration_order() {
        let ids: Vec<KnobId> = CATALOGUE.iter().map(|k| k.id).collect();
        assert_eq!(ids, KnobId::ALL);
        for id in KnobId::ALL {
            assert_eq!(knob(*id).id, *id, "knob() finds an id by its position");
        }
    }

    #[test]
    fn only_runtime_knobs_touch_the_host() {
        for k in CATALOGUE {
            let touches = !k.writes.is_empty() || !k.units.is_empty() || k.moves_threads;
            assert_eq!(touches, k.class == KnobClass::Runtime, "{:?}", k.id);
            assert_eq!(
                k.sysctl.is_some(),
                k.writes
                    .first()
                    .is_some_and(|w| w.starts_with("/proc/sys/")),
                "{:?}",
                k.id
            );
        }
    }
}
