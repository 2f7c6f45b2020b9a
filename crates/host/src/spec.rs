//! The host specification every vmbench report carries (`vmbench info`).

use crate::cpuid::{self, CpuidFacts};
use crate::cpuinfo::{self, CpuInfoBlock};
use crate::kvm::{self, DevKvmProbe, KvmModules};
use crate::power::{self, BoostState, CpuFreq, CpuIdle};
use crate::qemu::{self, QemuVersion};
use crate::tsc::{self, Calibration, TscFrequency};
use crate::{CpuList, Fact, SysRoot};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

/// Version of the JSON shape of [`HostSpec`]. Bump on any incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

/// CPU flags from /proc/cpuinfo that matter when timing VM exits.
pub const FLAGS_OF_INTEREST: &[&str] = &[
    "vmx",
    "svm",
    "hypervisor",
    "constant_tsc",
    "nonstop_tsc",
    "tsc_known_freq",
    "rdtscp",
    "tsc_deadline_timer",
    "x2apic",
    "sha_ni",
];

/// How to read the host specification.
#[derive(Debug, Clone, Default)]
pub struct SpecOptions {
    /// QEMU binary (path or name in PATH); default `qemu-system-x86_64`.
    pub qemu: Option<PathBuf>,
    /// Skip the ~100 ms TSC calibration.
    pub skip_calibration: bool,
}

/// Everything `vmbench info` reports about the host (JSON: docs/info-schema.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct HostSpec {
    /// The JSON form's version.
    pub schema_version: u32,
    /// The root /proc and /sys were read under ("/" on a real host).
    pub root: String,
    /// Whether CPUID, RDTSC and /dev/kvm were probed on the running machine
    /// (only when `root` is "/").
    pub live_probes: bool,
    /// The CPU.
    pub cpu: CpuSpec,
    /// The TSC.
    pub tsc: TscSpec,
    /// The kernel.
    pub kernel: KernelSpec,
    /// KVM.
    pub kvm: KvmSpec,
    /// The QEMU that would run the guests.
    pub qemu: Fact<QemuVersion>,
    /// Frequency scaling, boost and idle states.
    pub power: PowerSpec,
}

/// The CPU, from /proc/cpuinfo, sysfs and CPUID.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CpuSpec {
    /// CPUID vendor string.
    pub vendor: Fact<String>,
    /// Brand string.
    pub model_name: Fact<String>,
    /// Family (as /proc/cpuinfo prints it).
    pub family: Fact<u32>,
    /// Model.
    pub model: Fact<u32>,
    /// Stepping.
    pub stepping: Fact<u32>,
    /// Microcode revision.
    pub microcode: Fact<String>,
    /// Online CPUs.
    pub online: Fact<CpuList>,
    /// Logical CPUs online.
    pub logical_cpus: Fact<u32>,
    /// Sockets.
    pub sockets: Fact<u32>,
    /// Physical cores.
    pub physical_cores: Fact<u32>,
    /// Hardware threads per core.
    pub threads_per_core: Fact<u32>,
    /// Simultaneous multithreading.
    pub smt: Fact<SmtState>,
    /// NUMA nodes and their CPUs.
    pub numa_nodes: Fact<Vec<NumaNode>>,
    /// Caches as seen by the first online CPU.
    pub caches: Fact<Vec<CacheInfo>>,
    /// Each flag of [`FLAGS_OF_INTEREST`]: present or not.
    pub flags: Fact<BTreeMap<String, bool>>,
    /// What CPUID says beyond /proc/cpuinfo (live probes only).
    pub cpuid: Fact<CpuidFacts>,
}

/// SMT control and state (`/sys/devices/system/cpu/smt`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SmtState {
    /// on / off / forceoff / notsupported / notimplemented.
    pub control: String,
    /// Whether sibling threads are active.
    pub active: Fact<bool>,
}

/// One NUMA node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct NumaNode {
    /// The node's number.
    pub node: u32,
    /// Its CPUs.
    pub cpus: Fact<CpuList>,
}

/// One cache (`/sys/devices/system/cpu/cpuN/cache/indexM`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CacheInfo {
    /// Level (1, 2, 3).
    pub level: Fact<u32>,
    /// `Data`, `Instruction` or `Unified`.
    pub kind: Fact<String>,
    /// Size as sysfs prints it (`48K`).
    pub size: Fact<String>,
    /// Associativity.
    pub ways: Fact<u32>,
    /// Line size in bytes.
    pub line_bytes: Fact<u32>,
    /// CPUs sharing it.
    pub shared_cpus: Fact<CpuList>,
}

/// The TSC: its frequency, a calibration and invariance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct TscSpec {
    /// The frequency reports convert ticks to ns with, and its source.
    pub frequency: Fact<TscFrequency>,
    /// Always measured when live, as a cross-check of the CPUID value.
    pub calibration: Fact<Calibration>,
    /// CPUID 80000007H:EDX[8].
    pub invariant: Fact<bool>,
}

/// The running kernel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct KernelSpec {
    /// `uname -r`.
    pub release: Fact<String>,
    /// `uname -v`.
    pub version: Fact<String>,
    /// `/proc/cmdline`.
    pub cmdline: Fact<String>,
    /// The current clocksource.
    pub clocksource: Fact<String>,
    /// Every available clocksource.
    pub available_clocksources: Fact<String>,
    /// `/sys/devices/system/cpu/vulnerabilities/*`: name → the kernel's status line.
    pub vulnerabilities: Fact<BTreeMap<String, String>>,
}

/// KVM: modules, their parameters, and /dev/kvm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct KvmSpec {
    /// Loaded KVM modules.
    pub modules: Fact<KvmModules>,
    /// module → parameter → value.
    pub parameters: BTreeMap<String, BTreeMap<String, String>>,
    /// What opening /dev/kvm showed (live probes only).
    pub dev_kvm: Fact<DevKvmProbe>,
    /// The host itself runs under a hypervisor (CPUID hypervisor bit), so
    /// guests are nested.
    pub nested: Fact<bool>,
}

/// Frequency scaling, boost and idle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct PowerSpec {
    /// cpufreq, per online CPU.
    pub cpufreq: Fact<Vec<CpuFreq>>,
    /// Turbo/boost.
    pub boost: Fact<BoostState>,
    /// cpuidle.
    pub cpuidle: CpuIdle,
}

const NOT_LIVE: &str =
    "not probed: --root points at another tree, and this probe reads the running CPU";

impl HostSpec {
    /// Reads everything. Never fails: what cannot be read is `unknown (why)`.
    pub fn gather(root: &SysRoot, opts: &SpecOptions) -> HostSpec {
        let live = root.is_host();
        let cpuinfo: Fact<Vec<CpuInfoBlock>> = match root.read("/proc/cpuinfo") {
            Err(e) => Fact::unknown(e.to_string()),
            Ok(t) => {
                let b = cpuinfo::parse(&t);
                if b.is_empty() {
                    Fact::unknown("/proc/cpuinfo has no processor block")
                } else {
                    Fact::Known(b)
                }
            }
        };
        let cpuid_facts: Fact<CpuidFacts> = if live {
            Fact::Known(cpuid::read())
        } else {
            Fact::unknown(NOT_LIVE)
        };
        let calibration: Fact<Calibration> = if !live {
            Fact::unknown(NOT_LIVE)
        } else if opts.skip_calibration {
            Fact::unknown("calibration skipped on request")
        } else {
            tsc::calibrate_default().into()
        };
        let cpu = cpu_spec(root, &cpuinfo, cpuid_facts.clone());
        let nested = cpu
            .flags
            .as_ref()
            .map(|f| f.get("hypervisor").copied().unwrap_or(false));
        let tsc = TscSpec {
            frequency: tsc::choose(&cpuid_facts, &calibration),
            calibration,
            invariant: cpuid_facts.as_ref().map(|c| c.invariant_tsc),
        };
        let kvm_modules = kvm::modules(root);
        let parameters = kvm_modules
            .known()
            .map(|m| kvm::parameters(root, m))
            .unwrap_or_default();
        let dev_kvm = if live {
            kvm::probe_dev_kvm().into()
        } else {
            Fact::unknown(NOT_LIVE)
        };
        let online_ids: Vec<u32> = cpu
            .online
            .known()
            .map(|l| l.iter().collect())
            .unwrap_or_default();
        let qemu = qemu::resolve(opts.qemu.as_deref())
            .and_then(|p| qemu::version(&p))
            .into();
        HostSpec {
            schema_version: SCHEMA_VERSION,
            root: root.root().display().to_string(),
            live_probes: live,
            tsc,
            kernel: kernel_spec(root),
            kvm: KvmSpec {
                modules: kvm_modules,
                parameters,
                dev_kvm,
                nested,
            },
            qemu,
            power: PowerSpec {
                cpufreq: power::cpufreq(root, &online_ids),
                boost: power::boost_state(root),
                cpuidle: power::cpuidle(root),
            },
            cpu,
        }
    }
}

fn from_block<T: std::str::FromStr>(cpuinfo: &Fact<Vec<CpuInfoBlock>>, key: &str) -> Fact<T> {
    let blocks = match cpuinfo {
        Fact::Known(b) => b,
        Fact::Unknown { unknown } => return Fact::unknown(unknown.clone()),
    };
    match blocks[0].get(key) {
        None => Fact::unknown(format!("/proc/cpuinfo has no {key:?} field")),
        Some(v) => match v.parse() {
            Ok(x) => Fact::Known(x),
            Err(_) => Fact::unknown(format!("/proc/cpuinfo {key:?} is malformed: {v:?}")),
        },
    }
}

fn cpu_spec(root: &SysRoot, cpuinfo: &Fact<Vec<CpuInfoBlock>>, cpuid: Fact<CpuidFacts>) -> CpuSpec {
    let online: Fact<CpuList> = root
        .read("/sys/devices/system/cpu/online")
        .map_err(|e| e.to_string())
        .and_then(|s| CpuList::parse(&s).map_err(|e| e.to_string()))
        .into();
    let online = match (online, cpuinfo) {
        (Fact::Known(l), _) => Fact::Known(l),
        // Fallback: the processor numbers in /proc/cpuinfo.
        (Fact::Unknown { unknown }, Fact::Known(blocks)) => {
            let ids: Option<Vec<u32>> = blocks
                .iter()
                .map(|b| b.get("processor").and_then(|p| p.parse().ok()))
                .collect();
            match ids {
                Some(ids) => Fact::Known(CpuList::from_cpus(ids)),
                None => Fact::unknown(unknown),
            }
        }
        (u, Fact::Unknown { .. }) => u,
    };
    let topo = topology(root, &online, cpuinfo);
    let flags = match cpuinfo {
        Fact::Known(blocks) => Fact::Known(
            FLAGS_OF_INTEREST
                .iter()
                .map(|f| (f.to_string(), blocks[0].has_flag(f)))
                .collect(),
        ),
        Fact::Unknown { unknown } => Fact::unknown(unknown.clone()),
    };
    let smt = match root.read("/sys/devices/system/cpu/smt/control") {
        Ok(control) => Fact::Known(SmtState {
            control: control.trim().to_string(),
            active: match root.read("/sys/devices/system/cpu/smt/active") {
                Ok(a) if a.trim() == "1" => Fact::Known(true),
                Ok(a) if a.trim() == "0" => Fact::Known(false),
                Ok(a) => Fact::unknown(format!("smt/active holds {a:?}")),
                Err(e) => Fact::unknown(e.to_string()),
            },
        }),
        Err(e) => Fact::unknown(e.to_string()),
    };
    CpuSpec {
        vendor: from_block(cpuinfo, "vendor_id"),
        model_name: from_block(cpuinfo, "model name"),
        family: from_block(cpuinfo, "cpu family"),
        model: from_block(cpuinfo, "model"),
        stepping: from_block(cpuinfo, "stepping"),
        microcode: from_block(cpuinfo, "microcode"),
        logical_cpus: online.as_ref().map(|l| l.len() as u32),
        online,
        sockets: topo.0,
        physical_cores: topo.1,
        threads_per_core: topo.2,
        smt,
        numa_nodes: numa(root),
        caches: caches(root, &cpuinfo_first_cpu(cpuinfo)),
        flags,
        cpuid,
    }
}

fn cpuinfo_first_cpu(cpuinfo: &Fact<Vec<CpuInfoBlock>>) -> u32 {
    cpuinfo
        .known()
        .and_then(|b| b[0].get("processor")?.parse().ok())
        .unwrap_or(0)
}

/// (sockets, physical cores, threads per core) from sysfs topology, falling
/// back to /proc/cpuinfo's physical id / core id.
fn topology(
    root: &SysRoot,
    online: &Fact<CpuList>,
    cpuinfo: &Fact<Vec<CpuInfoBlock>>,
) -> (Fact<u32>, Fact<u32>, Fact<u32>) {
    let cpus = match online {
        Fact::Known(l) if !l.is_empty() => l.clone(),
        Fact::Known(_) => {
            let u = "no online CPU listed";
            return (Fact::unknown(u), Fact::unknown(u), Fact::unknown(u));
        }
        Fact::Unknown { unknown } => {
            return (
                Fact::unknown(unknown.clone()),
                Fact::unknown(unknown.clone()),
                Fact::unknown(unknown.clone()),
            );
        }
    };
    let sysfs: Result<Vec<(u32, u32, u32)>, crate::ReadError> = cpus
        .iter()
        .map(|c| {
            let t = format!("/sys/devices/system/cpu/cpu{c}/topology");
            let pkg = root.read_parsed::<u32>(&format!("{t}/physical_package_id"));
            let die = root.read_parsed::<u32>(&format!("{t}/die_id")).unwrap_or(0);
            let core = root.read_parsed::<u32>(&format!("{t}/core_id"));
            Ok((pkg?, die, core?))
        })
        .collect();
    let triples: Fact<Vec<(u32, u32, u32)>> = match sysfs {
        Ok(t) => Fact::Known(t),
        Err(sys_err) => match cpuinfo {
            Fact::Known(blocks) => blocks
                .iter()
                .map(|b| {
                    let p = b.get("physical id").and_then(|v| v.parse().ok());
                    let c = b.get("core id").and_then(|v| v.parse().ok());
                    p.zip(c).map(|(p, c)| (p, 0, c))
                })
                .collect::<Option<Vec<_>>>()
                .map_or_else(
                    || {
                        Fact::unknown(format!(
                            "{sys_err}; /proc/cpuinfo has no physical id/core id either"
                        ))
                    },
                    Fact::Known,
                ),
            Fact::Unknown { unknown } => Fact::unknown(format!("{sys_err}; {unknown}")),
        },
    };
    match triples {
        Fact::Known(t) => {
            let sockets: BTreeSet<u32> = t.iter().map(|x| x.0).collect();
            let cores: BTreeSet<(u32, u32, u32)> = t.iter().copied().collect();
            let n_cores = cores.len() as u32;
            let threads = (t.len() as u32).div_ceil(n_cores.max(1));
            (
                Fact::Known(sockets.len() as u32),
                Fact::Known(n_cores),
                Fact::Known(threads),
            )
        }
        Fact::Unknown { unknown } => (
            Fact::unknown(unknown.clone()),
            Fact::unknown(unknown.clone()),
            Fact::unknown(unknown),
        ),
    }
}

fn numa(root: &SysRoot) -> Fact<Vec<NumaNode>> {
    match root.numbered("/sys/devices/system/node", "node") {
        Ok(ids) if !ids.is_empty() => Fact::Known(
            ids.into_iter()
                .map(|node| NumaNode {
                    node,
                    cpus: root
                        .read(&format!("/sys/devices/system/node/node{node}/cpulist"))
                        .map_err(|e| e.to_string())
                        .and_then(|s| CpuList::parse(&s).map_err(|e| e.to_string()))
                        .into(),
                })
                .collect(),
        ),
        Ok(_) => {
            Fact::unknown("/sys/devices/system/node lists no node (kernel without CONFIG_NUMA?)")
        }
        Err(e) => Fact::unknown(e.to_string()),
    }
}

fn caches(root: &SysRoot, cpu: &u32) -> Fact<Vec<CacheInfo>> {
    let dir = format!("/sys/devices/system/cpu/cpu{cpu}/cache");
    match root.numbered(&dir, "index") {
        Ok(ids) if !ids.is_empty() => Fact::Known(
            ids.into_iter()
                .map(|i| {
                    let f = |n: &str| format!("{dir}/index{i}/{n}");
                    CacheInfo {
                        level: root.read_parsed(&f("level")).into(),
                        kind: root.read(&f("type")).into(),
                        size: root.read(&f("size")).into(),
                        ways: root.read_parsed(&f("ways_of_associativity")).into(),
                        line_bytes: root.read_parsed(&f("coherency_line_size")).into(),
                        shared_cpus: root
                            .read(&f("shared_cpu_list"))
                            .map_err(|e| e.to_string())
                            .and_then(|s| CpuList::parse(&s).map_err(|e| e.to_string()))
                            .into(),
                    }
                })
                .collect(),
        ),
        Ok(_) => Fact::unknown(format!("{dir} has no index entries")),
        Err(e) => Fact::unknown(e.to_string()),
    }
}

fn kernel_spec(root: &SysRoot) -> KernelSpec {
    let cs = "/sys/devices/system/clocksource/clocksource0";
    let vulnerabilities = match root.list("/sys/devices/system/cpu/vulnerabilities") {
        Ok(names) => Fact::Known(
            names
                .into_iter()
                .map(|n| {
                    let v = root
                        .read(&format!("/sys/devices/system/cpu/vulnerabilities/{n}"))
                        .unwrap_or_else(|e| format!("unknown ({e})"));
                    (n, v)
                })
                .collect(),
        ),
        Err(e) => Fact::unknown(e.to_string()),
    };
    KernelSpec {
        release: root.read("/proc/sys/kernel/osrelease").into(),
        version: root.read("/proc/sys/kernel/version").into(),
        cmdline: root.read("/proc/cmdline").into(),
        clocksource: root.read(&format!("{cs}/current_clocksource")).into(),
        available_clocksources: root
            .read(&format!("{cs}/available_clocksource"))
            .map(|s| s.trim().to_string())
            .into(),
        vulnerabilities,
    }
}
