//! Boot-only knobs: the kernel command line and what it decides, checked
//! and advised, never edited.

use super::ctx::*;
use crate::cmdline::RcuNocbs;
use crate::model::{KnobId, KnobReport, Verdict};
use vmbench_host::CpuList;

pub(super) fn isolcpus(ctx: &Ctx) -> KnobReport {
    let mut knob = KnobReport::new(KnobId::Isolcpus);
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

pub(super) fn nohz_full(ctx: &Ctx) -> KnobReport {
    let mut knob = KnobReport::new(KnobId::NohzFull);
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

pub(super) fn rcu_nocbs(ctx: &Ctx) -> KnobReport {
    let mut knob = KnobReport::new(KnobId::RcuNocbs);
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

pub(super) fn irqaffinity(ctx: &Ctx) -> KnobReport {
    let mut knob = KnobReport::new(KnobId::Irqaffinity);
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

pub(super) fn smt(ctx: &Ctx) -> KnobReport {
    let mut knob = KnobReport::new(KnobId::Smt);
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

pub(super) fn pstate_mode(ctx: &Ctx) -> KnobReport {
    let mut knob = KnobReport::new(KnobId::CpufreqDriver);
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

pub(super) fn clocksource(ctx: &Ctx) -> KnobReport {
    let mut knob = KnobReport::new(KnobId::Clocksource);
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
