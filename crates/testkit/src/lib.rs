//! What vmbench's integration tests share.
//!
//! Tests that need something beyond Rust (QEMU, a Linux kernel, busybox,
//! bubblewrap, Nix, ssh-keygen, KVM, a second CPU) are
//! `#[ignore = "needs …"]`: a plain `cargo test` lists them as ignored
//! rather than passing them silently. `cargo test -- --include-ignored`
//! (what the README's test command and CI run, after
//! `scripts/install-deps --dev`) runs them, and then a missing prerequisite
//! is a failure that names the package to install, never a quiet pass.
#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Writes `dir/micro.yaml`, a `vmbench run` config for the VM-exit suite
/// on the micro-guest (built from this tree) that changes nothing on the
/// host (isolation off), with `repeat` repeats when given; returns its path.
pub fn micro_run_config(dir: &Path, repeat: Option<u32>) -> PathBuf {
    let config = dir.join("micro.yaml");
    let repeat = repeat.map(|n| format!("repeat: {n}\n")).unwrap_or_default();
    std::fs::write(
        &config,
        format!(
            "suites: [vmexit]\n{repeat}isolation:\n  apply: no\nvm:\n  guest: micro\n  micro_elf: {}\n",
            vmbench_vm::microguest::build().unwrap().display()
        ),
    )
    .unwrap();
    config
}

/// A real `vmbench run --accel tcg --quick` of the micro-guest's VM-exit
/// suite with `repeat` repeats, changing nothing on the host, into
/// `dir/name` (`vmbench`: the binary under test). Panics with the run's
/// stderr when it fails.
pub fn micro_run(vmbench: &Path, dir: &Path, name: &str, repeat: u32) -> PathBuf {
    let config = micro_run_config(dir, Some(repeat));
    let out = dir.join(name);
    let o = std::process::Command::new(vmbench)
        .args(["run", "--accel", "tcg", "--quick", "--config"])
        .arg(&config)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    out
}

/// `vmbench` arguments for the shortest run that starts as every run does,
/// sweeping /dev/shm and the temporary directory of killed runs' leftovers
/// first: a quick loopback of the shared-memory suite on CPUs 0 and 1.
pub const SWEEPING_RUN: [&str; 6] = [
    "shm",
    "--loopback",
    "--cpus",
    "0,1",
    "--quick",
    "--no-doorbell",
];

/// The QEMU the boot tests run (Debian's qemu-system-x86).
pub const QEMU: &str = "/usr/bin/qemu-system-x86_64";

/// Fails the test unless every `(present, package)` holds, naming the first
/// missing package and how to install it.
pub fn require(needs: &[(bool, &str)]) {
    if let Some((_, package)) = needs.iter().find(|(present, _)| !present) {
        panic!(
            "this test needs {package}, which is missing here: `scripts/install-deps --dev` \
             installs everything the tests use (the test is #[ignore]d, so a plain \
             `cargo test` skips it)"
        );
    }
}

/// Whether `tool` can be started (`tool --version`).
pub fn have_tool(tool: &str) -> bool {
    std::process::Command::new(tool)
        .arg("--version")
        .output()
        .is_ok()
}

/// Whether QEMU is installed.
pub fn have_qemu() -> bool {
    Path::new(QEMU).exists()
}

/// Fails the test unless QEMU and a Linux kernel for the guest are there.
pub fn require_guest_boot() {
    require(&[
        (have_qemu(), "qemu-system-x86"),
        (
            vmbench_vm::image::default_kernel().is_ok(),
            "linux-image-amd64",
        ),
    ]);
}

/// The guest image the boot tests use, with `agent` (the test build of
/// vmbench) as its agent, built into `dir` once per test binary. Fails the
/// test when QEMU or a kernel is missing.
pub fn guest_image(agent: &Path, dir: &Path) -> &'static Path {
    static IMAGE: OnceLock<PathBuf> = OnceLock::new();
    require_guest_boot();
    IMAGE.get_or_init(|| {
        let mut o = vmbench_vm::ImageOptions::new(dir);
        o.agent = Some(agent.to_path_buf());
        vmbench_vm::image::build(&o).unwrap();
        dir.to_path_buf()
    })
}

/// Processes whose command line mentions `needle` (QEMU gets our run dir and
/// shm path in its arguments): what a test checks is left behind.
pub fn processes_mentioning(needle: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline"))
            && String::from_utf8_lossy(&cmdline).contains(needle)
        {
            out.push(pid);
        }
    }
    out
}

/// A measurement's id within its suite, from results JSON
/// (`user-fast` for `vmexit.user-fast`).
pub fn local_id(measurement: &serde_json::Value) -> String {
    let id = measurement["id"].as_str().unwrap();
    id.split_once('.')
        .map_or(id, |(_, local)| local)
        .to_string()
}

/// The host state vmbench's isolation may change, read from the real
/// /proc and /sys: every file a runtime knob may write, as the knob
/// catalogue lists them (`vmbench_isolate::catalogue`). Tests that must
/// leave the host as they found it compare two snapshots.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSnapshot(std::collections::BTreeMap<PathBuf, String>);

impl HostSnapshot {
    /// Reads every such file that exists and can be read.
    pub fn take() -> HostSnapshot {
        let files: Vec<PathBuf> = vmbench_isolate::catalogue::CATALOGUE
            .iter()
            .flat_map(|k| k.writes.iter().chain(k.configs))
            .flat_map(|pattern| expand(pattern))
            .collect();
        HostSnapshot(
            files
                .into_iter()
                .filter_map(|p| Some((p.clone(), std::fs::read_to_string(&p).ok()?)))
                .collect(),
        )
    }

    /// How many files the snapshot holds.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The files whose content differs from `earlier`'s, for a message.
    pub fn changed_since(&self, earlier: &HostSnapshot) -> Vec<String> {
        let mut out = Vec::new();
        for (p, v) in &earlier.0 {
            match self.0.get(p) {
                Some(now) if now == v => {}
                now => out.push(format!("{}: {v:?} -> {now:?}", p.display())),
            }
        }
        out
    }
}

/// The existing paths a catalogue pattern names: `{n}` is one or more
/// digits, `{name}` any one path component.
fn expand(pattern: &str) -> Vec<PathBuf> {
    let mut paths = vec![PathBuf::from("/")];
    for component in pattern.split('/').filter(|c| !c.is_empty()) {
        let mut next = Vec::new();
        for dir in &paths {
            if !component.contains('{') {
                next.push(dir.join(component));
                continue;
            }
            let Ok(entries) = std::fs::read_dir(dir) else {
                continue;
            };
            for e in entries.flatten() {
                if let Some(name) = e.file_name().to_str()
                    && vmbench_isolate::catalogue::matches(component, name)
                {
                    next.push(e.path());
                }
            }
        }
        paths = next;
    }
    paths.into_iter().filter(|p| p.exists()).collect()
}

/// What a vmbench process with this pid left in /dev/shm and the temporary
/// directory: entries named `vmbench-<pid>-…` (run directories, region
/// files) or `vmbench-loopback-<pid>` (the loopback's file before it had a
/// private name).
pub fn leftovers_of(pid: u32) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for dir in [PathBuf::from("/dev/shm"), std::env::temp_dir()] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(&format!("vmbench-{pid}-"))
                || name == format!("vmbench-loopback-{pid}")
                || name.starts_with(&format!("vmbench-loopback-{pid}."))
            {
                out.push(e.path());
            }
        }
    }
    out
}

/// The repository's root directory (where README.md and Cargo.lock are).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// Reads an `isolate apply --hold`'s stdout up to its "holding" line (the
/// host is tuned from then on); the rest of the output and what was read.
pub fn until_holding(
    child: &mut std::process::Child,
) -> (std::io::BufReader<std::process::ChildStdout>, String) {
    use std::io::BufRead;
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "apply exited early:\n{seen}"
        );
        seen.push_str(&line);
        if line.starts_with("holding") {
            return (out, seen);
        }
    }
}

/// OpenSSH's own verdict on a signed run directory: `ssh-keygen -Y verify`
/// of its MANIFEST.sha256 against report.sig, as `principal` in
/// `allowed_signers`, in vmbench's namespace. True when it accepts.
pub fn ssh_keygen_accepts(allowed_signers: &Path, principal: &str, run: &Path) -> bool {
    let out = std::process::Command::new("ssh-keygen")
        .args([
            "-Y",
            "verify",
            "-n",
            "vmbench-report",
            "-I",
            principal,
            "-f",
        ])
        .arg(allowed_signers)
        .arg("-s")
        .arg(run.join("report.sig"))
        .stdin(std::fs::File::open(run.join("MANIFEST.sha256")).unwrap())
        .output()
        .unwrap();
    if !out.status.success() {
        eprintln!(
            "ssh-keygen -Y verify: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out.status.success()
}

#[cfg(test)]
mod snapshot_tests {
    use super::*;

    #[test]
    fn catalogue_patterns_expand_to_this_hosts_files() {
        let irqs = expand("/proc/irq/{n}/smp_affinity_list");
        let by_hand = std::fs::read_dir("/proc/irq")
            .unwrap()
            .flatten()
            .filter(|e| {
                e.file_name()
                    .to_str()
                    .is_some_and(|n| n.parse::<u32>().is_ok())
            })
            .count();
        assert_eq!(irqs.len(), by_hand, "{irqs:?}");
        assert_eq!(
            expand("/proc/sys/kernel/timer_migration").len(),
            usize::from(std::path::Path::new("/proc/sys/kernel/timer_migration").exists())
        );
        let snap = HostSnapshot::take();
        assert!(snap.len() >= by_hand, "{snap:?}");
    }
}
