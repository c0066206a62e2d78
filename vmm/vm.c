/*
 * vmm/vm.c — one KVM VM booting Linux: KVM setup, guest RAM, vCPUs, wiring
 * of the devices (COM1, i8042, CMOS, PCI), exit dispatch, the event thread
 * and the control socket handler.  See vm.h for threads, locks and stopping.
 *
 * Boot sequence (vmm_vm_create): open /dev/kvm and check the API version and
 * the capabilities we depend on; create the VM; place the TSS and identity
 * map pages (required on Intel, harmless on AMD) below 4 GiB, out of RAM;
 * create the in-kernel irqchip (PIC, IOAPIC, LAPICs) and PIT; map guest RAM;
 * load kernel, initrd, command line, boot_params, page tables, GDT and MP
 * table; create the vCPUs with the host-supported CPUID (patched with APIC
 * ids and the hypervisor bit), boot MSRs, LINT0=ExtINT/LINT1=NMI, and the
 * BSP in 64-bit mode at the kernel's 64-bit entry.  APs stay in the
 * wait-for-SIPI state the in-kernel LAPIC gives them.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "vmm/acpi.h"
#include "vmm/boot.h"
#include "vmm/console.h"
#include "client/ctl_server.h"
#include "host-reclaim/region.h"
#include "vmm/ctl_virtio.h"
#include "vmm/iobus.h"
#include "vmm/legacy.h"
#include "vmm/mce.h"
#include "vmm/mptable.h"
#include "vmm/poolctl.h"
#include "client/rundir.h"
#include "vmm/serial.h"
#include "client/size.h"
#include "vmm/version.h"
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

struct vmm_vm;

struct vcpu {
	struct vmm_vm *vm;
	unsigned index;
	int fd;
	struct kvm_run *run;
	pthread_t thread;
	bool started;
	uint64_t nr_exits, nr_pio_exits, nr_mmio_exits;  /* atomic */
	struct vmm_ratelimit rl;                         /* vCPU thread only */
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
	uint8_t *ram;
	struct vmm_mem_layout mem;
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
	struct vmm_ratelimit rl;     /* event thread */
};

const char *vmm_exit_reason_name(enum vmm_exit_reason r)
{
	switch (r) {
	case VMM_EXIT_NONE: return "none";
	case VMM_EXIT_POWEROFF: return "poweroff";
	case VMM_EXIT_REBOOT: return "reboot";
	case VMM_EXIT_STOPPED: return "stopped";
	case VMM_EXIT_PANIC: return "panic";
	case VMM_EXIT_CRASH: return "crash";
	case VMM_EXIT_ERROR: return "error";
	}
	return "?";
}

/* ---- stopping ------------------------------------------------------------ */

void vmm_vm_request_stop(struct vmm_vm *vm, enum vmm_exit_reason reason, const char *message)
{
	unsigned i;

	pthread_mutex_lock(&vm->lock);
	if (vm->exit.reason == VMM_EXIT_NONE) {
		vm->exit.reason = reason;
		snprintf(vm->exit.message, sizeof(vm->exit.message), "%s", message ? message : "");
	}
	vm->stopping = true;
	pthread_mutex_unlock(&vm->lock);
	/* immediate_exit covers a vCPU about to enter KVM_RUN; the signal one
	 * inside it.  Both are needed: see KVM_CAP_IMMEDIATE_EXIT. */
	for (i = 0; i < vm->nr_vcpus; i++) {
		struct vcpu *v = &vm->vcpus[i];

		if (!v->run)
			continue;
		__atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
		if (v->started && !pthread_equal(v->thread, pthread_self()))
			pthread_kill(v->thread, VMM_KICK_SIGNAL);
	}
	if (vm->loop)
		vmm_evloop_stop(vm->loop);
}

static bool is_stopping(struct vmm_vm *vm)
{
	bool s;

	pthread_mutex_lock(&vm->lock);
	s = vm->stopping;
	pthread_mutex_unlock(&vm->lock);
	return s;
}

/* ---- console --------------------------------------------------------------- */

/* Acts on one complete console line (serial lock held, vCPU thread). */
static void console_line(struct vmm_vm *vm, const char *line)
{
	switch (vmm_console_classify(line, vm->ready_marker)) {
	case VMM_CONSOLE_READY:
		pthread_mutex_lock(&vm->lock);
		if (vm->ready_ns < 0)
			vm->ready_ns = (int64_t)(vmm_now_ns() - vm->start_ns);
		pthread_mutex_unlock(&vm->lock);
		break;
	case VMM_CONSOLE_PANIC:
		/* Only words: any guest user can print them.  Kept for the exit
		 * message of a panic that pvpanic reports. */
		pthread_mutex_lock(&vm->lock);
		snprintf(vm->panic_line, sizeof(vm->panic_line), "%s", strstr(line, "Kernel panic"));
		pthread_mutex_unlock(&vm->lock);
		break;
	case VMM_CONSOLE_HALT:
		break;  /* power-off comes through ACPI PM1a_CNT, never from console text */
	case VMM_CONSOLE_NONE:
		break;
	}
}

static void console_tx(void *opaque, uint8_t byte)
{
	struct vmm_vm *vm = opaque;

	if (vm->cfg.console_out_fd >= 0) {
		ssize_t n;

		do
			n = write(vm->cfg.console_out_fd, &byte, 1);
		while (n < 0 && errno == EINTR);
	}
	if (vmm_console_feed(&vm->line, byte))
		console_line(vm, vm->line.buf);
}

static void serial_irq(void *opaque, bool level)
{
	vmm_vm_irq_line(opaque, VMM_COM1_IRQ, level);
}

static void serial_io(void *opaque, uint64_t offset, uint8_t *data, unsigned size, bool is_write)
{
	struct vmm_vm *vm = opaque;

	vmm_serial_io(vm->serial, (unsigned)offset, data, size, is_write);
}

/* Console input, event thread.  Ctrl-A x stops the VM (like QEMU's -nographic). */
static void console_input(void *opaque, uint32_t events)
{
	struct vmm_vm *vm = opaque;
	uint8_t buf[256], out[256];
	size_t i, n_out = 0;
	ssize_t n;

	n = read(vm->cfg.console_in_fd, buf, sizeof(buf));
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		/* EOF: stop watching; the guest keeps running. */
		vmm_evloop_del(vm->loop, vm->console_watch);
		vm->console_watch = NULL;
		return;
	}
	for (i = 0; i < (size_t)n; i++) {
		if (vm->escape) {
			vm->escape = false;
			if (buf[i] == 'x' || buf[i] == 'X') {
				vmm_vm_request_stop(vm, VMM_EXIT_STOPPED, "stopped from the console (Ctrl-A x)");
				return;
			}
			if (buf[i] != 0x01)
				out[n_out++] = 0x01;
			else {
				out[n_out++] = 0x01;
				continue;
			}
		} else if (buf[i] == 0x01) {
			vm->escape = true;
			continue;
		}
		out[n_out++] = buf[i];
	}
	if (n_out) {
		vmm_serial_rx(vm->serial, out, n_out);
		vmm_virtio_console_input(vm->virtio, out, n_out);  /* hvc0 too */
	}
}

static void panic_timer(void *opaque, uint32_t events)
{
	struct vmm_vm *vm = opaque;
	uint64_t v;
	char msg[VMM_CONSOLE_LINE_BYTES + 32];

	if (read(vm->panic_timer_fd, &v, sizeof(v)) < 0)
		return;
	pthread_mutex_lock(&vm->lock);
	snprintf(msg, sizeof(msg), "guest kernel panic (pvpanic): %s", vm->panic_line);
	pthread_mutex_unlock(&vm->lock);
	vmm_vm_request_stop(vm, VMM_EXIT_PANIC, msg);
}

static void signal_event(void *opaque, uint32_t events)
{
	struct vmm_vm *vm = opaque;
	struct signalfd_siginfo si;
	char msg[64];

	if (read(vm->signal_fd, &si, sizeof(si)) != sizeof(si))
		return;
	snprintf(msg, sizeof(msg), "stopped by %s", si.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM");
	vmm_vm_request_stop(vm, VMM_EXIT_STOPPED, msg);
}

/* ---- legacy devices ---------------------------------------------------------- */

/* The i8042 reset line: a reboot, or the end of a panic with panic=-1. */
static void i8042_reset(void *opaque)
{
	struct vmm_vm *vm = opaque;
	char msg[VMM_CONSOLE_LINE_BYTES + 32];
	bool panicked;

	pthread_mutex_lock(&vm->lock);
	panicked = vm->panic_seen;
	snprintf(msg, sizeof(msg), "guest kernel panic (pvpanic): %s", vm->panic_line);
	pthread_mutex_unlock(&vm->lock);
	if (panicked)
		vmm_vm_request_stop(vm, VMM_EXIT_PANIC, msg);
	else
		vmm_vm_request_stop(vm, VMM_EXIT_REBOOT, "guest rebooted (i8042 reset)");
}

static void i8042_io(void *opaque, uint64_t offset, uint8_t *data, unsigned size, bool is_write)
{
	vmm_i8042_io(((struct vmm_vm *)opaque)->kbd, (unsigned)offset, data, size, is_write);
}

static void cmos_io(void *opaque, uint64_t offset, uint8_t *data, unsigned size, bool is_write)
{
	vmm_cmos_io(((struct vmm_vm *)opaque)->cmos, (unsigned)offset, data, size, is_write);
}

/* ---- ACPI power-off and pvpanic (acpi.h) ------------------------------------------ */

/* GUEST: PM1a event block: status (bytes 0-1; write 1 to clear, nothing is
 * ever set) and enable (bytes 2-3; kept, never acted on: no fixed events are
 * offered). */
static void pm1_evt_io(void *opaque, uint64_t offset, uint8_t *data, unsigned size, bool is_write)
{
	struct vmm_vm *vm = opaque;

	pthread_mutex_lock(&vm->lock);
	for (unsigned i = 0; i < size; i++) {
		uint64_t reg = offset + i;
		unsigned shift = reg == 3 ? 8 : 0;

		if (!is_write)
			data[i] = reg == 2 || reg == 3 ? (uint8_t)(vm->pm1_enable >> shift) : 0;
		else if (reg == 2 || reg == 3)
			vm->pm1_enable = (uint16_t)((vm->pm1_enable & ~(0xffu << shift)) |
						    (unsigned)data[i] << shift);
	}
	pthread_mutex_unlock(&vm->lock);
}

/* GUEST: PM1a control: SCI_EN reads as set (always in ACPI mode); SLP_EN
 * with the \_S5 sleep type powers the VM off. */
static void pm1_cnt_io(void *opaque, uint64_t offset, uint8_t *data, unsigned size, bool is_write)
{
	struct vmm_vm *vm = opaque;
	uint16_t v;

	if (!is_write) {
		memset(data, 0, size);
		if (offset == 0)
			data[0] = VMM_ACPI_PM1_SCI_EN;
		return;
	}
	if (offset != 0 || size < 2)
		return;  /* ACPICA writes the register whole */
	v = (uint16_t)(data[0] | data[1] << 8);
	if (vmm_acpi_pm1_cnt_is_poweroff(v))
		vmm_vm_request_stop(vm, VMM_EXIT_POWEROFF, "guest powered off (ACPI S5)");
}

/* GUEST: the pvpanic port.  Reads say which events we take; a write with
 * PVPANIC_PANICKED comes from the guest kernel's panic notifier: the VM ends
 * as a panic after a grace period for the rest of the panic message (or at
 * once when panic=-1 makes the guest reset, see i8042_reset). */
static void pvpanic_io(void *opaque, uint64_t offset, uint8_t *data, unsigned size, bool is_write)
{
	struct itimerspec its = { .it_value = { .tv_sec = PANIC_GRACE_MS / 1000,
						.tv_nsec = (PANIC_GRACE_MS % 1000) * 1000000L } };
	struct vmm_vm *vm = opaque;
	bool first;

	if (!is_write) {
		memset(data, 0, size);
		data[0] = VMM_PVPANIC_PANICKED;
		return;
	}
	if (!(data[0] & VMM_PVPANIC_PANICKED))
		return;  /* CRASH_LOADED (kdump) is not offered; other bits: nothing */
	pthread_mutex_lock(&vm->lock);
	first = !vm->panic_seen;
	vm->panic_seen = true;
	if (!vm->panic_line[0])
		snprintf(vm->panic_line, sizeof(vm->panic_line), "reported through pvpanic");
	pthread_mutex_unlock(&vm->lock);
	if (first && vm->panic_timer_fd >= 0)
		timerfd_settime(vm->panic_timer_fd, 0, &its, NULL);
}

static void ignore_io(void *opaque, uint64_t offset, uint8_t *data, unsigned size, bool is_write)
{
	if (!is_write)
		memset(data, 0xff, size);
}

/* ---- interfaces for devices ------------------------------------------------ */

struct vmm_pci_bus *vmm_vm_pci(struct vmm_vm *vm)
{
	return vm->pci;
}

struct vmm_virtio_devs *vmm_vm_virtio(struct vmm_vm *vm)
{
	return vm->virtio;
}

int vmm_vm_discard_ram(struct vmm_vm *vm, void *hva, uint64_t len)
{
	if (vm->memory)
		return vmm_memory_discard(vm->memory, hva, len);
	return madvise(hva, len, MADV_DONTNEED) < 0 ? -errno : 0;
}

bool vmm_mem_layout_ram_ok(const struct vmm_mem_layout *mem, vmm_gpa_t gpa, uint64_t len)
{
	struct boot_e820_entry map[8];
	unsigned n = vmm_e820_build(mem, map, 8);
	uint64_t end;

	if (len == 0 || __builtin_add_overflow(gpa, len, &end))
		return false;
	for (unsigned i = 0; i < n; i++)  /* RAM entries neither touch nor overlap */
		if (map[i].type == VMM_E820_RAM && gpa >= map[i].addr &&
		    end - map[i].addr <= map[i].size)
			return true;
	return false;
}

bool vmm_vm_ram_ok(struct vmm_vm *vm, vmm_gpa_t gpa, uint64_t len)
{
	return vmm_mem_layout_ram_ok(&vm->mem, gpa, len);
}

int vmm_vm_discard_range(struct vmm_vm *vm, vmm_gpa_t gpa, uint64_t len)
{
	void *hva;

	if (!vmm_vm_ram_ok(vm, gpa, len) || !(hva = vmm_vm_translate(vm, gpa, len)))
		return -EINVAL;
	return vmm_vm_discard_ram(vm, hva, len);
}

struct vmm_evloop *vmm_vm_evloop(struct vmm_vm *vm)
{
	return vm->loop;
}

void *vmm_vm_translate(struct vmm_vm *vm, vmm_gpa_t gpa, uint64_t len)
{
	uint64_t end;

	if (len == 0 || __builtin_add_overflow(gpa, len, &end))
		return NULL;
	if (end <= vm->mem.low_bytes)
		return vm->ram + gpa;
	if (gpa >= VMM_4G && end - VMM_4G <= vm->mem.high_bytes)
		return vm->ram + vm->mem.low_bytes + (gpa - VMM_4G);
	return NULL;
}

int vmm_vm_irq_line(struct vmm_vm *vm, unsigned gsi, bool level)
{
	struct kvm_irq_level irq = { .irq = gsi, .level = level ? 1 : 0 };

	return ioctl(vm->vm_fd, KVM_IRQ_LINE, &irq) < 0 ? -errno : 0;
}

int vmm_vm_signal_msi(struct vmm_vm *vm, uint64_t addr, uint32_t data)
{
	struct kvm_msi msi = {
		.address_lo = (uint32_t)addr, .address_hi = (uint32_t)(addr >> 32), .data = data,
	};

	return ioctl(vm->vm_fd, KVM_SIGNAL_MSI, &msi) < 0 ? -errno : 0;
}

int vmm_vm_ioeventfd(struct vmm_vm *vm, int efd, uint64_t addr, unsigned len, bool is_pio,
		     bool assign)
{
	struct kvm_ioeventfd io = {
		.addr = addr, .len = len, .fd = efd,
		.flags = (is_pio ? KVM_IOEVENTFD_FLAG_PIO : 0) |
			 (assign ? 0 : KVM_IOEVENTFD_FLAG_DEASSIGN),
	};

	return ioctl(vm->vm_fd, KVM_IOEVENTFD, &io) < 0 ? -errno : 0;
}

void vmm_vm_get_info(struct vmm_vm *vm, struct vmm_vm_info *out)
{
	unsigned i;

	memset(out, 0, sizeof(*out));
	out->name = vm->name;
	out->nr_cpus = vm->nr_vcpus;
	out->mem_bytes = vm->mem.mem_bytes;
	out->uptime_ns = vmm_now_ns() - vm->start_ns;
	pthread_mutex_lock(&vm->lock);
	out->ready_ns = vm->ready_ns;
	out->stopping = vm->stopping;
	pthread_mutex_unlock(&vm->lock);
	out->nr_guest_mce = __atomic_load_n(&vm->nr_guest_mce, __ATOMIC_RELAXED);
	out->mce_banks = (unsigned)(vm->mcg_cap & 0xff);
	for (i = 0; i < vm->nr_vcpus; i++) {
		out->nr_exits += __atomic_load_n(&vm->vcpus[i].nr_exits, __ATOMIC_RELAXED);
		out->nr_pio_exits += __atomic_load_n(&vm->vcpus[i].nr_pio_exits, __ATOMIC_RELAXED);
		out->nr_mmio_exits += __atomic_load_n(&vm->vcpus[i].nr_mmio_exits, __ATOMIC_RELAXED);
	}
}

/* ---- control socket ---------------------------------------------------------- */

/* Events to `watch` subscribers (ebbd); the server exists once the VM is up. */
static void ctl_notify(void *opaque, const char *event, struct json_object *fields)
{
	struct vmm_vm *vm = opaque;

	vmm_ctl_server_notify(vm->ctl, event, fields);
}

/*
 * Test hook of debug-poison {"via": "swap"}: make the reclaim engine lose
 * the page at RAM offset @off the way a failing swap store would.  The next
 * swap-in of the page fails (ebb_region_test_lose_page), and the page is
 * pushed out now (proactive reclaim of the whole region, at most 16 passes)
 * so that the guest's next access is that swap-in.  With @no_hwpoison the
 * engine's MADV_HWPOISON is made to fail, as on a host without memory
 * failure handling.  0, or -EAGAIN when the page stayed resident.
 */
static int debug_lose_page(struct vmm_vm *vm, uint64_t off, bool no_hwpoison)
{
	struct ebb_region *r = vmm_memory_region(vm->memory);
	uint64_t pfn = off / 4096;
	int ret;

	if (!r)
		return -EOPNOTSUPP;
	ret = ebb_region_test_lose_page(r, pfn);
	if (ret)
		return ret;
	if (no_hwpoison)
		ebb_region_test_inject(r, EBB_INJ_MADV_HWPOISON, 0, UINT32_MAX, EPERM);
	for (int pass = 0; pass < 16 && ebb_region_page_state(r, pfn) == EBB_PAGE_RESIDENT; pass++) {
		struct ebb_scan_control sc = {
			.nr_to_reclaim = vm->mem.mem_bytes / 4096,
			.priority = 0,
			.swappiness = 100,
			.may_writepage = true,
			.may_swap = true,
		};

		ebb_region_reclaim(r, &sc);
	}
	return ebb_region_page_state(r, pfn) == EBB_PAGE_SWAPPED ? 0 : -EAGAIN;
}

/*
 * CLIENT: test only, and only when the VM was started with test hooks
 * (EBB_TEST_HOOKS=1): {"gpa": N} poisons the host page behind guest page N
 * with MADV_HWPOISON (needs CAP_SYS_ADMIN and CONFIG_MEMORY_FAILURE), as
 * if the host had lost it.  The guest's next access to it makes KVM raise
 * SIGBUS, which becomes a machine check (vmm_vm_on_sigbus).  The page stays
 * lost for the life of the process.  {"gpa": N, "via": "swap"} makes the
 * reclaim engine lose it instead (debug_lose_page), "no_hwpoison": true
 * with it as on a host whose kernel cannot poison pages.
 */
static enum vmm_ctl_err ctl_debug_poison(void *opaque, const struct vmm_ctl_request *req,
					 struct json_object **result, char *msg, size_t msg_len)
{
	struct vmm_vm *vm = opaque;
	struct json_object *jgpa, *jvia, *jnohw;
	bool via_swap = false, no_hwpoison = false;
	uint64_t gpa, off;
	int64_t v;

	if (!vm->cfg.test_hooks) {
		snprintf(msg, msg_len, "debug-poison is a test hook: start the VM with EBB_TEST_HOOKS=1");
		return VMM_CTL_ERR_STATE;
	}
	if (!req->args || !json_object_object_get_ex(req->args, "gpa", &jgpa) ||
	    !json_object_is_type(jgpa, json_type_int) || (v = json_object_get_int64(jgpa)) < 0) {
		snprintf(msg, msg_len, "give {\"gpa\": N}, a guest-physical address");
		return VMM_CTL_ERR_INVALID;
	}
	if (json_object_object_get_ex(req->args, "via", &jvia)) {
		if (!json_object_is_type(jvia, json_type_string) ||
		    strcmp(json_object_get_string(jvia), "swap") != 0) {
			snprintf(msg, msg_len, "\"via\" must be \"swap\"");
			return VMM_CTL_ERR_INVALID;
		}
		via_swap = true;
	}
	if (json_object_object_get_ex(req->args, "no_hwpoison", &jnohw)) {
		if (!json_object_is_type(jnohw, json_type_boolean)) {
			snprintf(msg, msg_len, "\"no_hwpoison\" must be a boolean");
			return VMM_CTL_ERR_INVALID;
		}
		no_hwpoison = json_object_get_boolean(jnohw);
	}
	gpa = (uint64_t)v & ~0xfffull;
	if (gpa < vm->mem.low_bytes)
		off = gpa;
	else if (gpa >= VMM_4G && gpa - VMM_4G < vm->mem.high_bytes)
		off = vm->mem.low_bytes + (gpa - VMM_4G);
	else {
		snprintf(msg, msg_len, "gpa 0x%llx is not guest RAM", (unsigned long long)gpa);
		return VMM_CTL_ERR_INVALID;
	}
	if (via_swap) {
		int ret = debug_lose_page(vm, off, no_hwpoison);

		if (ret) {
			snprintf(msg, msg_len, "%s", ret == -EAGAIN ? "the page stayed resident" :
				 ret == -EOPNOTSUPP ? "no reclaim engine (--reclaim off?)" : strerror(-ret));
			return ret == -EAGAIN ? VMM_CTL_ERR_STATE : VMM_CTL_ERR_INTERNAL;
		}
	} else if (madvise(vm->ram + off, 4096, MADV_HWPOISON) < 0) {
		snprintf(msg, msg_len, "MADV_HWPOISON: %s", strerror(errno));
		return VMM_CTL_ERR_INTERNAL;
	}
	*result = json_object_new_object();
	if (*result) {
		json_object_object_add(*result, "gpa", json_object_new_int64((int64_t)gpa));
		json_object_object_add(*result, "via", json_object_new_string(via_swap ? "swap" : "hwpoison"));
	}
	return VMM_CTL_OK;
}

/*
 * The commands the VM itself owns.  The others are registered by their
 * modules (vmm_ctl_virtio_register: balloon; vmm_poolctl_register: set,
 * clamp); ebbd's commands (pool, vms, policy, trace) get unknown-command.
 */
static enum vmm_ctl_err ctl_query(void *opaque, const struct vmm_ctl_request *req,
				  struct json_object **result, char *msg, size_t msg_len)
{
	struct vmm_vm *vm = opaque;
	struct vmm_vm_info info;
	struct json_object *r = json_object_new_object();

	if (!r) {
		snprintf(msg, msg_len, "out of memory");
		return VMM_CTL_ERR_INTERNAL;
	}
	vmm_vm_get_info(vm, &info);
	json_object_object_add(r, "name", json_object_new_string(info.name));
	json_object_object_add(r, "pid", json_object_new_int64(getpid()));
	json_object_object_add(r, "state", json_object_new_string(info.stopping ? "stopping" : "running"));
	json_object_object_add(r, "vcpus", json_object_new_int64(info.nr_cpus));
	json_object_object_add(r, "mem_bytes", json_object_new_int64((int64_t)info.mem_bytes));
	json_object_object_add(r, "uptime_ms", json_object_new_int64((int64_t)(info.uptime_ns / 1000000)));
	json_object_object_add(r, "ready_ms", info.ready_ns < 0 ? NULL :
			       json_object_new_int64(info.ready_ns / 1000000));
	json_object_object_add(r, "nr_exits", json_object_new_int64((int64_t)info.nr_exits));
	json_object_object_add(r, "nr_pio_exits", json_object_new_int64((int64_t)info.nr_pio_exits));
	json_object_object_add(r, "nr_mmio_exits", json_object_new_int64((int64_t)info.nr_mmio_exits));
	json_object_object_add(r, "nr_guest_mce", json_object_new_int64((int64_t)info.nr_guest_mce));
	json_object_object_add(r, "mce_banks", json_object_new_int64(info.mce_banks));
	json_object_object_add(r, "kernel", json_object_new_string(vm->cfg.kernel_path));
	json_object_object_add(r, "cmdline", json_object_new_string(vm->cmdline));
	json_object_object_add(r, "protocol", json_object_new_int(VMM_CTL_PROTOCOL_VERSION));
	vmm_ctl_virtio_query(vm->virtio, r);
	vmm_memory_query(vm->memory, r);
	vmm_poolctl_query(vm->poolctl, r);
	*result = r;
	return VMM_CTL_OK;
}

/* `stats`: poolctl's flat counters and the virtio devices' objects. */
static enum vmm_ctl_err ctl_stats(void *opaque, const struct vmm_ctl_request *req,
				  struct json_object **result, char *msg, size_t msg_len)
{
	struct vmm_vm *vm = opaque;
	enum vmm_ctl_err e = vmm_poolctl_stats(vm->poolctl, result, msg, msg_len);

	if (e == VMM_CTL_OK)
		vmm_ctl_virtio_query(vm->virtio, *result);
	return e;
}

static enum vmm_ctl_err ctl_stop(void *opaque, const struct vmm_ctl_request *req,
				 struct json_object **result, char *msg, size_t msg_len)
{
	struct vmm_vm *vm = opaque;
	struct json_object *r;

	if (is_stopping(vm)) {
		snprintf(msg, msg_len, "the VM is already stopping");
		return VMM_CTL_ERR_STATE;
	}
	vmm_vm_request_stop(vm, VMM_EXIT_STOPPED, "stopped over the control socket");
	r = json_object_new_object();
	if (r)
		json_object_object_add(r, "state", json_object_new_string("stopping"));
	*result = r;
	return VMM_CTL_OK;
}

static enum vmm_ctl_err ctl_version(void *opaque, const struct vmm_ctl_request *req,
				    struct json_object **result, char *msg, size_t msg_len)
{
	struct json_object *r = json_object_new_object();

	if (!r) {
		snprintf(msg, msg_len, "out of memory");
		return VMM_CTL_ERR_INTERNAL;
	}
	json_object_object_add(r, "version", json_object_new_string(EBB_VERSION));
	json_object_object_add(r, "protocol", json_object_new_int(VMM_CTL_PROTOCOL_VERSION));
	*result = r;
	return VMM_CTL_OK;
}

static int ctl_register(struct vmm_vm *vm)
{
	static const struct {
		enum vmm_ctl_cmd cmd;
		vmm_ctl_handler_fn fn;
	} own[] = {
		{ VMM_CTL_CMD_QUERY, ctl_query },
		{ VMM_CTL_CMD_STATS, ctl_stats },
		{ VMM_CTL_CMD_STOP, ctl_stop },
		{ VMM_CTL_CMD_VERSION, ctl_version },
		{ VMM_CTL_CMD_DEBUG_POISON, ctl_debug_poison },
	};
	int ret = 0;

	for (size_t i = 0; i < sizeof(own) / sizeof(own[0]) && !ret; i++)
		ret = vmm_ctl_server_register(vm->ctl, own[i].cmd, own[i].fn, vm);
	if (!ret)
		ret = vmm_ctl_virtio_register(vm->virtio, vm->ctl);
	if (!ret)
		ret = vmm_poolctl_register(vm->poolctl, vm->ctl);
	return ret;
}

/* ---- vCPUs ---------------------------------------------------------------------- */

static int setup_cpuid(struct vmm_vm *vm, struct vcpu *v, struct kvm_cpuid2 *supported,
		       bool tsc_deadline)
{
	size_t sz = sizeof(struct kvm_cpuid2) + supported->nent * sizeof(struct kvm_cpuid_entry2);
	struct kvm_cpuid2 *c = malloc(sz);
	unsigned i;
	int ret = 0;

	if (!c)
		return -ENOMEM;
	memcpy(c, supported, sz);
	for (i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *e = &c->entries[i];

		switch (e->function) {
		case 1:
			/* APIC id, logical processor count, HTT, hypervisor present. */
			e->ebx = (e->ebx & 0x0000ffffu) | (v->index << 24) | ((vm->nr_vcpus & 0xff) << 16);
			if (vm->nr_vcpus > 1)
				e->edx |= 1u << 28;
			e->ecx |= 1u << 31;
			/* KVM emulates the TSC-deadline timer but does not list it in
			 * KVM_GET_SUPPORTED_CPUID.  Without it Linux calibrates the
			 * LAPIC timer against the PIT, which fails when exits are slow
			 * (nested) and leaves the guest on the PIT tick. */
			if (tsc_deadline)
				e->ecx |= 1u << 24;
			break;
		case 6:
			e->ecx &= ~(1u << 3);  /* no energy/perf bias MSR */
			break;
		case 0xb:
		case 0x1f:
			e->edx = v->index;     /* x2APIC id */
			break;
		case 0x8000001e:
			e->eax = v->index;     /* AMD extended APIC id */
			break;
		case 0x80000007:
			/* AMD: overflow recovery and SUCCOR (software uncorrectable
			 * error containment): without them Linux on AMD panics on
			 * any uncorrected error instead of killing one process. */
			if (vm->mcg_cap)
				e->ebx |= (1u << 0) | (1u << 1);
			break;
		}
		if (e->function == 1 && vm->mcg_cap)
			e->edx |= (1u << 7) | (1u << 14);  /* MCE, MCA */
	}
	if (ioctl(v->fd, KVM_SET_CPUID2, c) < 0)
		ret = -errno;
	free(c);
	return ret;
}

static int setup_msrs(struct vcpu *v)
{
	static const uint32_t idx[] = {
		MSR_IA32_SYSENTER_CS, MSR_IA32_SYSENTER_ESP, MSR_IA32_SYSENTER_EIP,
		MSR_STAR, MSR_CSTAR, MSR_KERNEL_GS_BASE, MSR_SYSCALL_MASK, MSR_LSTAR,
		MSR_IA32_MISC_ENABLE,
	};
	const unsigned nr = sizeof(idx) / sizeof(idx[0]);
	struct kvm_msrs *m = calloc(1, sizeof(*m) + nr * sizeof(struct kvm_msr_entry));
	unsigned i;
	int n;

	if (!m)
		return -ENOMEM;
	m->nmsrs = nr;
	for (i = 0; i < nr; i++) {
		m->entries[i].index = idx[i];
		m->entries[i].data = idx[i] == MSR_IA32_MISC_ENABLE ? 1 /* fast strings */ : 0;
	}
	n = ioctl(v->fd, KVM_SET_MSRS, m);
	free(m);
	if (n < 0)
		return -errno;
	return n == (int)nr ? 0 : -EINVAL;
}

static int setup_lapic(struct vcpu *v)
{
	struct kvm_lapic_state l;
	uint32_t r;

	if (ioctl(v->fd, KVM_GET_LAPIC, &l) < 0)
		return -errno;
	memcpy(&r, &l.regs[APIC_LVT0], 4);
	r = (r & ~0x700u) | (APIC_MODE_EXTINT << 8);
	memcpy(&l.regs[APIC_LVT0], &r, 4);
	memcpy(&r, &l.regs[APIC_LVT1], 4);
	r = (r & ~0x700u) | (APIC_MODE_NMI << 8);
	memcpy(&l.regs[APIC_LVT1], &r, 4);
	return ioctl(v->fd, KVM_SET_LAPIC, &l) < 0 ? -errno : 0;
}

static void seg(struct kvm_segment *s, uint16_t sel, uint8_t type, bool code)
{
	memset(s, 0, sizeof(*s));
	s->selector = sel;
	s->base = 0;
	s->limit = 0xffffffff;
	s->type = type;
	s->present = 1;
	s->s = 1;
	s->g = 1;
	s->l = code ? 1 : 0;
	s->db = code ? 0 : 1;
}

static int setup_bsp(struct vcpu *v, const struct vmm_boot_plan *plan)
{
	struct kvm_sregs sr;
	struct kvm_regs regs;
	struct kvm_fpu fpu;

	if (ioctl(v->fd, KVM_GET_SREGS, &sr) < 0)
		return -errno;
	seg(&sr.cs, VMM_BOOT_CS, 0xb, true);
	seg(&sr.ds, VMM_BOOT_DS, 0x3, false);
	sr.es = sr.fs = sr.gs = sr.ss = sr.ds;
	memset(&sr.tr, 0, sizeof(sr.tr));
	sr.tr.selector = VMM_BOOT_TSS;
	sr.tr.limit = 0xfffff;
	sr.tr.type = 0xb;
	sr.tr.present = 1;
	sr.gdt.base = VMM_BOOT_GDT_GPA;
	sr.gdt.limit = VMM_BOOT_GDT_ENTRIES * 8 - 1;
	sr.idt.base = 0;
	sr.idt.limit = 0;
	sr.cr0 = 0x1 | 0x10 | 0x20 | 0x80000000u;  /* PE, ET, NE, PG */
	sr.cr3 = VMM_BOOT_PML4_GPA;
	sr.cr4 = 0x20;                              /* PAE */
	sr.efer = 0x100 | 0x400;                    /* LME, LMA */
	if (ioctl(v->fd, KVM_SET_SREGS, &sr) < 0)
		return -errno;
	memset(&regs, 0, sizeof(regs));
	regs.rflags = 2;
	regs.rip = plan->entry_gpa;
	regs.rsi = VMM_BOOT_PARAMS_GPA;
	if (ioctl(v->fd, KVM_SET_REGS, &regs) < 0)
		return -errno;
	memset(&fpu, 0, sizeof(fpu));
	fpu.fcw = 0x37f;
	fpu.mxcsr = 0x1f80;
	return ioctl(v->fd, KVM_SET_FPU, &fpu) < 0 ? -errno : 0;
}

static void kick_handler(int sig)
{
	(void)sig;
}

/* GUEST: everything in run comes from the guest (through KVM). */
static bool handle_exit(struct vcpu *v)
{
	struct vmm_vm *vm = v->vm;
	struct kvm_run *run = v->run;
	char msg[128];

	__atomic_add_fetch(&v->nr_exits, 1, __ATOMIC_RELAXED);
	switch (run->exit_reason) {
	case KVM_EXIT_IO: {
		uint8_t *data = (uint8_t *)run + run->io.data_offset;
		unsigned size = run->io.size, i;
		bool is_write = run->io.direction == KVM_EXIT_IO_OUT;
		uint64_t bytes = (uint64_t)size * run->io.count;

		__atomic_add_fetch(&v->nr_pio_exits, 1, __ATOMIC_RELAXED);
		if ((size != 1 && size != 2 && size != 4) || run->io.data_offset >= vm->run_size ||
		    bytes > vm->run_size - run->io.data_offset)
			return true;  /* cannot happen with a sane kernel; never trust it */
		for (i = 0; i < run->io.count; i++, data += size) {
			if (run->io.port >= VMM_PCI_CONFIG_PORT &&
			    run->io.port < VMM_PCI_CONFIG_PORT + VMM_PCI_CONFIG_NR_PORTS)
				vmm_pci_config_io(vm->pci, run->io.port, data, size, is_write);
			else
				vmm_iobus_dispatch(vm->pio, run->io.port, data, size, is_write);
		}
		return true;
	}
	case KVM_EXIT_MMIO:
		__atomic_add_fetch(&v->nr_mmio_exits, 1, __ATOMIC_RELAXED);
		if (run->mmio.len > 8)
			return true;
		vmm_iobus_dispatch(vm->mmio, run->mmio.phys_addr, run->mmio.data, run->mmio.len,
				   run->mmio.is_write);
		return true;
	case KVM_EXIT_INTR:
		return true;
	case KVM_EXIT_HLT:
		return true;  /* only without an in-kernel LAPIC */
	case KVM_EXIT_SHUTDOWN: {
		bool panicked;

		pthread_mutex_lock(&vm->lock);
		panicked = vm->panic_seen;
		pthread_mutex_unlock(&vm->lock);
		if (panicked) {
			i8042_reset(vm);  /* same report as a panic reset */
			return false;
		}
		snprintf(msg, sizeof(msg), "vCPU %u: guest triple fault (KVM_EXIT_SHUTDOWN)", v->index);
		vmm_vm_request_stop(vm, VMM_EXIT_CRASH, msg);
		return false;
	}
	case KVM_EXIT_SYSTEM_EVENT:
		if (run->system_event.type == KVM_SYSTEM_EVENT_SHUTDOWN)
			vmm_vm_request_stop(vm, VMM_EXIT_POWEROFF, "guest powered off");
		else if (run->system_event.type == KVM_SYSTEM_EVENT_RESET)
			i8042_reset(vm);
		else
			vmm_vm_request_stop(vm, VMM_EXIT_CRASH, "guest system event (crash)");
		return false;
	case KVM_EXIT_FAIL_ENTRY:
		snprintf(msg, sizeof(msg), "vCPU %u: KVM entry failed (hardware reason 0x%llx)",
			 v->index,
			 (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
		vmm_vm_request_stop(vm, VMM_EXIT_CRASH, msg);
		return false;
	case KVM_EXIT_INTERNAL_ERROR:
		snprintf(msg, sizeof(msg), "vCPU %u: KVM internal error (suberror %u)", v->index,
			 run->internal.suberror);
		vmm_vm_request_stop(vm, VMM_EXIT_CRASH, msg);
		return false;
	default:
		vmm_logf_rl(&vm->cfg.log, &v->rl, VMM_LOG_WARN, "vCPU %u: unhandled exit reason %u",
			    v->index, run->exit_reason);
		return true;
	}
}

/* After a SIGBUS for lost guest RAM (vmm_vm_on_sigbus): the machine check
 * into this vCPU.  vCPU thread.  Returns false when the VM must end. */
static bool inject_mce(struct vcpu *v)
{
	struct vmm_vm *vm = v->vm;
	uint64_t gpa = __atomic_load_n(&v->mce_gpa, __ATOMIC_SEQ_CST);
	bool ar = __atomic_load_n(&v->mce_ar, __ATOMIC_SEQ_CST);
	struct kvm_x86_mce kmce;
	struct vmm_mce mce;
	char msg[128];

	__atomic_store_n(&v->mce_pending, 0, __ATOMIC_SEQ_CST);
	/*
	 * KVM also raises SIGBUS when a page it fetched in the background
	 * turns out poisoned: the "page ready" step of an asynchronous page
	 * fault (a swap-in the reclaim engine answered by poisoning) prefaults
	 * the page on this vCPU while the guest runs something else, often
	 * its kernel; a machine check there would panic the guest although
	 * nothing consumed the page.  A real access faults again on the same
	 * page as soon as the vCPU re-enters.  So the first SIGBUS for a page
	 * only arms it; the machine check goes in on the next one, at the
	 * instruction that touches the page.
	 */
	if (ar && v->mce_held_gpa != gpa) {
		v->mce_held_gpa = gpa;
		vmm_logf_rl(&vm->cfg.log, &v->rl, VMM_LOG_DEBUG,
			    "vCPU %u: guest RAM at 0x%llx is lost on the host: machine check on the next access",
			    v->index, (unsigned long long)gpa);
		return true;
	}
	v->mce_held_gpa = UINT64_MAX;
	if (!vmm_mce_encode(vm->mcg_cap, gpa, ar, &mce)) {
		snprintf(msg, sizeof(msg), "vCPU %u: guest RAM at 0x%llx was lost and the guest has "
			 "no machine check banks", v->index, (unsigned long long)gpa);
		vmm_vm_request_stop(vm, VMM_EXIT_CRASH, msg);
		return false;
	}
	memset(&kmce, 0, sizeof(kmce));
	kmce.status = mce.status;
	kmce.addr = mce.addr;
	kmce.misc = mce.misc;
	kmce.mcg_status = mce.mcg_status;
	kmce.bank = mce.bank;
	if (ioctl(v->fd, KVM_X86_SET_MCE, &kmce) < 0) {
		snprintf(msg, sizeof(msg), "vCPU %u: injecting a machine check for 0x%llx failed: %s",
			 v->index, (unsigned long long)gpa, strerror(errno));
		vmm_vm_request_stop(vm, VMM_EXIT_CRASH, msg);
		return false;
	}
	__atomic_add_fetch(&vm->nr_guest_mce, 1, __ATOMIC_RELAXED);
	vmm_logf_rl(&vm->cfg.log, &v->rl, VMM_LOG_WARN,
		    "vCPU %u: guest RAM at 0x%llx was lost on the host: machine check %s injected",
		    v->index, (unsigned long long)gpa, ar ? "(action required)" : "(action optional)");
	return true;
}

bool vmm_vm_on_sigbus(struct vmm_vm *vm, const siginfo_t *si)
{
	int tid = (int)gettid();
	uintptr_t hva = (uintptr_t)si->si_addr, ram = (uintptr_t)vm->ram;
	uint64_t off, gpa;
	struct vcpu *v = NULL;

	if (si->si_code != BUS_MCEERR_AR && si->si_code != BUS_MCEERR_AO)
		return false;
	if (!vm->ram || hva < ram || hva - ram >= vm->mem.mem_bytes)
		return false;
	for (unsigned i = 0; i < vm->nr_vcpus; i++) {
		if (__atomic_load_n(&vm->vcpus[i].tid, __ATOMIC_SEQ_CST) == tid) {
			v = &vm->vcpus[i];
			break;
		}
	}
	/* Only from inside KVM_RUN: the guest touched the page.  The same
	 * page touched by ebb itself would fault again at once. */
	if (!v || !__atomic_load_n(&v->in_run, __ATOMIC_SEQ_CST) || !vm->mcg_cap)
		return false;
	off = hva - ram;
	gpa = off < vm->mem.low_bytes ? off : VMM_4G + (off - vm->mem.low_bytes);
	__atomic_store_n(&v->mce_gpa, gpa, __ATOMIC_SEQ_CST);
	__atomic_store_n(&v->mce_ar, si->si_code == BUS_MCEERR_AR, __ATOMIC_SEQ_CST);
	__atomic_store_n(&v->mce_pending, 1, __ATOMIC_SEQ_CST);
	return true;
}

static void *vcpu_thread(void *arg)
{
	struct vcpu *v = arg;
	struct vmm_vm *vm = v->vm;
	char name[16];

	snprintf(name, sizeof(name), "vcpu%u", v->index);
	pthread_setname_np(pthread_self(), name);
	__atomic_store_n(&v->tid, (int)gettid(), __ATOMIC_SEQ_CST);
	for (;;) {
		int ret;

		if (is_stopping(vm))
			break;
		__atomic_store_n(&v->in_run, 1, __ATOMIC_SEQ_CST);
		ret = ioctl(v->fd, KVM_RUN, 0);
		__atomic_store_n(&v->in_run, 0, __ATOMIC_SEQ_CST);
		if (__atomic_load_n(&v->mce_pending, __ATOMIC_SEQ_CST) && !inject_mce(v))
			break;
		if (ret < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;  /* a kick, or a SIGBUS turned into a machine check */
			{
				char msg[96];

				snprintf(msg, sizeof(msg), "vCPU %u: KVM_RUN failed: %s", v->index,
					 strerror(errno));
				vmm_vm_request_stop(vm, VMM_EXIT_ERROR, msg);
			}
			break;
		}
		if (!handle_exit(v))
			break;
	}
	return NULL;
}

/* ---- creation ------------------------------------------------------------------ */

static int read_file(const char *path, uint8_t **out, size_t *len_out, size_t max,
		     char *err, size_t err_len, const char *what)
{
	struct stat st;
	uint8_t *buf;
	size_t off = 0;
	int fd, ret;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		snprintf(err, err_len, "cannot open %s %s: %s", what, path, strerror(errno));
		return ret;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, err_len, "%s %s is not a regular file", what, path);
		close(fd);
		return -EINVAL;
	}
	if ((uint64_t)st.st_size > max) {
		snprintf(err, err_len, "%s %s is too large (%lld bytes)", what, path,
			 (long long)st.st_size);
		close(fd);
		return -EFBIG;
	}
	buf = malloc(st.st_size ? (size_t)st.st_size : 1);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	while (off < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + off, (size_t)st.st_size - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			snprintf(err, err_len, "cannot read %s %s", what, path);
			free(buf);
			close(fd);
			return -EIO;
		}
		off += (size_t)n;
	}
	close(fd);
	*out = buf;
	*len_out = off;
	return 0;
}

static int check_caps(struct vmm_vm *vm, char *err, size_t err_len)
{
	static const struct { int cap; const char *name; } caps[] = {
		{ KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP" },
		{ KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY" },
		{ KVM_CAP_SET_TSS_ADDR, "KVM_CAP_SET_TSS_ADDR" },
		{ KVM_CAP_SET_IDENTITY_MAP_ADDR, "KVM_CAP_SET_IDENTITY_MAP_ADDR" },
		{ KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID" },
		{ KVM_CAP_PIT2, "KVM_CAP_PIT2" },
		{ KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT" },
		{ KVM_CAP_SIGNAL_MSI, "KVM_CAP_SIGNAL_MSI" },
		{ KVM_CAP_IOEVENTFD, "KVM_CAP_IOEVENTFD" },
	};
	unsigned i;

	for (i = 0; i < sizeof(caps) / sizeof(caps[0]); i++) {
		if (ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, caps[i].cap) <= 0) {
			snprintf(err, err_len,
				 "this KVM lacks %s, which ebb needs; use a newer host kernel", caps[i].name);
			return -ENOTSUP;
		}
	}
	return 0;
}

static int create_vcpus(struct vmm_vm *vm, const struct vmm_boot_plan *plan, char *err,
			size_t err_len)
{
	struct kvm_cpuid2 *cpuid = NULL;
	unsigned nent = 128, i;
	int ret;

	for (;;) {
		cpuid = calloc(1, sizeof(*cpuid) + nent * sizeof(struct kvm_cpuid_entry2));
		if (!cpuid)
			return -ENOMEM;
		cpuid->nent = nent;
		if (ioctl(vm->kvm_fd, KVM_GET_SUPPORTED_CPUID, cpuid) == 0)
			break;
		ret = -errno;
		free(cpuid);
		if (ret != -E2BIG || nent >= CPUID_MAX_ENTRIES) {
			snprintf(err, err_len, "KVM_GET_SUPPORTED_CPUID failed: %s", strerror(-ret));
			return ret;
		}
		nent *= 2;
	}
	vm->vcpus = calloc(vm->nr_vcpus, sizeof(*vm->vcpus));
	if (!vm->vcpus) {
		free(cpuid);
		return -ENOMEM;
	}
	ret = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MCE);
	if (ret > 0) {
		uint64_t supported = 0;

		if (ioctl(vm->kvm_fd, KVM_X86_GET_MCE_CAP_SUPPORTED, &supported) == 0)
			vm->mcg_cap = vmm_mce_mcg_cap(supported, (unsigned)ret);
	}
	for (i = 0; i < vm->nr_vcpus; i++)
		vm->vcpus[i].fd = -1;
	for (i = 0; i < vm->nr_vcpus; i++) {
		struct vcpu *v = &vm->vcpus[i];
		const char *step;

		v->vm = vm;
		v->index = i;
		v->mce_held_gpa = UINT64_MAX;
		v->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, i);
		if (v->fd < 0) {
			ret = -errno;
			step = "KVM_CREATE_VCPU";
			goto fail;
		}
		v->run = mmap(NULL, vm->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
		if (v->run == MAP_FAILED) {
			v->run = NULL;
			ret = -errno;
			step = "mmap(kvm_run)";
			goto fail;
		}
		step = "CPUID";
		ret = setup_cpuid(vm, v, cpuid,
				  ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_TSC_DEADLINE_TIMER) > 0);
		if (!ret && vm->mcg_cap) {
			step = "KVM_X86_SETUP_MCE";
			if (ioctl(v->fd, KVM_X86_SETUP_MCE, &vm->mcg_cap) < 0)
				ret = -errno;
		}
		if (!ret) {
			step = "MSRs";
			ret = setup_msrs(v);
		}
		if (!ret) {
			step = "LAPIC";
			ret = setup_lapic(v);
		}
		if (!ret && i == 0) {
			step = "boot registers";
			ret = setup_bsp(v, plan);
		}
		if (ret)
			goto fail;
		continue;
fail:
		snprintf(err, err_len, "vCPU %u: setting up %s failed: %s", i, step, strerror(-ret));
		free(cpuid);
		return ret;
	}
	free(cpuid);
	return 0;
}

static char *build_cmdline(const char *user)
{
	char *s = NULL;

	if (asprintf(&s, "%s%s%s", VMM_DEFAULT_CMDLINE, user && *user ? " " : "",
		     user ? user : "") < 0)
		return NULL;
	return s;
}

/* Guest RAM: one anonymous private mapping, 2 MiB aligned so that
 * transparent huge pages can back it (when cfg->thp: MADV_HUGEPAGE, which is
 * what QEMU does; each NPT fault then maps 2 MiB instead of 4 KiB). */
static int setup_memory(struct vmm_vm *vm, char *err, size_t err_len)
{
	struct kvm_userspace_memory_region slot = { 0 };
	const size_t align = 2u << 20;
	size_t len = vm->mem.mem_bytes + align, head;
	uint8_t *p;

	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
		 -1, 0);
	if (p == MAP_FAILED) {
		snprintf(err, err_len, "cannot map %llu MiB of guest memory: %s",
			 (unsigned long long)(vm->mem.mem_bytes >> 20), strerror(errno));
		return -ENOMEM;
	}
	head = (align - ((uintptr_t)p & (align - 1))) & (align - 1);
	if (head)
		munmap(p, head);
	if (len - head > vm->mem.mem_bytes)
		munmap(p + head + vm->mem.mem_bytes, len - head - vm->mem.mem_bytes);
	vm->ram = p + head;
	/* The reclaim engine evicts 4 KiB pages: no THP under it. */
	if (vm->cfg.thp && vm->cfg.memory.off &&
	    madvise(vm->ram, vm->mem.mem_bytes, MADV_HUGEPAGE) < 0)
		vmm_logf(&vm->cfg.log, VMM_LOG_DEBUG, "MADV_HUGEPAGE on guest RAM: %s", strerror(errno));
	slot.flags = vmm_memory_slot_flags(&vm->cfg.memory);
	slot.slot = 0;
	slot.guest_phys_addr = 0;
	slot.memory_size = vm->mem.low_bytes;
	slot.userspace_addr = (uintptr_t)vm->ram;
	if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &slot) < 0)
		goto fail;
	if (vm->mem.high_bytes) {
		slot.slot = 1;
		slot.guest_phys_addr = VMM_4G;
		slot.memory_size = vm->mem.high_bytes;
		slot.userspace_addr = (uintptr_t)(vm->ram + vm->mem.low_bytes);
		if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &slot) < 0)
			goto fail;
	}
	{
		struct vmm_memory_cfg mc = {
			.name = vm->name, .ram = vm->ram, .mem_bytes = vm->mem.mem_bytes,
			.low_bytes = vm->mem.low_bytes, .high_bytes = vm->mem.high_bytes,
			.vm_fd = vm->vm_fd, .nr_vcpus = vm->cfg.nr_cpus,
			.default_swap_dir = vm->cfg.rundir, .opts = vm->cfg.memory,
			.log = vm->cfg.log,
		};

		return vmm_memory_create(&mc, &vm->memory, err, err_len);
	}
fail:
	snprintf(err, err_len, "KVM_SET_USER_MEMORY_REGION failed: %s", strerror(errno));
	return -errno;
}

/* Reads and checks kernel and initrd and decides where they go: before any
 * KVM work, so that mistakes in the user's files are reported first. */
static int prepare_guest(struct vmm_vm *vm, char *err, size_t err_len)
{
	uint64_t initrd_bytes = 0;
	int ret;

	ret = read_file(vm->cfg.kernel_path, &vm->kernel, &vm->kernel_len, VMM_BZIMAGE_MAX_BYTES,
			err, err_len, "kernel");
	if (ret)
		return ret;
	{
		char why[200];

		ret = vmm_bzimage_parse(vm->kernel, vm->kernel_len, &vm->img, why, sizeof(why));
		if (ret) {
			snprintf(err, err_len, "%s is not a bootable x86-64 bzImage: %s",
				 vm->cfg.kernel_path, why);
			return ret;
		}
	}
	if (vm->cfg.initrd_path) {
		struct stat st;

		vm->initrd_fd = open(vm->cfg.initrd_path, O_RDONLY | O_CLOEXEC);
		if (vm->initrd_fd < 0 || fstat(vm->initrd_fd, &st) < 0 || !S_ISREG(st.st_mode)) {
			ret = vm->initrd_fd < 0 ? -errno : -EINVAL;
			snprintf(err, err_len, "cannot use initrd %s: %s", vm->cfg.initrd_path,
				 vm->initrd_fd < 0 ? strerror(errno) : "not a regular file");
			return ret;
		}
		initrd_bytes = (uint64_t)st.st_size;
	}
	return vmm_boot_plan(&vm->img, &vm->mem, initrd_bytes, strlen(vm->cmdline), &vm->plan,
			     err, err_len);
}

static int load_guest(struct vmm_vm *vm, char *err, size_t err_len)
{
	struct vmm_mptable_pci_irq irqs[VMM_MPTABLE_MAX_PCI_IRQS];
	struct vmm_mptable_cfg mp = { .nr_cpus = vm->nr_vcpus };
	const struct vmm_boot_plan *plan = &vm->plan;
	struct vmm_acpi_cfg acpi;
	long mp_len, acpi_len;

	vmm_boot_load(vm->ram, &vm->mem, &vm->img, plan, vm->cmdline, NULL);
	if (plan->initrd_bytes) {
		uint64_t off = 0;

		while (off < plan->initrd_bytes) {
			ssize_t n = pread(vm->initrd_fd, vm->ram + plan->initrd_gpa + off,
					  plan->initrd_bytes - off, (off_t)off);

			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				snprintf(err, err_len, "cannot read initrd %s", vm->cfg.initrd_path);
				return -EIO;
			}
			off += (uint64_t)n;
		}
	}
	free(vm->kernel);
	vm->kernel = NULL;
	mp.pci_irqs = irqs;
	mp.nr_pci_irqs = vmm_pci_irq_routes(vm->pci, irqs, VMM_MPTABLE_MAX_PCI_IRQS);
	mp_len = vmm_mptable_build(vm->ram + VMM_BIOS_GPA, VMM_ACPI_GPA - VMM_BIOS_GPA,
				   (uint32_t)VMM_BIOS_GPA, &mp);
	if (mp_len < 0) {
		snprintf(err, err_len, "cannot build the MP table: %s", strerror((int)-mp_len));
		return (int)mp_len;
	}
	acpi.nr_cpus = vm->nr_vcpus;
	acpi.ioapic_id = (uint8_t)vm->nr_vcpus;  /* as in the MP table */
	acpi.ioapic_gpa = VMM_IOAPIC_GPA;
	acpi.lapic_gpa = VMM_LAPIC_GPA;
	acpi_len = vmm_acpi_build(vm->ram + VMM_ACPI_GPA, VMM_BIOS_END_GPA - VMM_ACPI_GPA,
				  (uint32_t)VMM_ACPI_GPA, &acpi, NULL);
	if (acpi_len < 0) {
		snprintf(err, err_len, "cannot build the ACPI tables: %s", strerror((int)-acpi_len));
		return (int)acpi_len;
	}
	return 0;
}

int vmm_vm_create(const struct vmm_vm_cfg *cfg, struct vmm_vm **out, char *err, size_t err_len)
{
	const char *kvm_path = cfg->kvm_path ? cfg->kvm_path : "/dev/kvm";
	struct vmm_vm *vm;
	int ret, max_cpus;

	*out = NULL;
	err[0] = '\0';
	if (!cfg->name || !vmm_name_valid(cfg->name)) {
		snprintf(err, err_len, "invalid VM name: use 1-%d characters from A-Z a-z 0-9 _ . -",
			 VMM_NAME_MAX_BYTES);
		return -EINVAL;
	}
	if (!cfg->kernel_path) {
		snprintf(err, err_len, "no kernel given: use --kernel PATH");
		return -EINVAL;
	}
	if (cfg->nr_cpus == 0) {
		snprintf(err, err_len, "--cpus must be at least 1");
		return -EINVAL;
	}
	vm = calloc(1, sizeof(*vm));
	if (!vm)
		return -ENOMEM;
	vm->cfg = *cfg;
	vm->kvm_fd = vm->vm_fd = vm->lock_fd = vm->signal_fd = vm->panic_timer_fd = -1;
	vm->initrd_fd = -1;
	vm->ready_ns = -1;
	vm->start_ns = vmm_now_ns();
	pthread_mutex_init(&vm->lock, NULL);
	vm->name = strdup(cfg->name);
	vm->cmdline = build_cmdline(cfg->cmdline);
	vm->ready_marker = cfg->ready_marker ? strdup(cfg->ready_marker) : NULL;
	vm->cfg.name = vm->name;
	if (!vm->name || !vm->cmdline || (cfg->ready_marker && !vm->ready_marker)) {
		ret = -ENOMEM;
		goto fail;
	}
	ret = vmm_mem_layout_init(cfg->mem_bytes, &vm->mem);
	if (ret) {
		char a[32], b[32];

		snprintf(err, err_len, "--mem must be a multiple of 4 KiB between %s and %s",
			 vmm_format_size(VMM_MIN_MEM_BYTES, a, sizeof(a)),
			 vmm_format_size(VMM_MAX_MEM_BYTES, b, sizeof(b)));
		goto fail;
	}

	ret = prepare_guest(vm, err, err_len);
	if (ret)
		goto fail;

	/* Then the name: a clash is the user's next likely mistake. */
	if (cfg->rundir) {
		vm->lock_fd = vmm_name_lock(cfg->rundir, vm->name);
		if (vm->lock_fd < 0) {
			ret = vm->lock_fd;
			if (ret == -EBUSY)
				snprintf(err, err_len,
					 "a VM named \"%s\" is already running; pick another --name or "
					 "stop it with: ebb stop %s", vm->name, vm->name);
			else
				snprintf(err, err_len, "cannot lock the name %s in %s: %s", vm->name,
					 cfg->rundir, strerror(-ret));
			goto fail;
		}
	}

	vm->kvm_fd = open(kvm_path, O_RDWR | O_CLOEXEC);
	if (vm->kvm_fd < 0) {
		ret = -errno;
		if (errno == ENOENT)
			snprintf(err, err_len,
				 "%s does not exist: this machine has no KVM. Enable virtualization "
				 "(VT-x/AMD-V) in the firmware and load kvm_intel or kvm_amd, or run "
				 "inside the host-box (tests/box/run)", kvm_path);
		else if (errno == EACCES)
			snprintf(err, err_len,
				 "no permission to open %s: add your user to the 'kvm' group "
				 "(then log in again) or run as root", kvm_path);
		else
			snprintf(err, err_len, "cannot open %s: %s", kvm_path, strerror(errno));
		goto fail;
	}
	if (ioctl(vm->kvm_fd, KVM_GET_API_VERSION, 0) != KVM_API_VERSION) {
		snprintf(err, err_len, "%s speaks an unexpected KVM API version", kvm_path);
		ret = -ENOTSUP;
		goto fail;
	}
	ret = check_caps(vm, err, err_len);
	if (ret)
		goto fail;
	max_cpus = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);
	if (max_cpus <= 0)
		max_cpus = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_VCPUS);
	if (max_cpus <= 0)
		max_cpus = 4;
	if (max_cpus > VMM_MAX_CPUS)
		max_cpus = VMM_MAX_CPUS;
	if (cfg->nr_cpus > (unsigned)max_cpus) {
		snprintf(err, err_len, "too many vCPUs (%u): this host and ebb support at most %d",
			 cfg->nr_cpus, max_cpus);
		ret = -EINVAL;
		goto fail;
	}
	vm->nr_vcpus = cfg->nr_cpus;
	ret = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (ret < (int)sizeof(struct kvm_run)) {
		snprintf(err, err_len, "KVM_GET_VCPU_MMAP_SIZE failed");
		ret = -ENOTSUP;
		goto fail;
	}
	vm->run_size = (size_t)ret;
	vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	if (vm->vm_fd < 0) {
		ret = -errno;
		snprintf(err, err_len, "KVM_CREATE_VM failed: %s", strerror(errno));
		goto fail;
	}
	{
		uint64_t ident = KVM_IDENTITY_MAP_GPA;
		struct kvm_pit_config pit = { .flags = KVM_PIT_SPEAKER_DUMMY };

		if (ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, (unsigned long)KVM_TSS_GPA) < 0 ||
		    ioctl(vm->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &ident) < 0 ||
		    ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0 ||
		    ioctl(vm->vm_fd, KVM_CREATE_PIT2, &pit) < 0) {
			ret = -errno;
			snprintf(err, err_len, "setting up the VM (TSS, irqchip, PIT) failed: %s",
				 strerror(errno));
			goto fail;
		}
	}
	ret = setup_memory(vm, err, err_len);
	if (ret)
		goto fail;

	/* Devices. */
	if ((ret = vmm_iobus_create(&vm->pio)) || (ret = vmm_iobus_create(&vm->mmio)))
		goto fail_nomem;
	{
		struct vmm_pci_bus_cfg pc = { .mmio = vm->mmio, .pio = vm->pio, .log = cfg->log };
		struct vmm_serial_cfg sc = {
			.tx = console_tx, .set_irq = serial_irq, .opaque = vm, .log = cfg->log,
		};

		if ((ret = vmm_pci_bus_create(&pc, &vm->pci)) ||
		    (ret = vmm_serial_create(&sc, &vm->serial)) ||
		    (ret = vmm_i8042_create(i8042_reset, vm, &vm->kbd)) ||
		    (ret = vmm_cmos_create(NULL, NULL, &vm->cmos)))
			goto fail_nomem;
	}
	if ((ret = vmm_iobus_register(vm->pio, VMM_COM1_PORT, VMM_SERIAL_NR_PORTS, serial_io, vm)) ||
	    (ret = vmm_iobus_register(vm->pio, VMM_I8042_DATA_PORT, VMM_I8042_NR_PORTS, i8042_io,
				      vm)) ||
	    (ret = vmm_iobus_register(vm->pio, VMM_CMOS_PORT, VMM_CMOS_NR_PORTS, cmos_io, vm)) ||
	    (ret = vmm_iobus_register(vm->pio, VMM_ACPI_PM1_EVT_PORT, VMM_ACPI_PM1_EVT_LEN,
				      pm1_evt_io, vm)) ||
	    (ret = vmm_iobus_register(vm->pio, VMM_ACPI_PM1_CNT_PORT, VMM_ACPI_PM1_CNT_LEN,
				      pm1_cnt_io, vm)) ||
	    (ret = vmm_iobus_register(vm->pio, VMM_PVPANIC_PORT, 1, pvpanic_io, vm)) ||
	    (ret = vmm_iobus_register(vm->pio, 0x80, 1, ignore_io, vm)) ||  /* POST / io delay */
	    (ret = vmm_iobus_register(vm->pio, 0xed, 1, ignore_io, vm)))
		goto fail_nomem;
	{
		struct vmm_virtio_devs_cfg vc = {
			.vm = vm, .opts = cfg->virtio, .mem_bytes = vm->mem.mem_bytes,
			.ram_end_gpa = vm->mem.high_bytes ? VMM_4G + vm->mem.high_bytes
							  : vm->mem.low_bytes,
			.console_out_fd = cfg->console_out_fd, .log = cfg->log,
		};

		if ((ret = vmm_virtio_devs_create(&vc, &vm->virtio)))
			goto fail_nomem;
	}

	ret = load_guest(vm, err, err_len);
	if (ret)
		goto fail;
	ret = create_vcpus(vm, &vm->plan, err, err_len);
	if (ret)
		goto fail;

	/* Event thread plumbing. */
	ret = vmm_evloop_create(&vm->loop);
	if (ret)
		goto fail_nomem;
	vm->panic_timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (vm->panic_timer_fd < 0 ||
	    vmm_evloop_add(vm->loop, vm->panic_timer_fd, EPOLLIN, panic_timer, vm, NULL)) {
		ret = -errno;
		snprintf(err, err_len, "timerfd: %s", strerror(errno));
		goto fail;
	}
	if (cfg->console_in_fd >= 0 &&
	    vmm_evloop_add(vm->loop, cfg->console_in_fd, EPOLLIN, console_input, vm,
			   &vm->console_watch) < 0)
		vm->console_watch = NULL;  /* e.g. a regular file: no console input */
	if (cfg->handle_signals) {
		sigset_t set;

		sigemptyset(&set);
		sigaddset(&set, SIGINT);
		sigaddset(&set, SIGTERM);
		pthread_sigmask(SIG_BLOCK, &set, NULL);
		vm->signal_fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
		if (vm->signal_fd < 0 ||
		    vmm_evloop_add(vm->loop, vm->signal_fd, EPOLLIN, signal_event, vm, NULL)) {
			ret = -errno;
			snprintf(err, err_len, "signalfd: %s", strerror(errno));
			goto fail;
		}
	}
	{
		struct vmm_poolctl_cfg pcc = {
			.memory = vm->memory, .loop = vm->loop, .mem_bytes = cfg->mem_bytes,
			.notify = ctl_notify, .notify_opaque = vm, .log = cfg->log,
		};

		ret = vmm_poolctl_create(&pcc, &vm->poolctl);
		if (ret) {
			snprintf(err, err_len, "cannot set up the pool controls: %s", strerror(-ret));
			goto fail;
		}
	}
	if (cfg->rundir) {
		char path[512];
		struct vmm_ctl_server_cfg cc = {
			.path = path, .loop = vm->loop, .log = cfg->log,
		};

		ret = vmm_sock_path(cfg->rundir, vm->name, path, sizeof(path));
		if (!ret)
			ret = vmm_ctl_server_create(&cc, &vm->ctl);
		if (!ret)
			ret = ctl_register(vm);
		if (ret) {
			snprintf(err, err_len, "cannot create the control socket in %s: %s",
				 cfg->rundir, strerror(-ret));
			goto fail;
		}
	}
	{
		char apath[512];
		int n = cfg->rundir ? snprintf(apath, sizeof(apath), "%s/%s.agent", cfg->rundir,
					       vm->name) : -1;

		ret = vmm_virtio_devs_start(vm->virtio, vm->loop,
					    n > 0 && (size_t)n < sizeof(apath) ? apath : NULL);
		if (ret) {
			snprintf(err, err_len, "setting up the virtio devices failed: %s",
				 strerror(-ret));
			goto fail;
		}
	}
	*out = vm;
	return 0;
fail_nomem:
	if (!err[0])
		snprintf(err, err_len, "setting up devices failed: %s", strerror(-ret));
fail:
	if (!err[0])
		snprintf(err, err_len, "%s", strerror(-ret));
	vmm_vm_destroy(vm);
	return ret;
}

int vmm_vm_run(struct vmm_vm *vm, struct vmm_vm_exit *exit)
{
	struct sigaction sa;
	sigset_t set, old;
	unsigned i;
	int ret = 0;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = kick_handler;  /* no SA_RESTART: KVM_RUN must return EINTR */
	sigemptyset(&sa.sa_mask);
	sigaction(VMM_KICK_SIGNAL, &sa, NULL);

	/* vCPU threads take no signals but the kick. */
	sigfillset(&set);
	sigdelset(&set, VMM_KICK_SIGNAL);
	sigdelset(&set, SIGSEGV);
	sigdelset(&set, SIGBUS);
	pthread_sigmask(SIG_SETMASK, &set, &old);
	vm->start_ns = vmm_now_ns();
	for (i = 0; i < vm->nr_vcpus; i++) {
		ret = -pthread_create(&vm->vcpus[i].thread, NULL, vcpu_thread, &vm->vcpus[i]);
		if (ret) {
			vmm_vm_request_stop(vm, VMM_EXIT_ERROR, "cannot create vCPU threads");
			break;
		}
		vm->vcpus[i].started = true;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (!ret && vm->cfg.on_running)
		vm->cfg.on_running(vm->cfg.opaque);
	if (!ret) {
		ret = vmm_evloop_run(vm->loop);
		if (ret)
			vmm_vm_request_stop(vm, VMM_EXIT_ERROR, "event loop failed");
	}
	/* Make sure everyone stops, then wait for them. */
	vmm_vm_request_stop(vm, VMM_EXIT_ERROR, "event loop ended");
	for (i = 0; i < vm->nr_vcpus; i++)
		if (vm->vcpus[i].started)
			pthread_join(vm->vcpus[i].thread, NULL);
	for (i = 0; i < vm->nr_vcpus; i++)
		vm->vcpus[i].started = false;
	pthread_mutex_lock(&vm->lock);
	*exit = vm->exit;
	pthread_mutex_unlock(&vm->lock);
	return ret;
}

void vmm_vm_destroy(struct vmm_vm *vm)
{
	unsigned i;

	if (!vm)
		return;
	vmm_ctl_server_destroy(vm->ctl);
	vmm_poolctl_destroy(vm->poolctl);
	vmm_virtio_devs_destroy(vm->virtio);
	if (vm->signal_fd >= 0)
		close(vm->signal_fd);
	if (vm->panic_timer_fd >= 0)
		close(vm->panic_timer_fd);
	vmm_evloop_destroy(vm->loop);
	if (vm->vcpus) {
		for (i = 0; i < vm->nr_vcpus; i++) {
			if (vm->vcpus[i].run)
				munmap(vm->vcpus[i].run, vm->run_size);
			if (vm->vcpus[i].fd >= 0)
				close(vm->vcpus[i].fd);
		}
		free(vm->vcpus);
	}
	vmm_pci_bus_destroy(vm->pci);
	vmm_serial_destroy(vm->serial);
	vmm_iobus_destroy(vm->pio);
	vmm_iobus_destroy(vm->mmio);
	vmm_memory_destroy(vm->memory);  /* stops its threads before the RAM goes */
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
	if (vm->ram)
		munmap(vm->ram, vm->mem.mem_bytes);
	if (vm->kvm_fd >= 0)
		close(vm->kvm_fd);
	/* The lock file stays: unlinking it would let two VMMs hold locks on
	 * different inodes of the same name. */
	if (vm->lock_fd >= 0)
		close(vm->lock_fd);
	pthread_mutex_destroy(&vm->lock);
	vmm_i8042_destroy(vm->kbd);
	vmm_cmos_destroy(vm->cmos);
	if (vm->initrd_fd >= 0)
		close(vm->initrd_fd);
	free(vm->kernel);
	free(vm->name);
	free(vm->cmdline);
	free(vm->ready_marker);
	free(vm);
}
