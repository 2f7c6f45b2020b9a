//! The preflight: every reason the run cannot start, each with what to do.
//! It reads and changes nothing; only a plan that passes it becomes a
//! [`Preflighted`], the only thing that can isolate the host.

use crate::config::ApplyMode;
use crate::plan::Plan;
use crate::progress::Progress;
use vmbench_isolate::lock::HostLock;
use vmbench_isolate::{Audit, AuditOptions, IsolateError, KnobClass, journal};

/// A plan that passed the preflight, the audit it made, and the host lock
/// when the run will change the host.
pub struct Preflighted {
    pub(crate) plan: Plan,
    pub(crate) audit: Audit,
    pub(crate) lock: Option<HostLock>,
}

impl Preflighted {
    /// The plan the preflight passed.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// What the isolation audit found.
    pub fn audit(&self) -> &Audit {
        &self.audit
    }
}

/// Why the run cannot start; nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot start; nothing was changed:{}", .reasons.iter().map(|r| format!("\n  - {r}")).collect::<String>())]
pub struct Blocked {
    /// One line each, with what to do.
    pub reasons: Vec<String>,
}

/// Checks everything a run needs before anything changes: the host lock
/// (when the run will apply isolation: one vmbench at a time changes a
/// host), an unrestored journal, QEMU, the guest image, the signing key,
/// the output directory, and the isolation audit (a housekeeping CPU left;
/// with `apply: yes`, every change permitted). Taking the lock is the only
/// thing it does besides reading.
pub fn preflight(plan: Plan, progress: &dyn Progress) -> Result<Preflighted, Blocked> {
    if let Some(note) = plan.depth.note(plan.repeat) {
        progress.phase(&note);
    }
    progress.phase("preflight (nothing is changed yet)");
    let mut reasons = Vec::new();
    let lock = if crate::phases::will_apply(&plan) {
        match HostLock::acquire(&plan.root, &plan.command) {
            Ok(l) => Some(l),
            Err(e @ IsolateError::Busy { .. }) => {
                reasons.push(e.to_string());
                None
            }
            Err(e) => {
                reasons.push(format!("{e}: {}", error_causes(&e)));
                None
            }
        }
    } else {
        None
    };
    let audit = vmbench_isolate::audit(
        &plan.root,
        &AuditOptions {
            cpus: plan.cpus.clone(),
            noise: plan.noise,
            threads: Default::default(),
            keep: plan.keep_threads.clone(),
        },
    );
    environment_blockers(&plan, &mut reasons);
    match &audit {
        Err(e) => reasons.push(format!("isolation audit: {e}")),
        Ok(a) => audit_blockers(&plan, a, &mut reasons),
    }
    match audit {
        Ok(audit) if reasons.is_empty() => Ok(Preflighted { plan, audit, lock }),
        _ => Err(Blocked { reasons }),
    }
}

/// An error's causes on one line (a blocked run prints reasons, not chains).
fn error_causes(e: &dyn std::error::Error) -> String {
    let mut out = Vec::new();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push(c.to_string());
        cause = c.source();
    }
    out.join(": ")
}

fn environment_blockers(plan: &Plan, reasons: &mut Vec<String>) {
    match journal::Journal::load(&plan.journal) {
        Ok(Some(j)) => {
            reasons.push(vmbench_isolate::apply::unrestored(&j, &plan.journal).to_string())
        }
        Ok(None) => {}
        Err(e) => reasons.push(format!("isolation journal: {e}")),
    }
    if let Err(e) = vmbench_host::qemu::resolve(plan.guest.qemu.as_deref()) {
        reasons.push(format!(
            "QEMU: {e} (install qemu-system-x86, or set vm.qemu / VMBENCH_QEMU)"
        ));
    }
    if plan.needs_linux_guest() {
        match &plan.guest.image {
            Some(d) if !d.join("bzImage").is_file() => reasons.push(format!(
                "guest image {}: no bzImage there (build one with `vmbench image build --out {}` or `nix build .#guest-image`)",
                d.display(),
                d.display()
            )),
            None => match vmbench_vm::image::default_dir() {
                Err(e) => reasons.push(e.to_string()),
                Ok(dir) => {
                    if dir.exists()
                        && let Err(e) = vmbench_vm::image::check_image_dir(&dir)
                    {
                        reasons.push(e.to_string());
                    } else if !dir.join("bzImage").is_file()
                        && let Err(e) = vmbench_vm::image::default_kernel()
                    {
                        reasons.push(format!(
                            "no guest image yet and none can be built: {e} (install linux-image-amd64 and linux-headers-amd64)"
                        ));
                    }
                }
            },
            _ => {}
        }
    }
    if let Some(k) = &plan.sign {
        match vmbench_publish::sign::SigningKey::load(k).and_then(|key| key.probe()) {
            Ok(()) => {}
            Err(e) => reasons.push(format!("--sign: {e}")),
        }
        // A signed report is written where only root or this user can
        // change it: the owner of the directory could otherwise swap a file
        // between its writing and the signature, or plant files the
        // manifest would list.
        if let Err(e) = vmbench_host::files::check_trusted_new_dir(&plan.out) {
            reasons.push(format!(
                "--out {} with --sign: {e} (sign into a directory of your own)",
                plan.out.display()
            ));
        }
    }
    if plan.out.exists() {
        let empty = std::fs::read_dir(&plan.out)
            .map(|mut d| d.next().is_none())
            .unwrap_or(false);
        if !empty {
            reasons.push(format!(
                "--out {}: exists and is not empty; choose another directory (nothing is overwritten)",
                plan.out.display()
            ));
            return;
        }
    }
    if let Err(e) = vmbench_host::files::OutputDir::check_writable(&plan.out) {
        reasons.push(format!(
            "--out {}: the report could not be written there: {e} (choose a writable directory)",
            plan.out.display()
        ));
    }
}

fn audit_blockers(plan: &Plan, a: &Audit, reasons: &mut Vec<String>) {
    if a.cpus.housekeeping.is_empty() {
        reasons.push(format!(
            "benchmark CPUs {} leave no housekeeping CPU for QEMU's other threads; give fewer with --cpus",
            a.cpus.bench
        ));
    }
    if plan.apply == ApplyMode::Yes {
        let blocked: Vec<String> = a
            .knobs
            .iter()
            .filter(|k| {
                k.class == KnobClass::Runtime && !plan.skip.contains(&k.id) && !k.changes.is_empty()
            })
            .flat_map(|k| k.blocked.iter().map(move |b| format!("{}: {b}", k.id)))
            .collect();
        if !blocked.is_empty() {
            reasons.push(format!(
                "isolation.apply is yes but these changes are blocked: {} (run as root, skip them, or set apply: auto)",
                blocked.join("; ")
            ));
        }
    }
}
