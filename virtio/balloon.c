/*
 * virtio/balloon.c — virtio balloon device.
 *
 * Overview.  Queue roles follow the negotiated features the way Linux
 * numbers them: inflate 0, deflate 1, then the stats queue if STATS_VQ was
 * negotiated, then the reporting queue if REPORTING was (free page hinting
 * is not offered).
 *
 * Inflate / deflate: each chain carries little-endian 32-bit PFNs of 4 KiB
 * pages.  Each PFN is validated (limit, guest RAM through translate, and
 * the balloon bitmap for duplicates), the bitmap is updated, and accepted
 * PFNs are collected in a run accumulator.  Before the chain is returned to
 * the guest the accumulator is sorted and merged into contiguous runs and
 * each run goes to one pages_released / pages_reusable call — so the host
 * has dropped (inflate) or re-admitted (deflate) the pages before the guest
 * learns that the request completed.  A deflate while the balloon is not
 * larger than the target (neither by our bitmap count nor by the guest's
 * `actual`) was not asked for by the host: with DEFLATE_ON_OOM that is the
 * guest under memory pressure, counted as an OOM deflate.
 *
 * Free page reporting: each device-writable buffer of a chain is a free
 * range of guest memory; aligned, in-RAM ranges go through the same run
 * accumulator and are released; the chain is returned with length 0.
 *
 * Stats: the driver keeps one buffer with us.  When it arrives we parse it
 * (10-byte tag/value entries), publish the values, and hold the buffer;
 * returning it (tick every stats_period_ns, or on demand) is the request
 * for the next report.
 */
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>

#include "virtio/balloon.h"

#define DEFAULT_QUEUE_SIZE   256u
#define RUN_BATCH            4096u     /* runs collected before a forced flush */
#define MAX_PFNS_PER_CHAIN   65536u    /* Linux sends 256; more is refused */
#define STATS_ENTRY_BYTES    10u
#define STATS_MAX_ENTRIES    64u

enum role { ROLE_INFLATE, ROLE_DEFLATE, ROLE_STATS, ROLE_REPORTING, ROLE_NONE };

struct run {
	virtio_pfn_t pfn;
	uint64_t nr_pages;
};

/*
 * An inflate / deflate chain in progress (b->chain).  Work is bounded per
 * call in pages, not chains: a chain of MAX_PFNS_PER_CHAIN PFNs is done in
 * slices across event-loop turns (virtio_pci_defer), and returned to the
 * guest only when its last PFN is handled.
 */
struct pfn_job {
	bool active;
	bool inflate;
	uint16_t q;
	uint16_t head;
	enum virtio_balloon_reason why;
	uint64_t off;      /* next PFN index in the chain */
	uint64_t nr;       /* PFNs in the chain */
};

struct virtio_balloon {
	struct virtio_balloon_cfg cfg;
	const struct virtio_host *host;
	struct virtio_pci *pci;
	struct virtio_dev_errors errs;
	struct ebb_ratelimit rl;
	struct virtio_balloon_counters ctr;

	uint32_t num_pages;   /* target, config space */
	uint32_t actual;      /* driver-written, config space */
	enum role roles[4];   /* by queue index, fixed at FEATURES_OK */
	uint64_t features;

	uint64_t *bitmap;     /* bit per PFN < cfg.guest_pfn_limit */
	uint64_t nr_ballooned;

	struct run *runs;     /* accumulator, RUN_BATCH entries */
	uint32_t nr_runs;

	bool stats_held;      /* a stats buffer of the driver is with us */
	uint16_t stats_head;
	uint64_t last_request_ns;
	bool have_stats;
	struct virtio_balloon_stats stats;
	struct virtio_chain chain;  /* the chain being processed */
	struct pfn_job job;         /* b->chain, when it is a PFN chain not finished */
};

#define b_warn(b, ...) \
	virtio_log_ratelimited((b)->host, &(b)->rl, &(b)->errs.nr_logs_suppressed, __VA_ARGS__)

/* --- bitmap ------------------------------------------------------------- */

static bool test_pfn(const struct virtio_balloon *b, virtio_pfn_t pfn)
{
	uint64_t w = __atomic_load_n(&b->bitmap[pfn / 64], __ATOMIC_RELAXED);

	return w >> (pfn % 64) & 1;
}

static void set_pfn(struct virtio_balloon *b, virtio_pfn_t pfn, bool on)
{
	uint64_t bit = 1ull << (pfn % 64);

	if (on) {
		__atomic_fetch_or(&b->bitmap[pfn / 64], bit, __ATOMIC_RELAXED);
		__atomic_store_n(&b->nr_ballooned, b->nr_ballooned + 1, __ATOMIC_RELAXED);
	} else {
		__atomic_fetch_and(&b->bitmap[pfn / 64], ~bit, __ATOMIC_RELAXED);
		__atomic_store_n(&b->nr_ballooned, b->nr_ballooned - 1, __ATOMIC_RELAXED);
	}
}

/* --- runs --------------------------------------------------------------- */

static int cmp_run(const void *a, const void *c)
{
	const struct run *x = a, *y = c;

	return x->pfn < y->pfn ? -1 : x->pfn > y->pfn;
}

static void flush_runs(struct virtio_balloon *b, enum virtio_balloon_reason why)
{
	bool release = why == VIRTIO_BALLOON_INFLATE || why == VIRTIO_BALLOON_REPORTED;
	uint32_t i = 0;

	if (b->nr_runs > 1)
		qsort(b->runs, b->nr_runs, sizeof(*b->runs), cmp_run);
	while (i < b->nr_runs) {
		virtio_pfn_t start = b->runs[i].pfn;
		virtio_pfn_t end = start + b->runs[i].nr_pages;

		for (i++; i < b->nr_runs && b->runs[i].pfn <= end; i++) {
			virtio_pfn_t e = b->runs[i].pfn + b->runs[i].nr_pages;
			if (e > end)
				end = e;
		}
		if (release) {
			b->ctr.nr_release_calls++;
			b->cfg.pages_released(b->cfg.opaque, why, start, end - start);
		} else {
			b->ctr.nr_reusable_calls++;
			if (b->cfg.pages_reusable)
				b->cfg.pages_reusable(b->cfg.opaque, why, start, end - start);
		}
	}
	b->nr_runs = 0;
}

static void add_run(struct virtio_balloon *b, enum virtio_balloon_reason why, virtio_pfn_t pfn,
		    uint64_t nr_pages)
{
	if (b->nr_runs) {
		struct run *last = &b->runs[b->nr_runs - 1];

		if (last->pfn + last->nr_pages == pfn) { /* common case: ascending */
			last->nr_pages += nr_pages;
			return;
		}
	}
	if (b->nr_runs == RUN_BATCH)
		flush_runs(b, why);
	b->runs[b->nr_runs++] = (struct run){ pfn, nr_pages };
}

/* GUEST: is [pfn, pfn + nr) guest RAM the balloon may touch (e820 RAM when
 * the host says what that is, mapped RAM in any case)? */
static bool pfns_valid(const struct virtio_balloon *b, virtio_pfn_t pfn, uint64_t nr)
{
	virtio_gpa_t gpa = pfn << EBB_PAGE_SHIFT;
	uint64_t len = nr << EBB_PAGE_SHIFT;
	virtio_pfn_t end;

	if (nr == 0 || __builtin_add_overflow(pfn, nr, &end) || end > b->cfg.guest_pfn_limit)
		return false;
	if (b->host->ram_ok && !b->host->ram_ok(b->host->opaque, gpa, len))
		return false;
	return b->host->translate(b->host->opaque, gpa, len) != NULL;
}

/* --- queues ------------------------------------------------------------- */

/*
 * GUEST: one inflate or deflate chain, from PFN index j->off on, at most
 * `budget_pages` PFNs.  Returns the PFNs looked at; the chain is finished
 * when j->off reaches j->nr.
 */
static uint64_t do_pfn_chain(struct virtio_balloon *b, struct pfn_job *j, uint64_t budget_pages)
{
	const struct virtio_chain *c = &b->chain;
	uint64_t done = 0;

	while (j->off < j->nr && done < budget_pages) {
		uint32_t pfns[256];
		uint64_t n = j->nr - j->off < 256 ? j->nr - j->off : 256;
		size_t got;

		if (n > budget_pages - done)
			n = budget_pages - done;
		got = virtio_chain_read(c, j->off * 4, pfns, n * 4);
		if (got < n * 4) {
			/* Fewer bytes than out_bytes promised: never use the rest. */
			b->errs.nr_bad_request++;
			b_warn(b, "virtio-balloon: PFN buffer ended at byte %llu of %llu",
			       (unsigned long long)(j->off * 4 + got),
			       (unsigned long long)c->out_bytes);
			n = got / 4;
			j->nr = j->off + n;
		}
		for (uint64_t i = 0; i < n; i++) {
			virtio_pfn_t pfn = le32toh(pfns[i]);

			if (!pfns_valid(b, pfn, 1)) {
				b->ctr.nr_bad_pfns++;
				b_warn(b, "virtio-balloon: bad PFN %#llx skipped", (unsigned long long)pfn);
				continue;
			}
			if (j->inflate) {
				if (test_pfn(b, pfn)) {
					b->ctr.nr_dup_inflates++;
					continue;
				}
				set_pfn(b, pfn, true);
				b->ctr.nr_inflated_pages++;
			} else {
				if (!test_pfn(b, pfn)) {
					b->ctr.nr_deflate_not_inflated++;
					continue;
				}
				set_pfn(b, pfn, false);
				b->ctr.nr_deflated_pages++;
				if (j->why == VIRTIO_BALLOON_DEFLATE_OOM)
					b->ctr.nr_oom_deflated_pages++;
			}
			add_run(b, j->why, pfn, 1);
		}
		j->off += n;
		done += n;
	}
	/* Released before the chain goes back (and before we yield). */
	flush_runs(b, j->why);
	return done;
}

/* GUEST: start a popped inflate / deflate chain as b->job. */
static void start_pfn_chain(struct virtio_balloon *b, uint16_t q, bool inflate,
			    enum virtio_balloon_reason why)
{
	const struct virtio_chain *c = &b->chain;
	uint64_t nr = c->out_bytes / 4;

	if (c->out_bytes % 4 || nr > MAX_PFNS_PER_CHAIN) {
		b->errs.nr_bad_request++;
		b_warn(b, "virtio-balloon: PFN buffer of %llu bytes", (unsigned long long)c->out_bytes);
		if (nr > MAX_PFNS_PER_CHAIN)
			nr = MAX_PFNS_PER_CHAIN;
	}
	b->job = (struct pfn_job){
		.active = true, .q = q, .head = c->head, .inflate = inflate, .why = why,
		.off = 0, .nr = nr,
	};
}

/* GUEST: one free page report. */
static void do_report_chain(struct virtio_balloon *b, const struct virtio_chain *c)
{
	for (uint16_t i = c->nr_out; i < c->nr_segs; i++) {
		const struct virtio_seg *s = &c->segs[i];
		uint64_t nr = s->len_bytes >> EBB_PAGE_SHIFT;
		virtio_pfn_t pfn = s->gpa >> EBB_PAGE_SHIFT;

		if ((s->gpa | s->len_bytes) & (EBB_PAGE_SIZE - 1) || !pfns_valid(b, pfn, nr)) {
			b->ctr.nr_bad_report_ranges++;
			b_warn(b, "virtio-balloon: bad reported range %#llx+%u skipped",
			       (unsigned long long)s->gpa, s->len_bytes);
			continue;
		}
		b->ctr.nr_reported_pages += nr;
		add_run(b, VIRTIO_BALLOON_REPORTED, pfn, nr);
	}
	flush_runs(b, VIRTIO_BALLOON_REPORTED);
}

/* GUEST: a stats buffer. */
static void do_stats_chain(struct virtio_balloon *b, const struct virtio_chain *c)
{
	uint8_t buf[STATS_ENTRY_BYTES * STATS_MAX_ENTRIES];
	size_t len = virtio_chain_read(c, 0, buf, sizeof(buf));

	if (c->out_bytes % STATS_ENTRY_BYTES || c->out_bytes > sizeof(buf)) {
		b->ctr.nr_bad_stats++;
		b_warn(b, "virtio-balloon: stats buffer of %llu bytes",
		       (unsigned long long)c->out_bytes);
	}
	b->stats.valid_mask = 0;
	for (size_t off = 0; off + STATS_ENTRY_BYTES <= len; off += STATS_ENTRY_BYTES) {
		uint16_t tag;
		uint64_t val;

		memcpy(&tag, buf + off, 2);
		memcpy(&val, buf + off + 2, 8);
		tag = le16toh(tag);
		if (tag >= VIRTIO_BALLOON_STATS_MAX_TAGS)
			continue; /* a newer guest's tag: not an error */
		b->stats.values[tag] = le64toh(val);
		b->stats.valid_mask |= 1u << tag;
	}
	b->stats.updated_ns = b->last_request_ns;
	b->have_stats = true;
	b->ctr.nr_stats_updates++;
	if (b->cfg.stats_updated)
		b->cfg.stats_updated(b->cfg.opaque, &b->stats);
}

static void complete(struct virtio_balloon *b, uint16_t q, uint16_t head)
{
	struct virtio_vq *vq = virtio_pci_vq(b->pci, q);

	virtio_vq_push(vq, head, 0);
	if (virtio_vq_need_notify(vq))
		virtio_pci_signal_queue(b->pci, q);
}

/* Continue b->job within *pages_left; true when its chain went back to the guest. */
static bool run_job(struct virtio_balloon *b, uint64_t *pages_left)
{
	*pages_left -= do_pfn_chain(b, &b->job, *pages_left);
	if (b->job.off < b->job.nr)
		return false;
	b->job.active = false;
	complete(b, b->job.q, b->job.head);
	return true;
}

static void queue_notify(void *dev, uint16_t q)
{
	struct virtio_balloon *b = dev;
	struct virtio_vq *vq = virtio_pci_vq(b->pci, q);
	enum role role = q < 4 ? b->roles[q] : ROLE_NONE;
	struct virtio_chain *c = &b->chain;
	/* Per call: one queue size of chains and PAGES_PER_CALL PFNs, so a busy
	 * guest cannot hold the event thread; the rest is deferred. */
	unsigned budget = vq->size;
	uint64_t pages_left = VIRTIO_BALLOON_PAGES_PER_CALL;

	if (role == ROLE_NONE)
		return;
	if (b->job.active) {
		/* b->chain is busy: other queues wait until the job is done. */
		if (b->job.q != q || !run_job(b, &pages_left)) {
			virtio_pci_defer(b->pci, q);
			return;
		}
	}
	do {
		while (budget && pages_left && virtio_vq_pop(vq, c) == 1) {
			budget--;
			switch (role) {
			case ROLE_INFLATE:
				start_pfn_chain(b, q, true, VIRTIO_BALLOON_INFLATE);
				if (!run_job(b, &pages_left)) {
					virtio_pci_defer(b->pci, q);
					return;
				}
				continue; /* completed by run_job */
			case ROLE_DEFLATE: {
				/* Asked for, by our count or by the guest's own (actual). */
				bool asked = b->nr_ballooned > b->num_pages || b->actual > b->num_pages;
				bool oom = (b->features & (1ull << VIRTIO_BALLOON_F_DEFLATE_ON_OOM)) &&
					   !asked;
				start_pfn_chain(b, q, false,
						oom ? VIRTIO_BALLOON_DEFLATE_OOM : VIRTIO_BALLOON_DEFLATE);
				if (!run_job(b, &pages_left)) {
					virtio_pci_defer(b->pci, q);
					return;
				}
				continue;
			}
			case ROLE_REPORTING:
				do_report_chain(b, c);
				break;
			case ROLE_STATS:
				if (b->stats_held) { /* a second buffer: give the first back */
					b->errs.nr_bad_request++;
					complete(b, q, b->stats_head);
				}
				do_stats_chain(b, c);
				b->stats_held = true;
				b->stats_head = c->head;
				continue; /* held: not completed */
			case ROLE_NONE:
				break;
			}
			complete(b, q, c->head);
		}
		if (!budget || !pages_left) {
			if (virtio_vq_notify_on(vq))
				virtio_pci_defer(b->pci, q);
			return;
		}
	} while (virtio_vq_notify_on(vq));
}

/* --- transport hooks ---------------------------------------------------- */

static void config_read(void *dev, uint32_t off, void *buf, uint32_t len)
{
	struct virtio_balloon *b = dev;
	struct virtio_balloon_config c;

	memset(&c, 0, sizeof(c));
	c.num_pages = htole32(b->num_pages);
	c.actual = htole32(b->actual);
	memcpy(buf, (uint8_t *)&c + off, len);
}

/* GUEST: only `actual` is the driver's to write. */
static void config_write(void *dev, uint32_t off, const void *buf, uint32_t len)
{
	struct virtio_balloon *b = dev;
	uint32_t at = offsetof(struct virtio_balloon_config, actual);
	uint8_t bytes[4];
	uint32_t v;

	if (off < at || off + len > at + 4) {
		b->errs.nr_bad_register++;
		b_warn(b, "virtio-balloon: config write at %u ignored", off);
		return;
	}
	v = htole32(b->actual);
	memcpy(bytes, &v, 4);
	memcpy(bytes + (off - at), buf, len);
	memcpy(&v, bytes, 4);
	b->actual = le32toh(v);
}

static bool features_ok(void *dev, uint64_t features)
{
	struct virtio_balloon *b = dev;
	uint16_t q = 2;

	b->features = features;
	b->roles[0] = ROLE_INFLATE;
	b->roles[1] = ROLE_DEFLATE;
	b->roles[2] = b->roles[3] = ROLE_NONE;
	if (features & (1ull << VIRTIO_BALLOON_F_STATS_VQ))
		b->roles[q++] = ROLE_STATS;
	if (features & (1ull << VIRTIO_BALLOON_F_REPORTING)) {
		/* Reported ranges are checked and skipped here, not by the ring. */
		virtio_pci_vq(b->pci, q)->gpa_only = true;
		b->roles[q++] = ROLE_REPORTING;
	}
	return true;
}

static void empty_balloon(struct virtio_balloon *b)
{
	uint64_t words = (b->cfg.guest_pfn_limit + 63) / 64;

	for (uint64_t w = 0; w < words; w++) {
		uint64_t bits = b->bitmap[w];

		while (bits) {
			int i = __builtin_ctzll(bits);

			bits &= bits - 1;
			set_pfn(b, w * 64 + (uint64_t)i, false);
			add_run(b, VIRTIO_BALLOON_RESET, w * 64 + (uint64_t)i, 1);
		}
	}
	flush_runs(b, VIRTIO_BALLOON_RESET);
}

static void device_reset(void *dev)
{
	struct virtio_balloon *b = dev;

	empty_balloon(b);
	b->actual = 0;
	b->features = 0;
	b->roles[0] = b->roles[1] = b->roles[2] = b->roles[3] = ROLE_NONE;
	b->stats_held = false;
	b->job.active = false; /* its chain belonged to the old rings */
}

static const struct virtio_pci_device_ops balloon_ops = {
	.config_read = config_read,
	.config_write = config_write,
	.features_ok = features_ok,
	.queue_notify = queue_notify,
	.reset = device_reset,
};

/* --- API ---------------------------------------------------------------- */

int virtio_balloon_create(const struct virtio_balloon_cfg *cfg, struct virtio_balloon **out)
{
	struct virtio_pci_cfg pc;
	struct virtio_balloon *b;
	uint64_t words;
	int ret;

	*out = NULL;
	if (!cfg->host || !cfg->pages_released || cfg->guest_pfn_limit == 0 ||
	    cfg->guest_pfn_limit > (1ull << 40))
		return -EINVAL;
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->cfg = *cfg;
	b->host = cfg->host;
	words = (cfg->guest_pfn_limit + 63) / 64;
	b->bitmap = calloc(words, sizeof(*b->bitmap));
	b->runs = calloc(RUN_BATCH, sizeof(*b->runs));
	if (!b->bitmap || !b->runs) {
		ret = -ENOMEM;
		goto err;
	}
	b->roles[0] = b->roles[1] = b->roles[2] = b->roles[3] = ROLE_NONE;

	memset(&pc, 0, sizeof(pc));
	pc.host = cfg->host;
	pc.ops = &balloon_ops;
	pc.dev = b;
	pc.virtio_device_id = VIRTIO_ID_BALLOON;
	pc.pci_class = 0x058000; /* memory controller, other */
	pc.device_features = (1ull << VIRTIO_RING_F_EVENT_IDX) |
			     (1ull << VIRTIO_RING_F_INDIRECT_DESC);
	pc.nr_queues = 2;
	if (cfg->stats_vq) {
		pc.device_features |= 1ull << VIRTIO_BALLOON_F_STATS_VQ;
		pc.nr_queues++;
	}
	if (cfg->deflate_on_oom)
		pc.device_features |= 1ull << VIRTIO_BALLOON_F_DEFLATE_ON_OOM;
	if (cfg->free_page_reporting) {
		pc.device_features |= 1ull << VIRTIO_BALLOON_F_REPORTING;
		pc.nr_queues++;
	}
	pc.queue_max_size = cfg->queue_max_size ? cfg->queue_max_size : DEFAULT_QUEUE_SIZE;
	pc.config_size_bytes = sizeof(struct virtio_balloon_config);
	pc.errs = &b->errs;
	pc.rl = &b->rl;
	ret = virtio_pci_create(&pc, &b->pci);
	if (ret)
		goto err;
	*out = b;
	return 0;
err:
	virtio_balloon_destroy(b);
	return ret;
}

void virtio_balloon_destroy(struct virtio_balloon *b)
{
	if (!b)
		return;
	virtio_pci_destroy(b->pci);
	free(b->runs);
	free(b->bitmap);
	free(b);
}

struct virtio_pci *virtio_balloon_pci(struct virtio_balloon *b) { return b->pci; }

void virtio_balloon_set_target_pages(struct virtio_balloon *b, uint32_t target_pages)
{
	if (target_pages == b->num_pages)
		return;
	b->num_pages = target_pages;
	virtio_pci_config_changed(b->pci);
}

uint32_t virtio_balloon_target_pages(const struct virtio_balloon *b) { return b->num_pages; }
uint32_t virtio_balloon_actual_pages(const struct virtio_balloon *b) { return b->actual; }

void virtio_balloon_request_stats(struct virtio_balloon *b, uint64_t now_ns)
{
	uint16_t q;

	if (!b->stats_held || !virtio_pci_driver_ok(b->pci))
		return;
	for (q = 0; q < 4 && b->roles[q] != ROLE_STATS; q++)
		;
	if (q == 4)
		return;
	b->stats_held = false;
	b->last_request_ns = now_ns;
	b->ctr.nr_stats_requests++;
	complete(b, q, b->stats_head);
}

void virtio_balloon_tick(struct virtio_balloon *b, uint64_t now_ns)
{
	if (b->cfg.stats_period_ns && now_ns - b->last_request_ns >= b->cfg.stats_period_ns)
		virtio_balloon_request_stats(b, now_ns);
}

bool virtio_balloon_get_stats(const struct virtio_balloon *b, struct virtio_balloon_stats *out)
{
	if (!b->have_stats)
		return false;
	*out = b->stats;
	return true;
}

bool virtio_balloon_pfn_ballooned(const struct virtio_balloon *b, virtio_pfn_t pfn)
{
	return pfn < b->cfg.guest_pfn_limit && test_pfn(b, pfn);
}

uint64_t virtio_balloon_nr_ballooned_pages(const struct virtio_balloon *b)
{
	return __atomic_load_n(&b->nr_ballooned, __ATOMIC_RELAXED);
}

const uint64_t *virtio_balloon_bitmap(const struct virtio_balloon *b, uint64_t *nr_bits)
{
	*nr_bits = b->cfg.guest_pfn_limit;
	return b->bitmap;
}

const struct virtio_balloon_counters *virtio_balloon_counters(const struct virtio_balloon *b)
{
	return &b->ctr;
}

const struct virtio_dev_errors *virtio_balloon_errors(const struct virtio_balloon *b)
{
	return &b->errs;
}
