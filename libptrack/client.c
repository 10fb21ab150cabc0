// SPDX-License-Identifier: MIT
/*
 * libptrack, the VMM side: registration, request dispatch and the producer
 * half of the shared-memory ring (layout in shm.h).
 */
#include "ptrack/libptrack.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "libptrack/shm.h"
#include "libptrack/wire.h"

struct ptl_client {
	int sock;
	int shm_fd;
	int data_efd; /* we signal records */
	int space_efd; /* ptrackd signals consumed space */
	struct ptl_shm *shm;
	uint64_t shm_size;
	uint8_t *data;
	uint64_t data_size;
	uint64_t head;
	uint64_t records; /* pushed during the current request */
	bool in_harvest;
	const struct ptl_ops *ops;
	void *opaque;
};

int ptl_fd(const struct ptl_client *c)
{
	return c->sock;
}

static int connect_unix(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd, ret;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		ret = -errno;
		close(fd);
		return ret;
	}
	return fd;
}

static int setup_shm(struct ptl_client *c, size_t size)
{
	size = size ? size : PTL_SHM_DEFAULT_SIZE;
	size = (size + 4095) & ~(size_t)4095;
	if (size < PTL_SHM_MIN || size > PTL_SHM_MAX)
		return -EINVAL;
	c->shm_fd = memfd_create("ptrack-shm", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (c->shm_fd < 0)
		return -errno;
	/* ptrackd maps it: sealed so that no truncation can SIGBUS it. */
	if (ftruncate(c->shm_fd, size) ||
	    fcntl(c->shm_fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW))
		return -errno;
	c->shm = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, c->shm_fd,
		      0);
	if (c->shm == MAP_FAILED) {
		c->shm = NULL;
		return -errno;
	}
	c->shm_size = size;
	c->shm->magic = PTL_SHM_MAGIC;
	c->shm->version = PTL_SHM_VERSION;
	c->shm->size = size;
	c->shm->data_off = PTL_SHM_HDR_SIZE;
	c->shm->data_size = size - PTL_SHM_HDR_SIZE;
	c->data = (uint8_t *)c->shm + PTL_SHM_HDR_SIZE;
	c->data_size = c->shm->data_size;
	c->data_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	c->space_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (c->data_efd < 0 || c->space_efd < 0)
		return -errno;
	return 0;
}

static int check_vm(const struct ptl_vm *vm)
{
	size_t i;

	if (!vm->name || strlen(vm->name) > 63 || !vm->nregions ||
	    vm->nregions > PTL_MAX_REGIONS || !vm->vcpus)
		return -EINVAL;
	if (vm->kind != PTL_DIRTY_BITMAP && vm->kind != PTL_DIRTY_RING)
		return -EINVAL;
	for (i = 0; i < vm->nregions; i++)
		if (vm->regions[i].fd < 0)
			return -EBADF;
	return 0;
}

static int send_register(struct ptl_client *c, const struct ptl_vm *vm)
{
	Ptrack__Vmm__V1__Region rs[PTL_MAX_REGIONS], *rp[PTL_MAX_REGIONS];
	Ptrack__Vmm__V1__RegisterVm reg = PTRACK__VMM__V1__REGISTER_VM__INIT;
	ptl_msg m = PTRACK__VMM__V1__VMM_MSG__INIT;
	int fds[PTL_FDS_MAX];
	size_t i;

	reg.version = PTL_VERSION;
	reg.name = (char *)vm->name;
	reg.uuid.data = (uint8_t *)vm->uuid;
	reg.uuid.len = 16;
	reg.vcpus = vm->vcpus;
	reg.kind = vm->kind == PTL_DIRTY_RING
			   ? PTRACK__VMM__V1__DIRTY_KIND__DIRTY_KIND_RING
			   : PTRACK__VMM__V1__DIRTY_KIND__DIRTY_KIND_BITMAP;
	reg.shm_size = c->shm_size;
	reg.incoming = !!vm->incoming;
	fds[0] = c->shm_fd;
	fds[1] = c->data_efd;
	fds[2] = c->space_efd;
	for (i = 0; i < vm->nregions; i++) {
		const struct ptl_region *r = &vm->regions[i];

		ptrack__vmm__v1__region__init(&rs[i]);
		rs[i].id = r->id;
		rs[i].gpa_base = r->gpa_base;
		rs[i].size = r->size;
		rs[i].page_size = r->page_size;
		rs[i].fd_offset = r->fd_offset;
		rp[i] = &rs[i];
		fds[3 + i] = r->fd;
	}
	reg.n_regions = vm->nregions;
	reg.regions = rp;
	m.body_case = PTRACK__VMM__V1__VMM_MSG__BODY_REGISTER_VM;
	m.register_vm = &reg;
	return ptl_send(c->sock, &m, fds, 3 + vm->nregions);
}

static int wait_registered(struct ptl_client *c)
{
	int fds[1], nfds, ret;
	ptl_msg *m;

	ret = ptl_recv(c->sock, &m, fds, 0, &nfds);
	if (ret)
		return ret;
	if (m->body_case != PTRACK__VMM__V1__VMM_MSG__BODY_REGISTERED)
		ret = -EPROTO;
	else if (m->registered->status > 0)
		ret = -EPROTO;
	else
		ret = m->registered->status;
	ptl_msg_free(m);
	return ret;
}

int ptl_connect(const char *path, const struct ptl_vm *vm,
		const struct ptl_ops *ops, void *opaque,
		struct ptl_client **out)
{
	struct ptl_client *c;
	int ret;

	ret = check_vm(vm);
	if (ret)
		return ret;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->shm_fd = c->data_efd = c->space_efd = -1;
	c->ops = ops;
	c->opaque = opaque;
	c->sock = connect_unix(path);
	if (c->sock < 0) {
		ret = c->sock;
		goto out_free;
	}
	ret = setup_shm(c, vm->shm_size);
	if (ret)
		goto out_close;
	ret = send_register(c, vm);
	if (ret)
		goto out_close;
	ret = wait_registered(c);
	if (ret)
		goto out_close;
	*out = c;
	return 0;
out_close:
	ptl_close(c);
	return ret;
out_free:
	free(c);
	return ret;
}

void ptl_close(struct ptl_client *c)
{
	if (!c)
		return;
	if (c->shm)
		munmap(c->shm, c->shm_size);
	if (c->shm_fd >= 0)
		close(c->shm_fd);
	if (c->data_efd >= 0)
		close(c->data_efd);
	if (c->space_efd >= 0)
		close(c->space_efd);
	if (c->sock >= 0)
		close(c->sock);
	free(c);
}

/* --- producer ------------------------------------------------------------- */

/* Sleeps until ptrackd frees space; fails if it disconnects. */
static int wait_space(struct ptl_client *c)
{
	struct pollfd p[2] = {
		{ .fd = c->space_efd, .events = POLLIN },
		{ .fd = c->sock, .events = POLLRDHUP },
	};
	uint64_t v;

	if (poll(p, 2, -1) < 0)
		return errno == EINTR ? 0 : -errno;
	if (p[1].revents & (POLLRDHUP | POLLHUP | POLLERR))
		return -ECONNRESET;
	if (p[0].revents & POLLIN)
		(void)!read(c->space_efd, &v, sizeof(v));
	return 0;
}

/* Space for a @len byte record at the returned pointer, or NULL + *err. */
static void *reserve(struct ptl_client *c, uint64_t len, int *err)
{
	uint64_t tail, pos, contig, need;
	struct ptl_rec *pad;

	for (;;) {
		tail = __atomic_load_n(&c->shm->tail, __ATOMIC_ACQUIRE);
		pos = c->head % c->data_size;
		contig = c->data_size - pos;
		need = contig < len ? contig + len : len;
		if (c->head - tail + need <= c->data_size)
			break;
		*err = wait_space(c);
		if (*err)
			return NULL;
	}
	if (contig < len) {
		/* Too short for a header: both sides skip it. */
		if (contig >= sizeof(*pad)) {
			pad = (struct ptl_rec *)(c->data + pos);
			memset(pad, 0, sizeof(*pad));
			pad->type = PTL_REC_PAD;
			pad->len = contig;
		}
		c->head += contig;
		pos = 0;
	}
	return c->data + pos;
}

static int commit(struct ptl_client *c, uint64_t len)
{
	uint64_t one = 1;

	c->head += len;
	c->records++;
	__atomic_store_n(&c->shm->head, c->head, __ATOMIC_RELEASE);
	if (write(c->data_efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		return -errno;
	return 0;
}

static int push_rec(struct ptl_client *c, uint32_t type, int32_t id,
		    uint64_t first, uint64_t count, const uint64_t *data,
		    size_t nwords)
{
	uint64_t len = sizeof(struct ptl_rec) + nwords * 8;
	struct ptl_rec *r;
	int err = 0;

	if (!c->in_harvest)
		return -EINVAL;
	r = reserve(c, len, &err);
	if (!r)
		return err;
	r->type = type;
	r->len = len;
	r->id = id;
	r->reserved = 0;
	r->first = first;
	r->count = count;
	if (nwords)
		memcpy(r + 1, data, nwords * 8);
	return commit(c, len);
}

static uint64_t max_words(const struct ptl_client *c)
{
	return (ptl_rec_max(c->data_size) - sizeof(struct ptl_rec)) / 8;
}

int ptl_push_bitmap(struct ptl_client *c, uint32_t region, uint64_t first_page,
		    uint64_t npages, const uint64_t *words)
{
	uint64_t nw = (npages + 63) / 64, w = 0, end, zeros, pages;
	int ret;

	while (w < nw) {
		while (w < nw && !words[w])
			w++;
		if (w == nw)
			break;
		/* Extend the chunk until a run of 16 zero words or the max. */
		for (end = w, zeros = 0;
		     end < nw && end - w < max_words(c) && zeros < 16; end++)
			zeros = words[end] ? 0 : zeros + 1;
		end -= zeros;
		pages = (end - w) * 64;
		if (w * 64 + pages > npages)
			pages = npages - w * 64;
		ret = push_rec(c, PTL_REC_BITMAP, region, first_page + w * 64,
			       pages, words + w, end - w);
		if (ret)
			return ret;
		w = end;
	}
	return 0;
}

int ptl_push_ring(struct ptl_client *c, int vcpu, const uint64_t *gfns,
		  size_t n)
{
	uint64_t chunk;
	int ret;

	while (n) {
		chunk = n < max_words(c) ? n : max_words(c);
		ret = push_rec(c, PTL_REC_RING, vcpu, 0, chunk, gfns, chunk);
		if (ret)
			return ret;
		gfns += chunk;
		n -= chunk;
	}
	return 0;
}

int ptl_push_all(struct ptl_client *c, uint32_t region)
{
	return push_rec(c, PTL_REC_ALL, region, 0, 0, NULL, 0);
}

/* --- requests ------------------------------------------------------------- */

/* The answer to OP_SAVE_STATE: the blob in a sealed memfd. */
static int save_state(struct ptl_client *c, uint64_t seq)
{
	void *blob = NULL;
	size_t len = 0;
	int status = -EOPNOTSUPP, fd = -1, ret;

	if (c->ops->save_state)
		status = c->ops->save_state(c, c->opaque, &blob, &len);
	if (!status && (!blob || !len || len > PTL_STATE_MAX))
		status = -EMSGSIZE;
	if (!status) {
		fd = ptl_state_memfd(blob, len);
		if (fd < 0)
			status = fd;
	}
	free(blob);
	ret = ptl_send_reply_state(c->sock, seq, status, status ? -1 : fd,
				   status ? 0 : len);
	if (fd >= 0)
		close(fd);
	return ret;
}

static int load_state(struct ptl_client *c, int fd, uint64_t len)
{
	void *blob;
	int ret;

	if (!c->ops->load_state)
		return -EOPNOTSUPP;
	if (fd < 0)
		return -EBADMSG;
	ret = ptl_state_read(fd, len, PTL_STATE_MAX, &blob);
	if (ret)
		return ret;
	ret = c->ops->load_state(c, c->opaque, blob, len);
	free(blob);
	return ret;
}

static int call(struct ptl_client *c, int op)
{
	const struct ptl_ops *o = c->ops;
	int ret;

	switch (op) {
	case PTRACK__VMM__V1__OP__OP_START:
		return o->start ? o->start(c, c->opaque) : 0;
	case PTRACK__VMM__V1__OP__OP_HARVEST:
		if (!o->harvest)
			return -EOPNOTSUPP;
		c->in_harvest = true;
		ret = o->harvest(c, c->opaque);
		c->in_harvest = false;
		return ret;
	case PTRACK__VMM__V1__OP__OP_PAUSE:
		return o->pause ? o->pause(c, c->opaque) : -EOPNOTSUPP;
	case PTRACK__VMM__V1__OP__OP_RESUME:
		return o->resume ? o->resume(c, c->opaque) : 0;
	case PTRACK__VMM__V1__OP__OP_STOP:
		return o->stop ? o->stop(c, c->opaque) : -EOPNOTSUPP;
	default:
		return -EOPNOTSUPP;
	}
}

int ptl_dispatch(struct ptl_client *c)
{
	int fds[1], nfds, ret, status, op;
	uint64_t seq, state_len;
	unsigned int pct;
	ptl_msg *m;

	ret = ptl_recv(c->sock, &m, fds, 1, &nfds);
	if (ret)
		return ret;
	if (m->body_case != PTRACK__VMM__V1__VMM_MSG__BODY_REQUEST) {
		ptl_msg_free(m);
		if (nfds)
			close(fds[0]);
		return -EPROTO;
	}
	seq = m->request->seq;
	op = m->request->op;
	state_len = m->request->state_len;
	pct = m->request->throttle;
	ptl_msg_free(m);
	c->records = 0;
	if (op == PTRACK__VMM__V1__OP__OP_SAVE_STATE) {
		if (nfds)
			close(fds[0]);
		return save_state(c, seq);
	}
	if (op == PTRACK__VMM__V1__OP__OP_LOAD_STATE)
		status = load_state(c, nfds ? fds[0] : -1, state_len);
	else if (op == PTRACK__VMM__V1__OP__OP_THROTTLE)
		status = pct > 99 ? -EINVAL
			 : c->ops->throttle
				 ? c->ops->throttle(c, c->opaque, pct)
				 : -EOPNOTSUPP;
	else
		status = call(c, op);
	if (nfds)
		close(fds[0]);
	ret = ptl_send_reply(c->sock, seq, status, c->records);
	if (ret)
		return ret;
	return op == PTRACK__VMM__V1__OP__OP_STOP && !status ? 1 : 0;
}

int ptl_run(struct ptl_client *c)
{
	int ret;

	do
		ret = ptl_dispatch(c);
	while (ret == 0);
	return ret == 1 ? 0 : ret;
}
