/*
 * tests/unit/test_virtio_fake.h — a fake guest for the virtio unit tests:
 * guest RAM in ordinary memory (with a hole the accessor refuses, like the
 * PCI hole), a host whose callbacks record interrupts and logs, and the
 * driver side of a split virtqueue and of virtio-pci, written from the spec
 * (not from the device code under test).  Header-only so each test program
 * stays one file.
 */
#ifndef EBB_TEST_VIRTIO_FAKE_H
#define EBB_TEST_VIRTIO_FAKE_H

#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>

#include "virtio/pci.h"
#include "virtio/virtio.h"

#define FG_MAX_VECTORS 66

struct fake_guest {
	uint8_t *ram;
	uint64_t ram_bytes;
	uint64_t hole_start, hole_end;   /* [start, end) refused by translate */
	uint64_t alloc_next;
	struct virtio_host host;
	uint64_t now_ns;
	unsigned nr_msi[FG_MAX_VECTORS];
	uint64_t last_msi_addr;
	uint32_t last_msi_data;
	bool intx;
	unsigned nr_intx_raises;
	unsigned nr_logs;
	char last_log[256];
};

static inline void *fg_translate(void *opaque, virtio_gpa_t gpa, uint64_t len)
{
	struct fake_guest *g = opaque;
	uint64_t end;

	if (len == 0 || __builtin_add_overflow(gpa, len, &end) || end > g->ram_bytes)
		return NULL;
	if (gpa < g->hole_end && g->hole_start < end)
		return NULL;
	return g->ram + gpa;
}

static inline void fg_log(void *opaque, enum ebb_log_level level, const char *msg)
{
	struct fake_guest *g = opaque;

	g->nr_logs++;
	snprintf(g->last_log, sizeof(g->last_log), "%s", msg);
	if (getenv("FG_VERBOSE"))
		fprintf(stderr, "# log: %s\n", msg);
}

static inline uint64_t fg_now(void *opaque)
{
	return ((struct fake_guest *)opaque)->now_ns;
}

static inline void fg_msi(void *opaque, uint16_t vector, uint64_t addr, uint32_t data)
{
	struct fake_guest *g = opaque;

	if (vector < FG_MAX_VECTORS)
		g->nr_msi[vector]++;
	g->last_msi_addr = addr;
	g->last_msi_data = data;
}

static inline void fg_intx(void *opaque, bool level)
{
	struct fake_guest *g = opaque;

	if (level && !g->intx)
		g->nr_intx_raises++;
	g->intx = level;
}

static inline struct fake_guest *fg_create(uint64_t ram_bytes, uint64_t hole_start,
					   uint64_t hole_end)
{
	struct fake_guest *g = calloc(1, sizeof(*g));

	g->ram = aligned_alloc(4096, ram_bytes);
	memset(g->ram, 0, ram_bytes);
	g->ram_bytes = ram_bytes;
	g->hole_start = hole_start;
	g->hole_end = hole_end;
	g->alloc_next = 0x1000; /* keep page 0 free */
	g->host.translate = fg_translate;
	g->host.log = fg_log;
	g->host.now_ns = fg_now;
	g->host.raise_msi = fg_msi;
	g->host.set_intx = fg_intx;
	g->host.opaque = g;
	return g;
}

static inline void fg_destroy(struct fake_guest *g)
{
	if (!g)
		return;
	free(g->ram);
	free(g);
}

/* Bump allocator in guest RAM (skips the hole). */
static inline virtio_gpa_t fg_alloc(struct fake_guest *g, uint64_t bytes, uint64_t align)
{
	virtio_gpa_t gpa = (g->alloc_next + align - 1) & ~(align - 1);

	if (gpa < g->hole_end && g->hole_start < gpa + bytes)
		gpa = (g->hole_end + align - 1) & ~(align - 1);
	g->alloc_next = gpa + bytes;
	if (g->alloc_next > g->ram_bytes)
		abort(); /* test bug, not device input */
	return gpa;
}

static inline void *fg_ptr(struct fake_guest *g, virtio_gpa_t gpa)
{
	return g->ram + gpa;
}

/* --- driver side of a split virtqueue --------------------------------------- */

struct fake_vq {
	struct fake_guest *g;
	uint16_t size;
	virtio_gpa_t desc_gpa, avail_gpa, used_gpa;
	struct vring_desc *desc;
	struct vring_avail *avail;
	struct vring_used *used;
	uint16_t next_desc;   /* descriptors are used round-robin */
	uint16_t avail_idx;
	uint16_t last_used;
};

static inline void fvq_init(struct fake_vq *v, struct fake_guest *g, uint16_t size)
{
	memset(v, 0, sizeof(*v));
	v->g = g;
	v->size = size;
	v->desc_gpa = fg_alloc(g, 16u * size, 16);
	v->avail_gpa = fg_alloc(g, 6u + 2u * size, 2);
	v->used_gpa = fg_alloc(g, 6u + 8u * size, 4);
	v->desc = fg_ptr(g, v->desc_gpa);
	v->avail = fg_ptr(g, v->avail_gpa);
	v->used = fg_ptr(g, v->used_gpa);
}

struct fseg {
	virtio_gpa_t gpa;
	uint32_t len;
	bool write;
};

static inline void fvq_set_desc(struct fake_vq *v, uint16_t i, virtio_gpa_t gpa, uint32_t len,
				uint16_t flags, uint16_t next)
{
	v->desc[i].addr = htole64(gpa);
	v->desc[i].len = htole32(len);
	v->desc[i].flags = htole16(flags);
	v->desc[i].next = htole16(next);
}

static inline void fvq_publish(struct fake_vq *v, uint16_t head)
{
	v->avail->ring[v->avail_idx % v->size] = htole16(head);
	v->avail_idx++;
	__atomic_store_n(&v->avail->idx, htole16(v->avail_idx), __ATOMIC_RELEASE);
}

/* Add a direct chain; returns its head. */
static inline uint16_t fvq_add(struct fake_vq *v, const struct fseg *s, unsigned n)
{
	uint16_t head = v->next_desc;

	for (unsigned i = 0; i < n; i++) {
		uint16_t d = (uint16_t)((head + i) % v->size);
		uint16_t flags = (s[i].write ? VRING_DESC_F_WRITE : 0) |
				 (i + 1 < n ? VRING_DESC_F_NEXT : 0);
		fvq_set_desc(v, d, s[i].gpa, s[i].len, flags, (uint16_t)((d + 1) % v->size));
	}
	v->next_desc = (uint16_t)((head + n) % v->size);
	fvq_publish(v, head);
	return head;
}

/* Add a chain through one indirect table; returns its head. */
static inline uint16_t fvq_add_indirect(struct fake_vq *v, const struct fseg *s, unsigned n)
{
	virtio_gpa_t tgpa = fg_alloc(v->g, 16u * n, 16);
	struct vring_desc *t = fg_ptr(v->g, tgpa);
	uint16_t head = v->next_desc;

	for (unsigned i = 0; i < n; i++) {
		t[i].addr = htole64(s[i].gpa);
		t[i].len = htole32(s[i].len);
		t[i].flags = htole16((s[i].write ? VRING_DESC_F_WRITE : 0) |
				     (i + 1 < n ? VRING_DESC_F_NEXT : 0));
		t[i].next = htole16((uint16_t)(i + 1));
	}
	fvq_set_desc(v, head, tgpa, 16u * n, VRING_DESC_F_INDIRECT, 0);
	v->next_desc = (uint16_t)((head + 1) % v->size);
	fvq_publish(v, head);
	return head;
}

/* Take one used element; false when none. */
static inline bool fvq_get_used(struct fake_vq *v, uint32_t *id, uint32_t *len)
{
	uint16_t idx = le16toh(__atomic_load_n(&v->used->idx, __ATOMIC_ACQUIRE));
	struct vring_used_elem *e;

	if (idx == v->last_used)
		return false;
	e = &v->used->ring[v->last_used % v->size];
	if (id)
		*id = le32toh(e->id);
	if (len)
		*len = le32toh(e->len);
	v->last_used++;
	return true;
}

static inline void fvq_set_used_event(struct fake_vq *v, uint16_t ev)
{
	v->avail->ring[v->size] = htole16(ev);
}

static inline uint16_t fvq_avail_event(struct fake_vq *v)
{
	uint16_t ev;

	memcpy(&ev, (uint8_t *)v->used + 4 + 8u * v->size, 2);
	return le16toh(ev);
}

/* --- driver side of virtio-pci ---------------------------------------------- */

static inline void fp_w(struct virtio_pci *p, uint32_t off, uint64_t v, uint32_t len)
{
	uint8_t b[8];

	for (uint32_t i = 0; i < len; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	virtio_pci_bar_write(p, 0, off, b, len);
}

static inline uint64_t fp_r(struct virtio_pci *p, uint32_t off, uint32_t len)
{
	uint8_t b[8] = { 0 };
	uint64_t v = 0;

	virtio_pci_bar_read(p, 0, off, b, len);
	for (uint32_t i = 0; i < len; i++)
		v |= (uint64_t)b[i] << (8 * i);
	return v;
}

static inline void fp_cfgw(struct virtio_pci *p, uint32_t off, uint32_t v, uint32_t len)
{
	uint8_t b[4];

	for (uint32_t i = 0; i < len; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	virtio_pci_cfg_write(p, off, b, len);
}

static inline uint32_t fp_cfgr(struct virtio_pci *p, uint32_t off, uint32_t len)
{
	uint8_t b[4] = { 0 };
	uint32_t v = 0;

	virtio_pci_cfg_read(p, off, b, len);
	for (uint32_t i = 0; i < len; i++)
		v |= (uint32_t)b[i] << (8 * i);
	return v;
}

#define FP_COMMON(field) (VIRTIO_PCI_COMMON_OFFSET + VIRTIO_PCI_COMMON_##field)

static inline uint64_t fp_device_features(struct virtio_pci *p)
{
	fp_w(p, FP_COMMON(DFSELECT), 0, 4);
	uint64_t lo = fp_r(p, FP_COMMON(DF), 4);
	fp_w(p, FP_COMMON(DFSELECT), 1, 4);
	return lo | fp_r(p, FP_COMMON(DF), 4) << 32;
}

/* Program MSI-X vector v's message and unmask it. */
static inline void fp_msix_vector(struct virtio_pci *p, uint16_t v, uint64_t addr, uint32_t data)
{
	uint32_t e = VIRTIO_PCI_MSIX_TABLE_OFFSET + 16u * v;

	fp_w(p, e, (uint32_t)addr, 4);
	fp_w(p, e + 4, addr >> 32, 4);
	fp_w(p, e + 8, data, 4);
	fp_w(p, e + 12, 0, 4);
}

static inline void fp_msix_enable(struct virtio_pci *p, bool on)
{
	fp_cfgw(p, VIRTIO_PCI_CAP_MSIX_AT + 2, on ? 0x8000 : 0, 2);
}

/*
 * The driver's init sequence (spec 3.1.1) up to FEATURES_OK, with the
 * queues in vqs[0..nr) set up and enabled; MSI-X enabled with queue q on
 * vector q + 1 and config on vector 0 when `msix`.  Returns the status read
 * back (FEATURES_OK clear means the device refused).
 */
static inline uint8_t fp_setup(struct virtio_pci *p, struct fake_guest *g, uint64_t features,
			       struct fake_vq *vqs, unsigned nr, uint16_t qsize, bool msix)
{
	uint8_t st;

	fp_w(p, FP_COMMON(STATUS), 0, 1);
	fp_w(p, FP_COMMON(STATUS), VIRTIO_CONFIG_S_ACKNOWLEDGE, 1);
	fp_w(p, FP_COMMON(STATUS), VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER, 1);
	fp_w(p, FP_COMMON(GFSELECT), 0, 4);
	fp_w(p, FP_COMMON(GF), (uint32_t)features, 4);
	fp_w(p, FP_COMMON(GFSELECT), 1, 4);
	fp_w(p, FP_COMMON(GF), features >> 32, 4);
	fp_w(p, FP_COMMON(STATUS), VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
		 VIRTIO_CONFIG_S_FEATURES_OK, 1);
	st = (uint8_t)fp_r(p, FP_COMMON(STATUS), 1);
	if (!(st & VIRTIO_CONFIG_S_FEATURES_OK))
		return st;
	if (msix) {
		fp_msix_enable(p, true);
		for (uint16_t v = 0; v <= nr; v++)
			fp_msix_vector(p, v, 0xfee00000u + v, 0x4000u + v);
		fp_w(p, FP_COMMON(MSIX), 0, 2);
	}
	for (unsigned q = 0; q < nr; q++) {
		fvq_init(&vqs[q], g, qsize);
		fp_w(p, FP_COMMON(Q_SELECT), q, 2);
		fp_w(p, FP_COMMON(Q_SIZE), qsize, 2);
		if (msix)
			fp_w(p, FP_COMMON(Q_MSIX), q + 1, 2);
		fp_w(p, FP_COMMON(Q_DESCLO), vqs[q].desc_gpa, 8);
		fp_w(p, FP_COMMON(Q_AVAILLO), (uint32_t)vqs[q].avail_gpa, 4);
		fp_w(p, FP_COMMON(Q_AVAILHI), vqs[q].avail_gpa >> 32, 4);
		fp_w(p, FP_COMMON(Q_USEDLO), (uint32_t)vqs[q].used_gpa, 4);
		fp_w(p, FP_COMMON(Q_USEDHI), vqs[q].used_gpa >> 32, 4);
		fp_w(p, FP_COMMON(Q_ENABLE), 1, 2);
	}
	return (uint8_t)fp_r(p, FP_COMMON(STATUS), 1);
}

/* DRIVER_OK (a register write), then the VMM's event thread polls. */
static inline void fp_driver_ok(struct virtio_pci *p)
{
	fp_w(p, FP_COMMON(STATUS), VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
		 VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK, 1);
	virtio_pci_poll(p);
}

/* Kick queue q as the VMM's ioeventfd would (event thread). */
static inline void fp_kick(struct virtio_pci *p, uint16_t q)
{
	virtio_pci_notify(p, q);
}

/* Kick queue q through its notify register (the path without ioeventfd),
 * then the event thread's poll. */
static inline void fp_kick_reg(struct virtio_pci *p, uint16_t q)
{
	fp_w(p, (uint32_t)virtio_pci_notify_offset(p, q), q, 2);
	virtio_pci_poll(p);
}

#endif /* EBB_TEST_VIRTIO_FAKE_H */
