/* SPDX-License-Identifier: GPL-2.0 OR MIT */
/*
 * vmbench guest module: user-space interface of /dev/vmbench0.
 * Mirrored in crates/guest/src/kmod.rs; keep both in step (VMBENCH_ABI_VERSION).
 */
#ifndef VMBENCH_UAPI_H
#define VMBENCH_UAPI_H

#include <linux/ioctl.h>
#include <linux/types.h>

#define VMBENCH_ABI_VERSION 1

/* mmap offset 0 .. bar2_size: the ivshmem shared memory, mapped write-back. */

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
/* 0x10..0x1f are reserved for the VM-exit suite (timed exit loops in the kernel). */

#endif
