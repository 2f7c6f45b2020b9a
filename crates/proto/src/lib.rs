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

/// This build's fingerprint alone (the hex digits of [`AGENT_SOURCES`]).
pub const AGENT_SOURCES_FINGERPRINT: &str = env!("VMBENCH_AGENT_SOURCES");

/// The agent-sources fingerprint an executable's bytes carry, if any: the
/// digits after [`AGENT_SOURCES`]' tag, as many as this build's have.
pub fn agent_sources_in(exe: &[u8]) -> Option<&str> {
    let digits = AGENT_SOURCES_FINGERPRINT.len();
    let tag = &AGENT_SOURCES.as_bytes()[..AGENT_SOURCES.len() - digits - 1];
    let at = exe.windows(tag.len()).position(|w| w == tag)? + tag.len();
    let (hex, end) = exe.get(at..at + digits + 1)?.split_at(digits);
    if end != b";" || !hex.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    std::str::from_utf8(hex).ok()
}
pub use channel::{
    Command, GuestEnd, GuestState, HostEnd, HostState, ProtoError, Response, Status,
};
pub use layout::{DATA_OFF, MAILBOX_BYTES, MIN_REGION_BYTES, PROTOCOL_VERSION};
pub use region::{MappedRegion, Region, RegionSizeError, region_bytes};
pub use spec::{GuestSpec, Mapping};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_agents_fingerprint_is_read_from_its_bytes() {
        let mut exe = b"\x7fELF....vmbench-agent-sources:0123456789abcdef;...".to_vec();
        assert_eq!(agent_sources_in(&exe), Some("0123456789abcdef"));
        exe[30] = b'x';
        assert_eq!(agent_sources_in(&exe), None, "not hex");
        assert_eq!(agent_sources_in(b"no marker here"), None);
        assert_eq!(
            agent_sources_in(b"vmbench-agent-sources:0123"),
            None,
            "cut short"
        );
        assert_eq!(AGENT_SOURCES_FINGERPRINT.len(), 16);
        assert_eq!(
            agent_sources_in(AGENT_SOURCES.as_bytes()),
            Some(AGENT_SOURCES_FINGERPRINT)
        );
    }
}
