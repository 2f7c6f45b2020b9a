//! The Ansible fleet (`fleet/`) for real: `ansible-playbook` over SSH to
//! three "hosts" this test makes on this machine, each a network namespace
//! with a veth pair to the test. Two run their own OpenSSH server (root
//! logs in, and `become` goes through `su`); the third has none and must
//! end as a reported failure while the other two run vmbench (the
//! micro-guest under TCG), sign, come back, verify, and are compared.
//! Before that, `--check` must change nothing, and a playbook run where
//! every host fails must still write fleet.md with each failure. The
//! namespaces, servers and keys are removed at the end.
#![allow(clippy::unwrap_used)] // test helpers: a failure is the test failing

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use vmbench_testkit::{have_tool, require};

fn repo() -> PathBuf {
    vmbench_testkit::repo_root()
}

fn run(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn ip(args: &[&str]) {
    run(Command::new("ip").args(args));
}

/// The test's hosts: namespaces and their sshd, removed on drop.
struct Fleet {
    namespaces: Vec<String>,
    links: Vec<String>,
    servers: Vec<Child>,
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for s in &mut self.servers {
            let _ = s.kill();
            let _ = s.wait();
        }
        for ns in &self.namespaces {
            // Whatever still runs in the namespace (an sshd session) keeps
            // it, and its veth pair, alive: end it first.
            if let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() {
                for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                    if let Ok(p) = pid.parse::<i32>() {
                        let _ = nix::sys::signal::kill(
                            nix::unistd::Pid::from_raw(p),
                            nix::sys::signal::Signal::SIGKILL,
                        );
                    }
                }
            }
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        for link in &self.links {
            let _ = Command::new("ip").args(["link", "del", link]).status();
        }
    }
}

/// Namespace `i` with a /30 to the test: 10.213.i.1 here, 10.213.i.2 there.
fn host(fleet: &mut Fleet, tag: &str, i: u8) -> String {
    let ns = format!("vmbf-{tag}-{i}");
    ip(&["netns", "add", &ns]);
    fleet.namespaces.push(ns.clone());
    let (here, there) = (format!("vf{tag}{i}h"), format!("vf{tag}{i}g"));
    ip(&["link", "add", &here, "type", "veth", "peer", "name", &there]);
    fleet.links.push(here.clone());
    ip(&["link", "set", &there, "netns", &ns]);
    ip(&["addr", "add", &format!("10.213.{i}.1/30"), "dev", &here]);
    ip(&["link", "set", &here, "up"]);
    let addr = format!("10.213.{i}.2/30");
    for args in [
        ["addr", "add", addr.as_str(), "dev", there.as_str()].as_slice(),
        &["link", "set", there.as_str(), "up"],
        &["link", "set", "lo", "up"],
    ] {
        run(Command::new("ip")
            .args(["netns", "exec", &ns, "ip"])
            .args(args));
    }
    ns
}

/// An OpenSSH server in `ns` that takes `client_pub`'s key for root.
fn sshd(fleet: &mut Fleet, dir: &Path, ns: &str, i: u8, authorized: &Path) {
    let host_key = dir.join(format!("host-key-{i}"));
    run(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&host_key));
    let config = dir.join(format!("sshd-{i}.conf"));
    std::fs::write(
        &config,
        format!(
            "ListenAddress 10.213.{i}.2\nPort 22\nHostKey {}\nPidFile {}\nAuthorizedKeysFile {}\n\
             PermitRootLogin prohibit-password\nPasswordAuthentication no\n\
             KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\nSubsystem sftp internal-sftp\n",
            host_key.display(),
            dir.join(format!("sshd-{i}.pid")).display(),
            authorized.display()
        ),
    )
    .unwrap();
    std::fs::create_dir_all("/run/sshd").unwrap();
    let child = Command::new("ip")
        .args(["netns", "exec", ns, "/usr/sbin/sshd", "-D", "-e", "-f"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    fleet.servers.push(child);
    // Listening once a TCP connection is accepted.
    let start = Instant::now();
    let addr = format!("10.213.{i}.2:22").parse().unwrap();
    while std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "sshd {i} did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The inventory (three hosts at 10.213.i.2, each with its own directory)
/// and the extra variables for fleet/playbook.yml.
fn playbook_inputs(
    dir: &Path,
    client_key: &Path,
    sign_keys: &Path,
    allowed: &Path,
    config: &Path,
    results: &Path,
) -> (PathBuf, PathBuf) {
    // The hosts share this machine's files: their Python is the one
    // Ansible runs with here.
    let python = String::from_utf8(
        run(Command::new("python3").args(["-c", "import sys; print(sys.executable)"])).stdout,
    )
    .unwrap()
    .trim()
    .to_string();
    let inventory = dir.join("inventory.ini");
    let mut inv = String::from("[vmbench]\n");
    for i in 1..=3u8 {
        inv.push_str(&format!(
            "host{i} ansible_host=10.213.{i}.2 vmbench_dir={}\n",
            dir.join(format!("host{i}")).display()
        ));
    }
    inv.push_str(&format!(
        "\n[vmbench:vars]\nansible_user=root\nansible_ssh_private_key_file={}\n\
         ansible_ssh_common_args='-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o ConnectTimeout=5'\n\
         ansible_python_interpreter={python}\nansible_become_method=su\n",
        client_key.display()
    ));
    std::fs::write(&inventory, inv).unwrap();
    let extra = serde_json::json!({
        "vmbench_binary": env!("CARGO_BIN_EXE_vmbench"),
        "vmbench_controller": env!("CARGO_BIN_EXE_vmbench"),
        "vmbench_config": config,
        "vmbench_run_args": ["--accel", "tcg", "--quick"],
        "vmbench_sign_key_dir": sign_keys,
        "vmbench_allowed_signers": allowed,
        "vmbench_results": results,
        "vmbench_install": "binary",
    });
    let extra_file = dir.join("extra.json");
    std::fs::write(&extra_file, extra.to_string()).unwrap();
    (inventory, extra_file)
}

/// One signing key per host in `dir/sign-keys`, and allowed_signers that
/// lists each for its host alone.
fn per_host_keys(dir: &Path) -> (PathBuf, PathBuf) {
    // One signing key per host, and who may have signed for which host.
    let sign_keys = dir.join("sign-keys");
    std::fs::create_dir(&sign_keys).unwrap();
    let mut allowed_lines = String::new();
    for i in 1..=3u8 {
        let key = sign_keys.join(format!("host{i}"));
        run(Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "fleet@vmbench", "-f"])
            .arg(&key));
        let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
        allowed_lines.push_str(&format!("host{i} namespaces=\"vmbench-report\" {public}"));
    }
    let allowed = dir.join("allowed_signers");
    std::fs::write(&allowed, allowed_lines).unwrap();
    (sign_keys, allowed)
}

/// Again on host1 alone, with nothing to verify against: the summary does
/// not call it verified.
fn summary_says_unverified_without_allowed_signers(
    dir: &Path,
    inventory: &Path,
    extra_file: &Path,
    results: &Path,
) {
    let mut extra: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(extra_file).unwrap()).unwrap();
    extra["vmbench_allowed_signers"] = serde_json::json!("");
    let unverified = dir.join("extra-unverified.json");
    std::fs::write(&unverified, extra.to_string()).unwrap();
    let out = playbook(dir, inventory, &unverified, &["--limit", "host1,localhost"]);
    let log = String::from_utf8_lossy(&out.stdout).into_owned();
    let summary = std::fs::read_to_string(results.join("fleet.md")).unwrap();
    assert!(
        summary.contains("Completed and verified: none")
            && summary
                .contains("Completed, not verified (no vmbench_allowed_signers was given): host1"),
        "{summary}\n{log}"
    );
}

/// `--check` over every host: exits 0, copies nothing to the hosts, runs
/// no vmbench and writes no result, while saying what it would change.
fn check_mode_changes_nothing(dir: &Path, inventory: &Path, extra: &Path, results: &Path) {
    let out = playbook(dir, inventory, extra, &["--check"]);
    let log = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{log}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for h in ["host1", "host2"] {
        assert!(!dir.join(h).exists(), "--check made {h}'s directory\n{log}");
        assert!(
            log.lines().any(|l| l.starts_with(h)
                && l.contains("failed=0")
                && l.contains("rescued=0")
                && !l.contains("changed=0")),
            "{h}: --check failed, or reported no change it would make\n{log}"
        );
    }
    assert!(!results.join("fleet.md").exists(), "{log}");
    assert!(
        !log.contains("TASK [vmbench : Run vmbench]") || log.contains("skipping"),
        "{log}"
    );
}

/// Every host fails (two runs refuse their arguments, the third host is
/// unreachable): the playbook still reaches its summary, fleet.md names
/// each host with its error, and the playbook exits 2.
fn every_host_failing_is_reported(dir: &Path, inventory: &Path, extra: &Path, results: &Path) {
    let mut failing: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(extra).unwrap()).unwrap();
    failing["vmbench_run_args"] = serde_json::json!(["--no-such-option"]);
    let failing_file = dir.join("extra-failing.json");
    std::fs::write(&failing_file, failing.to_string()).unwrap();
    let out = playbook(dir, inventory, &failing_file, &[]);
    let log = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(2), "{log}");
    let summary = std::fs::read_to_string(results.join("fleet.md"))
        .unwrap_or_else(|e| panic!("no fleet.md ({e}) when every host failed\n{log}"));
    assert!(
        summary.contains("Completed and verified: none"),
        "{summary}"
    );
    for h in ["host1", "host2"] {
        let line = summary
            .lines()
            .find(|l| l.starts_with(&format!("- **{h} failed**")))
            .unwrap_or_else(|| panic!("{h} is not listed as failed: {summary}"));
        assert!(
            line.contains("Run vmbench") && line.contains("--no-such-option"),
            "{line}"
        );
    }
    assert!(
        summary.contains("- **host3 failed**: unreachable"),
        "{summary}"
    );
    assert!(!results.join("compare.md").exists());
    std::fs::remove_file(results.join("fleet.md")).unwrap();
}

/// fleet/playbook.yml over `inventory` with the extra variables in `extra`.
fn playbook(dir: &Path, inventory: &Path, extra: &Path, args: &[&str]) -> std::process::Output {
    Command::new("ansible-playbook")
        .arg("-i")
        .arg(inventory)
        .args(args)
        .arg("-e")
        .arg(format!("@{}", extra.display()))
        .arg(repo().join("fleet/playbook.yml"))
        .env("ANSIBLE_HOST_KEY_CHECKING", "False")
        // No ssh master connections lingering in the namespaces afterwards.
        .env(
            "ANSIBLE_SSH_ARGS",
            "-o ControlMaster=no -o ControlPersist=no",
        )
        .env("ANSIBLE_LOCAL_TEMP", dir.join("ansible-local"))
        .env("ANSIBLE_REMOTE_TEMP", dir.join("ansible-remote"))
        .env("ANSIBLE_NOCOLOR", "1")
        .output()
        .unwrap()
}

/// `h` completed: no failure in the recap, its signed directory here and
/// verified, nothing of the run left in its directory on the "host".
fn came_back_verified(h: &str, log: &str, results: &Path, allowed: &Path, dir: &Path) {
    assert!(
        log.lines()
            .any(|l| l.starts_with(h) && l.contains("failed=0") && l.contains("unreachable=0")),
        "{h}: {log}"
    );
    let d = results.join(h);
    assert!(d.join("report.sig").is_file(), "{h}: no signature\n{log}");
    // Verified again here, independently of the playbook.
    let v = Command::new(env!("CARGO_BIN_EXE_vmbench"))
        .args(["report", "verify", "--allowed-signers"])
        .arg(allowed)
        .arg(&d)
        .output()
        .unwrap();
    assert!(
        v.status.success(),
        "{h}: {}",
        String::from_utf8_lossy(&v.stderr)
    );
    // Signed by the key allowed for this host, and by no other host's.
    for (principal, ok) in [(h, true), ("host3", false)] {
        let v = Command::new(env!("CARGO_BIN_EXE_vmbench"))
            .args([
                "report",
                "verify",
                "--principal",
                principal,
                "--allowed-signers",
            ])
            .arg(allowed)
            .arg(&d)
            .output()
            .unwrap();
        assert_eq!(
            v.status.success(),
            ok,
            "{h} as {principal}: {}",
            String::from_utf8_lossy(&v.stderr)
        );
    }
    // The agent-only binary went beside vmbench (the guest's /init).
    assert!(
        dir.join(h).join("vmbench-agent").is_file(),
        "{h}: no vmbench-agent"
    );
    // Nothing left on the "host": key, output and archive removed; what was
    // installed stays.
    let left: Vec<_> = std::fs::read_dir(dir.join(h))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !["vmbench", "vmbench-agent", "vmbench.yaml"].contains(&n.as_str()))
        .collect();
    assert!(left.is_empty(), "{h} kept {left:?}");
}

#[test]
#[ignore = "needs root, iproute2, openssh-server, ansible-core and qemu-system-x86"]
fn the_fleet_runs_two_hosts_in_parallel_and_reports_the_unreachable_third() {
    require(&[
        (nix::unistd::geteuid().is_root(), "root"),
        (have_tool("ansible-playbook"), "ansible-core (pip)"),
        (Path::new("/usr/sbin/sshd").exists(), "openssh-server"),
        (have_tool("ssh-keygen"), "openssh-client"),
    ]);
    let started = Instant::now();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let tag = format!("{}", std::process::id() % 10_000);
    let mut fleet = Fleet {
        namespaces: Vec::new(),
        links: Vec::new(),
        servers: Vec::new(),
    };
    let client_key = dir.join("client-key");
    run(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&client_key));
    let authorized = dir.join("authorized_keys");
    std::fs::copy(client_key.with_extension("pub"), &authorized).unwrap();
    let mut names = Vec::new();
    for i in 1..=3u8 {
        let ns = host(&mut fleet, &tag, i);
        if i < 3 {
            sshd(&mut fleet, dir, &ns, i, &authorized);
        }
        names.push(ns);
    }

    let (sign_keys, allowed) = per_host_keys(dir);
    // Every host is this machine: TCG, the micro-guest, nothing tuned (two
    // runs would otherwise share one kernel's knobs).
    let config = vmbench_testkit::micro_run_config(dir, None);
    let results = dir.join("results");
    // What an earlier fleet run left for host1 must not mix with this one's.
    std::fs::create_dir_all(results.join("host1")).unwrap();
    std::fs::write(results.join("host1/stale-from-before.txt"), "old\n").unwrap();
    let (inventory, extra_file) =
        playbook_inputs(dir, &client_key, &sign_keys, &allowed, &config, &results);
    check_mode_changes_nothing(dir, &inventory, &extra_file, &results);
    every_host_failing_is_reported(dir, &inventory, &extra_file, &results);
    let out = playbook(dir, &inventory, &extra_file, &[]);
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // host3 had no sshd: it is recorded as a failure, and the playbook
    // fails at its end (exit 2) for it alone.
    assert_eq!(out.status.code(), Some(2), "{log}");
    assert!(
        log.lines()
            .any(|l| l.starts_with("host3") && l.contains("failed=0") && !l.contains("ok=0")),
        "{log}"
    );
    for h in ["host1", "host2"] {
        came_back_verified(h, &log, &results, &allowed, dir);
    }
    let compare = std::fs::read_to_string(results.join("compare.md")).unwrap();
    assert!(
        compare.contains("host1") && compare.contains("host2"),
        "{compare}"
    );
    assert!(
        compare.contains("signed by host1, verified")
            && compare.contains("signed by host2, verified"),
        "{compare}"
    );
    assert!(
        !results.join("host1/stale-from-before.txt").exists(),
        "an earlier run's file was kept in results/host1"
    );
    let summary = std::fs::read_to_string(results.join("fleet.md")).unwrap();
    assert!(
        summary.contains("Completed and verified: host1, host2"),
        "{summary}"
    );
    assert!(
        summary.contains("**host3 failed**: unreachable"),
        "{summary}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(300),
        "the fleet took {:?}",
        started.elapsed()
    );
    summary_says_unverified_without_allowed_signers(dir, &inventory, &extra_file, &results);
    let links = fleet.links.clone();
    drop(fleet);
    for ns in names {
        assert!(
            !Path::new(&format!("/run/netns/{ns}")).exists(),
            "{ns} left behind"
        );
    }
    for link in links {
        assert!(
            !Path::new(&format!("/sys/class/net/{link}")).exists(),
            "{link} left behind"
        );
    }
}
