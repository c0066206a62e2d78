/*
 * swapstore.h — the per-VM swap store of host-reclaim.
 *
 * Two tiers, tried in order:
 *   1. compressed, in memory (LZ4 by default, or zstd: chosen per store in
 *      the cfg), up to a byte budget.  Pages whose compressed size exceeds
 *      compress_max_bytes bypass it.  The compressed objects live in a
 *      size-class slab (zslab.h), named by 32-bit handles.
 *   2. a file tier: one preallocated file per store in a configured dir
 *      (created with O_TMPFILE or mkstemp+unlink, so it never outlives the
 *      process), 4 KiB slots from a next-fit slot allocator so that pages
 *      evicted together land in neighbouring slots (readahead reads them in
 *      one pread).
 * With file_encrypt, pages are written to the file encrypted with
 * XChaCha20-Poly1305 (libsodium) under a random per-store key that lives only
 * in this process's memory (zeroed at destroy); each write takes a fresh
 * 64-bit counter as its nonce, the slot number is authenticated with it, and
 * the nonce and 16-byte tag stay in memory (24 bytes per slot).  A page that
 * fails authentication is -EBADMSG, like a checksum mismatch.
 * Every stored page carries a 64-bit content hash, used three ways: as the
 * checksum verified on every load (mismatch = -EBADMSG, logged as an error,
 * never returned as data), as the dedup key (identical pages are stored once,
 * after a full byte comparison), and by the pager to decide that a resident
 * page still equals its stored copy.  Zero pages are refused (-EINVAL): the
 * caller records them as zero pages instead.
 *
 * Entries are named by a 32-bit id and reference counted (dedup: several
 * pages, one entry); an entry takes 16 bytes, so its count stops at 2^17 - 1
 * (the next identical page gets an entry of its own) and the file tier at
 * 2^32 - 1 slots (16 TiB; a larger file_size_bytes is cut to that).
 *
 * Thread-safety: none; the owner serialises calls.
 */
#ifndef EBB_HOST_RECLAIM_SWAPSTORE_H
#define EBB_HOST_RECLAIM_SWAPSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "host-reclaim/reclaim_log.h"

/* File tier I/O, replaceable for fault injection in tests. */
struct ebb_swap_io {
	ssize_t (*pwrite)(void *ctx, int fd, const void *buf, size_t len, off_t off);
	ssize_t (*pread)(void *ctx, int fd, void *buf, size_t len, off_t off);
	void *ctx;
};

/* Codec of the compressed tier.  Zero-initialised cfgs get LZ4. */
enum ebb_swap_codec {
	EBB_SWAP_CODEC_LZ4 = 0,         /* fastest; the default */
	EBB_SWAP_CODEC_ZSTD,            /* better ratio, slower */
};

struct ebb_swap_cfg {
	const char *name;               /* for log messages */
	uint64_t zpool_budget_bytes;    /* compressed tier budget; 0 = tier off */
	uint32_t compress_max_bytes;    /* bypass threshold; 0 = 3072 */
	enum ebb_swap_codec codec;      /* unknown value: create says -EINVAL */
	int zstd_level;                 /* 0 = 1; else ZSTD_minCLevel()..ZSTD_maxCLevel()
					 * (checked even for LZ4, which ignores it).
					 * Negative levels skip entropy coding; at the
					 * minimum almost no page compresses. */
	const char *dir;                /* file tier directory; NULL = tier off */
	uint64_t file_size_bytes;       /* file tier size (whole slots) */
	bool file_no_prealloc;          /* skip fallocate (tests: real ENOSPC later) */
	bool file_encrypt;              /* AEAD-encrypt the file tier with a key made at
					 * create and never written anywhere (see below) */
	const struct ebb_swap_io *io;   /* NULL = pread/pwrite */
	ebb_log_fn log;
	void *log_ctx;
	uint64_t (*clock_ns)(void *ctx);/* for log rate limiting; NULL = monotonic */
	void *clock_ctx;
};

enum ebb_swap_tier { EBB_TIER_NONE = 0, EBB_TIER_ZPOOL, EBB_TIER_FILE };

struct ebb_swap_stats {
	uint64_t nr_entries;            /* unique stored pages */
	uint64_t nr_refs;               /* pages referring to them */
	uint64_t zpool_pages;
	uint64_t zpool_bytes;           /* compressed payload bytes */
	uint64_t zpool_overhead_bytes;  /* what the slab's chunks hold beyond them (class
					 * rounding, free slots, malloc's chunk headers) */
	uint64_t file_pages;
	uint64_t file_bytes;
	uint64_t file_slots_total;
	uint64_t file_allocated_bytes;  /* file system blocks the file holds (live + not yet punched) */
	uint64_t nr_punched_slots;      /* freed slots returned to the file system (sparse files) */
	uint64_t dedup_saved_bytes;     /* (refs - entries) * 4096 right now */
	uint64_t nr_dedup_hits;         /* stores satisfied by an existing entry */
	uint64_t nr_incompressible;     /* bypassed the compressed tier */
	uint64_t nr_stores, nr_loads;
	uint64_t nr_write_errors, nr_read_errors, nr_short_reads;
	uint64_t nr_enospc, nr_checksum_errors;
	uint64_t metadata_bytes;        /* entry table, hash index, slot bitmap, slab chunk
					 * table, codec contexts */
};

struct ebb_swap;

/* -EINVAL: unknown codec or zstd level out of range; -ENOMEM; file tier errors. */
int ebb_swap_create(const struct ebb_swap_cfg *cfg, struct ebb_swap **out);
void ebb_swap_destroy(struct ebb_swap *s);

/* The content hash used as checksum and dedup key. */
uint64_t ebb_swap_hash_page(const void *page);
bool ebb_swap_page_is_zero(const void *page);

/*
 * Store one 4 KiB page whose hash is @hash.  @may_write_file: the file tier
 * may be used.  On success *id names an entry holding one new reference.
 * Errors: -EINVAL (zero page), -ENOSPC (no tier has room or may be used),
 * -EIO (file write failed); the page is then not stored.
 */
int ebb_swap_store(struct ebb_swap *s, const void *page, uint64_t hash,
		   bool may_write_file, uint32_t *id);

/* Load entry @id into @page, verifying the checksum.  -EBADMSG, -EIO, -ENOENT. */
int ebb_swap_load(struct ebb_swap *s, uint32_t id, void *page);

/*
 * Readahead: load up to @n entries whose file slots follow each other
 * (ids[0] at slot k, ids[1] at k+1, ...) with one read.  Returns how many
 * leading entries were loaded and verified (>= 1 on success) or -errno.
 */
int ebb_swap_load_run(struct ebb_swap *s, const uint32_t *ids, size_t n, void *pages);

/* Drop one reference to @id (frees the entry at zero).  Unknown ids are ignored. */
void ebb_swap_put(struct ebb_swap *s, uint32_t id);
/* Take another reference to @id. */
int ebb_swap_get(struct ebb_swap *s, uint32_t id);

/*
 * Would a store certainly fail for lack of room?  (Compressed tier within 64
 * bytes of its budget, and the file tier absent, not allowed, out of slots, or
 * its file system said ENOSPC less than a second ago and no slot was freed
 * since.)
 */
bool ebb_swap_full(const struct ebb_swap *s, bool may_write_file);

/*
 * Return the blocks of freed file slots to the file system now (sparse files
 * only; otherwise done in batches of 1 MiB of freed slots, and before giving
 * up on ENOSPC).
 */
void ebb_swap_trim(struct ebb_swap *s);

bool ebb_swap_hash_matches(const struct ebb_swap *s, uint32_t id, uint64_t hash);
enum ebb_swap_tier ebb_swap_entry_tier(const struct ebb_swap *s, uint32_t id);
/* File slot of @id, or UINT64_MAX when it is not in the file tier. */
uint64_t ebb_swap_entry_slot(const struct ebb_swap *s, uint32_t id);

void ebb_swap_get_stats(const struct ebb_swap *s, struct ebb_swap_stats *st);

/*
 * For tests only (the in-memory tier has no I/O hook to inject faults
 * through): XOR byte @off of @id's compressed bytes with @mask.  -ENOENT if
 * @id is not in the compressed tier, -ERANGE if @off is past its length.
 */
int ebb_swap_test_corrupt_zpool(struct ebb_swap *s, uint32_t id, uint32_t off, uint8_t mask);

/* For tests only: the next @nr loads (after @skip) fail with -@err before reading. */
void ebb_swap_test_fail_loads(struct ebb_swap *s, uint32_t skip, uint32_t nr, int err);

#endif /* EBB_HOST_RECLAIM_SWAPSTORE_H */
