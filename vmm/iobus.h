/*
 * vmm/iobus.h — dispatch of guest port I/O and MMIO exits to device handlers.
 *
 * A bus is a sorted array of non-overlapping ranges [base, base + len), each
 * with a handler that receives the offset into its range.  Accesses nobody
 * claims read as all ones and writes are dropped; both are counted.
 *
 * Locking: a read-write lock; vCPU threads dispatch under the read lock,
 * registration (setup, a guest moving a PCI BAR) takes the write lock.  A
 * handler must therefore not (un)register ranges itself; the PCI bus
 * defers BAR moves for that reason (see pci.h).
 */
#ifndef EBB_VMM_IOBUS_H
#define EBB_VMM_IOBUS_H

#include <stdbool.h>
#include <stdint.h>

typedef void (*vmm_io_fn)(void *opaque, uint64_t offset, uint8_t *data, unsigned size,
			  bool is_write);

struct vmm_iobus;

struct vmm_iobus_stats {
	uint64_t nr_access;
	uint64_t nr_unclaimed;
};

int vmm_iobus_create(struct vmm_iobus **out);
void vmm_iobus_destroy(struct vmm_iobus *bus);

/* -EEXIST when the range overlaps one registered, -EINVAL for len 0 or
 * wrap-around, -ENOMEM. */
int vmm_iobus_register(struct vmm_iobus *bus, uint64_t base, uint64_t len, vmm_io_fn fn,
		       void *opaque);
/* -ENOENT when no range starts at base. */
int vmm_iobus_unregister(struct vmm_iobus *bus, uint64_t base);

/* GUEST: addr and size come from an exit.  Returns true when a handler
 * claimed the access (unclaimed reads are filled with 0xff). */
bool vmm_iobus_dispatch(struct vmm_iobus *bus, uint64_t addr, uint8_t *data, unsigned size,
			bool is_write);

void vmm_iobus_get_stats(struct vmm_iobus *bus, struct vmm_iobus_stats *out);

#endif
