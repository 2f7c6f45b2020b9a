//! The phases after the preflight: isolate → suites → restore → record.
//! Each consumes the one before; see the crate documentation.

use crate::Suite;
use crate::config::ApplyMode;
use crate::drive::{self, ShmRequest, VmexitRequest};
use crate::outcome::{self, ExitStatus, RunEnd};
use crate::preflight::{Blocked, Preflighted};
use crate::progress::Progress;
use crate::records::{self, IsolationOutcome};
use crate::session::{BootRequest, GuestLauncher, GuestSession};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use vmbench_host::{CpuList, HostSpec, SpecOptions};
use vmbench_isolate::apply::{self, Applied, RestoreReport};
use vmbench_isolate::{Audit, IsolateError, KnobClass, Verdict};
use vmbench_results::{
    Accel, GuestRecord, Incomplete, QemuRecord, RUN_SCHEMA_VERSION, Results, RunRecord, SpecRow,
    Stopped, Warning, WarningKind,
};
use vmbench_shm::host::Plan as ShmPlan;
use vmbench_vm::GuestKind;

/// Why a run stopped before it could record anything.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The preflight found a reason not to start.
    #[error(transparent)]
    Blocked(#[from] Blocked),
    /// Applying isolation failed (what was applied is restored).
    #[error(transparent)]
    Isolate(#[from] IsolateError),
    /// The output directory could not be created.
    #[error("creating the output directory {path}")]
    Output {
        /// The directory.
        path: String,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
    /// The report could not be written.
    #[error(transparent)]
    Publish(#[from] vmbench_publish::PublishError),
    /// The report could not be written where asked; the results were saved
    /// elsewhere (or could not be saved at all).
    #[error("writing the report to {out} failed: {source}; {saved}")]
    PublishElsewhere {
        /// The output directory asked for.
        out: String,
        /// Why writing there failed.
        source: vmbench_publish::PublishError,
        /// Where the results went instead, or why they could not.
        saved: String,
    },
}

impl RunError {
    /// Usage and environment errors are 2; an isolation error says its own.
    pub fn exit_status(&self) -> ExitStatus {
        match self {
            RunError::Isolate(e) => crate::outcome::isolate_status(e),
            _ => ExitStatus::Usage,
        }
    }
}

/// What the phases carry from the preflight to the record.
struct Context {
    plan: crate::Plan,
    audit: Audit,
    spec: HostSpec,
    started_utc: String,
    /// Isolation remarks for the report.
    notes: Vec<String>,
    /// IRQs the kernel refused to move.
    unmovable: Vec<String>,
    /// Whether runtime knobs were applied.
    applied: bool,
    /// The residual noise on the benchmark CPUs, before and after isolation.
    residual_noise: Vec<vmbench_results::CpuNoise>,
}

/// The host as the run needs it: runtime knobs applied (journaled), or
/// audited only. Dropping it restores the host.
pub struct Isolated {
    ctx: Context,
    guard: Option<Applied>,
}

impl Preflighted {
    /// Creates the output directory, reads the host specification, and
    /// applies the runtime knobs (journal first) to the plan's isolation
    /// root unless the plan or missing privileges say audit only. The
    /// restore guard holds the root and the host lock.
    pub fn isolate(self, progress: &dyn Progress) -> Result<Isolated, RunError> {
        // The preflight took the host lock exactly when the run applies:
        // the guard then holds it until the host is restored.
        let Preflighted { plan, audit, lock } = self;
        let root = plan.root.clone();
        std::fs::create_dir_all(&plan.out).map_err(|source| RunError::Output {
            path: plan.out.display().to_string(),
            source,
        })?;
        let started_utc = records::utc_stamp(false);
        progress.step("host specification");
        let spec = HostSpec::gather(
            &plan.spec_root,
            &SpecOptions {
                qemu: plan.guest.qemu.clone(),
                skip_calibration: !plan.spec_root.is_host(),
            },
        );
        let mut notes = Vec::new();
        let apply = should_apply(&plan, &mut notes) && lock.is_some();
        notes.extend(boot_only_notes(&audit));
        // The preflight audit measured the noise as the host was found.
        let residual_noise = audit
            .knob(vmbench_results::KnobId::ResidualNoise)
            .map(|k| k.noise.clone())
            .unwrap_or_default()
            .into_iter()
            .map(|mut n| {
                n.phase = if apply {
                    "before isolation"
                } else {
                    "as found (isolation only audited)"
                }
                .into();
                n
            })
            .collect();
        let mut ctx = Context {
            plan,
            audit,
            spec,
            started_utc,
            notes,
            unmovable: Vec::new(),
            applied: apply,
            residual_noise,
        };
        let Some(lock) = lock.filter(|_| apply) else {
            return Ok(Isolated { ctx, guard: None });
        };
        progress.phase("isolation: applying runtime knobs (journal first)");
        let applied = apply::apply(
            Arc::new(root.clone()),
            &ctx.audit,
            &ctx.plan.skip,
            &ctx.plan.journal,
            Arc::new(lock),
        )?;
        for c in &applied.report.applied {
            progress.detail(&format!("changed {}", c.change.describe()));
        }
        for u in &applied.report.unmovable {
            ctx.notes.push(format!("unmovable interrupt: {u}"));
        }
        ctx.unmovable = applied.report.unmovable.clone();
        if applied.report.threads_gone > 0 {
            ctx.notes.push(format!(
                "{} threads exited before they could be moved off the benchmark CPUs",
                applied.report.threads_gone
            ));
        }
        ctx.notes.extend(applied.held.notes.iter().cloned());
        if !ctx.residual_noise.is_empty() {
            progress.step("residual noise on the benchmark CPUs, after isolation");
            match vmbench_isolate::osnoise::measure(
                &root,
                &ctx.audit.cpus.bench,
                ctx.plan.noise,
                "after isolation",
            ) {
                Ok(after) => ctx.residual_noise.extend(after),
                Err(e) => ctx
                    .notes
                    .push(format!("residual noise after isolation: {e}")),
            }
        }
        Ok(Isolated {
            ctx,
            guard: Some(applied),
        })
    }
}

/// Whether the run will apply the runtime knobs (and so needs the host lock).
pub(crate) fn will_apply(plan: &crate::Plan) -> bool {
    should_apply(plan, &mut Vec::new())
}

/// `apply: auto` applies only as root, and only to the running host's
/// files when they are the host's.
fn should_apply(plan: &crate::Plan, notes: &mut Vec<String>) -> bool {
    match plan.apply {
        ApplyMode::No => {
            notes.push("isolation audited only (isolation.apply: no)".into());
            false
        }
        ApplyMode::Auto if !nix::unistd::geteuid().is_root() && plan.root.is_host() => {
            notes.push(
                "not root: isolation audited, not applied (run as root to apply the runtime knobs)"
                    .into(),
            );
            false
        }
        _ => true,
    }
}

/// Boot-only knobs not in place: what to add to the kernel cmdline.
fn boot_only_notes(audit: &Audit) -> Vec<String> {
    audit
        .knobs
        .iter()
        .filter(|k| {
            k.class == KnobClass::BootOnly && matches!(k.verdict, Verdict::Warn | Verdict::Fail)
        })
        .map(|k| {
            format!(
                "boot-only knob {} not in place: {}",
                k.id,
                k.fix
                    .clone()
                    .unwrap_or_else(|| "see `vmbench isolate suggest`".into())
            )
        })
        .collect()
}

/// What the suites produced, and about the guests they ran in.
#[derive(Default)]
struct SuiteRecord {
    results: Results,
    /// Why the run is incomplete (empty: complete).
    incomplete: Vec<Incomplete>,
    guest_spec: Option<vmbench_proto::spec::GuestSpec>,
    qemu: Option<QemuRecord>,
    pinning: Option<vmbench_results::Pinning>,
    /// The shm suite's reference CPUs, from the latest pinning.
    reference_cpus: Option<(usize, usize)>,
    /// Remarks for the isolation section (a pinning that failed).
    notes: Vec<String>,
    /// Load and thermal throttling around each suite.
    contexts: Vec<vmbench_results::SuiteContext>,
    /// Every guest that ran a suite.
    guests: Vec<GuestRecord>,
    interrupted: bool,
}

/// The suites have run (or stopped); the host is still tuned.
pub struct SuitesDone {
    ctx: Context,
    guard: Option<Applied>,
    suites: SuiteRecord,
}

/// The CPUs a run pins the vCPUs to.
struct Cpus {
    /// Where the vCPUs go, vCPU i to the i-th (empty: no pinning).
    vcpu: CpuList,
}

impl Cpus {
    /// The first `vcpus` benchmark CPUs, one per vCPU.
    fn of(audit: &Audit, vcpus: u32) -> Cpus {
        Cpus {
            vcpu: CpuList::from_cpus(audit.cpus.bench.iter().take(vcpus.max(1) as usize)),
        }
    }

    fn pin(&self) -> Option<&CpuList> {
        (!self.vcpu.is_empty()).then_some(&self.vcpu)
    }
}

impl Isolated {
    /// Runs each suite of the plan in order, booting guests through
    /// `launcher`. A suite that fails keeps what it measured, and the later
    /// suites do not run; neither do they after `interrupt` is set.
    pub fn run_suites(
        self,
        launcher: &mut dyn GuestLauncher,
        progress: &dyn Progress,
        interrupt: &AtomicBool,
    ) -> SuitesDone {
        let Isolated { ctx, guard } = self;
        let mut rec = SuiteRecord::default();
        let cpus = Cpus::of(&ctx.audit, ctx.plan.guest.vcpus);
        let repeats = ctx.plan.repeat.max(1);
        let mut per_repeat = Vec::new();
        let mut first_guests = None;
        for repeat in 1..=repeats {
            if repeat > 1 {
                if interrupt.load(Ordering::Relaxed) || !rec.incomplete.is_empty() {
                    break;
                }
                progress.phase(&format!("repeat {repeat} of {repeats} (fresh guest boots)"));
            }
            let incomplete_before = rec.incomplete.len();
            let repeat_label = if repeats > 1 {
                format!(" (repeat {repeat} of {repeats})")
            } else {
                String::new()
            };
            run_suites_once(
                &ctx,
                launcher,
                progress,
                interrupt,
                &cpus,
                &repeat_label,
                &mut rec,
            );
            if repeats > 1 {
                for why in &mut rec.incomplete[incomplete_before..] {
                    why.repeat = Some(repeat);
                }
            }
            per_repeat.push(std::mem::take(&mut rec.results));
            // Every repeat boots the same guests: the first repeat's are listed.
            match first_guests {
                None => first_guests = Some(rec.guests.len()),
                Some(n) => rec.guests.truncate(n),
            }
        }
        rec.results = Results::combine_repeats(per_repeat);
        rec.interrupted = interrupt.load(Ordering::Relaxed);
        if rec.interrupted {
            rec.incomplete
                .insert(0, Incomplete::new(Stopped::Interrupted));
        }
        SuitesDone {
            ctx,
            guard,
            suites: rec,
        }
    }
}

/// Each suite of the plan once, in order: one repeat (`repeat_label`
/// names it in the suites' context, empty when there is only one).
fn run_suites_once(
    ctx: &Context,
    launcher: &mut dyn GuestLauncher,
    progress: &dyn Progress,
    interrupt: &AtomicBool,
    cpus: &Cpus,
    repeat_label: &str,
    rec: &mut SuiteRecord,
) {
    // The Linux guest of the VM-exit suite stays up for the shm suite.
    let mut kept: Option<Box<dyn GuestSession>> = None;
    for suite in ctx.plan.suites.clone() {
        if interrupt.load(Ordering::Relaxed) || !rec.incomplete.is_empty() {
            rec.incomplete
                .push(Incomplete::new(Stopped::NotRun { suite }));
            continue;
        }
        progress.phase(suite.title());
        let reused = kept.is_some();
        let session = match kept.take() {
            Some(s) => s,
            None => match boot(ctx, suite, launcher, progress, rec) {
                Some(s) => s,
                None => continue,
            },
        };
        let session = describe_guest(ctx, suite, session, reused, cpus, rec);
        let before = crate::context::snapshot(&ctx.plan.spec_root, &ctx.audit.cpus.bench);
        kept = match suite {
            Suite::Vmexit => vmexit_suite(ctx, session, progress, rec),
            Suite::Shm => {
                shm_suite(ctx, session, cpus, launcher, progress, interrupt, rec);
                None
            }
        };
        let after = crate::context::snapshot(&ctx.plan.spec_root, &ctx.audit.cpus.bench);
        let (context, warning) =
            crate::context::between(&format!("{}{repeat_label}", suite.name()), &before, &after);
        rec.contexts.push(context);
        if let Some(w) = warning {
            rec.results.warnings.push(w);
        }
    }
    if let Some(session) = kept {
        session.shutdown();
    }
}

fn boot(
    ctx: &Context,
    suite: Suite,
    launcher: &mut dyn GuestLauncher,
    progress: &dyn Progress,
    rec: &mut SuiteRecord,
) -> Option<Box<dyn GuestSession>> {
    let guest = ctx.plan.guest_for(suite);
    let request = BootRequest {
        guest,
        // One boot serves both suites: with the doorbell when shm will run.
        doorbell: guest == GuestKind::Linux
            && ctx.plan.suites.contains(&Suite::Shm)
            && ctx.plan.doorbell,
        mapping: None,
    };
    match launcher.boot(&request, progress) {
        Ok(session) => {
            // The report states TCG itself, once; other accelerator notices are kept.
            if let Some(n) = session.accel_notice()
                && session.accel() != Accel::Tcg
            {
                vmbench_results::warning::add(
                    &mut rec.results.warnings,
                    Warning::new(WarningKind::Accelerator, n),
                );
            }
            Some(session)
        }
        Err(e) => {
            rec.incomplete
                .push(Incomplete::new(Stopped::GuestDidNotBoot {
                    suite,
                    cause: e.to_string(),
                }));
            None
        }
    }
}

/// Pins the guest and records what it is: every guest in `guests`, and the
/// Linux guest's spec as the main one (it is the guest of the shm suite and,
/// usually, of both).
fn describe_guest(
    ctx: &Context,
    suite: Suite,
    mut session: Box<dyn GuestSession>,
    reused: bool,
    cpus: &Cpus,
    rec: &mut SuiteRecord,
) -> Box<dyn GuestSession> {
    match rec.guests.last_mut() {
        Some(last) if reused => last.suites.push(suite),
        _ => rec.guests.push(GuestRecord {
            suites: vec![suite],
            kind: ctx.plan.guest_for(suite),
            accel: session.accel(),
            spec: session.spec().clone(),
            qemu: Some(session.qemu()),
        }),
    }
    if let Some(bench) = cpus.pin() {
        match session.pin(bench) {
            Ok(p) => {
                rec.pinning = Some(p.record());
                rec.reference_cpus = p.reference_cpus();
            }
            Err(e) => rec.notes.push(format!("vCPU pinning failed: {e}")),
        }
    }
    if ctx.plan.guest_for(suite) == GuestKind::Linux || rec.guest_spec.is_none() {
        rec.guest_spec = Some(session.spec().clone());
        rec.qemu = Some(session.qemu());
    }
    session
}

/// Runs the VM-exit suite; returns the session when the shm suite is to use it.
fn vmexit_suite(
    ctx: &Context,
    mut session: Box<dyn GuestSession>,
    progress: &dyn Progress,
    rec: &mut SuiteRecord,
) -> Option<Box<dyn GuestSession>> {
    let request = VmexitRequest {
        rows: ctx.plan.rows.clone(),
        iterations: ctx.plan.iterations,
        warmup: ctx.plan.warmup,
        batch: ctx.plan.batch,
        test_substitute: Vec::new(),
    };
    let host_khz = ctx.spec.tsc.frequency.known().map(|f| f.khz);
    let (_, run, outcome) = drive::vmexit(session.as_mut(), &request, host_khz, progress);
    rec.results.measurements.extend(run.measurements);
    rec.results.skipped.extend(run.skipped);
    for w in run.warnings {
        vmbench_results::warning::add(&mut rec.results.warnings, w);
    }
    match outcome {
        Err(e) => {
            rec.incomplete.push(Incomplete::new(Stopped::SuiteStopped {
                suite: Suite::Vmexit,
                cause: e.to_string(),
            }));
            session.shutdown();
            None
        }
        Ok(()) if ctx.plan.shares_linux_guest() => Some(session),
        Ok(()) => {
            session.shutdown();
            None
        }
    }
}

fn shm_suite(
    ctx: &Context,
    session: Box<dyn GuestSession>,
    cpus: &Cpus,
    launcher: &mut dyn GuestLauncher,
    progress: &dyn Progress,
    interrupt: &AtomicBool,
    rec: &mut SuiteRecord,
) {
    let host_khz = ctx.spec.tsc.frequency.known().map_or(0.0, |f| f.khz);
    let mut plan = if ctx.plan.quick {
        ShmPlan::quick(host_khz)
    } else {
        ShmPlan::full(host_khz)
    };
    plan.request_timeout = ctx.plan.request_timeout;
    if !ctx.plan.doorbell {
        plan.doorbell_rounds = 0;
    }
    plan.ref_cpus = rec.reference_cpus;
    let request = ShmRequest {
        plan,
        arms: ctx.plan.arms,
        pin: cpus.pin(),
        vendor: ctx.spec.cpu.vendor.known().cloned(),
    };
    let outcome = drive::shm(session, launcher, &request, interrupt, progress);
    rec.results.absorb(outcome.run.results);
    if let Err(e) = outcome.suite {
        rec.incomplete.push(Incomplete::new(Stopped::SuiteStopped {
            suite: Suite::Shm,
            cause: e.to_string(),
        }));
    }
    if let Err(e) = outcome.arms {
        rec.incomplete
            .push(Incomplete::new(Stopped::MemoryTypeArmsStopped {
                cause: e.to_string(),
            }));
    }
}

/// The host is back as it was (or the restore failed, which the record says).
pub struct Restored {
    ctx: Context,
    suites: SuiteRecord,
    restore: Option<Result<RestoreReport, IsolateError>>,
}

impl SuitesDone {
    /// Puts every journaled change back: the host comes before the report.
    /// The host lock is released with it (the guard holds it).
    pub fn restore(self, progress: &dyn Progress) -> Restored {
        let restore = self.guard.map(|applied| {
            progress.phase("isolation: restoring the host from the journal");
            applied.restore()
        });
        Restored {
            ctx: self.ctx,
            suites: self.suites,
            restore,
        }
    }
}

/// The run's record, and how the run ended.
pub struct Recorded {
    /// What was written to `results.json`.
    pub record: RunRecord,
    /// How the run ended, as an exit status.
    pub status: ExitStatus,
    /// The report directory.
    pub out: PathBuf,
    sign: Option<PathBuf>,
}

impl Restored {
    /// The record of the run (what `results.json` holds) and its exit status.
    pub fn record(self) -> Recorded {
        let Restored {
            mut ctx,
            mut suites,
            restore,
        } = self;
        ctx.notes.append(&mut suites.notes);
        if let Some(Ok(r)) = &restore
            && !r.inherited.is_empty()
        {
            ctx.notes.push(format!(
                "restore widened {} task(s) started during the run that had inherited a mask isolation imposed on their parent ({})",
                r.inherited.len(),
                crate::records::inherited_summary(&r.inherited)
            ));
        }
        let failed_restore = records::restore_summary(restore.as_ref());
        if let Some(what) = &failed_restore {
            suites.results.warnings.push(Warning::new(
                WarningKind::HostNotRestored,
                format!(
                    "the host was NOT fully restored (FAILED: {what}); run `{}`",
                    vmbench_isolate::journal::restore_command(
                        &ctx.plan.root.root().display().to_string(),
                        &ctx.plan.journal
                    )
                ),
            ));
        }
        let isolation = records::knob_records(&IsolationOutcome {
            audit: &ctx.audit,
            applied: ctx.applied,
            skip: &ctx.plan.skip,
            unmovable: &ctx.unmovable,
            restore: restore.as_ref(),
        });
        crate::outcome::label_guests(&mut suites.results, &suites.guests);
        let accel = match suites.guests.as_slice() {
            [first, rest @ ..] if rest.iter().all(|g| g.accel == first.accel) => Some(first.accel),
            _ => None,
        };
        let end = RunEnd {
            interrupted: suites.interrupted,
            complete: suites.incomplete.is_empty(),
            restored: failed_restore.is_none(),
        };
        let status = outcome::run_status(&end, &suites.results);
        let record = RunRecord {
            schema_version: RUN_SCHEMA_VERSION,
            vmbench_version: env!("CARGO_PKG_VERSION").into(),
            build: Some(crate::identity::build_record()),
            command: ctx.plan.command.clone(),
            started_utc: ctx.started_utc,
            accel,
            guests: suites.guests,
            guest_flavour: match ctx.plan.guest.guest {
                GuestKind::Linux => "linux".into(),
                GuestKind::Micro => "micro (VM-exit suite), linux (shm suite)".into(),
            },
            suites: ctx.plan.suites.clone(),
            complete: end.complete,
            incomplete: suites.incomplete,
            host_rows: ctx
                .spec
                .rows()
                .into_iter()
                .map(|r| SpecRow {
                    section: r.section.to_string(),
                    key: r.key,
                    value: r.value,
                })
                .collect(),
            host: ctx.spec.clone(),
            guest: suites.guest_spec,
            qemu: suites.qemu,
            isolation,
            isolation_notes: ctx.notes,
            pinning: suites.pinning,
            residual_noise: ctx.residual_noise,
            suite_context: suites.contexts,
            results: suites.results,
        };
        Recorded {
            record,
            status,
            out: ctx.plan.out,
            sign: ctx.plan.sign,
        }
    }
}

impl Recorded {
    /// The minutes of measurement are not lost to a full disk or a vanished
    /// directory: results.json alone goes to a fresh private directory under
    /// the temporary directory. Says where, and how to render it.
    fn save_elsewhere(&self) -> String {
        let saved = vmbench_host::files::private_dir(&std::env::temp_dir())
            .map_err(|e| e.to_string())
            .and_then(|dir| {
                let json = serde_json::to_string(&self.record).map_err(|e| e.to_string())?;
                vmbench_host::files::OutputDir::open(&dir)
                    .and_then(|d| d.write(vmbench_publish::RESULTS, json.as_bytes()))
                    .map_err(|e| e.to_string())?;
                Ok(dir)
            });
        match saved {
            Ok(dir) => format!(
                "the results were saved to {} (render the report there with `vmbench report render {}`, or copy it where there is room)",
                dir.join(vmbench_publish::RESULTS).display(),
                dir.display()
            ),
            Err(e) => format!("saving the results elsewhere failed too: {e}"),
        }
    }

    /// Writes the output directory (report, results, CSVs, plots, manifest)
    /// and signs it when the plan says so.
    pub fn publish(&self, progress: &dyn Progress) -> Result<(), RunError> {
        progress.phase(&format!("writing the report to {}", self.out.display()));
        let manifest = match vmbench_publish::write_dir(&self.record, &self.out) {
            Ok(m) => m,
            Err(source) => {
                return Err(RunError::PublishElsewhere {
                    out: self.out.display().to_string(),
                    saved: self.save_elsewhere(),
                    source,
                });
            }
        };
        if let Some(key) = &self.sign {
            // The manifest as written, with the hashes of the bytes this
            // run wrote: a file swapped on disk since does not verify.
            let fingerprint = vmbench_publish::sign::sign_manifest(&self.out, key, &manifest)?;
            progress.step(&format!("signed with {fingerprint}"));
        }
        Ok(())
    }
}
