//! What a run tells the person watching it. The command line shows it with
//! a spinner on a TTY and plain lines otherwise; tests record it.

/// Where the phases report progress.
pub trait Progress {
    /// A new phase (kept on screen).
    fn phase(&self, message: &str);
    /// A step within a phase.
    fn step(&self, message: &str);
    /// Detail shown only when asked for (`-v`): QEMU command lines, every
    /// isolation change.
    fn detail(&self, message: &str);
}

/// Progress nobody watches.
pub struct Silent;

impl Progress for Silent {
    fn phase(&self, _: &str) {}
    fn step(&self, _: &str) {}
    fn detail(&self, _: &str) {}
}
