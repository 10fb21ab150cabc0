// SPDX-License-Identifier: MIT
/* TCP plumbing shared by the source and the peer. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine/migrate.h"

uint64_t pt_layout_offset(const struct pt_layout *l, size_t i)
{
	uint64_t off = 0;
	size_t k;

	for (k = 0; k < i && k < l->n; k++)
		off += l->r[k].size;
	return off;
}

static int split_hostport(const char *hp, char *host, size_t hlen,
			  const char **port)
{
	const char *colon;
	size_t n;

	if (hp[0] == '[') {
		colon = strstr(hp, "]:");
		if (!colon)
			return -EINVAL;
		n = (size_t)(colon - hp - 1);
		hp++;
		colon++;
	} else {
		colon = strrchr(hp, ':');
		if (!colon)
			return -EINVAL;
		n = (size_t)(colon - hp);
	}
	if (n >= hlen || !colon[1])
		return -EINVAL;
	memcpy(host, hp, n);
	host[n] = 0;
	*port = colon + 1;
	return 0;
}

static int resolve(const char *hostport, int passive, struct addrinfo **res)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
				  .ai_flags = passive ? AI_PASSIVE : 0 };
	char host[256];
	const char *port;
	int r = split_hostport(hostport, host, sizeof(host), &port);

	if (r)
		return r;
	r = getaddrinfo(host[0] ? host : NULL, port, &hints, res);
	return r ? -EHOSTUNREACH : 0;
}

int pt_sock_timeouts(int fd, int timeout_ms)
{
	struct timeval tv = { .tv_sec = timeout_ms / 1000,
			      .tv_usec = (timeout_ms % 1000) * 1000 };
	int one = 1;

	/* A stalled peer must turn into an error, never a hang. */
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) ||
	    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)))
		return -errno;
	return 0;
}

int pt_tcp_listen(const char *hostport)
{
	struct addrinfo *ai;
	int fd, one = 1, r = resolve(hostport, 1, &ai);

	if (r)
		return r;
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		r = -errno;
		goto free_ai;
	}
	/* A peer restarted by its supervisor must get its port back. */
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) || listen(fd, 4)) {
		r = -errno;
		goto close_fd;
	}
	freeaddrinfo(ai);
	return fd;
close_fd:
	close(fd);
free_ai:
	freeaddrinfo(ai);
	return r;
}

static int connect_timeout(int fd, const struct addrinfo *ai, int timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLOUT };
	int flags = fcntl(fd, F_GETFL), err = 0;
	socklen_t len = sizeof(err);

	fcntl(fd, F_SETFL, flags | O_NONBLOCK);
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) && errno != EINPROGRESS)
		return -errno;
	if (poll(&p, 1, timeout_ms) != 1)
		return -ETIMEDOUT;
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len))
		return -errno;
	fcntl(fd, F_SETFL, flags);
	return -err;
}

int pt_tcp_connect(const char *hostport, int timeout_ms)
{
	struct addrinfo *ai;
	int fd, r = resolve(hostport, 0, &ai);

	if (r)
		return r;
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		r = -errno;
		goto free_ai;
	}
	r = connect_timeout(fd, ai, timeout_ms);
	if (!r)
		r = pt_sock_timeouts(fd, timeout_ms);
	if (r)
		goto close_fd;
	freeaddrinfo(ai);
	return fd;
close_fd:
	close(fd);
free_ai:
	freeaddrinfo(ai);
	return r;
}
