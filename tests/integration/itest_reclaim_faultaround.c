/*
 * itest_reclaim_faultaround.c — fault-around of empty memory
 * (host-reclaim/region_fault.c, fault_around()) on real memory:
 *   - a write fault on a never-touched page installs its aligned block of
 *     fault_around_pages in one round trip (mincore and the counters agree),
 *     and the block reads as zeroes but for what was written;
 *   - a sequential first write of N pages costs N / block faults;
 *   - pages given back (the balloon, free page reporting) are empty too and
 *     come back with the block; pages evicted by reclaim and read faults
 *     are left alone; nothing is installed beyond high / max;
 *   - four threads writing into the same fresh blocks at once lose nothing;
 *   - after a full reclaim every page comes back bit-identical (a checksum
 *     of the whole region before and after);
 *   - fault_around_pages 1 turns it off; a value that is not a power of two
 *     or above EBB_FAULT_AROUND_MAX is refused.
 * Faults are served by the region's own handler thread (ebb_region_start).
 */
#include "host-reclaim/region.h"
#include "tests/integration/reclaim_util.h"
#include "tests/integration/tap.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PG 4096u
#define NR 1024u
#define BLK 16u

static uint8_t *mem;

static uint64_t resident_mincore(uint64_t from, uint64_t to)
{
	return mincore_pages(mem, from, to);
}

static uint64_t sum_region(void)
{
	uint64_t h = 0;

	for (uint64_t i = 0; i < (uint64_t)NR * PG / 8; i++)
		h = mix(h ^ ((const uint64_t *)mem)[i]) + i;
	return h;
}

static uint64_t nonzero_pages(uint64_t from, uint64_t to)
{
	uint64_t n = 0;

	for (uint64_t pfn = from; pfn < to; pfn++)
		for (unsigned w = 0; w < PG / 8; w++)
			if (((const uint64_t *)(mem + pfn * PG))[w]) {
				n++;
				break;
			}
	return n;
}

/* Four writers into the same fresh blocks: each writes its own word of every
 * page of pages [from, to), so the blocks fault from all four at once. */
struct writer {
	uint64_t from, to;
	unsigned id;
};

static void *writer(void *arg)
{
	const struct writer *w = arg;

	for (uint64_t pfn = w->from; pfn < w->to; pfn++)
		((uint64_t *)(mem + pfn * PG))[w->id * 64] = mix(pfn * 8 + w->id);
	return NULL;
}

static struct ebb_region *make_region(uint32_t around, uint64_t max_pages, int *err)
{
	struct ebb_region_cfg cfg;
	struct ebb_region *r = NULL;

	ebb_region_cfg_init(&cfg);
	cfg.name = "faultaround";
	cfg.base = mem;
	cfg.size_bytes = (uint64_t)NR * PG;
	cfg.readahead_pages = 1;
	cfg.fault_around_pages = around;
	cfg.max_pages = max_pages;
	cfg.high_pages = max_pages;
	cfg.swap.zpool_budget_bytes = 16ULL << 20;
	*err = ebb_region_create(&cfg, &r);
	if (*err)
		return NULL;
	*err = ebb_region_start(r);
	if (*err) {
		ebb_region_destroy(r);
		return NULL;
	}
	return r;
}

static void fresh_mem(void)
{
	if (mem)
		munmap(mem, (size_t)NR * PG);
	mem = mmap(NULL, (size_t)NR * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED) {
		printf("Bail out! mmap: %s\n", strerror(errno));
		exit(1);
	}
}

int main(void)
{
	struct ebb_region_counters c0, c1;
	struct ebb_region *r;
	struct writer w[4];
	pthread_t th[4];
	uint64_t sum0, sum1;
	int err;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if ((err = ebb_region_probe(NULL)) != 0) {
		printf("needs userfaultfd eviction support (MOVE or WP): %s\n", strerror(-err));
		return 77;
	}
	printf("1..12\n");
	fresh_mem();
	r = make_region(BLK, 0, &err);
	if (!r) {
		printf("Bail out! region: %s\n", strerror(-err));
		return 1;
	}

	/* 1: one write in a fresh block installs the block. */
	ebb_region_get_counters(r, &c0);
	mem[37 * PG + 5] = 0xa5;
	ebb_region_get_counters(r, &c1);
	ok(c1.nr_faults - c0.nr_faults == 1 && c1.nr_fault_around - c0.nr_fault_around == BLK - 1 &&
	   c1.resident_pages == BLK && resident_mincore(32, 48) == BLK &&
	   resident_mincore(0, 32) == 0 && resident_mincore(48, NR) == 0,
	   "a write to page 37 installs block 32..47: %llu fault, %llu around, %llu resident "
	   "(mincore: %llu in the block, %llu outside)",
	   (unsigned long long)(c1.nr_faults - c0.nr_faults),
	   (unsigned long long)(c1.nr_fault_around - c0.nr_fault_around),
	   (unsigned long long)c1.resident_pages, (unsigned long long)resident_mincore(32, 48),
	   (unsigned long long)(resident_mincore(0, 32) + resident_mincore(48, NR)));
	ok(mem[37 * PG + 5] == 0xa5 && nonzero_pages(32, 48) == 1,
	   "the block reads as zeroes but for the byte written (%llu non-zero pages)",
	   (unsigned long long)nonzero_pages(32, 48));

	/* 2: a sequential first write of 64 pages: 4 faults. */
	ebb_region_get_counters(r, &c0);
	for (uint64_t pfn = 64; pfn < 128; pfn++)
		memset(mem + pfn * PG, (int)(pfn & 0xff) | 1, PG);
	ebb_region_get_counters(r, &c1);
	ok(c1.nr_faults - c0.nr_faults == 64 / BLK,
	   "writing pages 64..127 in order: %llu faults (want %u)",
	   (unsigned long long)(c1.nr_faults - c0.nr_faults), 64 / BLK);

	/* 3: pages given back (the balloon, free page reporting) are empty too. */
	ebb_region_mark_ballooned(r, 130, 2);
	mem[128 * PG] = 1;
	ok(ebb_region_page_state(r, 130) == EBB_PAGE_RESIDENT &&
	   ebb_region_page_state(r, 131) == EBB_PAGE_RESIDENT && resident_mincore(128, 144) == BLK &&
	   nonzero_pages(128, 144) == 1,
	   "ballooned pages 130-131 come back with block 128..143: %llu resident, %llu non-zero",
	   (unsigned long long)resident_mincore(128, 144), (unsigned long long)nonzero_pages(128, 144));

	/* 4: pages evicted by reclaim are cold: they stay out. */
	mem[160 * PG] = 1;
	reclaim_all(r, NR);
	ebb_region_get_counters(r, &c0);
	mem[161 * PG] = 2;
	ebb_region_get_counters(r, &c1);
	ok(c0.resident_pages == 0 && ebb_region_page_state(r, 162) == EBB_PAGE_ZERO &&
	   c1.nr_fault_around == c0.nr_fault_around && resident_mincore(160, 176) == 1 &&
	   mem[160 * PG] == 1,
	   "after a full reclaim a write to page 161 brings in that page only (%llu of block 160..175 resident, %llu around)",
	   (unsigned long long)resident_mincore(160, 176),
	   (unsigned long long)(c1.nr_fault_around - c0.nr_fault_around));

	/* 5: a read fault installs nothing around. */
	ebb_region_get_counters(r, &c0);
	sum0 = *(volatile uint64_t *)(mem + 200 * PG);
	ebb_region_get_counters(r, &c1);
	ok(sum0 == 0 && c1.nr_fault_around == c0.nr_fault_around && resident_mincore(192, 208) <= 1,
	   "a read of never-touched page 200 reads zero and installs nothing around (%llu resident in its block)",
	   (unsigned long long)resident_mincore(192, 208));

	/* 6: four threads into the same fresh blocks. */
	for (unsigned i = 0; i < 4; i++) {
		w[i] = (struct writer){ .from = 256, .to = 512, .id = i };
		pthread_create(&th[i], NULL, writer, &w[i]);
	}
	for (unsigned i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	{
		uint64_t bad = 0;

		for (uint64_t pfn = 256; pfn < 512; pfn++)
			for (unsigned i = 0; i < 4; i++)
				bad += ((uint64_t *)(mem + pfn * PG))[i * 64] != mix(pfn * 8 + i);
		ebb_region_get_counters(r, &c1);
		ok(bad == 0 && c1.nr_lost_pages == 0,
		   "four writers into blocks 256..511 at once: %llu bad words, %llu lost pages, %llu spurious faults",
		   (unsigned long long)bad, (unsigned long long)c1.nr_lost_pages,
		   (unsigned long long)c1.nr_spurious);
	}

	/* 7: everything out and back in, bit-identical. */
	sum0 = sum_region();
	reclaim_all(r, NR);
	ebb_region_get_counters(r, &c0);
	sum1 = sum_region();
	ebb_region_get_counters(r, &c1);
	ok(c0.resident_pages == 0 && sum1 == sum0 && c1.nr_lost_pages == 0,
	   "full reclaim (%llu resident after it, %llu zero pages not stored), read back: checksum %s",
	   (unsigned long long)c0.resident_pages, (unsigned long long)c0.nr_zero_out,
	   sum1 == sum0 ? "identical" : "DIFFERS");
	ebb_region_stop(r);
	ebb_region_destroy(r);

	/* 8: at max, one page per fault. */
	fresh_mem();
	r = make_region(BLK, 8, &err);
	if (!r) {
		printf("Bail out! region with max: %s\n", strerror(-err));
		return 1;
	}
	mem[0] = 1;
	mem[3 * PG] = 1;
	ebb_region_get_counters(r, &c1);
	ok(c1.nr_fault_around == 0 && c1.resident_pages <= 8,
	   "max 8 pages: a block of 16 would pass it, so %llu around, %llu resident",
	   (unsigned long long)c1.nr_fault_around, (unsigned long long)c1.resident_pages);
	ebb_region_stop(r);
	ebb_region_destroy(r);

	/* 9: off. */
	fresh_mem();
	r = make_region(1, 0, &err);
	if (!r) {
		printf("Bail out! region without fault-around: %s\n", strerror(-err));
		return 1;
	}
	for (uint64_t pfn = 0; pfn < 64; pfn++)
		mem[pfn * PG] = 1;
	ebb_region_get_counters(r, &c1);
	ok(c1.nr_faults == 64 && c1.nr_fault_around == 0,
	   "fault_around_pages 1: 64 pages written, %llu faults, %llu around",
	   (unsigned long long)c1.nr_faults, (unsigned long long)c1.nr_fault_around);
	ebb_region_stop(r);
	ebb_region_destroy(r);

	/* 10, 11: bad sizes refused. */
	r = make_region(3, 0, &err);
	ok(!r && err == -EINVAL, "fault_around_pages 3 (not a power of two) refused: %s",
	   r ? "accepted" : strerror(-err));
	if (r) {
		ebb_region_stop(r);
		ebb_region_destroy(r);
	}
	r = make_region(EBB_FAULT_AROUND_MAX * 2, 0, &err);
	ok(!r && err == -EINVAL, "fault_around_pages %u (above the largest) refused: %s",
	   EBB_FAULT_AROUND_MAX * 2, r ? "accepted" : strerror(-err));
	if (r) {
		ebb_region_stop(r);
		ebb_region_destroy(r);
	}
	return tap_failed ? 1 : 0;
}
