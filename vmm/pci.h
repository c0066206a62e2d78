/*
 * vmm/pci.h — a PCI bus 0 with a host bridge at 00.0, configuration
 * mechanism #1 (ports 0xcf8 address, 0xcfc-0xcff data), and the interface
 * through which device models (virtio-pci and others) plug in.
 *
 * A device supplies IDs, class, up to six 32-bit BARs (memory or I/O) and an
 * optional INTx pin, plus callbacks: BAR accesses (on vCPU threads), BAR
 * mapping changes, and optional notifications of config-space writes (for
 * capabilities such as MSI-X).  The standard header (below 0x40) and the BARs
 * are the bus's alone.  The capabilities are either laid out by the device in
 * the bus's image (vmm_pci_dev_cfg() and vmm_pci_dev_set_wmask()), or, with
 * cap_ptr, owned by the device model outright (virtio-pci: one copy, the
 * transport's).  The bus assigns the slot, BAR addresses (in the PCI hole
 * below 4 GiB, or in the I/O window) and the INTx GSI, maps BARs into the
 * VM's MMIO / PIO buses while the guest has decoding enabled, follows the
 * guest when it moves a BAR, and tells the device where its BARs are mapped.
 *
 * Interrupts and doorbells are the VM's business, not the bus's: see
 * vmm_vm_irq_line(), vmm_vm_signal_msi() and vmm_vm_ioeventfd() in vm.h.
 *
 * Locking: one mutex protects config space and BAR state; the BAR callbacks
 * run without it (under the I/O bus read lock), the cfg callbacks with it
 * held (they must not call back into the bus).  Lock order: pci -> iobus.
 */
#ifndef EBB_VMM_PCI_H
#define EBB_VMM_PCI_H

#include <stdbool.h>
#include <stdint.h>

#include "vmm/iobus.h"
#include "client/log.h"

#define VMM_PCI_CONFIG_PORT 0xcf8
#define VMM_PCI_CONFIG_NR_PORTS 8
#define VMM_PCI_CFG_SPACE_BYTES 256
#define VMM_PCI_NR_SLOTS 32
#define VMM_PCI_NR_BARS 6
#define VMM_PCI_MMIO_BASE 0xc0000000ull  /* start of the PCI hole */
#define VMM_PCI_MMIO_END  0xfec00000ull  /* I/O APIC above */
#define VMM_PCI_IO_BASE 0xc000u
#define VMM_PCI_IO_END  0x10000u
#define VMM_PCI_INTX_FIRST_GSI 16       /* I/O APIC pins 16..23 */
#define VMM_PCI_INTX_NR_GSI 8

struct vmm_pci_dev_ops {
	/* GUEST: access at offset (< BAR size, offset + size within it). */
	void (*bar_io)(void *opaque, unsigned bar, uint64_t offset, uint8_t *data, unsigned size,
		       bool is_write);
	/* Optional: the guest wrote data[0..size) at off (any offset; the bus
	 * has already applied it to its image through the write mask).  For
	 * device models that keep their own copy (virtio_pci_cfg_write). */
	void (*cfg_write)(void *opaque, unsigned off, const uint8_t *data, unsigned size);
	/* Optional: the guest reads [off, off + size); data holds what the bus
	 * computed and the device may replace it (virtio_pci_cfg_read). */
	void (*cfg_read)(void *opaque, unsigned off, uint8_t *data, unsigned size);
	/* Optional: BAR `bar` is now mapped at `mapped` (0: unmapped: decoding
	 * off, outside its window, or refused for an overlap).  Called with the
	 * bus lock held, once per real change, so a guest rewriting the same
	 * value costs nothing. */
	void (*bar_changed)(void *opaque, unsigned bar, uint64_t mapped);
};

struct vmm_pci_bar_cfg {
	uint32_t size_bytes;   /* 0: unused; else a power of two (>= 16 mem, >= 4 io) */
	bool is_io;
};

struct vmm_pci_dev_cfg {
	uint16_t vendor_id, device_id;
	uint16_t subsys_vendor_id, subsys_id;
	uint32_t class_code;   /* class << 16 | subclass << 8 | prog-if */
	uint8_t revision;
	uint8_t irq_pin;       /* 0: none, 1: INTA */
	/* Nonzero: the device owns config space [0x40, 256), its capability
	 * list starting at cap_ptr (status gets the capability-list bit).  The
	 * bus then keeps no image there: reads are the device's cfg_read (data
	 * zeroed first), writes go to its cfg_write only. */
	uint8_t cap_ptr;
	struct vmm_pci_bar_cfg bars[VMM_PCI_NR_BARS];
	const struct vmm_pci_dev_ops *ops;
	void *opaque;
};

struct vmm_pci_bus_cfg {
	struct vmm_iobus *mmio;   /* BARs are mapped here ... */
	struct vmm_iobus *pio;    /* ... and here */
	struct vmm_log log;
};

struct vmm_pci_bus;
struct vmm_pci_dev;

int vmm_pci_bus_create(const struct vmm_pci_bus_cfg *cfg, struct vmm_pci_bus **out);
void vmm_pci_bus_destroy(struct vmm_pci_bus *bus);

/* Adds a device in the next free slot (the host bridge holds slot 0).
 * -ENOSPC: no slot or window space left; -EINVAL: bad BAR sizes. */
int vmm_pci_add(struct vmm_pci_bus *bus, const struct vmm_pci_dev_cfg *cfg,
		struct vmm_pci_dev **out);

/* The device's config space (256 bytes), to lay out capabilities before the
 * guest runs, and the mask of bits the guest may write there. */
uint8_t *vmm_pci_dev_cfg(struct vmm_pci_dev *dev);
void vmm_pci_dev_set_wmask(struct vmm_pci_dev *dev, unsigned off, unsigned len, uint8_t mask);
uint64_t vmm_pci_dev_bar_addr(struct vmm_pci_dev *dev, unsigned bar);
/* Where BAR `bar` is mapped now, or 0: decoding off, outside its window, or
 * refused for overlapping another range.  Takes the bus lock (do not call
 * from a cfg callback). */
uint64_t vmm_pci_dev_bar_mapped(struct vmm_pci_dev *dev, unsigned bar);
unsigned vmm_pci_dev_slot(struct vmm_pci_dev *dev);
unsigned vmm_pci_dev_gsi(struct vmm_pci_dev *dev);  /* INTx GSI, 0 when no pin */

/* GUEST: one access to ports 0xcf8-0xcff (port is absolute). */
void vmm_pci_config_io(struct vmm_pci_bus *bus, uint16_t port, uint8_t *data, unsigned size,
		       bool is_write);

/* INTx routes for the MP table: fills up to max (dev, pin, ioapic pin). */
struct vmm_mptable_pci_irq;
unsigned vmm_pci_irq_routes(struct vmm_pci_bus *bus, struct vmm_mptable_pci_irq *out,
			    unsigned max);

struct vmm_pci_stats {
	uint64_t nr_cfg_access;
	uint64_t nr_bad_cfg_access;   /* misaligned, crossing a dword, bus != 0 */
	uint64_t nr_bar_moves;
	uint64_t nr_bar_map_failures; /* guest put a BAR on top of something */
	uint64_t nr_logs_suppressed;  /* lines about it the limiter dropped */
};
void vmm_pci_get_stats(struct vmm_pci_bus *bus, struct vmm_pci_stats *out);

#endif
