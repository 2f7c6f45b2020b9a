//! The physical reference, measured in the same run as the suite: what two
//! cores of this machine can do without any VM in between.

use crate::ShmError;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use vmbench_proto::timing::{t_end, t_end_stores, t_start};
use vmbench_results::SampleSet;

/// Pins the calling thread to one CPU.
pub fn pin_current_thread(cpu: usize) -> Result<(), ShmError> {
    use nix::sched::{CpuSet, sched_setaffinity};
    let mut set = CpuSet::new();
    set.set(cpu).map_err(|source| ShmError::Scheduler {
        what: format!("CPU {cpu}"),
        source,
    })?;
    sched_setaffinity(nix::unistd::Pid::from_raw(0), &set).map_err(|source| ShmError::Scheduler {
        what: format!("pinning to CPU {cpu}"),
        source,
    })
}

/// A value alone on its own pair of cache lines (the adjacent-line
/// prefetcher pulls 128 bytes), so ping and pong never share a line.
#[repr(C, align(128))]
struct Line(AtomicU64);

/// Cross-core cache-line round trip: this thread (pinned to `cpu_a`) writes
/// a counter on one line, a thread pinned to `cpu_b` spins until it sees it
/// and echoes it on another line; timed on this thread's TSC from the store
/// to the echo's arrival. Same fences and spin as the shm polling RTT.
pub fn cacheline_rtt(
    cpu_a: usize,
    cpu_b: usize,
    warmup: u64,
    samples: u64,
) -> Result<SampleSet, ShmError> {
    pin_current_thread(cpu_a)?;
    let ping = Arc::new(Line(AtomicU64::new(0)));
    let pong = Arc::new(Line(AtomicU64::new(0)));
    let stop = Arc::new(AtomicBool::new(false));
    let total = warmup + samples;
    let echo = {
        let (ping, pong, stop) = (ping.clone(), pong.clone(), stop.clone());
        std::thread::spawn(move || -> Result<(), ShmError> {
            pin_current_thread(cpu_b)?;
            let mut last = 0;
            while last < total && !stop.load(Ordering::Relaxed) {
                let v = ping.0.load(Ordering::Acquire);
                if v != last {
                    pong.0.store(v, Ordering::Release);
                    last = v;
                } else {
                    std::hint::spin_loop();
                }
            }
            Ok(())
        })
    };
    let mut set = SampleSet::new();
    let mut result = Ok(());
    for i in 1..=total {
        let t0 = t_start();
        ping.0.store(i, Ordering::Release);
        let mut spins = 0u64;
        while pong.0.load(Ordering::Acquire) != i {
            std::hint::spin_loop();
            spins += 1;
            if spins > 4_000_000_000 {
                result = Err(ShmError::EchoThread {
                    cpu: cpu_b,
                    what: "stopped answering",
                });
                break;
            }
        }
        let t1 = t_end();
        if result.is_err() {
            break;
        }
        if i > warmup {
            set.record(t1.wrapping_sub(t0))?;
        }
    }
    stop.store(true, Ordering::Relaxed);
    match echo.join() {
        Ok(r) => r?,
        Err(_) => {
            return Err(ShmError::EchoThread {
                cpu: cpu_b,
                what: "panicked",
            });
        }
    }
    result.map(|_| set)
}

/// One timed plain copy of `src` into `dst` (equal lengths).
pub fn time_copy(src: &[u8], dst: &mut [u8]) -> u64 {
    let n = src.len().min(dst.len());
    let t0 = t_start();
    // SAFETY: two distinct slices, each at least `n` bytes: valid and disjoint.
    unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), dst.as_mut_ptr(), n) };
    let t1 = t_end_stores();
    std::hint::black_box(dst);
    t1.wrapping_sub(t0)
}

/// The empty copy window, `samples` times: `lfence;rdtsc;lfence` then
/// `mfence;rdtscp;lfence` with nothing between, the timer's own cost that
/// every copy window's figure includes.
pub fn timer_overhead(samples: u64) -> Result<SampleSet, ShmError> {
    let mut set = SampleSet::new();
    for _ in 0..samples {
        let t0 = t_start();
        let t1 = t_end_stores();
        set.record(t1.wrapping_sub(t0))?;
    }
    Ok(set)
}

/// As [`time_copy`], with every line of `src` flushed from the caches first:
/// the reference a cold read (CLFLUSHed slot) is compared with.
pub fn time_copy_cold(src: &[u8], dst: &mut [u8]) -> u64 {
    flush_lines(src);
    time_copy(src, dst)
}

/// CLFLUSH of every cache line of `bytes`, then MFENCE (x86_64; elsewhere
/// nothing is flushed).
fn flush_lines(bytes: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_clflush, _mm_mfence};
        for line in bytes.chunks(64) {
            // SAFETY: a pointer into a live slice; CLFLUSH only needs a
            // mapped address and changes no data. SSE2 is baseline on x86_64.
            unsafe { _mm_clflush(line.as_ptr()) };
        }
        // SAFETY: a fence has no memory operands.
        unsafe { _mm_mfence() };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = bytes;
}

/// Plain memcpy of `len` bytes between two private buffers on this CPU
/// (the same `copy_nonoverlapping` the suite uses into the region), the
/// source freshly written: the bandwidth a copy into shared memory is compared with.
/// With `cold`, every line of the source is flushed before each copy (the
/// reference of the cold reads).
pub fn memcpy(len: usize, iterations: u64, cold: bool) -> Result<SampleSet, ShmError> {
    let mut src = vec![0u8; len];
    crate::pattern::fill(&mut src, 1);
    let mut dst = vec![0u8; len];
    let mut set = SampleSet::new();
    // One untimed pass faults the destination's pages in, as the region's are.
    dst.copy_from_slice(&src);
    for _ in 0..iterations {
        let ticks = if cold {
            time_copy_cold(&src, &mut dst)
        } else {
            time_copy(&src, &mut dst)
        };
        set.record(ticks)?;
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memcpy_times_every_iteration() {
        let warm = memcpy(1 << 20, 10, false).unwrap().summary().unwrap();
        assert_eq!(warm.n, 10);
        assert!(warm.min > 0);
        let cold = memcpy(1 << 20, 10, true).unwrap().summary().unwrap();
        assert_eq!(cold.n, 10);
    }

    #[test]
    fn cacheline_rtt_between_two_cpus() {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let b = if cpus > 1 { 1 } else { 0 };
        let s = cacheline_rtt(0, b, 100, 1000).unwrap().summary().unwrap();
        assert_eq!(s.n, 1000);
        assert!(s.p50 > 0);
    }
}
