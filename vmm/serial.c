/*
 * vmm/serial.c — the 16550A model described in serial.h.
 *
 * Register map (offset from base; DLAB = LCR bit 7):
 *   0 RBR (read) / THR (write) / DLL (DLAB)     4 MCR
 *   1 IER / DLM (DLAB)                          5 LSR
 *   2 IIR (read) / FCR (write)                  6 MSR
 *   3 LCR                                       7 SCR
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/serial.h"

#define UART_IER_RDI  0x01
#define UART_IER_THRI 0x02
#define UART_IER_RLSI 0x04
#define UART_IER_MSI  0x08

#define UART_IIR_NO_INT 0x01
#define UART_IIR_MSI    0x00
#define UART_IIR_THRI   0x02
#define UART_IIR_RDI    0x04
#define UART_IIR_RLSI   0x06
#define UART_IIR_FIFO   0xc0

#define UART_FCR_ENABLE   0x01
#define UART_FCR_CLEAR_RX 0x02
#define UART_FCR_CLEAR_TX 0x04

#define UART_LCR_DLAB 0x80

#define UART_MCR_DTR  0x01
#define UART_MCR_RTS  0x02
#define UART_MCR_OUT1 0x04
#define UART_MCR_OUT2 0x08
#define UART_MCR_LOOP 0x10

#define UART_LSR_DR   0x01
#define UART_LSR_OE   0x02
#define UART_LSR_THRE 0x20
#define UART_LSR_TEMT 0x40

#define UART_MSR_CTS 0x10
#define UART_MSR_DSR 0x20
#define UART_MSR_RI  0x40
#define UART_MSR_DCD 0x80

struct vmm_serial {
	pthread_mutex_t lock;            /* protects everything below */
	struct vmm_serial_cfg cfg;
	uint8_t ier, lcr, mcr, lsr, msr, scr, fcr, dll, dlm;
	bool thri_pending;               /* THR-empty interrupt latched */
	bool irq_level;                  /* last level given to set_irq */
	uint8_t fifo[VMM_SERIAL_FIFO_BYTES];
	unsigned fifo_head, fifo_len;
	uint8_t backlog[VMM_SERIAL_BACKLOG_BYTES];
	size_t backlog_head, backlog_len;
	struct vmm_serial_stats stats;
	struct ebb_ratelimit rl_bad;
};

static uint8_t iir_of(const struct vmm_serial *s)
{
	uint8_t fifo = (s->fcr & UART_FCR_ENABLE) ? UART_IIR_FIFO : 0;

	if ((s->ier & UART_IER_RLSI) && (s->lsr & UART_LSR_OE))
		return fifo | UART_IIR_RLSI;
	if ((s->ier & UART_IER_RDI) && s->fifo_len)
		return fifo | UART_IIR_RDI;
	if ((s->ier & UART_IER_THRI) && s->thri_pending)
		return fifo | UART_IIR_THRI;
	if ((s->ier & UART_IER_MSI) && (s->msr & 0x0f))
		return fifo | UART_IIR_MSI;
	return fifo | UART_IIR_NO_INT;
}

static void update_irq(struct vmm_serial *s)
{
	bool level = !(iir_of(s) & UART_IIR_NO_INT);

	if (level == s->irq_level)
		return;
	s->irq_level = level;
	s->stats.nr_irq_changes++;
	if (s->cfg.set_irq)
		s->cfg.set_irq(s->cfg.opaque, level);
}

/* Moves backlog bytes into the FIFO. */
static void refill_fifo(struct vmm_serial *s)
{
	while (s->fifo_len < VMM_SERIAL_FIFO_BYTES && s->backlog_len) {
		s->fifo[(s->fifo_head + s->fifo_len) % VMM_SERIAL_FIFO_BYTES] =
			s->backlog[s->backlog_head];
		s->fifo_len++;
		s->backlog_head = (s->backlog_head + 1) % VMM_SERIAL_BACKLOG_BYTES;
		s->backlog_len--;
	}
	if (s->fifo_len)
		s->lsr |= UART_LSR_DR;
	else
		s->lsr &= (uint8_t)~UART_LSR_DR;
}

static void fifo_push_loopback(struct vmm_serial *s, uint8_t byte)
{
	if (s->fifo_len == VMM_SERIAL_FIFO_BYTES) {
		s->lsr |= UART_LSR_OE;
		return;
	}
	s->fifo[(s->fifo_head + s->fifo_len) % VMM_SERIAL_FIFO_BYTES] = byte;
	s->fifo_len++;
	s->lsr |= UART_LSR_DR;
}

static uint8_t msr_of(const struct vmm_serial *s)
{
	uint8_t msr = s->msr & 0x0f;

	if (s->mcr & UART_MCR_LOOP) {
		if (s->mcr & UART_MCR_RTS)
			msr |= UART_MSR_CTS;
		if (s->mcr & UART_MCR_DTR)
			msr |= UART_MSR_DSR;
		if (s->mcr & UART_MCR_OUT1)
			msr |= UART_MSR_RI;
		if (s->mcr & UART_MCR_OUT2)
			msr |= UART_MSR_DCD;
		return msr;
	}
	return msr | UART_MSR_DCD | UART_MSR_DSR | UART_MSR_CTS;
}

int vmm_serial_create(const struct vmm_serial_cfg *cfg, struct vmm_serial **out)
{
	struct vmm_serial *s;

	*out = NULL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	if (pthread_mutex_init(&s->lock, NULL)) {
		free(s);
		return -ENOMEM;
	}
	s->cfg = *cfg;
	s->lsr = UART_LSR_THRE | UART_LSR_TEMT;
	s->mcr = UART_MCR_OUT2;
	s->dll = 0x0c;  /* 9600 baud, as after a BIOS */
	*out = s;
	return 0;
}

void vmm_serial_destroy(struct vmm_serial *s)
{
	if (!s)
		return;
	pthread_mutex_destroy(&s->lock);
	free(s);
}

static uint8_t serial_read(struct vmm_serial *s, unsigned offset)
{
	uint8_t v = 0;

	switch (offset) {
	case 0:
		if (s->lcr & UART_LCR_DLAB)
			return s->dll;
		if (s->fifo_len) {
			v = s->fifo[s->fifo_head];
			s->fifo_head = (s->fifo_head + 1) % VMM_SERIAL_FIFO_BYTES;
			s->fifo_len--;
			s->stats.nr_rx_bytes++;
		}
		refill_fifo(s);
		break;
	case 1:
		return (s->lcr & UART_LCR_DLAB) ? s->dlm : s->ier;
	case 2:
		v = iir_of(s);
		/* Reading IIR acknowledges a THRE interrupt it reports. */
		if ((v & 0x0f) == UART_IIR_THRI)
			s->thri_pending = false;
		break;
	case 3:
		return s->lcr;
	case 4:
		return s->mcr;
	case 5:
		v = s->lsr;
		s->lsr &= (uint8_t)~UART_LSR_OE;  /* error bits clear on read */
		break;
	case 6:
		v = msr_of(s);
		s->msr &= 0xf0;  /* delta bits clear on read */
		break;
	case 7:
		return s->scr;
	}
	return v;
}

static void serial_write(struct vmm_serial *s, unsigned offset, uint8_t v)
{
	switch (offset) {
	case 0:
		if (s->lcr & UART_LCR_DLAB) {
			s->dll = v;
			break;
		}
		if (s->mcr & UART_MCR_LOOP) {
			fifo_push_loopback(s, v);
		} else {
			s->stats.nr_tx_bytes++;
			if (s->cfg.tx)
				s->cfg.tx(s->cfg.opaque, v);
		}
		/* Sent at once: THR is empty again, and that is an interrupt. */
		s->lsr |= UART_LSR_THRE | UART_LSR_TEMT;
		s->thri_pending = true;
		break;
	case 1:
		if (s->lcr & UART_LCR_DLAB) {
			s->dlm = v;
			break;
		}
		/* Enabling ETBEI while THR is empty raises THRI (the 8250 does). */
		if (!(s->ier & UART_IER_THRI) && (v & UART_IER_THRI) && (s->lsr & UART_LSR_THRE))
			s->thri_pending = true;
		s->ier = v & 0x0f;
		break;
	case 2:
		s->fcr = v & (UART_FCR_ENABLE | 0xc8);
		if (v & UART_FCR_CLEAR_RX) {
			s->fifo_head = s->fifo_len = 0;
			refill_fifo(s);
		}
		break;
	case 3:
		s->lcr = v;
		break;
	case 4:
		s->mcr = v & 0x1f;
		break;
	case 5:
		break;  /* LSR is read-only (factory test writes are ignored) */
	case 6:
		break;
	case 7:
		s->scr = v;
		break;
	}
}

/* GUEST: offset and size come from a guest port access. */
void vmm_serial_io(struct vmm_serial *s, unsigned offset, uint8_t *data, unsigned size,
		   bool is_write)
{
	pthread_mutex_lock(&s->lock);
	if (offset >= VMM_SERIAL_NR_PORTS || size != 1) {
		s->stats.nr_bad_access++;
		vmm_logf_rl(&s->cfg.log, &s->rl_bad, EBB_LOG_WARN,
			    "serial: guest %s of %u bytes at offset %u ignored",
			    is_write ? "write" : "read", size, offset);
		if (!is_write)
			memset(data, 0xff, size);
		pthread_mutex_unlock(&s->lock);
		return;
	}
	if (is_write)
		serial_write(s, offset, data[0]);
	else
		data[0] = serial_read(s, offset);
	update_irq(s);
	pthread_mutex_unlock(&s->lock);
}

size_t vmm_serial_rx(struct vmm_serial *s, const uint8_t *buf, size_t len)
{
	size_t n = 0;

	pthread_mutex_lock(&s->lock);
	while (n < len && s->backlog_len < VMM_SERIAL_BACKLOG_BYTES) {
		s->backlog[(s->backlog_head + s->backlog_len) % VMM_SERIAL_BACKLOG_BYTES] = buf[n++];
		s->backlog_len++;
	}
	s->stats.nr_rx_dropped_bytes += len - n;
	refill_fifo(s);
	update_irq(s);
	pthread_mutex_unlock(&s->lock);
	return n;
}

void vmm_serial_get_stats(struct vmm_serial *s, struct vmm_serial_stats *out)
{
	pthread_mutex_lock(&s->lock);
	*out = s->stats;
	pthread_mutex_unlock(&s->lock);
}
