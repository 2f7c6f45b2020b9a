//! Eventfd doorbells for the loopback pair (the same kernel object QEMU's
//! ivshmem-doorbell uses on the host side).

use crate::{Doorbell, DoorbellError};
use nix::sys::eventfd::{EfdFlags, EventFd};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// Reads one count from `efd` (non-blocking), polling until `timeout`.
pub fn wait_eventfd(efd: &EventFd, timeout: Duration) -> Result<u64, DoorbellError> {
    vmbench_proto::doorbell::wait_eventfd(efd, timeout).map_err(|e| match e {
        vmbench_proto::doorbell::WaitError::Timeout => DoorbellError::Timeout(timeout),
        other => DoorbellError::Peer(Box::new(other)),
    })
}

/// One end of a loopback doorbell pair: rings `tx`, waits on `rx`.
pub struct EventFdPair {
    /// Written to ring the peer.
    pub tx: EventFd,
    /// Read to wait for the peer.
    pub rx: EventFd,
}

impl EventFdPair {
    /// Two fresh eventfds, inheritable (no CLOEXEC) so a child can take them.
    pub fn new_inheritable() -> Result<(EventFd, EventFd), DoorbellError> {
        let mk = || {
            EventFd::from_flags(EfdFlags::EFD_NONBLOCK).map_err(|source| DoorbellError::Os {
                what: "eventfd",
                source,
            })
        };
        Ok((mk()?, mk()?))
    }

    /// Takes over two inherited descriptors.
    ///
    /// # Safety
    /// `tx` and `rx` must be open eventfd descriptors owned by nobody else in
    /// this process.
    pub unsafe fn from_raw(tx: RawFd, rx: RawFd) -> EventFdPair {
        // SAFETY: the caller guarantees both are owned, open eventfds.
        let (tx, rx) = unsafe { (OwnedFd::from_raw_fd(tx), OwnedFd::from_raw_fd(rx)) };
        // SAFETY: as above: they are eventfds, so the EventFd methods apply.
        let (tx, rx) = unsafe { (EventFd::from_owned_fd(tx), EventFd::from_owned_fd(rx)) };
        EventFdPair { tx, rx }
    }
}

impl EventFdPair {
    /// Takes over two descriptors inherited from the parent (`vmbench shm
    /// guest --doorbell-fds`), after checking that both are open eventfds.
    ///
    /// # Safety
    /// Nothing else in this process may own or close `tx` or `rx`.
    pub unsafe fn from_inherited(tx: RawFd, rx: RawFd) -> Result<EventFdPair, crate::ShmError> {
        for fd in [tx, rx] {
            let target = std::fs::read_link(format!("/proc/self/fd/{fd}")).map_err(|e| {
                crate::ShmError::Descriptor {
                    fd,
                    why: format!("not an open descriptor ({e})"),
                }
            })?;
            if !target.to_string_lossy().contains("eventfd") {
                return Err(crate::ShmError::Descriptor {
                    fd,
                    why: format!("{}, not an eventfd", target.display()),
                });
            }
        }
        // SAFETY: both were just checked to be open eventfds; the caller
        // guarantees nothing else owns them.
        Ok(unsafe { EventFdPair::from_raw(tx, rx) })
    }
}

impl Doorbell for EventFdPair {
    fn ring(&mut self) -> Result<(), DoorbellError> {
        self.tx
            .write(1)
            .map(|_| ())
            .map_err(|source| DoorbellError::Os {
                what: "eventfd write",
                source,
            })
    }

    fn wait(&mut self, timeout: Duration) -> Result<(), DoorbellError> {
        wait_eventfd(&self.rx, timeout).map(|_| ())
    }
}
