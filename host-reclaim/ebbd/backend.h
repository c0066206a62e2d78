/*
 * host-reclaim/ebbd/backend.h — how ebbd reaches one VM.  The daemon sees
 * every VM through this interface: observe it (fill the balancer's
 * observation), apply one balancer action, renew or release what it holds.
 * backend_ebb.c is the ebb VMM over its control socket; a libvirt backend
 * plugs in here later.
 *
 * Threading: the daemon's event thread only.
 */
#ifndef EBB_EBBD_BACKEND_H
#define EBB_EBBD_BACKEND_H

#include <stdint.h>

#include "client/log.h"
#include "host-reclaim/balancer.h"

struct ebbd_backend;
struct json_object;

struct ebbd_backend_ops {
	const char *kind;
	/* Fills obs (id and name are the daemon's).  -errno: the VM is gone
	 * (-ECONNRESET, -EPIPE ...) or did not answer in time (-ETIMEDOUT). */
	int (*observe)(struct ebbd_backend *be, struct ebb_bal_vm_obs *obs);
	/* Applies one action.  -EOPNOTSUPP: this backend has no such mechanism. */
	int (*apply)(struct ebbd_backend *be, const struct ebb_bal_action *a, uint64_t now_ns);
	/* Renews leases that are half gone.  Returns the number renewed. */
	int (*renew)(struct ebbd_backend *be, uint64_t now_ns);
	/* Clean exit: lift every clamp this daemon holds on the VM. */
	void (*release)(struct ebbd_backend *be);
	void (*destroy)(struct ebbd_backend *be);
	/* Opens a second connection subscribed to the VM's events (`watch`):
	 * its fd (non-blocking) for the daemon's loop, or -errno. */
	int (*watch_open)(struct ebbd_backend *be);
	/* Reads what arrived on it: the number of event lines, or -errno
	 * (-ECONNRESET: the VM went away). */
	int (*watch_read)(struct ebbd_backend *be);
	/* The agent channel's fd while ebbd holds it (-1 otherwise), and one
	 * non-blocking read of it: the number of pressure messages that
	 * arrived, or -errno when the channel closed. */
	int (*agent_fd)(struct ebbd_backend *be);
	int (*agent_poll)(struct ebbd_backend *be);
	/* Forwards a control command (e.g. `set`) to the VM; args not consumed. */
	int (*call)(struct ebbd_backend *be, const char *cmd, struct json_object *args,
		    struct json_object **result, char *err, size_t err_len);
};

struct ebbd_backend {
	const struct ebbd_backend_ops *ops;
};

struct ebbd_backend_ebb_cfg {
	const char *rundir;
	const char *name;
	int call_timeout_ms;
	uint32_t default_lease_ms;
	struct vmm_log log;
};

/* Connects to the VM's control socket.  -ENOENT / -ECONNREFUSED (stale
 * socket) / -errno. */
int ebbd_backend_ebb_create(const struct ebbd_backend_ebb_cfg *cfg, struct ebbd_backend **out);

#endif
