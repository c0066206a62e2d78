/*
 * vmm/ctl_server.h — the control socket of one VM: a Unix stream socket,
 * mode 0600, served on the VM's event loop.  It splits client input into
 * lines, parses each with vmm_ctl_parse_request(), hands good requests to
 * the VM's handler and queues the response line.
 *
 * Limits (all counted): at most max_clients connections (others get one
 * "busy" error line and are closed); lines longer than
 * VMM_CTL_MAX_LINE_BYTES get a "line-too-long" error and are skipped up to
 * their newline; a client whose unread responses exceed
 * VMM_CTL_MAX_OUT_BYTES is disconnected.  A client that disconnects with a
 * partial request leaves nothing behind.
 *
 * Threading: everything runs on the event thread.
 */
#ifndef EBB_VMM_CTL_SERVER_H
#define EBB_VMM_CTL_SERVER_H

#include <stdint.h>

#include "vmm/ctl.h"
#include "vmm/evloop.h"
#include "vmm/log.h"

#define VMM_CTL_DEFAULT_MAX_CLIENTS 16
#define VMM_CTL_MAX_OUT_BYTES (256 * 1024)

/*
 * Handles one request.  Returns VMM_CTL_OK with *result set (a new object,
 * may stay NULL for {}), or an error code with a message in msg.
 */
typedef enum vmm_ctl_err (*vmm_ctl_handler_fn)(void *opaque, const struct vmm_ctl_request *req,
					       struct json_object **result, char *msg,
					       size_t msg_len);

struct vmm_ctl_server_cfg {
	const char *path;             /* socket path; an existing file there is replaced */
	struct vmm_evloop *loop;
	vmm_ctl_handler_fn handler;
	void *opaque;
	unsigned max_clients;         /* 0: VMM_CTL_DEFAULT_MAX_CLIENTS */
	struct vmm_log log;
};

struct vmm_ctl_server_stats {
	uint64_t nr_clients_accepted;
	uint64_t nr_clients_refused;     /* over max_clients */
	uint64_t nr_requests;
	uint64_t nr_bad_requests;        /* any error response */
	uint64_t nr_long_lines;
	uint64_t nr_slow_clients;        /* dropped: output backlog */
};

struct vmm_ctl_server;

int vmm_ctl_server_create(const struct vmm_ctl_server_cfg *cfg, struct vmm_ctl_server **out);
/* Closes all clients (flushing what the socket takes without blocking),
 * closes and unlinks the socket.  NULL is a no-op. */
void vmm_ctl_server_destroy(struct vmm_ctl_server *srv);
void vmm_ctl_server_get_stats(struct vmm_ctl_server *srv, struct vmm_ctl_server_stats *out);
unsigned vmm_ctl_server_nr_clients(struct vmm_ctl_server *srv);

#endif
