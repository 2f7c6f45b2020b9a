//! One run of the suite: every phase's timed windows, in order.

use super::*;

/// The measurement that carries a phase's counters.
pub(super) fn phase_measurement(phase: &str) -> String {
    format!("{phase}.end-to-end")
}

/// Everything one run of the suite measures, and what it collects.
pub(super) struct Measure<'p> {
    pub(super) plan: &'p Plan,
    pub(super) c: Collector,
    pub(super) counters: Counters,
    /// Integrity of the frames: (host→guest, guest→host).
    pub(super) tallies: (Tally, Tally),
    /// Phase names by number (the guest reports its counters by number).
    pub(super) phases: Vec<String>,
    pub(super) skipped: Vec<Skipped>,
    /// The host's private buffers.
    pub(super) src: Vec<u8>,
    pub(super) dst: Vec<u8>,
}

impl Measure<'_> {
    pub(super) fn all(
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

    pub(super) fn timer_reference(&mut self) -> Result<(), ShmError> {
        if self.plan.arm.is_some() {
            return Ok(());
        }
        let samples = self.plan.warmup.max(1_000);
        self.c
            .series(
                TIMER_REFERENCE,
                "the empty copy window on the host: lfence;rdtsc;lfence then mfence;rdtscp;lfence with nothing between; its p50 is subtracted from every host-side transfer (the guest measures its own)",
                None,
                None,
            )
            .set = reference::timer_overhead(samples)?;
        self.c
            .series(
                TIMER_RTT_REFERENCE,
                "the empty round-trip window on the host: lfence;rdtsc;lfence then rdtscp;lfence with nothing between; its p50 is subtracted from every per-sample polling round trip",
                None,
                None,
            )
            .set = reference::timer_overhead_rtt(samples)?;
        Ok(())
    }

    /// The bare eventfd ping-pong between two host threads, measured by the
    /// caller while the peer CPU was free (the loopback before its guest end
    /// starts, a VM while paused): the reference of the doorbell round trip.
    pub(super) fn eventfd_reference(&mut self) {
        if self.plan.arm.is_some() {
            return;
        }
        let id = EVENTFD_REFERENCE.to_string();
        match (&self.plan.eventfd, self.plan.ref_cpus) {
            (Some(set), Some((a, b))) => {
                self.c
                    .series(
                        &id,
                        &format!("reference of the doorbell: a thread on CPU {a} writes an eventfd that a thread on CPU {b} blocks on in read(2), which writes a second eventfd back that the first blocks on in read(2); host TSC, fenced RDTSC before the write and after the read returns; measured while CPU {b} had nothing else to run (the VM paused, or the guest end not yet started)"),
                        None,
                        None,
                    )
                    .set = set.clone();
            }
            // No doorbell round trips, no reference for them.
            (None, Some(_)) => {}
            (_, None) => self.skipped.push(Skipped {
                id: id.into(),
                reason: "no CPU pair given for the eventfd reference (pin the run with --cpus)"
                    .into(),
            }),
        }
    }

    /// The polling round trip and its reference, interleaved so that both
    /// see the same machine: each of `plan.batches` rounds runs a batch of
    /// the bare cache-line bounce, a batch of Echo round trips, a share of
    /// the single round trips, then the same two batches with PAUSE (each
    /// group in reverse order every other round, so no kind always runs
    /// first).
    pub(super) fn polling_rtt(&mut self, s: &mut Session) -> Result<(), ShmError> {
        let plan = self.plan;
        let p = plan.id_prefix();
        let with_reference = plan.arm.is_none();
        let rtt_id = format!("{p}rtt.poll");
        let pause_id = format!("{p}rtt.poll-pause");
        let (rtt_ref, pause_ref) = if with_reference {
            (Some(CACHELINE_REFERENCE), Some(CACHELINE_PAUSE_REFERENCE))
        } else {
            (None, None)
        };
        let n = plan.batch_len.max(1);
        let warm = (n / 10).clamp(1, 1_000);
        let rounds = plan.batches.max(1);
        self.c
            .series(&rtt_id, DEF_RTT_POLL, None, rtt_ref)
            .round_trip = true;
        for _ in 0..plan.warmup {
            s.echo(Spin::Busy)?;
            s.check_echo_answer()?;
        }
        let mut sampled = 0;
        for round in 0..rounds {
            let mut busy = [
                Step::Bounce(Spin::Busy),
                Step::Echoes(Spin::Busy),
                Step::Singles,
            ];
            let mut pause = [Step::Bounce(Spin::Pause), Step::Echoes(Spin::Pause)];
            if round % 2 == 1 {
                busy.reverse();
                pause.reverse();
            }
            for step in busy.into_iter().chain(pause) {
                match step {
                    Step::Bounce(_) if !with_reference => {}
                    Step::Bounce(spin) => {
                        let (id, def) = match spin {
                            Spin::Busy => (CACHELINE_REFERENCE, DEF_CACHELINE),
                            Spin::Pause => (CACHELINE_PAUSE_REFERENCE, DEF_CACHELINE_PAUSE),
                        };
                        let ticks = s.bounce(warm, n, spin)?;
                        self.c.batch(id, def, None, ticks, n)?;
                    }
                    Step::Echoes(spin) => {
                        let ticks = echo_batch(s, spin, warm, n)?;
                        match spin {
                            // Single round trips are shm.rtt.poll's samples:
                            // its batches give only its batch mean.
                            Spin::Busy => self
                                .c
                                .series(&rtt_id, DEF_RTT_POLL, None, rtt_ref)
                                .batch_means
                                .push(ticks as f64 / n as f64),
                            Spin::Pause => {
                                self.c
                                    .batch(&pause_id, DEF_RTT_POLL_PAUSE, pause_ref, ticks, n)?
                            }
                        }
                    }
                    Step::Singles => {
                        // This round's share of the per-sample round trips.
                        let upto = plan.rtt_samples * (round + 1) / rounds;
                        for _ in sampled..upto {
                            let t0 = t_start();
                            s.echo(Spin::Busy)?;
                            let t1 = t_end();
                            s.check_echo_answer()?;
                            let ticks = t1.wrapping_sub(t0);
                            self.c.record(&rtt_id, DEF_RTT_POLL, None, rtt_ref, ticks)?;
                        }
                        sampled = upto;
                    }
                }
            }
        }
        Ok(())
    }

    /// A frame's buffers and the ids of the memcpy references it compares
    /// with: (warm, cold). An arm compares with the same measurement over WB
    /// instead.
    #[allow(clippy::type_complexity)]
    pub(super) fn frame_setup(
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

    pub(super) fn host_to_guest(&mut self, s: &mut Session, f: &Frame) -> Result<(), ShmError> {
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

    pub(super) fn guest_to_host(&mut self, s: &mut Session, f: &Frame) -> Result<(), ShmError> {
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
    pub(super) fn sweep(&mut self, s: &mut Session) -> Result<(), ShmError> {
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
    pub(super) fn finish(self, out: &mut HostRun) {
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
            host_rtt_timer: c.p50_of(TIMER_RTT_REFERENCE),
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

pub(super) fn too_large(what: &'static str, bytes: u64) -> ShmError {
    ShmError::TooLarge {
        what,
        bytes,
        limit: "this address space".into(),
    }
}

/// What a round of the polling measurement runs (see `polling_rtt`).
#[derive(Clone, Copy)]
enum Step {
    /// A batch of the bare cache-line bounce.
    Bounce(Spin),
    /// A batch of back-to-back Echoes.
    Echoes(Spin),
    /// A share of the single, individually timed round trips (no PAUSE).
    Singles,
}

/// `warm` untimed then `n` Echoes back to back, timed as a whole with one
/// fenced pair; the last answer is then checked in full. Returns the ticks.
fn echo_batch(s: &mut Session, spin: Spin, warm: u64, n: u64) -> Result<u64, ShmError> {
    for _ in 0..warm {
        s.echo(spin)?;
    }
    let t0 = t_start();
    for _ in 0..n {
        s.echo(spin)?;
    }
    let ticks = t_end().wrapping_sub(t0);
    s.check_echo_answer()?;
    Ok(ticks)
}

/// The bare cache-line round trip with the guest end, no PAUSE: the
/// physical limit of the polling round trip.
pub(super) const CACHELINE_REFERENCE: &str = "shm.ref.cacheline-rtt";
/// The same with PAUSE in both spins.
pub(super) const CACHELINE_PAUSE_REFERENCE: &str = "shm.ref.cacheline-rtt-pause";
/// The bare eventfd ping-pong between two host threads.
pub(super) const EVENTFD_REFERENCE: &str = "shm.ref.eventfd-rtt";
/// The host's empty copy window.
pub(super) const TIMER_REFERENCE: &str = "shm.ref.timer-overhead";
/// The host's empty round-trip window.
pub(super) const TIMER_RTT_REFERENCE: &str = "shm.ref.timer-overhead-rtt";
const DEF_RTT_POLL: &str = "host→guest→host notification round trip by polling, the latency mode (no PAUSE in either spin): the host stores the request to its ping line (the sequence word last, Release), the guest sees it, stores the sequence to its pong line (Release), the host sees that. Samples: one round trip each, host TSC from a fenced RDTSC before the store to RDTSCP after the answer is seen, shown without the empty window's p50 (shm.ref.timer-overhead-rtt); batch: the median over the run's batches of the mean of back-to-back round trips timed as a whole (no timestamp per round trip). One-way ≈ RTT/2.";
const DEF_RTT_POLL_PAUSE: &str = "the polling round trip as shm.rtt.poll, with PAUSE in both spins (the guest's wait for the request, the host's wait for the answer). Samples: each batch's mean over back-to-back round trips timed as a whole; batch: their median.";
const DEF_CACHELINE: &str = "physical reference: the bare cache-line round trip between the host end and the guest end over the shared region, no PAUSE: the host stores a counter to a word alone on its 128-byte line pair (Release), the guest spins on it (Acquire) and stores it to another word on its own line pair, the host spins until it sees it; nothing else is read or written. Samples: each batch's mean over back-to-back round trips timed as a whole on the host TSC (no timestamp per round trip); batch: their median. Measured in rounds interleaved with shm.rtt.poll.";
const DEF_CACHELINE_PAUSE: &str = "physical reference with PAUSE: shm.ref.cacheline-rtt with PAUSE in both spins. Samples: each batch's mean; batch: their median. Interleaved with shm.rtt.poll-pause.";
pub(super) const DEF_HOST_SHA256: &str =
    "host SHA-256 of its private copy (sha2; SHA-NI when present); host TSC";

pub(super) fn doorbell_rtt(
    s: &mut Session,
    d: &mut dyn Doorbell,
    plan: &Plan,
    c: &mut Collector,
) -> Result<(), ShmError> {
    let id = format!("{}rtt.doorbell", plan.id_prefix());
    let def = "host→guest→host round trip by interrupt: host writes the guest's eventfd (ivshmem-doorbell: KVM irqfd → MSI-X in the guest; loopback: eventfd), the guest wakes from a blocking wait and rings back (doorbell register → ioeventfd; loopback: eventfd), the host wakes from poll(); host TSC around ring and wake";
    let reference = plan
        .ref_cpus
        .filter(|_| plan.eventfd.is_some() && plan.arm.is_none())
        .map(|_| EVENTFD_REFERENCE);
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
            c.record(&id, def, None, reference, t1.wrapping_sub(t0))?;
        }
    }
    s.wait(&e)?;
    Ok(())
}

/// Registers a phase; the guest keys its counters by the phase's number.
pub(super) fn begin_phase(phases: &mut Vec<String>, name: String) -> (String, u64) {
    let no = phases.len() as u64;
    phases.push(name.clone());
    (name, no)
}

/// Fills `buf` with iteration `i` of phase `phase`'s frame; returns the seed
/// and the frame's SHA-256 (computed here, outside any timed window).
pub(super) fn frame(buf: &mut [u8], phase: u64, i: u64) -> (u64, [u8; 32]) {
    let seed = (phase << 32) ^ i ^ 0xF00D;
    pattern::fill(buf, seed);
    (seed, pattern::sha256(buf))
}

pub(super) fn prefault(r: &Region, slots: &Slots) -> Result<(), ShmError> {
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
pub(super) fn prepare(v: &mut Vec<u8>, n: usize) {
    if v.len() < n {
        v.resize(n, 0);
        v.fill(1);
    }
}

pub(super) fn flush(r: &Region, off: usize, len: usize) -> Result<(), ShmError> {
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
