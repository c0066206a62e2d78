/*
 * swapstore.c — compressed + file tier swap store with checksums, dedup and
 * a slot allocator.  See swapstore.h for the contract.
 *
 * Layout: entries live in one growable table indexed by id; free ids are
 * chained through their loc field.  A linear-probing hash index maps content
 * hashes to ids (several ids may share a hash when contents differ: a dedup
 * hit always needs a full byte comparison).  File slots are tracked in a
 * bitmap with a next-fit cursor, so consecutive stores get consecutive slots.
 *
 * Space of a sparse file (file_no_prealloc): a freed slot still holds its
 * file system blocks.  Freed slots are reused first (a store into one needs
 * no new block), and once PUNCH_BATCH_SLOTS of them are pending, or a write
 * meets ENOSPC, their ranges are punched out in runs (FALLOC_FL_PUNCH_HOLE)
 * and the blocks go back to the file system.  A write that fails leaves the
 * cursor where it was.  ENOSPC marks the file full for ENOSPC_RETRY_NS only
 * (or until a slot frees): space may come back from elsewhere.  A
 * preallocated file is never punched: its blocks are the VM's reservation.
 *
 * Codecs: the compressed tier uses one codec per store, fixed at create
 * time, so an entry needs no codec tag.  LZ4 keeps no state between calls;
 * zstd compresses and decompresses through one ZSTD_CCtx and one ZSTD_DCtx
 * per store (reused: allocating them per page would cost more than the
 * compression).  Either way a compressed entry that does not decode to
 * exactly one page is -EBADMSG, like a checksum mismatch.
 */
#include "host-reclaim/swapstore.h"
#include "host-reclaim/lru.h"
#include "host-reclaim/zslab.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <sys/stat.h>
#include <lz4.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

#define ID_EMPTY UINT32_MAX

/* Worst-case compressed size of one page, for either codec. */
#define CBUF_LZ4_BYTES ((size_t)LZ4_COMPRESSBOUND(EBB_PAGE_SIZE))
#define CBUF_ZSTD_BYTES ((size_t)ZSTD_COMPRESSBOUND(EBB_PAGE_SIZE))
#define CBUF_BYTES (CBUF_LZ4_BYTES > CBUF_ZSTD_BYTES ? CBUF_LZ4_BYTES : CBUF_ZSTD_BYTES)
#define ZSTD_LEVEL_DEFAULT 1
#define PUNCH_BATCH_SLOTS 256                        /* 1 MiB of freed slots */
#define ENOSPC_RETRY_NS (1000ULL * 1000 * 1000)      /* retry a full file system after 1 s */

/*
 * 16 bytes an entry: the hash is the checksum and must stay whole; a slab
 * handle, a file slot (files are capped at 2^32 - 1 slots) and a free-list
 * link all fit 32 bits; a compressed length fits 13 (at most one page).
 * References saturate at REFCNT_MAX: a store of the same content then makes
 * a second entry, and ebb_swap_get() says -EOVERFLOW.
 */
struct sw_entry {
	uint64_t hash;
	uint32_t loc;           /* zpool: slab handle; file: slot; free: next free id */
	uint32_t refcnt : 17;
	uint32_t len : 13;      /* compressed length (zpool), 1..EBB_PAGE_SIZE */
	uint32_t tier : 2;      /* enum ebb_swap_tier; NONE = free */
};

#define REFCNT_MAX ((1u << 17) - 1)
#define MAX_SLOTS UINT32_MAX   /* slot numbers fit the entry's 32-bit loc */

_Static_assert(sizeof(struct sw_entry) == 16, "a store entry is 16 bytes");
_Static_assert(EBB_PAGE_SIZE < (1u << 13), "a compressed length fits the entry");

/* What authenticates one encrypted file slot; kept in memory only. */
struct slot_seal {
	uint64_t nonce;
	unsigned char tag[crypto_aead_xchacha20poly1305_ietf_ABYTES];
};

struct ebb_swap {
	struct ebb_swap_cfg cfg;
	struct ebb_swap_io io;
	struct sw_entry *ent;
	uint32_t nr_ent_alloc;   /* table capacity */
	uint32_t nr_ent_used;    /* high-water mark of ids handed out */
	uint32_t free_head;
	uint32_t *index;         /* hash index of ids */
	uint32_t index_mask;     /* capacity - 1 */
	uint32_t index_used;
	int fd;
	uint64_t nr_slots;
	uint64_t *slot_bitmap;
	uint64_t slot_cursor;
	uint64_t slots_used;
	uint64_t *punch_bitmap;  /* freed slots whose blocks are still allocated (sparse file) */
	uint64_t nr_punch_pending;
	bool may_punch;          /* sparse file and the file system can punch holes */
	bool file_enospc;        /* the file system said ENOSPC; cleared when a slot frees */
	uint64_t enospc_until_ns;/* ... or at this time: then stores try the file again */
	struct ebb_swap_stats st;
	struct ebb_ratelimit rl_io, rl_csum;
	uint32_t inj_skip, inj_nr;  /* test-only load failures */
	/* file_encrypt: key, next nonce, per-slot nonce + tag (NULL when off) */
	unsigned char key[crypto_aead_xchacha20poly1305_ietf_KEYBYTES];
	uint64_t next_nonce;
	struct slot_seal *seal;
	int inj_err;
	ZSTD_CCtx *zcc;          /* codec ZSTD with the compressed tier on; else NULL */
	ZSTD_DCtx *zdc;
	struct zslab slab;       /* the compressed tier's objects */
	char cbuf[CBUF_BYTES];
	unsigned char tmp[EBB_PAGE_SIZE];
};

/* ---- hashing ------------------------------------------------------------ */

#define H_P1 0x9E3779B185EBCA87ULL
#define H_P2 0xC2B2AE3D27D4EB4FULL
#define H_P3 0x165667B19E3779F9ULL

static inline uint64_t rotl64(uint64_t x, int r)
{
	return (x << r) | (x >> (64 - r));
}

static inline uint64_t h_round(uint64_t acc, uint64_t w)
{
	return rotl64(acc + w * H_P2, 31) * H_P1;
}

/* Four independent lanes over 32-byte stripes, then a final avalanche. */
uint64_t ebb_swap_hash_page(const void *page)
{
	const uint64_t *w = page;
	uint64_t a0 = H_P1 + H_P2, a1 = H_P2, a2 = 0, a3 = 0 - H_P1;
	uint64_t h;

	for (size_t i = 0; i < EBB_PAGE_SIZE / 8; i += 4) {
		a0 = h_round(a0, w[i]);
		a1 = h_round(a1, w[i + 1]);
		a2 = h_round(a2, w[i + 2]);
		a3 = h_round(a3, w[i + 3]);
	}
	h = rotl64(a0, 1) + rotl64(a1, 7) + rotl64(a2, 12) + rotl64(a3, 18);
	h = (h ^ h_round(0, a0)) * H_P1 + H_P3;
	h = (h ^ h_round(0, a1)) * H_P1 + H_P3;
	h = (h ^ h_round(0, a2)) * H_P1 + H_P3;
	h = (h ^ h_round(0, a3)) * H_P1 + H_P3;
	h += EBB_PAGE_SIZE;
	h ^= h >> 33;
	h *= H_P2;
	h ^= h >> 29;
	h *= H_P3;
	h ^= h >> 32;
	return h;
}

bool ebb_swap_page_is_zero(const void *page)
{
	const uint64_t *w = page;
	uint64_t acc = 0;

	for (size_t i = 0; i < EBB_PAGE_SIZE / 8; i += 8)
		acc |= w[i] | w[i + 1] | w[i + 2] | w[i + 3] | w[i + 4] | w[i + 5] | w[i + 6] | w[i + 7];
	return acc == 0;
}

/* ---- plumbing ----------------------------------------------------------- */

static uint64_t sw_now(const struct ebb_swap *s)
{
	struct timespec ts;

	if (s->cfg.clock_ns)
		return s->cfg.clock_ns(s->cfg.clock_ctx);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static ssize_t def_pwrite(void *ctx, int fd, const void *buf, size_t len, off_t off)
{
	(void)ctx;
	return pwrite(fd, buf, len, off);
}

static ssize_t def_pread(void *ctx, int fd, void *buf, size_t len, off_t off)
{
	(void)ctx;
	return pread(fd, buf, len, off);
}

static struct sw_entry *ent_get(const struct ebb_swap *s, uint32_t id)
{
	if (id >= s->nr_ent_used || s->ent[id].tier == EBB_TIER_NONE)
		return NULL;
	return &s->ent[id];
}

/* ---- hash index (linear probing, backward-shift deletion) ---------------- */

static int index_insert(struct ebb_swap *s, uint32_t id);

static int index_grow(struct ebb_swap *s)
{
	uint32_t old_cap = s->index_mask + 1, new_cap = old_cap * 2;
	uint32_t *old = s->index, *nidx;

	if (new_cap < old_cap)
		return -ENOMEM;
	nidx = malloc((size_t)new_cap * sizeof(*nidx));
	if (!nidx)
		return -ENOMEM;
	memset(nidx, 0xff, (size_t)new_cap * sizeof(*nidx));
	s->index = nidx;
	s->index_mask = new_cap - 1;
	s->index_used = 0;
	for (uint32_t i = 0; i < old_cap; i++)
		if (old[i] != ID_EMPTY)
			index_insert(s, old[i]);
	free(old);
	return 0;
}

static int index_insert(struct ebb_swap *s, uint32_t id)
{
	uint32_t i;

	if ((uint64_t)(s->index_used + 1) * 2 > (uint64_t)s->index_mask + 1) {
		int ret = index_grow(s);

		if (ret)
			return ret;
	}
	i = (uint32_t)s->ent[id].hash & s->index_mask;
	while (s->index[i] != ID_EMPTY)
		i = (i + 1) & s->index_mask;
	s->index[i] = id;
	s->index_used++;
	return 0;
}

static void index_remove(struct ebb_swap *s, uint32_t id)
{
	uint32_t i = (uint32_t)s->ent[id].hash & s->index_mask;

	while (s->index[i] != id) {
		if (s->index[i] == ID_EMPTY)
			return;
		i = (i + 1) & s->index_mask;
	}
	/* Backward shift: pull later members of the probe run into the hole. */
	for (uint32_t j = (i + 1) & s->index_mask; s->index[j] != ID_EMPTY;
	     j = (j + 1) & s->index_mask) {
		uint32_t home = (uint32_t)s->ent[s->index[j]].hash & s->index_mask;

		if (((j - home) & s->index_mask) >= ((j - i) & s->index_mask)) {
			s->index[i] = s->index[j];
			i = j;
		}
	}
	s->index[i] = ID_EMPTY;
	s->index_used--;
}

/* ---- slots -------------------------------------------------------------- */

static bool slot_pending(const struct ebb_swap *s, uint64_t slot)
{
	return s->punch_bitmap && (s->punch_bitmap[slot / 64] & (1ULL << (slot % 64)));
}

static void take_slot(struct ebb_swap *s, uint64_t slot)
{
	s->slot_bitmap[slot / 64] |= 1ULL << (slot % 64);
	s->slots_used++;
	if (slot_pending(s, slot)) {
		s->punch_bitmap[slot / 64] &= ~(1ULL << (slot % 64));
		s->nr_punch_pending--;
	}
}

/* Next-fit from the cursor; a freed slot whose blocks are still allocated first. */
static uint64_t slot_alloc(struct ebb_swap *s)
{
	uint64_t nwords = (s->nr_slots + 63) / 64;

	if (s->slots_used >= s->nr_slots)
		return UINT64_MAX;
	if (s->nr_punch_pending) {
		for (uint64_t n = 0; n <= nwords; n++) {
			uint64_t w = (s->slot_cursor / 64 + n) % nwords;
			uint64_t first = (n == 0) ? s->slot_cursor % 64 : 0;
			uint64_t avail = s->punch_bitmap[w] & (~0ULL << first);

			if (!avail)
				continue;
			uint64_t slot = w * 64 + (uint64_t)__builtin_ctzll(avail);

			take_slot(s, slot);
			s->slot_cursor = (slot + 1) % s->nr_slots;
			return slot;
		}
	}
	for (uint64_t n = 0; n <= nwords; n++) {
		uint64_t w = (s->slot_cursor / 64 + n) % nwords;
		uint64_t bits = s->slot_bitmap[w];
		uint64_t first = (n == 0) ? s->slot_cursor % 64 : 0;
		uint64_t avail = ~bits & (~0ULL << first);

		if (!avail)
			continue;
		uint64_t slot = w * 64 + (uint64_t)__builtin_ctzll(avail);

		if (slot >= s->nr_slots)
			continue;
		take_slot(s, slot);
		s->slot_cursor = (slot + 1) % s->nr_slots;
		return slot;
	}
	return UINT64_MAX;
}

/* Return the blocks of every pending freed slot to the file system, in runs. */
static void punch_pending(struct ebb_swap *s)
{
	uint64_t nwords = (s->nr_slots + 63) / 64, run_start = UINT64_MAX;

	if (!s->nr_punch_pending)
		return;
	for (uint64_t slot = 0; slot <= nwords * 64; slot++) {
		bool p = slot < nwords * 64 && slot_pending(s, slot);

		if (p && run_start == UINT64_MAX)
			run_start = slot;
		if (p || run_start == UINT64_MAX)
			continue;
		if (fallocate(s->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			      (off_t)(run_start * EBB_PAGE_SIZE),
			      (off_t)((slot - run_start) * EBB_PAGE_SIZE)) == 0) {
			s->st.nr_punched_slots += slot - run_start;
		} else if (errno == EOPNOTSUPP) {
			ebb_reclaim_logf(s->cfg.log, s->cfg.log_ctx, &s->rl_io, sw_now(s), EBB_LOG_WARN,
					 "swap %s: the file system cannot punch holes: freed slots keep their space",
					 s->cfg.name ? s->cfg.name : "");
			s->may_punch = false;
		}
		run_start = UINT64_MAX;
	}
	memset(s->punch_bitmap, 0, nwords * 8);
	s->nr_punch_pending = 0;
}

static void slot_free(struct ebb_swap *s, uint64_t slot)
{
	if (slot >= s->nr_slots)
		return;
	if (s->slot_bitmap[slot / 64] & (1ULL << (slot % 64))) {
		s->slot_bitmap[slot / 64] &= ~(1ULL << (slot % 64));
		s->slots_used--;
		if (s->may_punch) {
			s->punch_bitmap[slot / 64] |= 1ULL << (slot % 64);
			if (++s->nr_punch_pending >= PUNCH_BATCH_SLOTS)
				punch_pending(s);
		}
	}
}

/* ---- create / destroy --------------------------------------------------- */

static int open_file(struct ebb_swap *s)
{
	int fd = open(s->cfg.dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	int ret;

	if (fd < 0) {
		char path[4096];

		if (snprintf(path, sizeof(path), "%s/ebb-swap-XXXXXX", s->cfg.dir) >= (int)sizeof(path))
			return -ENAMETOOLONG;
		fd = mkostemp(path, O_CLOEXEC);
		if (fd < 0)
			return -errno;
		unlink(path);
	}
	if (s->cfg.file_no_prealloc)
		ret = ftruncate(fd, (off_t)(s->nr_slots * EBB_PAGE_SIZE)) ? -errno : 0;
	else
		ret = -posix_fallocate(fd, 0, (off_t)(s->nr_slots * EBB_PAGE_SIZE));
	if (ret) {
		close(fd);
		return ret;
	}
	s->fd = fd;
	return 0;
}

int ebb_swap_create(const struct ebb_swap_cfg *cfg, struct ebb_swap **out)
{
	struct ebb_swap *s;
	int ret;

	*out = NULL;
	if (!cfg)
		return -EINVAL;
	if ((unsigned int)cfg->codec > EBB_SWAP_CODEC_ZSTD)
		return -EINVAL;
	if (cfg->zstd_level < ZSTD_minCLevel() || cfg->zstd_level > ZSTD_maxCLevel())
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->cfg = *cfg;
	s->fd = -1;
	s->free_head = ID_EMPTY;
	zslab_init(&s->slab);
	if (!s->cfg.compress_max_bytes || s->cfg.compress_max_bytes > EBB_PAGE_SIZE)
		s->cfg.compress_max_bytes = 3072;
	if (!s->cfg.zstd_level)
		s->cfg.zstd_level = ZSTD_LEVEL_DEFAULT;
	if (cfg->io)
		s->io = *cfg->io;
	if (!s->io.pwrite)
		s->io.pwrite = def_pwrite;
	if (!s->io.pread)
		s->io.pread = def_pread;
	s->index_mask = 1023;
	s->index = malloc(1024 * sizeof(*s->index));
	if (!s->index) {
		ret = -ENOMEM;
		goto err;
	}
	memset(s->index, 0xff, 1024 * sizeof(*s->index));
	if (cfg->codec == EBB_SWAP_CODEC_ZSTD && cfg->zpool_budget_bytes) {
		s->zcc = ZSTD_createCCtx();
		s->zdc = ZSTD_createDCtx();
		if (!s->zcc || !s->zdc) {
			ret = -ENOMEM;
			goto err;
		}
	}
	if (cfg->dir && cfg->file_size_bytes >= EBB_PAGE_SIZE) {
		s->nr_slots = cfg->file_size_bytes / EBB_PAGE_SIZE;
		if (s->nr_slots > MAX_SLOTS)
			s->nr_slots = MAX_SLOTS;
		s->slot_bitmap = calloc((s->nr_slots + 63) / 64, sizeof(uint64_t));
		s->may_punch = cfg->file_no_prealloc;
		if (s->may_punch)
			s->punch_bitmap = calloc((s->nr_slots + 63) / 64, sizeof(uint64_t));
		if (!s->slot_bitmap || (s->may_punch && !s->punch_bitmap)) {
			ret = -ENOMEM;
			goto err;
		}
		ret = open_file(s);
		if (ret)
			goto err;
		if (cfg->file_encrypt) {
			if (sodium_init() < 0) {
				ret = -ENOSYS;
				goto err;
			}
			s->seal = calloc(s->nr_slots, sizeof(*s->seal));
			if (!s->seal) {
				ret = -ENOMEM;
				goto err;
			}
			crypto_aead_xchacha20poly1305_ietf_keygen(s->key);
			/* Keep the key out of core dumps and swap where the kernel lets us. */
			sodium_mlock(s->key, sizeof(s->key));
		}
	}
	s->st.file_slots_total = s->nr_slots;
	*out = s;
	return 0;
err:
	ebb_swap_destroy(s);
	return ret;
}

void ebb_swap_destroy(struct ebb_swap *s)
{
	if (!s)
		return;
	zslab_destroy(&s->slab);
	if (s->fd >= 0)
		close(s->fd);
	ZSTD_freeDCtx(s->zdc);
	ZSTD_freeCCtx(s->zcc);
	free(s->slot_bitmap);
	free(s->punch_bitmap);
	free(s->seal);
	sodium_munlock(s->key, sizeof(s->key));   /* zeroes it too */
	free(s->index);
	free(s->ent);
	free(s);
}

/* ---- entries ------------------------------------------------------------ */

static int ent_alloc(struct ebb_swap *s, uint32_t *id)
{
	if (s->free_head != ID_EMPTY) {
		*id = s->free_head;
		s->free_head = s->ent[*id].loc;
		return 0;
	}
	if (s->nr_ent_used == s->nr_ent_alloc) {
		uint32_t ncap = s->nr_ent_alloc ? s->nr_ent_alloc * 2 : 1024;
		struct sw_entry *n;

		if (ncap <= s->nr_ent_alloc || ncap >= ID_EMPTY)
			return -ENOSPC;
		n = realloc(s->ent, (size_t)ncap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		s->ent = n;
		s->nr_ent_alloc = ncap;
	}
	*id = s->nr_ent_used++;
	return 0;
}

static void ent_release(struct ebb_swap *s, uint32_t id)
{
	struct sw_entry *e = &s->ent[id];

	index_remove(s, id);
	if (e->tier == EBB_TIER_ZPOOL) {
		zslab_free(&s->slab, e->loc);
		s->st.zpool_pages--;
		s->st.zpool_bytes -= e->len;
	} else if (e->tier == EBB_TIER_FILE) {
		slot_free(s, e->loc);
		s->file_enospc = false;
		s->st.file_pages--;
		s->st.file_bytes -= EBB_PAGE_SIZE;
	}
	s->st.nr_entries--;
	e->tier = EBB_TIER_NONE;
	e->refcnt = 0;
	e->loc = s->free_head;
	s->free_head = id;
}

/* Encrypt @page for @slot into @out (4 KiB); nonce and tag go to the slot's seal. */
static void seal_page(struct ebb_swap *s, uint64_t slot, const void *page, void *out)
{
	unsigned char nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES] = { 0 };
	uint64_t ad = slot;

	s->seal[slot].nonce = ++s->next_nonce;
	memcpy(nonce, &s->seal[slot].nonce, sizeof(uint64_t));
	crypto_aead_xchacha20poly1305_ietf_encrypt_detached(out, s->seal[slot].tag, NULL, page,
							    EBB_PAGE_SIZE, (const unsigned char *)&ad,
							    sizeof(ad), NULL, nonce, s->key);
}

/* Decrypt and authenticate slot @slot's bytes in place: 0 or -EBADMSG. */
static int unseal_page(struct ebb_swap *s, uint64_t slot, void *buf)
{
	unsigned char nonce[crypto_aead_xchacha20poly1305_ietf_NPUBBYTES] = { 0 };
	uint64_t ad = slot;

	memcpy(nonce, &s->seal[slot].nonce, sizeof(uint64_t));
	if (crypto_aead_xchacha20poly1305_ietf_decrypt_detached(buf, NULL, buf, EBB_PAGE_SIZE,
								s->seal[slot].tag,
								(const unsigned char *)&ad, sizeof(ad),
								nonce, s->key) == 0)
		return 0;
	s->st.nr_checksum_errors++;
	ebb_reclaim_logf(s->cfg.log, s->cfg.log_ctx, &s->rl_csum, sw_now(s), EBB_LOG_ERROR,
			 "swap %s: AUTHENTICATION FAILED on file slot %llu: the file was altered",
			 s->cfg.name ? s->cfg.name : "", (unsigned long long)slot);
	return -EBADMSG;
}

/* Read @len bytes at @off, continuing after short reads. */
static int file_read(struct ebb_swap *s, void *buf, size_t len, off_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = s->io.pread(s->io.ctx, s->fd, (char *)buf + done, len - done,
					off + (off_t)done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int err = n < 0 ? errno : EIO;

			s->st.nr_read_errors++;
			ebb_reclaim_logf(s->cfg.log, s->cfg.log_ctx, &s->rl_io, sw_now(s), EBB_LOG_ERROR,
					 "swap %s: read of %zu bytes at %lld failed: %s",
					 s->cfg.name ? s->cfg.name : "", len - done,
					 (long long)off + (long long)done, n < 0 ? strerror(err) : "end of file");
			return -EIO;
		}
		if ((size_t)n < len - done)
			s->st.nr_short_reads++;
		done += (size_t)n;
	}
	return 0;
}

static int file_write(struct ebb_swap *s, const void *buf, size_t len, off_t off)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = s->io.pwrite(s->io.ctx, s->fd, (const char *)buf + done, len - done,
					 off + (off_t)done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			int err = n < 0 ? errno : EIO;

			if (err == ENOSPC || err == EDQUOT) {
				s->st.nr_enospc++;
				s->file_enospc = true;
				s->enospc_until_ns = sw_now(s) + ENOSPC_RETRY_NS;
			}
			else
				s->st.nr_write_errors++;
			ebb_reclaim_logf(s->cfg.log, s->cfg.log_ctx, &s->rl_io, sw_now(s), EBB_LOG_ERROR,
					 "swap %s: write at %lld failed: %s", s->cfg.name ? s->cfg.name : "",
					 (long long)off + (long long)done, strerror(err));
			return (err == ENOSPC || err == EDQUOT) ? -ENOSPC : -EIO;
		}
		done += (size_t)n;
	}
	return 0;
}

static int verify(struct ebb_swap *s, uint32_t id, const void *page)
{
	uint64_t h = ebb_swap_hash_page(page);

	if (h == s->ent[id].hash)
		return 0;
	s->st.nr_checksum_errors++;
	ebb_reclaim_logf(s->cfg.log, s->cfg.log_ctx, &s->rl_csum, sw_now(s), EBB_LOG_ERROR,
			 "swap %s: CHECKSUM MISMATCH on entry %u (%s tier): stored %016llx, read %016llx",
			 s->cfg.name ? s->cfg.name : "", id,
			 s->ent[id].tier == EBB_TIER_FILE ? "file" : "compressed",
			 (unsigned long long)s->ent[id].hash, (unsigned long long)h);
	return -EBADMSG;
}

/* Compress @page into s->cbuf: the compressed length, or 0 when the codec failed. */
static size_t zpool_compress(struct ebb_swap *s, const void *page)
{
	if (s->cfg.codec == EBB_SWAP_CODEC_ZSTD) {
		size_t n = ZSTD_compressCCtx(s->zcc, s->cbuf, sizeof(s->cbuf), page, EBB_PAGE_SIZE,
					     s->cfg.zstd_level);

		return ZSTD_isError(n) ? 0 : n;
	}
	int n = LZ4_compress_default(page, s->cbuf, EBB_PAGE_SIZE, (int)sizeof(s->cbuf));

	return n > 0 ? (size_t)n : 0;
}

/* 0, or -EBADMSG when @e's bytes do not decode to exactly one page. */
static int zpool_decompress(struct ebb_swap *s, const struct sw_entry *e, void *page)
{
	const void *src = zslab_ptr(&s->slab, e->loc);

	if (s->cfg.codec == EBB_SWAP_CODEC_ZSTD) {
		size_t n = ZSTD_decompressDCtx(s->zdc, page, EBB_PAGE_SIZE, src, e->len);

		return !ZSTD_isError(n) && n == EBB_PAGE_SIZE ? 0 : -EBADMSG;
	}
	int n = LZ4_decompress_safe(src, page, e->len, EBB_PAGE_SIZE);

	return n == (int)EBB_PAGE_SIZE ? 0 : -EBADMSG;
}

static int load_raw(struct ebb_swap *s, uint32_t id, void *page)
{
	struct sw_entry *e = &s->ent[id];

	if (e->tier == EBB_TIER_ZPOOL)
		return zpool_decompress(s, e, page);
	int ret = file_read(s, page, EBB_PAGE_SIZE, (off_t)((uint64_t)e->loc * EBB_PAGE_SIZE));

	if (!ret && s->seal)
		ret = unseal_page(s, e->loc, page);
	return ret;
}

/* Test-only injected load failure: -err for this load, or 0. */
static int injected_load_error(struct ebb_swap *s)
{
	if (!s->inj_nr)
		return 0;
	if (s->inj_skip) {
		s->inj_skip--;
		return 0;
	}
	s->inj_nr--;
	s->st.nr_read_errors++;
	return -s->inj_err;
}

int ebb_swap_load(struct ebb_swap *s, uint32_t id, void *page)
{
	int ret;

	if (!ent_get(s, id))
		return -ENOENT;
	ret = injected_load_error(s);
	if (ret)
		return ret;
	s->st.nr_loads++;
	ret = load_raw(s, id, page);
	if (ret == -EBADMSG) {
		s->st.nr_checksum_errors++;
		ebb_reclaim_logf(s->cfg.log, s->cfg.log_ctx, &s->rl_csum, sw_now(s), EBB_LOG_ERROR,
				 "swap %s: entry %u does not decompress", s->cfg.name ? s->cfg.name : "", id);
		return ret;
	}
	if (ret)
		return ret;
	return verify(s, id, page);
}

int ebb_swap_load_run(struct ebb_swap *s, const uint32_t *ids, size_t n, void *pages)
{
	struct sw_entry *e0;
	size_t k = 1;
	int ret;

	if (!n)
		return -EINVAL;
	e0 = ent_get(s, ids[0]);
	if (!e0)
		return -ENOENT;
	if (e0->tier != EBB_TIER_FILE) {
		ret = ebb_swap_load(s, ids[0], pages);
		return ret ? ret : 1;
	}
	while (k < n) {
		struct sw_entry *e = ent_get(s, ids[k]);

		if (!e || e->tier != EBB_TIER_FILE || (uint64_t)e->loc != (uint64_t)e0->loc + k)
			break;
		k++;
	}
	s->st.nr_loads += k;
	ret = injected_load_error(s);
	if (ret)
		return ret;
	ret = file_read(s, pages, k * EBB_PAGE_SIZE, (off_t)((uint64_t)e0->loc * EBB_PAGE_SIZE));
	if (ret)
		return ret;
	for (size_t i = 0; i < k; i++) {
		if (s->seal) {
			ret = unseal_page(s, (uint64_t)e0->loc + i, (char *)pages + i * EBB_PAGE_SIZE);
			if (ret)
				return i ? (int)i : ret;
		}
		ret = verify(s, ids[i], (char *)pages + i * EBB_PAGE_SIZE);
		if (ret)
			return i ? (int)i : ret;
	}
	return (int)k;
}

int ebb_swap_store(struct ebb_swap *s, const void *page, uint64_t hash,
		   bool may_write_file, uint32_t *id)
{
	uint32_t i, nid;
	size_t clen;
	int ret;

	if (ebb_swap_page_is_zero(page))
		return -EINVAL;

	/* Dedup: an identical page already stored? */
	for (i = (uint32_t)hash & s->index_mask; s->index[i] != ID_EMPTY;
	     i = (i + 1) & s->index_mask) {
		uint32_t cand = s->index[i];

		if (s->ent[cand].hash != hash || s->ent[cand].refcnt == REFCNT_MAX)
			continue;
		if (load_raw(s, cand, s->tmp) == 0 && memcmp(s->tmp, page, EBB_PAGE_SIZE) == 0) {
			s->ent[cand].refcnt++;
			s->st.nr_refs++;
			s->st.nr_dedup_hits++;
			s->st.nr_stores++;
			*id = cand;
			return 0;
		}
	}

	ret = ent_alloc(s, &nid);
	if (ret)
		return ret;
	struct sw_entry *e = &s->ent[nid];

	e->hash = hash;
	e->refcnt = 1;
	e->tier = EBB_TIER_NONE;
	if (s->cfg.zpool_budget_bytes) {
		clen = zpool_compress(s, page);
		if (!clen || clen > s->cfg.compress_max_bytes) {
			s->st.nr_incompressible++;
		} else if (s->st.zpool_bytes + (uint64_t)clen <= s->cfg.zpool_budget_bytes) {
			uint32_t handle;

			/* No slot (out of memory or handles): try the file tier. */
			if (zslab_alloc(&s->slab, clen, &handle) == 0) {
				memcpy(zslab_ptr(&s->slab, handle), s->cbuf, clen);
				e->loc = handle;
				e->len = (uint16_t)clen;
				e->tier = EBB_TIER_ZPOOL;
				s->st.zpool_pages++;
				s->st.zpool_bytes += (uint64_t)clen;
			}
		}
	}
	if (e->tier == EBB_TIER_NONE) {
		uint64_t slot;

		ret = -ENOSPC;
		if (!may_write_file || s->fd < 0)
			goto fail;
		for (int attempt = 0;; attempt++) {
			uint64_t cursor = s->slot_cursor;

			slot = slot_alloc(s);
			if (slot == UINT64_MAX) {
				s->st.nr_enospc++;
				goto fail;
			}
			const void *out = page;

			if (s->seal) {
				seal_page(s, slot, page, s->tmp);
				out = s->tmp;
			}
			ret = file_write(s, out, EBB_PAGE_SIZE, (off_t)(slot * EBB_PAGE_SIZE));
			if (!ret)
				break;
			/* Give the slot back (pending a punch: a failed write may
			 * have allocated blocks) and the cursor where it stood. */
			slot_free(s, slot);
			s->slot_cursor = cursor;
			/* Out of space with freed blocks still held: return them, retry once. */
			if (ret != -ENOSPC || attempt > 0 || !s->nr_punch_pending)
				goto fail;
			punch_pending(s);
		}
		e->loc = (uint32_t)slot;
		e->tier = EBB_TIER_FILE;
		s->st.file_pages++;
		s->st.file_bytes += EBB_PAGE_SIZE;
	}
	ret = index_insert(s, nid);
	if (ret) {
		s->st.nr_entries++;
		ent_release(s, nid);
		return ret;
	}
	s->st.nr_entries++;
	s->st.nr_refs++;
	s->st.nr_stores++;
	*id = nid;
	return 0;
fail:
	e->tier = EBB_TIER_NONE;
	e->loc = s->free_head;
	s->free_head = nid;
	return ret;
}

void ebb_swap_put(struct ebb_swap *s, uint32_t id)
{
	struct sw_entry *e = ent_get(s, id);

	if (!e)
		return;
	s->st.nr_refs--;
	if (--e->refcnt == 0)
		ent_release(s, id);
}

int ebb_swap_get(struct ebb_swap *s, uint32_t id)
{
	struct sw_entry *e = ent_get(s, id);

	if (!e)
		return -ENOENT;
	if (e->refcnt == REFCNT_MAX)
		return -EOVERFLOW;
	e->refcnt++;
	s->st.nr_refs++;
	return 0;
}

bool ebb_swap_full(const struct ebb_swap *s, bool may_write_file)
{
	bool zpool_full = s->st.zpool_bytes + 64 > s->cfg.zpool_budget_bytes;
	bool file_full = s->fd < 0 || !may_write_file ||
			 (s->file_enospc && sw_now(s) < s->enospc_until_ns) ||
			 s->slots_used >= s->nr_slots;

	return zpool_full && file_full;
}

void ebb_swap_trim(struct ebb_swap *s)
{
	if (s && s->may_punch)
		punch_pending(s);
}

bool ebb_swap_hash_matches(const struct ebb_swap *s, uint32_t id, uint64_t hash)
{
	const struct sw_entry *e = ent_get(s, id);

	return e && e->hash == hash;
}

enum ebb_swap_tier ebb_swap_entry_tier(const struct ebb_swap *s, uint32_t id)
{
	const struct sw_entry *e = ent_get(s, id);

	return e ? (enum ebb_swap_tier)e->tier : EBB_TIER_NONE;
}

uint64_t ebb_swap_entry_slot(const struct ebb_swap *s, uint32_t id)
{
	const struct sw_entry *e = ent_get(s, id);

	return e && e->tier == EBB_TIER_FILE ? e->loc : UINT64_MAX;
}

void ebb_swap_get_stats(const struct ebb_swap *s, struct ebb_swap_stats *st)
{
	struct stat sb;

	*st = s->st;
	/* Everything the slab's chunks hold beyond the payload: rounding to the
	 * class size, free slots, malloc's share of each chunk. */
	st->zpool_overhead_bytes = zslab_held_bytes(&s->slab) - s->st.zpool_bytes;
	if (s->fd >= 0 && fstat(s->fd, &sb) == 0)
		st->file_allocated_bytes = (uint64_t)sb.st_blocks * 512;
	st->dedup_saved_bytes = (st->nr_refs - st->nr_entries) * EBB_PAGE_SIZE;
	st->metadata_bytes = (uint64_t)s->nr_ent_alloc * sizeof(struct sw_entry) +
			     ((uint64_t)s->index_mask + 1) * sizeof(uint32_t) +
			     (s->nr_slots + 63) / 64 * 8 * (s->punch_bitmap ? 2 : 1) +
			     (s->seal ? s->nr_slots * sizeof(*s->seal) : 0) +
			     zslab_table_bytes(&s->slab) +
			     ZSTD_sizeof_CCtx(s->zcc) + ZSTD_sizeof_DCtx(s->zdc);
}

int ebb_swap_test_corrupt_zpool(struct ebb_swap *s, uint32_t id, uint32_t off, uint8_t mask)
{
	const struct sw_entry *e = ent_get(s, id);

	if (!e || e->tier != EBB_TIER_ZPOOL)
		return -ENOENT;
	if (off >= e->len)
		return -ERANGE;
	((unsigned char *)zslab_ptr(&s->slab, e->loc))[off] ^= mask;
	return 0;
}

void ebb_swap_test_fail_loads(struct ebb_swap *s, uint32_t skip, uint32_t nr, int err)
{
	s->inj_skip = skip;
	s->inj_nr = nr;
	s->inj_err = err;
}
