/*
 * agent_stats.h - what the guest knows about its own memory.
 *
 * Parsers for /proc/meminfo, /proc/vmstat and /proc/pressure/memory text, and
 * the "what could this guest give back cheaply" estimate.  Everything here is
 * a pure function over caller-provided buffers: no file I/O, no allocation, so
 * the agent can call it from its pressure path and the unit tests can feed it
 * sample text.  Values are converted to bytes where the kernel prints kB.
 */
#ifndef EBB_GUEST_AGENT_STATS_H
#define EBB_GUEST_AGENT_STATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The essentials of /proc/meminfo, in bytes.  A field the kernel did not print
 * stays 0; `nr_fields` counts the ones found. */
struct agent_meminfo {
	uint64_t total_bytes;          /* MemTotal */
	uint64_t free_bytes;           /* MemFree */
	uint64_t available_bytes;      /* MemAvailable */
	uint64_t buffers_bytes;        /* Buffers */
	uint64_t cached_bytes;         /* Cached */
	uint64_t swap_cached_bytes;    /* SwapCached */
	uint64_t active_anon_bytes;    /* Active(anon) */
	uint64_t inactive_anon_bytes;  /* Inactive(anon) */
	uint64_t active_file_bytes;    /* Active(file) */
	uint64_t inactive_file_bytes;  /* Inactive(file) */
	uint64_t unevictable_bytes;    /* Unevictable */
	uint64_t mlocked_bytes;        /* Mlocked */
	uint64_t swap_total_bytes;     /* SwapTotal */
	uint64_t swap_free_bytes;      /* SwapFree */
	uint64_t dirty_bytes;          /* Dirty */
	uint64_t writeback_bytes;      /* Writeback */
	uint64_t anon_pages_bytes;     /* AnonPages */
	uint64_t mapped_bytes;         /* Mapped */
	uint64_t shmem_bytes;          /* Shmem */
	uint64_t sreclaimable_bytes;   /* SReclaimable */
	uint64_t sunreclaim_bytes;     /* SUnreclaim */
	unsigned nr_fields;
};

/* Reclaim counters from /proc/vmstat (page counts, since boot).  Kernels
 * before 5.9 print one workingset_refault; newer ones split anon/file: both
 * land in the sum `workingset_refault`. */
struct agent_vmstat {
	uint64_t pgscan_kswapd;
	uint64_t pgscan_direct;
	uint64_t pgsteal_kswapd;
	uint64_t pgsteal_direct;
	uint64_t workingset_refault;       /* anon + file (or the old single one) */
	uint64_t workingset_refault_anon;
	uint64_t workingset_refault_file;
	uint64_t pswpin;
	uint64_t pswpout;
	uint64_t oom_kill;
	uint64_t pgmajfault;
	uint64_t allocstall;               /* sum of allocstall_* */
	uint64_t compact_stall;
	unsigned nr_fields;
};

/* One line of /proc/pressure/memory.  Averages are in hundredths of a percent
 * (the kernel prints two decimals: "avg10=1.23" -> 123). */
struct agent_psi_line {
	uint32_t avg10_centipct;
	uint32_t avg60_centipct;
	uint32_t avg300_centipct;
	uint64_t total_us;
	bool present;
};

struct agent_psi {
	struct agent_psi_line some;
	struct agent_psi_line full;
};

/* Parse the whole text of the file (need not be NUL-terminated).  Unknown
 * lines are ignored; malformed known lines are skipped.  Return 0, or -EINVAL
 * when not one expected field was found. */
int agent_meminfo_parse(const char *text, size_t len, struct agent_meminfo *out);
int agent_vmstat_parse(const char *text, size_t len, struct agent_vmstat *out);
int agent_psi_parse(const char *text, size_t len, struct agent_psi *out);

/* The give-back estimate: memory the guest could hand to the host without
 * hurting itself, i.e. free memory above a reserve plus clean file cache
 * above a floor.  A zero in the config means "use the default". */
struct agent_estimate_cfg {
	uint64_t free_reserve_bytes;   /* keep this much free (default max(32 MiB, total/32)) */
	uint64_t cache_floor_bytes;    /* keep this much file cache (default max(32 MiB, total/16)) */
};

struct agent_estimate {
	uint64_t free_reserve_bytes;   /* the reserve actually used */
	uint64_t cache_floor_bytes;    /* the floor actually used */
	uint64_t clean_file_bytes;     /* file LRU minus dirty and writeback */
	uint64_t give_back_bytes;      /* what a balloon could take cheaply now */
	uint64_t safe_target_bytes;    /* total - give_back: a safe balloon target */
};

void agent_estimate_compute(const struct agent_meminfo *mi,
			    const struct agent_estimate_cfg *cfg,
			    struct agent_estimate *out);

/* How much the guest should ask for when its PSI trigger fires: enough to
 * bring MemAvailable back to `comfort_bytes` (default max(64 MiB, total/8)),
 * at least `min_step_bytes` (default max(16 MiB, total/32)). */
uint64_t agent_need_bytes(const struct agent_meminfo *mi, uint64_t comfort_bytes,
			  uint64_t min_step_bytes);

#endif
