//! How to boot a guest, as the user put it, resolved into [`VmOptions`]:
//! what `vmbench vm boot`, `vmexit`, `shm vm` and `run` share.

use crate::accel::{AccelChoice, AccelDecision, GuestKind};
use crate::image::{ImageError, ImageOptions};
use crate::launch::VmOptions;
use crate::microguest::MicroGuestError;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;
use vmbench_proto::RegionSizeError;

/// The micro-guest boots in a minute even under TCG.
const MICRO_GUEST_BOOT_TIMEOUT: Duration = Duration::from_secs(60);

/// QEMU's `-cpu` for the micro-guest under KVM: no OS reads
/// ARCH_CAPABILITIES there, and some KVM hosts (kvm_pvm) reject QEMU's write
/// of that MSR under `-cpu host`.
const MICRO_GUEST_KVM_CPU: &str = "host,-arch-capabilities,+invtsc";

/// A guest to boot, before anything is looked up or built.
#[derive(Debug, Clone)]
pub struct GuestSettings {
    /// Image directory; None: the default one, built on first use.
    pub image: Option<PathBuf>,
    /// The Linux guest or the micro-guest.
    pub guest: GuestKind,
    /// The micro-guest ELF; None: built from this source tree.
    pub micro_elf: Option<PathBuf>,
    /// The accelerator choice.
    pub accel: AccelChoice,
    /// QEMU binary (path, or a name looked up in PATH); None: the default.
    pub qemu: Option<PathBuf>,
    /// Extra guest kernel cmdline words.
    pub append: Vec<String>,
    /// Deadline for the agent's handshake; None: 30 s under KVM, 180 s under TCG.
    pub boot_timeout: Option<Duration>,
    /// Guest RAM; None: what the image asks for.
    pub memory_mib: Option<u32>,
    /// Size of the ivshmem region.
    pub shm_mib: u64,
    /// ivshmem-doorbell with this many MSI-X vectors, instead of ivshmem-plain.
    pub doorbell_vectors: Option<u32>,
    /// QEMU `-cpu` under KVM.
    pub kvm_cpu: Option<String>,
    /// Guest vCPUs (the IPI-to-HLT row needs a second one).
    pub vcpus: u32,
}

impl Default for GuestSettings {
    fn default() -> Self {
        GuestSettings {
            image: None,
            guest: GuestKind::Linux,
            micro_elf: None,
            accel: AccelChoice::Auto,
            qemu: None,
            append: Vec::new(),
            boot_timeout: None,
            memory_mib: None,
            shm_mib: 64,
            doorbell_vectors: None,
            kvm_cpu: None,
            vcpus: 1,
        }
    }
}

/// Why a guest's settings cannot be turned into a bootable configuration.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// No usable QEMU.
    #[error(transparent)]
    Qemu(#[from] vmbench_host::qemu::QemuError),
    /// The default image could not be used or built.
    #[error("the default guest image ({dir})")]
    DefaultImage {
        /// The default image directory.
        dir: String,
        /// Why the build failed.
        #[source]
        source: ImageError,
    },
    /// The region size is not a power of two of at least 2 MiB.
    #[error("--shm-mib: {0}")]
    ShmSize(#[from] RegionSizeError),
    /// The micro-guest could not be built.
    #[error(transparent)]
    MicroGuest(#[from] MicroGuestError),
}

impl GuestSettings {
    /// Finds QEMU, the image (building the default one when it is missing;
    /// `notify` hears about that) or the micro-guest ELF, decides the
    /// accelerator, and fills in everything QEMU needs.
    pub fn resolve(
        &self,
        interrupt: Option<Arc<AtomicBool>>,
        notify: &mut dyn FnMut(&str),
    ) -> Result<(VmOptions, AccelDecision), SettingsError> {
        let qemu = vmbench_host::qemu::resolve(self.qemu.as_deref())?;
        let shm_bytes = vmbench_proto::region_bytes(self.shm_mib)? as u64;
        let image = match (&self.image, self.guest) {
            (_, GuestKind::Micro) => PathBuf::new(),
            (Some(d), GuestKind::Linux) => d.clone(),
            (None, GuestKind::Linux) => self.default_image(notify)?,
        };
        let decision = self.accel.resolve(self.guest);
        let mut o = VmOptions::new(qemu, decision.accel, image);
        if self.guest == GuestKind::Micro {
            o.kernel = Some(match &self.micro_elf {
                Some(p) => p.clone(),
                None => crate::microguest::build()?,
            });
            o.debug_exit = true;
            o.kvm_cpu = Some(MICRO_GUEST_KVM_CPU.into());
            o.boot_timeout = MICRO_GUEST_BOOT_TIMEOUT;
        }
        if let Some(m) = &self.kvm_cpu {
            o.kvm_cpu = Some(m.clone());
        }
        o.memory_mib = self.memory_mib;
        o.append = self.append.clone();
        o.shm_bytes = shm_bytes;
        o.doorbell_vectors = self.doorbell_vectors;
        o.vcpus = self.vcpus;
        if let Some(t) = self.boot_timeout {
            o.boot_timeout = t;
        }
        o.interrupt = interrupt;
        Ok((o, decision))
    }

    fn default_image(&self, notify: &mut dyn FnMut(&str)) -> Result<PathBuf, SettingsError> {
        let dir = crate::image::default_dir().map_err(|source| SettingsError::DefaultImage {
            dir: "no cache directory".into(),
            source,
        })?;
        // A cached image another user could have replaced is not booted:
        // its manifest names the module root loads into a guest it then
        // trusts with the shared region.
        if dir.exists() {
            crate::image::check_image_dir(&dir).map_err(|source| SettingsError::DefaultImage {
                dir: dir.display().to_string(),
                source,
            })?;
        }
        let why = if !dir.join("bzImage").exists() {
            Some("no guest image yet")
        } else if crate::image::ImageManifest::read(&dir)
            .ok()
            .and_then(|m| m.agent_sources)
            .is_none_or(|f| f != vmbench_proto::AGENT_SOURCES_FINGERPRINT)
        {
            // Made by another vmbench: its /init would not be this agent.
            Some("the cached guest image's agent was built from other sources")
        } else {
            None
        };
        if let Some(why) = why {
            notify(&format!(
                "{why}; building one in {} (vmbench image build)",
                dir.display()
            ));
            crate::image::build(&ImageOptions::new(&dir)).map_err(|source| {
                SettingsError::DefaultImage {
                    dir: dir.display().to_string(),
                    source,
                }
            })?;
        }
        Ok(dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_region_sizes_and_missing_qemu_are_refused_before_anything_boots() {
        let mut s = GuestSettings {
            qemu: Some("/nonexistent/qemu".into()),
            ..GuestSettings::default()
        };
        let e = s.resolve(None, &mut |_| {}).unwrap_err();
        assert!(e.to_string().contains("--qemu"), "{e}");
        s.qemu = Some("/bin/sh".into());
        s.shm_mib = 3;
        s.image = Some("/nonexistent".into());
        let e = s.resolve(None, &mut |_| {}).unwrap_err();
        assert!(e.to_string().contains("power of two"), "{e}");
    }

    #[test]
    fn the_micro_guest_gets_its_cpu_model_and_timeout_unless_told() {
        let mut s = GuestSettings {
            qemu: Some("/bin/sh".into()),
            guest: GuestKind::Micro,
            micro_elf: Some("/nonexistent/elf".into()),
            accel: AccelChoice::Tcg,
            ..GuestSettings::default()
        };
        let (o, d) = s.resolve(None, &mut |_| {}).unwrap();
        assert_eq!(d.accel, crate::Accel::Tcg);
        assert_eq!(o.kvm_cpu.as_deref(), Some(MICRO_GUEST_KVM_CPU));
        assert_eq!(o.boot_timeout, MICRO_GUEST_BOOT_TIMEOUT);
        assert!(o.debug_exit);
        s.kvm_cpu = Some("qemu64".into());
        s.boot_timeout = Some(Duration::from_secs(5));
        let (o, _) = s.resolve(None, &mut |_| {}).unwrap();
        assert_eq!(o.kvm_cpu.as_deref(), Some("qemu64"));
        assert_eq!(o.boot_timeout, Duration::from_secs(5));
    }
}
