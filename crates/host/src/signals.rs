//! The signals that end a command early — SIGINT (Ctrl-C), SIGTERM, SIGHUP
//! (the terminal or ssh session went away), SIGQUIT (Ctrl-\) — turned into a
//! flag that every long wait checks, so the command tears down and restores
//! the host instead of dying with it tuned.
//!
//! A second signal while the host is being restored means the user will not
//! wait: the handler then says what is left (the changes not yet put back,
//! and the command that finishes the job; restore is idempotent) and exits
//! at once with 128 + the first signal's number.
//!
//! Only [`install`] changes signal dispositions; commands that never change
//! the host keep the default (a signal simply ends them).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicPtr, AtomicU32, AtomicUsize, Ordering};

/// The signals [`install`] handles.
pub const HANDLED: [nix::sys::signal::Signal; 4] = [
    nix::sys::signal::Signal::SIGINT,
    nix::sys::signal::Signal::SIGTERM,
    nix::sys::signal::Signal::SIGHUP,
    nix::sys::signal::Signal::SIGQUIT,
];

static FLAG: std::sync::OnceLock<Arc<AtomicBool>> = std::sync::OnceLock::new();
/// The flag's address, for the handler (a plain atomic load there).
static FLAG_PTR: AtomicPtr<AtomicBool> = AtomicPtr::new(std::ptr::null_mut());
static FIRST: AtomicI32 = AtomicI32::new(0);
static COUNT: AtomicU32 = AtomicU32::new(0);
static RESTORING: AtomicBool = AtomicBool::new(false);
static LEFT: AtomicUsize = AtomicUsize::new(0);
static TOTAL: AtomicUsize = AtomicUsize::new(0);
static HINT: AtomicPtr<u8> = AtomicPtr::new(std::ptr::null_mut());
static HINT_LEN: AtomicUsize = AtomicUsize::new(0);

/// Writes `bytes` to stderr with write(2) (async-signal-safe).
fn raw_stderr(bytes: &[u8]) {
    // SAFETY: write(2) on fd 2 with a valid buffer and length; any error is ignored.
    unsafe {
        nix::libc::write(2, bytes.as_ptr().cast(), bytes.len());
    }
}

/// Formats `n` in decimal into `buf` without allocating; returns the digits.
fn digits(mut n: usize, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 || i == 0 {
            break;
        }
    }
    &buf[i..]
}

extern "C" fn on_signal(sig: nix::libc::c_int) {
    let _ = FIRST.compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst);
    let before = COUNT.fetch_add(1, Ordering::SeqCst);
    let flag = FLAG_PTR.load(Ordering::SeqCst);
    if !flag.is_null() {
        // SAFETY: FLAG_PTR points into the Arc kept alive for the whole
        // process by FLAG (set once, never dropped).
        unsafe { (*flag).store(true, Ordering::SeqCst) };
    }
    if before >= 1 && RESTORING.load(Ordering::SeqCst) {
        let (mut a, mut b) = ([0u8; 20], [0u8; 20]);
        raw_stderr(b"\nvmbench: signalled again while restoring the host: ");
        raw_stderr(digits(LEFT.load(Ordering::SeqCst), &mut a));
        raw_stderr(b" of ");
        raw_stderr(digits(TOTAL.load(Ordering::SeqCst), &mut b));
        raw_stderr(b" change(s) not put back yet; finish with `");
        let hint = HINT.load(Ordering::SeqCst);
        if !hint.is_null() {
            // SAFETY: HINT/HINT_LEN describe a leaked, never-freed buffer
            // (see `restoring`), written before HINT was published.
            let s = unsafe { std::slice::from_raw_parts(hint, HINT_LEN.load(Ordering::SeqCst)) };
            raw_stderr(s);
        }
        raw_stderr(b"`\n");
        let first = FIRST.load(Ordering::SeqCst);
        // SAFETY: _exit is async-signal-safe; no destructor runs, which is
        // the point: the user asked twice to stop now.
        unsafe { nix::libc::_exit(128 + first) };
    }
}

/// Handles SIGINT, SIGTERM, SIGHUP and SIGQUIT from now on; returns the
/// flag they set. Idempotent.
pub fn install() -> Arc<AtomicBool> {
    let flag = FLAG
        .get_or_init(|| Arc::new(AtomicBool::new(false)))
        .clone();
    FLAG_PTR.store(Arc::as_ptr(&flag).cast_mut(), Ordering::SeqCst);
    use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, sigaction};
    let act = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for sig in HANDLED {
        // SAFETY: the handler only touches atomics and calls write(2) and
        // _exit(2), all async-signal-safe.
        let _ = unsafe { sigaction(sig, &act) };
    }
    flag
}

/// The first handled signal received, if any.
pub fn received() -> Option<i32> {
    match FIRST.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// Records `sig` as received, as the handler would (for commands that wait
/// for signals with sigwait instead of a handler).
pub fn note_received(sig: i32) {
    let _ = FIRST.compare_exchange(0, sig, Ordering::SeqCst, Ordering::SeqCst);
    COUNT.fetch_add(1, Ordering::SeqCst);
}

/// The conventional exit code of a command ended by `sig`: 128 + its number.
pub fn exit_code(sig: i32) -> u8 {
    u8::try_from(128 + sig.clamp(0, 127)).unwrap_or(u8::MAX)
}

/// While alive, a second signal exits at once saying what is left.
#[must_use]
pub struct Restoring(());

impl Drop for Restoring {
    fn drop(&mut self) {
        RESTORING.store(false, Ordering::SeqCst);
    }
}

/// Marks the start of a restore of `total` changes; `finish` is the command
/// that puts back the rest if the user stops this one.
pub fn restoring(total: usize, finish: &str) -> Restoring {
    // Leaked on purpose: the handler may read it at any moment, so it must
    // never be freed (one small string per restore).
    let hint: &'static mut [u8] = Box::leak(finish.as_bytes().to_vec().into_boxed_slice());
    HINT_LEN.store(hint.len(), Ordering::SeqCst);
    HINT.store(hint.as_mut_ptr(), Ordering::SeqCst);
    TOTAL.store(total, Ordering::SeqCst);
    LEFT.store(total, Ordering::SeqCst);
    RESTORING.store(true, Ordering::SeqCst);
    Restoring(())
}

/// One change was put back (or needed nothing).
pub fn restored_one() {
    let _ = LEFT.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_format_without_allocating() {
        let mut b = [0u8; 20];
        assert_eq!(digits(0, &mut b), b"0");
        assert_eq!(digits(1234, &mut b), b"1234");
        assert_eq!(
            digits(usize::MAX, &mut b),
            usize::MAX.to_string().as_bytes()
        );
        assert_eq!(exit_code(2), 130);
        assert_eq!(exit_code(15), 143);
        assert_eq!(exit_code(1), 129);
    }
}
