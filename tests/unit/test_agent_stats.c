/*
 * test_agent_stats.c - unit tests for the guest agent's parsers (meminfo,
 * vmstat, PSI), the give-back estimate, and its allocation-free JSON reader
 * and writer, including hostile and garbage input.
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

#include "guest-agent/agent_json.h"
#include "guest-agent/agent_stats.h"

/* Real text from a Debian 6.1 guest with 512 MiB (trimmed at the end). */
static const char meminfo_61[] =
	"MemTotal:         493908 kB\n"
	"MemFree:          389644 kB\n"
	"MemAvailable:     400872 kB\n"
	"Buffers:           65544 kB\n"
	"Cached:            20544 kB\n"
	"SwapCached:            0 kB\n"
	"Active:             7520 kB\n"
	"Inactive:          83820 kB\n"
	"Active(anon):        220 kB\n"
	"Inactive(anon):    17880 kB\n"
	"Active(file):       7300 kB\n"
	"Inactive(file):    65940 kB\n"
	"Unevictable:           0 kB\n"
	"Mlocked:               0 kB\n"
	"SwapTotal:             0 kB\n"
	"SwapFree:              0 kB\n"
	"Zswap:                 0 kB\n"
	"Zswapped:              0 kB\n"
	"Dirty:                12 kB\n"
	"Writeback:             0 kB\n"
	"AnonPages:           276 kB\n"
	"Mapped:             1208 kB\n"
	"Shmem:             17844 kB\n"
	"KReclaimable:       5104 kB\n"
	"Slab:              12672 kB\n"
	"SReclaimable:       5104 kB\n"
	"SUnreclaim:         7568 kB\n"
	"HugePages_Total:       0\n"
	"Hugepagesize:       2048 kB\n";

static void test_meminfo_sample(void **state)
{
	struct agent_meminfo mi;

	(void)state;
	assert_int_equal(agent_meminfo_parse(meminfo_61, strlen(meminfo_61), &mi), 0);
	assert_int_equal(mi.nr_fields, 21);
	assert_int_equal(mi.total_bytes, 493908ull * 1024);
	assert_int_equal(mi.free_bytes, 389644ull * 1024);
	assert_int_equal(mi.available_bytes, 400872ull * 1024);
	assert_int_equal(mi.buffers_bytes, 65544ull * 1024);
	assert_int_equal(mi.cached_bytes, 20544ull * 1024);
	assert_int_equal(mi.active_file_bytes, 7300ull * 1024);
	assert_int_equal(mi.inactive_file_bytes, 65940ull * 1024);
	assert_int_equal(mi.dirty_bytes, 12ull * 1024);
	assert_int_equal(mi.shmem_bytes, 17844ull * 1024);
	assert_int_equal(mi.sunreclaim_bytes, 7568ull * 1024);
}

static void test_meminfo_hostile(void **state)
{
	struct agent_meminfo mi;
	/* Overflow after *1024, no kB, no digits, a page count, no newline at end. */
	static const char t[] =
		"MemTotal: 99999999999999999999 kB\n"
		"MemFree: 18014398509481984 kB\n"
		"Buffers: 12\n"
		"Cached: kB\n"
		"HugePages_Total: 5\n"
		"MemFree2: 1 kB\n"
		"Dirty:5 kB";

	(void)state;
	assert_int_equal(agent_meminfo_parse("", 0, &mi), -EINVAL);
	assert_int_equal(agent_meminfo_parse("garbage\n\n\x01\xff", 12, &mi), -EINVAL);
	assert_int_equal(agent_meminfo_parse(t, strlen(t), &mi), 0);
	assert_int_equal(mi.nr_fields, 1);
	assert_int_equal(mi.total_bytes, 0);
	assert_int_equal(mi.free_bytes, 0);
	assert_int_equal(mi.buffers_bytes, 0);
	assert_int_equal(mi.dirty_bytes, 5 * 1024);
	/* Not NUL-terminated: the parser must respect len. */
	assert_int_equal(agent_meminfo_parse("MemTotal: 4 kB\nMemFree: 7 kB", 15, &mi), 0);
	assert_int_equal(mi.total_bytes, 4096);
	assert_int_equal(mi.free_bytes, 0);
}

static void test_vmstat(void **state)
{
	static const char new_style[] =
		"nr_free_pages 97411\n"
		"workingset_refault_anon 3\n"
		"workingset_refault_file 1200\n"
		"pgmajfault 77\n"
		"pswpin 5\n"
		"pswpout 6\n"
		"allocstall_dma 1\n"
		"allocstall_dma32 2\n"
		"allocstall_normal 3\n"
		"pgsteal_kswapd 40\n"
		"pgsteal_direct 41\n"
		"pgscan_kswapd 50\n"
		"pgscan_direct 51\n"
		"pgscan_direct_throttle 9\n"
		"compact_stall 4\n"
		"oom_kill 2\n";
	static const char old_style[] = "workingset_refault 321\noom_kill 1\n";
	static const char bad[] = "oom_kill -1\npswpin 5 6\npswpout 1x\npgmajfault 99999999999999999999\n";
	struct agent_vmstat vs;

	(void)state;
	assert_int_equal(agent_vmstat_parse(new_style, strlen(new_style), &vs), 0);
	assert_int_equal(vs.workingset_refault, 1203);
	assert_int_equal(vs.workingset_refault_file, 1200);
	assert_int_equal(vs.pgmajfault, 77);
	assert_int_equal(vs.pswpin, 5);
	assert_int_equal(vs.pswpout, 6);
	assert_int_equal(vs.allocstall, 6);
	assert_int_equal(vs.pgsteal_kswapd, 40);
	assert_int_equal(vs.pgsteal_direct, 41);
	assert_int_equal(vs.pgscan_kswapd, 50);
	assert_int_equal(vs.pgscan_direct, 51);
	assert_int_equal(vs.compact_stall, 4);
	assert_int_equal(vs.oom_kill, 2);
	assert_int_equal(agent_vmstat_parse(old_style, strlen(old_style), &vs), 0);
	assert_int_equal(vs.workingset_refault, 321);
	assert_int_equal(vs.oom_kill, 1);
	assert_int_equal(agent_vmstat_parse(bad, strlen(bad), &vs), -EINVAL);
	assert_int_equal(vs.oom_kill, 0);
	assert_int_equal(vs.pswpin, 0);
}

static void test_psi(void **state)
{
	static const char t[] =
		"some avg10=12.34 avg60=0.05 avg300=100.00 total=123456789\n"
		"full avg10=1.5 avg60=0.00 avg300=0.00 total=42\n";
	static const char no_full[] = "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n";
	struct agent_psi psi;

	(void)state;
	assert_int_equal(agent_psi_parse(t, strlen(t), &psi), 0);
	assert_true(psi.some.present);
	assert_int_equal(psi.some.avg10_centipct, 1234);
	assert_int_equal(psi.some.avg60_centipct, 5);
	assert_int_equal(psi.some.avg300_centipct, 10000);
	assert_int_equal(psi.some.total_us, 123456789);
	assert_true(psi.full.present);
	assert_int_equal(psi.full.avg10_centipct, 150);
	assert_int_equal(psi.full.total_us, 42);
	assert_int_equal(agent_psi_parse(no_full, strlen(no_full), &psi), 0);
	assert_false(psi.full.present);
	/* Hostile: >100 %, missing fields, junk. */
	assert_int_equal(agent_psi_parse("some avg10=100.01 avg60=0 avg300=0 total=0\n", 43, &psi),
			 -EINVAL);
	assert_int_equal(agent_psi_parse("some avg10=1.00 avg60=0.00\n", 27, &psi), -EINVAL);
	assert_int_equal(agent_psi_parse("some avg10=. avg60=0 avg300=0 total=0\n", 38, &psi),
			 -EINVAL);
	assert_int_equal(agent_psi_parse("", 0, &psi), -EINVAL);
}

#define MIB (1024ull * 1024)

static void test_estimate(void **state)
{
	struct agent_meminfo mi = { 0 };
	struct agent_estimate est;
	struct agent_estimate_cfg cfg = { .free_reserve_bytes = 10 * MIB, .cache_floor_bytes = 20 * MIB };

	(void)state;
	mi.total_bytes = 512 * MIB;
	mi.free_bytes = 300 * MIB;
	mi.active_file_bytes = 30 * MIB;
	mi.inactive_file_bytes = 70 * MIB;
	mi.dirty_bytes = 5 * MIB;
	mi.writeback_bytes = 5 * MIB;
	agent_estimate_compute(&mi, &cfg, &est);
	assert_int_equal(est.clean_file_bytes, 90 * MIB);
	/* (300 - 10) + (90 - 20) */
	assert_int_equal(est.give_back_bytes, 360 * MIB);
	assert_int_equal(est.safe_target_bytes, 152 * MIB);

	/* Defaults: reserve max(32 MiB, total/32) = 32, floor max(32, total/16) = 32. */
	agent_estimate_compute(&mi, NULL, &est);
	assert_int_equal(est.free_reserve_bytes, 32 * MIB);
	assert_int_equal(est.cache_floor_bytes, 32 * MIB);
	assert_int_equal(est.give_back_bytes, (268 + 58) * MIB);

	/* Below the reserve and floor: nothing to give. */
	mi.free_bytes = 5 * MIB;
	mi.active_file_bytes = mi.inactive_file_bytes = 0;
	agent_estimate_compute(&mi, &cfg, &est);
	assert_int_equal(est.give_back_bytes, 0);
	assert_int_equal(est.safe_target_bytes, 512 * MIB);

	/* Hostile sums saturate instead of wrapping; never more than total. */
	mi.free_bytes = UINT64_MAX;
	mi.active_file_bytes = UINT64_MAX;
	mi.inactive_file_bytes = UINT64_MAX;
	agent_estimate_compute(&mi, &cfg, &est);
	assert_int_equal(est.give_back_bytes, 512 * MIB);
	assert_int_equal(est.safe_target_bytes, 0);
}

static void test_need_bytes(void **state)
{
	struct agent_meminfo mi = { .total_bytes = 512 * MIB, .available_bytes = 10 * MIB };

	(void)state;
	/* comfort max(64, 512/8=64) = 64 MiB: need 54 MiB. */
	assert_int_equal(agent_need_bytes(&mi, 0, 0), 54 * MIB);
	mi.available_bytes = 60 * MIB;
	/* min step max(16, 512/32=16) = 16 MiB. */
	assert_int_equal(agent_need_bytes(&mi, 0, 0), 16 * MIB);
	assert_int_equal(agent_need_bytes(&mi, 200 * MIB, 1), 140 * MIB);
}

static int parse(const char *s, struct agent_jobj *o)
{
	return agent_json_parse_flat(s, strlen(s), o);
}

static void test_json_reader(void **state)
{
	static struct agent_jobj o;
	const struct agent_jfield *f;

	(void)state;
	assert_int_equal(parse(" {\"type\":\"hello\", \"id\" : 7,\"neg\":-3,\"b\":true,"
			       "\"n\":null,\"f\":1.5,\"e\":1e3,\"big\":99999999999999999999,"
			       "\"nest\":{\"a\":[1,2,{\"b\":\"x\"}]},\"esc\":\"a\\\"b\\\\c\\n\\u00e9\"} ",
			       &o), 0);
	assert_int_equal(o.nr_fields, 10);
	f = agent_json_get(&o, "type");
	assert_non_null(f);
	assert_int_equal(f->type, AGENT_J_STRING);
	assert_string_equal(f->str, "hello");
	f = agent_json_get(&o, "id");
	assert_int_equal(f->type, AGENT_J_INT);
	assert_int_equal(f->num, 7);
	assert_int_equal(agent_json_get(&o, "neg")->num, -3);
	assert_int_equal(agent_json_get(&o, "b")->type, AGENT_J_BOOL);
	assert_true(agent_json_get(&o, "b")->b);
	assert_int_equal(agent_json_get(&o, "n")->type, AGENT_J_NULL);
	assert_int_equal(agent_json_get(&o, "f")->type, AGENT_J_OTHER);
	assert_int_equal(agent_json_get(&o, "e")->type, AGENT_J_OTHER);
	assert_int_equal(agent_json_get(&o, "big")->type, AGENT_J_OTHER);
	assert_int_equal(agent_json_get(&o, "nest")->type, AGENT_J_OTHER);
	assert_string_equal(agent_json_get(&o, "esc")->str, "a\"b\\c\n\xc3\xa9");
	assert_null(agent_json_get(&o, "missing"));
	assert_int_equal(parse("{}", &o), 0);
	assert_int_equal(o.nr_fields, 0);
	assert_int_equal(parse("{\"x\":-9223372036854775808}", &o), 0);
	assert_int_equal(o.f[0].num, INT64_MIN);
}

static void test_json_reader_hostile(void **state)
{
	static struct agent_jobj o;
	static const char *const bad[] = {
		"", "   ", "[]", "\"x\"", "1", "null", "{", "}", "{\"a\"}", "{\"a\":}",
		"{\"a\":1,}", "{,}", "{\"a\":1 \"b\":2}", "{\"a\":1}x", "{\"a\":1}{}",
		"{\"a\":tru}", "{\"a\":nul}", "{\"a\":01}", "{\"a\":-}", "{\"a\":1.}",
		"{\"a\":1e}", "{\"a\":\"\\x\"}", "{\"a\":\"\\u12\"}", "{\"a\":\"\\u0000\"}",
		"{\"a\":\"\\ud800\"}", "{\"a\":\"unterminated}", "{\"a\":\"tab\there\"}",
		"{\"a\":1,\"a\":2}", "{\"a\":[1,2}", "{\"a\":{\"b\":1]}", "{a:1}", "{'a':1}",
	};
	char buf[2048];
	int n;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = parse(bad[i], &o);

		if (rc != -EINVAL)
			fail_msg("accepted or wrong error (%d) for %s", rc, bad[i]);
	}
	/* Embedded NUL within len. */
	assert_int_equal(agent_json_parse_flat("{\"a\":\"x\0y\"}", 11, &o), -EINVAL);
	/* Too deep. */
	n = snprintf(buf, sizeof(buf), "{\"a\":");
	for (int i = 0; i < 20; i++)
		buf[n++] = '[';
	for (int i = 0; i < 20; i++)
		buf[n++] = ']';
	buf[n++] = '}';
	assert_int_equal(agent_json_parse_flat(buf, (size_t)n, &o), -E2BIG);
	/* Too many fields. */
	n = snprintf(buf, sizeof(buf), "{");
	for (int i = 0; i < AGENT_J_MAX_FIELDS + 1; i++)
		n += snprintf(buf + n, sizeof(buf) - (size_t)n, "%s\"k%d\":%d", i ? "," : "", i, i);
	n += snprintf(buf + n, sizeof(buf) - (size_t)n, "}");
	assert_int_equal(agent_json_parse_flat(buf, (size_t)n, &o), -E2BIG);
	/* Key and string too long. */
	memset(buf, 'k', sizeof(buf));
	memcpy(buf, "{\"", 2);
	memcpy(buf + 2 + AGENT_J_MAX_KEY, "\":1}", 4);
	assert_int_equal(agent_json_parse_flat(buf, 6 + AGENT_J_MAX_KEY, &o), -E2BIG);
	memset(buf, 's', sizeof(buf));
	memcpy(buf, "{\"a\":\"", 6);
	memcpy(buf + 6 + AGENT_J_MAX_STR, "\"}", 2);
	assert_int_equal(agent_json_parse_flat(buf, 8 + AGENT_J_MAX_STR, &o), -E2BIG);
}

/* Random bytes and random mutations of a valid request must never crash
 * (run under SANITIZE=address,undefined to make this bite). */
static void test_json_reader_garbage(void **state)
{
	static struct agent_jobj o;
	static const char seed[] = "{\"type\":\"reclaim\",\"id\":12,\"op\":\"drop_caches\","
				   "\"slab\":false,\"x\":[{\"y\":\"\\u00e9\"}]}";
	char buf[256];
	unsigned accepted = 0;

	(void)state;
	srand(12345);
	for (int it = 0; it < 20000; it++) {
		size_t len;

		if (it % 2) {
			len = (size_t)(rand() % (int)sizeof(buf));
			for (size_t i = 0; i < len; i++)
				buf[i] = (char)(rand() % 256);
		} else {
			len = sizeof(seed) - 1;
			memcpy(buf, seed, len);
			for (int k = 0; k < 1 + rand() % 4; k++)
				buf[rand() % (int)len] = "{}[]\":,\\ 0a-.e\x80"[rand() % 16];
		}
		if (agent_json_parse_flat(buf, len, &o) == 0) {
			accepted++;
			assert_true(o.nr_fields <= AGENT_J_MAX_FIELDS);
			for (unsigned i = 0; i < o.nr_fields; i++)
				assert_true(strlen(o.f[i].key) < AGENT_J_MAX_KEY);
		}
	}
	/* Some mutations stay valid (e.g. a changed digit): the reader did work. */
	assert_true(accepted > 0);
}

static void test_json_writer(void **state)
{
	char buf[256];
	struct agent_jw w;
	int n;

	(void)state;
	agent_jw_init(&w, buf, sizeof(buf));
	agent_jw_obj_begin(&w, NULL);
	agent_jw_str(&w, "type", "x\"y\n");
	agent_jw_i64(&w, "id", -5);
	agent_jw_obj_begin(&w, "o");
	agent_jw_u64(&w, "u", UINT64_MAX);
	agent_jw_centi(&w, "c", 1205);
	agent_jw_obj_end(&w);
	agent_jw_arr_begin(&w, "a");
	agent_jw_str(&w, NULL, "p");
	agent_jw_bool(&w, NULL, false);
	agent_jw_null(&w, NULL);
	agent_jw_arr_end(&w);
	agent_jw_obj_end(&w);
	n = agent_jw_finish(&w);
	assert_int_equal(n, (int)strlen(buf));
	assert_string_equal(buf, "{\"type\":\"x\\\"y\\u000a\",\"id\":-5,\"o\":{\"u\":"
			    "18446744073709551615,\"c\":12.05},\"a\":[\"p\",false,null]}\n");

	/* Overflow is sticky and reported; the buffer stays NUL-terminated. */
	agent_jw_init(&w, buf, 16);
	agent_jw_obj_begin(&w, NULL);
	agent_jw_str(&w, "type", "a long string that does not fit");
	agent_jw_obj_end(&w);
	assert_int_equal(agent_jw_finish(&w), -ENOSPC);
	assert_true(strlen(buf) < 16);
	/* Unbalanced. */
	agent_jw_init(&w, buf, sizeof(buf));
	agent_jw_obj_begin(&w, NULL);
	assert_int_equal(agent_jw_finish(&w), -ENOSPC);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_meminfo_sample),
		cmocka_unit_test(test_meminfo_hostile),
		cmocka_unit_test(test_vmstat),
		cmocka_unit_test(test_psi),
		cmocka_unit_test(test_estimate),
		cmocka_unit_test(test_need_bytes),
		cmocka_unit_test(test_json_reader),
		cmocka_unit_test(test_json_reader_hostile),
		cmocka_unit_test(test_json_reader_garbage),
		cmocka_unit_test(test_json_writer),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
