//! The server side of QEMU's ivshmem-doorbell protocol, with this process as
//! peer 0 (Debian's QEMU ships no ivshmem-server; nixpkgs' does, but needing
//! none keeps one code path).
//!
//! Protocol (QEMU docs/specs/ivshmem-spec.rst): a UNIX stream socket, server
//! to client only, each message an 8-byte little-endian int64, optionally with
//! one fd by SCM_RIGHTS. On connect: version 0; the client's id; -1 with the
//! shared-memory fd; for every existing peer, its id N times each with one of
//! its eventfds (used to interrupt that peer on vectors 0..N-1); then the
//! client's own id N times with the eventfds it receives on. QEMU reads the
//! first part synchronously while realizing the device, so the server must be
//! listening before QEMU starts.

use nix::sys::eventfd::{EfdFlags, EventFd};
use nix::sys::socket::{ControlMessage, MsgFlags, UnixAddr, sendmsg};
use std::io::IoSlice;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// This process's peer id; the guest (QEMU) is peer [`GUEST_PEER`].
pub const HOST_PEER: u16 = 0;
/// The guest's (QEMU's) peer id.
pub const GUEST_PEER: u16 = 1;
/// The most MSI-X vectors the server offers.
pub const MAX_VECTORS: u32 = 64;

/// Why the ivshmem server failed.
#[derive(Debug, thiserror::Error)]
pub enum DoorbellError {
    /// The server's socket failed.
    #[error("ivshmem server socket {path}: {why}")]
    Socket {
        /// The socket.
        path: String,
        /// What failed.
        why: String,
    },
    /// QEMU broke the protocol.
    #[error("ivshmem server: {0}")]
    Protocol(String),
    /// An eventfd could not be created or used.
    #[error("eventfd: {0}")]
    EventFd(nix::Error),
    /// A vector beyond the device's.
    #[error("vector {vector} out of range (0..{vectors})")]
    Vector {
        /// The vector asked for.
        vector: u32,
        /// The device's vectors.
        vectors: u32,
    },
    /// The guest did not ring in time.
    #[error("no doorbell from the guest on vector {vector} within {ms} ms")]
    Timeout {
        /// The vector waited on.
        vector: u32,
        /// How long was waited.
        ms: u128,
    },
}

/// The server end of ivshmem-doorbell: this process is peer 0, the guest peer 1.
pub struct DoorbellServer {
    path: PathBuf,
    vectors: u32,
    /// Signalled when the guest rings peer 0 on vector i.
    host_rx: Arc<Vec<EventFd>>,
    /// Written to interrupt the guest on vector i (KVM irqfd / QEMU's handler).
    guest_tx: Arc<Vec<EventFd>>,
    stop: Arc<AtomicBool>,
    serving: Option<std::thread::JoinHandle<Result<UnixStream, DoorbellError>>>,
    client: Option<UnixStream>,
}

fn send(stream: &UnixStream, value: i64, fd: Option<RawFd>) -> Result<(), DoorbellError> {
    let bytes = value.to_le_bytes();
    let iov = [IoSlice::new(&bytes)];
    let fds;
    let cmsg: Vec<ControlMessage> = match fd {
        Some(f) => {
            fds = [f];
            vec![ControlMessage::ScmRights(&fds)]
        }
        None => Vec::new(),
    };
    let n = sendmsg::<UnixAddr>(stream.as_raw_fd(), &iov, &cmsg, MsgFlags::empty(), None)
        .map_err(|e| DoorbellError::Protocol(format!("sending {value}: {e}")))?;
    if n != 8 {
        return Err(DoorbellError::Protocol(format!(
            "short send of {value}: {n} bytes"
        )));
    }
    Ok(())
}

impl DoorbellServer {
    /// Listens on `path` and, in the background, serves the first client
    /// (QEMU) with `shm` and `vectors` interrupt vectors each way.
    pub fn start(
        path: &Path,
        shm: BorrowedFd<'_>,
        vectors: u32,
    ) -> Result<DoorbellServer, DoorbellError> {
        if vectors == 0 || vectors > MAX_VECTORS {
            return Err(DoorbellError::Vector {
                vector: vectors,
                vectors: MAX_VECTORS,
            });
        }
        let sock_err = |why: String| DoorbellError::Socket {
            path: path.display().to_string(),
            why,
        };
        let listener = UnixListener::bind(path).map_err(|e| sock_err(e.to_string()))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| sock_err(e.to_string()))?;
        let mk = || -> Result<Vec<EventFd>, DoorbellError> {
            (0..vectors)
                .map(|_| {
                    EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)
                        .map_err(DoorbellError::EventFd)
                })
                .collect()
        };
        let host_rx = Arc::new(mk()?);
        let guest_tx = Arc::new(mk()?);
        let shm_fd = shm
            .try_clone_to_owned()
            .map_err(|e| DoorbellError::Protocol(format!("dup of the shm fd: {e}")))?;
        let stop = Arc::new(AtomicBool::new(false));
        let (rx, tx, flag) = (host_rx.clone(), guest_tx.clone(), stop.clone());
        let serving = std::thread::spawn(move || -> Result<UnixStream, DoorbellError> {
            let stream = loop {
                match listener.accept() {
                    Ok((s, _)) => break s,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        if flag.load(Ordering::Relaxed) {
                            return Err(DoorbellError::Protocol(
                                "stopped before QEMU connected".into(),
                            ));
                        }
                        std::thread::sleep(Duration::from_millis(2));
                    }
                    Err(e) => return Err(DoorbellError::Protocol(format!("accept: {e}"))),
                }
            };
            stream
                .set_nonblocking(false)
                .map_err(|e| DoorbellError::Protocol(e.to_string()))?;
            send(&stream, 0, None)?; // protocol version
            send(&stream, i64::from(GUEST_PEER), None)?;
            send(&stream, -1, Some(shm_fd.as_raw_fd()))?;
            for e in rx.iter() {
                send(&stream, i64::from(HOST_PEER), Some(e.as_fd().as_raw_fd()))?;
            }
            for e in tx.iter() {
                send(&stream, i64::from(GUEST_PEER), Some(e.as_fd().as_raw_fd()))?;
            }
            Ok(stream)
        });
        Ok(DoorbellServer {
            path: path.to_path_buf(),
            vectors,
            host_rx,
            guest_tx,
            stop,
            serving: Some(serving),
            client: None,
        })
    }

    /// The server's UNIX socket (QEMU's `-chardev socket,path=`).
    pub fn socket(&self) -> &Path {
        &self.path
    }

    /// MSI-X vectors per peer.
    pub fn vectors(&self) -> u32 {
        self.vectors
    }

    /// Waits until QEMU has received its setup (call after QEMU is up).
    pub fn wait_served(&mut self) -> Result<(), DoorbellError> {
        if self.client.is_some() {
            return Ok(());
        }
        let h = self
            .serving
            .take()
            .ok_or_else(|| DoorbellError::Protocol("server thread already finished".into()))?;
        let stream = h
            .join()
            .map_err(|_| DoorbellError::Protocol("server thread panicked".into()))??;
        self.client = Some(stream);
        Ok(())
    }

    fn check(&self, vector: u32) -> Result<usize, DoorbellError> {
        if vector >= self.vectors {
            return Err(DoorbellError::Vector {
                vector,
                vectors: self.vectors,
            });
        }
        Ok(vector as usize)
    }

    /// Interrupts the guest on `vector` (an MSI-X message in the guest).
    pub fn ring_guest(&self, vector: u32) -> Result<(), DoorbellError> {
        let i = self.check(vector)?;
        self.guest_tx[i]
            .write(1)
            .map(|_| ())
            .map_err(DoorbellError::EventFd)
    }

    /// Waits for the guest to ring this host on `vector`; returns the count.
    pub fn wait_from_guest(&self, vector: u32, timeout: Duration) -> Result<u64, DoorbellError> {
        let i = self.check(vector)?;
        vmbench_proto::doorbell::wait_eventfd(&self.host_rx[i], timeout).map_err(|e| match e {
            vmbench_proto::doorbell::WaitError::Timeout => DoorbellError::Timeout {
                vector,
                ms: timeout.as_millis(),
            },
            vmbench_proto::doorbell::WaitError::Read(e) => DoorbellError::EventFd(e),
        })
    }
}

impl Drop for DoorbellServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.serving.take() {
            let _ = h.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::socket::{ControlMessageOwned, recvmsg};
    use std::io::IoSliceMut;

    /// Plays QEMU: reads the whole setup the way ivshmem.c does.
    fn recv(s: &UnixStream) -> (i64, Option<RawFd>) {
        let mut buf = [0u8; 8];
        let mut iov = [IoSliceMut::new(&mut buf)];
        let mut space = nix::cmsg_space!([RawFd; 1]);
        let msg = recvmsg::<UnixAddr>(s.as_raw_fd(), &mut iov, Some(&mut space), MsgFlags::empty())
            .unwrap();
        let fd = msg.cmsgs().unwrap().find_map(|c| match c {
            ControlMessageOwned::ScmRights(fds) => fds.first().copied(),
            _ => None,
        });
        assert_eq!(msg.bytes, 8);
        (i64::from_le_bytes(buf), fd)
    }

    #[test]
    fn sends_the_setup_qemu_expects_and_rings_both_ways() {
        let dir = tempfile::tempdir().unwrap();
        let shm = std::fs::File::create(dir.path().join("shm")).unwrap();
        let sock = dir.path().join("ivshmem.sock");
        let mut server = DoorbellServer::start(&sock, shm.as_fd(), 2).unwrap();
        let client = UnixStream::connect(&sock).unwrap();
        assert_eq!(recv(&client), (0, None));
        assert_eq!(recv(&client).0, 1);
        let (m, shm_fd) = recv(&client);
        assert_eq!(m, -1);
        assert!(shm_fd.is_some());
        let mut host_fds = Vec::new();
        for _ in 0..2 {
            let (id, fd) = recv(&client);
            assert_eq!(id, 0);
            host_fds.push(fd.unwrap());
        }
        let mut guest_fds = Vec::new();
        for _ in 0..2 {
            let (id, fd) = recv(&client);
            assert_eq!(id, 1);
            guest_fds.push(fd.unwrap());
        }
        server.wait_served().unwrap();
        // Host rings the guest: the client's receive eventfd for vector 1 fires.
        server.ring_guest(1).unwrap();
        let mut v = [0u8; 8];
        // SAFETY: guest_fds[1] was just received and stays open for this test.
        let guest_fd = unsafe { BorrowedFd::borrow_raw(guest_fds[1]) };
        assert_eq!(nix::unistd::read(guest_fd, &mut v).unwrap(), 8);
        assert_eq!(u64::from_ne_bytes(v), 1);
        // Guest rings the host on vector 0 (what QEMU's ioeventfd does).
        // SAFETY: host_fds[0] was just received and stays open for this test.
        let host_fd = unsafe { BorrowedFd::borrow_raw(host_fds[0]) };
        nix::unistd::write(host_fd, &1u64.to_ne_bytes()).unwrap();
        assert_eq!(
            server.wait_from_guest(0, Duration::from_secs(1)).unwrap(),
            1
        );
        assert!(matches!(
            server.wait_from_guest(1, Duration::from_millis(20)),
            Err(DoorbellError::Timeout { .. })
        ));
        assert!(matches!(
            server.ring_guest(7),
            Err(DoorbellError::Vector { .. })
        ));
    }
}
