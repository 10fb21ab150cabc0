// SPDX-License-Identifier: MIT
#include "service/log.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
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

static void log_journal(int prio, const char *vm, uint64_t mig,
			const char *msgid, const char *text)
{
	char migs[32];

	snprintf(migs, sizeof(migs), "%" PRIu64, mig);
	/* Absent fields are sent as empty ones rather than branching on
	 * every combination; journalctl filters treat them as unset. */
	sd_journal_send("MESSAGE=%s", text, "PRIORITY=%d", prio,
			"SYSLOG_IDENTIFIER=ptrackd", "VM=%s", vm ? vm : "",
			"MIGRATION_ID=%s", mig ? migs : "", "MESSAGE_ID=%s",
			msgid ? msgid : "", NULL);
}

void pt_logx(int prio, const char *vm, uint64_t mig, const char *msgid,
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
		log_journal(prio, vm, mig, msgid, text);
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
