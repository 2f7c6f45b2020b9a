//! What is actually seen on the benchmark CPUs: interrupts, runnable
//! threads and the residual noise left after every knob.

use super::ctx::*;
use crate::model::{KnobId, KnobReport, Verdict};
use crate::noise;
use vmbench_results::CpuNoise;

pub(super) fn interrupts_seen(ctx: &Ctx) -> KnobReport {
    let mut knob = KnobReport::new(KnobId::InterruptsSeen);
    let secs = ctx.noise.window.as_secs_f64();
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
    std::thread::sleep(ctx.noise.window);
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

pub(super) fn runnable_seen(ctx: &Ctx) -> KnobReport {
    let mut knob = KnobReport::new(KnobId::RunnableThreads);
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

/// An interruption this long shows in a VM-exit row's tail (an exit takes
/// 1 to 10 µs): the knob warns.
const LONGEST_OK_US: f64 = 50.0;
/// More than this much time taken per second (0.1%) warns too.
const TOTAL_OK_US_PER_S: f64 = 1000.0;

/// The audit's `residual_noise` knob: the detector on every benchmark CPU
/// for the audit's noise window.
pub(super) fn residual_noise(ctx: &Ctx) -> KnobReport {
    let mut knob = KnobReport::new(KnobId::ResidualNoise);
    knob.wanted = format!(
        "under {TOTAL_OK_US_PER_S:.0} µs/s, no interruption over {LONGEST_OK_US:.0} µs (gaps > {} ns between clock reads)",
        ctx.noise.threshold.as_nanos()
    );
    if ctx.noise.window.is_zero() {
        knob.verdict = Verdict::NotApplicable;
        knob.found = "not measured (no noise window)".into();
        return knob;
    }
    match crate::osnoise::measure(ctx.fs, &ctx.cpus.bench, ctx.noise, "audit") {
        Ok(noise) => {
            knob.found = noise
                .iter()
                .map(CpuNoise::summary)
                .collect::<Vec<_>>()
                .join("; ");
            if noise
                .iter()
                .any(|n| n.noise_us_per_s > TOTAL_OK_US_PER_S || n.max_us > LONGEST_OK_US)
            {
                knob.verdict = Verdict::Warn;
                knob.fix = Some(
                    "the causes name what is left: isolcpus/nohz_full/rcu_nocbs for ticks and RCU, IRQ affinity for device interrupts; a VM host adds its own".into(),
                );
            }
            knob.noise = noise;
        }
        Err(e) => {
            knob.verdict = Verdict::NotApplicable;
            knob.found = e.to_string();
        }
    }
    knob
}
