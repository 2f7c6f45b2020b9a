//! The isolate crate against fixture trees of real host shapes.
#![allow(clippy::unwrap_used)] // test helpers: a failure is the test failing

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use vmbench_host::fixture;
use vmbench_host::{CpuList, SysRoot};
use vmbench_isolate::apply::{apply, restore};
use vmbench_isolate::journal::default_path;
use vmbench_isolate::lock::HostLock;
use vmbench_isolate::model::Change;
use vmbench_isolate::sysfs::FaultySysfs;
use vmbench_isolate::{Audit, AuditOptions, IsolateError, KnobClass, KnobId, Verdict, audit};

fn tree(names: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fixture::load(names, dir.path()).unwrap();
    dir
}

fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fixture::snapshot(dir).unwrap()
}

fn opts(cpus: Option<&str>) -> AuditOptions {
    AuditOptions {
        cpus: cpus.map(|c| CpuList::parse(c).unwrap()),
        noise: vmbench_isolate::osnoise::NoiseSettings::window(Duration::ZERO),
        keep: Default::default(),
        threads: Default::default(),
    }
}

fn knob<'a>(a: &'a Audit, id: &str) -> &'a vmbench_isolate::KnobReport {
    a.knob(id.parse().unwrap())
        .unwrap_or_else(|| panic!("no knob {id}"))
}

fn read(dir: &Path, p: &str) -> String {
    std::fs::read_to_string(dir.join(p.trim_start_matches('/'))).unwrap()
}

#[test]
fn intel_pstate_host_not_isolated() {
    let dir = tree(&["intel-pstate-turbo"]);
    let root = SysRoot::new(dir.path());
    let a = audit(&root, &opts(Some("2-3"))).unwrap();
    assert_eq!(a.cpus.bench, CpuList::from_cpus([2, 3]));
    assert_eq!(a.cpus.housekeeping, CpuList::from_cpus([0, 1]));
    assert_eq!(knob(&a, "isolcpus").verdict, Verdict::Fail);
    assert!(
        knob(&a, "isolcpus")
            .fix
            .as_ref()
            .unwrap()
            .contains("isolcpus=managed_irq,domain,2-3")
    );
    assert_eq!(knob(&a, "nohz_full").verdict, Verdict::Warn);
    let gov = knob(&a, "governor");
    assert_eq!(gov.verdict, Verdict::Fail);
    assert_eq!(gov.changes.len(), 2, "only the benchmark CPUs' governors");
    let turbo = knob(&a, "turbo");
    assert_eq!(turbo.verdict, Verdict::Fail);
    assert_eq!(
        turbo.changes,
        vec![Change::File {
            path: "/sys/devices/system/cpu/intel_pstate/no_turbo".into(),
            original_raw: "0\n".into(),
            original: "0".into(),
            target: "1".into(),
        }]
    );
    assert_eq!(knob(&a, "smt").verdict, Verdict::Warn);
    assert!(
        knob(&a, "smt")
            .found
            .contains("cpu2 shares its core with cpu 0")
    );
    assert_eq!(knob(&a, "irqbalance").verdict, Verdict::Warn);
    assert!(knob(&a, "irqbalance").found.contains("4242"));
    // Its configuration is rewritten to ban the benchmark CPUs; under a
    // fixture root no service is restarted, and the knob says so.
    let irqb = knob(&a, "irqbalance");
    assert!(irqb.blocked.is_empty(), "{:?}", irqb.blocked);
    assert!(
        matches!(&irqb.changes[..], [Change::ServiceConfig { path, target, .. }]
            if path == "/etc/default/irqbalance" && target.contains("\nIRQBALANCE_BANNED_CPULIST=2-3\n")),
        "{:?}",
        irqb.changes
    );
    assert!(
        irqb.notes
            .iter()
            .any(|n| n.contains("no service is restarted"))
    );
    let irq = knob(&a, "irq_affinity");
    assert!(irq.found.starts_with("3 of 4 IRQs"), "{}", irq.found);
    assert!(irq.notes[0].contains("IRQ 24"));
    assert_eq!(knob(&a, "transparent_hugepage").found, "always");
    assert!(
        knob(&a, "cpu_dma_latency")
            .found
            .contains("cpu2: deepest enabled C6 (170 us exit)")
    );
    assert_eq!(knob(&a, "memlock").verdict, Verdict::NotApplicable);
    assert!(
        knob(&a, "runnable_threads")
            .found
            .contains("stress-ng (tid 5151) on cpu3")
    );
    assert_eq!(a.worst(), Verdict::Fail);
}

#[test]
fn isolated_host_defaults_to_its_isolated_cpus() {
    let dir = tree(&["intel-pstate-turbo", "overlay-isolated-2-3"]);
    let a = audit(&SysRoot::new(dir.path()), &opts(None)).unwrap();
    assert_eq!(a.cpus.bench, CpuList::from_cpus([2, 3]));
    assert!(a.cpus.source.contains("isolated"));
    assert_eq!(knob(&a, "isolcpus").verdict, Verdict::Ok);
    assert_eq!(
        knob(&a, "isolcpus").found,
        "isolcpus=managed_irq,domain,2-3"
    );
    assert_eq!(knob(&a, "nohz_full").verdict, Verdict::Ok);
    assert_eq!(knob(&a, "rcu_nocbs").verdict, Verdict::Ok);
    assert!(knob(&a, "rcu_nocbs").found.starts_with("rcu_nocbs=all"));
    assert_eq!(knob(&a, "irqaffinity").verdict, Verdict::Ok);
    // intel_pstate in active mode with nohz_full: the known bad pairing.
    assert_eq!(knob(&a, "cpufreq_driver").verdict, Verdict::Warn);
}

#[test]
fn isolcpus_without_managed_irq_is_a_warning() {
    let dir = tree(&["intel-pstate-turbo", "overlay-isolated-2-3"]);
    std::fs::write(
        dir.path().join("proc/cmdline"),
        "isolcpus=2-3 nohz_full=2-3\n",
    )
    .unwrap();
    let a = audit(&SysRoot::new(dir.path()), &opts(None)).unwrap();
    assert_eq!(knob(&a, "isolcpus").verdict, Verdict::Warn);
    // nohz_full implies RCU offload.
    assert_eq!(knob(&a, "rcu_nocbs").verdict, Verdict::Ok);
}

#[test]
fn acpi_cpufreq_host_uses_global_boost_and_null_nohz_full() {
    let dir = tree(&["acpi-cpufreq"]);
    let a = audit(&SysRoot::new(dir.path()), &opts(None)).unwrap();
    assert_eq!(a.cpus.bench, CpuList::from_cpus([1]));
    assert!(a.cpus.source.contains("last online CPU"));
    assert_eq!(knob(&a, "nohz_full").found, "none (null)");
    let turbo = knob(&a, "turbo");
    assert!(
        matches!(&turbo.changes[0], Change::File { path, target, .. }
        if path == "/sys/devices/system/cpu/cpufreq/boost" && target == "0")
    );
    assert!(knob(&a, "governor").found.contains("cpu1=ondemand"));
    let dir_path = dir.path();
    let root = SysRoot::new(dir_path);
    let applied = apply_at_default(&root, &a, &[]);
    assert_eq!(read(dir_path, "/sys/devices/system/cpu/cpufreq/boost"), "0");
    assert_eq!(
        read(
            dir_path,
            "/sys/devices/system/cpu/cpu1/cpufreq/scaling_governor"
        ),
        "performance"
    );
    assert_eq!(
        read(
            dir_path,
            "/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"
        ),
        "ondemand\n"
    );
    assert_eq!(
        read(
            dir_path,
            "/sys/devices/system/cpu/cpu1/cpufreq/scaling_min_freq"
        ),
        "2401000"
    );
    applied.restore().unwrap();
    assert_eq!(
        read(
            dir_path,
            "/sys/devices/system/cpu/cpu1/cpufreq/scaling_governor"
        ),
        "ondemand\n"
    );
}

#[test]
fn amd_pstate_per_policy_boost_is_turned_off_policy_by_policy() {
    let dir = tree(&["amd-pstate-boost"]);
    let root = SysRoot::new(dir.path());
    let a = audit(&root, &opts(Some("3"))).unwrap();
    assert_eq!(knob(&a, "turbo").changes.len(), 4);
    let before = snapshot(dir.path());
    let applied = apply_at_default(&root, &a, &[]);
    for p in 0..4 {
        assert_eq!(
            read(
                dir.path(),
                &format!("/sys/devices/system/cpu/cpufreq/policy{p}/boost")
            ),
            "0"
        );
    }
    let r = applied.restore().unwrap();
    assert!(r.failed.is_empty());
    assert_eq!(snapshot(dir.path()), before);
}

#[test]
fn vm_without_cpufreq_has_nothing_to_scale() {
    let dir = tree(&["vm-no-cpufreq"]);
    let a = audit(&SysRoot::new(dir.path()), &opts(None)).unwrap();
    for id in ["governor", "min_freq", "turbo", "cpufreq_driver"] {
        assert_eq!(knob(&a, id).verdict, Verdict::NotApplicable, "{id}");
        assert!(knob(&a, id).changes.is_empty());
    }
    assert_eq!(knob(&a, "nohz_full").verdict, Verdict::Warn);
    assert!(knob(&a, "nohz_full").found.contains("CONFIG_NO_HZ_FULL"));
}

#[test]
fn apply_then_restore_is_byte_identical_and_changes_only_what_it_should() {
    let dir = tree(&["intel-pstate-turbo", "overlay-isolated-2-3"]);
    let root = SysRoot::new(dir.path());
    let before = snapshot(dir.path());
    let a = audit(&root, &opts(None)).unwrap();
    // irqbalance cannot be stopped under a fixture root: skip it explicitly.
    let lock = Arc::new(HostLock::acquire(&root, "test").unwrap());
    let applied = apply(
        Arc::new(root.clone()),
        &a,
        &[KnobId::Irqbalance],
        &default_path(&root),
        lock.clone(),
    )
    .unwrap();
    let p = dir.path();
    assert!(default_path(&root).exists(), "journal written");
    assert_eq!(
        read(p, "/sys/devices/system/cpu/cpu2/cpufreq/scaling_governor"),
        "performance"
    );
    assert_eq!(
        read(p, "/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
        "powersave\n"
    );
    assert_eq!(
        read(p, "/sys/devices/system/cpu/cpu3/cpufreq/scaling_min_freq"),
        "3200000"
    );
    assert_eq!(
        read(p, "/sys/devices/system/cpu/intel_pstate/no_turbo"),
        "1"
    );
    assert_eq!(read(p, "/proc/irq/0/smp_affinity_list"), "0-1");
    // IRQ 24 was bound to cpu2 only: it goes to the housekeeping CPUs.
    assert_eq!(read(p, "/proc/irq/24/smp_affinity_list"), "0-1");
    assert_eq!(
        read(p, "/proc/irq/25/smp_affinity_list"),
        "0-1\n",
        "untouched"
    );
    assert_eq!(read(p, "/proc/irq/default_smp_affinity"), "3");
    assert_eq!(read(p, "/sys/devices/virtual/workqueue/cpumask"), "3");
    assert_eq!(read(p, "/proc/sys/kernel/timer_migration"), "0");
    assert_eq!(read(p, "/proc/sys/kernel/sched_rt_runtime_us"), "-1");
    assert_eq!(read(p, "/proc/sys/vm/stat_interval"), "10");
    assert_eq!(
        read(p, "/sys/kernel/mm/transparent_hugepage/enabled"),
        "madvise"
    );
    assert_eq!(read(p, "/sys/kernel/mm/ksm/run"), "0");
    assert!(
        applied.held.cpu_dma_latency.is_none(),
        "nothing held under a fixture root"
    );

    let r = applied.restore().unwrap();
    assert!(r.failed.is_empty(), "{:?}", r.failed);
    assert!(
        !default_path(&root).exists(),
        "journal removed after a full restore"
    );
    assert_eq!(snapshot(dir.path()), before);
    // Idempotent: a second restore has nothing to do.
    assert!(
        restore(&root, &default_path(&root), Some(&lock))
            .unwrap()
            .restored
            .is_empty()
    );
}

#[test]
fn dropping_an_applied_host_restores_it() {
    let dir = tree(&["intel-pstate-turbo"]);
    let root = SysRoot::new(dir.path());
    let before = snapshot(dir.path());
    let a = audit(&root, &opts(Some("3"))).unwrap();
    {
        let _applied = apply_at_default(&root, &a, &[KnobId::Irqbalance]);
        assert_ne!(snapshot(dir.path()), before);
        // e.g. a panic or `?` in the caller
    }
    assert_eq!(snapshot(dir.path()), before);
}

#[test]
fn unmovable_irqs_are_listed_not_fatal() {
    let dir = tree(&["intel-pstate-turbo"]);
    let mut fs = FaultySysfs::new(SysRoot::new(dir.path()));
    fs.write_errors
        .insert("/proc/irq/0/smp_affinity_list".into(), nix::Error::EIO);
    let a = audit(&fs, &opts(Some("2-3"))).unwrap();
    let fs = Arc::new(fs);
    let jp = default_path(fs.root_ref());
    let lock = Arc::new(HostLock::acquire(fs.root_ref(), "test").unwrap());
    let applied = apply(fs.clone(), &a, &[KnobId::Irqbalance], &jp, lock.clone()).unwrap();
    assert_eq!(applied.report.unmovable.len(), 1);
    assert!(applied.report.unmovable[0].contains("/proc/irq/0/"));
    assert_eq!(read(dir.path(), "/proc/irq/1/smp_affinity_list"), "0-1");
    assert_eq!(read(dir.path(), "/proc/irq/0/smp_affinity_list"), "0-3\n");
    let r = applied.restore().unwrap();
    assert!(r.failed.is_empty());
}

#[test]
fn a_failure_mid_apply_rolls_back_everything() {
    let dir = tree(&["intel-pstate-turbo"]);
    let before = snapshot(dir.path());
    let mut fs = FaultySysfs::new(SysRoot::new(dir.path()));
    fs.fail_after = Some(3);
    let a = audit(&fs, &opts(Some("2-3"))).unwrap();
    let fs = Arc::new(fs);
    let jp = default_path(fs.root_ref());
    let lock = Arc::new(HostLock::acquire(fs.root_ref(), "test").unwrap());
    let err = apply(fs.clone(), &a, &[KnobId::Irqbalance], &jp, lock.clone())
        .err()
        .unwrap();
    assert!(matches!(err, IsolateError::ApplyFailed { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("everything already changed was restored"),
        "{err}"
    );
    assert!(matches!(err, IsolateError::ApplyFailed { .. }), "{err:?}");
    assert_eq!(snapshot(dir.path()), before);
}

#[test]
fn missing_privilege_is_check_only_and_changes_nothing() {
    let dir = tree(&["intel-pstate-turbo"]);
    let before = snapshot(dir.path());
    let mut fs = FaultySysfs::new(SysRoot::new(dir.path()));
    fs.not_writable
        .push("/sys/devices/system/cpu/intel_pstate/no_turbo".into());
    let a = audit(&fs, &opts(Some("2-3"))).unwrap();
    let fs = Arc::new(fs);
    assert!(knob(&a, "turbo").blocked[0].contains("run as root"));
    let jp = default_path(fs.root_ref());
    let lock = Arc::new(HostLock::acquire(fs.root_ref(), "test").unwrap());
    let err = apply(fs.clone(), &a, &[KnobId::Irqbalance], &jp, lock.clone())
        .err()
        .unwrap();
    assert!(matches!(err, IsolateError::Blocked(_)));
    assert!(
        err.to_string()
            .contains("turbo: /sys/devices/system/cpu/intel_pstate/no_turbo"),
        "{err}"
    );
    assert!(!matches!(err, IsolateError::ApplyFailed { .. }), "{err:?}");
    assert_eq!(snapshot(dir.path()), before, "no journal, no change");
    // Skipping the blocked knob lets the rest apply.
    let applied = apply(
        fs.clone(),
        &a,
        &[KnobId::Irqbalance, KnobId::Turbo],
        &jp,
        lock.clone(),
    )
    .unwrap();
    applied.restore().unwrap();
}

#[test]
fn unknown_values_and_unknown_knobs_change_nothing() {
    let dir = tree(&["intel-pstate-turbo"]);
    std::fs::write(
        dir.path()
            .join("sys/devices/system/cpu/intel_pstate/no_turbo"),
        "2\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("sys/kernel/mm/ksm/run"), "yes\n").unwrap();
    let before = snapshot(dir.path());
    let root = SysRoot::new(dir.path());
    let a = audit(&root, &opts(Some("2-3"))).unwrap();
    let lock = Arc::new(HostLock::acquire(&root, "test").unwrap());
    let err = apply(
        Arc::new(root.clone()),
        &a,
        &[KnobId::Irqbalance],
        &default_path(&root),
        lock.clone(),
    )
    .err()
    .unwrap();
    let msg = err.to_string();
    assert!(
        msg.contains("turbo:") && msg.contains("\"2\"") && msg.contains("ksm:"),
        "{msg}"
    );
    assert!(!matches!(err, IsolateError::ApplyFailed { .. }), "{err:?}");
    let err = apply(
        Arc::new(root.clone()),
        &a,
        &[KnobId::Isolcpus],
        &default_path(&root),
        lock.clone(),
    )
    .err()
    .unwrap();
    assert!(
        err.to_string()
            .contains("--skip: isolcpus not runtime knob(s)"),
        "{err}"
    );
    assert_eq!(snapshot(dir.path()), before);
}

#[test]
fn an_unrestored_journal_blocks_the_next_apply() {
    let dir = tree(&["intel-pstate-turbo"]);
    let root = SysRoot::new(dir.path());
    let a = audit(&root, &opts(Some("2-3"))).unwrap();
    let lock = Arc::new(HostLock::acquire(&root, "test").unwrap());
    let first = apply(
        Arc::new(root.clone()),
        &a,
        &[KnobId::Irqbalance],
        &default_path(&root),
        lock.clone(),
    )
    .unwrap();
    let _ = first.keep();
    let a2 = audit(&root, &opts(Some("2-3"))).unwrap();
    let err = apply(
        Arc::new(root.clone()),
        &a2,
        &[KnobId::Irqbalance],
        &default_path(&root),
        lock.clone(),
    )
    .err()
    .unwrap();
    assert!(matches!(err, IsolateError::Unrestored { .. }));
    assert!(err.to_string().contains("vmbench isolate restore"));
    restore(&root, &default_path(&root), Some(&lock)).unwrap();
}

#[test]
fn bad_cpu_selections_are_usage_errors() {
    let dir = tree(&["intel-pstate-turbo"]);
    let root = SysRoot::new(dir.path());
    for (cpus, msg) in [("7", "not online"), ("0-3", "leave at least one")] {
        let err = audit(&root, &opts(Some(cpus))).err().unwrap();
        assert!(err.to_string().contains(msg), "{err}");
        assert!(!matches!(err, IsolateError::ApplyFailed { .. }), "{err:?}");
    }
}

/// A journal as a planted file would read: `entries` as (knob, change JSON).
fn planted_journal(root: &SysRoot, path: &Path, entries: &[(&str, serde_json::Value)]) {
    let entries: Vec<serde_json::Value> = entries
        .iter()
        .map(|(knob, change)| serde_json::json!({"knob": knob, "change": change}))
        .collect();
    let j = serde_json::json!({
        "schema_version": vmbench_isolate::journal::JOURNAL_SCHEMA_VERSION,
        "pid": 4_194_305u32,
        "created_unix": 0,
        "root": root.root().display().to_string(),
        "bench_cpus": "3",
        "entries": entries,
    });
    std::fs::write(path, serde_json::to_string(&j).unwrap()).unwrap();
}

#[test]
fn a_journal_naming_files_or_units_no_knob_touches_restores_nothing() {
    let dir = tree(&["intel-pstate-turbo"]);
    let root = SysRoot::new(dir.path());
    let lock = Arc::new(HostLock::acquire(&root, "test").unwrap());
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("authorized_keys");
    std::fs::write(&victim, "ssh-ed25519 AAAA mine\n").unwrap();
    let before = snapshot(dir.path());
    let jp = outside.path().join("journal.json");
    let file = |path: &str| {
        serde_json::json!({"kind": "file", "path": path, "original_raw": "pwned\n",
            "original": "pwned", "target": "0"})
    };
    for (knob, change) in [
        ("watchdog", file(&victim.display().to_string())),
        (
            "irq_affinity",
            file("/proc/irq/../../../../root/.ssh/authorized_keys"),
        ),
        ("made_up", file("/proc/sys/kernel/watchdog")),
        (
            "irqbalance",
            serde_json::json!({"kind": "stop_service", "unit": "--version"}),
        ),
        (
            "irqbalance",
            serde_json::json!({"kind": "stop_service", "unit": "sshd.service"}),
        ),
    ] {
        // A valid entry first: the journal is refused whole, not in part.
        planted_journal(
            &root,
            &jp,
            &[
                ("watchdog", file("/proc/sys/kernel/watchdog")),
                (knob, change.clone()),
            ],
        );
        let err = restore(&root, &jp, Some(&lock)).unwrap_err();
        if knob == "made_up" {
            // No such knob: the journal does not even parse.
            assert!(
                err.to_string()
                    .contains("not a vmbench journal (unknown variant `made_up`"),
                "{err}"
            );
        } else {
            assert!(
                matches!(err, IsolateError::UntrustedJournal { .. }),
                "{knob} {change}: {err}"
            );
            assert!(err.to_string().contains("Nothing was restored"), "{err}");
        }
        assert!(
            snapshot(dir.path()) == before,
            "{knob} {change}: the tree changed"
        );
    }
    assert_eq!(
        std::fs::read_to_string(&victim).unwrap(),
        "ssh-ed25519 AAAA mine\n"
    );
}

#[test]
fn a_link_under_the_root_that_leads_out_is_not_written_through() {
    let dir = tree(&["intel-pstate-turbo"]);
    let root = SysRoot::new(dir.path());
    let lock = Arc::new(HostLock::acquire(&root, "test").unwrap());
    let outside = tempfile::tempdir().unwrap();
    let victim = outside.path().join("victim");
    std::fs::write(&victim, "precious\n").unwrap();
    let irq = dir.path().join("proc/irq/0/smp_affinity_list");
    std::fs::remove_file(&irq).unwrap();
    std::os::unix::fs::symlink(&victim, &irq).unwrap();
    let jp = dir.path().join("journal.json");
    planted_journal(
        &root,
        &jp,
        &[(
            "irq_affinity",
            serde_json::json!({"kind": "file", "path": "/proc/irq/0/smp_affinity_list",
                "original_raw": "0-3\n", "original": "0-3", "target": "0-1"}),
        )],
    );
    let r = restore(&root, &jp, Some(&lock)).unwrap();
    assert_eq!(r.failed.len(), 1, "{r:?}");
    assert!(
        r.failed[0].error.contains("refusing to write there"),
        "{r:?}"
    );
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
}

#[test]
fn a_journal_others_could_write_or_own_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tree(&["intel-pstate-turbo"]);
    let root = SysRoot::new(dir.path());
    let lock = Arc::new(HostLock::acquire(&root, "test").unwrap());
    let jp = dir.path().join("journal.json");
    let entry = serde_json::json!({"kind": "file", "path": "/proc/sys/kernel/watchdog",
        "original_raw": "1\n", "original": "1", "target": "0"});
    planted_journal(&root, &jp, &[("watchdog", entry.clone())]);
    std::fs::set_permissions(&jp, std::fs::Permissions::from_mode(0o666)).unwrap();
    let err = restore(&root, &jp, Some(&lock)).unwrap_err();
    assert!(
        err.to_string().contains("writable by group or others"),
        "{err}"
    );
    if nix::unistd::geteuid().is_root() {
        std::fs::set_permissions(&jp, std::fs::Permissions::from_mode(0o600)).unwrap();
        nix::unistd::chown(&jp, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
        let err = restore(&root, &jp, Some(&lock)).unwrap_err();
        assert!(err.to_string().contains("owned by uid 65534"), "{err}");
    }
    // Written for another root: refused, with the root to use.
    std::fs::remove_file(&jp).unwrap();
    planted_journal(&SysRoot::new("/"), &jp, &[("watchdog", entry)]);
    let err = restore(&root, &jp, Some(&lock)).unwrap_err();
    assert!(
        err.to_string().contains("restore it with --root /"),
        "{err}"
    );
}

#[test]
fn a_second_journal_cannot_stack_changes_on_a_tuned_host() {
    let dir = tree(&["intel-pstate-turbo"]);
    let root = SysRoot::new(dir.path());
    let before = snapshot(dir.path());
    let lock = Arc::new(HostLock::acquire(&root, "test").unwrap());
    let a = audit(&root, &opts(Some("3"))).unwrap();
    let b = audit(&root, &opts(Some("2"))).unwrap();
    let journals = tempfile::tempdir().unwrap();
    let ja = journals.path().join("a.json");
    let jb = journals.path().join("b.json");
    apply(
        Arc::new(root.clone()),
        &a,
        &[KnobId::Irqbalance],
        &ja,
        lock.clone(),
    )
    .unwrap()
    .keep();
    let err = apply(
        Arc::new(root.clone()),
        &b,
        &[KnobId::Irqbalance],
        &jb,
        lock.clone(),
    )
    .err()
    .unwrap();
    assert!(matches!(err, IsolateError::AnotherJournal { .. }), "{err}");
    assert!(err.to_string().contains("a.json"), "{err}");
    assert!(!jb.exists());
    restore(&root, &ja, Some(&lock)).unwrap();
    assert!(snapshot(dir.path()) == before, "not restored");
    // Restored: the next apply with another journal is fine.
    apply(
        Arc::new(root.clone()),
        &b,
        &[KnobId::Irqbalance],
        &jb,
        lock.clone(),
    )
    .unwrap()
    .restore()
    .unwrap();
    assert!(snapshot(dir.path()) == before, "not restored");
}

#[test]
fn every_change_an_audit_plans_is_one_a_restore_accepts() {
    for names in [
        &["intel-pstate-turbo", "overlay-isolated-2-3"][..],
        &["acpi-cpufreq"][..],
        &["amd-pstate-boost"][..],
    ] {
        let dir = tree(names);
        let a = audit(&SysRoot::new(dir.path()), &opts(None)).unwrap();
        for k in &a.knobs {
            for c in &k.changes {
                assert_eq!(
                    vmbench_isolate::trust::check_change(k.id, c),
                    Ok(()),
                    "{names:?} {}",
                    k.id
                );
            }
        }
    }
}

/// What tuned's cpu-partitioning sets beyond the core knobs: every
/// workqueue's mask, the machine-check poll, hung-task checks, irqbalance's
/// banned CPUs, systemd's CPUAffinity, and the threads already running.
/// Apply changes exactly those, restore puts every byte back (the moved
/// threads' affinities included).
#[test]
fn cpu_partitioning_knobs_apply_and_restore_byte_identical() {
    for (trees, cpus) in [
        (&["intel-pstate-turbo", "overlay-isolated-2-3"][..], None),
        (&["amd-pstate-boost"][..], Some("3")),
    ] {
        let dir = tree(trees);
        let root = SysRoot::new(dir.path());
        let p = dir.path();
        let before = snapshot(p);
        let a = audit(&root, &opts(cpus)).unwrap();
        let intel = trees[0].starts_with("intel");
        let wq = knob(&a, "workqueue_cpumask");
        let wq_paths: Vec<&str> = wq
            .changes
            .iter()
            .filter_map(|c| match c {
                Change::File { path, .. } => Some(path.as_str()),
                _ => None,
            })
            .collect();
        assert!(
            wq_paths.contains(&"/sys/devices/virtual/workqueue/writeback/cpumask"),
            "{wq_paths:?}"
        );
        assert_eq!(knob(&a, "machinecheck_ignore_ce").changes.len(), 4);
        let hung = knob(&a, "hung_task_timeout_secs");
        // 120 s is raised to 600; 0 (off) is already fine.
        assert_eq!(
            hung.verdict,
            if intel { Verdict::Warn } else { Verdict::Ok },
            "{}",
            hung.found
        );
        let systemd = knob(&a, "systemd_cpu_affinity");
        assert_eq!(systemd.class, KnobClass::BootOnly);
        if intel {
            assert_eq!(systemd.verdict, Verdict::Warn);
            assert!(systemd.fix.as_ref().unwrap().contains("CPUAffinity=0-1"));
        } else {
            assert_eq!(systemd.verdict, Verdict::Ok, "{}", systemd.found);
        }
        let threads = knob(&a, "thread_affinity");
        assert_eq!(threads.verdict, Verdict::Warn);
        let moved: Vec<(u32, &str)> = threads
            .changes
            .iter()
            .filter_map(|c| match c {
                Change::Affinity { tid, target, .. } => Some((*tid, target.as_str())),
                _ => None,
            })
            .collect();
        if intel {
            // The kthread the kernel pins (ksoftirqd/2, tid 30) stays.
            assert_eq!(
                moved,
                [
                    (1, "0-1"),
                    (20, "0-1"),
                    (4242, "0-1"),
                    (5151, "0-1"),
                    (6000, "0-1"),
                    (6001, "0-1")
                ]
            );
            assert!(
                threads.found.contains("1 per-CPU kernel threads stay"),
                "{}",
                threads.found
            );
        } else {
            // systemd (0-2) never runs on cpu3; migration/3 is the kernel's.
            assert_eq!(moved, [(7100, "0-2"), (7104, "0-2")]);
        }

        let applied = apply_at_default(&root, &a, &[]);
        assert_eq!(applied.report.threads_gone, 0);
        let hk = if intel { "3" } else { "7" };
        assert_eq!(
            read(p, "/sys/devices/virtual/workqueue/writeback/cpumask"),
            hk
        );
        assert_eq!(
            read(
                p,
                "/sys/devices/system/machinecheck/machinecheck2/ignore_ce"
            ),
            "1"
        );
        if intel {
            assert_eq!(read(p, "/proc/sys/kernel/hung_task_timeout_secs"), "600");
            assert_eq!(
                read(p, "/sys/devices/virtual/workqueue/blkcg_punt_bio/cpumask"),
                hk
            );
            // irqbalance's version is unknown here: both variables are set.
            let config = read(p, "/etc/default/irqbalance");
            assert!(
                config.contains("\nIRQBALANCE_BANNED_CPULIST=2-3\n")
                    && config.ends_with("\nIRQBALANCE_BANNED_CPUS=c\n"),
                "{config}"
            );
            assert!(read(p, "/proc/6000/task/6001/status").contains("Cpus_allowed_list:\t0-1\n"));
            assert!(
                read(p, "/proc/30/task/30/status").contains("Cpus_allowed_list:\t2\n"),
                "untouched"
            );
        } else {
            assert!(read(p, "/proc/7100/task/7104/status").contains("Cpus_allowed_list:\t0-2\n"));
            assert!(
                read(p, "/proc/1/task/1/status").contains("Cpus_allowed_list:\t0-2\n"),
                "untouched"
            );
        }
        let r = applied.restore().unwrap();
        assert!(r.failed.is_empty(), "{:?}", r.failed);
        assert_eq!(r.threads_gone, 0);
        assert_eq!(
            snapshot(p),
            before,
            "{}: not byte-identical after restore",
            trees[0]
        );
    }
}

/// A moved thread that exits before the restore is skipped and counted; a
/// tid the kernel reused for another thread (another start time) is never
/// touched.
#[test]
fn threads_that_exit_or_are_replaced_are_skipped_and_counted() {
    let dir = tree(&["intel-pstate-turbo", "overlay-isolated-2-3"]);
    let root = SysRoot::new(dir.path());
    let p = dir.path();
    let a = audit(&root, &opts(None)).unwrap();
    let applied = apply_at_default(&root, &a, &[]);
    // postgres' walwriter exits; stress-ng's tid now names another thread.
    std::fs::remove_dir_all(p.join("proc/6000/task/6001")).unwrap();
    let stat = p.join("proc/5151/task/5151/stat");
    let text = std::fs::read_to_string(&stat)
        .unwrap()
        .replace(" 0 9 10 ", " 0 99 10 ");
    std::fs::write(&stat, text).unwrap();
    let r = applied.restore().unwrap();
    assert!(r.failed.is_empty(), "{:?}", r.failed);
    assert_eq!(r.threads_gone, 2);
    assert!(
        read(p, "/proc/5151/task/5151/status").contains("Cpus_allowed_list:\t0-1\n"),
        "a stranger is left alone"
    );
    assert!(
        read(p, "/proc/6000/task/6000/status").contains("Cpus_allowed_list:\t0-3\n"),
        "the rest is restored"
    );
}

/// `vmbench isolate restore`'s policy: while a vmbench holds the host it
/// restores the host itself, so a restore is refused unless forced; a
/// restore of a path with no journal names the journal of the host's live
/// changes.
#[test]
fn a_restore_waits_for_the_holder_unless_forced_and_names_a_live_journal_elsewhere() {
    use vmbench_isolate::hold::{Restore, RestoreLock};
    let dir = tree(&["intel-pstate-turbo"]);
    let root = SysRoot::new(dir.path());
    let before = snapshot(dir.path());
    let a = audit(&root, &opts(Some("3"))).unwrap();
    let jp = default_path(&root);
    let lock = Arc::new(HostLock::acquire(&root, "holder").unwrap());
    let applied = apply(
        Arc::new(root.clone()),
        &a,
        &[KnobId::Irqbalance],
        &jp,
        lock.clone(),
    )
    .unwrap();
    let tuned = snapshot(dir.path());
    assert_ne!(tuned, before);

    let err = RestoreLock::take(&root, "restore", false).unwrap_err();
    assert!(
        matches!(err, IsolateError::RestoreWhileHeld { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("holder") && err.to_string().contains("--force"));
    let forced = RestoreLock::take(&root, "restore", true).unwrap();
    assert!(matches!(forced, RestoreLock::Forced { ref holder, .. } if holder.contains("holder")));
    assert_eq!(snapshot(dir.path()), tuned, "nothing restored by asking");

    // The holder leaves the host tuned and ends.
    applied.keep();
    drop(lock);
    let ours = RestoreLock::take(&root, "restore", false).unwrap();
    assert!(matches!(ours, RestoreLock::Held(_)));
    match ours
        .restore(&root, &dir.path().join("elsewhere.json"))
        .unwrap()
    {
        Restore::NoJournal { live_elsewhere } => {
            assert_eq!(live_elsewhere, Some(std::path::absolute(&jp).unwrap()))
        }
        Restore::Done(r) => panic!("restored from no journal: {r:?}"),
    }
    match ours.restore(&root, &jp).unwrap() {
        Restore::Done(r) => assert!(r.failed.is_empty(), "{r:?}"),
        Restore::NoJournal { .. } => panic!("the journal is there"),
    }
    assert_eq!(snapshot(dir.path()), before);
}

/// Applies `a` to `root` under a fresh host lock, journaled at the default path.
fn apply_at_default(root: &SysRoot, a: &Audit, skip: &[KnobId]) -> vmbench_isolate::apply::Applied {
    let lock = Arc::new(HostLock::acquire(root, "test").unwrap());
    apply(Arc::new(root.clone()), a, skip, &default_path(root), lock).unwrap()
}

/// Writes a task into a fixture tree: `stat` with its parent and start
/// time, `status` with its affinity.
fn plant_task(p: &Path, pid: u32, tid: u32, ppid: u32, start: u64, cpus: &str) {
    plant_named(p, pid, tid, "child", ppid, start, cpus);
}

fn plant_named(p: &Path, pid: u32, tid: u32, comm: &str, ppid: u32, start: u64, cpus: &str) {
    let dir = p.join(format!("proc/{pid}/task/{tid}"));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("stat"),
        format!(
            "{tid} ({comm}) S {ppid} {pid} {pid} 0 -1 4194560 1 2 3 4 5 6 7 8 20 0 1 0 {start} 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 0 0 0 0\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("status"),
        format!("Name:\t{comm}\nCpus_allowed_list:\t{cpus}\n"),
    )
    .unwrap();
}

fn allowed(p: &Path, pid: u32, tid: u32) -> String {
    read(p, &format!("/proc/{pid}/task/{tid}/status"))
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:\t"))
        .unwrap()
        .to_string()
}

/// fork() and clone() copy the mask apply gave a process: after apply →
/// a moved process forks (and its child forks, and it starts a thread) →
/// restore, no task is left on a mask isolation imposed. A task placed
/// deliberately (another mask), one that descends from a process that was
/// never moved, and one older than the apply are left alone.
#[test]
fn tasks_forked_from_moved_processes_are_widened_on_restore() {
    let dir = tree(&["intel-pstate-turbo", "overlay-isolated-2-3"]);
    let root = SysRoot::new(dir.path());
    let p = dir.path();
    // 60 s after boot: 6000 ticks (USER_HZ); every fixture task is older.
    std::fs::write(p.join("proc/uptime"), "60.00 100.00\n").unwrap();
    let a = audit(&root, &opts(None)).unwrap();
    let applied = apply_at_default(&root, &a, &[]);
    assert_eq!(allowed(p, 6000, 6000), "0-1", "postgres was moved");
    assert_eq!(allowed(p, 5151, 5151), "0-1", "stress-ng was moved");
    plant_task(p, 7000, 7000, 6000, 6100, "0-1"); // postgres' child
    plant_task(p, 7001, 7001, 7000, 6150, "0-1"); // its grandchild
    plant_task(p, 6000, 6002, 1, 6200, "0-1"); // a new postgres thread
    plant_task(p, 7002, 7002, 5151, 6100, "0-1"); // stress-ng's child
    plant_task(p, 7003, 7003, 6000, 6100, "0"); // pinned on purpose
    plant_task(p, 7004, 7004, 2, 6100, "0-1"); // kthreadd's: never moved
    plant_task(p, 7005, 7005, 6000, 100, "0-1"); // older than the apply
    let r = applied.restore().unwrap();
    assert!(r.failed.is_empty(), "{:?}", r.failed);
    for (pid, tid, want) in [
        (7000, 7000, "0-3"),
        (7001, 7001, "0-3"),
        (6000, 6002, "0-3"),
        (7002, 7002, "3"),
        (7003, 7003, "0"),
        (7004, 7004, "0-1"),
        (7005, 7005, "0-1"),
    ] {
        assert_eq!(allowed(p, pid, tid), want, "task {pid}/{tid}");
    }
    let widened: Vec<(u32, u32)> = r.inherited.iter().map(|m| (m.tid, m.ancestor)).collect();
    assert_eq!(
        widened,
        [(6002, 6000), (7000, 6000), (7001, 6000), (7002, 5151)]
    );
    assert_eq!(
        allowed(p, 6000, 6000),
        "0-3",
        "the journaled thread is back"
    );
}

/// irqbalance restarted to read its new banned list is a new process the
/// audit never saw: apply journals and moves its threads after the
/// restart, and restore puts them back.
#[test]
fn a_service_restarted_by_apply_has_its_new_threads_moved() {
    let dir = tree(&["intel-pstate-turbo", "overlay-isolated-2-3"]);
    let root = SysRoot::new(dir.path());
    let p = dir.path();
    std::fs::write(p.join("proc/uptime"), "0.05 0.10\n").unwrap();
    let a = audit(&root, &opts(None)).unwrap();
    assert!(
        knob(&a, "irqbalance")
            .changes
            .iter()
            .any(|c| matches!(c, Change::ServiceConfig { .. }))
    );
    // The restarted daemon, as it is once the restart is done (a fixture
    // restarts nothing; its process appears after the audit).
    plant_task(p, 4300, 4300, 1, 50, "0-3");
    std::fs::write(p.join("proc/4300/comm"), "irqbalance\n").unwrap();
    let applied = apply_at_default(&root, &a, &[]);
    assert_eq!(allowed(p, 4300, 4300), "0-1");
    let r = applied.restore().unwrap();
    assert!(r.failed.is_empty(), "{:?}", r.failed);
    assert_eq!(allowed(p, 4300, 4300), "0-3");
    // Skipping thread_affinity skips the rescan too.
    let a = audit(&root, &opts(None)).unwrap();
    let applied = apply_at_default(&root, &a, &[KnobId::ThreadAffinity]);
    assert_eq!(allowed(p, 4300, 4300), "0-3");
    applied.restore().unwrap();
}

/// The knobs pyperf and tuned's KVM profiles check beyond the core ones:
/// each is audited with a verdict; the runtime ones are applied and
/// restored byte for byte; the KVM module parameters and the power source
/// are only advised.
#[test]
fn kvm_parameters_power_and_energy_knobs_are_audited_and_the_runtime_ones_restored() {
    let dir = tree(&["intel-pstate-turbo", "overlay-isolated-2-3"]);
    let root = SysRoot::new(dir.path());
    let p = dir.path();
    let put = |path: &str, text: &str| {
        let f = p.join(path.trim_start_matches('/'));
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(f, text).unwrap();
    };
    put("/sys/module/kvm/parameters/nx_huge_pages", "Y\n");
    put("/sys/module/kvm/parameters/kvmclock_periodic_sync", "Y\n");
    put("/sys/module/kvm_intel/parameters/ple_gap", "128\n");
    put(
        "/sys/devices/system/cpu/vulnerabilities/itlb_multihit",
        "Not affected\n",
    );
    put("/sys/class/power_supply/AC/type", "Mains\n");
    put("/sys/class/power_supply/AC/online", "0\n");
    put("/sys/class/power_supply/BAT0/type", "Battery\n");
    put("/proc/sys/kernel/perf_event_max_sample_rate", "100000\n");
    put("/proc/sys/kernel/randomize_va_space", "0\n");
    // cpu2 already runs the performance governor: its preference is written;
    // cpu3's comes with the governor change.
    put(
        "/sys/devices/system/cpu/cpu2/cpufreq/scaling_governor",
        "performance\n",
    );
    for cpu in [2, 3] {
        put(
            &format!("/sys/devices/system/cpu/cpu{cpu}/cpufreq/energy_performance_preference"),
            "balance_performance\n",
        );
        put(
            &format!("/sys/devices/system/cpu/cpu{cpu}/power/energy_perf_bias"),
            "6\n",
        );
    }
    put("/proc/9000/comm", "ksmtuned\n");
    let before = snapshot(p);
    let a = audit(&root, &opts(None)).unwrap();
    for (id, verdict, changes) in [
        ("nx_huge_pages", Verdict::Warn, 0),
        ("ple_gap", Verdict::Warn, 0),
        ("kvmclock_periodic_sync", Verdict::Warn, 0),
        ("power_supply", Verdict::Warn, 0),
        ("perf_event_max_sample_rate", Verdict::Warn, 1),
        ("randomize_va_space", Verdict::Warn, 1),
        ("energy_performance_preference", Verdict::Warn, 1),
        ("energy_perf_bias", Verdict::Warn, 2),
        ("ksmtuned", Verdict::Warn, 1),
    ] {
        let k = knob(&a, id);
        assert_eq!(
            (k.verdict, k.changes.len()),
            (verdict, changes),
            "{id}: {k:?}"
        );
    }
    let nx = knob(&a, "nx_huge_pages");
    assert!(
        nx.fix.as_ref().unwrap().contains("costs no protection"),
        "{nx:?}"
    );
    assert!(
        knob(&a, "ple_gap")
            .fix
            .as_ref()
            .unwrap()
            .contains("kvm_intel.ple_gap=0")
    );
    assert_eq!(knob(&a, "power_supply").class, KnobClass::Hardware);
    assert!(
        !knob(&a, "ksmtuned").blocked.is_empty(),
        "services stop only on the host"
    );
    // ksmtuned is the one change a fixture cannot make.
    let applied = apply_at_default(&root, &a, &[KnobId::Ksmtuned]);
    assert_eq!(read(p, "/proc/sys/kernel/perf_event_max_sample_rate"), "1");
    assert_eq!(read(p, "/proc/sys/kernel/randomize_va_space"), "2");
    assert_eq!(
        read(
            p,
            "/sys/devices/system/cpu/cpu2/cpufreq/energy_performance_preference"
        ),
        "performance"
    );
    assert_eq!(
        read(p, "/sys/devices/system/cpu/cpu3/power/energy_perf_bias"),
        "0"
    );
    let r = applied.restore().unwrap();
    assert!(r.failed.is_empty(), "{:?}", r.failed);
    assert_eq!(snapshot(p), before, "not byte-identical after restore");
    // A machine on mains, with the vendor parameters as wanted, is fine.
    put("/sys/class/power_supply/AC/online", "1\n");
    put("/sys/module/kvm_intel/parameters/ple_gap", "0\n");
    put("/sys/module/kvm/parameters/nx_huge_pages", "never\n");
    let a = audit(&root, &opts(None)).unwrap();
    for id in ["power_supply", "ple_gap", "nx_huge_pages"] {
        assert_eq!(knob(&a, id).verdict, Verdict::Ok, "{id}");
    }
    // With perf's throttling off the kernel refuses the sample rate (EINVAL):
    // nothing is planned that apply could not make.
    put("/proc/sys/kernel/perf_cpu_time_max_percent", "0\n");
    let a = audit(&root, &opts(None)).unwrap();
    let rate = knob(&a, "perf_event_max_sample_rate");
    assert_eq!(
        (rate.verdict, rate.changes.len()),
        (Verdict::Warn, 0),
        "{rate:?}"
    );
    assert!(rate.notes[0].contains("refuses"), "{rate:?}");
}

fn dpkg_irqbalance(p: &Path, version: &str) {
    std::fs::create_dir_all(p.join("var/lib/dpkg")).unwrap();
    std::fs::write(
        p.join("var/lib/dpkg/status"),
        format!(
            "Package: adduser\nStatus: install ok installed\nVersion: 3.134\n\nPackage: irqbalance\nStatus: install ok installed\nPriority: optional\nVersion: {version}\n"
        ),
    )
    .unwrap();
}

/// The irqbalance change an audit plans: None when it plans none.
fn irqbalance_target(a: &Audit) -> Option<String> {
    knob(a, "irqbalance").changes.iter().find_map(|c| match c {
        Change::ServiceConfig { target, .. } => Some(target.clone()),
        _ => None,
    })
}

/// irqbalance as tuned leaves it: the benchmark CPUs banned on top of what
/// it already bans, in the variable this version reads, in the file its
/// unit reads; nothing rewritten where its automatic ban already covers
/// them.
#[test]
fn irqbalance_bans_on_top_of_what_it_bans_in_the_variable_its_version_reads() {
    const CONFIG: &str = "etc/default/irqbalance";
    // An isolcpus=2-3 host with irqbalance 1.9: it bans 2-3 by itself.
    let dir = tree(&["intel-pstate-turbo", "overlay-isolated-2-3"]);
    let root = SysRoot::new(dir.path());
    let p = dir.path();
    dpkg_irqbalance(p, "1.9.4-1");
    let a = audit(&root, &opts(Some("3"))).unwrap();
    let k = knob(&a, "irqbalance");
    assert_eq!((k.verdict, k.changes.len()), (Verdict::Ok, 0), "{k:?}");
    assert!(
        k.found
            .contains("bans the isolated and nohz_full CPUs itself"),
        "{}",
        k.found
    );
    // A benchmark CPU outside the isolated set: the list keeps 2-3 banned.
    let a = audit(&root, &opts(Some("1"))).unwrap();
    let t = irqbalance_target(&a).unwrap();
    assert!(t.ends_with("\nIRQBALANCE_BANNED_CPULIST=1-3\n"), "{t}");
    assert!(
        !t.contains("IRQBALANCE_BANNED_CPUS="),
        "1.9 reads the list: {t}"
    );

    // A legacy mask, read first: with the list already covering 2-3 the
    // old code said ok while irqbalance banned only CPU 3.
    let dir = tree(&["intel-pstate-turbo"]);
    let root = SysRoot::new(dir.path());
    let p = dir.path();
    dpkg_irqbalance(p, "1.9.4-1");
    std::fs::write(
        p.join(CONFIG),
        "IRQBALANCE_BANNED_CPUS=8\nIRQBALANCE_BANNED_CPULIST=2-3\n",
    )
    .unwrap();
    let a = audit(&root, &opts(Some("2-3"))).unwrap();
    assert_eq!(knob(&a, "irqbalance").verdict, Verdict::Warn);
    let t = irqbalance_target(&a).unwrap();
    assert_eq!(assignment(&t, "IRQBALANCE_BANNED_CPUS"), Some("c"), "{t}");
    assert_eq!(
        assignment(&t, "IRQBALANCE_BANNED_CPULIST"),
        Some("2-3"),
        "{t}"
    );

    // irqbalance 1.7 ignores the list: the mask is what bans.
    dpkg_irqbalance(p, "1.7.0-3");
    std::fs::write(p.join(CONFIG), "IRQBALANCE_BANNED_CPULIST=2-3\n").unwrap();
    let a = audit(&root, &opts(Some("2-3"))).unwrap();
    let k = knob(&a, "irqbalance");
    assert_eq!(k.verdict, Verdict::Warn, "{k:?}");
    assert!(k.found.contains("before 1.8 ignores"), "{}", k.found);
    let t = irqbalance_target(&a).unwrap();
    assert_eq!(assignment(&t, "IRQBALANCE_BANNED_CPUS"), Some("c"), "{t}");
    assert_eq!(
        assignment(&t, "IRQBALANCE_BANNED_CPULIST"),
        Some("2-3"),
        "untouched: {t}"
    );

    // The unit reads another file than the one that exists: nothing is
    // rewritten that irqbalance would not read; it is stopped instead.
    dpkg_irqbalance(p, "1.9.4-1");
    std::fs::create_dir_all(p.join("lib/systemd/system")).unwrap();
    std::fs::write(
        p.join("lib/systemd/system/irqbalance.service"),
        "[Service]\nEnvironmentFile=-/etc/sysconfig/irqbalance\nExecStart=/usr/sbin/irqbalance --foreground\n",
    )
    .unwrap();
    let a = audit(&root, &opts(Some("2-3"))).unwrap();
    let k = knob(&a, "irqbalance");
    assert!(
        matches!(k.changes[..], [Change::StopService { .. }]),
        "{k:?}"
    );
    assert!(
        k.notes.iter().any(|n| n.contains("EnvironmentFile")),
        "{k:?}"
    );
    // A drop-in pointing it at /etc/default/irqbalance makes it the file.
    std::fs::write(p.join(CONFIG), "#IRQBALANCE_BANNED_CPULIST=\n").unwrap();
    std::fs::create_dir_all(p.join("etc/systemd/system/irqbalance.service.d")).unwrap();
    std::fs::write(
        p.join("etc/systemd/system/irqbalance.service.d/env.conf"),
        "[Service]\nEnvironmentFile=\nEnvironmentFile=/etc/default/irqbalance\n",
    )
    .unwrap();
    let a = audit(&root, &opts(Some("2-3"))).unwrap();
    assert!(
        irqbalance_target(&a).is_some(),
        "{:?}",
        knob(&a, "irqbalance")
    );
}

fn assignment<'a>(config: &'a str, var: &str) -> Option<&'a str> {
    vmbench_isolate::knobs::irqbalance::assignment(config, var)
}

/// The configuration is rewritten in place: after apply and restore it is
/// the same inode (its hard links, owner, group, mode and extended
/// attributes with it), byte for byte, and no temporary file is left. An
/// edit someone made while the host was isolated is kept; only the banned
/// variables go back.
#[test]
fn the_irqbalance_configuration_keeps_its_inode_and_an_edit_made_meanwhile() {
    use std::os::unix::fs::MetadataExt;
    let dir = tree(&["intel-pstate-turbo", "overlay-isolated-2-3"]);
    let root = SysRoot::new(dir.path());
    let p = dir.path();
    let config = p.join("etc/default/irqbalance");
    std::fs::hard_link(&config, p.join("etc/irqbalance.link")).unwrap();
    let before = std::fs::metadata(&config).unwrap();
    let original = std::fs::read_to_string(&config).unwrap();
    let only_irqbalance: Vec<KnobId> = vmbench_isolate::catalogue::runtime_ids()
        .filter(|k| *k != KnobId::Irqbalance)
        .collect();
    let a = audit(&root, &opts(None)).unwrap();
    let applied = apply_at_default(&root, &a, &only_irqbalance);
    let during = std::fs::metadata(&config).unwrap();
    assert_eq!((during.ino(), during.nlink()), (before.ino(), 2));
    assert_ne!(std::fs::read_to_string(&config).unwrap(), original);
    let r = applied.restore().unwrap();
    assert!(r.failed.is_empty(), "{:?}", r.failed);
    let after = std::fs::metadata(&config).unwrap();
    assert_eq!(
        (
            after.ino(),
            after.nlink(),
            after.uid(),
            after.gid(),
            after.mode()
        ),
        (before.ino(), 2, before.uid(), before.gid(), before.mode())
    );
    assert_eq!(
        std::fs::read_to_string(p.join("etc/irqbalance.link")).unwrap(),
        original
    );
    let leftovers: Vec<_> = std::fs::read_dir(p.join("etc/default"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers.len(), 1, "{leftovers:?}");

    // An admin adds a line while the host is isolated.
    let a = audit(&root, &opts(None)).unwrap();
    let applied = apply_at_default(&root, &a, &only_irqbalance);
    let tuned = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("{tuned}IRQBALANCE_ARGS=--journal\n")).unwrap();
    let r = applied.restore().unwrap();
    assert!(r.failed.is_empty(), "{:?}", r.failed);
    assert_eq!(
        std::fs::read_to_string(&config).unwrap(),
        format!("{original}IRQBALANCE_ARGS=--journal\n")
    );
    assert!(
        r.notes
            .iter()
            .any(|n| n.contains("changed by someone else")),
        "{:?}",
        r.notes
    );
}

/// Another VM's QEMU and an Open vSwitch polling thread were pinned by
/// their owners: apply leaves them where they are by default (as tuned's
/// ps_blacklist does) and says so; with the list dropped they move.
#[test]
fn other_vms_and_polling_threads_are_left_where_they_are() {
    let dir = tree(&["intel-pstate-turbo", "overlay-isolated-2-3"]);
    let root = SysRoot::new(dir.path());
    let p = dir.path();
    plant_named(p, 8000, 8000, "qemu-system-x86", 1, 100, "0-3");
    plant_named(p, 8000, 8003, "CPU 0/KVM", 1, 100, "2");
    plant_named(p, 8100, 8100, "ovs-vswitchd", 1, 100, "0-3");
    plant_named(p, 8100, 8107, "pmd-c02/id:7", 1, 100, "2");
    let moved = |a: &Audit| -> Vec<u32> {
        knob(a, "thread_affinity")
            .changes
            .iter()
            .filter_map(|c| match c {
                Change::Affinity { tid, .. } if *tid >= 8000 => Some(*tid),
                _ => None,
            })
            .collect()
    };
    let a = audit(&root, &opts(None)).unwrap();
    // ovs-vswitchd's main thread is not a polling thread: it moves.
    assert_eq!(moved(&a), [8100]);
    let k = knob(&a, "thread_affinity");
    let note = k
        .notes
        .iter()
        .find(|n| n.contains("exclusion list"))
        .unwrap();
    for kept in [
        "8003 CPU 0/KVM",
        "8107 pmd-c02/id:7",
        "8000 qemu-system-x86 (qemu-system-*)",
    ] {
        assert!(note.contains(kept), "{note}");
    }
    let mut everything = opts(None);
    everything.keep = vmbench_isolate::affinity::ThreadExclusion::none();
    let a = audit(&root, &everything).unwrap();
    assert_eq!(moved(&a), [8000, 8003, 8100, 8107]);
}
