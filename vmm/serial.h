/*
 * vmm/serial.h — a 16550A UART (8250 family) as the guest's console on COM1
 * (ports 0x3f8-0x3ff, ISA IRQ 4).
 *
 * The model transmits at once (THR is always empty again after a write),
 * keeps a 16-byte RX FIFO fed from a larger backlog of host input, and
 * computes the interrupt line from IER/IIR like the real part:
 * line status > received data > THR empty > modem status.  The THRE
 * interrupt is raised when THR becomes empty or when the guest enables
 * ETBEI while it is empty, and cleared by reading IIR (when it is the
 * reported source) or by writing THR — the semantics Linux's 8250 driver
 * depends on.  Loopback (MCR bit 4) is modelled because the driver's probe
 * uses it.
 *
 * Locking: one mutex per device protects all of it; vmm_serial_io() runs on
 * vCPU threads, vmm_serial_rx() on the event thread.  The tx and set_irq
 * callbacks are called with that mutex held and must not re-enter the device.
 * set_irq is only called when the line level changes (each call is an ioctl).
 */
#ifndef EBB_VMM_SERIAL_H
#define EBB_VMM_SERIAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "client/log.h"

#define VMM_COM1_PORT 0x3f8
#define VMM_COM1_IRQ 4
#define VMM_SERIAL_NR_PORTS 8
#define VMM_SERIAL_FIFO_BYTES 16
#define VMM_SERIAL_BACKLOG_BYTES 4096

struct vmm_serial_cfg {
	void (*tx)(void *opaque, uint8_t byte);
	void (*set_irq)(void *opaque, bool level);
	void *opaque;
	struct vmm_log log;
};

struct vmm_serial_stats {
	uint64_t nr_tx_bytes;
	uint64_t nr_rx_bytes;          /* delivered to the guest */
	uint64_t nr_rx_dropped_bytes;  /* host input dropped: backlog full */
	uint64_t nr_irq_changes;
	uint64_t nr_bad_access;        /* wrong size or offset */
};

struct vmm_serial;

int vmm_serial_create(const struct vmm_serial_cfg *cfg, struct vmm_serial **out);
void vmm_serial_destroy(struct vmm_serial *s);

/* GUEST: one port access, offset 0..7 from the base, size in bytes (only 1 is
 * meaningful; wider accesses are split by the caller or read as 0xff). */
void vmm_serial_io(struct vmm_serial *s, unsigned offset, uint8_t *data, unsigned size,
		   bool is_write);

/* Host input for the guest.  Returns the bytes accepted (the rest dropped and
 * counted when the backlog is full). */
size_t vmm_serial_rx(struct vmm_serial *s, const uint8_t *buf, size_t len);

void vmm_serial_get_stats(struct vmm_serial *s, struct vmm_serial_stats *out);

#endif
