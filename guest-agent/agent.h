/*
 * agent.h - the ebb guest agent's core: protocol state machine, reports,
 * cooperative reclaim and pressure messages (protocol: docs/agent-protocol.md).
 *
 * The core does no I/O on the channel itself: the caller (bin/ebb-agent.c)
 * feeds it bytes read from the virtio-serial port with agent_input(), drains
 * the bytes it wants sent with agent_output()/agent_output_consume(), and
 * calls agent_tick() and agent_pressure() from its poll loop.  The core reads
 * and writes files under cfg.proc_root (normally "/proc") and cfg.cgroup_dir,
 * which lets the unit tests run it against sample files.
 *
 * Memory: everything is allocated by agent_create(); after that no call
 * allocates.  The pressure path (agent_pressure) only reads two small /proc
 * files into preallocated buffers and formats into a preallocated buffer.
 * Not thread-safe: one thread drives an agent.
 */
#ifndef EBB_GUEST_AGENT_H
#define EBB_GUEST_AGENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/log.h"
#include "guest-agent/agent_stats.h"

#define AGENT_PROTO_VERSION   1
#define AGENT_MAX_LINE_BYTES  1024   /* requests longer than this are refused */
#define AGENT_OUT_BYTES       65536  /* pending output; beyond it messages drop */

struct agent_cfg {
	const char *proc_root;          /* default "/proc" */
	const char *cgroup_dir;         /* cgroup v2 dir with memory.reclaim, or NULL */
	struct agent_estimate_cfg est;
	uint64_t comfort_bytes;         /* see agent_need_bytes(); 0 = default */
	uint64_t min_step_bytes;        /* 0 = default */
	uint32_t report_period_ms;      /* periodic reports; 0 = off */
	uint32_t psi_stall_us;          /* PSI trigger, default 100000 */
	uint32_t psi_window_us;         /* default 1000000 */
	ebb_log_fn log;                 /* may be NULL */
	void *log_ctx;
};

/* Counters: part of the API, reported to the host and asserted by tests. */
struct agent_counters {
	uint64_t nr_sessions;        /* hellos accepted */
	uint64_t nr_requests;        /* well-formed requests handled */
	uint64_t nr_bad_requests;    /* error replies sent for bad input */
	uint64_t nr_long_lines;      /* lines over AGENT_MAX_LINE_BYTES */
	uint64_t nr_reports_sent;    /* periodic reports */
	uint64_t nr_pressure_events; /* PSI trigger firings seen */
	uint64_t nr_pressure_sent;   /* "pressure" messages queued */
	uint64_t nr_dropped_msgs;    /* output queue full */
	uint64_t nr_logs_suppressed; /* rate limit */
};

struct agent;

int agent_create(const struct agent_cfg *cfg, struct agent **out);
void agent_destroy(struct agent *a);

/* A new connection (port opened / host reconnected): drop any partial input
 * and pending output; the host must say hello again. */
void agent_reset_session(struct agent *a);

/* CLIENT-facing: bytes from the host, any split.  Replies are queued. */
void agent_input(struct agent *a, const char *data, size_t len, uint64_t now_ms);

/* Queued output. */
void agent_output(const struct agent *a, const char **data, size_t *len);
void agent_output_consume(struct agent *a, size_t n);

/* Periodic work; returns the ms until it wants to be called again
 * (UINT32_MAX when nothing is scheduled). */
uint32_t agent_tick(struct agent *a, uint64_t now_ms);

/* The PSI trigger fired.  Queues a "pressure" message when a session is up. */
void agent_pressure(struct agent *a, uint64_t now_ms);

/* The caller tells whether the PSI trigger is armed (advertised in hello). */
void agent_set_psi_armed(struct agent *a, bool armed);
/* The trigger actually armed (the caller may have had to widen the window). */
void agent_psi_applied(struct agent *a, uint32_t stall_us, uint32_t window_us);
/* The PSI trigger the host asked for; *changed is set once per change. */
void agent_psi_config(struct agent *a, uint32_t *stall_us, uint32_t *window_us,
		      bool *changed);

bool agent_session_up(const struct agent *a);
void agent_get_counters(const struct agent *a, struct agent_counters *out);

#endif
