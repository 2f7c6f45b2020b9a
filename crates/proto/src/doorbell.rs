//! Waiting on an eventfd doorbell: used by the host (ivshmem server, loopback)
//! and by the guest agent (the module's MSI-X eventfds).

use nix::sys::eventfd::EventFd;
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

/// Why waiting for a doorbell ended without one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WaitError {
    /// Nothing rang before the deadline.
    #[error("no doorbell within the deadline")]
    Timeout,
    /// The eventfd could not be read.
    #[error("eventfd read: {0}")]
    Read(nix::Error),
}

/// Reads one count from a non-blocking `efd`, sleeping in poll(2) (never
/// spinning) until `timeout`. Returns the count (rings since the last read).
pub fn wait_eventfd(efd: &EventFd, timeout: Duration) -> Result<u64, WaitError> {
    let deadline = Instant::now() + timeout;
    loop {
        match efd.read() {
            Ok(n) => return Ok(n),
            Err(nix::Error::EAGAIN) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(WaitError::Timeout);
                }
                use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
                let mut fds = [PollFd::new(efd.as_fd(), PollFlags::POLLIN)];
                let ms = PollTimeout::from(left.as_millis().min(1000) as u16);
                let _ = poll(&mut fds, ms);
            }
            Err(e) => return Err(WaitError::Read(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::eventfd::EfdFlags;

    #[test]
    fn a_ring_is_read_and_silence_times_out() {
        let e = EventFd::from_flags(EfdFlags::EFD_NONBLOCK).unwrap();
        e.write(3).unwrap();
        assert_eq!(wait_eventfd(&e, Duration::from_secs(1)), Ok(3));
        assert_eq!(
            wait_eventfd(&e, Duration::from_millis(20)),
            Err(WaitError::Timeout)
        );
    }
}
