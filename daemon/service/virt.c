// SPDX-License-Identifier: MIT
/*
 * libvirt: its event loop interface (virEventRegisterImpl) is served by
 * our sd-event loop, so there is no second loop thread. We follow domain
 * lifecycle and job events, map domains to registered VMs (by the QEMU
 * PID in libvirt's pid file, then UUID, then name), start and stop
 * tracking on migration jobs, and reconnect when libvirt goes away.
 */
#include "service/service.h"

#include <errno.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "service/log.h"

struct pt_virt {
	struct pt_service *svc;
	virConnectPtr conn;
	int cb_life, cb_job, cb_iter;
	sd_event_source *retry;
	int closed; /* libvirt closed the connection: reconnect */
};

/* --- the event loop bridge -------------------------------------------- */

struct vhandle {
	int id;
	int fd;
	sd_event_source *es;
	virEventHandleCallback cb;
	virEventTimeoutCallback tcb;
	void *opaque;
	virFreeCallback ff;
	int interval; /* timeouts: ms, -1 off */
	struct vhandle *next;
};

static sd_event *bridge_ev;
static struct vhandle *handles;
static struct vhandle *dead; /* removed, free callback pending */
static int next_id = 1;

static uint32_t to_epoll(int ev)
{
	return (ev & VIR_EVENT_HANDLE_READABLE ? EPOLLIN : 0) |
	       (ev & VIR_EVENT_HANDLE_WRITABLE ? EPOLLOUT : 0);
}

static int from_epoll(uint32_t ev)
{
	return (ev & EPOLLIN ? VIR_EVENT_HANDLE_READABLE : 0) |
	       (ev & EPOLLOUT ? VIR_EVENT_HANDLE_WRITABLE : 0) |
	       (ev & EPOLLERR ? VIR_EVENT_HANDLE_ERROR : 0) |
	       (ev & EPOLLHUP ? VIR_EVENT_HANDLE_HANGUP : 0);
}

static struct vhandle *find(int id)
{
	for (struct vhandle *h = handles; h; h = h->next)
		if (h->id == id)
			return h;
	return NULL;
}

static int on_io(sd_event_source *es, int fd, uint32_t revents, void *arg)
{
	struct vhandle *h = arg;

	(void)es;
	h->cb(h->id, fd, from_epoll(revents), h->opaque);
	return 0;
}

static int add_handle(int fd, int events, virEventHandleCallback cb,
		      void *opaque, virFreeCallback ff)
{
	struct vhandle *h = calloc(1, sizeof(*h));

	if (!h)
		return -1;
	if (sd_event_add_io(bridge_ev, &h->es, fd, to_epoll(events), on_io, h) <
	    0) {
		free(h);
		return -1;
	}
	if (!events)
		sd_event_source_set_enabled(h->es, SD_EVENT_OFF);
	h->id = next_id++;
	h->fd = fd;
	h->cb = cb;
	h->opaque = opaque;
	h->ff = ff;
	h->next = handles;
	handles = h;
	return h->id;
}

static void update_handle(int id, int events)
{
	struct vhandle *h = find(id);

	if (!h)
		return;
	if (events) {
		sd_event_source_set_io_events(h->es, to_epoll(events));
		sd_event_source_set_enabled(h->es, SD_EVENT_ON);
	} else {
		sd_event_source_set_enabled(h->es, SD_EVENT_OFF);
	}
}

/* libvirt may hold its own locks when it removes a handle: the free
 * callback runs later, from the loop, as libvirt's own loop does. */
static void dead_free(struct vhandle *h)
{
	struct vhandle **p = &dead;

	while (*p && *p != h)
		p = &(*p)->next;
	if (*p)
		*p = h->next;
	sd_event_source_disable_unref(h->es);
	if (h->ff)
		h->ff(h->opaque);
	free(h);
}

static int on_deferred_free(sd_event_source *es, void *arg)
{
	(void)es;
	dead_free(arg);
	return 0;
}

/* Runs the free callbacks the loop did not get to (at shutdown). */
static void reap_dead(void)
{
	while (dead)
		dead_free(dead);
}

static int remove_any(int id)
{
	struct vhandle **p = &handles, *h;
	sd_event_source *d;

	while (*p && (*p)->id != id)
		p = &(*p)->next;
	h = *p;
	if (!h)
		return -1;
	*p = h->next;
	sd_event_source_disable_unref(h->es);
	h->es = NULL;
	h->next = dead;
	dead = h;
	if (sd_event_add_defer(bridge_ev, &d, on_deferred_free, h) >= 0)
		h->es = d;
	return 0;
}

static int remove_handle(int id)
{
	return remove_any(id);
}

static int on_timeout(sd_event_source *es, uint64_t usec, void *arg)
{
	struct vhandle *h = arg;

	(void)usec;
	/* Re-arm first: the callback may update or remove this timeout. */
	sd_event_source_set_time_relative(es, (uint64_t)h->interval * 1000);
	sd_event_source_set_enabled(es, SD_EVENT_ON);
	h->tcb(h->id, h->opaque);
	return 0;
}

static void arm(struct vhandle *h, int ms)
{
	h->interval = ms;
	if (ms < 0) {
		sd_event_source_set_enabled(h->es, SD_EVENT_OFF);
		return;
	}
	sd_event_source_set_time_relative(h->es, (uint64_t)ms * 1000);
	sd_event_source_set_enabled(h->es, SD_EVENT_ON);
}

static int add_timeout(int ms, virEventTimeoutCallback cb, void *opaque,
		       virFreeCallback ff)
{
	struct vhandle *h = calloc(1, sizeof(*h));

	if (!h)
		return -1;
	if (sd_event_add_time_relative(bridge_ev, &h->es, CLOCK_MONOTONIC, 0,
				       1000, on_timeout, h) < 0) {
		free(h);
		return -1;
	}
	h->id = next_id++;
	h->fd = -1;
	h->tcb = cb;
	h->opaque = opaque;
	h->ff = ff;
	h->next = handles;
	handles = h;
	arm(h, ms);
	return h->id;
}

static void update_timeout(int id, int ms)
{
	struct vhandle *h = find(id);

	if (h)
		arm(h, ms);
}

static int remove_timeout(int id)
{
	return remove_any(id);
}

/* Only once per process, as libvirt allows. */
int pt_virt_bridge(sd_event *ev)
{
	if (bridge_ev)
		return bridge_ev == ev ? 0 : -EBUSY;
	bridge_ev = sd_event_ref(ev);
	virEventRegisterImpl(add_handle, update_handle, remove_handle,
			     add_timeout, update_timeout, remove_timeout);
	return 0;
}

/* --- domains ---------------------------------------------------------- */

static pid_t domain_pid(struct pt_service *s, const char *name)
{
	char path[600];
	FILE *f;
	int pid = 0;

	snprintf(path, sizeof(path), "%s/%s.pid", s->cfg.libvirt_pid_dir, name);
	f = fopen(path, "re");
	if (!f)
		return 0;
	if (fscanf(f, "%d", &pid) != 1)
		pid = 0;
	fclose(f);
	return pid;
}

static struct pt_vm *vm_for(struct pt_service *s, virDomainPtr d)
{
	const char *name = virDomainGetName(d);
	char uuid[VIR_UUID_STRING_BUFLEN];
	pid_t pid = domain_pid(s, name);

	if (virDomainGetUUIDString(d, uuid))
		uuid[0] = '\0';
	for (struct pt_vm *v = s->vms; v; v = v->next)
		if (!v->gone && pid && v->pid == pid)
			return v;
	for (struct pt_vm *v = s->vms; v; v = v->next)
		if (!v->gone && !strcmp(v->uuid, uuid))
			return v;
	for (struct pt_vm *v = s->vms; v; v = v->next)
		if (!v->gone && !strcmp(v->src->name, name))
			return v;
	return NULL;
}

static void map_one(struct pt_service *s, virDomainPtr d)
{
	struct pt_vm *v = vm_for(s, d);

	if (v && strcmp(v->domain, virDomainGetName(d)) != 0) {
		snprintf(v->domain, sizeof(v->domain), "%s",
			 virDomainGetName(d));
		pt_logx(LOG_INFO, v->src->name, 0, PT_MSGID_LIBVIRT,
			"mapped to libvirt domain '%s'", v->domain);
	}
}

void pt_virt_map(struct pt_service *s)
{
	virDomainPtr *doms = NULL;
	int n;

	if (!s->virt || !s->virt->conn)
		return;
	n = virConnectListAllDomains(s->virt->conn, &doms,
				     VIR_CONNECT_LIST_DOMAINS_ACTIVE);
	for (int i = 0; i < n; i++) {
		map_one(s, doms[i]);
		virDomainFree(doms[i]);
	}
	free(doms);
}

/* Policy: a migration job of a mapped domain tracks it for its length. */
void pt_virt_job(struct pt_service *s, virDomainPtr d, int on)
{
	struct pt_vm *v;

	if (!s->cfg.track_migrations)
		return;
	map_one(s, d);
	v = vm_for(s, d);
	if (v && v->tracked != on) {
		pt_logx(LOG_INFO, v->src->name, 0, PT_MSGID_LIBVIRT,
			"libvirt migration job %s: tracking %s",
			on ? "running" : "ended", on ? "on" : "off");
		pt_vm_track(v, on);
	}
}

static int on_lifecycle(virConnectPtr c, virDomainPtr d, int event, int detail,
			void *arg)
{
	struct pt_service *s = arg;

	(void)c;
	pt_logx(LOG_DEBUG, virDomainGetName(d), 0, PT_MSGID_LIBVIRT,
		"domain event %d/%d", event, detail);
	if (event == VIR_DOMAIN_EVENT_STARTED ||
	    event == VIR_DOMAIN_EVENT_RESUMED)
		map_one(s, d);
	if (event == VIR_DOMAIN_EVENT_SUSPENDED &&
	    detail == VIR_DOMAIN_EVENT_SUSPENDED_MIGRATED)
		pt_virt_job(s, d, 1);
	if ((event == VIR_DOMAIN_EVENT_STOPPED &&
	     detail == VIR_DOMAIN_EVENT_STOPPED_MIGRATED) ||
	    (event == VIR_DOMAIN_EVENT_RESUMED &&
	     detail == VIR_DOMAIN_EVENT_RESUMED_MIGRATED))
		pt_virt_job(s, d, 0);
	if (event == VIR_DOMAIN_EVENT_STOPPED) {
		struct pt_vm *v = vm_for(s, d);

		if (v)
			v->domain[0] = '\0';
	}
	return 0;
}

static void on_iteration(virConnectPtr c, virDomainPtr d, int iteration,
			 void *arg)
{
	(void)c;
	(void)iteration;
	pt_virt_job(arg, d, 1);
}

static void on_job_completed(virConnectPtr c, virDomainPtr d,
			     virTypedParameterPtr params, int n, void *arg)
{
	(void)c;
	(void)params;
	(void)n;
	pt_virt_job(arg, d, 0);
}

/* --- connection ------------------------------------------------------- */

static int virt_connect(struct pt_virt *v);

static int on_retry(sd_event_source *es, uint64_t usec, void *arg)
{
	struct pt_virt *v = arg;

	(void)usec;
	if (v->closed && v->conn) {
		virConnectClose(v->conn);
		v->conn = NULL;
	}
	if (!v->conn && virt_connect(v) < 0) {
		sd_event_source_set_time_relative(es, v->svc->cfg.reconnect_ms *
							      1000ull);
		return sd_event_source_set_enabled(es, SD_EVENT_ONESHOT);
	}
	return 0;
}

static void schedule_retry(struct pt_virt *v)
{
	sd_event_source_set_time_relative(v->retry,
					  v->svc->cfg.reconnect_ms * 1000ull);
	sd_event_source_set_enabled(v->retry, SD_EVENT_ONESHOT);
}

static void on_close(virConnectPtr c, int reason, void *arg)
{
	struct pt_virt *v = arg;

	(void)c;
	pt_logx(LOG_WARNING, NULL, 0, PT_MSGID_LIBVIRT,
		"libvirt connection to %s closed (reason %d): reconnecting",
		v->svc->cfg.libvirt_uri, reason);
	v->closed = 1;
	schedule_retry(v);
}

static void quiet_errors(void *arg, virErrorPtr e)
{
	(void)arg;
	pt_log(LOG_DEBUG, "libvirt: %s", e->message ? e->message : "?");
}

static void register_events(struct pt_virt *v)
{
	v->cb_life = virConnectDomainEventRegisterAny(
		v->conn, NULL, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
		VIR_DOMAIN_EVENT_CALLBACK(on_lifecycle), v->svc, NULL);
	v->cb_iter = virConnectDomainEventRegisterAny(
		v->conn, NULL, VIR_DOMAIN_EVENT_ID_MIGRATION_ITERATION,
		VIR_DOMAIN_EVENT_CALLBACK(on_iteration), v->svc, NULL);
	v->cb_job = virConnectDomainEventRegisterAny(
		v->conn, NULL, VIR_DOMAIN_EVENT_ID_JOB_COMPLETED,
		VIR_DOMAIN_EVENT_CALLBACK(on_job_completed), v->svc, NULL);
	virConnectRegisterCloseCallback(v->conn, on_close, v, NULL);
}

static int virt_connect(struct pt_virt *v)
{
	virErrorPtr e;

	v->closed = 0;
	v->conn = virConnectOpen(v->svc->cfg.libvirt_uri);
	if (!v->conn) {
		e = virGetLastError();
		pt_logx(LOG_WARNING, NULL, 0, PT_MSGID_LIBVIRT,
			"libvirt %s: %s; retrying every %u ms",
			v->svc->cfg.libvirt_uri,
			e && e->message ? e->message : "cannot connect",
			v->svc->cfg.reconnect_ms);
		return -ECONNREFUSED;
	}
	/* Keepalive makes a dead libvirtd show up as a closed connection. */
	virConnectSetKeepAlive(v->conn, 5, 3);
	register_events(v);
	pt_logx(LOG_INFO, NULL, 0, PT_MSGID_LIBVIRT, "connected to libvirt %s",
		v->svc->cfg.libvirt_uri);
	pt_virt_map(v->svc);
	return 0;
}

int pt_virt_start(struct pt_service *s)
{
	struct pt_virt *v;
	int ret = pt_virt_bridge(s->ev);

	if (ret)
		return ret;
	v = calloc(1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	v->svc = s;
	v->cb_life = v->cb_job = v->cb_iter = -1;
	s->virt = v;
	virSetErrorFunc(NULL, quiet_errors);
	ret = sd_event_add_time_relative(s->ev, &v->retry, CLOCK_MONOTONIC, 0,
					 1000, on_retry, v);
	if (ret < 0)
		return ret;
	sd_event_source_set_enabled(v->retry, SD_EVENT_OFF);
	ret = virt_connect(v);
	if (ret)
		schedule_retry(v);
	return ret;
}

void pt_virt_stop(struct pt_service *s)
{
	struct pt_virt *v = s->virt;

	if (!v)
		return;
	if (v->conn) {
		virConnectUnregisterCloseCallback(v->conn, on_close);
		if (v->cb_life >= 0)
			virConnectDomainEventDeregisterAny(v->conn, v->cb_life);
		if (v->cb_iter >= 0)
			virConnectDomainEventDeregisterAny(v->conn, v->cb_iter);
		if (v->cb_job >= 0)
			virConnectDomainEventDeregisterAny(v->conn, v->cb_job);
		virConnectClose(v->conn);
	}
	sd_event_source_unref(v->retry);
	reap_dead();
	free(v);
	s->virt = NULL;
}

int pt_virt_connected(struct pt_service *s)
{
	return s->virt && s->virt->conn && !s->virt->closed &&
	       virConnectIsAlive(s->virt->conn) == 1;
}
