/*
 * test_balancer.c — ebbd's balancer driven tick by tick with an injected
 * clock against simulated VMs (tests/sim/bal_sim.h): pool watermarks and
 * boost, kswapd's sleep/balance/direct states, cheapest source first,
 * protections, clamps with leases, the agent loop, hostile agents, stuck
 * balloons, anti-oscillation, KSM steering, the mom and static policies,
 * and validation of everything a VM reports.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "host-reclaim/balancer.h"
#include "host-reclaim/pool.h"
#include "tests/sim/bal_sim.h"

#define MIB ((uint64_t)SIM_MIB)
#define GIB (1024ULL * MIB)
#define MAX_ACTS 512

/* --- harness ---------------------------------------------------------------- */

struct run {
	struct sim sim;
	struct ebb_balancer *bal;
	struct ebb_bal_vm_obs *obs;
	struct ebb_bal_action acts[MAX_ACTS];
	size_t nr_acts;                 /* of the last step */
	uint64_t budget;
	double below_min_s, longest_below_min_s, cur_below_min_s;
	bool stop_applying;             /* the "daemon" died: no more steps applied */
};

static void run_init(struct run *r, size_t nr_vms, uint64_t budget, enum ebb_bal_policy p)
{
	struct ebb_bal_cfg cfg;

	memset(r, 0, sizeof(*r));
	memset(&cfg, 0, sizeof(cfg));
	cfg.policy = p;
	cfg.pool.budget_bytes = budget;
	cfg.ksm_steer = true;
	r->budget = budget;
	sim_init(&r->sim, nr_vms, 42, 64 * GIB, 0);
	r->obs = calloc(nr_vms ? nr_vms : 1, sizeof(*r->obs));
	assert_non_null(r->obs);
	assert_int_equal(ebb_bal_create(&cfg, &r->bal), 0);
}

static void run_fini(struct run *r)
{
	ebb_bal_destroy(r->bal);
	sim_free(&r->sim);
	free(r->obs);
}

/* Invariants every action must keep. */
static void check_actions(const struct run *r)
{
	for (size_t k = 0; k < r->nr_acts; k++) {
		const struct ebb_bal_action *a = &r->acts[k];
		if (a->kind == EBB_BAL_ACT_KSMD) {
			assert_int_equal(a->vm_id, 0);
			continue;
		}
		assert_true(a->vm_id >= 1 && a->vm_id <= r->sim.nr);
		assert_int_equal(r->obs[a->vm_index].id, a->vm_id);
		const struct sim_vm *v = &r->sim.vm[a->vm_id - 1];
		const struct ebb_bal_vm_cfg *c = &v->cfgobs.cfg;
		uint64_t g = v->cfgobs.guest_bytes;
		switch (a->kind) {
		case EBB_BAL_ACT_BALLOON:
			assert_true(a->value <= g - c->balloon_floor_bytes);
			assert_int_equal(a->value2, g - a->value);
			/* the guest keeps at least its min */
			assert_true(g - a->value >= c->min_bytes);
			break;
		case EBB_BAL_ACT_SET_HIGH:
			assert_true(a->value >= c->min_bytes);
			break;
		case EBB_BAL_ACT_CLAMP_MAX:
			assert_true(a->lease_ms > 0);
			assert_true(a->value >= c->min_bytes);
			break;
		default:
			break;
		}
	}
}

static void run_step(struct run *r)
{
	struct ebb_bal_host_obs h;

	sim_observe(&r->sim, &h, r->obs);
	assert_int_equal(ebb_bal_step(r->bal, r->sim.now, &h, r->obs, r->sim.nr, r->acts,
				      MAX_ACTS, &r->nr_acts), 0);
	check_actions(r);
	if (!r->stop_applying)
		sim_apply(&r->sim, r->acts, r->nr_acts);
}

static void run_for(struct run *r, double seconds)
{
	struct ebb_bal_pool_state ps;

	for (double t = 0; t < seconds; t += 1.0) {
		run_step(r);
		sim_tick(&r->sim, 1.0);
		ebb_bal_get_pool(r->bal, &ps);
		double used = sim_used(&r->sim);
		double free = (double)r->budget - used;
		if (free < (double)ps.wmark_min_bytes) {
			r->below_min_s += 1.0;
			r->cur_below_min_s += 1.0;
			if (r->cur_below_min_s > r->longest_below_min_s)
				r->longest_below_min_s = r->cur_below_min_s;
		} else {
			r->cur_below_min_s = 0;
		}
	}
}

static size_t count_kind(const struct run *r, enum ebb_bal_action_kind k, uint64_t vm_id)
{
	size_t n = 0;

	for (size_t i = 0; i < r->nr_acts; i++)
		if (r->acts[i].kind == k && (vm_id == 0 || r->acts[i].vm_id == vm_id))
			n++;
	return n;
}

static const struct ebb_bal_action *first_with_reason(const struct run *r,
							  enum ebb_bal_reason why)
{
	for (size_t k = 0; k < r->nr_acts; k++)
		if (r->acts[k].why.reason == why)
			return &r->acts[k];
	return NULL;
}

/* --- pool ---------------------------------------------------------------------- */

static void test_pool_watermarks(void **state)
{
	struct ebb_pool_cfg c;
	struct ebb_pool_wmarks w;

	(void)state;
	memset(&c, 0, sizeof(c));
	c.budget_bytes = 64 * GIB;
	assert_int_equal(ebb_pool_wmarks_compute(&c, 128 * GIB, &w), 0);
	/* 4 * sqrt(64 GiB in kB) kB = 4 * 8192 kB = 32 MiB */
	assert_int_equal(w.min_bytes, 32 * MIB);
	/* gap = max(min/4, budget * scale_factor / 10000) */
	uint64_t gap = 64 * GIB / 10000 * EBB_POOL_DEF_SCALE_FACTOR;
	assert_int_equal(w.low_bytes, 32 * MIB + gap);
	assert_int_equal(w.high_bytes, 32 * MIB + 2 * gap);
	assert_true(w.boost_max_bytes > 0);

	/* tiny and huge budgets clamp min like min_free_kbytes */
	assert_int_equal(ebb_pool_min_for_budget(1 * MIB), 128 * 1024);
	assert_int_equal(ebb_pool_min_for_budget(1ULL << 50), 256 * MIB);
	/* 16 GiB: 4 * sqrt(16777216) = 16384 kB */
	assert_int_equal(ebb_pool_min_for_budget(16 * GIB), 16 * MIB);

	/* a larger scale factor spreads low and high */
	c.scale_factor = 300;
	assert_int_equal(ebb_pool_wmarks_compute(&c, 128 * GIB, &w), 0);
	assert_int_equal(w.low_bytes - w.min_bytes, 64 * GIB / 10000 * 300);
	/* the kernel's own default: low only min/4 above min on a small budget */
	c.scale_factor = 10;
	c.budget_bytes = 512 * MIB;
	assert_int_equal(ebb_pool_wmarks_compute(&c, 128 * GIB, &w), 0);
	assert_int_equal(w.low_bytes - w.min_bytes, w.min_bytes / 4);
	c.budget_bytes = 64 * GIB;

	/* overrides, and their order is checked */
	memset(&c, 0, sizeof(c));
	c.budget_bytes = 8 * GIB;
	c.wmark_min_bytes = 100 * MIB;
	c.wmark_low_bytes = 200 * MIB;
	c.wmark_high_bytes = 300 * MIB;
	assert_int_equal(ebb_pool_wmarks_compute(&c, 16 * GIB, &w), 0);
	assert_int_equal(w.min_bytes, 100 * MIB);
	assert_int_equal(w.low_bytes, 200 * MIB);
	assert_int_equal(w.high_bytes, 300 * MIB);
	c.wmark_low_bytes = 50 * MIB;
	assert_int_equal(ebb_pool_wmarks_compute(&c, 16 * GIB, &w), -EINVAL);
	c.wmark_low_bytes = 200 * MIB;
	c.budget_bytes = 32 * GIB; /* larger than MemTotal */
	assert_int_equal(ebb_pool_wmarks_compute(&c, 16 * GIB, &w), -EINVAL);
	c.scale_factor = 5000;
	c.budget_bytes = 8 * GIB;
	assert_int_equal(ebb_pool_wmarks_compute(&c, 16 * GIB, &w), -EINVAL);

	/* derived budgets: percent, and MemTotal minus the reserve */
	memset(&c, 0, sizeof(c));
	c.budget_percent = 50;
	assert_int_equal(ebb_pool_wmarks_compute(&c, 16 * GIB, &w), 0);
	assert_int_equal(w.budget_bytes, 8 * GIB);
	c.budget_percent = 0;
	assert_int_equal(ebb_pool_wmarks_compute(&c, 16 * GIB, &w), 0);
	assert_int_equal(w.budget_bytes, 15 * GIB);     /* reserve max(512M, 1/16) = 1 GiB */
	assert_int_equal(ebb_pool_wmarks_compute(&c, 0, &w), -EINVAL);
}

static void test_pool_boost(void **state)
{
	struct ebb_pool_cfg c;
	struct ebb_pool_wmarks w;
	struct ebb_pool_boost b;

	(void)state;
	memset(&c, 0, sizeof(c));
	memset(&b, 0, sizeof(b));
	c.budget_bytes = 64 * GIB;
	assert_int_equal(ebb_pool_wmarks_compute(&c, 64 * GIB, &w), 0);
	ebb_pool_boost_burst(&b, &w, 10 * MIB, 0);
	assert_int_equal(b.boost_bytes, 10 * MIB);
	ebb_pool_boost_burst(&b, &w, 100 * GIB, 0);     /* capped */
	assert_int_equal(b.boost_bytes, w.boost_max_bytes);
	uint64_t full = b.boost_bytes;
	ebb_pool_boost_decay(&b, 10000, 5 * SIM_S);      /* half a half-life: unchanged */
	assert_int_equal(b.boost_bytes, full);
	ebb_pool_boost_decay(&b, 10000, 10 * SIM_S);
	assert_int_equal(b.boost_bytes, full / 2);
	ebb_pool_boost_decay(&b, 10000, 1000 * SIM_S);
	assert_int_equal(b.boost_bytes, 0);
	assert_int_equal(b.nr_bursts, 2);

	c.boost_factor = EBB_POOL_NO_BOOST;
	assert_int_equal(ebb_pool_wmarks_compute(&c, 64 * GIB, &w), 0);
	assert_int_equal(w.boost_max_bytes, 0);
}

/* --- kswapd states ------------------------------------------------------------- */

static void test_sleeps_above_low(void **state)
{
	struct run r;
	struct ebb_bal_pool_state ps;

	(void)state;
	run_init(&r, 4, 16 * GIB, EBB_BAL_POLICY_EBB);
	for (size_t i = 0; i < 4; i++)
		sim_vm_setup(&r.sim, i, 2 * GIB, 512.0 * MIB, i % 2 == 0);
	run_for(&r, 600);
	ebb_bal_get_pool(r.bal, &ps);
	assert_int_equal(ps.state, EBB_BAL_SLEEPING);
	assert_int_equal(ps.priority, -1);
	assert_int_equal(ps.stats.nr_wakeups, 0);
	assert_int_equal(r.sim.nr_actions, 0);
	assert_int_equal(ps.nr_vms, 4);
	assert_true(ps.free_bytes >= ps.wmark_high_bytes);
	/* an idle balancer asks to be stepped less often */
	assert_true(ps.next_step_ns - r.sim.now >= 5 * SIM_S - SIM_S);
	run_fini(&r);
}

/* A burst (free falls from well above low to below it in one step) boosts
 * low and high; the boost decays by half every 10 s. */
static void test_burst_boosts_watermarks(void **state)
{
	struct run r;
	struct ebb_bal_pool_state ps;

	(void)state;
	run_init(&r, 2, 8 * GIB, EBB_BAL_POLICY_EBB);
	for (size_t i = 0; i < 2; i++) {
		sim_vm_setup(&r.sim, i, 2 * GIB, 1000.0 * MIB, false);
		r.sim.vm[i].cache = 800.0 * MIB;
	}
	run_for(&r, 10);
	ebb_bal_get_pool(r.bal, &ps);
	assert_int_equal(ps.boost_bytes, 0);
	r.sim.host_used = 8.0 * GIB - sim_used(&r.sim) - 40.0 * MIB;   /* free 40 MiB < low */
	run_step(&r);
	ebb_bal_get_pool(r.bal, &ps);
	print_message("# boost %" PRIu64 " MiB, low %" PRIu64 " MiB\n", ps.boost_bytes / MIB,
		      ps.wmark_low_bytes / MIB);
	assert_true(ps.boost_bytes > 0);
	assert_true(r.nr_acts > 0);
	/* the round aimed at the boosted high */
	assert_int_equal(r.acts[0].why.wmark_high_bytes, ps.wmark_high_bytes + ps.boost_bytes);
	uint64_t b0 = ps.boost_bytes;
	for (int t = 0; t < 10; t++) {
		sim_tick(&r.sim, 1.0);
		run_step(&r);
	}
	ebb_bal_get_pool(r.bal, &ps);
	assert_true(ps.boost_bytes <= b0 / 2 + 4096);
	run_fini(&r);
}

/*
 * Overcommit: 6 VMs of 2 GiB on a 6 GiB pool; caches grow into every
 * guest.  The balancer must hold the pool above min (a few seconds of
 * transient at most), and take guest cache (balloon) before host reclaim.
 */
static void test_watermarks_held(void **state)
{
	struct run r;
	struct ebb_bal_pool_state ps;

	(void)state;
	run_init(&r, 6, 6 * GIB, EBB_BAL_POLICY_EBB);
	for (size_t i = 0; i < 6; i++) {
		sim_vm_setup(&r.sim, i, 2 * GIB, 600.0 * MIB, i < 4);
		r.sim.vm[i].cache = 200.0 * MIB;
	}
	run_for(&r, 1800);
	ebb_bal_get_pool(r.bal, &ps);
	print_message("# below min %.0f s (longest %.0f s), wakeups %" PRIu64
		      ", balloon %" PRIu64 " MiB, high %" PRIu64 " MiB asked\n",
		      r.below_min_s, r.longest_below_min_s, ps.stats.nr_wakeups,
		      ps.stats.reclaimed_bytes[EBB_BAL_SRC_BALLOON] / MIB,
		      ps.stats.reclaimed_bytes[EBB_BAL_SRC_HIGH] / MIB);
	assert_true(ps.stats.nr_wakeups >= 1);
	assert_true(r.longest_below_min_s <= 5);
	assert_true(r.below_min_s <= 20);
	/* balloon (guest cache) was the main source */
	assert_true(ps.stats.reclaimed_bytes[EBB_BAL_SRC_BALLOON] >
		    ps.stats.reclaimed_bytes[EBB_BAL_SRC_HIGH]);
	/* nobody's working set was squeezed for long */
	for (size_t i = 0; i < 6; i++)
		assert_true(r.sim.vm[i].below_ws_s < 60);
	/* at the end the pool is balanced */
	assert_true(sim_used(&r.sim) <= (double)(r.budget - ps.wmark_min_bytes));
	run_fini(&r);
}

/* One step, pool short: the agent-reported cache goes first, host reclaim not. */
static void test_cheapest_source_first(void **state)
{
	struct run r;

	(void)state;
	run_init(&r, 2, 4 * GIB, EBB_BAL_POLICY_EBB);
	sim_vm_setup(&r.sim, 0, 2 * GIB, 200.0 * MIB, true);    /* cache-rich, agent */
	sim_vm_setup(&r.sim, 1, 2 * GIB, 200.0 * MIB, false);   /* idle, no agent */
	r.sim.vm[0].cache = 1700.0 * MIB;
	r.sim.vm[1].cache = 1700.0 * MIB;
	r.sim.host_used = 300.0 * MIB;
	sim_tick(&r.sim, 1.0);                                   /* used ~4.1 GiB of 4 */
	run_step(&r);
	/* below min: clamps first, then the reclaim round */
	const struct ebb_bal_action *a = NULL;
	for (size_t k = 0; k < r.nr_acts && !a; k++)
		if (r.acts[k].why.reason == EBB_BAL_WHY_RECLAIM)
			a = &r.acts[k];
	assert_non_null(a);
	assert_int_equal(a->kind, EBB_BAL_ACT_BALLOON);
	assert_int_equal(a->vm_id, 1);
	assert_int_equal(a->why.source, EBB_BAL_SRC_BALLOON);
	assert_true(a->why.cost_milli[EBB_BAL_SRC_BALLOON] < a->why.cost_milli[EBB_BAL_SRC_HIGH]);
	/* the balloon is capped per step (inflate slowly) beyond the guest's free
	 * memory, which the host holds no page of (free page reporting) */
	double guest_free = 2.0 * GIB - r.sim.vm[0].ws - r.sim.vm[0].cache;
	assert_true((double)a->value <= 2.0 * GIB / 20 + guest_free);
	assert_true((double)a->value > guest_free);
	/* the dearer source only for what the balloon did not cover */
	for (size_t k = 0; k < r.nr_acts; k++)
		if (r.acts[k].kind == EBB_BAL_ACT_SET_HIGH)
			assert_true(&r.acts[k] > a);
	run_fini(&r);
}

/* No balloon, but an agent: it is asked to free its cache (proactive, else drop). */
static void test_agent_reclaim_without_balloon(void **state)
{
	struct run r;

	(void)state;
	run_init(&r, 2, 4 * GIB, EBB_BAL_POLICY_EBB);
	for (size_t i = 0; i < 2; i++) {
		sim_vm_setup(&r.sim, i, 2 * GIB, 200.0 * MIB, true);
		r.sim.vm[i].cfgobs.caps &= ~(uint32_t)EBB_BAL_CAP_BALLOON;
		r.sim.vm[i].cache = 1700.0 * MIB;
	}
	r.sim.vm[0].cfgobs.caps |= EBB_BAL_CAP_AGENT_PROACTIVE;
	r.sim.host_used = 300.0 * MIB;
	sim_tick(&r.sim, 1.0);
	run_step(&r);
	const struct ebb_bal_action *a = first_with_reason(&r, EBB_BAL_WHY_RECLAIM);
	assert_non_null(a);
	assert_int_equal(a->why.source, EBB_BAL_SRC_BALLOON);
	assert_true(a->kind == EBB_BAL_ACT_AGENT_RECLAIM || a->kind == EBB_BAL_ACT_AGENT_DROP_CACHE);
	if (a->kind == EBB_BAL_ACT_AGENT_RECLAIM) {
		assert_int_equal(a->vm_id, 1);
		assert_true(a->value > 0 && a->value <= 2 * GIB / 20);
	} else {
		assert_int_equal(a->vm_id, 2);
	}
	assert_int_equal(count_kind(&r, EBB_BAL_ACT_BALLOON, 0), 0);
	/* then the pool settles, with no more than one request per VM a minute */
	size_t reqs = 0;
	for (int t = 0; t < 120; t++) {
		sim_tick(&r.sim, 1.0);
		run_step(&r);
		reqs += count_kind(&r, EBB_BAL_ACT_AGENT_RECLAIM, 0) +
			count_kind(&r, EBB_BAL_ACT_AGENT_DROP_CACHE, 0);
	}
	assert_true(reqs <= 4);
	struct ebb_bal_pool_state ps;
	ebb_bal_get_pool(r.bal, &ps);
	assert_true(ps.free_bytes >= ps.wmark_min_bytes);
	run_fini(&r);
}

/* Of two VMs with cold memory, the one that refaults is taken from last. */
static void test_refaults_raise_cost(void **state)
{
	struct run r;
	struct ebb_bal_vm_state vs0, vs1;

	(void)state;
	run_init(&r, 2, 4 * GIB, EBB_BAL_POLICY_EBB);
	for (size_t i = 0; i < 2; i++) {
		sim_vm_setup(&r.sim, i, 2 * GIB, 300.0 * MIB, false);
		r.sim.vm[i].cache = 1500.0 * MIB;
	}
	sim_tick(&r.sim, 1.0);                   /* resident ~3.6 GiB of 4 */
	/* VM 1 refaults at 2000 pages/s (the model is frozen: no ticks) */
	for (int t = 0; t < 30; t++) {
		r.sim.vm[0].refaults += 2000;
		r.sim.vm[0].swapin_ns += 2000 * 20000.0;
		r.sim.now += SIM_S;
		run_step(&r);
		assert_int_equal(r.nr_acts, 0);      /* free >= low: asleep */
	}
	r.sim.host_used = 500.0 * MIB;           /* now the pool is short */
	r.sim.now += SIM_S;
	run_step(&r);
	const struct ebb_bal_action *a = first_with_reason(&r, EBB_BAL_WHY_RECLAIM);
	assert_non_null(a);
	assert_int_equal(a->kind, EBB_BAL_ACT_SET_HIGH);
	assert_int_equal(a->vm_id, 2);           /* the quiet one */
	assert_int_equal(count_kind(&r, EBB_BAL_ACT_SET_HIGH, 1), 0);
	assert_int_equal(ebb_bal_get_vm(r.bal, 1, &vs0), 0);
	assert_int_equal(ebb_bal_get_vm(r.bal, 2, &vs1), 0);
	assert_true(vs0.cost_milli[EBB_BAL_SRC_HIGH] > 2 * vs1.cost_milli[EBB_BAL_SRC_HIGH]);
	assert_true(vs0.refault_rate_per_s > 1000);
	/* no agent: the balloon is not a source (nothing says what the guest needs) */
	assert_int_equal(vs1.cost_milli[EBB_BAL_SRC_BALLOON], UINT32_MAX);
	run_fini(&r);
}

/* A balancer of policy ebb on @budget, a 64 GiB host, and two VMs of
 * @guest with host reclaim (high, max leases), no agent, an idle histogram. */
static struct ebb_balancer *two_vms(uint64_t budget, uint64_t guest, struct ebb_bal_host_obs *h,
				    struct ebb_bal_vm_obs vms[2])
{
	struct ebb_balancer *b;
	struct ebb_bal_cfg cfg;

	memset(&cfg, 0, sizeof(cfg));
	cfg.policy = EBB_BAL_POLICY_EBB;
	cfg.pool.budget_bytes = budget;
	assert_int_equal(ebb_bal_create(&cfg, &b), 0);
	memset(h, 0, sizeof(*h));
	h->mem_total_bytes = 64 * GIB;
	memset(vms, 0, 2 * sizeof(*vms));
	for (int i = 0; i < 2; i++) {
		vms[i].id = (uint64_t)i + 1;
		vms[i].guest_bytes = guest;
		vms[i].caps = EBB_BAL_CAP_HIGH | EBB_BAL_CAP_MAX_LEASE;
		vms[i].cfg.weight = 100;
		vms[i].cfg.high_bytes = vms[i].cfg.max_bytes = EBB_BAL_NO_LIMIT;
		vms[i].cur_high_bytes = vms[i].cur_max_bytes = EBB_BAL_NO_LIMIT;
		vms[i].ws.valid = true;
	}
	return b;
}

/*
 * Cold memory elsewhere funds a thrashing VM beyond its share.  VM 1 is
 * squeezed below its RAM (above its share) and then refaults hard.  Where
 * VM 2's memory was last used 9-16 s ago (cold, though inside the 32 s
 * working set), VM 1's high goes back up at once; where VM 2 used all of
 * it within the last second, VM 1 gets nothing beyond what the pool spares.
 * With a 256 MiB balloon in VM 1 (no agent: the guest's need is unknown)
 * the raise is the high's alone: the refaults are of pages the high evicted,
 * which a deflate would not bring back (the libvirt test saw a host-squeezed
 * domain's balloon given back step by step while its refaults went on).
 */
static uint64_t refault_raise(bool other_cold, bool ballooned)
{
	struct ebb_bal_host_obs h;
	struct ebb_bal_vm_obs vms[2];
	struct ebb_bal_action acts[16];
	uint64_t high = 0, raised = 0, refaults = 0, deflates = 0;
	size_t n;
	struct ebb_balancer *b = two_vms(4 * GIB, 4 * GIB, &h, vms);

	if (ballooned) {
		vms[0].caps |= EBB_BAL_CAP_BALLOON;
		vms[0].balloon_actual_bytes = vms[0].balloon_target_bytes = 256 * MIB;
	}

	vms[0].resident_bytes = 2816 * MIB;    /* share: 2 GiB each */
	vms[0].ws.bytes[0] = vms[0].resident_bytes;
	vms[1].resident_bytes = 1280 * MIB;
	vms[1].ws.bytes[other_cold ? 4 : 0] = vms[1].resident_bytes;
	for (int t = 1; t <= 20 && !raised; t++) {
		/* the host holds nothing but the VMs */
		h.mem_available_bytes = h.mem_total_bytes - vms[0].resident_bytes - vms[1].resident_bytes;
		assert_int_equal(ebb_bal_step(b, (uint64_t)t * SIM_S, &h, vms, 2, acts, 16, &n), 0);
		for (size_t k = 0; k < n; k++) {
			if (acts[k].kind == EBB_BAL_ACT_BALLOON && acts[k].vm_id == 1 &&
			    acts[k].value < 256 * MIB)
				deflates++;
			if (acts[k].kind != EBB_BAL_ACT_SET_HIGH || acts[k].vm_id != 1)
				continue;
			if (acts[k].why.reason == EBB_BAL_WHY_REFAULTS && acts[k].value > high)
				raised = acts[k].value - high;
			high = acts[k].value;
		}
		if (high && !raised) {
			/* squeezed: VM 1 sits at its high and refaults 5000 pages/s */
			vms[0].cur_high_bytes = high;
			vms[0].resident_bytes = high;
			vms[0].ws.bytes[0] = high;
			refaults += 5000;
			vms[0].nr_refaults = refaults;
		}
		if (t == 1)
			assert_true(high > 0 && high < 2816 * MIB);   /* the pool was short */
	}
	print_message("# other %s%s: VM 1 squeezed to %llu MiB, raised by %llu MiB, %llu balloon deflates\n",
		      other_cold ? "cold" : "hot", ballooned ? ", VM 1 ballooned" : "",
		      (unsigned long long)((high - raised) / MIB), (unsigned long long)(raised / MIB),
		      (unsigned long long)deflates);
	ebb_bal_destroy(b);
	if (ballooned)
		assert_int_equal(deflates, 0);
	return raised;
}

static void test_cold_memory_funds_refaults(void **state)
{
	uint64_t cold = refault_raise(true, false), hot = refault_raise(false, false);

	(void)state;
	assert_true(cold >= 32 * MIB);
	assert_true(hot < 32 * MIB);
	/* a balloon in the refaulting VM changes nothing: the high goes up */
	assert_true(refault_raise(true, true) >= 32 * MIB);
}

/*
 * A VM that is faulting in new memory is spared.  VM 1 idled until now (all
 * its pages unused for over a minute) and starts a workload that faults in
 * 8 MiB/s; VM 2 holds as much, idle too (last used 32-64 s ago), and
 * refaults a little.
 * By cost alone VM 1 is the cheapest source (no refaults yet, all cold);
 * when the pool runs short the room must come from VM 2 (ebbd_pool in the
 * box saw the growing VM's high lowered the moment it started).
 */
static uint64_t growing_vm_taken(bool vm1_grows)
{
	struct ebb_bal_host_obs h;
	struct ebb_bal_vm_obs vms[2];
	struct ebb_bal_action acts[16];
	uint64_t taken_from_1 = 0, taken_from_2 = 0, refaults = 0;
	size_t n;
	struct ebb_balancer *b = two_vms(2 * GIB, 2 * GIB, &h, vms);

	vms[0].resident_bytes = vms[1].resident_bytes = 640 * MIB;
	vms[0].ws.bytes[EBB_BAL_WS_BUCKETS - 1] = vms[0].resident_bytes;
	vms[1].ws.bytes[6] = vms[1].resident_bytes;
	uint64_t host = 640 * MIB;
	/* 50 s: VM 1 stays within its share (1 GiB of the 2) */
	for (int t = 1; t <= 50; t++) {
		/* from t=10 on, VM 1 (or the host) faults in 8 MiB/s; the pool runs
		 * short after ~15 s of it */
		if (t > 10 && vm1_grows)
			vms[0].resident_bytes += 8 * MIB;  /* not in the histogram yet: used */
		else if (t > 10)
			host += 8 * MIB;
		refaults += 20;
		vms[1].nr_refaults = refaults;
		h.mem_available_bytes = h.mem_total_bytes - vms[0].resident_bytes -
					vms[1].resident_bytes - host;
		assert_int_equal(ebb_bal_step(b, (uint64_t)t * SIM_S, &h, vms, 2, acts, 16, &n), 0);
		for (size_t k = 0; k < n; k++) {
			if (acts[k].kind != EBB_BAL_ACT_SET_HIGH && acts[k].kind != EBB_BAL_ACT_CLAMP_MAX)
				continue;
			if (acts[k].why.reason != EBB_BAL_WHY_RECLAIM)
				continue;
			/* the engine reclaims down to its new high */
			struct ebb_bal_vm_obs *o = &vms[acts[k].vm_id - 1];
			if (o->resident_bytes > acts[k].value)
				o->resident_bytes = acts[k].value;
			if (acts[k].vm_id == 1)
				taken_from_1++;
			else
				taken_from_2++;
		}
	}
	print_message("# VM 1 %s: %llu reclaim actions on it, %llu on VM 2\n",
		      vm1_grows ? "grows" : "idle", (unsigned long long)taken_from_1,
		      (unsigned long long)taken_from_2);
	assert_true(taken_from_1 + taken_from_2 > 0);   /* the pool was short */
	ebb_bal_destroy(b);
	return taken_from_1;
}

static void test_growing_vm_spared(void **state)
{
	(void)state;
	assert_int_equal(growing_vm_taken(true), 0);
	/* the same VM, quiet: it is the cheapest source and is taken from */
	assert_true(growing_vm_taken(false) > 0);
}

/*
 * A high raised for refaults is held for a while (no ping-pong) — but not
 * through an emergency.  VM 2 is squeezed while quiet, refaults once, gets
 * its high raised and held; its refaults stop.  Then the pool falls below
 * min while VM 1 thrashes: the balancer must take from VM 2 (cheap now)
 * within the hold, not from the thrashing VM 1 (itest_ebbd saw both VMs held
 * and the pool clamped at zero free for the whole hold).
 */
static void test_hold_yields_below_min(void **state)
{
	struct run r;
	struct ebb_bal_pool_state ps;

	(void)state;
	run_init(&r, 2, 4 * GIB, EBB_BAL_POLICY_EBB);
	for (size_t i = 0; i < 2; i++) {
		sim_vm_setup(&r.sim, i, 2 * GIB, 300.0 * MIB, false);
		r.sim.vm[i].cache = 1500.0 * MIB;
	}
	sim_tick(&r.sim, 1.0);
	for (int t = 0; t < 10; t++) {           /* VM 1 thrashes from the start */
		r.sim.vm[0].refaults += 2000;
		r.sim.vm[0].swapin_ns += 2000 * 20000.0;
		r.sim.now += SIM_S;
		run_step(&r);
	}
	r.sim.host_used = 500.0 * MIB;           /* short: VM 2 (quiet) gives */
	r.sim.vm[0].refaults += 2000;
	r.sim.now += SIM_S;
	run_step(&r);
	assert_true(count_kind(&r, EBB_BAL_ACT_SET_HIGH, 2) >= 1);
	r.sim.host_used = 0;                     /* room again; VM 2 refaults */
	bool raised = false;
	for (int t = 0; t < 5 && !raised; t++) {
		r.sim.vm[0].refaults += 2000;
		r.sim.vm[1].refaults += 3000;
		r.sim.vm[1].swapin_ns += 3000 * 20000.0;
		r.sim.now += SIM_S;
		run_step(&r);
		const struct ebb_bal_action *a = first_with_reason(&r, EBB_BAL_WHY_REFAULTS);
		raised = a && a->vm_id == 2;
	}
	assert_true(raised);
	/* VM 2 is quiet again; the pool falls below min; VM 1 still thrashes */
	ebb_bal_get_pool(r.bal, &ps);            /* free just below min */
	r.sim.host_used = (double)(ps.free_bytes - ps.wmark_min_bytes) + 16.0 * MIB;
	bool took_from_2 = false, took_from_1 = false;
	for (int t = 0; t < 10 && !took_from_2; t++) {
		r.sim.vm[0].refaults += 2000;
		r.sim.vm[0].swapin_ns += 2000 * 20000.0;
		r.sim.now += SIM_S;
		run_step(&r);
		ebb_bal_get_pool(r.bal, &ps);
		for (size_t k = 0; k < r.nr_acts; k++) {
			const struct ebb_bal_action *a = &r.acts[k];
			if (a->kind == EBB_BAL_ACT_SET_HIGH && a->why.reason == EBB_BAL_WHY_RECLAIM) {
				took_from_2 |= a->vm_id == 2;
				took_from_1 |= a->vm_id == 1;
			}
		}
	}
	assert_int_equal(ps.state, EBB_BAL_DIRECT_CLAMP);
	assert_true(took_from_2);
	assert_false(took_from_1);
	run_fini(&r);
}

/*
 * Protections: VM 1 has low = 1.5 GiB and min = 1 GiB, VM 2 none.  While VM
 * 2 has memory VM 1 is not touched below its low; when the pool needs more
 * than VM 2 can give, VM 1 goes below low but never below min.
 */
static void test_protections(void **state)
{
	struct run r;

	(void)state;
	run_init(&r, 2, 4 * GIB, EBB_BAL_POLICY_EBB);
	for (size_t i = 0; i < 2; i++) {
		sim_vm_setup(&r.sim, i, 2 * GIB, 300.0 * MIB, false);
		r.sim.vm[i].cache = 1600.0 * MIB;
	}
	r.sim.vm[0].cfgobs.cfg.min_bytes = 1 * GIB;
	r.sim.vm[0].cfgobs.cfg.low_bytes = 1536 * MIB;
	r.sim.host_used = 600.0 * MIB;
	sim_tick(&r.sim, 1.0);
	run_for(&r, 120);
	print_message("# vm1 %.0f MiB vm2 %.0f MiB\n", r.sim.vm[0].resident / MIB,
		      r.sim.vm[1].resident / MIB);
	/* moderate need: VM 1 gave only what it had above its low */
	assert_true(r.sim.vm[0].resident >= 1536.0 * MIB);
	assert_true(r.sim.vm[1].resident < 1750.0 * MIB);

	/*
	 * Now the host takes 1.5 GiB more.  VM 2 is reclaimed first even into
	 * its working set (low protects VM 1 while anything else is left),
	 * down to its own min of 400 MiB; only then is VM 1's low breached.
	 */
	r.sim.vm[1].cfgobs.cfg.min_bytes = 400 * MIB;
	r.sim.host_used = 2136.0 * MIB;
	run_for(&r, 300);
	print_message("# vm1 %.0f MiB vm2 %.0f MiB\n", r.sim.vm[0].resident / MIB,
		      r.sim.vm[1].resident / MIB);
	assert_true(r.sim.vm[0].resident < 1536.0 * MIB);       /* low breached */
	assert_true(r.sim.vm[0].resident >= 1.0 * GIB - 4096);   /* min never */
	assert_true(r.sim.vm[0].high >= 1.0 * GIB);
	assert_true(r.sim.vm[1].high >= 400.0 * MIB);
	assert_true(r.sim.vm[1].resident >= 400.0 * MIB);
	run_fini(&r);
}

/* Weight: of two equal VMs, the one with three times the weight gives less. */
static void test_weights(void **state)
{
	struct run r;

	(void)state;
	run_init(&r, 2, 4 * GIB, EBB_BAL_POLICY_EBB);
	for (size_t i = 0; i < 2; i++) {
		sim_vm_setup(&r.sim, i, 2 * GIB, 300.0 * MIB, false);
		r.sim.vm[i].cache = 1500.0 * MIB;
	}
	r.sim.vm[1].cfgobs.cfg.weight = 300;
	r.sim.host_used = 1000.0 * MIB;
	sim_tick(&r.sim, 1.0);
	run_for(&r, 300);
	print_message("# resident: weight 100 %.0f MiB, weight 300 %.0f MiB\n",
		      r.sim.vm[0].resident / MIB, r.sim.vm[1].resident / MIB);
	assert_true(r.sim.vm[0].resident < 1800.0 * MIB);          /* it gave */
	assert_true(r.sim.vm[1].resident > r.sim.vm[0].resident + 500.0 * MIB);
	assert_true(r.longest_below_min_s <= 5);
	run_fini(&r);
}

/* Below min: every VM's max is clamped at its resident size with a lease. */
static void test_direct_clamp_lease(void **state)
{
	struct run r;
	struct ebb_bal_pool_state ps;

	(void)state;
	run_init(&r, 3, 6 * GIB, EBB_BAL_POLICY_EBB);
	for (size_t i = 0; i < 3; i++) {
		sim_vm_setup(&r.sim, i, 2 * GIB, 1024.0 * MIB, false);
		r.sim.vm[i].cache = 400.0 * MIB;
	}
	r.sim.vm[2].cfgobs.caps &= ~(uint32_t)EBB_BAL_CAP_MAX_LEASE;   /* cannot be clamped */
	sim_tick(&r.sim, 1.0);
	run_for(&r, 10);
	r.sim.host_used = 2.0 * GIB;        /* free falls below min at once */
	run_step(&r);
	ebb_bal_get_pool(r.bal, &ps);
	assert_int_equal(ps.state, EBB_BAL_DIRECT_CLAMP);
	assert_int_equal(ps.stats.nr_direct, 1);
	assert_int_equal(count_kind(&r, EBB_BAL_ACT_CLAMP_MAX, 1), 1);
	assert_int_equal(count_kind(&r, EBB_BAL_ACT_CLAMP_MAX, 2), 1);
	assert_int_equal(count_kind(&r, EBB_BAL_ACT_CLAMP_MAX, 3), 0);
	for (size_t k = 0; k < r.nr_acts; k++) {
		if (r.acts[k].kind != EBB_BAL_ACT_CLAMP_MAX)
			continue;
		assert_int_equal(r.acts[k].lease_ms, 30000);
		assert_int_equal(r.acts[k].why.reason, EBB_BAL_WHY_DIRECT);
		/* at resident */
		assert_true(r.acts[k].value <= (uint64_t)r.sim.vm[r.acts[k].vm_id - 1].resident);
		assert_true(r.acts[k].value + 4096 > (uint64_t)r.sim.vm[r.acts[k].vm_id - 1].resident);
	}
	/*
	 * Leases are renewed at half-lease while the pool stays below low (here
	 * nothing can be reclaimed: the VMs offer no balloon and no high).
	 */
	for (size_t i = 0; i < 3; i++)
		r.sim.vm[i].cfgobs.caps &= ~(uint32_t)(EBB_BAL_CAP_BALLOON | EBB_BAL_CAP_HIGH);
	r.sim.host_used = 2.5 * GIB;
	size_t renewals = 0;
	for (int t = 0; t < 40; t++) {
		sim_tick(&r.sim, 1.0);
		run_step(&r);
		renewals += count_kind(&r, EBB_BAL_ACT_CLAMP_MAX, 1);
		assert_true(r.sim.vm[0].clamped);
	}
	assert_int_equal(renewals, 2);            /* at 15 s and 30 s of a 30 s lease */
	/* the host gives its memory back: the clamps are lifted */
	r.sim.host_used = 0;
	sim_tick(&r.sim, 1.0);
	run_step(&r);
	ebb_bal_get_pool(r.bal, &ps);
	assert_int_equal(ps.stats.nr_lifts, 2);
	assert_false(r.sim.vm[0].clamped);
	run_fini(&r);
}

/* If the daemon stops stepping, the clamps expire with their lease. */
static void test_clamp_expires_without_daemon(void **state)
{
	struct run r;

	(void)state;
	run_init(&r, 2, 4 * GIB, EBB_BAL_POLICY_EBB);
	for (size_t i = 0; i < 2; i++)
		sim_vm_setup(&r.sim, i, 2 * GIB, 1024.0 * MIB, false);
	sim_tick(&r.sim, 1.0);
	r.sim.host_used = 2040.0 * MIB;
	run_step(&r);
	assert_true(r.sim.vm[0].clamped && r.sim.vm[1].clamped);
	/* ebbd is killed: nothing steps for 31 s */
	for (int t = 0; t < 31; t++)
		sim_tick(&r.sim, 1.0);
	assert_false(r.sim.vm[0].clamped);
	assert_true(r.sim.vm[0].max >= 2.0 * GIB);
	/* a restarted balancer adopts a clamp it finds and lifts it at >= low */
	struct run r2;
	run_init(&r2, 2, 4 * GIB, EBB_BAL_POLICY_EBB);
	memcpy(r2.sim.vm, r.sim.vm, 2 * sizeof(*r.sim.vm));
	r2.sim.now = r.sim.now;
	r2.sim.vm[1].clamped = true;
	r2.sim.vm[1].lease_end_ns = r2.sim.now + 10 * SIM_S;
	run_step(&r2);
	assert_int_equal(count_kind(&r2, EBB_BAL_ACT_LIFT_CLAMP, 2), 1);
	run_fini(&r2);
	run_fini(&r);
}

/* --- the agent loop ---------------------------------------------------------- */

static void test_pressure_deflates_at_once(void **state)
{
	struct run r;

	(void)state;
	run_init(&r, 2, 8 * GIB, EBB_BAL_POLICY_EBB);
	sim_vm_setup(&r.sim, 0, 2 * GIB, 600.0 * MIB, true);
	sim_vm_setup(&r.sim, 1, 2 * GIB, 600.0 * MIB, true);
	r.sim.vm[0].balloon = r.sim.vm[0].balloon_target = 1024.0 * MIB;
	r.sim.vm[0].cfgobs.balloon_target_bytes = 1024 * MIB;
	sim_tick(&r.sim, 1.0);
	run_for(&r, 5);
	assert_int_equal(r.sim.nr_actions, 0);
	/* the working set grows past what the balloon leaves: the agent cries */
	r.sim.vm[0].ws = r.sim.vm[0].ws_target = 1000.0 * MIB;
	sim_tick(&r.sim, 1.0);
	assert_true(r.sim.vm[0].nr_pressure > 0);
	run_step(&r);
	assert_int_equal(count_kind(&r, EBB_BAL_ACT_BALLOON, 1), 1);
	assert_int_equal(r.acts[0].why.reason, EBB_BAL_WHY_PRESSURE);
	assert_true(r.acts[0].value < 1024 * MIB);
	/* deflate fast: the per-round cap is 25% of the guest */
	assert_true(1024 * MIB - r.acts[0].value <= 512 * MIB);
	assert_true(1024 * MIB - r.acts[0].value >= (uint64_t)r.sim.vm[0].need - MIB);
	/* and the guest settles without more pressure */
	run_for(&r, 60);
	assert_true(r.sim.vm[0].guest_short_s < 5);
	struct ebb_bal_vm_state vs;
	assert_int_equal(ebb_bal_get_vm(r.bal, 1, &vs), 0);
	assert_true(vs.nr_pressure >= 1);
	run_fini(&r);
}

/*
 * Hostile agents: one claims pressure every second with an absurd need, one
 * reports absurd numbers.  The pool stays tight; the others are not starved,
 * the liar gets no more than its weighted share, and everything is counted.
 */
static void test_hostile_agents(void **state)
{
	struct run r;
	struct ebb_bal_pool_state ps;

	(void)state;
	run_init(&r, 4, 6 * GIB, EBB_BAL_POLICY_EBB);
	for (size_t i = 0; i < 4; i++) {
		sim_vm_setup(&r.sim, i, 3 * GIB, 900.0 * MIB, true);
		r.sim.vm[i].cache = 400.0 * MIB;
	}
	r.sim.vm[0].hostile_pressure = true;
	r.sim.vm[1].hostile_numbers = true;
	run_for(&r, 1800);
	ebb_bal_get_pool(r.bal, &ps);
	print_message("# liar dir changes %" PRIu64 " resident %.0f MiB (share %.0f), others %.0f %.0f %.0f, "
		      "capped %" PRIu64 ", bad agent %" PRIu64 "\n",
		      r.sim.vm[0].nr_balloon_dir_changes, r.sim.vm[0].resident / MIB, (double)(6 * GIB / 4) / MIB,
		      r.sim.vm[1].resident / MIB, r.sim.vm[2].resident / MIB,
		      r.sim.vm[3].resident / MIB, ps.stats.nr_pressure_capped,
		      ps.stats.nr_bad_agent);
	/* the liar's balloon does not flap: no inflate for a minute after a
	 * deflate, and claims above its share are not honoured (85 direction
	 * changes in this run without the hold-off) */
	assert_true(r.sim.vm[0].nr_balloon_dir_changes <= 10);
	assert_true(ps.stats.nr_pressure_capped > 0);
	assert_true(ps.stats.nr_bad_agent > 0);
	assert_true(r.sim.vm[0].resident <= 6.0 * GIB / 4 * 1.1);
	for (size_t i = 2; i < 4; i++)
		assert_true(r.sim.vm[i].below_ws_s < 120);
	assert_true(r.longest_below_min_s <= 5);
	run_fini(&r);
}

/*
 * An agent that says all its memory is free while the host sees 1.2 GiB of
 * it in use: the balloon never leaves the guest less than what the host saw
 * used (the working-set cross-check).
 */
static void test_agent_lie_checked_by_host(void **state)
{
	struct run r;

	(void)state;
	run_init(&r, 2, 3 * GIB, EBB_BAL_POLICY_EBB);
	sim_vm_setup(&r.sim, 0, 2 * GIB, 1200.0 * MIB, true);
	sim_vm_setup(&r.sim, 1, 2 * GIB, 300.0 * MIB, false);
	r.sim.vm[0].claims_all_free = true;
	r.sim.vm[0].cache = 200.0 * MIB;
	r.sim.vm[1].cache = 1500.0 * MIB;
	r.sim.host_used = 300.0 * MIB;
	sim_tick(&r.sim, 1.0);
	double max_balloon = 0;
	for (int t = 0; t < 300; t++) {
		run_for(&r, 1);
		if (r.sim.vm[0].balloon_target > max_balloon)
			max_balloon = r.sim.vm[0].balloon_target;
	}
	print_message("# liar's largest balloon %.0f MiB; short in guest %.0f s\n",
		      max_balloon / MIB, r.sim.vm[0].guest_short_s);
	assert_true(max_balloon <= 2.0 * GIB - 1200.0 * MIB);
	assert_true(r.sim.vm[0].guest_short_s < 5);
	run_fini(&r);
}

/* A balloon that does not move is re-targeted to what it reached. */
static void test_stuck_balloon(void **state)
{
	struct run r;
	struct ebb_bal_pool_state ps;

	(void)state;
	run_init(&r, 1, 2 * GIB, EBB_BAL_POLICY_EBB);
	sim_vm_setup(&r.sim, 0, 2 * GIB, 300.0 * MIB, true);
	r.sim.vm[0].cache = 1600.0 * MIB;
	r.sim.vm[0].stuck = true;
	r.sim.host_used = 400.0 * MIB;
	sim_tick(&r.sim, 1.0);
	size_t stuck_acts = 0, balloon_after = 0;
	uint64_t stuck_at = 0;
	for (int t = 0; t < 200; t++) {
		run_step(&r);
		for (size_t k = 0; k < r.nr_acts; k++) {
			if (r.acts[k].kind != EBB_BAL_ACT_BALLOON)
				continue;
			if (r.acts[k].why.reason == EBB_BAL_WHY_STUCK) {
				stuck_acts++;
				stuck_at = r.sim.now;
				assert_int_equal(r.acts[k].value, (uint64_t)r.sim.vm[0].balloon);
			} else if (stuck_at) {
				balloon_after++;
			}
		}
		sim_tick(&r.sim, 1.0);
	}
	ebb_bal_get_pool(r.bal, &ps);
	assert_int_equal(stuck_acts, 1);
	assert_int_equal(ps.stats.nr_stuck, 1);
	assert_int_equal(balloon_after, 0);           /* paused, host reclaim instead */
	assert_true(ps.stats.reclaimed_bytes[EBB_BAL_SRC_HIGH] > 0);
	run_fini(&r);
}

/*
 * No oscillation: two VMs' working sets swing in opposite phase between 0.5
 * and 1.4 GiB every 4 minutes on a tight pool, so memory must flow back and
 * forth through their balloons.  Each balloon target changes direction at
 * most twice per swing (once to give, once to take), not at every step.
 */
static void test_no_oscillation(void **state)
{
	struct run r;

	(void)state;
	run_init(&r, 3, 3584 * MIB, EBB_BAL_POLICY_EBB);
	for (size_t i = 0; i < 3; i++) {
		sim_vm_setup(&r.sim, i, 2 * GIB, 700.0 * MIB, true);
		r.sim.vm[i].cache = 500.0 * MIB;
	}
	int swings = 0;
	for (int m = 0; m < 60; m += 4) {
		bool up = (m / 4) % 2;
		r.sim.vm[0].ws_target = up ? 1400.0 * MIB : 512.0 * MIB;
		r.sim.vm[1].ws_target = up ? 512.0 * MIB : 1400.0 * MIB;
		swings++;
		run_for(&r, 240);
	}
	struct ebb_bal_vm_state vs;
	assert_int_equal(ebb_bal_get_vm(r.bal, 1, &vs), 0);
	print_message("# %d swings: balloon direction changes vm1 %" PRIu64 " vm2 %" PRIu64
		      " vm3 %" PRIu64 "; below ws %.0f %.0f s; short in guest %.0f %.0f s\n",
		      swings, r.sim.vm[0].nr_balloon_dir_changes, r.sim.vm[1].nr_balloon_dir_changes,
		      r.sim.vm[2].nr_balloon_dir_changes, r.sim.vm[0].below_ws_s,
		      r.sim.vm[1].below_ws_s, r.sim.vm[0].guest_short_s, r.sim.vm[1].guest_short_s);
	assert_int_equal(vs.nr_balloon_sign_changes, r.sim.vm[0].nr_balloon_dir_changes);
	/* memory really moved back and forth */
	assert_true(r.sim.vm[0].nr_balloon_dir_changes >= 4);
	assert_true(r.sim.vm[1].nr_balloon_dir_changes >= 4);
	for (size_t i = 0; i < 3; i++)
		assert_true(r.sim.vm[i].nr_balloon_dir_changes <= (uint64_t)(2 * swings));
	assert_true(r.longest_below_min_s <= 5);
	run_fini(&r);
}

/* --- KSM steering ---------------------------------------------------------------- */

static void test_ksm_steering(void **state)
{
	struct run r;
	struct ebb_bal_pool_state ps;
	size_t advised = 0, started = 0, stopped = 0;

	(void)state;
	run_init(&r, 4, 6 * GIB, EBB_BAL_POLICY_EBB);
	for (size_t i = 0; i < 4; i++) {
		sim_vm_setup(&r.sim, i, 2 * GIB, 200.0 * MIB, false);
		r.sim.vm[i].cache = 1500.0 * MIB;
		r.sim.vm[i].similar = 0.5;
		r.sim.vm[i].cfgobs.cfg.ksm_allowed = i < 2;
	}
	sim_tick(&r.sim, 1.0);
	for (int t = 0; t < 1200; t++) {
		run_step(&r);
		for (size_t k = 0; k < r.nr_acts; k++) {
			const struct ebb_bal_action *a = &r.acts[k];
			if (a->kind == EBB_BAL_ACT_KSM_ADVISE && a->value == 1) {
				advised++;
				assert_true(r.sim.vm[a->vm_id - 1].cfgobs.cfg.ksm_allowed);
			}
			if (a->kind == EBB_BAL_ACT_KSMD && a->value > 0 && !started)
				started = 1;
			if (a->kind == EBB_BAL_ACT_KSMD && a->value == 0 && started)
				stopped++;
		}
		sim_tick(&r.sim, 1.0);
	}
	ebb_bal_get_pool(r.bal, &ps);
	print_message("# advised %zu, ksmd started %zu stopped %zu, merged %.0f MiB, "
		      "ksm asked %" PRIu64 " MiB\n", advised, started, stopped,
		      (r.sim.vm[0].merged + r.sim.vm[1].merged) / MIB,
		      ps.stats.reclaimed_bytes[EBB_BAL_SRC_KSM] / MIB);
	assert_true(advised >= 1 && advised <= 2);
	assert_int_equal(started, 1);
	assert_true(r.sim.vm[0].merged + r.sim.vm[1].merged > 0);
	/* once everything is merged ksmd stops paying and is stopped */
	assert_true(stopped >= 1);
	assert_int_equal(r.sim.ksmd_scan, 0);
	run_fini(&r);
}

/*
 * VMs that advise their own memory (libvirt domains: QEMU's mem-merge), which
 * the balancer cannot switch: ksmd runs for them only when the operator
 * allowed KSM on one and the pool is short, no KSM_ADVISE is ever sent to
 * them, and ksmd is stopped again once merging no longer pays.
 */
static void run_self_advised(bool allowed, size_t *advise_acts, size_t *started, size_t *stopped,
			     double *merged_mib)
{
	struct run r;

	run_init(&r, 4, 6 * GIB, EBB_BAL_POLICY_EBB);
	for (size_t i = 0; i < 4; i++) {
		sim_vm_setup(&r.sim, i, 2 * GIB, 200.0 * MIB, false);
		r.sim.vm[i].cfgobs.caps &= ~(uint32_t)EBB_BAL_CAP_KSM;
		r.sim.vm[i].ksm_advised = true;
		r.sim.vm[i].cache = 1500.0 * MIB;
		r.sim.vm[i].similar = 0.5;
		r.sim.vm[i].cfgobs.cfg.ksm_allowed = allowed && i < 2;
	}
	*advise_acts = *started = *stopped = 0;
	sim_tick(&r.sim, 1.0);
	for (int t = 0; t < 1200; t++) {
		run_step(&r);
		for (size_t k = 0; k < r.nr_acts; k++) {
			const struct ebb_bal_action *a = &r.acts[k];
			if (a->kind == EBB_BAL_ACT_KSM_ADVISE)
				(*advise_acts)++;
			if (a->kind == EBB_BAL_ACT_KSMD && a->value > 0 && !*started)
				*started = 1;
			if (a->kind == EBB_BAL_ACT_KSMD && a->value == 0 && *started)
				(*stopped)++;
		}
		sim_tick(&r.sim, 1.0);
	}
	*merged_mib = 0;
	for (size_t i = 0; i < 4; i++)
		*merged_mib += r.sim.vm[i].merged / MIB;
	assert_int_equal(r.sim.ksmd_scan, 0);   /* stopped in the end either way */
	run_fini(&r);
}

static void test_ksm_self_advised_vms(void **state)
{
	size_t acts, started, stopped;
	double merged;

	(void)state;
	run_self_advised(true, &acts, &started, &stopped, &merged);
	print_message("# self-advised, allowed: ksmd started %zu stopped %zu, merged %.0f MiB\n",
		      started, stopped, merged);
	assert_int_equal(acts, 0);
	assert_int_equal(started, 1);
	assert_true(stopped >= 1);
	assert_true(merged > 0);
	run_self_advised(false, &acts, &started, &stopped, &merged);
	assert_int_equal(acts, 0);
	assert_int_equal(started, 0);   /* not allowed: ebbd leaves ksmd alone */
	assert_true(merged == 0);
}

/* --- policies ------------------------------------------------------------------- */

static void test_mom_rules(void **state)
{
	struct run r;

	(void)state;
	run_init(&r, 4, 8 * GIB, EBB_BAL_POLICY_MOM);
	for (size_t i = 0; i < 4; i++) {
		sim_vm_setup(&r.sim, i, 2 * GIB, 600.0 * MIB, true);
		r.sim.vm[i].cache = 1200.0 * MIB;
	}
	sim_tick(&r.sim, 1.0);
	/* host free is 8 GiB - ~7.2 GiB < 20%: shrink by <= 5% per 10 s */
	uint64_t last_ns = 0;
	double last_keep[4] = { 2.0 * GIB, 2.0 * GIB, 2.0 * GIB, 2.0 * GIB };
	size_t shrinks = 0;
	for (int t = 0; t < 300; t++) {
		run_step(&r);
		for (size_t k = 0; k < r.nr_acts; k++) {
			const struct ebb_bal_action *a = &r.acts[k];
			assert_int_equal(a->kind, EBB_BAL_ACT_BALLOON);
			assert_int_equal(a->why.reason, EBB_BAL_WHY_MOM_SHRINK);
			size_t i = a->vm_id - 1;
			double cur = 2.0 * GIB - r.sim.vm[i].balloon;
			assert_true((double)a->value2 >= cur * 0.95 - 4096);
			assert_true((double)a->value2 <= cur);
			last_keep[i] = (double)a->value2;
			if (last_ns && a->at_ns != last_ns)
				assert_true(a->at_ns - last_ns >= 10 * SIM_S);
			last_ns = a->at_ns;
			shrinks++;
		}
		sim_tick(&r.sim, 1.0);
	}
	/* MoM counts cache as used: guests that fill their cache stop shrinking */
	assert_true(shrinks >= 4);
	/* never below used + the free target */
	for (size_t i = 0; i < 4; i++)
		assert_true(last_keep[i] >= r.sim.vm[i].ws);
	assert_int_equal(r.sim.nr_by_kind[EBB_BAL_ACT_SET_HIGH], 0);
	assert_int_equal(r.sim.nr_by_kind[EBB_BAL_ACT_CLAMP_MAX], 0);
	assert_int_equal(r.sim.nr_by_kind[EBB_BAL_ACT_KSMD], 0);

	/* the host frees up: balloons grow back by 5% per cycle */
	r.sim.host_used = 0;
	for (size_t i = 0; i < 4; i++)
		r.sim.vm[i].cache = 0, r.sim.vm[i].ws = r.sim.vm[i].ws_target = 100.0 * MIB;
	size_t grows = 0;
	struct ebb_bal_cfg dummy;
	(void)dummy;
	for (int t = 0; t < 60; t++) {
		sim_tick(&r.sim, 1.0);
		run_step(&r);
		for (size_t k = 0; k < r.nr_acts; k++) {
			const struct ebb_bal_action *a = &r.acts[k];
			if (a->why.reason != EBB_BAL_WHY_MOM_GROW)
				continue;
			size_t i = a->vm_id - 1;
			double cur = 2.0 * GIB - r.sim.vm[i].balloon;
			/* +5%, or up to used + 20% if that is more */
			assert_true((double)a->value2 >= cur);
			assert_true((double)a->value2 <= cur * 1.05 + 4096 ||
				    (double)a->value2 <= (cur - r.obs[i].agent_free_bytes) + 0.2 * cur + 4096);
			grows++;
		}
	}
	assert_true(grows >= 4);
	run_fini(&r);
}

/*
 * MoM below 5% host free ("critical"): the guest's free target goes negative
 * (host free - 5%), so the target may fall below what the guest uses; one
 * cycle still moves at most 5%.  A guest without an agent counts as fully
 * used, so it too is shrunk only here.
 */
static void test_mom_critical(void **state)
{
	struct run r;

	(void)state;
	run_init(&r, 2, 4 * GIB, EBB_BAL_POLICY_MOM);
	sim_vm_setup(&r.sim, 0, 2 * GIB, 1600.0 * MIB, true);
	sim_vm_setup(&r.sim, 1, 2 * GIB, 1600.0 * MIB, false);
	r.sim.vm[0].cache = r.sim.vm[1].cache = 300.0 * MIB;
	r.sim.host_used = 250.0 * MIB;       /* free ~ 100 MiB of 4 GiB: 2.4% */
	sim_tick(&r.sim, 1.0);
	double used0 = 2.0 * GIB - (2.0 * GIB - 1600.0 * MIB - r.sim.vm[0].cache);
	uint64_t keep_min = UINT64_MAX;
	for (int t = 0; t < 120; t++) {
		run_step(&r);
		for (size_t k = 0; k < r.nr_acts; k++) {
			const struct ebb_bal_action *a = &r.acts[k];
			assert_int_equal(a->why.reason, EBB_BAL_WHY_MOM_SHRINK);
			double cur = 2.0 * GIB - r.sim.vm[a->vm_id - 1].balloon;
			assert_true((double)a->value2 >= cur * 0.95 - 4096);
			if (a->vm_id == 1 && a->value2 < keep_min)
				keep_min = a->value2;
		}
		sim_tick(&r.sim, 1.0);
	}
	print_message("# critical: vm1 asked down to %" PRIu64 " MiB (used %.0f MiB)\n",
		      keep_min / MIB, used0 / MIB);
	assert_true((double)keep_min < used0);    /* below used: the guest must swap */
	run_fini(&r);
}

static void test_static_moves_nothing(void **state)
{
	struct run r;

	(void)state;
	run_init(&r, 4, 6 * GIB, EBB_BAL_POLICY_STATIC);
	for (size_t i = 0; i < 4; i++) {
		sim_vm_setup(&r.sim, i, 2 * GIB, 1200.0 * MIB, i % 2 == 0);
		r.sim.vm[i].cache = 700.0 * MIB;
		r.sim.vm[i].hostile_pressure = i == 0;
	}
	run_for(&r, 3600);
	assert_int_equal(r.sim.nr_actions, 0);
	assert_true(r.below_min_s > 0);    /* it really was overcommitted */
	run_fini(&r);
}

/* Leaving ebb gives back what it set; entering static then moves nothing. */
static void test_policy_switch_undoes(void **state)
{
	struct run r;

	(void)state;
	run_init(&r, 2, 3 * GIB, EBB_BAL_POLICY_EBB);
	for (size_t i = 0; i < 2; i++) {
		sim_vm_setup(&r.sim, i, 2 * GIB, 500.0 * MIB, false);
		r.sim.vm[i].cache = 1000.0 * MIB;
	}
	sim_tick(&r.sim, 1.0);
	run_for(&r, 60);
	assert_true(r.sim.vm[0].high < 2.0 * GIB || r.sim.vm[1].high < 2.0 * GIB);
	assert_int_equal(ebb_bal_set_policy(r.bal, EBB_BAL_POLICY_STATIC), 0);
	run_step(&r);
	assert_true(count_kind(&r, EBB_BAL_ACT_SET_HIGH, 0) >= 1);
	for (size_t k = 0; k < r.nr_acts; k++)
		assert_int_equal(r.acts[k].why.reason, EBB_BAL_WHY_LEAVE);
	assert_true(r.sim.vm[0].high >= 2.0 * GIB && r.sim.vm[1].high >= 2.0 * GIB);
	sim_tick(&r.sim, 1.0);
	run_step(&r);
	assert_int_equal(r.nr_acts, 0);
	assert_int_equal(ebb_bal_set_policy(r.bal, (enum ebb_bal_policy)7), -EINVAL);
	enum ebb_bal_policy p;
	assert_int_equal(ebb_bal_policy_parse("mom", &p), 0);
	assert_int_equal(p, EBB_BAL_POLICY_MOM);
	assert_int_equal(ebb_bal_policy_parse("kswapd", &p), -EINVAL);
	assert_string_equal(ebb_bal_policy_name(EBB_BAL_POLICY_STATIC), "static");
	run_fini(&r);
}

/* --- hostile and odd input ------------------------------------------------------- */

static void test_bad_input(void **state)
{
	struct ebb_balancer *b;
	struct ebb_bal_cfg cfg;
	struct ebb_bal_host_obs h;
	struct ebb_bal_vm_obs vms[4];
	struct ebb_bal_action acts[16];
	struct ebb_bal_pool_state ps;
	size_t n;

	(void)state;
	memset(&cfg, 0, sizeof(cfg));
	assert_int_equal(ebb_bal_create(NULL, &b), -EINVAL);
	cfg.policy = EBB_BAL_NR_POLICIES;
	assert_int_equal(ebb_bal_create(&cfg, &b), -EINVAL);
	cfg.policy = EBB_BAL_POLICY_EBB;
	cfg.pool.budget_bytes = 4 * GIB;
	cfg.pool.wmark_min_bytes = 3 * GIB;   /* min above low */
	assert_int_equal(ebb_bal_create(&cfg, &b), -EINVAL);
	cfg.pool.wmark_min_bytes = 0;
	assert_int_equal(ebb_bal_create(&cfg, &b), 0);
	ebb_bal_destroy(NULL);

	memset(&h, 0, sizeof(h));
	h.mem_total_bytes = 8 * GIB;
	h.mem_available_bytes = 6 * GIB;
	memset(vms, 0, sizeof(vms));
	for (int i = 0; i < 4; i++) {
		vms[i].id = (uint64_t)i + 1;
		vms[i].guest_bytes = 1 * GIB;
		vms[i].resident_bytes = 512 * MIB;
		vms[i].cfg.high_bytes = EBB_BAL_NO_LIMIT;
		vms[i].cfg.max_bytes = EBB_BAL_NO_LIMIT;
		memset(vms[i].name, 'x', sizeof(vms[i].name)); /* no NUL */
	}
	vms[1].id = 0;                         /* rejected */
	vms[1].resident_bytes = 600 * MIB;
	vms[2].id = 1;                         /* duplicate: ignored */
	vms[3].guest_bytes = 0;                /* rejected */
	assert_int_equal(ebb_bal_step(NULL, 0, &h, vms, 4, acts, 16, &n), -EINVAL);
	assert_int_equal(ebb_bal_step(b, 0, NULL, vms, 4, acts, 16, &n), -EINVAL);
	assert_int_equal(ebb_bal_step(b, 0, &h, NULL, 4, acts, 16, &n), -EINVAL);
	assert_int_equal(ebb_bal_step(b, 0, &h, vms, EBB_BAL_MAX_VMS + 1, acts, 16, &n), -EINVAL);
	assert_int_equal(ebb_bal_step(b, 10 * SIM_S, &h, vms, 4, acts, 16, &n), 0);
	ebb_bal_get_pool(b, &ps);
	assert_int_equal(ps.nr_vms, 1);
	assert_int_equal(ps.stats.nr_bad_vm_obs, 3);
	struct ebb_bal_vm_state vs;
	assert_int_equal(ebb_bal_get_vm(b, 1, &vs), 0);
	assert_int_equal(strlen(vs.name), EBB_BAL_NAME_MAX - 1);
	assert_int_equal(ebb_bal_get_vm(b, 2, &vs), -ENOENT);

	/* absurd values are clamped and counted; time going back is not trusted */
	vms[0].resident_bytes = UINT64_MAX;
	vms[0].balloon_actual_bytes = 5 * GIB;
	vms[0].cfg.weight = 1000000;
	vms[0].cfg.min_bytes = 10 * GIB;
	vms[0].agent_present = true;
	vms[0].agent_free_bytes = UINT64_MAX;
	vms[0].agent_report_ns = 9 * SIM_S;
	vms[0].nr_refaults = 100;
	assert_int_equal(ebb_bal_step(b, 5 * SIM_S, &h, vms, 1, acts, 16, &n), 0);
	ebb_bal_get_pool(b, &ps);
	assert_int_equal(ps.stats.nr_bad_host_obs, 1);
	assert_true(ps.stats.nr_bad_vm_obs >= 4);
	assert_true(ps.stats.nr_bad_agent >= 1);
	assert_true(ps.used_bytes <= 2 * GIB);
	/* counters going backwards restart the rates */
	vms[0].nr_refaults = 5;
	uint64_t before = ps.stats.nr_bad_vm_obs;
	assert_int_equal(ebb_bal_step(b, 11 * SIM_S, &h, vms, 1, acts, 16, &n), 0);
	ebb_bal_get_pool(b, &ps);
	assert_true(ps.stats.nr_bad_vm_obs > before);
	/* VMs that leave are forgotten */
	assert_int_equal(ebb_bal_step(b, 12 * SIM_S, &h, vms, 0, acts, 16, &n), 0);
	ebb_bal_get_pool(b, &ps);
	assert_int_equal(ps.nr_vms, 0);
	assert_int_equal(ps.stats.nr_vms_left, 1);
	ebb_bal_destroy(b);
}

/* vm_index names the VM's place in the caller's array, rejected entries included. */
static void test_vm_index_is_callers(void **state)
{
	struct ebb_balancer *b;
	struct ebb_bal_cfg cfg;
	struct ebb_bal_host_obs h;
	struct ebb_bal_vm_obs vms[3];
	struct ebb_bal_action acts[16];
	size_t n;

	(void)state;
	memset(&cfg, 0, sizeof(cfg));
	cfg.pool.budget_bytes = 2 * GIB;
	assert_int_equal(ebb_bal_create(&cfg, &b), 0);
	memset(&h, 0, sizeof(h));
	h.mem_total_bytes = 8 * GIB;
	h.mem_available_bytes = 4 * GIB;
	h.host_used_bytes = 1 * GIB;
	memset(vms, 0, sizeof(vms));
	for (int i = 0; i < 3; i++) {
		vms[i].id = 10 + (uint64_t)i;
		vms[i].guest_bytes = 2 * GIB;
		vms[i].resident_bytes = 1 * GIB;
		vms[i].caps = EBB_BAL_CAP_MAX_LEASE;
		vms[i].cfg.high_bytes = EBB_BAL_NO_LIMIT;
		vms[i].cfg.max_bytes = EBB_BAL_NO_LIMIT;
	}
	vms[0].id = 0;        /* rejected */
	vms[1].id = 12;       /* the same id as vms[2]: vms[2] is ignored */
	assert_int_equal(ebb_bal_step(b, SIM_S, &h, vms, 3, acts, 16, &n), 0);
	assert_int_equal(n, 1);                  /* below min: one clamp */
	assert_int_equal(acts[0].kind, EBB_BAL_ACT_CLAMP_MAX);
	assert_int_equal(acts[0].vm_id, 12);
	assert_int_equal(acts[0].vm_index, 1);
	ebb_bal_destroy(b);
}

/* Too small an action array: the rest is counted and decided again. */
static void test_action_array_full(void **state)
{
	struct run r;
	struct ebb_bal_host_obs h;
	struct ebb_bal_pool_state ps;
	size_t n;

	(void)state;
	run_init(&r, 8, 8 * GIB, EBB_BAL_POLICY_EBB);
	for (size_t i = 0; i < 8; i++)
		sim_vm_setup(&r.sim, i, 1 * GIB, 900.0 * MIB, false);
	sim_tick(&r.sim, 1.0);
	r.sim.host_used = 1.5 * GIB;
	sim_observe(&r.sim, &h, r.obs);
	assert_int_equal(ebb_bal_step(r.bal, r.sim.now, &h, r.obs, 8, r.acts, 3, &n), 0);
	assert_int_equal(n, 3);
	ebb_bal_get_pool(r.bal, &ps);
	assert_true(ps.stats.nr_actions_dropped > 0);
	r.sim.now += SIM_S;
	assert_int_equal(ebb_bal_step(r.bal, r.sim.now, &h, r.obs, 8, r.acts, MAX_ACTS, &n), 0);
	assert_true(n >= 5);      /* the clamps not given before */
	run_fini(&r);
}

/* Same inputs, same decisions. */
static void test_deterministic(void **state)
{
	struct ebb_bal_action t1[EBB_BAL_TRACE_LEN], t2[EBB_BAL_TRACE_LEN];
	size_t n1, n2;

	(void)state;
	for (int k = 0; k < 2; k++) {
		struct run r;
		run_init(&r, 5, 5 * GIB, EBB_BAL_POLICY_EBB);
		for (size_t i = 0; i < 5; i++) {
			sim_vm_setup(&r.sim, i, 2 * GIB, 400.0 * MIB + 100.0 * MIB * (double)i, i & 1);
			r.sim.vm[i].cache = 300.0 * MIB;
		}
		run_for(&r, 900);
		if (k == 0)
			n1 = ebb_bal_trace(r.bal, t1, EBB_BAL_TRACE_LEN);
		else
			n2 = ebb_bal_trace(r.bal, t2, EBB_BAL_TRACE_LEN);
		run_fini(&r);
	}
	assert_true(n1 > 0);
	assert_int_equal(n1, n2);
	assert_memory_equal(t1, t2, n1 * sizeof(t1[0]));
}

static void test_trace_and_format(void **state)
{
	struct run r;
	struct ebb_bal_action t[4];
	char line[512];

	(void)state;
	run_init(&r, 2, 4 * GIB, EBB_BAL_POLICY_EBB);
	sim_vm_setup(&r.sim, 0, 2 * GIB, 200.0 * MIB, true);
	sim_vm_setup(&r.sim, 1, 2 * GIB, 200.0 * MIB, false);
	r.sim.vm[0].cache = r.sim.vm[1].cache = 1700.0 * MIB;
	r.sim.host_used = 300.0 * MIB;
	sim_tick(&r.sim, 1.0);
	run_step(&r);
	size_t n = ebb_bal_trace(r.bal, t, 4);
	assert_true(n >= 1);
	/* the newest last */
	assert_memory_equal(&t[n - 1], &r.acts[r.nr_acts - 1], sizeof(t[0]));
	const struct ebb_bal_action *a = NULL;
	for (size_t k = 0; k < r.nr_acts && !a; k++)
		if (r.acts[k].why.reason == EBB_BAL_WHY_RECLAIM)
			a = &r.acts[k];
	assert_non_null(a);
	int len = ebb_bal_format_action(a, "web1", line, sizeof(line));
	assert_true(len > 0 && (size_t)len < sizeof(line));
	print_message("# %s\n", line);
	assert_non_null(strstr(line, "web1 balloon "));
	assert_non_null(strstr(line, "reclaim src=balloon"));
	assert_non_null(strstr(line, "prio="));
	ebb_bal_format_action(a, NULL, line, sizeof(line));
	assert_non_null(strstr(line, "vm#1 "));
	assert_string_equal(ebb_bal_state_name(EBB_BAL_DIRECT_CLAMP), "direct-clamp");
	assert_string_equal(ebb_bal_reason_name(EBB_BAL_WHY_STUCK), "stuck");
	run_fini(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pool_watermarks),
		cmocka_unit_test(test_pool_boost),
		cmocka_unit_test(test_sleeps_above_low),
		cmocka_unit_test(test_burst_boosts_watermarks),
		cmocka_unit_test(test_watermarks_held),
		cmocka_unit_test(test_cheapest_source_first),
		cmocka_unit_test(test_agent_reclaim_without_balloon),
		cmocka_unit_test(test_refaults_raise_cost),
		cmocka_unit_test(test_cold_memory_funds_refaults),
		cmocka_unit_test(test_growing_vm_spared),
		cmocka_unit_test(test_hold_yields_below_min),
		cmocka_unit_test(test_protections),
		cmocka_unit_test(test_weights),
		cmocka_unit_test(test_direct_clamp_lease),
		cmocka_unit_test(test_clamp_expires_without_daemon),
		cmocka_unit_test(test_pressure_deflates_at_once),
		cmocka_unit_test(test_hostile_agents),
		cmocka_unit_test(test_agent_lie_checked_by_host),
		cmocka_unit_test(test_stuck_balloon),
		cmocka_unit_test(test_no_oscillation),
		cmocka_unit_test(test_ksm_steering),
		cmocka_unit_test(test_ksm_self_advised_vms),
		cmocka_unit_test(test_mom_rules),
		cmocka_unit_test(test_mom_critical),
		cmocka_unit_test(test_static_moves_nothing),
		cmocka_unit_test(test_policy_switch_undoes),
		cmocka_unit_test(test_bad_input),
		cmocka_unit_test(test_vm_index_is_callers),
		cmocka_unit_test(test_action_array_full),
		cmocka_unit_test(test_deterministic),
		cmocka_unit_test(test_trace_and_format),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
