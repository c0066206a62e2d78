/*
 * reclaim_util.h — what the region tests that drive reclaim by hand share:
 * reclaim_all() (everything the engine will give, in bounded passes) and
 * mincore_pages() (how many pages of a range the kernel holds).  Header-only
 * (static), as tap.h.
 */
#ifndef EBB_TESTS_RECLAIM_UTIL_H
#define EBB_TESTS_RECLAIM_UTIL_H

#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "host-reclaim/region.h"

/* Reclaim up to @nr pages until a pass finds nothing more (bounded): a pass
 * scans each list as long as it was when the pass began, so pages it
 * deactivates wait for the next one.  Returns the pages reclaimed. */
static uint64_t reclaim_all(struct ebb_region *r, uint64_t nr) __attribute__((unused));
static uint64_t reclaim_all(struct ebb_region *r, uint64_t nr)
{
	struct ebb_scan_control sc = { .nr_to_reclaim = nr, .priority = 0, .swappiness = 100,
				       .may_swap = true, .may_writepage = true };

	for (int i = 0; i < 32; i++) {
		uint64_t before = sc.nr_reclaimed;

		ebb_region_reclaim(r, &sc);
		if (i >= 7 && sc.nr_reclaimed == before)
			break;
	}
	return sc.nr_reclaimed;
}

/* Pages of [from, to) of the mapping at @base that mincore() says are in
 * RAM; UINT64_MAX if it fails. */
static uint64_t mincore_pages(void *base, uint64_t from, uint64_t to) __attribute__((unused));
static uint64_t mincore_pages(void *base, uint64_t from, uint64_t to)
{
	unsigned char *v = malloc(to - from);
	uint64_t n = 0;

	if (!v || mincore((char *)base + from * 4096, (to - from) * 4096, v) != 0) {
		free(v);
		return UINT64_MAX;
	}
	for (uint64_t i = 0; i < to - from; i++)
		n += v[i] & 1;
	free(v);
	return n;
}

#endif
