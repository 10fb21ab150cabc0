// SPDX-License-Identifier: MIT
/*
 * Source side of the streaming engine: iterative pre-copy of a dirty source
 * to a peer. Single threaded: it sends, and reads the peer's Acks and
 * Errors between frames, so memory stays bounded by the in-flight window.
 *
 * Every frame not yet acked is kept as a small record from which the frame
 * can be rebuilt (which pages, which bitmap chunk, which ring batch), never
 * as a copy of its bytes. Each round ends with an acked IterationDone, so
 * unacked records only ever refer to the current round's dirty set.
 *
 * Page contents of a running guest change under our feet, while a frame's
 * CRC must match what is on the wire: so pages are copied into a staging
 * buffer before the frame is built, and sent zero-copy straight from guest
 * memory only once the vCPUs are paused.
 */
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "codec/bitmap.h"
#include "codec/crc32c.h"
#include "codec/frame.h"
#include "codec/msg.h"
#include "codec/ring.h"
#include "engine/migrate.h"

#define T(name) PTRACK__V1__MSG_TYPE__MSG_TYPE_##name
#define E(name) PTRACK__V1__ERROR_CODE__ERROR_##name
#define BITMAP_CHUNK_PAGES (1ull << 20)
#define RING_CHUNK 65536
#define RX_MAX (PT_MSG_MAX + PT_FRAME_HDR_LEN + 64)

enum rec_kind {
	REC_HELLO,
	REC_BITMAP,
	REC_RING,
	REC_PAGES,
	REC_RANGE,
	REC_ITER,
	REC_COMPLETE,
	REC_STATE
};

/* What it takes to rebuild one unacked frame. */
struct rec {
	int kind;
	size_t ri; /* layout index */
	uint64_t first, count; /* bitmap chunk or page range */
	uint64_t *pages; /* page list, capacity ppf */
	size_t batch; /* ring batch index */
	Ptrack__V1__IterationDone it;
};

struct batch {
	int vcpu;
	uint64_t *gfns;
	size_t n, cap;
};

struct src {
	const struct pt_source_opts *o;
	struct pt_source_result *res;
	struct pt_dirty_source *ds;
	struct pt_dirty_sink sink;
	struct pt_layout lay;
	/* Proves a Resume comes from this session's source. */
	uint8_t secret[32];
	struct pt_mem_region *mr[PT_LAYOUT_MAX_REGIONS];
	uint64_t *dirty[PT_LAYOUT_MAX_REGIONS];
	struct batch *batches;
	size_t nbatch, capbatch;
	int got_bitmap, got_ring;

	int fd;
	struct pt_reader rd;
	struct pt_txframe tx;
	struct pt_bitmap_enc enc;
	uint8_t *stage, *ringbuf;
	uint64_t zmask[PT_PAGEDATA_MAX_PAGES / 64];
	struct rec *recs;
	unsigned int window;
	size_t ppf; /* most pages in one PageData frame */
	uint64_t next_seq, acked;
	uint64_t complete_seq; /* seq of Complete once sent, else 0 */
	uint32_t crc[PT_LAYOUT_MAX_REGIONS];
	pthread_t crc_th;
	int crc_state; /* 0: not started, 1: thread running, 2: done */

	/* Switchover: both sides can hand the guest over (FEATURE_SWITCHOVER),
	 * the VMM's state blob and whether the peer said Resumed. */
	int switchover, resumed, peer_refused;
	uint8_t *state;
	size_t state_len;
	uint32_t state_crc;

	/* Auto-converge: the throttle now, the last round's bytes on the
	 * wire, and how many rounds in a row dirtied too much. */
	unsigned int throttle;
	uint64_t prev_round_bytes;
	int high_rounds;

	uint64_t round;
	int paused;
	uint64_t t_start, send_ns, cap_t0, cap_bytes;
	uint64_t round_pages, round_zero, round_bytes;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int fail(struct src *s, int code, int err, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Records the first failure only: later ones are its consequences. */
static int fail(struct src *s, int code, int err, const char *fmt, ...)
{
	va_list ap;

	if (!s->res->err[0]) {
		s->res->code = code;
		va_start(ap, fmt);
		/* clang 14's analyzer misses va_start (a known false positive) */
		// NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized)
		vsnprintf(s->res->err, sizeof(s->res->err), fmt, ap);
		va_end(ap);
	}
	return -err;
}

/* Errors after which reconnecting and resuming makes sense. */
static int is_conn_error(int r)
{
	return r == 0 || r == -EPIPE || r == -ECONNRESET || r == -ETIMEDOUT ||
	       r == -EAGAIN || r == -ECONNREFUSED || r == -ENOTCONN ||
	       r == -EHOSTUNREACH || r == -ENETUNREACH;
}

/* ---- dirty sink: collects one round's dirty set ------------------------ */

static int region_index(struct src *s, uint32_t id)
{
	size_t i;

	for (i = 0; i < s->lay.n; i++)
		if (s->lay.r[i].id == id)
			return (int)i;
	return -1;
}

static void set_bit(uint64_t *w, uint64_t i)
{
	w[i / 64] |= 1ull << (i % 64);
}

static int sink_bitmap(struct pt_dirty_sink *k, uint32_t region, uint64_t first,
		       uint64_t npages, const uint64_t *words)
{
	struct src *s = (struct src *)((char *)k - offsetof(struct src, sink));
	int ri = region_index(s, region);
	uint64_t i, *d;

	if (ri < 0 || first > s->lay.r[ri].npages ||
	    npages > s->lay.r[ri].npages - first)
		return -ERANGE;
	d = s->dirty[ri];
	s->got_bitmap = 1;
	if (first % 64)
		goto slow;
	for (i = 0; i < pt_bitmap_words(npages); i++) {
		uint64_t v = words[i];

		/* Bits past npages would name pages that do not exist. */
		if (i == pt_bitmap_words(npages) - 1 && npages % 64)
			v &= ~0ull >> (64 - npages % 64);
		d[first / 64 + i] |= v;
	}
	return 0;
slow:
	for (i = 0; i < npages; i++)
		if ((words[i / 64] >> (i % 64)) & 1)
			set_bit(d, first + i);
	return 0;
}

static struct batch *new_batch(struct src *s, int vcpu)
{
	struct batch *arr = s->batches, *b;

	if (!arr || s->nbatch == s->capbatch) {
		size_t cap = s->capbatch ? 2 * s->capbatch : 16;

		arr = realloc(s->batches, cap * sizeof(*arr));
		if (!arr)
			return NULL;
		s->batches = arr;
		s->capbatch = cap;
	}
	b = &arr[s->nbatch++];
	*b = (struct batch){ .vcpu = vcpu };
	return b;
}

/* Appends GFNs to the round's batch of @vcpu, at most RING_CHUNK each. */
static int add_gfns(struct src *s, int vcpu, const uint64_t *g, size_t n)
{
	struct batch *b = s->nbatch ? &s->batches[s->nbatch - 1] : NULL;
	uint64_t *ng;
	size_t cap;

	if (!b || b->vcpu != vcpu || b->n + n > RING_CHUNK)
		b = new_batch(s, vcpu);
	if (!b)
		return -ENOMEM;
	if (b->n + n > b->cap) {
		cap = b->cap ? 2 * b->cap : 1024;
		while (cap < b->n + n)
			cap *= 2;
		ng = realloc(b->gfns, cap * sizeof(uint64_t));
		if (!ng)
			return -ENOMEM;
		b->gfns = ng;
		b->cap = cap;
	}
	memcpy(b->gfns + b->n, g, n * sizeof(uint64_t));
	b->n += n;
	return 0;
}

static int sink_ring(struct pt_dirty_sink *k, int vcpu, const uint64_t *gfns,
		     size_t n)
{
	struct src *s = (struct src *)((char *)k - offsetof(struct src, sink));
	uint64_t keep[256];
	size_t i, nk = 0;
	int r;

	s->got_ring = 1;
	/* GFNs outside every region cannot go on the wire (the peer would
	 * reject the frame) and hold no guest memory to send: drop them. */
	for (i = 0; i < n; i++) {
		uint64_t gpa = gfns[i] << PT_GFN_SHIFT;
		const struct pt_region *rg = pt_layout_find_gpa(&s->lay, gpa);

		if (!rg)
			continue;
		set_bit(s->dirty[rg - s->lay.r],
			(gpa - rg->gpa_base) >> rg->page_shift);
		keep[nk++] = gfns[i];
		if (nk == 256) {
			r = add_gfns(s, vcpu, keep, nk);
			if (r)
				return r;
			nk = 0;
		}
	}
	return nk ? add_gfns(s, vcpu, keep, nk) : 0;
}

static int sink_all(struct pt_dirty_sink *k, uint32_t region)
{
	struct src *s = (struct src *)((char *)k - offsetof(struct src, sink));
	int ri = region_index(s, region);
	uint64_t i;

	if (ri < 0)
		return -ERANGE;
	s->got_bitmap = 1;
	for (i = 0; i < s->lay.r[ri].npages; i++)
		set_bit(s->dirty[ri], i);
	return 0;
}

static const struct pt_dirty_sink_ops sink_ops = {
	.bitmap = sink_bitmap,
	.ring = sink_ring,
	.all = sink_all,
};

static void clear_round(struct src *s)
{
	size_t i;

	/* Also on teardown after a set-up that stopped half way. */
	for (i = 0; i < s->lay.n; i++)
		if (s->dirty[i])
			memset(s->dirty[i], 0,
			       pt_bitmap_words(s->lay.r[i].npages) * 8);
	for (i = 0; i < s->nbatch; i++)
		free(s->batches[i].gfns);
	s->nbatch = 0;
	s->got_bitmap = s->got_ring = 0;
}

static uint64_t count_dirty(struct src *s, uint64_t *bytes)
{
	uint64_t n = 0, c;
	size_t i;

	*bytes = 0;
	for (i = 0; i < s->lay.n; i++) {
		c = pt_bitmap_count(s->dirty[i],
				    pt_bitmap_words(s->lay.r[i].npages));
		n += c;
		*bytes += c * s->lay.r[i].page_size;
	}
	return n;
}

/* ---- building frames from records ------------------------------------- */

static int send_built(struct src *s)
{
	int r = pt_frame_send(s->fd, &s->tx);

	if (r)
		return r;
	s->res->bytes += s->tx.len;
	s->round_bytes += s->tx.len;
	return 0;
}

static int build_hello(struct src *s, uint64_t seq, uint16_t flags,
		       struct pt_error *e)
{
	Ptrack__V1__Hello h = PTRACK__V1__HELLO__INIT;
	Ptrack__V1__Region rg[PT_LAYOUT_MAX_REGIONS],
		*rp[PT_LAYOUT_MAX_REGIONS];
	size_t i;

	for (i = 0; i < s->lay.n; i++) {
		ptrack__v1__region__init(&rg[i]);
		rg[i].id = s->lay.r[i].id;
		rg[i].gpa_base = s->lay.r[i].gpa_base;
		rg[i].size = s->lay.r[i].size;
		rg[i].page_size = s->lay.r[i].page_size;
		rp[i] = &rg[i];
	}
	h.version = PT_PROTO_VERSION;
	h.role = PTRACK__V1__ROLE__ROLE_SOURCE;
	h.vm_name = s->ds->name;
	h.vm_uuid.data = s->ds->uuid;
	h.vm_uuid.len = 16;
	h.n_regions = s->lay.n;
	h.regions = rp;
	h.vcpus = s->ds->vcpus ? s->ds->vcpus : 1;
	h.dirty_source =
		s->ds->kind ? s->ds->kind
			    : PTRACK__V1__DIRTY_SOURCE__DIRTY_SOURCE_BITMAP;
	h.features = PTRACK__V1__FEATURE__FEATURE_RLE_BITMAP |
		     PTRACK__V1__FEATURE__FEATURE_ZERO_PAGES |
		     PTRACK__V1__FEATURE__FEATURE_RESUME;
	if (s->ds->ops->save_state && !s->o->copy_only)
		h.features |= PTRACK__V1__FEATURE__FEATURE_SWITCHOVER;
	h.session_id = s->res->session_id;
	h.resume_secret.data = s->secret;
	h.resume_secret.len = sizeof(s->secret);
	return pt_frame_build(&s->tx, T(HELLO), flags, seq, &h.base, NULL, 0,
			      PT_FRAME_MAX_DEFAULT, e);
}

static int build_bitmap(struct src *s, const struct rec *c, uint64_t seq,
			uint16_t flags, struct pt_error *e)
{
	Ptrack__V1__DirtyBitmap b = PTRACK__V1__DIRTY_BITMAP__INIT;
	const uint64_t *w = s->dirty[c->ri] + c->first / 64;
	struct iovec iov;
	int r = pt_bitmap_encode(&s->enc, w, c->count, s->o->force_raw_bitmap);

	if (r)
		return r;
	b.region = s->lay.r[c->ri].id;
	b.first_page = c->first;
	b.page_count = c->count;
	b.encoding = s->enc.encoding;
	b.dirty_count = s->enc.dirty;
	b.round = s->round;
	iov.iov_base = (void *)s->enc.data;
	iov.iov_len = s->enc.len;
	return pt_frame_build(&s->tx, T(DIRTY_BITMAP), flags, seq, &b.base,
			      &iov, 1, PT_FRAME_MAX_DEFAULT, e);
}

static int build_ring(struct src *s, const struct rec *c, uint64_t seq,
		      uint16_t flags, struct pt_error *e)
{
	Ptrack__V1__DirtyRing m = PTRACK__V1__DIRTY_RING__INIT;
	struct batch *b = &s->batches[c->batch];
	struct iovec iov;
	size_t count;

	iov.iov_base = s->ringbuf;
	iov.iov_len = pt_ring_encode(b->gfns, b->n, s->ringbuf, &count);
	m.vcpu = (uint32_t)b->vcpu;
	m.batch_seq = c->batch;
	m.count = count;
	m.round = s->round;
	return pt_frame_build(&s->tx, T(DIRTY_RING), flags, seq, &m.base, &iov,
			      1, PT_FRAME_MAX_DEFAULT, e);
}

static int page_is_zero(const uint8_t *p, size_t len)
{
	const uint64_t *w = (const uint64_t *)p;
	size_t i;

	for (i = 0; i < len / 8; i++)
		if (w[i])
			return 0;
	return 1;
}

struct payload {
	struct iovec iov[PT_TX_PAYLOAD_IOV_MAX];
	int n;
	size_t staged;
};

static void add_piece(struct payload *p, uint8_t *ptr, size_t len)
{
	struct iovec *last = p->n ? &p->iov[p->n - 1] : NULL;

	if (last && (uint8_t *)last->iov_base + last->iov_len == ptr) {
		last->iov_len += len;
		return;
	}
	p->iov[p->n].iov_base = ptr;
	p->iov[p->n++].iov_len = len;
}

/*
 * Adds page @idx to the payload, or flags it in zmask bit @i. A running
 * guest's page is copied first and checked on the copy, so the frame's
 * CRC, zero flag and data agree; a paused guest's is sent in place.
 */
static void add_page(struct src *s, struct payload *p, size_t ri, uint64_t idx,
		     size_t i)
{
	size_t ps = s->lay.r[ri].page_size;
	uint8_t *src = s->mr[ri]->hva + idx * ps, *dst;

	if (s->paused && p->n < PT_TX_PAYLOAD_IOV_MAX - 1) {
		if (page_is_zero(src, ps))
			s->zmask[i / 64] |= 1ull << (i % 64);
		else
			add_piece(p, src, ps);
		return;
	}
	dst = s->stage + p->staged;
	memcpy(dst, src, ps);
	if (page_is_zero(dst, ps)) {
		s->zmask[i / 64] |= 1ull << (i % 64);
		return;
	}
	p->staged += ps;
	add_piece(p, dst, ps);
}

static int build_pages(struct src *s, const struct rec *c, uint64_t seq,
		       uint16_t flags, struct pt_error *e)
{
	Ptrack__V1__PageData m = PTRACK__V1__PAGE_DATA__INIT;
	struct payload p = { .n = 0 };
	size_t i, n = c->count, nz;
	uint64_t zeros;

	memset(s->zmask, 0, pt_bitmap_words(n) * 8);
	for (i = 0; i < n; i++)
		add_page(s, &p, c->ri,
			 c->kind == REC_RANGE ? c->first + i : c->pages[i], i);
	m.region = s->lay.r[c->ri].id;
	if (c->kind == REC_RANGE) {
		m.first_page = c->first;
		m.page_count = c->count;
	} else {
		m.n_pages = n;
		m.pages = c->pages;
	}
	zeros = pt_bitmap_count(s->zmask, pt_bitmap_words(n));
	nz = zeros ? pt_bitmap_words(n) : 0;
	m.n_zero_mask = nz;
	m.zero_mask = s->zmask;
	m.round = s->round;
	s->round_pages += n - zeros;
	s->round_zero += zeros;
	return pt_frame_build(&s->tx, T(PAGE_DATA), flags, seq, &m.base, p.iov,
			      p.n, PT_FRAME_MAX_DEFAULT, e);
}

/* One chunk of the VMM state blob, zero padded to 8 bytes. */
static int build_state(struct src *s, const struct rec *c, uint64_t seq,
		       uint16_t flags, struct pt_error *e)
{
	static const uint8_t zeros[8];
	Ptrack__V1__VmmState m = PTRACK__V1__VMM_STATE__INIT;
	struct iovec iov[2] = {
		{ .iov_base = s->state + c->first, .iov_len = c->count },
		{ .iov_base = (void *)zeros,
		  .iov_len = pt_align8(c->count) - c->count },
	};

	m.offset = c->first;
	m.length = c->count;
	m.total = s->state_len;
	m.crc32c = s->state_crc;
	return pt_frame_build(&s->tx, T(VMM_STATE), flags, seq, &m.base, iov,
			      iov[1].iov_len ? 2 : 1, PT_FRAME_MAX_DEFAULT, e);
}

/* Complete's checksums, over the paused guest. */
static void *checksum_main(void *arg)
{
	struct src *s = arg;
	size_t i;

	for (i = 0; i < s->lay.n; i++)
		s->crc[i] = pt_crc32c(0, s->mr[i]->hva, s->lay.r[i].size);
	return NULL;
}

/* Computed while the final round is on the wire: the whole memory's CRC
 * is otherwise the largest part of the downtime. */
static void start_checksums(struct src *s)
{
	s->crc_state =
		pthread_create(&s->crc_th, NULL, checksum_main, s) ? 0 : 1;
}

static void join_checksums(struct src *s)
{
	if (s->crc_state == 1)
		pthread_join(s->crc_th, NULL);
	else if (s->crc_state == 0)
		checksum_main(s); /* no thread: compute here */
	s->crc_state = 2;
}

static int build_complete(struct src *s, uint64_t seq, uint16_t flags,
			  struct pt_error *e)
{
	Ptrack__V1__Complete m = PTRACK__V1__COMPLETE__INIT;
	Ptrack__V1__RegionChecksum ck[PT_LAYOUT_MAX_REGIONS];
	Ptrack__V1__RegionChecksum *cp[PT_LAYOUT_MAX_REGIONS];
	size_t i;

	join_checksums(s);
	for (i = 0; i < s->lay.n; i++) {
		ptrack__v1__region_checksum__init(&ck[i]);
		ck[i].region = s->lay.r[i].id;
		ck[i].crc32c = s->crc[i];
		cp[i] = &ck[i];
	}
	m.n_checksums = s->lay.n;
	m.checksums = cp;
	m.total_rounds = s->round + 1;
	return pt_frame_build(&s->tx, T(COMPLETE), flags, seq, &m.base, NULL, 0,
			      PT_FRAME_MAX_DEFAULT, e);
}

/* Rebuilds and sends the frame of @seq from its record. */
static int xmit(struct src *s, uint64_t seq)
{
	struct rec *c = &s->recs[seq % s->window];
	struct pt_error e = { 0 };
	uint16_t flags = 0;
	int r;

	/* Ask for an Ack twice per window whatever the peer's own cadence,
	 * and at every frame the source then waits on. */
	if (seq % (s->window / 2) == 0 || c->kind == REC_HELLO ||
	    c->kind == REC_ITER || c->kind == REC_COMPLETE)
		flags = PT_FRAME_F_ACK_REQ;
	switch (c->kind) {
	case REC_HELLO:
		r = build_hello(s, seq, flags, &e);
		break;
	case REC_BITMAP:
		r = build_bitmap(s, c, seq, flags, &e);
		break;
	case REC_RING:
		r = build_ring(s, c, seq, flags, &e);
		break;
	case REC_PAGES:
	case REC_RANGE:
		r = build_pages(s, c, seq, flags, &e);
		break;
	case REC_ITER:
		r = pt_frame_build(&s->tx, T(ITERATION_DONE), flags, seq,
				   &c->it.base, NULL, 0, PT_FRAME_MAX_DEFAULT,
				   &e);
		break;
	case REC_STATE:
		r = build_state(s, c, seq, flags, &e);
		break;
	default:
		r = build_complete(s, seq, flags, &e);
	}
	if (r)
		return fail(s, E(INTERNAL), -r > 0 ? -r : EINVAL,
			    "cannot build frame %" PRIu64 ": %s", seq, e.text);
	return send_built(s);
}

/* ---- peer's frames ---------------------------------------------------- */

/* Best effort: tell a misbehaving or abandoned peer why we stop. */
static void send_error(struct src *s, int code, const char *text)
{
	Ptrack__V1__Error m = PTRACK__V1__ERROR__INIT;

	if (s->fd < 0)
		return;
	m.code = code;
	m.text = (char *)text;
	if (!pt_frame_build(&s->tx, T(ERROR), 0, 0, &m.base, NULL, 0,
			    PT_FRAME_MAX_DEFAULT, NULL))
		pt_frame_send(s->fd, &s->tx);
}

static int protocol_error(struct src *s, const struct pt_error *e)
{
	send_error(s, e->code, e->text);
	return fail(s, e->code, EPROTO, "peer sent a malformed frame: %s: %s",
		    pt_error_name(e->code), e->text);
}

/* Reads one frame from the peer and acts on it. 1: an Ack was handled. */
static int read_peer(struct src *s, int want_hello)
{
	struct pt_error e = { 0 };
	struct pt_frame f;
	struct pt_msg m;
	int r = pt_reader_next(&s->rd, &f, &e);

	if (r == 0 || r == -EPIPE || is_conn_error(r) || r == -EWOULDBLOCK)
		return r ? r : -ECONNRESET;
	if (r < 0)
		return protocol_error(s, &e);
	r = pt_msg_decode(&f, &s->lay, &m, &e);
	if (r)
		return protocol_error(s, &e);
	switch (m.type) {
	case T(ACK):
		if (m.u.ack->seq >= s->next_seq) {
			pt_error_set(&e, E(SEQUENCE), EPROTO,
				     "Ack of %" PRIu64 ", last sent %" PRIu64,
				     m.u.ack->seq, s->next_seq - 1);
			r = protocol_error(s, &e);
		} else if (m.u.ack->seq > s->acked) {
			s->acked = m.u.ack->seq;
		}
		break;
	case T(HELLO):
		if (want_hello &&
		    m.u.hello->role == PTRACK__V1__ROLE__ROLE_PEER) {
			s->acked = 1;
			s->switchover =
				s->ds->ops->save_state && !s->o->copy_only &&
				(m.u.hello->features &
				 PTRACK__V1__FEATURE__FEATURE_SWITCHOVER);
			break;
		}
		pt_error_set(&e, E(SESSION), EPROTO, "unexpected Hello");
		r = protocol_error(s, &e);
		break;
	case T(ERROR):
		s->peer_refused = 1;
		r = fail(s, m.u.error->code, ECONNABORTED, "peer: %s: %s",
			 pt_error_name(m.u.error->code), m.u.error->text);
		break;
	case T(RESUMED):
		if (s->switchover && s->complete_seq &&
		    s->acked >= s->complete_seq &&
		    m.u.resumed->session_id == s->res->session_id) {
			s->resumed = 1;
			break;
		}
		pt_error_set(&e, E(SESSION), EPROTO, "unexpected Resumed");
		r = protocol_error(s, &e);
		break;
	default:
		pt_error_set(&e, E(SESSION), EPROTO,
			     "unexpected message type %u from the peer",
			     m.type);
		r = protocol_error(s, &e);
	}
	pt_msg_release(&m);
	return r ? r : 1;
}

static int poll_in(int fd, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	int r = poll(&p, 1, timeout_ms);

	return r < 0 ? -errno : r;
}

/* Handles whatever the peer already sent, without waiting. */
static int read_pending(struct src *s)
{
	int r;

	while ((r = poll_in(s->fd, 0)) > 0) {
		r = read_peer(s, 0);
		if (r < 0)
			return r;
	}
	return r;
}

/* ---- connection and resume ------------------------------------------- */

static void disconnect(struct src *s)
{
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
	pt_reader_release(&s->rd);
}

/* Before any data is sent, so the whole stream runs under it. */
static int set_congestion(struct src *s, int fd)
{
	const char *cc = s->o->tcp_congestion;
	int err;

	if (!cc || !cc[0])
		return 0;
	if (!setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, cc, strlen(cc)))
		return 0;
	err = errno;
	return fail(s, E(INTERNAL), err, "TCP congestion control %s: %s", cc,
		    strerror(err));
}

static int connect_peer(struct src *s)
{
	char err[256], host[256];
	int fd = pt_tcp_connect(s->o->to, 1000), r;

	if (fd < 0)
		return fd;
	r = set_congestion(s, fd);
	if (r) {
		close(fd);
		return r;
	}
	if (pt_hostport_host(s->o->to, host, sizeof(host)))
		host[0] = 0;
	fd = pt_link_secure(s->o->tls, fd, host, s->o->io_timeout_ms, err,
			    sizeof(err));
	if (fd == -EACCES || fd == -EPROTO)
		return fail(s, E(SESSION), -fd, "peer %s: %s", s->o->to, err);
	if (fd < 0)
		return fd;
	s->fd = fd;
	r = pt_sock_timeouts(fd, s->o->io_timeout_ms);
	if (!r)
		r = pt_reader_init(&s->rd, fd, RX_MAX);
	s->rd.timeout_ms = s->o->io_timeout_ms;
	if (r)
		disconnect(s);
	return r;
}

static int send_resume(struct src *s)
{
	Ptrack__V1__Resume m = PTRACK__V1__RESUME__INIT;
	struct pt_error e;
	int r;

	m.session_id = s->res->session_id;
	m.last_acked_seq = s->acked;
	m.secret.data = s->secret;
	m.secret.len = sizeof(s->secret);
	/* Seq 0: Resume is a handshake, not part of the stream. */
	r = pt_frame_build(&s->tx, T(RESUME), PT_FRAME_F_ACK_REQ, 0, &m.base,
			   NULL, 0, PT_FRAME_MAX_DEFAULT, &e);
	return r ? r : pt_frame_send(s->fd, &s->tx);
}

/* Resume handshake; the peer answers with the last seq it stored. */
static int resume_session(struct src *s)
{
	uint64_t before = s->acked, seq;
	int r = send_resume(s);

	if (r)
		return r;
	s->acked = 0;
	r = poll_in(s->fd, s->o->io_timeout_ms);
	if (r == 0)
		r = -ETIMEDOUT;
	if (r > 0)
		r = read_peer(s, 0);
	if (r < 0) {
		s->acked = before;
		return r;
	}
	if (s->acked < before)
		return fail(s, E(SESSION), EPROTO,
			    "peer resumed at seq %" PRIu64
			    " but had acked %" PRIu64,
			    s->acked, before);
	for (seq = s->acked + 1; seq < s->next_seq; seq++) {
		r = xmit(s, seq);
		if (r)
			return r;
		s->res->retransmitted++;
	}
	return 0;
}

/*
 * The connection broke: reconnect until the deadline, resume the session
 * and resend every unacked frame. Protocol errors end the migration.
 */
static int recover(struct src *s, int why)
{
	uint64_t deadline = now_ns() + s->o->reconnect_ms * 1000000ull;
	int r;

	/* The peer hangs up once it acked Complete: nothing to resume,
	 * unless the switchover's outcome is still to be learnt. */
	if (s->complete_seq && s->acked >= s->complete_seq &&
	    (!s->switchover || s->resumed))
		return 0;
	/* The peer may have said why it hung up. */
	if (s->fd >= 0) {
		r = read_pending(s);
		if (r < 0 && !is_conn_error(r))
			return r;
	}
	while (now_ns() < deadline) {
		disconnect(s);
		r = connect_peer(s);
		if (!r) {
			r = resume_session(s);
			if (!r) {
				s->res->reconnects++;
				return 0;
			}
			if (!is_conn_error(r))
				return r;
		} else if (r == -EACCES || r == -EPROTO) {
			return r; /* not who it must be: no retry */
		}
		usleep(100000);
	}
	return fail(s, E(INTERNAL), ETIMEDOUT,
		    "connection lost (%s) and peer %s unreachable for %" PRIu64
		    " ms",
		    strerror(-why), s->o->to, s->o->reconnect_ms);
}

/* Waits for Acks until at most @max frames are unacked. */
static int wait_acked(struct src *s, uint64_t max)
{
	int r;

	while (s->next_seq - 1 - s->acked > max) {
		/* A peer that trickles its Acks must not keep the guest
		 * paused past the time limit. */
		if ((now_ns() - s->t_start) / 1000000 > s->o->time_limit_ms)
			return fail(s, E(INTERNAL), ETIME,
				    "time limit of %" PRIu64
				    " ms reached waiting for the peer's Ack",
				    s->o->time_limit_ms);
		r = poll_in(s->fd, s->o->io_timeout_ms);
		if (r == 0)
			r = -ETIMEDOUT;
		if (r > 0)
			r = read_peer(s, 0);
		if (r < 0 && is_conn_error(r))
			r = recover(s, r);
		if (r < 0)
			return r;
	}
	return 0;
}

uint64_t pt_cap_due_ns(uint64_t t0, uint64_t bytes, uint64_t bandwidth)
{
	/* 128 bits: bytes * 10^9 wraps 64 bits past 18.4 GB. */
	unsigned __int128 ns = (unsigned __int128)bytes * 1000000000u;

	ns /= bandwidth;
	return ns > UINT64_MAX - t0 ? UINT64_MAX : t0 + (uint64_t)ns;
}

/*
 * Holds the stream to the bandwidth cap. Not in the final round by
 * default: the guest is paused then, and every byte held back is
 * downtime (QEMU lifts its cap there too).
 */
static void throttle(struct src *s)
{
	uint64_t due, now;

	if (!s->o->bandwidth || (s->paused && !s->o->cap_final_round))
		return;
	now = now_ns();
	if (!s->cap_t0)
		s->cap_t0 = now;
	due = pt_cap_due_ns(s->cap_t0, s->cap_bytes, s->o->bandwidth);
	if (due > now)
		usleep((useconds_t)((due - now) / 1000));
	s->cap_bytes = s->res->bytes;
}

/* Queues @c as the next frame and sends it; bounded by the window. */
static int emit(struct src *s, const struct rec *c)
{
	uint64_t seq = s->next_seq, elapsed;
	struct rec *slot;
	uint64_t *pages;
	int r = wait_acked(s, s->window - 1);

	if (r)
		return r;
	/* A round that crawls (a tiny cap, a slow peer) ends at the time
	 * limit too, not only between rounds. */
	elapsed = (now_ns() - s->t_start) / 1000000;
	if (elapsed > s->o->time_limit_ms)
		return fail(s, E(INTERNAL), ETIME,
			    "time limit of %" PRIu64
			    " ms reached in round %" PRIu64,
			    s->o->time_limit_ms, s->round);
	slot = &s->recs[seq % s->window];
	pages = slot->pages;
	*slot = *c;
	slot->pages = pages;
	if (c->kind == REC_PAGES)
		memcpy(pages, c->pages, c->count * sizeof(uint64_t));
	s->next_seq++;
	r = xmit(s, seq);
	if (!r)
		r = read_pending(s);
	if (r < 0 && is_conn_error(r))
		r = recover(s, r);
	throttle(s);
	return r < 0 ? r : 0;
}

/* ---- rounds ----------------------------------------------------------- */

static int send_dirty_set(struct src *s)
{
	struct rec c = { .kind = REC_BITMAP };
	uint64_t n;
	size_t i;
	int r;

	if (s->got_ring && !s->got_bitmap) {
		c.kind = REC_RING;
		for (c.batch = 0; c.batch < s->nbatch; c.batch++)
			if ((r = emit(s, &c)))
				return r;
		return 0;
	}
	for (c.ri = 0; c.ri < s->lay.n; c.ri++) {
		n = s->lay.r[c.ri].npages;
		for (c.first = 0; c.first < n; c.first += BITMAP_CHUNK_PAGES) {
			c.count = n - c.first < BITMAP_CHUNK_PAGES
					  ? n - c.first
					  : BITMAP_CHUNK_PAGES;
			for (i = 0; i < pt_bitmap_words(c.count); i++)
				if (s->dirty[c.ri][c.first / 64 + i])
					break;
			if (i < pt_bitmap_words(c.count) && (r = emit(s, &c)))
				return r;
		}
	}
	return 0;
}

static int send_dirty_pages(struct src *s)
{
	uint64_t list[PT_PAGEDATA_MAX_PAGES];
	struct rec c = { .kind = REC_PAGES, .pages = list };
	uint64_t w, idx;
	size_t i;
	int r;

	for (c.ri = 0; c.ri < s->lay.n; c.ri++) {
		c.count = 0;
		for (i = 0; i < pt_bitmap_words(s->lay.r[c.ri].npages); i++) {
			for (w = s->dirty[c.ri][i]; w; w &= w - 1) {
				idx = i * 64 + (uint64_t)__builtin_ctzll(w);
				list[c.count++] = idx;
				if (c.count == s->ppf) {
					if ((r = emit(s, &c)))
						return r;
					c.count = 0;
				}
			}
		}
		if (c.count && (r = emit(s, &c)))
			return r;
	}
	return 0;
}

static int send_all_pages(struct src *s)
{
	struct rec c = { .kind = REC_RANGE };
	uint64_t n;
	int r;

	for (c.ri = 0; c.ri < s->lay.n; c.ri++) {
		n = s->lay.r[c.ri].npages;
		for (c.first = 0; c.first < n; c.first += c.count) {
			c.count = n - c.first < s->ppf ? n - c.first : s->ppf;
			if ((r = emit(s, &c)))
				return r;
		}
	}
	return 0;
}

/* Ends a round: IterationDone, acked before the next harvest. */
static int end_round(struct src *s, uint64_t dirty, uint64_t t0)
{
	struct rec c = { .kind = REC_ITER };
	int r;

	ptrack__v1__iteration_done__init(&c.it);
	c.it.round = s->round;
	c.it.dirty_pages = dirty;
	c.it.pages_sent = s->round_pages;
	c.it.zero_pages = s->round_zero;
	c.it.bytes_sent = s->round_bytes;
	c.it.duration_ns = now_ns() - t0;
	c.it.final = s->paused;
	r = emit(s, &c);
	if (!r)
		r = wait_acked(s, 0);
	s->send_ns += now_ns() - t0;
	s->res->pages_sent += s->round_pages;
	s->res->zero_pages += s->round_zero;
	s->round_pages = s->round_zero = s->round_bytes = 0;
	return r;
}

static double bandwidth(struct src *s)
{
	return s->send_ns ? (double)s->res->bytes * 1e9 / (double)s->send_ns
			  : 1e9;
}

static void report(struct src *s, uint64_t dirty, uint64_t remaining)
{
	struct pt_mig_progress p = {
		.round = s->round,
		.dirty_pages = dirty,
		.remaining = remaining,
		/* Nothing measured before round 0 has been sent. */
		.mbps = s->send_ns ? bandwidth(s) / 1e6 : 0,
		.expected_downtime_ms =
			s->send_ns ? (double)remaining * 1e3 / bandwidth(s) : 0,
		.transferred = s->res->bytes,
		.final = s->paused,
		.throttle = s->throttle,
	};

	if (s->o->progress)
		s->o->progress(&p, s->o->arg);
}

static int round0(struct src *s)
{
	uint64_t t0 = now_ns(), total = 0;
	size_t i;
	int r;

	for (i = 0; i < s->lay.n; i++)
		total += s->lay.r[i].npages;
	report(s, total, pt_layout_offset(&s->lay, s->lay.n));
	r = send_all_pages(s);
	s->prev_round_bytes = s->round_bytes;
	if (!r)
		r = end_round(s, total, t0);
	s->res->round0_ns = now_ns() - t0;
	s->res->round0_bytes = s->res->bytes;
	return r;
}

static int harvest(struct src *s)
{
	int r = s->ds->ops->harvest(s->ds, &s->sink);

	if (r)
		return fail(s, E(INTERNAL), -r, "harvest failed: %s",
			    strerror(-r));
	return 0;
}

static int pause_guest(struct src *s)
{
	int r;

	/* Set first: a pause that fails half way is undone by a resume. */
	s->paused = 1;
	r = s->ds->ops->pause(s->ds);
	if (r)
		return fail(s, E(INTERNAL), -r, "cannot pause the guest: %s",
			    strerror(-r));
	r = harvest(s);
	if (!r)
		start_checksums(s);
	return r;
}

static void set_throttle(struct src *s, unsigned int pct)
{
	int r;

	if (pct == s->throttle || !s->ds->ops->throttle)
		return;
	r = s->ds->ops->throttle(s->ds, pct);
	if (r)
		return; /* the migration goes on, unthrottled or as it was */
	s->throttle = pct;
	if (pct > s->res->throttle_max)
		s->res->throttle_max = pct;
}

/*
 * QEMU's rule: when a round dirtied more than half of what the previous
 * round could send, twice in a row, throttle (ac_initial percent). Then
 * ac_step more at every such round: a round here lasts as long as its
 * data takes, often much longer than QEMU's sync period.
 */
static void auto_converge(struct src *s, uint64_t dirty_bytes)
{
	unsigned int init = s->o->ac_initial ? s->o->ac_initial : 20;
	unsigned int step = s->o->ac_step ? s->o->ac_step : 10;
	unsigned int pct;

	if (!s->o->auto_converge || !s->prev_round_bytes)
		return;
	if (dirty_bytes * 2 <= s->prev_round_bytes) {
		s->high_rounds = 0;
		return;
	}
	if (++s->high_rounds < 2 && !s->throttle)
		return;
	s->high_rounds = 0;
	pct = s->throttle ? s->throttle + step : init;
	set_throttle(s, pct > 99 ? 99 : pct);
}

/* One pre-copy round; *@done once the final round is acked. */
static int iterate(struct src *s, int *done, uint64_t *t_pause)
{
	uint64_t t0 = now_ns(), dirty, bytes, limit, elapsed;
	int r;

	clear_round(s);
	r = harvest(s);
	if (r)
		return r;
	dirty = count_dirty(s, &bytes);
	limit = s->o->downtime_ms;
	if ((double)bytes * 1e3 / bandwidth(s) <= (double)limit) {
		*t_pause = now_ns();
		r = pause_guest(s);
		if (r)
			return r;
		s->res->pause_ms = (now_ns() - *t_pause) / 1000000;
		dirty = count_dirty(s, &bytes);
	} else {
		auto_converge(s, bytes);
		elapsed = (now_ns() - s->t_start) / 1000000;
		if (s->round > s->o->max_rounds ||
		    elapsed > s->o->time_limit_ms)
			return fail(
				s, E(INTERNAL), ETIME,
				"no convergence after %" PRIu64
				" rounds and %" PRIu64 " ms: %" PRIu64
				" dirty pages need %.0f ms at %.1f MB/s, limit %" PRIu64
				" ms",
				s->round - 1, elapsed, dirty,
				(double)bytes * 1e3 / bandwidth(s),
				bandwidth(s) / 1e6, limit);
	}
	report(s, dirty, bytes);
	r = send_dirty_set(s);
	if (!r)
		r = send_dirty_pages(s);
	s->prev_round_bytes = s->round_bytes;
	if (!r)
		r = end_round(s, dirty, t0);
	*done = !r && s->paused;
	return r;
}

/* The paused VMM's state, streamed in chunks before Complete. */
static int send_state(struct src *s)
{
	struct rec c = { .kind = REC_STATE };
	void *blob;
	size_t len;
	int r = s->ds->ops->save_state(s->ds, &blob, &len);

	if (r)
		return fail(s, E(STATE), -r,
			    "the VMM cannot save its state: %s", strerror(-r));
	if (!len || len > PT_STATE_MAX) {
		free(blob);
		return fail(s, E(STATE), EMSGSIZE,
			    "VMM state of %zu bytes, 1 to %u allowed", len,
			    PT_STATE_MAX);
	}
	s->state = blob;
	s->state_len = len;
	s->state_crc = pt_crc32c(0, blob, len);
	s->res->state_bytes = len;
	for (c.first = 0; c.first < len; c.first += c.count) {
		c.count = len - c.first < PT_STATE_CHUNK_MAX
				  ? len - c.first
				  : PT_STATE_CHUNK_MAX;
		r = emit(s, &c);
		if (r)
			return r;
	}
	return 0;
}

/*
 * After Complete was acked: the peer loads the state and resumes the
 * guest, then says Resumed, or an Error why not. A lost link is recovered
 * (the peer answers a Resume with Resumed if its guest runs); if the
 * outcome cannot be learnt in time, nobody may resume: outcome_unknown.
 */
/*
 * A failure @r once Complete was sent: only the peer's own refusal (bad
 * memory or state, a VMM that could not resume) gives the guest back to
 * the source. Anything else (a lost link, a peer that restarted and lost
 * the session) leaves open whether the peer resumed it.
 */
static int settle_failure(struct src *s, int r)
{
	char why[sizeof(s->res->err)];
	int code = s->res->code;

	if (s->peer_refused && (code == E(STATE) || code == E(RESUME_FAILED) ||
				code == E(CHECKSUM) || code == E(NO_INCOMING)))
		return r;
	snprintf(why, sizeof(why), "%s",
		 s->res->err[0] ? s->res->err : "no answer");
	s->res->err[0] = 0;
	s->res->outcome_unknown = 1;
	return fail(s, E(INTERNAL), ETIMEDOUT,
		    "switchover outcome unknown: Complete went to %s, then %s, "
		    "and neither Resumed nor a refusal came within %" PRIu64
		    " ms: the guest stays paused here",
		    s->o->to, why, s->o->switchover_ms);
}

static int wait_resumed(struct src *s)
{
	uint64_t deadline = now_ns() + s->o->switchover_ms * 1000000ull;
	int r = -ETIMEDOUT;

	while (!s->resumed && now_ns() < deadline) {
		r = poll_in(s->fd, 200);
		if (r > 0)
			r = read_peer(s, 0);
		if (r < 0 && is_conn_error(r))
			r = recover(s, r);
		if (r < 0)
			break;
	}
	if (s->resumed)
		return 0;
	return settle_failure(s, r < 0 ? r : -ETIMEDOUT);
}

static int complete(struct src *s)
{
	struct rec c = { .kind = REC_COMPLETE };
	uint64_t t0 = now_ns();
	int r;

	if (s->switchover) {
		r = send_state(s);
		if (r)
			return r;
	}
	s->complete_seq = s->next_seq;
	r = emit(s, &c);

	if (!r)
		r = wait_acked(s, 0);
	s->res->complete_ms = (now_ns() - t0) / 1000000;
	if (r && s->switchover)
		return settle_failure(s, r);
	if (!r && s->switchover) {
		/* The peer acked Complete: from now on only its answer, or
		 * none at all, decides where the guest runs. */
		t0 = now_ns();
		r = wait_resumed(s);
		s->res->resume_ms = (now_ns() - t0) / 1000000;
		s->res->switched_over = !r;
	}
	return r;
}

/* Sends Hello and waits for the peer's; 0, a connection error or a
 * failure. */
static int hello_once(struct src *s, int *connected)
{
	int r = connect_peer(s);

	*connected = !r;
	if (r)
		return r;
	s->acked = 0;
	r = xmit(s, 1);
	while (!r && s->acked < 1) {
		r = poll_in(s->fd, s->o->io_timeout_ms);
		if (r == 0)
			r = -ETIMEDOUT;
		if (r > 0)
			r = read_peer(s, 1);
		r = r < 0 ? r : 0;
	}
	return r;
}

/*
 * The peer may still be starting, or die before it answers (nothing is
 * stored then but the session's setup, which a new Hello redoes): retry
 * until the reconnect deadline.
 */
static int handshake(struct src *s)
{
	uint64_t deadline = now_ns() + s->o->reconnect_ms * 1000000ull;
	int r, connected;

	s->recs[1 % s->window].kind = REC_HELLO;
	s->next_seq = 2;
	for (;;) {
		r = hello_once(s, &connected);
		if (!r || !is_conn_error(r) || now_ns() >= deadline)
			break;
		/* Not counted: a peer that is not listening yet. */
		s->res->reconnects += connected;
		disconnect(s);
		usleep(100000);
	}
	if (r && !s->res->err[0])
		fail(s, E(INTERNAL), -r, "no Hello from peer %s: %s", s->o->to,
		     strerror(-r));
	return r;
}

/* ---- setup ------------------------------------------------------------ */

static int setup_layout(struct src *s)
{
	struct pt_error e = { 0 };
	size_t i, j;
	int r;

	if (!s->ds->nregions || s->ds->nregions > PT_LAYOUT_MAX_REGIONS)
		return fail(s, E(BAD_REGION), EINVAL, "%zu regions",
			    s->ds->nregions);
	for (i = 0; i < s->ds->nregions; i++) {
		struct pt_mem_region *m = &s->ds->regions[i];

		r = pt_layout_add(&s->lay, m->id, m->gpa_base, m->size,
				  m->page_size, &e);
		if (r)
			return fail(s, e.code, -r, "bad region: %s", e.text);
		if (!m->hva)
			return fail(s, E(BAD_REGION), EINVAL,
				    "region %u is not mapped", m->id);
	}
	for (i = 0; i < s->lay.n; i++)
		for (j = 0; j < s->ds->nregions; j++)
			if (s->ds->regions[j].id == s->lay.r[i].id)
				s->mr[i] = &s->ds->regions[j];
	return 0;
}

static int setup_buffers(struct src *s)
{
	uint32_t maxps = 4096;
	size_t i;

	for (i = 0; i < s->lay.n; i++) {
		if (s->lay.r[i].page_size > maxps)
			maxps = s->lay.r[i].page_size;
		s->dirty[i] = calloc(pt_bitmap_words(s->lay.r[i].npages), 8);
		if (!s->dirty[i])
			return -ENOMEM;
	}
	s->ppf = s->o->frame_bytes / maxps;
	if (s->ppf < 1)
		s->ppf = 1;
	if (s->ppf > PT_PAGEDATA_MAX_PAGES)
		s->ppf = PT_PAGEDATA_MAX_PAGES;
	if ((uint64_t)s->ppf * maxps >
	    PT_FRAME_MAX_DEFAULT - PT_MSG_MAX - PT_FRAME_HDR_LEN)
		return -EINVAL;
	s->stage = aligned_alloc(4096, s->ppf * maxps);
	s->ringbuf = malloc(pt_ring_encode_bound(RING_CHUNK));
	s->recs = calloc(s->window, sizeof(*s->recs));
	if (!s->stage || !s->ringbuf || !s->recs)
		return -ENOMEM;
	for (i = 0; i < s->window; i++) {
		s->recs[i].pages = malloc(s->ppf * sizeof(uint64_t));
		if (!s->recs[i].pages)
			return -ENOMEM;
	}
	return pt_txframe_init(&s->tx);
}

static void teardown(struct src *s)
{
	size_t i;

	if (s->crc_state == 1)
		pthread_join(s->crc_th, NULL);
	disconnect(s);
	clear_round(s);
	free(s->batches);
	for (i = 0; i < s->lay.n; i++)
		free(s->dirty[i]);
	if (s->recs)
		for (i = 0; i < s->window; i++)
			free(s->recs[i].pages);
	free(s->recs);
	free(s->stage);
	free(s->ringbuf);
	free(s->state);
	pt_bitmap_enc_release(&s->enc);
	pt_txframe_release(&s->tx);
}

static void defaults(struct pt_source_opts *o)
{
	if (!o->downtime_ms)
		o->downtime_ms = PT_DOWNTIME_MS_DEFAULT;
	if (!o->max_rounds)
		o->max_rounds = PT_MAX_ROUNDS_DEFAULT;
	if (!o->time_limit_ms)
		o->time_limit_ms = PT_TIME_LIMIT_MS_DEFAULT;
	if (o->window < 4)
		o->window = PT_WINDOW_DEFAULT;
	if (!o->frame_bytes)
		o->frame_bytes = PT_FRAME_BYTES_DEFAULT;
	if (!o->io_timeout_ms)
		o->io_timeout_ms = PT_IO_TIMEOUT_MS_DEFAULT;
	if (!o->reconnect_ms)
		o->reconnect_ms = PT_RECONNECT_MS_DEFAULT;
	if (!o->switchover_ms)
		o->switchover_ms = PT_SWITCHOVER_MS_DEFAULT;
}

static int run(struct src *s)
{
	uint64_t t_pause = 0;
	int r, done = 0;

	r = handshake(s);
	if (r)
		return r;
	r = s->ds->ops->start(s->ds);
	if (r)
		return fail(s, E(INTERNAL), -r, "cannot start tracking: %s",
			    strerror(-r));
	r = round0(s);
	/* s->round stays the final round's number: Complete is rebuilt
	 * from it if it has to be resent. */
	for (s->round = 1; !r; s->round++) {
		r = iterate(s, &done, &t_pause);
		if (done)
			break;
	}
	if (!r)
		r = complete(s);
	s->res->rounds = s->round + 1;
	if (!r)
		s->res->downtime_ms = (now_ns() - t_pause) / 1000000;
	return r;
}

int pt_migrate(struct pt_dirty_source *ds, const struct pt_source_opts *opts,
	       struct pt_source_result *res)
{
	struct pt_source_opts o = *opts;
	struct src s = { .o = &o, .res = res, .ds = ds, .fd = -1 };
	int r, r2;

	memset(res, 0, sizeof(*res));
	/* A peer that hangs up must not kill the daemon with SIGPIPE. */
	signal(SIGPIPE, SIG_IGN);
	defaults(&o);
	s.window = o.window;
	s.sink.ops = &sink_ops;
	s.t_start = now_ns();
	if (getrandom(&res->session_id, sizeof(res->session_id), 0) !=
		    sizeof(res->session_id) ||
	    !res->session_id)
		res->session_id = s.t_start | 1;
	if (getrandom(s.secret, sizeof(s.secret), 0) != sizeof(s.secret))
		return fail(&s, E(INTERNAL), EIO,
			    "no random bytes for the "
			    "session secret");
	r = setup_layout(&s);
	if (!r && (r = setup_buffers(&s)))
		fail(&s, E(INTERNAL), -r, "out of memory");
	if (!r)
		r = run(&s);
	/* The guest runs at full speed again, here or on the peer. */
	set_throttle(&s, 0);
	if (r) {
		send_error(&s, res->code ? res->code : E(INTERNAL), res->err);
		/* Whatever went wrong, the guest keeps running here, unless
		 * it may already run on the peer. */
		if (s.paused && !res->outcome_unknown &&
		    (r2 = ds->ops->resume(ds))) {
			size_t n = strlen(res->err);

			snprintf(res->err + n, sizeof(res->err) - n,
				 "; and resuming the guest failed: %s",
				 strerror(-r2));
		}
	}
	res->total_ms = (now_ns() - s.t_start) / 1000000;
	teardown(&s);
	return r;
}
