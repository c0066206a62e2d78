/*
 * vmm/virtio_console_dev.c — the virtio console as a VMM device: the
 * multiport model of virtio/console.c with port 0 (hvc0) written to the
 * terminal (cfg.console_out_fd) and fed from it (vmm_virtio_console_input),
 * and port 1 ("org.ebb.agent.0") bridged to the agent socket
 * (vmm/agent_bridge.c).  Owns the model and the bridge, and the console's
 * part of vmm/virtio_devs.h.  The PCI function, doorbells and locking are
 * the glue's (vmm/virtio_devs.c).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <linux/virtio_ids.h>

#include "virtio/console.h"
#include "vmm/agent_bridge.h"
#include "vmm/virtio_dev.h"
#include "vmm/virtio_devs.h"

struct con_dev {
	struct vmm_vdev *v;
	struct virtio_console *console;
	struct vmm_agent_bridge *agent;
	int out_fd;                    /* port 0 output; -1: discard */
};

/* ---- the model's callbacks (device mutex held) -------------------------------- */

static ssize_t con_port_write(void *opaque, enum virtio_console_port port, const void *buf,
			      size_t len)
{
	struct con_dev *c = opaque;
	size_t done = 0;
	ssize_t n;

	if (port != VIRTIO_CONSOLE_PORT_CONSOLE)
		return vmm_agent_bridge_guest_output(c->agent, buf, len);
	if (c->out_fd < 0)
		return (ssize_t)len;
	while (done < len) {
		n = write(c->out_fd, (const char *)buf + done, len - done);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;  /* terminal gone: drop the rest */
		done += (size_t)n;
	}
	return (ssize_t)len;
}

static void con_port_open(void *opaque, enum virtio_console_port port, bool open)
{
	struct con_dev *c = opaque;

	if (port == VIRTIO_CONSOLE_PORT_AGENT)
		vmm_agent_bridge_guest_ready(c->agent, open);
}

static void con_rx_ready(void *opaque, enum virtio_console_port port)
{
	struct con_dev *c = opaque;

	if (port == VIRTIO_CONSOLE_PORT_AGENT)
		vmm_agent_bridge_guest_ready(c->agent, true);
}

/* ---- the device type ------------------------------------------------------------ */

static void con_destroy(void *priv)
{
	struct con_dev *c = priv;

	if (!c)
		return;
	vmm_agent_bridge_destroy(c->agent);
	virtio_console_destroy(c->console);
	free(c);
}

static int con_create(struct vmm_vdev *v, const struct vmm_virtio_devs_cfg *cfg,
		      const struct virtio_host *host, void **priv, struct virtio_pci **tp)
{
	struct con_dev *c = calloc(1, sizeof(*c));
	struct virtio_console_cfg cc = {
		.host = host, .port_write = con_port_write,
		.port_open = con_port_open, .rx_ready = con_rx_ready, .opaque = c,
	};
	int ret;

	*priv = c;
	if (!c)
		return -ENOMEM;
	c->v = v;
	c->out_fd = cfg->console_out_fd;
	ret = virtio_console_create(&cc, &c->console);
	if (!ret)
		ret = vmm_agent_bridge_create(v, c->console, &c->agent);
	if (ret)
		return ret;
	*tp = virtio_console_pci(c->console);
	return 0;
}

static int con_start(void *priv, struct vmm_evloop *loop, const char *agent_path)
{
	struct con_dev *c = priv;

	return agent_path ? vmm_agent_bridge_listen(c->agent, loop, agent_path) : 0;
}

/* The guest may have opened the port or queued buffers: the bridge's watch follows. */
static void con_serviced(void *priv)
{
	struct con_dev *c = priv;

	vmm_agent_bridge_update(c->agent);
}

const struct vmm_vdev_type vmm_vdev_console = {
	.name = "console", .virtio_id = VIRTIO_ID_CONSOLE, .pci_class = 0x078000,
	.create = con_create, .start = con_start, .serviced = con_serviced,
	.destroy = con_destroy,
};

/* ---- the console's part of vmm/virtio_devs.h ---------------------------------- */

void vmm_virtio_console_input(struct vmm_virtio_devs *d, const void *buf, size_t len)
{
	struct con_dev *c = vmm_virtio_devs_find(d, &vmm_vdev_console);

	if (!c)
		return;
	vmm_vdev_lock(c->v);
	if (virtio_console_guest_open(c->console, VIRTIO_CONSOLE_PORT_CONSOLE))
		virtio_console_write(c->console, VIRTIO_CONSOLE_PORT_CONSOLE, buf, len);
	vmm_vdev_after_call(c->v);
	vmm_vdev_unlock(c->v);
}

int vmm_virtio_console_info(struct vmm_virtio_devs *d, struct vmm_console_info *out)
{
	struct con_dev *c = vmm_virtio_devs_find(d, &vmm_vdev_console);
	const struct virtio_console_counters *n;

	memset(out, 0, sizeof(*out));
	if (!c)
		return -ENODEV;
	vmm_vdev_lock(c->v);
	out->agent_client = vmm_agent_bridge_connected(c->agent);
	out->agent_guest_open = virtio_console_guest_open(c->console, VIRTIO_CONSOLE_PORT_AGENT);
	n = virtio_console_counters(c->console);
	out->agent_tx_bytes = n->nr_tx_bytes[VIRTIO_CONSOLE_PORT_AGENT];
	out->agent_rx_bytes = n->nr_rx_bytes[VIRTIO_CONSOLE_PORT_AGENT];
	out->console_tx_bytes = n->nr_tx_bytes[VIRTIO_CONSOLE_PORT_CONSOLE];
	out->nr_bad_ctrl = n->nr_bad_ctrl;
	out->nr_ctrl_dropped = n->nr_ctrl_dropped;
	out->nr_dropped_bytes = n->nr_dropped_bytes[VIRTIO_CONSOLE_PORT_CONSOLE] +
				n->nr_dropped_bytes[VIRTIO_CONSOLE_PORT_AGENT];
	out->errs = *virtio_console_errors(c->console);
	out->nr_agent_refused = vmm_agent_bridge_nr_refused(c->agent);
	out->nr_agent_hangups = vmm_agent_bridge_nr_hangups(c->agent);
	vmm_vdev_unlock(c->v);
	return 0;
}
