/*
 * itest_reclaim_faults.c — the reclaim engine under storage faults, on real
 * memory with the real userfaultfd:
 *   1. ENOSPC from a real filesystem: the file tier lives on a 2 MiB tmpfs
 *      (mounted here, size=2m, no preallocation) that fills up; pages that
 *      cannot be written stay resident, the fault path reports the limit
 *      overrun (on_oom callback, counters), and every page reads back intact;
 *   2. write errors (EIO from the file tier's I/O hook on every 3rd write):
 *      counted, logged, nothing lost;
 *   3. short reads (every read returns half): continued, counted, data right;
 *   4. a read that keeps failing, and a corrupted read (checksum mismatch):
 *      the swap-in fails loudly — error log, counters, the page is poisoned
 *      and the touching thread gets SIGBUS — never wrong data.
 * Needs userfaultfd with UFFDIO_MOVE (6.8+); part 1 needs root for mount.
 */
#include "host-reclaim/region.h"
#include "tests/integration/tap.h"

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <time.h>
#include <unistd.h>

#define PG 4096u
#define WORDS (PG / 8)

static void fill_page(uint8_t *mem, uint64_t pfn, uint64_t seed)
{
	uint64_t *p = (uint64_t *)(mem + pfn * PG);

	for (unsigned w = 0; w < WORDS; w++)
		p[w] = mix(seed ^ (pfn * 4096 + w));
}

static uint64_t count_bad(const uint8_t *mem, uint64_t nr, uint64_t seed)
{
	uint64_t bad = 0;

	for (uint64_t pfn = 0; pfn < nr; pfn++) {
		const uint64_t *p = (const uint64_t *)(mem + pfn * PG);

		for (unsigned w = 0; w < WORDS; w++)
			if (p[w] != mix(seed ^ (pfn * 4096 + w))) {
				bad++;
				break;
			}
	}
	return bad;
}

/* ---- I/O fault injection (the file tier's hook) ---- */

struct inject {
	atomic_int mode;       /* 0 none, 1 fail every 3rd write, 2 short reads, 3 fail reads, 4 flip reads,
				* 5 fail all writes, 6 fail the next write only */
	atomic_uint_fast64_t nr_writes, nr_reads, nr_injected;
};
static struct inject inj;

static ssize_t inj_pwrite(void *ctx, int fd, const void *buf, size_t len, off_t off)
{
	(void)ctx;
	if ((atomic_load(&inj.mode) == 5 ||
	     (atomic_load(&inj.mode) == 6 && atomic_fetch_add(&inj.nr_writes, 1) == 0)) ||
	    (atomic_load(&inj.mode) == 1 && atomic_fetch_add(&inj.nr_writes, 1) % 3 == 2)) {
		atomic_fetch_add(&inj.nr_injected, 1);
		errno = EIO;
		return -1;
	}
	return pwrite(fd, buf, len, off);
}

static ssize_t inj_pread(void *ctx, int fd, void *buf, size_t len, off_t off)
{
	ssize_t n;

	(void)ctx;
	switch (atomic_load(&inj.mode)) {
	case 2:
		if (len > 1) {
			len /= 2;
			atomic_fetch_add(&inj.nr_injected, 1);
		}
		break;
	case 3:
		atomic_fetch_add(&inj.nr_injected, 1);
		errno = EIO;
		return -1;
	default:
		break;
	}
	n = pread(fd, buf, len, off);
	if (n > 0 && atomic_load(&inj.mode) == 4) {
		((uint8_t *)buf)[0] ^= 1;
		atomic_fetch_add(&inj.nr_injected, 1);
	}
	return n;
}

static const struct ebb_swap_io inj_io = { inj_pwrite, inj_pread, NULL };

static atomic_int nr_error_logs, nr_oom_calls;

static void log_cb(void *ctx, enum ebb_log_level lvl, const char *msg)
{
	(void)ctx;
	if (lvl == EBB_LOG_ERROR) {
		if (atomic_fetch_add(&nr_error_logs, 1) < 3 || getenv("EBB_ITEST_VERBOSE"))
			printf("# log: %s\n", msg);
	}
}

static void on_oom(void *ctx, uint64_t pfn, int err)
{
	(void)ctx;
	(void)pfn;
	(void)err;
	atomic_fetch_add(&nr_oom_calls, 1);
}

static struct ebb_region *mk_region(uint8_t *mem, uint64_t size, const char *dir,
				    uint64_t file_bytes, bool prealloc)
{
	struct ebb_region_cfg cfg;
	struct ebb_region *r = NULL;
	int ret;

	ebb_region_cfg_init(&cfg);
	cfg.name = "faults";
	cfg.base = mem;
	cfg.size_bytes = size;
	cfg.max_pages = size / PG / 4;
	cfg.high_pages = cfg.max_pages * 9 / 10;
	cfg.max_wait_ns = 1ULL * 1000 * 1000;
	cfg.swap.zpool_budget_bytes = 0;     /* everything goes to the file tier */
	cfg.swap.dir = dir;
	cfg.swap.file_size_bytes = file_bytes;
	cfg.swap.file_no_prealloc = !prealloc;
	cfg.swap.io = &inj_io;
	cfg.log = log_cb;
	cfg.on_oom = on_oom;
	cfg.keep_clean_copies = false;
	if (getenv("EBB_ITEST_EVICT") && strcmp(getenv("EBB_ITEST_EVICT"), "wp") == 0)
		cfg.evict_mode = EBB_EVICT_WP;
	ret = ebb_region_create(&cfg, &r);
	if (ret) {
		printf("# create: %s\n", strerror(-ret));
		return NULL;
	}
	ebb_region_start(r);
	return r;
}

/*
 * Pages [first, first + n) swapped out, as a test's starting point.  The fill
 * usually leaves the first pages written in the store, but an aging pass
 * that saw them written may have activated them: then reclaim everything,
 * active lists included, until they are (at most 16 passes).
 */
static bool swap_out(struct ebb_region *r, uint64_t first, uint64_t n, uint64_t nr)
{
	for (int pass = 0; pass < 16; pass++) {
		struct ebb_scan_control sc = { .nr_to_reclaim = nr, .priority = 0, .swappiness = 100,
					       .may_writepage = true, .may_swap = true,
					       .force_deactivate = true };
		uint64_t pfn;

		for (pfn = first; pfn < first + n; pfn++)
			if (ebb_region_page_state(r, pfn) != EBB_PAGE_SWAPPED)
				break;
		if (pfn == first + n)
			return true;
		ebb_region_reclaim(r, &sc);
	}
	return false;
}

static uint8_t *map_region(uint64_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

static void part_enospc(void)
{
	const uint64_t size = 8ULL << 20, nr = size / PG;
	char dir[] = "/tmp/ebb-enospc-XXXXXX";
	struct ebb_region_counters c;
	uint8_t *mem;
	struct ebb_region *r;

	if (!mkdtemp(dir)) {
		skip("ENOSPC on a full tmpfs", "mkdtemp failed");
		return;
	}
	if (mount("ebb-enospc", dir, "tmpfs", 0, "size=2m") != 0) {
		char why[128];

		snprintf(why, sizeof(why), "cannot mount a small tmpfs here (%s)", strerror(errno));
		skip("ENOSPC on a full tmpfs: pages stay resident, overrun reported", why);
		rmdir(dir);
		return;
	}
	mem = map_region(size);
	atomic_store(&inj.mode, 0);
	r = mem ? mk_region(mem, size, dir, 16ULL << 20, false) : NULL;  /* file > fs */
	if (!r) {
		ok(0, "ENOSPC: region created");
		goto out;
	}
	for (uint64_t pfn = 0; pfn < nr; pfn++)
		fill_page(mem, pfn, 1);
	uint64_t bad = count_bad(mem, nr, 1);

	ebb_region_get_counters(r, &c);
	ok(c.nr_enospc > 0 && c.nr_evict_failed > 0 && c.nr_swapped_out > 0 &&
	   c.file_bytes <= (2u << 20) && c.file_allocated_bytes <= (2u << 20),
	   "ENOSPC from a 2 MiB tmpfs: %llu ENOSPC, %llu pages kept resident after failed stores, %llu stores, "
	   "file %llu KiB live in %llu KiB allocated",
	   (unsigned long long)c.nr_enospc, (unsigned long long)c.nr_evict_failed,
	   (unsigned long long)c.nr_swapped_out, (unsigned long long)c.file_bytes / 1024,
	   (unsigned long long)c.file_allocated_bytes / 1024);
	ok(c.nr_oom > 0 && atomic_load(&nr_oom_calls) > 0 && c.nr_max_overrun > 0,
	   "fault path at max with nothing reclaimable: bounded wait, then %llu overruns reported (%d on_oom calls)",
	   (unsigned long long)c.nr_oom, atomic_load(&nr_oom_calls));
	ok(bad == 0, "ENOSPC: all %llu pages read back intact (%llu bad)",
	   (unsigned long long)nr, (unsigned long long)bad);
	ebb_region_destroy(r);
out:
	if (mem)
		munmap(mem, size);
	umount(dir);
	rmdir(dir);
}

static void part_write_errors(const char *dir)
{
	const uint64_t size = 16ULL << 20, nr = size / PG;
	struct ebb_region_counters c;
	uint8_t *mem = map_region(size);
	struct ebb_region *r;

	atomic_store(&inj.mode, 1);
	atomic_store(&inj.nr_injected, 0);
	r = mem ? mk_region(mem, size, dir, size, true) : NULL;
	if (!r) {
		ok(0, "write errors: region created");
		return;
	}
	for (int round = 0; round < 2; round++)
		for (uint64_t pfn = 0; pfn < nr; pfn++)
			fill_page(mem, pfn, 2 + (uint64_t)round);
	uint64_t bad = count_bad(mem, nr, 3);

	ebb_region_get_counters(r, &c);
	ok(c.nr_write_errors > 0 && c.nr_evict_failed >= c.nr_write_errors && c.nr_swapped_out > 0,
	   "EIO on every 3rd write: %llu write errors counted, %llu pages kept resident, %llu stored, %d error logs",
	   (unsigned long long)c.nr_write_errors, (unsigned long long)c.nr_evict_failed,
	   (unsigned long long)c.nr_swapped_out, atomic_load(&nr_error_logs));
	ok(bad == 0 && c.nr_lost_pages == 0, "write errors: all pages intact after two rounds (%llu bad)",
	   (unsigned long long)bad);
	ebb_region_destroy(r);
	munmap(mem, size);
}

static void part_short_reads(const char *dir)
{
	const uint64_t size = 16ULL << 20, nr = size / PG;
	struct ebb_region_counters c;
	uint8_t *mem = map_region(size);
	struct ebb_region *r;

	atomic_store(&inj.mode, 0);
	r = mem ? mk_region(mem, size, dir, size, true) : NULL;
	if (!r) {
		ok(0, "short reads: region created");
		return;
	}
	for (uint64_t pfn = 0; pfn < nr; pfn++)
		fill_page(mem, pfn, 4);
	atomic_store(&inj.mode, 2);
	uint64_t bad = count_bad(mem, nr, 4);

	atomic_store(&inj.mode, 0);
	ebb_region_get_counters(r, &c);
	ok(bad == 0 && c.nr_short_reads > 0 && c.nr_swapped_in > 0 && c.nr_readahead > 0,
	   "short reads: %llu short reads continued over %llu swap-ins (%llu by readahead of neighbouring slots), all pages intact (%llu bad)",
	   (unsigned long long)c.nr_short_reads, (unsigned long long)c.nr_swapped_in,
	   (unsigned long long)c.nr_readahead, (unsigned long long)bad);
	ebb_region_destroy(r);
	munmap(mem, size);
}

static __thread sigjmp_buf *volatile bus_jmp;

static void on_sigbus(int sig)
{
	(void)sig;
	if (bus_jmp)
		siglongjmp(*bus_jmp, 1);
	_exit(3);
}

/* Touch one page; returns 1 if the touch raised SIGBUS. */
static int touch_expect_sigbus(volatile uint64_t *p, uint64_t *val)
{
	sigjmp_buf jb;

	if (sigsetjmp(jb, 1)) {
		bus_jmp = NULL;
		return 1;
	}
	bus_jmp = &jb;
	*val = *p;
	bus_jmp = NULL;
	return 0;
}

static void part_read_failures(const char *dir)
{
	const uint64_t size = 8ULL << 20, nr = size / PG;
	struct ebb_region_counters c;
	uint8_t *mem = map_region(size);
	struct ebb_region *r;
	uint64_t val = 0;

	atomic_store(&inj.mode, 0);
	r = mem ? mk_region(mem, size, dir, size, true) : NULL;
	if (!r) {
		ok(0, "read failures: region created");
		return;
	}
	signal(SIGBUS, on_sigbus);
	for (uint64_t pfn = 0; pfn < nr; pfn++)
		fill_page(mem, pfn, 5);
	/* Page 0 was written first: it is swapped out by now (or made so). */
	if (!swap_out(r, 0, 2, nr)) {
		ok(0, "read failures: pages 0 and 1 swapped out before the test");
		ebb_region_destroy(r);
		return;
	}
	int before = atomic_load(&nr_error_logs);

	atomic_store(&inj.mode, 3);
	int bus = touch_expect_sigbus((volatile uint64_t *)mem, &val);

	atomic_store(&inj.mode, 4);
	int bus2 = touch_expect_sigbus((volatile uint64_t *)(mem + PG), &val);

	atomic_store(&inj.mode, 0);
	ebb_region_get_counters(r, &c);
	ok(bus && c.nr_read_errors >= 3 && c.nr_lost_pages >= 1 &&
	   ebb_region_page_state(r, 0) == EBB_PAGE_LOST,
	   "persistent read error: retried (%llu read errors), page lost, thread got SIGBUS (%s), not data",
	   (unsigned long long)c.nr_read_errors, bus ? "yes" : "no");
	ok(bus2 && c.nr_checksum_errors >= 1 && c.nr_lost_pages == 2 &&
	   atomic_load(&nr_error_logs) > before,
	   "corrupted read: checksum mismatch (%llu), loud error log, SIGBUS (%s), never the corrupted bytes",
	   (unsigned long long)c.nr_checksum_errors, bus2 ? "yes" : "no");
	/* The other pages are unaffected. */
	uint64_t bad = 0;

	for (uint64_t pfn = 2; pfn < nr; pfn++) {
		const uint64_t *p = (const uint64_t *)(mem + pfn * PG);

		for (unsigned w = 0; w < WORDS; w++)
			if (p[w] != mix(5 ^ (pfn * 4096 + w))) {
				bad++;
				break;
			}
	}
	ok(bad == 0, "the other %llu pages are intact (%llu bad)", (unsigned long long)(nr - 2),
	   (unsigned long long)bad);
	ebb_region_destroy(r);
	munmap(mem, size);
}

/* ---- every UFFDIO_* call and store read made to fail (test-only hooks) ---- */

struct toucher_arg {
	volatile uint64_t *p;
	uint64_t val;
	int bus;
};

static void *toucher(void *arg)
{
	struct toucher_arg *t = arg;

	t->bus = touch_expect_sigbus(t->p, &t->val);
	return NULL;
}

/* Touch from another thread, bounded: 1 = SIGBUS, 0 = read (val), -1 = hung 10 s. */
static int touch_bounded(volatile uint64_t *p, uint64_t *val)
{
	struct toucher_arg t = { .p = p };
	struct timespec ts;
	pthread_t th;

	pthread_create(&th, NULL, toucher, &t);
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += 10;
	if (pthread_timedjoin_np(th, NULL, &ts) != 0) {
		pthread_detach(th);
		return -1;
	}
	*val = t.val;
	return t.bus;
}

static bool page_intact(const uint8_t *mem, uint64_t pfn, uint64_t seed)
{
	const volatile uint64_t *p = (const volatile uint64_t *)(mem + pfn * PG);

	for (unsigned w = 0; w < WORDS; w++)
		if (p[w] != mix(seed ^ (pfn * 4096 + w)))
			return false;
	return true;
}

static void part_injection(const char *dir)
{
	const uint64_t size = 8ULL << 20, nr = size / PG, seed = 7;
	const bool wp_mode = getenv("EBB_ITEST_EVICT") && !strcmp(getenv("EBB_ITEST_EVICT"), "wp");
	struct ebb_region_counters c, c0;
	uint8_t *mem = map_region(size);
	struct ebb_region *r;
	uint64_t val = 0, bad = 0;
	int t;

	atomic_store(&inj.mode, 0);
	r = mem ? mk_region(mem, size, dir, size, true) : NULL;
	if (!r) {
		ok(0, "injection: region created");
		return;
	}
	signal(SIGBUS, on_sigbus);
	for (uint64_t pfn = 0; pfn < nr; pfn++)
		fill_page(mem, pfn, seed);

	/* Pages 0..2 start in the store (A, B and C swap them in). */
	bool out = swap_out(r, 0, 3, nr);

	ok(out, "injection: pages 0, 1 and 2 swapped out before the test (states %d %d %d)",
	   (int)ebb_region_page_state(r, 0), (int)ebb_region_page_state(r, 1),
	   (int)ebb_region_page_state(r, 2));

	/* A. A swap-in that keeps failing, on a kernel without UFFDIO_POISON. */
	ebb_region_test_hide_poison(r);
	ebb_region_test_inject(r, EBB_INJ_STORE_READ, 0, 10, EIO);
	t = touch_bounded((volatile uint64_t *)(mem + 0 * PG), &val);
	ebb_region_get_counters(r, &c);
	ok(t == 1 && c.nr_lost_sigbus + c.nr_lost_hwpoison == 1 && ebb_region_page_state(r, 0) == EBB_PAGE_LOST,
	   "no UFFDIO_POISON: a lost page raises SIGBUS (%s), the thread is not left blocked; nr_lost_hwpoison %llu, nr_lost_sigbus %llu",
	   t == 1 ? "yes" : t == 0 ? "no, read data" : "no, hung", (unsigned long long)c.nr_lost_hwpoison,
	   (unsigned long long)c.nr_lost_sigbus);
	ok(touch_bounded((volatile uint64_t *)(mem + 0 * PG), &val) == 1,
	   "no UFFDIO_POISON: a second access to the lost page raises SIGBUS again");
	ebb_region_test_inject(r, EBB_INJ_STORE_READ, 0, 0, EIO);

	/* B. UFFDIO_POISON itself fails: the same fallback. */
	ebb_region_test_inject(r, EBB_INJ_STORE_READ, 0, 10, EIO);
	ebb_region_test_inject(r, EBB_INJ_UFFD_POISON, 0, 10, EIO);
	t = touch_bounded((volatile uint64_t *)(mem + 1 * PG), &val);
	ebb_region_get_counters(r, &c);
	ok(t == 1 && c.nr_lost_sigbus + c.nr_lost_hwpoison == 2 && c.nr_lost_pages == 2,
	   "UFFDIO_POISON fails: SIGBUS all the same (%s), %llu pages lost",
	   t == 1 ? "yes" : t == 0 ? "no, read data" : "no, hung", (unsigned long long)c.nr_lost_pages);
	ebb_region_test_inject(r, EBB_INJ_UFFD_POISON, 0, 0, EIO);
	ebb_region_test_inject(r, EBB_INJ_STORE_READ, 0, 0, EIO);

	/* C. UFFDIO_COPY of a swap-in fails twice: the thread faults again and gets its data. */
	ebb_region_get_counters(r, &c0);
	ebb_region_test_inject(r, EBB_INJ_UFFD_COPY, 0, 2, EIO);
	t = touch_bounded((volatile uint64_t *)(mem + 2 * PG), &val);
	ebb_region_get_counters(r, &c);
	ok(t == 0 && val == mix(seed ^ (2 * 4096)) && c.nr_uffd_errors >= c0.nr_uffd_errors + 2,
	   "UFFDIO_COPY fails twice on a swap-in: served on the third fault, data right (%s), %llu errors counted",
	   t == 0 ? "read" : t == 1 ? "SIGBUS" : "hung", (unsigned long long)(c.nr_uffd_errors - c0.nr_uffd_errors));

	/* D. UFFDIO_ZEROPAGE fails twice on a ballooned page: it still reads zero. */
	ebb_region_mark_ballooned(r, 3, 1);
	ebb_region_test_inject(r, EBB_INJ_UFFD_ZEROPAGE, 0, 2, EIO);
	val = 1;
	t = touch_bounded((volatile uint64_t *)(mem + 3 * PG), &val);
	ok(t == 0 && val == 0, "UFFDIO_ZEROPAGE fails twice: the page still reads zero (%s, %#llx)",
	   t == 0 ? "read" : t == 1 ? "SIGBUS" : "hung", (unsigned long long)val);

	/* E. The eviction's own calls fail (MOVE / WRITEPROTECT): pages stay, intact. */
	ebb_region_get_counters(r, &c0);
	ebb_region_test_inject(r, wp_mode ? EBB_INJ_UFFD_WRITEPROTECT : EBB_INJ_UFFD_MOVE, 0, 64, EIO);
	for (uint64_t pfn = 4; pfn < nr; pfn++)
		bad += !page_intact(mem, pfn, seed);
	ebb_region_get_counters(r, &c);
	ok(bad == 0 && c.nr_evict_busy > c0.nr_evict_busy,
	   "%s fails 64 times during eviction: %llu pages kept, all %llu other pages intact (%llu bad)",
	   wp_mode ? "UFFDIO_WRITEPROTECT" : "UFFDIO_MOVE", (unsigned long long)(c.nr_evict_busy - c0.nr_evict_busy),
	   (unsigned long long)(nr - 4), (unsigned long long)bad);

	/* F. A kept page that can be put back neither by MOVE nor by COPY (MOVE mode). */
	if (wp_mode) {
		printf("ok %d - restore failure # SKIP WP eviction never moves pages back\n", ++tap_n);
		printf("ok %d - restore failure, stored instead # SKIP WP eviction never moves pages back\n", ++tap_n);
	} else {
		struct ebb_scan_control sc = { .nr_to_reclaim = 1, .priority = 0, .swappiness = 100,
					       .may_writepage = true, .may_swap = true };

		ebb_region_set_limits(r, 0, 0);
		for (uint64_t pfn = 4; pfn < 8; pfn++)
			bad += !page_intact(mem, pfn, seed);   /* 4..7 resident */
		ebb_region_stop(r);
		ebb_region_set_unevictable(r, 0, nr, true);
		ebb_region_set_unevictable(r, 5, 1, false);
		ebb_region_get_counters(r, &c0);
		atomic_store(&inj.mode, 5);                    /* every store fails... */
		ebb_region_test_inject(r, EBB_INJ_UFFD_MOVE, 1, 1, EIO);  /* ...out ok, back fails */
		ebb_region_test_inject(r, EBB_INJ_UFFD_COPY, 0, 1, EIO);
		ebb_region_reclaim(r, &sc);
		ebb_region_get_counters(r, &c);
		enum ebb_page_state st5 = ebb_region_page_state(r, 5);

		ebb_region_set_unevictable(r, 5, 1, true);
		ebb_region_set_unevictable(r, 6, 1, false);
		atomic_store(&inj.nr_writes, 0);
		atomic_store(&inj.mode, 6);                    /* only the first store fails */
		ebb_region_test_inject(r, EBB_INJ_UFFD_MOVE, 1, 1, EIO);
		ebb_region_test_inject(r, EBB_INJ_UFFD_COPY, 0, 1, EIO);
		sc.nr_reclaimed = 0;
		ebb_region_reclaim(r, &sc);
		atomic_store(&inj.mode, 0);
		enum ebb_page_state st6 = ebb_region_page_state(r, 6);
		struct ebb_region_counters c2;

		ebb_region_get_counters(r, &c2);
		ebb_region_set_unevictable(r, 0, nr, false);
		ebb_region_start(r);
		t = touch_bounded((volatile uint64_t *)(mem + 5 * PG), &val);
		ok(st5 == EBB_PAGE_LOST && c.nr_restore_failed == c0.nr_restore_failed + 1 &&
		   c.nr_lost_pages == c0.nr_lost_pages + 1 && t == 1,
		   "restore failure with the store failing too: the page is marked lost (state %d), an access "
		   "raises SIGBUS (%s), no fault loop", (int)st5, t == 1 ? "yes" : t == 0 ? "no, read" : "no, hung");
		ok(st6 == EBB_PAGE_SWAPPED && c2.nr_restore_failed == c0.nr_restore_failed + 2 &&
		   page_intact(mem, 6, seed),
		   "restore failure, then the store works: the page is stored instead (state %d) and reads back right",
		   (int)st6);
	}

	/* Whatever failed, every other page is intact. */
	bad = 0;
	for (uint64_t pfn = 2; pfn < nr; pfn++)
		if (pfn != 3 && pfn != 5)
			bad += !page_intact(mem, pfn, seed);
	ebb_region_get_counters(r, &c);
	ok(bad == 0, "injection: the %llu other pages are intact (%llu bad); %llu lost, %llu UFFDIO errors counted",
	   (unsigned long long)(nr - 4), (unsigned long long)bad, (unsigned long long)c.nr_lost_pages,
	   (unsigned long long)c.nr_uffd_errors);
	ebb_region_destroy(r);
	munmap(mem, size);
}

int main(void)
{
	const char *dir = getenv("EBB_SWAP_DIR") ? getenv("EBB_SWAP_DIR") : "/var/tmp";
	int ret;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if ((ret = ebb_region_probe(NULL)) != 0) {
		printf("needs userfaultfd UFFD_FEATURE_MOVE (Linux 6.8+): %s\n", strerror(-ret));
		return 77;
	}
	printf("1..19\n");
	part_enospc();
	part_write_errors(dir);
	part_short_reads(dir);
	part_read_failures(dir);
	part_injection(dir);
	return 0;
}
