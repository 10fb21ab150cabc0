// SPDX-License-Identifier: MIT
/*
 * Peer sessions (the receiving side) started from the control socket. The
 * engine blocks, so each runs in a worker thread and reports its end to
 * the loop through an eventfd.
 */
#include "service/service.h"

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "service/log.h"

/*
 * Where a peer session may write: under the state directory only. The
 * unit leaves nothing else writable (ProtectSystem=strict, and /tmp is
 * the service's private one), and a member of the control group must not
 * have root's ptrackd write wherever it likes. A relative @in is a name
 * under the state directory. Returns 0 with @out set (empty for an empty
 * @in), or -EPERM / -ENOENT with @why set.
 */
static int dest_path(const char *state_dir, const char *in, char *out,
		     size_t len, char *why, size_t whylen)
{
	char base[PATH_MAX], dir[PATH_MAX], copy[PATH_MAX], *d;
	size_t n;
	int w;

	out[0] = '\0';
	if (!in[0])
		return 0;
	if (!realpath(state_dir, base)) {
		snprintf(why, whylen, "state directory %s: %s", state_dir,
			 strerror(errno));
		return -ENOENT;
	}
	if (in[0] == '/')
		w = snprintf(copy, sizeof(copy), "%s", in);
	else
		w = snprintf(copy, sizeof(copy), "%s/%s", base, in);
	if (w < 0 || (size_t)w >= sizeof(copy))
		goto out_long;
	snprintf(dir, sizeof(dir), "%s", copy);
	d = dirname(dir);
	if (!realpath(d, dir)) {
		snprintf(why, whylen, "%s: %s", d, strerror(errno));
		return -ENOENT;
	}
	n = strlen(base);
	if (strncmp(dir, base, n) != 0 || (dir[n] && dir[n] != '/')) {
		snprintf(why, whylen,
			 "%s is outside ptrackd's state directory %s (the only "
			 "place the service may write): give a name under it",
			 in, base);
		return -EPERM;
	}
	w = snprintf(out, len, "%s/%s", dir, basename(copy));
	if (w < 0 || (size_t)w >= len)
		goto out_long;
	return 0;
out_long:
	snprintf(why, whylen, "%s: path too long", in);
	return -ENAMETOOLONG;
}

static void *peer_thread(void *arg)
{
	struct pt_peer_job *p = arg;
	uint64_t one = 1;

	p->ret = pt_peer_run(&p->opts, &p->res);
	if (write(p->efd, &one, sizeof(one)) < 0)
		pt_log(LOG_ERR, "peer eventfd: %s", strerror(errno));
	return NULL;
}

/*
 * The session is over: its incoming VM runs the guest now (an ordinary VM
 * from here on), or it never will and is discarded.
 */
static void peer_release_vm(struct pt_peer_job *p)
{
	struct pt_vm *vm = p->vm;

	if (!vm)
		return;
	p->vm = NULL;
	vm->incoming_job = NULL;
	if (p->res.switched_over) {
		vm->src->incoming = 0;
		pt_logx(LOG_INFO, vm->src->name, 0, PT_MSGID_PEER_END,
			"migrated in: the guest runs here");
	} else if (!vm->gone) {
		vm->src->ops->stop(vm->src);
		pt_logx(LOG_WARNING, vm->src->name, 0, PT_MSGID_PEER_END,
			"incoming migration failed: guest discarded");
	}
	pt_service_changed(p->svc);
	if (vm->gone)
		pt_vm_reap(vm);
}

/* The incoming VM a session without a destination file fills: the first
 * registered and not taken. A session for another guest is refused at its
 * Hello (pt_peer_opts.incoming). */
static struct pt_vm *claim_incoming(struct pt_service *s)
{
	struct pt_vm *found = NULL;

	for (struct pt_vm *v = s->vms; v; v = v->next)
		if (!v->gone && v->src->incoming && !v->incoming_job)
			found = v; /* the list is newest first */
	return found;
}

static void peer_reply(struct pt_peer_job *p, const char *state, int final)
{
	PtCtlReply r = PTRACK__CONTROL__V1__REPLY__INIT;
	Ptrack__Control__V1__PeerReply pr =
		PTRACK__CONTROL__V1__PEER_REPLY__INIT;

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
	r.final = final;
	r.body_case = PTRACK__CONTROL__V1__REPLY__BODY_PEER;
	r.peer = &pr;
	pt_req_reply(&p->req, &r);
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
	p->done = 1;
	/* Nothing stays listening once the session is over. */
	if (p->lfd >= 0)
		close(p->lfd);
	p->lfd = -1;
	p->end_time = pt_unix_now();
	p->svc->incoming_total[p->ret ? PT_MIG_FAILED : PT_MIG_COMPLETED]++;
	sd_event_source_set_enabled(es, SD_EVENT_OFF);
	peer_release_vm(p);
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
		peer_release_vm(p);
	} else if (p->vm) {
		p->vm->incoming_job = NULL; /* never started: still free */
	}
	pt_req_drop(&p->req);
	sd_event_source_unref(p->es);
	if (p->lfd >= 0)
		close(p->lfd);
	if (p->efd >= 0)
		close(p->efd);
	free(p);
}

/* Ended sessions stay for their metrics until the next one on the same
 * address (the current or last session per address, as for VMs). */
static void forget_ended(struct pt_service *s, const char *listen)
{
	struct pt_peer_job **pp = &s->peers;

	while (*pp) {
		struct pt_peer_job *o = *pp;

		if (o->done && !strcmp(o->listen, listen)) {
			*pp = o->next;
			pt_peer_free(o);
		} else {
			pp = &o->next;
		}
	}
}

int pt_peer_start(struct pt_service *s, struct pt_req *rq,
		  const Ptrack__Control__V1__PeerListenRequest *q)
{
	struct pt_peer_job *p = calloc(1, sizeof(*p));
	char why[PATH_MAX + 160];
	const struct pt_tls *tls;
	char err[512];
	int ret;

	if (!p)
		return pt_req_error(rq, -ENOMEM, "out of memory");
	if (pt_service_tls(s, 1, &tls, err, sizeof(err))) {
		free(p);
		return pt_req_error(rq, -EACCES, "peer listen %s: %s",
				    q->listen, err);
	}
	p->svc = s;
	p->lfd = p->efd = -1;
	snprintf(p->listen, sizeof(p->listen), "%s", q->listen);
	ret = dest_path(s->cfg.state_dir, q->mem_path ? q->mem_path : "",
			p->mem_path, sizeof(p->mem_path), why, sizeof(why));
	if (!ret)
		ret = dest_path(s->cfg.state_dir,
				q->state_dir ? q->state_dir : "", p->state_dir,
				sizeof(p->state_dir), why, sizeof(why));
	if (ret) {
		pt_peer_free(p);
		return pt_req_error(rq, ret, "peer listen: %s", why);
	}
	p->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	p->lfd = pt_tcp_listen(p->listen);
	if (p->lfd < 0 || p->efd < 0) {
		ret = p->lfd < 0 ? p->lfd : -errno;
		goto out_free;
	}
	if (!p->mem_path[0]) {
		/* Memory nobody will run or read is no migration. */
		p->vm = claim_incoming(s);
		if (!p->vm) {
			pt_peer_free(p);
			return pt_req_error(
				rq, -ENOENT,
				"peer listen %s: no incoming VM registered: "
				"start the destination VMM in incoming mode "
				"(ptrack-vmm --incoming) first, or give "
				"--mem-file to copy memory only",
				q->listen);
		}
		p->vm->incoming_job = p;
		p->opts.incoming = p->vm->src;
	}
	p->opts.lfd = p->lfd;
	p->opts.mem_path = p->mem_path[0] ? p->mem_path : NULL;
	p->opts.state_dir = p->state_dir[0] ? p->state_dir : NULL;
	p->opts.quiet = 1;
	p->opts.tls = tls;
	ret = sd_event_add_io(s->ev, &p->es, p->efd, EPOLLIN, on_peer_event, p);
	if (ret < 0)
		goto out_free;
	ret = -pthread_create(&p->th, NULL, peer_thread, p);
	if (ret)
		goto out_free;
	pt_req_keep(&p->req, rq);
	p->start_time = pt_unix_now();
	forget_ended(s, p->listen);
	p->next = s->peers;
	s->peers = p;
	peer_reply(p, "listening", 0);
	return 0;
out_free:
	pt_peer_free(p);
	return pt_req_error(rq, ret, "peer listen %s: %s", q->listen,
			    strerror(-ret));
}
