//! `vmbench image build` and `vmbench vm boot`.

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;
use vmbench_host::kvm::KvmFlavour;
use vmbench_host::{Fact, SysRoot};
use vmbench_vm::image::ModuleSource;
use vmbench_vm::{Accel, ImageOptions, Vm, VmOptions};

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
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
pub enum VmCmd {
    /// Boot the guest, show its console, report the time to agent-ready and the guest spec.
    Boot(BootArgs),
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GuestKind {
    /// The Linux guest (image from `vmbench image build` or `nix build .#guest-image`).
    Linux,
    /// The OS-free micro-guest (a PVH ELF; no guest interrupts or scheduler).
    Micro,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AccelArg {
    Auto,
    Kvm,
    Tcg,
}

/// Arguments shared by everything that boots the Linux guest.
#[derive(Args, Clone)]
pub struct GuestArgs {
    /// Guest image directory [default: ~/.cache/vmbench/guest-image, built on first use].
    #[arg(long, value_name = "DIR", env = "VMBENCH_GUEST_IMAGE")]
    pub image: Option<PathBuf>,
    /// Which guest to boot.
    #[arg(long, value_enum, default_value = "linux")]
    pub guest: GuestKind,
    /// The micro-guest ELF [default: built from this source tree's crates/microguest].
    #[arg(long, value_name = "PATH", env = "VMBENCH_MICRO_ELF")]
    pub micro_elf: Option<PathBuf>,
    /// auto = KVM when /dev/kvm can run the guest (for Linux: only under
    /// kvm_intel or kvm_amd), else TCG.
    #[arg(long, value_enum, default_value = "auto")]
    pub accel: AccelArg,
    #[arg(long, value_name = "PATH", env = "VMBENCH_QEMU")]
    pub qemu: Option<PathBuf>,
    /// Extra guest kernel cmdline words (e.g. vmbench.mapping=uc).
    #[arg(long, value_name = "WORD")]
    pub append: Vec<String>,
    /// Seconds from QEMU start to the agent's handshake [default: 30 KVM, 180 TCG].
    #[arg(long, value_name = "SECS")]
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
}

#[derive(Args)]
pub struct BootArgs {
    #[command(flatten)]
    guest: GuestArgs,
    /// Keep the guest running until Ctrl-C (default: shut it down once ready).
    #[arg(long)]
    wait: bool,
    /// Pin vCPU i to the i-th CPU of LIST and QEMU's other threads to the rest.
    #[arg(long, value_name = "LIST", value_parser = parse_cpus)]
    pin_cpus: Option<vmbench_host::CpuList>,
    /// Print the result as JSON (no console echo).
    #[arg(long)]
    json: bool,
}

pub fn parse_cpus(s: &str) -> Result<vmbench_host::CpuList, String> {
    vmbench_host::CpuList::parse(s).map_err(|e| e.to_string())
}

/// Pins the guest's vCPU threads to `bench` and every other QEMU thread to
/// the remaining online CPUs.
pub fn pin_guest(vm: &Vm, bench: &vmbench_host::CpuList) -> Result<vmbench_isolate::pin::Pinning> {
    let root = SysRoot::host();
    let online = vmbench_isolate::cpus::online(&root)?;
    let housekeeping = online.difference(bench);
    if housekeeping.is_empty() || !bench.is_subset(&online) {
        bail!(
            "--pin-cpus {bench}: must be online CPUs, leaving at least one of {online} for housekeeping"
        );
    }
    let pid = vm.qemu_pid().context("QEMU is not running")?;
    Ok(vmbench_isolate::pin::pin_qemu(
        &root,
        pid,
        &vm.vcpu_threads,
        bench,
        &housekeeping,
    )?)
}

pub fn default_image_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(|| PathBuf::from("/tmp"));
    base.join("vmbench").join("guest-image")
}

pub fn image_cmd(cmd: ImageCmd) -> Result<ExitCode> {
    let ImageCmd::Build(a) = cmd;
    let out = a.out.unwrap_or_else(default_image_dir);
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
        println!("{}", serde_json::to_string_pretty(&m)?);
    } else {
        println!("guest image in {}", out.display());
        println!("  kernel   {} ({})", m.kernel_release, m.kernel_source);
        println!(
            "  agent    {} (as /init, {} bytes stripped)",
            m.agent_source, m.agent_bytes
        );
        println!(
            "  module   {}",
            m.module.as_deref().unwrap_or("none (--no-module)")
        );
        println!(
            "  busybox  {}",
            m.busybox
                .as_deref()
                .unwrap_or("none (install busybox-static for a shell)")
        );
        println!("  initrd   {} bytes", m.initrd_bytes);
        if let Some(mib) = m.memory_mib {
            println!("  memory   {mib} MiB (the guest's default RAM)");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Picks the accelerator. KVM only when kvm_intel or kvm_amd drives /dev/kvm:
/// under other modules (kvm_pvm) a normal Linux guest does not boot.
pub fn choose_accel(arg: AccelArg, guest: GuestKind) -> (Accel, Option<String>) {
    match arg {
        AccelArg::Kvm => (Accel::Kvm, None),
        AccelArg::Tcg => (
            Accel::Tcg,
            Some("TCG (software emulation): the numbers are not VM exits".into()),
        ),
        AccelArg::Auto => {
            let root = SysRoot::host();
            let why = match vmbench_host::kvm::modules(&root) {
                // An OS-free guest needs only a working /dev/kvm; a Linux guest
                // also needs kvm_intel or kvm_amd behind it.
                Fact::Known(m)
                    if guest == GuestKind::Micro
                        || matches!(m.flavour, Some(KvmFlavour::Intel) | Some(KvmFlavour::Amd)) =>
                {
                    match vmbench_host::kvm::probe_dev_kvm() {
                        Ok(p) if p.create_vm => return (Accel::Kvm, None),
                        Ok(p) => format!(
                            "KVM_CREATE_VM fails: {}",
                            p.create_vm_error.unwrap_or_default()
                        ),
                        Err(e) => e.to_string(),
                    }
                }
                Fact::Known(m) => format!(
                    "/dev/kvm is driven by {}, not kvm_intel or kvm_amd: a normal Linux guest does not boot under it",
                    m.vendor_module.unwrap_or_else(|| "no vendor module".into())
                ),
                Fact::Unknown { unknown } => unknown,
            };
            (
                Accel::Tcg,
                Some(format!(
                    "using TCG (software emulation) because {why}. The plumbing is real, the numbers are NOT VM exits; pass --accel kvm to force KVM"
                )),
            )
        }
    }
}

/// Resolves QEMU, the image (building the default one if missing) and the
/// accelerator into VM options. Warnings go to stderr.
pub fn vm_options(
    g: &GuestArgs,
    interrupt: Arc<AtomicBool>,
) -> Result<(VmOptions, Option<String>)> {
    let qemu = vmbench_host::qemu::resolve(g.qemu.as_deref())?;
    let image = match &g.image {
        _ if g.guest == GuestKind::Micro => PathBuf::new(),
        Some(d) => d.clone(),
        None => {
            let d = default_image_dir();
            if !d.join("bzImage").exists() {
                eprintln!(
                    "vmbench: no guest image yet; building one in {} (vmbench image build)",
                    d.display()
                );
                vmbench_vm::image::build(&ImageOptions::new(&d))
                    .context("building the default guest image")?;
            }
            d
        }
    };
    if !g.shm_mib.is_power_of_two() || g.shm_mib < 2 {
        bail!(
            "--shm-mib {}: must be a power of two of at least 2 (a PCI BAR)",
            g.shm_mib
        );
    }
    let (accel, warning) = choose_accel(g.accel, g.guest);
    let mut o = VmOptions::new(qemu, accel, image);
    if g.guest == GuestKind::Micro {
        o.kernel = Some(match &g.micro_elf {
            Some(p) => p.clone(),
            None => vmbench_vm::microguest::build().map_err(anyhow::Error::msg)?,
        });
        o.debug_exit = true;
        // No OS reads ARCH_CAPABILITIES in the micro-guest, and some KVM hosts
        // (kvm_pvm) reject QEMU's write of that MSR under `-cpu host`.
        o.kvm_cpu = Some("host,-arch-capabilities,+invtsc".into());
        o.boot_timeout = Duration::from_secs(60);
    }
    o.memory_mib = g.memory;
    if let Some(m) = &g.kvm_cpu {
        o.kvm_cpu = Some(m.clone());
    }
    o.append = g.append.clone();
    o.shm_bytes = g.shm_mib << 20;
    o.doorbell_vectors = g.doorbell_vectors;
    if let Some(s) = g.boot_timeout {
        o.boot_timeout = Duration::from_secs(s);
    }
    o.interrupt = Some(interrupt);
    Ok((o, warning))
}

pub fn vm_cmd(cmd: VmCmd, interrupt: Arc<AtomicBool>) -> Result<ExitCode> {
    let VmCmd::Boot(a) = cmd;
    let (opts, warning) = vm_options(&a.guest, interrupt.clone())?;
    if let Some(w) = &warning {
        eprintln!("vmbench: WARNING: {w}");
    }
    let mut opts = opts;
    opts.echo_console = !a.json;
    let vm = Vm::boot(&opts)?;
    let pinning = match &a.pin_cpus {
        Some(cpus) => Some(pin_guest(&vm, cpus)?),
        None => None,
    };
    let result = serde_json::json!({
        "accel": opts.accel.name(),
        "accel_warning": warning,
        "qemu": opts.qemu.display().to_string(),
        "qemu_version": vm.qemu_version,
        "command_line": vm.config.command_line(),
        "memory_mib": vm.config.memory_mib,
        "vcpu_threads": vm.vcpu_threads,
        "pinning": pinning,
        "qemu_start_to_qmp_ms": vm.timings.qmp_ms,
        "qemu_start_to_ready_ms": vm.timings.ready_ms,
        "guest": vm.spec,
    });
    if a.json {
        println!("{}", serde_json::to_string_pretty(&result)?);
    } else {
        std::thread::sleep(Duration::from_millis(100));
        println!(
            "\n--- vmbench: guest agent ready {:.0} ms after QEMU start ({} accel) ---",
            vm.timings.ready_ms,
            opts.accel.name()
        );
        let s = &vm.spec;
        println!("guest kernel   {} ({})", s.kernel_release, s.cmdline);
        println!(
            "hypervisor     {}",
            s.hypervisor.as_deref().unwrap_or("none")
        );
        println!(
            "shared memory  {} MiB, mapping {}{}",
            s.shm_bytes >> 20,
            s.mapping,
            s.mapping_note
                .as_ref()
                .map(|n| format!(" ({n})"))
                .unwrap_or_default()
        );
        println!("rdtsc          {}", s.rdtsc_exiting);
        if s.msix_vectors > 0 {
            println!(
                "doorbell       peer id {}, {} MSI-X vectors",
                s.iv_position.unwrap_or(0),
                s.msix_vectors
            );
        }
        println!("vCPU threads   {:?}", vm.vcpu_threads);
        if let Some(p) = &pinning {
            for v in &p.vcpus {
                println!(
                    "pinned         vCPU {} (tid {}) -> cpu{}; {} other QEMU threads -> {}",
                    v.index,
                    v.tid,
                    v.cpu,
                    p.others.len(),
                    p.housekeeping
                );
            }
        }
    }
    if a.wait {
        println!("guest running; Ctrl-C to shut it down");
        while !interrupt.load(std::sync::atomic::Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    let how = vm.shutdown()?;
    if !a.json {
        println!("{how}");
    }
    Ok(ExitCode::SUCCESS)
}
