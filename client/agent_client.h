/*
 * agent_client.h - the host side of the ebb guest-agent protocol
 * (docs/agent-protocol.md): hello, reports, cooperative reclaim, config, and
 * the unsolicited "pressure" / periodic "report" messages the agent sends.
 *
 * The client talks over any connected stream fd: a unix socket to QEMU's
 * virtserialport chardev, or the ebb VMM's port.  Everything the guest sends is
 * hostile input: lines are capped, JSON depth is capped, every number is
 * checked for type and range and every string for length before it reaches a
 * caller's struct; a bad message is dropped, counted and (rate-limited)
 * logged through the callback.  The library holds no global state and never
 * prints.  One thread drives a client.
 *
 * Replies and unsolicited messages share the stream: while a request waits for
 * its reply, unsolicited messages are parsed and queued (bounded: the oldest
 * is dropped and counted when full) for agent_client_next_event().
 */
#ifndef EBB_HOST_RECLAIM_AGENT_CLIENT_H
#define EBB_HOST_RECLAIM_AGENT_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/log.h"

#define AGENT_CLIENT_PROTO_VERSION 1
#define AGENT_CLIENT_MAX_EVENTS    16

struct agent_client_cfg {
	int fd;                        /* connected stream; the client closes it on destroy */
	size_t max_line_bytes;         /* longest accepted line; 0 = 16384, at most 1 MiB */
	ebb_log_fn log;                /* may be NULL */
	void *log_ctx;
	unsigned log_burst;            /* log lines per window; 0 = 10 */
	uint32_t log_window_ms;        /* 0 = 10000 */
};

/* Capabilities the agent advertises in hello. */
enum {
	AGENT_CAP_REPORT     = 1u << 0,
	AGENT_CAP_CONFIG     = 1u << 1,
	AGENT_CAP_DROP       = 1u << 2,   /* reclaim.drop_caches */
	AGENT_CAP_COMPACT    = 1u << 3,   /* reclaim.compact */
	AGENT_CAP_PROACTIVE  = 1u << 4,   /* reclaim.proactive */
	AGENT_CAP_PRESSURE   = 1u << 5,
};

struct agent_hello {
	uint32_t version;
	int64_t pid;
	uint32_t page_size;
	uint32_t max_line_bytes;
	uint32_t caps;                 /* AGENT_CAP_* */
	uint32_t nr_unknown_caps;      /* names we do not know (newer agent) */
	uint32_t report_period_ms;
	uint32_t psi_stall_us;
	uint32_t psi_window_us;
};

struct agent_guest_meminfo {
	uint64_t total_bytes, free_bytes, available_bytes, buffers_bytes, cached_bytes,
		 swap_cached_bytes, active_anon_bytes, inactive_anon_bytes,
		 active_file_bytes, inactive_file_bytes, unevictable_bytes, mlocked_bytes,
		 swap_total_bytes, swap_free_bytes, dirty_bytes, writeback_bytes,
		 anon_pages_bytes, mapped_bytes, shmem_bytes, sreclaimable_bytes,
		 sunreclaim_bytes;
};

struct agent_guest_vmstat {
	uint64_t pgscan_kswapd, pgscan_direct, pgsteal_kswapd, pgsteal_direct,
		 workingset_refault, workingset_refault_anon, workingset_refault_file,
		 pswpin, pswpout, oom_kill, pgmajfault, allocstall, compact_stall;
};

struct agent_guest_psi_line {
	bool present;
	uint32_t avg10_centipct, avg60_centipct, avg300_centipct;   /* 0..10000 */
	uint64_t total_us;
};

struct agent_report {
	bool unsolicited;              /* periodic (no id) */
	bool have_meminfo, have_vmstat, have_psi, have_estimate, have_agent;
	struct agent_guest_meminfo meminfo;
	struct agent_guest_vmstat vmstat;
	struct agent_guest_psi_line psi_some, psi_full;
	uint64_t give_back_bytes, safe_target_bytes, clean_file_bytes,
		 free_reserve_bytes, cache_floor_bytes;
	/* The agent's own counters. */
	int64_t agent_pid;
	uint64_t agent_nr_sessions, agent_nr_requests, agent_nr_bad_requests,
		 agent_nr_long_lines, agent_nr_pressure_events, agent_nr_pressure_sent,
		 agent_nr_dropped_msgs;
};

enum agent_reclaim_op { AGENT_RECLAIM_DROP_CACHES, AGENT_RECLAIM_COMPACT, AGENT_RECLAIM_PROACTIVE };

struct agent_reclaim_result {
	bool complete;
	uint64_t freed_bytes, cache_dropped_bytes, free_before_bytes, free_after_bytes,
		 cache_before_bytes, cache_after_bytes, duration_us;
};

struct agent_pressure {
	uint64_t seq, need_bytes, total_bytes, free_bytes, available_bytes;
	uint32_t some_avg10_centipct, full_avg10_centipct;
	uint64_t some_total_us;
	uint32_t psi_stall_us, psi_window_us;
};

struct agent_error {
	int64_t id;                    /* -1: the agent could not tell (bad line) */
	char code[32];
	char message[128];
};

enum agent_event_type { AGENT_EV_REPORT, AGENT_EV_PRESSURE, AGENT_EV_ERROR };

struct agent_event {
	enum agent_event_type type;
	union {
		struct agent_report report;
		struct agent_pressure pressure;
		struct agent_error error;
	} u;
};

/* Counters: part of the API; tests assert on them. */
struct agent_client_counters {
	uint64_t nr_lines;             /* complete lines received */
	uint64_t nr_bad_json;          /* not a JSON object / too deep / NUL inside */
	uint64_t nr_invalid;           /* JSON but a field missing, mistyped or out of range */
	uint64_t nr_long_lines;        /* over max_line_bytes */
	uint64_t nr_unknown_type;      /* a type this client does not know (ignored) */
	uint64_t nr_stray_replies;     /* a reply to no request in flight */
	uint64_t nr_events;            /* unsolicited messages queued */
	uint64_t nr_events_dropped;    /* queue full */
	uint64_t nr_logs_suppressed;
};

struct agent_client;

int agent_client_create(const struct agent_client_cfg *cfg, struct agent_client **out);
void agent_client_destroy(struct agent_client *c);

/* Connect a SOCK_STREAM unix socket (e.g. QEMU's -chardev socket,server=on). */
int agent_client_connect_unix(const char *path, int *fd_out);

/* Requests.  Each sends one line and waits up to timeout_ms for its reply,
 * queueing unsolicited messages meanwhile.  Return 0, -ETIMEDOUT,
 * -EREMOTEIO (the agent answered with an error: see agent_client_last_error),
 * -EPROTO (the reply was invalid), -EPIPE (the stream ended) or another -errno. */
int agent_client_hello(struct agent_client *c, int timeout_ms, struct agent_hello *out);
int agent_client_report(struct agent_client *c, int timeout_ms, struct agent_report *out);
int agent_client_reclaim(struct agent_client *c, enum agent_reclaim_op op, uint64_t bytes,
			 bool slab, int timeout_ms, struct agent_reclaim_result *out);
/* Set what is >= 0; -1 leaves a value as it is. */
int agent_client_config(struct agent_client *c, int64_t report_period_ms,
			int64_t psi_stall_us, int64_t psi_window_us, int timeout_ms);

/* The next unsolicited message (or an error the agent could not attribute),
 * waiting up to timeout_ms.  0, -ETIMEDOUT or -EPIPE. */
int agent_client_next_event(struct agent_client *c, int timeout_ms, struct agent_event *out);

/* For an event loop that polls many fds: the client's fd, and one read of
 * whatever is there (0 = bytes fed or nothing to do, -EPIPE = stream ended,
 * other -errno), after which agent_client_pop_event() yields what arrived. */
int agent_client_fd(const struct agent_client *c);
int agent_client_read(struct agent_client *c);

/* Lower level, for tests and fuzzing: process bytes as if read from the fd. */
void agent_client_feed(struct agent_client *c, const char *data, size_t len);
/* Pop a queued event: 0 or -EAGAIN. */
int agent_client_pop_event(struct agent_client *c, struct agent_event *out);

const struct agent_error *agent_client_last_error(const struct agent_client *c);
void agent_client_get_counters(const struct agent_client *c, struct agent_client_counters *out);

#endif
