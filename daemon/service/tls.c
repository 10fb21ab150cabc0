// SPDX-License-Identifier: MIT
/* The service's peer-link credentials ([tls], engine/tls.h). */
#include "service/service.h"

#include <errno.h>
#include <stdio.h>

#include "engine/tls.h"
#include "service/log.h"

int pt_service_tls(struct pt_service *s, int server, const struct pt_tls **out,
		   char *err, size_t len)
{
	const struct pt_config *c = &s->cfg;
	struct pt_tls_opts o = {
		.mode = c->tls_psk_file[0] ? PT_TLS_PSK : PT_TLS_X509,
		.dir = c->tls_dir,
		.psk_file = c->tls_psk_file[0] ? c->tls_psk_file : NULL,
		.psk_identity =
			c->tls_psk_identity[0] ? c->tls_psk_identity : NULL,
		.allowed = c->tls_allowed[0] ? c->tls_allowed : NULL,
	};

	*out = NULL;
	if (c->tls_insecure) {
		pt_log(LOG_WARNING,
		       "[tls] insecure: this %s runs in plain TCP, unauthenticated and unencrypted",
		       server ? "destination" : "migration");
		return 0;
	}
	/* Loaded when first needed: a service that never migrates needs no
	 * certificates, and a fixed key file is picked up by the next job. */
	if (!s->tls[server]) {
		s->tls[server] = pt_tls_new(&o, server, err, len);
		if (!s->tls[server])
			return -EACCES;
	}
	*out = s->tls[server];
	return 0;
}
