/*
 * vmm/vcpu.c — the VM's vCPUs: creation with the host-supported CPUID
 * (patched with APIC ids, the hypervisor bit and the machine-check bits),
 * boot MSRs, LINT0=ExtINT/LINT1=NMI, the BSP in 64-bit mode at the kernel's
 * 64-bit entry (APs stay in the wait-for-SIPI state the in-kernel LAPIC gives
 * them); the vCPU threads, their exit dispatch, and machine checks for guest
 * memory the host lost (mce.h).  State shared with vm.c: vm_priv.h.
 */
#include <errno.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vmm/iobus.h"
#include "vmm/mce.h"
#include "vmm/vm_priv.h"

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

void vmm_vcpu_kick_handler(int sig)
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
			vmm_vm_guest_reset(vm);  /* same report as a panic reset */
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
			vmm_vm_guest_reset(vm);
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
		vmm_logf_rl(&vm->cfg.log, &v->rl, EBB_LOG_WARN, "vCPU %u: unhandled exit reason %u",
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
		vmm_logf_rl(&vm->cfg.log, &v->rl, EBB_LOG_DEBUG,
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
	vmm_logf_rl(&vm->cfg.log, &v->rl, EBB_LOG_WARN,
		    "vCPU %u: guest RAM at 0x%llx was lost on the host: machine check %s injected",
		    v->index, (unsigned long long)gpa, ar ? "(action required)" : "(action optional)");
	return true;
}

bool vmm_vm_on_sigbus(struct vmm_vm *vm, const siginfo_t *si)
{
	int tid = (int)gettid();
	uintptr_t hva = (uintptr_t)si->si_addr, ram = (uintptr_t)vm->mem.ram;
	uint64_t off, gpa;
	struct vcpu *v = NULL;

	if (si->si_code != BUS_MCEERR_AR && si->si_code != BUS_MCEERR_AO)
		return false;
	if (!vm->mem.ram || hva < ram || hva - ram >= vm->mem.layout.mem_bytes)
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
	if (!vmm_guest_mem_gpa(&vm->mem, off, &gpa))
		return false;
	__atomic_store_n(&v->mce_gpa, gpa, __ATOMIC_SEQ_CST);
	__atomic_store_n(&v->mce_ar, si->si_code == BUS_MCEERR_AR, __ATOMIC_SEQ_CST);
	__atomic_store_n(&v->mce_pending, 1, __ATOMIC_SEQ_CST);
	return true;
}

void *vmm_vcpu_thread(void *arg)
{
	struct vcpu *v = arg;
	struct vmm_vm *vm = v->vm;
	char name[16];

	snprintf(name, sizeof(name), "vcpu%u", v->index);
	pthread_setname_np(pthread_self(), name);
	__atomic_store_n(&v->tid, (int)gettid(), __ATOMIC_SEQ_CST);
	for (;;) {
		int ret;

		if (vmm_vm_is_stopping(vm))
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

int vmm_vcpus_create(struct vmm_vm *vm, const struct vmm_boot_plan *plan, char *err,
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

