//! `vmbench-guest`: the guest agent as its own binary (used by the NixOS guest,
//! where it runs as a systemd service). The initramfs path runs the `vmbench`
//! binary itself as PID 1 instead.

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    vmbench_guest::main_with_args(&args)
}
