/*
 * tests/unit/test_libvirt_stats.c — host-reclaim/libvirt/lv_stats.c, the
 * validation of what libvirt's bulk stats hand ebbd for a domain, fed with
 * records built by libvirt's own typed-parameter API (no libvirtd needed):
 * a good record, current above maximum, a missing or absurd maximum, free
 * memory above the guest, last-update and counters going backwards, a
 * domain with the stats period off; and the parser of a domain's ebb
 * metadata element, good and hostile.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "host-reclaim/libvirt/lv_stats.h"

#define S(n) ((uint64_t)(n) * 1000000000ull)

struct rec {
	virTypedParameterPtr p;
	int n, max;
};

static void put(struct rec *r, const char *name, unsigned long long v)
{
	assert_int_equal(virTypedParamsAddULLong(&r->p, &r->n, &r->max, name, v), 0);
}

static void drop(struct rec *r)
{
	virTypedParamsFree(r->p, r->n);
	r->p = NULL;
	r->n = r->max = 0;
}

/* A 256 MiB guest with 200 MiB in it, the guest's numbers at time upd. */
static void good(struct rec *r, unsigned long long upd)
{
	put(r, "balloon.maximum", 262144);
	put(r, "balloon.current", 204800);
	put(r, "balloon.rss", 150000);
	put(r, "balloon.unused", 50000);
	put(r, "balloon.usable", 80000);
	put(r, "balloon.disk_caches", 20000);
	put(r, "balloon.last-update", upd);
	put(r, "balloon.swap_in", 100);
	put(r, "balloon.major_fault", 7);
}

static void test_good_record(void **state)
{
	struct ebbd_lv_stats st = { 0 };
	struct rec r = { 0 };
	bool refused;

	(void)state;
	good(&r, 1000);
	assert_int_equal(ebbd_lv_stats_parse(&st, r.p, r.n, S(5), &refused), 0);
	assert_false(refused);
	assert_int_equal(st.max_kib, 262144);
	assert_int_equal(st.cur_kib, 204800);
	assert_int_equal(st.rss_kib, 150000);
	assert_true(st.have_guest);
	assert_int_equal(st.unused_kib, 50000);
	assert_int_equal(st.usable_kib, 80000);
	assert_int_equal(st.report_ns, S(5));
	assert_int_equal(st.poll_ns, S(5));
	/* the same last-update a second later: the report is not fresher */
	assert_int_equal(ebbd_lv_stats_parse(&st, r.p, r.n, S(6), &refused), 0);
	assert_int_equal(st.report_ns, S(5));
	assert_int_equal(st.poll_ns, S(6));
	drop(&r);
	good(&r, 1001);
	assert_int_equal(ebbd_lv_stats_parse(&st, r.p, r.n, S(7), &refused), 0);
	assert_int_equal(st.report_ns, S(7));
	drop(&r);
}

static void test_current_above_maximum(void **state)
{
	struct ebbd_lv_stats st = { 0 };
	struct rec r = { 0 };
	bool refused;

	(void)state;
	put(&r, "balloon.maximum", 262144);
	put(&r, "balloon.current", 1ull << 30);
	put(&r, "balloon.unused", 1ull << 33);     /* more free than the guest has */
	put(&r, "balloon.usable", 1ull << 33);
	put(&r, "balloon.last-update", 5);
	assert_int_equal(ebbd_lv_stats_parse(&st, r.p, r.n, S(1), &refused), 3);
	assert_false(refused);
	assert_int_equal(st.cur_kib, 262144);
	assert_int_equal(st.unused_kib, 262144);
	assert_int_equal(st.usable_kib, 262144);
	assert_int_equal(st.rss_kib, 262144);       /* no rss: the balloon's size */
	drop(&r);
}

static void test_refused(void **state)
{
	struct ebbd_lv_stats st = { 0 }, before;
	struct rec r = { 0 };
	bool refused;

	(void)state;
	good(&r, 10);
	assert_int_equal(ebbd_lv_stats_parse(&st, r.p, r.n, S(1), &refused), 0);
	drop(&r);
	before = st;
	/* no maximum */
	put(&r, "balloon.current", 1000);
	assert_int_equal(ebbd_lv_stats_parse(&st, r.p, r.n, S(2), &refused), 1);
	assert_true(refused);
	assert_memory_equal(&st, &before, sizeof(st));
	drop(&r);
	/* an absurd maximum */
	put(&r, "balloon.maximum", EBBD_LV_MAX_GUEST_KIB + 1);
	put(&r, "balloon.current", 1000);
	assert_int_equal(ebbd_lv_stats_parse(&st, r.p, r.n, S(3), &refused), 1);
	assert_true(refused);
	drop(&r);
	/* a maximum under 1 MiB */
	put(&r, "balloon.maximum", 512);
	put(&r, "balloon.current", 512);
	assert_int_equal(ebbd_lv_stats_parse(&st, r.p, r.n, S(3), &refused), 1);
	assert_true(refused);
	drop(&r);
	/* nothing at all */
	assert_int_equal(ebbd_lv_stats_parse(&st, NULL, 0, S(4), &refused), 1);
	assert_true(refused);
	assert_memory_equal(&st, &before, sizeof(st));
}

static void test_backwards(void **state)
{
	struct ebbd_lv_stats st = { 0 };
	struct rec r = { 0 };
	bool refused;

	(void)state;
	good(&r, 1000);
	assert_int_equal(ebbd_lv_stats_parse(&st, r.p, r.n, S(1), &refused), 0);
	drop(&r);
	put(&r, "balloon.maximum", 262144);
	put(&r, "balloon.current", 204800);
	put(&r, "balloon.unused", 40000);
	put(&r, "balloon.usable", 70000);
	put(&r, "balloon.last-update", 900);   /* earlier than the last one */
	put(&r, "balloon.swap_in", 50);        /* cumulative, went down */
	put(&r, "balloon.major_fault", 3);     /* cumulative, went down */
	assert_int_equal(ebbd_lv_stats_parse(&st, r.p, r.n, S(2), &refused), 3);
	assert_int_equal(st.report_ns, S(1));     /* not a fresh report */
	assert_int_equal(st.last_update_s, 1000);
	assert_int_equal(st.swap_in_kib, 100);
	assert_int_equal(st.major_faults, 7);
	drop(&r);
}

static void test_period_off(void **state)
{
	struct ebbd_lv_stats st = { 0 };
	struct rec r = { 0 };
	bool refused;

	(void)state;
	put(&r, "balloon.maximum", 524288);
	put(&r, "balloon.current", 524288);
	put(&r, "balloon.rss", 300000);
	assert_int_equal(ebbd_lv_stats_parse(&st, r.p, r.n, S(1), &refused), 0);
	assert_false(st.have_guest);
	assert_int_equal(st.report_ns, 0);
	assert_int_equal(st.rss_kib, 300000);
	drop(&r);
}

static void test_metadata(void **state)
{
	struct ebbd_lv_meta m;

	(void)state;
	assert_int_equal(ebbd_lv_parse_metadata(NULL, &m), 0);
	assert_false(m.opt_out);
	assert_int_equal(m.weight, 0);
	assert_int_equal(ebbd_lv_parse_metadata("<ebb:memory xmlns:ebb=\"urn:ebb:memory:1\" "
						"weight=\"300\" min_mib='160' low_mib=\"200\"/>",
						&m), 0);
	assert_int_equal(m.weight, 300);
	assert_int_equal(m.min_mib, 160);
	assert_int_equal(m.low_mib, 200);
	assert_false(m.opt_out);
	assert_int_equal(ebbd_lv_parse_metadata("<memory opt_out=\"yes\"/>", &m), 0);
	assert_true(m.opt_out);
	/* hostile: out of range, not a number, unterminated, low under min,
	 * an unknown opt_out word, a name that only ends like an attribute */
	assert_int_equal(ebbd_lv_parse_metadata("<memory weight=\"0\" min_mib=\"-5\"/>", &m), 2);
	assert_int_equal(m.weight, 0);
	assert_int_equal(m.min_mib, 0);
	assert_int_equal(ebbd_lv_parse_metadata("<memory weight=\"99999999999\"/>", &m), 1);
	assert_int_equal(ebbd_lv_parse_metadata("<memory weight=\"12", &m), 1);
	assert_int_equal(ebbd_lv_parse_metadata("<memory weight=12/>", &m), 1);
	assert_int_equal(ebbd_lv_parse_metadata("<memory min_mib=\"500\" low_mib=\"100\"/>", &m), 1);
	assert_int_equal(m.low_mib, 500);
	assert_int_equal(ebbd_lv_parse_metadata("<memory opt_out=\"maybe\"/>", &m), 1);
	assert_false(m.opt_out);
	assert_int_equal(ebbd_lv_parse_metadata("<memory xweight=\"5\"/>", &m), 0);
	assert_int_equal(m.weight, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good_record),
		cmocka_unit_test(test_current_above_maximum),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_backwards),
		cmocka_unit_test(test_period_off),
		cmocka_unit_test(test_metadata),
	};

	/* libvirt's error state is set up here; its API calls need it */
	if (virInitialize() < 0)
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
