//! CPUID facts of the running CPU (via raw-cpuid). Only meaningful when the
//! root is `/`: a fixture tree describes another machine.

use crate::Fact;
use raw_cpuid::CpuId;
use serde::{Deserialize, Serialize};

/// What CPUID says about timekeeping and virtualization on the running CPU.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct CpuidFacts {
    /// CPUID.80000007H:EDX[8]: the TSC ticks at a constant rate in all ACPI P-, C- and T-states.
    pub invariant_tsc: bool,
    /// CPUID.15H: TSC frequency from the crystal clock ratio, when the leaf enumerates it.
    pub leaf_15h_tsc_hz: Fact<u64>,
    /// CPUID.16H: processor base frequency in MHz (nominal, not necessarily the TSC rate).
    pub leaf_16h_base_mhz: Fact<u32>,
    /// Hypervisor vendor signature from CPUID.40000000H, when the hypervisor bit is set.
    pub hypervisor_signature: Fact<String>,
    /// CPUID.40000010H:EAX: TSC frequency in kHz published by the hypervisor (VMware/KVM timing leaf).
    pub leaf_40000010h_tsc_khz: Fact<u32>,
}

/// Reads the CPUID leaves vmbench reports.
pub fn read() -> CpuidFacts {
    let cpuid = CpuId::new();
    let invariant_tsc = cpuid
        .get_advanced_power_mgmt_info()
        .is_some_and(|p| p.has_invariant_tsc());
    let leaf_15h_tsc_hz = match cpuid.get_tsc_info() {
        Some(t) => match t.tsc_frequency() {
            Some(hz) if hz > 0 => Fact::Known(hz),
            _ => Fact::unknown("CPUID 15H present but does not enumerate the crystal frequency"),
        },
        None => Fact::unknown("CPUID 15H not supported by this CPU"),
    };
    let leaf_16h_base_mhz = match cpuid.get_processor_frequency_info() {
        Some(f) if f.processor_base_frequency() > 0 => {
            Fact::Known(u32::from(f.processor_base_frequency()))
        }
        Some(_) => Fact::unknown("CPUID 16H present but reports 0"),
        None => Fact::unknown("CPUID 16H not supported by this CPU"),
    };
    let hv_present = cpuid.get_feature_info().is_some_and(|f| f.has_hypervisor());
    let (hypervisor_signature, leaf_40000010h_tsc_khz) = if !hv_present {
        let why = "no hypervisor bit in CPUID 1:ECX[31] (bare metal)";
        (Fact::unknown(why), Fact::unknown(why))
    } else {
        match cpuid.get_hypervisor_info() {
            Some(hv) => {
                let sig = hypervisor_name(hv.identify());
                let tsc = match hv.tsc_frequency() {
                    Some(khz) if khz > 0 => Fact::Known(khz),
                    _ => Fact::unknown("hypervisor does not publish the timing leaf 40000010H"),
                };
                (Fact::Known(sig), tsc)
            }
            None => {
                let why = "hypervisor bit set but CPUID 40000000H is empty";
                (Fact::unknown(why), Fact::unknown(why))
            }
        }
    };
    CpuidFacts {
        invariant_tsc,
        leaf_15h_tsc_hz,
        leaf_16h_base_mhz,
        hypervisor_signature,
        leaf_40000010h_tsc_khz,
    }
}

/// The raw 12-byte hypervisor vendor signature from CPUID 40000000H
/// ("KVMKVMKVM", "TCGTCGTCGTCG", "Microsoft Hv", …), when CPUID 1:ECX[31] is set.
pub fn hypervisor_signature_raw() -> Option<String> {
    #[allow(unused_unsafe)]
    // SAFETY: CPUID is available on every x86_64 CPU and has no memory effects.
    let (leaf1, leaf_hv) = unsafe {
        (
            core::arch::x86_64::__cpuid(1),
            core::arch::x86_64::__cpuid(0x4000_0000),
        )
    };
    if leaf1.ecx & (1 << 31) == 0 {
        return None;
    }
    let bytes: Vec<u8> = [leaf_hv.ebx, leaf_hv.ecx, leaf_hv.edx]
        .iter()
        .flat_map(|r| r.to_le_bytes())
        .take_while(|&b| b != 0)
        .collect();
    Some(
        bytes
            .iter()
            .map(|&b| {
                if b.is_ascii_graphic() || b == b' ' {
                    b as char
                } else {
                    '?'
                }
            })
            .collect(),
    )
}

fn hypervisor_name(hv: raw_cpuid::Hypervisor) -> String {
    match hv {
        raw_cpuid::Hypervisor::Unknown(b, c, d) => {
            let bytes: Vec<u8> = [b, c, d].iter().flat_map(|r| r.to_le_bytes()).collect();
            let text: String = bytes
                .iter()
                .take_while(|&&x| x != 0)
                .map(|&x| if x.is_ascii_graphic() { x as char } else { '?' })
                .collect();
            format!("unrecognised signature {text:?}")
        }
        known => format!("{known:?}"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn reading_cpuid_does_not_panic_and_is_stable() {
        let a = super::read();
        let b = super::read();
        assert_eq!(a, b);
    }
}
