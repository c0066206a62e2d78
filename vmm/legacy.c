/*
 * vmm/legacy.c — i8042 (reset line and probe) and CMOS clock, see legacy.h.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/legacy.h"

#define I8042_STR_OBF 0x01
#define I8042_STR_SYS 0x04
#define I8042_STR_UNLOCKED 0x10

struct vmm_i8042 {
	pthread_mutex_t lock;       /* protects the fields below */
	uint8_t ctr;                /* controller configuration byte */
	uint8_t out;                /* output buffer */
	bool out_full;
	uint8_t pending_cmd;        /* command waiting for its data byte */
	void (*reset)(void *opaque);
	void *opaque;
};

struct vmm_cmos {
	pthread_mutex_t lock;       /* protects index and ram */
	uint8_t index;
	uint8_t ram[128];
	time_t (*now)(void *opaque);
	void *opaque;
};

int vmm_i8042_create(void (*reset)(void *opaque), void *opaque, struct vmm_i8042 **out)
{
	struct vmm_i8042 *k = calloc(1, sizeof(*k));

	*out = NULL;
	if (!k)
		return -ENOMEM;
	pthread_mutex_init(&k->lock, NULL);
	k->reset = reset;
	k->opaque = opaque;
	k->ctr = 0x45;  /* kbd interrupt on, SYS, translate, as after POST */
	*out = k;
	return 0;
}

void vmm_i8042_destroy(struct vmm_i8042 *k)
{
	if (!k)
		return;
	pthread_mutex_destroy(&k->lock);
	free(k);
}

static void put_out(struct vmm_i8042 *k, uint8_t v)
{
	k->out = v;
	k->out_full = true;
}

/* GUEST: ports 0x60-0x64. */
void vmm_i8042_io(struct vmm_i8042 *k, unsigned offset, uint8_t *data, unsigned size,
		  bool is_write)
{
	unsigned port = VMM_I8042_DATA_PORT + offset;
	bool reset = false;

	if (size != 1 || (port != VMM_I8042_DATA_PORT && port != VMM_I8042_CMD_PORT)) {
		if (!is_write)
			memset(data, 0xff, size);
		return;
	}
	pthread_mutex_lock(&k->lock);
	if (port == VMM_I8042_CMD_PORT && !is_write) {
		data[0] = (uint8_t)((k->out_full ? I8042_STR_OBF : 0) | I8042_STR_SYS |
				    I8042_STR_UNLOCKED);
	} else if (port == VMM_I8042_CMD_PORT) {
		uint8_t cmd = data[0];

		k->pending_cmd = 0;
		switch (cmd) {
		case 0x20: put_out(k, k->ctr); break;           /* read CTR */
		case 0x60: case 0xd1: k->pending_cmd = cmd; break; /* write CTR / output port */
		case 0xa9: put_out(k, 0xff); break;             /* aux port test: none */
		case 0xaa: put_out(k, 0x55); break;             /* self test passed */
		case 0xab: put_out(k, 0x00); break;             /* keyboard port test ok */
		case 0xfe: reset = true; break;                 /* pulse reset */
		default:
			/* 0xf0-0xff pulse output lines; bit 0 low is the reset line. */
			if ((cmd & 0xf0) == 0xf0 && !(cmd & 1))
				reset = true;
			break;
		}
	} else if (!is_write) {
		data[0] = k->out;
		k->out_full = false;
	} else {
		if (k->pending_cmd == 0x60)
			k->ctr = data[0];
		else if (k->pending_cmd == 0xd1 && !(data[0] & 1))
			reset = true;           /* output port bit 0 is the reset line */
		else if (!k->pending_cmd)
			put_out(k, 0xfa);       /* a command for the keyboard: ack */
		k->pending_cmd = 0;
	}
	pthread_mutex_unlock(&k->lock);
	if (reset && k->reset)
		k->reset(k->opaque);
}

int vmm_cmos_create(time_t (*now)(void *opaque), void *opaque, struct vmm_cmos **out)
{
	struct vmm_cmos *c = calloc(1, sizeof(*c));

	*out = NULL;
	if (!c)
		return -ENOMEM;
	pthread_mutex_init(&c->lock, NULL);
	c->now = now;
	c->opaque = opaque;
	*out = c;
	return 0;
}

void vmm_cmos_destroy(struct vmm_cmos *c)
{
	if (!c)
		return;
	pthread_mutex_destroy(&c->lock);
	free(c);
}

static uint8_t bcd(int v)
{
	return (uint8_t)(((v / 10) << 4) | (v % 10));
}

/* GUEST: ports 0x70 (index) and 0x71 (data). */
void vmm_cmos_io(struct vmm_cmos *c, unsigned offset, uint8_t *data, unsigned size, bool is_write)
{
	if (size != 1 || offset >= VMM_CMOS_NR_PORTS) {
		if (!is_write)
			memset(data, 0xff, size);
		return;
	}
	pthread_mutex_lock(&c->lock);
	if (offset == 0) {
		if (is_write)
			c->index = data[0] & 0x7f;  /* bit 7 is the NMI mask */
		else
			data[0] = 0xff;
	} else if (is_write) {
		if (c->index >= 0x0e)
			c->ram[c->index] = data[0];
	} else {
		time_t t = c->now ? c->now(c->opaque) : time(NULL);
		struct tm tm;

		gmtime_r(&t, &tm);
		switch (c->index) {
		case 0x00: data[0] = bcd(tm.tm_sec); break;
		case 0x02: data[0] = bcd(tm.tm_min); break;
		case 0x04: data[0] = bcd(tm.tm_hour); break;
		case 0x06: data[0] = bcd(tm.tm_wday + 1); break;
		case 0x07: data[0] = bcd(tm.tm_mday); break;
		case 0x08: data[0] = bcd(tm.tm_mon + 1); break;
		case 0x09: data[0] = bcd(tm.tm_year % 100); break;
		case 0x0a: data[0] = 0x26; break;  /* 32 kHz, 1024 Hz; UIP clear */
		case 0x0b: data[0] = 0x02; break;  /* 24 h, BCD */
		case 0x0c: data[0] = 0x00; break;
		case 0x0d: data[0] = 0x80; break;  /* battery good */
		case 0x32: data[0] = bcd((tm.tm_year + 1900) / 100); break;
		default: data[0] = c->index >= 0x0e ? c->ram[c->index] : 0; break;
		}
	}
	pthread_mutex_unlock(&c->lock);
}
