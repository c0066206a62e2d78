/*
 * vmm/memory.h — guest RAM of an ebb VM as a host-reclaim region
 * (host-reclaim/region.h): the glue between the VMM and the reclaim engine.
 *
 * What it does:
 *   - registers the guest RAM mapping with the engine (userfaultfd MISSING;
 *     evicted pages come back on any access: a vCPU through KVM, whose
 *     get_user_pages on a missing page goes through userfaultfd, or a VMM
 *     thread reading a virtqueue);
 *   - feeds the engine's LRU from the hardware: the KVM dirty log of the
 *     RAM slots (KVM_MEM_LOG_DIRTY_PAGES + KVM_GET_DIRTY_LOG) is an
 *     EBB_REF_WRITTEN reference source;
 *   - balloon inflates and free page reports go to ebb_region_mark_ballooned
 *     (tracked, never swapped) instead of a bare MADV_DONTNEED;
 *   - optional KSM (MADV_MERGEABLE) with per-process sharing figures;
 *   - knobs at launch (vmm_memory_opts: `ebb run --mem-high ...`, parsed by
 *     the program, vmm/bin/run_opts.h) and
 *     live over the control socket (`set`), and the `memory` part of `query`.
 *
 * Threads: the engine runs its own fault-handler and background threads
 * (ebb_region_start).  The dirty-log harvest runs on the engine's background
 * thread with the region lock held (it only does ioctls on the VM fd).
 * Everything else here is called from the event thread or from
 * vmm_vm_create/destroy.  Lock order: device (balloon) -> region.
 */
#ifndef EBB_VMM_MEMORY_H
#define EBB_VMM_MEMORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "client/ctl.h"
#include "client/log.h"
#include "vmm/guest_mem.h"

enum vmm_swap_compress {
	VMM_SWAP_LZ4 = 0,   /* compressed in-memory tier (LZ4), then the file tier */
	VMM_SWAP_NONE,      /* file tier only */
	VMM_SWAP_ZSTD,      /* compressed in-memory tier (zstd level 1), then the file tier */
};

/* A size given as bytes or as a percentage of guest RAM. */
struct vmm_mem_size {
	bool set;
	bool is_pct;
	uint64_t value;      /* bytes, or percent (0..100) */
};

/* What `ebb run` chooses (part of struct vmm_vm_cfg). */
struct vmm_memory_opts {
	/*
	 * Guest RAM is an engine region unless off.  By default (neither set)
	 * a host that cannot give ebb a region (userfaultfd refused or too old,
	 * swap dir unusable) runs the VM unmanaged with a warning; enable
	 * (--reclaim on, or any option below) makes that an error.
	 */
	bool enable;
	bool off;                     /* --reclaim off */
	struct vmm_mem_size high, max;
	int swappiness;               /* -1: engine default (60) */
	const char *swap_dir;         /* NULL: /var/tmp, else the run dir */
	enum vmm_swap_compress compress;
	bool ksm;                     /* MADV_MERGEABLE on guest RAM */
	bool no_dirty_log;            /* do not use the KVM dirty log for aging */
	bool no_swap_encrypt;         /* write the file tier in plaintext */
	uint32_t fault_around_pages;  /* 0: engine default (16); 1: off */
};

/* "30%", "400M", "1G", bare number = MiB. */
int vmm_mem_size_parse(const char *val, struct vmm_mem_size *out);

struct vmm_memory_cfg {
	const char *name;
	void *ram;                    /* guest RAM mapping */
	uint64_t mem_bytes;
	/* The KVM slots over ram (vmm/guest_mem.h), in RAM order, covering
	 * [0, mem_bytes): the dirty log is read per slot. */
	const struct vmm_guest_mem_slot *slots;
	unsigned nr_slots;
	int vm_fd;                    /* for the dirty log; -1: none */
	unsigned nr_vcpus;
	const char *default_swap_dir;
	struct vmm_memory_opts opts;
	struct vmm_log log;
};

struct vmm_memory;

/* Creates the region and starts its threads.  Call after the RAM slots are
 * set (with vmm_memory_slot_flags()) and before anything writes guest RAM.
 * Returns 0 or -errno with a message in err. */
int vmm_memory_create(const struct vmm_memory_cfg *cfg, struct vmm_memory **out,
		      char *err, size_t err_len);
/* Stops the engine threads and frees everything; the vCPUs and devices must
 * have stopped.  NULL is a no-op. */
void vmm_memory_destroy(struct vmm_memory *m);

/* KVM_SET_USER_MEMORY_REGION flags for the RAM slots under these opts. */
uint32_t vmm_memory_slot_flags(const struct vmm_memory_opts *o);

/* GUEST: RAM offsets [ram_off, ram_off + len) the guest gave up (balloon
 * inflate or free page report), already checked by vmm_guest_mem: tracked
 * as ballooned and released.  0 or -errno (-ERANGE: not whole pages of the
 * region). */
int vmm_memory_discard(struct vmm_memory *m, uint64_t ram_off, uint64_t len);

/* Adds "memory": {...} to a query result. */
void vmm_memory_query(struct vmm_memory *m, struct json_object *result);

/*
 * The engine's working set by idle age (docs/reclaim.md, "Idle tick") as
 * {"tick_ms", "nr_ticks", "bytes": [8]}: bytes last used at most tick << i
 * ago.  NULL before the first tick (or without memory).
 */
struct ebb_region_counters;
struct json_object *vmm_memory_idle_json(const struct ebb_region_counters *c);

/* CLIENT: the `set` command: args high_bytes/high_percent, max_bytes/
 * max_percent, swappiness.  m may be NULL (engine off: an error). */
enum vmm_ctl_err vmm_memory_ctl_set(struct vmm_memory *m, const struct vmm_ctl_request *req,
				    struct json_object **result, char *msg, size_t msg_len);

/* For vmm/poolctl.c: the engine region (limits, counters), the live
 * swappiness, and this process's KSM merged pages (-1: KSM off or unknown). */
struct ebb_region *vmm_memory_region(struct vmm_memory *m);
int vmm_memory_swappiness(struct vmm_memory *m);
int64_t vmm_memory_ksm_pages(struct vmm_memory *m);
/* KSM on guest RAM, live (MADV_MERGEABLE / MADV_UNMERGEABLE; unmerging
 * copies every shared page back).  0 or -errno. */
int vmm_memory_set_ksm(struct vmm_memory *m, bool on);
bool vmm_memory_ksm(struct vmm_memory *m);

/* Resolves a size against the guest RAM, in pages (rounded down). */
uint64_t vmm_mem_size_pages(const struct vmm_mem_size *s, uint64_t mem_bytes);

/* Formats the "memory" object of a query for people (ebb stat); returns the
 * number of bytes written (snprintf semantics). */
int vmm_memory_format(struct json_object *query_result, char *buf, size_t len);

#endif
