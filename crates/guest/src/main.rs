//! `vmbench-guest`: the guest agent as its own binary (used by the NixOS guest,
//! where it runs as a systemd service). The initramfs path runs the `vmbench`
//! binary itself as PID 1 instead.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let opts = match vmbench_guest::AgentOptions::from_args_and_cmdline(&args[1..]) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("vmbench-guest: {e}");
            return ExitCode::from(2);
        }
    };
    match vmbench_guest::run(&opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vmbench-guest: error: {e}");
            ExitCode::from(1)
        }
    }
}
