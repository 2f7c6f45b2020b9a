//! `vmbench isolate suggest`: the exact kernel cmdline for the chosen CPUs,
//! and the same as NixOS configuration. Each parameter is suggested only
//! where this kernel can use it (nohz_full needs CONFIG_NO_HZ_FULL, the RCU
//! and KVM parameters need their modules), and the NixOS block sets the
//! module's options so that it adds exactly the same parameters.

use crate::model::CpuSelection;
use crate::sysfs::Sysfs;
use serde::Serialize;

/// One kernel parameter to add.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Param {
    /// `name=value`.
    pub param: String,
    /// Why it matters for the benchmark.
    pub why: String,
}

/// Version of [`Suggestion`]'s JSON shape (`isolate suggest --json`).
pub const SUGGEST_SCHEMA_VERSION: u32 = 2;

/// The vendor module whose PAUSE-loop exiting is turned off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, schemars::JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum KvmVendor {
    /// kvm_intel: `ple_gap`.
    Intel,
    /// kvm_amd: `pause_filter_count`.
    Amd,
}

/// The options of host-tuning/module.nix (`vmbench.hostTuning`) that give
/// the suggested cmdline.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct NixosOptions {
    /// `benchCpus`.
    pub bench_cpus: String,
    /// `housekeepingCpus`.
    pub housekeeping_cpus: String,
    /// `nohzFull`: the kernel has CONFIG_NO_HZ_FULL.
    pub nohz_full: bool,
    /// `stableTsc`: `tsc=reliable`.
    pub stable_tsc: bool,
    /// `disableSmt`: `nosmt`.
    pub disable_smt: bool,
    /// `intelPstatePassive`: `intel_pstate=passive`.
    pub intel_pstate_passive: bool,
    /// `rcuNormalAfterBoot`: `rcupdate.rcu_normal_after_boot=1`.
    pub rcu_normal_after_boot: bool,
    /// `rcuPatienceDelayMs`: `rcutree.nohz_full_patience_delay=<ms>`.
    pub rcu_patience_delay_ms: Option<u32>,
    /// `kvmLowLatency`: kvmclock_periodic_sync off and PAUSE-loop exiting
    /// off for this vendor.
    pub kvm_low_latency: Option<KvmVendor>,
}

/// The boot configuration that would isolate the benchmark CPUs.
#[derive(Debug, Clone, PartialEq, Serialize, schemars::JsonSchema)]
pub struct Suggestion {
    /// [`SUGGEST_SCHEMA_VERSION`] at the time of writing.
    pub schema_version: u32,
    /// The benchmark CPUs.
    pub bench_cpus: String,
    /// The housekeeping CPUs.
    pub housekeeping_cpus: String,
    /// Each parameter, with why.
    pub params: Vec<Param>,
    /// What was left out, and why (a kernel capability that is missing).
    pub notes: Vec<String>,
    /// All parameters on one line, ready to append to the cmdline.
    pub cmdline: String,
    /// For hosts booted with GRUB.
    pub grub: String,
    /// The NixOS module's options, as set in `nixos`.
    pub nixos_options: NixosOptions,
    /// For NixOS hosts, using the module in host-tuning/.
    pub nixos: String,
    /// systemd's manager setting: the affinity every service starts with.
    pub systemd: String,
}

/// How long RCU leaves a nohz_full CPU alone before it disturbs it for a
/// grace period (`rcutree.nohz_full_patience_delay`, capped at 5 s by the
/// kernel): a second, well past any benchmark sample.
const RCU_PATIENCE_MS: u32 = 1000;

/// Whether this kernel was built with CONFIG_NO_HZ_FULL: the sysfs file
/// exists only then (drivers/base/cpu.c), else its build config says.
fn has_nohz_full(fs: &dyn Sysfs) -> bool {
    if fs.exists("/sys/devices/system/cpu/nohz_full") {
        return true;
    }
    let release = fs.read("/proc/sys/kernel/osrelease").unwrap_or_default();
    fs.read(&format!("/boot/config-{}", release.trim()))
        .is_ok_and(|c| c.lines().any(|l| l.trim() == "CONFIG_NO_HZ_FULL=y"))
}

/// The parameters a module of this kernel accepts: its sysfs entry exists.
fn has_param(fs: &dyn Sysfs, module: &str, param: &str) -> bool {
    fs.exists(&format!("/sys/module/{module}/parameters/{param}"))
}

/// What this host can use, as module options.
fn decide(fs: &dyn Sysfs, cpus: &CpuSelection, notes: &mut Vec<String>) -> NixosOptions {
    let nohz_full = has_nohz_full(fs);
    if !nohz_full {
        notes.push("nohz_full left out: this kernel was built without CONFIG_NO_HZ_FULL (no /sys/devices/system/cpu/nohz_full); the benchmark CPUs keep their tick until a kernel with it boots".into());
    }
    let flags = fs
        .read("/proc/cpuinfo")
        .ok()
        .and_then(|t| vmbench_host::cpuinfo::parse(&t).into_iter().next());
    let stable_tsc = flags
        .as_ref()
        .is_some_and(|f| f.has_flag("constant_tsc") && f.has_flag("nonstop_tsc"));
    if !stable_tsc {
        notes.push(
            "tsc=reliable left out: the TSC is not invariant here (constant_tsc and nonstop_tsc)"
                .into(),
        );
    }
    let kvm_low_latency = if !has_param(fs, "kvm", "kvmclock_periodic_sync") {
        None
    } else if has_param(fs, "kvm_intel", "ple_gap") {
        Some(KvmVendor::Intel)
    } else if has_param(fs, "kvm_amd", "pause_filter_count") {
        Some(KvmVendor::Amd)
    } else {
        notes.push("the KVM parameters left out: neither kvm_intel nor kvm_amd is loaded".into());
        None
    };
    let rcu_patience = has_param(fs, "rcutree", "nohz_full_patience_delay") && nohz_full;
    NixosOptions {
        bench_cpus: cpus.bench.to_string(),
        housekeeping_cpus: cpus.housekeeping.to_string(),
        nohz_full,
        stable_tsc,
        disable_smt: fs
            .read("/sys/devices/system/cpu/smt/active")
            .is_ok_and(|a| a.trim() == "1"),
        intel_pstate_passive: fs.exists("/sys/devices/system/cpu/intel_pstate"),
        rcu_normal_after_boot: has_param(fs, "rcupdate", "rcu_normal_after_boot"),
        rcu_patience_delay_ms: rcu_patience.then_some(RCU_PATIENCE_MS),
        kvm_low_latency,
    }
}

/// The parameters the options give, in the order host-tuning/module.nix
/// lists them.
pub fn params(o: &NixosOptions) -> Vec<Param> {
    let p = |param: String, why: &str| Param {
        param,
        why: why.to_string(),
    };
    let (bench, hk) = (&o.bench_cpus, &o.housekeeping_cpus);
    let mut v = vec![p(
        format!("isolcpus=managed_irq,domain,{bench}"),
        "no load balancing or unrelated tasks on the benchmark CPUs; managed IRQs kept off them",
    )];
    if o.nohz_full {
        v.push(p(
            format!("nohz_full={bench}"),
            "no scheduler tick while a single task (the vCPU) runs",
        ));
    }
    v.push(p(
        format!("rcu_nocbs={bench}"),
        "RCU callbacks run on housekeeping CPUs",
    ));
    v.push(p(
        format!("irqaffinity={hk}"),
        "device interrupts default to housekeeping CPUs from boot on",
    ));
    v.push(p(
        "skew_tick=1".into(),
        "housekeeping CPUs' ticks do not all fire at once (less lock contention)",
    ));
    v.push(p("nowatchdog".into(), "no soft-lockup detector timers"));
    v.push(p(
        "nmi_watchdog=0".into(),
        "no hard-lockup detector perf NMIs",
    ));
    if o.rcu_normal_after_boot {
        v.push(p(
            "rcupdate.rcu_normal_after_boot=1".into(),
            "after boot, expedited RCU grace periods (an IPI to every CPU, benchmark CPUs included) run as normal ones",
        ));
    }
    if let Some(ms) = o.rcu_patience_delay_ms {
        v.push(p(
            format!("rcutree.nohz_full_patience_delay={ms}"),
            "RCU leaves a nohz_full CPU alone until a grace period is this old (ms) instead of disturbing it at once",
        ));
    }
    if o.stable_tsc {
        v.push(p(
            "tsc=reliable".into(),
            "the TSC is invariant here: skip the clocksource watchdog nohz_full would otherwise keep",
        ));
    }
    if o.disable_smt {
        v.push(p(
            "nosmt".into(),
            "no SMT sibling shares the benchmark core (halves the logical CPUs)",
        ));
    }
    if o.intel_pstate_passive {
        v.push(p(
            "intel_pstate=passive".into(),
            "intel_pstate in active mode and nohz_full interact badly (rhbz 1378529); passive keeps the governor in charge",
        ));
    }
    if let Some(vendor) = o.kvm_low_latency {
        v.push(p(
            "kvm.kvmclock_periodic_sync=N".into(),
            "no re-sync of every guest's kvmclock every 300 s (a clock-update request on each vCPU)",
        ));
        v.push(p(
            match vendor {
                KvmVendor::Intel => "kvm_intel.ple_gap=0".into(),
                KvmVendor::Amd => "kvm_amd.pause_filter_count=0".into(),
            },
            "a pinned vCPU spinning on PAUSE does not exit to KVM to yield",
        ));
    }
    v
}

/// The NixOS configuration that sets `o`.
fn nixos_block(o: &NixosOptions) -> String {
    let mut lines = vec![
        format!("    benchCpus = \"{}\";", o.bench_cpus),
        format!("    housekeepingCpus = \"{}\";", o.housekeeping_cpus),
        format!("    nohzFull = {};", o.nohz_full),
        format!("    stableTsc = {};", o.stable_tsc),
        format!("    disableSmt = {};", o.disable_smt),
        format!("    intelPstatePassive = {};", o.intel_pstate_passive),
        format!("    rcuNormalAfterBoot = {};", o.rcu_normal_after_boot),
    ];
    lines.push(match o.rcu_patience_delay_ms {
        Some(ms) => format!("    rcuPatienceDelayMs = {ms};"),
        None => "    rcuPatienceDelayMs = null;".into(),
    });
    lines.push(match o.kvm_low_latency {
        Some(KvmVendor::Intel) => "    kvmLowLatency = \"intel\";".into(),
        Some(KvmVendor::Amd) => "    kvmLowLatency = \"amd\";".into(),
        None => "    kvmLowLatency = null;".into(),
    });
    format!(
        "# configuration.nix (or a flake's nixosModules.host-tuning from vmbench); the module\n# also sets systemd's CPUAffinity to the housekeeping CPUs\n{{\n  imports = [ ./host-tuning/module.nix ];\n  vmbench.hostTuning = {{\n    enable = true;\n{}\n  }};\n}}",
        lines.join("\n")
    )
}

/// The kernel parameters that isolate `cpus.bench` (isolcpus, nohz_full,
/// rcu_nocbs, irqaffinity, ...) that this kernel can use, in three forms.
pub fn suggest(fs: &dyn Sysfs, cpus: &CpuSelection) -> Suggestion {
    let mut notes = Vec::new();
    let options = decide(fs, cpus, &mut notes);
    let params = params(&options);
    let cmdline = params
        .iter()
        .map(|p| p.param.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    let grub = format!(
        "# /etc/default/grub: append to GRUB_CMDLINE_LINUX_DEFAULT, then\n# update-grub (Debian/Ubuntu) or grub2-mkconfig -o /boot/grub2/grub.cfg (Fedora/RHEL), and reboot\nGRUB_CMDLINE_LINUX_DEFAULT=\"$GRUB_CMDLINE_LINUX_DEFAULT {cmdline}\""
    );
    let systemd = format!(
        "# /etc/systemd/system.conf, under [Manager] (read at boot; tuned's cpu-partitioning sets it too)\nCPUAffinity={}",
        options.housekeeping_cpus
    );
    Suggestion {
        schema_version: SUGGEST_SCHEMA_VERSION,
        bench_cpus: options.bench_cpus.clone(),
        housekeeping_cpus: options.housekeeping_cpus.clone(),
        params,
        notes,
        cmdline,
        grub,
        nixos: nixos_block(&options),
        nixos_options: options,
        systemd,
    }
}
