/*
 * balancer.h — ebbd's balancer: the host's kswapd for guest memory.
 *
 * This header is the contract between the balancer (pure logic) and the
 * daemon ebbd (observation, backends, sockets).  The balancer never does I/O
 * and never reads a clock: each call to ebb_bal_step() gets the time, one
 * observation of the host and one of every managed VM, and returns a list of
 * actions for the daemon to apply through the VM's backend.  Everything is
 * deterministic for a given sequence of inputs, so tests drive it tick by
 * tick against simulated VMs.  The algorithm is described atop balancer.c and
 * in docs/ebbd.md.
 *
 * Units: bytes (_bytes), nanoseconds (_ns), milliseconds (_ms).  Every number
 * in struct ebb_bal_vm_obs comes from a VM, its guest or its agent and is
 * hostile: the balancer validates and clamps it where it enters (counted in
 * struct ebb_bal_stats.nr_bad_*), and keeps running.
 *
 * Calling convention for the daemon:
 *   1. ebb_bal_create(&cfg, &bal)
 *   2. loop: observe host and VMs; ebb_bal_step(bal, now, &host, vms, n, acts,
 *      cap, &nr); apply each action in order (the order is the balancer's
 *      choice: cheapest source first); sleep until pool.next_step_ns or an
 *      event (agent pressure message, VM joined/left, a VM's fault rate rose).
 *      A VM absent from an observation has left the pool and is forgotten;
 *      a new id joins.  Failed actions need no report: the next observation
 *      shows what really happened (a balloon that did not move is noticed).
 *   3. ebb_bal_destroy(bal)
 *
 * Thread-safety: none inside; one thread (the daemon's balancer thread, or a
 * lock the daemon holds) serialises all calls on one balancer.
 *
 * Interface history (keep the shape stable; note every change here):
 *   v1 (first commit): this shape.
 *   v2: EBB_BAL_WHY_REFAULTS and stats.nr_refault_raises added (appended:
 *       code built against v1 still compiles).
 *   v3: ebb_bal_set_pool() added (ebbd's configuration reload).
 */
#ifndef EBB_HOST_RECLAIM_BALANCER_H
#define EBB_HOST_RECLAIM_BALANCER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "host-reclaim/pool.h"
#include "host-reclaim/reclaim_log.h"

#define EBB_BAL_API_VERSION 1
#define EBB_BAL_NAME_MAX 64          /* VM name including the NUL */
#define EBB_BAL_MAX_VMS 4096u        /* VMs one pool accepts per step */
#define EBB_BAL_WS_BUCKETS 8         /* working-set histogram buckets */
#define EBB_BAL_TRACE_LEN 256        /* last decisions kept for `trace` */
#define EBB_BAL_NO_LIMIT UINT64_MAX  /* high/max "not set" */
#define EBB_BAL_DEF_WEIGHT 100u
#define EBB_BAL_MAX_WEIGHT 10000u
#define EBB_BAL_DEF_PRIORITY 12      /* as DEF_PRIORITY: target ~ size >> 12 */

/* --- policies ---------------------------------------------------------- */

enum ebb_bal_policy {
	EBB_BAL_POLICY_EBB = 0,      /* watermarks, priorities, cheapest source, KSM steering */
	EBB_BAL_POLICY_MOM,          /* oVirt MoM's balloon rules (the peer); no host reclaim */
	EBB_BAL_POLICY_STATIC,       /* nothing moves (clamps still lifted, leases honoured) */
	EBB_BAL_NR_POLICIES
};

/* "ebb" / "mom" / "static"; NULL for an out-of-range value. */
const char *ebb_bal_policy_name(enum ebb_bal_policy p);
/* Parses a policy name; returns 0 or -EINVAL. */
int ebb_bal_policy_parse(const char *name, enum ebb_bal_policy *out);

/* --- what the daemon observes ------------------------------------------ */

/* The host, once per step. */
struct ebb_bal_host_obs {
	uint64_t mem_total_bytes;        /* /proc/meminfo MemTotal */
	uint64_t mem_available_bytes;    /* MemAvailable */
	uint64_t host_used_bytes;        /* used by the host outside managed VMs
					  * (0: derived from MemTotal - MemAvailable
					  * minus the VMs' resident memory) */
	/* ksmd, global (/sys/kernel/mm/ksm); all cumulative or current values */
	bool ksm_available;              /* the kernel has KSM and ebbd may steer it */
	uint64_t ksm_pages_sharing;      /* pages_sharing now */
	uint64_t ksm_pages_shared;       /* pages_shared now */
	uint64_t ksmd_cpu_ns;            /* ksmd's CPU time since boot (its stat) */
	uint32_t ksm_pages_to_scan;      /* current setting */
	uint32_t ksm_sleep_ms;           /* current setting */
	bool ksm_running;                /* run == 1 */
};

/* The backend a VM is reached through. */
enum ebb_bal_backend_kind {
	EBB_BAL_BACKEND_EBB = 0,         /* an ebb VMM over its control socket */
	EBB_BAL_BACKEND_LIBVIRT,         /* a libvirt/QEMU domain */
};

/* Mechanisms a VM's backend offers (ebb_bal_vm_obs.caps). */
enum {
	EBB_BAL_CAP_BALLOON    = 1u << 0,  /* balloon with a working driver */
	EBB_BAL_CAP_AGENT      = 1u << 1,  /* agent channel owned by ebbd (informational:
					    * agent_present and a fresh report decide) */
	EBB_BAL_CAP_HIGH       = 1u << 2,  /* host reclaim by lowering `high` */
	EBB_BAL_CAP_MAX_LEASE  = 1u << 3,  /* `max` clamp with a lease */
	EBB_BAL_CAP_KSM        = 1u << 4,  /* MADV_MERGEABLE on/off */
	EBB_BAL_CAP_AGENT_DROP = 1u << 5,  /* agent offers reclaim.drop_caches */
	EBB_BAL_CAP_AGENT_PROACTIVE = 1u << 6, /* agent offers reclaim.proactive */
};

/* Per-VM settings (configured by the operator: config file, `set`). */
struct ebb_bal_vm_cfg {
	uint64_t min_bytes;              /* never reclaimed below (0 = none) */
	uint64_t low_bytes;              /* reclaimed below only when nothing else is left */
	uint64_t high_bytes;             /* configured high (EBB_BAL_NO_LIMIT = none) */
	uint64_t max_bytes;              /* configured max (EBB_BAL_NO_LIMIT = none) */
	uint32_t weight;                 /* share of pressure, 1..10000 (0 = default 100) */
	int32_t swappiness;              /* 0..200, -1 = the engine's default; validated
					  * but not used by the balancer: the VM's engine
					  * applies it when its high is lowered */
	uint64_t balloon_floor_bytes;    /* the guest keeps at least this much */
	bool ksm_allowed;                /* operator opt-in to KSM for this VM */
};

/*
 * Working set by idle age: bytes[i] = resident bytes idle for at most
 * EBB_BAL_WS_AGE0_MS << i (the last bucket: everything older).  Built by
 * the VM's engine from dirty log, refaults and LRU ages (host-seen).
 */
#define EBB_BAL_WS_AGE0_MS 1000u
struct ebb_bal_ws_hist {
	bool valid;
	uint64_t bytes[EBB_BAL_WS_BUCKETS];
};

/* One VM, once per step.  GUEST: every field below is hostile input. */
struct ebb_bal_vm_obs {
	uint64_t id;                     /* stable for the VM's life (nonzero) */
	char name[EBB_BAL_NAME_MAX];
	enum ebb_bal_backend_kind backend;
	uint32_t caps;                   /* EBB_BAL_CAP_* */

	struct ebb_bal_vm_cfg cfg;

	uint64_t guest_bytes;            /* guest RAM size */
	uint64_t resident_bytes;         /* host memory the VM holds, compressed tier included */
	uint64_t compressed_bytes;       /* host memory of its compressed tier (in resident) */
	uint64_t swapped_compressed_bytes; /* guest bytes held in the compressed tier */
	uint64_t swapped_file_bytes;     /* guest bytes held in the file tier */
	uint64_t cur_high_bytes;         /* the high in force now (EBB_BAL_NO_LIMIT = none) */
	uint64_t cur_max_bytes;          /* the max in force now */
	bool max_clamped;                /* a leased clamp is in force (survives ebbd restart) */

	/* balloon: sizes are bytes INSIDE the balloon (taken from the guest) */
	uint64_t balloon_actual_bytes;
	uint64_t balloon_target_bytes;

	/* cumulative counters since the VM started (rates come from deltas) */
	uint64_t nr_refaults;            /* engine: faults on pages it evicted */
	uint64_t nr_swapins;             /* engine: pages read back from the store */
	uint64_t swapin_ns_total;        /* engine: time spent in those swap-ins */
	uint64_t psi_some_ns_total;      /* engine: vCPU stall time, some */
	uint64_t psi_full_ns_total;      /* engine: vCPU stall time, full */

	/* agent (valid when agent_present) */
	bool agent_present;
	uint64_t agent_report_ns;        /* when its last report arrived (daemon clock) */
	uint64_t agent_free_bytes;       /* MemFree */
	uint64_t agent_cache_bytes;      /* reclaimable clean cache */
	uint64_t agent_give_back_bytes;  /* the agent's estimate of what it can give */
	uint64_t agent_nr_pressure;      /* cumulative pressure messages received */
	uint64_t agent_pressure_need_bytes; /* need_bytes of the newest one */

	struct ebb_bal_ws_hist ws;

	/* KSM */
	bool ksm_advised;                /* MADV_MERGEABLE is on */
	uint64_t ksm_merging_pages;      /* /proc/PID/ksm_stat ksm_merging_pages */

	/* how the backend keeps a high (a static string, for status only;
	 * NULL: not said): libvirt's "memory.reclaim" or "process_madvise" */
	const char *high_via;
};

/* --- what the balancer decides ----------------------------------------- */

enum ebb_bal_action_kind {
	EBB_BAL_ACT_BALLOON = 0,         /* value: balloon size in bytes (taken from the guest);
					  * value2: what the guest keeps (guest_bytes - value),
					  * i.e. the control protocol's size_bytes / virsh setmem */
	EBB_BAL_ACT_SET_HIGH,            /* value: new high in bytes (EBB_BAL_NO_LIMIT: lift) */
	EBB_BAL_ACT_CLAMP_MAX,           /* value: max in bytes; lease_ms: lease length */
	EBB_BAL_ACT_LIFT_CLAMP,          /* value: the configured max to return to */
	EBB_BAL_ACT_KSM_ADVISE,          /* value: 1 = MADV_MERGEABLE, 0 = UNMERGEABLE */
	EBB_BAL_ACT_AGENT_DROP_CACHE,    /* ask the agent to drop clean cache */
	EBB_BAL_ACT_AGENT_RECLAIM,       /* value: bytes of proactive reclaim in the guest */
	EBB_BAL_ACT_KSMD,                /* vm_id 0; value: pages_to_scan, value2: sleep_ms;
					  * value 0 = stop ksmd (run=0) */
	EBB_BAL_NR_ACTIONS
};

/* Why (the rule that fired). */
enum ebb_bal_reason {
	EBB_BAL_WHY_RECLAIM = 0,         /* free < low: balancing toward high */
	EBB_BAL_WHY_DIRECT,              /* free < min: clamp at resident */
	EBB_BAL_WHY_LIFT,                /* free >= low again: clamp lifted */
	EBB_BAL_WHY_PRESSURE,            /* the agent asked for memory */
	EBB_BAL_WHY_FOR_PRESSURE,        /* taken from this VM for another's pressure */
	EBB_BAL_WHY_GROW,                /* free above high: give memory back slowly */
	EBB_BAL_WHY_STUCK,               /* balloon did not converge: re-targeted */
	EBB_BAL_WHY_PROTECT,             /* a protection/limit/floor moved a target */
	EBB_BAL_WHY_KSM_COLD,            /* cold and similar: KSM advised */
	EBB_BAL_WHY_KSM_UNPROFITABLE,    /* merged too little: KSM off */
	EBB_BAL_WHY_KSMD_YIELD,          /* ksmd rate from measured yield */
	EBB_BAL_WHY_MOM_SHRINK,          /* mom: host free < 20% */
	EBB_BAL_WHY_MOM_GROW,            /* mom: host free ample */
	EBB_BAL_WHY_LEAVE,               /* VM left or policy changed: undo */
	EBB_BAL_WHY_REFAULTS,            /* refaults/PSI under a high we set: raised (v2) */
	EBB_BAL_NR_REASONS
};

/* Reclaim sources, cheapest first by default (a, b, c of the design). */
enum ebb_bal_source {
	EBB_BAL_SRC_BALLOON = 0,         /* guest free + reclaimable cache, by balloon
					  * (or, with no balloon, by an agent reclaim
					  * request: proactive N bytes, else drop cache) */
	EBB_BAL_SRC_HIGH,                /* the VM's cold pages, by lowering high */
	EBB_BAL_SRC_KSM,                 /* merging cold, similar pages */
	EBB_BAL_NR_SOURCES,
	EBB_BAL_SRC_NONE = EBB_BAL_NR_SOURCES
};

/* The numbers that decided one action (logged and served as the trace). */
struct ebb_bal_why {
	enum ebb_bal_reason reason;
	enum ebb_bal_source source;      /* EBB_BAL_SRC_NONE if not a reclaim */
	int priority;                    /* 12..0 while balancing, -1 otherwise */
	uint64_t free_bytes;             /* pool free when decided */
	uint64_t wmark_min_bytes, wmark_low_bytes, wmark_high_bytes; /* boost included */
	uint64_t want_bytes;             /* what this round wanted from the pool */
	uint32_t cost_milli[EBB_BAL_NR_SOURCES]; /* estimated marginal cost per source for
					  * this VM (1000 = baseline; UINT32_MAX = unavailable) */
};

struct ebb_bal_action {
	uint64_t vm_id;                  /* 0 = host-wide (EBB_BAL_ACT_KSMD) */
	uint32_t vm_index;               /* index into the step's vms[] (UINT32_MAX if host) */
	enum ebb_bal_action_kind kind;
	uint64_t value;
	uint64_t value2;
	uint32_t lease_ms;               /* nonzero for a clamp */
	uint64_t at_ns;                  /* the step's now_ns */
	struct ebb_bal_why why;
};

/* --- configuration and state ------------------------------------------- */

struct ebb_bal_cfg {
	enum ebb_bal_policy policy;
	struct ebb_pool_cfg pool;
	uint32_t step_ms;                /* period of a step while balancing; 0 = 1000 */
	uint32_t idle_step_ms;           /* period while sleeping; 0 = 5000 */
	uint32_t lease_ms;               /* clamp lease; 0 = 30000 */
	uint32_t inflate_cap_percent;    /* per step, of guest size; 0 = 5 */
	uint32_t deflate_cap_percent;    /* per step; 0 = 25 (deflate fast) */
	uint32_t dead_band_percent;      /* no balloon move smaller than this; 0 = 1 */
	uint32_t balloon_stuck_ms;       /* no progress for this long = stuck; 0 = 30000 */
	uint32_t mom_interval_ms;        /* mom policy cycle; 0 = 10000 */
	bool ksm_steer;                  /* may the balancer drive ksmd and advise VMs */
	ebb_log_fn log;          /* may be NULL */
	void *log_ctx;
};

/* What the balancer is doing (the pool's kswapd state). */
enum ebb_bal_state {
	EBB_BAL_SLEEPING = 0,            /* free >= low (or nothing to do) */
	EBB_BAL_BALANCING,               /* free < low until free >= high, at priority */
	EBB_BAL_DIRECT_CLAMP,            /* free < min: VMs clamped at resident */
};

const char *ebb_bal_state_name(enum ebb_bal_state s);
const char *ebb_bal_action_name(enum ebb_bal_action_kind k);
const char *ebb_bal_reason_name(enum ebb_bal_reason r);
const char *ebb_bal_source_name(enum ebb_bal_source s);

/* Counters; part of the API (tests and `pool` assert on them). */
struct ebb_bal_stats {
	uint64_t nr_steps;
	uint64_t nr_actions;
	uint64_t nr_actions_dropped;     /* did not fit the caller's array */
	uint64_t nr_wakeups;             /* SLEEPING -> BALANCING */
	uint64_t nr_direct;              /* entries into DIRECT_CLAMP */
	uint64_t nr_clamps, nr_lifts;
	uint64_t nr_pressure;            /* agent pressure messages acted on */
	uint64_t nr_pressure_capped;     /* pressure refused by weight/max share */
	uint64_t nr_refault_raises;      /* highs raised for refaults/PSI (v2) */
	uint64_t nr_stuck;               /* balloons re-targeted to what they reached */
	uint64_t reclaimed_bytes[EBB_BAL_NR_SOURCES]; /* asked for, per source */
	uint64_t nr_bad_vm_obs;          /* VM observations rejected or clamped */
	uint64_t nr_bad_agent;           /* agent numbers rejected or clamped */
	uint64_t nr_bad_host_obs;
	uint64_t nr_vms_joined, nr_vms_left;
};

struct ebb_bal_pool_state {
	enum ebb_bal_policy policy;
	enum ebb_bal_state state;
	int priority;                    /* while balancing, else -1 */
	uint64_t budget_bytes;
	uint64_t used_bytes;
	uint64_t free_bytes;             /* budget - used (0 if over) */
	uint64_t wmark_min_bytes, wmark_low_bytes, wmark_high_bytes; /* without boost */
	uint64_t boost_bytes;
	uint64_t next_step_ns;           /* when the daemon should step again at the latest */
	uint32_t nr_vms;
	uint64_t ksm_yield_pages_per_cpu_s; /* measured; 0 if unknown */
	struct ebb_bal_stats stats;
};

/* The balancer's view of one VM (for `vms`). */
struct ebb_bal_vm_state {
	uint64_t id;
	char name[EBB_BAL_NAME_MAX];
	uint64_t resident_bytes;
	uint64_t ws_estimate_bytes;      /* working set: host-seen, agent cross-checked */
	uint64_t idle_bytes;             /* resident above the working set */
	uint64_t cold_bytes;             /* RAM unused for over 8 s (host-seen, agent-checked) */
	uint64_t balloon_target_bytes;   /* what the balancer last asked */
	uint64_t high_bytes;             /* what the balancer last set */
	bool clamped;
	uint64_t clamp_lease_end_ns;
	uint32_t cost_milli[EBB_BAL_NR_SOURCES];
	double refault_rate_per_s;
	double grow_rate_bytes_per_s;    /* RAM faulted in, smoothed over ~10 s */
	double psi_some_percent;
	uint64_t nr_pressure;
	uint64_t nr_balloon_sign_changes;   /* target went up after down or back */
};

struct ebb_balancer;

/* Returns 0, -EINVAL (bad cfg: policy, pool overrides), or -ENOMEM. */
int ebb_bal_create(const struct ebb_bal_cfg *cfg, struct ebb_balancer **out);
/* NULL is a no-op. */
void ebb_bal_destroy(struct ebb_balancer *bal);

/*
 * One step at @now_ns (monotonic, nondecreasing; a step back in time is
 * counted as nr_bad_host_obs and treated as no time passed).
 * @vms: every managed VM now (nr_vms <= EBB_BAL_MAX_VMS; ids unique and
 * nonzero, duplicates after the first are ignored and counted).
 * Writes up to @max_actions actions to @actions and their number to
 * *@nr_actions; more are counted as nr_actions_dropped and decided again next
 * step.  Returns 0, or -EINVAL for NULL pointers / too many VMs.
 */
int ebb_bal_step(struct ebb_balancer *bal, uint64_t now_ns,
		 const struct ebb_bal_host_obs *host,
		 const struct ebb_bal_vm_obs *vms, size_t nr_vms,
		 struct ebb_bal_action *actions, size_t max_actions,
		 size_t *nr_actions);

/*
 * Switch policy between steps.  Leaving ebb undoes what it set (clamps
 * lifted, high back to configured) on the next step.  0 or -EINVAL.
 */
int ebb_bal_set_policy(struct ebb_balancer *bal, enum ebb_bal_policy p);

/*
 * Replace the pool's configuration (budget, watermarks) between steps; the
 * watermarks are derived again on the next step.  The caller checks the new
 * configuration with ebb_pool_wmarks_compute() first.  0 or -EINVAL.
 */
int ebb_bal_set_pool(struct ebb_balancer *bal, const struct ebb_pool_cfg *pool);

void ebb_bal_get_pool(const struct ebb_balancer *bal, struct ebb_bal_pool_state *out);

/* The balancer's state of VM @id; 0 or -ENOENT. */
int ebb_bal_get_vm(const struct ebb_balancer *bal, uint64_t id, struct ebb_bal_vm_state *out);

/*
 * The last decisions, oldest first: copies up to @max into @out, returns how
 * many.  At most EBB_BAL_TRACE_LEN are kept.
 */
size_t ebb_bal_trace(const struct ebb_balancer *bal, struct ebb_bal_action *out, size_t max);

/*
 * One line for the log and the `trace` command, e.g.
 * "web1 balloon 268435456 (keeps 805306368): reclaim src=balloon prio=10
 *  free=... min=... low=... high=... want=... cost=[900 1400 -]".
 * @name may be NULL (the id is printed).  Returns snprintf's result.
 */
int ebb_bal_format_action(const struct ebb_bal_action *a, const char *name,
			  char *buf, size_t len);

#endif /* EBB_HOST_RECLAIM_BALANCER_H */
