/*
 * base/giveback.h — how much memory a guest can give back without hurting:
 * the one rule the in-guest agent (guest-agent/agent_stats.c) and ebbd's
 * libvirt backend (from the balloon driver's statistics, when no agent
 * answers) both apply.
 *
 *   give back = (free - free reserve) + (clean page cache - cache floor)
 *
 * each term clamped at 0.  The free reserve (default max(32 MiB, RAM/32))
 * keeps the guest's own watermarks clear; the cache floor (default
 * max(32 MiB, RAM/16)) keeps a working page cache.  Header only, like the
 * rest of base/.
 */
#ifndef EBB_BASE_GIVEBACK_H
#define EBB_BASE_GIVEBACK_H

#include <stdint.h>

#define EBB_GIVEBACK_MIN_RESERVE (32ull << 20)

static inline uint64_t ebb_giveback_sub_sat(uint64_t a, uint64_t b)
{
	return a > b ? a - b : 0;
}

/* The default free reserve and cache floor of a guest of total_bytes. */
static inline uint64_t ebb_giveback_free_reserve(uint64_t total_bytes)
{
	return total_bytes / 32 > EBB_GIVEBACK_MIN_RESERVE ? total_bytes / 32
							   : EBB_GIVEBACK_MIN_RESERVE;
}

static inline uint64_t ebb_giveback_cache_floor(uint64_t total_bytes)
{
	return total_bytes / 16 > EBB_GIVEBACK_MIN_RESERVE ? total_bytes / 16
							   : EBB_GIVEBACK_MIN_RESERVE;
}

/* What the guest can give back, at most total_bytes (saturating). */
static inline uint64_t ebb_giveback_bytes(uint64_t total_bytes, uint64_t free_bytes,
					  uint64_t clean_cache_bytes, uint64_t free_reserve,
					  uint64_t cache_floor)
{
	uint64_t a = ebb_giveback_sub_sat(free_bytes, free_reserve);
	uint64_t b = ebb_giveback_sub_sat(clean_cache_bytes, cache_floor);
	uint64_t give = a + b < a ? UINT64_MAX : a + b;

	return give > total_bytes ? total_bytes : give;
}

#endif
