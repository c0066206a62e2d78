/*
 * region_reclaim.c — eviction (the LRU's evictor: UFFDIO_MOVE or
 * write-protect runs out of the region, zero / clean-drop / store, move back
 * what could not be stored), direct and background reclaim, and aging
 * (harvesting the reference sources into the LRU).  The overview of the
 * pager is atop region.c.
 */
#include "host-reclaim/region_priv.h"

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

int region_wp_range(struct ebb_region *r, uint64_t pfn, size_t nr, bool on)
{
	struct uffdio_writeprotect wp = {
		.range = { .start = page_addr(r, pfn), .len = nr * EBB_PAGE_SIZE },
		.mode = on ? UFFDIO_WRITEPROTECT_MODE_WP : 0,  /* WP|DONTWAKE is EINVAL */
	};

	return region_uffd_ioctl(r, EBB_INJ_UFFD_WRITEPROTECT, UFFDIO_WRITEPROTECT, &wp) < 0 ? -errno : 0;
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
int region_backed_pages(struct ebb_region *r, uint64_t pfn, size_t n, bool *out)
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
		int err = region_wp_range(r, sorted[i]->pfn, run, true);

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

		if (region_backed_pages(r, sorted[i]->pfn, run, backed))
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
			region_wp_range(r, sorted[i]->pfn, run, false);
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

	if (region_uffd_ioctl(r, EBB_INJ_UFFD_MOVE, UFFDIO_MOVE, &mv) == 0)
		return 0;
	/* Fall back to a copy: the content is still in scratch. */
	struct uffdio_copy cp = {
		.dst = page_addr(r, pfn),
		.src = mv.src,
		.len = EBB_PAGE_SIZE,
		.mode = 0,
	};
	if (region_uffd_ioctl(r, EBB_INJ_UFFD_COPY, UFFDIO_COPY, &cp) == 0 || errno == EEXIST)
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

			if (region_uffd_ioctl(r, EBB_INJ_UFFD_MOVE, UFFDIO_MOVE, &mv) < 0)
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
uint64_t region_reclaim_locked_ex(struct ebb_region *r, uint64_t nr, bool may_write, bool *stuck)
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
	return region_reclaim_locked_ex(r, nr, may_write, NULL);
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
	mine.skipped_deactivate = false;
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
	sc->skipped_deactivate |= mine.skipped_deactivate;
	memcpy(sc->nr_scan_target, mine.nr_scan_target, sizeof(sc->nr_scan_target));
	return ret;
}

/* ---- aging --------------------------------------------------------------- */

/*
 * Two kinds of reference source, harvested differently (the signal table
 * is in lru.c):
 *   written (PAGEMAP_SCAN, the KVM dirty log): cheap, under r->lock, before
 *     every reclaim pass at most once per aging interval (direct reclaim in
 *     the fault path included), and on the idle tick;
 *   accessed (page_idle): dear — 0.4-0.9 s of CPU per GiB per pass under
 *     TCG, far less on hardware but never free — and it needs nothing of
 *     the region while it reads the kernel's bitmaps.  So it runs without
 *     r->lock (a harvest under it stalled every fault of the VM behind it:
 *     docs/reclaim.md, "Signals"), on the background reclaimer only (never
 *     in a fault), and paced by its own cost: after a pass that took C of
 *     CPU the next waits ACCESSED_PACE x C (at least one aging interval),
 *     so accessed bits take at most 1/(ACCESSED_PACE + 1) of a CPU per VM
 *     whatever the guest's size or the machine's speed.  A page's bit stays
 *     set in the kernel until a pass reads it, so a slower pace reports
 *     accesses later, never loses them.  The bits are applied under r->lock
 *     to the pages still resident then.
 */
#define ACCESSED_PACE 19  /* <= 5 % of a CPU */

/* Feed one source's bitmap into the LRU; the number of pages made young. */
static int64_t apply_refs_locked(struct ebb_region *r, const uint64_t *bitmap, bool written)
{
	uint64_t words = (r->nr_pages + 63) / 64;
	int64_t young = 0;

	for (uint64_t w = 0; w < words; w++) {
		uint64_t bits = bitmap[w];

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
	r->c.nr_young += (uint64_t)young;
	return young;
}

/* Harvest the write-tracking sources; *nr_ok: how many answered. */
static int64_t harvest_written_locked(struct ebb_region *r, unsigned *nr_ok)
{
	uint64_t words = (r->nr_pages + 63) / 64;
	int64_t young = 0;

	for (unsigned s = 0; s < r->nr_src; s++) {
		int ret;

		if (r->src[s].ops->kind != EBB_REF_WRITTEN)
			continue;
		memset(r->ref_bitmap, 0, words * 8);
		ret = r->src[s].ops->harvest(r->src[s].ctx, r->nr_pages, r->ref_bitmap);
		if (ret) {
			RLOG(r, &r->rl_evict, EBB_LOG_WARN, "%s: reference source %s: %s",
			     r->cfg.name, r->src[s].ops->name, strerror(-ret));
			continue;
		}
		(*nr_ok)++;
		young += apply_refs_locked(r, r->ref_bitmap, true);
	}
	return young;
}

/*
 * Harvest the accessed-bit sources, without r->lock (see above).  With
 * @paced, only if the pace allows it at @now.  Takes age_lock, then r->lock
 * to apply each source's bits.
 */
static int64_t harvest_accessed(struct ebb_region *r, uint64_t now, bool paced)
{
	uint64_t words = (r->nr_pages + 63) / 64, cpu = 0, wait;
	struct refsrc src[MAX_REFSRC];
	unsigned n = 0;
	int64_t young = 0;

	pthread_mutex_lock(&r->age_lock);
	if (paced && now < r->next_accessed_ns) {
		pthread_mutex_unlock(&r->age_lock);
		return 0;
	}
	pthread_mutex_lock(&r->lock);
	for (unsigned s = 0; s < r->nr_src; s++)
		if (r->src[s].ops->kind == EBB_REF_ACCESSED)
			src[n++] = r->src[s];
	pthread_mutex_unlock(&r->lock);
	for (unsigned s = 0; s < n; s++) {
		uint64_t t0 = thread_cpu_ns();
		int ret;

		memset(r->acc_bitmap, 0, words * 8);
		ret = src[s].ops->harvest(src[s].ctx, r->nr_pages, r->acc_bitmap);
		cpu += thread_cpu_ns() - t0;
		pthread_mutex_lock(&r->lock);
		if (ret)
			RLOG(r, &r->rl_evict, EBB_LOG_WARN, "%s: reference source %s: %s",
			     r->cfg.name, src[s].ops->name, strerror(-ret));
		else
			young += apply_refs_locked(r, r->acc_bitmap, false);
		pthread_mutex_unlock(&r->lock);
	}
	wait = cpu * ACCESSED_PACE;
	if (wait < r->cfg.aging_interval_ns)
		wait = r->cfg.aging_interval_ns;
	r->next_accessed_ns = now + wait;
	pthread_mutex_unlock(&r->age_lock);
	return young;
}

/* Whether the background reclaimer has an accessed-bit source to harvest. */
static bool have_accessed_locked(const struct ebb_region *r)
{
	for (unsigned s = 0; s < r->nr_src; s++)
		if (r->src[s].ops->kind == EBB_REF_ACCESSED)
			return true;
	return false;
}

/* The idle tick (see region.c): the working set by idle age. */
static void idle_tick_locked(struct ebb_region *r, uint64_t now)
{
	uint64_t ticks = 1, tick = r->cfg.idle_tick_ns;
	unsigned nr_ok = 0;

	if (!tick || !r->nr_src)
		return;
	if (r->last_idle_ns && now >= r->last_idle_ns) {
		if (now - r->last_idle_ns < tick)
			return;
		ticks = (now - r->last_idle_ns) / tick;
	}
	r->last_idle_ns = now;
	/* the write-tracking sources only: accessed bits stay with reclaim's
	 * aging, at their own pace (above) */
	harvest_written_locked(r, &nr_ok);
	if (!nr_ok)
		return;
	ebb_lru_idle_tick(r->lru, ticks > 255 ? 255 : (uint32_t)ticks, r->c.idle_pages);
	r->c.idle_tick_ns = tick;
	r->c.nr_idle_ticks++;
	region_publish_locked(r);
}

/* One aging pass over the write-tracking sources, at @now. */
static int64_t age_written_locked(struct ebb_region *r, uint64_t now)
{
	unsigned nr_ok = 0;
	int64_t n;

	r->c.nr_aging_passes++;
	n = harvest_written_locked(r, &nr_ok);
	r->last_age_ns = now;
	return n;
}

/* Every source now, the accessed ones whatever their pace. */
int64_t ebb_region_age(struct ebb_region *r)
{
	int64_t n = harvest_accessed(r, now_ns(r), false);

	pthread_mutex_lock(&r->lock);
	n += age_written_locked(r, now_ns(r));
	pthread_mutex_unlock(&r->lock);
	return n;
}

/* Harvest the write-tracking sources before a reclaim pass, at most once
 * per aging interval. */
void region_maybe_age_locked(struct ebb_region *r, uint64_t now)
{
	if (now - r->last_age_ns >= r->cfg.aging_interval_ns || now < r->last_age_ns)
		age_written_locked(r, now);
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
	idle_tick_locked(r, now);
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
	if (r->bg_active && now >= r->bg_backoff_until_ns && have_accessed_locked(r)) {
		/* accessed bits: harvested without the lock, at their pace */
		pthread_mutex_unlock(&r->lock);
		harvest_accessed(r, now, true);
		pthread_mutex_lock(&r->lock);
	}
	if (r->bg_active && now >= r->bg_backoff_until_ns && resident(r) > target) {
		uint64_t want = resident(r) - target;

		region_maybe_age_locked(r, now);
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
				region_publish_locked(r);
				pthread_mutex_unlock(&r->lock);
				sched_yield();
				pthread_mutex_lock(&r->lock);
			}
		}
		r->c.nr_background_reclaim += reclaimed;
		/* Nothing reclaimable: retry after one aging interval, not at once. */
		if (!reclaimed)
			r->bg_backoff_until_ns = now + r->cfg.aging_interval_ns;
		region_publish_locked(r);
	}
	pthread_mutex_unlock(&r->lock);
	return (int64_t)reclaimed;
}
