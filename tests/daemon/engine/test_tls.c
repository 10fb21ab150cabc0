// SPDX-License-Identifier: MIT
/*
 * The peer link's TLS (engine/tls.h) against attackers: a plaintext source,
 * a raw client speaking the protocol from its spec, a client of another
 * CA, a client the destination does not allow, a rogue peer, a wrong
 * host name, a wrong pre-shared key. None may store a byte in the
 * destination or receive a page, and the real source still migrates.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "codec/frame.h"
#include "codec/msg.h"
#include "engine/migrate.h"
#include "engine/tls.h"
#include "eng.h"
#include "memfd_source.h"
#include "pt_test.h"

#define MIB (1ull << 20)

struct tpeer {
	struct pt_peer_opts o;
	struct pt_peer_result res;
	struct pt_tls *tls;
	char dir[PATH_MAX], mem[PATH_MAX + 16], state[PATH_MAX + 16];
	char to[64];
	int rc;
	pthread_t th;
};

static void *tpeer_main(void *arg)
{
	struct tpeer *p = arg;

	p->rc = pt_peer_run(&p->o, &p->res);
	return NULL;
}

/* An in-process destination with the credentials of @sub (a directory
 * of pt_test_tls_dir(), "" for its own) or the PSK file @psk. */
static void tpeer_start(struct tpeer *p, const char *sub, const char *psk,
			const char *allowed, uint64_t idle_ms)
{
	char tdir[PATH_MAX + 16], pskf[PATH_MAX + 16], err[256];
	struct pt_tls_opts to = { .dir = tdir, .allowed = allowed };

	CU_ASSERT_FATAL(pt_test_tls_dir() != NULL);
	snprintf(tdir, sizeof(tdir), "%s/%s", pt_test_tls_dir(), sub);
	if (psk) {
		snprintf(pskf, sizeof(pskf), "%s/%s", pt_test_tls_dir(), psk);
		to.mode = PT_TLS_PSK;
		to.psk_file = pskf;
	}
	p->tls = pt_tls_new(&to, 1, err, sizeof(err));
	if (!p->tls)
		fprintf(stderr, "server TLS: %s\n", err);
	CU_ASSERT_FATAL(p->tls != NULL);
	eu_tmpdir(p->dir, sizeof(p->dir));
	snprintf(p->mem, sizeof(p->mem), "%s/dest.mem", p->dir);
	snprintf(p->state, sizeof(p->state), "%s/state", p->dir);
	mkdir(p->state, 0700);
	p->o.lfd = pt_tcp_listen("127.0.0.1:0");
	CU_ASSERT_FATAL(p->o.lfd >= 0);
	{
		struct sockaddr_in a = { 0 };
		socklen_t al = sizeof(a);

		getsockname(p->o.lfd, (struct sockaddr *)&a, &al);
		snprintf(p->to, sizeof(p->to), "127.0.0.1:%d",
			 ntohs(a.sin_port));
	}
	p->o.mem_path = p->mem;
	p->o.state_dir = p->state;
	p->o.idle_ms = idle_ms;
	p->o.io_timeout_ms = 3000;
	p->o.quiet = 1;
	p->o.tls = p->tls;
	CU_ASSERT_FATAL(pthread_create(&p->th, NULL, tpeer_main, p) == 0);
}

static void tpeer_finish(struct tpeer *p)
{
	pthread_join(p->th, NULL);
	close(p->o.lfd);
	pt_tls_free(p->tls);
	eu_rmdir(p->dir);
}

/* A source's credentials from @sub of the test directory (or PSK). */
static struct pt_tls *client_tls(const char *sub, const char *psk,
				 const char *hostname)
{
	char tdir[PATH_MAX + 16], pskf[PATH_MAX + 16], err[256];
	struct pt_tls_opts o = { .dir = tdir, .hostname = hostname };
	struct pt_tls *t;

	snprintf(tdir, sizeof(tdir), "%s/%s", pt_test_tls_dir(), sub);
	if (psk) {
		snprintf(pskf, sizeof(pskf), "%s/%s", pt_test_tls_dir(), psk);
		o.mode = PT_TLS_PSK;
		o.psk_file = pskf;
	}
	t = pt_tls_new(&o, 0, err, sizeof(err));
	if (!t)
		fprintf(stderr, "client TLS: %s\n", err);
	CU_ASSERT_FATAL(t != NULL);
	return t;
}

/* Migrates a small guest to @to with @tls; returns pt_migrate's result
 * and, on success, whether the destination file matches. */
static int migrate_to(const char *to, const struct pt_tls *tls,
		      const char *mem_path, struct pt_source_result *res)
{
	struct msrc_opts mo = { .size = 4 * MIB, .writers = 1, .rate = 2000 };
	struct pt_source_opts so = {
		.to = to, .tls = tls, .reconnect_ms = 800, .io_timeout_ms = 3000
	};
	const uint8_t *mem;
	uint64_t size;
	struct msrc *m;
	int rc;

	CU_ASSERT_FATAL(msrc_create(&m, &mo) == 0);
	rc = pt_migrate(msrc_source(m), &so, res);
	if (!rc && mem_path) {
		mem = msrc_mem(m, &size);
		CU_ASSERT_EQUAL(eu_compare(mem_path, mem, size), 0);
	}
	if (rc) {
		/* Refused sources keep their guest running. */
		CU_ASSERT(!msrc_paused(m));
	}
	msrc_destroy(m);
	return rc;
}

/* An attacker from the spec: a well-formed Hello in plain TCP. It gets no
 * ptrack frame back, only the end of the connection. */
static void raw_hello_attack(const char *to)
{
	Ptrack__V1__Hello h = PTRACK__V1__HELLO__INIT;
	Ptrack__V1__Region ri = PTRACK__V1__REGION__INIT, *rp = &ri;
	struct pt_txframe tx;
	uint8_t buf[4096];
	ssize_t n, got = 0;
	int fd = pt_tcp_connect(to, 1000);

	CU_ASSERT_FATAL(fd >= 0);
	pt_sock_timeouts(fd, 3000);
	h.version = PT_PROTO_VERSION;
	h.role = PTRACK__V1__ROLE__ROLE_SOURCE;
	h.session_id = 0x1234;
	ri.id = 1;
	ri.size = 1 << 20;
	ri.page_size = 4096;
	h.n_regions = 1;
	h.regions = &rp;
	CU_ASSERT_FATAL(pt_txframe_init(&tx) == 0);
	CU_ASSERT(pt_frame_build(&tx, PTRACK__V1__MSG_TYPE__MSG_TYPE_HELLO, 0,
				 1, &h.base, NULL, 0, PT_FRAME_MAX_DEFAULT,
				 NULL) == 0);
	pt_frame_send(fd, &tx);
	pt_txframe_release(&tx);
	while ((n = read(fd, buf + got, sizeof(buf) - (size_t)got)) > 0 &&
	       got < (ssize_t)sizeof(buf))
		got += n;
	/* At most a TLS alert record (type 21), never a frame. */
	CU_ASSERT(got < 8 || memcmp(buf, "PTRK", 4) != 0);
	if (got)
		CU_ASSERT_EQUAL(buf[0], 21);
	close(fd);
}

/* Acceptance: with the defaults (x509, both sides verified) nobody but
 * an allowed, CA-signed source stores a byte, and it still can after. */
static void test_tls_refuses_unauthenticated(void)
{
	struct tpeer p = { 0 };
	struct pt_source_result res;
	struct pt_tls *rogue, *intruder, *good;

	tpeer_start(&p, "", NULL, "CN=ptrack-source,*", 15000);
	/* A complete plaintext source: Hello, pages, Complete. */
	CU_ASSERT(migrate_to(p.to, NULL, NULL, &res) < 0);
	CU_ASSERT_EQUAL(res.pages_sent, 0);
	raw_hello_attack(p.to);
	/* Signed by another CA. */
	rogue = client_tls("rogue", NULL, NULL);
	CU_ASSERT(migrate_to(p.to, rogue, NULL, &res) < 0);
	CU_ASSERT(strstr(res.err, "refused") || strstr(res.err, "TLS"));
	CU_ASSERT_EQUAL(res.pages_sent, 0);
	/* The right CA, but not an allowed name. */
	intruder = client_tls("other", NULL, NULL);
	CU_ASSERT(migrate_to(p.to, intruder, NULL, &res) < 0);
	CU_ASSERT(strstr(res.err, "refused") != NULL);
	CU_ASSERT_EQUAL(res.pages_sent, 0);
	/* Not one byte stored, no session set up. */
	CU_ASSERT(access(p.mem, F_OK) != 0);
	{
		char st[PATH_MAX + 32];

		snprintf(st, sizeof(st), "%s/session.state", p.state);
		CU_ASSERT(access(st, F_OK) != 0);
	}
	good = client_tls("", NULL, NULL);
	CU_ASSERT_EQUAL(migrate_to(p.to, good, p.mem, &res), 0);
	tpeer_finish(&p);
	CU_ASSERT_EQUAL(p.rc, 0);
	CU_ASSERT(p.res.pages > 0);
	pt_tls_free(rogue);
	pt_tls_free(intruder);
	pt_tls_free(good);
}

/* A rogue destination (other CA) or one that is not the host dialled gets
 * no page: the source refuses it in the handshake. */
static void test_tls_refuses_rogue_peer(void)
{
	struct tpeer p = { 0 }, q = { 0 };
	struct pt_source_result res;
	struct pt_tls *good = client_tls("", NULL, NULL);
	struct pt_tls *wrong_name = client_tls("", NULL, "db.example");

	tpeer_start(&p, "rogue", NULL, NULL, 1500);
	CU_ASSERT(migrate_to(p.to, good, NULL, &res) < 0);
	CU_ASSERT(strstr(res.err, "certificate") != NULL);
	CU_ASSERT_EQUAL(res.pages_sent, 0);
	CU_ASSERT_EQUAL(res.reconnects, 0);
	tpeer_finish(&p);
	CU_ASSERT(p.rc < 0);
	tpeer_start(&q, "", NULL, NULL, 1500);
	CU_ASSERT(migrate_to(q.to, wrong_name, NULL, &res) < 0);
	CU_ASSERT(strstr(res.err, "certificate") != NULL);
	CU_ASSERT_EQUAL(res.pages_sent, 0);
	tpeer_finish(&q);
	CU_ASSERT(access(q.mem, F_OK) != 0);
	pt_tls_free(good);
	pt_tls_free(wrong_name);
}

/* Pre-shared keys: the right key migrates, another key is refused. */
static void test_tls_psk(void)
{
	struct tpeer p = { 0 };
	struct pt_source_result res;
	struct pt_tls *bad = client_tls("", "rogue/psk.txt", NULL);
	struct pt_tls *good = client_tls("", "psk.txt", NULL);

	tpeer_start(&p, "", "psk.txt", NULL, 15000);
	CU_ASSERT(migrate_to(p.to, bad, NULL, &res) < 0);
	CU_ASSERT_EQUAL(res.pages_sent, 0);
	CU_ASSERT(access(p.mem, F_OK) != 0);
	CU_ASSERT_EQUAL(migrate_to(p.to, good, p.mem, &res), 0);
	tpeer_finish(&p);
	CU_ASSERT_EQUAL(p.rc, 0);
	pt_tls_free(bad);
	pt_tls_free(good);
}

/* Missing or unreadable credentials are a clear error at start-up. */
static void test_tls_missing_credentials(void)
{
	struct pt_tls_opts o = { .dir = "/nonexistent/pki" };
	char err[256];

	CU_ASSERT(pt_tls_new(&o, 1, err, sizeof(err)) == NULL);
	CU_ASSERT(strstr(err, "/nonexistent/pki/ca-cert.pem") != NULL);
	o.mode = PT_TLS_PSK;
	o.psk_file = "/nonexistent/psk.txt";
	CU_ASSERT(pt_tls_new(&o, 0, err, sizeof(err)) == NULL);
	CU_ASSERT(strstr(err, "psk.txt") != NULL);
}

PT_SUITE(tls, PT_TEST(test_tls_refuses_unauthenticated),
	 PT_TEST(test_tls_refuses_rogue_peer), PT_TEST(test_tls_psk),
	 PT_TEST(test_tls_missing_credentials));
