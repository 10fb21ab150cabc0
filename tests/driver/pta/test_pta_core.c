// SPDX-License-Identifier: GPL-2.0
/*
 * The model below models the documented hardware behaviour of the Page
 * Tracking Agent, driver/pta/SPEC.md, and nothing else: context matching
 * (lowest-numbered matching context, VMID8/16, CPU mask or all CPUs),
 * 16-byte little-endian entries in a ring of N slots addressed by
 * free-running 32-bit indices, drop-and-count with a sticky per-context OVF
 * when the ring is full, RING_CONS writes ignored when invalid, and an
 * optional internal buffer that only a flush empties (SPEC.md 5).
 *
 * The tests run the driver's hardware-independent core (driver/pta/
 * pta_core.c, compiled here with tests/driver/pta/kcompat.h) against it.
 */
#include "kcompat.h"

/* The core is compiled into this test, against kcompat.h. */
#include "../../../driver/pta/pta_core.c" // NOLINT(bugprone-suspicious-include)

#include "pt_test.h"

#include <stdio.h>

/* --- the model of SPEC.md ---------------------------------------------- */

#define M_BUF_MAX 64

struct model {
	struct pta_entry *ring;
	u32 log2;
	u32 prod, cons;
	u32 nctx, ncpus;
	bool vmid16;
	struct pta_ctx_cfg ctx[PTA_MAX_CTX];
	u32 ctx_lost[PTA_MAX_CTX];
	bool ctx_ovf[PTA_MAX_CTX];
	u64 lost;
	bool irq_overflow;
	/* Internal buffer: entries wait here until a flush (if buffering). */
	bool buffering;
	struct pta_entry buf[M_BUF_MAX];
	u32 nbuf;
	u32 buf_ctx[M_BUF_MAX];
	bool flush_broken;
	u32 flushes;
};

static struct model m;
static struct pta_core core;

static int m_match(u16 vmid, u32 cpu)
{
	u32 i;

	for (i = 0; i < m.nctx; i++) {
		const struct pta_ctx_cfg *c = &m.ctx[i];
		u16 mask = c->vmid16 ? 0xffff : 0xff;

		if (!c->enable || (c->vmid & mask) != (vmid & mask))
			continue;
		if (c->all_cpus || (c->cpumask >> cpu & 1))
			return i;
	}
	return -1;
}

static void m_put_ring(const struct pta_entry *e, u32 ctx)
{
	if (m.prod - m.cons == 1U << m.log2) {
		m.lost++;
		m.ctx_lost[ctx]++;
		m.ctx_ovf[ctx] = true;
		m.irq_overflow = true;
		return;
	}
	m.ring[m.prod & ((1U << m.log2) - 1)] = *e;
	__atomic_thread_fence(__ATOMIC_RELEASE);
	m.prod++;
}

/*
 * A PE with CPU id @cpu running VMID @vmid turns a DBM descriptor of size
 * 4 KiB << @size_code at @addr from clean to dirty. Returns whether it
 * matched a context.
 */
static bool m_transition(u16 vmid, u32 cpu, u64 addr, u32 size_code)
{
	struct pta_entry e;
	int ctx = m_match(vmid, cpu);

	if (ctx < 0)
		return false;
	e.addr = cpu_to_le64(addr & ~0xfffULL);
	e.info = cpu_to_le64((u64)cpu | (u64)ctx << 16 | (u64)size_code << 24 |
			     (u64)vmid << 32);
	if (m.buffering && m.nbuf < M_BUF_MAX) {
		m.buf_ctx[m.nbuf] = ctx;
		m.buf[m.nbuf++] = e;
	} else {
		m_put_ring(&e, ctx);
	}
	return true;
}

static u32 m_read_prod(void *hw)
{
	(void)hw;
	return m.prod;
}

static void m_write_cons(void *hw, u32 c)
{
	(void)hw;
	/* SPEC.md 4: ignored unless fill <= N and not going backwards. */
	if (m.prod - c > 1U << m.log2 || c - m.cons > m.prod - m.cons)
		return;
	m.cons = c;
}

static void m_ctx_program(void *hw, u32 ctx, const struct pta_ctx_cfg *cfg)
{
	(void)hw;
	m.ctx[ctx] = *cfg;
	m.ctx[ctx].cpumask &= m.ncpus == 64 ? ~0ULL : (1ULL << m.ncpus) - 1;
}

static bool m_ctx_test_clear_ovf(void *hw, u32 ctx)
{
	bool was = m.ctx_ovf[ctx];

	(void)hw;
	m.ctx_ovf[ctx] = false;
	return was;
}

static int m_flush(void *hw)
{
	u32 i;

	(void)hw;
	if (m.flush_broken)
		return -ETIMEDOUT;
	for (i = 0; i < m.nbuf; i++)
		m_put_ring(&m.buf[i], m.buf_ctx[i]);
	m.nbuf = 0;
	m.flushes++;
	return 0;
}

static const struct pta_core_hw_ops m_ops = {
	.read_prod = m_read_prod,
	.write_cons = m_write_cons,
	.ctx_program = m_ctx_program,
	.ctx_test_clear_ovf = m_ctx_test_clear_ovf,
	.flush = m_flush,
};

/* Resets the model and the core; @start presets both indices. */
static void setup(u32 log2, u32 nctx, u32 ncpus, u32 start)
{
	pta_core_fini(&core);
	free(m.ring);
	memset(&m, 0, sizeof(m));
	m.log2 = log2;
	m.ring = calloc(1U << log2, sizeof(*m.ring));
	m.nctx = nctx;
	m.ncpus = ncpus;
	m.vmid16 = true;
	m.prod = start;
	m.cons = start;
	CU_ASSERT_FATAL(m.ring != NULL);
	CU_ASSERT_FATAL(pta_core_init(&core, &m_ops, NULL, m.ring, log2, nctx,
				      ncpus, true) == 0);
	core.cons = start;
	kc_fail_alloc_after = -1;
}

static int suite_clean(void)
{
	pta_core_fini(&core);
	free(m.ring);
	memset(&m, 0, sizeof(m));
	return 0;
}

static struct pta_tracker *new_tracker(u16 vmid, u32 shift)
{
	struct pta_tracker_params p = {
		.vmid = vmid,
		.page_shift = shift,
	};
	struct pta_tracker *t = NULL;

	CU_ASSERT_FATAL(pta_tracker_alloc(&core, &p, &t) == 0);
	return t;
}

static struct pta_view *new_view(struct pta_tracker *t, u32 flags, u32 o)
{
	struct pta_view *v = NULL;

	CU_ASSERT_FATAL(pta_view_create(t, flags, o, &v) == 0);
	return v;
}

/* Reads the whole view (per @cpu) in batches of @batch into @out. */
static u32 read_all(struct pta_view *v, int cpu, u64 *out, u32 cap, u32 batch,
		    u32 *flags_or)
{
	u32 n = 0, fl;
	int r;

	*flags_or = 0;
	do {
		u32 want = cap - n < batch ? cap - n : batch;

		r = pta_view_read(v, cpu, out + n, want, &fl);
		CU_ASSERT_FATAL(r >= 0);
		n += r;
		*flags_or |= fl & PTA_READ_LOSSY;
	} while ((fl & PTA_READ_MORE) && n < cap);
	return n;
}

static int cmp_u64(const void *a, const void *b)
{
	u64 x = *(const u64 *)a, y = *(const u64 *)b;

	return x < y ? -1 : x > y;
}

/* Checks that @got (n entries) is exactly 0, step, 2*step, ... (count). */
static bool exactly_pages(u64 *got, u32 n, u64 base, u64 step, u32 count)
{
	u32 i;

	if (n != count)
		return false;
	qsort(got, n, sizeof(*got), cmp_u64);
	for (i = 0; i < n; i++)
		if (got[i] != base + i * step)
			return false;
	return true;
}

/* --- tests -------------------------------------------------------------- */

static void drain_ok(void)
{
	CU_ASSERT(pta_core_drain(&core) >= 0);
}

static void run_wrap(u32 start)
{
	static u64 got[4096];
	struct pta_tracker *t;
	struct pta_view *v;
	u32 i, n, fl;

	setup(4, 4, 2, start);
	t = new_tracker(7, 12);
	v = new_view(t, 0, 1);
	CU_ASSERT(pta_tracker_enable(t, -1) == 0);
	/* 1000 pages, 13 at a time: the 16-slot ring wraps many times. */
	for (i = 0; i < 1000; i++) {
		CU_ASSERT(m_transition(7, i % 2, 0x40000000ULL + i * 4096, 0));
		if (i % 13 == 12)
			drain_ok();
	}
	drain_ok();
	CU_ASSERT(m.cons == m.prod);
	CU_ASSERT(m.prod == start + 1000);
	CU_ASSERT(m.lost == 0);
	n = read_all(v, -1, got, 4096, 100, &fl);
	CU_ASSERT(fl == 0);
	CU_ASSERT(exactly_pages(got, n, 0x40000000ULL, 4096, 1000));
	CU_ASSERT(t->pages_logged == 1000);
	CU_ASSERT(core.stats.entries == 1000);
}

static void test_ring_wraparound(void)
{
	run_wrap(0);
}

static void test_index_wrap_2_32(void)
{
	/* Free-running indices crossing 2^32 in the middle of the run. */
	run_wrap(0xfffffe00U);
	run_wrap(0xfffffffbU);
}

static void test_overflow_marks_lossy(void)
{
	static u64 got[64];
	struct pta_tracker *t, *t2;
	struct pta_view *v, *v2;
	u32 i, n, fl;

	setup(4, 4, 2, 0);
	t = new_tracker(1, 12);
	t2 = new_tracker(2, 12);
	v = new_view(t, 0, 1);
	v2 = new_view(t2, 0, 1);
	CU_ASSERT(pta_tracker_enable(t, -1) == 0);
	CU_ASSERT(pta_tracker_enable(t2, -1) == 0);
	for (i = 0; i < 40; i++)
		m_transition(1, 0, i * 4096ULL, 0);
	CU_ASSERT(m.lost == 24);
	CU_ASSERT(m.ctx_ovf[t->ctx]);
	drain_ok();
	CU_ASSERT(!m.ctx_ovf[t->ctx]);
	CU_ASSERT(pta_core_take_overflows(&core) == 1U << t->ctx);
	CU_ASSERT(pta_core_take_overflows(&core) == 0);
	CU_ASSERT(t->overflows == 1);
	CU_ASSERT(pta_tracker_lossy(t));
	CU_ASSERT(!pta_tracker_lossy(t2));
	n = read_all(v, -1, got, 64, 64, &fl);
	CU_ASSERT(n == 16);
	CU_ASSERT(fl & PTA_READ_LOSSY);
	/* Reported once; the other tracker is not affected. */
	CU_ASSERT(!pta_tracker_lossy(t));
	n = read_all(v, -1, got, 64, 64, &fl);
	CU_ASSERT(n == 0 && fl == 0);
	n = read_all(v2, -1, got, 64, 64, &fl);
	CU_ASSERT(n == 0 && fl == 0);
	/* Logging resumes after the drain. */
	CU_ASSERT(m_transition(1, 1, 0x100000, 0));
	drain_ok();
	n = read_all(v, -1, got, 64, 64, &fl);
	CU_ASSERT(n == 1 && got[0] == 0x100000 && fl == 0);
}

static void test_consumers_do_not_steal(void)
{
	static u64 a[512], b[512];
	struct pta_tracker *t;
	struct pta_view *va, *vb;
	u32 i, na, nb, fl;

	setup(8, 4, 2, 0);
	t = new_tracker(3, 12);
	va = new_view(t, 0, 100);
	vb = new_view(t, PTA_VIEW_PER_CPU, 200);
	CU_ASSERT(pta_view_create(t, 0, 100, &va) == -EEXIST);
	CU_ASSERT(pta_view_find(t, 200) == vb);
	CU_ASSERT(pta_tracker_enable(t, -1) == 0);
	for (i = 0; i < 100; i++)
		m_transition(3, i & 1, 0x1000ULL * i, 0);
	drain_ok();
	na = read_all(va, -1, a, 512, 512, &fl);
	CU_ASSERT(exactly_pages(a, na, 0, 0x1000, 100));
	/* A's read left B's pages alone. */
	nb = read_all(vb, -1, b, 512, 512, &fl);
	CU_ASSERT(exactly_pages(b, nb, 0, 0x1000, 100));
	/* New pages go to both; A reads only what is new for it. */
	for (i = 100; i < 150; i++)
		m_transition(3, 0, 0x1000ULL * i, 0);
	drain_ok();
	na = read_all(va, -1, a, 512, 7, &fl);
	CU_ASSERT(exactly_pages(a, na, 0x1000ULL * 100, 0x1000, 50));
	nb = read_all(vb, 0, b, 512, 512, &fl);
	CU_ASSERT(exactly_pages(b, nb, 0x1000ULL * 100, 0x1000, 50));
	/* A view created now starts empty. */
	pta_view_destroy(va);
	CU_ASSERT(t->nviews == 1);
	va = new_view(t, 0, 300);
	na = read_all(va, -1, a, 512, 512, &fl);
	CU_ASSERT(na == 0);
}

static void test_per_cpu_views(void)
{
	static u64 got[256];
	struct pta_tracker *t;
	struct pta_view *v, *flat;
	u32 i, n, fl;

	setup(8, 2, 4, 0);
	t = new_tracker(9, 12);
	v = new_view(t, PTA_VIEW_PER_CPU, 1);
	flat = new_view(t, 0, 2);
	CU_ASSERT(pta_tracker_enable(t, -1) == 0);
	for (i = 0; i < 40; i++)
		m_transition(9, i % 4, 0x10000ULL + 0x1000ULL * i, 0);
	drain_ok();
	n = read_all(v, 2, got, 256, 256, &fl);
	CU_ASSERT(exactly_pages(got, n, 0x12000, 0x4000, 10));
	CU_ASSERT(pta_view_read(v, 4, got, 10, &fl) == -EINVAL);
	CU_ASSERT(pta_view_read(v, -2, got, 10, &fl) == -EINVAL);
	CU_ASSERT(pta_view_read(flat, 0, got, 10, &fl) == -EOPNOTSUPP);
	n = read_all(v, -1, got, 256, 5, &fl);
	CU_ASSERT(n == 30);
	n = read_all(flat, -1, got, 256, 256, &fl);
	CU_ASSERT(exactly_pages(got, n, 0x10000, 0x1000, 40));
}

static void test_cpu_refcounts(void)
{
	static u64 got[16];
	struct pta_tracker *t;
	struct pta_view *v;
	u32 n, fl;

	setup(8, 2, 4, 0);
	t = new_tracker(5, 12);
	v = new_view(t, 0, 1);
	CU_ASSERT(!m.ctx[t->ctx].enable);
	CU_ASSERT(!m_transition(5, 1, 0x1000, 0));
	CU_ASSERT(pta_tracker_enable(t, 1) == 0);
	CU_ASSERT(pta_tracker_enable(t, 1) == 0);
	CU_ASSERT(m.ctx[t->ctx].enable && !m.ctx[t->ctx].all_cpus);
	CU_ASSERT(m.ctx[t->ctx].cpumask == 0x2);
	CU_ASSERT(!m_transition(5, 0, 0x2000, 0));
	CU_ASSERT(m_transition(5, 1, 0x3000, 0));
	CU_ASSERT(pta_tracker_disable(t, 1) == 0);
	CU_ASSERT(m.ctx[t->ctx].cpumask == 0x2);
	CU_ASSERT(pta_tracker_enable(t, -1) == 0);
	CU_ASSERT(m.ctx[t->ctx].all_cpus);
	CU_ASSERT(m_transition(5, 0, 0x4000, 0));
	CU_ASSERT(pta_tracker_disable(t, -1) == 0);
	CU_ASSERT(!m.ctx[t->ctx].all_cpus && m.ctx[t->ctx].cpumask == 0x2);
	CU_ASSERT(pta_tracker_disable(t, 1) == 0);
	CU_ASSERT(!m.ctx[t->ctx].enable);
	CU_ASSERT(pta_tracker_disable(t, 1) == -EINVAL);
	CU_ASSERT(pta_tracker_disable(t, -1) == -EINVAL);
	CU_ASSERT(pta_tracker_enable(t, 4) == -EINVAL);
	CU_ASSERT(pta_tracker_enable(t, -2) == -EINVAL);
	t->cpu_refs[3] = U32_MAX;
	CU_ASSERT(pta_tracker_enable(t, 3) == -EOVERFLOW);
	t->cpu_refs[3] = 0;
	drain_ok();
	n = read_all(v, -1, got, 16, 16, &fl);
	CU_ASSERT(n == 2);
}

/*
 * CPU hotplug (pta_main.c): enables held for a CPU before it had an id are
 * applied at once, and a CPU going offline keeps its references and filter
 * bit while what it logged is flushed into the views, none dropped.
 */
static void test_cpu_hotplug(void)
{
	static u64 got[64];
	struct pta_tracker *t;
	struct pta_view *v, *flat;
	u32 i, n, fl, undone;

	setup(8, 2, 4, 0);
	t = new_tracker(6, 12);
	v = new_view(t, PTA_VIEW_PER_CPU, 1);
	flat = new_view(t, 0, 2);
	/* Three enables taken while CPU id 2 was offline, applied together. */
	CU_ASSERT(pta_tracker_add_refs(t, 2, 0) == 0);
	CU_ASSERT(!m.ctx[t->ctx].enable);
	CU_ASSERT(pta_tracker_add_refs(t, 2, 3) == 0);
	CU_ASSERT(t->cpu_refs[2] == 3);
	CU_ASSERT(m.ctx[t->ctx].enable && m.ctx[t->ctx].cpumask == 0x4);
	CU_ASSERT(pta_tracker_add_refs(t, 4, 1) == -EINVAL);
	CU_ASSERT(pta_tracker_add_refs(t, 2, U32_MAX) == -EOVERFLOW);
	CU_ASSERT(t->cpu_refs[2] == 3);
	CU_ASSERT(pta_tracker_add_refs(t, -1, 2) == 0 && t->all_refs == 2);
	CU_ASSERT(pta_tracker_disable(t, -1) == 0);
	CU_ASSERT(pta_tracker_disable(t, -1) == 0);
	CU_ASSERT(!m.ctx[t->ctx].all_cpus && m.ctx[t->ctx].cpumask == 0x4);

	/* CPU id 2 logs into the device's buffer, then goes offline. */
	m.buffering = true;
	for (i = 0; i < 10; i++)
		CU_ASSERT(m_transition(6, 2, 0x100000ULL + 0x1000ULL * i, 0));
	drain_ok();
	CU_ASSERT(read_all(v, 2, got, 64, 64, &fl) == 0);
	CU_ASSERT(pta_core_cpu_down(&core, 2) == 0);
	CU_ASSERT(m.flushes == 1 && core.stats.cpu_downs == 1);
	/* References and the filter bit stay until their owners drop them. */
	CU_ASSERT(t->cpu_refs[2] == 3 && m.ctx[t->ctx].cpumask == 0x4);
	/* It may still run the vCPU a moment: those writes count too. */
	CU_ASSERT(m_transition(6, 2, 0x200000ULL, 0));
	undone = 0;
	for (i = 0; i < 3; i++)
		undone += pta_tracker_disable(t, 2) == 0;
	CU_ASSERT(undone == 3 && !m.ctx[t->ctx].enable);
	CU_ASSERT(pta_core_flush(&core) == 0);
	n = read_all(v, 2, got, 64, 64, &fl);
	CU_ASSERT(fl == 0);
	CU_ASSERT(n == 11);
	n = read_all(flat, -1, got, 64, 64, &fl);
	qsort(got, n, sizeof(*got), cmp_u64);
	CU_ASSERT(n == 11 && got[n - 1] == 0x200000ULL);
	CU_ASSERT(exactly_pages(got, n - 1, 0x100000ULL, 0x1000, 10));

	/* A failed flush at offline loses nothing silently. */
	CU_ASSERT(pta_tracker_enable(t, 1) == 0);
	CU_ASSERT(m_transition(6, 1, 0x300000ULL, 0));
	m.flush_broken = true;
	CU_ASSERT(pta_core_cpu_down(&core, 1) == -ETIMEDOUT);
	n = read_all(v, 1, got, 64, 64, &fl);
	CU_ASSERT(fl & PTA_READ_LOSSY);
	CU_ASSERT(pta_core_cpu_down(&core, 4) == -EINVAL);
	CU_ASSERT(core.stats.cpu_downs == 2);
	m.flush_broken = false;
}

static void test_flush(void)
{
	static u64 got[64];
	struct pta_tracker *t;
	struct pta_view *v;
	u32 i, n, fl;

	setup(8, 2, 2, 0);
	t = new_tracker(4, 12);
	v = new_view(t, 0, 1);
	CU_ASSERT(pta_tracker_enable(t, -1) == 0);
	m.buffering = true;
	for (i = 0; i < 20; i++)
		m_transition(4, 0, 0x1000ULL * i, 0);
	/* Without a flush the buffered entries are not visible. */
	drain_ok();
	n = read_all(v, -1, got, 64, 64, &fl);
	CU_ASSERT(n == 0);
	CU_ASSERT(pta_core_flush(&core) == 0);
	CU_ASSERT(m.flushes == 1);
	n = read_all(v, -1, got, 64, 64, &fl);
	CU_ASSERT(exactly_pages(got, n, 0, 0x1000, 20));
	CU_ASSERT(fl == 0);
	/* A flush that fails makes the views lossy and reports the error. */
	m_transition(4, 0, 0x80000, 0);
	m.flush_broken = true;
	CU_ASSERT(pta_core_flush(&core) == -ETIMEDOUT);
	n = read_all(v, -1, got, 64, 64, &fl);
	CU_ASSERT(n == 0 && (fl & PTA_READ_LOSSY));
	CU_ASSERT(core.stats.errors == 1);
}

static void test_dedup_and_partial_reads(void)
{
	static u64 got[8192];
	struct pta_tracker *t;
	struct pta_view *v;
	u32 i, n, fl;

	setup(12, 2, 2, 0);
	t = new_tracker(6, 12);
	v = new_view(t, 0, 1);
	CU_ASSERT(pta_tracker_enable(t, -1) == 0);
	/* 5000 distinct pages, each logged twice (re-dirtied after clean). */
	for (i = 0; i < 5000; i++) {
		m_transition(6, 0, 0x7000000000ULL + 0x1000ULL * i, 0);
		if (i % 1000 == 999)
			drain_ok();
	}
	for (i = 0; i < 5000; i++) {
		m_transition(6, 1, 0x7000000000ULL + 0x1000ULL * i, 0);
		if (i % 1000 == 999)
			drain_ok();
	}
	CU_ASSERT(v->sets[0].count == 5000);
	CU_ASSERT(t->pages_logged == 10000);
	n = read_all(v, -1, got, 8192, 77, &fl);
	CU_ASSERT(exactly_pages(got, n, 0x7000000000ULL, 0x1000, 5000));
	CU_ASSERT(v->sets[0].count == 0);
}

static void test_view_limits_are_lossy(void)
{
	static u64 got[128];
	struct pta_tracker *t;
	struct pta_view *v, *w;
	u32 i, n, fl;

	setup(8, 2, 2, 0);
	t = new_tracker(6, 12);
	v = new_view(t, 0, 1);
	w = new_view(t, 0, 2);
	CU_ASSERT(pta_tracker_enable(t, -1) == 0);
	/* A set may not grow past 64 slots: the 64th page cannot be held. */
	core.view_max_order = 6;
	for (i = 0; i < 100; i++)
		m_transition(6, 0, 0x1000ULL * i, 0);
	drain_ok();
	n = read_all(v, -1, got, 128, 128, &fl);
	CU_ASSERT(n == 63);
	CU_ASSERT(fl & PTA_READ_LOSSY);
	/* An allocation failure while growing: lossy too. */
	core.view_max_order = PTA_SET_DEFAULT_MAX;
	pta_view_destroy(w);
	w = new_view(t, 0, 2);
	kc_fail_alloc_after = 0;
	m_transition(6, 0, 0x200000, 0);
	drain_ok();
	kc_fail_alloc_after = -1;
	n = read_all(w, -1, got, 128, 128, &fl);
	CU_ASSERT(n == 0 && (fl & PTA_READ_LOSSY));
	/* A 2 MiB block becomes 512 pages; a 1 GiB one cannot: lossy. */
	m_transition(6, 0, 0x40000000, 9);
	drain_ok();
	CU_ASSERT(pta_view_read(v, -1, got, 128, &fl) == 128);
	CU_ASSERT(fl == PTA_READ_MORE);
	n = read_all(v, -1, got, 128, 128, &fl);
	CU_ASSERT(n == 128 && fl == 0);
	CU_ASSERT(pta_view_read(v, -1, got, 128, &fl) == 128);
	CU_ASSERT(pta_view_read(v, -1, got, 128, &fl) == 128);
	CU_ASSERT(pta_view_read(v, -1, got, 128, &fl) == 1);
	CU_ASSERT(fl == 0);
	m_transition(6, 0, 0x80000000, 18);
	drain_ok();
	CU_ASSERT(pta_tracker_lossy(t));
}

static void test_vmid_filter_and_change(void)
{
	static u64 got[16];
	struct pta_tracker *t1, *t2;
	struct pta_view *v1, *v2;
	u32 n, fl;

	setup(8, 4, 2, 0);
	t1 = new_tracker(1, 12);
	t2 = new_tracker(0x101, 12);
	v1 = new_view(t1, 0, 1);
	v2 = new_view(t2, 0, 1);
	CU_ASSERT(pta_tracker_enable(t1, -1) == 0);
	CU_ASSERT(pta_tracker_enable(t2, -1) == 0);
	CU_ASSERT(!m_transition(3, 0, 0x1000, 0));
	CU_ASSERT(m_transition(0x101, 0, 0x2000, 0));
	CU_ASSERT(m_transition(1, 0, 0x3000, 0));
	CU_ASSERT(pta_tracker_set_vmid(t1, 0x55) == 0);
	CU_ASSERT(m.ctx[t1->ctx].vmid == 0x55);
	CU_ASSERT(!m_transition(1, 0, 0x4000, 0));
	CU_ASSERT(m_transition(0x55, 1, 0x5000, 0));
	drain_ok();
	n = read_all(v1, -1, got, 16, 16, &fl);
	CU_ASSERT(exactly_pages(got, n, 0x3000, 0x2000, 2));
	n = read_all(v2, -1, got, 16, 16, &fl);
	CU_ASSERT(n == 1 && got[0] == 0x2000);
}

static void test_tracker_lifetime(void)
{
	static u64 got[16];
	struct pta_tracker *t[4], *t5 = NULL, *tn;
	struct pta_tracker_params p = { .vmid = 9, .page_shift = 12 };
	struct pta_view *v;
	u32 i, n, fl;
	u32 id0;

	setup(8, 4, 2, 0);
	for (i = 0; i < 4; i++)
		t[i] = new_tracker(10 + i, 12);
	CU_ASSERT(pta_tracker_alloc(&core, &p, &t5) == -ENOSPC);
	p.page_shift = 11;
	CU_ASSERT(pta_tracker_alloc(&core, &p, &t5) == -EINVAL);
	CU_ASSERT(pta_tracker_get(&core, t[2]->id) == t[2]);
	/* Entries still in the ring when a tracker is freed are not given to
	 * the next owner of its context, even with the same VMID. */
	new_view(t[1], 0, 1);
	CU_ASSERT(pta_tracker_enable(t[1], -1) == 0);
	m.buffering = true;
	CU_ASSERT(m_transition(11, 0, 0x1000, 0));
	m_transition(11, 0, 0x2000, 0);
	m.buffering = false;
	m_transition(11, 0, 0x3000, 0);
	id0 = t[1]->id;
	pta_tracker_free(t[1]);
	CU_ASSERT(!m.ctx[1].enable);
	CU_ASSERT(pta_tracker_get(&core, id0) == NULL);
	tn = new_tracker(11, 12);
	CU_ASSERT(tn->ctx == 1 && tn->id != id0);
	v = new_view(tn, 0, 1);
	drain_ok();
	n = read_all(v, -1, got, 16, 16, &fl);
	CU_ASSERT(n == 0 && fl == 0);
	CU_ASSERT(core.ntrackers == 4);
}

static void test_bad_producer_index(void)
{
	static u64 got[16];
	struct pta_tracker *t;
	struct pta_view *v;
	u32 n, fl;

	setup(4, 2, 2, 0);
	t = new_tracker(1, 12);
	v = new_view(t, 0, 1);
	m.prod = 17; /* a broken device: fill 17 > N = 16 */
	CU_ASSERT(pta_core_drain(&core) == -EIO);
	n = read_all(v, -1, got, 16, 16, &fl);
	CU_ASSERT(n == 0 && (fl & PTA_READ_LOSSY));
	CU_ASSERT(m.cons == 17);
	/* An entry naming a CPU the device does not have: lossy, counted. */
	CU_ASSERT(pta_tracker_enable(t, -1) == 0);
	CU_ASSERT(m_transition(1, 0, 0x1000, 0));
	m.ring[(m.prod - 1) & 15].info = cpu_to_le64(5 | (u64)t->ctx << 16);
	drain_ok();
	n = read_all(v, -1, got, 16, 16, &fl);
	CU_ASSERT(n == 0 && (fl & PTA_READ_LOSSY));
	CU_ASSERT(core.stats.errors == 2);
}

/* Random writes, drains and reads: every page written is read (0 false
 * negatives) unless the read said LOSSY. */
static void test_random_no_false_negatives(void)
{
	enum { PAGES = 2048 };
	static bool dirty[2][PAGES];
	static u64 got[PAGES];
	struct pta_tracker *t[2];
	struct pta_view *v[2];
	u32 round, i, k, n, fl, lossy_reads = 0, misses = 0;

	srand(12345);
	setup(6, 2, 4, 0xffffff00U);
	memset(dirty, 0, sizeof(dirty));
	for (k = 0; k < 2; k++) {
		t[k] = new_tracker(20 + k, 12);
		v[k] = new_view(t[k], k ? PTA_VIEW_PER_CPU : 0, 1);
		CU_ASSERT(pta_tracker_enable(t[k], -1) == 0);
	}
	for (round = 0; round < 400; round++) {
		u32 writes = rand() % (round % 50 == 49 ? 200 : 40);

		for (i = 0; i < writes; i++) {
			u32 p = rand() % PAGES;

			k = rand() & 1;
			m_transition(20 + k, rand() % 4, 0x1000ULL * p, 0);
			dirty[k][p] = true;
		}
		if (rand() % 3)
			CU_ASSERT(pta_core_flush(&core) == 0);
		for (k = 0; k < 2; k++) {
			n = read_all(v[k], -1, got, PAGES, 1 + rand() % 300,
				     &fl);
			if (fl & PTA_READ_LOSSY) {
				lossy_reads++;
				memset(dirty[k], 0, sizeof(dirty[k]));
				continue;
			}
			for (i = 0; i < n; i++)
				dirty[k][got[i] / 0x1000] = false;
			if (m.prod == core.cons)
				for (i = 0; i < PAGES; i++)
					misses += dirty[k][i];
		}
	}
	CU_ASSERT(misses == 0);
	/* The 64-slot ring overflowed in the bursts and it was reported. */
	CU_ASSERT(m.lost > 0);
	CU_ASSERT(lossy_reads > 0);
	CU_ASSERT(t[0]->overflows + t[1]->overflows > 0);
}

PT_SUITE_FULL(pta_core, NULL, suite_clean, PT_TEST(test_ring_wraparound),
	      PT_TEST(test_index_wrap_2_32), PT_TEST(test_overflow_marks_lossy),
	      PT_TEST(test_consumers_do_not_steal), PT_TEST(test_per_cpu_views),
	      PT_TEST(test_cpu_refcounts), PT_TEST(test_cpu_hotplug),
	      PT_TEST(test_flush), PT_TEST(test_dedup_and_partial_reads),
	      PT_TEST(test_view_limits_are_lossy),
	      PT_TEST(test_vmid_filter_and_change),
	      PT_TEST(test_tracker_lifetime), PT_TEST(test_bad_producer_index),
	      PT_TEST(test_random_no_false_negatives))
