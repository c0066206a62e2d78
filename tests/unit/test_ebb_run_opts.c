/*
 * tests/unit/test_ebb_run_opts.c — the memory options of `ebb run`
 * (vmm/bin/run_opts.c): each option's values, the ones refused with a
 * message, which ask for the engine, and an unknown name.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "vmm/bin/run_opts.h"
#include "vmm/memory.h"

#define MiB (1ull << 20)

static void test_opts(void **state)
{
	struct vmm_memory_opts o = { .swappiness = -1 };
	char err[256];

	/* Default: managed where possible (not required), dirty log on. */
	assert_false(o.enable);
	assert_false(o.off);
	assert_int_not_equal(vmm_memory_slot_flags(&o), 0);
	assert_int_equal(ebb_memory_opt(&o, "mem-max", "30%", err, sizeof(err)), 0);
	assert_true(o.enable && o.max.is_pct && o.max.value == 30);
	assert_int_equal(ebb_memory_opt(&o, "mem-high", "200M", err, sizeof(err)), 0);
	assert_int_equal(o.high.value, 200 * MiB);
	assert_int_equal(ebb_memory_opt(&o, "swappiness", "200", err, sizeof(err)), 0);
	assert_int_equal(o.swappiness, 200);
	assert_int_equal(ebb_memory_opt(&o, "swappiness", "201", err, sizeof(err)), -EINVAL);
	assert_int_equal(ebb_memory_opt(&o, "swappiness", "-1", err, sizeof(err)), -EINVAL);
	assert_int_equal(ebb_memory_opt(&o, "swappiness", "6x", err, sizeof(err)), -EINVAL);
	assert_int_equal(o.fault_around_pages, 0);   /* the engine's default */
	assert_int_equal(ebb_memory_opt(&o, "fault-around", "1", err, sizeof(err)), 0);
	assert_int_equal(o.fault_around_pages, 1);
	assert_int_equal(ebb_memory_opt(&o, "fault-around", "64", err, sizeof(err)), 0);
	assert_int_equal(o.fault_around_pages, 64);
	assert_int_equal(ebb_memory_opt(&o, "fault-around", "128", err, sizeof(err)), -EINVAL);
	assert_int_equal(ebb_memory_opt(&o, "fault-around", "12", err, sizeof(err)), -EINVAL);
	assert_int_equal(ebb_memory_opt(&o, "fault-around", "0", err, sizeof(err)), -EINVAL);
	assert_int_equal(ebb_memory_opt(&o, "fault-around", "16k", err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "power of two"));
	assert_int_equal(o.fault_around_pages, 64);  /* refused values change nothing */
	assert_int_equal(ebb_memory_opt(&o, "swap-compress", "zstd", err, sizeof(err)), 0);
	assert_int_equal(o.compress, VMM_SWAP_ZSTD);
	assert_int_equal(ebb_memory_opt(&o, "swap-compress", "lzma", err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "lz4, zstd or none"));
	assert_int_equal(ebb_memory_opt(&o, "swap-compress", "none", err, sizeof(err)), 0);
	assert_int_equal(o.compress, VMM_SWAP_NONE);
	assert_false(o.no_swap_encrypt);   /* encrypted by default */
	assert_int_equal(ebb_memory_opt(&o, "swap-encrypt", "off", err, sizeof(err)), 0);
	assert_true(o.no_swap_encrypt);
	assert_int_equal(ebb_memory_opt(&o, "swap-encrypt", "yes", err, sizeof(err)), -EINVAL);
	assert_int_equal(ebb_memory_opt(&o, "swap-encrypt", "on", err, sizeof(err)), 0);
	assert_false(o.no_swap_encrypt);
	assert_int_equal(ebb_memory_opt(&o, "ksm", "maybe", err, sizeof(err)), -EINVAL);
	assert_int_equal(ebb_memory_opt(&o, "ksm", "on", err, sizeof(err)), 0);
	assert_true(o.ksm);
	assert_int_equal(ebb_memory_opt(&o, "dirty-log", "off", err, sizeof(err)), 0);
	assert_true(o.no_dirty_log);
	assert_int_equal(vmm_memory_slot_flags(&o), 0);
	assert_int_equal(ebb_memory_opt(&o, "dirty-log", "on", err, sizeof(err)), 0);
	assert_int_not_equal(vmm_memory_slot_flags(&o), 0);
	assert_int_equal(ebb_memory_opt(&o, "reclaim", "off", err, sizeof(err)), 0);
	assert_false(o.enable);
	assert_true(o.off);
	assert_int_equal(vmm_memory_slot_flags(&o), 0);
	assert_int_equal(ebb_memory_opt(&o, "reclaim", "on", err, sizeof(err)), 0);
	assert_true(o.enable && !o.off);
	assert_int_equal(ebb_memory_opt(&o, "swap-dir", "", err, sizeof(err)), -EINVAL);
	assert_int_equal(ebb_memory_opt(&o, "mem-lots", "1", err, sizeof(err)), -ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_opts),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
