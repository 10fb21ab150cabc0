// SPDX-License-Identifier: MIT
/*
 * Migrations and peer sessions driven from the control socket. The engine
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

static const struct pt_dirty_source_ops proxy_ops = {
	.start = px_start,
	.harvest = px_harvest,
	.pause = px_pause,
	.resume = px_resume,
	.stop = px_stop,
	.release = px_release,
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

	if (!m->conn)
		return;
	pthread_mutex_lock(&m->lock);
	p.round = m->prog.round;
	p.dirty_pages = m->prog.dirty_pages;
	p.remaining = m->prog.remaining;
	p.transferred = m->prog.transferred;
	p.mbps = m->prog.mbps;
	p.expected_downtime_ms = m->prog.expected_downtime_ms;
	p.final_round = m->prog.final;
	pthread_mutex_unlock(&m->lock);
	p.migration_id = m->id;
	p.state = (char *)m->state;
	if (final) {
		p.round = m->res.rounds;
		p.transferred = m->res.bytes;
		p.total_ms = m->res.total_ms;
		p.downtime_ms = m->res.downtime_ms;
		if (m->ret == 0)
			p.remaining = 0;
		r.status = m->ret;
		r.error = m->ret ? m->res.err : "";
	}
	r.id = m->req_id;
	r.final = final;
	r.body_case = PTRACK__CONTROL__V1__REPLY__BODY_PROGRESS;
	r.progress = &p;
	pt_conn_reply(m->conn, &r);
}

static void mig_finish(struct pt_migration *m)
{
	struct pt_service *s = m->svc;
	const char *name = m->vm->src->name;
	int idx;

	pthread_join(m->th, NULL);
	if (m->ret == 0) {
		m->state = "completed";
		idx = 0;
		/* The guest now lives on the peer. */
		m->vm->src->ops->stop(m->vm->src);
	} else {
		m->state = atomic_load(&m->cancel) ? "cancelled" : "failed";
		idx = atomic_load(&m->cancel) ? 2 : 1;
	}
	s->migrations_total[idx]++;
	s->running_migrations--;
	pt_logx(m->ret ? LOG_WARNING : LOG_INFO, name, m->id, PT_MSGID_MIG_END,
		"migration to %s %s after %llu rounds, %llu ms, downtime %llu ms%s%s",
		m->to, m->state, (unsigned long long)m->res.rounds,
		(unsigned long long)m->res.total_ms,
		(unsigned long long)m->res.downtime_ms, m->ret ? ": " : "",
		m->ret ? m->res.err : "");
	send_progress(m, 1);
	sd_event_source_set_enabled(m->es, SD_EVENT_OFF);
	pt_service_status(s);
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

void pt_migration_free(struct pt_migration *m)
{
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
	m->proxy.ops = &proxy_ops;
	snprintf(m->to, sizeof(m->to), "%s", q->to);
	m->opts.to = m->to;
	m->opts.downtime_ms =
		q->downtime_ms ? q->downtime_ms : s->cfg.downtime_ms;
	m->opts.bandwidth = q->bandwidth ? q->bandwidth : s->cfg.bandwidth;
	m->opts.max_rounds = q->max_rounds ? q->max_rounds : s->cfg.max_rounds;
	m->opts.time_limit_ms = s->cfg.time_limit_ms;
	snprintf(m->cc, sizeof(m->cc), "%s",
		 q->tcp_congestion && q->tcp_congestion[0]
			 ? q->tcp_congestion
			 : s->cfg.tcp_congestion);
	m->opts.tcp_congestion = m->cc[0] ? m->cc : NULL;
	m->opts.progress = on_progress;
	m->opts.arg = m;
	m->state = "active";
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

int pt_migration_start(struct pt_service *s, struct pt_conn *c, uint64_t id,
		       const Ptrack__Control__V1__MigrateRequest *q)
{
	struct pt_vm *vm = pt_vm_find(s, q->vm);
	struct pt_migration *m;
	int ret;

	if (!vm)
		return pt_conn_error(c, id, -ENOENT, "no VM '%s'", q->vm);
	if (vm->mig && !vm->mig->done)
		return pt_conn_error(c, id, -EBUSY, "VM '%s' is migrating",
				     q->vm);
	if (s->stopping)
		return pt_conn_error(c, id, -ESHUTDOWN, "ptrackd is stopping");
	if (q->tcp_congestion && q->tcp_congestion[0]) {
		char err[300];

		/* -EINVAL whatever the kernel said: ENOENT or EPERM would
		 * read as "no such VM" or "access denied" to ptrackctl. */
		if (pt_tcp_congestion_check(q->tcp_congestion, err,
					    sizeof(err)))
			return pt_conn_error(c, id, -EINVAL, "migrate '%s': %s",
					     q->vm, err);
	}
	m = mig_new(s, vm, q);
	if (!m)
		return pt_conn_error(c, id, -ENOMEM, "out of memory");
	m->conn = c;
	m->req_id = id;
	ret = mig_launch(s, m);
	if (ret) {
		pt_migration_free(m);
		return pt_conn_error(c, id, ret, "migrate '%s': %s", q->vm,
				     strerror(-ret));
	}
	if (vm->mig)
		pt_migration_free(vm->mig);
	vm->mig = m;
	s->running_migrations++;
	pt_logx(LOG_INFO, vm->src->name, m->id, PT_MSGID_MIG_START,
		"migration to %s started (downtime %llu ms, bandwidth %llu B/s, TCP congestion control %s)",
		m->to, (unsigned long long)m->opts.downtime_ms,
		(unsigned long long)m->opts.bandwidth,
		m->cc[0] ? m->cc : "system default");
	pt_service_status(s);
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

/* --- peer ------------------------------------------------------------- */

static void *peer_thread(void *arg)
{
	struct pt_peer_job *p = arg;
	uint64_t one = 1;

	p->ret = pt_peer_run(&p->opts, &p->res);
	if (write(p->efd, &one, sizeof(one)) < 0)
		pt_log(LOG_ERR, "peer eventfd: %s", strerror(errno));
	return NULL;
}

static void peer_reply(struct pt_peer_job *p, const char *state, int final)
{
	PtCtlReply r = PTRACK__CONTROL__V1__REPLY__INIT;
	Ptrack__Control__V1__PeerReply pr =
		PTRACK__CONTROL__V1__PEER_REPLY__INIT;

	if (!p->conn)
		return;
	pr.state = (char *)state;
	pr.listen = p->listen;
	if (final) {
		pr.session_id = p->res.session_id;
		pr.pages = p->res.pages;
		pr.rounds = p->res.rounds;
		pr.mem_size = p->res.mem_size;
		r.status = p->ret;
		r.error = p->ret ? p->res.err : "";
	}
	r.id = p->req_id;
	r.final = final;
	r.body_case = PTRACK__CONTROL__V1__REPLY__BODY_PEER;
	r.peer = &pr;
	pt_conn_reply(p->conn, &r);
}

static int on_peer_event(sd_event_source *es, int fd, uint32_t revents,
			 void *arg)
{
	struct pt_peer_job *p = arg;
	uint64_t n;

	(void)revents;
	if (read(fd, &n, sizeof(n)) < 0)
		return 0;
	pthread_join(p->th, NULL);
	p->th = 0;
	sd_event_source_set_enabled(es, SD_EVENT_OFF);
	pt_log(p->ret ? LOG_WARNING : LOG_INFO, "peer session on %s %s%s%s",
	       p->listen, p->ret ? "failed" : "completed", p->ret ? ": " : "",
	       p->ret ? p->res.err : "");
	peer_reply(p, p->ret ? "failed" : "completed", 1);
	return 0;
}

void pt_peer_free(struct pt_peer_job *p)
{
	/* Shutting the listener down ends a session still waiting for its
	 * source; one under way runs to its end (bounded by its timeouts). */
	if (p->th) {
		if (p->lfd >= 0)
			shutdown(p->lfd, SHUT_RDWR);
		pthread_join(p->th, NULL);
	}
	sd_event_source_unref(p->es);
	if (p->lfd >= 0)
		close(p->lfd);
	if (p->efd >= 0)
		close(p->efd);
	free(p);
}

int pt_peer_start(struct pt_service *s, struct pt_conn *c, uint64_t id,
		  const Ptrack__Control__V1__PeerListenRequest *q)
{
	struct pt_peer_job *p = calloc(1, sizeof(*p));
	int ret;

	if (!p)
		return pt_conn_error(c, id, -ENOMEM, "out of memory");
	p->svc = s;
	p->conn = c;
	p->req_id = id;
	snprintf(p->listen, sizeof(p->listen), "%s", q->listen);
	snprintf(p->mem_path, sizeof(p->mem_path), "%s", q->mem_path);
	snprintf(p->state_dir, sizeof(p->state_dir), "%s", q->state_dir);
	p->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	p->lfd = pt_tcp_listen(p->listen);
	if (p->lfd < 0 || p->efd < 0) {
		ret = p->lfd < 0 ? p->lfd : -errno;
		goto out_free;
	}
	p->opts.lfd = p->lfd;
	p->opts.mem_path = p->mem_path[0] ? p->mem_path : NULL;
	p->opts.state_dir = p->state_dir[0] ? p->state_dir : NULL;
	p->opts.quiet = 1;
	ret = sd_event_add_io(s->ev, &p->es, p->efd, EPOLLIN, on_peer_event, p);
	if (ret < 0)
		goto out_free;
	ret = -pthread_create(&p->th, NULL, peer_thread, p);
	if (ret)
		goto out_free;
	p->next = s->peers;
	s->peers = p;
	peer_reply(p, "listening", 0);
	return 0;
out_free:
	p->conn = NULL;
	pt_peer_free(p);
	return pt_conn_error(c, id, ret, "peer listen %s: %s", q->listen,
			     strerror(-ret));
}
