//! Each row's claim checked against the events each vendor's KVM emits,
//! for the hosts this project's machines cannot be: VMX, and the VMX
//! fast-MMIO path.
//!
//! `fixtures/kvm-events/linux-*/` holds the tracefs `format` files of the
//! KVM events vmbench counts, read from real kernels: their fields are what
//! a probe's filter may name, and `kvm_exit`'s print format carries the
//! kernel's own tables of VMX exit reasons and SVM exit codes
//! (`VMX_EXIT_REASONS`, `SVM_EXIT_REASONS` in arch/x86/include/uapi/asm/).
//! `fixtures/kvm-events/*.events` are the events one execution of a row
//! raises on each vendor, as KVM's sources emit them (see each file's
//! header). The counts a row's probes would see are computed by evaluating
//! each probe's ftrace filter over those events, as the kernel does, and
//! then judged by the same code a real run uses.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use vmbench_proto::vmexit::Row;
use vmbench_results::Verification;
use vmbench_suites::tracepoints::Probe;
use vmbench_suites::verify::{self, Claim, Vendor};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/kvm-events")
}

/// The kernels whose formats are fixtures.
fn kernels() -> Vec<PathBuf> {
    let mut k: Vec<PathBuf> = std::fs::read_dir(fixtures())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    k.sort();
    assert!(!k.is_empty());
    k
}

/// The field names of an event's format file.
fn fields(kernel: &Path, event: &str) -> Vec<String> {
    let text = std::fs::read_to_string(kernel.join(format!("{event}.format")))
        .unwrap_or_else(|e| panic!("{}: {event}: {e}", kernel.display()));
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("field:"))
        .map(|f| {
            let decl = f.split(';').next().unwrap();
            decl.rsplit(' ').next().unwrap().to_string()
        })
        .collect()
}

/// One event: its name and field values.
#[derive(Debug, Clone)]
struct Event {
    name: String,
    fields: BTreeMap<String, u64>,
}

fn number(s: &str) -> u64 {
    match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).unwrap(),
        None => s.parse().unwrap(),
    }
}

/// `name field=value …` per line; `#` starts a comment.
fn parse_events(text: &str) -> Vec<Event> {
    text.lines()
        .map(|l| l.split('#').next().unwrap().trim())
        .filter(|l| !l.is_empty())
        .map(|l| {
            let mut words = l.split_whitespace();
            let name = words.next().unwrap().to_string();
            let fields = words
                .map(|w| {
                    let (k, v) = w.split_once('=').unwrap();
                    (k.to_string(), number(v))
                })
                .collect();
            Event { name, fields }
        })
        .collect()
}

/// The events of `file`: `[execution]` and `[window]` sections, the events
/// of one execution and those of the whole counting window.
fn scenario(file: &str) -> (Vec<Event>, Vec<Event>) {
    let text = std::fs::read_to_string(fixtures().join(file)).unwrap();
    let (head, window) = text.split_once("[window]").unwrap();
    let execution = head.split_once("[execution]").unwrap().1;
    (parse_events(execution), parse_events(window))
}

/// The subset of ftrace's filter language vmbench's probes use: `field op
/// number` joined by `&&` and `||`, with parentheses.
struct Filter<'a> {
    tokens: Vec<&'a str>,
    at: usize,
}

impl<'a> Filter<'a> {
    fn new(text: &'a str) -> Filter<'a> {
        let mut tokens = Vec::new();
        let bytes = text.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let c = bytes[i];
            if c.is_ascii_whitespace() {
                i += 1;
            } else if c == b'(' || c == b')' {
                tokens.push(&text[i..i + 1]);
                i += 1;
            } else if b"=!<>&|".contains(&c) {
                let two = text
                    .get(i..i + 2)
                    .filter(|t| ["==", "!=", ">=", "<=", "&&", "||"].contains(t));
                let len = two.map_or(1, |_| 2);
                tokens.push(&text[i..i + len]);
                i += len;
            } else {
                let start = i;
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
                assert!(i > start, "bad filter {text:?} at {start}");
                tokens.push(&text[start..i]);
            }
        }
        Filter { tokens, at: 0 }
    }

    fn next(&mut self) -> &'a str {
        let t = self.tokens[self.at];
        self.at += 1;
        t
    }

    fn peek(&self) -> Option<&'a str> {
        self.tokens.get(self.at).copied()
    }

    /// The field names the filter reads.
    fn names(text: &str) -> Vec<String> {
        let f = Filter::new(text);
        f.tokens
            .windows(2)
            .filter(|w| ["==", "!=", ">=", "<=", ">", "<"].contains(&w[1]))
            .map(|w| w[0].to_string())
            .collect()
    }

    fn matches(text: &str, e: &Event) -> bool {
        let mut f = Filter::new(text);
        let v = f.or(e);
        assert_eq!(f.peek(), None, "trailing tokens in {text:?}");
        v
    }

    fn or(&mut self, e: &Event) -> bool {
        let mut v = self.and(e);
        while self.peek() == Some("||") {
            self.next();
            v |= self.and(e);
        }
        v
    }

    fn and(&mut self, e: &Event) -> bool {
        let mut v = self.atom(e);
        while self.peek() == Some("&&") {
            self.next();
            v &= self.atom(e);
        }
        v
    }

    fn atom(&mut self, e: &Event) -> bool {
        if self.peek() == Some("(") {
            self.next();
            let v = self.or(e);
            assert_eq!(self.next(), ")");
            return v;
        }
        let field = self.next();
        let op = self.next();
        let want = number(self.next());
        let got = *e
            .fields
            .get(field)
            .unwrap_or_else(|| panic!("{} has no field {field} in the fixture", e.name));
        match op {
            "==" => got == want,
            "!=" => got != want,
            ">=" => got >= want,
            "<=" => got <= want,
            ">" => got > want,
            "<" => got < want,
            _ => panic!("operator {op}"),
        }
    }
}

fn counts_of(probe: &Probe, events: &[Event]) -> u64 {
    events
        .iter()
        .filter(|e| e.name == probe.event)
        .filter(|e| {
            probe
                .filter
                .as_deref()
                .is_none_or(|f| Filter::matches(f, e))
        })
        .count() as u64
}

/// pci-testdev's MMIO BAR as QEMU 7.2 places it on q35 (query-pci).
const BAR: std::ops::Range<u64> = 0xfebf_e000..0xfebf_f000;

const N: u64 = 12_000;

/// The claim of `row` on a host of `vendor`, as a run builds it.
fn claim_on(vendor: Vendor, row: Row) -> Claim {
    let mut c = verify::claim(row, 0xe9).with_testdev_mmio_bar(row, BAR);
    c.vendor = Some(vendor);
    c
}

/// The verdict on `row` when each of N executions raised the scenario's
/// execution events and the window its window events.
fn judge(vendor: Vendor, row: Row, file: &str) -> Verification {
    let claim = claim_on(vendor, row);
    let (execution, window) = scenario(file);
    let counts: BTreeMap<String, u64> = verify::probes(&claim)
        .iter()
        .map(|p| {
            (
                p.label.clone(),
                N * counts_of(p, &execution) + counts_of(p, &window),
            )
        })
        .collect();
    verify::verify_tracepoints(row, &claim, N, &counts)
}

#[test]
fn every_probe_names_fields_its_event_has_on_each_kernel() {
    for kernel in kernels() {
        for row in Row::ALL {
            for vendor in [Vendor::Vmx, Vendor::Svm] {
                for p in verify::probes(&claim_on(vendor, *row)) {
                    let Some(filter) = p.filter.as_deref() else {
                        continue;
                    };
                    let have = fields(&kernel, p.event);
                    for name in Filter::names(filter) {
                        assert!(
                            have.contains(&name),
                            "{}: {} filter {:?} names {name}, which {} lacks ({have:?})",
                            kernel.display(),
                            row.id(),
                            p.filter,
                            p.event
                        );
                    }
                }
            }
        }
    }
}

/// The kernel's symbol table for one ISA in kvm_exit's print format:
/// code → name.
fn exit_reason_names(kernel: &Path, vmx: bool) -> BTreeMap<u64, String> {
    let text = std::fs::read_to_string(kernel.join("kvm_exit.format")).unwrap();
    let fmt = text.split("print fmt:").nth(1).unwrap();
    // VMX's table is the first __print_symbolic (REC->isa == 1), SVM's the second.
    let table = fmt
        .split("__print_symbolic(")
        .nth(if vmx { 1 } else { 2 })
        .unwrap();
    // The table ends at its last entry's closing `" })`.
    let table = &table[..table.find("\" })").unwrap() + 3];
    let mut out = BTreeMap::new();
    for entry in table.split("{ ").skip(1) {
        let (code, rest) = entry.split_once(',').unwrap();
        let name = rest.split('"').nth(1).unwrap();
        let code = code.trim();
        let value = match code.split_once(" + ") {
            Some((a, b)) => number(a) + number(b),
            // -1: "invalid_guest_state", no code a filter could name.
            None if code.starts_with('-') => continue,
            None => number(code),
        };
        out.insert(value, name.to_string());
    }
    out
}

#[test]
fn each_rows_exit_reason_filter_uses_the_kernels_own_vmx_and_svm_codes() {
    // What KVM calls each row's exit on each vendor.
    let want: [(Row, &str, &str); 9] = [
        (Row::KernelFast, "CPUID", "cpuid"),
        (Row::KernelRdmsr, "MSR_READ", "msr"),
        (Row::KernelWrmsrTscDeadline, "MSR_WRITE", "msr"),
        (Row::KernelPio, "IO_INSTRUCTION", "io"),
        (Row::KernelSlow, "IO_INSTRUCTION", "io"),
        (Row::KernelVmcall, "VMCALL", "hypercall"),
        (Row::KernelInvd, "INVD", "invd"),
        (Row::KernelMmioQemu, "EPT_MISCONFIG", "npf"),
        (Row::KernelMovCr8, "CR_ACCESS", "write_cr8"),
    ];
    for kernel in kernels() {
        let vmx = exit_reason_names(&kernel, true);
        let svm = exit_reason_names(&kernel, false);
        assert_eq!(vmx.get(&10).map(String::as_str), Some("CPUID"), "{vmx:?}");
        assert_eq!(svm.get(&0x400).map(String::as_str), Some("npf"), "{svm:?}");
        for (row, vmx_name, svm_name) in want {
            let probe = verify::probes(&claim_on(Vendor::Svm, row))
                .into_iter()
                .find(|p| p.label.starts_with("kvm_exit reason"))
                .unwrap_or_else(|| panic!("{}: no exit-reason probe", row.id()));
            let filter = probe.filter.unwrap();
            let codes: Vec<(u64, u64)> = [(1, &vmx), (2, &svm)]
                .iter()
                .map(|(isa, table)| {
                    let (code, _) = table
                        .iter()
                        .find(|(code, _)| {
                            let e = Event {
                                name: "kvm_exit".into(),
                                fields: [("isa".into(), *isa), ("exit_reason".into(), **code)]
                                    .into(),
                            };
                            Filter::matches(&filter, &e)
                        })
                        .unwrap_or_else(|| {
                            panic!("{}: {filter} matches no code of isa {isa}", row.id())
                        });
                    (*isa, *code)
                })
                .collect();
            assert_eq!(vmx[&codes[0].1], vmx_name, "{}: {filter}", row.id());
            assert_eq!(svm[&codes[1].1], svm_name, "{}: {filter}", row.id());
        }
    }
}

#[test]
fn the_mmio_ioeventfd_claim_holds_on_vmx_fast_mmio_and_svm_and_fails_when_qemu_served_it() {
    // (vendor, events, verified?, what the verdict must say)
    let cases = [
        // VMX completes the write on the fast-MMIO bus.
        (
            Vendor::Vmx,
            "vmx-mmio-ioeventfd.events",
            true,
            "kvm_fast_mmio in BAR 0xfebfe000 1.00",
        ),
        // SVM emulates it and completes it on the MMIO bus.
        (
            Vendor::Svm,
            "svm-mmio-ioeventfd.events",
            true,
            "kvm_mmio write 1 byte 1.00",
        ),
        // No ioeventfd matched: KVM emulated the write and returned to QEMU.
        (
            Vendor::Vmx,
            "vmx-mmio-to-qemu.events",
            false,
            "exits to QEMU",
        ),
        // Fast-MMIO writes outside pci-testdev's BAR (another device's
        // notify) are not this row's.
        (
            Vendor::Vmx,
            "vmx-fast-mmio-elsewhere.events",
            false,
            "never reached",
        ),
    ];
    for row in [Row::KernelMmioIoeventfd, Row::UserMmioIoeventfd] {
        for (vendor, file, verified, says) in cases {
            let v = judge(vendor, row, file);
            let ok = match &v {
                Verification::Verified { evidence } => verified && evidence.contains(says),
                Verification::Failed { evidence } => !verified && evidence.contains(says),
                _ => false,
            };
            assert!(ok, "{} on {file}: {v:?}", row.id());
        }
    }
    // The QEMU-served row is the one that must reach QEMU.
    let served = judge(Vendor::Vmx, Row::KernelMmioQemu, "vmx-mmio-to-qemu.events");
    assert!(
        matches!(served, Verification::Verified { .. }),
        "{served:?}"
    );
}

#[test]
fn either_way_rows_need_the_witness_on_each_vendor() {
    // APICv / AVIC absorbed every EOI: no event but the two witnesses.
    for vendor in [Vendor::Vmx, Vendor::Svm] {
        let v = judge(vendor, Row::KernelEoi, "absorbed.events");
        assert!(matches!(v, Verification::Verified { .. }), "{v:?}");
        let v = judge(vendor, Row::KernelEoi, "counters-dead.events");
        assert!(
            matches!(&v, Verification::Unverified { reason, .. } if reason.contains("liveness witness")),
            "{v:?}"
        );
    }
}
