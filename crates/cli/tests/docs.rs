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
/// which one to run.
#[test]
fn the_readmes_cargo_run_starts_vmbench() {
    let root = vmbench_testkit::repo_root();
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let setup = readme
        .lines()
        .find(|l| l.contains("cargo run"))
        .expect("the README's set-up runs vmbench with cargo run");
    assert!(setup.contains("cargo run --release -- run"), "{setup}");
    // The same `cargo run` without --release (this test build is the dev
    // profile: nothing to rebuild), asking only for the version.
    let out = std::process::Command::new(env!("CARGO"))
        .args(["run", "-q", "--", "--version"])
        .current_dir(&root)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.starts_with("vmbench "),
        "cargo run: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
