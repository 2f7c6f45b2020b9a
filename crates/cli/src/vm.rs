//! `vmbench image build` and `vmbench vm boot`.

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;
use vmbench_host::SysRoot;
use vmbench_vm::image::ModuleSource;
use vmbench_vm::{AccelChoice, GuestKind, GuestSettings, ImageOptions, Vm};

#[derive(Subcommand)]
pub enum ImageCmd {
    /// Build a guest image (bzImage + initramfs with the agent and the
    /// vmbench module) from a host kernel, without Nix.
    Build(ImageBuildArgs),
}

#[derive(Args)]
pub struct ImageBuildArgs {
    /// Kernel to boot [default: the newest /boot/vmlinuz-*].
    #[arg(long, value_name = "PATH")]
    kernel: Option<PathBuf>,
    /// Output directory [default: ~/.cache/vmbench/guest-image].
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Static agent binary to use as /init [default: this vmbench binary].
    /// It is stripped in the image.
    #[arg(long, value_name = "PATH")]
    agent: Option<PathBuf>,
    /// A vmbench.ko already built against this kernel (Nix builds it apart)
    /// [default: build it here against /lib/modules/<release>/build].
    #[arg(long, value_name = "PATH", conflicts_with = "no_module")]
    module: Option<PathBuf>,
    /// Do not include the vmbench module (the agent then maps the shared
    /// memory through uncached sysfs, and says so).
    #[arg(long)]
    no_module: bool,
    /// A static busybox for the guest's shell [default: /bin/busybox or
    /// /usr/bin/busybox if static].
    #[arg(long, value_name = "PATH")]
    busybox: Option<PathBuf>,
    /// Print the image's manifest as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
pub enum VmCmd {
    /// Boot the guest, show its console, report the time to agent-ready and the guest spec.
    Boot(BootArgs),
}

/// Arguments shared by everything that boots the Linux guest.
#[derive(Args, Clone)]
pub struct GuestArgs {
    /// Guest image directory [default: ~/.cache/vmbench/guest-image, built on first use].
    #[arg(long, value_name = "DIR", env = "VMBENCH_GUEST_IMAGE")]
    pub image: Option<PathBuf>,
    /// Which guest to boot.
    #[arg(long, value_enum, default_value_t)]
    pub guest: GuestKind,
    /// The micro-guest ELF [default: built from this source tree's crates/microguest].
    #[arg(long, value_name = "PATH", env = "VMBENCH_MICRO_ELF")]
    pub micro_elf: Option<PathBuf>,
    /// auto = KVM when /dev/kvm can run the guest (for Linux: only under
    /// kvm_intel or kvm_amd), else TCG.
    #[arg(long, value_enum, default_value_t)]
    pub accel: AccelChoice,
    /// The QEMU binary (path, or name looked up in PATH) [default: qemu-system-x86_64].
    #[arg(long, value_name = "PATH", env = "VMBENCH_QEMU")]
    pub qemu: Option<PathBuf>,
    /// Extra guest kernel cmdline words (e.g. vmbench.mapping=uc).
    #[arg(long, value_name = "WORD")]
    pub append: Vec<String>,
    /// Seconds from QEMU start to the agent's handshake, 1 to 86400 [default: 30 KVM, 180 TCG].
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub boot_timeout: Option<u64>,
    /// Guest RAM in MiB [default: the image's manifest (sized to the
    /// image by `vmbench image build`), else 256; the micro-guest 128].
    #[arg(long, value_name = "MIB", value_parser = clap::value_parser!(u32).range(64..=1_048_576))]
    pub memory: Option<u32>,
    /// Size of the ivshmem region in MiB (a power of two, at least 2).
    #[arg(long, value_name = "MIB", default_value_t = 64)]
    pub shm_mib: u64,
    /// Use ivshmem-doorbell with N MSI-X vectors (vmbench serves the ivshmem
    /// protocol itself) instead of ivshmem-plain.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=64))]
    pub doorbell_vectors: Option<u32>,
    /// QEMU `-cpu` model under KVM [default: host,+invtsc; the micro-guest
    /// host,-arch-capabilities,+invtsc]. kvm-unit-tests runs with QEMU's
    /// default (qemu64): pass that to compare like with like.
    #[arg(long, value_name = "MODEL")]
    pub kvm_cpu: Option<String>,
    /// Guest vCPUs. The kernel-ipi-halt row needs 2 (vCPU 1 halts and is
    /// woken by vCPU 0's IPI); pinning then needs a benchmark CPU per vCPU.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=64))]
    pub vcpus: u32,
}

#[derive(Args)]
pub struct BootArgs {
    #[command(flatten)]
    guest: GuestArgs,
    /// Keep the guest running until Ctrl-C (default: shut it down once ready).
    #[arg(long)]
    wait: bool,
    /// Pin vCPU i to the i-th CPU of LIST and QEMU's other threads to the rest.
    #[arg(long, value_name = "LIST", value_parser = vmbench_host::CpuList::parse)]
    pin_cpus: Option<vmbench_host::CpuList>,
    /// Print the result as JSON (no console echo).
    #[arg(long)]
    json: bool,
}

impl GuestArgs {
    /// The guest as the libraries take it.
    pub fn settings(&self) -> GuestSettings {
        GuestSettings {
            image: self.image.clone(),
            guest: self.guest,
            micro_elf: self.micro_elf.clone(),
            accel: self.accel,
            qemu: self.qemu.clone(),
            append: self.append.clone(),
            boot_timeout: self.boot_timeout.map(Duration::from_secs),
            memory_mib: self.memory,
            shm_mib: self.shm_mib,
            doorbell_vectors: self.doorbell_vectors,
            kvm_cpu: self.kvm_cpu.clone(),
            vcpus: self.vcpus,
        }
    }
}

pub fn image_cmd(cmd: ImageCmd) -> Result<ExitCode> {
    let ImageCmd::Build(a) = cmd;
    let out = match a.out {
        Some(o) => o,
        None => vmbench_vm::image::default_dir()?,
    };
    let mut o = ImageOptions::new(&out);
    o.kernel = a.kernel;
    o.agent = a.agent;
    o.module = match (a.module, a.no_module) {
        (_, true) => ModuleSource::Omit,
        (Some(ko), false) => ModuleSource::Prebuilt(ko),
        (None, false) => ModuleSource::Build,
    };
    o.busybox = a.busybox;
    let m = vmbench_vm::image::build(&o).context("building the guest image")?;
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&m)?)?;
    } else {
        outln!("guest image in {}", out.display())?;
        outln!("  kernel   {} ({})", m.kernel_release, m.kernel_source)?;
        outln!(
            "  agent    {} (as /init, {} bytes stripped)",
            m.agent_source,
            m.agent_bytes
        )?;
        outln!(
            "  module   {}",
            m.module.as_deref().unwrap_or("none (--no-module)")
        )?;
        outln!(
            "  busybox  {}",
            m.busybox
                .as_deref()
                .unwrap_or("none (install busybox-static for a shell)")
        )?;
        outln!("  initrd   {} bytes", m.initrd_bytes)?;
        if let Some(mib) = m.memory_mib {
            outln!("  memory   {mib} MiB (the guest's default RAM)")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn vm_cmd(cmd: VmCmd, interrupt: Arc<AtomicBool>) -> Result<ExitCode> {
    let VmCmd::Boot(a) = cmd;
    let (mut opts, decision) = a
        .guest
        .settings()
        .resolve(Some(interrupt.clone()), &mut |m| errln!("vmbench: {m}"))?;
    if let Some(w) = &decision.notice {
        errln!("vmbench: WARNING: {w}");
    }
    opts.echo_console = !a.json;
    let vm = Vm::boot(&opts)?;
    let pinning = match &a.pin_cpus {
        Some(cpus) => Some(vmbench_isolate::pin::pin_guest_threads(
            &SysRoot::host(),
            vm.qemu_pid().context("QEMU is not running")?,
            &vm.vcpu_threads,
            cpus,
        )?),
        None => None,
    };
    let result = crate::output::BootOutput {
        schema_version: crate::output::BOOT_SCHEMA_VERSION,
        accel: opts.accel,
        accel_warning: decision.notice.clone(),
        qemu: opts.qemu.display().to_string(),
        qemu_version: vm.qemu_version.clone(),
        command_line: vm.config.command_line(),
        memory_mib: vm.config.memory_mib,
        vcpu_threads: vm.vcpu_threads.clone(),
        pinning: pinning.as_ref().map(vmbench_isolate::pin::Pinning::record),
        qemu_start_to_qmp_ms: vm.timings.qmp_ms,
        qemu_start_to_ready_ms: vm.timings.ready_ms,
        guest: vm.spec.clone(),
    };
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&result)?)?;
    } else {
        std::thread::sleep(Duration::from_millis(100));
        outln!(
            "\n--- vmbench: guest agent ready {:.0} ms after QEMU start ({} accel) ---",
            vm.timings.ready_ms,
            opts.accel.name()
        )?;
        let spec = &vm.spec;
        outln!("guest kernel   {} ({})", spec.kernel_release, spec.cmdline)?;
        outln!(
            "hypervisor     {}",
            spec.hypervisor.as_deref().unwrap_or("none")
        )?;
        outln!(
            "shared memory  {} MiB, mapping {}{}",
            spec.shm_bytes >> 20,
            spec.mapping,
            spec.mapping_note
                .as_ref()
                .map(|n| format!(" ({n})"))
                .unwrap_or_default()
        )?;
        outln!("rdtsc          {}", spec.rdtsc_exiting)?;
        if spec.msix_vectors > 0 {
            outln!(
                "doorbell       peer id {}, {} MSI-X vectors",
                spec.iv_position.unwrap_or(0),
                spec.msix_vectors
            )?;
        }
        outln!("vCPU threads   {:?}", vm.vcpu_threads)?;
        if let Some(p) = &pinning {
            for v in &p.vcpus {
                outln!(
                    "pinned         vCPU {} (tid {}) -> cpu{}; {} other QEMU threads -> {}",
                    v.index,
                    v.tid,
                    v.cpu,
                    p.others.len(),
                    p.housekeeping
                )?;
            }
        }
    }
    if a.wait {
        outln!("guest running; Ctrl-C to shut it down")?;
        while !interrupt.load(std::sync::atomic::Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let how = vm.shutdown()?;
    if !a.json {
        outln!("{how}")?;
    }
    Ok(ExitCode::SUCCESS)
}
