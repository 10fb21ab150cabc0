// SPDX-License-Identifier: GPL-2.0
/*
 * CPU hotplug under a tracked VM, in the emulated arm64 host.
 *
 *   pta_hotplug CPU MIN_CYCLES PROGRAM [ARGS...]
 *
 * Runs PROGRAM (e.g. ptrack_kvm_test, which checks that every page its
 * vCPUs write is reported: 0 false negatives) and, while it runs, takes
 * CPU offline and back online through /sys/devices/system/cpu/cpuN/online,
 * again and again. The PTA driver's hotplug callbacks flush and drain the
 * device when a CPU goes down and map it again when it comes up; the
 * vCPU threads the CPU ran move to the other CPUs. Passes if PROGRAM
 * passes, at least MIN_CYCLES offline/online cycles completed while it
 * ran, and CPU is online at the end. Prints "PASS: ..." or "FAIL: ...".
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int set_online(const char *path, int on)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t n;
	int err;

	if (fd < 0)
		return -errno;
	n = write(fd, on ? "1" : "0", 1);
	err = n == 1 ? 0 : -errno;
	close(fd);
	return err;
}

static int get_online(const char *path)
{
	char c = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, &c, 1);
	close(fd);
	return n == 1 ? c == '1' : -EIO;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

int main(int argc, char **argv)
{
	long cycles = 0, min_cycles;
	char path[64];
	int cpu, status = 0, r, done = 0, failed = 0;
	pid_t pid;

	if (argc < 4) {
		fprintf(stderr, "usage: %s CPU MIN_CYCLES PROGRAM [ARGS...]\n",
			argv[0]);
		return 2;
	}
	cpu = atoi(argv[1]);
	min_cycles = atol(argv[2]);
	snprintf(path, sizeof(path), "/sys/devices/system/cpu/cpu%d/online",
		 cpu);
	if (get_online(path) != 1) {
		printf("FAIL: %s: not an online hot-pluggable CPU\n", path);
		return 1;
	}

	fflush(stdout);
	pid = fork();
	if (pid < 0) {
		printf("FAIL: fork: %s\n", strerror(errno));
		return 1;
	}
	if (!pid) {
		execv(argv[3], argv + 3);
		printf("FAIL: exec %s: %s\n", argv[3], strerror(errno));
		_exit(127);
	}

	/* Let the VM start and fault its memory in on every CPU first. */
	sleep_ms(300);
	while (!done) {
		r = set_online(path, 0);
		if (r) {
			printf("FAIL: offline CPU%d: %s\n", cpu, strerror(-r));
			failed = 1;
			break;
		}
		sleep_ms(100);
		r = set_online(path, 1);
		if (r) {
			printf("FAIL: online CPU%d: %s\n", cpu, strerror(-r));
			failed = 1;
			break;
		}
		/* Counted only if PROGRAM was still running at the end. */
		r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			done = 1;
		else
			cycles++;
		if (!done)
			sleep_ms(100);
	}
	if (!done && waitpid(pid, &status, 0) != pid) {
		printf("FAIL: waitpid: %s\n", strerror(errno));
		return 1;
	}
	if (failed)
		return 1;
	if (get_online(path) != 1) {
		set_online(path, 1);
		printf("FAIL: CPU%d is not online at the end\n", cpu);
		return 1;
	}
	if (!WIFEXITED(status) || WEXITSTATUS(status)) {
		printf("FAIL: %s failed (status %#x) with %ld CPU%d "
		       "offline/online cycles\n",
		       argv[3], status, cycles, cpu);
		return 1;
	}
	if (cycles < min_cycles) {
		printf("FAIL: %ld CPU%d offline/online cycles during %s, "
		       "wanted %ld\n",
		       cycles, cpu, argv[3], min_cycles);
		return 1;
	}
	printf("PASS: %s passed across %ld CPU%d offline/online cycles\n",
	       argv[3], cycles, cpu);
	return 0;
}
