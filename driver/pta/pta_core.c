// SPDX-License-Identifier: GPL-2.0
/*
 * Hardware-independent core of the Page Tracking Agent driver.
 *
 * The device logs {page address, CPU id, context} entries into a ring
 * (SPEC.md). The core consumes the ring and adds each page to every view
 * of the tracker that owns the entry's context. A view is a set of page
 * addresses (per CPU id for per-CPU views), so reading one view never takes
 * pages from another, and a page written many times is held once.
 *
 * No page is lost silently: a context overflow, a view that cannot grow, a
 * block too large to expand, and any device malfunction mark the views
 * concerned lossy, and the next read of each reports PTA_READ_LOSSY.
 */
#ifdef __KERNEL__
#include <linux/errno.h>
#include <linux/limits.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <asm/barrier.h>
#include <asm/byteorder.h>
#endif

#include "pta_core.h"

#define PTA_SET_MIN_ORDER	6
#define PTA_SET_DEFAULT_MAX	22	/* 4M slots: 3M pages, 32 MiB */

/* --- page sets ------------------------------------------------------------ */

static u32 pta_set_hash(u64 key, u32 order)
{
	return (u32)((key * 0x9e3779b97f4a7c15ULL) >> (64 - order));
}

static int pta_set_resize(struct pta_pageset *s, u32 order)
{
	u64 *slots, *old = s->slots;
	u32 i, mask = (1U << order) - 1, oldn = s->order ? 1U << s->order : 0;

	slots = kvcalloc(1U << order, sizeof(*slots), GFP_KERNEL);
	if (!slots)
		return -ENOMEM;
	for (i = 0; i < oldn; i++) {
		u32 h;

		if (!old[i])
			continue;
		h = pta_set_hash(old[i], order);
		while (slots[h])
			h = (h + 1) & mask;
		slots[h] = old[i];
	}
	kvfree(old);
	s->slots = slots;
	s->order = order;
	return 0;
}

/*
 * Adds @addr (page aligned) to @s. Returns 1 if added, 0 if it was there,
 * -ENOSPC if the set is full and may not grow, -ENOMEM.
 */
static int pta_set_add(struct pta_pageset *s, u64 addr, u32 max_order)
{
	u64 key = addr | 1;
	u32 h, mask;
	int ret;

	/* Keep the load at most 3/4 so probe sequences stay short. */
	if (!s->order || (u64)(s->count + 1) * 4 > (3ULL << s->order)) {
		u32 order = s->order ? s->order + 1 : PTA_SET_MIN_ORDER;

		if (order > max_order) {
			/* Still room for a duplicate of what is there? */
			if (!s->order || s->count + 1 >= (1U << s->order))
				return -ENOSPC;
		} else {
			ret = pta_set_resize(s, order);
			if (ret)
				return ret;
		}
	}
	mask = (1U << s->order) - 1;
	h = pta_set_hash(key, s->order);
	while (s->slots[h]) {
		if (s->slots[h] == key)
			return 0;
		h = (h + 1) & mask;
	}
	if (s->count + 1 >= (1U << s->order))
		return -ENOSPC;
	s->slots[h] = key;
	s->count++;
	return 1;
}

/* Removes the key at slot @i, shifting its cluster back (linear probing). */
static void pta_set_del_slot(struct pta_pageset *s, u32 i)
{
	u32 mask = (1U << s->order) - 1, j = i;

	for (;;) {
		u32 h;

		s->slots[i] = 0;
		for (;;) {
			j = (j + 1) & mask;
			if (!s->slots[j]) {
				s->count--;
				return;
			}
			h = pta_set_hash(s->slots[j], s->order);
			/* Move slots[j] to i unless its home lies in (i, j]. */
			if (i <= j ? (i >= h || h > j) : (i >= h && h > j))
				break;
		}
		s->slots[i] = s->slots[j];
		i = j;
	}
}

/* Moves up to @max addresses from @s to @out; returns how many. */
static u32 pta_set_take(struct pta_pageset *s, u64 *out, u32 max)
{
	u32 n = 0, mask, start, k, steps;

	if (!s->count || !max)
		return 0;
	mask = (1U << s->order) - 1;
	/*
	 * Start after an empty slot: deleting shifts keys only backwards
	 * within their cluster, so a key never moves behind the scan.
	 */
	for (start = 0; s->slots[start]; start++)
		;
	k = (start + 1) & mask;
	for (steps = 0; steps <= mask && n < max && s->count; steps++) {
		while (s->slots[k] && n < max) {
			out[n++] = s->slots[k] & ~1ULL;
			pta_set_del_slot(s, k);
		}
		k = (k + 1) & mask;
	}
	return n;
}

static void pta_set_free(struct pta_pageset *s)
{
	kvfree(s->slots);
	s->slots = NULL;
	s->order = 0;
	s->count = 0;
}

/* --- views --------------------------------------------------------------- */

static void pta_view_add(struct pta_view *v, u32 cpu, u64 addr)
{
	struct pta_core *core = v->tracker->core;
	struct pta_pageset *s;
	int ret;

	if (v->flags & PTA_VIEW_PER_CPU) {
		if (cpu >= v->nsets) {
			v->lossy = true;
			return;
		}
		s = &v->sets[cpu];
	} else {
		s = &v->sets[0];
	}
	ret = pta_set_add(s, addr, core->view_max_order);
	if (ret < 0)
		v->lossy = true;
	else
		v->pages_added += ret;
}

int pta_view_create(struct pta_tracker *t, u32 flags, u32 owner,
		    struct pta_view **out)
{
	struct pta_view *v;

	if (flags & ~PTA_VIEW_PER_CPU)
		return -EINVAL;
	if (pta_view_find(t, owner))
		return -EEXIST;
	v = kzalloc(sizeof(*v), GFP_KERNEL);
	if (!v)
		return -ENOMEM;
	v->nsets = (flags & PTA_VIEW_PER_CPU) ? t->core->ncpus : 1;
	v->sets = kcalloc(v->nsets, sizeof(*v->sets), GFP_KERNEL);
	if (!v->sets) {
		kfree(v);
		return -ENOMEM;
	}
	v->tracker = t;
	v->flags = flags;
	v->owner = owner;
	v->next = t->views;
	t->views = v;
	t->nviews++;
	*out = v;
	return 0;
}

static void pta_view_free(struct pta_view *v)
{
	u32 i;

	for (i = 0; i < v->nsets; i++)
		pta_set_free(&v->sets[i]);
	kfree(v->sets);
	kfree(v);
}

void pta_view_destroy(struct pta_view *v)
{
	struct pta_tracker *t = v->tracker;
	struct pta_view **pp;

	for (pp = &t->views; *pp; pp = &(*pp)->next) {
		if (*pp == v) {
			*pp = v->next;
			t->nviews--;
			break;
		}
	}
	pta_view_free(v);
}

struct pta_view *pta_view_find(struct pta_tracker *t, u32 owner)
{
	struct pta_view *v;

	for (v = t->views; v; v = v->next)
		if (v->owner == owner)
			return v;
	return NULL;
}

/*
 * Moves up to @max page addresses of @v (of CPU id @cpu, or of every CPU
 * when @cpu is -1) to @addrs and returns how many, or -errno. *@flags gets
 * PTA_READ_LOSSY once after pages were lost (the caller must then treat
 * every page as dirty), and PTA_READ_MORE if pages remain.
 */
int pta_view_read(struct pta_view *v, int cpu, u64 *addrs, u32 max,
		  u32 *flags)
{
	u32 i, n = 0, first = 0, last = v->nsets;

	*flags = 0;
	if (cpu >= 0) {
		if (!(v->flags & PTA_VIEW_PER_CPU))
			return -EOPNOTSUPP;
		if ((u32)cpu >= v->nsets)
			return -EINVAL;
		first = cpu;
		last = cpu + 1;
	} else if (cpu != -1) {
		return -EINVAL;
	}
	if (v->lossy) {
		*flags |= PTA_READ_LOSSY;
		v->lossy = false;
	}
	for (i = first; i < last; i++) {
		n += pta_set_take(&v->sets[i], addrs + n, max - n);
		if (v->sets[i].count)
			*flags |= PTA_READ_MORE;
	}
	return n;
}

/* --- trackers and contexts ---------------------------------------------- */

static void pta_views_mark_lossy(struct pta_tracker *t)
{
	struct pta_view *v;

	for (v = t->views; v; v = v->next)
		v->lossy = true;
}

void pta_core_mark_all_lossy(struct pta_core *core)
{
	u32 i;

	for (i = 0; i < core->nctx; i++)
		if (core->trackers[i])
			pta_views_mark_lossy(core->trackers[i]);
}

static void pta_tracker_program(struct pta_tracker *t)
{
	struct pta_core *core = t->core;
	struct pta_ctx_cfg cfg = {
		.vmid16 = core->vmid16,
		.vmid = t->p.vmid,
	};
	u32 i;

	if (t->all_refs) {
		cfg.all_cpus = true;
	} else {
		for (i = 0; i < core->ncpus; i++)
			if (t->cpu_refs[i])
				cfg.cpumask |= 1ULL << i;
	}
	cfg.enable = cfg.all_cpus || cfg.cpumask;
	if (!memcmp(&cfg, &t->cfg, sizeof(cfg)))
		return;
	t->cfg = cfg;
	core->ops->ctx_program(core->hw, t->ctx, &cfg);
}

int pta_tracker_alloc(struct pta_core *core,
		      const struct pta_tracker_params *params,
		      struct pta_tracker **out)
{
	struct pta_tracker *t;
	u32 ctx;

	if (params->page_shift < 12 || params->page_shift > 30)
		return -EINVAL;
	if (!core->vmid16 && params->vmid > 0xff)
		return -EINVAL;
	for (ctx = 0; ctx < core->nctx; ctx++)
		if (!core->trackers[ctx])
			break;
	if (ctx == core->nctx)
		return -ENOSPC;
	t = kzalloc(sizeof(*t), GFP_KERNEL);
	if (!t)
		return -ENOMEM;
	t->core = core;
	t->ctx = ctx;
	t->p = *params;
	if (!++core->next_id)
		core->next_id = 1;
	t->id = core->next_id;
	/* Start from a clean context: no stale overflow from a predecessor. */
	core->ops->ctx_test_clear_ovf(core->hw, ctx);
	t->cfg.vmid = params->vmid;
	t->cfg.vmid16 = core->vmid16;
	core->ops->ctx_program(core->hw, ctx, &t->cfg);
	core->trackers[ctx] = t;
	core->ntrackers++;
	*out = t;
	return 0;
}

/*
 * Disables the context, then flushes and drains the ring so that none of
 * this tracker's entries can be given to the context's next owner.
 */
void pta_tracker_free(struct pta_tracker *t)
{
	struct pta_core *core = t->core;

	t->all_refs = 0;
	memset(t->cpu_refs, 0, sizeof(t->cpu_refs));
	pta_tracker_program(t);
	if (pta_core_flush(core))
		core->stats.errors++;
	core->ops->ctx_test_clear_ovf(core->hw, t->ctx);
	core->ovf_pending &= ~(1U << t->ctx);
	while (t->views) {
		struct pta_view *v = t->views;

		t->views = v->next;
		pta_view_free(v);
	}
	t->nviews = 0;
	core->trackers[t->ctx] = NULL;
	core->ntrackers--;
	kfree(t);
}

struct pta_tracker *pta_tracker_get(struct pta_core *core, u32 id)
{
	u32 i;

	for (i = 0; i < core->nctx; i++)
		if (core->trackers[i] && core->trackers[i]->id == id)
			return core->trackers[i];
	return NULL;
}

/* Whether a view of @t has lost pages it has not reported yet. */
bool pta_tracker_lossy(const struct pta_tracker *t)
{
	const struct pta_view *v;

	for (v = t->views; v; v = v->next)
		if (v->lossy)
			return true;
	return false;
}

/*
 * Takes @n enable references on CPU id @cpu (below ncpus), or on every CPU
 * (-1), and programs the context once. The driver uses n > 1 to apply the
 * enables it held for a CPU before that CPU came online and got its id.
 */
int pta_tracker_add_refs(struct pta_tracker *t, int cpu, u32 n)
{
	u32 *ref;

	if (cpu == -1)
		ref = &t->all_refs;
	else if (cpu >= 0 && (u32)cpu < t->core->ncpus)
		ref = &t->cpu_refs[cpu];
	else
		return -EINVAL;
	if (*ref > U32_MAX - n)
		return -EOVERFLOW;
	if (!n)
		return 0;
	*ref += n;
	pta_tracker_program(t);
	return 0;
}

/* @cpu: a CPU id below ncpus, or -1 for every CPU. Reference counted. */
int pta_tracker_enable(struct pta_tracker *t, int cpu)
{
	return pta_tracker_add_refs(t, cpu, 1);
}

int pta_tracker_disable(struct pta_tracker *t, int cpu)
{
	u32 *ref;

	if (cpu == -1)
		ref = &t->all_refs;
	else if (cpu >= 0 && (u32)cpu < t->core->ncpus)
		ref = &t->cpu_refs[cpu];
	else
		return -EINVAL;
	if (!*ref)
		return -EINVAL;
	(*ref)--;
	pta_tracker_program(t);
	return 0;
}

int pta_tracker_set_vmid(struct pta_tracker *t, u16 vmid)
{
	if (!t->core->vmid16 && vmid > 0xff)
		return -EINVAL;
	t->p.vmid = vmid;
	pta_tracker_program(t);
	return 0;
}

/* --- ring consumption ---------------------------------------------------- */

static void pta_consume(struct pta_core *core, const struct pta_entry *e)
{
	u64 addr = le64_to_cpu(READ_ONCE(e->addr)) & PTA_ENTRY_ADDR_MASK;
	u64 info = le64_to_cpu(READ_ONCE(e->info));
	u32 ctx = PTA_ENTRY_CTX(info), cpu = PTA_ENTRY_CPU(info);
	u32 shift = 12 + PTA_ENTRY_SIZE_CODE(info);
	struct pta_tracker *t;
	struct pta_view *v;
	u64 npages, i;
	u32 ps;

	core->stats.entries++;
	t = ctx < core->nctx ? core->trackers[ctx] : NULL;
	if (!t) {
		core->stats.stray++;
		return;
	}
	ps = t->p.page_shift;
	if (shift > 63 || cpu >= core->ncpus) {
		core->stats.errors++;
		pta_views_mark_lossy(t);
		return;
	}
	addr &= ~((1ULL << ps) - 1);
	npages = shift > ps ? 1ULL << (shift - ps) : 1;
	t->pages_logged += npages;
	if (npages > PTA_MAX_EXPAND) {
		pta_views_mark_lossy(t);
		return;
	}
	for (v = t->views; v; v = v->next)
		for (i = 0; i < npages; i++)
			pta_view_add(v, cpu, addr + (i << ps));
}

/*
 * Consumes every entry the device has published and checks the contexts'
 * overflow flags. Returns the number of entries consumed or -EIO if the
 * device's producer index is impossible (all views are then lossy).
 * Contexts that overflowed are added to the mask pta_core_take_overflows()
 * returns.
 */
int pta_core_drain(struct pta_core *core)
{
	u32 n = 1U << core->ring_log2, prod, fill, i;
	int ret;

	prod = core->ops->read_prod(core->hw);
	fill = prod - core->cons;
	if (fill > n) {
		core->stats.errors++;
		pta_core_mark_all_lossy(core);
		ret = -EIO;
	} else {
		/* Entries below prod are visible after this (SPEC.md 4.2). */
		dma_rmb();
		for (i = 0; i < fill; i++)
			pta_consume(core, &core->ring[(core->cons + i) & (n - 1)]);
		ret = fill;
	}
	/* Finish reading the slots before handing them back. */
	dma_mb();
	core->cons = prod;
	core->ops->write_cons(core->hw, prod);

	/* After reading RING_PROD: no drop before it goes unnoticed. */
	for (i = 0; i < core->nctx; i++) {
		struct pta_tracker *t = core->trackers[i];

		if (!core->ops->ctx_test_clear_ovf(core->hw, i) || !t)
			continue;
		t->overflows++;
		pta_views_mark_lossy(t);
		core->stats.overflows++;
		core->ovf_pending |= 1U << i;
	}
	return ret;
}

/* Flushes the device, then drains. A failed flush makes every view lossy. */
int pta_core_flush(struct pta_core *core)
{
	int ret, dret;

	core->stats.flushes++;
	ret = core->ops->flush(core->hw);
	if (ret) {
		core->stats.errors++;
		pta_core_mark_all_lossy(core);
	}
	dret = pta_core_drain(core);
	if (ret)
		return ret;
	return dret < 0 ? dret : 0;
}

/*
 * CPU id @cpu is going offline. Its enable references and its bit in the
 * contexts' CPU filters stay: the CPU may still run a vCPU until the
 * scheduler moves it away, and every enable is undone by its owner. The
 * device is flushed and the ring drained, so what the CPU logged is in the
 * views (per-CPU views keep the CPU's set, readable while it is offline);
 * entries it logs later are drained as usual. A failed flush makes every
 * view lossy (pta_core_flush()).
 */
int pta_core_cpu_down(struct pta_core *core, u32 cpu)
{
	if (cpu >= core->ncpus)
		return -EINVAL;
	core->stats.cpu_downs++;
	return pta_core_flush(core);
}

/* Returns and clears the mask of contexts that overflowed. */
u32 pta_core_take_overflows(struct pta_core *core)
{
	u32 mask = core->ovf_pending;

	core->ovf_pending = 0;
	return mask;
}

int pta_core_init(struct pta_core *core, const struct pta_core_hw_ops *ops,
		  void *hw, const struct pta_entry *ring, u32 ring_log2,
		  u32 nctx, u32 ncpus, bool vmid16)
{
	if (!nctx || nctx > PTA_MAX_CTX || !ncpus || ncpus > PTA_MAX_CPUS ||
	    ring_log2 < 1 || ring_log2 > 31)
		return -EINVAL;
	memset(core, 0, sizeof(*core));
	core->ops = ops;
	core->hw = hw;
	core->ring = ring;
	core->ring_log2 = ring_log2;
	core->nctx = nctx;
	core->ncpus = ncpus;
	core->vmid16 = vmid16;
	core->view_max_order = PTA_SET_DEFAULT_MAX;
	return 0;
}

/* Frees every tracker left (the driver refuses removal while any exist). */
void pta_core_fini(struct pta_core *core)
{
	u32 i;

	for (i = 0; i < core->nctx; i++)
		if (core->trackers[i])
			pta_tracker_free(core->trackers[i]);
}
