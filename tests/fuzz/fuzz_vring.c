/*
 * tests/fuzz/fuzz_vring.c — libFuzzer target for the split-virtqueue
 * descriptor-chain walker.  The input is a 4-byte header (queue size,
 * negotiated ring features, gpa_only) followed by a guest memory image of
 * RAM_BYTES: the descriptor table, avail and used rings sit at fixed
 * addresses inside it and everything else — indexes, descriptors, indirect
 * tables, buffer addresses — is fuzzer-controlled.  The device side pops
 * every chain it is offered, writes into and reads from every segment, and
 * completes it; invariants (every segment lies inside guest RAM and outside
 * the hole, a broken queue stays broken and pops nothing) trap on failure.
 * ASan catches any access outside the image; a header bit makes every third
 * descriptor empty and every third odd-length; a chain read must return
 * every readable byte there is.
 */
#include <endian.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "virtio/vring.h"

#define RAM_BYTES 0x4000u
#define HOLE_START 0x3000u
#define HOLE_END 0x3400u
#define DESC_GPA 0x0000u
#define AVAIL_GPA 0x0800u
#define USED_GPA 0x0a00u

struct ram {
	uint8_t *base;
};

static void *translate(void *opaque, virtio_gpa_t gpa, uint64_t len)
{
	struct ram *r = opaque;
	uint64_t end;

	if (len == 0 || __builtin_add_overflow(gpa, len, &end) || end > RAM_BYTES)
		return NULL;
	if (gpa < HOLE_END && HOLE_START < end)
		return NULL;
	return r->base + gpa;
}

static void on_broken(void *opaque, struct virtio_vq *vq)
{
	(*(unsigned *)opaque)++;
}

static void check_seg(const struct ram *r, const struct virtio_seg *s, bool gpa_only)
{
	uint8_t *p = s->host;

	if (s->len_bytes == 0 || gpa_only) {
		if (p)
			__builtin_trap();
		return;
	}
	if (p < r->base || p + s->len_bytes > r->base + RAM_BYTES)
		__builtin_trap();
	if ((uint64_t)(p - r->base) != s->gpa)
		__builtin_trap();
	if (s->gpa < HOLE_END && HOLE_START < s->gpa + s->len_bytes)
		__builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct virtio_chain chain; /* large: keep it off the stack */
	struct virtio_dev_errors errs;
	struct ebb_ratelimit rl;
	struct virtio_host host;
	struct virtio_vq vq;
	struct ram r;
	unsigned nr_broken = 0;
	uint64_t features = 0;
	uint8_t scratch[256];

	if (size < 4)
		return 0;
	memset(scratch, 0x5a, sizeof(scratch)); /* a short read leaves the rest as is */
	memset(&errs, 0, sizeof(errs));
	memset(&rl, 0, sizeof(rl));
	memset(&host, 0, sizeof(host));
	r.base = malloc(RAM_BYTES);
	memset(r.base, 0, RAM_BYTES);
	memcpy(r.base, data + 4, size - 4 < RAM_BYTES ? size - 4 : RAM_BYTES);
	host.translate = translate;
	host.opaque = &r;
	if (data[2] & 0x40) {
		/* Steer towards empty and odd-length descriptors (the shapes that
		 * once left a reader's buffer uninitialised): every third one of
		 * the table is made empty, every third odd. */
		struct vring_desc *t = (struct vring_desc *)(r.base + DESC_GPA);
		for (unsigned i = 0; i < 128; i++) {
			uint32_t len = le32toh(t[i].len);
			if ((i + data[3]) % 3 == 0)
				len = 0;
			else if ((i + data[3]) % 3 == 1)
				len = (len % 512) | 1;
			t[i].len = htole32(len);
		}
	}

	virtio_vq_init(&vq, 0, 64, &host, &errs, &rl, on_broken, &nr_broken);
	vq.size = (uint16_t)(1u << (data[0] % 8));  /* 1..128; 128 > max is refused */
	if (data[0] & 0x80)
		vq.size = (uint16_t)(data[0] | data[1] << 8); /* arbitrary */
	if (data[1] & 1)
		features |= 1ull << VIRTIO_RING_F_INDIRECT_DESC;
	if (data[1] & 2)
		features |= 1ull << VIRTIO_RING_F_EVENT_IDX;
	vq.gpa_only = data[1] & 4;
	vq.desc_gpa = DESC_GPA + (data[2] & 0x10 ? data[3] : 0);
	vq.avail_gpa = AVAIL_GPA;
	vq.used_gpa = USED_GPA;
	if (virtio_vq_enable(&vq, features) == 0) {
		bool gpa_only = vq.gpa_only;

		for (unsigned round = 0; round < 4; round++) {
			unsigned popped = 0;
			int ret;

			while ((ret = virtio_vq_pop(&vq, &chain)) == 1) {
				if (chain.nr_segs > VIRTIO_CHAIN_MAX_SEGS || chain.nr_out > chain.nr_segs ||
				    chain.head >= vq.size)
					__builtin_trap();
				for (uint16_t i = 0; i < chain.nr_segs; i++)
					check_seg(&r, &chain.segs[i], gpa_only);
				/* Every readable byte there is gets read, empty and odd-length
				 * segments included (a short read left callers' buffers
				 * uninitialised: the balloon PFN bug). */
				size_t rd = virtio_chain_read(&chain, data[2], scratch, sizeof(scratch));
				uint64_t want = chain.out_bytes > data[2] ? chain.out_bytes - data[2] : 0;
				if (want > sizeof(scratch))
					want = sizeof(scratch);
				if (!gpa_only && rd != want)
					__builtin_trap();
				size_t w = virtio_chain_write(&chain, 0, scratch, sizeof(scratch));
				virtio_vq_push(&vq, chain.head, (uint32_t)w);
				if (++popped > 2u * vq.size + 2)
					break;
			}
			if (ret < 0 && (!vq.broken || nr_broken != 1))
				__builtin_trap();
			virtio_vq_need_notify(&vq);
			if (!virtio_vq_notify_on(&vq))
				virtio_vq_notify_off(&vq);
			/* The "guest" moves its avail index on between rounds. */
			uint16_t *avail_idx = (uint16_t *)(r.base + AVAIL_GPA + 2);
			*avail_idx = (uint16_t)(*avail_idx + data[3] % 5);
		}
		if (vq.broken && virtio_vq_pop(&vq, &chain) != -EIO)
			__builtin_trap();
	}
	if (nr_broken > 1)
		__builtin_trap();
	free(r.base);
	return 0;
}
