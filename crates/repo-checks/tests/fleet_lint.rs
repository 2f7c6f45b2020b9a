//! fleet/ passes ansible-lint's `production` profile (the strictest), with
//! the pinned ansible-lint `scripts/install-deps --dev` installs, offline
//! (no collection is fetched: the role uses ansible.builtin only).
#![allow(clippy::unwrap_used)]

use std::process::Command;
use vmbench_testkit::{have_tool, require};

#[test]
#[ignore = "needs ansible-lint (scripts/install-deps --dev)"]
fn the_fleet_role_passes_ansible_lint_production() {
    require(&[(
        have_tool("ansible-lint"),
        "ansible-lint (pip, scripts/install-deps --dev)",
    )]);
    let fleet = vmbench_testkit::repo_root().join("fleet");
    let home = tempfile::tempdir().unwrap();
    let out = Command::new("ansible-lint")
        .args(["--offline", "--nocolor", "--profile", "production"])
        .current_dir(&fleet)
        // Its caches and any collection lookups stay out of the user's home.
        .env("HOME", home.path())
        .env("ANSIBLE_HOME", home.path().join(".ansible"))
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("Profile 'production' was required, and it passed"),
        "{text}"
    );
}
