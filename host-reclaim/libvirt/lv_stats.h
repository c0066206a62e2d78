/*
 * host-reclaim/libvirt/lv_stats.h — one domain's memory numbers from
 * libvirt's bulk stats (VIR_DOMAIN_STATS_BALLOON), validated where they
 * enter.  Kept apart from the driver so a unit test feeds it hostile records
 * with no libvirtd (tests/unit/test_libvirt_stats.c).
 */
#ifndef EBB_EBBD_LV_STATS_H
#define EBB_EBBD_LV_STATS_H

#include <stdbool.h>
#include <stdint.h>

#include <libvirt/libvirt.h>

#define EBBD_LV_MAX_GUEST_KIB (1ull << 40)   /* 1 PiB: a bigger maximum is refused */

/* The numbers as libvirt gives them (KiB), plus when they were taken. */
struct ebbd_lv_stats {
	uint64_t poll_ns;            /* when the last accepted record was read; 0: never */
	uint64_t max_kib, cur_kib, rss_kib;
	bool have_guest;             /* the guest driver's own numbers are there */
	uint64_t unused_kib, usable_kib, caches_kib;
	uint64_t swap_in_kib, major_faults;   /* cumulative; never go backwards here */
	uint64_t last_update_s;      /* the guest's stats timestamp */
	uint64_t report_ns;          /* when last_update_s last moved (now_ns clock) */
};

/*
 * GUEST: takes one record's balloon.* fields into *st at now_ns.  A record
 * without a usable maximum/current (missing, or maximum outside 1 MiB..1 PiB)
 * is refused: *st is left as it was (it ages) and *refused is set.
 * Otherwise impossible values are clamped (current above maximum, free or
 * available above current) or ignored (last-update, swap-in or fault counts
 * going backwards).  Returns how many values were impossible.
 */
unsigned ebbd_lv_stats_parse(struct ebbd_lv_stats *st, virTypedParameterPtr params, int nparams,
			     uint64_t now_ns, bool *refused);

/* A domain's <ebb:memory/> metadata element (docs/libvirt.md). */
struct ebbd_lv_meta {
	bool opt_out;                /* not managed by ebbd */
	uint32_t weight;             /* 1..10000; 0: not given */
	uint64_t min_mib, low_mib;   /* 0: not given; low >= min */
};

#define EBBD_LV_META_MAX_MIB (1ull << 30)

/*
 * CLIENT (the operator's XML, through libvirt): parses the attributes
 * weight, min_mib, low_mib, opt_out of @xml (NULL: no element, defaults).
 * A value out of range or malformed is ignored (that attribute keeps its
 * default); a low under min is raised to min.  Returns how many were bad.
 */
unsigned ebbd_lv_parse_metadata(const char *xml, struct ebbd_lv_meta *out);

/* A domain's memtune, read only (KiB; 0: none). */
struct ebbd_lv_memtune {
	uint64_t min_guarantee_kib, soft_kib, hard_kib;
};

/*
 * The balancer's settings for a domain from its three sources (docs/libvirt.md,
 * "Per-domain settings"): min, low and weight from its <ebb:memory> metadata,
 * else from ebbd's configuration ([vm] / [vm NAME]; @cfg may be NULL) — the
 * metadata wins value by value, being the operator's edit of this one domain —
 * and the memtune as a floor under them (min_guarantee never taken,
 * soft_limit the low, hard_limit the max; ebbd never sets a memtune value).
 * Fills min, low, max, weight and balloon_floor of @out.
 */
struct ebbd_vm_settings;
struct ebb_bal_vm_cfg;
void ebbd_lv_settings(const struct ebbd_lv_memtune *mt, const struct ebbd_lv_meta *meta,
		      const struct ebbd_vm_settings *cfg, struct ebb_bal_vm_cfg *out);

#endif
