/*
 * vmm/ctl_virtio.c — JSON for the balloon and the agent port in the control
 * protocol; argument checking of the `balloon` command.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "vmm/ctl_virtio.h"

static struct json_object *balloon_object(struct vmm_virtio_devs *d)
{
	struct vmm_balloon_info bi;
	struct json_object *b, *st;
	unsigned t;

	if (vmm_virtio_balloon_info(d, &bi))
		return NULL;
	b = json_object_new_object();
	if (!b)
		return NULL;
	json_object_object_add(b, "driver_ok", json_object_new_boolean(bi.driver_ok));
	json_object_object_add(b, "features", json_object_new_int64((int64_t)bi.features));
	json_object_object_add(b, "mem_bytes", json_object_new_int64((int64_t)bi.mem_bytes));
	json_object_object_add(b, "target_pages", json_object_new_int64((int64_t)bi.target_pages));
	json_object_object_add(b, "actual_pages", json_object_new_int64((int64_t)bi.actual_pages));
	json_object_object_add(b, "ballooned_pages",
			       json_object_new_int64((int64_t)bi.nr_ballooned_pages));
	json_object_object_add(b, "inflated_pages",
			       json_object_new_int64((int64_t)bi.nr_inflated_pages));
	json_object_object_add(b, "deflated_pages",
			       json_object_new_int64((int64_t)bi.nr_deflated_pages));
	json_object_object_add(b, "oom_deflated_pages",
			       json_object_new_int64((int64_t)bi.nr_oom_deflated_pages));
	json_object_object_add(b, "reported_pages",
			       json_object_new_int64((int64_t)bi.nr_reported_pages));
	json_object_object_add(b, "bad_pfns", json_object_new_int64((int64_t)bi.nr_bad_pfns));
	json_object_object_add(b, "madvise_calls", json_object_new_int64((int64_t)bi.nr_madvise_calls));
	json_object_object_add(b, "discarded_pages",
			       json_object_new_int64((int64_t)bi.nr_discarded_pages));
	json_object_object_add(b, "madvise_ns", json_object_new_int64((int64_t)bi.madvise_ns));
	json_object_object_add(b, "madvise_errors",
			       json_object_new_int64((int64_t)bi.nr_madvise_errors));
	json_object_object_add(b, "exit_kicks", json_object_new_int64((int64_t)bi.nr_exit_kicks));
	json_object_object_add(b, "stats_age_ms",
			       bi.have_stats ? json_object_new_int64(bi.stats_age_ms) : NULL);
	st = json_object_new_object();
	if (st) {
		for (t = 0; t < 16; t++) {
			const char *name = vmm_balloon_stat_name(t);

			if (name && (bi.stats_valid_mask & (1u << t)))
				json_object_object_add(st, name,
						       json_object_new_int64((int64_t)bi.stats[t]));
		}
		json_object_object_add(b, "stats", st);
	}
	return b;
}

void vmm_ctl_virtio_query(struct vmm_virtio_devs *d, struct json_object *result)
{
	struct vmm_console_info ci;
	struct json_object *a;

	if (!d)
		return;
	json_object_object_add(result, "balloon", balloon_object(d));
	if (vmm_virtio_console_info(d, &ci) == 0 && (a = json_object_new_object())) {
		json_object_object_add(a, "client", json_object_new_boolean(ci.agent_client));
		json_object_object_add(a, "guest_open", json_object_new_boolean(ci.agent_guest_open));
		json_object_object_add(a, "tx_bytes", json_object_new_int64((int64_t)ci.agent_tx_bytes));
		json_object_object_add(a, "rx_bytes", json_object_new_int64((int64_t)ci.agent_rx_bytes));
		json_object_object_add(result, "agent", a);
	}
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
