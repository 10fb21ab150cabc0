/* SPDX-License-Identifier: MIT */
/*
 * Decoder and encoder errors. Functions return a negative errno value; when
 * they are given a struct pt_error they also fill in the protocol error code
 * (enum Ptrack__V1__ErrorCode, carried in Error frames) and a message that
 * says exactly what was wrong, for logs and for the peer.
 */
#ifndef PT_CODEC_ERROR_H
#define PT_CODEC_ERROR_H

#include <stdarg.h>

#include "proto/ptrack.pb-c.h"

#define PT_ERROR_TEXT_MAX 160

struct pt_error {
	int code; /* PTRACK__V1__ERROR_CODE__* */
	char text[PT_ERROR_TEXT_MAX];
};

/* Records code and message in @e (if not NULL); returns -@err. */
int pt_error_set(struct pt_error *e, int code, int err, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Short stable name of a protocol error code, e.g. "BAD_CRC". */
const char *pt_error_name(int code);

/* Maps a protocol error code to the errno that decoders return for it. */
int pt_error_errno(int code);

#endif
