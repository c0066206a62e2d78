/*
 * host-reclaim/ebbd/backend_ebb.c — the ebb VMM backend: one control-socket
 * connection per VM (docs/control-protocol.md).
 *
 * observe: one `stats` call (the engine's counters, the pool settings the VM
 * stores for ebbd, the clamp in force, the balloon).  apply: `balloon` for
 * balloon actions; `clamp` for SET_HIGH / CLAMP_MAX / LIFT_CLAMP — the
 * backend keeps the one clamp it wants on the VM ({high, max}, either may be
 * absent) and sends it whole, with a lease, so ebbd never changes a VM's
 * configured limits: if ebbd dies, the VM goes back to them when the lease
 * runs out.  renew re-sends the clamp when half its lease is gone.
 *
 * The agent channel (NAME.agent, one client at a time): ebbd is its client
 * while it runs (docs/ebbd.md, "The agent channel"), through agent_link.h
 * (connect with backoff, hello, the newest report, pressure messages on the
 * daemon's loop).  Losing the channel is not losing the VM: the agent fields
 * just go stale.
 *
 * CLIENT: the VM's replies are not trusted: a missing or mistyped field makes
 * the observation fail (counted by the daemon), never a crash.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/page.h"
#include "client/rundir.h"
#include "host-reclaim/ebbd/agent_link.h"
#include "host-reclaim/ebbd/backend.h"


struct backend_ebb {
	struct ebbd_backend be;
	struct ebbd_backend_ebb_cfg cfg;
	char name[VMM_NAME_MAX_BYTES + 1];
	char rundir[256];
	int fd;
	int watch_fd;                 /* event subscription, -1 until opened */
	uint64_t mem_bytes;
	/* the clamp this daemon wants on the VM (0: that limit not clamped) */
	uint64_t clamp_high_bytes, clamp_max_bytes;
	uint32_t lease_ms;
	uint64_t clamp_sent_ns;
	char agent_path[512];            /* NAME.agent in the run directory */
	struct ebbd_agent_link agent;
};

static int agent_fd(struct ebbd_backend *be)
{
	struct backend_ebb *b = (struct backend_ebb *)be;

	return ebbd_agent_link_fd(&b->agent);
}

static int agent_poll(struct ebbd_backend *be)
{
	struct backend_ebb *b = (struct backend_ebb *)be;

	return ebbd_agent_link_poll(&b->agent);
}

static int call(struct backend_ebb *b, const char *cmd, struct json_object *args,
		struct json_object **result, char *err, size_t err_len)
{
	struct vmm_ctl_response resp;
	int ret;

	if (args)
		json_object_get(args);   /* vmm_ctl_call consumes it */
	ret = vmm_ctl_call(b->fd, cmd, args, b->cfg.call_timeout_ms, &resp);
	if (ret) {
		snprintf(err, err_len, "%s: %s", cmd, strerror(-ret));
		return ret;
	}
	if (!resp.ok) {
		snprintf(err, err_len, "%s: %s: %s", cmd, resp.error_code, resp.error_message);
		vmm_ctl_response_release(&resp);
		return -EINVAL;
	}
	if (result) {
		*result = resp.result;
		resp.result = NULL;
	}
	vmm_ctl_response_release(&resp);
	return 0;
}

static int be_call(struct ebbd_backend *be, const char *cmd, struct json_object *args,
		   struct json_object **result, char *err, size_t err_len)
{
	return call((struct backend_ebb *)be, cmd, args, result, err, err_len);
}

/* CLIENT: a non-negative integer field; *ok cleared when absent or wrong. */
static uint64_t u64(struct json_object *o, const char *key, bool *ok)
{
	struct json_object *v;
	int64_t x;

	if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int)) {
		*ok = false;
		return 0;
	}
	x = json_object_get_int64(v);
	if (x < 0) {
		*ok = false;
		return 0;
	}
	return (uint64_t)x;
}

static uint64_t limit(uint64_t bytes)
{
	return bytes ? bytes : EBB_BAL_NO_LIMIT;
}


/*
 * VM: the engine's working set by idle age ("idle_hist"): exactly
 * EBB_BAL_WS_BUCKETS byte counts at the balancer's tick.  Anything else
 * leaves ws invalid (the balancer then takes all resident memory as used);
 * the balancer bounds the sum.
 */
static void idle_hist(struct json_object *r, struct ebb_bal_vm_obs *obs)
{
	struct json_object *h, *a, *v;

	obs->ws.valid = false;
	if (!json_object_object_get_ex(r, "idle_hist", &h) || !json_object_is_type(h, json_type_object) ||
	    !json_object_object_get_ex(h, "tick_ms", &v) || !json_object_is_type(v, json_type_int) ||
	    json_object_get_int64(v) != EBB_BAL_WS_AGE0_MS ||
	    !json_object_object_get_ex(h, "bytes", &a) || !json_object_is_type(a, json_type_array) ||
	    json_object_array_length(a) != EBB_BAL_WS_BUCKETS)
		return;
	for (size_t i = 0; i < EBB_BAL_WS_BUCKETS; i++) {
		v = json_object_array_get_idx(a, i);
		if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 0)
			return;
		obs->ws.bytes[i] = (uint64_t)json_object_get_int64(v);
	}
	obs->ws.valid = true;
}

static int observe(struct ebbd_backend *be, struct ebb_bal_vm_obs *obs)
{
	struct backend_ebb *b = (struct backend_ebb *)be;
	struct json_object *r = NULL, *pool, *balloon, *clamp, *v;
	char err[256];
	bool ok = true, engine;
	int ret;

	ret = call(b, "stats", NULL, &r, err, sizeof(err));
	if (ret)
		return ret;
	obs->backend = EBB_BAL_BACKEND_EBB;
	obs->caps = 0;
	obs->guest_bytes = b->mem_bytes = u64(r, "mem_bytes", &ok);
	engine = json_object_object_get_ex(r, "engine", &v) && json_object_get_boolean(v);
	if (!json_object_object_get_ex(r, "pool", &pool) ||
	    !json_object_is_type(pool, json_type_object)) {
		ret = -EPROTO;
		goto out;
	}
	obs->cfg.min_bytes = u64(pool, "min_bytes", &ok);
	obs->cfg.low_bytes = u64(pool, "low_bytes", &ok);
	obs->cfg.weight = (uint32_t)u64(pool, "weight", &ok);
	obs->cfg.high_bytes = limit(u64(pool, "cfg_high_bytes", &ok));
	obs->cfg.max_bytes = limit(u64(pool, "cfg_max_bytes", &ok));
	obs->cfg.swappiness = -1;
	obs->max_clamped = json_object_object_get_ex(pool, "clamp", &clamp) &&
			   json_object_is_type(clamp, json_type_object);
	if (engine) {
		obs->caps |= EBB_BAL_CAP_HIGH | EBB_BAL_CAP_MAX_LEASE;
		if (json_object_object_get_ex(r, "ksm", &v) && json_object_is_type(v, json_type_boolean)) {
			obs->caps |= EBB_BAL_CAP_KSM;
			obs->ksm_advised = json_object_get_boolean(v);
		}
		obs->resident_bytes = u64(r, "resident_bytes", &ok);
		obs->compressed_bytes = u64(r, "compressed_bytes", &ok);
		obs->resident_bytes += obs->compressed_bytes;
		obs->swapped_compressed_bytes = u64(r, "compressed_pages", &ok) * EBB_PAGE_BYTES;
		obs->swapped_file_bytes = u64(r, "file_pages", &ok) * EBB_PAGE_BYTES;
		obs->cur_high_bytes = limit(u64(r, "high_bytes", &ok));
		obs->cur_max_bytes = limit(u64(r, "max_bytes", &ok));
		obs->cfg.swappiness = (int32_t)u64(r, "swappiness", &ok);
		obs->nr_refaults = u64(r, "nr_refaults", &ok);
		obs->nr_swapins = u64(r, "nr_swapped_in", &ok);
		obs->psi_some_ns_total = u64(r, "psi_some_us", &ok) * 1000;
		obs->psi_full_ns_total = u64(r, "psi_full_us", &ok) * 1000;
		idle_hist(r, obs);
		if (json_object_object_get_ex(r, "ksm_merging_pages", &v) && v)
			obs->ksm_merging_pages = u64(r, "ksm_merging_pages", &ok);
	} else {
		/* Unmanaged RAM: all of it counts as resident. */
		obs->resident_bytes = obs->guest_bytes;
		obs->cur_high_bytes = obs->cur_max_bytes = EBB_BAL_NO_LIMIT;
	}
	if (json_object_object_get_ex(r, "balloon", &balloon) &&
	    json_object_is_type(balloon, json_type_object)) {
		bool bok = true;

		if (json_object_object_get_ex(balloon, "driver_ok", &v) && json_object_get_boolean(v))
			obs->caps |= EBB_BAL_CAP_BALLOON;
		obs->balloon_target_bytes = u64(balloon, "target_pages", &bok) * EBB_PAGE_BYTES;
		obs->balloon_actual_bytes = u64(balloon, "actual_pages", &bok) * EBB_PAGE_BYTES;
		if (!bok)
			obs->caps &= ~(uint32_t)EBB_BAL_CAP_BALLOON;
	}
	ebbd_agent_link_observe(&b->agent, b->agent_path, obs);
	ret = ok ? 0 : -EPROTO;
out:
	json_object_put(r);
	return ret;
}

static int send_clamp(struct backend_ebb *b, uint64_t now_ns)
{
	struct json_object *args = json_object_new_object();
	char err[256];
	int ret;

	if (!args)
		return -ENOMEM;
	if (!b->clamp_high_bytes && !b->clamp_max_bytes) {
		json_object_object_add(args, "lift", json_object_new_boolean(1));
	} else {
		uint64_t high = b->clamp_high_bytes, max = b->clamp_max_bytes;

		if (max && high > max)
			high = max;
		if (high)
			json_object_object_add(args, "high_bytes", json_object_new_int64((int64_t)high));
		if (max)
			json_object_object_add(args, "max_bytes", json_object_new_int64((int64_t)max));
		json_object_object_add(args, "lease_ms", json_object_new_int64(b->lease_ms));
	}
	ret = call(b, "clamp", args, NULL, err, sizeof(err));
	json_object_put(args);
	if (ret)
		vmm_logf(&b->cfg.log, EBB_LOG_WARN, "%s: %s", b->name, err);
	else
		b->clamp_sent_ns = now_ns;
	return ret;
}

static int apply(struct ebbd_backend *be, const struct ebb_bal_action *a, uint64_t now_ns)
{
	struct backend_ebb *b = (struct backend_ebb *)be;
	struct json_object *args;
	char err[256];
	int ret;

	switch (a->kind) {
	case EBB_BAL_ACT_BALLOON:
		args = json_object_new_object();
		if (!args)
			return -ENOMEM;
		json_object_object_add(args, "size_bytes", json_object_new_int64((int64_t)a->value2));
		ret = call(b, "balloon", args, NULL, err, sizeof(err));
		json_object_put(args);
		if (ret)
			vmm_logf(&b->cfg.log, EBB_LOG_WARN, "%s: %s", b->name, err);
		return ret;
	case EBB_BAL_ACT_SET_HIGH:
		b->clamp_high_bytes = a->value == EBB_BAL_NO_LIMIT ? 0 : a->value;
		if (!b->lease_ms)
			b->lease_ms = b->cfg.default_lease_ms;
		return send_clamp(b, now_ns);
	case EBB_BAL_ACT_CLAMP_MAX:
		b->clamp_max_bytes = a->value == EBB_BAL_NO_LIMIT ? 0 : a->value;
		b->lease_ms = a->lease_ms ? a->lease_ms : b->cfg.default_lease_ms;
		return send_clamp(b, now_ns);
	case EBB_BAL_ACT_LIFT_CLAMP:
		b->clamp_max_bytes = 0;
		return send_clamp(b, now_ns);
	case EBB_BAL_ACT_AGENT_DROP_CACHE:
	case EBB_BAL_ACT_AGENT_RECLAIM:
		return ebbd_agent_link_reclaim(&b->agent, a);
	case EBB_BAL_ACT_KSM_ADVISE:
		args = json_object_new_object();
		if (!args)
			return -ENOMEM;
		json_object_object_add(args, "ksm", json_object_new_boolean(a->value != 0));
		ret = call(b, "set", args, NULL, err, sizeof(err));
		json_object_put(args);
		if (ret)
			vmm_logf(&b->cfg.log, EBB_LOG_WARN, "%s: %s", b->name, err);
		return ret;
	default:
		return -EOPNOTSUPP;
	}
}

static int renew(struct ebbd_backend *be, uint64_t now_ns)
{
	struct backend_ebb *b = (struct backend_ebb *)be;

	if (!b->clamp_high_bytes && !b->clamp_max_bytes)
		return 0;
	if (now_ns - b->clamp_sent_ns < (uint64_t)b->lease_ms * 1000000ull / 2)
		return 0;
	return send_clamp(b, now_ns) ? 0 : 1;
}

static void release(struct ebbd_backend *be)
{
	struct backend_ebb *b = (struct backend_ebb *)be;

	if (!b->clamp_high_bytes && !b->clamp_max_bytes)
		return;
	b->clamp_high_bytes = b->clamp_max_bytes = 0;
	(void)send_clamp(b, 0);
}

static int watch_open(struct ebbd_backend *be)
{
	struct backend_ebb *b = (struct backend_ebb *)be;
	struct vmm_ctl_response resp;
	int fd, ret;

	if (b->watch_fd >= 0)
		return b->watch_fd;
	fd = vmm_ctl_connect(b->cfg.rundir, b->name);
	if (fd < 0)
		return fd;
	/* An event line that arrives with the response in one read is dropped
	 * by vmm_ctl_call: harmless, events only wake the balancer. */
	ret = vmm_ctl_call(fd, "watch", NULL, b->cfg.call_timeout_ms, &resp);
	if (!ret && !resp.ok)
		ret = -EPROTO;
	if (!ret)
		vmm_ctl_response_release(&resp);
	if (ret || fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0) {
		close(fd);
		return ret ? ret : -errno;
	}
	b->watch_fd = fd;
	return fd;
}

/* CLIENT: only newlines are counted; the content is not needed. */
static int watch_read(struct ebbd_backend *be)
{
	struct backend_ebb *b = (struct backend_ebb *)be;
	char buf[4096];
	int nr = 0;
	ssize_t n, i;

	for (;;) {
		n = recv(b->watch_fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return nr;
		if (n <= 0)
			return n < 0 ? -errno : -ECONNRESET;
		for (i = 0; i < n; i++)
			nr += buf[i] == '\n';
	}
}

static void destroy(struct ebbd_backend *be)
{
	struct backend_ebb *b = (struct backend_ebb *)be;

	if (!b)
		return;
	if (b->fd >= 0)
		close(b->fd);
	if (b->watch_fd >= 0)
		close(b->watch_fd);
	ebbd_agent_link_fini(&b->agent);
	free(b);
}

static const struct ebbd_backend_ops ebb_ops = {
	.kind = "ebb",
	.observe = observe,
	.apply = apply,
	.renew = renew,
	.release = release,
	.destroy = destroy,
	.watch_open = watch_open,
	.watch_read = watch_read,
	.agent_fd = agent_fd,
	.agent_poll = agent_poll,
	.call = be_call,
};

int ebbd_backend_ebb_create(const struct ebbd_backend_ebb_cfg *cfg, struct ebbd_backend **out)
{
	struct backend_ebb *b;
	int fd;

	*out = NULL;
	fd = vmm_ctl_connect(cfg->rundir, cfg->name);
	if (fd < 0)
		return fd;
	b = calloc(1, sizeof(*b));
	if (!b) {
		close(fd);
		return -ENOMEM;
	}
	b->be.ops = &ebb_ops;
	b->cfg = *cfg;
	snprintf(b->name, sizeof(b->name), "%s", cfg->name);
	b->cfg.name = b->name;
	snprintf(b->rundir, sizeof(b->rundir), "%s", cfg->rundir);
	b->cfg.rundir = b->rundir;
	if (snprintf(b->agent_path, sizeof(b->agent_path), "%s/%s.agent", b->rundir,
		     b->name) >= (int)sizeof(b->agent_path))
		b->agent_path[0] = '\0';   /* too long for a unix socket anyway */
	ebbd_agent_link_init(&b->agent, b->name, &b->cfg.log);
	b->fd = fd;
	b->watch_fd = -1;
	*out = &b->be;
	return 0;
}
