//! vmbench micro-guest: the VM-exit rows with no guest OS in the way.
//!
//! Booted by QEMU's `-kernel` as a PVH ELF (see boot.s). Ring 0 runs the
//! kernel rows with interrupts off (no timer, no scheduler: the only guest
//! interrupts are the interrupt rows' own IPIs, with the legacy PICs
//! masked; a second vCPU is started only for the IPI-to-HLT row); ring 3,
//! entered with IOPL 3, runs the user rows;
//! SYSCALL (returning with IRETQ) carries the user→kernel rows. Commands and
//! results travel over the same shared region as with the Linux guest
//! (ivshmem-plain, found by scanning PCI configuration space, BAR2
//! identity-mapped), with the numbers of `vmbench-abi`. The serial port
//! carries only boot and fault messages: each byte written there is itself
//! an exit.
#![no_std]
#![no_main]

mod apic;
mod console;
mod cpu;
mod io;
mod pci;
mod region;
mod rows;
mod runtime;
mod smp;
mod spec;
mod testdev;

use console::{Serial, Sink, exit_code, qemu_exit};
use core::arch::{asm, global_asm};
use core::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use region::{Buf, Shm};
use vmbench_abi::layout::{
    GC_RESP_SEQ, GC_STATE, H_REGION_BYTES, HC_ARGS, HC_CMD, HC_CMD_SEQ, MIN_REGION_BYTES, N_ARGS,
};
use vmbench_abi::{command, guest_state, row, status};

global_asm!(include_str!("boot.s"), options(att_syntax));

/// Called by boot.s in long mode.
#[unsafe(no_mangle)]
extern "C" fn rust_main() -> ! {
    Serial.s("micro-guest: long mode\n");
    cpu::setup();
    let Some((dev, bar2)) = pci::find_ivshmem() else {
        Serial.s("micro-guest: no ivshmem device (1af4:1110) on PCI bus 0\n");
        qemu_exit(exit_code::NO_DEVICE);
    };
    if bar2 == 0 {
        Serial.s("micro-guest: ivshmem BAR2 is unassigned\n");
        qemu_exit(exit_code::NO_DEVICE);
    }
    if let Err(e) = cpu::map_identity(bar2, MIN_REGION_BYTES as u64) {
        Serial
            .s("micro-guest: cannot map BAR2 at ")
            .x(bar2)
            .s(": ")
            .s(e)
            .s("\n");
        qemu_exit(exit_code::NO_DEVICE);
    }
    // The MMIO and PIO rows' device; without it they answer "unsupported".
    if let Some(t) = pci::find_testdev() {
        testdev::remember(t);
        Serial
            .s("micro-guest: pci-testdev BAR0 ")
            .x(t.mmio)
            .s(", BAR1 port ")
            .x(u64::from(t.port))
            .s("\n");
    }
    let mut shm = Shm {
        base: bar2,
        len: MIN_REGION_BYTES as u64,
    };
    Serial
        .s("micro-guest: ivshmem at device ")
        .u(u64::from(dev))
        .s(", BAR2 ")
        .x(bar2)
        .s("; waiting for the host\n");
    // 4 KiB of the 64 KiB boot stack.
    let mut answer = Buf::new();
    loop {
        let session = shm.attach();
        let region = shm.u64(H_REGION_BYTES).load(Relaxed);
        if region < MIN_REGION_BYTES as u64 || cpu::map_identity(bar2, region).is_err() {
            Serial.s("micro-guest: bad region size ").u(region).s("\n");
            qemu_exit(exit_code::NO_DEVICE);
        }
        shm.len = region;
        serve(&shm, session, dev, &mut answer);
    }
}

/// Answers commands until the host leaves `session`.
fn serve(shm: &Shm, session: u64, dev: u32, answer: &mut Buf) {
    let mut last = shm.u64(GC_RESP_SEQ).load(Relaxed);
    while shm.host_serves(session) {
        let seq = shm.u64(HC_CMD_SEQ).load(Acquire);
        if seq == last {
            core::hint::spin_loop();
            continue;
        }
        last = seq;
        let cmd = shm.u32(HC_CMD).load(Relaxed);
        let mut args = [0u64; N_ARGS];
        for (i, a) in args.iter_mut().enumerate() {
            *a = shm.u64(HC_ARGS + 8 * i).load(Relaxed);
        }
        shm.u32(GC_STATE).store(guest_state::BUSY, Release);
        answer.clear();
        match cmd {
            command::PING => shm.respond(seq, status::OK, &args[0].to_le_bytes()),
            command::GET_SPEC => {
                spec::write_json(answer, shm, dev);
                let st = if answer.full {
                    status::FAILED
                } else {
                    status::OK
                };
                shm.respond(seq, st, answer.as_bytes());
            }
            command::SHUTDOWN => {
                shm.respond(seq, status::OK, b"");
                shm.u32(GC_STATE).store(guest_state::EXITED, Release);
                qemu_exit(exit_code::SHUTDOWN);
            }
            command::RUN_VMEXIT => match rows::run(shm, &args) {
                Ok(ran) => {
                    // `run` accepted the row, so it has an id.
                    answer.s(r#"{"row":""#).s(row::id(args[0]).unwrap_or("?"));
                    answer
                        .s(r#"","samples":"#)
                        .u(args[1])
                        .s(r#","warmup":"#)
                        .u(args[2]);
                    answer
                        .s(r#","batch_iterations":"#)
                        .u(args[3])
                        .s(r#","batch_ticks":"#)
                        .u(ran.batch_ticks);
                    if let Some(n) = ran.executions {
                        answer.s(r#","executions":"#).u(n);
                    }
                    if let Some(n) = ran.device_writes {
                        answer.s(r#","device_writes":"#).u(n);
                    }
                    answer.s("}");
                    shm.respond(seq, status::OK, answer.as_bytes());
                }
                Err((st, msg)) => shm.respond(seq, st, msg.as_bytes()),
            },
            // Prove the fault path: an undefined instruction in ring 0 must
            // end the run with the vector and RIP on the console.
            command::SELF_TEST => {
                // SAFETY: UD2 raises #UD, which rust_exception reports before
                // ending QEMU; nothing after it runs.
                unsafe { asm!("ud2", options(nostack)) };
                shm.respond(seq, status::FAILED, b"ud2 did not fault");
            }
            _ => shm.respond(seq, status::UNKNOWN_COMMAND, b""),
        }
    }
}
