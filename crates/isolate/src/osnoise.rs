//! The residual noise on the benchmark CPUs, measured the way the kernel's
//! `osnoise` tracer and hwlatdetect do it, from user space: a thread pinned
//! to the CPU reads the monotonic clock back to back for a window; every gap
//! between two reads longer than a threshold is time the CPU spent on
//! something else (an interrupt, a softirq, another thread, an NMI, or the
//! hypervisor under a VM). What ran is read from the counters the kernel
//! keeps per CPU: /proc/interrupts (NMI included), /proc/softirqs, and the
//! detector thread's own involuntary context switches.
//!
//! A user-space loop rather than the tracer: it needs no tracefs, no root
//! and no kernel option, it sees the hypervisor's steal too, and its figure
//! is what a vCPU thread on that CPU would lose. What it cannot do is name
//! the thread that preempted it; `runnable_threads` in the audit names the
//! threads seen runnable there.

use crate::noise::{Interrupts, parse_interrupts};
use crate::sysfs::Sysfs;
use std::time::{Duration, Instant};
use vmbench_host::CpuList;
use vmbench_results::{CpuNoise, NoiseCause};

/// The shortest gap counted: well above a clock read (tens of ns through
/// the vDSO), well below the cheapest interrupt (a few µs round trip).
pub const THRESHOLD: Duration = Duration::from_micros(1);

/// Why the detector could not run on a CPU.
#[derive(Debug, thiserror::Error)]
pub enum NoiseError {
    /// Only the running host can be measured.
    #[error("not measured: {0} is not the running host's root")]
    NotHost(String),
    /// The detector thread could not be placed on the CPU.
    #[error("cpu{cpu}: cannot pin the detector thread there: {source}")]
    Pin {
        /// The CPU.
        cpu: u32,
        /// What sched_setaffinity said.
        #[source]
        source: nix::Error,
    },
    /// The detector thread died.
    #[error("cpu{0}: the detector thread panicked")]
    Thread(u32),
}

/// Measures each of `cpus` in turn for `window`; `phase` labels the result.
pub fn measure(
    fs: &dyn Sysfs,
    cpus: &CpuList,
    window: Duration,
    phase: &str,
) -> Result<Vec<CpuNoise>, NoiseError> {
    if !fs.root().is_host() {
        return Err(NoiseError::NotHost(fs.root().root().display().to_string()));
    }
    cpus.iter()
        .map(|cpu| measure_cpu(fs, cpu, window, phase))
        .collect()
}

/// What the spinning thread saw.
struct Spin {
    total: Duration,
    max: Duration,
    gaps: u64,
    preempted: u64,
}

fn measure_cpu(
    fs: &dyn Sysfs,
    cpu: u32,
    window: Duration,
    phase: &str,
) -> Result<CpuNoise, NoiseError> {
    let irq_before = read_counts(fs, "/proc/interrupts");
    let softirq_before = read_counts(fs, "/proc/softirqs");
    let spin = std::thread::scope(|s| {
        s.spawn(|| spin_on(cpu, window))
            .join()
            .map_err(|_| NoiseError::Thread(cpu))?
    })?;
    let irq_after = read_counts(fs, "/proc/interrupts");
    let softirq_after = read_counts(fs, "/proc/softirqs");
    let mut causes = Vec::new();
    if let (Some(b), Some(a)) = (&irq_before, &irq_after) {
        for (src, n) in delta_on_cpu(b, a, cpu) {
            let kind = if src == "NMI" { "nmi" } else { "irq" };
            let name = match a.names.get(&src).filter(|d| !d.is_empty()) {
                Some(desc) => format!("{src}: {desc}"),
                None => src,
            };
            causes.push(NoiseCause {
                kind: kind.into(),
                name,
                count: n,
            });
        }
    }
    if let (Some(b), Some(a)) = (&softirq_before, &softirq_after) {
        for (src, n) in delta_on_cpu(b, a, cpu) {
            causes.push(NoiseCause {
                kind: "softirq".into(),
                name: src,
                count: n,
            });
        }
    }
    if spin.preempted > 0 {
        causes.push(NoiseCause {
            kind: "thread".into(),
            name: "another thread ran (involuntary context switches of the detector)".into(),
            count: spin.preempted,
        });
    }
    causes.sort_by(|a, b| b.count.cmp(&a.count).then(a.name.cmp(&b.name)));
    let secs = window.as_secs_f64().max(1e-9);
    Ok(CpuNoise {
        cpu,
        phase: phase.to_string(),
        window_ms: window.as_millis() as u64,
        threshold_ns: THRESHOLD.as_nanos() as u64,
        noise_us_per_s: spin.total.as_secs_f64() * 1e6 / secs,
        max_us: spin.max.as_secs_f64() * 1e6,
        interruptions: spin.gaps,
        causes,
    })
}

fn read_counts(fs: &dyn Sysfs, path: &str) -> Option<Interrupts> {
    parse_interrupts(&fs.read(path).ok()?)
}

/// Per source, how much its count on `cpu` grew.
fn delta_on_cpu(before: &Interrupts, after: &Interrupts, cpu: u32) -> Vec<(String, u64)> {
    crate::noise::delta_on(before, after, &CpuList::from_cpus([cpu]))
}

/// Involuntary context switches of the calling thread so far.
fn involuntary_switches() -> u64 {
    std::fs::read_to_string("/proc/thread-self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("nonvoluntary_ctxt_switches:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Pins the calling thread to `cpu` and reads the clock back to back for
/// `window`.
fn spin_on(cpu: u32, window: Duration) -> Result<Spin, NoiseError> {
    let mut set = nix::sched::CpuSet::new();
    set.set(cpu as usize)
        .map_err(|source| NoiseError::Pin { cpu, source })?;
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set)
        .map_err(|source| NoiseError::Pin { cpu, source })?;
    // Let the migration to the CPU happen before the window opens.
    std::thread::yield_now();
    let switches = involuntary_switches();
    let start = Instant::now();
    let mut prev = start;
    let (mut total, mut max, mut gaps) = (Duration::ZERO, Duration::ZERO, 0u64);
    loop {
        let now = Instant::now();
        let gap = now - prev;
        if gap > THRESHOLD {
            total += gap;
            max = max.max(gap);
            gaps += 1;
        }
        prev = now;
        if now - start >= window {
            break;
        }
    }
    Ok(Spin {
        total,
        max,
        gaps,
        preempted: involuntary_switches().saturating_sub(switches),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The detector on a CPU this process may use: it runs for the window,
    /// and whatever it reports adds up (every gap within the window).
    #[test]
    fn a_window_on_this_cpu_accounts_for_itself() {
        let cpu = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0))
            .ok()
            .and_then(|s| (0..nix::sched::CpuSet::count()).find(|&c| s.is_set(c).unwrap_or(false)))
            .unwrap_or(0) as u32;
        let root = vmbench_host::SysRoot::host();
        let window = Duration::from_millis(50);
        let t = Instant::now();
        let n = measure(&root, &CpuList::from_cpus([cpu]), window, "test").unwrap();
        assert!(t.elapsed() >= window);
        let n = &n[0];
        assert_eq!((n.cpu, n.window_ms, n.threshold_ns), (cpu, 50, 1000));
        // The total of the gaps is within the window, the longest within the total.
        let total_us = n.noise_us_per_s * 0.05;
        assert!(total_us <= 50_000.0 * 1.5, "{n:?}");
        assert!(n.max_us <= total_us + 1e-6, "{n:?}");
        if n.interruptions == 0 {
            assert_eq!((n.noise_us_per_s, n.max_us), (0.0, 0.0));
        }
        // A fixture root is not measured, and says why.
        let fixture = vmbench_host::SysRoot::new("/tmp");
        let e = measure(&fixture, &CpuList::from_cpus([cpu]), window, "test").unwrap_err();
        assert!(e.to_string().contains("not the running host"), "{e}");
    }
}
