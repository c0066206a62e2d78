/*
 * agent_stats.c - parsers for /proc/meminfo, /proc/vmstat and PSI text, and the
 * give-back estimate.
 *
 * Overview: every parser walks the text line by line, splits "key value" (or
 * "key: value kB"), looks the key up in a small table that maps it to a field
 * of the output struct, and converts with overflow checks.  Lines it does not
 * know are skipped, so newer kernels with more fields parse fine; a known line
 * with a bad number is skipped too.  No allocation, no I/O: the agent calls
 * these from its pressure path on buffers it preallocated.
 */
#include "guest-agent/agent_stats.h"

#include "base/giveback.h"

#include <errno.h>
#include <string.h>

/* Parse a decimal unsigned number at *p (within end); advance *p.  Return
 * false on no digits or overflow. */
static bool parse_u64(const char **p, const char *end, uint64_t *out)
{
	const char *s = *p;
	uint64_t v = 0;

	if (s >= end || *s < '0' || *s > '9')
		return false;
	while (s < end && *s >= '0' && *s <= '9') {
		if (__builtin_mul_overflow(v, 10, &v) ||
		    __builtin_add_overflow(v, (uint64_t)(*s - '0'), &v))
			return false;
		s++;
	}
	*p = s;
	*out = v;
	return true;
}

static const char *skip_spaces(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	return p;
}

static const char *line_end(const char *p, const char *end)
{
	const char *nl = memchr(p, '\n', (size_t)(end - p));
	return nl ? nl : end;
}

struct field_map {
	const char *key;
	size_t off;       /* offset of the uint64_t in the output struct */
};

#define MI(k, f) { k, offsetof(struct agent_meminfo, f) }
static const struct field_map meminfo_map[] = {
	MI("MemTotal", total_bytes),
	MI("MemFree", free_bytes),
	MI("MemAvailable", available_bytes),
	MI("Buffers", buffers_bytes),
	MI("Cached", cached_bytes),
	MI("SwapCached", swap_cached_bytes),
	MI("Active(anon)", active_anon_bytes),
	MI("Inactive(anon)", inactive_anon_bytes),
	MI("Active(file)", active_file_bytes),
	MI("Inactive(file)", inactive_file_bytes),
	MI("Unevictable", unevictable_bytes),
	MI("Mlocked", mlocked_bytes),
	MI("SwapTotal", swap_total_bytes),
	MI("SwapFree", swap_free_bytes),
	MI("Dirty", dirty_bytes),
	MI("Writeback", writeback_bytes),
	MI("AnonPages", anon_pages_bytes),
	MI("Mapped", mapped_bytes),
	MI("Shmem", shmem_bytes),
	MI("SReclaimable", sreclaimable_bytes),
	MI("SUnreclaim", sunreclaim_bytes),
};
#undef MI

static const struct field_map *map_find(const struct field_map *map, size_t n,
					const char *key, size_t key_len)
{
	for (size_t i = 0; i < n; i++)
		if (strlen(map[i].key) == key_len && memcmp(map[i].key, key, key_len) == 0)
			return &map[i];
	return NULL;
}

int agent_meminfo_parse(const char *text, size_t len, struct agent_meminfo *out)
{
	const char *p = text, *end = text + len;

	memset(out, 0, sizeof(*out));
	while (p < end) {
		const char *le = line_end(p, end);
		const char *colon = memchr(p, ':', (size_t)(le - p));
		const struct field_map *f;
		uint64_t v;

		if (!colon)
			goto next;
		f = map_find(meminfo_map, sizeof(meminfo_map) / sizeof(meminfo_map[0]),
			     p, (size_t)(colon - p));
		if (!f)
			goto next;
		p = skip_spaces(colon + 1, le);
		if (!parse_u64(&p, le, &v))
			goto next;
		p = skip_spaces(p, le);
		/* "kB" (all the byte-sized fields) or nothing (page counts, which
		 * none of our fields are: reject those to avoid unit mix-ups). */
		if (le - p < 2 || p[0] != 'k' || p[1] != 'B')
			goto next;
		if (__builtin_mul_overflow(v, 1024, &v))
			goto next;
		*(uint64_t *)((char *)out + f->off) = v;
		out->nr_fields++;
next:
		p = le + (le < end);
	}
	return out->nr_fields ? 0 : -EINVAL;
}

#define VS(k, f) { k, offsetof(struct agent_vmstat, f) }
static const struct field_map vmstat_map[] = {
	VS("pgscan_kswapd", pgscan_kswapd),
	VS("pgscan_direct", pgscan_direct),
	VS("pgsteal_kswapd", pgsteal_kswapd),
	VS("pgsteal_direct", pgsteal_direct),
	VS("workingset_refault_anon", workingset_refault_anon),
	VS("workingset_refault_file", workingset_refault_file),
	VS("pswpin", pswpin),
	VS("pswpout", pswpout),
	VS("oom_kill", oom_kill),
	VS("pgmajfault", pgmajfault),
	VS("compact_stall", compact_stall),
};
#undef VS

int agent_vmstat_parse(const char *text, size_t len, struct agent_vmstat *out)
{
	const char *p = text, *end = text + len;
	uint64_t refault_old = 0;
	bool have_old = false;

	memset(out, 0, sizeof(*out));
	while (p < end) {
		const char *le = line_end(p, end);
		const char *sp = memchr(p, ' ', (size_t)(le - p));
		const struct field_map *f;
		const char *q;
		size_t klen;
		uint64_t v;

		if (!sp)
			goto next;
		klen = (size_t)(sp - p);
		q = skip_spaces(sp, le);
		if (!parse_u64(&q, le, &v) || skip_spaces(q, le) != le)
			goto next;
		if (klen == 18 && memcmp(p, "workingset_refault", 18) == 0) {
			refault_old = v;
			have_old = true;
			out->nr_fields++;
		} else if (klen > 11 && memcmp(p, "allocstall_", 11) == 0) {
			/* allocstall_{dma,dma32,normal,movable,device} */
			if (!__builtin_add_overflow(out->allocstall, v, &out->allocstall))
				out->nr_fields++;
		} else if ((f = map_find(vmstat_map, sizeof(vmstat_map) / sizeof(vmstat_map[0]),
					 p, klen))) {
			*(uint64_t *)((char *)out + f->off) = v;
			out->nr_fields++;
		}
next:
		p = le + (le < end);
	}
	if (have_old)
		out->workingset_refault = refault_old;
	else if (__builtin_add_overflow(out->workingset_refault_anon,
					out->workingset_refault_file,
					&out->workingset_refault))
		out->workingset_refault = UINT64_MAX;
	return out->nr_fields ? 0 : -EINVAL;
}

/* "12.34" -> 1234; at most two decimals; values above 100.00 rejected. */
static bool parse_centipct(const char **p, const char *end, uint32_t *out)
{
	uint64_t whole, frac = 0;
	int digits = 0;

	if (!parse_u64(p, end, &whole) || whole > 100)
		return false;
	if (*p < end && **p == '.') {
		(*p)++;
		while (*p < end && **p >= '0' && **p <= '9') {
			if (digits < 2)
				frac = frac * 10 + (uint64_t)(**p - '0');
			digits++;
			(*p)++;
		}
		if (digits == 0)
			return false;
		if (digits == 1)
			frac *= 10;
	}
	if (whole * 100 + frac > 10000)
		return false;
	*out = (uint32_t)(whole * 100 + frac);
	return true;
}

static bool expect(const char **p, const char *end, const char *word)
{
	size_t n = strlen(word);

	if ((size_t)(end - *p) < n || memcmp(*p, word, n) != 0)
		return false;
	*p += n;
	return true;
}

static bool parse_psi_line(const char *p, const char *end, struct agent_psi_line *l)
{
	struct agent_psi_line t = { .present = true };

	p = skip_spaces(p, end);
	if (!expect(&p, end, "avg10=") || !parse_centipct(&p, end, &t.avg10_centipct))
		return false;
	p = skip_spaces(p, end);
	if (!expect(&p, end, "avg60=") || !parse_centipct(&p, end, &t.avg60_centipct))
		return false;
	p = skip_spaces(p, end);
	if (!expect(&p, end, "avg300=") || !parse_centipct(&p, end, &t.avg300_centipct))
		return false;
	p = skip_spaces(p, end);
	if (!expect(&p, end, "total=") || !parse_u64(&p, end, &t.total_us))
		return false;
	*l = t;
	return true;
}

int agent_psi_parse(const char *text, size_t len, struct agent_psi *out)
{
	const char *p = text, *end = text + len;

	memset(out, 0, sizeof(*out));
	while (p < end) {
		const char *le = line_end(p, end);
		const char *q = p;

		if (expect(&q, le, "some "))
			parse_psi_line(q, le, &out->some);
		else if (expect(&q, le, "full "))
			parse_psi_line(q, le, &out->full);
		p = le + (le < end);
	}
	return out->some.present ? 0 : -EINVAL;
}

static uint64_t max_u64(uint64_t a, uint64_t b)
{
	return a > b ? a : b;
}

static uint64_t sub_sat(uint64_t a, uint64_t b)
{
	return a > b ? a - b : 0;
}

#define MIB (1024ull * 1024ull)

void agent_estimate_compute(const struct agent_meminfo *mi,
			    const struct agent_estimate_cfg *cfg,
			    struct agent_estimate *out)
{
	uint64_t file, unclean, give;

	memset(out, 0, sizeof(*out));
	out->free_reserve_bytes = cfg && cfg->free_reserve_bytes ? cfg->free_reserve_bytes
				  : ebb_giveback_free_reserve(mi->total_bytes);
	out->cache_floor_bytes = cfg && cfg->cache_floor_bytes ? cfg->cache_floor_bytes
				 : ebb_giveback_cache_floor(mi->total_bytes);
	/* Clean file pages: the file LRU minus what still needs writing.  The
	 * block-device cache ("Buffers") is on the file LRU too. */
	if (__builtin_add_overflow(mi->active_file_bytes, mi->inactive_file_bytes, &file))
		file = UINT64_MAX;
	if (__builtin_add_overflow(mi->dirty_bytes, mi->writeback_bytes, &unclean))
		unclean = UINT64_MAX;
	out->clean_file_bytes = sub_sat(file, unclean);
	give = ebb_giveback_bytes(mi->total_bytes, mi->free_bytes, out->clean_file_bytes,
				  out->free_reserve_bytes, out->cache_floor_bytes);
	out->give_back_bytes = give;
	out->safe_target_bytes = mi->total_bytes - give;
}

uint64_t agent_need_bytes(const struct agent_meminfo *mi, uint64_t comfort_bytes,
			  uint64_t min_step_bytes)
{
	uint64_t need;

	if (!comfort_bytes)
		comfort_bytes = max_u64(64 * MIB, mi->total_bytes / 8);
	if (!min_step_bytes)
		min_step_bytes = max_u64(16 * MIB, mi->total_bytes / 32);
	need = sub_sat(comfort_bytes, mi->available_bytes);
	return max_u64(need, min_step_bytes);
}
