// SPDX-License-Identifier: MIT
/*
 * `ptrackd serve`: the long-running service (systemd's ptrackd.service).
 * Reads /etc/ptrack/ptrackd.conf, applies command-line overrides through
 * the same validation, then runs the service loop until SIGTERM.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "service/config.h"
#include "service/log.h"
#include "service/service.h"
#include "serve.h"

enum { EXIT_OK = 0, EXIT_RUNTIME = 1, EXIT_USAGE = 2 };

static void usage(FILE *f)
{
	fprintf(f,
		"usage: ptrackd serve [OPTIONS]\n"
		"Runs ptrackd as a service: control socket, VMM registrations,\n"
		"metrics, libvirt. See ptrackd(8) and ptrackd.conf(5).\n"
		"\n"
		"  -c, --config FILE         configuration (default " PT_CONFIG_PATH
		")\n"
		"      --control-socket PATH [daemon] control_socket\n"
		"      --vmm-socket PATH     [daemon] vmm_socket\n"
		"      --metrics[=HOST:PORT] enable [metrics], optionally on HOST:PORT\n"
		"      --no-metrics          disable [metrics]\n"
		"      --libvirt-uri URI     [libvirt] uri (enables libvirt)\n"
		"      --no-libvirt          [libvirt] enabled = no\n"
		"      --log-level LEVEL     err, warning, notice, info, debug\n"
		"      --log-target T        auto, journal, stderr\n"
		"  -s, --set SECTION.KEY=VALUE  any configuration key\n"
		"      --check-config        validate the configuration and exit\n"
		"  -h, --help                this text\n"
		"\n"
		"Exit status: 0 after a clean stop, 1 on a runtime failure,\n"
		"2 on a usage or configuration error.\n");
}

enum {
	OPT_CONTROL = 256,
	OPT_VMM,
	OPT_METRICS,
	OPT_NO_METRICS,
	OPT_URI,
	OPT_NO_LIBVIRT,
	OPT_LOG_LEVEL,
	OPT_LOG_TARGET,
	OPT_CHECK,
};

static const struct option opts[] = {
	{ "config", required_argument, NULL, 'c' },
	{ "control-socket", required_argument, NULL, OPT_CONTROL },
	{ "vmm-socket", required_argument, NULL, OPT_VMM },
	{ "metrics", optional_argument, NULL, OPT_METRICS },
	{ "no-metrics", no_argument, NULL, OPT_NO_METRICS },
	{ "libvirt-uri", required_argument, NULL, OPT_URI },
	{ "no-libvirt", no_argument, NULL, OPT_NO_LIBVIRT },
	{ "log-level", required_argument, NULL, OPT_LOG_LEVEL },
	{ "log-target", required_argument, NULL, OPT_LOG_TARGET },
	{ "set", required_argument, NULL, 's' },
	{ "check-config", no_argument, NULL, OPT_CHECK },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

/* "section.key=value" through the config file's validation. */
static int set_kv(struct pt_config *c, const char *arg, char *err, size_t len)
{
	char buf[1024], *dot, *eq;

	snprintf(buf, sizeof(buf), "%s", arg);
	dot = strchr(buf, '.');
	eq = strchr(buf, '=');
	if (!dot || !eq || dot > eq) {
		snprintf(err, len, "'%s' is not SECTION.KEY=VALUE", arg);
		return -EINVAL;
	}
	*dot = *eq = '\0';
	return pt_config_set(c, buf, dot + 1, eq + 1, err, len);
}

static int apply(struct pt_config *c, int opt, const char *arg, char *err,
		 size_t len)
{
	switch (opt) {
	case OPT_CONTROL:
		return pt_config_set(c, "daemon", "control_socket", arg, err,
				     len);
	case OPT_VMM:
		return pt_config_set(c, "daemon", "vmm_socket", arg, err, len);
	case OPT_METRICS:
		c->metrics_enabled = 1;
		return arg ? pt_config_set(c, "metrics", "listen", arg, err,
					   len)
			   : 0;
	case OPT_NO_METRICS:
		c->metrics_enabled = 0;
		return 0;
	case OPT_URI:
		c->libvirt_enabled = 1;
		return pt_config_set(c, "libvirt", "uri", arg, err, len);
	case OPT_NO_LIBVIRT:
		c->libvirt_enabled = 0;
		return 0;
	case OPT_LOG_LEVEL:
		return pt_config_set(c, "daemon", "log_level", arg, err, len);
	case OPT_LOG_TARGET:
		return pt_config_set(c, "daemon", "log_target", arg, err, len);
	case 's':
		return set_kv(c, arg, err, len);
	default:
		snprintf(err, len, "unknown option");
		return -EINVAL;
	}
}

/* The file first, wherever it is named, then the flags over it; the
 * arguments were checked by load(). Also what SIGHUP runs again. */
static int load_config(int argc, char **argv, struct pt_config *c, char *err,
		       size_t len)
{
	const char *path = PT_CONFIG_PATH;
	int explicit = 0, opt, ret;
	char why[PT_CONFIG_ERR_MAX];

	optind = 1;
	while ((opt = getopt_long(argc, argv, "c:s:h", opts, NULL)) != -1) {
		if (opt == 'c') {
			path = optarg;
			explicit = 1;
		}
	}
	pt_config_defaults(c);
	ret = pt_config_load(c, path, !explicit, err, len);
	if (ret)
		return ret;
	optind = 1;
	while ((opt = getopt_long(argc, argv, "c:s:h", opts, NULL)) != -1) {
		if (opt == 'c' || opt == OPT_CHECK)
			continue;
		ret = apply(c, opt, optarg, why, sizeof(why));
		if (ret) {
			snprintf(err, len, "command line: %s", why);
			return ret;
		}
	}
	return 0;
}

static int load(int argc, char **argv, struct pt_config *c, int *check)
{
	char err[PT_CONFIG_ERR_MAX];
	int opt;

	optind = 1;
	while ((opt = getopt_long(argc, argv, "c:s:h", opts, NULL)) != -1) {
		if (opt == 'h') {
			usage(stdout);
			exit(EXIT_OK);
		}
		if (opt == '?') {
			usage(stderr);
			return -EINVAL;
		}
		*check |= opt == OPT_CHECK;
	}
	if (optind < argc) {
		fprintf(stderr, "ptrackd serve: unexpected argument '%s'\n",
			argv[optind]);
		return -EINVAL;
	}
	if (load_config(argc, argv, c, err, sizeof(err))) {
		fprintf(stderr, "ptrackd: %s\n", err);
		return -EINVAL;
	}
	return 0;
}

struct serve_args {
	int argc;
	char **argv;
};

static int reload(struct pt_config *out, char *err, size_t len, void *arg)
{
	struct serve_args *a = arg;

	return load_config(a->argc, a->argv, out, err, len);
}

int ptrackd_serve(int argc, char **argv)
{
	struct pt_config cfg;
	struct pt_service s;
	int check = 0, ret;

	if (load(argc, argv, &cfg, &check))
		return EXIT_USAGE;
	if (check) {
		printf("ptrackd: configuration ok\n");
		return EXIT_OK;
	}
	ret = pt_service_init(&s, &cfg);
	if (!ret) {
		struct serve_args a = { argc, argv };

		s.reload = reload;
		s.reload_arg = &a;
		ret = pt_service_run(&s);
	} else
		pt_log(LOG_ERR, "start-up failed: %s", strerror(-ret));
	pt_service_release(&s);
	return ret ? EXIT_RUNTIME : EXIT_OK;
}

/*
 * Transitional, until main.c dispatches "serve" itself: glibc passes
 * (argc, argv, envp) to constructors, so `ptrackd serve ...` runs the
 * service before main(). Remove this once main.c has the dispatch line.
 */
__attribute__((constructor)) static void serve_dispatch(int argc, char **argv)
{
	if (argc > 1 && argv && !strcmp(argv[1], "serve"))
		exit(ptrackd_serve(argc - 1, argv + 1));
}
