//! Samples into measurements: the per-phase series, the timer's cost taken
//! out, integrity tallies, and the checks against the references.

use super::*;

/// One measurement's samples on their way to a [`Measurement`].
pub(super) struct Series {
    pub(super) id: String,
    pub(super) definition: String,
    pub(super) bytes: Option<u64>,
    pub(super) reference: Option<String>,
    pub(super) set: SampleSet,
    pub(super) raw: Vec<u64>,
    pub(super) counters: BTreeMap<String, u64>,
    /// Means per round trip of back-to-back batches timed as a whole; their
    /// median becomes the measurement's `batch_mean`.
    pub(super) batch_means: Vec<f64>,
    /// Samples are single round trips: the empty round-trip window's p50
    /// is subtracted from them.
    pub(super) round_trip: bool,
}

/// The median of `v` (the mean of the middle two for an even count).
fn median(v: &[f64]) -> Option<f64> {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    match v.len() {
        0 => None,
        n if n % 2 == 1 => Some(v[mid]),
        _ => Some((v[mid - 1] + v[mid]) / 2.0),
    }
}

#[derive(Default)]
pub(super) struct Collector {
    pub(super) series: Vec<Series>,
    pub(super) keep_raw: bool,
}

impl Collector {
    /// The p50 of a series recorded so far.
    pub(super) fn p50_of(&self, id: &str) -> Option<u64> {
        let s = self.series.iter().find(|s| s.id == id)?;
        s.set.summary().ok().map(|summary| summary.p50)
    }

    pub(super) fn series(
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
            batch_means: Vec::new(),
            round_trip: false,
        });
        let last = self.series.len() - 1;
        &mut self.series[last]
    }

    pub(super) fn record(
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

    /// One batch of `n` back-to-back round trips that took `ticks`: its mean
    /// is a sample (rounded to a tick, kept raw like any sample) and a batch
    /// mean.
    pub(super) fn batch(
        &mut self,
        id: &str,
        definition: &str,
        reference: Option<&str>,
        ticks: u64,
        n: u64,
    ) -> Result<(), ShmError> {
        let n = n.max(1);
        let mean = (ticks + n / 2) / n;
        self.record(id, definition, None, reference, mean)?;
        self.series(id, definition, None, reference)
            .batch_means
            .push(ticks as f64 / n as f64);
        Ok(())
    }

    pub(super) fn set_counters(
        &mut self,
        id: &str,
        prefix: &str,
        c: Option<&BTreeMap<String, u64>>,
    ) {
        if let (Some(s), Some(c)) = (self.series.iter_mut().find(|s| s.id == id), c) {
            for (k, v) in c {
                s.counters.insert(format!("{prefix}{k}"), *v);
            }
        }
    }

    pub(super) fn finish(self, clocks: &Clocks, prefix: &str, run: &mut HostRun) {
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
            if let (true, Some(ovh)) = (s.round_trip, clocks.host_rtt_timer) {
                subtract_timer(&mut m, ovh);
            }
            m.batch_mean = median(&s.batch_means);
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
pub(super) struct Clocks {
    pub(super) host_khz: f64,
    pub(super) guest_khz: Option<f64>,
    pub(super) host_timer: Option<u64>,
    pub(super) guest_timer: Option<u64>,
    /// The p50 of the host's empty round-trip window.
    pub(super) host_rtt_timer: Option<u64>,
}

/// A transfer's figures without the timer's own cost: the summary minus the
/// empty window's p50 (its GB/s uses it), a warning where that leaves little.
pub(super) fn subtract_timer(m: &mut Measurement, ovh: u64) {
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
pub(super) fn transfer_time(m: &Measurement) -> Option<f64> {
    m.p50_net_ns()
}

/// Integrity tallies of one direction.
#[derive(Default)]
pub(super) struct Tally {
    pub(super) frames: u64,
    pub(super) mismatches: u64,
    pub(super) first: Option<String>,
}

impl Tally {
    pub(super) fn check(&mut self, what: &str, expected: &[u8; 32], got: &[u8; 32]) {
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

    pub(super) fn into_check(self, id: &str, statement: &str) -> Option<Check> {
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

/// Time ratio of a measurement to another (both by id), as
/// [`Measurement::compared_ns`] compares them: batch means where both
/// have one, else p50s without the timer's cost; in ns, each at its own
/// side's TSC frequency.
pub fn time_ratio(r: &Results, id: &str, reference: &str) -> Option<f64> {
    let a = r.measurements.iter().find(|m| m.id == id)?;
    let b = r.measurements.iter().find(|m| m.id == reference)?;
    let (ta, tb) = a.compared_ns(b)?;
    (tb > 0.0).then(|| ta / tb)
}

/// The performance targets that apply to this kind of run, checked
/// against the reference measured in the same run.
pub fn targets(r: &Results, loopback: bool, kvm: bool) -> Vec<Check> {
    let mut out = Vec::new();
    if let (true, Some(x)) = (loopback, time_ratio(r, "shm.rtt.poll", CACHELINE_REFERENCE)) {
        out.push(Check {
            id: "shm.target.rtt-vs-cacheline".into(),
            kind: CheckKind::Target,
            statement: "loopback polling RTT, batch mean ≤ 1.2 × the bare cache-line round trip's batch mean, no PAUSE, interleaved in the same run (and not below 0.9 ×: no protocol beats the bare bounce)"
                .into(),
            observed: format!("{x:.2} ×"),
            passed: (0.9..=1.2).contains(&x),
        });
    }
    let copy = time_ratio(r, "shm.h2g.4k-32bpp.host-write", "shm.ref.memcpy.4k-32bpp");
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
        if let Some(x) = time_ratio(
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
pub(super) fn tsc_mismatch(guest_khz: Option<f64>, host_khz: f64) -> Option<Warning> {
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
