// SPDX-License-Identifier: MIT
/*
 * Prometheus text exposition (format 0.0.4) over libmicrohttpd, driven by
 * the service loop: MHD runs without threads on its own epoll fd, which
 * the loop watches, so rendering reads service state without locks (the
 * meter's counters have their own).
 */
#include "service/service.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "service/log.h"

struct pt_metrics {
	struct MHD_Daemon *d;
	sd_event_source *io, *timer;
	char address[160];
};

struct buf {
	char *p;
	size_t len, cap;
	int oom;
};

static void put(struct buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void put(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
		if (n >= 0 && (size_t)n < b->cap - b->len) {
			b->len += (size_t)n;
			return;
		}
		char *np = realloc(b->p, b->cap * 2 + (size_t)n);

		if (!np) {
			b->oom = 1;
			return;
		}
		b->p = np;
		b->cap = b->cap * 2 + (size_t)n;
	}
}

static void help(struct buf *b, const char *name, const char *type,
		 const char *text)
{
	put(b, "# HELP %s %s\n# TYPE %s %s\n", name, text, name, type);
}

/* Label values: names and UUIDs from VMMs are escaped as the format asks. */
static const char *esc(const char *s, char *out, size_t len)
{
	size_t j = 0;

	for (; *s && j + 3 < len; s++) {
		if (*s == '\\' || *s == '"') {
			out[j++] = '\\';
			out[j++] = *s;
		} else if (*s == '\n') {
			out[j++] = '\\';
			out[j++] = 'n';
		} else {
			out[j++] = *s;
		}
	}
	out[j] = '\0';
	return out;
}

static void labels(const struct pt_vm *v, char *out, size_t len)
{
	char n[300], d[600], u[100];

	/* vm: the libvirt domain's name when mapped, as before; domain:
	 * the libvirt name, as libvirt exporters label it ("" when none). */
	snprintf(out, len, "vm=\"%s\",uuid=\"%s\",domain=\"%s\"",
		 esc(v->domain[0] ? v->domain : v->src->name, n, sizeof(n)),
		 esc(v->uuid, u, sizeof(u)), esc(v->domain, d, sizeof(d)));
}

/* The running libvirt domains followed, with the VM mapped to each. */
static void domains(struct buf *b, struct pt_service *s)
{
	char n[600], u[100], m[600];

	help(b, "ptrack_libvirt_domain_info", "gauge",
	     "A running libvirt domain: name, UUID, QEMU pid, and the VM registered through libptrack mapped to it (vm, empty when none).");
	for (struct pt_dom *d = s->doms; d; d = d->next) {
		const char *vm = "";

		for (struct pt_vm *v = s->vms; v; v = v->next)
			if (!v->gone && !strcmp(v->domain, d->name))
				vm = v->src->name;
		put(b,
		    "ptrack_libvirt_domain_info{domain=\"%s\",uuid=\"%s\",pid=\"%d\",vm=\"%s\"} 1\n",
		    esc(d->name, n, sizeof(n)), esc(d->uuid, u, sizeof(u)),
		    (int)d->pid, esc(vm, m, sizeof(m)));
	}
}

static void vm_rates(struct buf *b, struct pt_service *s)
{
	char l[1400];

	help(b, "ptrack_vm_dirty_rate_bytes_per_second", "gauge",
	     "Distinct guest bytes written per second over the last sample window, from harvested dirty sets.");
	for (struct pt_vm *v = s->vms; v; v = v->next) {
		labels(v, l, sizeof(l));
		put(b, "ptrack_vm_dirty_rate_bytes_per_second{%s} %.17g\n", l,
		    v->rate);
	}
	help(b, "ptrack_vcpu_dirty_rate_bytes_per_second", "gauge",
	     "Distinct guest bytes written per second by one vCPU (dirty ring VMs).");
	for (struct pt_vm *v = s->vms; v; v = v->next) {
		if (!v->meter.per_vcpu)
			continue;
		labels(v, l, sizeof(l));
		for (unsigned int i = 0; i < v->meter.vcpus; i++)
			put(b,
			    "ptrack_vcpu_dirty_rate_bytes_per_second{%s,vcpu=\"%u\"} %.17g\n",
			    l, i, v->vcpu_rate[i]);
	}
}

static void vm_counters(struct buf *b, struct pt_service *s)
{
	char l[1400];

	/* Not the gauge integrated: a page dirtied again before the next
	 * harvest counts again here, but once per sample window there. */
	help(b, "ptrack_vm_dirty_bytes_total", "counter",
	     "Bytes of the dirty pages reported by all harvests; a page reported by two harvests counts twice, so its rate() is at least ptrack_vm_dirty_rate_bytes_per_second, which counts distinct pages per sample window.");
	for (struct pt_vm *v = s->vms; v; v = v->next) {
		labels(v, l, sizeof(l));
		pthread_mutex_lock(&v->meter.lock);
		put(b, "ptrack_vm_dirty_bytes_total{%s} %llu\n", l,
		    (unsigned long long)v->meter.pages_total *
			    v->meter.page_size);
		pthread_mutex_unlock(&v->meter.lock);
	}
	help(b, "ptrack_vm_memory_bytes", "gauge", "Guest memory tracked.");
	for (struct pt_vm *v = s->vms; v; v = v->next) {
		labels(v, l, sizeof(l));
		put(b, "ptrack_vm_memory_bytes{%s} %llu\n", l,
		    (unsigned long long)v->meter.npages * v->meter.page_size);
	}
	help(b, "ptrack_vm_tracked", "gauge", "1 while the VM is tracked.");
	for (struct pt_vm *v = s->vms; v; v = v->next) {
		labels(v, l, sizeof(l));
		put(b, "ptrack_vm_tracked{%s} %d\n", l, v->tracked);
	}
}

static void vm_hist(struct buf *b, struct pt_service *s)
{
	char l[1400];

	help(b, "ptrack_vm_harvest_duration_seconds", "histogram",
	     "Time to harvest a VM's dirty log.");
	for (struct pt_vm *v = s->vms; v; v = v->next) {
		struct pt_meter *m = &v->meter;

		labels(v, l, sizeof(l));
		pthread_mutex_lock(&m->lock);
		for (int i = 0; i < PT_HIST_BUCKETS; i++)
			put(b,
			    "ptrack_vm_harvest_duration_seconds_bucket{%s,le=\"%g\"} %llu\n",
			    l, pt_hist_bounds[i],
			    (unsigned long long)m->hist[i]);
		put(b,
		    "ptrack_vm_harvest_duration_seconds_bucket{%s,le=\"+Inf\"} %llu\n",
		    l, (unsigned long long)m->harvests);
		put(b, "ptrack_vm_harvest_duration_seconds_sum{%s} %.9f\n", l,
		    m->hist_sum);
		put(b, "ptrack_vm_harvest_duration_seconds_count{%s} %llu\n", l,
		    (unsigned long long)m->harvests);
		pthread_mutex_unlock(&m->lock);
	}
}

/* Incoming sessions (peer jobs of this service): what the peer knows,
 * labelled by the address they listen on. */
static void incoming_metric(struct buf *b, struct pt_service *s,
			    const char *name)
{
	char l[600];

	for (struct pt_peer_job *p = s->peers; p; p = p->next) {
		double v = NAN;

		if (!strcmp(name, "ptrack_migration_start_timestamp_seconds"))
			v = p->start_time;
		else if (p->done &&
			 !strcmp(name,
				 "ptrack_migration_end_timestamp_seconds"))
			v = p->end_time;
		else if (p->done && !p->ret &&
			 !strcmp(name, "ptrack_migration_data_total_bytes"))
			v = (double)p->res.mem_size;
		if (isnan(v))
			continue;
		put(b,
		    "%s{listen=\"%s\",engine=\"ptrack\",direction=\"incoming\"} %.17g\n",
		    name, esc(p->listen, l, sizeof(l)), v);
	}
}

double pt_unix_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/*
 * Migrations, after KubeVirt's kubevirt_vmi_migration_* metrics: one
 * series per VM for its current or last migration (no migration id: a
 * label per migration would make new series every time), with engine and
 * direction labels, and _total counters by result. Figures are read under
 * the migration's lock. NAN: not known (yet), and the line is left out.
 */
static double mig_total(const struct pt_migration *m)
{
	return (double)m->vm->meter.npages * m->vm->meter.page_size;
}

static double mig_processed(const struct pt_migration *m)
{
	return (double)(m->done ? m->res.bytes : m->prog.transferred);
}

static double mig_remaining(const struct pt_migration *m)
{
	return m->done && !m->ret ? 0 : (double)m->prog.remaining;
}

static double mig_xfer_rate(const struct pt_migration *m)
{
	return m->prog.mbps * 1e6; /* the engine's mbps is 10^6 bytes/s */
}

static double mig_dirty_rate(const struct pt_migration *m)
{
	return m->rate;
}

static double mig_rounds(const struct pt_migration *m)
{
	return (double)(m->done ? m->res.rounds : m->prog.round);
}

static double mig_exp_downtime(const struct pt_migration *m)
{
	return m->prog.expected_downtime_ms / 1000.0;
}

static double mig_downtime(const struct pt_migration *m)
{
	return m->done && !m->ret ? m->res.downtime_ms / 1000.0 : NAN;
}

static double mig_start(const struct pt_migration *m)
{
	return m->start_time;
}

static double mig_end(const struct pt_migration *m)
{
	return m->end_time > 0 ? m->end_time : NAN;
}

/* In enum pt_mig_figure's order. */
static const struct mig_gauge {
	const char *name, *help;
	double (*value)(const struct pt_migration *m);
} mig_gauges[PT_MF_N] = {
	{ "ptrack_migration_data_total_bytes",
	  "Guest memory the current or last migration moves.", mig_total },
	{ "ptrack_migration_data_processed_bytes",
	  "Bytes sent on the wire so far (retransmissions included).",
	  mig_processed },
	{ "ptrack_migration_data_remaining_bytes", "Dirty bytes still to send.",
	  mig_remaining },
	{ "ptrack_migration_transfer_rate_bytes_per_second",
	  "Measured stream bandwidth.", mig_xfer_rate },
	{ "ptrack_migration_dirty_rate_bytes_per_second",
	  "Distinct guest bytes dirtied per second between the last two harvests.",
	  mig_dirty_rate },
	{ "ptrack_migration_rounds", "Pre-copy rounds so far.", mig_rounds },
	{ "ptrack_migration_expected_downtime_seconds",
	  "Remaining dirty bytes over the measured bandwidth.",
	  mig_exp_downtime },
	{ "ptrack_migration_downtime_seconds",
	  "Downtime of the last completed migration: vCPUs paused to the peer's Ack.",
	  mig_downtime },
	{ "ptrack_migration_start_timestamp_seconds",
	  "When the current or last migration started (Unix time).",
	  mig_start },
	{ "ptrack_migration_end_timestamp_seconds",
	  "When the last migration ended (Unix time).", mig_end },
};

#define MIG_LABELS "engine=\"ptrack\",direction=\"outgoing\""

/* Ended migrations kept after their VM left (a completed one stops it). */
#define PT_ENDED_MAX 64

void pt_metrics_keep(struct pt_service *s, struct pt_migration *m)
{
	struct pt_vjob *j, **pp;
	unsigned int n = 0;

	for (pp = &s->ended; *pp; pp = &(*pp)->next)
		if (!strcmp((*pp)->uuid, m->vm->uuid) || ++n >= PT_ENDED_MAX) {
			j = *pp;
			*pp = j->next;
			free(j);
			break;
		}
	j = calloc(1, sizeof(*j));
	if (!j)
		return;
	snprintf(j->domain, sizeof(j->domain), "%s",
		 m->vm->domain[0] ? m->vm->domain : m->vm->src->name);
	snprintf(j->uuid, sizeof(j->uuid), "%s", m->vm->uuid);
	/* domain label: only a libvirt name. */
	j->no_domain = !m->vm->domain[0];
	j->state = m->state;
	pthread_mutex_lock(&m->lock);
	for (enum pt_mig_figure f = 0; f < PT_MF_N; f++)
		j->fig[f] = mig_gauges[f].value(m);
	pthread_mutex_unlock(&m->lock);
	j->next = s->ended;
	s->ended = j;
}

void pt_metrics_ended_free(struct pt_service *s)
{
	while (s->ended) {
		struct pt_vjob *j = s->ended;

		s->ended = j->next;
		free(j);
	}
}

/* A kept migration whose VM is still here with a migration shows live. */
static int ended_shadowed(struct pt_service *s, const struct pt_vjob *j)
{
	for (struct pt_vm *v = s->vms; v; v = v->next)
		if (v->mig && !strcmp(v->uuid, j->uuid))
			return 1;
	return 0;
}

static void ended_labels(const struct pt_vjob *j, char *out, size_t len)
{
	char n[600];

	esc(j->domain, n, sizeof(n));
	snprintf(out, len, "vm=\"%s\",uuid=\"%s\",domain=\"%s\"", n, j->uuid,
		 j->no_domain ? "" : n);
}

/* libvirt's jobs: every domain's current or last migration. */
static void vjob_metric(struct buf *b, struct pt_service *s,
			enum pt_mig_figure f)
{
	char d[600];

	if (!s->cfg.libvirt_enabled)
		return;
	for (struct pt_vjob *j = s->vjobs; j; j = j->next) {
		if (isnan(j->fig[f]))
			continue;
		put(b,
		    "%s{vm=\"%s\",uuid=\"%s\",domain=\"%s\",engine=\"libvirt\",direction=\"%s\"} %.17g\n",
		    mig_gauges[f].name, esc(j->domain, d, sizeof(d)), j->uuid,
		    d, j->incoming ? "incoming" : "outgoing", j->fig[f]);
	}
}

static void mig_gauge(struct buf *b, struct pt_service *s, enum pt_mig_figure f)
{
	const struct mig_gauge *g = &mig_gauges[f];
	char l[1400];

	help(b, g->name, "gauge", g->help);
	for (struct pt_vm *v = s->vms; v; v = v->next) {
		struct pt_migration *m = v->mig;
		double val;

		if (!m)
			continue;
		labels(v, l, sizeof(l));
		pthread_mutex_lock(&m->lock);
		val = g->value(m);
		pthread_mutex_unlock(&m->lock);
		if (!isnan(val))
			put(b, "%s{%s," MIG_LABELS "} %.17g\n", g->name, l,
			    val);
	}
	for (struct pt_vjob *j = s->ended; j; j = j->next) {
		if (isnan(j->fig[f]) || ended_shadowed(s, j))
			continue;
		ended_labels(j, l, sizeof(l));
		put(b, "%s{%s," MIG_LABELS "} %.17g\n", g->name, l, j->fig[f]);
	}
	vjob_metric(b, s, f);
	incoming_metric(b, s, g->name);
}

static void migrations(struct buf *b, struct pt_service *s)
{
	char l[1400];

	for (enum pt_mig_figure f = 0; f < PT_MF_N; f++)
		mig_gauge(b, s, f);
	help(b, "ptrack_migration_state", "gauge",
	     "1 for the state of the VM's current or last migration.");
	for (struct pt_vm *v = s->vms; v; v = v->next) {
		if (!v->mig)
			continue;
		labels(v, l, sizeof(l));
		for (enum pt_mig_state st = 0; st < PT_MIG_NSTATES; st++)
			put(b,
			    "ptrack_migration_state{%s," MIG_LABELS
			    ",state=\"%s\"} %d\n",
			    l, pt_mig_state_name(st), v->mig->state == st);
	}
	for (struct pt_vjob *j = s->ended; j; j = j->next) {
		if (ended_shadowed(s, j))
			continue;
		ended_labels(j, l, sizeof(l));
		for (enum pt_mig_state st = 0; st < PT_MIG_NSTATES; st++)
			put(b,
			    "ptrack_migration_state{%s," MIG_LABELS
			    ",state=\"%s\"} %d\n",
			    l, pt_mig_state_name(st), j->state == st);
	}
	for (struct pt_vjob *j = s->vjobs; s->cfg.libvirt_enabled && j;
	     j = j->next) {
		char d[600];

		esc(j->domain, d, sizeof(d));
		for (enum pt_mig_state st = 0; st < PT_MIG_NSTATES; st++)
			put(b,
			    "ptrack_migration_state{vm=\"%s\",uuid=\"%s\",domain=\"%s\",engine=\"libvirt\",direction=\"%s\",state=\"%s\"} %d\n",
			    d, j->uuid, d,
			    j->incoming ? "incoming" : "outgoing",
			    pt_mig_state_name(st), j->state == st);
	}
	help(b, "ptrack_migrations_total", "counter",
	     "Migrations ended, by direction, engine and result.");
	for (enum pt_mig_state st = PT_MIG_COMPLETED; st < PT_MIG_NSTATES;
	     st++) {
		put(b,
		    "ptrack_migrations_total{" MIG_LABELS
		    ",result=\"%s\"} %llu\n",
		    pt_mig_state_name(st),
		    (unsigned long long)s->migrations_total[st]);
		put(b,
		    "ptrack_migrations_total{engine=\"ptrack\",direction=\"incoming\",result=\"%s\"} %llu\n",
		    pt_mig_state_name(st),
		    (unsigned long long)s->incoming_total[st]);
	}
	for (int in = 0; s->cfg.libvirt_enabled && in < 2; in++)
		for (enum pt_mig_state st = PT_MIG_COMPLETED;
		     st < PT_MIG_NSTATES; st++)
			put(b,
			    "ptrack_migrations_total{engine=\"libvirt\",direction=\"%s\",result=\"%s\"} %llu\n",
			    in ? "incoming" : "outgoing", pt_mig_state_name(st),
			    (unsigned long long)s->libvirt_total[in][st]);
	help(b, "ptrack_incoming_migrations", "gauge",
	     "Peer sessions receiving a migration now.");
	{
		unsigned int n = 0;

		for (struct pt_peer_job *p = s->peers; p; p = p->next)
			n += !p->done;
		put(b, "ptrack_incoming_migrations %u\n", n);
	}
}

char *pt_metrics_render(struct pt_service *s)
{
	struct buf b = { .cap = 4096 };
	unsigned int n = 0;

	b.p = malloc(b.cap);
	if (!b.p)
		return NULL;
	b.p[0] = '\0';
	for (struct pt_vm *v = s->vms; v; v = v->next)
		n++;
	help(&b, "ptrack_build_info", "gauge", "ptrackd's version.");
	put(&b, "ptrack_build_info{version=\"%s\"} 1\n", PT_VERSION);
	help(&b, "ptrack_vms", "gauge", "VMs registered with ptrackd.");
	put(&b, "ptrack_vms %u\n", n);
	vm_rates(&b, s);
	vm_counters(&b, s);
	vm_hist(&b, s);
	migrations(&b, s);
	help(&b, "ptrack_control_refused_total", "counter",
	     "Control connections refused by SO_PEERCRED.");
	put(&b, "ptrack_control_refused_total %llu\n",
	    (unsigned long long)s->refused_total);
	/* Only with libvirt configured: a 0 there would fire alerts on hosts
	 * without libvirt. */
	if (s->cfg.libvirt_enabled) {
		help(&b, "ptrack_libvirt_connected", "gauge",
		     "1 while connected to libvirt.");
		put(&b, "ptrack_libvirt_connected %d\n", pt_virt_connected(s));
		domains(&b, s);
	}
	if (b.oom) {
		free(b.p);
		return NULL;
	}
	return b.p;
}

static enum MHD_Result answer(void *cls, struct MHD_Connection *c,
			      const char *url, const char *method,
			      const char *version, const char *data,
			      size_t *size, void **ptr)
{
	struct pt_service *s = cls;
	struct MHD_Response *r;
	unsigned int code = MHD_HTTP_OK;
	enum MHD_Result ret;
	char *text = NULL;

	(void)version;
	(void)data;
	(void)size;
	(void)ptr;
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
		code = MHD_HTTP_METHOD_NOT_ALLOWED;
	else if (strcmp(url, "/metrics") != 0)
		code = MHD_HTTP_NOT_FOUND;
	else
		text = pt_metrics_render(s);
	if (code == MHD_HTTP_OK && !text)
		code = MHD_HTTP_INTERNAL_SERVER_ERROR;
	if (text)
		r = MHD_create_response_from_buffer(strlen(text), text,
						    MHD_RESPMEM_MUST_FREE);
	else
		r = MHD_create_response_from_buffer(0, (void *)"",
						    MHD_RESPMEM_PERSISTENT);
	if (!r) {
		free(text);
		return MHD_NO;
	}
	MHD_add_response_header(r, "Content-Type",
				"text/plain; version=0.0.4; charset=utf-8");
	ret = MHD_queue_response(c, code, r);
	MHD_destroy_response(r);
	return ret;
}

static int on_mhd(sd_event_source *es, int fd, uint32_t revents, void *arg)
{
	struct pt_metrics *m = arg;

	(void)es;
	(void)fd;
	(void)revents;
	MHD_run(m->d);
	return 0;
}

/* Connection timeouts need MHD_run even without traffic. */
static int on_mhd_timer(sd_event_source *es, uint64_t usec, void *arg)
{
	struct pt_metrics *m = arg;

	(void)usec;
	MHD_run(m->d);
	sd_event_source_set_time_relative(es, 1000000);
	return sd_event_source_set_enabled(es, SD_EVENT_ONESHOT);
}

static int resolve(const char *hostport, struct sockaddr_storage *ss)
{
	char host[160];
	const char *colon = strrchr(hostport, ':');
	struct addrinfo hints = { .ai_flags = AI_NUMERICSERV | AI_PASSIVE,
				  .ai_socktype = SOCK_STREAM };
	struct addrinfo *ai;
	size_t n;

	if (!colon)
		return -EINVAL;
	n = (size_t)(colon - hostport);
	if (hostport[0] == '[' && n >= 2 && colon[-1] == ']')
		snprintf(host, sizeof(host), "%.*s", (int)n - 2, hostport + 1);
	else
		snprintf(host, sizeof(host), "%.*s", (int)n, hostport);
	if (getaddrinfo(host, colon + 1, &hints, &ai))
		return -EADDRNOTAVAIL;
	memcpy(ss, ai->ai_addr, ai->ai_addrlen);
	freeaddrinfo(ai);
	return 0;
}

static int mhd_open(struct pt_service *s, struct pt_metrics *m)
{
	struct sockaddr_storage ss;
	const union MHD_DaemonInfo *info;
	unsigned int flags = MHD_USE_EPOLL;
	int ret = resolve(s->cfg.metrics_listen, &ss);

	if (ret)
		return ret;
	if (ss.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	m->d = MHD_start_daemon(
		flags, 0, NULL, NULL, answer, s, MHD_OPTION_SOCK_ADDR, &ss,
		MHD_OPTION_CONNECTION_TIMEOUT, 10u, MHD_OPTION_CONNECTION_LIMIT,
		64u, MHD_OPTION_END);
	if (!m->d)
		return -EADDRINUSE;
	info = MHD_get_daemon_info(m->d, MHD_DAEMON_INFO_BIND_PORT);
	snprintf(m->address, sizeof(m->address), "%.*s:%u",
		 (int)(strrchr(s->cfg.metrics_listen, ':') -
		       s->cfg.metrics_listen),
		 s->cfg.metrics_listen, info ? info->port : 0);
	info = MHD_get_daemon_info(m->d, MHD_DAEMON_INFO_EPOLL_FD);
	if (!info)
		return -EIO;
	ret = sd_event_add_io(s->ev, &m->io, info->epoll_fd, EPOLLIN, on_mhd,
			      m);
	if (ret < 0)
		return ret;
	return sd_event_add_time_relative(s->ev, &m->timer, CLOCK_MONOTONIC,
					  1000000, 100000, on_mhd_timer, m);
}

int pt_metrics_start(struct pt_service *s)
{
	struct pt_metrics *m = calloc(1, sizeof(*m));
	int ret;

	if (!m)
		return -ENOMEM;
	s->metrics = m;
	ret = mhd_open(s, m);
	if (ret < 0) {
		pt_log(LOG_ERR, "metrics on %s: %s", s->cfg.metrics_listen,
		       strerror(-ret));
		pt_metrics_stop(s);
	}
	return ret;
}

void pt_metrics_stop(struct pt_service *s)
{
	struct pt_metrics *m = s->metrics;

	if (!m)
		return;
	sd_event_source_unref(m->io);
	sd_event_source_unref(m->timer);
	if (m->d)
		MHD_stop_daemon(m->d);
	free(m);
	s->metrics = NULL;
}

const char *pt_metrics_address(struct pt_service *s)
{
	return s->metrics ? s->metrics->address : "";
}
