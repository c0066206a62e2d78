/*
 * psi.c — pressure stall accounting: some/full totals and decayed averages.
 *
 * Overview: time is cut at every change of the number of stalled threads;
 * each interval adds to some_total (>= 1 stalled) and full_total (all
 * stalled).  Every 2 s period the share of the period spent stalled,
 * pct = 100 * delta / period, is folded into avgN = avgN * e + pct * (1 - e)
 * with e = exp(-2 s / N s) for N = 10, 60, 300.  Long gaps between updates
 * run the missed periods with pct of the whole gap spread evenly.
 */
#include "host-reclaim/psi.h"

#include <math.h>
#include <string.h>

static const double psi_window_s[3] = { 10.0, 60.0, 300.0 };

void ebb_psi_init(struct ebb_psi *psi, uint32_t nr_threads, uint64_t now_ns)
{
	memset(psi, 0, sizeof(*psi));
	psi->nr_threads = nr_threads ? nr_threads : 1;
	psi->state_since_ns = now_ns;
	psi->period_start_ns = now_ns;
}

static void psi_account(struct ebb_psi *psi, uint64_t now_ns)
{
	uint64_t delta;

	if (now_ns <= psi->state_since_ns)
		return;
	delta = now_ns - psi->state_since_ns;
	if (psi->nr_stalled)
		psi->some_total_ns += delta;
	if (psi->nr_stalled >= psi->nr_threads)
		psi->full_total_ns += delta;
	psi->state_since_ns = now_ns;
}

void ebb_psi_stall_begin(struct ebb_psi *psi, uint64_t now_ns)
{
	psi_account(psi, now_ns);
	psi->nr_stalled++;
}

void ebb_psi_stall_end(struct ebb_psi *psi, uint64_t now_ns)
{
	psi_account(psi, now_ns);
	if (psi->nr_stalled)
		psi->nr_stalled--;
}

void ebb_psi_update(struct ebb_psi *psi, uint64_t now_ns)
{
	uint64_t elapsed, periods, some_d, full_d;

	psi_account(psi, now_ns);
	if (now_ns < psi->period_start_ns + EBB_PSI_PERIOD_NS)
		return;
	elapsed = now_ns - psi->period_start_ns;
	periods = elapsed / EBB_PSI_PERIOD_NS;
	some_d = psi->some_total_ns - psi->period_some_start;
	full_d = psi->full_total_ns - psi->period_full_start;
	for (int w = 0; w < 3; w++) {
		double e = exp(-2.0 / psi_window_s[w]);
		double some_pct = 100.0 * (double)some_d / (double)(periods * EBB_PSI_PERIOD_NS);
		double full_pct = 100.0 * (double)full_d / (double)(periods * EBB_PSI_PERIOD_NS);
		double ep = pow(e, (double)periods);

		if (some_pct > 100.0)
			some_pct = 100.0;
		if (full_pct > 100.0)
			full_pct = 100.0;
		psi->avg_some[w] = psi->avg_some[w] * ep + some_pct * (1.0 - ep);
		psi->avg_full[w] = psi->avg_full[w] * ep + full_pct * (1.0 - ep);
	}
	psi->period_start_ns += periods * EBB_PSI_PERIOD_NS;
	psi->period_some_start = psi->some_total_ns;
	psi->period_full_start = psi->full_total_ns;
}

void ebb_psi_get(struct ebb_psi *psi, uint64_t now_ns, struct ebb_psi_stats *out)
{
	ebb_psi_update(psi, now_ns);
	out->some_avg10 = psi->avg_some[0];
	out->some_avg60 = psi->avg_some[1];
	out->some_avg300 = psi->avg_some[2];
	out->full_avg10 = psi->avg_full[0];
	out->full_avg60 = psi->avg_full[1];
	out->full_avg300 = psi->avg_full[2];
	out->some_total_ns = psi->some_total_ns;
	out->full_total_ns = psi->full_total_ns;
	out->nr_stalled = psi->nr_stalled;
}
