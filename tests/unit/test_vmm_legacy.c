/*
 * tests/unit/test_vmm_legacy.c — the i8042 (vmm/legacy.c) as Linux drives it
 * (the i8042 driver's probe, reboot=k's 0xfe, the output-port reset), the
 * CMOS clock (BCD time from an injected clock, UIP never set, RAM bytes),
 * and the console line scanner (vmm/console.c) that turns guest output into
 * ready / panic / halt events.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "vmm/console.h"
#include "vmm/legacy.h"

static unsigned nr_resets;

static void on_reset(void *opaque)
{
	(void)opaque;
	nr_resets++;
}

static uint8_t kin(struct vmm_i8042 *k, unsigned port)
{
	uint8_t v = 0;

	vmm_i8042_io(k, port - 0x60, &v, 1, false);
	return v;
}

static void kout(struct vmm_i8042 *k, unsigned port, uint8_t v)
{
	vmm_i8042_io(k, port - 0x60, &v, 1, true);
}

static void test_i8042_probe_and_reset(void **state)
{
	struct vmm_i8042 *k;
	uint8_t wide[2];

	nr_resets = 0;
	assert_int_equal(vmm_i8042_create(on_reset, NULL, &k), 0);
	assert_int_equal(kin(k, 0x64) & 0x01, 0);      /* nothing to read */
	assert_int_equal(kin(k, 0x64) & 0x02, 0);      /* input buffer empty: kb_wait() passes */
	kout(k, 0x64, 0xaa);                            /* controller self test */
	assert_int_equal(kin(k, 0x64) & 0x01, 0x01);
	assert_int_equal(kin(k, 0x60), 0x55);
	assert_int_equal(kin(k, 0x64) & 0x01, 0);
	kout(k, 0x64, 0x20);                            /* read CTR */
	assert_int_equal(kin(k, 0x60), 0x45);
	kout(k, 0x64, 0x60);                            /* write CTR */
	kout(k, 0x60, 0x65);
	kout(k, 0x64, 0x20);
	assert_int_equal(kin(k, 0x60), 0x65);
	kout(k, 0x64, 0xa9);                            /* no aux port */
	assert_int_equal(kin(k, 0x60), 0xff);
	kout(k, 0x60, 0xff);                            /* a keyboard command: ack */
	assert_int_equal(kin(k, 0x60), 0xfa);
	assert_int_equal(nr_resets, 0);
	kout(k, 0x64, 0xfe);                            /* reboot=k */
	assert_int_equal(nr_resets, 1);
	kout(k, 0x64, 0xd1);                            /* output port, reset bit low */
	kout(k, 0x60, 0xfe);
	assert_int_equal(nr_resets, 2);
	kout(k, 0x64, 0xd1);                            /* reset bit high: no reset */
	kout(k, 0x60, 0xff);
	kout(k, 0x64, 0xff);                            /* pulse none: no reset */
	assert_int_equal(nr_resets, 2);
	/* Other ports and sizes read as all ones and do nothing. */
	assert_int_equal(kin(k, 0x61), 0xff);
	vmm_i8042_io(k, 4, wide, 2, false);
	assert_int_equal(wide[0], 0xff);
	vmm_i8042_io(k, 4, wide, 2, true);
	assert_int_equal(nr_resets, 2);
	vmm_i8042_destroy(k);
	vmm_i8042_destroy(NULL);
}

static time_t fixed_clock(void *opaque)
{
	return *(time_t *)opaque;
}

static uint8_t cmos_read(struct vmm_cmos *c, uint8_t reg)
{
	uint8_t v = reg | 0x80;  /* with the NMI-disable bit, as Linux writes it */

	vmm_cmos_io(c, 0, &v, 1, true);
	vmm_cmos_io(c, 1, &v, 1, false);
	return v;
}

static void test_cmos(void **state)
{
	time_t t = 1795325719;  /* 2026-11-22 05:35:19 UTC, a Sunday */
	struct vmm_cmos *c;
	uint8_t v = 0x5a;

	assert_int_equal(vmm_cmos_create(fixed_clock, &t, &c), 0);
	assert_int_equal(cmos_read(c, 0x00), 0x19);
	assert_int_equal(cmos_read(c, 0x02), 0x35);
	assert_int_equal(cmos_read(c, 0x04), 0x05);
	assert_int_equal(cmos_read(c, 0x06), 0x01);
	assert_int_equal(cmos_read(c, 0x07), 0x22);
	assert_int_equal(cmos_read(c, 0x08), 0x11);
	assert_int_equal(cmos_read(c, 0x09), 0x26);
	assert_int_equal(cmos_read(c, 0x32), 0x20);
	assert_int_equal(cmos_read(c, 0x0a) & 0x80, 0);  /* never "update in progress" */
	assert_int_equal(cmos_read(c, 0x0b), 0x02);       /* BCD, 24 h */
	/* RAM bytes keep what is written; clock registers ignore writes. */
	v = 0x40;
	vmm_cmos_io(c, 0, &v, 1, true);
	v = 0xab;
	vmm_cmos_io(c, 1, &v, 1, true);
	assert_int_equal(cmos_read(c, 0x40), 0xab);
	v = 0x00;
	vmm_cmos_io(c, 0, &v, 1, true);
	v = 0x99;
	vmm_cmos_io(c, 1, &v, 1, true);
	assert_int_equal(cmos_read(c, 0x00), 0x19);
	vmm_cmos_io(c, 2, &v, 1, false);                   /* beyond the two ports */
	assert_int_equal(v, 0xff);
	vmm_cmos_destroy(c);
}

static unsigned feed(struct vmm_console_line *l, const char *s, char lines[][VMM_CONSOLE_LINE_BYTES])
{
	unsigned n = 0;

	for (; *s; s++)
		if (vmm_console_feed(l, (uint8_t)*s))
			strcpy(lines[n++], l->buf);
	return n;
}

static void test_console_lines(void **state)
{
	struct vmm_console_line l = { .len = 0 };
	char lines[8][VMM_CONSOLE_LINE_BYTES];
	char longline[600];

	assert_int_equal(feed(&l, "hello\r\nwor", lines), 1);
	assert_string_equal(lines[0], "hello");
	assert_int_equal(feed(&l, "ld\r\n\r\n", lines), 2);
	assert_string_equal(lines[0], "world");
	assert_string_equal(lines[1], "");
	/* A long line is cut into pieces of VMM_CONSOLE_LINE_BYTES - 1. */
	memset(longline, 'x', 599);
	longline[599] = '\0';
	longline[598] = '\n';
	assert_int_equal(feed(&l, longline, lines), 3);
	assert_int_equal(strlen(lines[0]), VMM_CONSOLE_LINE_BYTES - 1);
	assert_int_equal(strlen(lines[1]), VMM_CONSOLE_LINE_BYTES - 1);
	assert_int_equal(strlen(lines[2]), 598 - 2 * (VMM_CONSOLE_LINE_BYTES - 1));
}

static void test_console_classify(void **state)
{
	assert_int_equal(vmm_console_classify("[    3.1] Kernel panic - not syncing: sysrq triggered crash",
					      "ebb-guest: ready"), VMM_CONSOLE_PANIC);
	assert_int_equal(vmm_console_classify("[   37.4] reboot: System halted", NULL), VMM_CONSOLE_HALT);
	assert_int_equal(vmm_console_classify("[   12.1] reboot: Power down", ""), VMM_CONSOLE_HALT);
	assert_int_equal(vmm_console_classify("ebb-guest: ready uptime=8.57s", "ebb-guest: ready"),
			 VMM_CONSOLE_READY);
	assert_int_equal(vmm_console_classify("ebb-guest: ready uptime=8.57s", NULL), VMM_CONSOLE_NONE);
	assert_int_equal(vmm_console_classify("ebb-guest: ready uptime=8.57s", ""), VMM_CONSOLE_NONE);
	assert_int_equal(vmm_console_classify("reboot: Restarting system", NULL), VMM_CONSOLE_NONE);
	assert_int_equal(vmm_console_classify("Kernel panic", NULL), VMM_CONSOLE_NONE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_i8042_probe_and_reset),
		cmocka_unit_test(test_cmos),
		cmocka_unit_test(test_console_lines),
		cmocka_unit_test(test_console_classify),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
