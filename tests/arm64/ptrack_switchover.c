// SPDX-License-Identifier: GPL-2.0
/*
 * ptrack_switchover - one side of a live migration between two emulated
 * arm64 hosts (tests/arm64/run-switchover.sh boots both).
 *
 *   ptrack_switchover dest   --listen ADDR:PORT [--timeout S] -- VMM-OPTIONS...
 *   ptrack_switchover source --to ADDR:PORT [--timeout S] -- VMM-OPTIONS...
 *
 * Either side runs `ptrackd serve` (TLS with the PSK in /etc/ptrack/psk.txt)
 * and a ptrack-vmm registered with it through libptrack, and drives it
 * with ptrackctl, as an operator would:
 *   dest:   ptrack-vmm --incoming, then `ptrackctl peer listen ADDR:PORT`;
 *           prints "PTRACK-LISTENING" once the listener is up, and the
 *           incoming VMM prints "guest resumed on the destination: ..."
 *           after it ran on;
 *   source: ptrack-vmm (the guest), then `ptrackctl migrate NAME --to`.
 * VMM-OPTIONS must include --name NAME. Prints one line
 * "PTRACK-SWITCHOVER role=R ctl=RC vmm=RC" and exits 0 only when the
 * ptrackctl command and the VMM both succeeded.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CTL "/tmp/ctl.sock"
#define VMM "/tmp/vmm.sock"
#define MAX_ARGS 64

static pid_t spawn(char **argv, int out_fd)
{
	pid_t pid = fork();

	if (pid == 0) {
		if (out_fd >= 0)
			dup2(out_fd, STDOUT_FILENO);
		execv(argv[0], argv);
		fprintf(stderr, "ptrack_switchover: exec %s: %s\n", argv[0],
			strerror(errno));
		_exit(127);
	}
	return pid;
}

static int wait_rc(pid_t pid)
{
	int st;

	if (waitpid(pid, &st, 0) < 0)
		return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int wait_path(const char *path, int seconds)
{
	struct stat sb;
	int i;

	for (i = 0; i < seconds * 20; i++) {
		if (!stat(path, &sb))
			return 0;
		usleep(50000);
	}
	fprintf(stderr, "ptrack_switchover: %s never appeared\n", path);
	return -1;
}

/* Runs `ptrackctl vms` until its output holds @word. */
static int wait_vms(const char *word, int seconds)
{
	char *argv[] = { "/bin/ptrackctl", "--socket", CTL, "vms", NULL };
	char buf[4096];
	int i, fd[2];

	for (i = 0; i < seconds * 10; i++) {
		ssize_t n, len = 0;
		pid_t pid;

		if (pipe(fd))
			return -1;
		pid = spawn(argv, fd[1]);
		close(fd[1]);
		while (len < (ssize_t)sizeof(buf) - 1 &&
		       (n = read(fd[0], buf + len, sizeof(buf) - 1 - len)) > 0)
			len += n;
		close(fd[0]);
		buf[len] = 0;
		wait_rc(pid);
		if (strstr(buf, word))
			return 0;
		usleep(100000);
	}
	fprintf(stderr, "ptrack_switchover: no '%s' in ptrackctl vms\n", word);
	return -1;
}

static pid_t start_serve(void)
{
	char *argv[] = { "/bin/ptrackd", "serve", "--config", "/dev/null",
			 "--control-socket", CTL, "--vmm-socket", VMM,
			 "--no-libvirt", "--log-target", "stderr",
			 "--log-level", "info",
			 "--set", "daemon.state_dir=/tmp/ptrack",
			 "--set", "tls.psk_file=/etc/ptrack/psk.txt", NULL };
	pid_t pid;

	mkdir("/tmp/ptrack", 0700);
	pid = spawn(argv, -1);
	if (wait_path(CTL, 60)) {
		kill(pid, SIGKILL);
		wait_rc(pid);
		return -1;
	}
	return pid;
}

static const char *vm_name(char **vmm_args)
{
	int i;

	for (i = 0; vmm_args[i]; i++)
		if (!strcmp(vmm_args[i], "--name") && vmm_args[i + 1])
			return vmm_args[i + 1];
	return NULL;
}

static int run_dest(const char *listen, char **vmm_argv)
{
	char *ctl_argv[] = { "/bin/ptrackctl", "--socket", CTL, "peer",
			     "listen", (char *)listen, NULL };
	int ctl_rc = -1, vmm_rc = -1;
	pid_t serve, vmm, ctl;

	serve = start_serve();
	if (serve < 0)
		goto out;
	vmm = spawn(vmm_argv, -1);
	if (wait_vms("incoming", 120)) {
		kill(vmm, SIGTERM);
		vmm_rc = wait_rc(vmm);
		goto stop_serve;
	}
	ctl = spawn(ctl_argv, -1);
	/* Let the listener bind before the source host is booted. */
	sleep(1);
	printf("PTRACK-LISTENING %s\n", listen);
	fflush(stdout);
	ctl_rc = wait_rc(ctl);
	if (ctl_rc)
		kill(vmm, SIGTERM);
	vmm_rc = wait_rc(vmm);
stop_serve:
	kill(serve, SIGTERM);
	wait_rc(serve);
out:
	printf("PTRACK-SWITCHOVER role=dest ctl=%d vmm=%d\n", ctl_rc, vmm_rc);
	fflush(stdout);
	return ctl_rc == 0 && vmm_rc == 0 ? 0 : 1;
}

static int run_source(const char *to, char **vmm_argv, const char *name)
{
	char *ctl_argv[] = { "/bin/ptrackctl", "--socket", CTL, "migrate",
			     (char *)name, "--to", (char *)to, NULL };
	int ctl_rc = -1, vmm_rc = -1;
	pid_t serve, vmm, ctl;

	serve = start_serve();
	if (serve < 0)
		goto out;
	vmm = spawn(vmm_argv, -1);
	if (wait_vms(name, 120)) {
		kill(vmm, SIGTERM);
		vmm_rc = wait_rc(vmm);
		goto stop_serve;
	}
	sleep(1); /* let the guest dirty its memory for a moment */
	ctl = spawn(ctl_argv, -1);
	ctl_rc = wait_rc(ctl);
	/* After a switchover ptrackd stops the source guest. */
	if (ctl_rc)
		kill(vmm, SIGTERM);
	vmm_rc = wait_rc(vmm);
stop_serve:
	kill(serve, SIGTERM);
	wait_rc(serve);
out:
	printf("PTRACK-SWITCHOVER role=source ctl=%d vmm=%d\n", ctl_rc, vmm_rc);
	fflush(stdout);
	return ctl_rc == 0 && vmm_rc == 0 ? 0 : 1;
}

int main(int argc, char **argv)
{
	char *vmm_argv[MAX_ARGS + 6] = { "/bin/ptrack-vmm", "--ptrackd", VMM };
	const char *addr = NULL, *name;
	int i, n = 3, timeout = 600;
	int dest;

	if (argc < 2)
		goto usage;
	dest = !strcmp(argv[1], "dest");
	if (!dest && strcmp(argv[1], "source"))
		goto usage;
	for (i = 2; i < argc; i++) {
		if ((!strcmp(argv[i], "--listen") || !strcmp(argv[i], "--to")) &&
		    i + 1 < argc)
			addr = argv[++i];
		else if (!strcmp(argv[i], "--timeout") && i + 1 < argc)
			timeout = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--"))
			break;
		else
			goto usage;
	}
	if (dest)
		vmm_argv[n++] = "--incoming";
	for (i++; i < argc && n < MAX_ARGS; i++)
		vmm_argv[n++] = argv[i];
	vmm_argv[n] = NULL;
	name = vm_name(vmm_argv);
	if (!addr || !name)
		goto usage;
	alarm(timeout); /* SIGALRM kills us, init reports the step failed */
	return dest ? run_dest(addr, vmm_argv) :
		      run_source(addr, vmm_argv, name);
usage:
	fprintf(stderr,
		"usage: %s dest --listen ADDR:PORT | source --to ADDR:PORT "
		"[--timeout S] -- --name NAME PTRACK-VMM-OPTIONS...\n",
		argv[0]);
	return 2;
}
