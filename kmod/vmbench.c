// SPDX-License-Identifier: GPL-2.0
/*
 * vmbench guest module.
 *
 * Binds the ivshmem PCI device (1af4:1110) and exposes /dev/vmbench0:
 *  - mmap of BAR2 (the shared memory) WRITE-BACK. The sysfs resource2 mapping
 *    is UC- (and resource2_wc is WC): reads through them run at a fraction of
 *    memory bandwidth. BAR2 is ordinary host RAM, so WB is coherent. As Looking
 *    Glass' kvmfr does, the BAR gets struct pages (devm_memremap_pages,
 *    MEMORY_DEVICE_GENERIC) and user mappings are filled one page per fault,
 *    so the PTEs take the VMA's default WB type instead of a PAT memtype
 *    inherited from the (virtual) MTRRs of the PCI hole.
 *  - BAR0 registers: IVPosition via VMBENCH_IOC_INFO, Doorbell via ioctl.
 *  - MSI-X vectors (ivshmem-doorbell), each forwarded to an eventfd.
 *  - QEMU's pci-testdev (1b36:0005), for the MMIO and port-I/O exit rows:
 *    test selection, its BAR0 mapped uncached for user space, its count.
 *  - The VM-exit loops.
 */
#include <linux/irq_work.h>
#include <linux/smp.h>
#include <linux/eventfd.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/interrupt.h>
#include <linux/io.h>
#include <linux/memremap.h>
#include <linux/miscdevice.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/pci.h>
#include <linux/rcupdate.h>
#include <linux/slab.h>
#include <asm/msr-index.h>
#include <asm/processor.h>
#include <linux/uaccess.h>
#include <linux/version.h>

#include "vmbench_uapi.h"

#if LINUX_VERSION_CODE < KERNEL_VERSION(5, 10, 0)
#error "vmbench needs Linux 5.10 or newer (struct dev_pagemap.range)"
#endif

#define IVSHMEM_VENDOR 0x1af4
#define IVSHMEM_DEVICE 0x1110
#define TESTDEV_VENDOR 0x1b36
#define TESTDEV_DEVICE 0x0005
/* pci-testdev's header, at the start of each BAR (QEMU hw/misc/pci-testdev.c). */
#define TESTDEV_HDR_TEST 0
#define TESTDEV_HDR_OFFSET 4
#define TESTDEV_HDR_DATA 8
#define TESTDEV_HDR_COUNT 12
#define TESTDEV_TESTS 3
#define REG_IVPOSITION 8
#define REG_DOORBELL 12
#define MAX_VECTORS 64

struct vmb_vector {
	struct eventfd_ctx __rcu *ctx;
	struct vmb_dev *dev;
	int irq;
};

struct vmb_dev {
	struct pci_dev *pdev;
	void __iomem *regs;
	struct dev_pagemap pgmap;
	void *bar2;
	resource_size_t bar2_size;
	int nvec;
	struct vmb_vector vec[MAX_VECTORS];
	struct mutex lock; /* serialises eventfd attach/detach */
	struct miscdevice misc;
};

static struct vmb_dev *vmb_single;

/* pci-testdev and its selected test; `lock` serialises selection and loops. */
static struct vmb_testdev {
	struct pci_dev *pdev;
	void __iomem *mmio;
	resource_size_t mmio_phys;
	resource_size_t mmio_len;
	unsigned long port;
	bool selected;
	u32 space;
	u32 offset;
	u8 data;
} vmb_td;
static DEFINE_MUTEX(vmb_td_lock);

static void vmb_signal(struct eventfd_ctx *ctx)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 8, 0)
	eventfd_signal(ctx);
#else
	eventfd_signal(ctx, 1);
#endif
}

static irqreturn_t vmb_irq(int irq, void *arg)
{
	struct vmb_vector *v = arg;
	struct eventfd_ctx *ctx;

	rcu_read_lock();
	ctx = rcu_dereference(v->ctx);
	if (ctx)
		vmb_signal(ctx);
	rcu_read_unlock();
	return IRQ_HANDLED;
}

static vm_fault_t vmb_fault(struct vm_fault *vmf)
{
	struct vmb_dev *d = vmf->vma->vm_private_data;
	unsigned long off = vmf->pgoff << PAGE_SHIFT;

	if (off >= d->bar2_size)
		return VM_FAULT_SIGBUS;
	vmf->page = virt_to_page(d->bar2 + off);
	get_page(vmf->page);
	return 0;
}

static const struct vm_operations_struct vmb_vm_ops = {
	.fault = vmb_fault,
};

static int vmb_mmap(struct file *f, struct vm_area_struct *vma)
{
	struct vmb_dev *d = vmb_single;
	unsigned long len = vma->vm_end - vma->vm_start;
	unsigned long off = vma->vm_pgoff << PAGE_SHIFT;

	if (!d)
		return -ENODEV;
	if (!(vma->vm_flags & VM_SHARED))
		return -EINVAL;
	if (off == VMBENCH_MMAP_TESTDEV) {
		/* One page of pci-testdev's BAR0, uncached: every store exits. */
		if (!vmb_td.pdev || len != PAGE_SIZE || vmb_td.mmio_len < PAGE_SIZE)
			return -EINVAL;
		vma->vm_page_prot = pgprot_noncached(vma->vm_page_prot);
		return io_remap_pfn_range(vma, vma->vm_start, vmb_td.mmio_phys >> PAGE_SHIFT,
					  len, vma->vm_page_prot);
	}
	if (off >= d->bar2_size || len > d->bar2_size - off)
		return -EINVAL;
	vma->vm_ops = &vmb_vm_ops;
	vma->vm_private_data = d;
	return 0;
}

/* ---- VM-exit loops ---------------------------------------------------- */

static __always_inline u64 t_start(void)
{
	u32 lo, hi;

	/* The trailing LFENCE keeps the timed code from starting before RDTSC. */
	asm volatile("lfence; rdtsc; lfence" : "=a"(lo), "=d"(hi) : : "memory");
	return ((u64)hi << 32) | lo;
}

static __always_inline u64 t_end(void)
{
	u32 lo, hi, aux;

	asm volatile("rdtscp; lfence" : "=a"(lo), "=d"(hi), "=c"(aux) : : "memory");
	return ((u64)hi << 32) | lo;
}

static __always_inline void x_cpuid0(void)
{
	u32 a = 0, b, c = 0, d;

	asm volatile("cpuid" : "+a"(a), "=b"(b), "+c"(c), "=d"(d) : : "memory");
}

static __always_inline void x_vmcall(bool amd)
{
	unsigned long a = 0;

	if (amd)
		asm volatile("vmmcall" : "+a"(a) : : "memory");
	else
		asm volatile("vmcall" : "+a"(a) : : "memory");
}

static __always_inline void x_outb(u16 port)
{
	asm volatile("outb %b0, %w1" : : "a"(0), "Nd"(port) : "memory");
}

static __always_inline void x_inb(u16 port)
{
	u8 v;

	asm volatile("inb %w1, %b0" : "=a"(v) : "Nd"(port) : "memory");
}

/* Raw RDMSR/WRMSR: no paravirt hooks or tracepoints inside the timed region. */
static __always_inline u64 x_rdmsr(u32 msr)
{
	u32 lo, hi;

	asm volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr) : "memory");
	return ((u64)hi << 32) | lo;
}

static __always_inline void x_wrmsr(u32 msr, u64 v)
{
	asm volatile("wrmsr" : : "c"(msr), "a"((u32)v), "d"((u32)(v >> 32)) : "memory");
}

static __always_inline void x_outb_val(u16 port, u8 v)
{
	asm volatile("outb %b0, %w1" : : "a"(v), "Nd"(port) : "memory");
}

static __always_inline void x_mov_cr8(unsigned long v)
{
	asm volatile("mov %0, %%cr8" : : "r"(v) : "memory");
}

/* The local APIC's EOI: x2APIC MSR 0x80b, or the xAPIC page's register. */
#define X2APIC_EOI_MSR 0x80b
#define APICBASE_X2APIC (1ULL << 10)

static bool vmb_x2apic(void)
{
	return x_rdmsr(MSR_IA32_APICBASE) & APICBASE_X2APIC;
}

/* Self-IPI through irq_work: its handler runs in hard IRQ context. */
static int vmb_irq_done;

static void vmb_irq_work_fn(struct irq_work *w)
{
	WRITE_ONCE(vmb_irq_done, 1);
}

static struct irq_work vmb_irq_work = IRQ_WORK_INIT_HARD(vmb_irq_work_fn);

static __always_inline void x_self_ipi(void)
{
	WRITE_ONCE(vmb_irq_done, 0);
	irq_work_queue(&vmb_irq_work);
	while (!READ_ONCE(vmb_irq_done))
		cpu_relax();
}

static void vmb_call_nop(void *unused)
{
}

/* One loop per instruction, so no branch sits inside the timed region. */
#define VMB_TIMED(n, buf, BODY)                                   \
	do {                                                      \
		u64 _i;                                           \
		for (_i = 0; _i < (n); _i++) {                    \
			u64 _t0 = t_start();                      \
			BODY;                                     \
			(buf)[_i] = t_end() - _t0;                \
		}                                                 \
	} while (0)

#define VMB_BATCH(n, out, BODY)                                   \
	do {                                                      \
		u64 _i, _t0 = t_start();                          \
		for (_i = 0; _i < (n); _i++) {                    \
			BODY;                                     \
		}                                                 \
		*(out) = t_end() - _t0;                           \
	} while (0)

/* The samples into buf, then the untimed-count batch into a->batch_ticks. */
#define VMB_RUN(a, buf, BODY)                                     \
	do {                                                      \
		VMB_TIMED((a)->samples, buf, BODY);               \
		if ((a)->batch)                                   \
			VMB_BATCH((a)->batch, &(a)->batch_ticks, BODY); \
	} while (0)

static int vmb_check_insn(u32 insn, u32 port)
{
	if (insn >= VMBENCH_INSN_COUNT || port > 0xffff)
		return -EINVAL;
	/* INVD drops dirty cache lines on bare metal; under a hypervisor it exits. */
	if (insn == VMBENCH_INSN_INVD && !boot_cpu_has(X86_FEATURE_HYPERVISOR))
		return -EPERM;
	if (insn == VMBENCH_INSN_WRMSR_TSCDL && !boot_cpu_has(X86_FEATURE_TSC_DEADLINE_TIMER))
		return -EOPNOTSUPP;
	if (insn == VMBENCH_INSN_WRMSR_IBPB && !boot_cpu_has(X86_FEATURE_IBPB))
		return -EOPNOTSUPP;
	if (insn == VMBENCH_INSN_WRMSR_SPEC_CTRL && !boot_cpu_has(X86_FEATURE_MSR_SPEC_CTRL))
		return -EOPNOTSUPP;
	if ((insn == VMBENCH_INSN_EOI || insn == VMBENCH_INSN_SELF_IPI) &&
	    !boot_cpu_has(X86_FEATURE_APIC))
		return -EOPNOTSUPP;
	if (insn == VMBENCH_INSN_TESTDEV && !vmb_td.selected)
		return -ENODEV;
	if (insn == VMBENCH_INSN_IPI_HALT && num_online_cpus() < 2)
		return -ESRCH;
	return 0;
}

/* The rows that need interrupts on: preemption off, IRQs on. */
static bool vmb_needs_irqs(u32 insn)
{
	return insn == VMBENCH_INSN_SELF_IPI || insn == VMBENCH_INSN_IPI_HALT;
}

static void vmb_irq_loop(struct vmbench_exit_loop *a, u64 *buf)
{
	unsigned int target;

	a->batch_ticks = 0;
	preempt_disable();
	if (a->insn == VMBENCH_INSN_SELF_IPI) {
		VMB_RUN(a, buf, x_self_ipi());
	} else {
		/* Another online CPU, idle in HLT (the guest boots with idle=halt). */
		target = cpumask_any_but(cpu_online_mask, smp_processor_id());
		if (target < nr_cpu_ids)
			VMB_RUN(a, buf, smp_call_function_single(target, vmb_call_nop, NULL, 1));
	}
	preempt_enable();
}

static void vmb_loop(struct vmbench_exit_loop *a, u64 *buf)
{
	bool amd = boot_cpu_data.x86_vendor == X86_VENDOR_AMD ||
		   boot_cpu_data.x86_vendor == X86_VENDOR_HYGON;
	u16 port = a->port;
	unsigned long flags;
	u64 tscdl, future;

	a->batch_ticks = 0;
	preempt_disable();
	local_irq_save(flags);
	switch (a->insn) {
	case VMBENCH_INSN_NONE:
		VMB_RUN(a, buf, barrier());
		break;
	case VMBENCH_INSN_NOP:
		VMB_RUN(a, buf, asm volatile("nop" : : : "memory"));
		break;
	case VMBENCH_INSN_CPUID:
		VMB_RUN(a, buf, x_cpuid0());
		break;
	case VMBENCH_INSN_VMCALL:
		VMB_RUN(a, buf, x_vmcall(amd));
		break;
	case VMBENCH_INSN_OUTB:
		VMB_RUN(a, buf, x_outb(port));
		break;
	case VMBENCH_INSN_INB:
		VMB_RUN(a, buf, x_inb(port));
		break;
	case VMBENCH_INSN_RDMSR:
		VMB_RUN(a, buf, (void)x_rdmsr(MSR_IA32_APICBASE));
		break;
	case VMBENCH_INSN_WRMSR_TSCDL:
		/*
		 * One KVM path for every iteration: re-arm the same deadline far
		 * in the future (2^40 ticks: minutes), never a past or zero one
		 * (which would fire or disarm the timer instead). The kernel's own
		 * deadline is put back after the loop; if it passed meanwhile, its
		 * timer fires as soon as IRQs are on again.
		 */
		tscdl = x_rdmsr(MSR_IA32_TSC_DEADLINE);
		future = rdtsc_ordered() + (1ULL << 40);
		VMB_RUN(a, buf, x_wrmsr(MSR_IA32_TSC_DEADLINE, future));
		x_wrmsr(MSR_IA32_TSC_DEADLINE, tscdl);
		break;
	case VMBENCH_INSN_INVD:
		VMB_RUN(a, buf, asm volatile("invd" : : : "memory"));
		break;
	case VMBENCH_INSN_TESTDEV: {
		u8 v = vmb_td.data;

		if (vmb_td.space == VMBENCH_TESTDEV_MMIO) {
			void __iomem *reg = vmb_td.mmio + vmb_td.offset;

			VMB_RUN(a, buf, writeb(v, reg));
		} else {
			u16 p = vmb_td.port + vmb_td.offset;

			VMB_RUN(a, buf, x_outb_val(p, v));
		}
		break;
	}
	case VMBENCH_INSN_EOI:
		if (vmb_x2apic()) {
			VMB_RUN(a, buf, x_wrmsr(X2APIC_EOI_MSR, 0));
		} else {
			void __iomem *eoi = (void __iomem *)(APIC_BASE + APIC_EOI);

			VMB_RUN(a, buf, writel(0, eoi));
		}
		break;
	case VMBENCH_INSN_WRMSR_IBPB:
		VMB_RUN(a, buf, x_wrmsr(MSR_IA32_PRED_CMD, PRED_CMD_IBPB));
		break;
	case VMBENCH_INSN_WRMSR_SPEC_CTRL: {
		u64 v = x_rdmsr(MSR_IA32_SPEC_CTRL);

		VMB_RUN(a, buf, x_wrmsr(MSR_IA32_SPEC_CTRL, v));
		break;
	}
	case VMBENCH_INSN_MOV_CR8:
		VMB_RUN(a, buf, x_mov_cr8(0));
		break;
	}
	local_irq_restore(flags);
	preempt_enable();
}

static long vmb_exit_loop(struct vmbench_exit_loop __user *uarg)
{
	struct vmbench_exit_loop a;
	u64 *buf;
	long ret;

	if (copy_from_user(&a, uarg, sizeof(a)))
		return -EFAULT;
	if (a.samples > VMBENCH_MAX_SAMPLES || a.batch > VMBENCH_MAX_BATCH ||
	    (a.samples == 0 && a.batch == 0))
		return -EINVAL;
	ret = vmb_check_insn(a.insn, a.port);
	if (ret)
		return ret;
	/* Allocated before the loop: nothing allocates with IRQs off. */
	buf = kcalloc(max_t(u64, a.samples, 1), sizeof(u64), GFP_KERNEL);
	if (!buf)
		return -ENOMEM;
	mutex_lock(&vmb_td_lock);
	if (vmb_needs_irqs(a.insn))
		vmb_irq_loop(&a, buf);
	else
		vmb_loop(&a, buf);
	mutex_unlock(&vmb_td_lock);
	ret = 0;
	if (a.samples && copy_to_user(u64_to_user_ptr(a.samples_ptr), buf, a.samples * sizeof(u64)))
		ret = -EFAULT;
	else if (copy_to_user(uarg, &a, sizeof(a)))
		ret = -EFAULT;
	kfree(buf);
	return ret;
}

static long vmb_exit_once(struct vmbench_exit_once __user *uarg)
{
	struct vmbench_exit_once a;
	bool amd = boot_cpu_data.x86_vendor == X86_VENDOR_AMD ||
		   boot_cpu_data.x86_vendor == X86_VENDOR_HYGON;
	long ret;

	if (copy_from_user(&a, uarg, sizeof(a)))
		return -EFAULT;
	ret = vmb_check_insn(a.insn, a.port);
	if (ret)
		return ret;
	/* The user->kernel rows use the first instructions only. */
	if (a.insn > VMBENCH_INSN_INVD)
		return -EINVAL;
	/* Untimed and with IRQs on: user space times the whole ioctl. */
	switch (a.insn) {
	case VMBENCH_INSN_NONE:
		break;
	case VMBENCH_INSN_NOP:
		asm volatile("nop" : : : "memory");
		break;
	case VMBENCH_INSN_CPUID:
		x_cpuid0();
		break;
	case VMBENCH_INSN_VMCALL:
		x_vmcall(amd);
		break;
	case VMBENCH_INSN_OUTB:
		x_outb(a.port);
		break;
	case VMBENCH_INSN_INB:
		x_inb(a.port);
		break;
	case VMBENCH_INSN_RDMSR:
		(void)x_rdmsr(MSR_IA32_APICBASE);
		break;
	case VMBENCH_INSN_WRMSR_TSCDL: {
		unsigned long flags;
		u64 tscdl;

		/* As in the loop: a future deadline armed, then the kernel's put back. */
		local_irq_save(flags);
		tscdl = x_rdmsr(MSR_IA32_TSC_DEADLINE);
		x_wrmsr(MSR_IA32_TSC_DEADLINE, rdtsc_ordered() + (1ULL << 40));
		x_wrmsr(MSR_IA32_TSC_DEADLINE, tscdl);
		local_irq_restore(flags);
		break;
	}
	case VMBENCH_INSN_INVD:
		asm volatile("invd" : : : "memory");
		break;
	}
	return 0;
}

static long vmb_set_eventfd(struct vmb_dev *d, struct vmbench_eventfd __user *uarg)
{
	struct vmbench_eventfd a;
	struct eventfd_ctx *ctx = NULL, *old;

	if (copy_from_user(&a, uarg, sizeof(a)))
		return -EFAULT;
	if (a.vector >= d->nvec)
		return -EINVAL;
	if (a.fd >= 0) {
		ctx = eventfd_ctx_fdget(a.fd);
		if (IS_ERR(ctx))
			return PTR_ERR(ctx);
	} else if (a.fd != -1) {
		return -EINVAL;
	}
	mutex_lock(&d->lock);
	old = rcu_replace_pointer(d->vec[a.vector].ctx, ctx, lockdep_is_held(&d->lock));
	mutex_unlock(&d->lock);
	if (old) {
		synchronize_rcu();
		eventfd_ctx_put(old);
	}
	return 0;
}

/*
 * The cache mode of the caller's 4K PTE at a->addr: its PAT|PCD|PWT bits
 * matched against the kernel's encoding of each mode (cachemode2protval;
 * the decoding table is not exported).
 */
static long vmb_memtype(struct vmbench_memtype __user *uarg)
{
	static const enum page_cache_mode modes[] = {
		_PAGE_CACHE_MODE_WB, _PAGE_CACHE_MODE_WC, _PAGE_CACHE_MODE_UC_MINUS,
		_PAGE_CACHE_MODE_UC, _PAGE_CACHE_MODE_WT, _PAGE_CACHE_MODE_WP,
	};
	struct vmbench_memtype a;
	struct mm_struct *mm = current->mm;
	unsigned long bits;
	pgd_t *pgd;
	p4d_t *p4d;
	pud_t *pud;
	pmd_t *pmd;
	pte_t *ptep;
	long ret = -EFAULT;
	int i;

	if (copy_from_user(&a, uarg, sizeof(a)))
		return -EFAULT;
	mmap_read_lock(mm);
	pgd = pgd_offset(mm, a.addr);
	if (pgd_none(*pgd) || pgd_bad(*pgd))
		goto out;
	p4d = p4d_offset(pgd, a.addr);
	if (p4d_none(*p4d) || p4d_bad(*p4d))
		goto out;
	pud = pud_offset(p4d, a.addr);
	if (pud_none(*pud) || pud_bad(*pud))
		goto out;
	pmd = pmd_offset(pud, a.addr);
	if (pmd_none(*pmd) || pmd_bad(*pmd))
		goto out; /* also a huge page: the mapping is made of 4K pages */
	ptep = pte_offset_map(pmd, a.addr);
	if (!ptep)
		goto out;
	if (pte_present(*ptep)) {
		bits = pte_val(*ptep) & (_PAGE_PWT | _PAGE_PCD | _PAGE_PAT);
		a.pte_bits = bits;
		ret = -ENOENT;
		for (i = 0; i < ARRAY_SIZE(modes); i++) {
			if (cachemode2protval(modes[i]) == bits) {
				a.cache_mode = modes[i];
				ret = 0;
				break;
			}
		}
	}
	pte_unmap(ptep);
out:
	mmap_read_unlock(mm);
	if (ret == 0 && copy_to_user(uarg, &a, sizeof(a)))
		ret = -EFAULT;
	return ret;
}

static u8 vmb_td_read8(u32 space, u32 off)
{
	return space == VMBENCH_TESTDEV_MMIO ? readb(vmb_td.mmio + off) : inb(vmb_td.port + off);
}

static u32 vmb_td_read32(u32 space, u32 off)
{
	/* The device answers one byte per access. */
	return vmb_td_read8(space, off) | vmb_td_read8(space, off + 1) << 8 |
	       vmb_td_read8(space, off + 2) << 16 | (u32)vmb_td_read8(space, off + 3) << 24;
}

static long vmb_testdev(struct vmbench_testdev __user *uarg, bool select)
{
	struct vmbench_testdev a;
	long ret = 0;

	if (copy_from_user(&a, uarg, sizeof(a)))
		return -EFAULT;
	mutex_lock(&vmb_td_lock);
	if (!vmb_td.pdev) {
		ret = -ENODEV;
		goto out;
	}
	if (!select) {
		if (!vmb_td.selected) {
			ret = -ENODEV;
			goto out;
		}
		a.count = vmb_td_read32(vmb_td.space, TESTDEV_HDR_COUNT);
		goto out;
	}
	if (a.space > VMBENCH_TESTDEV_PIO || a.test >= TESTDEV_TESTS) {
		ret = -EINVAL;
		goto out;
	}
	if (a.space == VMBENCH_TESTDEV_MMIO)
		writeb(a.test, vmb_td.mmio + TESTDEV_HDR_TEST);
	else
		outb(a.test, vmb_td.port + TESTDEV_HDR_TEST);
	vmb_td.space = a.space;
	vmb_td.offset = vmb_td_read32(a.space, TESTDEV_HDR_OFFSET);
	vmb_td.data = vmb_td_read8(a.space, TESTDEV_HDR_DATA);
	/* The register must lie inside its BAR (the device says where). */
	if (vmb_td.offset >= (a.space == VMBENCH_TESTDEV_MMIO ? vmb_td.mmio_len :
			      pci_resource_len(vmb_td.pdev, 1))) {
		vmb_td.selected = false;
		ret = -EIO;
		goto out;
	}
	vmb_td.selected = true;
	a.addr = a.space == VMBENCH_TESTDEV_MMIO ? vmb_td.offset : vmb_td.port + vmb_td.offset;
	a.data = vmb_td.data;
	a.count = 0;
out:
	mutex_unlock(&vmb_td_lock);
	if (ret == 0 && copy_to_user(uarg, &a, sizeof(a)))
		ret = -EFAULT;
	return ret;
}

static long vmb_ioctl(struct file *f, unsigned int cmd, unsigned long arg)
{
	struct vmb_dev *d = vmb_single;
	void __user *uarg = (void __user *)arg;

	if (!d)
		return -ENODEV;
	switch (cmd) {
	case VMBENCH_IOC_INFO: {
		struct vmbench_info info = {
			.abi_version = VMBENCH_ABI_VERSION,
			.revision = d->pdev->revision,
			.bar2_size = d->bar2_size,
			.bar2_phys = pci_resource_start(d->pdev, 2),
			.bar0_phys = pci_resource_start(d->pdev, 0),
			.iv_position = readl(d->regs + REG_IVPOSITION),
			.msix_vectors = d->nvec,
			.mapping = VMBENCH_MAP_WB,
		};
		return copy_to_user(uarg, &info, sizeof(info)) ? -EFAULT : 0;
	}
	case VMBENCH_IOC_DOORBELL: {
		u32 v;

		if (get_user(v, (u32 __user *)uarg))
			return -EFAULT;
		writel(v, d->regs + REG_DOORBELL);
		return 0;
	}
	case VMBENCH_IOC_SET_EVENTFD:
		return vmb_set_eventfd(d, uarg);
	case VMBENCH_IOC_MEMTYPE:
		return vmb_memtype(uarg);
	case VMBENCH_IOC_EXIT_LOOP:
		return vmb_exit_loop(uarg);
	case VMBENCH_IOC_EXIT_ONCE:
		return vmb_exit_once(uarg);
	case VMBENCH_IOC_NULL:
		return 0;
	case VMBENCH_IOC_TESTDEV_SELECT:
		return vmb_testdev(uarg, true);
	case VMBENCH_IOC_TESTDEV_COUNT:
		return vmb_testdev(uarg, false);
	default:
		return -ENOTTY;
	}
}

static const struct file_operations vmb_fops = {
	.owner = THIS_MODULE,
	.mmap = vmb_mmap,
	.unlocked_ioctl = vmb_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.llseek = noop_llseek,
};

static void vmb_free_vectors(struct vmb_dev *d)
{
	int i;

	for (i = 0; i < d->nvec; i++) {
		struct eventfd_ctx *ctx;

		free_irq(d->vec[i].irq, &d->vec[i]);
		ctx = rcu_dereference_protected(d->vec[i].ctx, 1);
		if (ctx)
			eventfd_ctx_put(ctx);
	}
	if (d->nvec)
		pci_free_irq_vectors(d->pdev);
	d->nvec = 0;
}

static int vmb_setup_vectors(struct vmb_dev *d)
{
	int i, n, err;

	/* ivshmem-doorbell has an MSI-X BAR1; ivshmem-plain has no interrupts. */
	if (!pci_resource_len(d->pdev, 1))
		return 0;
	n = pci_alloc_irq_vectors(d->pdev, 1, MAX_VECTORS, PCI_IRQ_MSIX);
	if (n < 0)
		return n;
	for (i = 0; i < n; i++) {
		d->vec[i].dev = d;
		d->vec[i].irq = pci_irq_vector(d->pdev, i);
		RCU_INIT_POINTER(d->vec[i].ctx, NULL);
		err = request_irq(d->vec[i].irq, vmb_irq, 0, "vmbench", &d->vec[i]);
		if (err) {
			d->nvec = i;
			vmb_free_vectors(d);
			return err;
		}
		d->nvec = i + 1;
	}
	return 0;
}

/* pci-testdev: both BARs enabled and BAR0 mapped; nothing else to set up. */
static int vmb_probe_testdev(struct pci_dev *pdev)
{
	int err;

	if (vmb_td.pdev)
		return -EBUSY;
	err = pcim_enable_device(pdev);
	if (err)
		return err;
	if (!(pci_resource_flags(pdev, 0) & IORESOURCE_MEM) ||
	    !(pci_resource_flags(pdev, 1) & IORESOURCE_IO))
		return -ENODEV;
	err = pcim_iomap_regions(pdev, BIT(0) | BIT(1), "vmbench-testdev");
	if (err)
		return err;
	mutex_lock(&vmb_td_lock);
	vmb_td.mmio = pcim_iomap_table(pdev)[0];
	vmb_td.mmio_phys = pci_resource_start(pdev, 0);
	vmb_td.mmio_len = pci_resource_len(pdev, 0);
	vmb_td.port = pci_resource_start(pdev, 1);
	vmb_td.selected = false;
	vmb_td.pdev = pdev;
	mutex_unlock(&vmb_td_lock);
	dev_info(&pdev->dev, "vmbench: pci-testdev BAR0 %pa, BAR1 port %#lx\n",
		 &vmb_td.mmio_phys, vmb_td.port);
	return 0;
}

static int vmb_probe(struct pci_dev *pdev, const struct pci_device_id *id)
{
	struct vmb_dev *d;
	int err;

	if (pdev->vendor == TESTDEV_VENDOR)
		return vmb_probe_testdev(pdev);

	if (vmb_single) {
		dev_warn(&pdev->dev, "only one ivshmem device is supported\n");
		return -EBUSY;
	}
	d = devm_kzalloc(&pdev->dev, sizeof(*d), GFP_KERNEL);
	if (!d)
		return -ENOMEM;
	d->pdev = pdev;
	mutex_init(&d->lock);

	err = pcim_enable_device(pdev);
	if (err)
		return err;
	err = pcim_iomap_regions(pdev, BIT(0), "vmbench");
	if (err)
		return err;
	d->regs = pcim_iomap_table(pdev)[0];

	d->bar2_size = pci_resource_len(pdev, 2);
	if (!d->bar2_size)
		return -ENODEV;
	if (!devm_request_mem_region(&pdev->dev, pci_resource_start(pdev, 2),
				     d->bar2_size, "vmbench-shm"))
		return -EBUSY;
	d->pgmap.type = MEMORY_DEVICE_GENERIC;
	d->pgmap.range.start = pci_resource_start(pdev, 2);
	d->pgmap.range.end = pci_resource_end(pdev, 2);
	d->pgmap.nr_range = 1;
	d->bar2 = devm_memremap_pages(&pdev->dev, &d->pgmap);
	if (IS_ERR(d->bar2)) {
		dev_err(&pdev->dev, "devm_memremap_pages failed: %ld (needs CONFIG_ZONE_DEVICE)\n",
			PTR_ERR(d->bar2));
		return PTR_ERR(d->bar2);
	}

	/* MSI-X messages are memory writes by the device: without bus mastering
	 * QEMU (like real hardware) drops them and no doorbell ever arrives. */
	pci_set_master(pdev);
	err = vmb_setup_vectors(d);
	if (err)
		dev_warn(&pdev->dev, "no MSI-X vectors (%d): doorbell mode unavailable\n", err);

	d->misc.minor = MISC_DYNAMIC_MINOR;
	d->misc.name = "vmbench0";
	d->misc.fops = &vmb_fops;
	d->misc.mode = 0600;
	pci_set_drvdata(pdev, d);
	vmb_single = d;
	err = misc_register(&d->misc);
	if (err) {
		vmb_single = NULL;
		vmb_free_vectors(d);
		return err;
	}
	dev_info(&pdev->dev, "vmbench: BAR2 %pa bytes mapped write-back, %d MSI-X vector(s)\n",
		 &d->bar2_size, d->nvec);
	return 0;
}

static void vmb_remove(struct pci_dev *pdev)
{
	struct vmb_dev *d = pci_get_drvdata(pdev);

	if (pdev->vendor == TESTDEV_VENDOR) {
		mutex_lock(&vmb_td_lock);
		vmb_td.pdev = NULL;
		vmb_td.selected = false;
		mutex_unlock(&vmb_td_lock);
		return;
	}
	misc_deregister(&d->misc);
	vmb_free_vectors(d);
	vmb_single = NULL;
}

static const struct pci_device_id vmb_ids[] = {
	{ PCI_DEVICE(IVSHMEM_VENDOR, IVSHMEM_DEVICE) },
	{ PCI_DEVICE(TESTDEV_VENDOR, TESTDEV_DEVICE) },
	{ 0 }
};
MODULE_DEVICE_TABLE(pci, vmb_ids);

static struct pci_driver vmb_driver = {
	.name = "vmbench",
	.id_table = vmb_ids,
	.probe = vmb_probe,
	.remove = vmb_remove,
};
module_pci_driver(vmb_driver);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("vmbench guest: write-back ivshmem mapping, doorbell and VM-exit loops");
MODULE_VERSION("0.1");
