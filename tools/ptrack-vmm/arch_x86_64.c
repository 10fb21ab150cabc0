// SPDX-License-Identifier: MIT
/*
 * x86_64 part of ptrack-vmm: identity-mapped long mode with 2 MiB pages,
 * a flat GDT, the vCPUs' initial registers, and the port-I/O doorbell the
 * guest (guest_x86_64.c) rings after each batch of stores.
 */
#include "arch.h"

#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>

/* Guest-physical layout below VMM_PARAM_GPA (see vmm.h). */
#define VMM_GDT_GPA 0x0800ull
#define VMM_PML4_GPA 0x1000ull
#define VMM_PDPT_GPA 0x2000ull
#define VMM_PD_GPA 0x3000ull /* one 4 KiB PD per GiB, up to VMM_MAX_GIB */

static int xioctl(int fd, unsigned long req, void *arg)
{
	int r = ioctl(fd, req, arg);

	return r < 0 ? -errno : r;
}

/* 2 MiB identity pages over all of guest RAM, plus a flat GDT. */
void vmm_arch_init_memory(struct vmm *vm)
{
	uint64_t *pml4 = (uint64_t *)(vm->mem + VMM_PML4_GPA);
	uint64_t *pdpt = (uint64_t *)(vm->mem + VMM_PDPT_GPA);
	uint64_t *gdt = (uint64_t *)(vm->mem + VMM_GDT_GPA);
	uint64_t gib = (vm->o.mem + (1ull << 30) - 1) >> 30, i, j;

	pml4[0] = VMM_PDPT_GPA | 3;
	for (i = 0; i < gib; i++) {
		uint64_t *pd = (uint64_t *)(vm->mem + VMM_PD_GPA + i * 4096);

		pdpt[i] = (VMM_PD_GPA + i * 4096) | 3;
		for (j = 0; j < 512; j++)
			pd[j] = ((i << 30) | (j << 21)) | 0x83; /* P RW PS */
	}
	gdt[0] = 0;
	gdt[1] = 0x00af9b000000ffffull; /* 64-bit code */
	gdt[2] = 0x00cf93000000ffffull; /* data */
	gdt[3] = 0x00008b0000000067ull; /* TSS (busy) */
}

static void seg(struct kvm_segment *s, uint16_t sel, uint8_t type, bool l)
{
	memset(s, 0, sizeof(*s));
	s->selector = sel;
	s->limit = 0xffffffff;
	s->type = type;
	s->present = 1;
	s->s = 1;
	s->l = l;
	s->db = !l;
	s->g = 1;
}

int vmm_arch_init_vcpu(struct vmm_vcpu *v)
{
	struct kvm_sregs sr;
	struct kvm_regs r;
	int ret;

	ret = xioctl(v->fd, KVM_GET_SREGS, &sr);
	if (ret)
		return ret;
	seg(&sr.cs, 8, 11, true);
	seg(&sr.ds, 16, 3, false);
	sr.es = sr.fs = sr.gs = sr.ss = sr.ds;
	sr.tr.selector = 24;
	sr.tr.limit = 0x67;
	sr.tr.type = 11;
	sr.tr.present = 1;
	sr.tr.base = 0;
	sr.gdt.base = VMM_GDT_GPA;
	sr.gdt.limit = 4 * 8 - 1;
	sr.cr3 = VMM_PML4_GPA;
	sr.cr4 = 0x20; /* PAE */
	sr.cr0 = 0x80050033; /* PG WP NE ET MP PE */
	sr.efer = 0x500; /* LME LMA */
	ret = xioctl(v->fd, KVM_SET_SREGS, &sr);
	if (ret)
		return ret;
	memset(&r, 0, sizeof(r));
	r.rip = VMM_CODE_GPA;
	r.rflags = 2;
	r.rdi = VMM_PARAM_GPA;
	r.rsi = v->id;
	return xioctl(v->fd, KVM_SET_REGS, &r);
}

bool vmm_arch_is_batch_exit(const struct kvm_run *run)
{
	return run->exit_reason == KVM_EXIT_IO &&
	       run->io.port == VMM_PORT_BATCH;
}
