/*
 * tests/unit/test_vmm_serial.c — the 16550A model (vmm/serial.c) driven the
 * way Linux's 8250 driver drives it: transmit, the THRE interrupt (raised on
 * an empty THR and on enabling ETBEI, cleared by an IIR read that reports it
 * or by a THR write), receive through the FIFO and the backlog, interrupt
 * priorities, the loopback probe, DLAB, scratch, and hostile accesses.
 * The interrupt callback must only fire on level changes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "vmm/serial.h"

struct sink {
	uint8_t tx[8192];
	size_t nr_tx;
	bool level;
	unsigned nr_irq_calls;
};

static void tx(void *opaque, uint8_t b)
{
	struct sink *s = opaque;

	if (s->nr_tx < sizeof(s->tx))
		s->tx[s->nr_tx++] = b;
}

static void irq(void *opaque, bool level)
{
	struct sink *s = opaque;

	/* The model promises to call only on changes. */
	assert_int_not_equal(level, s->level);
	s->level = level;
	s->nr_irq_calls++;
}

static struct vmm_serial *mk(struct sink *s)
{
	struct vmm_serial_cfg cfg = { .tx = tx, .set_irq = irq, .opaque = s };
	struct vmm_serial *dev;

	memset(s, 0, sizeof(*s));
	assert_int_equal(vmm_serial_create(&cfg, &dev), 0);
	return dev;
}

static uint8_t rd(struct vmm_serial *d, unsigned off)
{
	uint8_t v = 0x5a;

	vmm_serial_io(d, off, &v, 1, false);
	return v;
}

static void wr(struct vmm_serial *d, unsigned off, uint8_t v)
{
	vmm_serial_io(d, off, &v, 1, true);
}

static void test_tx_and_lsr(void **state)
{
	struct sink s;
	struct vmm_serial *d = mk(&s);
	struct vmm_serial_stats st;

	assert_int_equal(rd(d, 5) & 0x60, 0x60);  /* THRE | TEMT */
	wr(d, 0, 'h');
	wr(d, 0, 'i');
	assert_int_equal(s.nr_tx, 2);
	assert_memory_equal(s.tx, "hi", 2);
	assert_int_equal(rd(d, 5) & 0x60, 0x60);  /* sent at once */
	assert_false(s.level);                     /* IER = 0: no interrupt */
	vmm_serial_get_stats(d, &st);
	assert_int_equal(st.nr_tx_bytes, 2);
	vmm_serial_destroy(d);
}

static void test_thre_interrupt(void **state)
{
	struct sink s;
	struct vmm_serial *d = mk(&s);

	assert_int_equal(rd(d, 2) & 0x0f, 0x01);    /* no interrupt */
	wr(d, 1, 0x02);                             /* ETBEI with THR empty: THRI */
	assert_true(s.level);
	assert_int_equal(rd(d, 2) & 0x0f, 0x02);    /* reading IIR reports and acks it */
	assert_false(s.level);
	assert_int_equal(rd(d, 2) & 0x0f, 0x01);
	wr(d, 0, 'x');                              /* THR empties again: THRI */
	assert_true(s.level);
	wr(d, 1, 0x00);                             /* disabling ETBEI drops the line */
	assert_false(s.level);
	wr(d, 1, 0x02);                             /* still latched: back up */
	assert_true(s.level);
	wr(d, 0, 'y');                              /* a THR write clears and re-raises */
	assert_true(s.level);
	assert_int_equal(rd(d, 2) & 0x0f, 0x02);
	assert_false(s.level);
	/* Re-writing IER with ETBEI already set does not raise it again. */
	wr(d, 1, 0x02);
	assert_false(s.level);
	assert_true(s.nr_irq_calls >= 6);
	vmm_serial_destroy(d);
}

static void test_rx_fifo_and_priority(void **state)
{
	struct sink s;
	struct vmm_serial *d = mk(&s);
	uint8_t in[40];
	size_t i;

	for (i = 0; i < sizeof(in); i++)
		in[i] = (uint8_t)('A' + i);
	wr(d, 2, 0x07);                            /* FIFO on, clear both */
	wr(d, 1, 0x03);                            /* RDI | THRI */
	assert_int_equal(rd(d, 2), 0xc2);          /* FIFO bits + THRI */
	assert_false(s.level);
	assert_int_equal(vmm_serial_rx(d, in, sizeof(in)), sizeof(in));
	assert_true(s.level);
	assert_int_equal(rd(d, 5) & 0x01, 0x01);   /* DR */
	wr(d, 0, 'z');                             /* THRI pending too ... */
	assert_int_equal(rd(d, 2), 0xc4);          /* ... but RDI has priority */
	for (i = 0; i < sizeof(in); i++)
		assert_int_equal(rd(d, 0), in[i]);     /* FIFO refilled from the backlog, in order */
	assert_int_equal(rd(d, 5) & 0x01, 0x00);
	assert_int_equal(rd(d, 2), 0xc2);          /* now the THRI */
	assert_int_equal(rd(d, 2), 0xc1);
	assert_false(s.level);
	assert_int_equal(rd(d, 0), 0);             /* empty RBR reads 0 */
	vmm_serial_destroy(d);
}

static void test_rx_backlog_overflow(void **state)
{
	static uint8_t big[VMM_SERIAL_BACKLOG_BYTES * 2];
	struct sink s;
	struct vmm_serial *d = mk(&s);
	struct vmm_serial_stats st;
	size_t n;

	memset(big, 'q', sizeof(big));
	n = vmm_serial_rx(d, big, sizeof(big));
	/* FIFO + backlog hold what fits; the rest is counted, not crashed on. */
	assert_int_equal(n, VMM_SERIAL_BACKLOG_BYTES);
	vmm_serial_get_stats(d, &st);
	assert_int_equal(st.nr_rx_dropped_bytes, sizeof(big) - n);
	for (n = 0; n < 100; n++)
		assert_int_equal(rd(d, 0), 'q');
	/* Room for what was read, plus the FIFO's 16 bytes moved out of the
	 * backlog after the first call. */
	assert_int_equal(vmm_serial_rx(d, big, 200), 100 + VMM_SERIAL_FIFO_BYTES);
	vmm_serial_destroy(d);
}

static void test_loopback_dlab_scratch(void **state)
{
	struct sink s;
	struct vmm_serial *d = mk(&s);

	/* Linux's probe: loopback with OUT2|RTS... must read back in MSR. */
	wr(d, 4, 0x10 | 0x0a);                     /* LOOP | OUT2 | RTS */
	assert_int_equal(rd(d, 6) & 0xf0, 0x90);   /* DCD | CTS */
	wr(d, 0, 0x42);                            /* looped back, not sent */
	assert_int_equal(s.nr_tx, 0);
	assert_int_equal(rd(d, 0), 0x42);
	wr(d, 4, 0x08);
	assert_int_equal(rd(d, 6) & 0xb0, 0xb0);   /* DCD, DSR, CTS when not looped */

	wr(d, 3, 0x80);                            /* DLAB */
	wr(d, 0, 0x01);
	wr(d, 1, 0x00);
	assert_int_equal(rd(d, 0), 0x01);
	assert_int_equal(rd(d, 1), 0x00);
	assert_int_equal(s.nr_tx, 0);              /* divisor writes are not data */
	wr(d, 3, 0x03);                            /* 8N1 */
	assert_int_equal(rd(d, 3), 0x03);
	wr(d, 7, 0xa5);
	assert_int_equal(rd(d, 7), 0xa5);
	vmm_serial_destroy(d);
}

static void test_hostile_access(void **state)
{
	struct sink s;
	struct vmm_serial *d = mk(&s);
	struct vmm_serial_stats st;
	uint8_t buf[4] = { 1, 2, 3, 4 };

	vmm_serial_io(d, 0, buf, 4, true);          /* a 4-byte write: ignored */
	assert_int_equal(s.nr_tx, 0);
	vmm_serial_io(d, 0, buf, 2, false);         /* wide read: all ones */
	assert_int_equal(buf[0], 0xff);
	assert_int_equal(buf[1], 0xff);
	vmm_serial_io(d, 8, buf, 1, true);          /* beyond the 8 ports */
	vmm_serial_io(d, 1000, buf, 1, false);
	vmm_serial_get_stats(d, &st);
	assert_int_equal(st.nr_bad_access, 4);
	vmm_serial_destroy(NULL);                   /* a no-op */
	vmm_serial_destroy(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_tx_and_lsr),
		cmocka_unit_test(test_thre_interrupt),
		cmocka_unit_test(test_rx_fifo_and_priority),
		cmocka_unit_test(test_rx_backlog_overflow),
		cmocka_unit_test(test_loopback_dlab_scratch),
		cmocka_unit_test(test_hostile_access),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
