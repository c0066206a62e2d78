/*
 * vmm/virtio_devs.h — the VMM's virtio-pci devices: a multiport console
 * (port 0 = the VM console on the terminal, port 1 = "org.ebb.agent.0"
 * bridged to a unix socket RUNDIR/NAME.agent, mode 0600) and the balloon.
 * They are a list (VMM_VIRTIO_DEVICES in vmm/virtio_dev.h), one file each
 * (vmm/virtio_console_dev.c with vmm/agent_bridge.c, vmm/virtio_balloon_dev.c),
 * joined by the generic glue of vmm/virtio_devs.c.  Each is one PCI function
 * on the VMM's bus (vmm/pci.h): the bus owns the header and BAR0 and tells
 * the glue where BAR0 is mapped (bar_changed); the device's transport
 * (virtio/pci.h) owns the capabilities from 0x40 on.
 *
 * Doorbells: one eventfd per queue registered with KVM_IOEVENTFD at
 * BAR0 + virtio_pci_notify_offset(q) (2-byte writes), so a kick costs no exit
 * to userspace; a notify write that still reaches the VMM (before the
 * ioeventfds are in place, or another width) is turned into the same
 * eventfd signal, so queue work always runs on the event thread.
 * Interrupts: MSI-X messages through KVM_SIGNAL_MSI, INTx through
 * KVM_IRQ_LINE.
 *
 * Balloon: inflated and reported runs (the device hands us merged runs) are
 * released to the VM with vmm_vm_discard_range (one MADV_DONTNEED per run,
 * or the reclaim engine's ballooned state); deflated pages need nothing
 * (the next touch faults in a zero page).  The per-PFN state stays in the
 * device (vmm_virtio_balloon()) for the reclaim engine.
 *
 * Threads and locks: one mutex per device around every call into it.  BAR
 * and config accesses arrive on vCPU threads (config ones with the PCI bus
 * lock held: order pci -> device); kicks, ticks, the agent socket and
 * control requests on the event thread.  A register access never runs
 * device work: a kick or DRIVER_OK arriving that way only leaves the queue
 * pending in the transport, and the event thread runs it.  Device callbacks
 * run with the device mutex held and never call back into the device: they
 * record what the event thread must do next and wake it.  The agent
 * client's fd changes only under the console's mutex.  Every log line a
 * guest can cause passes one limiter (10 lines per 5 s; the rest counted:
 * nr_logs_suppressed).
 */
#ifndef EBB_VMM_VIRTIO_DEVS_H
#define EBB_VMM_VIRTIO_DEVS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "virtio/virtio.h"
#include "client/evloop.h"
#include "client/log.h"

struct vmm_vm;
struct virtio_balloon;

/* What `ebb run` chooses (part of struct vmm_vm_cfg). */
struct vmm_virtio_opts {
	bool disable;                  /* no virtio devices at all */
	bool balloon_deflate_on_oom;   /* offer VIRTIO_BALLOON_F_DEFLATE_ON_OOM */
	bool balloon_no_reporting;     /* do not offer free page reporting */
	uint32_t balloon_stats_period_ms; /* 0: default 2000 */
};

struct vmm_virtio_devs_cfg {
	struct vmm_vm *vm;             /* NULL (tests): no PCI functions, no guest RAM */
	struct vmm_virtio_opts opts;
	uint64_t mem_bytes;            /* guest RAM (balloon targets are against it) */
	uint64_t ram_end_gpa;          /* highest RAM address + 1 (PFN limit) */
	int console_out_fd;            /* port 0 output; -1: discard */
	struct vmm_log log;
};

struct vmm_virtio_devs;

/* Creates the devices and adds them to the VM's PCI bus (before the guest's
 * tables are written).  Returns 0 or -errno; *out NULL when opts.disable. */
int vmm_virtio_devs_create(const struct vmm_virtio_devs_cfg *cfg, struct vmm_virtio_devs **out);
/* Plugs the devices into the event loop: doorbell eventfds, the balloon
 * tick timer, the agent socket at agent_path (NULL: none).  Returns 0 or
 * -errno. */
int vmm_virtio_devs_start(struct vmm_virtio_devs *d, struct vmm_evloop *loop,
			  const char *agent_path);
/* Unregisters everything from KVM and the loop; NULL is a no-op.  The vCPUs
 * must have stopped. */
void vmm_virtio_devs_destroy(struct vmm_virtio_devs *d);

/* The balloon (per-PFN bitmap for the reclaim engine); NULL when absent. */
struct virtio_balloon *vmm_virtio_balloon(struct vmm_virtio_devs *d);

struct vmm_balloon_info {
	uint64_t mem_bytes;            /* guest RAM */
	uint64_t target_pages;         /* balloon size we asked for */
	uint64_t actual_pages;         /* what the driver says it holds */
	uint64_t nr_ballooned_pages;   /* what our bitmap holds */
	bool driver_ok;                /* the guest driver is up */
	uint64_t features;             /* negotiated */
	uint64_t nr_inflated_pages, nr_deflated_pages, nr_oom_deflated_pages;
	uint64_t nr_reported_pages, nr_bad_pfns;
	/* GUEST: what the guest got wrong (all counted, skipped, logged limited) */
	uint64_t nr_dup_inflates, nr_deflate_not_inflated, nr_bad_report_ranges, nr_bad_stats;
	struct virtio_dev_errors errs; /* rings and transport of the balloon */
	uint64_t nr_logs_suppressed;   /* guest-caused lines dropped, all virtio devices */
	uint64_t nr_madvise_calls;     /* MADV_DONTNEED syscalls (one per run) */
	uint64_t nr_discarded_pages;   /* pages they covered */
	uint64_t madvise_ns;           /* time spent in them */
	uint64_t nr_madvise_errors;
	uint64_t nr_exit_kicks;        /* kicks that exited to the VMM (no ioeventfd hit) */
	bool have_stats;
	int64_t stats_age_ms;          /* since the guest's last stats */
	uint32_t stats_valid_mask;     /* bit t: stats[t] valid (VIRTIO_BALLOON_S_*) */
	uint64_t stats[16];
};

/* CLIENT: target guest size in bytes (the balloon gets mem - size).  -EINVAL
 * when out of [0, mem], -ENODEV without a balloon. */
int vmm_virtio_balloon_set_size(struct vmm_virtio_devs *d, uint64_t guest_bytes);
int vmm_virtio_balloon_info(struct vmm_virtio_devs *d, struct vmm_balloon_info *out);
/* Stats tag names (VIRTIO_BALLOON_S_*) for output; NULL for unknown tags. */
const char *vmm_balloon_stat_name(unsigned tag);

/* Console input for hvc0 (port 0), from the event thread: delivered when
 * the guest has the port open and receive buffers, else dropped (the 8250
 * gets the same bytes).  NULL d is a no-op. */
void vmm_virtio_console_input(struct vmm_virtio_devs *d, const void *buf, size_t len);

/* Agent bridge state, for ebb stat. */
struct vmm_console_info {
	bool agent_client;             /* a host client is connected */
	bool agent_guest_open;         /* a guest process has the port open */
	uint64_t agent_tx_bytes, agent_rx_bytes, console_tx_bytes;
	uint64_t nr_bad_ctrl, nr_ctrl_dropped, nr_dropped_bytes;  /* GUEST */
	struct virtio_dev_errors errs;  /* rings and transport of the console */
	uint64_t nr_agent_refused;      /* CLIENT: a second client turned away */
	uint64_t nr_agent_hangups;      /* CLIENT: hung up before the guest took its bytes */
};
int vmm_virtio_console_info(struct vmm_virtio_devs *d, struct vmm_console_info *out);

/* The VM's PCI bus figures (guest config accesses, BAR moves); -ENODEV
 * without a VM. */
struct vmm_pci_stats;
int vmm_virtio_pci_stats(struct vmm_virtio_devs *d, struct vmm_pci_stats *out);

#endif
