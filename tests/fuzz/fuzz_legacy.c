/*
 * tests/fuzz/fuzz_legacy.c — libFuzzer target for the legacy devices a
 * guest reaches with port I/O (vmm/legacy.c): the i8042 (ports 0x60-0x64,
 * only there for its reset line) and the CMOS clock (0x70-0x71), through
 * the same I/O bus dispatch the vCPUs use, with the access sizes and
 * offsets the guest chooses (1, 2, 4 bytes; accesses that straddle the end
 * of a device are refused by the bus).  The input is a sequence of 4-byte
 * records: op (device, read/write, size), offset, value, and a clock step.
 *
 * Invariants: no crash or sanitizer report; reads fill exactly the bytes
 * asked for; the CMOS clock reads back valid BCD (what register B says)
 * within range, whatever the guest wrote to the CMOS RAM; the reset
 * callback fires only when the guest asked for it: a command 0xf0-0xff with
 * bit 0 clear (pulse the output lines, bit 0 = reset; Linux uses 0xfe), or
 * command 0xd1 (write output port) followed by a data byte with bit 0
 * clear.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vmm/iobus.h"
#include "vmm/legacy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct env {
	struct vmm_i8042 *kbd;
	struct vmm_cmos *cmos;
	time_t now;
	unsigned nr_resets;
	bool reset_allowed;
};

static void on_reset(void *opaque)
{
	struct env *e = opaque;

	if (!e->reset_allowed)
		abort();
	e->nr_resets++;
}

static time_t clock_now(void *opaque)
{
	return ((struct env *)opaque)->now;
}

static void kbd_io(void *opaque, uint64_t offset, uint8_t *d, unsigned size, bool is_write)
{
	struct env *e = opaque;

	vmm_i8042_io(e->kbd, (unsigned)offset, d, size, is_write);
}

static void cmos_io(void *opaque, uint64_t offset, uint8_t *d, unsigned size, bool is_write)
{
	struct env *e = opaque;

	vmm_cmos_io(e->cmos, (unsigned)offset, d, size, is_write);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const unsigned sizes[4] = { 1, 2, 4, 1 };
	struct env e = { .now = 1700000000 };
	struct vmm_iobus *bus;
	uint8_t cmos_index = 0, kbd_pending = 0;
	size_t pos;

	if (vmm_iobus_create(&bus) || vmm_i8042_create(on_reset, &e, &e.kbd) ||
	    vmm_cmos_create(clock_now, &e, &e.cmos))
		abort();
	if (vmm_iobus_register(bus, VMM_I8042_DATA_PORT, VMM_I8042_NR_PORTS, kbd_io, &e) ||
	    vmm_iobus_register(bus, VMM_CMOS_PORT, VMM_CMOS_NR_PORTS, cmos_io, &e))
		abort();
	for (pos = 0; pos + 4 <= size; pos += 4) {
		uint8_t op = data[pos], off = data[pos + 1], val = data[pos + 2];
		unsigned sz = sizes[(op >> 2) & 3];
		bool cmos = op & 1, is_write = op & 2;
		uint64_t port = cmos ? VMM_CMOS_PORT + off % 3 : VMM_I8042_DATA_PORT + off % 6;
		uint8_t buf[8];

		memset(buf, 0xa5, sizeof(buf));
		if (is_write) {
			buf[0] = val;
			buf[1] = (uint8_t)~val;
			buf[2] = (uint8_t)(val ^ 0x55);
			buf[3] = op;
		}
		e.now += data[pos + 3] * 37;   /* the clock moves on, sometimes by a lot */
		e.reset_allowed = false;
		if (!cmos && is_write && sz == 1 && port == VMM_I8042_CMD_PORT)
			e.reset_allowed = (val & 0xf0) == 0xf0 && !(val & 1);
		if (!cmos && is_write && sz == 1 && port == VMM_I8042_DATA_PORT)
			e.reset_allowed = kbd_pending == 0xd1 && !(val & 1);
		if (cmos && is_write && sz == 1 && port == VMM_CMOS_PORT)
			cmos_index = val & 0x7f;
		vmm_iobus_dispatch(bus, port, buf, sz, is_write);
		if (!cmos && is_write && sz == 1 && port == VMM_I8042_CMD_PORT)
			kbd_pending = val;
		else if (!cmos && is_write && sz == 1 && port == VMM_I8042_DATA_PORT)
			kbd_pending = 0;
		if (!is_write && memcmp(buf + sz, "\xa5\xa5\xa5\xa5", 4) != 0)
			abort();  /* a read wrote past the bytes asked for */
		if (cmos && !is_write && port == VMM_CMOS_PORT + 1 && sz == 1 &&
		    (cmos_index == 0 || cmos_index == 2 || cmos_index == 4)) {
			unsigned max = cmos_index == 4 ? 0x23 : 0x59;

			if ((buf[0] & 0x0f) > 9 || buf[0] > max)
				abort();  /* not a BCD second / minute / hour */
		}
	}
	vmm_cmos_destroy(e.cmos);
	vmm_i8042_destroy(e.kbd);
	vmm_iobus_destroy(bus);
	return 0;
}
