/*
 * balancer.c — ebbd's balancer (first version: pool accounting, names,
 * trace and formatting; the decisions follow).  See balancer.h.
 */
#include "host-reclaim/balancer.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ebb_balancer {
	struct ebb_bal_cfg cfg;
	struct ebb_pool_wmarks wm;
	bool wm_valid;
	struct ebb_pool_boost boost;
	struct ebb_bal_pool_state pool;
	uint64_t last_now_ns;
	struct ebb_bal_action trace[EBB_BAL_TRACE_LEN];
	size_t trace_head, trace_nr;
};

static const char *const policy_names[EBB_BAL_NR_POLICIES] = { "ebb", "mom", "static" };

const char *ebb_bal_policy_name(enum ebb_bal_policy p)
{
	return (unsigned)p < EBB_BAL_NR_POLICIES ? policy_names[p] : NULL;
}

int ebb_bal_policy_parse(const char *name, enum ebb_bal_policy *out)
{
	for (unsigned i = 0; name && i < EBB_BAL_NR_POLICIES; i++) {
		if (strcmp(name, policy_names[i]) == 0) {
			*out = (enum ebb_bal_policy)i;
			return 0;
		}
	}
	return -EINVAL;
}

const char *ebb_bal_state_name(enum ebb_bal_state s)
{
	switch (s) {
	case EBB_BAL_SLEEPING: return "sleeping";
	case EBB_BAL_BALANCING: return "balancing";
	case EBB_BAL_DIRECT_CLAMP: return "direct-clamp";
	}
	return "?";
}

static const char *const action_names[EBB_BAL_NR_ACTIONS] = {
	"balloon", "set-high", "clamp-max", "lift-clamp", "ksm-advise",
	"agent-drop-cache", "agent-reclaim", "ksmd",
};

const char *ebb_bal_action_name(enum ebb_bal_action_kind k)
{
	return (unsigned)k < EBB_BAL_NR_ACTIONS ? action_names[k] : "?";
}

static const char *const reason_names[EBB_BAL_NR_REASONS] = {
	"reclaim", "direct", "lift", "pressure", "for-pressure", "grow", "stuck",
	"protect", "ksm-cold", "ksm-unprofitable", "ksmd-yield", "mom-shrink",
	"mom-grow", "leave",
};

const char *ebb_bal_reason_name(enum ebb_bal_reason r)
{
	return (unsigned)r < EBB_BAL_NR_REASONS ? reason_names[r] : "?";
}

static const char *const source_names[EBB_BAL_NR_SOURCES] = { "balloon", "high", "ksm" };

const char *ebb_bal_source_name(enum ebb_bal_source s)
{
	return (unsigned)s < EBB_BAL_NR_SOURCES ? source_names[s] : "-";
}

int ebb_bal_create(const struct ebb_bal_cfg *cfg, struct ebb_balancer **out)
{
	struct ebb_balancer *b;

	if (!out)
		return -EINVAL;
	*out = NULL;
	if (!cfg || (unsigned)cfg->policy >= EBB_BAL_NR_POLICIES)
		return -EINVAL;
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->cfg = *cfg;
	if (cfg->pool.budget_bytes) {
		if (ebb_pool_wmarks_compute(&cfg->pool, 0, &b->wm) < 0) {
			free(b);
			return -EINVAL;
		}
		b->wm_valid = true;
	}
	b->pool.policy = cfg->policy;
	b->pool.priority = -1;
	*out = b;
	return 0;
}

void ebb_bal_destroy(struct ebb_balancer *bal)
{
	free(bal);
}

int ebb_bal_set_policy(struct ebb_balancer *bal, enum ebb_bal_policy p)
{
	if (!bal || (unsigned)p >= EBB_BAL_NR_POLICIES)
		return -EINVAL;
	bal->cfg.policy = p;
	bal->pool.policy = p;
	return 0;
}

int ebb_bal_step(struct ebb_balancer *bal, uint64_t now_ns,
		 const struct ebb_bal_host_obs *host,
		 const struct ebb_bal_vm_obs *vms, size_t nr_vms,
		 struct ebb_bal_action *actions, size_t max_actions,
		 size_t *nr_actions)
{
	uint64_t used = 0;

	if (!bal || !host || (nr_vms && !vms) || (max_actions && !actions) || !nr_actions)
		return -EINVAL;
	if (nr_vms > EBB_BAL_MAX_VMS)
		return -EINVAL;
	*nr_actions = 0;
	if (now_ns < bal->last_now_ns) {
		bal->pool.stats.nr_bad_host_obs++;
		now_ns = bal->last_now_ns;
	}
	bal->last_now_ns = now_ns;
	if (!bal->wm_valid) {
		if (ebb_pool_wmarks_compute(&bal->cfg.pool, host->mem_total_bytes, &bal->wm) < 0) {
			bal->pool.stats.nr_bad_host_obs++;
			return 0;
		}
		bal->wm_valid = true;
	}
	for (size_t i = 0; i < nr_vms; i++)
		used += vms[i].resident_bytes;
	used += host->host_used_bytes;
	bal->pool.stats.nr_steps++;
	bal->pool.budget_bytes = bal->wm.budget_bytes;
	bal->pool.used_bytes = used;
	bal->pool.free_bytes = used < bal->wm.budget_bytes ? bal->wm.budget_bytes - used : 0;
	bal->pool.wmark_min_bytes = bal->wm.min_bytes;
	bal->pool.wmark_low_bytes = bal->wm.low_bytes;
	bal->pool.wmark_high_bytes = bal->wm.high_bytes;
	bal->pool.boost_bytes = bal->boost.boost_bytes;
	bal->pool.nr_vms = (uint32_t)nr_vms;
	bal->pool.next_step_ns = now_ns + 1000000000ULL;
	return 0;
}

void ebb_bal_get_pool(const struct ebb_balancer *bal, struct ebb_bal_pool_state *out)
{
	*out = bal->pool;
}

int ebb_bal_get_vm(const struct ebb_balancer *bal, uint64_t id, struct ebb_bal_vm_state *out)
{
	(void)bal;
	(void)id;
	memset(out, 0, sizeof(*out));
	return -ENOENT;
}

size_t ebb_bal_trace(const struct ebb_balancer *bal, struct ebb_bal_action *out, size_t max)
{
	size_t n = bal->trace_nr < max ? bal->trace_nr : max;
	size_t start = (bal->trace_head + EBB_BAL_TRACE_LEN - bal->trace_nr) % EBB_BAL_TRACE_LEN;

	/* the newest n of them, oldest first */
	start = (start + (bal->trace_nr - n)) % EBB_BAL_TRACE_LEN;
	for (size_t i = 0; i < n; i++)
		out[i] = bal->trace[(start + i) % EBB_BAL_TRACE_LEN];
	return n;
}

static void fmt_cost(char *buf, size_t len, uint32_t c)
{
	if (c == UINT32_MAX)
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, "%" PRIu32, c);
}

int ebb_bal_format_action(const struct ebb_bal_action *a, const char *name,
			  char *buf, size_t len)
{
	char idbuf[32], c[EBB_BAL_NR_SOURCES][16];
	const struct ebb_bal_why *w = &a->why;

	if (!name) {
		snprintf(idbuf, sizeof(idbuf), a->vm_id ? "vm#%" PRIu64 : "host", a->vm_id);
		name = idbuf;
	}
	for (int i = 0; i < EBB_BAL_NR_SOURCES; i++)
		fmt_cost(c[i], sizeof(c[i]), w->cost_milli[i]);
	return snprintf(buf, len,
			"%s %s %" PRIu64 " %" PRIu64 " lease=%" PRIu32 "ms: %s src=%s prio=%d"
			" free=%" PRIu64 " min=%" PRIu64 " low=%" PRIu64 " high=%" PRIu64
			" want=%" PRIu64 " cost=[%s %s %s]",
			name, ebb_bal_action_name(a->kind), a->value, a->value2, a->lease_ms,
			ebb_bal_reason_name(w->reason), ebb_bal_source_name(w->source),
			w->priority, w->free_bytes, w->wmark_min_bytes, w->wmark_low_bytes,
			w->wmark_high_bytes, w->want_bytes, c[0], c[1], c[2]);
}
