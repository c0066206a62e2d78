/*
 * itest_reclaim_hostswap.c — the reclaim engine when the host kernel itself
 * swaps guest RAM out, with a real host swap device (zram, set up here as
 * root and removed after):
 *   1. pages written, then paged out to host swap (MADV_PAGEOUT) before the
 *      region exists, are adopted as resident (they hold data), not as
 *      never-touched;
 *   2. WP eviction (the mode of kernels before 6.8) of pages that sit in
 *      host swap reads them back through the kernel and stores them; it
 *      never takes them for vanished and drops them (which would make the
 *      guest read zeroes);
 *   3. every page reads back with its pattern.
 * The zram device is swapped on for the test's duration only: run it under
 * flock /tmp/ebb-integ.lock (as the integration suite does).  Skips (with the
 * reason) when not root, with no zram, or no WP userfaults.
 */
#include "host-reclaim/region.h"
#include "host-reclaim/uffd_compat.h"
#include "tests/integration/tap.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/swap.h>
#include <unistd.h>

#define PG 4096u
#define WORDS (PG / 8)

#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif

/* Half random, half a repeated word: the compressed tier takes it. */
static uint64_t word(uint64_t pfn, unsigned w, uint64_t seed)
{
	return w & 1 ? seed ^ pfn : mix(seed ^ (pfn * 4096 + w));
}

static void fill_page(uint8_t *mem, uint64_t pfn, uint64_t seed)
{
	uint64_t *p = (uint64_t *)(mem + pfn * PG);

	for (unsigned w = 0; w < WORDS; w++)
		p[w] = word(pfn, w, seed);
}

static bool page_ok(const uint8_t *mem, uint64_t pfn, uint64_t seed)
{
	const volatile uint64_t *p = (const volatile uint64_t *)(mem + pfn * PG);

	for (unsigned w = 0; w < WORDS; w++)
		if (p[w] != word(pfn, w, seed))
			return false;
	return true;
}

static int write_str(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = write(fd, s, strlen(s));
	close(fd);
	return n == (ssize_t)strlen(s) ? 0 : -EIO;
}

static int read_str(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n <= 0)
		return -EIO;
	buf[n] = 0;
	buf[strcspn(buf, "\n")] = 0;
	return 0;
}

struct zram {
	char id[16], dev[64];
	bool on;
};

static int zram_up(struct zram *z, char *why, size_t why_len)
{
	char path[128], cmd[256];

	memset(z, 0, sizeof(*z));
	if (geteuid() != 0) {
		snprintf(why, why_len, "not root: cannot set up zram/swapon");
		return -1;
	}
	if (access("/sys/class/zram-control/hot_add", R_OK) != 0 &&
	    system("modprobe zram num_devices=0 >/dev/null 2>&1") != 0) {
		snprintf(why, why_len, "no zram here");
		return -1;
	}
	if (read_str("/sys/class/zram-control/hot_add", z->id, sizeof(z->id))) {
		snprintf(why, why_len, "zram hot_add failed");
		return -1;
	}
	snprintf(z->dev, sizeof(z->dev), "/dev/zram%s", z->id);
	snprintf(path, sizeof(path), "/sys/block/zram%s/disksize", z->id);
	if (write_str(path, "256M")) {
		snprintf(why, why_len, "zram disksize failed");
		return -1;
	}
	snprintf(cmd, sizeof(cmd), "mkswap %s >/dev/null 2>&1", z->dev);
	if (system(cmd) != 0 || swapon(z->dev, SWAP_FLAG_PREFER | (32767 & SWAP_FLAG_PRIO_MASK))) {
		snprintf(why, why_len, "mkswap/swapon %s failed", z->dev);
		return -1;
	}
	z->on = true;
	return 0;
}

static void zram_down(struct zram *z)
{
	char path[128];

	if (!z->id[0])
		return;
	if (z->on)
		swapoff(z->dev);
	snprintf(path, sizeof(path), "/sys/block/zram%s/reset", z->id);
	write_str(path, "1");
	write_str("/sys/class/zram-control/hot_remove", z->id);
	z->id[0] = 0;
}

/* Pages of [mem, mem + nr pages) that pagemap says are in swap. */
static uint64_t count_swapped(const uint8_t *mem, uint64_t nr)
{
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	uint64_t n = 0, e;

	if (fd < 0)
		return 0;
	for (uint64_t p = 0; p < nr; p++)
		if (pread(fd, &e, 8, (off_t)(((uintptr_t)mem / PG + p) * 8)) == 8 && (e >> 62 & 1))
			n++;
	close(fd);
	return n;
}

static void quiet_log(void *ctx, enum ebb_log_level lvl, const char *msg)
{
	(void)ctx;
	if (lvl <= EBB_LOG_ERROR)
		fprintf(stderr, "# engine: %s\n", msg);
}

int main(void)
{
	const uint64_t nr = 4096, seed = 0x5a5a1;
	struct ebb_region_cfg cfg;
	struct ebb_region *r = NULL;
	struct ebb_region_counters c;
	struct zram z;
	char why[160];
	uint64_t features, swapped, bad = 0;
	uint8_t *mem;
	int ret;

	/* A reader that goes away (| head) must not leave the zram swap on. */
	signal(SIGPIPE, SIG_IGN);
	printf("TAP version 13\n");
	if (ebb_region_probe(&features) || !(features & UFFD_FEATURE_PAGEFAULT_FLAG_WP)) {
		printf("1..0 # SKIP no userfaultfd write-protect faults here\n");
		return 0;
	}
	if (zram_up(&z, why, sizeof(why))) {
		zram_down(&z);
		printf("1..0 # SKIP %s\n", why);
		return 0;
	}
	mem = mmap(NULL, nr * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED) {
		ok(0, "mmap: %s", strerror(errno));
		goto out;
	}
	madvise(mem, nr * PG, MADV_NOHUGEPAGE);
	/* 1. Written, then half of it paged out to host swap, before the region. */
	for (uint64_t p = 0; p < nr; p++)
		fill_page(mem, p, seed);
	madvise(mem, nr / 2 * PG, MADV_PAGEOUT);
	swapped = count_swapped(mem, nr);
	ebb_region_cfg_init(&cfg);
	cfg.name = "hostswap";
	cfg.base = mem;
	cfg.size_bytes = nr * PG;
	cfg.log = quiet_log;
	cfg.evict_mode = EBB_EVICT_WP;
	cfg.dirty_tracking = EBB_DIRTY_OFF;
	ret = ebb_region_create(&cfg, &r);
	if (ret) {
		ok(0, "region create (WP eviction): %s", strerror(-ret));
		goto out;
	}
	ebb_region_get_counters(r, &c);
	ok(swapped > 0 && c.resident_pages == nr,
	   "adopt: %llu of %llu pages in host swap at create; all counted resident (%llu), none never-touched (%llu)",
	   (unsigned long long)swapped, (unsigned long long)nr, (unsigned long long)c.resident_pages,
	   (unsigned long long)c.never_pages);
	ebb_region_start(r);

	/* 2. Now all of it to host swap, then WP eviction under a low max. */
	madvise(mem, nr * PG, MADV_PAGEOUT);
	swapped = count_swapped(mem, nr);
	ebb_region_set_limits(r, nr / 8 - nr / 128, nr / 8);
	for (int i = 0; i < 5000; i++) {
		ebb_region_get_counters(r, &c);
		if (c.resident_pages <= nr / 8)
			break;
		usleep(1000);
	}
	ebb_region_get_counters(r, &c);
	printf("# %llu pages in host swap before eviction; evicted: %llu stored, %llu zero, %llu vanished\n",
	       (unsigned long long)swapped, (unsigned long long)c.nr_swapped_out,
	       (unsigned long long)c.nr_zero_out, (unsigned long long)c.nr_vanished);
	ok(swapped > 0 && c.nr_vanished == 0 && c.nr_swapped_out >= nr / 2,
	   "WP eviction of pages in host swap: %llu stored, %llu taken for vanished",
	   (unsigned long long)c.nr_swapped_out, (unsigned long long)c.nr_vanished);

	/* 3. Everything back, checked. */
	for (uint64_t p = 0; p < nr; p++)
		bad += !page_ok(mem, p, seed);
	ebb_region_get_counters(r, &c);
	ok(bad == 0 && c.nr_errors == 0, "all %llu pages read back intact (bad %llu, errors %llu)",
	   (unsigned long long)nr, (unsigned long long)bad, (unsigned long long)c.nr_errors);
out:
	ebb_region_destroy(r);
	if (mem != MAP_FAILED)
		munmap(mem, nr * PG);
	zram_down(&z);
	printf("1..%d\n", tap_n);
	return 0;
}
