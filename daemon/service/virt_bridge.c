// SPDX-License-Identifier: MIT
/*
 * libvirt's event loop interface (virEventRegisterImpl) served by the
 * service's sd-event loop, so there is no second loop thread.
 */
#include "service/service.h"

#include <errno.h>
#include <fcntl.h>
#include <libvirt/libvirt.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "service/log.h"

/*
 * libvirt calls the event interface from any thread: the remote driver
 * from the caller's, an embedded driver (qemu:///embed) also from its own
 * workers. sd-event is not thread-safe, so only the loop's thread (the one
 * that called pt_virt_bridge()) touches it. Other threads queue their
 * request and wake the loop through an eventfd; the loop applies the queue
 * before anything else, and before dispatching any handle, so a handle
 * removed by another thread is never called after its removal was seen.
 * Handles watch a dup of libvirt's fd: libvirt closes its fd right after
 * removing the handle, possibly before the loop has applied the removal.
 */

struct vhandle {
	int id;
	int fd; /* libvirt's, passed back to the callback */
	int dupfd; /* ours, the one sd-event watches */
	int events;
	sd_event_source *es;
	virEventHandleCallback cb;
	virEventTimeoutCallback tcb;
	void *opaque;
	virFreeCallback ff;
	int interval; /* timeouts: ms, -1 off */
	struct vhandle *next;
};

enum vop_kind { OP_ADD_IO, OP_UPD_IO, OP_ADD_TIME, OP_UPD_TIME, OP_REMOVE };

struct vop {
	enum vop_kind kind;
	int id, fd, arg; /* arg: events or ms */
	virEventHandleCallback cb;
	virEventTimeoutCallback tcb;
	void *opaque;
	virFreeCallback ff;
	struct vop *next;
};

static sd_event *bridge_ev;
static pthread_t bridge_owner;
static struct vhandle *handles; /* only the loop thread */
static struct vhandle *dead; /* removed, free callback pending */
static pthread_mutex_t qlock = PTHREAD_MUTEX_INITIALIZER;
static struct vop *queue, **queue_tail = &queue; /* under qlock */
static int next_id = 1; /* under qlock */
static int wake_fd = -1;
static sd_event_source *wake_es;

static int on_loop(void)
{
	return pthread_equal(pthread_self(), bridge_owner);
}

static int new_id(void)
{
	int id;

	pthread_mutex_lock(&qlock);
	id = next_id++;
	pthread_mutex_unlock(&qlock);
	return id;
}

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

static void apply_queue(void);

static int on_io(sd_event_source *es, int fd, uint32_t revents, void *arg)
{
	struct vhandle *h = arg;
	int id = h->id;

	(void)es;
	(void)fd;
	apply_queue();
	if (find(id) == h)
		h->cb(h->id, h->fd, from_epoll(revents), h->opaque);
	return 0;
}

static int on_timeout(sd_event_source *es, uint64_t usec, void *arg)
{
	struct vhandle *h = arg;
	int id = h->id;

	(void)usec;
	apply_queue();
	if (find(id) != h)
		return 0;
	/* Re-arm first: the callback may update or remove this timeout. */
	sd_event_source_set_time_relative(es, (uint64_t)h->interval * 1000);
	sd_event_source_set_enabled(es, SD_EVENT_ON);
	h->tcb(h->id, h->opaque);
	return 0;
}

/* (Re)creates @h's source in the bridge's loop, in its current state. */
static int attach(struct vhandle *h)
{
	int ret;

	if (h->tcb) {
		ret = sd_event_add_time_relative(bridge_ev, &h->es,
						 CLOCK_MONOTONIC, 0, 1000,
						 on_timeout, h);
		if (ret < 0)
			return ret;
		if (h->interval < 0)
			return sd_event_source_set_enabled(h->es, SD_EVENT_OFF);
		sd_event_source_set_time_relative(h->es,
						  (uint64_t)h->interval * 1000);
		return sd_event_source_set_enabled(h->es, SD_EVENT_ON);
	}
	ret = sd_event_add_io(bridge_ev, &h->es, h->dupfd, to_epoll(h->events),
			      on_io, h);
	if (ret < 0)
		return ret;
	if (!h->events)
		sd_event_source_set_enabled(h->es, SD_EVENT_OFF);
	return 0;
}

static void do_add(const struct vop *op)
{
	struct vhandle *h = calloc(1, sizeof(*h));

	if (!h)
		goto fail;
	h->id = op->id;
	h->fd = op->fd;
	h->dupfd = -1;
	h->events = op->arg;
	h->interval = op->arg;
	h->cb = op->cb;
	h->tcb = op->tcb;
	h->opaque = op->opaque;
	h->ff = op->ff;
	if (!h->tcb) {
		h->dupfd = fcntl(op->fd, F_DUPFD_CLOEXEC, 3);
		if (h->dupfd < 0)
			goto fail;
	}
	if (attach(h) < 0)
		goto fail;
	h->next = handles;
	handles = h;
	return;
fail:
	pt_log(LOG_ERR, "libvirt event bridge: cannot watch %s %d",
	       op->tcb ? "timeout" : "fd", op->fd);
	if (h && h->dupfd >= 0)
		close(h->dupfd);
	free(h);
}

static void do_update(int id, int arg)
{
	struct vhandle *h = find(id);

	if (!h || !h->es)
		return;
	if (h->tcb) {
		h->interval = arg;
		if (arg < 0) {
			sd_event_source_set_enabled(h->es, SD_EVENT_OFF);
			return;
		}
		sd_event_source_set_time_relative(h->es, (uint64_t)arg * 1000);
		sd_event_source_set_enabled(h->es, SD_EVENT_ON);
		return;
	}
	h->events = arg;
	if (arg) {
		sd_event_source_set_io_events(h->es, to_epoll(arg));
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

static int do_remove(int id)
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
	if (h->dupfd >= 0)
		close(h->dupfd);
	h->dupfd = -1;
	h->next = dead;
	dead = h;
	if (sd_event_add_defer(bridge_ev, &d, on_deferred_free, h) >= 0)
		h->es = d;
	return 0;
}

static void apply(const struct vop *op)
{
	switch (op->kind) {
	case OP_ADD_IO:
	case OP_ADD_TIME:
		do_add(op);
		break;
	case OP_UPD_IO:
	case OP_UPD_TIME:
		do_update(op->id, op->arg);
		break;
	case OP_REMOVE:
		do_remove(op->id);
		break;
	}
}

/* Only on the loop thread: what other threads asked for, in order. */
static void apply_queue(void)
{
	struct vop *q;

	pthread_mutex_lock(&qlock);
	q = queue;
	queue = NULL;
	queue_tail = &queue;
	pthread_mutex_unlock(&qlock);
	while (q) {
		struct vop *n = q->next;

		apply(q);
		free(q);
		q = n;
	}
}

static int on_wake(sd_event_source *es, int fd, uint32_t revents, void *arg)
{
	uint64_t n;

	(void)es;
	(void)revents;
	(void)arg;
	if (read(fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		return 0;
	apply_queue();
	return 0;
}

/* Applies @op now on the loop thread, else queues it for the loop. */
static int submit(const struct vop *op)
{
	struct vop *q;
	uint64_t one = 1;

	if (on_loop()) {
		apply_queue();
		if (op->kind == OP_REMOVE)
			return do_remove(op->id);
		apply(op);
		return 0;
	}
	q = malloc(sizeof(*q));
	if (!q)
		return -1;
	*q = *op;
	q->next = NULL;
	pthread_mutex_lock(&qlock);
	*queue_tail = q;
	queue_tail = &q->next;
	pthread_mutex_unlock(&qlock);
	if (write(wake_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		return -1;
	return 0;
}

static int add_handle(int fd, int events, virEventHandleCallback cb,
		      void *opaque, virFreeCallback ff)
{
	struct vop op = { .kind = OP_ADD_IO,
			  .fd = fd,
			  .arg = events,
			  .cb = cb,
			  .opaque = opaque,
			  .ff = ff };

	op.id = new_id();
	return submit(&op) ? -1 : op.id;
}

static void update_handle(int id, int events)
{
	struct vop op = { .kind = OP_UPD_IO, .id = id, .arg = events };

	submit(&op);
}

static int remove_handle(int id)
{
	struct vop op = { .kind = OP_REMOVE, .id = id };

	return submit(&op);
}

static int add_timeout(int ms, virEventTimeoutCallback cb, void *opaque,
		       virFreeCallback ff)
{
	struct vop op = { .kind = OP_ADD_TIME,
			  .fd = -1,
			  .arg = ms,
			  .tcb = cb,
			  .opaque = opaque,
			  .ff = ff };

	op.id = new_id();
	return submit(&op) ? -1 : op.id;
}

static void update_timeout(int id, int ms)
{
	struct vop op = { .kind = OP_UPD_TIME, .id = id, .arg = ms };

	submit(&op);
}

static int remove_timeout(int id)
{
	struct vop op = { .kind = OP_REMOVE, .id = id };

	return submit(&op);
}

/* Runs the free callbacks the loop did not get to (at shutdown). */
void pt_virt_bridge_reap(void)
{
	apply_queue();
	while (dead)
		dead_free(dead);
}

/*
 * libvirt takes one event implementation per process. A later service in
 * the same process (tests) moves the bridge to its loop and thread: the
 * live handles, which libvirt's drivers may keep across connections, get
 * their sources again in the new loop. Call it from the thread that will
 * run @ev.
 */
int pt_virt_bridge(sd_event *ev)
{
	static int registered;
	sd_event_source *w;
	int ret;

	if (bridge_ev == ev) {
		bridge_owner = pthread_self();
		return 0;
	}
	if (wake_fd < 0) {
		wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (wake_fd < 0)
			return -errno;
	}
	ret = sd_event_add_io(ev, &w, wake_fd, EPOLLIN, on_wake, NULL);
	if (ret < 0)
		return ret;
	sd_event_source_disable_unref(wake_es);
	wake_es = w;
	for (struct vhandle *h = handles; h; h = h->next)
		h->es = sd_event_source_disable_unref(h->es);
	while (dead)
		dead_free(dead);
	if (bridge_ev)
		sd_event_unref(bridge_ev);
	bridge_ev = sd_event_ref(ev);
	bridge_owner = pthread_self();
	for (struct vhandle *h = handles; h; h = h->next)
		if (attach(h) < 0)
			pt_log(LOG_ERR, "libvirt event bridge: lost handle %d",
			       h->id);
	apply_queue();
	if (!registered)
		virEventRegisterImpl(add_handle, update_handle, remove_handle,
				     add_timeout, update_timeout,
				     remove_timeout);
	registered = 1;
	return 0;
}
