// SPDX-License-Identifier: MIT
#include "service/meter.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const double pt_hist_bounds[PT_HIST_BUCKETS] = {
	0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
	0.01,	0.025,	 0.05,	 0.1,	0.5,	1.0,
};

uint64_t pt_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static struct pt_meter *to_meter(struct pt_dirty_sink *s)
{
	return (struct pt_meter *)s;
}

static void set_bit(uint64_t *b, uint64_t i)
{
	b[i / 64] |= 1ull << (i % 64);
}

static int region_index(const struct pt_meter *m, uint32_t id)
{
	for (size_t i = 0; i < m->src->nregions; i++)
		if (m->src->regions[i].id == id)
			return (int)i;
	return -1;
}

/* Marks global page @g in every open window (lock held). */
static void mark(struct pt_meter *m, uint64_t g, int vcpu)
{
	for (int i = 0; i < PT_METER_WINDOWS; i++) {
		struct pt_window *w = m->win[i];

		if (!w)
			continue;
		set_bit(w->bits, g);
		if (w->vbits && vcpu >= 0 && (unsigned int)vcpu < m->vcpus)
			set_bit(w->vbits[vcpu], g);
	}
}

static int sink_bitmap(struct pt_dirty_sink *s, uint32_t region, uint64_t first,
		       uint64_t n, const uint64_t *words)
{
	struct pt_meter *m = to_meter(s);
	int r = region_index(m, region);
	uint64_t base, count = 0;

	if (r < 0)
		return -EINVAL;
	base = m->pfx[r] + first;
	if (first + n > m->pfx[r + 1] - m->pfx[r])
		return -ERANGE;
	pthread_mutex_lock(&m->lock);
	for (uint64_t wi = 0; wi < (n + 63) / 64; wi++) {
		uint64_t w = words[wi];

		if (wi == n / 64 && n % 64)
			w &= (1ull << (n % 64)) - 1;
		while (w) {
			mark(m, base + wi * 64 + __builtin_ctzll(w), -1);
			w &= w - 1;
			count++;
		}
	}
	m->pages_total += count;
	pthread_mutex_unlock(&m->lock);
	return 0;
}

static int gfn_to_global(const struct pt_meter *m, uint64_t gfn, uint64_t *g)
{
	for (size_t i = 0; i < m->src->nregions; i++) {
		const struct pt_mem_region *r = &m->src->regions[i];
		uint64_t gpa = gfn << 12;

		if (gpa >= r->gpa_base && gpa - r->gpa_base < r->size) {
			*g = m->pfx[i] + (gpa - r->gpa_base) / r->page_size;
			return 0;
		}
	}
	return -ERANGE;
}

static int sink_ring(struct pt_dirty_sink *s, int vcpu, const uint64_t *gfns,
		     size_t n)
{
	struct pt_meter *m = to_meter(s);
	uint64_t g;

	pthread_mutex_lock(&m->lock);
	for (size_t i = 0; i < n; i++)
		if (!gfn_to_global(m, gfns[i], &g))
			mark(m, g, vcpu);
	/* Rings may repeat a GFN: the total counts reports, as QEMU does. */
	m->pages_total += n;
	pthread_mutex_unlock(&m->lock);
	return 0;
}

static int sink_all(struct pt_dirty_sink *s, uint32_t region)
{
	struct pt_meter *m = to_meter(s);
	int r = region_index(m, region);

	if (r < 0)
		return -EINVAL;
	pthread_mutex_lock(&m->lock);
	for (uint64_t g = m->pfx[r]; g < m->pfx[r + 1]; g++)
		mark(m, g, -1);
	m->pages_total += m->pfx[r + 1] - m->pfx[r];
	pthread_mutex_unlock(&m->lock);
	return 0;
}

static const struct pt_dirty_sink_ops meter_ops = {
	.bitmap = sink_bitmap,
	.ring = sink_ring,
	.all = sink_all,
};

int pt_meter_init(struct pt_meter *m, const struct pt_dirty_source *src)
{
	memset(m, 0, sizeof(*m));
	m->sink.ops = &meter_ops;
	m->src = src;
	m->pfx = calloc(src->nregions + 1, sizeof(*m->pfx));
	if (!m->pfx)
		return -ENOMEM;
	for (size_t i = 0; i < src->nregions; i++)
		m->pfx[i + 1] = m->pfx[i] + src->regions[i].size /
						    src->regions[i].page_size;
	m->npages = m->pfx[src->nregions];
	m->page_size = src->nregions ? src->regions[0].page_size : 4096;
	m->vcpus = src->vcpus;
	m->per_vcpu = src->kind == PTRACK__V1__DIRTY_SOURCE__DIRTY_SOURCE_RING;
	pthread_mutex_init(&m->lock, NULL);
	return 0;
}

static void window_free(const struct pt_meter *m, struct pt_window *w)
{
	if (!w)
		return;
	if (w->vbits)
		for (unsigned int i = 0; i < m->vcpus; i++)
			free(w->vbits[i]);
	free(w->vbits);
	free(w->bits);
	free(w);
}

void pt_meter_release(struct pt_meter *m)
{
	for (int i = 0; i < PT_METER_WINDOWS; i++)
		window_free(m, m->win[i]);
	free(m->pfx);
	pthread_mutex_destroy(&m->lock);
}

static struct pt_window *window_new(const struct pt_meter *m)
{
	size_t words = (m->npages + 63) / 64;
	struct pt_window *w = calloc(1, sizeof(*w));

	if (!w)
		return NULL;
	w->bits = calloc(words ? words : 1, 8);
	if (!w->bits)
		goto out_free;
	if (!m->per_vcpu)
		return w;
	w->vbits = calloc(m->vcpus, sizeof(*w->vbits));
	if (!w->vbits)
		goto out_free;
	for (unsigned int i = 0; i < m->vcpus; i++) {
		w->vbits[i] = calloc(words ? words : 1, 8);
		if (!w->vbits[i])
			goto out_free;
	}
	return w;
out_free:
	window_free(m, w);
	return NULL;
}

int pt_meter_open(struct pt_meter *m, struct pt_window **out)
{
	struct pt_window *w = window_new(m);
	int ret = -EBUSY;

	if (!w)
		return -ENOMEM;
	pthread_mutex_lock(&m->lock);
	for (int i = 0; i < PT_METER_WINDOWS; i++) {
		if (!m->win[i]) {
			m->win[i] = w;
			ret = 0;
			break;
		}
	}
	w->t0_ns = pt_now_ns();
	pthread_mutex_unlock(&m->lock);
	if (ret)
		window_free(m, w);
	else
		*out = w;
	return ret;
}

static uint64_t popcount(const uint64_t *b, uint64_t npages)
{
	uint64_t n = 0;

	for (uint64_t i = 0; i < (npages + 63) / 64; i++)
		n += (uint64_t)__builtin_popcountll(b[i]);
	return n;
}

uint64_t pt_meter_take(struct pt_meter *m, struct pt_window *w, uint64_t now_ns,
		       int restart, uint64_t *pages, uint64_t *vcpu_pages)
{
	size_t bytes = (m->npages + 63) / 64 * 8;
	uint64_t len;

	pthread_mutex_lock(&m->lock);
	len = now_ns > w->t0_ns ? now_ns - w->t0_ns : 0;
	*pages = popcount(w->bits, m->npages);
	for (unsigned int i = 0; vcpu_pages && i < m->vcpus; i++)
		vcpu_pages[i] = w->vbits ? popcount(w->vbits[i], m->npages) : 0;
	if (restart) {
		memset(w->bits, 0, bytes);
		for (unsigned int i = 0; w->vbits && i < m->vcpus; i++)
			memset(w->vbits[i], 0, bytes);
		w->t0_ns = now_ns;
	} else {
		for (int i = 0; i < PT_METER_WINDOWS; i++)
			if (m->win[i] == w)
				m->win[i] = NULL;
	}
	pthread_mutex_unlock(&m->lock);
	if (!restart)
		window_free(m, w);
	return len;
}

void pt_meter_harvest_time(struct pt_meter *m, double s)
{
	pthread_mutex_lock(&m->lock);
	m->harvests++;
	m->hist_sum += s;
	for (int i = 0; i < PT_HIST_BUCKETS; i++)
		if (s <= pt_hist_bounds[i])
			m->hist[i]++;
	pthread_mutex_unlock(&m->lock);
}
