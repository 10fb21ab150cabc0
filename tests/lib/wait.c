// SPDX-License-Identifier: MIT
/*
 * Waiting for events, not for time: a process's exit (pidfd), a file
 * appearing or a line appearing in it (inotify on its directory), a
 * datagram on a socket. Every wait is bounded.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pt_test.h"

long pt_test_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int pt_pidfd(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

int pt_wait_pid(pid_t pid, long ms, int *status)
{
	struct pollfd p = { .events = POLLIN };
	int st, ret;

	p.fd = pt_pidfd(pid);
	if (p.fd < 0)
		return -errno;
	ret = poll(&p, 1, ms < 0 ? 0 : (int)ms);
	close(p.fd);
	if (ret < 0)
		return -errno;
	if (!ret)
		return -ETIMEDOUT;
	if (waitpid(pid, &st, 0) != pid)
		return -errno;
	if (status)
		*status = st;
	return 0;
}

static int file_has(const char *path, const char *what)
{
	FILE *f;
	char *buf = NULL;
	size_t cap = 0;
	ssize_t n;
	int has = 0;

	/* A socket exists but does not open. */
	if (!what || !*what)
		return access(path, F_OK) == 0;
	f = fopen(path, "re");
	if (!f)
		return 0;
	/* Whole file: what we look for may span lines. */
	n = getdelim(&buf, &cap, '\0', f);
	has = n > 0 && strstr(buf, what);
	free(buf);
	fclose(f);
	return has;
}

int pt_wait_file(const char *path, const char *what, pid_t pid, long ms)
{
	char dir[PATH_MAX], ev[4096];
	struct pollfd p[2] = { { .fd = -1, .events = POLLIN },
			       { .fd = -1, .events = POLLIN } };
	long t0 = pt_test_ms(), left;
	char *slash;
	int ret = -ETIMEDOUT;

	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (slash == dir)
		dir[1] = '\0';
	else if (slash)
		*slash = '\0';
	else
		snprintf(dir, sizeof(dir), ".");
	p[0].fd = inotify_init1(IN_CLOEXEC | IN_NONBLOCK);
	if (p[0].fd < 0)
		return -errno;
	/* Watch first, then look: nothing written in between is missed. */
	if (inotify_add_watch(p[0].fd, dir,
			      IN_CREATE | IN_MODIFY | IN_MOVED_TO |
				      IN_CLOSE_WRITE) < 0) {
		ret = -errno;
		goto out;
	}
	if (pid > 0)
		p[1].fd = pt_pidfd(pid);
	for (;;) {
		if (file_has(path, what)) {
			ret = 0;
			break;
		}
		left = ms - (pt_test_ms() - t0);
		if (left <= 0)
			break;
		if (poll(p, 2, (int)left) < 0 && errno != EINTR) {
			ret = -errno;
			break;
		}
		while (read(p[0].fd, ev, sizeof(ev)) > 0)
			;
		if (p[1].revents & POLLIN) {
			/* One last look: it may have written and exited. */
			ret = file_has(path, what) ? 0 : -ECHILD;
			break;
		}
	}
out:
	close(p[0].fd);
	if (p[1].fd >= 0)
		close(p[1].fd);
	return ret;
}

int pt_wait_change(const char *path, long ms)
{
	struct pollfd p = { .events = POLLIN };
	int ret;

	p.fd = inotify_init1(IN_CLOEXEC);
	if (p.fd < 0)
		return -errno;
	if (inotify_add_watch(p.fd, path, IN_MODIFY | IN_CLOSE_WRITE) < 0)
		ret = -errno;
	else
		ret = poll(&p, 1, ms < 0 ? 0 : (int)ms);
	close(p.fd);
	if (ret < 0)
		return ret == -1 ? -errno : ret;
	return ret ? 0 : -ETIMEDOUT;
}

int pt_wait_readable(int fd, pid_t pid, long ms)
{
	struct pollfd p[2] = { { .fd = fd, .events = POLLIN },
			       { .fd = -1, .events = POLLIN } };
	int ret;

	if (pid > 0)
		p[1].fd = pt_pidfd(pid);
	ret = poll(p, 2, ms < 0 ? 0 : (int)ms);
	if (ret > 0 && !(p[0].revents & POLLIN))
		ret = -ECHILD;
	else if (ret < 0)
		ret = -errno;
	else
		ret = ret ? 0 : -ETIMEDOUT;
	if (p[1].fd >= 0)
		close(p[1].fd);
	return ret;
}
