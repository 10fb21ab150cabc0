// SPDX-License-Identifier: MIT
/*
 * ptrack-vmm's ptrackd mode: registers the guest through libptrack, starts
 * the vCPUs and answers ptrackd's requests with the VM's own harvests.
 */
#include "serve.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

#include "ptrack/libptrack.h"

struct serve {
	struct vmm *vm;
	struct vmm_harvest h;
	uint64_t harvests, pages;
};

static int on_start(struct ptl_client *c, void *opaque)
{
	struct serve *s = opaque;

	(void)c;
	/* What was written before start is the daemon's to copy. */
	return vmm_harvest(s->vm, &s->h);
}

static int push(struct ptl_client *c, struct serve *s)
{
	unsigned int i;
	int ret;

	/* A folded ring harvest is whole only as a bitmap. */
	if (s->vm->o.dirty == VMM_DIRTY_BITMAP || s->h.folded)
		return ptl_push_bitmap(c, 0, 0, s->vm->npages, s->h.bitmap);
	for (i = 0; i < s->vm->o.vcpus; i++) {
		ret = ptl_push_ring(c, i, s->h.gfns[i], s->h.ngfns[i]);
		if (ret)
			return ret;
	}
	return 0;
}

static int on_harvest(struct ptl_client *c, void *opaque)
{
	struct serve *s = opaque;
	int ret = vmm_harvest(s->vm, &s->h);

	/* A failed vCPU stops writing: tell ptrackd rather than converge. */
	if (!ret)
		ret = __atomic_load_n(&s->vm->error, __ATOMIC_RELAXED);
	if (ret)
		return ret;
	s->harvests++;
	s->pages += s->h.ndirty;
	return push(c, s);
}

static int on_pause(struct ptl_client *c, void *opaque)
{
	(void)c;
	return vmm_pause(((struct serve *)opaque)->vm);
}

static int on_resume(struct ptl_client *c, void *opaque)
{
	(void)c;
	return vmm_resume(((struct serve *)opaque)->vm);
}

static int on_stop(struct ptl_client *c, void *opaque)
{
	struct serve *s = opaque;

	(void)c;
	vmm_stop(s->vm);
	return s->vm->error;
}

static const struct ptl_ops serve_ops = {
	.start = on_start,
	.harvest = on_harvest,
	.pause = on_pause,
	.resume = on_resume,
	.stop = on_stop,
};

int vmm_serve_ptrackd(struct vmm *vm, const char *path, const char *name)
{
	struct serve s = { .vm = vm };
	struct ptl_region r = {
		.id = 0,
		.page_size = VMM_PAGE,
		.gpa_base = 0,
		.size = vm->o.mem,
		.fd = vm->memfd,
		.fd_offset = 0,
	};
	struct ptl_vm info = {
		.name = name,
		.vcpus = vm->o.vcpus,
		.kind = vm->o.dirty == VMM_DIRTY_RING ? PTL_DIRTY_RING
						      : PTL_DIRTY_BITMAP,
		.regions = &r,
		.nregions = 1,
	};
	struct ptl_client *c;
	int ret;

	if (getrandom(info.uuid, sizeof(info.uuid), 0) != sizeof(info.uuid))
		return -EIO;
	ret = vmm_harvest_init(vm, &s.h);
	if (ret)
		return ret;
	ret = ptl_connect(path, &info, &serve_ops, &s, &c);
	if (ret) {
		fprintf(stderr,
			"ptrack-vmm: cannot register with ptrackd at %s: %s\n",
			path, strerror(-ret));
		goto out_harvest;
	}
	ret = vmm_start(vm);
	if (ret)
		goto out_close;
	printf("ptrack-vmm: registered '%s' with %s\n", name, path);
	fflush(stdout);
	ret = ptl_run(c);
	vmm_stop(vm);
	printf("ptrack-vmm: %s after %" PRIu64 " harvests, %" PRIu64
	       " dirty pages, %" PRIu64 " guest stores, %" PRIu64
	       " ring folds\n",
	       ret ? "disconnected" : "stopped", s.harvests, s.pages,
	       vmm_stores(vm), vm->ring_folds);
out_close:
	ptl_close(c);
out_harvest:
	vmm_harvest_release(vm, &s.h);
	return ret;
}
