/*
 * tests/fuzz/fuzz_vmm_io.c — libFuzzer target for what a guest's port I/O
 * reaches in ebb's VMM without KVM: the 16550A (vmm/serial.c), the PCI bus
 * with configuration mechanism #1 and a device with memory and I/O BARs
 * (vmm/pci.c), and the I/O buses (vmm/iobus.c).  The input is a sequence of
 * 8-byte records: op, port/offset, size, value — interleaved with host
 * console input.  Invariants: no crash, no out-of-bounds access, the UART's
 * interrupt callback only on level changes.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/iobus.h"
#include "vmm/pci.h"
#include "vmm/serial.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool irq_level;

static void tx(void *opaque, uint8_t b)
{
	(void)opaque;
	(void)b;
}

static void set_irq(void *opaque, bool level)
{
	(void)opaque;
	if (level == irq_level)
		abort();
	irq_level = level;
}

static void bar_io(void *opaque, unsigned bar, uint64_t offset, uint8_t *d, unsigned size,
		   bool is_write)
{
	(void)opaque;
	if (bar >= VMM_PCI_NR_BARS || offset + size > 4096)
		abort();
	if (!is_write)
		memset(d, 0x11, size);
}

static void cfg_write(void *opaque, unsigned off, const uint8_t *d, unsigned size)
{
	(void)opaque;
	(void)d;
	if (off + size > VMM_PCI_CFG_SPACE_BYTES)
		abort();
}

static const struct vmm_pci_dev_ops ops = { .bar_io = bar_io, .cfg_write = cfg_write };

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vmm_serial_cfg scfg = { .tx = tx, .set_irq = set_irq };
	struct vmm_pci_dev_cfg dcfg = {
		.vendor_id = 0x1af4, .device_id = 0x1045, .irq_pin = 1, .ops = &ops,
		.bars = { [0] = { .size_bytes = 4096 }, [1] = { .size_bytes = 64, .is_io = true } },
	};
	struct vmm_iobus *mmio = NULL, *pio = NULL;
	struct vmm_pci_bus *bus = NULL;
	struct vmm_pci_dev *dev;
	struct vmm_serial *uart = NULL;
	size_t i;

	irq_level = false;
	if (vmm_iobus_create(&mmio) || vmm_iobus_create(&pio) || vmm_serial_create(&scfg, &uart))
		goto out;
	{
		struct vmm_pci_bus_cfg bcfg = { .mmio = mmio, .pio = pio };

		if (vmm_pci_bus_create(&bcfg, &bus) || vmm_pci_add(bus, &dcfg, &dev))
			goto out;
	}
	for (i = 0; i + 8 <= size; i += 8) {
		const uint8_t *r = data + i;
		uint16_t port = (uint16_t)(r[1] | r[2] << 8);
		unsigned sz = 1u << (r[3] & 3);  /* 1, 2, 4, 8 */
		uint8_t buf[8];

		memcpy(buf, r + 4, 4);
		memcpy(buf + 4, r + 4, 4);
		switch (r[0] & 7) {
		case 0: /* UART access (offset may be anything) */
			vmm_serial_io(uart, port & 0xf, buf, sz > 4 ? 4 : sz, r[0] & 8);
			break;
		case 1: /* host console input */
			vmm_serial_rx(uart, r + 1, 7);
			break;
		case 2: /* config mechanism #1, any port near 0xcf8 */
			vmm_pci_config_io(bus, (uint16_t)(0xcf0 + (port & 0x1f)), buf, sz > 4 ? 4 : sz,
					  r[0] & 8);
			break;
		case 3: /* set the config address to something near our device */
		{
			uint32_t a = 0x80000000u | (uint32_t)(r[1] & 0x0f) << 11 | (r[2] & 0xfc);

			vmm_pci_config_io(bus, 0xcf8, (uint8_t *)&a, 4, true);
			break;
		}
		case 4: /* MMIO near the BAR window */
			vmm_iobus_dispatch(mmio, VMM_PCI_MMIO_BASE + (uint64_t)port * 4 - 0x100, buf, sz,
					   r[0] & 8);
			break;
		case 5: /* PIO near the I/O window */
			vmm_iobus_dispatch(pio, (uint64_t)VMM_PCI_IO_BASE + (port & 0x3ff) - 0x10, buf,
					   sz > 4 ? 4 : sz, r[0] & 8);
			break;
		default: /* anywhere */
			vmm_iobus_dispatch(pio, port, buf, sz, r[0] & 8);
			break;
		}
	}
out:
	vmm_pci_bus_destroy(bus);
	vmm_serial_destroy(uart);
	vmm_iobus_destroy(mmio);
	vmm_iobus_destroy(pio);
	return 0;
}
