/*
 * test_lru_aging.c — unit tests of the page state table and the LRU core:
 * size of the per-page state, list integrity, second-chance aging, scan
 * size by priority, the swappiness balance between the clean and dirty
 * classes, may_swap, refault distance (workingset), and the flags a
 * swap-in sets (readahead, suspect).
 *
 * The evictor here is a recording stand-in for the pager (the LRU's edge):
 * it "evicts" what it is given, or refuses when told to.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <string.h>
#include <cmocka.h>

#include "host-reclaim/lru.h"

struct rec_evictor {
	size_t nr_calls;
	size_t nr_seen;
	size_t nr_clean_seen, nr_dirty_seen;
	bool refuse;             /* answer KEEP to everything */
	uint32_t next_id;
};

static int rec_evict(void *ctx, const struct ebb_scan_control *sc,
		     struct ebb_evict_req *reqs, size_t n)
{
	struct rec_evictor *e = ctx;

	(void)sc;
	e->nr_calls++;
	for (size_t i = 0; i < n; i++) {
		e->nr_seen++;
		if (reqs[i].clean)
			e->nr_clean_seen++;
		else
			e->nr_dirty_seen++;
		if (e->refuse) {
			reqs[i].result = EBB_EVICT_KEEP;
		} else if (reqs[i].clean) {
			reqs[i].result = EBB_EVICT_CLEAN_DROPPED;
		} else {
			reqs[i].result = EBB_EVICT_SWAPPED;
			reqs[i].swap_id = e->next_id++;
		}
	}
	return 0;
}

/* Walk a list both ways and check it against its counter. */
static void check_list(const struct ebb_lru *lru, enum ebb_lru_list l)
{
	uint64_t n = 0;
	uint32_t prev = EBB_NIL;

	for (uint32_t p = lru->lists[l].head; p != EBB_NIL; p = lru->pages[p].u.link.next) {
		assert_int_equal(lru->pages[p].lru, l);
		assert_int_equal(lru->pages[p].u.link.prev, prev);
		assert_int_equal(lru->pages[p].state, EBB_PAGE_RESIDENT);
		prev = p;
		n++;
	}
	assert_int_equal(lru->lists[l].tail, prev);
	assert_int_equal(n, lru->lists[l].nr);
}

static void check_all(const struct ebb_lru *lru)
{
	uint64_t on_lists = 0;

	for (int l = 0; l < EBB_NR_LRU_LISTS; l++) {
		check_list(lru, (enum ebb_lru_list)l);
		on_lists += lru->lists[l].nr;
	}
	assert_int_equal(on_lists, lru->nr_state[EBB_PAGE_RESIDENT]);
}

static void test_page_state_is_16_bytes(void **state)
{
	(void)state;
	assert_int_equal(sizeof(struct ebb_page), 16);
	/* The shadow shares the link words: both are 8 bytes at offset 0. */
	assert_int_equal(offsetof(struct ebb_page, u), 0);
	assert_int_equal(sizeof(((struct ebb_page *)0)->u), 8);
}

static void test_create_rejects_bad_sizes(void **state)
{
	struct ebb_lru *lru = (struct ebb_lru *)1;

	(void)state;
	assert_int_equal(ebb_lru_create(0, &lru), -EINVAL);
	assert_null(lru);
	assert_int_equal(ebb_lru_create(UINT32_MAX, &lru), -EINVAL);
	ebb_lru_destroy(NULL);
}

static void fill(struct ebb_lru *lru, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		ebb_lru_page_in(lru, i, false);
}

static void test_page_in_and_lists(void **state)
{
	struct ebb_lru *lru;

	(void)state;
	assert_int_equal(ebb_lru_create(100, &lru), 0);
	assert_int_equal(lru->nr_state[EBB_PAGE_NEVER], 100);
	fill(lru, 50);
	assert_int_equal(lru->lists[EBB_LRU_INACTIVE_DIRTY].nr, 50);
	assert_int_equal(lru->nr_state[EBB_PAGE_RESIDENT], 50);
	/* Newest at the head, oldest at the tail. */
	assert_int_equal(lru->lists[EBB_LRU_INACTIVE_DIRTY].head, 49);
	assert_int_equal(lru->lists[EBB_LRU_INACTIVE_DIRTY].tail, 0);
	ebb_lru_list_del(lru, 10);
	ebb_lru_list_add_tail(lru, 10, EBB_LRU_ACTIVE_DIRTY);
	check_all(lru);
	ebb_lru_set_unevictable(lru, 20, true);
	assert_int_equal(lru->lists[EBB_LRU_UNEVICTABLE].nr, 1);
	check_all(lru);
	ebb_lru_set_unevictable(lru, 20, false);
	assert_int_equal(lru->lists[EBB_LRU_UNEVICTABLE].nr, 0);
	check_all(lru);
	ebb_lru_destroy(lru);
}

static void test_second_chance(void **state)
{
	struct ebb_lru *lru;
	struct rec_evictor rec = { 0 };
	struct ebb_lru_evictor ev = { rec_evict, &rec };
	struct ebb_scan_control sc = { .nr_to_reclaim = 1000, .priority = 0,
				       .swappiness = 100, .may_swap = true, .may_writepage = true };

	(void)state;
	assert_int_equal(ebb_lru_create(64, &lru), 0);
	fill(lru, 64);
	/* Pages 0..7 referenced once: survive one scan (rotated, REFERENCED). */
	for (uint32_t i = 0; i < 8; i++)
		ebb_lru_reference(lru, i, false);
	assert_int_equal(ebb_lru_shrink(lru, &sc, &ev), 0);
	assert_int_equal(sc.nr_reclaimed, 56);
	assert_int_equal(sc.nr_rotated, 8);
	for (uint32_t i = 0; i < 8; i++) {
		assert_int_equal(lru->pages[i].state, EBB_PAGE_RESIDENT);
		assert_true(lru->pages[i].flags & EBB_PF_REFERENCED);
	}
	for (uint32_t i = 8; i < 64; i++) {
		assert_int_equal(lru->pages[i].state, EBB_PAGE_SWAPPED);
		assert_true(lru->pages[i].flags & EBB_PF_SHADOW);
	}
	/* Referenced again: now activated. */
	for (uint32_t i = 0; i < 4; i++)
		ebb_lru_reference(lru, i, false);
	memset(&sc.nr_scanned, 0, sizeof(sc) - offsetof(struct ebb_scan_control, nr_scanned));
	assert_int_equal(ebb_lru_shrink(lru, &sc, &ev), 0);
	assert_int_equal(sc.nr_activated, 4);
	assert_int_equal(sc.nr_reclaimed, 4); /* 4..7 had only the soft mark left */
	/* Activated (and, the inactive list being empty now, the post-pass
	 * aging of the active list may already have deactivated them again,
	 * as Linux does): resident, marked workingset. */
	for (uint32_t i = 0; i < 4; i++) {
		assert_int_equal(lru->pages[i].state, EBB_PAGE_RESIDENT);
		assert_true(lru->pages[i].flags & EBB_PF_WORKINGSET);
	}
	check_all(lru);
	ebb_lru_destroy(lru);
}

static void test_active_list_aging(void **state)
{
	struct ebb_lru *lru;
	struct ebb_scan_control sc = { .nr_to_reclaim = 0, .priority = 0,
				       .swappiness = 100, .may_swap = true };
	struct rec_evictor rec = { .refuse = true };
	struct ebb_lru_evictor ev = { rec_evict, &rec };

	(void)state;
	assert_int_equal(ebb_lru_create(40, &lru), 0);
	for (uint32_t i = 0; i < 40; i++) {
		ebb_lru_page_in(lru, i, false);
		ebb_lru_list_del(lru, i);
		ebb_lru_list_add(lru, i, EBB_LRU_ACTIVE_DIRTY);
	}
	/* Inactive is empty, so it is low: the active tail gets deactivated,
	 * except YOUNG pages which get a second round. */
	assert_true(ebb_lru_inactive_is_low(lru));
	ebb_lru_reference(lru, 0, false);
	ebb_lru_reference(lru, 1, false);
	sc.nr_to_reclaim = 1;
	assert_int_equal(ebb_lru_shrink(lru, &sc, &ev), 0);
	assert_true(sc.nr_deactivated > 0);
	assert_int_equal(lru->pages[0].lru, EBB_LRU_ACTIVE_DIRTY);
	assert_int_equal(lru->pages[1].lru, EBB_LRU_ACTIVE_DIRTY);
	assert_false(lru->pages[0].flags & EBB_PF_YOUNG);
	/* Refused evictions keep pages resident. */
	assert_int_equal(sc.nr_reclaimed, 0);
	assert_int_equal(lru->nr_state[EBB_PAGE_RESIDENT], 40);
	check_all(lru);
	ebb_lru_destroy(lru);
}

static void test_priority_scan_size(void **state)
{
	struct ebb_lru *lru;
	struct ebb_scan_control sc = { .swappiness = 100, .may_swap = true };

	(void)state;
	assert_int_equal(ebb_lru_create(1 << 16, &lru), 0);
	fill(lru, 1 << 16);
	for (int prio = 12; prio >= 0; prio--) {
		sc.priority = prio;
		ebb_lru_get_scan_count(lru, &sc);
		/* Only dirty pages exist: the dirty class gets the full share. */
		assert_int_equal(sc.nr_scan_target[EBB_LRU_INACTIVE_DIRTY], (1u << 16) >> prio);
		assert_int_equal(sc.nr_scan_target[EBB_LRU_INACTIVE_CLEAN], 0);
	}
	ebb_lru_destroy(lru);
}

static void make_classes(struct ebb_lru *lru, uint32_t n_clean, uint32_t n_dirty)
{
	for (uint32_t i = 0; i < n_clean; i++) {
		lru->pages[i].swap_id = 1000 + i;
		ebb_lru_page_in(lru, i, true);
	}
	for (uint32_t i = n_clean; i < n_clean + n_dirty; i++)
		ebb_lru_page_in(lru, i, false);
}

static void test_swappiness_balance(void **state)
{
	struct ebb_lru *lru;
	struct ebb_scan_control sc = { .priority = 1, .may_swap = true };

	(void)state;
	assert_int_equal(ebb_lru_create(2000, &lru), 0);
	make_classes(lru, 1000, 1000);
	assert_int_equal(lru->lists[EBB_LRU_INACTIVE_CLEAN].nr, 1000);
	assert_int_equal(lru->lists[EBB_LRU_INACTIVE_DIRTY].nr, 1000);

	/* Priority 1: half of each list, split by swappiness. */
	sc.swappiness = 60;   /* dirty 60/200, clean 140/200 */
	ebb_lru_get_scan_count(lru, &sc);
	assert_int_equal(sc.nr_scan_target[EBB_LRU_INACTIVE_DIRTY], 150);
	assert_int_equal(sc.nr_scan_target[EBB_LRU_INACTIVE_CLEAN], 350);
	sc.swappiness = 200;  /* all dirty */
	ebb_lru_get_scan_count(lru, &sc);
	assert_int_equal(sc.nr_scan_target[EBB_LRU_INACTIVE_DIRTY], 500);
	assert_int_equal(sc.nr_scan_target[EBB_LRU_INACTIVE_CLEAN], 0);
	sc.swappiness = 0;    /* never dirty */
	ebb_lru_get_scan_count(lru, &sc);
	assert_int_equal(sc.nr_scan_target[EBB_LRU_INACTIVE_DIRTY], 0);
	assert_int_equal(sc.nr_scan_target[EBB_LRU_INACTIVE_CLEAN], 500);
	sc.swappiness = 100;
	sc.may_swap = false;  /* drop clean only */
	ebb_lru_get_scan_count(lru, &sc);
	assert_int_equal(sc.nr_scan_target[EBB_LRU_INACTIVE_DIRTY], 0);
	assert_int_equal(sc.nr_scan_target[EBB_LRU_INACTIVE_CLEAN], 500);
	/* Priority 0 (Linux's SCAN_EQUAL): both classes whole, whatever the
	 * swappiness (but 0) and the costs, even a dirty class made 1000x
	 * dearer by stores. */
	sc.may_swap = true;
	sc.priority = 0;
	lru->cost[1] = 1000000;
	lru->cost[0] = 1000;
	for (int swp = 1; swp <= 200; swp += 199) {
		sc.swappiness = swp;
		ebb_lru_get_scan_count(lru, &sc);
		assert_int_equal(sc.nr_scan_target[EBB_LRU_INACTIVE_DIRTY], 1000);
		assert_int_equal(sc.nr_scan_target[EBB_LRU_INACTIVE_CLEAN], 1000);
	}
	sc.swappiness = 0;    /* still clean only */
	ebb_lru_get_scan_count(lru, &sc);
	assert_int_equal(sc.nr_scan_target[EBB_LRU_INACTIVE_DIRTY], 0);
	assert_int_equal(sc.nr_scan_target[EBB_LRU_INACTIVE_CLEAN], 1000);
	lru->cost[0] = lru->cost[1] = 0;

	/* And the evictor really sees that mix. */
	struct rec_evictor rec = { 0 };
	struct ebb_lru_evictor ev = { rec_evict, &rec };
	struct ebb_scan_control sc2 = { .priority = 1, .swappiness = 60, .may_swap = true,
					.may_writepage = true, .nr_to_reclaim = 2000 };

	assert_int_equal(ebb_lru_shrink(lru, &sc2, &ev), 0);
	assert_int_equal(rec.nr_clean_seen, 350);
	assert_int_equal(rec.nr_dirty_seen, 150);
	assert_int_equal(sc2.nr_reclaimed, 500);
	check_all(lru);
	ebb_lru_destroy(lru);
}

/*
 * swappiness 0 prefers clean pages but is not "never swap": when the clean
 * class cannot give what is asked, dirty pages go too (a hard limit must
 * hold at any swappiness).
 */
static void test_swappiness_zero_still_swaps(void **state)
{
	struct ebb_lru *lru;
	struct rec_evictor rec = { 0 };
	struct ebb_lru_evictor ev = { rec_evict, &rec };
	struct ebb_scan_control sc = { .swappiness = 0, .may_swap = true,
				       .may_writepage = true, .nr_to_reclaim = 100 };

	(void)state;
	/* All dirty: nothing else to reclaim. */
	assert_int_equal(ebb_lru_create(4096, &lru), 0);
	fill(lru, 4096);
	assert_int_equal(ebb_lru_reclaim(lru, &sc, &ev), 0);
	assert_true(sc.nr_reclaimed >= 100);
	assert_int_equal(rec.nr_clean_seen, 0);
	check_all(lru);
	ebb_lru_destroy(lru);

	/* 40 clean, the rest dirty: the clean ones go first, then dirty. */
	memset(&rec, 0, sizeof(rec));
	memset(&sc, 0, sizeof(sc));
	sc.may_swap = sc.may_writepage = true;
	sc.nr_to_reclaim = 100;
	assert_int_equal(ebb_lru_create(4096, &lru), 0);
	make_classes(lru, 40, 4056);
	assert_int_equal(ebb_lru_reclaim(lru, &sc, &ev), 0);
	assert_true(sc.nr_reclaimed >= 100);
	assert_int_equal(rec.nr_clean_seen, 40);
	assert_int_equal(lru->lists[EBB_LRU_INACTIVE_CLEAN].nr, 0);
	check_all(lru);

	/* Enough clean pages: swappiness 0 still touches no dirty page. */
	memset(&rec, 0, sizeof(rec));
	memset(&sc, 0, sizeof(sc));
	sc.may_swap = sc.may_writepage = true;
	sc.nr_to_reclaim = 32;
	ebb_lru_destroy(lru);
	assert_int_equal(ebb_lru_create(4096, &lru), 0);
	make_classes(lru, 2048, 2048);
	assert_int_equal(ebb_lru_reclaim(lru, &sc, &ev), 0);
	assert_true(sc.nr_reclaimed >= 32);
	assert_int_equal(rec.nr_dirty_seen, 0);
	check_all(lru);
	ebb_lru_destroy(lru);
}

static void test_reclaim_escalates_priority(void **state)
{
	struct ebb_lru *lru;
	struct rec_evictor rec = { 0 };
	struct ebb_lru_evictor ev = { rec_evict, &rec };
	struct ebb_scan_control sc = { .swappiness = 60, .may_swap = true,
				       .may_writepage = true, .nr_to_reclaim = 100 };

	(void)state;
	assert_int_equal(ebb_lru_create(4096, &lru), 0);
	fill(lru, 4096);
	/* 4096 >> 12 = 1 page per pass at first: reaching 100 needs lower priorities. */
	assert_int_equal(ebb_lru_reclaim(lru, &sc, &ev), 0);
	assert_true(sc.nr_reclaimed >= 100);
	assert_true(sc.priority < 12);
	assert_true(sc.priority >= 5);
	ebb_lru_destroy(lru);
}

static void test_written_makes_dirty(void **state)
{
	struct ebb_lru *lru;

	(void)state;
	assert_int_equal(ebb_lru_create(10, &lru), 0);
	make_classes(lru, 2, 0);
	assert_int_equal(lru->pages[0].lru, EBB_LRU_INACTIVE_CLEAN);
	/* Accessed (not written): stays clean, no stale copy. */
	assert_int_equal(ebb_lru_reference(lru, 0, false), EBB_SWAP_NONE);
	assert_int_equal(lru->pages[0].lru, EBB_LRU_INACTIVE_CLEAN);
	/* Written: the copy is stale and handed back; the page is dirty now. */
	assert_int_equal(ebb_lru_reference(lru, 0, true), 1000);
	assert_int_equal(lru->pages[0].lru, EBB_LRU_INACTIVE_DIRTY);
	assert_int_equal(lru->pages[0].swap_id, EBB_SWAP_NONE);
	/* A page swapped in by a suspect write fault (KVM's async page fault
	 * worker writes-faults on guest reads): its first "written" report
	 * keeps the copy, the second one releases it. */
	lru->pages[1].flags |= EBB_PF_SUSPECT;
	assert_int_equal(ebb_lru_reference(lru, 1, true), EBB_SWAP_NONE);
	assert_int_equal(lru->pages[1].lru, EBB_LRU_INACTIVE_CLEAN);
	assert_int_equal(lru->pages[1].swap_id, 1001);
	assert_int_equal(ebb_lru_reference(lru, 1, true), 1001);
	assert_int_equal(lru->pages[1].lru, EBB_LRU_INACTIVE_DIRTY);
	/* References to non-resident pages are ignored. */
	assert_int_equal(ebb_lru_reference(lru, 5, true), EBB_SWAP_NONE);
	assert_int_equal(lru->pages[5].state, EBB_PAGE_NEVER);
	check_all(lru);
	ebb_lru_destroy(lru);
}

static void test_refault_distance(void **state)
{
	struct ebb_lru *lru;
	struct rec_evictor rec = { 0 };
	struct ebb_lru_evictor ev = { rec_evict, &rec };
	struct ebb_scan_control sc = { .priority = 0, .swappiness = 100, .may_swap = true,
				       .may_writepage = true, .nr_to_reclaim = 10 };

	(void)state;
	assert_int_equal(ebb_lru_create(1000, &lru), 0);
	fill(lru, 1000);
	/* Make 100 pages active, as two referenced scans would. */
	for (uint32_t i = 900; i < 1000; i++) {
		ebb_lru_list_del(lru, i);
		ebb_lru_list_add(lru, i, EBB_LRU_ACTIVE_DIRTY);
		lru->pages[i].flags |= EBB_PF_WORKINGSET;
	}
	/* 900 inactive vs 100 active: the inactive list is not low. */
	assert_false(ebb_lru_inactive_is_low(lru));
	assert_int_equal(ebb_lru_nr_active(lru), 100);

	/* Evict pages 0..9 first, then 500 more: 0..9 are "far" when they come back. */
	sc = (struct ebb_scan_control){ .priority = 0, .swappiness = 100, .may_swap = true,
					.may_writepage = true, .nr_to_reclaim = 10 };
	ebb_lru_shrink(lru, &sc, &ev);
	uint32_t first_evicted[10], n = 0;

	for (uint32_t i = 0; i < 1000 && n < 10; i++)
		if (lru->pages[i].state == EBB_PAGE_SWAPPED)
			first_evicted[n++] = i;
	assert_int_equal(n, 10);
	/* A refault right away: distance ~ 0 <= active size -> activated. */
	uint32_t near = first_evicted[9];

	assert_true(ebb_lru_page_in(lru, near, false));
	assert_int_equal(lru->ws.nr_refault, 1);
	assert_int_equal(lru->ws.nr_refault_activate, 1);
	assert_int_equal(lru->ws.nr_refault_thrash, 0);  /* it was never active */
	assert_true(ebb_lru_is_active((enum ebb_lru_list)lru->pages[near].lru));

	sc.nr_to_reclaim = 500;
	ebb_lru_shrink(lru, &sc, &ev);
	assert_true(lru->nonresident_age - lru->pages[first_evicted[0]].u.evicted.shadow > 100);
	/* Far refault: distance > active size -> inactive. */
	assert_false(ebb_lru_page_in(lru, first_evicted[0], false));
	assert_int_equal(lru->ws.nr_refault, 2);
	assert_int_equal(lru->ws.nr_refault_activate, 1);
	assert_int_equal(lru->pages[first_evicted[0]].lru, EBB_LRU_INACTIVE_DIRTY);

	/* A workingset page (was active) evicted and refaulted at once: thrashing. */
	uint32_t ws = 950;

	assert_true(lru->pages[ws].flags & EBB_PF_WORKINGSET);
	ebb_lru_list_del(lru, ws);
	ebb_lru_list_add_tail(lru, ws, EBB_LRU_INACTIVE_DIRTY);
	sc = (struct ebb_scan_control){ .priority = 0, .swappiness = 100, .may_swap = true,
					.may_writepage = true, .nr_to_reclaim = 1 };
	lru->pages[ws].flags &= (uint16_t)~(EBB_PF_YOUNG | EBB_PF_REFERENCED);
	ebb_lru_shrink(lru, &sc, &ev);
	assert_int_equal(lru->pages[ws].state, EBB_PAGE_SWAPPED);
	assert_true(ebb_lru_page_in(lru, ws, false));
	assert_int_equal(lru->ws.nr_refault_thrash, 1);
	check_all(lru);
	ebb_lru_destroy(lru);
}

/* A swap-in (ebb_lru_swap_in): the faulting page is a refault and may be
 * marked suspect (only with its clean copy kept); a readahead neighbour is
 * no refault, and is marked readahead until it is seen used. */
static void test_swap_in(void **state)
{
	struct ebb_lru *lru;
	struct rec_evictor rec = { 0 };
	struct ebb_lru_evictor ev = { rec_evict, &rec };
	struct ebb_scan_control sc = { .priority = 0, .swappiness = 100, .may_swap = true,
				       .may_writepage = true, .nr_to_reclaim = 20 };
	uint32_t out[3], n = 0;

	(void)state;
	assert_int_equal(ebb_lru_create(100, &lru), 0);
	fill(lru, 100);
	ebb_lru_shrink(lru, &sc, &ev);
	for (uint32_t i = 0; i < 100 && n < 3; i++)
		if (lru->pages[i].state == EBB_PAGE_SWAPPED)
			out[n++] = i;
	assert_int_equal(n, 3);
	for (uint32_t i = 0; i < 3; i++)
		assert_true(lru->pages[out[i]].flags & EBB_PF_SHADOW);

	ebb_lru_swap_in(lru, out[0], true, false, true);      /* the fault, a write */
	assert_int_equal(lru->ws.nr_refault, 1);
	assert_true(lru->pages[out[0]].flags & EBB_PF_SUSPECT);
	assert_false(lru->pages[out[0]].flags & (EBB_PF_READAHEAD | EBB_PF_SHADOW));

	ebb_lru_swap_in(lru, out[1], true, true, false);      /* its readahead */
	assert_int_equal(lru->ws.nr_refault, 1);               /* not a refault */
	assert_true(lru->pages[out[1]].flags & EBB_PF_READAHEAD);
	assert_false(lru->pages[out[1]].flags & (EBB_PF_SUSPECT | EBB_PF_SHADOW));
	ebb_lru_reference(lru, out[1], false);
	assert_false(lru->pages[out[1]].flags & EBB_PF_READAHEAD);

	ebb_lru_swap_in(lru, out[2], false, false, true);     /* no clean copy kept */
	assert_int_equal(lru->ws.nr_refault, 2);
	assert_false(lru->pages[out[2]].flags & EBB_PF_SUSPECT);
	assert_int_equal(lru->pages[out[2]].swap_id, EBB_SWAP_NONE);
	for (uint32_t i = 0; i < 3; i++)
		assert_int_equal(lru->pages[out[i]].state, EBB_PAGE_RESIDENT);
	check_all(lru);
	ebb_lru_destroy(lru);
}

static void test_forget_and_states(void **state)
{
	struct ebb_lru *lru;

	(void)state;
	assert_int_equal(ebb_lru_create(8, &lru), 0);
	make_classes(lru, 1, 1);
	assert_int_equal(ebb_lru_forget(lru, 0, EBB_PAGE_BALLOONED), 1000);
	assert_int_equal(ebb_lru_forget(lru, 1, EBB_PAGE_BALLOONED), EBB_SWAP_NONE);
	assert_int_equal(lru->nr_state[EBB_PAGE_BALLOONED], 2);
	assert_int_equal(lru->nr_state[EBB_PAGE_RESIDENT], 0);
	assert_int_equal(lru->nr_state[EBB_PAGE_NEVER], 6);
	/* A ballooned page coming back is not a refault. */
	assert_false(ebb_lru_page_in(lru, 0, false));
	assert_int_equal(lru->ws.nr_refault, 0);
	check_all(lru);
	ebb_lru_destroy(lru);
}

/* The idle histogram: references reset a page's idle count, ticks age it,
 * buckets are powers of two of ticks, non-resident pages are not counted. */
static void test_idle_histogram(void **state)
{
	struct ebb_lru *lru;
	uint64_t h[EBB_IDLE_BUCKETS];

	(void)state;
	assert_int_equal(ebb_lru_create(64, &lru), 0);
	fill(lru, 40);
	/* first tick: everything just came in */
	ebb_lru_idle_tick(lru, 1, h);
	assert_int_equal(h[0], 40);
	/* pages 0..9 used every tick, 10..19 stop after tick 3, 20..39 never again */
	for (int t = 1; t <= 10; t++) {
		for (uint32_t p = 0; p < (t <= 3 ? 20u : 10u); p++)
			ebb_lru_reference(lru, p, false);
		ebb_lru_idle_tick(lru, 1, h);
	}
	/* 20..39: idle count 10 -> last used [10, 11) ticks ago -> <= 16: bucket 4;
	 * 10..19: idle 7 -> [7, 8) -> bucket 3 */
	assert_int_equal(h[0], 10);
	assert_int_equal(h[3], 10);
	assert_int_equal(h[4], 20);
	assert_int_equal(h[1] + h[2] + h[5] + h[6] + h[7], 0);
	/* a long gap saturates into the last bucket; an eviction leaves the count */
	ebb_lru_idle_tick(lru, 1000, h);
	ebb_lru_idle_tick(lru, 1, h);
	assert_int_equal(h[EBB_IDLE_BUCKETS - 1], 40);
	ebb_lru_forget(lru, 39, EBB_PAGE_BALLOONED);
	assert_false(ebb_lru_page_in(lru, 39, false));   /* back in: just used */
	ebb_lru_idle_tick(lru, 1, h);
	assert_int_equal(h[0], 1);
	assert_int_equal(h[EBB_IDLE_BUCKETS - 1], 39);
	/* the flags the LRU uses are untouched by the count */
	check_all(lru);
	ebb_lru_destroy(lru);
}

/*
 * Reclaim cost tilts the clean/dirty split (Linux's lru_note_cost): clean
 * pages that had been active and come back after being dropped make the
 * clean class costlier, so the scan shifts to the dirty lists (where cold
 * pages wait); stores make the dirty class costlier the same way.
 */
static void test_thrash_cost_tilts_scan(void **state)
{
	struct rec_evictor rec = { .next_id = 5000 };
	struct ebb_lru_evictor ev = { rec_evict, &rec };
	struct ebb_scan_control sc = { .priority = 1, .swappiness = 60, .may_swap = true };
	struct ebb_scan_control drop = { .priority = 0, .swappiness = 0, .may_swap = true,
					 .nr_to_reclaim = 200 };
	struct ebb_lru *lru;

	(void)state;
	assert_int_equal(ebb_lru_create(4000, &lru), 0);
	make_classes(lru, 1000, 1000);
	ebb_lru_get_scan_count(lru, &sc);   /* priority 1: half of each list */
	assert_int_equal(sc.nr_scan_target[EBB_LRU_INACTIVE_DIRTY], 150);
	assert_int_equal(sc.nr_scan_target[EBB_LRU_INACTIVE_CLEAN], 350);

	/* 200 clean pages that had been active are dropped (swappiness 0:
	 * clean only, no cost: nothing was written) ... */
	for (uint32_t i = 0; i < 1000; i++)
		lru->pages[i].flags |= EBB_PF_WORKINGSET;
	assert_int_equal(ebb_lru_shrink(lru, &drop, &ev), 0);
	assert_true(drop.nr_reclaimed >= 200 && drop.nr_reclaimed < 300);   /* whole batches */
	assert_int_equal(lru->cost[0] + lru->cost[1], 0);
	/* ... and come straight back: thrashing, charged to the clean class. */
	for (uint32_t i = 0; i < 1000; i++)
		if (lru->pages[i].state == EBB_PAGE_SWAPPED)
			ebb_lru_swap_in(lru, i, true, false, false);
	assert_int_equal(lru->ws.nr_refault_thrash, drop.nr_reclaimed);
	assert_int_equal(lru->ws.nr_thrash_clean, drop.nr_reclaimed);
	assert_true(lru->cost[0] > 0);
	assert_int_equal(lru->cost[1], 0);
	ebb_lru_get_scan_count(lru, &sc);
	/* the refaulted pages went to the active list */
	assert_int_equal(lru->lists[EBB_LRU_INACTIVE_CLEAN].nr, 1000 - drop.nr_reclaimed);
	assert_true(sc.nr_scan_target[EBB_LRU_INACTIVE_DIRTY] > 150);
	assert_true(sc.nr_scan_target[EBB_LRU_INACTIVE_CLEAN] <
		    ((1000 - drop.nr_reclaimed) >> 1) * 140 / 200);
	print_message("after %llu clean thrash refaults: scan dirty %llu of 500, clean %llu of %llu\n",
		      (unsigned long long)drop.nr_reclaimed,
		      (unsigned long long)sc.nr_scan_target[EBB_LRU_INACTIVE_DIRTY],
		      (unsigned long long)sc.nr_scan_target[EBB_LRU_INACTIVE_CLEAN],
		      (unsigned long long)((1000 - drop.nr_reclaimed) >> 1));

	/* Storing dirty pages costs too: the balance comes back. */
	{
		struct ebb_scan_control st = { .priority = 0, .swappiness = 200, .may_swap = true,
					       .may_writepage = true, .nr_to_reclaim = 400 };
		uint64_t dirty_w_before = sc.nr_scan_target[EBB_LRU_INACTIVE_DIRTY];

		assert_int_equal(ebb_lru_shrink(lru, &st, &ev), 0);
		assert_true(lru->cost[1] > 0);
		ebb_lru_get_scan_count(lru, &sc);
		assert_true(sc.nr_scan_target[EBB_LRU_INACTIVE_DIRTY] * 1000 /
				    lru->lists[EBB_LRU_INACTIVE_DIRTY].nr <
			    dirty_w_before);
	}
	/* Costs decay: they halve once their sum passes a quarter of the
	 * resident pages, so old history fades. */
	assert_true(lru->cost[0] + lru->cost[1] <= lru->nr_state[EBB_PAGE_RESIDENT] / 4 + 1);
	check_all(lru);
	ebb_lru_destroy(lru);
}

/*
 * Hot pages swapped back in sit on the active clean list (their copy is
 * current until the next write) while the cold data waits on the inactive
 * dirty list.  The inactive lists together are not low, so a reclaim takes
 * cold pages and leaves the hot ones alone (squeeze_hot in the box thrashed
 * when each class was balanced on its own: inactive clean was always short).
 */
static void test_hot_clean_kept_over_cold_dirty(void **state)
{
	struct rec_evictor rec = { .next_id = 9000 };
	struct ebb_lru_evictor ev = { rec_evict, &rec };
	struct ebb_scan_control sc = { .swappiness = 60, .may_swap = true, .may_writepage = true,
				       .nr_to_reclaim = 300 };
	struct ebb_lru *lru;

	(void)state;
	assert_int_equal(ebb_lru_create(1500, &lru), 0);
	make_classes(lru, 500, 1000);
	for (uint32_t i = 0; i < 500; i++) {
		ebb_lru_list_del(lru, i);
		ebb_lru_list_add(lru, i, EBB_LRU_ACTIVE_CLEAN);
		lru->pages[i].flags |= EBB_PF_WORKINGSET;
	}
	assert_false(ebb_lru_inactive_is_low(lru));
	assert_int_equal(ebb_lru_reclaim(lru, &sc, &ev), 0);
	assert_true(sc.nr_reclaimed >= 300);
	assert_int_equal(sc.nr_deactivated, 0);
	assert_int_equal(rec.nr_clean_seen, 0);
	assert_int_equal(lru->lists[EBB_LRU_ACTIVE_CLEAN].nr, 500);
	assert_true(sc.skipped_deactivate);    /* passed over, and no retry: the inactive pages were enough */

	/* Asking for more than the inactive lists hold: the walk falls short
	 * with the active lists passed over, and is retried with them aged
	 * (force_deactivate), as Linux's do_try_to_free_pages() does; what it
	 * deactivates is reclaimed by the next call. */
	{
		struct ebb_scan_control all = { .swappiness = 60, .may_swap = true,
						.may_writepage = true, .nr_to_reclaim = 1100 };
		uint64_t inactive = lru->lists[EBB_LRU_INACTIVE_CLEAN].nr +
				    lru->lists[EBB_LRU_INACTIVE_DIRTY].nr;

		assert_int_equal(ebb_lru_reclaim(lru, &all, &ev), 0);
		print_message("reclaim of 1100 with %llu inactive: %llu reclaimed, %llu deactivated\n",
			      (unsigned long long)inactive, (unsigned long long)all.nr_reclaimed,
			      (unsigned long long)all.nr_deactivated);
		assert_true(all.skipped_deactivate);
		assert_false(all.force_deactivate);   /* restored */
		assert_true(all.nr_deactivated > 0);   /* the retry aged the active list */
		assert_true(lru->lists[EBB_LRU_ACTIVE_CLEAN].nr < 500);
	}
	check_all(lru);
	ebb_lru_destroy(lru);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_page_state_is_16_bytes),
		cmocka_unit_test(test_create_rejects_bad_sizes),
		cmocka_unit_test(test_page_in_and_lists),
		cmocka_unit_test(test_second_chance),
		cmocka_unit_test(test_active_list_aging),
		cmocka_unit_test(test_priority_scan_size),
		cmocka_unit_test(test_swappiness_balance),
		cmocka_unit_test(test_reclaim_escalates_priority),
		cmocka_unit_test(test_swappiness_zero_still_swaps),
		cmocka_unit_test(test_written_makes_dirty),
		cmocka_unit_test(test_refault_distance),
		cmocka_unit_test(test_swap_in),
		cmocka_unit_test(test_forget_and_states),
		cmocka_unit_test(test_idle_histogram),
		cmocka_unit_test(test_thrash_cost_tilts_scan),
		cmocka_unit_test(test_hot_clean_kept_over_cold_dirty),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
