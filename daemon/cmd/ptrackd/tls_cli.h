/* SPDX-License-Identifier: MIT */
/* The peer link's TLS options, shared by `ptrackd peer` and `source`. */
#ifndef PTRACKD_TLS_CLI_H
#define PTRACKD_TLS_CLI_H

#include <getopt.h>

#include "engine/tls.h"

struct tls_cli {
	struct pt_tls_opts o;
	int insecure;
};

/* getopt_long entries; their values are TLS_OPT_BASE and up. */
#define TLS_OPT_BASE 0x1000
#define TLS_CLI_OPTIONS                                                        \
	{ "tls-dir", required_argument, NULL, TLS_OPT_BASE },                  \
		{ "tls-psk-file", required_argument, NULL, TLS_OPT_BASE + 1 }, \
		{ "tls-psk-identity", required_argument, NULL,                 \
		  TLS_OPT_BASE + 2 },                                          \
		{ "tls-allowed", required_argument, NULL, TLS_OPT_BASE + 3 },  \
		{ "tls-hostname", required_argument, NULL, TLS_OPT_BASE + 4 }, \
	{                                                                      \
		"insecure", no_argument, NULL, TLS_OPT_BASE + 5                \
	}

#define TLS_CLI_USAGE                                                                    \
	"link security (default: TLS 1.3 with the x509 files of " PT_TLS_DIR_DEFAULT     \
	"):\n"                                                                           \
	"  --tls-dir DIR          ca-cert.pem, server-cert.pem/server-key.pem (peer),\n" \
	"                         client-cert.pem/client-key.pem (source)\n"             \
	"  --tls-allowed LIST     peer: client certificate DNs allowed (fnmatch\n"       \
	"                         patterns, ';'-separated)\n"                            \
	"  --tls-hostname NAME    source: the name the peer's certificate carries\n"     \
	"  --tls-psk-file FILE    pre-shared keys instead (psktool format)\n"            \
	"  --tls-psk-identity ID  source: which key of FILE (default: the first)\n"      \
	"  --insecure             plain TCP: anyone on the path reads and forges\n"

/* 1 when @c was one of the TLS options (stored in @t), else 0. */
int tls_cli_opt(struct tls_cli *t, int c, const char *arg);

/*
 * Loads the credentials (*@out NULL with --insecure, after a warning).
 * Returns 0, or -1 after saying why on stderr.
 */
int tls_cli_load(const struct tls_cli *t, int server, struct pt_tls **out);

#endif
