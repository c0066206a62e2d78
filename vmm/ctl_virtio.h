/*
 * vmm/ctl_virtio.h — the control-protocol side of the virtio devices: the
 * `balloon` command and the balloon / agent fields of `query`
 * (docs/control-protocol.md, "balloon").  Runs on the event thread.
 */
#ifndef EBB_VMM_CTL_VIRTIO_H
#define EBB_VMM_CTL_VIRTIO_H

#include <stddef.h>

#include "vmm/ctl.h"
#include "vmm/virtio_devs.h"

/* Adds "balloon" and "agent" objects to a query result (nothing without devices). */
void vmm_ctl_virtio_query(struct vmm_virtio_devs *d, struct json_object *result);

/* CLIENT: args {"size_bytes": N} or {"percent": P} (target guest size), or
 * none (report only).  Result: the balloon object of query. */
enum vmm_ctl_err vmm_ctl_virtio_balloon(struct vmm_virtio_devs *d,
					const struct vmm_ctl_request *req,
					struct json_object **result, char *msg, size_t msg_len);

#endif
