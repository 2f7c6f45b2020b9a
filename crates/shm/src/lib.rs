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

#[derive(Debug, thiserror::Error)]
pub enum ShmError {
    #[error(transparent)]
    Proto(#[from] ProtoError),
    #[error("the guest end refused request {seq} ({op}); its last reason: {why}")]
    GuestRefused { seq: u64, op: String, why: String },
    #[error("the other end went away: {0}")]
    PeerGone(String),
    #[error("timed out after {secs:.1} s waiting for the guest's answer to {what}")]
    Timeout { what: String, secs: f64 },
    #[error("{0}")]
    Aborted(String),
    #[error("{what}: {source}")]
    Scheduler {
        what: String,
        #[source]
        source: nix::Error,
    },
    #[error("{what} of {bytes} bytes does not fit {limit}")]
    TooLarge {
        what: &'static str,
        bytes: u64,
        limit: String,
    },
    #[error("starting {exe}")]
    Spawn {
        exe: String,
        #[source]
        source: std::io::Error,
    },
    #[error("descriptor {fd}: {why}")]
    Descriptor { fd: i32, why: String },
    #[error("the guest could not run the shm suite ({status}): {message}")]
    GuestCannotRun { status: String, message: String },
    #[error("recording a sample")]
    Sample(#[from] vmbench_results::StatsError),
    #[error("the echo thread of the cache-line reference (CPU {cpu}) {what}")]
    EchoThread { cpu: usize, what: &'static str },
    #[error("the loopback needs two CPUs; this process may use only {0:?}")]
    TooFewCpus(Vec<usize>),
    #[error("cache flush is only implemented on x86_64")]
    NoFlush,
    #[error("doorbell")]
    Doorbell(#[from] DoorbellError),
}

/// An error and its causes on one line (for the text the guest end sends
/// back in its summary).
pub fn describe(e: &(dyn std::error::Error + 'static)) -> String {
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
    #[error("no doorbell ring within {} ms", .0.as_millis())]
    Timeout(Duration),
    #[error("{what}: {source}")]
    Os {
        what: &'static str,
        #[source]
        source: nix::Error,
    },
    /// The other side of the doorbell (QEMU's ivshmem server, the guest
    /// module) failed in its own terms.
    #[error(transparent)]
    Peer(Box<dyn std::error::Error + Send + Sync>),
    #[error("doorbell round {round}")]
    Round {
        round: u64,
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
    fn ring(&mut self) -> Result<(), DoorbellError>;
    /// Waits (blocking, not spinning) for one ring from the peer.
    fn wait(&mut self, timeout: Duration) -> Result<(), DoorbellError>;
}

/// A frame size of the suite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    pub name: &'static str,
    pub width: u32,
    pub height: u32,
    pub bits_per_pixel: u32,
}

impl Frame {
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
