// SPDX-License-Identifier: MIT
/*
 * The guest: 64-bit code entered in long mode with RDI = parameter page and
 * RSI = vCPU id. It never touches a stack, so the only pages it writes are
 * the work pages. Each store writes (seq << 8 | vcpu id) to the first
 * quadword of a page: seq grows per vCPU and the id tells vCPUs apart, so
 * every store changes the page and its latest writer can be read back.
 * After each batch it writes to port VMM_PORT_BATCH, where the host counts
 * stores, applies the rate limit and can hold the vCPU.
 *
 * Registers: rdi params, rsi id, r8 work base, r9 npages, r10 pattern,
 * r11 batch, r12 hot pages, r13 hot percent, r14 xorshift state, r15 seq,
 * rbx sweep cursor, rbp batch counter, rcx nvcpus.
 */
#include "vmm.h"

__asm__(".pushsection .rodata\n"
	".globl vmm_guest_start\n"
	".globl vmm_guest_end\n"
	".globl vmm_guest_size\n"
	/* The assembler computes the size: C may not subtract the labels. */
	".balign 8\n"
	"vmm_guest_size: .quad vmm_guest_end - vmm_guest_start\n"
	".intel_syntax noprefix\n"
	"vmm_guest_start:\n"
	"	mov r8, [rdi + 0]\n"
	"	mov r9, [rdi + 8]\n"
	"	mov r10, [rdi + 16]\n"
	"	mov r11, [rdi + 24]\n"
	"	mov r12, [rdi + 32]\n"
	"	mov r13, [rdi + 40]\n"
	"	mov rcx, [rdi + 64]\n"
	/* A distinct non-zero seed per vCPU. */
	"	mov r14, rsi\n"
	"	inc r14\n"
	"	mov rax, 0x9e3779b97f4a7c15\n"
	"	imul r14, rax\n"
	"	xor r15, r15\n"
	"	mov rbx, rsi\n"
	"1:\n" /* batch */
	"	mov rbp, r11\n"
	"2:\n" /* one store */
	"	inc r15\n"
	"	cmp r10, 0\n"
	"	je 5f\n"
	"	mov rax, r14\n" /* xorshift64 */
	"	shl rax, 13\n"
	"	xor r14, rax\n"
	"	mov rax, r14\n"
	"	shr rax, 7\n"
	"	xor r14, rax\n"
	"	mov rax, r14\n"
	"	shl rax, 17\n"
	"	xor r14, rax\n"
	"	cmp r10, 2\n"
	"	je 6f\n"
	"	mov rax, r14\n" /* random: page = rng % npages */
	"	xor edx, edx\n"
	"	div r9\n"
	"	mov rax, rdx\n"
	"	jmp 3f\n"
	"5:\n" /* sequential: cursor += nvcpus, wraps */
	"	mov rax, rbx\n"
	"	add rbx, rcx\n"
	"	cmp rbx, r9\n"
	"	jb 3f\n"
	"	sub rbx, r9\n"
	"	cmp rbx, r9\n"
	"	jb 3f\n"
	"	xor ebx, ebx\n"
	"	jmp 3f\n"
	"6:\n" /* hot/cold: rng % 100 < hot_pct picks the hot set */
	"	mov rax, r14\n"
	"	xor edx, edx\n"
	"	div qword ptr [rdi + 56]\n"
	"	mov rax, r14\n" /* second draw: rotate the state */
	"	ror rax, 29\n"
	"	cmp rdx, r13\n"
	"	jae 7f\n"
	"	xor edx, edx\n"
	"	div r12\n"
	"	mov rax, rdx\n"
	"	jmp 3f\n"
	"7:\n"
	"	xor edx, edx\n"
	"	div qword ptr [rdi + 48]\n"
	"	mov rax, rdx\n"
	"	add rax, r12\n"
	"3:\n" /* store the stamp */
	"	shl rax, 12\n"
	"	add rax, r8\n"
	"	mov rdx, r15\n"
	"	shl rdx, 8\n"
	"	or rdx, rsi\n"
	"	mov [rax], rdx\n"
	"	dec rbp\n"
	"	jnz 2b\n"
	"	mov dx, 0x10\n"
	"	out dx, al\n"
	"	jmp 1b\n"
	"vmm_guest_end:\n"
	".att_syntax prefix\n"
	".popsection\n");

#include <errno.h>
#include <sys/ioctl.h>

#include "arch.h"

int vmm_arch_guest_seq(struct vmm_vcpu *v, uint64_t *seq)
{
	struct kvm_regs r;

	if (ioctl(v->fd, KVM_GET_REGS, &r) < 0)
		return -errno;
	*seq = r.r15; /* see the register list above */
	return 0;
}
