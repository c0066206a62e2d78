/*
 * bal_sim.h — a simple model of VMs on one host, for driving ebbd's balancer
 * tick by tick (tests/unit/test_balancer*.c) and at scale
 * (bench/bench_balancer.c).  Header-only, deterministic (own PRNG).
 *
 * Each VM has a working set (anonymous memory it touches; it moves toward a
 * target that workloads change), a page cache that grows into free guest
 * memory and is cold, a balloon whose driver moves at a fixed rate (or not at
 * all, for a stuck driver) and can only take what the guest does not use,
 * and a host engine that keeps resident memory under min(high, max) by
 * evicting cold pages first (cache, then working set).  Evicted working-set
 * pages refault at a fixed fraction per second: that is the cost of taking
 * too much, counted as refaults, swap-in time and PSI stall time, and as
 * time spent below the working set.  An agent (optional) reports free and
 * cache and sends a pressure message when the guest's working set no longer
 * fits beside its balloon.  Hostile agents claim pressure forever or report
 * absurd numbers.  KSM merges a VM's similar cold pages while it is advised
 * and ksmd runs.  Actions from the balancer are applied as the daemon would;
 * clamps expire with their lease when not renewed.
 */
#ifndef EBB_TESTS_BAL_SIM_H
#define EBB_TESTS_BAL_SIM_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host-reclaim/balancer.h"

#define SIM_MIB (1ULL << 20)
#define SIM_S 1000000000ULL
#define SIM_PAGE 4096.0
#define SIM_BALLOON_RATE (256.0 * SIM_MIB)   /* bytes/s the driver moves */
#define SIM_REFAULT_FRAC 0.10                /* of evicted ws pages, per second */
#define SIM_SWAPIN_NS 20000.0                /* per refault */
#define SIM_CACHE_GROW (4.0 * SIM_MIB)       /* bytes/s of cache growth */

struct sim_vm {
	struct ebb_bal_vm_obs cfgobs;  /* id, name, caps, cfg, guest size */
	bool agent;
	bool hostile_pressure;         /* claims pressure every tick, absurd need */
	bool hostile_numbers;          /* reports absurd free/cache/give-back */
	bool claims_all_free;          /* plausible lie: all its memory is free */
	bool stuck;                    /* balloon driver never moves */
	double similar;                /* fraction of cold memory KSM can merge */
	double ws, ws_target, cache;
	double balloon, balloon_target;
	double high, max;              /* in force */
	uint64_t lease_end_ns;
	bool clamped;
	double evicted, merged;
	bool ksm_advised;
	double refaults, swapin_ns, psi_some_ns;
	uint64_t nr_pressure;
	double need;
	/* results */
	double below_ws_s, guest_short_s;
	double resident;
	uint64_t nr_balloon_dir_changes;
	int last_dir;
	double last_balloon_target;
};

struct sim {
	struct sim_vm *vm;
	size_t nr;
	uint64_t now;
	uint64_t rng;
	double host_used;
	uint64_t mem_total;
	uint32_t ksmd_scan;            /* 0 = stopped */
	double ksm_cpu_ns, ksm_sharing_pages;
	/* results */
	double s_below_min, s_total, used_sum, nr_ticks;
	uint64_t nr_actions;
	uint64_t nr_by_kind[EBB_BAL_NR_ACTIONS];
};

static inline uint64_t sim_rand(struct sim *s)
{
	s->rng ^= s->rng << 13;
	s->rng ^= s->rng >> 7;
	s->rng ^= s->rng << 17;
	return s->rng;
}

static inline double sim_frand(struct sim *s)
{
	return (double)(sim_rand(s) >> 11) / 9007199254740992.0;
}

static inline void sim_init(struct sim *s, size_t nr, uint64_t seed, uint64_t mem_total,
			    double host_used)
{
	memset(s, 0, sizeof(*s));
	s->vm = calloc(nr, sizeof(*s->vm));
	s->nr = nr;
	s->rng = seed ? seed : 88172645463325252ULL;
	s->mem_total = mem_total;
	s->host_used = host_used;
}

static inline void sim_free(struct sim *s)
{
	free(s->vm);
	s->vm = NULL;
}

/* A plain VM: @guest bytes, working set @ws, agent or not; all mechanisms. */
static inline void sim_vm_setup(struct sim *s, size_t i, uint64_t guest, double ws, bool agent)
{
	struct sim_vm *v = &s->vm[i];
	struct ebb_bal_vm_obs *o = &v->cfgobs;

	memset(v, 0, sizeof(*v));
	o->id = i + 1;
	snprintf(o->name, sizeof(o->name), "vm%zu", i + 1);
	o->backend = EBB_BAL_BACKEND_EBB;
	o->caps = EBB_BAL_CAP_BALLOON | EBB_BAL_CAP_HIGH | EBB_BAL_CAP_MAX_LEASE | EBB_BAL_CAP_KSM;
	if (agent)
		o->caps |= EBB_BAL_CAP_AGENT | EBB_BAL_CAP_AGENT_DROP;
	o->guest_bytes = guest;
	o->cfg.high_bytes = EBB_BAL_NO_LIMIT;
	o->cfg.max_bytes = EBB_BAL_NO_LIMIT;
	o->cfg.weight = 100;
	o->cfg.swappiness = -1;
	v->agent = agent;
	v->ws = ws;
	v->ws_target = ws;
	v->high = (double)guest;
	v->max = (double)guest;
}

static inline double sim_cfg_limit(uint64_t v, uint64_t guest)
{
	return v == EBB_BAL_NO_LIMIT || v > guest ? (double)guest : (double)v;
}

/* Observe: what the daemon would read. */
static inline void sim_observe(const struct sim *s, struct ebb_bal_host_obs *h,
			       struct ebb_bal_vm_obs *obs)
{
	double vms = 0;

	memset(h, 0, sizeof(*h));
	for (size_t i = 0; i < s->nr; i++) {
		const struct sim_vm *v = &s->vm[i];
		struct ebb_bal_vm_obs *o = &obs[i];
		double g = (double)v->cfgobs.guest_bytes;
		*o = v->cfgobs;
		o->resident_bytes = (uint64_t)v->resident;
		o->compressed_bytes = (uint64_t)(v->evicted / 4);
		o->swapped_compressed_bytes = (uint64_t)v->evicted;
		o->cur_high_bytes = v->high >= g ? EBB_BAL_NO_LIMIT : (uint64_t)v->high;
		o->cur_max_bytes = v->max >= g ? EBB_BAL_NO_LIMIT : (uint64_t)v->max;
		o->max_clamped = v->clamped;
		o->balloon_actual_bytes = (uint64_t)v->balloon;
		o->balloon_target_bytes = (uint64_t)v->balloon_target;
		o->nr_refaults = (uint64_t)v->refaults;
		o->nr_swapins = (uint64_t)v->refaults;
		o->swapin_ns_total = (uint64_t)v->swapin_ns;
		o->psi_some_ns_total = (uint64_t)v->psi_some_ns;
		o->psi_full_ns_total = (uint64_t)(v->psi_some_ns / 2);
		o->ksm_advised = v->ksm_advised;
		o->ksm_merging_pages = (uint64_t)(v->merged / SIM_PAGE);
		o->agent_present = v->agent;
		if (v->agent) {
			double avail = g - v->balloon;
			double free = avail - v->ws - v->cache;
			double reserve = g * 0.03;
			if (free < 0)
				free = 0;
			o->agent_report_ns = s->now;
			o->agent_free_bytes = (uint64_t)free;
			o->agent_cache_bytes = (uint64_t)v->cache;
			double gb = (free > reserve ? free - reserve : 0) +
				    (v->cache > reserve ? v->cache - reserve : 0);
			o->agent_give_back_bytes = (uint64_t)gb;
			o->agent_nr_pressure = v->nr_pressure;
			o->agent_pressure_need_bytes = (uint64_t)v->need;
			if (v->hostile_numbers) {
				o->agent_free_bytes = UINT64_MAX / 3;
				o->agent_cache_bytes = UINT64_MAX / 3;
				o->agent_give_back_bytes = UINT64_MAX;
				o->agent_report_ns = s->now + 1000 * SIM_S;
			}
			if (v->claims_all_free) {
				o->agent_free_bytes = (uint64_t)avail;
				o->agent_cache_bytes = 0;
				o->agent_give_back_bytes = (uint64_t)(avail - reserve);
			}
			if (v->hostile_pressure)
				o->agent_pressure_need_bytes = UINT64_MAX;
		}
		/* host-seen working set: the resident part of the ws is recent */
		double ws_res = v->ws - (v->evicted > v->cache ? v->evicted - v->cache : 0);
		if (ws_res < 0)
			ws_res = 0;
		double cache_res = v->cache - (v->evicted < v->cache ? v->evicted : v->cache) - v->merged;
		if (cache_res < 0)
			cache_res = 0;
		o->ws.valid = true;
		o->ws.bytes[0] = (uint64_t)(ws_res / 2);
		o->ws.bytes[2] = (uint64_t)(ws_res / 2);
		o->ws.bytes[EBB_BAL_WS_BUCKETS - 1] = (uint64_t)cache_res;
		vms += v->resident;
	}
	h->mem_total_bytes = s->mem_total;
	double avail = (double)s->mem_total - vms - s->host_used;
	h->mem_available_bytes = avail > 0 ? (uint64_t)avail : 0;
	h->host_used_bytes = (uint64_t)s->host_used;
	h->ksm_available = true;
	h->ksm_pages_sharing = (uint64_t)s->ksm_sharing_pages;
	h->ksmd_cpu_ns = (uint64_t)s->ksm_cpu_ns;
	h->ksm_pages_to_scan = s->ksmd_scan;
	h->ksm_sleep_ms = 20;
	h->ksm_running = s->ksmd_scan > 0;
}

static inline void sim_apply(struct sim *s, const struct ebb_bal_action *a, size_t n)
{
	for (size_t k = 0; k < n; k++) {
		s->nr_actions++;
		if ((unsigned)a[k].kind < EBB_BAL_NR_ACTIONS)
			s->nr_by_kind[a[k].kind]++;
		if (a[k].kind == EBB_BAL_ACT_KSMD) {
			s->ksmd_scan = (uint32_t)a[k].value;
			continue;
		}
		if (a[k].vm_id == 0 || a[k].vm_id > s->nr)
			continue;
		struct sim_vm *v = &s->vm[a[k].vm_id - 1];
		double g = (double)v->cfgobs.guest_bytes;
		switch (a[k].kind) {
		case EBB_BAL_ACT_BALLOON: {
			double t = (double)a[k].value;
			int dir = t > v->balloon_target ? 1 : (t < v->balloon_target ? -1 : 0);
			if (dir && v->last_dir && dir != v->last_dir)
				v->nr_balloon_dir_changes++;
			if (dir)
				v->last_dir = dir;
			v->balloon_target = t;
			break;
		}
		case EBB_BAL_ACT_SET_HIGH:
			v->high = sim_cfg_limit(a[k].value, v->cfgobs.guest_bytes);
			break;
		case EBB_BAL_ACT_CLAMP_MAX:
			v->max = (double)a[k].value;
			v->clamped = true;
			v->lease_end_ns = s->now + (uint64_t)a[k].lease_ms * 1000000ULL;
			break;
		case EBB_BAL_ACT_LIFT_CLAMP:
			v->max = sim_cfg_limit(v->cfgobs.cfg.max_bytes, v->cfgobs.guest_bytes);
			v->clamped = false;
			break;
		case EBB_BAL_ACT_AGENT_DROP_CACHE:
			v->cache = 0; /* the guest drops its clean cache; it grows again */
			break;
		case EBB_BAL_ACT_AGENT_RECLAIM:
			v->cache -= (double)a[k].value < v->cache ? (double)a[k].value : v->cache;
			break;
		case EBB_BAL_ACT_KSM_ADVISE:
			v->ksm_advised = a[k].value != 0;
			if (!v->ksm_advised)
				v->merged = 0; /* unmerge */
			break;
		default:
			break;
		}
		(void)g;
	}
}

/* Advance the model by @dt_s seconds. */
static inline void sim_tick(struct sim *s, double dt)
{
	double sharing = 0, used = 0;

	s->now += (uint64_t)(dt * (double)SIM_S);
	for (size_t i = 0; i < s->nr; i++) {
		struct sim_vm *v = &s->vm[i];
		double g = (double)v->cfgobs.guest_bytes;
		double reserve = g * 0.03;

		if (v->clamped && s->now >= v->lease_end_ns) {
			/* the engine drops an expired clamp */
			v->max = sim_cfg_limit(v->cfgobs.cfg.max_bytes, v->cfgobs.guest_bytes);
			v->clamped = false;
		}
		/* workload */
		double dws = v->ws_target - v->ws;
		double step = 8.0 * SIM_MIB * dt;
		v->ws += dws > step ? step : (dws < -step ? -step : dws);
		/* balloon driver: only what the guest does not use */
		if (!v->stuck) {
			double d = v->balloon_target - v->balloon;
			double mv = SIM_BALLOON_RATE * dt;
			if (d > mv)
				d = mv;
			if (d < -mv)
				d = -mv;
			double room = g - v->ws - reserve / 2 - v->balloon;
			if (d > room)
				d = room > 0 ? room : 0;
			v->balloon += d;
		}
		double avail = g - v->balloon;
		/* guest cache: grows into free memory, dropped when short */
		double spare = avail - v->ws - reserve;
		double old_cache = v->cache;
		double ev_cache = v->evicted < v->cache ? v->evicted : v->cache;
		if (v->cache < spare)
			v->cache += SIM_CACHE_GROW * dt < spare - v->cache ? SIM_CACHE_GROW * dt : spare - v->cache;
		if (v->cache > spare)
			v->cache = spare > 0 ? spare : 0;
		if (v->cache < old_cache) {
			/* the guest dropped cold cache: evicted copies go first */
			double d = old_cache - v->cache;
			v->evicted -= d < ev_cache ? d : ev_cache;
			if (v->merged > v->cache * v->similar)
				v->merged = v->cache * v->similar;
		}
		/* guest pressure: the working set does not fit */
		bool short_in_guest = v->ws > avail - reserve / 2;
		if (short_in_guest)
			v->guest_short_s += dt;
		if (v->agent && (short_in_guest || v->hostile_pressure)) {
			v->nr_pressure++;
			v->need = v->ws + reserve - avail;
			if (v->need < 4 * SIM_MIB)
				v->need = 4 * SIM_MIB;
		}
		/* host engine: resident under min(high, max); cold pages first */
		double touched = v->ws + v->cache;
		if (touched > avail)
			touched = avail;
		double limit = v->high < v->max ? v->high : v->max;
		double raw = touched - v->evicted - v->merged;
		if (raw > limit)
			v->evicted += raw - limit;
		if (v->evicted > touched)
			v->evicted = touched;
		double ws_ev = v->evicted - v->cache;
		if (ws_ev < 0)
			ws_ev = 0;
		if (ws_ev > v->ws)
			ws_ev = v->ws;
		double rf = ws_ev / SIM_PAGE * SIM_REFAULT_FRAC * dt;
		v->refaults += rf;
		v->swapin_ns += rf * SIM_SWAPIN_NS;
		double stall = rf * SIM_SWAPIN_NS;
		if (stall > dt * 1e9)
			stall = dt * 1e9;
		v->psi_some_ns += stall;
		raw = touched - v->evicted - v->merged;
		double room = limit - raw;
		if (room > 0) {
			double back = rf * SIM_PAGE < room ? rf * SIM_PAGE : room;
			if (back > ws_ev)
				back = ws_ev;
			v->evicted -= back;
		}
		if (ws_ev > v->ws * 0.05 + SIM_MIB)
			v->below_ws_s += dt;
		/* KSM */
		if (v->ksm_advised && s->ksmd_scan) {
			double cold = v->cache - v->evicted;
			double cap = (cold > 0 ? cold : 0) * v->similar;
			double rate = (double)s->ksmd_scan / 0.020 * SIM_PAGE * 0.05 * dt;
			v->merged += v->merged + rate < cap ? rate : (cap > v->merged ? cap - v->merged : 0);
			if (v->merged > cap)
				v->merged = cap;
		}
		sharing += v->merged / SIM_PAGE;
		raw = touched - v->evicted - v->merged;
		v->resident = raw + v->evicted / 4;
		used += v->resident;
	}
	if (s->ksmd_scan)
		s->ksm_cpu_ns += (double)s->ksmd_scan * 1000.0 * (dt / 0.020);
	s->ksm_sharing_pages = sharing;
	s->used_sum += used * dt;
	s->s_total += dt;
	s->nr_ticks++;
}

static inline double sim_used(const struct sim *s)
{
	double used = s->host_used;

	for (size_t i = 0; i < s->nr; i++)
		used += s->vm[i].resident;
	return used;
}

#endif /* EBB_TESTS_BAL_SIM_H */
