/*
 * region_fault.c — the fault path: making room at max, zero pages, swap-in
 * with readahead and verification, write-protect faults, lost pages
 * (poison).  The overview of the pager is atop region.c.
 */
#include "host-reclaim/region_priv.h"

/* ---- faults -------------------------------------------------------------- */

void region_timespec_after(struct timespec *ts, uint64_t ns)
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

			region_maybe_age_locked(r, now_ns(r));
			r->c.nr_direct_reclaim++;
			got += region_reclaim_locked_ex(r, want, true, &stuck);
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

		region_timespec_after(&ts, left < 1000000 ? left : 1000000);
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
	if (region_uffd_ioctl(r, EBB_INJ_UFFD_COPY, UFFDIO_COPY, &cp) < 0)
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
		if (region_uffd_ioctl(r, EBB_INJ_UFFD_POISON, UFFDIO_POISON, &po) == 0) {
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

			region_uffd_ioctl(r, EBB_INJ_UFFD_WRITEPROTECT, UFFDIO_WRITEPROTECT, &wp);
			po.updated = 0;
			if (region_uffd_ioctl(r, EBB_INJ_UFFD_POISON, UFFDIO_POISON, &po) == 0) {
				r->c.nr_lost_uffd_poison++;
				return;
			}
			if (errno == EEXIST) {
				/* Already poisoned (a second message for the same fault). */
				region_uffd_wake(r, po.range.start, EBB_PAGE_SIZE);
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
			region_uffd_wake(r, po.range.start, EBB_PAGE_SIZE);
			return;
		}
		if (herr == -EEXIST) {
			/* Already poisoned (a second message for the same fault). */
			region_uffd_wake(r, po.range.start, EBB_PAGE_SIZE);
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
		region_uffd_wake(r, po.range.start, EBB_PAGE_SIZE);
		return;
	}
	RLOG(r, &r->rl_fault, EBB_LOG_ERROR,
	     "%s: page %llu lost and cannot be poisoned (%s) nor unmapped (%s): faulting thread left blocked",
	     r->cfg.name, (unsigned long long)pfn, strerror(err), strerror(errno));
}

/*
 * Fault-around of empty memory.  A guest taking up memory that holds
 * nothing (never touched, or given back: free pages it reported, pages its
 * balloon held) writes it page after page — its boot; a kernel that zeroes
 * what it allocates, as Debian's does with init_on_alloc, even the pages
 * its balloon inflates with — and each page costs one round trip through
 * this handler: ~10 us on a host, half a millisecond and more under nested
 * TCG.  As the kernel's fault-around does for file pages (64 KiB by
 * default), a write fault on an empty page installs zeroed pages for the
 * whole run of empty pages around it within its aligned block of
 * fault_around_pages, in one UFFDIO_COPY, which wakes every thread waiting
 * in the block.  Empty means NEVER or BALLOONED, both of which read as
 * zeroes and hold nothing; pages evicted by reclaim (ZERO, SWAPPED) are
 * cold and stay out.  Nothing is installed when the block would take the
 * region over high (or max), where every page installed would be one more
 * to reclaim.  The extra pages go to the inactive list unreferenced: those
 * the guest does not use (a neighbour its balloon still holds) are the
 * first to go, as zero pages (no store write).
 * Returns true if @pfn was installed (and its waiters woken); its
 * accounting is left to the caller, as for a page installed alone.
 */
static bool page_empty(const struct ebb_region *r, uint64_t pfn)
{
	uint8_t st = r->lru->pages[pfn].state;

	return st == EBB_PAGE_NEVER || st == EBB_PAGE_BALLOONED;
}

static bool fault_around(struct ebb_region *r, uint64_t pfn)
{
	uint64_t n = r->cfg.fault_around_pages;
	uint64_t limit = r->high_pages ? r->high_pages : r->max_pages;
	uint64_t blk = pfn & ~(n - 1), end = blk + n, lo = pfn, hi = pfn + 1, done, q;
	struct uffdio_copy cp = { .src = (uint64_t)(uintptr_t)r->zero_buf, .mode = 0 };

	if (n <= 1 || !page_empty(r, pfn))
		return false;
	if (end > r->nr_pages)
		end = r->nr_pages;
	while (lo > blk && page_empty(r, lo - 1))
		lo--;
	while (hi < end && page_empty(r, hi))
		hi++;
	if (hi - lo < 2 || (limit && resident(r) + (hi - lo) > limit))
		return false;
	cp.dst = page_addr(r, lo);
	cp.len = (hi - lo) * EBB_PAGE_SIZE;
	done = hi - lo;
	if (region_uffd_ioctl(r, EBB_INJ_UFFD_COPY, UFFDIO_COPY, &cp) < 0) {
		/* Part of the block may be in (cp.copy: the bytes copied before
		 * the error; a page that raced in says EEXIST): account for
		 * those, and let the one-page path serve @pfn if it is not. */
		done = cp.copy > 0 ? (uint64_t)cp.copy / EBB_PAGE_SIZE : 0;
	}
	/* The neighbours; @pfn itself is accounted by fault_zero(). */
	for (q = lo; q < lo + done; q++) {
		if (q == pfn)
			continue;
		ebb_lru_page_in(r->lru, (uint32_t)q, false);
		r->c.nr_fault_around++;
	}
	return pfn < lo + done;
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

	if (write && fault_around(r, pfn)) {
		/* installed with its block: accounted below */
	} else if (write) {
		struct uffdio_copy cp = {
			.dst = page_addr(r, pfn),
			.src = (uint64_t)(uintptr_t)r->zero_buf,
			.len = EBB_PAGE_SIZE,
			.mode = 0,
		};

		if (region_uffd_ioctl(r, EBB_INJ_UFFD_COPY, UFFDIO_COPY, &cp) < 0) {
			if (errno != EEXIST)
				RLOG(r, &r->rl_fault, EBB_LOG_ERROR, "%s: zero fill of page %llu: %s",
				     r->cfg.name, (unsigned long long)pfn, strerror(errno));
			region_uffd_wake(r, page_addr(r, pfn), EBB_PAGE_SIZE);
			if (errno != EEXIST)
				return;
		}
	} else if (region_uffd_ioctl(r, EBB_INJ_UFFD_ZEROPAGE, UFFDIO_ZEROPAGE, &zp) < 0) {
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

		if (errno != EEXIST || region_uffd_ioctl(r, EBB_INJ_UFFD_COPY, UFFDIO_COPY, &cp) < 0) {
			if (errno != EEXIST) {
				RLOG(r, &r->rl_fault, EBB_LOG_ERROR, "%s: zero fill of page %llu: %s",
				     r->cfg.name, (unsigned long long)pfn, strerror(errno));
				region_uffd_wake(r, page_addr(r, pfn), EBB_PAGE_SIZE);
				return;
			}
			region_uffd_wake(r, page_addr(r, pfn), EBB_PAGE_SIZE);
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
		if (region_uffd_ioctl(r, EBB_INJ_UFFD_COPY, UFFDIO_COPY, &first) < 0 && errno != EEXIST) {
			RLOG(r, &r->rl_fault, EBB_LOG_ERROR, "%s: UFFDIO_COPY page %llu: %s",
			     r->cfg.name, (unsigned long long)pfn, strerror(errno));
			region_uffd_wake(r, page_addr(r, pfn), EBB_PAGE_SIZE);
			return;
		}
		if (k > 1) {
			cp.dst += EBB_PAGE_SIZE;
			cp.src += EBB_PAGE_SIZE;
			cp.len -= EBB_PAGE_SIZE;
			if (region_uffd_ioctl(r, EBB_INJ_UFFD_COPY, UFFDIO_COPY, &cp) < 0)
				k = 1 + (cp.copy > 0 ? (size_t)cp.copy / EBB_PAGE_SIZE : 0);
		}
		region_uffd_wake(r, page_addr(r, pfn), EBB_PAGE_SIZE);
	} else if (region_uffd_ioctl(r, EBB_INJ_UFFD_COPY, UFFDIO_COPY, &cp) < 0) {
		int err = errno;
		size_t copied = cp.copy > 0 ? (size_t)cp.copy / EBB_PAGE_SIZE : 0;

		if (copied == 0) {
			/* Only the faulting page matters; the rest was readahead. */
			if (err != EEXIST)
				RLOG(r, &r->rl_fault, EBB_LOG_ERROR, "%s: UFFDIO_COPY page %llu: %s",
				     r->cfg.name, (unsigned long long)pfn, strerror(err));
			region_uffd_wake(r, page_addr(r, pfn), EBB_PAGE_SIZE);
			if (err != EEXIST)
				return;
			copied = 1;
		}
		k = copied;
		region_uffd_wake(r, page_addr(r, pfn), EBB_PAGE_SIZE);
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
		if (i > 0)
			r->c.nr_readahead++;
		ebb_lru_swap_in(r->lru, p, keep, i > 0, suspect);
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

			region_uffd_ioctl(r, EBB_INJ_UFFD_ZEROPAGE, UFFDIO_ZEROPAGE, &zp);
		}
		region_uffd_wake(r, addr, EBB_PAGE_SIZE);
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
		if (region_wp_range(r, pfn, 1, false))
			region_uffd_wake(r, addr, EBB_PAGE_SIZE);
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
		    region_backed_pages(r, pfn, 1, &backed) == 0 && !backed) {
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
		region_uffd_wake(r, addr, EBB_PAGE_SIZE);
		return;
	}
	if (ensure_room(r, 1, pfn))
		r->c.nr_max_overrun++;
	p = &r->lru->pages[pfn];
	switch (p->state) {
	case EBB_PAGE_RESIDENT:     /* resolved while we waited */
		r->c.nr_spurious++;
		region_uffd_wake(r, addr, EBB_PAGE_SIZE);
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
ssize_t region_wait_msgs(struct ebb_region *r, struct uffd_msg *msgs, int timeout_ms)
{
	struct pollfd pfd[2] = {
		{ .fd = r->uffd, .events = POLLIN },
		{ .fd = r->stop_fd, .events = POLLIN },
	};
	ssize_t n;

	if (poll(pfd, 2, timeout_ms) < 0) {
		int e = errno;

		return e == EINTR || e <= 0 ? 0 : -e;
	}
	if (!(pfd[0].revents & POLLIN))
		return 0;
	n = read(r->uffd, msgs, sizeof(*msgs) * MSG_BATCH);
	if (n < 0) {
		int e = errno;

		return e == EAGAIN || e == EINTR || e <= 0 ? 0 : -e;
	}
	return n / (ssize_t)sizeof(*msgs);
}

/* Spin on the non-blocking uffd for up to @window_ns (see "Polling").
 * Returns the number of messages read (0: the window ran out). */
ssize_t region_spin_msgs(struct ebb_region *r, struct uffd_msg *msgs, uint64_t window_ns)
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
int region_serve_msgs(struct ebb_region *r, const struct uffd_msg *msgs, ssize_t n)
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
			region_publish_locked(r);
			pthread_mutex_unlock(&r->lock);
			sched_yield();
			pthread_mutex_lock(&r->lock);
		}
	}
	region_publish_locked(r);
	pthread_mutex_unlock(&r->lock);
	return served;
}

int ebb_region_handle_faults(struct ebb_region *r, int timeout_ms)
{
	struct uffd_msg msgs[MSG_BATCH] = { 0 };  /* 2 KiB per call: not the handler thread's loop */
	ssize_t n = region_wait_msgs(r, msgs, timeout_ms);

	return n < 0 ? (int)n : region_serve_msgs(r, msgs, n);
}
