//! irqbalance, as tuned's cpu-partitioning leaves it: running, with the
//! benchmark CPUs banned on top of everything it already bans.
//!
//! What irqbalance bans (its `setup_banned_cpus`, 1.8 and later): a
//! non-empty legacy `IRQBALANCE_BANNED_CPUS` (a hex mask) wins; else a
//! non-empty `IRQBALANCE_BANNED_CPULIST`; else, automatically, the isolated
//! and nohz_full CPUs. Before 1.8 only the legacy mask is read. So setting
//! `IRQBALANCE_BANNED_CPULIST=<bench>` alone can *un-ban* the isolated CPUs,
//! is ignored under a legacy mask or an old irqbalance, and is needless
//! where the automatic ban already covers the benchmark CPUs.

use super::ctx::{APPLY_HINT, Ctx, nohz_set, processes_named, sysfs_cpulist};
use super::partitioning::has_systemctl;
use crate::model::{Change, KnobId, KnobReport, Verdict};
use crate::trust::MAX_VALUE_BYTES;
use vmbench_host::CpuList;

/// irqbalance's configuration files (Debian/Ubuntu, then RHEL/SUSE).
pub const IRQBALANCE_CONFIGS: [&str; 2] = ["/etc/default/irqbalance", "/etc/sysconfig/irqbalance"];
/// The unit restarted after its configuration changes.
pub const IRQBALANCE_UNIT: &str = "irqbalance.service";
/// The banned CPU list irqbalance 1.8 and later read.
const CPULIST: &str = "IRQBALANCE_BANNED_CPULIST";
/// The legacy banned mask (hex): the only variable before 1.8, and still
/// first when non-empty.
const LEGACY: &str = "IRQBALANCE_BANNED_CPUS";
/// The comment apply writes above a variable it adds.
const MARK: &str = "# Set by vmbench isolate apply (restored afterwards): the benchmark CPUs.";
/// Where systemd finds the unit and its drop-ins, most specific first.
const UNIT_DIRS: [&str; 4] = [
    "/etc/systemd/system",
    "/run/systemd/system",
    "/usr/lib/systemd/system",
    "/lib/systemd/system",
];

/// The value of the last uncommented assignment of `var` (the shell that
/// sources the file, and systemd's EnvironmentFile, keep the last one).
pub fn assignment<'a>(config: &'a str, var: &str) -> Option<&'a str> {
    config
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix(var)?.strip_prefix('='))
        .map(|v| v.trim().trim_matches('"').trim_matches('\''))
        .next_back()
}

fn assigns(line: &str, var: &str) -> bool {
    line.trim_start()
        .strip_prefix(var)
        .is_some_and(|r| r.starts_with('='))
}

/// `config` with `var` set to `value`: every assignment replaced in place,
/// or one appended under a comment saying who set it.
pub fn with_assignment(config: &str, var: &str, value: &str) -> String {
    let line = format!("{var}={value}");
    let mut replaced = false;
    let mut out: String = config
        .split_inclusive('\n')
        .map(|l| {
            if assigns(l, var) {
                replaced = true;
                let end = if l.ends_with('\n') { "\n" } else { "" };
                format!("{line}{end}")
            } else {
                l.to_string()
            }
        })
        .collect();
    if !replaced {
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(MARK);
        out.push('\n');
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// A configuration someone edited while the host was isolated: their
/// edits kept, only the banned variables put back as `original` had them
/// (its lines where it had them, gone where it had none).
pub fn revert_banned(current: &str, original: &str) -> String {
    let mut out = String::new();
    let mut put_back = [false, false];
    for line in current.split_inclusive('\n') {
        if line.trim_end() == MARK {
            continue;
        }
        if let Some(i) = [CPULIST, LEGACY].iter().position(|v| assigns(line, v)) {
            let var = [CPULIST, LEGACY][i];
            if !put_back[i] {
                put_back[i] = true;
                for orig in original.split_inclusive('\n').filter(|l| assigns(l, var)) {
                    out.push_str(orig);
                    if !orig.ends_with('\n') {
                        out.push('\n');
                    }
                }
            }
            continue;
        }
        out.push_str(line);
    }
    out
}

/// `major.minor` of the installed irqbalance: from dpkg's database (a file,
/// so fixture trees carry it too), else on the running host from
/// `irqbalance --version` of a root-owned binary.
fn installed_version(ctx: &Ctx) -> Option<(u32, u32)> {
    let parse = |v: &str| -> Option<(u32, u32)> {
        // Debian's "1:1.9.4-1" has an epoch; "irqbalance version 1.9.2".
        let v = v.rsplit(':').next()?.trim();
        let mut it = v.split(['.', '-', '~', '+']);
        Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
    };
    if let Ok(status) = ctx.fs.read("/var/lib/dpkg/status") {
        for stanza in status.split("\n\n") {
            let field = |name: &str| {
                stanza
                    .lines()
                    .find_map(|l| l.strip_prefix(name)?.strip_prefix(':'))
                    .map(str::trim)
            };
            if field("Package") == Some("irqbalance")
                && field("Status").is_some_and(|s| s.ends_with(" installed"))
            {
                return field("Version").and_then(parse);
            }
        }
    }
    if !ctx.live {
        return None;
    }
    use std::os::unix::fs::MetadataExt;
    let bin = ["/usr/sbin/irqbalance", "/sbin/irqbalance"]
        .into_iter()
        .find(|b| {
            std::fs::metadata(b).is_ok_and(|m| m.is_file() && m.uid() == 0 && m.mode() & 0o022 == 0)
        })?;
    let out = std::process::Command::new(bin)
        .arg("--version")
        .output()
        .ok()?;
    // "irqbalance version 1.9.2", printed by its log() to the console.
    let text = String::from_utf8_lossy(&out.stdout) + String::from_utf8_lossy(&out.stderr);
    let line = text.lines().find(|l| l.contains("irqbalance version"))?;
    parse(line.split_whitespace().last()?)
}

/// The files the irqbalance unit reads its environment from, as its unit
/// file and drop-ins say (`EnvironmentFile=`, a leading `-` meaning
/// optional; an empty assignment resets the list). None when no unit file
/// is found.
fn unit_environment_files(ctx: &Ctx) -> Option<Vec<String>> {
    let unit = UNIT_DIRS
        .iter()
        .map(|d| format!("{d}/{IRQBALANCE_UNIT}"))
        .find(|p| ctx.fs.exists(p))?;
    let mut files = vec![unit];
    for dir in UNIT_DIRS.iter().rev() {
        let d = format!("{dir}/{IRQBALANCE_UNIT}.d");
        let mut names: Vec<String> = ctx
            .fs
            .list(&d)
            .unwrap_or_default()
            .into_iter()
            .filter(|n| n.ends_with(".conf"))
            .collect();
        names.sort();
        files.extend(names.into_iter().map(|n| format!("{d}/{n}")));
    }
    let mut env = Vec::new();
    for f in files {
        let Ok(text) = ctx.fs.read(&f) else { continue };
        for line in text.lines() {
            if let Some(v) = line.trim().strip_prefix("EnvironmentFile=") {
                if v.trim().is_empty() {
                    env.clear();
                }
                env.extend(
                    v.split_whitespace()
                        .map(|p| p.trim_start_matches('-').to_string()),
                );
            }
        }
    }
    Some(env)
}

/// What irqbalance bans with `config`, per its version (None: unknown).
fn effective_ban(
    config: &str,
    version: Option<(u32, u32)>,
    automatic: &CpuList,
) -> Result<(CpuList, String), String> {
    if let Some(mask) = assignment(config, LEGACY).filter(|m| !m.is_empty()) {
        let cpus = CpuList::parse_mask(mask).map_err(|e| format!("{LEGACY}={mask}: {e}"))?;
        return Ok((cpus, format!("{LEGACY}={mask}")));
    }
    let old = version.is_some_and(|v| v < (1, 8));
    if let Some(list) = assignment(config, CPULIST).filter(|l| !l.is_empty()) {
        if old {
            return Ok((
                CpuList::new(),
                format!("{CPULIST}={list}, which irqbalance before 1.8 ignores"),
            ));
        }
        let cpus = CpuList::parse(&list.replace(' ', ","))
            .map_err(|e| format!("{CPULIST}={list}: {e}"))?;
        return Ok((cpus, format!("{CPULIST}={list}")));
    }
    match version {
        Some(_) if old => Ok((CpuList::new(), "no banned CPUs".into())),
        Some(_) => Ok((
            automatic.clone(),
            format!(
                "no variable set: irqbalance bans the isolated and nohz_full CPUs itself ({})",
                vmbench_host::rows::cpus_or_none(automatic)
            ),
        )),
        // An unknown version may be older than the automatic ban.
        None => Ok((CpuList::new(), "no variable set".into())),
    }
}

/// irqbalance: left running with the benchmark CPUs banned on top of what
/// it already bans (its configuration rewritten, the service restarted;
/// both undone by restore); stopped only where the file the unit reads
/// cannot be rewritten.
pub(super) fn irqbalance(ctx: &Ctx) -> KnobReport {
    let mut knob = KnobReport::new(KnobId::Irqbalance);
    knob.wanted = format!(
        "not running, or running with the benchmark CPUs ({}) banned on top of what it already bans",
        ctx.bench()
    );
    let pids = processes_named(ctx, "irqbalance");
    if pids.is_empty() {
        knob.found = "not running".into();
        return knob;
    }
    let running = format!(
        "running (pid {})",
        pids.iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    let version = installed_version(ctx);
    let version_text = version.map_or("version unknown".to_string(), |(a, b)| format!("{a}.{b}"));
    let isolated = match sysfs_cpulist(ctx, "/sys/devices/system/cpu/isolated") {
        Some(Ok(l)) => l,
        _ => CpuList::new(),
    };
    let automatic = isolated.union(&nohz_set(ctx));
    let config = config_read_by_unit(ctx, &mut knob);
    let config = config.and_then(|p| Some((p, ctx.fs.root().read_raw(p).ok()?)));
    if let Some((path, raw)) = &config {
        let (banned, how) = match effective_ban(raw, version, &automatic) {
            Ok(b) => b,
            Err(why) => {
                knob.invalid = Some(format!("{path}: {why}"));
                knob.verdict = Verdict::Fail;
                knob.found = running;
                return knob;
            }
        };
        if ctx.bench().is_subset(&banned) {
            knob.found = format!("{running}, irqbalance {version_text}; {path}: {how}");
            return knob;
        }
        // tuned's set: what is banned now, the isolated and nohz_full CPUs
        // (never un-banned by an explicit list), and the benchmark CPUs.
        let target_cpus = banned.union(&automatic).union(ctx.bench());
        let legacy_set = assignment(raw, LEGACY).is_some_and(|m| !m.is_empty());
        let mut target = raw.clone();
        let mut vars = Vec::new();
        if version.is_none_or(|v| v >= (1, 8)) {
            target = with_assignment(&target, CPULIST, &target_cpus.to_string());
            vars.push(format!("{CPULIST}={target_cpus}"));
        }
        // The legacy mask where it is read first (set) or alone (< 1.8),
        // and where the version is unknown (every version reads it).
        if legacy_set || version.is_none_or(|v| v < (1, 8)) {
            let mask = target_cpus.to_mask(ctx.mask_width);
            target = with_assignment(&target, LEGACY, &mask);
            vars.push(format!("{LEGACY}={mask}"));
        }
        if target.len() <= MAX_VALUE_BYTES && raw.len() <= MAX_VALUE_BYTES && !raw.contains('\0') {
            knob.found = format!("{running}, irqbalance {version_text}; {path}: {how}");
            knob.verdict = Verdict::Warn;
            knob.fix = Some(format!(
                "{APPLY_HINT}: it sets {} in {path} and restarts irqbalance",
                vars.join(" and ")
            ));
            if version.is_none() {
                knob.notes.push(format!(
                    "irqbalance's version is unknown: both {CPULIST} and {LEGACY} are set (every version reads one of them)"
                ));
            }
            if let Err(why) = ctx.fs.writable(path) {
                knob.blocked.push(why.to_string());
            }
            if ctx.live && !has_systemctl() {
                knob.blocked.push(
                    "no systemctl: irqbalance cannot be restarted to read its new configuration"
                        .into(),
                );
            }
            if !ctx.live {
                knob.notes.push(
                    "under a fixture root the configuration is rewritten but no service is restarted"
                        .into(),
                );
            }
            knob.changes.push(Change::ServiceConfig {
                unit: IRQBALANCE_UNIT.into(),
                path: path.to_string(),
                original_raw: raw.clone(),
                target,
            });
            return knob;
        }
        knob.notes.push(format!(
            "{path} is larger than {MAX_VALUE_BYTES} bytes: irqbalance is stopped instead"
        ));
    }
    knob.found = format!("{running}, irqbalance {version_text}");
    stop_instead(ctx, knob)
}

/// The configuration file the unit reads: one of ours that its
/// EnvironmentFile names, or, with no unit file to ask, the first that
/// exists. None (with a note) when the unit reads none of ours.
fn config_read_by_unit(ctx: &Ctx, knob: &mut KnobReport) -> Option<&'static str> {
    let Some(env) = unit_environment_files(ctx) else {
        return IRQBALANCE_CONFIGS
            .iter()
            .find(|p| ctx.fs.exists(p))
            .copied();
    };
    let ours = IRQBALANCE_CONFIGS
        .iter()
        .find(|c| env.iter().any(|e| e == *c) && ctx.fs.exists(c));
    if ours.is_none() {
        knob.notes.push(format!(
            "{IRQBALANCE_UNIT} reads {} (EnvironmentFile), none of which is an existing {}: irqbalance is stopped instead",
            if env.is_empty() {
                "no environment file".to_string()
            } else {
                env.join(", ")
            },
            IRQBALANCE_CONFIGS.join(" or ")
        ));
    }
    ours.copied()
}

/// Where no configuration can be rewritten: irqbalance stopped for the run.
fn stop_instead(ctx: &Ctx, mut knob: KnobReport) -> KnobReport {
    knob.verdict = Verdict::Warn;
    knob.fix = Some(APPLY_HINT.into());
    if !ctx.live {
        knob.blocked
            .push("services are only stopped on the running host (--root is not /)".into());
    } else if !has_systemctl() {
        knob.blocked
            .push("no systemctl: stop irqbalance by hand, and start it again afterwards".into());
    }
    knob.changes.push(Change::StopService {
        unit: IRQBALANCE_UNIT.into(),
    });
    knob
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_are_set_in_place_or_appended_and_reverted_alone() {
        let debian = "# Options\n#IRQBALANCE_BANNED_CPULIST=0\nIRQBALANCE_ONESHOT=\n";
        assert_eq!(assignment(debian, CPULIST), None);
        let set = with_assignment(debian, CPULIST, "2-3");
        assert!(set.starts_with(debian), "{set}");
        assert_eq!(assignment(&set, CPULIST), Some("2-3"));
        // IRQBALANCE_BANNED_CPUS is not IRQBALANCE_BANNED_CPULIST's prefix match.
        assert_eq!(assignment(&set, LEGACY), None);
        let quoted = "IRQBALANCE_BANNED_CPULIST=\"5\"\nOTHER=1";
        assert_eq!(assignment(quoted, CPULIST), Some("5"));
        assert_eq!(
            with_assignment(quoted, CPULIST, "2-3"),
            "IRQBALANCE_BANNED_CPULIST=2-3\nOTHER=1"
        );
        // An admin's edit made while isolated survives the revert.
        let edited = format!("{set}IRQBALANCE_ARGS=--journal\n");
        assert_eq!(
            revert_banned(&edited, debian),
            format!("{debian}IRQBALANCE_ARGS=--journal\n")
        );
        let legacy = "IRQBALANCE_BANNED_CPUS=8\n";
        let both = with_assignment(&with_assignment(legacy, LEGACY, "c"), CPULIST, "2-3");
        assert_eq!(
            revert_banned(&format!("X=1\n{both}"), legacy),
            "X=1\nIRQBALANCE_BANNED_CPUS=8\n"
        );
    }
}
