//! The shared-memory suite on the host: the loopback (two processes), and a
//! hostile guest end against `vmbench shm host`.
#![allow(clippy::unwrap_used)]

mod common;
use common::vmbench;

use std::path::Path;
use std::process::{Child, Output, Stdio};
use std::sync::atomic::Ordering::{Relaxed, Release};
use std::time::{Duration, Instant};
use vmbench_proto::layout::*;
use vmbench_proto::shm::{G_ACK, G_LEN, G_STATUS, G_T, P_SEQ};
use vmbench_proto::{Command as GuestCommand, GuestEnd, MappedRegion, Region};

#[test]
fn loopback_prints_every_measurement_with_integrity_and_ratios() {
    let raw = tempfile::NamedTempFile::new().unwrap();
    let (out, shared_prefix) = loopback_json(raw.path());
    common::assert_matches_schema("shm", &out.stdout);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ms = v["results"]["measurements"].as_array().unwrap();
    let ids: Vec<&str> = ms.iter().map(|m| m["id"].as_str().unwrap()).collect();
    let mut want = vec![
        "shm.ref.cacheline-rtt".to_string(),
        "shm.rtt.poll".into(),
        "shm.rtt.doorbell".into(),
        "shm.sweep.64B.host-write".into(),
        "shm.sweep.4MiB.guest-read-cold".into(),
    ];
    for f in [
        "1080p-24bpp",
        "1080p-32bpp",
        "1440p-24bpp",
        "1440p-32bpp",
        "4k-24bpp",
        "4k-32bpp",
    ] {
        want.push(format!("shm.ref.memcpy.{f}"));
        for k in [
            "host-write",
            "end-to-end",
            "guest-read-cold",
            "guest-read-warm",
            "guest-scan",
            "guest-sha256",
        ] {
            want.push(format!("shm.h2g.{f}.{k}"));
        }
        for k in [
            "guest-write",
            "host-read",
            "host-read-cold",
            "host-sha256",
            "end-to-end",
        ] {
            want.push(format!("shm.g2h.{f}.{k}"));
        }
    }
    for w in &want {
        assert!(ids.contains(&w.as_str()), "{w} missing from {ids:?}");
    }
    let timer = ms
        .iter()
        .find(|m| m["id"] == "shm.ref.timer-overhead")
        .expect("the host's empty window is measured")["summary"]["p50"]
        .as_u64()
        .unwrap();
    for m in ms {
        let s = &m["summary"];
        assert!(s["n"].as_u64().unwrap() >= 3, "{m}");
        assert!(!m["definition"].as_str().unwrap().is_empty());
        assert!(m["tsc_khz"].as_f64().unwrap() > 0.0);
        // Every transfer has the timer's cost taken out: the host's on the
        // host side, the guest end's own on its side (D5).
        if !m["bytes"].is_null() {
            let ovh = m["overhead_p50"].as_u64().unwrap_or_else(|| panic!("{m}"));
            if !m["id"].as_str().unwrap().contains(".guest-") {
                assert_eq!(ovh, timer, "{m}");
            }
            assert_eq!(
                m["overhead_subtracted"]["p50"].as_u64().unwrap(),
                s["p50"].as_u64().unwrap().saturating_sub(ovh),
                "{m}"
            );
        }
    }
    // Transfers carry their size; the polling RTT is compared with the cache line.
    let by_id = |id: &str| ms.iter().find(|m| m["id"] == id).unwrap();
    assert_eq!(
        by_id("shm.h2g.4k-32bpp.host-write")["bytes"],
        3840 * 2160 * 4
    );
    assert_eq!(by_id("shm.rtt.poll")["reference"], "shm.ref.cacheline-rtt");
    assert_round_trips_both_ways(ms);
    // Cold reads compare with a cold memcpy, warm ones with a warm one (D7).
    assert_eq!(
        by_id("shm.h2g.4k-32bpp.guest-read-cold")["reference"],
        "shm.ref.memcpy-cold.4k-32bpp"
    );
    assert_eq!(
        by_id("shm.h2g.4k-32bpp.guest-read-warm")["reference"],
        "shm.ref.memcpy.4k-32bpp"
    );
    assert_eq!(
        by_id("shm.sweep.4MiB.guest-read-cold")["reference"],
        "shm.ref.memcpy-cold.4MiB"
    );
    let checks = v["results"]["checks"].as_array().unwrap();
    for id in ["shm.integrity.h2g", "shm.integrity.g2h"] {
        let c = checks.iter().find(|c| c["id"] == id).unwrap();
        assert_eq!(c["passed"], true, "{c}");
        assert!(c["observed"].as_str().unwrap().contains("(100%)"), "{c}");
    }
    // The targets are reported (pass or fail is the machine's business).
    for id in ["shm.target.rtt-vs-cacheline", "shm.target.copy-vs-memcpy"] {
        assert!(checks.iter().any(|c| c["id"] == id), "{id} missing");
    }
    let csv = std::fs::read_to_string(raw.path()).unwrap();
    let rtt_rows = csv
        .lines()
        .filter(|l| l.starts_with("shm.rtt.poll,"))
        .count();
    assert_eq!(
        rtt_rows as u64,
        by_id("shm.rtt.poll")["summary"]["n"].as_u64().unwrap()
    );
    // Nothing left in /dev/shm.
    let left: Vec<String> = std::fs::read_dir("/dev/shm")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&shared_prefix))
        .collect();
    assert!(left.is_empty(), "left behind in /dev/shm: {left:?}");
}

#[test]
fn loopback_refuses_one_cpu_for_both_ends() {
    let out = vmbench()
        .args(["shm", "--loopback", "--cpus", "1,1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("two different CPUs"));
}

/// Starts `vmbench shm host` on a fresh file and attaches to it as the
/// guest; returns the host process, the mapping and the RunShm request's args.
/// The polling round trip both ways: single round trips without the
/// empty round-trip window's p50, and the median of the batch means, one
/// per interleaved round (9 in --quick), as for its references.
fn assert_round_trips_both_ways(ms: &[serde_json::Value]) {
    let by_id = |id: &str| ms.iter().find(|m| m["id"] == id).unwrap();
    assert_eq!(
        by_id("shm.rtt.poll-pause")["reference"],
        "shm.ref.cacheline-rtt-pause"
    );
    assert_eq!(
        by_id("shm.rtt.doorbell")["reference"],
        "shm.ref.eventfd-rtt"
    );
    let rtt_timer = by_id("shm.ref.timer-overhead-rtt")["summary"]["p50"]
        .as_u64()
        .unwrap();
    let poll = by_id("shm.rtt.poll");
    assert_eq!(poll["overhead_p50"].as_u64(), Some(rtt_timer), "{poll}");
    assert!(poll["batch_mean"].as_f64().unwrap() > 0.0, "{poll}");
    for id in [
        "shm.ref.cacheline-rtt",
        "shm.ref.cacheline-rtt-pause",
        "shm.rtt.poll-pause",
    ] {
        let m = by_id(id);
        assert_eq!(m["summary"]["n"], 9, "{m}");
        let batch = m["batch_mean"].as_f64().unwrap();
        let (min, max) = (
            m["summary"]["min"].as_f64().unwrap(),
            m["summary"]["max"].as_f64().unwrap(),
        );
        // The median of the batch means lies among them (samples are the
        // means rounded to a tick).
        assert!(min - 1.0 <= batch && batch <= max + 1.0, "{m}");
    }
}

fn host_and_run_shm(dir: &Path) -> (Child, MappedRegion, [u64; 6]) {
    let path = dir.join("region");
    let child = vmbench()
        .args([
            "shm",
            "host",
            "--quick",
            "--region-mib",
            "8",
            "--wait",
            "30",
            "--path",
        ])
        .arg(&path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mapped = loop {
        if std::fs::metadata(&path).is_ok_and(|m| m.len() == 8 << 20) {
            break MappedRegion::open_file(&path, 8 << 20).unwrap();
        }
        assert!(Instant::now() < deadline, "the host never created its file");
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut never = || None;
    let args = {
        let mut g = GuestEnd::attach(mapped.region(), deadline, &mut never).unwrap();
        let req = g.next(deadline, &mut never).unwrap().unwrap();
        assert_eq!(req.command, Some(GuestCommand::RunShm));
        req.args
    };
    (child, mapped, args)
}

fn finish(child: Child) -> Output {
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut child = child;
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("vmbench shm host {pid} did not end within 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn assert_protocol_error(out: &Output, case: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{case}: {stderr}");
    assert!(stderr.contains("protocol violation"), "{case}: {stderr}");
    assert!(!stderr.contains("panicked"), "{case}: {stderr}");
}

/// Waits until the host publishes its first request after `base`.
fn first_request(r: &Region, base: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let s = r.u64_at(P_SEQ).load(std::sync::atomic::Ordering::Acquire);
        if s != base {
            return s;
        }
        assert!(Instant::now() < deadline, "no request from the host");
        std::hint::spin_loop();
    }
}

#[test]
fn adversarial_answers_are_protocol_errors_not_panics() {
    // Each case answers the host's first request with one crafted lie.
    type Lie = fn(&Region, u64);
    let cases: [(&str, Lie); 5] = [
        ("ack ahead", |r, seq| {
            r.u64_at(G_ACK).store(seq + 7, Release)
        }),
        ("ack backwards", |r, seq| {
            // Answer the first echo, then take the acknowledgement back.
            r.u64_at(G_ACK).store(seq, Release);
            let next = first_request(r, seq);
            r.u64_at(G_ACK).store(next - 2, Release);
        }),
        ("unknown status", |r, seq| {
            r.u32_at(G_STATUS).store(99, Relaxed);
            r.u64_at(G_ACK).store(seq, Release);
        }),
        ("absurd time", |r, seq| {
            r.u64_at(G_T).store(u64::MAX, Relaxed);
            r.u64_at(G_ACK).store(seq, Release);
        }),
        ("answered a command never sent", |r, _| {
            r.u64_at(GC_RESP_SEQ).store(u64::MAX, Release);
        }),
    ];
    for (case, lie) in cases {
        let dir = tempfile::tempdir().unwrap();
        let (child, mapped, args) = host_and_run_shm(dir.path());
        let r = mapped.region();
        let base = args[5];
        r.u64_at(G_ACK).store(base, Release);
        let seq = first_request(r, base);
        lie(r, seq);
        let out = finish(child);
        assert_protocol_error(&out, case);
    }
}

#[test]
fn a_length_beyond_the_request_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (child, mapped, args) = host_and_run_shm(dir.path());
    let r = mapped.region();
    let base = args[5];
    r.u64_at(G_ACK).store(base, Release);
    // Answer the echoes properly until the first slot request, then claim
    // more bytes than any slot holds.
    let mut last = base;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let seq = r.u64_at(P_SEQ).load(std::sync::atomic::Ordering::Acquire);
        if seq != last {
            last = seq;
            let op = r.u32_at(HOST_PING_OFF + 8).load(Relaxed);
            if op == vmbench_proto::shm::Op::Echo as u32 {
                r.u64_at(G_ACK).store(seq, Release);
                continue;
            }
            if op == vmbench_proto::shm::Op::Bounce as u32 {
                bounce(r, seq);
                continue;
            }
            if op == vmbench_proto::shm::Op::DoorbellRounds as u32 {
                // No doorbell here: the host does not ask; answer as a failure if it did.
                r.u32_at(G_STATUS).store(2, Relaxed);
                r.u64_at(G_ACK).store(seq, Release);
                break;
            }
            r.u64_at(G_LEN).store(u64::MAX - 3, Relaxed);
            r.u64_at(G_ACK).store(seq, Release);
            break;
        }
        assert!(Instant::now() < deadline);
        std::hint::spin_loop();
    }
    let out = finish(child);
    assert_protocol_error(&out, "oversized length");
}

/// Plays the guest's side of the Bounce request `seq` (its rounds, then
/// the plain answer), as an honest guest end does.
fn bounce(r: &Region, seq: u64) {
    use vmbench_proto::shm::{B_GUEST, B_HOST, P_COUNT, P_SEED, bounce_value};
    let (first, count) = (
        r.u64_at(P_SEED).load(Relaxed),
        r.u64_at(P_COUNT).load(Relaxed),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    for k in 1..=count {
        let want = bounce_value(first, k);
        while r.u64_at(B_HOST).load(std::sync::atomic::Ordering::Acquire) != want {
            assert!(Instant::now() < deadline, "bounce round {k} never came");
            std::hint::spin_loop();
        }
        r.u64_at(B_GUEST).store(want, Release);
    }
    r.u64_at(G_ACK).store(seq, Release);
}

#[test]
fn a_guest_scribbling_random_bytes_everywhere_is_a_protocol_error() {
    let dir = tempfile::tempdir().unwrap();
    let (child, mapped, _args) = host_and_run_shm(dir.path());
    let r = mapped.region();
    let pid = child.id();
    // xorshift64*: reproducible noise into every guest-written byte (guest
    // control, pong line, mailbox) and over the data slots.
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = || {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    };
    let start = Instant::now();
    let mut child = child;
    while child.try_wait().unwrap().is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "host {pid} still running"
        );
        for _ in 0..64 {
            let which = next() % 4;
            let off = match which {
                0 => GUEST_CTRL_OFF + (next() as usize % (LINE_PAIR / 8)) * 8,
                1 => GUEST_PONG_OFF + (next() as usize % (LINE_PAIR / 8)) * 8,
                2 => MAILBOX_OFF + (next() as usize % (MAILBOX_BYTES / 8)) * 8,
                _ => DATA_OFF + (next() as usize % ((r.len() - DATA_OFF) / 8)) * 8,
            };
            r.u64_at(off).store(next(), Release);
        }
    }
    let out = child.wait_with_output().unwrap();
    assert_protocol_error(&out, "random scribbling");
}

/// `vmbench shm --loopback --quick --json --raw-csv RAW`, run to its end and
/// successful; with the prefix its shared file was named with.
fn loopback_json(raw: &std::path::Path) -> (std::process::Output, String) {
    let child = vmbench()
        .args(["shm", "--loopback", "--quick", "--json", "--raw-csv"])
        .arg(raw)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The shared file is named after the vmbench process.
    let shared_prefix = format!("vmbench-{}-", child.id());
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (out, shared_prefix)
}
