//! Noise actually seen on the benchmark CPUs: interrupts over a window, and
//! other runnable threads.

use crate::sysfs::Sysfs;
use std::collections::BTreeMap;
use vmbench_host::CpuList;

/// `/proc/interrupts`: source → per-CPU counts (index = CPU number).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Interrupts {
    /// The CPU numbers of the header line.
    pub cpus: Vec<u32>,
    /// Source → count per CPU (in header order).
    pub rows: BTreeMap<String, Vec<u64>>,
    /// Human description per source (device name or kind).
    pub names: BTreeMap<String, String>,
}

/// Parses /proc/interrupts (None if it has no CPU header).
pub fn parse_interrupts(text: &str) -> Option<Interrupts> {
    let mut lines = text.lines();
    let header = lines.next()?;
    let cpus: Vec<u32> = header
        .split_whitespace()
        .map(|c| c.strip_prefix("CPU")?.parse().ok())
        .collect::<Option<_>>()?;
    let mut out = Interrupts {
        cpus: cpus.clone(),
        ..Default::default()
    };
    for line in lines {
        let Some((src, rest)) = line.split_once(':') else {
            continue;
        };
        let src = src.trim().to_string();
        let mut counts = Vec::with_capacity(cpus.len());
        let mut tokens = rest.split_whitespace();
        let mut desc = Vec::new();
        for _ in 0..cpus.len() {
            match tokens.next() {
                Some(t) => match t.parse::<u64>() {
                    Ok(n) => counts.push(n),
                    Err(_) => {
                        desc.push(t);
                        break;
                    }
                },
                None => break,
            }
        }
        // ERR/MIS rows carry one total, not per-CPU counts.
        if counts.len() != cpus.len() {
            continue;
        }
        desc.extend(tokens);
        out.names.insert(src.clone(), desc.join(" "));
        out.rows.insert(src, counts);
    }
    Some(out)
}

/// Interrupts that hit `bench` CPUs between two snapshots, per source, largest first.
pub fn delta_on(before: &Interrupts, after: &Interrupts, bench: &CpuList) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    for (src, counts) in &after.rows {
        let Some(prev) = before.rows.get(src) else {
            continue;
        };
        let mut d = 0u64;
        for (i, cpu) in after.cpus.iter().enumerate() {
            if bench.contains(*cpu) {
                let now = counts.get(i).copied().unwrap_or(0);
                let then = prev.get(i).copied().unwrap_or(0);
                d += now.saturating_sub(then);
            }
        }
        if d > 0 {
            out.push((src.clone(), d));
        }
    }
    out.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    out
}

/// A thread seen runnable (state R) on a benchmark CPU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunnableThread {
    /// The process.
    pub pid: u32,
    /// The thread.
    pub tid: u32,
    /// Its name.
    pub comm: String,
    /// The CPU it was runnable on.
    pub cpu: u32,
}

/// A `stat` line's name (it may hold spaces and parentheses: it ends at
/// the last `)`) and the fields after it; `fields[0]` is field 3 of
/// proc(5) (state), so field n is `fields[n - 3]`.
pub fn split_stat(text: &str) -> Option<(String, Vec<&str>)> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?.to_string();
    Some((comm, text.get(close + 1..)?.split_whitespace().collect()))
}

/// Parses `/proc/<pid>/task/<tid>/stat` into (comm, state, last CPU).
pub fn parse_stat(text: &str) -> Option<(String, char, u32)> {
    let (comm, fields) = split_stat(text)?;
    let state = fields.first()?.chars().next()?;
    // Field 39 (processor) of proc(5); fields[0] is field 3 (state).
    let cpu = fields.get(36)?.parse().ok()?;
    Some((comm, state, cpu))
}

/// Threads other than `exclude_pid`'s that are runnable on a benchmark CPU now.
pub fn runnable_on(
    fs: &dyn Sysfs,
    bench: &CpuList,
    exclude_pid: Option<u32>,
) -> Vec<RunnableThread> {
    let mut out = Vec::new();
    let Ok(pids) = fs.list("/proc") else {
        return out;
    };
    for pid in pids.iter().filter_map(|p| p.parse::<u32>().ok()) {
        if Some(pid) == exclude_pid {
            continue;
        }
        let Ok(tids) = fs.list(&format!("/proc/{pid}/task")) else {
            continue;
        };
        for tid in tids.iter().filter_map(|t| t.parse::<u32>().ok()) {
            let Ok(stat) = fs.read(&format!("/proc/{pid}/task/{tid}/stat")) else {
                continue;
            };
            if let Some((comm, 'R', cpu)) = parse_stat(&stat)
                && bench.contains(cpu)
            {
                out.push(RunnableThread {
                    pid,
                    tid,
                    comm,
                    cpu,
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const BEFORE: &str = "           CPU0       CPU1       \n  0:         44          0   IO-APIC   2-edge      timer\n 24:       1000        500   PCI-MSI 1-edge      nvme0q1\nLOC:       9000       8000   Local timer interrupts\nERR:          0\n";
    const AFTER: &str = "           CPU0       CPU1       \n  0:         44          0   IO-APIC   2-edge      timer\n 24:       1010        530   PCI-MSI 1-edge      nvme0q1\nLOC:       9100       8250   Local timer interrupts\nERR:          0\n";

    #[test]
    fn interrupt_deltas_on_bench_cpus() {
        let a = parse_interrupts(BEFORE).unwrap();
        let b = parse_interrupts(AFTER).unwrap();
        assert_eq!(a.cpus, vec![0, 1]);
        assert!(!a.rows.contains_key("ERR"));
        assert_eq!(a.names["LOC"], "Local timer interrupts");
        let d = delta_on(&a, &b, &CpuList::from_cpus([1]));
        assert_eq!(d, vec![("LOC".to_string(), 250), ("24".to_string(), 30)]);
    }

    #[test]
    fn stat_with_spaces_and_parens_in_comm() {
        let mut s = String::from("42 (CPU 0/KVM (x)) R");
        for i in 4..=38 {
            s.push_str(&format!(" {i}"));
        }
        s.push_str(" 3 0 0");
        let (comm, state, cpu) = parse_stat(&s).unwrap();
        assert_eq!((comm.as_str(), state, cpu), ("CPU 0/KVM (x)", 'R', 3));
        assert!(parse_stat("garbage").is_none());
    }
}
