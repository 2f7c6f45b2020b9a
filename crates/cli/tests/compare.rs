//! `vmbench compare` with significance, and `vmbench report export`, on
//! real runs: the micro-guest under TCG with repeats (a second each).
#![allow(clippy::unwrap_used)] // test helpers: a failure is the test failing

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn vmbench() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vmbench"))
}

/// A VM-exit run on the micro-guest under TCG, `repeat` repeats, changing
/// nothing on the host.
fn micro_run(dir: &Path, name: &str, repeat: u32) -> PathBuf {
    let config = vmbench_testkit::micro_run_config(dir, Some(repeat));
    let out = dir.join(name);
    let o = vmbench()
        .args(["run", "--accel", "tcg", "--quick", "--config"])
        .arg(&config)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    out
}

/// Two runs from one: the odd and the even repeats of `run`, each as its
/// own results.json.
fn split_repeats(run: &Path, odd: &Path, even: &Path) {
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("results.json")).unwrap()).unwrap();
    for (dir, parity) in [(odd, 0), (even, 1)] {
        let mut half = v.clone();
        for m in half["results"]["measurements"].as_array_mut().unwrap() {
            let rep = &mut m["repeats"];
            for key in ["summaries", "histograms", "repeat_numbers"] {
                let kept: Vec<serde_json::Value> = rep[key]
                    .as_array()
                    .unwrap()
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| i % 2 == parity)
                    .map(|(_, x)| x.clone())
                    .collect();
                rep[key] = serde_json::Value::Array(kept);
            }
        }
        std::fs::create_dir(dir).unwrap();
        std::fs::write(
            dir.join("results.json"),
            serde_json::to_string(&half).unwrap(),
        )
        .unwrap();
    }
}

fn compare(a: &Path, b: &Path, extra: &[&str]) -> Output {
    vmbench()
        .arg("compare")
        .arg(a)
        .arg(b)
        .args(extra)
        .output()
        .unwrap()
}

fn differences(o: &Output) -> Vec<serde_json::Value> {
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v["differences"].as_array().unwrap().clone()
}

/// Multiplies every p50 of row `id` (the pooled one, each repeat's, their
/// median and its interval) by `factor`, as a slower host would show.
fn scale_row(dir: &Path, id: &str, factor: f64) {
    let p = dir.join("results.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    let scale = |x: &mut serde_json::Value| {
        *x = serde_json::json!((x.as_f64().unwrap() * factor).round() as u64);
    };
    for m in v["results"]["measurements"].as_array_mut().unwrap() {
        if m["id"] != id {
            continue;
        }
        scale(&mut m["summary"]["p50"]);
        let rep = &mut m["repeats"];
        for s in rep["summaries"].as_array_mut().unwrap() {
            scale(&mut s["p50"]);
        }
        rep["median_p50"] = serde_json::json!(rep["median_p50"].as_f64().unwrap() * factor);
    }
    std::fs::write(&p, serde_json::to_string(&v).unwrap()).unwrap();
}

/// Sets row `id`'s repeat p50s to `p50s` (and, consistently, the median
/// of repeats and the pooled p50), so that a test controls its spread.
fn set_row_p50s(dir: &Path, id: &str, p50s: &[u64]) {
    let p = dir.join("results.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    let mut sorted = p50s.to_vec();
    sorted.sort_unstable();
    let n = sorted.len();
    let median = if n % 2 == 1 {
        sorted[n / 2] as f64
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) as f64 / 2.0
    };
    let m = v["results"]["measurements"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|m| m["id"] == id)
        .unwrap_or_else(|| panic!("no row {id}"));
    let summaries = m["repeats"]["summaries"].as_array_mut().unwrap();
    assert_eq!(summaries.len(), n, "one p50 per repeat");
    for (s, p50) in summaries.iter_mut().zip(p50s) {
        s["p50"] = serde_json::json!(p50);
    }
    m["repeats"]["median_p50"] = serde_json::json!(median);
    m["summary"]["p50"] = serde_json::json!(median.round() as u64);
    std::fs::write(&p, serde_json::to_string(&v).unwrap()).unwrap();
}

#[test]
#[ignore = "needs qemu-system-x86: runs the micro-guest under TCG"]
fn a_row_made_20_percent_slower_is_found_and_the_same_data_is_not() {
    let tmp = tempfile::tempdir().unwrap();
    // A real 10-repeat run of the micro-guest under TCG, for the plumbing
    // (repeats, JSON, Markdown, plots, exports). Verdicts are asserted on
    // data this test controls: under TCG a row's p50 is one or two
    // timestamp quanta, so whether two real runs (or the odd and the even
    // repeats of one) agree depends on this machine's noise, and a test of
    // it would be a flake. Comparing real runs with each other (A/A) is the
    // statistics' own test (docs/repeats.md).
    let both = micro_run(tmp.path(), "both", 10);
    let (odd, even) = (tmp.path().join("odd"), tmp.path().join("even"));
    split_repeats(&both, &odd, &even);
    let halves = compare(&odd, &even, &["--json"]);
    let diffs = differences(&halves);
    assert!(diffs.len() >= 10, "{diffs:?}");
    assert!(diffs.iter().all(|d| d["basis"] == "repeats (5 vs 5)"));
    assert_eq!(halves.status.code(), Some(0));

    // One row's repeat p50s set to values this test controls (10,000 to
    // 10,090 ticks, as spread as repeats on a quiet KVM host)...
    let a = tmp.path().join("a");
    std::fs::create_dir(&a).unwrap();
    std::fs::copy(both.join("results.json"), a.join("results.json")).unwrap();
    let controlled: Vec<u64> = (0..10).map(|i| 10_000 + 10 * i).collect();
    set_row_p50s(&a, "vmexit.kernel-fast", &controlled);
    // ...against the same values in another order (another run with the
    // same spread): no row differs, and the gate passes.
    let again = tmp.path().join("a-again");
    std::fs::create_dir(&again).unwrap();
    std::fs::copy(both.join("results.json"), again.join("results.json")).unwrap();
    let shuffled: Vec<u64> = controlled.iter().rev().copied().collect();
    set_row_p50s(&again, "vmexit.kernel-fast", &shuffled);
    let o = compare(&a, &again, &["--json", "--fail-if-slower", "0"]);
    for d in differences(&o) {
        assert_eq!(d["verdict"], "no_significant_difference", "{d}");
    }
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    // ...and the same run with that row 1.2× slower: found, and gated.
    let slower = tmp.path().join("a-slower");
    std::fs::create_dir(&slower).unwrap();
    std::fs::copy(a.join("results.json"), slower.join("results.json")).unwrap();
    scale_row(&slower, "vmexit.kernel-fast", 1.2);
    let o = compare(&a, &slower, &["--json", "--fail-if-slower", "10"]);
    let diffs = differences(&o);
    let row = diffs
        .iter()
        .find(|d| d["id"] == "vmexit.kernel-fast")
        .unwrap();
    assert_eq!(row["verdict"], "slower", "{row}");
    let ci = row["ci95_pct"].as_array().unwrap();
    let (lo, hi) = (ci[0].as_f64().unwrap(), ci[1].as_f64().unwrap());
    // 1.2 × each controlled p50 is a whole tick: the interval holds 20%
    // exactly and, with repeats 0.9% apart, lies well above 10%.
    assert!(lo <= 20.0 && 20.0 <= hi, "CI [{lo}, {hi}] misses 20%");
    assert!(
        lo > 15.0 && hi < 25.0,
        "CI [{lo}, {hi}] wider than its data"
    );
    assert_eq!(o.status.code(), Some(1), "{row}");
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("vmexit.kernel-fast is slower"), "{err}");
    // Every other row is the same run: no difference at all.
    for d in diffs.iter().filter(|d| d["id"] != "vmexit.kernel-fast") {
        assert_eq!(d["verdict"], "no_significant_difference", "{d}");
    }

    // The Markdown says the same.
    let md = compare(&a, &slower, &[]);
    let text = String::from_utf8_lossy(&md.stdout);
    assert!(
        text.contains("## Differences with 95% confidence"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("| vmexit.kernel-fast |") && l.contains("**slower**")),
        "{text}"
    );

    // With --out, the runs' spectra are drawn beside the Markdown and linked.
    let md_file = tmp.path().join("cmp.md");
    let o = compare(&a, &slower, &["--out", md_file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0));
    let text = std::fs::read_to_string(&md_file).unwrap();
    assert!(text.contains("](cmp-plots/vmexit.svg)"), "{text}");
    let svg = std::fs::read_to_string(tmp.path().join("cmp-plots/vmexit.svg")).unwrap();
    assert!(svg.contains("99.9%") && svg.contains("a-slower"), "{svg}");

    // Exports of the real run: Bencher's metric format and hyperfine's layout.
    let a = both;
    let bmf = vmbench()
        .args(["report", "export", "--format", "bmf"])
        .arg(&a)
        .output()
        .unwrap();
    assert!(bmf.status.success());
    let v: serde_json::Value = serde_json::from_slice(&bmf.stdout).unwrap();
    let lat = &v["vmexit.kernel-fast"]["latency"];
    assert!(
        lat["lower_value"].as_f64().unwrap() <= lat["value"].as_f64().unwrap()
            && lat["value"].as_f64().unwrap() <= lat["upper_value"].as_f64().unwrap(),
        "{lat}"
    );
    let hf = vmbench()
        .args(["report", "export", "--format", "hyperfine"])
        .arg(&a)
        .output()
        .unwrap();
    assert!(hf.status.success());
    let v: serde_json::Value = serde_json::from_slice(&hf.stdout).unwrap();
    let first = &v["results"][0];
    assert_eq!(first["times"].as_array().unwrap().len(), 10, "{first}");
    assert!(first["median"].as_f64().unwrap() > 0.0);
}
