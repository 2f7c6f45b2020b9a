//! The vmbench guest module's interface (mirror of kmod/vmbench_uapi.h)
//! and module loading.

use std::os::fd::AsRawFd;
use std::path::Path;

/// VMBENCH_ABI_VERSION: the module and the agent must agree.
pub const ABI_VERSION: u32 = 2;
/// The module's character device.
pub const DEVICE: &str = "/dev/vmbench0";

/// `struct vmbench_info`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VmbenchInfo {
    /// The module's VMBENCH_ABI_VERSION.
    pub abi_version: u32,
    /// The ivshmem device's PCI revision.
    pub revision: u32,
    /// BAR2 (the shared memory) size in bytes.
    pub bar2_size: u64,
    /// BAR2's physical address.
    pub bar2_phys: u64,
    /// BAR0's (the registers') physical address.
    pub bar0_phys: u64,
    /// BAR0 IVPosition: this peer's id (doorbell mode).
    pub iv_position: u32,
    /// MSI-X vectors (0 for ivshmem-plain).
    pub msix_vectors: u32,
    /// VMBENCH_MAP_* of the device's mmap().
    pub mapping: u32,
    /// Padding to 48 bytes.
    pub pad: u32,
}

/// `struct vmbench_eventfd`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct VmbenchEventfd {
    /// The MSI-X vector.
    pub vector: u32,
    /// The eventfd to signal on it (-1 detaches).
    pub fd: i32,
}

const _: () = assert!(std::mem::size_of::<VmbenchInfo>() == 48);

/// `enum vmbench_insn`.
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Insn {
    /// Empty timed region: timer overhead.
    None = 0,
    /// A non-exiting instruction.
    Nop = 1,
    /// CPUID leaf 0: exit handled inside KVM.
    Cpuid = 2,
    /// VMCALL/VMMCALL with RAX=0: KVM's hypercall handler.
    Vmcall = 3,
    /// OUTB to `port` (the debugcon: QEMU).
    Outb = 4,
    /// INB from `port` (0x4d0: in-kernel PIC; 0x1234: QEMU).
    Inb = 5,
    /// RDMSR IA32_APIC_BASE: emulated by KVM.
    Rdmsr = 6,
    /// WRMSR IA32_TSC_DEADLINE with its current value.
    WrmsrTscDeadline = 7,
    /// INVD (refused unless running under a hypervisor).
    Invd = 8,
    /// The selected pci-testdev test's register (see [`testdev_select`]).
    Testdev = 9,
    /// Local APIC EOI, nothing in service.
    Eoi = 10,
    /// irq_work self-IPI, waited for (IRQs on).
    SelfIpi = 11,
    /// smp_call_function_single to another CPU, idle in HLT.
    IpiHalt = 12,
    /// WRMSR IA32_PRED_CMD = IBPB.
    WrmsrIbpb = 13,
    /// WRMSR IA32_SPEC_CTRL with its current value.
    WrmsrSpecCtrl = 14,
    /// MOV CR8 = 0.
    MovCr8 = 15,
}

/// VMBENCH_MAX_SAMPLES: timed iterations per EXIT_LOOP call (bounds the IRQs-off window).
pub const MAX_SAMPLES: u64 = 4096;
/// VMBENCH_MAX_BATCH: untimed iterations per EXIT_LOOP call.
pub const MAX_BATCH: u64 = 65536;

/// `struct vmbench_exit_loop`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct ExitLoop {
    /// The instruction ([`Insn`]).
    pub insn: u32,
    /// OUTB/INB port, 0..=0xffff.
    pub port: u32,
    /// Timed iterations, 0..=[`MAX_SAMPLES`].
    pub samples: u64,
    /// User buffer of `samples` u64 (ticks per iteration).
    pub samples_ptr: u64,
    /// Untimed back-to-back iterations, 0..=[`MAX_BATCH`].
    pub batch: u64,
    /// Out: ticks for the whole batch.
    pub batch_ticks: u64,
}

/// `struct vmbench_exit_once`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct ExitOnce {
    /// The instruction ([`Insn`]).
    pub insn: u32,
    /// OUTB/INB port, 0..=0xffff.
    pub port: u32,
}

const _: () = assert!(std::mem::size_of::<ExitLoop>() == 40);

nix::ioctl_readwrite!(
    /// VMBENCH_IOC_EXIT_LOOP.
    ioc_exit_loop,
    b'v',
    0x10,
    ExitLoop
);
nix::ioctl_write_ptr!(
    /// VMBENCH_IOC_EXIT_ONCE.
    ioc_exit_once,
    b'v',
    0x11,
    ExitOnce
);
nix::ioctl_none!(
    /// VMBENCH_IOC_NULL.
    ioc_null,
    b'v',
    0x12
);

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

nix::ioctl_read!(
    /// VMBENCH_IOC_INFO.
    ioc_info,
    b'v',
    0x00,
    VmbenchInfo
);
nix::ioctl_write_ptr!(
    /// VMBENCH_IOC_DOORBELL.
    ioc_doorbell,
    b'v',
    0x01,
    u32
);
nix::ioctl_write_ptr!(
    /// VMBENCH_IOC_SET_EVENTFD.
    ioc_set_eventfd,
    b'v',
    0x02,
    VmbenchEventfd
);

/// VMBENCH_IOC_INFO.
pub fn info(dev: &std::fs::File) -> Result<VmbenchInfo, nix::Error> {
    let mut i = VmbenchInfo::default();
    // SAFETY: the kernel writes exactly one `struct vmbench_info` (48 bytes,
    // layout asserted above) into `i`, which lives across the call.
    unsafe { ioc_info(dev.as_raw_fd(), &mut i) }?;
    Ok(i)
}

/// `struct vmbench_memtype`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VmbenchMemtype {
    /// A user address of this process (a touched page of the mapping).
    pub addr: u64,
    /// Out: the PTE's cache mode (VMBENCH_CACHE_*: the kernel's enum page_cache_mode).
    pub cache_mode: u32,
    /// Out: the PTE's PAT|PCD|PWT bits.
    pub pte_bits: u32,
}

nix::ioctl_readwrite!(
    /// VMBENCH_IOC_MEMTYPE.
    ioc_memtype,
    b'v',
    0x03,
    VmbenchMemtype
);

/// VMBENCH_IOC_MEMTYPE: the cache mode of this process's PTE at `addr`, by
/// name (`write-back`, `uncached-minus`, ...).
pub fn memtype(dev: &std::fs::File, addr: u64) -> Result<&'static str, nix::Error> {
    let mut m = VmbenchMemtype {
        addr,
        ..VmbenchMemtype::default()
    };
    // SAFETY: the kernel reads and writes back one `struct vmbench_memtype`
    // (16 bytes) at `m`, which lives across the call; `addr` is only looked
    // up in this process's page tables.
    unsafe { ioc_memtype(dev.as_raw_fd(), &mut m) }?;
    Ok(match m.cache_mode {
        0 => "write-back",
        1 => "write-combining",
        2 => "uncached-minus",
        3 => "uncached",
        4 => "write-through",
        5 => "write-protected",
        _ => "unknown",
    })
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

/// `VMBENCH_MMAP_TESTDEV`: the mmap offset of pci-testdev's BAR0 page.
pub const MMAP_TESTDEV: i64 = 1 << 40;

/// Which pci-testdev BAR a test uses (`VMBENCH_TESTDEV_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestdevSpace {
    /// BAR0: memory.
    Mmio = 0,
    /// BAR1: port I/O.
    Pio = 1,
}

/// `struct vmbench_testdev`.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct Testdev {
    /// `VMBENCH_TESTDEV_*`.
    pub space: u32,
    /// The test number (0 no eventfd, 1 wildcard ioeventfd, 2 datamatch).
    pub test: u32,
    /// Out: the BAR0 offset (MMIO) or the port (PIO) of the test's register.
    pub addr: u64,
    /// Out: the value its writes carry.
    pub data: u32,
    /// Out (count): writes QEMU's device served itself.
    pub count: u32,
}

const _: () = assert!(std::mem::size_of::<Testdev>() == 24);

nix::ioctl_readwrite!(
    /// `VMBENCH_IOC_TESTDEV_SELECT`.
    ioc_testdev_select,
    b'v',
    0x20,
    Testdev
);
nix::ioctl_readwrite!(
    /// `VMBENCH_IOC_TESTDEV_COUNT`.
    ioc_testdev_count,
    b'v',
    0x21,
    Testdev
);

/// Selects pci-testdev's test `test` in `space`; returns where its writes
/// go and their value.
pub fn testdev_select(
    dev: &std::fs::File,
    space: TestdevSpace,
    test: u8,
) -> Result<Testdev, nix::Error> {
    let mut t = Testdev {
        space: space as u32,
        test: u32::from(test),
        ..Testdev::default()
    };
    // SAFETY: the ioctl reads and writes one struct vmbench_testdev, which
    // Testdev mirrors (size asserted above).
    unsafe { ioc_testdev_select(dev.as_raw_fd(), &mut t) }?;
    Ok(t)
}

/// The selected test's count: writes QEMU's device itself served.
pub fn testdev_count(dev: &std::fs::File) -> Result<u32, nix::Error> {
    let mut t = Testdev::default();
    // SAFETY: as in testdev_select.
    unsafe { ioc_testdev_count(dev.as_raw_fd(), &mut t) }?;
    Ok(t.count)
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
