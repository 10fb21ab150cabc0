// SPDX-License-Identifier: MIT
/*
 * libvirt's QEMU driver with a real QEMU/KVM guest: the service runs in
 * this process on qemu:///embed?root=DIR (DIR/etc/qemu.conf: user and
 * group root, QEMU's output to a file), its loop in a thread of its own.
 * The test opens the same embedded driver from its thread, defines and
 * starts a tiny -bios guest (a real-mode loop incrementing one byte per
 * 4 KiB page), and checks through the control socket that the service saw
 * the domain start, with its name, UUID and the PID of the QEMU process
 * libvirt launched, then saw it destroyed and forgot it. libvirt's driver
 * threads call the event interface from outside the service's loop here,
 * which the bridge must queue to the loop.
 */
#include <libvirt/libvirt.h>
#include <pthread.h>
#include <sys/eventfd.h>

#include "service/log.h"
#include "service/service.h"
#include "svc.h"

#define QEMU_BIN "/usr/bin/qemu-system-x86_64"
#define DOM_NAME "ptrack-embed"

/*
 * The guest, at F000:0000 (the start of the 64 KiB image); the reset
 * vector at F000:FFF0 jumps there:
 *	cli; mov $0x1000,%bx
 *   1:	mov %bx,%es; xor %di,%di
 *   2:	incb %es:(%di); add $0x1000,%di; jnz 2b
 *	add $0x1000,%bx; cmp $0xa000,%bx; jb 1b; jmp start
 * It writes one byte in each 4 KiB page from 64 KiB to 640 KiB, forever.
 */
static const unsigned char guest_code[] = {
	0xfa, 0xbb, 0x00, 0x10, 0x8e, 0xc3, 0x31, 0xff, 0x26, 0xfe,
	0x05, 0x81, 0xc7, 0x00, 0x10, 0x75, 0xf7, 0x81, 0xc3, 0x00,
	0x10, 0x81, 0xfb, 0x00, 0xa0, 0x72, 0xe9, 0xeb, 0xe3,
};
static const unsigned char reset_jmp[] = { 0xea, 0x00, 0x00, 0x00, 0xf0 };

struct embed {
	char dir[64], root[96], uri[160], bios[128], log[128];
	char uuid[40];
	struct svc ctl; /* only ctl and dir: for svc_ctl */
	struct pt_config cfg;
	struct pt_service s;
	pthread_t th;
	int stop_fd;
	int ready_fd; /* written once the service's init returned */
	int init_ret;
};

static int write_file(const char *path, const void *p, size_t n)
{
	FILE *f = fopen(path, "w");
	int ok;

	if (!f)
		return -1;
	ok = fwrite(p, 1, n, f) == n;
	return fclose(f) == 0 && ok ? 0 : -1;
}

static int write_bios(const char *path)
{
	static unsigned char img[65536];

	memset(img, 0xf4, sizeof(img)); /* hlt */
	memcpy(img, guest_code, sizeof(guest_code));
	memcpy(img + 0xfff0, reset_jmp, sizeof(reset_jmp));
	return write_file(path, img, sizeof(img));
}

static int on_stop(sd_event_source *es, int fd, uint32_t revents, void *arg)
{
	struct pt_service *s = arg;

	(void)es;
	(void)fd;
	(void)revents;
	return sd_event_exit(s->ev, 0);
}

/* The service's thread: init (the bridge belongs to it), loop, release. */
static void *service_main(void *arg)
{
	struct embed *e = arg;
	sd_event_source *stop = NULL;

	e->init_ret = pt_service_init(&e->s, &e->cfg);
	if (!e->init_ret)
		e->init_ret = sd_event_add_io(e->s.ev, &stop, e->stop_fd,
					      EPOLLIN, on_stop, &e->s) < 0;
	eventfd_write(e->ready_fd, 1);
	if (!e->init_ret)
		pt_service_run(&e->s);
	sd_event_source_unref(stop);
	pt_service_release(&e->s);
	return NULL;
}

static int embed_setup(struct embed *e)
{
	char path[160];
	FILE *f;

	memset(e, 0, sizeof(*e));
	strcpy(e->dir, "/tmp/ptrack-embed-XXXXXX");
	if (!mkdtemp(e->dir))
		return -1;
	snprintf(e->root, sizeof(e->root), "%s/root", e->dir);
	snprintf(e->uri, sizeof(e->uri), "qemu:///embed?root=%s", e->root);
	snprintf(e->bios, sizeof(e->bios), "%s/bios.bin", e->dir);
	snprintf(e->log, sizeof(e->log), "%s/service.log", e->dir);
	snprintf(path, sizeof(path), "%s/etc", e->root);
	if (mkdir(e->root, 0755) || mkdir(path, 0755))
		return -1;
	/* No virtlogd here: QEMU's output goes to root/log/qemu/NAME.log. */
	snprintf(path, sizeof(path), "%s/etc/qemu.conf", e->root);
	f = fopen(path, "w");
	if (!f)
		return -1;
	fprintf(f, "user = \"root\"\ngroup = \"root\"\n"
		   "stdio_handler = \"file\"\n");
	fclose(f);
	if (write_bios(e->bios))
		return -1;
	f = fopen("/proc/sys/kernel/random/uuid", "r");
	if (!f || !fgets(e->uuid, sizeof(e->uuid), f)) {
		if (f)
			fclose(f);
		return -1;
	}
	fclose(f);
	e->uuid[strcspn(e->uuid, "\n")] = '\0';
	strcpy(e->ctl.dir, e->dir);
	snprintf(e->ctl.ctl, sizeof(e->ctl.ctl), "%s/control.sock", e->dir);
	pt_config_defaults(&e->cfg);
	snprintf(e->cfg.control_socket, sizeof(e->cfg.control_socket),
		 "%s/control.sock", e->dir);
	snprintf(e->cfg.vmm_socket, sizeof(e->cfg.vmm_socket), "%s/vmm.sock",
		 e->dir);
	snprintf(e->cfg.libvirt_uri, sizeof(e->cfg.libvirt_uri), "%s", e->uri);
	e->cfg.metrics_enabled = 0;
	e->cfg.log_target = PT_LOG_STDERR;
	e->cfg.log_prio = LOG_DEBUG;
	e->stop_fd = eventfd(0, EFD_CLOEXEC);
	e->ready_fd = eventfd(0, EFD_CLOEXEC);
	return e->stop_fd < 0 || e->ready_fd < 0 ? -1 : 0;
}

static char *domain_xml(const struct embed *e)
{
	char *x = NULL;

	if (asprintf(&x,
		     "<domain type='kvm'><name>" DOM_NAME "</name>"
		     "<uuid>%s</uuid><memory unit='MiB'>16</memory>"
		     "<vcpu>1</vcpu><os><type arch='x86_64' machine='pc'>hvm"
		     "</type><loader type='rom'>%s</loader></os>"
		     "<devices><emulator>" QEMU_BIN "</emulator></devices>"
		     "</domain>",
		     e->uuid, e->bios) < 0)
		return NULL;
	return x;
}

/* The service's ptrack_libvirt_domain_info line for our domain, or NULL. */
static char *info_line(struct embed *e)
{
	char *out = NULL, *p, *line = NULL;

	if (svc_ctl(&e->ctl, &out, "metrics") == 0 && out) {
		p = strstr(out,
			   "ptrack_libvirt_domain_info{domain=\"" DOM_NAME);
		if (p)
			line = strndup(p, strcspn(p, "\n"));
	}
	free(out);
	return line;
}

/* The service logs when it starts or stops following the domain (before
 * it answers the next request): wait for that, then read the metrics. */
static char *wait_info(struct embed *e, int present, long ms)
{
	char *l;

	if (!svc_wait_file(e->log,
			   present ? "libvirt domain running"
				   : "libvirt domain stopped",
			   ms))
		return NULL;
	l = info_line(e);
	if (!!l == present)
		return l ? l : strdup("");
	free(l);
	return NULL;
}

static pid_t pid_file(const struct embed *e)
{
	char path[200];
	FILE *f;
	int pid = 0;

	snprintf(path, sizeof(path), "%s/run/qemu/" DOM_NAME ".pid", e->root);
	f = fopen(path, "r");
	if (!f)
		return 0;
	if (fscanf(f, "%d", &pid) != 1)
		pid = 0;
	fclose(f);
	return pid;
}

/* @pid is QEMU running our guest: its binary and its -name. */
static int is_our_qemu(pid_t pid)
{
	char path[64], exe[256] = "", cmd[4096];
	ssize_t n;
	FILE *f;
	size_t len;
	int named = 0;

	snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
	n = readlink(path, exe, sizeof(exe) - 1);
	if (n > 0)
		exe[n] = '\0';
	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	len = fread(cmd, 1, sizeof(cmd) - 1, f);
	fclose(f);
	for (size_t i = 0; i < len; i += strlen(cmd + i) + 1)
		named |=
			!strcmp(cmd + i, "guest=" DOM_NAME ",debug-threads=on");
	return !strcmp(exe, QEMU_BIN) && named;
}

static int libvirt_connected(struct embed *e)
{
	char *out = NULL;
	int c = svc_ctl(&e->ctl, &out, "status", "--json") == 0 && out &&
		strstr(out, "\"libvirt_connected\":true");

	free(out);
	return c;
}

static void test_embed_domain(void)
{
	char want[200], *line, *xml;
	int saved_err, logfd;
	virConnectPtr conn;
	virDomainPtr dom = NULL;
	virDomainInfo info;
	unsigned long long cpu0;
	struct embed e;
	long t0 = svc_ms();
	pid_t pid = 0;

	if (!svc_have_kvm())
		PT_SKIP("no /dev/kvm");
	if (access(QEMU_BIN, X_OK)) {
		CU_FAIL("no " QEMU_BIN
			": `make deps` installs qemu-system-x86");
		return;
	}
	CU_ASSERT_FATAL(embed_setup(&e) == 0);
	/* The service logs to stderr: into a file we read back. */
	fflush(stderr);
	saved_err = dup(2);
	logfd = open(e.log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	CU_ASSERT_FATAL(saved_err >= 0 && logfd >= 0);
	dup2(logfd, 2);
	close(logfd);

	CU_ASSERT_FATAL(pthread_create(&e.th, NULL, service_main, &e) == 0);
	/* The first open of a fresh root probes QEMU's capabilities. */
	if (pt_wait_readable(e.ready_fd, 0, 60000)) {
		/* Stuck in libvirt: nothing to join; say where. */
		dup2(saved_err, 2);
		svc_show(e.log);
		CU_FAIL_FATAL("the service did not start within 60 s");
	}
	CU_ASSERT_EQUAL(e.init_ret, 0);
	CU_ASSERT(libvirt_connected(&e));

	/* The same embedded driver, from this thread. */
	conn = virConnectOpen(e.uri);
	CU_ASSERT_PTR_NOT_NULL(conn);
	xml = domain_xml(&e);
	if (conn && xml)
		dom = virDomainDefineXML(conn, xml);
	free(xml);
	CU_ASSERT_PTR_NOT_NULL(dom);
	CU_ASSERT(!dom || virDomainCreate(dom) == 0);

	/* Started: the service has it with the QEMU PID libvirt wrote. */
	line = wait_info(&e, 1, 10000);
	CU_ASSERT_PTR_NOT_NULL(line);
	pid = pid_file(&e);
	CU_ASSERT(pid > 0);
	CU_ASSERT(is_our_qemu(pid));
	snprintf(want, sizeof(want),
		 "ptrack_libvirt_domain_info{domain=\"" DOM_NAME
		 "\",uuid=\"%s\",pid=\"%d\",vm=\"\"} 1",
		 e.uuid, (int)pid);
	CU_ASSERT_STRING_EQUAL(line ? line : "", want);
	free(line);
	snprintf(want, sizeof(want),
		 "libvirt domain running: uuid %s, QEMU pid %d VM=" DOM_NAME,
		 e.uuid, (int)pid);
	CU_ASSERT(svc_file_has(e.log, want));
	/* The lifecycle event, not only a listing at connect: 2/0 is
	 * STARTED/BOOTED. */
	CU_ASSERT(svc_file_has(e.log, "domain event 2/0 VM=" DOM_NAME));

	/* The guest runs: its vCPU uses time. */
	CU_ASSERT(dom && virDomainGetInfo(dom, &info) == 0 &&
		  info.state == VIR_DOMAIN_RUNNING);
	cpu0 = info.cpuTime;
	usleep(300000);
	CU_ASSERT(dom && virDomainGetInfo(dom, &info) == 0 &&
		  info.cpuTime > cpu0 + 50000000ull);

	/* Not registered through libptrack: ptrackctl dirtyrate falls back
	 * to libvirt's measurement and says so. */
	{
		char *out = NULL;

		CU_ASSERT_EQUAL(svc_ctl(&e.ctl, &out, "dirtyrate", DOM_NAME,
					"--seconds", "1", "--json"),
				0);
		fprintf(stderr, "\n  %s", out ? out : "(no output)\n");
		CU_ASSERT_PTR_NOT_NULL(out &&
				       strstr(out, "\"method\":\"libvirt\""));
		CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "\"calc_status\":2"));
		CU_ASSERT_PTR_NOT_NULL(
			out && strstr(out, "\"calc_mode\":\"page-sampling\""));
		free(out);
		out = NULL;
		CU_ASSERT_EQUAL(svc_ctl(&e.ctl, &out, "dirtyrate", DOM_NAME,
					"--seconds", "1", "--mode", "bitmap"),
				0);
		for (char *l = out ? strtok(out, "\n") : NULL; l;
		     l = strtok(NULL, "\n"))
			fprintf(stderr, "  %s\n", l);
		CU_ASSERT(svc_file_has(e.log, "method=libvirt"));
		free(out);
		out = NULL;
		/* Neither registered nor a domain: said so. */
		CU_ASSERT_EQUAL(
			svc_ctl(&e.ctl, &out, "dirtyrate", "nosuch", "--json"),
			5);
		CU_ASSERT_PTR_NOT_NULL(out &&
				       strstr(out, "nor a libvirt domain"));
		free(out);
	}

	/* Destroyed: seen (5/1 is STOPPED/DESTROYED) and forgotten. */
	CU_ASSERT(dom && virDomainDestroy(dom) == 0);
	line = wait_info(&e, 0, 10000);
	CU_ASSERT_PTR_NOT_NULL(line);
	free(line);
	CU_ASSERT(svc_wait_file(e.log, "domain event 5/1 VM=" DOM_NAME, 5000));
	CU_ASSERT(svc_file_has(e.log, "libvirt domain stopped (reason 1): "
				      "forgotten VM=" DOM_NAME));
	CU_ASSERT(pid > 0 && kill(pid, 0) < 0 && errno == ESRCH);
	CU_ASSERT_EQUAL(pid_file(&e), 0);

	if (dom) {
		virDomainUndefine(dom);
		virDomainFree(dom);
	}
	if (conn)
		virConnectClose(conn);
	CU_ASSERT(eventfd_write(e.stop_fd, 1) == 0);
	pthread_join(e.th, NULL);
	close(e.stop_fd);
	close(e.ready_fd);
	fflush(stderr);
	dup2(saved_err, 2);
	close(saved_err);
	if (CU_get_number_of_failures())
		svc_show(e.log);
	fprintf(stderr, "\n  embed guest test: %ld ms\n", svc_ms() - t0);
	{
		/* What ptrackctl dirtyrate printed (it went to the log). */
		char cmd[300];

		snprintf(
			cmd, sizeof(cmd),
			"grep -E '^  (\\{\"ok\"|Domain:|  (method|dirtyrate)\\.?)' "
			"%s >&2",
			e.log);
		if (system(cmd) != 0)
			fprintf(stderr, "  (no dirtyrate output)\n");
	}
	svc_cleanup(&e.ctl);
}

PT_SUITE(service_embed, PT_TEST(test_embed_domain));
