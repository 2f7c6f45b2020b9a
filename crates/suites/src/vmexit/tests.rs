#[test]
fn the_devices_own_count_confirms_or_fails_a_testdev_row() {
    let verified = Verification::Verified {
        evidence: "tracepoints".into(),
    };
    let v = with_device_count(verified.clone(), Row::KernelMmioQemu, 1020, Some(1020));
    assert!(
        matches!(&v, Verification::Verified { evidence } if evidence.contains("served 1020 of 1020")),
        "{v:?}"
    );
    // Writes QEMU never saw, on a row that claims QEMU.
    let v = with_device_count(verified.clone(), Row::UserPioQemu, 1020, Some(1000));
    assert!(matches!(&v, Verification::Failed { .. }), "{v:?}");
    // An ioeventfd row whose writes reached the device.
    let v = with_device_count(verified.clone(), Row::KernelMmioIoeventfd, 1020, Some(3));
    assert!(matches!(&v, Verification::Failed { .. }), "{v:?}");
    let tcg = Verification::Unverified {
        cause: None,
        reason: "not verifiable: TCG".into(),
    };
    let v = with_device_count(tcg, Row::KernelPioIoeventfd, 1020, Some(0));
    assert!(
        matches!(&v, Verification::Unverified { reason, .. } if reason.starts_with("not verifiable: TCG") && reason.contains("served 0 of 1020")),
        "{v:?}"
    );
    // Rows without the device are left alone.
    assert_eq!(
        with_device_count(verified.clone(), Row::KernelFast, 10, None),
        verified
    );
}
use super::*;

#[test]
fn samples_below_the_timer_baseline_are_counted_not_floored_silently() {
    let (adj, warning) = subtract_timer(&[30, 40, 100, 200, 39], 40).unwrap();
    let s = adj.summary().unwrap();
    assert_eq!((s.min, s.max, s.n), (0, 160, 5));
    let w = warning.expect("two samples were below the baseline");
    assert_eq!(w.kind, WarningKind::OverheadFloored);
    assert!(
        w.message
            .starts_with("2 of 5 samples are below the timer baseline's p50 (40 ticks)"),
        "{w}"
    );
    let (_, none) = subtract_timer(&[40, 41, 90], 40).unwrap();
    assert_eq!(none, None);
}

#[test]
fn ring0_rows_run_first_and_baselines_lead_their_group() {
    let o = VmexitOptions::new(Accel::Kvm);
    let rows = o.ordered_rows();
    assert_eq!(rows[0], Row::KernelTimerOverhead);
    let first_user = rows.iter().position(|r| r.mode() != Mode::Kernel).unwrap();
    assert_eq!(rows[first_user], Row::TimerOverhead);
    assert!(rows[..first_user].iter().all(|r| r.mode() == Mode::Kernel));
    assert!(rows[first_user..].iter().all(|r| r.mode() != Mode::Kernel));
    assert_eq!(rows.len(), o.rows.len());
}

fn m(id: &str, v: vmbench_results::Verification) -> Measurement {
    let mut set = SampleSet::new();
    set.record(1).unwrap();
    Measurement::from_samples(id, "x", Unit::TscTicks, &set, v).unwrap()
}

#[test]
fn one_inconsistent_row_unverifies_the_whole_run() {
    use vmbench_results::Verification::*;
    let mut ms = vec![
        m(
            "a",
            Unverified {
                cause: Some(vmbench_results::Unverifiable::CountersInconsistent),
                reason: "exits +635 over 40200".into(),
            },
        ),
        m(
            "b",
            Failed {
                evidence: "io_exits +0".into(),
            },
        ),
        m(
            "c",
            Verified {
                evidence: "exits +80463".into(),
            },
        ),
        m(
            "d",
            Unverified {
                cause: None,
                reason: "not verifiable: TCG".into(),
            },
        ),
    ];
    // The same words without the kind decide nothing.
    let mut worded = vec![
        m(
            "a",
            Unverified {
                cause: None,
                reason: "counters inconsistent: exits +635 over 40200".into(),
            },
        ),
        ms[2].clone(),
    ];
    distrust_baselines_if_counters_lie(&mut worded);
    assert!(matches!(worded[1].verification, Verified { .. }));
    distrust_baselines_if_counters_lie(&mut ms);
    for x in &ms[..3] {
        assert!(
            matches!(
                &x.verification,
                Unverified {
                    cause: Some(vmbench_results::Unverifiable::CountersInconsistent),
                    ..
                }
            ),
            "{x:?}"
        );
    }
    assert!(matches!(&ms[3].verification, Unverified { reason, .. } if reason.contains("TCG")));
    // A consistent run keeps its verdicts.
    let mut ok = vec![
        m(
            "c",
            Verified {
                evidence: "fine".into(),
            },
        ),
        m(
            "b",
            Failed {
                evidence: "bad".into(),
            },
        ),
    ];
    distrust_baselines_if_counters_lie(&mut ok);
    assert!(
        matches!(ok[0].verification, Verified { .. })
            && matches!(ok[1].verification, Failed { .. })
    );
}
