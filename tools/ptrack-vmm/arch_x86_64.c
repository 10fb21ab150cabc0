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

/* --- migration state ------------------------------------------------------ */

#define X86_STATE_MAGIC 0x53383678u /* "x86S" */
#define X86_F_XSAVE 1u
#define X86_F_XCRS 2u

/*
 * The MSRs a long-mode guest may depend on beyond what KVM_GET_SREGS
 * holds (EFER, CR*, segment bases but not KERNEL_GS_BASE). Those the host
 * does not have are skipped at save and so never set at load.
 */
static const uint32_t x86_msrs[] = {
	0x00000010, /* TSC: the guest's clock runs on from its value */
	0x00000174, /* SYSENTER_CS */
	0x00000175, /* SYSENTER_ESP */
	0x00000176, /* SYSENTER_EIP */
	0x00000277, /* PAT */
	0xc0000081, /* STAR */
	0xc0000082, /* LSTAR */
	0xc0000083, /* CSTAR */
	0xc0000084, /* FMASK */
	0xc0000102, /* KERNEL_GS_BASE */
	0xc0000103, /* TSC_AUX */
};
#define X86_NMSRS (sizeof(x86_msrs) / sizeof(x86_msrs[0]))

struct x86_msr {
	uint32_t index, pad;
	uint64_t data;
};

/* No LAPIC, PIT or PIC: this VM has no in-kernel irqchip. */
struct x86_vcpu_state {
	uint32_t magic;
	uint32_t flags; /* X86_F_* */
	uint32_t nmsrs;
	uint32_t pad;
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_fpu fpu;
	uint8_t xsave[4096]; /* struct kvm_xsave without its extra[] */
	struct kvm_xcrs xcrs;
	struct kvm_vcpu_events events;
	struct kvm_debugregs dregs;
	struct x86_msr msrs[X86_NMSRS];
};

size_t vmm_arch_vcpu_state_size(void)
{
	return sizeof(struct x86_vcpu_state);
}

static int has_cap(struct vmm *vm, long cap)
{
	return ioctl(vm->kvm, KVM_CHECK_EXTENSION, cap) > 0;
}

/* One MSR at a time: KVM_GET_MSRS stops at the first it lacks. */
static int msr_io(int fd, unsigned long req, struct x86_msr *m)
{
	struct {
		struct kvm_msrs h;
		struct kvm_msr_entry e;
	} b;
	int r;

	memset(&b, 0, sizeof(b));
	b.h.nmsrs = 1;
	b.e.index = m->index;
	b.e.data = m->data;
	r = ioctl(fd, req, &b);
	if (r < 0)
		return -errno;
	m->data = b.e.data;
	return r == 1 ? 0 : -ENOENT;
}

int vmm_arch_save_vcpu(struct vmm_vcpu *v, void *buf)
{
	struct x86_vcpu_state *s = buf;
	size_t i;
	int ret;

	memset(s, 0, sizeof(*s));
	s->magic = X86_STATE_MAGIC;
	ret = xioctl(v->fd, KVM_GET_REGS, &s->regs);
	if (!ret)
		ret = xioctl(v->fd, KVM_GET_SREGS, &s->sregs);
	if (!ret)
		ret = xioctl(v->fd, KVM_GET_FPU, &s->fpu);
	if (!ret && has_cap(v->vm, KVM_CAP_XSAVE) &&
	    (!has_cap(v->vm, KVM_CAP_XSAVE2) ||
	     ioctl(v->vm->vmfd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2) <= 4096)) {
		ret = xioctl(v->fd, KVM_GET_XSAVE, s->xsave);
		s->flags |= X86_F_XSAVE;
	}
	if (!ret && has_cap(v->vm, KVM_CAP_XCRS)) {
		ret = xioctl(v->fd, KVM_GET_XCRS, &s->xcrs);
		s->flags |= X86_F_XCRS;
	}
	if (!ret)
		ret = xioctl(v->fd, KVM_GET_VCPU_EVENTS, &s->events);
	if (!ret)
		ret = xioctl(v->fd, KVM_GET_DEBUGREGS, &s->dregs);
	for (i = 0; !ret && i < X86_NMSRS; i++) {
		struct x86_msr m = { .index = x86_msrs[i] };

		if (!msr_io(v->fd, KVM_GET_MSRS, &m))
			s->msrs[s->nmsrs++] = m;
	}
	return ret;
}

int vmm_arch_load_vcpu(struct vmm_vcpu *v, const void *buf)
{
	const struct x86_vcpu_state *s = buf;
	struct kvm_vcpu_events ev;
	uint32_t i;
	int ret;

	if (s->magic != X86_STATE_MAGIC || s->nmsrs > X86_NMSRS ||
	    s->flags & ~(X86_F_XSAVE | X86_F_XCRS))
		return -EINVAL;
	if ((s->flags & X86_F_XSAVE) && !has_cap(v->vm, KVM_CAP_XSAVE))
		return -EOPNOTSUPP;
	/* Modes first: the registers are interpreted in them. */
	ret = xioctl(v->fd, KVM_SET_SREGS, (void *)&s->sregs);
	if (!ret)
		ret = xioctl(v->fd, KVM_SET_REGS, (void *)&s->regs);
	if (!ret)
		ret = xioctl(v->fd, KVM_SET_FPU, (void *)&s->fpu);
	if (!ret && (s->flags & X86_F_XSAVE))
		ret = xioctl(v->fd, KVM_SET_XSAVE, (void *)s->xsave);
	if (!ret && (s->flags & X86_F_XCRS))
		ret = xioctl(v->fd, KVM_SET_XCRS, (void *)&s->xcrs);
	for (i = 0; !ret && i < s->nmsrs; i++) {
		struct x86_msr m = s->msrs[i];

		ret = msr_io(v->fd, KVM_SET_MSRS, &m);
	}
	if (!ret) {
		ev = s->events;
		ev.flags &= KVM_VCPUEVENT_VALID_NMI_PENDING |
			    KVM_VCPUEVENT_VALID_SIPI_VECTOR |
			    KVM_VCPUEVENT_VALID_SHADOW |
			    KVM_VCPUEVENT_VALID_SMM;
		ret = xioctl(v->fd, KVM_SET_VCPU_EVENTS, &ev);
	}
	if (!ret)
		ret = xioctl(v->fd, KVM_SET_DEBUGREGS, (void *)&s->dregs);
	return ret;
}

int vmm_arch_setup_dirty(struct vmm *vm)
{
	(void)vm;
	return 0;
}

/* x86 has no page tracking device: write-protect (or PML) only. */
int vmm_arch_setup_tracking(struct vmm *vm)
{
	return vm->o.tracking == VMM_TRACK_WP ? 0 : -EOPNOTSUPP;
}
