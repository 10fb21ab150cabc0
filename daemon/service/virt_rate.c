// SPDX-License-Identifier: MIT
/*
 * `ptrackctl dirtyrate DOMAIN` for a libvirt domain that is not registered
 * through libptrack (today: every QEMU guest): libvirt's own measurement,
 * virDomainStartDirtyRateCalc, then the domain's dirtyrate.* stats once
 * the period is over, answered in the same reply as ptrack's own with
 * method "libvirt". The mode follows --mode: page-sampling by default (an
 * estimate: QEMU samples 512 pages per GiB), dirty-bitmap or dirty-ring.
 */
#include "service/service.h"

#include <errno.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "service/log.h"

struct pt_vrate {
	struct pt_vrate *next;
	struct pt_service *svc;
	char uuid[VIR_UUID_STRING_BUFLEN];
	char name[256];
	int vcpu, tries;
	sd_event_source *timer;
	struct pt_req req;
};

static void vrate_free(struct pt_vrate *r)
{
	struct pt_vrate **p = &r->svc->vrates;

	while (*p && *p != r)
		p = &(*p)->next;
	if (*p)
		*p = r->next;
	sd_event_source_unref(r->timer);
	pt_req_drop(&r->req);
	free(r);
}

void pt_virt_rates_free(struct pt_service *s)
{
	while (s->vrates)
		vrate_free(s->vrates);
}

static const char *libvirt_err(void)
{
	virErrorPtr e = virGetLastError();

	return e && e->message ? e->message : "libvirt error";
}

static long long llong_of(virTypedParameterPtr p, int n, const char *k)
{
	long long v = 0;

	virTypedParamsGetLLong(p, n, k, &v);
	return v;
}

/* Answers from the dirtyrate.* stats; 1: not measured yet. */
static int answer(struct pt_vrate *r, virDomainStatsRecordPtr rec)
{
	PtCtlReply rep = PTRACK__CONTROL__V1__REPLY__INIT;
	Ptrack__Control__V1__DirtyRateReply d =
		PTRACK__CONTROL__V1__DIRTY_RATE_REPLY__INIT;
	virTypedParameterPtr p = rec->params;
	int n = rec->nparams, status = 0, period = 0;
	const char *mode = "page-sampling";
	double *vr = NULL;
	unsigned int nv = 0;

	virTypedParamsGetInt(p, n, "dirtyrate.calc_status", &status);
	if (status != 2)
		return 1;
	virTypedParamsGetString(p, n, "dirtyrate.calc_mode", &mode);
	d.vm = r->name;
	d.method = "libvirt";
	d.calc_status = 2;
	d.calc_start_time = llong_of(p, n, "dirtyrate.calc_start_time");
	virTypedParamsGetInt(p, n, "dirtyrate.calc_period", &period);
	d.calc_period = period;
	d.calc_mode = (char *)mode;
	d.megabytes_per_second =
		(double)llong_of(p, n, "dirtyrate.megabytes_per_second");
	d.bytes_per_second = d.megabytes_per_second * (1 << 20);
	if (r->vcpu) {
		char k[64];

		for (nv = 0; nv < 4096; nv++) {
			snprintf(k, sizeof(k),
				 "dirtyrate.vcpu.%u.megabytes_per_second", nv);
			if (!virTypedParamsGet(p, n, k))
				break;
		}
		vr = nv ? calloc(nv, sizeof(*vr)) : NULL;
		for (unsigned int i = 0; vr && i < nv; i++) {
			snprintf(k, sizeof(k),
				 "dirtyrate.vcpu.%u.megabytes_per_second", i);
			vr[i] = (double)llong_of(p, n, k) * (1 << 20);
		}
		d.n_vcpu_bytes_per_second = vr ? nv : 0;
		d.vcpu_bytes_per_second = vr;
	}
	rep.final = 1;
	rep.body_case = PTRACK__CONTROL__V1__REPLY__BODY_DIRTYRATE;
	rep.dirtyrate = &d;
	pt_req_reply(&r->req, &rep);
	free(vr);
	return 0;
}

static int on_done(sd_event_source *es, uint64_t usec, void *arg)
{
	struct pt_vrate *r = arg;
	virConnectPtr c = pt_virt_conn(r->svc);
	virDomainStatsRecordPtr *recs = NULL;
	virDomainPtr d = c ? virDomainLookupByUUIDString(c, r->uuid) : NULL;
	virDomainPtr doms[2] = { d, NULL };
	int more = 0;

	(void)usec;
	if (!d) {
		pt_req_error(&r->req, -ENOENT, "dirtyrate '%s': %s", r->name,
			     c ? "the domain is gone" : "libvirt went away");
		vrate_free(r);
		return 0;
	}
	if (virDomainListGetStats(doms, VIR_DOMAIN_STATS_DIRTYRATE, &recs, 0) !=
	    1) {
		pt_req_error(&r->req, -EIO, "dirtyrate '%s': %s", r->name,
			     libvirt_err());
	} else {
		more = answer(r, recs[0]);
		if (more && ++r->tries > 20) {
			pt_req_error(
				&r->req, -ETIMEDOUT,
				"dirtyrate '%s': libvirt did not finish measuring",
				r->name);
			more = 0;
		}
	}
	virDomainStatsRecordListFree(recs);
	virDomainFree(d);
	if (more) {
		/* Not measured yet: QEMU ends the period a little late. */
		sd_event_source_set_time_relative(es, 100000);
		return sd_event_source_set_enabled(es, SD_EVENT_ONESHOT);
	}
	vrate_free(r);
	return 0;
}

static unsigned int calc_flags(int mode)
{
	switch (mode) {
	case PTRACK__CONTROL__V1__DIRTY_MODE__DIRTY_MODE_BITMAP:
		return VIR_DOMAIN_DIRTYRATE_MODE_DIRTY_BITMAP;
	case PTRACK__CONTROL__V1__DIRTY_MODE__DIRTY_MODE_RING:
		return VIR_DOMAIN_DIRTYRATE_MODE_DIRTY_RING;
	default:
		return VIR_DOMAIN_DIRTYRATE_MODE_PAGE_SAMPLING;
	}
}

static virDomainPtr lookup(virConnectPtr c, const char *key)
{
	virDomainPtr d = virDomainLookupByName(c, key);

	return d ? d : virDomainLookupByUUIDString(c, key);
}

int pt_virt_rate_start(struct pt_service *s, struct pt_req *rq,
		       const Ptrack__Control__V1__DirtyRateRequest *q)
{
	virConnectPtr c = pt_virt_conn(s);
	unsigned int secs = q->seconds ? q->seconds : 1;
	struct pt_vrate *r;
	virDomainPtr d;
	int ret;

	d = c ? lookup(c, q->vm) : NULL;
	if (!d)
		return pt_req_error(
			rq, -ENOENT,
			"no VM '%s': not registered with ptrackd%s", q->vm,
			!s->cfg.libvirt_enabled ? " (libvirt is off)"
			: !c ? ", and libvirt is not connected"
			     : " nor a libvirt domain");
	r = calloc(1, sizeof(*r));
	if (!r) {
		virDomainFree(d);
		return pt_req_error(rq, -ENOMEM, "out of memory");
	}
	r->svc = s;
	r->vcpu = q->vcpu;
	snprintf(r->name, sizeof(r->name), "%s", virDomainGetName(d));
	if (virDomainGetUUIDString(d, r->uuid) ||
	    virDomainStartDirtyRateCalc(d, (int)secs, calc_flags(q->mode)) <
		    0) {
		ret = pt_req_error(rq, -EOPNOTSUPP,
				   "dirtyrate '%s' through libvirt: %s",
				   r->name, libvirt_err());
		virDomainFree(d);
		free(r);
		return ret;
	}
	virDomainFree(d);
	ret = sd_event_add_time_relative(s->ev, &r->timer, CLOCK_MONOTONIC,
					 secs * 1000000ull + 100000, 10000,
					 on_done, r);
	if (ret < 0) {
		free(r);
		return pt_req_error(rq, ret, "dirtyrate: %s", strerror(-ret));
	}
	pt_logx(LOG_INFO, r->name, 0, PT_MSGID_DIRTYRATE,
		"dirty rate of libvirt domain (not registered): "
		"virDomainStartDirtyRateCalc, %u s",
		secs);
	pt_req_keep(&r->req, rq);
	r->next = s->vrates;
	s->vrates = r;
	return 0;
}
