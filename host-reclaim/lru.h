/*
 * lru.h — the page state table and the LRU/aging core of host-reclaim.
 *
 * One struct ebb_lru covers one region of guest memory: a table of
 * struct ebb_page (16 bytes per 4 KiB page), five intrusive LRU lists linked
 * through 32-bit page indices, the scan-control parameter object and the
 * workingset (refault distance) bookkeeping.  It is pure logic: it never
 * touches the memory it describes.  The caller (region.c, the pager) plugs in
 * an evictor that really moves pages out, and feeds references in.
 *
 * Thread-safety: none inside; the owner serialises all calls (region.c holds
 * its region lock around every call).
 */
#ifndef EBB_HOST_RECLAIM_LRU_H
#define EBB_HOST_RECLAIM_LRU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/page.h"

#define EBB_NIL UINT32_MAX          /* "no page" in list links */
#define EBB_SWAP_NONE UINT32_MAX    /* "no copy in the swap store" */
#define EBB_LRU_MAX_PAGES (UINT32_MAX - 1u)
#define EBB_SWAP_CLUSTER_MAX 32u
#define EBB_DEF_PRIORITY 12

/* What backs a page right now. */
enum ebb_page_state {
	EBB_PAGE_NEVER = 0,     /* never touched: reads as zeroes */
	EBB_PAGE_RESIDENT,      /* in RAM, on an LRU list */
	EBB_PAGE_SWAPPED,       /* content only in the swap store (swap_id) */
	EBB_PAGE_ZERO,          /* evicted, content was all zero: not stored */
	EBB_PAGE_BALLOONED,     /* given to the balloon: reads as zeroes */
	EBB_PAGE_LOST,          /* swap-in failed for good (I/O or checksum) */
	EBB_PAGE_NR_STATES
};

/* The lists.  "clean" = a copy identical to RAM is already in the swap
 * store, so dropping the page costs no write; "dirty" = needs a write. */
enum ebb_lru_list {
	EBB_LRU_INACTIVE_CLEAN = 0,
	EBB_LRU_ACTIVE_CLEAN,
	EBB_LRU_INACTIVE_DIRTY,
	EBB_LRU_ACTIVE_DIRTY,
	EBB_LRU_UNEVICTABLE,
	EBB_NR_LRU_LISTS,
	EBB_LRU_NONE = 0xff,
};

/* Page flags (struct ebb_page.flags). */
#define EBB_PF_REFERENCED  (1u << 0)  /* second-chance mark (soft) */
#define EBB_PF_YOUNG       (1u << 1)  /* a reference source saw it since last scan */
#define EBB_PF_WORKINGSET  (1u << 2)  /* was active before; survives eviction */
#define EBB_PF_UNEVICTABLE (1u << 3)  /* pinned by the owner */
#define EBB_PF_READAHEAD   (1u << 4)  /* brought in by readahead, not yet used */
#define EBB_PF_SHADOW      (1u << 5)  /* evicted.shadow is valid */
#define EBB_PF_SUSPECT     (1u << 6)  /* swapped in by a write fault that may not be one:
				       * its first "written" report keeps the copy */
#define EBB_PF_EVICTED_CLEAN (1u << 7) /* with SHADOW: evicted from a clean list */
/* Bits 8..15: idle ticks, how many idle ticks (ebb_lru_idle_tick) a resident
 * page has seen no reference, saturating at 255.  Reset by a reference or a
 * fault bringing it in. */
#define EBB_PF_IDLE_SHIFT  8
#define EBB_PF_IDLE_MASK   (0xffu << EBB_PF_IDLE_SHIFT)
#define EBB_IDLE_BUCKETS   8          /* idle-age histogram, see ebb_lru_idle_tick */

/*
 * One 4 KiB page: exactly 16 bytes (tests assert it).  While the page is on
 * an LRU list, link.prev/next hold neighbour page indices; once it is evicted
 * the same 8 bytes hold the shadow entry (the region's eviction clock when it
 * left).  swap_id names a swap store entry: the evicted content, or for a
 * resident clean page its still-valid copy.
 */
struct ebb_page {
	union {
		struct {
			uint32_t prev;
			uint32_t next;
		} link;
		struct {
			uint32_t shadow;
			uint32_t unused;
		} evicted;
	} u;
	uint32_t swap_id;
	uint8_t state;   /* enum ebb_page_state */
	uint8_t lru;     /* enum ebb_lru_list or EBB_LRU_NONE */
	uint16_t flags;  /* EBB_PF_* */
};

_Static_assert(sizeof(struct ebb_page) == 16, "page state must stay 16 bytes");

/*
 * Scan control: the parameter object of one reclaim call (cf. Linux's
 * struct scan_control).  Inputs first, then results.
 */
struct ebb_scan_control {
	uint64_t nr_to_reclaim;
	int priority;            /* scan (list size >> priority); 12 gentle .. 0 all */
	int swappiness;          /* 0..200: weight of dirty vs clean (200 - swappiness); 0 = clean first, dirty only when clean cannot give enough */
	bool may_writepage;      /* dirty pages may go to the file tier (I/O) */
	bool may_swap;           /* dirty pages may be stored at all; false = drop clean/zero only */
	bool force_deactivate;   /* age the active lists even when the inactive ones are not
				  * low (Linux's sc->force_deactivate): a reclaim of everything */
	/* results, accumulated (the caller zeroes them) */
	uint64_t nr_scanned;
	uint64_t nr_reclaimed;
	uint64_t nr_activated;
	uint64_t nr_deactivated;
	uint64_t nr_rotated;
	uint64_t nr_kept;        /* the evictor could not evict (error, busy, no space) */
	bool skipped_deactivate; /* an active list was passed over: the inactive ones were not low */
	uint64_t nr_scan_target[EBB_NR_LRU_LISTS]; /* what get_scan_count chose */
};

/* What the evictor did with one candidate. */
enum ebb_evict_result {
	EBB_EVICT_SWAPPED = 0,   /* content stored; swap_id set */
	EBB_EVICT_CLEAN_DROPPED, /* copy in store was current; dropped, no write */
	EBB_EVICT_ZERO,          /* page was all zero; nothing stored */
	EBB_EVICT_VANISHED,      /* page was already gone from RAM (treated as zero) */
	EBB_EVICT_KEEP,          /* could not evict: stays resident (rotated) */
	EBB_EVICT_KEEP_DIRTY,    /* clean copy was stale and may not write: now dirty */
	EBB_EVICT_LOST,          /* could be neither kept nor stored: content lost */
};

struct ebb_evict_req {
	uint32_t pfn;            /* in: page index in the region */
	uint32_t swap_id;        /* in: current copy or EBB_SWAP_NONE; out: new copy */
	bool clean;              /* in: on a clean list (copy believed current) */
	uint8_t result;          /* out: enum ebb_evict_result */
};

/*
 * The evictor: really removes the pages from memory.  Called with up to
 * EBB_SWAP_CLUSTER_MAX candidates; fills in result and swap_id of each.
 * Returns 0 or -errno (then every request with no result is KEEP).
 */
struct ebb_lru_evictor {
	int (*evict)(void *ctx, const struct ebb_scan_control *sc,
		     struct ebb_evict_req *reqs, size_t nr_reqs);
	void *ctx;
};

/* Workingset counters (refault distance). */
struct ebb_workingset_stats {
	uint64_t nr_refault;          /* faults on pages with a shadow entry */
	uint64_t nr_refault_activate; /* refault distance <= active size: activated */
	uint64_t nr_refault_thrash;   /* refaulted page had been in the workingset */
	uint64_t nr_thrash_clean;     /* ... of them, evicted from a clean list */
};

struct ebb_lru {
	struct ebb_page *pages;
	uint32_t nr_pages;
	struct {
		uint32_t head;   /* most recently added */
		uint32_t tail;   /* oldest: scanned first */
		uint64_t nr;
	} lists[EBB_NR_LRU_LISTS];
	uint64_t nr_state[EBB_PAGE_NR_STATES];
	/* Eviction clock: advanced on every eviction and activation. */
	uint32_t nonresident_age;
	/* What reclaiming each class has cost lately ([0] clean, [1] dirty), as
	 * Linux's lruvec anon_cost/file_cost: pages stored, and refaults of
	 * pages that had been in the working set.  get_scan_count tilts its
	 * swappiness split away from the costlier class; both halve once their
	 * sum passes a quarter of the resident pages. */
	uint64_t cost[2];
	struct ebb_workingset_stats ws;
};

int ebb_lru_create(uint32_t nr_pages, struct ebb_lru **out);
void ebb_lru_destroy(struct ebb_lru *lru);

static inline bool ebb_lru_is_active(enum ebb_lru_list l)
{
	return l == EBB_LRU_ACTIVE_CLEAN || l == EBB_LRU_ACTIVE_DIRTY;
}

/* Low-level list operations (exported for the unit tests and region.c). */
void ebb_lru_list_add(struct ebb_lru *lru, uint32_t pfn, enum ebb_lru_list l);
void ebb_lru_list_add_tail(struct ebb_lru *lru, uint32_t pfn, enum ebb_lru_list l);
void ebb_lru_list_del(struct ebb_lru *lru, uint32_t pfn);
void ebb_lru_set_state(struct ebb_lru *lru, uint32_t pfn, enum ebb_page_state s);

/*
 * A page became resident (fault resolved).  @clean says whether its swap
 * copy (page.swap_id) is kept as a valid clean copy.  If the page carries a
 * shadow entry this is a refault: the refault distance decides between the
 * inactive and the active list, and the workingset counters move.
 * Returns true if the page was activated by the refault.
 */
bool ebb_lru_page_in(struct ebb_lru *lru, uint32_t pfn, bool clean);

/*
 * A page came back from swap (ebb_lru_page_in, with what the swap-in knows):
 * @readahead: a neighbour the fault brought in with it, not a refault of its
 * own (its shadow entry is dropped) and marked EBB_PF_READAHEAD until a
 * reference source sees it used; @suspect: brought in by a write fault that
 * may be a read (EBB_PF_SUSPECT, only when its clean copy is kept).
 * Returns what ebb_lru_page_in returns.
 */
bool ebb_lru_swap_in(struct ebb_lru *lru, uint32_t pfn, bool clean, bool readahead,
		     bool suspect);

/*
 * A reference source saw @pfn used.  @written: it was written, so a clean
 * copy is stale; the page moves to the dirty class and the stale copy id is
 * returned (to be released by the caller), else EBB_SWAP_NONE.
 */
uint32_t ebb_lru_reference(struct ebb_lru *lru, uint32_t pfn, bool written);

/*
 * The working set by idle age (cf. MGLRU's generations, the idle page
 * tracking of the kernel's page_idle users): @ticks idle ticks have passed
 * since the last call, and every reference in between has already been fed
 * through ebb_lru_reference.  Each resident page's idle count rises by
 * @ticks (saturating), and hist[i] receives the number of resident pages
 * idle for at most 2^i ticks (a page seen used in the last tick: i = 0;
 * the last bucket: everything older than 2^(EBB_IDLE_BUCKETS - 2) ticks).
 * O(nr_pages).
 */
void ebb_lru_idle_tick(struct ebb_lru *lru, uint32_t ticks, uint64_t hist[EBB_IDLE_BUCKETS]);

/* Take a resident page off the LRU (ballooned, unmapped); returns its copy id. */
uint32_t ebb_lru_forget(struct ebb_lru *lru, uint32_t pfn, enum ebb_page_state s);

/* Pin/unpin: unevictable pages sit on EBB_LRU_UNEVICTABLE. */
void ebb_lru_set_unevictable(struct ebb_lru *lru, uint32_t pfn, bool on);

/*
 * The scan-size and class balance chosen for @sc (cf. get_scan_count):
 * fills sc->nr_scan_target[].  Exported for the unit tests.
 */
void ebb_lru_get_scan_count(const struct ebb_lru *lru, struct ebb_scan_control *sc);

/*
 * Are the inactive lists too small relative to the active ones?  Both
 * classes count together: clean and dirty are a page's state (whether its
 * copy in the store is current), not two kinds of memory, as Linux's anon
 * LRU holds swap-cache pages with and without a current copy alike.
 */
bool ebb_lru_inactive_is_low(const struct ebb_lru *lru);

/*
 * One reclaim pass at sc->priority (cf. shrink_lruvec): ages the active
 * lists where the inactive ones are low, scans the inactive lists, and hands
 * candidates to @ev in batches.  Results accumulate in @sc.
 * Returns 0, or the first error the evictor returned.
 */
int ebb_lru_shrink(struct ebb_lru *lru, struct ebb_scan_control *sc,
		   const struct ebb_lru_evictor *ev);

/*
 * Reclaim up to sc->nr_to_reclaim, raising the pressure from
 * EBB_DEF_PRIORITY down to 0 until enough is reclaimed (cf.
 * do_try_to_free_pages).  sc->priority is left at the last priority used.
 */
int ebb_lru_reclaim(struct ebb_lru *lru, struct ebb_scan_control *sc,
		    const struct ebb_lru_evictor *ev);

uint64_t ebb_lru_nr_active(const struct ebb_lru *lru);
uint64_t ebb_lru_nr_evictable(const struct ebb_lru *lru);

#endif /* EBB_HOST_RECLAIM_LRU_H */
