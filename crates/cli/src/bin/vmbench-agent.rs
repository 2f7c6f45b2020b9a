//! `vmbench-agent`: the guest's `/init` and nothing else.
//!
//! The `vmbench` binary can be the guest's `/init` too (as PID 1 it is the
//! agent), but it carries the whole host tool — report rendering, plots,
//! signing, the YAML config — into every initramfs. This binary links only
//! the guest agent, so the image `vmbench image build` makes (and
//! `nix build .#guest-image`) stays small: it boots faster under TCG and
//! copies faster to a fleet. `vmbench image build` takes it from beside the
//! running `vmbench` when it is there.

fn main() -> std::process::ExitCode {
    // As PID 1 the kernel's arguments are not ours: the agent reads its
    // options from /proc/cmdline. Otherwise (a test on the host) they are.
    let args: Vec<String> = if std::process::id() == 1 {
        Vec::new()
    } else {
        std::env::args().skip(1).collect()
    };
    vmbench_guest::main_with_args(&args)
}
