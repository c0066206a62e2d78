/*
 * itest_reclaim_api.c — the region API on real memory, driven step by step:
 *   - dirty tracking (PAGEMAP_SCAN + WP_ASYNC) feeds the LRU: pages read
 *     after swap-in stay in the clean class and are dropped again with no
 *     store write; written pages move to the dirty class and are stored anew;
 *   - refaults are counted (workingset) and evicted pages come back intact;
 *   - the balloon call releases resident pages (mincore), they read as zero;
 *     out-of-range and overflowing PFN ranges are refused;
 *   - unevictable pages survive a full reclaim;
 *   - ebb_region_step() with an injected clock: aging only when the interval
 *     has passed, background reclaim toward high in bounded batches;
 *   - pressure: fault stall time is accounted;
 *   - the idle page tracking source, where the kernel has it (skipped here).
 * Faults are served by a plain thread calling ebb_region_handle_faults().
 */
#include "host-reclaim/refsrc.h"
#include "host-reclaim/region.h"
#include "tests/integration/reclaim_util.h"
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

#define PG 4096u
#define NR 4096u

static uint8_t *mem;
static atomic_bool stop;
static uint64_t fake_now = 1000000000ULL;

/* The injected clock: advances 100 ns per reading, so stall intervals in
 * the fault handler are non-zero but the test controls the big steps. */
static uint64_t clock_fn(void *ctx)
{
	(void)ctx;
	return __atomic_add_fetch(&fake_now, 100, __ATOMIC_RELAXED);
}

static void *handler(void *arg)
{
	struct ebb_region *r = arg;

	while (!atomic_load(&stop))
		ebb_region_handle_faults(r, 20);
	return NULL;
}

/* Counts what the engine logs at WARN and above (test 16). */
static atomic_uint nr_warned;
static char first_warning[256];

static void counting_log(void *ctx, enum ebb_log_level lvl, const char *msg)
{
	(void)ctx;
	if (lvl <= EBB_LOG_WARN && atomic_fetch_add(&nr_warned, 1) == 0)
		snprintf(first_warning, sizeof(first_warning), "%s", msg);
}

/*
 * A fake accessed-bit source (tests 17-19): reports pages [0, 64) used,
 * burns ~20 ms of its thread's CPU as a dear harvest does, and in its first
 * call has another thread touch a page that is not resident — a fault the
 * handler can only serve with the region's lock — and waits up to 2 s for
 * it.  Harvested under the lock, that fault would wait for the harvest.
 */
static atomic_uint acc_calls;
static atomic_bool acc_fault_served_during;
static atomic_int acc_fault_state;   /* 0 idle, 1 asked, 2 served */
static uint64_t acc_fault_pfn;

static uint64_t thread_cpu(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void *acc_toucher(void *arg)
{
	(void)arg;
	while (atomic_load(&acc_fault_state) != 1)
		usleep(1000);
	(void)*(volatile uint8_t *)(mem + acc_fault_pfn * PG);
	atomic_store(&acc_fault_state, 2);
	return NULL;
}

static int acc_harvest(void *ctx, uint64_t nr_pages, uint64_t *bitmap)
{
	uint64_t t0 = thread_cpu();

	(void)ctx;
	if (nr_pages >= 64)
		bitmap[0] = ~0ULL;
	if (atomic_fetch_add(&acc_calls, 1) == 0) {
		atomic_store(&acc_fault_state, 1);
		for (int i = 0; i < 2000 && atomic_load(&acc_fault_state) != 2; i++)
			usleep(1000);
		atomic_store(&acc_fault_served_during, atomic_load(&acc_fault_state) == 2);
	}
	while (thread_cpu() - t0 < 20ULL * 1000 * 1000)
		;
	return 0;
}

static const struct ebb_refsrc_ops acc_ops = {
	.name = "fake-accessed", .kind = EBB_REF_ACCESSED, .harvest = acc_harvest,
};

/* The settings the regions of this test share, over mem. */
static void cfg_over_mem(struct ebb_region_cfg *cfg, const char *name)
{
	ebb_region_cfg_init(cfg);
	cfg->name = name;
	cfg->base = mem;
	cfg->size_bytes = (uint64_t)NR * PG;
	cfg->aging_interval_ns = 100ULL * 1000 * 1000;
	cfg->reclaim_batch_pages = 64;
	cfg->swap.zpool_budget_bytes = 64ULL << 20;
}

static uint64_t word(uint64_t pfn, unsigned w, unsigned gen)
{
	return (pfn << 20) ^ ((uint64_t)w << 4) ^ gen ^ 0x5a5a5a5a00000000ULL;
}

static void write_pages(uint64_t from, uint64_t to, unsigned gen)
{
	for (uint64_t pfn = from; pfn < to; pfn++) {
		uint64_t *p = (uint64_t *)(mem + pfn * PG);

		for (unsigned w = 0; w < PG / 8; w++)
			p[w] = word(pfn, w, gen);
	}
}

static uint64_t check_pages(uint64_t from, uint64_t to, const unsigned *gen)
{
	uint64_t bad = 0;

	for (uint64_t pfn = from; pfn < to; pfn++) {
		/* volatile: the sweep must really touch memory even if unused */
		const volatile uint64_t *p = (const volatile uint64_t *)(mem + pfn * PG);

		for (unsigned w = 0; w < PG / 8; w++)
			if (p[w] != word(pfn, w, gen[pfn])) {
				bad++;
				break;
			}
	}
	return bad;
}

static uint64_t resident_mincore(uint64_t from, uint64_t to)
{
	return mincore_pages(mem, from, to);
}

int main(void)
{
	static unsigned gen[NR];
	struct ebb_region_cfg cfg;
	struct ebb_region_counters c0, c1;
	struct ebb_region *r;
	pthread_t th;
	int ret;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if ((ret = ebb_region_probe(NULL)) != 0) {
		printf("needs userfaultfd UFFD_FEATURE_MOVE (Linux 6.8+): %s\n", strerror(-ret));
		return 77;
	}
	printf("1..19\n");
	mem = mmap(NULL, (size_t)NR * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	cfg_over_mem(&cfg, "api");
	cfg.clock_ns = clock_fn;
	cfg.readahead_pages = 1;
	ret = ebb_region_create(&cfg, &r);
	if (ret) {
		printf("Bail out! create: %s\n", strerror(-ret));
		return 1;
	}
	pthread_create(&th, NULL, handler, r);

	write_pages(0, NR, 0);
	ebb_region_age(r);
	reclaim_all(r, NR);
	ebb_region_get_counters(r, &c0);
	ok(c0.resident_pages == 0 && c0.nr_swapped_out == NR && resident_mincore(0, NR) == 0,
	   "full reclaim: %llu stored, %llu resident by the engine, %llu by mincore",
	   (unsigned long long)c0.nr_swapped_out, (unsigned long long)c0.resident_pages,
	   (unsigned long long)resident_mincore(0, NR));

	/* Read everything back: swapped in, copies kept (clean). */
	uint64_t bad = check_pages(0, NR, gen);

	ebb_region_age(r);
	ebb_region_get_counters(r, &c1);
	ok(bad == 0 && c1.nr_swapped_in == NR && c1.clean_pages == NR,
	   "read back intact (%llu bad); %llu swapped in, %llu pages in the clean class",
	   (unsigned long long)bad, (unsigned long long)c1.nr_swapped_in,
	   (unsigned long long)c1.clean_pages);
	ok(c1.nr_refaults == NR, "every swap-in of an evicted page counted as a refault (%llu)",
	   (unsigned long long)c1.nr_refaults);

	/* Write half: the dirty source moves them to the dirty class. */
	for (uint64_t pfn = 0; pfn < NR / 2; pfn++)
		gen[pfn] = 1;
	write_pages(0, NR / 2, 1);
	ebb_region_age(r);
	ebb_region_get_counters(r, &c0);
	ok(c0.clean_pages == NR / 2, "after writing half and one harvest: %llu clean pages (want %u)",
	   (unsigned long long)c0.clean_pages, NR / 2);
	reclaim_all(r, NR);
	ebb_region_get_counters(r, &c1);
	/* Nearly all of each half goes (a few may sit on the active list);
	 * the point: no clean page is written, and no dirty page is dropped. */
	ok(c1.nr_clean_dropped - c0.nr_clean_dropped >= NR / 2 * 9 / 10 &&
	   c1.nr_clean_dropped - c0.nr_clean_dropped <= NR / 2 &&
	   c1.nr_swapped_out - c0.nr_swapped_out >= NR / 2 * 9 / 10 &&
	   c1.nr_swapped_out - c0.nr_swapped_out <= NR / 2,
	   "reclaim: %llu clean pages dropped with no write, %llu dirty pages stored "
	   "(left: %llu active, %llu inactive, %llu clean)",
	   (unsigned long long)(c1.nr_clean_dropped - c0.nr_clean_dropped),
	   (unsigned long long)(c1.nr_swapped_out - c0.nr_swapped_out),
	   (unsigned long long)c1.active_pages, (unsigned long long)c1.inactive_pages,
	   (unsigned long long)c1.clean_pages);
	bad = check_pages(0, NR, gen);
	ok(bad == 0, "both halves read back right after the second cycle (%llu bad)", (unsigned long long)bad);

	/* Balloon. */
	ok(ebb_region_mark_ballooned(r, NR - 1, 2) == -ERANGE &&
	   ebb_region_mark_ballooned(r, UINT64_MAX - 1, 4) == -ERANGE &&
	   ebb_region_mark_ballooned(r, 0, 0) == -ERANGE,
	   "balloon ranges out of the region or overflowing are refused");
	uint64_t before = resident_mincore(0, 256);

	ret = ebb_region_mark_ballooned(r, 0, 256);
	ebb_region_get_counters(r, &c0);
	uint64_t after = resident_mincore(0, 256);
	uint64_t nonzero = 0;

	for (uint64_t i = 0; i < 256 * PG / 8; i++)
		nonzero += ((uint64_t *)mem)[i] != 0;
	ok(ret == 0 && before == 256 && after == 0 && c0.ballooned_pages == 256 && nonzero == 0,
	   "balloon: 256 pages released (mincore %llu -> %llu), ballooned %llu, read back as zero (%llu nonzero words)",
	   (unsigned long long)before, (unsigned long long)after,
	   (unsigned long long)c0.ballooned_pages, (unsigned long long)nonzero);
	for (uint64_t pfn = 0; pfn < 256; pfn++)
		gen[pfn] = 7;
	write_pages(0, 256, 7);

	/* Unevictable. */
	ebb_region_set_unevictable(r, 300, 10, true);
	reclaim_all(r, NR);
	uint64_t pinned = resident_mincore(300, 310);

	ebb_region_set_unevictable(r, 300, 10, false);
	ok(pinned == 10, "10 unevictable pages survived a full reclaim (%llu resident)",
	   (unsigned long long)pinned);

	/* Step function with the injected clock. */
	check_pages(0, NR, gen);   /* everything resident again */
	ebb_region_get_counters(r, &c0);
	ebb_region_set_limits(r, 1000, 0);
	int64_t got1 = ebb_region_step(r, clock_fn(NULL));
	ebb_region_get_counters(r, &c1);
	/* A batch is 64 pages; scanning both classes in 32-page chunks may
	 * overshoot by up to one chunk per list, as in Linux. */
	ok(got1 >= 64 && got1 <= 128 && c1.nr_aging_passes == c0.nr_aging_passes &&
	   c1.resident_pages == c0.resident_pages - (uint64_t)got1,
	   "one step above high reclaims one batch (%lld pages, batch 64) and does not age before the interval",
	   (long long)got1);
	__atomic_add_fetch(&fake_now, 200ULL * 1000 * 1000, __ATOMIC_RELAXED);
	for (int i = 0; i < 200; i++)
		ebb_region_step(r, clock_fn(NULL));
	ebb_region_get_counters(r, &c0);
	uint64_t target = ebb_region_bg_target(1000, 64);

	ok(target == 936 && c0.resident_pages <= target && c0.resident_pages >= target - 64 &&
	   c0.nr_aging_passes == c1.nr_aging_passes + 1,
	   "steps converge on high's target %llu (high 1000 - max(high/64, batch 64)): %llu resident, %llu aging pass(es) after the interval",
	   (unsigned long long)target, (unsigned long long)c0.resident_pages,
	   (unsigned long long)(c0.nr_aging_passes - c1.nr_aging_passes));
	/* Under its limit (here: none) a region is not harvested: aging is
	 * the reclaimer's work, as in Linux. */
	ebb_region_set_limits(r, 0, 0);
	__atomic_add_fetch(&fake_now, 1000ULL * 1000 * 1000, __ATOMIC_RELAXED);
	for (int i = 0; i < 3; i++)
		ebb_region_step(r, clock_fn(NULL));
	ebb_region_get_counters(r, &c1);
	ok(c1.nr_aging_passes == c0.nr_aging_passes,
	   "a region with no limit is not aged by steps (%llu passes before, %llu after 1 s)",
	   (unsigned long long)c0.nr_aging_passes, (unsigned long long)c1.nr_aging_passes);
	bad = check_pages(0, NR, gen);

	struct ebb_psi_stats ps;

	ebb_region_get_psi(r, &ps);
	ok(bad == 0 && ps.some_total_ns > 0 && c0.nr_errors == 0,
	   "all pages intact (%llu bad), fault stall time accounted (%llu ns), no errors",
	   (unsigned long long)bad, (unsigned long long)ps.some_total_ns);

	ok(ebb_region_set_swappiness(r, 201) == -EINVAL && ebb_region_set_swappiness(r, -1) == -EINVAL &&
	   ebb_region_set_swappiness(r, 100) == 0 && ebb_region_set_limits(r, 10, 5) == -EINVAL,
	   "live settings are validated (swappiness 0..200, high <= max)");

	/* Idle page tracking as an accessed-bit source, where the kernel has it. */
	void *idle_ctx = NULL;
	int iret = ebb_refsrc_page_idle_create(mem, NR, &idle_ctx);

	if (iret == -EOPNOTSUPP) {
		printf("ok %d - idle page tracking source # SKIP /sys/kernel/mm/page_idle/bitmap absent on this kernel\n",
		       ++tap_n);
	} else if (iret) {
		ok(0, "idle page tracking source: create failed: %s", strerror(-iret));
	} else {
		ebb_region_add_refsrc(r, &ebb_refsrc_page_idle_ops, idle_ctx);
		ebb_region_age(r);          /* marks everything idle */
		ebb_region_get_counters(r, &c0);
		check_pages(0, 16, gen);    /* touch 16 pages */
		ebb_region_age(r);
		ebb_region_get_counters(r, &c1);
		ok(c1.nr_young - c0.nr_young >= 16, "idle page tracking: %llu pages seen used",
		   (unsigned long long)(c1.nr_young - c0.nr_young));
	}

	atomic_store(&stop, true);
	pthread_join(th, NULL);
	ebb_region_destroy(r);

	/*
	 * As the VMM configures it (the KVM dirty log is the written signal,
	 * so no async write tracking; swapped-in pages mapped protected until
	 * written): every reference source the engine registers itself must
	 * work.  A source that fails each harvest logged a warning per aging
	 * pass and left aging blind.
	 */
	ebb_region_cfg_init(&cfg);
	cfg.name = "as-vmm";
	cfg.base = mem;
	cfg.size_bytes = (uint64_t)NR * PG;
	cfg.dirty_tracking = EBB_DIRTY_OFF;
	cfg.log = counting_log;
	cfg.swap.zpool_budget_bytes = 64ULL << 20;
	ret = ebb_region_create(&cfg, &r);
	if (ret) {
		ok(0, "as the VMM: create: %s", strerror(-ret));
	} else {
		atomic_store(&stop, false);
		pthread_create(&th, NULL, handler, r);
		write_pages(0, NR, 2);
		for (int i = 0; i < 4; i++)
			ebb_region_age(r);
		reclaim_all(r, NR);
		for (uint64_t pfn = 0; pfn < NR; pfn++)
			gen[pfn] = 2;
		bad = check_pages(0, NR, gen);
		for (int i = 0; i < 4; i++)
			ebb_region_age(r);
		ebb_region_get_counters(r, &c1);
		ok(bad == 0 && atomic_load(&nr_warned) == 0 && c1.nr_aging_passes >= 8,
		   "as the VMM (no async write tracking): %llu aging passes, %u warnings%s%s, %llu bad pages",
		   (unsigned long long)c1.nr_aging_passes, atomic_load(&nr_warned),
		   first_warning[0] ? ", first: " : "", first_warning, (unsigned long long)bad);
		atomic_store(&stop, true);
		pthread_join(th, NULL);
		ebb_region_destroy(r);
	}

	/*
	 * An accessed-bit source (page_idle) is dear: it is harvested without
	 * the region's lock, by the background reclaimer only, at most once per
	 * 19 x its own CPU time (region_reclaim.c, "aging").
	 */
	cfg_over_mem(&cfg, "accessed");
	cfg.dirty_tracking = EBB_DIRTY_OFF;
	cfg.fault_around_pages = 1;
	ret = ebb_region_create(&cfg, &r);
	if (ret) {
		ok(0, "accessed source: create: %s", strerror(-ret));
		ok(0, "accessed source: (not run)");
		ok(0, "accessed source: (not run)");
	} else {
		pthread_t toucher;
		uint64_t t = 1000ULL * 1000 * 1000, harvests;

		atomic_store(&stop, false);
		pthread_create(&th, NULL, handler, r);
		write_pages(0, NR, 3);
		for (uint64_t pfn = 0; pfn < NR; pfn++)
			gen[pfn] = 3;
		ebb_region_add_refsrc(r, &acc_ops, NULL);
		/* A fault storm under max: direct reclaim in the fault path
		 * (written sources only) never runs the accessed source. */
		reclaim_all(r, NR);
		ebb_region_set_limits(r, 0, NR / 2);
		bad = check_pages(0, NR, gen);
		ok(bad == 0 && atomic_load(&acc_calls) == 0,
		   "accessed source: a fault storm under max (%llu bad pages) did not harvest it in the fault path (%u harvests)",
		   (unsigned long long)bad, atomic_load(&acc_calls));
		ebb_region_set_limits(r, 0, 0);
		check_pages(0, NR, gen);        /* all resident again */
		reclaim_all(r, 64);             /* one page out for the toucher */
		acc_fault_pfn = NR;
		for (uint64_t pfn = 0; pfn < NR && acc_fault_pfn == NR; pfn++)
			if (resident_mincore(pfn, pfn + 1) == 0)
				acc_fault_pfn = pfn;
		pthread_create(&toucher, NULL, acc_toucher, NULL);
		ebb_region_set_limits(r, 64, 0);
		ebb_region_get_counters(r, &c0);
		ebb_region_step(r, t);
		ebb_region_get_counters(r, &c1);
		if (atomic_load(&acc_fault_state) == 1)
			atomic_store(&acc_fault_state, 2);  /* never served: let the toucher go on the join */
		pthread_join(toucher, NULL);
		ok(acc_fault_pfn < NR && atomic_load(&acc_calls) == 1 && atomic_load(&acc_fault_served_during) &&
		   c1.nr_young > c0.nr_young,
		   "accessed source: harvested by a background step without the lock (a fault on page %llu was served during the harvest: %s), %llu pages made young",
		   (unsigned long long)acc_fault_pfn, atomic_load(&acc_fault_served_during) ? "yes" : "no",
		   (unsigned long long)(c1.nr_young - c0.nr_young));
		/* 20 more steps 100 ms apart (2 s): each harvest costs >= 20 ms of
		 * CPU, so the next waits >= 380 ms: 5 or 6 harvests, not 20. */
		harvests = atomic_load(&acc_calls);
		for (int i = 1; i <= 20; i++)
			ebb_region_step(r, t + (uint64_t)i * 100 * 1000 * 1000);
		harvests = atomic_load(&acc_calls) - harvests;
		bad = check_pages(0, NR, gen);
		ok(harvests >= 4 && harvests <= 6 && bad == 0,
		   "accessed source: paced by its cost: %llu harvests in 20 steps over 2 s (want 4-6), %llu bad pages",
		   (unsigned long long)harvests, (unsigned long long)bad);
		atomic_store(&stop, true);
		pthread_join(th, NULL);
		ebb_region_destroy(r);
	}
	munmap(mem, (size_t)NR * PG);
	return 0;
}
