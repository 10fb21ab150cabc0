// SPDX-License-Identifier: MIT
/* TLS on the peer link (tls.h): credentials, handshake, record relay. */
#include "engine/tls.h"

#include <errno.h>
#include <fnmatch.h>
#include <gnutls/gnutls.h>
#include <gnutls/socket.h>
#include <gnutls/x509.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "engine/migrate.h"

/* TLS 1.3 only; AES-128-GCM first (AES-NI and the cheapest AEAD here:
 * the link is as fast as its cipher), then GnuTLS's usual order. */
#define PRIO_CIPHERS "-CIPHER-ALL:+AES-128-GCM:+AES-256-GCM:+CHACHA20-POLY1305"
#define PRIO_X509 "NORMAL:-VERS-ALL:+VERS-TLS1.3:" PRIO_CIPHERS
#define PRIO_PSK \
	"NORMAL:-VERS-ALL:+VERS-TLS1.3:-KX-ALL:+ECDHE-PSK:+DHE-PSK:" PRIO_CIPHERS
#define RELAY_BUF (256u << 10)

struct pt_tls {
	int server;
	enum pt_tls_mode mode;
	gnutls_certificate_credentials_t x509;
	gnutls_psk_server_credentials_t psk_srv;
	gnutls_psk_client_credentials_t psk_cli;
	gnutls_priority_t prio;
	char *allowed, *hostname;
	/* Server PSK: the key file's text, read once at start (the
	 * connection children that do the handshake cannot open files). */
	char *psk_keys;
	/* Relays still running: pt_tls_free waits for them to flush. */
	pthread_mutex_t lock;
	pthread_cond_t idle;
	unsigned int relays;
};

static _Atomic int last_ktls;
static const char *_Atomic last_cipher;

void pt_tls_last_info(char *buf, size_t len)
{
	const char *c = atomic_load(&last_cipher);

	snprintf(buf, len, "TLS1.3 %s, %s", c ? c : "?",
		 atomic_load(&last_ktls) ? "kTLS" : "relay");
}

static int gerr(char *err, size_t len, int r, const char *what)
{
	snprintf(err, len, "%s: %s", what, gnutls_strerror(r));
	return -1;
}

static int load_x509(struct pt_tls *t, const char *dir, char *err, size_t len)
{
	const char *who = t->server ? "server" : "client";
	char ca[4096], cert[4096], key[4096];
	int r;

	if (snprintf(ca, sizeof(ca), "%s/ca-cert.pem", dir) >=
		    (int)sizeof(ca) ||
	    snprintf(cert, sizeof(cert), "%s/%s-cert.pem", dir, who) >=
		    (int)sizeof(cert) ||
	    snprintf(key, sizeof(key), "%s/%s-key.pem", dir, who) >=
		    (int)sizeof(key)) {
		snprintf(err, len, "TLS directory name too long");
		return -1;
	}
	r = gnutls_certificate_allocate_credentials(&t->x509);
	if (r)
		return gerr(err, len, r, "TLS credentials");
	r = gnutls_certificate_set_x509_trust_file(t->x509, ca,
						   GNUTLS_X509_FMT_PEM);
	if (r <= 0) {
		snprintf(err, len, "TLS CA %s: %s", ca,
			 r ? gnutls_strerror(r) : "no certificate");
		return -1;
	}
	r = gnutls_certificate_set_x509_key_file(t->x509, cert, key,
						 GNUTLS_X509_FMT_PEM);
	if (r) {
		snprintf(err, len, "TLS %s certificate %s / key %s: %s", who,
			 cert, key, gnutls_strerror(r));
		return -1;
	}
	return 0;
}

/* The client's key: the named identity's line of the psktool file. */
static int load_psk_client(struct pt_tls *t, const struct pt_tls_opts *o,
			   char *err, size_t len)
{
	char line[1024], *colon;
	gnutls_datum_t key;
	FILE *f = fopen(o->psk_file, "re");
	int r = -1;

	if (!f) {
		snprintf(err, len, "TLS PSK file %s: %s", o->psk_file,
			 strerror(errno));
		return -1;
	}
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\r\n")] = 0;
		colon = strchr(line, ':');
		if (!colon)
			continue;
		*colon = 0;
		if (o->psk_identity && strcmp(line, o->psk_identity) != 0)
			continue;
		key.data = (unsigned char *)colon + 1;
		key.size = (unsigned int)strlen(colon + 1);
		r = gnutls_psk_allocate_client_credentials(&t->psk_cli);
		if (!r)
			r = gnutls_psk_set_client_credentials(
				t->psk_cli, line, &key, GNUTLS_PSK_KEY_HEX);
		if (r)
			gerr(err, len, r, "TLS PSK key");
		break;
	}
	explicit_bzero(line, sizeof(line));
	fclose(f);
	if (r > 0 || (r < 0 && !err[0]))
		snprintf(err, len, "TLS PSK file %s: no identity %s",
			 o->psk_file, o->psk_identity ? o->psk_identity : "");
	return r ? -1 : 0;
}

/* The whole key file (psktool's "identity:hex" lines), NUL-terminated. */
static char *read_keys(const char *path)
{
	FILE *f = fopen(path, "re");
	char *b = NULL;
	size_t n = 0, cap = 0, got;

	if (!f)
		return NULL;
	do {
		if (n + 1024 + 1 > cap) {
			char *nb = realloc(b, cap = cap * 2 + 2048);

			if (!nb || cap > (1u << 20)) {
				free(nb ? nb : b);
				fclose(f);
				errno = EFBIG;
				return NULL;
			}
			b = nb;
		}
		got = fread(b + n, 1, 1024, f);
		n += got;
	} while (got);
	fclose(f);
	b[n] = 0;
	return b;
}

/* The key of @user from the keys read at start (GnuTLS's callback). */
static int psk_lookup(gnutls_session_t s, const char *user, gnutls_datum_t *key)
{
	const struct pt_tls *t = gnutls_session_get_ptr(s);
	const char *l = t ? t->psk_keys : NULL, *end, *colon;
	size_t ul = strlen(user);
	gnutls_datum_t hex;

	for (; l && *l; l = *end ? end + 1 : end) {
		end = l + strcspn(l, "\n");
		colon = memchr(l, ':', (size_t)(end - l));
		if (!colon || (size_t)(colon - l) != ul ||
		    memcmp(l, user, ul) != 0)
			continue;
		hex.data = (unsigned char *)colon + 1;
		hex.size = (unsigned int)(end - colon - 1);
		while (hex.size && hex.data[hex.size - 1] == '\r')
			hex.size--;
		return gnutls_hex_decode2(&hex, key) ? -1 : 0;
	}
	return -1;
}

static int load_psk(struct pt_tls *t, const struct pt_tls_opts *o, char *err,
		    size_t len)
{
	int r;

	if (!o->psk_file) {
		snprintf(err, len, "TLS PSK mode needs a key file");
		return -1;
	}
	if (!t->server)
		return load_psk_client(t, o, err, len);
	t->psk_keys = read_keys(o->psk_file);
	if (!t->psk_keys) {
		snprintf(err, len, "TLS PSK file %s: %s", o->psk_file,
			 strerror(errno));
		return -1;
	}
	r = gnutls_psk_allocate_server_credentials(&t->psk_srv);
	if (!r)
		gnutls_psk_set_server_credentials_function(t->psk_srv,
							   psk_lookup);
	return r ? gerr(err, len, r, "TLS PSK file") : 0;
}

struct pt_tls *pt_tls_new(const struct pt_tls_opts *o, int server, char *err,
			  size_t len)
{
	struct pt_tls *t = calloc(1, sizeof(*t));
	int r;

	err[0] = 0;
	if (!t) {
		snprintf(err, len, "%s", strerror(ENOMEM));
		return NULL;
	}
	t->server = server;
	t->mode = o->mode;
	pthread_mutex_init(&t->lock, NULL);
	pthread_cond_init(&t->idle, NULL);
	if ((o->allowed && !(t->allowed = strdup(o->allowed))) ||
	    (o->hostname && !(t->hostname = strdup(o->hostname)))) {
		snprintf(err, len, "%s", strerror(ENOMEM));
		goto free_t;
	}
	if (o->mode == PT_TLS_PSK
		    ? load_psk(t, o, err, len)
		    : load_x509(t, o->dir ? o->dir : PT_TLS_DIR_DEFAULT, err,
				len))
		goto free_t;
	r = gnutls_priority_init(
		&t->prio, o->mode == PT_TLS_PSK ? PRIO_PSK : PRIO_X509, NULL);
	if (r) {
		gerr(err, len, r, "TLS priorities");
		goto free_t;
	}
	return t;
free_t:
	pt_tls_free(t);
	return NULL;
}

/* What the engine wrote last (a final Ack) is still in a relay when it
 * closes its socket: give the relays time to send it. */
static void wait_relays(struct pt_tls *t, int ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += ms / 1000;
	pthread_mutex_lock(&t->lock);
	while (t->relays &&
	       pthread_cond_timedwait(&t->idle, &t->lock, &ts) == 0)
		;
	pthread_mutex_unlock(&t->lock);
}

void pt_tls_free(struct pt_tls *t)
{
	if (!t)
		return;
	wait_relays(t, 5000);
	if (t->x509)
		gnutls_certificate_free_credentials(t->x509);
	if (t->psk_srv)
		gnutls_psk_free_server_credentials(t->psk_srv);
	if (t->psk_cli)
		gnutls_psk_free_client_credentials(t->psk_cli);
	if (t->prio)
		gnutls_priority_deinit(t->prio);
	pthread_cond_destroy(&t->idle);
	pthread_mutex_destroy(&t->lock);
	free(t->allowed);
	free(t->hostname);
	if (t->psk_keys) {
		explicit_bzero(t->psk_keys, strlen(t->psk_keys));
		free(t->psk_keys);
	}
	free(t);
}

/* ---- handshake -------------------------------------------------------- */

/* Whether @dn matches one of the ';'-separated fnmatch patterns (a DN has
 * commas of its own). */
static int dn_allowed(const char *allowed, const char *dn)
{
	char *list = strdup(allowed), *save = NULL, *pat;
	int ok = 0;

	if (!list)
		return 0;
	for (pat = strtok_r(list, ";", &save); pat && !ok;
	     pat = strtok_r(NULL, ";", &save)) {
		while (*pat == ' ')
			pat++;
		ok = !fnmatch(pat, dn, 0);
	}
	free(list);
	return ok;
}

static int check_client_dn(const struct pt_tls *t, gnutls_session_t s,
			   char *err, size_t len)
{
	const gnutls_datum_t *certs;
	gnutls_x509_crt_t crt;
	gnutls_datum_t dn = { 0 };
	unsigned int n = 0;
	int ok = 0;

	certs = gnutls_certificate_get_peers(s, &n);
	if (!certs || !n || gnutls_x509_crt_init(&crt))
		goto out;
	if (!gnutls_x509_crt_import(crt, &certs[0], GNUTLS_X509_FMT_DER) &&
	    !gnutls_x509_crt_get_dn3(crt, &dn, 0)) {
		ok = dn_allowed(t->allowed, (const char *)dn.data);
		if (!ok)
			snprintf(err, len, "client %s is not allowed",
				 (const char *)dn.data);
		gnutls_free(dn.data);
	}
	gnutls_x509_crt_deinit(crt);
out:
	if (!ok && !err[0])
		snprintf(err, len, "client certificate unreadable");
	return ok ? 0 : -EACCES;
}

static int session_new(const struct pt_tls *t, gnutls_session_t *s, int fd,
		       const char *host, char *err, size_t len)
{
	/* No tickets: nothing arrives after the handshake but data, which
	 * kernel TLS needs, and no resumption skips the peer's check. */
	int r = gnutls_init(s, (t->server ? GNUTLS_SERVER : GNUTLS_CLIENT) |
				       GNUTLS_NO_TICKETS);

	if (r)
		return gerr(err, len, r, "TLS session"), -ENOMEM;
	r = gnutls_priority_set(*s, t->prio);
	if (!r && t->mode == PT_TLS_X509)
		r = gnutls_credentials_set(*s, GNUTLS_CRD_CERTIFICATE, t->x509);
	else if (!r)
		r = gnutls_credentials_set(*s, GNUTLS_CRD_PSK,
					   t->server ? (void *)t->psk_srv
						     : (void *)t->psk_cli);
	if (!r && t->mode == PT_TLS_X509 && t->server)
		gnutls_certificate_server_set_request(*s, GNUTLS_CERT_REQUIRE);
	if (!r && t->mode == PT_TLS_X509 && !t->server) {
		host = t->hostname ? t->hostname : host;
		/* The name the destination's certificate must carry. */
		gnutls_session_set_verify_cert(*s, host, 0);
	}
	if (!r && t->mode == PT_TLS_X509 && t->server)
		gnutls_session_set_verify_cert(*s, NULL, 0);
	if (r) {
		gnutls_deinit(*s);
		return gerr(err, len, r, "TLS session"), -EINVAL;
	}
	gnutls_session_set_ptr(*s, (void *)t);
	gnutls_transport_set_int(*s, fd);
	return 0;
}

/*
 * In TLS 1.3 the client's handshake ends before the server has checked
 * the client's certificate: the server confirms with one record, so a
 * refused source learns why at once instead of at its first read.
 */
#define LINK_OK 'K'

static int accept_ok(gnutls_session_t s, char *err, size_t len)
{
	char ok = LINK_OK;
	ssize_t n;

	do {
		n = gnutls_record_send(s, &ok, 1);
	} while (n == GNUTLS_E_INTERRUPTED || n == GNUTLS_E_AGAIN);
	return n == 1 ? 0 : (gerr(err, len, (int)n, "TLS"), -EPIPE);
}

static int await_ok(gnutls_session_t s, char *err, size_t len)
{
	char ok = 0;
	ssize_t n;

	do {
		n = gnutls_record_recv(s, &ok, 1);
	} while (n == GNUTLS_E_INTERRUPTED);
	if (n == GNUTLS_E_FATAL_ALERT_RECEIVED) {
		snprintf(err, len, "TLS: the peer refused us: %s",
			 gnutls_alert_get_name(gnutls_alert_get(s)));
		return -EACCES;
	}
	if (n == 1 && ok == LINK_OK)
		return 0;
	if (n == GNUTLS_E_AGAIN)
		return snprintf(err, len, "TLS: no answer"), -ETIMEDOUT;
	if (n <= 0)
		return gerr(err, len,
			    n ? (int)n : GNUTLS_E_PREMATURE_TERMINATION, "TLS"),
		       -ECONNRESET;
	return snprintf(err, len, "TLS: peer is not a ptrack peer"), -EPROTO;
}

/*
 * The link broke during the handshake (a peer killed or restarted, a reset):
 * the source's reconnect loop may retry. Anything else is a refusal.
 */
static int is_transport_error(int r)
{
	return r == GNUTLS_E_PULL_ERROR || r == GNUTLS_E_PUSH_ERROR ||
	       r == GNUTLS_E_PREMATURE_TERMINATION ||
	       r == GNUTLS_E_UNEXPECTED_PACKET_LENGTH;
}

static int handshake(const struct pt_tls *t, gnutls_session_t s, int timeout_ms,
		     char *err, size_t len)
{
	unsigned int status;
	gnutls_datum_t out;
	int r;

	gnutls_handshake_set_timeout(s, (unsigned int)timeout_ms);
	do {
		r = gnutls_handshake(s);
	} while (r < 0 && !gnutls_error_is_fatal(r));
	if (r == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR) {
		status = gnutls_session_get_verify_cert_status(s);
		if (!gnutls_certificate_verification_status_print(
			    status, GNUTLS_CRT_X509, &out, 0)) {
			snprintf(err, len, "TLS: peer certificate: %s",
				 out.data);
			gnutls_free(out.data);
			return -EACCES;
		}
	}
	if (r && t->server)
		gnutls_alert_send_appropriate(s, r);
	if (r == GNUTLS_E_TIMEDOUT)
		return snprintf(err, len, "TLS handshake: no answer in %d ms",
				timeout_ms),
		       -ETIMEDOUT;
	if (r && is_transport_error(r))
		return gerr(err, len, r, "TLS handshake"), -ECONNRESET;
	if (r)
		return gerr(err, len, r, "TLS handshake"), -EACCES;
	if (gnutls_protocol_get_version(s) != GNUTLS_TLS1_3)
		return snprintf(err, len, "TLS: not TLS 1.3"), -EPROTO;
	if (t->server && t->mode == PT_TLS_X509 && t->allowed &&
	    check_client_dn(t, s, err, len)) {
		gnutls_alert_send(s, GNUTLS_AL_FATAL, GNUTLS_A_ACCESS_DENIED);
		return -EACCES;
	}
	return t->server ? accept_ok(s, err, len) : await_ok(s, err, len);
}

/* ---- relay ------------------------------------------------------------ */

/*
 * Two threads per connection: one encrypts what the engine writes to its
 * end of the socketpair, one decrypts into it (GnuTLS allows one sender
 * and one receiver on a session at once). Either ending tears the whole
 * link down, so the engine sees EOF or EPIPE and its own deadlines apply
 * on its end as they would on a TCP socket.
 */
struct relay {
	struct pt_tls *t;
	gnutls_session_t s;
	int tcp, local;
	atomic_int refs;
	atomic_int closing;
};

static void relay_put(struct relay *r)
{
	struct pt_tls *t = r->t;

	if (atomic_fetch_sub(&r->refs, 1) != 1)
		return;
	gnutls_deinit(r->s);
	close(r->tcp);
	close(r->local);
	free(r);
	pthread_mutex_lock(&t->lock);
	if (!--t->relays)
		pthread_cond_broadcast(&t->idle);
	pthread_mutex_unlock(&t->lock);
}

static void relay_stop(struct relay *r)
{
	atomic_store(&r->closing, 1);
	shutdown(r->local, SHUT_RDWR);
	shutdown(r->tcp, SHUT_RDWR);
}

static int write_all(int fd, const uint8_t *b, size_t n)
{
	ssize_t w;

	while (n) {
		w = write(fd, b, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		b += w;
		n -= (size_t)w;
	}
	return 0;
}

static void *relay_tx(void *arg)
{
	struct relay *r = arg;
	uint8_t *buf = malloc(RELAY_BUF);
	ssize_t n, w;
	size_t off;

	while (buf) {
		n = read(r->local, buf, RELAY_BUF);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		/* Corked: the records of one read leave in one write, not
		 * one syscall per 16 KiB record. */
		gnutls_record_cork(r->s);
		for (off = 0; off < (size_t)n;) {
			w = gnutls_record_send(r->s, buf + off,
					       (size_t)n - off);
			if (w == GNUTLS_E_INTERRUPTED)
				continue;
			if (w < 0)
				goto out;
			off += (size_t)w;
		}
		/* E_AGAIN too is fatal: the other side did not read for a
		 * whole send timeout. */
		do {
			w = gnutls_record_uncork(r->s, GNUTLS_RECORD_WAIT);
		} while (w == GNUTLS_E_INTERRUPTED);
		if (w < 0)
			goto out;
	}
	/* The engine closed its end: close_notify, so the other side reads a
	 * clean end of stream. */
	if (!atomic_load(&r->closing))
		gnutls_bye(r->s, GNUTLS_SHUT_WR);
out:
	free(buf);
	relay_stop(r);
	relay_put(r);
	return NULL;
}

static void *relay_rx(void *arg)
{
	struct relay *r = arg;
	uint8_t *buf = malloc(RELAY_BUF);
	ssize_t n;

	size_t got;

	while (buf) {
		n = gnutls_record_recv(r->s, buf, RELAY_BUF);
		if (n == GNUTLS_E_INTERRUPTED ||
		    (n == GNUTLS_E_AGAIN && !atomic_load(&r->closing)))
			continue;
		if (n <= 0)
			break;
		/* Records already received go out in the same write. */
		for (got = (size_t)n;
		     got < RELAY_BUF && gnutls_record_check_pending(r->s);
		     got += (size_t)n) {
			n = gnutls_record_recv(r->s, buf + got,
					       RELAY_BUF - got);
			if (n <= 0)
				break;
		}
		if (write_all(r->local, buf, got) || n <= 0)
			break;
	}
	free(buf);
	/* Let the engine read what it has, then EOF; the tx thread ends
	 * when the engine closes or its next send fails. */
	shutdown(r->local, SHUT_WR);
	shutdown(r->tcp, SHUT_RD);
	relay_put(r);
	return NULL;
}

static int relay_start(struct pt_tls *t, gnutls_session_t s, int tcp)
{
	struct relay *r = calloc(1, sizeof(*r));
	int sp[2], sz = 1 << 20;
	pthread_attr_t a;
	pthread_t th;

	if (!r)
		return -ENOMEM;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp)) {
		free(r);
		return -errno;
	}
	setsockopt(sp[1], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	setsockopt(sp[1], SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
	r->t = t;
	r->s = s;
	r->tcp = tcp;
	r->local = sp[1];
	atomic_init(&r->refs, 2);
	pthread_mutex_lock(&t->lock);
	t->relays++;
	pthread_mutex_unlock(&t->lock);
	pthread_attr_init(&a);
	pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&th, &a, relay_tx, r)) {
		pthread_mutex_lock(&t->lock);
		t->relays--;
		pthread_mutex_unlock(&t->lock);
		pthread_attr_destroy(&a);
		close(sp[0]);
		close(sp[1]);
		free(r);
		return -EAGAIN;
	}
	if (pthread_create(&th, &a, relay_rx, r)) {
		/* The tx thread holds the last reference and cleans up. */
		atomic_fetch_sub(&r->refs, 1);
		relay_stop(r);
		pthread_attr_destroy(&a);
		close(sp[0]);
		return -EAGAIN;
	}
	pthread_attr_destroy(&a);
	return sp[0];
}

void pt_link_warn_plain(void)
{
	/* Said on every connection: plain TCP is a choice to see. */
	fprintf(stderr,
		"ptrack: WARNING: peer link in plain TCP (insecure): "
		"anyone on the path can read and forge the guest's memory\n");
}

int pt_link_secure(const struct pt_tls *t, int fd, const char *host,
		   int timeout_ms, char *err, size_t len)
{
	gnutls_session_t s;
	int r;

	err[0] = 0;
	if (!t) {
		pt_link_warn_plain();
		return fd;
	}
	/* The send timeout also bounds the relay's writes; reads wait. */
	r = pt_sock_timeouts(fd, timeout_ms);
	if (r) {
		snprintf(err, len, "socket: %s", strerror(-r));
		goto close_fd;
	}
	r = session_new(t, &s, fd, host, err, len);
	if (r)
		goto close_fd;
	r = handshake(t, s, timeout_ms, err, len);
	if (r)
		goto deinit;
	atomic_store(&last_cipher,
		     gnutls_cipher_get_name(gnutls_cipher_get(s)));
	if (gnutls_transport_is_ktls_enabled(s) == GNUTLS_KTLS_DUPLEX) {
		/* The kernel has the keys: the engine uses the socket as is,
		 * and pages still go out without a copy of ours. */
		last_ktls = 1;
		gnutls_deinit(s);
		return fd;
	}
	last_ktls = 0;
	/* The relay count is bookkeeping, not the credentials. */
	r = relay_start((struct pt_tls *)t, s, fd);
	if (r < 0) {
		snprintf(err, len, "TLS relay: %s", strerror(-r));
		goto deinit;
	}
	return r;
deinit:
	gnutls_deinit(s);
close_fd:
	close(fd);
	return r;
}
