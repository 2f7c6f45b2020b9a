//! The knobs around the benchmark CPUs that are neither cmdline nor
//! scheduler: KVM's module parameters that decide which exits happen, the
//! power source, the energy preferences of hardware P-states, and ksmtuned.

use super::ctx::{APPLY_HINT, Ctx, processes_named};
use super::runtime::cpufreq_cpus;
use crate::model::{Change, KnobId, KnobReport, Verdict};

const KVM: &str = "/sys/module/kvm/parameters";

fn no_kvm(mut knob: KnobReport) -> KnobReport {
    knob.verdict = Verdict::NotApplicable;
    knob.found = "kvm is not loaded (or has no such parameter)".into();
    knob
}

/// `kvm.nx_huge_pages`: Y is the iTLB-multihit mitigation. Whether turning
/// it off costs safety depends on the CPU, which the kernel says.
pub(super) fn nx_huge_pages(ctx: &Ctx) -> KnobReport {
    let mut knob = KnobReport::new(KnobId::NxHugePages);
    knob.wanted = "N (no 4 KiB split of executable guest pages, no recovery thread), where the CPU is not affected by iTLB multihit".into();
    let Some(value) = ctx.read_present(&mut knob, &format!("{KVM}/nx_huge_pages")) else {
        return no_kvm(knob);
    };
    let vuln = ctx
        .read("/sys/devices/system/cpu/vulnerabilities/itlb_multihit")
        .unwrap_or_else(|_| "unknown".into());
    knob.found = format!("{value} (itlb_multihit: {vuln})");
    match value.as_str() {
        "N" | "never" => {}
        "Y" => {
            knob.verdict = Verdict::Warn;
            knob.fix = Some(if vuln == "Not affected" {
                "this CPU is not affected by iTLB multihit: kvm.nx_huge_pages=off on the kernel cmdline (or `echo off > /sys/module/kvm/parameters/nx_huge_pages` with no VM running) costs no protection".into()
            } else {
                "a security decision, not vmbench's: kvm.nx_huge_pages=off removes the iTLB-multihit mitigation on an affected CPU (only where every guest is trusted); otherwise read the VM-exit rows knowing large executable guest pages fault at 4 KiB".into()
            });
        }
        other => {
            knob.verdict = Verdict::Warn;
            knob.found = format!("unexpected value {other:?} ({vuln})");
        }
    }
    knob
}

/// PAUSE-loop exiting: Intel's `kvm_intel.ple_gap`, AMD's
/// `kvm_amd.pause_filter_count`; 0 turns it off.
pub(super) fn ple_gap(ctx: &Ctx) -> KnobReport {
    let mut knob = KnobReport::new(KnobId::PleGap);
    knob.wanted =
        "0: PAUSE loops never exit (kvm_intel.ple_gap / kvm_amd.pause_filter_count)".into();
    let vendors = [("kvm_intel", "ple_gap"), ("kvm_amd", "pause_filter_count")];
    let mut found = Vec::new();
    for (module, name) in vendors {
        let Some(v) = ctx.read_present(
            &mut knob,
            &format!("/sys/module/{module}/parameters/{name}"),
        ) else {
            continue;
        };
        found.push(format!("{module}.{name}={v}"));
        match v.parse::<u64>() {
            Ok(0) => {}
            Ok(_) => {
                knob.verdict = Verdict::Warn;
                knob.fix = Some(format!(
                    "{module}.{name}=0 on the kernel cmdline, or `options {module} {name}=0` in /etc/modprobe.d/ and reload {module} with no VM running (read-only while loaded)"
                ));
            }
            Err(_) => {
                knob.verdict = Verdict::Warn;
                knob.notes
                    .push(format!("{module}.{name}: unexpected value {v:?}"));
            }
        }
    }
    if found.is_empty() {
        knob.verdict = Verdict::NotApplicable;
        knob.found = "neither kvm_intel nor kvm_amd is loaded".into();
        return knob;
    }
    knob.found = found.join(", ");
    knob
}

/// `kvm.kvmclock_periodic_sync`.
pub(super) fn kvmclock_periodic_sync(ctx: &Ctx) -> KnobReport {
    let mut knob = KnobReport::new(KnobId::KvmclockPeriodicSync);
    knob.wanted = "N".into();
    let Some(value) = ctx.read_present(&mut knob, &format!("{KVM}/kvmclock_periodic_sync")) else {
        return no_kvm(knob);
    };
    knob.found = value.clone();
    if value != "N" && value != "0" {
        knob.verdict = Verdict::Warn;
        knob.fix = Some(
            "kvm.kvmclock_periodic_sync=N on the kernel cmdline, or `options kvm kvmclock_periodic_sync=N` in /etc/modprobe.d/ and reload kvm with no VM running (read-only while loaded)".into(),
        );
    }
    knob
}

/// On mains or on battery, as pyperf (and `on_ac_power`) tell: the first
/// supply with an `online` file decides.
pub(super) fn power_supply(ctx: &Ctx) -> KnobReport {
    const DIR: &str = "/sys/class/power_supply";
    let mut knob = KnobReport::new(KnobId::PowerSupply);
    knob.wanted = "on mains power".into();
    let mut names = ctx.fs.list(DIR).unwrap_or_default();
    names.sort();
    let mut seen = Vec::new();
    for name in &names {
        let Ok(online) = ctx.read(&format!("{DIR}/{name}/online")) else {
            continue;
        };
        let kind = ctx
            .read(&format!("{DIR}/{name}/type"))
            .unwrap_or_else(|_| "?".into());
        seen.push(format!("{name} ({kind}) online={online}"));
        if online == "1" {
            knob.found = format!("on mains: {}", seen.join(", "));
            return knob;
        }
    }
    if seen.is_empty() {
        knob.verdict = Verdict::NotApplicable;
        knob.found = "no power supply with an online state (a server or a VM)".into();
        return knob;
    }
    knob.verdict = Verdict::Warn;
    knob.found = format!("on battery: {}", seen.join(", "));
    knob.fix = Some("plug the machine in before measuring".into());
    knob
}

/// The energy-performance preference of hardware P-states, per benchmark
/// CPU. Under the performance governor the active-mode drivers
/// (intel_pstate with HWP, amd-pstate-epp) force it to performance
/// themselves and refuse another value (EBUSY), so it is written only where
/// the governor already is performance and the preference is not: else the
/// governor knob's change sets it.
pub(super) fn energy_performance_preference(ctx: &Ctx) -> KnobReport {
    let mut knob = KnobReport::new(KnobId::EnergyPerformancePreference);
    knob.wanted = "performance on every benchmark CPU".into();
    let mut found = Vec::new();
    for cpu in cpufreq_cpus(ctx) {
        let d = format!("/sys/devices/system/cpu/cpu{cpu}/cpufreq");
        let Ok(epp) = ctx.read(&format!("{d}/energy_performance_preference")) else {
            continue;
        };
        found.push(format!("cpu{cpu}={epp}"));
        if epp == "performance" {
            continue;
        }
        let governor = ctx
            .read(&format!("{d}/scaling_governor"))
            .unwrap_or_default();
        knob.verdict = Verdict::Warn;
        if governor == "performance" {
            knob.fix = Some(APPLY_HINT.into());
            ctx.plan(
                &mut knob,
                &format!("{d}/energy_performance_preference"),
                &epp,
                "performance",
            );
        } else {
            knob.fix = Some(
                "the governor knob sets performance, and with it the driver sets this preference (`vmbench isolate apply`)".into(),
            );
        }
    }
    if found.is_empty() {
        knob.verdict = Verdict::NotApplicable;
        knob.found = "no energy_performance_preference on the benchmark CPUs (no HWP / amd-pstate in active mode)".into();
        return knob;
    }
    knob.found = found.join(" ");
    knob
}

/// Intel's energy-performance bias per benchmark CPU (0 = performance).
pub(super) fn energy_perf_bias(ctx: &Ctx) -> KnobReport {
    let mut knob = KnobReport::new(KnobId::EnergyPerfBias);
    knob.wanted = "0 (performance) on every benchmark CPU".into();
    let mut found = Vec::new();
    for cpu in ctx.bench().iter() {
        let path = format!("/sys/devices/system/cpu/cpu{cpu}/power/energy_perf_bias");
        let Some(raw) = ctx.read_present(&mut knob, &path) else {
            continue;
        };
        found.push(format!("cpu{cpu}={raw}"));
        match raw.parse::<u8>() {
            Ok(0) => {}
            Ok(v) if v <= 15 => {
                knob.verdict = Verdict::Warn;
                knob.fix = Some(APPLY_HINT.into());
                ctx.plan(&mut knob, &path, &raw, "0");
            }
            _ => {
                knob.invalid = Some(format!("{path}: unexpected value {raw:?} (0 to 15)"));
                knob.verdict = Verdict::Fail;
            }
        }
    }
    if found.is_empty() {
        knob.verdict = Verdict::NotApplicable;
        knob.found = "no energy_perf_bias on the benchmark CPUs (not an Intel CPU, or a VM)".into();
        return knob;
    }
    knob.found = found.join(" ");
    knob
}

/// ksmtuned: stopped for the run when it is running.
pub(super) fn ksmtuned(ctx: &Ctx) -> KnobReport {
    let mut knob = KnobReport::new(KnobId::Ksmtuned);
    knob.wanted = "not running while benchmarking".into();
    let pids = processes_named(ctx, "ksmtuned");
    if pids.is_empty() {
        knob.found = "not running".into();
        return knob;
    }
    knob.found = format!(
        "running (pid {})",
        pids.iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    knob.verdict = Verdict::Warn;
    knob.fix = Some(format!(
        "{APPLY_HINT}: it stops ksmtuned.service and starts it again"
    ));
    if !ctx.live {
        knob.blocked
            .push("services are only stopped on the running host (--root is not /)".into());
    } else if !super::partitioning::has_systemctl() {
        knob.blocked
            .push("no systemctl: stop ksmtuned by hand, and start it again afterwards".into());
    }
    knob.changes.push(Change::StopService {
        unit: "ksmtuned.service".into(),
    });
    knob
}
