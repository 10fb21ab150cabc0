// SPDX-License-Identifier: MIT
/*
 * The daemon half of libptrack: registration, requests to the VMM and the
 * consumer half of the shared-memory ring. Everything the VMM wrote into
 * shared memory is checked before use: a broken VMM fails its own source,
 * never the daemon.
 */
#include "source/vmm_push.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "libptrack/shm.h"
#include "libptrack/wire.h"
#include "ptrack/libptrack.h"

struct vmm_src {
	struct pt_dirty_source src; /* first: the public face */
	int sock;
	int data_efd;
	int space_efd;
	struct ptl_shm *shm;
	uint64_t shm_size;
	uint8_t *data;
	uint64_t data_size;
	uint64_t tail;
	uint64_t seq;
	int timeout_ms;
	int dead; /* sticky error once the connection is unusable */
	int state_fd; /* blob of the last OP_SAVE_STATE reply, or -1 */
	uint64_t state_len;
	uint64_t records, bytes;
};

static struct vmm_src *to_vs(const struct pt_dirty_source *s)
{
	return (struct vmm_src *)s;
}

int pt_vmm_listen(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	int fd, ret;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	/* Only a stale socket may be replaced, never another file. */
	if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
		unlink(path);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) || listen(fd, 16)) {
		ret = -errno;
		close(fd);
		return ret;
	}
	return fd;
}

void pt_vmm_set_timeout(struct pt_dirty_source *src, int ms)
{
	to_vs(src)->timeout_ms = ms;
}

int pt_vmm_fd(const struct pt_dirty_source *src)
{
	return to_vs(src)->sock;
}

void pt_vmm_stats(const struct pt_dirty_source *src, uint64_t *records,
		  uint64_t *bytes)
{
	*records = to_vs(src)->records;
	*bytes = to_vs(src)->bytes;
}

/* --- consumer ------------------------------------------------------------- */

static const struct pt_mem_region *find_region(struct vmm_src *vs, int32_t id)
{
	size_t i;

	for (i = 0; i < vs->src.nregions; i++)
		if ((int64_t)vs->src.regions[i].id == id)
			return &vs->src.regions[i];
	return NULL;
}

/* Checks a record against the registration: -EBADMSG if it lies. */
static int check_rec(struct vmm_src *vs, const struct ptl_rec *r)
{
	uint64_t room = (r->len - sizeof(*r)) / 8, pages;
	const struct pt_mem_region *reg;

	switch (r->type) {
	case PTL_REC_PAD:
		return 0;
	case PTL_REC_BITMAP:
		reg = find_region(vs, r->id);
		if (!reg)
			return -EBADMSG;
		pages = reg->size / reg->page_size;
		if (r->first > pages || r->count > pages - r->first ||
		    (r->count + 63) / 64 > room)
			return -EBADMSG;
		return 0;
	case PTL_REC_RING:
		if (r->count > room || r->id < -1 ||
		    r->id >= (int32_t)vs->src.vcpus)
			return -EBADMSG;
		return 0;
	case PTL_REC_ALL:
		return find_region(vs, r->id) ? 0 : -EBADMSG;
	default:
		return -EBADMSG;
	}
}

static int feed(const struct ptl_rec *r, const uint64_t *body,
		struct pt_dirty_sink *sink)
{
	switch (r->type) {
	case PTL_REC_BITMAP:
		return sink->ops->bitmap(sink, r->id, r->first, r->count, body);
	case PTL_REC_RING:
		return sink->ops->ring(sink, r->id, body, r->count);
	case PTL_REC_ALL:
		return sink->ops->all(sink, r->id);
	default:
		return 0;
	}
}

static const uint64_t *body_of(const struct vmm_src *vs, uint64_t pos)
{
	return (const uint64_t *)(vs->data + pos + sizeof(struct ptl_rec));
}

/*
 * Feeds every committed record to @sink (NULL: discard) and hands the
 * space back. A sink error is kept in *@sink_err and the records after it
 * are still consumed, so the ring stays in step with the VMM.
 */
static int drain(struct vmm_src *vs, struct pt_dirty_sink *sink, int *sink_err)
{
	uint64_t head = __atomic_load_n(&vs->shm->head, __ATOMIC_ACQUIRE);
	uint64_t one = 1, start = vs->tail;
	struct ptl_rec r;
	int ret;

	if (head - vs->tail > vs->data_size || head < vs->tail)
		return -EBADMSG;
	while (vs->tail != head) {
		uint64_t pos = vs->tail % vs->data_size;
		uint64_t contig = vs->data_size - pos;

		if (contig < sizeof(r)) {
			if (head - vs->tail < contig)
				return -EBADMSG;
			vs->tail += contig;
			continue;
		}
		/* Copy the header: the VMM could change it under us. */
		memcpy(&r, vs->data + pos, sizeof(r));
		if (r.len < sizeof(r) || r.len % 8 || r.len > contig ||
		    r.len > head - vs->tail)
			return -EBADMSG;
		ret = check_rec(vs, &r);
		if (ret)
			return ret;
		if (sink && !*sink_err)
			*sink_err = feed(&r, body_of(vs, pos), sink);
		if (r.type != PTL_REC_PAD)
			vs->records++;
		vs->tail += r.len;
	}
	vs->bytes += vs->tail - start;
	__atomic_store_n(&vs->shm->tail, vs->tail, __ATOMIC_RELEASE);
	if (write(vs->space_efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		return -errno;
	return 0;
}

/* --- requests ------------------------------------------------------------- */

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Reads the VMM's reply to the pending request into *@status; a state
 * blob that came with it goes to vs->state_fd and vs->state_len. */
static int read_reply(struct vmm_src *vs, int *status)
{
	int fds[1], nfds, ret;
	ptl_msg *m;

	ret = ptl_recv(vs->sock, &m, fds, 1, &nfds);
	if (ret)
		return ret;
	if (m->body_case != PTRACK__VMM__V1__VMM_MSG__BODY_REPLY ||
	    m->reply->seq != vs->seq || m->reply->status > 0) {
		ptl_msg_free(m);
		if (nfds)
			close(fds[0]);
		return -EBADMSG;
	}
	*status = m->reply->status;
	if (vs->state_fd >= 0)
		close(vs->state_fd);
	vs->state_fd = nfds ? fds[0] : -1;
	vs->state_len = m->reply->state_len;
	ptl_msg_free(m);
	return 0;
}

/*
 * Waits for the reply, feeding shared-memory records to @sink meanwhile.
 * Returns a transport error, or 0 with the VMM's answer in *@status and
 * the sink's first error in *@sink_err.
 */
static int wait_reply(struct vmm_src *vs, struct pt_dirty_sink *sink,
		      int *status, int *sink_err)
{
	int64_t deadline = now_ms() + vs->timeout_ms;
	struct pollfd p[2] = {
		{ .fd = vs->sock, .events = POLLIN },
		{ .fd = vs->data_efd, .events = POLLIN },
	};
	uint64_t v;
	int ret;

	for (;;) {
		int64_t left = deadline - now_ms();

		if (left <= 0)
			return -ETIMEDOUT;
		ret = poll(p, 2, (int)left);
		if (ret < 0 && errno != EINTR)
			return -errno;
		if (ret <= 0)
			continue;
		if (p[1].revents & POLLIN) {
			(void)!read(vs->data_efd, &v, sizeof(v));
			ret = drain(vs, sink, sink_err);
			if (ret)
				return ret;
		}
		if (p[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			ret = read_reply(vs, status);
			if (ret)
				return ret;
			/* Records committed before the reply: take them. */
			return drain(vs, sink, sink_err);
		}
	}
}

/*
 * One request/reply exchange. A transport failure (disconnect, timeout, a
 * malformed message or record) makes the source dead: later requests fail
 * at once instead of waiting on a broken VMM. The VMM's own error answers
 * and sink errors leave it usable.
 */
static int request_fd(struct vmm_src *vs, int op, struct pt_dirty_sink *sink,
		      int fd, uint64_t len)
{
	int status = 0, sink_err = 0, ret;

	if (vs->dead)
		return vs->dead;
	ret = fd >= 0 ? ptl_send_request_state(vs->sock, ++vs->seq, op, fd, len)
		      : ptl_send_request(vs->sock, ++vs->seq, op);
	if (!ret)
		ret = wait_reply(vs, sink, &status, &sink_err);
	if (ret) {
		vs->dead = ret;
		return ret;
	}
	return status ? status : sink_err;
}

static int request(struct vmm_src *vs, int op, struct pt_dirty_sink *sink)
{
	return request_fd(vs, op, sink, -1, 0);
}

static int vs_start(struct pt_dirty_source *s)
{
	return request(to_vs(s), PTRACK__VMM__V1__OP__OP_START, NULL);
}

static int vs_harvest(struct pt_dirty_source *s, struct pt_dirty_sink *sink)
{
	return request(to_vs(s), PTRACK__VMM__V1__OP__OP_HARVEST, sink);
}

static int vs_pause(struct pt_dirty_source *s)
{
	return request(to_vs(s), PTRACK__VMM__V1__OP__OP_PAUSE, NULL);
}

static int vs_resume(struct pt_dirty_source *s)
{
	return request(to_vs(s), PTRACK__VMM__V1__OP__OP_RESUME, NULL);
}

static int vs_stop(struct pt_dirty_source *s)
{
	return request(to_vs(s), PTRACK__VMM__V1__OP__OP_STOP, NULL);
}

static int vs_save_state(struct pt_dirty_source *s, void **blob, size_t *len)
{
	struct vmm_src *vs = to_vs(s);
	int ret = request(vs, PTRACK__VMM__V1__OP__OP_SAVE_STATE, NULL);

	*blob = NULL;
	*len = 0;
	if (!ret && vs->state_fd < 0)
		ret = -EBADMSG;
	if (!ret)
		ret = ptl_state_read(vs->state_fd, vs->state_len, PTL_STATE_MAX,
				     blob);
	if (!ret)
		*len = vs->state_len;
	if (vs->state_fd >= 0)
		close(vs->state_fd);
	vs->state_fd = -1;
	return ret;
}

static int vs_load_state(struct pt_dirty_source *s, const void *blob,
			 size_t len)
{
	struct vmm_src *vs = to_vs(s);
	int fd, ret;

	if (!s->incoming)
		return -EINVAL;
	fd = ptl_state_memfd(blob, len);
	if (fd < 0)
		return fd;
	ret = request_fd(vs, PTRACK__VMM__V1__OP__OP_LOAD_STATE, NULL, fd, len);
	close(fd);
	return ret;
}

static int vs_throttle(struct pt_dirty_source *s, unsigned int pct)
{
	struct vmm_src *vs = to_vs(s);
	int status = 0, sink_err = 0, ret;

	if (vs->dead)
		return vs->dead;
	ret = ptl_send_request_throttle(vs->sock, ++vs->seq, pct);
	if (!ret)
		ret = wait_reply(vs, NULL, &status, &sink_err);
	if (ret) {
		vs->dead = ret;
		return ret;
	}
	return status;
}

static void vs_release(struct pt_dirty_source *s)
{
	struct vmm_src *vs = to_vs(s);
	size_t i;

	if (!vs)
		return;
	for (i = 0; i < s->nregions; i++) {
		struct pt_mem_region *r = &s->regions[i];

		if (r->hva)
			munmap(r->hva, r->size);
		if (r->fd >= 0)
			close(r->fd);
	}
	free(s->regions);
	if (vs->shm)
		munmap(vs->shm, vs->shm_size);
	if (vs->data_efd >= 0)
		close(vs->data_efd);
	if (vs->space_efd >= 0)
		close(vs->space_efd);
	if (vs->sock >= 0)
		close(vs->sock);
	if (vs->state_fd >= 0)
		close(vs->state_fd);
	free(vs);
}

static const struct pt_dirty_source_ops vmm_src_ops = {
	.start = vs_start,
	.harvest = vs_harvest,
	.pause = vs_pause,
	.resume = vs_resume,
	.stop = vs_stop,
	.release = vs_release,
	.save_state = vs_save_state,
	.load_state = vs_load_state,
	.throttle = vs_throttle,
};

/* --- registration --------------------------------------------------------- */

/*
 * Memory we map from a VMM must not shrink under us (a store or load past
 * the end is a SIGBUS that would take the whole service down): a memfd
 * sealed with F_SEAL_SHRINK, as QEMU's memory-backend-memfd and libptrack
 * make them. Regular files and unsealed memfds are refused.
 */
static int check_sealed(int fd)
{
	int seals = fcntl(fd, F_GET_SEALS);

	return seals >= 0 && (seals & F_SEAL_SHRINK) ? 0 : -EPERM;
}

static int map_shm(struct vmm_src *vs, int fd, uint64_t size)
{
	struct stat st;

	if (check_sealed(fd))
		return -EPERM;
	if (fstat(fd, &st) || (uint64_t)st.st_size != size ||
	    size < PTL_SHM_MIN || size > PTL_SHM_MAX || size % 4096)
		return -EINVAL;
	vs->shm = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (vs->shm == MAP_FAILED) {
		vs->shm = NULL;
		return -errno;
	}
	vs->shm_size = size;
	if (vs->shm->magic != PTL_SHM_MAGIC ||
	    vs->shm->version != PTL_SHM_VERSION || vs->shm->size != size ||
	    vs->shm->data_off != PTL_SHM_HDR_SIZE ||
	    vs->shm->data_size != size - PTL_SHM_HDR_SIZE ||
	    vs->shm->head != 0 || vs->shm->tail != 0)
		return -EINVAL;
	vs->data = (uint8_t *)vs->shm + PTL_SHM_HDR_SIZE;
	vs->data_size = vs->shm->data_size;
	return 0;
}

static int map_region(struct pt_mem_region *r, const Ptrack__Vmm__V1__Region *m,
		      int incoming)
{
	struct stat st;

	r->id = m->id;
	r->page_size = m->page_size;
	r->gpa_base = m->gpa_base;
	r->size = m->size;
	r->offset = m->fd_offset;
	if (m->page_size != 4096 || !m->size || m->size % m->page_size ||
	    m->gpa_base % m->page_size || m->fd_offset % 4096)
		return -EINVAL;
	if (check_sealed(r->fd))
		return -EPERM;
	if (fstat(r->fd, &st) || m->fd_offset + m->size < m->size ||
	    (uint64_t)st.st_size < m->fd_offset + m->size)
		return -EINVAL;
	/* Only an incoming VM's memory is ours to write. */
	r->hva = mmap(NULL, m->size, PROT_READ | (incoming ? PROT_WRITE : 0),
		      MAP_SHARED, r->fd, m->fd_offset);
	if (r->hva == MAP_FAILED) {
		r->hva = NULL;
		return -errno;
	}
	return 0;
}

/* Unique ids and guest-physical ranges that neither wrap nor overlap. */
static bool regions_sane(const Ptrack__Vmm__V1__RegisterVm *reg)
{
	const Ptrack__Vmm__V1__Region *a, *b;
	size_t i, j;

	for (i = 0; i < reg->n_regions; i++) {
		a = reg->regions[i];
		if (a->gpa_base + a->size < a->gpa_base)
			return false;
		for (j = 0; j < i; j++) {
			b = reg->regions[j];
			if (a->id == b->id ||
			    (a->gpa_base < b->gpa_base + b->size &&
			     b->gpa_base < a->gpa_base + a->size))
				return false;
		}
	}
	return true;
}

static int check_register(const Ptrack__Vmm__V1__RegisterVm *reg, int nfds)
{
	if (reg->version != 1)
		return -EPROTONOSUPPORT;
	if (!reg->n_regions || reg->n_regions > PTL_FDS_MAX - 3 ||
	    nfds != 3 + (int)reg->n_regions || reg->uuid.len != 16 ||
	    !reg->vcpus || reg->vcpus > 4096 || strlen(reg->name) > 63 ||
	    !regions_sane(reg))
		return -EINVAL;
	if (reg->kind != PTRACK__VMM__V1__DIRTY_KIND__DIRTY_KIND_BITMAP &&
	    reg->kind != PTRACK__VMM__V1__DIRTY_KIND__DIRTY_KIND_RING)
		return -EINVAL;
	return 0;
}

static void close_fds(const int *fds, int from, int to)
{
	for (; from < to; from++)
		close(fds[from]);
}

/* Takes ownership of @fds (shm, two eventfds, one per region): on return
 * they are closed or owned by @vs, which releases them. */
static int build_source(struct vmm_src *vs,
			const Ptrack__Vmm__V1__RegisterVm *reg, int *fds,
			int nfds)
{
	struct pt_dirty_source *s = &vs->src;
	size_t i;
	int ret;

	ret = check_register(reg, nfds);
	if (ret)
		goto out_close_all;
	s->regions = calloc(reg->n_regions, sizeof(*s->regions));
	if (!s->regions) {
		ret = -ENOMEM;
		goto out_close_all;
	}
	vs->data_efd = fds[1];
	vs->space_efd = fds[2];

	s->nregions = reg->n_regions;
	for (i = 0; i < s->nregions; i++)
		s->regions[i].fd = fds[3 + i];
	/* A VMM that left its counter near 2^64 must not block a write of
	 * ours: the service loop and every other VM would stop with it. */
	if (fcntl(vs->space_efd, F_SETFL,
		  fcntl(vs->space_efd, F_GETFL) | O_NONBLOCK) ||
	    fcntl(vs->data_efd, F_SETFL,
		  fcntl(vs->data_efd, F_GETFL) | O_NONBLOCK)) {
		close(fds[0]);
		return -EBADF;
	}
	ret = map_shm(vs, fds[0], reg->shm_size);
	close(fds[0]);
	if (ret)
		return ret;
	for (i = 0; i < s->nregions; i++) {
		ret = map_region(&s->regions[i], reg->regions[i],
				 reg->incoming);
		if (ret)
			return ret;
	}
	snprintf(s->name, sizeof(s->name), "%s", reg->name);
	memcpy(s->uuid, reg->uuid.data, 16);
	s->vcpus = reg->vcpus;
	s->incoming = reg->incoming;
	s->kind = reg->kind == PTRACK__VMM__V1__DIRTY_KIND__DIRTY_KIND_RING
			  ? PTRACK__V1__DIRTY_SOURCE__DIRTY_SOURCE_RING
			  : PTRACK__V1__DIRTY_SOURCE__DIRTY_SOURCE_BITMAP;
	return 0;
out_close_all:
	close_fds(fds, 0, nfds);
	return ret;
}

static int send_registered(int sock, int status)
{
	Ptrack__Vmm__V1__Registered rd = PTRACK__VMM__V1__REGISTERED__INIT;
	ptl_msg m = PTRACK__VMM__V1__VMM_MSG__INIT;

	rd.status = status;
	rd.error = (char *)(status ? strerror(-status) : "");
	m.body_case = PTRACK__VMM__V1__VMM_MSG__BODY_REGISTERED;
	m.registered = &rd;
	return ptl_send(sock, &m, NULL, 0);
}

static int recv_register(struct vmm_src *vs)
{
	int fds[PTL_FDS_MAX], nfds, ret;
	ptl_msg *m;

	ret = ptl_recv(vs->sock, &m, fds, PTL_FDS_MAX, &nfds);
	if (ret)
		return ret;
	if (m->body_case != PTRACK__VMM__V1__VMM_MSG__BODY_REGISTER_VM) {
		close_fds(fds, 0, nfds);
		ret = -EPROTO;
	} else {
		ret = build_source(vs, m->register_vm, fds, nfds);
	}
	ptl_msg_free(m);
	return ret;
}

int pt_vmm_accept(int lfd, int timeout_ms, struct pt_dirty_source **out)
{
	static const struct timeval reg_timeout = { .tv_sec = 5 };
	static const struct timeval no_timeout = { 0 };
	struct pollfd p = { .fd = lfd, .events = POLLIN };
	struct vmm_src *vs;
	int ret;

	ret = poll(&p, 1, timeout_ms < 0 ? 0 : timeout_ms);
	if (ret < 0)
		return -errno;
	if (!ret)
		return -EAGAIN;
	vs = calloc(1, sizeof(*vs));
	if (!vs)
		return -ENOMEM;
	vs->src.ops = &vmm_src_ops;
	vs->data_efd = vs->space_efd = vs->state_fd = -1;
	vs->timeout_ms = PT_VMM_TIMEOUT_MS_DEFAULT;
	vs->sock = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	if (vs->sock < 0) {
		ret = -errno;
		goto out_release;
	}
	/* A client that connects and says nothing must not block us. */
	setsockopt(vs->sock, SOL_SOCKET, SO_RCVTIMEO, &reg_timeout,
		   sizeof(reg_timeout));
	ret = recv_register(vs);
	if (ret == -EAGAIN)
		ret = -ETIMEDOUT;
	if (ret && ret != -ECONNRESET)
		send_registered(vs->sock, ret);
	if (ret)
		goto out_release;
	ret = send_registered(vs->sock, 0);
	if (ret)
		goto out_release;
	setsockopt(vs->sock, SOL_SOCKET, SO_RCVTIMEO, &no_timeout,
		   sizeof(no_timeout));
	*out = &vs->src;
	return 0;
out_release:
	vs_release(&vs->src);
	return ret;
}
