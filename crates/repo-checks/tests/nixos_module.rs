//! `vmbench isolate suggest` and host-tuning/module.nix say the same thing:
//! for each fixture host, the module evaluated with the options suggest's
//! NixOS block sets (`nix-instantiate --eval`, with a stand-in for the few
//! `lib` functions it uses: nixpkgs is out of reach here) gives exactly the
//! parameters of suggest's cmdline, in the same order, and systemd's
//! CPUAffinity.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use vmbench_host::{SysRoot, fixture};
use vmbench_isolate::suggest::{KvmVendor, NixosOptions, suggest};
use vmbench_testkit::{have_tool, require};

/// What the module needs of nixpkgs' lib, with the same meaning: an option
/// is its declaration (the test passes every value), `mkIf` keeps or drops.
const LIB: &str = r#"{
    types = { bool = "bool"; str = "str"; int = "int"; nullOr = t: t; enum = vs: vs; };
    mkEnableOption = d: { default = false; };
    mkOption = o: o;
    mkIf = c: v: if c then v else { };
    mkForce = v: v;
    optional = c: v: if c then [ v ] else [ ];
    optionals = c: v: if c then v else [ ];
  }"#;

fn nix_value(o: &NixosOptions) -> String {
    let null_or = |v: Option<String>| v.unwrap_or_else(|| "null".into());
    format!(
        "{{ enable = true; benchCpus = \"{}\"; housekeepingCpus = \"{}\"; nohzFull = {}; stableTsc = {}; disableSmt = {}; intelPstatePassive = {}; rcuNormalAfterBoot = {}; rcuPatienceDelayMs = {}; kvmLowLatency = {}; systemdCpuAffinity = true; disableIrqbalance = true; }}",
        o.bench_cpus,
        o.housekeeping_cpus,
        o.nohz_full,
        o.stable_tsc,
        o.disable_smt,
        o.intel_pstate_passive,
        o.rcu_normal_after_boot,
        null_or(o.rcu_patience_delay_ms.map(|m| m.to_string())),
        null_or(o.kvm_low_latency.map(|v| match v {
            KvmVendor::Intel => "\"intel\"".into(),
            KvmVendor::Amd => "\"amd\"".into(),
        })),
    )
}

/// The module's kernel parameters and CPUAffinity for `o`.
fn evaluate(module: &Path, o: &NixosOptions) -> (Vec<String>, String) {
    let expr = format!(
        "let m = import {} {{ lib = {LIB}; config.vmbench.hostTuning = {}; }}; in {{ params = m.config.boot.kernelParams; affinity = m.config.systemd.settings.Manager.CPUAffinity; }}",
        module.display(),
        nix_value(o)
    );
    let out = Command::new("nix-instantiate")
        .args(["--eval", "--strict", "--json", "-E", &expr])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let params = v["params"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_str().unwrap().to_string())
        .collect();
    (params, v["affinity"].as_str().unwrap().to_string())
}

/// A fixture host: its trees, the benchmark CPUs, and files added to it.
type Host = (
    &'static [&'static str],
    &'static str,
    &'static [(&'static str, &'static str)],
);

fn put(root: &Path, path: &str, text: &str) {
    let f = root.join(path.trim_start_matches('/'));
    std::fs::create_dir_all(f.parent().unwrap()).unwrap();
    std::fs::write(f, text).unwrap();
}

#[test]
#[ignore = "needs nix-bin: evaluates host-tuning/module.nix with nix-instantiate"]
fn suggest_and_the_nixos_module_give_the_same_cmdline_per_kernel_capability() {
    require(&[(have_tool("nix-instantiate"), "nix-bin")]);
    let module = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../host-tuning/module.nix")
        .canonicalize()
        .unwrap();
    let hosts: &[Host] = &[
        // intel_pstate, no nohz_full in this kernel, kvm_intel loaded.
        (
            &["intel-pstate-turbo"],
            "2-3",
            &[
                ("/sys/module/kvm/parameters/kvmclock_periodic_sync", "Y\n"),
                ("/sys/module/kvm_intel/parameters/ple_gap", "128\n"),
            ],
        ),
        // The same host booted isolated (nohz_full), with the RCU knobs.
        (
            &["intel-pstate-turbo", "overlay-isolated-2-3"],
            "2-3",
            &[
                (
                    "/sys/module/rcupdate/parameters/rcu_normal_after_boot",
                    "0\n",
                ),
                (
                    "/sys/module/rcutree/parameters/nohz_full_patience_delay",
                    "0\n",
                ),
                ("/sys/module/kvm/parameters/kvmclock_periodic_sync", "Y\n"),
                (
                    "/sys/module/kvm_amd/parameters/pause_filter_count",
                    "3000\n",
                ),
            ],
        ),
        (&["amd-pstate-boost"], "3", &[]),
        (&["vm-no-cpufreq"], "1", &[]),
        (&["acpi-cpufreq"], "1", &[]),
    ];
    let mut seen_nohz = [false, false];
    for (trees, cpus, extra) in hosts {
        let dir = tempfile::tempdir().unwrap();
        fixture::load(trees, dir.path()).unwrap();
        for (path, text) in *extra {
            put(dir.path(), path, text);
        }
        let root = SysRoot::new(dir.path());
        let cmdline = vmbench_isolate::cmdline::Cmdline::parse(
            &std::fs::read_to_string(dir.path().join("proc/cmdline")).unwrap_or_default(),
        );
        let sel = vmbench_isolate::cpus::select(
            &root,
            &cmdline,
            Some(&vmbench_host::CpuList::parse(cpus).unwrap()),
        )
        .unwrap();
        let s = suggest(&root, &sel);
        let (params, affinity) = evaluate(&module, &s.nixos_options);
        let suggested: Vec<String> = s.cmdline.split(' ').map(str::to_string).collect();
        assert_eq!(
            params, suggested,
            "{trees:?}: the module and suggest differ"
        );
        assert_eq!(affinity, s.housekeeping_cpus, "{trees:?}");
        // The NixOS block sets every option the comparison used.
        for line in [
            format!("nohzFull = {};", s.nixos_options.nohz_full),
            format!("stableTsc = {};", s.nixos_options.stable_tsc),
            format!(
                "intelPstatePassive = {};",
                s.nixos_options.intel_pstate_passive
            ),
        ] {
            assert!(
                s.nixos.contains(&line),
                "{trees:?}: {line} not in\n{}",
                s.nixos
            );
        }
        let nohz = suggested.iter().any(|p| p.starts_with("nohz_full="));
        seen_nohz[usize::from(nohz)] = true;
        if !nohz {
            assert!(
                s.notes.iter().any(|n| n.contains("CONFIG_NO_HZ_FULL")),
                "{:?}",
                s.notes
            );
        }
    }
    assert_eq!(seen_nohz, [true, true], "hosts with and without nohz_full");
}
