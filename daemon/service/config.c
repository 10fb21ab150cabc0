// SPDX-License-Identifier: MIT
#include "service/config.h"

#include <errno.h>
#include <ini.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/migrate.h"
#include "service/log.h"

void pt_config_defaults(struct pt_config *c)
{
	memset(c, 0, sizeof(*c));
	strcpy(c->control_socket, PT_CONTROL_SOCKET);
	strcpy(c->vmm_socket, PT_VMM_SOCKET);
	strcpy(c->state_dir, PT_STATE_DIR);
	strcpy(c->control_group, "ptrack");
	c->log_prio = LOG_INFO;
	c->log_target = PT_LOG_AUTO;
	strcpy(c->metrics_listen, PT_METRICS_LISTEN);
	c->sample_ms = 1000;
	c->libvirt_enabled = 1;
	strcpy(c->libvirt_uri, PT_LIBVIRT_URI);
	c->track_migrations = 1;
	strcpy(c->libvirt_pid_dir, PT_LIBVIRT_PID_DIR);
	c->reconnect_ms = 2000;
	c->downtime_ms = 300;
	c->max_rounds = 30;
	c->time_limit_ms = 120000;
	strcpy(c->tls_dir, PT_TLS_DIR);
}

static int fail(char *err, size_t len, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static int set_bool(int *out, const char *v, char *err, size_t len)
{
	static const char *const yes[] = { "1", "yes", "true", "on" };
	static const char *const no[] = { "0", "no", "false", "off" };

	for (int i = 0; i < 4; i++) {
		if (!strcmp(v, yes[i]) || !strcmp(v, no[i])) {
			*out = !strcmp(v, yes[i]);
			return 0;
		}
	}
	return fail(err, len, "'%s' is not a boolean (yes/no)", v);
}

static int set_u64(uint64_t *out, const char *v, uint64_t min, uint64_t max,
		   char *err, size_t len)
{
	char *end;
	unsigned long long x;

	errno = 0;
	if (*v == '-' || !*v)
		return fail(err, len, "'%s' is not a number", v);
	x = strtoull(v, &end, 10);
	if (errno || *end)
		return fail(err, len, "'%s' is not a number", v);
	if (x < min || x > max)
		return fail(err, len, "%llu out of range %" PRIu64 "..%" PRIu64,
			    x, min, max);
	*out = x;
	return 0;
}

static int set_uint(unsigned int *out, const char *v, unsigned int min,
		    unsigned int max, char *err, size_t len)
{
	uint64_t x = 0;
	int ret = set_u64(&x, v, min, max, err, len);

	if (!ret)
		*out = (unsigned int)x;
	return ret;
}

static int set_str(char *out, size_t size, const char *v, char *err, size_t len)
{
	if (strlen(v) >= size)
		return fail(err, len, "value longer than %zu bytes", size - 1);
	strcpy(out, v);
	return 0;
}

static int set_path(char *out, size_t size, const char *v, char *err,
		    size_t len)
{
	if (v[0] != '/')
		return fail(err, len, "'%s' is not an absolute path", v);
	return set_str(out, size, v, err, len);
}

static int set_hostport(char *out, size_t size, const char *v, char *err,
			size_t len)
{
	const char *colon = strrchr(v, ':');
	uint64_t port;

	if (!colon || colon == v)
		return fail(err, len, "'%s' is not HOST:PORT", v);
	if (set_u64(&port, colon + 1, 0, 65535, err, len))
		return fail(err, len, "'%s': port must be 0..65535", v);
	return set_str(out, size, v, err, len);
}

static int set_daemon(struct pt_config *c, const char *k, const char *v,
		      char *err, size_t len)
{
	int prio;

	if (!strcmp(k, "control_socket"))
		return set_path(c->control_socket, sizeof(c->control_socket), v,
				err, len);
	if (!strcmp(k, "vmm_socket"))
		return set_path(c->vmm_socket, sizeof(c->vmm_socket), v, err,
				len);
	if (!strcmp(k, "state_dir"))
		return set_path(c->state_dir, sizeof(c->state_dir), v, err,
				len);
	if (!strcmp(k, "control_group"))
		return set_str(c->control_group, sizeof(c->control_group), v,
			       err, len);
	if (!strcmp(k, "log_level")) {
		prio = pt_log_prio_parse(v);
		if (prio < 0)
			return fail(
				err, len,
				"log_level '%s' is not one of err, warning, notice, info, debug",
				v);
		c->log_prio = prio;
		return 0;
	}
	if (!strcmp(k, "log_target")) {
		if (!strcmp(v, "auto"))
			c->log_target = PT_LOG_AUTO;
		else if (!strcmp(v, "journal"))
			c->log_target = PT_LOG_JOURNAL;
		else if (!strcmp(v, "stderr"))
			c->log_target = PT_LOG_STDERR;
		else
			return fail(
				err, len,
				"log_target '%s' is not auto, journal or stderr",
				v);
		return 0;
	}
	return fail(err, len, "unknown key '%s' in [daemon]", k);
}

static int set_metrics(struct pt_config *c, const char *k, const char *v,
		       char *err, size_t len)
{
	if (!strcmp(k, "enabled"))
		return set_bool(&c->metrics_enabled, v, err, len);
	if (!strcmp(k, "listen"))
		return set_hostport(c->metrics_listen,
				    sizeof(c->metrics_listen), v, err, len);
	if (!strcmp(k, "sample_ms"))
		return set_uint(&c->sample_ms, v, 10, 60000, err, len);
	return fail(err, len, "unknown key '%s' in [metrics]", k);
}

static int set_libvirt(struct pt_config *c, const char *k, const char *v,
		       char *err, size_t len)
{
	if (!strcmp(k, "enabled"))
		return set_bool(&c->libvirt_enabled, v, err, len);
	if (!strcmp(k, "uri")) {
		if (!strstr(v, ":/"))
			return fail(err, len, "'%s' is not a libvirt URI", v);
		return set_str(c->libvirt_uri, sizeof(c->libvirt_uri), v, err,
			       len);
	}
	if (!strcmp(k, "track_migrations"))
		return set_bool(&c->track_migrations, v, err, len);
	if (!strcmp(k, "pid_dir"))
		return set_path(c->libvirt_pid_dir, sizeof(c->libvirt_pid_dir),
				v, err, len);
	if (!strcmp(k, "reconnect_ms"))
		return set_uint(&c->reconnect_ms, v, 100, 600000, err, len);
	return fail(err, len, "unknown key '%s' in [libvirt]", k);
}

static int set_migration(struct pt_config *c, const char *k, const char *v,
			 char *err, size_t len)
{
	if (!strcmp(k, "downtime_ms"))
		return set_u64(&c->downtime_ms, v, 1, 3600000, err, len);
	if (!strcmp(k, "bandwidth"))
		return set_u64(&c->bandwidth, v, 0, UINT64_MAX / 2, err, len);
	if (!strcmp(k, "max_rounds"))
		return set_uint(&c->max_rounds, v, 2, 100000, err, len);
	if (!strcmp(k, "time_limit_ms"))
		return set_u64(&c->time_limit_ms, v, 100, 86400000, err, len);
	if (!strcmp(k, "auto_converge"))
		return set_bool(&c->auto_converge, v, err, len);
	if (!strcmp(k, "tcp_congestion")) {
		/* Checked against this kernel, as a migration would. */
		if (v[0] && pt_tcp_congestion_check(v, err, len))
			return -EINVAL;
		return set_str(c->tcp_congestion, sizeof(c->tcp_congestion), v,
			       err, len);
	}
	return fail(err, len, "unknown key '%s' in [migration]", k);
}

static int set_tls(struct pt_config *c, const char *k, const char *v, char *err,
		   size_t len)
{
	if (!strcmp(k, "dir"))
		return set_path(c->tls_dir, sizeof(c->tls_dir), v, err, len);
	if (!strcmp(k, "psk_file"))
		return v[0] ? set_path(c->tls_psk_file, sizeof(c->tls_psk_file),
				       v, err, len)
			    : set_str(c->tls_psk_file, sizeof(c->tls_psk_file),
				      v, err, len);
	if (!strcmp(k, "psk_identity"))
		return set_str(c->tls_psk_identity, sizeof(c->tls_psk_identity),
			       v, err, len);
	if (!strcmp(k, "allowed"))
		return set_str(c->tls_allowed, sizeof(c->tls_allowed), v, err,
			       len);
	if (!strcmp(k, "insecure"))
		return set_bool(&c->tls_insecure, v, err, len);
	return fail(err, len, "unknown key '%s' in [tls]", k);
}

int pt_config_set(struct pt_config *c, const char *section, const char *key,
		  const char *value, char *err, size_t len)
{
	if (!strcmp(section, "daemon"))
		return set_daemon(c, key, value, err, len);
	if (!strcmp(section, "metrics"))
		return set_metrics(c, key, value, err, len);
	if (!strcmp(section, "libvirt"))
		return set_libvirt(c, key, value, err, len);
	if (!strcmp(section, "migration"))
		return set_migration(c, key, value, err, len);
	if (!strcmp(section, "tls"))
		return set_tls(c, key, value, err, len);
	if (!*section)
		return fail(err, len, "key '%s' outside any section", key);
	return fail(err, len, "unknown section [%s]", section);
}

/* inih does not say which line a handler call is for: count lines in the
 * reader so the first error carries its own line. */
struct load {
	struct pt_config *c;
	FILE *f;
	int line;
	int err_line;
	char reason[PT_CONFIG_ERR_MAX];
};

static char *reader(char *str, int num, void *stream)
{
	struct load *l = stream;
	char *s = fgets(str, num, l->f);

	if (s)
		l->line++;
	return s;
}

static int handler(void *user, const char *section, const char *name,
		   const char *value)
{
	struct load *l = user;
	char reason[PT_CONFIG_ERR_MAX];

	if (!pt_config_set(l->c, section, name, value, reason, sizeof(reason)))
		return 1;
	if (!l->err_line) {
		l->err_line = l->line;
		snprintf(l->reason, sizeof(l->reason), "%s", reason);
	}
	return 0;
}

int pt_config_load(struct pt_config *c, const char *path, int optional,
		   char *err, size_t errlen)
{
	struct load l = { .c = c };
	int ret;

	l.f = fopen(path, "re");
	if (!l.f) {
		ret = -errno;
		if (optional && ret == -ENOENT)
			return 0;
		snprintf(err, errlen, "%s: %s", path, strerror(-ret));
		return ret;
	}
	ret = ini_parse_stream(reader, &l, handler, &l);
	fclose(l.f);
	if (!ret)
		return 0;
	/* inih reports the first bad line; it is ours or a syntax error. */
	if (l.err_line && (ret < 0 || l.err_line <= ret))
		snprintf(err, errlen, "%s:%d: %s", path, l.err_line, l.reason);
	else
		snprintf(
			err, errlen,
			"%s:%d: syntax error (expected [section] or key = value)",
			path, ret);
	return -EINVAL;
}
