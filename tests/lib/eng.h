/* SPDX-License-Identifier: MIT */
/*
 * Helpers for the engine tests (eng.c): ports, temp dirs, `ptrackd peer`
 * processes, waits, comparing memory, a rogue peer. Compiled once into
 * libpttest.a.
 */
#ifndef PT_TEST_ENG_H
#define PT_TEST_ENG_H

#include <arpa/inet.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <pthread.h>

#include "codec/frame.h"
#include "codec/msg.h"
#include "engine/migrate.h"
#include "engine/tls.h"
#include "pt_test.h"

/* The source's side of the test credentials (pt_test_tls_dir), made once. */
const struct pt_tls *eu_tls_client(void);
/* A loopback port that was free a moment ago. */
int eu_free_port(void);
/* A fresh /tmp/ptrack-test-XXXXXX in @dir ("" on failure). */
void eu_tmpdir(char *dir, size_t len);
/* Removes a directory eu_tmpdir() made, and only such. */
void eu_rmdir(const char *dir);
/*
 * Starts `ptrackd peer` listening on 127.0.0.1:@port, storing into
 * @dir/dest.mem with its state in @dir/state. With @tmpfs_size, the
 * destination directory is a tmpfs of that size ("16m") mounted in a
 * private mount namespace of the peer only.
 */
pid_t eu_start_peer(const char *dir, int port, const char *tmpfs_size);
/* Starts a peer in @dir (see eu_start_peer) and connects to it, retrying
 * while it starts up. Returns the socket, or -1; *@peer is its pid. */
int eu_connect_new_peer(const char *dir, pid_t *peer);
/* Waits (at most 10 s) until the peer in @dir persisted a session. */
void eu_wait_session(const char *dir);
/* Exit status of @pid (killed: 128 + signal), waiting at most @ms. */
int eu_wait(pid_t pid, int ms);
/* 0 when @path holds exactly @len bytes equal to @mem; else the first
 * differing page + 1, or -1 when the file is unreadable or sized wrong. */
long eu_compare(const char *path, const uint8_t *mem, uint64_t len);

/* ---- a rogue peer: takes the Hello, then misbehaves --------------- */

struct rogue {
	int lfd, port;
	int mode; /* 0: garbage bytes, 1: Ack of a seq never sent */
	int got_error; /* protocol error code received, -1: none */
	pthread_t th;
};

int rogue_send_ack(int fd, uint64_t seq);
/* Reads frames until EOF; remembers the code of an Error frame. */
void rogue_read_error(struct rogue *g, int fd);
/* Thread body: accepts one source on g->lfd (waiting at most 30 s). */
void *rogue_peer(void *arg);

#endif
