//! Offsets and constants of the shared region.
//!
//! ```text
//! offset   size     writer  contents
//! 0x0000   128 B    host    header: magic, version, sizes (written once, before READY)
//! 0x0080   128 B    host    host control: state, session, command seq/id/args
//! 0x0100   128 B    guest   guest control: state, session echo, response seq/status/len
//! 0x0180   128 B    host    host ping line   (the shm suite)
//! 0x0200   128 B    guest   guest pong line  (the shm suite)
//! 0x0280   128 B    host    host bounce word (the shm suite's cache-line reference)
//! 0x0300   128 B    guest   guest bounce word
//! 0x1000   60 KiB   guest   mailbox: response payloads (spec JSON, errors)
//! 0x10000  rest     per-command owner: data (samples, frames)
//! ```
//! Every field has exactly one writer. Control words live on their own
//! 128-byte pair of cache lines (the adjacent-line prefetcher pulls pairs).
//! All offsets are bytes from the start of the region; 64-bit fields are
//! 8-aligned, 32-bit fields 4-aligned.

/// "VMBENCH1" little-endian: the header's first word once the host set it up.
pub const MAGIC: u64 = u64::from_le_bytes(*b"VMBENCH1");
/// Bumped whenever a field moves or changes meaning; both ends refuse a mismatch.
pub const PROTOCOL_VERSION: u32 = 2;

/// Two cache lines: the spacing between control blocks of different writers.
pub const LINE_PAIR: usize = 128;

/// The header (host-written once).
pub const HEADER_OFF: usize = 0;
/// The host's control block.
pub const HOST_CTRL_OFF: usize = LINE_PAIR;
/// The guest's control block.
pub const GUEST_CTRL_OFF: usize = 2 * LINE_PAIR;
/// The host's ping line of the shared-memory suite.
pub const HOST_PING_OFF: usize = 3 * LINE_PAIR;
/// The guest's pong line of the shared-memory suite.
pub const GUEST_PONG_OFF: usize = 4 * LINE_PAIR;
/// The host's bounce word: the bare cache-line round trip the polling round
/// trip is compared with (one u64, alone on its line pair).
pub const HOST_BOUNCE_OFF: usize = 5 * LINE_PAIR;
/// The guest's bounce word (one u64, alone on its line pair).
pub const GUEST_BOUNCE_OFF: usize = 6 * LINE_PAIR;
/// The guest's answers (spec JSON, row results, error messages).
pub const MAILBOX_OFF: usize = 0x1000;
/// The mailbox's size: everything up to the data area.
pub const MAILBOX_BYTES: usize = 0x10000 - MAILBOX_OFF;
/// The data area: samples and frames, written by whoever the command names.
pub const DATA_OFF: usize = 0x10000;
/// The smallest region the protocol accepts (control + mailbox + 960 KiB data).
pub const MIN_REGION_BYTES: usize = 1 << 20;

/// Header: [`MAGIC`] (u64).
pub const H_MAGIC: usize = HEADER_OFF;
/// Header: [`PROTOCOL_VERSION`] (u32).
pub const H_VERSION: usize = HEADER_OFF + 8;
/// Header: the region's size in bytes (u64).
pub const H_REGION_BYTES: usize = HEADER_OFF + 16;
/// Header: the data area's offset (u64, [`DATA_OFF`]).
pub const H_DATA_OFF: usize = HEADER_OFF + 24;
/// Header: the data area's size in bytes (u64).
pub const H_DATA_BYTES: usize = HEADER_OFF + 32;

/// Host control: the host's state (u32, [`crate::host_state`]); Release-stored.
pub const HC_STATE: usize = HOST_CTRL_OFF;
/// Host control: a fresh random session number per host start (u64).
pub const HC_SESSION: usize = HOST_CTRL_OFF + 8;
/// Host control: the command sequence number (u64); a new value is a new
/// command, Release-stored after the command and its arguments.
pub const HC_CMD_SEQ: usize = HOST_CTRL_OFF + 16;
/// Host control: the command (u32, [`crate::command`]).
pub const HC_CMD: usize = HOST_CTRL_OFF + 24;
/// Host control: [`N_ARGS`] u64 arguments.
pub const HC_ARGS: usize = HOST_CTRL_OFF + 32;
/// How many u64 arguments a command carries.
pub const N_ARGS: usize = 6;

/// Guest control: the guest's state (u32, [`crate::guest_state`]); Release-stored.
pub const GC_STATE: usize = GUEST_CTRL_OFF;
/// Guest control: the host session the guest answers (u64).
pub const GC_SESSION: usize = GUEST_CTRL_OFF + 8;
/// Guest control: the command sequence number answered (u64); Release-stored
/// after the status, length and mailbox.
pub const GC_RESP_SEQ: usize = GUEST_CTRL_OFF + 16;
/// Guest control: the answer's status (u32, [`crate::status`]).
pub const GC_STATUS: usize = GUEST_CTRL_OFF + 24;
/// Guest control: the answer's length in the mailbox (u64).
pub const GC_RESP_LEN: usize = GUEST_CTRL_OFF + 32;
/// Guest control: a counter the Linux agent advances while it works (u64).
pub const GC_HEARTBEAT: usize = GUEST_CTRL_OFF + 40;
/// Guest control: the guest's [`PROTOCOL_VERSION`] (u32).
pub const GC_VERSION: usize = GUEST_CTRL_OFF + 48;

const _: () = assert!(HC_ARGS + 8 * N_ARGS <= HOST_CTRL_OFF + LINE_PAIR);
const _: () = assert!(GC_VERSION + 8 <= GUEST_CTRL_OFF + LINE_PAIR);
const _: () = assert!(GUEST_PONG_OFF + LINE_PAIR <= MAILBOX_OFF);
