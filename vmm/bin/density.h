/*
 * vmm/bin/density.h — the pure half of `ebb bench density` (docs/density.md):
 * workload mixes (presets, "idle=60,web=30,batch=10", mix files) and which
 * workload the Nth VM gets, the guest's report lines and its OOM lines
 * (hostile input, parsed with bounds), percentiles, a VM's metrics over a
 * measuring step, the SLO verdict, and the CSV rows.  No processes, no
 * sockets, no printing to the terminal: bench_density.c runs the benchmark
 * around these, and tests/unit/test_bench_density.c tests them.
 */
#ifndef EBB_BIN_DENSITY_H
#define EBB_BIN_DENSITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum dens_kind { DENS_IDLE, DENS_WEB, DENS_BATCH, DENS_CACHE, DENS_NR_KINDS };

const char *dens_kind_name(enum dens_kind kind);
/* 0 and *out, or -EINVAL for a name that is not a workload kind. */
int dens_kind_parse(const char *s, size_t len, enum dens_kind *out);

/* A mix: the percentage of VMs of each kind (they sum to 100). */
struct dens_mix {
	unsigned pct[DENS_NR_KINDS];
};

#define DENS_MIX_FILE_MAX_BYTES 65536

/*
 * CLIENT: a mix as the user writes it: one kind ("web": 100% of it) or
 * KIND=PERCENT pairs separated by commas ("idle=60,web=30,batch=10"),
 * each kind at most once, percentages 0-100 summing to 100.  Returns 0, or
 * -EINVAL with the reason in err.
 */
int dens_mix_parse(const char *s, struct dens_mix *mix, char *err, size_t err_len);

/*
 * CLIENT: a mix file's text (len bytes, at most DENS_MIX_FILE_MAX_BYTES): one
 * "KIND PERCENT" pair per line (spaces or tabs between; "KIND=PERCENT" also
 * accepted), '#' starts a comment, blank lines are skipped; the same rules
 * as dens_mix_parse().  Returns 0, or -EINVAL with "line N: reason" in err.
 */
int dens_mix_parse_text(const char *text, size_t len, struct dens_mix *mix, char *err,
			size_t err_len);

/* "idle=60,web=30,batch=10" (kinds at 0% left out). */
void dens_mix_format(const struct dens_mix *mix, char *buf, size_t len);

/*
 * The kind of the VM with index vm_index (0-based) when VMs start one by one:
 * after each VM, the counts of every kind are as close to the proportions as
 * whole VMs allow (the kind furthest behind its share goes next; ties to the
 * larger share, then the lower kind).  Deterministic.
 */
enum dens_kind dens_mix_assign(const struct dens_mix *mix, unsigned vm_index);

/* One report line of the guest's ebb-work (guest-agent/bin/ebb-work.c). */
struct dens_report {
	double t_s;		/* since the workload started */
	enum dens_kind kind;
	uint64_t nr_reqs;	/* cumulative */
	double rps;		/* over the last interval */
	uint64_t p50_us, p99_us, max_us;
	uint64_t nr_late, nr_errors;	/* cumulative */
};

#define DENS_LINE_MAX_BYTES 512

/*
 * GUEST: a console line (len bytes, no newline; anything before
 * "ebb-work: t=" is ignored: the console may hold a partial kernel line).
 * Every field must be present once, a number in range; unknown keys are
 * refused.  Returns 0, or -EINVAL (not a report, or a malformed one).
 */
int dens_parse_report(const char *line, size_t len, struct dens_report *out);

/* GUEST: whether a console line is the guest kernel's OOM killer at work. */
bool dens_line_is_oom(const char *line, size_t len);

/* The p-th percentile (0 < p <= 100) of v[0..n) by nearest rank; sorts v.
 * 0 for n == 0. */
double dens_percentile(double *v, size_t n, double p);

/* A VM's figures over one measuring step, from the report lines in it. */
struct dens_metrics {
	unsigned nr_reports;
	double p50_us, p99_us;	/* medians of the intervals' p50 and p99 */
	double rps;		/* requests done / time, first to last report */
	uint64_t nr_errors;	/* the guest's count at the last report */
};

#define DENS_MAX_REPORTS 1024

/* Returns 0, or -EINVAL with fewer than 2 reports (no rate without two) or
 * reports whose time or count goes back (a restarted workload: nr_reports
 * is then 0, and the SLO verdict no-reports). */
int dens_metrics_of(const struct dens_report *r, size_t n, struct dens_metrics *out);

struct dens_slo {
	double p99_factor;	/* p99 <= factor x baseline p99 */
	double tput_factor;	/* rps >= factor x baseline rps */
};

enum dens_verdict {
	DENS_OK,
	DENS_BREAK_P99,
	DENS_BREAK_TPUT,
	DENS_BREAK_OOM,
	DENS_BREAK_ERRORS,
	DENS_BREAK_NO_REPORTS,	/* fewer than 2 reports in the step */
	DENS_BREAK_DIED,	/* the VM's process ended */
	DENS_BREAK_BUDGET,	/* the pool over its budget */
	DENS_BREAK_BOOT,	/* the VM did not get warm in time */
};

const char *dens_verdict_name(enum dens_verdict v);

/*
 * The SLO for one VM: data errors first, then OOM kills, then p99 against
 * the baseline of its kind, then throughput.  A baseline p99 of 0 µs (a
 * request faster than the guest's clock shows) is taken as 1 µs.
 */
enum dens_verdict dens_slo_check(const struct dens_slo *slo, const struct dens_metrics *base,
				 const struct dens_metrics *m, unsigned nr_oom);

/* One VM in one step: a row of steps.csv. */
struct dens_row {
	const char *policy;
	unsigned nr_vms;	/* VMs running in this step */
	unsigned vm;		/* this VM's index (0-based) */
	enum dens_kind kind;
	struct dens_metrics m, base;
	unsigned nr_oom;
	enum dens_verdict verdict;
	/* host memory of this VM at the end of the step (-1: not known) */
	int64_t resident_bytes, balloon_bytes, compressed_bytes, compressed_host_bytes,
		file_bytes, ksm_bytes;
};

void dens_csv_steps_header(FILE *f);
void dens_csv_steps_row(FILE *f, const struct dens_row *r);

/* One policy's result: a row of summary.csv and of the terminal table. */
struct dens_result {
	const char *policy;
	unsigned nr_held;	/* the largest count that held */
	unsigned broke_at;	/* the count that broke the SLO (0: none did) */
	enum dens_verdict why;	/* DENS_OK when none broke */
	int broke_vm;		/* the VM that broke it (-1: the pool) */
	uint64_t mem_bytes, budget_bytes;
	/* summed over the VMs at the last step that held (-1: not known) */
	int64_t resident_bytes, balloon_bytes, compressed_bytes, file_bytes, ksm_bytes;
	/* ebbd's balancer: reclaimed by source since it started, at that step */
	int64_t bal_balloon_bytes, bal_high_bytes, bal_ksm_bytes;
};

/* a / b held, or -1 when b is 0 or not known (NULL). */
double dens_ratio(const struct dens_result *a, const struct dens_result *b);

void dens_csv_summary_header(FILE *f);
void dens_csv_summary_row(FILE *f, const struct dens_result *r, const struct dens_result *stat,
			  const struct dens_result *mom);

#endif
