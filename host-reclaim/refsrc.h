/*
 * refsrc.h — reference sources: what tells the reclaim engine which pages
 * were used.  A source fills a bitmap of the pages used since its last
 * harvest and re-arms; the region harvests its sources on the aging tick
 * and feeds the bits to the LRU (the signal table in lru.c says how each
 * kind ages a page).  A region takes any source (ebb_region_add_refsrc,
 * region.h: vmm/memory.c adds the KVM dirty log); the built-in ones are
 * here (refsrc.c): PAGEMAP_SCAN + userfaultfd WP_ASYNC (written pages) and
 * idle page tracking (accessed pages).
 */
#ifndef EBB_HOST_RECLAIM_REFSRC_H
#define EBB_HOST_RECLAIM_REFSRC_H

#include <stdint.h>

/* A pluggable reference source (see the overview in lru.c for semantics). */
enum ebb_ref_kind {
	EBB_REF_WRITTEN = 1,   /* bit set = page written since the last harvest */
	EBB_REF_ACCESSED = 2,  /* bit set = page read or written since the last harvest */
};

struct ebb_refsrc_ops {
	const char *name;
	enum ebb_ref_kind kind;
	/* Set bit i of @bitmap (nr_pages bits, zeroed by the caller) for every
	 * page i used since the last call, and re-arm.  0 or -errno. */
	int (*harvest)(void *ctx, uint64_t nr_pages, uint64_t *bitmap);
	void (*destroy)(void *ctx);
};

/*
 * The PAGEMAP_SCAN + userfaultfd WP_ASYNC dirty source for any range
 * registered with a WP_ASYNC uffd (region.c uses it internally).
 */
int ebb_refsrc_pagemap_create(int uffd, void *base, uint64_t nr_pages, void **ctx);
extern const struct ebb_refsrc_ops ebb_refsrc_pagemap_ops;
/* Idle page tracking (/sys/kernel/mm/page_idle): -EOPNOTSUPP where absent.
 * A harvest covers at most slice_pages pages from a rotating cursor (0 = all
 * of them); create() uses EBB_PAGE_IDLE_SLICE_PAGES.  See refsrc.c. */
#define EBB_PAGE_IDLE_SLICE_PAGES (1ULL << 16)  /* 256 MiB of guest RAM per pass */
int ebb_refsrc_page_idle_create(void *base, uint64_t nr_pages, void **ctx);
int ebb_refsrc_page_idle_create_opts(void *base, uint64_t nr_pages, uint64_t slice_pages,
				     void **ctx);
struct ebb_page_idle_stats {
	uint64_t nr_passes;         /* harvests */
	uint64_t nr_pages_scanned;  /* pages looked at (slices) */
	uint64_t nr_accessed;       /* of those, found accessed */
	uint64_t nr_not_present;    /* of those, not resident (skipped) */
	uint64_t nr_reads;          /* pread calls (pagemap + bitmap) */
	uint64_t nr_writes;         /* pwrite calls (bitmap) */
	uint64_t cpu_ns;            /* thread CPU time spent harvesting */
};
void ebb_refsrc_page_idle_get_stats(void *ctx, struct ebb_page_idle_stats *out);
extern const struct ebb_refsrc_ops ebb_refsrc_page_idle_ops;

#endif
