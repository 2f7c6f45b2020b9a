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
