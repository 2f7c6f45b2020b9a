//! The run's phases with a fake guest: ordering, interruption, failures and
//! the restore, against a fixture host tree, in milliseconds.
//!
//! The fake guest looks at the fixture's boost switch when it boots (the
//! isolation must have turned it off by then), and can misbehave on cue.
#![allow(clippy::unwrap_used)]

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use vmbench_host::{CpuList, SysRoot, fixture};
use vmbench_isolate::pin::{Pinning, VcpuPin};
use vmbench_proto::{GuestSpec, Mapping};
use vmbench_results::{
    Accel, Check, CheckKind, KnobId, Measurement, QemuRecord, RestoreState, SampleSet, Stopped,
    Unit, Verification, WarningKind,
};
use vmbench_run::config::{self, Config};
use vmbench_run::{
    BootRequest, Environment, ExitStatus, GuestLauncher, GuestSession, Plan, Progress, RunError,
    RunFlags, SessionError, Silent, Suite,
};
use vmbench_shm::host::HostRun;
use vmbench_suites::SuiteError;
use vmbench_suites::shm::VmShmOptions;
use vmbench_suites::vmexit::{VmexitOptions, VmexitRun};
use vmbench_vm::GuestKind;

/// The acpi-cpufreq host's global boost switch: "1" before, "0" applied.
const BOOST: &str = "sys/devices/system/cpu/cpufreq/boost";

/// What the fake does when, and what it saw.
#[derive(Default)]
struct Script {
    /// Every event, in order.
    log: Vec<String>,
    fail_boot: bool,
    fail_vmexit: bool,
    /// Set the interrupt flag during the VM-exit suite (Ctrl-C mid-run).
    interrupt_in_vmexit: bool,
    /// Replace the boost file by a directory during the suite, so its
    /// restore fails (a host that changed under the run).
    break_restore: bool,
    corrupt_frame: bool,
    /// The micro-guest boots under KVM, the Linux guest under TCG (this
    /// machine: kvm_pvm runs OS-free guests only).
    micro_under_kvm: bool,
}

struct Fake {
    script: Rc<RefCell<Script>>,
    root: PathBuf,
    interrupt: Arc<AtomicBool>,
}

impl GuestLauncher for Fake {
    fn boot(
        &mut self,
        request: &BootRequest,
        _: &dyn Progress,
    ) -> Result<Box<dyn GuestSession>, SessionError> {
        let mut s = self.script.borrow_mut();
        let boost = std::fs::read_to_string(self.root.join(BOOST)).unwrap_or_default();
        s.log.push(format!(
            "boot {:?} doorbell={} mapping={:?} boost={}",
            request.guest,
            request.doorbell,
            request.mapping,
            boost.trim()
        ));
        if s.fail_boot {
            return Err(SessionError::NoQemu);
        }
        let spec = GuestSpec {
            mapping: request.mapping.unwrap_or(Mapping::Wb),
            ..GuestSpec::default()
        };
        let accel = if s.micro_under_kvm && request.guest == GuestKind::Micro {
            Accel::Kvm
        } else {
            Accel::Tcg
        };
        Ok(Box::new(FakeSession {
            script: self.script.clone(),
            root: self.root.clone(),
            interrupt: self.interrupt.clone(),
            spec,
            accel,
            guest: request.guest,
        }))
    }
}

struct FakeSession {
    script: Rc<RefCell<Script>>,
    root: PathBuf,
    interrupt: Arc<AtomicBool>,
    spec: GuestSpec,
    accel: Accel,
    guest: GuestKind,
}

fn measurement(id: &str) -> Measurement {
    let mut samples = SampleSet::new();
    samples.extend([100, 110, 120]).unwrap();
    Measurement::from_samples(
        id,
        "fake",
        Unit::TscTicks,
        &samples,
        Verification::NotApplicable,
    )
    .unwrap()
}

impl GuestSession for FakeSession {
    fn guest(&self) -> GuestKind {
        self.guest
    }

    fn accel(&self) -> Accel {
        self.accel
    }

    fn accel_notice(&self) -> Option<&str> {
        None
    }

    fn spec(&self) -> &GuestSpec {
        &self.spec
    }

    fn qemu(&self) -> QemuRecord {
        QemuRecord {
            path: "/fake/qemu".into(),
            version: None,
            store_path: None,
            command_line: "fake".into(),
        }
    }

    fn pin(&mut self, bench: &CpuList) -> Result<Pinning, SessionError> {
        self.script.borrow_mut().log.push(format!("pin {bench}"));
        Ok(Pinning {
            pid: 1,
            vcpus: vec![VcpuPin {
                index: 0,
                tid: 2,
                cpu: bench.iter().next().unwrap(),
            }],
            housekeeping: CpuList::from_cpus([0]),
            others: vec![],
            switches_at_pin: vec![],
        })
    }

    fn vmexit(
        &mut self,
        _: &VmexitOptions,
        _: &mut dyn FnMut(&str),
    ) -> (VmexitRun, Result<(), SuiteError>) {
        let mut s = self.script.borrow_mut();
        s.log.push("vmexit".into());
        if s.interrupt_in_vmexit {
            self.interrupt.store(true, Ordering::Relaxed);
        }
        if s.break_restore {
            let boost = self.root.join(BOOST);
            std::fs::remove_file(&boost).unwrap();
            std::fs::create_dir(&boost).unwrap();
        }
        let run = VmexitRun {
            measurements: vec![measurement("vmexit.kernel-fast")],
            skipped: vec![],
            warnings: vec![],
        };
        let outcome = if s.fail_vmexit {
            Err(SuiteError::Refused {
                row: "kernel-slow".into(),
                why: "fake".into(),
            })
        } else {
            Ok(())
        };
        (run, outcome)
    }

    fn shm(&mut self, o: &VmShmOptions) -> (HostRun, Result<(), SuiteError>) {
        let mut s = self.script.borrow_mut();
        s.log.push(format!("shm {}", o.plan.id_prefix()));
        let mut run = HostRun::default();
        run.results
            .measurements
            .push(measurement(&format!("{}rtt.poll", o.plan.id_prefix())));
        run.results.checks.push(Check {
            id: format!("{}integrity.h2g", o.plan.id_prefix()),
            kind: CheckKind::Integrity,
            statement: "every frame".into(),
            observed: "fake".into(),
            passed: !s.corrupt_frame,
        });
        (run, Ok(()))
    }

    fn shutdown(self: Box<Self>) -> String {
        self.script.borrow_mut().log.push("shutdown".into());
        "fake".into()
    }
}

/// A fixture host, a plan against it, and the fake.
struct Setup {
    _dir: tempfile::TempDir,
    root: PathBuf,
    out: PathBuf,
    plan: Plan,
    fake: Fake,
    interrupt: Arc<AtomicBool>,
}

fn setup(config_text: &str) -> Setup {
    setup_with("", config_text)
}

/// `vm_lines` go into the config's `vm:` section, `config_text` after it.
fn setup_with(vm_lines: &str, config_text: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("host");
    fixture::load(&["acpi-cpufreq"], &root).unwrap();
    let image = dir.path().join("image");
    std::fs::create_dir(&image).unwrap();
    std::fs::write(image.join("bzImage"), b"fake").unwrap();
    let out = dir.path().join("out");
    let text = format!(
        "isolation:\n  root: {}\nvm:\n  qemu: /bin/sh\n  image: {}\n{vm_lines}{config_text}",
        root.display(),
        image.display()
    );
    let mut plan = Plan::new(
        RunFlags {
            out: Some(out.clone()),
            quick: true,
            command: "vmbench run (test)".into(),
            ..RunFlags::default()
        },
        config::parse(&text).unwrap(),
        Environment::default(),
    )
    .unwrap();
    plan.spec_root = SysRoot::new(&root);
    plan.noise.window = Duration::ZERO;
    let interrupt = Arc::new(AtomicBool::new(false));
    let fake = Fake {
        script: Rc::new(RefCell::new(Script::default())),
        root: root.clone(),
        interrupt: interrupt.clone(),
    };
    Setup {
        _dir: dir,
        root,
        out,
        plan,
        fake,
        interrupt,
    }
}

fn snapshot(root: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fixture::snapshot(root).unwrap()
}

fn boost(root: &Path) -> String {
    std::fs::read_to_string(root.join(BOOST))
        .unwrap()
        .trim()
        .to_string()
}

/// Runs every phase with the fake; the record's status and the log.
fn run(s: &mut Setup) -> Result<vmbench_run::Recorded, RunError> {
    let plan = s.plan.clone();
    vmbench_run::run(plan, &mut s.fake, &Silent, &s.interrupt)
}

fn log(s: &Setup) -> Vec<String> {
    s.fake.script.borrow().log.clone()
}

#[test]
fn knobs_are_applied_before_the_guest_boots_and_restored_before_the_record() {
    let started = Instant::now();
    let mut s = setup("");
    let before = snapshot(&s.root);
    assert_eq!(boost(&s.root), "1");
    let pre = vmbench_run::preflight(s.plan.clone(), &Silent).unwrap();
    assert_eq!(snapshot(&s.root), before, "the preflight changed the host");
    let isolated = pre.isolate(&Silent).unwrap();
    assert_eq!(boost(&s.root), "0", "isolation applied");
    let done = isolated.run_suites(&mut s.fake, &Silent, &s.interrupt);
    assert_eq!(boost(&s.root), "0", "still tuned until restore");
    let restored = done.restore(&Silent);
    assert_eq!(snapshot(&s.root), before, "restored byte for byte");
    let recorded = restored.record();
    recorded.publish(&Silent).unwrap();
    assert_eq!(recorded.status, ExitStatus::Success);
    assert_eq!(
        log(&s),
        [
            // One Linux guest for both suites, booted with the doorbell,
            // on a tuned host; then the UC and WC arms, one guest each.
            "boot Linux doorbell=true mapping=None boost=0",
            "pin 1",
            "vmexit",
            // Each suite pins its guest (again, when it is the same guest).
            "pin 1",
            "shm shm.",
            "shutdown",
            "boot Linux doorbell=false mapping=Some(Uc) boost=0",
            "pin 1",
            "shm shm.uc.",
            "shutdown",
            "boot Linux doorbell=false mapping=Some(Wc) boost=0",
            "pin 1",
            "shm shm.wc.",
            "shutdown",
        ]
    );
    let r = &recorded.record;
    assert!(r.complete && r.is_tcg());
    let turbo = r
        .isolation
        .iter()
        .find(|k| k.knob == KnobId::Turbo)
        .unwrap();
    assert_eq!(turbo.restored, RestoreState::Restored);
    assert!(turbo.changed_to.as_deref().unwrap().contains("boost = 0"));
    assert!(s.out.join("report.md").is_file());
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn a_blocked_preflight_changes_nothing_and_boots_nothing() {
    let mut s = setup("");
    std::fs::create_dir_all(&s.out).unwrap();
    std::fs::write(s.out.join("old-report.md"), b"keep me").unwrap();
    let before = snapshot(&s.root);
    let err = run(&mut s).err().unwrap();
    let RunError::Blocked(b) = &err else {
        panic!("{err}")
    };
    assert!(b.reasons.iter().any(|r| r.contains("not empty")), "{b:?}");
    assert_eq!(err.exit_status(), ExitStatus::Usage);
    assert_eq!(snapshot(&s.root), before);
    assert!(log(&s).is_empty(), "{:?}", log(&s));
    assert_eq!(
        std::fs::read(s.out.join("old-report.md")).unwrap(),
        b"keep me"
    );
}

#[test]
fn ctrl_c_in_a_suite_stops_the_run_restores_and_exits_130() {
    let mut s = setup("");
    s.fake.script.borrow_mut().interrupt_in_vmexit = true;
    let before = snapshot(&s.root);
    let recorded = run(&mut s).unwrap();
    // No real signal in this test: the status is Ctrl-C's.
    assert_eq!(recorded.status, ExitStatus::Interrupted(2));
    assert_eq!(recorded.status.code(), 130);
    assert_eq!(snapshot(&s.root), before);
    assert!(
        !log(&s).iter().any(|l| l.starts_with("shm")),
        "{:?}",
        log(&s)
    );
    let r = &recorded.record;
    assert!(!r.complete);
    assert_eq!(
        r.incomplete[0].what,
        Stopped::Interrupted,
        "{:?}",
        r.incomplete
    );
    assert!(
        r.incomplete
            .iter()
            .any(|i| i.what == Stopped::NotRun { suite: Suite::Shm })
    );
    // What was measured before Ctrl-C is kept.
    assert_eq!(r.results.measurements.len(), 1);
}

#[test]
fn a_failed_restore_is_reported_per_knob_and_fails_the_run() {
    let mut s = setup("");
    s.fake.script.borrow_mut().break_restore = true;
    let recorded = run(&mut s).unwrap();
    assert_eq!(recorded.status, ExitStatus::Failed);
    let r = &recorded.record;
    let turbo = r
        .isolation
        .iter()
        .find(|k| k.knob == KnobId::Turbo)
        .unwrap();
    assert!(
        matches!(&turbo.restored, RestoreState::Failed(e) if !e.is_empty()),
        "{:?}",
        turbo.restored
    );
    let governor = r
        .isolation
        .iter()
        .find(|k| k.knob == KnobId::Governor)
        .unwrap();
    assert_eq!(governor.restored, RestoreState::Restored);
    assert!(
        r.results
            .warnings
            .iter()
            .any(|w| w.kind == WarningKind::HostNotRestored
                && w.message.contains("NOT fully restored")
                && w.message.contains("isolate restore")),
        "{:?}",
        r.results.warnings
    );
}

#[test]
fn a_suite_that_stops_keeps_its_rows_and_the_later_suites_do_not_run() {
    let mut s = setup("");
    s.fake.script.borrow_mut().fail_vmexit = true;
    let before = snapshot(&s.root);
    let recorded = run(&mut s).unwrap();
    assert_eq!(recorded.status, ExitStatus::Failed);
    assert_eq!(snapshot(&s.root), before);
    let r = &recorded.record;
    assert_eq!(r.results.measurements.len(), 1);
    assert!(
        matches!(
            &r.incomplete[0].what,
            Stopped::SuiteStopped {
                suite: Suite::Vmexit,
                ..
            }
        ),
        "{:?}",
        r.incomplete
    );
    assert_eq!(r.incomplete[1].what, Stopped::NotRun { suite: Suite::Shm });
    assert!(
        r.incomplete[0]
            .to_string()
            .starts_with("the VM-exit suite stopped: "),
        "{}",
        r.incomplete[0]
    );
    assert_eq!(
        log(&s),
        [
            "boot Linux doorbell=true mapping=None boost=0",
            "pin 1",
            "vmexit",
            "shutdown"
        ]
    );
}

#[test]
fn a_guest_that_does_not_boot_is_an_incomplete_run_on_a_restored_host() {
    let mut s = setup("suites: [shm]\n");
    s.fake.script.borrow_mut().fail_boot = true;
    let before = snapshot(&s.root);
    let recorded = run(&mut s).unwrap();
    assert_eq!(recorded.status, ExitStatus::Failed);
    assert_eq!(snapshot(&s.root), before);
    assert!(matches!(
        &recorded.record.incomplete[0].what,
        Stopped::GuestDidNotBoot {
            suite: Suite::Shm,
            ..
        }
    ));
    assert!(
        recorded.record.incomplete[0]
            .to_string()
            .starts_with("shm suite: the guest did not come up: ")
    );
    assert_eq!(recorded.record.accel, None);
}

#[test]
fn a_corrupted_frame_fails_the_run() {
    let mut s = setup("shm:\n  arms: false\n");
    s.fake.script.borrow_mut().corrupt_frame = true;
    let recorded = run(&mut s).unwrap();
    assert!(recorded.record.complete);
    assert_eq!(recorded.status, ExitStatus::Failed);
}

#[test]
fn the_micro_guest_runs_the_vmexit_suite_and_a_linux_guest_the_shm_suite() {
    let mut s = setup_with("  guest: micro\n", "shm:\n  arms: false\n");
    assert_eq!(s.plan.guest.guest, GuestKind::Micro);
    let recorded = run(&mut s).unwrap();
    assert_eq!(recorded.status, ExitStatus::Success);
    assert_eq!(
        log(&s),
        [
            "boot Micro doorbell=false mapping=None boost=0",
            "pin 1",
            "vmexit",
            "shutdown",
            "boot Linux doorbell=true mapping=None boost=0",
            "pin 1",
            "shm shm.",
            "shutdown",
        ]
    );
    assert_eq!(
        recorded.record.guest_flavour,
        "micro (VM-exit suite), linux (shm suite)"
    );
    assert_eq!(recorded.record.suites, [Suite::Vmexit, Suite::Shm]);
    assert!(recorded.record.is_tcg());
}

/// The micro-guest under KVM, the Linux guest under TCG: the record keeps
/// each guest with its accelerator, and the run is labelled mixed, not TCG.
#[test]
fn a_mixed_accelerator_run_records_each_guest_and_says_so() {
    let mut s = setup_with("  guest: micro\n", "shm:\n  arms: false\n");
    s.fake.script.borrow_mut().micro_under_kvm = true;
    let record = run(&mut s).unwrap().record;
    assert_eq!(record.accel, None);
    let guests: Vec<(GuestKind, Accel, Vec<Suite>)> = record
        .guests
        .iter()
        .map(|g| (g.kind, g.accel, g.suites.clone()))
        .collect();
    assert_eq!(
        guests,
        [
            (GuestKind::Micro, Accel::Kvm, vec![Suite::Vmexit]),
            (GuestKind::Linux, Accel::Tcg, vec![Suite::Shm]),
        ]
    );
    assert!(record.is_mixed() && !record.is_tcg());
    let first = &record.results.warnings[0];
    assert_eq!(first.kind, WarningKind::PartlyTcg);
    assert!(
        first
            .message
            .starts_with("Mixed accelerators: the shm suite ran under TCG"),
        "{first}"
    );
    assert!(
        !record
            .results
            .warnings
            .iter()
            .any(|w| w.kind == WarningKind::Tcg),
        "{:?}",
        record.results.warnings
    );
}

#[test]
fn config_text_is_what_the_plan_takes() {
    // The plan the tests use really points at the fixture.
    let s = setup("");
    assert_eq!(s.plan.root.root(), s.root.as_path());
    assert!(s.plan.journal.starts_with(&s.root));
    let _: Config = config::parse("").unwrap();
}

#[test]
fn each_repeat_boots_its_own_guests_and_every_row_keeps_every_repeat() {
    let mut s = setup("repeat: 3\nshm:\n  arms: false\n");
    assert_eq!(s.plan.repeat, 3);
    let recorded = run(&mut s).unwrap();
    let boots = log(&s).iter().filter(|l| l.starts_with("boot")).count();
    let shutdowns = log(&s).iter().filter(|l| *l == "shutdown").count();
    assert_eq!((boots, shutdowns), (3, 3), "{:?}", log(&s));
    let r = &recorded.record;
    assert!(r.complete, "{:?}", r.incomplete);
    // One row per measurement, each with the three repeats.
    assert_eq!(r.results.measurements.len(), 2);
    for m in &r.results.measurements {
        let rep = m.repeats.as_ref().unwrap();
        assert_eq!(rep.repeat_numbers, [1, 2, 3], "{}", m.id);
        assert_eq!(m.summary.n, 9, "{}: pooled", m.id);
    }
    // The guests are listed once, not once per repeat.
    assert_eq!(r.guests.len(), 1);
    assert_eq!(r.results.checks.len(), 1);
    let md = std::fs::read_to_string(s.out.join("report.md")).unwrap();
    assert!(md.contains("Run-to-run variation"), "{md}");
}

#[test]
fn a_repeat_interrupted_stops_the_repeats_and_keeps_what_ran() {
    let mut s = setup("repeat: 3\nshm:\n  arms: false\n");
    s.fake.script.borrow_mut().interrupt_in_vmexit = true;
    let recorded = run(&mut s).unwrap();
    let boots = log(&s).iter().filter(|l| l.starts_with("boot")).count();
    assert_eq!(boots, 1, "{:?}", log(&s));
    let r = &recorded.record;
    assert!(!r.complete);
    assert_eq!(r.results.measurements.len(), 1);
}
