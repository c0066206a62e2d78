/*
 * vmm/ctl_virtio.h — the control-protocol side of the virtio devices: the
 * `balloon` command and the balloon / agent fields of `query`
 * (docs/control-protocol.md, "balloon").  Runs on the event thread.
 */
#ifndef EBB_VMM_CTL_VIRTIO_H
#define EBB_VMM_CTL_VIRTIO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "client/ctl.h"
#include "vmm/virtio_devs.h"

/* The balloon / agent objects of query from the devices' figures (every
 * counter an unsigned 64-bit JSON integer, error counters under "errors" /
 * "console_errors"); NULL when out of memory. */
struct json_object *vmm_ctl_balloon_json(const struct vmm_balloon_info *bi);
struct json_object *vmm_ctl_agent_json(const struct vmm_console_info *ci);
/* "pci": the bus's guest-caused figures (bad config accesses, BAR moves and
 * overlaps, log lines dropped). */
struct vmm_pci_stats;
struct json_object *vmm_ctl_pci_json(const struct vmm_pci_stats *st);

/* Adds "balloon" and "agent" objects to a query result (nothing without devices). */
void vmm_ctl_virtio_query(struct vmm_virtio_devs *d, struct json_object *result);

/* CLIENT: args {"size_bytes": N} or {"percent": P} (target guest size), or
 * none (report only).  Result: the balloon object of query. */
/* CLIENT: the pure part of the above: checks args against mem_bytes; sets
 * *have_target and *target_bytes (guest size, 4 KiB aligned) when a size was
 * given.  VMM_CTL_OK or VMM_CTL_ERR_INVALID with a message. */
enum vmm_ctl_err vmm_ctl_balloon_args(struct json_object *args, uint64_t mem_bytes,
				      uint64_t *target_bytes, bool *have_target, char *msg,
				      size_t msg_len);
enum vmm_ctl_err vmm_ctl_virtio_balloon(struct vmm_virtio_devs *d,
					const struct vmm_ctl_request *req,
					struct json_object **result, char *msg, size_t msg_len);
/* Registers the commands the virtio devices own (`balloon`) with @srv. */
struct vmm_ctl_server;
int vmm_ctl_virtio_register(struct vmm_virtio_devs *d, struct vmm_ctl_server *srv);

#endif
