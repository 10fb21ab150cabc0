// SPDX-License-Identifier: MIT
/*
 * libnl-genl-3 client of the "ptrack" generic netlink family. See
 * ptnl.h.
 */
#include "ptnl/ptnl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <netlink/genl/ctrl.h>
#include <netlink/genl/genl.h>
#include <netlink/socket.h>

struct ptnl {
	struct nl_sock *sock;
	int family;
	int events_group;
};

struct nla_policy ptnl_policy[PTRACK_A_MAX + 1] = {
	[PTRACK_A_DEV_NAME] = { .type = NLA_STRING,
				.maxlen = PTNL_NAME_MAX - 1 },
	[PTRACK_A_DEV_VERSION] = { .type = NLA_U32 },
	[PTRACK_A_DEV_CAPS] = { .type = NLA_U32 },
	[PTRACK_A_DEV_CONTEXTS] = { .type = NLA_U32 },
	[PTRACK_A_DEV_CONTEXTS_USED] = { .type = NLA_U32 },
	[PTRACK_A_DEV_CPUS] = { .type = NLA_U32 },
	[PTRACK_A_DEV_RING_ENTRIES] = { .type = NLA_U32 },
	[PTRACK_A_DEV_ENTRIES] = { .type = NLA_U64 },
	[PTRACK_A_DEV_LOST] = { .type = NLA_U64 },
	[PTRACK_A_DEV_IRQS] = { .type = NLA_U64 },
	[PTRACK_A_DEV_FLUSHES] = { .type = NLA_U64 },
	[PTRACK_A_TRACKER_ID] = { .type = NLA_U32 },
	[PTRACK_A_TRACKER_VMID] = { .type = NLA_U32 },
	[PTRACK_A_TRACKER_PID] = { .type = NLA_U32 },
	[PTRACK_A_TRACKER_MODE] = { .type = NLA_U32 },
	[PTRACK_A_TRACKER_PAGE_SHIFT] = { .type = NLA_U32 },
	[PTRACK_A_TRACKER_ALL_CPUS] = { .type = NLA_FLAG },
	[PTRACK_A_TRACKER_CPUS] = { .type = NLA_UNSPEC,
				    .minlen = sizeof(uint64_t) },
	[PTRACK_A_TRACKER_PAGES] = { .type = NLA_U64 },
	[PTRACK_A_TRACKER_OVERFLOWS] = { .type = NLA_U64 },
	[PTRACK_A_TRACKER_LOSSY] = { .type = NLA_FLAG },
	[PTRACK_A_TRACKER_SUBSCRIBERS] = { .type = NLA_U32 },
	[PTRACK_A_SUB_MODE] = { .type = NLA_U32 },
	[PTRACK_A_CPU] = { .type = NLA_U32 },
	[PTRACK_A_MAX_PAGES] = { .type = NLA_U32 },
	[PTRACK_A_FLUSH] = { .type = NLA_FLAG },
	[PTRACK_A_PAGES] = { .type = NLA_UNSPEC },
	[PTRACK_A_LOSSY] = { .type = NLA_FLAG },
	[PTRACK_A_MORE] = { .type = NLA_FLAG },
	[PTRACK_A_OLD_VMID] = { .type = NLA_U32 },
};

/* --- building ------------------------------------------------------------ */

int ptnl_put_cmd(struct nl_msg *msg, int family, uint8_t cmd, int flags)
{
	if (!genlmsg_put(msg, NL_AUTO_PORT, NL_AUTO_SEQ, family, 0, flags, cmd,
			 PTRACK_GENL_VERSION))
		return -EMSGSIZE;
	return 0;
}

int ptnl_put_tracker_cmd(struct nl_msg *msg, int family, uint8_t cmd,
			 uint32_t tracker)
{
	int ret;

	if (!tracker)
		return -EINVAL;
	ret = ptnl_put_cmd(msg, family, cmd, 0);
	if (ret)
		return ret;
	return nla_put_u32(msg, PTRACK_A_TRACKER_ID, tracker) ? -EMSGSIZE : 0;
}

int ptnl_put_subscribe(struct nl_msg *msg, int family, uint32_t tracker,
		       uint32_t mode)
{
	int ret;

	if (mode > PTRACK_SUB_PER_CPU)
		return -EINVAL;
	ret = ptnl_put_tracker_cmd(msg, family, PTRACK_CMD_SUBSCRIBE, tracker);
	if (ret)
		return ret;
	return nla_put_u32(msg, PTRACK_A_SUB_MODE, mode) ? -EMSGSIZE : 0;
}

int ptnl_put_read(struct nl_msg *msg, int family, uint32_t tracker, int cpu,
		  uint32_t max, bool flush)
{
	int ret;

	if (cpu < -1 || max > PTRACK_READ_MAX_PAGES)
		return -EINVAL;
	ret = ptnl_put_tracker_cmd(msg, family, PTRACK_CMD_READ, tracker);
	if (ret)
		return ret;
	if ((cpu >= 0 && nla_put_u32(msg, PTRACK_A_CPU, (uint32_t)cpu)) ||
	    (max && nla_put_u32(msg, PTRACK_A_MAX_PAGES, max)) ||
	    (flush && nla_put_flag(msg, PTRACK_A_FLUSH)))
		return -EMSGSIZE;
	return 0;
}

/* --- parsing ------------------------------------------------------------- */

static int parse(struct nlmsghdr *nlh, struct nlattr **tb, uint8_t *cmd)
{
	struct genlmsghdr *g;

	if (!genlmsg_valid_hdr(nlh, 0))
		return -EPROTO;
	g = genlmsg_hdr(nlh);
	*cmd = g->cmd;
	if (genlmsg_parse(nlh, 0, tb, PTRACK_A_MAX, ptnl_policy) < 0)
		return -EPROTO;
	return 0;
}

static uint32_t get_u32(struct nlattr **tb, int type)
{
	return tb[type] ? nla_get_u32(tb[type]) : 0;
}

static uint64_t get_u64(struct nlattr **tb, int type)
{
	return tb[type] ? nla_get_u64(tb[type]) : 0;
}

int ptnl_parse_device(struct nlmsghdr *nlh, struct ptnl_device *d)
{
	struct nlattr *tb[PTRACK_A_MAX + 1];
	uint8_t cmd;
	int ret = parse(nlh, tb, &cmd);

	if (ret)
		return ret;
	if (cmd != PTRACK_CMD_GET_DEVICE || !tb[PTRACK_A_DEV_VERSION])
		return -EPROTO;
	memset(d, 0, sizeof(*d));
	if (tb[PTRACK_A_DEV_NAME])
		nla_strlcpy(d->name, tb[PTRACK_A_DEV_NAME], sizeof(d->name));
	d->version = get_u32(tb, PTRACK_A_DEV_VERSION);
	d->caps = get_u32(tb, PTRACK_A_DEV_CAPS);
	d->contexts = get_u32(tb, PTRACK_A_DEV_CONTEXTS);
	d->contexts_used = get_u32(tb, PTRACK_A_DEV_CONTEXTS_USED);
	d->cpus = get_u32(tb, PTRACK_A_DEV_CPUS);
	d->ring_entries = get_u32(tb, PTRACK_A_DEV_RING_ENTRIES);
	d->entries = get_u64(tb, PTRACK_A_DEV_ENTRIES);
	d->lost = get_u64(tb, PTRACK_A_DEV_LOST);
	d->irqs = get_u64(tb, PTRACK_A_DEV_IRQS);
	d->flushes = get_u64(tb, PTRACK_A_DEV_FLUSHES);
	return 0;
}

static int fill_tracker(struct nlattr **tb, struct ptnl_tracker *t)
{
	memset(t, 0, sizeof(*t));
	if (!tb[PTRACK_A_TRACKER_ID])
		return -EPROTO;
	t->id = get_u32(tb, PTRACK_A_TRACKER_ID);
	t->vmid = get_u32(tb, PTRACK_A_TRACKER_VMID);
	t->pid = get_u32(tb, PTRACK_A_TRACKER_PID);
	t->mode = get_u32(tb, PTRACK_A_TRACKER_MODE);
	t->page_shift = get_u32(tb, PTRACK_A_TRACKER_PAGE_SHIFT);
	t->subscribers = get_u32(tb, PTRACK_A_TRACKER_SUBSCRIBERS);
	t->all_cpus = tb[PTRACK_A_TRACKER_ALL_CPUS] != NULL;
	t->lossy = tb[PTRACK_A_TRACKER_LOSSY] != NULL;
	t->pages = get_u64(tb, PTRACK_A_TRACKER_PAGES);
	t->overflows = get_u64(tb, PTRACK_A_TRACKER_OVERFLOWS);
	if (tb[PTRACK_A_TRACKER_CPUS]) {
		size_t len = (size_t)nla_len(tb[PTRACK_A_TRACKER_CPUS]);

		if (len % sizeof(uint64_t))
			return -EPROTO;
		len /= sizeof(uint64_t);
		/* CPUs past PTNL_MAX_CPUS are not represented. */
		if (len > PTNL_MAX_CPUS / 64)
			len = PTNL_MAX_CPUS / 64;
		memcpy(t->cpus, nla_data(tb[PTRACK_A_TRACKER_CPUS]),
		       len * sizeof(uint64_t));
		t->ncpu_words = (uint32_t)len;
	}
	return 0;
}

int ptnl_parse_tracker(struct nlmsghdr *nlh, struct ptnl_tracker *t)
{
	struct nlattr *tb[PTRACK_A_MAX + 1];
	uint8_t cmd;
	int ret = parse(nlh, tb, &cmd);

	if (ret)
		return ret;
	if (cmd != PTRACK_CMD_GET_TRACKER)
		return -EPROTO;
	return fill_tracker(tb, t);
}

int ptnl_parse_batch(struct nlmsghdr *nlh, struct ptnl_batch *b, size_t cap)
{
	struct nlattr *tb[PTRACK_A_MAX + 1];
	size_t len;
	uint8_t cmd;
	int ret = parse(nlh, tb, &cmd);

	if (ret)
		return ret;
	if (cmd != PTRACK_CMD_READ || !tb[PTRACK_A_TRACKER_ID] ||
	    !tb[PTRACK_A_PAGES])
		return -EPROTO;
	len = (size_t)nla_len(tb[PTRACK_A_PAGES]);
	if (len % sizeof(uint64_t))
		return -EPROTO;
	len /= sizeof(uint64_t);
	if (len > cap)
		return -ENOSPC;
	b->tracker_id = get_u32(tb, PTRACK_A_TRACKER_ID);
	b->cpu = tb[PTRACK_A_CPU] ? (int)get_u32(tb, PTRACK_A_CPU) : -1;
	b->lossy = tb[PTRACK_A_LOSSY] != NULL;
	b->more = tb[PTRACK_A_MORE] != NULL;
	if (len)
		memcpy(b->pages, nla_data(tb[PTRACK_A_PAGES]),
		       len * sizeof(uint64_t));
	b->n = len;
	return 0;
}

int ptnl_parse_event(struct nlmsghdr *nlh, struct ptnl_event *e)
{
	struct nlattr *tb[PTRACK_A_MAX + 1];
	uint8_t cmd;
	int ret = parse(nlh, tb, &cmd);

	if (ret)
		return ret;
	switch (cmd) {
	case PTRACK_CMD_EVENT_TRACKER_NEW:
	case PTRACK_CMD_EVENT_TRACKER_DEL:
	case PTRACK_CMD_EVENT_OVERFLOW:
		break;
	case PTRACK_CMD_EVENT_VMID_CHANGED:
		if (!tb[PTRACK_A_OLD_VMID])
			return -EPROTO;
		break;
	default:
		return -EPROTO;
	}
	e->cmd = cmd;
	e->old_vmid = get_u32(tb, PTRACK_A_OLD_VMID);
	return fill_tracker(tb, &e->tracker);
}

/* --- the client ---------------------------------------------------------- */

static int nlerr(int err)
{
	/* libnl's own codes for the failures of its socket calls */
	switch (-err) {
	case NLE_NOMEM:
		return -ENOMEM;
	case NLE_OBJ_NOTFOUND:
		return -ENOENT;
	case NLE_PERM:
		return -EPERM;
	case NLE_AGAIN:
		return -EAGAIN;
	case NLE_INTR:
		return -EINTR;
	case NLE_NOACCESS:
		return -EACCES;
	case NLE_INVAL:
		return -EINVAL;
	case NLE_MSG_TRUNC:
		return -EMSGSIZE;
	case NLE_MSG_OVERFLOW:
		return -ENOBUFS;
	case NLE_SEQ_MISMATCH:
		return -EILSEQ;
	case NLE_MSG_TOOSHORT:
	case NLE_PROTO_MISMATCH:
		return -EPROTO;
	case NLE_BAD_SOCK:
		return -EBADF;
	default:
		return -EIO;
	}
}

static int open_sock(struct ptnl **out, bool events)
{
	struct ptnl *h;
	int ret;

	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->sock = nl_socket_alloc();
	if (!h->sock) {
		ret = -ENOMEM;
		goto err_free;
	}
	ret = genl_connect(h->sock);
	if (ret < 0) {
		ret = nlerr(ret);
		goto err_sock;
	}
	h->family = genl_ctrl_resolve(h->sock, PTRACK_GENL_NAME);
	if (h->family < 0) {
		ret = -ENOENT;
		goto err_sock;
	}
	h->events_group = -1;
	if (events) {
		h->events_group = genl_ctrl_resolve_grp(
			h->sock, PTRACK_GENL_NAME, PTRACK_MCGRP_EVENTS);
		if (h->events_group < 0) {
			ret = -ENOENT;
			goto err_sock;
		}
		nl_socket_disable_seq_check(h->sock);
		ret = nl_socket_add_membership(h->sock, h->events_group);
		if (ret < 0) {
			ret = -EPERM;
			goto err_sock;
		}
	}
	*out = h;
	return 0;

err_sock:
	nl_socket_free(h->sock);
err_free:
	free(h);
	return ret;
}

int ptnl_open(struct ptnl **out)
{
	return open_sock(out, false);
}

int ptnl_open_events(struct ptnl **out)
{
	return open_sock(out, true);
}

void ptnl_close(struct ptnl *h)
{
	if (!h)
		return;
	nl_socket_free(h->sock);
	free(h);
}

int ptnl_family(const struct ptnl *h)
{
	return h->family;
}

int ptnl_fd(const struct ptnl *h)
{
	return nl_socket_get_fd(h->sock);
}

struct request {
	int (*parse)(struct nlmsghdr *nlh, void *arg);
	void *arg;
	int err;
	bool done;
};

static int on_valid(struct nl_msg *msg, void *arg)
{
	struct request *r = arg;
	int ret;

	if (!r->parse || r->err)
		return NL_OK;
	ret = r->parse(nlmsg_hdr(msg), r->arg);
	if (ret < 0) {
		r->err = ret;
		return NL_STOP;
	}
	if (ret > 0) /* the callback asked to stop: not an error */
		r->parse = NULL;
	return NL_OK;
}

static int on_error(struct sockaddr_nl *nla, struct nlmsgerr *e, void *arg)
{
	struct request *r = arg;

	(void)nla;
	if (!r->err)
		r->err = e->error;
	r->done = true;
	return NL_STOP;
}

static int on_done(struct nl_msg *msg, void *arg)
{
	struct request *r = arg;

	(void)msg;
	r->done = true;
	return NL_STOP;
}

/* Sends @msg (freed) and receives until its ACK or the end of the dump. */
static int transact(struct ptnl *h, struct nl_msg *msg,
		    int (*parse_cb)(struct nlmsghdr *nlh, void *arg), void *arg)
{
	struct request r = { .parse = parse_cb, .arg = arg };
	struct nl_cb *cb;
	int ret;

	cb = nl_cb_alloc(NL_CB_CUSTOM);
	if (!cb) {
		nlmsg_free(msg);
		return -ENOMEM;
	}
	nl_cb_set(cb, NL_CB_VALID, NL_CB_CUSTOM, on_valid, &r);
	nl_cb_set(cb, NL_CB_ACK, NL_CB_CUSTOM, on_done, &r);
	nl_cb_set(cb, NL_CB_FINISH, NL_CB_CUSTOM, on_done, &r);
	nl_cb_err(cb, NL_CB_CUSTOM, on_error, &r);
	nlmsg_hdr(msg)->nlmsg_flags |= NLM_F_ACK;
	ret = nl_send_auto(h->sock, msg);
	nlmsg_free(msg);
	if (ret < 0) {
		ret = nlerr(ret);
		goto out;
	}
	while (!r.done) {
		ret = nl_recvmsgs(h->sock, cb);
		if (ret < 0 && !r.done) {
			ret = r.err ? r.err : nlerr(ret);
			goto out;
		}
	}
	ret = r.err;
out:
	nl_cb_put(cb);
	return ret;
}

static struct nl_msg *new_msg(void)
{
	return nlmsg_alloc();
}

static int parse_device_cb(struct nlmsghdr *nlh, void *arg)
{
	return ptnl_parse_device(nlh, arg);
}

int ptnl_get_device(struct ptnl *h, struct ptnl_device *d)
{
	struct nl_msg *msg = new_msg();
	int ret;

	if (!msg)
		return -ENOMEM;
	memset(d, 0, sizeof(*d));
	ret = ptnl_put_cmd(msg, h->family, PTRACK_CMD_GET_DEVICE, 0);
	if (ret) {
		nlmsg_free(msg);
		return ret;
	}
	ret = transact(h, msg, parse_device_cb, d);
	if (!ret && !d->version)
		ret = -EPROTO; /* acked without a reply */
	return ret;
}

static int parse_tracker_cb(struct nlmsghdr *nlh, void *arg)
{
	return ptnl_parse_tracker(nlh, arg);
}

int ptnl_get_tracker(struct ptnl *h, uint32_t id, struct ptnl_tracker *t)
{
	struct nl_msg *msg = new_msg();
	int ret;

	if (!msg)
		return -ENOMEM;
	memset(t, 0, sizeof(*t));
	ret = ptnl_put_tracker_cmd(msg, h->family, PTRACK_CMD_GET_TRACKER, id);
	if (ret) {
		nlmsg_free(msg);
		return ret;
	}
	ret = transact(h, msg, parse_tracker_cb, t);
	if (!ret && t->id != id)
		ret = -EPROTO;
	return ret;
}

struct dump_ctx {
	int (*cb)(const struct ptnl_tracker *t, void *arg);
	void *arg;
};

static int dump_cb(struct nlmsghdr *nlh, void *arg)
{
	struct dump_ctx *d = arg;
	struct ptnl_tracker t;
	int ret = ptnl_parse_tracker(nlh, &t);

	if (ret)
		return ret;
	return d->cb(&t, d->arg) ? 1 : 0;
}

int ptnl_dump_trackers(struct ptnl *h,
		       int (*cb)(const struct ptnl_tracker *t, void *arg),
		       void *arg)
{
	struct dump_ctx d = { .cb = cb, .arg = arg };
	struct nl_msg *msg = new_msg();
	int ret;

	if (!msg)
		return -ENOMEM;
	ret = ptnl_put_cmd(msg, h->family, PTRACK_CMD_GET_TRACKER, NLM_F_DUMP);
	if (ret) {
		nlmsg_free(msg);
		return ret;
	}
	return transact(h, msg, dump_cb, &d);
}

static int simple(struct ptnl *h, uint8_t cmd, uint32_t tracker)
{
	struct nl_msg *msg = new_msg();
	int ret;

	if (!msg)
		return -ENOMEM;
	ret = ptnl_put_tracker_cmd(msg, h->family, cmd, tracker);
	if (ret) {
		nlmsg_free(msg);
		return ret;
	}
	return transact(h, msg, NULL, NULL);
}

int ptnl_subscribe(struct ptnl *h, uint32_t tracker, uint32_t mode)
{
	struct nl_msg *msg = new_msg();
	int ret;

	if (!msg)
		return -ENOMEM;
	ret = ptnl_put_subscribe(msg, h->family, tracker, mode);
	if (ret) {
		nlmsg_free(msg);
		return ret;
	}
	return transact(h, msg, NULL, NULL);
}

int ptnl_unsubscribe(struct ptnl *h, uint32_t tracker)
{
	return simple(h, PTRACK_CMD_UNSUBSCRIBE, tracker);
}

int ptnl_flush(struct ptnl *h, uint32_t tracker)
{
	return simple(h, PTRACK_CMD_FLUSH, tracker);
}

struct read_ctx {
	struct ptnl_batch *b;
	size_t cap;
	bool got;
};

static int read_cb(struct nlmsghdr *nlh, void *arg)
{
	struct read_ctx *c = arg;
	int ret = ptnl_parse_batch(nlh, c->b, c->cap);

	if (!ret)
		c->got = true;
	return ret;
}

int ptnl_read(struct ptnl *h, uint32_t tracker, int cpu, bool flush,
	      uint64_t *pages, size_t cap, struct ptnl_batch *b)
{
	struct read_ctx c = { .b = b, .cap = cap };
	struct nl_msg *msg;
	uint32_t max;
	int ret;

	if (!cap)
		return -EINVAL;
	max = cap > PTRACK_READ_MAX_PAGES ? PTRACK_READ_MAX_PAGES
					  : (uint32_t)cap;
	memset(b, 0, sizeof(*b));
	b->pages = pages;
	msg = new_msg();
	if (!msg)
		return -ENOMEM;
	ret = ptnl_put_read(msg, h->family, tracker, cpu, max, flush);
	if (ret) {
		nlmsg_free(msg);
		return ret;
	}
	ret = transact(h, msg, read_cb, &c);
	if (!ret && !c.got)
		ret = -EPROTO;
	return ret;
}

struct event_ctx {
	int (*cb)(const struct ptnl_event *e, void *arg);
	void *arg;
	int ret;
};

static int on_event(struct nl_msg *msg, void *arg)
{
	struct event_ctx *c = arg;
	struct ptnl_event e;

	/* Unknown events from a newer kernel are skipped. */
	if (ptnl_parse_event(nlmsg_hdr(msg), &e))
		return NL_SKIP;
	c->ret = c->cb(&e, c->arg);
	return c->ret ? NL_STOP : NL_OK;
}

static int no_seq_check(struct nl_msg *msg, void *arg)
{
	(void)msg;
	(void)arg;
	return NL_OK;
}

int ptnl_recv_events(struct ptnl *h,
		     int (*cb)(const struct ptnl_event *e, void *arg),
		     void *arg)
{
	struct event_ctx c = { .cb = cb, .arg = arg };
	struct nl_cb *ncb;
	int ret;

	if (h->events_group < 0)
		return -EINVAL;
	ncb = nl_cb_alloc(NL_CB_CUSTOM);
	if (!ncb)
		return -ENOMEM;
	nl_cb_set(ncb, NL_CB_VALID, NL_CB_CUSTOM, on_event, &c);
	/* Multicast messages carry no sequence number of ours. */
	nl_cb_set(ncb, NL_CB_SEQ_CHECK, NL_CB_CUSTOM, no_seq_check, NULL);
	ret = nl_recvmsgs(h->sock, ncb);
	nl_cb_put(ncb);
	if (ret < 0)
		return nlerr(ret);
	return c.ret;
}
