//! vmbench as root on a server with a second, unprivileged local user who
//! plants files where root will look: the image cache, the report directory,
//! the strings of a results.json. Each test creates that user (as root,
//! `useradd`), plants as them (the planting commands run with their uid),
//! runs vmbench as root, and removes the user at its end. See
//! docs/security.md ("Other local users").
//!
//! Tests that need root say so and are #[ignore]d (`--include-ignored` runs
//! them; without root they fail with what is missing).
#![allow(clippy::unwrap_used)] // test helpers: a failure is the test failing

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};
use vmbench_testkit::{have_tool, require};

/// The vmbench under test: this build's, or `VMBENCH_TEST_BIN` (each test
/// fails against the build before these defects were fixed).
fn vmbench() -> Command {
    Command::new(
        std::env::var_os("VMBENCH_TEST_BIN")
            .unwrap_or_else(|| env!("CARGO_BIN_EXE_vmbench").into()),
    )
}

fn require_root() {
    require(&[
        (
            nix::unistd::geteuid().is_root(),
            "root (run the tests as root)",
        ),
        (have_tool("useradd"), "passwd (useradd)"),
    ]);
}

/// A second local user, made for one test and removed after it.
struct LocalUser {
    name: String,
    uid: u32,
    gid: u32,
}

impl LocalUser {
    fn create(tag: &str) -> LocalUser {
        require_root();
        let name = format!("vmbt{}{tag}", std::process::id() % 100_000);
        let _ = Command::new("userdel").arg(&name).output();
        let made = Command::new("useradd")
            .args([
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                "--user-group",
            ])
            .arg(&name)
            .output()
            .unwrap();
        assert!(made.status.success(), "useradd: {made:?}");
        let id = |flag: &str| -> u32 {
            let o = Command::new("id").arg(flag).arg(&name).output().unwrap();
            String::from_utf8_lossy(&o.stdout).trim().parse().unwrap()
        };
        LocalUser {
            uid: id("-u"),
            gid: id("-g"),
            name,
        }
    }

    /// `sh -c script` as this user, which must succeed.
    fn sh(&self, script: &str) {
        let o = Command::new("sh")
            .args(["-c", script])
            .uid(self.uid)
            .gid(self.gid)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "as {}: {script}: {}",
            self.name,
            String::from_utf8_lossy(&o.stderr)
        );
    }

    /// A directory of this user's: made by root in `parent`, then given away.
    fn dir(&self, parent: &Path, name: &str) -> PathBuf {
        let d = parent.join(name);
        std::fs::create_dir_all(&d).unwrap();
        nix::unistd::chown(
            &d,
            Some(nix::unistd::Uid::from_raw(self.uid)),
            Some(nix::unistd::Gid::from_raw(self.gid)),
        )
        .unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
        d
    }
}

impl Drop for LocalUser {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(&self.name).output();
    }
}

/// A root-only file an attacker would like root to overwrite.
fn victim(dir: &Path) -> PathBuf {
    let v = dir.join("root-only");
    std::fs::write(&v, "root's own\n").unwrap();
    std::fs::set_permissions(&v, std::fs::Permissions::from_mode(0o600)).unwrap();
    v
}

/// What the attacker plants in an image directory: a Kbuild command file
/// that runs `id` into `mark` when make reads it (Kbuild includes the
/// `.<target>.cmd` of every target that exists, so an old `vmbench.o` goes
/// with it), and `manifest.json` as a link to `victim`.
fn plant_image_dir(user: &LocalUser, image_dir: &Path, mark: &Path, victim: &Path) {
    user.sh(&format!(
        "mkdir -p '{d}/kmod' && printf 'cmd_x := x\\n$(shell id > {m})\\n' > '{d}/kmod/.vmbench.o.cmd' \
         && cp '{d}/kmod/.vmbench.o.cmd' '{d}/kmod/.vmbench.ko.cmd' \
         && touch -d 2000-01-01 '{d}/kmod/vmbench.o' \
         && ln -s '{v}' '{d}/manifest.json'",
        d = image_dir.display(),
        m = mark.display(),
        v = victim.display()
    ));
}

/// A bzImage header and nothing else: enough for `image build` to read the
/// kernel's release (the tests that use it never boot it).
fn fake_kernel(dir: &Path) -> PathBuf {
    let mut b = vec![0u8; 0x1000];
    b[0x202..0x206].copy_from_slice(b"HdrS");
    b[0x20E..0x210].copy_from_slice(&0x300u16.to_le_bytes());
    let v = b"6.1.0-99-vmbench-test (test) #1 SMP\0";
    b[0x500..0x500 + v.len()].copy_from_slice(v);
    let k = dir.join("vmlinuz-fake");
    std::fs::write(&k, b).unwrap();
    k
}

fn agent() -> &'static str {
    env!("CARGO_BIN_EXE_vmbench-agent")
}

fn text(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr)
}

// ---- the guest image: no shared directory, nothing planted runs ------------

/// `env -u HOME -u XDG_CACHE_HOME vmbench image build` as root: it used to
/// build in /tmp/vmbench/guest-image, where another user had planted a
/// Kbuild command file (it ran as root) and a `manifest.json` link (root's
/// file was overwritten). Now root's cache without HOME is
/// /var/cache/vmbench, the module is built in a private directory, and
/// nothing is written through a link. /var/cache is a tmpfs in a mount
/// namespace of the test's own, so the host's is untouched.
#[test]
#[ignore = "needs root, useradd, unshare, a Linux kernel with headers, make and gcc: builds the image as root next to another user's plants"]
fn image_build_without_home_uses_no_shared_directory_and_runs_nothing_planted() {
    require_root();
    let kernel = vmbench_vm::image::default_kernel();
    require(&[
        (kernel.is_ok(), "linux-image-amd64"),
        (have_tool("make"), "make"),
        (have_tool("unshare"), "util-linux (unshare)"),
    ]);
    let user = LocalUser::create("img");
    let root_tmp = tempfile::tempdir().unwrap();
    let victim = victim(root_tmp.path());
    let shared = Path::new("/tmp/vmbench");
    let _ = std::fs::remove_dir_all(shared);
    let mark = PathBuf::from(format!("/tmp/vmbench-planted-ran-{}", std::process::id()));
    let _ = std::fs::remove_file(&mark);
    plant_image_dir(&user, &shared.join("guest-image"), &mark, &victim);

    let script = format!(
        "mount -t tmpfs tmpfs /var/cache && env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin {} image build \
         && stat -c '%U %a %n' /var/cache/vmbench/guest-image /var/cache/vmbench/guest-image/*",
        vmbench().get_program().to_string_lossy()
    );
    let o = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .output()
        .unwrap();
    let out = text(&o);
    let planted_ran = mark.exists();
    let victim_now = std::fs::read_to_string(&victim).unwrap();
    let link_kept = shared
        .join("guest-image/manifest.json")
        .symlink_metadata()
        .is_ok_and(|m| m.file_type().is_symlink());
    let _ = std::fs::remove_dir_all(shared);
    let _ = std::fs::remove_file(&mark);

    assert!(!planted_ran, "a planted Kbuild command ran as root:\n{out}");
    assert_eq!(victim_now, "root's own\n", "written through a planted link");
    assert!(link_kept, "the other user's directory was used:\n{out}");
    assert!(o.status.success(), "{out}");
    for f in ["bzImage", "initrd", "manifest.json", "vmbench.ko"] {
        assert!(
            out.contains(&format!("root 644 /var/cache/vmbench/guest-image/{f}")),
            "{f}:\n{out}"
        );
    }
    assert!(
        out.contains("root 700 /var/cache/vmbench/guest-image\n"),
        "{out}"
    );
}

/// `sudo -E`: root with HOME (or --out) in a directory another user owns
/// refuses to build there, and runs and writes nothing of theirs.
#[test]
#[ignore = "needs root and useradd: plants an image directory as another user"]
fn image_build_refuses_a_directory_another_user_controls() {
    let user = LocalUser::create("home");
    let root_tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(root_tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let victim = victim(root_tmp.path());
    let home = user.dir(root_tmp.path(), "home");
    let mark = root_tmp.path().join("planted-ran");
    let image_dir = home.join(".cache/vmbench/guest-image");
    plant_image_dir(&user, &image_dir, &mark, &victim);
    // The real kernel where there is one (its headers let a build that
    // used the directory run make there); else a stand-in header.
    let kernel =
        vmbench_vm::image::default_kernel().unwrap_or_else(|_| fake_kernel(root_tmp.path()));

    for how in ["HOME", "--out"] {
        let mut c = vmbench();
        c.args(["image", "build", "--agent", agent(), "--kernel"])
            .arg(&kernel)
            .env_remove("XDG_CACHE_HOME");
        if how == "HOME" {
            c.env("HOME", &home);
        } else {
            c.arg("--out").arg(&image_dir);
        }
        let o = c.output().unwrap();
        let out = text(&o);
        assert!(
            !o.status.success(),
            "{how}: built in the other user's directory:\n{out}"
        );
        assert!(
            out.contains(&format!("owned by uid {}", user.uid)),
            "{how}: {out}"
        );
        assert!(!mark.exists(), "{how}: a planted Kbuild command ran");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "root's own\n");
        assert!(!image_dir.join("initrd").exists(), "{how}: wrote into it");
    }
    // Its own directory under the other user's home is no better: they
    // can rename it away and put theirs in its place.
    let own = image_dir.join("root-made");
    std::fs::create_dir(&own).unwrap();
    std::fs::set_permissions(&own, std::fs::Permissions::from_mode(0o700)).unwrap();
    let o = vmbench()
        .args([
            "image",
            "build",
            "--no-module",
            "--agent",
            agent(),
            "--kernel",
        ])
        .arg(&kernel)
        .arg("--out")
        .arg(&own)
        .output()
        .unwrap();
    assert!(!o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains(&format!("owned by uid {}", user.uid)),
        "{}",
        text(&o)
    );
}

/// Links at the image's output names (in a directory of root's own) are
/// replaced, never written through.
#[test]
fn image_build_replaces_links_at_its_output_names() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("image");
    std::fs::create_dir(&out).unwrap();
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o700)).unwrap();
    let names = ["bzImage", "initrd", "cmdline", "manifest.json"];
    for n in names {
        let target = tmp.path().join(format!("target-{n}"));
        std::fs::write(&target, "untouched\n").unwrap();
        std::os::unix::fs::symlink(&target, out.join(n)).unwrap();
    }
    let o = vmbench()
        .args([
            "image",
            "build",
            "--no-module",
            "--agent",
            agent(),
            "--kernel",
        ])
        .arg(fake_kernel(tmp.path()))
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    for n in names {
        let target = tmp.path().join(format!("target-{n}"));
        assert_eq!(
            std::fs::read_to_string(&target).unwrap(),
            "untouched\n",
            "{n}"
        );
        assert!(
            out.join(n)
                .symlink_metadata()
                .unwrap()
                .file_type()
                .is_file(),
            "{n} is not a regular file"
        );
    }
}

// ---- signed reports: no directory another user controls, no swap ----------

fn new_key(dir: &Path) -> PathBuf {
    require(&[(have_tool("ssh-keygen"), "openssh-client")]);
    let key = dir.join("key");
    let made = Command::new("ssh-keygen")
        .args(["-q", "-N", "", "-C", "t", "-t", "ed25519", "-f"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(made.status.success(), "{made:?}");
    key
}

/// `vmbench run --sign` into a directory another user owns (given, or the
/// default under a working directory of theirs) stops in the preflight:
/// exit 2, nothing written, nothing changed.
#[test]
#[ignore = "needs root and useradd: another user's report directory"]
fn a_signed_run_into_another_users_directory_is_refused_before_it_starts() {
    let user = LocalUser::create("out");
    let root_tmp = tempfile::tempdir().unwrap();
    std::fs::set_permissions(root_tmp.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let theirs = user.dir(root_tmp.path(), "theirs");
    let key = new_key(root_tmp.path());
    let config = vmbench_testkit::micro_run_config(root_tmp.path(), Some(1));
    for (how, out) in [("--out", Some(theirs.clone())), ("the default", None)] {
        let mut c = vmbench();
        c.args(["run", "--accel", "tcg", "--quick", "--config"])
            .arg(&config)
            .arg("--sign")
            .arg(&key)
            .current_dir(&theirs);
        if let Some(o) = &out {
            c.arg("--out").arg(o);
        }
        let started = Instant::now();
        let o = c.output().unwrap();
        let out_text = text(&o);
        assert_eq!(o.status.code(), Some(2), "{how}: {out_text}");
        assert!(
            out_text.contains("with --sign") && out_text.contains(&format!("uid {}", user.uid)),
            "{how}: {out_text}"
        );
        assert!(
            std::fs::read_dir(&theirs).unwrap().next().is_none(),
            "{how}: something was written"
        );
        assert!(started.elapsed() < Duration::from_secs(30), "{how}: it ran");
    }
}

/// The owner of a report directory (here the test itself, as root can) swaps
/// report.md for a forgery between its writing and the signature. The
/// signed manifest holds the hash of what vmbench wrote, so the forgery
/// does not verify (it used to: the manifest was hashed from disk).
#[test]
#[ignore = "needs qemu-system-x86 and ssh-keygen: a signed run of the micro-guest under TCG"]
fn a_report_swapped_during_a_signed_run_does_not_verify() {
    require(&[(vmbench_testkit::have_qemu(), "qemu-system-x86")]);
    let tmp = tempfile::tempdir().unwrap();
    let key = new_key(tmp.path());
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let allowed = tmp.path().join("allowed_signers");
    std::fs::write(&allowed, format!("me {public}")).unwrap();
    let config = vmbench_testkit::micro_run_config(tmp.path(), Some(1));
    for attempt in 0..3 {
        let out = tmp.path().join(format!("run{attempt}"));
        std::fs::create_dir(&out).unwrap();
        let forged = tmp.path().join(format!("forged{attempt}"));
        std::fs::write(&forged, "# vmbench report\n\nEverything was fast.\n").unwrap();
        // The swap: as soon as report.md exists, rename the forgery over it.
        let watch = {
            let (out, forged) = (out.clone(), forged.clone());
            std::thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(300);
                while Instant::now() < deadline {
                    if out.join("report.md").exists() {
                        let before_manifest = !out.join("MANIFEST.sha256").exists();
                        std::fs::rename(&forged, out.join("report.md")).unwrap();
                        return Some(before_manifest);
                    }
                    std::thread::sleep(Duration::from_micros(100));
                }
                None
            })
        };
        let o = vmbench()
            .args(["run", "--accel", "tcg", "--quick", "--config"])
            .arg(&config)
            .arg("--sign")
            .arg(&key)
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", text(&o));
        let swapped_in_time = watch.join().unwrap().expect("report.md never appeared");
        if !swapped_in_time {
            continue; // the swap came after the manifest: try again
        }
        assert_eq!(
            std::fs::read_to_string(out.join("report.md")).unwrap(),
            "# vmbench report\n\nEverything was fast.\n"
        );
        let v = vmbench()
            .args(["report", "verify", "--allowed-signers"])
            .arg(&allowed)
            .arg(&out)
            .output()
            .unwrap();
        assert_eq!(
            v.status.code(),
            Some(1),
            "the forgery verified: {}",
            text(&v)
        );
        assert!(text(&v).contains("report.md"), "{}", text(&v));
        // The signature itself is good: it is over the manifest vmbench
        // wrote, which says what report.md really was.
        let sha = Command::new("sha256sum")
            .arg("-c")
            .arg("--quiet")
            .arg("MANIFEST.sha256")
            .current_dir(&out)
            .output()
            .unwrap();
        assert!(!sha.status.success());
        assert!(text(&sha).contains("report.md: FAILED"), "{}", text(&sha));
        return;
    }
    panic!("the swap never landed between report.md and the manifest in 3 runs");
}

// ---- strings from results.json make no links --------------------------------

/// results.json may come from anyone, and the guest's spec from a hostile
/// guest: strings shaped as Markdown links, autolinks, images or HTML are
/// text in report.md and report.html, and report.html links only to http,
/// https and relative targets.
#[test]
fn crafted_strings_in_results_make_no_links() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    std::fs::create_dir(&run).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            vmbench_testkit::repo_root().join("reports/example-tcg/results.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let payloads = [
        "[click](javascript:alert(1))",
        "<javascript:alert(2)>",
        "![x](data:image/svg+xml;base64,PHN2Zz4=)",
        "[y](JaVaScRiPt&#58;alert(3))",
        "\\[z](data:text/html,hi)",
        "<img src=x onerror=alert(4)>",
        "line\n\n## Signed by someone else",
    ];
    let mut planted = 0;
    fn plant(v: &mut serde_json::Value, payloads: &[&str], n: &mut usize) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, x) in m.iter_mut() {
                    if let serde_json::Value::String(s) = x
                        && [
                            "kernel_release",
                            "model name",
                            "cpu_model_name",
                            "qemu_version",
                        ]
                        .contains(&k.as_str())
                    {
                        *s = payloads[*n % payloads.len()].to_string();
                        *n += 1;
                    } else {
                        plant(x, payloads, n);
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(|x| plant(x, payloads, n)),
            _ => {}
        }
    }
    plant(&mut v, &payloads, &mut planted);
    let warnings = v["results"]["warnings"].as_array_mut().unwrap();
    for p in payloads {
        warnings.push(serde_json::json!({ "kind": "unclassified", "message": p }));
    }
    assert!(planted >= 2, "no spec string to plant in");
    std::fs::write(run.join("results.json"), serde_json::to_string(&v).unwrap()).unwrap();
    let o = vmbench()
        .args(["report", "render"])
        .arg(&run)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", text(&o));
    let html = std::fs::read_to_string(run.join("report.html"))
        .unwrap()
        .to_ascii_lowercase();
    for bad in ["href=\"javascript", "href=\"data:", "src=\"data:", "<img"] {
        assert!(!html.contains(bad), "report.html has {bad}");
    }
    let md = std::fs::read_to_string(run.join("report.md")).unwrap();
    for (i, _) in md.match_indices("](javascript:") {
        assert_eq!(
            &md[i - 1..i],
            "\\",
            "a live link in report.md: {}",
            &md[i - 20..i + 20]
        );
    }
    assert!(!md.contains("\n## Signed by someone else"), "a new block");
    // They are still there, as text.
    assert!(md.contains("\\[click\\](javascript:alert(1))"), "{md}");
    let links: Vec<&str> = html
        .match_indices("href=\"")
        .map(|(i, _)| &html[i..])
        .collect();
    for l in links {
        let target = &l[6..l[6..].find('"').unwrap() + 6];
        assert!(
            target.starts_with("http://")
                || target.starts_with("https://")
                || !target.contains(':'),
            "link to {target}"
        );
    }
}

// ---- shared directories across PID namespaces, and a full disk -------------

/// A vmbench starting here: a short loopback run, which sweeps /dev/shm and
/// the temporary directory first.
fn sweep() -> Output {
    vmbench()
        .args(vmbench_testkit::SWEEPING_RUN)
        .output()
        .unwrap()
}

/// The entries of a vmbench in another PID namespace that shares /dev/shm
/// and /tmp (a container, `unshare --pid`) are alive although their pid
/// means nothing here: the sweep of a vmbench starting here keeps them
/// (it judges by the owner's `.alive` lock, not by the pid).
#[test]
#[ignore = "needs root, unshare and qemu-system-x86: a vmbench in another PID namespace"]
fn a_live_vmbench_in_another_pid_namespace_keeps_its_files() {
    require_root();
    require(&[
        (vmbench_testkit::have_qemu(), "qemu-system-x86"),
        (have_tool("unshare"), "util-linux (unshare)"),
    ]);
    // A pid in the other namespace that names no process here: the
    // namespace's sh is its pid 1 and hands out pids in order.
    let entries_of = |n: u32| -> Vec<PathBuf> {
        let prefix = format!("vmbench-{n}-");
        [PathBuf::from("/dev/shm"), std::env::temp_dir()]
            .iter()
            .filter_map(|d| std::fs::read_dir(d).ok())
            .flat_map(|d| d.flatten().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with(&prefix)
            })
            .collect()
    };
    let n = (300..5000)
        .find(|p| !Path::new(&format!("/proc/{p}")).exists() && entries_of(*p).is_empty())
        .unwrap();
    let entries = || entries_of(n);
    let elf = vmbench_vm::microguest::build().unwrap();
    let script = format!(
        "i=2; while [ $i -lt {n} ]; do /bin/true; i=$((i+1)); done; \
         {} vm boot --guest micro --accel tcg --micro-elf {} --wait > /dev/null 2>&1 & wait",
        vmbench().get_program().to_string_lossy(),
        elf.display()
    );
    let mut other = Command::new("unshare")
        .args(["--pid", "--fork", "sh", "-c", &script])
        .process_group(0)
        .spawn()
        .unwrap();
    // Its run directory (QMP socket, logs) and its `.alive` locks (its
    // region file it unlinks itself once QEMU has it open).
    let deadline = Instant::now() + Duration::from_secs(120);
    let theirs = loop {
        let found: Vec<PathBuf> = entries()
            .into_iter()
            .filter(|p| p.is_dir() || p.extension().is_some_and(|e| e == "alive"))
            .collect();
        if found.iter().any(|p| p.is_dir()) || Instant::now() > deadline {
            break found;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let made_run_dir = theirs.iter().any(|p| p.is_dir());
    let sweeper = sweep();
    let kept: Vec<bool> = theirs.iter().map(|p| p.exists()).collect();
    let _ = nix::sys::signal::killpg(
        nix::unistd::Pid::from_raw(other.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
    let _ = other.wait();
    assert!(
        made_run_dir,
        "the other namespace's vmbench (pid {n} there) made no run directory: {theirs:?}"
    );
    assert!(
        !Path::new(&format!("/proc/{n}")).exists(),
        "pid {n} was taken here meanwhile: the test proves nothing"
    );
    assert!(sweeper.status.code().is_some(), "{}", text(&sweeper));
    assert!(
        kept.iter().all(|k| *k),
        "a live vmbench's entries in another PID namespace were swept: {theirs:?}"
    );
    // Once it is gone, its entries are swept by the next start.
    let _ = sweep();
    for p in &theirs {
        assert!(
            !p.exists(),
            "{} outlived its process and a sweep",
            p.display()
        );
    }
}

/// The output directory fills up at the end of a run: the results are not
/// lost, they are saved in a private directory under the temporary one,
/// and the error says where. (--out is a 16 KiB tmpfs in a mount namespace
/// of the test's own.)
#[test]
#[ignore = "needs root, unshare and qemu-system-x86: a run whose output disk is full"]
fn a_run_whose_output_disk_fills_up_keeps_its_results() {
    require_root();
    require(&[
        (vmbench_testkit::have_qemu(), "qemu-system-x86"),
        (have_tool("unshare"), "util-linux (unshare)"),
    ]);
    let tmp = tempfile::tempdir().unwrap();
    let full = tmp.path().join("full");
    std::fs::create_dir(&full).unwrap();
    let config = vmbench_testkit::micro_run_config(tmp.path(), Some(1));
    let script = format!(
        "mount -t tmpfs -o size=16k tmpfs {full} && {bin} run --accel tcg --quick --config {config} --out {full}/run",
        full = full.display(),
        bin = vmbench().get_program().to_string_lossy(),
        config = config.display()
    );
    let o = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert_eq!(o.status.code(), Some(2), "{err}");
    assert!(err.contains("No space left"), "{err}");
    let saved = err
        .split("the results were saved to ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .map(PathBuf::from)
        .unwrap_or_else(|| panic!("no fallback named: {err}"));
    assert!(saved.is_file(), "{}", saved.display());
    let dir = saved.parent().unwrap().to_path_buf();
    let r = vmbench()
        .args(["report", "render"])
        .arg(&dir)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        r.status.success(),
        "the saved results do not render: {}",
        text(&r)
    );
}
