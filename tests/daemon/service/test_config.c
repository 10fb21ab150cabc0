// SPDX-License-Identifier: MIT
/*
 * ptrackd.conf: every key validated, the first error reported as
 * file:line: reason, and command-line flags over the file.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "pt_test.h"
#include "service/config.h"

static char path[64];

static int write_conf(const char *text)
{
	int fd;

	strcpy(path, "/tmp/ptrack-conf-XXXXXX");
	fd = mkstemp(path);
	if (fd < 0)
		return -1;
	if (write(fd, text, strlen(text)) != (ssize_t)strlen(text)) {
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

/* Loads @text; returns the error message (empty when it loaded). */
static const char *load(const char *text, struct pt_config *c)
{
	static char err[PT_CONFIG_ERR_MAX];

	err[0] = '\0';
	pt_config_defaults(c);
	CU_ASSERT_FATAL(write_conf(text) == 0);
	pt_config_load(c, path, 0, err, sizeof(err));
	unlink(path);
	return err;
}

static void expect_error(const char *text, int line, const char *reason)
{
	struct pt_config c;
	const char *err = load(text, &c);
	char want[128];

	snprintf(want, sizeof(want), "%s:%d: ", path, line);
	CU_ASSERT_EQUAL(strncmp(err, want, strlen(want)), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, reason));
	if (strncmp(err, want, strlen(want)) || !strstr(err, reason))
		fprintf(stderr, "\n  got '%s', want '%s...%s'\n", err, want,
			reason);
}

static void test_good(void)
{
	struct pt_config c;
	const char *err = load("# comment\n[daemon]\n"
			       "control_socket = /tmp/x/c.sock\n"
			       "log_level = debug\n\n[metrics]\nenabled = yes\n"
			       "listen = [::1]:9000\n[libvirt]\nenabled=no\n"
			       "uri = test:///default\n[migration]\n"
			       "downtime_ms = 50\nbandwidth = 1000000\n",
			       &c);

	CU_ASSERT_STRING_EQUAL(err, "");
	CU_ASSERT_STRING_EQUAL(c.control_socket, "/tmp/x/c.sock");
	CU_ASSERT_EQUAL(c.log_prio, 7);
	CU_ASSERT_EQUAL(c.metrics_enabled, 1);
	CU_ASSERT_STRING_EQUAL(c.metrics_listen, "[::1]:9000");
	CU_ASSERT_EQUAL(c.libvirt_enabled, 0);
	CU_ASSERT_STRING_EQUAL(c.libvirt_uri, "test:///default");
	CU_ASSERT_EQUAL(c.downtime_ms, 50);
	CU_ASSERT_EQUAL(c.bandwidth, 1000000);
	/* Untouched keys keep their defaults. */
	CU_ASSERT_STRING_EQUAL(c.vmm_socket, PT_VMM_SOCKET);
	CU_ASSERT_EQUAL(c.max_rounds, 30);
}

static void test_errors(void)
{
	expect_error("[daemon]\nlog_level = loud\n", 2, "log_level 'loud'");
	expect_error("\n\n[metrics]\nenabled = maybe\n", 4,
		     "'maybe' is not a boolean");
	expect_error("[metrics]\nlisten = localhost\n", 2, "not HOST:PORT");
	expect_error("[metrics]\nlisten = 1.2.3.4:70000\n", 2,
		     "port must be 0..65535");
	expect_error("[daemon]\ncontrol_socket = run/c.sock\n", 2,
		     "not an absolute path");
	expect_error("[daemon]\nnope = 1\n", 2,
		     "unknown key 'nope' in [daemon]");
	expect_error("[bogus]\nx = 1\n", 2, "unknown section [bogus]");
	expect_error("x = 1\n", 1, "outside any section");
	expect_error("[migration]\ndowntime_ms = -5\n", 2, "not a number");
	expect_error("[migration]\nmax_rounds = 1\n", 2, "out of range");
	expect_error("[migration]\nbandwidth = 12abc\n", 2, "not a number");
	expect_error("[libvirt]\nuri = nothing\n", 2, "not a libvirt URI");
	/* The first error wins, also when a later line is wrong as well. */
	expect_error("[daemon]\nlog_level = info\nlog_target = syslog\n"
		     "[metrics]\nenabled = 2\n",
		     3, "log_target 'syslog'");
	expect_error("[daemon]\nthis line has no equals sign\n", 2,
		     "syntax error");
	/* A socket path longer than sun_path. */
	expect_error(
		"[daemon]\nvmm_socket = /"
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n",
		2, "longer than");
}

static void test_missing(void)
{
	struct pt_config c;
	char err[PT_CONFIG_ERR_MAX];

	pt_config_defaults(&c);
	CU_ASSERT_EQUAL(pt_config_load(&c, "/nonexistent/ptrackd.conf", 1, err,
				       sizeof(err)),
			0);
	CU_ASSERT(pt_config_load(&c, "/nonexistent/ptrackd.conf", 0, err,
				 sizeof(err)) < 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "/nonexistent/ptrackd.conf: "));
}

/* Runs `ptrackd serve ARGS --check-config`, capturing stderr+stdout. */
static int check_config(const char *args, char *out, size_t len)
{
	char cmd[1024];
	FILE *p;
	size_t n;
	int st;

	snprintf(cmd, sizeof(cmd), "%s/ptrackd serve %s --check-config 2>&1",
		 pt_test_bindir(), args);
	p = popen(cmd, "r");
	if (!p)
		return -1;
	n = fread(out, 1, len - 1, p);
	out[n] = '\0';
	st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void test_cli(void)
{
	char out[1024], args[256];

	CU_ASSERT_FATAL(write_conf("[daemon]\nlog_level = info\n\n"
				   "[metrics]\nsample_ms = 5\n") == 0);
	snprintf(args, sizeof(args), "-c %s", path);
	/* A bad file fails start-up with exit 2 and file:line. */
	CU_ASSERT_EQUAL(check_config(args, out, sizeof(out)), 2);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, ":5: 5 out of range"));
	unlink(path);
	CU_ASSERT_FATAL(write_conf("[metrics]\nlisten = 127.0.0.1:1\n") == 0);
	snprintf(args, sizeof(args), "-c %s --metrics=127.0.0.1:2", path);
	CU_ASSERT_EQUAL(check_config(args, out, sizeof(out)), 0);
	/* Flags are validated like the file, and say where they came from. */
	snprintf(args, sizeof(args), "-c %s --set migration.downtime_ms=0",
		 path);
	CU_ASSERT_EQUAL(check_config(args, out, sizeof(out)), 2);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "command line: 0 out of range"));
	snprintf(args, sizeof(args), "-c %s --log-level chatty", path);
	CU_ASSERT_EQUAL(check_config(args, out, sizeof(out)), 2);
	unlink(path);
	/* An explicit file that does not exist is an error. */
	CU_ASSERT_EQUAL(check_config("-c /nonexistent.conf", out, sizeof(out)),
			2);
}

/* [migration] tcp_congestion is checked against this kernel. */
static void test_tcp_congestion(void)
{
	struct pt_config c;
	const char *err;

	err = load("[migration]\ntcp_congestion = reno\n", &c);
	CU_ASSERT_STRING_EQUAL(err, "");
	CU_ASSERT_STRING_EQUAL(c.tcp_congestion, "reno");
	err = load("[migration]\ntcp_congestion =\n", &c);
	CU_ASSERT_STRING_EQUAL(err, "");
	CU_ASSERT_STRING_EQUAL(c.tcp_congestion, "");
	expect_error("[migration]\ntcp_congestion = nosuchcc\n", 2,
		     "TCP congestion control 'nosuchcc' is not available in "
		     "this kernel (available: ");
	expect_error("[migration]\ntcp_congestion = abcdefghijklmnopq\n", 2,
		     "not a TCP congestion control name");
}

/* [tls]: TLS on by default from /etc/pki/ptrack; insecure only asked. */
static void test_tls_keys(void)
{
	struct pt_config c;
	const char *err;

	err = load("", &c);
	CU_ASSERT_STRING_EQUAL(err, "");
	CU_ASSERT_STRING_EQUAL(c.tls_dir, "/etc/pki/ptrack");
	CU_ASSERT_EQUAL(c.tls_insecure, 0);
	err = load("[tls]\ndir = /srv/pki\nallowed = CN=a,*;CN=b,*\n"
		   "psk_file = /srv/keys.psk\npsk_identity = a\n"
		   "insecure = yes\n",
		   &c);
	CU_ASSERT_STRING_EQUAL(err, "");
	CU_ASSERT_STRING_EQUAL(c.tls_dir, "/srv/pki");
	CU_ASSERT_STRING_EQUAL(c.tls_allowed, "CN=a,*;CN=b,*");
	CU_ASSERT_STRING_EQUAL(c.tls_psk_file, "/srv/keys.psk");
	CU_ASSERT_STRING_EQUAL(c.tls_psk_identity, "a");
	CU_ASSERT_EQUAL(c.tls_insecure, 1);
	expect_error("[tls]\ndir = pki\n", 2, "not an absolute path");
	expect_error("[tls]\ncipher = null\n", 2, "unknown key 'cipher'");
}

PT_SUITE(service_config, PT_TEST(test_good), PT_TEST(test_errors),
	 PT_TEST(test_missing), PT_TEST(test_cli), PT_TEST(test_tcp_congestion),
	 PT_TEST(test_tls_keys));
