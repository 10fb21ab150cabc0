/* SPDX-License-Identifier: MIT */
/*
 * Daemon logging: to the journal with structured fields (VM, MIGRATION_ID,
 * MESSAGE_ID) when journald's socket exists, else one line on stderr with
 * the same fields as key=value, so tests and foreground runs see them too.
 */
#ifndef PT_SERVICE_LOG_H
#define PT_SERVICE_LOG_H

#include <stdint.h>
#include <syslog.h>

/* MESSAGE_IDs (sd-id128), one per kind of event operators filter on;
 * systemd/ptrackd.catalog explains each (journalctl -x). */
#define PT_MSGID_START "6a1d1c3f0f9a4e0c9d8e2b7a5c4f3e21"
#define PT_MSGID_REFUSED "b3f7e2a14c6d4f8e9a0b1c2d3e4f5a60"
#define PT_MSGID_MIG_START "2c4e6a8b0d1f43a5b7c9e1f3a5b7c9d1"
#define PT_MSGID_MIG_END "3d5f7b9c1e2a44b6c8d0f2a4b6c8d0e2"
#define PT_MSGID_VM "4e6a8c0d2f3b45c7d9e1a3b5c7d9e1f3" /* registered */
#define PT_MSGID_VM_GONE "7592ca95a6494500b842f47cc975d84a"
#define PT_MSGID_TRACKING "e011f4462f5a4333bd94d963ad9132d5"
#define PT_MSGID_PEER_END "2ef3e005c50f49e78980275877ba9a8d"
/* libvirt: the connection; its domains; its migration jobs. */
#define PT_MSGID_LIBVIRT "5f7b9d1e3a4c46d8e0f2b4c6d8e0f2a4"
#define PT_MSGID_LIBVIRT_DOMAIN "b93b4a489ee742bc81f984915991ffd3"
#define PT_MSGID_LIBVIRT_JOB "33a219ac8ed846bc989ab7219ae82d1b"
#define PT_MSGID_DIRTYRATE "ffd93cdeaa544e479216ce1d04f527d0"
#define PT_MSGID_RELOAD "7a2c4e6f8b0d42e1a3c5e7f9b1d3f5a7"

enum pt_log_target { PT_LOG_AUTO, PT_LOG_STDERR, PT_LOG_JOURNAL };

void pt_log_setup(enum pt_log_target t, int max_prio);
int pt_log_max_prio(void);

/* @vm and @msgid may be NULL, @migration_id 0 when none. The journal
 * gets the caller's CODE_FILE, CODE_LINE and CODE_FUNC. */
void pt_logx_at(const char *file, int line, const char *func, int prio,
		const char *vm, uint64_t migration_id, const char *msgid,
		const char *fmt, ...) __attribute__((format(printf, 8, 9)));

#define pt_logx(...) pt_logx_at(__FILE__, __LINE__, __func__, __VA_ARGS__)
#define pt_log(prio, ...) pt_logx(prio, NULL, 0, NULL, __VA_ARGS__)

/* Parses "err", "warning", "info", "debug" (syslog names). */
int pt_log_prio_parse(const char *s);

#endif
