//! The QEMU command line. Works with QEMU 7.2 (Debian 12) and 10.x (nixpkgs).

use std::path::PathBuf;

pub use vmbench_results::Accel;

/// Where the serial console goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Serial {
    /// Appended to this file.
    File(PathBuf),
}

/// Where bytes written to the debugcon port go. `Null` keeps the slow-path
/// exit cost to QEMU's dispatch, without a write(2) per byte.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Debugcon {
    /// Discarded (QEMU's null chardev).
    Null,
    /// Appended to this file.
    File(PathBuf),
}

/// Everything QEMU's command line is made from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QemuConfig {
    /// The QEMU binary.
    pub binary: PathBuf,
    /// KVM or TCG.
    pub accel: Accel,
    /// Guest vCPUs.
    pub vcpus: u32,
    /// Guest RAM in MiB.
    pub memory_mib: u32,
    /// The kernel (bzImage, or the micro-guest's PVH ELF).
    pub kernel: PathBuf,
    /// The initramfs (none for the micro-guest).
    pub initrd: Option<PathBuf>,
    /// The kernel command line.
    pub append: String,
    /// The file backing ivshmem-plain (share=on), and its size.
    pub shm_path: PathBuf,
    /// The region's size in bytes.
    pub shm_bytes: u64,
    /// ivshmem-doorbell instead of ivshmem-plain: the server socket and the
    /// number of MSI-X vectors (the memory then comes from the server).
    pub doorbell: Option<(PathBuf, u32)>,
    /// The QMP socket QEMU listens on.
    pub qmp_socket: PathBuf,
    /// Where the serial console goes.
    pub serial: Serial,
    /// Where debugcon output goes.
    pub debugcon: Debugcon,
    /// The slow-path port: an OUTB there exits to QEMU (isa-debugcon).
    pub debugcon_port: u16,
    /// `-overcommit mem-lock=on`: guest RAM locked, no page faults mid-run.
    pub mem_lock: bool,
    /// `isa-debug-exit` at 0xf4 (the micro-guest reports its exit code there).
    pub debug_exit: bool,
    /// `-cpu` under KVM; default `host,+invtsc` (TCG always uses `max`).
    pub kvm_cpu: Option<String>,
    /// `-global kvm-apic.vapic=off`: set under KVM when this host is itself
    /// a guest of QEMU's TCG ([`host_is_tcg_guest`]), whose SVM emulation
    /// breaks ring-3 port I/O in our guest after kvmvapic syncs registers.
    pub vapic_off: bool,
    /// Extra arguments, appended last.
    pub extra: Vec<String>,
}

/// Whether this host is a guest of QEMU's TCG (hypervisor signature
/// `TCGTCGTCGTCG`): KVM nested in emulation, as in vmbench's own CI lane.
///
/// There QEMU's kvmvapic, handling a `KVM_EXIT_TPR_ACCESS`, reads and
/// writes back the vCPU's segment registers (`KVM_GET_SREGS2` /
/// `KVM_SET_SREGS2`), which stores TR as a busy TSS (type 11); TCG's
/// I/O-permission check (target/i386/tcg/seg_helper.c, `check_io`) accepts
/// only type 9, so every CPL-3 IN/OUT in our guest then raises #GP even
/// after ioperm(), and the user-slow rows kill the guest's init. No real
/// CPU does this, so elsewhere vmbench keeps QEMU's default (vapic on, as a
/// user's own VMs run): the option is set only where the defect is.
pub fn host_is_tcg_guest() -> bool {
    vmbench_host::cpuid::hypervisor_signature_raw().as_deref() == Some("TCGTCGTCGTCG")
}

impl QemuConfig {
    /// The command line's arguments, without the binary.
    pub fn args(&self) -> Vec<String> {
        let mut a: Vec<String> = Vec::new();
        let mut push = |xs: &[&str]| a.extend(xs.iter().map(|s| s.to_string()));
        // Thread names ("CPU 0/KVM") make vCPU threads findable without QMP.
        push(&["-name", "vmbench,debug-threads=on"]);
        // Under KVM the PIC, PIT and IOAPIC are KVM's own (kernel-irqchip=on,
        // not QEMU's default for q35, "split"), so that the in-kernel PIO row
        // (the PIC's ELCR at 0x4d0) is served by KVM without QEMU.
        match self.accel {
            Accel::Kvm => push(&["-machine", "q35,accel=kvm,kernel-irqchip=on"]),
            Accel::Tcg => push(&["-machine", "q35,accel=tcg"]),
        }
        match self.accel {
            // invtsc: the guest sees an invariant TSC, as on the host.
            Accel::Kvm => push(&["-cpu", self.kvm_cpu.as_deref().unwrap_or("host,+invtsc")]),
            Accel::Tcg => push(&["-cpu", "max"]),
        }
        if self.accel == Accel::Kvm && self.vapic_off {
            push(&["-global", "kvm-apic.vapic=off"]);
        }
        push(&[
            "-smp",
            &self.vcpus.to_string(),
            "-m",
            &format!("{}M", self.memory_mib),
        ]);
        if self.mem_lock {
            push(&["-overcommit", "mem-lock=on"]);
        }
        push(&[
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-no-reboot",
        ]);
        push(&["-kernel", &self.kernel.display().to_string()]);
        if let Some(i) = &self.initrd {
            push(&["-initrd", &i.display().to_string()]);
        }
        push(&["-append", &self.append]);
        match &self.serial {
            Serial::File(p) => push(&[
                "-chardev",
                &format!("file,id=serial0,path={}", p.display()),
                "-serial",
                "chardev:serial0",
            ]),
        }
        match &self.doorbell {
            None => push(&[
                "-object",
                &format!(
                    "memory-backend-file,id=vmbench-shm,size={},share=on,mem-path={}",
                    self.shm_bytes,
                    self.shm_path.display()
                ),
                "-device",
                "ivshmem-plain,memdev=vmbench-shm",
            ]),
            Some((socket, vectors)) => push(&[
                "-chardev",
                &format!("socket,path={},id=vmbench-ivshmem", socket.display()),
                "-device",
                &format!("ivshmem-doorbell,chardev=vmbench-ivshmem,vectors={vectors}"),
            ]),
        }
        match &self.debugcon {
            Debugcon::Null => push(&["-chardev", "null,id=debugcon"]),
            Debugcon::File(p) => push(&[
                "-chardev",
                &format!("file,id=debugcon,path={}", p.display()),
            ]),
        }
        push(&[
            "-device",
            &format!(
                "isa-debugcon,iobase={:#x},chardev=debugcon",
                self.debugcon_port
            ),
        ]);
        if self.debug_exit {
            push(&["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"]);
        }
        // The MMIO and port-I/O rows' device: each BAR has a register QEMU
        // serves and one behind an ioeventfd that KVM completes itself.
        push(&["-device", "pci-testdev"]);
        push(&[
            "-qmp",
            &format!("unix:{},server=on,wait=off", self.qmp_socket.display()),
        ]);
        a.extend(self.extra.iter().cloned());
        a
    }

    /// The command line as one shell-quoted string, for reports and logs.
    pub fn command_line(&self) -> String {
        std::iter::once(self.binary.display().to_string())
            .chain(self.args())
            .map(|s| {
                if s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c))
                {
                    s
                } else {
                    format!("'{}'", s.replace('\'', r"'\''"))
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(accel: Accel) -> QemuConfig {
        QemuConfig {
            binary: "/usr/bin/qemu-system-x86_64".into(),
            accel,
            vcpus: 1,
            memory_mib: 512,
            kernel: "/img/bzImage".into(),
            initrd: Some("/img/initrd".into()),
            append: "console=ttyS0 panic=-1".into(),
            shm_path: "/dev/shm/vmbench-1".into(),
            shm_bytes: 64 << 20,
            doorbell: None,
            qmp_socket: "/run/x/qmp.sock".into(),
            serial: Serial::File("/run/x/serial.log".into()),
            debugcon: Debugcon::Null,
            debugcon_port: 0xe9,
            mem_lock: accel == Accel::Kvm,
            debug_exit: false,
            kvm_cpu: None,
            vapic_off: false,
            extra: vec![],
        }
    }

    fn has(args: &[String], pair: [&str; 2]) -> bool {
        args.windows(2).any(|w| w[0] == pair[0] && w[1] == pair[1])
    }

    #[test]
    fn kvm_command_line() {
        let a = cfg(Accel::Kvm).args();
        assert!(has(&a, ["-machine", "q35,accel=kvm,kernel-irqchip=on"]));
        assert!(has(&a, ["-cpu", "host,+invtsc"]));
        assert!(has(&a, ["-overcommit", "mem-lock=on"]));
        assert!(has(&a, ["-name", "vmbench,debug-threads=on"]));
        assert!(has(&a, ["-smp", "1"]));
        assert!(has(&a, ["-device", "pci-testdev"]));
        assert!(has(&a, ["-device", "ivshmem-plain,memdev=vmbench-shm"]));
        assert!(has(
            &a,
            [
                "-object",
                "memory-backend-file,id=vmbench-shm,size=67108864,share=on,mem-path=/dev/shm/vmbench-1"
            ]
        ));
        assert!(has(
            &a,
            ["-device", "isa-debugcon,iobase=0xe9,chardev=debugcon"]
        ));
        assert!(has(&a, ["-qmp", "unix:/run/x/qmp.sock,server=on,wait=off"]));
        assert!(a.contains(&"-nodefaults".to_string()) && a.contains(&"-no-reboot".to_string()));
        assert!(
            !a.iter().any(|x| x.contains("vapic")),
            "QEMU's default on real hosts"
        );
    }

    #[test]
    fn vapic_is_turned_off_only_for_kvm_nested_in_tcg() {
        let mut c = cfg(Accel::Kvm);
        c.vapic_off = true;
        assert!(has(&c.args(), ["-global", "kvm-apic.vapic=off"]));
        // TCG itself has no kvm-apic device: the global would be refused.
        let mut t = cfg(Accel::Tcg);
        t.vapic_off = true;
        assert!(!t.args().iter().any(|x| x.contains("vapic")));
    }

    #[test]
    fn doorbell_replaces_the_plain_device() {
        let mut c = cfg(Accel::Kvm);
        c.doorbell = Some(("/run/x/ivshmem.sock".into(), 2));
        let a = c.args();
        assert!(has(
            &a,
            [
                "-chardev",
                "socket,path=/run/x/ivshmem.sock,id=vmbench-ivshmem"
            ]
        ));
        assert!(has(
            &a,
            [
                "-device",
                "ivshmem-doorbell,chardev=vmbench-ivshmem,vectors=2"
            ]
        ));
        assert!(!a.iter().any(|x| x.contains("ivshmem-plain")));
    }

    #[test]
    fn tcg_command_line_and_quoting() {
        let c = cfg(Accel::Tcg);
        let a = c.args();
        assert!(has(&a, ["-machine", "q35,accel=tcg"]));
        assert!(has(&a, ["-cpu", "max"]));
        assert!(!a.contains(&"-overcommit".to_string()));
        let line = c.command_line();
        assert!(line.contains("-append 'console=ttyS0 panic=-1'"), "{line}");
        assert!(line.starts_with("/usr/bin/qemu-system-x86_64 -name vmbench,debug-threads=on"));
    }
}
