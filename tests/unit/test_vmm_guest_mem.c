/*
 * tests/unit/test_vmm_guest_mem.c — the guest's memory map (vmm/guest_mem.c):
 * the slots around the PCI hole, the conversions between guest-physical
 * addresses, host addresses and RAM offsets, and the one check of a range a
 * device gives back before it reaches the sink (the reclaim engine) or
 * MADV_DONTNEED.  No KVM: the slots are never registered.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "vmm/guest_mem.h"

#define MiB (1ull << 20)
#define GiB (1ull << 30)

struct sink {
	unsigned nr_calls;
	uint64_t off, len;
};

static int sink_fn(void *ctx, uint64_t ram_off, uint64_t len)
{
	struct sink *s = ctx;

	s->nr_calls++;
	s->off = ram_off;
	s->len = len;
	return 0;
}

static void test_slots_and_conversions(void **state)
{
	struct vmm_guest_mem gm;
	uint64_t off;
	vmm_gpa_t gpa;

	(void)state;
	assert_int_equal(vmm_guest_mem_init(&gm, 1 * MiB), -EINVAL);
	assert_int_equal(vmm_guest_mem_init(&gm, 256 * MiB), 0);
	assert_int_equal(gm.nr_slots, 1);
	assert_int_equal(vmm_guest_mem_end_gpa(&gm), 256 * MiB);
	assert_null(vmm_guest_mem_hva(&gm, 0x1000, 0x1000));   /* not mapped yet */

	assert_int_equal(vmm_guest_mem_init(&gm, 5 * GiB), 0);  /* RAM above 4 GiB too */
	assert_int_equal(gm.nr_slots, 2);
	assert_int_equal(gm.slots[0].id, 0);
	assert_int_equal(gm.slots[1].id, 1);
	assert_int_equal(gm.slots[1].gpa, 4 * GiB);
	assert_int_equal(gm.slots[1].ram_off, gm.layout.low_bytes);
	assert_int_equal(gm.slots[0].bytes + gm.slots[1].bytes, 5 * GiB);
	assert_int_equal(vmm_guest_mem_end_gpa(&gm), 4 * GiB + gm.layout.high_bytes);

	assert_true(vmm_guest_mem_offset(&gm, 0x2000, 0x1000, &off));
	assert_int_equal(off, 0x2000);
	assert_true(vmm_guest_mem_offset(&gm, 4 * GiB + 0x3000, 0x1000, &off));
	assert_int_equal(off, gm.layout.low_bytes + 0x3000);
	assert_false(vmm_guest_mem_offset(&gm, gm.layout.low_bytes - 0x1000, 0x2000, &off));
	assert_false(vmm_guest_mem_offset(&gm, gm.layout.low_bytes, 0x1000, &off)); /* PCI hole */
	assert_false(vmm_guest_mem_offset(&gm, 0x1000, 0, &off));
	assert_false(vmm_guest_mem_offset(&gm, UINT64_MAX - 0xfff, 0x2000, &off)); /* wraps */

	assert_true(vmm_guest_mem_gpa(&gm, 0x5000, &gpa));
	assert_int_equal(gpa, 0x5000);
	assert_true(vmm_guest_mem_gpa(&gm, gm.layout.low_bytes + 0x7000, &gpa));
	assert_int_equal(gpa, 4 * GiB + 0x7000);
	assert_false(vmm_guest_mem_gpa(&gm, 5 * GiB, &gpa));   /* beyond the RAM */

	/* The e820 map is the one the guest is told. */
	assert_true(vmm_guest_mem_ram_ok(&gm, 0x1000, 0x1000));
	assert_false(vmm_guest_mem_ram_ok(&gm, 0x9f000, 0x1000));  /* EBDA */
	assert_false(vmm_guest_mem_ram_ok(&gm, 0xf0000, 0x1000));  /* MP table */
	assert_true(vmm_guest_mem_ram_ok(&gm, 4 * GiB, gm.layout.high_bytes));
	assert_int_equal(vmm_guest_mem_ram_ok(&gm, 0x100000, 0x200000),
			 vmm_mem_layout_ram_ok(&gm.layout, 0x100000, 0x200000));
}

/* Issue 13 #2: a range given back is checked once, here, and reaches the
 * sink as a RAM offset; without a sink it is MADV_DONTNEED. */
static void test_discard_range(void **state)
{
	struct vmm_guest_mem gm;
	struct sink s = { 0 };
	char err[128];
	uint8_t *p;

	(void)state;
	assert_int_equal(vmm_guest_mem_init(&gm, 5 * GiB), 0);
	assert_int_equal(vmm_guest_mem_discard_range(&gm, 0x100000, 0x1000), -EINVAL); /* unmapped */
	assert_int_equal(vmm_guest_mem_map(&gm, err, sizeof(err)), 0);
	assert_int_equal((uintptr_t)gm.ram % (2 * MiB), 0);
	vmm_guest_mem_set_sink(&gm, sink_fn, &s);

	assert_int_equal(vmm_guest_mem_discard_range(&gm, 4 * GiB + 0x10000, 0x4000), 0);
	assert_int_equal(s.nr_calls, 1);
	assert_int_equal(s.off, gm.layout.low_bytes + 0x10000);
	assert_int_equal(s.len, 0x4000);
	assert_int_equal(vmm_guest_mem_discard_range(&gm, 0x100000, 0x1000), 0);
	assert_int_equal(s.off, 0x100000);

	/* Refused, nothing handed on. */
	s.nr_calls = 0;
	assert_int_equal(vmm_guest_mem_discard_range(&gm, 0x100800, 0x1000), -EINVAL);
	assert_int_equal(vmm_guest_mem_discard_range(&gm, 0x100000, 0x800), -EINVAL);
	assert_int_equal(vmm_guest_mem_discard_range(&gm, 0x9f000, 0x1000), -EINVAL);
	assert_int_equal(vmm_guest_mem_discard_range(&gm, gm.layout.low_bytes - 0x1000, 0x2000),
			 -EINVAL);
	assert_int_equal(vmm_guest_mem_discard_range(&gm, vmm_guest_mem_end_gpa(&gm), 0x1000),
			 -EINVAL);
	assert_int_equal(vmm_guest_mem_discard_range(&gm, UINT64_MAX - 0xfff, 0x2000), -EINVAL);
	assert_int_equal(vmm_guest_mem_discard_range(&gm, 0x1000, 0), -EINVAL);
	assert_int_equal(s.nr_calls, 0);

	/* No sink: the pages are dropped (read back as zeros). */
	vmm_guest_mem_set_sink(&gm, NULL, NULL);
	p = vmm_guest_mem_hva(&gm, 0x200000, 0x1000);
	assert_non_null(p);
	memset(p, 0xab, 0x1000);
	assert_int_equal(vmm_guest_mem_discard_range(&gm, 0x200000, 0x1000), 0);
	assert_int_equal(p[0], 0);
	assert_int_equal(p[0xfff], 0);
	vmm_guest_mem_unmap(&gm);
	assert_null(gm.ram);
	vmm_guest_mem_unmap(&gm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_slots_and_conversions),
		cmocka_unit_test(test_discard_range),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
