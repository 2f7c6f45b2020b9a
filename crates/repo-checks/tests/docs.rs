//! The documents a reader relies on name everything the code has.
#![allow(clippy::unwrap_used)]

use vmbench_proto::vmexit::Row;

/// Every VM-exit row is in docs/vmexit-rows.md, with its window, path and
/// proof (kvm-unit-tests' reproduction rows have docs/kvm-unit-tests.md).
#[test]
fn every_vmexit_row_is_documented() {
    let root = vmbench_testkit::repo_root();
    let rows = std::fs::read_to_string(root.join("docs/vmexit-rows.md")).unwrap();
    let kut = std::fs::read_to_string(root.join("docs/kvm-unit-tests.md")).unwrap();
    for r in Row::ALL {
        let doc = if r.reproduces_kvm_unit_tests() {
            &kut
        } else {
            &rows
        };
        assert!(
            doc.contains(&format!("`{}`", r.id())),
            "{} is not documented",
            r.id()
        );
        if !r.reproduces_kvm_unit_tests() {
            assert!(
                rows.contains(&format!("| `{}`", r.id())),
                "{} has no row in docs/vmexit-rows.md's tables",
                r.id()
            );
        }
    }
}

/// The README's set-up command is `cargo run … -- run`: with two binaries in
/// the package (`vmbench`, `vmbench-agent`), `cargo run` must still know
/// which one to run. Cargo's rule, read from `cargo metadata` (building it
/// again under `cargo run`'s feature resolution took over a minute of CI):
/// at the root it runs the default member's `default-run` binary.
#[test]
fn the_readmes_cargo_run_starts_vmbench() {
    let root = vmbench_testkit::repo_root();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let setup = readme
        .lines()
        .find(|l| l.contains("cargo run"))
        .expect("the README's set-up runs vmbench with cargo run");
    assert!(setup.contains("cargo run --release -- run"), "{setup}");
    let out = std::process::Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(&root)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let defaults = meta["workspace_default_members"].as_array().unwrap();
    assert_eq!(
        defaults.len(),
        1,
        "`cargo run` at the root needs one default member: {defaults:?}"
    );
    let package = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == defaults[0])
        .unwrap();
    assert_eq!(package["default_run"], "vmbench", "{package}");
    let bins: Vec<&str> = package["targets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["kind"].as_array().unwrap().iter().any(|k| k == "bin"))
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert!(bins.contains(&"vmbench"), "{bins:?}");
}

/// docs/ARCHITECTURE.md: every source path it names exists, and its floors
/// are the crates' real dependencies (each crate's vmbench dependencies, as
/// its Cargo.toml lists them, all on lower floors).
#[test]
fn the_architecture_page_names_real_files_and_real_dependencies() {
    let root = vmbench_testkit::repo_root();
    let page = std::fs::read_to_string(root.join("docs/ARCHITECTURE.md")).unwrap();
    let mut named = 0;
    for chunk in page.split('`').skip(1).step_by(2) {
        if let Some((krate, _)) = chunk.split_once("/src/")
            && chunk.ends_with(".rs")
            && krate.bytes().all(|b| b.is_ascii_lowercase())
        {
            assert!(
                root.join("crates").join(chunk).is_file(),
                "docs/ARCHITECTURE.md names {chunk}, which does not exist"
            );
            named += 1;
        }
    }
    assert!(named > 30, "only {named} paths found: the parser broke");
    let block = page.split("```\n").nth(1).expect("the floors' code block");
    let mut floor_of = std::collections::BTreeMap::new();
    let mut deps_of = std::collections::BTreeMap::new();
    for line in block.lines() {
        let (floor, rest) = line.split_once(' ').unwrap();
        let floor: u32 = floor.parse().unwrap();
        let rest = rest.split('─').next().unwrap();
        let words = rest
            .split(|c: char| c.is_whitespace() || c == ',')
            .filter(|w| !w.is_empty());
        let mut current: Option<String> = None;
        let mut in_deps = false;
        for w in words {
            let (open, word, close) = (
                w.starts_with('('),
                w.trim_matches(|c| c == '(' || c == ')'),
                w.ends_with(')'),
            );
            if open {
                in_deps = true;
            }
            if in_deps {
                let deps: &mut Vec<String> = deps_of.entry(current.clone().unwrap()).or_default();
                deps.push(word.to_string());
            } else {
                current = Some(word.to_string());
                floor_of.insert(word.to_string(), floor);
                deps_of.entry(word.to_string()).or_default();
            }
            if close {
                in_deps = false;
            }
        }
    }
    for (krate, listed) in &deps_of {
        let manifest =
            std::fs::read_to_string(root.join("crates").join(krate).join("Cargo.toml")).unwrap();
        let deps = manifest
            .split("[dependencies]")
            .nth(1)
            .unwrap_or("")
            .split("\n[")
            .next()
            .unwrap();
        let mut real: Vec<String> = deps
            .lines()
            .filter_map(|l| l.strip_prefix("vmbench-"))
            .map(|l| l.split(['.', ' ', '=']).next().unwrap().to_string())
            .collect();
        real.sort();
        let mut listed = listed.clone();
        listed.sort();
        if krate != "run" && krate != "cli" {
            assert_eq!(&listed, &real, "{krate}'s dependencies on the page");
        }
        for d in &real {
            assert!(
                floor_of[d] < floor_of[krate],
                "{krate} (floor {}) depends on {d} (floor {})",
                floor_of[krate],
                floor_of[d]
            );
        }
    }
}
