//! A flat, ordered view of [`HostSpec`] as (section, key, value) rows: what the
//! CLI prints as a table and the report renders as Markdown.

use crate::spec::HostSpec;
use crate::{CpuList, Fact};
use std::fmt::Display;

/// One row of the host specification, as `vmbench info` prints it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecRow {
    /// The section (`CPU`, `memory`, `kernel`, ...).
    pub section: &'static str,
    /// The key within the section.
    pub key: String,
    /// The value.
    pub value: String,
}

fn hex_and_dec(f: &Fact<u32>) -> String {
    match f {
        Fact::Known(v) => format!("{v} (0x{v:x})"),
        u => unknown_text(u),
    }
}

fn unknown_text<T>(f: &Fact<T>) -> String {
    format!("unknown ({})", f.reason().unwrap_or("no reason recorded"))
}

fn yes_no(f: &Fact<bool>) -> String {
    match f {
        Fact::Known(true) => "yes".into(),
        Fact::Known(false) => "no".into(),
        u => unknown_text(u),
    }
}

/// The rows being built, section by section.
struct Rows(Vec<SpecRow>);

impl Rows {
    fn push(&mut self, section: &'static str, key: &str, value: String) {
        self.0.push(SpecRow {
            section,
            key: key.to_string(),
            value,
        })
    }
}

fn fact_text<T: Display>(f: &Fact<T>) -> String {
    f.to_string()
}

impl HostSpec {
    /// Every fact, in the order `vmbench info` and the report show them.
    pub fn rows(&self) -> Vec<SpecRow> {
        let mut rows = Rows(Vec::new());
        self.cpu_rows(&mut rows);
        self.tsc_rows(&mut rows);
        self.kernel_rows(&mut rows);
        self.kvm_rows(&mut rows);
        self.power_rows(&mut rows);
        rows.0
    }

    fn cpu_rows(&self, rows: &mut Rows) {
        let cpu = &self.cpu;
        rows.push("cpu", "vendor", fact_text(&cpu.vendor));
        rows.push("cpu", "model name", fact_text(&cpu.model_name));
        rows.push(
            "cpu",
            "family/model/stepping",
            format!(
                "{} / {} / {}",
                hex_and_dec(&cpu.family),
                hex_and_dec(&cpu.model),
                fact_text(&cpu.stepping)
            ),
        );
        rows.push("cpu", "microcode", fact_text(&cpu.microcode));
        rows.push("cpu", "online cpus", fact_text(&cpu.online));
        rows.push(
            "cpu",
            "sockets/cores/threads",
            format!(
                "{} sockets, {} cores, {} threads per core, {} logical",
                fact_text(&cpu.sockets),
                fact_text(&cpu.physical_cores),
                fact_text(&cpu.threads_per_core),
                fact_text(&cpu.logical_cpus)
            ),
        );
        rows.push(
            "cpu",
            "smt",
            match &cpu.smt {
                Fact::Known(smt) => {
                    format!("control={}, active={}", smt.control, yes_no(&smt.active))
                }
                u => unknown_text(u),
            },
        );
        rows.push(
            "cpu",
            "numa nodes",
            match &cpu.numa_nodes {
                Fact::Known(nodes) => nodes
                    .iter()
                    .map(|n| format!("node{}: cpus {}", n.node, n.cpus))
                    .collect::<Vec<_>>()
                    .join("; "),
                u => unknown_text(u),
            },
        );
        rows.push(
            "cpu",
            "caches",
            match &cpu.caches {
                Fact::Known(cs) => cs
                    .iter()
                    .map(|x| {
                        let kind = match &x.kind {
                            Fact::Known(k) => {
                                k.chars().next().map(String::from).unwrap_or_default()
                            }
                            _ => "?".into(),
                        };
                        format!(
                            "L{}{} {} {}-way {}B/line shared {}",
                            fact_text(&x.level),
                            kind,
                            fact_text(&x.size),
                            fact_text(&x.ways),
                            fact_text(&x.line_bytes),
                            fact_text(&x.shared_cpus)
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; "),
                u => unknown_text(u),
            },
        );
        rows.push(
            "cpu",
            "flags",
            match &cpu.flags {
                Fact::Known(f) => f
                    .iter()
                    .map(|(k, v)| format!("{}{k}", if *v { "+" } else { "-" }))
                    .collect::<Vec<_>>()
                    .join(" "),
                u => unknown_text(u),
            },
        );
        rows.push(
            "cpu",
            "hypervisor (cpuid)",
            match &cpu.cpuid {
                Fact::Known(id) => id.hypervisor_signature.to_string(),
                u => unknown_text(u),
            },
        );
    }

    fn tsc_rows(&self, rows: &mut Rows) {
        let cpu = &self.cpu;
        let tsc = &self.tsc;
        rows.push(
            "tsc",
            "frequency",
            match &tsc.frequency {
                Fact::Known(f) => format!("{:.3} MHz, source: {}", f.khz / 1000.0, f.source),
                u => unknown_text(u),
            },
        );
        rows.push(
            "tsc",
            "calibration",
            match &tsc.calibration {
                Fact::Known(cal) => format!(
                    "{:.3} MHz ±{:.0} ppm ({} x {} ms vs CLOCK_MONOTONIC_RAW)",
                    cal.khz / 1000.0,
                    cal.error_ppm,
                    cal.rounds,
                    cal.window_ms
                ),
                u => unknown_text(u),
            },
        );
        rows.push("tsc", "invariant (cpuid 80000007h)", yes_no(&tsc.invariant));
        if let Fact::Known(id) = &cpu.cpuid {
            rows.push(
                "tsc",
                "cpuid 15h",
                fact_text(&id.leaf_15h_tsc_hz.as_ref().map(|hz| format!("{hz} Hz"))),
            );
            rows.push(
                "tsc",
                "cpuid 16h base",
                fact_text(&id.leaf_16h_base_mhz.as_ref().map(|m| format!("{m} MHz"))),
            );
            rows.push(
                "tsc",
                "cpuid 40000010h",
                fact_text(
                    &id.leaf_40000010h_tsc_khz
                        .as_ref()
                        .map(|k| format!("{k} kHz")),
                ),
            );
        }
    }

    fn kernel_rows(&self, rows: &mut Rows) {
        let kernel = &self.kernel;
        rows.push("kernel", "release", fact_text(&kernel.release));
        rows.push("kernel", "version", fact_text(&kernel.version));
        rows.push("kernel", "cmdline", fact_text(&kernel.cmdline));
        rows.push(
            "kernel",
            "clocksource",
            format!(
                "{} (available: {})",
                fact_text(&kernel.clocksource),
                fact_text(&kernel.available_clocksources)
            ),
        );
        match &kernel.vulnerabilities {
            Fact::Known(v) => {
                for (name, status) in v {
                    rows.push("vulnerabilities", name, status.clone());
                }
            }
            u => rows.push("vulnerabilities", "all", unknown_text(u)),
        }
    }

    fn kvm_rows(&self, rows: &mut Rows) {
        let kvm = &self.kvm;
        rows.push(
            "kvm",
            "modules",
            match &kvm.modules {
                Fact::Known(m) => format!(
                    "{} (vendor module: {})",
                    m.loaded.join(", "),
                    m.vendor_module.as_deref().unwrap_or("none")
                ),
                u => unknown_text(u),
            },
        );
        rows.push(
            "kvm",
            "/dev/kvm",
            match &kvm.dev_kvm {
                Fact::Known(p) => format!(
                    "usable: API version {}, KVM_CREATE_VM {}",
                    p.api_version,
                    if p.create_vm {
                        "ok".to_string()
                    } else {
                        format!("failed: {}", p.create_vm_error.as_deref().unwrap_or("?"))
                    }
                ),
                u => unknown_text(u),
            },
        );
        rows.push("kvm", "nested (host is a guest)", yes_no(&kvm.nested));
        for (module, params) in &kvm.parameters {
            let joined = params
                .iter()
                .map(|(p, val)| format!("{p}={val}"))
                .collect::<Vec<_>>()
                .join(" ");
            rows.push("kvm", &format!("{module} parameters"), joined);
        }
        rows.push(
            "qemu",
            "binary",
            match &self.qemu {
                Fact::Known(q) => format!("{} ({})", q.path, q.banner),
                u => unknown_text(u),
            },
        );
    }

    fn power_rows(&self, rows: &mut Rows) {
        let power = &self.power;
        match &power.cpufreq {
            Fact::Known(list) => {
                for f in list {
                    rows.push(
                        "power",
                        &format!("cpu{} cpufreq", f.cpu),
                        format!(
                            "driver {}, governor {}, min {} max {} cur {} kHz (hw {}-{})",
                            fact_text(&f.driver),
                            fact_text(&f.governor),
                            fact_text(&f.min_khz),
                            fact_text(&f.max_khz),
                            fact_text(&f.cur_khz),
                            fact_text(&f.hw_min_khz),
                            fact_text(&f.hw_max_khz)
                        ),
                    );
                }
            }
            u => rows.push("power", "cpufreq", unknown_text(u)),
        }
        rows.push(
            "power",
            "turbo/boost",
            match &power.boost {
                Fact::Known(b) => format!(
                    "{} via {}",
                    if b.enabled { "enabled" } else { "disabled" },
                    b.control.files().join(", ")
                ),
                u => unknown_text(u),
            },
        );
        rows.push(
            "power",
            "cpuidle",
            format!(
                "driver {}, governor {}",
                fact_text(&power.cpuidle.driver),
                fact_text(&power.cpuidle.governor)
            ),
        );
    }
}

/// Formats a CPU list for humans, "none" when empty.
pub fn cpus_or_none(l: &CpuList) -> String {
    if l.is_empty() {
        "none".into()
    } else {
        l.to_string()
    }
}
