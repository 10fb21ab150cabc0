// SPDX-License-Identifier: MIT
#include "codec/error.h"

#include <errno.h>
#include <stdio.h>

static const char *const names[] = {
	[PTRACK__V1__ERROR_CODE__ERROR_NONE] = "NONE",
	[PTRACK__V1__ERROR_CODE__ERROR_TRUNCATED] = "TRUNCATED",
	[PTRACK__V1__ERROR_CODE__ERROR_OVERSIZE] = "OVERSIZE",
	[PTRACK__V1__ERROR_CODE__ERROR_BAD_MAGIC] = "BAD_MAGIC",
	[PTRACK__V1__ERROR_CODE__ERROR_BAD_VERSION] = "BAD_VERSION",
	[PTRACK__V1__ERROR_CODE__ERROR_BAD_CRC] = "BAD_CRC",
	[PTRACK__V1__ERROR_CODE__ERROR_BAD_HEADER] = "BAD_HEADER",
	[PTRACK__V1__ERROR_CODE__ERROR_UNKNOWN_TYPE] = "UNKNOWN_TYPE",
	[PTRACK__V1__ERROR_CODE__ERROR_BAD_MESSAGE] = "BAD_MESSAGE",
	[PTRACK__V1__ERROR_CODE__ERROR_BAD_VARINT] = "BAD_VARINT",
	[PTRACK__V1__ERROR_CODE__ERROR_BAD_REGION] = "BAD_REGION",
	[PTRACK__V1__ERROR_CODE__ERROR_PAGE_RANGE] = "PAGE_RANGE",
	[PTRACK__V1__ERROR_CODE__ERROR_BAD_PAYLOAD] = "BAD_PAYLOAD",
	[PTRACK__V1__ERROR_CODE__ERROR_TRAILING] = "TRAILING",
	[PTRACK__V1__ERROR_CODE__ERROR_BAD_ENCODING] = "BAD_ENCODING",
	[PTRACK__V1__ERROR_CODE__ERROR_COUNT_MISMATCH] = "COUNT_MISMATCH",
	[PTRACK__V1__ERROR_CODE__ERROR_ORDER] = "ORDER",
	[PTRACK__V1__ERROR_CODE__ERROR_SEQUENCE] = "SEQUENCE",
	[PTRACK__V1__ERROR_CODE__ERROR_SESSION] = "SESSION",
	[PTRACK__V1__ERROR_CODE__ERROR_CHECKSUM] = "CHECKSUM",
	[PTRACK__V1__ERROR_CODE__ERROR_NO_SPACE] = "NO_SPACE",
	[PTRACK__V1__ERROR_CODE__ERROR_INTERNAL] = "INTERNAL",
};

const char *pt_error_name(int code)
{
	if (code < 0 || (size_t)code >= sizeof(names) / sizeof(names[0]) ||
	    !names[code])
		return "UNKNOWN";
	return names[code];
}

int pt_error_errno(int code)
{
	switch (code) {
	case PTRACK__V1__ERROR_CODE__ERROR_NONE:
		return 0;
	case PTRACK__V1__ERROR_CODE__ERROR_TRUNCATED:
		return EPIPE;
	case PTRACK__V1__ERROR_CODE__ERROR_OVERSIZE:
		return EMSGSIZE;
	case PTRACK__V1__ERROR_CODE__ERROR_BAD_VERSION:
		return EPROTONOSUPPORT;
	case PTRACK__V1__ERROR_CODE__ERROR_NO_SPACE:
		return ENOSPC;
	case PTRACK__V1__ERROR_CODE__ERROR_SESSION:
	case PTRACK__V1__ERROR_CODE__ERROR_SEQUENCE:
		return EPROTO;
	case PTRACK__V1__ERROR_CODE__ERROR_INTERNAL:
		return EIO;
	default:
		return EBADMSG;
	}
}

int pt_error_set(struct pt_error *e, int code, int err, const char *fmt, ...)
{
	va_list ap;

	if (!e)
		return -err;
	e->code = code;
	va_start(ap, fmt);
	vsnprintf(e->text, sizeof(e->text), fmt, ap);
	va_end(ap);
	return -err;
}
