//! What deny.toml states about the dependencies, checked with cargo alone
//! (CI cannot reach cargo-deny's advisory database): every advisory it
//! ignores is on a crate that is never compiled, crates with advisories
//! that were dropped stay dropped, and every crate's license is one it
//! allows.
#![allow(clippy::unwrap_used)] // test helpers: a failure is the test failing

use std::path::PathBuf;
use std::process::Command;

fn repo() -> PathBuf {
    vmbench_testkit::repo_root()
}

fn cargo(args: &[&str]) -> (String, String) {
    let out = Command::new(env!("CARGO"))
        .current_dir(repo())
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cargo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Each advisory deny.toml ignores, and the crate it is about.
const IGNORED_ADVISORIES: &[(&str, &str)] = &[("RUSTSEC-2023-0071", "rsa")];

/// Crates dropped because of an advisory (RUSTSEC-2025-0119: number_prefix,
/// unmaintained, came with indicatif 0.17).
const DROPPED: &[&str] = &["number_prefix"];

#[test]
fn ignored_advisories_are_on_crates_that_are_never_compiled() {
    let deny = std::fs::read_to_string(repo().join("deny.toml")).unwrap();
    let ignored: Vec<&str> = deny
        .lines()
        .filter_map(|l| l.trim().strip_prefix("{ id = \""))
        .filter_map(|l| l.split('"').next())
        .collect();
    let expected: Vec<&str> = IGNORED_ADVISORIES.iter().map(|(id, _)| *id).collect();
    assert_eq!(
        ignored, expected,
        "deny.toml ignores advisories this test does not check"
    );
    for (id, krate) in IGNORED_ADVISORIES {
        // Every target, every kind of dependency (normal, build, dev):
        // nothing depends on it with the features the workspace enables.
        let (stdout, stderr) = cargo(&[
            "tree",
            "--frozen",
            "--workspace",
            "--target",
            "all",
            "-e",
            "all",
            "-i",
            krate,
        ]);
        assert!(
            stdout.trim().is_empty() && stderr.contains("nothing to print"),
            "{id}: {krate} is compiled after all:\n{stdout}"
        );
    }
    let lock = std::fs::read_to_string(repo().join("Cargo.lock")).unwrap();
    for krate in DROPPED {
        assert!(
            !lock.contains(&format!("name = \"{krate}\"")),
            "{krate} is back in Cargo.lock"
        );
    }
}

#[test]
fn every_dependency_has_a_license_deny_toml_allows() {
    let deny = std::fs::read_to_string(repo().join("deny.toml")).unwrap();
    let section = deny
        .split("[licenses]")
        .nth(1)
        .and_then(|s| s.split("allow = [").nth(1))
        .and_then(|s| s.split(']').next())
        .unwrap();
    let allowed: Vec<String> = section
        .lines()
        .filter_map(|l| l.trim().strip_prefix('"'))
        .filter_map(|l| l.split('"').next())
        .map(str::to_string)
        .collect();
    assert!(allowed.len() > 3, "{allowed:?}");
    let (stdout, _) = cargo(&["metadata", "--frozen", "--format-version", "1"]);
    let meta: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let mut refused = Vec::new();
    for p in meta["packages"].as_array().unwrap() {
        let name = p["name"].as_str().unwrap();
        if p["source"].is_null() {
            continue; // the workspace's own crates
        }
        let license = p["license"].as_str().unwrap_or("");
        if !spdx_allows(license, &allowed) {
            refused.push(format!("{name}: {license:?}"));
        }
    }
    assert!(
        refused.is_empty(),
        "licenses deny.toml does not allow: {refused:?}"
    );
}

/// Whether an SPDX expression (`A OR B`, `A AND (B OR C)`, `A WITH E`, and
/// the old `A/B`) is satisfied by the allowed licenses.
fn spdx_allows(expr: &str, allowed: &[String]) -> bool {
    let spaced = expr
        .replace('/', " OR ")
        .replace('(', " ( ")
        .replace(')', " ) ");
    let tokens: Vec<&str> = spaced.split_whitespace().collect();
    let mut pos = 0;
    let ok = or_expr(&tokens, &mut pos, allowed);
    ok && pos == tokens.len() && !tokens.is_empty()
}

fn or_expr(t: &[&str], pos: &mut usize, allowed: &[String]) -> bool {
    let mut ok = and_expr(t, pos, allowed);
    while t.get(*pos) == Some(&"OR") {
        *pos += 1;
        ok |= and_expr(t, pos, allowed);
    }
    ok
}

fn and_expr(t: &[&str], pos: &mut usize, allowed: &[String]) -> bool {
    let mut ok = term(t, pos, allowed);
    while t.get(*pos) == Some(&"AND") {
        *pos += 1;
        ok &= term(t, pos, allowed);
    }
    ok
}

fn term(t: &[&str], pos: &mut usize, allowed: &[String]) -> bool {
    match t.get(*pos) {
        Some(&"(") => {
            *pos += 1;
            let ok = or_expr(t, pos, allowed);
            if t.get(*pos) == Some(&")") {
                *pos += 1;
                ok
            } else {
                false
            }
        }
        Some(id) => {
            *pos += 1;
            let mut name = id.to_string();
            if t.get(*pos) == Some(&"WITH") {
                name = format!("{name} WITH {}", t.get(*pos + 1).unwrap_or(&""));
                *pos += 2;
            }
            allowed.contains(&name)
        }
        None => false,
    }
}

#[test]
fn the_spdx_reading_is_strict() {
    let allowed: Vec<String> = ["MIT", "Apache-2.0", "Unicode-3.0"]
        .map(String::from)
        .to_vec();
    assert!(spdx_allows("MIT OR GPL-3.0", &allowed));
    assert!(spdx_allows("(MIT OR Apache-2.0) AND Unicode-3.0", &allowed));
    assert!(spdx_allows("MIT/Apache-2.0", &allowed));
    assert!(!spdx_allows("(MIT OR Apache-2.0) AND GPL-3.0", &allowed));
    assert!(!spdx_allows("Apache-2.0 WITH LLVM-exception", &allowed));
    assert!(!spdx_allows("", &allowed));
    assert!(!spdx_allows("(MIT", &allowed));
}
