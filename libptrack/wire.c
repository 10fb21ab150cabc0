// SPDX-License-Identifier: MIT
#include "libptrack/wire.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

int ptl_send(int sock, const ptl_msg *m, const int *fds, int nfds)
{
	char cbuf[CMSG_SPACE(sizeof(int) * PTL_FDS_MAX)];
	struct msghdr mh = { 0 };
	struct iovec iov;
	size_t len = ptrack__vmm__v1__vmm_msg__get_packed_size(m);
	uint8_t *buf;
	ssize_t n;

	if (len > PTL_MSG_MAX || nfds > PTL_FDS_MAX || nfds < 0)
		return -EMSGSIZE;
	/* Never empty: a set oneof body packs at least its tag. */
	buf = malloc(len + 1);
	if (!buf)
		return -ENOMEM;
	ptrack__vmm__v1__vmm_msg__pack(m, buf);
	iov.iov_base = buf;
	iov.iov_len = len;
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	if (nfds) {
		struct cmsghdr *cm;

		memset(cbuf, 0, sizeof(cbuf));
		mh.msg_control = cbuf;
		mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
		memcpy(CMSG_DATA(cm), fds, sizeof(int) * nfds);
	}
	do
		n = sendmsg(sock, &mh, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	free(buf);
	if (n < 0)
		return errno == EPIPE ? -ECONNRESET : -errno;
	return (size_t)n == len ? 0 : -EIO;
}

/* Takes the descriptors out of @mh; closes those beyond @maxfds. */
static int take_fds(struct msghdr *mh, int *fds, int maxfds)
{
	struct cmsghdr *cm;
	int n = 0, i, cnt;

	for (cm = CMSG_FIRSTHDR(mh); cm; cm = CMSG_NXTHDR(mh, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		cnt = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (i = 0; i < cnt; i++) {
			int fd;

			memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int),
			       sizeof(int));
			if (n < maxfds)
				fds[n++] = fd;
			else
				close(fd);
		}
	}
	return n;
}

static void close_fds(int *fds, int n)
{
	while (n-- > 0)
		close(fds[n]);
}

int ptl_recv(int sock, ptl_msg **m, int *fds, int maxfds, int *nfds)
{
	char cbuf[CMSG_SPACE(sizeof(int) * PTL_FDS_MAX)];
	struct msghdr mh = { 0 };
	struct iovec iov;
	uint8_t *buf;
	ssize_t n;
	int ret = 0;

	*m = NULL;
	*nfds = 0;
	buf = malloc(PTL_MSG_MAX);
	if (!buf)
		return -ENOMEM;
	iov.iov_base = buf;
	iov.iov_len = PTL_MSG_MAX;
	mh.msg_iov = &iov;
	mh.msg_iovlen = 1;
	mh.msg_control = cbuf;
	mh.msg_controllen = sizeof(cbuf);
	do
		n = recvmsg(sock, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		ret = -errno;
		goto out_buf;
	}
	*nfds = take_fds(&mh, fds, maxfds);
	if (n == 0) {
		ret = -ECONNRESET;
		goto out_fds;
	}
	if (mh.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) {
		ret = -EBADMSG;
		goto out_fds;
	}
	*m = ptrack__vmm__v1__vmm_msg__unpack(NULL, n, buf);
	if (!*m)
		ret = -EBADMSG;
	else
		goto out_buf;
out_fds:
	close_fds(fds, *nfds);
	*nfds = 0;
out_buf:
	free(buf);
	return ret;
}

void ptl_msg_free(ptl_msg *m)
{
	if (m)
		ptrack__vmm__v1__vmm_msg__free_unpacked(m, NULL);
}

int ptl_send_request(int sock, uint64_t seq, int op)
{
	Ptrack__Vmm__V1__Request rq = PTRACK__VMM__V1__REQUEST__INIT;
	ptl_msg m = PTRACK__VMM__V1__VMM_MSG__INIT;

	rq.seq = seq;
	rq.op = op;
	m.body_case = PTRACK__VMM__V1__VMM_MSG__BODY_REQUEST;
	m.request = &rq;
	return ptl_send(sock, &m, NULL, 0);
}

int ptl_send_reply(int sock, uint64_t seq, int status, uint64_t records)
{
	Ptrack__Vmm__V1__Reply rp = PTRACK__VMM__V1__REPLY__INIT;
	ptl_msg m = PTRACK__VMM__V1__VMM_MSG__INIT;

	rp.seq = seq;
	rp.status = status;
	rp.records = records;
	m.body_case = PTRACK__VMM__V1__VMM_MSG__BODY_REPLY;
	m.reply = &rp;
	return ptl_send(sock, &m, NULL, 0);
}

int ptl_send_request_state(int sock, uint64_t seq, int op, int fd, uint64_t len)
{
	Ptrack__Vmm__V1__Request rq = PTRACK__VMM__V1__REQUEST__INIT;
	ptl_msg m = PTRACK__VMM__V1__VMM_MSG__INIT;

	rq.seq = seq;
	rq.op = op;
	rq.state_len = len;
	m.body_case = PTRACK__VMM__V1__VMM_MSG__BODY_REQUEST;
	m.request = &rq;
	return ptl_send(sock, &m, &fd, fd >= 0 ? 1 : 0);
}

int ptl_send_reply_state(int sock, uint64_t seq, int status, int fd,
			 uint64_t len)
{
	Ptrack__Vmm__V1__Reply rp = PTRACK__VMM__V1__REPLY__INIT;
	ptl_msg m = PTRACK__VMM__V1__VMM_MSG__INIT;

	rp.seq = seq;
	rp.status = status;
	rp.state_len = len;
	m.body_case = PTRACK__VMM__V1__VMM_MSG__BODY_REPLY;
	m.reply = &rp;
	return ptl_send(sock, &m, &fd, fd >= 0 ? 1 : 0);
}

int ptl_send_request_throttle(int sock, uint64_t seq, unsigned int pct)
{
	Ptrack__Vmm__V1__Request rq = PTRACK__VMM__V1__REQUEST__INIT;
	ptl_msg m = PTRACK__VMM__V1__VMM_MSG__INIT;

	rq.seq = seq;
	rq.op = PTRACK__VMM__V1__OP__OP_THROTTLE;
	rq.throttle = pct;
	m.body_case = PTRACK__VMM__V1__VMM_MSG__BODY_REQUEST;
	m.request = &rq;
	return ptl_send(sock, &m, NULL, 0);
}

int ptl_state_memfd(const void *data, size_t len)
{
	const uint8_t *p = data;
	size_t done = 0;
	ssize_t n;
	int fd, ret;

	fd = memfd_create("ptrack-state", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -errno;
	while (done < len) {
		n = write(fd, p + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			ret = n < 0 ? -errno : -EIO;
			goto out_close;
		}
		done += (size_t)n;
	}
	/* The receiver reads a blob that cannot change under it. */
	if (fcntl(fd, F_ADD_SEALS,
		  F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL)) {
		ret = -errno;
		goto out_close;
	}
	return fd;
out_close:
	close(fd);
	return ret;
}

int ptl_state_read(int fd, uint64_t len, uint64_t max, void **out)
{
	struct stat st;
	uint8_t *buf;
	size_t done = 0;
	ssize_t n;

	*out = NULL;
	if (!len || len > max)
		return -EMSGSIZE;
	if (fstat(fd, &st) || (uint64_t)st.st_size != len)
		return -EBADMSG;
	buf = malloc(len);
	if (!buf)
		return -ENOMEM;
	while (done < len) {
		n = pread(fd, buf + done, len - done, (off_t)done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			free(buf);
			return n < 0 ? -errno : -EBADMSG;
		}
		done += (size_t)n;
	}
	*out = buf;
	return 0;
}
