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

/// Host and guest end in two threads over a file-backed region: the
/// polling round trip is measured per sample and in batches, interleaved
/// with its two references, and every request reaches the guest end
/// (the lean Echo path counts too).
#[test]
fn the_polling_round_trip_is_measured_both_ways_beside_its_references() {
    let file = tempfile::tempfile().unwrap();
    let mapped = vmbench_proto::region::MappedRegion::map_new_file(
        &file,
        std::path::Path::new("test"),
        2 << 20,
    )
    .unwrap();
    let r = mapped.region();
    let mut plan = Plan::quick(1_000_000.0);
    plan.frames.clear();
    plan.sweep.clear();
    plan.doorbell_rounds = 0;
    plan.warmup = 10;
    plan.rtt_samples = 30;
    plan.batches = 3;
    plan.batch_len = 50;
    let (out, outcome) = std::thread::scope(|sc| {
        let mut host = HostEnd::start(r);
        let guest = sc.spawn(|| {
            crate::guest::serve_commands(r, None, Duration::from_secs(30), &mut |_| {}, &mut || {
                None
            })
        });
        host.wait_ready(r, Instant::now() + Duration::from_secs(30), &mut || None)
            .unwrap();
        let run = run_and_close(r, &mut host, &plan, None, &mut || None, true);
        guest.join().unwrap().unwrap();
        run
    });
    outcome.unwrap();
    let m = |id: &str| {
        out.results
            .measurements
            .iter()
            .find(|m| m.id == id)
            .unwrap_or_else(|| panic!("{id} missing"))
    };
    let poll = m("shm.rtt.poll");
    assert_eq!(poll.summary.n, 30);
    assert_eq!(
        poll.overhead_p50,
        Some(m("shm.ref.timer-overhead-rtt").summary.p50)
    );
    for (id, reference) in [
        ("shm.rtt.poll", "shm.ref.cacheline-rtt"),
        ("shm.rtt.poll-pause", "shm.ref.cacheline-rtt-pause"),
    ] {
        let (row, reference) = (m(id), m(reference));
        assert_eq!(row.reference.as_ref().unwrap(), &reference.id);
        assert_eq!(reference.summary.n, 3, "one batch per round");
        let (mine, theirs) = (row.batch_mean.unwrap(), reference.batch_mean.unwrap());
        let ratio = out.results.reference_ratio(row).unwrap();
        assert!(
            (ratio - mine / theirs).abs() < 1e-9,
            "{ratio} {mine} {theirs}"
        );
    }
    // 10 warm-up echoes; per round two batches of 5 + 50 echoes, two
    // bounces and 10 single round trips; then Stop.
    let warm = 5;
    let expected = 10 + 3 * (2 * (warm + 50) + 2 + 10) + 1;
    assert_eq!(out.guest.as_ref().unwrap().requests, expected);
}

/// The round-trip target compares batch means when both rows have one
/// (the p50s of single round trips carry a timer's cost the bare bounce
/// does not), and holds it to 1.2 ×.
#[test]
fn the_round_trip_target_compares_batch_means() {
    let r = |poll_batch: f64| {
        let mut poll = measured("shm.rtt.poll", 500, None, Some("shm.ref.cacheline-rtt"));
        poll.batch_mean = Some(poll_batch);
        let mut reference = measured("shm.ref.cacheline-rtt", 100, None, None);
        reference.batch_mean = Some(100.0);
        Results {
            measurements: vec![reference, poll],
            ..Results::default()
        }
    };
    let check = |poll_batch| {
        targets(&r(poll_batch), true, false)
            .into_iter()
            .find(|c| c.id == "shm.target.rtt-vs-cacheline")
            .unwrap()
    };
    let pass = check(115.0);
    assert!(pass.passed, "{pass:?}");
    assert_eq!(pass.observed, "1.15 ×");
    assert!(!check(125.0).passed, "1.25 × is beyond 1.2 ×");
    assert!(!check(80.0).passed, "beating the bare bounce is not a pass");
    // Without batch means the p50s are compared: 500 / 100.
    let mut p50s = r(115.0);
    p50s.measurements[1].batch_mean = None;
    assert_eq!(p50s.reference_ratio(&p50s.measurements[1]), Some(5.0));
}
