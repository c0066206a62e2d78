/*
 * vmm/poolctl.c — the VM's side of ebbd (see vmm/poolctl.h): pool settings
 * stored for the daemon, clamps of high/max held as leases, and the `stats`
 * counters.
 *
 * Leases: a clamp records the configured limits it lowers and arms a
 * timerfd for its expiry.  A renewal re-arms the timer; expiry or a lift
 * puts the configured limits back into the engine.  A `set` of high/max
 * during a clamp changes the configured limits and re-applies the clamp on
 * top of them, so an operator's change is never lost to a clamp and a clamp
 * never raises a limit.
 */
#include "vmm/poolctl.h"

#include "base/page.h"
#include "client/ctl_server.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "host-reclaim/region.h"


struct vmm_poolctl {
	struct vmm_poolctl_cfg cfg;
	uint64_t min_bytes, low_bytes;
	unsigned weight;
	/* configured limits in pages (0: none), as set by run options and `set` */
	uint64_t cfg_high_pages, cfg_max_pages;
	/* the clamp (0: that limit not clamped) and its lease */
	bool clamped;
	uint64_t clamp_high_pages, clamp_max_pages;
	uint64_t lease_end_ns;
	int timer_fd;
	struct vmm_ev_watch *timer_watch;
	int sample_fd;                   /* periodic: events */
	struct vmm_ev_watch *sample_watch;
	uint64_t grow_base_pages;        /* resident at the last "grow" or low point */
	uint64_t last_overrun;           /* nr_max_overrun + nr_oom at the last sample */
	struct vmm_poolctl_counters c;
	struct ebb_ratelimit rl;
};

static uint64_t lower(uint64_t configured, uint64_t clamp)
{
	if (!clamp)
		return configured;
	if (!configured)
		return clamp;
	return clamp < configured ? clamp : configured;
}

/* Puts the effective limits into the engine. */
static int apply(struct vmm_poolctl *pc)
{
	struct ebb_region *r = vmm_memory_region(pc->cfg.memory);
	uint64_t high = pc->cfg_high_pages, max = pc->cfg_max_pages;

	if (!r)
		return 0;
	if (pc->clamped) {
		max = lower(max, pc->clamp_max_pages);
		/* A clamp of max alone keeps background reclaim just below it. */
		high = lower(high, pc->clamp_high_pages ? pc->clamp_high_pages :
			     (pc->clamp_max_pages ? max - max / 16 : 0));
	}
	if (max && high > max)
		high = max;
	return ebb_region_set_limits(r, high, max);
}

static void arm_timer(struct vmm_poolctl *pc, uint64_t lease_ms)
{
	struct itimerspec its = { 0 };

	its.it_value.tv_sec = (time_t)(lease_ms / 1000);
	its.it_value.tv_nsec = (long)(lease_ms % 1000) * 1000000L;
	if (!lease_ms)
		its.it_value.tv_nsec = 0;
	if (pc->timer_fd >= 0)
		(void)timerfd_settime(pc->timer_fd, 0, &its, NULL);
}

static void notify(struct vmm_poolctl *pc, const char *event, struct json_object *fields)
{
	pc->c.nr_events++;
	if (pc->cfg.notify)
		pc->cfg.notify(pc->cfg.notify_opaque, event, fields);
	else
		json_object_put(fields);
}

static void end_clamp(struct vmm_poolctl *pc)
{
	int ret;

	pc->clamped = false;
	pc->clamp_high_pages = pc->clamp_max_pages = 0;
	pc->lease_end_ns = 0;
	arm_timer(pc, 0);
	ret = apply(pc);
	if (ret)
		vmm_logf(&pc->cfg.log, EBB_LOG_WARN, "cannot restore the configured limits: %s",
			 strerror(-ret));
}

bool vmm_poolctl_check_lease(struct vmm_poolctl *pc, uint64_t now_ns)
{
	if (!pc->clamped || now_ns < pc->lease_end_ns)
		return false;
	pc->c.nr_lease_expired++;
	vmm_logf(&pc->cfg.log, EBB_LOG_INFO, "memory clamp lease expired: back to the configured "
		 "limits (high %llu, max %llu pages)", (unsigned long long)pc->cfg_high_pages,
		 (unsigned long long)pc->cfg_max_pages);
	end_clamp(pc);
	{
		struct json_object *f = json_object_new_object();

		if (f) {
			json_object_object_add(f, "high_bytes", json_object_new_int64(
				(int64_t)(pc->cfg_high_pages * EBB_PAGE_BYTES)));
			json_object_object_add(f, "max_bytes", json_object_new_int64(
				(int64_t)(pc->cfg_max_pages * EBB_PAGE_BYTES)));
		}
		notify(pc, "lease-expired", f);
	}
	return true;
}

static void lease_timer(void *opaque, uint32_t events)
{
	struct vmm_poolctl *pc = opaque;
	uint64_t n;

	(void)events;
	if (read(pc->timer_fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		return;
	/* The timer may fire a hair early relative to vmm_now_ns: expire anyway
	 * when less than a millisecond is left. */
	if (!vmm_poolctl_check_lease(pc, vmm_now_ns() + 1000000ull) && pc->clamped) {
		uint64_t now = vmm_now_ns();

		arm_timer(pc, pc->lease_end_ns > now ? (pc->lease_end_ns - now) / 1000000 + 1 : 1);
	}
}

void vmm_poolctl_sample(struct vmm_poolctl *pc)
{
	struct ebb_region *r = vmm_memory_region(pc->cfg.memory);
	struct ebb_region_counters c;
	uint64_t step = pc->cfg.mem_bytes / 64, overrun;
	struct json_object *f;

	if (!r)
		return;
	if (step < VMM_POOLCTL_GROW_STEP_BYTES)
		step = VMM_POOLCTL_GROW_STEP_BYTES;
	ebb_region_get_counters(r, &c);
	if (c.resident_pages < pc->grow_base_pages)
		pc->grow_base_pages = c.resident_pages;
	if ((c.resident_pages - pc->grow_base_pages) * EBB_PAGE_BYTES >= step) {
		pc->grow_base_pages = c.resident_pages;
		f = json_object_new_object();
		if (f)
			json_object_object_add(f, "resident_bytes", json_object_new_int64(
				(int64_t)(c.resident_pages * EBB_PAGE_BYTES)));
		notify(pc, "grow", f);
	}
	overrun = c.nr_max_overrun + c.nr_oom;
	if (overrun > pc->last_overrun) {
		f = json_object_new_object();
		if (f)
			json_object_object_add(f, "nr_max_overrun", json_object_new_int64(
				(int64_t)(overrun - pc->last_overrun)));
		notify(pc, "at-max", f);
	}
	pc->last_overrun = overrun;
}

static void sample_timer(void *opaque, uint32_t events)
{
	struct vmm_poolctl *pc = opaque;
	uint64_t n;

	(void)events;
	if (read(pc->sample_fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		return;
	vmm_poolctl_sample(pc);
}

static void read_configured(struct vmm_poolctl *pc)
{
	struct ebb_region *r = vmm_memory_region(pc->cfg.memory);
	struct ebb_region_counters c;

	if (!r)
		return;
	ebb_region_get_counters(r, &c);
	pc->cfg_high_pages = c.high_pages;
	pc->cfg_max_pages = c.max_pages;
}

int vmm_poolctl_create(const struct vmm_poolctl_cfg *cfg, struct vmm_poolctl **out)
{
	struct vmm_poolctl *pc = calloc(1, sizeof(*pc));
	int ret;

	*out = NULL;
	if (!pc)
		return -ENOMEM;
	pc->cfg = *cfg;
	pc->weight = VMM_POOLCTL_DEFAULT_WEIGHT;
	pc->timer_fd = -1;
	pc->sample_fd = -1;
	read_configured(pc);
	if (cfg->memory && cfg->loop) {
		pc->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
		if (pc->timer_fd < 0) {
			ret = -errno;
			goto fail;
		}
		ret = vmm_evloop_add(cfg->loop, pc->timer_fd, EPOLLIN, lease_timer, pc,
				     &pc->timer_watch);
		if (ret)
			goto fail;
		{
			struct itimerspec its = { 0 };
			struct ebb_region_counters c;

			its.it_value.tv_nsec = its.it_interval.tv_nsec =
				(long)VMM_POOLCTL_SAMPLE_MS * 1000000L;
			ebb_region_get_counters(vmm_memory_region(cfg->memory), &c);
			pc->grow_base_pages = c.resident_pages;
			pc->last_overrun = c.nr_max_overrun + c.nr_oom;
			pc->sample_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
			if (pc->sample_fd < 0) {
				ret = -errno;
				goto fail;
			}
			ret = vmm_evloop_add(cfg->loop, pc->sample_fd, EPOLLIN, sample_timer, pc,
					     &pc->sample_watch);
			if (ret)
				goto fail;
			(void)timerfd_settime(pc->sample_fd, 0, &its, NULL);
		}
	}
	*out = pc;
	return 0;
fail:
	vmm_poolctl_destroy(pc);
	return ret;
}

void vmm_poolctl_destroy(struct vmm_poolctl *pc)
{
	if (!pc)
		return;
	if (pc->clamped)
		end_clamp(pc);
	if (pc->timer_watch)
		vmm_evloop_del(pc->cfg.loop, pc->timer_watch);
	if (pc->timer_fd >= 0)
		close(pc->timer_fd);
	if (pc->sample_watch)
		vmm_evloop_del(pc->cfg.loop, pc->sample_watch);
	if (pc->sample_fd >= 0)
		close(pc->sample_fd);
	free(pc);
}

void vmm_poolctl_get_counters(struct vmm_poolctl *pc, struct vmm_poolctl_counters *out)
{
	*out = pc->c;
}

/* ---- commands ------------------------------------------------------------------ */

#define ADD_I64(obj, key, v) json_object_object_add(obj, key, json_object_new_int64((int64_t)(v)))

static enum vmm_ctl_err bad(struct vmm_poolctl *pc, char *msg)
{
	pc->c.nr_bad_requests++;
	vmm_logf_rl(&pc->cfg.log, &pc->rl, EBB_LOG_WARN, "control: %s", msg);
	return VMM_CTL_ERR_INVALID;
}

static struct json_object *clamp_object(struct vmm_poolctl *pc)
{
	struct json_object *o;
	uint64_t now = vmm_now_ns();

	if (!pc->clamped)
		return NULL;
	o = json_object_new_object();
	if (!o)
		return NULL;
	ADD_I64(o, "high_bytes", pc->clamp_high_pages * EBB_PAGE_BYTES);
	ADD_I64(o, "max_bytes", pc->clamp_max_pages * EBB_PAGE_BYTES);
	ADD_I64(o, "lease_left_ms", pc->lease_end_ns > now ? (pc->lease_end_ns - now) / 1000000 : 0);
	return o;
}

static struct json_object *settings_object(struct vmm_poolctl *pc)
{
	struct json_object *o = json_object_new_object();

	if (!o)
		return NULL;
	ADD_I64(o, "min_bytes", pc->min_bytes);
	ADD_I64(o, "low_bytes", pc->low_bytes);
	ADD_I64(o, "weight", pc->weight);
	ADD_I64(o, "cfg_high_bytes", pc->cfg_high_pages * EBB_PAGE_BYTES);
	ADD_I64(o, "cfg_max_bytes", pc->cfg_max_pages * EBB_PAGE_BYTES);
	json_object_object_add(o, "clamp", clamp_object(pc));
	ADD_I64(o, "nr_clamps", pc->c.nr_clamps);
	ADD_I64(o, "nr_lifts", pc->c.nr_lifts);
	ADD_I64(o, "nr_lease_expired", pc->c.nr_lease_expired);
	return o;
}

void vmm_poolctl_query(struct vmm_poolctl *pc, struct json_object *result)
{
	struct json_object *o = pc ? settings_object(pc) : NULL;

	if (o)
		json_object_object_add(result, "pool", o);
}

/* CLIENT: min_bytes, low_bytes, weight; the rest goes to the engine. */
enum vmm_ctl_err vmm_poolctl_set(struct vmm_poolctl *pc, const struct vmm_ctl_request *req,
				 struct json_object **result, char *msg, size_t msg_len)
{
	static const char *const engine_keys[] = { "high_bytes", "high_percent", "max_bytes",
						   "max_percent", "swappiness" };
	uint64_t min = pc->min_bytes, low = pc->low_bytes, weight = pc->weight, v;
	bool have_min, have_low, have_weight, have_engine = false, have, have_ksm = false;
	struct json_object *r, *ksm_arg = NULL;
	enum vmm_ctl_err err;
	unsigned i;

	if (vmm_ctl_arg_uint(req->args, "min_bytes", &v, &have_min)) {
		snprintf(msg, msg_len, "\"min_bytes\" must be a non-negative integer");
		return bad(pc, msg);
	}
	if (have_min)
		min = v;
	if (vmm_ctl_arg_uint(req->args, "low_bytes", &v, &have_low)) {
		snprintf(msg, msg_len, "\"low_bytes\" must be a non-negative integer");
		return bad(pc, msg);
	}
	if (have_low)
		low = v;
	if (vmm_ctl_arg_uint(req->args, "weight", &v, &have_weight) ||
	    (have_weight && (v < 1 || v > VMM_POOLCTL_MAX_WEIGHT))) {
		snprintf(msg, msg_len, "\"weight\" must be an integer from 1 to %u",
			 VMM_POOLCTL_MAX_WEIGHT);
		return bad(pc, msg);
	}
	if (have_weight)
		weight = v;
	if (req->args && json_object_object_get_ex(req->args, "ksm", &ksm_arg)) {
		if (!json_object_is_type(ksm_arg, json_type_boolean)) {
			snprintf(msg, msg_len, "\"ksm\" must be true or false");
			return bad(pc, msg);
		}
		if (!pc->cfg.memory) {
			snprintf(msg, msg_len, "this VM runs without the reclaim engine: no live KSM");
			return VMM_CTL_ERR_STATE;
		}
		have_ksm = true;
	}
	for (i = 0; i < sizeof(engine_keys) / sizeof(engine_keys[0]); i++)
		if (req->args && json_object_object_get_ex(req->args, engine_keys[i], NULL))
			have_engine = true;
	if (!have_min && !have_low && !have_weight && !have_engine && !have_ksm) {
		snprintf(msg, msg_len, "nothing to set: give min_bytes, low_bytes, weight, ksm, high, "
			 "max or swappiness");
		return bad(pc, msg);
	}
	if (min > pc->cfg.mem_bytes || low > pc->cfg.mem_bytes) {
		snprintf(msg, msg_len, "min/low are more than the guest's RAM");
		return bad(pc, msg);
	}
	if (low && min > low) {
		snprintf(msg, msg_len, "min (%llu) is above low (%llu)", (unsigned long long)min,
			 (unsigned long long)low);
		return bad(pc, msg);
	}
	r = NULL;
	if (have_engine) {
		/* The engine's own checks; its result reports the limits it set,
		 * which are now the configured ones. */
		if (pc->clamped) {
			/* Validate and set against the configured limits, then clamp again. */
			(void)ebb_region_set_limits(vmm_memory_region(pc->cfg.memory),
						    pc->cfg_high_pages, pc->cfg_max_pages);
		}
		err = vmm_memory_ctl_set(pc->cfg.memory, req, &r, msg, msg_len);
		read_configured(pc);
		if (pc->clamped)
			(void)apply(pc);
		if (err != VMM_CTL_OK) {
			pc->c.nr_bad_requests++;
			return err;
		}
	}
	if (have_ksm) {
		int ret = vmm_memory_set_ksm(pc->cfg.memory, json_object_get_boolean(ksm_arg));

		if (ret) {
			json_object_put(r);
			snprintf(msg, msg_len, "KSM on guest RAM: %s", strerror(-ret));
			return VMM_CTL_ERR_INTERNAL;
		}
	}
	pc->min_bytes = min;
	pc->low_bytes = low;
	pc->weight = (unsigned)weight;
	if (!r)
		r = json_object_new_object();
	if (!r) {
		snprintf(msg, msg_len, "out of memory");
		return VMM_CTL_ERR_INTERNAL;
	}
	have = pc->clamped;
	json_object_object_add(r, "pool", settings_object(pc));
	json_object_object_add(r, "clamped", json_object_new_boolean(have));
	json_object_object_add(r, "ksm", json_object_new_boolean(vmm_memory_ksm(pc->cfg.memory)));
	*result = r;
	return VMM_CTL_OK;
}

/* CLIENT: {"max_bytes", "high_bytes", "lease_ms"} or {"lift": true} */
enum vmm_ctl_err vmm_poolctl_clamp(struct vmm_poolctl *pc, const struct vmm_ctl_request *req,
				   struct json_object **result, char *msg, size_t msg_len)
{
	uint64_t high = 0, max = 0, lease_ms = 0;
	bool have_high, have_max, have_lease, lift = false;
	struct json_object *l, *r;
	int ret;

	if (!pc->cfg.memory) {
		snprintf(msg, msg_len, "this VM runs without the reclaim engine: nothing to clamp");
		return VMM_CTL_ERR_STATE;
	}
	if (req->args && json_object_object_get_ex(req->args, "lift", &l)) {
		if (!json_object_is_type(l, json_type_boolean)) {
			snprintf(msg, msg_len, "\"lift\" must be true or false");
			return bad(pc, msg);
		}
		lift = json_object_get_boolean(l);
	}
	if (vmm_ctl_arg_uint(req->args, "high_bytes", &high, &have_high) ||
	    vmm_ctl_arg_uint(req->args, "max_bytes", &max, &have_max) ||
	    vmm_ctl_arg_uint(req->args, "lease_ms", &lease_ms, &have_lease)) {
		snprintf(msg, msg_len, "high_bytes, max_bytes and lease_ms are non-negative integers");
		return bad(pc, msg);
	}
	if (lift) {
		if (have_high || have_max || have_lease) {
			snprintf(msg, msg_len, "\"lift\" takes no other argument");
			return bad(pc, msg);
		}
		if (pc->clamped) {
			pc->c.nr_lifts++;
			end_clamp(pc);
		}
	} else {
		if (!have_lease || lease_ms < 1 || lease_ms > VMM_POOLCTL_MAX_LEASE_MS) {
			snprintf(msg, msg_len, "a clamp needs \"lease_ms\" from 1 to %u",
				 VMM_POOLCTL_MAX_LEASE_MS);
			return bad(pc, msg);
		}
		if ((!have_high || !high) && (!have_max || !max)) {
			snprintf(msg, msg_len, "give high_bytes and/or max_bytes (above 0)");
			return bad(pc, msg);
		}
		if (high > pc->cfg.mem_bytes || max > pc->cfg.mem_bytes) {
			snprintf(msg, msg_len, "a clamp above the guest's RAM");
			return bad(pc, msg);
		}
		if (max && high > max) {
			snprintf(msg, msg_len, "high_bytes is above max_bytes");
			return bad(pc, msg);
		}
		pc->clamp_high_pages = (high + EBB_PAGE_BYTES - 1) / EBB_PAGE_BYTES;
		pc->clamp_max_pages = (max + EBB_PAGE_BYTES - 1) / EBB_PAGE_BYTES;
		pc->clamped = true;
		pc->lease_end_ns = vmm_now_ns() + lease_ms * 1000000ull;
		pc->c.nr_clamps++;
		arm_timer(pc, lease_ms);
		ret = apply(pc);
		if (ret) {
			end_clamp(pc);
			snprintf(msg, msg_len, "cannot set the limits: %s", strerror(-ret));
			return VMM_CTL_ERR_INTERNAL;
		}
	}
	r = settings_object(pc);
	if (!r) {
		snprintf(msg, msg_len, "out of memory");
		return VMM_CTL_ERR_INTERNAL;
	}
	*result = r;
	return VMM_CTL_OK;
}

enum vmm_ctl_err vmm_poolctl_stats(struct vmm_poolctl *pc, struct json_object **result,
				   char *msg, size_t msg_len)
{
	struct ebb_region *reg = vmm_memory_region(pc->cfg.memory);
	struct ebb_region_counters c;
	struct ebb_psi_stats psi;
	struct json_object *o = json_object_new_object();
	int64_t ksm;

	if (!o) {
		snprintf(msg, msg_len, "out of memory");
		return VMM_CTL_ERR_INTERNAL;
	}
	ADD_I64(o, "mem_bytes", pc->cfg.mem_bytes);
	ADD_I64(o, "now_ms", vmm_now_ns() / 1000000);
	json_object_object_add(o, "engine", json_object_new_boolean(reg != NULL));
	json_object_object_add(o, "pool", settings_object(pc));
	if (reg) {
		ebb_region_get_counters(reg, &c);
		ebb_region_get_psi(reg, &psi);
		ADD_I64(o, "resident_bytes", c.resident_pages * EBB_PAGE_BYTES);
		ADD_I64(o, "compressed_bytes", c.compressed_bytes);
		ADD_I64(o, "compressed_pages", c.compressed_pages);
		ADD_I64(o, "file_pages", c.file_pages);
		ADD_I64(o, "swapped_pages", c.swapped_pages);
		ADD_I64(o, "zero_pages", c.zero_pages);
		ADD_I64(o, "ballooned_pages", c.ballooned_pages);
		ADD_I64(o, "active_pages", c.active_pages);
		ADD_I64(o, "inactive_pages", c.inactive_pages);
		ADD_I64(o, "high_bytes", c.high_pages * EBB_PAGE_BYTES);
		ADD_I64(o, "max_bytes", c.max_pages * EBB_PAGE_BYTES);
		ADD_I64(o, "swappiness", vmm_memory_swappiness(pc->cfg.memory));
		ADD_I64(o, "nr_faults", c.nr_faults);
		ADD_I64(o, "nr_major_faults", c.nr_major_faults);
		ADD_I64(o, "nr_swapped_in", c.nr_swapped_in);
		ADD_I64(o, "nr_swapped_out", c.nr_swapped_out);
		ADD_I64(o, "nr_refaults", c.nr_refaults);
		ADD_I64(o, "nr_refault_thrash", c.nr_refault_thrash);
		ADD_I64(o, "nr_oom", c.nr_oom);
		ADD_I64(o, "nr_max_overrun", c.nr_max_overrun);
		ADD_I64(o, "nr_errors", c.nr_errors);
		json_object_object_add(o, "idle_hist", vmm_memory_idle_json(&c));
		ADD_I64(o, "psi_some_us", psi.some_total_ns / 1000);
		ADD_I64(o, "psi_full_us", psi.full_total_ns / 1000);
		json_object_object_add(o, "psi_some_avg10", json_object_new_double(psi.some_avg10));
		json_object_object_add(o, "psi_full_avg10", json_object_new_double(psi.full_avg10));
		json_object_object_add(o, "ksm", json_object_new_boolean(vmm_memory_ksm(pc->cfg.memory)));
		ksm = vmm_memory_ksm_pages(pc->cfg.memory);
		json_object_object_add(o, "ksm_merging_pages",
				       ksm >= 0 ? json_object_new_int64(ksm) : NULL);
	}
	*result = o;
	return VMM_CTL_OK;
}

static enum vmm_ctl_err ctl_set(void *opaque, const struct vmm_ctl_request *req,
				struct json_object **result, char *msg, size_t msg_len)
{
	return vmm_poolctl_set(opaque, req, result, msg, msg_len);
}

static enum vmm_ctl_err ctl_clamp(void *opaque, const struct vmm_ctl_request *req,
				  struct json_object **result, char *msg, size_t msg_len)
{
	return vmm_poolctl_clamp(opaque, req, result, msg, msg_len);
}

int vmm_poolctl_register(struct vmm_poolctl *pc, struct vmm_ctl_server *srv)
{
	int ret = vmm_ctl_server_register(srv, "set", ctl_set, pc);

	return ret ? ret : vmm_ctl_server_register(srv, "clamp", ctl_clamp, pc);
}
