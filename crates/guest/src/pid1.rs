//! What init has to do in a bare initramfs.

use nix::mount::{MsFlags, mount};

/// Mounts /proc, /sys and /dev (devtmpfs). Already-mounted is fine.
pub fn mount_basics() -> Vec<String> {
    let mut problems = Vec::new();
    for (src, target, fstype) in [
        ("proc", "/proc", "proc"),
        ("sysfs", "/sys", "sysfs"),
        ("devtmpfs", "/dev", "devtmpfs"),
        // For x86/pat_memtype_list: the memory type the kernel gave the BAR.
        ("debugfs", "/sys/kernel/debug", "debugfs"),
    ] {
        let _ = std::fs::create_dir_all(target);
        match mount(
            Some(src),
            target,
            Some(fstype),
            MsFlags::MS_NOSUID,
            None::<&str>,
        ) {
            Ok(()) | Err(nix::Error::EBUSY) => {}
            Err(e) => problems.push(format!("mount {fstype} on {target}: {e}")),
        }
    }
    problems
}

/// Powers the guest off (QEMU then exits). Never returns.
pub fn poweroff() -> ! {
    nix::unistd::sync();
    let _ = nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_POWER_OFF);
    // If power-off is refused (no ACPI), halting still stops the vCPU.
    let _ = nix::sys::reboot::reboot(nix::sys::reboot::RebootMode::RB_HALT_SYSTEM);
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}

/// No shell could be started on the console.
#[derive(Debug, thiserror::Error)]
pub enum ShellError {
    /// The initramfs has no /bin/sh.
    #[error("no /bin/sh in this initramfs (install busybox-static and rebuild the image)")]
    NoShell,
    /// The shell could not be started (what, and why).
    #[error("{0}")]
    Spawn(&'static str, #[source] std::io::Error),
}

/// Starts an interactive shell on the console, if busybox is there.
pub fn spawn_shell() -> Result<(), ShellError> {
    let sh = ["/bin/sh", "/bin/busybox"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .ok_or(ShellError::NoShell)?;
    let mut cmd = std::process::Command::new(sh);
    if sh.ends_with("busybox") {
        cmd.arg("sh");
    }
    cmd.spawn()
        .map(|_| ())
        .map_err(|e| ShellError::Spawn(sh, e))
}
