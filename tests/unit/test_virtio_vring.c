/*
 * tests/unit/test_virtio_vring.c — the split virtqueue against a fake vring
 * in ordinary memory: chains, indirect tables, EVENT_IDX and the interrupt
 * decision, index wrap-around, and every hostile-guest case, each asserting
 * the device's error counters and that the queue breaks (needs reset)
 * instead of crashing.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "tests/unit/test_virtio_fake.h"
#include "virtio/vring.h"

#define RAM_BYTES (1u << 20)
#define HOLE_START 0xc0000u
#define HOLE_END 0xd0000u
#define QSIZE 8

struct fx {
	struct fake_guest *g;
	struct fake_vq fvq;
	struct virtio_vq vq;
	struct virtio_dev_errors errs;
	struct ebb_ratelimit rl;
	unsigned nr_broken;
	struct virtio_chain chain;
};

static void on_broken(void *opaque, struct virtio_vq *vq)
{
	((struct fx *)opaque)->nr_broken++;
}

static struct fx *fx_new(uint64_t features)
{
	struct fx *f = calloc(1, sizeof(*f));

	f->g = fg_create(RAM_BYTES, HOLE_START, HOLE_END);
	fvq_init(&f->fvq, f->g, QSIZE);
	virtio_vq_init(&f->vq, 0, QSIZE, &f->g->host, &f->errs, &f->rl, on_broken, f);
	f->vq.desc_gpa = f->fvq.desc_gpa;
	f->vq.avail_gpa = f->fvq.avail_gpa;
	f->vq.used_gpa = f->fvq.used_gpa;
	assert_int_equal(virtio_vq_enable(&f->vq, features), 0);
	return f;
}

static void fx_free(struct fx *f)
{
	fg_destroy(f->g);
	free(f);
}

#define F_INDIRECT (1ull << VIRTIO_RING_F_INDIRECT_DESC)
#define F_EVENT (1ull << VIRTIO_RING_F_EVENT_IDX)

static void test_simple_chain(void **state)
{
	struct fx *f = fx_new(0);
	virtio_gpa_t a = fg_alloc(f->g, 100, 8), b = fg_alloc(f->g, 50, 8), c = fg_alloc(f->g, 64, 8);
	struct fseg s[3] = { { a, 100, false }, { b, 50, false }, { c, 64, true } };
	uint32_t id, len;
	char buf[150];

	memset(fg_ptr(f->g, a), 'a', 100);
	memset(fg_ptr(f->g, b), 'b', 50);
	assert_int_equal(virtio_vq_pop(&f->vq, &f->chain), 0);
	uint16_t head = fvq_add(&f->fvq, s, 3);
	assert_true(virtio_vq_has_avail(&f->vq));
	assert_int_equal(virtio_vq_pop(&f->vq, &f->chain), 1);
	assert_int_equal(f->chain.head, head);
	assert_int_equal(f->chain.nr_segs, 3);
	assert_int_equal(f->chain.nr_out, 2);
	assert_int_equal(f->chain.out_bytes, 150);
	assert_int_equal(f->chain.in_bytes, 64);
	assert_ptr_equal(f->chain.segs[2].host, fg_ptr(f->g, c));
	assert_int_equal(virtio_chain_read(&f->chain, 95, buf, sizeof(buf)), 55);
	assert_memory_equal(buf, "aaaaabbbbb", 10);
	assert_int_equal(virtio_chain_write(&f->chain, 60, "12345678", 8), 4);
	assert_memory_equal(fg_ptr(f->g, c) + 60, "1234", 4);
	assert_int_equal(virtio_vq_pop(&f->vq, &f->chain), 0);
	virtio_vq_push(&f->vq, head, 4);
	assert_true(fvq_get_used(&f->fvq, &id, &len));
	assert_int_equal(id, head);
	assert_int_equal(len, 4);
	assert_false(fvq_get_used(&f->fvq, NULL, NULL));
	assert_int_equal(f->nr_broken, 0);
	fx_free(f);
}

static void test_indirect_chain(void **state)
{
	struct fx *f = fx_new(F_INDIRECT);
	struct fseg s[5];

	for (int i = 0; i < 5; i++)
		s[i] = (struct fseg){ fg_alloc(f->g, 32, 8), 32, i >= 3 };
	uint16_t head = fvq_add_indirect(&f->fvq, s, 5);
	assert_int_equal(virtio_vq_pop(&f->vq, &f->chain), 1);
	assert_int_equal(f->chain.head, head);
	assert_int_equal(f->chain.nr_segs, 5);
	assert_int_equal(f->chain.nr_out, 3);
	assert_int_equal(f->chain.in_bytes, 64);
	assert_int_equal(f->chain.segs[4].gpa, s[4].gpa);
	fx_free(f);
}

/* Zero-length descriptors are legal: no mapping, no bytes, no error. */
static void test_zero_length_segments(void **state)
{
	struct fx *f = fx_new(0);
	virtio_gpa_t a = fg_alloc(f->g, 8, 8);
	struct fseg s[3] = { { RAM_BYTES + 0x10000, 0, false }, { a, 8, true }, { HOLE_START, 0, true } };

	fvq_add(&f->fvq, s, 3);
	assert_int_equal(virtio_vq_pop(&f->vq, &f->chain), 1);
	assert_int_equal(f->chain.nr_segs, 3);
	assert_null(f->chain.segs[0].host);
	assert_int_equal(f->chain.out_bytes, 0);
	assert_int_equal(f->chain.in_bytes, 8);
	assert_int_equal(virtio_chain_write(&f->chain, 0, "abcdefghij", 10), 8);
	assert_memory_equal(fg_ptr(f->g, a), "abcdefgh", 8);
	assert_int_equal(f->nr_broken, 0);
	fx_free(f);
}

/* Wrap the 16-bit indexes many times with a tiny queue. */
static void test_index_wraparound(void **state)
{
	struct fx *f = fx_new(0);
	virtio_gpa_t a = fg_alloc(f->g, 16, 8);
	struct fseg s = { a, 16, true };
	uint32_t id;

	for (unsigned i = 0; i < 70000; i++) {
		uint16_t head = fvq_add(&f->fvq, &s, 1);
		assert_int_equal(virtio_vq_pop(&f->vq, &f->chain), 1);
		assert_int_equal(f->chain.head, head);
		virtio_vq_push(&f->vq, head, i & 7);
		assert_true(fvq_get_used(&f->fvq, &id, NULL));
		assert_int_equal(id, head);
	}
	assert_int_equal(f->errs.nr_avail_jump, 0);
	fx_free(f);
}

static void test_event_idx_need_notify(void **state)
{
	struct fx *f = fx_new(F_EVENT);
	struct fseg s = { fg_alloc(f->g, 16, 8), 16, true };

	for (int i = 0; i < 4; i++)
		fvq_add(&f->fvq, &s, 1);
	fvq_set_used_event(&f->fvq, 2); /* interrupt once used idx passes 2 */
	for (int i = 0; i < 4; i++)
		assert_int_equal(virtio_vq_pop(&f->vq, &f->chain), 1);
	virtio_vq_push(&f->vq, 0, 0);
	assert_true(virtio_vq_need_notify(&f->vq)); /* first decision always notifies */
	virtio_vq_push(&f->vq, 1, 0);
	assert_false(virtio_vq_need_notify(&f->vq)); /* used 2: event 2 not passed */
	virtio_vq_push(&f->vq, 2, 0);
	assert_true(virtio_vq_need_notify(&f->vq)); /* used 3: entry 2 used */
	virtio_vq_push(&f->vq, 3, 0);
	assert_false(virtio_vq_need_notify(&f->vq));
	/* avail_event: we ask to be kicked at our next avail index */
	assert_false(virtio_vq_notify_on(&f->vq));
	assert_int_equal(fvq_avail_event(&f->fvq), 4);
	fvq_add(&f->fvq, &s, 1);
	assert_true(virtio_vq_notify_on(&f->vq)); /* raced: more work */
	fx_free(f);
}

static void test_no_interrupt_flag(void **state)
{
	struct fx *f = fx_new(0);
	struct fseg s = { fg_alloc(f->g, 16, 8), 16, true };

	fvq_add(&f->fvq, &s, 1);
	fvq_add(&f->fvq, &s, 1);
	assert_int_equal(virtio_vq_pop(&f->vq, &f->chain), 1);
	virtio_vq_push(&f->vq, f->chain.head, 0);
	assert_true(virtio_vq_need_notify(&f->vq));
	assert_false(virtio_vq_need_notify(&f->vq)); /* nothing new used: no interrupt */
	f->fvq.avail->flags = htole16(VRING_AVAIL_F_NO_INTERRUPT);
	assert_int_equal(virtio_vq_pop(&f->vq, &f->chain), 1);
	virtio_vq_push(&f->vq, f->chain.head, 0);
	assert_false(virtio_vq_need_notify(&f->vq)); /* the driver said no */
	virtio_vq_notify_off(&f->vq);
	assert_true(le16toh(f->fvq.used->flags) & VRING_USED_F_NO_NOTIFY);
	assert_false(virtio_vq_notify_on(&f->vq));
	assert_false(le16toh(f->fvq.used->flags) & VRING_USED_F_NO_NOTIFY);
	fx_free(f);
}

/* Each hostile case: one counter, the queue breaks exactly once, -EIO after. */
static void expect_broken(struct fx *f, const uint64_t *counter)
{
	assert_int_equal(virtio_vq_pop(&f->vq, &f->chain), -EIO);
	assert_int_equal(*counter, 1);
	assert_int_equal(f->nr_broken, 1);
	assert_true(f->vq.broken);
	assert_int_equal(virtio_vq_pop(&f->vq, &f->chain), -EIO);
	assert_int_equal(f->nr_broken, 1);
	assert_int_equal(*counter, 1);
	assert_true(f->g->nr_logs >= 1);
}

static void test_hostile_head_index(void **state)
{
	struct fx *f = fx_new(0);

	f->fvq.avail->ring[0] = htole16(QSIZE); /* out of range */
	f->fvq.avail->idx = htole16(1);
	expect_broken(f, &f->errs.nr_bad_desc_index);
	fx_free(f);
}

static void test_hostile_next_index(void **state)
{
	struct fx *f = fx_new(0);

	fvq_set_desc(&f->fvq, 0, fg_alloc(f->g, 8, 8), 8, VRING_DESC_F_NEXT, 0xfff0);
	fvq_publish(&f->fvq, 0);
	expect_broken(f, &f->errs.nr_bad_desc_index);
	fx_free(f);
}

static void test_hostile_loop(void **state)
{
	struct fx *f = fx_new(0);
	virtio_gpa_t a = fg_alloc(f->g, 8, 8);

	fvq_set_desc(&f->fvq, 0, a, 8, VRING_DESC_F_NEXT, 1);
	fvq_set_desc(&f->fvq, 1, a, 8, VRING_DESC_F_NEXT, 0);
	fvq_publish(&f->fvq, 0);
	expect_broken(f, &f->errs.nr_chain_loop);
	fx_free(f);
}

static void test_hostile_self_loop_indirect(void **state)
{
	struct fx *f = fx_new(F_INDIRECT);
	virtio_gpa_t t = fg_alloc(f->g, 64, 16);
	struct vring_desc *d = fg_ptr(f->g, t);

	for (int i = 0; i < 4; i++) {
		d[i].addr = htole64(t);
		d[i].len = htole32(8);
		d[i].flags = htole16(VRING_DESC_F_NEXT);
		d[i].next = htole16((uint16_t)((i + 1) % 4));
	}
	fvq_set_desc(&f->fvq, 0, t, 64, VRING_DESC_F_INDIRECT, 0);
	fvq_publish(&f->fvq, 0);
	expect_broken(f, &f->errs.nr_chain_loop);
	fx_free(f);
}

static void test_hostile_indirect_bad_len(void **state)
{
	uint32_t lens[] = { 0, 15, 17, 16 * 40000 };

	for (unsigned i = 0; i < 4; i++) {
		struct fx *f = fx_new(F_INDIRECT);
		fvq_set_desc(&f->fvq, 0, fg_alloc(f->g, 64, 16), lens[i], VRING_DESC_F_INDIRECT, 0);
		fvq_publish(&f->fvq, 0);
		expect_broken(f, &f->errs.nr_bad_indirect);
		fx_free(f);
	}
}

static void test_hostile_indirect_with_next(void **state)
{
	struct fx *f = fx_new(F_INDIRECT);

	fvq_set_desc(&f->fvq, 0, fg_alloc(f->g, 64, 16), 64,
		     VRING_DESC_F_INDIRECT | VRING_DESC_F_NEXT, 1);
	fvq_publish(&f->fvq, 0);
	expect_broken(f, &f->errs.nr_bad_indirect);
	fx_free(f);
}

static void test_hostile_indirect_not_negotiated(void **state)
{
	struct fx *f = fx_new(0);
	struct fseg s = { fg_alloc(f->g, 8, 8), 8, false };

	fvq_add_indirect(&f->fvq, &s, 1);
	expect_broken(f, &f->errs.nr_bad_indirect);
	fx_free(f);
}

static void test_hostile_nested_indirect(void **state)
{
	struct fx *f = fx_new(F_INDIRECT);
	virtio_gpa_t t = fg_alloc(f->g, 16, 16);
	struct vring_desc *d = fg_ptr(f->g, t);

	d->addr = htole64(t);
	d->len = htole32(16);
	d->flags = htole16(VRING_DESC_F_INDIRECT);
	fvq_set_desc(&f->fvq, 0, t, 16, VRING_DESC_F_INDIRECT, 0);
	fvq_publish(&f->fvq, 0);
	expect_broken(f, &f->errs.nr_nested_indirect);
	fx_free(f);
}

static void test_hostile_buffer_addresses(void **state)
{
	struct { virtio_gpa_t gpa; uint32_t len; } bad[] = {
		{ RAM_BYTES - 8, 16 },              /* runs past the end of RAM */
		{ RAM_BYTES + 4096, 1 },            /* beyond RAM */
		{ HOLE_START + 8, 8 },              /* inside the hole */
		{ HOLE_START - 8, 16 },             /* straddles into the hole */
		{ 0xfffffffffffffff0ull, 0x100 },   /* wraps the address space */
	};

	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct fx *f = fx_new(0);
		struct fseg s = { bad[i].gpa, bad[i].len, true };
		fvq_add(&f->fvq, &s, 1);
		expect_broken(f, &f->errs.nr_bad_addr);
		fx_free(f);
	}
}

static void test_hostile_indirect_table_in_hole(void **state)
{
	struct fx *f = fx_new(F_INDIRECT);

	fvq_set_desc(&f->fvq, 0, HOLE_START, 64, VRING_DESC_F_INDIRECT, 0);
	fvq_publish(&f->fvq, 0);
	expect_broken(f, &f->errs.nr_bad_addr);
	fx_free(f);
}

static void test_hostile_avail_jump(void **state)
{
	struct fx *f = fx_new(0);

	f->fvq.avail->idx = htole16(QSIZE + 1);
	expect_broken(f, &f->errs.nr_avail_jump);
	fx_free(f);
}

static void test_hostile_readable_after_writable(void **state)
{
	struct fx *f = fx_new(0);
	struct fseg s[2] = { { fg_alloc(f->g, 8, 8), 8, true }, { fg_alloc(f->g, 8, 8), 8, false } };

	fvq_add(&f->fvq, s, 2);
	expect_broken(f, &f->errs.nr_bad_order);
	fx_free(f);
}

static void test_hostile_chain_too_long(void **state)
{
	struct fx *f = fx_new(F_INDIRECT);
	struct fseg s[VIRTIO_CHAIN_MAX_SEGS + 1];
	virtio_gpa_t a = fg_alloc(f->g, 8, 8);

	for (unsigned i = 0; i <= VIRTIO_CHAIN_MAX_SEGS; i++)
		s[i] = (struct fseg){ a, 8, false };
	fvq_add_indirect(&f->fvq, s, VIRTIO_CHAIN_MAX_SEGS + 1);
	expect_broken(f, &f->errs.nr_chain_too_long);
	fx_free(f);
}

/* A gpa_only queue leaves range checks to its device; wrapping still fails. */
static void test_gpa_only_queue(void **state)
{
	struct fx *f = fx_new(0);
	struct fseg s = { HOLE_START, 0x1000, true };
	char buf[4];

	f->vq.gpa_only = true;
	fvq_add(&f->fvq, &s, 1);
	assert_int_equal(virtio_vq_pop(&f->vq, &f->chain), 1);
	assert_null(f->chain.segs[0].host);
	assert_int_equal(f->chain.segs[0].gpa, HOLE_START);
	assert_int_equal(virtio_chain_write(&f->chain, 0, "abcd", 4), 0);
	assert_int_equal(virtio_chain_read(&f->chain, 0, buf, 4), 0);
	s = (struct fseg){ 0xfffffffffffff000ull, 0x2000, true };
	fvq_add(&f->fvq, &s, 1);
	expect_broken(f, &f->errs.nr_bad_addr);
	fx_free(f);
}

static void test_enable_rejects_bad_setup(void **state)
{
	struct fx *f = fx_new(0);

	virtio_vq_reset(&f->vq);
	f->vq.size = 6; /* not a power of 2 */
	assert_int_equal(virtio_vq_enable(&f->vq, 0), -EINVAL);
	f->vq.size = QSIZE * 2; /* above max */
	assert_int_equal(virtio_vq_enable(&f->vq, 0), -EINVAL);
	f->vq.size = QSIZE;
	f->vq.desc_gpa = f->fvq.desc_gpa + 8; /* misaligned */
	f->vq.avail_gpa = f->fvq.avail_gpa;
	f->vq.used_gpa = f->fvq.used_gpa;
	assert_int_equal(virtio_vq_enable(&f->vq, 0), -EINVAL);
	assert_int_equal(f->errs.nr_bad_queue_setup, 3);
	f->vq.desc_gpa = f->fvq.desc_gpa;
	f->vq.used_gpa = RAM_BYTES - 16; /* used ring past RAM */
	assert_int_equal(virtio_vq_enable(&f->vq, 0), -EINVAL);
	assert_int_equal(f->errs.nr_bad_addr, 1);
	assert_false(f->vq.enabled);
	assert_int_equal(virtio_vq_pop(&f->vq, &f->chain), 0);
	fx_free(f);
}

static void test_log_rate_limit(void **state)
{
	struct fx *f = fx_new(0);

	for (int i = 0; i < 50; i++) {
		virtio_vq_reset(&f->vq);
		f->vq.size = 3;
		virtio_vq_enable(&f->vq, 0);
	}
	assert_int_equal(f->errs.nr_bad_queue_setup, 50);
	assert_int_equal(f->g->nr_logs, EBB_RATELIMIT_BURST);
	assert_int_equal(f->errs.nr_logs_suppressed, 50 - EBB_RATELIMIT_BURST);
	f->g->now_ns += VIRTIO_LOG_INTERVAL_NS;
	virtio_vq_enable(&f->vq, 0);
	assert_int_equal(f->g->nr_logs, EBB_RATELIMIT_BURST + 1);
	fx_free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_simple_chain),
		cmocka_unit_test(test_indirect_chain),
		cmocka_unit_test(test_zero_length_segments),
		cmocka_unit_test(test_index_wraparound),
		cmocka_unit_test(test_event_idx_need_notify),
		cmocka_unit_test(test_no_interrupt_flag),
		cmocka_unit_test(test_hostile_head_index),
		cmocka_unit_test(test_hostile_next_index),
		cmocka_unit_test(test_hostile_loop),
		cmocka_unit_test(test_hostile_self_loop_indirect),
		cmocka_unit_test(test_hostile_indirect_bad_len),
		cmocka_unit_test(test_hostile_indirect_with_next),
		cmocka_unit_test(test_hostile_indirect_not_negotiated),
		cmocka_unit_test(test_hostile_nested_indirect),
		cmocka_unit_test(test_hostile_buffer_addresses),
		cmocka_unit_test(test_hostile_indirect_table_in_hole),
		cmocka_unit_test(test_hostile_avail_jump),
		cmocka_unit_test(test_hostile_readable_after_writable),
		cmocka_unit_test(test_hostile_chain_too_long),
		cmocka_unit_test(test_gpa_only_queue),
		cmocka_unit_test(test_enable_rejects_bad_setup),
		cmocka_unit_test(test_log_rate_limit),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
