/*
 * vmm/bin/bench_density.h — `ebb bench density`: how many VMs of a workload
 * mix fit a host budget at an SLO, under each ebbd policy (docs/density.md).
 */
#ifndef EBB_BIN_BENCH_DENSITY_H
#define EBB_BIN_BENCH_DENSITY_H

/* argv[0] is "bench".  Returns the exit status. */
int ebb_bench_main(int argc, char **argv);

#endif
