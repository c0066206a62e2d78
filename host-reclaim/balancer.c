/*
 * balancer.c — ebbd's balancer: the host's kswapd across VMs (see balancer.h
 * for the contract with the daemon, docs/ebbd.md for the operator's view).
 *
 * Overview (after Linux's balance_pgdat / shrink_node_memcgs, the seeds)
 * ----------------------------------------------------------------------
 * The pool is the zone: free = budget - used, where used is the VMs'
 * resident memory (compressed tier included) plus what the host uses itself,
 * never more optimistic than MemAvailable.  Watermarks min < low < high come
 * from pool.c; a boost raises low and high after a burst and decays.
 *
 * Each step (policy "ebb"):
 *  1. Enter what was observed.  Every VM number is validated and clamped
 *     (GUEST input), counters that went backwards restart their baseline,
 *     rates come from deltas: refaults/s, PSI some/full %, swap-in latency,
 *     agent pressure messages.  The working set is estimated per VM: the
 *     host-seen histogram by idle age (bytes used in the last
 *     EBB_BAL_WS_AGE0_MS << WS_ACTIVE_BUCKET), cross-checked with what the
 *     agent says is in use (RAM - balloon - free - reclaimable cache); the
 *     larger of the two wins, so a wrong agent can only make us gentler.
 *  2. State machine (kswapd): SLEEPING while free >= low.  Below low:
 *     BALANCING at priority 12 until free (plus what is already in flight:
 *     balloon targets not reached beyond non-resident guest free memory,
 *     highs below the VM's RAM) >= high; below min: DIRECT_CLAMP, every VM's
 *     max clamped at its RAM (never below its min) with a lease, renewed at
 *     half-lease, lifted at >= low.  "RAM" is resident minus the compressed
 *     tier: what high and max limit.
 *  3. Balloons that do not converge (no progress for balloon_stuck_ms) are
 *     re-targeted to what they reached, and ballooning that VM pauses.
 *  4. Agent pressure: a new pressure message gives memory back at once
 *     (deflate, else raise high) up to need_bytes, capped per round, by the
 *     VM's max and, beyond its share of the budget (guest size x weight),
 *     to memory the pool does not need.  What free memory above low cannot
 *     cover is added to the reclaim want.  Refaults or PSI under a high we
 *     lowered do the same (give_back with reason "refaults"), and being
 *     measured rather than claimed may also take what other VMs hold cold
 *     (unused for over EBB_BAL_WS_AGE0_MS << WS_COLD_BUCKET: a VM that
 *     refaults now reuses what it lost within seconds, so memory left
 *     unused that long elsewhere is colder, and Linux's one LRU would
 *     reclaim it first).
 *     After a deflate the VM is not inflated again for a hold-off time; a
 *     high raised for refaults is not lowered again for as long, except
 *     below min (DIRECT_CLAMP), where the costs decide.
 *  5. Reclaim round (shrink_node_memcgs): want = high + deficit - (free +
 *     in flight), the deficit being used beyond the budget.
 *     At priority P each VM may give, per source, at most
 *     (resident >> P) * 100 / weight, and never below its protection: its
 *     low on the first pass, its min on a second pass that runs only when
 *     the first one found nothing (memory.low semantics).  Candidates
 *     (VM, source) are sorted by estimated marginal cost and taken
 *     cheapest first until want is covered; if the cheap tier (costs within
 *     2x of the cheapest) cannot cover it the priority drops by one and the
 *     round is redone (as do_try_to_free_pages loops priorities), down to
 *     CHEAP_TIER_PRIORITY; below it the whole set must cover want and
 *     working sets become reclaimable.  Equal costs rotate their starting
 *     VM per round (mem_cgroup_iter's cookie).  The priority reached is
 *     kept across steps while balancing, reset to 12 when balanced.
 *  6. Growing back (free >= high + gap): VMs that show need (refaults, PSI,
 *     little guest free memory) get their balloon deflated (fast: up to
 *     deflate_cap_percent) or their high raised, within half of the free
 *     memory above high per step.  Inflating is slow (inflate_cap_percent
 *     per step) and moves smaller than the dead band are not made.
 *  7. KSM steering: see ksm_steer() below.
 *
 * Sources and their estimated marginal cost (milli-units; lower is cheaper):
 *   balloon  100 x (1 + PSI some/5 + 10 if the agent reported pressure in the
 *            last minute); only with a fresh agent report (what the guest
 *            does not need: free above its reserve + clean cache).  The
 *            balloon first passes guest free memory the host holds no page
 *            of (free page reporting), which saves nothing; it never goes
 *            into the working set.  With no balloon: an agent reclaim request.
 *   high     1000 x (1 + refaults/s / 100 + PSI some/2 + PSI full +
 *            swap-in latency us / 50); cold memory only (resident above the
 *            working set), or into the working set at priority < 3 at 4x cost
 *   ksm      500 x (1 + refaults/s / 100 + PSI some/2); VMs mostly idle
 *            (idle >= half of resident), operator opt-in, yield estimated
 *            from what the VM merged before (10% of idle memory at first)
 * Weights divide the cost (cost * 100 / weight): a VM with weight 200 is
 * twice as expensive to take from; above its share a VM costs a quarter;
 * within it, a VM faulting in new RAM (> 1 MiB/s, smoothed) costs 8x.
 *
 * Policy "mom" is in policy_mom(); "static" does nothing (ebb_bal_step).
 *
 * No locking here; see balancer.h.
 */
#include "host-reclaim/balancer.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/page.h"

#define NS_PER_MS 1000000ULL
#define NS_PER_S 1000000000ULL
#define MIB (1ULL << 20)
#define PIB (1ULL << 50)

#define DEF_STEP_MS 1000u
#define DEF_IDLE_STEP_MS 5000u
#define DEF_LEASE_MS 30000u
#define DEF_INFLATE_CAP_PCT 5u
#define DEF_DEFLATE_CAP_PCT 25u
#define DEF_DEAD_BAND_PCT 1u
#define DEF_STUCK_MS 30000u
#define DEF_MOM_INTERVAL_MS 10000u

#define AGENT_STALE_NS (30ULL * NS_PER_S)   /* an older report is not used */
#define HOLD_INFLATE_NS (60ULL * NS_PER_S)  /* after a deflate, no inflate */
#define RAISE_PERIOD_NS (10ULL * NS_PER_S)  /* refault raises at most this often */
#define STUCK_PAUSE_NS (300ULL * NS_PER_S)  /* after a stuck balloon */
#define PRESSURE_RECENT_NS (60ULL * NS_PER_S)
#define WS_ACTIVE_BUCKET 5                  /* used within 32 s */
#define WS_COLD_BUCKET 3                    /* cold: unused for over 8 s */
#define GROW_REFAULT_PER_S 50.0             /* need signals for growing back */
#define GROW_PSI_SOME 5.0
#define GROWING_BYTES_PER_S (1.0 * MIB)     /* RAM faulted in faster: in use */
#define GROWING_COST_FACTOR 8.0
#define KSM_PERIOD_NS (30ULL * NS_PER_S)
#define KSM_TRIAL_NS (120ULL * NS_PER_S)
#define KSM_OFF_NS (1800ULL * NS_PER_S)
#define KSMD_MIN_SCAN 50u
#define KSMD_START_SCAN 100u
#define KSMD_MAX_SCAN 5000u
#define KSMD_SLEEP_MS 20u
#define KSMD_GOOD_YIELD 20000u              /* merged pages per ksmd CPU-second */
#define KSMD_POOR_YIELD 1000u
#define COST_NA UINT32_MAX
#define CHEAP_TIER_PRIORITY 3               /* below: reclaim into working sets */

struct bal_vm {
	struct ebb_bal_vm_obs in;       /* this step's observation, sanitised */
	uint32_t obs_index;             /* its index in the caller's vms[] */
	bool agent_fresh;
	/* baselines of the cumulative counters */
	uint64_t prev_ns;
	uint64_t prev_refaults, prev_swapins, prev_swapin_ns, prev_psi_some, prev_psi_full;
	uint64_t prev_nr_pressure;
	uint64_t prev_ram;
	/* derived signals */
	double refault_rate;            /* pages/s, smoothed */
	double grow_rate;               /* RAM faulted in, bytes/s, smoothed (>= 0) */
	double psi_some_pct, psi_full_pct;
	double swapin_lat_us;
	uint64_t ws_bytes, idle_bytes;
	uint64_t cold_bytes;            /* RAM unused beyond WS_COLD_BUCKET */
	uint64_t nonres_free;           /* guest free memory the host holds no page of
					 * (free page reporting): ballooning it saves
					 * nothing, but the balloon takes it first */
	uint32_t cost[EBB_BAL_NR_SOURCES];
	bool excluded;                  /* not a reclaim source this step */
	/* balloon */
	bool balloon_owned;
	uint64_t balloon_target;        /* bytes in the balloon we asked for */
	uint64_t balloon_progress_ns, balloon_progress_actual;
	uint64_t hold_inflate_until_ns;
	uint64_t hold_high_until_ns;    /* a high we raised is not lowered before */
	uint64_t next_raise_ns;
	uint64_t balloon_paused_until_ns;
	int balloon_dir;                /* +1 inflate, -1 deflate, 0 none yet */
	uint64_t nr_sign_changes;
	/* high */
	uint64_t high;                  /* what we set; EBB_BAL_NO_LIMIT = not ours */
	/* clamp */
	bool clamped;
	uint64_t lease_end_ns, renew_ns;
	/* pressure */
	uint64_t nr_pressure, last_pressure_ns;
	/* KSM */
	bool ksm_ours;
	uint64_t ksm_on_ns, ksm_off_until_ns;
	double ksm_ratio;               /* merged/idle measured when last advised; <0 unknown */
	/* mom */
	uint64_t mom_next_ns;
};

struct ebb_balancer {
	struct ebb_bal_cfg cfg;
	struct ebb_pool_wmarks wm;
	bool wm_valid;
	struct ebb_pool_boost boost;
	struct ebb_bal_pool_state pool;
	uint64_t last_now_ns;
	bool stepped;
	enum ebb_bal_state state;
	int priority;
	uint64_t prev_free;
	bool undo_pending;              /* left policy ebb: undo our settings */
	/* VMs of the last step, and an id -> index hash over them */
	struct bal_vm *vm, *vm_next;
	size_t nr_vm, cap_vm;
	uint32_t *hash;
	size_t hash_size;
	/* ksmd */
	bool ksmd_ours;
	uint32_t ksmd_scan;
	uint64_t ksm_next_ns, ksm_prev_sharing, ksm_prev_cpu_ns, ksmd_hold_until_ns;
	bool ksm_have_prev;
	/* mom */
	uint64_t mom_next_ns;
	size_t rr;                      /* round-robin start among equal costs */
	/* trace ring */
	struct ebb_bal_action trace[EBB_BAL_TRACE_LEN];
	size_t trace_head, trace_nr;
	struct ebb_ratelimit rl_vm, rl_agent, rl_host;
};

struct step {
	uint64_t now;
	struct ebb_bal_action *out;
	size_t max, n;
	uint64_t free, min, low, high;  /* low/high with boost */
	uint64_t deficit;               /* used beyond the budget (free is 0 then) */
	uint64_t idle_total;            /* resident above the working sets, all VMs */
	uint64_t cold_total;            /* their cold memory, all VMs */
	uint64_t want;
};

/* --- names ------------------------------------------------------------- */

static const char *const policy_names[EBB_BAL_NR_POLICIES] = { "ebb", "mom", "static" };

const char *ebb_bal_policy_name(enum ebb_bal_policy p)
{
	return (unsigned)p < EBB_BAL_NR_POLICIES ? policy_names[p] : NULL;
}

int ebb_bal_policy_parse(const char *name, enum ebb_bal_policy *out)
{
	for (unsigned i = 0; name && out && i < EBB_BAL_NR_POLICIES; i++) {
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
	"mom-grow", "leave", "refaults",
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

/* --- small helpers ------------------------------------------------------ */

static uint64_t min_u64(uint64_t a, uint64_t b) { return a < b ? a : b; }
static uint64_t max_u64(uint64_t a, uint64_t b) { return a > b ? a : b; }
static uint64_t sub_sat(uint64_t a, uint64_t b) { return a > b ? a - b : 0; }

static uint64_t add_sat(uint64_t a, uint64_t b)
{
	uint64_t r;

	return __builtin_add_overflow(a, b, &r) ? UINT64_MAX : r;
}

static uint64_t pct_of(uint64_t v, uint32_t pct)
{
	return v / 100 * pct + v % 100 * pct / 100;
}

static uint64_t page_down(uint64_t v) { return v & ~(EBB_PAGE_BYTES - 1); }

/* Clamp *v to [lo, hi]; true if it had to. */
static bool clamp_u64(uint64_t *v, uint64_t lo, uint64_t hi)
{
	if (*v < lo) {
		*v = lo;
		return true;
	}
	if (*v > hi) {
		*v = hi;
		return true;
	}
	return false;
}

static double ratio(uint64_t a, uint64_t b)
{
	double r = b ? (double)a / (double)b : 0.0;

	return r > 1.0 ? 1.0 : r;
}

static uint32_t cfg_or(uint32_t v, uint32_t def) { return v ? v : def; }

/* --- create / destroy / policy ------------------------------------------ */

int ebb_bal_create(const struct ebb_bal_cfg *cfg, struct ebb_balancer **out)
{
	struct ebb_balancer *b;

	if (!out)
		return -EINVAL;
	*out = NULL;
	if (!cfg || (unsigned)cfg->policy >= EBB_BAL_NR_POLICIES)
		return -EINVAL;
	if (cfg->inflate_cap_percent > 100 || cfg->deflate_cap_percent > 100 ||
	    cfg->dead_band_percent > 50)
		return -EINVAL;
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->cfg = *cfg;
	b->cfg.step_ms = cfg_or(cfg->step_ms, DEF_STEP_MS);
	b->cfg.idle_step_ms = cfg_or(cfg->idle_step_ms, DEF_IDLE_STEP_MS);
	b->cfg.lease_ms = cfg_or(cfg->lease_ms, DEF_LEASE_MS);
	b->cfg.inflate_cap_percent = cfg_or(cfg->inflate_cap_percent, DEF_INFLATE_CAP_PCT);
	b->cfg.deflate_cap_percent = cfg_or(cfg->deflate_cap_percent, DEF_DEFLATE_CAP_PCT);
	b->cfg.dead_band_percent = cfg_or(cfg->dead_band_percent, DEF_DEAD_BAND_PCT);
	b->cfg.balloon_stuck_ms = cfg_or(cfg->balloon_stuck_ms, DEF_STUCK_MS);
	b->cfg.mom_interval_ms = cfg_or(cfg->mom_interval_ms, DEF_MOM_INTERVAL_MS);
	if (cfg->pool.budget_bytes) {
		if (ebb_pool_wmarks_compute(&cfg->pool, 0, &b->wm) < 0) {
			free(b);
			return -EINVAL;
		}
		b->wm_valid = true;
	}
	b->state = EBB_BAL_SLEEPING;
	b->priority = -1;
	b->pool.policy = cfg->policy;
	b->pool.priority = -1;
	*out = b;
	return 0;
}

void ebb_bal_destroy(struct ebb_balancer *bal)
{
	if (!bal)
		return;
	free(bal->vm);
	free(bal->vm_next);
	free(bal->hash);
	free(bal);
}

int ebb_bal_set_pool(struct ebb_balancer *bal, const struct ebb_pool_cfg *pool)
{
	if (!bal || !pool)
		return -EINVAL;
	bal->cfg.pool = *pool;
	bal->wm_valid = false;
	return 0;
}

int ebb_bal_set_policy(struct ebb_balancer *bal, enum ebb_bal_policy p)
{
	if (!bal || (unsigned)p >= EBB_BAL_NR_POLICIES)
		return -EINVAL;
	if (bal->cfg.policy == EBB_BAL_POLICY_EBB && p != EBB_BAL_POLICY_EBB)
		bal->undo_pending = true;
	bal->cfg.policy = p;
	bal->pool.policy = p;
	bal->state = EBB_BAL_SLEEPING;
	bal->priority = -1;
	bal->mom_next_ns = 0;
	return 0;
}

/* --- the VM table ------------------------------------------------------- */

static size_t hash_slot(uint64_t id, size_t size)
{
	id ^= id >> 33;
	id *= 0xff51afd7ed558ccdULL;
	id ^= id >> 33;
	return (size_t)id & (size - 1);
}

static struct bal_vm *vm_lookup(const struct ebb_balancer *b, uint64_t id)
{
	if (!b->hash || !id)
		return NULL;
	for (size_t s = hash_slot(id, b->hash_size);; s = (s + 1) & (b->hash_size - 1)) {
		uint32_t i = b->hash[s];
		if (i == UINT32_MAX)
			return NULL;
		if (b->vm[i].in.id == id)
			return &b->vm[i];
	}
}

static void hash_rebuild(struct ebb_balancer *b)
{
	for (size_t s = 0; s < b->hash_size; s++)
		b->hash[s] = UINT32_MAX;
	for (size_t i = 0; i < b->nr_vm; i++) {
		size_t s = hash_slot(b->vm[i].in.id, b->hash_size);
		while (b->hash[s] != UINT32_MAX)
			s = (s + 1) & (b->hash_size - 1);
		b->hash[s] = (uint32_t)i;
	}
}

static int table_reserve(struct ebb_balancer *b, size_t n)
{
	if (n <= b->cap_vm && b->hash)
		return 0;
	size_t cap = b->cap_vm ? b->cap_vm : 16;
	while (cap < n)
		cap *= 2;
	struct bal_vm *a = realloc(b->vm, cap * sizeof(*a));
	if (!a)
		return -ENOMEM;
	b->vm = a;
	a = realloc(b->vm_next, cap * sizeof(*a));
	if (!a)
		return -ENOMEM;
	b->vm_next = a;
	uint32_t *h = malloc(cap * 2 * sizeof(*h));
	if (!h)
		return -ENOMEM;
	free(b->hash);
	b->hash = h;
	b->hash_size = cap * 2;
	b->cap_vm = cap;
	hash_rebuild(b);
	return 0;
}

/* --- entering observations (GUEST input) -------------------------------- */

/*
 * GUEST: everything in @o comes from a VM, its VMM or its agent.  Returns
 * false if the VM cannot be managed at all (no id, no size).
 */
static bool sanitise_vm(struct ebb_balancer *b, const struct ebb_bal_vm_obs *o,
			struct ebb_bal_vm_obs *s, uint64_t now, bool *agent_fresh)
{
	unsigned bad = 0, bad_agent = 0;

	*s = *o;
	s->name[EBB_BAL_NAME_MAX - 1] = '\0';
	*agent_fresh = false;
	if (s->id == 0 || s->guest_bytes < MIB || s->guest_bytes > PIB) {
		b->pool.stats.nr_bad_vm_obs++;
		ebb_reclaim_logf(b->cfg.log, b->cfg.log_ctx, &b->rl_vm, now, EBB_LOG_WARN,
				 "balancer: VM id %" PRIu64 " with guest size %" PRIu64
				 " bytes ignored (id must be nonzero, size 1 MiB..1 PiB)",
				 o->id, o->guest_bytes);
		return false;
	}
	uint64_t g = page_down(s->guest_bytes);
	s->guest_bytes = g;
	bad += clamp_u64(&s->resident_bytes, 0, 2 * g);
	bad += clamp_u64(&s->compressed_bytes, 0, s->resident_bytes);
	bad += clamp_u64(&s->swapped_compressed_bytes, 0, g);
	bad += clamp_u64(&s->swapped_file_bytes, 0, g);
	bad += clamp_u64(&s->balloon_actual_bytes, 0, g);
	bad += clamp_u64(&s->balloon_target_bytes, 0, g);

	struct ebb_bal_vm_cfg *c = &s->cfg;
	if (c->weight == 0)
		c->weight = EBB_BAL_DEF_WEIGHT;
	bad += clamp_u64(&c->min_bytes, 0, g);
	bad += clamp_u64(&c->low_bytes, c->min_bytes, g);
	if (c->high_bytes != EBB_BAL_NO_LIMIT)
		bad += clamp_u64(&c->high_bytes, c->low_bytes, UINT64_MAX);
	if (c->max_bytes != EBB_BAL_NO_LIMIT)
		bad += clamp_u64(&c->max_bytes,
				 c->high_bytes == EBB_BAL_NO_LIMIT ? c->low_bytes : c->high_bytes,
				 UINT64_MAX);
	if (c->weight > EBB_BAL_MAX_WEIGHT) {
		c->weight = EBB_BAL_MAX_WEIGHT;
		bad++;
	}
	if (c->swappiness < -1 || c->swappiness > 200) {
		c->swappiness = -1;
		bad++;
	}
	bad += clamp_u64(&c->balloon_floor_bytes, 0, g);

	if (s->ws.valid) {
		uint64_t sum = 0;
		for (int i = 0; i < EBB_BAL_WS_BUCKETS; i++)
			sum = add_sat(sum, s->ws.bytes[i]);
		if (sum > g + g / 8) {
			s->ws.valid = false;
			bad++;
		}
	}
	if (s->ksm_merging_pages > g / EBB_PAGE_BYTES) {
		s->ksm_merging_pages = g / EBB_PAGE_BYTES;
		bad++;
	}

	if (s->agent_present) {
		uint64_t avail = g - s->balloon_actual_bytes;
		if (s->agent_report_ns > now) {
			bad_agent++;
		} else if (now - s->agent_report_ns <= AGENT_STALE_NS) {
			*agent_fresh = true;
		}
		bad_agent += clamp_u64(&s->agent_free_bytes, 0, avail);
		bad_agent += clamp_u64(&s->agent_cache_bytes, 0, avail - s->agent_free_bytes);
		bad_agent += clamp_u64(&s->agent_give_back_bytes, 0,
				       s->agent_free_bytes + s->agent_cache_bytes);
		bad_agent += clamp_u64(&s->agent_pressure_need_bytes, 0, g);
	}
	if (bad) {
		b->pool.stats.nr_bad_vm_obs++;
		ebb_reclaim_logf(b->cfg.log, b->cfg.log_ctx, &b->rl_vm, now, EBB_LOG_WARN,
				 "balancer: VM %s: %u out-of-range values clamped", s->name, bad);
	}
	if (bad_agent) {
		b->pool.stats.nr_bad_agent++;
		ebb_reclaim_logf(b->cfg.log, b->cfg.log_ctx, &b->rl_agent, now, EBB_LOG_WARN,
				 "balancer: VM %s: agent reported %u impossible values (clamped)",
				 s->name, bad_agent);
	}
	return true;
}

static void vm_init(struct bal_vm *v, const struct ebb_bal_vm_obs *in, uint64_t now)
{
	memset(v, 0, sizeof(*v));
	v->in = *in;
	v->prev_ns = now;
	v->prev_refaults = in->nr_refaults;
	v->prev_swapins = in->nr_swapins;
	v->prev_swapin_ns = in->swapin_ns_total;
	v->prev_psi_some = in->psi_some_ns_total;
	v->prev_psi_full = in->psi_full_ns_total;
	v->prev_nr_pressure = in->agent_nr_pressure;
	v->prev_ram = in->resident_bytes - in->compressed_bytes;
	v->high = EBB_BAL_NO_LIMIT;
	/* a previous ebbd may have left settings: adopt them (restart) */
	if (in->cur_high_bytes < in->cfg.high_bytes && in->cur_high_bytes < in->guest_bytes)
		v->high = in->cur_high_bytes;
	if (in->max_clamped) {
		v->clamped = true;
		v->lease_end_ns = now;
		v->renew_ns = now;
	}
	if (in->balloon_target_bytes) {
		v->balloon_owned = true;
		v->balloon_target = in->balloon_target_bytes;
		v->balloon_progress_ns = now;
		v->balloon_progress_actual = in->balloon_actual_bytes;
	}
	v->ksm_ratio = -1.0;
}

static double ewma(double old, double sample, double dt_s)
{
	/* time constant 10 s */
	double a = dt_s >= 10.0 ? 1.0 : dt_s / 10.0;
	return old + a * (sample - old);
}

/* Rates from counter deltas; a counter that went backwards restarts. */
static void vm_signals(struct ebb_balancer *b, struct bal_vm *v, uint64_t now)
{
	const struct ebb_bal_vm_obs *in = &v->in;
	double dt = (double)(now - v->prev_ns) / 1e9;

	bool reset = in->nr_refaults < v->prev_refaults || in->nr_swapins < v->prev_swapins ||
		     in->swapin_ns_total < v->prev_swapin_ns ||
		     in->psi_some_ns_total < v->prev_psi_some ||
		     in->psi_full_ns_total < v->prev_psi_full;

	uint64_t ram = in->resident_bytes - in->compressed_bytes;   /* clamped <= resident */

	if (reset) {
		/* VM restarted, or lying: start the rates again from here */
		b->pool.stats.nr_bad_vm_obs++;
	} else if (dt > 0) {
		uint64_t dref = in->nr_refaults - v->prev_refaults;
		uint64_t dsw = in->nr_swapins - v->prev_swapins;
		uint64_t dswns = in->swapin_ns_total - v->prev_swapin_ns;
		double some = (double)(in->psi_some_ns_total - v->prev_psi_some) / 1e9 / dt * 100.0;
		double full = (double)(in->psi_full_ns_total - v->prev_psi_full) / 1e9 / dt * 100.0;
		double rate = (double)dref / dt;
		/* no VM refaults a billion pages a second: a lying counter */
		v->refault_rate = ewma(v->refault_rate, rate > 1e9 ? 1e9 : rate, dt);
		v->psi_some_pct = ewma(v->psi_some_pct, some > 100.0 ? 100.0 : some, dt);
		v->psi_full_pct = ewma(v->psi_full_pct, full > 100.0 ? 100.0 : full, dt);
		if (dsw)
			v->swapin_lat_us = ewma(v->swapin_lat_us,
						(double)dswns / (double)dsw / 1000.0, dt);
		/* growth: RAM faulted in, never the shrinking that reclaim makes */
		double grew = (double)sub_sat(ram, v->prev_ram) / dt;
		v->grow_rate = ewma(v->grow_rate, grew > 1e12 ? 1e12 : grew, dt);
	}
	if (dt > 0 || reset) {
		v->prev_ns = now;
		v->prev_ram = ram;
		v->prev_refaults = in->nr_refaults;
		v->prev_swapins = in->nr_swapins;
		v->prev_swapin_ns = in->swapin_ns_total;
		v->prev_psi_some = in->psi_some_ns_total;
		v->prev_psi_full = in->psi_full_ns_total;
	}
	if (v->swapin_lat_us > 1e6)
		v->swapin_lat_us = 1e6;

	/* working set: host-seen, cross-checked with the agent */
	uint64_t host_ws = 0, agent_ws = 0, unseen = 0, hist = 0;
	if (in->ws.valid) {
		/* RAM the histogram does not cover came in since its tick: used */
		for (int i = 0; i < EBB_BAL_WS_BUCKETS; i++)
			hist = add_sat(hist, in->ws.bytes[i]);
		unseen = sub_sat(ram, hist);
		host_ws = unseen;
		for (int i = 0; i <= WS_ACTIVE_BUCKET; i++)
			host_ws = add_sat(host_ws, in->ws.bytes[i]);
	}
	if (v->agent_fresh)
		agent_ws = sub_sat(in->guest_bytes - in->balloon_actual_bytes,
				   in->agent_free_bytes + in->agent_cache_bytes);
	if (in->ws.valid)
		v->ws_bytes = max_u64(host_ws, agent_ws);
	else if (v->agent_fresh)
		v->ws_bytes = agent_ws;
	else
		v->ws_bytes = in->resident_bytes; /* nothing known: all of it is in use */
	v->idle_bytes = sub_sat(in->resident_bytes, v->ws_bytes);
	/* cold: the same cross-check at the shorter age */
	v->cold_bytes = v->idle_bytes;
	if (in->ws.valid) {
		uint64_t recent = unseen;

		for (int i = 0; i <= WS_COLD_BUCKET; i++)
			recent = add_sat(recent, in->ws.bytes[i]);
		v->cold_bytes = sub_sat(ram, max_u64(recent, agent_ws));
	}

	v->nonres_free = 0;
	if (v->agent_fresh) {
		uint64_t in_use = sub_sat(in->guest_bytes - in->balloon_actual_bytes,
					  in->agent_free_bytes);
		uint64_t res_free = sub_sat(ram, in_use);
		v->nonres_free = min_u64(sub_sat(in->agent_free_bytes, res_free),
					 in->agent_give_back_bytes);
	}
}

static bool pressure_recent(const struct bal_vm *v, uint64_t now)
{
	return v->last_pressure_ns && now - v->last_pressure_ns < PRESSURE_RECENT_NS;
}

static uint32_t cost_clip(double c)
{
	return c >= 4e9 ? 4000000000u : (uint32_t)c;
}

static void vm_costs(const struct ebb_balancer *b, struct bal_vm *v, uint64_t now, uint64_t share)
{
	const struct ebb_bal_vm_obs *in = &v->in;
	double w = 100.0 / (double)in->cfg.weight;
	/* a pressure claim protects a VM only within its weighted share,
	 * and memory above that share is the first to go */
	bool above_share = in->resident_bytes > share;
	bool claim = pressure_recent(v, now) && !above_share;
	if (above_share)
		w /= 4.0;
	/*
	 * A VM faulting in new memory is using it, even before its refaults
	 * or its agent can say so (its old pages may look cold from the idle
	 * time before): it is the last source within its share, not the first.
	 */
	else if (v->grow_rate >= GROWING_BYTES_PER_S)
		w *= GROWING_COST_FACTOR;

	for (int s = 0; s < EBB_BAL_NR_SOURCES; s++)
		v->cost[s] = COST_NA;
	if ((in->caps & (EBB_BAL_CAP_BALLOON | EBB_BAL_CAP_AGENT_DROP | EBB_BAL_CAP_AGENT_PROACTIVE)) &&
	    v->agent_fresh && now >= v->balloon_paused_until_ns)
		v->cost[EBB_BAL_SRC_BALLOON] = cost_clip(
			100.0 * (1.0 + v->psi_some_pct / 5.0 + (claim ? 10.0 : 0.0)) * w);
	if (in->caps & EBB_BAL_CAP_HIGH)
		v->cost[EBB_BAL_SRC_HIGH] = cost_clip(
			1000.0 * (1.0 + v->refault_rate / 100.0 + v->psi_some_pct / 2.0 +
				  v->psi_full_pct + v->swapin_lat_us / 50.0) * w);
	if ((in->caps & EBB_BAL_CAP_KSM) && in->cfg.ksm_allowed && b->cfg.ksm_steer &&
	    now >= v->ksm_off_until_ns && now >= b->ksmd_hold_until_ns &&
	    v->idle_bytes >= in->resident_bytes / 2)
		v->cost[EBB_BAL_SRC_KSM] = cost_clip(
			500.0 * (1.0 + v->refault_rate / 100.0 + v->psi_some_pct / 2.0) * w);
}

/* --- actions ------------------------------------------------------------- */

static bool emit(struct ebb_balancer *b, struct step *st, const struct bal_vm *v,
		 enum ebb_bal_action_kind kind, uint64_t value, uint64_t value2,
		 uint32_t lease_ms, enum ebb_bal_reason why, enum ebb_bal_source src)
{
	struct ebb_bal_action a;

	if (st->n >= st->max) {
		b->pool.stats.nr_actions_dropped++;
		return false;
	}
	memset(&a, 0, sizeof(a));
	a.vm_id = v ? v->in.id : 0;
	a.vm_index = v ? v->obs_index : UINT32_MAX;
	a.kind = kind;
	a.value = value;
	a.value2 = value2;
	a.lease_ms = lease_ms;
	a.at_ns = st->now;
	a.why.reason = why;
	a.why.source = src;
	a.why.priority = b->state == EBB_BAL_SLEEPING ? -1 : b->priority;
	a.why.free_bytes = st->free;
	a.why.wmark_min_bytes = st->min;
	a.why.wmark_low_bytes = st->low;
	a.why.wmark_high_bytes = st->high;
	a.why.want_bytes = st->want;
	for (int s = 0; s < EBB_BAL_NR_SOURCES; s++)
		a.why.cost_milli[s] = v ? v->cost[s] : COST_NA;
	st->out[st->n++] = a;
	b->pool.stats.nr_actions++;
	b->trace[b->trace_head] = a;
	b->trace_head = (b->trace_head + 1) % EBB_BAL_TRACE_LEN;
	if (b->trace_nr < EBB_BAL_TRACE_LEN)
		b->trace_nr++;
	return true;
}

static bool set_balloon(struct ebb_balancer *b, struct step *st, struct bal_vm *v,
			uint64_t target, enum ebb_bal_reason why, enum ebb_bal_source src)
{
	uint64_t g = v->in.guest_bytes;

	target = page_down(min_u64(target, sub_sat(g, v->in.cfg.balloon_floor_bytes)));
	uint64_t cur = v->balloon_owned ? v->balloon_target : v->in.balloon_actual_bytes;
	if (target > cur && (why == EBB_BAL_WHY_RECLAIM || why == EBB_BAL_WHY_FOR_PRESSURE)) {
		/* never inflate into the working set, whatever the agent says */
		uint64_t keep = max_u64(v->in.cfg.balloon_floor_bytes, v->ws_bytes);
		target = page_down(min_u64(target, sub_sat(g, keep)));
		if (target <= cur)
			return false;
	}
	if (target == cur && v->balloon_owned)
		return false;
	if (!emit(b, st, v, EBB_BAL_ACT_BALLOON, target, g - target, 0, why, src))
		return false;
	int dir = target > cur ? 1 : -1;
	if (v->balloon_dir && dir != v->balloon_dir)
		v->nr_sign_changes++;
	v->balloon_dir = dir;
	v->balloon_owned = true;
	v->balloon_target = target;
	v->balloon_progress_ns = st->now;
	v->balloon_progress_actual = v->in.balloon_actual_bytes;
	if (dir < 0)
		v->hold_inflate_until_ns = st->now + HOLD_INFLATE_NS;
	return true;
}

static bool set_high(struct ebb_balancer *b, struct step *st, struct bal_vm *v,
		     uint64_t high, enum ebb_bal_reason why, enum ebb_bal_source src)
{
	uint64_t cfg_high = v->in.cfg.high_bytes;

	if (high >= cfg_high || high >= v->in.guest_bytes)
		high = EBB_BAL_NO_LIMIT;
	else
		high = max_u64(page_down(high), v->in.cfg.min_bytes);   /* min may be unaligned */
	if (high == v->high)
		return false;
	if (!emit(b, st, v, EBB_BAL_ACT_SET_HIGH, high == EBB_BAL_NO_LIMIT ? cfg_high : high,
		  0, 0, why, src))
		return false;
	v->high = high;
	return true;
}

/* Guest pages in RAM: what `high` and `max` limit (the compressed tier is not). */
static uint64_t vm_ram(const struct bal_vm *v)
{
	return v->in.resident_bytes - v->in.compressed_bytes;
}

/* The smallest balloon move worth making (page-aligned). */
static uint64_t dead_band(const struct ebb_balancer *b, const struct bal_vm *v)
{
	return page_down(max_u64(pct_of(v->in.guest_bytes, b->cfg.dead_band_percent), MIB));
}

/* Bytes asked for but not yet seen given back. */
static uint64_t vm_inflight(const struct bal_vm *v)
{
	uint64_t f = 0;

	if (v->balloon_owned)
		f += sub_sat(sub_sat(v->balloon_target, v->in.balloon_actual_bytes), v->nonres_free);
	if (v->high != EBB_BAL_NO_LIMIT)
		f += sub_sat(vm_ram(v), v->high);
	return f;
}

/* --- pool accounting ------------------------------------------------------ */

static void pool_account(struct ebb_balancer *b, const struct ebb_bal_host_obs *h)
{
	uint64_t vms = 0, used;

	for (size_t i = 0; i < b->nr_vm; i++)
		vms = add_sat(vms, b->vm[i].in.resident_bytes);
	uint64_t host_used = h->host_used_bytes;
	if (host_used == 0 && h->mem_total_bytes > h->mem_available_bytes)
		host_used = sub_sat(h->mem_total_bytes - h->mem_available_bytes, vms);
	used = add_sat(vms, host_used);
	uint64_t free = sub_sat(b->wm.budget_bytes, used);
	/* never more optimistic than what the kernel says is available */
	if (h->mem_total_bytes && h->mem_available_bytes < free)
		free = h->mem_available_bytes;
	b->pool.used_bytes = used;
	b->pool.free_bytes = free;
}

/* --- policy ebb ------------------------------------------------------------ */

static void clamps(struct ebb_balancer *b, struct step *st)
{
	uint32_t lease = b->cfg.lease_ms;

	for (size_t i = 0; i < b->nr_vm; i++) {
		struct bal_vm *v = &b->vm[i];
		if (!(v->in.caps & EBB_BAL_CAP_MAX_LEASE)) {
			v->clamped = false;
			continue;
		}
		if (st->free >= st->low || b->state == EBB_BAL_SLEEPING) {
			if (v->clamped &&
			    emit(b, st, v, EBB_BAL_ACT_LIFT_CLAMP, v->in.cfg.max_bytes, 0, 0,
				 EBB_BAL_WHY_LIFT, EBB_BAL_SRC_NONE)) {
				v->clamped = false;
				b->pool.stats.nr_lifts++;
			}
			continue;
		}
		bool renew = v->clamped && st->now >= v->renew_ns;
		if ((b->state == EBB_BAL_DIRECT_CLAMP && !v->clamped) || renew) {
			uint64_t at = max_u64(page_down(vm_ram(v)), v->in.cfg.min_bytes);
			at = min_u64(at, v->in.cfg.max_bytes);
			if (emit(b, st, v, EBB_BAL_ACT_CLAMP_MAX, at, 0, lease, EBB_BAL_WHY_DIRECT,
				 EBB_BAL_SRC_NONE)) {
				if (!v->clamped)
					b->pool.stats.nr_clamps++;
				v->clamped = true;
				v->lease_end_ns = st->now + (uint64_t)lease * NS_PER_MS;
				v->renew_ns = st->now + (uint64_t)lease * NS_PER_MS / 2;
			}
		}
	}
}

static void stuck_balloons(struct ebb_balancer *b, struct step *st)
{
	uint64_t stuck_ns = (uint64_t)b->cfg.balloon_stuck_ms * NS_PER_MS;

	for (size_t i = 0; i < b->nr_vm; i++) {
		struct bal_vm *v = &b->vm[i];
		if (!v->balloon_owned)
			continue;
		uint64_t act = v->in.balloon_actual_bytes, tgt = v->balloon_target;
		uint64_t band = dead_band(b, v);
		uint64_t gap = act > tgt ? act - tgt : tgt - act;
		if (gap <= band) {
			v->balloon_progress_ns = st->now;
			v->balloon_progress_actual = act;
			continue;
		}
		uint64_t moved = act > v->balloon_progress_actual ? act - v->balloon_progress_actual
								   : v->balloon_progress_actual - act;
		if (moved > band / 2) {
			v->balloon_progress_ns = st->now;
			v->balloon_progress_actual = act;
			continue;
		}
		if (st->now - v->balloon_progress_ns < stuck_ns)
			continue;
		uint64_t old_dir_hold = v->hold_inflate_until_ns;
		if (set_balloon(b, st, v, act, EBB_BAL_WHY_STUCK, EBB_BAL_SRC_BALLOON)) {
			v->hold_inflate_until_ns = old_dir_hold;
			v->balloon_paused_until_ns = st->now + STUCK_PAUSE_NS;
			b->pool.stats.nr_stuck++;
		}
	}
}

/* @v's share of the budget: proportional to guest size x weight. */
static uint64_t vm_share(const struct ebb_balancer *b, const struct bal_vm *v, double wsum)
{
	if (wsum <= 0)
		return b->wm.budget_bytes;
	double share = (double)b->wm.budget_bytes * (double)v->in.cfg.weight *
		       (double)v->in.guest_bytes / wsum;
	/* <= budget in exact arithmetic; rounding must not push it past u64 */
	return share >= (double)b->wm.budget_bytes ? b->wm.budget_bytes : (uint64_t)share;
}

/*
 * Give @need bytes back to @v at once: deflate its balloon, else raise the
 * high we set (refaults: the high only).  Beyond its weighted share a VM gets only memory the pool
 * does not need (free stays >= high + gap); within it, free memory above low
 * and then memory taken from the cheapest other VM (*shortfall).
 * *from_pool is the free memory above low not yet handed out this step.
 */
static void give_back(struct ebb_balancer *b, struct step *st, struct bal_vm *v, uint64_t need,
		      double wsum, enum ebb_bal_reason why, uint64_t *from_pool,
		      uint64_t *shortfall)
{
	/*
	 * A measured refault rate (host-seen, not claimed) may also take, beyond
	 * the share, what other VMs hold cold (RAM unused beyond WS_COLD_BUCKET):
	 * that is cheaper than this VM's refaults.
	 */
	uint64_t cold_others = why == EBB_BAL_WHY_REFAULTS ? sub_sat(st->cold_total, v->cold_bytes) : 0;
	const struct ebb_bal_vm_obs *in = &v->in;
	uint64_t g = in->guest_bytes;

	need = min_u64(max_u64(need, MIB), max_u64(pct_of(g, b->cfg.deflate_cap_percent), MIB));
	uint64_t balloon = v->balloon_owned ? v->balloon_target : in->balloon_actual_bytes;
	uint64_t limit = min_u64(in->cfg.max_bytes, g);
	uint64_t room = sub_sat(limit, in->resident_bytes);
	uint64_t give = min_u64(need, room);
	uint64_t share_room = sub_sat(vm_share(b, v, wsum), in->resident_bytes);
	uint64_t plenty = sub_sat(*from_pool, (st->high - st->low) + (st->high - st->min));
	plenty = max_u64(plenty, cold_others);
	if (give > share_room && give > plenty)
		give = max_u64(share_room, plenty);
	if (give < need)
		b->pool.stats.nr_pressure_capped++;
	if (give == 0)
		return;
	uint64_t given = 0;
	/* refaults are the host's (our high evicted those pages): only the
	 * high gives them back; the balloon is for the guest's own need */
	if (why == EBB_BAL_WHY_REFAULTS)
		balloon = 0;
	if (balloon && (in->caps & EBB_BAL_CAP_BALLOON)) {
		uint64_t d = min_u64(give, balloon);
		if (set_balloon(b, st, v, balloon - d, why, EBB_BAL_SRC_BALLOON))
			given += d;
	}
	if (given < give && v->high != EBB_BAL_NO_LIMIT) {
		uint64_t nh = add_sat(max_u64(v->high, vm_ram(v)), give - given);
		if (set_high(b, st, v, nh, why, EBB_BAL_SRC_HIGH)) {
			given = give;
			v->hold_high_until_ns = st->now + HOLD_INFLATE_NS;
		}
	}
	if (given)
		v->excluded = true;   /* not a source in the same step */
	st->idle_total = sub_sat(st->idle_total, given);
	st->cold_total = sub_sat(st->cold_total, given);
	if (given > *from_pool) {
		*shortfall += given - *from_pool;
		*from_pool = 0;
	} else {
		*from_pool -= given;
	}
}

/*
 * The agent loop, and its host-side twin: a pressure message from the agent,
 * or refaults / PSI stalls of a VM whose high we lowered, give memory back at
 * once.  Returns what other VMs must cover.
 */
static uint64_t pressure(struct ebb_balancer *b, struct step *st, double wsum)
{
	uint64_t from_pool = sub_sat(st->free, st->low), shortfall = 0;

	for (size_t i = 0; i < b->nr_vm; i++) {
		struct bal_vm *v = &b->vm[i];
		const struct ebb_bal_vm_obs *in = &v->in;
		if (!in->agent_present)
			continue;
		if (in->agent_nr_pressure < v->prev_nr_pressure) {
			b->pool.stats.nr_bad_agent++;
			v->prev_nr_pressure = in->agent_nr_pressure;
			continue;
		}
		if (in->agent_nr_pressure == v->prev_nr_pressure)
			continue;
		v->prev_nr_pressure = in->agent_nr_pressure;
		v->nr_pressure++;
		v->last_pressure_ns = st->now;
		b->pool.stats.nr_pressure++;
		give_back(b, st, v, in->agent_pressure_need_bytes, wsum, EBB_BAL_WHY_PRESSURE,
			  &from_pool, &shortfall);
	}
	for (size_t i = 0; i < b->nr_vm; i++) {
		struct bal_vm *v = &b->vm[i];
		if (v->excluded || v->high == EBB_BAL_NO_LIMIT || st->now < v->next_raise_ns)
			continue;
		if (v->refault_rate <= GROW_REFAULT_PER_S && v->psi_some_pct <= GROW_PSI_SOME)
			continue;
		/*
		 * What it lacks: ten seconds of its refaults (the host-seen
		 * working set misses what is evicted), at least 1/64 of the guest.
		 * Again at most every RAISE_PERIOD: the refault rate lags.
		 */
		uint64_t need = max_u64(sub_sat(v->ws_bytes, v->high), v->in.guest_bytes / 64);
		need = max_u64(need, (uint64_t)(v->refault_rate * (double)EBB_PAGE_BYTES * 10.0));
		v->next_raise_ns = st->now + RAISE_PERIOD_NS;
		b->pool.stats.nr_refault_raises++;
		give_back(b, st, v, need, wsum, EBB_BAL_WHY_REFAULTS, &from_pool, &shortfall);
	}
	return shortfall;
}

struct cand {
	uint32_t vm;
	uint32_t rank;                  /* round-robin order among equal costs */
	uint8_t src;
	uint32_t cost;
	uint64_t avail;
};

static int cand_cmp(const void *pa, const void *pb)
{
	const struct cand *a = pa, *b = pb;

	if (a->cost != b->cost)
		return a->cost < b->cost ? -1 : 1;
	if (a->rank != b->rank)
		return a->rank < b->rank ? -1 : 1;
	return (int)a->src - (int)b->src;
}

/* Non-resident free memory a new balloon growth still has to pass. */
static uint64_t balloon_nonres_left(const struct bal_vm *v)
{
	uint64_t pending = v->balloon_owned ? sub_sat(v->balloon_target, v->in.balloon_actual_bytes) : 0;

	return page_down(sub_sat(v->nonres_free, pending));
}

/* What @v can give from @src at @prio above @protect; 0 if nothing. */
static uint64_t vm_avail(const struct ebb_balancer *b, const struct bal_vm *v, int src,
			 int prio, uint64_t protect, uint64_t now)
{
	const struct ebb_bal_vm_obs *in = &v->in;
	uint64_t res = vm_ram(v), a;
	uint64_t above = sub_sat(sub_sat(res, vm_inflight(v)), protect);

	if (v->cost[src] == COST_NA || v->excluded || above == 0)
		return 0;
	switch (src) {
	case EBB_BAL_SRC_BALLOON: {
		if (now < v->hold_inflate_until_ns)
			return 0;
		if (!(in->caps & EBB_BAL_CAP_BALLOON)) {
			/* no balloon: the agent frees its cache itself (free page
			 * reporting returns it), at most once per hold-off */
			a = sub_sat(in->agent_give_back_bytes, v->nonres_free);
			a = min_u64(a, pct_of(in->guest_bytes, b->cfg.inflate_cap_percent));
			break;
		}
		uint64_t balloon = v->balloon_owned ? v->balloon_target : in->balloon_actual_bytes;
		uint64_t keep = max_u64(in->cfg.balloon_floor_bytes, v->ws_bytes);
		uint64_t room = sub_sat(sub_sat(in->guest_bytes, keep), balloon);
		/*
		 * What the balloon saves after it has passed the non-resident free
		 * memory (free page reporting: that costs the guest little and
		 * saves nothing).  "Inflate slowly" caps what the guest loses of
		 * the memory it uses (its cache) per step.
		 */
		a = min_u64(sub_sat(in->agent_give_back_bytes, v->nonres_free),
			    sub_sat(room, balloon_nonres_left(v)));
		a = min_u64(a, pct_of(in->guest_bytes, b->cfg.inflate_cap_percent));
		break;
	}
	case EBB_BAL_SRC_HIGH: {
		/*
		 * A high raised for refaults is held (no ping-pong), but not below
		 * min: there the costs decide, as direct reclaim ignores
		 * protections when nothing else frees memory.
		 */
		if (now < v->hold_high_until_ns && b->state != EBB_BAL_DIRECT_CLAMP)
			return 0;
		uint64_t floor = prio < CHEAP_TIER_PRIORITY ? 0 : v->ws_bytes;
		a = sub_sat(sub_sat(res, vm_inflight(v)), floor);
		break;
	}
	case EBB_BAL_SRC_KSM:
		if (in->ksm_advised || v->ksm_ours)
			return 0;
		a = (uint64_t)((double)v->idle_bytes * (v->ksm_ratio >= 0 ? v->ksm_ratio : 0.10));
		break;
	default:
		return 0;
	}
	a = min_u64(a, above);
	uint64_t scan = (res >> prio) / in->cfg.weight * 100;
	if (src == EBB_BAL_SRC_BALLOON) {
		/* balloon moves come in dead-band-sized batches at least */
		uint64_t band = dead_band(b, v);
		scan = max_u64(scan, band);
	}
	return page_down(min_u64(a, max_u64(scan, EBB_PAGE_BYTES)));
}

static bool high_cost_into_ws(const struct bal_vm *v, int prio)
{
	return prio < CHEAP_TIER_PRIORITY && v->cost[EBB_BAL_SRC_HIGH] != COST_NA &&
	       vm_ram(v) <= v->ws_bytes + vm_inflight(v);
}

/*
 * One reclaim round for @want bytes (shrink_node_memcgs): candidates from
 * every VM and source, cheapest first, priority lowered until they cover
 * want.  Returns what was asked.
 */
static uint64_t reclaim(struct ebb_balancer *b, struct step *st, uint64_t want,
			enum ebb_bal_reason why)
{
	size_t nc = 0;
	struct cand *c = malloc(b->nr_vm * EBB_BAL_NR_SOURCES * sizeof(*c) + 1);
	uint64_t sum = 0;

	if (!c)
		return 0;
	if (b->priority < 0)
		b->priority = EBB_BAL_DEF_PRIORITY;
	for (;;) {
		uint64_t sum_cheap = 0;
		uint32_t cheapest = UINT32_MAX;
		nc = 0;
		sum = 0;
		for (int pass = 0; pass < 2 && sum == 0; pass++) {
			nc = 0;
			cheapest = UINT32_MAX;
			for (size_t i = 0; i < b->nr_vm; i++) {
				const struct bal_vm *v = &b->vm[i];
				uint64_t protect = pass == 0 ? v->in.cfg.low_bytes : v->in.cfg.min_bytes;
				for (int s = 0; s < EBB_BAL_NR_SOURCES; s++) {
					uint64_t a = vm_avail(b, v, s, b->priority, protect, st->now);
					if (!a)
						continue;
					uint32_t cost = v->cost[s];
					if (s == EBB_BAL_SRC_HIGH && high_cost_into_ws(v, b->priority))
						cost = cost > UINT32_MAX / 4 ? UINT32_MAX - 1 : cost * 4;
					uint32_t rank = (uint32_t)((i + b->nr_vm - b->rr % b->nr_vm) % b->nr_vm);
					c[nc++] = (struct cand){ (uint32_t)i, rank, (uint8_t)s, cost, a };
					sum += a;
					if (cost < cheapest)
						cheapest = cost;
				}
			}
		}
		for (size_t k = 0; k < nc; k++)
			if (c[k].cost / 2 <= cheapest)
				sum_cheap += c[k].avail;
		/*
		 * Cheapest first: the priority rises on the cheap tier (within 2x
		 * of the cheapest) alone down to CHEAP_TIER_PRIORITY; only then
		 * does the whole set have to cover want.
		 */
		if (sum_cheap >= want || b->priority == 0 ||
		    (sum >= want && b->priority <= CHEAP_TIER_PRIORITY))
			break;
		b->priority--;
	}
	qsort(c, nc, sizeof(*c), cand_cmp);
	/* like mem_cgroup_iter's reclaim cookie: the next round starts further on */
	b->rr++;

	uint64_t asked = 0;
	for (size_t k = 0; k < nc && asked < want; k++) {
		struct bal_vm *v = &b->vm[c[k].vm];
		uint64_t take = page_down(min_u64(c[k].avail, want - asked));
		uint64_t band = dead_band(b, v);
		bool ok = false;
		switch (c[k].src) {
		case EBB_BAL_SRC_BALLOON: {
			if (!(v->in.caps & EBB_BAL_CAP_BALLOON)) {
				if (v->in.caps & EBB_BAL_CAP_AGENT_PROACTIVE)
					ok = emit(b, st, v, EBB_BAL_ACT_AGENT_RECLAIM, take, 0, 0, why,
						  EBB_BAL_SRC_BALLOON);
				else
					ok = emit(b, st, v, EBB_BAL_ACT_AGENT_DROP_CACHE, 0, 0, 0, why,
						  EBB_BAL_SRC_BALLOON);
				if (ok)
					v->hold_inflate_until_ns = st->now + HOLD_INFLATE_NS;
				break;
			}
			if (take < band) {
				/* dead band: a move this small is not worth making... */
				if (c[k].avail < band)
					break;
				take = band;   /* ...so round it up to one batch */
			}
			uint64_t cur = v->balloon_owned ? v->balloon_target : v->in.balloon_actual_bytes;
			ok = set_balloon(b, st, v, cur + balloon_nonres_left(v) + take, why,
					 EBB_BAL_SRC_BALLOON);
			break;
		}
		case EBB_BAL_SRC_HIGH: {
			if (take < MIB)
				break;
			uint64_t base = v->high != EBB_BAL_NO_LIMIT ? min_u64(v->high, vm_ram(v))
								   : vm_ram(v);
			if (base <= take)
				break;
			ok = set_high(b, st, v, base - take, why, EBB_BAL_SRC_HIGH);
			break;
		}
		case EBB_BAL_SRC_KSM:
			ok = emit(b, st, v, EBB_BAL_ACT_KSM_ADVISE, 1, 0, 0, EBB_BAL_WHY_KSM_COLD,
				  EBB_BAL_SRC_KSM);
			if (ok) {
				v->ksm_ours = true;
				v->ksm_on_ns = st->now;
			}
			break;
		default:
			break;
		}
		if (ok) {
			asked += take;
			b->pool.stats.reclaimed_bytes[c[k].src] += take;
		}
	}
	free(c);
	return asked;
}

/* Free memory well above high: give it back to VMs that show need. */
static void grow(struct ebb_balancer *b, struct step *st)
{
	uint64_t budget = sub_sat(st->free, st->high + (st->high - st->min)) / 2;

	for (size_t i = 0; i < b->nr_vm && budget > 0; i++) {
		struct bal_vm *v = &b->vm[i];
		const struct ebb_bal_vm_obs *in = &v->in;
		if (v->excluded)
			continue;
		bool stalls = v->psi_some_pct > GROW_PSI_SOME;
		bool starved = v->refault_rate > GROW_REFAULT_PER_S || stalls;
		uint64_t avail_guest = in->guest_bytes - in->balloon_actual_bytes;
		bool guest_low = v->agent_fresh &&
				 in->agent_free_bytes + in->agent_cache_bytes < avail_guest / 20;
		if (!starved && !guest_low)
			continue;
		uint64_t step = min_u64(pct_of(in->guest_bytes, b->cfg.deflate_cap_percent), budget);
		uint64_t balloon = v->balloon_owned ? v->balloon_target : in->balloon_actual_bytes;
		/*
		 * The balloon goes back for the guest's own need (little free
		 * memory, stalls).  Refaults are the host's: the pages our high
		 * evicted come back whatever the balloon holds, so they raise the
		 * high only (a deflate there undid the cheap reclaim for nothing).
		 */
		if ((guest_low || stalls) && balloon && (in->caps & EBB_BAL_CAP_BALLOON)) {
			uint64_t d = min_u64(step, balloon);
			if (set_balloon(b, st, v, balloon - d, EBB_BAL_WHY_GROW, EBB_BAL_SRC_BALLOON)) {
				budget -= d;
				continue;
			}
		}
		if (starved && v->high != EBB_BAL_NO_LIMIT) {
			uint64_t nh = add_sat(max_u64(v->high, vm_ram(v)), step);
			if (set_high(b, st, v, nh, EBB_BAL_WHY_GROW, EBB_BAL_SRC_HIGH))
				budget = sub_sat(budget, step);
		}
	}
}

/*
 * KSM steering.  Every KSM_PERIOD: the yield of ksmd is the rise of
 * pages_sharing per ksmd CPU-second.  ksmd runs while some VM is advised;
 * it starts at KSMD_START_SCAN pages per KSMD_SLEEP_MS, doubles while the
 * yield is good and the pool is short, halves when it is poor, and is
 * stopped (run=0: merged pages stay merged) below KSMD_MIN_SCAN.  A VM that
 * merged less than 1% of its resident memory after KSM_TRIAL, or that
 * became busy (idle < a quarter of resident), is unadvised and not tried
 * again for KSM_OFF.  A VM that advises its own memory, which ebbd cannot
 * switch (no EBB_BAL_CAP_KSM: a libvirt domain, whose QEMU marks guest RAM
 * mergeable), counts as advised while the pool is short and the operator
 * allowed KSM on it (ksm_allowed): ksmd then runs for it, at the rate its
 * yield earns, and stops with the others.
 */
static void ksm_steer(struct ebb_balancer *b, struct step *st, const struct ebb_bal_host_obs *h)
{
	if (!b->cfg.ksm_steer || !h->ksm_available)
		return;
	size_t nr_advised = 0;
	for (size_t i = 0; i < b->nr_vm; i++) {
		struct bal_vm *v = &b->vm[i];
		if (!v->ksm_ours) {
			if (v->in.ksm_advised && !(v->in.caps & EBB_BAL_CAP_KSM) &&
			    v->in.cfg.ksm_allowed && b->state != EBB_BAL_SLEEPING)
				nr_advised++;
			continue;
		}
		bool busy = v->idle_bytes < v->in.resident_bytes / 4;
		bool trial_over = st->now - v->ksm_on_ns >= KSM_TRIAL_NS && b->ksmd_ours;
		uint64_t merged = v->in.ksm_merging_pages * EBB_PAGE_BYTES;
		if (busy || (trial_over && merged < v->in.resident_bytes / 100)) {
			if (emit(b, st, v, EBB_BAL_ACT_KSM_ADVISE, 0, 0, 0,
				 EBB_BAL_WHY_KSM_UNPROFITABLE, EBB_BAL_SRC_KSM)) {
				v->ksm_ours = false;
				v->ksm_off_until_ns = st->now + KSM_OFF_NS;
				if (v->idle_bytes)
					v->ksm_ratio = ratio(merged, v->idle_bytes);
			}
			continue;
		}
		if (v->idle_bytes && trial_over)
			v->ksm_ratio = ratio(merged, v->idle_bytes);
		nr_advised++;
	}
	bool start = nr_advised && !b->ksmd_ours && st->now >= b->ksmd_hold_until_ns;
	if (st->now < b->ksm_next_ns && !start)
		return;
	b->ksm_next_ns = st->now + KSM_PERIOD_NS;

	uint64_t yield = 0;
	if (b->ksm_have_prev && h->ksmd_cpu_ns > b->ksm_prev_cpu_ns &&
	    h->ksm_pages_sharing >= b->ksm_prev_sharing) {
		double y = (double)(h->ksm_pages_sharing - b->ksm_prev_sharing) /
			   ((double)(h->ksmd_cpu_ns - b->ksm_prev_cpu_ns) / 1e9);
		yield = y > 1e15 ? (uint64_t)1e15 : (uint64_t)y;  /* no real ksmd is near */
	}
	bool measured = b->ksm_have_prev && h->ksmd_cpu_ns > b->ksm_prev_cpu_ns;
	b->ksm_prev_sharing = h->ksm_pages_sharing;
	b->ksm_prev_cpu_ns = h->ksmd_cpu_ns;
	b->ksm_have_prev = true;
	b->pool.ksm_yield_pages_per_cpu_s = yield;

	if (!nr_advised) {
		if (b->ksmd_ours && emit(b, st, NULL, EBB_BAL_ACT_KSMD, 0, 0, 0,
					 EBB_BAL_WHY_KSMD_YIELD, EBB_BAL_SRC_KSM))
			b->ksmd_ours = false;
		return;
	}
	uint32_t scan = b->ksmd_scan;
	if (!b->ksmd_ours) {
		if (!start)
			return;
		scan = KSMD_START_SCAN;
	} else if (measured && yield >= KSMD_GOOD_YIELD && b->state != EBB_BAL_SLEEPING) {
		scan = scan * 2 > KSMD_MAX_SCAN ? KSMD_MAX_SCAN : scan * 2;
	} else if (measured && yield < KSMD_POOR_YIELD) {
		scan /= 2;
	}
	if (b->ksmd_ours && scan < KSMD_MIN_SCAN) {
		if (emit(b, st, NULL, EBB_BAL_ACT_KSMD, 0, 0, 0, EBB_BAL_WHY_KSMD_YIELD,
			 EBB_BAL_SRC_KSM)) {
			/* merged pages stay merged; try again after KSM_OFF */
			b->ksmd_ours = false;
			b->ksmd_scan = 0;
			b->ksmd_hold_until_ns = st->now + KSM_OFF_NS;
		}
		return;
	}
	if (scan != b->ksmd_scan &&
	    emit(b, st, NULL, EBB_BAL_ACT_KSMD, scan, KSMD_SLEEP_MS, 0, EBB_BAL_WHY_KSMD_YIELD,
		 EBB_BAL_SRC_KSM)) {
		b->ksmd_scan = scan;
		b->ksmd_ours = true;
	}
}

static void policy_ebb(struct ebb_balancer *b, struct step *st,
		       const struct ebb_bal_host_obs *h)
{
	double wsum = 0;
	uint64_t inflight = 0;

	for (size_t i = 0; i < b->nr_vm; i++) {
		wsum += (double)b->vm[i].in.cfg.weight * (double)b->vm[i].in.guest_bytes;
		inflight = add_sat(inflight, vm_inflight(&b->vm[i]));
	}
	for (size_t i = 0; i < b->nr_vm; i++) {
		vm_costs(b, &b->vm[i], st->now, vm_share(b, &b->vm[i], wsum));
		st->idle_total = add_sat(st->idle_total, b->vm[i].idle_bytes);
		st->cold_total = add_sat(st->cold_total, b->vm[i].cold_bytes);
	}
	/* kswapd's state machine */
	if (st->free < st->min) {
		if (b->state != EBB_BAL_DIRECT_CLAMP)
			b->pool.stats.nr_direct++;
		if (b->state == EBB_BAL_SLEEPING)
			b->pool.stats.nr_wakeups++;
		b->state = EBB_BAL_DIRECT_CLAMP;
	} else if (b->state == EBB_BAL_DIRECT_CLAMP) {
		b->state = st->free >= st->high ? EBB_BAL_SLEEPING : EBB_BAL_BALANCING;
	} else if (b->state == EBB_BAL_SLEEPING && st->free < st->low) {
		b->state = EBB_BAL_BALANCING;
		b->pool.stats.nr_wakeups++;
		/* a burst: free fell through low within one step */
		if (b->prev_free >= st->low + (st->high - st->min)) {
			ebb_pool_boost_burst(&b->boost, &b->wm, b->prev_free - st->free, st->now);
			st->low = b->wm.low_bytes + b->boost.boost_bytes;
			st->high = b->wm.high_bytes + b->boost.boost_bytes;
		}
	} else if (b->state == EBB_BAL_BALANCING && st->free >= st->high) {
		b->state = EBB_BAL_SLEEPING;
	}
	if (b->state == EBB_BAL_SLEEPING)
		b->priority = -1;
	else if (b->priority < 0)
		b->priority = EBB_BAL_DEF_PRIORITY;

	clamps(b, st);
	stuck_balloons(b, st);
	uint64_t shortfall = pressure(b, st, wsum);

	uint64_t want = 0;
	if (b->state != EBB_BAL_SLEEPING)
		want = sub_sat(add_sat(st->high, st->deficit), add_sat(st->free, inflight));
	want = add_sat(want, shortfall);
	st->want = want;
	if (want) {
		int prio0 = b->priority < 0 ? EBB_BAL_DEF_PRIORITY : b->priority;
		enum ebb_bal_state s0 = b->state;
		if (b->state == EBB_BAL_SLEEPING)
			b->state = EBB_BAL_BALANCING; /* for the trace */
		b->priority = prio0;
		reclaim(b, st, want, s0 == EBB_BAL_SLEEPING ? EBB_BAL_WHY_FOR_PRESSURE
							     : EBB_BAL_WHY_RECLAIM);
		if (s0 == EBB_BAL_SLEEPING) {
			b->state = s0;
			b->priority = -1;
		}
	} else if (b->state == EBB_BAL_SLEEPING && st->free > st->high + (st->high - st->min)) {
		grow(b, st);
	}
	ksm_steer(b, st, h);
}

/* --- policy mom ------------------------------------------------------------- */

/*
 * oVirt MoM's balloon rules (its published balloon.rules), every
 * mom_interval: host free % = pool free / budget.  Below 20% each guest with
 * a balloon shrinks toward used + a free target (20% of its memory scaled by
 * host free / 20%; below 5% host free the target is negative, forcing the
 * guest to swap), by at most 5% of its current memory per cycle; above 20%
 * each ballooned guest grows back by 5% per cycle, to no less than used +
 * 20%.  Moves smaller than 0.25% are not made.  "used" is the guest's
 * memory minus its unused memory (the agent's MemFree here; without an
 * agent the guest is taken as fully used, so it is shrunk only when the
 * host is critical).  MoM uses
 * the guest's guaranteed minimum as a floor where it is smaller than the
 * target; here that is balloon_floor_bytes (0 = no floor but the target).
 * No host swap, no KSM (MoM's balloon-only configuration).
 */
static void policy_mom(struct ebb_balancer *b, struct step *st)
{
	if (st->now < b->mom_next_ns)
		return;
	b->mom_next_ns = st->now + (uint64_t)b->cfg.mom_interval_ms * NS_PER_MS;
	double host_free = b->wm.budget_bytes ? (double)st->free / (double)b->wm.budget_bytes : 0;

	for (size_t i = 0; i < b->nr_vm; i++) {
		struct bal_vm *v = &b->vm[i];
		const struct ebb_bal_vm_obs *in = &v->in;
		if (!(in->caps & EBB_BAL_CAP_BALLOON))
			continue;
		double g = (double)in->guest_bytes;
		double cur = g - (double)in->balloon_actual_bytes;
		double unused = v->agent_fresh ? (double)in->agent_free_bytes : 0.0;
		double used = cur - unused;
		double size;
		enum ebb_bal_reason why;
		if (host_free < 0.20) {
			double gfree = host_free <= 0.05 ? host_free - 0.05 : 0.20 * host_free / 0.20;
			double ideal = used + gfree * cur;
			double floor = in->cfg.balloon_floor_bytes && (double)in->cfg.balloon_floor_bytes < ideal
					       ? (double)in->cfg.balloon_floor_bytes : ideal;
			size = cur * 0.95;
			if (size < floor)
				size = floor;
			if (size > cur)
				continue;
			why = EBB_BAL_WHY_MOM_SHRINK;
		} else {
			if (cur >= g)
				continue;
			size = cur * 1.05;
			if (size > g)
				size = g;
			if (size < used + 0.20 * cur)
				size = used + 0.20 * cur;
			if (size > g)
				size = g;
			why = EBB_BAL_WHY_MOM_GROW;
		}
		if (size < 0)
			size = 0;
		double diff = size > cur ? size - cur : cur - size;
		if (diff <= 0.0025 * cur)
			continue;
		uint64_t keep = page_down((uint64_t)size);
		set_balloon(b, st, v, in->guest_bytes - min_u64(keep, in->guest_bytes), why,
			    EBB_BAL_SRC_BALLOON);
	}
}

/* Leaving policy ebb: lift clamps, give highs back, unadvise KSM. */
static void undo_ebb(struct ebb_balancer *b, struct step *st)
{
	bool done = true;

	for (size_t i = 0; i < b->nr_vm; i++) {
		struct bal_vm *v = &b->vm[i];
		if (v->clamped) {
			if (emit(b, st, v, EBB_BAL_ACT_LIFT_CLAMP, v->in.cfg.max_bytes, 0, 0,
				 EBB_BAL_WHY_LEAVE, EBB_BAL_SRC_NONE)) {
				v->clamped = false;
				b->pool.stats.nr_lifts++;
			} else {
				done = false;
			}
		}
		if (v->high != EBB_BAL_NO_LIMIT &&
		    !set_high(b, st, v, EBB_BAL_NO_LIMIT, EBB_BAL_WHY_LEAVE, EBB_BAL_SRC_NONE))
			done = false;
		if (v->ksm_ours) {
			if (emit(b, st, v, EBB_BAL_ACT_KSM_ADVISE, 0, 0, 0, EBB_BAL_WHY_LEAVE,
				 EBB_BAL_SRC_KSM))
				v->ksm_ours = false;
			else
				done = false;
		}
	}
	if (b->ksmd_ours) {
		if (emit(b, st, NULL, EBB_BAL_ACT_KSMD, 0, 0, 0, EBB_BAL_WHY_LEAVE, EBB_BAL_SRC_KSM))
			b->ksmd_ours = false;
		else
			done = false;
	}
	if (done)
		b->undo_pending = false;
}

/* --- the step ------------------------------------------------------------ */

static int enter_vms(struct ebb_balancer *b, uint64_t now,
		     const struct ebb_bal_vm_obs *vms, size_t nr_vms)
{
	size_t n = 0, matched = 0;
	int err = table_reserve(b, nr_vms);

	if (err)
		return err;
	for (size_t i = 0; i < nr_vms; i++) {
		struct bal_vm *nv = &b->vm_next[n];
		struct ebb_bal_vm_obs s;
		bool fresh;
		if (!sanitise_vm(b, &vms[i], &s, now, &fresh))
			continue;
		const struct bal_vm *old = vm_lookup(b, s.id);
		if (old && old->prev_ns == UINT64_MAX) {
			/* the same id twice in one observation: the first wins */
			b->pool.stats.nr_bad_vm_obs++;
			continue;
		}
		if (old) {
			*nv = *old;
			nv->in = s;
			/* mark the old slot taken, to catch duplicate ids */
			b->vm[old - b->vm].prev_ns = UINT64_MAX;
			matched++;
		} else {
			vm_init(nv, &s, now);
			b->pool.stats.nr_vms_joined++;
		}
		nv->agent_fresh = fresh;
		nv->obs_index = (uint32_t)i;
		nv->excluded = false;
		n++;
	}
	b->pool.stats.nr_vms_left += b->nr_vm - matched;
	struct bal_vm *t = b->vm;
	b->vm = b->vm_next;
	b->vm_next = t;
	b->nr_vm = n;
	hash_rebuild(b);
	for (size_t i = 0; i < n; i++) {
		if (vm_lookup(b, b->vm[i].in.id) != &b->vm[i]) {
			/* duplicate id among new VMs: drop the later copy */
			b->pool.stats.nr_bad_vm_obs++;
			b->vm[i] = b->vm[--n];
			b->nr_vm = n;
			hash_rebuild(b);
			i--;
		}
	}
	return 0;
}

int ebb_bal_step(struct ebb_balancer *bal, uint64_t now_ns,
		 const struct ebb_bal_host_obs *host,
		 const struct ebb_bal_vm_obs *vms, size_t nr_vms,
		 struct ebb_bal_action *actions, size_t max_actions,
		 size_t *nr_actions)
{
	struct step st;
	struct ebb_balancer *b = bal;

	if (!b || !host || (nr_vms && !vms) || (max_actions && !actions) || !nr_actions)
		return -EINVAL;
	*nr_actions = 0;
	if (nr_vms > EBB_BAL_MAX_VMS)
		return -EINVAL;
	if (b->stepped && now_ns < b->last_now_ns) {
		b->pool.stats.nr_bad_host_obs++;
		now_ns = b->last_now_ns;
	}
	b->last_now_ns = now_ns;
	b->stepped = true;
	if (host->mem_total_bytes > PIB * 64) {
		/* no such host: a broken observation, not a pool */
		b->pool.stats.nr_bad_host_obs++;
		return 0;
	}
	if (!b->wm_valid) {
		if (ebb_pool_wmarks_compute(&b->cfg.pool, host->mem_total_bytes, &b->wm) < 0) {
			b->pool.stats.nr_bad_host_obs++;
			ebb_reclaim_logf(b->cfg.log, b->cfg.log_ctx, &b->rl_host, now_ns, EBB_LOG_ERROR,
					 "balancer: no pool can be made of MemTotal %" PRIu64
					 " bytes with this budget and these watermarks",
					 host->mem_total_bytes);
			return 0;
		}
		b->wm_valid = true;
	}
	int err = enter_vms(b, now_ns, vms, nr_vms);
	if (err)
		return err;
	for (size_t i = 0; i < b->nr_vm; i++)
		vm_signals(b, &b->vm[i], now_ns);
	pool_account(b, host);
	ebb_pool_boost_decay(&b->boost, b->cfg.pool.boost_decay_ms, now_ns);

	memset(&st, 0, sizeof(st));
	st.now = now_ns;
	st.out = actions;
	st.max = max_actions;
	st.free = b->pool.free_bytes;
	st.deficit = sub_sat(b->pool.used_bytes, b->wm.budget_bytes);
	st.min = b->wm.min_bytes;
	st.low = b->wm.low_bytes + b->boost.boost_bytes;
	st.high = b->wm.high_bytes + b->boost.boost_bytes;
	b->pool.stats.nr_steps++;

	if (b->undo_pending)
		undo_ebb(b, &st);
	switch (b->cfg.policy) {
	case EBB_BAL_POLICY_EBB:
		policy_ebb(b, &st, host);
		break;
	case EBB_BAL_POLICY_MOM:
		b->state = EBB_BAL_SLEEPING;
		policy_mom(b, &st);
		break;
	default:
		b->state = EBB_BAL_SLEEPING;
		break;
	}
	b->prev_free = st.free;

	b->pool.state = b->state;
	b->pool.priority = b->state == EBB_BAL_SLEEPING ? -1 : b->priority;
	b->pool.budget_bytes = b->wm.budget_bytes;
	b->pool.wmark_min_bytes = b->wm.min_bytes;
	b->pool.wmark_low_bytes = b->wm.low_bytes;
	b->pool.wmark_high_bytes = b->wm.high_bytes;
	b->pool.boost_bytes = b->boost.boost_bytes;
	b->pool.nr_vms = (uint32_t)b->nr_vm;
	uint64_t period = b->state == EBB_BAL_SLEEPING ? b->cfg.idle_step_ms : b->cfg.step_ms;
	if (b->cfg.policy == EBB_BAL_POLICY_MOM && b->cfg.mom_interval_ms < period)
		period = b->cfg.mom_interval_ms;
	b->pool.next_step_ns = now_ns + period * NS_PER_MS;
	*nr_actions = st.n;
	return 0;
}

/* --- reporting --------------------------------------------------------- */

void ebb_bal_get_pool(const struct ebb_balancer *bal, struct ebb_bal_pool_state *out)
{
	*out = bal->pool;
}

int ebb_bal_get_vm(const struct ebb_balancer *bal, uint64_t id, struct ebb_bal_vm_state *out)
{
	const struct bal_vm *v = vm_lookup(bal, id);

	memset(out, 0, sizeof(*out));
	if (!v)
		return -ENOENT;
	out->id = v->in.id;
	memcpy(out->name, v->in.name, sizeof(out->name));
	out->resident_bytes = v->in.resident_bytes;
	out->ws_estimate_bytes = v->ws_bytes;
	out->idle_bytes = v->idle_bytes;
	out->cold_bytes = v->cold_bytes;
	out->balloon_target_bytes = v->balloon_owned ? v->balloon_target : v->in.balloon_actual_bytes;
	out->high_bytes = v->high;
	out->clamped = v->clamped;
	out->clamp_lease_end_ns = v->lease_end_ns;
	memcpy(out->cost_milli, v->cost, sizeof(out->cost_milli));
	out->refault_rate_per_s = v->refault_rate;
	out->grow_rate_bytes_per_s = v->grow_rate;
	out->psi_some_percent = v->psi_some_pct;
	out->nr_pressure = v->nr_pressure;
	out->nr_balloon_sign_changes = v->nr_sign_changes;
	return 0;
}

size_t ebb_bal_trace(const struct ebb_balancer *bal, struct ebb_bal_action *out, size_t max)
{
	size_t n = bal->trace_nr < max ? bal->trace_nr : max;
	size_t start = (bal->trace_head + EBB_BAL_TRACE_LEN - n) % EBB_BAL_TRACE_LEN;

	for (size_t i = 0; i < n; i++)
		out[i] = bal->trace[(start + i) % EBB_BAL_TRACE_LEN];
	return n;
}

static void fmt_cost(char *buf, size_t len, uint32_t c)
{
	if (c == COST_NA)
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
		if (a->vm_id)
			snprintf(idbuf, sizeof(idbuf), "vm#%" PRIu64, a->vm_id);
		else
			snprintf(idbuf, sizeof(idbuf), "host");
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
