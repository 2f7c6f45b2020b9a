//! The host end of the shared-memory suite.
//!
//! Everything the guest writes is hostile input: each answer is copied out
//! once (`Pong::load`), checked by `validate_pong` against the request in
//! flight, and only then used; payloads are copied out of the region before
//! they are hashed. A violation ends the suite with an error naming it.
//! All host-side times are host TSC ticks between fenced reads
//! (`vmbench_proto::timing`); guest-side times are the guest's TSC ticks.

use crate::counters::{Counters, PhaseCounts};
use crate::guest::GuestSummary;
use crate::{Doorbell, Frame, ShmError, pattern, reference, size_label};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use vmbench_proto::shm::{
    Expect, FLAG_FLUSH, FLAG_VERIFY, G_ACK, Op, P_SEQ, Ping, Pong, PongCheck, RunShmArgs, Slots,
    validate_pong,
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
    /// CPUs for the cache-line reference: (this thread's, the peer's).
    pub ref_cpus: Option<(usize, usize)>,
    /// The cache-line reference, measured by the caller while the peer CPU
    /// was idle (the VM paused, the loopback's guest end not started);
    /// else it is measured before the guest end is sent to work.
    pub cacheline: Option<SampleSet>,
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
            ref_cpus: None,
            cacheline: None,
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
            ref_cpus: None,
            cacheline: None,
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

    /// Spins until the answer to `e`, then validates it.
    fn wait(&mut self, e: &Expect) -> Result<Pong, ShmError> {
        let ack = self.r.u64_at(G_ACK);
        let start = Instant::now();
        let mut spins = 0u32;
        loop {
            // Cheap poll of the publishing word; the full copy and checks
            // only once it moved (or now and then, to catch a scribbler).
            if ack.load(std::sync::atomic::Ordering::Acquire) != e.seq - 1 || spins == 1 << 14 {
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
            std::hint::spin_loop();
            spins += 1;
            if spins > 1 << 14 {
                spins = 0;
                if let Some(why) = (self.abort)() {
                    return Err(ShmError::Aborted(why));
                }
                self.r.check_alive()?;
                self.guest_left()?;
                if start.elapsed() > self.timeout {
                    return Err(ShmError::Timeout {
                        what: format!("request {} ({:?})", e.seq, e.op),
                        secs: start.elapsed().as_secs_f64(),
                    });
                }
            }
        }
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

/// One measurement's samples on their way to a [`Measurement`].
struct Series {
    id: String,
    definition: String,
    bytes: Option<u64>,
    reference: Option<String>,
    set: SampleSet,
    raw: Vec<u64>,
    counters: BTreeMap<String, u64>,
}

#[derive(Default)]
struct Collector {
    series: Vec<Series>,
    keep_raw: bool,
}

impl Collector {
    /// The p50 of a series recorded so far.
    fn p50_of(&self, id: &str) -> Option<u64> {
        let s = self.series.iter().find(|s| s.id == id)?;
        s.set.summary().ok().map(|summary| summary.p50)
    }

    fn series(
        &mut self,
        id: &str,
        definition: &str,
        bytes: Option<u64>,
        reference: Option<&str>,
    ) -> &mut Series {
        if let Some(i) = self.series.iter().position(|s| s.id == id) {
            return &mut self.series[i];
        }
        self.series.push(Series {
            id: id.to_string(),
            definition: definition.to_string(),
            bytes,
            reference: reference.map(String::from),
            set: SampleSet::new(),
            raw: Vec::new(),
            counters: BTreeMap::new(),
        });
        let last = self.series.len() - 1;
        &mut self.series[last]
    }

    fn record(
        &mut self,
        id: &str,
        definition: &str,
        bytes: Option<u64>,
        reference: Option<&str>,
        v: u64,
    ) -> Result<(), ShmError> {
        let keep = self.keep_raw;
        let s = self.series(id, definition, bytes, reference);
        s.set.record(v)?;
        if keep {
            s.raw.push(v);
        }
        Ok(())
    }

    fn set_counters(&mut self, id: &str, prefix: &str, c: Option<&BTreeMap<String, u64>>) {
        if let (Some(s), Some(c)) = (self.series.iter_mut().find(|s| s.id == id), c) {
            for (k, v) in c {
                s.counters.insert(format!("{prefix}{k}"), *v);
            }
        }
    }

    fn finish(self, clocks: &Clocks, prefix: &str, run: &mut HostRun) {
        for s in self.series {
            let Ok(mut m) = Measurement::from_samples(
                s.id.as_str(),
                &s.definition,
                Unit::TscTicks,
                &s.set,
                Verification::NotApplicable,
            ) else {
                continue;
            };
            // Guest-side windows are in the guest's ticks, with the guest's
            // timer cost; host-side ones (references included) in the host's.
            let guest_side = s.id.contains(".guest-");
            let (khz, timer) = if guest_side {
                (
                    clocks.guest_khz.unwrap_or(clocks.host_khz),
                    clocks.guest_timer,
                )
            } else {
                (clocks.host_khz, clocks.host_timer)
            };
            m.tsc_khz = Some(khz);
            m.bytes = s.bytes;
            if let (Some(_), Some(ovh)) = (s.bytes, timer) {
                subtract_timer(&mut m, ovh);
            }
            // An arm's figures compare with the same measurement over WB.
            m.reference = s.reference.map(MeasurementId::from).or_else(|| {
                let wb = s.id.replacen(prefix, "shm.", 1);
                (prefix != "shm." && wb != s.id).then(|| wb.into())
            });
            m.counters = s.counters;
            if s.id.contains(".guest-") {
                m.warnings.push(Warning::new(
                    WarningKind::GuestClock,
                    "timed on the guest's TSC (the same counter as the host's under KVM without TSC scaling)",
                ));
            }
            run.results.measurements.push(m);
            if !s.raw.is_empty() {
                run.raw.push((s.id, s.raw));
            }
        }
    }
}

/// The clocks the figures are in: each side's TSC frequency and the p50 of
/// its empty copy window.
struct Clocks {
    host_khz: f64,
    guest_khz: Option<f64>,
    host_timer: Option<u64>,
    guest_timer: Option<u64>,
}

/// A transfer's figures without the timer's own cost: the summary minus the
/// empty window's p50 (its GB/s uses it), a warning where that leaves little.
fn subtract_timer(m: &mut Measurement, ovh: u64) {
    m.overhead_subtracted = Some(m.summary.minus(ovh));
    m.overhead_p50 = Some(ovh);
    if m.times_the_timer() {
        m.warnings.push(Warning::new(
            WarningKind::TimerDominates,
            format!(
                "the window is within 3× the timer's own cost ({ovh} ticks): most of its time is the timestamps, so its figures say little about the transfer"
            ),
        ));
    }
}

/// Flags every measurement that beats its physical reference: a copy into
/// shared memory cannot be faster than the same copy between private
/// buffers, so its window does not hold the whole transfer.
pub fn flag_faster_than_reference(results: &mut Results) {
    let times: Vec<(MeasurementId, Option<f64>)> = results
        .measurements
        .iter()
        .map(|m| (m.id.clone(), transfer_time(m)))
        .collect();
    for m in &mut results.measurements {
        let Some(reference) = &m.reference else {
            continue;
        };
        let Some(Some(ref_time)) = times
            .iter()
            .find(|(id, _)| id == reference)
            .map(|(_, t)| *t)
        else {
            continue;
        };
        let Some(time) = transfer_time(m) else {
            continue;
        };
        if m.bytes.is_some() && time < 0.9 * ref_time {
            m.warnings.push(Warning::new(
                WarningKind::FasterThanReference,
                format!(
                    "faster than its physical reference ({reference}): {:.2}× its time, so the window cannot hold the whole transfer (stores still in flight, or data the caches already held); this is not a bandwidth",
                    time / ref_time
                ),
            ));
        }
    }
}

/// A measurement's p50 time in ns, without the timer's cost when known.
fn transfer_time(m: &Measurement) -> Option<f64> {
    m.p50_net_ns()
}

/// Integrity tallies of one direction.
#[derive(Default)]
struct Tally {
    frames: u64,
    mismatches: u64,
    first: Option<String>,
}

impl Tally {
    fn check(&mut self, what: &str, expected: &[u8; 32], got: &[u8; 32]) {
        self.frames += 1;
        if expected != got {
            self.mismatches += 1;
            if self.first.is_none() {
                self.first = Some(format!(
                    "{what}: expected {}, got {}",
                    hex(expected),
                    hex(got)
                ));
            }
        }
    }

    fn into_check(self, id: &str, statement: &str) -> Option<Check> {
        (self.frames > 0).then(|| Check {
            id: id.to_string(),
            kind: CheckKind::Integrity,
            statement: statement.to_string(),
            observed: match &self.first {
                None => format!("{}/{} frames matched (100%)", self.frames, self.frames),
                Some(first) => format!(
                    "{}/{} frames matched; {} MISMATCHED, first: {first}",
                    self.frames - self.mismatches,
                    self.frames,
                    self.mismatches
                ),
            },
            passed: self.mismatches == 0,
        })
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
    // The physical references first, on the same CPUs, before the guest
    // end is sent to work (it spins on the peer CPU while it serves): the
    // timer's own cost, and the cache-line round trip.
    if let Err(e) = m.timer_reference().and_then(|()| m.cacheline_reference()) {
        return (out, Err(e));
    }
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

/// The measurement that carries a phase's counters.
fn phase_measurement(phase: &str) -> String {
    format!("{phase}.end-to-end")
}

/// Everything one run of the suite measures, and what it collects.
struct Measure<'p> {
    plan: &'p Plan,
    c: Collector,
    counters: Counters,
    /// Integrity of the frames: (host→guest, guest→host).
    tallies: (Tally, Tally),
    /// Phase names by number (the guest reports its counters by number).
    phases: Vec<String>,
    skipped: Vec<Skipped>,
    /// The host's private buffers.
    src: Vec<u8>,
    dst: Vec<u8>,
}

impl Measure<'_> {
    fn all(
        &mut self,
        s: &mut Session,
        doorbell: Option<&mut dyn Doorbell>,
    ) -> Result<(), ShmError> {
        self.polling_rtt(s)?;
        if self.plan.doorbell_rounds > 0 {
            match doorbell {
                Some(d) => doorbell_rtt(s, d, self.plan, &mut self.c)?,
                None => self.skipped.push(Skipped {
                    id: format!("{}rtt.doorbell", self.plan.id_prefix()).into(),
                    reason: "no doorbell: needs ivshmem-doorbell (vmbench vm boot --doorbell-vectors 2) or the loopback's eventfd pair".into(),
                }),
            }
        }
        for f in &self.plan.frames {
            self.host_to_guest(s, f)?;
            self.guest_to_host(s, f)?;
        }
        self.sweep(s)
    }

    fn timer_reference(&mut self) -> Result<(), ShmError> {
        if self.plan.arm.is_some() {
            return Ok(());
        }
        self.c
            .series(
                TIMER_REFERENCE,
                "the empty copy window on the host: lfence;rdtsc;lfence then mfence;rdtscp;lfence with nothing between; its p50 is subtracted from every host-side transfer (the guest measures its own)",
                None,
                None,
            )
            .set = reference::timer_overhead(self.plan.warmup.max(1_000))?;
        Ok(())
    }

    fn cacheline_reference(&mut self) -> Result<(), ShmError> {
        if self.plan.arm.is_some() {
            return Ok(());
        }
        let id = CACHELINE_REFERENCE.to_string();
        match self.plan.ref_cpus {
            Some((a, b)) => {
                let set = match &self.plan.cacheline {
                    Some(set) => set.clone(),
                    None => {
                        reference::cacheline_rtt(a, b, self.plan.warmup, self.plan.rtt_samples)?
                    }
                };
                self.c
                    .series(
                        &id,
                        &format!("physical reference: CPU {a} stores a counter to one 128-byte-aligned line, a thread on CPU {b} spins (PAUSE) until it sees it and stores it to another line; host TSC from before the store to after the echo is seen (fenced RDTSC at both ends); measured while CPU {b} had nothing else to run (the VM paused, or the guest end not yet started)"),
                        None,
                        None,
                    )
                    .set = set;
            }
            None => self.skipped.push(Skipped {
                id: id.into(),
                reason: "no CPU pair given for the physical reference (pin the run with --cpus)"
                    .into(),
            }),
        }
        Ok(())
    }

    fn polling_rtt(&mut self, s: &mut Session) -> Result<(), ShmError> {
        let plan = self.plan;
        let rtt_id = format!("{}rtt.poll", plan.id_prefix());
        let rtt_def = "host→guest→host notification round trip by polling: host stores seq to its ping line (Release), the guest spins with PAUSE on it and stores seq to its pong line, the host spins until it sees it; host TSC, fenced RDTSC before the store and after the answer is seen. One-way ≈ RTT/2.";
        let rtt_ref = plan.ref_cpus.map(|_| CACHELINE_REFERENCE);
        for i in 0..plan.warmup + plan.rtt_samples {
            let t0 = t_start();
            let e = s.publish(Req::new(Op::Echo));
            s.wait(&e)?;
            let t1 = t_end();
            if i >= plan.warmup {
                self.c
                    .record(&rtt_id, rtt_def, None, rtt_ref, t1.wrapping_sub(t0))?;
            }
        }
        Ok(())
    }

    /// A frame's buffers and the ids of the memcpy references it compares
    /// with: (warm, cold). An arm compares with the same measurement over WB
    /// instead.
    #[allow(clippy::type_complexity)]
    fn frame_setup(
        &mut self,
        f: &Frame,
    ) -> Result<(u64, usize, Option<(String, String)>), ShmError> {
        let len = f.bytes();
        let n = usize::try_from(len).map_err(|_| too_large("a frame", len))?;
        prepare(&mut self.src, n);
        prepare(&mut self.dst, n);
        let refs = self.plan.arm.is_none().then(|| {
            (
                format!("shm.ref.memcpy.{}", f.name),
                format!("shm.ref.memcpy-cold.{}", f.name),
            )
        });
        Ok((len, n, refs))
    }

    fn host_to_guest(&mut self, s: &mut Session, f: &Frame) -> Result<(), ShmError> {
        let (len, n, refs) = self.frame_setup(f)?;
        let (phase, phase_no) = begin_phase(
            &mut self.phases,
            format!("{}h2g.{}", self.plan.id_prefix(), f.name),
        );
        for i in 0..=self.plan.frame_iterations {
            let (seed, expected) = frame(&mut self.src[..n], phase_no, i);
            // The reference copy, interleaved with the transfers so that both
            // see the same machine: the same frame, private buffer to private buffer.
            let reference_ticks = reference::time_copy(&self.src[..n], &mut self.dst[..n]);
            let cold_reference_ticks =
                reference::time_copy_cold(&self.src[..n], &mut self.dst[..n]);
            let (slot, off) = s.slot(len)?;
            self.counters.start();
            let t0 = t_start();
            s.r.copy_in(off, &self.src[..n])?;
            let t1 = t_end_stores();
            let pong = s.request(Req::slot(
                Op::Consume,
                FLAG_FLUSH | FLAG_VERIFY,
                slot,
                len,
                seed,
                phase_no,
            ))?;
            let t2 = t_end_stores();
            self.counters.stop(&phase);
            self.tallies
                .0
                .check(&format!("{phase} #{i}"), &expected, &pong.digest);
            let warm = s.request(Req::slot(Op::Reread, 0, slot, len, 0, phase_no))?;
            if i == 0 {
                continue; // the first transfer of a size warms TLBs and pages: discarded
            }
            if let Some((warm, cold)) = &refs {
                self.c
                    .record(warm, DEF_REF_MEMCPY, Some(len), None, reference_ticks)?;
                self.c.record(
                    cold,
                    DEF_REF_MEMCPY_COLD,
                    Some(len),
                    None,
                    cold_reference_ticks,
                )?;
            }
            let m = refs.as_ref().map(|(warm, _)| warm.as_str());
            let cold = refs.as_ref().map(|(_, cold)| cold.as_str());
            let rows: [(&str, &str, Option<&str>, u64); 6] = [
                ("host-write", DEF_HOST_WRITE, m, t1.wrapping_sub(t0)),
                ("end-to-end", DEF_H2G_END_TO_END, None, t2.wrapping_sub(t0)),
                ("guest-read-cold", DEF_GUEST_READ_COLD, cold, pong.t[0]),
                ("guest-sha256", DEF_GUEST_SHA256, None, pong.t[1]),
                ("guest-read-warm", DEF_GUEST_READ_WARM, m, warm.t[0]),
                ("guest-scan", DEF_GUEST_SCAN, None, warm.t[2]),
            ];
            for (what, def, reference, ticks) in rows {
                self.c
                    .record(&format!("{phase}.{what}"), def, Some(len), reference, ticks)?;
            }
        }
        Ok(())
    }

    fn guest_to_host(&mut self, s: &mut Session, f: &Frame) -> Result<(), ShmError> {
        let (len, n, refs) = self.frame_setup(f)?;
        let (phase, phase_no) = begin_phase(
            &mut self.phases,
            format!("{}g2h.{}", self.plan.id_prefix(), f.name),
        );
        for i in 0..=self.plan.frame_iterations {
            let (seed, expected) = frame(&mut self.src[..n], phase_no, i);
            let (slot, off) = s.slot(len)?;
            self.counters.start();
            let t0 = t_start();
            let pong = s.request(Req::slot(Op::Produce, 0, slot, len, seed, phase_no))?;
            let t1 = t_start();
            s.r.copy_out_into(off, &mut self.dst[..n])?;
            let t2 = t_end_stores();
            let got = pattern::sha256(&self.dst[..n]);
            let t3 = t_end_stores();
            self.counters.stop(&phase);
            self.tallies
                .1
                .check(&format!("{phase} #{i}"), &expected, &got);
            flush(s.r, off, n)?;
            let t4 = t_start();
            s.r.copy_out_into(off, &mut self.dst[..n])?;
            let t5 = t_end_stores();
            if i == 0 {
                continue;
            }
            let m = refs.as_ref().map(|(warm, _)| warm.as_str());
            let cold = refs.as_ref().map(|(_, cold)| cold.as_str());
            let rows: [(&str, &str, Option<&str>, u64); 5] = [
                ("guest-write", DEF_GUEST_WRITE, m, pong.t[0]),
                ("host-read", DEF_HOST_READ, m, t2.wrapping_sub(t1)),
                (
                    "host-read-cold",
                    DEF_HOST_READ_COLD,
                    cold,
                    t5.wrapping_sub(t4),
                ),
                ("host-sha256", DEF_HOST_SHA256, None, t3.wrapping_sub(t2)),
                ("end-to-end", DEF_G2H_END_TO_END, None, t3.wrapping_sub(t0)),
            ];
            for (what, def, reference, ticks) in rows {
                self.c
                    .record(&format!("{phase}.{what}"), def, Some(len), reference, ticks)?;
            }
        }
        Ok(())
    }

    /// The bandwidth curve, host→guest, without hashing.
    fn sweep(&mut self, s: &mut Session) -> Result<(), ShmError> {
        for &len in &self.plan.sweep {
            let n = usize::try_from(len).map_err(|_| too_large("a sweep size", len))?;
            prepare(&mut self.src, n);
            let label = size_label(len);
            let iterations = self.plan.sweep_iterations.max(3);
            let mref = format!("shm.ref.memcpy.{label}");
            self.c
                .series(
                    &mref,
                    &format!(
                        "physical reference: memcpy of {len} bytes between two private host buffers, the window closed by mfence;rdtscp;lfence"
                    ),
                    Some(len),
                    None,
                )
                .set = reference::memcpy(n, iterations, false)?;
            let cold_ref = format!("shm.ref.memcpy-cold.{label}");
            self.c
                .series(
                    &cold_ref,
                    &format!(
                        "physical reference for the cold reads: memcpy of {len} bytes after CLFLUSH of every line of the source, the window closed by mfence;rdtscp;lfence"
                    ),
                    Some(len),
                    None,
                )
                .set = reference::memcpy(n, iterations, true)?;
            for i in 0..=self.plan.sweep_iterations {
                pattern::fill(&mut self.src[..n], i);
                let (slot, off) = s.slot(len)?;
                let t0 = t_start();
                s.r.copy_in(off, &self.src[..n])?;
                let t1 = t_end_stores();
                let pong = s.request(Req::slot(Op::Consume, FLAG_FLUSH, slot, len, 0, u64::MAX))?;
                if i == 0 {
                    continue;
                }
                self.c.record(
                    &format!("shm.sweep.{label}.host-write"),
                    "host memcpy of the size into the slot; host TSC, the window closed by mfence;rdtscp;lfence",
                    Some(len),
                    Some(mref.as_str()),
                    t1.wrapping_sub(t0),
                )?;
                self.c.record(
                    &format!("shm.sweep.{label}.guest-read-cold"),
                    "guest memcpy from the slot after CLFLUSH; guest TSC, the window closed by mfence;rdtscp;lfence",
                    Some(len),
                    Some(cold_ref.as_str()),
                    pong.t[0],
                )?;
            }
        }
        Ok(())
    }

    /// Names the guest's counters by phase, builds the measurements and the
    /// integrity checks into `out`.
    fn finish(self, out: &mut HostRun) {
        let Measure {
            plan,
            mut c,
            counters,
            tallies,
            phases,
            ..
        } = self;
        // Guest counters come keyed by phase number; name them.
        let guest_counters: PhaseCounts = out
            .guest
            .as_ref()
            .map(|g| {
                g.counters
                    .iter()
                    .filter_map(|(k, v)| {
                        let i: usize = k.parse().ok()?;
                        Some((phases.get(i)?.clone(), v.clone()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        for (phase, id) in phases.iter().map(|p| (p, phase_measurement(p))) {
            c.set_counters(&id, "host.", counters.totals.get(phase));
            c.set_counters(&id, "guest.", guest_counters.get(phase));
        }
        let p = plan.id_prefix();
        let clocks = Clocks {
            host_khz: plan.tsc_khz,
            guest_khz: plan.guest_tsc_khz,
            host_timer: c.p50_of(TIMER_REFERENCE),
            guest_timer: out.guest.as_ref().and_then(|g| g.timer_overhead_ticks),
        };
        c.finish(&clocks, &p, out);
        flag_faster_than_reference(&mut out.results);
        out.results
            .warnings
            .extend(tsc_mismatch(plan.guest_tsc_khz, plan.tsc_khz));
        if let Some(check) = tallies.0.into_check(
            &format!("{p}integrity.h2g"),
            "every host→guest frame's SHA-256, computed by the guest over what it read, equals the host's digest of what it wrote",
        ) {
            out.results.checks.push(check);
        }
        if let Some(check) = tallies.1.into_check(
            &format!("{p}integrity.g2h"),
            "every guest→host frame's SHA-256, computed by the host over what it read, equals the digest of the pattern the guest was asked to write",
        ) {
            out.results.checks.push(check);
        }
        out.host_hw_counters_unavailable = counters.hw_unavailable.clone();
        out.host_counters = counters.totals;
    }
}

fn too_large(what: &'static str, bytes: u64) -> ShmError {
    ShmError::TooLarge {
        what,
        bytes,
        limit: "this address space".into(),
    }
}

/// The cache-line round trip between two host CPUs: the physical reference
/// of the polling round trip.
const CACHELINE_REFERENCE: &str = "shm.ref.cacheline-rtt";
/// The host's empty copy window.
const TIMER_REFERENCE: &str = "shm.ref.timer-overhead";
const DEF_HOST_SHA256: &str =
    "host SHA-256 of its private copy (sha2; SHA-NI when present); host TSC";

fn doorbell_rtt(
    s: &mut Session,
    d: &mut dyn Doorbell,
    plan: &Plan,
    c: &mut Collector,
) -> Result<(), ShmError> {
    let id = format!("{}rtt.doorbell", plan.id_prefix());
    let def = "host→guest→host round trip by interrupt: host writes the guest's eventfd (ivshmem-doorbell: KVM irqfd → MSI-X in the guest; loopback: eventfd), the guest wakes from a blocking wait and rings back (doorbell register → ioeventfd; loopback: eventfd), the host wakes from poll(); host TSC around ring and wake";
    let total = plan.warmup.min(1_000) + plan.doorbell_rounds;
    let e = s.publish(Req {
        count: total,
        ..Req::new(Op::DoorbellRounds)
    });
    for i in 0..total {
        let t0 = t_start();
        d.ring()?;
        d.wait(plan.request_timeout)?;
        let t1 = t_end();
        if i >= total - plan.doorbell_rounds {
            c.record(&id, def, None, None, t1.wrapping_sub(t0))?;
        }
    }
    s.wait(&e)?;
    Ok(())
}

/// Registers a phase; the guest keys its counters by the phase's number.
fn begin_phase(phases: &mut Vec<String>, name: String) -> (String, u64) {
    let no = phases.len() as u64;
    phases.push(name.clone());
    (name, no)
}

/// Fills `buf` with iteration `i` of phase `phase`'s frame; returns the seed
/// and the frame's SHA-256 (computed here, outside any timed window).
fn frame(buf: &mut [u8], phase: u64, i: u64) -> (u64, [u8; 32]) {
    let seed = (phase << 32) ^ i ^ 0xF00D;
    pattern::fill(buf, seed);
    (seed, pattern::sha256(buf))
}

fn prefault(r: &Region, slots: &Slots) -> Result<(), ShmError> {
    let zeros = vec![0u8; 1 << 20];
    let start = vmbench_proto::DATA_OFF;
    let end = start + (slots.slot_bytes * slots.count) as usize;
    let mut off = start;
    while off < end {
        let n = zeros.len().min(end - off);
        r.copy_in(off, &zeros[..n])?;
        off += n;
    }
    Ok(())
}

/// Grows `v` to `n` bytes, touching every page now (not inside a window).
fn prepare(v: &mut Vec<u8>, n: usize) {
    if v.len() < n {
        v.resize(n, 0);
        v.fill(1);
    }
}

fn flush(r: &Region, off: usize, len: usize) -> Result<(), ShmError> {
    #[cfg(target_arch = "x86_64")]
    {
        r.flush(off, len).map_err(ShmError::Proto)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (r, off, len);
        Ok(())
    }
}

/// p50 time ratio of a measurement to another (both by id): in ns, each at
/// its own side's TSC frequency and without the timer's cost where known.
pub fn p50_ratio(r: &Results, id: &str, reference: &str) -> Option<f64> {
    let a = r.measurements.iter().find(|m| m.id == id)?;
    let b = r.measurements.iter().find(|m| m.id == reference)?;
    let (ta, tb) = (transfer_time(a)?, transfer_time(b)?);
    (tb > 0.0).then(|| ta / tb)
}

/// The performance targets that apply to this kind of run, checked
/// against the reference measured in the same run.
pub fn targets(r: &Results, loopback: bool, kvm: bool) -> Vec<Check> {
    let mut out = Vec::new();
    if let (true, Some(x)) = (
        loopback,
        p50_ratio(r, "shm.rtt.poll", "shm.ref.cacheline-rtt"),
    ) {
        out.push(Check {
            id: "shm.target.rtt-vs-cacheline".into(),
            kind: CheckKind::Target,
            statement: "loopback polling RTT p50 ≤ 1.5 × the cross-core cache-line round trip p50 (and not below 0.9 ×: no round trip beats the hardware's)"
                .into(),
            observed: format!("{x:.2} ×"),
            passed: (0.9..=1.5).contains(&x),
        });
    }
    let copy = p50_ratio(r, "shm.h2g.4k-32bpp.host-write", "shm.ref.memcpy.4k-32bpp");
    if let (true, Some(x)) = (loopback, copy) {
        // Time ratio → bandwidth ratio is its inverse.
        out.push(Check {
            id: "shm.target.copy-vs-memcpy".into(),
            kind: CheckKind::Target,
            statement: "loopback 4K copy bandwidth ≥ 90% of plain memcpy (and ≤ 110%: a copy into shared memory cannot beat the same copy between private buffers)".into(),
            observed: format!("{:.0}% of memcpy", 100.0 / x),
            passed: (0.9..=1.1).contains(&(1.0 / x)),
        });
    }
    if kvm {
        if let Some(x) = p50_ratio(
            r,
            "shm.h2g.4k-32bpp.guest-read-warm",
            "shm.ref.memcpy.4k-32bpp",
        ) {
            out.push(Check {
                id: "shm.target.guest-read-vs-memcpy".into(),
                kind: CheckKind::Target,
                statement:
                    "KVM, WB mapping: guest read of a 4K frame ≥ 80% of host memcpy bandwidth (and ≤ 110%: faster is not a valid measurement)"
                        .into(),
                observed: format!("{:.0}% of memcpy", 100.0 / x),
                passed: (0.8..=1.1).contains(&(1.0 / x)),
            });
        }
        if let Some(ns) = r
            .measurements
            .iter()
            .find(|m| m.id == "shm.rtt.poll")
            .and_then(|m| m.p50_ns())
        {
            out.push(Check {
                id: "shm.target.rtt-under-1us".into(),
                kind: CheckKind::Target,
                statement: "KVM: polling RTT p50 under 1 µs (on an isolated host)".into(),
                observed: format!("{ns:.0} ns"),
                passed: ns < 1000.0,
            });
        }
    }
    out
}

/// A warning when the guest's TSC frequency (as its kernel reports it)
/// differs from the host's by more than 0.5%: each side's ticks are then
/// converted at its own frequency, and the reader should know.
fn tsc_mismatch(guest_khz: Option<f64>, host_khz: f64) -> Option<Warning> {
    let guest = guest_khz?;
    ((guest / host_khz - 1.0).abs() > 0.005).then(|| {
        Warning::new(
            WarningKind::TscMismatch,
            format!(
                "the guest's TSC runs at {:.3} MHz, the host's at {:.3} MHz: guest-side figures are converted at the guest's frequency, host-side ones at the host's",
                guest / 1e3,
                host_khz / 1e3
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A guest can write every byte of the region, the sequence lines
    /// included: what it leaves there (u64::MAX, about to wrap) is not
    /// where the host's numbering starts.
    #[test]
    fn request_numbers_never_come_from_the_region() {
        let file = tempfile::tempfile().unwrap();
        let mapped = vmbench_proto::region::MappedRegion::map_new_file(
            &file,
            std::path::Path::new("test"),
            1 << 20,
        )
        .unwrap();
        let r = mapped.region();
        use std::sync::atomic::Ordering::Relaxed;
        r.u64_at(P_SEQ).store(u64::MAX, Relaxed);
        r.u64_at(G_ACK).store(u64::MAX, Relaxed);
        let first = start_sequence(r);
        assert!((1 << 32..u64::MAX - (1 << 33)).contains(&first), "{first}");
        assert_eq!(r.u64_at(P_SEQ).load(Relaxed), first);
        assert_eq!(r.u64_at(G_ACK).load(Relaxed), first);
        r.u64_at(P_SEQ).store(u64::MAX, Relaxed);
        let second = start_sequence(r);
        assert!(second >= first + (1 << 32), "{first} {second}");
    }

    fn measured(id: &str, ticks: u64, bytes: Option<u64>, reference: Option<&str>) -> Measurement {
        let mut set = SampleSet::new();
        set.extend([ticks; 5]).unwrap();
        let mut m =
            Measurement::from_samples(id, "x", Unit::TscTicks, &set, Verification::NotApplicable)
                .unwrap();
        m.tsc_khz = Some(1_000_000.0);
        m.bytes = bytes;
        m.reference = reference.map(MeasurementId::from);
        m
    }

    #[test]
    fn a_transfer_faster_than_its_reference_is_flagged_not_a_bandwidth() {
        let mut r = Results {
            measurements: vec![
                measured("shm.ref.memcpy.4KiB", 1_000, Some(4096), None),
                measured(
                    "shm.sweep.4KiB.host-write",
                    400,
                    Some(4096),
                    Some("shm.ref.memcpy.4KiB"),
                ),
                measured(
                    "shm.sweep.4KiB.guest-read-cold",
                    1_050,
                    Some(4096),
                    Some("shm.ref.memcpy.4KiB"),
                ),
            ],
            ..Results::default()
        };
        flag_faster_than_reference(&mut r);
        assert!(
            r.measurements[1].beats_its_reference(),
            "{:?}",
            r.measurements[1].warnings
        );
        assert!(
            r.measurements[1].warnings[0]
                .message
                .contains("0.40× its time")
        );
        assert!(!r.measurements[2].beats_its_reference());
        assert!(!r.measurements[0].beats_its_reference());
    }

    #[test]
    fn the_timers_cost_comes_off_and_small_windows_say_so() {
        let mut m = measured("shm.sweep.64B.host-write", 150, Some(64), None);
        subtract_timer(&mut m, 68);
        assert_eq!(m.overhead_p50, Some(68));
        assert_eq!(m.overhead_subtracted.as_ref().map(|s| s.p50), Some(82));
        // 64 B in 82 ns at 1 GHz.
        let gbps = m.p50_bytes_per_sec().unwrap() / 1e9;
        assert!((gbps - 64.0 / 82.0).abs() < 1e-9, "{gbps}");
        assert!(
            m.warnings[0]
                .message
                .contains("within 3× the timer's own cost"),
            "{:?}",
            m.warnings
        );
        let mut big = measured("shm.sweep.1MiB.host-write", 100_000, Some(1 << 20), None);
        subtract_timer(&mut big, 68);
        assert!(big.warnings.is_empty());
    }

    #[test]
    fn a_guest_tsc_that_differs_from_the_hosts_is_said() {
        assert_eq!(tsc_mismatch(None, 2_600_000.0), None);
        assert_eq!(tsc_mismatch(Some(2_601_000.0), 2_600_000.0), None);
        let w = tsc_mismatch(Some(2_000_000.0), 2_600_000.0).unwrap();
        assert!(
            w.message.contains("2000.000 MHz") && w.message.contains("2600.000 MHz"),
            "{w}"
        );
    }

    #[test]
    fn targets_are_two_sided() {
        let r = |copy: u64| Results {
            measurements: vec![
                measured("shm.ref.memcpy.4k-32bpp", 1_000, Some(1), None),
                measured("shm.h2g.4k-32bpp.host-write", copy, Some(1), None),
                measured("shm.ref.cacheline-rtt", 100, None, None),
                measured("shm.rtt.poll", 110, None, None),
            ],
            ..Results::default()
        };
        let passed = |copy| {
            targets(&r(copy), true, false)
                .iter()
                .find(|c| c.id == "shm.target.copy-vs-memcpy")
                .unwrap()
                .passed
        };
        assert!(passed(1_030));
        assert!(!passed(2_000), "half the bandwidth");
        assert!(!passed(444), "225% of memcpy is not a pass");
    }
}
