/*
 * client/discover.h — VM discovery in the runtime directory (client/rundir.h):
 * the set of VM names that have a control socket NAME.sock, kept current
 * with inotify, so a VM started later joins and one that exits leaves.
 *
 * The set is of socket files, not of live VMs: a VMM killed with SIGKILL
 * leaves its NAME.sock behind (the next `ebb run --name NAME` replaces it).
 * The caller connects to each name (vmm_ctl_connect: -ECONNREFUSED = stale)
 * and treats a connection that breaks as a leave of its own; a name that
 * was stale is offered again when its socket file is re-created.
 *
 * Reserved: "ebbd" (ebbd's own socket ebbd.sock lives in the same
 * directory) is never reported.
 *
 * Threading: none inside; one thread calls everything.
 */
#ifndef EBB_CLIENT_DISCOVER_H
#define EBB_CLIENT_DISCOVER_H

#include <stdbool.h>

#include "client/log.h"

#define EBB_DISCOVER_RESERVED_NAME "ebbd"

struct ebb_discover_cfg {
	const char *rundir;
	/* Called for each name that appears (also for those present at create)
	 * and each that disappears.  May not call back into the discover object. */
	void (*on_join)(void *opaque, const char *name);
	void (*on_leave)(void *opaque, const char *name);
	void *opaque;
	struct vmm_log log;
};

struct ebb_discover_stats {
	unsigned long long nr_events;     /* inotify events read */
	unsigned long long nr_rescans;
	unsigned long long nr_joined, nr_left;
	unsigned long long nr_overflows;  /* inotify queue overflowed: full rescan */
};

struct ebb_discover;

/* Starts watching rundir (which must exist) and reports the names present
 * now through on_join.  0 or -errno. */
int ebb_discover_create(const struct ebb_discover_cfg *cfg, struct ebb_discover **out);
/* NULL is a no-op.  Reports nothing. */
void ebb_discover_destroy(struct ebb_discover *d);
/* The inotify fd (non-blocking) to wait on for readability. */
int ebb_discover_fd(const struct ebb_discover *d);
/* Reads pending events and reports joins and leaves (a rescan of the
 * directory, so nothing is missed on overflow).  0 or -errno. */
int ebb_discover_process(struct ebb_discover *d);
/* Rescans the directory now (also safe as a periodic check). */
int ebb_discover_rescan(struct ebb_discover *d);
/* Is name in the current set? */
bool ebb_discover_has(const struct ebb_discover *d, const char *name);
/* Forgets name so that it is reported again by the next rescan that finds
 * its socket (e.g. after the caller found it stale).  No on_leave. */
void ebb_discover_forget(struct ebb_discover *d, const char *name);
/* Calls fn for every name in the current set, in order.  fn may not call
 * back into the discover object. */
void ebb_discover_foreach(const struct ebb_discover *d, void (*fn)(void *opaque, const char *name),
			  void *opaque);
void ebb_discover_get_stats(const struct ebb_discover *d, struct ebb_discover_stats *out);

#endif
