// SPDX-License-Identifier: MIT
/*
 * Peer side of the streaming engine, the privileged half (peer_ps.h): it
 * listens, owns the session, the destination memory (a file or memfd, or
 * the incoming VM's regions), the persisted state and the switchover, and
 * never parses a byte a source sent. Every connection is served at the
 * same time as the others by its own forked, unprivileged child
 * (peer_conn.c), so a client that stalls or sends garbage costs only its
 * own child, never the port. A child gets the destination memory only
 * once it reported a verified Hello (or a Resume with the session's
 * secret) and this side matched it; binding another connection to the
 * session first kills the previous one, so one writer at a time.
 *
 * With a state directory, the session (id, secret, layout, last stored
 * seq) is persisted with fsync before every Ack, so a peer restarted by
 * its supervisor answers a Resume and the stream continues where it was.
 * The destination pages are in the shared file mapping, which outlives
 * the process; surviving a host crash as well would need an msync per Ack.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "codec/crc32c.h"
#include "codec/frame.h"
#include "codec/msg.h"
#include "engine/migrate.h"
#include "engine/peer_ps.h"
#include "engine/tls.h"

#define E(name) PTRACK__V1__ERROR_CODE__ERROR_##name
#define STATE_MAGIC 0x33535450u /* "PTS3" */
#define STATE_F_COMPLETE 1u /* Complete was verified and acked */
/* The incoming VMM was told to resume the guest (set before it is). */
#define STATE_F_RESUMED 2u
#define PEER_DONE 1
#define BAD_CRC_MAX 16
/* Connections served at once; more are closed at accept. */
#define CONN_MAX 16

struct state_hdr {
	uint32_t magic;
	uint32_t body_len;
	uint64_t session_id;
	uint64_t last_seq;
	uint32_t flags; /* STATE_F_* */
	uint32_t crc; /* over the fields above and the body */
};

struct state_body {
	uint32_t secret_len;
	uint8_t secret[PS_SECRET_MAX];
	uint32_t pad;
	struct pt_layout lay;
};

struct conn {
	int ctl; /* -1: a free slot */
	pid_t pid;
	int pidfd;
	pthread_t th; /* privsep_thread */
	int reaped, status; /* waitpid's, once the child ended */
	/* Killed if still unbound then: a child stuck before it could
	 * even report (the frame reader and the handshake have their own
	 * deadlines, this one does not trust them). 0: bound. */
	uint64_t deadline;
};

struct peer {
	const struct pt_peer_opts *o;
	struct pt_peer_result *res;
	int lfd;
	uid_t uid;
	gid_t gid;

	int have_session;
	int complete; /* this session's Complete was verified */
	int resumed;
	/* The restored complete session's own source asked for it. */
	int complete_confirmed;
	uint64_t session_id, last_seq;
	uint32_t secret_len;
	uint8_t secret[PS_SECRET_MAX];
	struct pt_layout lay;
	int memfd;
	uint64_t mem_size;
	/* Switchover into o->incoming: the VMM state blob as it arrives. */
	uint8_t *state;
	uint64_t state_got, state_total;
	uint32_t state_crc;
	unsigned int bad_crcs; /* frames dropped for retransmission */

	struct conn c[CONN_MAX];
	unsigned int nconns;
	int bound; /* the connection that may write the memory, -1 */
	int listening; /* lfd is polled */
	uint8_t *buf;
};

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

/* Tells connection @i why its request is refused (it tells the source). */
static int refuse(struct peer *p, unsigned int i, int code, int err,
		  const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static int refuse(struct peer *p, unsigned int i, int code, int err,
		  const char *fmt, ...)
{
	struct ps_reply r = { .code = code, .err = err };
	va_list ap;

	va_start(ap, fmt);
	// NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized)
	vsnprintf(r.text, sizeof(r.text), fmt, ap);
	va_end(ap);
	ps_send(p->c[i].ctl, PS_REFUSE, &r, sizeof(r), NULL, 0);
	return 0;
}

static int reply_ok(struct peer *p, unsigned int i)
{
	struct ps_reply r = { 0 };

	ps_send(p->c[i].ctl, PS_OK, &r, sizeof(r), NULL, 0);
	return 0;
}

/* ---- session state ---------------------------------------------------- */

static uint32_t state_crc(const struct state_hdr *h, const void *body)
{
	uint32_t c = pt_crc32c(0, h, offsetof(struct state_hdr, crc));

	return pt_crc32c(c, body, h->body_len);
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
			       .body_len = sizeof(struct state_body),
			       .session_id = p->session_id,
			       .last_seq = p->last_seq,
			       .flags = (p->complete ? STATE_F_COMPLETE : 0) |
					(p->resumed ? STATE_F_RESUMED : 0) };
	char tmp[PATH_MAX], path[PATH_MAX];
	struct state_body b;
	int fd, r;

	if (!p->o->state_dir)
		return 0;
	memset(&b, 0, sizeof(b));
	b.secret_len = p->secret_len;
	memcpy(b.secret, p->secret, sizeof(b.secret));
	memcpy(&b.lay, &p->lay, sizeof(b.lay));
	h.crc = state_crc(&h, &b);
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
		r = write_all(fd, &b, sizeof(b));
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

/*
 * A layout from a child (or the state file) is data to check, not to
 * trust: rebuilt region by region with the codec's validation (page
 * sizes, alignment, no overlap, no wrap-around).
 */
static int layout_check(struct pt_layout *dst, const struct pt_layout *src)
{
	struct pt_error e = { 0 };
	size_t i;
	int r;

	memset(dst, 0, sizeof(*dst));
	if (!src->n || src->n > PT_LAYOUT_MAX_REGIONS)
		return -EINVAL;
	for (i = 0; i < src->n; i++) {
		r = pt_layout_add(dst, src->r[i].id, src->r[i].gpa_base,
				  src->r[i].size, src->r[i].page_size, &e);
		if (r)
			return r;
	}
	return 0;
}

/* ---- destination memory ----------------------------------------------- */

static void drop_dest(struct peer *p)
{
	if (p->memfd >= 0)
		close(p->memfd);
	p->memfd = -1;
	free(p->state);
	p->state = NULL;
	p->state_got = p->state_total = 0;
}

/* Opened here, mapped only by the connection child that gets it. */
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
	return 0;
}

/*
 * The incoming VM takes this session if it is the same guest (UUID, else
 * name) with the same memory layout; its regions' fds then go to the
 * child, which writes in place. -ENOENT: not this guest, -EXDEV: another
 * layout.
 */
static int incoming_fds(struct peer *p, int *fds, uint64_t *offs)
{
	const struct pt_dirty_source *in = p->o->incoming;
	const struct pt_mem_region *m;
	size_t i, j;

	if (in->nregions != p->lay.n)
		return -EXDEV;
	for (i = 0; i < p->lay.n; i++) {
		const struct pt_region *rg = &p->lay.r[i];

		for (j = 0, m = NULL; j < in->nregions && !m; j++)
			if (in->regions[j].id == rg->id)
				m = &in->regions[j];
		if (!m || m->fd < 0 || m->gpa_base != rg->gpa_base ||
		    m->size != rg->size || m->page_size != rg->page_size)
			return -EXDEV;
		fds[i] = m->fd;
		offs[i] = (uint64_t)m->offset;
	}
	return 0;
}

static int match_incoming(struct peer *p, const struct ps_session *s, int *fds,
			  uint64_t *offs)
{
	const struct pt_dirty_source *in = p->o->incoming;

	if (memcmp(s->uuid, in->uuid, 16) != 0 &&
	    (s->name_len >= PS_NAME || strcmp(s->name, in->name) != 0))
		return -ENOENT;
	return incoming_fds(p, fds, offs);
}

/* A restarted peer picks its session up from the state file. */
static int load_state(struct peer *p)
{
	char path[PATH_MAX];
	struct state_hdr h;
	struct state_body b;
	int fd, r = -EINVAL;

	if (!p->o->state_dir || !p->o->mem_path)
		return 0;
	if (state_path(p, path, sizeof(path), "session.state"))
		return fail(p, E(SESSION), ENAMETOOLONG, "state path too long");
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	if (read(fd, &h, sizeof(h)) != sizeof(h) || h.magic != STATE_MAGIC ||
	    h.body_len != sizeof(b) || read(fd, &b, sizeof(b)) != sizeof(b) ||
	    state_crc(&h, &b) != h.crc || b.secret_len > PS_SECRET_MAX)
		goto close_fd;
	r = layout_check(&p->lay, &b.lay);
	if (r)
		goto close_fd;
	p->mem_size = pt_layout_offset(&p->lay, p->lay.n);
	r = open_dest(p, 0);
	if (r) {
		drop_dest(p);
		goto close_fd;
	}
	p->have_session = 1;
	p->session_id = h.session_id;
	p->last_seq = h.last_seq;
	p->complete = !!(h.flags & STATE_F_COMPLETE);
	p->secret_len = b.secret_len;
	memcpy(p->secret, b.secret, sizeof(p->secret));
	p->res->resumed = 1;
	p->res->session_id = h.session_id;
	p->res->mem_size = p->mem_size;
close_fd:
	close(fd);
	if (r)
		return fail(p, E(SESSION), -r, "state file %s unusable: %s",
			    path, strerror(-r));
	return 0;
}

/* ---- connections ------------------------------------------------------ */

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Ends connection @i's child now and frees its slot. */
static void conn_kill(struct peer *p, unsigned int i, int now)
{
	struct conn *c = &p->c[i];
	struct pollfd pf;

	if (c->ctl < 0)
		return;
	if (p->o->privsep_thread) {
		shutdown(c->ctl, SHUT_RDWR);
		pthread_join(c->th, NULL);
	} else {
		/* A child that said it ended has a moment to flush the
		 * link's last records; one that did not is killed. */
		pf = (struct pollfd){ .fd = c->pidfd, .events = POLLIN };
		if (!c->reaped && (now || poll(&pf, 1, 6000) != 1))
			kill(c->pid, SIGKILL);
		while (!c->reaped && waitpid(c->pid, NULL, 0) < 0 &&
		       errno == EINTR)
			;
		close(c->pidfd);
		c->reaped = 0;
	}
	close(c->ctl);
	c->ctl = -1;
	p->nconns--;
	if (p->bound == (int)i)
		p->bound = -1;
}

/* How connection @i's child ended, once it did (waiting at most @ms). */
static void conn_reap(struct peer *p, unsigned int i, int ms)
{
	struct conn *c = &p->c[i];
	struct pollfd pf = { .fd = c->pidfd, .events = POLLIN };

	if (p->o->privsep_thread || c->reaped || poll(&pf, 1, ms) != 1)
		return;
	while (waitpid(c->pid, &c->status, 0) < 0)
		if (errno != EINTR)
			return;
	c->reaped = 1;
}

/*
 * Whether the destination memory is still whole: a file (or an incoming
 * VM's region) shrunk under the migration makes the child's stores fault
 * (SIGBUS). That ends the child, never this process, and fails the
 * session. 0, or -EFAULT with the reason in @why.
 */
static int dest_check(struct peer *p, char *why, size_t len)
{
	const struct pt_dirty_source *in = p->o->incoming;
	struct stat st;
	size_t k;

	if (!in) {
		if (p->memfd >= 0 && !fstat(p->memfd, &st) &&
		    (uint64_t)st.st_size < p->mem_size) {
			snprintf(why, len,
				 "destination %s shrank to %" PRIu64
				 " of %" PRIu64 " bytes under the migration",
				 p->o->mem_path ? p->o->mem_path : "memfd",
				 (uint64_t)st.st_size, p->mem_size);
			return -EFAULT;
		}
		return 0;
	}
	for (k = 0; k < in->nregions; k++)
		if (in->regions[k].fd >= 0 && !fstat(in->regions[k].fd, &st) &&
		    S_ISREG(st.st_mode) &&
		    (uint64_t)st.st_size < (uint64_t)in->regions[k].offset +
						   in->regions[k].size) {
			snprintf(why, len,
				 "incoming VM '%s': region %u shrank under "
				 "the migration",
				 in->name, in->regions[k].id);
			return -EFAULT;
		}
	return 0;
}

/* Before another connection gets the memory: the old writer is gone. */
static void unbind_others(struct peer *p, unsigned int i)
{
	if (p->bound >= 0 && p->bound != (int)i)
		conn_kill(p, (unsigned int)p->bound, 1);
}

struct conn_arg {
	const struct pt_peer_opts *o;
	int tcp, ctl;
};

static void *conn_thread(void *arg)
{
	struct conn_arg a = *(struct conn_arg *)arg;

	free(arg);
	ps_conn_main(a.o, a.tcp, a.ctl);
	close(a.ctl);
	return NULL;
}

/* The child: nothing of the daemon but this connection, then serve it. */
static void __attribute__((noreturn))
conn_child(struct peer *p, pid_t parent, int tcp, int ctl)
{
	int keep[2] = { tcp, ctl }, r;

	prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
	if (getppid() != parent)
		_exit(1);
	r = ps_drop(keep, 2, p->uid, p->gid);
	if (r) {
		/* Never serve a connection with the daemon's privileges: the
		 * peer fails, saying why. */
		struct ps_end e = { .r = r, .code = E(INTERNAL), .conn_ok = 1 };

		snprintf(e.err, sizeof(e.err),
			 "cannot drop the connection's privileges: %s",
			 strerror(-r));
		ps_send(ctl, PS_END, &e, sizeof(e), NULL, 0);
		_exit(1);
	}
	ps_conn_main(p->o, tcp, ctl);
	/* The final Ack may still be in the TLS relay. */
	pt_tls_free((struct pt_tls *)p->o->tls);
	_exit(0);
}

static int conn_spawn(struct peer *p, struct conn *c, int tcp, int ctl)
{
	struct conn_arg *a;
	pid_t parent = getpid();

	if (p->o->privsep_thread) {
		a = malloc(sizeof(*a));
		if (!a)
			return -ENOMEM;
		*a = (struct conn_arg){ .o = p->o, .tcp = tcp, .ctl = ctl };
		if (pthread_create(&c->th, NULL, conn_thread, a)) {
			free(a);
			return -EAGAIN;
		}
		return 0;
	}
	c->pid = fork();
	if (c->pid < 0)
		return -errno;
	if (c->pid == 0)
		conn_child(p, parent, tcp, ctl);
	c->pidfd = (int)syscall(SYS_pidfd_open, c->pid, 0);
	if (c->pidfd < 0) {
		kill(c->pid, SIGKILL);
		waitpid(c->pid, NULL, 0);
		return -errno;
	}
	close(tcp);
	close(ctl);
	return 0;
}

static int accept_one(struct peer *p)
{
	int fd = accept4(p->lfd, NULL, NULL, SOCK_CLOEXEC), sv[2], r;
	unsigned int i;

	if (fd < 0 &&
	    (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED))
		return 0;
	/* The listener was shut down (the service stops this session):
	 * connections under way run to their end, no new one comes. */
	if (fd < 0 && p->nconns) {
		p->listening = 0;
		return 0;
	}
	if (fd < 0)
		return -errno;
	for (i = 0; i < CONN_MAX && p->c[i].ctl >= 0; i++)
		;
	if (i == CONN_MAX) {
		if (!p->o->quiet)
			fprintf(stderr,
				"peer: %d connections at once: "
				"refusing one more\n",
				CONN_MAX);
		close(fd);
		return 0;
	}
	if (!p->o->tls && !p->o->quiet) /* quiet: the caller warned */
		pt_link_warn_plain();
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv)) {
		r = -errno;
		close(fd);
		return r;
	}
	r = conn_spawn(p, &p->c[i], fd, sv[1]);
	if (r) {
		close(fd);
		close(sv[0]);
		close(sv[1]);
		return r;
	}
	p->c[i].ctl = sv[0];
	p->c[i].deadline = now_ms() + 3 * (uint64_t)p->o->io_timeout_ms + 1000;
	p->nconns++;
	return 0;
}

/* ---- what a connection asks ------------------------------------------- */

static int bind_conn(struct peer *p, unsigned int i, int fresh)
{
	struct ps_bind b = { .session_id = p->session_id,
			     .last_seq = p->last_seq,
			     .mem_size = p->mem_size,
			     .incoming = !!p->o->incoming,
			     .resumed = (uint32_t)p->resumed,
			     .fresh = (uint32_t)fresh };
	int fds[PT_LAYOUT_MAX_REGIONS];
	size_t k;

	char why[256];

	if (dest_check(p, why, sizeof(why)))
		return fail(p, E(INTERNAL), EFAULT, "%s", why);
	b.lay = p->lay;
	b.crc_left = p->bad_crcs < BAD_CRC_MAX ? BAD_CRC_MAX - p->bad_crcs : 0;
	if (p->o->incoming) {
		if (incoming_fds(p, fds, b.fd_off))
			return refuse(p, i, E(NO_INCOMING), EXDEV,
				      "incoming VM '%s' has another memory "
				      "layout",
				      p->o->incoming->name);
		b.nfds = (uint32_t)p->lay.n;
	} else {
		fds[0] = p->memfd;
		b.nfds = 1;
	}
	for (k = 0; k < b.nfds; k++)
		if (fds[k] < 0)
			return refuse(p, i, E(INTERNAL), EBADF,
				      "no destination memory");
	p->bound = (int)i;
	p->c[i].deadline = 0;
	if (ps_send(p->c[i].ctl, PS_BIND, &b, sizeof(b), fds, b.nfds))
		conn_kill(p, i, 1);
	return 0;
}

static int on_hello(struct peer *p, unsigned int i, struct ps_session *s)
{
	uint64_t offs[PT_LAYOUT_MAX_REGIONS];
	int fds[PT_LAYOUT_MAX_REGIONS];
	int r;

	s->name[PS_NAME - 1] = 0;
	/* What a completed migration left is the guest: no new session
	 * overwrites it. */
	if (p->complete)
		return refuse(p, i, E(SESSION), EBUSY,
			      "this destination holds a completed migration");
	r = invalidate_state(p);
	if (r)
		return refuse(p, i, E(INTERNAL), -r,
			      "cannot invalidate the session state: %s",
			      strerror(-r));
	unbind_others(p, i);
	p->have_session = 0;
	p->res->resumed = 0; /* a new session replaces any restored one */
	drop_dest(p);
	r = layout_check(&p->lay, &s->lay);
	if (r)
		return refuse(p, i, E(INTERNAL), -r,
			      "cannot set up destination memory: %s",
			      strerror(-r));
	p->session_id = s->session_id;
	p->mem_size = pt_layout_offset(&p->lay, p->lay.n);
	p->res->mem_size = p->mem_size;
	/* Before anything is allocated for it. */
	if (p->o->max_mem && p->mem_size > p->o->max_mem)
		return refuse(p, i, E(NO_SPACE), E2BIG,
			      "guest of %" PRIu64
			      " bytes is over this destination's limit of "
			      "%" PRIu64,
			      p->mem_size, p->o->max_mem);
	if (p->o->incoming) {
		r = match_incoming(p, s, fds, offs);
		if (r == -ENOENT)
			return refuse(p, i, E(NO_INCOMING), ENOENT,
				      "no incoming VM '%s' here (the incoming "
				      "VM is '%s')",
				      s->name, p->o->incoming->name);
		if (r)
			return refuse(p, i, E(NO_INCOMING), EXDEV,
				      "incoming VM '%s' has another memory "
				      "layout",
				      p->o->incoming->name);
	} else {
		r = open_dest(p, 1);
	}
	if (r == -ENOSPC || r == -EDQUOT || r == -EFBIG)
		return refuse(p, i, E(NO_SPACE), ENOSPC,
			      "destination %s cannot hold %" PRIu64
			      " bytes: %s",
			      p->o->mem_path ? p->o->mem_path : "memfd",
			      p->mem_size, strerror(-r));
	if (r)
		return refuse(p, i, E(INTERNAL), -r,
			      "cannot set up destination memory: %s",
			      strerror(-r));
	p->have_session = 1;
	p->last_seq = 1;
	p->bad_crcs = 0;
	p->secret_len = s->secret_len <= PS_SECRET_MAX ? s->secret_len : 0;
	memcpy(p->secret, s->secret, sizeof(p->secret));
	p->res->session_id = p->session_id;
	r = persist(p);
	if (r)
		return refuse(p, i, r == -ENOSPC ? E(NO_SPACE) : E(INTERNAL),
			      -r, "cannot persist session state: %s",
			      strerror(-r));
	return bind_conn(p, i, 1);
}

/* Whether @s proves the session: its id and its secret (in constant
 * time). A session whose Hello had no secret cannot be resumed. */
static int session_proven(const struct peer *p, const struct ps_session *s)
{
	uint8_t d = 0;
	size_t k;

	if (!p->have_session || s->session_id != p->session_id ||
	    !p->secret_len || s->secret_len != p->secret_len)
		return 0;
	for (k = 0; k < p->secret_len; k++)
		d |= p->secret[k] ^ s->secret[k];
	return d == 0;
}

static int on_resume(struct peer *p, unsigned int i, const struct ps_session *s)
{
	if (!session_proven(p, s))
		return refuse(p, i, E(SESSION), EPROTO, "no such session here");
	unbind_others(p, i);
	if (p->complete)
		p->complete_confirmed = 1;
	return bind_conn(p, i, 0);
}

static void add_stats(struct peer *p, const struct ps_stats *st)
{
	p->res->frames += st->frames;
	p->res->pages += st->pages;
	p->res->zero_pages += st->zero_pages;
	p->res->duplicates += st->duplicates;
	if (st->rounds) {
		p->res->rounds = st->rounds;
		p->res->stale_pages = st->stale_pages;
	}
}

static int on_ack(struct peer *p, unsigned int i, const struct ps_stats *st)
{
	int r;

	if (st->last_seq < p->last_seq)
		return refuse(p, i, E(SEQUENCE), EPROTO, "ack back in time");
	p->last_seq = st->last_seq;
	add_stats(p, st);
	r = persist(p);
	if (r)
		return refuse(p, i, r == -ENOSPC ? E(NO_SPACE) : E(INTERNAL),
			      -r, "cannot persist session state: %s",
			      strerror(-r));
	return reply_ok(p, i);
}

/* A chunk of the VMM's state: in order (a resent chunk rewrites what it
 * covers), consistent, only for a VM. */
static int on_state(struct peer *p, unsigned int i, const uint8_t *b, size_t n)
{
	struct ps_state st;

	memcpy(&st, b, sizeof(st));
	if (!p->o->incoming)
		return refuse(p, i, E(STATE), EPROTO,
			      "VMM state sent, but no incoming VM here");
	if (n != sizeof(st) + st.len || !st.len || st.len > PS_CHUNK ||
	    !st.total || st.total > PT_STATE_MAX)
		goto out_order;
	if (!p->state) {
		if (st.offset)
			goto out_order;
		p->state = malloc(st.total);
		if (!p->state)
			return refuse(p, i, E(INTERNAL), ENOMEM,
				      "no memory for %" PRIu64
				      " bytes of VMM state",
				      st.total);
		p->state_total = st.total;
		p->state_crc = st.crc;
	}
	if (st.offset > p->state_got || st.total != p->state_total ||
	    st.crc != p->state_crc || st.len > st.total - st.offset)
		goto out_order;
	memcpy(p->state + st.offset, b + sizeof(st), st.len);
	p->state_got = st.offset + st.len;
	return reply_ok(p, i);
out_order:
	return refuse(p, i, E(STATE), EBADMSG,
		      "VMM state chunk %" PRIu64 "+%u of %" PRIu64
		      " out of order (have %" PRIu64 " of %" PRIu64 ")",
		      st.offset, st.len, st.total, p->state_got,
		      p->state_total);
}

static int on_complete(struct peer *p, unsigned int i,
		       const struct ps_stats *st)
{
	int r;

	if (p->o->incoming &&
	    (!p->state_total || p->state_got != p->state_total ||
	     pt_crc32c(0, p->state, p->state_total) != p->state_crc))
		return refuse(p, i, E(STATE), EBADMSG,
			      "VMM state incomplete or corrupt: %" PRIu64
			      " of %" PRIu64 " bytes",
			      p->state_got, p->state_total);
	if (st->last_seq < p->last_seq)
		return refuse(p, i, E(SEQUENCE), EPROTO,
			      "Complete back in time");
	p->last_seq = st->last_seq;
	add_stats(p, st);
	p->complete = 1;
	r = persist(p);
	if (r) {
		p->complete = 0;
		return refuse(p, i, r == -ENOSPC ? E(NO_SPACE) : E(INTERNAL),
			      -r, "cannot persist session state: %s",
			      strerror(-r));
	}
	return reply_ok(p, i);
}

/*
 * Memory verified and Complete acked: the incoming VMM loads the state,
 * the resume is recorded, then the vCPUs run and the source hears
 * Resumed. Recorded first: a peer that dies in between must answer
 * "resumed" (the guest may run), never let the source resume a second
 * copy. Any failure stops the incoming VM and tells the source, whose
 * guest then resumes there.
 */
static int on_switch(struct peer *p, unsigned int i)
{
	struct pt_dirty_source *in = p->o->incoming;
	int r;

	if (!in || !p->complete || p->resumed)
		return refuse(p, i, E(SESSION), EPROTO,
			      "no switchover to make");
	r = in->ops->load_state(in, p->state, p->state_total);
	if (r) {
		in->ops->stop(in);
		return refuse(p, i, E(STATE), -r,
			      "the incoming VMM refused the state: %s",
			      strerror(-r));
	}
	p->resumed = 1;
	r = persist(p);
	if (r) {
		p->resumed = 0;
		in->ops->stop(in);
		return refuse(p, i, E(RESUME_FAILED), -r,
			      "cannot record the switchover: %s", strerror(-r));
	}
	r = in->ops->resume(in);
	if (r) {
		p->resumed = 0;
		persist(p);
		in->ops->stop(in);
		return refuse(p, i, E(RESUME_FAILED), -r,
			      "the incoming VMM cannot resume: %s",
			      strerror(-r));
	}
	p->res->switched_over = 1;
	return reply_ok(p, i);
}

static int is_conn_error(int r)
{
	return r == -EPIPE || r == -ECONNRESET || r == -EAGAIN ||
	       r == -ETIMEDOUT || r == -EWOULDBLOCK;
}

/* Connection @i is over: PEER_DONE, 0 to go on, or the session's failure. */
static int on_end(struct peer *p, unsigned int i, struct ps_end *e)
{
	int was_bound = p->bound == (int)i, r = e->r;

	e->err[sizeof(e->err) - 1] = 0;
	add_stats(p, &e->st);
	if (was_bound && e->bad_crc)
		p->bad_crcs++;
	conn_kill(p, i, 0);
	if (r == -ECONNREFUSED)
		return 0; /* TLS refused it: the real source may still come */
	if (r == PEER_DONE && was_bound && p->complete &&
	    (!p->o->incoming || p->resumed))
		return PEER_DONE;
	if (r >= 0)
		r = -ECONNRESET;
	/* Garbage, stream frames or a bad Resume from a connection that
	 * never opened a session (or a Hello refused next to a session that
	 * stays): that client goes, the port stays for the real source. */
	if (!e->conn_ok && (!e->hello_tried || p->have_session)) {
		if (!p->o->quiet)
			fprintf(stderr,
				"peer: dropped a connection that opened no "
				"session: %s\n",
				e->err[0] ? e->err : strerror(-r));
		return 0;
	}
	if (!is_conn_error(r))
		return fail(p, e->code, -r, "%s",
			    e->err[0] ? e->err : strerror(-r));
	if (!p->o->quiet)
		fprintf(stderr,
			"peer: connection lost (%s) after seq %" PRIu64
			", waiting for the source to resume\n",
			strerror(-r), p->last_seq);
	return 0;
}

/* Connection @i's child ended without a word: a crash. One that wrote
 * the session's memory and faulted fails the session (the memory is no
 * longer there); any other is a lost connection. */
static int on_dead(struct peer *p, unsigned int i, struct ps_end *dead)
{
	struct conn *c = &p->c[i];
	char why[256] = "";
	int sig;

	conn_reap(p, i, 2000);
	sig = c->reaped && WIFSIGNALED(c->status) ? WTERMSIG(c->status) : 0;
	if (p->bound == (int)i &&
	    (dest_check(p, why, sizeof(why)) || sig == SIGBUS)) {
		conn_kill(p, i, 1);
		return fail(p, E(INTERNAL), EFAULT,
			    "destination memory faulted (%s)%s%s",
			    sig ? strsignal(sig)
				: "the connection's child died",
			    why[0] ? ": " : "", why);
	}
	if (sig && !p->o->quiet)
		fprintf(stderr, "peer: a connection's child died: %s\n",
			strsignal(sig));
	return on_end(p, i, dead);
}

/* One message from connection @i. A child that breaks the protocol with
 * its parent (or died) is treated as a lost connection. */
static int on_ctl(struct peer *p, unsigned int i)
{
	int bound = p->bound == (int)i;
	struct ps_end dead = { .r = -ECONNRESET,
			       .conn_ok = (uint32_t)bound,
			       .hello_tried = 1 };
	uint32_t type = 0;
	ssize_t n =
		ps_recv(p->c[i].ctl, &type, p->buf, PS_MSG_MAX, NULL, 0, NULL);

	if (n == -EAGAIN || n == -EINTR)
		return 0;
	if (n < 0)
		return on_dead(p, i, &dead);
	if (type == PS_HELLO && n == sizeof(struct ps_session))
		return on_hello(p, i, (struct ps_session *)(void *)p->buf);
	if (type == PS_RESUME && n == sizeof(struct ps_session))
		return on_resume(p, i, (struct ps_session *)(void *)p->buf);
	if (type == PS_END && n == sizeof(struct ps_end))
		return on_end(p, i, (struct ps_end *)(void *)p->buf);
	if (!bound)
		return on_dead(p, i, &dead);
	if (type == PS_ACK && n == sizeof(struct ps_stats))
		return on_ack(p, i, (struct ps_stats *)(void *)p->buf);
	if (type == PS_STATE && (size_t)n >= sizeof(struct ps_state))
		return on_state(p, i, p->buf, (size_t)n);
	if (type == PS_COMPLETE && n == sizeof(struct ps_stats))
		return on_complete(p, i, (struct ps_stats *)(void *)p->buf);
	if (type == PS_SWITCH && n == 0)
		return on_switch(p, i);
	return on_dead(p, i, &dead);
}

/* No connection for idle_ms. */
static int idle_end(struct peer *p)
{
	/* Restarted after it acked Complete: a success only once that
	 * session's source asked (Resume) and was told; a state file alone
	 * proves nothing about who left it. */
	if (p->complete && p->complete_confirmed)
		return PEER_DONE;
	if (p->complete)
		return fail(p, E(SESSION), ETIMEDOUT,
			    "a completed session %016" PRIx64
			    " was restored, but its source never asked for "
			    "it in %" PRIu64 " ms",
			    p->session_id, p->o->idle_ms);
	return fail(p, E(SESSION), ETIMEDOUT,
		    "no source connected for %" PRIu64 " ms", p->o->idle_ms);
}

/* @timeout shortened to the first unbound connection's deadline. */
static int stuck_timeout(const struct peer *p, int timeout)
{
	uint64_t now = now_ms(), d;
	unsigned int k;

	for (k = 0; k < CONN_MAX; k++) {
		if (p->c[k].ctl < 0 || !p->c[k].deadline)
			continue;
		d = p->c[k].deadline > now ? p->c[k].deadline - now : 0;
		if (timeout < 0 || d < (uint64_t)timeout)
			timeout = (int)d;
	}
	return timeout;
}

static int kill_stuck(struct peer *p)
{
	uint64_t now = now_ms();
	unsigned int k;
	int n = 0;

	for (k = 0; k < CONN_MAX; k++) {
		if (p->c[k].ctl < 0 || !p->c[k].deadline ||
		    p->c[k].deadline > now)
			continue;
		if (!p->o->quiet)
			fprintf(stderr, "peer: dropped a connection that "
					"opened no session in time\n");
		conn_kill(p, k, 1);
		n++;
	}
	return n;
}

static int serve(struct peer *p)
{
	struct pollfd pf[CONN_MAX + 1];
	unsigned int slot[CONN_MAX + 1], n, k;
	uint64_t idle_from = now_ms(), t;
	int r, timeout;

	for (;;) {
		n = 0;
		pf[n++] = (struct pollfd){ .fd = p->listening ? p->lfd : -1,
					   .events = POLLIN };
		for (k = 0; k < CONN_MAX; k++)
			if (p->c[k].ctl >= 0) {
				slot[n] = k;
				pf[n++] = (struct pollfd){ .fd = p->c[k].ctl,
							   .events = POLLIN };
			}
		t = now_ms() - idle_from;
		timeout = p->nconns	       ? -1
			  : t >= p->o->idle_ms ? 0
					       : (int)(p->o->idle_ms - t);
		timeout = stuck_timeout(p, timeout);
		r = poll(pf, n, timeout);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0 && !p->nconns)
			return idle_end(p);
		if (kill_stuck(p))
			idle_from = now_ms();
		for (k = 1; k < n; k++) {
			if (!pf[k].revents)
				continue;
			r = on_ctl(p, slot[k]);
			if (p->c[slot[k]].ctl < 0)
				idle_from = now_ms();
			if (r)
				return r;
		}
		if (pf[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			r = accept_one(p);
			idle_from = now_ms();
			if (r)
				return r;
		}
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

/* The user connection children run as (only when started as root). */
static int privsep_user(struct peer *p)
{
	const char *name = p->o->privsep_user ? p->o->privsep_user : "ptrack";
	struct passwd pw, *res = NULL;
	char buf[1024];

	if (p->o->privsep_thread || geteuid() != 0)
		return 0;
	if (getpwnam_r(name, &pw, buf, sizeof(buf), &res) || !res) {
		if (p->o->privsep_user)
			return fail(p, E(INTERNAL), ENOENT,
				    "no user %s for the connection children",
				    name);
		/* A minimal system (the arm64 test bed's initramfs) may
		 * have no user database: nobody's usual ids then. */
		if (getpwnam_r("nobody", &pw, buf, sizeof(buf), &res) || !res) {
			p->uid = p->gid = 65534;
			return 0;
		}
	}
	if (pw.pw_uid == 0)
		return fail(p, E(INTERNAL), EPERM,
			    "connection children must not run as root (%s)",
			    name);
	p->uid = pw.pw_uid;
	p->gid = pw.pw_gid;
	return 0;
}

int pt_peer_run(const struct pt_peer_opts *opts, struct pt_peer_result *res)
{
	struct pt_peer_opts o = *opts;
	struct peer p = {
		.o = &o, .res = res, .memfd = -1, .bound = -1, .listening = 1
	};
	unsigned int k;
	int r;

	memset(res, 0, sizeof(*res));
	for (k = 0; k < CONN_MAX; k++)
		p.c[k].ctl = -1;
	signal(SIGPIPE, SIG_IGN);
	if (!o.ack_every)
		o.ack_every = PT_ACK_EVERY_DEFAULT;
	if (!o.io_timeout_ms)
		o.io_timeout_ms = PT_IO_TIMEOUT_MS_DEFAULT;
	if (!o.idle_ms)
		o.idle_ms = 60000;
	if (!o.max_mem)
		o.max_mem = default_max_mem(&o);
	r = privsep_user(&p);
	if (r)
		return r;
	p.buf = malloc(PS_MSG_MAX);
	if (!p.buf)
		return fail(&p, E(INTERNAL), ENOMEM, "out of memory");
	p.lfd = o.lfd >= 0 ? o.lfd : pt_tcp_listen(o.listen);
	if (p.lfd < 0) {
		free(p.buf);
		return fail(&p, E(INTERNAL), -p.lfd, "cannot listen on %s: %s",
			    o.listen, strerror(-p.lfd));
	}
	r = load_state(&p);
	if (!r)
		r = serve(&p);
	if (r == PEER_DONE)
		r = 0;
	if (r && !res->err[0])
		fail(&p, E(INTERNAL), -r, "%s", strerror(-r));
	for (k = 0; k < CONN_MAX; k++)
		conn_kill(&p, k, 1);
	drop_dest(&p);
	free(p.buf);
	if (o.lfd < 0)
		close(p.lfd);
	return r;
}
