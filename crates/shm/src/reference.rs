//! The physical reference, measured in the same run as the suite: what two
//! cores of this machine can do without any VM in between.

use crate::ShmError;
use std::sync::Arc;
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

/// Value the echo thread writes instead of an echo when it fails, so that
/// the timing thread's blocking read returns (an eventfd counts up to
/// u64::MAX - 1).
const ECHO_FAILED: u64 = u64::MAX - 1;

/// The bare eventfd ping-pong, the reference of the doorbell round trip:
/// this thread (pinned to `cpu_a`) writes one eventfd and blocks in read(2)
/// on a second; a thread pinned to `cpu_b` blocks in read(2) on the first
/// and writes the second. Timed on this thread's TSC from before the write
/// to after its read returns. Blocking eventfds, no poll(2): the least a
/// wake-up through the kernel costs.
pub fn eventfd_rtt(
    cpu_a: usize,
    cpu_b: usize,
    warmup: u64,
    samples: u64,
) -> Result<SampleSet, ShmError> {
    use nix::sys::eventfd::{EfdFlags, EventFd};
    pin_current_thread(cpu_a)?;
    let os = |what: &'static str| {
        move |source| ShmError::Doorbell(crate::DoorbellError::Os { what, source })
    };
    let ping = Arc::new(EventFd::from_flags(EfdFlags::EFD_CLOEXEC).map_err(os("eventfd"))?);
    let pong = Arc::new(EventFd::from_flags(EfdFlags::EFD_CLOEXEC).map_err(os("eventfd"))?);
    let total = warmup + samples;
    let echo = {
        let (ping, pong) = (ping.clone(), pong.clone());
        std::thread::spawn(move || -> Result<(), ShmError> {
            let result = pin_current_thread(cpu_b).and_then(|()| {
                for _ in 0..total {
                    ping.read().map_err(os("eventfd read"))?;
                    pong.write(1).map_err(os("eventfd write"))?;
                }
                Ok(())
            });
            if result.is_err() {
                let _ = pong.write(ECHO_FAILED);
            }
            result
        })
    };
    let mut set = SampleSet::new();
    let mut result = Ok(());
    for i in 0..total {
        let t0 = t_start();
        if let Err(e) = ping.write(1).map_err(os("eventfd write")) {
            result = Err(e);
            break;
        }
        let answer = pong.read();
        let t1 = t_end();
        match answer {
            Ok(ECHO_FAILED) => break, // the echo thread's own error is returned below
            Ok(_) => {}
            Err(e) => {
                result = Err(os("eventfd read")(e));
                break;
            }
        }
        if i >= warmup {
            set.record(t1.wrapping_sub(t0))?;
        }
    }
    if result.is_err() {
        // Release the echo thread if it still waits for a ring.
        let _ = ping.write(ECHO_FAILED);
    }
    match echo.join() {
        Ok(r) => r?,
        Err(_) => {
            return Err(ShmError::EchoThread {
                cpu: cpu_b,
                what: "panicked",
            });
        }
    }
    result.map(|()| set)
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
    empty_window(samples, t_end_stores)
}

/// The empty round-trip window, `samples` times: `lfence;rdtsc;lfence` then
/// `rdtscp;lfence` with nothing between, the timer's own cost inside every
/// per-sample round trip.
pub fn timer_overhead_rtt(samples: u64) -> Result<SampleSet, ShmError> {
    empty_window(samples, t_end)
}

/// `t_start` then `end` with nothing between, `samples` times (generic, so
/// each end's asm is inlined into the window as in the windows it stands for).
fn empty_window(samples: u64, end: impl Fn() -> u64) -> Result<SampleSet, ShmError> {
    let mut set = SampleSet::new();
    for _ in 0..samples {
        let t0 = t_start();
        let t1 = end();
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
    fn eventfd_rtt_between_two_cpus() {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let b = if cpus > 1 { 1 } else { 0 };
        let s = eventfd_rtt(0, b, 10, 200).unwrap().summary().unwrap();
        assert_eq!(s.n, 200);
        assert!(s.p50 > 0);
    }
}
