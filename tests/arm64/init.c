// SPDX-License-Identifier: GPL-2.0
/*
 * Minimal static init for the emulated arm64 ptrack test bed.
 *
 * It mounts the pseudo file systems, reads "ptrack.scenario=NAME" from the
 * kernel command line and runs the steps listed in /etc/scenarios/NAME, one
 * step a line. Each line is split on blanks into an argv. Built-in steps:
 *
 *   insmod PATH [PARAMS...]   load a module with finit_module()
 *   sysctl-write PATH VALUE   write VALUE into a /proc or /sys file
 *   expect-fail CMD...        run CMD, pass if it exits non-zero
 *
 * Anything else is executed as a program. Every step prints one line
 * "PTRACK-STEP <n> PASS|FAIL rc=<rc> <line>", and init ends with
 * "PTRACK-SCENARIO-DONE name=<name> pass=<p> fail=<f>" and powers off.
 * The host side (run-scenario.sh) parses those lines.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#define MAX_ARGS 64

static void do_mount(const char *src, const char *dst, const char *type)
{
	mkdir(dst, 0755);
	if (mount(src, dst, type, 0, NULL) && errno != EBUSY)
		printf("init: mount %s on %s: %s\n", type, dst, strerror(errno));
}

static int step_insmod(int argc, char **argv)
{
	char params[1024] = "";
	int fd, i, ret;

	if (argc < 2)
		return 2;
	for (i = 2; i < argc; i++) {
		strncat(params, argv[i], sizeof(params) - strlen(params) - 2);
		strcat(params, " ");
	}
	fd = open(argv[1], O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		printf("init: open %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	ret = syscall(SYS_finit_module, fd, params, 0);
	if (ret)
		printf("init: finit_module %s: %s\n", argv[1], strerror(errno));
	close(fd);
	return ret ? 1 : 0;
}

static int step_write(int argc, char **argv)
{
	FILE *f;
	int ret;

	if (argc != 3)
		return 2;
	f = fopen(argv[1], "w");
	if (!f) {
		printf("init: open %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	ret = fputs(argv[2], f) < 0;
	ret |= fclose(f) != 0;
	return ret;
}

static int step_exec(char **argv)
{
	int status;
	pid_t pid;

	fflush(stdout);
	pid = fork();
	if (pid < 0)
		return 127;
	if (!pid) {
		execv(argv[0], argv);
		printf("init: exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	if (waitpid(pid, &status, 0) < 0)
		return 127;
	if (WIFSIGNALED(status)) {
		printf("init: %s killed by signal %d\n", argv[0],
		       WTERMSIG(status));
		return 128 + WTERMSIG(status);
	}
	return WEXITSTATUS(status);
}

static int run_step(int argc, char **argv)
{
	if (!strcmp(argv[0], "insmod"))
		return step_insmod(argc, argv);
	if (!strcmp(argv[0], "sysctl-write"))
		return step_write(argc, argv);
	if (!strcmp(argv[0], "expect-fail"))
		return argc > 1 && run_step(argc - 1, argv + 1) != 0 ? 0 : 1;
	return step_exec(argv);
}

static void scenario_name(char *name, size_t len)
{
	char cmdline[4096] = "", *p, *e;
	FILE *f = fopen("/proc/cmdline", "r");

	snprintf(name, len, "default");
	if (!f)
		return;
	if (!fgets(cmdline, sizeof(cmdline), f))
		cmdline[0] = 0;
	fclose(f);
	p = strstr(cmdline, "ptrack.scenario=");
	if (!p)
		return;
	p += strlen("ptrack.scenario=");
	e = p + strcspn(p, " \n");
	snprintf(name, len, "%.*s", (int)(e - p), p);
}

int main(void)
{
	char name[128], path[256], line[1024], copy[1024];
	int pass = 0, fail = 0, n = 0;
	FILE *f;

	do_mount("devtmpfs", "/dev", "devtmpfs");
	do_mount("proc", "/proc", "proc");
	do_mount("sysfs", "/sys", "sysfs");
	do_mount("tmpfs", "/tmp", "tmpfs");
	setvbuf(stdout, NULL, _IOLBF, 0);

	scenario_name(name, sizeof(name));
	snprintf(path, sizeof(path), "/etc/scenarios/%s", name);
	printf("PTRACK-SCENARIO-START name=%s\n", name);
	f = fopen(path, "r");
	if (!f) {
		printf("init: no scenario %s: %s\n", path, strerror(errno));
		fail++;
		goto out;
	}
	while (fgets(line, sizeof(line), f)) {
		char *argv[MAX_ARGS + 1], *tok, *save;
		int argc = 0, rc;

		line[strcspn(line, "\n")] = 0;
		if (!line[0] || line[0] == '#')
			continue;
		snprintf(copy, sizeof(copy), "%s", line);
		for (tok = strtok_r(copy, " \t", &save); tok && argc < MAX_ARGS;
		     tok = strtok_r(NULL, " \t", &save))
			argv[argc++] = tok;
		argv[argc] = NULL;
		n++;
		printf("PTRACK-STEP %d START %s\n", n, line);
		rc = run_step(argc, argv);
		printf("PTRACK-STEP %d %s rc=%d %s\n", n, rc ? "FAIL" : "PASS",
		       rc, line);
		if (rc)
			fail++;
		else
			pass++;
	}
	fclose(f);
out:
	printf("PTRACK-SCENARIO-DONE name=%s pass=%d fail=%d\n", name, pass,
	       fail);
	fflush(stdout);
	sync();
	reboot(RB_POWER_OFF);
	return 0;
}
