/*
 * zslab.h — a size-class slab for the compressed objects of the swap store.
 *
 * One malloc per compressed page cost 15 bytes a page on average (glibc's
 * chunk header plus its 16-byte rounding) and an 8-byte pointer in every
 * store entry.  Here objects of similar size share a chunk: sizes are
 * rounded up to a multiple of ZSLAB_ALIGN, each class carves its chunks
 * into equal slots (a chunk holds a whole number of them: no tail waste),
 * and an object is named by a 32-bit handle (chunk number, slot number)
 * instead of a pointer.  A free slot keeps the link of its chunk's free
 * list in its own first bytes, so live objects cost no bookkeeping beyond
 * their chunk's descriptor; a chunk whose last object goes is given back
 * to malloc.
 *
 * What the slab holds beyond the payload (rounding to the class size, free
 * slots, malloc's share of each chunk) is reported by zslab_held_bytes()
 * minus the caller's payload count; the chunk table by zslab_table_bytes().
 *
 * Thread-safety: none; the owner serialises calls.
 */
#ifndef EBB_HOST_RECLAIM_ZSLAB_H
#define EBB_HOST_RECLAIM_ZSLAB_H

#include <stddef.h>
#include <stdint.h>

/* Class granularity: the average object wastes about half of it.  Finer
 * classes waste less an object but leave more partly used chunks (one or so
 * per class in use); 8 bytes and 16 KiB chunks put that slack at a few MiB
 * a store when compressed sizes spread over every class. */
#define ZSLAB_ALIGN 8u
#define ZSLAB_MAX_OBJ 4096u             /* largest object */
#define ZSLAB_NR_CLASSES (ZSLAB_MAX_OBJ / ZSLAB_ALIGN)
#define ZSLAB_SLOT_BITS 10u             /* up to 1024 slots a chunk */
#define ZSLAB_CHUNK_BITS (32u - ZSLAB_SLOT_BITS)

struct zslab_chunk;

struct zslab {
	struct zslab_chunk *chunk;      /* table indexed by chunk number */
	uint32_t nr_chunk_alloc;        /* table capacity */
	uint32_t nr_chunk_used;         /* high-water mark of chunk numbers */
	uint32_t free_chunk;            /* unused chunk numbers, chained */
	uint32_t partial[ZSLAB_NR_CLASSES]; /* per class: chunks with a free slot */
	uint64_t held_bytes;            /* what the chunks cost, malloc's share included */
	uint64_t nr_chunks;             /* live chunks */
};

void zslab_init(struct zslab *z);
/* Free every chunk and the table (live handles become invalid). */
void zslab_destroy(struct zslab *z);

/* A slot for @len bytes (1..ZSLAB_MAX_OBJ): 0 and *handle, or -EINVAL,
 * -ENOMEM, -ENOSPC (every chunk number in use). */
int zslab_alloc(struct zslab *z, size_t len, uint32_t *handle);
/* Give back @handle's slot; the chunk goes back to malloc when it empties. */
void zslab_free(struct zslab *z, uint32_t handle);
/* The bytes of @handle (at least the length it was allocated with). */
void *zslab_ptr(const struct zslab *z, uint32_t handle);

uint64_t zslab_held_bytes(const struct zslab *z);
uint64_t zslab_table_bytes(const struct zslab *z);

#endif /* EBB_HOST_RECLAIM_ZSLAB_H */
