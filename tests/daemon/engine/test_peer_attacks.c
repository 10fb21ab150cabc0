// SPDX-License-Identifier: MIT
/*
 * The destination against its own protocol's abuse (issue 14's findings),
 * with attacking clients written from proto/ptrack.proto and
 * codec/frame.h, not from the engine's source: stream frames on a
 * connection that opened no session, a wrong Resume, garbage, a Hello
 * larger than the destination, a new Hello over a completed destination,
 * a restored "complete" that nobody asks for, a frame corrupted in
 * transit (recovered by retransmission). Plain TCP here: these test the
 * protocol behind the TLS handshake (test_tls.c tests that one).
 */
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/stat.h>
#include <unistd.h>

#include "codec/crc32c.h"
#include "codec/frame.h"
#include "codec/msg.h"
#include "engine/migrate.h"
#include "eng.h"
#include "memfd_source.h"
#include "pt_test.h"

#define T(name) PTRACK__V1__MSG_TYPE__MSG_TYPE_##name
#define E(name) PTRACK__V1__ERROR_CODE__ERROR_##name
#define MIB (1ull << 20)

struct apeer {
	struct pt_peer_opts o;
	struct pt_peer_result res;
	char dir[PATH_MAX], mem[PATH_MAX + 16], state[PATH_MAX + 16];
	char to[64];
	int rc;
	pthread_t th;
};

static void *apeer_main(void *arg)
{
	struct apeer *p = arg;

	p->rc = pt_peer_run(&p->o, &p->res);
	return NULL;
}

/* An in-process destination on @dir (a new one when @dir is NULL). */
static void apeer_start(struct apeer *p, const char *dir, uint64_t idle_ms)
{
	struct sockaddr_in a = { 0 };
	socklen_t al = sizeof(a);

	if (dir)
		snprintf(p->dir, sizeof(p->dir), "%s", dir);
	else
		eu_tmpdir(p->dir, sizeof(p->dir));
	CU_ASSERT_FATAL(p->dir[0] != 0);
	snprintf(p->mem, sizeof(p->mem), "%s/dest.mem", p->dir);
	snprintf(p->state, sizeof(p->state), "%s/state", p->dir);
	mkdir(p->state, 0700);
	p->o.lfd = pt_tcp_listen("127.0.0.1:0");
	CU_ASSERT_FATAL(p->o.lfd >= 0);
	getsockname(p->o.lfd, (struct sockaddr *)&a, &al);
	snprintf(p->to, sizeof(p->to), "127.0.0.1:%d", ntohs(a.sin_port));
	p->o.mem_path = p->mem;
	p->o.state_dir = p->state;
	p->o.idle_ms = idle_ms;
	if (!p->o.io_timeout_ms)
		p->o.io_timeout_ms = 2000;
	p->o.quiet = 1;
	CU_ASSERT_FATAL(pthread_create(&p->th, NULL, apeer_main, p) == 0);
}

static void apeer_join(struct apeer *p)
{
	pthread_join(p->th, NULL);
	close(p->o.lfd);
}

static int migrate_to(const char *to, struct msrc *m,
		      struct pt_source_result *res)
{
	struct pt_source_opts so = { .to = to,
				     .reconnect_ms = 3000,
				     .io_timeout_ms = 2000 };

	return pt_migrate(msrc_source(m), &so, res);
}

/* Sends one frame of @type built from @msg (plain TCP, as an attacker). */
static int send_frame(int fd, uint16_t type, uint64_t seq,
		      const ProtobufCMessage *msg, const struct iovec *pl,
		      int npl)
{
	struct pt_txframe tx;
	int r = pt_txframe_init(&tx);

	if (!r)
		r = pt_frame_build(&tx, type, 0, seq, msg, pl, npl,
				   PT_FRAME_MAX_DEFAULT, NULL);
	if (!r)
		r = pt_frame_send(fd, &tx);
	pt_txframe_release(&tx);
	return r;
}

/* The Error code the peer answers with before closing, -1: none. */
static int read_error(int fd, char *text, size_t len)
{
	struct pt_reader rd;
	struct pt_frame f;
	struct pt_msg m;
	int code = -1;

	if (text)
		text[0] = 0;
	if (pt_reader_init(&rd, fd, PT_FRAME_MAX_DEFAULT))
		return -1;
	while (pt_reader_next(&rd, &f, NULL) == 1) {
		if (f.hdr.type != T(ERROR) || pt_msg_decode(&f, NULL, &m, NULL))
			continue;
		code = m.u.error->code;
		if (text)
			snprintf(text, len, "%s", m.u.error->text);
		pt_msg_release(&m);
	}
	pt_reader_release(&rd);
	return code;
}

static int attacker_connect(const char *to)
{
	int fd = pt_tcp_connect(to, 1000);

	CU_ASSERT_FATAL(fd >= 0);
	pt_sock_timeouts(fd, 3000);
	return fd;
}

/*
 * Findings 1b and 6a: stream frames on a connection that sent no Hello,
 * a Resume guessing the session, and 32 bytes of garbage are refused
 * without a word about the session or its layout, and none of them costs
 * the real source its destination: it migrates afterwards.
 */
static void test_unbound_connections_refused(void)
{
	static const uint8_t junk[32] = "0123456789abcdef0123456789abcdef";
	struct msrc_opts mo = { .size = 4 * MIB, .writers = 1, .rate = 2000 };
	Ptrack__V1__IterationDone it = PTRACK__V1__ITERATION_DONE__INIT;
	Ptrack__V1__Resume rs = PTRACK__V1__RESUME__INIT;
	struct pt_source_result res;
	struct apeer p = { 0 };
	const uint8_t *mem;
	struct msrc *m;
	uint64_t size;
	char text[256];
	int fd;

	apeer_start(&p, NULL, 15000);
	fd = attacker_connect(p.to);
	send_frame(fd, T(ITERATION_DONE), 2, &it.base, NULL, 0);
	CU_ASSERT_EQUAL(read_error(fd, text, sizeof(text)), E(SESSION));
	CU_ASSERT(strstr(text, "before Hello") ||
		  strstr(text, "no Hello or Resume"));
	close(fd);
	fd = attacker_connect(p.to);
	rs.session_id = 0x1234;
	send_frame(fd, T(RESUME), 0, &rs.base, NULL, 0);
	CU_ASSERT_EQUAL(read_error(fd, text, sizeof(text)), E(SESSION));
	CU_ASSERT(strstr(text, "1234") == NULL);
	close(fd);
	fd = attacker_connect(p.to);
	CU_ASSERT(write(fd, junk, sizeof(junk)) == sizeof(junk));
	read_error(fd, NULL, 0);
	close(fd);
	CU_ASSERT(access(p.mem, F_OK) != 0);
	CU_ASSERT_FATAL(msrc_create(&m, &mo) == 0);
	CU_ASSERT_EQUAL(migrate_to(p.to, m, &res), 0);
	if (res.err[0])
		fprintf(stderr, "real source: %s\n", res.err);
	apeer_join(&p);
	if (p.rc)
		fprintf(stderr, "peer: %s\n", p.res.err);
	CU_ASSERT_EQUAL(p.rc, 0);
	mem = msrc_mem(m, &size);
	CU_ASSERT_EQUAL(eu_compare(p.mem, mem, size), 0);
	msrc_destroy(m);
	eu_rmdir(p.dir);
}

/* Finding 2: a Hello larger than the destination may hold is refused
 * before anything is allocated or created. */
static void test_hello_over_limit(void)
{
	struct msrc_opts mo = { .size = 8 * MIB, .writers = 1, .rate = 1000 };
	struct pt_source_result res;
	struct apeer p = { .o = { .max_mem = 4 * MIB } };
	struct msrc *m;

	apeer_start(&p, NULL, 3000);
	CU_ASSERT_FATAL(msrc_create(&m, &mo) == 0);
	CU_ASSERT(migrate_to(p.to, m, &res) < 0);
	CU_ASSERT_EQUAL(res.code, E(NO_SPACE));
	CU_ASSERT(strstr(res.err, "limit") != NULL);
	CU_ASSERT(!msrc_paused(m));
	apeer_join(&p);
	CU_ASSERT(p.rc < 0);
	CU_ASSERT(access(p.mem, F_OK) != 0);
	msrc_destroy(m);
	eu_rmdir(p.dir);
}

/*
 * Findings 5a, 5c: a peer restarted on the state of a completed migration
 * keeps that memory whatever Hello comes, and is no success unless that
 * session's source asks for it.
 */
static void test_completed_destination_kept(void)
{
	struct msrc_opts mo = { .size = 4 * MIB, .writers = 1, .rate = 2000 };
	struct pt_source_result res;
	struct apeer p = { 0 }, q = { 0 };
	struct msrc *m, *m2;
	const uint8_t *mem;
	uint64_t size;

	apeer_start(&p, NULL, 15000);
	CU_ASSERT_FATAL(msrc_create(&m, &mo) == 0);
	CU_ASSERT_EQUAL_FATAL(migrate_to(p.to, m, &res), 0);
	apeer_join(&p);
	CU_ASSERT_EQUAL(p.rc, 0);
	/* Restarted on the same state: another guest's Hello is refused. */
	apeer_start(&q, p.dir, 1500);
	CU_ASSERT_FATAL(msrc_create(&m2, &mo) == 0);
	CU_ASSERT(migrate_to(q.to, m2, &res) < 0);
	CU_ASSERT(strstr(res.err, "completed migration") != NULL);
	apeer_join(&q);
	/* Nobody asked for the restored session: not a success. */
	CU_ASSERT(q.rc < 0);
	CU_ASSERT(strstr(q.res.err, "never asked") != NULL);
	mem = msrc_mem(m, &size);
	CU_ASSERT_EQUAL(eu_compare(p.mem, mem, size), 0);
	msrc_destroy(m2);
	msrc_destroy(m);
	eu_rmdir(p.dir);
}

/* Clears the complete flag of a state file (struct state_hdr in
 * engine/peer.c: flags at 24, CRC32C of bytes 0..27 and the Hello at 28),
 * as a session interrupted before Complete leaves it. */
static int make_unfinished(const char *path)
{
	uint8_t buf[PT_MSG_MAX + 32];
	uint32_t flags = 0, crc, hlen;
	FILE *f = fopen(path, "r+b");
	size_t n;

	if (!f)
		return -1;
	n = fread(buf, 1, sizeof(buf), f);
	memcpy(&hlen, buf + 4, 4);
	if (n < 32 || n != 32 + hlen) {
		fclose(f);
		return -1;
	}
	memcpy(buf + 24, &flags, 4);
	crc = pt_crc32c(pt_crc32c(0, buf, 28), buf + 32, hlen);
	memcpy(buf + 28, &crc, 4);
	rewind(f);
	n = fwrite(buf, 1, 32 + hlen, f);
	fclose(f);
	return n == 32 + hlen ? 0 : -1;
}

/* Finding 5b: the state of an unfinished session is gone before a new
 * session touches the destination, even when that session goes no
 * further (here: refused as too large). */
static void test_state_invalidated_first(void)
{
	struct msrc_opts mo = { .size = 4 * MIB, .writers = 1, .rate = 2000 };
	struct msrc_opts big = { .size = 8 * MIB, .writers = 1, .rate = 2000 };
	struct pt_source_result res;
	struct apeer p = { 0 }, q = { .o = { .max_mem = 6 * MIB } };
	char path[PATH_MAX + 32];
	struct msrc *m;

	apeer_start(&p, NULL, 15000);
	CU_ASSERT_FATAL(msrc_create(&m, &mo) == 0);
	CU_ASSERT_EQUAL(migrate_to(p.to, m, &res), 0);
	apeer_join(&p);
	msrc_destroy(m);
	snprintf(path, sizeof(path), "%s/session.state", p.state);
	CU_ASSERT_FATAL(make_unfinished(path) == 0);
	apeer_start(&q, p.dir, 1500);
	CU_ASSERT_FATAL(msrc_create(&m, &big) == 0);
	CU_ASSERT(migrate_to(q.to, m, &res) < 0);
	CU_ASSERT_EQUAL(res.code, E(NO_SPACE));
	apeer_join(&q);
	msrc_destroy(m);
	CU_ASSERT(access(path, F_OK) != 0);
	eu_rmdir(p.dir);
}

/* A TCP relay that flips one byte of the first connection's source to
 * peer stream at @flip_at, then relays every later connection whole. */
struct flipper {
	int lfd;
	char to[64];
	uint64_t flip_at;
	int conns, stop, flipped;
	pthread_t th;
};

static void flip_conn(struct flipper *fl, int a, int b, int flip)
{
	struct pollfd p[2] = { { .fd = a, .events = POLLIN },
			       { .fd = b, .events = POLLIN } };
	static uint8_t buf[65536];
	uint64_t up = 0;
	ssize_t n;
	int i;

	while (!fl->stop && poll(p, 2, 100) >= 0) {
		for (i = 0; i < 2; i++) {
			if (!(p[i].revents & (POLLIN | POLLHUP)))
				continue;
			n = read(p[i].fd, buf, sizeof(buf));
			if (n <= 0)
				return;
			if (i == 0 && flip && !fl->flipped &&
			    up + (uint64_t)n > fl->flip_at) {
				buf[fl->flip_at - up] ^= 0x40;
				fl->flipped = 1;
			}
			if (write(p[!i].fd, buf, (size_t)n) != n)
				return;
			up += i == 0 ? (uint64_t)n : 0;
		}
	}
}

static void *flipper_main(void *arg)
{
	struct flipper *fl = arg;
	struct pollfd p = { .fd = fl->lfd, .events = POLLIN };
	int a, b;

	while (!fl->stop) {
		if (poll(&p, 1, 100) != 1)
			continue;
		a = accept(fl->lfd, NULL, NULL);
		b = pt_tcp_connect(fl->to, 1000);
		if (a >= 0 && b >= 0)
			flip_conn(fl, a, b, fl->conns++ == 0);
		if (a >= 0)
			close(a);
		if (b >= 0)
			close(b);
	}
	return NULL;
}

/* Finding 8: a frame corrupted in transit is never stored; the peer drops
 * the connection and the source resends it: the migration completes with
 * identical memory. */
static void test_bad_crc_retransmitted(void)
{
	struct msrc_opts mo = {
		.size = 8 * MIB, .writers = 1, .rate = 2000, .fill_all = 1
	};
	struct flipper fl = { .flip_at = 3 * MIB };
	struct sockaddr_in a = { 0 };
	socklen_t al = sizeof(a);
	struct pt_source_result res;
	struct apeer p = { 0 };
	const uint8_t *mem;
	char via[64];
	struct msrc *m;
	uint64_t size;

	apeer_start(&p, NULL, 15000);
	snprintf(fl.to, sizeof(fl.to), "%s", p.to);
	fl.lfd = pt_tcp_listen("127.0.0.1:0");
	CU_ASSERT_FATAL(fl.lfd >= 0);
	getsockname(fl.lfd, (struct sockaddr *)&a, &al);
	snprintf(via, sizeof(via), "127.0.0.1:%d", ntohs(a.sin_port));
	pthread_create(&fl.th, NULL, flipper_main, &fl);
	CU_ASSERT_FATAL(msrc_create(&m, &mo) == 0);
	CU_ASSERT_EQUAL(migrate_to(via, m, &res), 0);
	CU_ASSERT(fl.flipped);
	CU_ASSERT(res.reconnects >= 1);
	apeer_join(&p);
	CU_ASSERT_EQUAL(p.rc, 0);
	mem = msrc_mem(m, &size);
	CU_ASSERT_EQUAL(eu_compare(p.mem, mem, size), 0);
	fl.stop = 1;
	pthread_join(fl.th, NULL);
	close(fl.lfd);
	msrc_destroy(m);
	eu_rmdir(p.dir);
}

/* Finding 6b: a client trickling a frame a byte at a time runs into the
 * frame's deadline, not a fresh timeout per byte. */
static void test_trickle_deadline(void)
{
	struct apeer p = { .o = { .io_timeout_ms = 1000 } };
	uint8_t hdr[PT_FRAME_HDR_LEN] = { 'P', 'T', 'R', 'K' };
	uint64_t t0 = 0;
	struct timespec ts;
	int fd, i;

	apeer_start(&p, NULL, 3000);
	fd = attacker_connect(p.to);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	t0 = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
	/* One byte every 500 ms: each read is well within the timeout. */
	for (i = 0; i < (int)sizeof(hdr); i++) {
		if (write(fd, &hdr[i], 1) != 1)
			break;
		usleep(500000);
		clock_gettime(CLOCK_MONOTONIC, &ts);
		if ((uint64_t)ts.tv_sec * 1000 +
			    (uint64_t)ts.tv_nsec / 1000000 - t0 >
		    6000)
			break;
	}
	/* Dropped within the deadline (2 s), far before 32 bytes * 0.5 s. */
	CU_ASSERT(i < 10);
	close(fd);
	apeer_join(&p);
	eu_rmdir(p.dir);
}

/* Finding 4b: two regions whose guest-physical ranges overlap fail the
 * migration with a reason, and the teardown of the half set-up source
 * engine does not crash (it did in clear_round). */
static void test_overlapping_regions_refused(void)
{
	struct msrc_opts mo = {
		.size = 4 * MIB, .nregions = 2, .writers = 1, .rate = 1000
	};
	struct pt_source_result res;
	struct pt_dirty_source *ds;
	struct msrc *m;
	uint64_t base;

	CU_ASSERT_FATAL(msrc_create(&m, &mo) == 0);
	ds = msrc_source(m);
	CU_ASSERT_FATAL(ds->nregions == 2);
	base = ds->regions[1].gpa_base;
	ds->regions[1].gpa_base = ds->regions[0].gpa_base;
	CU_ASSERT(migrate_to("127.0.0.1:1", m, &res) < 0);
	CU_ASSERT(strstr(res.err, "overlaps") != NULL);
	CU_ASSERT(!msrc_paused(m));
	ds->regions[1].gpa_base = base;
	msrc_destroy(m);
}

/* A rogue destination: answers the Hello, then trickles an Ack a byte
 * every 300 ms for as long as the source listens. */
static void *trickle_peer(void *arg)
{
	Ptrack__V1__Ack a = PTRACK__V1__ACK__INIT;
	Ptrack__V1__Hello *h = NULL;
	struct pt_reader rd;
	struct pt_frame f;
	struct pt_txframe tx = { 0 };
	int lfd = *(int *)arg, fd = accept(lfd, NULL, NULL);
	size_t i, k;

	if (fd < 0)
		return NULL;
	pt_sock_timeouts(fd, 5000);
	/* Answer the Hello as a peer does: the source's, role PEER. */
	if (!pt_reader_init(&rd, fd, PT_FRAME_MAX_DEFAULT)) {
		if (pt_reader_next(&rd, &f, NULL) == 1)
			h = ptrack__v1__hello__unpack(NULL, f.hdr.msg_len,
						      f.msg);
		pt_reader_release(&rd);
	}
	if (!h)
		goto out;
	h->role = PTRACK__V1__ROLE__ROLE_PEER;
	send_frame(fd, T(HELLO), 1, &h->base, NULL, 0);
	ptrack__v1__hello__free_unpacked(h, NULL);
	a.seq = 1;
	if (pt_txframe_init(&tx) ||
	    pt_frame_build(&tx, T(ACK), 0, 2, &a.base, NULL, 0,
			   PT_FRAME_MAX_DEFAULT, NULL))
		goto out;
	for (i = 0; i < (size_t)tx.iovcnt; i++)
		for (k = 0; k < tx.iov[i].iov_len; k++) {
			if (write(fd, (uint8_t *)tx.iov[i].iov_base + k, 1) !=
			    1)
				goto out;
			usleep(300000);
		}
out:
	pt_txframe_release(&tx);
	close(fd);
	return NULL;
}

/* Finding 6c: a destination that trickles its Acks fails the migration
 * at the frame deadline and the time limit, not after a fresh timeout
 * per byte (152 s paused in the report). */
static void test_trickled_ack(void)
{
	struct msrc_opts mo = { .size = 4 * MIB, .writers = 1, .rate = 1000 };
	struct pt_source_opts so = { .reconnect_ms = 1000,
				     .io_timeout_ms = 1000,
				     .time_limit_ms = 2500 };
	struct sockaddr_in a = { 0 };
	socklen_t al = sizeof(a);
	struct pt_source_result res;
	char to[64];
	struct msrc *m;
	pthread_t th;
	int lfd = pt_tcp_listen("127.0.0.1:0");

	CU_ASSERT_FATAL(lfd >= 0);
	getsockname(lfd, (struct sockaddr *)&a, &al);
	snprintf(to, sizeof(to), "127.0.0.1:%d", ntohs(a.sin_port));
	so.to = to;
	pthread_create(&th, NULL, trickle_peer, &lfd);
	CU_ASSERT_FATAL(msrc_create(&m, &mo) == 0);
	CU_ASSERT(pt_migrate(msrc_source(m), &so, &res) < 0);
	fprintf(stderr, "\n    trickled Ack: failed after %llu ms: %s\n",
		(unsigned long long)res.total_ms, res.err);
	CU_ASSERT(res.total_ms < 6000);
	CU_ASSERT(!msrc_paused(m));
	close(lfd); /* ends the accept if the source never connected */
	pthread_join(th, NULL);
	msrc_destroy(m);
}

/* A process of ours (the peer's connection child), its pid or 0. */
static pid_t find_conn_child(int ms)
{
	char path[300], line[256], name[64];
	pid_t found = 0;
	int ppid, waited;
	DIR *d;
	struct dirent *de;
	FILE *f;

	for (waited = 0; !found && waited < ms; waited += 20) {
		d = opendir("/proc");
		while (d && !found && (de = readdir(d))) {
			if (de->d_name[0] < '0' || de->d_name[0] > '9')
				continue;
			snprintf(path, sizeof(path), "/proc/%s/stat",
				 de->d_name);
			f = fopen(path, "r");
			if (!f)
				continue;
			if (fgets(line, sizeof(line), f) &&
			    sscanf(line, "%*d (%63[^)]) %*c %d", name, &ppid) ==
				    2 &&
			    ppid == getpid() && !strcmp(name, "ptrack-conn"))
				found = (pid_t)atoi(de->d_name);
			fclose(f);
		}
		if (d)
			closedir(d);
		if (!found)
			usleep(20000);
	}
	return found;
}

/* The value after "@key:" in /proc/@pid/status. */
static int status_field(pid_t pid, const char *key, char *out, size_t len)
{
	char path[64], line[256];
	size_t kl = strlen(key);
	FILE *f;
	int r = -1;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, key, kl) && line[kl] == ':') {
			snprintf(out, len, "%s",
				 line + kl + 1 + strspn(line + kl + 1, " \t"));
			out[strcspn(out, "\n")] = 0;
			r = 0;
			break;
		}
	if (f)
		fclose(f);
	return r;
}

/*
 * Issue 14, privilege separation: the process that reads a connection's
 * bytes is not the daemon. It runs as an unprivileged user with no
 * capability, cannot gain any, is under seccomp and has no shared
 * mapping (no guest memory) before a session is bound to it.
 */
static void test_conn_unprivileged(void)
{
	struct msrc_opts mo = { .size = 4 * MIB, .writers = 1, .rate = 2000 };
	struct pt_source_result res;
	struct apeer p = { 0 };
	char v[128], path[64], line[512];
	unsigned int uid[4] = { 0 };
	struct msrc *m;
	FILE *f;
	pid_t child;
	int fd, shared = 0;

	CU_ASSERT_FATAL(msrc_create(&m, &mo) == 0); /* shared guest memory */
	apeer_start(&p, NULL, 15000);
	fd = attacker_connect(p.to);
	child = find_conn_child(3000);
	CU_ASSERT_FATAL(child > 0);
	CU_ASSERT(status_field(child, "Uid", v, sizeof(v)) == 0);
	CU_ASSERT(sscanf(v, "%u %u %u %u", &uid[0], &uid[1], &uid[2],
			 &uid[3]) == 4);
	if (geteuid() == 0)
		CU_ASSERT(uid[0] && uid[1] && uid[2] && uid[3]);
	CU_ASSERT(status_field(child, "CapEff", v, sizeof(v)) == 0);
	if (geteuid() == 0)
		CU_ASSERT_STRING_EQUAL(v, "0000000000000000");
	CU_ASSERT(status_field(child, "NoNewPrivs", v, sizeof(v)) == 0);
	CU_ASSERT_STRING_EQUAL(v, "1");
	CU_ASSERT(status_field(child, "Seccomp", v, sizeof(v)) == 0);
	CU_ASSERT_STRING_EQUAL(v, "2");
	snprintf(path, sizeof(path), "/proc/%d/maps", (int)child);
	f = fopen(path, "r");
	CU_ASSERT_FATAL(f != NULL);
	while (fgets(line, sizeof(line), f)) {
		char perm[8] = "";

		if (sscanf(line, "%*x-%*x %7s", perm) == 1 && perm[3] == 's')
			shared++;
	}
	fclose(f);
	CU_ASSERT_EQUAL(shared, 0);
	close(fd);
	CU_ASSERT_EQUAL(migrate_to(p.to, m, &res), 0);
	apeer_join(&p);
	CU_ASSERT_EQUAL(p.rc, 0);
	msrc_destroy(m);
	eu_rmdir(p.dir);
}

/*
 * Finding 6a: two idle connections and a slow-loris client opened first
 * do not take the port from the real source. The peer serves them at the
 * same time, so the source migrates at once, long before their io
 * timeout (5 s each: one at a time, the source would wait 15 s).
 */
static void test_idle_connections_concurrent(void)
{
	static const uint8_t part[3] = { 0x50, 0x54, 0x46 };
	struct msrc_opts mo = { .size = 4 * MIB, .writers = 1, .rate = 2000 };
	struct pt_source_result res;
	struct apeer p = { .o = { .io_timeout_ms = 5000 } };
	struct timespec t0, t1;
	struct msrc *m;
	int idle1, idle2, loris;
	long ms;

	CU_ASSERT_FATAL(msrc_create(&m, &mo) == 0);
	apeer_start(&p, NULL, 15000);
	idle1 = attacker_connect(p.to);
	idle2 = attacker_connect(p.to);
	loris = attacker_connect(p.to);
	CU_ASSERT(write(loris, part, sizeof(part)) == sizeof(part));
	usleep(200000);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	CU_ASSERT_EQUAL(migrate_to(p.to, m, &res), 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (t1.tv_sec - t0.tv_sec) * 1000 +
	     (t1.tv_nsec - t0.tv_nsec) / 1000000;
	fprintf(stderr, "\n    migrated past 3 stalled connections in %ld ms\n",
		ms);
	CU_ASSERT(ms < 5000);
	apeer_join(&p);
	CU_ASSERT_EQUAL(p.rc, 0);
	close(idle1);
	close(idle2);
	close(loris);
	msrc_destroy(m);
	eu_rmdir(p.dir);
}

/* The first frame's type the peer sends on @fd, -1: none. */
static int read_type(int fd)
{
	struct pt_reader rd;
	struct pt_frame f;
	int t = -1;

	if (pt_reader_init(&rd, fd, PT_FRAME_MAX_DEFAULT))
		return -1;
	if (pt_reader_next(&rd, &f, NULL) == 1) {
		struct pt_msg m;

		t = f.hdr.type;
		if (t == T(ERROR) && !pt_msg_decode(&f, NULL, &m, NULL)) {
			fprintf(stderr, "\n    peer: %s\n", m.u.error->text);
			pt_msg_release(&m);
		}
	}
	pt_reader_release(&rd);
	return t;
}

/*
 * Finding 1b, Resume: knowing (or guessing) the session id is not enough
 * to take a session over; the Resume must carry the secret its Hello
 * sent inside the authenticated link.
 */
static void test_resume_needs_secret(void)
{
	static uint8_t uuid[16] = { 7 }, secret[32] = { 1, 2, 3, 4, 5 },
		       wrong[32] = { 1, 2, 3, 4, 6 };
	Ptrack__V1__Hello h = PTRACK__V1__HELLO__INIT;
	Ptrack__V1__Region rg = PTRACK__V1__REGION__INIT, *rp = &rg;
	Ptrack__V1__Resume rs = PTRACK__V1__RESUME__INIT;
	struct apeer p = { 0 };
	int fd;

	apeer_start(&p, NULL, 1500);
	rg.id = 1;
	rg.size = 16 * 4096;
	rg.page_size = 4096;
	h.version = PT_PROTO_VERSION;
	h.role = PTRACK__V1__ROLE__ROLE_SOURCE;
	h.vm_name = "guessme";
	h.vm_uuid.data = uuid;
	h.vm_uuid.len = 16;
	h.n_regions = 1;
	h.regions = &rp;
	h.vcpus = 1;
	h.dirty_source = PTRACK__V1__DIRTY_SOURCE__DIRTY_SOURCE_BITMAP;
	h.features = PTRACK__V1__FEATURE__FEATURE_RESUME;
	h.session_id = 0x1234;
	h.resume_secret.data = secret;
	h.resume_secret.len = sizeof(secret);
	fd = attacker_connect(p.to);
	CU_ASSERT_EQUAL(send_frame(fd, T(HELLO), 1, &h.base, NULL, 0), 0);
	CU_ASSERT_EQUAL(read_type(fd), T(HELLO));
	close(fd);
	/* The right id without the secret, then with a wrong one. */
	rs.session_id = 0x1234;
	fd = attacker_connect(p.to);
	send_frame(fd, T(RESUME), 0, &rs.base, NULL, 0);
	CU_ASSERT_EQUAL(read_error(fd, NULL, 0), E(SESSION));
	close(fd);
	rs.secret.data = wrong;
	rs.secret.len = sizeof(wrong);
	fd = attacker_connect(p.to);
	send_frame(fd, T(RESUME), 0, &rs.base, NULL, 0);
	CU_ASSERT_EQUAL(read_error(fd, NULL, 0), E(SESSION));
	close(fd);
	/* The session's own source. */
	rs.secret.data = secret;
	rs.secret.len = sizeof(secret);
	fd = attacker_connect(p.to);
	send_frame(fd, T(RESUME), 0, &rs.base, NULL, 0);
	CU_ASSERT_EQUAL(read_type(fd), T(ACK));
	close(fd);
	apeer_join(&p);
	CU_ASSERT(p.rc < 0); /* nobody completed it */
	eu_rmdir(p.dir);
}

struct truncator {
	const char *dir, *mem;
	int done;
};

static void *truncate_main(void *arg)
{
	struct truncator *t = arg;

	eu_wait_session(t->dir);
	usleep(300000);
	t->done = truncate(t->mem, 0) == 0;
	return NULL;
}

/*
 * Finding 4a on the destination: the destination file shrinks under the
 * migration (another process truncates it). The stores into the mapping
 * fault with SIGBUS; that ends the connection's child, never the daemon
 * (this test process), and the session fails saying why.
 */
static void test_dest_truncated(void)
{
	struct msrc_opts mo = { .size = 16 * MIB, .writers = 1, .rate = 2000 };
	struct pt_source_opts so = { .reconnect_ms = 2000,
				     .io_timeout_ms = 2000,
				     .bandwidth = 8000000 };
	struct pt_source_result res;
	struct apeer p = { 0 };
	struct truncator t = { 0 };
	struct msrc *m;
	pthread_t th;

	CU_ASSERT_FATAL(msrc_create(&m, &mo) == 0);
	apeer_start(&p, NULL, 3000);
	t.dir = p.dir;
	t.mem = p.mem;
	pthread_create(&th, NULL, truncate_main, &t);
	so.to = p.to;
	CU_ASSERT(pt_migrate(msrc_source(m), &so, &res) < 0);
	pthread_join(th, NULL);
	apeer_join(&p);
	CU_ASSERT(t.done);
	CU_ASSERT(p.rc < 0);
	fprintf(stderr, "\n    peer: %s\n", p.res.err);
	CU_ASSERT(strstr(p.res.err, "faulted") != NULL);
	CU_ASSERT(strstr(p.res.err, "shrank") != NULL);
	CU_ASSERT(!msrc_paused(m));
	msrc_destroy(m);
	eu_rmdir(p.dir);
}

PT_SUITE(peer_attacks, PT_TEST(test_unbound_connections_refused),
	 PT_TEST(test_hello_over_limit),
	 PT_TEST(test_completed_destination_kept),
	 PT_TEST(test_state_invalidated_first),
	 PT_TEST(test_bad_crc_retransmitted), PT_TEST(test_trickle_deadline),
	 PT_TEST(test_overlapping_regions_refused), PT_TEST(test_trickled_ack),
	 PT_TEST(test_conn_unprivileged),
	 PT_TEST(test_idle_connections_concurrent),
	 PT_TEST(test_resume_needs_secret), PT_TEST(test_dest_truncated));
