//! The serial console (boot and fault messages only: each byte written is
//! itself an exit), the way out of QEMU, and the panic and exception reports.

use crate::io::{COM1_DATA, COM1_LINE_STATUS, DEBUG_EXIT, LSR_THR_EMPTY, inb, outb, outl};
use core::arch::asm;

/// Exit codes written to isa-debug-exit; QEMU's own exit status is
/// `(code << 1) | 1`, so 0 gives status 1.
pub mod exit_code {
    /// The host asked for a shutdown.
    pub const SHUTDOWN: u32 = 0;
    /// A CPU exception (the console shows the vector and RIP).
    pub const EXCEPTION: u32 = 3;
    /// The host speaks another protocol version.
    pub const INCOMPATIBLE: u32 = 4;
    /// No usable ivshmem device.
    pub const NO_DEVICE: u32 = 5;
    /// A Rust panic.
    pub const PANIC: u32 = 0x7e;
}

/// Output without core::fmt: the precompiled libcore's integer formatting
/// and padding use SSE, which this guest must not execute (see boot.s).
pub trait Sink: Sized {
    fn put(&mut self, b: &[u8]);

    fn s(&mut self, t: &str) -> &mut Self {
        self.put(t.as_bytes());
        self
    }

    /// Decimal.
    fn u(&mut self, mut v: u64) -> &mut Self {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (v % 10) as u8;
            v /= 10;
            if v == 0 {
                break;
            }
        }
        self.put(&digits[i..]);
        self
    }

    /// `0x`-prefixed hexadecimal.
    fn x(&mut self, mut v: u64) -> &mut Self {
        let mut digits = [0u8; 16];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = HEX[(v & 0xf) as usize];
            v >>= 4;
            if v == 0 {
                break;
            }
        }
        self.put(b"0x");
        self.put(&digits[i..]);
        self
    }

    /// A JSON string: printable ASCII kept, anything else replaced by '?'.
    fn q(&mut self, t: &str) -> &mut Self {
        self.put(b"\"");
        for &c in t.as_bytes() {
            let ok = (c == b' ' || c.is_ascii_graphic()) && c != b'"' && c != b'\\';
            self.put(&[if ok { c } else { b'?' }]);
        }
        self.put(b"\"");
        self
    }
}

pub const HEX: &[u8; 16] = b"0123456789abcdef";

/// COM1, polled.
pub struct Serial;

impl Sink for Serial {
    fn put(&mut self, b: &[u8]) {
        for &c in b {
            while inb(COM1_LINE_STATUS) & LSR_THR_EMPTY == 0 {}
            outb(COM1_DATA, c);
        }
    }
}

/// Ends QEMU through isa-debug-exit (see [`exit_code`]).
pub fn qemu_exit(code: u32) -> ! {
    outl(DEBUG_EXIT, code);
    loop {
        // SAFETY: halting with interrupts off stops this (only) vCPU.
        unsafe { asm!("cli; hlt", options(nomem, nostack)) };
    }
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    let mut out = Serial;
    out.s("micro-guest: PANIC");
    if let Some(at) = info.location() {
        out.s(" at ").s(at.file()).s(":").u(u64::from(at.line()));
    }
    out.s("\n");
    qemu_exit(exit_code::PANIC)
}

/// Called by the exception stubs (boot.s): report and stop.
#[unsafe(no_mangle)]
extern "C" fn rust_exception(frame: *const u64) -> ! {
    // SAFETY: the stub passes its stack: vector, error code, then the CPU's
    // interrupt frame (rip, cs, rflags, rsp, ss), seven valid u64.
    let [vector, error, rip, cs, _rflags, rsp, _ss] =
        unsafe { core::ptr::read(frame.cast::<[u64; 7]>()) };
    Serial
        .s("micro-guest: EXCEPTION vector ")
        .u(vector)
        .s(" error ")
        .x(error)
        .s(" at RIP ")
        .x(rip)
        .s(" (CS ")
        .x(cs)
        .s(", RSP ")
        .x(rsp)
        .s(")\n");
    qemu_exit(exit_code::EXCEPTION)
}
