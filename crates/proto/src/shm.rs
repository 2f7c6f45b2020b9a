//! The shared-memory suite's protocol.
//!
//! It runs inside one [`crate::Command::RunShm`] command: the host sends the
//! command, then drives the suite over two lines of its own, and finally sends
//! [`Op::Stop`]; the guest then answers the command with its summary.
//!
//! ```text
//! ping line (0x180, host-written)      pong line (0x200, guest-written)
//!   +0  seq    u64  (Release: publish)   +0  ack     u64 (Release: publish)
//!   +8  op     u32                       +8  status  u32
//!   +12 flags  u32                       +16 t[0..4] u64 guest TSC ticks
//!   +16 slot   u64                       +48 len     u64
//!   +24 len    u64                       +56 digest  4 x u64 (SHA-256)
//!   +32 seed   u64                       +88 scan    u64
//!   +40 count  u64  (doorbell or bounce rounds)
//!   +48 phase  u64
//! ```
//! The bounce words (0x280 host, 0x300 guest, one u64 on each line pair)
//! carry [`Op::Bounce`] only: the bare cache-line round trip, with no
//! request fields around it.
//! Payload slots: `slots` slots of `slot_bytes` each from the data offset.
//! One request is in flight at a time, so a slot has one owner at a time: the
//! host until it publishes `seq`, the guest until it publishes `ack == seq`.
//! Consecutive requests rotate over the slots so that a cold read is not
//! served by the previous request's cache lines.
//!
//! Every pong the host reads is copied out once ([`Pong::load`]) and then
//! checked by [`validate_pong`], a pure function the fuzz target drives.
//!
//! ## Why each ordering is what it is
//! One line carries each direction: the host writes only the ping line, the
//! guest only the pong line, so a request costs one transfer of the ping
//! line to the guest's core and one of the pong line back (each preceded by
//! the invalidation of the reader's shared copy), as a bare cache-line
//! ping-pong does. The fields are stored Relaxed and the sequence word
//! last with Release; the reader loads the sequence word with Acquire and
//! only then the fields: Release/Acquire on that one word is exactly what
//! makes the fields written before it visible (C++20 [intro.races]: the
//! Acquire load reads the Release store, so they synchronise). Nothing
//! else is needed: no fence, no second store. On x86-64 both are plain
//! `mov`s (TSO already keeps stores in order and loads in order); the
//! orderings stop the compiler from moving the field accesses across the
//! sequence word, and make the same code right on weaker memory models.
//! Ownership of a slot hands over with the same words: the host stops
//! touching a slot once it has Release-stored `seq`, the guest once it has
//! Release-stored `ack == seq`.
//!
//! ## Spinning with or without PAUSE
//! A waiting side re-loads the word it watches. With [`Spin::Pause`] a
//! PAUSE sits between two loads: it frees the core's issue slots for an SMT
//! sibling, saves power, and avoids the memory-order machine clear on loop
//! exit, but it also delays noticing the new value by up to one PAUSE on
//! each side of a round trip (Intel's optimization manual gives about 140
//! cycles from Skylake on; the suite measures what it costs on the CPU at
//! hand: `shm.rtt.poll-pause` beside `shm.rtt.poll`). [`Spin::Busy`] re-loads back to back: the latency
//! mode, for two ends on dedicated cores. On an SMT sibling of the other
//! end, a busy spinner takes issue slots from it, so the other end slows
//! down; inside a VM, a PAUSE loop longer than KVM's pause-loop window
//! (ple_window / pause_filter_count) also makes the vCPU exit. The suite
//! measures both modes; the host says which one the guest uses for its
//! next wait with [`FLAG_SPIN_BUSY`].

use crate::channel::ProtoError;
use crate::layout::{
    DATA_OFF, GUEST_BOUNCE_OFF, GUEST_PONG_OFF, HOST_BOUNCE_OFF, HOST_PING_OFF, LINE_PAIR,
};
use crate::region::Region;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};

/// Ping: the request's sequence number (u64; Release-stored last).
pub const P_SEQ: usize = HOST_PING_OFF;
/// Ping: the [`Op`] (u32).
pub const P_OP: usize = HOST_PING_OFF + 8;
/// Ping: `FLAG_*` bits (u32).
pub const P_FLAGS: usize = HOST_PING_OFF + 12;
/// Ping: the payload slot (u64).
pub const P_SLOT: usize = HOST_PING_OFF + 16;
/// Ping: bytes of the slot the request covers (u64).
pub const P_LEN: usize = HOST_PING_OFF + 24;
/// Ping: the pattern seed of a Produce; a Bounce's first value (u64).
pub const P_SEED: usize = HOST_PING_OFF + 32;
/// Ping: how many doorbell or bounce rounds (u64).
pub const P_COUNT: usize = HOST_PING_OFF + 40;
/// Ping: the phase the request belongs to, for the guest's counters (u64).
pub const P_PHASE: usize = HOST_PING_OFF + 48;

/// Pong: the sequence number answered (u64; Release-stored last).
pub const G_ACK: usize = GUEST_PONG_OFF;
/// Pong: the [`PongStatus`] (u32).
pub const G_STATUS: usize = GUEST_PONG_OFF + 8;
/// Pong: four guest TSC times (4 × u64), meaning per [`Op`].
pub const G_T: usize = GUEST_PONG_OFF + 16;
/// Pong: bytes handled (u64).
pub const G_LEN: usize = GUEST_PONG_OFF + 48;
/// Pong: SHA-256 of what was read or written (32 bytes), with FLAG_VERIFY.
pub const G_DIGEST: usize = GUEST_PONG_OFF + 56;
/// Pong: the wrapping sum of a pure read scan (u64).
pub const G_SCAN: usize = GUEST_PONG_OFF + 88;
/// Bytes of the pong line that carry fields (what [`Pong::from_bytes`] reads).
pub const PONG_BYTES: usize = 96;

/// Bounce: the host's word (u64), the value of the current round.
pub const B_HOST: usize = HOST_BOUNCE_OFF;
/// Bounce: the guest's word (u64), the value of the round last echoed.
pub const B_GUEST: usize = GUEST_BOUNCE_OFF;

const _: () = assert!(P_PHASE + 8 <= HOST_PING_OFF + LINE_PAIR);
const _: () = assert!(G_SCAN + 8 == GUEST_PONG_OFF + PONG_BYTES);
const _: () = assert!(PONG_BYTES <= LINE_PAIR);
const _: () = assert!(B_HOST.is_multiple_of(LINE_PAIR) && B_GUEST.is_multiple_of(LINE_PAIR));
const _: () = assert!(B_HOST >= GUEST_PONG_OFF + LINE_PAIR && B_GUEST >= B_HOST + LINE_PAIR);

/// Guest-side times above this many TSC ticks (about 10 hours at 3 GHz)
/// cannot come from one request: a guest reporting one is lying or broken.
pub const MAX_GUEST_TICKS: u64 = 1 << 47;

/// Request flag: flush the slot's cache lines before the read (a cold read).
pub const FLAG_FLUSH: u32 = 1 << 0;
/// Request flag: hash what was read (Consume) or written (Produce) with SHA-256.
pub const FLAG_VERIFY: u32 = 1 << 1;
/// Request flag: wait without PAUSE ([`Spin::Busy`]) for the next request,
/// and, in a [`Op::Bounce`], for each of its rounds; without it the guest
/// spins with PAUSE.
pub const FLAG_SPIN_BUSY: u32 = 1 << 2;
/// Every flag a request may carry.
pub const KNOWN_FLAGS: u32 = FLAG_FLUSH | FLAG_VERIFY | FLAG_SPIN_BUSY;

/// How a polling loop waits between two loads of the word it watches (see
/// the module's notes on PAUSE).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Spin {
    /// PAUSE between loads.
    Pause,
    /// Loads back to back: the latency mode.
    Busy,
}

impl Spin {
    /// What a spin loop does between two loads.
    #[inline(always)]
    pub fn relax(self) {
        if self == Spin::Pause {
            std::hint::spin_loop();
        }
    }

    /// The mode a request's flags ask the guest to wait in.
    pub fn of_flags(flags: u32) -> Spin {
        if flags & FLAG_SPIN_BUSY != 0 {
            Spin::Busy
        } else {
            Spin::Pause
        }
    }

    /// The request flag that asks for this mode.
    pub fn flag(self) -> u32 {
        match self {
            Spin::Pause => 0,
            Spin::Busy => FLAG_SPIN_BUSY,
        }
    }

    /// The mode's name in measurement ids and reports.
    pub fn name(self) -> &'static str {
        match self {
            Spin::Pause => "pause",
            Spin::Busy => "busy",
        }
    }
}

/// Spins on `word` until `done` accepts what it holds, and returns that.
/// The loop is a load, a compare and (with [`Spin::Pause`]) a PAUSE, its
/// counter in a register; every `every` spins it leaves to `check` (Ctrl-C,
/// a peer gone, a timeout: what may take a system call or read a clock),
/// whose error ends the wait. Acquire: whatever the other side stored
/// before its Release store of the value seen is visible after.
#[inline(always)]
pub fn spin_until<E>(
    word: &std::sync::atomic::AtomicU64,
    spin: Spin,
    every: u32,
    mut done: impl FnMut(u64) -> bool,
    mut check: impl FnMut() -> Result<(), E>,
) -> Result<u64, E> {
    loop {
        for _ in 0..every {
            let v = word.load(Acquire);
            if done(v) {
                return Ok(v);
            }
            spin.relax();
        }
        check()?;
    }
}

/// The value of bounce round `k` of a bounce whose request carried `first`
/// as its seed: the host picks `first` so that no value repeats within a
/// suite (a word left over from an earlier bounce never equals one it waits for).
pub fn bounce_value(first: u64, k: u64) -> u64 {
    first.wrapping_add(k)
}

/// What a request asks of the guest.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// Answer at once: the polling round trip.
    Echo = 1,
    /// Read `len` bytes of `slot` into private memory (flushed first with
    /// FLAG_FLUSH); t0 = copy, t1 = SHA-256 of the copy (FLAG_VERIFY).
    Consume = 2,
    /// Read the same slot again (warm): t0 = copy, t2 = pure read scan.
    Reread = 3,
    /// Write `len` bytes of pattern `seed` into `slot`; t0 = the copy into
    /// the slot, t1 = SHA-256 of the source (FLAG_VERIFY).
    Produce = 4,
    /// `count` doorbell round trips: wait for the host's interrupt, ring back.
    DoorbellRounds = 5,
    /// Leave the suite; the guest then answers the RunShm command.
    Stop = 6,
    /// `count` rounds of the bare cache-line bounce, the reference of the
    /// polling round trip: for k in 1..=count the host stores
    /// [`bounce_value`]`(seed, k)` to [`B_HOST`], the guest waits for it and
    /// stores it to [`B_GUEST`], the host waits for that; the guest then
    /// answers the request.
    Bounce = 7,
}

impl Op {
    /// The op with this number, if there is one.
    pub fn from_raw(v: u32) -> Option<Op> {
        Some(match v {
            1 => Op::Echo,
            2 => Op::Consume,
            3 => Op::Reread,
            4 => Op::Produce,
            5 => Op::DoorbellRounds,
            6 => Op::Stop,
            7 => Op::Bounce,
            _ => return None,
        })
    }

    /// Ops that name a slot and a length.
    pub fn uses_slot(self) -> bool {
        matches!(self, Op::Consume | Op::Reread | Op::Produce)
    }
}

/// How the guest answered a request.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PongStatus {
    /// Done; the pong's fields are the answer.
    Ok = 0,
    /// The guest refused the request (bad slot or length, unknown op).
    Refused = 1,
    /// The guest could not do it (no doorbell, timeout waiting for one).
    Failed = 2,
}

/// Where the payload slots are; sent in the RunShm command's arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slots {
    /// Bytes per slot (a multiple of 4 KiB).
    pub slot_bytes: u64,
    /// Number of slots.
    pub count: u64,
}

impl Slots {
    /// Up to `max_slots` slots of `slot_bytes` (rounded up to 4 KiB) in the
    /// data area of a region of `region_bytes`.
    pub fn fit(region_bytes: usize, slot_bytes: u64, max_slots: u64) -> Result<Slots, ProtoError> {
        let data = region_bytes.saturating_sub(DATA_OFF) as u64;
        let slot_bytes = slot_bytes.max(1).div_ceil(4096) * 4096;
        let count = (data / slot_bytes).min(max_slots);
        if count == 0 {
            return Err(ProtoError::Layout(format!(
                "a {slot_bytes}-byte slot does not fit in the {data}-byte data area; use a larger region"
            )));
        }
        Ok(Slots { slot_bytes, count })
    }

    /// Checks slots received from the other side against the region.
    pub fn validate(&self, region_bytes: usize) -> Result<(), ProtoError> {
        let data = region_bytes.saturating_sub(DATA_OFF) as u64;
        let total = self.slot_bytes.checked_mul(self.count);
        match total {
            Some(t) if self.count > 0 && self.slot_bytes > 0 && t <= data => Ok(()),
            _ => Err(ProtoError::Violation(format!(
                "{} slots of {} bytes do not fit the {data}-byte data area",
                self.count, self.slot_bytes
            ))),
        }
    }

    /// Offset of `len` bytes in `slot`, if they fit.
    pub fn offset(&self, slot: u64, len: u64) -> Option<usize> {
        if slot >= self.count || len > self.slot_bytes {
            return None;
        }
        let off = (DATA_OFF as u64).checked_add(slot.checked_mul(self.slot_bytes)?)?;
        usize::try_from(off).ok()
    }
}

/// One request as the host publishes it and the guest reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ping {
    /// The request's sequence number: one more than the previous request's.
    pub seq: u64,
    /// The [`Op`], as a raw number (the guest validates it).
    pub op: u32,
    /// `FLAG_*` bits.
    pub flags: u32,
    /// The payload slot.
    pub slot: u64,
    /// Bytes of the slot the request covers.
    pub len: u64,
    /// The pattern seed of a Produce.
    pub seed: u64,
    /// How many doorbell rounds (DoorbellRounds) or bounce rounds (Bounce).
    pub count: u64,
    /// The phase the request belongs to (the guest's counters are per phase).
    pub phase: u64,
}

impl Ping {
    /// Host: writes the fields, then publishes `seq` with Release.
    pub fn publish(&self, r: &Region) {
        r.u32_at(P_OP).store(self.op, Relaxed);
        r.u32_at(P_FLAGS).store(self.flags, Relaxed);
        r.u64_at(P_SLOT).store(self.slot, Relaxed);
        r.u64_at(P_LEN).store(self.len, Relaxed);
        r.u64_at(P_SEED).store(self.seed, Relaxed);
        r.u64_at(P_COUNT).store(self.count, Relaxed);
        r.u64_at(P_PHASE).store(self.phase, Relaxed);
        r.u64_at(P_SEQ).store(self.seq, Release);
    }

    /// Guest: the fields behind a sequence number already loaded from
    /// [`P_SEQ`] with Acquire (which made them visible).
    pub fn load(r: &Region, seq: u64) -> Ping {
        Ping {
            seq,
            op: r.u32_at(P_OP).load(Relaxed),
            flags: r.u32_at(P_FLAGS).load(Relaxed),
            slot: r.u64_at(P_SLOT).load(Relaxed),
            len: r.u64_at(P_LEN).load(Relaxed),
            seed: r.u64_at(P_SEED).load(Relaxed),
            count: r.u64_at(P_COUNT).load(Relaxed),
            phase: r.u64_at(P_PHASE).load(Relaxed),
        }
    }
}

/// One answer as the guest writes it, before the host has checked anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pong {
    /// The sequence number answered.
    pub ack: u64,
    /// A [`PongStatus`], as a raw number.
    pub status: u32,
    /// Guest TSC times, meaning per [`Op`].
    pub t: [u64; 4],
    /// Bytes handled.
    pub len: u64,
    /// SHA-256 of what was read or written, with FLAG_VERIFY.
    pub digest: [u8; 32],
    /// The wrapping sum of a pure read scan (Reread).
    pub scan: u64,
}

impl Pong {
    /// Host: copies the pong line once. `ack` is loaded first with Acquire:
    /// it is the guest's publishing store.
    pub fn load(r: &Region) -> Pong {
        let ack = r.u64_at(G_ACK).load(Acquire);
        let mut digest = [0u8; 32];
        for (i, chunk) in digest.chunks_exact_mut(8).enumerate() {
            chunk.copy_from_slice(&r.u64_at(G_DIGEST + 8 * i).load(Relaxed).to_le_bytes());
        }
        Pong {
            ack,
            status: r.u32_at(G_STATUS).load(Relaxed),
            t: std::array::from_fn(|i| r.u64_at(G_T + 8 * i).load(Relaxed)),
            len: r.u64_at(G_LEN).load(Relaxed),
            digest,
            scan: r.u64_at(G_SCAN).load(Relaxed),
        }
    }

    /// Guest: writes the fields, then publishes `ack` with Release.
    pub fn publish(&self, r: &Region) {
        r.u32_at(G_STATUS).store(self.status, Relaxed);
        for (i, t) in self.t.iter().enumerate() {
            r.u64_at(G_T + 8 * i).store(*t, Relaxed);
        }
        r.u64_at(G_LEN).store(self.len, Relaxed);
        for (i, chunk) in self.digest.chunks_exact(8).enumerate() {
            let mut w = [0u8; 8];
            w.copy_from_slice(chunk);
            r.u64_at(G_DIGEST + 8 * i)
                .store(u64::from_le_bytes(w), Relaxed);
        }
        r.u64_at(G_SCAN).store(self.scan, Relaxed);
        r.u64_at(G_ACK).store(self.ack, Release);
    }

    /// The pong line's bytes as laid out in the region (what the fuzz target feeds).
    pub fn from_bytes(b: &[u8; PONG_BYTES]) -> Pong {
        let u64_at = |o: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&b[o..o + 8]);
            u64::from_le_bytes(w)
        };
        let mut status = [0u8; 4];
        status.copy_from_slice(&b[8..12]);
        let mut digest = [0u8; 32];
        digest.copy_from_slice(&b[56..88]);
        Pong {
            ack: u64_at(0),
            status: u32::from_le_bytes(status),
            t: std::array::from_fn(|i| u64_at(16 + 8 * i)),
            len: u64_at(48),
            digest,
            scan: u64_at(88),
        }
    }
}

/// What the host expects of the answer to the request it published last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expect {
    /// The sequence number the host published.
    pub seq: u64,
    /// The op it asked for.
    pub op: Op,
    /// The length it asked for (0 when the op has none).
    pub len: u64,
}

/// The outcome of checking one pong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PongCheck {
    /// Still the previous answer: keep waiting.
    NotYet,
    /// The answer to this request, every field checked.
    Answer(Pong),
    /// The guest answered this request with a refusal or failure.
    GuestError(PongStatus),
}

/// Checks a pong copied out of the region against the request in flight.
/// Total over every input: never panics, never returns an unchecked length.
pub fn validate_pong(p: &Pong, e: &Expect) -> Result<PongCheck, ProtoError> {
    if p.ack > e.seq {
        return Err(ProtoError::Violation(format!(
            "guest acknowledged request {} but the last one sent is {}",
            p.ack, e.seq
        )));
    }
    if p.ack < e.seq {
        // One request in flight: the only older ack the guest may show is the
        // previous request's.
        if p.ack + 1 == e.seq {
            return Ok(PongCheck::NotYet);
        }
        return Err(ProtoError::Violation(format!(
            "guest acknowledgement went back to {} while request {} is in flight",
            p.ack, e.seq
        )));
    }
    match p.status {
        0 => {}
        1 => return Ok(PongCheck::GuestError(PongStatus::Refused)),
        2 => return Ok(PongCheck::GuestError(PongStatus::Failed)),
        s => {
            return Err(ProtoError::Violation(format!(
                "pong status {s} is not a known status"
            )));
        }
    }
    if let Some(t) = p.t.iter().find(|t| **t > MAX_GUEST_TICKS) {
        return Err(ProtoError::Violation(format!(
            "guest reported a time of {t} ticks, beyond any single request"
        )));
    }
    let want_len = if e.op.uses_slot() { e.len } else { 0 };
    if p.len != want_len {
        return Err(ProtoError::Violation(format!(
            "guest reported {} bytes for a {:?} of {want_len} bytes",
            p.len, e.op
        )));
    }
    Ok(PongCheck::Answer(*p))
}

/// Why the guest end refuses a request (it says so in its summary).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The op number is not an [`Op`].
    #[error("unknown op {0}")]
    UnknownOp(u32),
    /// Flags outside [`KNOWN_FLAGS`].
    #[error("unknown flags {0:#x}")]
    UnknownFlags(u32),
    /// The slot or length lies outside the slots of this run.
    #[error("slot {slot} / length {len} outside {count} slots of {slot_bytes} bytes")]
    OutsideSlots {
        /// The slot asked for.
        slot: u64,
        /// The length asked for.
        len: u64,
        /// Slots in this run.
        count: u64,
        /// Bytes per slot.
        slot_bytes: u64,
    },
}

/// Guest: checks a request before touching any slot. Returns the byte offset
/// of the slot range for ops that use one.
pub fn validate_ping(p: &Ping, slots: &Slots) -> Result<(Op, Option<usize>), Refusal> {
    let op = Op::from_raw(p.op).ok_or(Refusal::UnknownOp(p.op))?;
    if p.flags & !KNOWN_FLAGS != 0 {
        return Err(Refusal::UnknownFlags(p.flags));
    }
    if !op.uses_slot() {
        return Ok((op, None));
    }
    let off = slots.offset(p.slot, p.len).ok_or(Refusal::OutsideSlots {
        slot: p.slot,
        len: p.len,
        count: slots.count,
        slot_bytes: slots.slot_bytes,
    })?;
    Ok((op, Some(off)))
}

/// The RunShm command's arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunShmArgs {
    /// 0: the mapping the guest end already uses (the only one supported:
    /// a UC/WC arm is a guest booted with that mapping). Kept in the ABI so
    /// a guest can refuse a request it cannot honour.
    pub arm: u64,
    /// Where the payload slots are.
    pub slots: Slots,
    /// Doorbell vector to use for DoorbellRounds (u64::MAX: none).
    pub vector: u64,
    /// The host's peer id to ring back (ivshmem-doorbell).
    pub host_peer: u64,
    /// The ping sequence number before the first request of this run: the
    /// guest answers "nothing yet" with it, the first request is base + 1.
    pub base_seq: u64,
}

impl RunShmArgs {
    /// As the command's six arguments.
    pub fn to_args(&self) -> [u64; crate::layout::N_ARGS] {
        [
            self.arm,
            self.slots.slot_bytes,
            self.slots.count,
            self.vector,
            self.host_peer,
            self.base_seq,
        ]
    }

    /// From the command's six arguments (validated by the guest before use).
    pub fn from_args(a: [u64; crate::layout::N_ARGS]) -> RunShmArgs {
        RunShmArgs {
            arm: a[0],
            slots: Slots {
                slot_bytes: a[1],
                count: a[2],
            },
            vector: a[3],
            host_peer: a[4],
            base_seq: a[5],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok_pong(seq: u64, len: u64) -> Pong {
        Pong {
            ack: seq,
            len,
            ..Pong::default()
        }
    }

    #[test]
    fn answers_and_waits() {
        let e = Expect {
            seq: 5,
            op: Op::Consume,
            len: 4096,
        };
        assert_eq!(
            validate_pong(&ok_pong(4, 0), &e).unwrap(),
            PongCheck::NotYet
        );
        assert!(matches!(
            validate_pong(&ok_pong(5, 4096), &e).unwrap(),
            PongCheck::Answer(_)
        ));
    }

    #[test]
    fn rejects_every_kind_of_bad_pong() {
        let e = Expect {
            seq: 5,
            op: Op::Consume,
            len: 4096,
        };
        let cases = [
            ("ack ahead", ok_pong(6, 4096)),
            ("ack back", ok_pong(2, 4096)),
            ("wrong len", ok_pong(5, 4097)),
            ("huge len", ok_pong(5, u64::MAX)),
            (
                "bad status",
                Pong {
                    status: 7,
                    ..ok_pong(5, 4096)
                },
            ),
            (
                "absurd time",
                Pong {
                    t: [0, u64::MAX, 0, 0],
                    ..ok_pong(5, 4096)
                },
            ),
        ];
        for (what, p) in cases {
            assert!(
                matches!(validate_pong(&p, &e), Err(ProtoError::Violation(_))),
                "{what}: {:?}",
                validate_pong(&p, &e)
            );
        }
        let refused = Pong {
            status: 1,
            ..ok_pong(5, 0)
        };
        assert_eq!(
            validate_pong(&refused, &e).unwrap(),
            PongCheck::GuestError(PongStatus::Refused)
        );
    }

    #[test]
    fn echo_has_no_length() {
        let e = Expect {
            seq: 1,
            op: Op::Echo,
            len: 0,
        };
        assert!(validate_pong(&ok_pong(1, 8), &e).is_err());
    }

    #[test]
    fn slots_fit_and_offsets_are_checked() {
        let s = Slots::fit(1 << 20, 100_000, 3).unwrap();
        assert_eq!(s.slot_bytes, 102_400);
        assert_eq!(s.count, 3);
        s.validate(1 << 20).unwrap();
        assert_eq!(s.offset(3, 1), None);
        assert_eq!(s.offset(0, s.slot_bytes + 1), None);
        assert_eq!(s.offset(1, 10), Some(DATA_OFF + 102_400));
        assert!(Slots::fit(1 << 20, 2 << 20, 3).is_err());
        let bad = Slots {
            slot_bytes: u64::MAX,
            count: 2,
        };
        assert!(bad.validate(1 << 20).is_err());
        assert_eq!(bad.offset(1, 1), None);
    }

    #[test]
    fn guest_refuses_bad_pings() {
        let s = Slots {
            slot_bytes: 4096,
            count: 2,
        };
        let p = Ping {
            seq: 1,
            op: Op::Consume as u32,
            flags: 0,
            slot: 0,
            len: 4096,
            seed: 0,
            count: 0,
            phase: 0,
        };
        assert!(validate_ping(&p, &s).is_ok());
        assert!(validate_ping(&Ping { op: 99, ..p }, &s).is_err());
        assert!(validate_ping(&Ping { flags: 1 << 9, ..p }, &s).is_err());
        assert!(validate_ping(&Ping { slot: 2, ..p }, &s).is_err());
        assert!(validate_ping(&Ping { len: 4097, ..p }, &s).is_err());
    }

    /// The fuzz target's property on stable, over reproducible noise: every
    /// accepted answer is for this request, with its length, in bounds.
    #[test]
    fn random_pongs_never_pass_unchecked() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            x.wrapping_mul(0x2545_F491_4F6C_DD1D)
        };
        let mut accepted = 0;
        for i in 0..200_000u64 {
            let mut b = [0u8; PONG_BYTES];
            for chunk in b.chunks_exact_mut(8) {
                chunk.copy_from_slice(&next().to_le_bytes());
            }
            let seq = 1 + next() % 8;
            // Half the time aim close to valid, so the deep checks are reached.
            if i % 2 == 0 {
                b[..8].copy_from_slice(&seq.to_le_bytes());
                b[8..12].copy_from_slice(&((next() % 4) as u32).to_le_bytes());
                for t in 0..4 {
                    let v = next() % (MAX_GUEST_TICKS * 2);
                    b[16 + 8 * t..24 + 8 * t].copy_from_slice(&v.to_le_bytes());
                }
                b[48..56].copy_from_slice(&(next() % 3 * 4096).to_le_bytes());
            }
            let p = Pong::from_bytes(&b);
            let e = Expect {
                seq,
                op: Op::Consume,
                len: 4096,
            };
            if let Ok(PongCheck::Answer(a)) = validate_pong(&p, &e) {
                accepted += 1;
                assert_eq!((a.ack, a.len, a.status), (seq, 4096, 0));
                assert!(a.t.iter().all(|t| *t <= MAX_GUEST_TICKS));
            }
        }
        assert!(accepted > 0, "the generator never reached a valid answer");
    }

    #[test]
    fn pong_bytes_match_the_region_layout() {
        let mut b = [0u8; PONG_BYTES];
        b[0] = 9;
        b[8] = 1;
        b[48] = 64;
        b[56] = 0xAB;
        b[88] = 3;
        let p = Pong::from_bytes(&b);
        assert_eq!(
            (p.ack, p.status, p.len, p.digest[0], p.scan),
            (9, 1, 64, 0xAB, 3)
        );
    }
}
