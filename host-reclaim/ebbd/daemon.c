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
#include <pthread.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "base/page.h"
#include "client/ctl_server.h"
#include "client/discover.h"
#include "client/evloop.h"
#include "client/rundir.h"
#include "host-reclaim/ebbd/backend.h"
#include "host-reclaim/ebbd/ebbd.h"
#include "host-reclaim/ebbd/metrics.h"

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
	bool have_last;               /* the last action applied to it (top, metrics) */
	enum ebb_bal_action_kind last_kind;
	enum ebb_bal_reason last_reason;
	uint64_t last_unix_ms;
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
	struct ebb_ratelimit rl;
	bool event_pending;            /* a step is armed because of a VM event */
	struct ebb_bal_host_obs host;  /* the last host observation */
	uint64_t decisions[EBB_BAL_NR_ACTIONS][EBB_BAL_NR_REASONS];
	uint64_t nr_reloads, nr_reload_failures;
	struct ebbd_vm_rule *rules;    /* the configuration's [vm NAME] sections (owned) */
	/* The metrics text of the last round: written by the event thread,
	 * copied out by any thread (the HTTP server) under metrics_lock. */
	pthread_mutex_t metrics_lock;
	char *metrics_text;
	size_t metrics_len;
};

/* ---- logging ----------------------------------------------------------------- */

static void bal_log(void *ctx, enum ebb_log_level level, const char *msg)
{
	struct ebbd *d = ctx;

	vmm_logf(&d->cfg.log, level == EBB_LOG_ERROR ? EBB_LOG_ERROR : level == EBB_LOG_WARN ?
		 EBB_LOG_WARN : level == EBB_LOG_INFO ? EBB_LOG_INFO : EBB_LOG_DEBUG, "%s", msg);
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
		vmm_logf(&d->cfg.log, EBB_LOG_INFO, "ksm found at run=%ld pages_to_scan=%ld "
			 "sleep_millisecs=%ld (restored at exit)", d->ksm.run, d->ksm.pages_to_scan,
			 d->ksm.sleep_ms);
}

static void ksm_restore(struct ebbd *d)
{
	if (!d->ksm.valid)
		return;
	if (ksm_put(d, "pages_to_scan", d->ksm.pages_to_scan) ||
	    ksm_put(d, "sleep_millisecs", d->ksm.sleep_ms) || ksm_put(d, "run", d->ksm.run))
		vmm_logf(&d->cfg.log, EBB_LOG_WARN, "cannot restore the ksm settings in %s",
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

/* The configuration's settings for VM @name: the [vm] defaults, then its
 * own [vm NAME] section over them. */
static void vm_settings(const struct ebbd *d, const char *name, struct ebbd_vm_settings *out)
{
	const struct ebbd_vm_settings *r = NULL;
	size_t i;

	*out = d->cfg.vm_default;
	for (i = 0; i < d->cfg.nr_vm_rules; i++)
		if (!strcmp(d->rules[i].name, name))
			r = &d->rules[i].s;
	if (!r)
		return;
	if (r->has_min) {
		out->has_min = true;
		out->min_bytes = r->min_bytes;
	}
	if (r->has_low) {
		out->has_low = true;
		out->low_bytes = r->low_bytes;
	}
	if (r->has_weight) {
		out->has_weight = true;
		out->weight = r->weight;
	}
	if (r->has_ksm_allowed) {
		out->has_ksm_allowed = true;
		out->ksm_allowed = r->ksm_allowed;
	}
	if (r->has_opt_out) {
		out->has_opt_out = true;
		out->opt_out = r->opt_out;
	}
}

uint64_t ebbd_config_generation(const struct ebbd *d)
{
	return d->nr_reloads;
}

bool ebbd_vm_opted_out(const struct ebbd *d, const char *name)
{
	struct ebbd_vm_settings s;

	vm_settings(d, name, &s);
	return s.has_opt_out && s.opt_out;
}

/* Sends the configured min, low and weight to the VM (`set`); a refusal
 * (min above the guest's RAM, say) is logged and the VM keeps its own. */
static void vm_configure(struct ebbd *d, struct ebbd_vm *vm)
{
	struct ebbd_vm_settings s;
	struct json_object *args, *res = NULL;
	char msg[256] = "";
	int ret;

	vm_settings(d, vm->name, &s);
	if (!s.has_min && !s.has_low && !s.has_weight)
		return;
	args = json_object_new_object();
	if (!args)
		return;
	if (s.has_min)
		json_object_object_add(args, "min_bytes", json_object_new_int64((int64_t)s.min_bytes));
	if (s.has_low)
		json_object_object_add(args, "low_bytes", json_object_new_int64((int64_t)s.low_bytes));
	if (s.has_weight)
		json_object_object_add(args, "weight", json_object_new_int64(s.weight));
	ret = vm->be->ops->call(vm->be, "set", args, &res, msg, sizeof(msg));
	json_object_put(args);
	json_object_put(res);
	if (ret)
		vmm_logf(&d->cfg.log, EBB_LOG_WARN, "%s: the configured settings were refused: %s",
			 vm->name, msg[0] ? msg : strerror(-ret));
	else
		vmm_logf(&d->cfg.log, EBB_LOG_INFO, "%s: configured settings sent", vm->name);
}

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
		vmm_logf(&d->cfg.log, EBB_LOG_INFO, "%s: no event subscription (%s): polled only",
			 name, ret < 0 ? strerror(-ret) : "event loop");
	vm->next = d->vms;
	d->vms = vm;
	d->c.nr_vms_joined++;
	vmm_logf(&d->cfg.log, EBB_LOG_INFO, "%s joins the pool (%s backend, id %llu)", name,
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

	if (vm_by_name(d, name) || ebbd_vm_opted_out(d, name))
		return;   /* (opted out: tried again after a reload) */
	vm = calloc(1, sizeof(*vm));
	if (!vm)
		return;
	ret = ebbd_backend_ebb_create(&bc, &vm->be);
	if (ret) {
		/* A socket left by a killed VMM (or one not listening yet): tried
		 * again by retry_joins(). */
		d->c.nr_vms_stale++;
		vmm_logf(&d->cfg.log, EBB_LOG_DEBUG, "%s: not joining: %s", name, strerror(-ret));
		free(vm);
		return;
	}
	vm_add(d, vm, name);
	vm_configure(d, vm);
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
			vmm_logf(&d->cfg.log, EBB_LOG_INFO, "%s leaves the pool", name);
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
		vmm_logf(&d->cfg.log, EBB_LOG_INFO, "%s leaves the pool (connection lost)", vm->name);
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
	if (ebbd_vm_opted_out(d, name)) {
		be->ops->destroy(be);
		return -EPERM;
	}
	vm = calloc(1, sizeof(*vm));
	if (!vm) {
		be->ops->destroy(be);
		return -ENOMEM;
	}
	vm->be = be;
	vm_add(d, vm, name);
	vm_configure(d, vm);
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
			vmm_logf(&d->cfg.log, EBB_LOG_INFO, "%s leaves the pool (%s)", name, why);
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

static uint64_t unix_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Renders this round's figures and publishes them for ebbd_metrics_copy(). */
static void render_metrics(struct ebbd *d)
{
	struct ebb_bal_pool_state pool;
	struct ebbd_metrics_buf buf = { 0 };
	struct ebbd_metrics_in in = { 0 };
	struct ebbd_metrics_vm *mv;
	struct ebbd_vm *vm;
	size_t n = 0;
	char *old;

	for (vm = d->vms; vm; vm = vm->next)
		n++;
	mv = calloc(n ? n : 1, sizeof(*mv));
	if (!mv)
		return;
	n = 0;
	for (vm = d->vms; vm; vm = vm->next, n++) {
		mv[n].name = vm->name;
		mv[n].observed = vm->obs_ok;
		mv[n].obs = &vm->obs;
		mv[n].have_state = !ebb_bal_get_vm(d->bal, vm->id, &mv[n].st);
		mv[n].have_last = vm->have_last;
		mv[n].last_kind = vm->last_kind;
		mv[n].last_reason = vm->last_reason;
		mv[n].last_unix_ms = vm->last_unix_ms;
	}
	ebb_bal_get_pool(d->bal, &pool);
	in.pool = &pool;
	in.c = &d->c;
	in.decisions = (const uint64_t (*)[EBB_BAL_NR_REASONS])d->decisions;
	in.vms = mv;
	in.nr_vms = n;
	in.mem_total_bytes = d->host.mem_total_bytes;
	in.mem_available_bytes = d->host.mem_available_bytes;
	in.ksm_pages_sharing = d->host.ksm_pages_sharing;
	in.page_bytes = EBB_PAGE_SIZE;
	in.config_reloads = d->nr_reloads;
	in.config_reload_failures = d->nr_reload_failures;
	if (ebbd_metrics_render(&in, &buf)) {
		vmm_logf_rl(&d->cfg.log, &d->rl, EBB_LOG_WARN, "metrics: out of memory");
		ebbd_metrics_buf_release(&buf);
		free(mv);
		return;
	}
	free(mv);
	pthread_mutex_lock(&d->metrics_lock);
	old = d->metrics_text;
	d->metrics_text = buf.text;
	d->metrics_len = buf.len;
	pthread_mutex_unlock(&d->metrics_lock);
	free(old);
}

static void tick(struct ebbd *d)
{
	struct ebb_bal_host_obs host;
	struct ebb_bal_pool_state pool;
	struct ebbd_vm *vm;
	size_t n = 0, nr_acts = 0, i;
	uint64_t now, resident = 0, tick_ns;
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
		{
			struct ebbd_vm_settings vs;

			/* the operator's KSM opt-in is ebbd's own setting */
			vm_settings(d, vm->name, &vs);
			vm->obs.cfg.ksm_allowed = vs.has_ksm_allowed && vs.ksm_allowed;
		}
		track_agent(d, vm);
		if (ret == -EPROTO || ret == -EMSGSIZE) {
			d->c.nr_bad_vm_replies++;
			vmm_logf_rl(&d->cfg.log, &d->rl, EBB_LOG_WARN, "%s: bad stats reply", vm->name);
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
	d->host = host;
	/* the step's time is when its observations are complete: an agent
	 * report that came in while the VMs were asked is not from the future */
	now = vmm_now_ns();
	ret = ebb_bal_step(d->bal, now, &host, d->obs, n, d->acts, MAX_ACTIONS, &nr_acts);
	if (ret)
		vmm_logf(&d->cfg.log, EBB_LOG_ERROR, "balancer step: %s", strerror(-ret));
	for (i = 0; i < nr_acts; i++) {
		const struct ebb_bal_action *a = &d->acts[i];
		char line[512];

		(void)ebb_bal_format_action(a, name_of(d, a->vm_id), line, sizeof(line));
		if ((unsigned)a->kind < EBB_BAL_NR_ACTIONS && (unsigned)a->why.reason < EBB_BAL_NR_REASONS)
			d->decisions[a->kind][a->why.reason]++;
		if (a->kind == EBB_BAL_ACT_KSMD) {
			ret = ksm_apply(d, a);
		} else if (a->vm_index < n) {
			vm = vm_by_name(d, d->obs[a->vm_index].name);
			ret = vm ? vm->be->ops->apply(vm->be, a, now) : -ENOENT;
			if (vm && !ret) {
				vm->have_last = true;
				vm->last_kind = a->kind;
				vm->last_reason = a->why.reason;
				vm->last_unix_ms = unix_ms();
			}
		} else {
			ret = -EINVAL;
		}
		if (!ret)
			d->c.nr_actions_applied++;
		else if (ret == -EOPNOTSUPP)
			d->c.nr_actions_unsupported++;
		else
			d->c.nr_actions_failed++;
		vmm_logf(&d->cfg.log, EBB_LOG_INFO, "%s%s%s", line, ret ? " -> " : "",
			 ret ? strerror(-ret) : "");
	}
	for (vm = d->vms; vm; vm = vm->next)
		if (!vm->gone)
			d->c.nr_lease_renewals += (uint64_t)vm->be->ops->renew(vm->be, now);
	reap_gone(d);
	render_metrics(d);
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
		json_object_object_add(o, "agent_channel",
				       json_object_new_boolean(vm->obs.caps & EBB_BAL_CAP_AGENT));
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
		ADD_U64(o, "nr_swapins", vm->obs.nr_swapins);
		ADD_U64(o, "compressed_bytes", vm->obs.compressed_bytes);
		ADD_U64(o, "swapped_compressed_bytes", vm->obs.swapped_compressed_bytes);
		ADD_U64(o, "swapped_file_bytes", vm->obs.swapped_file_bytes);
		ADD_U64(o, "ksm_merging_bytes", vm->obs.ksm_merging_pages * EBB_PAGE_BYTES);
		json_object_object_add(o, "ksm_advised", json_object_new_boolean(vm->obs.ksm_advised));
		if (vm->obs.high_via)
			json_object_object_add(o, "high_via",
					       json_object_new_string(vm->obs.high_via));
		ADD_U64(o, "psi_some_us", vm->obs.psi_some_ns_total / 1000);
		ADD_U64(o, "psi_full_us", vm->obs.psi_full_ns_total / 1000);
		if (vm->have_last) {
			json_object_object_add(o, "last_action",
					       json_object_new_string(ebb_bal_action_name(vm->last_kind)));
			json_object_object_add(o, "last_reason",
					       json_object_new_string(ebb_bal_reason_name(vm->last_reason)));
			ADD_U64(o, "last_action_unix_ms", vm->last_unix_ms);
		}
		if (!ebb_bal_get_vm(d->bal, vm->id, &st)) {
			ADD_U64(o, "ws_estimate_bytes", st.ws_estimate_bytes);
			ADD_U64(o, "idle_bytes", st.idle_bytes);
			ADD_U64(o, "cold_bytes", st.cold_bytes);
			json_object_object_add(o, "refault_rate_per_s",
					       json_object_new_double(st.refault_rate_per_s));
			ADD_U64(o, "grow_bytes_per_s", (uint64_t)st.grow_rate_bytes_per_s);
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

/* The ebbd of a command's handler, counting the request. */
static struct ebbd *ctl_served(void *opaque)
{
	struct ebbd *d = opaque;

	d->c.nr_ctl_requests++;
	return d;
}

static enum vmm_ctl_err ctl_pool(void *opaque, const struct vmm_ctl_request *req,
				 struct json_object **result, char *msg, size_t msg_len)
{
	return vmm_ctl_result(pool_object(ctl_served(opaque)), result, msg, msg_len);
}

static enum vmm_ctl_err ctl_vms(void *opaque, const struct vmm_ctl_request *req,
				struct json_object **result, char *msg, size_t msg_len)
{
	return vmm_ctl_result(vms_object(ctl_served(opaque)), result, msg, msg_len);
}

static enum vmm_ctl_err ctl_trace(void *opaque, const struct vmm_ctl_request *req,
				  struct json_object **result, char *msg, size_t msg_len)
{
	struct ebbd *d = ctl_served(opaque);
	uint64_t n = 0;
	bool have;

	if (vmm_ctl_arg_uint(req->args, "last", &n, &have)) {
		snprintf(msg, msg_len, "\"last\" must be a non-negative integer");
		return VMM_CTL_ERR_INVALID;
	}
	return vmm_ctl_result(trace_object(d, n), result, msg, msg_len);
}

static enum vmm_ctl_err ctl_set_cmd(void *opaque, const struct vmm_ctl_request *req,
				    struct json_object **result, char *msg, size_t msg_len)
{
	return ctl_set(ctl_served(opaque), req->args, result, msg, msg_len);
}

static enum vmm_ctl_err ctl_policy(void *opaque, const struct vmm_ctl_request *req,
				   struct json_object **result, char *msg, size_t msg_len)
{
	struct ebbd *d = ctl_served(opaque);
	struct json_object *v;

	if (req->args && json_object_object_get_ex(req->args, "policy", &v)) {
		enum ebb_bal_policy p;

		if (!json_object_is_type(v, json_type_string) ||
		    ebb_bal_policy_parse(json_object_get_string(v), &p) ||
		    ebb_bal_set_policy(d->bal, p)) {
			snprintf(msg, msg_len, "policy is one of ebb, mom, static");
			return VMM_CTL_ERR_INVALID;
		}
		vmm_logf(&d->cfg.log, EBB_LOG_INFO, "policy now %s", ebb_bal_policy_name(p));
		arm(d, 0);
	}
	return vmm_ctl_result(pool_object(d), result, msg, msg_len);
}

static enum vmm_ctl_err ctl_version(void *opaque, const struct vmm_ctl_request *req,
				    struct json_object **result, char *msg, size_t msg_len)
{
	struct json_object *r = json_object_new_object();

	ctl_served(opaque);
	if (r) {
		json_object_object_add(r, "daemon", json_object_new_string("ebbd"));
		json_object_object_add(r, "protocol", json_object_new_int(VMM_CTL_PROTOCOL_VERSION));
	}
	return vmm_ctl_result(r, result, msg, msg_len);
}

/* The commands ebbd serves on ebbd.sock (docs/control-protocol.md). */
static int ctl_register(struct ebbd *d)
{
	static const struct vmm_ctl_command cmds[] = {
		{ "pool", ctl_pool },
		{ "vms", ctl_vms },
		{ "trace", ctl_trace },
		{ "set", ctl_set_cmd },
		{ "policy", ctl_policy },
		{ "version", ctl_version },
	};

	return vmm_ctl_server_register_all(d->srv, cmds, sizeof(cmds) / sizeof(cmds[0]), d);
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
	d->cfg.vm_rules = NULL;
	d->cfg.nr_vm_rules = 0;
	d->timer_fd = -1;
	pthread_mutex_init(&d->metrics_lock, NULL);
	d->lock_fd = -1;
	if (cfg->nr_vm_rules) {
		d->rules = calloc(cfg->nr_vm_rules, sizeof(*d->rules));
		if (!d->rules) {
			free(d);
			return -ENOMEM;
		}
		memcpy(d->rules, cfg->vm_rules, cfg->nr_vm_rules * sizeof(*d->rules));
		d->cfg.vm_rules = d->rules;
		d->cfg.nr_vm_rules = cfg->nr_vm_rules;
	}
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
			.path = path, .loop = d->loop, .log = cfg->log,
		};

		snprintf(path, sizeof(path), "%s/%s", d->rundir, EBBD_SOCK_NAME);
		ret = vmm_ctl_server_create(&sc, &d->srv);
		if (!ret)
			ret = ctl_register(d);
		if (ret) {
			snprintf(err, err_len, "cannot serve %s: %s", path, strerror(-ret));
			goto fail;
		}
	}
	render_metrics(d);
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
	free(d->metrics_text);
	free(d->rules);
	pthread_mutex_destroy(&d->metrics_lock);
	free(d);
}

int ebbd_metrics_copy(struct ebbd *d, char **text, size_t *len)
{
	int ret = 0;

	pthread_mutex_lock(&d->metrics_lock);
	*text = malloc(d->metrics_len + 1);
	if (*text) {
		memcpy(*text, d->metrics_text ? d->metrics_text : "", d->metrics_len);
		(*text)[d->metrics_len] = '\0';
		*len = d->metrics_len;
	} else {
		ret = -ENOMEM;
	}
	pthread_mutex_unlock(&d->metrics_lock);
	return ret;
}

static uint64_t host_mem_total(void)
{
	char buf[4096];

	return read_file("/proc/meminfo", buf, sizeof(buf)) ? 0 :
	       meminfo_kb(buf, "MemTotal:") * 1024;
}

int ebbd_reconfigure(struct ebbd *d, const struct ebbd_cfg *cfg, char *err, size_t err_len)
{
	struct ebb_pool_wmarks wm;
	struct ebbd_vm_rule *rules = NULL;
	struct ebbd_vm *vm;
	struct ebb_bal_pool_state p;

	/* Everything that can fail first: nothing changes unless all of it holds. */
	if (ebb_pool_wmarks_compute(&cfg->bal.pool, host_mem_total(), &wm)) {
		snprintf(err, err_len, "no pool can be made of this host's memory with this budget "
			 "and these watermarks (min < low < high, budget at least 4 x high and at "
			 "most MemTotal)");
		d->nr_reload_failures++;
		return -EINVAL;
	}
	if ((unsigned)cfg->bal.policy >= EBB_BAL_NR_POLICIES) {
		snprintf(err, err_len, "no such policy");
		d->nr_reload_failures++;
		return -EINVAL;
	}
	if (cfg->nr_vm_rules) {
		rules = calloc(cfg->nr_vm_rules, sizeof(*rules));
		if (!rules) {
			snprintf(err, err_len, "out of memory");
			d->nr_reload_failures++;
			return -ENOMEM;
		}
		memcpy(rules, cfg->vm_rules, cfg->nr_vm_rules * sizeof(*rules));
	}
	(void)ebb_bal_set_pool(d->bal, &cfg->bal.pool);
	d->cfg.bal.pool = cfg->bal.pool;
	ebb_bal_get_pool(d->bal, &p);
	if (p.policy != cfg->bal.policy) {
		(void)ebb_bal_set_policy(d->bal, cfg->bal.policy);
		d->cfg.bal.policy = cfg->bal.policy;
	}
	d->cfg.tick_ms = cfg->tick_ms ? cfg->tick_ms : EBBD_DEFAULT_TICK_MS;
	d->cfg.vms_only = cfg->vms_only;
	free(d->rules);
	d->rules = rules;
	d->cfg.vm_rules = rules;
	d->cfg.nr_vm_rules = cfg->nr_vm_rules;
	d->cfg.vm_default = cfg->vm_default;
	for (vm = d->vms; vm; vm = vm->next)
		vm_configure(d, vm);
	/* VMs the new configuration opts out leave (they keep their own
	 * limits); ones no longer opted out join at the next discovery */
	for (;;) {
		for (vm = d->vms; vm && !ebbd_vm_opted_out(d, vm->name); vm = vm->next)
			;
		if (!vm)
			break;
		(void)ebbd_vm_detach(d, vm->name, "opted out in ebbd's configuration");
	}
	retry_joins(d);
	d->nr_reloads++;
	vmm_logf(&d->cfg.log, EBB_LOG_INFO, "configuration reloaded: policy %s, budget %llu bytes",
		 ebb_bal_policy_name(cfg->bal.policy), (unsigned long long)wm.budget_bytes);
	arm(d, 0);
	return 0;
}

void ebbd_note_reload_failure(struct ebbd *d)
{
	d->nr_reload_failures++;
}
