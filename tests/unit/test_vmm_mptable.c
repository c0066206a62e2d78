/*
 * tests/unit/test_vmm_mptable.c — the MP table builder (vmm/mptable.c):
 * signatures and checksums as Linux's mpparse.c verifies them, a walk over
 * the entries the way the kernel does (by type, each of its fixed size)
 * that must land exactly on the table's length, processor entries (APIC ids,
 * BSP flag), the I/O APIC, ISA and PCI interrupt routing, and the errors.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "vmm/mptable.h"

#define BASE 0xf0000u

static uint8_t sum(const uint8_t *p, size_t len)
{
	uint8_t s = 0;

	while (len--)
		s = (uint8_t)(s + *p++);
	return s;
}

static uint16_t rd16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static uint32_t rd32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }

struct walk {
	unsigned nr_cpu, nr_bsp, nr_bus, nr_ioapic, nr_intsrc, nr_lint;
	uint8_t ioapic_id;
	uint8_t cpu_ids[256];
	uint8_t isa_dst[16];
	int nr_isa;
	uint8_t pci_srcirq[32], pci_dst[32], pci_flag[32];
	int nr_pci;
	unsigned entries;
};

/* Walks the configuration table like mpparse.c's smp_read_mpc(). */
static void walk(const uint8_t *buf, struct walk *w)
{
	const uint8_t *mpc = buf + (rd32(buf + 4) - BASE);
	uint16_t len = rd16(mpc + 4);
	const uint8_t *p = mpc + 44, *end = mpc + len;

	memset(w, 0, sizeof(*w));
	while (p < end) {
		switch (p[0]) {
		case 0:
			w->cpu_ids[w->nr_cpu++] = p[1];
			assert_true(p[3] & 1);
			if (p[3] & 2)
				w->nr_bsp++;
			p += 20;
			break;
		case 1:
			w->nr_bus++;
			p += 8;
			break;
		case 2:
			w->nr_ioapic++;
			w->ioapic_id = p[1];
			assert_int_equal(rd32(p + 4), VMM_IOAPIC_GPA);
			p += 8;
			break;
		case 3:
			w->nr_intsrc++;
			if (p[4] == 1)  /* ISA bus */
				w->isa_dst[w->nr_isa++] = p[7];
			else {
				w->pci_srcirq[w->nr_pci] = p[5];
				w->pci_flag[w->nr_pci] = (uint8_t)rd16(p + 2);
				w->pci_dst[w->nr_pci++] = p[7];
			}
			assert_int_equal(p[6], w->ioapic_id);
			p += 8;
			break;
		case 4:
			w->nr_lint++;
			p += 8;
			break;
		default:
			fail_msg("unknown MP entry type %u", p[0]);
		}
		w->entries++;
	}
	assert_ptr_equal(p, end);  /* entries fill the table exactly */
	assert_int_equal(rd16(mpc + 34), w->entries);
}

static void test_signatures_and_checksums(void **state)
{
	struct vmm_mptable_cfg cfg = { .nr_cpus = 2 };
	uint8_t buf[4096];
	long n = vmm_mptable_build(buf, sizeof(buf), BASE, &cfg);
	const uint8_t *mpc;

	assert_true(n > 0);
	assert_int_equal((size_t)n, vmm_mptable_size(&cfg));
	assert_memory_equal(buf, "_MP_", 4);
	assert_int_equal(buf[8], 1);           /* length in 16-byte units */
	assert_int_equal(buf[9], 4);           /* spec 1.4 */
	assert_int_equal(sum(buf, 16), 0);
	assert_int_equal(buf[11], 0);          /* feature1 0: a table follows */
	assert_int_equal(rd32(buf + 4), BASE + 16);
	mpc = buf + 16;
	assert_memory_equal(mpc, "PCMP", 4);
	assert_int_equal(sum(mpc, rd16(mpc + 4)), 0);
	assert_int_equal(rd32(mpc + 36), VMM_LAPIC_GPA);
	assert_int_equal(16 + rd16(mpc + 4), n);
}

static void test_cpus_and_routing(void **state)
{
	static const struct vmm_mptable_pci_irq pci[] = {
		{ .dev = 1, .pin = 1, .ioapic_pin = 17 },
		{ .dev = 31, .pin = 4, .ioapic_pin = 23 },
	};
	unsigned counts[] = { 1, 2, 4, 64, 255 };
	size_t c;

	for (c = 0; c < sizeof(counts) / sizeof(counts[0]); c++) {
		struct vmm_mptable_cfg cfg = { .nr_cpus = counts[c], .pci_irqs = pci, .nr_pci_irqs = 2 };
		static uint8_t buf[65536];
		struct walk w;
		unsigned i;

		assert_true(vmm_mptable_build(buf, sizeof(buf), BASE, &cfg) > 0);
		walk(buf, &w);
		assert_int_equal(w.nr_cpu, counts[c]);
		assert_int_equal(w.nr_bsp, 1);
		for (i = 0; i < w.nr_cpu; i++)
			assert_int_equal(w.cpu_ids[i], i);
		assert_int_equal(w.nr_bus, 2);
		assert_int_equal(w.nr_ioapic, 1);
		assert_int_equal(w.ioapic_id, counts[c]);  /* after the LAPIC ids */
		assert_int_equal(w.nr_isa, 16);
		for (i = 0; i < 16; i++)
			assert_int_equal(w.isa_dst[i], i);    /* KVM's default routing */
		assert_int_equal(w.nr_pci, 2);
		assert_int_equal(w.pci_srcirq[0], 1 << 2 | 0);
		assert_int_equal(w.pci_dst[0], 17);
		assert_int_equal(w.pci_srcirq[1], 31 << 2 | 3);
		assert_int_equal(w.pci_flag[1], 0x0d);     /* level, active high */
		assert_int_equal(w.nr_lint, 2);
	}
}

static void test_errors(void **state)
{
	static const struct vmm_mptable_pci_irq bad_pin[] = { { .dev = 1, .pin = 5, .ioapic_pin = 16 } };
	static const struct vmm_mptable_pci_irq bad_dev[] = { { .dev = 32, .pin = 1, .ioapic_pin = 16 } };
	static const struct vmm_mptable_pci_irq bad_gsi[] = { { .dev = 1, .pin = 1, .ioapic_pin = 24 } };
	struct vmm_mptable_cfg cfg = { .nr_cpus = 0 };
	uint8_t buf[4096];

	assert_int_equal(vmm_mptable_build(buf, sizeof(buf), BASE, &cfg), -EINVAL);
	cfg.nr_cpus = 256;
	assert_int_equal(vmm_mptable_build(buf, sizeof(buf), BASE, &cfg), -EINVAL);
	cfg.nr_cpus = 1;
	assert_int_equal(vmm_mptable_build(buf, sizeof(buf), BASE + 4, &cfg), -EINVAL);
	assert_int_equal(vmm_mptable_build(buf, 100, BASE, &cfg), -ENOSPC);
	assert_int_equal(vmm_mptable_build(buf, vmm_mptable_size(&cfg), BASE, &cfg),
			 (long)vmm_mptable_size(&cfg));
	cfg.nr_pci_irqs = 1;
	assert_int_equal(vmm_mptable_build(buf, sizeof(buf), BASE, &cfg), -EINVAL);  /* NULL array */
	cfg.pci_irqs = bad_pin;
	assert_int_equal(vmm_mptable_build(buf, sizeof(buf), BASE, &cfg), -EINVAL);
	cfg.pci_irqs = bad_dev;
	assert_int_equal(vmm_mptable_build(buf, sizeof(buf), BASE, &cfg), -EINVAL);
	cfg.pci_irqs = bad_gsi;
	assert_int_equal(vmm_mptable_build(buf, sizeof(buf), BASE, &cfg), -EINVAL);
	cfg.nr_pci_irqs = VMM_MPTABLE_MAX_PCI_IRQS + 1;
	assert_int_equal(vmm_mptable_build(buf, sizeof(buf), BASE, &cfg), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_signatures_and_checksums),
		cmocka_unit_test(test_cpus_and_routing),
		cmocka_unit_test(test_errors),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
