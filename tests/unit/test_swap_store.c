/*
 * test_swap_store.c — unit tests of the swap store: zero pages refused,
 * compressed tier and its budget, incompressible bypass to the file tier,
 * the slot allocator (next-fit, reuse, ENOSPC when full), dedup with saving
 * reported, checksum verification on load (a corrupted read is -EBADMSG,
 * never data), short reads, write errors, and readahead runs.
 *
 * The file tier uses a real file (in $TMPDIR or /tmp).  Corruption, short
 * reads and write errors are injected through the store's I/O hook.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "host-reclaim/lru.h"
#include "host-reclaim/swapstore.h"

static const char *tmpdir(void)
{
	const char *d = getenv("TMPDIR");

	return d ? d : "/tmp";
}

static uint64_t mix(uint64_t x)
{
	x += 0x9E3779B97F4A7C15ULL;
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
	x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
	return x ^ (x >> 31);
}

static void random_page(void *p, uint64_t seed)
{
	uint64_t *w = p;

	for (unsigned i = 0; i < EBB_PAGE_SIZE / 8; i++)
		w[i] = mix(seed * 1000003 + i);
}

static void text_page(void *p, uint64_t seed)
{
	memset(p, 'a' + (int)(seed % 26), EBB_PAGE_SIZE);
	memcpy(p, &seed, sizeof(seed));
}

struct inject {
	int fail_writes;        /* next N writes fail with EIO */
	int short_reads;        /* next N reads return half */
	int flip_reads;         /* next N reads get one bit flipped */
	int fail_reads;         /* next N reads fail with EIO */
};

static ssize_t inj_pwrite(void *ctx, int fd, const void *buf, size_t len, off_t off)
{
	struct inject *in = ctx;

	if (in->fail_writes > 0) {
		in->fail_writes--;
		errno = EIO;
		return -1;
	}
	return pwrite(fd, buf, len, off);
}

static ssize_t inj_pread(void *ctx, int fd, void *buf, size_t len, off_t off)
{
	struct inject *in = ctx;
	ssize_t n;

	if (in->fail_reads > 0) {
		in->fail_reads--;
		errno = EIO;
		return -1;
	}
	if (in->short_reads > 0 && len > 1) {
		in->short_reads--;
		len /= 2;
	}
	n = pread(fd, buf, len, off);
	if (n > 0 && in->flip_reads > 0) {
		in->flip_reads--;
		((unsigned char *)buf)[n / 2] ^= 0x10;
	}
	return n;
}

static struct inject inj;
static const struct ebb_swap_io inj_io = { inj_pwrite, inj_pread, &inj };
static int nr_errors_logged;

static void count_log(void *ctx, enum ebb_log_level lvl, const char *msg)
{
	(void)ctx;
	(void)msg;
	if (lvl == EBB_LOG_ERROR)
		nr_errors_logged++;
}

static struct ebb_swap *mk(uint64_t zbudget, uint64_t file_pages)
{
	struct ebb_swap_cfg cfg = {
		.name = "t",
		.zpool_budget_bytes = zbudget,
		.dir = file_pages ? tmpdir() : NULL,
		.file_size_bytes = file_pages * EBB_PAGE_SIZE,
		.io = &inj_io,
		.log = count_log,
	};
	struct ebb_swap *s = NULL;

	memset(&inj, 0, sizeof(inj));
	assert_int_equal(ebb_swap_create(&cfg, &s), 0);
	return s;
}

static void test_zero_page_refused(void **state)
{
	static unsigned char page[EBB_PAGE_SIZE];
	struct ebb_swap *s = mk(1 << 20, 16);
	uint32_t id;

	(void)state;
	memset(page, 0, sizeof(page));
	assert_true(ebb_swap_page_is_zero(page));
	assert_int_equal(ebb_swap_store(s, page, ebb_swap_hash_page(page), true, &id), -EINVAL);
	page[4095] = 1;
	assert_false(ebb_swap_page_is_zero(page));
	ebb_swap_destroy(s);
	ebb_swap_destroy(NULL);
}

static void test_compressed_roundtrip_and_budget(void **state)
{
	static unsigned char page[EBB_PAGE_SIZE], out[EBB_PAGE_SIZE];
	struct ebb_swap *s = mk(600, 0);    /* room for a few compressed pages */
	struct ebb_swap_stats st;
	uint32_t ids[64];
	int stored = 0;

	(void)state;
	for (int i = 0; i < 64; i++) {
		text_page(page, (uint64_t)i + 1);
		int ret = ebb_swap_store(s, page, ebb_swap_hash_page(page), true, &ids[i]);

		if (ret == 0) {
			stored++;
			assert_int_equal(ebb_swap_entry_tier(s, ids[i]), EBB_TIER_ZPOOL);
		} else {
			/* No file tier: out of budget means no space. */
			assert_int_equal(ret, -ENOSPC);
			break;
		}
	}
	assert_true(stored > 3);
	assert_true(stored < 64);
	ebb_swap_get_stats(s, &st);
	assert_true(st.zpool_bytes <= 600);
	assert_int_equal(st.zpool_pages, (uint64_t)stored);
	for (int i = 0; i < stored; i++) {
		assert_int_equal(ebb_swap_load(s, ids[i], out), 0);
		text_page(page, (uint64_t)i + 1);
		assert_memory_equal(out, page, EBB_PAGE_SIZE);
	}
	/* Freeing makes room again. */
	ebb_swap_put(s, ids[0]);
	text_page(page, 999);
	assert_int_equal(ebb_swap_store(s, page, ebb_swap_hash_page(page), true, &ids[0]), 0);
	ebb_swap_destroy(s);
}

static void test_incompressible_goes_to_file(void **state)
{
	static unsigned char page[EBB_PAGE_SIZE], out[EBB_PAGE_SIZE];
	struct ebb_swap *s = mk(1 << 20, 8);
	struct ebb_swap_stats st;
	uint32_t id;

	(void)state;
	random_page(page, 7);
	assert_int_equal(ebb_swap_store(s, page, ebb_swap_hash_page(page), true, &id), 0);
	assert_int_equal(ebb_swap_entry_tier(s, id), EBB_TIER_FILE);
	ebb_swap_get_stats(s, &st);
	assert_int_equal(st.nr_incompressible, 1);
	assert_int_equal(st.file_pages, 1);
	assert_int_equal(ebb_swap_load(s, id, out), 0);
	assert_memory_equal(out, page, EBB_PAGE_SIZE);
	/* Without may_write_file it cannot be stored. */
	random_page(page, 8);
	assert_int_equal(ebb_swap_store(s, page, ebb_swap_hash_page(page), false, &id), -ENOSPC);
	ebb_swap_destroy(s);
}

static void test_slot_allocator(void **state)
{
	static unsigned char page[EBB_PAGE_SIZE];
	struct ebb_swap *s = mk(0, 100);
	uint32_t ids[101];

	(void)state;
	for (int i = 0; i < 100; i++) {
		random_page(page, (uint64_t)i);
		assert_int_equal(ebb_swap_store(s, page, ebb_swap_hash_page(page), true, &ids[i]), 0);
		/* Next-fit: consecutive stores get consecutive slots. */
		assert_int_equal(ebb_swap_entry_slot(s, ids[i]), (uint64_t)i);
	}
	random_page(page, 1000);
	assert_int_equal(ebb_swap_store(s, page, ebb_swap_hash_page(page), true, &ids[100]), -ENOSPC);
	/* Free two, the next stores reuse exactly those. */
	ebb_swap_put(s, ids[10]);
	ebb_swap_put(s, ids[50]);
	assert_int_equal(ebb_swap_entry_slot(s, ids[10]), UINT64_MAX);
	random_page(page, 2000);
	assert_int_equal(ebb_swap_store(s, page, ebb_swap_hash_page(page), true, &ids[10]), 0);
	random_page(page, 2001);
	assert_int_equal(ebb_swap_store(s, page, ebb_swap_hash_page(page), true, &ids[50]), 0);
	uint64_t a = ebb_swap_entry_slot(s, ids[10]), b = ebb_swap_entry_slot(s, ids[50]);

	assert_true((a == 10 && b == 50) || (a == 50 && b == 10));
	ebb_swap_destroy(s);
}

static void test_dedup(void **state)
{
	static unsigned char page[EBB_PAGE_SIZE], other[EBB_PAGE_SIZE], out[EBB_PAGE_SIZE];
	struct ebb_swap *s = mk(1 << 20, 16);
	struct ebb_swap_stats st;
	uint32_t a, b, c, d;

	(void)state;
	text_page(page, 42);
	assert_int_equal(ebb_swap_store(s, page, ebb_swap_hash_page(page), true, &a), 0);
	assert_int_equal(ebb_swap_store(s, page, ebb_swap_hash_page(page), true, &b), 0);
	assert_int_equal(a, b);
	random_page(other, 3);
	assert_int_equal(ebb_swap_store(s, other, ebb_swap_hash_page(other), true, &c), 0);
	assert_int_equal(ebb_swap_store(s, other, ebb_swap_hash_page(other), true, &d), 0);
	assert_int_equal(c, d);   /* file-tier pages dedup too */
	ebb_swap_get_stats(s, &st);
	assert_int_equal(st.nr_entries, 2);
	assert_int_equal(st.nr_refs, 4);
	assert_int_equal(st.nr_dedup_hits, 2);
	assert_int_equal(st.dedup_saved_bytes, 2 * EBB_PAGE_SIZE);
	/* Same hash, different content: never merged (hash is only a hint). */
	text_page(out, 43);
	uint32_t e;

	assert_int_equal(ebb_swap_store(s, out, ebb_swap_hash_page(page), true, &e), 0);
	assert_int_not_equal(e, a);
	/* References: the entry survives until the last put. */
	ebb_swap_put(s, a);
	assert_int_equal(ebb_swap_load(s, b, out), 0);
	assert_memory_equal(out, page, EBB_PAGE_SIZE);
	ebb_swap_put(s, b);
	assert_int_equal(ebb_swap_load(s, b, out), -ENOENT);
	ebb_swap_get_stats(s, &st);
	assert_int_equal(st.dedup_saved_bytes, EBB_PAGE_SIZE);
	ebb_swap_destroy(s);
}

static void test_checksum_mismatch_is_loud(void **state)
{
	static unsigned char page[EBB_PAGE_SIZE], out[EBB_PAGE_SIZE];
	struct ebb_swap *s = mk(0, 8);
	struct ebb_swap_stats st;
	uint32_t id;

	(void)state;
	nr_errors_logged = 0;
	random_page(page, 5);
	assert_int_equal(ebb_swap_store(s, page, ebb_swap_hash_page(page), true, &id), 0);
	inj.flip_reads = 1;
	memset(out, 0xee, sizeof(out));
	assert_int_equal(ebb_swap_load(s, id, out), -EBADMSG);
	ebb_swap_get_stats(s, &st);
	assert_int_equal(st.nr_checksum_errors, 1);
	assert_true(nr_errors_logged >= 1);
	/* The entry itself is intact: a clean re-read verifies. */
	assert_int_equal(ebb_swap_load(s, id, out), 0);
	assert_memory_equal(out, page, EBB_PAGE_SIZE);
	ebb_swap_destroy(s);
}

static void test_short_reads_and_io_errors(void **state)
{
	static unsigned char page[EBB_PAGE_SIZE], out[EBB_PAGE_SIZE];
	struct ebb_swap *s = mk(0, 8);
	struct ebb_swap_stats st;
	uint32_t id;

	(void)state;
	random_page(page, 9);
	/* A failed write stores nothing and frees the slot. */
	inj.fail_writes = 1;
	assert_int_equal(ebb_swap_store(s, page, ebb_swap_hash_page(page), true, &id), -EIO);
	ebb_swap_get_stats(s, &st);
	assert_int_equal(st.nr_write_errors, 1);
	assert_int_equal(st.file_pages, 0);
	assert_int_equal(ebb_swap_store(s, page, ebb_swap_hash_page(page), true, &id), 0);
	/* Short reads are continued, counted, and the data is right. */
	inj.short_reads = 3;
	assert_int_equal(ebb_swap_load(s, id, out), 0);
	assert_memory_equal(out, page, EBB_PAGE_SIZE);
	ebb_swap_get_stats(s, &st);
	assert_true(st.nr_short_reads >= 3);
	/* A read error is an error, not data. */
	inj.fail_reads = 1;
	assert_int_equal(ebb_swap_load(s, id, out), -EIO);
	ebb_swap_get_stats(s, &st);
	assert_int_equal(st.nr_read_errors, 1);
	ebb_swap_destroy(s);
}

static void test_readahead_run(void **state)
{
	static unsigned char page[EBB_PAGE_SIZE];
	static unsigned char out[8 * EBB_PAGE_SIZE];
	struct ebb_swap *s = mk(0, 32);
	uint32_t ids[8];

	(void)state;
	for (int i = 0; i < 8; i++) {
		random_page(page, 100 + (uint64_t)i);
		assert_int_equal(ebb_swap_store(s, page, ebb_swap_hash_page(page), true, &ids[i]), 0);
	}
	assert_int_equal(ebb_swap_load_run(s, ids, 8, out), 8);
	for (int i = 0; i < 8; i++) {
		random_page(page, 100 + (uint64_t)i);
		assert_memory_equal(out + i * EBB_PAGE_SIZE, page, EBB_PAGE_SIZE);
	}
	/* A gap in the slots ends the run. */
	uint32_t gap[3] = { ids[0], ids[1], ids[5] };

	assert_int_equal(ebb_swap_load_run(s, gap, 3, out), 2);
	/* A corrupted page inside the run ends it before that page. */
	inj.flip_reads = 1; /* flips a byte in the middle of the 4-page read: page 2 */
	assert_int_equal(ebb_swap_load_run(s, ids, 4, out), 2);
	ebb_swap_destroy(s);
}

static void test_hash_properties(void **state)
{
	static unsigned char a[EBB_PAGE_SIZE], b[EBB_PAGE_SIZE];

	(void)state;
	random_page(a, 1);
	memcpy(b, a, sizeof(a));
	assert_true(ebb_swap_hash_page(a) == ebb_swap_hash_page(b));
	/* Any single-bit change anywhere changes the hash. */
	for (unsigned bit = 0; bit < EBB_PAGE_SIZE * 8; bit += 61) {
		b[bit / 8] ^= (unsigned char)(1u << (bit % 8));
		assert_true(ebb_swap_hash_page(a) != ebb_swap_hash_page(b));
		b[bit / 8] ^= (unsigned char)(1u << (bit % 8));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_zero_page_refused),
		cmocka_unit_test(test_compressed_roundtrip_and_budget),
		cmocka_unit_test(test_incompressible_goes_to_file),
		cmocka_unit_test(test_slot_allocator),
		cmocka_unit_test(test_dedup),
		cmocka_unit_test(test_checksum_mismatch_is_loud),
		cmocka_unit_test(test_short_reads_and_io_errors),
		cmocka_unit_test(test_readahead_run),
		cmocka_unit_test(test_hash_properties),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
