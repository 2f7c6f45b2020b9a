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
 */
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
#include <linux/uaccess.h>
#include <linux/version.h>

#include "vmbench_uapi.h"

#if LINUX_VERSION_CODE < KERNEL_VERSION(5, 10, 0)
#error "vmbench needs Linux 5.10 or newer (struct dev_pagemap.range)"
#endif

#define IVSHMEM_VENDOR 0x1af4
#define IVSHMEM_DEVICE 0x1110
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
	if (off >= d->bar2_size || len > d->bar2_size - off)
		return -EINVAL;
	vma->vm_ops = &vmb_vm_ops;
	vma->vm_private_data = d;
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

static int vmb_probe(struct pci_dev *pdev, const struct pci_device_id *id)
{
	struct vmb_dev *d;
	int err;

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

	misc_deregister(&d->misc);
	vmb_free_vectors(d);
	vmb_single = NULL;
}

static const struct pci_device_id vmb_ids[] = {
	{ PCI_DEVICE(IVSHMEM_VENDOR, IVSHMEM_DEVICE) },
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
