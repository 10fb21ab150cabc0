// SPDX-License-Identifier: GPL-2.0
/*
 * Page Tracking Agent platform driver: binds the device (DT "ptrack,pta-v1"
 * or ACPI "PTRK0001"), allocates the log ring with the DMA API, handles the
 * interrupt, and registers a page_tracking_device with KVM. See SPEC.md.
 *
 * The module is pinned by the page tracking core while trackers exist, so
 * rmmod with live trackers is refused. Unbinding the device through sysfs
 * is safe: page_tracking_device_unregister() releases the trackers, and
 * KVM then reports every logged page dirty.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/cpu.h>
#include <linux/cpuhotplug.h>
#include <linux/dma-mapping.h>
#include <linux/interrupt.h>
#include <linux/io.h>
#include <linux/log2.h>
#include <linux/mod_devicetable.h>
#include <linux/module.h>
#include <linux/platform_device.h>
#include <linux/sched.h>
#include <linux/slab.h>
#include <linux/smp.h>

#include <asm/cputype.h>

#include <uapi/linux/ptrack.h>

#include "pta.h"

static unsigned int ring_order = 16;
module_param(ring_order, uint, 0444);
MODULE_PARM_DESC(ring_order, "log2 of the number of ring entries (default 16)");

static bool fill_irq = true;
module_param(fill_irq, bool, 0444);
MODULE_PARM_DESC(fill_irq,
		 "drain on the half-full interrupt (default on; off forces overflows in tests)");

/* Protects pta_the_dev and its core; see pta.h. */
DEFINE_MUTEX(pta_lock);
struct pta_dev *pta_the_dev;

/* Multi-instance CPU hotplug state; one instance per bound device. */
static enum cpuhp_state pta_cpuhp_state;

/* Called with pta_lock held: the mapping changes when CPUs come online. */
int pta_cpu_to_id(struct pta_dev *pd, int cpu)
{
	if (cpu == PAGE_TRACKING_ALL_CPUS)
		return -1;
	if (cpu < 0 || cpu >= nr_cpu_ids || pd->cpu_to_id[cpu] < 0)
		return -EINVAL;
	return pd->cpu_to_id[cpu];
}

/* Sends an event for every tracker whose context overflowed. */
void pta_report_overflows(struct pta_dev *pd)
{
	u32 mask = pta_core_take_overflows(&pd->core);

	while (mask) {
		u32 ctx = __ffs(mask);
		struct pta_tracker *pt = pd->core.trackers[ctx];

		mask &= mask - 1;
		if (pt)
			pta_netlink_tracker_event(pd, pt,
						  PTRACK_CMD_EVENT_OVERFLOW, 0);
	}
}

/* --- page_tracking_ops ---------------------------------------------------- */

static struct pta_dev *pta_from_tracker(struct page_tracker *t)
{
	return container_of(t->dev, struct pta_dev, ptd);
}

static int pta_op_tracker_alloc(struct page_tracker *t)
{
	struct pta_dev *pd = pta_from_tracker(t);
	struct pta_tracker_params params = {
		.vmid = t->vmid,
		.mode = PTRACK_MODE_BITMAP,
		.pid = task_tgid_nr(current),
	};
	struct pta_tracker_priv *priv;
	int ret;

	if (t->mode != PAGE_TRACKING_MODE_DIRTY || !is_power_of_2(t->page_size))
		return -EINVAL;
	params.page_shift = ilog2(t->page_size);

	priv = kzalloc(sizeof(*priv), GFP_KERNEL_ACCOUNT);
	if (!priv)
		return -ENOMEM;
	priv->pending_refs = kcalloc(nr_cpu_ids, sizeof(*priv->pending_refs),
				     GFP_KERNEL_ACCOUNT);
	if (!priv->pending_refs) {
		kfree(priv);
		return -ENOMEM;
	}

	mutex_lock(&pta_lock);
	ret = pta_tracker_alloc(&pd->core, &params, &priv->pt);
	if (ret)
		goto err_unlock;
	ret = pta_view_create(priv->pt, PTA_VIEW_PER_CPU, PTA_OWNER_KVM,
			      &priv->kvm_view);
	if (ret)
		goto err_tracker;
	priv->pt->priv = priv;
	t->priv = priv;
	pta_netlink_tracker_event(pd, priv->pt, PTRACK_CMD_EVENT_TRACKER_NEW,
				  0);
	mutex_unlock(&pta_lock);
	return 0;

err_tracker:
	pta_tracker_free(priv->pt);
err_unlock:
	mutex_unlock(&pta_lock);
	kfree(priv->pending_refs);
	kfree(priv);
	return ret;
}

static void pta_op_tracker_release(struct page_tracker *t)
{
	struct pta_dev *pd = pta_from_tracker(t);
	struct pta_tracker_priv *priv = t->priv;

	mutex_lock(&pta_lock);
	pta_netlink_tracker_event(pd, priv->pt, PTRACK_CMD_EVENT_TRACKER_DEL,
				  0);
	pta_tracker_free(priv->pt);
	pta_report_overflows(pd);
	mutex_unlock(&pta_lock);
	kfree(priv->pending_refs);
	kfree(priv);
}

/*
 * Enables and disables of a CPU that has not been online since the device
 * was bound, so has no id yet, are counted in pending_refs and given to the
 * core when the CPU comes online (pta_cpu_online()).
 */
static int pta_set_pending(struct pta_dev *pd, struct pta_tracker_priv *priv,
			   int cpu, bool enable)
{
	u32 *ref;

	if (cpu < 0 || cpu >= nr_cpu_ids || !cpu_possible(cpu))
		return -EINVAL;
	ref = &priv->pending_refs[cpu];
	if (enable) {
		if (pd->cpu_to_id[cpu] != PTA_CPU_UNKNOWN)
			return -EINVAL;
		if (*ref == U32_MAX)
			return -EOVERFLOW;
		(*ref)++;
	} else {
		/* Also after the CPU turned out to have no id. */
		if (!*ref)
			return -EINVAL;
		(*ref)--;
	}
	return 0;
}

/* Enable and disable differ only in the core call; both map the CPU first. */
static int pta_op_set_cpu(struct page_tracker *t, int cpu, bool enable)
{
	struct pta_dev *pd = pta_from_tracker(t);
	struct pta_tracker_priv *priv = t->priv;
	int id, ret;

	mutex_lock(&pta_lock);
	id = pta_cpu_to_id(pd, cpu);
	if (id < -1)
		ret = pta_set_pending(pd, priv, cpu, enable);
	else if (enable)
		ret = pta_tracker_enable(priv->pt, id);
	else
		ret = pta_tracker_disable(priv->pt, id);
	mutex_unlock(&pta_lock);
	return ret;
}

static int pta_op_enable(struct page_tracker *t, int cpu)
{
	return pta_op_set_cpu(t, cpu, true);
}

static int pta_op_disable(struct page_tracker *t, int cpu)
{
	return pta_op_set_cpu(t, cpu, false);
}

static int pta_op_flush(struct page_tracker *t)
{
	struct pta_dev *pd = pta_from_tracker(t);
	int ret;

	mutex_lock(&pta_lock);
	ret = pta_core_flush(&pd->core);
	pta_report_overflows(pd);
	mutex_unlock(&pta_lock);
	return ret;
}

/*
 * Returns up to @max addresses from KVM's view. A lossy view returns
 * -EOVERFLOW once (KVM then reports every page dirty); its pages stay and
 * are returned by the next reads, which is harmless.
 */
static long pta_op_read(struct page_tracker *t, int cpu, u64 *gpas,
			size_t max)
{
	struct pta_dev *pd = pta_from_tracker(t);
	struct pta_tracker_priv *priv = t->priv;
	u32 flags;
	int id, ret;

	mutex_lock(&pta_lock);
	id = pta_cpu_to_id(pd, cpu);
	if (id < -1) {
		/* A CPU never online since the bind has logged nothing. */
		ret = cpu >= 0 && cpu < nr_cpu_ids &&
		      pd->cpu_to_id[cpu] == PTA_CPU_UNKNOWN ? 0 : id;
		mutex_unlock(&pta_lock);
		return ret;
	}
	if (id >= 0)
		priv->pt->p.mode = PTRACK_MODE_RING;
	/* Take what the device has published; flush is a separate op. */
	ret = pta_core_drain(&pd->core);
	pta_report_overflows(pd);
	if (ret >= 0)
		ret = pta_view_read(priv->kvm_view, id, gpas,
				    min_t(size_t, max, U32_MAX), &flags);
	mutex_unlock(&pta_lock);
	if (ret < 0)
		return ret;
	if (flags & PTA_READ_LOSSY)
		return -EOVERFLOW;
	return ret;
}

static int pta_op_vmid_changed(struct page_tracker *t)
{
	struct pta_dev *pd = pta_from_tracker(t);
	struct pta_tracker_priv *priv = t->priv;
	u16 old;
	int ret;

	mutex_lock(&pta_lock);
	old = priv->pt->p.vmid;
	ret = pta_tracker_set_vmid(priv->pt, t->vmid);
	if (!ret && old != t->vmid)
		pta_netlink_tracker_event(pd, priv->pt,
					  PTRACK_CMD_EVENT_VMID_CHANGED, old);
	mutex_unlock(&pta_lock);
	return ret;
}

static const struct page_tracking_ops pta_tracking_ops = {
	.tracker_alloc = pta_op_tracker_alloc,
	.tracker_release = pta_op_tracker_release,
	.enable = pta_op_enable,
	.disable = pta_op_disable,
	.flush = pta_op_flush,
	.read = pta_op_read,
	.vmid_changed = pta_op_vmid_changed,
};

/* --- interrupt ------------------------------------------------------------ */

static irqreturn_t pta_irq_thread(int irq, void *data)
{
	struct pta_dev *pd = data;
	u32 status = pta_hw_irq_status_ack(&pd->hw);

	if (!status)
		return IRQ_NONE;
	mutex_lock(&pta_lock);
	pd->irqs++;
	if (status & PTA_IRQ_ERROR) {
		dev_err_ratelimited(pd->dev, "ring write failed, status %#x\n",
				    pta_hw_status(&pd->hw));
		pd->core.stats.errors++;
		pta_core_mark_all_lossy(&pd->core);
	}
	pta_core_drain(&pd->core);
	pta_report_overflows(pd);
	mutex_unlock(&pta_lock);
	return IRQ_HANDLED;
}

/* --- CPU hotplug --------------------------------------------------------- */

static void pta_read_mpidr(void *info)
{
	*(u64 *)info = read_cpuid_mpidr() & PTA_MPIDR_MASK;
}

/* Gives the core the enables held for @cpu while it had no id. */
static void pta_apply_pending(struct pta_dev *pd, int cpu, int id)
{
	u32 ctx;

	for (ctx = 0; ctx < pd->core.nctx; ctx++) {
		struct pta_tracker *pt = pd->core.trackers[ctx];
		struct pta_tracker_priv *priv = pt ? pt->priv : NULL;

		if (!priv || !priv->pending_refs[cpu])
			continue;
		if (pta_tracker_add_refs(pt, id, priv->pending_refs[cpu]))
			dev_warn(pd->dev, "CPU%d: enables of tracker %u lost\n",
				 cpu, pt->id);
		else
			priv->pending_refs[cpu] = 0;
	}
}

/*
 * A CPU came online (or was online when the device was bound): runs on
 * that CPU, before tasks can be scheduled there. The first time, maps it
 * to the device's CPU id through CPU_MPIDR (SPEC.md 3.1) and applies the
 * enables taken for it while it had none. A mapping is kept while the CPU
 * is offline: logical CPUs keep their MPIDR.
 */
static int pta_cpu_online(unsigned int cpu, struct hlist_node *node)
{
	struct pta_dev *pd = hlist_entry_safe(node, struct pta_dev,
					      cpuhp_node);
	int id = PTA_CPU_UNTRACKED;
	u64 mpidr;
	u32 i;

	if (READ_ONCE(pd->cpu_to_id[cpu]) != PTA_CPU_UNKNOWN)
		return 0;
	if (smp_call_function_single(cpu, pta_read_mpidr, &mpidr, 1))
		return 0;
	for (i = 0; i < pd->hw.ncpus; i++) {
		if (pta_hw_cpu_mpidr(&pd->hw, i) == mpidr) {
			id = i;
			break;
		}
	}
	mutex_lock(&pta_lock);
	if (id >= 0 && pd->id_to_cpu[id] >= 0) {
		dev_warn(pd->dev, "CPU%d and CPU%d share MPIDR %#llx\n", cpu,
			 pd->id_to_cpu[id], mpidr);
		id = PTA_CPU_UNTRACKED;
	}
	WRITE_ONCE(pd->cpu_to_id[cpu], id);
	if (id >= 0) {
		pd->id_to_cpu[id] = cpu;
		pta_apply_pending(pd, cpu, id);
	}
	mutex_unlock(&pta_lock);
	if (id < 0)
		dev_warn(pd->dev, "CPU%u (MPIDR %#llx) is not tracked\n", cpu,
			 mpidr);
	else
		dev_dbg(pd->dev, "CPU%u is device CPU %d\n", cpu, id);
	return 0;
}

/*
 * A CPU is going offline: runs on it while it is still online. Flushes the
 * device and drains the ring, so that what it logged is in the views
 * (pta_core_cpu_down()); entries logged after this are drained as usual.
 */
static int pta_cpu_down_prep(unsigned int cpu, struct hlist_node *node)
{
	struct pta_dev *pd = hlist_entry_safe(node, struct pta_dev,
					      cpuhp_node);
	int id;

	mutex_lock(&pta_lock);
	id = pd->cpu_to_id[cpu];
	if (id >= 0 && pd->core.ntrackers &&
	    pta_core_cpu_down(&pd->core, id))
		dev_warn(pd->dev, "CPU%u offline: flush failed\n", cpu);
	pta_report_overflows(pd);
	mutex_unlock(&pta_lock);
	return 0;
}

static void pta_cpuhp_remove(void *data)
{
	struct pta_dev *pd = data;

	cpuhp_state_remove_instance_nocalls(pta_cpuhp_state, &pd->cpuhp_node);
}

/*
 * Maps the CPUs online now; the hotplug callbacks map the others when they
 * come online. Needs the core initialized (the callbacks drain it).
 */
static int pta_map_cpus(struct pta_dev *pd)
{
	int cpu, mapped = 0, ret;
	u32 id;

	pd->cpu_to_id = devm_kcalloc(pd->dev, nr_cpu_ids,
				     sizeof(*pd->cpu_to_id), GFP_KERNEL);
	if (!pd->cpu_to_id)
		return -ENOMEM;
	for (id = 0; id < PTA_MAX_CPUS; id++)
		pd->id_to_cpu[id] = -1;
	for (cpu = 0; cpu < nr_cpu_ids; cpu++)
		pd->cpu_to_id[cpu] = PTA_CPU_UNKNOWN;
	/* Runs pta_cpu_online() on every online CPU. */
	ret = cpuhp_state_add_instance(pta_cpuhp_state, &pd->cpuhp_node);
	if (ret)
		return ret;
	ret = devm_add_action_or_reset(pd->dev, pta_cpuhp_remove, pd);
	if (ret)
		return ret;
	mutex_lock(&pta_lock);
	for (id = 0; id < pd->hw.ncpus; id++)
		mapped += pd->id_to_cpu[id] >= 0;
	mutex_unlock(&pta_lock);
	return mapped ? 0 : -ENODEV;
}

/* --- probe and remove ---------------------------------------------------- */

static void pta_free_ring(void *data)
{
	struct pta_dev *pd = data;

	dma_free_coherent(pd->dev, pd->ring_bytes, pd->ring, pd->ring_dma);
}

static int pta_probe(struct platform_device *pdev)
{
	struct device *dev = &pdev->dev;
	struct pta_dev *pd;
	void __iomem *base;
	int ret;

	pd = devm_kzalloc(dev, sizeof(*pd), GFP_KERNEL);
	if (!pd)
		return -ENOMEM;
	pd->dev = dev;
	platform_set_drvdata(pdev, pd);

	base = devm_platform_ioremap_resource(pdev, 0);
	if (IS_ERR(base))
		return PTR_ERR(base);
	ret = pta_hw_init(&pd->hw, base);
	if (ret)
		return dev_err_probe(dev, ret, "not a PTA v1 device\n");
	ret = pta_hw_reset(&pd->hw);
	if (ret)
		return dev_err_probe(dev, ret, "reset failed\n");

	ret = dma_set_mask_and_coherent(dev, DMA_BIT_MASK(64));
	if (ret)
		return dev_err_probe(dev, ret, "no usable DMA mask\n");
	pd->ring_log2 = clamp_t(u32, ring_order, PTA_MIN_RING_LOG2,
				pd->hw.max_ring_log2);
	pd->ring_bytes = (size_t)PTA_ENTRY_SIZE << pd->ring_log2;
	pd->ring = dma_alloc_coherent(dev, pd->ring_bytes, &pd->ring_dma,
				      GFP_KERNEL);
	if (!pd->ring)
		return -ENOMEM;
	ret = devm_add_action_or_reset(dev, pta_free_ring, pd);
	if (ret)
		return ret;

	ret = pta_core_init(&pd->core, &pta_hw_core_ops, &pd->hw, pd->ring,
			    pd->ring_log2, pd->hw.nctx, pd->hw.ncpus,
			    pd->hw.caps & PTA_CAPS_VMID16);
	if (ret)
		return ret;
	ret = pta_map_cpus(pd);
	if (ret)
		return dev_err_probe(dev, ret, "cannot map CPUs\n");

	pd->irq = platform_get_irq(pdev, 0);
	if (pd->irq < 0)
		return pd->irq;
	ret = devm_request_threaded_irq(dev, pd->irq, NULL, pta_irq_thread,
					IRQF_ONESHOT, dev_name(dev), pd);
	if (ret)
		return dev_err_probe(dev, ret, "cannot request IRQ\n");

	ret = pta_hw_start(&pd->hw, pd->ring_dma, pd->ring_log2,
			   fill_irq ? 1U << (pd->ring_log2 - 1) : 0);
	if (ret) {
		dev_err(dev, "device did not start, status %#x\n",
			pta_hw_status(&pd->hw));
		goto err_stop;
	}

	mutex_lock(&pta_lock);
	if (pta_the_dev) {
		mutex_unlock(&pta_lock);
		ret = -EBUSY;
		goto err_stop;
	}
	pta_the_dev = pd;
	mutex_unlock(&pta_lock);

	pd->ptd.name = dev_name(dev);
	pd->ptd.owner = THIS_MODULE;
	pd->ptd.ops = &pta_tracking_ops;
	/* Every ring entry carries the CPU id of the PE that wrote. */
	pd->ptd.flags = PAGE_TRACKING_F_PER_CPU;
	ret = page_tracking_device_register(&pd->ptd);
	if (ret) {
		dev_err(dev, "cannot register with KVM: %d\n", ret);
		goto err_clear;
	}

	dev_info(dev, "PTA v%u.%u: %u contexts, %u CPUs, %u ring entries\n",
		 PTA_VERSION_MAJOR(pd->hw.version),
		 PTA_VERSION_MINOR(pd->hw.version), pd->hw.nctx, pd->hw.ncpus,
		 1U << pd->ring_log2);
	return 0;

err_clear:
	mutex_lock(&pta_lock);
	pta_the_dev = NULL;
	mutex_unlock(&pta_lock);
err_stop:
	pta_hw_stop(&pd->hw);
	return ret;
}

static void pta_remove(struct platform_device *pdev)
{
	struct pta_dev *pd = platform_get_drvdata(pdev);

	/* Releases live trackers through our ops; takes pta_lock itself. */
	page_tracking_device_unregister(&pd->ptd);

	mutex_lock(&pta_lock);
	pta_core_fini(&pd->core);
	pta_the_dev = NULL;
	mutex_unlock(&pta_lock);

	/* No more device writes to the ring before devm frees it. */
	pta_hw_stop(&pd->hw);
}

static const struct of_device_id pta_of_match[] = {
	{ .compatible = "ptrack,pta-v1" },
	{ }
};
MODULE_DEVICE_TABLE(of, pta_of_match);

static const struct acpi_device_id pta_acpi_match[] = {
	{ "PTRK0001" },
	{ }
};
MODULE_DEVICE_TABLE(acpi, pta_acpi_match);

static struct platform_driver pta_driver = {
	.probe = pta_probe,
	.remove = pta_remove,
	.driver = {
		.name = "ptrack-pta",
		.of_match_table = pta_of_match,
		.acpi_match_table = pta_acpi_match,
	},
};

static int __init pta_init(void)
{
	int ret;

	ret = cpuhp_setup_state_multi(CPUHP_AP_ONLINE_DYN, "ptrack/pta:online",
				      pta_cpu_online, pta_cpu_down_prep);
	if (ret < 0)
		return ret;
	pta_cpuhp_state = ret;
	ret = pta_netlink_init();
	if (ret)
		goto err_cpuhp;
	ret = platform_driver_register(&pta_driver);
	if (ret)
		goto err_netlink;
	return 0;

err_netlink:
	pta_netlink_exit();
err_cpuhp:
	cpuhp_remove_multi_state(pta_cpuhp_state);
	return ret;
}

static void __exit pta_exit(void)
{
	platform_driver_unregister(&pta_driver);
	pta_netlink_exit();
	cpuhp_remove_multi_state(pta_cpuhp_state);
}

module_init(pta_init);
module_exit(pta_exit);

MODULE_DESCRIPTION("Page Tracking Agent driver for KVM arm64 dirty tracking");
MODULE_LICENSE("GPL");
