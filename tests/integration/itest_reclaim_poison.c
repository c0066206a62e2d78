/*
 * itest_reclaim_poison.c — a page the reclaim engine cannot give back (its
 * swap-in fails) is poisoned, in each of the three ways the engine has, and
 * the thread touching it gets SIGBUS, never data:
 *   1. UFFDIO_POISON (kernels 6.6+): SIGBUS BUS_MCEERR_AR at the page, the
 *      signal KVM turns into a guest machine check (a kernel without
 *      CONFIG_MEMORY_FAILURE reports BUS_ADRERR to a process; KVM still
 *      sends BUS_MCEERR_AR);
 *   2. without UFFDIO_POISON (as on 6.1; forced here with
 *      ebb_region_test_hide_poison): MADV_HWPOISON on a page copied in
 *      without waking the waiter, then the wake: BUS_MCEERR_AR as well,
 *      where the kernel has memory failure handling (CONFIG_MEMORY_FAILURE)
 *      and we have CAP_SYS_ADMIN; elsewhere the engine falls back to 3;
 *   3. neither (MADV_HWPOISON made to fail): an empty memfd mapped over the
 *      page, SIGBUS BUS_ADRERR (a vCPU would stop the VM: the last resort).
 * The engine's counters say which way was used (nr_lost_uffd_poison,
 * nr_lost_hwpoison, nr_lost_sigbus).  A lost page inside a readahead run
 * does not come in with its neighbour.  Every other page keeps its pattern,
 * and the region (with its poisoned pages) is torn down cleanly.
 * The failure is injected with ebb_region_test_lose_page (the next swap-in
 * of that page fails as a store read error would).
 */
#include "host-reclaim/region.h"
#include "tests/integration/tap.h"

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PG 4096u
#define WORDS (PG / 8)
#define NR_PAGES 512u

static uint64_t word(uint64_t pfn, unsigned w)
{
	return mix(0x5eed ^ (pfn * 4096 + w));
}

static bool page_intact(const uint8_t *mem, uint64_t pfn)
{
	const volatile uint64_t *p = (const volatile uint64_t *)(mem + pfn * PG);

	for (unsigned w = 0; w < WORDS; w++)
		if (p[w] != word(pfn, w))
			return false;
	return true;
}

static int nr_error_logs;

static void log_cb(void *ctx, enum ebb_log_level lvl, const char *msg)
{
	(void)ctx;
	if (lvl == EBB_LOG_ERROR && __atomic_fetch_add(&nr_error_logs, 1, __ATOMIC_RELAXED) < 8)
		printf("# log: %s\n", msg);
}

/* ---- touching a page from another thread, bounded, with the siginfo ---- */

static __thread sigjmp_buf *volatile bus_jmp;
static __thread int bus_code;
static __thread void *bus_addr;

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	bus_code = si->si_code;
	bus_addr = si->si_addr;
	if (bus_jmp)
		siglongjmp(*bus_jmp, 1);
	_exit(3);
}

struct touch {
	volatile uint64_t *p;
	uint64_t val;
	int bus;         /* 1 SIGBUS, 0 read */
	int code;        /* si_code of the SIGBUS */
	void *addr;      /* si_addr of the SIGBUS */
};

static void *toucher(void *arg)
{
	struct touch *t = arg;
	sigjmp_buf jb;

	if (sigsetjmp(jb, 1)) {
		bus_jmp = NULL;
		t->bus = 1;
		t->code = bus_code;
		t->addr = bus_addr;
		return NULL;
	}
	bus_jmp = &jb;
	t->val = *t->p;
	bus_jmp = NULL;
	t->bus = 0;
	return NULL;
}

/* 1 = SIGBUS, 0 = read, -1 = hung for 10 s. */
static int touch(const uint8_t *mem, uint64_t pfn, struct touch *t)
{
	struct timespec ts;
	pthread_t th;

	memset(t, 0, sizeof(*t));
	t->p = (volatile uint64_t *)(mem + pfn * PG + 8 * 17);
	pthread_create(&th, NULL, toucher, t);
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 10;
	if (pthread_timedjoin_np(th, NULL, &ts) != 0) {
		pthread_detach(th);
		return -1;
	}
	return t->bus;
}

static const char *code_name(int code)
{
	switch (code) {
	case BUS_MCEERR_AR: return "BUS_MCEERR_AR";
	case BUS_MCEERR_AO: return "BUS_MCEERR_AO";
	case BUS_ADRERR: return "BUS_ADRERR";
	case BUS_OBJERR: return "BUS_OBJERR";
	default: return "other";
	}
}

static void describe(char *buf, size_t len, int t, const struct touch *tc, const uint8_t *page)
{
	if (t == 1)
		snprintf(buf, len, "SIGBUS %s (%d) at %s", code_name(tc->code), tc->code,
			 (const uint8_t *)tc->addr >= page && (const uint8_t *)tc->addr < page + PG ?
			 "the page" : "ANOTHER ADDRESS");
	else if (t == 0)
		snprintf(buf, len, "no signal: READ DATA %#llx", (unsigned long long)tc->val);
	else
		snprintf(buf, len, "HUNG (no answer in 10 s)");
}

static bool sigbus_at(int t, const struct touch *tc, const uint8_t *page, int code)
{
	return t == 1 && tc->code == code && (const uint8_t *)tc->addr >= page &&
	       (const uint8_t *)tc->addr < page + PG;
}

static long hw_corrupted_kb(void)
{
	char line[128];
	long kb = -1;
	FILE *f = fopen("/proc/meminfo", "r");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "HardwareCorrupted: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

/* A page the engine holds swapped out, from @from up, with a swapped page after it. */
static int64_t swapped_page(struct ebb_region *r, uint64_t from)
{
	for (uint64_t pfn = from; pfn + 1 < NR_PAGES; pfn++)
		if (ebb_region_page_state(r, pfn) == EBB_PAGE_SWAPPED &&
		    ebb_region_page_state(r, pfn + 1) == EBB_PAGE_SWAPPED)
			return (int64_t)pfn;
	return -1;
}

int main(void)
{
	const char *dir = getenv("EBB_SWAP_DIR") ? getenv("EBB_SWAP_DIR") : "/var/tmp";
	const uint64_t size = (uint64_t)NR_PAGES * PG;
	struct ebb_region_counters c;
	struct ebb_region_cfg cfg;
	struct ebb_region *r = NULL;
	struct sigaction sa;
	struct touch tc;
	uint64_t features = 0, bad = 0;
	int64_t a, b, d, e;
	long hw0, hw1;
	char what[160];
	uint8_t *mem;
	int ret, t, mf_code;
	bool mf;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if ((ret = ebb_region_probe(&features)) != 0) {
		printf("1..0 # SKIP userfaultfd lacks what the engine needs (MOVE or WP): %s\n",
		       strerror(-ret));
		return 0;
	}
	printf("1..8\n");
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = on_sigbus;
	sa.sa_flags = SA_SIGINFO;
	sigaction(SIGBUS, &sa, NULL);
	mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED) {
		ok(0, "mmap: %s", strerror(errno));
		return 1;
	}
	ebb_region_cfg_init(&cfg);
	cfg.name = "poison";
	cfg.base = mem;
	cfg.size_bytes = size;
	cfg.max_pages = NR_PAGES / 4;
	cfg.high_pages = cfg.max_pages * 9 / 10;
	cfg.readahead_pages = 8;
	cfg.swap.zpool_budget_bytes = 0;     /* the file tier, with readahead */
	cfg.swap.dir = dir;
	cfg.swap.file_size_bytes = size;
	cfg.log = log_cb;
	cfg.keep_clean_copies = false;
	if (getenv("EBB_ITEST_EVICT") && strcmp(getenv("EBB_ITEST_EVICT"), "wp") == 0)
		cfg.evict_mode = EBB_EVICT_WP;   /* tests/integration/reclaim_wp_mode.sh */
	ret = ebb_region_create(&cfg, &r);
	if (ret) {
		ok(0, "region created in %s: %s", dir, strerror(-ret));
		return 1;
	}
	ebb_region_start(r);
	for (uint64_t pfn = 0; pfn < NR_PAGES; pfn++)
		for (unsigned w = 0; w < WORDS; w++)
			((uint64_t *)(mem + pfn * PG))[w] = word(pfn, w);
	/* Without memory failure handling the kernel reports a poisoned page
	 * (VM_FAULT_HWPOISON) as BUS_ADRERR; KVM still sends BUS_MCEERR_AR. */
	mf = access("/proc/sys/vm/memory_failure_recovery", F_OK) == 0;
	mf_code = mf ? BUS_MCEERR_AR : BUS_ADRERR;
	printf("# kernel: UFFDIO_POISON %s; CONFIG_MEMORY_FAILURE %s; eviction %s\n",
	       features & (1ULL << 14) ? "yes" : "no", mf ? "yes" : "no",
	       ebb_region_evict_mode(r) == EBB_EVICT_WP ? "WP" : "MOVE");

	/* 1. UFFDIO_POISON, where the kernel has it. */
	a = swapped_page(r, 16);
	if (!(features & (1ULL << 14))) {
		skip("UFFDIO_POISON: a lost page raises SIGBUS BUS_MCEERR_AR",
		     "this kernel has no UFFDIO_POISON (6.6+)");
		skip("UFFDIO_POISON: counted in nr_lost_uffd_poison", "no UFFDIO_POISON");
	} else if (a < 0) {
		ok(0, "UFFDIO_POISON: a swapped-out page to lose");
		ok(0, "UFFDIO_POISON: counted");
	} else {
		ebb_region_test_lose_page(r, (uint64_t)a);
		t = touch(mem, (uint64_t)a, &tc);
		describe(what, sizeof(what), t, &tc, mem + a * PG);
		ebb_region_get_counters(r, &c);
		ok(sigbus_at(t, &tc, mem + a * PG, mf_code),
		   "UFFDIO_POISON: the lost page %lld raises %s%s", (long long)a, what,
		   mf ? "" : " (BUS_ADRERR is what a kernel without CONFIG_MEMORY_FAILURE gives for a poisoned page)");
		t = touch(mem, (uint64_t)a, &tc);
		ok(sigbus_at(t, &tc, mem + a * PG, mf_code) && c.nr_lost_uffd_poison == 1 &&
		   c.nr_lost_hwpoison == 0 && c.nr_lost_sigbus == 0 &&
		   ebb_region_page_state(r, (uint64_t)a) == EBB_PAGE_LOST,
		   "UFFDIO_POISON: again on a second touch; nr_lost_uffd_poison %llu, hwpoison %llu, sigbus %llu",
		   (unsigned long long)c.nr_lost_uffd_poison, (unsigned long long)c.nr_lost_hwpoison,
		   (unsigned long long)c.nr_lost_sigbus);
	}

	/* 2. No UFFDIO_POISON: MADV_HWPOISON (or, where that fails, 3). */
	ebb_region_test_hide_poison(r);
	b = swapped_page(r, 64);
	hw0 = hw_corrupted_kb();
	if (b < 0) {
		ok(0, "MADV_HWPOISON: a swapped-out page to lose");
		ok(0, "MADV_HWPOISON: counted");
	} else {
		uint64_t lost0, sig0;

		ebb_region_get_counters(r, &c);
		lost0 = c.nr_lost_hwpoison;
		sig0 = c.nr_lost_sigbus;
		ebb_region_test_lose_page(r, (uint64_t)b);
		t = touch(mem, (uint64_t)b, &tc);
		describe(what, sizeof(what), t, &tc, mem + b * PG);
		ebb_region_get_counters(r, &c);
		hw1 = hw_corrupted_kb();
		if (c.nr_lost_hwpoison == lost0 + 1) {
			ok(sigbus_at(t, &tc, mem + b * PG, BUS_MCEERR_AR),
			   "no UFFDIO_POISON, MADV_HWPOISON: the lost page %lld raises %s (HardwareCorrupted %ld -> %ld kB)",
			   (long long)b, what, hw0, hw1);
		} else if (sigbus_at(t, &tc, mem + b * PG, BUS_ADRERR) && c.nr_lost_sigbus == sig0 + 1) {
			skip("no UFFDIO_POISON, MADV_HWPOISON: the lost page raises BUS_MCEERR_AR",
			     "MADV_HWPOISON refused on this host (no CONFIG_MEMORY_FAILURE or no CAP_SYS_ADMIN): the memfd fallback raised BUS_ADRERR as it should; tests/box/wip/lost_page_ebb.sh runs this test in the box (Debian 6.1)");
		} else {
			ok(0, "no UFFDIO_POISON, MADV_HWPOISON refused: the fallback raises BUS_ADRERR (%s, nr_lost_sigbus %llu)",
			   what, (unsigned long long)c.nr_lost_sigbus);
		}
		t = touch(mem, (uint64_t)b, &tc);
		describe(what, sizeof(what), t, &tc, mem + b * PG);
		ok(t == 1 && ebb_region_page_state(r, (uint64_t)b) == EBB_PAGE_LOST,
		   "no UFFDIO_POISON: a second touch raises %s again; nr_lost_hwpoison %llu, nr_lost_sigbus %llu",
		   what, (unsigned long long)c.nr_lost_hwpoison, (unsigned long long)c.nr_lost_sigbus);
	}

	/* 3. Neither: MADV_HWPOISON made to fail, the memfd fallback. */
	d = swapped_page(r, 128);
	if (d < 0) {
		ok(0, "memfd fallback: a swapped-out page to lose");
	} else {
		uint64_t sig0;

		ebb_region_get_counters(r, &c);
		sig0 = c.nr_lost_sigbus;
		ebb_region_test_inject(r, EBB_INJ_MADV_HWPOISON, 0, 100, EPERM);
		ebb_region_test_lose_page(r, (uint64_t)d);
		t = touch(mem, (uint64_t)d, &tc);
		describe(what, sizeof(what), t, &tc, mem + d * PG);
		ebb_region_get_counters(r, &c);
		ok(sigbus_at(t, &tc, mem + d * PG, BUS_ADRERR) && c.nr_lost_sigbus == sig0 + 1,
		   "MADV_HWPOISON fails too: the lost page %lld raises %s (memfd), nr_lost_sigbus %llu",
		   (long long)d, what, (unsigned long long)c.nr_lost_sigbus);
		ebb_region_test_inject(r, EBB_INJ_MADV_HWPOISON, 0, 0, EPERM);
	}

	/* 4. A lost page inside a readahead run: the neighbour comes in, it does not. */
	e = swapped_page(r, 200);
	if (e < 0) {
		ok(0, "readahead: two swapped-out neighbours");
	} else {
		struct touch t2;
		int t1;

		ebb_region_test_lose_page(r, (uint64_t)e + 1);
		t1 = touch(mem, (uint64_t)e, &tc);
		t = touch(mem, (uint64_t)e + 1, &t2);
		describe(what, sizeof(what), t, &t2, mem + (e + 1) * PG);
		ok(t1 == 0 && tc.val == word((uint64_t)e, 17) && t == 1 &&
		   ebb_region_page_state(r, (uint64_t)e + 1) == EBB_PAGE_LOST,
		   "readahead: page %lld reads its data (%s), the lost page after it raises %s",
		   (long long)e, t1 == 0 ? "read" : "SIGBUS/hung", what);
	}

	/* 5. Everything else intact; teardown with poisoned pages in the region. */
	for (uint64_t pfn = 0; pfn < NR_PAGES; pfn++) {
		enum ebb_page_state s = ebb_region_page_state(r, pfn);

		if (s != EBB_PAGE_LOST)
			bad += !page_intact(mem, pfn);
	}
	ebb_region_get_counters(r, &c);
	ok(bad == 0 && c.nr_lost_pages == (uint64_t)((a >= 0 && (features & (1ULL << 14))) +
						     (b >= 0) + (d >= 0) + (e >= 0)),
	   "the other pages are intact (%llu bad); %llu pages lost (uffd-poison %llu, hwpoison %llu, memfd %llu)",
	   (unsigned long long)bad, (unsigned long long)c.nr_lost_pages,
	   (unsigned long long)c.nr_lost_uffd_poison, (unsigned long long)c.nr_lost_hwpoison,
	   (unsigned long long)c.nr_lost_sigbus);
	ebb_region_destroy(r);
	ok(munmap(mem, size) == 0, "region destroyed and unmapped with its poisoned pages (HardwareCorrupted now %ld kB)",
	   hw_corrupted_kb());
	return 0;
}
