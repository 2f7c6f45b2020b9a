//! `vmbench compare` with significance, and `vmbench report export`, on
//! real runs: the micro-guest under TCG (a second per repeat), compared
//! with itself (A/A) and with copies whose data this test controls.
#![allow(clippy::unwrap_used)] // test helpers: a failure is the test failing

mod common;
use common::{BIN, vmbench};

use std::path::Path;
use std::process::Output;
use vmbench_results::RunRecord;

fn compare(a: &Path, b: &Path, extra: &[&str]) -> Output {
    vmbench()
        .arg("compare")
        .arg(a)
        .arg(b)
        .args(extra)
        .output()
        .unwrap()
}

/// The differences `compare --json` printed, checked against its schema
/// and read into its type first.
fn differences(o: &Output) -> Vec<serde_json::Value> {
    common::assert_matches_schema("compare", &o.stdout);
    let typed: vmbench_publish::compare::ComparisonOutput =
        serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        typed.schema_version,
        vmbench_publish::compare::COMPARE_SCHEMA_VERSION
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v["differences"].as_array().unwrap().clone()
}

/// Reads the run's record into its types, lets `f` change it, writes it back.
fn edit(dir: &Path, f: impl FnOnce(&mut RunRecord)) {
    let p = dir.join("results.json");
    let mut r: RunRecord = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    f(&mut r);
    std::fs::write(&p, serde_json::to_string(&r).unwrap()).unwrap();
}

fn copy_run(from: &Path, to: &Path) {
    std::fs::create_dir(to).unwrap();
    std::fs::copy(from.join("results.json"), to.join("results.json")).unwrap();
}

/// Replaces row `id`'s repeats with `repeats` (each repeat's samples):
/// its summaries and histograms, as a run that measured them would hold.
fn set_row_repeats(dir: &Path, id: &str, repeats: &[Vec<u64>]) {
    use vmbench_results::SampleSet;
    edit(dir, |r| {
        let m = r
            .results
            .measurements
            .iter_mut()
            .find(|m| m.id.as_str() == id)
            .unwrap_or_else(|| panic!("no row {id}"));
        let rep = m.repeats.as_mut().unwrap();
        assert_eq!(rep.summaries.len(), repeats.len());
        rep.summaries.clear();
        rep.histograms.clear();
        for samples in repeats {
            let mut s = SampleSet::new();
            s.extend(samples.iter().copied()).unwrap();
            rep.summaries.push(s.summary().unwrap());
            rep.histograms.push(s.encoded_histogram());
        }
    });
}

/// Repeats of a quiet KVM host's row: 1,000 samples each around p50s
/// 10,000, 10,040 and 10,090 ticks, times `factor`.
fn quiet_repeats(factor: u64) -> Vec<Vec<u64>> {
    [10_000u64, 10_040, 10_090]
        .iter()
        .map(|&p50| (0..1000).map(|i| (p50 - 50 + i / 10) * factor).collect())
        .collect()
}

/// Every TSC frequency of the run (the host's and each row's) times
/// (1 + ppm / 10⁶), as a second calibration of the same host would give.
fn recalibrate(dir: &Path, ppm: f64) -> f64 {
    use vmbench_host::fact::Fact;
    let mut error_ppm = 0.0;
    edit(dir, |r| {
        let f = 1.0 + ppm / 1e6;
        let tsc = &mut r.host.tsc;
        let (Fact::Known(cal), Fact::Known(freq)) = (&tsc.calibration, &mut tsc.frequency) else {
            panic!("the run knows its TSC frequency and calibration");
        };
        error_ppm = cal.error_ppm;
        freq.khz *= f;
        for m in &mut r.results.measurements {
            if let Some(k) = &mut m.tsc_khz {
                *k *= f;
            }
        }
    });
    error_ppm
}

fn verdicts(o: &Output) -> Vec<(String, String)> {
    differences(o)
        .iter()
        .map(|d| {
            (
                d["id"].as_str().unwrap().to_string(),
                d["verdict"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
#[ignore = "needs qemu-system-x86: runs the micro-guest under TCG"]
fn a_run_against_itself_recalibrated_has_no_verdict_and_a_doubled_row_gates() {
    let tmp = tempfile::tempdir().unwrap();
    // A real run at the default repeat count (3). Verdicts on real rows
    // are asserted only where the data cannot differ (the same samples):
    // under TCG a row's p50 is one or two timestamp steps, and whether two
    // runs agree is this machine's noise, not the method's.
    let a = vmbench_testkit::micro_run(BIN.as_ref(), tmp.path(), "a", 3);

    // A/A: the same data, the TSC calibrated again 0.9 of its recorded
    // error apart. One clock: compared in ticks, no row differs, the
    // strictest gate passes.
    let again = tmp.path().join("a-recalibrated");
    copy_run(&a, &again);
    let error_ppm = recalibrate(&again, 0.0);
    recalibrate(&again, 0.9 * error_ppm);
    let o = compare(&a, &again, &["--json", "--fail-if-slower", "0"]);
    let all = differences(&o);
    assert!(all.len() >= 10, "{all:?}");
    for d in &all {
        assert!(d["verdict"] != "slower" && d["verdict"] != "faster", "{d}");
        assert_eq!(d["difference_pct"], 0.0, "{d}");
        if d["id"].as_str().unwrap().starts_with("vmexit.") {
            assert_eq!(d["compared_in"], "ticks", "{d}");
        }
    }
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // Ten times the error apart: two clocks, each run's ticks in ns; the
    // 1.5e-5% between them is far inside the band.
    let other_clock = tmp.path().join("other-clock");
    copy_run(&a, &other_clock);
    recalibrate(&other_clock, 10.0 * error_ppm.max(0.1));
    let o = compare(&a, &other_clock, &["--json", "--fail-if-slower", "0"]);
    let d = differences(&o);
    assert!(d.iter().any(|d| d["compared_in"] == "ns"), "{d:?}");
    assert_eq!(o.status.code(), Some(0));

    // One row's repeats as a quiet KVM host measures them...
    let quiet = tmp.path().join("quiet");
    copy_run(&a, &quiet);
    set_row_repeats(&quiet, "vmexit.kernel-fast", &quiet_repeats(1));
    // ...and twice as slow in every repeat: slower, at the default repeat
    // count, with Holm's adjustment over every row compared; the gate fails.
    let slower = tmp.path().join("slower");
    copy_run(&a, &slower);
    set_row_repeats(&slower, "vmexit.kernel-fast", &quiet_repeats(2));
    let o = compare(&quiet, &slower, &["--json", "--fail-if-slower", "10"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let family = &v["families"][0];
    assert!(family["judged"].as_u64().unwrap() >= 10, "{family}");
    let diffs = differences(&o);
    let row = diffs
        .iter()
        .find(|d| d["id"] == "vmexit.kernel-fast")
        .unwrap();
    assert_eq!(row["verdict"], "slower", "{row}");
    assert!(row["p_adjusted"].as_f64().unwrap() < 0.05, "{row}");
    let ci = row["ci95_pct"].as_array().unwrap();
    let (lo, hi) = (ci[0].as_f64().unwrap(), ci[1].as_f64().unwrap());
    assert!(lo <= 100.0 && 100.0 <= hi, "CI [{lo}, {hi}] misses +100%");
    assert!(
        lo > 90.0 && hi < 110.0,
        "CI [{lo}, {hi}] wider than its data"
    );
    assert_eq!(o.status.code(), Some(1), "{row}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("vmexit.kernel-fast is slower"), "{err}");
    assert!(err.contains("rows judged"), "{err}");
    // Every other row is the same data: no verdict either way.
    for (id, verdict) in verdicts(&o) {
        if id != "vmexit.kernel-fast" {
            assert!(
                verdict != "slower" && verdict != "faster",
                "{id}: {verdict}"
            );
        }
    }
    // Gated on the other rows only, the same pair passes.
    let o = compare(
        &quiet,
        &slower,
        &[
            "--json",
            "--fail-if-slower",
            "10",
            "--rows",
            "vmexit.user-*,vmexit.kernel-nop",
        ],
    );
    assert!(
        verdicts(&o)
            .iter()
            .all(|(id, _)| id != "vmexit.kernel-fast")
    );
    assert_eq!(o.status.code(), Some(0));
    // A --rows that matches nothing is an error that says so.
    let o = compare(&quiet, &slower, &["--rows", "vmexit.nothing-*"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("no row to compare"));

    // The Markdown says the same, with the family's summary line.
    let md = compare(&quiet, &slower, &[]);
    let text = String::from_utf8_lossy(&md.stdout);
    assert!(text.contains("## Differences"), "{text}");
    assert!(text.contains("rows judged"), "{text}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("| vmexit.kernel-fast |") && l.contains("**slower**")),
        "{text}"
    );

    // With --out, the runs' spectra are drawn beside the Markdown and linked.
    let md_file = tmp.path().join("cmp.md");
    let o = compare(&quiet, &slower, &["--out", md_file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0));
    let text = std::fs::read_to_string(&md_file).unwrap();
    assert!(text.contains("](cmp-plots/vmexit.svg)"), "{text}");
    let svg = std::fs::read_to_string(tmp.path().join("cmp-plots/vmexit.svg")).unwrap();
    assert!(svg.contains("99.9%") && svg.contains("slower"), "{svg}");
}

#[test]
#[ignore = "needs qemu-system-x86: runs the micro-guest under TCG"]
fn two_fresh_quick_runs_pass_a_5_percent_gate_and_say_why_rows_are_not_judged() {
    let tmp = tempfile::tempdir().unwrap();
    // Two real runs, one boot each (`--quick`): between boots this
    // machine's TCG rows move by whole timestamp steps, which one boot's
    // samples cannot know. So no verdict, and stderr says how many rows.
    let a = vmbench_testkit::micro_run(BIN.as_ref(), tmp.path(), "a", 1);
    let b = vmbench_testkit::micro_run(BIN.as_ref(), tmp.path(), "b", 1);
    let o = compare(&a, &b, &["--json", "--fail-if-slower", "5"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    let diffs = differences(&o);
    assert!(diffs.len() >= 10, "{diffs:?}");
    for d in &diffs {
        assert_eq!(d["verdict"], "not_judged", "{d}");
        assert!(d["basis"].as_str().unwrap().contains("one boot"), "{d}");
    }
    assert!(err.contains("rows not judged"), "{err}");
}
