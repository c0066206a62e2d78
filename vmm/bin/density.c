/*
 * vmm/bin/density.c — the pure half of `ebb bench density`: mixes, the
 * guest's report lines, percentiles, metrics, the SLO and the CSV rows
 * (density.h).  Nothing here starts a process or touches a socket.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/bin/density.h"

static const char *const kind_names[DENS_NR_KINDS] = { "idle", "web", "batch", "cache" };

const char *dens_kind_name(enum dens_kind kind)
{
	return (unsigned)kind < DENS_NR_KINDS ? kind_names[kind] : "?";
}

int dens_kind_parse(const char *s, size_t len, enum dens_kind *out)
{
	unsigned k;

	for (k = 0; k < DENS_NR_KINDS; k++) {
		if (strlen(kind_names[k]) == len && !memcmp(s, kind_names[k], len)) {
			*out = (enum dens_kind)k;
			return 0;
		}
	}
	return -EINVAL;
}

/* One "KIND=PCT" or "KIND PCT" item (s[0..len), trimmed) into mix. */
static int mix_item(const char *s, size_t len, struct dens_mix *mix, bool *seen, char *err,
		    size_t err_len)
{
	size_t k_end = 0, v = 0;
	enum dens_kind kind;
	unsigned long pct = 0;
	size_t i;

	while (k_end < len && s[k_end] != '=' && s[k_end] != ' ' && s[k_end] != '\t')
		k_end++;
	if (dens_kind_parse(s, k_end, &kind)) {
		snprintf(err, err_len, "unknown workload '%.*s' (idle, web, batch or cache)",
			 (int)(k_end > 32 ? 32 : k_end), s);
		return -EINVAL;
	}
	if (seen[kind]) {
		snprintf(err, err_len, "'%s' given twice", kind_names[kind]);
		return -EINVAL;
	}
	seen[kind] = true;
	v = k_end;
	while (v < len && (s[v] == ' ' || s[v] == '\t'))
		v++;
	if (v < len && s[v] == '=')
		v++;
	while (v < len && (s[v] == ' ' || s[v] == '\t'))
		v++;
	if (v == len) {
		snprintf(err, err_len, "'%s' has no percentage (write %s=PERCENT)", kind_names[kind],
			 kind_names[kind]);
		return -EINVAL;
	}
	for (i = v; i < len; i++) {
		if (s[i] < '0' || s[i] > '9' || i - v >= 3) {
			snprintf(err, err_len, "bad percentage '%.*s' for %s (a whole number 0-100)",
				 (int)(len - v > 16 ? 16 : len - v), s + v, kind_names[kind]);
			return -EINVAL;
		}
		pct = pct * 10 + (unsigned long)(s[i] - '0');
	}
	if (pct > 100) {
		snprintf(err, err_len, "percentage %lu for %s is over 100", pct, kind_names[kind]);
		return -EINVAL;
	}
	mix->pct[kind] = (unsigned)pct;
	return 0;
}

static int mix_total(const struct dens_mix *mix, char *err, size_t err_len)
{
	unsigned k, sum = 0;

	for (k = 0; k < DENS_NR_KINDS; k++)
		sum += mix->pct[k];
	if (sum != 100) {
		snprintf(err, err_len, "the percentages sum to %u, not 100", sum);
		return -EINVAL;
	}
	return 0;
}

static size_t trim(const char **s, size_t len)
{
	while (len && (**s == ' ' || **s == '\t' || **s == '\r')) {
		(*s)++;
		len--;
	}
	while (len && ((*s)[len - 1] == ' ' || (*s)[len - 1] == '\t' || (*s)[len - 1] == '\r'))
		len--;
	return len;
}

int dens_mix_parse(const char *s, struct dens_mix *mix, char *err, size_t err_len)
{
	bool seen[DENS_NR_KINDS] = { false };
	enum dens_kind kind;
	const char *p = s;

	memset(mix, 0, sizeof(*mix));
	if (!s || !*s) {
		snprintf(err, err_len, "empty mix");
		return -EINVAL;
	}
	if (strlen(s) > 256) {
		snprintf(err, err_len, "mix too long (at most 256 characters)");
		return -EINVAL;
	}
	if (!dens_kind_parse(s, strlen(s), &kind)) {
		mix->pct[kind] = 100;
		return 0;
	}
	for (;;) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		const char *item = p;

		len = trim(&item, len);
		if (!len) {
			snprintf(err, err_len, "empty item in the mix");
			return -EINVAL;
		}
		if (!memchr(item, '=', len)) {
			snprintf(err, err_len, "'%.*s': write KIND=PERCENT, e.g. idle=60,web=40",
				 (int)(len > 32 ? 32 : len), item);
			return -EINVAL;
		}
		if (mix_item(item, len, mix, seen, err, err_len))
			return -EINVAL;
		if (!comma)
			break;
		p = comma + 1;
	}
	return mix_total(mix, err, err_len);
}

int dens_mix_parse_text(const char *text, size_t len, struct dens_mix *mix, char *err,
			size_t err_len)
{
	bool seen[DENS_NR_KINDS] = { false };
	char why[160];
	size_t pos = 0;
	unsigned line_no = 0, items = 0;

	memset(mix, 0, sizeof(*mix));
	if (len > DENS_MIX_FILE_MAX_BYTES) {
		snprintf(err, err_len, "mix file over %d bytes", DENS_MIX_FILE_MAX_BYTES);
		return -EINVAL;
	}
	if (memchr(text, '\0', len)) {
		snprintf(err, err_len, "mix file holds a NUL byte (not a text file)");
		return -EINVAL;
	}
	while (pos < len) {
		const char *l = text + pos, *nlp = memchr(l, '\n', len - pos), *hash;
		size_t ll = nlp ? (size_t)(nlp - l) : len - pos;

		pos += ll + (nlp ? 1 : 0);
		line_no++;
		hash = memchr(l, '#', ll);
		if (hash)
			ll = (size_t)(hash - l);
		ll = trim(&l, ll);
		if (!ll)
			continue;
		if (mix_item(l, ll, mix, seen, why, sizeof(why))) {
			snprintf(err, err_len, "line %u: %s", line_no, why);
			return -EINVAL;
		}
		items++;
	}
	if (!items) {
		snprintf(err, err_len, "no workload in the mix file");
		return -EINVAL;
	}
	if (mix_total(mix, why, sizeof(why))) {
		snprintf(err, err_len, "%s", why);
		return -EINVAL;
	}
	return 0;
}

void dens_mix_format(const struct dens_mix *mix, char *buf, size_t len)
{
	size_t off = 0;
	unsigned k;

	if (len)
		buf[0] = '\0';
	for (k = 0; k < DENS_NR_KINDS; k++) {
		int n;

		if (!mix->pct[k] || off >= len)
			continue;
		n = snprintf(buf + off, len - off, "%s%s=%u", off ? "," : "", kind_names[k],
			     mix->pct[k]);
		if (n < 0)
			return;
		off += (size_t)n;
	}
}

enum dens_kind dens_mix_assign(const struct dens_mix *mix, unsigned vm_index)
{
	unsigned count[DENS_NR_KINDS] = { 0 }, i, k, best = 0;

	for (i = 0; i <= vm_index; i++) {
		long long best_def = 0;
		bool have = false;

		for (k = 0; k < DENS_NR_KINDS; k++) {
			/* 100 x (share after this VM - count so far) */
			long long def = (long long)mix->pct[k] * (i + 1) - 100ll * count[k];

			if (!mix->pct[k])
				continue;
			if (!have || def > best_def ||
			    (def == best_def && mix->pct[k] > mix->pct[best])) {
				best = k;
				best_def = def;
				have = true;
			}
		}
		count[best]++;
	}
	return (enum dens_kind)best;
}

/* A number field's value: v[0..len) as an unsigned integer of at most 15 digits. */
static int num_u64(const char *v, size_t len, uint64_t *out)
{
	uint64_t x = 0;
	size_t i;

	if (!len || len > 15)
		return -EINVAL;
	for (i = 0; i < len; i++) {
		if (v[i] < '0' || v[i] > '9')
			return -EINVAL;
		x = x * 10 + (uint64_t)(v[i] - '0');
	}
	*out = x;
	return 0;
}

/* digits[.digits], at most 24 characters, finite, below 1e12. */
static int num_double(const char *v, size_t len, double *out)
{
	char buf[32];
	char *end;
	size_t i, dots = 0;
	double x;

	if (!len || len > 24 || v[0] == '.' || v[len - 1] == '.')
		return -EINVAL;
	for (i = 0; i < len; i++) {
		if (v[i] == '.')
			dots++;
		else if (v[i] < '0' || v[i] > '9')
			return -EINVAL;
	}
	if (dots > 1)
		return -EINVAL;
	memcpy(buf, v, len);
	buf[len] = '\0';
	errno = 0;
	x = strtod(buf, &end);
	if (errno || *end || !isfinite(x) || x >= 1e12)
		return -EINVAL;
	*out = x;
	return 0;
}

int dens_parse_report(const char *line, size_t len, struct dens_report *out)
{
	static const char tag[] = "ebb-work: t=";
	static const char *const keys[] = { "t", "kind", "reqs", "rps", "p50_us", "p99_us",
					    "max_us", "late", "errors" };
	const size_t nr_keys = sizeof(keys) / sizeof(keys[0]);
	const char *p, *end = line + len;
	struct dens_report r;
	unsigned seen = 0;

	if (len > DENS_LINE_MAX_BYTES || memchr(line, '\0', len))
		return -EINVAL;
	p = memmem(line, len, tag, sizeof(tag) - 1);
	if (!p)
		return -EINVAL;
	p += sizeof("ebb-work: ") - 1;
	memset(&r, 0, sizeof(r));
	while (p < end) {
		const char *tok = p, *eq, *val;
		size_t tl, kl, vl, k;
		int ret = -EINVAL;

		while (p < end && *p != ' ')
			p++;
		tl = (size_t)(p - tok);
		while (p < end && *p == ' ')
			p++;
		if (!tl)
			continue;
		eq = memchr(tok, '=', tl);
		if (!eq)
			return -EINVAL;
		kl = (size_t)(eq - tok);
		val = eq + 1;
		vl = tl - kl - 1;
		for (k = 0; k < nr_keys; k++)
			if (strlen(keys[k]) == kl && !memcmp(tok, keys[k], kl))
				break;
		if (k == nr_keys || (seen & (1u << k)))
			return -EINVAL;
		seen |= 1u << k;
		switch (k) {
		case 0: ret = num_double(val, vl, &r.t_s); break;
		case 1: ret = dens_kind_parse(val, vl, &r.kind); break;
		case 2: ret = num_u64(val, vl, &r.nr_reqs); break;
		case 3: ret = num_double(val, vl, &r.rps); break;
		case 4: ret = num_u64(val, vl, &r.p50_us); break;
		case 5: ret = num_u64(val, vl, &r.p99_us); break;
		case 6: ret = num_u64(val, vl, &r.max_us); break;
		case 7: ret = num_u64(val, vl, &r.nr_late); break;
		case 8: ret = num_u64(val, vl, &r.nr_errors); break;
		}
		if (ret)
			return -EINVAL;
	}
	if (seen != (1u << nr_keys) - 1)
		return -EINVAL;
	*out = r;
	return 0;
}

bool dens_line_is_oom(const char *line, size_t len)
{
	static const char *const pats[] = { "Out of memory", "oom-kill", "Killed process",
					    "invoked oom-killer" };
	size_t i;

	for (i = 0; i < sizeof(pats) / sizeof(pats[0]); i++)
		if (memmem(line, len, pats[i], strlen(pats[i])))
			return true;
	return false;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

double dens_percentile(double *v, size_t n, double p)
{
	size_t rank;

	if (!n)
		return 0;
	qsort(v, n, sizeof(*v), cmp_double);
	if (p <= 0)
		return v[0];
	rank = (size_t)ceil((double)n * p / 100.0);
	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return v[rank - 1];
}

int dens_metrics_of(const struct dens_report *r, size_t n, struct dens_metrics *out)
{
	double p50[DENS_MAX_REPORTS], p99[DENS_MAX_REPORTS], dt;
	size_t i;

	memset(out, 0, sizeof(*out));
	out->nr_reports = (unsigned)(n > DENS_MAX_REPORTS ? DENS_MAX_REPORTS : n);
	if (n < 2 || n > DENS_MAX_REPORTS)
		return -EINVAL;
	for (i = 1; i < n; i++) {
		if (r[i].t_s <= r[i - 1].t_s || r[i].nr_reqs < r[i - 1].nr_reqs) {
			out->nr_reports = 0;	/* not one run of one workload */
			return -EINVAL;
		}
	}
	/* the first report's interval began before the step: its own figures
	 * are left out, its counts are the starting point */
	for (i = 1; i < n; i++) {
		p50[i - 1] = (double)r[i].p50_us;
		p99[i - 1] = (double)r[i].p99_us;
	}
	dt = r[n - 1].t_s - r[0].t_s;
	out->rps = (double)(r[n - 1].nr_reqs - r[0].nr_reqs) / dt;
	out->p50_us = dens_percentile(p50, n - 1, 50);
	out->p99_us = dens_percentile(p99, n - 1, 50);
	out->nr_errors = r[n - 1].nr_errors;
	return 0;
}

static const char *const verdict_names[] = {
	[DENS_OK] = "ok",
	[DENS_BREAK_P99] = "p99",
	[DENS_BREAK_TPUT] = "throughput",
	[DENS_BREAK_OOM] = "oom-kill",
	[DENS_BREAK_ERRORS] = "data-errors",
	[DENS_BREAK_NO_REPORTS] = "no-reports",
	[DENS_BREAK_DIED] = "vm-died",
	[DENS_BREAK_BUDGET] = "over-budget",
	[DENS_BREAK_BOOT] = "not-warm",
};

const char *dens_verdict_name(enum dens_verdict v)
{
	return (unsigned)v < sizeof(verdict_names) / sizeof(verdict_names[0]) ? verdict_names[v] :
										 "?";
}

enum dens_verdict dens_slo_check(const struct dens_slo *slo, const struct dens_metrics *base,
				 const struct dens_metrics *m, unsigned nr_oom)
{
	double base_p99 = base->p99_us < 1 ? 1 : base->p99_us;

	if (m->nr_errors)
		return DENS_BREAK_ERRORS;
	if (nr_oom)
		return DENS_BREAK_OOM;
	if (m->nr_reports < 2)
		return DENS_BREAK_NO_REPORTS;
	if (m->p99_us > slo->p99_factor * base_p99)
		return DENS_BREAK_P99;
	if (m->rps < slo->tput_factor * base->rps)
		return DENS_BREAK_TPUT;
	return DENS_OK;
}

static void csv_i64(FILE *f, int64_t v)
{
	if (v >= 0)
		fprintf(f, ",%lld", (long long)v);
	else
		fputs(",", f);
}

void dens_csv_steps_header(FILE *f)
{
	fputs("policy,nr_vms,vm,kind,reports,p50_us,p99_us,base_p99_us,p99_ratio,rps,base_rps,"
	      "rps_ratio,errors,oom,verdict,resident_bytes,balloon_bytes,compressed_bytes,"
	      "compressed_host_bytes,file_bytes,ksm_bytes\n", f);
}

static double safe_div(double a, double b)
{
	return b > 0 ? a / b : 0;
}

void dens_csv_steps_row(FILE *f, const struct dens_row *r)
{
	double base_p99 = r->base.p99_us < 1 ? 1 : r->base.p99_us;

	fprintf(f, "%s,%u,%u,%s,%u,%.0f,%.0f,%.0f,%.3f,%.2f,%.2f,%.3f,%llu,%u,%s", r->policy,
		r->nr_vms, r->vm, dens_kind_name(r->kind), r->m.nr_reports, r->m.p50_us,
		r->m.p99_us, r->base.p99_us, safe_div(r->m.p99_us, base_p99), r->m.rps,
		r->base.rps, safe_div(r->m.rps, r->base.rps), (unsigned long long)r->m.nr_errors,
		r->nr_oom, dens_verdict_name(r->verdict));
	csv_i64(f, r->resident_bytes);
	csv_i64(f, r->balloon_bytes);
	csv_i64(f, r->compressed_bytes);
	csv_i64(f, r->compressed_host_bytes);
	csv_i64(f, r->file_bytes);
	csv_i64(f, r->ksm_bytes);
	fputc('\n', f);
}

double dens_ratio(const struct dens_result *a, const struct dens_result *b)
{
	if (!a || !b || !b->nr_held)
		return -1;
	return (double)a->nr_held / (double)b->nr_held;
}

void dens_csv_summary_header(FILE *f)
{
	fputs("policy,vms_held,broke_at,why,broke_vm,mem_bytes,budget_bytes,committed_bytes,"
	      "overcommit,saved_vs_static_bytes,ratio_vs_static,ratio_vs_mom,resident_bytes,"
	      "balloon_bytes,compressed_bytes,file_bytes,ksm_bytes,bal_balloon_bytes,"
	      "bal_high_bytes,bal_ksm_bytes\n", f);
}

static void csv_ratio(FILE *f, double x)
{
	if (x >= 0)
		fprintf(f, ",%.2f", x);
	else
		fputs(",", f);
}

void dens_csv_summary_row(FILE *f, const struct dens_result *r, const struct dens_result *stat,
			  const struct dens_result *mom)
{
	uint64_t committed = (uint64_t)r->nr_held * r->mem_bytes;

	fprintf(f, "%s,%u,%u,%s,%d,%llu,%llu,%llu,%.2f", r->policy, r->nr_held, r->broke_at,
		dens_verdict_name(r->why), r->broke_vm, (unsigned long long)r->mem_bytes,
		(unsigned long long)r->budget_bytes, (unsigned long long)committed,
		safe_div((double)committed, (double)r->budget_bytes));
	if (stat)
		fprintf(f, ",%lld", ((long long)r->nr_held - (long long)stat->nr_held) *
					    (long long)r->mem_bytes);
	else
		fputs(",", f);
	csv_ratio(f, dens_ratio(r, stat));
	csv_ratio(f, dens_ratio(r, mom));
	csv_i64(f, r->resident_bytes);
	csv_i64(f, r->balloon_bytes);
	csv_i64(f, r->compressed_bytes);
	csv_i64(f, r->file_bytes);
	csv_i64(f, r->ksm_bytes);
	csv_i64(f, r->bal_balloon_bytes);
	csv_i64(f, r->bal_high_bytes);
	csv_i64(f, r->bal_ksm_bytes);
	fputc('\n', f);
}
