//! Reads the host machine for vmbench: every other crate that needs /proc, /sys,
//! CPUID, the TSC, /dev/kvm or the QEMU binary goes through here.
//!
//! All file access goes through [`SysRoot`], so the whole crate runs against fixture
//! trees in tests (`--root DIR` on the command line). Probes that touch the running
//! machine directly (CPUID, RDTSC, `/dev/kvm` ioctls) are only made when the root is `/`.

pub mod cpuid;
pub mod cpuinfo;
pub mod cpulist;
pub mod fact;
pub mod files;
pub mod fixture;
pub mod fs;
pub mod kvm;
pub mod power;
pub mod qemu;
pub mod rows;
pub mod signals;
pub mod spec;
pub mod text;
pub mod tracefs;
pub mod tsc;

pub use cpulist::{CpuList, CpuListError};
pub use fact::Fact;
pub use fs::{ReadError, SysRoot};
pub use spec::{HostSpec, SpecOptions};
