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

static void read_line(const char *path, char *out, size_t len)
{
	FILE *f = fopen(path, "re");

	snprintf(out, len, "?");
	if (f && fgets(out, (int)len, f))
		out[strcspn(out, "\n")] = '\0';
	if (f)
		fclose(f);
}

int pt_tcp_congestion_check(const char *name, char *err, size_t len)
{
	char list[256];
	int fd, ret = 0;

	/* TCP_CA_NAME_MAX is 16 with the NUL. */
	if (!name[0] || strlen(name) >= 16) {
		snprintf(
			err, len,
			"'%s' is not a TCP congestion control name (1 to 15 characters)",
			name);
		return -EINVAL;
	}
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		ret = -errno;
		snprintf(err, len, "TCP socket: %s", strerror(-ret));
		return ret;
	}
	if (setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, name, strlen(name)))
		ret = -errno;
	close(fd);
	if (ret == -ENOENT) {
		read_line("/proc/sys/net/ipv4/tcp_available_congestion_control",
			  list, sizeof(list));
		snprintf(
			err, len,
			"TCP congestion control '%s' is not available in this kernel (available: %s)",
			name, list);
	} else if (ret == -EPERM) {
		read_line("/proc/sys/net/ipv4/tcp_allowed_congestion_control",
			  list, sizeof(list));
		snprintf(
			err, len,
			"TCP congestion control '%s' is not allowed without CAP_NET_ADMIN (allowed: %s)",
			name, list);
	} else if (ret) {
		snprintf(err, len, "TCP congestion control '%s': %s", name,
			 strerror(-ret));
	}
	return ret;
}

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

int pt_hostport_host(const char *hostport, char *host, size_t len)
{
	const char *port;

	return split_hostport(hostport, host, len, &port);
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
	int one = 1, dom = 0;
	socklen_t len = sizeof(dom);

	/* A stalled peer must turn into an error, never a hang. */
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) ||
	    getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &dom, &len))
		return -errno;
	/* Not on the TLS relay's unix socket (pt_link_secure). */
	if (dom != AF_UNIX &&
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
