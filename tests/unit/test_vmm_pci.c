/*
 * tests/unit/test_vmm_pci.c — the PCI bus (vmm/pci.c) through configuration
 * mechanism #1 exactly as a guest drives it: Linux's conf1 probe, the host
 * bridge, absent devices, BAR sizing, decode enable mapping BARs into the
 * I/O buses so accesses reach the device, the guest moving a BAR, write
 * masks, INTx routes for the MP table, and malformed accesses.  Also the
 * I/O bus itself (vmm/iobus.c): overlaps, unclaimed and straddling accesses.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "vmm/iobus.h"
#include "vmm/mptable.h"
#include "vmm/pci.h"

struct fake_dev {
	unsigned nr_bar_io;
	unsigned last_bar;
	uint64_t last_offset;
	unsigned last_size;
	bool last_write;
	uint8_t last_data;
	unsigned nr_cfg_writes;
	unsigned last_cfg_off, last_cfg_size;
	uint8_t last_cfg_data[4];
	unsigned nr_bar_changed;
	unsigned last_changed_bar;
	uint64_t last_mapped;
};

static void fake_bar_io(void *opaque, unsigned bar, uint64_t offset, uint8_t *data, unsigned size,
			bool is_write)
{
	struct fake_dev *f = opaque;

	f->nr_bar_io++;
	f->last_bar = bar;
	f->last_offset = offset;
	f->last_size = size;
	f->last_write = is_write;
	if (is_write)
		f->last_data = data[0];
	else
		memset(data, 0x77, size);
}

static void fake_cfg_write(void *opaque, unsigned off, const uint8_t *data, unsigned size)
{
	struct fake_dev *f = opaque;

	f->nr_cfg_writes++;
	f->last_cfg_off = off;
	f->last_cfg_size = size;
	memcpy(f->last_cfg_data, data, size);
}

/* The device owns dword 0x50: it answers reads there itself. */
static void fake_cfg_read(void *opaque, unsigned off, uint8_t *data, unsigned size)
{
	if (off >= 0x50 && off < 0x54)
		memset(data, 0xc3, size);
}

static void fake_bar_changed(void *opaque, unsigned bar, uint64_t mapped)
{
	struct fake_dev *f = opaque;

	f->nr_bar_changed++;
	f->last_changed_bar = bar;
	f->last_mapped = mapped;
}

static const struct vmm_pci_dev_ops fake_ops = {
	.bar_io = fake_bar_io, .cfg_write = fake_cfg_write, .cfg_read = fake_cfg_read,
};

/* A device that owns its capabilities and follows its BARs (virtio-pci). */
static const struct vmm_pci_dev_ops owner_ops = {
	.bar_io = fake_bar_io, .cfg_write = fake_cfg_write, .cfg_read = fake_cfg_read,
	.bar_changed = fake_bar_changed,
};

struct env {
	struct vmm_iobus *mmio, *pio;
	struct vmm_pci_bus *bus;
};

static void setup(struct env *e)
{
	struct vmm_pci_bus_cfg cfg;

	assert_int_equal(vmm_iobus_create(&e->mmio), 0);
	assert_int_equal(vmm_iobus_create(&e->pio), 0);
	cfg = (struct vmm_pci_bus_cfg){ .mmio = e->mmio, .pio = e->pio };
	assert_int_equal(vmm_pci_bus_create(&cfg, &e->bus), 0);
}

static void teardown(struct env *e)
{
	vmm_pci_bus_destroy(e->bus);
	vmm_iobus_destroy(e->mmio);
	vmm_iobus_destroy(e->pio);
}

static void outl(struct env *e, uint16_t port, uint32_t v)
{
	vmm_pci_config_io(e->bus, port, (uint8_t *)&v, 4, true);
}

static uint32_t inl(struct env *e, uint16_t port)
{
	uint32_t v = 0;

	vmm_pci_config_io(e->bus, port, (uint8_t *)&v, 4, false);
	return v;
}

static uint32_t cfg_read(struct env *e, unsigned dev, unsigned reg)
{
	outl(e, 0xcf8, 0x80000000u | dev << 11 | reg);
	return inl(e, 0xcfc);
}

static void cfg_write(struct env *e, unsigned dev, unsigned reg, uint32_t v)
{
	outl(e, 0xcf8, 0x80000000u | dev << 11 | reg);
	outl(e, 0xcfc, v);
}

static void test_conf1_probe_and_host_bridge(void **state)
{
	struct env e;
	uint8_t b = 0x01;
	uint16_t w;

	setup(&e);
	/* arch/x86/pci/direct.c: outb(0x01, 0xcfb); outl(0x80000000, 0xcf8); inl. */
	vmm_pci_config_io(e.bus, 0xcfb, &b, 1, true);
	outl(&e, 0xcf8, 0x80000000u);
	assert_int_equal(inl(&e, 0xcf8), 0x80000000u);
	assert_int_equal(cfg_read(&e, 0, 0x00), 0x00081b36u);  /* device << 16 | vendor */
	assert_int_equal(cfg_read(&e, 0, 0x08) >> 8, 0x060000);  /* host bridge class */
	assert_int_equal(cfg_read(&e, 5, 0x00), 0xffffffffu);     /* nobody home */
	/* Partial reads at byte offsets within the dword. */
	outl(&e, 0xcf8, 0x80000000u | 0x00);
	vmm_pci_config_io(e.bus, 0xcfe, (uint8_t *)&w, 2, false);
	assert_int_equal(w, 0x0008);
	/* Enable bit off, other bus, other function: all ones. */
	outl(&e, 0xcf8, 0x00000000u);
	assert_int_equal(inl(&e, 0xcfc), 0xffffffffu);
	outl(&e, 0xcf8, 0x80010000u);
	assert_int_equal(inl(&e, 0xcfc), 0xffffffffu);
	outl(&e, 0xcf8, 0x80000100u);
	assert_int_equal(inl(&e, 0xcfc), 0xffffffffu);
	/* Vendor ID is read-only. */
	cfg_write(&e, 0, 0x00, 0x12345678);
	assert_int_equal(cfg_read(&e, 0, 0x00), 0x00081b36u);
	teardown(&e);
}

static void test_device_bars(void **state)
{
	struct vmm_pci_dev_cfg cfg = {
		.vendor_id = 0x1af4, .device_id = 0x1045, .class_code = 0x00ff00, .irq_pin = 1,
		.bars = { [0] = { .size_bytes = 4096 }, [2] = { .size_bytes = 32, .is_io = true } },
		.ops = &fake_ops,
	};
	struct fake_dev f = { 0 };
	struct vmm_pci_dev *dev;
	struct vmm_pci_stats st;
	struct env e;
	uint64_t mem, io;
	uint32_t v;
	unsigned slot;
	uint8_t data[4] = { 0xab };

	setup(&e);
	cfg.opaque = &f;
	assert_int_equal(vmm_pci_add(e.bus, &cfg, &dev), 0);
	slot = vmm_pci_dev_slot(dev);
	assert_int_equal(slot, 1);
	assert_int_equal(cfg_read(&e, slot, 0), 0x10451af4u);
	mem = vmm_pci_dev_bar_addr(dev, 0);
	io = vmm_pci_dev_bar_addr(dev, 2);
	assert_true(mem >= VMM_PCI_MMIO_BASE && mem % 4096 == 0);
	assert_true(io >= VMM_PCI_IO_BASE && io % 32 == 0);
	assert_int_equal(cfg_read(&e, slot, 0x10), (uint32_t)mem);
	assert_int_equal(cfg_read(&e, slot, 0x18), (uint32_t)io | 1);
	assert_int_equal(cfg_read(&e, slot, 0x14), 0);           /* unused BAR */

	/* Sizing: all ones reads back the size mask with the type bits. */
	cfg_write(&e, slot, 0x10, 0xffffffffu);
	assert_int_equal(cfg_read(&e, slot, 0x10), 0xfffff000u);
	cfg_write(&e, slot, 0x18, 0xffffffffu);
	assert_int_equal(cfg_read(&e, slot, 0x18), 0xffffffe1u);
	cfg_write(&e, slot, 0x14, 0xffffffffu);
	assert_int_equal(cfg_read(&e, slot, 0x14), 0);
	cfg_write(&e, slot, 0x10, (uint32_t)mem);
	cfg_write(&e, slot, 0x18, (uint32_t)io);

	/* Decode off: nothing mapped. */
	assert_false(vmm_iobus_dispatch(e.mmio, mem, data, 1, true));
	cfg_write(&e, slot, 0x04, 0x3);                           /* IO | MEM */
	assert_true(vmm_iobus_dispatch(e.mmio, mem + 0x10, data, 1, true));
	assert_int_equal(f.last_bar, 0);
	assert_int_equal(f.last_offset, 0x10);
	assert_int_equal(f.last_data, 0xab);
	assert_true(vmm_iobus_dispatch(e.pio, io + 4, data, 4, false));
	assert_int_equal(f.last_bar, 2);
	assert_int_equal(f.last_offset, 4);
	assert_int_equal(data[3], 0x77);
	/* An access straddling the BAR's end is not the device's. */
	assert_false(vmm_iobus_dispatch(e.mmio, mem + 4094, data, 4, false));

	/* The guest moves BAR0: old address dead, new one live. */
	cfg_write(&e, slot, 0x10, (uint32_t)mem + 0x100000);
	assert_false(vmm_iobus_dispatch(e.mmio, mem, data, 1, false));
	assert_true(vmm_iobus_dispatch(e.mmio, mem + 0x100000, data, 1, false));
	/* Outside the window: left unmapped rather than mapped over RAM. */
	cfg_write(&e, slot, 0x10, 0x1000);
	assert_false(vmm_iobus_dispatch(e.mmio, 0x1000, data, 1, false));
	/* Decode off again unmaps everything. */
	cfg_write(&e, slot, 0x10, (uint32_t)mem);
	cfg_write(&e, slot, 0x04, 0x0);
	assert_false(vmm_iobus_dispatch(e.mmio, mem, data, 1, false));
	assert_false(vmm_iobus_dispatch(e.pio, io, data, 1, false));

	/* Interrupt line and pin; the INTx route for the MP table. */
	v = cfg_read(&e, slot, 0x3c);
	assert_int_equal((v >> 8) & 0xff, 1);
	assert_int_equal(v & 0xff, vmm_pci_dev_gsi(dev));
	cfg_write(&e, slot, 0x3c, 0x0000000b);
	assert_int_equal(cfg_read(&e, slot, 0x3c) & 0xffff, 0x010b);  /* line writable, pin not */
	{
		struct vmm_mptable_pci_irq r[4];

		assert_int_equal(vmm_pci_irq_routes(e.bus, r, 4), 1);
		assert_int_equal(r[0].dev, slot);
		assert_int_equal(r[0].pin, 1);
		assert_int_equal(r[0].ioapic_pin, vmm_pci_dev_gsi(dev));
		assert_true(r[0].ioapic_pin >= 16 && r[0].ioapic_pin < 24);
	}

	/* Capabilities: only bits the device opened are guest-writable; the
	 * device hears about every write with the bytes as written, and may
	 * answer reads itself. */
	f.nr_cfg_writes = 0;
	vmm_pci_dev_cfg(dev)[0x40] = 0x11;
	vmm_pci_dev_set_wmask(dev, 0x41, 1, 0xf0);
	cfg_write(&e, slot, 0x40, 0xffffffffu);
	assert_int_equal(cfg_read(&e, slot, 0x40) & 0xffff, 0xf011);
	assert_int_equal(f.nr_cfg_writes, 1);
	assert_int_equal(f.last_cfg_off, 0x40);
	assert_int_equal(f.last_cfg_size, 4);
	assert_int_equal(f.last_cfg_data[0], 0xff);
	{
		uint8_t b = 0x5a;

		outl(&e, 0xcf8, 0x80000000u | slot << 11 | 0x44);
		vmm_pci_config_io(e.bus, 0xcfe, &b, 1, true);
		assert_int_equal(f.last_cfg_off, 0x46);
		assert_int_equal(f.last_cfg_size, 1);
		assert_int_equal(f.last_cfg_data[0], 0x5a);
	}
	assert_int_equal(cfg_read(&e, slot, 0x50), 0xc3c3c3c3u);
	assert_int_equal(cfg_read(&e, slot, 0x54), 0);

	vmm_pci_get_stats(e.bus, &st);
	assert_true(st.nr_bar_moves >= 3);
	teardown(&e);
}

/*
 * Issue 11 #3: where a BAR is really mapped (what the VMM registers its
 * ioeventfds at): nowhere while decoding is off, outside the window, or on
 * top of another device's BAR.
 */
static void test_bar_mapped_only_when_decoding_in_window_alone(void **state)
{
	struct vmm_pci_dev_cfg cfg = {
		.vendor_id = 0x1af4, .device_id = 0x1045, .class_code = 0x00ff00,
		.bars = { [0] = { .size_bytes = 0x8000 } }, .ops = &fake_ops,
	};
	struct fake_dev f1 = { 0 }, f2 = { 0 };
	struct vmm_pci_dev *d1, *d2;
	struct env e;
	uint64_t a1, a2;
	unsigned s1, s2;

	setup(&e);
	cfg.opaque = &f1;
	assert_int_equal(vmm_pci_add(e.bus, &cfg, &d1), 0);
	cfg.opaque = &f2;
	assert_int_equal(vmm_pci_add(e.bus, &cfg, &d2), 0);
	s1 = vmm_pci_dev_slot(d1);
	s2 = vmm_pci_dev_slot(d2);
	a1 = vmm_pci_dev_bar_addr(d1, 0);
	a2 = vmm_pci_dev_bar_addr(d2, 0);
	assert_int_equal(vmm_pci_dev_bar_mapped(d1, 0), 0);      /* decoding off */
	cfg_write(&e, s1, 0x04, 0x2);
	cfg_write(&e, s2, 0x04, 0x2);
	assert_int_equal(vmm_pci_dev_bar_mapped(d1, 0), a1);
	assert_int_equal(vmm_pci_dev_bar_mapped(d2, 0), a2);
	cfg_write(&e, s2, 0x10, (uint32_t)a1);                     /* onto device 1 */
	assert_int_equal(vmm_pci_dev_bar_addr(d2, 0), a1);
	assert_int_equal(vmm_pci_dev_bar_mapped(d2, 0), 0);
	assert_int_equal(vmm_pci_dev_bar_mapped(d1, 0), a1);
	/* A storm of moves onto device 1: refused each time, lines bounded. */
	{
		struct vmm_pci_stats st;

		for (unsigned i = 0; i < 5000; i++)
			cfg_write(&e, s2, 0x10, (uint32_t)a1 + (i % 2) * 0x8000);
		vmm_pci_get_stats(e.bus, &st);
		assert_true(st.nr_bar_map_failures >= 2500);
		/* at most a burst per 5 s window (the loop takes far less) */
		assert_true(st.nr_bar_map_failures - st.nr_logs_suppressed <= 2 * EBB_RATELIMIT_BURST);
		assert_true(st.nr_logs_suppressed > 0);
		cfg_write(&e, s2, 0x10, (uint32_t)a1);
	}
	cfg_write(&e, s2, 0x10, 0x10000);                          /* guest RAM */
	assert_int_equal(vmm_pci_dev_bar_mapped(d2, 0), 0);
	cfg_write(&e, s2, 0x10, (uint32_t)a2);
	assert_int_equal(vmm_pci_dev_bar_mapped(d2, 0), a2);
	cfg_write(&e, s1, 0x04, 0x0);
	assert_int_equal(vmm_pci_dev_bar_mapped(d1, 0), 0);
	assert_int_equal(vmm_pci_dev_bar_mapped(d1, 7), 0);
	teardown(&e);
}

/*
 * Issue 13 #3: one owner per byte of config space.  With cap_ptr the device
 * owns [0x40, 256) (the bus keeps no image there: reads are the device's,
 * writes reach only it), the header stays the bus's, and the device hears
 * of each real change of a BAR's mapping once (bar_changed), not of
 * rewrites of the same value.
 */
static void test_cap_owner_and_bar_changed(void **state)
{
	struct vmm_pci_dev_cfg cfg = {
		.vendor_id = 0x1af4, .device_id = 0x1043, .class_code = 0x078000,
		.irq_pin = 1, .cap_ptr = 0x40,
		.bars = { [0] = { .size_bytes = 0x8000 } }, .ops = &owner_ops,
	};
	struct fake_dev f = { 0 };
	struct vmm_pci_dev *dev;
	struct env e;
	unsigned s;
	uint64_t a;

	setup(&e);
	cfg.opaque = &f;
	cfg.cap_ptr = 0x20;                                        /* inside the header */
	assert_int_equal(vmm_pci_add(e.bus, &cfg, &dev), -EINVAL);
	cfg.cap_ptr = 0x40;
	assert_int_equal(vmm_pci_add(e.bus, &cfg, &dev), 0);
	s = vmm_pci_dev_slot(dev);
	a = vmm_pci_dev_bar_addr(dev, 0);
	assert_int_equal(cfg_read(&e, s, 0x04) >> 16 & 0x10, 0x10);  /* capability list */
	assert_int_equal(cfg_read(&e, s, 0x34) & 0xff, 0x40);
	/* The device's range: its answer (0xc3 at 0x50), else zeros. */
	assert_int_equal(cfg_read(&e, s, 0x50), 0xc3c3c3c3u);
	assert_int_equal(cfg_read(&e, s, 0x60), 0);
	f.nr_cfg_writes = 0;
	cfg_write(&e, s, 0x60, 0xffffffffu);
	assert_int_equal(f.nr_cfg_writes, 1);
	assert_int_equal(f.last_cfg_off, 0x60);
	assert_int_equal(cfg_read(&e, s, 0x60), 0);                /* nothing kept by the bus */
	/* BAR0: mapped by decoding on, moved, rewritten, unmapped. */
	assert_int_equal(f.nr_bar_changed, 0);
	cfg_write(&e, s, 0x04, 0x2);
	assert_int_equal(f.nr_bar_changed, 1);
	assert_int_equal(f.last_changed_bar, 0);
	assert_int_equal(f.last_mapped, a);
	cfg_write(&e, s, 0x04, 0x2);
	cfg_write(&e, s, 0x10, (uint32_t)a);
	assert_int_equal(f.nr_bar_changed, 1);                    /* same value: no news */
	cfg_write(&e, s, 0x10, (uint32_t)a + 0x8000);
	assert_int_equal(f.nr_bar_changed, 2);
	assert_int_equal(f.last_mapped, a + 0x8000);
	cfg_write(&e, s, 0x10, 0x10000);                           /* outside the window */
	assert_int_equal(f.nr_bar_changed, 3);
	assert_int_equal(f.last_mapped, 0);
	cfg_write(&e, s, 0x10, 0x20000);                           /* still unmapped */
	assert_int_equal(f.nr_bar_changed, 3);
	cfg_write(&e, s, 0x10, (uint32_t)a);
	cfg_write(&e, s, 0x04, 0x0);
	assert_int_equal(f.nr_bar_changed, 5);
	assert_int_equal(f.last_mapped, 0);
	teardown(&e);
}

static void test_bad_accesses(void **state)
{
	struct vmm_pci_dev_cfg bad = {
		.vendor_id = 1, .bars = { [0] = { .size_bytes = 3000 } }, .ops = &fake_ops,
	};
	struct vmm_pci_dev *dev;
	struct vmm_pci_stats st;
	struct env e;
	uint8_t d[4];
	unsigned i;

	setup(&e);
	outl(&e, 0xcf8, 0x80000000u);
	/* Crossing a dword boundary, odd sizes, out-of-range ports. */
	memset(d, 0, 4);
	vmm_pci_config_io(e.bus, 0xcfe, d, 4, false);
	assert_int_equal(d[0], 0xff);
	vmm_pci_config_io(e.bus, 0xcfd, d, 3, false);
	vmm_pci_config_io(e.bus, 0xd00, d, 1, false);
	vmm_pci_get_stats(e.bus, &st);
	assert_int_equal(st.nr_bad_cfg_access, 3);
	/* Non-power-of-two BAR, too many devices. */
	assert_int_equal(vmm_pci_add(e.bus, &bad, &dev), -EINVAL);
	bad.bars[0].size_bytes = 16;
	for (i = 1; i < VMM_PCI_NR_SLOTS; i++)
		assert_int_equal(vmm_pci_add(e.bus, &bad, &dev), 0);
	assert_int_equal(vmm_pci_add(e.bus, &bad, &dev), -ENOSPC);
	teardown(&e);
}

static void dummy_io(void *opaque, uint64_t offset, uint8_t *data, unsigned size, bool is_write)
{
	(*(unsigned *)opaque)++;
}

static void test_iobus(void **state)
{
	struct vmm_iobus *bus;
	struct vmm_iobus_stats st;
	unsigned hits = 0;
	uint8_t d[8];

	assert_int_equal(vmm_iobus_create(&bus), 0);
	assert_int_equal(vmm_iobus_register(bus, 0x100, 0x10, dummy_io, &hits), 0);
	assert_int_equal(vmm_iobus_register(bus, 0x10f, 1, dummy_io, &hits), -EEXIST);
	assert_int_equal(vmm_iobus_register(bus, 0xf8, 0x10, dummy_io, &hits), -EEXIST);
	assert_int_equal(vmm_iobus_register(bus, 0x110, 0x10, dummy_io, &hits), 0);
	assert_int_equal(vmm_iobus_register(bus, 0x0, 0, dummy_io, &hits), -EINVAL);
	assert_int_equal(vmm_iobus_register(bus, UINT64_MAX - 1, 4, dummy_io, &hits), -EINVAL);
	assert_true(vmm_iobus_dispatch(bus, 0x100, d, 1, false));
	assert_true(vmm_iobus_dispatch(bus, 0x11c, d, 4, false));
	assert_false(vmm_iobus_dispatch(bus, 0x10e, d, 4, false));  /* straddles two ranges */
	assert_false(vmm_iobus_dispatch(bus, 0x200, d, 2, false));
	assert_int_equal(d[0], 0xff);
	assert_false(vmm_iobus_dispatch(bus, UINT64_MAX, d, 8, false));
	assert_int_equal(hits, 2);
	assert_int_equal(vmm_iobus_unregister(bus, 0x100), 0);
	assert_int_equal(vmm_iobus_unregister(bus, 0x100), -ENOENT);
	assert_false(vmm_iobus_dispatch(bus, 0x100, d, 1, false));
	vmm_iobus_get_stats(bus, &st);
	assert_int_equal(st.nr_access, 6);
	assert_int_equal(st.nr_unclaimed, 4);
	vmm_iobus_destroy(bus);
	vmm_iobus_destroy(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_conf1_probe_and_host_bridge),
		cmocka_unit_test(test_device_bars),
		cmocka_unit_test(test_bar_mapped_only_when_decoding_in_window_alone),
		cmocka_unit_test(test_cap_owner_and_bar_changed),
		cmocka_unit_test(test_bad_accesses),
		cmocka_unit_test(test_iobus),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
