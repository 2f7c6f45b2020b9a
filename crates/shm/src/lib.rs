//! The shared-memory suite: how fast host and guest talk through ivshmem.
//!
//! - [`guest`]: the guest end (in the VM's agent, or `vmbench shm guest`).
//! - [`host`]: the host end: drives the guest through `vmbench_proto::shm`,
//!   times on the host TSC, checks every answer as hostile input, and turns
//!   samples into `vmbench_results` measurements.
//! - [`reference`]: the physical reference measured in the same run
//!   (cross-core cache-line round trip, plain memcpy).
//! - [`loopback`]: both ends as host processes on two pinned CPUs.
//! - [`counters`]: per-phase perf counters.

pub mod counters;
pub mod eventfd;
pub mod guest;
pub mod host;
pub mod loopback;
pub mod pattern;
pub mod reference;

use std::time::Duration;
use vmbench_proto::ProtoError;

/// Why the shared-memory suite (either end) stopped.
#[derive(Debug, thiserror::Error)]
pub enum ShmError {
    /// The command channel failed (including a protocol violation).
    #[error(transparent)]
    Proto(#[from] ProtoError),
    /// The guest end refused a request the host made.
    #[error("the guest end refused request {seq} ({op}); its last reason: {why}")]
    GuestRefused {
        /// The request's sequence number.
        seq: u64,
        /// The request's op.
        op: String,
        /// The guest end's last refusal, in words.
        why: String,
    },
    /// The other end exited or its VM stopped.
    #[error("the other end went away: {0}")]
    PeerGone(String),
    /// The guest end did not answer in time.
    #[error("timed out after {secs:.1} s waiting for the guest's answer to {what}")]
    Timeout {
        /// The request awaited.
        what: String,
        /// How long was waited.
        secs: f64,
    },
    /// `vmbench shm guest`: the host end's shared file did not appear.
    #[error("{} did not appear within {secs} s (start `vmbench shm host --path` too)", path.display())]
    NoSharedFile {
        /// The file waited for.
        path: std::path::PathBuf,
        /// How long was waited.
        secs: u64,
    },
    /// `vmbench shm guest`: the host end's shared file could not be mapped.
    #[error("mapping {}", path.display())]
    MapSharedFile {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: ProtoError,
    },
    /// Ctrl-C, or the run's deadline.
    #[error("{0}")]
    Aborted(String),
    /// Pinning a thread or setting its priority failed.
    #[error("{what}: {source}")]
    Scheduler {
        /// What was asked of the scheduler.
        what: String,
        /// What the system said.
        #[source]
        source: nix::Error,
    },
    /// A transfer or buffer larger than the region or its slots allow.
    #[error("{what} of {bytes} bytes does not fit {limit}")]
    TooLarge {
        /// What did not fit.
        what: &'static str,
        /// Its size.
        bytes: u64,
        /// What it had to fit in.
        limit: String,
    },
    /// The loopback's shared file could not be created.
    #[error("creating the loopback's shared file")]
    SharedFile(#[source] vmbench_host::files::FileError),
    /// The loopback's guest-end process could not be started.
    #[error("starting {exe}")]
    Spawn {
        /// The executable.
        exe: String,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// An inherited descriptor (the loopback's eventfds) is unusable.
    #[error("descriptor {fd}: {why}")]
    Descriptor {
        /// The descriptor number.
        fd: i32,
        /// What is wrong with it.
        why: String,
    },
    /// The guest answered RunShm with an error status.
    #[error("the guest could not run the shm suite ({status}): {message}")]
    GuestCannotRun {
        /// The answer's status.
        status: String,
        /// The guest's message.
        message: String,
    },
    /// A sample could not be recorded.
    #[error("recording a sample")]
    Sample(#[from] vmbench_results::StatsError),
    /// The cache-line reference's echo thread failed.
    #[error("the echo thread of the cache-line reference (CPU {cpu}) {what}")]
    EchoThread {
        /// The CPU it was pinned to.
        cpu: usize,
        /// What went wrong.
        what: &'static str,
    },
    /// `--cpus` for the loopback is not two different CPUs.
    #[error("--cpus {0:?}: the loopback takes two different CPUs (host end, guest end)")]
    LoopbackCpus(Vec<usize>),
    /// The loopback needs two CPUs and this process may use fewer.
    #[error("the loopback needs two CPUs; this process may use only {0:?}")]
    TooFewCpus(Vec<usize>),
    /// Cold reads need CLFLUSH, which only the x86_64 build has.
    #[error("cache flush is only implemented on x86_64")]
    NoFlush,
    /// A doorbell failed.
    #[error("doorbell")]
    Doorbell(#[from] DoorbellError),
}

/// An error and its causes on one line, as anyhow's `{:#}` prints them (the
/// text the guest end sends back in its summary, and `vmbench shm`'s errors).
pub fn describe(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

/// Why ringing or waiting on a doorbell failed.
#[derive(Debug, thiserror::Error)]
pub enum DoorbellError {
    /// Nothing rang within the timeout.
    #[error("no doorbell ring within {} ms", .0.as_millis())]
    Timeout(Duration),
    /// A system call on the eventfd failed.
    #[error("{what}: {source}")]
    Os {
        /// The call.
        what: &'static str,
        /// What the system said.
        #[source]
        source: nix::Error,
    },
    /// The other side of the doorbell (QEMU's ivshmem server, the guest
    /// module) failed in its own terms.
    #[error(transparent)]
    Peer(Box<dyn std::error::Error + Send + Sync>),
    /// One round of the doorbell measurement failed.
    #[error("doorbell round {round}")]
    Round {
        /// The round's number.
        round: u64,
        /// Why.
        #[source]
        source: Box<DoorbellError>,
    },
}

impl ShmError {
    /// A protocol violation by the guest (as opposed to a setup problem).
    pub fn is_violation(&self) -> bool {
        matches!(self, ShmError::Proto(ProtoError::Violation(_)))
    }
}

/// One side of an interrupt pair: ring the peer, wait to be rung.
pub trait Doorbell {
    /// Interrupts the peer once.
    fn ring(&mut self) -> Result<(), DoorbellError>;
    /// Waits (blocking, not spinning) for one ring from the peer.
    fn wait(&mut self, timeout: Duration) -> Result<(), DoorbellError>;
}

/// A frame size of the suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    /// The frame's name in measurement ids (`1080p-32bpp`).
    pub name: &'static str,
    /// Pixels per line.
    pub width: u32,
    /// Lines.
    pub height: u32,
    /// Bits per pixel (a multiple of 8).
    pub bits_per_pixel: u32,
}

impl Frame {
    /// The frame's size in bytes.
    pub fn bytes(&self) -> u64 {
        u64::from(self.width) * u64::from(self.height) * u64::from(self.bits_per_pixel / 8)
    }
}

/// 1080p, 1440p and 4K at 24 and 32 bits per pixel: video frames, the
/// transfer the suite's users move between host and guest.
pub const FRAMES: [Frame; 6] = [
    Frame {
        name: "1080p-24bpp",
        width: 1920,
        height: 1080,
        bits_per_pixel: 24,
    },
    Frame {
        name: "1080p-32bpp",
        width: 1920,
        height: 1080,
        bits_per_pixel: 32,
    },
    Frame {
        name: "1440p-24bpp",
        width: 2560,
        height: 1440,
        bits_per_pixel: 24,
    },
    Frame {
        name: "1440p-32bpp",
        width: 2560,
        height: 1440,
        bits_per_pixel: 32,
    },
    Frame {
        name: "4k-24bpp",
        width: 3840,
        height: 2160,
        bits_per_pixel: 24,
    },
    Frame {
        name: "4k-32bpp",
        width: 3840,
        height: 2160,
        bits_per_pixel: 32,
    },
];

/// The size sweep: 64 B to 64 MiB in steps of `factor` (2 for the full
/// curve, 4 for a quick one).
pub fn sweep_sizes(max: u64, factor: u64) -> Vec<u64> {
    let mut v = Vec::new();
    let mut s = 64u64;
    while s <= max.min(64 << 20) {
        v.push(s);
        s = s.saturating_mul(factor.max(2));
    }
    v
}

/// Human size for ids: 64B, 4KiB, 64MiB.
pub fn size_label(bytes: u64) -> String {
    if bytes >= 1 << 20 && bytes.is_multiple_of(1 << 20) {
        format!("{}MiB", bytes >> 20)
    } else if bytes >= 1 << 10 && bytes.is_multiple_of(1 << 10) {
        format!("{}KiB", bytes >> 10)
    } else {
        format!("{bytes}B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_and_sweep() {
        assert_eq!(FRAMES[5].bytes(), 3840 * 2160 * 4);
        assert!(FRAMES.iter().all(|f| f.bytes().is_multiple_of(8)));
        let s = sweep_sizes(u64::MAX, 2);
        assert_eq!(s.len(), 21);
        assert_eq!((s[0], s[20]), (64, 64 << 20));
        assert_eq!(sweep_sizes(1 << 20, 4).last(), Some(&(1 << 20)));
        assert_eq!(size_label(64), "64B");
        assert_eq!(size_label(4096), "4KiB");
        assert_eq!(size_label(64 << 20), "64MiB");
    }
}
