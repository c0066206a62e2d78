/*
 * virtio/console.c — virtio console with MULTIPORT: the VM console on port
 * 0 and the agent port on port 1.
 *
 * Overview.  Queue numbering (spec 5.3.2): port 0 receive/transmit are
 * queues 0/1, the control receive/transmit queues 2/3, port p >= 1 uses
 * 2 + 2p / 3 + 2p.  Control messages we send wait in a small bounded FIFO
 * until the driver gives control-receive buffers.  Transmit processing takes
 * a chain only when the port's out buffer is empty, writes it to the host
 * callback directly from guest memory, keeps what the host did not take
 * (bounded, excess dropped and counted) and returns the chain; a non-empty
 * out buffer stops transmit processing until the host says it is writable,
 * which is the back-pressure the guest feels (its ring fills up).
 * Receiving copies host bytes into the guest's receive chains and returns
 * each with the length written; nothing is buffered on this side.
 */
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include <linux/virtio_config.h>
#include <linux/virtio_ids.h>

#include "virtio/console.h"

#define DEFAULT_QUEUE_SIZE 256u
#define DEFAULT_OUT_BYTES (64u * 1024)
#define CTRL_FIFO 16u
#define NAME_MAX_BYTES 64u
#define CTRL_BYTES ((uint32_t)sizeof(struct virtio_console_control))
#define Q_CTRL_RX 2u
#define Q_CTRL_TX 3u
#define NR_QUEUES (2u + 2u * VIRTIO_CONSOLE_NR_PORTS)

struct ctrl_msg {
	uint16_t len;
	uint8_t data[sizeof(struct virtio_console_control) + NAME_MAX_BYTES];
};

struct port {
	bool ready;        /* the driver sent PORT_READY 1 */
	bool guest_open;   /* a guest process has the port open */
	bool host_open;    /* the host side is connected */
	uint8_t *out;      /* guest->host bytes the host has not taken yet */
	size_t out_len;
	bool rx_held;      /* a popped receive chain waiting for data (read_fd) */
	struct virtio_chain rx_chain;
};

struct virtio_console {
	struct virtio_console_cfg cfg;
	const struct virtio_host *host;
	struct virtio_pci *pci;
	struct virtio_dev_errors errs;
	struct ebb_ratelimit rl;
	struct virtio_console_counters ctr;
	char name[NAME_MAX_BYTES];
	size_t name_len;
	size_t out_cap;
	bool multiport;
	struct port ports[VIRTIO_CONSOLE_NR_PORTS];
	struct ctrl_msg ctrl[CTRL_FIFO];
	unsigned ctrl_head, ctrl_count;
	struct virtio_chain scratch;
};

#define c_warn(c, ...) \
	virtio_log_ratelimited((c)->host, &(c)->rl, &(c)->errs.nr_logs_suppressed, __VA_ARGS__)

static uint16_t rx_queue(unsigned port) { return (uint16_t)(port == 0 ? 0 : 2 + 2 * port); }
static uint16_t tx_queue(unsigned port) { return (uint16_t)(rx_queue(port) + 1); }

static void signal_if_needed(struct virtio_console *c, uint16_t q)
{
	if (virtio_vq_need_notify(virtio_pci_vq(c->pci, q)))
		virtio_pci_signal_queue(c->pci, q);
}

/* --- control queue --------------------------------------------------------- */

static void flush_ctrl(struct virtio_console *c)
{
	struct virtio_vq *vq = virtio_pci_vq(c->pci, Q_CTRL_RX);
	bool pushed = false;

	while (c->ctrl_count && virtio_vq_pop(vq, &c->scratch) == 1) {
		struct ctrl_msg *m = &c->ctrl[c->ctrl_head];
		size_t n = virtio_chain_write(&c->scratch, 0, m->data, m->len);

		if (n < m->len) {
			c->errs.nr_bad_request++;
			c_warn(c, "virtio-console: control buffer too small (%zu)", n);
		}
		virtio_vq_push(vq, c->scratch.head, (uint32_t)n);
		pushed = true;
		c->ctr.nr_ctrl_sent++;
		c->ctrl_head = (c->ctrl_head + 1) % CTRL_FIFO;
		c->ctrl_count--;
	}
	if (pushed)
		signal_if_needed(c, Q_CTRL_RX);
}

static void send_ctrl(struct virtio_console *c, uint32_t id, uint16_t event, uint16_t value,
		      const void *extra, size_t extra_len)
{
	struct virtio_console_control hdr = { htole32(id), htole16(event), htole16(value) };
	struct ctrl_msg *m;

	if (c->ctrl_count == CTRL_FIFO) {
		c->ctr.nr_ctrl_dropped++;
		c_warn(c, "virtio-console: control FIFO full, event %u dropped", event);
		return;
	}
	m = &c->ctrl[(c->ctrl_head + c->ctrl_count) % CTRL_FIFO];
	memcpy(m->data, &hdr, CTRL_BYTES);
	if (extra_len)
		memcpy(m->data + CTRL_BYTES, extra, extra_len);
	m->len = (uint16_t)(CTRL_BYTES + extra_len);
	c->ctrl_count++;
	flush_ctrl(c);
}

static void process_tx(struct virtio_console *c, unsigned port);

/* GUEST: one control message from the driver. */
static void handle_ctrl(struct virtio_console *c, const struct virtio_console_control *m)
{
	uint32_t id = le32toh(m->id);
	uint16_t event = le16toh(m->event), value = le16toh(m->value);
	struct port *p;

	c->ctr.nr_ctrl_received++;
	if (event == VIRTIO_CONSOLE_DEVICE_READY) {
		if (value != 1) {
			c_warn(c, "virtio-console: driver failed to initialise");
			return;
		}
		for (uint32_t i = 0; i < VIRTIO_CONSOLE_NR_PORTS; i++)
			send_ctrl(c, i, VIRTIO_CONSOLE_PORT_ADD, 1, NULL, 0);
		return;
	}
	if (id >= VIRTIO_CONSOLE_NR_PORTS ||
	    (event != VIRTIO_CONSOLE_PORT_READY && event != VIRTIO_CONSOLE_PORT_OPEN)) {
		c->ctr.nr_bad_ctrl++;
		c_warn(c, "virtio-console: bad control message id %u event %u", id, event);
		return;
	}
	p = &c->ports[id];
	if (event == VIRTIO_CONSOLE_PORT_READY) {
		if (value != 1) {
			c_warn(c, "virtio-console: driver failed to add port %u", id);
			return;
		}
		p->ready = true;
		if (id == VIRTIO_CONSOLE_PORT_CONSOLE) {
			send_ctrl(c, id, VIRTIO_CONSOLE_CONSOLE_PORT, 1, NULL, 0);
		} else {
			send_ctrl(c, id, VIRTIO_CONSOLE_PORT_NAME, 1, c->name, c->name_len);
		}
		send_ctrl(c, id, VIRTIO_CONSOLE_PORT_OPEN, p->host_open, NULL, 0);
		return;
	}
	/* PORT_OPEN */
	if (p->guest_open == (value != 0))
		return;
	p->guest_open = value != 0;
	if (c->cfg.port_open)
		c->cfg.port_open(c->cfg.opaque, id, p->guest_open);
}

static void process_ctrl_tx(struct virtio_console *c)
{
	struct virtio_vq *vq = virtio_pci_vq(c->pci, Q_CTRL_TX);
	unsigned budget = vq->size;
	bool pushed = false;

	do {
		while (budget && virtio_vq_pop(vq, &c->scratch) == 1) {
			struct virtio_console_control m;
			uint16_t head = c->scratch.head;

			budget--;
			if (virtio_chain_read(&c->scratch, 0, &m, CTRL_BYTES) < CTRL_BYTES) {
				c->ctr.nr_bad_ctrl++;
				c_warn(c, "virtio-console: short control message");
			} else {
				handle_ctrl(c, &m); /* may reuse scratch: head saved */
			}
			virtio_vq_push(vq, head, 0);
			pushed = true;
		}
		if (!budget) {
			if (virtio_vq_notify_on(vq))
				virtio_pci_defer(c->pci, Q_CTRL_TX);
			break;
		}
	} while (virtio_vq_notify_on(vq));
	if (pushed)
		signal_if_needed(c, Q_CTRL_TX);
}

/* --- guest -> host ----------------------------------------------------------- */

/* Push buffered bytes to the host; true when the buffer is empty. */
static bool drain(struct virtio_console *c, unsigned port)
{
	struct port *p = &c->ports[port];

	while (p->out_len) {
		ssize_t n;

		if (!c->cfg.port_write) {
			c->ctr.nr_dropped_bytes[port] += p->out_len;
			p->out_len = 0;
			break;
		}
		n = c->cfg.port_write(c->cfg.opaque, port, p->out, p->out_len);
		if (n <= 0)
			return false;
		if ((size_t)n > p->out_len)
			n = (ssize_t)p->out_len; /* a callback bug, not guest input */
		c->ctr.nr_tx_bytes[port] += (uint64_t)n;
		memmove(p->out, p->out + n, p->out_len - (size_t)n);
		p->out_len -= (size_t)n;
	}
	return true;
}

static void deliver_chain(struct virtio_console *c, unsigned port, const struct virtio_chain *ch)
{
	struct port *p = &c->ports[port];

	for (uint16_t i = 0; i < ch->nr_out; i++) {
		const uint8_t *data = ch->segs[i].host;
		size_t len = ch->segs[i].len_bytes, room;

		if (!len)
			continue;
		if (!c->cfg.port_write) {
			c->ctr.nr_dropped_bytes[port] += len;
			continue;
		}
		if (!p->out_len) {
			ssize_t n = c->cfg.port_write(c->cfg.opaque, port, data, len);

			if (n > 0) {
				if ((size_t)n > len)
					n = (ssize_t)len;
				c->ctr.nr_tx_bytes[port] += (uint64_t)n;
				data += n;
				len -= (size_t)n;
			}
		}
		room = c->out_cap - p->out_len;
		if (len > room) {
			c->ctr.nr_dropped_bytes[port] += len - room;
			c_warn(c, "virtio-console: port %u output over %zu bytes, dropped %zu", port,
			       c->out_cap, len - room);
			len = room;
		}
		memcpy(p->out + p->out_len, data, len);
		p->out_len += len;
	}
}

static void process_tx(struct virtio_console *c, unsigned port)
{
	struct virtio_vq *vq = virtio_pci_vq(c->pci, tx_queue(port));
	unsigned budget = vq->size;
	bool pushed = false;

	if (!virtio_pci_driver_ok(c->pci))
		return;
	if (port != VIRTIO_CONSOLE_PORT_CONSOLE && !c->ports[port].host_open)
		return; /* nobody to read it: leave the guest's buffers in the ring */
	if (!drain(c, port))
		return;
	do {
		while (budget && !c->ports[port].out_len && virtio_vq_pop(vq, &c->scratch) == 1) {
			budget--;
			deliver_chain(c, port, &c->scratch);
			virtio_vq_push(vq, c->scratch.head, 0);
			pushed = true;
		}
		if (!budget && !c->ports[port].out_len) {
			if (virtio_vq_notify_on(vq))
				virtio_pci_defer(c->pci, tx_queue(port));
			break;
		}
	} while (!c->ports[port].out_len && virtio_vq_notify_on(vq));
	if (pushed)
		signal_if_needed(c, tx_queue(port));
}

/* --- host -> guest ----------------------------------------------------------- */

static bool rx_usable(const struct virtio_console *c, unsigned port)
{
	if (!virtio_pci_driver_ok(c->pci) || port >= VIRTIO_CONSOLE_NR_PORTS)
		return false;
	if (!c->multiport)
		return port == VIRTIO_CONSOLE_PORT_CONSOLE;
	return c->ports[port].ready && c->ports[port].guest_open;
}

ssize_t virtio_console_write(struct virtio_console *c, enum virtio_console_port port,
			     const void *buf, size_t len)
{
	struct virtio_vq *vq;
	struct port *p;
	size_t done = 0;
	unsigned budget;
	bool pushed = false;

	if (!rx_usable(c, port))
		return -ENOTCONN;
	p = &c->ports[port];
	vq = virtio_pci_vq(c->pci, rx_queue(port));
	budget = vq->size; /* zero-room chains from a busy guest cannot spin us */
	while (done < len && budget--) {
		size_t n;

		if (!p->rx_held) {
			if (virtio_vq_pop(vq, &p->rx_chain) != 1)
				break;
			p->rx_held = true;
		}
		n = virtio_chain_write(&p->rx_chain, 0, (const uint8_t *)buf + done, len - done);
		virtio_vq_push(vq, p->rx_chain.head, (uint32_t)n);
		p->rx_held = false;
		pushed = true;
		done += n;
	}
	if (pushed)
		signal_if_needed(c, rx_queue(port));
	c->ctr.nr_rx_bytes[port] += done;
	return (ssize_t)done;
}

ssize_t virtio_console_read_fd(struct virtio_console *c, enum virtio_console_port port, int fd)
{
	struct iovec iov[VIRTIO_CHAIN_MAX_SEGS];
	struct virtio_vq *vq;
	struct port *p;
	int nr = 0;
	ssize_t n;

	if (!rx_usable(c, port))
		return -ENOTCONN;
	p = &c->ports[port];
	vq = virtio_pci_vq(c->pci, rx_queue(port));
	if (!p->rx_held) {
		int r = virtio_vq_pop(vq, &p->rx_chain);
		if (r < 0)
			return -EIO;
		if (r == 0)
			return -ENOBUFS;
		p->rx_held = true;
	}
	for (uint16_t i = p->rx_chain.nr_out; i < p->rx_chain.nr_segs; i++) {
		if (!p->rx_chain.segs[i].len_bytes)
			continue;
		iov[nr].iov_base = p->rx_chain.segs[i].host;
		iov[nr].iov_len = p->rx_chain.segs[i].len_bytes;
		nr++;
	}
	if (nr == 0) { /* a receive buffer with no room: give it back empty */
		virtio_vq_push(vq, p->rx_chain.head, 0);
		p->rx_held = false;
		signal_if_needed(c, rx_queue(port));
		return -ENOBUFS;
	}
	n = readv(fd, iov, nr);
	if (n < 0)
		return -errno;
	if (n == 0)
		return 0; /* EOF: the chain stays held for the next connection */
	virtio_vq_push(vq, p->rx_chain.head, (uint32_t)n);
	p->rx_held = false;
	signal_if_needed(c, rx_queue(port));
	c->ctr.nr_rx_bytes[port] += (uint64_t)n;
	return n;
}

void virtio_console_host_writable(struct virtio_console *c, enum virtio_console_port port)
{
	if (port < VIRTIO_CONSOLE_NR_PORTS)
		process_tx(c, port);
}

void virtio_console_set_host_connected(struct virtio_console *c, enum virtio_console_port port,
				       bool connected)
{
	struct port *p;

	if (port >= VIRTIO_CONSOLE_NR_PORTS)
		return;
	p = &c->ports[port];
	if (p->host_open == connected)
		return;
	p->host_open = connected;
	if (!connected && p->out_len) {
		/* Half a message must not reach the next client. */
		c->ctr.nr_dropped_bytes[port] += p->out_len;
		p->out_len = 0;
	}
	if (c->multiport && p->ready && virtio_pci_driver_ok(c->pci))
		send_ctrl(c, port, VIRTIO_CONSOLE_PORT_OPEN, connected, NULL, 0);
	if (connected)
		process_tx(c, port);
}

/* --- transport hooks ---------------------------------------------------------- */

static void queue_notify(void *dev, uint16_t q)
{
	struct virtio_console *c = dev;

	if (q == Q_CTRL_RX) {
		if (c->multiport)
			flush_ctrl(c);
		return;
	}
	if (q == Q_CTRL_TX) {
		if (c->multiport)
			process_ctrl_tx(c);
		return;
	}
	for (unsigned port = 0; port < VIRTIO_CONSOLE_NR_PORTS; port++) {
		if (port > 0 && !c->multiport)
			break;
		if (q == tx_queue(port)) {
			process_tx(c, port);
		} else if (q == rx_queue(port)) {
			if (rx_usable(c, port) && c->cfg.rx_ready)
				c->cfg.rx_ready(c->cfg.opaque, port);
		}
	}
}

static void config_read(void *dev, uint32_t off, void *buf, uint32_t len)
{
	struct virtio_console *c = dev;
	struct virtio_console_config cfg;

	memset(&cfg, 0, sizeof(cfg));
	cfg.cols = htole16(c->cfg.cols);
	cfg.rows = htole16(c->cfg.rows);
	cfg.max_nr_ports = htole32(VIRTIO_CONSOLE_NR_PORTS);
	memcpy(buf, (uint8_t *)&cfg + off, len);
}

/* GUEST: only emerg_wr is writable (VIRTIO_CONSOLE_F_EMERG_WRITE). */
static void config_write(void *dev, uint32_t off, const void *buf, uint32_t len)
{
	struct virtio_console *c = dev;
	uint8_t ch = *(const uint8_t *)buf;

	if (off != offsetof(struct virtio_console_config, emerg_wr)) {
		c->errs.nr_bad_register++;
		c_warn(c, "virtio-console: config write at %u ignored", off);
		return;
	}
	if (c->cfg.port_write && c->cfg.port_write(c->cfg.opaque, VIRTIO_CONSOLE_PORT_CONSOLE,
						   &ch, 1) == 1)
		c->ctr.nr_tx_bytes[VIRTIO_CONSOLE_PORT_CONSOLE]++;
	else
		c->ctr.nr_dropped_bytes[VIRTIO_CONSOLE_PORT_CONSOLE]++;
}

static bool features_ok(void *dev, uint64_t features)
{
	struct virtio_console *c = dev;

	c->multiport = features & (1ull << VIRTIO_CONSOLE_F_MULTIPORT);
	return true;
}

static void driver_ok(void *dev)
{
	struct virtio_console *c = dev;

	if (!c->multiport) { /* a plain console: port 0 is simply there */
		c->ports[0].ready = true;
		c->ports[0].guest_open = true;
	}
}

static void device_reset(void *dev)
{
	struct virtio_console *c = dev;

	for (unsigned i = 0; i < VIRTIO_CONSOLE_NR_PORTS; i++) {
		struct port *p = &c->ports[i];

		p->ready = p->guest_open = p->rx_held = false;
		p->out_len = 0;
	}
	c->ctrl_head = c->ctrl_count = 0;
	c->multiport = false;
}

static const struct virtio_pci_device_ops console_ops = {
	.config_read = config_read,
	.config_write = config_write,
	.features_ok = features_ok,
	.driver_ok = driver_ok,
	.queue_notify = queue_notify,
	.reset = device_reset,
};

/* --- API ---------------------------------------------------------------------- */

int virtio_console_create(const struct virtio_console_cfg *cfg, struct virtio_console **out)
{
	const char *name = cfg->agent_port_name ? cfg->agent_port_name
						: VIRTIO_CONSOLE_AGENT_PORT_NAME;
	struct virtio_pci_cfg pc;
	struct virtio_console *c;
	int ret;

	*out = NULL;
	if (!cfg->host || strlen(name) == 0 || strlen(name) >= NAME_MAX_BYTES)
		return -EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->cfg = *cfg;
	c->cfg.agent_port_name = NULL; /* not kept: the caller's string */
	c->host = cfg->host;
	c->name_len = strlen(name);
	memcpy(c->name, name, c->name_len);
	c->out_cap = cfg->out_buffer_bytes ? cfg->out_buffer_bytes : DEFAULT_OUT_BYTES;
	c->ports[VIRTIO_CONSOLE_PORT_CONSOLE].host_open = true;
	c->ports[VIRTIO_CONSOLE_PORT_AGENT].host_open = cfg->agent_connected;
	for (unsigned i = 0; i < VIRTIO_CONSOLE_NR_PORTS; i++) {
		c->ports[i].out = malloc(c->out_cap);
		if (!c->ports[i].out) {
			ret = -ENOMEM;
			goto err;
		}
	}
	memset(&pc, 0, sizeof(pc));
	pc.host = cfg->host;
	pc.ops = &console_ops;
	pc.dev = c;
	pc.virtio_device_id = VIRTIO_ID_CONSOLE;
	pc.pci_class = 0x078000; /* communication controller, other */
	pc.device_features = (1ull << VIRTIO_CONSOLE_F_MULTIPORT) |
			     (1ull << VIRTIO_CONSOLE_F_EMERG_WRITE) |
			     (1ull << VIRTIO_RING_F_EVENT_IDX) | (1ull << VIRTIO_RING_F_INDIRECT_DESC);
	pc.nr_queues = NR_QUEUES;
	pc.queue_max_size = cfg->queue_max_size ? cfg->queue_max_size : DEFAULT_QUEUE_SIZE;
	pc.config_size_bytes = sizeof(struct virtio_console_config);
	pc.errs = &c->errs;
	pc.rl = &c->rl;
	ret = virtio_pci_create(&pc, &c->pci);
	if (ret)
		goto err;
	*out = c;
	return 0;
err:
	virtio_console_destroy(c);
	return ret;
}

void virtio_console_destroy(struct virtio_console *c)
{
	if (!c)
		return;
	virtio_pci_destroy(c->pci);
	for (unsigned i = 0; i < VIRTIO_CONSOLE_NR_PORTS; i++)
		free(c->ports[i].out);
	free(c);
}

struct virtio_pci *virtio_console_pci(struct virtio_console *c) { return c->pci; }

bool virtio_console_guest_open(const struct virtio_console *c, enum virtio_console_port port)
{
	return port < VIRTIO_CONSOLE_NR_PORTS && c->ports[port].guest_open;
}

size_t virtio_console_out_pending(const struct virtio_console *c, enum virtio_console_port port)
{
	return port < VIRTIO_CONSOLE_NR_PORTS ? c->ports[port].out_len : 0;
}

const struct virtio_console_counters *virtio_console_counters(const struct virtio_console *c)
{
	return &c->ctr;
}

const struct virtio_dev_errors *virtio_console_errors(const struct virtio_console *c)
{
	return &c->errs;
}
