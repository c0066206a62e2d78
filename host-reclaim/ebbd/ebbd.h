/*
 * host-reclaim/ebbd/ebbd.h — the host memory daemon as a library: one pool,
 * the VMs found in the runtime directory, the balancer (host-reclaim/
 * balancer.h) stepped on a timer and on events, its actions applied through
 * each VM's backend, and ebbd's own control socket (ebbd.sock in the run
 * dir: pool, vms, set, policy, trace).  host-reclaim/bin/ebbd.c only parses
 * options and runs this.
 *
 * Lifetime guarantees (docs/ebbd.md, "Leases"):
 *   - everything ebbd lowers on a VM (high, max) is a clamp with a lease
 *     (the VMM's `clamp` command), renewed by ebbd at half the lease while it
 *     runs: a VM whose ebbd died returns to its configured limits by itself;
 *   - ebbd_destroy() (clean exit, SIGTERM) lifts every clamp it holds and
 *     puts back the KSM settings it found at start;
 *   - a restarted ebbd reads each VM's state (settings, limits, clamp,
 *     balloon) from the VM and continues from there.
 *
 * Threading: one thread runs the event loop (ebbd_run); ebbd_stop() is
 * async-signal safe and may be called from any thread, and so may
 * ebbd_metrics_copy() (it copies the text the loop rendered last).
 */
#ifndef EBB_EBBD_EBBD_H
#define EBB_EBBD_EBBD_H

#include <stdbool.h>
#include <stdint.h>

#include "client/log.h"
#include "host-reclaim/balancer.h"

#define EBBD_SOCK_NAME "ebbd.sock"
#define EBBD_DEFAULT_TICK_MS 1000u
#define EBBD_DEFAULT_CALL_TIMEOUT_MS 1000
#define EBBD_KSM_DIR "/sys/kernel/mm/ksm"

/* Settings ebbd gives a VM when it joins and on every reload (from the
 * configuration file's [vm] and [vm NAME] sections): min, low and weight
 * are sent to the VM with `set` (a libvirt domain's backend keeps them
 * under its <ebb:memory> metadata, which wins); ksm_allowed is ebbd's own
 * (the balancer may steer the VM's KSM); opt_out keeps the VM out of the
 * pool (it runs with its own limits).  Only what has_ says was given. */
struct ebbd_vm_settings {
	bool has_min, has_low, has_weight, has_ksm_allowed, has_opt_out;
	uint64_t min_bytes, low_bytes;
	uint32_t weight;
	bool ksm_allowed;
	bool opt_out;
};

struct ebbd_vm_rule {
	char name[EBB_BAL_NAME_MAX];
	struct ebbd_vm_settings s;
};

struct ebbd_cfg {
	const char *rundir;             /* NULL: vmm_rundir() */
	struct ebb_bal_cfg bal;         /* policy, pool (budget, watermarks), periods */
	/*
	 * Count the host's own memory (MemTotal - MemAvailable minus the VMs)
	 * in the pool (the default), or treat the budget as the VMs' alone
	 * (tests and demos with a small budget on a big host).
	 */
	bool vms_only;
	uint32_t tick_ms;               /* longest sleep between steps; 0: EBBD_DEFAULT_TICK_MS */
	int call_timeout_ms;            /* per VM call; 0: EBBD_DEFAULT_CALL_TIMEOUT_MS */
	const char *ksm_dir;            /* NULL: EBBD_KSM_DIR; "" : leave KSM alone */
	struct vmm_log log;
	struct ebbd_vm_settings vm_default;  /* every VM */
	const struct ebbd_vm_rule *vm_rules; /* per name, over the default (copied) */
	size_t nr_vm_rules;
};

struct ebbd_counters {
	uint64_t nr_ticks;
	uint64_t nr_vms_joined, nr_vms_left, nr_vms_stale;
	uint64_t nr_calls, nr_call_errors;
	uint64_t nr_actions_applied, nr_actions_failed, nr_actions_unsupported;
	uint64_t nr_lease_renewals;
	uint64_t nr_bad_vm_replies;     /* stats replies missing fields or of wrong type */
	uint64_t nr_ctl_requests;
	uint64_t nr_vm_events;          /* event lines from the VMs' `watch` */
	uint64_t nr_event_wakeups;      /* steps brought forward by them */
};

struct ebbd;

/* Creates the daemon: the balancer, discovery (VMs present now join), the
 * control socket, the KSM snapshot.  0 or -errno with a message in err. */
int ebbd_create(const struct ebbd_cfg *cfg, struct ebbd **out, char *err, size_t err_len);
/* Runs until ebbd_stop().  0 or -errno. */
int ebbd_run(struct ebbd *d);
/* One round of the loop (tests): waits up to timeout_ms. */
int ebbd_run_once(struct ebbd *d, int timeout_ms);
void ebbd_stop(struct ebbd *d);
/* Lifts clamps, restores KSM, closes the socket.  NULL is a no-op. */
void ebbd_destroy(struct ebbd *d);
void ebbd_get_counters(const struct ebbd *d, struct ebbd_counters *out);
/*
 * VMs reached through another backend (host-reclaim/libvirt/): @be joins
 * the pool as @name; the daemon owns it from here (destroyed on error too).
 * 0, -EEXIST (a VM of that name is in the pool) or -ENOMEM.  Detach removes
 * it, logging @why: 0 or -ENOENT.  Event thread only.
 */
struct ebbd_backend;
int ebbd_vm_attach(struct ebbd *d, const char *name, struct ebbd_backend *be);
int ebbd_vm_detach(struct ebbd *d, const char *name, const char *why);
/* Does the configuration (opt_out in [vm] / [vm NAME]) keep @name out of
 * the pool?  ebbd_vm_attach() refuses such a VM with -EPERM. */
bool ebbd_vm_opted_out(const struct ebbd *d, const char *name);
/* Counts configuration reloads: a VM refused at join is worth trying again
 * when it changed. */
uint64_t ebbd_config_generation(const struct ebbd *d);
/* The event loop's fd set is internal; this adds a handler (signal fd,
 * another backend's wake-up fd). */
int ebbd_add_fd(struct ebbd *d, int fd, void (*fn)(void *opaque, uint32_t events), void *opaque);

/*
 * Applies a new configuration live (SIGHUP): policy, budget and watermarks,
 * tick_ms, vms_only, and the per-VM settings (sent again to every VM).
 * Atomic: the new pool is checked against this host's MemTotal first; on
 * -EINVAL (message in err) nothing changed.  rundir, lease_ms, ksm_dir and
 * the log are kept (they change at the next start).
 */
int ebbd_reconfigure(struct ebbd *d, const struct ebbd_cfg *cfg, char *err, size_t err_len);
/* Counts a reload that failed before reaching the daemon (a bad file). */
void ebbd_note_reload_failure(struct ebbd *d);

/*
 * The metrics of the last round in the Prometheus text format
 * (host-reclaim/ebbd/metrics.h): a malloc'd copy in *text (NUL-terminated,
 * *len bytes; the caller frees).  Any thread; never waits for a round.
 * 0 or -ENOMEM.
 */
int ebbd_metrics_copy(struct ebbd *d, char **text, size_t *len);

#endif
