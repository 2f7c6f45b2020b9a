//! Which accelerator a guest runs under, and which guest.

use crate::qemu::Accel;
use serde::{Deserialize, Serialize};
use vmbench_host::kvm::KvmFlavour;
use vmbench_host::{Fact, SysRoot};

/// The one statement every report, table and console makes about TCG.
pub const TCG_NOTICE: &str = "TCG (software emulation): no VM exits happen; every figure is QEMU's emulation cost on this host";

/// The accelerator asked for on the command line or in the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
pub enum AccelChoice {
    /// KVM when /dev/kvm can run the guest (for Linux: only under kvm_intel
    /// or kvm_amd), else TCG.
    #[default]
    Auto,
    /// KVM, or fail with why not.
    Kvm,
    /// QEMU's TCG emulation: no real exits (every figure says so).
    Tcg,
}

pub use vmbench_results::GuestKind;

/// The accelerator chosen, and what the user should be told about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccelDecision {
    /// KVM or TCG.
    pub accel: Accel,
    /// Printed once where the guest boots (a TCG fallback says why).
    pub notice: Option<String>,
}

impl AccelChoice {
    /// Decides on this host. `auto` takes KVM when /dev/kvm can create a VM
    /// and, for a Linux guest, is driven by kvm_intel or kvm_amd: under other
    /// modules (kvm_pvm) a normal Linux guest does not boot, while an OS-free
    /// one does. `kvm` is taken as asked (the user forces it).
    pub fn resolve(self, guest: GuestKind) -> AccelDecision {
        match self {
            AccelChoice::Kvm => AccelDecision {
                accel: Accel::Kvm,
                notice: None,
            },
            AccelChoice::Tcg => AccelDecision {
                accel: Accel::Tcg,
                notice: Some(TCG_NOTICE.into()),
            },
            AccelChoice::Auto => match kvm_unusable_because(guest) {
                None => AccelDecision {
                    accel: Accel::Kvm,
                    notice: None,
                },
                Some(why) => AccelDecision {
                    accel: Accel::Tcg,
                    notice: Some(format!(
                        "using TCG because {why}. {TCG_NOTICE}; pass --accel kvm to force KVM"
                    )),
                },
            },
        }
    }
}

/// Why KVM cannot run `guest` here, or None when it can.
fn kvm_unusable_because(guest: GuestKind) -> Option<String> {
    let root = SysRoot::host();
    match vmbench_host::kvm::modules(&root) {
        Fact::Known(m)
            if guest == GuestKind::Micro
                || matches!(m.flavour, Some(KvmFlavour::Intel) | Some(KvmFlavour::Amd)) =>
        {
            match vmbench_host::kvm::probe_dev_kvm() {
                Ok(p) if p.create_vm => None,
                Ok(p) => Some(format!(
                    "KVM_CREATE_VM fails: {}",
                    p.create_vm_error.unwrap_or_default()
                )),
                Err(e) => Some(e.to_string()),
            }
        }
        Fact::Known(m) => Some(format!(
            "/dev/kvm is driven by {}, not kvm_intel or kvm_amd: a normal Linux guest does not boot under it",
            m.vendor_module.unwrap_or_else(|| "no vendor module".into())
        )),
        Fact::Unknown { unknown } => Some(unknown),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn explicit_choices_are_taken_as_asked() {
        let kvm = AccelChoice::Kvm.resolve(GuestKind::Linux);
        assert_eq!(kvm.accel, Accel::Kvm);
        assert_eq!(kvm.notice, None);
        let tcg = AccelChoice::Tcg.resolve(GuestKind::Micro);
        assert_eq!(tcg.accel, Accel::Tcg);
        assert_eq!(tcg.notice.as_deref(), Some(TCG_NOTICE));
    }

    #[test]
    fn auto_says_why_when_it_falls_back() {
        let d = AccelChoice::Auto.resolve(GuestKind::Linux);
        if d.accel == Accel::Tcg {
            let n = d.notice.unwrap();
            assert!(n.starts_with("using TCG because "), "{n}");
            assert!(n.contains(TCG_NOTICE), "{n}");
        } else {
            assert_eq!(d.notice, None);
        }
    }

    #[test]
    fn config_spellings() {
        let a: AccelChoice = serde_json::from_str("\"tcg\"").unwrap();
        assert_eq!(a, AccelChoice::Tcg);
        let g: GuestKind = serde_json::from_str("\"micro\"").unwrap();
        assert_eq!(g, GuestKind::Micro);
        assert!(serde_json::from_str::<AccelChoice>("\"hvf\"").is_err());
    }
}
