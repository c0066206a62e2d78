/*
 * region.h — the public API of the per-VM reclaim engine.
 *
 * A region is caller-provided anonymous private memory (guest RAM in the
 * VMM; any mmap(MAP_PRIVATE|MAP_ANONYMOUS) area in tests) that the engine
 * manages page by page:
 *   - a page state table and LRU lists (lru.h), aged from pluggable reference
 *     sources (refsrc.h: a dirty bitmap, accessed bits) and refaults;
 *   - a swap store (swapstore.h): compressed tier, file tier, checksums, dedup;
 *   - a userfaultfd pager: the region is registered for MISSING faults; an
 *     evicted page is brought back with UFFDIO_COPY (UFFDIO_ZEROPAGE for zero
 *     pages) on the faulting thread's first touch;
 *   - limits: above high, background reclaim; at max, direct reclaim on the
 *     fault path, then a bounded wait, then an error reported to the owner;
 *   - pressure (psi.h): stall time of faulting threads.
 *
 * The core is a deterministic step function with an injected clock:
 * ebb_region_step() does aging and background reclaim, and
 * ebb_region_handle_faults() serves pending faults.  ebb_region_start()
 * runs both on two thin threads.
 *
 * Locks: one mutex per region protects all of its state (page table, LRU,
 * store, counters, pressure).  Every public call takes it; none is called
 * with it held.  ebb_region_get_counters() waits for it at most 10 ms, then
 * returns the counters as published at the end of the last fault batch or
 * reclaim cluster (a leaf lock guards that copy).  The owner must stop the
 * threads that touch the memory before
 * ebb_region_destroy(): after it, pages that were swapped out read as zeroes.
 *
 * Kernel needs: userfaultfd with UFFD_FEATURE_MOVE (Linux 6.8+) or, as a
 * fallback, write-protect faults (5.7+) for race-free eviction; WP_ASYNC +
 * PAGEMAP_SCAN (6.7+, MOVE mode only) for the built-in dirty tracking
 * (optional).  create() returns -EOPNOTSUPP with neither.
 */
#ifndef EBB_HOST_RECLAIM_REGION_H
#define EBB_HOST_RECLAIM_REGION_H

#include <stdbool.h>
#include <stdint.h>

#include "host-reclaim/lru.h"
#include "host-reclaim/psi.h"
#include "host-reclaim/reclaim_log.h"
#include "host-reclaim/refsrc.h"
#include "host-reclaim/swapstore.h"

enum ebb_dirty_tracking {
	EBB_DIRTY_AUTO = 0,    /* PAGEMAP_SCAN + WP_ASYNC if the kernel has it */
	EBB_DIRTY_OFF,         /* rely on other sources and refaults */
};

/* How pages leave memory (see region.c). */
enum ebb_evict_mode {
	EBB_EVICT_AUTO = 0,    /* MOVE where the kernel has it, else WP */
	EBB_EVICT_MOVE,        /* UFFDIO_MOVE out, then store (6.8+; allows WP_ASYNC tracking) */
	EBB_EVICT_WP,          /* sync uffd-wp, read in place, MADV_DONTNEED (5.7+; no built-in dirty source) */
};

struct ebb_region_cfg {
	const char *name;
	void *base;                 /* page aligned, anonymous private */
	uint64_t size_bytes;        /* multiple of 4 KiB */
	uint64_t high_pages;        /* background reclaim above; 0 = none */
	uint64_t max_pages;         /* hard limit on resident pages; 0 = none */
	int swappiness;             /* 0..200 */
	uint32_t nr_threads;        /* threads that fault (vCPUs): PSI "full" */
	uint64_t max_wait_ns;       /* bounded wait at max before an error */
	uint64_t aging_interval_ns; /* reference harvest period */
	uint64_t idle_tick_ns;      /* working-set histogram period (0 = off; see
	                             * ebb_region_step); default EBB_IDLE_TICK_NS */
	uint32_t reclaim_batch_pages; /* background reclaim per step */
	uint32_t readahead_pages;   /* neighbouring file slots read with a fault */
	/* Fault-around of empty memory: a write fault on a page that holds
	 * nothing (never touched, or given back) also installs the empty pages
	 * around it, within its aligned block of this many pages (a power of two, at most
	 * EBB_FAULT_AROUND_MAX; 0 or 1 = off; default 16, 64 KiB).  See fault_zero(). */
	uint32_t fault_around_pages;
	bool keep_clean_copies;     /* keep the store copy after swap-in */
	/* Adaptive polling of the fault handler (region.c, "Polling"): after
	 * each fault it spins on the uffd for a self-tuned window of at most
	 * this long before it sleeps.  0 = off (sleep in poll() at once).
	 * Default EBB_POLL_DEFAULT_MAX_NS; at most EBB_POLL_LIMIT_NS.  Only
	 * the handler thread of ebb_region_start() polls; an owner calling
	 * ebb_region_handle_faults() itself decides how it waits. */
	uint64_t poll_max_ns;
	/* evict_mode: AUTO picks MOVE where available (see enum) */
	enum ebb_dirty_tracking dirty_tracking;
	enum ebb_evict_mode evict_mode;
	struct ebb_swap_cfg swap;   /* log/clock are filled in from this cfg */
	uint64_t (*clock_ns)(void *ctx);  /* NULL = CLOCK_MONOTONIC */
	void *clock_ctx;
	ebb_log_fn log;
	void *log_ctx;
	/* Optional: every fault served (major = content came from the store). */
	void (*on_fault)(void *ctx, uint64_t pfn, bool major);
	void *on_fault_ctx;
	/* Optional: the fault path could not get under max in max_wait_ns. */
	void (*on_oom)(void *ctx, uint64_t pfn, int err);
	void *on_oom_ctx;
};

/* Counters are part of the API: tests and ebbd read them. */
struct ebb_region_counters {
	/* reclaim */
	uint64_t nr_scanned, nr_reclaimed, nr_activated, nr_deactivated, nr_rotated;
	uint64_t nr_swapped_out;     /* stored (compressed or file) */
	uint64_t nr_clean_dropped;   /* dropped with a current copy: no write */
	uint64_t nr_zero_out;        /* evicted zero pages (not stored) */
	uint64_t nr_vanished;        /* already gone from RAM when evicted */
	uint64_t nr_evict_busy;      /* the kernel refused to move the page */
	uint64_t nr_evict_failed;    /* store failed (write error, ENOSPC): kept */
	uint64_t nr_direct_reclaim, nr_background_reclaim;
	uint64_t nr_aging_passes, nr_young;
	/* faults */
	uint64_t nr_faults, nr_major_faults, nr_zero_in, nr_swapped_in;
	uint64_t nr_readahead, nr_readahead_used;
	uint64_t nr_fault_around;    /* empty pages installed beside a write fault */
	uint64_t nr_refaults, nr_refault_activate, nr_refault_thrash;
	uint64_t nr_oom;             /* at max, nothing reclaimable in max_wait_ns */
	uint64_t nr_max_overrun;     /* faults served above max (nr_oom, or a lowered max
	                              * under a larger resident set: see ensure_room) */
	uint64_t nr_spurious;        /* fault on a page already resident */
	uint64_t nr_wp_faults;       /* first writes to pages mapped write-protected at swap-in */
	uint64_t nr_bad_fault;       /* GUEST: fault outside the region */
	/* adaptive polling of the fault handler */
	uint64_t nr_poll_hits;       /* faults found by spinning (no sleep, no wake) */
	uint64_t nr_poll_misses;     /* windows that ran out: the handler slept */
	uint64_t poll_spin_ns;       /* wall time spent spinning (CPU the polling costs) */
	uint64_t poll_window_ns;     /* the window now (0: polling idle or off) */
	uint64_t poll_cycle_on_ns;   /* fault-to-fault cycle of a storm, polling on (0: not seen) */
	uint64_t poll_cycle_off_ns;  /* ... and off: polling is used while on <= off */
	uint64_t nr_poll_epochs_off; /* epochs of EBB_POLL_EPOCH storm faults served without it */
	uint64_t handler_cpu_ns;     /* CPU time of the fault handler thread, all of it */
	/* errors */
	uint64_t nr_swapin_errors, nr_lost_pages;
	uint64_t nr_lost_uffd_poison; /* lost pages poisoned with UFFDIO_POISON (6.6+) */
	uint64_t nr_lost_hwpoison;   /* lost pages poisoned with MADV_HWPOISON (no UFFDIO_POISON) */
	uint64_t nr_lost_sigbus;     /* lost pages mapped to raise SIGBUS (BUS_ADRERR): neither worked */
	uint64_t nr_restore_failed;  /* kept pages that could not be put back (then stored or lost) */
	uint64_t nr_uffd_errors;     /* UFFDIO_* calls that failed unexpectedly */
	uint64_t nr_write_errors, nr_read_errors, nr_short_reads, nr_enospc, nr_checksum_errors;
	uint64_t nr_errors;          /* all of the error counters above */
	/* state */
	uint64_t resident_pages, swapped_pages, zero_pages, ballooned_pages, never_pages;
	uint64_t active_pages, inactive_pages, unevictable_pages, clean_pages;
	uint64_t compressed_pages, compressed_bytes, file_pages, file_bytes;
	uint64_t file_allocated_bytes; /* file system space the swap file holds (>= file_bytes) */
	uint64_t dedup_saved_bytes, nr_dedup_hits, nr_incompressible;
	uint64_t metadata_bytes;     /* page table + store tables */
	uint64_t compressed_overhead_bytes; /* allocator rounding + headers of compressed objects */
	uint64_t high_pages, max_pages;
	/* working set by idle age, every idle_tick_ns (valid once nr_idle_ticks > 0):
	 * idle_pages[i] resident pages last used at most 2^i ticks ago */
	uint64_t nr_idle_ticks, idle_tick_ns;
	uint64_t idle_pages[EBB_IDLE_BUCKETS];
};

struct ebb_region;

/*
 * The fault handler's polling (region.c, "Polling"), pure step functions
 * so that tests can drive them.
 *
 * ebb_poll_adapt: after the handler waited @wait_ns for the next fault
 * (@hit: found while spinning), grow, keep or shrink @p->window_ns, never
 * above @p->max_ns (0 = off).
 *
 * ebb_poll_cycle: one more fault-to-fault cycle of a storm, measured with
 * polling on or off (@p->on).  Every EBB_POLL_EPOCH cycles the epoch's
 * median goes into that mode's average, and the next epoch's mode is set:
 * the better one, except every EBB_POLL_PROBE_EVERY-th epoch, which tries
 * the other.  Polling stays on only where it makes the faulting thread go
 * faster (it does not where waking the faulting thread back costs as much
 * as the wake it saves).
 */
#define EBB_POLL_DEFAULT_MAX_NS (200ULL * 1000)
/* The idle tick: harvest the reference sources and age the idle histogram. */
#define EBB_IDLE_TICK_NS (1000ULL * 1000 * 1000)
#define EBB_POLL_LIMIT_NS (10ULL * 1000 * 1000)
/* The largest fault-around block (ebb_region_cfg.fault_around_pages). */
#define EBB_FAULT_AROUND_MAX 64u
#define EBB_POLL_START_NS (10ULL * 1000)
#define EBB_POLL_EPOCH 64
#define EBB_POLL_PROBE_EVERY 8
struct ebb_poll {
	uint64_t window_ns;
	uint64_t max_ns;
	bool on;                      /* polling in this epoch */
	bool prefer_on;               /* the better mode so far */
	uint32_t nr_cycles;           /* in this epoch */
	uint32_t cycle_ns[EBB_POLL_EPOCH];
	uint64_t nr_epochs;
	uint64_t avg_cycle_ns[2];     /* [0] off, [1] on: average of epoch medians; 0 = none yet */
};
void ebb_poll_init(struct ebb_poll *p, uint64_t max_ns);
void ebb_poll_adapt(struct ebb_poll *p, uint64_t wait_ns, bool hit);
void ebb_poll_cycle(struct ebb_poll *p, uint64_t cycle_ns);

/* Fill @cfg with defaults (swappiness 60, 100 ms aging, 100 ms max wait ...). */
void ebb_region_cfg_init(struct ebb_region_cfg *cfg);

int ebb_region_create(const struct ebb_region_cfg *cfg, struct ebb_region **out);
void ebb_region_destroy(struct ebb_region *r);

/* Start / stop the fault handler and background threads. */
int ebb_region_start(struct ebb_region *r);
void ebb_region_stop(struct ebb_region *r);

/* Serve pending faults; waits up to @timeout_ms for the first.  Returns the
 * number served or -errno. */
int ebb_region_handle_faults(struct ebb_region *r, int timeout_ms);

/* One background step at @now_ns: pressure averages; above high (and until
 * down to ebb_region_bg_target()), aging when due and reclaim of up to
 * reclaim_batch_pages.  Returns pages reclaimed. */
int64_t ebb_region_step(struct ebb_region *r, uint64_t now_ns);

/* Where woken background reclaim stops: high - max(high / 64, batch). */
uint64_t ebb_region_bg_target(uint64_t high_pages, uint32_t batch_pages);

/* Harvest every reference source now.  Returns pages found used or -errno. */
int64_t ebb_region_age(struct ebb_region *r);

/* Explicit (proactive) reclaim with caller-chosen scan control. */
int ebb_region_reclaim(struct ebb_region *r, struct ebb_scan_control *sc);

int ebb_region_set_limits(struct ebb_region *r, uint64_t high_pages, uint64_t max_pages);
/* CLIENT: 0..200, live (the next reclaim pass uses it). */
int ebb_region_set_swappiness(struct ebb_region *r, int swappiness);
int ebb_region_add_refsrc(struct ebb_region *r, const struct ebb_refsrc_ops *ops, void *ctx);

/* GUEST/CLIENT: pages given to the balloon: forgotten, released to the host
 * (MADV_DONTNEED in merged runs), read as zero when touched again. */
int ebb_region_mark_ballooned(struct ebb_region *r, uint64_t first_pfn, uint64_t nr_pages);
int ebb_region_set_unevictable(struct ebb_region *r, uint64_t first_pfn, uint64_t nr_pages, bool on);

void ebb_region_get_counters(struct ebb_region *r, struct ebb_region_counters *c);
/* The eviction mode in use (EBB_EVICT_MOVE or EBB_EVICT_WP; AUTO resolved at create). */
enum ebb_evict_mode ebb_region_evict_mode(const struct ebb_region *r);
void ebb_region_get_psi(struct ebb_region *r, struct ebb_psi_stats *out);
enum ebb_page_state ebb_region_page_state(struct ebb_region *r, uint64_t pfn);
/* Does the running kernel support what create() needs (MOVE or WP eviction)?
 * 0 or -errno; *features_out gets the kernel's UFFD_FEATURE_* bits. */
int ebb_region_probe(uint64_t *features_out);

/*
 * FOR TESTS ONLY (compiled in, never called by ebb itself): make the next
 * @nr_calls calls of one kind fail with -@err, after letting @skip_calls
 * through.  Every UFFDIO_* ioctl the engine makes and every load from the
 * swap store can be made to fail, to prove that each failure path neither
 * hangs nor loses other pages.
 */
enum ebb_region_inject {
	EBB_INJ_UFFD_COPY = 0,
	EBB_INJ_UFFD_ZEROPAGE,
	EBB_INJ_UFFD_MOVE,
	EBB_INJ_UFFD_WRITEPROTECT,
	EBB_INJ_UFFD_WAKE,
	EBB_INJ_UFFD_POISON,
	EBB_INJ_MADV_HWPOISON,   /* the poisoning of a lost page without UFFDIO_POISON */
	EBB_INJ_STORE_READ,
	EBB_INJ_NR,
};
int ebb_region_test_inject(struct ebb_region *r, enum ebb_region_inject what, uint32_t skip_calls,
			   uint32_t nr_calls, int err);
/* FOR TESTS ONLY: the next swap-in of page @pfn fails as a store read error
 * would (also when @pfn would come in as another page's readahead: the run
 * stops before it), so the page is lost and poisoned. */
int ebb_region_test_lose_page(struct ebb_region *r, uint64_t pfn);
/* FOR TESTS ONLY: where page @pfn sits in the LRU, in words, into @buf:
 * its list, flags, position from the list's tail (found by walking it),
 * and each list's length against the resident count. */
void ebb_region_test_page_lru(struct ebb_region *r, uint64_t pfn, char *buf, size_t len);
/* FOR TESTS ONLY: behave as on a kernel without UFFD_FEATURE_POISON. */
void ebb_region_test_hide_poison(struct ebb_region *r);

#endif /* EBB_HOST_RECLAIM_REGION_H */
