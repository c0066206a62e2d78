/*
 * pool.h — the host memory pool of ebbd (the "zone") and its watermarks.
 *
 * One pool per NUMA node (one today).  Its budget is what the operator lets
 * the managed VMs and the host share; "used" is every managed VM's resident
 * memory (compressed tier included) plus what the host itself uses outside
 * the VMs, cross-checked against MemAvailable; free = budget - used.
 *
 * Watermarks are derived the kernel's way (mm/page_alloc.c, the seeds):
 *   min  = 4 * sqrt(budget_kB) kB (as min_free_kbytes = 4*sqrt(lowmem_kB)),
 *          clamped to [EBB_POOL_MIN_FLOOR_BYTES, EBB_POOL_MIN_CEIL_BYTES]
 *   gap  = max(min / 4, budget * watermark_scale_factor / 10000)
 *   low  = min + gap,  high = low + gap
 * Each may be overridden; a boost (watermark_boost_factor) raises low and
 * high for a while after a burst of demand and decays back to zero.
 *
 * Pure arithmetic: no I/O, no locking (the owner serialises calls).
 */
#ifndef EBB_HOST_RECLAIM_POOL_H
#define EBB_HOST_RECLAIM_POOL_H

#include <stdbool.h>
#include <stdint.h>

#define EBB_POOL_MIN_FLOOR_BYTES (128ULL << 10)   /* as min_free_kbytes' 128 kB */
#define EBB_POOL_MIN_CEIL_BYTES  (256ULL << 20)   /* min_free_kbytes caps at 256 MiB (6.x) */
#define EBB_POOL_DEF_SCALE_FACTOR 100u            /* 1% of the budget: ten times the
						    * kernel's default, since ebbd reacts
						    * in seconds, not microseconds */
#define EBB_POOL_MAX_SCALE_FACTOR 3000u           /* 30%, as the kernel's sysctl bound */
#define EBB_POOL_DEF_BOOST_FACTOR 15000u          /* boost up to 150% of the high-min gap */
#define EBB_POOL_DEF_BOOST_DECAY_MS 10000u        /* boost halves every 10 s */

/* Operator configuration of one pool.  Zero means "the default". */
struct ebb_pool_cfg {
	uint64_t budget_bytes;            /* 0: mem_total - reserve (see reserve_bytes) */
	uint32_t budget_percent;          /* 1..100 of MemTotal; used if budget_bytes == 0 */
	uint64_t reserve_bytes;           /* kept for the host when the budget is derived;
					   * 0: max(512 MiB, MemTotal / 16) */
	uint64_t wmark_min_bytes;         /* overrides; 0 = derived */
	uint64_t wmark_low_bytes;
	uint64_t wmark_high_bytes;
	uint32_t scale_factor;            /* watermark_scale_factor in 1/10000; 0 = default */
	uint32_t boost_factor;            /* watermark_boost_factor in 1/10000 of (high - min);
					   * 0 = default; EBB_POOL_NO_BOOST turns boosting off */
	uint32_t boost_decay_ms;          /* half-life of the boost; 0 = default */
};

#define EBB_POOL_NO_BOOST UINT32_MAX

/* The derived watermarks (without boost). */
struct ebb_pool_wmarks {
	uint64_t budget_bytes;
	uint64_t min_bytes;
	uint64_t low_bytes;
	uint64_t high_bytes;
	uint64_t boost_max_bytes;         /* the ceiling of the boost */
};

/*
 * Derive budget and watermarks from @cfg and the host's MemTotal.
 * Returns 0, or -EINVAL when the configuration cannot make a pool (overrides
 * not ordered min < low < high < budget, percentages out of range, a budget
 * larger than MemTotal, or smaller than 4 * high).
 */
int ebb_pool_wmarks_compute(const struct ebb_pool_cfg *cfg, uint64_t mem_total_bytes,
			    struct ebb_pool_wmarks *out);

/* The kernel's min_free_kbytes formula, in bytes, clamped (exported for tests). */
uint64_t ebb_pool_min_for_budget(uint64_t budget_bytes);

/*
 * The boost: raised by ebb_pool_boost_burst() when demand came in a burst
 * (free fell through low inside one step), decayed by half every
 * boost_decay_ms; applied on top of low and high.
 */
struct ebb_pool_boost {
	uint64_t boost_bytes;
	uint64_t last_decay_ns;
	uint64_t nr_bursts;
};

void ebb_pool_boost_burst(struct ebb_pool_boost *b, const struct ebb_pool_wmarks *w,
			  uint64_t burst_bytes, uint64_t now_ns);
void ebb_pool_boost_decay(struct ebb_pool_boost *b, uint32_t decay_ms, uint64_t now_ns);

#endif /* EBB_HOST_RECLAIM_POOL_H */
