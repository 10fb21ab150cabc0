// SPDX-License-Identifier: MIT
/*
 * libFuzzer target for what a VMM sends ptrackd (daemon/source/vmm_push.c):
 * the RegisterVm message with its descriptors, and the dirty records it
 * writes into shared memory. The fuzzer plays a hostile VMM over a real
 * unix socket, with real memfds and eventfds: pt_vmm_accept() takes the
 * registration, then up to two harvests consume the records the input
 * wrote. Whatever reaches the sink must lie inside the registration (a
 * bitmap inside its region, a ring entry from a registered vCPU), or the
 * target aborts; ASan and UBSan watch the rest.
 *
 * Input, little-endian, missing bytes read as 0:
 *   u8 flags (FL_*), u8 version, u8 kind, u16 vcpus, u8 name length,
 *   u8 uuid length, u8 shm pages beyond 16, u8 regions (mod 7), then per
 *   region: u32 id, u8 page size index, u32 pages, u32 GPA page, u16 fd
 *   offset pages, u32 memfd pages (0: exactly offset + size), then u16
 *   length of round 1, u32 raw head, round 1's bytes, round 2's bytes.
 * With FL_RAW the bytes after the flags are the packed message itself.
 *
 * With PTRACK_FUZZ_SEEDS=DIR, initialisation writes seeds into DIR.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "libptrack/shm.h"
#include "libptrack/wire.h"
#include "source/vmm_push.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

enum {
	FL_INCOMING = 1 << 0,
	FL_BAD_SHM = 1 << 1, /* a header field off */
	FL_SHM_SIZE = 1 << 2, /* shm_size not the memfd's */
	FL_WRONG_MSG = 1 << 3, /* something else than RegisterVm first */
	FL_FDS = 1 << 4, /* one descriptor too few */
	FL_RAW_HEAD = 1 << 5, /* head as the input says, not as written */
	FL_BAD_REPLY = 1 << 6, /* the reply answers another request */
	FL_RAW = 1 << 7,
};

#define MAX_REGIONS 6

/* ptrackd's VMM socket, in the abstract namespace: no file to leave. */
static int lfd = -1;
static struct sockaddr_un addr = { .sun_family = AF_UNIX };
static socklen_t addr_len;
static int debug; /* PTRACK_FUZZ_DEBUG=1: say how far each input got */

static uint64_t records(const struct pt_dirty_source *src)
{
	uint64_t recs, bytes;

	pt_vmm_stats(src, &recs, &bytes);
	return recs;
}

struct in {
	const uint8_t *p;
	size_t n;
};

static uint64_t take(struct in *in, size_t len)
{
	uint64_t v = 0;

	for (size_t i = 0; i < len; i++)
		if (in->n) {
			v |= (uint64_t)*in->p++ << (8 * i);
			in->n--;
		}
	return v;
}

/* --- the sink: what the daemon passes on must be in bounds --------------- */

struct check {
	struct pt_dirty_sink sink;
	const struct pt_dirty_source *src;
	volatile uint64_t sum;
};

static const struct pt_mem_region *region(const struct pt_dirty_source *s,
					  uint32_t id)
{
	for (size_t i = 0; i < s->nregions; i++)
		if (s->regions[i].id == id)
			return &s->regions[i];
	return NULL;
}

static int c_bitmap(struct pt_dirty_sink *sk, uint32_t id, uint64_t first,
		    uint64_t n, const uint64_t *words)
{
	struct check *c = (struct check *)sk;
	const struct pt_mem_region *r = region(c->src, id);

	if (!r || first > r->size / r->page_size ||
	    n > r->size / r->page_size - first)
		abort();
	for (uint64_t i = 0; i < (n + 63) / 64; i++)
		c->sum += words[i];
	return 0;
}

static int c_ring(struct pt_dirty_sink *sk, int vcpu, const uint64_t *gfns,
		  size_t n)
{
	struct check *c = (struct check *)sk;

	if (vcpu < -1 || vcpu >= (int)c->src->vcpus)
		abort();
	for (size_t i = 0; i < n; i++)
		c->sum += gfns[i];
	return 0;
}

static int c_all(struct pt_dirty_sink *sk, uint32_t id)
{
	struct check *c = (struct check *)sk;

	if (!region(c->src, id))
		abort();
	return 0;
}

static const struct pt_dirty_sink_ops check_ops = {
	.bitmap = c_bitmap,
	.ring = c_ring,
	.all = c_all,
};

/* --- the hostile VMM ----------------------------------------------------- */

struct vmm {
	int sock, fds[3 + MAX_REGIONS], nfds;
	struct ptl_shm *shm;
	uint64_t shm_size;
};

static int memfd(uint64_t size)
{
	int fd = memfd_create("fuzz", MFD_CLOEXEC);

	if (fd >= 0 && ftruncate(fd, (off_t)size)) {
		close(fd);
		return -1;
	}
	return fd;
}

static int vmm_shm(struct vmm *v, uint64_t pages, int flags)
{
	v->shm_size = pages * 4096;
	v->fds[0] = memfd(v->shm_size);
	v->fds[1] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	v->fds[2] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	v->nfds = 3;
	if (v->fds[0] < 0 || v->fds[1] < 0 || v->fds[2] < 0)
		return -1;
	v->shm = mmap(NULL, v->shm_size, PROT_READ | PROT_WRITE, MAP_SHARED,
		      v->fds[0], 0);
	if (v->shm == MAP_FAILED) {
		v->shm = NULL;
		return -1;
	}
	v->shm->magic = PTL_SHM_MAGIC;
	v->shm->version = PTL_SHM_VERSION;
	v->shm->size = v->shm_size;
	v->shm->data_off = PTL_SHM_HDR_SIZE;
	v->shm->data_size = v->shm_size - PTL_SHM_HDR_SIZE;
	if (flags & FL_BAD_SHM)
		v->shm->data_size -= 8;
	return 0;
}

static void vmm_close(struct vmm *v)
{
	for (int i = 0; i < v->nfds; i++)
		if (v->fds[i] >= 0)
			close(v->fds[i]);
	if (v->shm)
		munmap(v->shm, v->shm_size);
	if (v->sock >= 0)
		close(v->sock);
}

static int vmm_connect(struct vmm *v)
{
	v->sock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	return v->sock < 0 ||
	       connect(v->sock, (struct sockaddr *)&addr, addr_len);
}

static int send_raw(struct vmm *v, const uint8_t *p, size_t n)
{
	char cbuf[CMSG_SPACE(sizeof(int) * (3 + MAX_REGIONS))];
	struct iovec iov = { .iov_base = (void *)p, .iov_len = n };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct cmsghdr *cm;

	memset(cbuf, 0, sizeof(cbuf));
	mh.msg_control = cbuf;
	mh.msg_controllen = CMSG_SPACE(sizeof(int) * v->nfds);
	cm = CMSG_FIRSTHDR(&mh);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int) * v->nfds);
	memcpy(CMSG_DATA(cm), v->fds, sizeof(int) * v->nfds);
	return sendmsg(v->sock, &mh, MSG_NOSIGNAL) < 0 ? -errno : 0;
}

/* RegisterVm from the structured input; its regions' memfds join v->fds. */
static int send_register(struct vmm *v, struct in *in, int flags)
{
	static const uint32_t page_sizes[] = { 4096, 0, 2048, 8192, 65536 };
	Ptrack__Vmm__V1__RegisterVm reg = PTRACK__VMM__V1__REGISTER_VM__INIT;
	Ptrack__Vmm__V1__Region regs[MAX_REGIONS], *rp[MAX_REGIONS];
	Ptrack__Vmm__V1__Reply rep = PTRACK__VMM__V1__REPLY__INIT;
	ptl_msg m = PTRACK__VMM__V1__VMM_MSG__INIT;
	uint8_t uuid[32] = { 1, 2, 3 };
	char name[96];
	size_t len;
	int ret;

	reg.version = (uint32_t)take(in, 1);
	reg.kind = (Ptrack__Vmm__V1__DirtyKind)take(in, 1);
	reg.vcpus = (uint32_t)take(in, 2);
	len = take(in, 1) % sizeof(name);
	memset(name, 'v', len);
	name[len] = '\0';
	reg.name = name;
	reg.uuid.len = take(in, 1) % (sizeof(uuid) + 1);
	reg.uuid.data = uuid;
	if (vmm_shm(v, 16 + take(in, 1) % 17, flags))
		return -1;
	reg.shm_size = v->shm_size + (flags & FL_SHM_SIZE ? 4096 : 0);
	reg.incoming = !!(flags & FL_INCOMING);
	reg.n_regions = take(in, 1) % (MAX_REGIONS + 1);
	reg.regions = rp;
	for (size_t i = 0; i < reg.n_regions; i++) {
		Ptrack__Vmm__V1__Region *r = &regs[i];
		uint64_t fd_pages;

		ptrack__vmm__v1__region__init(r);
		rp[i] = r;
		r->id = (uint32_t)take(in, 4);
		r->page_size = page_sizes[take(in, 1) % 5];
		r->size = (take(in, 4) % 65536) * 4096;
		r->gpa_base = take(in, 4) * 4096;
		r->fd_offset = take(in, 2) * 4096;
		fd_pages = take(in, 4) % 65536;
		v->fds[v->nfds] = memfd(fd_pages ? fd_pages * 4096
						 : r->fd_offset + r->size);
		if (v->fds[v->nfds++] < 0)
			return -1;
	}
	if (flags & FL_WRONG_MSG) {
		m.body_case = PTRACK__VMM__V1__VMM_MSG__BODY_REPLY;
		m.reply = &rep;
	} else {
		m.body_case = PTRACK__VMM__V1__VMM_MSG__BODY_REGISTER_VM;
		m.register_vm = &reg;
	}
	ret = ptl_send(v->sock, &m, v->fds,
		       v->nfds - (flags & FL_FDS && v->nfds ? 1 : 0));
	return ret;
}

/* Writes @n bytes of records at the ring's head, wrapping, then publishes
 * the head and pre-sends the reply to request @seq. */
static void push_round(struct vmm *v, const uint8_t *p, size_t n, int flags,
		       uint64_t raw_head, uint64_t seq)
{
	uint8_t *data = (uint8_t *)v->shm + PTL_SHM_HDR_SIZE;
	uint64_t size = v->shm_size - PTL_SHM_HDR_SIZE, head = v->shm->head;
	uint64_t one = 1;

	if (n > size)
		n = size;
	for (size_t i = 0; i < n; i++)
		data[(head + i) % size] = p[i];
	head = flags & FL_RAW_HEAD ? head + raw_head : head + n;
	__atomic_store_n(&v->shm->head, head, __ATOMIC_RELEASE);
	(void)!write(v->fds[1], &one, sizeof(one));
	ptl_send_reply(v->sock, flags & FL_BAD_REPLY ? seq + 1 : seq, 0, 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct in in = { data, size };
	struct vmm v = { .sock = -1 };
	struct pt_dirty_source *src = NULL;
	struct check c = { .sink.ops = &check_ops };
	uint64_t raw_head;
	size_t n1;
	int flags = (int)take(&in, 1), ret;

	if (vmm_connect(&v))
		goto out;
	if (flags & FL_RAW) {
		/* The message as the input has it, with a plausible set of
		 * descriptors: the protobuf decoder and the checks behind it. */
		if (vmm_shm(&v, 16, 0))
			goto out;
		v.fds[v.nfds++] = memfd(1 << 20);
		if (send_raw(&v, in.p, in.n))
			goto out;
	} else if (send_register(&v, &in, flags)) {
		goto out;
	}
	ret = pt_vmm_accept(lfd, 0, &src);
	if (debug)
		fprintf(stderr, "fuzz_vmm: registration: %s\n", strerror(-ret));
	if (ret)
		goto out;
	pt_vmm_set_timeout(src, 1000);
	c.src = src;
	n1 = take(&in, 2);
	raw_head = take(&in, 4);
	if (n1 > in.n)
		n1 = in.n;
	push_round(&v, in.p, n1, flags, raw_head, 1);
	ret = src->ops->harvest(src, &c.sink);
	if (debug)
		fprintf(stderr, "fuzz_vmm: harvest 1: %s, %llu records\n",
			strerror(-ret), (unsigned long long)records(src));
	if (!ret) {
		push_round(&v, in.p + n1, in.n - n1, flags & ~FL_RAW_HEAD, 0,
			   2);
		ret = src->ops->harvest(src, &c.sink);
		if (debug)
			fprintf(stderr,
				"fuzz_vmm: harvest 2: %s, %llu records\n",
				strerror(-ret),
				(unsigned long long)records(src));
	}
	src->ops->release(src);
out:
	vmm_close(&v);
	return 0;
}

/* --- seeds --------------------------------------------------------------- */

struct out {
	uint8_t b[65536];
	size_t n;
};

static void put(struct out *o, uint64_t v, size_t len)
{
	for (size_t i = 0; i < len && o->n < sizeof(o->b); i++)
		o->b[o->n++] = (uint8_t)(v >> (8 * i));
}

/* A valid VM: @kind (1 bitmap, 2 ring), 2 vCPUs, one 64-page region. */
static void vm_header(struct out *o, int flags, int kind)
{
	put(o, (uint64_t)flags, 1);
	put(o, 1, 1); /* version */
	put(o, (uint64_t)kind, 1);
	put(o, 2, 2); /* vCPUs */
	put(o, 3, 1); /* name "vvv" */
	put(o, 16, 1); /* uuid */
	put(o, 0, 1); /* shm: 16 pages */
	put(o, 1, 1); /* regions */
	put(o, 7, 4); /* id */
	put(o, 0, 1); /* 4096 */
	put(o, 64, 4); /* pages */
	put(o, 256, 4); /* GPA page */
	put(o, 0, 2); /* offset */
	put(o, 0, 4); /* memfd: exact */
}

static void rec(struct out *o, uint32_t type, int32_t id, uint64_t first,
		uint64_t count, size_t words)
{
	put(o, type, 4);
	put(o, 32 + 8 * words, 4);
	put(o, (uint32_t)id, 4);
	put(o, 0, 4);
	put(o, first, 8);
	put(o, count, 8);
	for (size_t i = 0; i < words; i++)
		put(o, 0x0123456789abcdefull * (i + 1), 8);
}

static void write_seed(const char *dir, const char *name, const struct out *o)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "wb");
	if (!f)
		return;
	fwrite(o->b, 1, o->n, f);
	fclose(f);
}

static void write_seeds(const char *dir)
{
	static struct out o;
	const size_t ring = 15 * 4096;

	vm_header(&o, 0, 1);
	put(&o, 32 + 8 + 32 + 32 + 8, 2);
	put(&o, 0, 4);
	rec(&o, PTL_REC_BITMAP, 7, 0, 64, 1);
	rec(&o, PTL_REC_ALL, 7, 0, 0, 0);
	rec(&o, PTL_REC_BITMAP, 7, 32, 32, 1);
	write_seed(dir, "bitmap", &o);
	o.n = 0;
	vm_header(&o, 0, 2);
	put(&o, 32 + 3 * 8, 2);
	put(&o, 0, 4);
	rec(&o, PTL_REC_RING, 0, 0, 3, 3);
	rec(&o, PTL_REC_RING, 1, 0, 2, 2);
	rec(&o, PTL_REC_RING, -1, 0, 1, 1);
	write_seed(dir, "ring", &o);
	o.n = 0;
	vm_header(&o, FL_INCOMING, 2);
	put(&o, 0, 2);
	put(&o, 0, 4);
	rec(&o, PTL_REC_PAD, 0, 0, 0, 2);
	write_seed(dir, "incoming-pad", &o);
	o.n = 0;
	vm_header(&o, FL_RAW_HEAD, 1);
	put(&o, 32, 2);
	put(&o, 1 << 20, 4); /* a head past the ring */
	rec(&o, PTL_REC_ALL, 7, 0, 0, 0);
	write_seed(dir, "bad-head", &o);
	/* Round 1 pads up to 24 bytes before the end, too short for a
	 * header: round 2's record starts over at 0. */
	o.n = 0;
	vm_header(&o, 0, 1);
	put(&o, ring - 24, 2);
	put(&o, 0, 4);
	put(&o, PTL_REC_PAD, 4);
	put(&o, ring - 24, 4);
	o.n += ring - 24 - 8;
	o.n += 24;
	rec(&o, PTL_REC_BITMAP, 7, 0, 64, 1);
	write_seed(dir, "wrap", &o);
	o.n = 0;
	put(&o, FL_RAW, 1);
	put(&o, 0x0a, 1); /* field 1 (register_vm), length-delimited */
	put(&o, 17, 1);
	put(&o, 0x08, 1); /* version 1 */
	put(&o, 1, 1);
	put(&o, 0x20, 1); /* vcpus 1 */
	put(&o, 1, 1);
	put(&o, 0x28, 1); /* kind: bitmap */
	put(&o, 1, 1);
	put(&o, 0x32, 1); /* one region: 64 KiB of 4 KiB pages */
	put(&o, 7, 1);
	put(&o, 0x18, 1);
	put(&o, 0x80, 1);
	put(&o, 0x80, 1);
	put(&o, 0x04, 1);
	put(&o, 0x20, 1);
	put(&o, 0x80, 1);
	put(&o, 0x20, 1);
	put(&o, 0x38, 1); /* shm_size is not 64 KiB: refused */
	put(&o, 1, 1);
	write_seed(dir, "raw", &o);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *seeds = getenv("PTRACK_FUZZ_SEEDS");

	(void)argc;
	(void)argv;
	debug = getenv("PTRACK_FUZZ_DEBUG") != NULL;
	/* As pt_vmm_listen() makes it, without the path. */
	addr_len = offsetof(struct sockaddr_un, sun_path) + 1 +
		   (socklen_t)snprintf(addr.sun_path + 1,
				       sizeof(addr.sun_path) - 1,
				       "ptrack-fuzz-vmm-%d", (int)getpid());
	lfd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&addr, addr_len) ||
	    listen(lfd, 16)) {
		fprintf(stderr, "fuzz_vmm: VMM socket: %s\n", strerror(errno));
		exit(1);
	}
	if (seeds)
		write_seeds(seeds);
	return 0;
}
