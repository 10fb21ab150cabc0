/* SPDX-License-Identifier: MIT */
/*
 * ptrackd's service mode: one sd-event loop owns the control socket, the
 * VMM registration socket, the metrics HTTP server, libvirt's events,
 * timers, signals and the watchdog. Only blocking engine work (a migration,
 * a peer session) runs in a worker thread, which talks back to the loop
 * through an eventfd.
 */
#ifndef PT_SERVICE_SERVICE_H
#define PT_SERVICE_SERVICE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-event.h>

#include "codec/frame.h"
#include "core/dirty.h"
#include "engine/migrate.h"
#include "ptrack/version.h"
#include "service/config.h"
#include "service/ctlmsg.h"
#include "service/meter.h"

#define PT_VERSION PTRACK_VERSION

struct pt_service;
struct pt_conn;

/*
 * A control request still waiting for its answer. Control owns it: the
 * handler that keeps one (a migration, a peer session, a dirtyrate
 * measurement) embeds it and answers through pt_req_reply(). When the
 * client goes away, control orphans its requests (conn becomes NULL) and
 * replies to them go nowhere; the work itself goes on.
 */
struct pt_req {
	struct pt_conn *conn; /* NULL: nobody is listening any more */
	uint64_t id;
	struct pt_req *next; /* in conn->reqs while pending */
};

/* Migration states; pt_mig_state_name() gives the wire and metrics names. */
enum pt_mig_state {
	PT_MIG_ACTIVE,
	PT_MIG_COMPLETED,
	PT_MIG_FAILED,
	PT_MIG_CANCELLED,
	PT_MIG_NSTATES
};

const char *pt_mig_state_name(enum pt_mig_state st);

struct pt_migration {
	struct pt_service *svc;
	struct pt_vm *vm;
	struct pt_dirty_source proxy; /* forwards to vm->src, metered */
	struct pt_source_opts opts;
	struct pt_source_result res;
	char to[256];
	char cc[16]; /* TCP congestion control, empty: the system's */
	uint64_t id;
	pthread_t th;
	int efd;
	sd_event_source *es;
	atomic_int cancel;
	pthread_mutex_t lock;
	struct pt_mig_progress prog; /* latest, under lock */
	double rate; /* dirty bytes/s between the last two harvests */
	int have_rate; /* a harvest set rate: until then the VM's stands */
	double *vcpu_rate; /* per vCPU, under lock */
	uint64_t *vpages; /* scratch for the migration thread */
	uint64_t prog_seq, prog_sent;
	int done, ret;
	enum pt_mig_state state;
	double start_time, end_time; /* Unix seconds; end 0 while running */
	struct pt_req req; /* who asked */
};

struct pt_rate_req {
	struct pt_rate_req *next;
	struct pt_vm *vm;
	struct pt_window *w;
	sd_event_source *timer;
	struct pt_req req;
	uint64_t start_unix;
	int vcpu;
};

struct pt_vm {
	struct pt_vm *next;
	struct pt_service *svc;
	struct pt_dirty_source *src;
	sd_event_source *hup;
	struct pt_meter meter;
	struct pt_window *sample; /* open while tracked or migrating */
	pid_t pid;
	char uuid[37];
	char domain[256];
	int started; /* src->ops->start done */
	int tracked; /* by the operator or policy */
	int gone; /* the VMM disconnected */
	double rate; /* bytes/s over the last sample window */
	double *vcpu_rate;
	struct pt_migration *mig; /* running or last */
	/* Incoming VM: the peer session that fills it, if one does. */
	struct pt_peer_job *incoming_job;
};

struct pt_peer_job {
	struct pt_service *svc;
	struct pt_peer_opts opts;
	struct pt_peer_result res;
	char listen[256], mem_path[256], state_dir[256];
	struct pt_vm *vm; /* the incoming VM this session fills, or NULL */
	pthread_t th;
	int efd, lfd, ret;
	int done; /* the session ended (res and ret are final) */
	double start_time, end_time; /* Unix seconds */
	sd_event_source *es;
	struct pt_req req;
	struct pt_peer_job *next;
};

struct pt_conn {
	struct pt_conn *next;
	struct pt_service *svc;
	int fd;
	sd_event_source *es;
	struct pt_reader rd;
	struct pt_req *reqs; /* pending, answered later */
	uint64_t seq;
	pid_t pid;
	uid_t uid;
};

/* A running libvirt domain the service follows (virt.c). */
struct pt_dom {
	struct pt_dom *next;
	char name[256];
	char uuid[37];
	pid_t pid; /* QEMU's, from libvirt's pid file; 0: unknown */
};

/* The migration figures exported for every engine (metrics.c names them). */
enum pt_mig_figure {
	PT_MF_TOTAL, /* bytes */
	PT_MF_PROCESSED,
	PT_MF_REMAINING,
	PT_MF_XFER_RATE, /* bytes/s */
	PT_MF_DIRTY_RATE,
	PT_MF_ROUNDS,
	PT_MF_EXP_DOWNTIME, /* seconds */
	PT_MF_DOWNTIME,
	PT_MF_START, /* Unix seconds */
	PT_MF_END,
	PT_MF_N
};

/* A libvirt (QEMU) migration job, current or last, of a domain, from
 * virDomainGetJobStats (virt.c). Kept after the domain leaves this host. */
struct pt_vjob {
	struct pt_vjob *next;
	char domain[256];
	char uuid[37];
	int incoming; /* VIR_DOMAIN_JOB_OPERATION_MIGRATION_IN */
	int no_domain; /* a ptrack VM not mapped to a libvirt domain */
	unsigned int none_polls; /* polls that found no job any more */
	int active;
	enum pt_mig_state state;
	double fig[PT_MF_N]; /* NAN: not reported */
};

struct pt_virt;
struct pt_metrics;
struct pt_vrate;

struct pt_service {
	struct pt_config cfg;
	sd_event *ev;
	int ctl_fd, vmm_fd;
	int ctl_activated; /* the control socket came from systemd */
	sd_event_source *ctl_es, *vmm_es, *sample_es, *term_es, *int_es;
	sd_event_source *exit_timer;
	sd_event_source *status_es; /* post: publishes STATUS= when dirty */
	int status_dirty;
	gid_t ctl_gid;
	int have_gid;
	struct pt_vm *vms;
	struct pt_conn *conns;
	struct pt_rate_req *rates;
	struct pt_peer_job *peers;
	struct pt_metrics *metrics;
	struct pt_virt *virt;
	struct pt_dom *doms; /* running libvirt domains */
	uint64_t start_ns;
	uint64_t next_mig_id;
	unsigned int running_migrations;
	int stopping;
	uint64_t refused_total;
	uint64_t migrations_total[PT_MIG_NSTATES]; /* ended, by state */
	uint64_t incoming_total[PT_MIG_NSTATES]; /* peer sessions ended */
	struct pt_vjob *vjobs; /* libvirt migration jobs (virt.c) */
	struct pt_vjob *ended; /* ptrack's last migration per VM (metrics.c) */
	struct pt_vrate *vrates; /* libvirt dirty-rate requests (virt_rate.c) */
	uint64_t libvirt_total[2][PT_MIG_NSTATES]; /* [incoming][result] */
	/* Reads the configuration again (SIGHUP); NULL: nothing to read. */
	int (*reload)(struct pt_config *out, char *err, size_t errlen,
		      void *arg);
	void *reload_arg;
	sd_event_source *hup_es;
	/* The peer link's credentials, loaded by the first job needing
	 * them ([tls]); shared by every job of that side. */
	struct pt_tls *tls[2]; /* [0] source (client), [1] destination */
};

/* tls.c: the credentials for one side (@server: destination) in *@out,
 * NULL with [tls] insecure (logged every time). 0, or -EACCES with the
 * reason in @err. */
int pt_service_tls(struct pt_service *s, int server, const struct pt_tls **out,
		   char *err, size_t len);

int pt_service_init(struct pt_service *s, const struct pt_config *cfg);
int pt_service_run(struct pt_service *s);
void pt_service_release(struct pt_service *s);
/* What STATUS= shows changed: the loop publishes it once, after the
 * event being handled (service.c). */
static inline void pt_service_changed(struct pt_service *s)
{
	s->status_dirty = 1;
}

/* reload.c: SIGHUP */
struct signalfd_siginfo;
int pt_service_on_hup(sd_event_source *es, const struct signalfd_siginfo *si,
		      void *arg);

/* control.c */
int pt_control_accept(sd_event_source *es, int fd, uint32_t revents, void *arg);
void pt_conn_close(struct pt_conn *c);
/* Answers @q (r->id is set here); a final answer ends it. Answers to an
 * orphaned request are dropped. */
int pt_req_reply(struct pt_req *q, PtCtlReply *r);
int pt_req_error(struct pt_req *q, int err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* @dst (embedded in a job) takes over @q, to be answered later. */
void pt_req_keep(struct pt_req *dst, const struct pt_req *q);
/* Ends @q without an answer (its job went away). */
void pt_req_drop(struct pt_req *q);
int pt_peer_allowed(struct pt_service *s, int fd, pid_t *pid, uid_t *uid);

/* vm.c */
int pt_vmm_on_accept(sd_event_source *es, int fd, uint32_t revents, void *arg);
struct pt_vm *pt_vm_find(struct pt_service *s, const char *name_or_uuid);
int pt_vm_track(struct pt_vm *vm, int on);
void pt_vm_free(struct pt_vm *vm);
/* Frees a VM whose VMM left, once nothing uses it any more. */
void pt_vm_reap(struct pt_vm *vm);
int pt_vm_harvest(struct pt_vm *vm);
int pt_sample_tick(sd_event_source *es, uint64_t usec, void *arg);
int pt_rate_start(struct pt_service *s, struct pt_req *rq,
		  const Ptrack__Control__V1__DirtyRateRequest *q);
const char *pt_vm_kind(const struct pt_vm *vm);
const char *pt_vm_state(const struct pt_vm *vm);

/* Wall-clock time in Unix seconds (metrics' timestamps). */
double pt_unix_now(void);

/* migration.c */
int pt_migration_start(struct pt_service *s, struct pt_req *rq,
		       const Ptrack__Control__V1__MigrateRequest *q);
void pt_migration_cancel_all(struct pt_service *s);
void pt_migration_free(struct pt_migration *m);

/* peer_job.c */
int pt_peer_start(struct pt_service *s, struct pt_req *rq,
		  const Ptrack__Control__V1__PeerListenRequest *q);
void pt_peer_free(struct pt_peer_job *p);

/* metrics.c */
int pt_metrics_start(struct pt_service *s);
void pt_metrics_stop(struct pt_service *s);
/* Keeps @m's final figures for the metrics after its VM is gone. */
void pt_metrics_keep(struct pt_service *s, struct pt_migration *m);
void pt_metrics_ended_free(struct pt_service *s);
/* Renders the Prometheus text; caller frees. */
char *pt_metrics_render(struct pt_service *s);
const char *pt_metrics_address(struct pt_service *s);

/* virt.c */
int pt_virt_start(struct pt_service *s);
void pt_virt_stop(struct pt_service *s);
int pt_virt_connected(struct pt_service *s);
void pt_virt_map(struct pt_service *s);
/* A libvirt migration job of @d started (@running) or ended: tracking
 * follows when [libvirt] track_migrations is on. */
struct _virDomain;
void pt_virt_job(struct pt_service *s, struct _virDomain *d, int running);

/* virt_jobs.c: libvirt migration jobs as metrics */
struct _virTypedParameter;
void pt_virt_job_poll(struct pt_service *s, struct _virDomain *d);
void pt_virt_job_completed(struct pt_service *s, struct _virDomain *d,
			   struct _virTypedParameter *p, int n);
void pt_virt_job_gone(struct pt_service *s, const char *uuid, int migrated);
void pt_virt_job_incoming(struct pt_service *s, struct _virDomain *d,
			  int started);
int pt_virt_jobs_active(const struct pt_service *s);
void pt_virt_jobs_free(struct pt_service *s);
/* virt_rate.c: `ptrackctl dirtyrate` for a libvirt domain not registered
 * with ptrackd (virDomainStartDirtyRateCalc); "no VM" when there is none. */
int pt_virt_rate_start(struct pt_service *s, struct pt_req *rq,
		       const Ptrack__Control__V1__DirtyRateRequest *q);
void pt_virt_rates_free(struct pt_service *s);
/* virt.c: the connection, NULL when none. */
struct _virConnect *pt_virt_conn(struct pt_service *s);
/* virt.c: polls the active jobs once per sample period. */
void pt_virt_jobs_arm(struct pt_service *s);

/* virt_bridge.c */
/* Serves libvirt's event interface from @ev, from the thread that runs
 * @ev. libvirt may call it from any thread; see virt_bridge.c. */
int pt_virt_bridge(sd_event *ev);
/* Runs the free callbacks of removed handles the loop did not get to. */
void pt_virt_bridge_reap(void);

#endif
