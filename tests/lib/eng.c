// SPDX-License-Identifier: MIT
/* The engine tests' helpers (eu_*, the rogue peer): see eng.h. */
#include "eng.h"

#include <poll.h>

/* The source's side of the test credentials (pt_test_tls_dir), made once. */
const struct pt_tls *eu_tls_client(void)
{
	static struct pt_tls *t;
	struct pt_tls_opts o = { .dir = pt_test_tls_dir() };
	char err[256];

	if (!t && o.dir)
		t = pt_tls_new(&o, 0, err, sizeof(err));
	if (!t)
		fprintf(stderr, "test TLS client: %s\n",
			o.dir ? err : "no certs");
	return t;
}

/* A loopback port that was free a moment ago. */
int eu_free_port(void)
{
	return pt_test_free_port();
}

void eu_tmpdir(char *dir, size_t len)
{
	snprintf(dir, len, "/tmp/ptrack-test-XXXXXX");
	if (!mkdtemp(dir))
		dir[0] = 0;
}

void eu_rmdir(const char *dir)
{
	char cmd[PATH_MAX + 16];

	if (!dir[0] || strncmp(dir, "/tmp/ptrack-test-", 17) != 0)
		return;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd))
		fprintf(stderr, "cannot remove %s\n", dir);
}

/*
 * Starts `ptrackd peer` listening on 127.0.0.1:@port, storing into
 * @dir/dest.mem with its state in @dir/state. With @tmpfs_size, the
 * destination directory is a tmpfs of that size ("16m") mounted in a
 * private mount namespace of the peer only.
 */
pid_t eu_start_peer(const char *dir, int port, const char *tmpfs_size)
{
	char listen[64], mem[PATH_MAX + 32], state[PATH_MAX + 32];
	char bin[PATH_MAX + 32];
	char opts[PATH_MAX + 32];
	/* Made before the fork: the child must use the parent's CA. */
	const char *tls = pt_test_tls_dir();
	pid_t pid;

	snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
	snprintf(mem, sizeof(mem), "%s/dest/dest.mem", dir);
	snprintf(state, sizeof(state), "%s/state", dir);
	snprintf(bin, sizeof(bin), "%s/ptrackd", pt_test_bindir());
	mkdir(state, 0700);
	snprintf(opts, sizeof(opts), "%s/dest", dir);
	mkdir(opts, 0700);
	pid = fork();
	if (pid)
		return pid;
	if (tmpfs_size) {
		snprintf(opts, sizeof(opts), "size=%s", tmpfs_size);
		snprintf(mem, sizeof(mem), "%s/dest", dir);
		if (unshare(CLONE_NEWNS) ||
		    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) ||
		    mount("tmpfs", mem, "tmpfs", 0, opts)) {
			perror("tmpfs for the peer");
			_exit(99);
		}
		snprintf(mem, sizeof(mem), "%s/dest/dest.mem", dir);
	}
	execl(bin, bin, "peer", "--listen", listen, "--mem-file", mem,
	      "--state-dir", state, "--idle-ms", "20000", "--quiet",
	      "--tls-dir", tls, (char *)NULL);
	perror(bin);
	_exit(98);
}

/* Starts a peer in @dir (see eu_start_peer) and connects to it, retrying
 * while it starts up. Returns the socket, or -1; *@peer is its pid. */
int eu_connect_new_peer(const char *dir, pid_t *peer)
{
	int port = eu_free_port(), fd = -1, i;
	char to[64];

	*peer = eu_start_peer(dir, port, NULL);
	snprintf(to, sizeof(to), "127.0.0.1:%d", port);
	char err[256];

	for (i = 0; i < 100 && fd < 0; i++) {
		fd = pt_tcp_connect(to, 1000);
		if (fd < 0)
			usleep(20000);
	}
	/* The rogue source is a client with valid credentials: it tests the
	 * protocol behind the TLS handshake. */
	if (fd >= 0)
		fd = pt_link_secure(eu_tls_client(), fd, "127.0.0.1", 5000, err,
				    sizeof(err));
	if (fd >= 0)
		pt_sock_timeouts(fd, 5000);
	return fd < 0 ? -1 : fd;
}

/* Waits until the peer in @dir persisted a session: the stream began. */
void eu_wait_session(const char *dir)
{
	char path[PATH_MAX + 32];

	snprintf(path, sizeof(path), "%s/state/session.state", dir);
	pt_wait_file(path, NULL, 0, 10000);
}

/* Exit status of @pid (killed: 128 + signal), waiting at most @ms. */
int eu_wait(pid_t pid, int ms)
{
	int st;

	if (!pt_wait_pid(pid, ms, &st))
		return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	return -1;
}

/* 0 when @path holds exactly @len bytes equal to @mem; else the first
 * differing page + 1, or -1 when the file is unreadable or sized wrong. */
long eu_compare(const char *path, const uint8_t *mem, uint64_t len)
{
	int fd = open(path, O_RDONLY);
	struct stat st;
	uint8_t *p;
	uint64_t pg;
	long r = 0;

	if (fd < 0 || fstat(fd, &st) || (uint64_t)st.st_size != len) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	p = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	if (p == MAP_FAILED)
		return -1;
	for (pg = 0; pg < len / 4096 && !r; pg++)
		if (memcmp(p + pg * 4096, mem + pg * 4096, 4096) != 0)
			r = (long)pg + 1;
	munmap(p, len);
	return r;
}

/* ---- a rogue peer: takes the Hello, then misbehaves --------------- */

int rogue_send_ack(int fd, uint64_t seq)
{
	Ptrack__V1__Ack a = PTRACK__V1__ACK__INIT;
	struct pt_txframe tx;
	int r = pt_txframe_init(&tx);

	a.seq = seq;
	if (!r)
		r = pt_frame_build(&tx, PTRACK__V1__MSG_TYPE__MSG_TYPE_ACK, 0,
				   1, &a.base, NULL, 0, PT_FRAME_MAX_DEFAULT,
				   NULL);
	if (!r)
		r = pt_frame_send(fd, &tx);
	pt_txframe_release(&tx);
	return r;
}

/* Reads frames until EOF; remembers the code of an Error frame. */
void rogue_read_error(struct rogue *g, int fd)
{
	struct pt_reader rd;
	struct pt_frame f;
	struct pt_msg m;

	if (pt_reader_init(&rd, fd, PT_FRAME_MAX_DEFAULT))
		return;
	while (pt_reader_next(&rd, &f, NULL) == 1) {
		if (f.hdr.type != PTRACK__V1__MSG_TYPE__MSG_TYPE_ERROR ||
		    pt_msg_decode(&f, NULL, &m, NULL))
			continue;
		g->got_error = m.u.error->code;
		pt_msg_release(&m);
	}
	pt_reader_release(&rd);
}

void *rogue_peer(void *arg)
{
	static const char junk[64] = "this is not a ptrack frame at all";
	struct rogue *g = arg;
	struct pt_reader rd;
	struct pt_frame f;
	struct pollfd p = { .fd = g->lfd, .events = POLLIN };
	int fd = -1;

	/* Bounded: a source that never comes fails the test, not the run. */
	if (poll(&p, 1, 30000) == 1)
		fd = accept(g->lfd, NULL, NULL);
	if (fd < 0)
		return NULL;
	pt_sock_timeouts(fd, 5000);
	/* Take the Hello, then misbehave. */
	if (!pt_reader_init(&rd, fd, PT_FRAME_MAX_DEFAULT)) {
		pt_reader_next(&rd, &f, NULL);
		pt_reader_release(&rd);
	}
	if (g->mode == 0 && write(fd, junk, sizeof(junk)) != sizeof(junk))
		g->got_error = -2;
	if (g->mode == 1)
		rogue_send_ack(fd, 999);
	rogue_read_error(g, fd);
	close(fd);
	return NULL;
}
