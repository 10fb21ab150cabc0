/* SPDX-License-Identifier: MIT */
/*
 * The streaming engine: iterative pre-copy of a pt_dirty_source to a peer
 * over TCP (pt_migrate), and the peer that stores what it receives into
 * destination memory (pt_peer_run).
 *
 * Stream: Hello (seq 1), then per round the round's dirty set (DirtyBitmap
 * or DirtyRing frames), the dirty pages (PageData) and IterationDone; after
 * the final round, taken with the vCPUs paused, Complete with per-region
 * CRC32C. The peer acks cumulative sequence numbers once frames are stored.
 * On a dropped connection the source reconnects, sends Resume (seq 0, not
 * part of the stream) and the peer answers with an Ack of the last frame it
 * stored; the source then resends everything after it, rebuilt from current
 * guest memory, which is correct because the content is at least as new and
 * any later write is reported by a later harvest.
 *
 * Destination memory holds the regions back to back in layout order
 * (ascending guest-physical base); pt_layout_offset() gives each offset.
 */
#ifndef PT_ENGINE_MIGRATE_H
#define PT_ENGINE_MIGRATE_H

#include <stdint.h>

#include "codec/layout.h"
#include "core/dirty.h"

struct pt_tls;

#define PT_DOWNTIME_MS_DEFAULT 300
#define PT_MAX_ROUNDS_DEFAULT 30
#define PT_TIME_LIMIT_MS_DEFAULT 120000
#define PT_WINDOW_DEFAULT 64
#define PT_FRAME_BYTES_DEFAULT (512u << 10)
#define PT_ACK_EVERY_DEFAULT 16
#define PT_IO_TIMEOUT_MS_DEFAULT 10000
#define PT_RECONNECT_MS_DEFAULT 15000
#define PT_SWITCHOVER_MS_DEFAULT 30000

/* What the CLI shows after each round (QEMU query-migrate names). */
struct pt_mig_progress {
	uint64_t round;
	uint64_t dirty_pages; /* harvested for this round */
	uint64_t remaining; /* bytes of dirty pages still to send */
	double mbps; /* measured stream bandwidth, 10^6 bytes/s */
	double expected_downtime_ms; /* remaining / bandwidth */
	uint64_t transferred; /* bytes on the wire so far */
	int final; /* this round runs with the vCPUs paused */
	unsigned int throttle; /* auto-converge: vCPU throttle, percent */
};

struct pt_source_opts {
	const char *to; /* HOST:PORT of the peer */
	uint64_t downtime_ms; /* 0: PT_DOWNTIME_MS_DEFAULT */
	uint64_t bandwidth; /* bytes/s cap, 0: none */
	/* Keep the cap in the final round too (the guest is paused then:
	 * by default the cap is lifted, as QEMU does). */
	int cap_final_round;
	unsigned int max_rounds; /* 0: PT_MAX_ROUNDS_DEFAULT */
	uint64_t time_limit_ms; /* 0: PT_TIME_LIMIT_MS_DEFAULT */
	unsigned int window; /* unacked frames in flight, 0: default */
	uint32_t frame_bytes; /* page bytes per PageData frame, 0: default */
	int io_timeout_ms; /* 0: PT_IO_TIMEOUT_MS_DEFAULT */
	uint64_t reconnect_ms; /* give up reconnecting after, 0: default */
	int force_raw_bitmap;
	/* Auto-converge: throttle the vCPUs while rounds do not shrink the
	 * dirty set enough, from ac_initial percent (0: 20) up by ac_step
	 * (0: 10) to at most 99, as QEMU does; lifted when the migration
	 * ends. Off by default. */
	int auto_converge;
	unsigned int ac_initial, ac_step;
	/* Copy memory only, even when the VMM could hand its guest over. */
	int copy_only;
	/* After Complete: how long to wait for the peer's Resumed, and to
	 * learn the outcome if the link breaks; 0: PT_SWITCHOVER_MS_DEFAULT. */
	uint64_t switchover_ms;
	/* TCP congestion control of the stream (TCP_CONGESTION), NULL: the
	 * system's. BBR without the fq qdisc paces every socket with its own
	 * hrtimers, which halved the loopback stream of bench-migrate. */
	const char *tcp_congestion;
	/* TLS credentials of the link (engine/tls.h); NULL: plain TCP, with
	 * a warning on every connection. */
	const struct pt_tls *tls;
	void (*progress)(const struct pt_mig_progress *p, void *arg);
	void *arg;
};

struct pt_source_result {
	uint64_t session_id;
	uint64_t rounds; /* including round 0 and the final round */
	uint64_t total_ms, downtime_ms; /* downtime: pause to Complete acked */
	/* Parts of the downtime: pausing the vCPUs and the final harvest;
	 * Complete's checksums and their Ack. */
	uint64_t pause_ms, complete_ms;
	uint64_t bytes; /* on the wire, retransmissions included */
	uint64_t pages_sent, zero_pages, round0_ns, round0_bytes;
	uint64_t reconnects, retransmitted;
	uint64_t state_bytes; /* VMM state blob sent */
	unsigned int throttle_max; /* highest auto-converge throttle, percent */
	uint64_t resume_ms; /* Complete acked to Resumed */
	/* The guest runs on the peer now: the caller stops it here. */
	int switched_over;
	/* Failed after Complete without learning whether the peer resumed
	 * the guest: it was left paused here, neither resumed nor stopped. */
	int outcome_unknown;
	int code; /* protocol error code on failure, else 0 */
	char err[256];
};

/*
 * Migrates @src to the peer at @o->to. Returns 0 once the peer acked
 * Complete, and, when both sides can switch over (the source has
 * save_state, the peer an incoming VM), once the peer said Resumed
 * (res->switched_over): the guest is then left paused (and still tracked)
 * for the caller to stop (or compare, after a memory-only copy). On
 * failure returns a negative errno with the reason in @res, and the guest
 * is running (resumed if it was paused), except with res->outcome_unknown,
 * when it stays paused because it may already run on the peer.
 * The caller owns @src and calls its stop/release.
 */
int pt_migrate(struct pt_dirty_source *src, const struct pt_source_opts *o,
	       struct pt_source_result *res);

struct pt_peer_opts {
	const char *listen; /* HOST:PORT, used when lfd < 0 */
	int lfd; /* an already listening socket, or -1 */
	const char *mem_path; /* destination file; NULL: a memfd */
	const char *state_dir; /* session state; NULL: not persisted */
	unsigned int ack_every; /* 0: PT_ACK_EVERY_DEFAULT */
	int io_timeout_ms; /* 0: PT_IO_TIMEOUT_MS_DEFAULT */
	uint64_t idle_ms; /* wait for a (re)connection, 0: 60 s */
	const struct pt_tls *tls; /* as in pt_source_opts */
	/* Largest guest a Hello may declare, refused before allocating;
	 * 0: what the destination can hold now (MemAvailable for a memfd,
	 * the free space of mem_path's filesystem). */
	uint64_t max_mem;
	int quiet;
	/* An incoming VM (registered through libptrack): pages go straight
	 * into its memory, its state is loaded and it is resumed at the end
	 * (switchover). The session must be for this VM (UUID, else name).
	 * NULL: into mem_path or a memfd, a memory copy only. */
	struct pt_dirty_source *incoming;
	/* Connections are served by forked children that run as this user
	 * (when started as root), NULL: "ptrack", else "nobody". */
	const char *privsep_user;
	/* Serve connections in threads of this process, privileges kept:
	 * for the fuzzer only, which must see the session's coverage. */
	int privsep_thread;
};

struct pt_peer_result {
	uint64_t session_id;
	uint64_t frames, pages, zero_pages, rounds, duplicates;
	uint64_t stale_pages; /* declared dirty in the last round, not sent */
	uint64_t mem_size;
	int resumed; /* the session was restored from the state file */
	int switched_over; /* the incoming VM was loaded and resumed */
	int code;
	char err[256];
};

/*
 * Serves one migration session: returns 0 when Complete arrived and every
 * region's checksum matched (also when restarted on a state file whose
 * session was already complete and no source reconnects within idle_ms),
 * else a negative errno with the reason in @res (the source was sent an
 * Error frame when it could be).
 */
int pt_peer_run(const struct pt_peer_opts *o, struct pt_peer_result *res);

/* When @bytes sent since @t0 (ns) are due at @bandwidth bytes/s; no
 * overflow for any byte count (saturates at UINT64_MAX). */
uint64_t pt_cap_due_ns(uint64_t t0, uint64_t bytes, uint64_t bandwidth);

/* Byte offset of layout region @i in destination memory. */
uint64_t pt_layout_offset(const struct pt_layout *l, size_t i);

/* TCP helpers: "HOST:PORT" (IPv4, IPv6 in brackets, or a name). */
int pt_tcp_listen(const char *hostport);
int pt_tcp_connect(const char *hostport, int timeout_ms);
int pt_sock_timeouts(int fd, int timeout_ms);

/*
 * Secures a connected TCP socket @fd (TLS handshake as client or server,
 * per @t, with one deadline of @timeout_ms; @host: the name the server's
 * certificate must carry, for a client). Returns the stream socket the
 * engine reads and writes from then on, or a negative errno with the
 * reason in @err (-EACCES: the other side is not who it must be). @fd is
 * consumed either way. @t NULL: returns @fd, warning that the link is
 * plain TCP.
 */
int pt_link_secure(const struct pt_tls *t, int fd, const char *host,
		   int timeout_ms, char *err, size_t len);

/* The warning pt_link_secure(NULL, ...) prints. */
void pt_link_warn_plain(void);

/* The host part of "HOST:PORT" into @host; -EINVAL if malformed. */
int pt_hostport_host(const char *hostport, char *host, size_t len);

/*
 * Whether this kernel lets a TCP socket of ours use congestion control
 * @name (TCP_CONGESTION on a scratch socket). Returns 0, or a negative
 * errno with the reason, and what is available, in @err.
 */
int pt_tcp_congestion_check(const char *name, char *err, size_t len);

#endif
