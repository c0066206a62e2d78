/*
 * vmm/virtio_dev.h — what one virtio device of the VMM provides to the
 * generic glue (vmm/virtio_devs.c), and what the glue gives it back.
 *
 * The glue owns everything a virtio-pci function has in common: its PCI
 * function on the bus (the bus owns the header and BAR0, the device's
 * transport owns the capabilities: one copy of each), the doorbell eventfds
 * and their KVM_IOEVENTFD registrations (moved when the bus reports a BAR
 * move through bar_changed), interrupts, the device mutex, the guest-log
 * limiter, the wake eventfd and the housekeeping tick.  A device file
 * (vmm/virtio_<name>_dev.c) owns its virtio/ model, its host-side
 * effects and its part of the public API of vmm/virtio_devs.h, and
 * describes itself with one `struct vmm_vdev_type`.
 *
 * Adding a device: its file, defining `vmm_vdev_<name>`, and its line in
 * VMM_VIRTIO_DEVICES below (the list is in PCI slot order: the console at
 * 00:01.0, the balloon at 00:02.0).
 *
 * Threads: create, start and destroy run on the VMM's main thread before
 * the vCPUs start / after they stopped; tick and serviced on the event
 * thread; the model's own callbacks under the device mutex (see
 * vmm/virtio_devs.h).
 */
#ifndef EBB_VMM_VIRTIO_DEV_H
#define EBB_VMM_VIRTIO_DEV_H

#include <stdint.h>

#include "virtio/pci.h"
#include "vmm/virtio_devs.h"

#define VMM_VIRTIO_DEVICES(X) \
	X(console)            \
	X(balloon)

struct vmm_vdev;

struct vmm_vdev_type {
	const char *name;              /* "console": log lines, lookups */
	uint16_t virtio_id;            /* VIRTIO_ID_* */
	uint32_t pci_class;            /* class << 16 | subclass << 8 | prog-if */
	/* Creates the model with `host` (the glue's, valid until destroy) and
	 * returns it in *priv with its transport in *tp.  0 or -errno. */
	int (*create)(struct vmm_vdev *v, const struct vmm_virtio_devs_cfg *cfg,
		      const struct virtio_host *host, void **priv, struct virtio_pci **tp);
	/* Optional: the event loop is running (agent_path: the agent socket,
	 * NULL for none; the console's). */
	int (*start)(void *priv, struct vmm_evloop *loop, const char *agent_path);
	/* Optional: the 200 ms tick, device mutex held. */
	void (*tick)(void *priv, uint64_t now_ns);
	/* Optional: after queue work on the event thread, no lock held. */
	void (*serviced)(void *priv);
	void (*destroy)(void *priv);   /* NULL priv is a no-op */
};

#define VMM_VDEV_DECLARE(name) extern const struct vmm_vdev_type vmm_vdev_##name;
VMM_VIRTIO_DEVICES(VMM_VDEV_DECLARE)
#undef VMM_VDEV_DECLARE

/* The device of that type (its priv), NULL when absent or d is NULL. */
void *vmm_virtio_devs_find(struct vmm_virtio_devs *d, const struct vmm_vdev_type *type);

/* The device mutex, around every call into the model. */
void vmm_vdev_lock(struct vmm_vdev *v);
void vmm_vdev_unlock(struct vmm_vdev *v);
/* After a call into the model (mutex held): wakes the event thread if the
 * transport has work pending. */
void vmm_vdev_after_call(struct vmm_vdev *v);
/* Wakes the event thread (any thread, any lock). */
void vmm_vdev_wake(struct vmm_vdev *v);
/* GUEST: a line the guest caused, through the one limiter (any thread). */
void vmm_vdev_guest_log(struct vmm_vdev *v, enum ebb_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Lines that limiter dropped, all devices. */
uint64_t vmm_vdev_nr_logs_suppressed(struct vmm_vdev *v);
/* Kicks that exited to the VMM (no ioeventfd hit). */
uint64_t vmm_vdev_nr_exit_kicks(struct vmm_vdev *v);
/* The VM (NULL in tests without one). */
struct vmm_vm *vmm_vdev_vm(struct vmm_vdev *v);

#endif
