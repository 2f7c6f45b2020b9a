//! Host and guest state machines and the command channel.

use crate::layout::*;
use crate::region::Region;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::time::{Duration, Instant};
use vmbench_abi::{command, guest_state, host_state, status};

/// Why a command over the shared region failed.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ProtoError {
    /// The region is too small or its header is not ours.
    #[error("shared region: {0}")]
    Layout(String),
    /// The region could not be mapped.
    #[error("mapping the shared region: {0}")]
    Map(String),
    /// An access outside the region (a bug on this side).
    #[error("access at {off:#x}+{len} is outside the shared region")]
    OutOfBounds {
        /// The offset accessed.
        off: usize,
        /// The bytes accessed.
        len: usize,
    },
    /// The other side did not answer in time.
    #[error("timed out after {secs:.1} s waiting for {what}")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long was waited.
        secs: f64,
    },
    /// The other side broke the protocol (state, session, sequence or length).
    #[error("protocol violation by the other side: {0}")]
    Violation(String),
    /// The other side speaks another protocol version, or is not ready for this host.
    #[error("incompatible peer: {0}")]
    Incompatible(String),
    /// Waiting was cut short (Ctrl-C, or QEMU gone), with why.
    #[error("{0}")]
    Aborted(String),
    /// The file behind the shared region was truncated under us.
    #[error(
        "the shared file was truncated while mapped (by another process that can open it): its pages are gone and nothing in it can be trusted"
    )]
    RegionLost,
}

/// The host's state as the guest reads it.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostState {
    /// Not set up yet, or gone.
    Absent = host_state::ABSENT,
    /// Header and session written: commands may follow.
    Ready = host_state::READY,
    /// Leaving this session.
    Closing = host_state::CLOSING,
}

/// The guest's state as the host reads it.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuestState {
    /// Not attached to the current session.
    Absent = guest_state::ABSENT,
    /// Attached and idle: the last command is answered.
    Ready = guest_state::READY,
    /// Working on a command.
    Busy = guest_state::BUSY,
    /// The guest could not work with this host (message in the mailbox).
    Failed = guest_state::FAILED,
    /// Powering off.
    Exited = guest_state::EXITED,
}

impl GuestState {
    fn from_raw(v: u32) -> Option<GuestState> {
        Some(match v {
            guest_state::ABSENT => GuestState::Absent,
            guest_state::READY => GuestState::Ready,
            guest_state::BUSY => GuestState::Busy,
            guest_state::FAILED => GuestState::Failed,
            guest_state::EXITED => GuestState::Exited,
            _ => return None,
        })
    }
}

/// Commands the host sends. Unknown numbers get [`Status::UnknownCommand`].
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Answer with an empty payload; args[0] is echoed in the status-OK reply's payload.
    Ping = command::PING,
    /// Answer with the guest specification as JSON.
    GetSpec = command::GET_SPEC,
    /// Answer, then power the guest off.
    Shutdown = command::SHUTDOWN,
    /// Exercise the guest module's argument checks (bad ioctls are refused).
    SelfTest = command::SELF_TEST,
    /// Wait (args[1] ms) for an interrupt on MSI-X vector args[0], then ring
    /// peer args[2] on the same vector; answers with the interrupt count.
    DoorbellWait = command::DOORBELL_WAIT,
    /// Run one VM-exit row: args [row, samples, warmup, batch, port, 0].
    /// Samples go to the data area; the answer is a `vmexit::RowRun` as JSON.
    RunVmexit = command::RUN_VMEXIT,
    /// Serve the shared-memory suite (`shm` module) until the host sends
    /// `Stop`: args as `shm::RunShmArgs`; the answer is the guest's summary JSON.
    RunShm = command::RUN_SHM,
}

impl Command {
    /// The command with this number, if there is one.
    pub fn from_raw(v: u32) -> Option<Command> {
        Some(match v {
            command::PING => Command::Ping,
            command::GET_SPEC => Command::GetSpec,
            command::SHUTDOWN => Command::Shutdown,
            command::SELF_TEST => Command::SelfTest,
            command::DOORBELL_WAIT => Command::DoorbellWait,
            command::RUN_VMEXIT => Command::RunVmexit,
            command::RUN_SHM => Command::RunShm,
            _ => return None,
        })
    }
}

/// How the guest answered a command.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Done; the payload is the answer.
    Ok = status::OK,
    /// The command number is not one this guest knows.
    UnknownCommand = status::UNKNOWN_COMMAND,
    /// The arguments are out of range; the payload says which.
    BadArgs = status::BAD_ARGS,
    /// The command ran and failed; the payload says why.
    Failed = status::FAILED,
    /// The request is valid but this guest cannot do it (CPU feature missing).
    Unsupported = status::UNSUPPORTED,
}

impl Status {
    fn from_raw(v: u32) -> Option<Status> {
        Some(match v {
            status::OK => Status::Ok,
            status::UNKNOWN_COMMAND => Status::UnknownCommand,
            status::BAD_ARGS => Status::BadArgs,
            status::FAILED => Status::Failed,
            status::UNSUPPORTED => Status::Unsupported,
            _ => return None,
        })
    }
}

/// An answer, copied out of the mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// How the guest answered.
    pub status: Status,
    /// A copy of the mailbox bytes, at most [`MAILBOX_BYTES`].
    pub payload: Vec<u8>,
}

/// Polling that does not starve a TCG vCPU on a small host: a short spin,
/// then 50 µs sleeps. Control traffic only; timed loops never use this.
fn wait_until<T>(
    r: &Region,
    deadline: Instant,
    what: &str,
    abort: &mut dyn FnMut() -> Option<String>,
    mut poll: impl FnMut() -> Result<Option<T>, ProtoError>,
) -> Result<T, ProtoError> {
    let start = Instant::now();
    let mut spins = 0u32;
    loop {
        r.check_alive()?;
        if let Some(v) = poll()? {
            return Ok(v);
        }
        if spins < 2000 {
            spins += 1;
            std::hint::spin_loop();
            continue;
        }
        if let Some(why) = abort() {
            return Err(ProtoError::Aborted(why));
        }
        if Instant::now() >= deadline {
            return Err(ProtoError::Timeout {
                what: what.to_string(),
                secs: start.elapsed().as_secs_f64(),
            });
        }
        std::thread::sleep(Duration::from_micros(50));
    }
}

fn new_session() -> u64 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mixed = t ^ (u64::from(std::process::id()) << 32) ^ 0x9E37_79B9_7F4A_7C15;
    mixed.max(1)
}

/// The host end: owns the header and host control block. It holds no borrow
/// of the region (the launcher keeps both side by side); every call takes it.
#[derive(Debug)]
pub struct HostEnd {
    session: u64,
    seq: u64,
}

impl HostEnd {
    /// Writes the header, then publishes a new session (state READY).
    pub fn start(r: &Region) -> HostEnd {
        let session = new_session();
        r.u32_at(HC_STATE).store(HostState::Absent as u32, Release);
        r.u64_at(H_MAGIC).store(MAGIC, Relaxed);
        r.u32_at(H_VERSION).store(PROTOCOL_VERSION, Relaxed);
        r.u64_at(H_REGION_BYTES).store(r.len() as u64, Relaxed);
        r.u64_at(H_DATA_OFF).store(DATA_OFF as u64, Relaxed);
        r.u64_at(H_DATA_BYTES)
            .store((r.len() - DATA_OFF) as u64, Relaxed);
        r.u64_at(HC_CMD_SEQ).store(0, Relaxed);
        r.u32_at(HC_CMD).store(0, Relaxed);
        r.u64_at(HC_SESSION).store(session, Relaxed);
        // Publishing READY last makes every field above visible to an Acquire load of it.
        r.u32_at(HC_STATE).store(HostState::Ready as u32, Release);
        HostEnd { session, seq: 0 }
    }

    /// This host start's session number.
    pub fn session(&self) -> u64 {
        self.session
    }

    /// Reads the guest control block once and validates it.
    /// Loads the guest control block once. `resp_seq` first, with Acquire:
    /// it is the guest's publishing store, so everything the guest wrote
    /// before it (status, length, mailbox, session) is visible afterwards.
    fn guest_snapshot(r: &Region) -> Result<(GuestState, u64, u64), ProtoError> {
        let resp = r.u64_at(GC_RESP_SEQ).load(Acquire);
        let raw = r.u32_at(GC_STATE).load(Acquire);
        let state = GuestState::from_raw(raw).ok_or_else(|| {
            ProtoError::Violation(format!("guest state {raw} is not a known state"))
        })?;
        let session = r.u64_at(GC_SESSION).load(Relaxed);
        Ok((state, session, resp))
    }

    fn failure_message(r: &Region) -> String {
        let len = (r.u64_at(GC_RESP_LEN).load(Acquire) as usize).min(MAILBOX_BYTES);
        let bytes = r.copy_out(MAILBOX_OFF, len).unwrap_or_default();
        String::from_utf8_lossy(&bytes).chars().take(500).collect()
    }

    /// Waits until the guest has answered this session.
    pub fn wait_ready(
        &mut self,
        r: &Region,
        deadline: Instant,
        abort: &mut dyn FnMut() -> Option<String>,
    ) -> Result<u32, ProtoError> {
        let session = self.session;
        wait_until(r, deadline, "the guest agent's handshake", abort, || {
            let (state, echo, _) = Self::guest_snapshot(r)?;
            if echo != session {
                return Ok(None); // an earlier session's leftovers, or nothing yet
            }
            match state {
                GuestState::Ready => {
                    let v = r.u32_at(GC_VERSION).load(Relaxed);
                    if v != PROTOCOL_VERSION {
                        return Err(ProtoError::Incompatible(format!(
                            "guest speaks protocol {v}, host {PROTOCOL_VERSION}"
                        )));
                    }
                    Ok(Some(v))
                }
                GuestState::Failed => Err(ProtoError::Incompatible(Self::failure_message(r))),
                GuestState::Exited => Err(ProtoError::Aborted("the guest agent exited".into())),
                GuestState::Absent | GuestState::Busy => Ok(None),
            }
        })
    }

    /// Sends one command and waits for its response.
    pub fn call(
        &mut self,
        r: &Region,
        cmd: Command,
        args: [u64; N_ARGS],
        deadline: Instant,
        abort: &mut dyn FnMut() -> Option<String>,
    ) -> Result<Response, ProtoError> {
        self.call_raw(r, cmd as u32, args, deadline, abort)
    }

    /// As [`HostEnd::call`] with a raw command number (tests send unknown ones).
    pub fn call_raw(
        &mut self,
        r: &Region,
        cmd: u32,
        args: [u64; N_ARGS],
        deadline: Instant,
        abort: &mut dyn FnMut() -> Option<String>,
    ) -> Result<Response, ProtoError> {
        let seq = self.send_raw(r, cmd, args);
        self.wait_response(r, seq, cmd, deadline, abort)
    }

    /// Publishes one command without waiting; returns its sequence number.
    /// For commands that run alongside host work (RunShm): finish with
    /// [`HostEnd::wait_response`].
    pub fn send_raw(&mut self, r: &Region, cmd: u32, args: [u64; N_ARGS]) -> u64 {
        for (i, a) in args.iter().enumerate() {
            r.u64_at(HC_ARGS + 8 * i).store(*a, Relaxed);
        }
        r.u32_at(HC_CMD).store(cmd, Relaxed);
        self.seq += 1;
        r.u64_at(HC_CMD_SEQ).store(self.seq, Release);
        self.seq
    }

    /// Waits for the answer to command `seq` (sent as `cmd`).
    pub fn wait_response(
        &mut self,
        r: &Region,
        seq: u64,
        cmd: u32,
        deadline: Instant,
        abort: &mut dyn FnMut() -> Option<String>,
    ) -> Result<Response, ProtoError> {
        let session = self.session;
        wait_until(
            r,
            deadline,
            &format!("the guest's answer to command {cmd}"),
            abort,
            || {
                let (state, echo, mut resp) = Self::guest_snapshot(r)?;
                if matches!(state, GuestState::Exited | GuestState::Failed) {
                    // Stored after resp_seq: with that state visible, a published
                    // answer is too; re-read so it is not taken for a dead guest.
                    resp = r.u64_at(GC_RESP_SEQ).load(Acquire);
                }
                if echo != session {
                    return Err(ProtoError::Violation(format!(
                        "guest session changed from {session:#x} to {echo:#x} mid-command"
                    )));
                }
                if resp > seq {
                    return Err(ProtoError::Violation(format!(
                        "guest answered command {resp} before it was sent (last sent {seq})"
                    )));
                }
                // An answer already published wins over a later Exited/Failed
                // (a guest may answer Shutdown and exit at once).
                if resp < seq {
                    if state == GuestState::Failed {
                        return Err(ProtoError::Incompatible(Self::failure_message(r)));
                    }
                    if state == GuestState::Exited {
                        return Err(ProtoError::Aborted("the guest agent exited".into()));
                    }
                    return Ok(None);
                }
                // resp == seq: the Acquire load of resp_seq covers status and length.
                let raw_status = r.u32_at(GC_STATUS).load(Acquire);
                let status = Status::from_raw(raw_status).ok_or_else(|| {
                    ProtoError::Violation(format!("status {raw_status} is not a known status"))
                })?;
                let len = r.u64_at(GC_RESP_LEN).load(Acquire);
                if len > MAILBOX_BYTES as u64 {
                    return Err(ProtoError::Violation(format!(
                        "response length {len} exceeds the {MAILBOX_BYTES}-byte mailbox"
                    )));
                }
                let payload = r.copy_out(MAILBOX_OFF, len as usize)?;
                Ok(Some(Response { status, payload }))
            },
        )
    }

    /// Tells the guest this host is going away.
    pub fn close(&self, r: &Region) {
        r.u32_at(HC_STATE).store(HostState::Closing as u32, Release);
    }
}

/// A command as the guest received it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    /// The command number as written (also when unknown).
    pub raw: u32,
    /// The command, when the number is one.
    pub command: Option<Command>,
    /// The command's arguments.
    pub args: [u64; N_ARGS],
}

/// What the guest learned from the host's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostHeader {
    /// The host's session number.
    pub session: u64,
    /// The region's size in bytes.
    pub region_bytes: u64,
    /// The data area's offset.
    pub data_off: u64,
    /// The data area's size in bytes.
    pub data_bytes: u64,
}

/// The guest end: owns the guest control block and the mailbox.
pub struct GuestEnd<'a> {
    r: &'a Region,
    /// The host's header, as read at attach.
    pub header: HostHeader,
    last_seq: u64,
}

impl<'a> GuestEnd<'a> {
    /// Waits for a host session, checks its header, and answers it.
    pub fn attach(
        r: &'a Region,
        deadline: Instant,
        abort: &mut dyn FnMut() -> Option<String>,
    ) -> Result<GuestEnd<'a>, ProtoError> {
        let header = wait_until(r, deadline, "the host to publish a session", abort, || {
            if r.u32_at(HC_STATE).load(Acquire) != HostState::Ready as u32 {
                return Ok(None);
            }
            if r.u64_at(H_MAGIC).load(Relaxed) != MAGIC {
                return Ok(None);
            }
            Ok(Some(HostHeader {
                session: r.u64_at(HC_SESSION).load(Relaxed),
                region_bytes: r.u64_at(H_REGION_BYTES).load(Relaxed),
                data_off: r.u64_at(H_DATA_OFF).load(Relaxed),
                data_bytes: r.u64_at(H_DATA_BYTES).load(Relaxed),
            }))
        })?;
        let mut g = GuestEnd {
            r,
            header,
            last_seq: r.u64_at(HC_CMD_SEQ).load(Acquire),
        };
        let version = r.u32_at(H_VERSION).load(Relaxed);
        let problem = if version != PROTOCOL_VERSION {
            Some(format!(
                "host speaks protocol {version}, guest {PROTOCOL_VERSION}"
            ))
        } else if header.region_bytes > r.len() as u64 {
            Some(format!(
                "host region is {} bytes but the guest maps only {}",
                header.region_bytes,
                r.len()
            ))
        } else if header.data_off != DATA_OFF as u64
            || header.data_off.checked_add(header.data_bytes) != Some(header.region_bytes)
        {
            Some(format!(
                "inconsistent data area {:#x}+{:#x}",
                header.data_off, header.data_bytes
            ))
        } else {
            None
        };
        if let Some(p) = problem {
            g.fail(&p);
            return Err(ProtoError::Incompatible(p));
        }
        r.u64_at(GC_RESP_SEQ).store(g.last_seq, Relaxed);
        r.u32_at(GC_VERSION).store(PROTOCOL_VERSION, Relaxed);
        r.u64_at(GC_SESSION).store(header.session, Relaxed);
        r.u32_at(GC_STATE).store(GuestState::Ready as u32, Release);
        Ok(g)
    }

    /// Reports a fatal problem to the host (mailbox + state FAILED).
    pub fn fail(&mut self, message: &str) {
        let bytes = &message.as_bytes()[..message.len().min(MAILBOX_BYTES)];
        let _ = self.r.copy_in(MAILBOX_OFF, bytes);
        self.r
            .u64_at(GC_RESP_LEN)
            .store(bytes.len() as u64, Relaxed);
        self.r
            .u64_at(GC_SESSION)
            .store(self.header.session, Relaxed);
        self.r
            .u32_at(GC_STATE)
            .store(GuestState::Failed as u32, Release);
    }

    /// The shared region.
    pub fn region(&self) -> &Region {
        self.r
    }

    /// Waits for the next command. `Ok(None)` when the host closed or started
    /// a new session (the caller re-attaches).
    pub fn next(
        &mut self,
        deadline: Instant,
        abort: &mut dyn FnMut() -> Option<String>,
    ) -> Result<Option<Request>, ProtoError> {
        let session = self.header.session;
        let r = self.r;
        let last = self.last_seq;
        let got = wait_until(self.r, deadline, "a command from the host", abort, || {
            let state = r.u32_at(HC_STATE).load(Acquire);
            if state != HostState::Ready as u32 || r.u64_at(HC_SESSION).load(Relaxed) != session {
                return Ok(Some(None));
            }
            let seq = r.u64_at(HC_CMD_SEQ).load(Acquire);
            if seq == last {
                return Ok(None);
            }
            let raw = r.u32_at(HC_CMD).load(Relaxed);
            let mut args = [0u64; N_ARGS];
            for (i, a) in args.iter_mut().enumerate() {
                *a = r.u64_at(HC_ARGS + 8 * i).load(Relaxed);
            }
            Ok(Some(Some((
                seq,
                Request {
                    raw,
                    command: Command::from_raw(raw),
                    args,
                },
            ))))
        })?;
        match got {
            None => Ok(None),
            Some((seq, req)) => {
                self.last_seq = seq;
                r.u32_at(GC_STATE).store(GuestState::Busy as u32, Release);
                Ok(Some(req))
            }
        }
    }

    /// Answers the command last returned by [`GuestEnd::next`].
    pub fn respond(&mut self, status: Status, payload: &[u8]) -> Result<(), ProtoError> {
        if payload.len() > MAILBOX_BYTES {
            return Err(ProtoError::Layout(format!(
                "response of {} bytes exceeds the {MAILBOX_BYTES}-byte mailbox",
                payload.len()
            )));
        }
        self.r.copy_in(MAILBOX_OFF, payload)?;
        self.r
            .u64_at(GC_RESP_LEN)
            .store(payload.len() as u64, Relaxed);
        self.r.u32_at(GC_STATUS).store(status as u32, Relaxed);
        self.r.u64_at(GC_RESP_SEQ).store(self.last_seq, Release);
        self.r
            .u32_at(GC_STATE)
            .store(GuestState::Ready as u32, Release);
        Ok(())
    }

    /// Bumps the heartbeat (long-running commands show they are alive).
    pub fn heartbeat(&self) {
        self.r.u64_at(GC_HEARTBEAT).fetch_add(1, Relaxed);
    }

    /// Marks the guest gone (before power-off).
    pub fn exit(&self) {
        self.r
            .u32_at(GC_STATE)
            .store(GuestState::Exited as u32, Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A region over heap memory, 8-byte aligned.
    struct Heap(Vec<u64>);
    impl Heap {
        fn new(bytes: usize) -> Heap {
            Heap(vec![0u64; bytes / 8])
        }
        fn region(&mut self) -> Region {
            // SAFETY: the Vec outlives the Region in every test below and is
            // 8-aligned; it is only accessed through the Region meanwhile.
            unsafe { Region::new(self.0.as_mut_ptr().cast(), self.0.len() * 8).unwrap() }
        }
    }

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(10)
    }

    fn never() -> Option<String> {
        None
    }

    fn serve_once(g: &mut GuestEnd) -> Option<Request> {
        let req = g.next(soon(), &mut never).unwrap()?;
        let payload = match req.command {
            Some(Command::Ping) => req.args[0].to_le_bytes().to_vec(),
            Some(_) => b"{}".to_vec(),
            None => {
                g.respond(Status::UnknownCommand, b"").unwrap();
                return Some(req);
            }
        };
        g.respond(Status::Ok, &payload).unwrap();
        Some(req)
    }

    #[test]
    fn handshake_and_commands_with_the_host_first() {
        let mut heap = Heap::new(MIN_REGION_BYTES);
        let r = heap.region();
        std::thread::scope(|s| {
            let mut host = HostEnd::start(&r);
            s.spawn(|| {
                let mut g = GuestEnd::attach(&r, soon(), &mut never).unwrap();
                while let Some(req) = serve_once(&mut g) {
                    if req.command == Some(Command::Shutdown) {
                        g.exit();
                        break;
                    }
                }
            });
            assert_eq!(
                host.wait_ready(&r, soon(), &mut never).unwrap(),
                PROTOCOL_VERSION
            );
            let resp = host
                .call(&r, Command::Ping, [42, 0, 0, 0, 0, 0], soon(), &mut never)
                .unwrap();
            assert_eq!(resp.status, Status::Ok);
            assert_eq!(resp.payload, 42u64.to_le_bytes());
            let resp = host
                .call_raw(&r, 999, [0; N_ARGS], soon(), &mut never)
                .unwrap();
            assert_eq!(resp.status, Status::UnknownCommand);
            let resp = host
                .call(&r, Command::Shutdown, [0; N_ARGS], soon(), &mut never)
                .unwrap();
            assert_eq!(resp.status, Status::Ok);
        });
    }

    #[test]
    fn guest_may_start_first_and_ignores_stale_sessions() {
        let mut heap = Heap::new(MIN_REGION_BYTES);
        let r = heap.region();
        // Leftovers of an earlier session: a READY guest answering another session.
        r.u64_at(GC_SESSION).store(0xdead, Relaxed);
        r.u32_at(GC_STATE).store(GuestState::Ready as u32, Relaxed);
        std::thread::scope(|s| {
            s.spawn(|| {
                let mut g = GuestEnd::attach(&r, soon(), &mut never).unwrap();
                serve_once(&mut g);
            });
            std::thread::sleep(Duration::from_millis(20));
            let mut host = HostEnd::start(&r);
            host.wait_ready(&r, soon(), &mut never).unwrap();
            let resp = host
                .call(&r, Command::Ping, [7, 0, 0, 0, 0, 0], soon(), &mut never)
                .unwrap();
            assert_eq!(resp.payload, 7u64.to_le_bytes());
        });
    }

    #[test]
    fn a_silent_guest_times_out_and_abort_is_honoured() {
        let mut heap = Heap::new(MIN_REGION_BYTES);
        let r = heap.region();
        let mut host = HostEnd::start(&r);
        let err = host
            .wait_ready(&r, Instant::now() + Duration::from_millis(30), &mut never)
            .unwrap_err();
        assert!(matches!(err, ProtoError::Timeout { .. }), "{err}");
        let err = host
            .wait_ready(&r, soon(), &mut || Some("QEMU exited with status 1".into()))
            .unwrap_err();
        assert_eq!(err, ProtoError::Aborted("QEMU exited with status 1".into()));
    }

    #[test]
    fn incompatible_host_version_is_reported_by_the_guest() {
        let mut heap = Heap::new(MIN_REGION_BYTES);
        let r = heap.region();
        let mut host = HostEnd::start(&r);
        r.u32_at(H_VERSION).store(99, Relaxed);
        let err = GuestEnd::attach(&r, soon(), &mut never).err().unwrap();
        assert!(matches!(err, ProtoError::Incompatible(_)));
        let err = host.wait_ready(&r, soon(), &mut never).unwrap_err();
        assert!(err.to_string().contains("host speaks protocol 99"), "{err}");
    }

    /// A guest that writes nonsense into every field it owns: the host must
    /// report a violation (or time out), never panic or read out of bounds.
    #[test]
    fn hostile_guest_fields_are_rejected() {
        let cases: Vec<(usize, u64, &str)> = vec![
            (GC_STATE, 77, "not a known state"),
            (GC_RESP_LEN, (MAILBOX_BYTES as u64) + 1, "exceeds"),
            (GC_RESP_LEN, u64::MAX, "exceeds"),
            (GC_RESP_SEQ, 1000, "before it was sent"),
            (GC_STATUS, 12345, "not a known status"),
            (GC_SESSION, 1, "session changed"),
        ];
        for (off, value, expect) in cases {
            let mut heap = Heap::new(MIN_REGION_BYTES);
            let r = heap.region();
            let mut host = HostEnd::start(&r);
            std::thread::scope(|s| {
                s.spawn(|| {
                    let mut g = GuestEnd::attach(&r, soon(), &mut never).unwrap();
                    let _ = g.next(soon(), &mut never).unwrap();
                    // A well-formed answer, with one field replaced by garbage
                    // before the publishing Release stores.
                    r.copy_in(MAILBOX_OFF, b"ok").unwrap();
                    r.u64_at(GC_RESP_LEN).store(2, Relaxed);
                    r.u32_at(GC_STATUS).store(0, Relaxed);
                    if off == GC_STATE {
                        // A state word that is no state at all, and no answer.
                        r.u32_at(GC_STATE).store(value as u32, Release);
                        return;
                    }
                    let mut seq = 1;
                    match off {
                        GC_STATUS => r.u32_at(off).store(value as u32, Relaxed),
                        GC_RESP_SEQ => seq = value,
                        _ => r.u64_at(off).store(value, Relaxed),
                    }
                    r.u64_at(GC_RESP_SEQ).store(seq, Release);
                    r.u32_at(GC_STATE).store(GuestState::Ready as u32, Release);
                });
                host.wait_ready(&r, soon(), &mut never).unwrap();
                let err = host
                    .call(&r, Command::Ping, [0; N_ARGS], soon(), &mut never)
                    .unwrap_err();
                assert!(err.to_string().contains(expect), "{off:#x}={value}: {err}");
                assert!(matches!(err, ProtoError::Violation(_)), "{err}");
            });
        }
    }

    #[test]
    fn oversized_response_is_refused_guest_side() {
        let mut heap = Heap::new(MIN_REGION_BYTES);
        let r = heap.region();
        let _host = HostEnd::start(&r);
        let mut g = GuestEnd::attach(&r, soon(), &mut never).unwrap();
        assert!(
            g.respond(Status::Ok, &vec![0u8; MAILBOX_BYTES + 1])
                .is_err()
        );
    }

    #[test]
    fn small_or_misaligned_regions_are_refused() {
        let mut v = vec![0u64; 1024];
        // SAFETY: valid memory; the constructor must refuse it for its size.
        let e = unsafe { Region::new(v.as_mut_ptr().cast(), 8192) }.unwrap_err();
        assert!(e.to_string().contains("smaller"));
        let mut big = vec![0u64; MIN_REGION_BYTES / 8 + 1];
        // SAFETY: valid memory, deliberately misaligned by one byte.
        let e = unsafe { Region::new(big.as_mut_ptr().cast::<u8>().add(1), MIN_REGION_BYTES) }
            .unwrap_err();
        assert!(e.to_string().contains("aligned"));
    }
}
