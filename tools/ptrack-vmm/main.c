// SPDX-License-Identifier: MIT
/*
 * ptrack-vmm: runs a write-heavy KVM guest (x86_64 or arm64) and either checks its own
 * dirty log against ground truth for a number of rounds (the default), or
 * registers with ptrackd and serves its requests (--ptrackd).
 */
#include "ptrack/version.h"
#include "vmm.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "serve.h"

struct cli {
	struct vmm_opts o;
	unsigned int rounds;
	unsigned int interval_ms;
	bool json;
	bool no_check;
	int inject_drop_round; /* test hook, 0: off */
	const char *ptrackd;
	const char *name;
	unsigned int warmup_ms;
	bool incoming, verify_memory;
	const char *inject;
	unsigned int run_ms;
};

static void usage(FILE *f, const char *argv0)
{
	fprintf(f,
		"usage: %s [OPTIONS]\n"
		"Runs a KVM guest that writes its memory and harvests the dirty log.\n"
		"\n"
		"Guest:\n"
		"  -m, --mem SIZE          guest RAM, K/M/G suffix (default 256M)\n"
		"  -c, --vcpus N           vCPUs writing memory (default 1)\n"
		"  -p, --pattern P         seq | random | hotcold (default random)\n"
		"  -r, --rate N            total pages/s written, 0 = unlimited (default 0)\n"
		"      --hot-pages N       hot set size for hotcold (default 1/16 of RAM)\n"
		"      --hot-pct P         share of stores to the hot set (default 90)\n"
		"Dirty log:\n"
		"  -d, --dirty MODE        bitmap | ring (default bitmap)\n"
		"      --ring-entries N    dirty ring entries per vCPU, power of 2\n"
		"                          (default 65536: PVM hosts were seen to livelock\n"
		"                          at <= 4096; min 256)\n"
		"  -t, --tracking T        wp | device (default wp): write-protect\n"
		"                          faults, or the arm64 page tracking device\n"
		"                          (KVM_CAP_ARM_PAGE_TRACKING_DEVICE)\n"
		"Standalone ground-truth mode (default):\n"
		"  -n, --rounds N          harvest rounds (default 20)\n"
		"  -i, --interval MS       time between harvests (default 100)\n"
		"      --no-check          skip the shadow-copy check (raw harvest speed)\n"
		"      --json              one JSON object per line\n"
		"      --inject-drop K     test hook: lose harvest K (N+1: the final one)\n"
		"ptrackd mode:\n"
		"  -P, --ptrackd SOCKET    register with ptrackd and serve its requests\n"
		"      --name NAME         VM name (default ptrack-vmm)\n"
		"      --warmup MS         run the guest MS before registering and\n"
		"                          report its store rate before and during\n"
		"                          the migration\n"
		"      --incoming          be the destination of a migration: register,\n"
		"                          receive memory and state, resume the guest\n"
		"      --run-ms MS         incoming: run MS after resuming, then check that\n"
		"                          no page went back in time and exit (default 0:\n"
		"                          until SIGINT/SIGTERM)\n"
		"      --verify-memory     hash guest memory at the switchover (source) and\n"
		"                          check it before resuming (destination)\n"
		"      --inject-switchover F  test hook: corrupt-state (source), die-in-load,\n"
		"                          slow-load (destination: 3 s in load_state)\n"
		"  -h, --help              this text\n"
		"      --version           the version\n"
		"\n"
		"Exit status: 0 on success, 1 when the check found missed pages,\n"
		"2 on usage errors, 3 on runtime errors.\n",
		argv0);
}

static int parse_size(const char *s, uint64_t *out)
{
	char *end;
	uint64_t v;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || end == s)
		return -EINVAL;
	switch (*end) {
	case 'g':
	case 'G':
		v <<= 30;
		end++;
		break;
	case 'm':
	case 'M':
		v <<= 20;
		end++;
		break;
	case 'k':
	case 'K':
		v <<= 10;
		end++;
		break;
	default:
		break;
	}
	if (*end && strcmp(end, "iB") != 0 && strcmp(end, "B") != 0)
		return -EINVAL;
	*out = v;
	return 0;
}

static int parse_uint(const char *s, uint64_t *out)
{
	char *end;

	errno = 0;
	*out = strtoull(s, &end, 0);
	return (errno || end == s || *end || *s == '-') ? -EINVAL : 0;
}

enum {
	OPT_HOT_PAGES = 256,
	OPT_HOT_PCT,
	OPT_RING_ENTRIES,
	OPT_NO_CHECK,
	OPT_JSON,
	OPT_INJECT,
	OPT_NAME,
	OPT_WARMUP,
	OPT_INCOMING,
	OPT_RUN_MS,
	OPT_VERIFY,
	OPT_INJECT_SW,
	OPT_VERSION,
};

static const struct option longopts[] = {
	{ "mem", required_argument, NULL, 'm' },
	{ "vcpus", required_argument, NULL, 'c' },
	{ "pattern", required_argument, NULL, 'p' },
	{ "rate", required_argument, NULL, 'r' },
	{ "hot-pages", required_argument, NULL, OPT_HOT_PAGES },
	{ "hot-pct", required_argument, NULL, OPT_HOT_PCT },
	{ "dirty", required_argument, NULL, 'd' },
	{ "ring-entries", required_argument, NULL, OPT_RING_ENTRIES },
	{ "tracking", required_argument, NULL, 't' },
	{ "rounds", required_argument, NULL, 'n' },
	{ "interval", required_argument, NULL, 'i' },
	{ "no-check", no_argument, NULL, OPT_NO_CHECK },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "inject-drop", required_argument, NULL, OPT_INJECT },
	{ "ptrackd", required_argument, NULL, 'P' },
	{ "name", required_argument, NULL, OPT_NAME },
	{ "warmup", required_argument, NULL, OPT_WARMUP },
	{ "incoming", no_argument, NULL, OPT_INCOMING },
	{ "run-ms", required_argument, NULL, OPT_RUN_MS },
	{ "verify-memory", no_argument, NULL, OPT_VERIFY },
	{ "inject-switchover", required_argument, NULL, OPT_INJECT_SW },
	{ "version", no_argument, NULL, OPT_VERSION },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static int parse_enum(const char *s, const char *const *names, int n)
{
	int i;

	for (i = 0; i < n; i++)
		if (!strcmp(s, names[i]))
			return i;
	return -EINVAL;
}

static int parse_opt(struct cli *c, int opt, const char *arg)
{
	static const char *const patterns[] = { "seq", "random", "hotcold" };
	static const char *const modes[] = { "bitmap", "ring" };
	static const char *const trackings[] = { "wp", "device" };
	uint64_t v = 0;
	int r = 0;

	switch (opt) {
	case 'm':
		return parse_size(arg, &c->o.mem);
	case 'p':
		r = parse_enum(arg, patterns, 3);
		c->o.pattern = r;
		return r < 0 ? r : 0;
	case 'd':
		r = parse_enum(arg, modes, 2);
		c->o.dirty = r;
		return r < 0 ? r : 0;
	case 't':
		r = parse_enum(arg, trackings, 2);
		c->o.tracking = r;
		return r < 0 ? r : 0;
	case 'P':
		c->ptrackd = arg;
		return 0;
	case OPT_NAME:
		c->name = arg;
		return 0;
	case OPT_JSON:
		c->json = true;
		return 0;
	case OPT_NO_CHECK:
		c->no_check = true;
		return 0;
	case OPT_INCOMING:
		c->incoming = true;
		return 0;
	case OPT_VERIFY:
		c->verify_memory = true;
		return 0;
	case OPT_INJECT_SW:
		c->inject = arg;
		return 0;
	default:
		break;
	}
	r = parse_uint(arg, &v);
	if (r)
		return r;
	switch (opt) {
	case 'c':
		c->o.vcpus = v;
		break;
	case 'r':
		c->o.rate = v;
		break;
	case OPT_HOT_PAGES:
		c->o.hot_pages = v;
		break;
	case OPT_HOT_PCT:
		c->o.hot_pct = v;
		break;
	case OPT_RING_ENTRIES:
		c->o.ring_entries = v;
		break;
	case 'n':
		c->rounds = v;
		break;
	case 'i':
		c->interval_ms = v;
		break;
	case OPT_INJECT:
		c->inject_drop_round = v;
		break;
	case OPT_WARMUP:
		c->warmup_ms = v;
		break;
	case OPT_RUN_MS:
		c->run_ms = v;
		break;
	default:
		return -EINVAL;
	}
	return 0;
}

static int parse_cli(struct cli *c, int argc, char **argv)
{
	int opt;

	*c = (struct cli){
		.o = { .mem = 256u << 20,
		       .vcpus = 1,
		       .pattern = VMM_RANDOM,
		       .hot_pct = 90,
		       .dirty = VMM_DIRTY_BITMAP,
		       .ring_entries = 65536 },
		.rounds = 20,
		.interval_ms = 100,
		.name = "ptrack-vmm",
	};
	while ((opt = getopt_long(argc, argv, "m:c:p:r:d:t:n:i:P:h", longopts,
				  NULL)) != -1) {
		if (opt == 'h') {
			usage(stdout, argv[0]);
			exit(0);
		}
		if (opt == OPT_VERSION) {
			printf("ptrack-vmm %s\n", PTRACK_VERSION);
			exit(0);
		}
		if (opt == '?' || parse_opt(c, opt, optarg)) {
			if (opt != '?')
				fprintf(stderr, "%s: bad value '%s'\n", argv[0],
					optarg);
			usage(stderr, argv[0]);
			return -EINVAL;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "%s: unexpected argument '%s'\n", argv[0],
			argv[optind]);
		return -EINVAL;
	}
	if (!c->o.hot_pages)
		c->o.hot_pages = c->o.mem / VMM_PAGE / 16;
	if (vmm_opts_error(&c->o)) {
		fprintf(stderr, "%s: %s\n", argv[0], vmm_opts_error(&c->o));
		return -EINVAL;
	}
	return 0;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void sleep_ms(unsigned int ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* Test hook: forget a whole harvest, so the checker must notice. (One
 * page would not do: the guest may rewrite it before the next harvest.) */
static void inject_drop(struct vmm_harvest *h, uint64_t words)
{
	memset(h->bitmap, 0, words * 8);
	h->ndirty = 0;
}

struct round_stats {
	unsigned int k;
	bool final;
	uint64_t dirty;
	double get_ms, clear_ms, pages_per_s;
};

static void print_round(const struct cli *c, const struct vmm_check *chk,
			const struct round_stats *s)
{
	const char *kind = s->final ? "final" : "round";

	if (c->json)
		printf("{\"%s\":%u,\"dirty\":%" PRIu64 ",\"changed\":%" PRIu64
		       ",\"fn\":%" PRIu64 ",\"fp\":%" PRIu64
		       ",\"get_ms\":%.3f,\"clear_ms\":%.3f,\"check_ms\":%.1f"
		       ",\"guest_pages_per_s\":%.0f}\n",
		       kind, s->k, s->dirty, chk->round_changed, chk->round_fn,
		       chk->round_fp, s->get_ms, s->clear_ms, chk->cmp_ms,
		       s->pages_per_s);
	else
		printf("%s %3u: dirty %7" PRIu64 " changed %7" PRIu64
		       " fn %" PRIu64 " fp %4" PRIu64
		       " get %.3f ms clear %.3f ms check %.1f ms"
		       " guest %.0f pages/s\n",
		       kind, s->k, s->dirty, chk->round_changed, chk->round_fn,
		       chk->round_fp, s->get_ms, s->clear_ms, chk->cmp_ms,
		       s->pages_per_s);
	fflush(stdout);
}

struct totals {
	double get_ms, clear_ms, max_get_ms, max_clear_ms, secs, pause_ms;
	uint64_t stores, ring_full;
};

static void print_summary(const struct cli *c, struct vmm *vm,
			  const struct vmm_check *chk, const struct totals *t,
			  unsigned int rounds)
{
	static const char *const pn[] = { "seq", "random", "hotcold" };
	double fp_rate = chk->harvested ? (double)chk->fp / chk->harvested : 0;

	printf("%s\"result\":\"%s\",\"mode\":\"%s\",\"tracking\":\"%s\","
	       "\"pattern\":\"%s\","
	       "\"vcpus\":%u,\"mem\":%" PRIu64 ",\"rounds\":%u,"
	       "\"false_negatives\":%" PRIu64 ",\"false_positives\":%" PRIu64
	       ",\"harvested\":%" PRIu64 ",\"changed\":%" PRIu64
	       ",\"fp_rate\":%.6f,\"guest_pages_per_s\":%.0f,"
	       "\"avg_get_ms\":%.3f,\"max_get_ms\":%.3f,"
	       "\"avg_clear_ms\":%.3f,\"max_clear_ms\":%.3f,\"pause_ms\":%.3f,"
	       "\"ring_full_exits\":%" PRIu64 ",\"ring_folds\":%" PRIu64 "}\n",
	       c->json ? "{" : "summary {",
	       chk->fn ? "FAIL" : (c->no_check ? "unchecked" : "ok"),
	       vm->o.dirty == VMM_DIRTY_RING ? "ring" : "bitmap",
	       vm->o.tracking == VMM_TRACK_DEVICE ? "device" : "wp",
	       pn[vm->o.pattern], vm->o.vcpus, vm->o.mem, rounds, chk->fn,
	       chk->fp, chk->harvested, chk->changed_total, fp_rate,
	       t->secs > 0 ? t->stores / t->secs : 0, t->get_ms / rounds,
	       t->max_get_ms, t->clear_ms / rounds, t->max_clear_ms,
	       t->pause_ms, t->ring_full, vm->ring_folds);
	fflush(stdout);
}

static void account(struct totals *t, const struct vmm_harvest *h)
{
	t->get_ms += h->get_ms;
	t->clear_ms += h->clear_ms;
	if (h->get_ms > t->max_get_ms)
		t->max_get_ms = h->get_ms;
	if (h->clear_ms > t->max_clear_ms)
		t->max_clear_ms = h->clear_ms;
}

static int one_round(const struct cli *c, struct vmm *vm, struct vmm_check *chk,
		     struct vmm_harvest *h, struct round_stats *s)
{
	int ret = vmm_harvest(vm, h);

	if (ret)
		return ret;
	if (c->inject_drop_round && s->k == (unsigned)c->inject_drop_round)
		inject_drop(h, (vm->npages + 63) / 64);
	if (!c->no_check)
		vmm_check_round(chk, vm->mem, h->bitmap);
	else
		chk->harvested += h->ndirty;
	s->dirty = h->ndirty;
	s->get_ms = h->get_ms;
	s->clear_ms = h->clear_ms;
	return 0;
}

static int run_rounds(const struct cli *c, struct vmm *vm,
		      struct vmm_check *chk, struct vmm_harvest *h,
		      struct totals *t)
{
	struct round_stats s = { 0 };
	double t0 = now_s(), tp = t0;
	uint64_t sp = 0, st;
	int ret;

	for (s.k = 1; s.k <= c->rounds; s.k++) {
		sleep_ms(c->interval_ms);
		ret = one_round(c, vm, chk, h, &s);
		if (ret)
			return ret;
		st = vmm_stores(vm);
		s.pages_per_s = (st - sp) / (now_s() - tp);
		sp = st;
		tp = now_s();
		account(t, h);
		print_round(c, chk, &s);
	}
	/* The final round: guest held, so nothing may remain unharvested. */
	tp = now_s();
	ret = vmm_pause(vm);
	if (ret)
		return ret;
	t->pause_ms = (now_s() - tp) * 1e3;
	t->secs = now_s() - t0;
	t->stores = vmm_stores(vm);
	s.final = true;
	ret = one_round(c, vm, chk, h, &s);
	if (ret)
		return ret;
	if (!c->no_check)
		vmm_check_final(chk);
	s.pages_per_s = 0;
	account(t, h);
	print_round(c, chk, &s);
	return 0;
}

static int standalone(const struct cli *c, struct vmm *vm)
{
	struct vmm_harvest h;
	struct vmm_check chk = { 0 };
	struct totals t = { 0 };
	unsigned int i;
	int ret;

	ret = vmm_harvest_init(vm, &h);
	if (ret)
		return ret;
	if (!c->no_check) {
		ret = vmm_check_init(&chk, vm->mem, vm->npages);
		if (ret)
			goto out_harvest;
	}
	ret = vmm_start(vm);
	if (ret)
		goto out_check;
	ret = run_rounds(c, vm, &chk, &h, &t);
	vmm_stop(vm);
	for (i = 0; i < vm->o.vcpus; i++)
		t.ring_full += vm->vcpu[i].ring_full_exits;
	if (!ret)
		ret = vm->error;
	if (!ret) {
		print_summary(c, vm, &chk, &t, c->rounds + 1);
		ret = chk.fn ? 1 : 0;
	}
out_check:
	vmm_check_release(&chk);
out_harvest:
	vmm_harvest_release(vm, &h);
	return ret;
}

int main(int argc, char **argv)
{
	struct vmm vm;
	struct cli c;
	int ret;

	if (parse_cli(&c, argc, argv))
		return 2;
	ret = vmm_create(&vm, &c.o);
	if (ret) {
		fprintf(stderr, "ptrack-vmm: cannot create VM: %s\n",
			strerror(-ret));
		vmm_destroy(&vm);
		return 3;
	}
	if (c.incoming && !c.ptrackd) {
		fprintf(stderr, "ptrack-vmm: --incoming needs --ptrackd\n");
		vmm_destroy(&vm);
		return 2;
	}
	if (c.ptrackd) {
		struct vmm_serve_opts so = { .path = c.ptrackd,
					     .name = c.name,
					     .warmup_ms = c.warmup_ms,
					     .incoming = c.incoming,
					     .verify_memory = c.verify_memory,
					     .run_ms = c.run_ms,
					     .inject = c.inject };

		ret = vmm_serve_ptrackd(&vm, &so);
	} else
		ret = standalone(&c, &vm);
	vmm_destroy(&vm);
	if (ret < 0) {
		fprintf(stderr, "ptrack-vmm: %s\n", strerror(-ret));
		return 3;
	}
	return ret;
}
