/*
 * bench_balancer.c — ebbd's balancer at scale: hundreds of simulated VMs on
 * one host over hours of simulated time (tests/sim/bal_sim.h), the same host
 * run three times from the same seed under the policies ebb, mom and static.
 *
 * Printed, each next to its peers from the same run, as ratios:
 *   - decisions per second: ebb_bal_step() calls per CPU-second of the
 *     step function alone (the simulator's time is not counted), and VMs
 *     evaluated per CPU-second; peer: the mom policy's step;
 *   - memory: the VMs' mean resident memory (host RAM used by the guests,
 *     compressed tier included) — saved vs static and vs mom;
 *   - harm: the worst time any VM spent below its working set (evicted
 *     working-set pages refaulting) and short inside the guest (working set
 *     not fitting beside its balloon), and the time the pool spent over
 *     its budget (where the host would have to swap).
 *
 * The VM model: sizes 1/2/4 GiB; a working set of 10-60% of the guest that
 * jumps to a new target every 20-60 minutes and moves there at 8 MiB/s; page
 * cache that grows into free guest memory; 70% of the VMs have an agent;
 * half have pages KSM can merge.  The pool budget is 60% of the guests'
 * total size (and 45%), and the host itself uses a steady 2% of it.
 *
 *   bench_balancer                 200 VMs, 4 h (make bench: ~10 s)
 *   bench_balancer --big           1000 VMs, 24 h
 *   bench_balancer --vms N --hours H --seed S --budget PCT
 * By default two budgets are run: 60% and 45% of the guests' total RAM.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "host-reclaim/balancer.h"
#include "tests/sim/bal_sim.h"

#define GIB (1024.0 * SIM_MIB)

struct result {
	double mean_used, peak_used;
	double worst_below_ws_s, worst_short_s, sum_below_ws_s, sum_short_s;
	double over_budget_s;
	uint64_t steps, actions;
	double step_cpu_s;
	uint64_t vm_evals;
	uint64_t by_kind[EBB_BAL_NR_ACTIONS];
};

static double cpu_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void setup_host(struct sim *s, size_t nr, uint64_t seed, double budget_frac,
		       double *budget)
{
	double total = 0;

	sim_init(s, nr, seed, 0, 0);
	for (size_t i = 0; i < nr; i++) {
		uint64_t sizes[3] = { 1ULL << 30, 2ULL << 30, 4ULL << 30 };
		uint64_t g = sizes[sim_rand(s) % 3];
		double ws = (0.10 + 0.50 * sim_frand(s)) * (double)g;
		sim_vm_setup(s, i, g, ws, sim_frand(s) < 0.7);
		s->vm[i].cache = 0.2 * (double)g * sim_frand(s);
		s->vm[i].similar = sim_frand(s) < 0.5 ? 0.3 : 0.0;
		s->vm[i].cfgobs.cfg.ksm_allowed = true;
		total += (double)g;
	}
	*budget = budget_frac * total;
	s->host_used = 0.02 * *budget;
	s->mem_total = (uint64_t)(*budget / 0.9);
}

static int run_policy(enum ebb_bal_policy p, size_t nr, double hours, uint64_t seed,
		      double budget_frac, struct result *res)
{
	struct sim s;
	struct ebb_balancer *b = NULL;
	struct ebb_bal_cfg cfg;
	double budget;
	size_t max_acts = nr * 4 + 16;
	struct ebb_bal_vm_obs *obs = calloc(nr, sizeof(*obs));
	struct ebb_bal_action *acts = calloc(max_acts, sizeof(*acts));
	uint64_t *next_move = calloc(nr, sizeof(*next_move));

	memset(res, 0, sizeof(*res));
	if (!obs || !acts || !next_move)
		return -1;
	setup_host(&s, nr, seed, budget_frac, &budget);
	memset(&cfg, 0, sizeof(cfg));
	cfg.policy = p;
	cfg.pool.budget_bytes = (uint64_t)budget & ~4095ULL;
	cfg.ksm_steer = true;
	if (ebb_bal_create(&cfg, &b) != 0)
		return -1;
	for (size_t i = 0; i < nr; i++)
		next_move[i] = (uint64_t)((1200.0 + 2400.0 * sim_frand(&s)) * (double)SIM_S);

	uint64_t ticks = (uint64_t)(hours * 3600.0);
	for (uint64_t t = 0; t < ticks; t++) {
		struct ebb_bal_host_obs h;
		size_t n = 0;
		for (size_t i = 0; i < nr; i++) {
			if (s.now >= next_move[i]) {
				double g = (double)s.vm[i].cfgobs.guest_bytes;
				s.vm[i].ws_target = (0.10 + 0.50 * sim_frand(&s)) * g;
				next_move[i] = s.now + (uint64_t)((1200.0 + 2400.0 * sim_frand(&s)) *
								  (double)SIM_S);
			}
		}
		sim_observe(&s, &h, obs);
		double c0 = cpu_s();
		int err = ebb_bal_step(b, s.now, &h, obs, nr, acts, max_acts, &n);
		res->step_cpu_s += cpu_s() - c0;
		if (err) {
			fprintf(stderr, "bench_balancer: step failed: %d\n", err);
			return -1;
		}
		res->steps++;
		res->vm_evals += nr;
		sim_apply(&s, acts, n);
		sim_tick(&s, 1.0);
		double used = sim_used(&s);
		double vms = used - s.host_used;
		if (vms > res->peak_used)
			res->peak_used = vms;
		res->mean_used += vms;
		if (used > budget)
			res->over_budget_s += 1.0;
	}
	res->mean_used /= (double)ticks;
	for (size_t i = 0; i < nr; i++) {
		if (s.vm[i].below_ws_s > res->worst_below_ws_s)
			res->worst_below_ws_s = s.vm[i].below_ws_s;
		if (s.vm[i].guest_short_s > res->worst_short_s)
			res->worst_short_s = s.vm[i].guest_short_s;
		res->sum_below_ws_s += s.vm[i].below_ws_s;
		res->sum_short_s += s.vm[i].guest_short_s;
	}
	res->actions = s.nr_actions;
	memcpy(res->by_kind, s.nr_by_kind, sizeof(res->by_kind));
	ebb_bal_destroy(b);
	sim_free(&s);
	free(obs);
	free(acts);
	free(next_move);
	return 0;
}

static double ratio(double a, double b)
{
	return b > 0 ? a / b : 0.0;
}

int main(int argc, char **argv)
{
	size_t nr = 200;
	double hours = 4;
	uint64_t seed = 20261206;
	double fracs[2] = { 0.60, 0.45 };
	int nr_fracs = 2;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--big")) {
			nr = 1000;
			hours = 24;
		} else if (!strcmp(argv[i], "--vms") && i + 1 < argc) {
			nr = strtoul(argv[++i], NULL, 0);
		} else if (!strcmp(argv[i], "--hours") && i + 1 < argc) {
			hours = strtod(argv[++i], NULL);
		} else if (!strcmp(argv[i], "--budget") && i + 1 < argc) {
			fracs[0] = strtod(argv[++i], NULL) / 100.0;
			nr_fracs = 1;
		} else if (!strcmp(argv[i], "--seed") && i + 1 < argc) {
			seed = strtoull(argv[++i], NULL, 0);
		} else {
			fprintf(stderr, "usage: %s [--big] [--vms N] [--hours H] [--budget PCT] [--seed S]\n", argv[0]);
			return 2;
		}
	}
	if (nr == 0 || nr > EBB_BAL_MAX_VMS || hours <= 0 || hours > 24 * 30 ||
	    fracs[0] <= 0.05 || fracs[0] > 1.0) {
		fprintf(stderr, "bench_balancer: --vms 1..%u, --hours up to 720\n", EBB_BAL_MAX_VMS);
		return 2;
	}
	for (int k = 0; k < nr_fracs; k++) {
	double frac = fracs[k];
	struct result r[EBB_BAL_NR_POLICIES];
	for (int p = 0; p < EBB_BAL_NR_POLICIES; p++) {
		if (run_policy((enum ebb_bal_policy)p, nr, hours, seed, frac, &r[p]) != 0) {
			fprintf(stderr, "bench_balancer: policy %s failed\n",
				ebb_bal_policy_name((enum ebb_bal_policy)p));
			return 1;
		}
	}
	const struct result *e = &r[EBB_BAL_POLICY_EBB], *m = &r[EBB_BAL_POLICY_MOM],
			    *st = &r[EBB_BAL_POLICY_STATIC];
	printf("balancer simulation: %zu VMs, %.1f h simulated, 1 s steps, seed %" PRIu64
	       ", pool budget %.0f%% of the guests' RAM\n", nr, hours, seed, frac * 100.0);
	printf("%-7s %9s %9s %8s %11s %11s %9s %10s %9s %12s\n", "policy", "mean GiB",
	       "peak GiB", "over s", "worst<ws s", "worst short", "sum<ws h", "sum short h",
	       "actions", "steps/cpu-s");
	for (int p = 0; p < EBB_BAL_NR_POLICIES; p++) {
		printf("%-7s %9.2f %9.2f %8.0f %11.0f %11.0f %9.1f %10.1f %9" PRIu64 " %12.0f\n",
		       ebb_bal_policy_name((enum ebb_bal_policy)p), r[p].mean_used / GIB,
		       r[p].peak_used / GIB, r[p].over_budget_s, r[p].worst_below_ws_s,
		       r[p].worst_short_s, r[p].sum_below_ws_s / 3600.0, r[p].sum_short_s / 3600.0,
		       r[p].actions,
		       ratio((double)r[p].steps, r[p].step_cpu_s));
	}
	printf("ebb actions: balloon %" PRIu64 " set-high %" PRIu64 " clamp %" PRIu64
	       " lift %" PRIu64 " ksm-advise %" PRIu64 " ksmd %" PRIu64 "\n",
	       e->by_kind[EBB_BAL_ACT_BALLOON], e->by_kind[EBB_BAL_ACT_SET_HIGH],
	       e->by_kind[EBB_BAL_ACT_CLAMP_MAX], e->by_kind[EBB_BAL_ACT_LIFT_CLAMP],
	       e->by_kind[EBB_BAL_ACT_KSM_ADVISE], e->by_kind[EBB_BAL_ACT_KSMD]);
	printf("decisions: ebb %.0f steps/cpu-s (%.2f M VM-evaluations/cpu-s), mom %.0f steps/cpu-s:"
	       " ebb/mom %.2fx\n",
	       ratio((double)e->steps, e->step_cpu_s),
	       ratio((double)e->vm_evals, e->step_cpu_s) / 1e6,
	       ratio((double)m->steps, m->step_cpu_s),
	       ratio(ratio((double)e->steps, e->step_cpu_s), ratio((double)m->steps, m->step_cpu_s)));
	printf("memory: ebb uses %.3fx of static's (saves %.1f%%), %.3fx of mom's (saves %.1f%%)\n",
	       ratio(e->mean_used, st->mean_used), 100.0 * (1.0 - ratio(e->mean_used, st->mean_used)),
	       ratio(e->mean_used, m->mean_used), 100.0 * (1.0 - ratio(e->mean_used, m->mean_used)));
	printf("over budget: ebb %.0f s, mom %.0f s, static %.0f s of %.0f s\n",
	       e->over_budget_s, m->over_budget_s, st->over_budget_s, hours * 3600.0);
	printf("worst VM below its working set: ebb %.0f s, mom %.0f s, static %.0f s;"
	       " short in guest: ebb %.0f s, mom %.0f s (ebb/mom %.2fx)\n",
	       e->worst_below_ws_s, m->worst_below_ws_s, st->worst_below_ws_s,
	       e->worst_short_s, m->worst_short_s,
	       ratio(e->worst_below_ws_s + e->worst_short_s, m->worst_below_ws_s + m->worst_short_s));
	printf("all VMs short or below their working set: ebb %.1f VM-h, mom %.1f VM-h (ebb/mom %.2fx)\n",
	       (e->sum_short_s + e->sum_below_ws_s) / 3600.0, (m->sum_short_s + m->sum_below_ws_s) / 3600.0,
	       ratio(e->sum_short_s + e->sum_below_ws_s, m->sum_short_s + m->sum_below_ws_s));
	printf("\n");
	}
	return 0;
}
