/*
 * lru.c — LRU lists, second-chance aging, scan control and workingset for
 * one region of guest memory.
 *
 * Overview (the algorithm, after Linux's mm/vmscan.c and mm/workingset.c)
 * -----------------------------------------------------------------------
 * Every resident page sits on exactly one of five lists:
 *
 *   inactive clean, active clean   - a current copy is already in the swap
 *                                    store: reclaiming costs no write
 *   inactive dirty, active dirty   - reclaiming needs a store (compress or
 *                                    file write)
 *   unevictable                    - pinned by the owner, never scanned
 *
 * New and refaulting pages enter at the head of an inactive list (or of an
 * active list, see workingset below); scans take pages from the tail.
 *
 * Signals.  The owner feeds references in through ebb_lru_reference():
 *   - a dirty bitmap (KVM dirty log in the VMM; PAGEMAP_SCAN PAGE_IS_WRITTEN
 *     with userfaultfd WP_ASYNC on plain memory) means "read or written AND
 *     written": it sets YOUNG and moves the page to the dirty class, because
 *     its copy in the store is stale (the copy is released);
 *   - accessed bits (idle page tracking where the kernel has it) mean
 *     "used": they set YOUNG only;
 *   - a refault (userfaultfd MISSING on an evicted page) is the universal
 *     read signal: the page was needed after we evicted it.  It goes through
 *     ebb_lru_page_in() and the refault distance below.
 * YOUNG is a hardware-style bit: consumed by the next scan that looks at the
 * page.  REFERENCED is the soft second-chance mark kept across scans.
 *
 * Aging (second chance).  Scanning the inactive tail:
 *   YOUNG and REFERENCED  -> activate (head of active list)
 *   YOUNG only            -> set REFERENCED, rotate to the inactive head
 *   not YOUNG             -> reclaim candidate, handed to the evictor
 * Scanning the active tail (only when the inactive lists are "low", i.e.
 * inactive * sqrt(10 * size_GiB) < active, as in inactive_is_low(), both
 * classes counted together: a hot page swapped back in is clean until it
 * is next written, and must not be pushed out for sitting in a class whose
 * inactive list happens to be short):
 *   YOUNG                 -> rotate to the active head (second chance)
 *   not YOUNG             -> deactivate to the inactive head
 *
 * Scan control.  ebb_scan_control carries nr_to_reclaim, priority,
 * swappiness, may_writepage and may_swap and collects nr_scanned /
 * nr_reclaimed.  Each list is scanned (size >> priority), split between the
 * classes by swappiness: dirty gets swappiness/200, clean (200-swappiness)/200
 * (get_scan_count), tilted by what reclaiming each class has cost lately
 * (Linux's lru_note_cost: a dirty page stored is one unit for the dirty
 * class; a refault of a page that had been active is one unit for the class
 * it was evicted from).  So hot clean pages that keep coming back shift the
 * scan to the dirty lists, where cold pages wait, instead of being dropped
 * again because clean pages are cheap to drop.  With swappiness 0 or
 * !may_swap the dirty lists are not scanned; if there are no clean pages the
 * dirty lists get the full share.
 * ebb_lru_reclaim() walks priority 12 -> 0 until nr_to_reclaim is met.
 *
 * Workingset.  A counter, nonresident_age, advances on every eviction and
 * every activation.  An evicted page keeps the counter value as its shadow
 * entry.  When it faults back in, refault distance = age_now - shadow is how
 * many pages were pushed out (or promoted) while it was away: had the active
 * lists been that much smaller, it would have stayed resident.  If the
 * distance is <= the workingset size it competes with — both active lists
 * plus the other class's inactive list, as Linux's workingset_test_recent()
 * counts it — the page goes straight to the active list
 * (nr_refault_activate); if it had been active before its eviction
 * (WORKINGSET flag) the refault also counts as thrashing.
 *
 * No locking here; see lru.h.
 */
#include "host-reclaim/lru.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Linux's lru_note_cost(): nr units of reclaim cost for a class. */
static void note_cost(struct ebb_lru *lru, bool clean, uint64_t nr)
{
	uint64_t resident = 0;

	if (!nr)
		return;
	for (int l = 0; l < EBB_LRU_UNEVICTABLE; l++)
		resident += lru->lists[l].nr;
	lru->cost[clean ? 0 : 1] += nr;
	if (lru->cost[0] + lru->cost[1] > resident / 4) {
		lru->cost[0] /= 2;
		lru->cost[1] /= 2;
	}
}

static enum ebb_lru_list class_list(bool clean, bool active)
{
	if (clean)
		return active ? EBB_LRU_ACTIVE_CLEAN : EBB_LRU_INACTIVE_CLEAN;
	return active ? EBB_LRU_ACTIVE_DIRTY : EBB_LRU_INACTIVE_DIRTY;
}

int ebb_lru_create(uint32_t nr_pages, struct ebb_lru **out)
{
	struct ebb_lru *lru;

	*out = NULL;
	if (nr_pages == 0 || nr_pages > EBB_LRU_MAX_PAGES)
		return -EINVAL;
	lru = calloc(1, sizeof(*lru));
	if (!lru)
		return -ENOMEM;
	lru->pages = calloc(nr_pages, sizeof(*lru->pages));
	if (!lru->pages) {
		free(lru);
		return -ENOMEM;
	}
	lru->nr_pages = nr_pages;
	for (uint32_t i = 0; i < nr_pages; i++) {
		lru->pages[i].swap_id = EBB_SWAP_NONE;
		lru->pages[i].lru = EBB_LRU_NONE;
		lru->pages[i].state = EBB_PAGE_NEVER;
	}
	for (int l = 0; l < EBB_NR_LRU_LISTS; l++)
		lru->lists[l].head = lru->lists[l].tail = EBB_NIL;
	lru->nr_state[EBB_PAGE_NEVER] = nr_pages;
	*out = lru;
	return 0;
}

void ebb_lru_destroy(struct ebb_lru *lru)
{
	if (!lru)
		return;
	free(lru->pages);
	free(lru);
}

void ebb_lru_set_state(struct ebb_lru *lru, uint32_t pfn, enum ebb_page_state s)
{
	struct ebb_page *p = &lru->pages[pfn];

	lru->nr_state[p->state]--;
	p->state = (uint8_t)s;
	lru->nr_state[s]++;
}

void ebb_lru_list_add(struct ebb_lru *lru, uint32_t pfn, enum ebb_lru_list l)
{
	struct ebb_page *p = &lru->pages[pfn];
	uint32_t head = lru->lists[l].head;

	p->lru = (uint8_t)l;
	p->u.link.prev = EBB_NIL;
	p->u.link.next = head;
	if (head != EBB_NIL)
		lru->pages[head].u.link.prev = pfn;
	else
		lru->lists[l].tail = pfn;
	lru->lists[l].head = pfn;
	lru->lists[l].nr++;
	p->flags &= (uint16_t)~EBB_PF_SHADOW;
}

void ebb_lru_list_add_tail(struct ebb_lru *lru, uint32_t pfn, enum ebb_lru_list l)
{
	struct ebb_page *p = &lru->pages[pfn];
	uint32_t tail = lru->lists[l].tail;

	p->lru = (uint8_t)l;
	p->u.link.next = EBB_NIL;
	p->u.link.prev = tail;
	if (tail != EBB_NIL)
		lru->pages[tail].u.link.next = pfn;
	else
		lru->lists[l].head = pfn;
	lru->lists[l].tail = pfn;
	lru->lists[l].nr++;
	p->flags &= (uint16_t)~EBB_PF_SHADOW;
}

void ebb_lru_list_del(struct ebb_lru *lru, uint32_t pfn)
{
	struct ebb_page *p = &lru->pages[pfn];
	enum ebb_lru_list l = (enum ebb_lru_list)p->lru;

	if (p->lru == EBB_LRU_NONE)
		return;
	if (p->u.link.prev != EBB_NIL)
		lru->pages[p->u.link.prev].u.link.next = p->u.link.next;
	else
		lru->lists[l].head = p->u.link.next;
	if (p->u.link.next != EBB_NIL)
		lru->pages[p->u.link.next].u.link.prev = p->u.link.prev;
	else
		lru->lists[l].tail = p->u.link.prev;
	lru->lists[l].nr--;
	p->lru = EBB_LRU_NONE;
	p->u.link.prev = p->u.link.next = EBB_NIL;
}

static void move_to(struct ebb_lru *lru, uint32_t pfn, enum ebb_lru_list l)
{
	ebb_lru_list_del(lru, pfn);
	ebb_lru_list_add(lru, pfn, l);
}

uint64_t ebb_lru_nr_active(const struct ebb_lru *lru)
{
	return lru->lists[EBB_LRU_ACTIVE_CLEAN].nr + lru->lists[EBB_LRU_ACTIVE_DIRTY].nr;
}

uint64_t ebb_lru_nr_evictable(const struct ebb_lru *lru)
{
	return lru->lists[EBB_LRU_INACTIVE_CLEAN].nr + lru->lists[EBB_LRU_ACTIVE_CLEAN].nr +
	       lru->lists[EBB_LRU_INACTIVE_DIRTY].nr + lru->lists[EBB_LRU_ACTIVE_DIRTY].nr;
}

bool ebb_lru_page_in(struct ebb_lru *lru, uint32_t pfn, bool clean)
{
	struct ebb_page *p = &lru->pages[pfn];
	bool activate = false;

	if (p->flags & EBB_PF_SHADOW) {
		uint32_t distance = lru->nonresident_age - p->u.evicted.shadow;
		/* As workingset_test_recent(): the active lists plus the other
		 * class's inactive list, which this page would compete with. */
		uint64_t ws_size = ebb_lru_nr_active(lru) +
				   lru->lists[clean ? EBB_LRU_INACTIVE_DIRTY : EBB_LRU_INACTIVE_CLEAN].nr;

		lru->ws.nr_refault++;
		if ((uint64_t)distance <= ws_size) {
			activate = true;
			lru->ws.nr_refault_activate++;
			if (p->flags & EBB_PF_WORKINGSET) {
				bool was_clean = p->flags & EBB_PF_EVICTED_CLEAN;

				lru->ws.nr_refault_thrash++;
				lru->ws.nr_thrash_clean += was_clean;
				note_cost(lru, was_clean, 1);
			}
		}
	}
	p->flags &= (uint16_t)~(EBB_PF_SHADOW | EBB_PF_EVICTED_CLEAN | EBB_PF_YOUNG |
				EBB_PF_REFERENCED | EBB_PF_SUSPECT | EBB_PF_IDLE_MASK);
	if (!clean)
		p->swap_id = EBB_SWAP_NONE;
	ebb_lru_set_state(lru, pfn, EBB_PAGE_RESIDENT);
	if (p->flags & EBB_PF_UNEVICTABLE) {
		ebb_lru_list_add(lru, pfn, EBB_LRU_UNEVICTABLE);
		return false;
	}
	if (activate) {
		p->flags |= EBB_PF_WORKINGSET;
		lru->nonresident_age++;
	}
	ebb_lru_list_add(lru, pfn, class_list(clean && p->swap_id != EBB_SWAP_NONE, activate));
	return activate;
}

bool ebb_lru_swap_in(struct ebb_lru *lru, uint32_t pfn, bool clean, bool readahead,
		     bool suspect)
{
	struct ebb_page *p = &lru->pages[pfn];
	bool activate;

	if (readahead)
		p->flags &= (uint16_t)~EBB_PF_SHADOW;  /* not a refault */
	activate = ebb_lru_page_in(lru, pfn, clean);
	if (readahead)
		p->flags |= EBB_PF_READAHEAD;
	if (clean && suspect)
		p->flags |= EBB_PF_SUSPECT;
	return activate;
}

uint32_t ebb_lru_reference(struct ebb_lru *lru, uint32_t pfn, bool written)
{
	struct ebb_page *p = &lru->pages[pfn];
	uint32_t stale = EBB_SWAP_NONE;

	if (p->state != EBB_PAGE_RESIDENT)
		return EBB_SWAP_NONE;
	p->flags |= EBB_PF_YOUNG;
	p->flags &= (uint16_t)~(EBB_PF_READAHEAD | EBB_PF_IDLE_MASK);
	if (written && (p->flags & EBB_PF_SUSPECT)) {
		/* The report of the fault that swapped it in: keep the copy (the
		 * evictor compares content hashes before dropping it). */
		p->flags &= (uint16_t)~EBB_PF_SUSPECT;
		return EBB_SWAP_NONE;
	}
	if (written && p->swap_id != EBB_SWAP_NONE) {
		stale = p->swap_id;
		p->swap_id = EBB_SWAP_NONE;
		if (p->lru == EBB_LRU_INACTIVE_CLEAN)
			move_to(lru, pfn, EBB_LRU_INACTIVE_DIRTY);
		else if (p->lru == EBB_LRU_ACTIVE_CLEAN)
			move_to(lru, pfn, EBB_LRU_ACTIVE_DIRTY);
	}
	return stale;
}

void ebb_lru_idle_tick(struct ebb_lru *lru, uint32_t ticks, uint64_t hist[EBB_IDLE_BUCKETS])
{
	for (int i = 0; i < EBB_IDLE_BUCKETS; i++)
		hist[i] = 0;
	for (uint32_t pfn = 0; pfn < lru->nr_pages; pfn++) {
		struct ebb_page *p = &lru->pages[pfn];
		uint32_t idle;
		int b;

		if (p->state != EBB_PAGE_RESIDENT)
			continue;
		/* idle k: last used [k, k + 1) ticks ago, so at most 2^bitlen(k) */
		idle = (p->flags & EBB_PF_IDLE_MASK) >> EBB_PF_IDLE_SHIFT;
		b = idle == 0 ? 0 : 32 - __builtin_clz(idle);
		hist[b < EBB_IDLE_BUCKETS ? b : EBB_IDLE_BUCKETS - 1]++;
		idle = idle + ticks > 255 ? 255 : idle + ticks;
		p->flags = (uint16_t)((p->flags & ~EBB_PF_IDLE_MASK) | (idle << EBB_PF_IDLE_SHIFT));
	}
}

uint32_t ebb_lru_forget(struct ebb_lru *lru, uint32_t pfn, enum ebb_page_state s)
{
	struct ebb_page *p = &lru->pages[pfn];
	uint32_t id = p->swap_id;

	ebb_lru_list_del(lru, pfn);
	p->swap_id = EBB_SWAP_NONE;
	p->flags &= (uint16_t)(EBB_PF_UNEVICTABLE);
	ebb_lru_set_state(lru, pfn, s);
	return id;
}

void ebb_lru_set_unevictable(struct ebb_lru *lru, uint32_t pfn, bool on)
{
	struct ebb_page *p = &lru->pages[pfn];

	if (on)
		p->flags |= EBB_PF_UNEVICTABLE;
	else
		p->flags &= (uint16_t)~EBB_PF_UNEVICTABLE;
	if (p->state != EBB_PAGE_RESIDENT)
		return;
	if (on && p->lru != EBB_LRU_UNEVICTABLE)
		move_to(lru, pfn, EBB_LRU_UNEVICTABLE);
	else if (!on && p->lru == EBB_LRU_UNEVICTABLE)
		move_to(lru, pfn, class_list(p->swap_id != EBB_SWAP_NONE, false));
}

static unsigned int_sqrt_u64(uint64_t x)
{
	uint64_t r = 0;

	while ((r + 1) * (r + 1) <= x)
		r++;
	return (unsigned)r;
}

bool ebb_lru_inactive_is_low(const struct ebb_lru *lru)
{
	uint64_t ni = lru->lists[EBB_LRU_INACTIVE_CLEAN].nr + lru->lists[EBB_LRU_INACTIVE_DIRTY].nr;
	uint64_t na = lru->lists[EBB_LRU_ACTIVE_CLEAN].nr + lru->lists[EBB_LRU_ACTIVE_DIRTY].nr;
	uint64_t gib = (ni + na) >> (30 - EBB_PAGE_SHIFT);
	uint64_t ratio = gib ? int_sqrt_u64(10 * gib) : 1;

	return ni * ratio < na;
}

void ebb_lru_get_scan_count(const struct ebb_lru *lru, struct ebb_scan_control *sc)
{
	uint64_t clean_w, dirty_w, denom;
	int prio = sc->priority < 0 ? 0 : (sc->priority > EBB_DEF_PRIORITY ? EBB_DEF_PRIORITY : sc->priority);
	int swp = sc->swappiness < 0 ? 0 : (sc->swappiness > 200 ? 200 : sc->swappiness);
	uint64_t nr_clean = lru->lists[EBB_LRU_INACTIVE_CLEAN].nr + lru->lists[EBB_LRU_ACTIVE_CLEAN].nr;

	if (!sc->may_swap || swp == 0) {
		clean_w = 1;
		dirty_w = 0;
	} else if (nr_clean == 0) {
		clean_w = 0;
		dirty_w = 1;
	} else if (prio == 0) {
		/*
		 * As Linux's SCAN_EQUAL: at priority 0 (close to failing a hard
		 * limit, or a forced reclaim of everything) no balancing: both
		 * classes are scanned whole.  Weighted by cost, a dirty class
		 * made dear by many stores got a sliver of a pass: 16 forced
		 * passes left a cold page 27th from the dirty list's tail
		 * (lost_page_ebb, 2026-12-07), and a region at max could
		 * fail its limit with cold dirty pages never looked at.
		 */
		for (int l = 0; l < EBB_LRU_UNEVICTABLE; l++)
			sc->nr_scan_target[l] = lru->lists[l].nr;
		sc->nr_scan_target[EBB_LRU_UNEVICTABLE] = 0;
		return;
	} else {
		/* As Linux's get_scan_count: each class's weight divided by its
		 * share of the recent cost (equal costs: plain swappiness). */
		uint64_t total = lru->cost[0] + lru->cost[1];
		uint64_t ccost = total + lru->cost[0], dcost = total + lru->cost[1];

		total = ccost + dcost;
		dirty_w = (uint64_t)swp * (total + 1) / (dcost + 1);
		clean_w = (uint64_t)(200 - swp) * (total + 1) / (ccost + 1);
		if (!dirty_w && !clean_w)
			clean_w = 1;
	}
	denom = clean_w + dirty_w;
	for (int l = 0; l < EBB_LRU_UNEVICTABLE; l++) {
		bool clean = l == EBB_LRU_INACTIVE_CLEAN || l == EBB_LRU_ACTIVE_CLEAN;
		uint64_t scan = lru->lists[l].nr >> prio, w = clean ? clean_w : dirty_w;

		/* Rounded up, as Linux's DIV64_U64_ROUND_UP there: rounded down,
		 * the last page or two of a list whose class weighs less than
		 * half were never scanned, not even by a forced reclaim of
		 * everything at priority 0 (6 of 1,024 pages stayed resident
		 * after 16 such passes in itest_reclaim_faultaround). */
		scan = w ? (scan * w + denom - 1) / denom : 0;
		sc->nr_scan_target[l] = scan;
	}
	sc->nr_scan_target[EBB_LRU_UNEVICTABLE] = 0;
}

static void shrink_active(struct ebb_lru *lru, enum ebb_lru_list l, uint64_t nr_to_scan,
			  struct ebb_scan_control *sc)
{
	enum ebb_lru_list inactive = (enum ebb_lru_list)(l - 1);

	while (nr_to_scan-- && lru->lists[l].tail != EBB_NIL) {
		uint32_t pfn = lru->lists[l].tail;
		struct ebb_page *p = &lru->pages[pfn];

		sc->nr_scanned++;
		if (p->flags & EBB_PF_YOUNG) {
			p->flags &= (uint16_t)~EBB_PF_YOUNG;
			p->flags |= EBB_PF_REFERENCED;
			move_to(lru, pfn, l);
			sc->nr_rotated++;
		} else {
			p->flags &= (uint16_t)~EBB_PF_REFERENCED;
			move_to(lru, pfn, inactive);
			sc->nr_deactivated++;
		}
	}
}

static int evict_batch(struct ebb_lru *lru, struct ebb_scan_control *sc,
		       const struct ebb_lru_evictor *ev, struct ebb_evict_req *reqs,
		       size_t n)
{
	uint64_t nr_stored = 0;
	int ret = 0;

	for (size_t i = 0; i < n; i++)
		reqs[i].result = EBB_EVICT_KEEP;
	if (n && ev && ev->evict)
		ret = ev->evict(ev->ctx, sc, reqs, n);
	for (size_t i = 0; i < n; i++) {
		uint32_t pfn = reqs[i].pfn;
		struct ebb_page *p = &lru->pages[pfn];
		enum ebb_page_state s;

		/* The evictor owns the copy id: it may have released a stale one. */
		p->swap_id = reqs[i].swap_id;
		switch (reqs[i].result) {
		case EBB_EVICT_SWAPPED:
			nr_stored++;
			/* fall through */
		case EBB_EVICT_CLEAN_DROPPED:
			s = EBB_PAGE_SWAPPED;
			break;
		case EBB_EVICT_ZERO:
		case EBB_EVICT_VANISHED:
			s = EBB_PAGE_ZERO;
			break;
		case EBB_EVICT_LOST:
			/* Not reclaimed memory in any useful sense, but off the LRU. */
			s = EBB_PAGE_LOST;
			break;
		case EBB_EVICT_KEEP_DIRTY:
			if (p->swap_id != EBB_SWAP_NONE)
				ebb_lru_list_add(lru, pfn, EBB_LRU_INACTIVE_CLEAN);
			else
				ebb_lru_list_add(lru, pfn, EBB_LRU_INACTIVE_DIRTY);
			sc->nr_kept++;
			continue;
		case EBB_EVICT_KEEP:
		default:
			ebb_lru_list_add(lru, pfn, class_list(p->swap_id != EBB_SWAP_NONE, false));
			sc->nr_kept++;
			continue;
		}
		p->swap_id = s == EBB_PAGE_SWAPPED ? reqs[i].swap_id : EBB_SWAP_NONE;
		p->flags &= (uint16_t)(EBB_PF_WORKINGSET | EBB_PF_UNEVICTABLE);
		p->flags |= EBB_PF_SHADOW | (reqs[i].clean ? EBB_PF_EVICTED_CLEAN : 0);
		p->u.evicted.shadow = lru->nonresident_age++;
		p->u.evicted.unused = 0;
		ebb_lru_set_state(lru, pfn, s);
		sc->nr_reclaimed++;
	}
	note_cost(lru, false, nr_stored);
	return ret;
}

static int shrink_inactive(struct ebb_lru *lru, enum ebb_lru_list l, uint64_t nr_to_scan,
			   struct ebb_scan_control *sc, const struct ebb_lru_evictor *ev)
{
	struct ebb_evict_req reqs[EBB_SWAP_CLUSTER_MAX];
	enum ebb_lru_list active = (enum ebb_lru_list)(l + 1);
	bool clean = l == EBB_LRU_INACTIVE_CLEAN;
	size_t n = 0;

	while (nr_to_scan-- && lru->lists[l].tail != EBB_NIL) {
		uint32_t pfn = lru->lists[l].tail;
		struct ebb_page *p = &lru->pages[pfn];

		sc->nr_scanned++;
		if (p->flags & EBB_PF_YOUNG) {
			p->flags &= (uint16_t)~EBB_PF_YOUNG;
			if (p->flags & EBB_PF_REFERENCED) {
				p->flags |= EBB_PF_WORKINGSET;
				move_to(lru, pfn, active);
				lru->nonresident_age++;
				sc->nr_activated++;
			} else {
				p->flags |= EBB_PF_REFERENCED;
				move_to(lru, pfn, l);
				sc->nr_rotated++;
			}
			continue;
		}
		p->flags &= (uint16_t)~EBB_PF_REFERENCED;
		ebb_lru_list_del(lru, pfn);
		reqs[n].pfn = pfn;
		reqs[n].swap_id = p->swap_id;
		reqs[n].clean = clean;
		n++;
		if (n == EBB_SWAP_CLUSTER_MAX) {
			int ret = evict_batch(lru, sc, ev, reqs, n);

			n = 0;
			if (ret)
				return ret;
		}
	}
	return evict_batch(lru, sc, ev, reqs, n);
}

int ebb_lru_shrink(struct ebb_lru *lru, struct ebb_scan_control *sc,
		   const struct ebb_lru_evictor *ev)
{
	uint64_t nr[EBB_NR_LRU_LISTS];
	uint64_t start = sc->nr_reclaimed;
	int ret = 0;

	ebb_lru_get_scan_count(lru, sc);
	memcpy(nr, sc->nr_scan_target, sizeof(nr));
	while (nr[EBB_LRU_INACTIVE_CLEAN] || nr[EBB_LRU_ACTIVE_CLEAN] ||
	       nr[EBB_LRU_INACTIVE_DIRTY] || nr[EBB_LRU_ACTIVE_DIRTY]) {
		for (int l = 0; l < EBB_LRU_UNEVICTABLE; l++) {
			uint64_t chunk = nr[l] < EBB_SWAP_CLUSTER_MAX ? nr[l] : EBB_SWAP_CLUSTER_MAX;

			if (!chunk)
				continue;
			nr[l] -= chunk;
			if (ebb_lru_is_active((enum ebb_lru_list)l)) {
				if (sc->force_deactivate || ebb_lru_inactive_is_low(lru))
					shrink_active(lru, (enum ebb_lru_list)l, chunk, sc);
				else
					sc->skipped_deactivate = true;
			} else {
				ret = shrink_inactive(lru, (enum ebb_lru_list)l, chunk, sc, ev);
				if (ret)
					return ret;
			}
		}
		if (sc->nr_reclaimed - start >= sc->nr_to_reclaim)
			break;
	}
	/* Keep the active dirty list aging even when the pass did not reach it. */
	if (sc->may_swap && ebb_lru_inactive_is_low(lru))
		shrink_active(lru, EBB_LRU_ACTIVE_DIRTY, EBB_SWAP_CLUSTER_MAX, sc);
	return ret;
}

/* One walk from the lowest priority up to 0, until START + nr_to_reclaim. */
static int reclaim_walk(struct ebb_lru *lru, struct ebb_scan_control *sc,
			const struct ebb_lru_evictor *ev, uint64_t start)
{
	int ret = 0;

	for (int prio = EBB_DEF_PRIORITY; prio >= 0; prio--) {
		sc->priority = prio;
		ret = ebb_lru_shrink(lru, sc, ev);
		if (ret || sc->nr_reclaimed - start >= sc->nr_to_reclaim)
			break;
	}
	return ret;
}

int ebb_lru_reclaim(struct ebb_lru *lru, struct ebb_scan_control *sc,
		    const struct ebb_lru_evictor *ev)
{
	uint64_t start = sc->nr_reclaimed;
	int ret = reclaim_walk(lru, sc, ev, start);

	/*
	 * swappiness 0 means "clean pages first", not "never swap": like the
	 * kernel when file pages run out, once a full clean-only pass cannot
	 * give what is asked, dirty pages are scanned too (with equal weight).
	 * A hard limit holds at any swappiness.
	 */
	if (!ret && sc->may_swap && sc->swappiness <= 0 &&
	    sc->nr_reclaimed - start < sc->nr_to_reclaim &&
	    lru->lists[EBB_LRU_INACTIVE_DIRTY].nr + lru->lists[EBB_LRU_ACTIVE_DIRTY].nr) {
		int saved = sc->swappiness;

		sc->swappiness = 100;
		ret = reclaim_walk(lru, sc, ev, start);
		sc->swappiness = saved;
	}
	/*
	 * As Linux's do_try_to_free_pages(): a walk that fell short while the
	 * active lists were passed over (the inactive ones were not low) is
	 * retried once with them aged as well.
	 */
	if (!ret && !sc->force_deactivate && sc->skipped_deactivate &&
	    sc->nr_reclaimed - start < sc->nr_to_reclaim) {
		sc->force_deactivate = true;
		ret = reclaim_walk(lru, sc, ev, start);
		sc->force_deactivate = false;
	}
	return ret;
}
