// SPDX-License-Identifier: MIT
/*
 * The in-process memfd dirty source (see memfd_source.h). Not a test_*.c
 * file: test_memfd_source.c and bench/migrate include it.
 */
#include "memfd_source.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096u
#define GPA_HIGH (4ull << 30)

struct writer {
	struct msrc *m;
	pthread_t th;
	unsigned int id;
	uint64_t seed;
	pthread_mutex_t lock; /* ring mode: gfns */
	uint64_t *gfns;
	size_t n, cap;
};

struct msrc {
	struct pt_dirty_source src;
	struct pt_mem_region reg[2];
	struct msrc_opts o;
	int fd;
	uint8_t *mem;
	uint64_t npages;
	_Atomic uint64_t *dirty; /* over the whole memfd */
	struct writer *w;
	atomic_ulong writes;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int pause_req, stop, paused;
	unsigned int parked;
};

static size_t words(uint64_t n)
{
	return (size_t)((n + 63) / 64);
}

static uint64_t xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Page @pg of the memfd as a GFN of the region holding it. */
static uint64_t page_gfn(struct msrc *m, uint64_t pg)
{
	uint64_t first1 = m->reg[0].size / PAGE;

	if (m->o.nregions == 2 && pg >= first1)
		return (m->reg[1].gpa_base >> 12) + pg - first1;
	return pg;
}

static void record(struct writer *w, uint64_t pg)
{
	struct msrc *m = w->m;

	if (!m->o.ring) {
		atomic_fetch_or(&m->dirty[pg / 64], 1ull << (pg % 64));
		return;
	}
	pthread_mutex_lock(&w->lock);
	if (w->n == w->cap) {
		size_t cap = w->cap ? 2 * w->cap : 1024;
		uint64_t *g = realloc(w->gfns, cap * sizeof(*g));

		if (!g)
			abort();
		w->gfns = g;
		w->cap = cap;
	}
	w->gfns[w->n++] = page_gfn(m, pg);
	pthread_mutex_unlock(&w->lock);
}

/* Writes one page: mostly a word, sometimes the whole page zeroed, so
 * pages go from data to zero and back between rounds. */
static void write_page(struct writer *w)
{
	struct msrc *m = w->m;
	uint64_t r = xorshift(&w->seed), pg = r % m->npages;
	uint64_t *p = (uint64_t *)(m->mem + pg * PAGE);

	if (r % 97 == 0)
		memset(p, 0, PAGE);
	else
		__atomic_store_n(&p[(r >> 32) % (PAGE / 8)], r | 1,
				 __ATOMIC_RELAXED);
	record(w, pg);
	atomic_fetch_add(&m->writes, 1);
}

static int park(struct msrc *m)
{
	int stop;

	pthread_mutex_lock(&m->lock);
	if (m->pause_req && !m->stop) {
		m->parked++;
		pthread_cond_broadcast(&m->cond);
		while (m->pause_req && !m->stop)
			pthread_cond_wait(&m->cond, &m->lock);
		m->parked--;
	}
	stop = m->stop;
	pthread_mutex_unlock(&m->lock);
	return stop;
}

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	struct msrc *m = w->m;
	uint64_t batch =
		m->o.rate ? (m->o.rate / 1000 ? m->o.rate / 1000 : 1) : 256;
	struct timespec ts, t0;
	uint64_t done = 0, i, due;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (!park(m)) {
		for (i = 0; i < batch; i++)
			write_page(w);
		done += batch;
		if (!m->o.rate)
			continue;
		/* Pace to the rate: sleep until this many pages are due. */
		clock_gettime(CLOCK_MONOTONIC, &ts);
		due = (uint64_t)(t0.tv_sec * 1000000000ll + t0.tv_nsec) +
		      done * 1000000000ull / m->o.rate;
		i = (uint64_t)(ts.tv_sec * 1000000000ll + ts.tv_nsec);
		if (due > i)
			usleep((useconds_t)((due - i) / 1000));
	}
	return NULL;
}

static int op_start(struct pt_dirty_source *s)
{
	struct msrc *m = (struct msrc *)s;
	unsigned int i;

	for (i = 0; i < words(m->npages); i++)
		atomic_store(&m->dirty[i], 0);
	for (i = 0; i < m->o.writers; i++) {
		pthread_mutex_lock(&m->w[i].lock);
		m->w[i].n = 0;
		pthread_mutex_unlock(&m->w[i].lock);
	}
	return 0;
}

static int harvest_ring(struct msrc *m, struct pt_dirty_sink *k)
{
	unsigned int i;
	uint64_t *g;
	size_t n;
	int r = 0;

	for (i = 0; i < m->o.writers && !r; i++) {
		struct writer *w = &m->w[i];

		pthread_mutex_lock(&w->lock);
		g = w->gfns;
		n = w->n;
		w->gfns = NULL;
		w->n = w->cap = 0;
		pthread_mutex_unlock(&w->lock);
		if (n)
			r = k->ops->ring(k, (int)i, g, n);
		free(g);
	}
	return r;
}

/* Reports the region's pages in chunks of 4096, as a VMM pushing bitmap
 * chunks would. */
static int harvest_region(struct msrc *m, struct pt_dirty_sink *k, int ri)
{
	uint64_t first = ri ? m->reg[0].size / PAGE : 0;
	uint64_t np = m->reg[ri].size / PAGE, off, n, buf[64];
	size_t i;
	int r;

	for (off = 0; off < np; off += n) {
		n = np - off < 4096 ? np - off : 4096;
		for (i = 0; i < words(n); i++)
			buf[i] = atomic_exchange(
				&m->dirty[(first + off) / 64 + i], 0);
		r = k->ops->bitmap(k, m->reg[ri].id, off, n, buf);
		if (r)
			return r;
	}
	return 0;
}

static int op_harvest(struct pt_dirty_source *s, struct pt_dirty_sink *k)
{
	struct msrc *m = (struct msrc *)s;
	unsigned int i;
	int r = 0;

	if (m->o.ring)
		return harvest_ring(m, k);
	for (i = 0; i < m->o.nregions && !r; i++)
		r = harvest_region(m, k, (int)i);
	return r;
}

static int op_pause(struct pt_dirty_source *s)
{
	struct msrc *m = (struct msrc *)s;

	pthread_mutex_lock(&m->lock);
	m->pause_req = 1;
	while (m->parked < m->o.writers)
		pthread_cond_wait(&m->cond, &m->lock);
	m->paused = 1;
	pthread_mutex_unlock(&m->lock);
	return 0;
}

static int op_resume(struct pt_dirty_source *s)
{
	struct msrc *m = (struct msrc *)s;

	pthread_mutex_lock(&m->lock);
	m->pause_req = 0;
	m->paused = 0;
	pthread_cond_broadcast(&m->cond);
	pthread_mutex_unlock(&m->lock);
	return 0;
}

static int op_stop(struct pt_dirty_source *s)
{
	(void)s;
	return 0;
}

static void op_release(struct pt_dirty_source *s)
{
	(void)s;
}

static const struct pt_dirty_source_ops msrc_ops = {
	.start = op_start,
	.harvest = op_harvest,
	.pause = op_pause,
	.resume = op_resume,
	.stop = op_stop,
	.release = op_release,
};

static void setup_regions(struct msrc *m)
{
	uint64_t half = m->o.nregions == 2 ? m->o.size / 2 : m->o.size;

	/* Ids out of gpa order, so layout order (by gpa) is exercised. */
	m->reg[0] = (struct pt_mem_region){ .id = 7,
					    .page_size = PAGE,
					    .gpa_base = 0,
					    .size = half,
					    .fd = m->fd,
					    .offset = 0,
					    .hva = m->mem };
	m->reg[1] = (struct pt_mem_region){ .id = 3,
					    .page_size = PAGE,
					    .gpa_base = GPA_HIGH,
					    .size = m->o.size - half,
					    .fd = m->fd,
					    .offset = (off_t)half,
					    .hva = m->mem + half };
	m->src.ops = &msrc_ops;
	strcpy(m->src.name, "memfd-test");
	memset(m->src.uuid, 0x5a, sizeof(m->src.uuid));
	m->src.kind = m->o.ring ? PTRACK__V1__DIRTY_SOURCE__DIRTY_SOURCE_RING
				: PTRACK__V1__DIRTY_SOURCE__DIRTY_SOURCE_BITMAP;
	m->src.vcpus = m->o.writers ? m->o.writers : 1;
	m->src.nregions = m->o.nregions;
	m->src.regions = m->reg;
}

/* Fills part of memory with data, leaving the rest zero: round 0 then
 * sends both data and zero pages. */
static void prefill(struct msrc *m)
{
	uint64_t pg, seed = 0x9e3779b97f4a7c15ull;

	if (m->o.fill_all) {
		uint64_t *w = (uint64_t *)m->mem, i;

		for (i = 0; i < m->o.size / 8; i++)
			w[i] = xorshift(&seed);
		return;
	}
	for (pg = 0; pg < m->npages; pg++)
		if (pg % 3)
			*(uint64_t *)(m->mem + pg * PAGE + (pg % 512) * 8) =
				xorshift(&seed) | 1;
}

int msrc_create(struct msrc **out, const struct msrc_opts *o)
{
	struct msrc *m = calloc(1, sizeof(*m));
	unsigned int i;
	int r = -ENOMEM;

	if (!m)
		return -ENOMEM;
	m->o = *o;
	if (!m->o.nregions)
		m->o.nregions = 1;
	if (m->o.size % (2 * 64 * PAGE))
		goto free_m;
	m->npages = m->o.size / PAGE;
	m->fd = memfd_create("msrc", MFD_CLOEXEC);
	if (m->fd < 0 || ftruncate(m->fd, (off_t)m->o.size))
		goto free_m;
	m->mem = mmap(NULL, m->o.size, PROT_READ | PROT_WRITE, MAP_SHARED,
		      m->fd, 0);
	m->dirty = calloc(words(m->npages), 8);
	m->w = calloc(m->o.writers ? m->o.writers : 1, sizeof(*m->w));
	if (m->mem == MAP_FAILED || !m->dirty || !m->w)
		goto free_m;
	pthread_mutex_init(&m->lock, NULL);
	pthread_cond_init(&m->cond, NULL);
	setup_regions(m);
	prefill(m);
	for (i = 0; i < m->o.writers; i++) {
		m->w[i] = (struct writer){ .m = m,
					   .id = i,
					   .seed = 0x1234567ull * (i + 1) };
		pthread_mutex_init(&m->w[i].lock, NULL);
		if (pthread_create(&m->w[i].th, NULL, writer_main, &m->w[i]))
			abort();
	}
	*out = m;
	return 0;
free_m:
	free(m->dirty);
	free(m->w);
	if (m->mem && m->mem != MAP_FAILED)
		munmap(m->mem, m->o.size);
	if (m->fd > 0)
		close(m->fd);
	free(m);
	return r;
}

void msrc_destroy(struct msrc *m)
{
	unsigned int i;

	pthread_mutex_lock(&m->lock);
	m->stop = 1;
	pthread_cond_broadcast(&m->cond);
	pthread_mutex_unlock(&m->lock);
	for (i = 0; i < m->o.writers; i++) {
		pthread_join(m->w[i].th, NULL);
		free(m->w[i].gfns);
	}
	munmap(m->mem, m->o.size);
	close(m->fd);
	free(m->dirty);
	free(m->w);
	free(m);
}

struct pt_dirty_source *msrc_source(struct msrc *m)
{
	return &m->src;
}

uint64_t msrc_writes(struct msrc *m)
{
	return atomic_load(&m->writes);
}

int msrc_paused(struct msrc *m)
{
	int p;

	pthread_mutex_lock(&m->lock);
	p = m->paused;
	pthread_mutex_unlock(&m->lock);
	return p;
}

const uint8_t *msrc_mem(struct msrc *m, uint64_t *size)
{
	*size = m->o.size;
	return m->mem;
}

int msrc_dump(struct msrc *m, int fd)
{
	size_t off = 0;
	ssize_t n;

	while (off < m->o.size) {
		n = write(fd, m->mem + off, m->o.size - off);
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		off += (size_t)n;
	}
	return 0;
}
