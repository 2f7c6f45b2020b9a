//! `vmbench report export` read by the tools it is for, on a real run (the
//! micro-guest under TCG, 3 repeats): hyperfine's own scripts, a struct
//! shaped as Bencher's hyperfine adapter reads, Bencher's BMF schema, and
//! the hdrhistogram crate's interval-log reader.
#![allow(clippy::unwrap_used)] // test helpers: a failure is the test failing

mod common;
use common::{BIN, vmbench};

use std::path::{Path, PathBuf};
use std::process::Command;
use vmbench_results::{Accel, Measurement, RunRecord};
use vmbench_testkit::{have_qemu, require};

fn export(run: &Path, args: &[&str]) -> Vec<u8> {
    let o = vmbench()
        .args(["report", "export"])
        .args(args)
        .arg(run)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    o.stdout
}

/// hyperfine 1.20.0's `scripts/`, as `cargo fetch` of the published crate
/// unpacks them (scripts/install-deps --dev).
fn hyperfine_scripts() -> Option<PathBuf> {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))?;
    std::fs::read_dir(home.join("registry/src"))
        .ok()?
        .filter_map(Result::ok)
        .map(|d| d.path().join("hyperfine-1.20.0/scripts"))
        .find(|p| p.join("advanced_statistics.py").is_file())
}

fn python_has(modules: &str) -> bool {
    Command::new("python3")
        .args(["-c", &format!("import {modules}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// What Bencher's `shell_hyperfine` adapter deserializes hyperfine's JSON
/// into (fixtures/bencher/README.md): a missing or mistyped field fails it.
#[derive(serde::Deserialize, Debug)]
struct BencherHyperfine {
    results: Vec<BencherHyperfineResult>,
}

#[derive(serde::Deserialize, Debug)]
#[allow(dead_code)] // read to be type-checked, as the adapter does
struct BencherHyperfineResult {
    command: String,
    mean: f64,
    stddev: Option<f64>,
    median: f64,
    user: f64,
    system: f64,
    min: f64,
    max: f64,
    times: Option<Vec<f64>>,
    exit_codes: Vec<Option<i32>>,
    parameters: Option<serde_json::Value>,
}

#[test]
#[ignore = "needs qemu-system-x86 (a real run), python3 with numpy, matplotlib and jsonschema, and hyperfine's scripts: scripts/install-deps --dev"]
fn exports_are_read_by_hyperfine_bencher_and_hdrhistogram() {
    let scripts = hyperfine_scripts();
    require(&[
        (have_qemu(), "qemu-system-x86"),
        (
            python_has("numpy, matplotlib, jsonschema"),
            "python3's numpy, matplotlib and jsonschema (pinned in scripts/install-deps)",
        ),
        (
            scripts.is_some(),
            "hyperfine 1.20.0's scripts (cargo fetch in scripts/install-deps)",
        ),
    ]);
    let scripts = scripts.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let run = vmbench_testkit::micro_run(BIN.as_ref(), tmp.path(), "run", 3);
    let record: RunRecord =
        serde_json::from_str(&std::fs::read_to_string(run.join("results.json")).unwrap()).unwrap();
    let row = record
        .results
        .measurements
        .iter()
        .find(|m| m.id.as_str() == "vmexit.kernel-fast")
        .unwrap();
    let p50_ns = row.summary.p50 as f64 / row.tsc_khz.unwrap() * 1e6;

    hyperfine_reads(&run, tmp.path(), &scripts, p50_ns);
    bencher_reads(&run, tmp.path(), &record, row);
    hdrhistogram_reads(&run, &record);
}

/// hyperfine's JSON as Bencher's adapter and hyperfine's scripts read it.
fn hyperfine_reads(run: &Path, tmp: &Path, scripts: &Path, p50_ns: f64) {
    // hyperfine: per execution, as Bencher's adapter reads it.
    let one = export(run, &["--format", "hyperfine"]);
    let parsed: BencherHyperfine = serde_json::from_slice(&one).unwrap();
    let kf = parsed
        .results
        .iter()
        .find(|r| r.command == "vmexit.kernel-fast [tcg]")
        .unwrap();
    let times = kf.times.as_ref().unwrap();
    assert_eq!(times.len(), 101);
    assert_eq!(kf.exit_codes.len(), times.len());
    // `times` is the same samples as min, median and max: their percentiles.
    assert_eq!(
        (times[0], times[50], times[100]),
        (kf.min, kf.median, kf.max)
    );
    assert!(times.windows(2).all(|w| w[0] <= w[1]));
    // Seconds: the adapter's median × 10⁹ is the row's p50 in ns.
    assert!(
        (kf.median * 1e9 - p50_ns).abs() < 1e-6 * p50_ns,
        "{kf:?} vs {p50_ns} ns"
    );
    assert!(
        parsed
            .results
            .iter()
            .all(|r| !r.command.is_empty() && r.command.len() <= 1024)
    );

    // hyperfine's own scripts, per million executions: seconds read as µs.
    let per_million = tmp.join("hyperfine.json");
    std::fs::write(
        &per_million,
        export(run, &["--format", "hyperfine", "--per", "1000000"]),
    )
    .unwrap();
    let o = Command::new("python3")
        .arg(scripts.join("advanced_statistics.py"))
        .arg(&per_million)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let block = text
        .split("Command '")
        .find(|b| b.starts_with("vmexit.kernel-fast [tcg] ×1000000'"))
        .unwrap_or_else(|| panic!("{text}"));
    let median: f64 = block
        .lines()
        .find_map(|l| l.trim().strip_prefix("median:"))
        .and_then(|v| v.trim().strip_suffix(" s"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // The script's three decimals of seconds per million: the p50 in µs.
    assert!(median > 0.0, "{block}");
    assert!(
        (median - p50_ns / 1e3).abs() <= 0.0005 + 1e-9,
        "{median} vs {p50_ns} ns: {block}"
    );
    let png = tmp.join("whisker.png");
    let o = Command::new("python3")
        .arg(scripts.join("plot_whisker.py"))
        .arg(&per_million)
        .arg("-o")
        .arg(&png)
        .env("MPLBACKEND", "Agg")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(std::fs::metadata(&png).unwrap().len() > 1000);
}

/// BMF against Bencher's schema.
fn bencher_reads(run: &Path, tmp: &Path, record: &RunRecord, row: &Measurement) {
    // Bencher Metric Format, against Bencher's schema; custom measures for
    // ticks and bytes per second; names that carry the accelerator.
    let bmf_file = tmp.join("bmf.json");
    std::fs::write(&bmf_file, export(run, &["--format", "bmf"])).unwrap();
    let schema = vmbench_testkit::repo_root().join("fixtures/bencher/bmf.schema.json");
    let o = Command::new("python3")
        .args([
            "-c",
            "import json, sys, jsonschema; jsonschema.validate(json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))); print('valid')",
        ])
        .arg(&bmf_file)
        .arg(&schema)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let bmf: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&bmf_file).unwrap()).unwrap();
    let kf = &bmf["vmexit.kernel-fast [tcg]"];
    let ticks = &kf["tsc-ticks"];
    let (lo, v, hi) = (
        ticks["lower_value"].as_f64().unwrap(),
        ticks["value"].as_f64().unwrap(),
        ticks["upper_value"].as_f64().unwrap(),
    );
    assert!(lo <= v && v <= hi, "{ticks}");
    assert_eq!(v, row.repeats.as_ref().unwrap().geometric_mean_p50);
    for (name, measures) in bmf.as_object().unwrap() {
        assert!(name.ends_with(" [tcg]") && name.len() <= 1024, "{name}");
        for slug in measures.as_object().unwrap().keys() {
            assert!(slug.len() <= 64, "{slug}");
            assert_ne!(slug, "throughput", "bytes/s is not Bencher's ops/s");
        }
    }
    // A copy relabelled as a KVM run exports under other names.
    let kvm = tmp.join("as-kvm");
    std::fs::create_dir(&kvm).unwrap();
    let mut as_kvm = record.clone();
    as_kvm.accel = Some(Accel::Kvm);
    for g in &mut as_kvm.guests {
        g.accel = Accel::Kvm;
    }
    std::fs::write(
        kvm.join("results.json"),
        serde_json::to_string(&as_kvm).unwrap(),
    )
    .unwrap();
    let other: serde_json::Value =
        serde_json::from_slice(&export(&kvm, &["--format", "bmf"])).unwrap();
    assert!(other.get("vmexit.kernel-fast [kvm]").is_some(), "{other}");
}

/// The interval log through the hdrhistogram crate's reader.
fn hdrhistogram_reads(run: &Path, record: &RunRecord) {
    // HdrHistogram's interval log, read back by the crate's own parser:
    // every repeat of every row, its p50 the repeat's.
    use hdrhistogram::serialization::Deserializer;
    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
    let log = export(run, &["--format", "hdr-log", "--rows", "vmexit.kernel-*"]);
    let mut intervals = 0;
    for entry in IntervalLogIterator::new(&log) {
        let LogEntry::Interval(i) = entry.unwrap() else {
            continue;
        };
        intervals += 1;
        let tag = i.tag().unwrap().as_str();
        let (id, repeat) = tag.split_once("@tcg/r").unwrap();
        assert!(id.starts_with("vmexit.kernel-"), "{tag}");
        use base64::Engine;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(i.encoded_histogram())
            .unwrap();
        let h: hdrhistogram::Histogram<u64> = Deserializer::new()
            .deserialize(&mut bytes.as_slice())
            .unwrap();
        let m = record
            .results
            .measurements
            .iter()
            .find(|m| m.id.as_str() == id)
            .unwrap();
        let k: usize = repeat.parse::<usize>().unwrap() - 1;
        let want = &m.repeats.as_ref().unwrap().summaries[k];
        assert_eq!(h.len(), want.n, "{tag}");
        assert!(h.equivalent(h.value_at_quantile(0.5), want.p50), "{tag}");
    }
    let kernel_rows = record
        .results
        .measurements
        .iter()
        .filter(|m| m.id.as_str().starts_with("vmexit.kernel-"))
        .count();
    assert_eq!(intervals, 3 * kernel_rows);
}
