/*
 * vmm/vm_ctl.c — the commands the VM owns on its control socket (query,
 * stats, stop, version, the test-only debug-poison), registered with the
 * control server next to those of the virtio devices (balloon) and the pool
 * controls (set, clamp); and the hook that turns poolctl's events into
 * `watch` lines.  docs/control-protocol.md has the commands.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <json-c/json.h>

#include "client/ctl_server.h"
#include "client/report.h"
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

static const char *page_state_name(enum ebb_page_state s)
{
	/* Their initials differ: debug_lose_page() traces states by them. */
	static const char *const names[EBB_PAGE_NR_STATES] = {
		[EBB_PAGE_NEVER] = "never touched", [EBB_PAGE_RESIDENT] = "resident",
		[EBB_PAGE_SWAPPED] = "swapped", [EBB_PAGE_ZERO] = "evicted as a zero page",
		[EBB_PAGE_BALLOONED] = "ballooned", [EBB_PAGE_LOST] = "lost",
	};

	return (unsigned)s < EBB_PAGE_NR_STATES && names[s] ? names[s] : "unknown";
}

/*
 * Test hook of debug-poison {"via": "swap"}: make the reclaim engine lose
 * the page at RAM offset @off the way a failing swap store would.  The next
 * swap-in of the page fails (ebb_region_test_lose_page), and the page is
 * pushed out now (proactive reclaim of the whole region, at most 16 passes)
 * so that the guest's next access is that swap-in.  With @no_hwpoison the
 * engine's MADV_HWPOISON is made to fail, as on a host without memory
 * failure handling.  0, or -EAGAIN when the page is not swapped out after
 * the passes (@trace: its state after each, see page_state_name()).
 */
static int debug_lose_page(struct vmm_vm *vm, uint64_t off, bool no_hwpoison, char *trace,
			   size_t trace_len)
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
			.force_deactivate = true,   /* everything out, active pages too */
		};

		ebb_region_reclaim(r, &sc);
		/* The page's state after each pass, by the initial of its name. */
		if ((size_t)pass + 1 < trace_len) {
			trace[pass] = page_state_name(ebb_region_page_state(r, pfn))[0];
			trace[pass + 1] = '\0';
		}
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
		char trace[20] = "";
		int ret = debug_lose_page(vm, off, no_hwpoison, trace, sizeof(trace));

		if (ret) {
			if (ret == -EAGAIN) {
				struct ebb_region *r = vmm_memory_region(vm->memory);
				char where[256];

				ebb_region_test_page_lru(r, off / 4096, where, sizeof(where));
				snprintf(msg, msg_len, "the page is not swapped out after 16 reclaim passes: %s "
					 "(after each pass: %s; n never touched, r resident, s swapped, "
					 "e evicted as a zero page, b ballooned, l lost); LRU: %s",
					 page_state_name(ebb_region_page_state(r, off / 4096)), trace, where);
			} else
				snprintf(msg, msg_len, "%s", ret == -EOPNOTSUPP ?
					 "no reclaim engine (--reclaim off?)" : strerror(-ret));
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
/*
 * The VM's own part of `query`, one table for the JSON and `ebb stat`'s
 * text (client/report.h; the devices, memory and pool controls add their
 * objects after it).
 */
struct vm_report {
	const char *name, *state, *kernel, *cmdline;
	uint64_t pid, vcpus, mem_bytes, uptime_ms;
	int64_t ready_ms;                /* -1: not (yet) seen */
	uint64_t nr_exits, nr_pio_exits, nr_mmio_exits, nr_guest_mce, mce_banks;
	int protocol;
};

#define R(member) offsetof(struct vm_report, member)
#define F(n, t, o) { .name = (n), .type = (t), .off = (o) }
#define TL(n, t, o, txt, u) \
	{ .name = (n), .type = (t), .off = (o), .text = (txt), .unit = (u), .line = true }

static const struct vmm_field vm_fields[] = {
	TL("name", VMM_FIELD_STR, R(name), "name:       %s", VMM_UNIT_NUM),
	TL("pid", VMM_FIELD_U64, R(pid), "pid:        %s", VMM_UNIT_NUM),
	TL("state", VMM_FIELD_STR, R(state), "state:      %s", VMM_UNIT_NUM),
	TL("vcpus", VMM_FIELD_U64, R(vcpus), "vcpus:      %s", VMM_UNIT_NUM),
	TL("mem_bytes", VMM_FIELD_U64, R(mem_bytes), "memory:     %s", VMM_UNIT_SIZE),
	TL("uptime_ms", VMM_FIELD_U64, R(uptime_ms), "uptime:     %s", VMM_UNIT_MS),
	TL("ready_ms", VMM_FIELD_I64_NULL, R(ready_ms), "ready:      %s", VMM_UNIT_MS),
	TL("nr_exits", VMM_FIELD_U64, R(nr_exits), "exits:      %s", VMM_UNIT_NUM),
	{ .name = "nr_pio_exits", .type = VMM_FIELD_U64, .off = R(nr_pio_exits),
	  .text = " (pio %s, mmio %s)", .with = "nr_mmio_exits", .unit = VMM_UNIT_NUM },
	F("nr_mmio_exits", VMM_FIELD_U64, R(nr_mmio_exits)),
	{ .name = "nr_guest_mce", .type = VMM_FIELD_U64, .off = R(nr_guest_mce), .line = true,
	  .text = "guest MCE:  %s (machine checks for guest RAM lost on the host; %s banks)",
	  .with = "mce_banks", .unit = VMM_UNIT_NUM },
	F("mce_banks", VMM_FIELD_U64, R(mce_banks)),
	TL("kernel", VMM_FIELD_STR, R(kernel), "kernel:     %s", VMM_UNIT_NUM),
	TL("cmdline", VMM_FIELD_STR, R(cmdline), "cmdline:    %s", VMM_UNIT_NUM),
	F("protocol", VMM_FIELD_INT, R(protocol)),
};

#undef R
#undef F
#undef TL

int vmm_vm_query_format(struct json_object *q, char *buf, size_t len)
{
	return vmm_report_text(vm_fields, sizeof(vm_fields) / sizeof(vm_fields[0]), q, "", "",
			       buf, len);
}

static enum vmm_ctl_err ctl_query(void *opaque, const struct vmm_ctl_request *req,
				  struct json_object **result, char *msg, size_t msg_len)
{
	struct vmm_vm *vm = opaque;
	struct vmm_vm_info info;
	struct vm_report rep;
	struct json_object *r = json_object_new_object();

	if (!r)
		return vmm_ctl_result(NULL, result, msg, msg_len);
	vmm_vm_get_info(vm, &info);
	rep = (struct vm_report){
		.name = info.name,
		.pid = (uint64_t)getpid(),
		.state = info.stopping ? "stopping" : "running",
		.vcpus = info.nr_cpus,
		.mem_bytes = info.mem_bytes,
		.uptime_ms = info.uptime_ns / 1000000,
		.ready_ms = info.ready_ns < 0 ? -1 : info.ready_ns / 1000000,
		.nr_exits = info.nr_exits,
		.nr_pio_exits = info.nr_pio_exits,
		.nr_mmio_exits = info.nr_mmio_exits,
		.nr_guest_mce = info.nr_guest_mce,
		.mce_banks = info.mce_banks,
		.kernel = vm->cfg.kernel_path,
		.cmdline = vm->cmdline,
		.protocol = VMM_CTL_PROTOCOL_VERSION,
	};
	vmm_report_json(vm_fields, sizeof(vm_fields) / sizeof(vm_fields[0]), &rep, r);
	vmm_ctl_virtio_query(vm->virtio, r);
	vmm_memory_query(vm->memory, r);
	vmm_poolctl_query(vm->poolctl, r);
	return vmm_ctl_result(r, result, msg, msg_len);
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

	if (r) {
		json_object_object_add(r, "version", json_object_new_string(EBB_VERSION));
		json_object_object_add(r, "protocol", json_object_new_int(VMM_CTL_PROTOCOL_VERSION));
	}
	return vmm_ctl_result(r, result, msg, msg_len);
}

/* ebbd's commands (pool, vms, policy, trace): not a VM's; say where they are. */
static enum vmm_ctl_err ctl_ebbds(void *opaque, const struct vmm_ctl_request *req,
				  struct json_object **result, char *msg, size_t msg_len)
{
	snprintf(msg, msg_len, "unknown command \"%s\" (ebbd serves it on its own socket)",
		 req->cmd);
	return VMM_CTL_ERR_UNKNOWN_CMD;
}

int vmm_vm_ctl_register(struct vmm_vm *vm)
{
	static const struct vmm_ctl_command own[] = {
		{ "query", ctl_query },
		{ "stats", ctl_stats },
		{ "stop", ctl_stop },
		{ "version", ctl_version },
		{ "debug-poison", ctl_debug_poison },
		{ "pool", ctl_ebbds },
		{ "vms", ctl_ebbds },
		{ "policy", ctl_ebbds },
		{ "trace", ctl_ebbds },
	};
	int ret = vmm_ctl_server_register_all(vm->ctl, own, sizeof(own) / sizeof(own[0]), vm);

	if (!ret)
		ret = vmm_ctl_virtio_register(vm->virtio, vm->ctl);
	if (!ret)
		ret = vmm_poolctl_register(vm->poolctl, vm->ctl);
	return ret;
}
