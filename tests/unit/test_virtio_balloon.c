/*
 * tests/unit/test_virtio_balloon.c — the balloon device through its
 * virtio-pci transport, driven like the Linux driver drives it: inflate and
 * deflate with run merging (asserting how many times the host callbacks run
 * for contiguous PFNs), PFN validation against RAM, the hole and the limit,
 * deflate-on-OOM, target/actual, the stats request/response cycle on the
 * tick, free page reporting, the queue numbering by negotiated features,
 * and reset.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <time.h>

#include "tests/unit/test_virtio_fake.h"
#include "virtio/balloon.h"

#define RAM_BYTES (4u << 20)         /* 1024 pages */
#define HOLE_START (3u << 20)        /* PFNs 768..895 are the "PCI hole" */
#define HOLE_END (HOLE_START + (512u << 10))
#define PFN_LIMIT 1024u
#define PERIOD_NS 1000000000ull

#define F(x) (1ull << (x))
#define ALL_FEATURES (F(VIRTIO_F_VERSION_1) | F(VIRTIO_BALLOON_F_STATS_VQ) | \
		      F(VIRTIO_BALLOON_F_DEFLATE_ON_OOM) | F(VIRTIO_BALLOON_F_REPORTING))

enum { QI, QD, QS, QR }; /* with all features negotiated */

struct call {
	enum virtio_balloon_reason why;
	virtio_pfn_t pfn;
	uint64_t nr;
};

struct bfx {
	struct fake_guest *g;
	struct virtio_balloon *b;
	struct virtio_pci *pci;
	struct fake_vq fvq[4];
	struct call released[64], reusable[64];
	unsigned nr_released, nr_reusable, nr_stats_cb;
	uint64_t pages_released, pages_reusable;
	struct virtio_balloon_stats last_stats;
	virtio_gpa_t stats_buf;
	unsigned readd;         /* a "busy vCPU": each release adds another chain */
	virtio_gpa_t readd_buf;
};

static void cb_released(void *opaque, enum virtio_balloon_reason why, virtio_pfn_t pfn,
			uint64_t nr)
{
	struct bfx *f = opaque;

	if (f->nr_released < 64)
		f->released[f->nr_released] = (struct call){ why, pfn, nr };
	f->nr_released++;
	f->pages_released += nr;
	if (f->readd) { /* the guest queues the next inflate while we work */
		uint32_t *p = fg_ptr(f->g, f->readd_buf + 4 * f->readd);
		struct fseg s = { f->readd_buf + 4 * f->readd, 4, false };

		*p = htole32(300 + f->readd);
		f->readd--;
		fvq_add(&f->fvq[QI], &s, 1);
	}
}

static void cb_reusable(void *opaque, enum virtio_balloon_reason why, virtio_pfn_t pfn,
			uint64_t nr)
{
	struct bfx *f = opaque;

	if (f->nr_reusable < 64)
		f->reusable[f->nr_reusable] = (struct call){ why, pfn, nr };
	f->nr_reusable++;
	f->pages_reusable += nr;
}

static void cb_stats(void *opaque, const struct virtio_balloon_stats *st)
{
	struct bfx *f = opaque;

	f->nr_stats_cb++;
	f->last_stats = *st;
}

/* Put a stats buffer (tag, value pairs) in the stats queue. */
static void add_stats(struct bfx *f, unsigned q, const uint16_t *tags, const uint64_t *vals,
		      unsigned n, uint32_t extra_bytes)
{
	uint8_t *p;

	if (!f->stats_buf)
		f->stats_buf = fg_alloc(f->g, 1024, 8);
	p = fg_ptr(f->g, f->stats_buf);
	for (unsigned i = 0; i < n; i++) {
		uint16_t t = htole16(tags[i]);
		uint64_t v = htole64(vals[i]);
		memcpy(p + 10 * i, &t, 2);
		memcpy(p + 10 * i + 2, &v, 8);
	}
	struct fseg s = { f->stats_buf, 10 * n + extra_bytes, false };
	fvq_add(&f->fvq[q], &s, 1);
}

static struct bfx *bfx_new(uint64_t features, unsigned nr_queues, bool stats_first)
{
	struct bfx *f = calloc(1, sizeof(*f));
	struct virtio_balloon_cfg cfg = {
		.guest_pfn_limit = PFN_LIMIT, .queue_max_size = 64,
		.stats_vq = true, .deflate_on_oom = true, .free_page_reporting = true,
		.stats_period_ns = PERIOD_NS,
		.pages_released = cb_released, .pages_reusable = cb_reusable,
		.stats_updated = cb_stats,
	};

	f->g = fg_create(RAM_BYTES, HOLE_START, HOLE_END);
	cfg.host = &f->g->host;
	cfg.opaque = f;
	assert_int_equal(virtio_balloon_create(&cfg, &f->b), 0);
	f->pci = virtio_balloon_pci(f->b);
	assert_true(fp_setup(f->pci, f->g, features, f->fvq, nr_queues, 64, true) &
		    VIRTIO_CONFIG_S_FEATURES_OK);
	if (stats_first) { /* like Linux: the first stats buffer before DRIVER_OK */
		uint16_t tag = VIRTIO_BALLOON_S_MEMFREE;
		uint64_t val = 0;
		add_stats(f, QS, &tag, &val, 1, 0);
		fp_kick(f->pci, QS);
	}
	fp_driver_ok(f->pci);
	return f;
}

static void bfx_free(struct bfx *f)
{
	virtio_balloon_destroy(f->b);
	fg_destroy(f->g);
	free(f);
}

/* Send PFNs on queue q in one chain, kick, and expect the chain back. */
static void send_pfns(struct bfx *f, unsigned q, const uint32_t *pfns, unsigned n)
{
	virtio_gpa_t gpa = fg_alloc(f->g, 4u * n, 4);
	uint32_t *p = fg_ptr(f->g, gpa);
	uint32_t id, len;

	for (unsigned i = 0; i < n; i++)
		p[i] = htole32(pfns[i]);
	struct fseg s = { gpa, 4 * n, false };
	uint16_t head = fvq_add(&f->fvq[q], &s, 1);
	fp_kick(f->pci, (uint16_t)q);
	assert_true(fvq_get_used(&f->fvq[q], &id, &len));
	assert_int_equal(id, head);
	assert_int_equal(len, 0);
}

static void send_range(struct bfx *f, unsigned q, uint32_t first, unsigned n)
{
	uint32_t *pfns = calloc(n, 4);

	for (unsigned i = 0; i < n; i++)
		pfns[i] = first + i;
	send_pfns(f, q, pfns, n);
	free(pfns);
}

static void test_create_rejects_bad_cfg(void **state)
{
	struct virtio_balloon *b = (void *)1;
	struct virtio_balloon_cfg cfg = { 0 };

	assert_int_equal(virtio_balloon_create(&cfg, &b), -EINVAL);
	assert_null(b);
	virtio_balloon_destroy(NULL);
}

/* 256 contiguous PFNs in scrambled order: one callback, one run. */
static void test_inflate_contiguous_is_one_call(void **state)
{
	struct bfx *f = bfx_new(ALL_FEATURES, 4, true);
	uint32_t pfns[256];

	for (unsigned i = 0; i < 256; i++)
		pfns[i] = 100 + (i * 37) % 256; /* a permutation of 100..355 */
	send_pfns(f, QI, pfns, 256);
	assert_int_equal(f->nr_released, 1);
	assert_int_equal(f->released[0].why, VIRTIO_BALLOON_INFLATE);
	assert_int_equal(f->released[0].pfn, 100);
	assert_int_equal(f->released[0].nr, 256);
	assert_int_equal(virtio_balloon_nr_ballooned_pages(f->b), 256);
	assert_true(virtio_balloon_pfn_ballooned(f->b, 100));
	assert_true(virtio_balloon_pfn_ballooned(f->b, 355));
	assert_false(virtio_balloon_pfn_ballooned(f->b, 99));
	assert_false(virtio_balloon_pfn_ballooned(f->b, 356));
	const struct virtio_balloon_counters *c = virtio_balloon_counters(f->b);
	assert_int_equal(c->nr_inflated_pages, 256);
	assert_int_equal(c->nr_release_calls, 1);
	uint64_t nbits;
	const uint64_t *bm = virtio_balloon_bitmap(f->b, &nbits);
	assert_int_equal(nbits, PFN_LIMIT);
	uint64_t set = 0;
	for (unsigned w = 0; w < PFN_LIMIT / 64; w++)
		set += (uint64_t)__builtin_popcountll(bm[w]);
	assert_int_equal(set, 256);
	bfx_free(f);
}

static void test_inflate_runs_with_gaps(void **state)
{
	struct bfx *f = bfx_new(ALL_FEATURES, 4, true);
	uint32_t pfns[] = { 30, 12, 10, 21, 11, 20 };

	send_pfns(f, QI, pfns, 6);
	assert_int_equal(f->nr_released, 3);
	assert_int_equal(f->released[0].pfn, 10);
	assert_int_equal(f->released[0].nr, 3);
	assert_int_equal(f->released[1].pfn, 20);
	assert_int_equal(f->released[1].nr, 2);
	assert_int_equal(f->released[2].pfn, 30);
	assert_int_equal(f->released[2].nr, 1);
	bfx_free(f);
}

static void test_inflate_bad_and_duplicate_pfns(void **state)
{
	struct bfx *f = bfx_new(ALL_FEATURES, 4, true);
	uint32_t pfns[] = { 5, 800 /* hole */, 6, PFN_LIMIT /* limit */, 0xffffffffu, 7, 6 /* dup */ };

	send_pfns(f, QI, pfns, 7);
	const struct virtio_balloon_counters *c = virtio_balloon_counters(f->b);
	assert_int_equal(c->nr_bad_pfns, 3);
	assert_int_equal(c->nr_dup_inflates, 1);
	assert_int_equal(f->nr_released, 1);
	assert_int_equal(f->released[0].pfn, 5);
	assert_int_equal(f->released[0].nr, 3);
	assert_int_equal(virtio_balloon_nr_ballooned_pages(f->b), 3);
	assert_false(virtio_balloon_pfn_ballooned(f->b, 800));
	assert_true(f->g->nr_logs >= 3);
	/* Inflating an already ballooned page again releases nothing. */
	send_pfns(f, QI, pfns + 6, 1);
	assert_int_equal(f->nr_released, 1);
	assert_int_equal(c->nr_dup_inflates, 2);
	bfx_free(f);
}

static void test_deflate_runs(void **state)
{
	struct bfx *f = bfx_new(ALL_FEATURES, 4, true);
	uint32_t back[52];

	virtio_balloon_set_target_pages(f->b, 0);
	send_range(f, QI, 100, 100);
	for (unsigned i = 0; i < 50; i++)
		back[i] = 199 - i; /* 150..199, descending */
	back[50] = 120;
	back[51] = 500; /* never inflated */
	send_pfns(f, QD, back, 52);
	assert_int_equal(f->nr_reusable, 2);
	assert_int_equal(f->reusable[0].why, VIRTIO_BALLOON_DEFLATE);
	assert_int_equal(f->reusable[0].pfn, 120);
	assert_int_equal(f->reusable[0].nr, 1);
	assert_int_equal(f->reusable[1].pfn, 150);
	assert_int_equal(f->reusable[1].nr, 50);
	const struct virtio_balloon_counters *c = virtio_balloon_counters(f->b);
	assert_int_equal(c->nr_deflated_pages, 51);
	assert_int_equal(c->nr_deflate_not_inflated, 1);
	assert_int_equal(c->nr_oom_deflated_pages, 0);
	assert_int_equal(virtio_balloon_nr_ballooned_pages(f->b), 49);
	assert_false(virtio_balloon_pfn_ballooned(f->b, 150));
	assert_true(virtio_balloon_pfn_ballooned(f->b, 149));
	bfx_free(f);
}

static void test_deflate_on_oom(void **state)
{
	struct bfx *f = bfx_new(ALL_FEATURES, 4, true);

	virtio_balloon_set_target_pages(f->b, 64);
	send_range(f, QI, 200, 64);
	/* The balloon is at target and the guest deflates anyway: OOM. */
	send_range(f, QD, 200, 8);
	assert_int_equal(f->nr_reusable, 1);
	assert_int_equal(f->reusable[0].why, VIRTIO_BALLOON_DEFLATE_OOM);
	assert_int_equal(virtio_balloon_counters(f->b)->nr_oom_deflated_pages, 8);
	/* The guest's own count says the balloon is above target: asked for. */
	fp_w(f->pci, VIRTIO_PCI_DEVICE_OFFSET + 4, 70, 4);
	send_range(f, QD, 230, 2);
	assert_int_equal(f->reusable[1].why, VIRTIO_BALLOON_DEFLATE);
	fp_w(f->pci, VIRTIO_PCI_DEVICE_OFFSET + 4, 54, 4);
	/* Host lowers the target: an ordinary deflate. */
	virtio_balloon_set_target_pages(f->b, 0);
	send_range(f, QD, 208, 8);
	assert_int_equal(f->reusable[2].why, VIRTIO_BALLOON_DEFLATE);
	assert_int_equal(virtio_balloon_counters(f->b)->nr_oom_deflated_pages, 8);
	bfx_free(f);
}

static void test_target_and_actual(void **state)
{
	struct bfx *f = bfx_new(ALL_FEATURES, 4, true);
	unsigned irq0 = f->g->nr_msi[0];

	virtio_balloon_set_target_pages(f->b, 300);
	assert_int_equal(fp_r(f->pci, VIRTIO_PCI_DEVICE_OFFSET, 4), 300);
	assert_int_equal(f->g->nr_msi[0], irq0 + 1); /* config interrupt */
	virtio_balloon_set_target_pages(f->b, 300); /* unchanged: no interrupt */
	assert_int_equal(f->g->nr_msi[0], irq0 + 1);
	fp_w(f->pci, VIRTIO_PCI_DEVICE_OFFSET + 4, 123, 4);
	assert_int_equal(virtio_balloon_actual_pages(f->b), 123);
	assert_int_equal(fp_r(f->pci, VIRTIO_PCI_DEVICE_OFFSET + 4, 4), 123);
	/* num_pages is the host's: a driver write is refused. */
	fp_w(f->pci, VIRTIO_PCI_DEVICE_OFFSET, 7, 4);
	assert_int_equal(virtio_balloon_target_pages(f->b), 300);
	assert_int_equal(virtio_balloon_errors(f->b)->nr_bad_register, 1);
	bfx_free(f);
}

static void test_stats_cycle(void **state)
{
	struct bfx *f = bfx_new(ALL_FEATURES, 4, true);
	struct virtio_balloon_stats st;
	uint32_t id;

	/* The buffer queued at probe was consumed and is held. */
	assert_int_equal(f->nr_stats_cb, 1);
	assert_true(virtio_balloon_get_stats(f->b, &st));
	assert_false(fvq_get_used(&f->fvq[QS], NULL, NULL));
	unsigned irq = f->g->nr_msi[1 + QS];
	virtio_balloon_tick(f->b, PERIOD_NS / 2); /* not yet */
	assert_false(fvq_get_used(&f->fvq[QS], NULL, NULL));
	virtio_balloon_tick(f->b, PERIOD_NS);
	assert_true(fvq_get_used(&f->fvq[QS], &id, NULL)); /* request: buffer returned */
	assert_int_equal(f->g->nr_msi[1 + QS], irq + 1);
	assert_int_equal(virtio_balloon_counters(f->b)->nr_stats_requests, 1);
	virtio_balloon_tick(f->b, PERIOD_NS * 3); /* nothing held: no second request */
	assert_int_equal(virtio_balloon_counters(f->b)->nr_stats_requests, 1);
	/* The driver answers with fresh values (and a tag from a newer kernel). */
	uint16_t tags[] = { VIRTIO_BALLOON_S_MEMFREE, VIRTIO_BALLOON_S_MEMTOT, 40, VIRTIO_BALLOON_S_AVAIL };
	uint64_t vals[] = { 1000 * 4096ull, 4096 * 4096ull, 5, 2000 * 4096ull };
	add_stats(f, QS, tags, vals, 4, 0);
	fp_kick(f->pci, QS);
	assert_int_equal(f->nr_stats_cb, 2);
	assert_true(virtio_balloon_get_stats(f->b, &st));
	assert_int_equal(st.values[VIRTIO_BALLOON_S_MEMFREE], 1000 * 4096ull);
	assert_int_equal(st.values[VIRTIO_BALLOON_S_MEMTOT], 4096 * 4096ull);
	assert_int_equal(st.values[VIRTIO_BALLOON_S_AVAIL], 2000 * 4096ull);
	assert_int_equal(st.valid_mask, (1u << VIRTIO_BALLOON_S_MEMFREE) |
			 (1u << VIRTIO_BALLOON_S_MEMTOT) | (1u << VIRTIO_BALLOON_S_AVAIL));
	assert_int_equal(st.updated_ns, PERIOD_NS);
	assert_int_equal(virtio_balloon_counters(f->b)->nr_bad_stats, 0);
	/* Next period: a malformed answer is counted, complete entries kept. */
	virtio_balloon_tick(f->b, PERIOD_NS * 4);
	assert_true(fvq_get_used(&f->fvq[QS], NULL, NULL));
	vals[0] = 7;
	add_stats(f, QS, tags, vals, 1, 3);
	fp_kick(f->pci, QS);
	assert_int_equal(virtio_balloon_counters(f->b)->nr_bad_stats, 1);
	assert_true(virtio_balloon_get_stats(f->b, &st));
	assert_int_equal(st.values[VIRTIO_BALLOON_S_MEMFREE], 7);
	assert_int_equal(st.valid_mask, 1u << VIRTIO_BALLOON_S_MEMFREE);
	bfx_free(f);
}

static void test_free_page_reporting(void **state)
{
	struct bfx *f = bfx_new(ALL_FEATURES, 4, true);
	struct fseg s[5] = {
		{ 0x110000, 0x10000, true },          /* two contiguous 64 KiB ranges */
		{ 0x100000, 0x10000, true },
		{ 0x200000, 0x8000, true },           /* a separate one */
		{ 0x201800, 0x1000, true },           /* unaligned: skipped */
		{ HOLE_START, 0x10000, true },        /* in the hole: skipped */
	};
	uint32_t len;

	fvq_add(&f->fvq[QR], s, 5);
	fp_kick(f->pci, QR);
	assert_true(fvq_get_used(&f->fvq[QR], NULL, &len));
	assert_int_equal(len, 0);
	assert_int_equal(f->nr_released, 2);
	assert_int_equal(f->released[0].why, VIRTIO_BALLOON_REPORTED);
	assert_int_equal(f->released[0].pfn, 0x100);
	assert_int_equal(f->released[0].nr, 32);
	assert_int_equal(f->released[1].pfn, 0x200);
	assert_int_equal(f->released[1].nr, 8);
	const struct virtio_balloon_counters *c = virtio_balloon_counters(f->b);
	assert_int_equal(c->nr_reported_pages, 40);
	assert_int_equal(c->nr_bad_report_ranges, 2);
	/* Reported pages are free guest pages, not ballooned ones. */
	assert_int_equal(virtio_balloon_nr_ballooned_pages(f->b), 0);
	bfx_free(f);
}

/* Without STATS_VQ, Linux numbers the reporting queue 2. */
static void test_queue_numbering_follows_features(void **state)
{
	struct bfx *f = bfx_new(F(VIRTIO_F_VERSION_1) | F(VIRTIO_BALLOON_F_REPORTING), 3, false);
	struct fseg s = { 0x100000, 0x4000, true };

	fvq_add(&f->fvq[2], &s, 1);
	fp_kick(f->pci, 2);
	assert_true(fvq_get_used(&f->fvq[2], NULL, NULL));
	assert_int_equal(f->nr_released, 1);
	assert_int_equal(f->released[0].why, VIRTIO_BALLOON_REPORTED);
	assert_int_equal(virtio_balloon_counters(f->b)->nr_stats_updates, 0);
	bfx_free(f);
}

/* A guest that keeps the inflate queue busy gets one queue size per pass. */
static void test_kick_budget_defers(void **state)
{
	struct bfx *f = bfx_new(ALL_FEATURES, 4, true);
	const struct virtio_balloon_counters *c = virtio_balloon_counters(f->b);
	unsigned polls = 0;

	f->readd_buf = fg_alloc(f->g, 4 * 201, 4);
	f->readd = 200;
	uint32_t first = 299;
	send_pfns(f, QI, &first, 1);
	assert_int_equal(c->nr_inflated_pages, 64); /* queue size 64 */
	assert_true(virtio_pci_has_pending(f->pci));
	while (virtio_pci_has_pending(f->pci)) {
		uint64_t before = c->nr_inflated_pages;
		virtio_pci_poll(f->pci);
		assert_true(c->nr_inflated_pages - before <= 64);
		polls++;
	}
	assert_int_equal(polls, 3);
	assert_int_equal(c->nr_inflated_pages, 201);
	assert_int_equal(virtio_balloon_nr_ballooned_pages(f->b), 201);
	assert_false(virtio_pci_poll(f->pci));
	bfx_free(f);
}

static void test_reset_empties_balloon(void **state)
{
	struct bfx *f = bfx_new(ALL_FEATURES, 4, true);

	send_range(f, QI, 10, 30);
	send_range(f, QI, 600, 70); /* crosses a bitmap word boundary */
	assert_int_equal(virtio_balloon_nr_ballooned_pages(f->b), 100);
	fp_w(f->pci, FP_COMMON(STATUS), 0, 1);
	assert_int_equal(f->nr_reusable, 2);
	assert_int_equal(f->reusable[0].why, VIRTIO_BALLOON_RESET);
	assert_int_equal(f->reusable[0].pfn, 10);
	assert_int_equal(f->reusable[0].nr, 30);
	assert_int_equal(f->reusable[1].pfn, 600);
	assert_int_equal(f->reusable[1].nr, 70);
	assert_int_equal(virtio_balloon_nr_ballooned_pages(f->b), 0);
	assert_false(virtio_balloon_pfn_ballooned(f->b, 10));
	assert_int_equal(virtio_balloon_actual_pages(f->b), 0);
	/* And it works again after the driver comes back. */
	assert_true(fp_setup(f->pci, f->g, ALL_FEATURES, f->fvq, 4, 64, true) &
		    VIRTIO_CONFIG_S_FEATURES_OK);
	fp_driver_ok(f->pci);
	send_range(f, QI, 10, 5);
	assert_int_equal(virtio_balloon_nr_ballooned_pages(f->b), 5);
	bfx_free(f);
}

static void test_malformed_pfn_buffer(void **state)
{
	struct bfx *f = bfx_new(ALL_FEATURES, 4, true);
	virtio_gpa_t gpa = fg_alloc(f->g, 8, 4);
	uint32_t *p = fg_ptr(f->g, gpa);

	p[0] = htole32(40);
	struct fseg s = { gpa, 6, false }; /* one PFN and 2 stray bytes */
	fvq_add(&f->fvq[QI], &s, 1);
	fp_kick(f->pci, QI);
	assert_true(fvq_get_used(&f->fvq[QI], NULL, NULL));
	assert_int_equal(virtio_balloon_errors(f->b)->nr_bad_request, 1);
	assert_int_equal(virtio_balloon_nr_ballooned_pages(f->b), 1);
	bfx_free(f);
}

/*
 * Issue 11 #1: an inflate chain [empty descriptor] -> [1024 bytes of PFNs].
 * The empty segment used to end the copy, the device then walked its own
 * uninitialised PFN array: pages the guest never named were discarded.
 */
static void test_regress_empty_segment_before_pfns(void **state)
{
	struct bfx *f = bfx_new(ALL_FEATURES, 4, true);
	const struct virtio_balloon_counters *c = virtio_balloon_counters(f->b);
	virtio_gpa_t gpa = fg_alloc(f->g, 1024, 4);
	uint32_t *p = fg_ptr(f->g, gpa);

	for (unsigned i = 0; i < 256; i++)
		p[i] = htole32(100 + i);
	struct fseg s[2] = { { gpa, 0, false }, { gpa, 1024, false } };
	fvq_add(&f->fvq[QI], s, 2);
	fp_kick(f->pci, QI);
	assert_true(fvq_get_used(&f->fvq[QI], NULL, NULL));
	assert_int_equal(c->nr_inflated_pages, 256);
	assert_int_equal(f->pages_released, 256);
	assert_int_equal(f->nr_released, 1);
	assert_int_equal(f->released[0].pfn, 100);
	assert_int_equal(virtio_balloon_nr_ballooned_pages(f->b), 256);
	for (unsigned pfn = 0; pfn < PFN_LIMIT; pfn++)
		assert_int_equal(virtio_balloon_pfn_ballooned(f->b, pfn), pfn >= 100 && pfn < 356);

	/* The same with 256 bad PFNs: all 256 counted, nothing released. */
	for (unsigned i = 0; i < 256; i++)
		p[i] = htole32(0xffff0000u + i);
	fvq_add(&f->fvq[QI], s, 2);
	fp_kick(f->pci, QI);
	assert_true(fvq_get_used(&f->fvq[QI], NULL, NULL));
	assert_int_equal(c->nr_bad_pfns, 256);
	assert_int_equal(f->pages_released, 256);
	bfx_free(f);
}

/* PFNs split across odd-length and empty segments are put back together. */
static void test_pfns_across_odd_segments(void **state)
{
	struct bfx *f = bfx_new(ALL_FEATURES, 4, true);
	virtio_gpa_t gpa = fg_alloc(f->g, 4 * 10, 4);
	uint32_t *p = fg_ptr(f->g, gpa);

	for (unsigned i = 0; i < 10; i++)
		p[i] = htole32(200 + 2 * i);
	struct fseg s[5] = {
		{ gpa, 3, false }, { 0, 0, false }, { gpa + 3, 6, false },
		{ gpa + 9, 0, false }, { gpa + 9, 31, false },
	};
	fvq_add(&f->fvq[QI], s, 5);
	fp_kick(f->pci, QI);
	assert_true(fvq_get_used(&f->fvq[QI], NULL, NULL));
	assert_int_equal(virtio_balloon_nr_ballooned_pages(f->b), 10);
	for (unsigned i = 0; i < 10; i++)
		assert_true(virtio_balloon_pfn_ballooned(f->b, 200 + 2 * i));
	assert_int_equal(virtio_balloon_errors(f->b)->nr_bad_request, 0);
	bfx_free(f);
}

/*
 * Issue 11 #12: one chain of 40000 PFNs is handled in slices of
 * VIRTIO_BALLOON_PAGES_PER_CALL across polls, and only returned at the end.
 */
static void test_long_chain_is_sliced(void **state)
{
	struct bfx *f = bfx_new(ALL_FEATURES, 4, true);
	const struct virtio_balloon_counters *c = virtio_balloon_counters(f->b);
	const unsigned n = 40000;
	virtio_gpa_t gpa = fg_alloc(f->g, 4u * n, 4);
	uint32_t *p = fg_ptr(f->g, gpa);
	unsigned polls = 0;

	for (unsigned i = 0; i < n; i++)
		p[i] = htole32(i % 700);
	struct fseg s = { gpa, 4 * n, false };
	fvq_add(&f->fvq[QI], &s, 1);
	fp_kick(f->pci, QI);
#define SEEN() (c->nr_inflated_pages + c->nr_dup_inflates + c->nr_bad_pfns)
	assert_int_equal(SEEN(), VIRTIO_BALLOON_PAGES_PER_CALL);
	assert_false(fvq_get_used(&f->fvq[QI], NULL, NULL));
	assert_true(virtio_pci_has_pending(f->pci));
	/* A deflate kick meanwhile waits for the inflate chain. */
	uint32_t back = 5;
	virtio_gpa_t g2 = fg_alloc(f->g, 4, 4);
	*(uint32_t *)fg_ptr(f->g, g2) = htole32(back);
	struct fseg s2 = { g2, 4, false };
	fvq_add(&f->fvq[QD], &s2, 1);
	fp_kick(f->pci, QD);
	assert_int_equal(c->nr_deflated_pages, 0);
	while (virtio_pci_has_pending(f->pci)) {
		uint64_t before = SEEN();
		virtio_pci_poll(f->pci);
		assert_true(SEEN() - before <= VIRTIO_BALLOON_PAGES_PER_CALL);
		assert_true(++polls < 10);
	}
	assert_int_equal(SEEN(), n);
#undef SEEN
	assert_true(fvq_get_used(&f->fvq[QI], NULL, NULL));
	assert_int_equal(c->nr_inflated_pages, 700); /* below the hole (768..895) */
	assert_int_equal(c->nr_deflated_pages, 1);
	assert_int_equal(virtio_balloon_nr_ballooned_pages(f->b), 700 - 1);
	bfx_free(f);
}

/* The fake's firmware areas: PFNs 0x10..0x1f and 0x9f are RAM to translate
 * but reserved in the "e820 map". */
static bool reserved_ram_ok(void *opaque, virtio_gpa_t gpa, uint64_t len)
{
	uint64_t first = gpa >> 12, last = (gpa + len - 1) >> 12;

	return !(first <= 0x1f && last >= 0x10) && !(first <= 0x9f && last >= 0x9f);
}

/* Issue 11 #2: reserved PFNs are refused by inflate and by reporting. */
static void test_reserved_pfns_refused(void **state)
{
	struct bfx *f = bfx_new(ALL_FEATURES, 4, true);
	const struct virtio_balloon_counters *c = virtio_balloon_counters(f->b);
	uint32_t pfns[] = { 0x0e, 0x0f, 0x10, 0x1f, 0x20, 0x9f, 0x9e, 0xa0 };

	f->g->host.ram_ok = reserved_ram_ok;
	send_pfns(f, QI, pfns, 8);
	assert_int_equal(c->nr_bad_pfns, 3);
	assert_int_equal(virtio_balloon_nr_ballooned_pages(f->b), 5);
	assert_false(virtio_balloon_pfn_ballooned(f->b, 0x10));
	assert_false(virtio_balloon_pfn_ballooned(f->b, 0x9f));
	assert_true(virtio_balloon_pfn_ballooned(f->b, 0x9e));
	assert_int_equal(f->pages_released, 5);
	/* A report that reaches into a reserved area is skipped whole. */
	struct fseg r[2] = { { 0x0c000, 0x5000, true }, { 0x40000, 0x4000, true } };
	fvq_add(&f->fvq[QR], r, 2);
	fp_kick(f->pci, QR);
	assert_true(fvq_get_used(&f->fvq[QR], NULL, NULL));
	assert_int_equal(c->nr_bad_report_ranges, 1);
	assert_int_equal(c->nr_reported_pages, 4);
	bfx_free(f);
}

/* CPU time of this thread: what a turn costs, not when we were preempted. */
static uint64_t cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void cb_count(void *opaque, enum virtio_balloon_reason why, virtio_pfn_t pfn, uint64_t nr)
{
	*(uint64_t *)opaque += nr;
}

/*
 * Issue 11 #12 as reported: one kick with 256 chains of 65536 PFNs (16 Mi
 * PFNs, here over a 64 MiB guest).  The longest event-loop turn
 * (the kick, then each poll) is compared with all the work, in one run: the
 * old code did it all in the kick.
 */
static void test_huge_kick_bounded_per_turn(void **state)
{
	const uint64_t ram = 64ull << 20, pfns = ram >> 12;
	const unsigned nchains = 256, per_chain = 65536;
	struct fake_guest *g = fg_create(ram + (16ull << 20), 0, 0);
	uint64_t released = 0, longest_ns = 0, total_ns = 0;
	struct virtio_balloon_cfg cfg = {
		.guest_pfn_limit = pfns, .queue_max_size = 256, .pages_released = cb_count,
		.pages_reusable = cb_count,
	};
	struct virtio_balloon *b;
	struct fake_vq fvq[2];
	unsigned turns = 0;

	cfg.host = &g->host;
	cfg.opaque = &released;
	g->host.log = NULL;
	assert_int_equal(virtio_balloon_create(&cfg, &b), 0);
	struct virtio_pci *p = virtio_balloon_pci(b);
	fp_setup(p, g, F(VIRTIO_F_VERSION_1), fvq, 2, 256, true);
	fp_driver_ok(p);
	/* PFN buffers live above the guest's RAM limit, in the fake's spare 16 MiB. */
	virtio_gpa_t buf = ram;
	uint32_t *v = fg_ptr(g, buf);
	for (unsigned i = 0; i < per_chain; i++)
		v[i] = htole32((uint32_t)((i * 7919u) % pfns));
	for (unsigned c = 0; c < nchains; c++) {
		struct fseg s = { buf, 4 * per_chain, false };
		fvq_add(&fvq[0], &s, 1);
	}
	for (bool more = true; more; turns++) {
		uint64_t t0 = cpu_ns(), dt;

		if (turns == 0)
			fp_kick(p, 0);
		else
			virtio_pci_poll(p);
		dt = cpu_ns() - t0;
		total_ns += dt;
		if (dt > longest_ns)
			longest_ns = dt;
		more = virtio_pci_has_pending(p);
		assert_true(turns < 100000);
	}
	const struct virtio_balloon_counters *ctr = virtio_balloon_counters(b);
	assert_int_equal(ctr->nr_inflated_pages + ctr->nr_dup_inflates,
			 (uint64_t)nchains * per_chain);
	assert_int_equal(released, pfns);
	assert_true(turns >= (uint64_t)nchains * per_chain / VIRTIO_BALLOON_PAGES_PER_CALL);
	printf("# %u turns for %u PFNs: longest %.2f ms CPU, all %.1f ms (longest/all = %.3f)\n",
	       turns, nchains * per_chain, longest_ns / 1e6, total_ns / 1e6,
	       (double)longest_ns / (double)total_ns);
	/* The old code held the thread for "all"; now one turn is the first
	 * slice (16384 new PFNs: sorting and releasing runs) at most. */
	assert_true(longest_ns * 5 < total_ns);
	virtio_balloon_destroy(b);
	fg_destroy(g);
}

static void test_hostile_chain_needs_reset(void **state)
{
	struct bfx *f = bfx_new(ALL_FEATURES, 4, true);

	send_range(f, QI, 10, 4);
	f->fvq[QD].avail->idx = htole16(1000); /* jumps past the queue size */
	fp_kick(f->pci, QD);
	assert_true(virtio_pci_status(f->pci) & VIRTIO_CONFIG_S_NEEDS_RESET);
	assert_int_equal(virtio_balloon_errors(f->b)->nr_avail_jump, 1);
	assert_int_equal(virtio_balloon_errors(f->b)->nr_needs_reset, 1);
	assert_int_equal(virtio_balloon_nr_ballooned_pages(f->b), 4);
	/* The device takes no more work until reset. */
	virtio_gpa_t gpa = fg_alloc(f->g, 4, 4);
	*(uint32_t *)fg_ptr(f->g, gpa) = htole32(20);
	struct fseg s = { gpa, 4, false };
	fvq_add(&f->fvq[QI], &s, 1);
	fp_kick(f->pci, QI);
	assert_false(fvq_get_used(&f->fvq[QI], NULL, NULL));
	assert_false(virtio_balloon_pfn_ballooned(f->b, 20));
	bfx_free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_rejects_bad_cfg),
		cmocka_unit_test(test_inflate_contiguous_is_one_call),
		cmocka_unit_test(test_inflate_runs_with_gaps),
		cmocka_unit_test(test_inflate_bad_and_duplicate_pfns),
		cmocka_unit_test(test_deflate_runs),
		cmocka_unit_test(test_deflate_on_oom),
		cmocka_unit_test(test_target_and_actual),
		cmocka_unit_test(test_stats_cycle),
		cmocka_unit_test(test_free_page_reporting),
		cmocka_unit_test(test_queue_numbering_follows_features),
		cmocka_unit_test(test_kick_budget_defers),
		cmocka_unit_test(test_reset_empties_balloon),
		cmocka_unit_test(test_malformed_pfn_buffer),
		cmocka_unit_test(test_hostile_chain_needs_reset),
		cmocka_unit_test(test_regress_empty_segment_before_pfns),
		cmocka_unit_test(test_pfns_across_odd_segments),
		cmocka_unit_test(test_long_chain_is_sliced),
		cmocka_unit_test(test_reserved_pfns_refused),
		cmocka_unit_test(test_huge_kick_bounded_per_turn),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
