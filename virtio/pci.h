/*
 * virtio/pci.h — the modern virtio-pci transport (virtio 1.x, section 4.1)
 * as a device model: a PCI function's configuration space with the virtio
 * vendor capabilities and an MSI-X capability, one 32-bit memory BAR (BAR0)
 * holding the common config, ISR, device config, notify area, MSI-X table
 * and PBA, the device-status state machine, and interrupt delivery through
 * the host's callbacks.
 *
 * The VMM's PCI bus forwards configuration-space accesses (config mechanism
 * #1) to virtio_pci_cfg_read/write and MMIO exits inside BAR0 to
 * virtio_pci_bar_read/write; a queue kick arriving on an ioeventfd bound to
 * virtio_pci_notify_offset(q) goes to virtio_pci_notify.  A device (console,
 * balloon) owns one transport, created with its `virtio_pci_device_ops`.
 * See docs/virtio.md for the wiring.
 *
 * BAR0 layout (VIRTIO_PCI_BAR0_SIZE bytes, each region 4 KiB aligned so a
 * VMM may route them separately): 0x0000 common config, 0x1000 ISR,
 * 0x2000 device config, 0x3000 notify (queue q at 0x3000 + 4*q),
 * 0x4000 MSI-X table, 0x5000 MSI-X PBA.
 */
#ifndef EBB_VIRTIO_PCI_H
#define EBB_VIRTIO_PCI_H

#include <linux/virtio_pci.h>

#include "virtio/virtio.h"
#include "virtio/vring.h"

#define VIRTIO_PCI_VENDOR_ID       0x1af4
#define VIRTIO_PCI_DEVICE_ID_BASE  0x1040 /* + VIRTIO_ID_* for modern devices */
#define VIRTIO_PCI_CFG_SPACE_SIZE  256

#define VIRTIO_PCI_BAR0_SIZE       0x8000u
#define VIRTIO_PCI_COMMON_OFFSET   0x0000u
#define VIRTIO_PCI_ISR_OFFSET      0x1000u
#define VIRTIO_PCI_DEVICE_OFFSET   0x2000u
#define VIRTIO_PCI_NOTIFY_OFFSET   0x3000u
#define VIRTIO_PCI_MSIX_TABLE_OFFSET 0x4000u
#define VIRTIO_PCI_MSIX_PBA_OFFSET 0x5000u
#define VIRTIO_PCI_NOTIFY_MULTIPLIER 4u   /* queue q kicks at NOTIFY_OFFSET + 4*q */

#define VIRTIO_PCI_MAX_QUEUES      64u    /* MSI-X vectors = queues + 1 (config) */
#define VIRTIO_PCI_DEVICE_CFG_MAX  0x1000u

/* Configuration-space layout of the capabilities (for tests and the docs). */
#define VIRTIO_PCI_CAP_COMMON_AT   0x40
#define VIRTIO_PCI_CAP_NOTIFY_AT   0x50
#define VIRTIO_PCI_CAP_ISR_AT      0x64
#define VIRTIO_PCI_CAP_DEVICE_AT   0x74
#define VIRTIO_PCI_CAP_PCICFG_AT   0x84
#define VIRTIO_PCI_CAP_MSIX_AT     0x98

/* What a device provides to its transport.  All calls on the event thread. */
struct virtio_pci_device_ops {
	/* Device-specific config space, off + len <= config_size_bytes. */
	void (*config_read)(void *dev, uint32_t off, void *buf, uint32_t len);
	void (*config_write)(void *dev, uint32_t off, const void *buf, uint32_t len);
	/* Optional: refuse a feature set (FEATURES_OK then stays clear). */
	bool (*features_ok)(void *dev, uint64_t features);
	/* Optional: the driver set DRIVER_OK. */
	void (*driver_ok)(void *dev);
	/* The driver kicked queue q (enabled, DRIVER_OK set). */
	void (*queue_notify)(void *dev, uint16_t q);
	/* Optional: device reset (status 0 written); queues already reset. */
	void (*reset)(void *dev);
};

struct virtio_pci_cfg {
	const struct virtio_host *host;
	const struct virtio_pci_device_ops *ops;
	void *dev;
	uint16_t virtio_device_id;     /* VIRTIO_ID_* */
	uint32_t pci_class;            /* 24-bit class code, e.g. 0x078000 */
	uint64_t device_features;      /* VIRTIO_F_VERSION_1 is always added */
	uint16_t nr_queues;            /* 1..VIRTIO_PCI_MAX_QUEUES */
	uint16_t queue_max_size;       /* power of 2, <= VIRTIO_VQ_MAX_SIZE */
	uint32_t config_size_bytes;    /* <= VIRTIO_PCI_DEVICE_CFG_MAX */
	struct virtio_dev_errors *errs; /* the device's counters */
	struct ebb_ratelimit *rl;    /* the device's log limiter */
};

struct virtio_pci;

int virtio_pci_create(const struct virtio_pci_cfg *cfg, struct virtio_pci **out);
void virtio_pci_destroy(struct virtio_pci *p);

/* --- called by the VMM ---------------------------------------------------- */

/* GUEST: configuration-space access, off < 256, len 1, 2 or 4 (little endian). */
void virtio_pci_cfg_read(struct virtio_pci *p, uint32_t off, void *data, uint32_t len);
void virtio_pci_cfg_write(struct virtio_pci *p, uint32_t off, const void *data, uint32_t len);
/* GUEST: BAR access, `off` relative to the BAR start, len 1, 2, 4 or 8. */
void virtio_pci_bar_read(struct virtio_pci *p, int bar, uint64_t off, void *data, uint32_t len);
void virtio_pci_bar_write(struct virtio_pci *p, int bar, uint64_t off, const void *data,
			  uint32_t len);
/*
 * Queue kick (ioeventfd fired for queue q): runs the device's queue work.
 * Call it on the event thread only.  Register accesses (virtio_pci_bar_*,
 * virtio_pci_cfg_*, arriving on vCPU threads) never run device work: a
 * notify-register write and DRIVER_OK only mark queues pending
 * (virtio_pci_has_pending), and the VMM runs them with virtio_pci_poll on
 * its event thread.
 */
void virtio_pci_notify(struct virtio_pci *p, uint16_t q);
/*
 * A device handles at most one queue size of chains per kick, so a guest
 * that keeps its rings full cannot monopolise the event thread.  Work left
 * over is deferred: when virtio_pci_has_pending() the VMM calls
 * virtio_pci_poll() again soon (e.g. its next loop iteration with a zero
 * timeout).  Returns whether work is still pending.
 */
bool virtio_pci_poll(struct virtio_pci *p);
bool virtio_pci_has_pending(const struct virtio_pci *p);
/* Offset of queue q's notify address inside BAR0 (for ioeventfd). */
uint64_t virtio_pci_notify_offset(const struct virtio_pci *p, uint16_t q);
/*
 * The whole configuration space as this model starts it (IDs, class,
 * capabilities, MSI-X) and its guest-writable bit mask, both
 * VIRTIO_PCI_CFG_SPACE_SIZE bytes (tests).  A PCI bus that keeps the
 * standard header and the BARs itself (vmm/pci.h) leaves the rest to the
 * transport instead: its capability list starts at VIRTIO_PCI_CAP_COMMON_AT,
 * guest config accesses from there on go to virtio_pci_cfg_read/write (the
 * PCI_CFG access window is computed on read), and the bus reports BAR0's
 * moves itself.  BAR0 is one 32-bit memory BAR of VIRTIO_PCI_BAR0_SIZE.
 */
void virtio_pci_cfg_layout(const struct virtio_pci *p, uint8_t *image, uint8_t *wmask);
/* Current BAR0 address; false while memory decoding is off or unassigned. */
bool virtio_pci_bar0(const struct virtio_pci *p, virtio_gpa_t *gpa);

/* --- called by the device ------------------------------------------------- */

struct virtio_vq *virtio_pci_vq(struct virtio_pci *p, uint16_t q);
uint16_t virtio_pci_nr_queues(const struct virtio_pci *p);
uint64_t virtio_pci_features(const struct virtio_pci *p);  /* negotiated */
uint8_t virtio_pci_status(const struct virtio_pci *p);
bool virtio_pci_driver_ok(const struct virtio_pci *p);
/* Used-buffer interrupt for queue q (call when virtio_vq_need_notify). */
void virtio_pci_signal_queue(struct virtio_pci *p, uint16_t q);
/* Device config changed: bumps config_generation, config interrupt. */
void virtio_pci_config_changed(struct virtio_pci *p);
/* Queue q has work left after a budget-limited pass: run it from _poll. */
void virtio_pci_defer(struct virtio_pci *p, uint16_t q);
/* Enter DEVICE_NEEDS_RESET (counted) and raise a config interrupt. */
void virtio_pci_needs_reset(struct virtio_pci *p);

/* Introspection for tests and metrics. */
uint8_t virtio_pci_isr_peek(const struct virtio_pci *p);
bool virtio_pci_msix_pending(const struct virtio_pci *p, uint16_t vector);

#endif /* EBB_VIRTIO_PCI_H */
