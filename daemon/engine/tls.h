/* SPDX-License-Identifier: MIT */
/*
 * The peer link's security: TLS 1.3 through GnuTLS, with x509 certificates
 * in libvirt/QEMU's layout or a pre-shared key.
 *
 * x509: one directory (default PT_TLS_DIR_DEFAULT) holds ca-cert.pem, and
 * server-cert.pem + server-key.pem for the destination (the TLS server),
 * client-cert.pem + client-key.pem for the source (the TLS client). Both
 * sides verify the other against the CA; the source also checks that the
 * destination's certificate names the host it dialled (or tls_hostname),
 * and the destination may accept only clients whose certificate DN matches
 * one of tls_allowed (fnmatch patterns, like libvirt's tls_allowed_dn_list
 * and QEMU's tls-authz).
 *
 * PSK: a psktool(1) key file ("identity:hex-key" lines); the destination
 * accepts any identity of the file, the source uses psk_identity (default:
 * the first line's).
 *
 * The engine sees a plain stream socket either way (pt_link_secure): with
 * kernel TLS offered by GnuTLS and the kernel, the TCP socket itself; else
 * one end of a socketpair that a relay pair of threads encrypts onto the
 * TCP socket. The handshake has one overall deadline, and it happens
 * before the engine reads a byte: an unauthenticated party never reaches
 * the protocol.
 */
#ifndef PT_ENGINE_TLS_H
#define PT_ENGINE_TLS_H

#include <stddef.h>

#define PT_TLS_DIR_DEFAULT "/etc/pki/ptrack"

enum pt_tls_mode {
	PT_TLS_X509 = 0,
	PT_TLS_PSK,
};

struct pt_tls_opts {
	enum pt_tls_mode mode;
	const char *dir; /* x509 directory, NULL: PT_TLS_DIR_DEFAULT */
	const char *psk_file; /* PSK mode */
	const char *psk_identity; /* PSK client, NULL: the file's first */
	/* Destination: ';'-separated fnmatch patterns over the client
	 * certificate's DN ("CN=src1.example,O=ops"); NULL: any client the
	 * CA signed. */
	const char *allowed;
	const char *hostname; /* source: name to verify, NULL: --to's host */
};

struct pt_tls;

/*
 * Loads the credentials of one side (@server: the destination). Returns a
 * context or NULL with the reason in @err.
 */
struct pt_tls *pt_tls_new(const struct pt_tls_opts *o, int server, char *err,
			  size_t len);
void pt_tls_free(struct pt_tls *t);

/* What carried the last secured connection, for logs and the bench:
 * "TLS1.3 AES-256-GCM, kTLS" or "..., relay". */
void pt_tls_last_info(char *buf, size_t len);

#endif
