/*
 * host-reclaim/libvirt/ebbd_libvirt.h — ebbd's second backend: libvirt/QEMU
 * domains (docs/libvirt.md).  One source per libvirt URI (`ebbd --libvirt
 * URI`, repeatable); each running domain joins ebbd's pool as a VM whose
 * backend is this driver, next to the ebb VMs found in the run directory, and
 * the same balancer drives both.
 *
 * What it maps onto the backend interface (host-reclaim/ebbd/backend.h):
 *   observe  the domain's bulk stats (virConnectGetAllDomainStats with
 *            VIR_DOMAIN_STATS_BALLOON): balloon current/maximum, rss, and the
 *            guest's own numbers (unused, usable, disk_caches, swap_in) as the
 *            "agent" fields the balancer sizes a balloon from; the domain's
 *            memtune (min_guarantee, soft_limit, hard_limit) as protections,
 *            read only: ebbd never sets a memtune limit; and the ebb agent
 *            when the domain's XML has a unix-socket channel named
 *            org.ebb.agent.0 that QEMU listens on (<source mode='bind'
 *            path=.../>): ebbd connects to it on the daemon's thread
 *            (host-reclaim/ebbd/agent_link.h, as for ebb VMs) and the
 *            agent's report replaces the balloon driver's numbers, its
 *            pressure messages wake the balancer; KSM: whether QEMU marked
 *            the guest RAM mergeable (smaps VmFlags "mg") and the pages
 *            merged (/proc/PID/ksm_merging_pages), read only;
 *   apply    EBB_BAL_ACT_BALLOON as virDomainSetMemoryFlags(AFFECT_LIVE);
 *            EBB_BAL_ACT_SET_HIGH as host-side reclaim: the worker keeps
 *            the guest RAM's Rss in QEMU (/proc/PID/smaps) under the high
 *            through the cgroup v2 memory.reclaim of QEMU's cgroup when
 *            that cgroup holds QEMU alone (lv_cgroup.h), else with
 *            process_madvise(MADV_PAGEOUT); offered when host swap is on;
 *            the other actions are -EOPNOTSUPP.
 *
 * Threads (the choice asked for: nothing the balancer calls blocks on
 * libvirt):
 *   - libvirt's default event loop (virEventRegisterDefaultImpl, process
 *     wide, registered once) runs on its own detached thread: lifecycle,
 *     balloon-change and connection-close callbacks arrive there;
 *   - one worker thread per source does every blocking libvirt call:
 *     connect (and reconnect with backoff), the bulk stats poll every
 *     poll_ms (or at once after an event), setting the stats period where it
 *     is off, memtune reads, and the balloon moves queued by apply();
 *   - the daemon's thread only reads the snapshot the worker keeps (under the
 *     source's mutex) and queues balloon targets; domains join and leave the
 *     daemon on its own thread, woken through an eventfd.
 * A libvirt call that hangs stalls only the worker: the snapshot ages and
 * observe() answers -ETIMEDOUT (the daemon keeps the VM and counts a call
 * error) until it moves again.  The stats call, which reaches every
 * domain's QEMU monitor, runs on a thread of its own: one that is not back
 * after 3 s (a QEMU stopped or hung) is left to finish alone, logged once,
 * and the polls go on with NOWAIT (libvirt skips the domain whose job the
 * stuck call holds; the others stay fresh) until it returns; balloon moves
 * wait meanwhile.
 *
 * Lock: src->lock protects the domain table and the counters; never held
 * while calling libvirt or the daemon.
 */
#ifndef EBB_EBBD_LIBVIRT_H
#define EBB_EBBD_LIBVIRT_H

#include <stdint.h>

#include "client/log.h"

struct ebbd;
struct ebbd_libvirt;

/* The namespace of ebb's element in a domain's <metadata>:
 *   <ebb:memory xmlns:ebb="urn:ebb:memory:1" weight="200" min_mib="512"
 *               low_mib="1024" opt_out="no"/>  */
#define EBBD_LIBVIRT_NS_URI "urn:ebb:memory:1"
#define EBBD_LIBVIRT_DEFAULT_POLL_MS 1000u
#define EBBD_LIBVIRT_DEFAULT_STATS_PERIOD_S 1

struct ebbd_libvirt_cfg {
	const char *uri;                 /* any libvirt URI, e.g. qemu:///system */
	uint32_t poll_ms;                /* bulk stats period; 0: default */
	int stats_period_s;              /* set on domains whose period is off; 0: default,
					  * -1: never set it */
	struct vmm_log log;
};

/* Counters; part of the API (the tests read them). */
struct ebbd_libvirt_counters {
	uint64_t nr_connects, nr_connect_errors;
	uint64_t nr_polls, nr_poll_errors;
	uint64_t poll_last_ns, poll_max_ns;  /* GetAllDomainStats round trip */
	uint64_t nr_stuck_polls;             /* stats calls given up on (still running) */
	uint64_t nr_events;                  /* lifecycle + balloon-change callbacks */
	uint64_t nr_joined, nr_left;
	uint64_t nr_balloon_sets, nr_balloon_set_errors;
	uint64_t balloon_move_last_ms;       /* last set until the balloon got there */
	uint64_t nr_period_sets;
	uint64_t nr_bad_stats;               /* impossible numbers from libvirt/guest */
	uint64_t nr_stale_observes;          /* observe() on a snapshot too old */
	uint64_t nr_bad_metadata;            /* bad values in domains' ebb metadata */
	uint64_t nr_pageouts, nr_pageout_errors;  /* host-side reclaim rounds (both ways) */
	uint64_t pageout_advised_bytes;      /* MADV_PAGEOUT ranges (not bytes freed) */
	uint64_t nr_cg_reclaims;             /* of nr_pageouts, by cgroup v2 memory.reclaim */
	uint64_t nr_cg_reclaim_short;        /* of those, EAGAIN: reclaimed less than asked */
	uint64_t cg_reclaim_asked_bytes;     /* written to memory.reclaim (not bytes freed) */
};

/* Starts the worker (it connects on its own, retrying); registers the
 * join/leave eventfd with the daemon's loop.  0 or -errno. */
int ebbd_libvirt_create(const struct ebbd_libvirt_cfg *cfg, struct ebbd *d,
			struct ebbd_libvirt **out);
/* Call after ebbd_destroy() (the daemon's VMs point into the source).
 * NULL is a no-op. */
void ebbd_libvirt_destroy(struct ebbd_libvirt *src);
void ebbd_libvirt_get_counters(struct ebbd_libvirt *src, struct ebbd_libvirt_counters *out);

#endif
