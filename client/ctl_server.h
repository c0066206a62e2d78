/*
 * client/ctl_server.h — the control socket of one VM: a Unix stream socket,
 * mode 0600, served on the VM's event loop.  It splits client input into
 * lines, parses each with vmm_ctl_parse_request(), hands a good request to
 * the handler registered for its command's name and queues the response
 * line; a name nobody registered is unknown-command.
 *
 * Limits (all counted): only clients of our own euid or root (SO_PEERCRED,
 * peer.h; others are closed at once); at most max_clients connections
 * (others get one "busy" error line and are closed); a client that makes no
 * request and takes no output for idle_timeout_ms is closed (so that
 * max_clients idle connections cannot lock others out: a long-lived client
 * such as ebbd sends a request at least that often, or reconnects); lines longer than
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

#include "client/ctl.h"
#include "client/evloop.h"
#include "client/log.h"

#define VMM_CTL_DEFAULT_MAX_CLIENTS 16
#define VMM_CTL_MAX_OUT_BYTES (256 * 1024)
#define VMM_CTL_MAX_WATCHERS 4u
#define VMM_CTL_DEFAULT_IDLE_TIMEOUT_MS 30000

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
	unsigned max_clients;         /* 0: VMM_CTL_DEFAULT_MAX_CLIENTS */
	unsigned idle_timeout_ms;     /* 0: VMM_CTL_DEFAULT_IDLE_TIMEOUT_MS */
	struct vmm_log log;
};

struct vmm_ctl_server_stats {
	uint64_t nr_clients_accepted;
	uint64_t nr_clients_refused;     /* over max_clients */
	uint64_t nr_clients_bad_peer;    /* another user's process (SO_PEERCRED) */
	uint64_t nr_idle_clients;        /* dropped: idle_timeout_ms without a request */
	uint64_t nr_watchers;            /* `watch` subscriptions accepted */
	uint64_t nr_events;              /* event lines queued (one per watcher) */
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
/*
 * Events: a client that sends `watch` gets {"watching": true} and from then
 * on, besides its responses, one line {"event": NAME, ...fields} per event
 * (at most VMM_CTL_MAX_WATCHERS such clients; a watcher is never dropped as
 * idle, only when it does not read).  The server answers `watch` itself.
 * fields (consumed, may be NULL) is an object whose members are added.
 */
void vmm_ctl_server_notify(struct vmm_ctl_server *srv, const char *event,
			   struct json_object *fields);

/*
 * Command registration: the module that owns a command registers its handler
 * (with its own context) under the command's name, once, after the server is
 * created; a request is dispatched by the name it carries, and a name nobody
 * registered is unknown-command.  Adding a command is one handler in its
 * module, registered there, and its line in docs/control-protocol.md.
 * name is not copied (a string literal).  -EINVAL for a NULL handler or a
 * name that is empty, longer than VMM_CTL_MAX_CMD_BYTES or `watch` (the
 * server's own), -EEXIST if the name already has one, -ENOMEM.
 */
int vmm_ctl_server_register(struct vmm_ctl_server *srv, const char *name,
			    vmm_ctl_handler_fn fn, void *opaque);

/* A module's commands, for registering them in one call. */
struct vmm_ctl_command {
	const char *name;
	vmm_ctl_handler_fn fn;
};

/* Registers nr commands with one context; stops at the first error. */
int vmm_ctl_server_register_all(struct vmm_ctl_server *srv, const struct vmm_ctl_command *cmds,
				size_t nr, void *opaque);

void vmm_ctl_server_get_stats(struct vmm_ctl_server *srv, struct vmm_ctl_server_stats *out);
unsigned vmm_ctl_server_nr_clients(struct vmm_ctl_server *srv);

#endif
