//! The guest end of the shared-memory suite: spins on the ping line, does
//! the request on its own clock (TSC), answers on the pong line.
//!
//! Runs inside the VM's agent (over the module's WB mapping, or a sysfs
//! UC/WC arm) and as `vmbench shm guest` on the host (loopback).

use crate::counters::{Counters, PhaseCounts};
use crate::pattern;
use crate::{Doorbell, DoorbellError, ShmError};
use serde::{Deserialize, Serialize};
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::{Relaxed, Release};
use std::time::{Duration, Instant};
use vmbench_proto::Region;
use vmbench_proto::layout::{HC_STATE, MAILBOX_BYTES};
use vmbench_proto::shm::{
    B_GUEST, B_HOST, FLAG_FLUSH, FLAG_VERIFY, G_ACK, KNOWN_FLAGS, Op, P_FLAGS, P_OP, P_SEQ, Ping,
    Pong, PongStatus, RunShmArgs, Spin, bounce_value, spin_until, validate_ping,
};
use vmbench_proto::timing::{t_end_stores, t_start};

/// What the guest end reports when the host stops the suite.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct GuestSummary {
    /// Requests served.
    pub requests: u64,
    /// Requests refused.
    pub refused: u64,
    /// The last refusal, in words.
    pub last_refusal: Option<String>,
    /// Counter totals by the host's phase number.
    pub counters: PhaseCounts,
    /// Why the guest end's hardware counters are absent, when they are.
    pub hw_counters_unavailable: Option<String>,
    /// Whether the guest's SHA-256 used the CPU's SHA extensions.
    pub sha_ni: bool,
    /// p50 of the guest's empty copy window, in guest TSC ticks: the
    /// timer's own cost inside every guest-side figure.
    #[serde(default)]
    pub timer_overhead_ticks: Option<u64>,
}

/// How long the guest end waits for the next request before concluding the
/// host is gone (the host sends Stop when it is done).
pub const IDLE_LIMIT: Duration = Duration::from_secs(120);

/// One slot operation: read what the host put there (Consume), read it
/// again warm and scan it (Reread), or fill it for the host (Produce), each
/// timed on the guest TSC into `pong`.
fn slot_op(
    r: &Region,
    op: Op,
    off: usize,
    ping: &Ping,
    buf: &mut [u8],
    counters: &mut Counters,
    pong: &mut Pong,
) -> Result<(), ShmError> {
    let len = buf.len();
    if op == Op::Produce {
        pattern::fill(buf, ping.seed);
    }
    counters.start();
    match op {
        Op::Consume => {
            if ping.flags & FLAG_FLUSH != 0 {
                flush(r, off, len)?;
            }
            let t0 = t_start();
            r.copy_out_into(off, buf).map_err(ShmError::Proto)?;
            pong.t[0] = t_end_stores().wrapping_sub(t0);
            if ping.flags & FLAG_VERIFY != 0 {
                let t0 = t_start();
                pong.digest = pattern::sha256(buf);
                pong.t[1] = t_end_stores().wrapping_sub(t0);
            }
        }
        Op::Reread => {
            let t0 = t_start();
            r.copy_out_into(off, buf).map_err(ShmError::Proto)?;
            pong.t[0] = t_end_stores().wrapping_sub(t0);
            let t0 = t_start();
            pong.scan = r.scan(off, len & !7).map_err(ShmError::Proto)?;
            pong.t[2] = t_end_stores().wrapping_sub(t0);
        }
        _ => {
            if ping.flags & FLAG_VERIFY != 0 {
                let t0 = t_start();
                pong.digest = pattern::sha256(buf);
                pong.t[1] = t_end_stores().wrapping_sub(t0);
            }
            let t0 = t_start();
            r.copy_in(off, buf).map_err(ShmError::Proto)?;
            pong.t[0] = t_end_stores().wrapping_sub(t0);
        }
    }
    counters.stop(&ping.phase.to_string());
    pong.len = ping.len;
    Ok(())
}

/// Serves requests from `args.base_seq + 1` until Stop. `doorbell` is the
/// guest side of an interrupt pair, when there is one.
pub fn serve(
    r: &Region,
    args: &RunShmArgs,
    mut doorbell: Option<&mut (dyn Doorbell + '_)>,
) -> Result<GuestSummary, ShmError> {
    args.slots.validate(r.len()).map_err(ShmError::Proto)?;
    let max_len = usize::try_from(args.slots.slot_bytes).map_err(|_| ShmError::TooLarge {
        what: "a slot",
        bytes: args.slots.slot_bytes,
        limit: "this address space".into(),
    })?;
    let mut buf = vec![0u8; max_len];
    // Fault every page in now: a first touch must not land in a timed copy.
    buf.fill(1);
    let mut counters = Counters::open();
    let mut summary = GuestSummary {
        hw_counters_unavailable: counters.hw_unavailable.clone(),
        sha_ni: pattern::sha_ni(),
        timer_overhead_ticks: crate::reference::timer_overhead(1_001)
            .ok()
            .and_then(|set| set.summary().ok())
            .map(|s| s.p50),
        ..GuestSummary::default()
    };
    // Start from a clean answer to "nothing yet": the host's first request is base+1.
    let base_seq = args.base_seq;
    Pong {
        ack: base_seq,
        ..Pong::default()
    }
    .publish(r);
    let mut last = base_seq;
    // After a plain answer (Echo) only `ack` needs storing for the next Echo.
    let mut pong_is_plain = true;
    // How to wait for the next request: as the last request asked.
    let mut spin = Spin::Pause;
    // The words the lean Echo path touches, looked up once.
    let (p_seq, p_op, p_flags, g_ack) = (
        r.u64_at(P_SEQ),
        r.u32_at(P_OP),
        r.u32_at(P_FLAGS),
        r.u64_at(G_ACK),
    );
    loop {
        let seq = wait_for_request(r, p_seq, last, spin)?;
        last = seq;
        // The lean path of an Echo after a plain answer: read the op and
        // flags (Relaxed: the Acquire load of `seq` in wait_for_request
        // already made what the host stored before it visible), store
        // `ack` (Release, after those loads), and nothing else.
        let op = p_op.load(Relaxed);
        let flags = p_flags.load(Relaxed);
        if op == Op::Echo as u32 && flags & !KNOWN_FLAGS == 0 && pong_is_plain {
            spin = Spin::of_flags(flags);
            summary.requests += 1;
            g_ack.store(seq, Release);
            continue;
        }
        let ping = Ping::load(r, seq);
        spin = Spin::of_flags(ping.flags);
        summary.requests += 1;
        let (op, off) = match validate_ping(&ping, &args.slots) {
            Ok(v) => v,
            Err(why) => {
                summary.refused += 1;
                summary.last_refusal = Some(why.to_string());
                answer(r, seq, PongStatus::Refused);
                pong_is_plain = false;
                continue;
            }
        };
        let len = ping.len as usize; // validated against the slot size above
        let mut pong = Pong {
            ack: seq,
            ..Pong::default()
        };
        match (op, off) {
            (Op::Echo, _) => {
                // After any other answer the whole pong line is rewritten
                // once (status Ok, no times, no length): a plain answer,
                // which the lean path above then only re-acknowledges.
                pong.publish(r);
                pong_is_plain = true;
                continue;
            }
            (Op::Bounce, _) => {
                bounce(r, ping.seed, ping.count, spin)?;
                answer(r, seq, PongStatus::Ok);
            }
            (Op::Stop, _) => {
                answer(r, seq, PongStatus::Ok);
                summary.counters = std::mem::take(&mut counters.totals);
                return Ok(summary);
            }
            (Op::DoorbellRounds, _) => {
                let status = match doorbell.as_deref_mut() {
                    Some(d) => match doorbell_rounds(d, ping.count) {
                        Ok(()) => PongStatus::Ok,
                        Err(e) => {
                            summary.last_refusal = Some(crate::describe(&e));
                            PongStatus::Failed
                        }
                    },
                    None => {
                        summary.last_refusal = Some("no doorbell on this guest".into());
                        PongStatus::Failed
                    }
                };
                answer(r, seq, status);
            }
            (Op::Consume | Op::Reread | Op::Produce, Some(off)) => {
                slot_op(r, op, off, &ping, &mut buf[..len], &mut counters, &mut pong)?;
                pong.publish(r);
            }
            (Op::Consume | Op::Reread | Op::Produce, None) => {
                // validate_ping gives an offset for every slot op.
                answer(r, seq, PongStatus::Refused);
            }
        }
        pong_is_plain = false;
    }
}

fn answer(r: &Region, seq: u64, status: PongStatus) {
    Pong {
        ack: seq,
        status: status as u32,
        ..Pong::default()
    }
    .publish(r);
}

fn flush(r: &Region, off: usize, len: usize) -> Result<(), ShmError> {
    #[cfg(target_arch = "x86_64")]
    {
        r.flush(off, len).map_err(ShmError::Proto)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (r, off, len);
        Err(ShmError::NoFlush)
    }
}

fn doorbell_rounds(d: &mut dyn Doorbell, count: u64) -> Result<(), DoorbellError> {
    for round in 0..count {
        d.wait(Duration::from_secs(10))
            .and_then(|()| d.ring())
            .map_err(|e| DoorbellError::Round {
                round,
                source: Box::new(e),
            })?;
    }
    Ok(())
}

/// The guest's side of [`Op::Bounce`]: `count` times, wait for the host's
/// next value and store it back. Nothing but the two words moves: this is
/// the cache-line round trip the polling round trip is compared with.
fn bounce(r: &Region, first: u64, count: u64, spin: Spin) -> Result<(), ShmError> {
    let (host, guest) = (r.u64_at(B_HOST), r.u64_at(B_GUEST));
    let mut idle = IdleCheck::new();
    for k in 1..=count {
        let want = bounce_value(first, k);
        // Acquire/Release as the protocol's sequence words (plain loads and
        // stores on x86-64): the bounce costs what a hand-off costs.
        spin_until(
            host,
            spin,
            IdleCheck::EVERY,
            |v| v == want,
            || idle.check(r),
        )?;
        guest.store(want, Release);
    }
    Ok(())
}

/// The checks a waiting guest end makes now and then (every
/// [`IdleCheck::EVERY`] spins, so that the loop itself is only the load):
/// the region is still there, the host still in session, and not silent
/// for [`IDLE_LIMIT`]. The clock is first read at the first check, not on
/// entry: a wait that ends sooner never calls it.
struct IdleCheck {
    since: Option<Instant>,
}

impl IdleCheck {
    const EVERY: u32 = 1 << 16;

    fn new() -> IdleCheck {
        IdleCheck { since: None }
    }

    #[cold]
    fn check(&mut self, r: &Region) -> Result<(), ShmError> {
        r.check_alive()?;
        if r.u32_at(HC_STATE)
            .load(std::sync::atomic::Ordering::Acquire)
            != vmbench_proto::HostState::Ready as u32
        {
            return Err(ShmError::PeerGone(
                "the host closed its session during the shm suite".into(),
            ));
        }
        let since = *self.since.get_or_insert_with(Instant::now);
        if since.elapsed() > IDLE_LIMIT {
            return Err(ShmError::PeerGone(format!(
                "no request from the host for {} s",
                IDLE_LIMIT.as_secs()
            )));
        }
        Ok(())
    }
}

/// Spins (no sleeps: the polling mode is what is measured; PAUSE or not as
/// `spin` says) until the host publishes a sequence number other than
/// `last` (Acquire: the request's fields are then visible).
fn wait_for_request(r: &Region, p_seq: &AtomicU64, last: u64, spin: Spin) -> Result<u64, ShmError> {
    let mut idle = IdleCheck::new();
    spin_until(
        p_seq,
        spin,
        IdleCheck::EVERY,
        |seq| seq != last,
        || idle.check(r),
    )
}

/// The summary as the RunShm answer's payload (bounded by the mailbox).
pub fn summary_payload(s: &GuestSummary) -> Vec<u8> {
    let mut v = serde_json::to_vec(s).unwrap_or_default();
    if v.len() > MAILBOX_BYTES {
        // Counters by phase are what can grow: drop them rather than the answer.
        let trimmed = GuestSummary {
            counters: Default::default(),
            ..s.clone()
        };
        v = serde_json::to_vec(&trimmed).unwrap_or_default();
    }
    v
}

/// `vmbench shm guest --path FILE`: maps the host end's shared file once it
/// exists with at least a region's size. Either end may start first, so a
/// missing file is waited for, up to `wait`.
pub fn attach_shared_file(
    path: &std::path::Path,
    wait: Duration,
) -> Result<vmbench_proto::MappedRegion, ShmError> {
    let deadline = std::time::Instant::now() + wait;
    loop {
        let ready =
            std::fs::metadata(path).map(|m| m.len() >= vmbench_proto::MIN_REGION_BYTES as u64);
        if let Ok(true) = ready {
            return vmbench_proto::MappedRegion::open_file(
                path,
                vmbench_proto::region::MAX_SHARED_FILE_BYTES,
            )
            .map_err(|source| ShmError::MapSharedFile {
                path: path.to_path_buf(),
                source,
            });
        }
        if std::time::Instant::now() > deadline {
            return Err(ShmError::NoSharedFile {
                path: path.to_path_buf(),
                secs: wait.as_secs(),
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `vmbench shm guest`: a guest end on the host. Answers Ping, RunShm
/// (own mapping only: arm 0) and Shutdown over the command channel, for as
/// many host sessions as come, until Shutdown or `idle` without a host.
pub fn serve_commands(
    r: &Region,
    mut doorbell: Option<&mut dyn Doorbell>,
    idle: Duration,
    log: &mut dyn FnMut(&str),
    abort: &mut dyn FnMut() -> Option<String>,
) -> Result<(), ShmError> {
    use vmbench_proto::{Command, GuestEnd, Status};
    loop {
        let mut g = GuestEnd::attach(r, Instant::now() + idle, abort)?;
        log(&format!("attached to host session {:#x}", g.header.session));
        loop {
            // No command for `idle`: the host end is gone or stuck.
            let Some(req) = g.next(Instant::now() + idle, abort)? else {
                log("host closed its session");
                break;
            };
            match req.command {
                Some(Command::Ping) => g.respond(Status::Ok, &req.args[0].to_le_bytes())?,
                Some(Command::Shutdown) => {
                    g.respond(Status::Ok, b"")?;
                    g.exit();
                    return Ok(());
                }
                Some(Command::RunShm) => {
                    let args = RunShmArgs::from_args(req.args);
                    if args.arm != 0 {
                        g.respond(
                            Status::Unsupported,
                            b"UC/WC mapping arms exist only inside a VM (sysfs resource2)",
                        )?;
                        continue;
                    }
                    match serve(r, &args, doorbell.as_deref_mut()) {
                        Ok(s) => g.respond(Status::Ok, &summary_payload(&s))?,
                        Err(e) => {
                            log(&format!("shm suite ended: {e}"));
                            g.respond(Status::Failed, e.to_string().as_bytes())?
                        }
                    }
                }
                _ => g.respond(
                    Status::UnknownCommand,
                    b"the shm guest end serves Ping, RunShm and Shutdown",
                )?,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shared_file_that_never_appears_says_which_and_what_to_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent");
        let Err(err) = attach_shared_file(&path, Duration::ZERO) else {
            panic!("attached a file that does not exist");
        };
        let text = err.to_string();
        assert!(matches!(err, ShmError::NoSharedFile { .. }), "{text}");
        assert!(
            text.contains("absent") && text.contains("vmbench shm host --path"),
            "{text}"
        );
    }

    #[test]
    fn a_file_too_small_for_a_region_is_not_attached() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("small");
        std::fs::write(&path, b"not a region").unwrap();
        assert!(matches!(
            attach_shared_file(&path, Duration::ZERO),
            Err(ShmError::NoSharedFile { .. })
        ));
    }
}
