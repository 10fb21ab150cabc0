// SPDX-License-Identifier: MIT
/*
 * libvirt-driven (QEMU) migrations of every domain, registered with
 * libptrack or not: their job statistics (virDomainGetJobStats) become the
 * same metrics as ptrack's own migrations, with engine="libvirt". A job is
 * noticed by its events (migration iteration, a domain started or paused
 * for a migration, job completed) and polled once per sample period while
 * it runs; when libvirt reports no job any more, the completed job's
 * statistics (VIR_DOMAIN_JOB_STATS_COMPLETED) give its result.
 */
#include "service/service.h"

#include <libvirt/libvirt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "service/log.h"

/* Jobs of domains that left are kept for their last figures, up to: */
#define PT_VJOB_MAX 64

static struct pt_vjob *vjob_get(struct pt_service *s, virDomainPtr d)
{
	char uuid[VIR_UUID_STRING_BUFLEN];
	struct pt_vjob *j, **pp;
	unsigned int n = 0;

	if (virDomainGetUUIDString(d, uuid))
		return NULL;
	for (j = s->vjobs; j; j = j->next)
		if (!strcmp(j->uuid, uuid))
			return j;
	/* Forget the oldest ended job beyond the bound. */
	for (pp = &s->vjobs; *pp; pp = &(*pp)->next)
		if (++n >= PT_VJOB_MAX && !(*pp)->active) {
			j = *pp;
			*pp = j->next;
			free(j);
			break;
		}
	j = calloc(1, sizeof(*j));
	if (!j)
		return NULL;
	snprintf(j->uuid, sizeof(j->uuid), "%s", uuid);
	j->next = s->vjobs;
	s->vjobs = j;
	return j;
}

static double ull(virTypedParameterPtr p, int n, const char *name)
{
	unsigned long long v;

	return virTypedParamsGetULLong(p, n, name, &v) == 1 ? (double)v : NAN;
}

/* libvirt's figures into ours: bytes, bytes/s, seconds. */
static void fill(struct pt_vjob *j, virTypedParameterPtr p, int n)
{
	double page = ull(p, n, VIR_DOMAIN_JOB_MEMORY_PAGE_SIZE);
	double dirty = ull(p, n, VIR_DOMAIN_JOB_MEMORY_DIRTY_RATE);
	double ms;

	j->fig[PT_MF_TOTAL] = ull(p, n, VIR_DOMAIN_JOB_DATA_TOTAL);
	j->fig[PT_MF_PROCESSED] = ull(p, n, VIR_DOMAIN_JOB_DATA_PROCESSED);
	j->fig[PT_MF_REMAINING] = ull(p, n, VIR_DOMAIN_JOB_DATA_REMAINING);
	j->fig[PT_MF_XFER_RATE] = ull(p, n, VIR_DOMAIN_JOB_MEMORY_BPS);
	/* Pages per second (QEMU's dirty-pages-rate). */
	j->fig[PT_MF_DIRTY_RATE] = isnan(page) ? NAN : dirty * page;
	j->fig[PT_MF_ROUNDS] = ull(p, n, VIR_DOMAIN_JOB_MEMORY_ITERATION);
	ms = ull(p, n, VIR_DOMAIN_JOB_TIME_ELAPSED);
	/* The job may be noticed late (its first event is an iteration). */
	if (!isnan(ms))
		j->fig[PT_MF_START] =
			(j->active ? pt_unix_now() : j->fig[PT_MF_END]) -
			ms / 1000.0;
	ms = ull(p, n, VIR_DOMAIN_JOB_DOWNTIME);
	/* While the job runs, libvirt's downtime is QEMU's expected one. */
	if (j->active) {
		j->fig[PT_MF_EXP_DOWNTIME] = ms / 1000.0;
	} else {
		j->fig[PT_MF_DOWNTIME] = ms / 1000.0;
		j->fig[PT_MF_EXP_DOWNTIME] = NAN;
	}
}

static void begin(struct pt_service *s, struct pt_vjob *j, virDomainPtr d,
		  int op)
{
	if (j->active)
		return;
	for (int i = 0; i < PT_MF_N; i++)
		j->fig[i] = NAN;
	snprintf(j->domain, sizeof(j->domain), "%s", virDomainGetName(d));
	j->incoming = op == VIR_DOMAIN_JOB_OPERATION_MIGRATION_IN;
	j->active = 1;
	j->none_polls = 0;
	j->state = PT_MIG_ACTIVE;
	j->fig[PT_MF_START] = pt_unix_now();
	pt_logx(LOG_INFO, j->domain, 0, PT_MSGID_LIBVIRT_JOB,
		"libvirt %s migration job followed",
		j->incoming ? "incoming" : "outgoing");
	pt_virt_jobs_arm(s);
}

static void end(struct pt_service *s, struct pt_vjob *j, enum pt_mig_state st)
{
	if (!j->active)
		return;
	j->active = 0;
	j->state = st;
	if (isnan(j->fig[PT_MF_END]))
		j->fig[PT_MF_END] = pt_unix_now();
	if (st == PT_MIG_COMPLETED)
		j->fig[PT_MF_REMAINING] = 0;
	s->libvirt_total[j->incoming][st]++;
	pt_logx(st == PT_MIG_COMPLETED ? LOG_INFO : LOG_WARNING, j->domain, 0,
		PT_MSGID_LIBVIRT_JOB, "libvirt migration job %s",
		pt_mig_state_name(st));
}

static enum pt_mig_state result(int type)
{
	if (type == VIR_DOMAIN_JOB_COMPLETED)
		return PT_MIG_COMPLETED;
	if (type == VIR_DOMAIN_JOB_CANCELLED)
		return PT_MIG_CANCELLED;
	return PT_MIG_FAILED;
}

static int is_migration(int op)
{
	return op == VIR_DOMAIN_JOB_OPERATION_MIGRATION_IN ||
	       op == VIR_DOMAIN_JOB_OPERATION_MIGRATION_OUT;
}

/* Final figures: the job-completed event or the completed job's stats. */
static void final(struct pt_service *s, struct pt_vjob *j, virDomainPtr d,
		  virTypedParameterPtr p, int n, enum pt_mig_state st, int op)
{
	/* Seen ending already (the event after a poll, or the reverse):
	 * the figures are refreshed, the job is not counted twice. */
	if (!j->active && j->state == st &&
	    j->fig[PT_MF_END] > pt_unix_now() - 60) {
		fill(j, p, n);
		return;
	}
	begin(s, j, d, op);
	j->fig[PT_MF_END] = pt_unix_now();
	j->active = 0;
	fill(j, p, n);
	j->active = 1;
	end(s, j, st);
}

void pt_virt_job_completed(struct pt_service *s, virDomainPtr d,
			   virTypedParameterPtr p, int n)
{
	int op = VIR_DOMAIN_JOB_OPERATION_UNKNOWN;
	struct pt_vjob *j;

	virTypedParamsGetInt(p, n, VIR_DOMAIN_JOB_OPERATION, &op);
	if (!is_migration(op))
		return;
	j = vjob_get(s, d);
	if (j)
		final(s, j, d, p, n, PT_MIG_COMPLETED, op);
}

/* The destination: libvirt 9 has no job statistics there ("available only
 * on the source host"), so the domain's events mark the incoming job. */
void pt_virt_job_incoming(struct pt_service *s, virDomainPtr d, int started)
{
	struct pt_vjob *j = vjob_get(s, d);
	unsigned long mem;

	if (!j)
		return;
	if (started) {
		begin(s, j, d, VIR_DOMAIN_JOB_OPERATION_MIGRATION_IN);
		mem = virDomainGetMaxMemory(d); /* KiB */
		if (mem)
			j->fig[PT_MF_TOTAL] = (double)mem * 1024;
	} else if (j->active && j->incoming) {
		end(s, j, PT_MIG_COMPLETED);
	}
}

/* Polls after the job is gone before calling it failed, when libvirt has
 * no completed statistics to say how it ended. */
#define PT_VJOB_NONE_POLLS 10

void pt_virt_job_poll(struct pt_service *s, virDomainPtr d)
{
	virTypedParameterPtr p = NULL;
	int n = 0, type, op = VIR_DOMAIN_JOB_OPERATION_UNKNOWN;
	struct pt_vjob *j;

	if (virDomainGetJobStats(d, &type, &p, &n, 0) < 0)
		return;
	virTypedParamsGetInt(p, n, VIR_DOMAIN_JOB_OPERATION, &op);
	j = vjob_get(s, d);
	if (!j)
		goto out;
	if (type != VIR_DOMAIN_JOB_NONE && (is_migration(op) || j->active)) {
		if (is_migration(op))
			begin(s, j, d, op);
		j->none_polls = 0;
		fill(j, p, n);
	} else if (j->active) {
		/* Over: the completed job says how it ended. */
		virTypedParamsFree(p, n);
		p = NULL;
		n = 0;
		if (virDomainGetJobStats(d, &type, &p, &n,
					 VIR_DOMAIN_JOB_STATS_COMPLETED) == 0 &&
		    type != VIR_DOMAIN_JOB_NONE)
			final(s, j, d, p, n, result(type),
			      j->incoming
				      ? VIR_DOMAIN_JOB_OPERATION_MIGRATION_IN
				      : VIR_DOMAIN_JOB_OPERATION_MIGRATION_OUT);
		else if (++j->none_polls > PT_VJOB_NONE_POLLS)
			end(s, j, PT_MIG_FAILED);
	}
out:
	virTypedParamsFree(p, n);
}

int pt_virt_jobs_active(const struct pt_service *s)
{
	for (const struct pt_vjob *j = s->vjobs; j; j = j->next)
		if (j->active)
			return 1;
	return 0;
}

/* A domain gone from this host (migrated away, destroyed): its job, if
 * one was running and did not report its end, ended with it. */
void pt_virt_job_gone(struct pt_service *s, const char *uuid, int migrated)
{
	for (struct pt_vjob *j = s->vjobs; j; j = j->next)
		if (!strcmp(j->uuid, uuid))
			end(s, j, migrated ? PT_MIG_COMPLETED : PT_MIG_FAILED);
}

void pt_virt_jobs_free(struct pt_service *s)
{
	while (s->vjobs) {
		struct pt_vjob *j = s->vjobs;

		s->vjobs = j->next;
		free(j);
	}
}
