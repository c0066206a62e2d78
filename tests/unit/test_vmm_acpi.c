/*
 * tests/unit/test_vmm_acpi.c — the ACPI tables of vmm/acpi.c, read back the
 * way a guest kernel reads them: the RSDP where the scan finds it, its two
 * checksums, RSDT and XSDT pointing at the FADT and the MADT, every table
 * summing to zero with the length its header says; the FADT's PM1 blocks,
 * SCI and DSDT (32-bit and X_ fields agreeing); the MADT's one local APIC
 * per vCPU, the I/O APIC and the SCI override; and the DSDT's AML compared
 * byte for byte with \_S5 and the pvpanic device assembled by hand from the
 * AML specification.  Also: which PM1a_CNT writes mean power-off.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "vmm/acpi.h"

#define BASE 0xf8000u
#define BUF_BYTES 0x8000u

static uint8_t buf[BUF_BYTES];

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t rd64(const uint8_t *p)
{
	return rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

static uint8_t sum(const uint8_t *p, size_t n)
{
	uint8_t s = 0;

	while (n--)
		s = (uint8_t)(s + *p++);
	return s;
}

/* The table at gpa, checked: signature, length within what was built,
 * checksum zero. */
static const uint8_t *table(uint32_t gpa, const char *sig, long built)
{
	const uint8_t *t;

	assert_true(gpa >= BASE && gpa < BASE + (uint32_t)built);
	t = buf + (gpa - BASE);
	assert_memory_equal(t, sig, 4);
	assert_true(rd32(t + 4) >= 36);
	assert_true(gpa - BASE + rd32(t + 4) <= (uint32_t)built);
	assert_int_equal(sum(t, rd32(t + 4)), 0);
	return t;
}

static const uint8_t *find(const uint8_t *hay, size_t hay_len, const uint8_t *needle, size_t len)
{
	for (size_t i = 0; i + len <= hay_len; i++)
		if (!memcmp(hay + i, needle, len))
			return hay + i;
	return NULL;
}

static void check_tables(unsigned nr_cpus)
{
	struct vmm_acpi_cfg cfg = { .nr_cpus = nr_cpus, .ioapic_id = (uint8_t)nr_cpus,
				    .ioapic_gpa = 0xfec00000u, .lapic_gpa = 0xfee00000u };
	struct vmm_acpi_layout l;
	const uint8_t *rsdt, *xsdt, *fadt, *dsdt, *madt, *facs, *p, *end;
	unsigned nr_lapic = 0, nr_ioapic = 0, nr_ovr = 0, nr_nmi = 0;
	long n;
	/* Name(_S5_, Package(4) {5, 5, Zero, Zero}) */
	static const uint8_t s5[] = { 0x08, '_', 'S', '5', '_', 0x12, 0x08, 0x04,
				      0x0a, 0x05, 0x0a, 0x05, 0x00, 0x00 };
	/* Scope(\_SB) { Device(PEVT) { Name(_HID, "QEMU0001")
	 *   Name(_CRS, ResourceTemplate() { IO(Decode16, 0x505, 0x505, 1, 1) })
	 *   Name(_STA, 0x0F) } } */
	static const uint8_t pvpanic[] = {
		0x10, 0x36, 0x5c, '_', 'S', 'B', '_',
		0x5b, 0x82, 0x2e, 'P', 'E', 'V', 'T',
		0x08, '_', 'H', 'I', 'D', 0x0d, 'Q', 'E', 'M', 'U', '0', '0', '0', '1', 0x00,
		0x08, '_', 'C', 'R', 'S', 0x11, 0x0d, 0x0a, 0x0a,
		0x47, 0x01, 0x05, 0x05, 0x05, 0x05, 0x01, 0x01, 0x79, 0x00,
		0x08, '_', 'S', 'T', 'A', 0x0a, 0x0f,
	};

	memset(buf, 0xaa, sizeof(buf));
	n = vmm_acpi_build(buf, sizeof(buf), BASE, &cfg, &l);
	assert_true(n > 0);
	assert_int_equal(l.end_gpa, BASE + (uint32_t)n);
	/* RSDP: at the base, revision 2, both checksums. */
	assert_int_equal(l.rsdp_gpa, BASE);
	assert_memory_equal(buf, "RSD PTR ", 8);
	assert_int_equal(buf[15], 2);
	assert_int_equal(sum(buf, 20), 0);
	assert_int_equal(rd32(buf + 20), 36);
	assert_int_equal(sum(buf, 36), 0);
	assert_int_equal(rd32(buf + 16), l.rsdt_gpa);
	assert_int_equal(rd64(buf + 24), l.xsdt_gpa);

	rsdt = table(l.rsdt_gpa, "RSDT", n);
	xsdt = table(l.xsdt_gpa, "XSDT", n);
	assert_int_equal(rd32(rsdt + 4), 36 + 2 * 4);
	assert_int_equal(rd32(xsdt + 4), 36 + 2 * 8);
	assert_int_equal(rd32(rsdt + 36), l.fadt_gpa);
	assert_int_equal(rd32(rsdt + 40), l.madt_gpa);
	assert_int_equal(rd64(xsdt + 36), l.fadt_gpa);
	assert_int_equal(rd64(xsdt + 44), l.madt_gpa);

	/* FADT. */
	fadt = table(l.fadt_gpa, "FACP", n);
	assert_int_equal(rd32(fadt + 4), 244);
	assert_int_equal(fadt[8], 3);
	assert_int_equal(rd32(fadt + 36), l.facs_gpa);
	assert_int_equal(rd32(fadt + 40), l.dsdt_gpa);
	assert_int_equal(rd64(fadt + 132), l.facs_gpa);
	assert_int_equal(rd64(fadt + 140), l.dsdt_gpa);
	assert_int_equal(fadt[46] | fadt[47] << 8, VMM_ACPI_SCI_IRQ);
	assert_int_equal(rd32(fadt + 48), 0);   /* no SMI_CMD: ACPI mode from the start */
	assert_int_equal(rd32(fadt + 56), VMM_ACPI_PM1_EVT_PORT);
	assert_int_equal(rd32(fadt + 64), VMM_ACPI_PM1_CNT_PORT);
	assert_int_equal(fadt[88], 4);
	assert_int_equal(fadt[89], 2);
	assert_int_equal(fadt[148], 1);         /* X_PM1a_EVT: system I/O, 32 bits */
	assert_int_equal(fadt[149], 32);
	assert_int_equal(rd64(fadt + 152), VMM_ACPI_PM1_EVT_PORT);
	assert_int_equal(fadt[172], 1);         /* X_PM1a_CNT: system I/O, 16 bits */
	assert_int_equal(fadt[173], 16);
	assert_int_equal(rd64(fadt + 176), VMM_ACPI_PM1_CNT_PORT);
	assert_int_equal(fadt[109] & 0x02, 0x02);   /* an 8042 is there */
	assert_int_equal(fadt[109] & 0x08, 0);      /* MSI is supported */
	/* FACS: 64-byte aligned, 64 bytes. */
	assert_int_equal(l.facs_gpa % 64, 0);
	facs = buf + (l.facs_gpa - BASE);
	assert_memory_equal(facs, "FACS", 4);
	assert_int_equal(rd32(facs + 4), 64);

	/* DSDT: the AML, byte for byte. */
	dsdt = table(l.dsdt_gpa, "DSDT", n);
	assert_int_equal(rd32(dsdt + 4), 36 + sizeof(s5) + sizeof(pvpanic));
	assert_non_null(find(dsdt + 36, rd32(dsdt + 4) - 36, s5, sizeof(s5)));
	assert_non_null(find(dsdt + 36, rd32(dsdt + 4) - 36, pvpanic, sizeof(pvpanic)));

	/* MADT: walk its entries the way the kernel does. */
	madt = table(l.madt_gpa, "APIC", n);
	assert_int_equal(rd32(madt + 36), 0xfee00000u);
	assert_int_equal(rd32(madt + 40) & 1, 1);
	end = madt + rd32(madt + 4);
	for (p = madt + 44; p < end; p += p[1]) {
		assert_true(p[1] >= 2 && p + p[1] <= end);
		switch (p[0]) {
		case 0:
			assert_int_equal(p[1], 8);
			assert_int_equal(p[3], nr_lapic);   /* APIC ids 0..n-1 */
			assert_int_equal(rd32(p + 4), 1);
			nr_lapic++;
			break;
		case 1:
			assert_int_equal(p[1], 12);
			assert_int_equal(p[2], nr_cpus);
			assert_int_equal(rd32(p + 4), 0xfec00000u);
			assert_int_equal(rd32(p + 8), 0);
			nr_ioapic++;
			break;
		case 2:
			assert_int_equal(p[1], 10);
			assert_int_equal(p[3], VMM_ACPI_SCI_IRQ);
			assert_int_equal(rd32(p + 4), VMM_ACPI_SCI_IRQ);
			assert_int_equal(p[8] | p[9] << 8, 0x000d);
			nr_ovr++;
			break;
		case 4:
			assert_int_equal(p[1], 6);
			assert_int_equal(p[5], 1);
			nr_nmi++;
			break;
		default:
			fail_msg("unexpected MADT entry type %u", p[0]);
		}
	}
	assert_ptr_equal(p, end);
	assert_int_equal(nr_lapic, nr_cpus);
	assert_int_equal(nr_ioapic, 1);
	assert_int_equal(nr_ovr, 1);
	assert_int_equal(nr_nmi, 1);
	/* Nothing written past what the build says it used. */
	assert_int_equal(buf[n], 0);
}

static void test_tables_1_cpu(void **state)
{
	check_tables(1);
}

static void test_tables_64_cpus(void **state)
{
	check_tables(64);
}

static void test_refusals(void **state)
{
	struct vmm_acpi_cfg cfg = { .nr_cpus = 2, .ioapic_id = 2 };

	assert_int_equal(vmm_acpi_build(buf, sizeof(buf), BASE + 16, &cfg, NULL), -EINVAL);
	assert_int_equal(vmm_acpi_build(buf, sizeof(buf), 0x9000, &cfg, NULL), -EINVAL);
	assert_int_equal(vmm_acpi_build(buf, 200, BASE, &cfg, NULL), -ENOSPC);
	cfg.ioapic_id = 1;  /* would collide with APIC id 1 */
	assert_int_equal(vmm_acpi_build(buf, sizeof(buf), BASE, &cfg, NULL), -EINVAL);
	cfg.nr_cpus = 0;
	assert_int_equal(vmm_acpi_build(buf, sizeof(buf), BASE, &cfg, NULL), -EINVAL);
}

static void test_pm1_cnt(void **state)
{
	uint16_t s5 = VMM_ACPI_S5_SLP_TYP << VMM_ACPI_PM1_SLP_TYP_SHIFT;

	/* ACPICA writes SLP_TYP first, then SLP_TYP | SLP_EN. */
	assert_false(vmm_acpi_pm1_cnt_is_poweroff(s5 | VMM_ACPI_PM1_SCI_EN));
	assert_true(vmm_acpi_pm1_cnt_is_poweroff(s5 | VMM_ACPI_PM1_SLP_EN | VMM_ACPI_PM1_SCI_EN));
	/* Another sleep type (S0/S3 style) is not power-off. */
	assert_false(vmm_acpi_pm1_cnt_is_poweroff(VMM_ACPI_PM1_SLP_EN));
	assert_false(vmm_acpi_pm1_cnt_is_poweroff((1 << VMM_ACPI_PM1_SLP_TYP_SHIFT) |
						   VMM_ACPI_PM1_SLP_EN));
	assert_false(vmm_acpi_pm1_cnt_is_poweroff(0));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tables_1_cpu),
		cmocka_unit_test(test_tables_64_cpus),
		cmocka_unit_test(test_refusals),
		cmocka_unit_test(test_pm1_cnt),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
