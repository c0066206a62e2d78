/*
 * tests/fuzz/fuzz_balloon.c — libFuzzer target for the balloon's handling of
 * guest PFNs and ranges.  A fake driver brings the device up through
 * virtio-pci with every feature, then the input is a program of operations:
 * inflate / deflate chains of fuzzer-chosen PFNs (in RAM, in the hole, past
 * RAM, past the limit, duplicates), free page reports of fuzzer-chosen
 * ranges, stats buffers, ticks, target changes, raw register writes (device
 * config, BAR0, PCI configuration space — so the transport is fuzzed too),
 * raw garbage written over a queue's rings followed by a kick, and resets.  After every
 * operation the invariants are checked and trap when broken: the bitmap
 * count equals the population of the bitmap and a shadow kept from the
 * callbacks; no ballooned or released PFN is outside RAM or in the hole;
 * every callback run is non-empty and inside RAM; an inflate releases only
 * PFNs the guest named.  PFN buffers are split into empty and odd-length
 * segments too.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tests/unit/test_virtio_fake.h"
#include "virtio/balloon.h"

#define RAM_BYTES (64u * 4096)       /* PFNs 0..63 */
#define HOLE_START (40u * 4096)      /* PFNs 40..47 */
#define HOLE_END (48u * 4096)
#define PFN_LIMIT 72u                /* 64..71 pass the limit but are not RAM */
#define QSIZE 16
#define NQ 4
#define BUF_GPA (8u * 4096)          /* driver buffers: PFNs 8..15 */
#define F(x) (1ull << (x))

struct fz {
	struct fake_guest *g;
	struct virtio_balloon *b;
	struct virtio_pci *pci;
	struct fake_vq fvq[NQ];
	uint8_t shadow[PFN_LIMIT];
	uint8_t named[PFN_LIMIT];    /* PFNs some inflate / deflate chain named */
	bool wild;                   /* raw ring / register writes: any RAM may be PFNs */
	uint64_t rings_end;
};

static bool pfn_ok(virtio_pfn_t pfn)
{
	return pfn < RAM_BYTES / 4096 && !(pfn >= HOLE_START / 4096 && pfn < HOLE_END / 4096);
}

static void check_run(virtio_pfn_t pfn, uint64_t nr)
{
	if (nr == 0 || pfn + nr > RAM_BYTES / 4096)
		__builtin_trap();
	for (uint64_t i = 0; i < nr; i++)
		if (!pfn_ok(pfn + i))
			__builtin_trap();
}

static void cb_released(void *opaque, enum virtio_balloon_reason why, virtio_pfn_t pfn,
			uint64_t nr)
{
	struct fz *z = opaque;

	check_run(pfn, nr);
	if (why == VIRTIO_BALLOON_INFLATE)
		for (uint64_t i = 0; i < nr; i++) {
			if (!z->wild && !z->named[pfn + i])
				__builtin_trap(); /* a page the guest never gave */
			if (z->shadow[pfn + i])
				__builtin_trap(); /* released twice without a deflate */
			z->shadow[pfn + i] = 1;
		}
	else if (why != VIRTIO_BALLOON_REPORTED)
		__builtin_trap();
}

static void cb_reusable(void *opaque, enum virtio_balloon_reason why, virtio_pfn_t pfn,
			uint64_t nr)
{
	struct fz *z = opaque;

	check_run(pfn, nr);
	if (why == VIRTIO_BALLOON_INFLATE || why == VIRTIO_BALLOON_REPORTED)
		__builtin_trap();
	for (uint64_t i = 0; i < nr; i++) {
		if (!z->shadow[pfn + i])
			__builtin_trap();
		z->shadow[pfn + i] = 0;
	}
}

static void bring_up(struct fz *z)
{
	z->g->alloc_next = 0x1000;
	fp_setup(z->pci, z->g, F(VIRTIO_F_VERSION_1) | F(VIRTIO_BALLOON_F_STATS_VQ) |
		 F(VIRTIO_BALLOON_F_DEFLATE_ON_OOM) | F(VIRTIO_BALLOON_F_REPORTING) |
		 F(VIRTIO_RING_F_EVENT_IDX) | F(VIRTIO_RING_F_INDIRECT_DESC),
		 z->fvq, NQ, QSIZE, true);
	fp_driver_ok(z->pci);
}

static void check_invariants(struct fz *z)
{
	uint64_t nbits, pop = 0;
	const uint64_t *bm = virtio_balloon_bitmap(z->b, &nbits);

	for (uint64_t pfn = 0; pfn < nbits; pfn++) {
		bool set = bm[pfn / 64] >> (pfn % 64) & 1;
		if (set != (z->shadow[pfn] != 0) || (set && !pfn_ok(pfn)))
			__builtin_trap();
		pop += set;
	}
	if (pop != virtio_balloon_nr_ballooned_pages(z->b))
		__builtin_trap();
}

/* A tiny reader over the fuzz input. */
struct rd {
	const uint8_t *p;
	size_t left;
};

static uint8_t u8(struct rd *r)
{
	if (!r->left)
		return 0;
	r->left--;
	return *r->p++;
}

static uint16_t u16(struct rd *r)
{
	return (uint16_t)(u8(r) | u8(r) << 8);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rd r = { data, size };
	struct fz z;
	struct virtio_balloon_cfg cfg = {
		.guest_pfn_limit = PFN_LIMIT, .queue_max_size = QSIZE, .stats_vq = true,
		.deflate_on_oom = true, .free_page_reporting = true, .stats_period_ns = 1000,
		.pages_released = cb_released, .pages_reusable = cb_reusable,
	};
	uint64_t now = 0;

	static struct fake_guest *guest; /* reused: fresh RAM per input costs page faults */

	memset(&z, 0, sizeof(z));
	if (!guest) {
		guest = fg_create(RAM_BYTES, HOLE_START, HOLE_END);
		guest->host.log = NULL;
	}
	memset(guest->ram, 0, RAM_BYTES);
	memset(guest->nr_msi, 0, sizeof(guest->nr_msi));
	guest->now_ns = 0;
	z.g = guest;
	cfg.host = &z.g->host;
	cfg.opaque = &z;
	if (virtio_balloon_create(&cfg, &z.b))
		__builtin_trap();
	z.pci = virtio_balloon_pci(z.b);
	bring_up(&z);

	for (unsigned ops = 0; r.left && ops < 64; ops++) {
		uint8_t op = u8(&r);
		unsigned q = op >> 4 & 3;
		uint8_t *buf = fg_ptr(z.g, BUF_GPA);

		switch (op % 9) {
		case 0: /* inflate */
		case 1: { /* deflate */
			unsigned n = u8(&r) % 64;
			for (unsigned i = 0; i < n; i++) {
				uint32_t pfn = u8(&r);
				if (pfn == 0xff)
					pfn = (uint32_t)u16(&r) << 16 | u16(&r);
				if (pfn < PFN_LIMIT)
					z.named[pfn] = 1;
				memcpy(buf + 4 * i, &pfn, 4);
			}
			/* One segment, or (op & 0x40) up to four of fuzzer-chosen lengths:
			 * empty and odd-length ones split PFNs anywhere. */
			struct fseg s[4];
			uint32_t left = 4 * n, at = 0;
			unsigned nseg = 1;
			uint8_t sel = (op & 0x40) ? u8(&r) : 0;
			if (op & 0x40)
				nseg = 1 + (sel & 3);
			for (unsigned i = 0; i < nseg; i++) {
				uint32_t len = i + 1 < nseg ? u8(&r) % (left + 1) : left;
				if (i + 1 == nseg && (sel & 4))
					len += 2; /* stray bytes: not a whole PFN */
				s[i] = (struct fseg){ BUF_GPA + at, len, false };
				at += len;
				left -= len < left ? len : left;
			}
			fvq_add(&z.fvq[op % 9], s, nseg);
			fp_kick(z.pci, (uint16_t)(op % 9));
			break;
		}
		case 2: { /* free page report */
			struct fseg s[4];
			unsigned n = 1 + u8(&r) % 4;
			for (unsigned i = 0; i < n; i++) {
				s[i].gpa = (virtio_gpa_t)u16(&r) << 8;
				s[i].len = (uint32_t)u16(&r) << 4;
				s[i].write = true;
			}
			fvq_add(&z.fvq[3], s, n);
			fp_kick(z.pci, 3);
			break;
		}
		case 3: { /* stats buffer (its bytes land where PFN buffers were) */
			z.wild = true;
			unsigned n = u8(&r) % 80;
			for (unsigned i = 0; i < n; i++)
				buf[i] = u8(&r);
			struct fseg s = { BUF_GPA, n, false };
			fvq_add(&z.fvq[2], &s, 1);
			fp_kick(z.pci, 2);
			break;
		}
		case 4:
			now += u8(&r) * 100u;
			virtio_balloon_tick(z.b, now);
			virtio_pci_poll(z.pci);
			break;
		case 5:
			virtio_balloon_set_target_pages(z.b, u16(&r));
			break;
		case 6: { /* a raw register write: device config, transport, PCI config */
			z.wild = true;
			uint8_t sel = u8(&r);
			uint32_t off = u16(&r), len = 1u << (sel >> 6);
			uint32_t v = (uint32_t)u16(&r) | (uint32_t)u16(&r) << 16;
			if (sel & 1)
				fp_cfgw(z.pci, off % 260, v, len == 8 ? 3 : len);
			else if (sel & 2)
				fp_w(z.pci, off % VIRTIO_PCI_BAR0_SIZE, v, len);
			else
				fp_w(z.pci, VIRTIO_PCI_DEVICE_OFFSET + (off & 15), v, len);
			break;
		}
		case 7: { /* garbage over a queue's rings, then a kick */
			z.wild = true;
			uint8_t *ring = fg_ptr(z.g, (op & 0x40) ? z.fvq[q].avail_gpa : z.fvq[q].desc_gpa);
			unsigned n = u8(&r) % 64;
			unsigned at = u8(&r) % 128;
			for (unsigned i = 0; i < n; i++)
				ring[(at + i) % 128] = u8(&r);
			fp_kick(z.pci, (uint16_t)q);
			break;
		}
		case 8: /* reset and bring up again (old chains may be seen again) */
			z.wild = true;
			fp_w(z.pci, VIRTIO_PCI_COMMON_OFFSET + VIRTIO_PCI_COMMON_STATUS, 0, 1);
			memset(z.fvq, 0, sizeof(z.fvq));
			bring_up(&z);
			break;
		}
		check_invariants(&z);
	}
	virtio_balloon_destroy(z.b);
	return 0;
}
