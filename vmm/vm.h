/*
 * vmm/vm.h — one KVM virtual machine booting a Linux bzImage: guest RAM,
 * vCPUs, in-kernel irqchip and PIT, COM1, i8042 (reset), a CMOS clock, the
 * PCI bus, the event loop and the control socket.  `ebb run` is a thin
 * wrapper around vmm_vm_create() + vmm_vm_run().
 *
 * Threads and locks:
 *   - vCPU threads only run KVM_RUN and dispatch exits to the I/O buses
 *     (device locks: serial, pci, iobus; see their headers).
 *   - The event thread (the caller of vmm_vm_run) runs the evloop: console
 *     input, timers, signals (SIGINT/SIGTERM through a signalfd when
 *     handle_signals is set) and the control socket.
 *   - vm->lock protects the exit record and state; it is a leaf lock.
 *   Lock order: pci -> iobus -> device; vm->lock is taken alone.
 * Stopping: vmm_vm_request_stop() (any thread) records why, sets
 * immediate_exit on every vCPU and kicks it with VMM_KICK_SIGNAL, and stops
 * the event loop; vmm_vm_run() then joins the vCPUs and returns.
 * VMM_KICK_SIGNAL gets an empty process-wide handler in vmm_vm_run().
 *
 * Guest memory, its slots (two around the PCI hole at 3 GiB when the guest
 * is larger than that) and its e820 map are owned by vmm/guest_mem.h; the
 * RAM is optionally advised MADV_HUGEPAGE (cfg.thp).
 */
#ifndef EBB_VMM_VM_H
#define EBB_VMM_VM_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "vmm/boot.h"
#include "vmm/guest_mem.h"
#include "client/evloop.h"
#include "client/log.h"
#include "vmm/memory.h"
#include "vmm/pci.h"
#include "vmm/virtio_devs.h"

#define VMM_KICK_SIGNAL SIGUSR1
#define VMM_MAX_CPUS 64
#define VMM_DEFAULT_CMDLINE \
	"console=ttyS0 reboot=k panic=-1 acpi=noirq pci=conf1 i8042.noaux i8042.nomux i8042.nopnp i8042.dumbkbd"

struct vmm_vm_cfg {
	const char *name;            /* required, vmm_name_valid() */
	const char *kernel_path;     /* bzImage */
	const char *initrd_path;     /* optional */
	const char *cmdline;         /* appended to VMM_DEFAULT_CMDLINE; optional */
	uint64_t mem_bytes;
	unsigned nr_cpus;
	const char *kvm_path;        /* NULL: /dev/kvm */
	const char *rundir;          /* NULL: no control socket */
	int console_in_fd;           /* -1: none */
	int console_out_fd;          /* -1: discard */
	bool handle_signals;         /* SIGINT/SIGTERM stop the VM */
	bool thp;                    /* MADV_HUGEPAGE on guest RAM */
	const char *ready_marker;    /* console text whose first sighting is timed; optional */
	bool test_hooks;             /* allow test-only control commands (debug-poison) */
	struct vmm_virtio_opts virtio; /* console + balloon (vmm/virtio_devs.h) */
	struct vmm_memory_opts memory; /* guest RAM as a reclaim region (vmm/memory.h) */
	void (*on_running)(void *opaque);  /* called once vCPUs run and the socket listens */
	void *opaque;
	struct vmm_log log;
};

enum vmm_exit_reason {
	VMM_EXIT_NONE,
	VMM_EXIT_POWEROFF,     /* guest halted / powered off */
	VMM_EXIT_REBOOT,       /* guest reset through the i8042 (treated as an exit) */
	VMM_EXIT_STOPPED,      /* host asked: control socket, signal, console escape */
	VMM_EXIT_PANIC,        /* guest kernel panic reported through pvpanic */
	VMM_EXIT_CRASH,        /* triple fault (KVM_EXIT_SHUTDOWN), failed entry */
	VMM_EXIT_ERROR,        /* host-side failure */
};

struct vmm_vm_exit {
	enum vmm_exit_reason reason;
	char message[256];
};

const char *vmm_exit_reason_name(enum vmm_exit_reason r);

struct vmm_vm;

/* Returns 0, or -errno with a message for the user (what failed and what to
 * do) in err. */
int vmm_vm_create(const struct vmm_vm_cfg *cfg, struct vmm_vm **out, char *err, size_t err_len);
/* Runs until the VM stops; fills *exit.  Returns 0 or -errno (setup of the
 * threads failed). */
int vmm_vm_run(struct vmm_vm *vm, struct vmm_vm_exit *exit);
/* Thread safe; the first reason recorded wins. */
void vmm_vm_request_stop(struct vmm_vm *vm, enum vmm_exit_reason reason, const char *message);
void vmm_vm_destroy(struct vmm_vm *vm);

/* For device models (virtio-pci): */
struct vmm_pci_bus *vmm_vm_pci(struct vmm_vm *vm);
struct vmm_evloop *vmm_vm_evloop(struct vmm_vm *vm);
/* Host pointer for [gpa, gpa + len) if it is all RAM in one slot, else NULL. */
void *vmm_vm_translate(struct vmm_vm *vm, vmm_gpa_t gpa, uint64_t len);
int vmm_vm_irq_line(struct vmm_vm *vm, unsigned gsi, bool level);
int vmm_vm_signal_msi(struct vmm_vm *vm, uint64_t addr, uint32_t data);
/* KVM_IOEVENTFD: an eventfd signalled on guest writes of len bytes at addr
 * (PIO when is_pio), without a VM exit to userspace. */
int vmm_vm_ioeventfd(struct vmm_vm *vm, int efd, uint64_t addr, unsigned len, bool is_pio,
		     bool assign);

struct vmm_vm_info {
	const char *name;
	unsigned nr_cpus;
	uint64_t mem_bytes;
	uint64_t uptime_ns;
	int64_t ready_ns;            /* -1 until the ready marker was seen */
	bool stopping;
	uint64_t nr_exits, nr_pio_exits, nr_mmio_exits;
	uint64_t nr_guest_mce;       /* machine checks injected for lost guest RAM */
	unsigned mce_banks;          /* 0: KVM offers no machine checks */
};
void vmm_vm_get_info(struct vmm_vm *vm, struct vmm_vm_info *out);

/* CLIENT: the VM's own part of a `query` result for people (`ebb stat`),
 * from the same table as the JSON (vm_ctl.c); snprintf semantics. */
int vmm_vm_query_format(struct json_object *query_result, char *buf, size_t len);

/*
 * For the program's SIGBUS handler (SA_SIGINFO), async-signal safe: true
 * when the signal is a memory error (BUS_MCEERR_AR/AO) that KVM raised on
 * one of this VM's vCPU threads, inside KVM_RUN, for an address in guest
 * RAM.  The vCPU then injects a machine check for that page into the guest
 * (mce.h) before it runs again, counts it (nr_guest_mce) and the handler
 * must return.  False for anything else: the program dies as before.
 */
bool vmm_vm_on_sigbus(struct vmm_vm *vm, const siginfo_t *si);
/* The virtio devices (balloon, console); NULL with cfg.virtio.disable. */
struct vmm_virtio_devs *vmm_vm_virtio(struct vmm_vm *vm);
/* Is [gpa, gpa + len) wholly inside RAM entries of the guest's e820 map
 * (vmm_guest_mem_ram_ok)? */
bool vmm_vm_ram_ok(struct vmm_vm *vm, vmm_gpa_t gpa, uint64_t len);
/* GUEST: the guest gave up [gpa, gpa + len) (balloon, free page reporting):
 * vmm_guest_mem_discard_range on the VM's memory (validated there, once;
 * then the reclaim engine when it runs, else MADV_DONTNEED).  -EINVAL when
 * the range is not RAM the guest may give up (nothing is discarded), else
 * 0 / -errno. */
int vmm_vm_discard_range(struct vmm_vm *vm, vmm_gpa_t gpa, uint64_t len);

#endif
