//! The shared region between the host and the guest agent: its layout, the
//! host and guest state machines, and the command channel.
//!
//! ```text
//! offset   size     writer  contents
//! 0x0000   128 B    host    header: magic, version, sizes (written once, before READY)
//! 0x0080   128 B    host    host control: state, session, command seq/id/args
//! 0x0100   128 B    guest   guest control: state, session echo, response seq/status/len
//! 0x0180   128 B    host    host ping line   (the shm suite: see `shm`)
//! 0x0200   128 B    guest   guest pong line  (the shm suite)
//! 0x1000   60 KiB   guest   mailbox: response payloads (spec JSON, errors)
//! 0x10000  rest     per-command owner: data (samples, frames)
//! ```
//! Every field has exactly one writer. Control words live on their own
//! 128-byte pair of cache lines (the adjacent-line prefetcher pulls pairs).
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
pub mod layout;
pub mod region;
pub mod shm;
pub mod spec;
pub mod timing;
pub mod vmexit;

pub use channel::{
    Command, GuestEnd, GuestState, HostEnd, HostState, ProtoError, Response, Status,
};
pub use layout::{DATA_OFF, MAILBOX_BYTES, MIN_REGION_BYTES, PROTOCOL_VERSION};
pub use region::{MappedRegion, Region, RegionSizeError, region_bytes};
pub use spec::{GuestSpec, Mapping};
