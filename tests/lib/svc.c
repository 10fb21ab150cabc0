// SPDX-License-Identifier: MIT
/* The service tests' helpers: see svc.h. */
#include "svc.h"

long svc_ms(void)
{
	return pt_test_ms();
}

int svc_mkdir(struct svc *s)
{
	memset(s, 0, sizeof(*s));
	strcpy(s->dir, "/tmp/ptrack-svc-XXXXXX");
	if (!mkdtemp(s->dir))
		return -errno;
	chmod(s->dir, 0755);
	snprintf(s->ctl, sizeof(s->ctl), "%s/control.sock", s->dir);
	snprintf(s->vmm, sizeof(s->vmm), "%s/vmm.sock", s->dir);
	snprintf(s->log, sizeof(s->log), "%s/ptrackd.log", s->dir);
	return 0;
}

int svc_can_connect(const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd, ok;

	if (strlen(path) >= sizeof(a.sun_path))
		return 0;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	memcpy(a.sun_path, path, strlen(path) + 1);
	ok = fd >= 0 && !connect(fd, (struct sockaddr *)&a, sizeof(a));
	if (fd >= 0)
		close(fd);
	return ok;
}

pid_t svc_spawn(const char *log, char *const argv[], char *const env[])
{
	pid_t pid = fork();
	int fd;

	if (pid)
		return pid;
	fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
	if (fd < 0 || dup2(fd, 1) < 0 || dup2(fd, 2) < 0)
		_exit(97);
	for (int i = 0; env && env[i]; i++)
		putenv(env[i]);
	execv(argv[0], argv);
	_exit(98);
}

/* A datagram socket for sd_notify, as systemd's. */
static int notify_socket(const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(a.sun_path))
		return -ENAMETOOLONG;
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	memcpy(a.sun_path, path, strlen(path) + 1);
	unlink(path);
	if (bind(fd, (struct sockaddr *)&a, sizeof(a))) {
		close(fd);
		return -errno;
	}
	return fd;
}

/* READY=1 from @pid on @nfd within @ms: 0, -ETIMEDOUT or -ECHILD. */
static int wait_ready(int nfd, pid_t pid, long ms)
{
	long t0 = svc_ms();
	char msg[4096];
	ssize_t n;
	int ret;

	for (;;) {
		ret = pt_wait_readable(nfd, pid, ms - (svc_ms() - t0));
		if (ret)
			return ret;
		n = recv(nfd, msg, sizeof(msg) - 1, MSG_DONTWAIT);
		if (n < 0)
			continue;
		msg[n] = '\0';
		if (!strncmp(msg, "READY=1", 7) || strstr(msg, "\nREADY=1"))
			return 0;
	}
}

/* The socket file appears at bind(), just before listen(): a refused
 * connect right after it is retried, a millisecond apart, for 1 s. */
int svc_wait_accepting(const char *path, pid_t pid, long ms)
{
	int ret = pt_wait_file(path, NULL, pid, ms);

	for (int i = 0; !ret && i < 1000; i++) {
		if (svc_can_connect(path))
			return 0;
		nanosleep(&(struct timespec){ .tv_nsec = 1000000 }, NULL);
	}
	return ret ? ret : -ETIMEDOUT;
}

int svc_start_env(struct svc *s, const char *const *extra, char *const env[])
{
	char bin[PATH_MAX], npath[160], nenv[180], state[160];
	char tls[PATH_MAX + 16];
	char *argv[40] = { bin,
			   "serve",
			   "--config",
			   "/dev/null",
			   "--control-socket",
			   s->ctl,
			   "--vmm-socket",
			   s->vmm,
			   "--no-libvirt",
			   "--log-target",
			   "stderr",
			   "--log-level",
			   "debug",
			   "--set",
			   state };
	char *envv[32] = { NULL };
	int n = 15, ne = 0, nfd = -1, ret;

	/* Destination files live under the state directory, as in the
	 * unit's sandbox: the test's directory. */
	snprintf(state, sizeof(state), "daemon.state_dir=%s", s->dir);
	/* Migrations between test services run TLS with the run's certs. */
	snprintf(tls, sizeof(tls), "tls.dir=%s", pt_test_tls_dir());
	argv[n++] = "--set";
	argv[n++] = tls;
	snprintf(bin, sizeof(bin), "%s/ptrackd", pt_test_bindir());
	for (int i = 0; extra && extra[i] && n < 38; i++)
		argv[n++] = (char *)extra[i];
	argv[n] = NULL;
	for (int i = 0; env && env[i] && ne < 30; i++) {
		if (!strncmp(env[i], "NOTIFY_SOCKET=", 14))
			nfd = -2; /* the caller listens itself */
		envv[ne++] = env[i];
	}
	if (nfd == -1) {
		snprintf(npath, sizeof(npath), "%s/notify.sock", s->dir);
		nfd = notify_socket(npath);
		if (nfd < 0)
			return nfd;
		snprintf(nenv, sizeof(nenv), "NOTIFY_SOCKET=%s", npath);
		envv[ne++] = nenv;
	}
	envv[ne] = NULL;
	s->pid = svc_spawn(s->log, argv, envv);
	if (nfd >= 0) {
		ret = wait_ready(nfd, s->pid, 10000);
		/* Later STATUS= updates go nowhere instead of queueing. */
		close(nfd);
		unlink(npath);
	} else {
		ret = svc_wait_accepting(s->ctl, s->pid, 10000);
	}
	if (ret == -ECHILD) {
		waitpid(s->pid, NULL, 0);
		s->pid = 0;
	}
	if (ret)
		svc_show(s->log);
	return ret;
}

int svc_start(struct svc *s, const char *const *extra)
{
	return svc_start_env(s, extra, NULL);
}

int svc_wait(pid_t pid, long ms)
{
	int st;

	if (!pt_wait_pid(pid, ms, &st))
		return st;
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	return -1;
}

int svc_stop(struct svc *s)
{
	int st;

	if (s->pid <= 0)
		return -1;
	kill(s->pid, SIGTERM);
	st = svc_wait(s->pid, 15000);
	s->pid = 0;
	return st >= 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

void svc_cleanup(struct svc *s)
{
	char cmd[128];

	if (s->pid > 0)
		svc_stop(s);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", s->dir);
	if (system(cmd))
		return;
}

char *svc_slurp(const char *path)
{
	FILE *f = fopen(path, "re");
	char *buf;
	long n;

	if (!f)
		return strdup("");
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = calloc(1, (size_t)n + 1);
	if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n)
		buf[0] = '\0';
	fclose(f);
	return buf;
}

int svc_file_has(const char *path, const char *what)
{
	char *t = svc_slurp(path);
	int has = t && strstr(t, what);

	free(t);
	return has;
}

int svc_wait_file(const char *path, const char *what, long ms)
{
	return pt_wait_file(path, what, 0, ms) == 0;
}

void svc_show(const char *path)
{
	char *t = svc_slurp(path);

	fprintf(stderr, "\n--- %s\n%s---\n", path, t ? t : "");
	free(t);
}

int svc_ctl_v(const struct svc *s, char **out, char **args)
{
	char bin[PATH_MAX], outp[160];
	char *argv[32] = { bin, "--socket", (char *)s->ctl };
	int n = 3, st;
	pid_t pid;

	snprintf(bin, sizeof(bin), "%s/ptrackctl", pt_test_bindir());
	snprintf(outp, sizeof(outp), "%s/ctl.out", s->dir);
	for (int i = 0; args[i] && n < 31; i++)
		argv[n++] = args[i];
	argv[n] = NULL;
	unlink(outp);
	pid = fork();
	if (pid == 0) {
		int fd = open(outp, O_WRONLY | O_CREAT | O_TRUNC, 0644);

		if (fd < 0 || dup2(fd, 1) < 0)
			_exit(97);
		execv(bin, argv);
		_exit(98);
	}
	st = svc_wait(pid, 90000);
	if (out)
		*out = svc_slurp(outp);
	return st >= 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

pid_t svc_vmm(struct svc *s, const char *name, const char *const *args)
{
	char bin[PATH_MAX], log[192];
	char *argv[32] = { bin, "--ptrackd", s->vmm, "--name", (char *)name };
	int n = 5;
	pid_t pid;

	snprintf(bin, sizeof(bin), "%s/ptrack-vmm", pt_test_bindir());
	snprintf(log, sizeof(log), "%s/vmm-%s.log", s->dir, name);
	for (int i = 0; args && args[i] && n < 30; i++)
		argv[n++] = (char *)args[i];
	argv[n] = NULL;
	pid = svc_spawn(log, argv, NULL);
	/* ptrack-vmm says so once ptrackd answered its registration, and
	 * ptrackd lists a VM before it answers anything else. */
	if (!pt_wait_file(log, "ptrack-vmm: registered '", pid, 15000))
		return pid;
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	svc_show(log);
	return -1;
}

double svc_json_num(const char *json, const char *key)
{
	char pat[96];
	const char *p;

	snprintf(pat, sizeof(pat), "\"%s\":", key);
	p = json ? strstr(json, pat) : NULL;
	return p ? strtod(p + strlen(pat), NULL) : -1e300;
}

int svc_have_kvm(void)
{
	return pt_test_have_kvm();
}

int svc_promtool(const char *text)
{
	char path[] = "/tmp/ptrack-prom-XXXXXX", cmd[200];
	int fd = mkstemp(path), ret;
	size_t len = strlen(text);

	if (fd < 0)
		return -errno;
	ret = write(fd, text, len) == (ssize_t)len ? 0 : -EIO;
	close(fd);
	snprintf(cmd, sizeof(cmd), "promtool check metrics < %s >&2", path);
	if (!ret)
		ret = system(cmd);
	unlink(path);
	return ret;
}
