/* SPDX-License-Identifier: MIT */
/*
 * ptrackd's configuration: /etc/ptrack/ptrackd.conf (INI, parsed by inih),
 * then command-line overrides through the same validated setter. Every key
 * is checked; the first error is reported as "file:line: reason".
 */
#ifndef PT_SERVICE_CONFIG_H
#define PT_SERVICE_CONFIG_H

#include <stdint.h>
#include <sys/un.h>

#define PT_CONFIG_PATH "/etc/ptrack/ptrackd.conf"
#define PT_CONTROL_SOCKET "/run/ptrack/control.sock"
#define PT_VMM_SOCKET "/run/ptrack/vmm.sock"
#define PT_STATE_DIR "/var/lib/ptrack"
#define PT_METRICS_LISTEN "127.0.0.1:9477"
#define PT_LIBVIRT_URI "qemu:///system"
#define PT_LIBVIRT_PID_DIR "/run/libvirt/qemu"
#define PT_CONFIG_ERR_MAX 512
#define PT_TLS_DIR "/etc/pki/ptrack"

#define PT_SUN_PATH_MAX (sizeof(((struct sockaddr_un *)0)->sun_path))

struct pt_config {
	/* [daemon] */
	char control_socket[PT_SUN_PATH_MAX];
	char vmm_socket[PT_SUN_PATH_MAX];
	char state_dir[256];
	char control_group[64];
	int log_prio;
	int log_target; /* enum pt_log_target */
	/* [metrics] */
	int metrics_enabled;
	char metrics_listen[128];
	unsigned int sample_ms; /* harvest period of tracked VMs */
	/* [libvirt] */
	int libvirt_enabled;
	char libvirt_uri[256];
	int track_migrations; /* start/stop tracking on migration jobs */
	char libvirt_pid_dir[256];
	unsigned int reconnect_ms;
	/* [migration] */
	uint64_t downtime_ms;
	uint64_t bandwidth;
	unsigned int max_rounds;
	uint64_t time_limit_ms;
	char tcp_congestion[16]; /* empty: the system's */
	int auto_converge; /* [migration] auto_converge */
	/* [tls] the peer link (engine/tls.h); x509 from tls_dir unless
	 * psk_file is set; plain TCP only with insecure = true */
	char tls_dir[256];
	char tls_psk_file[256];
	char tls_psk_identity[128];
	char tls_allowed[1024]; /* ';'-separated DN patterns, empty: any */
	int tls_insecure;
};

void pt_config_defaults(struct pt_config *c);

/*
 * Sets one key, validated. Returns 0, or -EINVAL with the reason (no
 * location) in @err.
 */
int pt_config_set(struct pt_config *c, const char *section, const char *key,
		  const char *value, char *err, size_t errlen);

/*
 * Loads @path over @c. A missing file is an error unless @optional.
 * Returns 0, or a negative errno with "path:line: reason" in @err.
 */
int pt_config_load(struct pt_config *c, const char *path, int optional,
		   char *err, size_t errlen);

#endif
