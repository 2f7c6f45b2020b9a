//! KVM's tracepoints counted on the vCPU thread around one VM-exit row.
//!
//! One perf counter per probe (`PERF_TYPE_TRACEPOINT`, counting only: no
//! ring buffer, exact counts), attached to QEMU's vCPU thread alone, so
//! other VMs and QEMU's other threads do not count. KVM emits these
//! tracepoints in the vCPU thread's context while it handles the exit. A
//! probe may carry an ftrace filter (`port == 0xe9 && rw == 1`), set with
//! `PERF_EVENT_IOC_SET_FILTER`, so that it counts only the exit the row
//! claims.

use perf_event::events::Tracepoint;
use perf_event::{Builder, Counter};
use std::collections::BTreeMap;
use std::ffi::CString;
use std::os::fd::AsRawFd;
use vmbench_host::tracefs::{KVM_EVENTS, KvmTracepoints};

/// One counter: a tracepoint, optionally filtered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// How results name it (`kvm_pio`, `kvm_pio port=0xe9 write`).
    pub label: String,
    /// The tracepoint (`kvm_pio`).
    pub event: &'static str,
    /// An ftrace filter over the tracepoint's fields.
    pub filter: Option<String>,
}

impl Probe {
    /// The tracepoint, unfiltered, labelled by its name.
    pub fn all(event: &'static str) -> Probe {
        Probe {
            label: event.to_string(),
            event,
            filter: None,
        }
    }

    /// The tracepoint where `filter` holds.
    pub fn filtered(
        event: &'static str,
        label: impl Into<String>,
        filter: impl Into<String>,
    ) -> Probe {
        Probe {
            label: label.into(),
            event,
            filter: Some(filter.into()),
        }
    }
}

/// The unfiltered probes of every row: the exit-reason table.
pub fn table_probes() -> Vec<Probe> {
    KVM_EVENTS.iter().map(|e| Probe::all(e)).collect()
}

/// Why the tracepoints could not be counted on the vCPU thread.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// perf_event_open refused a tracepoint counter.
    #[error("perf_event_open({event}) on thread {tid}: {source}")]
    Open {
        /// The tracepoint.
        event: String,
        /// The vCPU thread.
        tid: u32,
        /// What the kernel said.
        #[source]
        source: std::io::Error,
    },
    /// The kernel refused a probe's filter.
    #[error("filter {filter:?} on {event}: {source}")]
    Filter {
        /// The tracepoint.
        event: String,
        /// The filter.
        filter: String,
        /// What the kernel said.
        #[source]
        source: std::io::Error,
    },
    /// Enabling, disabling or reading a counter failed.
    #[error("{what}: {source}")]
    Counter {
        /// The operation.
        what: &'static str,
        /// What the kernel said.
        #[source]
        source: std::io::Error,
    },
}

/// Why a run's rows cannot have their tracepoints counted.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Untraced {
    /// The run did not look the tracepoints up.
    #[error("KVM's tracepoint ids were not looked up")]
    NotLookedUp,
    /// This host's tracefs has no usable KVM tracepoints.
    #[error(transparent)]
    Tracefs(#[from] vmbench_host::tracefs::TracefsError),
}

/// Why one row's tracepoints were not counted.
#[derive(Debug, thiserror::Error)]
pub enum RowUntraced<'a> {
    /// The run's reason, shared by every row.
    #[error(transparent)]
    Run(&'a Untraced),
    /// QEMU named no vCPU thread to count on.
    #[error("QEMU reported no vCPU thread")]
    NoVcpuThread,
    /// A counter could not be opened, started, stopped or read.
    #[error(transparent)]
    Counter(#[from] TraceError),
}

/// Open counters for one row.
pub struct RowCounters {
    counters: Vec<(String, Counter)>,
}

impl RowCounters {
    /// Opens a disabled counter per probe whose tracepoint this kernel has,
    /// on thread `tid` (any CPU).
    pub fn open(
        tp: &KvmTracepoints,
        tid: u32,
        probes: &[Probe],
    ) -> Result<RowCounters, TraceError> {
        let mut counters = Vec::new();
        for probe in probes {
            let Some(&id) = tp.ids.get(probe.event) else {
                continue;
            };
            let pid = i32::try_from(tid).map_err(|_| TraceError::Open {
                event: probe.event.into(),
                tid,
                source: std::io::Error::from(std::io::ErrorKind::InvalidInput),
            })?;
            // Tracepoints fire in the kernel: the builder's default
            // exclude_kernel would count nothing.
            let counter = Builder::new(Tracepoint::with_id(id))
                .observe_pid(pid)
                .any_cpu()
                .include_kernel()
                .build()
                .map_err(|source| TraceError::Open {
                    event: probe.event.into(),
                    tid,
                    source,
                })?;
            if let Some(filter) = &probe.filter {
                set_filter(&counter, filter).map_err(|source| TraceError::Filter {
                    event: probe.event.into(),
                    filter: filter.clone(),
                    source,
                })?;
            }
            counters.push((probe.label.clone(), counter));
        }
        Ok(RowCounters { counters })
    }

    /// Zeroes and enables every counter.
    pub fn start(&mut self) -> Result<(), TraceError> {
        for (_, c) in &mut self.counters {
            c.reset().map_err(|source| TraceError::Counter {
                what: "PERF_EVENT_IOC_RESET",
                source,
            })?;
            c.enable().map_err(|source| TraceError::Counter {
                what: "PERF_EVENT_IOC_ENABLE",
                source,
            })?;
        }
        Ok(())
    }

    /// Disables every counter and returns the counts by label.
    pub fn stop(&mut self) -> Result<BTreeMap<String, u64>, TraceError> {
        let mut counts = BTreeMap::new();
        for (label, c) in &mut self.counters {
            c.disable().map_err(|source| TraceError::Counter {
                what: "PERF_EVENT_IOC_DISABLE",
                source,
            })?;
            let n = c.read().map_err(|source| TraceError::Counter {
                what: "read",
                source,
            })?;
            counts.insert(label.clone(), n);
        }
        Ok(counts)
    }
}

fn set_filter(counter: &Counter, filter: &str) -> std::io::Result<()> {
    let text =
        CString::new(filter).map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    // SAFETY: the fd is a perf event counter this process owns; the kernel
    // copies the NUL-terminated filter string (strndup_user) during the
    // call, and `text` lives across it.
    let rc = unsafe {
        perf_event_open_sys::ioctls::SET_FILTER(counter.as_raw_fd(), text.as_ptr().cast_mut())
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
