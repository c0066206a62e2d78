/*
 * vmm/vm.c — one KVM VM booting Linux: KVM setup, guest RAM, wiring of the
 * devices (COM1, i8042, CMOS, ACPI, PCI), the event thread and stopping.
 * The vCPUs are in vcpu.c, the VM's control commands in vm_ctl.c, the state
 * they share in vm_priv.h.  See vm.h for threads, locks and stopping.
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
#include "vmm/vm_priv.h"

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

bool vmm_vm_is_stopping(struct vmm_vm *vm)
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
void vmm_vm_guest_reset(void *opaque)
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
 * once when panic=-1 makes the guest reset, see vmm_vm_guest_reset). */
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

bool vmm_vm_ram_ok(struct vmm_vm *vm, vmm_gpa_t gpa, uint64_t len)
{
	return vmm_guest_mem_ram_ok(&vm->mem, gpa, len);
}

int vmm_vm_discard_range(struct vmm_vm *vm, vmm_gpa_t gpa, uint64_t len)
{
	return vmm_guest_mem_discard_range(&vm->mem, gpa, len);
}

struct vmm_evloop *vmm_vm_evloop(struct vmm_vm *vm)
{
	return vm->loop;
}

void *vmm_vm_translate(struct vmm_vm *vm, vmm_gpa_t gpa, uint64_t len)
{
	return vmm_guest_mem_hva(&vm->mem, gpa, len);
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
	out->mem_bytes = vm->mem.layout.mem_bytes;
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

static char *build_cmdline(const char *user)
{
	char *s = NULL;

	if (asprintf(&s, "%s%s%s", VMM_DEFAULT_CMDLINE, user && *user ? " " : "",
		     user ? user : "") < 0)
		return NULL;
	return s;
}

/* Released guest RAM goes to the reclaim engine when it runs. */
static int discard_to_engine(void *ctx, uint64_t ram_off, uint64_t len)
{
	return vmm_memory_discard(ctx, ram_off, len);
}

/* Guest RAM (vmm/guest_mem.h), 2 MiB aligned so that transparent huge pages
 * can back it (when cfg->thp: MADV_HUGEPAGE, which is what QEMU does; each
 * NPT fault then maps 2 MiB instead of 4 KiB); its slots; the reclaim
 * engine over it, which then takes the ranges devices give back. */
static int setup_memory(struct vmm_vm *vm, char *err, size_t err_len)
{
	int ret;

	ret = vmm_guest_mem_map(&vm->mem, err, err_len);
	if (ret)
		return ret;
	/* The reclaim engine evicts 4 KiB pages: no THP under it. */
	if (vm->cfg.thp && vm->cfg.memory.off &&
	    madvise(vm->mem.ram, vm->mem.layout.mem_bytes, MADV_HUGEPAGE) < 0)
		vmm_logf(&vm->cfg.log, EBB_LOG_DEBUG, "MADV_HUGEPAGE on guest RAM: %s", strerror(errno));
	ret = vmm_guest_mem_set_slots(&vm->mem, vm->vm_fd, vmm_memory_slot_flags(&vm->cfg.memory));
	if (ret) {
		snprintf(err, err_len, "KVM_SET_USER_MEMORY_REGION failed: %s", strerror(-ret));
		return ret;
	}
	{
		struct vmm_memory_cfg mc = {
			.name = vm->name, .ram = vm->mem.ram, .mem_bytes = vm->mem.layout.mem_bytes,
			.slots = vm->mem.slots, .nr_slots = vm->mem.nr_slots,
			.vm_fd = vm->vm_fd, .nr_vcpus = vm->cfg.nr_cpus,
			.default_swap_dir = vm->cfg.rundir, .opts = vm->cfg.memory,
			.log = vm->cfg.log,
		};

		ret = vmm_memory_create(&mc, &vm->memory, err, err_len);
	}
	if (!ret && vm->memory)
		vmm_guest_mem_set_sink(&vm->mem, discard_to_engine, vm->memory);
	return ret;
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
	return vmm_boot_plan(&vm->img, &vm->mem.layout, initrd_bytes, strlen(vm->cmdline), &vm->plan,
			     err, err_len);
}

static int load_guest(struct vmm_vm *vm, char *err, size_t err_len)
{
	struct vmm_mptable_pci_irq irqs[VMM_MPTABLE_MAX_PCI_IRQS];
	struct vmm_mptable_cfg mp = { .nr_cpus = vm->nr_vcpus };
	const struct vmm_boot_plan *plan = &vm->plan;
	struct vmm_acpi_cfg acpi;
	long mp_len, acpi_len;

	vmm_boot_load(vm->mem.ram, &vm->mem.layout, &vm->img, plan, vm->cmdline, NULL);
	if (plan->initrd_bytes) {
		uint64_t off = 0;

		while (off < plan->initrd_bytes) {
			ssize_t n = pread(vm->initrd_fd, vm->mem.ram + plan->initrd_gpa + off,
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
	mp_len = vmm_mptable_build(vm->mem.ram + VMM_BIOS_GPA, VMM_ACPI_GPA - VMM_BIOS_GPA,
				   (uint32_t)VMM_BIOS_GPA, &mp);
	if (mp_len < 0) {
		snprintf(err, err_len, "cannot build the MP table: %s", strerror((int)-mp_len));
		return (int)mp_len;
	}
	acpi.nr_cpus = vm->nr_vcpus;
	acpi.ioapic_id = (uint8_t)vm->nr_vcpus;  /* as in the MP table */
	acpi.ioapic_gpa = VMM_IOAPIC_GPA;
	acpi.lapic_gpa = VMM_LAPIC_GPA;
	acpi_len = vmm_acpi_build(vm->mem.ram + VMM_ACPI_GPA, VMM_BIOS_END_GPA - VMM_ACPI_GPA,
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
	ret = vmm_guest_mem_init(&vm->mem, cfg->mem_bytes);
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
		    (ret = vmm_i8042_create(vmm_vm_guest_reset, vm, &vm->kbd)) ||
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
			.vm = vm, .opts = cfg->virtio, .mem_bytes = vm->mem.layout.mem_bytes,
			.ram_end_gpa = vmm_guest_mem_end_gpa(&vm->mem),
			.console_out_fd = cfg->console_out_fd, .log = cfg->log,
		};

		if ((ret = vmm_virtio_devs_create(&vc, &vm->virtio)))
			goto fail_nomem;
	}

	ret = load_guest(vm, err, err_len);
	if (ret)
		goto fail;
	ret = vmm_vcpus_create(vm, &vm->plan, err, err_len);
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
			.notify = vmm_vm_ctl_notify, .notify_opaque = vm, .log = cfg->log,
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
			ret = vmm_vm_ctl_register(vm);
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
	sa.sa_handler = vmm_vcpu_kick_handler;  /* no SA_RESTART: KVM_RUN must return EINTR */
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
		ret = -pthread_create(&vm->vcpus[i].thread, NULL, vmm_vcpu_thread, &vm->vcpus[i]);
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
	vmm_guest_mem_unmap(&vm->mem);
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
