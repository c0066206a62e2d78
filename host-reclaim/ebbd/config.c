/*
 * host-reclaim/ebbd/config.c — /etc/ebb/ebbd.conf (see config.h).
 *
 * libinih calls handler() once per "key = value" in order; the first error
 * is kept and every later line is ignored, so the operator gets one clear
 * message.  Debian's libinih is built without the line number in the
 * handler, so ebb feeds it through its own reader, which counts lines: the
 * line a handler call refuses is the last one read.  ini_parse_stream()
 * returns the line of the first error, the handler's or its own (a line
 * that is not INI); when they differ the earlier one, a syntax error, is
 * reported.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <ini.h>

#include "client/rundir.h"
#include "client/size.h"
#include "host-reclaim/ebbd/config.h"
#include "host-reclaim/ebbd/metrics.h"

struct parse {
	struct ebbd_file_cfg *c;
	char err[400];
	bool failed;
	int err_line;                  /* the line handler() refused */
	int lineno;                    /* lines read so far: the one being parsed */
	FILE *f;                       /* the input: a file, or ... */
	const char *s;                 /* ... a string */
	/* keys seen in the current section (duplicates are errors) */
	char section[96];
	char seen[32][32];
	unsigned nr_seen;
};

static int bad(char *err, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int bad(char *err, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static int parse_size(const char *key, const char *v, uint64_t *out, char *err, size_t len)
{
	if (vmm_parse_size(v, 1ull << 20, out))
		return bad(err, len, "%s: cannot read \"%.64s\" as a size (e.g. 640M, 2G; a bare "
			   "number is MiB)", key, v);
	return 0;
}

static int parse_uint(const char *key, const char *v, uint32_t lo, uint32_t hi, uint32_t *out,
		      char *err, size_t len)
{
	char *end;
	unsigned long n;

	errno = 0;
	n = strtoul(v, &end, 10);
	if (errno || end == v || *end || v[0] == '-' || v[0] == '+' || n < lo || n > hi)
		return bad(err, len, "%s: expected a whole number from %u to %u, got \"%.64s\"", key,
			   lo, hi, v);
	*out = (uint32_t)n;
	return 0;
}

static int parse_bool(const char *key, const char *v, bool *out, char *err, size_t len)
{
	if (!strcasecmp(v, "true") || !strcasecmp(v, "yes") || !strcasecmp(v, "on") ||
	    !strcmp(v, "1")) {
		*out = true;
		return 0;
	}
	if (!strcasecmp(v, "false") || !strcasecmp(v, "no") || !strcasecmp(v, "off") ||
	    !strcmp(v, "0")) {
		*out = false;
		return 0;
	}
	return bad(err, len, "%s: expected true or false, got \"%.64s\"", key, v);
}

static int set_vm(struct ebbd_vm_settings *s, const char *sect, const char *key, const char *v,
		  char *err, size_t len)
{
	int ret;

	if (!strcmp(key, "min")) {
		ret = parse_size(key, v, &s->min_bytes, err, len);
		s->has_min |= !ret;
	} else if (!strcmp(key, "low")) {
		ret = parse_size(key, v, &s->low_bytes, err, len);
		s->has_low |= !ret;
	} else if (!strcmp(key, "weight")) {
		ret = parse_uint(key, v, 1, EBB_BAL_MAX_WEIGHT, &s->weight, err, len);
		s->has_weight |= !ret;
	} else if (!strcmp(key, "ksm_allowed")) {
		ret = parse_bool(key, v, &s->ksm_allowed, err, len);
		s->has_ksm_allowed |= !ret;
	} else if (!strcmp(key, "opt_out")) {
		ret = parse_bool(key, v, &s->opt_out, err, len);
		s->has_opt_out |= !ret;
	} else {
		return bad(err, len, "unknown key \"%.32s\" in [%.80s] (known: min, low, weight, "
			   "ksm_allowed, opt_out)", key, sect);
	}
	if (!ret && s->has_min && s->has_low && s->low_bytes < s->min_bytes)
		return bad(err, len, "low (%llu bytes) must not be below min (%llu bytes)",
			   (unsigned long long)s->low_bytes, (unsigned long long)s->min_bytes);
	return ret;
}

static struct ebbd_vm_rule *vm_rule(struct ebbd_file_cfg *c, const char *name, char *err,
				    size_t len)
{
	struct ebbd_vm_rule *r;
	size_t i;

	for (i = 0; i < c->nr_vms; i++)
		if (!strcmp(c->vms[i].name, name))
			return &c->vms[i];
	if (!vmm_name_valid(name) || strlen(name) >= EBB_BAL_NAME_MAX) {
		bad(err, len, "[vm %.80s]: not a valid VM name (letters, digits, '.', '_', '-'; "
		    "at most %d characters)", name, EBB_BAL_NAME_MAX - 1);
		return NULL;
	}
	if (c->nr_vms >= EBBD_CONFIG_MAX_VMS) {
		bad(err, len, "more than %u [vm NAME] sections", EBBD_CONFIG_MAX_VMS);
		return NULL;
	}
	r = realloc(c->vms, (c->nr_vms + 1) * sizeof(*r));
	if (!r) {
		bad(err, len, "out of memory");
		return NULL;
	}
	c->vms = r;
	r = &c->vms[c->nr_vms++];
	memset(r, 0, sizeof(*r));
	memcpy(r->name, name, strlen(name) + 1);
	return r;
}

int ebbd_config_set(struct ebbd_file_cfg *c, const char *section, const char *key,
		    const char *v, char *err, size_t len)
{
	int ret = 0;

	if (!strcmp(section, "pool")) {
		if (!strcmp(key, "budget")) {
			size_t n = strlen(v);
			uint64_t bytes = 0;
			uint32_t pct_v = 0;

			if (n && v[n - 1] == '%') {
				char pct[8];

				if (n > sizeof(pct))
					return bad(err, len, "budget: bad percentage \"%.64s\" (1%% to "
						   "100%% of MemTotal)", v);
				memcpy(pct, v, n - 1);
				pct[n - 1] = '\0';
				ret = parse_uint("budget (percent of MemTotal)", pct, 1, 100, &pct_v,
						 err, len);
			} else {
				ret = parse_size(key, v, &bytes, err, len);
				if (!ret && !bytes)
					ret = bad(err, len, "budget: must be more than 0");
			}
			if (!ret) {
				c->budget_bytes = bytes;
				c->budget_percent = pct_v;
				c->has_budget = true;
			}
		} else if (!strcmp(key, "wmark_min")) {
			ret = parse_size(key, v, &c->wmark_min_bytes, err, len);
			c->has_wmark_min |= !ret;
		} else if (!strcmp(key, "wmark_low")) {
			ret = parse_size(key, v, &c->wmark_low_bytes, err, len);
			c->has_wmark_low |= !ret;
		} else if (!strcmp(key, "wmark_high")) {
			ret = parse_size(key, v, &c->wmark_high_bytes, err, len);
			c->has_wmark_high |= !ret;
		} else if (!strcmp(key, "policy")) {
			ret = ebb_bal_policy_parse(v, &c->policy);
			if (ret)
				ret = bad(err, len, "policy: one of ebb, mom, static (got \"%.64s\")", v);
			c->has_policy |= !ret;
		} else if (!strcmp(key, "vms_only")) {
			ret = parse_bool(key, v, &c->vms_only, err, len);
			c->has_vms_only |= !ret;
		} else if (!strcmp(key, "tick_ms")) {
			/* under the VMs' 30 s idle-client timeout */
			ret = parse_uint(key, v, 10, 20000, &c->tick_ms, err, len);
			c->has_tick_ms |= !ret;
		} else if (!strcmp(key, "lease_ms")) {
			ret = parse_uint(key, v, 100, 600000, &c->lease_ms, err, len);
			c->has_lease_ms |= !ret;
		} else if (!strcmp(key, "ksm")) {
			ret = parse_bool(key, v, &c->ksm, err, len);
			c->has_ksm |= !ret;
		} else if (!strcmp(key, "rundir")) {
			if (v[0] != '/' || strlen(v) >= sizeof(c->rundir))
				return bad(err, len, "rundir: an absolute path of at most %zu characters",
					   sizeof(c->rundir) - 1);
			snprintf(c->rundir, sizeof(c->rundir), "%s", v);
			c->has_rundir = true;
		} else {
			return bad(err, len, "unknown key \"%.32s\" in [pool] (known: budget, wmark_min, "
				   "wmark_low, wmark_high, policy, vms_only, tick_ms, lease_ms, ksm, "
				   "rundir)", key);
		}
		return ret;
	}
	if (!strcmp(section, "metrics")) {
		if (strcmp(key, "listen") != 0)
			return bad(err, len, "unknown key \"%.32s\" in [metrics] (known: listen)", key);
		if (strlen(v) >= sizeof(c->metrics))
			return bad(err, len, "listen: too long");
		{
			struct sockaddr_storage ss;
			unsigned sl;
			bool off;

			if (ebbd_metrics_parse_addr(v, &ss, &sl, &off))
				return bad(err, len, "listen: expected IPV4:PORT, [IPV6]:PORT or off "
					   "(got \"%.64s\")", v);
		}
		snprintf(c->metrics, sizeof(c->metrics), "%s", v);
		c->has_metrics = true;
		return 0;
	}
	if (!strcmp(section, "vm"))
		return set_vm(&c->vm_default, section, key, v, err, len);
	if (!strncmp(section, "vm ", 3)) {
		const char *name = section + 3;
		struct ebbd_vm_rule *r;
		char unq[EBB_BAL_NAME_MAX + 2];
		size_t n;

		while (*name == ' ')
			name++;
		n = strlen(name);
		if (n >= 2 && name[0] == '"' && name[n - 1] == '"' && n - 2 < sizeof(unq)) {
			memcpy(unq, name + 1, n - 2);
			unq[n - 2] = '\0';
			name = unq;
		}
		r = vm_rule(c, name, err, len);
		if (!r)
			return -EINVAL;
		return set_vm(&r->s, section, key, v, err, len);
	}
	return bad(err, len, "unknown section [%.80s] (known: [pool], [metrics], [vm], [vm NAME])",
		   section);
}

static int handler(void *user, const char *section, const char *name, const char *value)
{
	struct parse *p = user;
	unsigned i;

	if (p->failed)
		return 1;    /* one error is reported: the first */
	if (strcmp(p->section, section) != 0) {
		snprintf(p->section, sizeof(p->section), "%s", section);
		p->nr_seen = 0;
	}
	for (i = 0; i < p->nr_seen; i++) {
		if (!strcmp(p->seen[i], name)) {
			snprintf(p->err, sizeof(p->err), "\"%.32s\" given twice in [%.80s]", name,
				 section);
			p->failed = true;
			p->err_line = p->lineno;
			return 0;
		}
	}
	if (p->nr_seen < sizeof(p->seen) / sizeof(p->seen[0]))
		snprintf(p->seen[p->nr_seen++], sizeof(p->seen[0]), "%s", name);
	if (!section[0]) {
		snprintf(p->err, sizeof(p->err), "\"%.32s\" outside any section (start with [pool])",
			 name);
		p->failed = true;
		p->err_line = p->lineno;
		return 0;
	}
	if (ebbd_config_set(p->c, section, name, value, p->err, sizeof(p->err))) {
		p->failed = true;
		p->err_line = p->lineno;
		return 0;
	}
	return 1;
}

/* libinih's reader: one line per call, counted (see the top). */
static char *reader(char *str, int num, void *stream)
{
	struct parse *p = stream;
	size_t n = 0;

	if (p->f) {
		if (!fgets(str, num, p->f))
			return NULL;
	} else {
		if (!p->s || !*p->s || num < 2)
			return NULL;
		while (p->s[n] && p->s[n] != '\n' && n + 1 < (size_t)num - 1)
			n++;
		if (p->s[n] == '\n')
			n++;
		memcpy(str, p->s, n);
		str[n] = '\0';
		p->s += n;
	}
	p->lineno++;
	return str;
}

static int finish(const char *name, int line, struct parse *p, char *err, size_t err_len)
{
	int e = errno ? errno : ENOENT;

	if (line == 0)
		return 0;
	if (line == -1)
		snprintf(err, err_len, "%s: %s", name, strerror(e));
	else if (line == -2)
		snprintf(err, err_len, "%s: out of memory", name);
	else if (p->failed && p->err_line == line)
		snprintf(err, err_len, "%s:%d: %s", name, line, p->err);
	else
		snprintf(err, err_len, "%s:%d: not INI (expected [section], key = value, or a "
			 "comment starting with ; or #)", name, line);
	ebbd_config_release(p->c);
	return line == -1 ? -e : line == -2 ? -ENOMEM : -EINVAL;
}

int ebbd_config_load(const char *path, struct ebbd_file_cfg *out, char *err, size_t err_len)
{
	struct parse p = { .c = out };
	int line;

	memset(out, 0, sizeof(*out));
	p.f = fopen(path, "re");
	if (!p.f)
		return finish(path, -1, &p, err, err_len);
	line = ini_parse_stream(reader, &p, handler, &p);
	fclose(p.f);
	return finish(path, line, &p, err, err_len);
}

int ebbd_config_load_string(const char *name, const char *text, struct ebbd_file_cfg *out,
			    char *err, size_t err_len)
{
	struct parse p = { .c = out };
	int line;

	memset(out, 0, sizeof(*out));
	p.s = text;
	line = ini_parse_stream(reader, &p, handler, &p);
	return finish(name, line, &p, err, err_len);
}

void ebbd_config_release(struct ebbd_file_cfg *c)
{
	free(c->vms);
	c->vms = NULL;
	c->nr_vms = 0;
}

static void merge_vm(const struct ebbd_vm_settings *top, struct ebbd_vm_settings *out)
{
	if (top->has_min) {
		out->has_min = true;
		out->min_bytes = top->min_bytes;
	}
	if (top->has_low) {
		out->has_low = true;
		out->low_bytes = top->low_bytes;
	}
	if (top->has_weight) {
		out->has_weight = true;
		out->weight = top->weight;
	}
	if (top->has_ksm_allowed) {
		out->has_ksm_allowed = true;
		out->ksm_allowed = top->ksm_allowed;
	}
	if (top->has_opt_out) {
		out->has_opt_out = true;
		out->opt_out = top->opt_out;
	}
}

void ebbd_config_merge(const struct ebbd_file_cfg *base, const struct ebbd_file_cfg *top,
		       struct ebbd_file_cfg *out)
{
	*out = *base;
#define TAKE(flag, ...) do { if (top->flag) { out->flag = true; __VA_ARGS__; } } while (0)
	TAKE(has_budget, out->budget_bytes = top->budget_bytes;
	     out->budget_percent = top->budget_percent);
	TAKE(has_wmark_min, out->wmark_min_bytes = top->wmark_min_bytes);
	TAKE(has_wmark_low, out->wmark_low_bytes = top->wmark_low_bytes);
	TAKE(has_wmark_high, out->wmark_high_bytes = top->wmark_high_bytes);
	TAKE(has_policy, out->policy = top->policy);
	TAKE(has_vms_only, out->vms_only = top->vms_only);
	TAKE(has_tick_ms, out->tick_ms = top->tick_ms);
	TAKE(has_lease_ms, out->lease_ms = top->lease_ms);
	TAKE(has_ksm, out->ksm = top->ksm);
	TAKE(has_rundir, memcpy(out->rundir, top->rundir, sizeof(out->rundir)));
	TAKE(has_metrics, memcpy(out->metrics, top->metrics, sizeof(out->metrics)));
#undef TAKE
	merge_vm(&top->vm_default, &out->vm_default);
}

void ebbd_config_to_cfg(const struct ebbd_file_cfg *c, struct ebbd_cfg *cfg)
{
	cfg->bal.policy = c->has_policy ? c->policy : EBB_BAL_POLICY_EBB;
	cfg->bal.pool.budget_bytes = c->has_budget ? c->budget_bytes : 0;
	cfg->bal.pool.budget_percent = c->has_budget ? c->budget_percent : 0;
	cfg->bal.pool.wmark_min_bytes = c->has_wmark_min ? c->wmark_min_bytes : 0;
	cfg->bal.pool.wmark_low_bytes = c->has_wmark_low ? c->wmark_low_bytes : 0;
	cfg->bal.pool.wmark_high_bytes = c->has_wmark_high ? c->wmark_high_bytes : 0;
	cfg->vms_only = c->has_vms_only && c->vms_only;
	cfg->tick_ms = c->has_tick_ms ? c->tick_ms : 0;
	cfg->bal.step_ms = cfg->tick_ms;
	cfg->bal.lease_ms = c->has_lease_ms ? c->lease_ms : 0;
	cfg->ksm_dir = c->has_ksm && !c->ksm ? "" : NULL;
	cfg->rundir = c->has_rundir ? c->rundir : NULL;
	cfg->vm_default = c->vm_default;
	cfg->vm_rules = c->vms;
	cfg->nr_vm_rules = c->nr_vms;
}
