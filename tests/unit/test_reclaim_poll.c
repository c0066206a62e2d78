/*
 * test_reclaim_poll.c — the fault handler's adaptive polling window
 * (ebb_poll_adapt), driven with made-up waits: it grows from 10 µs by
 * doubling on a wake that spinning longer would have saved, never past the
 * cap; a fault found while spinning keeps it; a wait longer than the cap
 * halves it, down to 0 (an idle VM spins no more); a cap of 0 is off.
 * And ebb_poll_cycle, which keeps polling only where it makes a storm's
 * fault-to-fault cycle shorter, probing the other mode every 8th epoch.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "host-reclaim/region.h"

#define US 1000ULL

static void test_grows_on_short_waits_up_to_the_cap(void **state)
{
	struct ebb_poll p = { .window_ns = 0, .max_ns = 200 * US };

	(void)state;
	ebb_poll_adapt(&p, 30 * US, false);     /* a fault 30 µs after the last: worth spinning */
	assert_int_equal(p.window_ns, EBB_POLL_START_NS);
	ebb_poll_adapt(&p, 30 * US, false);
	assert_int_equal(p.window_ns, 2 * EBB_POLL_START_NS);
	ebb_poll_adapt(&p, 30 * US, false);
	assert_int_equal(p.window_ns, 4 * EBB_POLL_START_NS);
	/* window (40 µs) already covers a 30 µs wait: a miss elsewhere does not grow it */
	ebb_poll_adapt(&p, 30 * US, false);
	assert_int_equal(p.window_ns, 4 * EBB_POLL_START_NS);
	for (int i = 0; i < 10; i++)
		ebb_poll_adapt(&p, 190 * US, false);
	assert_int_equal(p.window_ns, 200 * US);   /* capped */
}

static void test_hit_keeps_the_window(void **state)
{
	struct ebb_poll p = { .window_ns = 80 * US, .max_ns = 200 * US };

	(void)state;
	for (int i = 0; i < 100; i++)
		ebb_poll_adapt(&p, 5 * US, true);
	assert_int_equal(p.window_ns, 80 * US);
}

static void test_quiet_shrinks_to_zero(void **state)
{
	struct ebb_poll p = { .window_ns = 200 * US, .max_ns = 200 * US };
	int turns = 0;

	(void)state;
	while (p.window_ns && turns < 100) {
		ebb_poll_adapt(&p, 100ULL * 1000 * 1000, false);   /* 100 ms with nothing */
		turns++;
	}
	assert_int_equal(p.window_ns, 0);
	assert_true(turns <= 5);    /* 200 -> 100 -> 50 -> 25 -> 12.5 -> 0 */
	/* and stays 0 while the VM stays idle */
	ebb_poll_adapt(&p, 100ULL * 1000 * 1000, false);
	assert_int_equal(p.window_ns, 0);
}

static void test_off(void **state)
{
	struct ebb_poll p = { .window_ns = 50 * US, .max_ns = 0 };

	(void)state;
	ebb_poll_adapt(&p, 1 * US, false);
	assert_int_equal(p.window_ns, 0);
	ebb_poll_adapt(&p, 1 * US, false);
	assert_int_equal(p.window_ns, 0);
}

/* Feed @nr_epochs epochs whose cycles are @on_ns with polling, @off_ns without;
 * count the epochs run with polling. */
static unsigned run_epochs(struct ebb_poll *p, unsigned nr_epochs, uint64_t on_ns, uint64_t off_ns)
{
	unsigned nr_on = 0;

	for (unsigned e = 0; e < nr_epochs; e++) {
		bool on = p->on;

		nr_on += on;
		for (unsigned i = 0; i < EBB_POLL_EPOCH; i++)
			/* one wild cycle per epoch: the median ignores it */
			ebb_poll_cycle(p, i == 7 ? 50ULL * 1000 * 1000 : (on ? on_ns : off_ns) + i % 3);
	}
	return nr_on;
}

static void test_polling_kept_where_it_pays(void **state)
{
	struct ebb_poll p;
	unsigned nr_on;

	(void)state;
	ebb_poll_init(&p, 200 * US);
	assert_true(p.on);
	nr_on = run_epochs(&p, 80, 6 * US, 76 * US);     /* quiet machine: wake ~70 µs */
	assert_true(p.prefer_on);
	assert_int_equal(nr_on, 80 - 10);                /* 2nd epoch, then every 8th: probes */
	assert_true(p.avg_cycle_ns[1] >= 6 * US && p.avg_cycle_ns[1] < 7 * US);
	assert_true(p.avg_cycle_ns[0] >= 76 * US && p.avg_cycle_ns[0] < 77 * US);
}

static void test_polling_dropped_where_it_does_not(void **state)
{
	struct ebb_poll p;
	unsigned nr_on;

	(void)state;
	ebb_poll_init(&p, 200 * US);
	nr_on = run_epochs(&p, 80, 20 * US, 7 * US);     /* spinning costs the wake back */
	assert_false(p.prefer_on);
	/* the first epoch (on), then only the probes */
	assert_true(nr_on >= 9 && nr_on <= 12);
	/* and it comes back when the machine changes */
	run_epochs(&p, 80, 6 * US, 76 * US);
	assert_true(p.prefer_on);
}

static void test_cycle_off_when_capped_to_zero(void **state)
{
	struct ebb_poll p;

	(void)state;
	ebb_poll_init(&p, 0);
	assert_false(p.on);
	run_epochs(&p, 20, 1 * US, 100 * US);
	assert_false(p.on);
	assert_int_equal(p.nr_epochs, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_grows_on_short_waits_up_to_the_cap),
		cmocka_unit_test(test_hit_keeps_the_window),
		cmocka_unit_test(test_quiet_shrinks_to_zero),
		cmocka_unit_test(test_off),
		cmocka_unit_test(test_polling_kept_where_it_pays),
		cmocka_unit_test(test_polling_dropped_where_it_does_not),
		cmocka_unit_test(test_cycle_off_when_capped_to_zero),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
