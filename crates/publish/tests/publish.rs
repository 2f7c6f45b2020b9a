//! The output directory from a fixture run: Markdown that parses as GFM
//! tables, figures traceable to results.json, determinism, SSHSIG signing
//! checked by the real `ssh-keygen -Y verify` and `sha256sum -c`, compare.
#![allow(clippy::unwrap_used)]

use pulldown_cmark::{Event, Options, Parser, Tag, TagEnd};
use std::path::Path;
use std::process::Command;
use vmbench_proto::spec::GuestSpec;
use vmbench_publish::{compare, manifest, markdown, sign};
use vmbench_results::{
    Check, KnobRecord, Measurement, QemuRecord, RUN_SCHEMA_VERSION, Results, RunRecord, SampleSet,
    SpecRow, Unit, Verification,
};
use vmbench_testkit::{have_tool, require};

const AMD: &str = "amd-pstate-boost";
const INTEL: &str = "intel-pstate-turbo";

fn measurement(id: &str, base: u64, spread: u64, bytes: Option<u64>) -> Measurement {
    let mut s = SampleSet::new();
    for i in 0..5000u64 {
        s.record(base + (i * 7919) % spread).unwrap();
    }
    let mut m = Measurement::from_samples(
        id,
        format!("fixture window of {id} | with a pipe"),
        Unit::TscTicks,
        &s,
        if id.starts_with("vmexit.") {
            Verification::Unverified {
                cause: None,
                reason: "TCG: no VM exits".into(),
            }
        } else {
            Verification::NotApplicable
        },
    )
    .unwrap();
    m.tsc_khz = Some(2_596_148.0);
    m.bytes = bytes;
    m
}

/// The host rows and JSON `vmbench info --root` gives for a fixture host.
fn host_of(fixture: &str) -> (Vec<SpecRow>, vmbench_host::HostSpec) {
    let dir = tempfile::tempdir().unwrap();
    vmbench_host::fixture::load(&[fixture], dir.path()).unwrap();
    let spec = vmbench_host::HostSpec::gather(
        &vmbench_host::SysRoot::new(dir.path()),
        &vmbench_host::SpecOptions {
            qemu: None,
            skip_calibration: true,
        },
    );
    let rows = spec
        .rows()
        .into_iter()
        .map(|r| SpecRow {
            section: r.section.to_string(),
            key: r.key,
            value: r.value,
        })
        .collect();
    (rows, spec)
}

fn record(accel: &str, fixture: &str, scale: u64) -> RunRecord {
    let (host_rows, host) = host_of(fixture);
    let mut ms = vec![
        measurement("vmexit.user-fast", 1000 * scale, 300, None),
        measurement("vmexit.kernel-slow", 5000 * scale, 900, None),
        measurement("shm.ref.cacheline-rtt", 400, 100, None),
        measurement("shm.rtt.poll", 500 * scale, 200, None),
        measurement(
            "shm.h2g.4k-32bpp.guest-read-warm",
            3_000_000,
            50_000,
            Some(33_177_600),
        ),
        measurement("shm.sweep.64B.host-write", 60, 10, Some(64)),
        measurement("shm.sweep.4KiB.host-write", 900, 50, Some(4096)),
        measurement("shm.ref.memcpy.64B", 50, 5, Some(64)),
        measurement("shm.ref.memcpy.4KiB", 300, 20, Some(4096)),
    ];
    ms[3].reference = Some("shm.ref.cacheline-rtt".into());
    RunRecord {
        schema_version: RUN_SCHEMA_VERSION,
        vmbench_version: "0.1.0".into(),
        build: None,
        command: "vmbench run --accel tcg --quick --out out".into(),
        started_utc: "2026-11-22T00:00:00Z".into(),
        accel: match accel {
            "kvm" => Some(vmbench_results::Accel::Kvm),
            "tcg" => Some(vmbench_results::Accel::Tcg),
            _ => None,
        },
        guest_flavour: "linux".into(),
        guests: vec![],
        suites: vec![vmbench_results::Suite::Vmexit, vmbench_results::Suite::Shm],
        complete: true,
        incomplete: vec![],
        host_rows,
        host,
        guest: Some(GuestSpec {
            kernel_release: "6.1.0".into(),
            cpu_flags: vec!["tsc".into(), "rdtscp".into()],
            ..GuestSpec::default()
        }),
        qemu: Some(QemuRecord {
            path: "/usr/bin/qemu-system-x86_64".into(),
            version: Some("QEMU emulator version 7.2.22".into()),
            store_path: None,
            command_line: "qemu-system-x86_64 -accel tcg -m 512".into(),
        }),
        isolation: vec![KnobRecord {
            knob: vmbench_results::KnobId::Governor,
            kind: vmbench_results::KnobClass::Runtime,
            wanted: "performance".into(),
            found: "schedutil".into(),
            verdict: vmbench_results::Verdict::Fail,
            changed_to: Some("performance".into()),
            restored: vmbench_results::RestoreState::Restored,
        }],
        isolation_notes: vec!["isolcpus missing: add isolcpus=1".into()],
        pinning: Some(vmbench_results::Pinning {
            vcpus: vec![vmbench_results::PinnedVcpu { tid: 4242, cpu: 1 }],
            housekeeping: "0".parse().unwrap(),
        }),
        residual_noise: ["before isolation", "after isolation"]
            .iter()
            .zip([37_265.7, 812.5])
            .map(|(phase, us)| vmbench_results::CpuNoise {
                cpu: 1,
                phase: phase.to_string(),
                window_ms: 500,
                elapsed_us: 500_004,
                threshold_ns: 5000,
                noise_us_per_s: us,
                max_us: 241.7,
                interruptions: 3952,
                unexplained: 3825,
                off_cpu_us_per_s: Some(us * 0.9),
                causes: vec![vmbench_results::NoiseCause {
                    kind: "irq".into(),
                    name: "LOC: Local timer interrupts".into(),
                    count: 127,
                }],
            })
            .collect(),
        suite_context: vec![vmbench_results::SuiteContext {
            suite: "vmexit".into(),
            load_before: [1.39, 2.63, 2.35],
            load_after: [1.2, 2.5, 2.3],
            runnable_before: 3,
            runnable_after: 1,
            throttled: vec![vmbench_results::ThrottleDelta {
                counter: "cpu1 core_throttle_count".into(),
                delta: 2,
            }],
            frequency: vec![vmbench_results::CpuFrequency {
                cpu: 1,
                before_khz: 2_900_000,
                after_khz: 2_100_000,
            }],
            temperature: Some(vmbench_results::Temperature {
                zone: "x86_pkg_temp".into(),
                before_millicelsius: 52_000,
                after_millicelsius: 88_500,
            }),
        }],
        results: Results {
            measurements: ms,
            warnings: vec![vmbench_results::Warning::new(
                vmbench_results::WarningKind::Tcg,
                "TCG (software emulation): no VM exits",
            )],
            checks: vec![Check {
                kind: vmbench_results::CheckKind::Integrity,
                id: "shm.integrity.h2g".into(),
                statement: "every frame matches".into(),
                observed: "24/24 frames matched (100%)".into(),
                passed: true,
            }],
            ..Results::default()
        },
    }
}

/// Every table: (header cells, rows of cells), as a GFM parser sees them.
fn tables(md: &str) -> Vec<(Vec<String>, Vec<Vec<String>>)> {
    let mut out = Vec::new();
    let mut cur: Option<(Vec<String>, Vec<Vec<String>>)> = None;
    let mut row: Vec<String> = Vec::new();
    let mut text = String::new();
    let mut in_head = false;
    for ev in Parser::new_ext(md, Options::ENABLE_TABLES) {
        match ev {
            Event::Start(Tag::Table(_)) => cur = Some((vec![], vec![])),
            Event::End(TagEnd::Table) => out.push(cur.take().unwrap()),
            Event::Start(Tag::TableHead) => in_head = true,
            Event::End(TagEnd::TableHead) => {
                cur.as_mut().unwrap().0 = std::mem::take(&mut row);
                in_head = false;
            }
            Event::End(TagEnd::TableRow) => cur.as_mut().unwrap().1.push(std::mem::take(&mut row)),
            Event::Start(Tag::TableCell) => text.clear(),
            Event::End(TagEnd::TableCell) => row.push(text.clone()),
            Event::Text(t) | Event::Code(t) if cur.is_some() => text.push_str(&t),
            _ => {}
        }
        let _ = in_head;
    }
    out
}

#[test]
fn report_tables_parse_as_tables_with_consistent_columns() {
    let dir = tempfile::tempdir().unwrap();
    vmbench_publish::write_dir(&record("tcg", AMD, 1), dir.path()).unwrap();
    let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    let ts = tables(&md);
    assert!(ts.len() >= 8, "{} tables", ts.len());
    for (head, rows) in &ts {
        assert!(!head.is_empty());
        for r in rows {
            assert_eq!(r.len(), head.len(), "row {r:?} under {head:?}");
        }
    }
    // Every line that looks like a table row was parsed into one.
    let pipe_lines = md
        .lines()
        .filter(|l| l.starts_with('|') && !l.starts_with("|---"))
        .count();
    let parsed: usize = ts.iter().map(|(_, r)| r.len() + 1).sum();
    assert_eq!(pipe_lines, parsed);
    // The first screen says TCG before anything else.
    let first = md.lines().find(|l| l.starts_with('>')).unwrap();
    assert!(first.contains("TCG run — not a KVM measurement"), "{first}");
    assert!(md.find("TCG run").unwrap() < md.find("## Headline").unwrap());
    // The first screen names the host from its spec rows.
    assert!(
        md.contains("| host CPU | AMD EPYC 9354 32-Core Processor |"),
        "{md}"
    );
    assert!(md.contains("| host kernel | 6.12.5-amd |"));
}

#[test]
fn every_figure_in_the_tables_comes_from_results_json() {
    let dir = tempfile::tempdir().unwrap();
    vmbench_publish::write_dir(&record("tcg", AMD, 1), dir.path()).unwrap();
    let back = vmbench_publish::load(dir.path()).unwrap();
    let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    let ts = tables(&md);
    let find = |id: &str| {
        back.results
            .measurements
            .iter()
            .find(|m| m.id == id)
            .unwrap()
    };
    let mut checked = 0;
    for (head, rows) in &ts {
        let col = |name: &str| head.iter().position(|h| h == name);
        match (head.first().map(String::as_str), col("p50"), col("p99.9")) {
            (Some("row"), Some(p50), Some(p999)) => {
                for r in rows {
                    let m = find(&format!("vmexit.{}", r[0]));
                    assert_eq!(r[p50], markdown::ticks_ns(m, m.summary.p50));
                    assert_eq!(r[p999], m.summary.p999.to_string());
                    assert_eq!(r[col("N").unwrap()], m.summary.n.to_string());
                    checked += 1;
                }
            }
            (Some("measurement"), Some(p50), Some(_)) => {
                for r in rows {
                    let m = find(&format!("shm.{}", r[0]));
                    let ns = m.ns(m.summary.p50 as f64).unwrap();
                    assert_eq!(r[p50], markdown::fmt_ns(ns), "{}", m.id);
                    if let Some(b) = m.p50_bytes_per_sec() {
                        assert_eq!(r[col("GB/s").unwrap()], format!("{:.2}", b / 1e9));
                    }
                    checked += 1;
                }
            }
            _ => {}
        }
    }
    assert_eq!(checked, back.results.measurements.len());
    // The CSV carries the same summary.
    let csv = std::fs::read_to_string(dir.path().join("vmexit.csv")).unwrap();
    let m = find("vmexit.user-fast");
    let setting = vmbench_publish::csv::Setting {
        accel: "tcg",
        guest: "linux",
    };
    assert!(
        csv.lines()
            .any(|l| l == vmbench_publish::csv::line(m, setting))
    );
    // Every line says where it ran (D18): the last two columns.
    assert!(vmbench_publish::csv::HEADER.ends_with(",accel,guest"));
    for l in csv.lines().skip(1) {
        assert!(l.ends_with(",tcg,linux"), "{l}");
    } // The residual noise, before and after isolation, from results.json.
    let noise: Vec<&Vec<String>> = ts
        .iter()
        .filter(|(h, _)| h.first().is_some_and(|c| c == "when"))
        .flat_map(|(_, rows)| rows)
        .collect();
    assert_eq!(noise.len(), back.residual_noise.len());
    for (row, n) in noise.iter().zip(&back.residual_noise) {
        assert_eq!(row[0], n.phase);
        assert_eq!(row[2], format!("{:.1}", n.noise_us_per_s));
        assert!(
            row[5].contains("LOC: Local timer interrupts ×127"),
            "{row:?}"
        );
    }
    assert!(
        md.contains(
            "| vmexit | 1.39 2.63 2.35 → 1.20 2.50 2.30 | 3 → 1 | cpu1 core_throttle_count +2 | cpu1 2900 → 2100 | x86_pkg_temp 52.0 → 88.5 |"
        ),
        "{md}"
    );
}

#[test]
fn output_is_deterministic_and_rerenders_from_results_json() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    let r = record("kvm", INTEL, 1);
    vmbench_publish::write_dir(&r, a.path()).unwrap();
    vmbench_publish::write_dir(&r, b.path()).unwrap();
    let files = manifest::files(&vmbench_host::files::OutputDir::open(a.path()).unwrap()).unwrap();
    assert!(
        files.iter().any(|f| f.ends_with(".spectrum.svg")),
        "{files:?}"
    );
    assert!(
        files.contains(&"plots/shm-bandwidth.svg".to_string()),
        "{files:?}"
    );
    assert_eq!(
        files,
        manifest::files(&vmbench_host::files::OutputDir::open(b.path()).unwrap()).unwrap()
    );
    for f in &files {
        assert_eq!(
            std::fs::read(a.path().join(f)).unwrap(),
            std::fs::read(b.path().join(f)).unwrap(),
            "{f} differs"
        );
    }
    // `report render` from results.json alone gives the same report.
    std::fs::remove_file(a.path().join("report.md")).unwrap();
    vmbench_publish::render_dir(a.path()).unwrap();
    assert_eq!(
        std::fs::read(a.path().join("report.md")).unwrap(),
        std::fs::read(b.path().join("report.md")).unwrap()
    );
    let md = std::fs::read_to_string(a.path().join("report.md")).unwrap();
    assert!(!md.contains("TCG run"));
}

fn keygen(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let key = dir.join("id_ed25519");
    let st = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "bench@example", "-f"])
        .arg(&key)
        .status()
        .unwrap();
    assert!(st.success());
    let pubkey = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let allowed = dir.join("allowed_signers");
    std::fs::write(
        &allowed,
        format!(
            "bench@example namespaces=\"{}\" {}",
            sign::NAMESPACE,
            pubkey
        ),
    )
    .unwrap();
    (key, allowed)
}

/// The README's check with stock tools.
fn stock_verify(out: &Path, allowed: &Path, namespace: &str) -> bool {
    let manifest = std::fs::File::open(out.join("MANIFEST.sha256")).unwrap();
    let sig_ok = Command::new("ssh-keygen")
        .args(["-Y", "verify", "-I", "bench@example", "-n", namespace, "-f"])
        .arg(allowed)
        .arg("-s")
        .arg(out.join("report.sig"))
        .stdin(manifest)
        .output()
        .unwrap()
        .status
        .success();
    let sums_ok = Command::new("sha256sum")
        .args(["-c", "--quiet", "MANIFEST.sha256"])
        .current_dir(out)
        .output()
        .unwrap()
        .status
        .success();
    sig_ok && sums_ok
}

#[test]
#[ignore = "needs ssh-keygen (openssh-client)"]
fn signature_verifies_with_ssh_keygen_and_vmbench_and_any_change_fails_both() {
    require(&[(have_tool("ssh-keygen"), "openssh-client")]);
    let keys = tempfile::tempdir().unwrap();
    let (key, allowed) = keygen(keys.path());
    let out = tempfile::tempdir().unwrap();
    vmbench_publish::write_dir(&record("tcg", AMD, 1), out.path()).unwrap();
    sign::sign(out.path(), &key).unwrap();
    // The private key never enters the directory.
    let secret = std::fs::read(&key).unwrap();
    for f in manifest::files(&vmbench_host::files::OutputDir::open(out.path()).unwrap()).unwrap() {
        assert_ne!(std::fs::read(out.path().join(&f)).unwrap(), secret);
    }
    assert!(stock_verify(out.path(), &allowed, sign::NAMESPACE));
    let v = sign::verify(out.path(), &allowed).unwrap();
    assert_eq!(v.signer.principals, "bench@example");
    // Another namespace does not verify.
    assert!(!stock_verify(out.path(), &allowed, "git"));
    // One byte changed in any file: both checks fail; restored, both pass.
    let mut files =
        manifest::files(&vmbench_host::files::OutputDir::open(out.path()).unwrap()).unwrap();
    files.push("MANIFEST.sha256".into());
    for f in files {
        let path = out.path().join(&f);
        let orig = std::fs::read(&path).unwrap();
        let mut bad = orig.clone();
        let i = bad.len() / 2;
        bad[i] ^= 0x01;
        std::fs::write(&path, &bad).unwrap();
        assert!(
            !stock_verify(out.path(), &allowed, sign::NAMESPACE),
            "{f}: stock tools accepted a change"
        );
        assert!(
            sign::verify(out.path(), &allowed).is_err(),
            "{f}: vmbench accepted a change"
        );
        std::fs::write(&path, &orig).unwrap();
    }
    assert!(sign::verify(out.path(), &allowed).is_ok());
    // An added file is not in the manifest: vmbench refuses it.
    std::fs::write(out.path().join("extra.txt"), "x").unwrap();
    assert!(sign::verify(out.path(), &allowed).is_err());
    std::fs::remove_file(out.path().join("extra.txt")).unwrap();
    // A signature made for another namespace is refused by vmbench.
    let st = Command::new("ssh-keygen")
        .args(["-q", "-Y", "sign", "-n", "file", "-f"])
        .arg(&key)
        .arg(out.path().join("MANIFEST.sha256"))
        .status()
        .unwrap();
    assert!(st.success());
    std::fs::rename(
        out.path().join("MANIFEST.sha256.sig"),
        out.path().join("report.sig"),
    )
    .unwrap();
    let e = sign::verify(out.path(), &allowed).unwrap_err();
    assert!(e.to_string().contains("namespace"), "{e}");
    // A key outside the allowed signers, or allowed for other namespaces only.
    sign::sign(out.path(), &key).unwrap();
    let other = keys.path().join("other");
    std::fs::write(&other, "someone@else ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n").unwrap();
    assert!(sign::verify(out.path(), &other).is_err());
    let pubkey = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    std::fs::write(&other, format!("bench@example namespaces=\"git\" {pubkey}")).unwrap();
    assert!(sign::verify(out.path(), &other).is_err());
}

#[test]
#[ignore = "needs ssh-keygen (openssh-client)"]
fn encrypted_keys_are_refused_with_what_to_do() {
    require(&[(have_tool("ssh-keygen"), "openssh-client")]);
    let keys = tempfile::tempdir().unwrap();
    let key = keys.path().join("k");
    assert!(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "secret", "-f"])
            .arg(&key)
            .status()
            .unwrap()
            .success()
    );
    let out = tempfile::tempdir().unwrap();
    vmbench_publish::write_dir(&record("tcg", AMD, 1), out.path()).unwrap();
    let e = sign::sign(out.path(), &key).unwrap_err().to_string();
    assert!(e.contains("ssh-add"), "{e}");
    assert!(!out.path().join("report.sig").exists());
}

#[test]
fn compare_puts_spec_differences_above_the_numbers() {
    // The Intel host's TSC runs at 2.0 GHz, the AMD one's at 2.596 GHz: the
    // same tick count is a different time on each (D4).
    let mut intel = record("kvm", INTEL, 2);
    for m in &mut intel.results.measurements {
        m.tsc_khz = Some(2_000_000.0);
    }
    let runs = vec![
        compare::Run {
            label: "a".into(),
            record: record("kvm", AMD, 1),
            provenance: "unsigned".into(),
        },
        compare::Run {
            label: "b".into(),
            record: intel,
            provenance: "unsigned".into(),
        },
    ];
    let md = compare::markdown(&runs);
    let ts = tables(&md);
    // What differs, the differences with confidence, the p50s.
    assert_eq!(ts.len(), 3);
    let spec = &ts[0].1;
    let sig = ts[1].1.iter().find(|r| r[0] == "vmexit.user-fast").unwrap();
    assert!(sig[5].contains("one boot"), "{sig:?}");
    assert_eq!(sig[4], "no verdict", "{sig:?}");
    assert!(sig[3].ends_with("in ns"), "two clocks: {sig:?}");
    let cpu = spec.iter().find(|r| r[0] == "CPU model").unwrap();
    assert_eq!(
        cpu[1..],
        [
            "AMD EPYC 9354 32-Core Processor".to_string(),
            "Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz".to_string()
        ]
    );
    let kernel = spec.iter().find(|r| r[0] == "kernel").unwrap();
    assert_eq!(
        kernel[1..],
        ["6.12.5-amd".to_string(), "6.12.9-intel".to_string()]
    );
    let rows = &ts[2].1;
    let uf = rows.iter().find(|r| r[0] == "vmexit.user-fast").unwrap();
    let (a, b) = (
        &runs[0].record.results.measurements[0],
        &runs[1].record.results.measurements[0],
    );
    // The ratio is of times: ticks at 2.596 GHz against ticks at 2.0 GHz.
    let a_ns = a.summary.p50 as f64 / 2_596_148.0 * 1e6;
    let b_ns = b.summary.p50 as f64 / 2_000_000.0 * 1e6;
    assert_eq!(uf[3], format!("{:.2}×", b_ns / a_ns));
    assert_ne!(
        uf[3],
        format!("{:.2}×", b.summary.p50 as f64 / a.summary.p50 as f64),
        "a tick ratio across hosts is not a time ratio"
    );
    // Without a TSC frequency there is no ratio at all.
    let mut unknown = runs[1].record.clone();
    for m in &mut unknown.results.measurements {
        m.tsc_khz = None;
    }
    let md2 = compare::markdown(&[
        compare::Run {
            label: "a".into(),
            record: runs[0].record.clone(),
            provenance: "unsigned".into(),
        },
        compare::Run {
            label: "b".into(),
            record: unknown,
            provenance: "unsigned".into(),
        },
    ]);
    let uf2 = tables(&md2)[1]
        .1
        .iter()
        .find(|r| r[0] == "vmexit.user-fast")
        .cloned()
        .unwrap();
    assert_eq!(uf2[3], "—");
    assert!(md.find("What differs").unwrap() < md.find("p50 side by side").unwrap());
    // Two runs on the same host: the same kernel is not listed as a difference.
    let same = [AMD, AMD].map(|f| compare::Run {
        label: f.into(),
        record: record("kvm", f, 1),
        provenance: "unsigned".into(),
    });
    let spec = tables(&compare::markdown(&same))[0].1.clone();
    assert!(spec.iter().any(|r| r[0] == "CPU model"));
    assert!(!spec.iter().any(|r| r[0] == "kernel"), "{spec:?}");
}

#[test]
#[ignore = "needs ssh-keygen and ssh-agent (openssh-client)"]
fn a_key_held_by_ssh_agent_signs_through_its_public_half() {
    require(&[
        (have_tool("ssh-keygen"), "openssh-client"),
        (have_tool("ssh-agent"), "openssh-client"),
    ]);
    let keys = tempfile::tempdir().unwrap();
    let (key, allowed) = keygen(keys.path());
    let sock = keys.path().join("agent.sock");
    let agent = Command::new("ssh-agent")
        .arg("-D")
        .arg("-a")
        .arg(&sock)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _agent = Kill(agent);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !sock.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "ssh-agent did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let added = Command::new("ssh-add")
        .arg("-q")
        .arg(&key)
        .env("SSH_AUTH_SOCK", &sock)
        .status()
        .unwrap();
    assert!(added.success());
    // Only the public half is given; the private file is moved away.
    std::fs::rename(&key, keys.path().join("elsewhere")).unwrap();
    let out = tempfile::tempdir().unwrap();
    vmbench_publish::write_dir(&record("tcg", AMD, 1), out.path()).unwrap();
    sign::sign_with_agent(out.path(), &key.with_extension("pub"), Some(&sock)).unwrap();
    assert!(stock_verify(out.path(), &allowed, sign::NAMESPACE));
    sign::verify(out.path(), &allowed).unwrap();
    assert!(!out.path().join("MANIFEST.sha256.sig").exists());
}

/// The repository's own Markdown: every line that looks like a table row is
/// part of a table a GFM parser sees (a stray blank line splits a table).
#[test]
fn the_readmes_tables_are_whole_tables() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    for doc in ["README.md", "reports/README.md", "host-tuning/README.md"] {
        let md = std::fs::read_to_string(root.join(doc)).unwrap();
        let pipe_lines = md
            .lines()
            .filter(|l| l.starts_with('|') && !l.starts_with("|---"))
            .count();
        let parsed: usize = tables(&md).iter().map(|(_, r)| r.len() + 1).sum();
        assert_eq!(pipe_lines, parsed, "{doc}");
    }
}

#[test]
fn the_exit_event_table_shows_each_rows_proof_per_execution() {
    let mut r = record("kvm", AMD, 1);
    for m in &mut r.results.measurements {
        if m.id == "vmexit.user-fast" {
            m.exit_events = Some(vmbench_results::ExitEvents::new(
                "KVM tracepoints on the vCPU thread",
                2_000,
                [
                    ("kvm_cpuid".to_string(), 2_000),
                    ("kvm_cpuid leaf 0".to_string(), 2_000),
                    ("kvm_userspace_exit".to_string(), 3),
                    ("kvm_userspace_exit KVM_EXIT_IO".to_string(), 0),
                    ("kvm_msr".to_string(), 0),
                ]
                .into(),
                Some("kvm_cpuid leaf 0".to_string()),
            ));
        }
    }
    let dir = tempfile::tempdir().unwrap();
    vmbench_publish::write_dir(&r, dir.path()).unwrap();
    let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    let (head, rows) = tables(&md)
        .into_iter()
        .find(|(h, _)| h.iter().any(|c| c == "proof"))
        .expect("an exit-event table");
    // kvm_msr is zero everywhere: no column for it.
    assert_eq!(
        head,
        [
            "row",
            "executions",
            "proof",
            "kvm_cpuid",
            "kvm_userspace_exit"
        ]
    );
    assert_eq!(
        rows,
        [[
            "user-fast",
            "2000",
            "kvm_cpuid leaf 0: 1.00",
            "1.00",
            "0.00"
        ]]
    );
    assert!(md.contains("KVM tracepoints on the vCPU thread"));
}

/// The micro-guest under KVM for the VM-exit suite, the Linux guest under TCG
/// for the shm suite: the report must not call it a TCG run, nor a KVM one.
#[test]
fn a_mixed_accelerator_run_says_which_suite_ran_where() {
    use vmbench_results::{Accel, GuestRecord};
    let mut r = record("kvm", AMD, 1);
    r.accel = None;
    r.guest_flavour = "micro".into();
    let qemu = |accel: &str| QemuRecord {
        path: "/usr/bin/qemu-system-x86_64".into(),
        version: None,
        store_path: None,
        command_line: format!("qemu-system-x86_64 -machine q35,accel={accel}"),
    };
    r.guests = vec![
        GuestRecord {
            suites: vec![vmbench_results::Suite::Vmexit],
            kind: vmbench_results::GuestKind::Micro,
            accel: Accel::Kvm,
            spec: GuestSpec {
                kernel_release: "none (vmbench micro-guest, no OS)".into(),
                ..GuestSpec::default()
            },
            qemu: Some(qemu("kvm")),
        },
        GuestRecord {
            suites: vec![vmbench_results::Suite::Shm],
            kind: vmbench_results::GuestKind::Linux,
            accel: Accel::Tcg,
            spec: GuestSpec {
                kernel_release: "6.1.0".into(),
                ..GuestSpec::default()
            },
            qemu: Some(qemu("tcg")),
        },
    ];
    let dir = tempfile::tempdir().unwrap();
    vmbench_publish::write_dir(&r, dir.path()).unwrap();
    let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    assert!(!md.contains("TCG run — not a KVM measurement"), "{md}");
    let banner = md.lines().find(|l| l.starts_with('>')).unwrap();
    assert!(banner.contains("Mixed accelerators"), "{banner}");
    assert!(banner.contains("The shm suite ran under TCG"), "{banner}");
    assert!(
        md.contains("| accelerator | kvm (vmexit: micro guest), tcg (shm: linux guest) |"),
        "{md}"
    );
    // Each guest with its own spec and QEMU command line.
    assert!(md.contains("### Guest: micro (vmexit, kvm)"), "{md}");
    assert!(md.contains("### Guest: linux (shm, tcg)"), "{md}");
    assert!(md.contains("accel=kvm") && md.contains("accel=tcg"));
    assert_eq!(
        r.accel_label(),
        "kvm (vmexit: micro guest), tcg (shm: linux guest)"
    );
    assert!(!r.is_tcg() && r.is_mixed());
}

/// `ssh-keygen`'s verdict on a signed report directory with this
/// allowed_signers, for a verifier that names no identity (as `vmbench
/// report verify` does): some principal of the file for which `ssh-keygen
/// -Y verify -I PRINCIPAL` accepts the signature, as of now.
fn keygen_accepts(out: &Path, allowed: &Path) -> bool {
    let text = std::fs::read_to_string(allowed).unwrap();
    let principals: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|p| !p.starts_with('#'))
        .flat_map(|p| p.split(','))
        .collect();
    principals.iter().any(|principal| {
        Command::new("ssh-keygen")
            .args(["-Y", "verify", "-n", sign::NAMESPACE, "-I", principal, "-f"])
            .arg(allowed)
            .arg("-s")
            .arg(out.join("report.sig"))
            .stdin(std::fs::File::open(out.join("MANIFEST.sha256")).unwrap())
            .output()
            .unwrap()
            .status
            .success()
    })
}

#[test]
#[ignore = "needs ssh-keygen (openssh-client)"]
fn report_verify_reads_allowed_signers_exactly_as_ssh_keygen_does() {
    require(&[(have_tool("ssh-keygen"), "openssh-client")]);
    let keys = tempfile::tempdir().unwrap();
    let (key, _) = keygen(keys.path());
    let k = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let k = k.trim();
    let out = tempfile::tempdir().unwrap();
    vmbench_publish::write_dir(&record("tcg", AMD, 1), out.path()).unwrap();
    sign::sign(out.path(), &key).unwrap();
    let other = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";
    let cases = [
        format!("me {k}"),
        format!("me,you {k}"),
        format!("  me {k}\n# a comment"),
        format!("me namespaces=\"vmbench-report\" {k}"),
        format!("me namespaces=vmbench-report {k}"),
        format!("me NAMESPACES=\"vmbench-*\" {k}"),
        format!("me namespaces=\"git\" {k}"),
        format!("me namespaces=\"!vmbench-report,*\" {k}"),
        format!("me namespaces=\"a\",namespaces=\"vmbench-report\" {k}"),
        format!("me valid-before=\"20200101Z\" {k}"),
        format!("me VALID-BEFORE=\"20200101Z\" {k}"),
        format!("me valid-before=\"20991231Z\" {k}"),
        format!("me valid-before=\"209912312359\" {k}"),
        format!("me valid-before=\"2099123\" {k}"),
        format!("me valid-after=\"20990101\" {k}"),
        format!("me valid-after=\"20200101\" {k}"),
        format!("me valid-after=\"20200101Z\",valid-before=\"20100101Z\" {k}"),
        format!("me valid-before=\"20991231Z\",namespaces=\"x,vmbench-report\" {k}"),
        format!("me cert-authority {k}"),
        format!("me cert-authority,namespaces=\"vmbench-report\" {k}"),
        format!("me foo {k}"),
        format!("me namespaces=\"vmbench-report\", {k}"),
        format!("me {other}"),
        format!("me valid-before=\"20200101Z\" {k}\nme {k}"),
        format!("me namespaces=\"git\" {k}\nyou namespaces=\"vmbench-report\" {k}"),
    ];
    let allowed = keys.path().join("allowed");
    let mut accepted = 0;
    for case in &cases {
        std::fs::write(&allowed, format!("{case}\n")).unwrap();
        let stock = keygen_accepts(out.path(), &allowed);
        let ours = sign::verify(out.path(), &allowed);
        assert_eq!(
            ours.is_ok(),
            stock,
            "{case:?}: ssh-keygen {stock}, vmbench {ours:?}"
        );
        accepted += usize::from(stock);
    }
    // Both verdicts occur: the comparison means something.
    assert!(accepted >= 8 && accepted <= cases.len() - 8, "{accepted}");
}

/// The example run's report rendered by this code: the first screen
/// answers the question, figures read like latency engineers' plots, and
/// the whole is shorter than the layout before it.
#[test]
fn the_first_screen_answers_and_every_figure_is_in_human_units() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::copy(
        repo_file("reports/example-tcg/results.json"),
        tmp.path().join("results.json"),
    )
    .unwrap();
    vmbench_publish::render_dir(tmp.path()).unwrap();
    let md = std::fs::read_to_string(tmp.path().join("report.md")).unwrap();
    let first: Vec<&str> = md.lines().take(60).collect();
    let headline = first.iter().position(|l| *l == "## Headline").unwrap();
    assert!(
        first[headline..]
            .iter()
            .any(|l| l.starts_with("| vmexit.user-fast |") && l.ends_with("| n/a (TCG) |")),
        "{first:#?}"
    );
    // The polling round trip's batch mean beside its reference, and the ratio.
    assert!(
        first[headline..]
            .iter()
            .any(|l| l.starts_with("| shm.rtt.poll · batch mean |")
                && l.contains("× shm.ref.cacheline-rtt ")),
        "{first:#?}"
    );
    // The warnings, condensed: at most 8 lines, the rest folded.
    let warnings = md.split("## Warnings\n").nth(1).unwrap();
    let bullets = warnings
        .lines()
        .take_while(|l| !l.starts_with("<details>"))
        .filter(|l| l.starts_with("- "))
        .count();
    assert!((1..=8).contains(&bullets), "{bullets} warning lines");
    // The TCG banner said it once: no path cell repeats the reason.
    assert!(!md.contains("software emulation has no VM exits; these are emulation costs"));
    // Both headline figures, in one paragraph (side by side in report.html).
    let figures: Vec<&str> = first
        .iter()
        .filter(|l| l.starts_with("!["))
        .flat_map(|l| l.split("![").skip(1))
        .collect();
    assert!(figures.len() >= 2, "{first:#?}");
    for f in &figures {
        let path = f.split("](").nth(1).unwrap().split(')').next().unwrap();
        assert!(tmp.path().join(path).is_file(), "{f}");
    }
    // The example's results.json made a report of 802 lines for its 169
    // measurements before the warnings and tables were folded (one line
    // per row's warning, unfolded tables): 4.75 lines per measurement.
    // The per-row figures, folded, are one image line each: not counted.
    let text_lines = md.lines().filter(|l| !l.starts_with("![")).count();
    let rows: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(tmp.path().join("results.json")).unwrap())
            .unwrap();
    let rows = rows["results"]["measurements"].as_array().unwrap().len();
    assert!(
        (text_lines as f64) < 4.75 * rows as f64,
        "{text_lines} lines for {rows} measurements"
    );

    let mut spectra = 0;
    for e in std::fs::read_dir(tmp.path().join("plots"))
        .unwrap()
        .flatten()
    {
        let name = e.file_name().to_string_lossy().into_owned();
        let svg = std::fs::read_to_string(e.path()).unwrap();
        let labels: Vec<&str> = svg
            .split("<text")
            .skip(1)
            .filter_map(|t| t.split('>').nth(1))
            .map(|t| t.split('<').next().unwrap().trim())
            .collect();
        for l in &labels {
            let number = l.split(' ').next().unwrap();
            assert!(
                !(number.ends_with(".0") && number.parse::<f64>().is_ok()),
                "{name}: tick label {l:?}"
            );
            assert!(!l.contains("000000"), "{name}: tick label {l:?}");
        }
        if name.ends_with(".spectrum.svg") {
            spectra += 1;
            for p in ["90%", "99%", "99.9%"] {
                assert!(labels.contains(&p), "{name}: no {p} label in {labels:?}");
            }
            assert!(
                labels
                    .iter()
                    .any(|l| l.ends_with(" ns") || l.ends_with(" µs") || l.ends_with(" ms")),
                "{name}: no time label in {labels:?}"
            );
        } else {
            assert!(
                name.ends_with(".drift.svg") || name == "shm-bandwidth.svg",
                "{name}: a figure that is neither a spectrum, a drift series nor the bandwidth curve"
            );
        }
    }
    assert!(spectra >= 10, "{spectra} spectra");
}

fn repo_file(rel: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel)
}

/// The report's first screen (title to the end of the headline) shows no
/// window that holds the guest's CLFLUSH and SHA-256 (the end-to-end
/// transfers), and a transfer faster than its physical reference carries
/// the flag, not a bandwidth.
#[test]
fn the_first_screen_has_no_hashing_window_and_flags_a_transfer_faster_than_its_reference() {
    let mut r = record("kvm", AMD, 1);
    let e2e = measurement(
        "shm.h2g.4k-32bpp.end-to-end",
        90_000_000,
        100_000,
        Some(33_177_600),
    );
    let mut write = measurement("shm.h2g.4k-32bpp.host-write", 1_000, 100, Some(33_177_600));
    write.warnings.push(vmbench_results::Warning::new(
        vmbench_results::WarningKind::FasterThanReference,
        "faster than its physical reference: 1.40x memcpy (cold): not a bandwidth",
    ));
    r.results.measurements.push(e2e);
    r.results.measurements.push(write);
    let dir = tempfile::tempdir().unwrap();
    vmbench_publish::write_dir(&r, dir.path()).unwrap();
    let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    let headline = md.find("## Headline").unwrap();
    let end = headline + md[headline + 3..].find("\n## ").unwrap();
    let first_screen = &md[..end];
    assert!(!first_screen.contains("end-to-end"), "{first_screen}");
    let row = first_screen
        .lines()
        .find(|l| l.starts_with("| shm.h2g.4k-32bpp.host-write |"))
        .unwrap_or_else(|| panic!("no host-write row: {first_screen}"));
    assert!(row.contains("faster than its reference"), "{row}");
    assert!(!row.contains(" GB/s)") || row.contains("⚠"), "{row}");
    // Not vacuous: the end-to-end window is in the report, further down.
    assert!(md[end..].contains("shm.h2g.4k-32bpp.end-to-end"));
}

/// Ticks become ns only at a known TSC frequency; without one they stay
/// ticks, never a figure under an ns label.
#[test]
fn ticks_without_a_tsc_frequency_stay_ticks() {
    let mut m = measurement("vmexit.kernel-fast", 2596, 10, None);
    m.tsc_khz = Some(2_596_000.0);
    assert_eq!(markdown::ticks_ns(&m, 2596), "2596 (1000 ns)");
    m.tsc_khz = None;
    assert_eq!(markdown::ticks_ns(&m, 2596), "2596");
    assert_eq!(m.ns(2596.0), None);
}

#[test]
fn a_kvm_run_judged_by_query_stats_says_so_in_the_row_and_the_headline() {
    // Tracepoints counted: the headline credits them and nothing else.
    let mut traced = record("kvm", AMD, 1);
    for m in &mut traced.results.measurements {
        if m.id.as_str().starts_with("vmexit.") {
            m.verification = Verification::Verified {
                evidence: "kvm_cpuid leaf 0 1.00".into(),
            };
            m.exit_events = Some(vmbench_results::ExitEvents::new(
                "KVM tracepoints",
                100,
                [("kvm_cpuid leaf 0".to_string(), 100u64)].into(),
                Some("kvm_cpuid leaf 0".into()),
            ));
        }
    }
    let md = markdown::render(&traced, &Default::default());
    assert!(!md.contains("query-stats"), "{md}");
    assert!(md.contains("| vmexit.user-fast |") && md.contains("| verified |"));
    // The same run without tracepoint counts (not root, a filter refused):
    // the headline says the fallback judged it, and a verified row says
    // which source verified it.
    let mut fallback = traced.clone();
    for m in &mut fallback.results.measurements {
        m.exit_events = None;
    }
    let md = markdown::render(&fallback, &Default::default());
    let headline = &md[md.find("## Headline").unwrap()..];
    let headline = &headline[..headline.find("\n## ").unwrap_or(headline.len())];
    assert!(
        headline.contains("could not be counted for 2 VM-exit row(s)")
            && headline.contains("QMP query-stats"),
        "{headline}"
    );
    assert!(
        headline.contains("| verified (query-stats) |"),
        "{headline}"
    );
    // A TCG run has nothing to count: no fallback is named.
    let md = markdown::render(&record("tcg", AMD, 1), &Default::default());
    assert!(!md.contains("query-stats"), "{md}");
}

/// A row whose ring's RDTSC exits publishes no p50−ovh: the headline says
/// its percentiles carry two timestamp exits and where its figure is.
#[test]
fn the_headline_says_where_timestamps_exit() {
    let mut r = record("kvm", AMD, 1);
    let plain = markdown::render(&r, &Default::default());
    assert!(!plain.contains("RDTSC exits in the ring of"), "{plain}");
    let m = r
        .results
        .measurements
        .iter_mut()
        .find(|m| m.id.as_str() == "vmexit.kernel-slow")
        .unwrap();
    m.overhead_p50 = Some(5583);
    m.overhead_subtracted = None;
    m.batch_mean = Some(29_728.1);
    let md = markdown::render(&r, &Default::default());
    assert!(
        md.contains(
            "RDTSC exits in the ring of kernel-slow: their p50 and p99 include two timestamp exits"
        ),
        "{md}"
    );
}

/// The example's record, read into the types and written again, is the
/// file byte for byte; one value changed in it changes one line; and it
/// stays small enough to keep in the repository.
#[test]
fn the_example_record_rewrites_identically_and_a_changed_value_changes_one_line() {
    let text = std::fs::read_to_string(repo_file("reports/example-tcg/results.json")).unwrap();
    assert!(text.len() < 400_000, "{} bytes", text.len());
    let mut r: vmbench_results::RunRecord = serde_json::from_str(&text).unwrap();
    assert_eq!(vmbench_publish::json::to_text(&r).unwrap(), text);
    let rep = r.results.measurements[0].repeats.as_mut().unwrap();
    rep.summaries[1].p50 += 1;
    let after = vmbench_publish::json::to_text(&r).unwrap();
    assert_eq!(after.lines().count(), text.lines().count());
    let changed: Vec<(&str, &str)> = text
        .lines()
        .zip(after.lines())
        .filter(|(a, b)| a != b)
        .collect();
    assert_eq!(changed.len(), 1, "{changed:#?}");
    assert!(
        changed[0].1.trim_start().starts_with("\"p50\": ["),
        "{changed:?}"
    );
}

/// Records written by versions 1 and 2 (cut from their example reports)
/// load, render, and come out in this version's shape with every figure
/// they held: each row's p50, its drift series, each repeat's p50 and a
/// pooled histogram of all the samples.
#[test]
fn records_of_older_versions_render_and_keep_their_figures() {
    use serde_json::Value;
    for version in ["v1", "v2"] {
        let src = repo_file(&format!("fixtures/results/{version}.json"));
        let old: Value = serde_json::from_str(&std::fs::read_to_string(&src).unwrap()).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        std::fs::copy(&src, tmp.path().join("results.json")).unwrap();
        vmbench_publish::render_dir(tmp.path()).unwrap();
        let written = std::fs::read_to_string(tmp.path().join("results.json")).unwrap();
        let r: vmbench_results::RunRecord = serde_json::from_str(&written).unwrap();
        assert_eq!(r.schema_version, vmbench_results::RUN_SCHEMA_VERSION);
        let old_rows = old["results"]["measurements"].as_array().unwrap();
        assert_eq!(r.results.measurements.len(), old_rows.len());
        for (m, o) in r.results.measurements.iter().zip(old_rows) {
            let at = format!("{version} {}", m.id);
            assert_eq!(m.summary.p50, o["summary"]["p50"].as_u64().unwrap(), "{at}");
            let old_drift: Vec<f64> =
                serde_json::from_value(o["summary"]["drift"].clone()).unwrap();
            assert_eq!(
                m.drift.as_ref().map(|d| d.means.clone()),
                Some(old_drift),
                "{at}"
            );
            let rep = m.repeats.as_ref().unwrap();
            let old_p50s: Vec<u64> = o["repeats"]["summaries"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["p50"].as_u64().unwrap())
                .collect();
            let p50s: Vec<u64> = rep.summaries.iter().map(|s| s.p50).collect();
            assert_eq!(p50s, old_p50s, "{at}");
            assert_eq!(m.pooled_histogram().unwrap().len(), m.summary.n, "{at}");
        }
        // Rendering the upgraded record again changes nothing in it.
        vmbench_publish::render_dir(tmp.path()).unwrap();
        let again = std::fs::read_to_string(tmp.path().join("results.json")).unwrap();
        assert_eq!(again, written, "{version}");
        let md = std::fs::read_to_string(tmp.path().join("report.md")).unwrap();
        assert!(md.contains("vmexit.kernel-fast"), "{version}");
    }
}

/// The headline gives the polling round trip both ways — one round trip
/// without the timer's cost, and the batch mean with its ratio to the bare
/// cache-line round trip of the same run — as measured, in ns.
#[test]
fn the_headline_gives_the_polling_round_trip_both_ways_with_its_ratio() {
    let mut r = record("kvm", INTEL, 1);
    let ms = &mut r.results.measurements;
    let at = |ms: &[Measurement], id: &str| ms.iter().position(|m| m.id == id).unwrap();
    let (reference, poll) = (at(ms, "shm.ref.cacheline-rtt"), at(ms, "shm.rtt.poll"));
    // 2,596,148 kHz: 389.4 ticks = 150.0 ns, 404.97 ticks = 156.0 ns.
    ms[reference].batch_mean = Some(389.43);
    ms[poll].batch_mean = Some(404.97);
    let mut net = ms[poll].summary.clone();
    net.p50 -= 78;
    net.p99 -= 78;
    ms[poll].overhead_subtracted = Some(net.clone());
    ms[poll].overhead_p50 = Some(78);
    let rows = markdown::headline_rows(&r);
    let one = rows
        .iter()
        .find(|row| row[0] == "shm.rtt.poll · one, timer cost out")
        .unwrap_or_else(|| panic!("{rows:#?}"));
    let m = &r.results.measurements[poll];
    assert_eq!(one[1], format!("{:.0} ns", m.ns(net.p50 as f64).unwrap()));
    let batch = rows
        .iter()
        .find(|row| row[0] == "shm.rtt.poll · batch mean")
        .unwrap_or_else(|| panic!("{rows:#?}"));
    assert_eq!(batch[1], "156.0 ns = 1.04× shm.ref.cacheline-rtt 150.0 ns");
    // Without batch means there is no batch row, and the p50 is the raw one.
    let plain = record("kvm", INTEL, 1);
    let rows = markdown::headline_rows(&plain);
    assert!(
        rows.iter().all(|row| !row[0].contains("batch mean")),
        "{rows:#?}"
    );
    assert!(rows.iter().any(|row| row[0] == "shm.rtt.poll"), "{rows:#?}");
}
