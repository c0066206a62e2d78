/*
 * vmm/agent_bridge.h — the guest agent's console port ("org.ebb.agent.0",
 * port 1 of the virtio console) bridged to a unix socket RUNDIR/NAME.agent
 * (mode 0600): one host client at a time, of our uid or root; the others
 * are turned away and counted.
 *
 * The bridge belongs to the console device (vmm/virtio_console_dev.c):
 * it calls into the console model under the console's device mutex, and
 * the console's callbacks call back into it under that same mutex (never
 * the other way round: those only record what the event thread must do and
 * wake it).  The client's fd changes only under that mutex, so the guest's
 * bytes never go to a number already closed and reused.  Everything else
 * runs on the event thread.
 */
#ifndef EBB_VMM_AGENT_BRIDGE_H
#define EBB_VMM_AGENT_BRIDGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "client/evloop.h"

struct vmm_vdev;
struct virtio_console;
struct vmm_agent_bridge;

/* `con` is the console's device (its mutex), `console` its model. */
int vmm_agent_bridge_create(struct vmm_vdev *con, struct virtio_console *console,
			    struct vmm_agent_bridge **out);
/* Listens at path in loop (event thread from then on).  0 or -errno. */
int vmm_agent_bridge_listen(struct vmm_agent_bridge *br, struct vmm_evloop *loop,
			    const char *path);
/* Closes the client and the socket, unlinks it; NULL is a no-op. */
void vmm_agent_bridge_destroy(struct vmm_agent_bridge *br);

/* --- from the console's callbacks, console mutex held -------------------- */

/* The guest wrote buf: sent to the client without blocking.  Returns the
 * bytes taken (all of them when nobody listens or the client broke) or
 * -EAGAIN (the socket is full: retried when it drains). */
ssize_t vmm_agent_bridge_guest_output(struct vmm_agent_bridge *br, const void *buf, size_t len);
/* The guest can take input now (port opened, receive buffers queued), or
 * not any more (port closed). */
void vmm_agent_bridge_guest_ready(struct vmm_agent_bridge *br, bool ready);
/* Whether a client is connected. */
bool vmm_agent_bridge_connected(const struct vmm_agent_bridge *br);

/* --- event thread ---------------------------------------------------------- */

/* Makes the client's watch match what the device can take now. */
void vmm_agent_bridge_update(struct vmm_agent_bridge *br);

/* CLIENT: clients turned away (one at a time), and clients that hung up
 * before the guest took their bytes. */
uint64_t vmm_agent_bridge_nr_refused(const struct vmm_agent_bridge *br);
uint64_t vmm_agent_bridge_nr_hangups(const struct vmm_agent_bridge *br);

#endif
