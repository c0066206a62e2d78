/*
 * virtio/balloon.h — virtio balloon device (virtio 1.x, section 5.5) on the
 * virtio-pci transport: inflate and deflate queues, the statistics queue
 * (VIRTIO_BALLOON_F_STATS_VQ) polled by a periodic tick,
 * VIRTIO_BALLOON_F_DEFLATE_ON_OOM, and free page reporting
 * (VIRTIO_BALLOON_F_REPORTING).
 *
 * Pages the guest gives up (inflate) or reports free are handed to the host
 * through `pages_released` as merged contiguous runs of PFNs, so the VMM
 * does one MADV_DONTNEED per run, never one per page.  Pages the guest takes
 * back (deflate, or all of them at device reset) come back through
 * `pages_reusable`, also as runs.  Every PFN is checked against guest RAM
 * (through host->translate, which rejects the PCI hole) and against
 * guest_pfn_limit before use; bad ones are skipped, counted and logged.
 *
 * The per-PFN balloon state is a bitmap the reclaim engine reads so that it
 * never swaps out nor counts as resident a page sitting in the balloon.
 * Words of the bitmap and the ballooned-page count are written with atomic
 * stores by the event thread, so other threads may read them (a word read
 * atomically is a consistent snapshot of 64 PFNs; the bitmap as a whole is
 * not a snapshot).  Reported free pages are not in the bitmap: the guest may
 * reuse them at once (it then gets zeroed pages).
 */
#ifndef EBB_VIRTIO_BALLOON_H
#define EBB_VIRTIO_BALLOON_H

#include <linux/virtio_balloon.h>

#include "virtio/pci.h"
#include "virtio/virtio.h"

/* Stats tags known to newer guests than our UAPI headers (6.12 has 16). */
#define VIRTIO_BALLOON_STATS_MAX_TAGS 16u
/*
 * Inflate / deflate work per queue_notify / poll call, in PFNs: a longer
 * chain is finished in later calls (the transport's deferred work), so one
 * kick holds the event thread for a bounded time whatever the chains hold.
 */
#define VIRTIO_BALLOON_PAGES_PER_CALL 16384u

enum virtio_balloon_reason {
	VIRTIO_BALLOON_INFLATE,      /* released: the guest inflated the balloon */
	VIRTIO_BALLOON_REPORTED,     /* released: free page reporting */
	VIRTIO_BALLOON_DEFLATE,      /* reusable: deflate the host asked for */
	VIRTIO_BALLOON_DEFLATE_OOM,  /* reusable: the guest deflated on its own (OOM) */
	VIRTIO_BALLOON_RESET,        /* reusable: device reset emptied the balloon */
};

/* The guest's last statistics (values as sent; memory stats are in bytes). */
struct virtio_balloon_stats {
	uint64_t values[VIRTIO_BALLOON_STATS_MAX_TAGS]; /* by VIRTIO_BALLOON_S_* tag */
	uint32_t valid_mask;                            /* bit t: values[t] was sent */
	uint64_t updated_ns;                            /* now_ns of the last tick before it */
};

struct virtio_balloon_counters {
	uint64_t nr_inflated_pages;
	uint64_t nr_deflated_pages;      /* incl. OOM ones */
	uint64_t nr_oom_deflated_pages;  /* deflated while not asked to */
	uint64_t nr_reported_pages;
	uint64_t nr_release_calls;       /* pages_released invocations (runs) */
	uint64_t nr_reusable_calls;      /* pages_reusable invocations (runs) */
	uint64_t nr_bad_pfns;            /* outside RAM / hole / limit: skipped */
	uint64_t nr_dup_inflates;        /* inflate of an already ballooned page */
	uint64_t nr_deflate_not_inflated;/* deflate of a page not in the balloon */
	uint64_t nr_bad_report_ranges;   /* unaligned / outside RAM: skipped */
	uint64_t nr_stats_updates;
	uint64_t nr_stats_requests;
	uint64_t nr_bad_stats;           /* malformed stats buffers */
};

struct virtio_balloon_cfg {
	const struct virtio_host *host;   /* must outlive the device */
	virtio_pfn_t guest_pfn_limit;     /* PFNs >= this are never valid; bitmap size */
	uint16_t queue_max_size;          /* 0: 256 */
	bool stats_vq;                    /* offer VIRTIO_BALLOON_F_STATS_VQ */
	bool deflate_on_oom;              /* offer VIRTIO_BALLOON_F_DEFLATE_ON_OOM */
	bool free_page_reporting;         /* offer VIRTIO_BALLOON_F_REPORTING */
	uint64_t stats_period_ns;         /* stats request period; 0: only on demand */
	/* Host may drop [pfn, pfn + nr_pages) (one MADV_DONTNEED). Required. */
	void (*pages_released)(void *opaque, enum virtio_balloon_reason why, virtio_pfn_t pfn,
			       uint64_t nr_pages);
	/* [pfn, pfn + nr_pages) are the guest's again.  Optional. */
	void (*pages_reusable)(void *opaque, enum virtio_balloon_reason why, virtio_pfn_t pfn,
			       uint64_t nr_pages);
	/* New statistics arrived.  Optional. */
	void (*stats_updated)(void *opaque, const struct virtio_balloon_stats *stats);
	void *opaque;                     /* for the three callbacks above */
};

struct virtio_balloon;

int virtio_balloon_create(const struct virtio_balloon_cfg *cfg, struct virtio_balloon **out);
void virtio_balloon_destroy(struct virtio_balloon *b);

/* The transport the VMM plugs into its PCI bus. */
struct virtio_pci *virtio_balloon_pci(struct virtio_balloon *b);

/* Ask the guest for a balloon of `target_pages` (config num_pages + config irq). */
void virtio_balloon_set_target_pages(struct virtio_balloon *b, uint32_t target_pages);
uint32_t virtio_balloon_target_pages(const struct virtio_balloon *b);
/* What the driver last wrote to config `actual`. */
uint32_t virtio_balloon_actual_pages(const struct virtio_balloon *b);

/* Periodic tick: requests stats every stats_period_ns. */
void virtio_balloon_tick(struct virtio_balloon *b, uint64_t now_ns);
/* Request stats now (no-op if the guest holds no stats buffer with us). */
void virtio_balloon_request_stats(struct virtio_balloon *b, uint64_t now_ns);
/* Last statistics; false when none arrived yet. */
bool virtio_balloon_get_stats(const struct virtio_balloon *b, struct virtio_balloon_stats *out);

/* Per-PFN balloon state (safe from other threads, see above). */
bool virtio_balloon_pfn_ballooned(const struct virtio_balloon *b, virtio_pfn_t pfn);
uint64_t virtio_balloon_nr_ballooned_pages(const struct virtio_balloon *b);
const uint64_t *virtio_balloon_bitmap(const struct virtio_balloon *b, uint64_t *nr_bits);

const struct virtio_balloon_counters *virtio_balloon_counters(const struct virtio_balloon *b);
const struct virtio_dev_errors *virtio_balloon_errors(const struct virtio_balloon *b);

#endif /* EBB_VIRTIO_BALLOON_H */
