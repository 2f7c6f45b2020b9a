//! `vmbench isolate suggest`: the exact kernel cmdline for the chosen CPUs,
//! and the same as NixOS configuration.

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
pub const SUGGEST_SCHEMA_VERSION: u32 = 1;

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
    /// All parameters on one line, ready to append to the cmdline.
    pub cmdline: String,
    /// For hosts booted with GRUB.
    pub grub: String,
    /// For NixOS hosts, using the module in host-tuning/.
    pub nixos: String,
    /// systemd's manager setting: the affinity every service starts with.
    pub systemd: String,
}

/// The kernel parameters that isolate `cpus.bench` (isolcpus, nohz_full, rcu_nocbs, irqaffinity, ...), in three forms.
pub fn suggest(fs: &dyn Sysfs, cpus: &CpuSelection) -> Suggestion {
    let bench = cpus.bench.to_string();
    let housekeeping = cpus.housekeeping.to_string();
    let mut params = vec![
        Param {
            param: format!("isolcpus=managed_irq,domain,{bench}"),
            why: "no load balancing or unrelated tasks on the benchmark CPUs; managed IRQs kept off them".into(),
        },
        Param {
            param: format!("nohz_full={bench}"),
            why: "no scheduler tick while a single task (the vCPU) runs".into(),
        },
        Param {
            param: format!("rcu_nocbs={bench}"),
            why: "RCU callbacks run on housekeeping CPUs".into(),
        },
        Param {
            param: format!("irqaffinity={housekeeping}"),
            why: "device interrupts default to housekeeping CPUs from boot on".into(),
        },
    ];
    let flags = fs
        .read("/proc/cpuinfo")
        .ok()
        .and_then(|t| vmbench_host::cpuinfo::parse(&t).into_iter().next());
    let stable_tsc = flags
        .as_ref()
        .is_some_and(|f| f.has_flag("constant_tsc") && f.has_flag("nonstop_tsc"));
    if stable_tsc {
        params.push(Param {
            param: "tsc=reliable".into(),
            why: "the TSC is invariant here: skip the clocksource watchdog nohz_full would otherwise keep".into(),
        });
    }
    params.push(Param {
        param: "skew_tick=1".into(),
        why: "housekeeping CPUs' ticks do not all fire at once (less lock contention)".into(),
    });
    params.push(Param {
        param: "nowatchdog nmi_watchdog=0".into(),
        why: "no lockup-detector timers or perf NMIs".into(),
    });
    let smt_on = fs
        .read("/sys/devices/system/cpu/smt/active")
        .is_ok_and(|a| a.trim() == "1");
    if smt_on {
        params.push(Param {
            param: "nosmt".into(),
            why: "no SMT sibling shares the benchmark core (halves the logical CPUs)".into(),
        });
    }
    if fs.exists("/sys/devices/system/cpu/intel_pstate") {
        params.push(Param {
            param: "intel_pstate=passive".into(),
            why: "intel_pstate in active mode and nohz_full interact badly (rhbz 1378529); passive keeps the governor in charge".into(),
        });
    }
    let cmdline = params
        .iter()
        .map(|p| p.param.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    let grub = format!(
        "# /etc/default/grub: append to GRUB_CMDLINE_LINUX_DEFAULT, then\n# update-grub (Debian/Ubuntu) or grub2-mkconfig -o /boot/grub2/grub.cfg (Fedora/RHEL), and reboot\nGRUB_CMDLINE_LINUX_DEFAULT=\"$GRUB_CMDLINE_LINUX_DEFAULT {cmdline}\""
    );
    let quoted: Vec<String> = cmdline
        .split_whitespace()
        .map(|p| format!("\"{p}\""))
        .collect();
    let nixos = format!(
        "# configuration.nix (or a flake's nixosModules.host-tuning from vmbench)\n{{\n  imports = [ ./host-tuning/module.nix ];\n  vmbench.hostTuning = {{\n    enable = true;\n    benchCpus = \"{bench}\";\n    housekeepingCpus = \"{housekeeping}\";\n    disableSmt = {smt};\n  }};\n  # Equivalent by hand:\n  # boot.kernelParams = [ {} ];\n}}",
        quoted.join(" "),
        smt = smt_on,
    );
    let systemd = format!(
        "# /etc/systemd/system.conf, under [Manager] (read at boot; tuned's cpu-partitioning sets it too)\nCPUAffinity={housekeeping}"
    );
    Suggestion {
        schema_version: SUGGEST_SCHEMA_VERSION,
        bench_cpus: bench,
        housekeeping_cpus: housekeeping,
        params,
        cmdline,
        grub,
        nixos,
        systemd,
    }
}
