// SPDX-License-Identifier: MIT
#include "service/log.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>
/* We pass the caller's location ourselves. */
#define SD_JOURNAL_SUPPRESS_LOCATION
#include <systemd/sd-journal.h>
#include <unistd.h>

static int use_journal;
static int max_prio = LOG_INFO;

void pt_log_setup(enum pt_log_target t, int prio)
{
	if (t == PT_LOG_AUTO)
		use_journal = access("/run/systemd/journal/socket", W_OK) == 0;
	else
		use_journal = t == PT_LOG_JOURNAL;
	max_prio = prio;
}

int pt_log_max_prio(void)
{
	return max_prio;
}

static const char *const prio_names[] = {
	"emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
};

int pt_log_prio_parse(const char *s)
{
	for (int i = 0; i < 8; i++)
		if (!strcmp(s, prio_names[i]))
			return i;
	return -1;
}

/* Only the fields the message has: an empty VM= would be stored as a
 * field with an empty value, which `journalctl VM=` matches. */
static void log_journal(const char *file, int line, const char *func, int prio,
			const char *vm, uint64_t mig, const char *msgid,
			const char *text)
{
	char msg[1100], pr[16], vms[300], migs[48], ids[64];
	char cfile[300], cline[32];
	struct iovec iov[6];
	int n = 0;

	snprintf(msg, sizeof(msg), "MESSAGE=%s", text);
	snprintf(pr, sizeof(pr), "PRIORITY=%d", prio);
	iov[n++] = (struct iovec){ msg, strlen(msg) };
	iov[n++] = (struct iovec){ pr, strlen(pr) };
	iov[n++] = (struct iovec){ (char *)"SYSLOG_IDENTIFIER=ptrackd", 25 };
	if (vm) {
		snprintf(vms, sizeof(vms), "VM=%s", vm);
		iov[n++] = (struct iovec){ vms, strlen(vms) };
	}
	if (mig) {
		snprintf(migs, sizeof(migs), "MIGRATION_ID=%" PRIu64, mig);
		iov[n++] = (struct iovec){ migs, strlen(migs) };
	}
	if (msgid) {
		snprintf(ids, sizeof(ids), "MESSAGE_ID=%s", msgid);
		iov[n++] = (struct iovec){ ids, strlen(ids) };
	}
	snprintf(cfile, sizeof(cfile), "CODE_FILE=%s", file);
	snprintf(cline, sizeof(cline), "CODE_LINE=%d", line);
	sd_journal_sendv_with_location(cfile, cline, func, iov, n);
}

void pt_logx_at(const char *file, int line, const char *func, int prio,
		const char *vm, uint64_t mig, const char *msgid,
		const char *fmt, ...)
{
	char text[1024];
	va_list ap;

	if (prio > max_prio)
		return;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (use_journal) {
		log_journal(file, line, func, prio, vm, mig, msgid, text);
		return;
	}
	fprintf(stderr, "ptrackd[%d]: <%s> %s", (int)getpid(),
		prio_names[prio & 7], text);
	if (vm)
		fprintf(stderr, " VM=%s", vm);
	if (mig)
		fprintf(stderr, " MIGRATION_ID=%" PRIu64, mig);
	if (msgid)
		fprintf(stderr, " MESSAGE_ID=%s", msgid);
	fputc('\n', stderr);
}
