/* SPDX-License-Identifier: MIT */
/*
 * The peer's privilege separation, as OpenNTPD's daemons do it: the
 * listening process (privileged: state directory, destination memory,
 * the incoming VMM) never parses a byte a source sent. Each connection is
 * served by a forked child that drops to an unprivileged user, cannot
 * open files or sockets (seccomp), and does the TLS handshake, frame
 * decoding and the session state machine. It reports to the parent over
 * a SOCK_SEQPACKET socketpair in fixed-size messages, and gets the
 * destination memory (SCM_RIGHTS) only once it reported a verified Hello
 * or Resume that the parent matched to the session.
 */
#ifndef PT_ENGINE_PEER_PS_H
#define PT_ENGINE_PEER_PS_H

#include <stdint.h>
#include <sys/types.h>

#include "codec/layout.h"
#include "engine/migrate.h"

#define PS_TEXT 200
#define PS_SECRET_MIN 16
#define PS_SECRET_MAX 32
#define PS_NAME 128
/* State chunks forwarded to the parent at most this big (one message). */
#define PS_CHUNK (60u << 10)
#define PS_MSG_MAX (PS_CHUNK + 4096)
/* The process name of a connection child (tests look for it). */
#define PS_CHILD_NAME "ptrack-conn"

enum ps_type {
	/* child -> parent */
	PS_HELLO = 1, /* struct ps_session: a verified Hello */
	PS_RESUME, /* struct ps_session: a Resume */
	PS_ACK, /* struct ps_stats: persist last_seq before the Ack */
	PS_STATE, /* struct ps_state + bytes: a VMM state chunk */
	PS_COMPLETE, /* struct ps_stats: checksums matched */
	PS_SWITCH, /* nothing: Complete acked, resume the incoming VM */
	PS_END, /* struct ps_end: the connection is over */
	/* parent -> child */
	PS_OK, /* struct ps_reply, code 0 */
	PS_REFUSE, /* struct ps_reply: tell the source and end */
	PS_BIND, /* struct ps_bind + the memory fds */
};

struct ps_hdr {
	uint32_t type;
	uint32_t len; /* of the body after this header */
};

struct ps_session {
	uint64_t session_id;
	uint32_t secret_len; /* 0: none (the session cannot be resumed) */
	uint8_t secret[PS_SECRET_MAX];
	uint8_t uuid[16];
	uint32_t name_len; /* > PS_NAME - 1: too long to match by name */
	char name[PS_NAME];
	struct pt_layout lay; /* PS_HELLO */
};

struct ps_stats {
	uint64_t last_seq;
	/* Since the previous report: */
	uint64_t frames, pages, zero_pages, duplicates;
	uint64_t rounds, stale_pages; /* absolute; rounds 0: none seen */
};

struct ps_state {
	uint64_t offset, total;
	uint32_t crc, len;
};

struct ps_reply {
	int32_t code; /* protocol error code */
	int32_t err; /* positive errno */
	char text[PS_TEXT];
};

struct ps_bind {
	uint64_t session_id, last_seq, mem_size;
	struct pt_layout lay;
	uint32_t nfds; /* 1: one destination fd; else one per region */
	uint32_t incoming, resumed, fresh, crc_left;
	uint64_t fd_off[PT_LAYOUT_MAX_REGIONS];
};

struct ps_end {
	int32_t r; /* 1: done; else a negative errno */
	int32_t code;
	uint32_t conn_ok, hello_tried, bad_crc;
	struct ps_stats st;
	char err[256];
};

/* One message, with up to @nfds fds; 0 or a negative errno. */
int ps_send(int fd, uint32_t type, const void *body, size_t len, const int *fds,
	    unsigned int nfds);
/* One message into @body (at most @max bytes), fds into @fds (closed
 * beyond @maxfds); returns the body length, or a negative errno (-EPIPE
 * when the other side is gone). */
ssize_t ps_recv(int fd, uint32_t *type, void *body, size_t max, int *fds,
		unsigned int maxfds, unsigned int *nfds);

/*
 * The child side of one connection (@tcp accepted, @ctl the socketpair
 * end): handshake, session, report. Runs in a forked child (privileges
 * already dropped) or, with o->privsep_thread, in a thread.
 */
void ps_conn_main(const struct pt_peer_opts *o, int tcp, int ctl);

/*
 * In a forked child: keeps only @keep fds and stdio, unmaps every shared
 * mapping inherited from the daemon (guest memory), becomes @uid/@gid
 * when root, forbids new privileges and installs the seccomp filter.
 */
int ps_drop(const int *keep, unsigned int nkeep, uid_t uid, gid_t gid);

#endif
