// SPDX-License-Identifier: MIT
/*
 * Peer side of the streaming engine: stores a source's pages into
 * destination memory (a file or memfd, mmap'd), acks what it stored,
 * verifies Complete's checksums and keeps the dirty sets of the current
 * round so an audit (or post-copy) can tell which pages are still stale.
 *
 * With a state directory, the session (id, last stored seq, Hello) is
 * persisted with fsync before every Ack, so a peer restarted by its
 * supervisor answers a Resume and the stream continues where it was. The
 * destination pages are in the shared file mapping, which outlives the
 * process; surviving a host crash as well would need an msync per Ack.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "codec/bitmap.h"
#include "codec/crc32c.h"
#include "codec/frame.h"
#include "codec/msg.h"
#include "engine/migrate.h"

#define T(name) PTRACK__V1__MSG_TYPE__MSG_TYPE_##name
#define E(name) PTRACK__V1__ERROR_CODE__ERROR_##name
#define STATE_MAGIC 0x32535450u /* "PTS2" */
#define STATE_F_COMPLETE 1u /* Complete was verified and acked */
/* The incoming VMM was told to resume the guest (set before it is). */
#define STATE_F_RESUMED 2u
#define PEER_DONE 1

struct state_hdr {
	uint32_t magic;
	uint32_t hello_len;
	uint64_t session_id;
	uint64_t last_seq;
	uint32_t flags; /* STATE_F_* */
	uint32_t crc; /* over the fields above and the Hello */
};

struct peer {
	const struct pt_peer_opts *o;
	struct pt_peer_result *res;
	int lfd, fd;
	struct pt_reader rd;
	struct pt_txframe tx;
	uint64_t tx_seq;

	int have_session;
	int complete; /* this session's Complete was verified */
	uint64_t session_id, last_seq;
	uint8_t *hello;
	size_t hello_len;
	struct pt_layout lay;
	int memfd;
	uint8_t *mem;
	uint64_t mem_size;
	uint64_t off[PT_LAYOUT_MAX_REGIONS];
	uint8_t *base[PT_LAYOUT_MAX_REGIONS]; /* where region i's pages go */
	/* Switchover into o->incoming: the VMM state blob as it arrives. */
	uint8_t *state;
	uint64_t state_got, state_total;
	uint32_t state_crc;
	int resumed;
	uint64_t *round_dirty[PT_LAYOUT_MAX_REGIONS];
	uint64_t *stale[PT_LAYOUT_MAX_REGIONS];
	uint64_t dirty_round;
	unsigned int since_ack;
	/* This connection sent a verified Hello or Resume: only then may it
	 * stream, and only then do errors name the layout. */
	int conn_ok;
	int hello_tried; /* it sent a Hello, good or not */
	/* The restored complete session's own source asked for it. */
	int complete_confirmed;
	unsigned int bad_crcs; /* frames dropped for retransmission */
};

#define BAD_CRC_MAX 16

static int fail(struct peer *p, int code, int err, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int fail(struct peer *p, int code, int err, const char *fmt, ...)
{
	va_list ap;

	if (!p->res->err[0]) {
		p->res->code = code;
		va_start(ap, fmt);
		/* clang 14's analyzer misses va_start (a known false positive) */
		// NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized)
		vsnprintf(p->res->err, sizeof(p->res->err), fmt, ap);
		va_end(ap);
	}
	return -err;
}

static int send_msg(struct peer *p, uint16_t type, const ProtobufCMessage *m)
{
	int r = pt_frame_build(&p->tx, type, 0, ++p->tx_seq, m, NULL, 0,
			       PT_FRAME_MAX_DEFAULT, NULL);

	return r ? r : pt_frame_send(p->fd, &p->tx);
}

/* Tells the source why the session ends here and fails with it. */
static int send_error(struct peer *p, int code, int err, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int send_error(struct peer *p, int code, int err, const char *fmt, ...)
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
	send_msg(p, T(ERROR), &m.base);
	return fail(p, code, err, "%s", text);
}

/* ---- session state ---------------------------------------------------- */

static uint32_t state_crc(const struct state_hdr *h, const uint8_t *hello)
{
	uint32_t c = pt_crc32c(0, h, offsetof(struct state_hdr, crc));

	return pt_crc32c(c, hello, h->hello_len);
}

static int write_all(int fd, const void *buf, size_t len)
{
	const uint8_t *b = buf;
	ssize_t n;

	while (len) {
		n = write(fd, b, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		b += n;
		len -= (size_t)n;
	}
	return 0;
}

/* @dir/@name, refused (never truncated) when too long. */
static int state_path(const struct peer *p, char *out, size_t len,
		      const char *name)
{
	return snprintf(out, len, "%s/%s", p->o->state_dir, name) >= (int)len
		       ? -ENAMETOOLONG
		       : 0;
}

static void sync_dir(const char *dir)
{
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
}

/* Before a new session touches the destination: a crash from here on
 * must not restart on a state that describes memory no longer there. */
static int invalidate_state(struct peer *p)
{
	char path[PATH_MAX];

	if (!p->o->state_dir)
		return 0;
	if (state_path(p, path, sizeof(path), "session.state"))
		return -ENAMETOOLONG;
	if (unlink(path) && errno != ENOENT)
		return -errno;
	sync_dir(p->o->state_dir);
	return 0;
}

/* Write to a temporary, fsync, rename, fsync the directory: the state file
 * is always either the old or the new state, never a torn one. */
static int persist(struct peer *p)
{
	struct state_hdr h = { .magic = STATE_MAGIC,
			       .hello_len = (uint32_t)p->hello_len,
			       .session_id = p->session_id,
			       .last_seq = p->last_seq,
			       .flags = (p->complete ? STATE_F_COMPLETE : 0) |
					(p->resumed ? STATE_F_RESUMED : 0) };
	char tmp[PATH_MAX], path[PATH_MAX];
	int fd, r;

	if (!p->o->state_dir)
		return 0;
	h.crc = state_crc(&h, p->hello);
	if (state_path(p, tmp, sizeof(tmp), "session.tmp") ||
	    state_path(p, path, sizeof(path), "session.state"))
		return -ENAMETOOLONG;
	/* Never through a symlink planted in the state directory. */
	unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		  0600);
	if (fd < 0)
		return -errno;
	r = write_all(fd, &h, sizeof(h));
	if (!r)
		r = write_all(fd, p->hello, p->hello_len);
	if (!r && fsync(fd))
		r = -errno;
	close(fd);
	if (!r && rename(tmp, path))
		r = -errno;
	if (r)
		return r;
	sync_dir(p->o->state_dir);
	return 0;
}

/* ---- destination memory ----------------------------------------------- */

static void unmap_dest(struct peer *p)
{
	size_t i;

	if (p->mem)
		munmap(p->mem, p->mem_size);
	if (p->memfd >= 0)
		close(p->memfd);
	p->mem = NULL;
	p->memfd = -1;
	free(p->state);
	p->state = NULL;
	p->state_got = p->state_total = 0;
	for (i = 0; i < PT_LAYOUT_MAX_REGIONS; i++) {
		p->base[i] = NULL;
		free(p->round_dirty[i]);
		free(p->stale[i]);
		p->round_dirty[i] = p->stale[i] = NULL;
	}
}

static int alloc_audit(struct peer *p)
{
	size_t i, n;

	for (i = 0; i < p->lay.n; i++) {
		n = pt_bitmap_words(p->lay.r[i].npages);
		p->round_dirty[i] = calloc(n, 8);
		p->stale[i] = calloc(n, 8);
		if (!p->round_dirty[i] || !p->stale[i])
			return -ENOMEM;
		p->off[i] = pt_layout_offset(&p->lay, i);
	}
	p->mem_size = pt_layout_offset(&p->lay, p->lay.n);
	p->res->mem_size = p->mem_size;
	return 0;
}

static int open_dest(struct peer *p, int fresh)
{
	int flags = O_RDWR | O_CLOEXEC | O_NOFOLLOW |
		    (fresh ? O_CREAT | O_TRUNC : 0);
	struct stat st;
	int r;

	if (p->o->mem_path)
		p->memfd = open(p->o->mem_path, flags, 0600);
	else
		p->memfd = memfd_create("ptrack-dest", MFD_CLOEXEC);
	if (p->memfd < 0)
		return -errno;
	if (fresh) {
		/* Reserve every block now: ENOSPC here is a clean error,
		 * while a store to a mapping with no block is a SIGBUS. */
		if (ftruncate(p->memfd, (off_t)p->mem_size))
			return -errno;
		r = posix_fallocate(p->memfd, 0, (off_t)p->mem_size);
		if (r) {
			/* Give back what was reserved before it failed. */
			if (ftruncate(p->memfd, 0))
				r = r ? r : errno;
			return -r;
		}
	} else if (fstat(p->memfd, &st) ||
		   (uint64_t)st.st_size != p->mem_size) {
		return -EINVAL;
	}
	/* Populate now: faulting pages in one by one while storing them
	 * costs more than the copy itself. */
	p->mem = mmap(NULL, p->mem_size, PROT_READ | PROT_WRITE,
		      MAP_SHARED | (fresh ? MAP_POPULATE : 0), p->memfd, 0);
	if (p->mem == MAP_FAILED) {
		p->mem = NULL;
		return -errno;
	}
	return 0;
}

/*
 * The incoming VM takes this session if it is the same guest (UUID, else
 * name) with the same memory layout; its memory is then written in place.
 * -ENOENT: not this guest, -EXDEV: another layout.
 */
static int attach_incoming(struct peer *p, const uint8_t *buf, size_t len)
{
	const struct pt_dirty_source *in = p->o->incoming;
	Ptrack__V1__Hello *h = ptrack__v1__hello__unpack(NULL, len, buf);
	const struct pt_mem_region *m;
	size_t i, j;
	int r = 0;

	if (!h)
		return -EBADMSG;
	if (memcmp(h->vm_uuid.data, in->uuid, 16) != 0 &&
	    strcmp(h->vm_name, in->name) != 0)
		r = -ENOENT;
	ptrack__v1__hello__free_unpacked(h, NULL);
	if (r)
		return r;
	if (in->nregions != p->lay.n)
		return -EXDEV;
	for (i = 0; i < p->lay.n; i++) {
		const struct pt_region *rg = &p->lay.r[i];

		for (j = 0, m = NULL; j < in->nregions && !m; j++)
			if (in->regions[j].id == rg->id)
				m = &in->regions[j];
		if (!m || !m->hva || m->gpa_base != rg->gpa_base ||
		    m->size != rg->size || m->page_size != rg->page_size)
			return -EXDEV;
		p->base[i] = m->hva;
	}
	return 0;
}

/* Sets up a session from its Hello (packed in @buf). */
static int setup_session(struct peer *p, const uint8_t *buf, size_t len,
			 int fresh)
{
	Ptrack__V1__Hello *h;
	struct pt_error e = { 0 };
	size_t i;
	int r;

	unmap_dest(p);
	memset(&p->lay, 0, sizeof(p->lay));
	h = ptrack__v1__hello__unpack(NULL, len, buf);
	if (!h)
		return -EBADMSG;
	r = pt_layout_from_hello(&p->lay, h, &e);
	p->session_id = h->session_id;
	ptrack__v1__hello__free_unpacked(h, NULL);
	if (r)
		return r;
	free(p->hello);
	p->hello = malloc(len ? len : 1);
	if (!p->hello)
		return -ENOMEM;
	memcpy(p->hello, buf, len);
	p->hello_len = len;
	/* Before anything is allocated for it. */
	if (p->o->max_mem &&
	    pt_layout_offset(&p->lay, p->lay.n) > p->o->max_mem)
		return -E2BIG;
	r = alloc_audit(p);
	if (r)
		return r;
	if (p->o->incoming)
		return attach_incoming(p, buf, len);
	r = open_dest(p, fresh);
	for (i = 0; !r && i < p->lay.n; i++)
		p->base[i] = p->mem + p->off[i];
	return r;
}

/* A restarted peer picks its session up from the state file. */
static int load_state(struct peer *p)
{
	char path[PATH_MAX];
	struct state_hdr h;
	uint8_t *hello;
	int fd, r = -EINVAL;

	if (!p->o->state_dir || !p->o->mem_path)
		return 0;
	snprintf(path, sizeof(path), "%s/session.state", p->o->state_dir);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	if (read(fd, &h, sizeof(h)) != sizeof(h) || h.magic != STATE_MAGIC ||
	    h.hello_len > PT_MSG_MAX)
		goto close_fd;
	hello = malloc(h.hello_len ? h.hello_len : 1);
	if (!hello) {
		r = -ENOMEM;
		goto close_fd;
	}
	if (read(fd, hello, h.hello_len) == (ssize_t)h.hello_len &&
	    state_crc(&h, hello) == h.crc)
		r = setup_session(p, hello, h.hello_len, 0);
	free(hello);
	if (!r) {
		p->have_session = 1;
		p->last_seq = h.last_seq;
		p->complete = !!(h.flags & STATE_F_COMPLETE);
		p->res->resumed = 1;
		p->res->session_id = h.session_id;
	}
close_fd:
	close(fd);
	if (r)
		return fail(p, E(SESSION), -r, "state file %s unusable: %s",
			    path, strerror(-r));
	return 0;
}

/* ---- frames ----------------------------------------------------------- */

static int on_hello(struct peer *p, const struct pt_frame *f, struct pt_msg *m)
{
	int r;

	if (m->u.hello->role != PTRACK__V1__ROLE__ROLE_SOURCE)
		return send_error(
			p, E(SESSION), EPROTO,
			"Hello from a peer: only a source sends here");
	if (m->seq != 1)
		return send_error(p, E(SEQUENCE), EPROTO,
				  "Hello with seq %" PRIu64 ", expected 1",
				  m->seq);
	/* What a completed migration left is the guest: no new session
	 * overwrites it. */
	if (p->complete)
		return send_error(p, E(SESSION), EBUSY,
				  "this destination holds a completed "
				  "migration");
	r = invalidate_state(p);
	if (r)
		return send_error(p, E(INTERNAL), -r,
				  "cannot invalidate the session state: %s",
				  strerror(-r));
	p->have_session = 0;
	p->conn_ok = 0;
	p->res->resumed = 0; /* a new session replaces any restored one */
	r = setup_session(p, f->msg, f->hdr.msg_len, 1);
	if (r == -E2BIG)
		return send_error(p, E(NO_SPACE), E2BIG,
				  "guest of %" PRIu64
				  " bytes is over this destination's limit "
				  "of %" PRIu64,
				  pt_layout_offset(&p->lay, p->lay.n),
				  p->o->max_mem);
	if (r == -ENOENT && p->o->incoming)
		return send_error(p, E(NO_INCOMING), ENOENT,
				  "no incoming VM '%s' here (the incoming VM "
				  "is '%s')",
				  m->u.hello->vm_name, p->o->incoming->name);
	if (r == -EXDEV)
		return send_error(p, E(NO_INCOMING), EXDEV,
				  "incoming VM '%s' has another memory layout",
				  p->o->incoming->name);
	if (r == -ENOSPC || r == -EDQUOT || r == -EFBIG)
		return send_error(p, E(NO_SPACE), ENOSPC,
				  "destination %s cannot hold %" PRIu64
				  " bytes: %s",
				  p->o->mem_path ? p->o->mem_path : "memfd",
				  p->mem_size, strerror(-r));
	if (r)
		return send_error(p, E(INTERNAL), -r,
				  "cannot set up destination memory: %s",
				  strerror(-r));
	p->have_session = 1;
	p->conn_ok = 1;
	p->last_seq = 1;
	p->res->session_id = p->session_id;
	r = persist(p);
	if (r)
		return send_error(p, r == -ENOSPC ? E(NO_SPACE) : E(INTERNAL),
				  -r, "cannot persist session state: %s",
				  strerror(-r));
	m->u.hello->role = PTRACK__V1__ROLE__ROLE_PEER;
	/* What this side does, not an echo of the source's wishes. */
	m->u.hello->features = PTRACK__V1__FEATURE__FEATURE_RLE_BITMAP |
			       PTRACK__V1__FEATURE__FEATURE_ZERO_PAGES |
			       PTRACK__V1__FEATURE__FEATURE_RESUME;
	if (p->o->incoming)
		m->u.hello->features |= PTRACK__V1__FEATURE__FEATURE_SWITCHOVER;
	return send_msg(p, T(HELLO), m->u.base);
}

static int send_resumed(struct peer *p)
{
	Ptrack__V1__Resumed m = PTRACK__V1__RESUMED__INIT;

	m.session_id = p->session_id;
	return send_msg(p, T(RESUMED), &m.base);
}

static int on_resume(struct peer *p, const struct pt_msg *m)
{
	Ptrack__V1__Ack a = PTRACK__V1__ACK__INIT;
	int r;

	if (!p->have_session || m->u.resume->session_id != p->session_id)
		return send_error(p, E(SESSION), EPROTO,
				  "no such session here");
	p->conn_ok = 1;
	if (p->complete)
		p->complete_confirmed = 1;
	a.seq = p->last_seq;
	p->since_ack = 0;
	r = send_msg(p, T(ACK), &a.base);
	/* The question a source asks after losing us past Complete. */
	if (!r && p->resumed)
		r = send_resumed(p);
	return r;
}

/* A new round's dirty set replaces the previous round's. */
static void track_round(struct peer *p, uint64_t round)
{
	size_t i, n;

	if (round == p->dirty_round)
		return;
	p->dirty_round = round;
	for (i = 0; i < p->lay.n; i++) {
		n = pt_bitmap_words(p->lay.r[i].npages) * 8;
		memset(p->round_dirty[i], 0, n);
		memset(p->stale[i], 0, n);
	}
}

static void mark_dirty(struct peer *p, size_t ri, uint64_t page)
{
	p->round_dirty[ri][page / 64] |= 1ull << (page % 64);
	p->stale[ri][page / 64] |= 1ull << (page % 64);
}

static void on_bitmap(struct peer *p, const struct pt_msg *m)
{
	const Ptrack__V1__DirtyBitmap *b = m->u.bitmap;
	size_t ri = (size_t)(m->region - p->lay.r);
	uint64_t i;

	track_round(p, b->round);
	for (i = 0; i < b->page_count; i++)
		if ((m->words[i / 64] >> (i % 64)) & 1)
			mark_dirty(p, ri, b->first_page + i);
}

static void on_ring(struct peer *p, const struct pt_msg *m)
{
	const struct pt_region *rg;
	uint64_t i, gpa;

	track_round(p, m->u.ring->round);
	for (i = 0; i < m->u.ring->count; i++) {
		gpa = m->gfns[i] << PT_GFN_SHIFT;
		rg = pt_layout_find_gpa(&p->lay, gpa);
		mark_dirty(p, (size_t)(rg - p->lay.r),
			   (gpa - rg->gpa_base) >> rg->page_shift);
	}
}

static void on_pages(struct peer *p, const struct pt_msg *m)
{
	const Ptrack__V1__PageData *d = m->u.pages;
	size_t ri = (size_t)(m->region - p->lay.r);
	uint32_t ps = m->region->page_size;
	const uint8_t *src = m->payload;
	uint64_t i, idx;
	uint8_t *dst;

	for (i = 0; i < m->n_pages; i++) {
		idx = d->n_pages ? m->page_idx[i] : d->first_page + i;
		dst = p->base[ri] + idx * ps;
		if (pt_msg_page_is_zero(m, i)) {
			memset(dst, 0, ps);
			p->res->zero_pages++;
		} else if (src) { /* NULL: received in place */
			memcpy(dst, src, ps);
			src += ps;
		}
		p->stale[ri][idx / 64] &= ~(1ull << (idx % 64));
	}
	p->res->pages += m->n_pages;
}

static uint64_t count_stale(struct peer *p)
{
	uint64_t n = 0;
	size_t i;

	for (i = 0; i < p->lay.n; i++)
		n += pt_bitmap_count(p->stale[i],
				     pt_bitmap_words(p->lay.r[i].npages));
	return n;
}

static void on_iter(struct peer *p, const struct pt_msg *m)
{
	p->res->rounds = m->u.iter->round + 1;
	p->res->stale_pages = count_stale(p);
	if (!p->o->quiet)
		fprintf(stderr,
			"peer: round %" PRIu64 " stored: %" PRIu64
			" dirty, %" PRIu64 " pages, %" PRIu64 " stale%s\n",
			m->u.iter->round, m->u.iter->dirty_pages,
			m->u.iter->pages_sent + m->u.iter->zero_pages,
			p->res->stale_pages,
			m->u.iter->final ? " (final)" : "");
}

static int on_complete(struct peer *p, const struct pt_msg *m)
{
	const Ptrack__V1__Complete *c = m->u.complete;
	const struct pt_region *rg;
	uint32_t crc;
	size_t i;

	if (c->n_checksums != p->lay.n)
		return send_error(p, E(CHECKSUM), EBADMSG,
				  "Complete has %zu checksums for %zu regions",
				  c->n_checksums, p->lay.n);
	for (i = 0; i < c->n_checksums; i++) {
		rg = pt_layout_find(&p->lay, c->checksums[i]->region);
		crc = pt_crc32c(0, p->base[rg - p->lay.r], rg->size);
		if (crc != c->checksums[i]->crc32c)
			return send_error(
				p, E(CHECKSUM), EBADMSG,
				"region %u: CRC32C 0x%08x, source says 0x%08x",
				rg->id, crc, c->checksums[i]->crc32c);
	}
	if (p->o->incoming &&
	    (!p->state_total || p->state_got != p->state_total ||
	     pt_crc32c(0, p->state, p->state_total) != p->state_crc))
		return send_error(p, E(STATE), EBADMSG,
				  "VMM state incomplete or corrupt: %" PRIu64
				  " of %" PRIu64 " bytes",
				  p->state_got, p->state_total);
	p->complete = 1; /* persisted by the Ack that follows */
	return PEER_DONE;
}

/* A chunk of the VMM's state: in order, consistent, only for a VM. */
static int on_state(struct peer *p, const struct pt_msg *m)
{
	const Ptrack__V1__VmmState *st = m->u.state;

	if (!p->o->incoming)
		return send_error(p, E(STATE), EPROTO,
				  "VMM state sent, but no incoming VM here");
	if (!p->state) {
		if (st->offset)
			goto out_order;
		p->state = malloc(st->total);
		if (!p->state)
			return send_error(p, E(INTERNAL), ENOMEM,
					  "no memory for %" PRIu64
					  " bytes of VMM state",
					  st->total);
		p->state_total = st->total;
		p->state_crc = st->crc32c;
	}
	if (st->offset != p->state_got || st->total != p->state_total ||
	    st->crc32c != p->state_crc)
		goto out_order;
	memcpy(p->state + st->offset, m->payload, st->length);
	p->state_got += st->length;
	return 0;
out_order:
	return send_error(p, E(STATE), EBADMSG,
			  "VMM state chunk %" PRIu64 "+%" PRIu64 " of %" PRIu64
			  " out of order (have %" PRIu64 " of %" PRIu64 ")",
			  st->offset, st->length, st->total, p->state_got,
			  p->state_total);
}

/*
 * Memory verified and Complete acked: the incoming VMM loads the state,
 * the resume is recorded, then the vCPUs run and the source hears
 * Resumed. Recorded first: a peer that dies in between must answer
 * "resumed" (the guest may run), never let the source resume a second
 * copy. Any failure stops the incoming VM and tells the source, whose
 * guest then resumes there.
 */
static int switchover(struct peer *p)
{
	struct pt_dirty_source *in = p->o->incoming;
	int r = in->ops->load_state(in, p->state, p->state_total);

	if (r) {
		in->ops->stop(in);
		return send_error(p, E(STATE), -r,
				  "the incoming VMM refused the state: %s",
				  strerror(-r));
	}
	p->resumed = 1;
	r = persist(p);
	if (r) {
		p->resumed = 0;
		in->ops->stop(in);
		return send_error(p, E(RESUME_FAILED), -r,
				  "cannot record the switchover: %s",
				  strerror(-r));
	}
	r = in->ops->resume(in);
	if (r) {
		p->resumed = 0;
		persist(p);
		in->ops->stop(in);
		return send_error(p, E(RESUME_FAILED), -r,
				  "the incoming VMM cannot resume: %s",
				  strerror(-r));
	}
	p->res->switched_over = 1;
	/* The source hears it on this connection or, if that broke, when
	 * it reconnects and resumes the session. */
	send_resumed(p);
	return PEER_DONE;
}

static int ack(struct peer *p)
{
	Ptrack__V1__Ack a = PTRACK__V1__ACK__INIT;
	int r = persist(p);

	if (r)
		return send_error(p, r == -ENOSPC ? E(NO_SPACE) : E(INTERNAL),
				  -r, "cannot persist session state: %s",
				  strerror(-r));
	p->since_ack = 0;
	a.seq = p->last_seq;
	return send_msg(p, T(ACK), &a.base);
}

/* Stores one stream frame; duplicates of stored ones are only acked. */
static int on_stream(struct peer *p, const struct pt_msg *m)
{
	int r = 0;

	if (m->seq <= p->last_seq) {
		p->res->duplicates++;
		return m->flags & PT_FRAME_F_ACK_REQ ? ack(p) : 0;
	}
	if (m->seq != p->last_seq + 1)
		return send_error(p, E(SEQUENCE), EPROTO,
				  "frame %" PRIu64 " after %" PRIu64, m->seq,
				  p->last_seq);
	switch (m->type) {
	case T(DIRTY_BITMAP):
		on_bitmap(p, m);
		break;
	case T(DIRTY_RING):
		on_ring(p, m);
		break;
	case T(PAGE_DATA):
		on_pages(p, m);
		break;
	case T(ITERATION_DONE):
		on_iter(p, m);
		break;
	case T(VMM_STATE):
		r = on_state(p, m);
		if (r < 0)
			return r;
		break;
	case T(COMPLETE):
		r = on_complete(p, m);
		if (r < 0)
			return r;
		break;
	default:
		return send_error(p, E(SESSION), EPROTO,
				  "unexpected message type %u", m->type);
	}
	p->last_seq = m->seq;
	p->res->frames++;
	if (r == PEER_DONE || m->flags & PT_FRAME_F_ACK_REQ ||
	    ++p->since_ack >= p->o->ack_every) {
		int a = ack(p);

		if (a)
			return a;
	}
	return r;
}

static int on_msg(struct peer *p, const struct pt_frame *f, struct pt_msg *m)
{
	if (m->type == T(HELLO))
		p->hello_tried = 1;
	switch (m->type) {
	case T(HELLO):
		return on_hello(p, f, m);
	case T(RESUME):
		return on_resume(p, m);
	case T(ERROR):
		return fail(p, m->u.error->code, ECONNABORTED, "source: %s: %s",
			    pt_error_name(m->u.error->code), m->u.error->text);
	case T(ACK):
		return 0;
	default:
		if (!p->conn_ok)
			return send_error(p, E(SESSION), EPROTO,
					  "no Hello or Resume on this "
					  "connection");
		return on_stream(p, m);
	}
}

static int on_frame(struct peer *p, const struct pt_frame *f)
{
	struct pt_error e = { 0 };
	struct pt_msg m;
	int r = pt_msg_decode(f, p->conn_ok ? &p->lay : NULL, &m, &e);

	if (r)
		return send_error(p, e.code, -r, "malformed frame: %s: %s",
				  pt_error_name(e.code), e.text);
	r = on_msg(p, f, &m);
	pt_msg_release(&m);
	return r;
}

/* ---- receiving -------------------------------------------------------- */

/*
 * Reads one whole frame into the frame buffer and checks it, CRC
 * included, before any of it is stored: a bad frame never reaches
 * destination (or incoming guest) memory. The reader gives the header
 * io_timeout to arrive and the rest io_timeout after it (rd.timeout_ms).
 * 1 with @f, 0 at a clean end of stream, or a negative errno with @e.
 */
static int next_frame(struct peer *p, struct pt_frame *f, struct pt_error *e)
{
	return pt_reader_next(&p->rd, f, e);
}

static int is_conn_error(int r)
{
	return r == -EPIPE || r == -ECONNRESET || r == -EAGAIN ||
	       r == -ETIMEDOUT;
}

/*
 * After Resumed: the source hangs up once it read it. Until then the
 * connection is kept; if it breaks instead, the source may not know and
 * will ask again on a new connection (serve() accepts until idle_ms).
 */
static int linger(struct peer *p)
{
	uint8_t b[64];
	ssize_t n;

	do
		n = read(p->fd, b, sizeof(b));
	while (n > 0 || (n < 0 && errno == EINTR));
	return n == 0 ? PEER_DONE : -ECONNRESET;
}

/* Serves one connection: PEER_DONE, a connection error or a failure. */
static int serve_conn(struct peer *p)
{
	struct pt_error e = { 0 };
	struct pt_frame f = { 0 };
	int r;

	for (;;) {
		r = next_frame(p, &f, &e);
		if (r == 0)
			return -ECONNRESET;
		if (r < 0 && (is_conn_error(r) || r == -EWOULDBLOCK))
			return r;
		/* Corrupted in transit (nothing of it was stored): dropping
		 * the connection makes the source resume after the last
		 * acked frame and send it again. */
		if (r < 0 && e.code == E(BAD_CRC) && p->conn_ok &&
		    ++p->bad_crcs <= BAD_CRC_MAX) {
			if (!p->o->quiet)
				fprintf(stderr,
					"peer: frame %" PRIu64
					" arrived corrupted (%s): asking for it again\n",
					f.hdr.seq, e.text);
			return -ECONNRESET;
		}
		if (r < 0)
			return send_error(p, e.code, -r,
					  "malformed frame: %s: %s",
					  pt_error_name(e.code), e.text);
		r = on_frame(p, &f);
		if (r == PEER_DONE && p->o->incoming && !p->resumed)
			r = switchover(p);
		if (r == PEER_DONE && p->resumed)
			return linger(p);
		if (r)
			return r;
	}
}

static int accept_conn(struct peer *p)
{
	struct pollfd pf = { .fd = p->lfd, .events = POLLIN };
	int r = poll(&pf, 1, (int)p->o->idle_ms), fd;
	char err[256];

	/* Restarted after it acked Complete: a success only once that
	 * session's source asked (Resume) and was told; a state file alone
	 * proves nothing about who left it. */
	if (r == 0 && p->complete && p->complete_confirmed)
		return PEER_DONE;
	if (r == 0 && p->complete)
		return fail(p, E(SESSION), ETIMEDOUT,
			    "a completed session %016" PRIx64
			    " was restored, but its source never asked for "
			    "it in %" PRIu64 " ms",
			    p->session_id, p->o->idle_ms);
	if (r == 0)
		return fail(p, E(SESSION), ETIMEDOUT,
			    "no source connected for %" PRIu64 " ms",
			    p->o->idle_ms);
	if (r < 0)
		return -errno;
	fd = accept4(p->lfd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		return -errno;
	/* An unauthenticated party never reaches the protocol, and gets
	 * nothing but the TLS alert. */
	if (p->o->tls)
		fd = pt_link_secure(p->o->tls, fd, NULL, p->o->io_timeout_ms,
				    err, sizeof(err));
	else if (!p->o->quiet) /* quiet: the caller warned (service) */
		pt_link_warn_plain();
	if (fd < 0) {
		if (!p->o->quiet)
			fprintf(stderr, "peer: connection refused: %s\n", err);
		return -ECONNREFUSED;
	}
	p->fd = fd;
	p->conn_ok = p->hello_tried = 0;
	r = pt_sock_timeouts(p->fd, p->o->io_timeout_ms);
	if (!r)
		r = pt_reader_init(&p->rd, p->fd, PT_FRAME_MAX_DEFAULT);
	p->rd.timeout_ms = p->o->io_timeout_ms;
	if (r) {
		close(p->fd);
		p->fd = -1;
	}
	return r;
}

static int serve(struct peer *p)
{
	int r;

	for (;;) {
		r = accept_conn(p);
		if (r == PEER_DONE)
			return 0;
		if (r == -ECONNREFUSED)
			continue; /* the real source may still come */
		if (r)
			return r;
		r = serve_conn(p);
		pt_reader_release(&p->rd);
		close(p->fd);
		p->fd = -1;
		if (r == PEER_DONE)
			return 0;
		/* Garbage, stream frames or a bad Resume from a connection
		 * that never opened a session (or a Hello refused next to a
		 * session that stays): that client goes, the port stays for
		 * the real source. */
		if (!p->conn_ok && (!p->hello_tried || p->have_session)) {
			if (!p->o->quiet)
				fprintf(stderr,
					"peer: dropped a connection that "
					"opened no session: %s\n",
					p->res->err[0] ? p->res->err
						       : strerror(-r));
			p->res->err[0] = 0;
			p->res->code = 0;
			continue;
		}
		/* A broken connection: the source will reconnect. */
		if (!is_conn_error(r) && r != -EWOULDBLOCK)
			return r;
		if (!p->o->quiet)
			fprintf(stderr,
				"peer: connection lost (%s) after seq %" PRIu64
				", waiting for the source to resume\n",
				strerror(-r), p->last_seq);
	}
}

/* What the destination can hold now (pt_peer_opts.max_mem's default). */
static uint64_t default_max_mem(const struct pt_peer_opts *o)
{
	char dir[PATH_MAX], line[128], *slash;
	unsigned long long kib = 0;
	struct statvfs vfs;
	struct stat st;
	uint64_t have;
	FILE *f;

	if (o->incoming)
		return 0; /* the incoming VM's own layout decides */
	if (!o->mem_path) {
		f = fopen("/proc/meminfo", "re");
		while (f && fgets(line, sizeof(line), f))
			if (sscanf(line, "MemAvailable: %llu kB", &kib) == 1)
				break;
		if (f)
			fclose(f);
		return (uint64_t)kib << 10;
	}
	snprintf(dir, sizeof(dir), "%s", o->mem_path);
	slash = strrchr(dir, '/');
	if (slash)
		*(slash == dir ? slash + 1 : slash) = 0;
	else
		snprintf(dir, sizeof(dir), ".");
	if (statvfs(dir, &vfs))
		return 0;
	have = (uint64_t)vfs.f_bavail * vfs.f_frsize;
	/* A file being replaced gives its blocks back first. */
	if (!lstat(o->mem_path, &st) && S_ISREG(st.st_mode))
		have += (uint64_t)st.st_blocks * 512;
	return have;
}

int pt_peer_run(const struct pt_peer_opts *opts, struct pt_peer_result *res)
{
	struct pt_peer_opts o = *opts;
	struct peer p = { .o = &o, .res = res, .fd = -1, .memfd = -1 };
	int r;

	memset(res, 0, sizeof(*res));
	signal(SIGPIPE, SIG_IGN);
	if (!o.ack_every)
		o.ack_every = PT_ACK_EVERY_DEFAULT;
	if (!o.io_timeout_ms)
		o.io_timeout_ms = PT_IO_TIMEOUT_MS_DEFAULT;
	if (!o.idle_ms)
		o.idle_ms = 60000;
	if (!o.max_mem)
		o.max_mem = default_max_mem(&o);
	p.lfd = o.lfd >= 0 ? o.lfd : pt_tcp_listen(o.listen);
	if (p.lfd < 0)
		return fail(&p, E(INTERNAL), -p.lfd, "cannot listen on %s: %s",
			    o.listen, strerror(-p.lfd));
	r = pt_txframe_init(&p.tx);
	if (!r)
		r = load_state(&p);
	if (!r)
		r = serve(&p);
	if (r && !res->err[0])
		fail(&p, E(INTERNAL), -r, "%s", strerror(-r));
	pt_txframe_release(&p.tx);
	unmap_dest(&p);
	free(p.hello);
	if (o.lfd < 0)
		close(p.lfd);
	return r;
}
