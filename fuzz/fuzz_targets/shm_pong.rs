//! Every pong a guest can write, against every request the host can have in
//! flight: validation never panics, and what it accepts is consistent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vmbench_proto::shm::{
    Expect, MAX_GUEST_TICKS, Op, PONG_BYTES, Ping, Pong, PongCheck, Slots, validate_ping,
    validate_pong,
};

fuzz_target!(|data: &[u8]| {
    if data.len() < PONG_BYTES + 17 {
        return;
    }
    let mut line = [0u8; PONG_BYTES];
    line.copy_from_slice(&data[..PONG_BYTES]);
    let pong = Pong::from_bytes(&line);
    let rest = &data[PONG_BYTES..];
    let word = |i: usize| u64::from_le_bytes(rest[i..i + 8].try_into().unwrap_or([0; 8]));
    let op = Op::from_raw(u32::from(rest[16] % 7)).unwrap_or(Op::Echo);
    let e = Expect {
        seq: word(0).max(1),
        op,
        len: if op.uses_slot() { word(8) } else { 0 },
    };
    match validate_pong(&pong, &e) {
        Ok(PongCheck::Answer(p)) => {
            assert_eq!(p.ack, e.seq);
            assert_eq!(p.len, e.len);
            assert!(p.t.iter().all(|t| *t <= MAX_GUEST_TICKS));
        }
        Ok(PongCheck::NotYet) => assert_eq!(pong.ack + 1, e.seq),
        Ok(PongCheck::GuestError(_)) | Err(_) => {}
    }
    // The guest side's check of a request, from the same bytes.
    let slots = Slots {
        slot_bytes: word(8),
        count: u64::from(rest[16]),
    };
    let ping = Ping {
        seq: 1,
        op: u32::from(rest[16] % 9),
        flags: pong.status,
        slot: pong.t[0],
        len: pong.t[1],
        seed: 0,
        count: 0,
        phase: 0,
    };
    if let Ok((op, Some(off))) = validate_ping(&ping, &slots) {
        assert!(op.uses_slot());
        assert!(ping.slot < slots.count && ping.len <= slots.slot_bytes);
        assert!(off >= vmbench_proto::DATA_OFF);
    }
});
