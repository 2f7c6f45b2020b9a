//! Choosing the benchmark CPUs and the housekeeping CPUs.

use crate::IsolateError;
use crate::cmdline::Cmdline;
use crate::model::CpuSelection;
use crate::sysfs::Sysfs;
use vmbench_host::CpuList;

/// The online CPUs (/sys/devices/system/cpu/online).
pub fn online(fs: &dyn Sysfs) -> Result<CpuList, IsolateError> {
    let text = fs
        .read("/sys/devices/system/cpu/online")
        .map_err(IsolateError::Online)?;
    CpuList::parse(&text).map_err(IsolateError::OnlineList)
}

/// Number of CPU bits kernel masks are printed with (from `possible`).
pub fn mask_width(fs: &dyn Sysfs, online: &CpuList) -> u32 {
    fs.read("/sys/devices/system/cpu/possible")
        .ok()
        .and_then(|t| CpuList::parse(&t).ok())
        .unwrap_or_else(|| online.clone())
        .iter()
        .last()
        .map_or(1, |c| c + 1)
}

/// The benchmark CPUs: `--cpus` when given; else the isolated CPUs (sysfs, then
/// `isolcpus=`, then `nohz_full`); else the last online CPU (CPU 0 carries
/// most housekeeping work on a stock kernel, the last one the least).
pub fn select(
    fs: &dyn Sysfs,
    cmdline: &Cmdline,
    requested: Option<&CpuList>,
) -> Result<CpuSelection, IsolateError> {
    let online = online(fs)?;
    if online.len() < 2 {
        return Err(IsolateError::TooFewOnline(online));
    }
    let (bench, source) = match requested {
        Some(req) => {
            if req.is_empty() {
                return Err(IsolateError::NoCpus);
            }
            let offline = req.difference(&online);
            if !offline.is_empty() {
                return Err(IsolateError::Offline {
                    requested: req.clone(),
                    offline,
                    online,
                });
            }
            (req.clone(), "--cpus".to_string())
        }
        None => default_bench(fs, cmdline, &online),
    };
    let housekeeping = online.difference(&bench);
    if housekeeping.is_empty() {
        return Err(IsolateError::NoHousekeeping { bench, online });
    }
    Ok(CpuSelection {
        online,
        bench,
        housekeeping,
        source,
    })
}

fn default_bench(fs: &dyn Sysfs, cmdline: &Cmdline, online: &CpuList) -> (CpuList, String) {
    let from_sysfs = |path: &str| {
        fs.read(path)
            .ok()
            .and_then(|t| CpuList::parse(&t).ok())
            .map(|l| l.intersection(online))
            .filter(|l| !l.is_empty() && l != online)
    };
    if let Some(l) = from_sysfs("/sys/devices/system/cpu/isolated") {
        return (l, "isolated CPUs (/sys/devices/system/cpu/isolated)".into());
    }
    if let Ok(Some(i)) = cmdline.isolcpus() {
        let l = i.cpus.intersection(online);
        if !l.is_empty() && &l != online {
            return (l, "isolcpus= on the kernel cmdline".into());
        }
    }
    if let Some(l) = from_sysfs("/sys/devices/system/cpu/nohz_full") {
        return (
            l,
            "nohz_full CPUs (/sys/devices/system/cpu/nohz_full)".into(),
        );
    }
    let last = online.iter().last().unwrap_or(0);
    (
        CpuList::from_cpus([last]),
        format!("no isolated CPUs: auditing cpu{last}, the last online CPU (choose with --cpus)"),
    )
}
