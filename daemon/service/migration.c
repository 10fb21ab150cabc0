// SPDX-License-Identifier: MIT
/*
 * Migrations driven from the control socket. The engine
 * blocks, so each runs in a worker thread and reports to the loop through
 * an eventfd. The migration sees the VM through a proxy source that meters
 * every harvest (metrics stay exact during a migration) and turns a cancel
 * (SIGTERM) into a failed harvest or pause: the engine then fails the
 * migration and resumes the guest, so no VM is left paused.
 */
#include "service/service.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "service/log.h"

#define PROXY_MIG(src)                                                       \
	((struct pt_migration *)((char *)(src)-offsetof(struct pt_migration, \
							proxy)))

struct tee {
	struct pt_dirty_sink sink;
	struct pt_dirty_sink *a, *b;
};

static int tee_bitmap(struct pt_dirty_sink *s, uint32_t region, uint64_t first,
		      uint64_t n, const uint64_t *words)
{
	struct tee *t = (struct tee *)s;
	int ret = t->a->ops->bitmap(t->a, region, first, n, words);

	t->b->ops->bitmap(t->b, region, first, n, words);
	return ret;
}

static int tee_ring(struct pt_dirty_sink *s, int vcpu, const uint64_t *gfns,
		    size_t n)
{
	struct tee *t = (struct tee *)s;
	int ret = t->a->ops->ring(t->a, vcpu, gfns, n);

	t->b->ops->ring(t->b, vcpu, gfns, n);
	return ret;
}

static int tee_all(struct pt_dirty_sink *s, uint32_t region)
{
	struct tee *t = (struct tee *)s;
	int ret = t->a->ops->all(t->a, region);

	t->b->ops->all(t->b, region);
	return ret;
}

static const struct pt_dirty_sink_ops tee_ops = {
	.bitmap = tee_bitmap,
	.ring = tee_ring,
	.all = tee_all,
};

static struct pt_dirty_source *real(struct pt_dirty_source *p)
{
	return PROXY_MIG(p)->vm->src;
}

static int px_start(struct pt_dirty_source *p)
{
	return real(p)->ops->start(real(p));
}

/* The rate while migrating: what this harvest found over the time since
 * the previous one (the loop must not cut the window meanwhile). */
static void mig_rate(struct pt_migration *m, uint64_t now)
{
	struct pt_vm *vm = m->vm;
	uint64_t pages, len;
	double dt;

	len = pt_meter_take(&vm->meter, vm->sample, now, 1, &pages, m->vpages);
	dt = (double)len / 1e9;
	if (dt <= 0)
		return;
	pthread_mutex_lock(&m->lock);
	m->rate = (double)pages * vm->meter.page_size / dt;
	m->have_rate = 1;
	for (unsigned int i = 0; i < vm->meter.vcpus; i++)
		m->vcpu_rate[i] =
			(double)m->vpages[i] * vm->meter.page_size / dt;
	pthread_mutex_unlock(&m->lock);
}

static int px_harvest(struct pt_dirty_source *p, struct pt_dirty_sink *sink)
{
	struct pt_migration *m = PROXY_MIG(p);
	struct tee t = { { &tee_ops }, sink, &m->vm->meter.sink };
	uint64_t t0 = pt_now_ns();
	int ret;

	if (atomic_load(&m->cancel))
		return -ECANCELED;
	ret = real(p)->ops->harvest(real(p), &t.sink);
	pt_meter_harvest_time(&m->vm->meter, (double)(pt_now_ns() - t0) / 1e9);
	if (!ret)
		mig_rate(m, (t0 + pt_now_ns()) / 2);
	return ret;
}

static int px_pause(struct pt_dirty_source *p)
{
	if (atomic_load(&PROXY_MIG(p)->cancel))
		return -ECANCELED;
	return real(p)->ops->pause(real(p));
}

static int px_resume(struct pt_dirty_source *p)
{
	return real(p)->ops->resume(real(p));
}

static int px_stop(struct pt_dirty_source *p)
{
	return real(p)->ops->stop(real(p));
}

static void px_release(struct pt_dirty_source *p)
{
	(void)p; /* the VM owns the real source */
}

static int px_throttle(struct pt_dirty_source *p, unsigned int pct)
{
	struct pt_dirty_source *r = real(p);

	return r->ops->throttle ? r->ops->throttle(r, pct) : -EOPNOTSUPP;
}

static int px_save_state(struct pt_dirty_source *p, void **blob, size_t *len)
{
	if (atomic_load(&PROXY_MIG(p)->cancel))
		return -ECANCELED;
	return real(p)->ops->save_state(real(p), blob, len);
}

static const struct pt_dirty_source_ops proxy_ops = {
	.start = px_start,
	.harvest = px_harvest,
	.pause = px_pause,
	.resume = px_resume,
	.stop = px_stop,
	.release = px_release,
	.throttle = px_throttle,
};

/* For a VMM that can hand its guest over (save_state). */
static const struct pt_dirty_source_ops proxy_switch_ops = {
	.start = px_start,
	.harvest = px_harvest,
	.pause = px_pause,
	.resume = px_resume,
	.stop = px_stop,
	.release = px_release,
	.save_state = px_save_state,
	.throttle = px_throttle,
};

static void on_progress(const struct pt_mig_progress *p, void *arg)
{
	struct pt_migration *m = arg;
	uint64_t one = 1;

	pthread_mutex_lock(&m->lock);
	m->prog = *p;
	m->prog_seq++;
	pthread_mutex_unlock(&m->lock);
	if (write(m->efd, &one, sizeof(one)) < 0)
		return; /* the loop still sees the result at the end */
}

static void *mig_thread(void *arg)
{
	struct pt_migration *m = arg;
	uint64_t one = 1;
	int ret = pt_migrate(&m->proxy, &m->opts, &m->res);

	pthread_mutex_lock(&m->lock);
	m->ret = ret;
	m->prog_seq++;
	pthread_mutex_unlock(&m->lock);
	/* Ordering: done is read by the loop after it reads the eventfd. */
	atomic_store((atomic_int *)&m->done, 1);
	if (write(m->efd, &one, sizeof(one)) < 0)
		pt_log(LOG_ERR, "migration eventfd: %s", strerror(errno));
	return NULL;
}

static void send_progress(struct pt_migration *m, int final)
{
	PtCtlReply r = PTRACK__CONTROL__V1__REPLY__INIT;
	Ptrack__Control__V1__MigrateProgress p =
		PTRACK__CONTROL__V1__MIGRATE_PROGRESS__INIT;

	if (!m->req.conn)
		return;
	pthread_mutex_lock(&m->lock);
	p.round = m->prog.round;
	p.dirty_pages = m->prog.dirty_pages;
	p.remaining = m->prog.remaining;
	p.transferred = m->prog.transferred;
	p.mbps = m->prog.mbps;
	p.expected_downtime_ms = m->prog.expected_downtime_ms;
	p.final_round = m->prog.final;
	p.throttle = m->prog.throttle;
	pthread_mutex_unlock(&m->lock);
	p.migration_id = m->id;
	p.state = (char *)pt_mig_state_name(m->state);
	if (final) {
		p.round = m->res.rounds;
		p.transferred = m->res.bytes;
		p.total_ms = m->res.total_ms;
		p.downtime_ms = m->res.downtime_ms;
		if (m->ret == 0)
			p.remaining = 0;
		p.throttle = 0; /* lifted */
		p.switched_over = m->res.switched_over;
		r.status = m->ret;
		r.error = m->ret ? m->res.err : "";
	}
	r.final = final;
	r.body_case = PTRACK__CONTROL__V1__REPLY__BODY_PROGRESS;
	r.progress = &p;
	pt_req_reply(&m->req, &r);
}

static void mig_finish(struct pt_migration *m)
{
	struct pt_service *s = m->svc;
	const char *name = m->vm->src->name;

	pthread_join(m->th, NULL);
	if (m->ret == 0) {
		m->state = PT_MIG_COMPLETED;
		/* The guest now lives on the peer. */
		m->vm->src->ops->stop(m->vm->src);
	} else if (m->res.outcome_unknown) {
		/* Neither resumed nor stopped: it may run on the peer. */
		m->state = PT_MIG_FAILED;
		pt_logx(LOG_CRIT, name, m->id, PT_MSGID_MIG_END,
			"%s; its VMM holds it paused: ask %s whether it runs "
			"there, then stop or resume it here",
			m->res.err, m->to);
	} else {
		m->state = atomic_load(&m->cancel) ? PT_MIG_CANCELLED
						   : PT_MIG_FAILED;
	}
	s->migrations_total[m->state]++;
	m->end_time = pt_unix_now();
	pt_metrics_keep(s, m);
	s->running_migrations--;
	pt_logx(m->ret ? LOG_WARNING : LOG_INFO, name, m->id, PT_MSGID_MIG_END,
		"migration to %s %s after %llu rounds, %llu ms, downtime %llu ms%s%s",
		m->to, pt_mig_state_name(m->state),
		(unsigned long long)m->res.rounds,
		(unsigned long long)m->res.total_ms,
		(unsigned long long)m->res.downtime_ms, m->ret ? ": " : "",
		m->ret ? m->res.err : "");
	send_progress(m, 1);
	sd_event_source_set_enabled(m->es, SD_EVENT_OFF);
	pt_service_changed(s);
	if (s->stopping && !s->running_migrations)
		sd_event_exit(s->ev, 0);
	if (m->vm->gone)
		pt_vm_reap(m->vm); /* frees m too */
}

static int on_mig_event(sd_event_source *es, int fd, uint32_t revents,
			void *arg)
{
	struct pt_migration *m = arg;
	uint64_t n;

	(void)es;
	(void)revents;
	if (read(fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		return 0;
	if (atomic_load((atomic_int *)&m->done))
		mig_finish(m);
	else if (m->prog_seq != m->prog_sent) {
		m->prog_sent = m->prog_seq;
		send_progress(m, 0);
	}
	return 0;
}

const char *pt_mig_state_name(enum pt_mig_state st)
{
	static const char *const names[PT_MIG_NSTATES] = {
		[PT_MIG_ACTIVE] = "active",
		[PT_MIG_COMPLETED] = "completed",
		[PT_MIG_FAILED] = "failed",
		[PT_MIG_CANCELLED] = "cancelled",
	};

	return (unsigned int)st < PT_MIG_NSTATES ? names[st] : "unknown";
}

void pt_migration_free(struct pt_migration *m)
{
	pt_req_drop(&m->req);
	sd_event_source_unref(m->es);
	if (m->efd >= 0)
		close(m->efd);
	pthread_mutex_destroy(&m->lock);
	free(m->vcpu_rate);
	free(m->vpages);
	free(m);
}

static struct pt_migration *
mig_new(struct pt_service *s, struct pt_vm *vm,
	const Ptrack__Control__V1__MigrateRequest *q)
{
	struct pt_migration *m = calloc(1, sizeof(*m));

	if (!m)
		return NULL;
	m->svc = s;
	m->vm = vm;
	m->vcpu_rate = calloc(vm->src->vcpus + 1, sizeof(*m->vcpu_rate));
	m->vpages = calloc(vm->src->vcpus + 1, sizeof(*m->vpages));
	if (!m->vcpu_rate || !m->vpages) {
		free(m->vcpu_rate);
		free(m->vpages);
		free(m);
		return NULL;
	}
	m->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	pthread_mutex_init(&m->lock, NULL);
	m->proxy = *vm->src;
	m->proxy.ops =
		vm->src->ops->save_state ? &proxy_switch_ops : &proxy_ops;
	snprintf(m->to, sizeof(m->to), "%s", q->to);
	m->opts.to = m->to;
	m->opts.downtime_ms =
		q->downtime_ms ? q->downtime_ms : s->cfg.downtime_ms;
	m->opts.bandwidth = q->bandwidth ? q->bandwidth : s->cfg.bandwidth;
	m->opts.max_rounds = q->max_rounds ? q->max_rounds : s->cfg.max_rounds;
	m->opts.time_limit_ms = s->cfg.time_limit_ms;
	m->opts.auto_converge = q->auto_converge || s->cfg.auto_converge;
	snprintf(m->cc, sizeof(m->cc), "%s",
		 q->tcp_congestion && q->tcp_congestion[0]
			 ? q->tcp_congestion
			 : s->cfg.tcp_congestion);
	m->opts.tcp_congestion = m->cc[0] ? m->cc : NULL;
	m->opts.progress = on_progress;
	m->opts.arg = m;
	m->state = PT_MIG_ACTIVE;
	m->start_time = pt_unix_now();
	m->id = s->next_mig_id++;
	return m;
}

static int mig_launch(struct pt_service *s, struct pt_migration *m)
{
	int ret;

	if (m->efd < 0)
		return -errno;
	ret = sd_event_add_io(s->ev, &m->es, m->efd, EPOLLIN, on_mig_event, m);
	if (ret < 0)
		return ret;
	/* The metrics see the migration's harvests through this window. */
	if (!m->vm->sample) {
		ret = pt_meter_open(&m->vm->meter, &m->vm->sample);
		if (ret)
			return ret;
	}
	ret = -pthread_create(&m->th, NULL, mig_thread, m);
	return ret;
}

int pt_migration_start(struct pt_service *s, struct pt_req *rq,
		       const Ptrack__Control__V1__MigrateRequest *q)
{
	struct pt_vm *vm = pt_vm_find(s, q->vm);
	const struct pt_tls *tls;
	struct pt_migration *m;
	char terr[512];
	int ret;

	if (!vm)
		return pt_req_error(rq, -ENOENT, "no VM '%s'", q->vm);
	if (vm->mig && !vm->mig->done)
		return pt_req_error(rq, -EBUSY, "VM '%s' is migrating", q->vm);
	if (vm->src->incoming)
		return pt_req_error(rq, -EBUSY,
				    "VM '%s' is an incoming VM: it runs only "
				    "once a migration to it completed",
				    q->vm);
	if (s->stopping)
		return pt_req_error(rq, -ESHUTDOWN, "ptrackd is stopping");
	if (q->tcp_congestion && q->tcp_congestion[0]) {
		char err[300];

		/* -EINVAL whatever the kernel said: ENOENT or EPERM would
		 * read as "no such VM" or "access denied" to ptrackctl. */
		if (pt_tcp_congestion_check(q->tcp_congestion, err,
					    sizeof(err)))
			return pt_req_error(rq, -EINVAL, "migrate '%s': %s",
					    q->vm, err);
	}
	if (pt_service_tls(s, 0, &tls, terr, sizeof(terr)))
		return pt_req_error(rq, -EACCES, "migrate '%s': %s", q->vm,
				    terr);
	m = mig_new(s, vm, q);
	if (!m)
		return pt_req_error(rq, -ENOMEM, "out of memory");
	m->opts.tls = tls;
	ret = mig_launch(s, m);
	if (ret) {
		pt_migration_free(m);
		return pt_req_error(rq, ret, "migrate '%s': %s", q->vm,
				    strerror(-ret));
	}
	pt_req_keep(&m->req, rq);
	if (vm->mig)
		pt_migration_free(vm->mig);
	vm->mig = m;
	s->running_migrations++;
	pt_logx(LOG_INFO, vm->src->name, m->id, PT_MSGID_MIG_START,
		"migration to %s started (downtime %llu ms, bandwidth %llu B/s, TCP congestion control %s)",
		m->to, (unsigned long long)m->opts.downtime_ms,
		(unsigned long long)m->opts.bandwidth,
		m->cc[0] ? m->cc : "system default");
	pt_service_changed(s);
	send_progress(m, 0);
	return 0;
}

void pt_migration_cancel_all(struct pt_service *s)
{
	for (struct pt_vm *v = s->vms; v; v = v->next) {
		if (v->mig && !v->mig->done) {
			atomic_store(&v->mig->cancel, 1);
			pt_logx(LOG_NOTICE, v->src->name, v->mig->id, NULL,
				"cancelling migration");
		}
	}
}
