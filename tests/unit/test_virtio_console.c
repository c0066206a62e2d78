/*
 * tests/unit/test_virtio_console.c — the multiport console through its
 * virtio-pci transport, driven like Linux's virtio_console driver: the
 * control handshake (DEVICE_READY, PORT_ADD, PORT_READY, CONSOLE_PORT,
 * PORT_NAME, PORT_OPEN), console bytes both ways, the agent port's
 * back-pressure (host disconnected, short host writes, the bounded buffer),
 * receive from an fd, hostile control messages, emergency write and reset.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <unistd.h>

#include "tests/unit/test_virtio_fake.h"
#include "virtio/console.h"

#define RAM_BYTES (2u << 20)
#define F(x) (1ull << (x))
#define MULTI (F(VIRTIO_F_VERSION_1) | F(VIRTIO_CONSOLE_F_MULTIPORT) | \
	       F(VIRTIO_CONSOLE_F_EMERG_WRITE) | F(VIRTIO_RING_F_EVENT_IDX))
enum { Q0RX, Q0TX, QCRX, QCTX, Q1RX, Q1TX, NQ };

struct cfx {
	struct fake_guest *g;
	struct virtio_console *c;
	struct virtio_pci *pci;
	struct fake_vq fvq[NQ];
	virtio_gpa_t buf_of[NQ][64]; /* gpa of the buffer behind each head */
	/* host side */
	char written[2][4096];
	size_t nr_written[2];
	ssize_t accept; /* per port_write call: -1 all, else at most this (0: -EAGAIN) */
	unsigned nr_open_cb, nr_rx_ready;
	bool last_open;
};

static ssize_t cb_write(void *opaque, enum virtio_console_port port, const void *buf, size_t len)
{
	struct cfx *f = opaque;
	size_t n = len;

	if (f->accept == 0)
		return -EAGAIN;
	if (f->accept > 0 && (size_t)f->accept < n)
		n = (size_t)f->accept;
	memcpy(f->written[port] + f->nr_written[port], buf, n);
	f->nr_written[port] += n;
	return (ssize_t)n;
}

static void cb_open(void *opaque, enum virtio_console_port port, bool open)
{
	struct cfx *f = opaque;

	f->nr_open_cb++;
	f->last_open = open;
}

static void cb_rx_ready(void *opaque, enum virtio_console_port port)
{
	((struct cfx *)opaque)->nr_rx_ready++;
}

/* Driver: add one buffer on queue q. */
static uint16_t add_buf(struct cfx *f, unsigned q, const void *data, uint32_t len, bool write)
{
	virtio_gpa_t gpa = fg_alloc(f->g, len ? len : 1, 8);
	struct fseg s = { gpa, len, write };
	uint16_t head;

	if (data)
		memcpy(fg_ptr(f->g, gpa), data, len);
	head = fvq_add(&f->fvq[q], &s, 1);
	f->buf_of[q][head] = gpa;
	return head;
}

static void ctrl_send(struct cfx *f, uint32_t id, uint16_t event, uint16_t value)
{
	struct virtio_console_control m = { htole32(id), htole16(event), htole16(value) };

	add_buf(f, QCTX, &m, sizeof(m), false);
	fp_kick(f->pci, QCTX);
	assert_true(fvq_get_used(&f->fvq[QCTX], NULL, NULL));
}

/* Driver: the next control message from the device; false when none. */
static bool ctrl_recv(struct cfx *f, uint32_t *id, uint16_t *event, uint16_t *value, char *name)
{
	uint32_t head = 0, len = 0;
	struct virtio_console_control m;

	if (!fvq_get_used(&f->fvq[QCRX], &head, &len))
		return false;
	assert_true(len >= sizeof(m));
	memcpy(&m, fg_ptr(f->g, f->buf_of[QCRX][head]), sizeof(m));
	*id = le32toh(m.id);
	*event = le16toh(m.event);
	*value = le16toh(m.value);
	if (name) {
		memcpy(name, (char *)fg_ptr(f->g, f->buf_of[QCRX][head]) + sizeof(m), len - sizeof(m));
		name[len - sizeof(m)] = 0;
	}
	return true;
}

static void expect_ctrl(struct cfx *f, uint32_t id, uint16_t event, uint16_t value)
{
	uint32_t i;
	uint16_t e, v;

	assert_true(ctrl_recv(f, &i, &e, &v, NULL));
	assert_int_equal(e, event);
	assert_int_equal(i, id);
	assert_int_equal(v, value);
}

static struct cfx *cfx_new(uint64_t features, size_t out_bytes, bool agent_connected)
{
	struct cfx *f = calloc(1, sizeof(*f));
	struct virtio_console_cfg cfg = {
		.queue_max_size = 64, .cols = 80, .rows = 25, .out_buffer_bytes = out_bytes,
		.agent_connected = agent_connected, .port_write = cb_write, .port_open = cb_open,
		.rx_ready = cb_rx_ready,
	};

	f->accept = -1;
	f->g = fg_create(RAM_BYTES, 0, 0);
	cfg.host = &f->g->host;
	cfg.opaque = f;
	assert_int_equal(virtio_console_create(&cfg, &f->c), 0);
	f->pci = virtio_console_pci(f->c);
	assert_true(fp_setup(f->pci, f->g, features, f->fvq, NQ, 64, true) &
		    VIRTIO_CONFIG_S_FEATURES_OK);
	return f;
}

/* The whole Linux-style bring-up; ends with both ports open in the guest. */
static struct cfx *cfx_up(size_t out_bytes, bool agent_connected)
{
	struct cfx *f = cfx_new(MULTI, out_bytes, agent_connected);
	char name[128];
	uint32_t id;
	uint16_t ev, val;

	for (int i = 0; i < 8; i++)
		add_buf(f, QCRX, NULL, 128, true);
	fp_driver_ok(f->pci);
	ctrl_send(f, 0, VIRTIO_CONSOLE_DEVICE_READY, 1);
	expect_ctrl(f, 0, VIRTIO_CONSOLE_PORT_ADD, 1);
	expect_ctrl(f, 1, VIRTIO_CONSOLE_PORT_ADD, 1);
	assert_false(ctrl_recv(f, &id, &ev, &val, NULL));
	ctrl_send(f, 0, VIRTIO_CONSOLE_PORT_READY, 1);
	expect_ctrl(f, 0, VIRTIO_CONSOLE_CONSOLE_PORT, 1);
	expect_ctrl(f, 0, VIRTIO_CONSOLE_PORT_OPEN, 1);
	ctrl_send(f, 1, VIRTIO_CONSOLE_PORT_READY, 1);
	assert_true(ctrl_recv(f, &id, &ev, &val, name));
	assert_int_equal(ev, VIRTIO_CONSOLE_PORT_NAME);
	assert_int_equal(id, 1);
	assert_string_equal(name, "org.ebb.agent.0");
	expect_ctrl(f, 1, VIRTIO_CONSOLE_PORT_OPEN, agent_connected);
	ctrl_send(f, 0, VIRTIO_CONSOLE_PORT_OPEN, 1);
	ctrl_send(f, 1, VIRTIO_CONSOLE_PORT_OPEN, 1);
	assert_true(virtio_console_guest_open(f->c, VIRTIO_CONSOLE_PORT_AGENT));
	assert_int_equal(f->nr_open_cb, 2);
	return f;
}

static void cfx_free(struct cfx *f)
{
	virtio_console_destroy(f->c);
	fg_destroy(f->g);
	free(f);
}

static void test_create_and_config(void **state)
{
	struct virtio_console *c = (void *)1;
	struct virtio_console_cfg bad = { 0 };

	assert_int_equal(virtio_console_create(&bad, &c), -EINVAL);
	assert_null(c);
	virtio_console_destroy(NULL);
	struct cfx *f = cfx_new(MULTI, 0, false);
	assert_int_equal(fp_r(f->pci, VIRTIO_PCI_DEVICE_OFFSET + 0, 2), 80);
	assert_int_equal(fp_r(f->pci, VIRTIO_PCI_DEVICE_OFFSET + 2, 2), 25);
	assert_int_equal(fp_r(f->pci, VIRTIO_PCI_DEVICE_OFFSET + 4, 4), 2);
	assert_int_equal(fp_cfgr(f->pci, 2, 2), 0x1043);
	cfx_free(f);
}

static void test_multiport_handshake(void **state)
{
	struct cfx *f = cfx_up(0, false);

	assert_true(f->last_open);
	ctrl_send(f, 1, VIRTIO_CONSOLE_PORT_OPEN, 0); /* the agent closes its port */
	assert_false(virtio_console_guest_open(f->c, VIRTIO_CONSOLE_PORT_AGENT));
	assert_false(f->last_open);
	assert_int_equal(virtio_console_write(f->c, VIRTIO_CONSOLE_PORT_AGENT, "x", 1), -ENOTCONN);
	assert_int_equal(virtio_console_counters(f->c)->nr_bad_ctrl, 0);
	cfx_free(f);
}

/* Control messages wait for buffers, bounded. */
static void test_ctrl_waits_for_buffers(void **state)
{
	struct cfx *f = cfx_new(MULTI, 0, false);
	uint32_t id;
	uint16_t ev, val;

	fp_driver_ok(f->pci);
	ctrl_send(f, 0, VIRTIO_CONSOLE_DEVICE_READY, 1);
	assert_false(ctrl_recv(f, &id, &ev, &val, NULL));
	add_buf(f, QCRX, NULL, 128, true);
	add_buf(f, QCRX, NULL, 128, true);
	fp_kick(f->pci, QCRX);
	expect_ctrl(f, 0, VIRTIO_CONSOLE_PORT_ADD, 1);
	expect_ctrl(f, 1, VIRTIO_CONSOLE_PORT_ADD, 1);
	/* 20 DEVICE_READY with no buffers: 40 messages, FIFO holds 16. */
	for (int i = 0; i < 20; i++)
		ctrl_send(f, 0, VIRTIO_CONSOLE_DEVICE_READY, 1);
	assert_int_equal(virtio_console_counters(f->c)->nr_ctrl_dropped, 40 - 16);
	cfx_free(f);
}

/* A control buffer too small for PORT_NAME: truncated, counted, no crash. */
static void test_ctrl_buffer_too_small(void **state)
{
	struct cfx *f = cfx_new(MULTI, 0, false);
	uint32_t head = 0, len = 0;

	for (int i = 0; i < 2; i++)
		add_buf(f, QCRX, NULL, 128, true);
	fp_driver_ok(f->pci);
	ctrl_send(f, 0, VIRTIO_CONSOLE_DEVICE_READY, 1);
	expect_ctrl(f, 0, VIRTIO_CONSOLE_PORT_ADD, 1);
	expect_ctrl(f, 1, VIRTIO_CONSOLE_PORT_ADD, 1);
	add_buf(f, QCRX, NULL, 10, true);
	add_buf(f, QCRX, NULL, 128, true);
	ctrl_send(f, 1, VIRTIO_CONSOLE_PORT_READY, 1);
	assert_true(fvq_get_used(&f->fvq[QCRX], &head, &len));
	assert_int_equal(len, 10); /* 8-byte header + 2 bytes of the name */
	assert_int_equal(virtio_console_errors(f->c)->nr_bad_request, 1);
	expect_ctrl(f, 1, VIRTIO_CONSOLE_PORT_OPEN, 0);
	cfx_free(f);
}

static void test_console_both_ways(void **state)
{
	struct cfx *f = cfx_up(0, false);
	uint32_t head = 0, len = 0;

	add_buf(f, Q0TX, "hello, host", 11, false);
	fp_kick(f->pci, Q0TX);
	assert_true(fvq_get_used(&f->fvq[Q0TX], NULL, NULL));
	assert_int_equal(f->nr_written[0], 11);
	assert_memory_equal(f->written[0], "hello, host", 11);
	/* Host to guest: no buffer yet. */
	assert_int_equal(virtio_console_write(f->c, VIRTIO_CONSOLE_PORT_CONSOLE, "hi", 2), 0);
	unsigned ready = f->nr_rx_ready;
	add_buf(f, Q0RX, NULL, 4, true);
	add_buf(f, Q0RX, NULL, 4, true);
	fp_kick(f->pci, Q0RX);
	assert_int_equal(f->nr_rx_ready, ready + 1);
	assert_int_equal(virtio_console_write(f->c, VIRTIO_CONSOLE_PORT_CONSOLE, "hello!", 6), 6);
	assert_true(fvq_get_used(&f->fvq[Q0RX], &head, &len));
	assert_int_equal(len, 4);
	assert_memory_equal(fg_ptr(f->g, f->buf_of[Q0RX][head]), "hell", 4);
	assert_true(fvq_get_used(&f->fvq[Q0RX], &head, &len));
	assert_int_equal(len, 2);
	assert_memory_equal(fg_ptr(f->g, f->buf_of[Q0RX][head]), "o!", 2);
	assert_int_equal(virtio_console_counters(f->c)->nr_rx_bytes[0], 6);
	cfx_free(f);
}

static void test_agent_waits_for_host(void **state)
{
	struct cfx *f = cfx_up(0, false);
	uint32_t id;
	uint16_t ev, val;

	add_buf(f, Q1TX, "{\"hello\":1}\n", 12, false);
	fp_kick(f->pci, Q1TX);
	assert_false(fvq_get_used(&f->fvq[Q1TX], NULL, NULL)); /* left in the ring */
	assert_int_equal(f->nr_written[1], 0);
	virtio_console_set_host_connected(f->c, VIRTIO_CONSOLE_PORT_AGENT, true);
	assert_true(ctrl_recv(f, &id, &ev, &val, NULL));
	assert_int_equal(ev, VIRTIO_CONSOLE_PORT_OPEN);
	assert_int_equal(val, 1);
	assert_true(fvq_get_used(&f->fvq[Q1TX], NULL, NULL));
	assert_int_equal(f->nr_written[1], 12);
	assert_memory_equal(f->written[1], "{\"hello\":1}\n", 12);
	virtio_console_set_host_connected(f->c, VIRTIO_CONSOLE_PORT_AGENT, false);
	expect_ctrl(f, 1, VIRTIO_CONSOLE_PORT_OPEN, 0);
	cfx_free(f);
}

static void test_agent_short_writes_backpressure(void **state)
{
	struct cfx *f = cfx_up(0, true);

	f->accept = 3;
	add_buf(f, Q1TX, "0123456789", 10, false);
	add_buf(f, Q1TX, "abcdef", 6, false);
	fp_kick(f->pci, Q1TX);
	/* First chain taken (3 written, 7 buffered); the second waits. */
	assert_true(fvq_get_used(&f->fvq[Q1TX], NULL, NULL));
	assert_false(fvq_get_used(&f->fvq[Q1TX], NULL, NULL));
	assert_int_equal(f->nr_written[1], 3);
	assert_int_equal(virtio_console_out_pending(f->c, VIRTIO_CONSOLE_PORT_AGENT), 7);
	f->accept = -1;
	virtio_console_host_writable(f->c, VIRTIO_CONSOLE_PORT_AGENT);
	assert_true(fvq_get_used(&f->fvq[Q1TX], NULL, NULL));
	assert_int_equal(f->nr_written[1], 16);
	assert_memory_equal(f->written[1], "0123456789abcdef", 16);
	assert_int_equal(virtio_console_out_pending(f->c, VIRTIO_CONSOLE_PORT_AGENT), 0);
	assert_int_equal(virtio_console_counters(f->c)->nr_tx_bytes[1], 16);
	cfx_free(f);
}

static void test_agent_buffer_is_bounded(void **state)
{
	struct cfx *f = cfx_up(16, true);
	char big[40];

	memset(big, 'z', sizeof(big));
	f->accept = 0; /* host socket full */
	add_buf(f, Q1TX, big, sizeof(big), false);
	fp_kick(f->pci, Q1TX);
	assert_true(fvq_get_used(&f->fvq[Q1TX], NULL, NULL));
	assert_int_equal(virtio_console_out_pending(f->c, VIRTIO_CONSOLE_PORT_AGENT), 16);
	assert_int_equal(virtio_console_counters(f->c)->nr_dropped_bytes[1], 24);
	/* Disconnect drops the partial message too. */
	virtio_console_set_host_connected(f->c, VIRTIO_CONSOLE_PORT_AGENT, false);
	assert_int_equal(virtio_console_out_pending(f->c, VIRTIO_CONSOLE_PORT_AGENT), 0);
	assert_int_equal(virtio_console_counters(f->c)->nr_dropped_bytes[1], 40);
	cfx_free(f);
}

static void test_agent_read_fd(void **state)
{
	struct cfx *f = cfx_up(0, true);
	int fds[2];
	uint32_t head = 0, len = 0;

	assert_int_equal(pipe2(fds, O_NONBLOCK), 0);
	assert_int_equal(virtio_console_read_fd(f->c, VIRTIO_CONSOLE_PORT_AGENT, fds[0]), -ENOBUFS);
	add_buf(f, Q1RX, NULL, 64, true);
	assert_int_equal(virtio_console_read_fd(f->c, VIRTIO_CONSOLE_PORT_AGENT, fds[0]), -EAGAIN);
	assert_int_equal(write(fds[1], "{\"cmd\":\"stat\"}\n", 15), 15);
	assert_int_equal(virtio_console_read_fd(f->c, VIRTIO_CONSOLE_PORT_AGENT, fds[0]), 15);
	assert_true(fvq_get_used(&f->fvq[Q1RX], &head, &len));
	assert_int_equal(len, 15);
	assert_memory_equal(fg_ptr(f->g, f->buf_of[Q1RX][head]), "{\"cmd\":\"stat\"}\n", 15);
	add_buf(f, Q1RX, NULL, 64, true);
	close(fds[1]);
	assert_int_equal(virtio_console_read_fd(f->c, VIRTIO_CONSOLE_PORT_AGENT, fds[0]), 0);
	close(fds[0]);
	cfx_free(f);
}

static void test_hostile_control(void **state)
{
	struct cfx *f = cfx_up(0, false);
	const struct virtio_console_counters *ctr = virtio_console_counters(f->c);

	ctrl_send(f, 7, VIRTIO_CONSOLE_PORT_OPEN, 1);      /* no such port */
	ctrl_send(f, 0xffffffffu, VIRTIO_CONSOLE_PORT_READY, 1);
	ctrl_send(f, 0, 99, 1);                            /* unknown event */
	ctrl_send(f, 0, VIRTIO_CONSOLE_RESIZE, 1);         /* device-to-driver only */
	add_buf(f, QCTX, "abc", 3, false);                 /* short message */
	fp_kick(f->pci, QCTX);
	assert_true(fvq_get_used(&f->fvq[QCTX], NULL, NULL));
	assert_int_equal(ctr->nr_bad_ctrl, 5);
	assert_false(virtio_pci_status(f->pci) & VIRTIO_CONFIG_S_NEEDS_RESET);
	/* A broken ring, though, needs a reset. */
	f->fvq[QCTX].avail->idx = htole16(f->fvq[QCTX].avail_idx + 100);
	fp_kick(f->pci, QCTX);
	assert_true(virtio_pci_status(f->pci) & VIRTIO_CONFIG_S_NEEDS_RESET);
	assert_int_equal(virtio_console_errors(f->c)->nr_avail_jump, 1);
	cfx_free(f);
}

static void test_single_port_console(void **state)
{
	struct cfx *f = cfx_new(F(VIRTIO_F_VERSION_1), 0, false);

	fp_driver_ok(f->pci);
	add_buf(f, Q0TX, "boot", 4, false);
	fp_kick(f->pci, Q0TX);
	assert_int_equal(f->nr_written[0], 4);
	add_buf(f, Q0RX, NULL, 8, true);
	assert_int_equal(virtio_console_write(f->c, VIRTIO_CONSOLE_PORT_CONSOLE, "ls\n", 3), 3);
	assert_int_equal(virtio_console_write(f->c, VIRTIO_CONSOLE_PORT_AGENT, "x", 1), -ENOTCONN);
	cfx_free(f);
}

static void test_emergency_write(void **state)
{
	struct cfx *f = cfx_up(0, false);

	fp_w(f->pci, VIRTIO_PCI_DEVICE_OFFSET + 8, '!', 4);
	assert_int_equal(f->nr_written[0], 1);
	assert_int_equal(f->written[0][0], '!');
	fp_w(f->pci, VIRTIO_PCI_DEVICE_OFFSET + 4, 9, 4); /* max_nr_ports is read-only */
	assert_int_equal(fp_r(f->pci, VIRTIO_PCI_DEVICE_OFFSET + 4, 4), 2);
	assert_int_equal(virtio_console_errors(f->c)->nr_bad_register, 1);
	cfx_free(f);
}

static void test_reset_and_rebind(void **state)
{
	struct cfx *f = cfx_up(0, true);

	fp_w(f->pci, FP_COMMON(STATUS), 0, 1);
	assert_false(virtio_console_guest_open(f->c, VIRTIO_CONSOLE_PORT_AGENT));
	assert_int_equal(virtio_console_write(f->c, VIRTIO_CONSOLE_PORT_CONSOLE, "x", 1), -ENOTCONN);
	/* The driver binds again: same handshake, host side still connected. */
	memset(f->fvq, 0, sizeof(f->fvq));
	assert_true(fp_setup(f->pci, f->g, MULTI, f->fvq, NQ, 64, true) &
		    VIRTIO_CONFIG_S_FEATURES_OK);
	for (int i = 0; i < 8; i++)
		add_buf(f, QCRX, NULL, 128, true);
	fp_driver_ok(f->pci);
	ctrl_send(f, 0, VIRTIO_CONSOLE_DEVICE_READY, 1);
	expect_ctrl(f, 0, VIRTIO_CONSOLE_PORT_ADD, 1);
	expect_ctrl(f, 1, VIRTIO_CONSOLE_PORT_ADD, 1);
	ctrl_send(f, 1, VIRTIO_CONSOLE_PORT_READY, 1);
	uint32_t id;
	uint16_t ev, val;
	assert_true(ctrl_recv(f, &id, &ev, &val, NULL));
	assert_int_equal(ev, VIRTIO_CONSOLE_PORT_NAME);
	expect_ctrl(f, 1, VIRTIO_CONSOLE_PORT_OPEN, 1);
	cfx_free(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_and_config),
		cmocka_unit_test(test_multiport_handshake),
		cmocka_unit_test(test_ctrl_waits_for_buffers),
		cmocka_unit_test(test_ctrl_buffer_too_small),
		cmocka_unit_test(test_console_both_ways),
		cmocka_unit_test(test_agent_waits_for_host),
		cmocka_unit_test(test_agent_short_writes_backpressure),
		cmocka_unit_test(test_agent_buffer_is_bounded),
		cmocka_unit_test(test_agent_read_fd),
		cmocka_unit_test(test_hostile_control),
		cmocka_unit_test(test_single_port_console),
		cmocka_unit_test(test_emergency_write),
		cmocka_unit_test(test_reset_and_rebind),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
