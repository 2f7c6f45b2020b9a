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
