/*
 * virtio/console.h — virtio console device (virtio 1.x, section 5.3) with
 * VIRTIO_CONSOLE_F_MULTIPORT, on the virtio-pci transport.
 *
 * Two ports: port 0 is the VM console (hvc0 in the guest), port 1 is the
 * named port "org.ebb.agent.0" that the in-guest agent opens
 * (/dev/virtio-ports/org.ebb.agent.0) and that the VMM bridges to a unix
 * socket.  The control queues carry the multiport handshake: the driver's
 * DEVICE_READY is answered with PORT_ADD for each port; each PORT_READY with
 * CONSOLE_PORT (port 0) or PORT_NAME (port 1) and PORT_OPEN carrying whether
 * the host side is connected; the driver's PORT_OPEN tells us whether a
 * guest process has the port open.  Without MULTIPORT only port 0 exists.
 *
 * Guest to host: bytes the guest writes on a port go to `port_write`.  A
 * short write or -EAGAIN is back-pressure: the rest is kept in a bounded
 * per-port buffer (out_buffer_bytes) and no further transmit buffers are
 * taken from the guest until virtio_console_host_writable() drains it; while
 * the agent port's host side is disconnected its transmit buffers are left
 * in the ring (and the guest was told the port is closed, so its writes
 * block).  Host to guest: virtio_console_write() / virtio_console_read_fd()
 * copy straight into the guest's receive buffers — nothing is buffered; when
 * the guest has no buffers they return 0 / -ENOBUFS and `rx_ready` fires
 * once the guest adds some.
 */
#ifndef EBB_VIRTIO_CONSOLE_H
#define EBB_VIRTIO_CONSOLE_H

#include <sys/types.h>

#include <linux/virtio_console.h>

#include "virtio/pci.h"
#include "virtio/virtio.h"

#define VIRTIO_CONSOLE_AGENT_PORT_NAME "org.ebb.agent.0"

enum virtio_console_port {
	VIRTIO_CONSOLE_PORT_CONSOLE = 0,
	VIRTIO_CONSOLE_PORT_AGENT = 1,
	VIRTIO_CONSOLE_NR_PORTS = 2,
};

struct virtio_console_counters {
	uint64_t nr_tx_bytes[VIRTIO_CONSOLE_NR_PORTS];      /* guest -> host, delivered */
	uint64_t nr_rx_bytes[VIRTIO_CONSOLE_NR_PORTS];      /* host -> guest */
	uint64_t nr_dropped_bytes[VIRTIO_CONSOLE_NR_PORTS]; /* no writer, or over the bound */
	uint64_t nr_ctrl_sent;
	uint64_t nr_ctrl_received;
	uint64_t nr_ctrl_dropped;  /* control messages lost: guest gave no buffers */
	uint64_t nr_bad_ctrl;      /* malformed or unknown control messages */
};

struct virtio_console_cfg {
	const struct virtio_host *host;  /* must outlive the device */
	uint16_t queue_max_size;         /* 0: 256 */
	uint16_t cols, rows;             /* reported in config (informational) */
	const char *agent_port_name;     /* NULL: VIRTIO_CONSOLE_AGENT_PORT_NAME */
	size_t out_buffer_bytes;         /* per-port guest->host bound; 0: 64 KiB */
	bool agent_connected;            /* host side of the agent port at start */
	/*
	 * The guest wrote `len` bytes on `port`.  Return how many were taken
	 * (0..len) or a negative errno (-EAGAIN: none now).  Optional: without
	 * it output is dropped (counted).
	 */
	ssize_t (*port_write)(void *opaque, enum virtio_console_port port, const void *buf,
			      size_t len);
	/* A guest process opened (true) or closed the port.  Optional. */
	void (*port_open)(void *opaque, enum virtio_console_port port, bool open);
	/* The guest added receive buffers on `port`.  Optional. */
	void (*rx_ready)(void *opaque, enum virtio_console_port port);
	void *opaque;                    /* for the callbacks above */
};

struct virtio_console;

int virtio_console_create(const struct virtio_console_cfg *cfg, struct virtio_console **out);
void virtio_console_destroy(struct virtio_console *c);

struct virtio_pci *virtio_console_pci(struct virtio_console *c);

/*
 * Host -> guest: copy up to `len` bytes into the port's receive buffers.
 * Returns bytes delivered (0: no guest buffers now, wait for rx_ready), or
 * -ENOTCONN while the guest side of the port is not open.
 */
ssize_t virtio_console_write(struct virtio_console *c, enum virtio_console_port port,
			     const void *buf, size_t len);
/*
 * Host -> guest straight from a (non-blocking) fd, e.g. the agent socket:
 * one readv() into the guest's receive buffers.  Returns bytes moved, 0 at
 * EOF, -ENOBUFS when the guest has no buffers (stop polling the fd until
 * rx_ready), -ENOTCONN as above, or -errno of readv (-EAGAIN).
 */
ssize_t virtio_console_read_fd(struct virtio_console *c, enum virtio_console_port port, int fd);

/* The host side can take more output on `port`: drain and resume. */
void virtio_console_host_writable(struct virtio_console *c, enum virtio_console_port port);
/* The host side of the agent port (dis)connected: PORT_OPEN to the guest. */
void virtio_console_set_host_connected(struct virtio_console *c, enum virtio_console_port port,
				       bool connected);

bool virtio_console_guest_open(const struct virtio_console *c, enum virtio_console_port port);
/* Guest->host bytes buffered on `port` (<= out_buffer_bytes). */
size_t virtio_console_out_pending(const struct virtio_console *c, enum virtio_console_port port);

const struct virtio_console_counters *virtio_console_counters(const struct virtio_console *c);
const struct virtio_dev_errors *virtio_console_errors(const struct virtio_console *c);

#endif /* EBB_VIRTIO_CONSOLE_H */
