/*
 * base/page.h — the page size every ebb library works in: the x86-64 base
 * page, which is the unit of the balloon (virtio's 4 KiB PFNs), of the
 * reclaim engine's page table and LRU, and of guest RAM as the VMM maps it.
 * Header only, like the rest of base/.
 */
#ifndef EBB_BASE_PAGE_H
#define EBB_BASE_PAGE_H

#include <stdint.h>

#define EBB_PAGE_SHIFT 12
/* Unsigned int, for page counts, buffers and offsets within a page. */
#define EBB_PAGE_SIZE (1u << EBB_PAGE_SHIFT)
/* The same size as a uint64_t, for byte arithmetic and 64-bit masks. */
#define EBB_PAGE_BYTES ((uint64_t)EBB_PAGE_SIZE)

#endif /* EBB_BASE_PAGE_H */
