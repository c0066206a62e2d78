/*
 * virtio/pci.c — modern virtio-pci transport, device model.
 *
 * Overview.  The function's 256-byte configuration space is kept as an
 * image plus a per-byte mask of driver-writable bits (command, BAR0, the
 * interrupt line, MSI-X enable/mask, the PCI_CFG access window); a write
 * merges through the mask and then applies its side effects (BAR moves, the
 * PCI_CFG window forwarding to BAR0, MSI-X unmask delivering pending
 * vectors).  BAR0 accesses are dispatched by region.  The common config is
 * rendered on read from the live state, and written field by field with the
 * field's natural width (the spec requires it; other widths are counted and
 * ignored).
 *
 * Device status follows section 3.1: writing 0 resets; the driver may only
 * add bits; FEATURES_OK is accepted only for a subset of the offered
 * features that includes VERSION_1 (and that the device accepts), otherwise
 * it stays clear for the driver to see; DRIVER_OK needs FEATURES_OK.  Queue
 * registers are frozen once the queue is enabled.  Kicks before DRIVER_OK are
 * ignored; at DRIVER_OK every enabled queue is processed once, so buffers
 * queued during probe are not lost.  NEEDS_RESET is set by the device only.
 *
 * Interrupts: with MSI-X enabled the queue's / config's vector is delivered
 * through host->raise_msi unless the function or the entry is masked, in
 * which case the PBA bit is set and the vector is delivered on unmask.
 * Without MSI-X, the ISR bit is set and INTx raised; reading the ISR returns
 * and clears it and lowers INTx.
 */
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <linux/virtio_config.h>

#include "virtio/pci.h"

#define PCI_COMMAND_OFF      0x04
#define PCI_STATUS_OFF       0x06
#define PCI_BAR0_OFF         0x10
#define PCI_CMD_MEM          0x0002
#define PCI_CMD_MASK         0x0447  /* IO, MEM, MASTER, PARITY, INTX_DISABLE */
#define PCI_STATUS_CAP_LIST  0x0010
#define PCI_CAP_ID_VNDR_     0x09
#define PCI_CAP_ID_MSIX_     0x11
#define MSIX_CTRL_ENABLE     0x8000
#define MSIX_CTRL_MASKALL    0x4000
#define MSIX_ENTRY_BYTES     16
#define COMMON_CFG_BYTES     ((uint32_t)sizeof(struct virtio_pci_common_cfg))
#define NO_VECTOR            VIRTIO_MSI_NO_VECTOR
#define VIRTIO_PCI_ISR_QUEUE 0x1

struct virtio_pci {
	struct virtio_pci_cfg cfg;
	const struct virtio_host *host;
	struct virtio_dev_errors *errs;
	struct ebb_ratelimit *rl;

	uint8_t cs[VIRTIO_PCI_CFG_SPACE_SIZE];     /* configuration space image */
	uint8_t wmask[VIRTIO_PCI_CFG_SPACE_SIZE];  /* driver-writable bits */
	virtio_gpa_t bar0_reported;
	bool decoding_reported;

	uint64_t device_features;
	uint64_t driver_features;
	uint32_t dfselect;
	uint32_t gfselect;
	uint16_t msix_config;
	uint16_t queue_select;
	uint8_t status;
	uint8_t config_generation;
	uint8_t isr;
	bool intx_level;

	uint16_t nr_vectors;
	uint8_t msix_table[MSIX_ENTRY_BYTES * (VIRTIO_PCI_MAX_QUEUES + 1)];
	uint64_t msix_pba[(VIRTIO_PCI_MAX_QUEUES + 1 + 63) / 64];

	uint16_t nr_queues;
	struct virtio_vq *vqs;
	uint64_t pending;   /* bit q: queue q deferred work to virtio_pci_poll */
};

#define pci_warn(p, ...) \
	virtio_log_ratelimited((p)->host, (p)->rl, &(p)->errs->nr_logs_suppressed, __VA_ARGS__)

static uint16_t get16(const uint8_t *b) { return (uint16_t)(b[0] | b[1] << 8); }
static uint32_t get32(const uint8_t *b) { return (uint32_t)get16(b) | (uint32_t)get16(b + 2) << 16; }
static void put16(uint8_t *b, uint16_t v) { b[0] = (uint8_t)v; b[1] = (uint8_t)(v >> 8); }
static void put32(uint8_t *b, uint32_t v) { put16(b, (uint16_t)v); put16(b + 2, (uint16_t)(v >> 16)); }

static void vq_broken(void *opaque, struct virtio_vq *vq)
{
	virtio_pci_needs_reset(opaque);
}

static void add_vndr_cap(struct virtio_pci *p, uint8_t at, uint8_t next, uint8_t len,
			 uint8_t type, uint32_t offset, uint32_t length)
{
	p->cs[at + 0] = PCI_CAP_ID_VNDR_;
	p->cs[at + 1] = next;
	p->cs[at + 2] = len;
	p->cs[at + 3] = type;
	p->cs[at + 4] = 0; /* BAR0 */
	put32(p->cs + at + 8, offset);
	put32(p->cs + at + 12, length);
}

static void build_cfg_space(struct virtio_pci *p)
{
	uint8_t *cs = p->cs, *wm = p->wmask;
	uint32_t bar_mask = ~(VIRTIO_PCI_BAR0_SIZE - 1);

	put16(cs + 0x00, VIRTIO_PCI_VENDOR_ID);
	put16(cs + 0x02, (uint16_t)(VIRTIO_PCI_DEVICE_ID_BASE + p->cfg.virtio_device_id));
	put16(cs + PCI_STATUS_OFF, PCI_STATUS_CAP_LIST);
	cs[0x08] = 1; /* revision: modern-only device */
	cs[0x09] = (uint8_t)p->cfg.pci_class;
	cs[0x0a] = (uint8_t)(p->cfg.pci_class >> 8);
	cs[0x0b] = (uint8_t)(p->cfg.pci_class >> 16);
	put16(cs + 0x2c, VIRTIO_PCI_VENDOR_ID);
	put16(cs + 0x2e, (uint16_t)(0x40 + p->cfg.virtio_device_id));
	cs[0x34] = VIRTIO_PCI_CAP_COMMON_AT;
	cs[0x3d] = 1; /* INTA# */

	put16(wm + PCI_COMMAND_OFF, PCI_CMD_MASK);
	wm[0x0c] = 0xff; /* cache line size */
	wm[0x0d] = 0xff; /* latency timer */
	put32(wm + PCI_BAR0_OFF, bar_mask);
	wm[0x3c] = 0xff; /* interrupt line */

	add_vndr_cap(p, VIRTIO_PCI_CAP_COMMON_AT, VIRTIO_PCI_CAP_NOTIFY_AT, 16,
		     VIRTIO_PCI_CAP_COMMON_CFG, VIRTIO_PCI_COMMON_OFFSET, COMMON_CFG_BYTES);
	add_vndr_cap(p, VIRTIO_PCI_CAP_NOTIFY_AT, VIRTIO_PCI_CAP_ISR_AT, 20,
		     VIRTIO_PCI_CAP_NOTIFY_CFG, VIRTIO_PCI_NOTIFY_OFFSET,
		     VIRTIO_PCI_NOTIFY_MULTIPLIER * p->nr_queues);
	put32(cs + VIRTIO_PCI_CAP_NOTIFY_AT + 16, VIRTIO_PCI_NOTIFY_MULTIPLIER);
	add_vndr_cap(p, VIRTIO_PCI_CAP_ISR_AT, VIRTIO_PCI_CAP_DEVICE_AT, 16,
		     VIRTIO_PCI_CAP_ISR_CFG, VIRTIO_PCI_ISR_OFFSET, 4);
	add_vndr_cap(p, VIRTIO_PCI_CAP_DEVICE_AT, VIRTIO_PCI_CAP_PCICFG_AT, 16,
		     VIRTIO_PCI_CAP_DEVICE_CFG, VIRTIO_PCI_DEVICE_OFFSET, p->cfg.config_size_bytes);
	add_vndr_cap(p, VIRTIO_PCI_CAP_PCICFG_AT, VIRTIO_PCI_CAP_MSIX_AT, 20,
		     VIRTIO_PCI_CAP_PCI_CFG, 0, 0);
	/* The PCI_CFG window: bar, offset, length and data are driver-written. */
	wm[VIRTIO_PCI_CAP_PCICFG_AT + 4] = 0xff;
	memset(wm + VIRTIO_PCI_CAP_PCICFG_AT + 8, 0xff, 12);

	cs[VIRTIO_PCI_CAP_MSIX_AT + 0] = PCI_CAP_ID_MSIX_;
	cs[VIRTIO_PCI_CAP_MSIX_AT + 1] = 0;
	put16(cs + VIRTIO_PCI_CAP_MSIX_AT + 2, (uint16_t)(p->nr_vectors - 1));
	put32(cs + VIRTIO_PCI_CAP_MSIX_AT + 4, VIRTIO_PCI_MSIX_TABLE_OFFSET); /* BIR 0 */
	put32(cs + VIRTIO_PCI_CAP_MSIX_AT + 8, VIRTIO_PCI_MSIX_PBA_OFFSET);   /* BIR 0 */
	put16(wm + VIRTIO_PCI_CAP_MSIX_AT + 2, MSIX_CTRL_ENABLE | MSIX_CTRL_MASKALL);
}

int virtio_pci_create(const struct virtio_pci_cfg *cfg, struct virtio_pci **out)
{
	struct virtio_pci *p;
	uint32_t qmax = cfg->queue_max_size;

	*out = NULL;
	if (!cfg->host || !cfg->host->translate || !cfg->ops || !cfg->ops->queue_notify ||
	    !cfg->errs || !cfg->rl || cfg->nr_queues == 0 ||
	    cfg->nr_queues > VIRTIO_PCI_MAX_QUEUES || qmax == 0 || qmax > VIRTIO_VQ_MAX_SIZE ||
	    (qmax & (qmax - 1)) || cfg->config_size_bytes > VIRTIO_PCI_DEVICE_CFG_MAX ||
	    (cfg->config_size_bytes && (!cfg->ops->config_read || !cfg->ops->config_write)))
		return -EINVAL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->vqs = calloc(cfg->nr_queues, sizeof(*p->vqs));
	if (!p->vqs) {
		free(p);
		return -ENOMEM;
	}
	p->cfg = *cfg;
	p->host = cfg->host;
	p->errs = cfg->errs;
	p->rl = cfg->rl;
	p->nr_queues = cfg->nr_queues;
	p->nr_vectors = (uint16_t)(cfg->nr_queues + 1);
	p->device_features = cfg->device_features | (1ull << VIRTIO_F_VERSION_1);
	p->msix_config = NO_VECTOR;
	for (uint16_t q = 0; q < p->nr_queues; q++)
		virtio_vq_init(&p->vqs[q], q, (uint16_t)qmax, p->host, p->errs, p->rl,
			       vq_broken, p);
	for (uint16_t v = 0; v < p->nr_vectors; v++)
		p->msix_table[v * MSIX_ENTRY_BYTES + 12] = 1; /* masked at reset */
	build_cfg_space(p);
	*out = p;
	return 0;
}

void virtio_pci_destroy(struct virtio_pci *p)
{
	if (!p)
		return;
	free(p->vqs);
	free(p);
}

/* --- interrupts ------------------------------------------------------------ */

static bool msix_enabled(const struct virtio_pci *p)
{
	return get16(p->cs + VIRTIO_PCI_CAP_MSIX_AT + 2) & MSIX_CTRL_ENABLE;
}

static bool msix_masked(const struct virtio_pci *p, uint16_t v)
{
	return (get16(p->cs + VIRTIO_PCI_CAP_MSIX_AT + 2) & MSIX_CTRL_MASKALL) ||
	       (p->msix_table[v * MSIX_ENTRY_BYTES + 12] & 1);
}

static void msix_fire(struct virtio_pci *p, uint16_t v)
{
	const uint8_t *e = p->msix_table + v * MSIX_ENTRY_BYTES;
	uint64_t addr = get32(e) | (uint64_t)get32(e + 4) << 32;

	if (p->host->raise_msi)
		p->host->raise_msi(p->host->opaque, v, addr, get32(e + 8));
}

static void msix_deliver_pending(struct virtio_pci *p)
{
	if (!msix_enabled(p))
		return;
	for (uint16_t v = 0; v < p->nr_vectors; v++) {
		uint64_t bit = 1ull << (v % 64);

		if ((p->msix_pba[v / 64] & bit) && !msix_masked(p, v)) {
			p->msix_pba[v / 64] &= ~bit;
			msix_fire(p, v);
		}
	}
}

static void set_intx(struct virtio_pci *p, bool level)
{
	if (p->intx_level == level)
		return;
	p->intx_level = level;
	if (p->host->set_intx)
		p->host->set_intx(p->host->opaque, level);
}

static void raise_irq(struct virtio_pci *p, uint16_t vector, uint8_t isr_bit)
{
	if (msix_enabled(p)) {
		if (vector == NO_VECTOR || vector >= p->nr_vectors)
			return; /* the driver asked for no interrupt */
		if (msix_masked(p, vector))
			p->msix_pba[vector / 64] |= 1ull << (vector % 64);
		else
			msix_fire(p, vector);
		return;
	}
	p->isr |= isr_bit;
	set_intx(p, true);
}

void virtio_pci_signal_queue(struct virtio_pci *p, uint16_t q)
{
	if (q >= p->nr_queues || !(p->status & VIRTIO_CONFIG_S_DRIVER_OK))
		return;
	raise_irq(p, p->vqs[q].msix_vector, VIRTIO_PCI_ISR_QUEUE);
}

void virtio_pci_config_changed(struct virtio_pci *p)
{
	p->config_generation++;
	if (p->status & VIRTIO_CONFIG_S_DRIVER_OK)
		raise_irq(p, p->msix_config, VIRTIO_PCI_ISR_CONFIG);
}

void virtio_pci_needs_reset(struct virtio_pci *p)
{
	if (p->status & VIRTIO_CONFIG_S_NEEDS_RESET)
		return;
	p->errs->nr_needs_reset++;
	p->status |= VIRTIO_CONFIG_S_NEEDS_RESET;
	/* GUEST: a reset storm repeats this: rate limited like every guest line. */
	pci_warn(p, "virtio-pci %04x: device needs reset",
		 VIRTIO_PCI_DEVICE_ID_BASE + p->cfg.virtio_device_id);
	raise_irq(p, p->msix_config, VIRTIO_PCI_ISR_CONFIG);
}

/* --- device status and common config ------------------------------------- */

static void device_reset(struct virtio_pci *p)
{
	for (uint16_t q = 0; q < p->nr_queues; q++)
		virtio_vq_reset(&p->vqs[q]);
	p->status = 0;
	p->pending = 0;
	p->driver_features = 0;
	p->dfselect = p->gfselect = 0;
	p->queue_select = 0;
	p->msix_config = NO_VECTOR;
	p->isr = 0;
	set_intx(p, false);
	if (p->cfg.ops->reset)
		p->cfg.ops->reset(p->cfg.dev);
}

static bool features_acceptable(struct virtio_pci *p)
{
	uint64_t f = p->driver_features;

	if (f & ~p->device_features)
		return false;
	if (!(f & (1ull << VIRTIO_F_VERSION_1)))
		return false;
	return !p->cfg.ops->features_ok || p->cfg.ops->features_ok(p->cfg.dev, f);
}

static void write_status(struct virtio_pci *p, uint8_t v)
{
	uint8_t old, add;

	if (v == 0) {
		device_reset(p);
		return;
	}
	v &= (uint8_t)~VIRTIO_CONFIG_S_NEEDS_RESET;
	old = p->status & (uint8_t)~VIRTIO_CONFIG_S_NEEDS_RESET;
	if (old & ~v) {
		p->errs->nr_bad_register++;
		pci_warn(p, "virtio-pci: driver cleared status bits (%#x -> %#x)", old, v);
		return;
	}
	add = v & (uint8_t)~old;
	if ((add & VIRTIO_CONFIG_S_FEATURES_OK) && !features_acceptable(p)) {
		pci_warn(p, "virtio-pci: refusing features %#llx",
			 (unsigned long long)p->driver_features);
		add &= (uint8_t)~VIRTIO_CONFIG_S_FEATURES_OK;
	}
	if ((add & VIRTIO_CONFIG_S_DRIVER_OK) && !((old | add) & VIRTIO_CONFIG_S_FEATURES_OK)) {
		p->errs->nr_bad_register++;
		pci_warn(p, "virtio-pci: DRIVER_OK without FEATURES_OK");
		add &= (uint8_t)~VIRTIO_CONFIG_S_DRIVER_OK;
	}
	p->status |= add;
	if (add & VIRTIO_CONFIG_S_DRIVER_OK) {
		if (p->cfg.ops->driver_ok)
			p->cfg.ops->driver_ok(p->cfg.dev);
		/* Buffers the driver queued before DRIVER_OK are handled next,
		 * from virtio_pci_poll on the VMM's event thread: this is a
		 * register write (a vCPU thread), where no device work runs. */
		for (uint16_t q = 0; q < p->nr_queues; q++)
			virtio_pci_defer(p, q);
	}
}

static struct virtio_vq *selected_vq(struct virtio_pci *p)
{
	return p->queue_select < p->nr_queues ? &p->vqs[p->queue_select] : NULL;
}

static void render_common(struct virtio_pci *p, uint8_t b[COMMON_CFG_BYTES])
{
	struct virtio_vq *vq = selected_vq(p);

	memset(b, 0, COMMON_CFG_BYTES);
	put32(b + VIRTIO_PCI_COMMON_DFSELECT, p->dfselect);
	if (p->dfselect < 2)
		put32(b + VIRTIO_PCI_COMMON_DF, (uint32_t)(p->device_features >> (32 * p->dfselect)));
	put32(b + VIRTIO_PCI_COMMON_GFSELECT, p->gfselect);
	if (p->gfselect < 2)
		put32(b + VIRTIO_PCI_COMMON_GF, (uint32_t)(p->driver_features >> (32 * p->gfselect)));
	put16(b + VIRTIO_PCI_COMMON_MSIX, p->msix_config);
	put16(b + VIRTIO_PCI_COMMON_NUMQ, p->nr_queues);
	b[VIRTIO_PCI_COMMON_STATUS] = p->status;
	b[VIRTIO_PCI_COMMON_CFGGENERATION] = p->config_generation;
	put16(b + VIRTIO_PCI_COMMON_Q_SELECT, p->queue_select);
	if (!vq)
		return; /* queue_size 0: no such queue */
	put16(b + VIRTIO_PCI_COMMON_Q_SIZE, vq->size);
	put16(b + VIRTIO_PCI_COMMON_Q_MSIX, vq->msix_vector);
	put16(b + VIRTIO_PCI_COMMON_Q_ENABLE, vq->enabled);
	put16(b + VIRTIO_PCI_COMMON_Q_NOFF, vq->index);
	put32(b + VIRTIO_PCI_COMMON_Q_DESCLO, (uint32_t)vq->desc_gpa);
	put32(b + VIRTIO_PCI_COMMON_Q_DESCHI, (uint32_t)(vq->desc_gpa >> 32));
	put32(b + VIRTIO_PCI_COMMON_Q_AVAILLO, (uint32_t)vq->avail_gpa);
	put32(b + VIRTIO_PCI_COMMON_Q_AVAILHI, (uint32_t)(vq->avail_gpa >> 32));
	put32(b + VIRTIO_PCI_COMMON_Q_USEDLO, (uint32_t)vq->used_gpa);
	put32(b + VIRTIO_PCI_COMMON_Q_USEDHI, (uint32_t)(vq->used_gpa >> 32));
}

static uint16_t valid_vector(struct virtio_pci *p, uint16_t v)
{
	return v < p->nr_vectors ? v : NO_VECTOR;
}

static void set_half(virtio_gpa_t *a, bool hi, uint32_t v)
{
	if (hi)
		*a = (*a & 0xffffffffull) | (uint64_t)v << 32;
	else
		*a = (*a & ~0xffffffffull) | v;
}

/* Width each common-config field must be written with (0: read-only). */
static uint32_t common_width(uint32_t off)
{
	switch (off) {
	case VIRTIO_PCI_COMMON_DFSELECT: case VIRTIO_PCI_COMMON_GFSELECT:
	case VIRTIO_PCI_COMMON_GF:
	case VIRTIO_PCI_COMMON_Q_DESCLO: case VIRTIO_PCI_COMMON_Q_DESCHI:
	case VIRTIO_PCI_COMMON_Q_AVAILLO: case VIRTIO_PCI_COMMON_Q_AVAILHI:
	case VIRTIO_PCI_COMMON_Q_USEDLO: case VIRTIO_PCI_COMMON_Q_USEDHI:
		return 4;
	case VIRTIO_PCI_COMMON_MSIX: case VIRTIO_PCI_COMMON_Q_SELECT:
	case VIRTIO_PCI_COMMON_Q_SIZE: case VIRTIO_PCI_COMMON_Q_MSIX:
	case VIRTIO_PCI_COMMON_Q_ENABLE:
		return 2;
	case VIRTIO_PCI_COMMON_STATUS:
		return 1;
	default:
		return 0;
	}
}

/* GUEST: a driver write to the common config. */
static void write_common(struct virtio_pci *p, uint32_t off, uint32_t v, uint32_t len)
{
	struct virtio_vq *vq = selected_vq(p);
	bool frozen = !vq || vq->enabled;

	if (common_width(off) != len) {
		p->errs->nr_bad_register++;
		pci_warn(p, "virtio-pci: common cfg write off %#x len %u ignored", off, len);
		return;
	}
	switch (off) {
	case VIRTIO_PCI_COMMON_DFSELECT:
		p->dfselect = v;
		return;
	case VIRTIO_PCI_COMMON_GFSELECT:
		p->gfselect = v;
		return;
	case VIRTIO_PCI_COMMON_GF:
		if ((p->status & VIRTIO_CONFIG_S_FEATURES_OK) || p->gfselect >= 2) {
			p->errs->nr_bad_register++;
			return;
		}
		p->driver_features &= ~(0xffffffffull << (32 * p->gfselect));
		p->driver_features |= (uint64_t)v << (32 * p->gfselect);
		return;
	case VIRTIO_PCI_COMMON_MSIX:
		p->msix_config = valid_vector(p, (uint16_t)v);
		return;
	case VIRTIO_PCI_COMMON_STATUS:
		write_status(p, (uint8_t)v);
		return;
	case VIRTIO_PCI_COMMON_Q_SELECT:
		p->queue_select = (uint16_t)v;
		return;
	case VIRTIO_PCI_COMMON_Q_MSIX:
		if (vq)
			vq->msix_vector = valid_vector(p, (uint16_t)v);
		return;
	default:
		break;
	}
	if (frozen) {
		p->errs->nr_bad_register++;
		pci_warn(p, "virtio-pci: write to %s queue %u ignored",
			 vq ? "enabled" : "missing", p->queue_select);
		return;
	}
	switch (off) {
	case VIRTIO_PCI_COMMON_Q_SIZE:
		vq->size = (uint16_t)v; /* checked at enable */
		break;
	case VIRTIO_PCI_COMMON_Q_ENABLE:
		if (v != 1 || !(p->status & VIRTIO_CONFIG_S_FEATURES_OK)) {
			p->errs->nr_bad_register++;
			pci_warn(p, "virtio-pci: queue_enable=%u ignored", v);
			break;
		}
		virtio_vq_enable(vq, p->driver_features);
		break;
	case VIRTIO_PCI_COMMON_Q_DESCLO: case VIRTIO_PCI_COMMON_Q_DESCHI:
		set_half(&vq->desc_gpa, off == VIRTIO_PCI_COMMON_Q_DESCHI, v);
		break;
	case VIRTIO_PCI_COMMON_Q_AVAILLO: case VIRTIO_PCI_COMMON_Q_AVAILHI:
		set_half(&vq->avail_gpa, off == VIRTIO_PCI_COMMON_Q_AVAILHI, v);
		break;
	case VIRTIO_PCI_COMMON_Q_USEDLO: case VIRTIO_PCI_COMMON_Q_USEDHI:
		set_half(&vq->used_gpa, off == VIRTIO_PCI_COMMON_Q_USEDHI, v);
		break;
	default:
		break;
	}
}

/* --- BAR0 ------------------------------------------------------------------ */

static uint64_t le_bytes(const void *data, uint32_t len)
{
	uint64_t v = 0;

	for (uint32_t i = 0; i < len; i++)
		v |= (uint64_t)((const uint8_t *)data)[i] << (8 * i);
	return v;
}

static bool in_region(uint64_t off, uint32_t len, uint64_t start, uint64_t size)
{
	return off >= start && off - start <= size && len <= size - (off - start);
}

/* GUEST: every BAR read of the driver. */
void virtio_pci_bar_read(struct virtio_pci *p, int bar, uint64_t off, void *data, uint32_t len)
{
	uint8_t *out = data;

	if (len != 1 && len != 2 && len != 4 && len != 8)
		return; /* nothing sane to fill */
	memset(out, 0, len);
	if (bar != 0 || !in_region(off, len, 0, VIRTIO_PCI_BAR0_SIZE)) {
		p->errs->nr_bad_register++;
		return;
	}
	if (in_region(off, len, VIRTIO_PCI_COMMON_OFFSET, COMMON_CFG_BYTES)) {
		uint8_t b[COMMON_CFG_BYTES];

		render_common(p, b);
		memcpy(out, b + (off - VIRTIO_PCI_COMMON_OFFSET), len);
	} else if (in_region(off, len, VIRTIO_PCI_ISR_OFFSET, 4)) {
		if (off == VIRTIO_PCI_ISR_OFFSET) {
			out[0] = p->isr; /* read-to-clear */
			p->isr = 0;
			set_intx(p, false);
		}
	} else if (in_region(off, len, VIRTIO_PCI_DEVICE_OFFSET, p->cfg.config_size_bytes)) {
		p->cfg.ops->config_read(p->cfg.dev, (uint32_t)(off - VIRTIO_PCI_DEVICE_OFFSET), out, len);
	} else if (in_region(off, len, VIRTIO_PCI_MSIX_TABLE_OFFSET,
			     (uint64_t)MSIX_ENTRY_BYTES * p->nr_vectors)) {
		memcpy(out, p->msix_table + (off - VIRTIO_PCI_MSIX_TABLE_OFFSET), len);
	} else if (in_region(off, len, VIRTIO_PCI_MSIX_PBA_OFFSET, sizeof(p->msix_pba))) {
		memcpy(out, (uint8_t *)p->msix_pba + (off - VIRTIO_PCI_MSIX_PBA_OFFSET), len);
	} else if (in_region(off, len, VIRTIO_PCI_NOTIFY_OFFSET,
			     (uint64_t)VIRTIO_PCI_NOTIFY_MULTIPLIER * p->nr_queues)) {
		/* notify area reads as zero */
	} else {
		p->errs->nr_bad_register++;
	}
}

/* GUEST: every BAR write of the driver. */
void virtio_pci_bar_write(struct virtio_pci *p, int bar, uint64_t off, const void *data,
			  uint32_t len)
{
	if ((len != 1 && len != 2 && len != 4 && len != 8) || bar != 0 ||
	    !in_region(off, len, 0, VIRTIO_PCI_BAR0_SIZE)) {
		p->errs->nr_bad_register++;
		return;
	}
	if (in_region(off, len, VIRTIO_PCI_COMMON_OFFSET, COMMON_CFG_BYTES)) {
		uint32_t o = (uint32_t)(off - VIRTIO_PCI_COMMON_OFFSET);
		uint64_t v = le_bytes(data, len);

		if (len == 8 && (o == VIRTIO_PCI_COMMON_Q_DESCLO || o == VIRTIO_PCI_COMMON_Q_AVAILLO ||
				 o == VIRTIO_PCI_COMMON_Q_USEDLO)) {
			write_common(p, o, (uint32_t)v, 4);
			write_common(p, o + 4, (uint32_t)(v >> 32), 4);
		} else {
			write_common(p, o, (uint32_t)v, len);
		}
	} else if (in_region(off, len, VIRTIO_PCI_NOTIFY_OFFSET,
			     (uint64_t)VIRTIO_PCI_NOTIFY_MULTIPLIER * p->nr_queues)) {
		/* A kick that reached the register path (no ioeventfd, or the
		 * PCI_CFG window): only recorded, virtio_pci_poll runs it. */
		virtio_pci_defer(p, (uint16_t)((off - VIRTIO_PCI_NOTIFY_OFFSET) /
					       VIRTIO_PCI_NOTIFY_MULTIPLIER));
	} else if (in_region(off, len, VIRTIO_PCI_DEVICE_OFFSET, p->cfg.config_size_bytes)) {
		p->cfg.ops->config_write(p->cfg.dev, (uint32_t)(off - VIRTIO_PCI_DEVICE_OFFSET), data,
					 len);
	} else if (in_region(off, len, VIRTIO_PCI_MSIX_TABLE_OFFSET,
			     (uint64_t)MSIX_ENTRY_BYTES * p->nr_vectors)) {
		memcpy(p->msix_table + (off - VIRTIO_PCI_MSIX_TABLE_OFFSET), data, len);
		msix_deliver_pending(p);
	} else {
		/* ISR and PBA are read-only; the rest is unused */
		p->errs->nr_bad_register++;
	}
}

void virtio_pci_notify(struct virtio_pci *p, uint16_t q)
{
	struct virtio_vq *vq;

	if (q >= p->nr_queues) {
		p->errs->nr_bad_register++;
		pci_warn(p, "virtio-pci: kick for missing queue %u", q);
		return;
	}
	vq = &p->vqs[q];
	if (!(p->status & VIRTIO_CONFIG_S_DRIVER_OK) || !vq->enabled || vq->broken ||
	    (p->status & VIRTIO_CONFIG_S_NEEDS_RESET))
		return;
	p->cfg.ops->queue_notify(p->cfg.dev, q);
}

void virtio_pci_defer(struct virtio_pci *p, uint16_t q)
{
	if (q < p->nr_queues)
		p->pending |= 1ull << q;
}

bool virtio_pci_poll(struct virtio_pci *p)
{
	uint64_t todo = p->pending;

	p->pending = 0;
	while (todo) {
		uint16_t q = (uint16_t)__builtin_ctzll(todo);

		todo &= todo - 1;
		virtio_pci_notify(p, q);
	}
	return p->pending != 0;
}

bool virtio_pci_has_pending(const struct virtio_pci *p)
{
	return p->pending != 0;
}

uint64_t virtio_pci_notify_offset(const struct virtio_pci *p, uint16_t q)
{
	return VIRTIO_PCI_NOTIFY_OFFSET + (uint64_t)VIRTIO_PCI_NOTIFY_MULTIPLIER * q;
}

/* --- configuration space --------------------------------------------------- */

static bool overlaps(uint32_t off, uint32_t len, uint32_t start, uint32_t size)
{
	return off < start + size && start < off + len;
}

void virtio_pci_cfg_layout(const struct virtio_pci *p, uint8_t *image, uint8_t *wmask)
{
	memcpy(image, p->cs, VIRTIO_PCI_CFG_SPACE_SIZE);
	memcpy(wmask, p->wmask, VIRTIO_PCI_CFG_SPACE_SIZE);
}

bool virtio_pci_bar0(const struct virtio_pci *p, virtio_gpa_t *gpa)
{
	uint32_t bar = get32(p->cs + PCI_BAR0_OFF) & ~0xfu;

	*gpa = bar;
	return (get16(p->cs + PCI_COMMAND_OFF) & PCI_CMD_MEM) && bar != 0;
}

/* Forward the PCI_CFG access window to BAR0 (spec 4.1.4.9). */
static void pcicfg_window(struct virtio_pci *p, bool write)
{
	const uint8_t *cap = p->cs + VIRTIO_PCI_CAP_PCICFG_AT;
	uint32_t off = get32(cap + 8), len = get32(cap + 12);
	uint8_t *data = p->cs + VIRTIO_PCI_CAP_PCICFG_AT + 16;

	if (cap[4] != 0 || (len != 1 && len != 2 && len != 4)) {
		p->errs->nr_bad_register++;
		return;
	}
	if (write)
		virtio_pci_bar_write(p, 0, off, data, len);
	else
		virtio_pci_bar_read(p, 0, off, data, len);
}

void virtio_pci_cfg_read(struct virtio_pci *p, uint32_t off, void *data, uint32_t len)
{
	if ((len != 1 && len != 2 && len != 4) || off >= VIRTIO_PCI_CFG_SPACE_SIZE ||
	    len > VIRTIO_PCI_CFG_SPACE_SIZE - off) {
		p->errs->nr_bad_register++;
		if (len <= 4)
			memset(data, 0xff, len);
		return;
	}
	if (overlaps(off, len, VIRTIO_PCI_CAP_PCICFG_AT + 16, 4))
		pcicfg_window(p, false);
	memcpy(data, p->cs + off, len);
}

void virtio_pci_cfg_write(struct virtio_pci *p, uint32_t off, const void *data, uint32_t len)
{
	const uint8_t *in = data;
	virtio_gpa_t gpa;
	bool decoding;

	if ((len != 1 && len != 2 && len != 4) || off >= VIRTIO_PCI_CFG_SPACE_SIZE ||
	    len > VIRTIO_PCI_CFG_SPACE_SIZE - off) {
		p->errs->nr_bad_register++;
		return;
	}
	for (uint32_t i = 0; i < len; i++)
		p->cs[off + i] = (uint8_t)((p->cs[off + i] & ~p->wmask[off + i]) |
					   (in[i] & p->wmask[off + i]));
	if (overlaps(off, len, VIRTIO_PCI_CAP_PCICFG_AT + 16, 4))
		pcicfg_window(p, true);
	if (overlaps(off, len, VIRTIO_PCI_CAP_MSIX_AT + 2, 2))
		msix_deliver_pending(p);
	decoding = virtio_pci_bar0(p, &gpa);
	if (gpa != p->bar0_reported || decoding != p->decoding_reported) {
		p->bar0_reported = gpa;
		p->decoding_reported = decoding;
		if (p->host->bar_changed)
			p->host->bar_changed(p->host->opaque, 0, gpa, VIRTIO_PCI_BAR0_SIZE, decoding);
	}
}

/* --- accessors ------------------------------------------------------------- */

struct virtio_vq *virtio_pci_vq(struct virtio_pci *p, uint16_t q)
{
	return q < p->nr_queues ? &p->vqs[q] : NULL;
}

uint16_t virtio_pci_nr_queues(const struct virtio_pci *p) { return p->nr_queues; }
uint64_t virtio_pci_features(const struct virtio_pci *p) { return p->driver_features; }
uint8_t virtio_pci_status(const struct virtio_pci *p) { return p->status; }
uint8_t virtio_pci_isr_peek(const struct virtio_pci *p) { return p->isr; }

bool virtio_pci_driver_ok(const struct virtio_pci *p)
{
	return (p->status & VIRTIO_CONFIG_S_DRIVER_OK) &&
	       !(p->status & VIRTIO_CONFIG_S_NEEDS_RESET);
}

bool virtio_pci_msix_pending(const struct virtio_pci *p, uint16_t vector)
{
	return vector < p->nr_vectors && (p->msix_pba[vector / 64] >> (vector % 64) & 1);
}
