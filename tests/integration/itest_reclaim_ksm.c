/*
 * itest_reclaim_ksm.c — eviction of KSM-merged pages, with the real KSM
 * (root; /sys/kernel/mm/ksm settings are saved and restored):
 *   1. WP eviction (what ebb picks with --ksm on) evicts merged pages: the
 *      region gets under its max with no page refused as busy;
 *   2. UFFDIO_MOVE eviction (where the kernel has it) of the same: the
 *      kernel refuses merged pages with EBUSY (printed, not asserted: it
 *      depends on how far ksmd got), the reason --ksm on does not use MOVE;
 *      the data is checked;
 *   3. every page reads back with its content.
 * KSM is global: run under flock /tmp/ebb-integ.lock (the integration suite
 * does).  Skips with the reason when not root or without KSM.
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
#include <unistd.h>

#define PG 4096u
#define NR_PAGES 1024u
#define KSM "/sys/kernel/mm/ksm/"

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

static char saved_run[16], saved_scan[16], saved_sleep[16];

static void ksm_restore(void)
{
	if (saved_run[0]) {
		write_str(KSM "pages_to_scan", saved_scan);
		write_str(KSM "sleep_millisecs", saved_sleep);
		write_str(KSM "run", saved_run);
	}
}

static void on_signal(int sig)
{
	ksm_restore();
	signal(sig, SIG_DFL);
	raise(sig);
}

static long merging_pages(void)
{
	char buf[64];

	if (read_str("/proc/self/ksm_merging_pages", buf, sizeof(buf)))
		return -1;
	return atol(buf);
}

/* One 4 KiB pattern shared by every even page; odd pages differ. */
static uint64_t word(uint64_t pfn, unsigned w)
{
	return pfn & 1 ? (pfn << 20) ^ w : 0x6b736d00ULL + w;
}

static void run_mode(enum ebb_evict_mode mode, const char *name)
{
	struct ebb_region_cfg cfg;
	struct ebb_region *r = NULL;
	struct ebb_region_counters c;
	uint64_t bad = 0;
	long merged = 0;
	uint8_t *mem;
	int ret;

	/* The counter of a previous run's pages drops only when ksmd passes by. */
	for (int i = 0; i < 100 && merging_pages() > 0; i++)
		usleep(50000);
	mem = mmap(NULL, NR_PAGES * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED) {
		ok(0, "%s: mmap: %s", name, strerror(errno));
		return;
	}
	for (uint64_t p = 0; p < NR_PAGES; p++)
		for (unsigned w = 0; w < PG / 8; w++)
			((uint64_t *)(mem + p * PG))[w] = word(p, w);
	ebb_region_cfg_init(&cfg);
	cfg.name = name;
	cfg.base = mem;
	cfg.size_bytes = NR_PAGES * PG;
	cfg.evict_mode = mode;
	cfg.dirty_tracking = EBB_DIRTY_OFF;
	ret = ebb_region_create(&cfg, &r);
	if (ret) {
		ok(0, "%s: region create: %s", name, strerror(-ret));
		munmap(mem, NR_PAGES * PG);
		return;
	}
	madvise(mem, NR_PAGES * PG, MADV_MERGEABLE);
	for (int i = 0; i < 300 && merged < NR_PAGES / 4; i++) {
		usleep(100000);
		merged = merging_pages();
	}
	ebb_region_start(r);
	ebb_region_set_limits(r, NR_PAGES / 8 - 8, NR_PAGES / 8);
	for (int i = 0; i < 3000; i++) {
		ebb_region_get_counters(r, &c);
		if (c.resident_pages <= NR_PAGES / 8)
			break;
		usleep(1000);
	}
	ebb_region_get_counters(r, &c);
	printf("# %s: %ld pages merged by KSM; resident %llu (max %u), stored %llu, busy %llu\n", name, merged,
	       (unsigned long long)c.resident_pages, NR_PAGES / 8, (unsigned long long)c.nr_swapped_out,
	       (unsigned long long)c.nr_evict_busy);
	if (mode == EBB_EVICT_WP)
		ok(merged >= NR_PAGES / 4 && c.resident_pages <= NR_PAGES / 8 && c.nr_evict_busy == 0,
		   "WP eviction: %ld KSM-merged pages evicted, resident %llu <= max %u, %llu refused as busy",
		   merged, (unsigned long long)c.resident_pages, NR_PAGES / 8, (unsigned long long)c.nr_evict_busy);
	else
		printf("# MOVE eviction on this kernel: %llu attempts on merged pages refused with EBUSY, "
		       "resident %llu for max %u: why --ksm on uses WP eviction\n",
		       (unsigned long long)c.nr_evict_busy, (unsigned long long)c.resident_pages, NR_PAGES / 8);
	ebb_region_set_limits(r, 0, 0);
	for (uint64_t p = 0; p < NR_PAGES; p++)
		for (unsigned w = 0; w < PG / 8; w++)
			if (((volatile uint64_t *)(mem + p * PG))[w] != word(p, w)) {
				bad++;
				break;
			}
	ebb_region_get_counters(r, &c);
	ok(bad == 0 && c.nr_errors == 0, "%s: all %u pages intact (bad %llu, errors %llu)", name, NR_PAGES,
	   (unsigned long long)bad, (unsigned long long)c.nr_errors);
	ebb_region_destroy(r);
	munmap(mem, NR_PAGES * PG);
}

int main(void)
{
	uint64_t features;

	printf("TAP version 13\n");
	if (ebb_region_probe(&features) || !(features & UFFD_FEATURE_PAGEFAULT_FLAG_WP)) {
		printf("1..0 # SKIP no userfaultfd write-protect faults here\n");
		return 0;
	}
	if (geteuid() != 0 || access("/proc/self/ksm_merging_pages", R_OK) ||
	    read_str(KSM "run", saved_run, sizeof(saved_run)) ||
	    read_str(KSM "pages_to_scan", saved_scan, sizeof(saved_scan)) ||
	    read_str(KSM "sleep_millisecs", saved_sleep, sizeof(saved_sleep))) {
		saved_run[0] = 0;
		printf("1..0 # SKIP needs root and KSM with per-process counters\n");
		return 0;
	}
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGPIPE, SIG_IGN);
	write_str(KSM "pages_to_scan", "5000");
	write_str(KSM "sleep_millisecs", "10");
	write_str(KSM "run", "1");
	run_mode(EBB_EVICT_WP, "ksm-wp");
	if (features & UFFD_FEATURE_MOVE)
		run_mode(EBB_EVICT_MOVE, "ksm-move");
	ksm_restore();
	printf("1..%d\n", tap_n);
	return 0;
}
