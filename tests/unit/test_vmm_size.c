/*
 * tests/unit/test_vmm_size.c — size parsing and printing (client/size.c) as used
 * by `ebb run --mem`: suffixes, the bare-number default unit, and everything
 * that must be refused (signs, spaces, fractions, unknown suffixes, overflow).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "client/size.h"

#define MiB (1ull << 20)

static void test_valid(void **state)
{
	static const struct { const char *s; uint64_t bytes; } ok[] = {
		{ "512M", 512 * MiB }, { "2G", 2048 * MiB }, { "1536MiB", 1536 * MiB },
		{ "1536mib", 1536 * MiB }, { "512MB", 512 * MiB }, { "4096K", 4 * MiB },
		{ "4096KiB", 4 * MiB }, { "1T", 1ull << 40 }, { "1g", 1ull << 30 },
		{ "65536B", 65536 }, { "0", 0 }, { "256", 256 * MiB }, { "007M", 7 * MiB },
	};
	size_t i;

	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		uint64_t v = 1;

		if (vmm_parse_size(ok[i].s, MiB, &v) != 0 || v != ok[i].bytes)
			fail_msg("'%s' parsed as %llu", ok[i].s, (unsigned long long)v);
	}
}

static void test_default_unit(void **state)
{
	uint64_t v;

	assert_int_equal(vmm_parse_size("100", 1, &v), 0);
	assert_int_equal(v, 100);
	assert_int_equal(vmm_parse_size("100", 1024, &v), 0);
	assert_int_equal(v, 102400);
	assert_int_equal(vmm_parse_size("100", 0, &v), -EINVAL);
}

static void test_invalid(void **state)
{
	static const char *const bad[] = {
		"", "M", "-1G", "+1G", " 1G", "1G ", "1.5G", "1,5G", "1GG", "1Gi", "1GiBx", "1X",
		"1 G", "0x10", "1e3", "1BB", "1Bi", "G1", "1\n",
	};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint64_t v = 42;
		int ret = vmm_parse_size(bad[i], MiB, &v);

		if (ret != -EINVAL)
			fail_msg("'%s' gave %d, wanted -EINVAL", bad[i], ret);
	}
	assert_int_equal(vmm_parse_size(NULL, MiB, &(uint64_t){ 0 }), -EINVAL);
}

static void test_overflow(void **state)
{
	uint64_t v;

	assert_int_equal(vmm_parse_size("18446744073709551615B", MiB, &v), 0);
	assert_int_equal(v, UINT64_MAX);
	assert_int_equal(vmm_parse_size("18446744073709551616B", MiB, &v), -ERANGE);
	assert_int_equal(vmm_parse_size("99999999999999999999999", MiB, &v), -ERANGE);
	assert_int_equal(vmm_parse_size("16777216T", MiB, &v), -ERANGE);  /* 2^64 */
	assert_int_equal(vmm_parse_size("16777215T", MiB, &v), 0);
	assert_int_equal(vmm_parse_size("17592186044416", MiB, &v), -ERANGE);  /* 2^44 MiB */
}

static void test_format(void **state)
{
	char buf[32];

	assert_string_equal(vmm_format_size(512 * MiB, buf, sizeof(buf)), "512 MiB");
	assert_string_equal(vmm_format_size(1536 * MiB, buf, sizeof(buf)), "1.5 GiB");
	assert_string_equal(vmm_format_size(1ull << 30, buf, sizeof(buf)), "1 GiB");
	assert_string_equal(vmm_format_size(1000, buf, sizeof(buf)), "1000 bytes");
	assert_string_equal(vmm_format_size(4096, buf, sizeof(buf)), "4 KiB");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_valid),
		cmocka_unit_test(test_default_unit),
		cmocka_unit_test(test_invalid),
		cmocka_unit_test(test_overflow),
		cmocka_unit_test(test_format),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
