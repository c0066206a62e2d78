/*
 * psi.h — pressure stall accounting for one region (like Linux PSI).
 *
 * The pager reports when a faulting thread starts and stops waiting for a
 * page.  "some" time is wall time with at least one thread stalled, "full"
 * time is wall time with all nr_threads stalled (nr_threads = the VM's vCPU
 * count).  Averages over 10 s, 60 s and 300 s are exponentially decayed every
 * 2 s period, from the injected clock, exactly as the kernel computes
 * avg10/avg60/avg300.  Pure logic, no locking: the owner serialises calls.
 */
#ifndef EBB_HOST_RECLAIM_PSI_H
#define EBB_HOST_RECLAIM_PSI_H

#include <stdint.h>

#define EBB_PSI_PERIOD_NS (2ULL * 1000 * 1000 * 1000)

struct ebb_psi {
	uint32_t nr_threads;
	uint32_t nr_stalled;
	uint64_t state_since_ns;   /* last change of nr_stalled */
	uint64_t some_total_ns;
	uint64_t full_total_ns;
	uint64_t period_start_ns;
	uint64_t period_some_start, period_full_start; /* totals at period start */
	double avg_some[3], avg_full[3];  /* percent, 10/60/300 s */
};

struct ebb_psi_stats {
	double some_avg10, some_avg60, some_avg300;
	double full_avg10, full_avg60, full_avg300;
	uint64_t some_total_ns, full_total_ns;
	uint32_t nr_stalled;
};

void ebb_psi_init(struct ebb_psi *psi, uint32_t nr_threads, uint64_t now_ns);
void ebb_psi_stall_begin(struct ebb_psi *psi, uint64_t now_ns);
void ebb_psi_stall_end(struct ebb_psi *psi, uint64_t now_ns);
/* Fold elapsed time in and run the 2 s averaging periods that have passed. */
void ebb_psi_update(struct ebb_psi *psi, uint64_t now_ns);
void ebb_psi_get(struct ebb_psi *psi, uint64_t now_ns, struct ebb_psi_stats *out);

#endif /* EBB_HOST_RECLAIM_PSI_H */
