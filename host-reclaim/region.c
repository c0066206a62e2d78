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
 * The idle tick (cfg.idle_tick_ns, 1 s by default) is the one exception:
 * the pool's balancer needs each VM's working set whether or not it is
 * under a limit, as Linux's proactive reclaim users read it from MGLRU's
 * generations or page_idle.  Every tick harvests the write-tracking
 * sources (accessed bits through page_idle are too dear every second: they
 * stay with reclaim's aging) and ages the per-page idle counts
 * (ebb_lru_idle_tick) into a histogram by idle age (counters.idle_pages).  Its cost: one write-protect fault per page
 * written per tick (handled in the kernel: WP_ASYNC) and one pass over the
 * page table.  A tick whose every source failed leaves the histogram as it
 * was: a page unseen is not proof of an idle page.
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
#include "host-reclaim/region_priv.h"

void ebb_region_cfg_init(struct ebb_region_cfg *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->name = "region";
	cfg->swappiness = 60;
	cfg->nr_threads = 1;
	cfg->max_wait_ns = 100ULL * 1000 * 1000;
	cfg->aging_interval_ns = 100ULL * 1000 * 1000;
	cfg->idle_tick_ns = EBB_IDLE_TICK_NS;
	cfg->reclaim_batch_pages = 256;
	cfg->readahead_pages = 8;
	cfg->fault_around_pages = 16;
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
int region_uffd_ioctl(struct ebb_region *r, enum ebb_region_inject what, unsigned long req, void *arg)
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

int region_uffd_wake(struct ebb_region *r, uint64_t addr, uint64_t len)
{
	struct uffdio_range rg = { .start = addr, .len = len };

	return region_uffd_ioctl(r, EBB_INJ_UFFD_WAKE, UFFDIO_WAKE, &rg) < 0 ? -errno : 0;
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
			n = region_spin_msgs(r, msgs, r->poll.window_ns);
			hit = n > 0;
			atomic_fetch_add_explicit(hit ? &r->nr_poll_hits : &r->nr_poll_misses, 1,
						  memory_order_relaxed);
		}
		if (!n)
			n = region_wait_msgs(r, msgs, 100);
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
			region_serve_msgs(r, msgs, n);
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
		region_timespec_after(&ts, got > 0 ? 100000 : 10000000);
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
		int ret = region_backed_pages(r, pfn, cnt, backed);

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
	    cfg->fault_around_pages > EBB_FAULT_AROUND_MAX ||
	    (cfg->fault_around_pages & (cfg->fault_around_pages - 1)) ||
	    (cfg->max_pages && cfg->high_pages > cfg->max_pages))
		return -EINVAL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->cfg = *cfg;
	if (!r->cfg.fault_around_pages)
		r->cfg.fault_around_pages = 1;
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
	pthread_mutex_init(&r->age_lock, NULL);
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
	r->acc_bitmap = calloc((r->nr_pages + 63) / 64, 8);
	r->iobuf = aligned_alloc(EBB_PAGE_SIZE, MAX_RA * EBB_PAGE_SIZE);
	r->zero_buf = aligned_alloc(EBB_PAGE_SIZE, (size_t)r->cfg.fault_around_pages * EBB_PAGE_SIZE);
	if (!r->ref_bitmap || !r->acc_bitmap || !r->iobuf || !r->zero_buf) {
		ret = -ENOMEM;
		goto err;
	}
	memset(r->zero_buf, 0, (size_t)r->cfg.fault_around_pages * EBB_PAGE_SIZE);
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
	free(r->acc_bitmap);
	free(r->iobuf);
	free(r->zero_buf);
	pthread_cond_destroy(&r->room_cv);
	pthread_cond_destroy(&r->bg_cv);
	pthread_mutex_destroy(&r->lock);
	pthread_mutex_destroy(&r->snap_lock);
	pthread_mutex_destroy(&r->age_lock);
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
void region_publish_locked(struct ebb_region *r)
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

void ebb_region_test_page_lru(struct ebb_region *r, uint64_t pfn, char *buf, size_t len)
{
	const struct ebb_page *p;
	uint64_t on_lists = 0, walked = 0, pos = UINT64_MAX;
	int n;

	if (!r || !buf || !len)
		return;
	buf[0] = '\0';
	if (pfn >= r->nr_pages)
		return;
	pthread_mutex_lock(&r->lock);
	p = &r->lru->pages[pfn];
	if (p->lru < EBB_NR_LRU_LISTS) {
		for (uint32_t q = r->lru->lists[p->lru].tail; q != EBB_NIL && walked <= r->nr_pages;
		     q = r->lru->pages[q].u.link.prev, walked++)
			if (q == pfn) {
				pos = walked;
				break;
			}
	}
	for (int l = 0; l < EBB_NR_LRU_LISTS; l++)
		on_lists += r->lru->lists[l].nr;
	n = snprintf(buf, len, "list %d, flags %#x, swap_id %u, %s %llu from the tail; lists",
		     p->lru == EBB_LRU_NONE ? -1 : (int)p->lru, (unsigned)p->flags, p->swap_id,
		     pos == UINT64_MAX ? "NOT found walking its list" : "found",
		     (unsigned long long)(pos == UINT64_MAX ? walked : pos));
	for (int l = 0; l < EBB_NR_LRU_LISTS && n > 0 && (size_t)n < len; l++)
		n += snprintf(buf + n, len - (size_t)n, " %llu", (unsigned long long)r->lru->lists[l].nr);
	if (n > 0 && (size_t)n < len)
		snprintf(buf + n, len - (size_t)n, " (sum %llu), resident %llu",
			 (unsigned long long)on_lists, (unsigned long long)resident(r));
	pthread_mutex_unlock(&r->lock);
}

void ebb_region_test_hide_poison(struct ebb_region *r)
{
	pthread_mutex_lock(&r->lock);
	r->have_poison = false;
	pthread_mutex_unlock(&r->lock);
}
