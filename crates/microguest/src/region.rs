//! The micro-guest's end of the shared region: the same layout, states and
//! sequence hand-offs as `vmbench_proto::GuestEnd`, without an allocator.

use crate::console::{Sink, exit_code, qemu_exit};
use core::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use core::sync::atomic::{AtomicU32, AtomicU64};
use vmbench_abi::layout::*;
use vmbench_abi::{guest_state, host_state};

/// The region, identity-mapped at its BAR2 address.
pub struct Shm {
    pub base: u64,
    pub len: u64,
}

impl Shm {
    pub fn u32(&self, off: usize) -> &AtomicU32 {
        // SAFETY: `off` is a layout constant inside the mapped region (checked
        // against MIN_REGION_BYTES at attach), 4-aligned; the region is only
        // ever accessed atomically at control offsets.
        unsafe { AtomicU32::from_ptr((self.base + off as u64) as *mut u32) }
    }

    pub fn u64(&self, off: usize) -> &AtomicU64 {
        // SAFETY: as above, 8-aligned.
        unsafe { AtomicU64::from_ptr((self.base + off as u64) as *mut u64) }
    }

    /// Copies into the mailbox; callers keep `bytes` within [`MAILBOX_BYTES`].
    fn put_mailbox(&self, bytes: &[u8]) {
        for (i, b) in bytes.iter().take(MAILBOX_BYTES).enumerate() {
            // SAFETY: MAILBOX_OFF + i < DATA_OFF <= the region's length.
            unsafe { core::ptr::write_volatile((self.base as *mut u8).add(MAILBOX_OFF + i), *b) };
        }
    }

    pub fn data(&self) -> *mut u64 {
        (self.base + DATA_OFF as u64) as *mut u64
    }

    /// How many u64 samples the data area holds.
    pub fn capacity(&self) -> u64 {
        (self.len - DATA_OFF as u64) / 8
    }

    /// Answers command `seq`: mailbox and length, then status, then the
    /// sequence number (Release), then READY.
    pub fn respond(&self, seq: u64, status: u32, payload: &[u8]) {
        let len = payload.len().min(MAILBOX_BYTES);
        self.put_mailbox(&payload[..len]);
        self.u64(GC_RESP_LEN).store(len as u64, Relaxed);
        self.u32(GC_STATUS).store(status, Relaxed);
        self.u64(GC_RESP_SEQ).store(seq, Release);
        self.u32(GC_STATE).store(guest_state::READY, Release);
    }

    /// Waits for the host's session and answers it; returns the session.
    /// A host speaking another protocol version ends the VM.
    pub fn attach(&self) -> u64 {
        while self.u32(HC_STATE).load(Acquire) != host_state::READY
            || self.u64(H_MAGIC).load(Relaxed) != MAGIC
        {
            core::hint::spin_loop();
        }
        let session = self.u64(HC_SESSION).load(Relaxed);
        if self.u32(H_VERSION).load(Relaxed) != PROTOCOL_VERSION {
            let msg = b"micro-guest: incompatible protocol version";
            self.put_mailbox(msg);
            self.u64(GC_RESP_LEN).store(msg.len() as u64, Relaxed);
            self.u64(GC_SESSION).store(session, Relaxed);
            self.u32(GC_STATE).store(guest_state::FAILED, Release);
            qemu_exit(exit_code::INCOMPATIBLE);
        }
        // Commands sent before this session are not ours to answer.
        self.u64(GC_RESP_SEQ)
            .store(self.u64(HC_CMD_SEQ).load(Acquire), Relaxed);
        self.u32(GC_VERSION).store(PROTOCOL_VERSION, Relaxed);
        self.u64(GC_SESSION).store(session, Relaxed);
        self.u32(GC_STATE).store(guest_state::READY, Release);
        session
    }

    /// Whether the host still serves `session` (else: attach again).
    pub fn host_serves(&self, session: u64) -> bool {
        self.u32(HC_STATE).load(Acquire) == host_state::READY
            && self.u64(HC_SESSION).load(Relaxed) == session
    }
}

/// A fixed buffer for the JSON answers (no allocator here).
pub struct Buf {
    bytes: [u8; 4096],
    len: usize,
    /// Something did not fit: the answer is truncated.
    pub full: bool,
}

impl Buf {
    pub const fn new() -> Buf {
        Buf {
            bytes: [0; 4096],
            len: 0,
            full: false,
        }
    }

    pub fn clear(&mut self) {
        self.len = 0;
        self.full = false;
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl Sink for Buf {
    /// Truncates (and remembers it) rather than overflow.
    fn put(&mut self, b: &[u8]) {
        let room = self.bytes.len() - self.len;
        let k = b.len().min(room);
        self.bytes[self.len..self.len + k].copy_from_slice(&b[..k]);
        self.len += k;
        self.full |= k < b.len();
    }
}
