use super::*;

fn d(exits: u64, io: u64) -> BTreeMap<String, u64> {
    [
        ("exits".to_string(), exits),
        ("io_exits".to_string(), io),
        ("irq_exits".to_string(), 3),
    ]
    .into()
}

#[test]
fn query_stats_never_verifies_a_claim_it_cannot_tell_from_another() {
    // One non-I/O exit per execution: a CPUID row, but an RDMSR row (or
    // a timer tick per execution) shows the same counts.
    for expect in [Expect::KvmHandler, Expect::KvmFastpath] {
        let v = verify(expect, 10_000, Evidence::Deltas(&d(10_041, 0)));
        assert!(
            matches!(&v, Verification::Unverified { reason, .. } if reason.starts_with(QUERY_STATS_NAME) && reason.contains("consistent with")),
            "{v:?}"
        );
    }
    // What it can check whole, it verifies, naming itself.
    let v = verify(Expect::NoExit, 10_000, Evidence::Deltas(&d(3, 0)));
    assert!(
        matches!(&v, Verification::Verified { evidence } if evidence.starts_with(QUERY_STATS_NAME)),
        "{v:?}"
    );
}

#[test]
fn a_fast_row_that_went_to_port_io_fails() {
    let v = verify(
        Expect::KvmHandler,
        10_000,
        Evidence::Deltas(&d(10_010, 10_000)),
    );
    assert!(
        matches!(&v, Verification::Failed { evidence } if evidence.contains("expected no port-I/O")),
        "{v:?}"
    );
}

#[test]
fn a_slow_row_reaching_qemu_and_one_that_did_not() {
    // Port I/O, one per execution: consistent, but query-stats cannot
    // show that QEMU served it.
    let ok = verify(Expect::Qemu, 10_000, Evidence::Deltas(&d(10_020, 10_000)));
    assert!(
        matches!(&ok, Verification::Unverified { reason, .. } if reason.contains("QEMU")),
        "{ok:?}"
    );
    let bad = verify(Expect::Qemu, 10_000, Evidence::Deltas(&d(10_020, 3)));
    assert!(matches!(bad, Verification::Failed { .. }), "{bad:?}");
}

#[test]
fn counters_that_lag_the_work_are_inconsistent_not_verified() {
    // What kvm_pvm shows: io_exits stays 0 and exits grows far slower.
    let inconsistent = |v: &Verification| {
        matches!(
            v,
            Verification::Unverified {
                cause: Some(vmbench_results::Unverifiable::CountersInconsistent),
                reason,
            } if reason.contains("inconsistent")
        )
    };
    let v = verify(Expect::Qemu, 100_000, Evidence::Deltas(&d(4_000, 0)));
    assert!(inconsistent(&v), "{v:?}");
    let v = verify(Expect::KvmHandler, 100_000, Evidence::Deltas(&d(30_000, 0)));
    assert!(inconsistent(&v), "{v:?}");
}

#[test]
fn baselines_must_not_exit() {
    assert!(matches!(
        verify(Expect::NoExit, 100_000, Evidence::Deltas(&d(150, 0))),
        Verification::Verified { .. }
    ));
    assert!(matches!(
        verify(Expect::NoExit, 100_000, Evidence::Deltas(&d(100_000, 0))),
        Verification::Failed { .. }
    ));
}

#[test]
fn missing_stats_and_tcg() {
    assert!(matches!(
        verify(Expect::KvmHandler, 10, Evidence::Tcg),
        Verification::Unverified { reason, .. } if reason.starts_with("not verifiable: TCG")
    ));
    assert!(matches!(
        verify(Expect::KvmHandler, 10, Evidence::Unavailable("QEMU 7.0 has no query-stats")),
        Verification::Unverified { reason, .. } if reason.contains("7.0")
    ));
    let only_exits: BTreeMap<String, u64> = [("exits".to_string(), 10u64)].into();
    assert!(matches!(
        verify(Expect::Qemu, 10, Evidence::Deltas(&only_exits)),
        Verification::Unverified { .. }
    ));
}

#[test]
fn query_stats_has_an_upper_bound_and_never_verifies_which_side_served_a_port() {
    // Three exits per execution are not "one exit per execution" (D2).
    let v = verify(Expect::KvmHandler, 10_000, Evidence::Deltas(&d(30_000, 0)));
    assert!(
        matches!(&v, Verification::Failed { evidence } if evidence.contains("more than one exit")),
        "{v:?}"
    );
    // io_exits cannot tell the in-kernel PIC from QEMU (D3).
    for expect in [Expect::KernelPio, Expect::Qemu] {
        let v = verify(expect, 10_000, Evidence::Deltas(&d(10_020, 10_000)));
        assert!(
            matches!(&v, Verification::Unverified { reason, .. } if reason.contains("io_exits counts in-kernel and QEMU")),
            "{v:?}"
        );
    }
}

fn counts(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

const N: u64 = 20_100;

/// Judged as on an AMD host (kvm_amd).
fn traced(row: Row, pairs: &[(&str, u64)]) -> Verification {
    on(Some(Vendor::Svm), row, pairs)
}

fn on(vendor: Option<Vendor>, row: Row, pairs: &[(&str, u64)]) -> Verification {
    let mut c = claim(row, 0xe9);
    c.vendor = vendor;
    verify_tracepoints(row, &c, N, &counts(pairs))
}

#[test]
fn tracepoints_verify_a_row_only_inside_its_band() {
    let exact = traced(
        Row::KernelFast,
        &[
            ("kvm_cpuid", N),
            ("kvm_cpuid leaf 0", N),
            ("kvm_userspace_exit", 2),
        ],
    );
    assert!(
        matches!(&exact, Verification::Verified { evidence } if evidence.contains("kvm_cpuid leaf 0 1.00")),
        "{exact:?}"
    );
    // Under: some executions did not reach KVM's handler.
    let under = traced(Row::KernelFast, &[("kvm_cpuid leaf 0", N - 1)]);
    assert!(matches!(under, Verification::Failed { .. }), "{under:?}");
    // None at all from user mode: the CPUID went elsewhere, and the
    // evidence says so.
    let never = traced(Row::UserFast, &[("kvm_cpuid leaf 0", 3)]);
    assert!(
        matches!(&never, Verification::Failed { evidence } if evidence.contains("never reached this KVM")),
        "{never:?}"
    );
    // Over: three per execution is not one.
    let over = traced(Row::KernelFast, &[("kvm_cpuid leaf 0", 3 * N)]);
    assert!(
        matches!(&over, Verification::Failed { evidence } if evidence.contains("more than one per execution")),
        "{over:?}"
    );
    // An in-KVM row that went to QEMU fails.
    let to_qemu = traced(
        Row::KernelRdmsr,
        &[("kvm_msr read 0x1b", N), ("kvm_userspace_exit", N)],
    );
    assert!(
        matches!(&to_qemu, Verification::Failed { evidence } if evidence.contains("exits to QEMU")),
        "{to_qemu:?}"
    );
}

#[test]
fn qemu_rows_need_one_kvm_exit_io_per_execution() {
    let served = traced(
        Row::KernelSlow,
        &[
            ("kvm_pio write port 0xe9", N),
            ("kvm_userspace_exit KVM_EXIT_IO", N),
            ("kvm_userspace_exit", N + 2),
        ],
    );
    assert!(
        matches!(served, Verification::Verified { .. }),
        "{served:?}"
    );
    // The in-kernel PIO row must not reach QEMU, the QEMU row must.
    let in_kernel = traced(
        Row::KernelPio,
        &[
            ("kvm_pio read port 0x4d0", N),
            ("kvm_userspace_exit KVM_EXIT_IO", N),
            ("kvm_userspace_exit", N),
        ],
    );
    assert!(
        matches!(in_kernel, Verification::Failed { .. }),
        "{in_kernel:?}"
    );
    let not_to_qemu = traced(
        Row::KernelInbQemu,
        &[
            ("kvm_pio read port 0x1234", N),
            ("kvm_userspace_exit KVM_EXIT_IO", 0),
        ],
    );
    assert!(
        matches!(&not_to_qemu, Verification::Failed { evidence } if evidence.contains("KVM_EXIT_IO")),
        "{not_to_qemu:?}"
    );
}

#[test]
fn baselines_invd_and_missing_tracepoints() {
    let quiet = traced(
        Row::KernelNop,
        &[("kvm_cpuid", 0), ("kvm_userspace_exit", 2)],
    );
    assert!(matches!(quiet, Verification::Verified { .. }), "{quiet:?}");
    let exits = traced(Row::UserNop, &[("kvm_cpuid", N)]);
    assert!(matches!(exits, Verification::Failed { .. }), "{exits:?}");
    // A guest timer tick every few executions (a nested, emulated
    // guest): each injected interrupt accounts for up to seven events,
    // the rest must stay within the slack.
    let ticks = N / 20;
    let ticked = traced(
        Row::UserNop,
        &[
            ("kvm_exit", 3 * ticks),
            ("kvm_msr", 2 * ticks),
            ("kvm_eoi", ticks),
            (INJECTED, ticks),
        ],
    );
    assert!(
        matches!(&ticked, Verification::Verified { evidence } if evidence.contains("injected interrupts'")),
        "{ticked:?}"
    );
    let exiting = traced(
        Row::UserNop,
        &[
            ("kvm_exit", 3 * ticks + N),
            ("kvm_cpuid", N),
            ("kvm_msr", 2 * ticks),
            (INJECTED, ticks),
        ],
    );
    assert!(
        matches!(&exiting, Verification::Failed { evidence } if evidence.contains("of its own")),
        "{exiting:?}"
    );
    // Every instruction emulated (kvm_pvm's OS-free ring 0): about
    // three per NOP-loop iteration, no exit event at all.
    let emulated = traced(Row::KernelNop, &[("kvm_cpuid", 0), (EMULATED, 3 * N)]);
    assert!(
        matches!(&emulated, Verification::Failed { evidence } if evidence.contains("emulated")),
        "{emulated:?}"
    );
    // The guest's ring-0 wait around a ring-3 row, emulated on such a
    // host: under one per execution, not the baseline's own.
    let waited = traced(Row::UserNop, &[("kvm_cpuid", 0), (EMULATED, N * 3 / 4)]);
    assert!(
        matches!(waited, Verification::Verified { .. }),
        "{waited:?}"
    );
    // kvm_exit silent (kvm_pvm): INVD cannot be proven either way.
    let invd = traced(Row::KernelInvd, &[("kvm_exit", 0), ("kvm_cpuid", 0)]);
    assert!(
        matches!(&invd, Verification::Unverified { reason, .. } if reason.contains("kvm_exit does not fire")),
        "{invd:?}"
    );
    let invd = traced(
        Row::KernelInvd,
        &[("kvm_exit", N + 40), (INVD_REASON, N), ("kvm_cpuid", 0)],
    );
    assert!(matches!(invd, Verification::Verified { .. }), "{invd:?}");
    // kvm_exit carries the reason on VMX and SVM: exits of another
    // reason are not INVD's.
    let other = traced(
        Row::KernelInvd,
        &[("kvm_exit", N + 40), (INVD_REASON, 0), (WBINVD_REASON, N)],
    );
    assert!(
        matches!(&other, Verification::Failed { evidence } if evidence.contains("not INVD")),
        "{other:?}"
    );
    // ...unless this host runs on QEMU's TCG, whose SVM reports INVD
    // with WBINVD's code: verified, saying so.
    let mut c = claim(Row::KernelInvd, 0xe9);
    c.vendor = Some(Vendor::Svm);
    c.outer_tcg = true;
    let tcg = verify_tracepoints(
        Row::KernelInvd,
        &c,
        N,
        &counts(&[("kvm_exit", N + 40), (INVD_REASON, 0), (WBINVD_REASON, N)]),
    );
    assert!(
        matches!(&tcg, Verification::Verified { evidence } if evidence.contains("QEMU's TCG")),
        "{tcg:?}"
    );
    let no_event = traced(Row::KernelVmcall, &[("kvm_cpuid", 0)]);
    assert!(
        matches!(&no_event, Verification::Unverified { reason, .. } if reason.contains("no kvm_hypercall tracepoint")),
        "{no_event:?}"
    );
}

#[test]
fn each_exiting_row_also_counts_kvm_exit_by_its_reason() {
    let filter = |row: Row| {
        probes(&claim(row, 0xe9))
            .into_iter()
            .find(|p| p.label.starts_with("kvm_exit reason"))
            .and_then(|p| p.filter)
    };
    assert_eq!(
        filter(Row::KernelFast).as_deref(),
        Some("(isa == 1 && exit_reason == 10) || (isa == 2 && exit_reason == 114)")
    );
    assert!(
        filter(Row::KernelWrmsrTscDeadline)
            .unwrap()
            .contains("exit_reason == 32")
    );
    assert!(
        filter(Row::KernelSlow)
            .unwrap()
            .contains("exit_reason == 30")
    );
    assert_eq!(filter(Row::KernelNop), None, "a baseline has no reason");
}

#[test]
fn mmio_and_pio_rows_reach_qemu_or_stop_at_the_ioeventfd() {
    let mmio = "kvm_mmio write 1 byte";
    let pio = "kvm_pio write 1 byte, port >= 0x1000";
    let to_qemu = traced(
        Row::KernelMmioQemu,
        &[
            (mmio, N),
            (USERSPACE, N + 3),
            (USERSPACE_MMIO, N),
            (USERSPACE_IO, 3),
        ],
    );
    assert!(
        matches!(&to_qemu, Verification::Verified { .. }),
        "{to_qemu:?}"
    );
    // Completed in KVM when it claims QEMU: fails, naming the exit kind.
    let missed = traced(Row::UserMmioQemu, &[(mmio, N), (USERSPACE, 2)]);
    assert!(
        matches!(&missed, Verification::Failed { evidence } if evidence.contains("KVM_EXIT_MMIO")),
        "{missed:?}"
    );
    let eventfd = traced(Row::KernelMmioIoeventfd, &[(mmio, N), (USERSPACE, 5)]);
    assert!(
        matches!(&eventfd, Verification::Verified { evidence } if evidence.contains("ioeventfd")),
        "{eventfd:?}"
    );
    // An ioeventfd row whose writes went to QEMU after all.
    let leaked = traced(
        Row::KernelPioIoeventfd,
        &[(pio, N), (USERSPACE, N), (USERSPACE_IO, N)],
    );
    assert!(
        matches!(&leaked, Verification::Failed { evidence } if evidence.contains("exits to QEMU")),
        "{leaked:?}"
    );
    let pio_qemu = traced(
        Row::UserPioQemu,
        &[(pio, N), (USERSPACE, N), (USERSPACE_IO, N)],
    );
    assert!(
        matches!(&pio_qemu, Verification::Verified { .. }),
        "{pio_qemu:?}"
    );
    // Half the writes never exited at all.
    let half = traced(Row::KernelMmioIoeventfd, &[(mmio, N / 2)]);
    assert!(matches!(&half, Verification::Failed { .. }), "{half:?}");
    // The probes: the row's filtered proof, both userspace-exit kinds,
    // and the exit reason of an MMIO access.
    let labels: Vec<String> = probes(&claim(Row::KernelMmioQemu, 0xe9))
        .into_iter()
        .map(|p| p.label)
        .collect();
    for want in [
        mmio,
        USERSPACE_MMIO,
        USERSPACE_IO,
        "kvm_exit reason EPT_MISCONFIG/NPF",
    ] {
        assert!(labels.iter().any(|l| l == want), "{want} not in {labels:?}");
    }
}

#[test]
fn exits_the_hardware_may_absorb_are_verified_either_way_but_only_on_vmx_and_svm() {
    let reached = traced(Row::KernelEoi, &[("kvm_eoi", N)]);
    assert!(
        matches!(&reached, Verification::Verified { evidence } if evidence.contains("reached KVM's local APIC")),
        "{reached:?}"
    );
    // No event, and the counters saw both witness CPUIDs: absorbed, and
    // the row names the mechanism of the host's vendor.
    let live = (WITNESS_LABEL, WITNESSES_PER_ROW);
    let absorbed = traced(Row::KernelEoi, &[("kvm_eoi", 0), live]);
    assert!(
        matches!(&absorbed, Verification::Verified { evidence } if evidence.contains("AVIC")),
        "{absorbed:?}"
    );
    let vmx = on(Some(Vendor::Vmx), Row::KernelEoi, &[("kvm_eoi", 0), live]);
    assert!(
        matches!(&vmx, Verification::Verified { evidence } if evidence.contains("APICv")),
        "{vmx:?}"
    );
    // CR8: a TPR shadow on VMX; on SVM KVM simply does not intercept
    // the write (V_TPR), AVIC or not.
    let cr8 = [("kvm_cr write cr8", 0), live];
    let svm = traced(Row::KernelMovCr8, &cr8);
    assert!(
        matches!(&svm, Verification::Verified { evidence } if evidence.contains("V_TPR") && !evidence.contains("TPR shadow")),
        "{svm:?}"
    );
    let vmx = on(Some(Vendor::Vmx), Row::KernelMovCr8, &cr8);
    assert!(
        matches!(&vmx, Verification::Verified { evidence } if evidence.contains("TPR shadow") && !evidence.contains("AVIC")),
        "{vmx:?}"
    );
    // All-zero counts without the witness: the counters may not have
    // worked at all, so no event proves nothing.
    for witnessed in [0, 1, 3] {
        let dead = traced(
            Row::KernelWrmsrSpecCtrl,
            &[("kvm_msr write 0x48", 0), (WITNESS_LABEL, witnessed)],
        );
        assert!(
            matches!(&dead, Verification::Unverified { reason, .. } if reason.contains("liveness witness")),
            "{witnessed}: {dead:?}"
        );
    }
    // Elsewhere (kvm_pvm) no event is no proof of anything.
    let pvm = on(None, Row::KernelMovCr8, &cr8);
    assert!(
        matches!(&pvm, Verification::Unverified { reason, .. } if reason.contains("not VMX or SVM")),
        "{pvm:?}"
    );
    // Some executions exited and some did not: neither path.
    let mixed = traced(Row::KernelWrmsrIbpb, &[("kvm_msr write 0x49", N / 2)]);
    assert!(matches!(&mixed, Verification::Failed { .. }), "{mixed:?}");
    // Absorbed, yet exits to QEMU happened: not the claimed path.
    let to_qemu = traced(Row::KernelSelfIpi, &[("kvm_apic_ipi", 0), (USERSPACE, N)]);
    assert!(
        matches!(&to_qemu, Verification::Failed { .. }),
        "{to_qemu:?}"
    );
    // query-stats cannot tell these paths apart.
    for expect in [Expect::Apic, Expect::Ioeventfd, Expect::QemuMmio] {
        let v = verify(expect, 10_000, Evidence::Deltas(&d(10_000, 0)));
        assert!(
            matches!(v, Verification::Unverified { .. }),
            "{expect:?}: {v:?}"
        );
    }
}
