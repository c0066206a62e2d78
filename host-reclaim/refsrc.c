/*
 * refsrc.c — built-in reference sources for the LRU (see the signal table in
 * lru.c):
 *   pagemap:   PAGEMAP_SCAN with PAGE_IS_WRITTEN on a range registered with a
 *              userfaultfd in WP_ASYNC mode.  Each harvest returns the pages
 *              written since the previous one and write-protects them again
 *              in the same ioctl (PM_SCAN_WP_MATCHING), so nothing is missed
 *              between harvests.  Kind: WRITTEN.
 *   page_idle: /sys/kernel/mm/page_idle/bitmap (accessed bits through the
 *              page's host PFN from /proc/self/pagemap).  Absent on many
 *              kernels (Debian's, this CI machine's): create() then says
 *              -EOPNOTSUPP and the caller goes on without it.  Kind: ACCESSED.
 */
#include "host-reclaim/region.h"
#include "host-reclaim/uffd_compat.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SCAN_VEC 512

struct pagemap_src {
	int uffd;
	int pagemap_fd;
	uint64_t start;
	uint64_t nr_pages;
	struct page_region vec[SCAN_VEC];
};

int ebb_refsrc_pagemap_create(int uffd, void *base, uint64_t nr_pages, void **ctx)
{
	struct pagemap_src *p = calloc(1, sizeof(*p));
	struct pm_scan_arg arg;

	*ctx = NULL;
	if (!p)
		return -ENOMEM;
	p->uffd = uffd;
	p->start = (uint64_t)(uintptr_t)base;
	p->nr_pages = nr_pages;
	p->pagemap_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (p->pagemap_fd < 0) {
		int err = -errno;

		free(p);
		return err;
	}
	/* Probe: a zero-length scan tells whether the ioctl exists. */
	memset(&arg, 0, sizeof(arg));
	arg.size = sizeof(arg);
	arg.start = p->start;
	arg.end = p->start;
	if (ioctl(p->pagemap_fd, PAGEMAP_SCAN, &arg) < 0) {
		int err = errno == ENOTTY || errno == EINVAL ? -EOPNOTSUPP : -errno;

		close(p->pagemap_fd);
		free(p);
		return err;
	}
	*ctx = p;
	return 0;
}

static int pagemap_harvest(void *ctx, uint64_t nr_pages, uint64_t *bitmap)
{
	struct pagemap_src *p = ctx;
	uint64_t end = p->start + (nr_pages < p->nr_pages ? nr_pages : p->nr_pages) * EBB_PAGE_SIZE;
	uint64_t cur = p->start;

	while (cur < end) {
		struct pm_scan_arg arg;
		long n;

		memset(&arg, 0, sizeof(arg));
		arg.size = sizeof(arg);
		arg.flags = PM_SCAN_WP_MATCHING | PM_SCAN_CHECK_WPASYNC;
		arg.start = cur;
		arg.end = end;
		arg.vec = (uint64_t)(uintptr_t)p->vec;
		arg.vec_len = SCAN_VEC;
		arg.category_mask = PAGE_IS_WRITTEN;
		arg.return_mask = PAGE_IS_WRITTEN;
		n = ioctl(p->pagemap_fd, PAGEMAP_SCAN, &arg);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		for (long i = 0; i < n; i++) {
			uint64_t a = p->vec[i].start, b = p->vec[i].end;

			if (a < p->start || b > end || a >= b)
				continue;
			for (uint64_t pfn = (a - p->start) / EBB_PAGE_SIZE;
			     pfn < (b - p->start) / EBB_PAGE_SIZE; pfn++)
				bitmap[pfn / 64] |= 1ULL << (pfn % 64);
		}
		if (arg.walk_end <= cur)
			break;
		cur = arg.walk_end;
	}
	return 0;
}

static void pagemap_destroy(void *ctx)
{
	struct pagemap_src *p = ctx;

	if (!p)
		return;
	close(p->pagemap_fd);
	free(p);
}

const struct ebb_refsrc_ops ebb_refsrc_pagemap_ops = {
	.name = "pagemap-written",
	.kind = EBB_REF_WRITTEN,
	.harvest = pagemap_harvest,
	.destroy = pagemap_destroy,
};

/* ---- idle page tracking ------------------------------------------------- */

#define PAGE_IDLE_PATH "/sys/kernel/mm/page_idle/bitmap"
#define PM_PFN_MASK ((1ULL << 55) - 1)
#define PM_PRESENT (1ULL << 63)

struct idle_src {
	int idle_fd;
	int pagemap_fd;
	uint64_t start;
	uint64_t nr_pages;
};

int ebb_refsrc_page_idle_create(void *base, uint64_t nr_pages, void **ctx)
{
	struct idle_src *s;

	*ctx = NULL;
	if (access(PAGE_IDLE_PATH, R_OK | W_OK) != 0)
		return -EOPNOTSUPP;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->start = (uint64_t)(uintptr_t)base;
	s->nr_pages = nr_pages;
	s->idle_fd = open(PAGE_IDLE_PATH, O_RDWR | O_CLOEXEC);
	s->pagemap_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (s->idle_fd < 0 || s->pagemap_fd < 0) {
		int err = -errno;

		if (s->idle_fd >= 0)
			close(s->idle_fd);
		if (s->pagemap_fd >= 0)
			close(s->pagemap_fd);
		free(s);
		return err;
	}
	*ctx = s;
	return 0;
}

/* A page whose idle bit was cleared since we set it was accessed. */
static int idle_harvest(void *ctx, uint64_t nr_pages, uint64_t *bitmap)
{
	struct idle_src *s = ctx;
	uint64_t n = nr_pages < s->nr_pages ? nr_pages : s->nr_pages;
	uint64_t ent[512];

	for (uint64_t base = 0; base < n; base += 512) {
		uint64_t cnt = n - base < 512 ? n - base : 512;
		off_t off = (off_t)((s->start / EBB_PAGE_SIZE + base) * 8);
		ssize_t got = pread(s->pagemap_fd, ent, cnt * 8, off);

		if (got < 0)
			return -errno;
		for (uint64_t i = 0; i < (uint64_t)got / 8; i++) {
			uint64_t pfn = ent[i] & PM_PFN_MASK, word, all = ~0ULL;

			if (!(ent[i] & PM_PRESENT) || pfn == 0)
				continue;
			if (pread(s->idle_fd, &word, 8, (off_t)(pfn / 64 * 8)) != 8)
				return -EIO;
			if (!(word & (1ULL << (pfn % 64))))
				bitmap[(base + i) / 64] |= 1ULL << ((base + i) % 64);
			/* Writing a 1 bit marks that host page idle again. */
			all = 1ULL << (pfn % 64);
			if (pwrite(s->idle_fd, &all, 8, (off_t)(pfn / 64 * 8)) != 8)
				return -EIO;
		}
	}
	return 0;
}

static void idle_destroy(void *ctx)
{
	struct idle_src *s = ctx;

	if (!s)
		return;
	close(s->idle_fd);
	close(s->pagemap_fd);
	free(s);
}

const struct ebb_refsrc_ops ebb_refsrc_page_idle_ops = {
	.name = "page-idle",
	.kind = EBB_REF_ACCESSED,
	.harvest = idle_harvest,
	.destroy = idle_destroy,
};
