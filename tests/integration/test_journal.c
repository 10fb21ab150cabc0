// SPDX-License-Identifier: MIT
/*
 * Structured logging into a real systemd-journald. A child process gets a
 * private mount namespace with a tmpfs on /run and our directory bound on
 * /run/log/journal, starts /lib/systemd/systemd-journald there (no PID 1
 * needed), then two `ptrackd serve` with --log-target auto: they find
 * /run/systemd/journal/socket and log through sd_journal_send. A
 * ptrack-vmm guest registers and is migrated from one to the other. After
 * journald stopped, `journalctl -D DIR -o json` reads the files back and
 * the entries must carry VM, MIGRATION_ID and MESSAGE_ID, with the PID
 * journald saw on the socket being the daemon's.
 */
#include <sched.h>
#include <sys/mount.h>

#include "service/log.h"
#include "svc.h"

#define JOURNALD "/lib/systemd/systemd-journald"

/* Mount namespace: a fresh /run, @jdir as /run/log/journal. */
static int private_run(const char *jdir)
{
	if (unshare(CLONE_NEWNS) ||
	    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) ||
	    mount("tmpfs", "/run", "tmpfs", 0, "mode=0755"))
		return -1;
	if (mkdir("/run/systemd", 0755) ||
	    mkdir("/run/systemd/journal", 0755) || mkdir("/run/log", 0755) ||
	    mkdir("/run/log/journal", 0755))
		return -1;
	return mount(jdir, "/run/log/journal", NULL, MS_BIND, NULL);
}

/*
 * The scenario, in the child. Returns 0, or the number of the step that
 * failed (the child's exit status). Writes the source daemon's PID to
 * @pidf for the parent's checks.
 */
/* What the child started, stopped whatever the outcome. */
static struct svc src, dst;
static pid_t jd, vmm, peer;

static int scenario(const char *dir, const char *jdir, const char *pidf)
{
	const char *vargs[] = { "--mem", "32M", "--rate", "200", NULL };
	const char *auto_log[] = { "--log-target", "auto", NULL };
	char jlog[160], to[64], mem[200], pout[200];
	char *jargv[] = { JOURNALD, NULL };
	int step = 0, port = pt_test_free_port(), st;
	FILE *f;

	snprintf(jlog, sizeof(jlog), "%s/journald.out", dir);
	step++; /* 1 */
	if (private_run(jdir))
		return step;
	step++; /* 2: journald up */
	jd = svc_spawn(jlog, jargv, NULL);
	st = svc_wait_accepting("/run/systemd/journal/stdout", jd, 10000);
	if (st == -ECHILD) {
		waitpid(jd, NULL, 0);
		jd = 0; /* it exited: nothing to stop */
	}
	if (st)
		return step;
	step++; /* 3: two daemons logging to it */
	if (svc_mkdir(&src) || svc_mkdir(&dst) || svc_start(&src, auto_log) ||
	    svc_start(&dst, auto_log))
		return step;
	f = fopen(pidf, "w");
	if (!f)
		return step;
	fprintf(f, "%d\n", (int)src.pid);
	fclose(f);
	step++; /* 4: a VM registers */
	vmm = svc_vmm(&src, "jvm", vargs);
	if (vmm <= 0)
		return step;
	step++; /* 5: and migrates */
	snprintf(to, sizeof(to), "127.0.0.1:%d", port);
	snprintf(mem, sizeof(mem), "%s/dest.mem", dst.dir);
	snprintf(pout, sizeof(pout), "%s/peer.out", dst.dir);
	{
		char bin[PATH_MAX];

		snprintf(bin, sizeof(bin), "%s/ptrackctl", pt_test_bindir());
		peer = svc_spawn(pout,
				 (char *[]){ bin, "--socket", dst.ctl, "peer",
					     "listen", to, "--mem-file", mem,
					     "--json", NULL },
				 NULL);
	}
	if (!svc_wait_file(pout, "\"state\":\"listening\"", 5000))
		return step;
	if (svc_ctl(&src, NULL, "migrate", "jvm", "--to", to) != 0)
		return step;
	svc_wait(peer, 10000);
	peer = 0;
	step++; /* 6: everything stops, journald last (it syncs) */
	kill(vmm, SIGTERM);
	svc_wait(vmm, 5000);
	vmm = 0;
	if (svc_stop(&src) || svc_stop(&dst))
		return step;
	kill(jd, SIGTERM);
	st = svc_wait(jd, 10000);
	jd = 0;
	if (st < 0)
		return step;
	step++; /* 7: nothing went to stderr instead */
	if (svc_file_has(src.log, "VM registered") ||
	    svc_file_has(src.log, "MESSAGE_ID="))
		return step;
	svc_cleanup(&src);
	svc_cleanup(&dst);
	return 0;
}

/* Some line of @text (one JSON object per line) holds all of @want. */
static int has_entry(const char *text, const char *const *want)
{
	for (const char *l = text; l && *l;) {
		size_t n = strcspn(l, "\n");
		int all = 1;

		for (int i = 0; want[i] && all; i++) {
			const char *p = strstr(l, want[i]);

			all = p && p < l + n;
		}
		if (all)
			return 1;
		l += n + (l[n] == '\n');
	}
	return 0;
}

static char *journal_json(const char *jdir)
{
	char mid[64] = "", cmd[600], out[200];
	FILE *f = fopen("/etc/machine-id", "r");

	if (!f || !fgets(mid, sizeof(mid), f)) {
		if (f)
			fclose(f);
		return NULL;
	}
	fclose(f);
	mid[strcspn(mid, "\n")] = '\0';
	snprintf(out, sizeof(out), "%s.json", jdir);
	snprintf(cmd, sizeof(cmd),
		 "journalctl -D '%s/%s' -o json --no-pager "
		 "SYSLOG_IDENTIFIER=ptrackd > '%s'",
		 jdir, mid, out);
	if (system(cmd))
		return NULL;
	return svc_slurp(out);
}

static void test_journald(void)
{
	char jdir[128], pidf[128], pidv[64], mig[64], cmd[128], *json;
	struct svc d;
	pid_t child;
	int st, spid = 0;
	long t0 = svc_ms();
	FILE *f;

	if (access(JOURNALD, X_OK))
		PT_SKIP("no " JOURNALD " (Debian package systemd)");
	if (!svc_have_kvm())
		PT_SKIP("no /dev/kvm");
	if (geteuid())
		PT_SKIP("needs root");
	CU_ASSERT_FATAL(svc_mkdir(&d) == 0);
	snprintf(jdir, sizeof(jdir), "%s/journal", d.dir);
	snprintf(pidf, sizeof(pidf), "%s/src.pid", d.dir);
	CU_ASSERT_FATAL(mkdir(jdir, 0755) == 0);
	fflush(NULL);
	child = fork();
	if (child == 0) {
		int ret = scenario(d.dir, jdir, pidf);
		pid_t left[] = { peer, vmm, src.pid, dst.pid, jd };

		for (size_t i = 0; i < sizeof(left) / sizeof(left[0]); i++)
			if (left[i] > 0 && !kill(left[i], SIGKILL))
				svc_wait(left[i], 5000);
		_exit(ret);
	}
	st = svc_wait(child, 90000);
	CU_ASSERT(st >= 0 && WIFEXITED(st));
	if (st >= 0 && WIFEXITED(st) && WEXITSTATUS(st)) {
		fprintf(stderr, "\n  journal scenario failed at step %d\n",
			WEXITSTATUS(st));
		snprintf(cmd, sizeof(cmd), "%s/journald.out", d.dir);
		svc_show(cmd);
	}
	CU_ASSERT_EQUAL(st >= 0 && WIFEXITED(st) ? WEXITSTATUS(st) : -1, 0);
	f = fopen(pidf, "r");
	if (f) {
		if (fscanf(f, "%d", &spid) != 1)
			spid = 0;
		fclose(f);
	}
	CU_ASSERT(spid > 0);
	snprintf(pidv, sizeof(pidv), "\"_PID\":\"%d\"", spid);

	json = journal_json(jdir);
	CU_ASSERT_PTR_NOT_NULL_FATAL(json);
	/* Through the native socket, from the daemon's process. */
	CU_ASSERT(has_entry(
		json,
		(const char *const[]){ "\"MESSAGE_ID\":\"" PT_MSGID_START "\"",
				       "\"_TRANSPORT\":\"journal\"", pidv,
				       "\"PRIORITY\":\"6\"", NULL }));
	CU_ASSERT(has_entry(json, (const char *const[]){
					  "\"MESSAGE_ID\":\"" PT_MSGID_VM "\"",
					  "\"VM\":\"jvm\"",
					  "\"MESSAGE\":\"VM registered: ", pidv,
					  NULL }));
	/* The caller's location, not the logging helper's. */
	CU_ASSERT(has_entry(
		json,
		(const char *const[]){ "\"MESSAGE_ID\":\"" PT_MSGID_VM "\"",
				       "\"CODE_FILE\":\"daemon/service/vm.c\"",
				       "\"CODE_FUNC\":\"", NULL }));
	CU_ASSERT_FALSE(strstr(json, "\"CODE_FILE\":\"daemon/service/log.c\""));
	/* One MESSAGE_ID per kind of event. */
	CU_ASSERT(has_entry(
		json, (const char *const[]){
			      "\"MESSAGE_ID\":\"" PT_MSGID_VM_GONE "\"",
			      "\"MESSAGE\":\"VMM disconnected\"", NULL }));
	/* Fields a message does not have are absent, not empty. */
	CU_ASSERT_FALSE(strstr(json, "\"VM\":\"\""));
	CU_ASSERT_FALSE(strstr(json, "\"MIGRATION_ID\":\"\""));
	CU_ASSERT_FALSE(strstr(json, "\"MESSAGE_ID\":\"\""));
	CU_ASSERT(has_entry(
		json, (const char *const[]){ "\"MESSAGE\":\"VMM disconnected\"",
					     "\"VM\":\"jvm\"", NULL }));
	/* One migration: id 1 on start and end, with the VM. */
	snprintf(mig, sizeof(mig), "\"MIGRATION_ID\":\"1\"");
	CU_ASSERT(has_entry(json,
			    (const char *const[]){
				    "\"MESSAGE_ID\":\"" PT_MSGID_MIG_START "\"",
				    "\"VM\":\"jvm\"", mig, pidv, NULL }));
	CU_ASSERT(has_entry(json,
			    (const char *const[]){
				    "\"MESSAGE_ID\":\"" PT_MSGID_MIG_END "\"",
				    "\"VM\":\"jvm\"", mig, pidv,
				    "\"PRIORITY\":\"6\"", NULL }));
	if (CU_get_number_of_failures())
		fprintf(stderr, "\n--- journal\n%.8000s\n", json);
	free(json);
	fprintf(stderr, "\n  journald test: %ld ms\n", svc_ms() - t0);
	svc_cleanup(&d);
}

PT_SUITE(journal, PT_TEST(test_journald));
