/*
 * vmm/memory.c — guest RAM as a host-reclaim region (see vmm/memory.h):
 * option parsing, region setup with the KVM dirty log as its reference
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

#include "host-reclaim/region.h"
#include "client/size.h"

#define PAGE_BYTES 4096ull

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
	struct vmm_ratelimit rl;         /* event thread */
	uint64_t nr_discard_errors;      /* event thread */
};

/* ---- options ------------------------------------------------------------------- */

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
	uint64_t pages = mem_bytes / PAGE_BYTES, b;

	if (!s->set)
		return 0;
	if (s->is_pct)
		return pages / 100 * s->value + pages % 100 * s->value / 100;
	b = s->value / PAGE_BYTES;
	return b > pages ? pages : b;
}

static int onoff(const char *val, bool *out)
{
	if (val && !strcmp(val, "on"))
		*out = true;
	else if (val && !strcmp(val, "off"))
		*out = false;
	else
		return -EINVAL;
	return 0;
}

/* An option that only means something under the engine asks for it. */
static void ask_engine(struct vmm_memory_opts *o)
{
	o->enable = true;
	o->off = false;
}

int vmm_memory_parse_opt(struct vmm_memory_opts *o, const char *name, const char *val,
			 char *err, size_t err_len)
{
	bool b;

	if (!strcmp(name, "mem-high") || !strcmp(name, "mem-max")) {
		struct vmm_mem_size *s = name[4] == 'h' ? &o->high : &o->max;

		if (vmm_mem_size_parse(val, s)) {
			snprintf(err, err_len, "bad --%s '%s': give a size (400M, 1G) or a percentage "
				 "of --mem (30%%)", name, val ? val : "");
			return -EINVAL;
		}
		ask_engine(o);
		return 0;
	}
	if (!strcmp(name, "swappiness")) {
		char *end;
		long v;

		errno = 0;
		v = val ? strtol(val, &end, 10) : -1;
		if (!val || errno || *end || end == val || v < 0 || v > 200) {
			snprintf(err, err_len, "bad --swappiness '%s': give 0 to 200", val ? val : "");
			return -EINVAL;
		}
		o->swappiness = (int)v;
		ask_engine(o);
		return 0;
	}
	if (!strcmp(name, "swap-dir")) {
		if (!val || !*val) {
			snprintf(err, err_len, "--swap-dir needs a directory");
			return -EINVAL;
		}
		o->swap_dir = val;
		ask_engine(o);
		return 0;
	}
	if (!strcmp(name, "swap-compress")) {
		if (val && !strcmp(val, "lz4"))
			o->compress = VMM_SWAP_LZ4;
		else if (val && !strcmp(val, "zstd"))
			o->compress = VMM_SWAP_ZSTD;
		else if (val && !strcmp(val, "none"))
			o->compress = VMM_SWAP_NONE;
		else {
			snprintf(err, err_len, "bad --swap-compress '%s': give lz4, zstd or none",
				 val ? val : "");
			return -EINVAL;
		}
		ask_engine(o);
		return 0;
	}
	if (!strcmp(name, "swap-encrypt")) {
		if (onoff(val, &b)) {
			snprintf(err, err_len, "bad --swap-encrypt '%s': give on or off", val ? val : "");
			return -EINVAL;
		}
		o->no_swap_encrypt = !b;
		ask_engine(o);
		return 0;
	}
	if (!strcmp(name, "ksm") || !strcmp(name, "reclaim") || !strcmp(name, "dirty-log")) {
		if (onoff(val, &b)) {
			snprintf(err, err_len, "bad --%s '%s': give on or off", name, val ? val : "");
			return -EINVAL;
		}
		if (name[0] == 'r') {
			o->enable = b;
			o->off = !b;
			return 0;
		}
		if (name[0] == 'k')
			o->ksm = b;
		else
			o->no_dirty_log = !b;
		ask_engine(o);
		return 0;
	}
	return -ENOENT;
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
		uint64_t first = m->slots[s].ram_off / PAGE_BYTES;
		uint64_t pages = m->slots[s].bytes / PAGE_BYTES;

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
	enum vmm_log_level l = level == EBB_LOG_ERROR ? VMM_LOG_ERR :
			       level == EBB_LOG_WARN ? VMM_LOG_WARN :
			       level == EBB_LOG_INFO ? VMM_LOG_INFO : VMM_LOG_DEBUG;

	vmm_logf(&m->cfg.log, l, "reclaim: %s", msg);
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
		vmm_logf(&cfg->log, VMM_LOG_WARN, "guest RAM is not managed by the reclaim engine "
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
		if (cfg->slots[s].ram_off != covered || cfg->slots[s].bytes % PAGE_BYTES)
			break;
		covered += cfg->slots[s].bytes;
		if (cfg->slots[s].bytes / PAGE_BYTES > max_slot_pages)
			max_slot_pages = cfg->slots[s].bytes / PAGE_BYTES;
	}
	if (cfg->mem_bytes % PAGE_BYTES || !cfg->nr_slots || s != cfg->nr_slots ||
	    covered != cfg->mem_bytes) {
		snprintf(err, err_len, "memory: inconsistent RAM layout");
		return -EINVAL;
	}
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->cfg = *cfg;
	m->nr_pages = cfg->mem_bytes / PAGE_BYTES;
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
		vmm_logf(&cfg->log, VMM_LOG_DEBUG, "MADV_NOHUGEPAGE on guest RAM: %s", strerror(errno));
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
	if (ram_off % PAGE_BYTES || len % PAGE_BYTES || ram_off > m->cfg.mem_bytes ||
	    len > m->cfg.mem_bytes - ram_off)
		return -ERANGE;
	return ebb_region_mark_ballooned(m->region, ram_off / PAGE_BYTES, len / PAGE_BYTES);
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

void vmm_memory_query(struct vmm_memory *m, struct json_object *result)
{
	struct ebb_region_counters c;
	struct ebb_psi_stats psi;
	struct json_object *o;
	int64_t ksm, rmap;
	uint64_t sum;

	if (!m)
		return;
	o = json_object_new_object();
	if (!o)
		return;
	ebb_region_get_counters(m->region, &c);
	ebb_region_get_psi(m->region, &psi);
	ADD_U64(o, "total_pages", m->nr_pages);
	ADD_U64(o, "resident_pages", c.resident_pages);
	ADD_U64(o, "swapped_pages", c.swapped_pages);
	ADD_U64(o, "zero_pages", c.zero_pages);
	ADD_U64(o, "ballooned_pages", c.ballooned_pages);
	ADD_U64(o, "never_pages", c.never_pages);
	ADD_U64(o, "lost_pages", c.nr_lost_pages);
	ADD_U64(o, "nr_lost_uffd_poison", c.nr_lost_uffd_poison);
	ADD_U64(o, "nr_lost_hwpoison", c.nr_lost_hwpoison);
	ADD_U64(o, "nr_lost_sigbus", c.nr_lost_sigbus);
	ADD_U64(o, "nr_restore_failed", c.nr_restore_failed);
	ADD_U64(o, "nr_uffd_errors", c.nr_uffd_errors);
	sum = c.resident_pages + c.swapped_pages + c.zero_pages + c.ballooned_pages +
	      c.never_pages + c.nr_lost_pages;
	ADD_U64(o, "accounted_pages", sum);
	ADD_U64(o, "compressed_pages", c.compressed_pages);
	ADD_U64(o, "compressed_bytes", c.compressed_bytes);
	ADD_U64(o, "file_pages", c.file_pages);
	ADD_U64(o, "file_bytes", c.file_bytes);
	ADD_U64(o, "file_allocated_bytes", c.file_allocated_bytes);
	ADD_U64(o, "dedup_saved_bytes", c.dedup_saved_bytes);
	ADD_U64(o, "active_pages", c.active_pages);
	ADD_U64(o, "inactive_pages", c.inactive_pages);
	ADD_U64(o, "high_pages", c.high_pages);
	ADD_U64(o, "max_pages", c.max_pages);
	json_object_object_add(o, "swappiness", json_object_new_int(m->swappiness));
	ADD_U64(o, "nr_faults", c.nr_faults);
	ADD_U64(o, "nr_major_faults", c.nr_major_faults);
	ADD_U64(o, "nr_swapped_in", c.nr_swapped_in);
	ADD_U64(o, "nr_swapped_out", c.nr_swapped_out);
	ADD_U64(o, "nr_clean_dropped", c.nr_clean_dropped);
	ADD_U64(o, "nr_wp_faults", c.nr_wp_faults);
	ADD_U64(o, "nr_zero_out", c.nr_zero_out);
	ADD_U64(o, "nr_refaults", c.nr_refaults);
	ADD_U64(o, "nr_refault_activate", c.nr_refault_activate);
	ADD_U64(o, "nr_refault_thrash", c.nr_refault_thrash);
	ADD_U64(o, "nr_young", c.nr_young);
	ADD_U64(o, "nr_aging_passes", c.nr_aging_passes);
	ADD_U64(o, "nr_oom", c.nr_oom);
	ADD_U64(o, "nr_evict_busy", c.nr_evict_busy);
	ADD_U64(o, "nr_errors", c.nr_errors);
	ADD_U64(o, "nr_checksum_errors", c.nr_checksum_errors);
	ADD_U64(o, "nr_write_errors", c.nr_write_errors);
	ADD_U64(o, "nr_read_errors", c.nr_read_errors);
	ADD_U64(o, "nr_short_reads", c.nr_short_reads);
	ADD_U64(o, "nr_enospc", c.nr_enospc);
	ADD_U64(o, "nr_swapin_errors", c.nr_swapin_errors);
	ADD_U64(o, "nr_evict_failed", c.nr_evict_failed);
	ADD_U64(o, "nr_max_overrun", c.nr_max_overrun);
	ADD_U64(o, "metadata_bytes", c.metadata_bytes);
	json_object_object_add(o, "idle_hist", vmm_memory_idle_json(&c));
	/* What the VM costs the host in RAM: max bounds only the first term
	 * (resident guest pages); the compressed tier has its own budget. */
	ADD_U64(o, "host_memory_bytes", c.resident_pages * 4096 + c.compressed_bytes + c.metadata_bytes);
	json_object_object_add(o, "dirty_log", json_object_new_boolean(m->dirty_log));
	json_object_object_add(o, "page_idle", json_object_new_boolean(m->page_idle));
	if (m->idle_ctx) {
		struct ebb_page_idle_stats is;

		ebb_refsrc_page_idle_get_stats(m->idle_ctx, &is);
		ADD_U64(o, "page_idle_passes", is.nr_passes);
		ADD_U64(o, "page_idle_pages_scanned", is.nr_pages_scanned);
		ADD_U64(o, "page_idle_accessed", is.nr_accessed);
		ADD_U64(o, "page_idle_syscalls", is.nr_reads + is.nr_writes);
		ADD_U64(o, "page_idle_cpu_us", is.cpu_ns / 1000);
	}
	json_object_object_add(o, "ksm", json_object_new_boolean(m->cfg.opts.ksm));
	json_object_object_add(o, "swap_encrypt", json_object_new_boolean(!m->cfg.opts.no_swap_encrypt));
	json_object_object_add(o, "evict_mode", json_object_new_string(
		ebb_region_evict_mode(m->region) == EBB_EVICT_WP ? "wp" : "move"));
	ksm = ksm_merging_pages(&rmap);
	if (ksm >= 0)
		ADD_U64(o, "ksm_merging_pages", ksm);
	if (rmap >= 0)
		ADD_U64(o, "ksm_rmap_items", rmap);
	json_object_object_add(o, "pressure_some_avg10", json_object_new_double(psi.some_avg10));
	json_object_object_add(o, "pressure_full_avg10", json_object_new_double(psi.full_avg10));
	ADD_U64(o, "pressure_some_total_us", psi.some_total_ns / 1000);
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

static int64_t jget(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
		return -1;
	return json_object_get_int64(v);
}

static const char *mib(int64_t pages, char *buf, size_t len)
{
	if (pages < 0)
		snprintf(buf, len, "?");
	else
		snprintf(buf, len, "%.1f MiB", (double)pages * 4096.0 / 1048576.0);
	return buf;
}

int vmm_memory_format(struct json_object *q, char *buf, size_t len)
{
	struct json_object *o, *v;
	char a[6][32];
	double some = 0;
	int n;

	if (!json_object_object_get_ex(q, "memory", &o) || !json_object_is_type(o, json_type_object))
		return snprintf(buf, len, "memory:     not managed (reclaim off)\n");
	if (json_object_object_get_ex(o, "pressure_some_avg10", &v))
		some = json_object_get_double(v);
	n = snprintf(buf, len,
		     "memory:     resident %s, swapped %s (compressed %s in %lld KiB, file %s "
		     "live in %lld KiB allocated), zero %s\n",
		     mib(jget(o, "resident_pages"), a[0], 32), mib(jget(o, "swapped_pages"), a[1], 32),
		     mib(jget(o, "compressed_pages"), a[2], 32),
		     (long long)(jget(o, "compressed_bytes") / 1024),
		     mib(jget(o, "file_pages"), a[3], 32),
		     (long long)(jget(o, "file_allocated_bytes") / 1024),
		     mib(jget(o, "zero_pages"), a[4], 32));
	if (n < 0 || (size_t)n >= len)
		return n;
	n += snprintf(buf + n, len - (size_t)n,
		      "            ballooned %s, never touched %s, KSM-shared %lld pages; "
		      "sum %lld of %lld pages\n",
		      mib(jget(o, "ballooned_pages"), a[0], 32), mib(jget(o, "never_pages"), a[1], 32),
		      (long long)jget(o, "ksm_merging_pages"), (long long)jget(o, "accounted_pages"),
		      (long long)jget(o, "total_pages"));
	if ((size_t)n >= len)
		return n;
	n += snprintf(buf + n, len - (size_t)n,
		      "            high %s, max %s (of resident pages; host RAM in all %lld KiB), "
		      "swappiness %lld; faults %lld (major %lld), "
		      "refaults %lld, pressure some avg10 %.2f%%, errors %lld\n",
		      mib(jget(o, "high_pages"), a[0], 32), mib(jget(o, "max_pages"), a[1], 32),
		      (long long)(jget(o, "host_memory_bytes") / 1024), (long long)jget(o, "swappiness"), (long long)jget(o, "nr_faults"),
		      (long long)jget(o, "nr_major_faults"), (long long)jget(o, "nr_refaults"), some,
		      (long long)jget(o, "nr_errors"));
	if ((size_t)n >= len)
		return n;
	if (json_object_object_get_ex(o, "idle_hist", &v) && v && json_object_is_type(v, json_type_object)) {
		struct json_object *arr;
		int64_t by[EBB_IDLE_BUCKETS] = { 0 }, upto = 0, tick = jget(v, "tick_ms");

		if (json_object_object_get_ex(v, "bytes", &arr) && json_object_is_type(arr, json_type_array) &&
		    json_object_array_length(arr) == EBB_IDLE_BUCKETS && tick > 0) {
			/* cumulative: used within 1, 8 and 32 ticks; the rest older */
			for (int i = 0; i < EBB_IDLE_BUCKETS; i++)
				by[i] = upto += json_object_get_int64(json_object_array_get_idx(arr, i));
			n += snprintf(buf + n, len - (size_t)n,
				      "            working set (host-seen): used within %lld s %s, "
				      "%lld s %s, %lld s %s; unused longer %s\n",
				      (long long)tick / 1000, mib(by[0] / 4096, a[0], 32),
				      (long long)tick * 8 / 1000, mib(by[3] / 4096, a[1], 32),
				      (long long)tick * 32 / 1000, mib(by[5] / 4096, a[2], 32),
				      mib((upto - by[5]) / 4096, a[3], 32));
		}
	}
	return n;
}
