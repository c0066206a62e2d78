/*
 * vmm/ctl_virtio.c — JSON for the balloon and the agent port in the control
 * protocol; argument checking of the `balloon` command.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "vmm/ctl_virtio.h"
#include "client/ctl_server.h"
#include "vmm/pci.h"

/* Counters are u64 (guest-chosen stats values too): never negative in JSON. */
static void add_u64(struct json_object *o, const char *key, uint64_t v)
{
	json_object_object_add(o, key, json_object_new_uint64(v));
}

/* The ring and transport error counters every device shares. */
static void add_dev_errors(struct json_object *o, const struct virtio_dev_errors *e)
{
	add_u64(o, "bad_desc_index", e->nr_bad_desc_index);
	add_u64(o, "chain_loop", e->nr_chain_loop);
	add_u64(o, "bad_indirect", e->nr_bad_indirect);
	add_u64(o, "nested_indirect", e->nr_nested_indirect);
	add_u64(o, "bad_addr", e->nr_bad_addr);
	add_u64(o, "avail_jump", e->nr_avail_jump);
	add_u64(o, "chain_too_long", e->nr_chain_too_long);
	add_u64(o, "bad_order", e->nr_bad_order);
	add_u64(o, "bad_queue_setup", e->nr_bad_queue_setup);
	add_u64(o, "bad_register", e->nr_bad_register);
	add_u64(o, "bad_request", e->nr_bad_request);
	add_u64(o, "needs_reset", e->nr_needs_reset);
	add_u64(o, "logs_suppressed", e->nr_logs_suppressed);
}

struct json_object *vmm_ctl_balloon_json(const struct vmm_balloon_info *bi)
{
	struct json_object *b, *st, *er;
	unsigned t;

	b = json_object_new_object();
	if (!b)
		return NULL;
	json_object_object_add(b, "driver_ok", json_object_new_boolean(bi->driver_ok));
	add_u64(b, "features", bi->features);
	add_u64(b, "mem_bytes", bi->mem_bytes);
	add_u64(b, "target_pages", bi->target_pages);
	add_u64(b, "actual_pages", bi->actual_pages);
	add_u64(b, "ballooned_pages", bi->nr_ballooned_pages);
	add_u64(b, "inflated_pages", bi->nr_inflated_pages);
	add_u64(b, "deflated_pages", bi->nr_deflated_pages);
	add_u64(b, "oom_deflated_pages", bi->nr_oom_deflated_pages);
	add_u64(b, "reported_pages", bi->nr_reported_pages);
	add_u64(b, "bad_pfns", bi->nr_bad_pfns);
	add_u64(b, "madvise_calls", bi->nr_madvise_calls);
	add_u64(b, "discarded_pages", bi->nr_discarded_pages);
	add_u64(b, "madvise_ns", bi->madvise_ns);
	add_u64(b, "madvise_errors", bi->nr_madvise_errors);
	add_u64(b, "exit_kicks", bi->nr_exit_kicks);
	add_u64(b, "logs_suppressed", bi->nr_logs_suppressed);
	json_object_object_add(b, "stats_age_ms",
			       bi->have_stats ? json_object_new_int64(bi->stats_age_ms) : NULL);
	er = json_object_new_object();
	if (er) {
		add_u64(er, "bad_pfns", bi->nr_bad_pfns);
		add_u64(er, "dup_inflates", bi->nr_dup_inflates);
		add_u64(er, "deflate_not_inflated", bi->nr_deflate_not_inflated);
		add_u64(er, "bad_report_ranges", bi->nr_bad_report_ranges);
		add_u64(er, "bad_stats", bi->nr_bad_stats);
		add_dev_errors(er, &bi->errs);
		json_object_object_add(b, "errors", er);
	}
	st = json_object_new_object();
	if (st) {
		for (t = 0; t < 16; t++) {
			const char *name = vmm_balloon_stat_name(t);

			if (name && (bi->stats_valid_mask & (1u << t)))
				add_u64(st, name, bi->stats[t]);
		}
		json_object_object_add(b, "stats", st);
	}
	return b;
}

struct json_object *vmm_ctl_agent_json(const struct vmm_console_info *ci)
{
	struct json_object *a = json_object_new_object(), *er;

	if (!a)
		return NULL;
	json_object_object_add(a, "client", json_object_new_boolean(ci->agent_client));
	json_object_object_add(a, "guest_open", json_object_new_boolean(ci->agent_guest_open));
	add_u64(a, "tx_bytes", ci->agent_tx_bytes);
	add_u64(a, "rx_bytes", ci->agent_rx_bytes);
	add_u64(a, "clients_refused", ci->nr_agent_refused);
	add_u64(a, "client_hangups", ci->nr_agent_hangups);
	er = json_object_new_object();
	if (er) { /* the console device's (both ports, control queue, transport) */
		add_u64(er, "bad_ctrl", ci->nr_bad_ctrl);
		add_u64(er, "ctrl_dropped", ci->nr_ctrl_dropped);
		add_u64(er, "dropped_bytes", ci->nr_dropped_bytes);
		add_dev_errors(er, &ci->errs);
		json_object_object_add(a, "console_errors", er);
	}
	return a;
}

static struct json_object *balloon_object(struct vmm_virtio_devs *d)
{
	struct vmm_balloon_info bi;

	if (vmm_virtio_balloon_info(d, &bi))
		return NULL;
	return vmm_ctl_balloon_json(&bi);
}

struct json_object *vmm_ctl_pci_json(const struct vmm_pci_stats *st)
{
	struct json_object *p = json_object_new_object();

	if (!p)
		return NULL;
	add_u64(p, "cfg_accesses", st->nr_cfg_access);
	add_u64(p, "bad_cfg_accesses", st->nr_bad_cfg_access);
	add_u64(p, "bar_moves", st->nr_bar_moves);
	add_u64(p, "bar_map_failures", st->nr_bar_map_failures);
	add_u64(p, "logs_suppressed", st->nr_logs_suppressed);
	return p;
}

void vmm_ctl_virtio_query(struct vmm_virtio_devs *d, struct json_object *result)
{
	struct vmm_console_info ci;
	struct vmm_pci_stats ps;

	if (!d)
		return;
	json_object_object_add(result, "balloon", balloon_object(d));
	if (vmm_virtio_console_info(d, &ci) == 0)
		json_object_object_add(result, "agent", vmm_ctl_agent_json(&ci));
	if (vmm_virtio_pci_stats(d, &ps) == 0)
		json_object_object_add(result, "pci", vmm_ctl_pci_json(&ps));
}

enum vmm_ctl_err vmm_ctl_balloon_args(struct json_object *args, uint64_t mem_bytes,
				      uint64_t *target_bytes, bool *have_target, char *msg,
				      size_t msg_len)
{
	uint64_t size = 0, pct = 0, target;
	bool have_size = false, have_pct = false;

	*have_target = false;
	if (args) {
		if (vmm_ctl_arg_uint(args, "size_bytes", &size, &have_size)) {
			snprintf(msg, msg_len, "\"size_bytes\" must be a non-negative integer");
			return VMM_CTL_ERR_INVALID;
		}
		if (vmm_ctl_arg_uint(args, "percent", &pct, &have_pct) || (have_pct && pct > 100)) {
			snprintf(msg, msg_len, "\"percent\" must be an integer from 0 to 100");
			return VMM_CTL_ERR_INVALID;
		}
	}
	if (have_size && have_pct) {
		snprintf(msg, msg_len, "give \"size_bytes\" or \"percent\", not both");
		return VMM_CTL_ERR_INVALID;
	}
	if (!have_size && !have_pct)
		return VMM_CTL_OK;
	/* No overflow: pct <= 100 and mem_bytes <= 1 TiB (VMM_MAX_MEM_BYTES). */
	target = have_pct ? mem_bytes / 100 * pct + mem_bytes % 100 * pct / 100 : size;
	target &= ~4095ull;
	if (target > mem_bytes) {
		snprintf(msg, msg_len, "target %llu bytes is more than the guest's RAM (%llu bytes)",
			 (unsigned long long)target, (unsigned long long)mem_bytes);
		return VMM_CTL_ERR_INVALID;
	}
	*target_bytes = target;
	*have_target = true;
	return VMM_CTL_OK;
}

enum vmm_ctl_err vmm_ctl_virtio_balloon(struct vmm_virtio_devs *d,
					const struct vmm_ctl_request *req,
					struct json_object **result, char *msg, size_t msg_len)
{
	struct vmm_balloon_info bi;
	enum vmm_ctl_err err;
	uint64_t target = 0;
	bool have_target;
	int ret;

	if (!d || vmm_virtio_balloon_info(d, &bi)) {
		snprintf(msg, msg_len, "this VM has no balloon device (started with --virtio off)");
		return VMM_CTL_ERR_STATE;
	}
	err = vmm_ctl_balloon_args(req->args, bi.mem_bytes, &target, &have_target, msg, msg_len);
	if (err)
		return err;
	if (have_target) {
		ret = vmm_virtio_balloon_set_size(d, target);
		if (ret) {
			snprintf(msg, msg_len, "cannot set the balloon: %s", strerror(-ret));
			return VMM_CTL_ERR_INVALID;
		}
	}
	*result = balloon_object(d);
	if (!*result) {
		snprintf(msg, msg_len, "out of memory");
		return VMM_CTL_ERR_INTERNAL;
	}
	return VMM_CTL_OK;
}

static enum vmm_ctl_err ctl_balloon(void *opaque, const struct vmm_ctl_request *req,
				    struct json_object **result, char *msg, size_t msg_len)
{
	return vmm_ctl_virtio_balloon(opaque, req, result, msg, msg_len);
}

int vmm_ctl_virtio_register(struct vmm_virtio_devs *d, struct vmm_ctl_server *srv)
{
	return vmm_ctl_server_register(srv, "balloon", ctl_balloon, d);
}
