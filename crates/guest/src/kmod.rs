//! The vmbench guest module's interface (mirror of nixos-guest/kmod/vmbench_uapi.h)
//! and module loading.

use std::os::fd::AsRawFd;
use std::path::Path;

pub const ABI_VERSION: u32 = 1;
pub const DEVICE: &str = "/dev/vmbench0";

/// `struct vmbench_info`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VmbenchInfo {
    pub abi_version: u32,
    pub revision: u32,
    pub bar2_size: u64,
    pub bar2_phys: u64,
    pub bar0_phys: u64,
    pub iv_position: u32,
    pub msix_vectors: u32,
    pub mapping: u32,
    pub pad: u32,
}

/// `struct vmbench_eventfd`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct VmbenchEventfd {
    pub vector: u32,
    pub fd: i32,
}

const _: () = assert!(std::mem::size_of::<VmbenchInfo>() == 48);

/// `enum vmbench_insn`.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Insn {
    None = 0,
    Nop = 1,
    Cpuid = 2,
    Vmcall = 3,
    Outb = 4,
    Inb = 5,
    Rdmsr = 6,
    WrmsrTscDeadline = 7,
    Invd = 8,
}

pub const MAX_SAMPLES: u64 = 4096;
pub const MAX_BATCH: u64 = 65536;

/// `struct vmbench_exit_loop`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct ExitLoop {
    pub insn: u32,
    pub port: u32,
    pub samples: u64,
    pub samples_ptr: u64,
    pub batch: u64,
    pub batch_ticks: u64,
}

/// `struct vmbench_exit_once`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct ExitOnce {
    pub insn: u32,
    pub port: u32,
}

const _: () = assert!(std::mem::size_of::<ExitLoop>() == 40);

nix::ioctl_readwrite!(ioc_exit_loop, b'v', 0x10, ExitLoop);
nix::ioctl_write_ptr!(ioc_exit_once, b'v', 0x11, ExitOnce);
nix::ioctl_none!(ioc_null, b'v', 0x12);

/// VMBENCH_IOC_EXIT_LOOP: `samples.len()` timed iterations into `samples`,
/// plus `batch` untimed ones; returns the batch's ticks.
pub fn exit_loop(
    dev: &std::fs::File,
    insn: u32,
    port: u32,
    samples: &mut [u64],
    batch: u64,
) -> Result<u64, nix::Error> {
    let mut a = ExitLoop {
        insn,
        port,
        samples: samples.len() as u64,
        samples_ptr: samples.as_mut_ptr() as u64,
        batch,
        batch_ticks: 0,
    };
    // SAFETY: the kernel writes at most `a.samples` u64 to `samples_ptr`,
    // which points into `samples` of exactly that length, and writes back `a`.
    unsafe { ioc_exit_loop(dev.as_raw_fd(), &mut a) }?;
    Ok(a.batch_ticks)
}

/// VMBENCH_IOC_EXIT_ONCE.
#[inline(always)]
pub fn exit_once(fd: i32, arg: &ExitOnce) -> Result<(), nix::Error> {
    // SAFETY: the kernel reads one `struct vmbench_exit_once` from `arg`.
    unsafe { ioc_exit_once(fd, arg) }.map(|_| ())
}

/// VMBENCH_IOC_NULL.
#[inline(always)]
pub fn null(fd: i32) -> Result<(), nix::Error> {
    // SAFETY: a no-argument ioctl that does nothing.
    unsafe { ioc_null(fd) }.map(|_| ())
}

nix::ioctl_read!(ioc_info, b'v', 0x00, VmbenchInfo);
nix::ioctl_write_ptr!(ioc_doorbell, b'v', 0x01, u32);
nix::ioctl_write_ptr!(ioc_set_eventfd, b'v', 0x02, VmbenchEventfd);

/// VMBENCH_IOC_INFO.
pub fn info(dev: &std::fs::File) -> Result<VmbenchInfo, nix::Error> {
    let mut i = VmbenchInfo::default();
    // SAFETY: the kernel writes exactly one `struct vmbench_info` (48 bytes,
    // layout asserted above) into `i`, which lives across the call.
    unsafe { ioc_info(dev.as_raw_fd(), &mut i) }?;
    Ok(i)
}

/// VMBENCH_IOC_DOORBELL: bits 0..15 vector, 16..31 destination peer.
pub fn doorbell(dev: &std::fs::File, value: u32) -> Result<(), nix::Error> {
    // SAFETY: the kernel reads one u32 from `value`, which lives across the call.
    unsafe { ioc_doorbell(dev.as_raw_fd(), &value) }.map(|_| ())
}

/// VMBENCH_IOC_SET_EVENTFD, with raw values so tests can pass bad ones.
pub fn set_eventfd(dev: &std::fs::File, vector: u32, fd: i32) -> Result<(), nix::Error> {
    let a = VmbenchEventfd { vector, fd };
    // SAFETY: the kernel reads one `struct vmbench_eventfd` from `a`.
    unsafe { ioc_set_eventfd(dev.as_raw_fd(), &a) }.map(|_| ())
}

/// An ioctl number the module does not know (expects ENOTTY).
pub fn unknown_ioctl(dev: &std::fs::File) -> Result<(), nix::Error> {
    nix::ioctl_none!(ioc_unknown, b'v', 0x7f);
    // SAFETY: a no-argument ioctl; the module must reject it without touching memory.
    unsafe { ioc_unknown(dev.as_raw_fd()) }.map(|_| ())
}

/// Loads a kernel module from a file (finit_module).
pub fn load(path: &Path) -> Result<(), crate::ModuleError> {
    let f = std::fs::File::open(path).map_err(|source| crate::ModuleError::Open {
        path: path.display().to_string(),
        source,
    })?;
    match nix::kmod::finit_module(&f, c"", nix::kmod::ModuleInitFlags::empty()) {
        Ok(()) | Err(nix::Error::EEXIST) => Ok(()),
        Err(source) => Err(crate::ModuleError::Load {
            path: path.display().to_string(),
            source,
        }),
    }
}
