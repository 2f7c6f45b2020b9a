//! The host end of the shared-memory suite.
//!
//! Everything the guest writes is hostile input: each answer is copied out
//! once (`Pong::load`), checked by `validate_pong` against the request in
//! flight, and only then used; payloads are copied out of the region before
//! they are hashed. A violation ends the suite with an error naming it.
//! All host-side times are host TSC ticks between fenced reads
//! (`vmbench_proto::timing`); guest-side times are the guest's TSC ticks.

mod collect;
mod measure;
#[cfg(test)]
mod tests;

use collect::*;
pub use collect::{flag_faster_than_reference, targets, time_ratio};
use measure::*;

use crate::counters::{Counters, PhaseCounts};
use crate::guest::GuestSummary;
use crate::{Doorbell, Frame, ShmError, pattern, reference, size_label};
use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};
use vmbench_proto::shm::{
    B_GUEST, B_HOST, Expect, FLAG_FLUSH, FLAG_VERIFY, G_ACK, Op, P_FLAGS, P_OP, P_SEQ, Ping, Pong,
    PongCheck, RunShmArgs, Slots, Spin, bounce_value, spin_until, validate_pong,
};
use vmbench_proto::timing::{t_end, t_end_stores, t_start};
use vmbench_proto::{Command, HostEnd, ProtoError, Region};
use vmbench_results::{
    Check, CheckKind, Measurement, MeasurementId, Results, SampleSet, Skipped, Unit, Verification,
    Warning, WarningKind,
};

// What sits inside each timed window (the report's definitions).
const DEF_REF_MEMCPY: &str = "physical reference: memcpy of the frame between two private buffers on the host CPU (the same copy routine as the transfers), timed right before each host write, the window closed by mfence;rdtscp;lfence (every store of the copy globally visible)";
const DEF_REF_MEMCPY_COLD: &str = "physical reference for the cold reads: the same memcpy after CLFLUSH of every line of the source, the window closed by mfence;rdtscp;lfence (every store of the copy globally visible)";
const DEF_HOST_WRITE: &str = "host memcpy of the frame from a private buffer into the slot; host TSC around the copy only, the window closed by mfence;rdtscp;lfence (every store of the copy globally visible)";
const DEF_H2G_END_TO_END: &str = "host write + publish + guest cold read (CLFLUSH of the slot first, outside its own window but inside this one) + guest SHA-256 of its copy + answer seen by the host; host TSC";
const DEF_GUEST_READ_COLD: &str = "guest memcpy from the slot into private memory after CLFLUSH of every line of the slot; guest TSC around the copy only, the window closed by mfence;rdtscp;lfence (every store of the copy globally visible)";
const DEF_GUEST_SHA256: &str = "guest SHA-256 (sha2 crate; SHA-NI when the CPU has it) of its private copy; outside any transfer window; guest TSC";
const DEF_GUEST_READ_WARM: &str = "guest memcpy of the same slot again, right after the cold read (warm caches); guest TSC, the window closed by mfence;rdtscp;lfence (every store of the copy globally visible)";
const DEF_GUEST_SCAN: &str =
    "guest pure read pass over the slot (sum of 8-byte words, no copy), warm; guest TSC";
const DEF_GUEST_WRITE: &str = "guest memcpy of the frame from a private buffer into the slot; guest TSC around the copy only, the window closed by mfence;rdtscp;lfence (every store of the copy globally visible)";
const DEF_HOST_READ: &str = "host memcpy of the slot into a private buffer right after the guest's answer (data as delivered, possibly still in the writer's caches); host TSC, the window closed by mfence;rdtscp;lfence (every store of the copy globally visible)";
const DEF_HOST_READ_COLD: &str = "host memcpy of the slot after CLFLUSH of every line; host TSC around the copy only, the window closed by mfence;rdtscp;lfence (every store of the copy globally visible)";
const DEF_G2H_END_TO_END: &str =
    "request published + guest write + answer seen + host copy-out + host SHA-256 check; host TSC";

/// What to measure and how much.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Discarded round trips before the timed ones.
    pub warmup: u64,
    /// Timed polling round trips.
    pub rtt_samples: u64,
    /// Doorbell round trips (0: none).
    pub doorbell_rounds: u64,
    /// Frame sizes of the transfers.
    pub frames: Vec<Frame>,
    /// Timed transfers per frame and direction (one more is run and discarded).
    pub frame_iterations: u64,
    /// Sizes of the bandwidth curve (host→guest).
    pub sweep: Vec<u64>,
    /// Timed transfers per size of the sweep.
    pub sweep_iterations: u64,
    /// Rounds of the polling measurement: each runs one batch of each kind
    /// (bounce and Echo, with and without PAUSE), interleaved.
    pub batches: u64,
    /// Round trips per batch.
    pub batch_len: u64,
    /// CPUs for the eventfd reference: (this thread's, the peer's).
    pub ref_cpus: Option<(usize, usize)>,
    /// The eventfd reference ([`crate::reference::eventfd_rtt`]), measured
    /// by the caller while the peer CPU was idle (the VM paused, the
    /// loopback's guest end not started).
    pub eventfd: Option<SampleSet>,
    /// Host TSC frequency, for ns and GB/s.
    pub tsc_khz: f64,
    /// The guest's own TSC frequency, when it knows one: the guest-side
    /// figures are in its ticks.
    pub guest_tsc_khz: Option<f64>,
    /// Keep every raw sample (for `--raw-csv`).
    pub keep_raw: bool,
    /// How long one request may take before the guest is declared hung.
    pub request_timeout: Duration,
    /// A comparison arm (UC or WC mapping), else None (the WB suite).
    pub arm: Option<vmbench_proto::Mapping>,
}

impl Plan {
    /// The default: stable p99.9 for the round trips, every frame, the full curve.
    pub fn full(tsc_khz: f64) -> Plan {
        Plan {
            warmup: 10_000,
            rtt_samples: 200_000,
            doorbell_rounds: 20_000,
            frames: crate::FRAMES.to_vec(),
            frame_iterations: 50,
            sweep: crate::sweep_sizes(64 << 20, 2),
            sweep_iterations: 20,
            batches: 25,
            batch_len: 20_000,
            ref_cpus: None,
            eventfd: None,
            tsc_khz,
            guest_tsc_khz: None,
            keep_raw: false,
            request_timeout: Duration::from_secs(30),
            arm: None,
        }
    }

    /// Small enough for a TCG guest in CI: every kind of measurement, fewer samples.
    pub fn quick(tsc_khz: f64) -> Plan {
        Plan {
            warmup: 200,
            rtt_samples: 2_000,
            doorbell_rounds: 200,
            batches: 9,
            batch_len: 2_000,
            frame_iterations: 3,
            sweep: crate::sweep_sizes(4 << 20, 4),
            sweep_iterations: 3,
            ..Plan::full(tsc_khz)
        }
    }

    /// A comparison arm (UC or WC mapping): one frame each way and the RTT.
    pub fn arm(&self, arm: vmbench_proto::Mapping) -> Plan {
        Plan {
            warmup: self.warmup.min(100),
            rtt_samples: self.rtt_samples.min(2_000),
            doorbell_rounds: 0,
            frames: crate::FRAMES
                .iter()
                .copied()
                .filter(|f| f.name == "1080p-32bpp")
                .collect(),
            frame_iterations: self.frame_iterations.min(5),
            sweep: Vec::new(),
            batches: self.batches.min(5),
            batch_len: self.batch_len.min(2_000),
            ref_cpus: None,
            eventfd: None,
            arm: Some(arm),
            ..self.clone()
        }
    }

    /// The measurement id prefix: `shm.`, or `shm.uc.` / `shm.wc.` for an arm.
    pub fn id_prefix(&self) -> String {
        match self.arm {
            Some(m) => format!("shm.{m}."),
            None => "shm.".into(),
        }
    }

    /// The largest transfer, which sizes the slots.
    pub fn max_len(&self) -> u64 {
        self.frames
            .iter()
            .map(Frame::bytes)
            .chain(self.sweep.iter().copied())
            .max()
            .unwrap_or(4096)
    }
}

/// What the host end measured.
#[derive(Debug, Default)]
pub struct HostRun {
    /// The measurements, checks, skips and warnings.
    pub results: Results,
    /// Raw samples by measurement id (when `keep_raw`).
    pub raw: Vec<(String, Vec<u64>)>,
    /// What the guest end reported when stopped.
    pub guest: Option<GuestSummary>,
    /// The host end's counter totals, by phase.
    pub host_counters: PhaseCounts,
    /// Why the host end's hardware counters are absent, when they are.
    pub host_hw_counters_unavailable: Option<String>,
}

impl HostRun {
    /// Takes in the results and raw samples of another run of the suite (a
    /// UC/WC arm); this run's guest summary and counters stay.
    pub fn absorb(&mut self, other: HostRun) {
        self.results.absorb(other.results);
        self.raw.extend(other.raw);
    }

    /// Says once per side why hardware counters are missing.
    pub fn note_counters(&mut self) {
        if let Some(why) = &self.host_hw_counters_unavailable {
            self.results.warnings.push(Warning::new(
                WarningKind::NoHardwareCounters,
                format!(
                    "host: no hardware counters, so no cycles/IPC/cache/TLB figures (context switches only): {why}"
                ),
            ));
        }
        if let Some(why) = self
            .guest
            .as_ref()
            .and_then(|g| g.hw_counters_unavailable.as_ref())
        {
            self.results.warnings.push(Warning::new(
                WarningKind::NoHardwareCounters,
                format!("guest: no hardware counters (context switches only): {why}"),
            ));
        }
    }
}

/// The next suite's first request number (see `run_and_close`).
static NEXT_BASE_SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1 << 32);

/// The guest's end of the region, as the host's suite sees it.
pub struct Session<'a> {
    r: &'a Region,
    /// The RunShm command this suite runs under: an answer to it means the
    /// guest end has left the suite.
    cmd_seq: u64,
    slots: Slots,
    seq: u64,
    /// The last value the bounce words carried (see `vmbench_proto::shm::bounce_value`).
    bounce_last: u64,
    /// The ping line's op is Echo with these flags (what the next Echo
    /// need not store again).
    ping_holds_echo: Option<u32>,
    /// The two words an Echo touches: the ping line's sequence word and
    /// the pong line's acknowledgement (looked up once, not per round trip).
    echo_words: (&'a AtomicU64, &'a AtomicU64),
    next_slot: u64,
    timeout: Duration,
    abort: &'a mut dyn FnMut() -> Option<String>,
}

impl<'a> Session<'a> {
    fn new(
        r: &'a Region,
        cmd_seq: u64,
        slots: Slots,
        base_seq: u64,
        timeout: Duration,
        abort: &'a mut dyn FnMut() -> Option<String>,
    ) -> Self {
        Session {
            r,
            cmd_seq,
            slots,
            seq: base_seq,
            bounce_last: base_seq,
            ping_holds_echo: None,
            echo_words: (r.u64_at(P_SEQ), r.u64_at(G_ACK)),
            next_slot: 0,
            timeout,
            abort,
        }
    }

    /// The next slot in rotation and its offset for `len` bytes.
    fn slot(&mut self, len: u64) -> Result<(u64, usize), ShmError> {
        let slot = self.next_slot;
        self.next_slot = (self.next_slot + 1) % self.slots.count;
        let off = self
            .slots
            .offset(slot, len)
            .ok_or_else(|| ShmError::TooLarge {
                what: "a transfer",
                bytes: len,
                limit: format!("a {}-byte slot", self.slots.slot_bytes),
            })?;
        Ok((slot, off))
    }

    /// Publishes `req` as the next request.
    fn publish(&mut self, req: Req) -> Expect {
        self.ping_holds_echo = None;
        self.seq += 1;
        Ping {
            seq: self.seq,
            op: req.op as u32,
            flags: req.flags,
            slot: req.slot,
            len: req.len,
            seed: req.seed,
            count: req.count,
            phase: req.phase,
        }
        .publish(self.r);
        Expect {
            seq: self.seq,
            op: req.op,
            len: if req.op.uses_slot() { req.len } else { 0 },
        }
    }

    /// Spins (`spin`) until the answer to `e`, then validates it.
    fn wait_spin(&mut self, e: &Expect, spin: Spin) -> Result<Pong, ShmError> {
        let ack = self.r.u64_at(G_ACK);
        let mut watch = Watch::new();
        loop {
            // Cheap poll of the publishing word (Acquire: it is the guest's
            // Release store, so the pong fields behind it are visible); the
            // full copy and checks only once it moved, or now and then, to
            // catch a guest that writes something else.
            let moved = ack.load(std::sync::atomic::Ordering::Acquire) != e.seq - 1;
            if moved || watch.spins == Watch::EVERY {
                let p = Pong::load(self.r);
                match validate_pong(&p, e)? {
                    PongCheck::Answer(p) => return Ok(p),
                    PongCheck::GuestError(status) => {
                        return Err(ShmError::GuestRefused {
                            seq: e.seq,
                            op: format!("{:?}", e.op),
                            why: format!("{status:?}"),
                        });
                    }
                    PongCheck::NotYet => {}
                }
            }
            spin.relax();
            if watch.tick() {
                self.still_waiting(&mut watch, || format!("request {} ({:?})", e.seq, e.op))?;
            }
        }
    }

    /// Spins with PAUSE until the answer to `e` (requests whose own work
    /// dwarfs the wake-up: transfers, Stop).
    fn wait(&mut self, e: &Expect) -> Result<Pong, ShmError> {
        self.wait_spin(e, Spin::Pause)
    }

    /// What a long wait checks every [`Watch::EVERY`] spins: Ctrl-C, the
    /// region, the guest end still serving, and the timeout.
    #[cold]
    fn still_waiting(
        &mut self,
        watch: &mut Watch,
        what: impl FnOnce() -> String,
    ) -> Result<(), ShmError> {
        if let Some(why) = (self.abort)() {
            return Err(ShmError::Aborted(why));
        }
        self.r.check_alive()?;
        self.guest_left()?;
        let waited = watch.waited();
        if waited > self.timeout {
            return Err(ShmError::Timeout {
                what: what(),
                secs: waited.as_secs_f64(),
            });
        }
        Ok(())
    }

    /// One polling round trip: an Echo, the guest waiting for the next
    /// request in `spin` mode and the host waiting for the answer in it.
    ///
    /// The lean path of the protocol: when the ping line already holds an
    /// Echo with these flags (the previous request was one), the request is
    /// one store, the sequence word (Release, which also publishes the op
    /// and flags stored before it, once). An Echo's answer carries nothing
    /// the host uses, so only `ack` is read (Acquire: the guest's
    /// publishing store); an acknowledgement of this request ends the round
    /// trip, anything but it or the previous one goes through the full copy
    /// and checks (`validate_pong`) at once, and the answer's other fields
    /// (its status first) are checked by [`Session::check_echo_answer`]
    /// after each single round trip and each batch.
    #[inline(always)]
    fn echo(&mut self, spin: Spin) -> Result<(), ShmError> {
        use std::sync::atomic::Ordering::{Relaxed, Release};
        let flags = spin.flag();
        if self.ping_holds_echo != Some(flags) {
            self.r.u32_at(P_OP).store(Op::Echo as u32, Relaxed);
            self.r.u32_at(P_FLAGS).store(flags, Relaxed);
            self.ping_holds_echo = Some(flags);
        }
        self.seq += 1;
        let seq = self.seq;
        let (ping_seq, ack) = self.echo_words;
        ping_seq.store(seq, Release);
        let mut watch = Watch::new();
        let answered = spin_until(
            ack,
            spin,
            Watch::EVERY,
            |ack| ack != seq - 1,
            || self.still_waiting(&mut watch, || format!("request {seq} (Echo)")),
        )?;
        if answered == seq {
            return Ok(());
        }
        let e = Expect {
            seq,
            op: Op::Echo,
            len: 0,
        };
        self.wait_spin(&e, spin).map(|_| ())
    }

    /// The full checks of the last Echo's answer, outside any timed window:
    /// [`Session::echo`] reads only `ack`, so a guest that lies in the status
    /// or the other fields of a plain answer is caught here, after the
    /// round trip or batch it lied in.
    fn check_echo_answer(&self) -> Result<(), ShmError> {
        let e = Expect {
            seq: self.seq,
            op: Op::Echo,
            len: 0,
        };
        match validate_pong(&Pong::load(self.r), &e)? {
            PongCheck::Answer(_) => Ok(()),
            PongCheck::NotYet => Err(ShmError::Proto(ProtoError::Violation(format!(
                "guest took back its acknowledgement of request {}",
                e.seq
            )))),
            PongCheck::GuestError(status) => Err(ShmError::GuestRefused {
                seq: e.seq,
                op: "Echo".into(),
                why: format!("{status:?}"),
            }),
        }
    }

    /// `warm` untimed then `rounds` timed rounds of the bare cache-line
    /// bounce with the guest end (both sides spinning in `spin` mode);
    /// returns the timed rounds' host TSC ticks, one fenced pair around all
    /// of them.
    fn bounce(&mut self, warm: u64, rounds: u64, spin: Spin) -> Result<u64, ShmError> {
        use std::sync::atomic::Ordering::Release;
        let first = self.bounce_last;
        let total = warm + rounds;
        let e = self.publish(Req {
            flags: spin.flag(),
            seed: first,
            count: total,
            ..Req::new(Op::Bounce)
        });
        self.bounce_last = first + total;
        let r = self.r;
        let (host, guest) = (r.u64_at(B_HOST), r.u64_at(B_GUEST));
        let mut watch = Watch::new();
        let mut round = |k: u64, watch: &mut Watch| {
            let v = bounce_value(first, k);
            // Release/Acquire as the protocol's hand-offs (plain MOVs on
            // x86-64), so the bounce is the protocol minus its fields.
            host.store(v, Release);
            spin_until(
                guest,
                spin,
                Watch::EVERY,
                |g| g == v,
                || self.still_waiting(watch, || format!("bounce round {k} of {total}")),
            )
        };
        for k in 1..=warm {
            round(k, &mut watch)?;
        }
        let t0 = t_start();
        for k in warm + 1..=total {
            round(k, &mut watch)?;
        }
        let t1 = t_end();
        self.wait(&e)?;
        Ok(t1.wrapping_sub(t0))
    }

    /// Fails when the guest has answered the RunShm command mid-suite (it
    /// does when its end fails: its message, bounded and sanitised), or
    /// claims to have answered a command never sent.
    fn guest_left(&self) -> Result<(), ShmError> {
        use std::sync::atomic::Ordering::{Acquire, Relaxed};
        use vmbench_proto::layout::{GC_RESP_LEN, GC_RESP_SEQ, MAILBOX_BYTES, MAILBOX_OFF};
        let resp = self.r.u64_at(GC_RESP_SEQ).load(Acquire);
        if resp < self.cmd_seq {
            return Ok(());
        }
        if resp > self.cmd_seq {
            return Err(ShmError::Proto(ProtoError::Violation(format!(
                "guest answered command {resp} during the shm suite (command {} in flight)",
                self.cmd_seq
            ))));
        }
        let len = (self.r.u64_at(GC_RESP_LEN).load(Relaxed) as usize).min(MAILBOX_BYTES);
        let msg = self.r.copy_out(MAILBOX_OFF, len).unwrap_or_default();
        let msg: String = String::from_utf8_lossy(&msg).chars().take(500).collect();
        Err(ShmError::PeerGone(format!(
            "the guest end stopped serving the suite: {msg}"
        )))
    }

    fn request(&mut self, req: Req) -> Result<Pong, ShmError> {
        let e = self.publish(req);
        self.wait(&e)
    }
}

/// Counts the spins of a wait; the clock is read only when a check is due
/// (every [`Watch::EVERY`] spins), never on entry: a round trip that ends
/// within them reads no clock at all.
struct Watch {
    spins: u32,
    since: Option<Instant>,
}

impl Watch {
    const EVERY: u32 = 1 << 14;

    fn new() -> Watch {
        Watch {
            spins: 0,
            since: None,
        }
    }

    /// One more spin; true when a check is due.
    #[inline(always)]
    fn tick(&mut self) -> bool {
        self.spins += 1;
        if self.spins > Self::EVERY {
            self.spins = 0;
            return true;
        }
        false
    }

    /// Time since the first check (an underestimate by the spins before it).
    fn waited(&mut self) -> Duration {
        self.since.get_or_insert_with(Instant::now).elapsed()
    }
}

/// One request's fields (the sequence number is the session's).
#[derive(Clone, Copy)]
struct Req {
    op: Op,
    flags: u32,
    slot: u64,
    len: u64,
    seed: u64,
    count: u64,
    phase: u64,
}

impl Req {
    fn new(op: Op) -> Req {
        Req {
            op,
            flags: 0,
            slot: 0,
            len: 0,
            seed: 0,
            count: 0,
            phase: 0,
        }
    }

    /// A slot request: `len` bytes of `slot`, counted under `phase`.
    fn slot(op: Op, flags: u32, slot: u64, len: u64, seed: u64, phase: u64) -> Req {
        Req {
            flags,
            slot,
            len,
            seed,
            phase,
            ..Req::new(op)
        }
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Takes a fresh block of 2^32 request numbers for one suite and writes
/// its base to the ping line and the guest's acknowledgement (the guest end
/// rewrites the same value when it starts serving): nothing is "in flight"
/// yet. Whatever the region held there before is overwritten, never read.
fn start_sequence(r: &Region) -> u64 {
    let base_seq = NEXT_BASE_SEQ.fetch_add(1 << 32, std::sync::atomic::Ordering::Relaxed);
    r.u64_at(P_SEQ)
        .store(base_seq, std::sync::atomic::Ordering::Release);
    r.u64_at(G_ACK)
        .store(base_seq, std::sync::atomic::Ordering::Release);
    base_seq
}

/// Drives the guest end through one RunShm command: sends it, measures per
/// `plan`, stops the guest end and reads its summary. A failure mid-suite
/// keeps every measurement completed so far in the returned run; the error
/// is returned beside it.
pub fn run(
    r: &Region,
    host: &mut HostEnd,
    arm: u64,
    plan: &Plan,
    doorbell: Option<(&mut dyn Doorbell, u64, u64)>,
    abort: &mut dyn FnMut() -> Option<String>,
) -> (HostRun, Result<(), ShmError>) {
    let mut out = HostRun::default();
    let plan = &fit_plan(r, plan, &mut out.results.skipped);
    let slots = match Slots::fit(r.len(), plan.max_len(), 3) {
        Ok(s) => s,
        Err(e) => return (out, Err(e.into())),
    };
    // Fault in every page of the slots before anything is timed (a sparse
    // tmpfs file or a fresh ivshmem backend would otherwise take a page
    // fault and a page clear inside the first copy into each page).
    if let Err(e) = prefault(r, &slots) {
        return (out, Err(e));
    }
    // Requests are numbered from a base only this process chooses, never
    // read back from the region (the guest can write every byte of it): a
    // fresh block of 2^32 per suite, so an answer left over from an earlier
    // suite never matches a request of this one. The ping line is set to
    // the base before the command, so the guest end starts from it.
    let base_seq = start_sequence(r);
    let (vector, host_peer) = doorbell.as_ref().map_or((u64::MAX, 0), |d| (d.1, d.2));
    let args = RunShmArgs {
        arm,
        slots,
        vector,
        host_peer,
        base_seq,
    };
    let mut m = Measure {
        plan,
        c: Collector {
            keep_raw: plan.keep_raw,
            ..Collector::default()
        },
        counters: Counters::open(),
        tallies: (Tally::default(), Tally::default()),
        phases: Vec::new(),
        skipped: Vec::new(),
        src: Vec::new(),
        dst: Vec::new(),
    };
    // The timer's own cost first, before the guest end is sent to work;
    // the cache-line references are measured with the guest end,
    // interleaved with the polling round trips.
    if let Err(e) = m.timer_reference() {
        return (out, Err(e));
    }
    m.eventfd_reference();
    let cmd_seq = host.send_raw(r, Command::RunShm as u32, args.to_args());
    let outcome = {
        let mut s = Session::new(
            r,
            cmd_seq,
            slots,
            base_seq,
            plan.request_timeout,
            &mut *abort,
        );
        let body = m.all(&mut s, doorbell.map(|d| d.0));
        // Stop the guest end whatever happened, unless it is the guest that broke.
        match body {
            Ok(()) => s.request(Req::new(Op::Stop)).map(|_| ()),
            Err(e) => {
                if !e.is_violation()
                    && !matches!(e, ShmError::Aborted(_) | ShmError::Timeout { .. })
                {
                    let _ = s.request(Req::new(Op::Stop));
                }
                Err(e)
            }
        }
    };
    // The guest's summary answers the RunShm command.
    let outcome = outcome.and_then(|()| {
        out.guest = Some(guest_summary(r, host, cmd_seq, plan, abort)?);
        Ok(())
    });
    out.results.skipped.append(&mut m.skipped);
    m.finish(&mut out);
    (out, outcome)
}

/// The plan without what does not fit the region: skipped with the
/// reason, not failed.
fn fit_plan(r: &Region, plan: &Plan, skipped: &mut Vec<Skipped>) -> Plan {
    let data = r.len().saturating_sub(vmbench_proto::DATA_OFF) as u64;
    let too_big = |len: u64| {
        format!(
            "{len} bytes do not fit the {data}-byte data area of a {} MiB region (give a larger --shm-mib)",
            r.len() >> 20
        )
    };
    let mut fitted = plan.clone();
    fitted.frames.retain(|f| {
        let fits = f.bytes() <= data;
        if !fits {
            skipped.push(Skipped {
                id: format!("{}{}", plan.id_prefix(), f.name).into(),
                reason: too_big(f.bytes()),
            });
        }
        fits
    });
    fitted.sweep.retain(|&len| {
        let fits = len <= data;
        if !fits {
            skipped.push(Skipped {
                id: format!("shm.sweep.{}", size_label(len)).into(),
                reason: too_big(len),
            });
        }
        fits
    });
    fitted
}

/// The guest end's summary: its answer to the RunShm command.
fn guest_summary(
    r: &Region,
    host: &mut HostEnd,
    cmd_seq: u64,
    plan: &Plan,
    abort: &mut dyn FnMut() -> Option<String>,
) -> Result<GuestSummary, ShmError> {
    let deadline = Instant::now() + plan.request_timeout;
    let resp = host.wait_response(r, cmd_seq, Command::RunShm as u32, deadline, abort)?;
    if resp.status != vmbench_proto::Status::Ok {
        return Err(ShmError::GuestCannotRun {
            status: format!("{:?}", resp.status),
            message: String::from_utf8_lossy(&resp.payload).into_owned(),
        });
    }
    serde_json::from_slice(&resp.payload).map_err(|e| {
        ShmError::Proto(ProtoError::Violation(format!(
            "guest summary is not valid JSON: {e}"
        )))
    })
}

/// Runs the suite against a guest end on a shared file (the loopback, or
/// `vmbench shm host`), then asks that end to exit and closes the session.
/// `loopback` selects the targets that apply to the run.
pub fn run_and_close(
    r: &Region,
    host: &mut HostEnd,
    plan: &Plan,
    doorbell: Option<(&mut dyn Doorbell, u64, u64)>,
    abort: &mut dyn FnMut() -> Option<String>,
    loopback: bool,
) -> (HostRun, Result<(), ShmError>) {
    let (mut out, outcome) = run(r, host, 0, plan, doorbell, abort);
    if outcome.is_ok() {
        let deadline = Instant::now() + Duration::from_secs(5);
        let _ = host.call(r, Command::Shutdown, [0; 6], deadline, abort);
    }
    host.close(r);
    let checks = targets(&out.results, loopback, false);
    out.results.checks.extend(checks);
    (out, outcome)
}
