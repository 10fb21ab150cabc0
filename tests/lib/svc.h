/* SPDX-License-Identifier: MIT */
/*
 * Helpers for the service tests (svc.c): a real ptrackd (`ptrackd serve`)
 * in a private directory, ptrackctl runs with captured output, ptrack-vmm
 * guests, log checks. Everything is a real process on real sockets, and
 * every wait is for an event (readiness, exit, a log line), bounded.
 */
#ifndef PT_TEST_SVC_H
#define PT_TEST_SVC_H

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

long svc_ms(void);
/* A fresh /tmp/ptrack-svc-XXXXXX with the socket and log paths in it. */
int svc_mkdir(struct svc *s);
int svc_can_connect(const char *path);
/* Waits until the unix socket @path appears (inotify) and accepts: 0,
 * -ETIMEDOUT, or -ECHILD when @pid (if > 0), its server, exited. */
int svc_wait_accepting(const char *path, pid_t pid, long ms);
/* Spawns @argv with stdout+stderr to @log and extra environment @env
 * (NULL-terminated "K=V" strings, may be NULL). */
pid_t svc_spawn(const char *log, char *const argv[], char *const env[]);
/*
 * Starts `ptrackd serve` on the directory's sockets with @extra flags
 * (NULL-terminated, may be NULL) and waits until it is ready: READY=1 on
 * a NOTIFY_SOCKET of ours, or, when @env brings its own NOTIFY_SOCKET,
 * until the control socket accepts.
 */
int svc_start_env(struct svc *s, const char *const *extra, char *const env[]);
int svc_start(struct svc *s, const char *const *extra);
/* Waits up to @ms for @pid; returns its wait status, or -1 after killing
 * it. */
int svc_wait(pid_t pid, long ms);
/* SIGTERM, then the exit status (-1 when it had to be killed). */
int svc_stop(struct svc *s);
void svc_cleanup(struct svc *s);
/* Reads a whole file into a malloc'd string ("" when it cannot). */
char *svc_slurp(const char *path);
int svc_file_has(const char *path, const char *what);
/* Waits up to @ms for @what to appear in @path (inotify): 1 if it did. */
int svc_wait_file(const char *path, const char *what, long ms);
void svc_show(const char *path);

/*
 * Runs ptrackctl --socket CTL ARGS...; stdout into @out (malloc'd, may be
 * NULL). Returns the exit status or -1. A NULL argument ends the list.
 */
#define svc_ctl(s, out, ...) svc_ctl_v(s, out, (char *[]){ __VA_ARGS__, NULL })
int svc_ctl_v(const struct svc *s, char **out, char **args);

/* Starts ptrack-vmm registered with @s; returns once it registered (its
 * log says so), or -1. */
pid_t svc_vmm(struct svc *s, const char *name, const char *const *args);
/* A number after "@key": in JSON text, or -1e300 when absent. */
double svc_json_num(const char *json, const char *key);
int svc_have_kvm(void);
/* `promtool check metrics` (Debian's prometheus package) on @text: 0 when
 * it finds nothing to complain about; its findings go to stderr. */
int svc_promtool(const char *text);

#endif
