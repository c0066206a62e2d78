/*
 * virtio/vring.c — split virtqueue, device side.
 *
 * Overview.  The driver publishes chains by writing descriptor indexes into
 * avail->ring[] and then advancing avail->idx; we consume them in order from
 * last_avail_idx.  A chain is walked from its head following NEXT; a
 * descriptor with INDIRECT instead points at a table of descriptors that is
 * walked the same way (one level only).  Walks are bounded: at most `size`
 * hops in the ring and at most the table's length in an indirect table, so a
 * loop is detected as "more hops than entries".  Every descriptor is copied
 * out of guest memory once and only the copy is validated and used, so a
 * vCPU rewriting it concurrently cannot make us act on unchecked values.
 *
 * Completion writes {id, len} at used->ring[used_idx % size] and then
 * publishes used->idx with release ordering, so the driver never sees the
 * index before the element.  The interrupt decision follows the spec's
 * vring_need_event() on used_event with the used index at the last decision
 * (EVENT_IDX), or the avail ring's NO_INTERRUPT flag; a full fence separates
 * our used->idx store from the load of the driver's used_event (it does the
 * mirror image: store used_event, fence, load used->idx).
 */
#include <endian.h>
#include <errno.h>
#include <string.h>

#include "virtio/vring.h"

#define vq_warn(vq, ...) \
	virtio_log_ratelimited((vq)->host, (vq)->rl, &(vq)->errs->nr_logs_suppressed, __VA_ARGS__)

static uint16_t load_le16(const volatile __virtio16 *p)
{
	return le16toh(__atomic_load_n((const volatile uint16_t *)p, __ATOMIC_RELAXED));
}

static void store_le16(volatile __virtio16 *p, uint16_t v)
{
	__atomic_store_n((volatile uint16_t *)p, htole16(v), __ATOMIC_RELAXED);
}

void virtio_vq_init(struct virtio_vq *vq, uint16_t index, uint16_t max_size,
		    const struct virtio_host *host, struct virtio_dev_errors *errs,
		    struct ebb_ratelimit *rl, virtio_vq_broken_fn on_broken,
		    void *broken_opaque)
{
	memset(vq, 0, sizeof(*vq));
	vq->index = index;
	vq->max_size = max_size;
	vq->host = host;
	vq->errs = errs;
	vq->rl = rl;
	vq->on_broken = on_broken;
	vq->broken_opaque = broken_opaque;
	virtio_vq_reset(vq);
}

void virtio_vq_reset(struct virtio_vq *vq)
{
	vq->size = vq->max_size;
	vq->msix_vector = 0xffff; /* VIRTIO_MSI_NO_VECTOR */
	vq->desc_gpa = vq->avail_gpa = vq->used_gpa = 0;
	vq->enabled = false;
	vq->desc = NULL;
	vq->avail = NULL;
	vq->used = NULL;
	vq->last_avail_idx = vq->used_idx = vq->signalled_used = 0;
	vq->signalled_used_valid = false;
	vq->event_idx = vq->indirect = vq->broken = vq->gpa_only = false;
}

void virtio_vq_fail(struct virtio_vq *vq)
{
	if (vq->broken)
		return;
	vq->broken = true;
	if (vq->on_broken)
		vq->on_broken(vq->broken_opaque, vq);
}

static void *map(const struct virtio_vq *vq, virtio_gpa_t gpa, uint64_t len)
{
	virtio_gpa_t end;

	if (len == 0 || __builtin_add_overflow(gpa, len, &end))
		return NULL;
	return vq->host->translate(vq->host->opaque, gpa, len);
}

/* GUEST: the driver's queue size and ring addresses. */
int virtio_vq_enable(struct virtio_vq *vq, uint64_t features)
{
	uint64_t n = vq->size;

	if (n == 0 || n > vq->max_size || (n & (n - 1))) {
		vq->errs->nr_bad_queue_setup++;
		vq_warn(vq, "virtio: queue %u: bad size %u", vq->index, vq->size);
		return -EINVAL;
	}
	if ((vq->desc_gpa & 15) || (vq->avail_gpa & 1) || (vq->used_gpa & 3)) {
		vq->errs->nr_bad_queue_setup++;
		vq_warn(vq, "virtio: queue %u: misaligned rings", vq->index);
		return -EINVAL;
	}
	vq->desc = map(vq, vq->desc_gpa, 16 * n);
	vq->avail = map(vq, vq->avail_gpa, 6 + 2 * n);
	vq->used = map(vq, vq->used_gpa, 6 + 8 * n);
	if (!vq->desc || !vq->avail || !vq->used) {
		vq->desc = NULL;
		vq->avail = NULL;
		vq->used = NULL;
		vq->errs->nr_bad_addr++;
		vq_warn(vq, "virtio: queue %u: rings outside guest RAM", vq->index);
		return -EINVAL;
	}
	vq->event_idx = features & (1ull << VIRTIO_RING_F_EVENT_IDX);
	vq->indirect = features & (1ull << VIRTIO_RING_F_INDIRECT_DESC);
	vq->last_avail_idx = vq->used_idx = vq->signalled_used = 0;
	vq->signalled_used_valid = false;
	vq->broken = false;
	vq->enabled = true;
	return 0;
}

static int chain_error(struct virtio_vq *vq, uint64_t *counter, const char *what, uint32_t val)
{
	(*counter)++;
	vq_warn(vq, "virtio: queue %u: %s (%u); device needs reset", vq->index, what, val);
	virtio_vq_fail(vq);
	return -EIO;
}

/* GUEST: walks a chain the driver made available. */
int virtio_vq_pop(struct virtio_vq *vq, struct virtio_chain *chain)
{
	struct virtio_dev_errors *e = vq->errs;
	const struct vring_desc *table;
	uint32_t table_len, hops = 0, idx;
	uint16_t avail_idx, pending, head;
	bool in_indirect = false;

	if (vq->broken)
		return -EIO;
	if (!vq->enabled)
		return 0;
	/* Acquire: ring entries and descriptors are read after the index. */
	avail_idx = le16toh(__atomic_load_n(&vq->avail->idx, __ATOMIC_ACQUIRE));
	pending = (uint16_t)(avail_idx - vq->last_avail_idx);
	if (pending == 0)
		return 0;
	if (pending > vq->size)
		return chain_error(vq, &e->nr_avail_jump, "avail idx jumped ahead", pending);

	head = load_le16(&vq->avail->ring[vq->last_avail_idx & (vq->size - 1)]);
	if (head >= vq->size)
		return chain_error(vq, &e->nr_bad_desc_index, "head index out of range", head);

	chain->head = head;
	chain->nr_segs = chain->nr_out = 0;
	chain->out_bytes = chain->in_bytes = 0;
	table = vq->desc;
	table_len = vq->size;
	idx = head;
	for (;;) {
		struct vring_desc d;
		uint16_t flags;
		uint64_t addr;
		uint32_t len;

		if (idx >= table_len)
			return chain_error(vq, &e->nr_bad_desc_index, "next index out of range", idx);
		if (++hops > table_len)
			return chain_error(vq, &e->nr_chain_loop, "descriptor chain loops", hops);
		memcpy(&d, (const void *)&table[idx], sizeof(d));
		flags = le16toh(d.flags);
		addr = le64toh(d.addr);
		len = le32toh(d.len);

		if (flags & VRING_DESC_F_INDIRECT) {
			if (in_indirect)
				return chain_error(vq, &e->nr_nested_indirect, "nested indirect", idx);
			if (!vq->indirect || (flags & VRING_DESC_F_NEXT) || len == 0 ||
			    len % sizeof(struct vring_desc) ||
			    len / sizeof(struct vring_desc) > VIRTIO_VQ_MAX_SIZE)
				return chain_error(vq, &e->nr_bad_indirect, "bad indirect table", len);
			table = map(vq, addr, len);
			if (!table)
				return chain_error(vq, &e->nr_bad_addr, "indirect table outside RAM", len);
			table_len = len / sizeof(struct vring_desc);
			in_indirect = true;
			hops = 0;
			idx = 0;
			continue;
		}

		if (chain->nr_segs >= VIRTIO_CHAIN_MAX_SEGS)
			return chain_error(vq, &e->nr_chain_too_long, "chain too long", chain->nr_segs);
		struct virtio_seg *s = &chain->segs[chain->nr_segs];
		s->gpa = addr;
		s->len_bytes = len;
		s->device_writable = flags & VRING_DESC_F_WRITE;
		s->host = NULL;
		if (len && vq->gpa_only) {
			uint64_t end;
			if (__builtin_add_overflow(addr, (uint64_t)len, &end))
				return chain_error(vq, &e->nr_bad_addr, "buffer wraps", len);
		} else if (len) {
			s->host = map(vq, addr, len);
			if (!s->host)
				return chain_error(vq, &e->nr_bad_addr, "buffer outside guest RAM", len);
		}
		if (s->device_writable) {
			chain->in_bytes += len;
		} else {
			if (chain->nr_segs != chain->nr_out)
				return chain_error(vq, &e->nr_bad_order, "readable after writable", idx);
			chain->nr_out++;
			chain->out_bytes += len;
		}
		chain->nr_segs++;
		if (!(flags & VRING_DESC_F_NEXT))
			break;
		idx = le16toh(d.next);
	}
	vq->last_avail_idx++;
	return 1;
}

void virtio_vq_push(struct virtio_vq *vq, uint16_t head, uint32_t written_bytes)
{
	struct vring_used_elem *elem;

	if (!vq->enabled || vq->broken)
		return;
	elem = &vq->used->ring[vq->used_idx & (vq->size - 1)];
	__atomic_store_n(&elem->id, htole32(head), __ATOMIC_RELAXED);
	__atomic_store_n(&elem->len, htole32(written_bytes), __ATOMIC_RELAXED);
	vq->used_idx++;
	/* Release: the element is visible before the index that covers it. */
	__atomic_store_n(&vq->used->idx, htole16(vq->used_idx), __ATOMIC_RELEASE);
}

bool virtio_vq_need_notify(struct virtio_vq *vq)
{
	uint16_t old, new_idx, event;
	bool valid;

	if (!vq->enabled || vq->broken)
		return false;
	/* Our used->idx store must be visible before we read the driver's wishes. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	old = vq->signalled_used;
	valid = vq->signalled_used_valid;
	new_idx = vq->signalled_used = vq->used_idx;
	vq->signalled_used_valid = true;
	if (new_idx == old)
		return false; /* nothing used since the last decision */
	if (!vq->event_idx)
		return !(load_le16(&vq->avail->flags) & VRING_AVAIL_F_NO_INTERRUPT);
	if (!valid)
		return true;
	event = load_le16(&vq->avail->ring[vq->size]); /* used_event */
	return vring_need_event(event, new_idx, old);
}

bool virtio_vq_has_avail(struct virtio_vq *vq)
{
	if (!vq->enabled || vq->broken)
		return false;
	return le16toh(__atomic_load_n(&vq->avail->idx, __ATOMIC_ACQUIRE)) != vq->last_avail_idx;
}

bool virtio_vq_notify_on(struct virtio_vq *vq)
{
	if (!vq->enabled || vq->broken)
		return false;
	if (vq->event_idx) {
		/* avail_event lives just past the used ring. */
		store_le16((__virtio16 *)((uint8_t *)vq->used + 4 + 8u * vq->size),
			   vq->last_avail_idx);
	} else {
		uint16_t f = load_le16(&vq->used->flags);
		store_le16(&vq->used->flags, f & ~VRING_USED_F_NO_NOTIFY);
	}
	/* Publish the wish before re-checking: a kick racing with us is not lost. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return virtio_vq_has_avail(vq);
}

void virtio_vq_notify_off(struct virtio_vq *vq)
{
	if (!vq->enabled || vq->broken || vq->event_idx)
		return;
	store_le16(&vq->used->flags, load_le16(&vq->used->flags) | VRING_USED_F_NO_NOTIFY);
}

size_t virtio_chain_read(const struct virtio_chain *chain, uint64_t off, void *buf, size_t len)
{
	size_t done = 0;

	for (uint16_t i = 0; i < chain->nr_out && done < len; i++) {
		const struct virtio_seg *s = &chain->segs[i];
		size_t n;

		if (!s->len_bytes)
			continue; /* an empty segment carries nothing; the next may */
		if (!s->host)
			break; /* gpa_only queue: nothing mapped */
		if (off >= s->len_bytes) {
			off -= s->len_bytes;
			continue;
		}
		n = s->len_bytes - off;
		if (n > len - done)
			n = len - done;
		memcpy((char *)buf + done, (const char *)s->host + off, n);
		done += n;
		off = 0;
	}
	return done;
}

size_t virtio_chain_write(const struct virtio_chain *chain, uint64_t off, const void *buf,
			  size_t len)
{
	size_t done = 0;

	for (uint16_t i = chain->nr_out; i < chain->nr_segs && done < len; i++) {
		const struct virtio_seg *s = &chain->segs[i];
		size_t n;

		if (!s->len_bytes)
			continue; /* an empty segment carries nothing; the next may */
		if (!s->host)
			break; /* gpa_only queue: nothing mapped */
		if (off >= s->len_bytes) {
			off -= s->len_bytes;
			continue;
		}
		n = s->len_bytes - off;
		if (n > len - done)
			n = len - done;
		memcpy((char *)s->host + off, (const char *)buf + done, n);
		done += n;
		off = 0;
	}
	return done;
}
