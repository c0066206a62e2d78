/*
 * test_reclaim_psi.c — pressure stall accounting driven by an injected
 * clock: some/full totals, and the avg10/60/300 decay over 2 s periods.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <cmocka.h>

#include "host-reclaim/psi.h"

#define S (1000ULL * 1000 * 1000)
#define MS (1000ULL * 1000)

static void test_some_and_full_totals(void **state)
{
	struct ebb_psi psi;
	struct ebb_psi_stats st;

	(void)state;
	ebb_psi_init(&psi, 2, 0);
	ebb_psi_stall_begin(&psi, 100 * MS);      /* 1 of 2 stalled */
	ebb_psi_stall_begin(&psi, 150 * MS);      /* 2 of 2: full */
	ebb_psi_stall_end(&psi, 200 * MS);        /* back to 1 */
	ebb_psi_stall_end(&psi, 300 * MS);        /* none */
	ebb_psi_get(&psi, 400 * MS, &st);
	assert_int_equal(st.some_total_ns, 200 * MS);
	assert_int_equal(st.full_total_ns, 50 * MS);
	assert_int_equal(st.nr_stalled, 0);
}

static void test_averages_decay_like_psi(void **state)
{
	struct ebb_psi psi;
	struct ebb_psi_stats st;

	(void)state;
	ebb_psi_init(&psi, 1, 0);
	/* Stalled half of every 2 s period for 10 periods. */
	for (int p = 0; p < 10; p++) {
		ebb_psi_stall_begin(&psi, (uint64_t)p * 2 * S);
		ebb_psi_stall_end(&psi, (uint64_t)p * 2 * S + S);
		ebb_psi_update(&psi, (uint64_t)(p + 1) * 2 * S);
	}
	ebb_psi_get(&psi, 20 * S, &st);
	/* avgN after k periods of 50%: 50 * (1 - exp(-2k/N)). */
	assert_true(fabs(st.some_avg10 - 50.0 * (1 - exp(-20.0 / 10))) < 0.01);
	assert_true(fabs(st.some_avg60 - 50.0 * (1 - exp(-20.0 / 60))) < 0.01);
	assert_true(fabs(st.some_avg300 - 50.0 * (1 - exp(-20.0 / 300))) < 0.01);
	/* One thread: some == full. */
	assert_true(fabs(st.full_avg10 - st.some_avg10) < 1e-9);
	/* Then idle for 60 s: avg10 falls by exp(-6). */
	double before = st.some_avg10;

	ebb_psi_get(&psi, 80 * S, &st);
	assert_true(fabs(st.some_avg10 - before * exp(-6.0)) < 0.01);
	assert_true(st.some_avg300 > st.some_avg10);
}

static void test_no_double_counting(void **state)
{
	struct ebb_psi psi;
	struct ebb_psi_stats st;

	(void)state;
	ebb_psi_init(&psi, 4, 0);
	for (int i = 0; i < 3; i++)
		ebb_psi_stall_begin(&psi, S);
	for (int i = 0; i < 3; i++)
		ebb_psi_stall_end(&psi, 2 * S);
	ebb_psi_stall_end(&psi, 3 * S);   /* unbalanced end: ignored */
	ebb_psi_get(&psi, 4 * S, &st);
	assert_int_equal(st.some_total_ns, S);
	assert_int_equal(st.full_total_ns, 0);   /* 3 of 4 is not full */
	assert_true(st.some_avg10 > 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_some_and_full_totals),
		cmocka_unit_test(test_averages_decay_like_psi),
		cmocka_unit_test(test_no_double_counting),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
