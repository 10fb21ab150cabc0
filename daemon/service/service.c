// SPDX-License-Identifier: MIT
/*
 * The service's loop: sockets (from systemd or our own), signals, the
 * sample timer, the watchdog, readiness and status for the manager.
 */
#include "service/service.h"

#include "engine/tls.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "service/log.h"
#include "source/vmm_push.h"

static int mkparent(const char *path)
{
	char dir[PT_SUN_PATH_MAX];
	char *slash;

	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return 0;
	*slash = '\0';
	if (mkdir(dir, 0755) && errno != EEXIST)
		return -errno;
	return 0;
}

/* Group @gid and 0660 where the group exists, else @fallback. */
static void set_access(const char *path, gid_t gid, int have_gid,
		       mode_t fallback)
{
	if (have_gid && chown(path, 0, gid) == 0)
		chmod(path, 0660);
	else
		chmod(path, fallback);
}

static int listen_unix(const char *path, gid_t gid, int have_gid)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd, ret;

	ret = mkparent(path);
	if (ret)
		return ret;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	unlink(path);
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) || listen(fd, 64) < 0)
		goto out_close;
	/* Access is decided by SO_PEERCRED; the mode only keeps strangers
	 * from connecting at all where the group exists. */
	set_access(path, gid, have_gid, 0666);
	return fd;
out_close:
	ret = -errno;
	close(fd);
	return ret;
}

/* Takes the control socket from systemd when activated: a fd named
 * "control" (FileDescriptorName=) or the only unix stream socket. */
static int activated_fd(void)
{
	char **names = NULL;
	int n = sd_listen_fds_with_names(1, &names);
	int fd = -1;

	for (int i = 0; i < n; i++) {
		int cand = SD_LISTEN_FDS_START + i;

		if (sd_is_socket_unix(cand, SOCK_STREAM, 1, NULL, 0) <= 0)
			continue;
		if (fd < 0 || (names && !strcmp(names[i], "control")))
			fd = cand;
	}
	for (int i = 0; names && i < n; i++)
		free(names[i]);
	free(names);
	if (fd >= 0)
		fcntl(fd, F_SETFD, FD_CLOEXEC);
	return fd;
}

static int on_signal(sd_event_source *es, const struct signalfd_siginfo *si,
		     void *arg)
{
	struct pt_service *s = arg;

	(void)es;
	pt_log(LOG_NOTICE, "signal %u: stopping", si->ssi_signo);
	sd_notify(0, "STOPPING=1\nSTATUS=Stopping");
	s->stopping = 1;
	if (s->running_migrations) {
		/* Migrations end cancelled with their guest resumed; the
		 * last one to finish exits the loop. */
		pt_migration_cancel_all(s);
		return 0;
	}
	return sd_event_exit(s->ev, 0);
}

static void status_publish(struct pt_service *s)
{
	unsigned int vms = 0, tracked = 0;

	s->status_dirty = 0;
	for (struct pt_vm *v = s->vms; v; v = v->next) {
		vms++;
		tracked += v->tracked;
	}
	sd_notifyf(0, "STATUS=%u VMs, %u tracked, %u migrating%s", vms, tracked,
		   s->running_migrations, s->stopping ? ", stopping" : "");
}

/* Runs after every event the loop handled: one STATUS= per change, however
 * many places changed what it shows. */
static int on_post(sd_event_source *es, void *arg)
{
	struct pt_service *s = arg;

	(void)es;
	if (s->status_dirty)
		status_publish(s);
	return 0;
}

static int setup_sockets(struct pt_service *s)
{
	int ret;

	s->ctl_fd = activated_fd();
	s->ctl_activated = s->ctl_fd >= 0;
	if (s->ctl_fd < 0)
		s->ctl_fd = listen_unix(s->cfg.control_socket, s->ctl_gid,
					s->have_gid);
	if (s->ctl_fd < 0) {
		pt_log(LOG_ERR, "control socket %s: %s", s->cfg.control_socket,
		       strerror(-s->ctl_fd));
		return s->ctl_fd;
	}
	ret = sd_event_add_io(s->ev, &s->ctl_es, s->ctl_fd, EPOLLIN,
			      pt_control_accept, s);
	if (ret < 0)
		return ret;
	ret = mkparent(s->cfg.vmm_socket);
	if (ret)
		return ret;
	s->vmm_fd = pt_vmm_listen(s->cfg.vmm_socket);
	if (s->vmm_fd < 0) {
		pt_log(LOG_ERR, "VMM socket %s: %s", s->cfg.vmm_socket,
		       strerror(-s->vmm_fd));
		return s->vmm_fd;
	}
	set_access(s->cfg.vmm_socket, s->ctl_gid, s->have_gid, 0660);
	return sd_event_add_io(s->ev, &s->vmm_es, s->vmm_fd, EPOLLIN,
			       pt_vmm_on_accept, s);
}

static int setup_loop(struct pt_service *s)
{
	sigset_t ss;
	int ret;

	ret = sd_event_new(&s->ev);
	if (ret < 0)
		return ret;
	sigemptyset(&ss);
	sigaddset(&ss, SIGTERM);
	sigaddset(&ss, SIGINT);
	sigaddset(&ss, SIGHUP);
	sigprocmask(SIG_BLOCK, &ss, NULL);
	signal(SIGPIPE, SIG_IGN);
	ret = sd_event_add_signal(s->ev, &s->term_es, SIGTERM, on_signal, s);
	if (ret >= 0)
		ret = sd_event_add_signal(s->ev, &s->int_es, SIGINT, on_signal,
					  s);
	if (ret >= 0)
		ret = sd_event_add_signal(s->ev, &s->hup_es, SIGHUP,
					  pt_service_on_hup, s);
	if (ret < 0)
		return ret;
	/* Sends WATCHDOG=1 at half of WATCHDOG_USEC while the loop runs, so
	 * a stuck loop is what the manager sees. */
	ret = sd_event_set_watchdog(s->ev, 1);
	if (ret < 0)
		return ret;
	ret = sd_event_add_post(s->ev, &s->status_es, on_post, s);
	if (ret < 0)
		return ret;
	return sd_event_add_time_relative(s->ev, &s->sample_es, CLOCK_MONOTONIC,
					  s->cfg.sample_ms * 1000ull, 1000,
					  pt_sample_tick, s);
}

static void resolve_group(struct pt_service *s)
{
	struct group *g = getgrnam(s->cfg.control_group);

	if (g) {
		s->ctl_gid = g->gr_gid;
		s->have_gid = 1;
	} else {
		pt_log(LOG_WARNING,
		       "group '%s' does not exist: only root may use the control socket",
		       s->cfg.control_group);
	}
}

int pt_service_init(struct pt_service *s, const struct pt_config *cfg)
{
	int ret;

	memset(s, 0, sizeof(*s));
	s->cfg = *cfg;
	s->ctl_fd = s->vmm_fd = -1;
	s->start_ns = pt_now_ns();
	s->next_mig_id = 1;
	pt_log_setup((enum pt_log_target)cfg->log_target, cfg->log_prio);
	resolve_group(s);
	ret = setup_loop(s);
	if (ret < 0)
		return ret;
	ret = setup_sockets(s);
	if (ret < 0)
		return ret;
	if (cfg->metrics_enabled) {
		ret = pt_metrics_start(s);
		if (ret < 0)
			return ret;
	}
	if (cfg->libvirt_enabled)
		pt_virt_start(s); /* not fatal: reconnects */
	return 0;
}

int pt_service_run(struct pt_service *s)
{
	int ret;

	pt_logx(LOG_INFO, NULL, 0, PT_MSGID_START,
		"ptrackd %s ready: control %s%s, VMM %s, metrics %s",
		PT_VERSION, s->cfg.control_socket,
		s->ctl_activated ? " (socket-activated)" : "",
		s->cfg.vmm_socket, s->metrics ? pt_metrics_address(s) : "off");
	sd_notify(0, "READY=1");
	status_publish(s);
	ret = sd_event_loop(s->ev);
	pt_log(LOG_INFO, "stopped");
	return ret < 0 ? ret : 0;
}

void pt_service_release(struct pt_service *s)
{
	pt_virt_rates_free(s);
	pt_virt_stop(s);
	pt_virt_jobs_free(s);
	pt_metrics_ended_free(s);
	pt_metrics_stop(s);
	while (s->conns)
		pt_conn_close(s->conns);
	while (s->vms) {
		struct pt_vm *v = s->vms;

		s->vms = v->next;
		pt_vm_free(v);
	}
	while (s->peers) {
		struct pt_peer_job *p = s->peers;

		s->peers = p->next;
		pt_peer_free(p);
	}
	sd_event_source_unref(s->ctl_es);
	sd_event_source_unref(s->vmm_es);
	sd_event_source_unref(s->sample_es);
	sd_event_source_unref(s->term_es);
	sd_event_source_unref(s->int_es);
	sd_event_source_unref(s->hup_es);
	sd_event_source_unref(s->exit_timer);
	sd_event_source_unref(s->status_es);
	if (s->ctl_fd >= 0) {
		close(s->ctl_fd);
		if (!s->ctl_activated)
			unlink(s->cfg.control_socket);
	}
	if (s->vmm_fd >= 0) {
		close(s->vmm_fd);
		unlink(s->cfg.vmm_socket);
	}
	sd_event_unref(s->ev);
	/* After the jobs: their relays flush into these. */
	pt_tls_free(s->tls[0]);
	pt_tls_free(s->tls[1]);
}
