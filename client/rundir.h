/*
 * client/rundir.h — where running VMs are found: the runtime directory
 * ($EBB_RUNTIME_DIR, else $XDG_RUNTIME_DIR/ebb, else /run/ebb for root, else
 * /tmp/ebb-<uid>; a directory owned by the user, mode 0700, or it is
 * refused) holds per VM NAME.sock (the control socket,
 * 0600) and NAME.lock (flock held by the VMM for its lifetime: this is what
 * makes a name "in use"; a socket without a live lock is stale).
 * Also the client side of the control protocol: connect by name and make a
 * call with a timeout.
 */
#ifndef EBB_VMM_RUNDIR_H
#define EBB_VMM_RUNDIR_H

#include <stdbool.h>
#include <stddef.h>

#include "client/ctl.h"

#define VMM_NAME_MAX_BYTES 64

/* Writes the runtime directory path to buf; creates it (mode 0700) when
 * create is set, and checks it with vmm_rundir_check().  Returns 0 (also
 * when it does not exist and create is not set), or -errno: -ENAMETOOLONG,
 * or the refusals of vmm_rundir_check(). */
int vmm_rundir(char *buf, size_t len, bool create);

/* 0 when path is a directory (not a symlink) owned by our euid with mode
 * 0700; else -ENOTDIR, -EPERM (another owner), -EACCES (other mode), or
 * -errno from lstat. */
int vmm_rundir_check(const char *path);

/* What to tell the user about a refusal of vmm_rundir_check(), or NULL for
 * an error that is not one (use strerror). */
const char *vmm_rundir_strerror(int err);

/* CLIENT: 1-64 of [A-Za-z0-9_.-], not starting with '.' or '-'. */
bool vmm_name_valid(const char *name);

/* Takes NAME.lock (opened O_NOFOLLOW); returns the fd to keep open, -EBUSY when a live VMM holds
 * it, or -errno. */
int vmm_name_lock(const char *rundir, const char *name);

/* Socket path for a name. */
int vmm_sock_path(const char *rundir, const char *name, char *buf, size_t len);

/* Connects to a VM's control socket: fd, or -ENOENT (no such VM),
 * -ECONNREFUSED (stale), -EPERM (served by a process of another user, not
 * root: see peer.h), -errno. */
int vmm_ctl_connect(const char *rundir, const char *name);

/* Sends one request (id 1: one call at a time per connection) and waits up to timeout_ms for its response line.
 * Replies may be up to VMM_CTL_MAX_REPLY_BYTES long (-EMSGSIZE beyond).
 * Returns 0 with resp filled, -ETIMEDOUT, -EPROTO, -EMSGSIZE, -errno. */
int vmm_ctl_call(int fd, const char *cmd, struct json_object *args, int timeout_ms,
		 struct vmm_ctl_response *resp);

/* One call of @cmd (no arguments) to @name in @rundir, for readers that only
 * want the answer: its result object (the caller puts it), or NULL when the
 * VM is not there, does not answer within @timeout_ms, answers with an
 * error, or with a result that is not an object. */
struct json_object *vmm_ctl_query(const char *rundir, const char *name, const char *cmd,
				  int timeout_ms);

/* An integer member of a reply object: @def when @o is NULL or @key is
 * missing or not an integer (replies are read as hostile). */
int64_t vmm_json_int(struct json_object *o, const char *key, int64_t def);

/* Calls fn for each NAME with a NAME.sock in rundir (sorted by name).
 * Returns the number of names, or -errno. */
int vmm_list_names(const char *rundir, void (*fn)(void *opaque, const char *name),
		   void *opaque);

#endif
