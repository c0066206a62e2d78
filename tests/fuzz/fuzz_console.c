/*
 * tests/fuzz/fuzz_console.c — libFuzzer target for the console device:
 * multiport control queue, both ports' receive and transmit queues, and the
 * host side (writes, reads from an fd, back-pressure from the host writer,
 * agent connect / disconnect).  A fake driver brings the device up with
 * MULTIPORT, then the input is a program of operations: control messages
 * from the guest (any id / event / value, split over empty and odd-length
 * segments), control and receive buffers of fuzzer-chosen lengths, guest
 * output, host input, host writer answers (all, part, none, -EAGAIN),
 * connects and hangups, garbage over a ring, raw register writes, resets.
 * Invariants trap when broken: the buffered output stays within its bound,
 * the host never gets more bytes than the guest sent on a port, nor the
 * guest more than the host wrote, and (without raw ring / register writes)
 * the host receives exactly the guest's byte stream, in order, minus what
 * was counted as dropped.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/unit/test_virtio_fake.h"
#include "virtio/console.h"

#define RAM_BYTES (64u * 4096)
#define HOLE_START (56u * 4096)
#define HOLE_END (60u * 4096)
#define QSIZE 16
#define NQ 6
#define OUT_BYTES 512u
#define BUF_GPA (16u * 4096)         /* driver buffers: pages 16..47 */
#define BUF_BYTES (32u * 4096)
#define F(x) (1ull << (x))

struct fz {
	struct fake_guest *g;
	struct virtio_console *c;
	struct virtio_pci *pci;
	struct fake_vq fvq[NQ];
	int mode;                    /* what port_write answers */
	bool wild;                   /* raw ring / register writes happened */
	uint64_t guest_sent[VIRTIO_CONSOLE_NR_PORTS];  /* bytes put in tx chains */
	uint64_t host_got[VIRTIO_CONSOLE_NR_PORTS];    /* bytes port_write took */
	uint64_t host_sent[VIRTIO_CONSOLE_NR_PORTS];   /* bytes offered to the guest */
	uint8_t seq_out[VIRTIO_CONSOLE_NR_PORTS];      /* next byte the guest writes */
	uint8_t seq_in[VIRTIO_CONSOLE_NR_PORTS];       /* next byte the host expects */
	uint32_t next_buf;
	int pipe_rd, pipe_wr;
};

static ssize_t cb_write(void *opaque, enum virtio_console_port port, const void *buf, size_t len)
{
	struct fz *z = opaque;
	const uint8_t *b = buf;
	size_t n;

	if (port >= VIRTIO_CONSOLE_NR_PORTS || len == 0)
		__builtin_trap();
	switch (z->mode) {
	case 0: n = len; break;
	case 1: n = (len + 1) / 2; break;
	case 2: n = 0; break;
	default: return -EAGAIN;
	}
	for (size_t i = 0; i < n && !z->wild; i++) {
		/* The guest's stream in order; drops are whole tails (counted). */
		if (b[i] != z->seq_in[port]) {
			uint64_t dropped = virtio_console_counters(z->c)->nr_dropped_bytes[port];
			if (!dropped)
				__builtin_trap();
			z->seq_in[port] = b[i];
		}
		z->seq_in[port]++;
	}
	z->host_got[port] += n;
	return (ssize_t)n;
}

static void cb_open(void *opaque, enum virtio_console_port port, bool open)
{
	if (port >= VIRTIO_CONSOLE_NR_PORTS)
		__builtin_trap();
}

static void cb_rx_ready(void *opaque, enum virtio_console_port port)
{
	if (port >= VIRTIO_CONSOLE_NR_PORTS)
		__builtin_trap();
}

struct rd {
	const uint8_t *p;
	size_t left;
};

static uint8_t u8(struct rd *r)
{
	if (!r->left)
		return 0;
	r->left--;
	return *r->p++;
}

static uint16_t u16(struct rd *r)
{
	return (uint16_t)(u8(r) | u8(r) << 8);
}

/* A driver buffer of len bytes from the scratch area (wraps around). */
static virtio_gpa_t buf_alloc(struct fz *z, uint32_t len)
{
	virtio_gpa_t gpa;

	if (z->next_buf + len > BUF_BYTES)
		z->next_buf = 0;
	gpa = BUF_GPA + z->next_buf;
	z->next_buf += len;
	return gpa;
}

/* Descriptors are reused round robin: with many chains outstanding the
 * driver overwrites its own, and the byte accounting no longer holds. */
static void add_chain(struct fz *z, unsigned q, const struct fseg *s, unsigned n)
{
	uint16_t outstanding = (uint16_t)(z->fvq[q].avail_idx - le16toh(z->fvq[q].used->idx));

	if (4u * outstanding + 4u > QSIZE)
		z->wild = true;
	fvq_add(&z->fvq[q], s, n);
	fp_kick(z->pci, (uint16_t)q);
}

/* Split [gpa, gpa + len) into up to 4 segments at fuzzer-chosen points. */
static unsigned split(struct rd *r, virtio_gpa_t gpa, uint32_t len, bool write, struct fseg *s)
{
	unsigned nseg = 1 + u8(r) % 4;
	uint32_t at = 0;

	for (unsigned i = 0; i < nseg; i++) {
		uint32_t n = i + 1 < nseg ? u8(r) % (len - at + 1) : len - at;
		s[i] = (struct fseg){ gpa + at, n, write };
		at += n;
	}
	return nseg;
}

static void bring_up(struct fz *z)
{
	z->g->alloc_next = 0x1000;
	fp_setup(z->pci, z->g, F(VIRTIO_F_VERSION_1) | F(VIRTIO_CONSOLE_F_MULTIPORT) |
		 F(VIRTIO_RING_F_EVENT_IDX) | F(VIRTIO_RING_F_INDIRECT_DESC),
		 z->fvq, NQ, QSIZE, true);
	fp_driver_ok(z->pci);
}

static void check(struct fz *z)
{
	const struct virtio_console_counters *c = virtio_console_counters(z->c);

	for (unsigned p = 0; p < VIRTIO_CONSOLE_NR_PORTS; p++) {
		if (virtio_console_out_pending(z->c, p) > OUT_BYTES)
			__builtin_trap();
		if (z->wild)
			continue;
		if (c->nr_tx_bytes[p] != z->host_got[p])
			__builtin_trap();
		if (c->nr_tx_bytes[p] + c->nr_dropped_bytes[p] + virtio_console_out_pending(z->c, p) >
		    z->guest_sent[p])
			__builtin_trap();
		if (c->nr_rx_bytes[p] > z->host_sent[p])
			__builtin_trap();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct fake_guest *guest;
	static int pipefd[2] = { -1, -1 };
	struct rd r = { data, size };
	struct fz z;
	struct virtio_console_cfg cfg = {
		.queue_max_size = QSIZE, .out_buffer_bytes = OUT_BYTES, .port_write = cb_write,
		.port_open = cb_open, .rx_ready = cb_rx_ready,
	};
	uint8_t bytes[256];

	if (!guest) {
		guest = fg_create(RAM_BYTES, HOLE_START, HOLE_END);
		guest->host.log = NULL;
		if (pipe2(pipefd, O_NONBLOCK | O_CLOEXEC))
			abort();
	}
	memset(guest->ram, 0, RAM_BYTES);
	guest->now_ns = 0;
	memset(&z, 0, sizeof(z));
	z.g = guest;
	z.pipe_rd = pipefd[0];
	z.pipe_wr = pipefd[1];
	cfg.host = &guest->host;
	cfg.opaque = &z;
	cfg.agent_connected = size && (data[0] & 1);
	if (virtio_console_create(&cfg, &z.c))
		__builtin_trap();
	z.pci = virtio_console_pci(z.c);
	bring_up(&z);

	for (unsigned ops = 0; r.left && ops < 64; ops++) {
		uint8_t op = u8(&r);
		unsigned port = op >> 7;
		struct fseg s[4];
		unsigned n;

		switch (op % 11) {
		case 0: { /* a control message from the guest */
			struct virtio_console_control m = {
				htole32(u8(&r) % 4), htole16(u8(&r) % 10), htole16(u8(&r) % 3),
			};
			virtio_gpa_t gpa = buf_alloc(&z, sizeof(m));
			memcpy(fg_ptr(z.g, gpa), &m, sizeof(m));
			n = split(&r, gpa, sizeof(m) - (op & 0x40 ? 1 : 0), false, s);
			add_chain(&z, 3, s, n);
			break;
		}
		case 1: /* control receive buffers */
		case 2: { /* port receive buffers */
			uint32_t len = u8(&r);
			unsigned q = op % 11 == 1 ? 2 : (port ? 4 : 0);
			n = split(&r, buf_alloc(&z, len), len, true, s);
			add_chain(&z, q, s, n);
			break;
		}
		case 3: { /* guest output on a port */
			uint32_t len = u8(&r);
			virtio_gpa_t gpa = buf_alloc(&z, len);
			uint8_t *p = fg_ptr(z.g, gpa);
			for (uint32_t i = 0; i < len; i++)
				p[i] = z.seq_out[port]++;
			z.guest_sent[port] += len;
			n = split(&r, gpa, len, false, s);
			add_chain(&z, port ? 5 : 1, s, n);
			break;
		}
		case 4: { /* host input */
			size_t len = u8(&r);
			for (size_t i = 0; i < len; i++)
				bytes[i] = u8(&r);
			ssize_t got = virtio_console_write(z.c, port, bytes, len);
			if (got > (ssize_t)len || (got < 0 && got != -ENOTCONN))
				__builtin_trap();
			z.host_sent[port] += len;
			break;
		}
		case 5: { /* host input from an fd */
			size_t len = u8(&r);
			memset(bytes, 0xa5, len);
			if (len && write(z.pipe_wr, bytes, len) != (ssize_t)len)
				abort();
			z.host_sent[port] += len;
			ssize_t got = virtio_console_read_fd(z.c, port, z.pipe_rd);
			if (got > (ssize_t)len)
				__builtin_trap();
			while (read(z.pipe_rd, bytes, sizeof(bytes)) > 0)
				; /* what the guest did not take */
			break;
		}
		case 6: /* the host writer's mood, then it is writable again */
			z.mode = u8(&r) % 4;
			virtio_console_host_writable(z.c, port);
			break;
		case 7:
			virtio_console_set_host_connected(z.c, VIRTIO_CONSOLE_PORT_AGENT, op & 0x40);
			break;
		case 8: { /* garbage over a ring, then a kick */
			unsigned q = u8(&r) % NQ;
			uint8_t *ring = fg_ptr(z.g, (op & 0x40) ? z.fvq[q].avail_gpa : z.fvq[q].desc_gpa);
			unsigned len = u8(&r) % 64, at = u8(&r) % 128;
			z.wild = true;
			for (unsigned i = 0; i < len; i++)
				ring[(at + i) % 128] = u8(&r);
			fp_kick(z.pci, (uint16_t)q);
			break;
		}
		case 9: { /* a raw register write: device config, transport, PCI config */
			uint8_t sel = u8(&r);
			uint32_t off = u16(&r), len = 1u << (sel >> 6);
			uint32_t v = (uint32_t)u16(&r) | (uint32_t)u16(&r) << 16;
			z.wild = true;
			if (sel & 1)
				fp_cfgw(z.pci, off % 260, v, len == 8 ? 3 : len);
			else if (sel & 2)
				fp_w(z.pci, off % VIRTIO_PCI_BAR0_SIZE, v, len);
			else
				fp_w(z.pci, VIRTIO_PCI_DEVICE_OFFSET + (off & 15), v, len);
			break;
		}
		case 10: /* reset and bring up again */
			z.wild = true; /* output buffered before the reset is dropped uncounted */
			fp_w(z.pci, VIRTIO_PCI_COMMON_OFFSET + VIRTIO_PCI_COMMON_STATUS, 0, 1);
			memset(z.fvq, 0, sizeof(z.fvq));
			bring_up(&z);
			break;
		}
		for (unsigned i = 0; i < 8 && virtio_pci_poll(z.pci); i++)
			;
		check(&z);
	}
	virtio_console_destroy(z.c);
	return 0;
}
