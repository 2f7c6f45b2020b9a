//! Runtime knobs: changed by `apply`, journaled first, restored after.

use super::ctx::*;
use crate::catalogue::Want;
use crate::model::{KnobId, KnobReport, Verdict};
use vmbench_host::CpuList;
use vmbench_host::power::{self, BoostControl};

pub(super) fn cpufreq_cpus(ctx: &Ctx) -> Vec<u32> {
    ctx.bench()
        .iter()
        .filter(|c| {
            ctx.fs
                .exists(&format!("/sys/devices/system/cpu/cpu{c}/cpufreq"))
        })
        .collect()
}

const NO_CPUFREQ: &str = "no cpufreq on the benchmark CPUs (frequency is not controlled by this kernel, typical in a VM)";

pub(super) fn governor(ctx: &Ctx) -> KnobReport {
    let mut knob = KnobReport::new(KnobId::Governor);
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

pub(super) fn min_freq(ctx: &Ctx) -> KnobReport {
    let mut knob = KnobReport::new(KnobId::MinFreq);
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

pub(super) fn boost(ctx: &Ctx) -> KnobReport {
    let mut knob = KnobReport::new(KnobId::Turbo);
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

pub(super) fn default_irq_affinity(ctx: &Ctx) -> KnobReport {
    let mut knob = KnobReport::new(KnobId::DefaultIrqAffinity);
    knob.wanted = format!("housekeeping CPUs only ({})", ctx.hk());
    mask_knob(ctx, &mut knob, &["/proc/irq/default_smp_affinity"]);
    knob
}

pub(super) fn irq_affinity(ctx: &Ctx) -> KnobReport {
    let mut knob = KnobReport::new(KnobId::IrqAffinity);
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

/// A sysctl knob: its file and the value wanted are in the catalogue.
pub(super) fn sysctl(ctx: &Ctx, id: KnobId) -> KnobReport {
    let mut knob = KnobReport::new(id);
    let spec = crate::catalogue::knob(id);
    let (Some(want), Some(&path)) = (spec.sysctl, spec.writes.first()) else {
        knob.verdict = Verdict::NotApplicable;
        knob.found = "not a sysctl knob".into();
        return knob;
    };
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
        if let Some(why) = unwritable_sysctl(ctx, id) {
            knob.notes.push(why);
            return knob;
        }
        knob.fix = Some(APPLY_HINT.into());
        ctx.plan(&mut knob, path, &raw, &target.to_string());
    }
    knob
}

/// Why the kernel would refuse to write this sysctl now, if it would.
fn unwritable_sysctl(ctx: &Ctx, id: KnobId) -> Option<String> {
    // kernel/events/core.c: with perf's CPU-time throttling off (0) or
    // unlimited (100), writes to the sample rate fail with EINVAL.
    if id == KnobId::PerfEventMaxSampleRate {
        let percent = ctx
            .read("/proc/sys/kernel/perf_cpu_time_max_percent")
            .ok()?;
        if percent == "0" || percent == "100" {
            return Some(format!(
                "not changed: with kernel.perf_cpu_time_max_percent = {percent} (throttling off) the kernel refuses writes to the sample rate"
            ));
        }
    }
    None
}

pub(super) fn thp(ctx: &Ctx) -> KnobReport {
    let mut knob = KnobReport::new(KnobId::TransparentHugepage);
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

pub(super) fn ksm(ctx: &Ctx) -> KnobReport {
    let mut knob = KnobReport::new(KnobId::Ksm);
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
