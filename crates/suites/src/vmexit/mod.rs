//! The VM-exit suite, host side: for each row, start counting KVM's
//! tracepoints on the vCPU thread (and read QMP's `query-stats`), have the
//! guest run the row, stop counting, copy the samples out of the shared
//! region, and build the measurement with its path verdict.

use crate::SuiteError;
use crate::kvmstats;
use crate::tracepoints::{RowCounters, RowUntraced, Untraced};
use crate::verify::{self, Evidence, verify};
use std::collections::BTreeMap;
use std::time::Duration;
use vmbench_host::tracefs::KvmTracepoints;
use vmbench_proto::vmexit::{DEFAULT_DEBUGCON_PORT, Expect, Mode, Row, RowRun};
use vmbench_proto::{Command, DATA_OFF, Status};
use vmbench_results::{
    ExitEvents, Measurement, MeasurementId, SampleSet, Skipped, Suite, Unit, Verification, Warning,
    WarningKind,
};
use vmbench_vm::{Accel, GuestKind, Vm};

/// How to run the VM-exit suite.
#[derive(Debug, Clone)]
pub struct VmexitOptions {
    /// The rows to run, in order.
    pub rows: Vec<Row>,
    /// Timed iterations per row.
    pub samples: u64,
    /// Discarded iterations before the samples.
    pub warmup: u64,
    /// Back-to-back iterations timed as a whole (the batch mean).
    pub batch: u64,
    /// The port the slow-path rows write to (QEMU's isa-debugcon).
    pub debugcon_port: u16,
    /// TSC frequency for ns (the guest's; the host's when the guest has none).
    pub tsc_khz: Option<f64>,
    /// The accelerator the VM runs under (the verdicts depend on it).
    pub accel: Accel,
    /// The guest that runs the rows (their definitions differ: the
    /// micro-guest has no OS, ioctl or ioperm).
    pub guest: GuestKind,
    /// KVM's tracepoint ids, or why they cannot be counted here.
    pub tracepoints: Result<KvmTracepoints, Untraced>,
    /// Test only: have the micro-guest execute another instruction in these
    /// rows (`vmbench_abi::run_vmexit_flags::TEST_SUBSTITUTE`).
    pub test_substitute: Vec<Row>,
}

impl VmexitOptions {
    /// The defaults for `accel`: every default row, with the sample counts of a full run.
    pub fn new(accel: Accel) -> Self {
        VmexitOptions {
            rows: Row::ALL
                .iter()
                .copied()
                .filter(|r| r.default_on())
                .collect(),
            samples: 100_000,
            warmup: 1_000,
            batch: 100_000,
            debugcon_port: DEFAULT_DEBUGCON_PORT,
            tsc_khz: None,
            accel,
            guest: GuestKind::Linux,
            tracepoints: Err(Untraced::NotLookedUp),
            test_substitute: Vec::new(),
        }
    }

    /// The rows in run order: every ring-0 row before any ring-3 one (a guest
    /// that has been to ring 3 may, under some hypervisors, not get true CPL0
    /// back: kvm_pvm), and each group's timer baseline first (its rows
    /// subtract it).
    pub fn ordered_rows(&self) -> Vec<Row> {
        let mut rows = vec![Row::KernelTimerOverhead];
        for r in self.rows.iter().filter(|r| r.mode() == Mode::Kernel) {
            if !rows.contains(r) {
                rows.push(*r);
            }
        }
        rows.push(Row::TimerOverhead);
        for r in self.rows.iter().filter(|r| r.mode() != Mode::Kernel) {
            if !rows.contains(r) {
                rows.push(*r);
            }
        }
        rows
    }
}

/// Why kernel-mov-cr8 does not run where this host is a guest of QEMU's TCG.
const TCG_CR8_ABORT: &str = "this host is itself a guest of QEMU's TCG (hypervisor signature TCGTCGTCGTCG), whose SVM emulation aborts the whole host VM when a nested guest's MOV to CR8 unmasks a pending virtual interrupt (helper_write_crN() calls cpu_interrupt() without the BQL; QEMU 7.2 stops on tcg_handle_interrupt's assertion, seen in vmbench's nested CI lane): skipped rather than crash the host";

/// Rows this host's KVM is known not to return from: skipped with the
/// reason rather than left to hang until the row's deadline (or, for the
/// interrupt rows, to end the micro-guest with a double fault).
fn never_returns(row: Row, opts: &VmexitOptions) -> Option<String> {
    if opts.accel == Accel::Kvm && row == Row::KernelMovCr8 && vmbench_vm::qemu::host_is_tcg_guest()
    {
        return Some(TCG_CR8_ABORT.to_string());
    }
    let interrupt = matches!(row, Row::KernelSelfIpi | Row::KernelIpiHalt);
    if opts.accel != Accel::Kvm || !(interrupt || matches!(row, Row::KernelVmcall | Row::KutVmcall))
    {
        return None;
    }
    (kvm_vendor_module().as_deref() == Some("kvm_pvm")).then(|| {
        if interrupt {
            "kvm_pvm delivers interrupts through its own paravirtual event entry, not the guest's IDT: the OS-free micro-guest double-faults on the first one (seen on this project's build machine): skipped".to_string()
        } else {
            "VMCALL does not return to the guest under kvm_pvm (on this project's build machine a 2,010-execution row was still running after 120 s, with no KVM event at all): skipped rather than hung".to_string()
        }
    })
}

/// Whether the host's KVM virtualizes the local APIC, from its module
/// parameters: what decides if the interrupt rows exit at all.
fn apic_virtualization() -> String {
    let root = vmbench_host::SysRoot::host();
    let mods = vmbench_host::kvm::modules(&root);
    let Some(known) = mods.known() else {
        return "KVM module unknown".into();
    };
    let params = vmbench_host::kvm::parameters(&root, known);
    let vendor = known.vendor_module.as_deref().unwrap_or("?");
    let wanted: &[&str] = match vendor {
        "kvm_intel" => &["enable_apicv", "enable_ipiv"],
        "kvm_amd" => &["avic", "x2avic"],
        _ => &[],
    };
    let set: Vec<String> = wanted
        .iter()
        .filter_map(|p| {
            let v = params.get(vendor)?.get(*p)?;
            Some(format!("{p}={}", v.trim()))
        })
        .collect();
    if set.is_empty() {
        format!("{vendor}, no APICv or AVIC")
    } else {
        format!("{vendor} {}", set.join(" "))
    }
}

/// The host's KVM vendor module (kvm_intel, kvm_amd, kvm_pvm), if known.
fn kvm_vendor_module() -> Option<String> {
    let mods = vmbench_host::kvm::modules(&vmbench_host::SysRoot::host());
    mods.known()?.vendor_module.clone()
}

/// Samples of a kvm-unit-tests reproduction row: each is one auto-scaled
/// loop of at least 2^30 ticks (about 0.4 s at 2.6 GHz).
pub const KUT_SAMPLES: u64 = 5;

/// Samples above this multiple of the median are counted as interrupted.
pub const OUTLIER_FACTOR: u64 = 10;

/// pci-testdev's MMIO BAR (BAR 0) as the guest's firmware placed it, from
/// QMP `query-pci` (Red Hat's vendor id 0x1b36, device 0x0005).
fn testdev_mmio_bar(vm: &mut Vm) -> Option<std::ops::Range<u64>> {
    let answer = vm.qmp()?.execute("query-pci", None).ok()?;
    crate::pci::testdev_bar_in(&serde_json::from_value::<Vec<crate::pci::PciBus>>(answer).ok()?)
}

fn read_stats(vm: &mut Vm) -> Result<BTreeMap<String, u64>, kvmstats::StatsUnavailable> {
    let qmp = vm.qmp().ok_or(kvmstats::StatsUnavailable::NoQmp)?;
    let answer = qmp.execute("query-stats", Some(kvmstats::request()))?;
    kvmstats::parse(&answer)
}

/// What the suite produced: measurements, and rows this guest cannot run.
#[derive(Debug, Default)]
pub struct VmexitRun {
    /// One measurement per row that ran.
    pub measurements: Vec<Measurement>,
    /// Rows this guest cannot run, with why.
    pub skipped: Vec<Skipped>,
    /// What a reader must know about every row of this run.
    pub warnings: Vec<Warning>,
}

/// Runs the suite; `progress` gets one line per row.
pub fn run(
    vm: &mut Vm,
    opts: &VmexitOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<VmexitRun, SuiteError> {
    let (done, outcome) = run_partial(vm, opts, progress);
    outcome.map(|()| done)
}

/// As [`run`], but a failure mid-suite (guest hung or gone) keeps every row
/// completed before it in the returned run, beside the error.
pub fn run_partial(
    vm: &mut Vm,
    opts: &VmexitOptions,
    progress: &mut dyn FnMut(&str),
) -> (VmexitRun, Result<(), SuiteError>) {
    let mut done = VmexitRun {
        warnings: setting_warnings(vm, opts),
        ..VmexitRun::default()
    };
    let outcome = run_into(vm, opts, progress, &mut done);
    distrust_baselines_if_counters_lie(&mut done.measurements);
    say_where_ring0_is_emulated(&mut done);
    // The guest probes RDTSC in one ring only (the Linux agent in ring 3);
    // the timer baselines show what a timestamp pair costs in each.
    for m in &done.measurements {
        let ring = match m.id.within(Suite::Vmexit) {
            Some("kernel-timer-overhead") => "ring 0",
            Some("timer-overhead") => "ring 3",
            _ => continue,
        };
        let p50 = m.summary.p50;
        // The guest-wide warning (`setting_warnings`) names the ring it saw.
        let known = done
            .warnings
            .iter()
            .any(|w| w.kind == WarningKind::RdtscExits && w.message.contains(ring));
        if opts.accel == Accel::Kvm && p50 > RDTSC_EXITS_ABOVE && !known {
            done.warnings.push(Warning::new(
                WarningKind::RdtscExits,
                format!(
                    "RDTSC exits in {ring} of this guest (the empty window costs {p50} ticks): both timestamps of every {ring} sample are exits too, so {ring} rows publish their batch mean, not p50−ovh"
                ),
            ));
        }
    }
    (done, outcome)
}

/// Above this many ticks between back-to-back timestamps, RDTSC is taking
/// an exit itself.
const RDTSC_EXITS_ABOVE: u64 = 1000;

/// What changes the meaning of every row: a host that is itself a guest
/// (nested exits), and a guest whose RDTSC exits (every timestamp does).
fn setting_warnings(vm: &Vm, opts: &VmexitOptions) -> Vec<Warning> {
    let mut warnings = Vec::new();
    if opts.accel == Accel::Kvm
        && let Some(sig) = vmbench_host::cpuid::hypervisor_signature_raw()
    {
        warnings.push(Warning::new(
            WarningKind::NestedHost,
            format!(
                "The host itself runs under a hypervisor ({sig:?}): every VM exit here is nested, and its cost is not that of bare metal"
            ),
        ));
    }
    if opts.accel == Accel::Kvm && vmbench_vm::qemu::host_is_tcg_guest() {
        warnings.push(Warning::new(
            WarningKind::TcgHostedKvm,
            "The host is a guest of QEMU's TCG, whose SVM differs from hardware: no NRIP-save (kvm_amd nrips=0: KVM decodes every exiting instruction to skip it, a cost hardware does not have), INVD reported with WBINVD's exit code (the INVD row says so), and kernel-mov-cr8 skipped (a MOV to CR8 that unmasks a pending virtual interrupt aborts TCG); paths are verified as on hardware, times mean nothing",
        ));
    }
    let p50 = vm.spec.rdtsc_ticks_p50;
    if opts.accel == Accel::Kvm && p50 > RDTSC_EXITS_ABOVE {
        warnings.push(Warning::new(
            WarningKind::RdtscExits,
            format!(
                "RDTSC exits in this guest ({p50} ticks between back-to-back timestamps, in {}): both timestamps of every sample are exits too, whose cost depends on what lies between them; that ring's rows publish their batch mean (timestamps amortised over the batch), not p50−ovh, and their distributions include the two exits",
                if vm.spec.kernel_release.contains("micro-guest") { "ring 0" } else { "ring 3" }
            ),
        ));
    }
    warnings
}

fn run_into(
    vm: &mut Vm,
    opts: &VmexitOptions,
    progress: &mut dyn FnMut(&str),
    done: &mut VmexitRun,
) -> Result<(), SuiteError> {
    let mut overhead: BTreeMap<Row, u64> = BTreeMap::new();
    let capacity = ((vm.region().len() - DATA_OFF) / 8) as u64;
    let samples = opts.samples.clamp(1, capacity);
    let rows = opts.ordered_rows();
    let total = rows.len();
    for (i, row) in rows.into_iter().enumerate() {
        // Each reproduction sample is a whole auto-scaled loop (≥ 2^30 ticks).
        let samples = if row.reproduces_kvm_unit_tests() {
            samples.min(KUT_SAMPLES)
        } else {
            samples
        };
        let at = format!("vmexit row {} of {total}, {}", i + 1, row.id());
        if let Some(reason) = never_returns(row, opts) {
            progress(&format!("{at}: skipped: {reason}"));
            done.skipped.push(Skipped {
                id: MeasurementId::new(Suite::Vmexit, row.id()),
                reason,
            });
            continue;
        }
        progress(&format!("{at}: measuring {samples} samples"));
        match ask(vm, opts, row, samples)? {
            Answer::Unsupported(reason) => {
                progress(&format!("{at}: skipped: {reason}"));
                done.skipped.push(Skipped {
                    id: MeasurementId::new(Suite::Vmexit, row.id()),
                    reason,
                });
            }
            Answer::Ran(ran) => {
                let m = measurement(row, &ran, opts, &mut overhead)?;
                done.measurements.push(m);
            }
        }
    }
    Ok(())
}

/// A row the guest ran: its answer, the samples, and what KVM's counters say.
struct Ran {
    run: RowRun,
    samples: u64,
    raw: Vec<u64>,
    verification: Verification,
    counters: BTreeMap<String, u64>,
    exit_events: Option<ExitEvents>,
}

enum Answer {
    /// The guest cannot run this row (e.g. no TSC-deadline timer), with why.
    Unsupported(String),
    Ran(Box<Ran>),
}

fn bad_answer(row: Row, why: impl ToString) -> SuiteError {
    SuiteError::BadAnswer {
        row: row.id().to_string(),
        why: why.to_string(),
    }
}

/// Has the guest run `row`, counts KVM's events around it, and copies the
/// samples out; everything in the answer is checked against what was asked.
fn ask(vm: &mut Vm, opts: &VmexitOptions, row: Row, samples: u64) -> Result<Answer, SuiteError> {
    let id = row.id().to_string();
    let kvm = opts.accel == Accel::Kvm;
    let mut claim = verify::claim(row, opts.debugcon_port);
    if kvm {
        // Only VMX and SVM have the APICv / AVIC / virtual TPR / MSR
        // pass-through that may absorb these exits without an event.
        claim.vendor = kvm_vendor_module()
            .as_deref()
            .and_then(verify::Vendor::of_module);
        claim.outer_tcg = vmbench_vm::qemu::host_is_tcg_guest();
        // One QMP round trip, for the two rows that need the BAR.
        if verify::takes_fast_mmio(row)
            && let Some(bar) = testdev_mmio_bar(vm)
        {
            claim = claim.with_testdev_mmio_bar(row, bar);
        }
    }
    let mut trace = kvm.then(|| open_trace(vm, opts, &claim));
    if let Some(Ok(counters)) = &mut trace
        && let Err(e) = counters.start()
    {
        trace = Some(Err(e.into()));
    }
    let before = kvm.then(|| read_stats(vm));
    // Generous: under TCG or a slow nested KVM a row can take minutes.
    let timeout = Duration::from_secs(600);
    let flags = if opts.test_substitute.contains(&row) {
        vmbench_abi::run_vmexit_flags::TEST_SUBSTITUTE
    } else {
        0
    };
    let args = [
        row as u64,
        samples,
        opts.warmup,
        opts.batch,
        u64::from(opts.debugcon_port),
        flags,
    ];
    let resp = vm.call(Command::RunVmexit, args, timeout)?;
    let after = kvm.then(|| read_stats(vm));
    let traced = trace.map(|t| t.and_then(|mut c| c.stop().map_err(RowUntraced::from)));
    let text = String::from_utf8_lossy(&resp.payload)
        .chars()
        .take(500)
        .collect::<String>();
    if resp.status == Status::Unsupported {
        return Ok(Answer::Unsupported(text));
    }
    if resp.status != Status::Ok {
        return Err(SuiteError::Refused { row: id, why: text });
    }
    let run: RowRun = serde_json::from_slice(&resp.payload)
        .map_err(|e| bad_answer(row, format!("{e}: {text}")))?;
    if run.row != id
        || run.samples != samples
        || run.warmup != opts.warmup
        || run.batch_iterations != opts.batch
    {
        return Err(bad_answer(
            row,
            format!(
                "asked for {samples} samples, {} warm-up, {} batch; got {run:?}",
                opts.warmup, opts.batch
            ),
        ));
    }
    let bytes = vm
        .region()
        .copy_out(DATA_OFF, (samples * 8) as usize)
        .map_err(|e| bad_answer(row, e))?;
    let raw: Vec<u64> = bytes
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
        .collect();
    let executions = match run.executions {
        None => samples + opts.warmup + opts.batch,
        // The guest chose the loop lengths: at least 64 per sample, and no
        // more than a loop of 2^30 ticks can hold at one tick each.
        Some(n)
            if row.reproduces_kvm_unit_tests() && (64 * samples..=samples << 33).contains(&n) =>
        {
            n
        }
        Some(n) => {
            return Err(bad_answer(
                row,
                format!("{n} executions claimed for {samples} samples"),
            ));
        }
    };
    let stats = match (before, after) {
        (Some(Ok(b)), Some(Ok(a))) => Some(Ok(kvmstats::delta(&b, &a))),
        (Some(Err(e)), _) | (_, Some(Err(e))) => Some(Err(e)),
        _ => None,
    };
    if row.uses_testdev() != run.device_writes.is_some() {
        return Err(bad_answer(
            row,
            format!(
                "device_writes {:?}: the pci-testdev rows answer it, no other row does",
                run.device_writes
            ),
        ));
    }
    let (verification, exit_events) = judge(row, &claim, executions, traced, stats.as_ref());
    let verification = with_device_count(verification, row, executions, run.device_writes);
    Ok(Answer::Ran(Box::new(Ran {
        run,
        samples,
        raw,
        verification,
        counters: stats.and_then(Result::ok).unwrap_or_default(),
        exit_events,
    })))
}

/// Adds pci-testdev's own count of the writes QEMU served to the verdict:
/// every one for a row without an eventfd, none for an ioeventfd row (KVM,
/// or QEMU's memory core under TCG, signals the eventfd instead of calling
/// the device). A count that disagrees fails the row, whatever else said.
fn with_device_count(
    v: Verification,
    row: Row,
    executions: u64,
    served: Option<u64>,
) -> Verification {
    let Some(served) = served else { return v };
    let want = if row.expect() == Expect::Ioeventfd {
        0
    } else {
        executions
    };
    let said =
        format!("pci-testdev's own count: QEMU's device served {served} of {executions} writes");
    if served != want {
        return Verification::Failed {
            evidence: format!("{said}, expected {want}"),
        };
    }
    match v {
        Verification::Verified { evidence } => Verification::Verified {
            evidence: format!("{evidence}; {said}"),
        },
        Verification::Unverified { reason, cause } => Verification::Unverified {
            cause,
            reason: format!("{reason}; {said}"),
        },
        failed => failed,
    }
}

/// Tracepoint counters for `row` on the VM's first vCPU thread.
fn open_trace<'a>(
    vm: &Vm,
    opts: &'a VmexitOptions,
    claim: &verify::Claim,
) -> Result<RowCounters, RowUntraced<'a>> {
    let tp = opts.tracepoints.as_ref().map_err(RowUntraced::Run)?;
    let (_, tid) = vm
        .vcpu_threads
        .first()
        .copied()
        .ok_or(RowUntraced::NoVcpuThread)?;
    RowCounters::open(tp, tid, &verify::probes(claim)).map_err(RowUntraced::from)
}

/// The row's verdict: from KVM's tracepoints when they were counted, else
/// from `query-stats` (saying why the tracepoints were not counted), else
/// TCG's "not verifiable".
fn judge(
    row: Row,
    claim: &verify::Claim,
    executions: u64,
    traced: Option<Result<BTreeMap<String, u64>, RowUntraced>>,
    stats: Option<&Result<BTreeMap<String, u64>, kvmstats::StatsUnavailable>>,
) -> (Verification, Option<ExitEvents>) {
    let untraced = match traced {
        Some(Ok(counts)) => {
            let v = verify::verify_tracepoints(row, claim, executions, &counts);
            let proof = claim.proof.as_ref().map(|p| p.label.clone());
            let events = ExitEvents::new(TRACEPOINT_SOURCE, executions, counts, proof);
            return (v, Some(events));
        }
        Some(Err(why)) => Some(why),
        None => None,
    };
    let v = match stats {
        Some(Ok(d)) => verify(row.expect(), executions, Evidence::Deltas(d)),
        Some(Err(why)) => {
            let why = vmbench_shm::describe(why);
            verify(row.expect(), executions, Evidence::Unavailable(&why))
        }
        None => verify(row.expect(), executions, Evidence::Tcg),
    };
    let v = match (v, untraced) {
        (Verification::Unverified { reason, cause }, Some(why)) => Verification::Unverified {
            cause,
            reason: format!(
                "{reason} (KVM tracepoints not counted: {})",
                vmbench_shm::describe(&why)
            ),
        },
        (v, _) => v,
    };
    (v, None)
}

/// How results name the tracepoint source.
pub const TRACEPOINT_SOURCE: &str =
    "KVM tracepoints counted on the vCPU thread (perf_event_open, PERF_TYPE_TRACEPOINT)";

/// The row's measurement: distribution, tier, batch mean, warnings, and the
/// distribution minus its timer baseline (the baselines run first and are
/// kept in `overhead`).
fn measurement(
    row: Row,
    ran: &Ran,
    opts: &VmexitOptions,
    overhead: &mut BTreeMap<Row, u64>,
) -> Result<Measurement, SuiteError> {
    let mut set = SampleSet::new();
    set.extend(ran.raw.iter().copied())
        .map_err(|e| bad_answer(row, e))?;
    let definition = match opts.guest {
        GuestKind::Micro => row.micro_definition(),
        GuestKind::Linux => row.definition().to_string(),
    };
    let mut m = Measurement::from_samples(
        MeasurementId::new(Suite::Vmexit, row.id()),
        definition,
        Unit::TscTicks,
        &set,
        ran.verification.clone(),
    )
    .map_err(|e| bad_answer(row, e))?;
    m.tier = Some(row.expect().tier().to_string());
    if opts.accel == Accel::Kvm && matches!(row.expect(), Expect::Apic | Expect::IpiWake) {
        m.tier = Some(format!(
            "{} [host: {}]",
            row.expect().tier(),
            apic_virtualization()
        ));
    }
    m.tsc_khz = opts.tsc_khz;
    let is_timer = row == Row::TimerOverhead || row == Row::KernelTimerOverhead;
    // Where RDTSC exits, a window's two timestamps are exits themselves,
    // and what they cost depends on what lies between them: under kvm_pvm
    // the empty ring-0 window is ~4.8k ticks, the same window around one
    // NOP ~10.7k. No constant subtracts that; the batch, whose two
    // timestamps are amortised over all its executions, is the figure.
    let ring_overhead = overhead.get(&row.overhead_row()).copied();
    let rdtsc_exits =
        opts.accel == Accel::Kvm && ring_overhead.is_some_and(|ovh| ovh > RDTSC_EXITS_ABOVE);
    // A baseline's batch times an empty loop: no figure, except where the
    // batch is every row's figure (the NOP's is then what the others are
    // read against); the reproduction rows' samples are batches already.
    if ran.run.batch_iterations > 0
        && (row.expect() != Expect::NoExit || (rdtsc_exits && !is_timer))
        && !row.reproduces_kvm_unit_tests()
    {
        m.batch_mean = Some(ran.run.batch_ticks as f64 / ran.run.batch_iterations as f64);
    }
    let median = m.summary.p50.max(1);
    let outliers = ran
        .raw
        .iter()
        .filter(|&&s| s > median * OUTLIER_FACTOR)
        .count();
    if outliers > 0 {
        m.warnings.push(Warning::new(
            WarningKind::Outliers,
            format!(
                "{outliers} of {} samples exceed {OUTLIER_FACTOR}x the median (interrupts or preemption inside the timed window); they are kept in the distribution",
                ran.samples
            ),
        ));
    }
    if let Some(irq) = ran.counters.get("irq_exits").filter(|&&v| v > 0) {
        m.warnings.push(Warning::new(
            WarningKind::InterruptExits,
            format!("{irq} external-interrupt exits happened during this row"),
        ));
    }
    if is_timer {
        overhead.insert(row, m.summary.p50);
    } else if row.reproduces_kvm_unit_tests() {
        // kvm-unit-tests subtracts nothing; neither does its reproduction.
    } else if rdtsc_exits && let Some(ovh) = ring_overhead {
        m.overhead_p50 = Some(ovh);
        m.warnings.push(rdtsc_exit_warning(
            ovh,
            overhead.get(&Row::KernelNop).copied(),
            ran.run.batch_iterations,
        ));
        if row == Row::KernelNop {
            overhead.insert(row, m.summary.p50);
        }
    } else if let Some(ovh) = ring_overhead {
        let (adj, floored) = subtract_timer(&ran.raw, ovh).map_err(|e| bad_answer(row, e))?;
        m.warnings.extend(floored);
        // Percentiles of each sample minus the baseline (its drift is the
        // row's own, shifted: results.json keeps it once).
        m.overhead_subtracted = adj.summary().ok();
        m.overhead_p50 = Some(ovh);
    }
    m.counters = ran.counters.clone();
    m.exit_events = ran.exit_events.clone();
    Ok(m)
}

/// What a row of a ring whose RDTSC exits says about its figures.
fn rdtsc_exit_warning(empty: u64, nop: Option<u64>, batch: u64) -> Warning {
    let nop = nop.map_or_else(String::new, |n| format!(", around one NOP {n}"));
    Warning::new(
        WarningKind::RdtscExits,
        format!(
            "RDTSC exits in this row's ring (p50 of the empty window {empty} ticks{nop}): both timestamps of every sample are exits whose cost depends on what lies between them, so no constant removes them and p50−ovh is not published; the row's figure is its batch mean, {batch} executions between two timestamps"
        ),
    )
}

/// Where KVM emulates the guest's ring 0 instruction by instruction
/// (kvm_pvm with the OS-free micro-guest: `kvm_emulate_insn` about three
/// times per NOP-loop iteration), every ring-0 figure is mostly the
/// emulator's; kernel-nop's count says so, and every kernel row and the
/// run carry it.
fn say_where_ring0_is_emulated(done: &mut VmexitRun) {
    let nop_id = MeasurementId::new(Suite::Vmexit, Row::KernelNop.id());
    let Some(per) = done
        .measurements
        .iter()
        .find(|m| m.id == nop_id)
        .and_then(|m| m.exit_events.as_ref())
        .and_then(|e| e.per_execution.get(crate::verify::EMULATED).copied())
        .filter(|&p| p > crate::verify::EMULATED_PER_EXECUTION as f64)
    else {
        return;
    };
    let why = Warning::new(
        WarningKind::Ring0Emulated,
        format!(
            "KVM emulates this guest's ring 0 instruction by instruction (kernel-nop: {} {per:.2} per execution): a NOP costs what the emulator does, not nothing, and every ring-0 figure includes the emulation of each instruction in its window and loop besides the exit it names",
            crate::verify::EMULATED
        ),
    );
    for m in done.measurements.iter_mut().filter(|m| {
        m.id.within(Suite::Vmexit)
            .is_some_and(|l| l.starts_with("kernel-"))
    }) {
        m.warnings.push(why.clone());
    }
    done.warnings.push(why);
}

/// Counters that provably do not track the work (an exit row found them
/// inconsistent) cannot verify or fail any row of the same run: every
/// verdict drawn from them becomes "unverified", with the evidence kept.
fn distrust_baselines_if_counters_lie(ms: &mut [Measurement]) {
    use vmbench_results::{Unverifiable, Verification};
    let inconsistent = ms.iter().filter(|m| m.exit_events.is_none()).any(|m| {
        matches!(
            m.verification,
            Verification::Unverified {
                cause: Some(Unverifiable::CountersInconsistent),
                ..
            }
        )
    });
    if !inconsistent {
        return;
    }
    for m in ms.iter_mut().filter(|m| m.exit_events.is_none()) {
        let evidence = match &m.verification {
            Verification::Verified { evidence } | Verification::Failed { evidence } => {
                evidence.clone()
            }
            _ => continue,
        };
        m.verification = Verification::Unverified {
            cause: Some(Unverifiable::CountersInconsistent),
            reason: format!(
                "counters inconsistent in this run (other rows show KVM's counters do not track the work), so this reading proves nothing: {evidence}"
            ),
        };
    }
}

/// The samples minus the timer baseline's p50 `ovh`. A sample below it
/// counts as 0 once subtracted: the warning says how many did, rather than
/// flooring them silently.
fn subtract_timer(
    raw: &[u64],
    ovh: u64,
) -> Result<(SampleSet, Option<Warning>), vmbench_results::StatsError> {
    let mut adj = SampleSet::new();
    adj.extend(raw.iter().map(|s| s.saturating_sub(ovh)))?;
    let floored = raw.iter().filter(|&&s| s < ovh).count();
    let warning = (floored > 0).then(|| {
        Warning::new(
            WarningKind::OverheadFloored,
            format!(
                "{floored} of {} samples are below the timer baseline's p50 ({ovh} ticks) and count as 0 after its subtraction",
                raw.len()
            ),
        )
    });
    Ok((adj, warning))
}

#[cfg(test)]
mod tests;
