//! Knobs held while the run lasts (an open device, a resource limit).

use super::ctx::*;
use crate::model::{KnobId, KnobReport, Verdict};

pub(super) fn cpu_dma_latency(ctx: &Ctx) -> KnobReport {
    let mut knob = KnobReport::new(KnobId::CpuDmaLatency);
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

pub(super) fn memlock(ctx: &Ctx) -> KnobReport {
    let mut knob = KnobReport::new(KnobId::Memlock);
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
