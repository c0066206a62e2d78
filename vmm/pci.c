/*
 * vmm/pci.c — PCI bus 0, configuration mechanism #1 and BAR mapping; see
 * pci.h for the device interface.
 *
 * Overview.  Config mechanism #1: the guest writes a dword address to 0xcf8
 * (bit 31 enable, bus 23:16, device 15:11, function 10:8, register 7:2),
 * then accesses 1, 2 or 4 bytes at 0xcfc + (register & 3).  Only dword
 * writes to 0xcf8 set the address (Linux's probe writes a byte to 0xcfb and
 * expects the dword to survive).  Each device has a 256-byte config space
 * and a write mask (a device with cap_ptr owns [0x40, 256) itself: the bus
 * keeps the header only); BAR registers are kept apart so that sizing
 * works: the guest writes all ones and reads back ~(size - 1) | type bits.
 * A BAR is mapped into the MMIO or PIO bus while its decode bit in the
 * command register is on and its address lies in its window; any change of
 * either re-evaluates that, and a change of the mapping is told to the
 * device (bar_changed).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/mptable.h"
#include "vmm/pci.h"

#define PCI_VENDOR_ID 0x00
#define PCI_COMMAND 0x04
#define PCI_CMD_IO 0x1
#define PCI_CMD_MEM 0x2
#define PCI_CMD_MASTER 0x4
#define PCI_CMD_INTX_DISABLE 0x400
#define PCI_STATUS 0x06
#define PCI_REVISION 0x08
#define PCI_CLASS_PROG 0x09
#define PCI_CACHE_LINE 0x0c
#define PCI_LATENCY 0x0d
#define PCI_HEADER_TYPE 0x0e
#define PCI_BAR0 0x10
#define PCI_SUBSYS_VENDOR 0x2c
#define PCI_SUBSYS_ID 0x2e
#define PCI_CAP_PTR 0x34
#define PCI_STATUS_CAP_LIST 0x10
#define PCI_CAPS 0x40           /* capabilities start here */
#define PCI_INT_LINE 0x3c
#define PCI_INT_PIN 0x3d

struct vmm_pci_bus;

struct bar_map {
	struct vmm_pci_dev *dev;
	unsigned index;
};

struct vmm_pci_dev {
	struct vmm_pci_bus *bus;
	struct vmm_pci_dev_cfg cfg;
	unsigned slot;
	unsigned gsi;
	uint8_t space[VMM_PCI_CFG_SPACE_BYTES];
	uint8_t wmask[VMM_PCI_CFG_SPACE_BYTES];
	uint32_t bar_reg[VMM_PCI_NR_BARS];     /* as the guest sees it */
	uint64_t bar_mapped[VMM_PCI_NR_BARS];  /* address mapped, or 0 */
	struct bar_map bar_ctx[VMM_PCI_NR_BARS];
};

struct vmm_pci_bus {
	pthread_mutex_t lock;          /* protects everything below */
	struct vmm_pci_bus_cfg cfg;
	uint32_t addr_reg;             /* 0xcf8 */
	struct vmm_pci_dev *slots[VMM_PCI_NR_SLOTS];
	uint64_t next_mmio;
	uint32_t next_io;
	struct vmm_pci_stats stats;
	struct ebb_ratelimit rl;
};

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

static void bar_io(void *opaque, uint64_t offset, uint8_t *data, unsigned size, bool is_write)
{
	struct bar_map *m = opaque;

	m->dev->cfg.ops->bar_io(m->dev->cfg.opaque, m->index, offset, data, size, is_write);
}

/* Maps or unmaps BAR i to match command register and BAR register.  Called
 * with bus->lock held. */
static void bar_update(struct vmm_pci_dev *dev, unsigned i)
{
	const struct vmm_pci_bar_cfg *b = &dev->cfg.bars[i];
	struct vmm_iobus *iobus = b->is_io ? dev->bus->cfg.pio : dev->bus->cfg.mmio;
	uint16_t cmd = (uint16_t)(dev->space[PCI_COMMAND] | dev->space[PCI_COMMAND + 1] << 8);
	uint64_t addr, lo, hi, want = 0, was = dev->bar_mapped[i];

	if (!b->size_bytes || !iobus)
		return;
	addr = dev->bar_reg[i] & (b->is_io ? ~3u : ~15u);
	lo = b->is_io ? VMM_PCI_IO_BASE : VMM_PCI_MMIO_BASE;
	hi = b->is_io ? VMM_PCI_IO_END : VMM_PCI_MMIO_END;
	if ((cmd & (b->is_io ? PCI_CMD_IO : PCI_CMD_MEM)) && addr >= lo && addr + b->size_bytes <= hi)
		want = addr;
	if (want == dev->bar_mapped[i])
		return;
	if (dev->bar_mapped[i]) {
		vmm_iobus_unregister(iobus, dev->bar_mapped[i]);
		dev->bar_mapped[i] = 0;
	}
	if (want) {
		if (vmm_iobus_register(iobus, want, b->size_bytes, bar_io, &dev->bar_ctx[i])) {
			uint64_t dropped = 0;

			/* GUEST: a guest can repeat this at will: limited, counted. */
			dev->bus->stats.nr_bar_map_failures++;
			if (ebb_ratelimit_ok(&dev->bus->rl, vmm_now_ns(), EBB_RATELIMIT_BURST,
					     EBB_RATELIMIT_WINDOW_NS, &dropped))
				vmm_logf(&dev->bus->cfg.log, EBB_LOG_WARN,
					 "pci: 00:%02x.0 BAR%u at 0x%llx overlaps another range; left"
					 " unmapped (%llu similar lines suppressed)", dev->slot, i,
					 (unsigned long long)want, (unsigned long long)dropped);
			else
				dev->bus->stats.nr_logs_suppressed++;
		} else {
			dev->bar_mapped[i] = want;
			dev->bus->stats.nr_bar_moves++;
		}
	}
	if (dev->bar_mapped[i] != was && dev->cfg.ops && dev->cfg.ops->bar_changed)
		dev->cfg.ops->bar_changed(dev->cfg.opaque, i, dev->bar_mapped[i]);
}

static int dev_init(struct vmm_pci_bus *bus, struct vmm_pci_dev *dev,
		    const struct vmm_pci_dev_cfg *cfg, unsigned slot)
{
	unsigned i;

	dev->bus = bus;
	dev->cfg = *cfg;
	dev->slot = slot;
	put16(dev->space + PCI_VENDOR_ID, cfg->vendor_id);
	put16(dev->space + PCI_VENDOR_ID + 2, cfg->device_id);
	dev->space[PCI_REVISION] = cfg->revision;
	dev->space[PCI_CLASS_PROG] = (uint8_t)cfg->class_code;
	put16(dev->space + PCI_CLASS_PROG + 1, (uint16_t)(cfg->class_code >> 8));
	put16(dev->space + PCI_SUBSYS_VENDOR, cfg->subsys_vendor_id);
	put16(dev->space + PCI_SUBSYS_ID, cfg->subsys_id);
	dev->wmask[PCI_COMMAND] = PCI_CMD_IO | PCI_CMD_MEM | PCI_CMD_MASTER;
	dev->wmask[PCI_COMMAND + 1] = PCI_CMD_INTX_DISABLE >> 8;
	dev->wmask[PCI_CACHE_LINE] = 0xff;
	dev->wmask[PCI_LATENCY] = 0xff;
	dev->wmask[PCI_INT_LINE] = 0xff;
	if (cfg->cap_ptr) {
		if (cfg->cap_ptr < PCI_CAPS || !cfg->ops || !cfg->ops->cfg_read || !cfg->ops->cfg_write)
			return -EINVAL;
		dev->space[PCI_STATUS] |= PCI_STATUS_CAP_LIST;
		dev->space[PCI_CAP_PTR] = cfg->cap_ptr;
	}
	if (cfg->irq_pin) {
		dev->gsi = VMM_PCI_INTX_FIRST_GSI + slot % VMM_PCI_INTX_NR_GSI;
		dev->space[PCI_INT_PIN] = 1;
		dev->space[PCI_INT_LINE] = (uint8_t)dev->gsi;
	}
	for (i = 0; i < VMM_PCI_NR_BARS; i++) {
		const struct vmm_pci_bar_cfg *b = &cfg->bars[i];
		uint32_t size = b->size_bytes;

		dev->bar_ctx[i] = (struct bar_map){ .dev = dev, .index = i };
		if (!size)
			continue;
		if ((size & (size - 1)) || size < (b->is_io ? 4u : 16u) || (b->is_io && size > 256) ||
		    !cfg->ops || !cfg->ops->bar_io)
			return -EINVAL;
		if (b->is_io) {
			uint32_t a = (bus->next_io + size - 1) & ~(size - 1);

			if (a + size > VMM_PCI_IO_END)
				return -ENOSPC;
			dev->bar_reg[i] = a | 1;
			bus->next_io = a + size;
		} else {
			uint64_t a = (bus->next_mmio + size - 1) & ~((uint64_t)size - 1);

			if (a + size > VMM_PCI_MMIO_END)
				return -ENOSPC;
			dev->bar_reg[i] = (uint32_t)a;
			bus->next_mmio = a + size;
		}
	}
	return 0;
}

int vmm_pci_bus_create(const struct vmm_pci_bus_cfg *cfg, struct vmm_pci_bus **out)
{
	static const struct vmm_pci_dev_cfg host_bridge = {
		/* Red Hat's generic host bridge ID; class 06.00.00. */
		.vendor_id = 0x1b36, .device_id = 0x0008, .class_code = 0x060000,
	};
	struct vmm_pci_bus *bus;
	int ret;

	*out = NULL;
	bus = calloc(1, sizeof(*bus));
	if (!bus)
		return -ENOMEM;
	if (pthread_mutex_init(&bus->lock, NULL)) {
		free(bus);
		return -ENOMEM;
	}
	bus->cfg = *cfg;
	bus->next_mmio = VMM_PCI_MMIO_BASE;
	bus->next_io = VMM_PCI_IO_BASE;
	bus->slots[0] = calloc(1, sizeof(struct vmm_pci_dev));
	if (!bus->slots[0]) {
		vmm_pci_bus_destroy(bus);
		return -ENOMEM;
	}
	ret = dev_init(bus, bus->slots[0], &host_bridge, 0);
	if (ret) {
		vmm_pci_bus_destroy(bus);
		return ret;
	}
	*out = bus;
	return 0;
}

void vmm_pci_bus_destroy(struct vmm_pci_bus *bus)
{
	unsigned s, i;

	if (!bus)
		return;
	for (s = 0; s < VMM_PCI_NR_SLOTS; s++) {
		struct vmm_pci_dev *dev = bus->slots[s];

		if (!dev)
			continue;
		for (i = 0; i < VMM_PCI_NR_BARS; i++) {
			if (dev->bar_mapped[i])
				vmm_iobus_unregister(dev->cfg.bars[i].is_io ? bus->cfg.pio : bus->cfg.mmio,
						     dev->bar_mapped[i]);
		}
		free(dev);
	}
	pthread_mutex_destroy(&bus->lock);
	free(bus);
}

int vmm_pci_add(struct vmm_pci_bus *bus, const struct vmm_pci_dev_cfg *cfg,
		struct vmm_pci_dev **out)
{
	struct vmm_pci_dev *dev;
	uint64_t saved_mmio;
	uint32_t saved_io;
	unsigned slot;
	int ret;

	*out = NULL;
	if (!cfg || cfg->irq_pin > 1)
		return -EINVAL;
	pthread_mutex_lock(&bus->lock);
	for (slot = 1; slot < VMM_PCI_NR_SLOTS && bus->slots[slot]; slot++)
		;
	if (slot == VMM_PCI_NR_SLOTS) {
		pthread_mutex_unlock(&bus->lock);
		return -ENOSPC;
	}
	dev = calloc(1, sizeof(*dev));
	if (!dev) {
		pthread_mutex_unlock(&bus->lock);
		return -ENOMEM;
	}
	saved_mmio = bus->next_mmio;
	saved_io = bus->next_io;
	ret = dev_init(bus, dev, cfg, slot);
	if (ret) {
		bus->next_mmio = saved_mmio;
		bus->next_io = saved_io;
		free(dev);
		pthread_mutex_unlock(&bus->lock);
		return ret;
	}
	bus->slots[slot] = dev;
	pthread_mutex_unlock(&bus->lock);
	*out = dev;
	return 0;
}

uint8_t *vmm_pci_dev_cfg(struct vmm_pci_dev *dev)
{
	return dev->space;
}

void vmm_pci_dev_set_wmask(struct vmm_pci_dev *dev, unsigned off, unsigned len, uint8_t mask)
{
	unsigned i, end = off + len;

	/* The standard header (below 0x40) stays the bus's. */
	if (end > VMM_PCI_CFG_SPACE_BYTES || end < off)
		end = VMM_PCI_CFG_SPACE_BYTES;
	for (i = off < 0x40 ? 0x40 : off; i < end; i++)
		dev->wmask[i] = mask;
}

uint64_t vmm_pci_dev_bar_addr(struct vmm_pci_dev *dev, unsigned bar)
{
	if (bar >= VMM_PCI_NR_BARS || !dev->cfg.bars[bar].size_bytes)
		return 0;
	return dev->bar_reg[bar] & (dev->cfg.bars[bar].is_io ? ~3u : ~15u);
}

uint64_t vmm_pci_dev_bar_mapped(struct vmm_pci_dev *dev, unsigned bar)
{
	uint64_t addr;

	if (bar >= VMM_PCI_NR_BARS)
		return 0;
	pthread_mutex_lock(&dev->bus->lock);
	addr = dev->bar_mapped[bar];
	pthread_mutex_unlock(&dev->bus->lock);
	return addr;
}

unsigned vmm_pci_dev_slot(struct vmm_pci_dev *dev)
{
	return dev->slot;
}

unsigned vmm_pci_dev_gsi(struct vmm_pci_dev *dev)
{
	return dev->gsi;
}

static uint32_t cfg_read_dword(struct vmm_pci_dev *dev, unsigned reg)
{
	if (reg >= PCI_BAR0 && reg < PCI_BAR0 + 4 * VMM_PCI_NR_BARS)
		return dev->bar_reg[(reg - PCI_BAR0) / 4];
	return (uint32_t)dev->space[reg] | (uint32_t)dev->space[reg + 1] << 8 |
	       (uint32_t)dev->space[reg + 2] << 16 | (uint32_t)dev->space[reg + 3] << 24;
}

/* GUEST: the merged dword value at reg (dword aligned), bytes [lo, hi) written. */
static void cfg_write_dword(struct vmm_pci_dev *dev, unsigned reg, uint32_t v, unsigned lo,
			    unsigned hi)
{
	uint8_t bytes[4];
	unsigned i;

	for (i = 0; i < 4; i++)
		bytes[i] = (uint8_t)(v >> (8 * i));
	if (dev->cfg.ops && dev->cfg.ops->cfg_write)
		dev->cfg.ops->cfg_write(dev->cfg.opaque, reg + lo, bytes + lo, hi - lo);
	if (reg >= PCI_CAPS && dev->cfg.cap_ptr)
		return;  /* the device's own */

	if (reg >= PCI_BAR0 && reg < PCI_BAR0 + 4 * VMM_PCI_NR_BARS) {
		unsigned b = (reg - PCI_BAR0) / 4;
		const struct vmm_pci_bar_cfg *bar = &dev->cfg.bars[b];

		if (!bar->size_bytes)
			return;
		if (bar->is_io)
			dev->bar_reg[b] = (v & ~(bar->size_bytes - 1) & ~3u) | 1;
		else
			dev->bar_reg[b] = v & ~(bar->size_bytes - 1) & ~15u;
		bar_update(dev, b);
		return;
	}
	for (i = lo; i < hi; i++) {
		uint8_t m = dev->wmask[reg + i];
		uint8_t byte = (uint8_t)(v >> (8 * i));

		dev->space[reg + i] = (uint8_t)((dev->space[reg + i] & ~m) | (byte & m));
	}
	if (reg == PCI_COMMAND)
		for (i = 0; i < VMM_PCI_NR_BARS; i++)
			bar_update(dev, i);
}

/* GUEST: port, size and data come straight from a vCPU's port I/O exit. */
void vmm_pci_config_io(struct vmm_pci_bus *bus, uint16_t port, uint8_t *data, unsigned size,
		       bool is_write)
{
	unsigned off = port - VMM_PCI_CONFIG_PORT;
	struct vmm_pci_dev *dev;
	unsigned reg, byte, devfn, i;
	uint32_t v;

	pthread_mutex_lock(&bus->lock);
	bus->stats.nr_cfg_access++;
	if (port < VMM_PCI_CONFIG_PORT || off >= VMM_PCI_CONFIG_NR_PORTS ||
	    (size != 1 && size != 2 && size != 4) || (off & 3) + size > 4) {
		bus->stats.nr_bad_cfg_access++;
		goto bad;
	}
	if (off < 4) {
		/* The address register only takes dword accesses. */
		if (size != 4)
			goto bad;
		if (is_write) {
			memcpy(&bus->addr_reg, data, 4);
			bus->addr_reg &= 0x80fffffcu;
		} else {
			memcpy(data, &bus->addr_reg, 4);
		}
		goto out;
	}
	devfn = (bus->addr_reg >> 8) & 0xff;
	if (!(bus->addr_reg & 0x80000000u) || ((bus->addr_reg >> 16) & 0xff) != 0 || (devfn & 7) ||
	    !(dev = bus->slots[devfn >> 3]))
		goto bad;
	reg = bus->addr_reg & 0xfc;
	byte = off & 3;
	if (is_write) {
		v = cfg_read_dword(dev, reg);
		for (i = 0; i < size; i++) {
			v &= ~(0xffu << (8 * (byte + i)));
			v |= (uint32_t)data[i] << (8 * (byte + i));
		}
		cfg_write_dword(dev, reg, v, byte, byte + size);
	} else {
		v = reg >= PCI_CAPS && dev->cfg.cap_ptr ? 0 : cfg_read_dword(dev, reg);
		for (i = 0; i < size; i++)
			data[i] = (uint8_t)(v >> (8 * (byte + i)));
		if (dev->cfg.ops && dev->cfg.ops->cfg_read)
			dev->cfg.ops->cfg_read(dev->cfg.opaque, reg + byte, data, size);
	}
	goto out;
bad:
	if (!is_write)
		memset(data, 0xff, size);
out:
	pthread_mutex_unlock(&bus->lock);
}

unsigned vmm_pci_irq_routes(struct vmm_pci_bus *bus, struct vmm_mptable_pci_irq *out,
			    unsigned max)
{
	unsigned s, n = 0;

	pthread_mutex_lock(&bus->lock);
	for (s = 0; s < VMM_PCI_NR_SLOTS && n < max; s++) {
		struct vmm_pci_dev *dev = bus->slots[s];

		if (!dev || !dev->gsi)
			continue;
		out[n++] = (struct vmm_mptable_pci_irq){
			.dev = (uint8_t)s, .pin = 1, .ioapic_pin = (uint8_t)dev->gsi,
		};
	}
	pthread_mutex_unlock(&bus->lock);
	return n;
}

void vmm_pci_get_stats(struct vmm_pci_bus *bus, struct vmm_pci_stats *out)
{
	pthread_mutex_lock(&bus->lock);
	*out = bus->stats;
	pthread_mutex_unlock(&bus->lock);
}
