/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * vmbench guest module: user-space interface of /dev/vmbench0.
 * Mirrored in crates/guest/src/kmod.rs; keep both in step (VMBENCH_ABI_VERSION).
 */
#ifndef VMBENCH_UAPI_H
#define VMBENCH_UAPI_H

#include <linux/ioctl.h>
#include <linux/types.h>

#define VMBENCH_ABI_VERSION 2

/* mmap offset 0 .. bar2_size: the ivshmem shared memory, mapped write-back. */
/* mmap offset VMBENCH_MMAP_TESTDEV, one page: pci-testdev's BAR0, uncached. */
#define VMBENCH_MMAP_TESTDEV (1ULL << 40)

struct vmbench_info {
	__u32 abi_version;
	__u32 revision;       /* ivshmem PCI revision */
	__u64 bar2_size;
	__u64 bar2_phys;
	__u64 bar0_phys;
	__u32 iv_position;    /* BAR0 IVPosition: this peer's id (doorbell mode) */
	__u32 msix_vectors;   /* 0 for ivshmem-plain */
	__u32 mapping;        /* VMBENCH_MAP_* of mmap() */
	__u32 pad;
};

#define VMBENCH_MAP_WB 1

struct vmbench_eventfd {
	__u32 vector;
	__s32 fd;             /* -1 detaches */
};

#define VMBENCH_IOC_MAGIC 'v'
#define VMBENCH_IOC_INFO        _IOR(VMBENCH_IOC_MAGIC, 0x00, struct vmbench_info)
/* Writes BAR0 Doorbell: bits 0..15 vector, 16..31 destination peer id. */
#define VMBENCH_IOC_DOORBELL    _IOW(VMBENCH_IOC_MAGIC, 0x01, __u32)
#define VMBENCH_IOC_SET_EVENTFD _IOW(VMBENCH_IOC_MAGIC, 0x02, struct vmbench_eventfd)

/*
 * The cache mode of the calling process's page-table entry at `addr` (a
 * page of its mapping of the shared memory, touched first): observed from
 * the PTE's PAT/PCD/PWT bits, not assumed from how the mapping was made.
 */
struct vmbench_memtype {
	__u64 addr;
	__u32 cache_mode;     /* out: VMBENCH_CACHE_* */
	__u32 pte_bits;       /* out: the PTE's PAT|PCD|PWT bits */
};

/* The kernel's enum page_cache_mode, which they mirror. */
#define VMBENCH_CACHE_WB 0
#define VMBENCH_CACHE_WC 1
#define VMBENCH_CACHE_UC_MINUS 2
#define VMBENCH_CACHE_UC 3
#define VMBENCH_CACHE_WT 4
#define VMBENCH_CACHE_WP 5

#define VMBENCH_IOC_MEMTYPE     _IOWR(VMBENCH_IOC_MAGIC, 0x03, struct vmbench_memtype)
/*
 * VM-exit suite. Instructions the module executes at CPL0. Each timed sample
 * is `lfence; rdtsc` ... <instruction> ... `rdtscp; lfence` with IRQs and
 * preemption off for the whole chunk.
 */
enum vmbench_insn {
	VMBENCH_INSN_NONE = 0,          /* empty timed region: timer overhead */
	VMBENCH_INSN_NOP = 1,           /* a non-exiting instruction */
	VMBENCH_INSN_CPUID = 2,         /* CPUID leaf 0: exit handled inside KVM */
	VMBENCH_INSN_VMCALL = 3,        /* VMCALL/VMMCALL, RAX=0: KVM hypercall handler */
	VMBENCH_INSN_OUTB = 4,          /* OUTB to `port` (debugcon: QEMU) */
	VMBENCH_INSN_INB = 5,           /* INB from `port` (0x4d0: in-kernel PIC; 0x1234: QEMU) */
	VMBENCH_INSN_RDMSR = 6,         /* RDMSR IA32_APIC_BASE: emulated by KVM */
	VMBENCH_INSN_WRMSR_TSCDL = 7,   /* WRMSR IA32_TSC_DEADLINE with its current value */
	VMBENCH_INSN_INVD = 8,          /* INVD (refused unless running under a hypervisor) */
	VMBENCH_INSN_TESTDEV = 9,       /* write the selected pci-testdev test's register */
	VMBENCH_INSN_EOI = 10,          /* local APIC EOI with nothing in service */
	VMBENCH_INSN_SELF_IPI = 11,     /* irq_work self-IPI, waited for (IRQs on) */
	VMBENCH_INSN_IPI_HALT = 12,     /* smp_call_function_single to another, idle CPU */
	VMBENCH_INSN_WRMSR_IBPB = 13,   /* WRMSR IA32_PRED_CMD = IBPB */
	VMBENCH_INSN_WRMSR_SPEC_CTRL = 14, /* WRMSR IA32_SPEC_CTRL with its current value */
	VMBENCH_INSN_MOV_CR8 = 15,      /* MOV CR8 = 0 */
	VMBENCH_INSN_COUNT
};

#define VMBENCH_MAX_SAMPLES 4096     /* per EXIT_LOOP call: bounds the IRQs-off window */
#define VMBENCH_MAX_BATCH 65536      /* per EXIT_LOOP call, untimed iterations */

struct vmbench_exit_loop {
	__u32 insn;             /* enum vmbench_insn */
	__u32 port;             /* OUTB/INB port, 0..0xffff */
	__u64 samples;          /* timed iterations, 0..VMBENCH_MAX_SAMPLES */
	__u64 samples_ptr;      /* user buffer of `samples` __u64 (ticks per iteration) */
	__u64 batch;            /* untimed back-to-back iterations, 0..VMBENCH_MAX_BATCH */
	__u64 batch_ticks;      /* out: ticks for the whole batch */
};

struct vmbench_exit_once {
	__u32 insn;
	__u32 port;
};

#define VMBENCH_IOC_EXIT_LOOP _IOWR(VMBENCH_IOC_MAGIC, 0x10, struct vmbench_exit_loop)
/* Execute the instruction once (user->kernel rows time the ioctl from user space). */
#define VMBENCH_IOC_EXIT_ONCE _IOW(VMBENCH_IOC_MAGIC, 0x11, struct vmbench_exit_once)
/* Do nothing: the null-ioctl baseline. */
#define VMBENCH_IOC_NULL      _IO(VMBENCH_IOC_MAGIC, 0x12)

/*
 * QEMU's pci-testdev (1b36:0005): select test `test` of BAR `space` (0:
 * BAR0, memory; 1: BAR1, port I/O), as VMBENCH_INSN_TESTDEV and user-space
 * writes then use it. Out: where its writes go (BAR0 offset, or the port)
 * and the value they write. -ENODEV without the device.
 */
struct vmbench_testdev {
	__u32 space;
	__u32 test;
	__u64 addr;           /* out: BAR0 offset (space 0) or port (space 1) */
	__u32 data;           /* out: the value to write */
	__u32 count;          /* out (VMBENCH_IOC_TESTDEV_COUNT): writes QEMU served */
};

#define VMBENCH_TESTDEV_MMIO 0
#define VMBENCH_TESTDEV_PIO 1

#define VMBENCH_IOC_TESTDEV_SELECT _IOWR(VMBENCH_IOC_MAGIC, 0x20, struct vmbench_testdev)
/* The selected test's count: writes QEMU's device itself served. */
#define VMBENCH_IOC_TESTDEV_COUNT  _IOWR(VMBENCH_IOC_MAGIC, 0x21, struct vmbench_testdev)

#endif
