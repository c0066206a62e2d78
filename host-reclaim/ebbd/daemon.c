/*
 * host-reclaim/ebbd/daemon.c — ebbd's loop (see ebbd.h): glue only; every
 * decision is the balancer's (host-reclaim/balancer.c).
 *
 * One round (a "tick"), on the event thread:
 *   1. observe the host (/proc/meminfo; ksmd's counters and settings);
 *   2. observe every VM through its backend (one `stats` call each); a VM
 *      whose connection broke leaves the pool;
 *   3. ebb_bal_step(); apply each action in the balancer's order through the
 *      VM's backend, log it with its reasons (the trace);
 *   4. renew leases that are half gone;
 *   5. sleep until the balancer's next_step_ns, at most tick_ms, or an event:
 *      discovery (a VM joined or left), a client's request.
 *
 * KSM: the settings found at start (run, pages_to_scan, sleep_millisecs)
 * are saved and written back by ebbd_destroy(); in between the balancer's
 * KSMD actions set them.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "client/ctl_server.h"
#include "client/discover.h"
#include "client/evloop.h"
#include "client/rundir.h"
#include "host-reclaim/ebbd/backend.h"
#include "host-reclaim/ebbd/ebbd.h"

#define MAX_ACTIONS 256u
#define RESCAN_TICKS 5u
#define EVENT_COALESCE_NS (20ull * 1000 * 1000)

struct ebbd_vm {
	struct ebbd_vm *next;
	uint64_t id;
	char name[EBB_BAL_NAME_MAX];
	struct ebbd_backend *be;
	struct ebbd *d;
	struct vmm_ev_watch *events;  /* the VM's event subscription */
	struct vmm_ev_watch *agent;   /* its agent channel, while ebbd holds it */
	int agent_fd;
	struct ebb_bal_vm_obs obs;
	bool obs_ok;
	bool gone;                    /* connection broke: removed after the round */
};

struct ksm_saved {
	bool valid;
	long run, pages_to_scan, sleep_ms;
};

struct ebbd {
	struct ebbd_cfg cfg;
	char rundir[256];
	char ksm_dir[256];
	struct vmm_evloop *loop;
	struct ebb_balancer *bal;
	struct ebb_discover *disc;
	struct vmm_ctl_server *srv;
	int timer_fd;
	int lock_fd;                   /* ebbd.lock: one ebbd per run dir */
	struct ebbd_vm *vms;
	uint64_t next_id;
	struct ksm_saved ksm;
	struct ebb_bal_vm_obs *obs;    /* scratch for a step */
	size_t obs_cap;
	struct ebb_bal_action acts[MAX_ACTIONS];
	struct ebbd_counters c;
	struct vmm_ratelimit rl;
	bool event_pending;            /* a step is armed because of a VM event */
};

/* ---- logging ----------------------------------------------------------------- */

static void bal_log(void *ctx, enum ebb_log_level level, const char *msg)
{
	struct ebbd *d = ctx;

	vmm_logf(&d->cfg.log, level == EBB_LOG_ERROR ? VMM_LOG_ERR : level == EBB_LOG_WARN ?
		 VMM_LOG_WARN : level == EBB_LOG_INFO ? VMM_LOG_INFO : VMM_LOG_DEBUG, "%s", msg);
}

/* ---- host observation -------------------------------------------------------- */

static uint64_t meminfo_kb(const char *buf, const char *key)
{
	const char *p = strstr(buf, key);

	return p ? strtoull(p + strlen(key), NULL, 10) : 0;
}

static int read_file(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	return 0;
}

static long ksm_get(struct ebbd *d, const char *file)
{
	char path[320], buf[64];

	snprintf(path, sizeof(path), "%s/%s", d->ksm_dir, file);
	if (read_file(path, buf, sizeof(buf)))
		return -1;
	return strtol(buf, NULL, 10);
}

static int ksm_put(struct ebbd *d, const char *file, long v)
{
	char path[320], buf[32];
	int fd, n, ret = 0;

	snprintf(path, sizeof(path), "%s/%s", d->ksm_dir, file);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = snprintf(buf, sizeof(buf), "%ld\n", v);
	if (write(fd, buf, (size_t)n) != n)
		ret = -errno;
	close(fd);
	return ret;
}

static void observe_host(struct ebbd *d, struct ebb_bal_host_obs *h, uint64_t vms_resident)
{
	char buf[4096];

	memset(h, 0, sizeof(*h));
	if (!read_file("/proc/meminfo", buf, sizeof(buf))) {
		h->mem_total_bytes = meminfo_kb(buf, "MemTotal:") * 1024;
		h->mem_available_bytes = meminfo_kb(buf, "MemAvailable:") * 1024;
	}
	/*
	 * vms_only: the budget is the VMs' alone.  The balancer derives the
	 * host's share when host_used_bytes is 0, so say "one byte" — nothing
	 * that moves a watermark.
	 */
	if (d->cfg.vms_only)
		h->host_used_bytes = 1;
	(void)vms_resident;
	if (d->ksm.valid) {
		long v;

		h->ksm_available = true;
		v = ksm_get(d, "pages_sharing");
		h->ksm_pages_sharing = v > 0 ? (uint64_t)v : 0;
		v = ksm_get(d, "pages_shared");
		h->ksm_pages_shared = v > 0 ? (uint64_t)v : 0;
		v = ksm_get(d, "pages_to_scan");
		h->ksm_pages_to_scan = v > 0 ? (uint32_t)v : 0;
		v = ksm_get(d, "sleep_millisecs");
		h->ksm_sleep_ms = v > 0 ? (uint32_t)v : 0;
		h->ksm_running = ksm_get(d, "run") == 1;
	}
}

static void ksm_save(struct ebbd *d)
{
	if (!d->ksm_dir[0])
		return;
	d->ksm.run = ksm_get(d, "run");
	d->ksm.pages_to_scan = ksm_get(d, "pages_to_scan");
	d->ksm.sleep_ms = ksm_get(d, "sleep_millisecs");
	d->ksm.valid = d->ksm.run >= 0 && d->ksm.pages_to_scan >= 0 && d->ksm.sleep_ms >= 0;
	if (d->ksm.valid)
		vmm_logf(&d->cfg.log, VMM_LOG_INFO, "ksm found at run=%ld pages_to_scan=%ld "
			 "sleep_millisecs=%ld (restored at exit)", d->ksm.run, d->ksm.pages_to_scan,
			 d->ksm.sleep_ms);
}

static void ksm_restore(struct ebbd *d)
{
	if (!d->ksm.valid)
		return;
	if (ksm_put(d, "pages_to_scan", d->ksm.pages_to_scan) ||
	    ksm_put(d, "sleep_millisecs", d->ksm.sleep_ms) || ksm_put(d, "run", d->ksm.run))
		vmm_logf(&d->cfg.log, VMM_LOG_WARN, "cannot restore the ksm settings in %s",
			 d->ksm_dir);
}

static int ksm_apply(struct ebbd *d, const struct ebb_bal_action *a)
{
	if (!d->ksm.valid)
		return -EOPNOTSUPP;
	if (!a->value)
		return ksm_put(d, "run", 0);
	if (ksm_put(d, "pages_to_scan", (long)a->value) ||
	    ksm_put(d, "sleep_millisecs", (long)a->value2))
		return -EIO;
	return ksm_put(d, "run", 1);
}

/* ---- VMs --------------------------------------------------------------------- */

static struct ebbd_vm *vm_by_name(struct ebbd *d, const char *name)
{
	struct ebbd_vm *vm;

	for (vm = d->vms; vm; vm = vm->next)
		if (strcmp(vm->name, name) == 0)
			return vm;
	return NULL;
}

static const char *name_of(struct ebbd *d, uint64_t id)
{
	struct ebbd_vm *vm;

	for (vm = d->vms; vm; vm = vm->next)
		if (vm->id == id)
			return vm->name;
	return NULL;
}

static void arm(struct ebbd *d, uint64_t delay_ns);

/* A VM's event (grow, at-max, lease-expired): step soon.  Events within
 * EVENT_COALESCE_NS of each other wake the balancer once. */
static void vm_event(void *opaque, uint32_t events)
{
	struct ebbd_vm *vm = opaque;
	struct ebbd *d = vm->d;
	int n = vm->be->ops->watch_read(vm->be);

	(void)events;
	if (n < 0) {
		/* The VM went away (or dropped us): observe() will tell. */
		vmm_evloop_del(d->loop, vm->events);
		vm->events = NULL;
		arm(d, 0);
		return;
	}
	if (n > 0) {
		d->c.nr_vm_events += (uint64_t)n;
		if (!d->event_pending) {
			d->event_pending = true;
			d->c.nr_event_wakeups++;
			arm(d, EVENT_COALESCE_NS);
		}
	}
}

/* The agent's pressure message: step at once (give memory back fast). */
static void agent_event(void *opaque, uint32_t events)
{
	struct ebbd_vm *vm = opaque;
	struct ebbd *d = vm->d;
	int n = vm->be->ops->agent_poll(vm->be);

	(void)events;
	if (n < 0) {
		vmm_evloop_del(d->loop, vm->agent);
		vm->agent = NULL;
		vm->agent_fd = -1;
		return;
	}
	if (n > 0) {
		d->c.nr_vm_events += (uint64_t)n;
		d->c.nr_event_wakeups++;
		d->event_pending = true;
		arm(d, 0);
	}
}

/* Follows the backend's agent channel into the loop after each observe. */
static void track_agent(struct ebbd *d, struct ebbd_vm *vm)
{
	int fd = vm->be->ops->agent_fd(vm->be);

	if (fd == vm->agent_fd)
		return;
	vmm_evloop_del(d->loop, vm->agent);
	vm->agent = NULL;
	vm->agent_fd = -1;
	if (fd >= 0 && !vmm_evloop_add(d->loop, fd, EPOLLIN, agent_event, vm, &vm->agent))
		vm->agent_fd = fd;
}

/* Puts a VM whose backend is ready into the pool. */
static void vm_add(struct ebbd *d, struct ebbd_vm *vm, const char *name)
{
	int ret;

	vm->id = ++d->next_id;
	vm->d = d;
	vm->agent_fd = -1;
	snprintf(vm->name, sizeof(vm->name), "%s", name);
	ret = vm->be->ops->watch_open(vm->be);
	if (ret != -EOPNOTSUPP &&
	    (ret < 0 || vmm_evloop_add(d->loop, ret, EPOLLIN, vm_event, vm, &vm->events)))
		vmm_logf(&d->cfg.log, VMM_LOG_INFO, "%s: no event subscription (%s): polled only",
			 name, ret < 0 ? strerror(-ret) : "event loop");
	vm->next = d->vms;
	d->vms = vm;
	d->c.nr_vms_joined++;
	vmm_logf(&d->cfg.log, VMM_LOG_INFO, "%s joins the pool (%s backend, id %llu)", name,
		 vm->be->ops->kind, (unsigned long long)vm->id);
}

static void on_join(void *opaque, const char *name)
{
	struct ebbd *d = opaque;
	struct ebbd_backend_ebb_cfg bc = {
		.rundir = d->rundir, .name = name, .call_timeout_ms = d->cfg.call_timeout_ms,
		.default_lease_ms = d->cfg.bal.lease_ms ? d->cfg.bal.lease_ms : 30000,
		.log = d->cfg.log,
	};
	struct ebbd_vm *vm;
	int ret;

	if (vm_by_name(d, name))
		return;
	vm = calloc(1, sizeof(*vm));
	if (!vm)
		return;
	ret = ebbd_backend_ebb_create(&bc, &vm->be);
	if (ret) {
		/* A socket left by a killed VMM (or one not listening yet): tried
		 * again by retry_joins(). */
		d->c.nr_vms_stale++;
		vmm_logf(&d->cfg.log, VMM_LOG_DEBUG, "%s: not joining: %s", name, strerror(-ret));
		free(vm);
		return;
	}
	vm_add(d, vm, name);
}

static void vm_free(struct ebbd_vm *vm)
{
	vmm_evloop_del(vm->d->loop, vm->events);
	vmm_evloop_del(vm->d->loop, vm->agent);
	vm->be->ops->destroy(vm->be);
	free(vm);
}

static void on_leave(void *opaque, const char *name)
{
	struct ebbd *d = opaque;
	struct ebbd_vm **pp, *vm;

	for (pp = &d->vms; (vm = *pp); pp = &vm->next) {
		if (strcmp(vm->name, name) == 0) {
			*pp = vm->next;
			d->c.nr_vms_left++;
			vmm_logf(&d->cfg.log, VMM_LOG_INFO, "%s leaves the pool", name);
			vm_free(vm);
			return;
		}
	}
}

static void reap_gone(struct ebbd *d)
{
	struct ebbd_vm **pp = &d->vms, *vm;

	while ((vm = *pp)) {
		if (!vm->gone) {
			pp = &vm->next;
			continue;
		}
		*pp = vm->next;
		d->c.nr_vms_left++;
		vmm_logf(&d->cfg.log, VMM_LOG_INFO, "%s leaves the pool (connection lost)", vm->name);
		vm_free(vm);
	}
}

/* Names whose socket is there but that are not in the pool (stale sockets,
 * a VMM not listening yet, one restarted under the same name) are tried
 * again on every discovery event and every RESCAN_TICKS ticks. */
static void retry_joins(struct ebbd *d)
{
	ebb_discover_foreach(d->disc, on_join, d);
}

/* ---- other backends (host-reclaim/libvirt/) ------------------------------------- */

int ebbd_vm_attach(struct ebbd *d, const char *name, struct ebbd_backend *be)
{
	struct ebbd_vm *vm;

	if (vm_by_name(d, name)) {
		be->ops->destroy(be);
		return -EEXIST;
	}
	vm = calloc(1, sizeof(*vm));
	if (!vm) {
		be->ops->destroy(be);
		return -ENOMEM;
	}
	vm->be = be;
	vm_add(d, vm, name);
	arm(d, 0);   /* the pool changed: step now */
	return 0;
}

int ebbd_vm_detach(struct ebbd *d, const char *name, const char *why)
{
	struct ebbd_vm **pp, *vm;

	for (pp = &d->vms; (vm = *pp); pp = &vm->next) {
		if (strcmp(vm->name, name) == 0) {
			*pp = vm->next;
			d->c.nr_vms_left++;
			vmm_logf(&d->cfg.log, VMM_LOG_INFO, "%s leaves the pool (%s)", name, why);
			vm_free(vm);
			arm(d, 0);
			return 0;
		}
	}
	return -ENOENT;
}

/* ---- the round ----------------------------------------------------------------- */

static void arm(struct ebbd *d, uint64_t delay_ns)
{
	struct itimerspec its = { 0 };

	if (delay_ns < 1000000)
		delay_ns = 1000000;
	its.it_value.tv_sec = (time_t)(delay_ns / 1000000000ull);
	its.it_value.tv_nsec = (long)(delay_ns % 1000000000ull);
	(void)timerfd_settime(d->timer_fd, 0, &its, NULL);
}

static void tick(struct ebbd *d)
{
	struct ebb_bal_host_obs host;
	struct ebb_bal_pool_state pool;
	struct ebbd_vm *vm;
	size_t n = 0, nr_acts = 0, i;
	uint64_t now = vmm_now_ns(), resident = 0, tick_ns;
	int ret;

	d->c.nr_ticks++;
	d->event_pending = false;
	if (d->c.nr_ticks % RESCAN_TICKS == 0) {
		(void)ebb_discover_rescan(d->disc);
		retry_joins(d);
	}
	for (vm = d->vms; vm; vm = vm->next)
		n++;
	if (n > d->obs_cap) {
		struct ebb_bal_vm_obs *o = realloc(d->obs, n * sizeof(*o));

		if (!o)
			return;
		d->obs = o;
		d->obs_cap = n;
	}
	n = 0;
	for (vm = d->vms; vm; vm = vm->next) {
		memset(&vm->obs, 0, sizeof(vm->obs));
		vm->obs.id = vm->id;
		snprintf(vm->obs.name, sizeof(vm->obs.name), "%s", vm->name);
		d->c.nr_calls++;
		ret = vm->be->ops->observe(vm->be, &vm->obs);
		vm->obs_ok = !ret;
		track_agent(d, vm);
		if (ret == -EPROTO) {
			d->c.nr_bad_vm_replies++;
			vmm_logf_rl(&d->cfg.log, &d->rl, VMM_LOG_WARN, "%s: bad stats reply", vm->name);
		} else if (ret) {
			d->c.nr_call_errors++;
			if (ret != -ETIMEDOUT)
				vm->gone = true;
		}
		if (vm->obs_ok) {
			d->obs[n++] = vm->obs;
			resident += vm->obs.resident_bytes;
		}
	}
	observe_host(d, &host, resident);
	ret = ebb_bal_step(d->bal, now, &host, d->obs, n, d->acts, MAX_ACTIONS, &nr_acts);
	if (ret)
		vmm_logf(&d->cfg.log, VMM_LOG_ERR, "balancer step: %s", strerror(-ret));
	for (i = 0; i < nr_acts; i++) {
		const struct ebb_bal_action *a = &d->acts[i];
		char line[512];

		(void)ebb_bal_format_action(a, name_of(d, a->vm_id), line, sizeof(line));
		if (a->kind == EBB_BAL_ACT_KSMD) {
			ret = ksm_apply(d, a);
		} else if (a->vm_index < n) {
			vm = vm_by_name(d, d->obs[a->vm_index].name);
			ret = vm ? vm->be->ops->apply(vm->be, a, now) : -ENOENT;
		} else {
			ret = -EINVAL;
		}
		if (!ret)
			d->c.nr_actions_applied++;
		else if (ret == -EOPNOTSUPP)
			d->c.nr_actions_unsupported++;
		else
			d->c.nr_actions_failed++;
		vmm_logf(&d->cfg.log, VMM_LOG_INFO, "%s%s%s", line, ret ? " -> " : "",
			 ret ? strerror(-ret) : "");
	}
	for (vm = d->vms; vm; vm = vm->next)
		if (!vm->gone)
			d->c.nr_lease_renewals += (uint64_t)vm->be->ops->renew(vm->be, now);
	reap_gone(d);
	ebb_bal_get_pool(d->bal, &pool);
	tick_ns = (uint64_t)d->cfg.tick_ms * 1000000ull;
	now = vmm_now_ns();
	if (pool.next_step_ns > now && pool.next_step_ns - now < tick_ns)
		tick_ns = pool.next_step_ns - now;
	arm(d, tick_ns);
}

static void timer_event(void *opaque, uint32_t events)
{
	struct ebbd *d = opaque;
	uint64_t n;

	(void)events;
	if (read(d->timer_fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		return;
	tick(d);
}

static void discover_event(void *opaque, uint32_t events)
{
	struct ebbd *d = opaque;
	struct ebbd_vm *vm;
	unsigned nr_before = 0, nr_after = 0;

	(void)events;
	for (vm = d->vms; vm; vm = vm->next)
		nr_before++;
	(void)ebb_discover_process(d->disc);
	retry_joins(d);
	for (vm = d->vms; vm; vm = vm->next)
		nr_after++;
	if (nr_before != nr_after)
		arm(d, 0);    /* the pool changed: step now */
}

/* ---- control socket -------------------------------------------------------------- */

#define ADD_U64(o, k, v) json_object_object_add(o, k, json_object_new_int64((int64_t)(v)))

static struct json_object *pool_object(struct ebbd *d)
{
	struct ebb_bal_pool_state p;
	struct json_object *o = json_object_new_object(), *s;
	unsigned i;

	if (!o)
		return NULL;
	ebb_bal_get_pool(d->bal, &p);
	json_object_object_add(o, "policy", json_object_new_string(ebb_bal_policy_name(p.policy)));
	json_object_object_add(o, "state", json_object_new_string(ebb_bal_state_name(p.state)));
	json_object_object_add(o, "priority", json_object_new_int(p.priority));
	ADD_U64(o, "budget_bytes", p.budget_bytes);
	ADD_U64(o, "used_bytes", p.used_bytes);
	ADD_U64(o, "free_bytes", p.free_bytes);
	ADD_U64(o, "wmark_min_bytes", p.wmark_min_bytes);
	ADD_U64(o, "wmark_low_bytes", p.wmark_low_bytes);
	ADD_U64(o, "wmark_high_bytes", p.wmark_high_bytes);
	ADD_U64(o, "boost_bytes", p.boost_bytes);
	ADD_U64(o, "nr_vms", p.nr_vms);
	ADD_U64(o, "ksm_yield_pages_per_cpu_s", p.ksm_yield_pages_per_cpu_s);
	s = json_object_new_object();
	if (s) {
		ADD_U64(s, "nr_steps", p.stats.nr_steps);
		ADD_U64(s, "nr_actions", p.stats.nr_actions);
		ADD_U64(s, "nr_wakeups", p.stats.nr_wakeups);
		ADD_U64(s, "nr_direct", p.stats.nr_direct);
		ADD_U64(s, "nr_clamps", p.stats.nr_clamps);
		ADD_U64(s, "nr_lifts", p.stats.nr_lifts);
		ADD_U64(s, "nr_pressure", p.stats.nr_pressure);
		ADD_U64(s, "nr_stuck", p.stats.nr_stuck);
		for (i = 0; i < EBB_BAL_NR_SOURCES; i++) {
			char key[64];

			snprintf(key, sizeof(key), "reclaimed_%s_bytes",
				 ebb_bal_source_name((enum ebb_bal_source)i));
			ADD_U64(s, key, p.stats.reclaimed_bytes[i]);
		}
		ADD_U64(s, "nr_bad_vm_obs", p.stats.nr_bad_vm_obs);
		ADD_U64(s, "nr_bad_host_obs", p.stats.nr_bad_host_obs);
		json_object_object_add(o, "balancer", s);
	}
	s = json_object_new_object();
	if (s) {
		ADD_U64(s, "nr_ticks", d->c.nr_ticks);
		ADD_U64(s, "nr_vms_joined", d->c.nr_vms_joined);
		ADD_U64(s, "nr_vms_left", d->c.nr_vms_left);
		ADD_U64(s, "nr_vms_stale", d->c.nr_vms_stale);
		ADD_U64(s, "nr_calls", d->c.nr_calls);
		ADD_U64(s, "nr_call_errors", d->c.nr_call_errors);
		ADD_U64(s, "nr_actions_applied", d->c.nr_actions_applied);
		ADD_U64(s, "nr_actions_failed", d->c.nr_actions_failed);
		ADD_U64(s, "nr_actions_unsupported", d->c.nr_actions_unsupported);
		ADD_U64(s, "nr_lease_renewals", d->c.nr_lease_renewals);
		ADD_U64(s, "nr_bad_vm_replies", d->c.nr_bad_vm_replies);
		ADD_U64(s, "nr_vm_events", d->c.nr_vm_events);
		ADD_U64(s, "nr_event_wakeups", d->c.nr_event_wakeups);
		json_object_object_add(o, "daemon", s);
	}
	return o;
}

static struct json_object *vms_object(struct ebbd *d)
{
	struct json_object *arr = json_object_new_array(), *o;
	struct ebb_bal_vm_state st;
	struct ebbd_vm *vm;

	if (!arr)
		return NULL;
	for (vm = d->vms; vm; vm = vm->next) {
		o = json_object_new_object();
		if (!o)
			break;
		json_object_object_add(o, "name", json_object_new_string(vm->name));
		ADD_U64(o, "id", vm->id);
		json_object_object_add(o, "backend", json_object_new_string(vm->be->ops->kind));
		json_object_object_add(o, "observed", json_object_new_boolean(vm->obs_ok));
		json_object_object_add(o, "agent", json_object_new_boolean(vm->obs.agent_present));
		ADD_U64(o, "agent_free_bytes", vm->obs.agent_free_bytes);
		ADD_U64(o, "agent_cache_bytes", vm->obs.agent_cache_bytes);
		ADD_U64(o, "agent_nr_pressure", vm->obs.agent_nr_pressure);
		ADD_U64(o, "guest_bytes", vm->obs.guest_bytes);
		ADD_U64(o, "resident_bytes", vm->obs.resident_bytes);
		ADD_U64(o, "min_bytes", vm->obs.cfg.min_bytes);
		ADD_U64(o, "low_bytes", vm->obs.cfg.low_bytes);
		ADD_U64(o, "weight", vm->obs.cfg.weight);
		json_object_object_add(o, "high_bytes", vm->obs.cur_high_bytes == EBB_BAL_NO_LIMIT ?
				       NULL : json_object_new_int64((int64_t)vm->obs.cur_high_bytes));
		json_object_object_add(o, "max_bytes", vm->obs.cur_max_bytes == EBB_BAL_NO_LIMIT ?
				       NULL : json_object_new_int64((int64_t)vm->obs.cur_max_bytes));
		json_object_object_add(o, "clamped", json_object_new_boolean(vm->obs.max_clamped));
		ADD_U64(o, "balloon_actual_bytes", vm->obs.balloon_actual_bytes);
		ADD_U64(o, "balloon_target_bytes", vm->obs.balloon_target_bytes);
		ADD_U64(o, "nr_refaults", vm->obs.nr_refaults);
		if (!ebb_bal_get_vm(d->bal, vm->id, &st)) {
			ADD_U64(o, "ws_estimate_bytes", st.ws_estimate_bytes);
			ADD_U64(o, "idle_bytes", st.idle_bytes);
			json_object_object_add(o, "refault_rate_per_s",
					       json_object_new_double(st.refault_rate_per_s));
		}
		json_object_array_add(arr, o);
	}
	o = json_object_new_object();
	if (o)
		json_object_object_add(o, "vms", arr);
	else
		json_object_put(arr);
	return o;
}

static struct json_object *trace_object(struct ebbd *d, uint64_t max)
{
	struct ebb_bal_action *acts;
	struct json_object *arr, *o;
	size_t n, i;

	if (!max || max > EBB_BAL_TRACE_LEN)
		max = EBB_BAL_TRACE_LEN;
	acts = calloc(max, sizeof(*acts));
	arr = json_object_new_array();
	if (!acts || !arr) {
		free(acts);
		json_object_put(arr);
		return NULL;
	}
	n = ebb_bal_trace(d->bal, acts, max);
	for (i = 0; i < n; i++) {
		const char *name = name_of(d, acts[i].vm_id);
		char line[512];
		struct json_object *e = json_object_new_object();

		if (!e)
			break;
		(void)ebb_bal_format_action(&acts[i], name, line, sizeof(line));
		ADD_U64(e, "at_ms", acts[i].at_ns / 1000000);
		json_object_object_add(e, "vm", name ? json_object_new_string(name) : NULL);
		json_object_object_add(e, "action",
				       json_object_new_string(ebb_bal_action_name(acts[i].kind)));
		ADD_U64(e, "value", acts[i].value);
		json_object_object_add(e, "reason",
				       json_object_new_string(ebb_bal_reason_name(acts[i].why.reason)));
		json_object_object_add(e, "line", json_object_new_string(line));
		json_object_array_add(arr, e);
	}
	free(acts);
	o = json_object_new_object();
	if (o)
		json_object_object_add(o, "trace", arr);
	else
		json_object_put(arr);
	return o;
}

/* CLIENT: {"name": VM, ...the VM's set arguments} forwarded to that VM. */
static enum vmm_ctl_err ctl_set(struct ebbd *d, struct json_object *args,
				struct json_object **result, char *msg, size_t msg_len)
{
	struct json_object *name, *fwd;
	struct ebbd_vm *vm;
	int ret;

	if (!args || !json_object_object_get_ex(args, "name", &name) ||
	    !json_object_is_type(name, json_type_string)) {
		snprintf(msg, msg_len, "set needs \"name\": the VM's name");
		return VMM_CTL_ERR_INVALID;
	}
	vm = vm_by_name(d, json_object_get_string(name));
	if (!vm) {
		snprintf(msg, msg_len, "no VM \"%.64s\" in the pool", json_object_get_string(name));
		return VMM_CTL_ERR_INVALID;
	}
	fwd = json_object_new_object();
	if (!fwd)
		return VMM_CTL_ERR_INTERNAL;
	{
		struct json_object_iterator it = json_object_iter_begin(args);
		struct json_object_iterator end = json_object_iter_end(args);

		for (; !json_object_iter_equal(&it, &end); json_object_iter_next(&it))
			if (strcmp(json_object_iter_peek_name(&it), "name") != 0)
				json_object_object_add(fwd, json_object_iter_peek_name(&it),
						       json_object_get(json_object_iter_peek_value(&it)));
	}
	ret = vm->be->ops->call(vm->be, "set", fwd, result, msg, msg_len);
	json_object_put(fwd);
	if (ret)
		return ret == -EINVAL ? VMM_CTL_ERR_INVALID : VMM_CTL_ERR_STATE;
	arm(d, 0);   /* settings changed: step now */
	return VMM_CTL_OK;
}

static enum vmm_ctl_err ctl_handler(void *opaque, const struct vmm_ctl_request *req,
				    struct json_object **result, char *msg, size_t msg_len)
{
	struct ebbd *d = opaque;
	struct json_object *v;
	uint64_t n = 0;
	bool have;

	d->c.nr_ctl_requests++;
	switch (req->cmd) {
	case VMM_CTL_CMD_POOL:
		*result = pool_object(d);
		break;
	case VMM_CTL_CMD_VMS:
		*result = vms_object(d);
		break;
	case VMM_CTL_CMD_TRACE:
		if (vmm_ctl_arg_uint(req->args, "last", &n, &have)) {
			snprintf(msg, msg_len, "\"last\" must be a non-negative integer");
			return VMM_CTL_ERR_INVALID;
		}
		*result = trace_object(d, n);
		break;
	case VMM_CTL_CMD_SET:
		return ctl_set(d, req->args, result, msg, msg_len);
	case VMM_CTL_CMD_POLICY:
		if (req->args && json_object_object_get_ex(req->args, "policy", &v)) {
			enum ebb_bal_policy p;

			if (!json_object_is_type(v, json_type_string) ||
			    ebb_bal_policy_parse(json_object_get_string(v), &p) ||
			    ebb_bal_set_policy(d->bal, p)) {
				snprintf(msg, msg_len, "policy is one of ebb, mom, static");
				return VMM_CTL_ERR_INVALID;
			}
			vmm_logf(&d->cfg.log, VMM_LOG_INFO, "policy now %s", ebb_bal_policy_name(p));
			arm(d, 0);
		}
		*result = pool_object(d);
		break;
	case VMM_CTL_CMD_VERSION:
		*result = json_object_new_object();
		if (*result) {
			json_object_object_add(*result, "daemon", json_object_new_string("ebbd"));
			json_object_object_add(*result, "protocol",
					       json_object_new_int(VMM_CTL_PROTOCOL_VERSION));
		}
		break;
	default:
		snprintf(msg, msg_len, "ebbd serves pool, vms, set, policy, trace, version");
		return VMM_CTL_ERR_UNKNOWN_CMD;
	}
	if (!*result) {
		snprintf(msg, msg_len, "out of memory");
		return VMM_CTL_ERR_INTERNAL;
	}
	return VMM_CTL_OK;
}

/* ---- lifetime -------------------------------------------------------------------- */

int ebbd_create(const struct ebbd_cfg *cfg, struct ebbd **out, char *err, size_t err_len)
{
	struct ebbd *d = calloc(1, sizeof(*d));
	char path[320];
	int ret;

	*out = NULL;
	if (!d)
		return -ENOMEM;
	d->cfg = *cfg;
	d->timer_fd = -1;
	d->lock_fd = -1;
	if (!d->cfg.tick_ms)
		d->cfg.tick_ms = EBBD_DEFAULT_TICK_MS;
	if (!d->cfg.call_timeout_ms)
		d->cfg.call_timeout_ms = EBBD_DEFAULT_CALL_TIMEOUT_MS;
	snprintf(d->ksm_dir, sizeof(d->ksm_dir), "%s", cfg->ksm_dir ? cfg->ksm_dir : EBBD_KSM_DIR);
	if (cfg->rundir)
		snprintf(d->rundir, sizeof(d->rundir), "%s", cfg->rundir);
	else if ((ret = vmm_rundir(d->rundir, sizeof(d->rundir), true))) {
		snprintf(err, err_len, "no runtime directory: %s", strerror(-ret));
		goto fail;
	}
	d->cfg.rundir = d->rundir;
	d->lock_fd = vmm_name_lock(d->rundir, "ebbd");
	if (d->lock_fd < 0) {
		ret = d->lock_fd;
		snprintf(err, err_len, ret == -EBUSY ? "another ebbd already runs on %s" :
			 "cannot lock %s/ebbd.lock: %s", d->rundir, strerror(-ret));
		goto fail;
	}
	d->cfg.bal.log = bal_log;
	d->cfg.bal.log_ctx = d;
	ret = ebb_bal_create(&d->cfg.bal, &d->bal);
	if (ret) {
		snprintf(err, err_len, "balancer: %s (check --budget and the watermarks)",
			 strerror(-ret));
		goto fail;
	}
	ret = vmm_evloop_create(&d->loop);
	if (ret) {
		snprintf(err, err_len, "event loop: %s", strerror(-ret));
		goto fail;
	}
	d->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	if (d->timer_fd < 0 ||
	    (ret = vmm_evloop_add(d->loop, d->timer_fd, EPOLLIN, timer_event, d, NULL))) {
		ret = d->timer_fd < 0 ? -errno : ret;
		snprintf(err, err_len, "timer: %s", strerror(-ret));
		goto fail;
	}
	ksm_save(d);
	{
		struct ebb_discover_cfg dc = {
			.rundir = d->rundir, .on_join = on_join, .on_leave = on_leave, .opaque = d,
			.log = cfg->log,
		};

		ret = ebb_discover_create(&dc, &d->disc);
		if (ret) {
			snprintf(err, err_len, "cannot watch the runtime directory %s: %s",
				 d->rundir, strerror(-ret));
			goto fail;
		}
		ret = vmm_evloop_add(d->loop, ebb_discover_fd(d->disc), EPOLLIN, discover_event, d,
				     NULL);
		if (ret)
			goto fail;
	}
	{
		struct vmm_ctl_server_cfg sc = {
			.path = path, .loop = d->loop, .handler = ctl_handler, .opaque = d,
			.log = cfg->log,
		};

		snprintf(path, sizeof(path), "%s/%s", d->rundir, EBBD_SOCK_NAME);
		ret = vmm_ctl_server_create(&sc, &d->srv);
		if (ret) {
			snprintf(err, err_len, "cannot serve %s: %s", path, strerror(-ret));
			goto fail;
		}
	}
	arm(d, 0);
	*out = d;
	return 0;
fail:
	ebbd_destroy(d);
	return ret;
}

int ebbd_run(struct ebbd *d)
{
	return vmm_evloop_run(d->loop);
}

int ebbd_run_once(struct ebbd *d, int timeout_ms)
{
	return vmm_evloop_run_once(d->loop, timeout_ms);
}

void ebbd_stop(struct ebbd *d)
{
	vmm_evloop_stop(d->loop);
}

int ebbd_add_fd(struct ebbd *d, int fd, void (*fn)(void *opaque, uint32_t events), void *opaque)
{
	return vmm_evloop_add(d->loop, fd, EPOLLIN, fn, opaque, NULL);
}

void ebbd_get_counters(const struct ebbd *d, struct ebbd_counters *out)
{
	*out = d->c;
}

void ebbd_destroy(struct ebbd *d)
{
	struct ebbd_vm *vm;

	if (!d)
		return;
	vmm_ctl_server_destroy(d->srv);
	while ((vm = d->vms)) {
		d->vms = vm->next;
		vm->be->ops->release(vm->be);   /* a clean exit lifts its clamps */
		vm_free(vm);
	}
	ksm_restore(d);
	ebb_discover_destroy(d->disc);
	if (d->timer_fd >= 0)
		close(d->timer_fd);
	vmm_evloop_destroy(d->loop);
	ebb_bal_destroy(d->bal);
	if (d->lock_fd >= 0)
		close(d->lock_fd);
	free(d->obs);
	free(d);
}
