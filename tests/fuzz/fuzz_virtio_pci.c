/*
 * tests/fuzz/fuzz_virtio_pci.c — libFuzzer target for the virtio-pci
 * transport's register paths, reads included: configuration space (the
 * PCI_CFG access window, MSI-X control), every BAR0 region read and written
 * at any offset and width (common config, ISR read-to-clear, device config,
 * notify, MSI-X table and PBA), kicks and polls, interrupts raised by the
 * device while vectors are masked or not, NEEDS_RESET, and resets.  The
 * device behind it is a small echo device.  Invariants trap when broken:
 * reading the ISR clears it and lowers INTx; a read through the PCI_CFG
 * window returns what a direct BAR read of the same side-effect-free
 * register returns; a PBA bit is only pending for an existing vector; no
 * device work runs from a register access (only from notify / poll).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "tests/unit/test_virtio_fake.h"
#include "virtio/pci.h"

#define RAM_BYTES (32u * 4096)
#define NQ 3
#define QMAX 8
#define DEV_CFG_BYTES 12u

struct echo {
	struct virtio_pci *pci;
	uint8_t config[DEV_CFG_BYTES];
	bool in_register_access;   /* set around BAR / config accesses */
	unsigned nr_notify;
};

static void echo_cfg_read(void *dev, uint32_t off, void *buf, uint32_t len)
{
	if (off + len > DEV_CFG_BYTES)
		__builtin_trap();
	memcpy(buf, ((struct echo *)dev)->config + off, len);
}

static void echo_cfg_write(void *dev, uint32_t off, const void *buf, uint32_t len)
{
	if (off + len > DEV_CFG_BYTES)
		__builtin_trap();
	memcpy(((struct echo *)dev)->config + off, buf, len);
}

static void echo_notify(void *dev, uint16_t q)
{
	struct echo *e = dev;
	struct virtio_vq *vq = virtio_pci_vq(e->pci, q);
	struct virtio_chain c;
	unsigned n = 0;

	if (e->in_register_access || q >= NQ)
		__builtin_trap(); /* device work from a vCPU-thread path */
	e->nr_notify++;
	while (n++ < 2u * QMAX && virtio_vq_pop(vq, &c) == 1)
		virtio_vq_push(vq, c.head, (uint32_t)c.in_bytes);
	if (virtio_vq_need_notify(vq))
		virtio_pci_signal_queue(e->pci, q);
}

static const struct virtio_pci_device_ops echo_ops = {
	.config_read = echo_cfg_read, .config_write = echo_cfg_write, .queue_notify = echo_notify,
};

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

static uint32_t u32(struct rd *r)
{
	return (uint32_t)u16(r) | (uint32_t)u16(r) << 16;
}

static const uint32_t widths[4] = { 1, 2, 4, 8 };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct fake_guest *g;
	struct rd r = { data, size };
	struct fake_vq fvq[NQ];
	struct echo e;
	struct virtio_pci_cfg cfg = {
		.ops = &echo_ops, .virtio_device_id = 42, .pci_class = 0xff0000,
		.device_features = (1ull << VIRTIO_RING_F_EVENT_IDX) | (1ull << 5),
		.nr_queues = NQ, .queue_max_size = QMAX, .config_size_bytes = DEV_CFG_BYTES,
	};
	struct virtio_dev_errors errs;
	struct ebb_ratelimit rl;

	if (!g) {
		g = fg_create(RAM_BYTES, 0, 0);
		g->host.log = NULL;
	}
	memset(g->ram, 0, RAM_BYTES);
	g->alloc_next = 0x1000;
	g->intx = false;
	memset(&e, 0, sizeof(e));
	memset(fvq, 0, sizeof(fvq));
	memset(&errs, 0, sizeof(errs));
	memset(&rl, 0, sizeof(rl));
	cfg.host = &g->host;
	cfg.dev = &e;
	cfg.errs = &errs;
	cfg.rl = &rl;
	if (virtio_pci_create(&cfg, &e.pci))
		__builtin_trap();
	if (size && (data[0] & 1)) { /* start from a working driver half the time */
		e.in_register_access = true;
		fp_setup(e.pci, g, (1ull << VIRTIO_F_VERSION_1) | (1ull << 5), fvq, NQ, QMAX, true);
		fp_w(e.pci, FP_COMMON(STATUS), VIRTIO_CONFIG_S_ACKNOWLEDGE | VIRTIO_CONFIG_S_DRIVER |
		     VIRTIO_CONFIG_S_FEATURES_OK | VIRTIO_CONFIG_S_DRIVER_OK, 1);
		e.in_register_access = false;
		virtio_pci_poll(e.pci);
	}

	for (unsigned ops = 0; r.left && ops < 128; ops++) {
		uint8_t op = u8(&r);
		uint32_t len = widths[op >> 6];
		uint8_t buf[8] = { 0 };

		e.in_register_access = true;
		switch (op % 12) {
		case 0: { /* BAR0 read anywhere */
			uint32_t off = u16(&r) % (VIRTIO_PCI_BAR0_SIZE + 16);
			virtio_pci_bar_read(e.pci, 0, off, buf, len);
			break;
		}
		case 1: { /* BAR0 write anywhere */
			uint32_t off = u16(&r) % (VIRTIO_PCI_BAR0_SIZE + 16);
			uint32_t v = u32(&r);
			memcpy(buf, &v, 4);
			memcpy(buf + 4, &v, 4);
			virtio_pci_bar_write(e.pci, (op & 0x20) ? 1 : 0, off, buf, len);
			break;
		}
		case 2: { /* configuration space read */
			uint32_t off = u8(&r);
			virtio_pci_cfg_read(e.pci, off, buf, len > 4 ? 3 : len);
			break;
		}
		case 3: { /* configuration space write */
			uint32_t off = u8(&r), v = u32(&r);
			memcpy(buf, &v, 4);
			virtio_pci_cfg_write(e.pci, off, buf, len > 4 ? 3 : len);
			break;
		}
		case 4: { /* ISR: read-to-clear, INTx lowered */
			uint8_t isr = 0;
			virtio_pci_bar_read(e.pci, 0, VIRTIO_PCI_ISR_OFFSET, &isr, 1);
			if (virtio_pci_isr_peek(e.pci) != 0 || g->intx)
				__builtin_trap();
			break;
		}
		case 5: { /* PCI_CFG window vs a direct read of a side-effect-free register */
			uint32_t regs[] = { VIRTIO_PCI_COMMON_OFFSET + (u8(&r) % 56u),
					    VIRTIO_PCI_DEVICE_OFFSET + (u8(&r) % DEV_CFG_BYTES) };
			uint32_t off = regs[op & 1], w = len > 4 ? 4 : len, direct = 0, via = 0;
			uint8_t cap[16] = { 0 };
			/* cap.bar = 0, cap.offset = off, cap.length = w (+4 .. +16) */
			memcpy(cap + 8, &off, 4);
			memcpy(cap + 12, &w, 4);
			virtio_pci_cfg_write(e.pci, VIRTIO_PCI_CAP_PCICFG_AT + 4, cap + 4, 1);
			virtio_pci_cfg_write(e.pci, VIRTIO_PCI_CAP_PCICFG_AT + 8, cap + 8, 4);
			virtio_pci_cfg_write(e.pci, VIRTIO_PCI_CAP_PCICFG_AT + 12, cap + 12, 4);
			virtio_pci_bar_read(e.pci, 0, off, &direct, w);
			virtio_pci_cfg_read(e.pci, VIRTIO_PCI_CAP_PCICFG_AT + 16, &via, 4);
			if (off + w <= VIRTIO_PCI_COMMON_OFFSET + 56u ||
			    (off >= VIRTIO_PCI_DEVICE_OFFSET && off + w <= VIRTIO_PCI_DEVICE_OFFSET +
			     DEV_CFG_BYTES)) {
				if ((via & (w == 4 ? ~0u : (1u << 8 * w) - 1)) != direct)
					__builtin_trap();
			}
			break;
		}
		case 6: { /* MSI-X table entry or PBA */
			uint32_t v = u8(&r) % (NQ + 2);
			uint32_t off = (op & 0x20) ? VIRTIO_PCI_MSIX_PBA_OFFSET + (u8(&r) % 16u)
						   : VIRTIO_PCI_MSIX_TABLE_OFFSET + 16 * v + (u8(&r) % 16u);
			if (op & 0x10)
				virtio_pci_bar_read(e.pci, 0, off, buf, len > 4 ? 4 : len);
			else
				fp_w(e.pci, off, u32(&r), len > 4 ? 4 : len);
			break;
		}
		case 7: /* device side: interrupts, config change, needs reset */
			e.in_register_access = false;
			if (op & 0x10)
				virtio_pci_signal_queue(e.pci, (uint16_t)(u8(&r) % (NQ + 1)));
			else if (op & 0x20)
				virtio_pci_config_changed(e.pci);
			else
				virtio_pci_needs_reset(e.pci);
			break;
		case 8: { /* a guest buffer, then a kick (ioeventfd path) */
			struct fseg s = { fg_alloc(g, 16, 8), 16, true };
			unsigned q = u8(&r) % NQ;
			e.in_register_access = false;
			if (g->alloc_next + 64 > RAM_BYTES)
				g->alloc_next = 0x1000;
			if (fvq[q].size && fvq[q].desc)
				fvq_add(&fvq[q], &s, 1);
			virtio_pci_notify(e.pci, (uint16_t)(u8(&r) % (NQ + 1)));
			break;
		}
		case 9: /* the event thread's poll */
			e.in_register_access = false;
			virtio_pci_poll(e.pci);
			break;
		case 10: /* driver setup from scratch */
			g->alloc_next = 0x1000;
			fp_setup(e.pci, g, (1ull << VIRTIO_F_VERSION_1) | (uint64_t)u8(&r) << 3, fvq,
				 NQ, QMAX, op & 0x20);
			break;
		case 11: /* status write */
			fp_w(e.pci, FP_COMMON(STATUS), u8(&r), 1);
			break;
		}
		e.in_register_access = false;
		for (uint16_t v = NQ + 1; v < 64; v++)
			if (virtio_pci_msix_pending(e.pci, v))
				__builtin_trap();
	}
	virtio_pci_destroy(e.pci);
	return 0;
}
