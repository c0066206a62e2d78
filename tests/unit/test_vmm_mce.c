/*
 * tests/unit/test_vmm_mce.c — the machine check encoding of vmm/mce.c,
 * checked bit by bit against what the guest kernel's grading needs to kill
 * one process instead of panicking: MCG_CAP with software error recovery
 * and a bounded bank count; an action-required error that is valid,
 * uncorrected, enabled, signalled, with a valid physical address of 4 KiB
 * granularity, the data-load error code, no processor context corruption,
 * no overflow; MCG_STATUS with MCIP, RIPV and EIPV.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "vmm/mce.h"

static void test_mcg_cap(void **state)
{
	/* A typical KVM answer: 32 banks (KVM_CAP_MCE), CTL_P, SER_P, LMCE_P
	 * (bit 27) from KVM_X86_GET_MCE_CAP_SUPPORTED, whose count field is 0. */
	uint64_t kvm = (1ull << 8) | (1ull << 24) | (1ull << 27);
	uint64_t cap = vmm_mce_mcg_cap(kvm, 32);

	assert_int_equal(cap & 0xff, VMM_MCE_NR_BANKS);
	assert_true(cap & VMM_MCG_SER_P);
	assert_true(cap & VMM_MCG_CTL_P);
	assert_false(cap & (1ull << 27));           /* nothing we do not handle */
	assert_int_equal(vmm_mce_mcg_cap(1ull << 24, 4) & 0xff, 4);
	/* A stray count in the capability bits is not taken for banks. */
	assert_int_equal(vmm_mce_mcg_cap(32 | (1ull << 24), 3) & 0xff, 3);
	/* No software error recovery, or too few banks: not offered at all. */
	assert_int_equal(vmm_mce_mcg_cap(1ull << 8, 32), 0);
	assert_int_equal(vmm_mce_mcg_cap(1ull << 24, 1), 0);
	assert_int_equal(vmm_mce_mcg_cap(0, 0), 0);
}

static void test_action_required(void **state)
{
	uint64_t cap = vmm_mce_mcg_cap((1ull << 8) | (1ull << 24), 32);
	struct vmm_mce m;

	assert_true(vmm_mce_encode(cap, 0x12345678ull, true, &m));
	assert_int_equal(m.bank, VMM_MCE_NR_BANKS - 1);
	assert_int_equal(m.addr, 0x12345000ull);
	/* misc: address mode 2 (physical) in [8:6], LSB 12 in [5:0] */
	assert_int_equal((m.misc >> 6) & 7, 2);
	assert_int_equal(m.misc & 0x3f, 12);
	assert_int_equal(m.status >> 63 & 1, 1);    /* VAL */
	assert_int_equal(m.status >> 62 & 1, 0);    /* not OVER */
	assert_int_equal(m.status >> 61 & 1, 1);    /* UC */
	assert_int_equal(m.status >> 60 & 1, 1);    /* EN */
	assert_int_equal(m.status >> 59 & 1, 1);    /* MISCV */
	assert_int_equal(m.status >> 58 & 1, 1);    /* ADDRV */
	assert_int_equal(m.status >> 57 & 1, 0);    /* not PCC: the context survives */
	assert_int_equal(m.status >> 56 & 1, 1);    /* S: signalled */
	assert_int_equal(m.status >> 55 & 1, 1);    /* AR: action required */
	assert_int_equal(m.status & 0xefff, 0x0134); /* data load (filter bit ignored) */
	assert_int_equal(m.status & 0x007fffff0000ull, 0);  /* model-specific bits clear */
	assert_int_equal(m.mcg_status, VMM_MCG_STATUS_MCIP | VMM_MCG_STATUS_RIPV |
					       VMM_MCG_STATUS_EIPV);
	/* An address above 4 GiB keeps all its bits. */
	assert_true(vmm_mce_encode(cap, 0x1234567fffull, true, &m));
	assert_int_equal(m.addr, 0x1234567000ull);
}

static void test_action_optional(void **state)
{
	uint64_t cap = vmm_mce_mcg_cap(1ull << 24, 10);
	struct vmm_mce m;

	assert_true(vmm_mce_encode(cap, 0x5000, false, &m));
	assert_int_equal(m.status >> 55 & 1, 0);    /* not AR */
	assert_int_equal(m.status >> 56 & 1, 1);    /* S */
	assert_int_equal(m.status & 0xffff, 0x00c0);
	assert_int_equal(m.mcg_status, VMM_MCG_STATUS_MCIP | VMM_MCG_STATUS_RIPV);
	assert_false(vmm_mce_encode(0, 0x5000, true, &m));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mcg_cap),
		cmocka_unit_test(test_action_required),
		cmocka_unit_test(test_action_optional),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
