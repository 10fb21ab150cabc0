// SPDX-License-Identifier: MIT
/*
 * One connection of the peer, on the unprivileged side (peer_ps.h): the
 * TLS handshake, frame decoding and the session state machine. Pages go
 * into the destination memory the parent passed once it matched our
 * Hello or Resume; everything that must outlive the connection (the
 * session, the persisted state, the VMM state blob, the switchover) is
 * asked of the parent, and the source hears an Ack only once the parent
 * persisted it.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "codec/bitmap.h"
#include "codec/crc32c.h"
#include "codec/frame.h"
#include "codec/msg.h"
#include "engine/peer_ps.h"

#define T(name) PTRACK__V1__MSG_TYPE__MSG_TYPE_##name
#define E(name) PTRACK__V1__ERROR_CODE__ERROR_##name
#define PEER_DONE 1

struct cn {
	const struct pt_peer_opts *o;
	int fd, ctl;
	struct pt_reader rd;
	struct pt_txframe tx;
	uint64_t tx_seq;
	/* This connection sent a verified Hello or Resume the parent
	 * matched: only then may it stream, and only then do errors name
	 * the layout. */
	int conn_ok, hello_tried, incoming, resumed;
	unsigned int crc_left; /* corrupted frames still retransmitted */
	int bad_crc;
	uint64_t session_id, last_seq;
	struct pt_layout lay;
	uint8_t *map[PT_LAYOUT_MAX_REGIONS];
	size_t map_len[PT_LAYOUT_MAX_REGIONS];
	unsigned int nmap;
	uint8_t *base[PT_LAYOUT_MAX_REGIONS];
	uint64_t *round_dirty[PT_LAYOUT_MAX_REGIONS];
	uint64_t *stale[PT_LAYOUT_MAX_REGIONS];
	uint64_t dirty_round;
	unsigned int since_ack;
	struct ps_stats st;
	int32_t code;
	char err[256];
};

static int fail(struct cn *c, int code, int err, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int fail(struct cn *c, int code, int err, const char *fmt, ...)
{
	va_list ap;

	if (!c->err[0]) {
		c->code = code;
		va_start(ap, fmt);
		// NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized)
		vsnprintf(c->err, sizeof(c->err), fmt, ap);
		va_end(ap);
	}
	return -err;
}

static int send_msg(struct cn *c, uint16_t type, const ProtobufCMessage *m)
{
	int r = pt_frame_build(&c->tx, type, 0, ++c->tx_seq, m, NULL, 0,
			       PT_FRAME_MAX_DEFAULT, NULL);

	return r ? r : pt_frame_send(c->fd, &c->tx);
}

/* Tells the source why the session ends here and fails with it. */
static int send_error(struct cn *c, int code, int err, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int send_error(struct cn *c, int code, int err, const char *fmt, ...)
{
	Ptrack__V1__Error m = PTRACK__V1__ERROR__INIT;
	char text[256];
	va_list ap;

	va_start(ap, fmt);
	// NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized)
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	m.code = code;
	m.text = text;
	send_msg(c, T(ERROR), &m.base);
	return fail(c, code, err, "%s", text);
}

/* ---- the parent ------------------------------------------------------- */

/* One request, one answer: PS_OK (0), PS_BIND (1, @b and @fds filled),
 * or PS_REFUSE (the source is told, and the error returned). */
static int ask(struct cn *c, uint32_t type, const void *body, size_t len,
	       struct ps_bind *b, int *fds, unsigned int *nfds)
{
	union {
		struct ps_reply rep;
		struct ps_bind bind;
	} u;
	unsigned int got = 0, i;
	uint32_t t = 0;
	ssize_t n;
	int r;

	r = ps_send(c->ctl, type, body, len, NULL, 0);
	if (r)
		return fail(c, E(INTERNAL), -r, "the daemon is gone: %s",
			    strerror(-r));
	n = ps_recv(c->ctl, &t, &u, sizeof(u), fds,
		    fds ? PT_LAYOUT_MAX_REGIONS : 0, &got);
	if (n < 0)
		return fail(c, E(INTERNAL), (int)-n, "the daemon is gone: %s",
			    strerror((int)-n));
	if (t == PS_OK && n == sizeof(u.rep))
		return 0;
	if (t == PS_REFUSE && n == sizeof(u.rep)) {
		u.rep.text[PS_TEXT - 1] = 0;
		return send_error(c, u.rep.code, u.rep.err ? u.rep.err : EPROTO,
				  "%s", u.rep.text);
	}
	if (t == PS_BIND && n == sizeof(u.bind) && b && got == u.bind.nfds) {
		*b = u.bind;
		*nfds = got;
		return 1;
	}
	for (i = 0; fds && i < got; i++)
		close(fds[i]);
	return fail(c, E(INTERNAL), EPROTO, "bad answer from the daemon");
}

static void unmap(struct cn *c)
{
	unsigned int i;

	for (i = 0; i < c->nmap; i++)
		munmap(c->map[i], c->map_len[i]);
	c->nmap = 0;
	for (i = 0; i < PT_LAYOUT_MAX_REGIONS; i++) {
		c->base[i] = NULL;
		free(c->round_dirty[i]);
		free(c->stale[i]);
		c->round_dirty[i] = c->stale[i] = NULL;
	}
	c->conn_ok = 0;
}

static void *map_fd(int fd, size_t len, uint64_t off, int populate)
{
	void *m = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_SHARED | (populate ? MAP_POPULATE : 0), fd,
		       (off_t)off);

	return m == MAP_FAILED ? NULL : m;
}

/* Maps the memory the parent bound this connection to. */
static int bind_mem(struct cn *c, const struct ps_bind *b, const int *fds,
		    unsigned int nfds)
{
	unsigned int i;
	int r = 0;

	c->lay = b->lay;
	c->session_id = b->session_id;
	c->last_seq = b->last_seq;
	c->incoming = !!b->incoming;
	c->resumed = !!b->resumed;
	c->crc_left = b->crc_left;
	c->dirty_round = 0;
	for (i = 0; i < nfds && !r; i++) {
		size_t len = nfds == 1 ? b->mem_size : c->lay.r[i].size;

		c->map[i] = map_fd(fds[i], len, b->fd_off[i], b->fresh);
		if (!c->map[i])
			r = -errno;
		else
			c->map_len[c->nmap++] = len;
	}
	for (i = 0; i < c->lay.n && !r; i++) {
		size_t words = pt_bitmap_words(c->lay.r[i].npages);

		c->base[i] = nfds == 1
				     ? c->map[0] + pt_layout_offset(&c->lay, i)
				     : c->map[i];
		c->round_dirty[i] = calloc(words, 8);
		c->stale[i] = calloc(words, 8);
		if (!c->round_dirty[i] || !c->stale[i])
			r = -ENOMEM;
	}
	for (i = 0; i < nfds; i++)
		close(fds[i]);
	if (r) {
		unmap(c);
		return send_error(c, E(INTERNAL), -r,
				  "cannot map destination memory: %s",
				  strerror(-r));
	}
	c->conn_ok = 1;
	return 0;
}

/* What the parent matches a Hello or Resume by. */
static void fill_session(struct ps_session *s, uint64_t id,
			 const ProtobufCBinaryData *secret)
{
	memset(s, 0, sizeof(*s));
	s->session_id = id;
	if (secret->len >= PS_SECRET_MIN && secret->len <= PS_SECRET_MAX) {
		s->secret_len = (uint32_t)secret->len;
		memcpy(s->secret, secret->data, secret->len);
	}
}

/* ---- frames ----------------------------------------------------------- */

static int on_hello(struct cn *c, struct pt_msg *m)
{
	Ptrack__V1__Hello *h = m->u.hello;
	int fds[PT_LAYOUT_MAX_REGIONS];
	struct pt_error e = { 0 };
	struct ps_session *s;
	struct ps_bind b;
	unsigned int nfds = 0;
	size_t nl;
	int r;

	if (h->role != PTRACK__V1__ROLE__ROLE_SOURCE)
		return send_error(
			c, E(SESSION), EPROTO,
			"Hello from a peer: only a source sends here");
	if (m->seq != 1)
		return send_error(c, E(SEQUENCE), EPROTO,
				  "Hello with seq %" PRIu64 ", expected 1",
				  m->seq);
	unmap(c);
	s = malloc(sizeof(*s));
	if (!s)
		return send_error(c, E(INTERNAL), ENOMEM, "out of memory");
	fill_session(s, h->session_id, &h->resume_secret);
	memcpy(s->uuid, h->vm_uuid.data,
	       h->vm_uuid.len < 16 ? h->vm_uuid.len : 16);
	nl = h->vm_name ? strlen(h->vm_name) : 0;
	s->name_len = (uint32_t)(nl < PS_NAME ? nl : PS_NAME);
	snprintf(s->name, sizeof(s->name), "%s", h->vm_name ? h->vm_name : "");
	r = pt_layout_from_hello(&s->lay, h, &e);
	if (r) {
		free(s);
		return send_error(c, E(INTERNAL), -r,
				  "cannot set up destination memory: %s",
				  strerror(-r));
	}
	r = ask(c, PS_HELLO, s, sizeof(*s), &b, fds, &nfds);
	free(s);
	if (r <= 0)
		return r ? r : fail(c, E(INTERNAL), EPROTO, "no memory bound");
	r = bind_mem(c, &b, fds, nfds);
	if (r)
		return r;
	h->role = PTRACK__V1__ROLE__ROLE_PEER;
	/* What this side does, not an echo of the source's wishes. */
	h->features = PTRACK__V1__FEATURE__FEATURE_RLE_BITMAP |
		      PTRACK__V1__FEATURE__FEATURE_ZERO_PAGES |
		      PTRACK__V1__FEATURE__FEATURE_RESUME;
	if (c->incoming)
		h->features |= PTRACK__V1__FEATURE__FEATURE_SWITCHOVER;
	/* The secret goes one way. */
	h->resume_secret.len = 0;
	h->resume_secret.data = NULL;
	return send_msg(c, T(HELLO), m->u.base);
}

static int send_ack(struct cn *c)
{
	Ptrack__V1__Ack a = PTRACK__V1__ACK__INIT;

	c->since_ack = 0;
	a.seq = c->last_seq;
	return send_msg(c, T(ACK), &a.base);
}

static int send_resumed(struct cn *c)
{
	Ptrack__V1__Resumed m = PTRACK__V1__RESUMED__INIT;

	m.session_id = c->session_id;
	return send_msg(c, T(RESUMED), &m.base);
}

static int on_resume(struct cn *c, const struct pt_msg *m)
{
	int fds[PT_LAYOUT_MAX_REGIONS];
	struct ps_session s;
	struct ps_bind b;
	unsigned int nfds = 0;
	int r;

	unmap(c);
	fill_session(&s, m->u.resume->session_id, &m->u.resume->secret);
	r = ask(c, PS_RESUME, &s, sizeof(s), &b, fds, &nfds);
	if (r <= 0)
		return r ? r : fail(c, E(INTERNAL), EPROTO, "no memory bound");
	r = bind_mem(c, &b, fds, nfds);
	if (!r)
		r = send_ack(c);
	/* The question a source asks after losing us past Complete. */
	if (!r && c->resumed)
		r = send_resumed(c);
	return r;
}

/* A new round's dirty set replaces the previous round's. */
static void track_round(struct cn *c, uint64_t round)
{
	size_t i, n;

	if (round == c->dirty_round)
		return;
	c->dirty_round = round;
	for (i = 0; i < c->lay.n; i++) {
		n = pt_bitmap_words(c->lay.r[i].npages) * 8;
		memset(c->round_dirty[i], 0, n);
		memset(c->stale[i], 0, n);
	}
}

static void mark_dirty(struct cn *c, size_t ri, uint64_t page)
{
	c->round_dirty[ri][page / 64] |= 1ull << (page % 64);
	c->stale[ri][page / 64] |= 1ull << (page % 64);
}

static void on_bitmap(struct cn *c, const struct pt_msg *m)
{
	const Ptrack__V1__DirtyBitmap *b = m->u.bitmap;
	size_t ri = (size_t)(m->region - c->lay.r);
	uint64_t i;

	track_round(c, b->round);
	for (i = 0; i < b->page_count; i++)
		if ((m->words[i / 64] >> (i % 64)) & 1)
			mark_dirty(c, ri, b->first_page + i);
}

static void on_ring(struct cn *c, const struct pt_msg *m)
{
	const struct pt_region *rg;
	uint64_t i, gpa;

	track_round(c, m->u.ring->round);
	for (i = 0; i < m->u.ring->count; i++) {
		gpa = m->gfns[i] << PT_GFN_SHIFT;
		rg = pt_layout_find_gpa(&c->lay, gpa);
		mark_dirty(c, (size_t)(rg - c->lay.r),
			   (gpa - rg->gpa_base) >> rg->page_shift);
	}
}

static void on_pages(struct cn *c, const struct pt_msg *m)
{
	const Ptrack__V1__PageData *d = m->u.pages;
	size_t ri = (size_t)(m->region - c->lay.r);
	uint32_t ps = m->region->page_size;
	const uint8_t *src = m->payload;
	uint64_t i, idx;
	uint8_t *dst;

	for (i = 0; i < m->n_pages; i++) {
		idx = d->n_pages ? m->page_idx[i] : d->first_page + i;
		dst = c->base[ri] + idx * ps;
		if (pt_msg_page_is_zero(m, i)) {
			memset(dst, 0, ps);
			c->st.zero_pages++;
		} else if (src) { /* NULL: received in place */
			memcpy(dst, src, ps);
			src += ps;
		}
		c->stale[ri][idx / 64] &= ~(1ull << (idx % 64));
	}
	c->st.pages += m->n_pages;
}

static uint64_t count_stale(struct cn *c)
{
	uint64_t n = 0;
	size_t i;

	for (i = 0; i < c->lay.n; i++)
		n += pt_bitmap_count(c->stale[i],
				     pt_bitmap_words(c->lay.r[i].npages));
	return n;
}

static void on_iter(struct cn *c, const struct pt_msg *m)
{
	c->st.rounds = m->u.iter->round + 1;
	c->st.stale_pages = count_stale(c);
	if (!c->o->quiet)
		fprintf(stderr,
			"peer: round %" PRIu64 " stored: %" PRIu64
			" dirty, %" PRIu64 " pages, %" PRIu64 " stale%s\n",
			m->u.iter->round, m->u.iter->dirty_pages,
			m->u.iter->pages_sent + m->u.iter->zero_pages,
			c->st.stale_pages, m->u.iter->final ? " (final)" : "");
}

/* Takes the counters since the last report, for a message to the parent. */
static struct ps_stats take_stats(struct cn *c)
{
	struct ps_stats s = c->st;

	s.last_seq = c->last_seq;
	c->st.frames = c->st.pages = c->st.zero_pages = c->st.duplicates = 0;
	return s;
}

static int on_complete(struct cn *c, const struct pt_msg *m)
{
	const Ptrack__V1__Complete *cm = m->u.complete;
	const struct pt_region *rg;
	struct ps_stats st;
	uint32_t crc;
	size_t i;
	int r;

	if (cm->n_checksums != c->lay.n)
		return send_error(c, E(CHECKSUM), EBADMSG,
				  "Complete has %zu checksums for %zu regions",
				  cm->n_checksums, c->lay.n);
	for (i = 0; i < cm->n_checksums; i++) {
		rg = pt_layout_find(&c->lay, cm->checksums[i]->region);
		crc = pt_crc32c(0, c->base[rg - c->lay.r], rg->size);
		if (crc != cm->checksums[i]->crc32c)
			return send_error(
				c, E(CHECKSUM), EBADMSG,
				"region %u: CRC32C 0x%08x, source says 0x%08x",
				rg->id, crc, cm->checksums[i]->crc32c);
	}
	c->last_seq = m->seq;
	c->st.frames++;
	st = take_stats(c);
	/* The parent checks the VMM state, records completion, persists. */
	r = ask(c, PS_COMPLETE, &st, sizeof(st), NULL, NULL, NULL);
	if (r)
		return r < 0 ? r : -EPROTO;
	r = send_ack(c);
	return r ? r : PEER_DONE;
}

/* A chunk of the VMM's state: kept by the parent, in order. */
static int on_state(struct cn *c, const struct pt_msg *m)
{
	const Ptrack__V1__VmmState *st = m->u.state;
	uint8_t *buf;
	uint64_t off;
	uint32_t n;
	int r = 0;

	if (!c->incoming)
		return send_error(c, E(STATE), EPROTO,
				  "VMM state sent, but no incoming VM here");
	buf = malloc(sizeof(struct ps_state) + PS_CHUNK);
	if (!buf)
		return send_error(c, E(INTERNAL), ENOMEM, "out of memory");
	for (off = 0; off < st->length && !r; off += n) {
		struct ps_state h = { .offset = st->offset + off,
				      .total = st->total,
				      .crc = st->crc32c };

		n = (uint32_t)(st->length - off < PS_CHUNK ? st->length - off
							   : PS_CHUNK);
		h.len = n;
		memcpy(buf, &h, sizeof(h));
		memcpy(buf + sizeof(h), m->payload + off, n);
		r = ask(c, PS_STATE, buf, sizeof(h) + n, NULL, NULL, NULL);
		if (r > 0)
			r = -EPROTO;
	}
	free(buf);
	return r;
}

/* Persisted by the parent before the source hears it. */
static int ack(struct cn *c)
{
	struct ps_stats st = take_stats(c);
	int r = ask(c, PS_ACK, &st, sizeof(st), NULL, NULL, NULL);

	if (r)
		return r < 0 ? r : -EPROTO;
	return send_ack(c);
}

/* Stores one stream frame; duplicates of stored ones are only acked. */
static int on_stream(struct cn *c, const struct pt_msg *m)
{
	int r = 0;

	if (m->seq <= c->last_seq) {
		c->st.duplicates++;
		return m->flags & PT_FRAME_F_ACK_REQ ? ack(c) : 0;
	}
	if (m->seq != c->last_seq + 1)
		return send_error(c, E(SEQUENCE), EPROTO,
				  "frame %" PRIu64 " after %" PRIu64, m->seq,
				  c->last_seq);
	switch (m->type) {
	case T(DIRTY_BITMAP):
		on_bitmap(c, m);
		break;
	case T(DIRTY_RING):
		on_ring(c, m);
		break;
	case T(PAGE_DATA):
		on_pages(c, m);
		break;
	case T(ITERATION_DONE):
		on_iter(c, m);
		break;
	case T(VMM_STATE):
		r = on_state(c, m);
		if (r < 0)
			return r;
		break;
	case T(COMPLETE):
		return on_complete(c, m);
	default:
		return send_error(c, E(SESSION), EPROTO,
				  "unexpected message type %u", m->type);
	}
	c->last_seq = m->seq;
	c->st.frames++;
	if (m->flags & PT_FRAME_F_ACK_REQ || ++c->since_ack >= c->o->ack_every)
		return ack(c);
	return 0;
}

static int on_msg(struct cn *c, struct pt_msg *m)
{
	switch (m->type) {
	case T(HELLO):
		c->hello_tried = 1;
		return on_hello(c, m);
	case T(RESUME):
		return on_resume(c, m);
	case T(ERROR):
		return fail(c, m->u.error->code, ECONNABORTED, "source: %s: %s",
			    pt_error_name(m->u.error->code), m->u.error->text);
	case T(ACK):
		return 0;
	default:
		if (!c->conn_ok)
			return send_error(c, E(SESSION), EPROTO,
					  "no Hello or Resume on this "
					  "connection");
		return on_stream(c, m);
	}
}

static int on_frame(struct cn *c, const struct pt_frame *f)
{
	struct pt_error e = { 0 };
	struct pt_msg m;
	int r = pt_msg_decode(f, c->conn_ok ? &c->lay : NULL, &m, &e);

	if (r)
		return send_error(c, e.code, -r, "malformed frame: %s: %s",
				  pt_error_name(e.code), e.text);
	r = on_msg(c, &m);
	pt_msg_release(&m);
	return r;
}

/* ---- the connection --------------------------------------------------- */

static int is_conn_error(int r)
{
	return r == -EPIPE || r == -ECONNRESET || r == -EAGAIN ||
	       r == -ETIMEDOUT;
}

/* After Resumed: the source hangs up once it read it. If the connection
 * breaks instead, the source asks again on a new one. */
static int linger(struct cn *c)
{
	uint8_t b[64];
	ssize_t n;

	do
		n = read(c->fd, b, sizeof(b));
	while (n > 0 || (n < 0 && errno == EINTR));
	return n == 0 ? PEER_DONE : -ECONNRESET;
}

/* Complete acked: the parent loads the state and resumes the guest. */
static int switchover(struct cn *c)
{
	int r = ask(c, PS_SWITCH, NULL, 0, NULL, NULL, NULL);

	if (r)
		return r < 0 ? r : -EPROTO;
	c->resumed = 1;
	/* The source hears it on this connection or, if that broke, when
	 * it reconnects and resumes the session. */
	send_resumed(c);
	return linger(c);
}

/*
 * Reads whole frames into the frame buffer and checks each, CRC
 * included, before any of it is stored: a bad frame never reaches
 * destination (or incoming guest) memory. The reader gives the header
 * io_timeout to arrive and the rest io_timeout after it.
 */
static int serve_conn(struct cn *c)
{
	struct pt_error e = { 0 };
	struct pt_frame f = { 0 };
	int r;

	for (;;) {
		r = pt_reader_next(&c->rd, &f, &e);
		if (r == 0)
			return -ECONNRESET;
		if (r < 0 && (is_conn_error(r) || r == -EWOULDBLOCK))
			return r;
		/* Corrupted in transit (nothing of it was stored): dropping
		 * the connection makes the source resume after the last
		 * acked frame and send it again. */
		if (r < 0 && e.code == E(BAD_CRC) && c->conn_ok &&
		    c->crc_left > 0) {
			if (!c->o->quiet)
				fprintf(stderr,
					"peer: frame %" PRIu64
					" arrived corrupted (%s): asking for it again\n",
					f.hdr.seq, e.text);
			c->bad_crc = 1;
			return -ECONNRESET;
		}
		if (r < 0)
			return send_error(c, e.code, -r,
					  "malformed frame: %s: %s",
					  pt_error_name(e.code), e.text);
		r = on_frame(c, &f);
		if (r == PEER_DONE && c->incoming && !c->resumed)
			return switchover(c);
		if (r)
			return r;
	}
}

void ps_conn_main(const struct pt_peer_opts *o, int tcp, int ctl)
{
	struct cn c = { .o = o, .fd = -1, .ctl = ctl };
	struct ps_end end = { 0 };
	char err[256] = "";
	int r;

	/* An unauthenticated party never reaches the protocol, and gets
	 * nothing but the TLS alert. */
	if (o->tls)
		c.fd = pt_link_secure(o->tls, tcp, NULL, o->io_timeout_ms, err,
				      sizeof(err));
	else
		c.fd = tcp;
	if (c.fd < 0) {
		if (!o->quiet)
			fprintf(stderr, "peer: connection refused: %s\n", err);
		r = -ECONNREFUSED;
		goto out_end;
	}
	r = pt_sock_timeouts(c.fd, o->io_timeout_ms);
	if (!r)
		r = pt_txframe_init(&c.tx);
	if (!r)
		r = pt_reader_init(&c.rd, c.fd, PT_FRAME_MAX_DEFAULT);
	c.rd.timeout_ms = o->io_timeout_ms;
	if (!r)
		r = serve_conn(&c);
	end.conn_ok = (uint32_t)c.conn_ok;
	pt_reader_release(&c.rd);
	pt_txframe_release(&c.tx);
	close(c.fd);
	unmap(&c);
out_end:
	end.r = r;
	end.code = c.code;
	end.hello_tried = (uint32_t)c.hello_tried;
	end.bad_crc = (uint32_t)c.bad_crc;
	end.st = take_stats(&c);
	snprintf(end.err, sizeof(end.err), "%s", c.err);
	ps_send(ctl, PS_END, &end, sizeof(end), NULL, 0);
}
