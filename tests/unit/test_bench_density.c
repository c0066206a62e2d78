/*
 * tests/unit/test_bench_density.c — the pure half of `ebb bench density`
 * (vmm/bin/density.c): mixes on the command line and in files (and their
 * refusals), which kind the Nth VM gets, the guest's report lines (hostile:
 * malformed, overlong, out of range, duplicated keys), OOM lines, the
 * nearest-rank percentile, a step's metrics, the SLO verdicts and the CSV
 * rows.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "vmm/bin/density.h"

static int mix(const char *s, struct dens_mix *m, char *err)
{
	return dens_mix_parse(s, m, err, 256);
}

static void test_mix_parse(void **state)
{
	struct dens_mix m;
	char err[256], buf[300];

	assert_int_equal(mix("web", &m, err), 0);
	assert_int_equal(m.pct[DENS_WEB], 100);
	assert_int_equal(m.pct[DENS_IDLE] + m.pct[DENS_BATCH] + m.pct[DENS_CACHE], 0);
	assert_int_equal(mix("idle=60,web=30,batch=10", &m, err), 0);
	assert_int_equal(m.pct[DENS_IDLE], 60);
	assert_int_equal(m.pct[DENS_WEB], 30);
	assert_int_equal(m.pct[DENS_BATCH], 10);
	assert_int_equal(m.pct[DENS_CACHE], 0);
	dens_mix_format(&m, buf, sizeof(buf));
	assert_string_equal(buf, "idle=60,web=30,batch=10");
	assert_int_equal(mix(" cache = 100 ", &m, err), 0);
	assert_int_equal(m.pct[DENS_CACHE], 100);
	assert_int_equal(mix("idle=100,web=0", &m, err), 0);

	/* refusals, each with its reason */
	assert_int_equal(mix("idle=60,web=30", &m, err), -EINVAL);
	assert_non_null(strstr(err, "sum to 90"));
	assert_int_equal(mix("idle=60,web=50", &m, err), -EINVAL);
	assert_non_null(strstr(err, "sum to 110"));
	assert_int_equal(mix("idle=60,disk=40", &m, err), -EINVAL);
	assert_non_null(strstr(err, "unknown workload 'disk'"));
	assert_int_equal(mix("idle=50,idle=50", &m, err), -EINVAL);
	assert_non_null(strstr(err, "twice"));
	assert_int_equal(mix("idle=-10,web=110", &m, err), -EINVAL);
	assert_int_equal(mix("idle=1000", &m, err), -EINVAL);
	assert_int_equal(mix("idle=", &m, err), -EINVAL);
	assert_non_null(strstr(err, "no percentage"));
	assert_int_equal(mix("idle=60,,web=40", &m, err), -EINVAL);
	assert_int_equal(mix("idle=60,", &m, err), -EINVAL);
	assert_int_equal(mix("idle=6x", &m, err), -EINVAL);
	assert_int_equal(mix("idle=50.5,web=49.5", &m, err), -EINVAL);
	assert_int_equal(mix("idle 100", &m, err), -EINVAL);
	assert_int_equal(mix("", &m, err), -EINVAL);
	assert_int_equal(mix("webby", &m, err), -EINVAL);
	memset(buf, 'a', 200);
	strcpy(buf + 100, "=100");
	assert_int_equal(mix(buf, &m, err), -EINVAL);
}

static int mix_text(const char *s, struct dens_mix *m, char *err)
{
	return dens_mix_parse_text(s, strlen(s), m, err, 256);
}

static void test_mix_file(void **state)
{
	struct dens_mix m;
	char err[256], *big;

	assert_int_equal(mix_text("# my host\nidle 60\n\n  web\t30  # the shop\nbatch=10\n", &m,
				  err), 0);
	assert_int_equal(m.pct[DENS_IDLE], 60);
	assert_int_equal(m.pct[DENS_WEB], 30);
	assert_int_equal(m.pct[DENS_BATCH], 10);
	assert_int_equal(mix_text("cache 100", &m, err), 0);	/* no final newline */
	assert_int_equal(mix_text("web 100\r\n", &m, err), 0);	/* CRLF */

	assert_int_equal(mix_text("idle 60\nweb 30\n", &m, err), -EINVAL);
	assert_non_null(strstr(err, "sum to 90"));
	assert_int_equal(mix_text("idle 60\nfoo 40\n", &m, err), -EINVAL);
	assert_non_null(strstr(err, "line 2:"));
	assert_int_equal(mix_text("# nothing\n\n", &m, err), -EINVAL);
	assert_non_null(strstr(err, "no workload"));
	assert_int_equal(mix_text("web\n", &m, err), -EINVAL);
	assert_non_null(strstr(err, "line 1:"));
	assert_int_equal(mix_text("web 50\nweb 50\n", &m, err), -EINVAL);
	assert_int_equal(mix_text("web 100 extra\n", &m, err), -EINVAL);
	assert_int_equal(dens_mix_parse_text("web 100\0", 8, &m, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "NUL"));
	big = malloc(DENS_MIX_FILE_MAX_BYTES + 2);
	assert_non_null(big);
	memset(big, '\n', DENS_MIX_FILE_MAX_BYTES + 1);
	memcpy(big, "web 100", 7);
	assert_int_equal(dens_mix_parse_text(big, DENS_MIX_FILE_MAX_BYTES + 1, &m, err,
					     sizeof(err)), -EINVAL);
	assert_int_equal(dens_mix_parse_text(big, DENS_MIX_FILE_MAX_BYTES, &m, err, sizeof(err)),
			 0);
	free(big);
}

static void test_mix_assign(void **state)
{
	struct dens_mix m;
	unsigned count[DENS_NR_KINDS] = { 0 }, i;
	char err[256];

	assert_int_equal(mix("idle=60,web=30,batch=10", &m, err), 0);
	/* the larger share first; after every 10 VMs exactly 6/3/1 */
	assert_int_equal(dens_mix_assign(&m, 0), DENS_IDLE);
	for (i = 0; i < 100; i++) {
		count[dens_mix_assign(&m, i)]++;
		if ((i + 1) % 10 == 0) {
			assert_int_equal(count[DENS_IDLE], 6 * (i + 1) / 10);
			assert_int_equal(count[DENS_WEB], 3 * (i + 1) / 10);
			assert_int_equal(count[DENS_BATCH], (i + 1) / 10);
		}
		/* never more than one VM away from its share */
		assert_true((double)count[DENS_IDLE] - 0.6 * (i + 1) < 1.0 &&
			    (double)count[DENS_IDLE] - 0.6 * (i + 1) > -1.0);
	}
	assert_int_equal(count[DENS_CACHE], 0);
	/* deterministic */
	for (i = 0; i < 50; i++)
		assert_int_equal(dens_mix_assign(&m, i), dens_mix_assign(&m, i));
	assert_int_equal(mix("idle=50,web=50", &m, err), 0);
	assert_int_equal(dens_mix_assign(&m, 0), DENS_IDLE);	/* tie: the lower kind */
	assert_int_equal(dens_mix_assign(&m, 1), DENS_WEB);
	assert_int_equal(dens_mix_assign(&m, 2), DENS_IDLE);
	assert_int_equal(mix("cache", &m, err), 0);
	for (i = 0; i < 5; i++)
		assert_int_equal(dens_mix_assign(&m, i), DENS_CACHE);
}

static int rep(const char *l, struct dens_report *r)
{
	return dens_parse_report(l, strlen(l), r);
}

static void test_report_parse(void **state)
{
	static const char good[] =
		"ebb-work: t=1 kind=web reqs=1 rps=1 p50_us=1 p99_us=1 max_us=1 late=0 errors=0";
	struct dens_report r;
	char line[DENS_LINE_MAX_BYTES + 64];

	assert_int_equal(rep("ebb-work: t=12.345 kind=web reqs=2001 rps=199.5 p50_us=6 p99_us=161 "
			     "max_us=245 late=3 errors=0", &r), 0);
	assert_true(r.t_s > 12.344 && r.t_s < 12.346);
	assert_int_equal(r.kind, DENS_WEB);
	assert_int_equal(r.nr_reqs, 2001);
	assert_true(r.rps > 199.4 && r.rps < 199.6);
	assert_int_equal(r.p50_us, 6);
	assert_int_equal(r.p99_us, 161);
	assert_int_equal(r.max_us, 245);
	assert_int_equal(r.nr_late, 3);
	assert_int_equal(r.nr_errors, 0);
	/* a partial kernel line before it is ignored; keys in any order */
	assert_int_equal(rep("[   12.1] virtio_bebb-work: t=1 errors=2 kind=idle reqs=5 rps=5 "
			     "p50_us=1 p99_us=2 max_us=3 late=0", &r), 0);
	assert_int_equal(r.kind, DENS_IDLE);
	assert_int_equal(r.nr_errors, 2);

	/* hostile or broken lines */
	assert_int_equal(rep("ebb-work: ready kind=web", &r), -EINVAL);
	assert_int_equal(rep("ebb-work: t=1 kind=web reqs=1 rps=1 p50_us=1 p99_us=1 max_us=1 late=0",
			     &r), -EINVAL);	/* errors missing */
	assert_int_equal(rep("ebb-work: t=1 kind=web reqs=1 rps=1 p50_us=1 p99_us=1 max_us=1 late=0 "
			     "errors=0 errors=0", &r), -EINVAL);	/* twice */
	assert_int_equal(rep("ebb-work: t=1 kind=web reqs=1 rps=1 p50_us=1 p99_us=1 max_us=1 late=0 "
			     "errors=0 evil=1", &r), -EINVAL);	/* unknown key */
	assert_int_equal(rep("ebb-work: t=1 kind=disk reqs=1 rps=1 p50_us=1 p99_us=1 max_us=1 late=0 "
			     "errors=0", &r), -EINVAL);
	assert_int_equal(rep("ebb-work: t=1 kind=web reqs=-1 rps=1 p50_us=1 p99_us=1 max_us=1 late=0 "
			     "errors=0", &r), -EINVAL);
	assert_int_equal(rep("ebb-work: t=1 kind=web reqs=1 rps=nan p50_us=1 p99_us=1 max_us=1 late=0 "
			     "errors=0", &r), -EINVAL);
	assert_int_equal(rep("ebb-work: t=1 kind=web reqs=1 rps=1e99 p50_us=1 p99_us=1 max_us=1 "
			     "late=0 errors=0", &r), -EINVAL);
	assert_int_equal(rep("ebb-work: t=1 kind=web reqs=1 rps=1 p50_us=1 p99_us=1 max_us=1 "
			     "late=0 errors=99999999999999999999", &r), -EINVAL);
	assert_int_equal(rep("ebb-work: t=1.2.3 kind=web reqs=1 rps=1 p50_us=1 p99_us=1 max_us=1 "
			     "late=0 errors=0", &r), -EINVAL);
	assert_int_equal(rep("ebb-work: t=1 kind=web reqs=1 rps=1 p50_us= p99_us=1 max_us=1 "
			     "late=0 errors=0", &r), -EINVAL);
	assert_int_equal(rep("ebb-work: t=1 kind=web reqs=1 rps=1 p50_us=1 p99_us=1 max_us=1 "
			     "late=0 errors=0 junk", &r), -EINVAL);
	assert_int_equal(dens_parse_report("ebb-work: t=1\0 kind=web", 23, &r), -EINVAL);
	memset(line, ' ', sizeof(line));
	memcpy(line, good, strlen(good));
	assert_int_equal(dens_parse_report(line, DENS_LINE_MAX_BYTES, &r), 0);
	assert_int_equal(dens_parse_report(line, DENS_LINE_MAX_BYTES + 1, &r), -EINVAL);
}

static void test_oom_lines(void **state)
{
	static const char *const yes[] = {
		"[  301.2] Out of memory: Killed process 77 (ebb-work) total-vm:1kB",
		"[  301.1] ebb-work invoked oom-killer: gfp_mask=0x140cca",
		"[  301.3] oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null)",
	};
	static const char *const no[] = { "ebb-work: t=1 kind=web", "ebb-guest: ready uptime=3s",
					  "memory is fine" };
	size_t i;

	for (i = 0; i < 3; i++)
		assert_true(dens_line_is_oom(yes[i], strlen(yes[i])));
	for (i = 0; i < 3; i++)
		assert_false(dens_line_is_oom(no[i], strlen(no[i])));
}

static void test_percentile(void **state)
{
	double v[100], one[1] = { 7 }, two[2] = { 9, 3 };
	size_t i;

	for (i = 0; i < 100; i++)
		v[i] = (double)(100 - i);	/* 100 .. 1, unsorted */
	assert_true(dens_percentile(v, 100, 50) == 50);
	assert_true(dens_percentile(v, 100, 99) == 99);
	assert_true(dens_percentile(v, 100, 100) == 100);
	assert_true(dens_percentile(v, 100, 1) == 1);
	assert_true(dens_percentile(v, 99, 99) == 99);	/* rank ceil(98.01) = 99 */
	assert_true(dens_percentile(one, 1, 99) == 7);
	assert_true(dens_percentile(two, 2, 50) == 3);	/* nearest rank: the lower of two */
	assert_true(dens_percentile(two, 2, 51) == 9);
	assert_true(dens_percentile(NULL, 0, 50) == 0);
}

static void test_metrics(void **state)
{
	struct dens_report r[5];
	struct dens_metrics m;
	size_t i;

	memset(r, 0, sizeof(r));
	for (i = 0; i < 5; i++) {
		r[i].t_s = 10.0 + 5.0 * (double)i;
		r[i].nr_reqs = 1000 + 500 * i;	/* 100/s */
		r[i].p50_us = 10 + i;
		r[i].p99_us = i == 0 ? 100000 : 100 * i;	/* the first is not in the step */
		r[i].nr_errors = i == 4 ? 2 : 0;
	}
	assert_int_equal(dens_metrics_of(r, 5, &m), 0);
	assert_int_equal(m.nr_reports, 5);
	assert_true(m.rps > 99.99 && m.rps < 100.01);
	assert_true(m.p99_us == 200);	/* median of 100, 200, 300, 400 (nearest rank) */
	assert_true(m.p50_us == 12);
	assert_int_equal(m.nr_errors, 2);
	assert_int_equal(dens_metrics_of(r, 1, &m), -EINVAL);
	assert_int_equal(m.nr_reports, 1);
	r[2].t_s = r[1].t_s;	/* time not moving: a restarted workload, refused */
	assert_int_equal(dens_metrics_of(r, 5, &m), -EINVAL);
	assert_int_equal(m.nr_reports, 0);
	r[2].t_s = 20;
	r[3].nr_reqs = 0;	/* the count going back */
	assert_int_equal(dens_metrics_of(r, 5, &m), -EINVAL);
}

static void test_slo(void **state)
{
	const struct dens_slo slo = { .p99_factor = 1.1, .tput_factor = 0.9 };
	const struct dens_metrics base = { .nr_reports = 6, .p99_us = 100, .rps = 200 };
	struct dens_metrics m = { .nr_reports = 6, .p99_us = 110, .rps = 180 };
	const struct dens_metrics zero = { .nr_reports = 6, .p99_us = 0, .rps = 200 };

	assert_int_equal(dens_slo_check(&slo, &base, &m, 0), DENS_OK);	/* both at the bound */
	m.p99_us = 111;
	assert_int_equal(dens_slo_check(&slo, &base, &m, 0), DENS_BREAK_P99);
	m.p99_us = 50;
	m.rps = 179.9;
	assert_int_equal(dens_slo_check(&slo, &base, &m, 0), DENS_BREAK_TPUT);
	m.rps = 200;
	assert_int_equal(dens_slo_check(&slo, &base, &m, 1), DENS_BREAK_OOM);
	m.nr_errors = 1;
	assert_int_equal(dens_slo_check(&slo, &base, &m, 1), DENS_BREAK_ERRORS);	/* first */
	m.nr_errors = 0;
	m.nr_reports = 1;
	assert_int_equal(dens_slo_check(&slo, &base, &m, 0), DENS_BREAK_NO_REPORTS);
	m.nr_reports = 6;
	/* a baseline p99 of 0 us counts as 1 us */
	m.p99_us = 1;
	assert_int_equal(dens_slo_check(&slo, &zero, &m, 0), DENS_OK);
	m.p99_us = 2;
	assert_int_equal(dens_slo_check(&slo, &zero, &m, 0), DENS_BREAK_P99);
	assert_string_equal(dens_verdict_name(DENS_BREAK_BUDGET), "over-budget");
	assert_string_equal(dens_verdict_name((enum dens_verdict)99), "?");
}

static char *csv_of(void (*fn)(FILE *, const void *), const void *arg)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	assert_non_null(f);
	fn(f, arg);
	fclose(f);
	return buf;
}

static void steps_row(FILE *f, const void *arg)
{
	dens_csv_steps_row(f, arg);
}

static void steps_header(FILE *f, const void *arg)
{
	dens_csv_steps_header(f);
}

static void summary_rows(FILE *f, const void *arg)
{
	const struct dens_result *r = arg;

	dens_csv_summary_row(f, &r[0], &r[1], &r[2]);
	dens_csv_summary_row(f, &r[1], &r[1], NULL);
}

static unsigned fields(const char *line)
{
	unsigned n = 1;

	for (; *line && *line != '\n'; line++)
		n += *line == ',';
	return n;
}

static void test_csv(void **state)
{
	const struct dens_row row = {
		.policy = "ebb", .nr_vms = 3, .vm = 2, .kind = DENS_BATCH,
		.m = { .nr_reports = 6, .p50_us = 10, .p99_us = 150, .rps = 49.5 },
		.base = { .nr_reports = 6, .p99_us = 100, .rps = 50 },
		.verdict = DENS_BREAK_P99, .resident_bytes = 104857600, .balloon_bytes = 0,
		.compressed_bytes = 4096, .compressed_host_bytes = 1024, .file_bytes = -1,
		.ksm_bytes = 0,
	};
	const struct dens_result res[3] = {
		{ .policy = "ebb", .nr_held = 5, .broke_at = 6, .why = DENS_BREAK_P99, .broke_vm = 5,
		  .mem_bytes = 256ull << 20, .budget_bytes = 512ull << 20, .resident_bytes = 1,
		  .balloon_bytes = 2, .compressed_bytes = 3, .file_bytes = 4, .ksm_bytes = 5,
		  .bal_balloon_bytes = 6, .bal_high_bytes = 7, .bal_ksm_bytes = -1 },
		{ .policy = "static", .nr_held = 2, .broke_at = 3, .why = DENS_BREAK_BUDGET,
		  .broke_vm = -1, .mem_bytes = 256ull << 20, .budget_bytes = 512ull << 20,
		  .resident_bytes = -1, .balloon_bytes = -1, .compressed_bytes = -1,
		  .file_bytes = -1, .ksm_bytes = -1, .bal_balloon_bytes = -1, .bal_high_bytes = -1,
		  .bal_ksm_bytes = -1 },
		{ .policy = "mom", .nr_held = 4 },
	};
	char *hdr = csv_of(steps_header, NULL), *line = csv_of(steps_row, &row), *sum;

	assert_string_equal(line, "ebb,3,2,batch,6,10,150,100,1.500,49.50,50.00,0.990,0,0,p99,"
				  "104857600,0,4096,1024,,0\n");
	assert_int_equal(fields(hdr), fields(line));
	free(hdr);
	free(line);
	sum = csv_of(summary_rows, res);
	/* ebb: 5 x 256 MiB committed on 512 MiB, 3 VMs (768 MiB) more than static,
	 * 2.5x static, 1.25x mom; static against itself, no mom */
	assert_string_equal(sum, "ebb,5,6,p99,5,268435456,536870912,1342177280,2.50,805306368,"
				 "2.50,1.25,1,2,3,4,5,6,7,\n"
				 "static,2,3,over-budget,-1,268435456,536870912,536870912,1.00,0,"
				 "1.00,,,,,,,,,\n");
	free(sum);
	assert_true(dens_ratio(&res[0], &res[1]) == 2.5);
	assert_true(dens_ratio(&res[0], NULL) == -1);
	{
		struct dens_result none = { .nr_held = 0 };

		assert_true(dens_ratio(&res[0], &none) == -1);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mix_parse),
		cmocka_unit_test(test_mix_file),
		cmocka_unit_test(test_mix_assign),
		cmocka_unit_test(test_report_parse),
		cmocka_unit_test(test_oom_lines),
		cmocka_unit_test(test_percentile),
		cmocka_unit_test(test_metrics),
		cmocka_unit_test(test_slo),
		cmocka_unit_test(test_csv),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
