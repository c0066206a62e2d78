/*
 * vmm/virtio_balloon_dev.c — the virtio balloon as a VMM device: the model
 * of virtio/balloon.c (inflate, deflate, free page reporting, stats) with
 * its released runs given back as guest-physical ranges
 * (vmm_vm_discard_range: vmm/guest_mem.c checks them once, then the reclaim
 * engine's ballooned state or MADV_DONTNEED), its stats tick, and the balloon's part of
 * vmm/virtio_devs.h (target size, info for ebb stat).  Deflated pages need
 * nothing: the next touch faults in a zero page.  The per-PFN state stays
 * in the model (vmm_virtio_balloon()) for the reclaim engine.  The PCI
 * function, doorbells and locking are the glue's (vmm/virtio_devs.c).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <linux/virtio_ids.h>

#include "virtio/balloon.h"
#include "vmm/virtio_dev.h"
#include "vmm/virtio_devs.h"
#include "vmm/vm.h"

#define DEFAULT_STATS_PERIOD_MS 2000u

struct bal_dev {
	struct vmm_vdev *v;
	struct virtio_balloon *balloon;
	uint64_t mem_bytes;            /* guest RAM: targets are against it */
	/* Host-side figures: written under the device mutex. */
	uint64_t nr_madvise_calls, nr_discarded_pages, madvise_ns, nr_madvise_errors;
};

/* GUEST: a run the guest inflated or reported (device mutex held). */
static void bal_released(void *opaque, enum virtio_balloon_reason why, virtio_pfn_t pfn,
			 uint64_t nr_pages)
{
	struct bal_dev *b = opaque;
	struct vmm_vm *vm = vmm_vdev_vm(b->v);
	uint64_t len, t0;
	int ret;

	if (__builtin_mul_overflow(nr_pages, (uint64_t)EBB_PAGE_SIZE, &len) ||
	    pfn > UINT64_MAX >> EBB_PAGE_SHIFT || !vm) {
		b->nr_madvise_errors++;
		return;
	}
	t0 = vmm_now_ns();
	/* GUEST: checked by the guest's memory map, its one owner (page
	 * aligned, e820 RAM, one slot), then the reclaim engine's ballooned
	 * state when it runs, else MADV_DONTNEED. */
	ret = vmm_vm_discard_range(vm, pfn << EBB_PAGE_SHIFT, len);
	if (ret == -EINVAL) {
		b->nr_madvise_errors++;
		vmm_vdev_guest_log(b->v, EBB_LOG_WARN,
				   "balloon: run pfn 0x%llx + %llu is not guest RAM; kept",
				   (unsigned long long)pfn, (unsigned long long)nr_pages);
		return;
	}
	if (ret < 0) {
		b->nr_madvise_errors++;
		vmm_vdev_guest_log(b->v, EBB_LOG_WARN, "balloon: releasing RAM: %s",
				   strerror(-ret));
		return;
	}
	b->madvise_ns += vmm_now_ns() - t0;
	b->nr_madvise_calls++;
	b->nr_discarded_pages += nr_pages;
	(void)why;
}

/* ---- the device type ------------------------------------------------------------ */

static void bal_destroy(void *priv)
{
	struct bal_dev *b = priv;

	if (!b)
		return;
	virtio_balloon_destroy(b->balloon);
	free(b);
}

static int bal_create(struct vmm_vdev *v, const struct vmm_virtio_devs_cfg *cfg,
		      const struct virtio_host *host, void **priv, struct virtio_pci **tp)
{
	uint32_t period_ms = cfg->opts.balloon_stats_period_ms ? cfg->opts.balloon_stats_period_ms
							       : DEFAULT_STATS_PERIOD_MS;
	struct bal_dev *b = calloc(1, sizeof(*b));
	struct virtio_balloon_cfg bc = {
		.host = host,
		.guest_pfn_limit = cfg->ram_end_gpa >> EBB_PAGE_SHIFT,
		.stats_vq = true,
		.deflate_on_oom = cfg->opts.balloon_deflate_on_oom,
		.free_page_reporting = !cfg->opts.balloon_no_reporting,
		.stats_period_ns = (uint64_t)period_ms * 1000000ull,
		.pages_released = bal_released, .opaque = b,
	};
	int ret;

	*priv = b;
	if (!b)
		return -ENOMEM;
	b->v = v;
	b->mem_bytes = cfg->mem_bytes;
	ret = virtio_balloon_create(&bc, &b->balloon);
	if (ret)
		return ret;
	*tp = virtio_balloon_pci(b->balloon);
	return 0;
}

static void bal_tick(void *priv, uint64_t now)
{
	struct bal_dev *b = priv;

	virtio_balloon_tick(b->balloon, now);
}

const struct vmm_vdev_type vmm_vdev_balloon = {
	.name = "balloon", .virtio_id = VIRTIO_ID_BALLOON, .pci_class = 0x058000,
	.create = bal_create, .tick = bal_tick, .destroy = bal_destroy,
};

/* ---- the balloon's part of vmm/virtio_devs.h ---------------------------------- */

struct virtio_balloon *vmm_virtio_balloon(struct vmm_virtio_devs *d)
{
	struct bal_dev *b = vmm_virtio_devs_find(d, &vmm_vdev_balloon);

	return b ? b->balloon : NULL;
}

int vmm_virtio_balloon_set_size(struct vmm_virtio_devs *d, uint64_t guest_bytes)
{
	struct bal_dev *b = vmm_virtio_devs_find(d, &vmm_vdev_balloon);
	uint64_t pages;

	if (!b)
		return -ENODEV;
	/* CLIENT: at most the guest's RAM; the balloon takes the rest. */
	if (guest_bytes > b->mem_bytes)
		return -EINVAL;
	pages = (b->mem_bytes - guest_bytes) >> EBB_PAGE_SHIFT;
	if (pages > UINT32_MAX)
		return -ERANGE;
	vmm_vdev_lock(b->v);
	virtio_balloon_set_target_pages(b->balloon, (uint32_t)pages);
	vmm_vdev_unlock(b->v);
	return 0;
}

int vmm_virtio_balloon_info(struct vmm_virtio_devs *d, struct vmm_balloon_info *out)
{
	struct bal_dev *b = vmm_virtio_devs_find(d, &vmm_vdev_balloon);
	const struct virtio_balloon_counters *c;
	struct virtio_pci *tp;
	struct virtio_balloon_stats st;
	unsigned t;

	memset(out, 0, sizeof(*out));
	if (!b)
		return -ENODEV;
	tp = virtio_balloon_pci(b->balloon);
	vmm_vdev_lock(b->v);
	out->mem_bytes = b->mem_bytes;
	out->target_pages = virtio_balloon_target_pages(b->balloon);
	out->actual_pages = virtio_balloon_actual_pages(b->balloon);
	out->nr_ballooned_pages = virtio_balloon_nr_ballooned_pages(b->balloon);
	out->driver_ok = virtio_pci_driver_ok(tp);
	out->features = virtio_pci_features(tp);
	c = virtio_balloon_counters(b->balloon);
	out->nr_inflated_pages = c->nr_inflated_pages;
	out->nr_deflated_pages = c->nr_deflated_pages;
	out->nr_oom_deflated_pages = c->nr_oom_deflated_pages;
	out->nr_reported_pages = c->nr_reported_pages;
	out->nr_bad_pfns = c->nr_bad_pfns;
	out->nr_dup_inflates = c->nr_dup_inflates;
	out->nr_deflate_not_inflated = c->nr_deflate_not_inflated;
	out->nr_bad_report_ranges = c->nr_bad_report_ranges;
	out->nr_bad_stats = c->nr_bad_stats;
	out->errs = *virtio_balloon_errors(b->balloon);
	out->nr_madvise_calls = b->nr_madvise_calls;
	out->nr_discarded_pages = b->nr_discarded_pages;
	out->madvise_ns = b->madvise_ns;
	out->nr_madvise_errors = b->nr_madvise_errors;
	out->nr_exit_kicks = vmm_vdev_nr_exit_kicks(b->v);
	out->have_stats = virtio_balloon_get_stats(b->balloon, &st);
	vmm_vdev_unlock(b->v);
	out->nr_logs_suppressed = vmm_vdev_nr_logs_suppressed(b->v);
	if (out->have_stats) {
		uint64_t now = vmm_now_ns();

		out->stats_age_ms = now > st.updated_ns ? (int64_t)((now - st.updated_ns) / 1000000) : 0;
		out->stats_valid_mask = st.valid_mask;
		for (t = 0; t < 16 && t < VIRTIO_BALLOON_STATS_MAX_TAGS; t++)
			out->stats[t] = st.values[t];
	} else {
		out->stats_age_ms = -1;
	}
	return 0;
}

const char *vmm_balloon_stat_name(unsigned tag)
{
	/* The tag numbers of the virtio spec (5.5.6.3), also newer than our headers. */
	static const char *const names[] = {
		"swap_in", "swap_out", "major_faults", "minor_faults", "free_memory",
		"total_memory", "available_memory", "disk_caches", "hugetlb_allocations",
		"hugetlb_failures", "oom_kills", "alloc_stalls", "async_scans",
		"direct_scans", "async_reclaims", "direct_reclaims",
	};

	return tag < sizeof(names) / sizeof(names[0]) ? names[tag] : NULL;
}
