/*
 * vmm/agent_bridge.c — the agent port of the virtio console bridged to a
 * unix socket: listening, accepting one client (our uid or root), moving
 * bytes both ways without blocking, and the client's epoll watch kept to
 * what the guest can take (want_in) and what the socket refused (want_out).
 * See vmm/agent_bridge.h for the locking.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/sock.h"
#include "virtio/console.h"
#include "client/peer.h"
#include "vmm/agent_bridge.h"
#include "vmm/virtio_dev.h"

struct vmm_agent_bridge {
	struct vmm_vdev *con;           /* the console's device: its mutex */
	struct virtio_console *console;
	struct vmm_evloop *loop;
	char *path;
	int listen_fd;
	int fd;                         /* the client; changes under con's mutex */
	struct vmm_ev_watch *listen_watch, *watch;
	uint32_t events;                /* what watch polls now */
	/* Atomics, set from the console's callbacks under its mutex. */
	bool want_in;                   /* the guest may take input */
	bool want_out;                  /* we hold guest output the socket refused */
	uint64_t nr_refused;            /* extra clients turned away */
	uint64_t nr_hangups;            /* clients gone before the guest could take their bytes */
};

int vmm_agent_bridge_create(struct vmm_vdev *con, struct virtio_console *console,
			    struct vmm_agent_bridge **out)
{
	struct vmm_agent_bridge *br = calloc(1, sizeof(*br));

	*out = NULL;
	if (!br)
		return -ENOMEM;
	br->con = con;
	br->console = console;
	br->listen_fd = br->fd = -1;
	*out = br;
	return 0;
}

void vmm_agent_bridge_destroy(struct vmm_agent_bridge *br)
{
	if (!br)
		return;
	if (br->fd >= 0) {
		vmm_evloop_del(br->loop, br->watch);
		close(br->fd);
	}
	if (br->listen_fd >= 0) {
		vmm_evloop_del(br->loop, br->listen_watch);
		close(br->listen_fd);
	}
	if (br->path) {
		unlink(br->path);
		free(br->path);
	}
	free(br);
}

/* ---- the console's side (its mutex held) --------------------------------------- */

ssize_t vmm_agent_bridge_guest_output(struct vmm_agent_bridge *br, const void *buf, size_t len)
{
	ssize_t n;

	if (br->fd < 0)
		return (ssize_t)len;  /* nobody listening: the library counts nothing lost */
	n = send(br->fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
		__atomic_store_n(&br->want_out, true, __ATOMIC_RELAXED);
		return -EAGAIN;
	}
	if (n < 0)
		return (ssize_t)len;  /* client broken: its EPOLLHUP ends it */
	if ((size_t)n < len)
		__atomic_store_n(&br->want_out, true, __ATOMIC_RELAXED);
	return n;
}

void vmm_agent_bridge_guest_ready(struct vmm_agent_bridge *br, bool ready)
{
	__atomic_store_n(&br->want_in, ready, __ATOMIC_RELAXED);
	vmm_vdev_wake(br->con);
}

bool vmm_agent_bridge_connected(const struct vmm_agent_bridge *br)
{
	return br->fd >= 0;
}

uint64_t vmm_agent_bridge_nr_refused(const struct vmm_agent_bridge *br)
{
	return br->nr_refused;
}

uint64_t vmm_agent_bridge_nr_hangups(const struct vmm_agent_bridge *br)
{
	return br->nr_hangups;
}

/* ---- event thread ------------------------------------------------------------------ */

static void agent_disconnect(struct vmm_agent_bridge *br)
{
	int fd = br->fd;

	if (fd < 0)
		return;
	vmm_evloop_del(br->loop, br->watch);
	br->watch = NULL;
	br->events = 0;
	__atomic_store_n(&br->want_out, false, __ATOMIC_RELAXED);
	/* fd changes under the console's mutex, where guest output uses it:
	 * the number is never used after close (a reused fd would get guest
	 * data). */
	vmm_vdev_lock(br->con);
	br->fd = -1;
	virtio_console_set_host_connected(br->console, VIRTIO_CONSOLE_PORT_AGENT, false);
	vmm_vdev_unlock(br->con);
	close(fd);
}

static void agent_client_event(void *opaque, uint32_t events)
{
	struct vmm_agent_bridge *br = opaque;
	ssize_t n = 0;

	if (events & EPOLLOUT) {
		__atomic_store_n(&br->want_out, false, __ATOMIC_RELAXED);
		vmm_vdev_lock(br->con);
		virtio_console_host_writable(br->console, VIRTIO_CONSOLE_PORT_AGENT);
		vmm_vdev_after_call(br->con);
		vmm_vdev_unlock(br->con);
	}
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
		vmm_vdev_lock(br->con);
		n = virtio_console_read_fd(br->console, VIRTIO_CONSOLE_PORT_AGENT, br->fd);
		vmm_vdev_after_call(br->con);
		vmm_vdev_unlock(br->con);
		if ((n == -ENOBUFS || n == -ENOTCONN) && (events & (EPOLLHUP | EPOLLERR))) {
			/* CLIENT: gone, and the guest cannot take its bytes now.
			 * epoll reports a hangup whatever we ask for, so waiting
			 * would spin: nobody is left to answer, drop it. */
			br->nr_hangups++;
			agent_disconnect(br);
			return;
		}
		if (n == -ENOBUFS || n == -ENOTCONN)  /* wait for rx_ready / port_open */
			__atomic_store_n(&br->want_in, false, __ATOMIC_RELAXED);
		else if (n == 0 || (n < 0 && n != -EAGAIN && n != -EINTR)) {
			agent_disconnect(br);
			return;
		}
	}
	vmm_agent_bridge_update(br);
}

void vmm_agent_bridge_update(struct vmm_agent_bridge *br)
{
	uint32_t ev = 0;

	if (br->fd < 0)
		return;
	if (__atomic_load_n(&br->want_in, __ATOMIC_RELAXED))
		ev |= EPOLLIN;
	if (__atomic_load_n(&br->want_out, __ATOMIC_RELAXED))
		ev |= EPOLLOUT;
	if (ev != br->events && vmm_evloop_mod(br->loop, br->watch, ev) == 0)
		br->events = ev;
}

static void agent_accept(void *opaque, uint32_t events)
{
	struct vmm_agent_bridge *br = opaque;
	int fd = accept4(br->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

	if (fd < 0)
		return;
	if (br->fd >= 0 || !vmm_peer_allowed(fd)) {  /* CLIENT: one at a time, our uid or root */
		br->nr_refused++;
		close(fd);
		return;
	}
	if (vmm_evloop_add(br->loop, fd, 0, agent_client_event, br, &br->watch)) {
		close(fd);
		return;
	}
	br->events = 0;
	vmm_vdev_lock(br->con);
	br->fd = fd;
	virtio_console_set_host_connected(br->console, VIRTIO_CONSOLE_PORT_AGENT, true);
	if (virtio_console_guest_open(br->console, VIRTIO_CONSOLE_PORT_AGENT))
		__atomic_store_n(&br->want_in, true, __ATOMIC_RELAXED);
	vmm_vdev_after_call(br->con);
	vmm_vdev_unlock(br->con);
	vmm_agent_bridge_update(br);
}

int vmm_agent_bridge_listen(struct vmm_agent_bridge *br, struct vmm_evloop *loop,
			    const char *path)
{
	int fd;

	br->loop = loop;
	/* our name lock is held: a file at path is stale */
	fd = ebb_sock_listen(path, SOCK_NONBLOCK, 4);
	if (fd < 0)
		return fd;
	br->listen_fd = fd;
	br->path = strdup(path);
	if (!br->path)
		return -ENOMEM;
	return vmm_evloop_add(br->loop, fd, EPOLLIN, agent_accept, br, &br->listen_watch);
}
