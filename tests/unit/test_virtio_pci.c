/*
 * tests/unit/test_virtio_pci.c — the modern virtio-pci transport model,
 * driven the way a guest driver drives it (configuration space, BAR0
 * registers, notify writes) against a small echo device: capabilities and
 * BAR sizing, feature negotiation and the status state machine, queue setup
 * through the common config, kicks, MSI-X with masking and the PBA, INTx with
 * ISR read-to-clear, DEVICE_NEEDS_RESET after a hostile chain, the PCI_CFG
 * access window, and reset.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "tests/unit/test_virtio_fake.h"
#include "virtio/pci.h"

#define RAM_BYTES (1u << 20)
#define NQ 2
#define QMAX 16

struct echo {
	struct fake_guest *g;
	struct virtio_pci *pci;
	struct virtio_dev_errors errs;
	struct ebb_ratelimit rl;
	uint8_t config[8];
	unsigned nr_notify[NQ];
	unsigned nr_resets, nr_driver_ok;
	unsigned nr_bar_changes;
	unsigned nr_logs;
	virtio_gpa_t bar_gpa;
	bool bar_decoding;
	bool refuse_features;
	struct fake_vq fvq[NQ];
	struct virtio_host host;
};

static void echo_cfg_read(void *dev, uint32_t off, void *buf, uint32_t len)
{
	memcpy(buf, ((struct echo *)dev)->config + off, len);
}

static void echo_cfg_write(void *dev, uint32_t off, const void *buf, uint32_t len)
{
	memcpy(((struct echo *)dev)->config + off, buf, len);
}

static bool echo_features_ok(void *dev, uint64_t f)
{
	return !((struct echo *)dev)->refuse_features;
}

static void echo_driver_ok(void *dev) { ((struct echo *)dev)->nr_driver_ok++; }
static void echo_reset(void *dev) { ((struct echo *)dev)->nr_resets++; }

/* Completes every chain with its writable length; signals when asked to. */
static void echo_notify(void *dev, uint16_t q)
{
	struct echo *e = dev;
	struct virtio_vq *vq = virtio_pci_vq(e->pci, q);
	struct virtio_chain c;

	e->nr_notify[q]++;
	while (virtio_vq_pop(vq, &c) == 1)
		virtio_vq_push(vq, c.head, (uint32_t)c.in_bytes);
	if (virtio_vq_need_notify(vq))
		virtio_pci_signal_queue(e->pci, q);
}

static void echo_bar_changed(void *opaque, int bar, virtio_gpa_t gpa, uint64_t size,
			     bool decoding)
{
	struct echo *e = opaque;

	e->nr_bar_changes++;
	e->bar_gpa = gpa;
	e->bar_decoding = decoding;
	assert_int_equal(size, VIRTIO_PCI_BAR0_SIZE);
}

static const struct virtio_pci_device_ops echo_ops = {
	.config_read = echo_cfg_read,
	.config_write = echo_cfg_write,
	.features_ok = echo_features_ok,
	.driver_ok = echo_driver_ok,
	.queue_notify = echo_notify,
	.reset = echo_reset,
};

#define ECHO_FEATURE (1ull << 3)

static struct echo *echo_new(void)
{
	struct echo *e = calloc(1, sizeof(*e));
	struct virtio_pci_cfg cfg = {
		.ops = &echo_ops, .virtio_device_id = 42, .pci_class = 0xff0000,
		.device_features = ECHO_FEATURE | (1ull << VIRTIO_RING_F_EVENT_IDX),
		.nr_queues = NQ, .queue_max_size = QMAX, .config_size_bytes = 8,
	};

	e->g = fg_create(RAM_BYTES, 0, 0);
	e->host = e->g->host; /* the fake's callbacks, opaque = the fake guest */
	cfg.host = &e->host;
	cfg.dev = e;
	cfg.errs = &e->errs;
	cfg.rl = &e->rl;
	assert_int_equal(virtio_pci_create(&cfg, &e->pci), 0);
	return e;
}

static void echo_free(struct echo *e)
{
	virtio_pci_destroy(e->pci);
	fg_destroy(e->g);
	free(e);
}

static const uint64_t GOOD = ECHO_FEATURE | (1ull << VIRTIO_F_VERSION_1);

static void test_create_rejects_bad_cfg(void **state)
{
	struct virtio_pci *p = (void *)1;
	struct virtio_pci_cfg cfg = { 0 };

	assert_int_equal(virtio_pci_create(&cfg, &p), -EINVAL);
	assert_null(p);
	virtio_pci_destroy(NULL);
}

static void test_config_space_and_caps(void **state)
{
	struct echo *e = echo_new();
	struct virtio_pci *p = e->pci;
	unsigned seen = 0, guard = 0;

	assert_int_equal(fp_cfgr(p, 0, 2), 0x1af4);
	assert_int_equal(fp_cfgr(p, 2, 2), 0x1040 + 42);
	assert_int_equal(fp_cfgr(p, 8, 1), 1);             /* revision */
	assert_int_equal(fp_cfgr(p, 8, 4) >> 8, 0xff0000); /* class code */
	assert_true(fp_cfgr(p, 6, 2) & 0x10);             /* capability list */
	for (uint32_t at = fp_cfgr(p, 0x34, 1); at && guard < 16; guard++) {
		uint32_t id = fp_cfgr(p, at, 1);

		if (id == 0x09) {
			uint32_t type = fp_cfgr(p, at + 3, 1);
			uint32_t off = fp_cfgr(p, at + 8, 4), len = fp_cfgr(p, at + 12, 4);

			assert_int_equal(fp_cfgr(p, at + 4, 1), 0); /* BAR0 */
			seen |= 1u << type;
			if (type == VIRTIO_PCI_CAP_COMMON_CFG)
				assert_true(off == VIRTIO_PCI_COMMON_OFFSET && len >= 56);
			if (type == VIRTIO_PCI_CAP_NOTIFY_CFG) {
				assert_int_equal(off, VIRTIO_PCI_NOTIFY_OFFSET);
				assert_int_equal(fp_cfgr(p, at + 16, 4), VIRTIO_PCI_NOTIFY_MULTIPLIER);
			}
			if (type == VIRTIO_PCI_CAP_DEVICE_CFG)
				assert_int_equal(len, 8);
		} else if (id == 0x11) {
			seen |= 1u << 16;
			assert_int_equal(fp_cfgr(p, at + 2, 2) & 0x7ff, NQ); /* NQ + 1 vectors */
			assert_int_equal(fp_cfgr(p, at + 4, 4), VIRTIO_PCI_MSIX_TABLE_OFFSET);
			assert_int_equal(fp_cfgr(p, at + 8, 4), VIRTIO_PCI_MSIX_PBA_OFFSET);
		}
		at = fp_cfgr(p, at + 1, 1);
	}
	assert_int_equal(seen, (1u << 16) | 0x3e); /* types 1..5 and MSI-X */
	/* The layout a bus-owned config space copies matches what we serve. */
	uint8_t image[256], wmask[256];
	virtio_pci_cfg_layout(p, image, wmask);
	for (uint32_t off = 0; off < 256; off += 4)
		assert_int_equal(fp_cfgr(p, off, 4), (uint32_t)image[off] | image[off + 1] << 8 |
				 image[off + 2] << 16 | (uint32_t)image[off + 3] << 24);
	assert_int_equal(wmask[0], 0);                               /* vendor: read-only */
	assert_int_equal(wmask[VIRTIO_PCI_CAP_MSIX_AT + 3], 0xc0);  /* MSI-X enable, mask */
	/* Read-only fields stay put. */
	fp_cfgw(p, 0, 0x12345678, 4);
	assert_int_equal(fp_cfgr(p, 0, 2), 0x1af4);
	echo_free(e);
}

static void test_bar_sizing_and_move(void **state)
{
	struct echo *e = echo_new();
	struct virtio_pci *p = e->pci;
	virtio_gpa_t gpa;

	e->host.opaque = e; /* route bar_changed to us */
	e->host.bar_changed = echo_bar_changed;
	fp_cfgw(p, 0x10, 0xffffffff, 4);
	assert_int_equal(fp_cfgr(p, 0x10, 4), (uint32_t)~(VIRTIO_PCI_BAR0_SIZE - 1));
	fp_cfgw(p, 0x10, 0xe0001234, 4);
	assert_int_equal(fp_cfgr(p, 0x10, 4), 0xe0000000);
	assert_false(virtio_pci_bar0(p, &gpa));
	fp_cfgw(p, 0x04, 0x0006, 2); /* MEM + MASTER */
	assert_true(virtio_pci_bar0(p, &gpa));
	assert_int_equal(gpa, 0xe0000000);
	assert_true(e->bar_decoding);
	assert_int_equal(e->bar_gpa, 0xe0000000);
	unsigned n = e->nr_bar_changes;
	fp_cfgw(p, 0x3c, 11, 1); /* unrelated write: no callback */
	assert_int_equal(e->nr_bar_changes, n);
	assert_int_equal(fp_cfgr(p, 0x3c, 1), 11);
	echo_free(e);
}

static void count_log(void *opaque, enum ebb_log_level level, const char *msg)
{
	((struct echo *)opaque)->nr_logs++;
}

/*
 * Issue 11 #3: a guest moving BAR0 back and forth, toggling decoding, or
 * rewriting the same value: bar_changed fires exactly once per real change
 * (the VMM moves its doorbells then, never retries in a loop) and no line is
 * logged (a BAR move is not an error).
 */
static void test_bar_move_storm(void **state)
{
	struct echo *e = echo_new();
	struct virtio_pci *p = e->pci;

	e->host.opaque = e;
	e->host.bar_changed = echo_bar_changed;
	e->host.log = count_log;
	fp_cfgw(p, 0x04, 0x0002, 2);
	e->nr_bar_changes = 0;
	for (unsigned i = 0; i < 10000; i++)
		fp_cfgw(p, 0x10, i % 2 ? 0xe0000000 : 0xe0008000, 4);
	assert_int_equal(e->nr_bar_changes, 10000);
	for (unsigned i = 0; i < 10000; i++)
		fp_cfgw(p, 0x10, 0xe0000000, 4); /* the same value: nothing moves */
	assert_int_equal(e->nr_bar_changes, 10000);
	for (unsigned i = 0; i < 1000; i++)
		fp_cfgw(p, 0x04, i % 2 ? 0x0002 : 0x0000, 2);
	assert_int_equal(e->nr_bar_changes, 11000);
	assert_true(e->bar_decoding);
	assert_int_equal(e->nr_logs, 0);
	assert_int_equal(e->errs.nr_logs_suppressed, 0);
	echo_free(e);
}

static void test_feature_negotiation(void **state)
{
	struct echo *e = echo_new();
	struct virtio_pci *p = e->pci;
	uint64_t df = fp_device_features(p);

	assert_true(df & (1ull << VIRTIO_F_VERSION_1));
	assert_true(df & ECHO_FEATURE);
	/* Without VERSION_1: refused. */
	assert_false(fp_setup(p, e->g, ECHO_FEATURE, e->fvq, 0, QMAX, false) &
		     VIRTIO_CONFIG_S_FEATURES_OK);
	/* A feature not offered: refused. */
	assert_false(fp_setup(p, e->g, GOOD | (1ull << 7), e->fvq, 0, QMAX, false) &
		     VIRTIO_CONFIG_S_FEATURES_OK);
	/* The device's own veto. */
	e->refuse_features = true;
	assert_false(fp_setup(p, e->g, GOOD, e->fvq, 0, QMAX, false) & VIRTIO_CONFIG_S_FEATURES_OK);
	e->refuse_features = false;
	assert_true(fp_setup(p, e->g, GOOD, e->fvq, 0, QMAX, false) & VIRTIO_CONFIG_S_FEATURES_OK);
	assert_int_equal(virtio_pci_features(p), GOOD);
	/* Feature writes after FEATURES_OK are ignored and counted. */
	uint64_t before = e->errs.nr_bad_register;
	fp_w(p, FP_COMMON(GFSELECT), 0, 4);
	fp_w(p, FP_COMMON(GF), 0, 4);
	assert_int_equal(virtio_pci_features(p), GOOD);
	assert_int_equal(e->errs.nr_bad_register, before + 1);
	echo_free(e);
}

static void test_status_state_machine(void **state)
{
	struct echo *e = echo_new();
	struct virtio_pci *p = e->pci;

	fp_w(p, FP_COMMON(STATUS), VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER, 1);
	/* DRIVER_OK without FEATURES_OK: refused. */
	fp_w(p, FP_COMMON(STATUS), VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
		 VIRTIO_CONFIG_S_DRIVER_OK, 1);
	assert_false(virtio_pci_status(p) & VIRTIO_CONFIG_S_DRIVER_OK);
	assert_int_equal(e->nr_driver_ok, 0);
	/* Clearing a bit is not allowed (only reset). */
	fp_w(p, FP_COMMON(STATUS), VIRTIO_CONFIG_S_ACKNOWLEDGE, 1);
	assert_int_equal(virtio_pci_status(p), VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER);
	assert_int_equal(e->errs.nr_bad_register, 2);
	/* The driver cannot set NEEDS_RESET. */
	fp_w(p, FP_COMMON(STATUS), 0x40 | VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER, 1);
	assert_false(virtio_pci_status(p) & VIRTIO_CONFIG_S_NEEDS_RESET);
	fp_setup(p, e->g, GOOD, e->fvq, NQ, QMAX, false);
	fp_driver_ok(p);
	assert_int_equal(e->nr_driver_ok, 1);
	assert_true(virtio_pci_driver_ok(p));
	/* Reset. */
	unsigned resets = e->nr_resets;
	fp_w(p, FP_COMMON(STATUS), 0, 1);
	assert_int_equal(fp_r(p, FP_COMMON(STATUS), 1), 0);
	assert_int_equal(e->nr_resets, resets + 1);
	assert_int_equal(virtio_pci_features(p), 0);
	fp_w(p, FP_COMMON(Q_SELECT), 1, 2);
	assert_int_equal(fp_r(p, FP_COMMON(Q_ENABLE), 2), 0);
	assert_int_equal(fp_r(p, FP_COMMON(Q_SIZE), 2), QMAX);
	assert_int_equal(fp_r(p, FP_COMMON(Q_DESCLO), 4), 0);
	echo_free(e);
}

static void test_queue_setup_registers(void **state)
{
	struct echo *e = echo_new();
	struct virtio_pci *p = e->pci;

	assert_int_equal(fp_r(p, FP_COMMON(NUMQ), 2), NQ);
	fp_w(p, FP_COMMON(Q_SELECT), NQ, 2);
	assert_int_equal(fp_r(p, FP_COMMON(Q_SIZE), 2), 0); /* no such queue */
	fp_setup(p, e->g, GOOD, e->fvq, NQ, 8, false);
	fp_w(p, FP_COMMON(Q_SELECT), 1, 2);
	assert_int_equal(fp_r(p, FP_COMMON(Q_ENABLE), 2), 1);
	assert_int_equal(fp_r(p, FP_COMMON(Q_SIZE), 2), 8);
	assert_int_equal(fp_r(p, FP_COMMON(Q_NOFF), 2), 1);
	assert_int_equal(fp_r(p, FP_COMMON(Q_AVAILLO), 4), (uint32_t)e->fvq[1].avail_gpa);
	assert_int_equal(fp_r(p, FP_COMMON(Q_DESCLO), 8), e->fvq[1].desc_gpa);
	/* Frozen once enabled. */
	uint64_t before = e->errs.nr_bad_register;
	fp_w(p, FP_COMMON(Q_SIZE), 4, 2);
	fp_w(p, FP_COMMON(Q_USEDLO), 0x1000, 4);
	assert_int_equal(fp_r(p, FP_COMMON(Q_SIZE), 2), 8);
	assert_int_equal(e->errs.nr_bad_register, before + 2);
	/* Wrong-width write to a 16-bit field. */
	fp_w(p, FP_COMMON(Q_SELECT), 0, 4);
	assert_int_equal(e->errs.nr_bad_register, before + 3);
	echo_free(e);
}

static void test_queue_enable_bad_size(void **state)
{
	struct echo *e = echo_new();
	struct virtio_pci *p = e->pci;

	fp_setup(p, e->g, GOOD, e->fvq, 0, QMAX, false);
	fvq_init(&e->fvq[0], e->g, 8);
	fp_w(p, FP_COMMON(Q_SELECT), 0, 2);
	fp_w(p, FP_COMMON(Q_SIZE), 12, 2);
	fp_w(p, FP_COMMON(Q_DESCLO), e->fvq[0].desc_gpa, 8);
	fp_w(p, FP_COMMON(Q_ENABLE), 1, 2);
	assert_int_equal(fp_r(p, FP_COMMON(Q_ENABLE), 2), 0);
	assert_int_equal(e->errs.nr_bad_queue_setup, 1);
	echo_free(e);
}

static void test_kicks_and_driver_ok(void **state)
{
	struct echo *e = echo_new();
	struct virtio_pci *p = e->pci;
	struct fseg s = { 0, 0, true };

	fp_setup(p, e->g, GOOD, e->fvq, NQ, QMAX, false);
	s.gpa = fg_alloc(e->g, 64, 8);
	s.len = 64;
	fvq_add(&e->fvq[0], &s, 1);
	fp_kick(p, 0); /* before DRIVER_OK: not delivered */
	assert_int_equal(e->nr_notify[0], 0);
	fp_driver_ok(p); /* every enabled queue processed once */
	assert_int_equal(e->nr_notify[0], 1);
	assert_int_equal(e->nr_notify[1], 1);
	uint32_t len;
	assert_true(fvq_get_used(&e->fvq[0], NULL, &len));
	assert_int_equal(len, 64);
	fp_kick(p, 1);
	virtio_pci_notify(p, 1); /* the ioeventfd path */
	assert_int_equal(e->nr_notify[1], 3);
	uint64_t before = e->errs.nr_bad_register;
	virtio_pci_notify(p, NQ);
	assert_int_equal(e->errs.nr_bad_register, before + 1);
	echo_free(e);
}

static void test_msix_delivery_and_masking(void **state)
{
	struct echo *e = echo_new();
	struct virtio_pci *p = e->pci;
	struct fseg s;

	fp_setup(p, e->g, GOOD, e->fvq, NQ, QMAX, true);
	fp_driver_ok(p);
	s = (struct fseg){ fg_alloc(e->g, 16, 8), 16, true };
	fvq_add(&e->fvq[0], &s, 1);
	fp_kick(p, 0);
	assert_int_equal(e->g->nr_msi[1], 1);
	assert_int_equal(e->g->last_msi_addr, 0xfee00001u);
	assert_int_equal(e->g->last_msi_data, 0x4001u);
	assert_int_equal(virtio_pci_isr_peek(p), 0); /* ISR unused with MSI-X */
	/* Mask the entry: the interrupt becomes pending in the PBA. */
	fp_w(p, VIRTIO_PCI_MSIX_TABLE_OFFSET + 16 + 12, 1, 4);
	fvq_add(&e->fvq[0], &s, 1);
	fp_kick(p, 0);
	assert_int_equal(e->g->nr_msi[1], 1);
	assert_true(virtio_pci_msix_pending(p, 1));
	assert_int_equal(fp_r(p, VIRTIO_PCI_MSIX_PBA_OFFSET, 8), 1u << 1);
	fp_w(p, VIRTIO_PCI_MSIX_TABLE_OFFSET + 16 + 12, 0, 4); /* unmask: delivered */
	assert_int_equal(e->g->nr_msi[1], 2);
	assert_false(virtio_pci_msix_pending(p, 1));
	/* Function mask. */
	fp_cfgw(p, VIRTIO_PCI_CAP_MSIX_AT + 2, 0xc000, 2);
	fvq_add(&e->fvq[0], &s, 1);
	fp_kick(p, 0);
	assert_int_equal(e->g->nr_msi[1], 2);
	fp_cfgw(p, VIRTIO_PCI_CAP_MSIX_AT + 2, 0x8000, 2);
	assert_int_equal(e->g->nr_msi[1], 3);
	/* An out-of-range vector reads back as NO_VECTOR and raises nothing. */
	fp_w(p, FP_COMMON(Q_SELECT), 0, 2);
	fp_w(p, FP_COMMON(Q_MSIX), 40, 2);
	assert_int_equal(fp_r(p, FP_COMMON(Q_MSIX), 2), VIRTIO_MSI_NO_VECTOR);
	fvq_add(&e->fvq[0], &s, 1);
	fp_kick(p, 0);
	unsigned total = 0;
	for (int v = 0; v < FG_MAX_VECTORS; v++)
		total += e->g->nr_msi[v];
	assert_int_equal(total, 3);
	/* Config change on vector 0. */
	virtio_pci_config_changed(p);
	assert_int_equal(e->g->nr_msi[0], 1);
	echo_free(e);
}

static void test_intx_and_isr(void **state)
{
	struct echo *e = echo_new();
	struct virtio_pci *p = e->pci;
	struct fseg s;

	fp_setup(p, e->g, GOOD, e->fvq, NQ, QMAX, false);
	fp_driver_ok(p);
	s = (struct fseg){ fg_alloc(e->g, 16, 8), 16, true };
	fvq_add(&e->fvq[1], &s, 1);
	fp_kick(p, 1);
	assert_true(e->g->intx);
	assert_int_equal(fp_r(p, VIRTIO_PCI_ISR_OFFSET, 1), 1);
	assert_false(e->g->intx);
	assert_int_equal(fp_r(p, VIRTIO_PCI_ISR_OFFSET, 1), 0); /* cleared by the read */
	uint8_t gen = (uint8_t)fp_r(p, FP_COMMON(CFGGENERATION), 1);
	virtio_pci_config_changed(p);
	assert_int_equal(fp_r(p, FP_COMMON(CFGGENERATION), 1), (uint8_t)(gen + 1));
	assert_int_equal(fp_r(p, VIRTIO_PCI_ISR_OFFSET, 1), 2);
	assert_int_equal(e->g->nr_intx_raises, 2);
	echo_free(e);
}

static void test_needs_reset_after_hostile_chain(void **state)
{
	struct echo *e = echo_new();
	struct virtio_pci *p = e->pci;

	fp_setup(p, e->g, GOOD, e->fvq, NQ, QMAX, true);
	fp_driver_ok(p);
	e->fvq[0].avail->ring[0] = htole16(QMAX + 3);
	e->fvq[0].avail->idx = htole16(1);
	fp_kick(p, 0);
	assert_true(fp_r(p, FP_COMMON(STATUS), 1) & VIRTIO_CONFIG_S_NEEDS_RESET);
	assert_int_equal(e->errs.nr_needs_reset, 1);
	assert_int_equal(e->errs.nr_bad_desc_index, 1);
	assert_int_equal(e->g->nr_msi[0], 1); /* config interrupt */
	assert_false(virtio_pci_driver_ok(p));
	fp_kick(p, 1); /* no more work while broken */
	assert_int_equal(e->nr_notify[1], 1);
	/* Reset recovers. */
	fp_setup(p, e->g, GOOD, e->fvq, NQ, QMAX, true);
	fp_driver_ok(p);
	assert_true(virtio_pci_driver_ok(p));
	struct fseg s = { fg_alloc(e->g, 16, 8), 16, true };
	fvq_add(&e->fvq[0], &s, 1);
	fp_kick(p, 0);
	assert_true(fvq_get_used(&e->fvq[0], NULL, NULL));
	echo_free(e);
}

/*
 * Issue 11 #3: a guest that breaks a queue and resets the device in a loop
 * (each cycle: a hostile chain line and "device needs reset") gets at most
 * EBB_RATELIMIT_BURST lines per second through; the rest are counted.
 */
static void test_reset_storm_log_bound(void **state)
{
	struct echo *e = echo_new();
	struct virtio_pci *p = e->pci;
	const unsigned cycles = 5000, per_second = 1000; /* 1 ms apart: 5 s */

	for (unsigned i = 0; i < cycles; i++) {
		e->g->now_ns = (uint64_t)i * (1000000000ull / per_second);
		e->g->alloc_next = 0x1000;
		fp_setup(p, e->g, GOOD, e->fvq, NQ, QMAX, true);
		fp_driver_ok(p);
		e->fvq[0].avail->ring[0] = htole16(QMAX + 3);
		e->fvq[0].avail->idx = htole16(1);
		fp_kick(p, 0);
		assert_true(fp_r(p, FP_COMMON(STATUS), 1) & VIRTIO_CONFIG_S_NEEDS_RESET);
	}
	assert_int_equal(e->errs.nr_needs_reset, cycles);
	/* 5 one-second windows (the last partial) of EBB_RATELIMIT_BURST lines. */
	assert_true(e->g->nr_logs <= EBB_RATELIMIT_BURST * (cycles / per_second + 1));
	assert_true(e->g->nr_logs >= EBB_RATELIMIT_BURST);
	/* Two lines per cycle were asked for: all are logged or counted. */
	assert_int_equal(e->g->nr_logs + e->errs.nr_logs_suppressed, 2 * cycles);
	echo_free(e);
}

/*
 * Issue 11 #9: register writes (vCPU threads) run no device work: DRIVER_OK
 * and a notify-register kick only mark queues pending; the event thread's
 * virtio_pci_poll runs them.
 */
static void test_register_writes_only_signal(void **state)
{
	struct echo *e = echo_new();
	struct virtio_pci *p = e->pci;
	struct fseg s = { 0, 64, true };

	fp_setup(p, e->g, GOOD, e->fvq, NQ, QMAX, true);
	s.gpa = fg_alloc(e->g, 64, 8);
	fvq_add(&e->fvq[0], &s, 1);
	fp_w(p, FP_COMMON(STATUS), VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
	     VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK, 1);
	assert_int_equal(e->nr_notify[0], 0);
	assert_int_equal(e->nr_notify[1], 0);
	assert_false(fvq_get_used(&e->fvq[0], NULL, NULL));
	assert_true(virtio_pci_has_pending(p));
	assert_false(virtio_pci_poll(p));
	assert_int_equal(e->nr_notify[0], 1);
	assert_int_equal(e->nr_notify[1], 1);
	assert_true(fvq_get_used(&e->fvq[0], NULL, NULL));
	/* A kick through the notify register: pending, run by the poll. */
	fvq_add(&e->fvq[0], &s, 1);
	fp_w(p, (uint32_t)virtio_pci_notify_offset(p, 0), 0, 2);
	assert_int_equal(e->nr_notify[0], 1);
	assert_true(virtio_pci_has_pending(p));
	virtio_pci_poll(p);
	assert_int_equal(e->nr_notify[0], 2);
	assert_true(fvq_get_used(&e->fvq[0], NULL, NULL));
	echo_free(e);
}

static void test_pci_cfg_window_and_device_cfg(void **state)
{
	struct echo *e = echo_new();
	struct virtio_pci *p = e->pci;
	uint32_t cap = VIRTIO_PCI_CAP_PCICFG_AT;

	fp_cfgw(p, cap + 4, 0, 1);
	fp_cfgw(p, cap + 8, VIRTIO_PCI_COMMON_OFFSET + VIRTIO_PCI_COMMON_NUMQ, 4);
	fp_cfgw(p, cap + 12, 2, 4);
	assert_int_equal(fp_cfgr(p, cap + 16, 2), NQ);
	/* Write the device config through the window. */
	fp_cfgw(p, cap + 8, VIRTIO_PCI_DEVICE_OFFSET + 4, 4);
	fp_cfgw(p, cap + 12, 4, 4);
	fp_cfgw(p, cap + 16, 0xdeadbeef, 4);
	assert_int_equal(fp_r(p, VIRTIO_PCI_DEVICE_OFFSET + 4, 4), 0xdeadbeef);
	/* Device config bounds: reads past it are zero and counted. */
	uint64_t before = e->errs.nr_bad_register;
	assert_int_equal(fp_r(p, VIRTIO_PCI_DEVICE_OFFSET + 6, 4), 0);
	assert_int_equal(e->errs.nr_bad_register, before + 1);
	fp_w(p, VIRTIO_PCI_BAR0_SIZE - 2, 1, 4); /* past BAR0 */
	virtio_pci_bar_write(p, 1, 0, "x", 1);  /* no BAR1 */
	fp_w(p, VIRTIO_PCI_ISR_OFFSET, 1, 1);    /* ISR is read-only */
	assert_int_equal(e->errs.nr_bad_register, before + 4);
	echo_free(e);
}

/*
 * Regression, found by fuzz_balloon (tests/fuzz/regress/balloon/
 * msix-table-offset-ub-empty-program): MSI-X table and PBA accesses formed
 * `table + off - TABLE_OFFSET`, an out-of-bounds pointer before the
 * subtraction (undefined behaviour UBSan reports).  Every entry of the table
 * and the whole PBA must be reachable through BAR0 at exactly its offset.
 */
static void test_regress_msix_table_offsets(void **state)
{
	struct echo *e = echo_new();
	struct virtio_pci *p = e->pci;

	for (uint16_t v = 0; v <= NQ; v++)
		fp_msix_vector(p, v, 0xfee00000u + 0x10u * v, 0x100u + v);
	for (uint16_t v = 0; v <= NQ; v++) {
		uint32_t at = VIRTIO_PCI_MSIX_TABLE_OFFSET + 16u * v;
		assert_int_equal(fp_r(p, at, 8), 0xfee00000u + 0x10u * v);
		assert_int_equal(fp_r(p, at + 8, 4), 0x100u + v);
		assert_int_equal(fp_r(p, at + 12, 4), 0);
	}
	uint64_t before = e->errs.nr_bad_register;
	fp_w(p, VIRTIO_PCI_MSIX_TABLE_OFFSET + 16u * (NQ + 1), 1, 4); /* one past the table */
	assert_int_equal(e->errs.nr_bad_register, before + 1);
	assert_int_equal(fp_r(p, VIRTIO_PCI_MSIX_PBA_OFFSET, 8), 0);
	echo_free(e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_rejects_bad_cfg),
		cmocka_unit_test(test_config_space_and_caps),
		cmocka_unit_test(test_bar_sizing_and_move),
		cmocka_unit_test(test_feature_negotiation),
		cmocka_unit_test(test_status_state_machine),
		cmocka_unit_test(test_queue_setup_registers),
		cmocka_unit_test(test_queue_enable_bad_size),
		cmocka_unit_test(test_kicks_and_driver_ok),
		cmocka_unit_test(test_msix_delivery_and_masking),
		cmocka_unit_test(test_intx_and_isr),
		cmocka_unit_test(test_needs_reset_after_hostile_chain),
		cmocka_unit_test(test_reset_storm_log_bound),
		cmocka_unit_test(test_bar_move_storm),
		cmocka_unit_test(test_register_writes_only_signal),
		cmocka_unit_test(test_pci_cfg_window_and_device_cfg),
		cmocka_unit_test(test_regress_msix_table_offsets),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
