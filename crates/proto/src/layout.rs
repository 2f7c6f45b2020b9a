//! Offsets and constants of the shared region (see the crate docs for the map).

/// "VMBENCH1" little-endian.
pub const MAGIC: u64 = u64::from_le_bytes(*b"VMBENCH1");
pub const PROTOCOL_VERSION: u32 = 1;

/// Two cache lines: the spacing between control blocks of different writers.
pub const LINE_PAIR: usize = 128;

pub const HEADER_OFF: usize = 0;
pub const HOST_CTRL_OFF: usize = LINE_PAIR;
pub const GUEST_CTRL_OFF: usize = 2 * LINE_PAIR;
pub const HOST_PING_OFF: usize = 3 * LINE_PAIR;
pub const GUEST_PONG_OFF: usize = 4 * LINE_PAIR;
pub const MAILBOX_OFF: usize = 0x1000;
pub const MAILBOX_BYTES: usize = 0x10000 - MAILBOX_OFF;
pub const DATA_OFF: usize = 0x10000;
/// The smallest region the protocol accepts (control + mailbox + 960 KiB data).
pub const MIN_REGION_BYTES: usize = 1 << 20;

// Header fields (host-written once, before the host state becomes READY).
pub const H_MAGIC: usize = HEADER_OFF;
pub const H_VERSION: usize = HEADER_OFF + 8;
pub const H_REGION_BYTES: usize = HEADER_OFF + 16;
pub const H_DATA_OFF: usize = HEADER_OFF + 24;
pub const H_DATA_BYTES: usize = HEADER_OFF + 32;

// Host control.
pub const HC_STATE: usize = HOST_CTRL_OFF;
pub const HC_SESSION: usize = HOST_CTRL_OFF + 8;
pub const HC_CMD_SEQ: usize = HOST_CTRL_OFF + 16;
pub const HC_CMD: usize = HOST_CTRL_OFF + 24;
pub const HC_ARGS: usize = HOST_CTRL_OFF + 32;
pub const N_ARGS: usize = 6;

// Guest control.
pub const GC_STATE: usize = GUEST_CTRL_OFF;
pub const GC_SESSION: usize = GUEST_CTRL_OFF + 8;
pub const GC_RESP_SEQ: usize = GUEST_CTRL_OFF + 16;
pub const GC_STATUS: usize = GUEST_CTRL_OFF + 24;
pub const GC_RESP_LEN: usize = GUEST_CTRL_OFF + 32;
pub const GC_HEARTBEAT: usize = GUEST_CTRL_OFF + 40;
pub const GC_VERSION: usize = GUEST_CTRL_OFF + 48;

const _: () = assert!(HC_ARGS + 8 * N_ARGS <= HOST_CTRL_OFF + LINE_PAIR);
const _: () = assert!(GC_VERSION + 8 <= GUEST_CTRL_OFF + LINE_PAIR);
const _: () = assert!(GUEST_PONG_OFF + LINE_PAIR <= MAILBOX_OFF);
