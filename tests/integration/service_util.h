/* SPDX-License-Identifier: MIT */
/*
 * Helpers for the service tests: a real ptrackd (`ptrackd serve`) in a
 * private directory, ptrackctl runs with captured output, ptrack-vmm
 * guests, log checks. Everything is a real process on real sockets.
 */
#ifndef PT_TEST_SERVICE_UTIL_H
#define PT_TEST_SERVICE_UTIL_H

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pt_test.h"

struct svc {
	char dir[64];
	char ctl[128], vmm[128], log[128];
	pid_t pid;
};

static inline long svc_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static inline int svc_mkdir(struct svc *s)
{
	memset(s, 0, sizeof(*s));
	strcpy(s->dir, "/tmp/ptrack-svc-XXXXXX");
	if (!mkdtemp(s->dir))
		return -errno;
	chmod(s->dir, 0755);
	snprintf(s->ctl, sizeof(s->ctl), "%s/control.sock", s->dir);
	snprintf(s->vmm, sizeof(s->vmm), "%s/vmm.sock", s->dir);
	snprintf(s->log, sizeof(s->log), "%s/ptrackd.log", s->dir);
	return 0;
}

static inline int svc_can_connect(const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd, ok;

	if (strlen(path) >= sizeof(a.sun_path))
		return 0;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	memcpy(a.sun_path, path, strlen(path) + 1);
	ok = fd >= 0 && !connect(fd, (struct sockaddr *)&a, sizeof(a));
	if (fd >= 0)
		close(fd);
	return ok;
}

static inline void svc_show(const char *path);

/* Spawns @argv with stdout+stderr to @log and extra environment @env
 * (NULL-terminated "K=V" strings, may be NULL). */
static inline pid_t svc_spawn(const char *log, char *const argv[],
			      char *const env[])
{
	pid_t pid = fork();
	int fd;

	if (pid)
		return pid;
	fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
	if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
		_exit(97);
	for (int i = 0; env && env[i]; i++)
		putenv(env[i]);
	execv(argv[0], argv);
	_exit(98);
}

/*
 * Starts `ptrackd serve` on the directory's sockets with @extra flags
 * (NULL-terminated, may be NULL) and waits until it accepts.
 */
static inline int svc_start_env(struct svc *s, const char *const *extra,
				char *const env[])
{
	char bin[PATH_MAX], state[160], tls[PATH_MAX + 16];
	char *argv[40] = { bin,
			   "serve",
			   "--config",
			   "/dev/null",
			   "--control-socket",
			   s->ctl,
			   "--vmm-socket",
			   s->vmm,
			   "--no-libvirt",
			   "--log-target",
			   "stderr",
			   "--log-level",
			   "debug",
			   "--set",
			   state };
	int n = 15;
	long t0 = svc_ms();

	/* Destination files live under the state directory, as in the
	 * unit's sandbox: the test's directory. */
	snprintf(state, sizeof(state), "daemon.state_dir=%s", s->dir);
	/* Migrations between test services run TLS with the run's certs. */
	snprintf(tls, sizeof(tls), "tls.dir=%s", pt_test_tls_dir());
	argv[n++] = "--set";
	argv[n++] = tls;
	snprintf(bin, sizeof(bin), "%s/ptrackd", pt_test_bindir());
	for (int i = 0; extra && extra[i] && n < 38; i++)
		argv[n++] = (char *)extra[i];
	argv[n] = NULL;
	s->pid = svc_spawn(s->log, argv, env);
	while (svc_ms() - t0 < 10000) {
		if (svc_can_connect(s->ctl))
			return 0;
		if (waitpid(s->pid, NULL, WNOHANG) == s->pid) {
			s->pid = 0;
			svc_show(s->log);
			return -ECHILD;
		}
		usleep(20000);
	}
	svc_show(s->log);
	return -ETIMEDOUT;
}

static inline int svc_start(struct svc *s, const char *const *extra)
{
	return svc_start_env(s, extra, NULL);
}

/* Waits up to @ms for @pid; returns its wait status or -1. */
static inline int svc_wait(pid_t pid, long ms)
{
	long t0 = svc_ms();
	int st;

	while (svc_ms() - t0 < ms) {
		if (waitpid(pid, &st, WNOHANG) == pid)
			return st;
		usleep(10000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	return -1;
}

/* SIGTERM, then the exit status (-1 when it had to be killed). */
static inline int svc_stop(struct svc *s)
{
	int st;

	if (s->pid <= 0)
		return -1;
	kill(s->pid, SIGTERM);
	st = svc_wait(s->pid, 15000);
	s->pid = 0;
	return st >= 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static inline void svc_cleanup(struct svc *s)
{
	char cmd[128];

	if (s->pid > 0)
		svc_stop(s);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", s->dir);
	if (system(cmd))
		return;
}

/* Reads a whole file into a malloc'd string. */
static inline char *svc_slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf;
	long n;

	if (!f)
		return strdup("");
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = calloc(1, (size_t)n + 1);
	if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n)
		buf[0] = '\0';
	fclose(f);
	return buf;
}

static inline int svc_file_has(const char *path, const char *what)
{
	char *t = svc_slurp(path);
	int has = t && strstr(t, what);

	free(t);
	return has;
}

/* Waits up to @ms for @what to appear in @path. */
static inline int svc_wait_file(const char *path, const char *what, long ms)
{
	long t0 = svc_ms();

	while (svc_ms() - t0 < ms) {
		if (svc_file_has(path, what))
			return 1;
		usleep(20000);
	}
	return 0;
}

static inline void svc_show(const char *path)
{
	char *t = svc_slurp(path);

	fprintf(stderr, "\n--- %s\n%s---\n", path, t ? t : "");
	free(t);
}

/*
 * Runs ptrackctl --socket CTL ARGS...; stdout into @out (malloc'd, may be
 * NULL). Returns the exit status or -1. A NULL argument ends the list.
 */
#define svc_ctl(s, out, ...) svc_ctl_v(s, out, (char *[]){ __VA_ARGS__, NULL })

static inline int svc_ctl_v(const struct svc *s, char **out, char **args)
{
	char bin[PATH_MAX], outp[160];
	char *argv[32] = { bin, "--socket", (char *)s->ctl };
	int n = 3, st;
	pid_t pid;

	snprintf(bin, sizeof(bin), "%s/ptrackctl", pt_test_bindir());
	snprintf(outp, sizeof(outp), "%s/ctl.out", s->dir);
	for (int i = 0; args[i] && n < 31; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	unlink(outp);
	pid = fork();
	if (pid == 0) {
		int fd = open(outp, O_WRONLY | O_CREAT | O_TRUNC, 0644);

		if (fd < 0 || dup2(fd, 1) < 0)
			_exit(97);
		execv(bin, argv);
		_exit(98);
	}
	st = svc_wait(pid, 90000);
	if (out)
		*out = svc_slurp(outp);
	return st >= 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Starts ptrack-vmm registered with @s; waits until ptrackd lists it. */
static inline pid_t svc_vmm(struct svc *s, const char *name,
			    const char *const *args)
{
	char bin[PATH_MAX], log[192], want[96];
	char *argv[32] = { bin, "--ptrackd", s->vmm, "--name", (char *)name };
	int n = 5;
	long t0 = svc_ms();
	pid_t pid;

	snprintf(bin, sizeof(bin), "%s/ptrack-vmm", pt_test_bindir());
	snprintf(log, sizeof(log), "%s/vmm-%s.log", s->dir, name);
	for (int i = 0; args && args[i] && n < 30; i++)
		argv[n++] = (char *)args[i];
	argv[n] = NULL;
	pid = svc_spawn(log, argv, NULL);
	/* JSON escapes a quote or backslash: look for what precedes it. */
	snprintf(want, sizeof(want), "\"name\":\"%.*s",
		 (int)strcspn(name, "\"\\"), name);
	while (svc_ms() - t0 < 15000) {
		char *o = NULL;

		if (svc_ctl(s, &o, "vms", "--json") == 0 && o &&
		    strstr(o, want)) {
			free(o);
			return pid;
		}
		free(o);
		if (waitpid(pid, NULL, WNOHANG) == pid)
			return -1;
		usleep(50000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	return -1;
}

/* A number after "@key": in JSON text, or -1e300 when absent. */
static inline double svc_json_num(const char *json, const char *key)
{
	char pat[96];
	const char *p;

	snprintf(pat, sizeof(pat), "\"%s\":", key);
	p = json ? strstr(json, pat) : NULL;
	return p ? strtod(p + strlen(pat), NULL) : -1e300;
}

static inline int svc_have_kvm(void)
{
	return access("/dev/kvm", R_OK | W_OK) == 0;
}

#endif
