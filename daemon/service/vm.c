// SPDX-License-Identifier: MIT
/*
 * VMs registered through libptrack: tracking on and off, the periodic
 * harvest that feeds the dirty-rate meter, and dirtyrate measurements.
 */
#include "service/service.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "service/log.h"
#include "source/vmm_push.h"

/* Harvests are blocking requests to the VMM: keep them short so a hung
 * VMM cannot stall the loop past the watchdog. */
#define VMM_TIMEOUT_MS 3000

const char *pt_vm_kind(const struct pt_vm *vm)
{
	switch (vm->src->kind) {
	case PTRACK__V1__DIRTY_SOURCE__DIRTY_SOURCE_BITMAP:
		return "bitmap";
	case PTRACK__V1__DIRTY_SOURCE__DIRTY_SOURCE_RING:
		return "ring";
	default:
		return "unknown";
	}
}

static int migrating(const struct pt_vm *vm)
{
	return vm->mig && !vm->mig->done;
}

const char *pt_vm_state(const struct pt_vm *vm)
{
	if (vm->gone)
		return "gone";
	if (migrating(vm))
		return "migrating";
	if (vm->src->incoming)
		return vm->incoming_job ? "incoming, receiving" : "incoming";
	return vm->tracked ? "tracking" : "idle";
}

struct pt_vm *pt_vm_find(struct pt_service *s, const char *key)
{
	for (struct pt_vm *v = s->vms; v; v = v->next)
		if (!v->gone &&
		    (!strcmp(v->src->name, key) || !strcmp(v->uuid, key) ||
		     !strcmp(v->domain, key)))
			return v;
	return NULL;
}

/* Harvests into the meter, timing it. Only from the loop, and never while
 * the migration thread owns the source. */
int pt_vm_harvest(struct pt_vm *vm)
{
	uint64_t t0 = pt_now_ns();
	int ret;

	if (vm->gone)
		return -ECONNRESET;
	if (migrating(vm))
		return 0;
	/* An incoming VM's guest does not run yet; its peer session owns
	 * the connection to its VMM. */
	if (vm->src->incoming)
		return -EBUSY;
	ret = vm->src->ops->harvest(vm->src, &vm->meter.sink);
	pt_meter_harvest_time(&vm->meter, (double)(pt_now_ns() - t0) / 1e9);
	if (ret)
		pt_logx(LOG_WARNING, vm->src->name, 0, NULL, "harvest: %s",
			strerror(-ret));
	return ret;
}

static int vm_start(struct pt_vm *vm)
{
	int ret;

	if (vm->started)
		return 0;
	ret = vm->src->ops->start(vm->src);
	if (ret)
		return ret;
	vm->started = 1;
	return 0;
}

int pt_vm_track(struct pt_vm *vm, int on)
{
	int ret;

	if (!on) {
		vm->tracked = 0;
		pt_logx(LOG_INFO, vm->src->name, 0, PT_MSGID_TRACKING,
			"tracking stopped");
		pt_service_changed(vm->svc);
		return 0;
	}
	if (vm->tracked)
		return 0;
	if (vm->src->incoming)
		return -EBUSY;
	if (migrating(vm)) {
		/* The migration keeps the sample window; see mig_rate(). */
		vm->tracked = 1;
		return 0;
	}
	ret = vm_start(vm);
	if (ret)
		return ret;
	/* Flush what was logged before, so the first window is exact. */
	ret = pt_vm_harvest(vm);
	if (ret)
		return ret;
	if (!vm->sample) {
		ret = pt_meter_open(&vm->meter, &vm->sample);
		if (ret)
			return ret;
	} else {
		uint64_t pages;

		pt_meter_take(&vm->meter, vm->sample, pt_now_ns(), 1, &pages,
			      NULL);
	}
	vm->tracked = 1;
	pt_logx(LOG_INFO, vm->src->name, 0, PT_MSGID_TRACKING,
		"tracking started");
	pt_service_changed(vm->svc);
	return 0;
}

static void sample_vm(struct pt_vm *vm)
{
	uint64_t now, pages, *vp;
	double dt;

	if (!vm->sample || vm->gone || (!vm->tracked && !migrating(vm)))
		return;
	if (migrating(vm)) {
		/* The migration's harvests set the rate; see mig_rate().
		 * Before its first one, the last window's rate stands. */
		pthread_mutex_lock(&vm->mig->lock);
		if (vm->mig->have_rate) {
			vm->rate = vm->mig->rate;
			for (unsigned int i = 0; i < vm->meter.vcpus; i++)
				vm->vcpu_rate[i] = vm->mig->vcpu_rate[i];
		}
		pthread_mutex_unlock(&vm->mig->lock);
		return;
	}
	if (pt_vm_harvest(vm))
		return;
	now = pt_now_ns();
	dt = (double)(now - vm->sample->t0_ns) / 1e9;
	vp = calloc(vm->meter.vcpus + 1, sizeof(*vp));
	if (!vp)
		return;
	pt_meter_take(&vm->meter, vm->sample, now, 1, &pages, vp);
	if (dt > 0) {
		vm->rate = (double)pages * vm->meter.page_size / dt;
		for (unsigned int i = 0; i < vm->meter.vcpus; i++)
			vm->vcpu_rate[i] =
				(double)vp[i] * vm->meter.page_size / dt;
	}
	free(vp);
}

int pt_sample_tick(sd_event_source *es, uint64_t usec, void *arg)
{
	struct pt_service *s = arg;

	(void)usec;
	for (struct pt_vm *v = s->vms; v; v = v->next)
		sample_vm(v);
	sd_event_source_set_time_relative(es, s->cfg.sample_ms * 1000ull);
	return sd_event_source_set_enabled(es, SD_EVENT_ONESHOT);
}

void pt_vm_free(struct pt_vm *vm)
{
	if (vm->mig) {
		/* The thread must be done with the source before it goes. */
		if (!vm->mig->done)
			pthread_join(vm->mig->th, NULL);
		pt_migration_free(vm->mig);
	}
	if (vm->sample) {
		uint64_t pages;

		pt_meter_take(&vm->meter, vm->sample, 0, 0, &pages, NULL);
	}
	sd_event_source_unref(vm->hup);
	pt_meter_release(&vm->meter);
	vm->src->ops->release(vm->src);
	free(vm->vcpu_rate);
	free(vm);
}

static void vm_unlink(struct pt_vm *vm)
{
	struct pt_vm **p = &vm->svc->vms;

	while (*p && *p != vm)
		p = &(*p)->next;
	if (*p)
		*p = vm->next;
}

/* Drops a departed VM, unless a migration or measurement still uses it. */
void pt_vm_reap(struct pt_vm *vm)
{
	for (struct pt_rate_req *r = vm->svc->rates; r; r = r->next)
		if (r->vm == vm)
			return;
	if (migrating(vm) || vm->incoming_job)
		return;
	vm_unlink(vm);
	pt_service_changed(vm->svc);
	pt_vm_free(vm);
}

static int on_vmm_hup(sd_event_source *es, int fd, uint32_t revents, void *arg)
{
	struct pt_vm *vm = arg;

	(void)fd;
	(void)revents;
	sd_event_source_set_enabled(es, SD_EVENT_OFF);
	vm->gone = 1;
	vm->tracked = 0;
	pt_logx(LOG_INFO, vm->src->name, 0, PT_MSGID_VM_GONE,
		"VMM disconnected");
	pt_vm_reap(vm);
	return 0;
}

static void fmt_uuid(char *out, const uint8_t *u)
{
	snprintf(
		out, 37,
		"%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
		u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9],
		u[10], u[11], u[12], u[13], u[14], u[15]);
}

static int vm_new(struct pt_service *s, struct pt_dirty_source *src)
{
	struct pt_vm *vm = calloc(1, sizeof(*vm));
	struct ucred cr;
	socklen_t len = sizeof(cr);
	int ret = -ENOMEM;

	if (!vm)
		return -ENOMEM;
	vm->svc = s;
	vm->src = src;
	fmt_uuid(vm->uuid, src->uuid);
	if (!getsockopt(pt_vmm_fd(src), SOL_SOCKET, SO_PEERCRED, &cr, &len))
		vm->pid = cr.pid;
	vm->vcpu_rate = calloc(src->vcpus + 1, sizeof(double));
	if (!vm->vcpu_rate)
		goto out_free;
	ret = pt_meter_init(&vm->meter, src);
	if (ret)
		goto out_free;
	ret = sd_event_add_io(s->ev, &vm->hup, pt_vmm_fd(src), EPOLLRDHUP,
			      on_vmm_hup, vm);
	if (ret < 0)
		goto out_meter;
	pt_vmm_set_timeout(src, VMM_TIMEOUT_MS);
	vm->next = s->vms;
	s->vms = vm;
	return 0;
out_meter:
	pt_meter_release(&vm->meter);
out_free:
	free(vm->vcpu_rate);
	free(vm);
	return ret;
}

int pt_vmm_on_accept(sd_event_source *es, int fd, uint32_t revents, void *arg)
{
	struct pt_service *s = arg;
	struct pt_dirty_source *src;
	int ret;

	(void)es;
	(void)revents;
	/* The loop saw the listener readable: no waiting here. */
	ret = pt_vmm_accept(fd, 0, &src);
	if (ret == -EAGAIN)
		return 0;
	if (ret) {
		pt_log(LOG_WARNING, "VMM registration refused: %s",
		       strerror(-ret));
		return 0;
	}
	ret = vm_new(s, src);
	if (ret) {
		src->ops->release(src);
		return 0;
	}
	pt_logx(LOG_INFO, src->name, 0, PT_MSGID_VM,
		"VM registered: %s, %u vCPUs, %s log, pid %d", s->vms->uuid,
		src->vcpus, pt_vm_kind(s->vms), (int)s->vms->pid);
	pt_virt_map(s);
	pt_service_changed(s);
	return 0;
}

/* --- dirtyrate -------------------------------------------------------- */

static void rate_unlink(struct pt_rate_req *r)
{
	struct pt_rate_req **p = &r->vm->svc->rates;

	while (*p && *p != r)
		p = &(*p)->next;
	if (*p)
		*p = r->next;
}

static void rate_reply(struct pt_rate_req *r, uint64_t pages,
		       const uint64_t *vp, double dt)
{
	PtCtlReply rep = PTRACK__CONTROL__V1__REPLY__INIT;
	Ptrack__Control__V1__DirtyRateReply d =
		PTRACK__CONTROL__V1__DIRTY_RATE_REPLY__INIT;
	struct pt_vm *vm = r->vm;
	double *vr = NULL;

	d.vm = vm->src->name;
	d.calc_status = 2;
	d.calc_start_time = r->start_unix;
	d.calc_period = dt;
	d.calc_mode = (char *)pt_vm_kind(vm);
	d.method = "ptrack";
	d.dirty_pages = pages;
	d.bytes_per_second = (double)pages * vm->meter.page_size / dt;
	d.megabytes_per_second = d.bytes_per_second / (1 << 20);
	if (r->vcpu && vm->meter.per_vcpu) {
		vr = calloc(vm->meter.vcpus, sizeof(*vr));
		for (unsigned int i = 0; vr && i < vm->meter.vcpus; i++)
			vr[i] = (double)vp[i] * vm->meter.page_size / dt;
		d.n_vcpu_bytes_per_second = vr ? vm->meter.vcpus : 0;
		d.vcpu_bytes_per_second = vr;
	}
	rep.final = 1;
	rep.body_case = PTRACK__CONTROL__V1__REPLY__BODY_DIRTYRATE;
	rep.dirtyrate = &d;
	pt_req_reply(&r->req, &rep);
	free(vr);
}

static int rate_done(sd_event_source *es, uint64_t usec, void *arg)
{
	struct pt_rate_req *r = arg;
	struct pt_vm *vm = r->vm;
	uint64_t t0 = r->w->t0_ns, t1, pages, *vp;
	int ret;

	(void)es;
	(void)usec;
	t1 = pt_now_ns();
	ret = pt_vm_harvest(vm);
	/* The harvest saw what was written up to some point during the
	 * call: its midpoint ends the window, as the baseline's began it. */
	t1 = (t1 + pt_now_ns()) / 2;
	vp = calloc(vm->meter.vcpus + 1, sizeof(*vp));
	pt_meter_take(&vm->meter, r->w, 0, 0, &pages, vp);
	if (r->req.conn && (ret || !vp))
		pt_req_error(&r->req, ret ? ret : -ENOMEM, "dirtyrate '%s': %s",
			     vm->src->name, strerror(ret ? -ret : ENOMEM));
	else if (r->req.conn)
		rate_reply(r, pages, vp, (double)(t1 - t0) / 1e9);
	free(vp);
	pt_req_drop(&r->req);
	rate_unlink(r);
	sd_event_source_unref(r->timer);
	free(r);
	if (vm->gone)
		pt_vm_reap(vm);
	return 0;
}

static int mode_ok(const struct pt_vm *vm, int mode)
{
	static const int kinds[] = {
		[PTRACK__CONTROL__V1__DIRTY_MODE__DIRTY_MODE_BITMAP] =
			PTRACK__V1__DIRTY_SOURCE__DIRTY_SOURCE_BITMAP,
		[PTRACK__CONTROL__V1__DIRTY_MODE__DIRTY_MODE_RING] =
			PTRACK__V1__DIRTY_SOURCE__DIRTY_SOURCE_RING,
	};

	return mode == PTRACK__CONTROL__V1__DIRTY_MODE__DIRTY_MODE_ANY ||
	       (int)vm->src->kind == kinds[mode];
}

static int rate_begin(struct pt_rate_req *r, unsigned int seconds)
{
	uint64_t t0;
	int ret;

	ret = vm_start(r->vm);
	if (ret)
		return ret;
	t0 = pt_now_ns();
	ret = pt_vm_harvest(r->vm);
	if (ret)
		return ret;
	ret = pt_meter_open(&r->vm->meter, &r->w);
	if (ret)
		return ret;
	r->w->t0_ns = (t0 + r->w->t0_ns) / 2;
	r->start_unix = (uint64_t)time(NULL);
	ret = sd_event_add_time_relative(r->vm->svc->ev, &r->timer,
					 CLOCK_MONOTONIC, seconds * 1000000ull,
					 100, rate_done, r);
	if (ret < 0) {
		uint64_t pages;

		pt_meter_take(&r->vm->meter, r->w, 0, 0, &pages, NULL);
	}
	return ret < 0 ? ret : 0;
}

int pt_rate_start(struct pt_service *s, struct pt_req *rq,
		  const Ptrack__Control__V1__DirtyRateRequest *q)
{
	struct pt_vm *vm = pt_vm_find(s, q->vm);
	struct pt_rate_req *r;
	int ret;

	/* A libvirt guest that does not push its log: libvirt measures. */
	if (!vm)
		return pt_virt_rate_start(s, rq, q);
	if (!mode_ok(vm, q->mode))
		return pt_req_error(rq, -EOPNOTSUPP,
				    "VM '%s' has a %s dirty log", q->vm,
				    pt_vm_kind(vm));
	if (migrating(vm))
		return pt_req_error(
			rq, -EBUSY,
			"VM '%s' is migrating: its rate per round is in ptrack_vm_dirty_rate_bytes_per_second",
			q->vm);
	if (q->vcpu && !vm->meter.per_vcpu)
		return pt_req_error(
			rq, -EOPNOTSUPP,
			"per-vCPU rates need a dirty ring; '%s' has a %s log",
			q->vm, pt_vm_kind(vm));
	r = calloc(1, sizeof(*r));
	if (!r)
		return pt_req_error(rq, -ENOMEM, "out of memory");
	r->vm = vm;
	r->vcpu = q->vcpu;
	ret = rate_begin(r, q->seconds ? q->seconds : 1);
	if (ret) {
		free(r);
		return pt_req_error(rq, ret, "dirtyrate '%s': %s", q->vm,
				    strerror(-ret));
	}
	pt_req_keep(&r->req, rq);
	r->next = s->rates;
	s->rates = r;
	return 0;
}
