//! What every knob's audit reads (the [`Ctx`]) and the helpers several
//! knobs share.

use crate::cmdline::Cmdline;
use crate::model::{Change, CpuSelection, KnobReport, Verdict};
use crate::sysfs::Sysfs;
use vmbench_host::{CpuList, ReadError};

/// Everything a knob needs to judge itself.
pub struct Ctx<'a> {
    /// /proc and /sys.
    pub fs: &'a dyn Sysfs,
    /// The kernel command line.
    pub cmdline: Cmdline,
    /// The benchmark and housekeeping CPUs.
    pub cpus: CpuSelection,
    /// Bits in an IRQ affinity mask (the highest possible CPU + 1).
    pub mask_width: u32,
    /// Probing the running machine (root is `/`): services, rlimits.
    pub live: bool,
    /// How long to count interrupts on the benchmark CPUs, and the
    /// residual-noise detector's threshold.
    pub noise: crate::osnoise::NoiseSettings,
    /// Which threads the thread-affinity knob looks at.
    pub threads: crate::affinity::ThreadScope,
    /// Threads it leaves where they are.
    pub keep: crate::affinity::ThreadExclusion,
}

impl Ctx<'_> {
    pub(crate) fn bench(&self) -> &CpuList {
        &self.cpus.bench
    }
    pub(crate) fn hk(&self) -> &CpuList {
        &self.cpus.housekeeping
    }
    pub(crate) fn read(&self, path: &str) -> Result<String, ReadError> {
        self.fs.read(path).map(|s| s.trim().to_string())
    }
    /// The trimmed content of `path`: None when it does not exist, and
    /// when it cannot be read (then the error is a note of `knob`).
    pub(crate) fn read_present(&self, knob: &mut KnobReport, path: &str) -> Option<String> {
        match self.read(path) {
            Ok(r) => Some(r),
            Err(e) if e.is_missing() => None,
            Err(e) => {
                knob.notes.push(e.to_string());
                None
            }
        }
    }
    /// Plans a write of `target` to `path`, recording the current content.
    pub(crate) fn plan(&self, knob: &mut KnobReport, path: &str, original: &str, target: &str) {
        let raw = self.fs.root().read_raw(path).unwrap_or_default();
        if let Err(why) = self.fs.writable(path) {
            knob.blocked.push(why.to_string());
        }
        knob.changes.push(Change::File {
            path: path.to_string(),
            original_raw: raw,
            original: original.to_string(),
            target: target.to_string(),
        });
    }
}

pub(crate) fn suggest_hint(ctx: &Ctx) -> String {
    format!("see `vmbench isolate suggest --cpus {}`", ctx.bench())
}

pub(crate) fn add_to_cmdline(ctx: &Ctx, param: &str) -> String {
    format!(
        "add {param}={} to the kernel cmdline and reboot ({})",
        ctx.bench(),
        suggest_hint(ctx)
    )
}

pub(crate) const APPLY_HINT: &str = "`vmbench isolate apply` sets it (and restore puts it back)";

/// A CPU list a sysfs file holds that could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UnreadableList {
    #[error(transparent)]
    Read(vmbench_host::ReadError),
    #[error(transparent)]
    Parse(vmbench_host::CpuListError),
}

/// The CPU list in a sysfs file; None when the file does not exist.
pub(crate) fn sysfs_cpulist(ctx: &Ctx, path: &str) -> Option<Result<CpuList, UnreadableList>> {
    match ctx.read(path) {
        Ok(t) => Some(CpuList::parse(&t).map_err(UnreadableList::Parse)),
        Err(e) if e.is_missing() => None,
        Err(e) => Some(Err(UnreadableList::Read(e))),
    }
}

pub(crate) fn nohz_set(ctx: &Ctx) -> CpuList {
    match sysfs_cpulist(ctx, "/sys/devices/system/cpu/nohz_full") {
        Some(Ok(l)) => l,
        _ => CpuList::new(),
    }
}

/// PIDs whose comm is `name`.
pub(crate) fn processes_named(ctx: &Ctx, name: &str) -> Vec<u32> {
    crate::affinity::processes_named(ctx.fs, &[name])
}

/// `mask` without the benchmark CPUs; the housekeeping CPUs if nothing is left.
pub(crate) fn without_bench(ctx: &Ctx, mask: &CpuList) -> CpuList {
    ctx.cpus.off_bench(mask)
}

pub(crate) fn mask_knob(ctx: &Ctx, knob: &mut KnobReport, paths: &[&str]) {
    let mut found = Vec::new();
    let mut any = false;
    for path in paths {
        let Some(raw) = ctx.read_present(knob, path) else {
            continue;
        };
        any = true;
        let mask = match CpuList::parse_mask(&raw) {
            Ok(m) => m,
            Err(e) => {
                knob.invalid = Some(format!("{path}: {e}"));
                knob.verdict = Verdict::Fail;
                continue;
            }
        };
        found.push(format!(
            "{path}={raw} (cpus {})",
            vmbench_host::rows::cpus_or_none(&mask)
        ));
        if !mask.intersection(ctx.bench()).is_empty() {
            knob.verdict = knob.verdict.max(Verdict::Warn);
            let groups = raw.split(',').count() as u32;
            let target = without_bench(ctx, &mask).to_mask(ctx.mask_width.max(groups * 32 - 31));
            ctx.plan(knob, path, &raw, &target);
        }
    }
    if !any {
        knob.verdict = Verdict::NotApplicable;
        knob.found = format!("{} not present", paths.join(", "));
        return;
    }
    knob.found = found.join("; ");
    if !knob.changes.is_empty() {
        knob.fix = Some(APPLY_HINT.into());
    }
}

/// The first dozen of `v`, and how many more.
pub(crate) fn short_names(v: &[String]) -> String {
    let shown = v.iter().take(12).cloned().collect::<Vec<_>>().join(", ");
    if v.len() > 12 {
        format!("{shown} … (+{})", v.len() - 12)
    } else {
        shown
    }
}

pub(crate) fn short_list(v: &[u32]) -> String {
    let shown: Vec<String> = v.iter().take(12).map(u32::to_string).collect();
    if v.len() > 12 {
        format!("{} … (+{})", shown.join(","), v.len() - 12)
    } else {
        shown.join(",")
    }
}

/// The selected word of a file like `always [madvise] never`.
pub fn bracketed(raw: &str) -> Option<&str> {
    let open = raw.find('[')?;
    let close = raw[open..].find(']')? + open;
    Some(&raw[open + 1..close])
}
