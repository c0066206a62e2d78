/*
 * vmm/memory.c — guest RAM as a host-reclaim region (see vmm/memory.h):
 * sizes against guest RAM, region setup with the KVM dirty log as its reference
 * source, balloon hand-off, KSM, the control-socket `set` command and the
 * `memory` part of `query`.
 *
 * The dirty-log source: every RAM slot is created with
 * KVM_MEM_LOG_DIRTY_PAGES; harvest() calls KVM_GET_DIRTY_LOG per slot (which
 * returns the pages written since the previous call and re-arms write
 * tracking) and puts each slot's bits at its offset in the RAM mapping,
 * which the region covers in order (the slots are vmm/guest_mem.h's).
 * KVM_CLEAR_DIRTY_LOG (manual protect) is not used: GET alone re-arms.
 */
#include "vmm/memory.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/page.h"
#include "client/report.h"
#include "client/size.h"
#include "host-reclaim/refsrc.h"
#include "host-reclaim/region.h"


struct vmm_memory {
	struct vmm_memory_cfg cfg;
	char *swap_dir;
	struct ebb_region *region;
	uint64_t nr_pages;
	struct vmm_guest_mem_slot slots[VMM_GUEST_MEM_MAX_SLOTS];
	unsigned nr_slots;
	/* dirty log: touched only by harvest (region lock held) */
	uint64_t *slot_bitmap;           /* scratch for one slot */
	bool dirty_log;
	bool page_idle;                  /* idle page tracking source added */
	void *idle_ctx;                  /* its context (owned by the region) */
	uint64_t nr_harvests, nr_harvest_errors, nr_dirty_pages;  /* region lock */
	int swappiness;                  /* event thread */
	struct ebb_ratelimit rl;         /* event thread */
	uint64_t nr_discard_errors;      /* event thread */
};

/* ---- sizes ------------------------------------------------------------------------ */

int vmm_mem_size_parse(const char *val, struct vmm_mem_size *out)
{
	size_t n = val ? strlen(val) : 0;
	uint64_t v;

	memset(out, 0, sizeof(*out));
	if (!n)
		return -EINVAL;
	if (val[n - 1] == '%') {
		char *end;
		unsigned long p;

		errno = 0;
		p = strtoul(val, &end, 10);
		if (errno || end != val + n - 1 || end == val || p > 100 || val[0] == '-')
			return -EINVAL;
		out->set = out->is_pct = true;
		out->value = p;
		return 0;
	}
	if (vmm_parse_size(val, 1ull << 20, &v))
		return -EINVAL;
	out->set = true;
	out->value = v;
	return 0;
}

uint64_t vmm_mem_size_pages(const struct vmm_mem_size *s, uint64_t mem_bytes)
{
	uint64_t pages = mem_bytes / EBB_PAGE_BYTES, b;

	if (!s->set)
		return 0;
	if (s->is_pct)
		return pages / 100 * s->value + pages % 100 * s->value / 100;
	b = s->value / EBB_PAGE_BYTES;
	return b > pages ? pages : b;
}

uint32_t vmm_memory_slot_flags(const struct vmm_memory_opts *o)
{
	return !o->off && !o->no_dirty_log ? KVM_MEM_LOG_DIRTY_PAGES : 0;
}

/* ---- the dirty-log reference source ---------------------------------------------- */

static int get_slot_log(struct vmm_memory *m, unsigned slot, uint64_t nr_pages)
{
	struct kvm_dirty_log log = { .slot = slot };

	memset(m->slot_bitmap, 0, (nr_pages + 63) / 64 * 8);
	log.dirty_bitmap = m->slot_bitmap;
	return ioctl(m->cfg.vm_fd, KVM_GET_DIRTY_LOG, &log) < 0 ? -errno : 0;
}

/* Region lock held (background thread). */
static int dirty_harvest(void *ctx, uint64_t nr_pages, uint64_t *bitmap)
{
	struct vmm_memory *m = ctx;
	uint64_t i, n = 0;
	unsigned s;
	int ret;

	if (nr_pages != m->nr_pages)
		return -EINVAL;
	m->nr_harvests++;
	for (s = 0; s < m->nr_slots; s++) {
		uint64_t first = m->slots[s].ram_off / EBB_PAGE_BYTES;
		uint64_t pages = m->slots[s].bytes / EBB_PAGE_BYTES;

		ret = get_slot_log(m, m->slots[s].id, pages);
		if (ret)
			goto fail;
		if (first % 64 == 0) {  /* word by word */
			for (i = 0; i < (pages + 63) / 64; i++) {
				bitmap[first / 64 + i] |= m->slot_bitmap[i];
				n += (uint64_t)__builtin_popcountll(m->slot_bitmap[i]);
			}
			continue;
		}
		for (i = 0; i < pages; i++) {
			uint64_t p = first + i;

			if (m->slot_bitmap[i / 64] & (1ull << (i % 64))) {
				bitmap[p / 64] |= 1ull << (p % 64);
				n++;
			}
		}
	}
	m->nr_dirty_pages += n;
	return 0;
fail:
	m->nr_harvest_errors++;
	return ret;
}

static const struct ebb_refsrc_ops dirty_log_ops = {
	.name = "kvm-dirty-log",
	.kind = EBB_REF_WRITTEN,
	.harvest = dirty_harvest,
	.destroy = NULL,
};

/* ---- create / destroy ----------------------------------------------------------- */

static void region_log(void *ctx, enum ebb_log_level level, const char *msg)
{
	struct vmm_memory *m = ctx;

	vmm_logf(&m->cfg.log, level, "reclaim: %s", msg);
}

/*
 * The file tier's directory when --swap-dir is not given: /var/tmp (meant for
 * large temporary files, on disk on a normal host; the file has no name, so
 * nothing is left there), else the run dir (often a tmpfs: a file tier in
 * RAM only helps through compression being off).
 */
static const char *default_swap_dir(const struct vmm_memory_cfg *cfg)
{
	if (access("/var/tmp", W_OK | X_OK) == 0)
		return "/var/tmp";
	return cfg->default_swap_dir ? cfg->default_swap_dir : "/tmp";
}

static int memory_create(const struct vmm_memory_cfg *cfg, struct vmm_memory **out,
			 char *err, size_t err_len);

int vmm_memory_create(const struct vmm_memory_cfg *cfg, struct vmm_memory **out,
		      char *err, size_t err_len)
{
	int ret;

	*out = NULL;
	if (cfg->opts.off)
		return 0;
	if (err_len)
		err[0] = '\0';
	ret = memory_create(cfg, out, err, err_len);
	if (ret && !cfg->opts.enable && ret != -ENOMEM) {
		/* Not asked for: the VM runs, unmanaged, and says why. */
		vmm_logf(&cfg->log, EBB_LOG_WARN, "guest RAM is not managed by the reclaim engine "
			 "(%s); ebb run --reclaim on makes this an error, --reclaim off silences it",
			 err_len && err[0] ? err : strerror(-ret));
		err[0] = '\0';
		return 0;
	}
	return ret;
}

static int memory_create(const struct vmm_memory_cfg *cfg, struct vmm_memory **out,
			 char *err, size_t err_len)
{
	struct ebb_region_cfg rc;
	struct vmm_memory *m;
	uint64_t high, max, covered = 0, max_slot_pages = 0;
	unsigned s;
	int ret;

	/* The slots tile the RAM mapping in order. */
	for (s = 0; s < cfg->nr_slots && s < VMM_GUEST_MEM_MAX_SLOTS; s++) {
		if (cfg->slots[s].ram_off != covered || cfg->slots[s].bytes % EBB_PAGE_BYTES)
			break;
		covered += cfg->slots[s].bytes;
		if (cfg->slots[s].bytes / EBB_PAGE_BYTES > max_slot_pages)
			max_slot_pages = cfg->slots[s].bytes / EBB_PAGE_BYTES;
	}
	if (cfg->mem_bytes % EBB_PAGE_BYTES || !cfg->nr_slots || s != cfg->nr_slots ||
	    covered != cfg->mem_bytes) {
		snprintf(err, err_len, "memory: inconsistent RAM layout");
		return -EINVAL;
	}
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->cfg = *cfg;
	m->nr_pages = cfg->mem_bytes / EBB_PAGE_BYTES;
	memcpy(m->slots, cfg->slots, cfg->nr_slots * sizeof(*m->slots));
	m->nr_slots = cfg->nr_slots;
	m->cfg.slots = NULL;  /* not owned: the copy above */
	m->swap_dir = strdup(cfg->opts.swap_dir ? cfg->opts.swap_dir : default_swap_dir(cfg));
	m->slot_bitmap = calloc(max_slot_pages / 64 + 1, sizeof(uint64_t));
	if (!m->swap_dir || !m->slot_bitmap) {
		ret = -ENOMEM;
		goto fail;
	}
	m->cfg.opts.swap_dir = m->swap_dir;
	m->cfg.name = NULL;  /* not owned */

	high = vmm_mem_size_pages(&cfg->opts.high, cfg->mem_bytes);
	max = vmm_mem_size_pages(&cfg->opts.max, cfg->mem_bytes);
	if (max && high > max)
		high = max;
	/* Without an explicit high, background reclaim starts a little below max
	 * so the fault path rarely has to reclaim directly. */
	if (max && !cfg->opts.high.set)
		high = max - max / 16;

	/*
	 * The engine pages guest RAM in 4 KiB units: keep khugepaged (THP
	 * "always" hosts) from collapsing it behind our back.  A collapsed range
	 * is split again by the first eviction in it, and a VM's speed would
	 * depend on whether its pages had ever been evicted.
	 */
	if (madvise(cfg->ram, cfg->mem_bytes, MADV_NOHUGEPAGE) < 0)
		vmm_logf(&cfg->log, EBB_LOG_DEBUG, "MADV_NOHUGEPAGE on guest RAM: %s", strerror(errno));
	if (cfg->opts.ksm && madvise(cfg->ram, cfg->mem_bytes, MADV_MERGEABLE) < 0) {
		ret = -errno;
		snprintf(err, err_len, "--ksm: MADV_MERGEABLE on guest RAM failed: %s (is the "
			 "host kernel built with CONFIG_KSM?)", strerror(errno));
		goto fail;
	}

	ebb_region_cfg_init(&rc);
	rc.name = cfg->name;
	rc.base = cfg->ram;
	rc.size_bytes = cfg->mem_bytes;
	rc.high_pages = high;
	rc.max_pages = max;
	if (cfg->opts.swappiness >= 0)
		rc.swappiness = cfg->opts.swappiness;
	if (cfg->opts.fault_around_pages)
		rc.fault_around_pages = cfg->opts.fault_around_pages;
	m->swappiness = rc.swappiness;
	rc.nr_threads = cfg->nr_vcpus ? cfg->nr_vcpus : 1;
	/* The vCPUs and the VMM's own threads fault: let a swap-in never wait
	 * long at max (the page is granted over the limit and counted). */
	rc.max_wait_ns = 200ull * 1000 * 1000;
	/* The KVM dirty log is the written signal of a VM's RAM.  Without a VM
	 * (the stub VMs of the tests) the kernel's async write tracking is. */
	rc.dirty_tracking = cfg->vm_fd >= 0 ? EBB_DIRTY_OFF : EBB_DIRTY_AUTO;
	/* KSM-merged pages cannot be moved (UFFDIO_MOVE says EBUSY): with KSM on,
	 * evict by write-protecting and reading in place, which works on them. */
	if (cfg->opts.ksm)
		rc.evict_mode = EBB_EVICT_WP;
	rc.swap.name = cfg->name;
	rc.swap.zpool_budget_bytes = cfg->opts.compress == VMM_SWAP_NONE ? 0 : cfg->mem_bytes / 4;
	rc.swap.codec = cfg->opts.compress == VMM_SWAP_ZSTD ? EBB_SWAP_CODEC_ZSTD : EBB_SWAP_CODEC_LZ4;
	rc.swap.dir = m->swap_dir;
	rc.swap.file_size_bytes = cfg->mem_bytes;
	/* Space is reserved up front only for a VM started with a limit; one
	 * without gets a sparse file (a later `ebb set max=` that meets a full
	 * disk keeps pages resident: nr_enospc). */
	rc.swap.file_no_prealloc = !cfg->opts.high.set && !cfg->opts.max.set;
	/* Guest memory never reaches the disk in plaintext unless asked
	 * (--swap-encrypt off); the cost is measured in docs/memory.md. */
	rc.swap.file_encrypt = !cfg->opts.no_swap_encrypt;
	rc.log = region_log;
	rc.log_ctx = m;
	ret = ebb_region_create(&rc, &m->region);
	if (ret) {
		if (ret == -EOPNOTSUPP)
			snprintf(err, err_len, "memory: this host kernel's userfaultfd can neither "
				 "move pages (6.8+) nor write-protect them (5.7+); run with "
				 "--reclaim off");
		else
			snprintf(err, err_len, "memory: cannot set up reclaim of guest RAM "
				 "(swap dir %s): %s", m->swap_dir, strerror(-ret));
		goto fail;
	}
	if (!cfg->opts.no_dirty_log && cfg->vm_fd >= 0) {
		/* First harvest now: it resets whatever KVM logged at slot creation. */
		uint64_t *tmp = calloc(m->nr_pages / 64 + 1, sizeof(uint64_t));

		if (tmp) {
			(void)dirty_harvest(m, m->nr_pages, tmp);
			free(tmp);
		}
		ret = ebb_region_add_refsrc(m->region, &dirty_log_ops, m);
		if (ret) {
			snprintf(err, err_len, "memory: cannot add the dirty log source: %s",
				 strerror(-ret));
			goto fail;
		}
		m->dirty_log = true;
	}
	{
		/* Accessed bits where the host has idle page tracking (not in the
		 * box's 6.1 Debian kernel, nor on the 6.18 CI host: -EOPNOTSUPP). */
		void *idle_ctx;

		if (!ebb_refsrc_page_idle_create(cfg->ram, m->nr_pages, &idle_ctx)) {
			if (ebb_region_add_refsrc(m->region, &ebb_refsrc_page_idle_ops, idle_ctx)) {
				if (ebb_refsrc_page_idle_ops.destroy)
					ebb_refsrc_page_idle_ops.destroy(idle_ctx);
			} else {
				m->page_idle = true;
				m->idle_ctx = idle_ctx;
			}
		}
	}
	ret = ebb_region_start(m->region);
	if (ret) {
		snprintf(err, err_len, "memory: cannot start the reclaim threads: %s",
			 strerror(-ret));
		goto fail;
	}
	*out = m;
	return 0;
fail:
	vmm_memory_destroy(m);
	return ret;
}

void vmm_memory_destroy(struct vmm_memory *m)
{
	if (!m)
		return;
	if (m->region) {
		ebb_region_stop(m->region);
		ebb_region_destroy(m->region);
	}
	free(m->slot_bitmap);
	free(m->swap_dir);
	free(m);
}

/* ---- balloon ---------------------------------------------------------------------- */

int vmm_memory_discard(struct vmm_memory *m, uint64_t ram_off, uint64_t len)
{
	/* The range was checked by the guest's memory map; whole pages of the
	 * region are what the engine takes (its page index is the offset in
	 * pages). */
	if (ram_off % EBB_PAGE_BYTES || len % EBB_PAGE_BYTES || ram_off > m->cfg.mem_bytes ||
	    len > m->cfg.mem_bytes - ram_off)
		return -ERANGE;
	return ebb_region_mark_ballooned(m->region, ram_off / EBB_PAGE_BYTES, len / EBB_PAGE_BYTES);
}

/* ---- KSM ---------------------------------------------------------------------------- */

/* Per-process KSM figures: /proc/self/ksm_stat (ksm_merging_pages on 6.6+,
 * only ksm_rmap_items on 6.1) else /proc/self/ksm_merging_pages (5.19+).
 * -1 when the kernel has neither. */
/* "KEY VALUE" (or just "VALUE" with an empty key) -> value, or -1. */
static int64_t parse_kv(const char *line, const char *key)
{
	size_t n = strlen(key);
	long long v;
	char *end;

	if (strncmp(line, key, n) != 0)
		return -1;
	errno = 0;
	v = strtoll(line + n, &end, 10);
	if (errno || end == line + n || v < 0 || (*end && *end != '\n'))
		return -1;
	return v;
}

static int64_t ksm_merging_pages(int64_t *rmap_items)
{
	char line[128];
	int64_t merging = -1, v;
	FILE *f;

	*rmap_items = -1;
	f = fopen("/proc/self/ksm_stat", "r");
	if (f) {
		while (fgets(line, sizeof(line), f)) {
			if ((v = parse_kv(line, "ksm_merging_pages ")) >= 0)
				merging = v;
			else if ((v = parse_kv(line, "ksm_rmap_items ")) >= 0)
				*rmap_items = v;
		}
		fclose(f);
	}
	if (merging < 0) {
		f = fopen("/proc/self/ksm_merging_pages", "r");
		if (f) {
			if (fgets(line, sizeof(line), f))
				merging = parse_kv(line, "");
			fclose(f);
		}
	}
	return merging;
}

/* ---- control socket ----------------------------------------------------------------- */

#define ADD_U64(obj, key, v) json_object_object_add(obj, key, json_object_new_int64((int64_t)(v)))

struct json_object *vmm_memory_idle_json(const struct ebb_region_counters *c)
{
	struct json_object *ws, *a;

	if (!c->nr_idle_ticks)
		return NULL;
	ws = json_object_new_object();
	a = json_object_new_array();
	if (!ws || !a) {
		json_object_put(ws);
		json_object_put(a);
		return NULL;
	}
	for (int i = 0; i < EBB_IDLE_BUCKETS; i++)
		json_object_array_add(a, json_object_new_int64((int64_t)(c->idle_pages[i] * 4096)));
	ADD_U64(ws, "tick_ms", c->idle_tick_ns / 1000000);
	ADD_U64(ws, "nr_ticks", c->nr_idle_ticks);
	json_object_object_add(ws, "bytes", a);
	return ws;
}

/*
 * The `memory` object of `query`: a snapshot of the engine's counters and
 * this VM's settings (struct memory_report), described field by field by
 * memory_fields[], which builds the JSON here and `ebb stat`'s text in
 * vmm_memory_format() — a new figure is one line in the table (and its line
 * in docs/control-protocol.md).
 */
struct memory_report {
	struct ebb_region_counters c;
	uint64_t total_pages, accounted_pages, host_memory_bytes;
	int swappiness;
	bool dirty_log, page_idle, ksm, swap_encrypt;
	const char *evict_mode;
	/* the page_idle source's, -1 without it */
	int64_t idle_passes, idle_scanned, idle_accessed, idle_syscalls, idle_cpu_us;
	int64_t ksm_merging_pages, ksm_rmap_items;   /* -1: unknown */
	double some_avg10, full_avg10;
	uint64_t some_total_us;
};

static struct json_object *idle_hist_json(const void *obj)
{
	return vmm_memory_idle_json(&((const struct memory_report *)obj)->c);
}

/* "working set ..." from the idle_hist object; 0 when it has no histogram. */
static int idle_hist_text(struct json_object *v, char *buf, size_t len)
{
	struct json_object *arr, *t;
	int64_t by[EBB_IDLE_BUCKETS] = { 0 }, upto = 0, tick;

	if (!json_object_is_type(v, json_type_object) ||
	    !json_object_object_get_ex(v, "tick_ms", &t) || !json_object_is_type(t, json_type_int) ||
	    (tick = json_object_get_int64(t)) <= 0 ||
	    !json_object_object_get_ex(v, "bytes", &arr) || !json_object_is_type(arr, json_type_array) ||
	    json_object_array_length(arr) != EBB_IDLE_BUCKETS)
		return 0;
	/* cumulative: used within 1, 8 and 32 ticks; the rest older */
	for (int i = 0; i < EBB_IDLE_BUCKETS; i++)
		by[i] = upto += json_object_get_int64(json_object_array_get_idx(arr, i));
	return snprintf(buf, len, "working set (host-seen): used within %lld s %.1f MiB, "
			"%lld s %.1f MiB, %lld s %.1f MiB; unused longer %.1f MiB",
			(long long)tick / 1000, (double)by[0] / 1048576.0,
			(long long)tick * 8 / 1000, (double)by[3] / 1048576.0,
			(long long)tick * 32 / 1000, (double)by[5] / 1048576.0,
			(double)(upto - by[5]) / 1048576.0);
}

#define R(member) offsetof(struct memory_report, member)
#define C(member) offsetof(struct memory_report, c.member)
/* JSON only */
#define F(n, t, o) { .name = (n), .type = (t), .off = (o) }
/* JSON and text (TL: on a new line) */
#define T(n, t, o, txt, u) \
	{ .name = (n), .type = (t), .off = (o), .text = (txt), .unit = (u) }
#define TL(n, t, o, txt, u) \
	{ .name = (n), .type = (t), .off = (o), .text = (txt), .unit = (u), .line = true }

static const struct vmm_field memory_fields[] = {
	F("total_pages", VMM_FIELD_U64, R(total_pages)),
	T("resident_pages", VMM_FIELD_U64, C(resident_pages), "resident %s", VMM_UNIT_PAGES_MIB),
	T("swapped_pages", VMM_FIELD_U64, C(swapped_pages), ", swapped %s", VMM_UNIT_PAGES_MIB),
	T("zero_pages", VMM_FIELD_U64, C(zero_pages), ", zero %s", VMM_UNIT_PAGES_MIB),
	T("ballooned_pages", VMM_FIELD_U64, C(ballooned_pages), ", ballooned %s",
	  VMM_UNIT_PAGES_MIB),
	T("never_pages", VMM_FIELD_U64, C(never_pages), ", never touched %s", VMM_UNIT_PAGES_MIB),
	T("lost_pages", VMM_FIELD_U64, C(nr_lost_pages), ", lost %s pages", VMM_UNIT_NUM),
	F("nr_lost_uffd_poison", VMM_FIELD_U64, C(nr_lost_uffd_poison)),
	F("nr_lost_hwpoison", VMM_FIELD_U64, C(nr_lost_hwpoison)),
	F("nr_lost_sigbus", VMM_FIELD_U64, C(nr_lost_sigbus)),
	F("nr_restore_failed", VMM_FIELD_U64, C(nr_restore_failed)),
	F("nr_uffd_errors", VMM_FIELD_U64, C(nr_uffd_errors)),
	{ .name = "accounted_pages", .type = VMM_FIELD_U64, .off = R(accounted_pages),
	  .text = "; sum %s of %s pages", .with = "total_pages", .unit = VMM_UNIT_NUM },
	TL("compressed_pages", VMM_FIELD_U64, C(compressed_pages), "compressed %s",
	   VMM_UNIT_PAGES_MIB),
	T("compressed_bytes", VMM_FIELD_U64, C(compressed_bytes), " in %s", VMM_UNIT_BYTES_KIB),
	T("file_pages", VMM_FIELD_U64, C(file_pages), ", file %s", VMM_UNIT_PAGES_MIB),
	F("file_bytes", VMM_FIELD_U64, C(file_bytes)),
	T("file_allocated_bytes", VMM_FIELD_U64, C(file_allocated_bytes), " live in %s allocated",
	  VMM_UNIT_BYTES_KIB),
	F("dedup_saved_bytes", VMM_FIELD_U64, C(dedup_saved_bytes)),
	F("active_pages", VMM_FIELD_U64, C(active_pages)),
	F("inactive_pages", VMM_FIELD_U64, C(inactive_pages)),
	F("clean_pages", VMM_FIELD_U64, C(clean_pages)),
	F("unevictable_pages", VMM_FIELD_U64, C(unevictable_pages)),
	F("nr_scanned", VMM_FIELD_U64, C(nr_scanned)),
	F("nr_reclaimed", VMM_FIELD_U64, C(nr_reclaimed)),
	F("nr_activated", VMM_FIELD_U64, C(nr_activated)),
	F("nr_deactivated", VMM_FIELD_U64, C(nr_deactivated)),
	F("nr_rotated", VMM_FIELD_U64, C(nr_rotated)),
	F("nr_direct_reclaim", VMM_FIELD_U64, C(nr_direct_reclaim)),
	F("nr_background_reclaim", VMM_FIELD_U64, C(nr_background_reclaim)),
	TL("high_pages", VMM_FIELD_U64, C(high_pages), "high %s", VMM_UNIT_PAGES_MIB),
	T("max_pages", VMM_FIELD_U64, C(max_pages), ", max %s (of resident pages)",
	  VMM_UNIT_PAGES_MIB),
	T("swappiness", VMM_FIELD_INT, R(swappiness), ", swappiness %s", VMM_UNIT_NUM),
	T("nr_faults", VMM_FIELD_U64, C(nr_faults), "; faults %s", VMM_UNIT_NUM),
	T("nr_major_faults", VMM_FIELD_U64, C(nr_major_faults), " (major %s)", VMM_UNIT_NUM),
	F("nr_fault_around", VMM_FIELD_U64, C(nr_fault_around)),
	F("nr_zero_in", VMM_FIELD_U64, C(nr_zero_in)),
	F("nr_swapped_in", VMM_FIELD_U64, C(nr_swapped_in)),
	F("nr_swapped_out", VMM_FIELD_U64, C(nr_swapped_out)),
	F("nr_clean_dropped", VMM_FIELD_U64, C(nr_clean_dropped)),
	F("nr_wp_faults", VMM_FIELD_U64, C(nr_wp_faults)),
	F("nr_zero_out", VMM_FIELD_U64, C(nr_zero_out)),
	T("nr_refaults", VMM_FIELD_U64, C(nr_refaults), ", refaults %s", VMM_UNIT_NUM),
	F("nr_refault_activate", VMM_FIELD_U64, C(nr_refault_activate)),
	F("nr_refault_thrash", VMM_FIELD_U64, C(nr_refault_thrash)),
	F("nr_young", VMM_FIELD_U64, C(nr_young)),
	F("nr_aging_passes", VMM_FIELD_U64, C(nr_aging_passes)),
	F("nr_oom", VMM_FIELD_U64, C(nr_oom)),
	F("nr_evict_busy", VMM_FIELD_U64, C(nr_evict_busy)),
	T("nr_errors", VMM_FIELD_U64, C(nr_errors), ", errors %s", VMM_UNIT_NUM),
	F("nr_checksum_errors", VMM_FIELD_U64, C(nr_checksum_errors)),
	F("nr_write_errors", VMM_FIELD_U64, C(nr_write_errors)),
	F("nr_read_errors", VMM_FIELD_U64, C(nr_read_errors)),
	F("nr_short_reads", VMM_FIELD_U64, C(nr_short_reads)),
	F("nr_enospc", VMM_FIELD_U64, C(nr_enospc)),
	F("nr_swapin_errors", VMM_FIELD_U64, C(nr_swapin_errors)),
	F("nr_evict_failed", VMM_FIELD_U64, C(nr_evict_failed)),
	F("nr_max_overrun", VMM_FIELD_U64, C(nr_max_overrun)),
	F("metadata_bytes", VMM_FIELD_U64, C(metadata_bytes)),
	{ .name = "idle_hist", .type = VMM_FIELD_OBJ, .json = idle_hist_json, .line = true,
	  .text_fn = idle_hist_text },
	/* What the VM costs the host in RAM: max bounds only the first term
	 * (resident guest pages); the compressed tier has its own budget. */
	TL("host_memory_bytes", VMM_FIELD_U64, R(host_memory_bytes), "host RAM in all %s",
	   VMM_UNIT_BYTES_KIB),
	F("dirty_log", VMM_FIELD_BOOL, R(dirty_log)),
	F("page_idle", VMM_FIELD_BOOL, R(page_idle)),
	F("page_idle_passes", VMM_FIELD_I64_OPT, R(idle_passes)),
	F("page_idle_pages_scanned", VMM_FIELD_I64_OPT, R(idle_scanned)),
	F("page_idle_accessed", VMM_FIELD_I64_OPT, R(idle_accessed)),
	F("page_idle_syscalls", VMM_FIELD_I64_OPT, R(idle_syscalls)),
	F("page_idle_cpu_us", VMM_FIELD_I64_OPT, R(idle_cpu_us)),
	F("ksm", VMM_FIELD_BOOL, R(ksm)),
	F("swap_encrypt", VMM_FIELD_BOOL, R(swap_encrypt)),
	F("evict_mode", VMM_FIELD_STR, R(evict_mode)),
	T("ksm_merging_pages", VMM_FIELD_I64_OPT, R(ksm_merging_pages), ", KSM-shared %s pages",
	  VMM_UNIT_NUM),
	F("ksm_rmap_items", VMM_FIELD_I64_OPT, R(ksm_rmap_items)),
	T("pressure_some_avg10", VMM_FIELD_DOUBLE, R(some_avg10), ", pressure some avg10 %s",
	  VMM_UNIT_PCT),
	F("pressure_full_avg10", VMM_FIELD_DOUBLE, R(full_avg10)),
	F("pressure_some_total_us", VMM_FIELD_U64, R(some_total_us)),
};

#undef R
#undef C
#undef F
#undef T
#undef TL

static void memory_report(struct vmm_memory *m, struct memory_report *r)
{
	struct ebb_psi_stats psi;
	struct ebb_region_counters *c = &r->c;

	memset(r, 0, sizeof(*r));
	ebb_region_get_counters(m->region, c);
	ebb_region_get_psi(m->region, &psi);
	r->total_pages = m->nr_pages;
	r->accounted_pages = c->resident_pages + c->swapped_pages + c->zero_pages +
			     c->ballooned_pages + c->never_pages + c->nr_lost_pages;
	r->host_memory_bytes = c->resident_pages * EBB_PAGE_BYTES + c->compressed_bytes +
			       c->metadata_bytes;
	r->swappiness = m->swappiness;
	r->dirty_log = m->dirty_log;
	r->page_idle = m->page_idle;
	r->idle_passes = r->idle_scanned = r->idle_accessed = r->idle_syscalls = -1;
	r->idle_cpu_us = -1;
	if (m->idle_ctx) {
		struct ebb_page_idle_stats is;

		ebb_refsrc_page_idle_get_stats(m->idle_ctx, &is);
		r->idle_passes = (int64_t)is.nr_passes;
		r->idle_scanned = (int64_t)is.nr_pages_scanned;
		r->idle_accessed = (int64_t)is.nr_accessed;
		r->idle_syscalls = (int64_t)(is.nr_reads + is.nr_writes);
		r->idle_cpu_us = (int64_t)(is.cpu_ns / 1000);
	}
	r->ksm = m->cfg.opts.ksm;
	r->swap_encrypt = !m->cfg.opts.no_swap_encrypt;
	r->evict_mode = ebb_region_evict_mode(m->region) == EBB_EVICT_WP ? "wp" : "move";
	r->ksm_merging_pages = ksm_merging_pages(&r->ksm_rmap_items);
	r->some_avg10 = psi.some_avg10;
	r->full_avg10 = psi.full_avg10;
	r->some_total_us = psi.some_total_ns / 1000;
}

void vmm_memory_query(struct vmm_memory *m, struct json_object *result)
{
	struct memory_report r;
	struct json_object *o;

	if (!m)
		return;
	o = json_object_new_object();
	if (!o)
		return;
	memory_report(m, &r);
	vmm_report_json(memory_fields, sizeof(memory_fields) / sizeof(memory_fields[0]), &r, o);
	json_object_object_add(result, "memory", o);
}

/* CLIENT: {"high_bytes"|"high_percent", "max_bytes"|"max_percent", "swappiness"} */
enum vmm_ctl_err vmm_memory_ctl_set(struct vmm_memory *m, const struct vmm_ctl_request *req,
				    struct json_object **result, char *msg, size_t msg_len)
{
	static const char *const keys[] = { "high_bytes", "high_percent", "max_bytes",
					    "max_percent", "swappiness" };
	uint64_t v[5] = { 0 };
	bool have[5];
	struct ebb_region_counters c;
	struct json_object *r;
	uint64_t high, max, mem = m ? m->cfg.mem_bytes : 0;
	unsigned i;
	int ret;

	if (!m) {
		snprintf(msg, msg_len, "this VM runs without the reclaim engine (start it with "
			 "--reclaim on or a --mem-high/--mem-max)");
		return VMM_CTL_ERR_STATE;
	}
	for (i = 0; i < 5; i++) {
		if (vmm_ctl_arg_uint(req->args, keys[i], &v[i], &have[i])) {
			snprintf(msg, msg_len, "\"%s\" must be a non-negative integer", keys[i]);
			return VMM_CTL_ERR_INVALID;
		}
	}
	if ((have[0] && have[1]) || (have[2] && have[3])) {
		snprintf(msg, msg_len, "give a limit in bytes or in percent, not both");
		return VMM_CTL_ERR_INVALID;
	}
	if ((have[1] && v[1] > 100) || (have[3] && v[3] > 100) || (have[4] && v[4] > 200)) {
		snprintf(msg, msg_len, "percentages go from 0 to 100, swappiness from 0 to 200");
		return VMM_CTL_ERR_INVALID;
	}
	if (!have[0] && !have[1] && !have[2] && !have[3] && !have[4]) {
		snprintf(msg, msg_len, "nothing to set: give high, max or swappiness");
		return VMM_CTL_ERR_INVALID;
	}
	ebb_region_get_counters(m->region, &c);
	high = c.high_pages;
	max = c.max_pages;
	for (i = 0; i < 4; i += 2) {
		struct vmm_mem_size s = { .set = true, .is_pct = have[i + 1],
					  .value = have[i + 1] ? v[i + 1] : v[i] };
		uint64_t pages;

		if (!have[i] && !have[i + 1])
			continue;
		if (!s.is_pct && s.value > mem) {
			snprintf(msg, msg_len, "%s is more than the guest's RAM", keys[i]);
			return VMM_CTL_ERR_INVALID;
		}
		pages = vmm_mem_size_pages(&s, mem);
		/* 0 pages means "no limit" to the engine: never let a request for
		 * a tiny max silently remove the hard limit. */
		if (i == 2 && pages == 0) {
			snprintf(msg, msg_len, "max must be at least one page (4096 bytes); "
				 "a VM cannot run with no memory");
			return VMM_CTL_ERR_INVALID;
		}
		if (i == 0)
			high = pages;
		else
			max = pages;
	}
	/* A new max without a new high keeps background reclaim just below it. */
	if ((have[2] || have[3]) && !have[0] && !have[1] && max)
		high = max - max / 16;
	if (max && high > max) {
		snprintf(msg, msg_len, "high (%llu pages) is above max (%llu pages)",
			 (unsigned long long)high, (unsigned long long)max);
		return VMM_CTL_ERR_INVALID;
	}
	ret = ebb_region_set_limits(m->region, high, max);
	if (ret) {
		snprintf(msg, msg_len, "cannot set the limits: %s", strerror(-ret));
		return VMM_CTL_ERR_INVALID;
	}
	if (have[4]) {
		ret = ebb_region_set_swappiness(m->region, (int)v[4]);
		if (ret) {
			snprintf(msg, msg_len, "cannot set swappiness: %s", strerror(-ret));
			return VMM_CTL_ERR_INVALID;
		}
		m->swappiness = (int)v[4];
	}
	r = json_object_new_object();
	if (!r) {
		snprintf(msg, msg_len, "out of memory");
		return VMM_CTL_ERR_INTERNAL;
	}
	ADD_U64(r, "high_pages", high);
	ADD_U64(r, "max_pages", max);
	json_object_object_add(r, "swappiness", json_object_new_int(m->swappiness));
	*result = r;
	return VMM_CTL_OK;
}

struct ebb_region *vmm_memory_region(struct vmm_memory *m)
{
	return m ? m->region : NULL;
}

int vmm_memory_swappiness(struct vmm_memory *m)
{
	return m ? m->swappiness : -1;
}

int vmm_memory_set_ksm(struct vmm_memory *m, bool on)
{
	if (!m)
		return -EOPNOTSUPP;
	if (m->cfg.opts.ksm == on)
		return 0;
	if (madvise(m->cfg.ram, m->cfg.mem_bytes, on ? MADV_MERGEABLE : MADV_UNMERGEABLE) < 0)
		return -errno;
	m->cfg.opts.ksm = on;
	return 0;
}

bool vmm_memory_ksm(struct vmm_memory *m)
{
	return m && m->cfg.opts.ksm;
}

int64_t vmm_memory_ksm_pages(struct vmm_memory *m)
{
	int64_t rmap;

	if (!m || !m->cfg.opts.ksm)
		return -1;
	return ksm_merging_pages(&rmap);
}

/* ---- formatting for ebb stat ---------------------------------------------------------- */

int vmm_memory_format(struct json_object *q, char *buf, size_t len)
{
	struct json_object *o;

	if (!json_object_object_get_ex(q, "memory", &o) || !json_object_is_type(o, json_type_object))
		return snprintf(buf, len, "memory:     not managed (reclaim off)\n");
	return vmm_report_text(memory_fields, sizeof(memory_fields) / sizeof(memory_fields[0]), o,
			       "memory:     ", "            ", buf, len);
}
