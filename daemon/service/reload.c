// SPDX-License-Identifier: MIT
/*
 * SIGHUP (systemctl reload): the configuration is read again, file and
 * command line, with the same validation as at start. A rejected file
 * changes nothing. What the running service can take is applied at once:
 * log level and target, the sample period, the migration defaults (for
 * migrations started afterwards), the metrics listener and the libvirt
 * connection (restarted when their keys changed). The sockets, the state
 * directory, the control group and [tls] stay as they were until a restart; the
 * log says so for each one that differs.
 */
#include <signal.h>
#include <string.h>
#include <systemd/sd-daemon.h>

#include "service/log.h"
#include "service/service.h"

static void keep(const char *key, const char *old, const char *new)
{
	if (strcmp(old, new) != 0)
		pt_log(LOG_WARNING,
		       "reload: %s stays %s until ptrackd restarts (now %s)",
		       key, old, new);
}

static int metrics_changed(const struct pt_config *a, const struct pt_config *b)
{
	return a->metrics_enabled != b->metrics_enabled ||
	       strcmp(a->metrics_listen, b->metrics_listen) != 0;
}

static int libvirt_changed(const struct pt_config *a, const struct pt_config *b)
{
	return a->libvirt_enabled != b->libvirt_enabled ||
	       strcmp(a->libvirt_uri, b->libvirt_uri) != 0 ||
	       strcmp(a->libvirt_pid_dir, b->libvirt_pid_dir) != 0;
}

static void apply(struct pt_service *s, struct pt_config *n)
{
	struct pt_config old = s->cfg;

	keep("[daemon] control_socket", old.control_socket, n->control_socket);
	keep("[daemon] vmm_socket", old.vmm_socket, n->vmm_socket);
	keep("[daemon] state_dir", old.state_dir, n->state_dir);
	keep("[daemon] control_group", old.control_group, n->control_group);
	memcpy(n->control_socket, old.control_socket,
	       sizeof(n->control_socket));
	memcpy(n->vmm_socket, old.vmm_socket, sizeof(n->vmm_socket));
	memcpy(n->state_dir, old.state_dir, sizeof(n->state_dir));
	memcpy(n->control_group, old.control_group, sizeof(n->control_group));
	/* Running sessions hold the loaded credentials: [tls] stays too. */
	keep("[tls] dir", old.tls_dir, n->tls_dir);
	keep("[tls] psk_file", old.tls_psk_file, n->tls_psk_file);
	keep("[tls] psk_identity", old.tls_psk_identity, n->tls_psk_identity);
	keep("[tls] allowed", old.tls_allowed, n->tls_allowed);
	keep("[tls] insecure", old.tls_insecure ? "yes" : "no",
	     n->tls_insecure ? "yes" : "no");
	memcpy(n->tls_dir, old.tls_dir, sizeof(n->tls_dir));
	memcpy(n->tls_psk_file, old.tls_psk_file, sizeof(n->tls_psk_file));
	memcpy(n->tls_psk_identity, old.tls_psk_identity,
	       sizeof(n->tls_psk_identity));
	memcpy(n->tls_allowed, old.tls_allowed, sizeof(n->tls_allowed));
	n->tls_insecure = old.tls_insecure;
	s->cfg = *n;
	pt_log_setup((enum pt_log_target)n->log_target, n->log_prio);
	if (metrics_changed(&old, n)) {
		pt_metrics_stop(s);
		if (n->metrics_enabled && pt_metrics_start(s) < 0) {
			pt_log(LOG_ERR,
			       "reload: metrics on %s failed; back to %s",
			       n->metrics_listen,
			       old.metrics_enabled ? old.metrics_listen
						   : "off");
			memcpy(s->cfg.metrics_listen, old.metrics_listen,
			       sizeof(old.metrics_listen));
			s->cfg.metrics_enabled = old.metrics_enabled;
			if (old.metrics_enabled)
				pt_metrics_start(s);
		}
	}
	if (libvirt_changed(&old, n)) {
		pt_virt_stop(s);
		if (n->libvirt_enabled)
			pt_virt_start(s); /* not fatal: reconnects */
	}
}

int pt_service_on_hup(sd_event_source *es, const struct signalfd_siginfo *si,
		      void *arg)
{
	struct pt_service *s = arg;
	char err[PT_CONFIG_ERR_MAX] = "";
	struct pt_config n;

	(void)es;
	(void)si;
	if (!s->reload) {
		pt_log(LOG_WARNING, "SIGHUP: no configuration to reload");
		return 0;
	}
	sd_notify(0, "RELOADING=1\nSTATUS=Reloading the configuration");
	if (s->reload(&n, err, sizeof(err), s->reload_arg)) {
		pt_logx(LOG_ERR, NULL, 0, PT_MSGID_RELOAD,
			"reload refused, configuration unchanged: %s", err);
	} else {
		apply(s, &n);
		pt_logx(LOG_NOTICE, NULL, 0, PT_MSGID_RELOAD,
			"configuration reloaded");
	}
	sd_notify(0, "READY=1");
	pt_service_changed(s);
	return 0;
}
