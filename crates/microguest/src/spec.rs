//! What the micro-guest reports about itself (`GET_SPEC`): the same JSON
//! fields as the Linux agent's `GuestSpec`, filled from CPUID and what an
//! OS-free guest can know.

use crate::console::{HEX, Sink};
use crate::region::{Buf, Shm};
use vmbench_abi::layout::PROTOCOL_VERSION;
use vmbench_abi::timing::{cpuid, t_start};

/// CPUID.1:ECX bits.
const LEAF1_ECX_TSC_DEADLINE: u32 = 1 << 24;
const LEAF1_ECX_HYPERVISOR: u32 = 1 << 31;
/// CPUID.80000007h:EDX bit 8: the TSC runs at a constant rate in all states.
const EXT7_EDX_INVARIANT_TSC: u32 = 1 << 8;
/// Back-to-back RDTSC reads this far apart mean RDTSC itself exits.
const RDTSC_EXITING_TICKS: u64 = 1000;

/// The hypervisor's CPUID signature (leaf 0x4000_0000), zero-padded; all
/// zero without a hypervisor.
fn hypervisor_signature() -> [u8; 12] {
    let mut sig = [0u8; 12];
    if cpuid(1, 0).ecx & LEAF1_ECX_HYPERVISOR != 0 {
        let c = cpuid(0x4000_0000, 0);
        sig[0..4].copy_from_slice(&c.ebx.to_le_bytes());
        sig[4..8].copy_from_slice(&c.ecx.to_le_bytes());
        sig[8..12].copy_from_slice(&c.edx.to_le_bytes());
    }
    sig
}

/// QEMU's TCG announces itself as "TCGTCGTCGTCG".
pub fn under_tcg() -> bool {
    hypervisor_signature().starts_with(b"TCG")
}

pub fn cpu_is_amd() -> bool {
    cpuid(0, 0).ebx == u32::from_le_bytes(*b"Auth")
}

/// CPUID.7.0:EBX bit 1: IA32_TSC_ADJUST exists.
pub fn has_tsc_adjust() -> bool {
    cpuid(0, 0).eax >= 7 && cpuid(7, 0).ebx & (1 << 1) != 0
}

/// CPUID.7.0:EDX bit 26 (Intel: IBRS and IBPB, so IA32_SPEC_CTRL and
/// IA32_PRED_CMD), or AMD's own bits in leaf 80000008h:EBX.
fn spec_ctrl_bits() -> (bool, u32) {
    let intel = cpuid(0, 0).eax >= 7 && cpuid(7, 0).edx & (1 << 26) != 0;
    let amd = if cpuid(0x8000_0000, 0).eax >= 0x8000_0008 {
        cpuid(0x8000_0008, 0).ebx
    } else {
        0
    };
    (intel, amd)
}

/// IA32_PRED_CMD exists (IBPB: CPUID.7:EDX[26] or 80000008h:EBX[12]).
pub fn has_pred_cmd() -> bool {
    let (intel, amd) = spec_ctrl_bits();
    intel || amd & (1 << 12) != 0
}

/// IA32_SPEC_CTRL exists (CPUID.7:EDX[26] or 80000008h:EBX[14], AMD's IBRS).
pub fn has_spec_ctrl() -> bool {
    let (intel, amd) = spec_ctrl_bits();
    intel || amd & (1 << 14) != 0
}

pub fn has_tsc_deadline() -> bool {
    cpuid(1, 0).ecx & LEAF1_ECX_TSC_DEADLINE != 0
}

/// The median of 501 back-to-back `lfence; rdtsc; lfence` pairs, in ticks.
fn rdtsc_p50() -> u64 {
    let mut d = [0u64; 501];
    for x in d.iter_mut() {
        let a = t_start();
        *x = t_start().wrapping_sub(a);
    }
    d.sort_unstable();
    d[250]
}

/// Up to the first NUL, as text ("?" if not UTF-8).
fn text(bytes: &[u8]) -> &str {
    let len = bytes.iter().position(|&c| c == 0).unwrap_or(bytes.len());
    core::str::from_utf8(&bytes[..len]).unwrap_or("?")
}

fn vendor() -> [u8; 12] {
    let v = cpuid(0, 0);
    let mut vendor = [0u8; 12];
    vendor[0..4].copy_from_slice(&v.ebx.to_le_bytes());
    vendor[4..8].copy_from_slice(&v.edx.to_le_bytes());
    vendor[8..12].copy_from_slice(&v.ecx.to_le_bytes());
    vendor
}

fn brand() -> [u8; 48] {
    let mut brand = [0u8; 48];
    for (i, leaf) in (0x8000_0002u32..=0x8000_0004).enumerate() {
        let c = cpuid(leaf, 0);
        for (j, r) in [c.eax, c.ebx, c.ecx, c.edx].iter().enumerate() {
            brand[i * 16 + j * 4..i * 16 + j * 4 + 4].copy_from_slice(&r.to_le_bytes());
        }
    }
    brand
}

/// Writes the specification JSON for the ivshmem device at `dev` on bus 0.
pub fn write_json(b: &mut Buf, shm: &Shm, dev: u32) {
    let sig = hypervisor_signature();
    let sig = text(&sig);
    let vendor = vendor();
    let brand = brand();
    let brand = text(&brand).trim();
    let leaf1 = cpuid(1, 0);
    let ext7 = cpuid(0x8000_0007, 0);
    let flags: [(&str, bool); 3] = [
        ("invariant_tsc", ext7.edx & EXT7_EDX_INVARIANT_TSC != 0),
        (
            "tsc_deadline_timer",
            leaf1.ecx & LEAF1_ECX_TSC_DEADLINE != 0,
        ),
        ("hypervisor", leaf1.ecx & LEAF1_ECX_HYPERVISOR != 0),
    ];
    let p50 = rdtsc_p50();
    b.s(r#"{"agent_version":"micro-guest "#)
        .s(env!("CARGO_PKG_VERSION"));
    b.s(r#"","protocol_version":"#)
        .u(u64::from(PROTOCOL_VERSION));
    b.s(r#","kernel_release":"none (vmbench micro-guest, no OS)","kernel_version":"","cmdline":"","#);
    b.s(r#""cpu_vendor":"#).q(text(&vendor));
    b.s(r#","cpu_model_name":"#).q(brand).s(r#","cpu_flags":["#);
    for (i, (name, on)) in flags.iter().enumerate() {
        b.s(if i > 0 { "," } else { "" })
            .s("\"")
            .s(if *on { "+" } else { "-" })
            .s(name)
            .s("\"");
    }
    b.s(r#"],"hypervisor":"#);
    if sig.is_empty() {
        b.s("null");
    } else {
        b.q(sig);
    }
    b.s(r#","clocksource":"none (no OS)","tsc_khz_kernel":null,"tsc_khz_calibrated":null,"rdtsc_ticks_p50":"#).u(p50);
    let verdict = if sig.starts_with("TCG") {
        "not applicable under TCG: QEMU emulates RDTSC, there are no exits"
    } else if p50 > RDTSC_EXITING_TICKS {
        "RDTSC appears to exit (thousands of ticks between back-to-back reads)"
    } else {
        "not intercepted"
    };
    b.s(r#","rdtsc_exiting":""#)
        .s(verdict)
        .s(" (")
        .u(p50)
        .s(r#" ticks back to back)","online_cpus":1,"mem_total_kib":0,"#);
    b.s(r#""mapping":"identity","mapping_note":"BAR2 at "#)
        .x(shm.base)
        .s(r#", identity-mapped; memory type from the firmware's MTRRs","#);
    b.s(r#""shm_bytes":"#)
        .u(shm.len)
        .s(r#","pci_address":"0000:00:"#);
    b.put(&[HEX[(dev >> 4) as usize & 0xf], HEX[dev as usize & 0xf]]);
    b.s(r#".0","iv_position":null,"msix_vectors":0,"uptime_at_ready_ms":0}"#);
}
