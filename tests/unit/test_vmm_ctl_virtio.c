/*
 * tests/unit/test_vmm_ctl_virtio.c — the `balloon` control command
 * (vmm/ctl_virtio.c): the command name parses, its arguments are checked
 * where they enter (negative, non-integer, too large, percentages over 100,
 * both forms at once), percentages and sizes turn into page-aligned guest
 * sizes, and a VM without virtio devices answers invalid-state.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "client/ctl.h"
#include "vmm/ctl_virtio.h"
#include "vmm/pci.h"

#define GIB (1ull << 30)

static enum vmm_ctl_err check(const char *json, uint64_t mem, uint64_t *target, bool *have)
{
	struct json_object *args = json ? json_tokener_parse(json) : NULL;
	char msg[256] = "";
	enum vmm_ctl_err err;

	if (json)
		assert_non_null(args);
	*target = 12345;
	err = vmm_ctl_balloon_args(args, mem, target, have, msg, sizeof(msg));
	if (err)
		assert_true(strlen(msg) > 0);  /* every refusal says why */
	json_object_put(args);
	return err;
}

static void test_command_parses(void **state)
{
	struct vmm_ctl_request req;
	const char *line = "{\"id\":1,\"cmd\":\"balloon\",\"args\":{\"percent\":50}}";
	char msg[128];

	assert_int_equal(vmm_ctl_parse_request(line, strlen(line), NULL, NULL, &req, msg, sizeof(msg)),
			 VMM_CTL_OK);
	assert_string_equal(req.cmd, "balloon");
	vmm_ctl_request_release(&req);
}

static void test_sizes(void **state)
{
	uint64_t t;
	bool have;

	assert_int_equal(check(NULL, GIB, &t, &have), VMM_CTL_OK);
	assert_false(have);
	assert_int_equal(check("{}", GIB, &t, &have), VMM_CTL_OK);
	assert_false(have);
	assert_int_equal(check("{\"percent\":50}", GIB, &t, &have), VMM_CTL_OK);
	assert_true(have);
	assert_int_equal(t, GIB / 2);
	assert_int_equal(check("{\"percent\":100}", GIB, &t, &have), VMM_CTL_OK);
	assert_int_equal(t, GIB);
	assert_int_equal(check("{\"percent\":0}", GIB, &t, &have), VMM_CTL_OK);
	assert_int_equal(t, 0);
	/* 33% of 1 GiB is not page aligned: rounded down to a page. */
	assert_int_equal(check("{\"percent\":33}", GIB, &t, &have), VMM_CTL_OK);
	assert_int_equal(t % 4096, 0);
	assert_true(t <= GIB / 100 * 33 + GIB % 100 * 33 / 100 && t + 4096 > GIB * 33 / 100);
	assert_int_equal(check("{\"size_bytes\":536870913}", GIB, &t, &have), VMM_CTL_OK);
	assert_int_equal(t, 536870912);
	assert_int_equal(check("{\"size_bytes\":1073741824}", GIB, &t, &have), VMM_CTL_OK);
	assert_int_equal(t, GIB);
	/* The largest guest: no overflow in the percentage. */
	assert_int_equal(check("{\"percent\":99}", 1ull << 40, &t, &have), VMM_CTL_OK);
	assert_int_equal(t, ((1ull << 40) / 100 * 99 + (1ull << 40) % 100 * 99 / 100) & ~4095ull);
}

static void test_hostile_args(void **state)
{
	static const char *const bad[] = {
		"{\"percent\":101}", "{\"percent\":-1}", "{\"percent\":\"50\"}", "{\"percent\":50.5}",
		"{\"percent\":null}", "{\"size_bytes\":-4096}", "{\"size_bytes\":\"1G\"}",
		"{\"size_bytes\":1073741825000}", "{\"size_bytes\":9223372036854775807}",
		"{\"size_bytes\":18446744073709551615}", "{\"size_bytes\":[1]}",
		"{\"percent\":50,\"size_bytes\":4096}",
	};
	uint64_t t;
	bool have;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(check(bad[i], GIB, &t, &have), VMM_CTL_ERR_INVALID);
		assert_false(have);
		assert_int_equal(t, 12345);  /* untouched */
	}
}

static void test_no_devices(void **state)
{
	struct vmm_ctl_request req = { .cmd = "balloon" };
	struct json_object *result = NULL, *q = json_object_new_object();
	char msg[256] = "";

	assert_int_equal(vmm_ctl_virtio_balloon(NULL, &req, &result, msg, sizeof(msg)),
			 VMM_CTL_ERR_STATE);
	assert_null(result);
	assert_non_null(strstr(msg, "no balloon"));
	/* query without devices: nothing added */
	vmm_ctl_virtio_query(NULL, q);
	assert_int_equal(json_object_object_length(q), 0);
	json_object_put(q);
}

static uint64_t get_u64(struct json_object *o, const char *path)
{
	char buf[128], *save = NULL, *key;
	struct json_object *v = o;

	snprintf(buf, sizeof(buf), "%s", path);
	for (key = strtok_r(buf, ".", &save); key; key = strtok_r(NULL, ".", &save))
		assert_true(json_object_object_get_ex(v, key, &v));
	assert_true(json_object_is_type(v, json_type_int));
	return json_object_get_uint64(v);
}

/* Issue 11 #4: every device error counter is in the reply, u64 stays u64. */
static void test_counters_in_json(void **state)
{
	struct vmm_balloon_info bi = { 0 };
	struct vmm_console_info ci = { 0 };
	struct json_object *b, *a;
	const char *text;

	bi.nr_bad_pfns = 11;
	bi.nr_dup_inflates = 12;
	bi.nr_deflate_not_inflated = 13;
	bi.nr_bad_report_ranges = 14;
	bi.nr_bad_stats = 15;
	bi.errs.nr_avail_jump = 16;
	bi.errs.nr_needs_reset = 17;
	bi.errs.nr_logs_suppressed = 18;
	bi.errs.nr_bad_register = 19;
	bi.nr_logs_suppressed = 20;
	bi.have_stats = true;
	bi.stats_valid_mask = 1u << 5 | 1u << 4;
	bi.stats[5] = UINT64_MAX;           /* total_memory a guest made up */
	bi.stats[4] = 1ull << 63;
	bi.features = 1ull << 63;
	b = vmm_ctl_balloon_json(&bi);
	assert_non_null(b);
	text = json_object_to_json_string_ext(b, JSON_C_TO_STRING_PLAIN);
	assert_non_null(strstr(text, "\"total_memory\":18446744073709551615"));
	assert_non_null(strstr(text, "\"free_memory\":9223372036854775808"));
	assert_non_null(strstr(text, "\"features\":9223372036854775808"));
	assert_null(strstr(text, ":-"));    /* nothing negative */
	assert_int_equal(get_u64(b, "errors.bad_pfns"), 11);
	assert_int_equal(get_u64(b, "errors.dup_inflates"), 12);
	assert_int_equal(get_u64(b, "errors.deflate_not_inflated"), 13);
	assert_int_equal(get_u64(b, "errors.bad_report_ranges"), 14);
	assert_int_equal(get_u64(b, "errors.bad_stats"), 15);
	assert_int_equal(get_u64(b, "errors.avail_jump"), 16);
	assert_int_equal(get_u64(b, "errors.needs_reset"), 17);
	assert_int_equal(get_u64(b, "errors.logs_suppressed"), 18);
	assert_int_equal(get_u64(b, "errors.bad_register"), 19);
	assert_int_equal(get_u64(b, "logs_suppressed"), 20);
	assert_int_equal(get_u64(b, "bad_pfns"), 11);
	json_object_put(b);

	ci.nr_bad_ctrl = 21;
	ci.nr_ctrl_dropped = 22;
	ci.nr_dropped_bytes = 23;
	ci.errs.nr_chain_loop = 24;
	ci.nr_agent_refused = 25;
	ci.nr_agent_hangups = 26;
	ci.agent_rx_bytes = UINT64_MAX;
	a = vmm_ctl_agent_json(&ci);
	assert_non_null(a);
	assert_int_equal(get_u64(a, "console_errors.bad_ctrl"), 21);
	assert_int_equal(get_u64(a, "console_errors.ctrl_dropped"), 22);
	assert_int_equal(get_u64(a, "console_errors.dropped_bytes"), 23);
	assert_int_equal(get_u64(a, "console_errors.chain_loop"), 24);
	assert_int_equal(get_u64(a, "clients_refused"), 25);
	assert_int_equal(get_u64(a, "client_hangups"), 26);
	{
		struct vmm_pci_stats ps = { .nr_bar_map_failures = 27, .nr_logs_suppressed = 28 };
		struct json_object *p = vmm_ctl_pci_json(&ps);

		assert_int_equal(get_u64(p, "bar_map_failures"), 27);
		assert_int_equal(get_u64(p, "logs_suppressed"), 28);
		json_object_put(p);
	}
	assert_true(get_u64(a, "rx_bytes") == UINT64_MAX);
	json_object_put(a);
}

/* The query path with real devices (no VM: no guest, counters at zero). */
static void test_query_with_devices(void **state)
{
	struct vmm_virtio_devs_cfg cfg = {
		.mem_bytes = 64ull << 20, .ram_end_gpa = 64ull << 20, .console_out_fd = -1,
	};
	struct vmm_virtio_devs *d = NULL;
	struct json_object *q = json_object_new_object();

	assert_int_equal(vmm_virtio_devs_create(&cfg, &d), 0);
	vmm_ctl_virtio_query(d, q);
	assert_int_equal(get_u64(q, "balloon.errors.needs_reset"), 0);
	assert_int_equal(get_u64(q, "balloon.errors.dup_inflates"), 0);
	assert_int_equal(get_u64(q, "balloon.mem_bytes"), 64ull << 20);
	assert_int_equal(get_u64(q, "agent.console_errors.bad_ctrl"), 0);
	json_object_put(q);
	vmm_virtio_devs_destroy(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_command_parses),
		cmocka_unit_test(test_sizes),
		cmocka_unit_test(test_hostile_args),
		cmocka_unit_test(test_no_devices),
		cmocka_unit_test(test_counters_in_json),
		cmocka_unit_test(test_query_with_devices),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
