/*
 * client/ctl.h — the control protocol (docs/control-protocol.md): one JSON
 * object per line over a Unix stream socket, requests with ids, responses
 * echoing them.  This file is the pure part — parsing and formatting, no
 * sockets — so it is unit tested and fuzzed (tests/fuzz/fuzz_ctl.c).
 *
 * Request:  {"id": 7, "cmd": "query", "version": 1, "args": {...}}
 *   id       optional; integer or string of at most VMM_CTL_MAX_ID_BYTES;
 *            echoed verbatim (null when absent or unusable)
 *   cmd      required string
 *   version  optional; when present must be VMM_CTL_PROTOCOL_VERSION
 *   args     optional object
 * Response: {"id": 7, "ok": true, "result": {...}}
 *           {"id": 7, "ok": false, "error": {"code": "unknown-command", "message": "..."}}
 */
#ifndef EBB_VMM_CTL_H
#define EBB_VMM_CTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#define VMM_CTL_PROTOCOL_VERSION 1
#define VMM_CTL_MAX_LINE_BYTES 4096u     /* a request */
/*
 * A reply can be much longer than a request: a busy VM's query carries its
 * balloon's stats, its agent and its engine (over 4 KiB), and ebbd's "vms"
 * grows with the number of VMs.  Clients accept replies up to this size.
 */
#define VMM_CTL_MAX_REPLY_BYTES (1u << 20)
#define VMM_CTL_MAX_ID_BYTES 128u
#define VMM_CTL_MAX_DEPTH 8

/*
 * Commands are names: each module registers the ones it owns with its
 * server (vmm_ctl_server_register, client/ctl_server.h) and the server
 * dispatches by the name a request carries; docs/control-protocol.md lists
 * them.  A name is at most VMM_CTL_MAX_CMD_BYTES bytes, with no NUL.
 */
#define VMM_CTL_MAX_CMD_BYTES 32u

/* Error codes: the strings are part of the protocol. */
enum vmm_ctl_err {
	VMM_CTL_OK = 0,
	VMM_CTL_ERR_PARSE,            /* "parse-error": not one JSON object */
	VMM_CTL_ERR_INVALID,          /* "invalid-request": fields missing or of wrong type */
	VMM_CTL_ERR_UNKNOWN_CMD,      /* "unknown-command" */
	VMM_CTL_ERR_VERSION,          /* "unsupported-version" */
	VMM_CTL_ERR_LINE_TOO_LONG,    /* "line-too-long" */
	VMM_CTL_ERR_BUSY,             /* "busy": too many clients */
	VMM_CTL_ERR_INTERNAL,         /* "internal-error" */
	VMM_CTL_ERR_STATE,            /* "invalid-state": not now */
};

const char *vmm_ctl_err_code(enum vmm_ctl_err err);

struct vmm_ctl_request {
	char cmd[VMM_CTL_MAX_CMD_BYTES + 1];   /* the command's name */
	struct json_object *id;     /* owned reference, or NULL */
	struct json_object *args;   /* owned reference, or NULL */
};

/* Whether a server serves the command NAME (see vmm_ctl_parse_request). */
typedef bool (*vmm_ctl_known_fn)(void *opaque, const char *name);

/*
 * CLIENT: line is one line from a client without its newline (need not be
 * NUL-terminated).  Returns VMM_CTL_OK and fills req (release with
 * vmm_ctl_request_release), or an error with a message in msg; even then
 * req->id holds the id when one could be recovered, so that the error
 * response carries it.  A command that known (called with known_ctx) does
 * not know is unknown-command, reported before its args are looked at;
 * known NULL takes every name (a name longer than VMM_CTL_MAX_CMD_BYTES or
 * with a NUL is never known).
 */
enum vmm_ctl_err vmm_ctl_parse_request(const char *line, size_t len, vmm_ctl_known_fn known,
				       void *known_ctx, struct vmm_ctl_request *req, char *msg,
				       size_t msg_len);
void vmm_ctl_request_release(struct vmm_ctl_request *req);

/* Response lines (with trailing newline), malloc'ed; NULL on ENOMEM.
 * result is consumed (its reference is taken over). */
char *vmm_ctl_format_ok(struct json_object *id, struct json_object *result);
char *vmm_ctl_format_error(struct json_object *id, enum vmm_ctl_err err, const char *msg);
/* For handlers: VMM_CTL_OK with *result = r, or, when r is NULL (out of
 * memory), VMM_CTL_ERR_INTERNAL with a message. */
enum vmm_ctl_err vmm_ctl_result(struct json_object *r, struct json_object **result, char *msg,
				size_t msg_len);
/* A request line for clients (with newline). args consumed, may be NULL. */
char *vmm_ctl_format_request(long long id, const char *cmd, struct json_object *args);

struct vmm_ctl_response {
	struct json_object *id;       /* owned, or NULL */
	bool ok;
	struct json_object *result;   /* owned, when ok */
	char error_code[32];
	char error_message[512];
};

/* Parses a server's response line (client side; the server is not trusted
 * either).  Returns 0 or -EPROTO. */
int vmm_ctl_parse_response(const char *line, size_t len, struct vmm_ctl_response *resp);
void vmm_ctl_response_release(struct vmm_ctl_response *resp);

/* CLIENT: reads the optional argument KEY of a request's args object (which may
 * be NULL) as a non-negative JSON integer.  *present says whether it was given;
 * returns -EINVAL when it was given but is not such an integer. */
int vmm_ctl_arg_uint(struct json_object *args, const char *key, uint64_t *out, bool *present);

#endif
