// SPDX-License-Identifier: GPL-2.0
/*
 * ptrack_migrate - one ptrackd migration from inside the emulated arm64
 * host (tests/arm64/run-migrate.sh runs the other side on this machine).
 *
 *   ptrack_migrate --to HOST:PORT --dump-to HOST:PORT [--timeout S]
 *                  [--downtime-ms N] -- PTRACK-VMM-OPTIONS...
 *
 * Starts `ptrackd source` (the migration's source, streaming to the peer
 * at --to), then `ptrack-vmm --ptrackd` with the given options (the guest
 * it migrates), waits for both, and sends the memory image the source
 * dumped after success (the paused guest's memory) to --dump-to, where
 * the host compares it with the peer's copy byte for byte. The link is
 * TLS 1.3 with the pre-shared key in /etc/ptrack/psk.txt (run-migrate.sh
 * makes it and gives the peer the same file). Prints one line
 * "PTRACK-MIGRATE source=RC vmm=RC dump=BYTES" and exits 0 only when the
 * source succeeded and the whole image was sent.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SOCK "/tmp/vmm.sock"
#define DUMP "/tmp/source.mem"
#define MAX_ARGS 64

static pid_t spawn(char **argv)
{
	pid_t pid = fork();

	if (pid == 0) {
		execv(argv[0], argv);
		fprintf(stderr, "ptrack_migrate: exec %s: %s\n", argv[0],
			strerror(errno));
		_exit(127);
	}
	return pid;
}

static int exit_code(int status)
{
	return WIFEXITED(status) ? WEXITSTATUS(status) :
				   128 + WTERMSIG(status);
}

static int parse_addr(const char *s, struct sockaddr_in *sa)
{
	char host[64];
	const char *colon = strrchr(s, ':');

	if (!colon || colon - s >= (long)sizeof(host))
		return -1;
	memcpy(host, s, colon - s);
	host[colon - s] = 0;
	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	sa->sin_port = htons(atoi(colon + 1));
	return inet_pton(AF_INET, host, &sa->sin_addr) == 1 ? 0 : -1;
}

/* Sends the file to @to; returns the bytes sent, or -1. */
static long long send_file(const char *path, const char *to)
{
	struct sockaddr_in sa;
	long long total = 0;
	char buf[65536];
	int fd, s;
	ssize_t n;

	if (parse_addr(to, &sa))
		return -1;
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	s = socket(AF_INET, SOCK_STREAM, 0);
	if (s < 0 || connect(s, (struct sockaddr *)&sa, sizeof(sa))) {
		fprintf(stderr, "ptrack_migrate: connect %s: %s\n", to,
			strerror(errno));
		close(fd);
		return -1;
	}
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		ssize_t off = 0;

		while (off < n) {
			ssize_t w = write(s, buf + off, n - off);

			if (w <= 0)
				goto fail;
			off += w;
		}
		total += n;
	}
	if (n < 0)
		goto fail;
	close(fd);
	shutdown(s, SHUT_WR);
	/* Wait for the receiver to close: it has everything then. */
	while (read(s, buf, sizeof(buf)) > 0)
		;
	close(s);
	return total;
fail:
	close(fd);
	close(s);
	return -1;
}

int main(int argc, char **argv)
{
	char *src_argv[] = { "/bin/ptrackd", "source", "--vmm-socket", SOCK,
			     "--to", NULL, "--dump-memory", DUMP,
			     "--downtime-ms", "300",
			     "--tls-psk-file", "/etc/ptrack/psk.txt", NULL };
	char *vmm_argv[MAX_ARGS + 4] = { "/bin/ptrack-vmm", "--ptrackd", SOCK };
	const char *to = NULL, *dump_to = NULL;
	int i, n = 3, st, src_rc, vmm_rc, timeout = 600;
	pid_t src, vmm;
	struct stat sb;
	long long sent = -1;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--to") && i + 1 < argc)
			to = argv[++i];
		else if (!strcmp(argv[i], "--dump-to") && i + 1 < argc)
			dump_to = argv[++i];
		else if (!strcmp(argv[i], "--downtime-ms") && i + 1 < argc)
			src_argv[9] = argv[++i];
		else if (!strcmp(argv[i], "--timeout") && i + 1 < argc)
			timeout = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--"))
			break;
		else
			goto usage;
	}
	if (!to || !dump_to)
		goto usage;
	for (i++; i < argc && n < MAX_ARGS; i++)
		vmm_argv[n++] = argv[i];
	vmm_argv[n] = NULL;
	src_argv[5] = (char *)to;

	alarm(timeout); /* SIGALRM kills us, init reports the step failed */
	src = spawn(src_argv);
	for (i = 0; i < 200 && stat(SOCK, &sb); i++)
		usleep(50000);
	if (stat(SOCK, &sb)) {
		fprintf(stderr, "ptrack_migrate: the source never opened %s\n",
			SOCK);
		kill(src, SIGKILL);
	}
	vmm = spawn(vmm_argv);
	waitpid(src, &st, 0);
	src_rc = exit_code(st);
	/* The source leaves the VMM paused; it has served its purpose. */
	kill(vmm, SIGTERM);
	waitpid(vmm, &st, 0);
	vmm_rc = exit_code(st);
	if (src_rc == 0)
		sent = send_file(DUMP, dump_to);
	printf("PTRACK-MIGRATE source=%d vmm=%d dump=%lld\n", src_rc, vmm_rc,
	       sent);
	fflush(stdout);
	return src_rc == 0 && sent > 0 ? 0 : 1;
usage:
	fprintf(stderr, "usage: %s --to HOST:PORT --dump-to HOST:PORT "
			"[--timeout S] [--downtime-ms N] -- PTRACK-VMM-OPTIONS...\n",
		argv[0]);
	return 2;
}
