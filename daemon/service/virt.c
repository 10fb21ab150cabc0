// SPDX-License-Identifier: MIT
/*
 * libvirt (its event loop runs on ours, see virt_bridge.c): we follow domain
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
	sd_event_source *jobs; /* polls running migration jobs */
	int closed; /* libvirt closed the connection: reconnect */
};

/* --- domains ---------------------------------------------------------- */

/*
 * libvirt's QEMU driver writes <pid_dir>/<domain>.pid. An embedded driver
 * (qemu:///embed?root=DIR) keeps it under DIR/run/qemu, which is used
 * unless [libvirt] pid_dir was changed from its default.
 */
static void pid_dir(const struct pt_service *s, char *out, size_t len)
{
	const char *uri = s->cfg.libvirt_uri, *root, *end;

	root = strstr(uri, "root=");
	if (!strncmp(uri, "qemu:///embed", 13) && root &&
	    !strcmp(s->cfg.libvirt_pid_dir, PT_LIBVIRT_PID_DIR)) {
		root += 5;
		end = strchr(root, '&');
		snprintf(out, len, "%.*s/run/qemu",
			 (int)(end ? (size_t)(end - root) : strlen(root)),
			 root);
		return;
	}
	snprintf(out, len, "%s", s->cfg.libvirt_pid_dir);
}

static pid_t domain_pid(struct pt_service *s, const char *name)
{
	char dir[300], path[600];
	FILE *f;
	int pid = 0;

	pid_dir(s, dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/%s.pid", dir, name);
	f = fopen(path, "re");
	if (!f)
		return 0;
	if (fscanf(f, "%d", &pid) != 1)
		pid = 0;
	fclose(f);
	return pid;
}

/* --- the domains we follow -------------------------------------------- */

static struct pt_dom **dom_slot(struct pt_service *s, const char *uuid)
{
	struct pt_dom **p = &s->doms;

	while (*p && strcmp((*p)->uuid, uuid) != 0)
		p = &(*p)->next;
	return p;
}

/* A domain runs: remember its name, UUID and QEMU PID. */
static void dom_seen(struct pt_service *s, virDomainPtr d)
{
	char uuid[VIR_UUID_STRING_BUFLEN];
	struct pt_dom **p, *dm;
	const char *name = virDomainGetName(d);
	pid_t pid = domain_pid(s, name);

	if (virDomainGetUUIDString(d, uuid))
		return;
	p = dom_slot(s, uuid);
	dm = *p;
	if (dm && dm->pid == pid && !strcmp(dm->name, name))
		return;
	if (!dm) {
		dm = calloc(1, sizeof(*dm));
		if (!dm)
			return;
		snprintf(dm->uuid, sizeof(dm->uuid), "%s", uuid);
		dm->next = s->doms;
		s->doms = dm;
	}
	snprintf(dm->name, sizeof(dm->name), "%s", name);
	dm->pid = pid;
	pt_logx(LOG_INFO, name, 0, PT_MSGID_LIBVIRT_DOMAIN,
		"libvirt domain running: uuid %s, QEMU pid %d", uuid, (int)pid);
}

static void dom_forget(struct pt_service *s, virDomainPtr d, int detail)
{
	char uuid[VIR_UUID_STRING_BUFLEN];
	struct pt_dom **p, *dm;

	if (virDomainGetUUIDString(d, uuid))
		return;
	p = dom_slot(s, uuid);
	dm = *p;
	if (!dm)
		return;
	*p = dm->next;
	pt_logx(LOG_INFO, dm->name, 0, PT_MSGID_LIBVIRT_DOMAIN,
		"libvirt domain stopped (reason %d): forgotten", detail);
	free(dm);
}

static void dom_clear(struct pt_service *s)
{
	while (s->doms) {
		struct pt_dom *dm = s->doms;

		s->doms = dm->next;
		free(dm);
	}
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
		pt_logx(LOG_INFO, v->src->name, 0, PT_MSGID_LIBVIRT_DOMAIN,
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
		dom_seen(s, doms[i]);
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
		pt_logx(LOG_INFO, v->src->name, 0, PT_MSGID_LIBVIRT_JOB,
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
	pt_logx(LOG_DEBUG, virDomainGetName(d), 0, PT_MSGID_LIBVIRT_DOMAIN,
		"domain event %d/%d", event, detail);
	if (event == VIR_DOMAIN_EVENT_STARTED ||
	    event == VIR_DOMAIN_EVENT_RESUMED) {
		dom_seen(s, d);
		map_one(s, d);
	}
	if (event == VIR_DOMAIN_EVENT_SUSPENDED &&
	    detail == VIR_DOMAIN_EVENT_SUSPENDED_MIGRATED)
		pt_virt_job_poll(s, d);
	if (event == VIR_DOMAIN_EVENT_STARTED &&
	    detail == VIR_DOMAIN_EVENT_STARTED_MIGRATED)
		pt_virt_job_incoming(s, d, 1);
	if (event == VIR_DOMAIN_EVENT_RESUMED &&
	    detail == VIR_DOMAIN_EVENT_RESUMED_MIGRATED)
		pt_virt_job_incoming(s, d, 0);
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
		char uuid[VIR_UUID_STRING_BUFLEN];

		if (!virDomainGetUUIDString(d, uuid))
			pt_virt_job_gone(
				s, uuid,
				detail == VIR_DOMAIN_EVENT_STOPPED_MIGRATED);

		if (v)
			v->domain[0] = '\0';
		dom_forget(s, d, detail);
	}
	return 0;
}

static void on_iteration(virConnectPtr c, virDomainPtr d, int iteration,
			 void *arg)
{
	(void)c;
	pt_logx(LOG_DEBUG, virDomainGetName(d), 0, PT_MSGID_LIBVIRT_JOB,
		"libvirt migration iteration %d", iteration);
	pt_virt_job_poll(arg, d);
	pt_virt_job(arg, d, 1);
}

static const char *job_operation(int op)
{
	static const char *const names[] = {
		[VIR_DOMAIN_JOB_OPERATION_UNKNOWN] = "unknown",
		[VIR_DOMAIN_JOB_OPERATION_START] = "start",
		[VIR_DOMAIN_JOB_OPERATION_SAVE] = "save",
		[VIR_DOMAIN_JOB_OPERATION_RESTORE] = "restore",
		[VIR_DOMAIN_JOB_OPERATION_MIGRATION_IN] = "incoming migration",
		[VIR_DOMAIN_JOB_OPERATION_MIGRATION_OUT] = "outgoing migration",
		[VIR_DOMAIN_JOB_OPERATION_SNAPSHOT] = "snapshot",
		[VIR_DOMAIN_JOB_OPERATION_SNAPSHOT_REVERT] = "snapshot revert",
		[VIR_DOMAIN_JOB_OPERATION_DUMP] = "dump",
	};

	if (op < 0 || op >= (int)(sizeof(names) / sizeof(names[0])) ||
	    !names[op])
		return "other";
	return names[op];
}

/* libvirt's own figures for the job, logged as it reports them. */
static void on_job_completed(virConnectPtr c, virDomainPtr d,
			     virTypedParameterPtr params, int n, void *arg)
{
	unsigned long long ms = 0, down = 0, bytes = 0;
	int op = VIR_DOMAIN_JOB_OPERATION_UNKNOWN;

	(void)c;
	virTypedParamsGetInt(params, n, VIR_DOMAIN_JOB_OPERATION, &op);
	virTypedParamsGetULLong(params, n, VIR_DOMAIN_JOB_TIME_ELAPSED, &ms);
	virTypedParamsGetULLong(params, n, VIR_DOMAIN_JOB_DOWNTIME, &down);
	virTypedParamsGetULLong(params, n, VIR_DOMAIN_JOB_DATA_PROCESSED,
				&bytes);
	pt_logx(LOG_INFO, virDomainGetName(d), 0, PT_MSGID_LIBVIRT_JOB,
		"libvirt job completed: %s, %llu ms, downtime %llu ms, %llu bytes",
		job_operation(op), ms, down, bytes);
	pt_virt_job_completed(arg, d, params, n);
	pt_virt_job(arg, d, 0);
}

/* --- migration jobs --------------------------------------------------- */

static int on_jobs_timer(sd_event_source *es, uint64_t usec, void *arg)
{
	struct pt_virt *v = arg;
	struct pt_service *s = v->svc;

	(void)es;
	(void)usec;
	for (struct pt_vjob *j = s->vjobs; j && v->conn; j = j->next) {
		virDomainPtr d;

		if (!j->active)
			continue;
		d = virDomainLookupByUUIDString(v->conn, j->uuid);
		if (d) {
			pt_virt_job_poll(s, d);
			virDomainFree(d);
		} else if (++j->none_polls > 10) {
			/* Gone without the events that say how (they may
			 * arrive after the domain left). */
			pt_virt_job_gone(s, j->uuid, 0);
		}
	}
	if (pt_virt_jobs_active(s))
		pt_virt_jobs_arm(s);
	return 0;
}

void pt_virt_jobs_arm(struct pt_service *s)
{
	struct pt_virt *v = s->virt;

	if (!v || !v->jobs)
		return;
	sd_event_source_set_time_relative(v->jobs, s->cfg.sample_ms * 1000ull);
	sd_event_source_set_enabled(v->jobs, SD_EVENT_ONESHOT);
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
	/* Domains that stopped while we were away are forgotten. */
	dom_clear(v->svc);
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
	ret = sd_event_add_time_relative(s->ev, &v->jobs, CLOCK_MONOTONIC, 0,
					 1000, on_jobs_timer, v);
	if (ret < 0)
		return ret;
	sd_event_source_set_enabled(v->jobs, SD_EVENT_OFF);
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
	sd_event_source_unref(v->jobs);
	pt_virt_bridge_reap();
	dom_clear(s);
	free(v);
	s->virt = NULL;
}

virConnectPtr pt_virt_conn(struct pt_service *s)
{
	return pt_virt_connected(s) ? s->virt->conn : NULL;
}

int pt_virt_connected(struct pt_service *s)
{
	return s->virt && s->virt->conn && !s->virt->closed &&
	       virConnectIsAlive(s->virt->conn) == 1;
}
