//! `HostSpec::gather` against fixture trees of real host shapes.
#![allow(clippy::unwrap_used)] // test helpers: a failure is the test failing

use vmbench_host::fixture;
use vmbench_host::power::BoostControl;
use vmbench_host::{CpuList, Fact, HostSpec, SpecOptions, SysRoot};

fn fixture(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fixture::load(&[name], dir.path()).unwrap();
    dir
}

fn gather(dir: &std::path::Path) -> HostSpec {
    HostSpec::gather(
        &SysRoot::new(dir),
        &SpecOptions {
            qemu: Some("/nonexistent/qemu-system-x86_64".into()),
            skip_calibration: false,
        },
    )
}

fn k<T: Clone>(f: &Fact<T>) -> T {
    f.known()
        .cloned()
        .unwrap_or_else(|| panic!("unknown: {:?}", f.reason()))
}

#[test]
fn intel_host_with_intel_pstate_and_turbo() {
    let dir = fixture("intel-pstate-turbo");
    let s = gather(dir.path());
    assert!(!s.live_probes);
    assert_eq!(k(&s.cpu.vendor), "GenuineIntel");
    assert_eq!(
        k(&s.cpu.model_name),
        "Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz"
    );
    assert_eq!(
        (k(&s.cpu.family), k(&s.cpu.model), k(&s.cpu.stepping)),
        (6, 106, 6)
    );
    assert_eq!(k(&s.cpu.microcode), "0xd0003a5");
    assert_eq!(k(&s.cpu.online), CpuList::parse("0-3").unwrap());
    assert_eq!(
        (
            k(&s.cpu.sockets),
            k(&s.cpu.physical_cores),
            k(&s.cpu.threads_per_core)
        ),
        (1, 2, 2)
    );
    let smt = k(&s.cpu.smt);
    assert_eq!((smt.control.as_str(), k(&smt.active)), ("on", true));
    let flags = k(&s.cpu.flags);
    assert!(flags["vmx"] && !flags["svm"] && !flags["hypervisor"] && flags["tsc_known_freq"]);
    let caches = k(&s.cpu.caches);
    assert_eq!(caches.len(), 2);
    assert_eq!(k(&caches[1].size), "49152K");
    assert_eq!(k(&caches[0].shared_cpus), CpuList::from_cpus([0, 2]));
    // Live probes are never made against a fixture: they would describe this machine.
    assert!(s.cpu.cpuid.reason().unwrap().contains("--root"));
    assert!(s.kvm.dev_kvm.reason().unwrap().contains("--root"));
    assert!(s.tsc.frequency.reason().is_some());

    assert_eq!(k(&s.kernel.release), "6.12.9-intel");
    assert!(k(&s.kernel.cmdline).ends_with("intel_iommu=on"));
    assert_eq!(k(&s.kernel.clocksource), "tsc");
    assert_eq!(k(&s.kernel.available_clocksources), "tsc hpet acpi_pm");
    assert_eq!(k(&s.kernel.vulnerabilities)["meltdown"], "Not affected");

    let m = k(&s.kvm.modules);
    assert_eq!(m.vendor_module.as_deref(), Some("kvm_intel"));
    assert_eq!(s.kvm.parameters["kvm_intel"]["ple_gap"], "128");
    assert_eq!(s.kvm.parameters["kvm"]["nx_huge_pages"], "auto");
    assert!(!k(&s.kvm.nested));

    let freq = k(&s.power.cpufreq);
    assert_eq!(freq.len(), 4);
    assert_eq!(k(&freq[3].driver), "intel_pstate");
    assert_eq!(k(&freq[3].governor), "powersave");
    assert_eq!(
        (k(&freq[0].min_khz), k(&freq[0].hw_max_khz)),
        (800_000, 3_200_000)
    );
    let boost = k(&s.power.boost);
    assert_eq!(boost.control, BoostControl::IntelPstateNoTurbo);
    assert!(boost.enabled);
    assert_eq!(k(&s.power.cpuidle.driver), "intel_idle");
    assert_eq!(k(&s.power.cpuidle.governor), "menu");
    assert!(s.qemu.reason().unwrap().contains("--qemu"));
}

#[test]
fn amd_host_with_amd_pstate_and_per_policy_boost() {
    let dir = fixture("amd-pstate-boost");
    let s = gather(dir.path());
    assert_eq!(k(&s.cpu.vendor), "AuthenticAMD");
    assert_eq!((k(&s.cpu.family), k(&s.cpu.model)), (25, 17));
    assert_eq!(
        (
            k(&s.cpu.sockets),
            k(&s.cpu.physical_cores),
            k(&s.cpu.threads_per_core)
        ),
        (1, 4, 1)
    );
    let smt = k(&s.cpu.smt);
    assert_eq!((smt.control.as_str(), k(&smt.active)), ("forceoff", false));
    let nodes = k(&s.cpu.numa_nodes);
    assert_eq!(nodes.len(), 2);
    assert_eq!(k(&nodes[1].cpus), CpuList::from_cpus([2, 3]));
    assert!(k(&s.cpu.flags)["svm"]);
    assert_eq!(k(&s.kvm.modules).vendor_module.as_deref(), Some("kvm_amd"));
    assert_eq!(s.kvm.parameters["kvm_amd"]["avic"], "0");
    let boost = k(&s.power.boost);
    assert_eq!(
        boost.control,
        BoostControl::PerPolicyBoost {
            policies: vec![0, 1, 2, 3]
        }
    );
    assert!(boost.enabled);
    assert_eq!(k(&k(&s.power.cpufreq)[0].driver), "amd-pstate-epp");
    // No current_governor_ro: the older file name is read.
    assert_eq!(k(&s.power.cpuidle.governor), "menu");
    // Caches are absent from this tree: unknown with the path, not a panic.
    assert!(s.cpu.caches.reason().unwrap().contains("cache"));
}

#[test]
fn vm_without_cpufreq_or_kvm() {
    let dir = fixture("vm-no-cpufreq");
    let s = gather(dir.path());
    assert!(k(&s.cpu.flags)["hypervisor"]);
    assert!(k(&s.kvm.nested));
    // No sysfs topology: falls back to /proc/cpuinfo physical id / core id.
    assert_eq!((k(&s.cpu.sockets), k(&s.cpu.physical_cores)), (1, 2));
    assert!(s.cpu.smt.reason().unwrap().contains("smt/control"));
    assert!(
        s.power
            .cpufreq
            .reason()
            .unwrap()
            .contains("no frequency scaling driver")
    );
    assert!(
        s.power
            .boost
            .reason()
            .unwrap()
            .contains("no cpufreq policy")
    );
    assert!(s.kvm.modules.reason().unwrap().contains("modprobe"));
    assert!(s.kvm.parameters.is_empty());
    assert_eq!(k(&s.kernel.clocksource), "kvm-clock");
    assert_eq!(k(&s.power.cpuidle.driver), "haltpoll");
    assert!(s.cpu.numa_nodes.reason().is_some());
}

#[test]
fn malformed_and_missing_files_become_unknown_with_reason() {
    let dir = fixture("intel-pstate-turbo");
    let p = dir.path();
    std::fs::write(
        p.join("proc/cpuinfo"),
        "processor : 0\nvendor_id : GenuineIntel\ncpu family : six\n\nprocessor : 1\n\nprocessor : 2\n\nprocessor : 3\n",
    )
    .unwrap();
    std::fs::write(p.join("sys/devices/system/cpu/online"), "0-x\n").unwrap();
    std::fs::write(
        p.join("sys/devices/system/cpu/intel_pstate/no_turbo"),
        "2\n",
    )
    .unwrap();
    std::fs::write(
        p.join("sys/devices/system/cpu/cpu1/cpufreq/scaling_min_freq"),
        "lots\n",
    )
    .unwrap();
    std::fs::remove_file(p.join("proc/sys/kernel/osrelease")).unwrap();
    std::fs::write(
        p.join("sys/devices/system/cpu/cpu0/cache/index3/level"),
        [0xff, 0xfe],
    )
    .unwrap();

    let s = gather(p);
    assert!(s.cpu.family.reason().unwrap().contains("six"));
    assert!(s.cpu.model_name.reason().unwrap().contains("model name"));
    assert_eq!(k(&s.cpu.vendor), "GenuineIntel");
    // A bad online list falls back to the processor numbers in /proc/cpuinfo.
    assert_eq!(k(&s.cpu.online), CpuList::parse("0-3").unwrap());
    assert!(s.power.boost.reason().unwrap().contains("unexpected value"));
    let freq = k(&s.power.cpufreq);
    assert!(freq[1].min_khz.reason().unwrap().contains("lots"));
    assert_eq!(k(&freq[0].min_khz), 800_000);
    assert!(s.kernel.release.reason().unwrap().contains("not present"));
    assert!(
        k(&s.cpu.caches)[1]
            .level
            .reason()
            .unwrap()
            .contains("UTF-8")
    );
    // And the whole thing still serialises.
    let json = serde_json::to_string(&s).unwrap();
    let back: HostSpec = serde_json::from_str(&json).unwrap();
    assert_eq!(back, s);
}

#[test]
fn empty_root_is_all_unknown_never_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let s = gather(dir.path());
    assert!(s.cpu.vendor.reason().unwrap().contains("/proc/cpuinfo"));
    assert!(s.cpu.sockets.reason().is_some());
    assert!(s.kernel.vulnerabilities.reason().is_some());
    let rows = s.rows();
    assert!(rows.iter().any(|r| r.value.starts_with("unknown (")));
}

#[test]
fn cpu_vendor_comes_from_the_roots_cpuinfo() {
    let amd = fixture("amd-pstate-boost");
    assert_eq!(
        vmbench_host::cpuinfo::vendor(&SysRoot::new(amd.path())).as_deref(),
        Some("AuthenticAMD")
    );
    let intel = fixture("intel-pstate-turbo");
    assert_eq!(
        vmbench_host::cpuinfo::vendor(&SysRoot::new(intel.path())).as_deref(),
        Some("GenuineIntel")
    );
    let empty = tempfile::tempdir().unwrap();
    assert_eq!(
        vmbench_host::cpuinfo::vendor(&SysRoot::new(empty.path())),
        None
    );
}
