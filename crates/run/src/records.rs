//! What a run writes about itself beside the measurements: the time, QEMU,
//! and every isolation knob (wanted, found, changed, restored).

use vmbench_isolate::apply::RestoreReport;
use vmbench_isolate::model::Change;
use vmbench_isolate::{Audit, IsolateError, KnobClass};
use vmbench_results::{KnobRecord, QemuRecord, RestoreState};
use vmbench_vm::Vm;

/// Now in UTC: `YYYYMMDD-HHMMSS` (`compact`, for directory names) or
/// `YYYY-MM-DDTHH:MM:SSZ`.
pub fn utc_stamp(compact: bool) -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format_utc(secs, compact)
}

fn format_utc(secs: u64, compact: bool) -> String {
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let (h, mi, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    if compact {
        format!("{y:04}{m:02}{d:02}-{h:02}{mi:02}{s:02}")
    } else {
        format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{s:02}Z")
    }
}

/// QEMU as the report shows it: path, version, Nix store path, command line.
pub fn qemu_record(vm: &Vm) -> QemuRecord {
    let path = vm.config.binary.display().to_string();
    // /nix/store/HASH-NAME/bin/qemu-… → the store path.
    let store_path = path
        .strip_prefix("/nix/store/")
        .and_then(|rest| rest.split('/').next())
        .map(|p| format!("/nix/store/{p}"));
    QemuRecord {
        path,
        version: vm.qemu_version.clone(),
        store_path,
        command_line: vm.config.command_line(),
    }
}

/// How the isolation went, as the knob records need it.
pub struct IsolationOutcome<'a> {
    /// The audit of every knob.
    pub audit: &'a Audit,
    /// Whether runtime knobs were applied at all.
    pub applied: bool,
    /// Runtime knobs the run was told to leave alone.
    pub skip: &'a [vmbench_results::KnobId],
    /// IRQs the kernel refused to move.
    pub unmovable: &'a [String],
    /// None when nothing was applied.
    pub restore: Option<&'a Result<RestoreReport, IsolateError>>,
}

/// One record per audited knob.
pub fn knob_records(o: &IsolationOutcome) -> Vec<KnobRecord> {
    o.audit
        .knobs
        .iter()
        .map(|k| {
            let changed = o.applied
                && k.class == KnobClass::Runtime
                && !o.skip.contains(&k.id)
                && !k.changes.is_empty();
            let moved: Vec<&str> = k
                .changes
                .iter()
                .filter_map(|c| match c {
                    Change::Affinity { target, .. } => Some(target.as_str()),
                    _ => None,
                })
                .collect();
            let mut targets: Vec<String> = k
                .changes
                .iter()
                .filter(|c| !matches!(c, Change::Affinity { .. }))
                .filter(|c| match c {
                    // The kernel refused these (managed or per-CPU IRQs): not changed.
                    Change::File { path, .. } => {
                        !o.unmovable.iter().any(|u| u.starts_with(path.as_str()))
                    }
                    _ => true,
                })
                .map(|c| match c {
                    Change::File { path, target, .. } => format!("{path} = {target}"),
                    Change::StopService { unit } => format!("{unit} stopped"),
                    Change::ServiceConfig { unit, path, .. } => {
                        format!("{path} rewritten, {unit} restarted")
                    }
                    Change::Affinity { .. } => String::new(),
                })
                .collect();
            // Hundreds of threads: one line with how many went where.
            if !moved.is_empty() {
                let mut to: Vec<&str> = moved.clone();
                to.sort_unstable();
                to.dedup();
                targets.push(format!(
                    "{} threads moved to cpus {}",
                    moved.len(),
                    to.join(" or ")
                ));
            }
            KnobRecord {
                knob: k.id,
                kind: k.class,
                wanted: k.wanted.clone(),
                found: k.found.clone(),
                verdict: k.verdict,
                changed_to: (changed && !targets.is_empty()).then(|| targets.join("; ")),
                restored: if changed {
                    restore_state(k.id, o.restore)
                } else {
                    RestoreState::Unchanged
                },
            }
        })
        .collect()
}

/// What became of this knob's changes.
fn restore_state(
    knob: vmbench_results::KnobId,
    restore: Option<&Result<RestoreReport, IsolateError>>,
) -> RestoreState {
    match restore {
        Some(Ok(r)) => {
            let errors: Vec<String> = r
                .failed
                .iter()
                .filter(|f| f.knob == knob)
                .map(|f| f.error.clone())
                .collect();
            if errors.is_empty() {
                RestoreState::Restored
            } else {
                RestoreState::Failed(errors)
            }
        }
        Some(Err(e)) => RestoreState::Failed(vec![e.to_string()]),
        // Nothing applied: nothing to restore.
        None => RestoreState::Unchanged,
    }
}

/// The tasks a restore widened, named (the first few).
pub fn inherited_summary(moves: &[vmbench_isolate::apply::InheritedMove]) -> String {
    let mut shown: Vec<String> = moves
        .iter()
        .take(6)
        .map(|m| format!("{} {} → cpus {}", m.tid, m.comm, m.to))
        .collect();
    if moves.len() > 6 {
        shown.push(format!("+{} more", moves.len() - 6));
    }
    shown.join(", ")
}

/// One line about the whole restore: None when nothing was applied.
pub fn restore_summary(restore: Option<&Result<RestoreReport, IsolateError>>) -> Option<String> {
    match restore? {
        Ok(r) if r.failed.is_empty() => None,
        Ok(r) => Some(
            r.failed
                .iter()
                .map(|f| format!("{}: {}", f.knob, f.error))
                .collect::<Vec<_>>()
                .join("; "),
        ),
        Err(e) => Some(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(format_utc(0, false), "1970-01-01T00:00:00Z");
        assert_eq!(format_utc(951_782_400, true), "20000229-000000");
        assert_eq!(format_utc(1_798_761_599, false), "2026-12-31T23:59:59Z");
    }
}
