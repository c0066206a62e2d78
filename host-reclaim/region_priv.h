/*
 * region_priv.h — one region's state and the helpers its files share:
 * region.c (creation, threads, owner calls, uffd helpers), region_reclaim.c
 * (eviction and aging), region_fault.c (the fault path).  The overview of
 * the pager is atop region.c.  Not for other modules: they use region.h.
 */
#ifndef EBB_RECLAIM_REGION_PRIV_H
#define EBB_RECLAIM_REGION_PRIV_H

#include "host-reclaim/region.h"
#include "host-reclaim/uffd_compat.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>


#define MAX_REFSRC 4
#define MSG_BATCH 64
#define MAX_RA 32
#define LOAD_RETRIES 3

struct refsrc {
	const struct ebb_refsrc_ops *ops;
	void *ctx;
};

struct ebb_region {
	struct ebb_region_cfg cfg;          /* immutable after create */
	uint64_t base;                      /* immutable */
	uint64_t nr_pages;                  /* immutable */
	int uffd;                           /* immutable */
	int stop_fd;                        /* eventfd: wakes the handler on stop */
	int pagemap_fd;                     /* /proc/self/pagemap, or -1 (then mincore) */
	uint64_t uffd_features;
	bool have_poison;
	bool wp_tracking;                   /* WP_ASYNC dirty source active */
	bool wp_swapin;                     /* swapped-in pages mapped write-protected (sync WP) */
	bool evict_wp;                      /* evict with sync uffd-wp, not UFFDIO_MOVE */
	char *scratch;                      /* EBB_SWAP_CLUSTER_MAX pages */

	pthread_mutex_t lock;
	atomic_uint nr_readers_waiting;     /* owner calls waiting for lock (reads only) */
	pthread_mutex_t snap_lock;          /* protects snap: never held with lock taken after it */
	struct ebb_region_counters snap;    /* counters as of the last publish (under lock) */
	bool snap_valid;
	/* Accessed-bit harvests run without lock (region_reclaim.c, "aging"):
	 * age_lock serialises them and guards acc_bitmap and next_accessed_ns.
	 * Taken before lock, never while holding it. */
	pthread_mutex_t age_lock;
	uint64_t *acc_bitmap;
	uint64_t next_accessed_ns;
	pthread_cond_t room_cv;
	pthread_cond_t bg_cv;
	/* --- protected by lock --- */
	struct ebb_lru *lru;
	struct ebb_swap *store;
	struct refsrc src[MAX_REFSRC];
	unsigned nr_src;
	uint64_t *ref_bitmap;
	uint64_t high_pages, max_pages;
	uint64_t last_age_ns;
	uint64_t last_idle_ns;              /* the last idle tick (0: none yet) */
	struct ebb_psi psi;
	struct ebb_region_counters c;
	struct ebb_ratelimit rl_fault, rl_evict, rl_oom;
	uint64_t reclaim_backoff_until_ns;  /* direct reclaim found nothing: don't rescan */
	uint64_t bg_backoff_until_ns;       /* same for background reclaim (step clock) */
	bool bg_active;                     /* woken above high, not yet down to its target */
	bool stopping;
	void *iobuf;                        /* MAX_RA pages, for swap-in */
	void *zero_buf;                     /* fault_around_pages zeroed pages */

	pthread_t handler_thread, bg_thread;
	bool threads_running;
	/* Adaptive polling: poll is the handler thread's own (no lock); the
	 * statistics are atomics, read by counters_locked. */
	struct ebb_poll poll;
	atomic_uint_fast64_t nr_poll_hits, nr_poll_misses, poll_spin_ns, poll_window_ns;
	atomic_uint_fast64_t handler_cpu_ns;  /* as of the handler's last loop turn */
	atomic_uint_fast64_t poll_cycle_on_ns, poll_cycle_off_ns, nr_poll_epochs_off;
	int lost_fd;                        /* empty memfd: SIGBUS mapping for lost pages */
	uint64_t lost_cookie;               /* random: content of a page about to be hwpoisoned */
	/* Test-only failure injection (ebb_region_test_inject); under lock. */
	struct {
		uint32_t skip, nr;
		int err;
	} inj[EBB_INJ_NR];
	uint64_t inj_lose_pfn;              /* its next swap-in fails (UINT64_MAX: none) */
};


static inline uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static inline uint64_t thread_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static inline uint64_t now_ns(const struct ebb_region *r)
{
	return r->cfg.clock_ns ? r->cfg.clock_ns(r->cfg.clock_ctx) : mono_ns();
}

#define RLOG(r, rl, lvl, ...) \
	ebb_reclaim_logf((r)->cfg.log, (r)->cfg.log_ctx, (rl), now_ns(r), (lvl), __VA_ARGS__)

static inline uint64_t page_addr(const struct ebb_region *r, uint64_t pfn)
{
	return r->base + pfn * EBB_PAGE_SIZE;
}

static inline uint64_t resident(const struct ebb_region *r)
{
	return r->lru->nr_state[EBB_PAGE_RESIDENT];
}

/* region.c: publishing counters, uffd calls (with test injection), wakes */
void region_publish_locked(struct ebb_region *r);
int region_uffd_ioctl(struct ebb_region *r, enum ebb_region_inject what, unsigned long req, void *arg);
int region_uffd_wake(struct ebb_region *r, uint64_t addr, uint64_t len);

/* region_reclaim.c: eviction, reclaim, aging */
int region_backed_pages(struct ebb_region *r, uint64_t pfn, size_t n, bool *out);
void region_maybe_age_locked(struct ebb_region *r, uint64_t now);
uint64_t region_reclaim_locked_ex(struct ebb_region *r, uint64_t nr, bool may_write, bool *stuck);
int region_wp_range(struct ebb_region *r, uint64_t pfn, size_t nr, bool on);

/* region_fault.c: reading and serving fault messages */
int region_serve_msgs(struct ebb_region *r, const struct uffd_msg *msgs, ssize_t n);
ssize_t region_spin_msgs(struct ebb_region *r, struct uffd_msg *msgs, uint64_t window_ns);
void region_timespec_after(struct timespec *ts, uint64_t ns);
ssize_t region_wait_msgs(struct ebb_region *r, struct uffd_msg *msgs, int timeout_ms);

#endif
