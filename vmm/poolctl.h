/*
 * vmm/poolctl.h — what a host memory daemon (ebbd) needs from one VM, on the
 * VM's control socket (docs/control-protocol.md, "Commands for ebbd"):
 *
 *   - per-VM pool settings by name: `set` takes min_bytes / low_bytes
 *     (protections: ebbd never reclaims below min, and below low only when
 *     nothing else is left) and weight (share of pressure), besides the
 *     engine's high / max / swappiness.  The VMM only stores min, low and
 *     weight: they live here so that a restarted ebbd reads them back;
 *   - `clamp`: lowers high and/or max for lease_ms milliseconds.  When the
 *     lease expires without being renewed (another `clamp`), the VMM returns
 *     to its configured limits on its own: a VM never stays squeezed by a
 *     dead daemon.  `clamp {"lift": true}` ends it at once;
 *   - `stats`: one flat, cheap object per call with exactly the counters the
 *     balancer reads every tick.
 *
 * The configured limits are what `ebb run --mem-high/--mem-max` and `set`
 * chose; the effective ones (what the engine enforces) are the configured
 * ones lowered by an active clamp.
 *
 * Threading: everything runs on the event thread (the lease timer is a
 * timerfd on the VM's event loop).
 */
#ifndef EBB_VMM_POOLCTL_H
#define EBB_VMM_POOLCTL_H

#include <stdint.h>

#include "client/ctl.h"
#include "client/evloop.h"
#include "client/log.h"
#include "vmm/memory.h"

#define VMM_POOLCTL_MAX_LEASE_MS 600000u    /* 10 minutes */
#define VMM_POOLCTL_DEFAULT_WEIGHT 100u
#define VMM_POOLCTL_MAX_WEIGHT 10000u

/*
 * Events for ebbd (sent to `watch` subscribers, client/ctl_server.h), so the
 * balancer is woken by the VM rather than only by its own polling:
 *   "grow"          resident memory rose by VMM_POOLCTL_GROW_STEP (or 1/64
 *                   of RAM, the larger) since the last event or low point;
 *   "at-max"        faults were served over max or failed at max since the
 *                   last sample (the VM is squeezed);
 *   "lease-expired" a clamp ran out: the configured limits are back.
 * Sampled every VMM_POOLCTL_SAMPLE_MS on the event loop.
 */
#define VMM_POOLCTL_SAMPLE_MS 100u
#define VMM_POOLCTL_GROW_STEP_BYTES (4ull << 20)

typedef void (*vmm_poolctl_notify_fn)(void *opaque, const char *event,
				      struct json_object *fields);

struct vmm_poolctl_cfg {
	struct vmm_memory *memory;    /* NULL: engine off (settings only, no clamp) */
	struct vmm_evloop *loop;
	uint64_t mem_bytes;
	vmm_poolctl_notify_fn notify; /* may be NULL; fields consumed */
	void *notify_opaque;
	struct vmm_log log;
};

struct vmm_poolctl_counters {
	uint64_t nr_clamps;           /* clamp calls that set or renewed a lease */
	uint64_t nr_lifts;            /* clamps ended by {"lift": true} */
	uint64_t nr_lease_expired;    /* clamps ended by their lease running out */
	uint64_t nr_bad_requests;     /* CLIENT: rejected set/clamp arguments */
	uint64_t nr_events;           /* events sent (any kind) */
};

struct vmm_poolctl;

int vmm_poolctl_create(const struct vmm_poolctl_cfg *cfg, struct vmm_poolctl **out);
/* Lifts an active clamp (back to the configured limits).  NULL is a no-op. */
void vmm_poolctl_destroy(struct vmm_poolctl *pc);

/* CLIENT: `set`: min_bytes, low_bytes, weight here; high/max/swappiness are
 * passed on to vmm_memory_ctl_set() and become the configured limits. */
enum vmm_ctl_err vmm_poolctl_set(struct vmm_poolctl *pc, const struct vmm_ctl_request *req,
				 struct json_object **result, char *msg, size_t msg_len);
/* CLIENT: `clamp`: {"max_bytes": N, "high_bytes": N, "lease_ms": N} or {"lift": true}. */
enum vmm_ctl_err vmm_poolctl_clamp(struct vmm_poolctl *pc, const struct vmm_ctl_request *req,
				   struct json_object **result, char *msg, size_t msg_len);
/* `stats`: the flat counters object (see docs/control-protocol.md). */
enum vmm_ctl_err vmm_poolctl_stats(struct vmm_poolctl *pc, struct json_object **result,
				   char *msg, size_t msg_len);
/* Registers the commands poolctl owns (`set`, `clamp`) with @srv. */
struct vmm_ctl_server;
int vmm_poolctl_register(struct vmm_poolctl *pc, struct vmm_ctl_server *srv);
/* Adds "pool": {min, low, weight, clamp} to a query result. */
void vmm_poolctl_query(struct vmm_poolctl *pc, struct json_object *result);

/* Expires the lease now if it is due at now_ns (the timer calls this; tests
 * too).  Returns true when a clamp ended. */
bool vmm_poolctl_check_lease(struct vmm_poolctl *pc, uint64_t now_ns);
/* One event sample now (the timer calls this; tests too). */
void vmm_poolctl_sample(struct vmm_poolctl *pc);
void vmm_poolctl_get_counters(struct vmm_poolctl *pc, struct vmm_poolctl_counters *out);

#endif
