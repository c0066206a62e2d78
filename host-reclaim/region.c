/*
 * region.c — the userfaultfd pager and the glue of one region: page table
 * and LRU (lru.c), swap store (swapstore.c), reference sources (refsrc.c),
 * limits and pressure (psi.c).
 *
 * Overview of the pager
 * ---------------------
 * Registration.  The region is registered with one userfaultfd for MISSING
 * faults (and WP, in WP_ASYNC mode, when the built-in dirty tracking is on).
 * A second, small "scratch" area of EBB_SWAP_CLUSTER_MAX pages is registered
 * the same way: UFFDIO_MOVE needs both ends in compatible VMAs.
 *
 * Eviction (the LRU's evictor callback), for a batch of candidates:
 *   1. sort by page index and cut into runs of neighbouring pages;
 *   2. UFFDIO_MOVE each run from the region into the scratch area.  The move
 *      is atomic with respect to the faulting threads: after it the region
 *      PTE is empty, so a thread touching the page blocks in a MISSING fault
 *      and cannot write into a copy we are about to throw away.  (A plain
 *      read + MADV_DONTNEED would lose writes racing in between.)
 *   3. for each moved page, read it in the scratch area: all zero -> ZERO
 *      (nothing stored); on a clean list and its content hash equals its
 *      copy's -> dropped with no write; else stored in the swap store;
 *   4. pages that could not be stored (write error, ENOSPC, !may_swap) are
 *      moved back into the region (UFFDIO_MOVE, waking any waiter) and stay
 *      resident: no data is lost;
 *   5. one MADV_DONTNEED over the whole scratch area frees the batch.
 *
 * Faults (ebb_region_handle_faults): the handler reads fault messages in
 * batches, marks the faulting threads stalled (PSI), and for each:
 *   - makes room first if the region is at max (direct reclaim, then a
 *     bounded wait on room_cv, then nr_oom + on_oom and the page is granted
 *     over the limit: the owner sees the error, the vCPU is not killed);
 *   - never touched / zero / ballooned pages: UFFDIO_ZEROPAGE;
 *   - swapped pages: load + verify from the store, with readahead of the
 *     following pages whose file slots follow the faulting one's (one pread),
 *     then one UFFDIO_COPY for the run (write-protected when WP_ASYNC dirty
 *     tracking is on, so the first write is seen by the next harvest);
 *   - a load that fails after retries (I/O error, checksum mismatch) is
 *     logged as an error and the page is poisoned, so that the thread gets
 *     SIGBUS BUS_MCEERR_AR (a vCPU: a guest machine check): UFFDIO_POISON,
 *     or without it MADV_HWPOISON on a page copied in first (poison_page);
 *     if neither works, an empty memfd mapped over the page raises SIGBUS
 *     BUS_ADRERR instead: wrong data is never returned, no thread is left
 *     blocked;
 *   - swapped-in pages are mapped write-protected until written (the first
 *     write is a sync WP fault that un-protects and drops the copy), so a
 *     read stays a read for the KVM dirty log.
 *
 * Polling (handler_main, ebb_poll_adapt).  A fault is a hand-off to the
 * handler thread; if that thread sleeps in poll(), every fault pays the wake
 * of an idle CPU (tens of µs in a VM, a deep C-state exit on bare metal),
 * which the kernel's own swap-in, run in the faulting thread, never pays.
 * So after serving a batch the handler spins on the non-blocking uffd (a
 * read() and a sched_yield() per turn, so a thread runnable on its CPU -
 * the faulting vCPU itself on a busy machine - still runs) for a window
 * before it sleeps.  The window tunes itself as KVM's halt polling does:
 * a fault found while spinning keeps it; a fault that came after the
 * window ran out but within max grows it (doubling from 10 µs); a wait
 * longer than max (the VM went quiet) halves it, to 0 below 10 µs.  An idle
 * VM thus spins at most ~2 x max once after its last fault, then never; a
 * swapping VM pays about the spinning round trip.  cfg.poll_max_ns caps it
 * (0 = off); the time spun, hits, misses and the handler's CPU time are
 * counters.  Spinning can also lose: the faulting thread still sleeps and
 * UFFDIO_COPY wakes it back on its own CPU, which may have gone idle, and a
 * handler that never sleeps keeps the scheduler from running both threads
 * on one CPU (where the hand-off costs no wake).  So the handler measures
 * (ebb_poll_cycle) the median fault-to-fault cycle of a storm over epochs of
 * 64 faults with polling on and off, runs the faster mode and probes the
 * other in the 2nd epoch and every 8th after.
 *
 * Background (ebb_region_step): update pressure averages and reclaim toward
 * high in batches of reclaim_batch_pages.  Reference sources are harvested
 * by the reclaimer, as Linux ages pages while it scans: before a background
 * or direct reclaim pass, at most once per aging_interval_ns.  A region
 * under its limits (or with none) is never harvested: its owner's tracking
 * (the KVM dirty log's write protection) then costs one fault per page
 * written, not one per page per interval; the first harvest after a quiet
 * spell reports everything written during it as young once, and the
 * second-chance scan sorts that out on the next pass.
 *
 * Locking: r->lock (a mutex) protects everything in struct ebb_region except
 * the immutable fields set at create and the thread handles.  It is held
 * across ioctls on the uffd (they never wait for our own handler, except
 * reading a scratch page that is not present, which the code never does).
 * room_cv (with r->lock) is signalled whenever resident pages drop or limits
 * rise.  snap_lock is a leaf: it guards the counters published for readers
 * that do not get r->lock within 10 ms (ebb_region_get_counters).  Direct
 * reclaim is bounded (see ensure_room); background reclaim and the fault
 * handler step aside between clusters / faults when a reader waits.
 */
#include "host-reclaim/region.h"
#include "host-reclaim/uffd_compat.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define MAX_REFSRC 4
#define MSG_BATCH 64
#define MAX_RA 32
#define LOAD_RETRIES 3

struct refsrc {
	const struct ebb_refsrc_ops *ops;
	void *ctx;
};

struct ebb_region {
	struct ebb_region_cfg cfg;          /* immutable after create */
	uint64_t base;                      /* immutable */
	uint64_t nr_pages;                  /* immutable */
	int uffd;                           /* immutable */
	int stop_fd;                        /* eventfd: wakes the handler on stop */
	int pagemap_fd;                     /* /proc/self/pagemap, or -1 (then mincore) */
	uint64_t uffd_features;
	bool have_poison;
	bool wp_tracking;                   /* WP_ASYNC dirty source active */
	bool wp_swapin;                     /* swapped-in pages mapped write-protected (sync WP) */
	bool evict_wp;                      /* evict with sync uffd-wp, not UFFDIO_MOVE */
	char *scratch;                      /* EBB_SWAP_CLUSTER_MAX pages */

	pthread_mutex_t lock;
	atomic_uint nr_readers_waiting;     /* owner calls waiting for lock (reads only) */
	pthread_mutex_t snap_lock;          /* protects snap: never held with lock taken after it */
	struct ebb_region_counters snap;    /* counters as of the last publish (under lock) */
	bool snap_valid;
	pthread_cond_t room_cv;
	pthread_cond_t bg_cv;
	/* --- protected by lock --- */
	struct ebb_lru *lru;
	struct ebb_swap *store;
	struct refsrc src[MAX_REFSRC];
	unsigned nr_src;
	uint64_t *ref_bitmap;
	uint64_t high_pages, max_pages;
	uint64_t last_age_ns;
	struct ebb_psi psi;
	struct ebb_region_counters c;
	struct ebb_ratelimit rl_fault, rl_evict, rl_oom;
	uint64_t reclaim_backoff_until_ns;  /* direct reclaim found nothing: don't rescan */
	uint64_t bg_backoff_until_ns;       /* same for background reclaim (step clock) */
	bool bg_active;                     /* woken above high, not yet down to its target */
	bool stopping;
	void *iobuf;                        /* MAX_RA pages, for swap-in */
	void *zero_buf;                     /* one zeroed page */

	pthread_t handler_thread, bg_thread;
	bool threads_running;
	/* Adaptive polling: poll is the handler thread's own (no lock); the
	 * statistics are atomics, read by counters_locked. */
	struct ebb_poll poll;
	atomic_uint_fast64_t nr_poll_hits, nr_poll_misses, poll_spin_ns, poll_window_ns;
	atomic_uint_fast64_t handler_cpu_ns;  /* as of the handler's last loop turn */
	atomic_uint_fast64_t poll_cycle_on_ns, poll_cycle_off_ns, nr_poll_epochs_off;
	int lost_fd;                        /* empty memfd: SIGBUS mapping for lost pages */
	uint64_t lost_cookie;               /* random: content of a page about to be hwpoisoned */
	/* Test-only failure injection (ebb_region_test_inject); under lock. */
	struct {
		uint32_t skip, nr;
		int err;
	} inj[EBB_INJ_NR];
	uint64_t inj_lose_pfn;              /* its next swap-in fails (UINT64_MAX: none) */
};

static void publish_locked(struct ebb_region *r);

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static uint64_t thread_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static uint64_t now_ns(const struct ebb_region *r)
{
	return r->cfg.clock_ns ? r->cfg.clock_ns(r->cfg.clock_ctx) : mono_ns();
}

#define RLOG(r, rl, lvl, ...) \
	ebb_reclaim_logf((r)->cfg.log, (r)->cfg.log_ctx, (rl), now_ns(r), (lvl), __VA_ARGS__)

static uint64_t page_addr(const struct ebb_region *r, uint64_t pfn)
{
	return r->base + pfn * EBB_PAGE_SIZE;
}

static uint64_t resident(const struct ebb_region *r)
{
	return r->lru->nr_state[EBB_PAGE_RESIDENT];
}

void ebb_region_cfg_init(struct ebb_region_cfg *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->name = "region";
	cfg->swappiness = 60;
	cfg->nr_threads = 1;
	cfg->max_wait_ns = 100ULL * 1000 * 1000;
	cfg->aging_interval_ns = 100ULL * 1000 * 1000;
	cfg->reclaim_batch_pages = 256;
	cfg->readahead_pages = 8;
	cfg->poll_max_ns = EBB_POLL_DEFAULT_MAX_NS;
	cfg->keep_clean_copies = true;
	cfg->dirty_tracking = EBB_DIRTY_AUTO;
	cfg->swap.zpool_budget_bytes = 64ULL << 20;
}

/* ---- uffd helpers -------------------------------------------------------- */

/*
 * Every UFFDIO_* call on the region goes through here, so that tests can make
 * any of them fail (ebb_region_test_inject).  Returns ioctl()'s result; a
 * failure (real or injected) is counted.
 */
static int uffd_ioctl(struct ebb_region *r, enum ebb_region_inject what, unsigned long req, void *arg)
{
	if (r->inj[what].nr) {
		if (r->inj[what].skip) {
			r->inj[what].skip--;
		} else {
			r->inj[what].nr--;
			r->c.nr_uffd_errors++;
			errno = r->inj[what].err;
			return -1;
		}
	}
	if (ioctl(r->uffd, req, arg) == 0)
		return 0;
	if (errno != EEXIST && errno != EAGAIN && errno != EBUSY && errno != ENOENT)
		r->c.nr_uffd_errors++;
	return -1;
}

static int uffd_open(uint64_t want, uint64_t *features)
{
	struct uffdio_api api = { .api = UFFD_API, .features = want };
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);

	if (fd < 0)
		return -errno;
	if (ioctl(fd, UFFDIO_API, &api) < 0) {
		int err = -errno;

		close(fd);
		return err;
	}
	*features = api.features;
	return fd;
}

int ebb_region_probe(uint64_t *features_out)
{
	uint64_t f = 0;
	struct uffdio_api api = { .api = UFFD_API, .features = 0 };
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);

	if (fd < 0)
		return -errno;
	if (ioctl(fd, UFFDIO_API, &api) < 0) {
		int err = -errno;

		close(fd);
		return err;
	}
	close(fd);
	f = api.features;
	if (features_out)
		*features_out = f;
	return (f & (UFFD_FEATURE_MOVE | UFFD_FEATURE_PAGEFAULT_FLAG_WP)) ? 0 : -EOPNOTSUPP;
}

static int uffd_wake(struct ebb_region *r, uint64_t addr, uint64_t len)
{
	struct uffdio_range rg = { .start = addr, .len = len };

	return uffd_ioctl(r, EBB_INJ_UFFD_WAKE, UFFDIO_WAKE, &rg) < 0 ? -errno : 0;
}

/* ---- eviction ------------------------------------------------------------ */

static int cmp_req(const void *a, const void *b)
{
	const struct ebb_evict_req *x = *(const struct ebb_evict_req *const *)a;
	const struct ebb_evict_req *y = *(const struct ebb_evict_req *const *)b;

	return x->pfn < y->pfn ? -1 : x->pfn > y->pfn;
}

static void account_store_error(struct ebb_region *r, int err, uint32_t pfn)
{
	r->c.nr_evict_failed++;
	RLOG(r, &r->rl_evict, EBB_LOG_WARN, "%s: page %u stays resident: store failed: %s",
	     r->cfg.name, pfn, strerror(-err));
}

static void release_copy(struct ebb_region *r, struct ebb_evict_req *q)
{
	if (q->swap_id != EBB_SWAP_NONE)
		ebb_swap_put(r->store, q->swap_id);
	q->swap_id = EBB_SWAP_NONE;
}

/*
 * Step 3 for one candidate whose content at @page can no longer change
 * (moved out of the region, or write-protected): zero, clean drop, or store.
 */
static void decide_one(struct ebb_region *r, const struct ebb_scan_control *sc,
		       struct ebb_evict_req *q, const void *page, bool *full)
{
	uint64_t h;
	uint32_t id;
	int ret;

	if (ebb_swap_page_is_zero(page)) {
		release_copy(r, q);
		q->result = EBB_EVICT_ZERO;
		r->c.nr_zero_out++;
		return;
	}
	h = ebb_swap_hash_page(page);
	if (q->swap_id != EBB_SWAP_NONE) {
		if (ebb_swap_hash_matches(r->store, q->swap_id, h)) {
			q->result = EBB_EVICT_CLEAN_DROPPED;
			r->c.nr_clean_dropped++;
			return;
		}
		/* The copy is stale (written since): release it. */
		release_copy(r, q);
	}
	if (!sc->may_swap) {
		q->result = EBB_EVICT_KEEP_DIRTY;
		return;
	}
	ret = *full ? -ENOSPC : ebb_swap_store(r->store, page, h, sc->may_writepage, &id);
	if (ret == -ENOSPC)
		*full = true;
	if (ret) {
		if (sc->may_writepage || ret != -ENOSPC)
			account_store_error(r, ret, q->pfn);
		q->result = EBB_EVICT_KEEP;
		return;
	}
	q->swap_id = id;
	q->result = EBB_EVICT_SWAPPED;
	r->c.nr_swapped_out++;
}

static bool evicted(const struct ebb_evict_req *q)
{
	return q->result == EBB_EVICT_SWAPPED || q->result == EBB_EVICT_CLEAN_DROPPED ||
	       q->result == EBB_EVICT_ZERO;
}

static int wp_range(struct ebb_region *r, uint64_t pfn, size_t nr, bool on)
{
	struct uffdio_writeprotect wp = {
		.range = { .start = page_addr(r, pfn), .len = nr * EBB_PAGE_SIZE },
		.mode = on ? UFFDIO_WRITEPROTECT_MODE_WP : 0,  /* WP|DONTWAKE is EINVAL */
	};

	return uffd_ioctl(r, EBB_INJ_UFFD_WRITEPROTECT, UFFDIO_WRITEPROTECT, &wp) < 0 ? -errno : 0;
}

#define PM_PRESENT (1ULL << 63)
#define PM_SWAPPED (1ULL << 62)

/*
 * Is each of @n pages from @pfn backed by something (in RAM, or in the host
 * kernel's swap)?  A page the host swapped out is not "gone": mincore() says
 * 0 for it, but reading it brings it back with no userfault.  From pagemap's
 * present/swapped bits, one read per call; mincore() (RAM only) where
 * pagemap cannot be read.  0 or -errno.
 */
static int backed_pages(struct ebb_region *r, uint64_t pfn, size_t n, bool *out)
{
	uint64_t ent[256] = { 0 };

	memset(out, 0, n * sizeof(*out));

	while (n) {
		size_t k = n < 256 ? n : 256;
		ssize_t got = -1;

		if (r->pagemap_fd >= 0)
			got = pread(r->pagemap_fd, ent, k * sizeof(ent[0]),
				    (off_t)(page_addr(r, pfn) / EBB_PAGE_SIZE * sizeof(ent[0])));
		if (got == (ssize_t)(k * sizeof(ent[0]))) {
			for (size_t i = 0; i < k; i++)
				out[i] = !!(ent[i] & (PM_PRESENT | PM_SWAPPED));
		} else {
			unsigned char v[256] = { 0 };

			if (mincore((void *)(uintptr_t)page_addr(r, pfn), k * EBB_PAGE_SIZE, v) < 0)
				return -errno;
			for (size_t i = 0; i < k; i++)
				out[i] = v[i] & 1;
		}
		pfn += k;
		out += k;
		n -= k;
	}
	return 0;
}

/*
 * Eviction without UFFDIO_MOVE (kernels before 6.8, e.g. the host-box's
 * 6.1), with synchronous uffd-wp: write-protect each run (writers now block
 * in a WP fault the handler serves after us), read the pages in place,
 * decide, MADV_DONTNEED the evicted runs and un-protect (and wake) the kept
 * ones.  Readers are never blocked.  One TLB flush per run and call instead
 * of one per page.
 */
static void evict_wp(struct ebb_region *r, const struct ebb_scan_control *sc,
		     struct ebb_evict_req **sorted, size_t n, bool full)
{
	size_t i;

	for (i = 0; i < n;) {
		size_t run = 1;

		while (i + run < n && sorted[i + run]->pfn == sorted[i]->pfn + run)
			run++;
		int err = wp_range(r, sorted[i]->pfn, run, true);

		if (err) {
			RLOG(r, &r->rl_evict, EBB_LOG_WARN, "%s: UFFDIO_WRITEPROTECT of %zu pages at %u: %s",
			     r->cfg.name, run, sorted[i]->pfn, strerror(-err));
			r->c.nr_evict_busy += run;
			for (size_t k = 0; k < run; k++)
				sorted[i + k]->result = EBB_EVICT_KEEP;
			i += run;
			continue;
		}
		bool backed[EBB_SWAP_CLUSTER_MAX];

		if (backed_pages(r, sorted[i]->pfn, run, backed))
			memset(backed, 0, sizeof(backed));
		for (size_t k = 0; k < run; k++) {
			struct ebb_evict_req *q = sorted[i + k];
			void *page = (void *)(uintptr_t)page_addr(r, q->pfn);

			/*
			 * Never read a page that is not there: that would fault to
			 * us.  A page in host swap is there (the read swaps it in).
			 */
			if (!backed[k]) {
				q->result = EBB_EVICT_VANISHED;
				r->c.nr_vanished++;
				release_copy(r, q);
				continue;
			}
			decide_one(r, sc, q, page, &full);
		}
		i += run;
	}
	/* Release evicted runs, un-protect kept runs. */
	for (i = 0; i < n;) {
		bool ev = evicted(sorted[i]) || sorted[i]->result == EBB_EVICT_VANISHED;
		size_t run = 1;

		while (i + run < n && sorted[i + run]->pfn == sorted[i]->pfn + run &&
		       (evicted(sorted[i + run]) || sorted[i + run]->result == EBB_EVICT_VANISHED) == ev)
			run++;
		if (ev)
			madvise((void *)(uintptr_t)page_addr(r, sorted[i]->pfn), run * EBB_PAGE_SIZE,
				MADV_DONTNEED);
		else
			wp_range(r, sorted[i]->pfn, run, false);
		i += run;
	}
}

/*
 * Put page @i of the scratch area back at region page @pfn.  0, or -errno
 * when neither a move nor a copy could put it back (its content is then
 * only in scratch: the caller must keep it elsewhere).
 */
static int move_back(struct ebb_region *r, unsigned i, uint32_t pfn)
{
	struct uffdio_move mv = {
		.dst = page_addr(r, pfn),
		.src = (uint64_t)(uintptr_t)(r->scratch + (size_t)i * EBB_PAGE_SIZE),
		.len = EBB_PAGE_SIZE,
		.mode = 0,
	};

	if (uffd_ioctl(r, EBB_INJ_UFFD_MOVE, UFFDIO_MOVE, &mv) == 0)
		return 0;
	/* Fall back to a copy: the content is still in scratch. */
	struct uffdio_copy cp = {
		.dst = page_addr(r, pfn),
		.src = mv.src,
		.len = EBB_PAGE_SIZE,
		.mode = 0,
	};
	if (uffd_ioctl(r, EBB_INJ_UFFD_COPY, UFFDIO_COPY, &cp) == 0 || errno == EEXIST)
		return 0;
	int err = -errno;

	RLOG(r, &r->rl_evict, EBB_LOG_ERROR, "%s: cannot restore page %u: %s",
	     r->cfg.name, pfn, strerror(-err));
	return err;
}

static int region_evict(void *ctx, const struct ebb_scan_control *sc,
			struct ebb_evict_req *reqs, size_t n)
{
	struct ebb_region *r = ctx;
	struct ebb_evict_req *sorted[EBB_SWAP_CLUSTER_MAX];
	bool moved[EBB_SWAP_CLUSTER_MAX];
	size_t i = 0;

	if (n > EBB_SWAP_CLUSTER_MAX)
		return -EINVAL;
	bool full = !sc->may_swap || ebb_swap_full(r->store, sc->may_writepage);
	size_t m = 0;

	/*
	 * With the store full, a dirty page could only be moved out and back:
	 * leave it where it is (and stop the pass, see below).  Pages with a
	 * copy can still be dropped.
	 */
	for (size_t k = 0; k < n; k++) {
		reqs[k].result = EBB_EVICT_KEEP;
		if (full && reqs[k].swap_id == EBB_SWAP_NONE)
			continue;
		sorted[m] = &reqs[k];
		moved[m] = false;
		m++;
	}
	if (full && m < n)
		r->c.nr_evict_failed += n - m;
	n = m;
	qsort(sorted, n, sizeof(struct ebb_evict_req *), cmp_req);
	if (r->evict_wp) {
		evict_wp(r, sc, sorted, n, full);
		goto out;
	}

	/* Steps 1-2: move runs of neighbouring pages into scratch slots 0..n-1. */
	while (i < n) {
		size_t run = 1;

		while (i + run < n && sorted[i + run]->pfn == sorted[i]->pfn + run)
			run++;
		size_t done = 0;

		while (done < run) {
			struct uffdio_move mv = {
				.dst = (uint64_t)(uintptr_t)(r->scratch + (i + done) * EBB_PAGE_SIZE),
				.src = page_addr(r, sorted[i + done]->pfn),
				.len = (run - done) * EBB_PAGE_SIZE,
				.mode = UFFDIO_MOVE_MODE_DONTWAKE,
			};
			int err = 0;
			size_t got;

			if (uffd_ioctl(r, EBB_INJ_UFFD_MOVE, UFFDIO_MOVE, &mv) < 0)
				err = errno;
			got = mv.move > 0 ? (size_t)mv.move / EBB_PAGE_SIZE : 0;
			if (!err && got == 0)
				got = run - done;
			for (size_t k = 0; k < got && done + k < run; k++)
				moved[i + done + k] = true;
			done += got;
			if (!err || done >= run)
				continue;
			/* The page at i + done failed. */
			if (err == ENOENT) {
				sorted[i + done]->result = EBB_EVICT_VANISHED;
				r->c.nr_vanished++;
			} else {
				r->c.nr_evict_busy++;
				if (err != EBUSY && err != EAGAIN)
					RLOG(r, &r->rl_evict, EBB_LOG_WARN, "%s: UFFDIO_MOVE page %u: %s",
					     r->cfg.name, sorted[i + done]->pfn, strerror(err));
			}
			done++;
		}
		i += run;
	}

	/* Step 3: decide and store. */
	for (size_t k = 0; k < n; k++) {
		if (!moved[k]) {
			if (sorted[k]->result == EBB_EVICT_VANISHED)
				release_copy(r, sorted[k]);
			continue;
		}
		decide_one(r, sc, sorted[k], r->scratch + k * EBB_PAGE_SIZE, &full);
	}

	/*
	 * Step 4: whatever was moved but not evicted goes back.  If it cannot
	 * (both a move and a copy failed), its content is only in scratch:
	 * store it after all (the file tier too), and if even that fails the
	 * page is lost — marked so, never left "resident" with an empty PTE,
	 * which would make every touch fault again forever.
	 */
	for (size_t k = 0; k < n; k++) {
		struct ebb_evict_req *q = sorted[k];
		const void *page = r->scratch + k * EBB_PAGE_SIZE;
		uint32_t id;

		if (!moved[k] || (q->result != EBB_EVICT_KEEP && q->result != EBB_EVICT_KEEP_DIRTY))
			continue;
		if (move_back(r, (unsigned)k, q->pfn) == 0)
			continue;
		r->c.nr_restore_failed++;
		release_copy(r, q);
		if (ebb_swap_page_is_zero(page)) {
			q->result = EBB_EVICT_ZERO;
			r->c.nr_zero_out++;
		} else if (ebb_swap_store(r->store, page, ebb_swap_hash_page(page), true, &id) == 0) {
			q->swap_id = id;
			q->result = EBB_EVICT_SWAPPED;
			r->c.nr_swapped_out++;
		} else {
			q->result = EBB_EVICT_LOST;
			r->c.nr_lost_pages++;
			RLOG(r, NULL, EBB_LOG_ERROR,
			     "%s: PAGE LOST: page %u could be neither restored nor stored; marked lost",
			     r->cfg.name, q->pfn);
		}
	}

	/* Step 5: free the batch with one call. */
	if (n)
		madvise(r->scratch, n * EBB_PAGE_SIZE, MADV_DONTNEED);
out:
	/* Out of room: end the reclaim pass instead of cycling through pages. */
	if (sc->may_swap && ebb_swap_full(r->store, sc->may_writepage))
		return -ENOSPC;
	return 0;
}

static void sc_account(struct ebb_region *r, const struct ebb_scan_control *sc)
{
	r->c.nr_scanned += sc->nr_scanned;
	r->c.nr_reclaimed += sc->nr_reclaimed;
	r->c.nr_activated += sc->nr_activated;
	r->c.nr_deactivated += sc->nr_deactivated;
	r->c.nr_rotated += sc->nr_rotated;
}

/*
 * Called with r->lock held.  Returns pages reclaimed; *stuck (if given) says
 * whether the pass found nothing it could ever evict right now (no evictable
 * pages, or the store refused them), as opposed to pages that were only
 * rotated or activated, which the next pass will see with their
 * references consumed.
 */
static uint64_t reclaim_locked_ex(struct ebb_region *r, uint64_t nr, bool may_write, bool *stuck)
{
	struct ebb_lru_evictor ev = { .evict = region_evict, .ctx = r };
	struct ebb_scan_control sc = {
		.nr_to_reclaim = nr,
		.swappiness = r->cfg.swappiness,
		.may_writepage = may_write,
		.may_swap = true,
	};

	int ret = ebb_lru_reclaim(r->lru, &sc, &ev);

	sc_account(r, &sc);
	if (sc.nr_reclaimed)
		pthread_cond_broadcast(&r->room_cv);
	if (stuck)
		*stuck = !sc.nr_reclaimed &&
			 (ret || sc.nr_scanned == 0 || sc.nr_kept > 0 ||
			  ebb_lru_nr_evictable(r->lru) == 0);
	return sc.nr_reclaimed;
}

static uint64_t reclaim_locked(struct ebb_region *r, uint64_t nr, bool may_write)
{
	return reclaim_locked_ex(r, nr, may_write, NULL);
}

int ebb_region_reclaim(struct ebb_region *r, struct ebb_scan_control *sc)
{
	struct ebb_lru_evictor ev = { .evict = region_evict, .ctx = r };
	struct ebb_scan_control mine;
	int ret;

	if (!r || !sc)
		return -EINVAL;
	pthread_mutex_lock(&r->lock);
	mine = *sc;
	mine.nr_scanned = mine.nr_reclaimed = mine.nr_activated = 0;
	mine.nr_deactivated = mine.nr_rotated = mine.nr_kept = 0;
	ret = ebb_lru_shrink(r->lru, &mine, &ev);
	sc_account(r, &mine);
	if (mine.nr_reclaimed)
		pthread_cond_broadcast(&r->room_cv);
	pthread_mutex_unlock(&r->lock);
	sc->nr_scanned += mine.nr_scanned;
	sc->nr_reclaimed += mine.nr_reclaimed;
	sc->nr_activated += mine.nr_activated;
	sc->nr_deactivated += mine.nr_deactivated;
	sc->nr_rotated += mine.nr_rotated;
	sc->nr_kept += mine.nr_kept;
	memcpy(sc->nr_scan_target, mine.nr_scan_target, sizeof(sc->nr_scan_target));
	return ret;
}

/* ---- aging --------------------------------------------------------------- */

static int64_t age_locked(struct ebb_region *r)
{
	uint64_t words = (r->nr_pages + 63) / 64;
	int64_t young = 0;

	for (unsigned s = 0; s < r->nr_src; s++) {
		bool written = r->src[s].ops->kind == EBB_REF_WRITTEN;
		int ret;

		memset(r->ref_bitmap, 0, words * 8);
		ret = r->src[s].ops->harvest(r->src[s].ctx, r->nr_pages, r->ref_bitmap);
		if (ret) {
			RLOG(r, &r->rl_evict, EBB_LOG_WARN, "%s: reference source %s: %s",
			     r->cfg.name, r->src[s].ops->name, strerror(-ret));
			continue;
		}
		for (uint64_t w = 0; w < words; w++) {
			uint64_t bits = r->ref_bitmap[w];

			while (bits) {
				uint64_t pfn = w * 64 + (uint64_t)__builtin_ctzll(bits);
				struct ebb_page *p;
				uint32_t stale;

				bits &= bits - 1;
				if (pfn >= r->nr_pages)
					break;
				p = &r->lru->pages[pfn];
				if (p->state != EBB_PAGE_RESIDENT)
					continue;
				if (p->flags & EBB_PF_READAHEAD)
					r->c.nr_readahead_used++;
				stale = ebb_lru_reference(r->lru, (uint32_t)pfn, written);
				if (stale != EBB_SWAP_NONE)
					ebb_swap_put(r->store, stale);
				young++;
			}
		}
	}
	r->c.nr_aging_passes++;
	r->c.nr_young += (uint64_t)young;
	return young;
}

int64_t ebb_region_age(struct ebb_region *r)
{
	int64_t n;

	pthread_mutex_lock(&r->lock);
	n = age_locked(r);
	r->last_age_ns = now_ns(r);
	pthread_mutex_unlock(&r->lock);
	return n;
}

/* Harvest before a reclaim pass, at most once per aging interval. */
static void maybe_age_locked(struct ebb_region *r, uint64_t now)
{
	if (now - r->last_age_ns >= r->cfg.aging_interval_ns || now < r->last_age_ns) {
		age_locked(r);
		r->last_age_ns = now;
	}
}

/*
 * Where background reclaim stops once woken above high: a gap below high,
 * like kswapd's low/high watermarks, so that a region sitting at high does
 * not wake the reclaimer (and harvest every reference source, re-arming the
 * owner's write tracking) for each page a guest touches.
 */
uint64_t ebb_region_bg_target(uint64_t high_pages, uint32_t batch_pages)
{
	uint64_t gap = high_pages / 64;

	if (gap < batch_pages)
		gap = batch_pages;
	return gap >= high_pages ? 0 : high_pages - gap;
}

int64_t ebb_region_step(struct ebb_region *r, uint64_t now)
{
	uint64_t reclaimed = 0, target;

	pthread_mutex_lock(&r->lock);
	ebb_psi_update(&r->psi, now);
	/* With max but no high, the background thread still works toward max:
	 * direct reclaim is bounded and leaves the rest of an excess to it. */
	uint64_t limit = r->high_pages ? r->high_pages : r->max_pages;

	if (!limit)
		r->bg_active = false;
	else if (resident(r) > limit)
		r->bg_active = true;
	target = ebb_region_bg_target(limit, r->cfg.reclaim_batch_pages);
	if (r->bg_active && resident(r) <= target)
		r->bg_active = false;
	if (r->bg_active && now >= r->bg_backoff_until_ns) {
		uint64_t want = resident(r) - target;

		maybe_age_locked(r, now);
		if (want > r->cfg.reclaim_batch_pages)
			want = r->cfg.reclaim_batch_pages;
		/* In clusters, stepping aside for a reader between them. */
		while (reclaimed < want) {
			uint64_t chunk = want - reclaimed, got;

			if (chunk > EBB_SWAP_CLUSTER_MAX)
				chunk = EBB_SWAP_CLUSTER_MAX;
			got = reclaim_locked(r, chunk, true);
			if (!got)
				break;
			reclaimed += got;
			if (atomic_load_explicit(&r->nr_readers_waiting, memory_order_relaxed)) {
				publish_locked(r);
				pthread_mutex_unlock(&r->lock);
				sched_yield();
				pthread_mutex_lock(&r->lock);
			}
		}
		r->c.nr_background_reclaim += reclaimed;
		/* Nothing reclaimable: retry after one aging interval, not at once. */
		if (!reclaimed)
			r->bg_backoff_until_ns = now + r->cfg.aging_interval_ns;
		publish_locked(r);
	}
	pthread_mutex_unlock(&r->lock);
	return (int64_t)reclaimed;
}

/* ---- faults -------------------------------------------------------------- */

static void timespec_after(struct timespec *ts, uint64_t ns)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += (time_t)(ns / 1000000000ULL);
	ts->tv_nsec += (long)(ns % 1000000000ULL);
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

/*
 * Make room for @n more resident pages under max.  Called with r->lock held;
 * may drop it while waiting.  0, or -ENOMEM after the bounded wait.
 *
 * Direct reclaim is bounded, as the kernel's is (SWAP_CLUSTER_MAX pages per
 * call, kswapd does the rest): each pass asks for the fault's own pages plus
 * at most one cluster, never the whole excess.  After a large drop of max
 * the resident set is far above the new limit; a fault then goes on as soon
 * as it has freed what it adds (resident never grows), and the background
 * reclaimer, woken here, brings the region down in batches, dropping the
 * lock between them: counters stay readable, faults stay short.
 */
static int ensure_room(struct ebb_region *r, uint64_t n, uint64_t pfn)
{
	uint64_t start = mono_ns(), got = 0;

	while (r->max_pages && resident(r) + n > r->max_pages) {
		uint64_t want = resident(r) + n - r->max_pages;
		uint64_t t = mono_ns();

		if (want < EBB_SWAP_CLUSTER_MAX)
			want = EBB_SWAP_CLUSTER_MAX;
		if (want > n + EBB_SWAP_CLUSTER_MAX)
			want = n + EBB_SWAP_CLUSTER_MAX;
		/*
		 * Direct reclaim, unless the last attempt found nothing to
		 * reclaim (store full, write errors, all pinned): then rescanning
		 * every page on every fault would only burn CPU; back off for
		 * max_wait_ns and let the background thread or a raised limit help.
		 */
		if (t >= r->reclaim_backoff_until_ns) {
			bool stuck = false;

			maybe_age_locked(r, now_ns(r));
			r->c.nr_direct_reclaim++;
			got += reclaim_locked_ex(r, want, true, &stuck);
			if (resident(r) + n <= r->max_pages)
				break;
			/*
			 * Still above max after paying for our own pages: the limit was
			 * lowered under a larger resident set (ebb set max=, a balloon
			 * hand-off).  Like a memcg charge after its reclaim batch, the
			 * fault goes on once it has freed at least what it adds:
			 * resident never grows, and the background thread brings it
			 * down.  Not an OOM.
			 */
			if (got >= n) {
				r->c.nr_max_overrun++;
				pthread_cond_signal(&r->bg_cv);
				break;
			}
			if (stuck)
				r->reclaim_backoff_until_ns = t + r->cfg.max_wait_ns;
			else if (mono_ns() - start < r->cfg.max_wait_ns)
				continue;   /* references consumed: the next pass finds pages */
		}
		pthread_cond_signal(&r->bg_cv);
		uint64_t waited = mono_ns() - start;

		if (waited >= r->cfg.max_wait_ns || r->stopping) {
			r->c.nr_oom++;
			RLOG(r, &r->rl_oom, EBB_LOG_ERROR,
			     "%s: at max (%llu pages) and nothing reclaimable after %llu ms: page %llu granted over the limit",
			     r->cfg.name, (unsigned long long)r->max_pages,
			     (unsigned long long)(waited / 1000000), (unsigned long long)pfn);
			if (r->cfg.on_oom)
				r->cfg.on_oom(r->cfg.on_oom_ctx, pfn, -ENOMEM);
			return -ENOMEM;
		}
		struct timespec ts;
		uint64_t left = r->cfg.max_wait_ns - waited;

		timespec_after(&ts, left < 1000000 ? left : 1000000);
		pthread_cond_timedwait(&r->room_cv, &r->lock, &ts);
	}
	return 0;
}

/* Replace page @pfn of the region by a mapping that raises SIGBUS. */
static int sigbus_page(struct ebb_region *r, uint64_t pfn)
{
	if (r->lost_fd < 0) {
		r->lost_fd = memfd_create("ebb-lost-page", MFD_CLOEXEC);
		if (r->lost_fd < 0)
			return -errno;
	}
	if (mmap((void *)(uintptr_t)page_addr(r, pfn), EBB_PAGE_SIZE, PROT_READ | PROT_WRITE,
		 MAP_SHARED | MAP_FIXED, r->lost_fd, 0) == MAP_FAILED)
		return -errno;
	return 0;
}

/*
 * Poison page @pfn (empty PTE, its fault pending) with MADV_HWPOISON, for
 * kernels without UFFDIO_POISON.  MADV_HWPOISON works on a mapped page
 * (it looks the page up with get_user_pages, which on an empty PTE would
 * fault into our own handler), so first UFFDIO_COPY a private page there
 * without waking the waiter.  Its content is unique to the region and page
 * (a per-region random value and the address), never zero: a zero page or
 * one equal to another page could be merged by KSM between the copy and the
 * madvise, and the memory failure would then hit the shared page.  The
 * kernel replaces the PTE by a hardware-poison entry (the physical page is
 * retired for good), so every access raises SIGBUS BUS_MCEERR_AR, and a
 * vCPU's KVM_RUN gets the same signal, which the VMM turns into a machine
 * check.  On failure the copied page is zapped again (wrong data is never
 * left mapped) and -errno is returned; the waiter is still blocked.
 */
static int hwpoison_page(struct ebb_region *r, uint64_t pfn)
{
	uint64_t addr = page_addr(r, pfn), *w = r->iobuf;
	struct uffdio_copy cp = {
		.dst = addr,
		.src = (uint64_t)(uintptr_t)r->iobuf,
		.len = EBB_PAGE_SIZE,
		.mode = UFFDIO_COPY_MODE_DONTWAKE,
	};
	int err;

	if (r->inj[EBB_INJ_MADV_HWPOISON].nr) {
		if (r->inj[EBB_INJ_MADV_HWPOISON].skip) {
			r->inj[EBB_INJ_MADV_HWPOISON].skip--;
		} else {
			r->inj[EBB_INJ_MADV_HWPOISON].nr--;
			return -r->inj[EBB_INJ_MADV_HWPOISON].err;
		}
	}
	for (size_t i = 0; i < EBB_PAGE_SIZE / sizeof(*w); i++)
		w[i] = r->lost_cookie ^ (addr + i * sizeof(*w));
	if (uffd_ioctl(r, EBB_INJ_UFFD_COPY, UFFDIO_COPY, &cp) < 0)
		return -errno;  /* EEXIST: something is mapped there (caller decides) */
	if (madvise((void *)(uintptr_t)addr, EBB_PAGE_SIZE, MADV_HWPOISON) == 0)
		return 0;
	err = errno;
	madvise((void *)(uintptr_t)addr, EBB_PAGE_SIZE, MADV_DONTNEED);
	return -err;
}

static void poison_page(struct ebb_region *r, uint64_t pfn)
{
	struct uffdio_poison po = {
		.range = { .start = page_addr(r, pfn), .len = EBB_PAGE_SIZE },
		.mode = 0,
	};
	int err = EOPNOTSUPP, herr = 0;

	if (r->have_poison) {
		if (uffd_ioctl(r, EBB_INJ_UFFD_POISON, UFFDIO_POISON, &po) == 0) {
			r->c.nr_lost_uffd_poison++;
			return;
		}
		if (errno == EEXIST) {
			/*
			 * POISON refuses any non-empty PTE, including a uffd-wp
			 * marker (WP_ASYNC implies WP_UNPOPULATED).  Un-protecting
			 * the page clears the marker; then poison again.
			 */
			struct uffdio_writeprotect wp = {
				.range = po.range,
				.mode = UFFDIO_WRITEPROTECT_MODE_DONTWAKE,
			};

			uffd_ioctl(r, EBB_INJ_UFFD_WRITEPROTECT, UFFDIO_WRITEPROTECT, &wp);
			po.updated = 0;
			if (uffd_ioctl(r, EBB_INJ_UFFD_POISON, UFFDIO_POISON, &po) == 0) {
				r->c.nr_lost_uffd_poison++;
				return;
			}
			if (errno == EEXIST) {
				/* Already poisoned (a second message for the same fault). */
				uffd_wake(r, po.range.start, EBB_PAGE_SIZE);
				return;
			}
		}
		err = errno;
	} else {
		/*
		 * No UFFDIO_POISON (kernels before 6.6, e.g. the host-box's
		 * 6.1): MADV_HWPOISON, where the kernel has memory failure
		 * handling and we have CAP_SYS_ADMIN.  Not tried when
		 * UFFDIO_POISON exists but failed: newer kernels (6.10+) send
		 * the caller of MADV_HWPOISON a SIGBUS of its own.
		 */
		herr = hwpoison_page(r, pfn);
		if (herr == 0) {
			r->c.nr_lost_hwpoison++;
			uffd_wake(r, po.range.start, EBB_PAGE_SIZE);
			return;
		}
		if (herr == -EEXIST) {
			/* Already poisoned (a second message for the same fault). */
			uffd_wake(r, po.range.start, EBB_PAGE_SIZE);
			return;
		}
		err = -herr;
	}
	/*
	 * Neither works.  The faulting thread must neither block forever nor
	 * read wrong data: map an empty memfd over the page (MAP_SHARED past
	 * its end of file), so that every access raises SIGBUS (BUS_ADRERR;
	 * a vCPU gets no machine check: in the box it hung), and wake the
	 * waiters.  Counted.
	 */
	if (sigbus_page(r, pfn) == 0) {
		r->c.nr_lost_sigbus++;
		RLOG(r, &r->rl_fault, EBB_LOG_ERROR,
		     "%s: page %llu lost and cannot be poisoned (%s%s): every access to it now raises SIGBUS (BUS_ADRERR, not a machine check)",
		     r->cfg.name, (unsigned long long)pfn,
		     r->have_poison ? "UFFDIO_POISON: " : "MADV_HWPOISON: ", strerror(err));
		uffd_wake(r, po.range.start, EBB_PAGE_SIZE);
		return;
	}
	RLOG(r, &r->rl_fault, EBB_LOG_ERROR,
	     "%s: page %llu lost and cannot be poisoned (%s) nor unmapped (%s): faulting thread left blocked",
	     r->cfg.name, (unsigned long long)pfn, strerror(err), strerror(errno));
}

/*
 * A write fault on an empty page gets a private zeroed page at once
 * (UFFDIO_COPY): mapping the shared zero page would only make the thread
 * fault again for copy-on-write, with one more TLB flush.  Read faults get
 * UFFDIO_ZEROPAGE, which costs no memory until written.
 */
static void fault_zero(struct ebb_region *r, uint64_t pfn, bool write)
{
	struct uffdio_zeropage zp = {
		.range = { .start = page_addr(r, pfn), .len = EBB_PAGE_SIZE },
		.mode = 0,
	};
	struct ebb_page *p = &r->lru->pages[pfn];

	if (write) {
		struct uffdio_copy cp = {
			.dst = page_addr(r, pfn),
			.src = (uint64_t)(uintptr_t)r->zero_buf,
			.len = EBB_PAGE_SIZE,
			.mode = 0,
		};

		if (uffd_ioctl(r, EBB_INJ_UFFD_COPY, UFFDIO_COPY, &cp) < 0) {
			if (errno != EEXIST)
				RLOG(r, &r->rl_fault, EBB_LOG_ERROR, "%s: zero fill of page %llu: %s",
				     r->cfg.name, (unsigned long long)pfn, strerror(errno));
			uffd_wake(r, page_addr(r, pfn), EBB_PAGE_SIZE);
			if (errno != EEXIST)
				return;
		}
	} else if (uffd_ioctl(r, EBB_INJ_UFFD_ZEROPAGE, UFFDIO_ZEROPAGE, &zp) < 0) {
		/*
		 * EEXIST with no page present: the PTE holds a uffd-wp marker
		 * (WP_ASYNC implies WP_UNPOPULATED), which ZEROPAGE refuses but
		 * COPY accepts.  Install a real zeroed page instead.
		 */
		struct uffdio_copy cp = {
			.dst = page_addr(r, pfn),
			.src = (uint64_t)(uintptr_t)r->zero_buf,
			.len = EBB_PAGE_SIZE,
			.mode = r->wp_tracking ? UFFDIO_COPY_MODE_WP : 0,
		};

		if (errno != EEXIST || uffd_ioctl(r, EBB_INJ_UFFD_COPY, UFFDIO_COPY, &cp) < 0) {
			if (errno != EEXIST) {
				RLOG(r, &r->rl_fault, EBB_LOG_ERROR, "%s: zero fill of page %llu: %s",
				     r->cfg.name, (unsigned long long)pfn, strerror(errno));
				uffd_wake(r, page_addr(r, pfn), EBB_PAGE_SIZE);
				return;
			}
			uffd_wake(r, page_addr(r, pfn), EBB_PAGE_SIZE);
		}
	}
	if (p->state == EBB_PAGE_ZERO || p->state == EBB_PAGE_BALLOONED)
		r->c.nr_zero_in++;
	ebb_lru_page_in(r->lru, (uint32_t)pfn, false);
	if (r->cfg.on_fault)
		r->cfg.on_fault(r->cfg.on_fault_ctx, pfn, false);
}

/*
 * Swap-in.  On a write fault the page is about to be written: it is mapped
 * writable and its store copy released at once (it would be stale after
 * the write anyway); readahead pages and read faults are mapped
 * write-protected (with dirty tracking on) and keep their copy.
 */
static void fault_swapped(struct ebb_region *r, uint64_t pfn, bool write)
{
	uint32_t ids[MAX_RA];
	uint64_t slot0, limit = r->high_pages ? r->high_pages : r->max_pages;
	size_t k = 1, max_ra = r->cfg.readahead_pages;
	int got = -EIO;

	ids[0] = r->lru->pages[pfn].swap_id;
	slot0 = ebb_swap_entry_slot(r->store, ids[0]);
	if (max_ra > MAX_RA)
		max_ra = MAX_RA;
	/* Readahead: following pages whose file slots follow this one's. */
	if (slot0 != UINT64_MAX && max_ra > 1 &&
	    (!limit || resident(r) + max_ra <= limit)) {
		while (k < max_ra && pfn + k < r->nr_pages) {
			struct ebb_page *q = &r->lru->pages[pfn + k];

			if (q->state != EBB_PAGE_SWAPPED ||
			    ebb_swap_entry_slot(r->store, q->swap_id) != slot0 + k)
				break;
			ids[k] = q->swap_id;
			k++;
		}
	}
	if (r->inj_lose_pfn >= pfn && r->inj_lose_pfn < pfn + k) {
		/* Test hook: this page's load fails; a run stops before it. */
		if (r->inj_lose_pfn > pfn)
			k = (size_t)(r->inj_lose_pfn - pfn);
		else
			k = 0;
	}
	for (int attempt = 0; k && attempt < LOAD_RETRIES; attempt++) {
		got = ebb_swap_load_run(r->store, ids, k, r->iobuf);
		if (got > 0 || got == -EBADMSG || got == -ENOENT)
			break;
	}
	if (k == 0)
		r->inj_lose_pfn = UINT64_MAX;
	if (got <= 0) {
		r->c.nr_swapin_errors++;
		r->c.nr_lost_pages++;
		RLOG(r, NULL, EBB_LOG_ERROR,
		     "%s: SWAP-IN FAILED for page %llu (entry %u): %s; page marked lost",
		     r->cfg.name, (unsigned long long)pfn, ids[0], strerror(-got));
		ebb_swap_put(r->store, ids[0]);
		ebb_lru_forget(r->lru, (uint32_t)pfn, EBB_PAGE_LOST);
		poison_page(r, pfn);
		return;
	}
	k = (size_t)got;
	bool wp = r->wp_tracking || r->wp_swapin;
	struct uffdio_copy cp = {
		.dst = page_addr(r, pfn),
		.src = (uint64_t)(uintptr_t)r->iobuf,
		.len = k * EBB_PAGE_SIZE,
		.mode = wp ? UFFDIO_COPY_MODE_WP : 0,
	};
	if (write && wp) {
		/* The faulting page writable, the readahead rest protected. */
		struct uffdio_copy first = cp;

		first.len = EBB_PAGE_SIZE;
		first.mode = UFFDIO_COPY_MODE_DONTWAKE;
		if (uffd_ioctl(r, EBB_INJ_UFFD_COPY, UFFDIO_COPY, &first) < 0 && errno != EEXIST) {
			RLOG(r, &r->rl_fault, EBB_LOG_ERROR, "%s: UFFDIO_COPY page %llu: %s",
			     r->cfg.name, (unsigned long long)pfn, strerror(errno));
			uffd_wake(r, page_addr(r, pfn), EBB_PAGE_SIZE);
			return;
		}
		if (k > 1) {
			cp.dst += EBB_PAGE_SIZE;
			cp.src += EBB_PAGE_SIZE;
			cp.len -= EBB_PAGE_SIZE;
			if (uffd_ioctl(r, EBB_INJ_UFFD_COPY, UFFDIO_COPY, &cp) < 0)
				k = 1 + (cp.copy > 0 ? (size_t)cp.copy / EBB_PAGE_SIZE : 0);
		}
		uffd_wake(r, page_addr(r, pfn), EBB_PAGE_SIZE);
	} else if (uffd_ioctl(r, EBB_INJ_UFFD_COPY, UFFDIO_COPY, &cp) < 0) {
		int err = errno;
		size_t copied = cp.copy > 0 ? (size_t)cp.copy / EBB_PAGE_SIZE : 0;

		if (copied == 0) {
			/* Only the faulting page matters; the rest was readahead. */
			if (err != EEXIST)
				RLOG(r, &r->rl_fault, EBB_LOG_ERROR, "%s: UFFDIO_COPY page %llu: %s",
				     r->cfg.name, (unsigned long long)pfn, strerror(err));
			uffd_wake(r, page_addr(r, pfn), EBB_PAGE_SIZE);
			if (err != EEXIST)
				return;
			copied = 1;
		}
		k = copied;
		uffd_wake(r, page_addr(r, pfn), EBB_PAGE_SIZE);
	}
	for (size_t i = 0; i < k; i++) {
		uint32_t p = (uint32_t)(pfn + i);
		struct ebb_page *pg = &r->lru->pages[p];

		/*
		 * A write fault keeps the copy too, marked suspect: KVM's async
		 * page fault worker faults guest pages in with FOLL_WRITE even for
		 * a guest read (seen in the host-box: nearly every swap-in there
		 * was a write fault), and the page, mapped writable, is then
		 * reported written by the dirty log once.  The first "written"
		 * report of a suspect page is ignored (ebb_lru_reference); a copy
		 * that did go stale is caught at eviction, where a clean page is
		 * dropped only if its content still hashes to its copy.
		 */
		bool keep = r->cfg.keep_clean_copies;
		bool suspect = i == 0 && write;

		if (!keep) {
			ebb_swap_put(r->store, pg->swap_id);
			pg->swap_id = EBB_SWAP_NONE;
		}
		if (i > 0) {
			pg->flags &= (uint16_t)~EBB_PF_SHADOW; /* not a refault */
			r->c.nr_readahead++;
		}
		ebb_lru_page_in(r->lru, p, keep);
		if (i > 0)
			pg->flags |= EBB_PF_READAHEAD;
		if (keep && suspect)
			pg->flags |= EBB_PF_SUSPECT;
		r->c.nr_swapped_in++;
	}
	r->c.nr_major_faults++;
	if (r->cfg.on_fault)
		r->cfg.on_fault(r->cfg.on_fault_ctx, pfn, true);
}

/* Serve one fault; r->lock held. */
static void handle_one(struct ebb_region *r, const struct uffd_msg *m)
{
	uint64_t addr = m->arg.pagefault.address & ~(uint64_t)(EBB_PAGE_SIZE - 1);
	uint64_t pfn;
	struct ebb_page *p;
	bool write;

	/* GUEST: the address comes from whoever touched memory; validate it. */
	if (addr < r->base || addr - r->base >= r->nr_pages * EBB_PAGE_SIZE) {
		uint64_t s = (uint64_t)(uintptr_t)r->scratch;

		r->c.nr_bad_fault++;
		RLOG(r, &r->rl_fault, EBB_LOG_ERROR, "%s: fault at %#llx outside the region",
		     r->cfg.name, (unsigned long long)addr);
		if (addr >= s && addr < s + EBB_SWAP_CLUSTER_MAX * EBB_PAGE_SIZE) {
			struct uffdio_zeropage zp = { .range = { addr, EBB_PAGE_SIZE }, .mode = 0 };

			uffd_ioctl(r, EBB_INJ_UFFD_ZEROPAGE, UFFDIO_ZEROPAGE, &zp);
		}
		uffd_wake(r, addr, EBB_PAGE_SIZE);
		return;
	}
	pfn = (addr - r->base) / EBB_PAGE_SIZE;
	write = !!(m->arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WRITE);
	r->c.nr_faults++;
	if ((m->arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP) &&
	    r->lru->pages[pfn].state == EBB_PAGE_RESIDENT) {
		/*
		 * The first write to a page mapped write-protected at swap-in (or
		 * one that met an eviction's protection and stayed): from now on
		 * it differs from its copy.  Un-protect (this wakes the writer)
		 * and drop the copy, as a dirty-log report of the write would.
		 */
		uint32_t stale;

		r->c.nr_wp_faults++;
		if (wp_range(r, pfn, 1, false))
			uffd_wake(r, addr, EBB_PAGE_SIZE);
		stale = ebb_lru_reference(r->lru, (uint32_t)pfn, true);
		if (stale != EBB_SWAP_NONE)
			ebb_swap_put(r->store, stale);
		return;
	}
	if (r->lru->pages[pfn].state == EBB_PAGE_RESIDENT) {
		bool backed = true;

		/*
		 * A missing fault on a page we hold resident: another thread's
		 * fault on it was served first (spurious), unless its PTE is
		 * really empty — its content is gone, and waking the thread
		 * would only make it fault again forever.
		 */
		if (!(m->arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP) &&
		    backed_pages(r, pfn, 1, &backed) == 0 && !backed) {
			uint32_t id = ebb_lru_forget(r->lru, (uint32_t)pfn, EBB_PAGE_LOST);

			if (id != EBB_SWAP_NONE)
				ebb_swap_put(r->store, id);
			r->c.nr_lost_pages++;
			RLOG(r, NULL, EBB_LOG_ERROR, "%s: PAGE LOST: resident page %llu has no content",
			     r->cfg.name, (unsigned long long)pfn);
			poison_page(r, pfn);
			return;
		}
		r->c.nr_spurious++;
		uffd_wake(r, addr, EBB_PAGE_SIZE);
		return;
	}
	if (ensure_room(r, 1, pfn))
		r->c.nr_max_overrun++;
	p = &r->lru->pages[pfn];
	switch (p->state) {
	case EBB_PAGE_RESIDENT:     /* resolved while we waited */
		r->c.nr_spurious++;
		uffd_wake(r, addr, EBB_PAGE_SIZE);
		break;
	case EBB_PAGE_SWAPPED:
		fault_swapped(r, pfn, write);
		break;
	case EBB_PAGE_LOST:
		poison_page(r, pfn);
		break;
	default:
		fault_zero(r, pfn, write);
		break;
	}
}

/* Sleep in poll() up to @timeout_ms for fault messages; read a batch.
 * Returns the number of messages read (0: none) or -errno. */
static ssize_t wait_msgs(struct ebb_region *r, struct uffd_msg *msgs, int timeout_ms)
{
	struct pollfd pfd[2] = {
		{ .fd = r->uffd, .events = POLLIN },
		{ .fd = r->stop_fd, .events = POLLIN },
	};
	ssize_t n;

	if (poll(pfd, 2, timeout_ms) < 0)
		return errno == EINTR ? 0 : -errno;
	if (!(pfd[0].revents & POLLIN))
		return 0;
	n = read(r->uffd, msgs, sizeof(*msgs) * MSG_BATCH);
	if (n < 0)
		return errno == EAGAIN || errno == EINTR ? 0 : -errno;
	return n / (ssize_t)sizeof(*msgs);
}

/* Spin on the non-blocking uffd for up to @window_ns (see "Polling").
 * Returns the number of messages read (0: the window ran out). */
static ssize_t spin_msgs(struct ebb_region *r, struct uffd_msg *msgs, uint64_t window_ns)
{
	uint64_t t0 = mono_ns(), t = t0;
	ssize_t n = 0;

	for (;;) {
		n = read(r->uffd, msgs, sizeof(*msgs) * MSG_BATCH);
		if (n > 0) {
			n /= (ssize_t)sizeof(*msgs);
			t = mono_ns();
			break;
		}
		n = 0;
		if (errno != EAGAIN && errno != EINTR)
			break;
		t = mono_ns();
		if (t - t0 >= window_ns)
			break;
		sched_yield();
	}
	atomic_fetch_add_explicit(&r->poll_spin_ns, t - t0, memory_order_relaxed);
	return n;
}

void ebb_poll_init(struct ebb_poll *p, uint64_t max_ns)
{
	memset(p, 0, sizeof(*p));
	p->max_ns = max_ns;
	p->on = max_ns != 0;
	p->prefer_on = p->on;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

void ebb_poll_cycle(struct ebb_poll *p, uint64_t cycle_ns)
{
	uint64_t med, *avg;

	if (!p->max_ns)
		return;
	p->cycle_ns[p->nr_cycles++] = cycle_ns > UINT32_MAX ? UINT32_MAX : (uint32_t)cycle_ns;
	if (p->nr_cycles < EBB_POLL_EPOCH)
		return;
	/* The median: one descheduled cycle must not decide. */
	qsort(p->cycle_ns, EBB_POLL_EPOCH, sizeof(p->cycle_ns[0]), cmp_u32);
	med = p->cycle_ns[EBB_POLL_EPOCH / 2];
	avg = &p->avg_cycle_ns[p->on];
	*avg = *avg ? (3 * *avg + med) / 4 : med;
	if (!*avg)
		*avg = 1;
	p->nr_cycles = 0;
	p->nr_epochs++;
	if (p->avg_cycle_ns[0] && p->avg_cycle_ns[1])
		p->prefer_on = p->avg_cycle_ns[1] <= p->avg_cycle_ns[0];
	/* Probe the other mode in the 2nd epoch, then every 8th. */
	p->on = p->nr_epochs % EBB_POLL_PROBE_EVERY == 1 ? !p->prefer_on : p->prefer_on;
}

void ebb_poll_adapt(struct ebb_poll *p, uint64_t wait_ns, bool hit)
{
	if (!p->max_ns) {
		p->window_ns = 0;
		return;
	}
	if (hit)
		return;                 /* the window was long enough */
	if (wait_ns > p->max_ns) {
		/* Longer than we would ever spin: the VM went quiet. */
		p->window_ns /= 2;
		if (p->window_ns < EBB_POLL_START_NS)
			p->window_ns = 0;
	} else if (p->window_ns < wait_ns) {
		/* A wake that spinning a little longer would have saved. */
		p->window_ns = p->window_ns ? p->window_ns * 2 : EBB_POLL_START_NS;
		if (p->window_ns > p->max_ns)
			p->window_ns = p->max_ns;
	}
}

/* Serve @n fault messages; takes r->lock.  Returns the faults served. */
static int serve_msgs(struct ebb_region *r, const struct uffd_msg *msgs, ssize_t n)
{
	int served = 0;

	if (n <= 0)
		return 0;
	pthread_mutex_lock(&r->lock);
	uint64_t t = now_ns(r);

	for (ssize_t i = 0; i < n; i++)
		if (msgs[i].event == UFFD_EVENT_PAGEFAULT)
			ebb_psi_stall_begin(&r->psi, t);
	for (ssize_t i = 0; i < n; i++) {
		if (msgs[i].event != UFFD_EVENT_PAGEFAULT)
			continue;
		handle_one(r, &msgs[i]);
		ebb_psi_stall_end(&r->psi, now_ns(r));
		served++;
		/* Let a reader of the counters in between faults (each fault's
		 * direct reclaim is bounded; see ensure_room). */
		if (i + 1 < n && atomic_load_explicit(&r->nr_readers_waiting, memory_order_relaxed)) {
			publish_locked(r);
			pthread_mutex_unlock(&r->lock);
			sched_yield();
			pthread_mutex_lock(&r->lock);
		}
	}
	publish_locked(r);
	pthread_mutex_unlock(&r->lock);
	return served;
}

int ebb_region_handle_faults(struct ebb_region *r, int timeout_ms)
{
	struct uffd_msg msgs[MSG_BATCH];
	ssize_t n = wait_msgs(r, msgs, timeout_ms);

	return n < 0 ? (int)n : serve_msgs(r, msgs, n);
}

/* ---- threads ------------------------------------------------------------- */

static void *handler_main(void *arg)
{
	struct ebb_region *r = arg;
	struct uffd_msg msgs[MSG_BATCH];
	uint64_t idle_since = mono_ns(), last_arrival = 0;

	for (;;) {
		ssize_t n = 0;
		bool hit = false;
		uint64_t arrival;

		pthread_mutex_lock(&r->lock);
		bool stop = r->stopping;

		pthread_mutex_unlock(&r->lock);
		if (stop)
			break;
		if (r->poll.window_ns && r->poll.on) {
			n = spin_msgs(r, msgs, r->poll.window_ns);
			hit = n > 0;
			atomic_fetch_add_explicit(hit ? &r->nr_poll_hits : &r->nr_poll_misses, 1,
						  memory_order_relaxed);
		}
		if (!n)
			n = wait_msgs(r, msgs, 100);
		arrival = mono_ns();
		ebb_poll_adapt(&r->poll, arrival - idle_since, hit);
		atomic_store_explicit(&r->poll_window_ns, r->poll.window_ns, memory_order_relaxed);
		/* A storm's cycle: from one fault's arrival to the next's, with
		 * the faulting thread's wake and run in between.  Waits longer
		 * than the cap are not a storm: polling could not catch them. */
		if (n > 0 && last_arrival && arrival - idle_since <= r->poll.max_ns) {
			bool was_on = r->poll.on;
			uint64_t nr_epochs = r->poll.nr_epochs;

			ebb_poll_cycle(&r->poll, arrival - last_arrival);
			if (r->poll.nr_epochs != nr_epochs) {
				if (!was_on)
					atomic_fetch_add_explicit(&r->nr_poll_epochs_off, 1, memory_order_relaxed);
				atomic_store_explicit(&r->poll_cycle_on_ns, r->poll.avg_cycle_ns[1],
						      memory_order_relaxed);
				atomic_store_explicit(&r->poll_cycle_off_ns, r->poll.avg_cycle_ns[0],
						      memory_order_relaxed);
			}
		}
		if (n > 0)
			last_arrival = arrival;
		/* After nothing in 100 ms, idle_since stays: the quiet keeps
		 * counting, and the window keeps shrinking to 0. */
		if (n > 0) {
			serve_msgs(r, msgs, n);
			idle_since = mono_ns();
		}
		atomic_store_explicit(&r->handler_cpu_ns, thread_cpu_ns(), memory_order_relaxed);
	}
	return NULL;
}

static void *bg_main(void *arg)
{
	struct ebb_region *r = arg;

	for (;;) {
		int64_t got = ebb_region_step(r, now_ns(r));
		struct timespec ts;

		pthread_mutex_lock(&r->lock);
		if (r->stopping) {
			pthread_mutex_unlock(&r->lock);
			break;
		}
		/* Busy reclaiming: yield briefly; idle: sleep 10 ms or until woken. */
		timespec_after(&ts, got > 0 ? 100000 : 10000000);
		pthread_cond_timedwait(&r->bg_cv, &r->lock, &ts);
		pthread_mutex_unlock(&r->lock);
	}
	return NULL;
}

int ebb_region_start(struct ebb_region *r)
{
	sigset_t all, old;
	int ret;

	if (!r || r->threads_running)
		return -EINVAL;
	r->stopping = false;
	/*
	 * The engine's threads take no process-directed signal: a SIGTERM the
	 * owner means to read from a signalfd (which it blocks only later, or
	 * only in its own threads) must not land here and kill the process by
	 * its default action.  Faults (SIGSEGV, SIGBUS) stay deliverable.
	 */
	sigfillset(&all);
	sigdelset(&all, SIGSEGV);
	sigdelset(&all, SIGBUS);
	sigdelset(&all, SIGFPE);
	sigdelset(&all, SIGILL);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	ret = pthread_create(&r->handler_thread, NULL, handler_main, r);
	if (ret) {
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		return -ret;
	}
	ret = pthread_create(&r->bg_thread, NULL, bg_main, r);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (ret) {
		uint64_t one = 1;

		pthread_mutex_lock(&r->lock);
		r->stopping = true;
		pthread_mutex_unlock(&r->lock);
		if (write(r->stop_fd, &one, sizeof(one)) < 0) {
			/* the 100 ms poll timeout still ends the handler */
		}
		pthread_join(r->handler_thread, NULL);
		if (read(r->stop_fd, &one, sizeof(one)) < 0) {
			/* EAGAIN: nothing to drain (see ebb_region_stop) */
		}
		return -ret;
	}
	r->threads_running = true;
	return 0;
}

void ebb_region_stop(struct ebb_region *r)
{
	uint64_t one = 1;

	if (!r || !r->threads_running)
		return;
	pthread_mutex_lock(&r->lock);
	r->stopping = true;
	pthread_cond_broadcast(&r->bg_cv);
	pthread_cond_broadcast(&r->room_cv);
	pthread_mutex_unlock(&r->lock);
	if (write(r->stop_fd, &one, sizeof(one)) < 0) {
		/* the handler also wakes from its 100 ms poll timeout */
	}
	pthread_join(r->handler_thread, NULL);
	pthread_join(r->bg_thread, NULL);
	r->threads_running = false;
	/* Drain the eventfd: left readable, it would wake the next start's
	 * handler out of every poll() at once, a busy loop. */
	if (read(r->stop_fd, &one, sizeof(one)) < 0) {
		/* EAGAIN: nothing to drain */
	}
	pthread_mutex_lock(&r->lock);
	r->stopping = false;
	pthread_mutex_unlock(&r->lock);
}

/* ---- create / destroy ---------------------------------------------------- */

static int uffd_register(int uffd, uint64_t start, uint64_t len, uint64_t mode)
{
	struct uffdio_register reg = { .range = { .start = start, .len = len }, .mode = mode };

	return ioctl(uffd, UFFDIO_REGISTER, &reg) < 0 ? -errno : 0;
}

/* Pages already present (in RAM or in host swap) when the region is created start resident. */
static int adopt_resident(struct ebb_region *r)
{
	bool backed[4096];

	for (uint64_t pfn = 0; pfn < r->nr_pages; pfn += 4096) {
		uint64_t cnt = r->nr_pages - pfn < 4096 ? r->nr_pages - pfn : 4096;
		int ret = backed_pages(r, pfn, cnt, backed);

		if (ret)
			return ret;
		for (uint64_t i = 0; i < cnt; i++)
			if (backed[i])
				ebb_lru_page_in(r->lru, (uint32_t)(pfn + i), false);
	}
	return 0;
}

static int wp_resident_runs(struct ebb_region *r)
{
	uint64_t pfn = 0;

	while (pfn < r->nr_pages) {
		uint64_t end;

		if (r->lru->pages[pfn].state != EBB_PAGE_RESIDENT) {
			pfn++;
			continue;
		}
		for (end = pfn; end < r->nr_pages && r->lru->pages[end].state == EBB_PAGE_RESIDENT; end++)
			;
		struct uffdio_writeprotect wp = {
			.range = { .start = page_addr(r, pfn), .len = (end - pfn) * EBB_PAGE_SIZE },
			.mode = UFFDIO_WRITEPROTECT_MODE_WP,
		};
		if (ioctl(r->uffd, UFFDIO_WRITEPROTECT, &wp) < 0)
			return -errno;
		pfn = end;
	}
	return 0;
}

int ebb_region_create(const struct ebb_region_cfg *cfg, struct ebb_region **out)
{
	struct ebb_region *r;
	uint64_t want, mode;
	int ret;

	*out = NULL;
	/* CLIENT: the owner's configuration. */
	if (!cfg || !cfg->base || !cfg->size_bytes ||
	    ((uintptr_t)cfg->base | cfg->size_bytes) & (EBB_PAGE_SIZE - 1) ||
	    cfg->size_bytes / EBB_PAGE_SIZE > EBB_LRU_MAX_PAGES ||
	    cfg->swappiness < 0 || cfg->swappiness > 200 ||
	    cfg->poll_max_ns > EBB_POLL_LIMIT_NS ||
	    (cfg->max_pages && cfg->high_pages > cfg->max_pages))
		return -EINVAL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->cfg = *cfg;
	r->uffd = -1;
	r->stop_fd = -1;
	r->pagemap_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	r->lost_fd = -1;
	r->inj_lose_pfn = UINT64_MAX;
	if (getrandom(&r->lost_cookie, sizeof(r->lost_cookie), 0) != sizeof(r->lost_cookie))
		r->lost_cookie = mono_ns() * 0x9e3779b97f4a7c15ull ^ (uint64_t)(uintptr_t)r;
	r->base = (uint64_t)(uintptr_t)cfg->base;
	r->nr_pages = cfg->size_bytes / EBB_PAGE_SIZE;
	r->high_pages = cfg->high_pages;
	r->max_pages = cfg->max_pages;
	ebb_poll_init(&r->poll, cfg->poll_max_ns);
	if (r->cfg.reclaim_batch_pages == 0)
		r->cfg.reclaim_batch_pages = 256;
	if (r->cfg.aging_interval_ns == 0)
		r->cfg.aging_interval_ns = 100ULL * 1000 * 1000;
	pthread_mutex_init(&r->lock, NULL);
	pthread_mutex_init(&r->snap_lock, NULL);
	{
		pthread_condattr_t ca;

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&r->room_cv, &ca);
		pthread_cond_init(&r->bg_cv, &ca);
		pthread_condattr_destroy(&ca);
	}
	ebb_psi_init(&r->psi, cfg->nr_threads, now_ns(r));
	r->last_age_ns = now_ns(r);

	ret = ebb_lru_create((uint32_t)r->nr_pages, &r->lru);
	if (ret)
		goto err;
	if (ret)
		goto err;
	r->ref_bitmap = calloc((r->nr_pages + 63) / 64, 8);
	r->iobuf = aligned_alloc(EBB_PAGE_SIZE, MAX_RA * EBB_PAGE_SIZE);
	r->zero_buf = aligned_alloc(EBB_PAGE_SIZE, EBB_PAGE_SIZE);
	if (!r->ref_bitmap || !r->iobuf || !r->zero_buf) {
		ret = -ENOMEM;
		goto err;
	}
	memset(r->zero_buf, 0, EBB_PAGE_SIZE);
	{
		struct ebb_swap_cfg sc = cfg->swap;

		if (!sc.name)
			sc.name = cfg->name;
		if (!sc.log) {
			sc.log = cfg->log;
			sc.log_ctx = cfg->log_ctx;
		}
		if (!sc.clock_ns) {
			sc.clock_ns = cfg->clock_ns;
			sc.clock_ctx = cfg->clock_ctx;
		}
		ret = ebb_swap_create(&sc, &r->store);
		if (ret)
			goto err;
	}

	want = UFFD_FEATURE_THREAD_ID;
	ret = ebb_region_probe(&r->uffd_features);
	if (ret)
		goto err;
	{
		bool can_move = r->uffd_features & UFFD_FEATURE_MOVE;
		bool can_wp = r->uffd_features & UFFD_FEATURE_PAGEFAULT_FLAG_WP;

		ret = -EOPNOTSUPP;
		if ((cfg->evict_mode == EBB_EVICT_MOVE && !can_move) ||
		    (cfg->evict_mode == EBB_EVICT_WP && !can_wp))
			goto err;
		r->evict_wp = cfg->evict_mode == EBB_EVICT_WP ||
			      (cfg->evict_mode == EBB_EVICT_AUTO && !can_move);
	}
	if (!r->evict_wp)
		want |= UFFD_FEATURE_MOVE;
	if (r->uffd_features & UFFD_FEATURE_POISON)
		want |= UFFD_FEATURE_POISON;
	/* Async WP resolves every write fault in the kernel: not with WP eviction. */
	if (!r->evict_wp && cfg->dirty_tracking == EBB_DIRTY_AUTO &&
	    (r->uffd_features & UFFD_FEATURE_WP_ASYNC))
		want |= UFFD_FEATURE_WP_ASYNC;
	ret = uffd_open(want, &r->uffd_features);
	if (ret < 0)
		goto err;
	/* UFFDIO_API reports what the kernel offers; remember what we enabled. */
	r->uffd_features &= want | ~(uint64_t)(UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_MOVE |
					       UFFD_FEATURE_POISON);
	r->uffd = ret;
	r->have_poison = !!(r->uffd_features & UFFD_FEATURE_POISON);
	r->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (r->stop_fd < 0) {
		ret = -errno;
		goto err;
	}
	r->scratch = mmap(NULL, EBB_SWAP_CLUSTER_MAX * EBB_PAGE_SIZE, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (r->scratch == MAP_FAILED) {
		r->scratch = NULL;
		ret = -errno;
		goto err;
	}
	/* Eviction moves 4 KiB PTEs; keep THP out of both ends. */
	madvise(cfg->base, cfg->size_bytes, MADV_NOHUGEPAGE);
	madvise(r->scratch, EBB_SWAP_CLUSTER_MAX * EBB_PAGE_SIZE, MADV_NOHUGEPAGE);

	mode = UFFDIO_REGISTER_MODE_MISSING;
	/*
	 * Swapped-in pages are mapped write-protected until written, so that a
	 * read stays a read: with a writable host PTE, KVM maps a page writable
	 * on a guest read and its dirty log reports it written, which would drop
	 * the page's clean copy.  Sync WP faults (5.7+) on every kernel the
	 * engine runs on; WP_ASYNC tracking does the same in the kernel.
	 */
	r->wp_swapin = cfg->keep_clean_copies && (r->uffd_features & UFFD_FEATURE_PAGEFAULT_FLAG_WP) &&
		       !(r->uffd_features & UFFD_FEATURE_WP_ASYNC);
	if ((r->uffd_features & UFFD_FEATURE_WP_ASYNC) || r->evict_wp || r->wp_swapin)
		mode |= UFFDIO_REGISTER_MODE_WP;
	ret = uffd_register(r->uffd, r->base, cfg->size_bytes, mode);
	if (ret)
		goto err;
	ret = uffd_register(r->uffd, (uint64_t)(uintptr_t)r->scratch,
			    EBB_SWAP_CLUSTER_MAX * EBB_PAGE_SIZE, mode);
	if (ret)
		goto err;
	ret = adopt_resident(r);
	if (ret)
		goto err;
	if ((r->uffd_features & UFFD_FEATURE_WP_ASYNC) && !r->evict_wp) {
		void *ctx;

		/*
		 * Async write tracking only: with sync WP (wp_swapin, as the VMM
		 * runs) the kernel refuses PAGEMAP_SCAN's write-protect pass on
		 * the range (EPERM), so that source would fail every harvest.
		 * Arm write tracking on the pages present now.  Only on those:
		 * protecting holes would install uffd-wp markers there (see
		 * fault_zero).  Pages installed later are mapped protected.
		 */
		ret = wp_resident_runs(r);
		if (ret == 0 && ebb_refsrc_pagemap_create(r->uffd, cfg->base, r->nr_pages, &ctx) == 0) {
			r->src[r->nr_src].ops = &ebb_refsrc_pagemap_ops;
			r->src[r->nr_src].ctx = ctx;
			r->nr_src++;
			r->wp_tracking = true;
		}
	}
	*out = r;
	return 0;
err:
	ebb_region_destroy(r);
	return ret;
}

void ebb_region_destroy(struct ebb_region *r)
{
	if (!r)
		return;
	ebb_region_stop(r);
	if (r->uffd >= 0) {
		struct uffdio_range rg = { .start = r->base, .len = r->nr_pages * EBB_PAGE_SIZE };

		ioctl(r->uffd, UFFDIO_UNREGISTER, &rg);
		if (r->scratch) {
			rg.start = (uint64_t)(uintptr_t)r->scratch;
			rg.len = EBB_SWAP_CLUSTER_MAX * EBB_PAGE_SIZE;
			ioctl(r->uffd, UFFDIO_UNREGISTER, &rg);
		}
		close(r->uffd);
	}
	if (r->stop_fd >= 0)
		close(r->stop_fd);
	if (r->pagemap_fd >= 0)
		close(r->pagemap_fd);
	if (r->lost_fd >= 0)
		close(r->lost_fd);
	if (r->scratch)
		munmap(r->scratch, EBB_SWAP_CLUSTER_MAX * EBB_PAGE_SIZE);
	for (unsigned s = 0; s < r->nr_src; s++)
		if (r->src[s].ops->destroy)
			r->src[s].ops->destroy(r->src[s].ctx);
	ebb_swap_destroy(r->store);
	ebb_lru_destroy(r->lru);
	free(r->ref_bitmap);
	free(r->iobuf);
	free(r->zero_buf);
	pthread_cond_destroy(&r->room_cv);
	pthread_cond_destroy(&r->bg_cv);
	pthread_mutex_destroy(&r->lock);
	pthread_mutex_destroy(&r->snap_lock);
	free(r);
}

/* ---- owner calls --------------------------------------------------------- */

/* The lock for a read-only owner call: announced, so that the fault handler
 * steps aside between faults instead of serving a whole batch first. */
static void reader_lock(struct ebb_region *r)
{
	atomic_fetch_add_explicit(&r->nr_readers_waiting, 1, memory_order_relaxed);
	pthread_mutex_lock(&r->lock);
	atomic_fetch_sub_explicit(&r->nr_readers_waiting, 1, memory_order_relaxed);
}

int ebb_region_set_limits(struct ebb_region *r, uint64_t high_pages, uint64_t max_pages)
{
	/* CLIENT: limits come from the operator. */
	if (!r || (max_pages && high_pages > max_pages))
		return -EINVAL;
	pthread_mutex_lock(&r->lock);
	r->high_pages = high_pages;
	r->max_pages = max_pages;
	r->reclaim_backoff_until_ns = 0;
	r->bg_backoff_until_ns = 0;
	pthread_cond_broadcast(&r->room_cv);
	pthread_cond_broadcast(&r->bg_cv);
	pthread_mutex_unlock(&r->lock);
	return 0;
}

int ebb_region_set_swappiness(struct ebb_region *r, int swappiness)
{
	/* CLIENT: from the operator.  cfg.swappiness is only read under r->lock. */
	if (!r || swappiness < 0 || swappiness > 200)
		return -EINVAL;
	pthread_mutex_lock(&r->lock);
	r->cfg.swappiness = swappiness;
	pthread_mutex_unlock(&r->lock);
	return 0;
}

int ebb_region_add_refsrc(struct ebb_region *r, const struct ebb_refsrc_ops *ops, void *ctx)
{
	int ret = 0;

	if (!r || !ops || !ops->harvest)
		return -EINVAL;
	pthread_mutex_lock(&r->lock);
	if (r->nr_src >= MAX_REFSRC) {
		ret = -ENOSPC;
	} else {
		r->src[r->nr_src].ops = ops;
		r->src[r->nr_src].ctx = ctx;
		r->nr_src++;
	}
	pthread_mutex_unlock(&r->lock);
	return ret;
}

static int check_range(const struct ebb_region *r, uint64_t first, uint64_t nr)
{
	uint64_t end;

	if (nr == 0 || __builtin_add_overflow(first, nr, &end) || end > r->nr_pages)
		return -ERANGE;
	return 0;
}

int ebb_region_mark_ballooned(struct ebb_region *r, uint64_t first_pfn, uint64_t nr_pages)
{
	uint64_t run_start = UINT64_MAX;

	if (!r)
		return -EINVAL;
	/* GUEST: balloon PFNs come from the guest (validated once more here). */
	if (check_range(r, first_pfn, nr_pages))
		return -ERANGE;
	pthread_mutex_lock(&r->lock);
	for (uint64_t pfn = first_pfn; pfn <= first_pfn + nr_pages; pfn++) {
		bool res = pfn < first_pfn + nr_pages &&
			   r->lru->pages[pfn].state == EBB_PAGE_RESIDENT;

		if (pfn < first_pfn + nr_pages && r->lru->pages[pfn].state != EBB_PAGE_BALLOONED) {
			uint32_t id = ebb_lru_forget(r->lru, (uint32_t)pfn, EBB_PAGE_BALLOONED);

			if (id != EBB_SWAP_NONE)
				ebb_swap_put(r->store, id);
		}
		if (res && run_start == UINT64_MAX)
			run_start = pfn;
		if (!res && run_start != UINT64_MAX) {
			/* Release the run in one call. */
			madvise((void *)(uintptr_t)page_addr(r, run_start),
				(pfn - run_start) * EBB_PAGE_SIZE, MADV_DONTNEED);
			run_start = UINT64_MAX;
		}
	}
	pthread_cond_broadcast(&r->room_cv);
	pthread_mutex_unlock(&r->lock);
	return 0;
}

int ebb_region_set_unevictable(struct ebb_region *r, uint64_t first_pfn, uint64_t nr_pages, bool on)
{
	if (!r)
		return -EINVAL;
	/* CLIENT: */
	if (check_range(r, first_pfn, nr_pages))
		return -ERANGE;
	pthread_mutex_lock(&r->lock);
	for (uint64_t pfn = first_pfn; pfn < first_pfn + nr_pages; pfn++)
		ebb_lru_set_unevictable(r->lru, (uint32_t)pfn, on);
	pthread_mutex_unlock(&r->lock);
	return 0;
}

/* The polling counters are atomics: current even in a published snapshot. */
static void poll_counters(struct ebb_region *r, struct ebb_region_counters *c)
{
	c->nr_poll_hits = atomic_load_explicit(&r->nr_poll_hits, memory_order_relaxed);
	c->nr_poll_misses = atomic_load_explicit(&r->nr_poll_misses, memory_order_relaxed);
	c->poll_spin_ns = atomic_load_explicit(&r->poll_spin_ns, memory_order_relaxed);
	c->poll_window_ns = atomic_load_explicit(&r->poll_window_ns, memory_order_relaxed);
	c->handler_cpu_ns = atomic_load_explicit(&r->handler_cpu_ns, memory_order_relaxed);
	c->poll_cycle_on_ns = atomic_load_explicit(&r->poll_cycle_on_ns, memory_order_relaxed);
	c->poll_cycle_off_ns = atomic_load_explicit(&r->poll_cycle_off_ns, memory_order_relaxed);
	c->nr_poll_epochs_off = atomic_load_explicit(&r->nr_poll_epochs_off, memory_order_relaxed);
}

static void counters_locked(struct ebb_region *r, struct ebb_region_counters *c)
{
	struct ebb_swap_stats st;
	const struct ebb_lru *l;

	l = r->lru;
	*c = r->c;
	ebb_swap_get_stats(r->store, &st);
	c->nr_refaults = l->ws.nr_refault;
	c->nr_refault_activate = l->ws.nr_refault_activate;
	c->nr_refault_thrash = l->ws.nr_refault_thrash;
	c->nr_write_errors = st.nr_write_errors;
	c->nr_read_errors = st.nr_read_errors;
	c->nr_short_reads = st.nr_short_reads;
	c->nr_enospc = st.nr_enospc;
	c->nr_checksum_errors = st.nr_checksum_errors;
	c->nr_errors = c->nr_write_errors + c->nr_read_errors + c->nr_enospc +
		       c->nr_checksum_errors + c->nr_swapin_errors + c->nr_bad_fault + c->nr_oom;
	c->resident_pages = l->nr_state[EBB_PAGE_RESIDENT];
	c->swapped_pages = l->nr_state[EBB_PAGE_SWAPPED];
	c->zero_pages = l->nr_state[EBB_PAGE_ZERO];
	c->ballooned_pages = l->nr_state[EBB_PAGE_BALLOONED];
	c->never_pages = l->nr_state[EBB_PAGE_NEVER];
	c->active_pages = ebb_lru_nr_active(l);
	c->inactive_pages = l->lists[EBB_LRU_INACTIVE_CLEAN].nr + l->lists[EBB_LRU_INACTIVE_DIRTY].nr;
	c->unevictable_pages = l->lists[EBB_LRU_UNEVICTABLE].nr;
	c->clean_pages = l->lists[EBB_LRU_INACTIVE_CLEAN].nr + l->lists[EBB_LRU_ACTIVE_CLEAN].nr;
	c->compressed_pages = st.zpool_pages;
	c->compressed_bytes = st.zpool_bytes;
	c->compressed_overhead_bytes = st.zpool_overhead_bytes;
	c->file_pages = st.file_pages;
	c->file_bytes = st.file_bytes;
	c->file_allocated_bytes = st.file_allocated_bytes;
	c->dedup_saved_bytes = st.dedup_saved_bytes;
	c->nr_dedup_hits = st.nr_dedup_hits;
	c->nr_incompressible = st.nr_incompressible;
	c->metadata_bytes = (uint64_t)l->nr_pages * sizeof(struct ebb_page) + st.metadata_bytes +
			    (r->nr_pages + 63) / 64 * 8;
	c->high_pages = r->high_pages;
	c->max_pages = r->max_pages;
	poll_counters(r, c);
}

/* Publish the counters for readers that cannot get r->lock soon; lock held. */
static void publish_locked(struct ebb_region *r)
{
	struct ebb_region_counters c;

	counters_locked(r, &c);
	pthread_mutex_lock(&r->snap_lock);
	r->snap = c;
	r->snap_valid = true;
	pthread_mutex_unlock(&r->snap_lock);
}

/*
 * Readers never wait on reclaim: if the region lock is not free within
 * READER_WAIT_NS (a reclaim batch or a slow fault holds it), the counters
 * published at the end of the last fault batch / reclaim step are returned.
 */
#define READER_WAIT_NS (10ULL * 1000 * 1000)

void ebb_region_get_counters(struct ebb_region *r, struct ebb_region_counters *c)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_nsec += (long)READER_WAIT_NS;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	atomic_fetch_add_explicit(&r->nr_readers_waiting, 1, memory_order_relaxed);
	if (pthread_mutex_timedlock(&r->lock, &ts) != 0) {
		pthread_mutex_lock(&r->snap_lock);
		if (r->snap_valid) {
			*c = r->snap;
			pthread_mutex_unlock(&r->snap_lock);
			poll_counters(r, c);
			atomic_fetch_sub_explicit(&r->nr_readers_waiting, 1, memory_order_relaxed);
			return;
		}
		pthread_mutex_unlock(&r->snap_lock);
		pthread_mutex_lock(&r->lock);
	}
	atomic_fetch_sub_explicit(&r->nr_readers_waiting, 1, memory_order_relaxed);
	counters_locked(r, c);
	pthread_mutex_lock(&r->snap_lock);
	r->snap = *c;
	r->snap_valid = true;
	pthread_mutex_unlock(&r->snap_lock);
	pthread_mutex_unlock(&r->lock);
}



enum ebb_evict_mode ebb_region_evict_mode(const struct ebb_region *r)
{
	return r->evict_wp ? EBB_EVICT_WP : EBB_EVICT_MOVE;   /* immutable after create */
}

void ebb_region_get_psi(struct ebb_region *r, struct ebb_psi_stats *out)
{
	reader_lock(r);
	ebb_psi_get(&r->psi, now_ns(r), out);
	pthread_mutex_unlock(&r->lock);
}

enum ebb_page_state ebb_region_page_state(struct ebb_region *r, uint64_t pfn)
{
	enum ebb_page_state s = EBB_PAGE_NR_STATES;

	pthread_mutex_lock(&r->lock);
	if (pfn < r->nr_pages)
		s = (enum ebb_page_state)r->lru->pages[pfn].state;
	pthread_mutex_unlock(&r->lock);
	return s;
}

/* ---- test-only hooks ----------------------------------------------------- */

int ebb_region_test_inject(struct ebb_region *r, enum ebb_region_inject what, uint32_t skip_calls,
			   uint32_t nr_calls, int err)
{
	if (!r || (unsigned)what >= EBB_INJ_NR || err <= 0)
		return -EINVAL;
	pthread_mutex_lock(&r->lock);
	if (what == EBB_INJ_STORE_READ) {
		ebb_swap_test_fail_loads(r->store, skip_calls, nr_calls, err);
	} else {
		r->inj[what].skip = skip_calls;
		r->inj[what].nr = nr_calls;
		r->inj[what].err = err;
	}
	pthread_mutex_unlock(&r->lock);
	return 0;
}

int ebb_region_test_lose_page(struct ebb_region *r, uint64_t pfn)
{
	if (!r)
		return -EINVAL;
	/* CLIENT: (test hook) */
	if (check_range(r, pfn, 1))
		return -ERANGE;
	pthread_mutex_lock(&r->lock);
	r->inj_lose_pfn = pfn;
	pthread_mutex_unlock(&r->lock);
	return 0;
}

void ebb_region_test_hide_poison(struct ebb_region *r)
{
	pthread_mutex_lock(&r->lock);
	r->have_poison = false;
	pthread_mutex_unlock(&r->lock);
}
