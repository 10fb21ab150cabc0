// SPDX-License-Identifier: MIT
/*
 * Privilege separation helpers of the peer (peer_ps.h): the messages over
 * the socketpair, and what a connection child gives up before it reads a
 * byte from the network.
 */
#include <errno.h>
#include <grp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "engine/peer_ps.h"

int ps_send(int fd, uint32_t type, const void *body, size_t len, const int *fds,
	    unsigned int nfds)
{
	struct ps_hdr h = { .type = type, .len = (uint32_t)len };
	struct iovec iov[2] = { { &h, sizeof(h) }, { (void *)body, len } };
	union {
		char buf[CMSG_SPACE(sizeof(int) * PT_LAYOUT_MAX_REGIONS)];
		struct cmsghdr align;
	} u;
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = len ? 2 : 1 };
	struct cmsghdr *c;
	ssize_t n;

	if (nfds > PT_LAYOUT_MAX_REGIONS || len > PS_MSG_MAX)
		return -EINVAL;
	if (nfds) {
		memset(&u, 0, sizeof(u));
		mh.msg_control = u.buf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
	}
	do
		n = sendmsg(fd, &mh, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return (size_t)n == sizeof(h) + len ? 0 : -EIO;
}

ssize_t ps_recv(int fd, uint32_t *type, void *body, size_t max, int *fds,
		unsigned int maxfds, unsigned int *nfds)
{
	struct ps_hdr h;
	struct iovec iov[2] = { { &h, sizeof(h) }, { body, max } };
	union {
		char buf[CMSG_SPACE(sizeof(int) * PT_LAYOUT_MAX_REGIONS)];
		struct cmsghdr align;
	} u;
	struct msghdr mh = { .msg_iov = iov,
			     .msg_iovlen = 2,
			     .msg_control = u.buf,
			     .msg_controllen = sizeof(u.buf) };
	struct cmsghdr *c;
	unsigned int i, n_in, got = 0;
	ssize_t n;
	int *in;

	do
		n = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if (n == 0)
		return -EPIPE;
	for (c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		n_in = (unsigned int)((c->cmsg_len - CMSG_LEN(0)) /
				      sizeof(int));
		in = (int *)(void *)CMSG_DATA(c);
		for (i = 0; i < n_in; i++) {
			if (got < maxfds)
				fds[got++] = in[i];
			else
				close(in[i]); /* nobody asked for it */
		}
	}
	if (nfds)
		*nfds = got;
	if ((mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) ||
	    (size_t)n < sizeof(h) || h.len != (size_t)n - sizeof(h))
		goto out_bad;
	*type = h.type;
	return (ssize_t)h.len;
out_bad:
	for (i = 0; i < got; i++)
		close(fds[i]);
	if (nfds)
		*nfds = 0;
	return -EBADMSG;
}

/* Closes every fd above stdio but @keep. */
static void close_others(const int *keep, unsigned int nkeep)
{
	unsigned int lo = 3, i, next;

	for (;;) {
		next = ~0u;
		for (i = 0; i < nkeep; i++)
			if ((unsigned int)keep[i] >= lo &&
			    (unsigned int)keep[i] < next)
				next = (unsigned int)keep[i];
		if (next == ~0u) {
			close_range(lo, ~0u, 0);
			return;
		}
		if (next > lo)
			close_range(lo, next - 1, 0);
		lo = next + 1;
	}
}

/* Guest memory (every VM's regions, the libptrack rings) is mapped shared
 * in the daemon: a connection child must not see it. */
static int unmap_shared(void)
{
	unsigned long lo, hi;
	char line[512], perm[8];
	FILE *f = fopen("/proc/self/maps", "re");
	struct {
		unsigned long lo, hi;
	} *v = NULL, *nv;
	size_t n = 0, i;
	int r = 0;

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perm) != 3 ||
		    perm[3] != 's')
			continue;
		nv = realloc(v, (n + 1) * sizeof(*v));
		if (!nv) {
			r = -ENOMEM;
			break;
		}
		v = nv;
		v[n].lo = lo;
		v[n++].hi = hi;
	}
	fclose(f);
	for (i = 0; !r && i < n; i++)
		if (munmap((void *)v[i].lo, v[i].hi - v[i].lo))
			r = -errno;
	free(v);
	return r;
}

#if defined(__x86_64__)
#define PS_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define PS_AUDIT_ARCH AUDIT_ARCH_AARCH64
#endif

/* What a connection child never needs: opening files, making or reaching
 * sockets, running programs, touching other processes or the system. A
 * deny list (answered EACCES) rather than an allow list: GnuTLS, the
 * relay threads and the sanitizers need a long and changing set of
 * harmless calls. */
static const int denied[] = {
#ifdef __NR_open
	__NR_open,
#endif
#ifdef __NR_creat
	__NR_creat,
#endif
#ifdef __NR_unlink
	__NR_unlink,
#endif
#ifdef __NR_rename
	__NR_rename,
#endif
#ifdef __NR_mkdir
	__NR_mkdir,
#endif
#ifdef __NR_rmdir
	__NR_rmdir,
#endif
#ifdef __NR_link
	__NR_link,
#endif
#ifdef __NR_symlink
	__NR_symlink,
#endif
#ifdef __NR_chmod
	__NR_chmod,
#endif
#ifdef __NR_chown
	__NR_chown,
#endif
#ifdef __NR_mknod
	__NR_mknod,
#endif
	__NR_openat,
	__NR_openat2,
	__NR_open_by_handle_at,
	__NR_name_to_handle_at,
	__NR_execve,
	__NR_execveat,
	__NR_socket,
	__NR_connect,
	__NR_bind,
	__NR_listen,
	__NR_accept,
	__NR_accept4,
	__NR_unlinkat,
	__NR_renameat2,
	__NR_mkdirat,
	__NR_linkat,
	__NR_symlinkat,
	__NR_fchmodat,
	__NR_fchownat,
	__NR_mknodat,
	__NR_truncate,
	__NR_ptrace,
	__NR_process_vm_readv,
	__NR_process_vm_writev,
	__NR_kill,
	__NR_mount,
	__NR_umount2,
	__NR_chroot,
	__NR_pivot_root,
	__NR_unshare,
	__NR_setns,
	__NR_init_module,
	__NR_finit_module,
	__NR_delete_module,
	__NR_kexec_load,
	__NR_bpf,
	__NR_perf_event_open,
	__NR_userfaultfd,
	__NR_io_uring_setup,
	__NR_keyctl,
	__NR_add_key,
	__NR_request_key,
	__NR_setuid,
	__NR_setgid,
	__NR_setresuid,
	__NR_setresgid,
	__NR_setgroups,
	__NR_reboot,
	__NR_swapon,
	__NR_pidfd_open,
	__NR_pidfd_getfd,
};

static int seccomp_install(void)
{
#ifdef PS_AUDIT_ARCH
	enum { N = sizeof(denied) / sizeof(denied[0]) };
	struct sock_filter f[N + 8];
	struct sock_fprog prog = { .filter = f };
	unsigned int i, k = 0;

	f[k++] = (struct sock_filter)BPF_STMT(
		BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch));
	f[k++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K,
					      PS_AUDIT_ARCH, 1, 0);
	f[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K,
					      SECCOMP_RET_KILL_PROCESS);
	f[k++] = (struct sock_filter)BPF_STMT(
		BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr));
#ifdef __x86_64__
	/* x32 numbers alias the 64-bit ones: refuse the whole ABI. */
	f[k++] = (struct sock_filter)BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K,
					      0x40000000u, N + 1, 0);
#endif
	for (i = 0; i < N; i++)
		f[k++] = (struct sock_filter)BPF_JUMP(
			BPF_JMP | BPF_JEQ | BPF_K, (unsigned int)denied[i],
			(unsigned char)(N - i), 0);
	f[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K,
					      SECCOMP_RET_ALLOW);
	f[k++] = (struct sock_filter)BPF_STMT(
		BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EACCES & 0xffff));
	prog.len = (unsigned short)k;
	/* EINVAL: a kernel without CONFIG_SECCOMP_FILTER (the arm64 test
	 * bed's minimal one); the other walls still stand. */
	if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0))
		return errno == EINVAL ? 0 : -errno;
#endif
	return 0;
}

int ps_drop(const int *keep, unsigned int nkeep, uid_t uid, gid_t gid)
{
	int r;

	close_others(keep, nkeep);
	r = unmap_shared();
	if (r)
		return r;
	if (geteuid() == 0) {
		if (setgroups(0, NULL) || setresgid(gid, gid, gid) ||
		    setresuid(uid, uid, uid))
			return -errno;
		/* No way back: all ids changed, so every capability went. */
		if (setresuid(0, 0, 0) == 0)
			return -EPERM;
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		return -errno;
	prctl(PR_SET_NAME, PS_CHILD_NAME, 0, 0, 0);
	return seccomp_install();
}
