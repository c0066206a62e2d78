/*
 * refsrc.c — built-in reference sources for the LRU (see the signal table in
 * lru.c):
 *   pagemap:   PAGEMAP_SCAN with PAGE_IS_WRITTEN on a range registered with a
 *              userfaultfd in WP_ASYNC mode.  Each harvest returns the pages
 *              written since the previous one and write-protects them again
 *              in the same ioctl (PM_SCAN_WP_MATCHING), so nothing is missed
 *              between harvests.  Kind: WRITTEN.
 *   page_idle: /sys/kernel/mm/page_idle/bitmap (accessed bits through the
 *              page's host PFN from /proc/self/pagemap).  For guest RAM this
 *              reaches the NPT/EPT accessed bits: marking a page idle calls
 *              the MMU notifiers' clear_young, so KVM clears the bit in its
 *              nested page table, and reading the bitmap reports the page
 *              used if the CPU set it again (measured in the box:
 *              tests/progs/kvm_idle.c).  Absent on many kernels (Debian's,
 *              this CI machine's; the ebb box kernel has it): create() then
 *              says -EOPNOTSUPP and the caller goes on without it.
 *              Kind: ACCESSED.
 *
 * page_idle harvest cost.  Per slice of at most IDLE_CHUNK pages: one pread
 * of their pagemap entries; the present PFNs are sorted and grouped into runs
 * of bitmap words (consecutive words, or gaps of at most IDLE_GAP_WORDS); per
 * run, one pread of the words (which tests and clears the accessed bits of
 * every page in it) and one pwrite that marks exactly our pages idle again
 * (the kernel ignores 0 bits), then one pread that tells which of them took
 * the mark ("armed").  Only an armed page that reads not idle is reported:
 * pages off the LRU (the shared zero page a read of a hole maps, a page
 * still in a per-CPU batch) read "not idle" forever and were reported used
 * on every pass before.  So a run costs three syscalls for up to
 * 64 * IDLE_MAX_RUN_WORDS PFNs; guest RAM that the host allocated in long
 * physical runs costs ~3 syscalls per 32 MiB.  A harvest covers at most
 * slice_pages pages from a rotating cursor (0 = all), so its cost is bounded
 * for any guest size; pages outside this pass's slice keep their idle state
 * and are reported by the pass that reaches them (accesses are never lost,
 * only reported later).
 */
#include "host-reclaim/lru.h"
#include "host-reclaim/refsrc.h"
#include "host-reclaim/uffd_compat.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
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
	/*
	 * Probe: a scan of the first page without write-protecting tells
	 * whether the ioctl exists and whether the range is registered in
	 * WP_ASYNC mode (EPERM otherwise: every harvest would fail).
	 */
	memset(&arg, 0, sizeof(arg));
	arg.size = sizeof(arg);
	arg.flags = PM_SCAN_CHECK_WPASYNC;
	arg.start = p->start;
	arg.end = p->start + (nr_pages ? EBB_PAGE_SIZE : 0);
	arg.vec = (uint64_t)(uintptr_t)p->vec;
	arg.vec_len = SCAN_VEC;
	arg.category_mask = PAGE_IS_WRITTEN;
	arg.return_mask = PAGE_IS_WRITTEN;
	if (ioctl(p->pagemap_fd, PAGEMAP_SCAN, &arg) < 0) {
		int err = errno == ENOTTY || errno == EINVAL || errno == EPERM ? -EOPNOTSUPP : -errno;

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
#define IDLE_CHUNK 4096u          /* pages per pagemap read */
#define IDLE_GAP_WORDS 4u         /* bitmap words of other pages a run may span */
#define IDLE_MAX_RUN_WORDS 512u   /* words per bitmap read (32768 PFNs) */

struct idle_pair {
	uint64_t pfn;
	uint32_t idx;                 /* page index within the chunk */
};

struct idle_src {
	int idle_fd;
	int pagemap_fd;
	uint64_t start;
	uint64_t nr_pages;
	uint64_t slice_pages;         /* pages per harvest; 0 = all */
	uint64_t cursor;              /* first page of the next slice */
	uint64_t *armed;              /* 1 bit per page: its idle bit read back set */
	struct ebb_page_idle_stats st;  /* written under the caller's lock, read atomically */
	uint64_t ent[IDLE_CHUNK];
	struct idle_pair pair[IDLE_CHUNK];
	uint64_t words[IDLE_MAX_RUN_WORDS];
};

int ebb_refsrc_page_idle_create_opts(void *base, uint64_t nr_pages, uint64_t slice_pages,
				     void **ctx)
{
	struct idle_src *s;

	*ctx = NULL;
	if (!base || nr_pages == 0)
		return -EINVAL;
	if (access(PAGE_IDLE_PATH, R_OK | W_OK) != 0)
		return -EOPNOTSUPP;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->armed = calloc((nr_pages + 63) / 64, sizeof(uint64_t));
	if (!s->armed) {
		free(s);
		return -ENOMEM;
	}
	s->start = (uint64_t)(uintptr_t)base;
	s->nr_pages = nr_pages;
	s->slice_pages = slice_pages;
	s->idle_fd = open(PAGE_IDLE_PATH, O_RDWR | O_CLOEXEC);
	s->pagemap_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	if (s->idle_fd < 0 || s->pagemap_fd < 0) {
		int err = -errno;

		if (s->idle_fd >= 0)
			close(s->idle_fd);
		if (s->pagemap_fd >= 0)
			close(s->pagemap_fd);
		free(s->armed);
		free(s);
		return err;
	}
	*ctx = s;
	return 0;
}

int ebb_refsrc_page_idle_create(void *base, uint64_t nr_pages, void **ctx)
{
	return ebb_refsrc_page_idle_create_opts(base, nr_pages, EBB_PAGE_IDLE_SLICE_PAGES, ctx);
}

void ebb_refsrc_page_idle_get_stats(void *ctx, struct ebb_page_idle_stats *out)
{
	const struct idle_src *s = ctx;

	memset(out, 0, sizeof(*out));
	if (!s)
		return;
	out->nr_passes = __atomic_load_n(&s->st.nr_passes, __ATOMIC_RELAXED);
	out->nr_pages_scanned = __atomic_load_n(&s->st.nr_pages_scanned, __ATOMIC_RELAXED);
	out->nr_accessed = __atomic_load_n(&s->st.nr_accessed, __ATOMIC_RELAXED);
	out->nr_not_present = __atomic_load_n(&s->st.nr_not_present, __ATOMIC_RELAXED);
	out->nr_reads = __atomic_load_n(&s->st.nr_reads, __ATOMIC_RELAXED);
	out->nr_writes = __atomic_load_n(&s->st.nr_writes, __ATOMIC_RELAXED);
	out->cpu_ns = __atomic_load_n(&s->st.cpu_ns, __ATOMIC_RELAXED);
}

static void stat_add(uint64_t *c, uint64_t v)
{
	__atomic_store_n(c, *c + v, __ATOMIC_RELAXED);
}

static int pair_cmp(const void *a, const void *b)
{
	const struct idle_pair *x = a, *y = b;

	return x->pfn < y->pfn ? -1 : x->pfn > y->pfn;
}

static uint64_t thread_cpu_ns(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts))
		return 0;
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/*
 * Pages [first, first + cnt) of the range: report the ones whose idle bit was
 * cleared since we set it (accessed), then mark them all idle again.
 */
static int idle_chunk(struct idle_src *s, uint64_t first, uint32_t cnt, uint64_t *bitmap)
{
	off_t off = (off_t)((s->start / EBB_PAGE_SIZE + first) * 8);
	ssize_t got = pread(s->pagemap_fd, s->ent, (size_t)cnt * 8, off);
	uint32_t n = 0, i = 0;

	if (got < 0)
		return -errno;
	stat_add(&s->st.nr_reads, 1);
	for (uint32_t k = 0; k < (uint32_t)got / 8; k++) {
		uint64_t pfn = s->ent[k] & PM_PFN_MASK;

		/* Not resident (evicted, never touched) or PFN hidden: nothing to age. */
		if (!(s->ent[k] & PM_PRESENT) || pfn == 0)
			continue;
		s->pair[n].pfn = pfn;
		s->pair[n].idx = k;
		n++;
	}
	stat_add(&s->st.nr_not_present, cnt - n);
	/* A page not resident now must be re-armed before it can be reported. */
	for (uint32_t k = 0, m = 0; k < cnt; k++) {
		uint64_t pg = first + k;

		if (m < n && s->pair[m].idx == k) {
			m++;
			continue;
		}
		s->armed[pg / 64] &= ~(1ULL << (pg % 64));
	}
	qsort(s->pair, n, sizeof(s->pair[0]), pair_cmp);
	while (i < n) {
		uint64_t w0 = s->pair[i].pfn / 64, w1 = w0;
		uint32_t j = i + 1, nw;
		ssize_t r;

		while (j < n && s->pair[j].pfn / 64 <= w1 + IDLE_GAP_WORDS &&
		       s->pair[j].pfn / 64 < w0 + IDLE_MAX_RUN_WORDS) {
			w1 = s->pair[j].pfn / 64;
			j++;
		}
		nw = (uint32_t)(w1 - w0 + 1);
		r = pread(s->idle_fd, s->words, (size_t)nw * 8, (off_t)(w0 * 8));
		if (r < 0)
			return -errno;
		stat_add(&s->st.nr_reads, 1);
		/* A short read ends at the kernel's last whole word of PFNs: pages
		 * beyond it are neither reported nor re-marked. */
		for (uint32_t k = i; k < j; k++) {
			uint64_t w = s->pair[k].pfn / 64 - w0, pg = first + s->pair[k].idx;

			if (w >= (uint64_t)r / 8)
				continue;
			/* Only a page we saw idle after marking it can report an
			 * access: pages off the LRU (the shared zero page, a page
			 * still in a per-CPU batch) always read "not idle". */
			if (!(s->words[w] & (1ULL << (s->pair[k].pfn % 64))) &&
			    (s->armed[pg / 64] & (1ULL << (pg % 64)))) {
				bitmap[pg / 64] |= 1ULL << (pg % 64);
				stat_add(&s->st.nr_accessed, 1);
			}
		}
		memset(s->words, 0, (size_t)nw * 8);
		for (uint32_t k = i; k < j; k++)
			s->words[s->pair[k].pfn / 64 - w0] |= 1ULL << (s->pair[k].pfn % 64);
		if (r > 0) {
			if (pwrite(s->idle_fd, s->words, (size_t)r, (off_t)(w0 * 8)) < 0)
				return -errno;
			stat_add(&s->st.nr_writes, 1);
			/* Read back which of our pages took the idle mark. */
			r = pread(s->idle_fd, s->words, (size_t)r, (off_t)(w0 * 8));
			if (r < 0)
				return -errno;
			stat_add(&s->st.nr_reads, 1);
		}
		for (uint32_t k = i; k < j; k++) {
			uint64_t w = s->pair[k].pfn / 64 - w0, pg = first + s->pair[k].idx;

			if (w < (uint64_t)r / 8 && (s->words[w] & (1ULL << (s->pair[k].pfn % 64))))
				s->armed[pg / 64] |= 1ULL << (pg % 64);
			else
				s->armed[pg / 64] &= ~(1ULL << (pg % 64));
		}
		i = j;
	}
	return 0;
}

/* A page whose idle bit was cleared since we set it was accessed. */
static int idle_harvest(void *ctx, uint64_t nr_pages, uint64_t *bitmap)
{
	struct idle_src *s = ctx;
	uint64_t n = nr_pages < s->nr_pages ? nr_pages : s->nr_pages;
	uint64_t budget = s->slice_pages && s->slice_pages < n ? s->slice_pages : n;
	uint64_t t0 = thread_cpu_ns();
	int ret = 0;

	if (n == 0)
		return 0;
	if (s->cursor >= n)
		s->cursor = 0;
	while (budget > 0) {
		uint64_t cnt = n - s->cursor;

		if (cnt > budget)
			cnt = budget;
		if (cnt > IDLE_CHUNK)
			cnt = IDLE_CHUNK;
		ret = idle_chunk(s, s->cursor, (uint32_t)cnt, bitmap);
		if (ret)
			break;
		stat_add(&s->st.nr_pages_scanned, cnt);
		budget -= cnt;
		s->cursor += cnt;
		if (s->cursor >= n)
			s->cursor = 0;
	}
	stat_add(&s->st.nr_passes, 1);
	stat_add(&s->st.cpu_ns, thread_cpu_ns() - t0);
	return ret;
}

static void idle_destroy(void *ctx)
{
	struct idle_src *s = ctx;

	if (!s)
		return;
	close(s->idle_fd);
	close(s->pagemap_fd);
	free(s->armed);
	free(s);
}

const struct ebb_refsrc_ops ebb_refsrc_page_idle_ops = {
	.name = "page-idle",
	.kind = EBB_REF_ACCESSED,
	.harvest = idle_harvest,
	.destroy = idle_destroy,
};
