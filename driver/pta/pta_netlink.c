// SPDX-License-Identifier: GPL-2.0
/*
 * The "ptrack" generic netlink family (include/uapi/linux/ptrack.h): device
 * and tracker information, per-socket subscriptions to a tracker's dirty
 * pages, and events. Requests are validated strictly against one policy;
 * subscriptions, reads and flushes need CAP_NET_ADMIN, and so does joining
 * the events group.
 */
#include <linux/netlink.h>
#include <linux/slab.h>
#include <net/genetlink.h>
#include <net/net_namespace.h>

#include <uapi/linux/ptrack.h>

#include "pta.h"

static struct genl_family pta_nl_family;

static const struct nla_policy pta_nl_policy[PTRACK_A_MAX + 1] = {
	[PTRACK_A_TRACKER_ID] = NLA_POLICY_MIN(NLA_U32, 1),
	[PTRACK_A_SUB_MODE] = NLA_POLICY_MAX(NLA_U32, PTRACK_SUB_PER_CPU),
	[PTRACK_A_CPU] = { .type = NLA_U32 },
	[PTRACK_A_MAX_PAGES] = NLA_POLICY_RANGE(NLA_U32, 1,
						PTRACK_READ_MAX_PAGES),
	[PTRACK_A_FLUSH] = { .type = NLA_FLAG },
};

static int pta_nl_put_cpus(struct sk_buff *skb, struct pta_dev *pd,
			   const struct pta_tracker *pt)
{
	u32 nwords = DIV_ROUND_UP(nr_cpu_ids, 64), id;
	struct nlattr *a;
	u64 *words;

	a = nla_reserve(skb, PTRACK_A_TRACKER_CPUS, nwords * sizeof(u64));
	if (!a)
		return -EMSGSIZE;
	words = nla_data(a);
	memset(words, 0, nwords * sizeof(u64));
	for (id = 0; id < pd->hw.ncpus; id++) {
		int cpu = pd->id_to_cpu[id];

		if (cpu >= 0 && (pt->cfg.all_cpus || (pt->cfg.cpumask >> id & 1)))
			words[cpu / 64] |= 1ULL << (cpu % 64);
	}
	return 0;
}

static int pta_nl_fill_tracker(struct sk_buff *skb, struct pta_dev *pd,
			       const struct pta_tracker *pt, u32 portid,
			       u32 seq, int flags, u8 cmd, u16 old_vmid)
{
	void *hdr;

	hdr = genlmsg_put(skb, portid, seq, &pta_nl_family, flags, cmd);
	if (!hdr)
		return -EMSGSIZE;
	if (nla_put_u32(skb, PTRACK_A_TRACKER_ID, pt->id) ||
	    nla_put_u32(skb, PTRACK_A_TRACKER_VMID, pt->p.vmid) ||
	    nla_put_u32(skb, PTRACK_A_TRACKER_PID, pt->p.pid) ||
	    nla_put_u32(skb, PTRACK_A_TRACKER_MODE, pt->p.mode) ||
	    nla_put_u32(skb, PTRACK_A_TRACKER_PAGE_SHIFT, pt->p.page_shift) ||
	    (pt->all_refs && nla_put_flag(skb, PTRACK_A_TRACKER_ALL_CPUS)) ||
	    pta_nl_put_cpus(skb, pd, pt) ||
	    nla_put_u64_64bit(skb, PTRACK_A_TRACKER_PAGES, pt->pages_logged,
			      PTRACK_A_PAD) ||
	    nla_put_u64_64bit(skb, PTRACK_A_TRACKER_OVERFLOWS, pt->overflows,
			      PTRACK_A_PAD) ||
	    (pta_tracker_lossy(pt) &&
	     nla_put_flag(skb, PTRACK_A_TRACKER_LOSSY)) ||
	    nla_put_u32(skb, PTRACK_A_TRACKER_SUBSCRIBERS,
			pt->nviews ? pt->nviews - 1 : 0) ||
	    (cmd == PTRACK_CMD_EVENT_VMID_CHANGED &&
	     nla_put_u32(skb, PTRACK_A_OLD_VMID, old_vmid))) {
		genlmsg_cancel(skb, hdr);
		return -EMSGSIZE;
	}
	genlmsg_end(skb, hdr);
	return 0;
}

/* Called with pta_lock held. */
void pta_netlink_tracker_event(struct pta_dev *pd, struct pta_tracker *pt,
			       u8 cmd, u16 old_vmid)
{
	struct sk_buff *skb;

	if (!genl_has_listeners(&pta_nl_family, &init_net, 0))
		return;
	skb = genlmsg_new(NLMSG_DEFAULT_SIZE, GFP_KERNEL);
	if (!skb)
		return;
	if (pta_nl_fill_tracker(skb, pd, pt, 0, 0, 0, cmd, old_vmid)) {
		nlmsg_free(skb);
		return;
	}
	genlmsg_multicast(&pta_nl_family, skb, 0, 0, GFP_KERNEL);
}

static int pta_nl_get_device(struct sk_buff *skb, struct genl_info *info)
{
	struct pta_dev *pd;
	struct sk_buff *msg;
	void *hdr;
	u32 caps;
	int ret;

	msg = genlmsg_new(NLMSG_DEFAULT_SIZE, GFP_KERNEL);
	if (!msg)
		return -ENOMEM;
	hdr = genlmsg_put_reply(msg, info, &pta_nl_family, 0,
				PTRACK_CMD_GET_DEVICE);
	if (!hdr) {
		ret = -EMSGSIZE;
		goto err_free;
	}
	mutex_lock(&pta_lock);
	pd = pta_the_dev;
	if (!pd) {
		mutex_unlock(&pta_lock);
		ret = -ENODEV;
		goto err_free;
	}
	caps = PTRACK_DEV_CAP_PER_CPU | PTRACK_DEV_CAP_FLUSH;
	if (pd->hw.caps & PTA_CAPS_VMID16)
		caps |= PTRACK_DEV_CAP_VMID16;
	if (pd->hw.caps & PTA_CAPS_BLOCKS)
		caps |= PTRACK_DEV_CAP_BLOCKS;
	ret = -EMSGSIZE;
	if (nla_put_string(msg, PTRACK_A_DEV_NAME, dev_name(pd->dev)) ||
	    nla_put_u32(msg, PTRACK_A_DEV_VERSION, pd->hw.version) ||
	    nla_put_u32(msg, PTRACK_A_DEV_CAPS, caps) ||
	    nla_put_u32(msg, PTRACK_A_DEV_CONTEXTS, pd->hw.nctx) ||
	    nla_put_u32(msg, PTRACK_A_DEV_CONTEXTS_USED, pd->core.ntrackers) ||
	    nla_put_u32(msg, PTRACK_A_DEV_CPUS, pd->hw.ncpus) ||
	    nla_put_u32(msg, PTRACK_A_DEV_RING_ENTRIES, 1U << pd->ring_log2) ||
	    nla_put_u64_64bit(msg, PTRACK_A_DEV_ENTRIES,
			      pd->core.stats.entries, PTRACK_A_PAD) ||
	    nla_put_u64_64bit(msg, PTRACK_A_DEV_LOST, pta_hw_lost(&pd->hw),
			      PTRACK_A_PAD) ||
	    nla_put_u64_64bit(msg, PTRACK_A_DEV_IRQS, pd->irqs, PTRACK_A_PAD) ||
	    nla_put_u64_64bit(msg, PTRACK_A_DEV_FLUSHES,
			      pd->core.stats.flushes, PTRACK_A_PAD)) {
		mutex_unlock(&pta_lock);
		goto err_free;
	}
	mutex_unlock(&pta_lock);
	genlmsg_end(msg, hdr);
	return genlmsg_reply(msg, info);

err_free:
	nlmsg_free(msg);
	return ret;
}

/* Looks up the tracker named by PTRACK_A_TRACKER_ID. Called with pta_lock. */
static struct pta_tracker *pta_nl_tracker(struct genl_info *info,
					  struct pta_dev **pdp)
{
	struct pta_tracker *pt;

	*pdp = pta_the_dev;
	if (!*pdp) {
		GENL_SET_ERR_MSG(info, "no page tracking agent");
		return ERR_PTR(-ENODEV);
	}
	if (GENL_REQ_ATTR_CHECK(info, PTRACK_A_TRACKER_ID))
		return ERR_PTR(-EINVAL);
	pt = pta_tracker_get(&(*pdp)->core,
			     nla_get_u32(info->attrs[PTRACK_A_TRACKER_ID]));
	if (!pt) {
		NL_SET_ERR_MSG_ATTR(info->extack,
				    info->attrs[PTRACK_A_TRACKER_ID],
				    "no such tracker");
		return ERR_PTR(-ENOENT);
	}
	return pt;
}

static int pta_nl_get_tracker(struct sk_buff *skb, struct genl_info *info)
{
	struct pta_tracker *pt;
	struct pta_dev *pd;
	struct sk_buff *msg;
	int ret;

	msg = genlmsg_new(NLMSG_DEFAULT_SIZE, GFP_KERNEL);
	if (!msg)
		return -ENOMEM;
	mutex_lock(&pta_lock);
	pt = pta_nl_tracker(info, &pd);
	if (IS_ERR(pt))
		ret = PTR_ERR(pt);
	else
		ret = pta_nl_fill_tracker(msg, pd, pt, info->snd_portid,
					  info->snd_seq, 0,
					  PTRACK_CMD_GET_TRACKER, 0);
	mutex_unlock(&pta_lock);
	if (ret) {
		nlmsg_free(msg);
		return ret;
	}
	return genlmsg_reply(msg, info);
}

static int pta_nl_dump_trackers(struct sk_buff *skb,
				struct netlink_callback *cb)
{
	struct pta_dev *pd;
	unsigned long ctx;
	int ret = 0;

	mutex_lock(&pta_lock);
	pd = pta_the_dev;
	for (ctx = cb->args[0]; pd && ctx < pd->core.nctx; ctx++) {
		struct pta_tracker *pt = pd->core.trackers[ctx];

		if (!pt)
			continue;
		ret = pta_nl_fill_tracker(skb, pd, pt,
					  NETLINK_CB(cb->skb).portid,
					  cb->nlh->nlmsg_seq, NLM_F_MULTI,
					  PTRACK_CMD_GET_TRACKER, 0);
		if (ret)
			break;
	}
	mutex_unlock(&pta_lock);
	cb->args[0] = ctx;
	/* A full skb ends this part of the dump; the next one resumes. */
	if (ret == -EMSGSIZE && skb->len)
		return skb->len;
	return ret ? ret : skb->len;
}

static int pta_nl_subscribe(struct sk_buff *skb, struct genl_info *info)
{
	u32 mode = PTRACK_SUB_DRAIN;
	struct pta_tracker *pt;
	struct pta_view *v;
	struct pta_dev *pd;
	int ret;

	if (info->attrs[PTRACK_A_SUB_MODE])
		mode = nla_get_u32(info->attrs[PTRACK_A_SUB_MODE]);
	mutex_lock(&pta_lock);
	pt = pta_nl_tracker(info, &pd);
	if (IS_ERR(pt))
		ret = PTR_ERR(pt);
	else
		ret = pta_view_create(pt, mode == PTRACK_SUB_PER_CPU ?
				      PTA_VIEW_PER_CPU : 0,
				      info->snd_portid, &v);
	mutex_unlock(&pta_lock);
	if (ret == -EEXIST)
		GENL_SET_ERR_MSG(info, "already subscribed");
	return ret;
}

static int pta_nl_unsubscribe(struct sk_buff *skb, struct genl_info *info)
{
	struct pta_tracker *pt;
	struct pta_view *v;
	struct pta_dev *pd;
	int ret = 0;

	mutex_lock(&pta_lock);
	pt = pta_nl_tracker(info, &pd);
	if (IS_ERR(pt)) {
		ret = PTR_ERR(pt);
	} else {
		v = pta_view_find(pt, info->snd_portid);
		if (v)
			pta_view_destroy(v);
		else
			ret = -ENOENT;
	}
	mutex_unlock(&pta_lock);
	return ret;
}

static int pta_nl_read(struct sk_buff *skb, struct genl_info *info)
{
	u32 max = PTRACK_READ_MAX_PAGES, flags = 0, tid = 0;
	struct pta_tracker *pt;
	struct sk_buff *msg;
	struct pta_view *v;
	struct pta_dev *pd;
	int id = -1, n;
	u64 *pages;
	void *hdr;

	if (info->attrs[PTRACK_A_MAX_PAGES])
		max = nla_get_u32(info->attrs[PTRACK_A_MAX_PAGES]);
	pages = kvmalloc_array(max, sizeof(*pages), GFP_KERNEL);
	if (!pages)
		return -ENOMEM;

	mutex_lock(&pta_lock);
	pt = pta_nl_tracker(info, &pd);
	if (IS_ERR(pt)) {
		n = PTR_ERR(pt);
		goto unlock;
	}
	tid = pt->id;
	v = pta_view_find(pt, info->snd_portid);
	if (!v) {
		GENL_SET_ERR_MSG(info, "not subscribed");
		n = -ENOENT;
		goto unlock;
	}
	if (info->attrs[PTRACK_A_CPU]) {
		u32 cpu = nla_get_u32(info->attrs[PTRACK_A_CPU]);

		id = cpu < nr_cpu_ids ? pta_cpu_to_id(pd, cpu) : -EINVAL;
		if (id < 0) {
			NL_SET_ERR_MSG_ATTR(info->extack,
					    info->attrs[PTRACK_A_CPU],
					    "CPU not tracked by the device");
			n = -EINVAL;
			goto unlock;
		}
	}
	/* A failed flush or drain makes the views lossy: still read. */
	if (nla_get_flag(info->attrs[PTRACK_A_FLUSH]))
		pta_core_flush(&pd->core);
	else
		pta_core_drain(&pd->core);
	pta_report_overflows(pd);
	n = pta_view_read(v, id, pages, max, &flags);
unlock:
	mutex_unlock(&pta_lock);
	if (n < 0)
		goto out_free;

	msg = genlmsg_new(nla_total_size(n * sizeof(u64)) + 128,
			  GFP_KERNEL);
	if (!msg) {
		/* The pages are gone from the view: report them lost. */
		n = -ENOMEM;
		goto out_lossy;
	}
	hdr = genlmsg_put_reply(msg, info, &pta_nl_family, 0, PTRACK_CMD_READ);
	if (!hdr ||
	    nla_put_u32(msg, PTRACK_A_TRACKER_ID, tid) ||
	    nla_put(msg, PTRACK_A_PAGES, n * sizeof(u64), pages) ||
	    (id >= 0 && nla_put_u32(msg, PTRACK_A_CPU,
				    nla_get_u32(info->attrs[PTRACK_A_CPU]))) ||
	    ((flags & PTA_READ_LOSSY) && nla_put_flag(msg, PTRACK_A_LOSSY)) ||
	    ((flags & PTA_READ_MORE) && nla_put_flag(msg, PTRACK_A_MORE))) {
		nlmsg_free(msg);
		n = -EMSGSIZE;
		goto out_lossy;
	}
	genlmsg_end(msg, hdr);
	kvfree(pages);
	pages = NULL;
	n = genlmsg_reply(msg, info);
	if (!n)
		return 0;
	/* The reply was not delivered (receive buffer full). */
out_lossy:
	mutex_lock(&pta_lock);
	if (pta_the_dev == pd) {
		pt = pta_tracker_get(&pd->core, tid);
		v = pt ? pta_view_find(pt, info->snd_portid) : NULL;
		if (v)
			v->lossy = true;
	}
	mutex_unlock(&pta_lock);
out_free:
	kvfree(pages);
	return n;
}

static int pta_nl_flush(struct sk_buff *skb, struct genl_info *info)
{
	struct pta_tracker *pt;
	struct pta_dev *pd;
	int ret;

	mutex_lock(&pta_lock);
	pt = pta_nl_tracker(info, &pd);
	if (IS_ERR(pt)) {
		ret = PTR_ERR(pt);
	} else {
		ret = pta_core_flush(&pd->core);
		pta_report_overflows(pd);
	}
	mutex_unlock(&pta_lock);
	return ret;
}

static const struct genl_small_ops pta_nl_ops[] = {
	{
		.cmd = PTRACK_CMD_GET_DEVICE,
		.doit = pta_nl_get_device,
	},
	{
		.cmd = PTRACK_CMD_GET_TRACKER,
		.doit = pta_nl_get_tracker,
		.dumpit = pta_nl_dump_trackers,
	},
	{
		.cmd = PTRACK_CMD_SUBSCRIBE,
		.flags = GENL_ADMIN_PERM,
		.doit = pta_nl_subscribe,
	},
	{
		.cmd = PTRACK_CMD_UNSUBSCRIBE,
		.flags = GENL_ADMIN_PERM,
		.doit = pta_nl_unsubscribe,
	},
	{
		.cmd = PTRACK_CMD_READ,
		.flags = GENL_ADMIN_PERM,
		.doit = pta_nl_read,
	},
	{
		.cmd = PTRACK_CMD_FLUSH,
		.flags = GENL_ADMIN_PERM,
		.doit = pta_nl_flush,
	},
};

static const struct genl_multicast_group pta_nl_mcgrps[] = {
	{ .name = PTRACK_MCGRP_EVENTS, .flags = GENL_MCAST_CAP_NET_ADMIN },
};

static struct genl_family pta_nl_family = {
	.name = PTRACK_GENL_NAME,
	.version = PTRACK_GENL_VERSION,
	.maxattr = PTRACK_A_MAX,
	.policy = pta_nl_policy,
	.module = THIS_MODULE,
	.small_ops = pta_nl_ops,
	.n_small_ops = ARRAY_SIZE(pta_nl_ops),
	.resv_start_op = PTRACK_CMD_GET_DEVICE,
	.mcgrps = pta_nl_mcgrps,
	.n_mcgrps = ARRAY_SIZE(pta_nl_mcgrps),
};

/* A closed socket's subscriptions end with it. */
static int pta_nl_notify(struct notifier_block *nb, unsigned long event,
			 void *ptr)
{
	struct netlink_notify *n = ptr;
	struct pta_dev *pd;
	u32 ctx;

	if (event != NETLINK_URELEASE || n->protocol != NETLINK_GENERIC ||
	    !net_eq(n->net, &init_net) || n->portid == PTA_OWNER_KVM)
		return NOTIFY_DONE;
	mutex_lock(&pta_lock);
	pd = pta_the_dev;
	for (ctx = 0; pd && ctx < pd->core.nctx; ctx++) {
		struct pta_tracker *pt = pd->core.trackers[ctx];
		struct pta_view *v = pt ? pta_view_find(pt, n->portid) : NULL;

		if (v)
			pta_view_destroy(v);
	}
	mutex_unlock(&pta_lock);
	return NOTIFY_DONE;
}

static struct notifier_block pta_nl_notifier = {
	.notifier_call = pta_nl_notify,
};

int __init pta_netlink_init(void)
{
	int ret;

	ret = genl_register_family(&pta_nl_family);
	if (ret)
		return ret;
	ret = netlink_register_notifier(&pta_nl_notifier);
	if (ret)
		genl_unregister_family(&pta_nl_family);
	return ret;
}

void pta_netlink_exit(void)
{
	netlink_unregister_notifier(&pta_nl_notifier);
	genl_unregister_family(&pta_nl_family);
}
