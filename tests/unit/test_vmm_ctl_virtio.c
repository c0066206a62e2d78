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
#include <string.h>

#include <cmocka.h>

#include "client/ctl.h"
#include "vmm/ctl_virtio.h"

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

	assert_int_equal(vmm_ctl_parse_request(line, strlen(line), &req, msg, sizeof(msg)),
			 VMM_CTL_OK);
	assert_int_equal(req.cmd, VMM_CTL_CMD_BALLOON);
	assert_string_equal(vmm_ctl_cmd_name(VMM_CTL_CMD_BALLOON), "balloon");
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
	struct vmm_ctl_request req = { .cmd = VMM_CTL_CMD_BALLOON };
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_command_parses),
		cmocka_unit_test(test_sizes),
		cmocka_unit_test(test_hostile_args),
		cmocka_unit_test(test_no_devices),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
