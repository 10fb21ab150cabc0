// SPDX-License-Identifier: MIT
/*
 * The guest: AArch64 code entered at EL1, MMU off, with x0 = parameter
 * page and x1 = vCPU id, the same program as guest_x86_64.c. It never
 * touches a stack, so the only pages it writes are the work pages. Each
 * store writes (seq << 8 | vcpu id) to the first doubleword of a page: seq
 * grows per vCPU and the id tells vCPUs apart, so every store changes the
 * page and its latest writer can be read back. After each batch it stores
 * to VMM_MMIO_BATCH (an MMIO exit), where the host counts stores, applies
 * the rate limit and can hold the vCPU.
 *
 * Registers: x0 params, x1 id, x8 work base, x9 npages, x10 pattern,
 * x11 batch, x12 hot pages, x13 hot percent, x14 xorshift state, x15 seq,
 * x16 sweep cursor, x17 batch counter, x19 nvcpus, x20 cold pages,
 * x21 hundred, x22 doorbell; x2 to x5 scratch.
 */
#include "vmm.h"

/* The movz below builds VMM_MMIO_BATCH: keep them in step. */
_Static_assert(VMM_MMIO_BATCH == 0xffull << 32, "guest doorbell address");

__asm__(".pushsection .rodata\n"
	".globl vmm_guest_start\n"
	".globl vmm_guest_end\n"
	".globl vmm_guest_size\n"
	".balign 8\n"
	"vmm_guest_size: .quad vmm_guest_end - vmm_guest_start\n"
	".balign 4\n"
	"vmm_guest_start:\n"
	"	ldr x8, [x0, #0]\n"
	"	ldr x9, [x0, #8]\n"
	"	ldr x10, [x0, #16]\n"
	"	ldr x11, [x0, #24]\n"
	"	ldr x12, [x0, #32]\n"
	"	ldr x13, [x0, #40]\n"
	"	ldr x20, [x0, #48]\n"
	"	ldr x21, [x0, #56]\n"
	"	ldr x19, [x0, #64]\n"
	/* A distinct non-zero seed per vCPU. */
	"	add x14, x1, #1\n"
	"	movz x2, #0x7c15\n"
	"	movk x2, #0x7f4a, lsl #16\n"
	"	movk x2, #0x79b9, lsl #32\n"
	"	movk x2, #0x9e37, lsl #48\n"
	"	mul x14, x14, x2\n"
	"	mov x15, #0\n"
	"	mov x16, x1\n"
	"	movz x22, #0xff, lsl #32\n"
	"1:\n" /* batch */
	"	mov x17, x11\n"
	"2:\n" /* one store */
	"	add x15, x15, #1\n"
	"	cbz x10, 5f\n"
	"	eor x14, x14, x14, lsl #13\n" /* xorshift64 */
	"	eor x14, x14, x14, lsr #7\n"
	"	eor x14, x14, x14, lsl #17\n"
	"	cmp x10, #2\n"
	"	b.eq 6f\n"
	"	udiv x3, x14, x9\n" /* random: page = rng % npages */
	"	msub x3, x3, x9, x14\n"
	"	b 3f\n"
	"5:\n" /* sequential: cursor += nvcpus, wraps */
	"	mov x3, x16\n"
	"	add x16, x16, x19\n"
	"	cmp x16, x9\n"
	"	b.lo 3f\n"
	"	sub x16, x16, x9\n"
	"	cmp x16, x9\n"
	"	b.lo 3f\n"
	"	mov x16, #0\n"
	"	b 3f\n"
	"6:\n" /* hot/cold: rng % 100 < hot_pct picks the hot set */
	"	udiv x4, x14, x21\n"
	"	msub x4, x4, x21, x14\n"
	"	ror x5, x14, #29\n" /* second draw: rotate the state */
	"	cmp x4, x13\n"
	"	b.hs 7f\n"
	"	udiv x3, x5, x12\n"
	"	msub x3, x3, x12, x5\n"
	"	b 3f\n"
	"7:\n"
	"	udiv x3, x5, x20\n"
	"	msub x3, x3, x20, x5\n"
	"	add x3, x3, x12\n"
	"3:\n" /* store the stamp */
	"	add x3, x8, x3, lsl #12\n"
	"	lsl x4, x15, #8\n"
	"	orr x4, x4, x1\n"
	"	str x4, [x3]\n"
	"	subs x17, x17, #1\n"
	"	b.ne 2b\n"
	/* A plain store with no writeback: KVM decodes it (ESR ISV). */
	"	str xzr, [x22]\n"
	"	b 1b\n"
	"vmm_guest_end:\n"
	".popsection\n");

#include <errno.h>
#include <stddef.h>
#include <sys/ioctl.h>

#include "arch.h"

int vmm_arch_guest_seq(struct vmm_vcpu *v, uint64_t *seq)
{
	struct kvm_one_reg r = {
		/* x15 holds seq: see the register list above */
		.id = KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_CORE |
		      (offsetof(struct kvm_regs, regs.regs[15]) /
		       sizeof(uint32_t)),
		.addr = (uintptr_t)seq,
	};

	return ioctl(v->fd, KVM_GET_ONE_REG, &r) ? -errno : 0;
}
