/*
 * agent_port.h - finding the agent's virtio-serial port inside the guest.
 *
 * A virtio-serial port shows up as /sys/class/virtio-ports/vportNpM with a
 * "name" file (the name the host gave it, e.g. org.ebb.agent.0) and a "dev"
 * file ("major:minor").  The guest has no udev: when devtmpfs did not make
 * /dev/vportNpM (or something else sits there), the node is created here.
 */
#ifndef EBB_GUEST_AGENT_PORT_H
#define EBB_GUEST_AGENT_PORT_H

#include <stddef.h>

/* Look for the port called `name` under <sysfs_root>/class/virtio-ports and
 * make sure <dev_dir>/<port> is the right character device.  On success
 * writes that path to path[cap] and returns 0; -ENOENT when no port has that
 * name, -EINVAL for an unreadable or malformed dev file, else -errno. */
int agent_port_find(const char *sysfs_root, const char *dev_dir, const char *name,
		    char *path, size_t cap);

/* "major:minor" as found in sysfs dev files (trailing newline allowed). */
int agent_port_parse_dev(const char *s, unsigned *major, unsigned *minor);

#endif
