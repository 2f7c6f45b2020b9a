//! A shared region reached only through raw pointers and atomics: no `&[u8]`
//! is ever formed over memory the other side may be writing.
//!
//! # Reads that may race the other side
//!
//! Control words are atomics. Bulk data (the mailbox, frames, samples) is
//! read with plain loads ([`Region::copy_out`], [`Region::copy_out_into`],
//! [`Region::scan`]) while the other side (the guest, or the peer process in
//! loopback) may, if it misbehaves, be writing the same bytes. Rust's memory
//! model calls such a race undefined behaviour. We accept the assumption that
//! shared-memory IPC in Rust rests on: the writer is outside this program
//! (another process or a VM), so the compiler cannot see it, and the
//! hardware (x86-64) then returns, for each load, some mix of old and new
//! bytes and nothing worse. What those reads return is never trusted: it is
//! validated (mailbox payloads, frames against their pattern) or only summed.
//! Volatile loads would give no more on x86-64 and would keep the copies
//! from using the wide loads whose speed the shared-memory suite measures.

use crate::channel::ProtoError;
use crate::layout::MIN_REGION_BYTES;
use std::fs::File;
use std::path::Path;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64};

/// The shared region: base pointer and length. Not `Clone`: it borrows the
/// mapping's lifetime through `&Region` only.
#[derive(Debug)]
pub struct Region {
    base: NonNull<u8>,
    len: usize,
    /// Set when the file behind the mapping shrank under us ([`sigbus`]).
    lost: Option<&'static std::sync::atomic::AtomicBool>,
}

// SAFETY: a Region is an address range; all access goes through atomics or
// explicit copies, which are valid from any thread.
unsafe impl Send for Region {}
// SAFETY: as above; shared references never alias plain Rust data.
unsafe impl Sync for Region {}

impl Region {
    /// # Safety
    /// `base..base+len` must stay mapped, readable and writable for as long as
    /// this Region (or a copy) is used, and be aligned to at least 8 bytes.
    pub unsafe fn new(base: *mut u8, len: usize) -> Result<Region, ProtoError> {
        let base = NonNull::new(base).ok_or(ProtoError::Layout("null base".into()))?;
        if !(base.as_ptr() as usize).is_multiple_of(8) {
            return Err(ProtoError::Layout(
                "region base is not 8-byte aligned".into(),
            ));
        }
        if len < MIN_REGION_BYTES {
            return Err(ProtoError::Layout(format!(
                "region of {len} bytes is smaller than the protocol's minimum of {MIN_REGION_BYTES}"
            )));
        }
        Ok(Region {
            base,
            len,
            lost: None,
        })
    }

    /// The region's length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the region is empty (never, once constructed).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The region's base address.
    pub fn as_ptr(&self) -> *mut u8 {
        self.base.as_ptr()
    }

    /// Whether the file behind the mapping was truncated under us: its pages
    /// are replaced by zeroed anonymous memory (see [`sigbus`]) and nothing
    /// read from the region means anything any more.
    pub fn lost(&self) -> bool {
        self.lost
            .is_some_and(|l| l.load(std::sync::atomic::Ordering::Acquire))
    }

    /// Fails once the region is [`Region::lost`].
    pub fn check_alive(&self) -> Result<(), ProtoError> {
        if self.lost() {
            Err(ProtoError::RegionLost)
        } else {
            Ok(())
        }
    }

    fn check(&self, off: usize, size: usize, align: usize) -> Result<(), ProtoError> {
        self.check_alive()?;
        self.in_bounds(off, size, align)
    }

    fn in_bounds(&self, off: usize, size: usize, align: usize) -> Result<(), ProtoError> {
        let end = off
            .checked_add(size)
            .ok_or(ProtoError::OutOfBounds { off, len: size })?;
        if end > self.len || !off.is_multiple_of(align) {
            return Err(ProtoError::OutOfBounds { off, len: size });
        }
        Ok(())
    }

    /// The 32-bit atomic at `off` (layout constants only: in bounds and aligned
    /// by construction, checked anyway).
    pub fn u32_at(&self, off: usize) -> &AtomicU32 {
        assert!(
            self.in_bounds(off, 4, 4).is_ok(),
            "layout offset {off:#x} out of bounds"
        );
        // SAFETY: in bounds and 4-aligned (checked above, base is 8-aligned);
        // the memory is valid for the Region's lifetime per `new`'s contract,
        // and is only ever accessed atomically at this offset.
        unsafe { AtomicU32::from_ptr(self.base.as_ptr().add(off).cast()) }
    }

    /// The 64-bit atomic at `off`.
    pub fn u64_at(&self, off: usize) -> &AtomicU64 {
        assert!(
            self.in_bounds(off, 8, 8).is_ok(),
            "layout offset {off:#x} out of bounds"
        );
        // SAFETY: as for `u32_at`, with 8-byte alignment.
        unsafe { AtomicU64::from_ptr(self.base.as_ptr().add(off).cast()) }
    }

    /// Copies `len` bytes out. The other side may be writing them: the copy
    /// is then garbage, never unsafe to use, and the caller validates it.
    pub fn copy_out(&self, off: usize, len: usize) -> Result<Vec<u8>, ProtoError> {
        self.check(off, len, 1)?;
        let mut v = vec![0u8; len];
        // SAFETY: source in bounds (checked), destination is a fresh Vec of `len`
        // bytes; the ranges cannot overlap. A racing writer on the other side
        // is the assumption the module docs state and accept.
        unsafe { std::ptr::copy_nonoverlapping(self.base.as_ptr().add(off), v.as_mut_ptr(), len) };
        Ok(v)
    }

    /// Copies `dst.len()` bytes out at `off` into caller memory (timed copies:
    /// no allocation inside the window). As for `copy_out`, the bytes may be
    /// garbage if the other side writes them; the caller validates.
    pub fn copy_out_into(&self, off: usize, dst: &mut [u8]) -> Result<(), ProtoError> {
        self.check(off, dst.len(), 1)?;
        // SAFETY: source in bounds (checked); `dst` is caller-owned memory
        // outside the mapping, so the ranges cannot overlap. A racing writer
        // on the other side: see the module docs.
        unsafe {
            std::ptr::copy_nonoverlapping(self.base.as_ptr().add(off), dst.as_mut_ptr(), dst.len())
        };
        Ok(())
    }

    /// Reads `len` bytes at `off` (rounded down to whole u64 words) and
    /// returns their wrapping sum: a pure read pass with no copy.
    pub fn scan(&self, off: usize, len: usize) -> Result<u64, ProtoError> {
        self.check(off, len, 8)?;
        let words = len / 8;
        let base = self.base.as_ptr().wrapping_add(off).cast::<u64>();
        let mut sum = 0u64;
        for i in 0..words {
            // SAFETY: word i lies inside off..off+len (checked) and is 8-aligned
            // (off is 8-aligned, base is 8-aligned). A racing writer on the
            // other side: see the module docs; the sum is never trusted.
            sum = sum.wrapping_add(unsafe { base.add(i).read() });
        }
        Ok(sum)
    }

    /// Writes back and evicts every cache line of `off..off+len` (CLFLUSH),
    /// then fences: the next read of the range comes from memory.
    #[cfg(target_arch = "x86_64")]
    pub fn flush(&self, off: usize, len: usize) -> Result<(), ProtoError> {
        use std::arch::x86_64::{_mm_clflush, _mm_mfence};
        self.check(off, len, 1)?;
        let start = off & !63;
        let mut line = start;
        while line < off + len {
            // SAFETY: `line` is within the region (it starts at or below `off`,
            // which is in bounds, on the same 64-byte line, and stays below
            // off+len); CLFLUSH only needs a mapped address. SSE2 is baseline on x86_64.
            unsafe { _mm_clflush(self.base.as_ptr().add(line)) };
            line += 64;
        }
        // SAFETY: a fence has no memory operands.
        unsafe { _mm_mfence() };
        Ok(())
    }

    /// Copies `bytes` in at `off` (only into a range this side owns).
    pub fn copy_in(&self, off: usize, bytes: &[u8]) -> Result<(), ProtoError> {
        self.check(off, bytes.len(), 1)?;
        // SAFETY: destination in bounds (checked); `bytes` is ordinary memory
        // that cannot overlap the mapping.
        unsafe {
            std::ptr::copy_nonoverlapping(bytes.as_ptr(), self.base.as_ptr().add(off), bytes.len())
        };
        Ok(())
    }
}

/// The largest shared file vmbench maps (an ivshmem BAR vmbench makes is
/// at most a few GiB; anything far larger is not one of ours).
pub const MAX_SHARED_FILE_BYTES: usize = 64 << 30;

/// A file or device mapped shared, with the [`Region`] over it.
pub struct MappedRegion {
    region: Region,
    guard: Option<sigbus::Guard>,
    // Last: unmapped after the guard has stopped covering the range.
    map: memmap2::MmapRaw,
}

impl MappedRegion {
    /// Maps `len` bytes of `file` (MAP_SHARED). For character devices
    /// (`/dev/vmbench0`, sysfs `resource2`) the length must be given. A
    /// regular file is guarded against being truncated under us ([`sigbus`]).
    pub fn map(file: &File, len: usize) -> Result<MappedRegion, ProtoError> {
        let map = memmap2::MmapOptions::new()
            .len(len)
            .map_raw(file)
            .map_err(|e| ProtoError::Map(e.to_string()))?;
        // SAFETY: the mapping is `len` bytes, page-aligned, read/write, and is
        // owned by the returned value; `region()` only lends `&Region`, so no
        // use can outlive the mapping.
        let mut region = unsafe { Region::new(map.as_mut_ptr(), map.len())? };
        let regular = file.metadata().is_ok_and(|m| m.is_file());
        let guard = if regular {
            let g = sigbus::Guard::new(map.as_mut_ptr() as usize, map.len())?;
            region.lost = Some(g.lost());
            Some(g)
        } else {
            None
        };
        Ok(MappedRegion { region, guard, map })
    }

    /// Sizes a file vmbench has just created (empty, `O_EXCL`, 0600: see
    /// `vmbench_host::files::private_file`) to `len` bytes and maps it.
    pub fn map_new_file(file: &File, path: &Path, len: usize) -> Result<MappedRegion, ProtoError> {
        file.set_len(len as u64)
            .map_err(|e| ProtoError::Map(format!("{}: {e}", path.display())))?;
        MappedRegion::map(file, len)
    }

    /// Creates a new file of `len` bytes at `path`, mode 0600, and maps it.
    /// A file (or link) already there is an error, never reused: someone
    /// else could hold it open.
    pub fn create_file(path: &Path, len: usize) -> Result<(File, MappedRegion), ProtoError> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
            .open(path)
            .map_err(|e| {
                let hint = if e.kind() == std::io::ErrorKind::AlreadyExists {
                    " (already exists: vmbench only uses a shared file it creates itself; remove it or give a new path)"
                } else {
                    ""
                };
                ProtoError::Map(format!("{}: {e}{hint}", path.display()))
            })?;
        let m = MappedRegion::map_new_file(&file, path, len)?;
        Ok((file, m))
    }

    /// Opens an existing regular file read/write (not through a link) and
    /// maps all of it, up to `max_len` bytes.
    pub fn open_file(path: &Path, max_len: usize) -> Result<MappedRegion, ProtoError> {
        use std::os::unix::fs::OpenOptionsExt;
        let fail = |e: String| ProtoError::Map(format!("{}: {e}", path.display()));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_NONBLOCK | nix::libc::O_CLOEXEC)
            .open(path)
            .map_err(|e| fail(e.to_string()))?;
        let meta = file.metadata().map_err(|e| fail(e.to_string()))?;
        if !meta.is_file() {
            return Err(fail("not a regular file".into()));
        }
        let len = usize::try_from(meta.len()).unwrap_or(usize::MAX);
        if len > max_len {
            return Err(fail(format!(
                "{len} bytes, more than a shared region's {max_len}"
            )));
        }
        MappedRegion::map(&file, len)
    }

    /// The region inside the mapping.
    pub fn region(&self) -> &Region {
        &self.region
    }

    /// The mapping's length in bytes.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the mapping is empty (never, once constructed).
    pub fn is_empty(&self) -> bool {
        self.map.len() == 0
    }
}

impl Drop for MappedRegion {
    fn drop(&mut self) {
        // Stop covering the range before it is unmapped (field order).
        self.guard.take();
    }
}

/// Surviving a shared file that shrinks under us.
///
/// A `MAP_SHARED` mapping of a file raises SIGBUS when a page beyond the
/// file's end is touched, and by default SIGBUS kills the process — host
/// tuned, no message. Another process that can open the file (the peer in
/// a loopback, the user's own `vmbench shm host --path FILE`) can truncate
/// it at any time. So, as Wayland compositors do for client buffers
/// (libwayland's `wl_shm_buffer_begin_access`), a SIGBUS whose faulting
/// address lies in a guarded mapping replaces that whole mapping with
/// zeroed anonymous memory (`mmap(MAP_FIXED)`, async-signal-safe in
/// practice: one system call) and marks it lost; the faulting access then
/// completes on the zeros, and every later use of the [`Region`] fails with
/// [`ProtoError::RegionLost`], which ends the run through its normal error
/// path (the host restored). A SIGBUS anywhere else gets the default action.
pub mod sigbus {
    use crate::channel::ProtoError;
    use std::sync::Once;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    /// Guarded mappings at once (a run has one or two).
    const SLOTS: usize = 16;

    struct Slot {
        start: AtomicUsize,
        len: AtomicUsize,
        lost: AtomicBool,
    }

    static TABLE: [Slot; SLOTS] = [const {
        Slot {
            start: AtomicUsize::new(0),
            len: AtomicUsize::new(0),
            lost: AtomicBool::new(false),
        }
    }; SLOTS];
    static INSTALL: Once = Once::new();
    static INSTALLED: AtomicBool = AtomicBool::new(false);

    extern "C" fn on_sigbus(
        _sig: nix::libc::c_int,
        info: *mut nix::libc::siginfo_t,
        _ctx: *mut nix::libc::c_void,
    ) {
        // SAFETY: the kernel passes a valid siginfo_t to an SA_SIGINFO
        // handler; si_addr is the faulting address for SIGBUS.
        let addr = unsafe { (*info).si_addr() } as usize;
        for slot in &TABLE {
            let start = slot.start.load(Ordering::Acquire);
            let len = slot.len.load(Ordering::Acquire);
            if start != 0 && addr >= start && addr - start < len {
                // SAFETY: replaces exactly the guarded mapping (page-aligned
                // start and length, still mapped: its owner unregisters it
                // before unmapping) with private anonymous memory.
                let p = unsafe {
                    nix::libc::mmap(
                        start as *mut nix::libc::c_void,
                        len,
                        nix::libc::PROT_READ | nix::libc::PROT_WRITE,
                        nix::libc::MAP_PRIVATE | nix::libc::MAP_ANONYMOUS | nix::libc::MAP_FIXED,
                        -1,
                        0,
                    )
                };
                if p != nix::libc::MAP_FAILED {
                    slot.lost.store(true, Ordering::Release);
                    return;
                }
            }
        }
        // Not a guarded mapping: take the default action when the access
        // faults again on return.
        // SAFETY: signal(2) is async-signal-safe.
        unsafe { nix::libc::signal(nix::libc::SIGBUS, nix::libc::SIG_DFL) };
    }

    fn install() {
        INSTALL.call_once(|| {
            use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
            let act = SigAction::new(
                SigHandler::SigAction(on_sigbus),
                SaFlags::SA_SIGINFO | SaFlags::SA_NODEFER,
                SigSet::empty(),
            );
            // SAFETY: the handler only reads atomics and calls mmap(2) and
            // signal(2).
            if unsafe { sigaction(Signal::SIGBUS, &act) }.is_ok() {
                INSTALLED.store(true, Ordering::Release);
            }
        });
    }

    /// A mapping covered by the handler until dropped.
    pub struct Guard {
        slot: &'static Slot,
    }

    impl Guard {
        /// Covers `start..start+len` (a whole mapping).
        pub fn new(start: usize, len: usize) -> Result<Guard, ProtoError> {
            install();
            if !INSTALLED.load(Ordering::Acquire) {
                return Err(ProtoError::Map(
                    "cannot install the SIGBUS handler that guards shared files".into(),
                ));
            }
            for slot in &TABLE {
                if slot
                    .len
                    .compare_exchange(0, len, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    slot.lost.store(false, Ordering::Release);
                    slot.start.store(start, Ordering::Release);
                    return Ok(Guard { slot });
                }
            }
            Err(ProtoError::Map(format!(
                "more than {SLOTS} shared files mapped at once"
            )))
        }

        /// The flag the handler sets when the mapping is lost.
        pub fn lost(&self) -> &'static AtomicBool {
            &self.slot.lost
        }
    }

    impl Drop for Guard {
        fn drop(&mut self) {
            self.slot.start.store(0, Ordering::Release);
            self.slot.len.store(0, Ordering::Release);
        }
    }
}

/// A shared region's size given in MiB that cannot back an ivshmem BAR.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a shared region of {0} MiB: give a power of two of at least 2 (it is a PCI BAR)")]
pub struct RegionSizeError(pub u64);

/// The size in bytes of a shared region of `mib` MiB: a PCI BAR is a power
/// of two, and the protocol needs at least 2 MiB (its header, both control
/// blocks and a data area).
pub fn region_bytes(mib: u64) -> Result<usize, RegionSizeError> {
    if mib < 2 || !mib.is_power_of_two() {
        return Err(RegionSizeError(mib));
    }
    mib.checked_mul(1 << 20)
        .and_then(|b| usize::try_from(b).ok())
        .ok_or(RegionSizeError(mib))
}

#[cfg(test)]
mod size_tests {
    use super::*;

    #[test]
    fn region_sizes_are_powers_of_two_of_at_least_2_mib() {
        assert_eq!(region_bytes(2), Ok(2 << 20));
        assert_eq!(region_bytes(256), Ok(256 << 20));
        for bad in [0, 1, 3, 96, u64::MAX] {
            assert_eq!(region_bytes(bad), Err(RegionSizeError(bad)), "{bad}");
        }
    }
}
