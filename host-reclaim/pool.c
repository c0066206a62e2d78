/*
 * pool.c — budget and watermarks of ebbd's memory pool (see pool.h for the
 * formulas).  The kernel computes min_free_kbytes = sqrt(lowmem_kbytes * 16)
 * and spaces low and high by max(min/4, managed * watermark_scale_factor /
 * 10000); the pool does the same over its budget, so a 64 GiB budget gets a
 * min of ~32 MiB and low/high 64 MiB apart at the default factor.
 */
#include "host-reclaim/pool.h"

#include <errno.h>
#include <math.h>

uint64_t ebb_pool_min_for_budget(uint64_t budget_bytes)
{
	uint64_t kb = budget_bytes >> 10;
	uint64_t r = (uint64_t)sqrt((double)kb * 16.0);

	/* integer correction of the floating root */
	while (r > 0 && r * r > kb * 16)
		r--;
	while ((r + 1) * (r + 1) <= kb * 16)
		r++;
	uint64_t min = r << 10;
	if (min < EBB_POOL_MIN_FLOOR_BYTES)
		min = EBB_POOL_MIN_FLOOR_BYTES;
	if (min > EBB_POOL_MIN_CEIL_BYTES)
		min = EBB_POOL_MIN_CEIL_BYTES;
	return min;
}

int ebb_pool_wmarks_compute(const struct ebb_pool_cfg *cfg, uint64_t mem_total_bytes,
			    struct ebb_pool_wmarks *out)
{
	uint64_t budget = cfg->budget_bytes;
	uint32_t sf = cfg->scale_factor ? cfg->scale_factor : EBB_POOL_DEF_SCALE_FACTOR;

	if (sf > EBB_POOL_MAX_SCALE_FACTOR || cfg->budget_percent > 100)
		return -EINVAL;
	if (budget == 0) {
		if (mem_total_bytes == 0)
			return -EINVAL;
		if (cfg->budget_percent) {
			budget = mem_total_bytes / 100 * cfg->budget_percent +
				 mem_total_bytes % 100 * cfg->budget_percent / 100;
		} else {
			uint64_t reserve = cfg->reserve_bytes;
			if (reserve == 0) {
				reserve = mem_total_bytes / 16;
				if (reserve < (512ULL << 20))
					reserve = 512ULL << 20;
			}
			if (reserve >= mem_total_bytes)
				return -EINVAL;
			budget = mem_total_bytes - reserve;
		}
	} else if (mem_total_bytes && budget > mem_total_bytes) {
		return -EINVAL;
	}

	uint64_t min = cfg->wmark_min_bytes ? cfg->wmark_min_bytes : ebb_pool_min_for_budget(budget);
	uint64_t gap = budget / 10000 * sf;
	if (gap < min / 4)
		gap = min / 4;
	uint64_t low = cfg->wmark_low_bytes ? cfg->wmark_low_bytes : min + gap;
	uint64_t high = cfg->wmark_high_bytes ? cfg->wmark_high_bytes : low + gap;

	if (!(min < low && low < high) || high > budget / 4)
		return -EINVAL;

	uint32_t bf = cfg->boost_factor ? cfg->boost_factor : EBB_POOL_DEF_BOOST_FACTOR;
	out->budget_bytes = budget;
	out->min_bytes = min;
	out->low_bytes = low;
	out->high_bytes = high;
	out->boost_max_bytes = bf == EBB_POOL_NO_BOOST ? 0 : (high - min) / 10000 * bf;
	return 0;
}

void ebb_pool_boost_burst(struct ebb_pool_boost *b, const struct ebb_pool_wmarks *w,
			  uint64_t burst_bytes, uint64_t now_ns)
{
	uint64_t nb = b->boost_bytes + burst_bytes;

	if (nb > w->boost_max_bytes || nb < b->boost_bytes)
		nb = w->boost_max_bytes;
	b->boost_bytes = nb;
	b->last_decay_ns = now_ns;
	b->nr_bursts++;
}

void ebb_pool_boost_decay(struct ebb_pool_boost *b, uint32_t decay_ms, uint64_t now_ns)
{
	uint64_t half_ns = (uint64_t)(decay_ms ? decay_ms : EBB_POOL_DEF_BOOST_DECAY_MS) * 1000000ULL;

	if (now_ns < b->last_decay_ns) {
		b->last_decay_ns = now_ns;
		return;
	}
	while (b->boost_bytes && now_ns - b->last_decay_ns >= half_ns) {
		b->boost_bytes /= 2;
		if (b->boost_bytes < 4096)
			b->boost_bytes = 0;
		b->last_decay_ns += half_ns;
	}
	if (!b->boost_bytes)
		b->last_decay_ns = now_ns;
}
