//! host-tuning/README.md's checklist is the knob catalogue as a reader sees
//! it: the same knobs, each with its class.

use vmbench_isolate::catalogue::CATALOGUE;

#[test]
fn the_docs_checklist_lists_every_knob_of_the_catalogue_with_its_class() {
    // Read at run time: Nix's sandbox compiles this test (clippy
    // --all-targets) from a source tree without host-tuning/.
    let readme =
        std::fs::read_to_string(vmbench_testkit::repo_root().join("host-tuning/README.md"))
            .unwrap();
    let section = readme
        .split("## The checklist")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("host-tuning/README.md has a checklist section");
    let mut listed = Vec::new();
    for row in section.lines().filter(|l| l.starts_with("| `")) {
        let cells: Vec<&str> = row.split('|').map(str::trim).collect();
        for id in cells[1].split(", ") {
            listed.push((id.trim_matches('`').to_string(), cells[2].to_string()));
        }
    }
    let catalogue: Vec<(String, String)> = CATALOGUE
        .iter()
        .map(|k| (k.id.name().to_string(), k.class.label().to_string()))
        .collect();
    assert_eq!(listed, catalogue);
}
