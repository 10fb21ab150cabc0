/* SPDX-License-Identifier: MIT */
/* Control messages of the VMM protocol (proto/vmm.proto) on a seqpacket
 * unix socket, with file descriptors. Shared by libptrack and ptrackd. */
#ifndef PT_LIBPTRACK_WIRE_H
#define PT_LIBPTRACK_WIRE_H

#include "proto/vmm.pb-c.h"

#define PTL_MSG_MAX (64u << 10)
#define PTL_FDS_MAX (3 + 64)

typedef Ptrack__Vmm__V1__VmmMsg ptl_msg;

/* Sends @m with @nfds descriptors attached. */
int ptl_send(int sock, const ptl_msg *m, const int *fds, int nfds);

/*
 * Receives one message. Descriptors that came with it are stored in @fds
 * (up to @maxfds, the rest closed) and counted in *@nfds; the caller owns
 * them. Returns 0, -ECONNRESET at end of stream, -EBADMSG for garbage.
 * Free *@m with ptl_msg_free().
 */
int ptl_recv(int sock, ptl_msg **m, int *fds, int maxfds, int *nfds);

void ptl_msg_free(ptl_msg *m);

/* Sends a Request or a Reply: the common cases. */
int ptl_send_request(int sock, uint64_t seq, int op);
int ptl_send_reply(int sock, uint64_t seq, int status, uint64_t records);

/* With a state blob's memfd attached (@fd < 0: none, @len is then 0). */
int ptl_send_request_state(int sock, uint64_t seq, int op, int fd,
			   uint64_t len);
int ptl_send_reply_state(int sock, uint64_t seq, int status, int fd,
			 uint64_t len);

/* OP_THROTTLE with its percentage. */
int ptl_send_request_throttle(int sock, uint64_t seq, unsigned int pct);

/* A sealed memfd holding @len bytes of @data, or a negative errno. */
int ptl_state_memfd(const void *data, size_t len);
/*
 * Reads the @len byte blob of the memfd @fd (from the other side, hence
 * untrusted: its size must be @len, at most @max) into a malloc'd buffer.
 */
int ptl_state_read(int fd, uint64_t len, uint64_t max, void **out);

#endif
