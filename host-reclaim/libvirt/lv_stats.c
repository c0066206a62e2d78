/*
 * host-reclaim/libvirt/lv_stats.c — validation of a domain's bulk stats
 * record (see lv_stats.h).  Pure: no libvirt connection, no clock, no I/O.
 */
#include <string.h>

#include "host-reclaim/ebbd/ebbd.h"
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

/* The value of attribute @name (after whitespace, quoted with ' or ").
 * 1 found, 0 absent, -1 malformed (unterminated or longer than @len - 1). */
static int attr(const char *xml, const char *name, char *out, size_t len)
{
	size_t nl = strlen(name);
	const char *p = xml;

	while ((p = strstr(p, name))) {
		const char *v = p + nl, *end;
		char q;

		if (p == xml || (p[-1] != ' ' && p[-1] != '\t' && p[-1] != '\n') || *v != '=') {
			p += nl;
			continue;
		}
		q = v[1];
		if (q != '"' && q != '\'')
			return -1;
		end = strchr(v + 2, q);
		if (!end || (size_t)(end - (v + 2)) >= len)
			return -1;
		memcpy(out, v + 2, (size_t)(end - (v + 2)));
		out[end - (v + 2)] = '\0';
		return 1;
	}
	return 0;
}

/* Digits only, at most 10 of them, within [lo, hi].  0 or -1. */
static int number(const char *v, uint64_t lo, uint64_t hi, uint64_t *out)
{
	uint64_t x = 0;
	size_t i, n = strlen(v);

	if (n == 0 || n > 10)
		return -1;
	for (i = 0; i < n; i++) {
		if (v[i] < '0' || v[i] > '9')
			return -1;
		x = x * 10 + (uint64_t)(v[i] - '0');
	}
	if (x < lo || x > hi)
		return -1;
	*out = x;
	return 0;
}

unsigned ebbd_lv_parse_metadata(const char *xml, struct ebbd_lv_meta *out)
{
	char v[32];
	uint64_t x;
	unsigned bad = 0;
	int r;

	memset(out, 0, sizeof(*out));
	if (!xml)
		return 0;
	if ((r = attr(xml, "weight", v, sizeof(v))) != 0) {
		if (r < 0 || number(v, 1, 10000, &x))
			bad++;
		else
			out->weight = (uint32_t)x;
	}
	if ((r = attr(xml, "min_mib", v, sizeof(v))) != 0) {
		if (r < 0 || number(v, 0, EBBD_LV_META_MAX_MIB, &x))
			bad++;
		else
			out->min_mib = x;
	}
	if ((r = attr(xml, "low_mib", v, sizeof(v))) != 0) {
		if (r < 0 || number(v, 0, EBBD_LV_META_MAX_MIB, &x))
			bad++;
		else
			out->low_mib = x;
	}
	if (out->low_mib && out->low_mib < out->min_mib) {
		out->low_mib = out->min_mib;
		bad++;
	}
	if ((r = attr(xml, "opt_out", v, sizeof(v))) != 0) {
		if (r > 0 && (strcmp(v, "yes") == 0 || strcmp(v, "true") == 0 || strcmp(v, "1") == 0))
			out->opt_out = true;
		else if (r < 0 || (strcmp(v, "no") != 0 && strcmp(v, "false") != 0 &&
				   strcmp(v, "0") != 0))
			bad++;
	}
	return bad;
}

void ebbd_lv_settings(const struct ebbd_lv_memtune *mt, const struct ebbd_lv_meta *meta,
		      const struct ebbd_vm_settings *cfg, struct ebb_bal_vm_cfg *out)
{
	const uint64_t kib = 1024, mib = 1024 * 1024;
	uint64_t min, low;

	out->min_bytes = out->balloon_floor_bytes = mt->min_guarantee_kib * kib;
	out->low_bytes = (mt->soft_kib > mt->min_guarantee_kib ? mt->soft_kib :
			  mt->min_guarantee_kib) * kib;
	out->max_bytes = mt->hard_kib ? mt->hard_kib * kib : EBB_BAL_NO_LIMIT;
	min = meta->min_mib ? meta->min_mib * mib : cfg && cfg->has_min ? cfg->min_bytes : 0;
	low = meta->low_mib ? meta->low_mib * mib : cfg && cfg->has_low ? cfg->low_bytes : 0;
	if (min > out->min_bytes)
		out->min_bytes = out->balloon_floor_bytes = min;
	if (low > out->low_bytes)
		out->low_bytes = low;
	if (out->low_bytes < out->min_bytes)
		out->low_bytes = out->min_bytes;
	out->weight = meta->weight ? meta->weight : cfg && cfg->has_weight && cfg->weight ?
		cfg->weight : EBB_BAL_DEF_WEIGHT;
}
