// SPDX-License-Identifier: MIT
/*
 * The control socket: callers authorised by SO_PEERCRED (root or the
 * control group), one framed request at a time, replies on the same
 * connection. A connection is blocking with a short receive timeout, so a
 * client that stalls mid-frame costs the loop at most that long.
 */
#include "service/service.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "service/log.h"

#define CONN_TIMEOUT_MS 2000

static int in_group(gid_t gid, uid_t uid, pid_t pid)
{
	char path[64], line[4096];
	FILE *f;
	int found = 0;

	/* The caller's supplementary groups, as the kernel has them. */
	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return 0;
	while (!found && fgets(line, sizeof(line), f)) {
		char *p, *end;

		if (strncmp(line, "Groups:", 7) != 0)
			continue;
		for (p = line + 7;; p = end) {
			unsigned long g = strtoul(p, &end, 10);

			if (end == p)
				break;
			if ((gid_t)g == gid)
				found = 1;
		}
	}
	fclose(f);
	(void)uid;
	return found;
}

int pt_peer_allowed(struct pt_service *s, int fd, pid_t *pid, uid_t *uid)
{
	struct ucred cr;
	socklen_t len = sizeof(cr);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len))
		return -errno;
	*pid = cr.pid;
	*uid = cr.uid;
	if (cr.uid == 0)
		return 0;
	if (s->have_gid &&
	    (cr.gid == s->ctl_gid || in_group(s->ctl_gid, cr.uid, cr.pid)))
		return 0;
	return -EACCES;
}

/* --- requests --------------------------------------------------------- */

void pt_req_keep(struct pt_req *dst, const struct pt_req *q)
{
	dst->conn = q->conn;
	dst->id = q->id;
	dst->next = NULL;
	if (!dst->conn)
		return;
	dst->next = dst->conn->reqs;
	dst->conn->reqs = dst;
}

void pt_req_drop(struct pt_req *q)
{
	struct pt_req **p;

	if (!q->conn)
		return;
	for (p = &q->conn->reqs; *p && *p != q; p = &(*p)->next)
		;
	if (*p)
		*p = q->next;
	q->conn = NULL;
	q->next = NULL;
}

int pt_req_reply(struct pt_req *q, PtCtlReply *r)
{
	struct pt_conn *c = q->conn;
	int ret;

	if (!c)
		return 0;
	r->id = q->id;
	ret = pt_ctl_send(c->fd, ++c->seq, &r->base);
	if (ret)
		pt_log(LOG_DEBUG, "control reply to pid %d: %s", (int)c->pid,
		       strerror(-ret));
	if (r->final)
		pt_req_drop(q);
	return ret;
}

int pt_req_error(struct pt_req *q, int err, const char *fmt, ...)
{
	PtCtlReply r = PTRACK__CONTROL__V1__REPLY__INIT;
	char text[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	r.status = err;
	r.error = text;
	r.final = 1;
	return pt_req_reply(q, &r);
}

/* The client went away: what it still waits for answers nobody. */
static void conn_orphan(struct pt_conn *c)
{
	while (c->reqs)
		pt_req_drop(c->reqs);
}

/* --- handlers ---------------------------------------------------------- */

static void refuse(struct pt_service *s, int fd, pid_t pid, uid_t uid)
{
	PtCtlReply r = PTRACK__CONTROL__V1__REPLY__INIT;
	char text[256];

	s->refused_total++;
	snprintf(text, sizeof(text),
		 "permission denied: uid %u is neither root nor in group '%s'",
		 (unsigned int)uid, s->cfg.control_group);
	pt_logx(LOG_WARNING, NULL, 0, PT_MSGID_REFUSED,
		"control connection refused: pid %d uid %u: not root nor in group '%s'",
		(int)pid, (unsigned int)uid, s->cfg.control_group);
	r.status = -EACCES;
	r.error = text;
	r.final = 1;
	pt_ctl_send(fd, 1, &r.base);
}

static void fill_status(struct pt_service *s,
			Ptrack__Control__V1__StatusReply *st)
{
	st->version = (char *)PT_VERSION;
	st->uptime_ms = (pt_now_ns() - s->start_ns) / 1000000;
	for (struct pt_vm *v = s->vms; v; v = v->next) {
		st->vms++;
		st->tracked += v->tracked;
	}
	st->migrations = s->running_migrations;
	st->libvirt_uri = s->cfg.libvirt_enabled ? s->cfg.libvirt_uri : "";
	st->libvirt_connected = pt_virt_connected(s);
	st->metrics_listen = s->metrics ? (char *)pt_metrics_address(s) : "";
	st->control_socket = s->cfg.control_socket;
	st->vmm_socket = s->cfg.vmm_socket;
}

/* Listeners and incoming VMs, as strings the reply points to (@buf). */
static int fill_incoming(struct pt_service *s,
			 Ptrack__Control__V1__StatusReply *st, char **buf)
{
	size_t nl = 0, ni = 0, len = 1;
	char *b;

	for (struct pt_peer_job *p = s->peers; p; p = p->next)
		if (!p->done) {
			nl++;
			len += sizeof(p->listen) + 4 +
			       (p->vm ? strlen(p->vm->src->name) : 0);
		}
	for (struct pt_vm *v = s->vms; v; v = v->next)
		if (!v->gone && v->src->incoming) {
			ni++;
			len += strlen(v->src->name) + 1;
		}
	st->listeners = calloc(nl + 1, sizeof(char *));
	st->incoming_vms = calloc(ni + 1, sizeof(char *));
	*buf = b = malloc(len);
	if (!st->listeners || !st->incoming_vms || !b)
		return -ENOMEM;
	for (struct pt_peer_job *p = s->peers; p; p = p->next)
		if (!p->done) {
			st->listeners[st->n_listeners++] = b;
			b += sprintf(b, "%s%s%s", p->listen, p->vm ? " " : "",
				     p->vm ? p->vm->src->name : "") +
			     1;
		}
	for (struct pt_vm *v = s->vms; v; v = v->next)
		if (!v->gone && v->src->incoming) {
			st->incoming_vms[st->n_incoming_vms++] = b;
			b += sprintf(b, "%s", v->src->name) + 1;
		}
	return 0;
}

static int do_status(struct pt_service *s, struct pt_req *q)
{
	PtCtlReply r = PTRACK__CONTROL__V1__REPLY__INIT;
	Ptrack__Control__V1__StatusReply st =
		PTRACK__CONTROL__V1__STATUS_REPLY__INIT;
	char *buf = NULL;
	int ret;

	fill_status(s, &st);
	if (fill_incoming(s, &st, &buf)) {
		ret = pt_req_error(q, -ENOMEM, "out of memory");
		goto out_free;
	}
	r.final = 1;
	r.body_case = PTRACK__CONTROL__V1__REPLY__BODY_STATUS_REPLY;
	r.status_reply = &st;
	ret = pt_req_reply(q, &r);
out_free:
	free(st.listeners);
	free(st.incoming_vms);
	free(buf);
	return ret;
}

static int do_vms(struct pt_service *s, struct pt_req *q)
{
	PtCtlReply r = PTRACK__CONTROL__V1__REPLY__INIT;
	Ptrack__Control__V1__VmsReply vr = PTRACK__CONTROL__V1__VMS_REPLY__INIT;
	Ptrack__Control__V1__VmInfo *infos, **ptrs;
	size_t n = 0, i = 0;
	int ret;

	for (struct pt_vm *v = s->vms; v; v = v->next)
		n++;
	infos = calloc(n + 1, sizeof(*infos));
	ptrs = calloc(n + 1, sizeof(Ptrack__Control__V1__VmInfo *));
	if (!infos || !ptrs) {
		ret = -ENOMEM;
		goto out_free;
	}
	for (struct pt_vm *v = s->vms; v; v = v->next, i++) {
		Ptrack__Control__V1__VmInfo *in = &infos[i];

		ptrack__control__v1__vm_info__init(in);
		in->name = v->src->name;
		in->uuid = v->uuid;
		in->source = (char *)pt_vm_kind(v);
		in->vcpus = v->src->vcpus;
		in->memory_bytes = v->meter.npages * v->meter.page_size;
		in->tracked = v->tracked;
		in->dirty_rate_bytes_per_second = v->rate;
		in->state = (char *)pt_vm_state(v);
		in->pid = v->pid;
		in->domain = v->domain;
		ptrs[i] = in;
	}
	vr.n_vms = n;
	vr.vms = ptrs;
	r.final = 1;
	r.body_case = PTRACK__CONTROL__V1__REPLY__BODY_VMS;
	r.vms = &vr;
	ret = pt_req_reply(q, &r);
out_free:
	free(infos);
	free(ptrs);
	return ret;
}

static int do_track(struct pt_service *s, struct pt_req *q,
		    const Ptrack__Control__V1__TrackRequest *t)
{
	PtCtlReply r = PTRACK__CONTROL__V1__REPLY__INIT;
	struct pt_vm *vm = pt_vm_find(s, t->vm);
	int ret;

	if (!vm)
		return pt_req_error(q, -ENOENT, "no VM '%s'", t->vm);
	ret = pt_vm_track(vm, t->start);
	if (ret)
		return pt_req_error(q, ret, "track %s '%s': %s",
				    t->start ? "start" : "stop", t->vm,
				    strerror(-ret));
	r.final = 1;
	return pt_req_reply(q, &r);
}

static int do_metrics(struct pt_service *s, struct pt_req *q)
{
	PtCtlReply r = PTRACK__CONTROL__V1__REPLY__INIT;
	Ptrack__Control__V1__MetricsReply mr =
		PTRACK__CONTROL__V1__METRICS_REPLY__INIT;
	char *text = pt_metrics_render(s);
	int ret;

	if (!text)
		return pt_req_error(q, -ENOMEM, "out of memory");
	mr.text = text;
	r.final = 1;
	r.body_case = PTRACK__CONTROL__V1__REPLY__BODY_METRICS;
	r.metrics = &mr;
	ret = pt_req_reply(q, &r);
	free(text);
	return ret;
}

/* Handlers answer @q now, or keep it (pt_req_keep) to answer later. */
static int dispatch(struct pt_conn *c, const PtCtlRequest *m)
{
	struct pt_service *s = c->svc;
	struct pt_req q = { .conn = c, .id = m->id };

	switch (m->body_case) {
	case PTRACK__CONTROL__V1__REQUEST__BODY_STATUS:
		return do_status(s, &q);
	case PTRACK__CONTROL__V1__REQUEST__BODY_VMS:
		return do_vms(s, &q);
	case PTRACK__CONTROL__V1__REQUEST__BODY_TRACK:
		return do_track(s, &q, m->track);
	case PTRACK__CONTROL__V1__REQUEST__BODY_METRICS:
		return do_metrics(s, &q);
	case PTRACK__CONTROL__V1__REQUEST__BODY_DIRTYRATE:
		return pt_rate_start(s, &q, m->dirtyrate);
	case PTRACK__CONTROL__V1__REQUEST__BODY_MIGRATE:
		return pt_migration_start(s, &q, m->migrate);
	case PTRACK__CONTROL__V1__REQUEST__BODY_PEER_LISTEN:
		return pt_peer_start(s, &q, m->peer_listen);
	default:
		return pt_req_error(&q, -EOPNOTSUPP, "unknown request");
	}
}

static int on_conn(sd_event_source *es, int fd, uint32_t revents, void *arg)
{
	struct pt_conn *c = arg;
	struct pt_error e = { 0 };
	struct pt_frame f;
	PtCtlRequest *q;
	int ret;

	(void)es;
	(void)fd;
	(void)revents;
	ret = pt_reader_next(&c->rd, &f, &e);
	if (ret <= 0)
		goto out_bad;
	ret = pt_ctl_decode_request(&f, &q, &e);
	if (ret)
		goto out_bad;
	ret = dispatch(c, q);
	pt_ctl_request_free(q);
	if (ret == -EPIPE || ret == -ECONNRESET)
		pt_conn_close(c);
	return 0;
out_bad:
	if (ret < 0) {
		struct pt_req bad = { .conn = c };

		pt_log(LOG_WARNING, "control client pid %d: bad request: %s",
		       (int)c->pid, e.text[0] ? e.text : strerror(-ret));
		pt_req_error(&bad, ret, "bad request: %s",
			     e.text[0] ? e.text : strerror(-ret));
	}
	pt_conn_close(c);
	return 0;
}

void pt_conn_close(struct pt_conn *c)
{
	struct pt_conn **p = &c->svc->conns;

	while (*p && *p != c)
		p = &(*p)->next;
	if (*p)
		*p = c->next;
	conn_orphan(c);
	sd_event_source_unref(c->es);
	pt_reader_release(&c->rd);
	close(c->fd);
	free(c);
}

static int conn_new(struct pt_service *s, int fd, pid_t pid, uid_t uid)
{
	struct timeval tv = { .tv_sec = CONN_TIMEOUT_MS / 1000 };
	struct pt_conn *c = calloc(1, sizeof(*c));
	int ret;

	if (!c)
		return -ENOMEM;
	c->svc = s;
	c->fd = fd;
	c->pid = pid;
	c->uid = uid;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	ret = pt_reader_init(&c->rd, fd, PT_CTL_FRAME_MAX);
	if (ret)
		goto out_free;
	ret = sd_event_add_io(s->ev, &c->es, fd, EPOLLIN, on_conn, c);
	if (ret < 0)
		goto out_reader;
	c->next = s->conns;
	s->conns = c;
	return 0;
out_reader:
	pt_reader_release(&c->rd);
out_free:
	free(c);
	return ret;
}

int pt_control_accept(sd_event_source *es, int lfd, uint32_t revents, void *arg)
{
	struct pt_service *s = arg;
	pid_t pid = 0;
	uid_t uid = 0;
	int fd, ret;

	(void)es;
	(void)revents;
	fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (fd < 0)
		return 0;
	ret = pt_peer_allowed(s, fd, &pid, &uid);
	if (ret == -EACCES)
		refuse(s, fd, pid, uid);
	if (!ret)
		ret = conn_new(s, fd, pid, uid);
	if (ret)
		close(fd);
	return 0;
}
