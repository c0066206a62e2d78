/*
 * tests/unit/test_client_report.c — field tables (client/report.c): one
 * table encodes a struct as JSON (every type, optional members left out,
 * objects from a builder) and formats that JSON as text for people (units,
 * templates with a second member, new lines, members the JSON lacks
 * skipped, values neither number nor string shown as "?", truncation with
 * snprintf semantics); a VM's query reads as `ebb stat` showed it before
 * the table (vmm/vm_ctl.c).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "client/report.h"
#include "vmm/vm.h"

struct thing {
	uint64_t pages, bytes, count;
	int64_t maybe;
	int level;
	bool on;
	double pct;
	const char *mode;
};

static struct json_object *sub_json(const void *obj)
{
	struct json_object *o = json_object_new_object();

	json_object_object_add(o, "n", json_object_new_int(((const struct thing *)obj)->level));
	return o;
}

static int sub_text(struct json_object *v, char *buf, size_t len)
{
	struct json_object *n;

	if (!json_object_object_get_ex(v, "n", &n) || json_object_get_int(n) < 0)
		return 0;
	return snprintf(buf, len, "sub %d", json_object_get_int(n));
}

#define O(m) offsetof(struct thing, m)
static const struct vmm_field fields[] = {
	{ .name = "pages", .type = VMM_FIELD_U64, .off = O(pages), .text = "pages %s",
	  .unit = VMM_UNIT_PAGES_MIB },
	{ .name = "bytes", .type = VMM_FIELD_U64, .off = O(bytes), .text = " in %s",
	  .unit = VMM_UNIT_BYTES_KIB },
	{ .name = "count", .type = VMM_FIELD_U64, .off = O(count), .text = ", count %s of %s",
	  .with = "pages", .unit = VMM_UNIT_NUM },
	{ .name = "maybe", .type = VMM_FIELD_I64_OPT, .off = O(maybe), .text = ", maybe %s",
	  .unit = VMM_UNIT_NUM },
	{ .name = "level", .type = VMM_FIELD_INT, .off = O(level), .text = "level %s!",
	  .unit = VMM_UNIT_NUM, .line = true },
	{ .name = "on", .type = VMM_FIELD_BOOL, .off = O(on) },
	{ .name = "pct", .type = VMM_FIELD_DOUBLE, .off = O(pct), .text = ", pct %s",
	  .unit = VMM_UNIT_PCT },
	{ .name = "mode", .type = VMM_FIELD_STR, .off = O(mode) },
	{ .name = "sub", .type = VMM_FIELD_OBJ, .json = sub_json, .line = true,
	  .text_fn = sub_text },
};
#define NR (sizeof(fields) / sizeof(fields[0]))

static void test_json(void **state)
{
	struct thing t = { .pages = 256, .bytes = 4096, .count = 7, .maybe = -1, .level = -3,
			   .on = true, .pct = 0.5, .mode = NULL };
	struct json_object *o = json_object_new_object();

	(void)state;
	vmm_report_json(fields, NR, &t, o);
	assert_string_equal(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN),
			    "{\"pages\":256,\"bytes\":4096,\"count\":7,\"level\":-3,\"on\":true,"
			    "\"pct\":0.5,\"mode\":null,\"sub\":{\"n\":-3}}");
	json_object_put(o);
	t.maybe = 0;
	t.mode = "wp";
	o = json_object_new_object();
	vmm_report_json(fields, NR, &t, o);
	assert_non_null(strstr(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN),
			       "\"count\":7,\"maybe\":0,\"level\""));
	assert_non_null(strstr(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN),
			       "\"mode\":\"wp\""));
	json_object_put(o);
}

static void test_text(void **state)
{
	struct thing t = { .pages = 256, .bytes = 4096, .count = 7, .maybe = 5, .level = 2,
			   .pct = 0.25 };
	struct json_object *o = json_object_new_object();
	char buf[256], small[10];
	int n;

	(void)state;
	vmm_report_json(fields, NR, &t, o);
	n = vmm_report_text(fields, NR, o, "head: ", "      ", buf, sizeof(buf));
	assert_string_equal(buf, "head: pages 1.0 MiB in 4 KiB, count 7 of 256, maybe 5\n"
				 "      level 2!, pct 0.25%\n"
				 "      sub 2\n");
	assert_int_equal(n, (int)strlen(buf));
	/* truncated: what it would have taken, and a terminated prefix */
	assert_int_equal(vmm_report_text(fields, NR, o, "head: ", "      ", small, sizeof(small)), n);
	assert_string_equal(small, "head: pag");
	/* missing members are skipped, a value neither number nor string is
	 * "?", an object with nothing to show is skipped with its line */
	json_object_object_del(o, "maybe");
	json_object_object_add(o, "bytes", json_object_new_boolean(1));
	json_object_object_add(o, "sub", json_object_new_object());
	vmm_report_text(fields, NR, o, "head: ", "      ", buf, sizeof(buf));
	assert_string_equal(buf, "head: pages 1.0 MiB in ?, count 7 of 256\n"
				 "      level 2!, pct 0.25%\n");
	json_object_put(o);
	/* nothing to show: an empty string */
	o = json_object_new_object();
	assert_int_equal(vmm_report_text(fields, NR, o, "head: ", "", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "");
	json_object_put(o);
}

/* A real VM's query (vmm/vm_ctl.c's table) reads as `ebb stat` always showed it. */
static void test_vm_query_text(void **state)
{
	struct json_object *q = json_tokener_parse(
		"{\"name\":\"web1\",\"pid\":4242,\"state\":\"running\",\"vcpus\":2,"
		"\"mem_bytes\":536870912,\"uptime_ms\":185000,\"ready_ms\":null,\"nr_exits\":10,"
		"\"nr_pio_exits\":7,\"nr_mmio_exits\":3,\"nr_guest_mce\":0,\"mce_banks\":10,"
		"\"kernel\":\"/boot/bzImage\",\"cmdline\":\"console=ttyS0 quiet\",\"protocol\":1}");
	char buf[1024];
	int n;

	(void)state;
	assert_non_null(q);
	n = vmm_vm_query_format(q, buf, sizeof(buf));
	assert_int_equal(n, (int)strlen(buf));
	assert_string_equal(buf,
			    "name:       web1\n"
			    "pid:        4242\n"
			    "state:      running\n"
			    "vcpus:      2\n"
			    "memory:     512 MiB\n"
			    "uptime:     3m05s\n"
			    "ready:      -\n"
			    "exits:      10 (pio 7, mmio 3)\n"
			    "guest MCE:  0 (machine checks for guest RAM lost on the host; 10 banks)\n"
			    "kernel:     /boot/bzImage\n"
			    "cmdline:    console=ttyS0 quiet\n");
	json_object_put(q);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_json),
		cmocka_unit_test(test_text),
		cmocka_unit_test(test_vm_query_text),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
