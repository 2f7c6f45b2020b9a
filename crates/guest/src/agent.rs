//! The agent's main loop.

use crate::options::{AgentOptions, Mapping};
use crate::spec::MappingFacts;
use crate::{GuestError, ModuleError, kmod, pci, pid1, spec};
use nix::sys::eventfd::{EfdFlags, EventFd};
use std::os::fd::{AsFd, AsRawFd};
use std::time::{Duration, Instant};
use vmbench_proto::channel::Request;
use vmbench_proto::{Command, GuestEnd, MappedRegion, Status};
use vmbench_shm::DoorbellError;

/// The vmbench module's device: the fd, what it reported, and one eventfd
/// attached to each MSI-X vector (armed at start, so no doorbell is lost).
pub struct Device {
    /// The open device.
    pub file: std::fs::File,
    /// What VMBENCH_IOC_INFO reported.
    pub info: kmod::VmbenchInfo,
    /// One eventfd per MSI-X vector.
    pub vectors: Vec<EventFd>,
}

/// How many vectors the agent listens on (the shm suite uses two).
const LISTEN_VECTORS: u32 = 4;

impl Device {
    fn open(file: std::fs::File, info: kmod::VmbenchInfo) -> Result<Device, ModuleError> {
        let mut vectors = Vec::new();
        for v in 0..info.msix_vectors.min(LISTEN_VECTORS) {
            let e = EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK).map_err(
                |source| ModuleError::Ioctl {
                    what: "eventfd".into(),
                    source,
                },
            )?;
            kmod::set_eventfd(&file, v, e.as_fd().as_raw_fd()).map_err(|source| {
                ModuleError::Ioctl {
                    what: format!("VMBENCH_IOC_SET_EVENTFD {v}"),
                    source,
                }
            })?;
            vectors.push(e);
        }
        Ok(Device {
            file,
            info,
            vectors,
        })
    }
}

fn log(msg: &str) {
    println!("vmbench-guest: {msg}");
}

/// A deadline far enough away to mean "wait for the host".
fn far() -> Instant {
    Instant::now() + Duration::from_secs(365 * 24 * 3600)
}

fn never() -> Option<String> {
    None
}

/// Runs the agent until the host says shutdown. As PID 1 it powers the
/// guest off at the end, and also after a fatal error (so QEMU exits and the
/// host reads the reason from the console instead of waiting for a deadline).
pub fn run(opts: &AgentOptions) -> Result<(), GuestError> {
    let result = run_inner(opts);
    if opts.pid1 {
        if let Err(e) = &result {
            log(&format!("FATAL: {e}"));
        }
        log("powering off");
        pid1::poweroff();
    }
    result
}

fn run_inner(opts: &AgentOptions) -> Result<(), GuestError> {
    if opts.pid1 {
        for p in pid1::mount_basics() {
            log(&p);
        }
    }
    log(&format!(
        "{} starting (protocol {})",
        env!("CARGO_PKG_VERSION"),
        vmbench_proto::PROTOCOL_VERSION
    ));
    if opts.shell
        && let Err(e) = pid1::spawn_shell()
    {
        log(&vmbench_shm::describe(&e));
    }
    let (mapped, facts, dev) = open_region(opts)?;
    if let Some(d) = dev.as_ref().filter(|d| d.info.msix_vectors > 0) {
        {
            log(&format!(
                "doorbell: peer id {}, {} MSI-X vector(s)",
                d.info.iv_position, d.info.msix_vectors
            ));
        }
    }
    log(&format!(
        "shared memory: {} bytes, mapping {}",
        facts.shm_bytes, facts.mapping
    ));
    if let Some(n) = &facts.note {
        log(n);
    }
    if opts.hang {
        log("vmbench.hang: not answering the host (fault test)");
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
    loop {
        let mut g = GuestEnd::attach(mapped.region(), far(), &mut never)?;
        let ready_ms = spec::uptime_ms();
        log(&format!(
            "handshake with host session {:#x} at {ready_ms} ms",
            g.header.session
        ));
        if serve(&mut g, &facts, dev.as_ref(), ready_ms, opts)? {
            return Ok(());
        }
        log("host closed its session; waiting for a new one");
    }
}

/// Serves commands; true when the host asked for shutdown.
fn serve(
    g: &mut GuestEnd,
    facts: &MappingFacts,
    dev: Option<&Device>,
    ready_ms: u64,
    opts: &AgentOptions,
) -> Result<bool, GuestError> {
    let under_tcg =
        vmbench_host::cpuid::hypervisor_signature_raw().is_some_and(|h| h.starts_with("TCG"));
    let mut samples = Vec::new();
    while let Some(req) = g.next(far(), &mut never)? {
        let suite = match req.command {
            Some(Command::RunVmexit) => Some("vmexit"),
            Some(Command::RunShm) => Some("shm"),
            _ => None,
        };
        if suite.is_some() && suite == opts.hang_on.as_deref() {
            log("vmbench.hang_on: not answering this suite (fault test)");
            loop {
                std::thread::sleep(Duration::from_secs(3600));
            }
        }
        let reply = if req.command == Some(Command::RunVmexit) {
            run_vmexit(g.region(), req.args, dev, under_tcg, &mut samples)
        } else if req.command == Some(Command::RunShm) {
            run_shm(g.region(), req.args, dev)
        } else {
            handle(req, facts, dev, ready_ms)
        };
        match reply {
            Reply::Answer(status, payload) => g.respond(status, &payload)?,
            Reply::Shutdown => {
                g.respond(Status::Ok, b"")?;
                g.exit();
                log("shutdown requested by the host");
                if opts.poweroff {
                    pid1::poweroff();
                }
                return Ok(true);
            }
        }
    }
    Ok(false)
}

enum Reply {
    Answer(Status, Vec<u8>),
    Shutdown,
}

fn handle(req: Request, facts: &MappingFacts, dev: Option<&Device>, ready_ms: u64) -> Reply {
    match req.command {
        Some(Command::Ping) => Reply::Answer(Status::Ok, req.args[0].to_le_bytes().to_vec()),
        Some(Command::GetSpec) => {
            let s = spec::collect(facts, ready_ms);
            match serde_json::to_vec(&s) {
                Ok(v) => Reply::Answer(Status::Ok, v),
                Err(e) => Reply::Answer(Status::Failed, e.to_string().into_bytes()),
            }
        }
        Some(Command::SelfTest) => {
            Reply::Answer(Status::Ok, self_test(dev.map(|d| &d.file)).into_bytes())
        }
        Some(Command::DoorbellWait) => doorbell_wait(dev, req.args),
        Some(Command::Shutdown) => Reply::Shutdown,
        Some(Command::RunVmexit | Command::RunShm) => {
            Reply::Answer(Status::Failed, b"dispatched by serve()".to_vec())
        }
        None => Reply::Answer(Status::UnknownCommand, Vec::new()),
    }
}

/// Runs one VM-exit row; samples go to the data area as little-endian u64.
fn run_vmexit(
    region: &vmbench_proto::Region,
    args: [u64; 6],
    dev: Option<&Device>,
    under_tcg: bool,
    samples: &mut Vec<u64>,
) -> Reply {
    use vmbench_proto::vmexit::Row;
    let bad = |m: String| Reply::Answer(Status::BadArgs, m.into_bytes());
    let Some(row) = u32::try_from(args[0]).ok().and_then(Row::from_raw) else {
        return bad(format!("unknown row {}", args[0]));
    };
    let (n, warmup, batch) = (args[1], args[2], args[3]);
    let capacity = ((region.len() - vmbench_proto::DATA_OFF) / 8) as u64;
    if n == 0 || n > capacity {
        return bad(format!(
            "samples {n}: must be 1..={capacity} (the data area's size)"
        ));
    }
    if warmup > 10_000_000 || batch > 100_000_000 {
        return bad(format!("warm-up {warmup} or batch {batch} out of range"));
    }
    let port = match u16::try_from(args[4]) {
        Ok(0) => vmbench_proto::vmexit::DEFAULT_DEBUGCON_PORT,
        Ok(p) => p,
        Err(_) => return bad(format!("port {} out of range", args[4])),
    };
    // The test substitution (vmbench_abi::run_vmexit_flags) is the
    // micro-guest's alone; this agent knows no flags.
    if args[5] != 0 {
        return bad(format!(
            "flags {:#x}: the Linux guest agent knows none",
            args[5]
        ));
    }
    let req = crate::vmexit::RowRequest {
        row,
        samples: n,
        warmup,
        batch,
        debugcon: port,
        under_tcg,
    };
    // The host's liveness witness: one CPUID of this leaf before the row
    // and one after, on this thread's vCPU.
    crate::vmexit::witness();
    let result = crate::vmexit::run_row(req, dev.map(|d| &d.file), samples);
    crate::vmexit::witness();
    match result {
        Ok(run) => {
            let bytes: Vec<u8> = samples.iter().flat_map(|s| s.to_le_bytes()).collect();
            if let Err(e) = region.copy_in(vmbench_proto::DATA_OFF, &bytes) {
                return Reply::Answer(Status::Failed, e.to_string().into_bytes());
            }
            match serde_json::to_vec(&run) {
                Ok(v) => Reply::Answer(Status::Ok, v),
                Err(e) => Reply::Answer(Status::Failed, e.to_string().into_bytes()),
            }
        }
        Err(crate::vmexit::VmexitError::BadArgs(m)) => bad(m),
        Err(crate::vmexit::VmexitError::Unsupported(m)) => {
            Reply::Answer(Status::Unsupported, m.into_bytes())
        }
        Err(e) => Reply::Answer(Status::Failed, e.to_string().into_bytes()),
    }
}

/// Waits for an interrupt on a vector, then rings a peer back on it.
/// The guest side of ivshmem-doorbell: waits on the eventfd the module
/// signals from the MSI-X handler, rings the host through the doorbell register.
struct ModuleBell<'a> {
    dev: &'a Device,
    vector: usize,
    host_peer: u32,
}

impl vmbench_shm::Doorbell for ModuleBell<'_> {
    fn ring(&mut self) -> Result<(), DoorbellError> {
        kmod::doorbell(&self.dev.file, (self.host_peer << 16) | self.vector as u32).map_err(
            |source| DoorbellError::Os {
                what: "VMBENCH_IOC_DOORBELL",
                source,
            },
        )
    }

    fn wait(&mut self, timeout: Duration) -> Result<(), DoorbellError> {
        let efd = self.dev.vectors.get(self.vector).ok_or_else(|| {
            DoorbellError::Peer(format!("vector {} is not listened on", self.vector).into())
        })?;
        vmbench_shm::eventfd::wait_eventfd(efd, timeout).map(|_| ())
    }
}

/// Serves the shm suite over the agent's mapping (WB through the module, or
/// the sysfs UC/WC mapping the guest was booted with).
fn run_shm(r: &vmbench_proto::Region, raw: [u64; 6], dev: Option<&Device>) -> Reply {
    use vmbench_proto::shm::RunShmArgs;
    let args = RunShmArgs::from_args(raw);
    let fail = |s: Status, m: String| Reply::Answer(s, m.into_bytes());
    let mut bell = match (
        dev,
        usize::try_from(args.vector),
        u32::try_from(args.host_peer),
    ) {
        (Some(dev), Ok(vector), Ok(host_peer)) if vector < dev.vectors.len() => Some(ModuleBell {
            dev,
            vector,
            host_peer,
        }),
        _ => None,
    };
    let db = bell.as_mut().map(|b| b as &mut dyn vmbench_shm::Doorbell);
    if args.arm != 0 {
        // The module's WB mapping holds the PAT memory type of the BAR: a
        // second, UC or WC, mapping of it fails. Arms boot with vmbench.mapping=.
        return fail(
            Status::BadArgs,
            format!(
                "mapping arm {}: boot the guest with vmbench.mapping=uc|wc instead",
                args.arm
            ),
        );
    }
    let result = vmbench_shm::guest::serve(r, &args, db);
    match result {
        Ok(summary) => Reply::Answer(Status::Ok, vmbench_shm::guest::summary_payload(&summary)),
        Err(e) => fail(Status::Failed, e.to_string()),
    }
}

fn doorbell_wait(dev: Option<&Device>, args: [u64; 6]) -> Reply {
    let fail = |s: Status, m: String| Reply::Answer(s, m.into_bytes());
    let Some(dev) = dev else {
        return fail(
            Status::Failed,
            "no vmbench device: doorbell needs the module".into(),
        );
    };
    let (vector, timeout_ms, peer) = (args[0], args[1], args[2]);
    let Some(efd) = usize::try_from(vector)
        .ok()
        .and_then(|v| dev.vectors.get(v))
    else {
        return fail(
            Status::BadArgs,
            format!(
                "vector {vector}: the device has {} listened vector(s)",
                dev.vectors.len()
            ),
        );
    };
    if peer > u64::from(u16::MAX) || timeout_ms > 600_000 {
        return fail(
            Status::BadArgs,
            format!("peer {peer} or timeout {timeout_ms} ms out of range"),
        );
    }
    let count = match vmbench_shm::eventfd::wait_eventfd(efd, Duration::from_millis(timeout_ms)) {
        Ok(n) => n,
        Err(e) => {
            let irqs: Vec<String> = std::fs::read_to_string("/proc/interrupts")
                .unwrap_or_default()
                .lines()
                .filter(|l| l.contains("vmbench"))
                .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
                .collect();
            return fail(
                Status::Failed,
                format!(
                    "no interrupt on vector {vector} within {timeout_ms} ms ({e}); guest /proc/interrupts: {}",
                    irqs.join(" | ")
                ),
            );
        }
    };
    match kmod::doorbell(&dev.file, ((peer as u32) << 16) | (vector as u32)) {
        Ok(()) => Reply::Answer(Status::Ok, count.to_le_bytes().to_vec()),
        Err(e) => fail(Status::Failed, format!("VMBENCH_IOC_DOORBELL: {e}")),
    }
}

/// Drives the module with bad arguments; every one must be refused cleanly.
/// JSON: {"device": bool, "checks": [{"name", "expected", "got", "ok"}]}.
fn self_test(dev: Option<&std::fs::File>) -> String {
    let Some(dev) = dev else {
        return serde_json::json!({"device": false, "checks": []}).to_string();
    };
    let errno = |r: Result<(), nix::Error>| match r {
        Ok(()) => "ok".to_string(),
        Err(e) => format!("{e:?}"),
    };
    let mut checks = vec![
        (
            "set_eventfd vector 9999",
            "EINVAL",
            errno(kmod::set_eventfd(dev, 9999, -1)),
        ),
        (
            "set_eventfd fd -5",
            "EINVAL",
            errno(kmod::set_eventfd(dev, 0, -5)),
        ),
        (
            "unknown ioctl 0x7f",
            "ENOTTY",
            errno(kmod::unknown_ioctl(dev)),
        ),
    ];
    let mut four = [0u64; 4];
    let mut big = vec![0u64; kmod::MAX_SAMPLES as usize + 1];
    checks.push((
        "exit_loop unknown insn 99",
        "EINVAL",
        errno(kmod::exit_loop(dev, 99, 0, &mut four, 0).map(|_| ())),
    ));
    checks.push((
        "exit_loop port 0x10000",
        "EINVAL",
        errno(kmod::exit_loop(dev, 4, 0x1_0000, &mut four, 0).map(|_| ())),
    ));
    checks.push((
        "exit_loop 0 samples 0 batch",
        "EINVAL",
        errno(kmod::exit_loop(dev, 2, 0, &mut [], 0).map(|_| ())),
    ));
    checks.push((
        "exit_loop 4097 samples",
        "EINVAL",
        errno(kmod::exit_loop(dev, 2, 0, &mut big, 0).map(|_| ())),
    ));
    checks.push((
        "exit_loop batch 65537",
        "EINVAL",
        errno(kmod::exit_loop(dev, 2, 0, &mut [], kmod::MAX_BATCH + 1).map(|_| ())),
    ));
    checks.push((
        "exit_once unknown insn 42",
        "EINVAL",
        errno(kmod::exit_once(
            std::os::fd::AsRawFd::as_raw_fd(dev),
            &kmod::ExitOnce { insn: 42, port: 0 },
        )),
    ));
    checks.push((
        "exit_once on an interrupt row's insn (SELF_IPI)",
        "EINVAL",
        errno(kmod::exit_once(
            std::os::fd::AsRawFd::as_raw_fd(dev),
            &kmod::ExitOnce {
                insn: kmod::Insn::SelfIpi as u32,
                port: 0,
            },
        )),
    ));
    checks.push((
        "testdev_select test 3",
        "EINVAL",
        errno(kmod::testdev_select(dev, kmod::TestdevSpace::Mmio, 3).map(|_| ())),
    ));
    // A private or two-page mapping of pci-testdev's BAR0 is refused.
    let two_pages = memmap2::MmapOptions::new()
        .offset(kmod::MMAP_TESTDEV as u64)
        .len(8192)
        .map_raw(dev)
        .map(|_| ())
        .map_err(|e| nix::Error::from_raw(e.raw_os_error().unwrap_or(0)));
    checks.push((
        "mmap two pages of pci-testdev's BAR0",
        "EINVAL",
        errno(two_pages),
    ));
    checks.push((
        "exit_loop cpuid x4 (valid)",
        "ok",
        errno(kmod::exit_loop(dev, 2, 0, &mut four, 8).map(|_| ())),
    ));
    // mmap past the end of BAR2 and a private mapping must both fail.
    if let Ok(info) = kmod::info(dev) {
        let past = memmap2::MmapOptions::new()
            .offset(info.bar2_size)
            .len(4096)
            .map_raw(dev)
            .map(|_| ())
            .map_err(|e| nix::Error::from_raw(e.raw_os_error().unwrap_or(0)));
        checks.push(("mmap past BAR2", "EINVAL", errno(past)));
    }
    /// One misuse of the device and how the module answered.
    #[derive(serde::Serialize)]
    struct DeviceCheck<'a> {
        name: &'a str,
        expected: &'a str,
        got: &'a str,
        ok: bool,
    }
    let items: Vec<DeviceCheck> = checks
        .iter()
        .map(|(name, expected, got)| DeviceCheck {
            name,
            expected,
            got,
            ok: got == expected,
        })
        .collect();
    serde_json::json!({"device": true, "checks": items}).to_string()
}

fn open_region(
    opts: &AgentOptions,
) -> Result<(MappedRegion, MappingFacts, Option<Device>), GuestError> {
    if let Some(path) = &opts.path {
        let m = MappedRegion::open_file(path, vmbench_proto::region::MAX_SHARED_FILE_BYTES)?;
        let facts = MappingFacts {
            mapping: Mapping::File,
            note: None,
            shm_bytes: m.len() as u64,
            pci_address: None,
            iv_position: None,
            msix_vectors: 0,
            bar2_phys: None,
            pte_mode: None,
        };
        return Ok((m, facts, None));
    }
    let devs = pci::find_ivshmem();
    let dev = devs.first().ok_or(GuestError::NoDevice)?;
    let mut note = None;
    if opts.mapping == Mapping::Wb {
        match open_module_device(opts) {
            Ok((file, info)) => {
                let m = MappedRegion::map(&file, info.bar2_size as usize)?;
                // Touch the first page so that it has a PTE, then read it.
                let _ = m
                    .region()
                    .u64_at(0)
                    .load(std::sync::atomic::Ordering::Relaxed);
                let pte_mode = kmod::memtype(&file, m.region().as_ptr() as u64);
                let facts = MappingFacts {
                    mapping: Mapping::Wb,
                    note: None,
                    shm_bytes: info.bar2_size,
                    pci_address: Some(dev.address.clone()),
                    iv_position: (info.msix_vectors > 0).then_some(info.iv_position),
                    msix_vectors: info.msix_vectors,
                    bar2_phys: Some(info.bar2_phys),
                    pte_mode: Some(pte_mode),
                };
                let device = Device::open(file, info)?;
                return Ok((m, facts, Some(device)));
            }
            Err(e) => {
                note = Some(format!(
                    "vmbench module unavailable ({}); fell back to sysfs resource2 (UC)",
                    vmbench_shm::describe(&e)
                ))
            }
        }
    }
    let file_name = if opts.mapping == Mapping::Wc {
        "resource2_wc"
    } else {
        "resource2"
    };
    let path = dev.sysfs.join(file_name);
    let (len, file) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .and_then(|f| Ok((f.metadata()?.len(), f)))
        .map_err(|source| GuestError::Open {
            path: path.display().to_string(),
            source,
        })?;
    let m = MappedRegion::map(&file, len as usize)?;
    let facts = MappingFacts {
        mapping: if opts.mapping == Mapping::Wc {
            Mapping::Wc
        } else {
            Mapping::Uc
        },
        note,
        shm_bytes: len,
        pci_address: Some(dev.address.clone()),
        iv_position: None,
        msix_vectors: 0,
        bar2_phys: pci::bar_start(&dev.sysfs, 2),
        pte_mode: None,
    };
    Ok((m, facts, None))
}

fn open_module_device(
    opts: &AgentOptions,
) -> Result<(std::fs::File, kmod::VmbenchInfo), ModuleError> {
    if !std::path::Path::new(kmod::DEVICE).exists() {
        kmod::load(&opts.module)?;
    }
    // devtmpfs creates the node asynchronously after misc_register.
    let deadline = Instant::now() + Duration::from_secs(2);
    let file = loop {
        match std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(kmod::DEVICE)
        {
            Ok(f) => break f,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            Err(source) => {
                return Err(ModuleError::Open {
                    path: kmod::DEVICE.into(),
                    source,
                });
            }
        }
    };
    let info = kmod::info(&file).map_err(|source| ModuleError::Ioctl {
        what: "VMBENCH_IOC_INFO".into(),
        source,
    })?;
    if info.abi_version != kmod::ABI_VERSION {
        return Err(ModuleError::Abi {
            got: info.abi_version,
            want: kmod::ABI_VERSION,
        });
    }
    Ok((file, info))
}
