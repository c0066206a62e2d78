/*
 * vmm/vm_ctl.c — the commands the VM owns on its control socket (query,
 * stats, stop, version, the test-only debug-poison), registered with the
 * control server next to those of the virtio devices (balloon) and the pool
 * controls (set, clamp); and the hook that turns poolctl's events into
 * `watch` lines.  docs/control-protocol.md has the commands.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <json-c/json.h>

#include "client/ctl_server.h"
#include "client/rundir.h"
#include "host-reclaim/region.h"
#include "vmm/ctl_virtio.h"
#include "vmm/memory.h"
#include "vmm/poolctl.h"
#include "vmm/version.h"
#include "vmm/vm_priv.h"

/* Events to `watch` subscribers (ebbd); the server exists once the VM is up. */
void vmm_vm_ctl_notify(void *opaque, const char *event, struct json_object *fields)
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
			.nr_to_reclaim = vm->mem.layout.mem_bytes / 4096,
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
	if (!vmm_guest_mem_offset(&vm->mem, gpa, 4096, &off)) {
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
	} else if (madvise(vm->mem.ram + off, 4096, MADV_HWPOISON) < 0) {
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
 * clamp); ebbd's commands (pool, vms, policy, trace) get unknown-command
 * with a pointer to ebbd.
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

	if (vmm_vm_is_stopping(vm)) {
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

/* ebbd's commands (pool, vms, policy, trace): not a VM's; say where they are. */
static enum vmm_ctl_err ctl_ebbds(void *opaque, const struct vmm_ctl_request *req,
				  struct json_object **result, char *msg, size_t msg_len)
{
	snprintf(msg, msg_len, "unknown command \"%s\" (ebbd serves it on its own socket)",
		 vmm_ctl_cmd_name(req->cmd));
	return VMM_CTL_ERR_UNKNOWN_CMD;
}

int vmm_vm_ctl_register(struct vmm_vm *vm)
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
		{ VMM_CTL_CMD_POOL, ctl_ebbds },
		{ VMM_CTL_CMD_VMS, ctl_ebbds },
		{ VMM_CTL_CMD_POLICY, ctl_ebbds },
		{ VMM_CTL_CMD_TRACE, ctl_ebbds },
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
