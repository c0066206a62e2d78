/*
 * virtio/vring.h — the split virtqueue (virtio 1.x, section 2.7), device side.
 *
 * A queue is programmed by the transport (size and the three ring addresses
 * written by the driver through the common config), then enabled: the rings
 * are translated to host pointers once, with bounds and alignment checked.
 * A device then pops descriptor chains, does its work, and pushes them back
 * on the used ring; after a batch it asks whether the driver wants an
 * interrupt (VIRTIO_RING_F_EVENT_IDX aware).
 *
 * Every value read from the rings is guest-controlled.  A malformed chain
 * (index out of range, a loop, a bad or nested indirect table, a buffer
 * outside guest RAM, readable-after-writable, the avail index running ahead
 * by more than the queue size) is counted in the device's error counters,
 * logged (rate limited), and breaks the queue: the transport is told through
 * on_broken and sets DEVICE_NEEDS_RESET.  Nothing a guest writes can make
 * this code crash, loop unboundedly or read outside the ranges `translate`
 * accepted.
 */
#ifndef EBB_VIRTIO_VRING_H
#define EBB_VIRTIO_VRING_H

#include <linux/virtio_ring.h>

#include "virtio/virtio.h"

/* Hard upper bound on queue sizes (the split ring's limit). */
#define VIRTIO_VQ_MAX_SIZE 32768u
/* Segments one chain may have; longer chains are refused (nr_chain_too_long). */
#define VIRTIO_CHAIN_MAX_SEGS 64u

/* One buffer of a chain, translated. */
struct virtio_seg {
	virtio_gpa_t gpa;
	void *host;          /* NULL when len_bytes == 0 or the queue is gpa_only */
	uint32_t len_bytes;
	bool device_writable;
};

/*
 * A popped descriptor chain: segs[0 .. nr_out) are device-readable (driver
 * to device), segs[nr_out .. nr_segs) device-writable.
 */
struct virtio_chain {
	uint16_t head;
	uint16_t nr_segs;
	uint16_t nr_out;
	uint64_t out_bytes;
	uint64_t in_bytes;
	struct virtio_seg segs[VIRTIO_CHAIN_MAX_SEGS];
};

struct virtio_vq;
typedef void (*virtio_vq_broken_fn)(void *opaque, struct virtio_vq *vq);

struct virtio_vq {
	/* Programmed by the driver through the transport (before enable). */
	uint16_t size;
	uint16_t msix_vector;
	virtio_gpa_t desc_gpa;
	virtio_gpa_t avail_gpa;
	virtio_gpa_t used_gpa;
	bool enabled;

	/* Fixed at init. */
	uint16_t index;
	uint16_t max_size;
	const struct virtio_host *host;
	struct virtio_dev_errors *errs;
	struct ebb_ratelimit *rl;
	virtio_vq_broken_fn on_broken;
	void *broken_opaque;

	/* Runtime, valid while enabled. */
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	uint16_t last_avail_idx;   /* next avail entry to consume */
	uint16_t used_idx;         /* shadow of used->idx */
	uint16_t signalled_used;   /* used_idx at the last notify decision */
	bool signalled_used_valid;
	bool event_idx;            /* VIRTIO_RING_F_EVENT_IDX negotiated */
	bool indirect;             /* VIRTIO_RING_F_INDIRECT_DESC negotiated */
	bool broken;
	/*
	 * Set by a device whose buffers are guest ranges it validates itself
	 * (free page reporting): segments are not mapped (host NULL), only
	 * their gpa + len overflow-checked.  Cleared by reset.
	 */
	bool gpa_only;
};

/* Set up `vq` (disabled, size = max_size, no vector).  max_size: power of 2. */
void virtio_vq_init(struct virtio_vq *vq, uint16_t index, uint16_t max_size,
		    const struct virtio_host *host, struct virtio_dev_errors *errs,
		    struct ebb_ratelimit *rl, virtio_vq_broken_fn on_broken,
		    void *broken_opaque);

/* Back to the post-init state (device reset). */
void virtio_vq_reset(struct virtio_vq *vq);

/*
 * GUEST: validate size / addresses and map the rings.  `features` are the
 * negotiated ones.  0, or -EINVAL (counted, queue stays disabled).
 */
int virtio_vq_enable(struct virtio_vq *vq, uint64_t features);

/*
 * GUEST: pop the next available chain into *chain.  Returns 1 when a chain
 * was popped, 0 when the ring is empty (or the queue disabled), -EIO when
 * the queue is broken (now or before).
 */
int virtio_vq_pop(struct virtio_vq *vq, struct virtio_chain *chain)
	__attribute__((warn_unused_result));

/* Return chain `head` to the driver with `written_bytes` written into it. */
void virtio_vq_push(struct virtio_vq *vq, uint16_t head, uint32_t written_bytes);

/*
 * After one or more pushes: does the driver want an interrupt?  Honours
 * used_event (EVENT_IDX) or VRING_AVAIL_F_NO_INTERRUPT.
 */
bool virtio_vq_need_notify(struct virtio_vq *vq);

/* True when the driver has made buffers available that we have not popped. */
bool virtio_vq_has_avail(struct virtio_vq *vq);

/*
 * Ask the driver to kick us again (avail_event = last_avail_idx, or clear
 * VRING_USED_F_NO_NOTIFY).  Returns true when buffers arrived meanwhile:
 * the caller must pop again instead of going to sleep.
 */
bool virtio_vq_notify_on(struct virtio_vq *vq);
/* Suppress kicks while we are draining (without EVENT_IDX only). */
void virtio_vq_notify_off(struct virtio_vq *vq);

/* Mark the queue broken (device-level protocol violation on this queue). */
void virtio_vq_fail(struct virtio_vq *vq);

/*
 * Copy out of the chain's device-readable bytes from `off`; returns bytes
 * copied, which is less than `len` when the chain holds fewer bytes: the
 * rest of `buf` is then untouched (uninitialised for the caller), so the
 * result must be checked.  Zero-length segments are skipped, segments of
 * any length (odd ones too) are concatenated.
 */
size_t virtio_chain_read(const struct virtio_chain *chain, uint64_t off, void *buf, size_t len)
	__attribute__((warn_unused_result));
/* Copy into the chain's device-writable bytes from `off`; returns bytes copied. */
size_t virtio_chain_write(const struct virtio_chain *chain, uint64_t off, const void *buf,
			  size_t len) __attribute__((warn_unused_result));

#endif /* EBB_VIRTIO_VRING_H */
