//! The shared region between the host and the guest agent: its layout, the
//! host and guest state machines, and the command channel.
//!
//! The byte map of the region is in [`layout`] (from `vmbench-abi`).
//! Every field has exactly one writer.
//! Hand-offs are Release stores / Acquire loads of a sequence or state word;
//! volatile is never used as synchronisation.
//!
//! Either side may start first: the host publishes a fresh random session
//! number with each start, and the guest only answers a session it has seen.
//! The host treats everything the guest writes as hostile: every guest field
//! is loaded once, validated (state values, session, sequence monotonic,
//! lengths within the mailbox) and only then used.

pub mod channel;
pub mod doorbell;
pub mod region;
pub mod shm;
pub mod spec;
pub mod vmexit;

/// The region layout and the fenced TSC reads live in `vmbench-abi`, which
/// the no_std micro-guest builds too.
pub use vmbench_abi::{layout, testdev, timing};

/// The fingerprint of the guest agent's sources (build.rs), as both the
/// agent and `vmbench` carry it: `vmbench image build` uses a
/// `vmbench-agent` only when its bytes hold this very marker (built from
/// the same sources), and rebuilds a cached image made from other sources.
pub const AGENT_SOURCES: &str =
    concat!("vmbench-agent-sources:", env!("VMBENCH_AGENT_SOURCES"), ";");

pub use channel::{
    Command, GuestEnd, GuestState, HostEnd, HostState, ProtoError, Response, Status,
};
pub use layout::{DATA_OFF, MAILBOX_BYTES, MIN_REGION_BYTES, PROTOCOL_VERSION};
pub use region::{MappedRegion, Region, RegionSizeError, region_bytes};
pub use spec::{GuestSpec, Mapping};
