/*
 * host-reclaim/libvirt/lv_stats.c — validation of a domain's bulk stats
 * record (see lv_stats.h).  Pure: no libvirt connection, no clock, no I/O.
 */
#include "host-reclaim/libvirt/lv_stats.h"

static uint64_t param_u64(virTypedParameterPtr p, int n, const char *name, bool *have)
{
	unsigned long long v = 0;

	*have = p && n > 0 && virTypedParamsGetULLong(p, n, name, &v) == 1;
	return *have ? v : 0;
}

/* Clamps *v to at most hi; 1 when it had to. */
static unsigned cap(uint64_t *v, uint64_t hi)
{
	if (*v <= hi)
		return 0;
	*v = hi;
	return 1;
}

unsigned ebbd_lv_stats_parse(struct ebbd_lv_stats *st, virTypedParameterPtr params, int nparams,
			     uint64_t now_ns, bool *refused)
{
	unsigned bad = 0;
	bool h_max, h_cur, h_rss, h_unused, h_usable, h_upd, h;
	uint64_t max = param_u64(params, nparams, "balloon.maximum", &h_max);
	uint64_t cur = param_u64(params, nparams, "balloon.current", &h_cur);
	uint64_t rss = param_u64(params, nparams, "balloon.rss", &h_rss);
	uint64_t unused = param_u64(params, nparams, "balloon.unused", &h_unused);
	uint64_t usable = param_u64(params, nparams, "balloon.usable", &h_usable);
	uint64_t upd = param_u64(params, nparams, "balloon.last-update", &h_upd);
	uint64_t caches = param_u64(params, nparams, "balloon.disk_caches", &h);
	uint64_t v;

	*refused = false;
	if (!h_max || !h_cur || max < 1024 || max > EBBD_LV_MAX_GUEST_KIB) {
		*refused = true;
		return 1;
	}
	bad += cap(&cur, max);
	st->max_kib = max;
	st->cur_kib = cur;
	st->rss_kib = h_rss ? rss : cur;
	st->poll_ns = now_ns;
	st->have_guest = h_unused && h_usable && h_upd;
	if (st->have_guest) {
		bad += cap(&unused, cur);
		bad += cap(&usable, cur);
		bad += cap(&caches, cur);
		if (upd < st->last_update_s) {
			bad++;          /* time went backwards: this report is not fresh */
		} else if (upd != st->last_update_s || !st->report_ns) {
			st->report_ns = now_ns;
			st->last_update_s = upd;
		}
		st->unused_kib = unused;
		st->usable_kib = usable;
		st->caches_kib = caches;
	}
	v = param_u64(params, nparams, "balloon.swap_in", &h);
	if (h && v < st->swap_in_kib)
		bad++;
	else if (h)
		st->swap_in_kib = v;
	v = param_u64(params, nparams, "balloon.major_fault", &h);
	if (h && v < st->major_faults)
		bad++;
	else if (h)
		st->major_faults = v;
	return bad;
}
