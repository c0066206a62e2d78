/*
 * zslab.c — size-class slab for compressed objects.  See zslab.h.
 *
 * Chunks: class c holds objects of (c + 1) * ZSLAB_ALIGN bytes; its chunks
 * are one malloc of a whole number of slots, about CHUNK_TARGET bytes, so
 * a chunk wastes nothing at its tail and costs malloc one header per
 * dozens of objects.  Chunks are not page-sized mmaps: a page multiple
 * would leave a tail for most classes, and one mapping per chunk would
 * split the address space into more VMAs than vm.max_map_count allows on
 * a big VM.  Handing an empty chunk to free() lets glibc reuse or trim it.
 *
 * Slots are handed out from a chunk's free list first, then from its
 * never-used tail (nr_carved): a new chunk needs no pass over its memory
 * to thread the list.  A free slot holds the number of the next free slot
 * in its first two bytes (every class is at least 16 bytes).
 *
 * Each class keeps a doubly linked list of its chunks that have a free
 * slot (by chunk number, not pointer: the table moves when it grows).  A
 * full chunk is on no list; it rejoins at the head when a slot frees.
 */
#include "host-reclaim/zslab.h"

#include <errno.h>
#include <malloc.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define NONE UINT32_MAX
#define SLOT_END UINT16_MAX
#define SLOT_MASK ((1u << ZSLAB_SLOT_BITS) - 1)
#define MAX_CHUNKS (1u << ZSLAB_CHUNK_BITS)
#define CHUNK_TARGET 16384u             /* bytes a chunk aims at */

struct zslab_chunk {
	unsigned char *mem;     /* NULL: chunk number unused */
	uint32_t prev, next;    /* class partial list; next chains unused numbers */
	uint16_t free_head;     /* first freed slot, or SLOT_END */
	uint16_t inuse;
	uint16_t nr_carved;     /* slots ever handed out: the rest were never used */
	uint16_t cls;
};

_Static_assert(ZSLAB_NR_CLASSES <= UINT16_MAX, "class numbers fit the chunk descriptor");
_Static_assert(ZSLAB_ALIGN >= sizeof(uint16_t), "a free slot holds its free-list link");

static inline uint32_t class_size(unsigned int cls)
{
	return (cls + 1) * ZSLAB_ALIGN;
}

/* Slots a chunk of @cls holds: about CHUNK_TARGET bytes, as many as a
 * handle can number (the smallest classes make smaller chunks). */
static inline uint32_t class_slots(unsigned int cls)
{
	uint32_t n = CHUNK_TARGET / class_size(cls);

	if (n > (1u << ZSLAB_SLOT_BITS))
		n = 1u << ZSLAB_SLOT_BITS;
	return n ? n : 1;
}

/* What malloc holds for @p: its usable size plus glibc's size header. */
static inline uint64_t malloc_cost(void *p)
{
	return malloc_usable_size(p) + sizeof(size_t);
}

void zslab_init(struct zslab *z)
{
	memset(z, 0, sizeof(*z));
	z->free_chunk = NONE;
	for (unsigned int c = 0; c < ZSLAB_NR_CLASSES; c++)
		z->partial[c] = NONE;
}

void zslab_destroy(struct zslab *z)
{
	for (uint32_t i = 0; i < z->nr_chunk_used; i++)
		free(z->chunk[i].mem);
	free(z->chunk);
	zslab_init(z);
}

static void partial_add(struct zslab *z, uint32_t cid)
{
	struct zslab_chunk *c = &z->chunk[cid];
	uint32_t head = z->partial[c->cls];

	c->prev = NONE;
	c->next = head;
	if (head != NONE)
		z->chunk[head].prev = cid;
	z->partial[c->cls] = cid;
}

static void partial_del(struct zslab *z, uint32_t cid)
{
	struct zslab_chunk *c = &z->chunk[cid];

	if (c->prev != NONE)
		z->chunk[c->prev].next = c->next;
	else
		z->partial[c->cls] = c->next;
	if (c->next != NONE)
		z->chunk[c->next].prev = c->prev;
	c->prev = c->next = NONE;
}

/* A new, empty chunk of class @cls on its partial list: its number, or -errno. */
static int64_t chunk_new(struct zslab *z, unsigned int cls)
{
	uint32_t cid;
	void *mem;

	if (z->free_chunk == NONE && z->nr_chunk_used == z->nr_chunk_alloc) {
		/* by half: the table is metadata, doubling would leave a third idle */
		uint32_t ncap = z->nr_chunk_alloc ? z->nr_chunk_alloc + z->nr_chunk_alloc / 2 : 64;
		struct zslab_chunk *n;

		if (ncap > MAX_CHUNKS)
			ncap = MAX_CHUNKS;
		if (ncap <= z->nr_chunk_alloc)
			return -ENOSPC;
		n = realloc(z->chunk, (size_t)ncap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		z->chunk = n;
		z->nr_chunk_alloc = ncap;
	}
	mem = malloc((size_t)class_slots(cls) * class_size(cls));
	if (!mem)
		return -ENOMEM;
	if (z->free_chunk != NONE) {
		cid = z->free_chunk;
		z->free_chunk = z->chunk[cid].next;
	} else {
		cid = z->nr_chunk_used++;
	}
	z->chunk[cid] = (struct zslab_chunk){ .mem = mem, .free_head = SLOT_END, .cls = (uint16_t)cls };
	z->held_bytes += malloc_cost(mem);
	z->nr_chunks++;
	partial_add(z, cid);
	return cid;
}

static bool chunk_full(const struct zslab_chunk *c)
{
	return c->free_head == SLOT_END && c->nr_carved == class_slots(c->cls);
}

int zslab_alloc(struct zslab *z, size_t len, uint32_t *handle)
{
	unsigned int cls;
	struct zslab_chunk *c;
	uint32_t slot;
	int64_t cid;

	if (!len || len > ZSLAB_MAX_OBJ)
		return -EINVAL;
	cls = (unsigned int)((len - 1) / ZSLAB_ALIGN);
	cid = z->partial[cls];
	if (cid == NONE) {
		cid = chunk_new(z, cls);
		if (cid < 0)
			return (int)cid;
	}
	c = &z->chunk[cid];
	if (c->free_head != SLOT_END) {
		uint16_t next;

		slot = c->free_head;
		memcpy(&next, c->mem + (size_t)slot * class_size(cls), sizeof(next));
		c->free_head = next;
	} else {
		slot = c->nr_carved++;
	}
	c->inuse++;
	if (chunk_full(c))
		partial_del(z, (uint32_t)cid);
	*handle = (uint32_t)cid << ZSLAB_SLOT_BITS | slot;
	return 0;
}

void zslab_free(struct zslab *z, uint32_t handle)
{
	uint32_t cid = handle >> ZSLAB_SLOT_BITS;
	uint16_t slot = (uint16_t)(handle & SLOT_MASK);
	struct zslab_chunk *c;
	bool was_full;

	if (cid >= z->nr_chunk_used || !z->chunk[cid].mem)
		return;
	c = &z->chunk[cid];
	was_full = chunk_full(c);
	memcpy(c->mem + (size_t)slot * class_size(c->cls), &c->free_head, sizeof(c->free_head));
	c->free_head = slot;
	c->inuse--;
	if (c->inuse) {
		if (was_full)
			partial_add(z, cid);
		return;
	}
	/* Empty: back to malloc, and the number to the unused chain. */
	if (!was_full)
		partial_del(z, cid);
	z->held_bytes -= malloc_cost(c->mem);
	z->nr_chunks--;
	free(c->mem);
	c->mem = NULL;
	c->next = z->free_chunk;
	z->free_chunk = cid;
}

void *zslab_ptr(const struct zslab *z, uint32_t handle)
{
	const struct zslab_chunk *c = &z->chunk[handle >> ZSLAB_SLOT_BITS];

	return c->mem + (size_t)(handle & SLOT_MASK) * class_size(c->cls);
}

uint64_t zslab_held_bytes(const struct zslab *z)
{
	return z->held_bytes;
}

uint64_t zslab_table_bytes(const struct zslab *z)
{
	return (uint64_t)z->nr_chunk_alloc * sizeof(struct zslab_chunk) + sizeof(z->partial);
}
