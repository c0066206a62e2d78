/*
 * itest_reclaim_synthetic.c — the reclaim engine against a synthetic guest.
 *
 * Worker threads touch a 1 GiB anonymous region (EBB_ITEST_REGION_MB to
 * change) with a skewed pattern — 97% of accesses go to a 10% hot set (uniform
 * within it), the rest follow a power law (u^3) over the cold pages — while the region is limited
 * to 35% of its size (max) with background reclaim above 32% (high).  Page
 * contents are a mix: incompressible pages (file tier), compressible ones
 * (compressed tier), identical pages (dedup) and never-touched pages (zero).
 * Every access verifies the page's first word; writes bump a per-page version
 * and rewrite the page.
 *
 * Checks (TAP): residency measured with mincore() stays within max; after
 * warm-up >= 95% of hot-set accesses hit RAM with no fault; a full sweep
 * reads every page back bit-identical after many eviction/refault cycles;
 * the error counters stay at zero; the threads never deadlock (a watchdog
 * fails the test); destroy is clean while pages are still swapped out.
 * Needs userfaultfd with UFFDIO_MOVE (Linux 6.8+): exits 77 otherwise.
 */
#include "host-reclaim/region.h"
#include "tests/integration/tap.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define NW 4
#define PG 4096u
#define WORDS (PG / 8)

static uint8_t *mem;
static uint64_t nr_pages, hot_pages;
static uint32_t *ver;                 /* per-page version, owned by one worker */
static atomic_bool stop_workers, warm;
static atomic_int nr_filled;
static atomic_uint_fast64_t progress;   /* faults served + pages swept: for the watchdog */
static atomic_uint_fast64_t hot_faults, verify_errors;
static uint64_t hot_access[NW], accesses[NW];

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

enum kind { K_RANDOM, K_COMPRESSIBLE, K_DUP, K_NEVER };

static enum kind kind_of(uint64_t pfn)
{
	switch (pfn % 16) {
	case 0: case 8: return K_RANDOM;
	case 7: return K_DUP;
	case 15: return K_NEVER;
	default: return K_COMPRESSIBLE;
	}
}

/* Expected content of word @w of page @pfn at version @v. */
static uint64_t expect_word(uint64_t pfn, uint32_t v, unsigned w)
{
	switch (kind_of(pfn)) {
	case K_NEVER:
		return 0;
	case K_DUP:
		return w == 0 ? 0xD0D0D0D0ULL : mix(w);
	case K_RANDOM:
		return w == 0 ? (pfn << 32 | v) : mix(pfn * 4096 + v * 7 + w);
	case K_COMPRESSIBLE:
	default:
		if (w == 0)
			return pfn << 32 | v;
		return w < 64 ? mix(pfn * 4096 + v * 7 + w) : (pfn * 0x10001ULL);
	}
}

static void write_page(uint64_t pfn, uint32_t v)
{
	uint64_t *p = (uint64_t *)(mem + pfn * PG);
	unsigned n = kind_of(pfn) == K_RANDOM ? WORDS : 64;

	for (unsigned w = 1; w < n; w++)
		p[w] = expect_word(pfn, v, w);
	p[0] = expect_word(pfn, v, 0);
}

static void init_page(uint64_t pfn)
{
	uint64_t *p = (uint64_t *)(mem + pfn * PG);

	if (kind_of(pfn) == K_NEVER)
		return;
	for (unsigned w = 0; w < WORDS; w++)
		p[w] = expect_word(pfn, 0, w);
}

static uint64_t rng_next(uint64_t *s)
{
	*s = mix(*s);
	return *s;
}

static void *worker(void *arg)
{
	unsigned id = (unsigned)(uintptr_t)arg;
	uint64_t seed = 12345 + id;
	uint64_t cold = nr_pages - hot_pages;

	/* Initial fill of this worker's pages. */
	for (uint64_t pfn = id; pfn < nr_pages; pfn += NW)
		init_page(pfn);
	/*
	 * The fill pushed the hot set (the first pages) out long ago.  Warm-up
	 * part 1: touch this worker's hot pages twice, so the measurement is
	 * about keeping the hot set resident, not about how fast a loaded
	 * machine can fault it back in.
	 */
	for (int pass = 0; pass < 2; pass++)
		for (uint64_t pfn = id; pfn < hot_pages; pfn += NW)
			if (((volatile uint64_t *)(mem + pfn * PG))[0] != expect_word(pfn, ver[pfn], 0))
				atomic_fetch_add(&verify_errors, 1);
	atomic_fetch_add(&nr_filled, 1);
	while (!atomic_load(&stop_workers)) {
		uint64_t r = rng_next(&seed), pfn;
		bool hot = (r % 100) < 97;

		if (hot) {
			pfn = (rng_next(&seed) % (hot_pages / NW)) * NW + id;
		} else {
			double u = (double)(rng_next(&seed) >> 11) / 9007199254740992.0;
			uint64_t idx = (uint64_t)((double)(cold / NW) * u * u * u);

			pfn = hot_pages + idx * NW + id;
			pfn -= pfn % NW;
			pfn += id;
			if (pfn >= nr_pages)
				continue;
		}
		if (hot && atomic_load_explicit(&warm, memory_order_relaxed))
			hot_access[id]++;
		accesses[id]++;
		volatile uint64_t *p = (volatile uint64_t *)(mem + pfn * PG);
		uint64_t w0 = p[0];

		if (w0 != expect_word(pfn, ver[pfn], 0))
			atomic_fetch_add(&verify_errors, 1);
		enum kind k = kind_of(pfn);

		if ((k == K_RANDOM || k == K_COMPRESSIBLE) && (r >> 32) % 2 == 0) {
			ver[pfn]++;
			write_page(pfn, ver[pfn]);
		}
	}
	return NULL;
}

static void on_fault(void *ctx, uint64_t pfn, bool major)
{
	(void)ctx;
	(void)major;
	atomic_fetch_add_explicit(&progress, 1, memory_order_relaxed);
	if (pfn < hot_pages && atomic_load_explicit(&warm, memory_order_relaxed))
		atomic_fetch_add(&hot_faults, 1);
}

static uint64_t max_mincore, max_mincore_raw;
static atomic_bool stop_monitor;
static struct ebb_region *region;

static uint64_t pages_brought_in(void)
{
	struct ebb_region_counters c;

	ebb_region_get_counters(region, &c);
	return c.nr_faults + c.nr_readahead;
}

/*
 * Residency as the kernel sees it.  mincore() over a big range is not
 * atomic (it drops the mmap lock between chunks), so while faults go on it
 * can count a page evicted after its chunk was read and a page brought in
 * before its chunk was read.  The over-count is bounded by the pages brought
 * in during the call (faults + readahead, from the engine's counters read
 * before and after): subtracting that gives an upper bound of what was ever
 * present at one instant.  Both figures are reported.
 */
static void *monitor(void *arg)
{
	unsigned char *vec = malloc(nr_pages);

	(void)arg;
	while (!atomic_load(&stop_monitor)) {
		uint64_t n = 0, in0 = pages_brought_in(), in1;

		if (vec && mincore(mem, nr_pages * PG, vec) == 0) {
			in1 = pages_brought_in();
			for (uint64_t i = 0; i < nr_pages; i++)
				n += vec[i] & 1;
			if (n > max_mincore_raw)
				max_mincore_raw = n;
			n = n > in1 - in0 ? n - (in1 - in0) : 0;
			if (n > max_mincore)
				max_mincore = n;
		}
		usleep(50000);
	}
	free(vec);
	return NULL;
}

static atomic_int phase;

/*
 * Deadlock watchdog: fails the test if nothing at all happens (no fault
 * served, no page swept) for limit_s seconds.  Progress-based, not a total
 * time limit: on a loaded machine the test is slow but moving.
 */
static void *watchdog(void *arg)
{
	int limit_s = (int)(intptr_t)arg;
	uint64_t last = 0;
	int idle_ds = 0;

	while (atomic_load(&phase) != 99) {
		usleep(100000);
		uint64_t now = atomic_load(&progress);

		if (now != last || atomic_load(&phase) == 2) {
			last = now;
			idle_ds = 0;
			continue;
		}
		if (++idle_ds >= limit_s * 10) {
			printf("not ok %d - watchdog: no fault served and no page swept for %d s in phase %d (deadlock?)\n",
			       tap_n + 1, limit_s, atomic_load(&phase));
			fflush(stdout);
			_exit(1);
		}
	}
	return NULL;
}

static void log_cb(void *ctx, enum ebb_log_level lvl, const char *msg)
{
	(void)ctx;
	if (lvl <= EBB_LOG_WARN)
		printf("# log[%d] %s\n", lvl, msg);
}

int main(void)
{
	const char *mb_env = getenv("EBB_ITEST_REGION_MB");
	const char *dir = getenv("EBB_SWAP_DIR") ? getenv("EBB_SWAP_DIR") : "/var/tmp";
	uint64_t size = (mb_env ? strtoull(mb_env, NULL, 10) : 1024) << 20;
	struct ebb_region_cfg cfg;
	struct ebb_region *r;
	struct ebb_region_counters c;
	pthread_t th[NW], mon, wd;
	uint64_t t0;
	int ret;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if ((ret = ebb_region_probe(NULL)) != 0) {
		printf("1..0 # SKIP userfaultfd without UFFDIO_MOVE here (%s)\n", strerror(-ret));
		printf("needs userfaultfd UFFD_FEATURE_MOVE (Linux 6.8+): %s\n", strerror(-ret));
		return 77;
	}
	printf("1..11\n");
	nr_pages = size / PG;
	hot_pages = nr_pages / 10;
	hot_pages -= hot_pages % NW;
	mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	ver = calloc(nr_pages, sizeof(*ver));
	if (mem == MAP_FAILED || !ver) {
		printf("Bail out! no memory\n");
		return 1;
	}
	ebb_region_cfg_init(&cfg);
	cfg.name = "synthetic";
	cfg.base = mem;
	cfg.size_bytes = size;
	cfg.max_pages = nr_pages * 35 / 100;
	cfg.high_pages = nr_pages * 32 / 100;
	cfg.nr_threads = NW;
	cfg.swap.zpool_budget_bytes = size / 10;
	cfg.swap.dir = dir;
	cfg.swap.file_size_bytes = size;
	cfg.on_fault = on_fault;
	cfg.log = log_cb;
	/* EBB_ITEST_EVICT=wp: the fallback for kernels without UFFDIO_MOVE. */
	if (getenv("EBB_ITEST_EVICT") && strcmp(getenv("EBB_ITEST_EVICT"), "wp") == 0)
		cfg.evict_mode = EBB_EVICT_WP;
	ret = ebb_region_create(&cfg, &r);
	region = r;
	ok(ret == 0, "region of %llu MiB created (max %llu pages, high %llu, swap file in %s, %s eviction): %s",
	   (unsigned long long)(size >> 20), (unsigned long long)cfg.max_pages,
	   (unsigned long long)cfg.high_pages, dir, cfg.evict_mode == EBB_EVICT_WP ? "uffd-wp" : "auto",
	   ret ? strerror(-ret) : "ok");
	if (ret)
		return 1;
	pthread_create(&wd, NULL, watchdog, (void *)(intptr_t)60);
	ebb_region_start(r);
	pthread_create(&mon, NULL, monitor, NULL);

	t0 = now_ns();
	atomic_store(&phase, 1);
	for (unsigned i = 0; i < NW; i++)
		pthread_create(&th[i], NULL, worker, (void *)(uintptr_t)i);
	/* Initial fill, warm-up, then the measured phase. */
	while (atomic_load(&nr_filled) < NW)
		usleep(10000);
	printf("# initial fill of %llu MiB and hot-set warm-up sweep took %.1f s\n",
	       (unsigned long long)(size >> 20), (double)(now_ns() - t0) / 1e9);
	sleep(4);
	uint64_t hot_acc0 = 0;

	for (unsigned i = 0; i < NW; i++)
		hot_acc0 += hot_access[i];
	atomic_store(&warm, true);
	atomic_store(&phase, 2);
	sleep(8);
	atomic_store(&stop_workers, true);
	for (unsigned i = 0; i < NW; i++)
		pthread_join(th[i], NULL);
	uint64_t hot_acc = 0, acc = 0;

	for (unsigned i = 0; i < NW; i++) {
		hot_acc += hot_access[i];
		acc += accesses[i];
	}
	(void)hot_acc0;
	ebb_region_get_counters(r, &c);
	ok(acc > 0, "workload ran: %llu accesses in %.1f s, %llu faults (%llu major), %llu swapped in",
	   (unsigned long long)acc, (double)(now_ns() - t0) / 1e9, (unsigned long long)c.nr_faults,
	   (unsigned long long)c.nr_major_faults, (unsigned long long)c.nr_swapped_in);
	double hit = hot_acc ? 1.0 - (double)atomic_load(&hot_faults) / (double)hot_acc : 0;

	ok(hot_acc > 0 && hit >= 0.95, "hot-set accesses hitting RAM without a fault after warm-up: %.4f (%llu faults / %llu accesses)",
	   hit, (unsigned long long)atomic_load(&hot_faults), (unsigned long long)hot_acc);
	ok(atomic_load(&verify_errors) == 0, "no wrong first word seen by workers during the run (%llu)",
	   (unsigned long long)atomic_load(&verify_errors));

	/* Sweep: every page, every word, against the model. */
	atomic_store(&phase, 3);
	uint64_t bad_pages = 0, first_bad = UINT64_MAX;

	for (uint64_t pfn = 0; pfn < nr_pages; pfn++) {
		const uint64_t *p = (const uint64_t *)(mem + pfn * PG);

		atomic_fetch_add_explicit(&progress, 1, memory_order_relaxed);
		for (unsigned w = 0; w < WORDS; w++) {
			if (p[w] != expect_word(pfn, ver[pfn], w)) {
				if (first_bad == UINT64_MAX)
					first_bad = pfn;
				bad_pages++;
				break;
			}
		}
	}
	atomic_store(&stop_monitor, true);
	pthread_join(mon, NULL);
	ebb_region_get_counters(r, &c);
	ok(bad_pages == 0, "full sweep: every page of %llu bit-identical (%llu bad, first %lld)",
	   (unsigned long long)nr_pages, (unsigned long long)bad_pages,
	   first_bad == UINT64_MAX ? -1LL : (long long)first_bad);
	ok(max_mincore <= cfg.max_pages,
	   "region residency by mincore stayed within max: peak %llu pages <= %llu (raw mincore peak %llu, before discounting pages brought in during the scan)",
	   (unsigned long long)max_mincore, (unsigned long long)cfg.max_pages,
	   (unsigned long long)max_mincore_raw);
	ok(c.resident_pages <= cfg.max_pages && c.nr_max_overrun == 0,
	   "engine's resident count %llu <= max %llu, %llu grants over max",
	   (unsigned long long)c.resident_pages, (unsigned long long)cfg.max_pages,
	   (unsigned long long)c.nr_max_overrun);
	ok(c.nr_swapped_in > nr_pages / 4 && c.nr_refaults > 0,
	   "many eviction/refault cycles: %llu swapped out, %llu swapped in, %llu clean drops, %llu refaults (%llu activated, %llu thrash)",
	   (unsigned long long)c.nr_swapped_out, (unsigned long long)c.nr_swapped_in,
	   (unsigned long long)c.nr_clean_dropped, (unsigned long long)c.nr_refaults,
	   (unsigned long long)c.nr_refault_activate, (unsigned long long)c.nr_refault_thrash);
	ok(c.compressed_pages > 0 && c.file_pages > 0 && c.dedup_saved_bytes > 0 && c.nr_zero_in + c.zero_pages > 0,
	   "tiers used: compressed %llu pages in %llu bytes, file %llu pages, dedup saved %llu bytes, %llu incompressible, zero pages %llu",
	   (unsigned long long)c.compressed_pages, (unsigned long long)c.compressed_bytes,
	   (unsigned long long)c.file_pages, (unsigned long long)c.dedup_saved_bytes,
	   (unsigned long long)c.nr_incompressible, (unsigned long long)c.zero_pages);
	ok(c.nr_errors == 0 && c.nr_lost_pages == 0, "no errors (%llu) and no lost pages (%llu)",
	   (unsigned long long)c.nr_errors, (unsigned long long)c.nr_lost_pages);
	printf("# metadata: %llu bytes for %llu pages = %.2f bytes/page (page table %zu bytes/page)\n",
	       (unsigned long long)c.metadata_bytes, (unsigned long long)nr_pages,
	       (double)c.metadata_bytes / (double)nr_pages, sizeof(struct ebb_page));
	struct ebb_psi_stats ps;

	ebb_region_get_psi(r, &ps);
	printf("# pressure: some avg10 %.2f%% full avg10 %.2f%%, some total %.3f s, full total %.3f s\n",
	       ps.some_avg10, ps.full_avg10, (double)ps.some_total_ns / 1e9, (double)ps.full_total_ns / 1e9);

	atomic_store(&phase, 4);
	uint64_t swapped = c.swapped_pages, td = now_ns();

	ebb_region_destroy(r);
	ok(swapped > 0, "clean shutdown with %llu pages still swapped out, destroy took %.1f ms",
	   (unsigned long long)swapped, (double)(now_ns() - td) / 1e6);
	atomic_store(&phase, 99);
	pthread_join(wd, NULL);
	munmap(mem, size);
	free(ver);
	return 0;
}
