/*
 * vmm/vm_priv.h — the VM's private state, shared by the files that make up
 * one VM: vm.c (creation, devices, the event thread, stopping), vcpu.c (the
 * vCPUs: CPUID, MSRs, boot registers, exits, machine checks) and vm_ctl.c
 * (the commands the VM owns on its control socket).  Not for other modules:
 * they use vm.h.
 */
#ifndef EBB_VMM_VM_PRIV_H
#define EBB_VMM_VM_PRIV_H

#include <linux/kvm.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "client/log.h"
#include "vmm/boot.h"
#include "vmm/console.h"
#include "vmm/guest_mem.h"
#include "vmm/vm.h"

#define KVM_TSS_GPA 0xfffbd000ull
#define KVM_IDENTITY_MAP_GPA 0xfffbc000ull
#define PANIC_GRACE_MS 2000
#define CPUID_MAX_ENTRIES 512

#define MSR_IA32_SYSENTER_CS 0x174
#define MSR_IA32_SYSENTER_ESP 0x175
#define MSR_IA32_SYSENTER_EIP 0x176
#define MSR_IA32_MISC_ENABLE 0x1a0
#define MSR_STAR 0xc0000081
#define MSR_LSTAR 0xc0000082
#define MSR_CSTAR 0xc0000083
#define MSR_SYSCALL_MASK 0xc0000084
#define MSR_KERNEL_GS_BASE 0xc0000102

#define APIC_LVT0 0x350
#define APIC_LVT1 0x360
#define APIC_MODE_NMI 0x4
#define APIC_MODE_EXTINT 0x7

struct vcpu {
	struct vmm_vm *vm;
	unsigned index;
	int fd;
	struct kvm_run *run;
	pthread_t thread;
	bool started;
	uint64_t nr_exits, nr_pio_exits, nr_mmio_exits;  /* atomic */
	struct ebb_ratelimit rl;                         /* vCPU thread only */
	/* Machine checks (mce.h): written by the SIGBUS handler on this vCPU's
	 * own thread, read by the same thread after KVM_RUN returns; atomics
	 * only because a signal handler writes them. */
	int tid;                     /* the vCPU thread's kernel tid, 0 before it runs */
	int in_run;                  /* inside the KVM_RUN ioctl */
	int mce_pending;
	bool mce_ar;
	uint64_t mce_gpa;
	uint64_t mce_held_gpa;       /* vCPU thread only: see inject_mce; UINT64_MAX none */
};

struct vmm_vm {
	struct vmm_vm_cfg cfg;
	char *name, *cmdline, *ready_marker;
	int kvm_fd, vm_fd;
	size_t run_size;
	struct vmm_guest_mem mem;    /* RAM, its slots and e820 map */
	uint8_t *kernel;             /* the bzImage, until loaded */
	size_t kernel_len;
	struct vmm_bzimage img;
	struct vmm_boot_plan plan;
	int initrd_fd;
	struct vcpu *vcpus;
	unsigned nr_vcpus;
	uint64_t mcg_cap;            /* 0: no machine checks offered */
	uint64_t nr_guest_mce;       /* atomic: machine checks injected */
	struct vmm_iobus *pio, *mmio;
	struct vmm_pci_bus *pci;
	struct vmm_serial *serial;
	struct vmm_i8042 *kbd;
	struct vmm_cmos *cmos;
	struct vmm_evloop *loop;
	struct vmm_ctl_server *ctl;
	struct vmm_virtio_devs *virtio;
	struct vmm_memory *memory;   /* NULL: reclaim off */
	struct vmm_poolctl *poolctl; /* ebbd's settings, clamps and stats */
	int lock_fd;
	int signal_fd;
	int panic_timer_fd;
	struct vmm_ev_watch *console_watch;
	uint64_t start_ns;

	/* Console line scanner: serial lock held (it runs in the tx callback). */
	struct vmm_console_line line;
	bool escape;                 /* console input: Ctrl-A seen (event thread) */

	pthread_mutex_t lock;        /* protects exit, stopping, panic_seen, ready_ns */
	struct vmm_vm_exit exit;
	bool stopping;
	bool panic_seen;             /* pvpanic said so: the guest kernel panicked */
	char panic_line[VMM_CONSOLE_LINE_BYTES];  /* last "Kernel panic" console line */
	uint16_t pm1_enable;         /* ACPI PM1 enable register (guest-written) */
	int64_t ready_ns;
	struct ebb_ratelimit rl;     /* event thread */
};

/* vm.c */
bool vmm_vm_is_stopping(struct vmm_vm *vm);
/* a guest reset (i8042, or a triple fault): a panic if pvpanic said so */
void vmm_vm_guest_reset(void *opaque);
/* vcpu.c: creates and sets up every vCPU (the BSP at the plan's entry) */
int vmm_vcpus_create(struct vmm_vm *vm, const struct vmm_boot_plan *plan, char *err,
		     size_t err_len);
void vmm_vcpu_kick_handler(int sig);
void *vmm_vcpu_thread(void *arg);
/* vm_ctl.c: the poolctl event hook, and the registration of the VM's commands */
struct json_object;
void vmm_vm_ctl_notify(void *opaque, const char *event, struct json_object *fields);
int vmm_vm_ctl_register(struct vmm_vm *vm);

#endif
