//! Standard output and error that never panic.
//!
//! `println!` panics when stdout is gone (`vmbench info --json | head -1`, a
//! closed ssh session, `> /dev/full`), and a panic mid-run is the wrong way
//! to end. Here a write to stdout returns an [`OutputError`] that travels up
//! like any error: a closed pipe ends the command quietly with status 0, as
//! the coreutils' readers of a pipe expect, and anything else (a full disk)
//! is exit 2 with a message. Writes to stderr ignore errors: there is nowhere
//! left to report them.

use std::io::Write;

/// Standard output could not be written.
#[derive(Debug)]
pub struct OutputError(pub std::io::Error);

impl std::fmt::Display for OutputError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("writing to standard output")
    }
}

impl std::error::Error for OutputError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

impl OutputError {
    /// The reader went away (a closed pipe): not a failure of the command.
    pub fn is_closed_pipe(&self) -> bool {
        self.0.kind() == std::io::ErrorKind::BrokenPipe
    }
}

/// What is printed: text that may hold strings of a results.json or of a
/// guest, with every control character but line breaks and tabs shown
/// escaped (no terminal escape sequence is sent raw).
fn printable(args: std::fmt::Arguments<'_>) -> String {
    vmbench_host::text::printable_lines(&args.to_string())
}

/// Writes formatted text to stdout.
pub fn write(args: std::fmt::Arguments<'_>) -> Result<(), OutputError> {
    std::io::stdout()
        .lock()
        .write_all(printable(args).as_bytes())
        .map_err(OutputError)
}

/// Writes formatted text and a newline to stdout.
pub fn line(args: std::fmt::Arguments<'_>) -> Result<(), OutputError> {
    let mut out = std::io::stdout().lock();
    out.write_all(printable(args).as_bytes())
        .and_then(|()| out.write_all(b"\n"))
        .map_err(OutputError)
}

/// Flushes stdout (a full disk shows here for output without a newline).
pub fn flush() -> Result<(), OutputError> {
    std::io::stdout().lock().flush().map_err(OutputError)
}

/// Writes formatted text and a newline to stderr; errors are ignored.
pub fn err_line(args: std::fmt::Arguments<'_>) {
    let mut e = std::io::stderr().lock();
    let _ = e
        .write_all(printable(args).as_bytes())
        .and_then(|()| e.write_all(b"\n"));
}

/// `println!` that returns `Result<(), OutputError>` instead of panicking.
macro_rules! outln {
    () => { $crate::out::line(format_args!("")) };
    ($($t:tt)*) => { $crate::out::line(format_args!($($t)*)) };
}

/// `print!` that returns `Result<(), OutputError>` instead of panicking.
macro_rules! out {
    ($($t:tt)*) => { $crate::out::write(format_args!($($t)*)) };
}

/// `eprintln!` that never panics.
macro_rules! errln {
    ($($t:tt)*) => { $crate::out::err_line(format_args!($($t)*)) };
}
