//! A running guest.

use crate::ivshmem_server::DoorbellServer;
use crate::qemu::{Accel, Debugcon, QemuConfig, Serial};
use crate::qmp::{Qmp, QmpError};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use vmbench_proto::layout::N_ARGS;
use vmbench_proto::{
    Command as GuestCommand, GuestSpec, HostEnd, MappedRegion, ProtoError, Response, Status,
};

pub use crate::error::VmError;

/// An OS-free guest's page tables and stacks fit in a few MiB; QEMU's
/// firmware tables want a little more.
pub const MICRO_GUEST_MEMORY_MIB: u32 = 128;

/// For images whose manifest predates `memory_mib`.
pub const DEFAULT_LINUX_GUEST_MEMORY_MIB: u32 = 256;

/// How to start a VM.
#[derive(Debug, Clone)]
pub struct VmOptions {
    /// The QEMU binary.
    pub qemu: PathBuf,
    /// KVM or TCG.
    pub accel: Accel,
    /// Directory with `bzImage`, `initrd` and `cmdline` (from `vmbench image
    /// build` or `nix build .#guest-image`).
    pub image: PathBuf,
    /// Appended to the image's cmdline (e.g. `vmbench.mapping=uc`).
    pub append: Vec<String>,
    /// Guest vCPUs.
    pub vcpus: u32,
    /// Guest RAM; None: what the image's manifest asks for (sized to the
    /// image by `vmbench image build`), else 256 MiB; 128 for `kernel`.
    pub memory_mib: Option<u32>,
    /// The ivshmem region's size in bytes.
    pub shm_bytes: u64,
    /// Deadline from QEMU start to the agent's handshake.
    pub boot_timeout: Duration,
    /// Where the QMP socket and logs go; default a fresh private (0700)
    /// `$TMPDIR/vmbench-<pid>-<random>`.
    pub run_dir: Option<PathBuf>,
    /// Where the ivshmem backing file is created (tmpfs or hugetlbfs).
    pub shm_dir: PathBuf,
    /// Default: on under KVM, off under TCG.
    pub mem_lock: Option<bool>,
    /// Where the guest's debugcon (port 0xe9) output goes.
    pub debugcon: Debugcon,
    /// Set by a Ctrl-C handler; every wait checks it.
    pub interrupt: Option<Arc<AtomicBool>>,
    /// Copy the guest console to stdout as it is written (humans watching a boot).
    pub echo_console: bool,
    /// ivshmem-doorbell with this many MSI-X vectors (vmbench is the server).
    pub doorbell_vectors: Option<u32>,
    /// Boot this ELF (the OS-free micro-guest, PVH) instead of the image's
    /// bzImage + initrd; `image` is then unused.
    pub kernel: Option<PathBuf>,
    /// `isa-debug-exit` at 0xf4: the micro-guest ends QEMU through it.
    pub debug_exit: bool,
    /// `-cpu` under KVM (default `host,+invtsc`).
    pub kvm_cpu: Option<String>,
}

impl VmOptions {
    /// One vCPU, a 64 MiB region, no doorbell, the image's kernel; boot deadlines of 30 s (KVM) or 180 s (TCG).
    pub fn new(qemu: impl Into<PathBuf>, accel: Accel, image: impl Into<PathBuf>) -> Self {
        VmOptions {
            qemu: qemu.into(),
            accel,
            image: image.into(),
            append: Vec::new(),
            vcpus: 1,
            memory_mib: None,
            shm_bytes: 64 << 20,
            boot_timeout: match accel {
                Accel::Kvm => Duration::from_secs(30),
                Accel::Tcg => Duration::from_secs(180),
            },
            run_dir: None,
            shm_dir: PathBuf::from("/dev/shm"),
            mem_lock: None,
            debugcon: Debugcon::Null,
            interrupt: None,
            echo_console: false,
            doorbell_vectors: None,
            kernel: None,
            debug_exit: false,
            kvm_cpu: None,
        }
    }
}

/// How long the boot took.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BootTimings {
    /// QEMU start to QMP answering (QEMU's own initialisation).
    pub qmp_ms: f64,
    /// QEMU start to the agent's handshake: what `vmbench vm boot` reports.
    pub ready_ms: f64,
}

/// A running guest whose agent answered; stopping it (or dropping it) ends QEMU and removes what it made.
pub struct Vm {
    child: Option<Child>,
    /// The QEMU configuration it runs with.
    pub config: QemuConfig,
    run_dir: PathBuf,
    owns_run_dir: bool,
    shm_path: PathBuf,
    shm_linked: bool,
    shm: MappedRegion,
    host: HostEnd,
    qmp: Option<Qmp>,
    /// The guest agent's specification.
    pub spec: GuestSpec,
    /// (vCPU index, host thread id) from QMP `query-cpus-fast`.
    pub vcpu_threads: Vec<(u32, u32)>,
    /// `qemu --version`'s first line.
    pub qemu_version: Option<String>,
    /// How long the boot took.
    pub timings: BootTimings,
    interrupt: Option<Arc<AtomicBool>>,
    echo: Option<ConsoleFollower>,
    doorbell: Option<DoorbellServer>,
}

/// Copies a growing file (the serial log) to stdout until stopped.
struct ConsoleFollower {
    stop: Arc<AtomicBool>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl ConsoleFollower {
    fn start(path: PathBuf) -> ConsoleFollower {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            use std::io::{Read, Seek, SeekFrom, Write};
            let mut pos = 0u64;
            loop {
                // Read once more after the stop request, so the last lines show.
                let last = flag.load(Ordering::Relaxed);
                if let Ok(mut f) = std::fs::File::open(&path) {
                    let mut buf = Vec::new();
                    if f.seek(SeekFrom::Start(pos)).is_ok()
                        && f.read_to_end(&mut buf).is_ok()
                        && !buf.is_empty()
                    {
                        pos += buf.len() as u64;
                        // The guest writes this: no escape sequence of its
                        // reaches the operator's terminal.
                        let shown =
                            vmbench_host::text::printable_lines(&String::from_utf8_lossy(&buf));
                        let mut out = std::io::stdout().lock();
                        let _ = out.write_all(shown.as_bytes());
                        let _ = out.flush();
                    }
                }
                if last {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        });
        ConsoleFollower {
            stop,
            handle: Some(handle),
        }
    }
}

impl Drop for ConsoleFollower {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

fn setup_error(path: &str, source: std::io::Error) -> VmError {
    VmError::Files {
        path: path.to_string(),
        source,
    }
}

/// What QEMU boots: the kernel (the image's bzImage, or an OS-free ELF),
/// the initrd, and the kernel cmdline.
struct BootFiles {
    kernel: PathBuf,
    initrd: Option<PathBuf>,
    append: String,
}

impl BootFiles {
    fn of(opts: &VmOptions) -> Result<BootFiles, VmError> {
        let kernel = opts
            .kernel
            .clone()
            .unwrap_or_else(|| opts.image.join("bzImage"));
        if !kernel.exists() && opts.kernel.is_some() {
            return Err(VmError::NoElf(kernel.display().to_string()));
        }
        if !kernel.exists() {
            return Err(VmError::NoKernel {
                kernel: kernel.display().to_string(),
                image: opts.image.display().to_string(),
            });
        }
        let initrd = opts.image.join("initrd");
        let base_cmdline = if opts.kernel.is_some() {
            String::new()
        } else {
            std::fs::read_to_string(opts.image.join("cmdline"))
                .unwrap_or_else(|_| crate::image::DEFAULT_CMDLINE.to_string())
        };
        let append = std::iter::once(base_cmdline.trim().to_string())
            .chain(opts.append.iter().cloned())
            .collect::<Vec<_>>()
            .join(" ");
        Ok(BootFiles {
            kernel,
            initrd: (opts.kernel.is_none() && initrd.exists()).then_some(initrd),
            append,
        })
    }
}

/// The directory for QMP's socket and the logs: the caller's, or a fresh
/// private one that the `Vm` removes (the bool).
fn run_dir(opts: &VmOptions) -> Result<(PathBuf, bool), VmError> {
    match &opts.run_dir {
        Some(d) => {
            std::fs::create_dir_all(d).map_err(|e| setup_error(&d.display().to_string(), e))?;
            Ok((d.clone(), false))
        }
        None => {
            let tmp = std::env::temp_dir();
            let d = vmbench_host::files::private_dir(&tmp).map_err(|e| VmError::Private {
                what: "run directory",
                source: e,
            })?;
            Ok((d, true))
        }
    }
}

/// QEMU's configuration for these options.
fn qemu_config(opts: &VmOptions, boot: BootFiles, run_dir: &Path, shm_path: &Path) -> QemuConfig {
    QemuConfig {
        binary: opts.qemu.clone(),
        accel: opts.accel,
        vcpus: opts.vcpus,
        memory_mib: opts.memory_mib.unwrap_or_else(|| match &opts.kernel {
            Some(_) => MICRO_GUEST_MEMORY_MIB,
            None => crate::image::ImageManifest::read(&opts.image)
                .ok()
                .and_then(|m| m.memory_mib)
                .unwrap_or(DEFAULT_LINUX_GUEST_MEMORY_MIB),
        }),
        kernel: boot.kernel,
        initrd: boot.initrd,
        append: boot.append,
        shm_path: shm_path.to_path_buf(),
        shm_bytes: opts.shm_bytes,
        doorbell: opts
            .doorbell_vectors
            .map(|v| (run_dir.join("ivshmem.sock"), v)),
        qmp_socket: run_dir.join("qmp.sock"),
        serial: Serial::File(run_dir.join("serial.log")),
        debugcon: opts.debugcon.clone(),
        debugcon_port: vmbench_proto::vmexit::DEFAULT_DEBUGCON_PORT,
        mem_lock: opts.mem_lock.unwrap_or(opts.accel == Accel::Kvm),
        debug_exit: opts.debug_exit,
        kvm_cpu: opts.kvm_cpu.clone(),
        vapic_off: opts.accel == Accel::Kvm && crate::qemu::host_is_tcg_guest(),
        extra: Vec::new(),
    }
}

/// The last `n` lines of a file (console and QEMU logs).
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    // Written by the guest or QEMU, shown in errors on a terminal.
    vmbench_host::text::printable_lines(&lines[lines.len().saturating_sub(n)..].join("\n"))
}

impl Vm {
    /// Boots the guest and returns once its agent has answered the handshake
    /// and sent its specification. On any error everything started so far is
    /// torn down (the partially built `Vm` is dropped).
    pub fn boot(opts: &VmOptions) -> Result<Vm, VmError> {
        let boot = BootFiles::of(opts)?;
        // What killed runs left behind (their pid gone): removed first.
        vmbench_host::files::sweep_stale(&opts.shm_dir);
        vmbench_host::files::sweep_stale(&std::env::temp_dir());
        let (run_dir, owns_run_dir) = run_dir(opts)?;
        // A fresh 0600 file with an unguessable name (O_EXCL): nobody else
        // can have it open, so nobody else can truncate it under QEMU or us.
        let created = vmbench_host::files::private_file(&opts.shm_dir, ".shm")
            .map_err(|e| VmError::Private {
                what: "shared-memory file",
                source: e,
            })
            .and_then(|(file, path)| {
                match MappedRegion::map_new_file(&file, &path, opts.shm_bytes as usize) {
                    Ok(m) => Ok((file, path, m)),
                    Err(e) => {
                        let _ = std::fs::remove_file(&path);
                        Err(VmError::Region(e))
                    }
                }
            });
        let (shm_file, shm_path, shm) = match created {
            Ok(x) => x,
            Err(e) => {
                if owns_run_dir {
                    let _ = std::fs::remove_dir_all(&run_dir);
                }
                return Err(e);
            }
        };
        let host = HostEnd::start(shm.region());
        let config = qemu_config(opts, boot, &run_dir, &shm_path);
        // From here on, `vm` owns everything: an early return drops it, which
        // kills QEMU and removes the files.
        let mut vm = Vm {
            child: None,
            config,
            run_dir,
            owns_run_dir,
            shm_path,
            shm_linked: true,
            shm,
            host,
            qmp: None,
            spec: GuestSpec::default(),
            vcpu_threads: Vec::new(),
            qemu_version: None,
            timings: BootTimings {
                qmp_ms: 0.0,
                ready_ms: 0.0,
            },
            interrupt: opts.interrupt.clone(),
            echo: None,
            doorbell: None,
        };
        if let Some((sock, vectors)) = vm.config.doorbell.clone() {
            // Listening before QEMU starts: it reads the setup while realizing the device.
            use std::os::fd::AsFd;
            let server = DoorbellServer::start(&sock, shm_file.as_fd(), vectors)?;
            vm.doorbell = Some(server);
        }
        drop(shm_file);
        if opts.echo_console {
            vm.echo = Some(ConsoleFollower::start(vm.run_dir.join("serial.log")));
        }
        let started = vm.spawn_qemu()?;
        vm.connect_qmp(
            started,
            started + Duration::from_secs(30).min(opts.boot_timeout),
        )?;
        vm.wait_for_handshake(started + opts.boot_timeout)?;
        vm.timings.ready_ms = started.elapsed().as_secs_f64() * 1e3;
        let resp = vm.call(GuestCommand::GetSpec, [0; N_ARGS], Duration::from_secs(30))?;
        if resp.status != Status::Ok {
            return Err(VmError::BadSpec(format!("status {:?}", resp.status)));
        }
        vm.spec =
            serde_json::from_slice(&resp.payload).map_err(|e| VmError::BadSpec(e.to_string()))?;
        Ok(vm)
    }

    /// Starts QEMU (its output into qemu.log), tied to our life: it gets
    /// SIGKILL when we die, even by SIGKILL.
    fn spawn_qemu(&mut self) -> Result<Instant, VmError> {
        let log_path = self.run_dir.join("qemu.log");
        let log = std::fs::File::create(&log_path)
            .map_err(|e| setup_error(&log_path.display().to_string(), e))?;
        let log2 = log.try_clone().map_err(|e| setup_error("qemu.log", e))?;
        let mut cmd = Command::new(&self.config.binary);
        cmd.args(self.config.args())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        {
            use std::os::unix::process::CommandExt;
            // SAFETY: runs in the forked child before exec; prctl is
            // async-signal-safe and touches no memory of the parent.
            unsafe {
                cmd.pre_exec(|| {
                    nix::sys::prctl::set_pdeathsig(Some(nix::sys::signal::Signal::SIGKILL))
                        .map_err(std::io::Error::from)
                });
            }
        }
        let started = Instant::now();
        let child = cmd.spawn().map_err(|source| VmError::Spawn {
            qemu: self.config.binary.display().to_string(),
            source,
        })?;
        self.child = Some(child);
        Ok(started)
    }

    /// Connects to QMP, unlinks the region file (QEMU has mapped it by then),
    /// and reads QEMU's version and the vCPU threads.
    fn connect_qmp(&mut self, started: Instant, deadline: Instant) -> Result<(), VmError> {
        let sock = self.config.qmp_socket.clone();
        let qmp = {
            let mut alive = || self.check_alive().is_ok();
            Qmp::connect(&sock, deadline, &mut alive)
        };
        let mut qmp = match qmp {
            Ok(q) => q,
            Err(e) => return Err(self.why_qmp_failed(e, Duration::ZERO)),
        };
        self.timings.qmp_ms = started.elapsed().as_secs_f64() * 1e3;
        // QEMU answers QMP only after creating its memory backends, so it has
        // the file mapped now: unlink it, and nothing is left behind even if we
        // are killed.
        let _ = std::fs::remove_file(&self.shm_path);
        self.shm_linked = false;
        self.qemu_version = qmp.qemu_version();
        if let Some(d) = self.doorbell.as_mut() {
            d.wait_served()?;
        }
        self.vcpu_threads = qmp.vcpu_threads()?;
        self.qmp = Some(qmp);
        Ok(())
    }

    /// Runs one protocol wait with the launcher's abort conditions (QEMU gone,
    /// guest panic, Ctrl-C) and turns its outcome into a `VmError`.
    fn guarded<T>(
        &mut self,
        what: &str,
        op: impl FnOnce(
            &mut HostEnd,
            &vmbench_proto::Region,
            &mut dyn FnMut() -> Option<String>,
        ) -> Result<T, ProtoError>,
    ) -> Result<T, VmError> {
        let (result, failure) = self.with_region(|host, r, _, abort| op(host, r, abort));
        match result {
            Ok(v) => Ok(v),
            Err(ProtoError::Aborted(m)) => {
                Err(failure.unwrap_or(VmError::Proto(ProtoError::Aborted(m))))
            }
            Err(ProtoError::Timeout { secs, .. }) => Err(VmError::Timeout {
                what: what.to_string(),
                secs,
                console: self.console_tail(30),
            }),
            Err(e) => Err(VmError::Proto(e)),
        }
    }

    /// Lends the host end, the region and the doorbell server to host-side
    /// work that runs alongside a guest command (the shm suite), with the
    /// launcher's abort check (QEMU gone, guest panic or stop, Ctrl-C). The
    /// second value is why the check fired, when it did.
    pub fn with_region<T>(
        &mut self,
        op: impl FnOnce(
            &mut HostEnd,
            &vmbench_proto::Region,
            Option<&DoorbellServer>,
            &mut dyn FnMut() -> Option<String>,
        ) -> T,
    ) -> (T, Option<VmError>) {
        let mut failure: Option<VmError> = None;
        let value = {
            let Vm {
                host,
                shm,
                child,
                run_dir,
                interrupt,
                qmp,
                doorbell,
                ..
            } = self;
            let mut last_status = Instant::now();
            let mut abort = || {
                let e = abort_reason(child, run_dir, interrupt).or_else(|| {
                    // A stopped guest does not exit: ask QEMU now and then.
                    if last_status.elapsed() < Duration::from_millis(500) {
                        return None;
                    }
                    last_status = Instant::now();
                    stopped_reason(qmp.as_mut()?, run_dir)
                })?;
                let msg = e.to_string();
                failure = Some(e);
                Some(msg)
            };
            op(host, shm.region(), doorbell.as_ref(), &mut abort)
        };
        (value, failure)
    }

    fn wait_for_handshake(&mut self, deadline: Instant) -> Result<(), VmError> {
        self.guarded("the guest agent's handshake", |host, r, abort| {
            host.wait_ready(r, deadline, abort).map(|_| ())
        })
    }

    /// A QMP failure's cause: QEMU's exit (or the guest's panic) when that
    /// is what happened, seen within `grace` (QEMU's socket closes as it
    /// dies, a moment before it can be reaped), else the failure itself.
    fn why_qmp_failed(&mut self, e: QmpError, grace: Duration) -> VmError {
        let deadline = Instant::now() + grace;
        loop {
            if let Err(dead) = self.check_alive() {
                return dead;
            }
            if Instant::now() >= deadline {
                return VmError::Qmp(e);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Runs `f` with the guest's vCPUs stopped (QMP `stop`, then `cont`),
    /// so that the host may use their CPUs meanwhile.
    pub fn paused<T>(&mut self, f: impl FnOnce() -> T) -> Result<T, VmError> {
        let step = |vm: &mut Vm, cmd: &str| {
            match vm.qmp.as_mut() {
                Some(q) => q.execute(cmd, None).map(|_| ()),
                None => Err(QmpError::Closed),
            }
            .map_err(|e| vm.why_qmp_failed(e, Duration::from_secs(1)))
        };
        step(self, "stop")?;
        let out = f();
        step(self, "cont")?;
        Ok(out)
    }

    /// Is QEMU still running, and has the guest not panicked?
    fn check_alive(&mut self) -> Result<(), VmError> {
        match abort_reason(&mut self.child, &self.run_dir, &self.interrupt) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Sends a command to the agent and waits for the answer.
    pub fn call(
        &mut self,
        cmd: GuestCommand,
        args: [u64; N_ARGS],
        timeout: Duration,
    ) -> Result<Response, VmError> {
        let deadline = Instant::now() + timeout;
        self.guarded(
            &format!("the guest's answer to {cmd:?}"),
            |host, r, abort| host.call(r, cmd, args, deadline, abort),
        )
    }

    /// The doorbell server, in ivshmem-doorbell mode.
    pub fn doorbell(&self) -> Option<&DoorbellServer> {
        self.doorbell.as_ref()
    }

    /// The QMP connection.
    pub fn qmp(&mut self) -> Option<&mut Qmp> {
        self.qmp.as_mut()
    }

    /// QEMU's process id, while it runs.
    pub fn qemu_pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// The guest console's log file.
    pub fn console_path(&self) -> PathBuf {
        self.run_dir.join("serial.log")
    }

    /// The console's last `n` lines.
    pub fn console_tail(&self, n: usize) -> String {
        tail(&self.console_path(), n)
    }

    /// The ivshmem backing file.
    pub fn shm_path(&self) -> &Path {
        &self.shm_path
    }

    /// The shared region.
    pub fn region(&self) -> &vmbench_proto::Region {
        self.shm.region()
    }

    /// Asks the agent to power the guest off and waits for QEMU to exit;
    /// falls back to QMP `quit`, then SIGKILL. Returns how QEMU ended.
    pub fn shutdown(mut self) -> Result<String, VmError> {
        let _ = self.call(GuestCommand::Shutdown, [0; N_ARGS], Duration::from_secs(10));
        if let Some(s) = self.wait_exit(Duration::from_secs(20)) {
            return Ok(format!("guest powered off, QEMU exited ({s})"));
        }
        if let Some(q) = self.qmp.as_mut() {
            let _ = q.execute("quit", None);
        }
        if let Some(s) = self.wait_exit(Duration::from_secs(5)) {
            return Ok(format!("QEMU quit on QMP request ({s})"));
        }
        self.kill();
        Ok("QEMU killed after not exiting".into())
    }

    fn wait_exit(&mut self, timeout: Duration) -> Option<String> {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut()?;
        loop {
            match child.try_wait() {
                Ok(Some(s)) => {
                    self.child = None;
                    return Some(s.to_string());
                }
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => return None,
            }
        }
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// QMP `query-status`: anything but running means the guest will never answer.
fn stopped_reason(qmp: &mut Qmp, run_dir: &Path) -> Option<VmError> {
    let s = qmp.execute("query-status", None).ok()?;
    let status = s["status"].as_str()?.to_string();
    if status == "running" {
        return None;
    }
    Some(VmError::GuestStopped {
        status,
        qemu_log: tail(&run_dir.join("qemu.log"), 20),
        console: tail(&run_dir.join("serial.log"), 30),
    })
}

fn abort_reason(
    child: &mut Option<Child>,
    run_dir: &Path,
    interrupt: &Option<Arc<AtomicBool>>,
) -> Option<VmError> {
    if interrupt
        .as_ref()
        .is_some_and(|f| f.load(Ordering::Relaxed))
    {
        return Some(VmError::Interrupted);
    }
    let console = run_dir.join("serial.log");
    if let Some(c) = child.as_mut()
        && let Ok(Some(status)) = c.try_wait()
    {
        let console_text = tail(&console, 30);
        if console_text.contains("Kernel panic") {
            return Some(VmError::GuestPanic {
                console: console_text,
            });
        }
        return Some(VmError::QemuExited {
            status: status.to_string(),
            qemu_log: tail(&run_dir.join("qemu.log"), 20),
            console: console_text,
        });
    }
    None
}

impl Drop for Vm {
    fn drop(&mut self) {
        self.kill();
        self.echo = None; // flush the console before its file goes
        if self.shm_linked {
            let _ = std::fs::remove_file(&self.shm_path);
        }
        if self.owns_run_dir {
            let _ = std::fs::remove_dir_all(&self.run_dir);
        }
    }
}
