/*
 * test_swap_store.c — unit tests of the swap store: zero pages refused,
 * compressed tier and its budget, incompressible bypass to the file tier,
 * the slot allocator (next-fit, reuse, ENOSPC when full), dedup with saving
 * reported, reference counts saturating at the packed entry's 17 bits,
 * checksum verification on load (a corrupted read is -EBADMSG, never data),
 * short reads, write errors, and readahead runs; the zstd codec
 * (round trips, every level bound, refused codec and levels, low-entropy
 * text that only zstd fits in the compressed tier) and corrupted compressed
 * entries under both codecs.
 *
 * The file tier uses a real file (in $TMPDIR or /tmp).  Corruption, short
 * reads and write errors are injected through the store's I/O hook;
 * compressed entries are corrupted with ebb_swap_test_corrupt_zpool.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mount.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <zstd.h>

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

/*
 * Each byte one of 16 letters, uniformly: 4 bits of entropy per byte and
 * almost no repeated strings.  LZ4 (matches only) gets it nowhere near the
 * 3072-byte bypass threshold; zstd's entropy coding halves it.
 */
static void nibble_page(void *p, uint64_t seed)
{
	unsigned char *b = p;

	for (unsigned i = 0; i < EBB_PAGE_SIZE; i += 16) {
		uint64_t r = mix(seed * 1000003 + i);

		for (unsigned j = 0; j < 16; j++)
			b[i + j] = (unsigned char)('a' + ((r >> (4 * j)) & 15));
	}
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
static int nr_undecodable_logged;   /* "does not decompress" */
static int nr_mismatch_logged;      /* "CHECKSUM MISMATCH" */

static void count_log(void *ctx, enum ebb_log_level lvl, const char *msg)
{
	(void)ctx;
	if (lvl != EBB_LOG_ERROR)
		return;
	nr_errors_logged++;
	if (strstr(msg, "does not decompress"))
		nr_undecodable_logged++;
	if (strstr(msg, "CHECKSUM MISMATCH"))
		nr_mismatch_logged++;
}

/* A clock one rate-limit window ahead on every call: no message is suppressed. */
static uint64_t step_clock(void *ctx)
{
	uint64_t *t = ctx;

	*t += EBB_RATELIMIT_WINDOW_NS;
	return *t;
}

static uint64_t step_clock_ns;

static struct ebb_swap *mk_codec(enum ebb_swap_codec codec, int level, uint64_t zbudget,
				 uint64_t file_pages)
{
	struct ebb_swap_cfg cfg = {
		.name = "t",
		.zpool_budget_bytes = zbudget,
		.codec = codec,
		.zstd_level = level,
		.dir = file_pages ? tmpdir() : NULL,
		.file_size_bytes = file_pages * EBB_PAGE_SIZE,
		.io = &inj_io,
		.log = count_log,
		.clock_ns = step_clock,
		.clock_ctx = &step_clock_ns,
	};
	struct ebb_swap *s = NULL;

	memset(&inj, 0, sizeof(inj));
	assert_int_equal(ebb_swap_create(&cfg, &s), 0);
	return s;
}

static struct ebb_swap *mk(uint64_t zbudget, uint64_t file_pages)
{
	return mk_codec(EBB_SWAP_CODEC_LZ4, 0, zbudget, file_pages);
}

static int store(struct ebb_swap *s, const void *page, uint32_t *id)
{
	return ebb_swap_store(s, page, ebb_swap_hash_page(page), true, id);
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

/* The slab's share of the compressed tier is counted (at least malloc's
 * header of one chunk, at most a whole chunk per object), and goes back to 0
 * when every object is freed: empty chunks are released. */
static void test_zpool_overhead_counted(void **state)
{
	static unsigned char page[EBB_PAGE_SIZE];
	struct ebb_swap *s = mk(1 << 20, 0);
	struct ebb_swap_stats st;
	uint32_t ids[32];

	(void)state;
	for (int i = 0; i < 32; i++) {
		text_page(page, (uint64_t)i + 7);
		assert_int_equal(store(s, page, &ids[i]), 0);
	}
	ebb_swap_get_stats(s, &st);
	assert_int_equal(st.zpool_pages, 32);
	assert_true(st.zpool_overhead_bytes >= sizeof(size_t));
	assert_true(st.zpool_overhead_bytes + st.zpool_bytes <= 32 * (16384 + 2 * sizeof(size_t)));
	for (int i = 0; i < 32; i++)
		ebb_swap_put(s, ids[i]);
	ebb_swap_get_stats(s, &st);
	assert_int_equal(st.zpool_pages, 0);
	assert_int_equal(st.zpool_overhead_bytes, 0);
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

/*
 * Entries are 16 bytes: the reference count has 17 bits.  At its limit
 * ebb_swap_get() says -EOVERFLOW and a store of the same content makes a
 * second entry; both load back intact, and dropping every reference frees
 * both.
 */
static void test_refcount_saturates(void **state)
{
	static unsigned char page[EBB_PAGE_SIZE], out[EBB_PAGE_SIZE];
	struct ebb_swap *s = mk(1 << 20, 0);
	struct ebb_swap_stats st;
	const uint32_t limit = (1u << 17) - 1;
	uint32_t a, b;

	(void)state;
	text_page(page, 77);
	assert_int_equal(store(s, page, &a), 0);
	for (uint32_t n = 1; n < limit; n++)
		assert_int_equal(ebb_swap_get(s, a), 0);
	assert_int_equal(ebb_swap_get(s, a), -EOVERFLOW);
	assert_int_equal(store(s, page, &b), 0);
	assert_int_not_equal(a, b);
	ebb_swap_get_stats(s, &st);
	assert_int_equal(st.nr_entries, 2);
	assert_int_equal(st.nr_refs, (uint64_t)limit + 1);
	assert_int_equal(ebb_swap_load(s, a, out), 0);
	assert_memory_equal(out, page, EBB_PAGE_SIZE);
	assert_int_equal(ebb_swap_load(s, b, out), 0);
	assert_memory_equal(out, page, EBB_PAGE_SIZE);
	for (uint32_t n = 0; n < limit; n++)
		ebb_swap_put(s, a);
	ebb_swap_put(s, b);
	ebb_swap_get_stats(s, &st);
	assert_int_equal(st.nr_entries, 0);
	assert_int_equal(st.nr_refs, 0);
	assert_int_equal(st.zpool_pages, 0);
	assert_int_equal(st.zpool_overhead_bytes, 0);
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

/* Page @i of the round trip: i % 4 = 0 text, 1 low-entropy text, 2 noise, 3 one byte set. */
static void kind_page(unsigned char *page, int i)
{
	uint64_t seed = 500 + (uint64_t)i;

	switch (i % 4) {
	case 0:
		text_page(page, seed);
		break;
	case 1:
		nibble_page(page, seed);
		break;
	case 2:
		random_page(page, seed);
		break;
	default:
		memset(page, 0, EBB_PAGE_SIZE);
		page[(seed * 97) % EBB_PAGE_SIZE] = (unsigned char)seed;
		break;
	}
}

/* Compressible, incompressible, nearly-zero, zero and duplicate pages through zstd. */
static void test_zstd_roundtrip(void **state)
{
	enum { N = 24 };
	static unsigned char page[EBB_PAGE_SIZE], out[EBB_PAGE_SIZE];
	struct ebb_swap *s = mk_codec(EBB_SWAP_CODEC_ZSTD, 0, 1 << 20, 16);
	struct ebb_swap_stats st;
	uint32_t ids[N], dup;

	(void)state;
	for (int i = 0; i < N; i++) {
		kind_page(page, i);
		assert_int_equal(store(s, page, &ids[i]), 0);
		assert_int_equal(ebb_swap_entry_tier(s, ids[i]),
				 i % 4 == 2 ? EBB_TIER_FILE : EBB_TIER_ZPOOL);
	}
	ebb_swap_get_stats(s, &st);
	assert_int_equal(st.zpool_pages, N / 4 * 3);
	assert_int_equal(st.file_pages, N / 4);
	assert_int_equal(st.nr_incompressible, N / 4);
	assert_true(st.zpool_bytes > 0);
	/* Loaded in reverse order: the contexts carry nothing from page to page. */
	for (int i = N - 1; i >= 0; i--) {
		kind_page(page, i);
		memset(out, 0xee, sizeof(out));
		assert_int_equal(ebb_swap_load(s, ids[i], out), 0);
		assert_memory_equal(out, page, EBB_PAGE_SIZE);
	}
	/* Zero pages are refused under zstd too. */
	memset(page, 0, sizeof(page));
	assert_int_equal(store(s, page, &dup), -EINVAL);
	/* Duplicates: the dedup comparison decompresses through zstd. */
	nibble_page(page, 501);
	assert_int_equal(store(s, page, &dup), 0);
	assert_int_equal(dup, ids[1]);
	text_page(page, 500);
	assert_int_equal(store(s, page, &dup), 0);
	assert_int_equal(dup, ids[0]);
	ebb_swap_get_stats(s, &st);
	assert_int_equal(st.nr_dedup_hits, 2);
	assert_int_equal(st.nr_entries, N);
	assert_int_equal(st.nr_checksum_errors, 0);
	ebb_swap_put(s, ids[0]);
	assert_int_equal(ebb_swap_load(s, dup, out), 0);
	assert_memory_equal(out, page, EBB_PAGE_SIZE);
	/* Freed entries give their bytes back. */
	for (int i = 0; i < N; i++)
		ebb_swap_put(s, ids[i]);
	ebb_swap_put(s, ids[1]);
	ebb_swap_get_stats(s, &st);
	assert_int_equal(st.nr_entries, 0);
	assert_int_equal(st.zpool_bytes, 0);
	assert_int_equal(st.zpool_pages, 0);
	ebb_swap_destroy(s);
}

/*
 * Both level bounds, negative (fast) levels and the default all round-trip.
 * Negative levels leave literals unencoded, so the low-entropy page goes to
 * the file tier there; at ZSTD_minCLevel() even a page of one repeated byte
 * does not compress.
 */
static void test_zstd_levels(void **state)
{
	static unsigned char page[EBB_PAGE_SIZE], out[EBB_PAGE_SIZE];
	const struct {
		int level;
		enum ebb_swap_tier text, nibble;
	} lv[] = {
		{ ZSTD_minCLevel(), EBB_TIER_FILE, EBB_TIER_FILE },
		{ -5, EBB_TIER_ZPOOL, EBB_TIER_FILE },
		{ 0, EBB_TIER_ZPOOL, EBB_TIER_ZPOOL },
		{ 1, EBB_TIER_ZPOOL, EBB_TIER_ZPOOL },
		{ 3, EBB_TIER_ZPOOL, EBB_TIER_ZPOOL },
		{ 19, EBB_TIER_ZPOOL, EBB_TIER_ZPOOL },
		{ ZSTD_maxCLevel(), EBB_TIER_ZPOOL, EBB_TIER_ZPOOL },
	};

	(void)state;
	for (size_t l = 0; l < sizeof(lv) / sizeof(lv[0]); l++) {
		struct ebb_swap *s = mk_codec(EBB_SWAP_CODEC_ZSTD, lv[l].level, 1 << 20, 4);
		uint32_t a, b;

		text_page(page, 7);
		assert_int_equal(store(s, page, &a), 0);
		assert_int_equal(ebb_swap_entry_tier(s, a), lv[l].text);
		nibble_page(page, 7);
		assert_int_equal(store(s, page, &b), 0);
		assert_int_equal(ebb_swap_entry_tier(s, b), lv[l].nibble);
		assert_int_equal(ebb_swap_load(s, a, out), 0);
		text_page(page, 7);
		assert_memory_equal(out, page, EBB_PAGE_SIZE);
		assert_int_equal(ebb_swap_load(s, b, out), 0);
		nibble_page(page, 7);
		assert_memory_equal(out, page, EBB_PAGE_SIZE);
		ebb_swap_destroy(s);
	}
}

static void test_bad_codec_and_level_refused(void **state)
{
	struct ebb_swap_cfg cfg = { .name = "t", .zpool_budget_bytes = 1 << 20 };
	struct ebb_swap *s = (struct ebb_swap *)&cfg;   /* must be reset to NULL */

	(void)state;
	cfg.codec = 2;
	assert_int_equal(ebb_swap_create(&cfg, &s), -EINVAL);
	assert_null(s);
	cfg.codec = -1;
	assert_int_equal(ebb_swap_create(&cfg, &s), -EINVAL);
	assert_null(s);

	cfg.codec = EBB_SWAP_CODEC_ZSTD;
	cfg.zstd_level = ZSTD_maxCLevel() + 1;
	assert_int_equal(ebb_swap_create(&cfg, &s), -EINVAL);
	assert_null(s);
	cfg.zstd_level = ZSTD_minCLevel() - 1;
	assert_int_equal(ebb_swap_create(&cfg, &s), -EINVAL);
	assert_null(s);
	/* LZ4 ignores the level but a bad one is still a bad cfg. */
	cfg.codec = EBB_SWAP_CODEC_LZ4;
	assert_int_equal(ebb_swap_create(&cfg, &s), -EINVAL);
	assert_null(s);
	cfg.zstd_level = 5;
	assert_int_equal(ebb_swap_create(&cfg, &s), 0);
	ebb_swap_destroy(s);
	/* zstd with the compressed tier off: accepted (nothing to compress). */
	cfg.codec = EBB_SWAP_CODEC_ZSTD;
	cfg.zpool_budget_bytes = 0;
	assert_int_equal(ebb_swap_create(&cfg, &s), 0);
	ebb_swap_destroy(s);
}

/*
 * The same low-entropy page: LZ4 cannot bring it under the 3072-byte bypass
 * threshold (file tier), zstd can (compressed tier).  Fails if the codec
 * field were ignored.
 */
static void test_zstd_fits_what_lz4_cannot(void **state)
{
	static unsigned char page[EBB_PAGE_SIZE];
	struct ebb_swap *lz = mk_codec(EBB_SWAP_CODEC_LZ4, 0, 1 << 20, 4);
	struct ebb_swap *zs = mk_codec(EBB_SWAP_CODEC_ZSTD, 0, 1 << 20, 4);
	struct ebb_swap_stats a, b;
	uint32_t ia, ib;

	(void)state;
	nibble_page(page, 11);
	assert_int_equal(store(lz, page, &ia), 0);
	assert_int_equal(store(zs, page, &ib), 0);
	assert_int_equal(ebb_swap_entry_tier(lz, ia), EBB_TIER_FILE);
	assert_int_equal(ebb_swap_entry_tier(zs, ib), EBB_TIER_ZPOOL);
	ebb_swap_get_stats(lz, &a);
	ebb_swap_get_stats(zs, &b);
	assert_int_equal(a.nr_incompressible, 1);
	assert_int_equal(b.nr_incompressible, 0);
	/* 4 bits per byte of entropy: about half a page, with some slack. */
	assert_true(b.zpool_bytes <= EBB_PAGE_SIZE / 2 + 256);
	/* The zstd contexts are counted as metadata. */
	assert_true(b.metadata_bytes > a.metadata_bytes);
	ebb_swap_destroy(lz);
	ebb_swap_destroy(zs);
}

/*
 * Flip each bit of each compressed byte of @page's entry in turn.  Every
 * load is either the exact page (a bit the decoder ignores) or -EBADMSG,
 * counted and logged, never other data.  Flipping the bit back restores the
 * entry.  Returns how many flips were detected.
 */
static int flip_every_bit(struct ebb_swap *s, const unsigned char *page)
{
	static unsigned char out[EBB_PAGE_SIZE];
	struct ebb_swap_stats st;
	uint64_t errs0;
	uint32_t id;
	int nr_bad = 0;

	assert_int_equal(store(s, page, &id), 0);
	assert_int_equal(ebb_swap_entry_tier(s, id), EBB_TIER_ZPOOL);
	ebb_swap_get_stats(s, &st);
	errs0 = st.nr_checksum_errors;
	for (uint32_t off = 0;; off++) {
		int ret = ebb_swap_test_corrupt_zpool(s, id, off, 1);

		if (ret == -ERANGE)
			break;
		assert_int_equal(ret, 0);
		for (int bit = 0; bit < 8; bit++) {
			if (bit)
				assert_int_equal(ebb_swap_test_corrupt_zpool(s, id, off,
						 (uint8_t)(3u << (bit - 1))), 0);
			ret = ebb_swap_load(s, id, out);
			if (ret == 0)
				assert_memory_equal(out, page, EBB_PAGE_SIZE);
			else {
				assert_int_equal(ret, -EBADMSG);
				nr_bad++;
			}
		}
		assert_int_equal(ebb_swap_test_corrupt_zpool(s, id, off, 0x80), 0);
	}
	ebb_swap_get_stats(s, &st);
	assert_int_equal(st.nr_checksum_errors - errs0, (uint64_t)nr_bad);
	/* All bits back: the entry loads clean. */
	assert_int_equal(ebb_swap_load(s, id, out), 0);
	assert_memory_equal(out, page, EBB_PAGE_SIZE);
	ebb_swap_put(s, id);
	return nr_bad;
}

static void corrupt_compressed(enum ebb_swap_codec codec)
{
	static unsigned char page[EBB_PAGE_SIZE], out[EBB_PAGE_SIZE];
	struct ebb_swap *s = mk_codec(codec, 0, 1 << 20, 0);
	struct ebb_swap_stats st;
	uint32_t id;
	int nr_bad;

	nr_errors_logged = nr_undecodable_logged = nr_mismatch_logged = 0;
	text_page(page, 3);
	assert_int_equal(store(s, page, &id), 0);
	assert_int_equal(ebb_swap_test_corrupt_zpool(s, id, 0, 0xff), 0);
	assert_int_equal(ebb_swap_load(s, id, out), -EBADMSG);
	ebb_swap_get_stats(s, &st);
	assert_int_equal(st.nr_checksum_errors, 1);
	assert_int_equal(nr_errors_logged, 1);
	assert_int_equal(ebb_swap_test_corrupt_zpool(s, id, 0, 0xff), 0);
	assert_int_equal(ebb_swap_load(s, id, out), 0);
	assert_memory_equal(out, page, EBB_PAGE_SIZE);
	assert_int_equal(ebb_swap_test_corrupt_zpool(s, id, 1u << 20, 1), -ERANGE);
	ebb_swap_put(s, id);
	assert_int_equal(ebb_swap_test_corrupt_zpool(s, id, 0, 1), -ENOENT);

	nr_errors_logged = nr_undecodable_logged = nr_mismatch_logged = 0;
	nr_bad = flip_every_bit(s, page);
	if (codec == EBB_SWAP_CODEC_ZSTD) {
		nibble_page(page, 3);
		nr_bad += flip_every_bit(s, page);
	}
	/* Both outcomes happen: bytes that no longer decode, and bytes that
	 * decode to a wrong page that only the checksum catches. */
	assert_true(nr_undecodable_logged > 0);
	assert_true(nr_mismatch_logged > 0);
	assert_int_equal(nr_undecodable_logged + nr_mismatch_logged, nr_bad);
	assert_int_equal(nr_errors_logged, nr_bad);
	ebb_swap_destroy(s);
}

static void test_lz4_corruption_is_loud(void **state)
{
	(void)state;
	corrupt_compressed(EBB_SWAP_CODEC_LZ4);
}

static void test_zstd_corruption_is_loud(void **state)
{
	(void)state;
	corrupt_compressed(EBB_SWAP_CODEC_ZSTD);
}

/* A wrong stored hash is caught on load from the zstd tier too. */
static void test_zstd_checksum_verified(void **state)
{
	static unsigned char page[EBB_PAGE_SIZE], out[EBB_PAGE_SIZE];
	struct ebb_swap *s = mk_codec(EBB_SWAP_CODEC_ZSTD, 0, 1 << 20, 0);
	struct ebb_swap_stats st;
	uint32_t id;

	(void)state;
	nr_mismatch_logged = 0;
	text_page(page, 9);
	assert_int_equal(ebb_swap_store(s, page, ebb_swap_hash_page(page) ^ 1, true, &id), 0);
	assert_int_equal(ebb_swap_entry_tier(s, id), EBB_TIER_ZPOOL);
	assert_int_equal(ebb_swap_load(s, id, out), -EBADMSG);
	ebb_swap_get_stats(s, &st);
	assert_int_equal(st.nr_checksum_errors, 1);
	assert_int_equal(nr_mismatch_logged, 1);
	ebb_swap_destroy(s);
}

/* ---- a file tier on a small real file system ---- */

static uint64_t manual_clock_ns;

static uint64_t manual_clock(void *ctx)
{
	(void)ctx;
	return manual_clock_ns;
}

/*
 * ENOSPC with most of the file free: on a 1 MiB tmpfs a sparse 16 MiB file
 * fills the file system; freed slots are reused first and their ranges
 * punched out (batched), so a store after frees succeeds; a failed write does
 * not move the allocation cursor; "file full" is retried once space returns
 * (after the retry interval), never sticky; live vs allocated bytes are
 * reported.  Every stored page is loaded back and compared.
 */
static void test_small_fs_enospc(void **state)
{
	static unsigned char page[EBB_PAGE_SIZE], back[EBB_PAGE_SIZE];
	enum { NR_SLOTS = 4096, MAXP = 1200 };
	char dir[] = "/tmp/ebb-swap-fs-XXXXXX", ballast[64];
	uint32_t ids[MAXP];
	uint64_t seeds[MAXP];
	bool live[MAXP];
	struct ebb_swap_stats st;
	struct ebb_swap *s = NULL;
	int n = 0, ret = 0, fd;

	(void)state;
	if (geteuid() != 0) {
		print_message("# SKIP mounting a small tmpfs needs root\n");
		skip();
	}
	assert_non_null(mkdtemp(dir));
	if (mount("tmpfs", dir, "tmpfs", 0, "size=1m,mode=0700")) {
		print_message("# SKIP mount tmpfs: %s\n", strerror(errno));
		rmdir(dir);
		skip();
	}
	struct ebb_swap_cfg cfg = {
		.name = "smallfs", .dir = dir, .file_size_bytes = NR_SLOTS * EBB_PAGE_SIZE,
		.file_no_prealloc = true, .log = count_log,
		.clock_ns = manual_clock, .clock_ctx = NULL,
	};
	manual_clock_ns = 1000000000ULL;
	assert_int_equal(ebb_swap_create(&cfg, &s), 0);

	/* 1. Fill the file system. */
	while (n < MAXP) {
		seeds[n] = 5000 + (uint64_t)n;
		random_page(page, seeds[n]);
		ret = store(s, page, &ids[n]);
		if (ret)
			break;
		live[n++] = true;
	}
	assert_int_equal(ret, -ENOSPC);
	assert_true(n > 128 && n <= 256);
	ebb_swap_get_stats(s, &st);
	assert_true(st.nr_enospc >= 1);
	assert_true(ebb_swap_full(s, true));
	print_message("# full: %d pages live, %llu bytes allocated, nr_enospc %llu\n", n,
		      (unsigned long long)st.file_allocated_bytes, (unsigned long long)st.nr_enospc);

	/* 2. Free three in four; as many new pages must fit again. */
	int nfilled = n, nfreed = 0;

	for (int i = 0; i < nfilled; i++)
		if (i % 4) {
			ebb_swap_put(s, ids[i]);
			live[i] = false;
			nfreed++;
		}
	assert_false(ebb_swap_full(s, true));
	for (int k = 0; k < nfreed && n < MAXP; k++, n++) {
		seeds[n] = 90000 + (uint64_t)n;
		random_page(page, seeds[n]);
		assert_int_equal(store(s, page, &ids[n]), 0);
		live[n] = true;
	}
	ebb_swap_get_stats(s, &st);
	print_message("# after free+refill: %llu bytes live, %llu allocated, %llu slots punched, nr_enospc %llu\n",
		      (unsigned long long)st.file_bytes, (unsigned long long)st.file_allocated_bytes,
		      (unsigned long long)st.nr_punched_slots, (unsigned long long)st.nr_enospc);
	assert_true(st.file_allocated_bytes <= 1024 * 1024);

	/* 3. Free everything but a few; punched: allocated follows live. */
	for (int i = 0; i < n; i++)
		if (live[i] && i % 16) {
			ebb_swap_put(s, ids[i]);
			live[i] = false;
		}
	ebb_swap_get_stats(s, &st);
	print_message("# mostly freed: %llu bytes live, %llu allocated\n",
		      (unsigned long long)st.file_bytes, (unsigned long long)st.file_allocated_bytes);
	assert_true(st.file_allocated_bytes <= st.file_bytes + 256 * EBB_PAGE_SIZE);
	ebb_swap_trim(s);
	ebb_swap_get_stats(s, &st);
	print_message("# trimmed: %llu bytes live, %llu allocated\n",
		      (unsigned long long)st.file_bytes, (unsigned long long)st.file_allocated_bytes);
	assert_int_equal(st.file_allocated_bytes, st.file_bytes);

	/* 4. Someone else fills the file system: ENOSPC, and retried after
	 * the retry interval once they let go. */
	snprintf(ballast, sizeof(ballast), "%s/ballast", dir);
	fd = open(ballast, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	memset(back, 0x5a, sizeof(back));
	while (write(fd, back, sizeof(back)) == (ssize_t)sizeof(back))
		;
	close(fd);
	ret = 0;
	for (int k = 0; k < 300 && n < MAXP && ret == 0; k++) {
		seeds[n] = 300000 + (uint64_t)n;
		random_page(page, seeds[n]);
		ret = store(s, page, &ids[n]);
		if (ret == 0)
			live[n++] = true;
	}
	assert_int_equal(ret, -ENOSPC);
	assert_true(ebb_swap_full(s, true));
	unlink(ballast);
	manual_clock_ns += 5ULL * 1000000000ULL;
	assert_false(ebb_swap_full(s, true));
	for (int k = 0; k < 32 && n < MAXP; k++, n++) {
		seeds[n] = 400000 + (uint64_t)n;
		random_page(page, seeds[n]);
		assert_int_equal(store(s, page, &ids[n]), 0);
		live[n] = true;
	}

	/* 5. Everything live reads back right. */
	for (int i = 0; i < n; i++) {
		if (!live[i])
			continue;
		random_page(page, seeds[i]);
		assert_int_equal(ebb_swap_load(s, ids[i], back), 0);
		assert_memory_equal(back, page, EBB_PAGE_SIZE);
	}
	ebb_swap_destroy(s);
	assert_int_equal(umount(dir), 0);
	assert_int_equal(rmdir(dir), 0);
}

/* ---- encrypted file tier ---- */

struct capture {
	unsigned char last[EBB_PAGE_SIZE];
	bool flip;      /* flip a byte of what is read */
};

static struct capture cap;

static ssize_t cap_pwrite(void *ctx, int fd, const void *buf, size_t len, off_t off)
{
	(void)ctx;
	if (len == EBB_PAGE_SIZE)
		memcpy(cap.last, buf, len);
	return pwrite(fd, buf, len, off);
}

static ssize_t cap_pread(void *ctx, int fd, void *buf, size_t len, off_t off)
{
	ssize_t n = pread(fd, buf, len, off);

	(void)ctx;
	if (n > 0 && cap.flip)
		((unsigned char *)buf)[n / 2] ^= 0x10;
	return n;
}

/*
 * file_encrypt: what reaches the file is not the page (no 16-byte run of it
 * appears), two writes of the same page differ (fresh nonce), everything
 * reads back exactly, readahead runs decrypt, and a byte altered in the file
 * is -EBADMSG (counted, logged), never data.
 */
static void test_encrypted_file_tier(void **state)
{
	static unsigned char page[EBB_PAGE_SIZE], back[EBB_PAGE_SIZE * 4], first[EBB_PAGE_SIZE];
	static const struct ebb_swap_io cap_io = { cap_pwrite, cap_pread, NULL };
	struct ebb_swap_cfg cfg = {
		.name = "enc", .dir = tmpdir(), .file_size_bytes = 64 * EBB_PAGE_SIZE,
		.file_encrypt = true, .io = &cap_io, .log = count_log,
		.clock_ns = step_clock, .clock_ctx = &step_clock_ns,
	};
	struct ebb_swap_stats st;
	struct ebb_swap *s = NULL;
	uint32_t ids[8], dup;

	(void)state;
	memset(&cap, 0, sizeof(cap));
	assert_int_equal(ebb_swap_create(&cfg, &s), 0);
	for (int i = 0; i < 8; i++) {
		text_page(page, (uint64_t)i + 77);
		assert_int_equal(store(s, page, &ids[i]), 0);
		assert_int_equal(ebb_swap_entry_tier(s, ids[i]), EBB_TIER_FILE);
		/* Not one 16-byte run of the page is in what was written. */
		for (unsigned off = 0; off + 16 <= EBB_PAGE_SIZE; off += 16)
			for (unsigned k = 0; k + 16 <= EBB_PAGE_SIZE; k += 16)
				if (!memcmp(cap.last + k, page + off, 16))
					fail_msg("plaintext at %u found in the file at %u", off, k);
		if (i == 0)
			memcpy(first, cap.last, sizeof(first));
	}
	/* The same content stored again (after a free) is written differently. */
	text_page(page, 77);
	ebb_swap_put(s, ids[0]);
	assert_int_equal(store(s, page, &ids[0]), 0);
	assert_memory_not_equal(first, cap.last, EBB_PAGE_SIZE);
	for (int i = 0; i < 8; i++) {
		text_page(page, (uint64_t)i + 77);
		assert_int_equal(ebb_swap_load(s, ids[i], back), 0);
		assert_memory_equal(back, page, EBB_PAGE_SIZE);
	}
	/* Dedup still compares real content. */
	text_page(page, 80);
	assert_int_equal(store(s, page, &dup), 0);
	assert_int_equal(dup, ids[3]);
	ebb_swap_put(s, dup);
	/* Readahead over neighbouring slots decrypts each page. */
	assert_int_equal(ebb_swap_load_run(s, &ids[1], 4, back), 4);
	for (int i = 0; i < 4; i++) {
		text_page(page, (uint64_t)i + 78);
		assert_memory_equal(back + i * EBB_PAGE_SIZE, page, EBB_PAGE_SIZE);
	}
	/* Tampering: authentication fails, nothing is returned as data. */
	nr_errors_logged = 0;
	cap.flip = true;
	assert_int_equal(ebb_swap_load(s, ids[5], back), -EBADMSG);
	cap.flip = false;
	ebb_swap_get_stats(s, &st);
	assert_true(st.nr_checksum_errors >= 1);
	assert_true(nr_errors_logged >= 1);
	assert_int_equal(ebb_swap_load(s, ids[5], back), 0);
	ebb_swap_destroy(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_zero_page_refused),
		cmocka_unit_test(test_compressed_roundtrip_and_budget),
		cmocka_unit_test(test_zpool_overhead_counted),
		cmocka_unit_test(test_incompressible_goes_to_file),
		cmocka_unit_test(test_slot_allocator),
		cmocka_unit_test(test_small_fs_enospc),
		cmocka_unit_test(test_encrypted_file_tier),
		cmocka_unit_test(test_dedup),
		cmocka_unit_test(test_refcount_saturates),
		cmocka_unit_test(test_checksum_mismatch_is_loud),
		cmocka_unit_test(test_short_reads_and_io_errors),
		cmocka_unit_test(test_readahead_run),
		cmocka_unit_test(test_hash_properties),
		cmocka_unit_test(test_zstd_roundtrip),
		cmocka_unit_test(test_zstd_levels),
		cmocka_unit_test(test_bad_codec_and_level_refused),
		cmocka_unit_test(test_zstd_fits_what_lz4_cannot),
		cmocka_unit_test(test_lz4_corruption_is_loud),
		cmocka_unit_test(test_zstd_corruption_is_loud),
		cmocka_unit_test(test_zstd_checksum_verified),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
