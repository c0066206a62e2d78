/*
 * host-reclaim/ebbd/metrics.c — ebbd's snapshot in the Prometheus text
 * format (see metrics.h; the list of metrics is docs/operations.md).
 *
 * Families are written whole (HELP, TYPE, then every sample of that name),
 * as the format requires: the renderer loops over the VMs once per family.
 * Label values come from VM names (validated by discovery, still escaped
 * here: backslash, double quote, newline).  Integers above 2^53 lose
 * precision as doubles; they are printed with %.17g, exact below that.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/page.h"
#include "host-reclaim/ebbd/metrics.h"

void ebbd_metrics_buf_release(struct ebbd_metrics_buf *b)
{
	free(b->text);
	b->text = NULL;
	b->len = b->cap = 0;
}

static void put(struct ebbd_metrics_buf *b, const char *s, size_t n)
{
	if (b->oom)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		char *t;

		while (cap < b->len + n + 1)
			cap *= 2;
		if (cap > EBBD_METRICS_MAX_BYTES || !(t = realloc(b->text, cap))) {
			b->oom = true;
			return;
		}
		b->text = t;
		b->cap = cap;
	}
	memcpy(b->text + b->len, s, n);
	b->len += n;
	b->text[b->len] = '\0';
}

static void puts_(struct ebbd_metrics_buf *b, const char *s)
{
	put(b, s, strlen(s));
}

static void putf(struct ebbd_metrics_buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void putf(struct ebbd_metrics_buf *b, const char *fmt, ...)
{
	char tmp[256];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
	va_end(ap);
	if (n > 0)
		put(b, tmp, (size_t)n < sizeof(tmp) ? (size_t)n : sizeof(tmp) - 1);
}

void ebbd_metrics_family(struct ebbd_metrics_buf *b, const char *name, const char *type,
			 const char *help)
{
	putf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void put_label_value(struct ebbd_metrics_buf *b, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\')
			puts_(b, "\\\\");
		else if (*v == '"')
			puts_(b, "\\\"");
		else if (*v == '\n')
			puts_(b, "\\n");
		else
			put(b, v, 1);
	}
}

void ebbd_metrics_sample(struct ebbd_metrics_buf *b, const char *name,
			 const char *const *labels, double value)
{
	size_t i;

	puts_(b, name);
	if (labels && labels[0]) {
		puts_(b, "{");
		for (i = 0; labels[i] && labels[i + 1]; i += 2) {
			putf(b, "%s%s=\"", i ? "," : "", labels[i]);
			put_label_value(b, labels[i + 1]);
			puts_(b, "\"");
		}
		puts_(b, "}");
	}
	putf(b, " %.17g\n", value);
}

/* ---- the snapshot ------------------------------------------------------------ */

#define D(x) ((double)(x))

static void gauge1(struct ebbd_metrics_buf *b, const char *name, const char *help, double v)
{
	ebbd_metrics_family(b, name, "gauge", help);
	ebbd_metrics_sample(b, name, NULL, v);
}

static void counter1(struct ebbd_metrics_buf *b, const char *name, const char *help, uint64_t v)
{
	ebbd_metrics_family(b, name, "counter", help);
	ebbd_metrics_sample(b, name, NULL, D(v));
}

static void render_pool(const struct ebbd_metrics_in *in, struct ebbd_metrics_buf *b)
{
	const struct ebb_bal_pool_state *p = in->pool;
	const struct ebb_bal_stats *s = &p->stats;
	static const enum ebb_bal_state states[] = {
		EBB_BAL_SLEEPING, EBB_BAL_BALANCING, EBB_BAL_DIRECT_CLAMP
	};
	unsigned i, k, r;

	gauge1(b, "ebb_pool_budget_bytes", "What the managed VMs (and the host) may use together.",
	       D(p->budget_bytes));
	gauge1(b, "ebb_pool_used_bytes", "Resident memory of the VMs plus the host's own use.",
	       D(p->used_bytes));
	gauge1(b, "ebb_pool_free_bytes", "Budget minus used (0 when over budget).",
	       D(p->free_bytes));
	ebbd_metrics_family(b, "ebb_pool_watermark_bytes", "gauge",
			    "The pool's watermarks without boost.");
	{
		const char *lmin[] = { "level", "min", NULL }, *llow[] = { "level", "low", NULL },
			   *lhigh[] = { "level", "high", NULL };

		ebbd_metrics_sample(b, "ebb_pool_watermark_bytes", lmin, D(p->wmark_min_bytes));
		ebbd_metrics_sample(b, "ebb_pool_watermark_bytes", llow, D(p->wmark_low_bytes));
		ebbd_metrics_sample(b, "ebb_pool_watermark_bytes", lhigh, D(p->wmark_high_bytes));
	}
	gauge1(b, "ebb_pool_watermark_boost_bytes", "Boost added to low and high after a burst.",
	       D(p->boost_bytes));
	gauge1(b, "ebb_pool_vms", "VMs in the pool.", D(p->nr_vms));
	ebbd_metrics_family(b, "ebb_pool_balancer_state", "gauge",
			    "1 for the balancer's current state, 0 for the others.");
	for (i = 0; i < sizeof(states) / sizeof(states[0]); i++) {
		const char *l[] = { "state", ebb_bal_state_name(states[i]), NULL };

		ebbd_metrics_sample(b, "ebb_pool_balancer_state", l, p->state == states[i]);
	}
	gauge1(b, "ebb_pool_balancer_priority",
	       "Scan priority while balancing (12 gentle .. 0 hardest), -1 otherwise.",
	       D(p->priority));
	ebbd_metrics_family(b, "ebb_pool_policy", "gauge", "1 for the policy in force.");
	for (i = 0; i < EBB_BAL_NR_POLICIES; i++) {
		const char *l[] = { "policy", ebb_bal_policy_name((enum ebb_bal_policy)i), NULL };

		ebbd_metrics_sample(b, "ebb_pool_policy", l, p->policy == (enum ebb_bal_policy)i);
	}
	gauge1(b, "ebb_pool_ksm_yield_pages_per_cpu_second",
	       "Pages ksmd merged per second of its CPU time (0: not measured).",
	       D(p->ksm_yield_pages_per_cpu_s));
	gauge1(b, "ebb_host_memory_total_bytes", "The host's MemTotal.", D(in->mem_total_bytes));
	gauge1(b, "ebb_host_memory_available_bytes", "The host's MemAvailable.",
	       D(in->mem_available_bytes));
	gauge1(b, "ebb_host_ksm_sharing_bytes", "Memory saved by KSM host-wide (pages_sharing).",
	       D(in->ksm_pages_sharing * in->page_bytes));

	ebbd_metrics_family(b, "ebb_pool_reclaim_requested_bytes_total", "counter",
			    "Memory the balancer asked back, by reclaim source.");
	for (i = 0; i < EBB_BAL_NR_SOURCES; i++) {
		const char *l[] = { "source", ebb_bal_source_name((enum ebb_bal_source)i), NULL };

		ebbd_metrics_sample(b, "ebb_pool_reclaim_requested_bytes_total", l,
				    D(s->reclaimed_bytes[i]));
	}
	ebbd_metrics_family(b, "ebb_balancer_decisions_total", "counter",
			    "Actions the balancer decided, by kind and by the rule that fired.");
	for (k = 0; k < EBB_BAL_NR_ACTIONS; k++) {
		for (r = 0; r < EBB_BAL_NR_REASONS; r++) {
			const char *l[] = { "action", ebb_bal_action_name((enum ebb_bal_action_kind)k),
					    "reason", ebb_bal_reason_name((enum ebb_bal_reason)r), NULL };

			if (in->decisions && in->decisions[k][r])
				ebbd_metrics_sample(b, "ebb_balancer_decisions_total", l,
						    D(in->decisions[k][r]));
		}
	}
	counter1(b, "ebb_balancer_steps_total", "Balancer steps.", s->nr_steps);
	counter1(b, "ebb_balancer_wakeups_total", "Wake-ups from sleeping to balancing (free < low).",
		 s->nr_wakeups);
	counter1(b, "ebb_balancer_direct_clamps_total", "Entries into direct clamp (free < min).",
		 s->nr_direct);
	counter1(b, "ebb_balancer_clamps_total", "Clamps of a VM's max set.", s->nr_clamps);
	counter1(b, "ebb_balancer_lifts_total", "Clamps lifted.", s->nr_lifts);
	counter1(b, "ebb_balancer_pressure_total", "Guest pressure messages acted on.",
		 s->nr_pressure);
	counter1(b, "ebb_balancer_pressure_capped_total",
		 "Guest pressure refused by weight or max share.", s->nr_pressure_capped);
	counter1(b, "ebb_balancer_refault_raises_total", "Highs raised for refaults or stalls.",
		 s->nr_refault_raises);
	counter1(b, "ebb_balancer_balloon_stuck_total",
		 "Balloons re-targeted to what they reached.", s->nr_stuck);
	counter1(b, "ebb_balancer_actions_dropped_total",
		 "Actions that did not fit one step (decided again).", s->nr_actions_dropped);
	ebbd_metrics_family(b, "ebb_balancer_bad_input_total", "counter",
			    "Observations rejected or clamped, by origin.");
	{
		const char *lv[] = { "origin", "vm", NULL }, *la[] = { "origin", "agent", NULL },
			   *lh[] = { "origin", "host", NULL };

		ebbd_metrics_sample(b, "ebb_balancer_bad_input_total", lv, D(s->nr_bad_vm_obs));
		ebbd_metrics_sample(b, "ebb_balancer_bad_input_total", la, D(s->nr_bad_agent));
		ebbd_metrics_sample(b, "ebb_balancer_bad_input_total", lh, D(s->nr_bad_host_obs));
	}
}

static void render_daemon(const struct ebbd_metrics_in *in, struct ebbd_metrics_buf *b)
{
	const struct ebbd_counters *c = in->c;

	counter1(b, "ebbd_ticks_total", "Rounds of observe, step, apply.", c->nr_ticks);
	counter1(b, "ebbd_vms_joined_total", "VMs that joined the pool.", c->nr_vms_joined);
	counter1(b, "ebbd_vms_left_total", "VMs that left the pool.", c->nr_vms_left);
	counter1(b, "ebbd_vms_stale_total", "Sockets found that nobody answered.", c->nr_vms_stale);
	counter1(b, "ebbd_vm_calls_total", "Observation calls to the VMs.", c->nr_calls);
	counter1(b, "ebbd_vm_call_errors_total", "Observation calls that failed.", c->nr_call_errors);
	counter1(b, "ebbd_bad_vm_replies_total", "VM replies missing fields or of the wrong type.",
		 c->nr_bad_vm_replies);
	ebbd_metrics_family(b, "ebbd_actions_total", "counter",
			    "Balancer actions applied through the VMs' backends, by result.");
	{
		const char *la[] = { "result", "applied", NULL }, *lf[] = { "result", "failed", NULL },
			   *lu[] = { "result", "unsupported", NULL };

		ebbd_metrics_sample(b, "ebbd_actions_total", la, D(c->nr_actions_applied));
		ebbd_metrics_sample(b, "ebbd_actions_total", lf, D(c->nr_actions_failed));
		ebbd_metrics_sample(b, "ebbd_actions_total", lu, D(c->nr_actions_unsupported));
	}
	counter1(b, "ebbd_lease_renewals_total", "Clamp leases renewed.", c->nr_lease_renewals);
	counter1(b, "ebbd_vm_events_total", "Event lines from the VMs and their agents.",
		 c->nr_vm_events);
	counter1(b, "ebbd_event_wakeups_total", "Steps brought forward by VM events.",
		 c->nr_event_wakeups);
	counter1(b, "ebbd_control_requests_total", "Requests on ebbd.sock.", c->nr_ctl_requests);
	counter1(b, "ebbd_config_reloads_total", "Configuration reloads that took effect.",
		 in->config_reloads);
	counter1(b, "ebbd_config_reload_failures_total",
		 "Configuration reloads refused (the old configuration stayed).",
		 in->config_reload_failures);
}

/* One per-VM family: value(vm) for each VM that fn accepts. */
typedef bool (*vm_value_fn)(const struct ebbd_metrics_vm *v, double *out);

static void vm_family(const struct ebbd_metrics_in *in, struct ebbd_metrics_buf *b,
		      const char *name, const char *type, const char *label, const char *help,
		      vm_value_fn fn)
{
	size_t i;
	double v;

	ebbd_metrics_family(b, name, type, help);
	for (i = 0; i < in->nr_vms; i++) {
		const char *l[] = { label, in->vms[i].name, NULL };

		if (fn(&in->vms[i], &v))
			ebbd_metrics_sample(b, name, l, v);
	}
}

#define VM_FN(fname, cond, expr) \
	static bool fname(const struct ebbd_metrics_vm *v, double *out) \
	{ \
		if (!(cond)) \
			return false; \
		*out = (double)(expr); \
		return true; \
	}

VM_FN(vm_up, true, v->observed)
VM_FN(vm_guest, v->observed, v->obs->guest_bytes)
VM_FN(vm_resident, v->observed, v->obs->resident_bytes)
VM_FN(vm_compressed, v->observed, v->obs->compressed_bytes)
VM_FN(vm_balloon, v->observed, v->obs->balloon_actual_bytes)
VM_FN(vm_balloon_target, v->observed, v->obs->balloon_target_bytes)
VM_FN(vm_ksm, v->observed, v->obs->ksm_merging_pages * EBB_PAGE_BYTES)
VM_FN(vm_high, v->observed && v->obs->cur_high_bytes != EBB_BAL_NO_LIMIT, v->obs->cur_high_bytes)
VM_FN(vm_max, v->observed && v->obs->cur_max_bytes != EBB_BAL_NO_LIMIT, v->obs->cur_max_bytes)
VM_FN(vm_min, v->observed, v->obs->cfg.min_bytes)
VM_FN(vm_low, v->observed, v->obs->cfg.low_bytes)
VM_FN(vm_weight, v->observed, v->obs->cfg.weight)
VM_FN(vm_clamped, v->observed, v->obs->max_clamped)
VM_FN(vm_ws, v->have_state, v->st.ws_estimate_bytes)
VM_FN(vm_idle, v->have_state, v->st.idle_bytes)
VM_FN(vm_refaults, v->observed, v->obs->nr_refaults)
VM_FN(vm_swapins, v->observed, v->obs->nr_swapins)
VM_FN(vm_swapin_s, v->observed, (double)v->obs->swapin_ns_total / 1e9)
VM_FN(vm_psi_some, v->observed, (double)v->obs->psi_some_ns_total / 1e9)
VM_FN(vm_psi_full, v->observed, (double)v->obs->psi_full_ns_total / 1e9)
VM_FN(vm_agent_up, v->observed, v->obs->agent_present)
VM_FN(vm_agent_free, v->observed && v->obs->agent_present, v->obs->agent_free_bytes)
VM_FN(vm_agent_cache, v->observed && v->obs->agent_present, v->obs->agent_cache_bytes)
VM_FN(vm_agent_pressure, v->observed, v->obs->agent_nr_pressure)
VM_FN(vm_last_ts, v->have_last, (double)v->last_unix_ms / 1000.0)
/* libvirt's "actual balloon" is the memory the guest has: its RAM minus the balloon. */
VM_FN(lv_actual, v->observed,
      v->obs->guest_bytes > v->obs->balloon_actual_bytes ?
      v->obs->guest_bytes - v->obs->balloon_actual_bytes : 0)

static void render_vms(const struct ebbd_metrics_in *in, struct ebbd_metrics_buf *b)
{
	size_t i;

	vm_family(in, b, "ebb_vm_up", "gauge", "vm", "1 when the VM answered its last observation.",
		  vm_up);
	vm_family(in, b, "ebb_vm_guest_memory_bytes", "gauge", "vm", "Guest RAM size.", vm_guest);
	vm_family(in, b, "ebb_vm_resident_bytes", "gauge", "vm",
		  "Host memory the VM holds, its compressed tier included.", vm_resident);
	vm_family(in, b, "ebb_vm_compressed_store_bytes", "gauge", "vm",
		  "Host memory of the VM's compressed tier.", vm_compressed);
	ebbd_metrics_family(b, "ebb_vm_swapped_bytes", "gauge",
			    "Guest memory held outside RAM, by tier.");
	for (i = 0; i < in->nr_vms; i++) {
		const struct ebbd_metrics_vm *v = &in->vms[i];
		const char *lc[] = { "vm", v->name, "tier", "compressed", NULL };
		const char *lf[] = { "vm", v->name, "tier", "file", NULL };

		if (!v->observed)
			continue;
		ebbd_metrics_sample(b, "ebb_vm_swapped_bytes", lc, D(v->obs->swapped_compressed_bytes));
		ebbd_metrics_sample(b, "ebb_vm_swapped_bytes", lf, D(v->obs->swapped_file_bytes));
	}
	vm_family(in, b, "ebb_vm_balloon_bytes", "gauge", "vm",
		  "Memory inside the balloon (taken from the guest).", vm_balloon);
	vm_family(in, b, "ebb_vm_balloon_target_bytes", "gauge", "vm",
		  "The balloon size asked for.", vm_balloon_target);
	vm_family(in, b, "ebb_vm_ksm_merging_bytes", "gauge", "vm",
		  "Guest memory merged by KSM (ksm_merging_pages).", vm_ksm);
	vm_family(in, b, "ebb_vm_high_bytes", "gauge", "vm",
		  "The high limit in force (absent: none).", vm_high);
	vm_family(in, b, "ebb_vm_max_bytes", "gauge", "vm",
		  "The max limit in force (absent: none).", vm_max);
	vm_family(in, b, "ebb_vm_min_bytes", "gauge", "vm", "Protection: never reclaimed below.",
		  vm_min);
	vm_family(in, b, "ebb_vm_low_bytes", "gauge", "vm",
		  "Protection: reclaimed below only when nothing else is left.", vm_low);
	vm_family(in, b, "ebb_vm_weight", "gauge", "vm", "Share of pressure (1..10000).", vm_weight);
	vm_family(in, b, "ebb_vm_clamped", "gauge", "vm", "1 while a leased clamp is in force.",
		  vm_clamped);
	vm_family(in, b, "ebb_vm_working_set_bytes", "gauge", "vm",
		  "The balancer's working-set estimate.", vm_ws);
	vm_family(in, b, "ebb_vm_idle_bytes", "gauge", "vm",
		  "Resident memory above the working set.", vm_idle);
	vm_family(in, b, "ebb_vm_refaults_total", "counter", "vm",
		  "Faults on pages the host evicted.", vm_refaults);
	vm_family(in, b, "ebb_vm_swapins_total", "counter", "vm",
		  "Pages read back from the VM's stores.", vm_swapins);
	vm_family(in, b, "ebb_vm_swapin_seconds_total", "counter", "vm",
		  "Time spent reading pages back.", vm_swapin_s);
	vm_family(in, b, "ebb_vm_pressure_some_seconds_total", "counter", "vm",
		  "vCPU stall time on memory, some (PSI).", vm_psi_some);
	vm_family(in, b, "ebb_vm_pressure_full_seconds_total", "counter", "vm",
		  "vCPU stall time on memory, full (PSI).", vm_psi_full);
	vm_family(in, b, "ebb_vm_agent_up", "gauge", "vm",
		  "1 when ebbd holds a fresh report of the guest agent.", vm_agent_up);
	vm_family(in, b, "ebb_vm_agent_free_bytes", "gauge", "vm", "The guest's MemFree.",
		  vm_agent_free);
	vm_family(in, b, "ebb_vm_agent_cache_bytes", "gauge", "vm",
		  "The guest's reclaimable clean cache.", vm_agent_cache);
	vm_family(in, b, "ebb_vm_agent_pressure_messages_total", "counter", "vm",
		  "Pressure messages from the guest agent.", vm_agent_pressure);
	ebbd_metrics_family(b, "ebb_vm_last_action_timestamp_seconds", "gauge",
			    "When ebbd last applied an action to the VM, with its kind and reason.");
	for (i = 0; i < in->nr_vms; i++) {
		const struct ebbd_metrics_vm *v = &in->vms[i];
		const char *l[] = { "vm", v->name, "action", ebb_bal_action_name(v->last_kind),
				    "reason", ebb_bal_reason_name(v->last_reason), NULL };
		double ts;

		if (vm_last_ts(v, &ts))
			ebbd_metrics_sample(b, "ebb_vm_last_action_timestamp_seconds", l, ts);
	}

	/* The libvirt exporter's names, where ebb measures the same thing. */
	vm_family(in, b, "libvirt_domain_memory_stats_rss_bytes", "gauge", "domain",
		  "Resident set of the VM on the host (as ebb_vm_resident_bytes).", vm_resident);
	vm_family(in, b, "libvirt_domain_memory_stats_actual_balloon_bytes", "gauge", "domain",
		  "Memory the guest has: its RAM minus the balloon.", lv_actual);
	vm_family(in, b, "libvirt_domain_memory_stats_unused_bytes", "gauge", "domain",
		  "The guest's free memory (agent MemFree).", vm_agent_free);
	vm_family(in, b, "libvirt_domain_memory_stats_disk_cache_bytes", "gauge", "domain",
		  "Guest cache reclaimable without I/O (agent).", vm_agent_cache);
}

int ebbd_metrics_render(const struct ebbd_metrics_in *in, struct ebbd_metrics_buf *out)
{
	render_pool(in, out);
	render_daemon(in, out);
	render_vms(in, out);
	return out->oom ? -ENOMEM : 0;
}

int ebbd_metrics_parse_addr(const char *s, struct sockaddr_storage *ss, unsigned *ss_len,
			    bool *off)
{
	char host[64];
	const char *colon, *h = s;
	size_t hl;
	char *end;
	unsigned long port;

	*off = false;
	if (!s || !*s)
		return -EINVAL;
	if (strcmp(s, "off") == 0) {
		*off = true;
		return 0;
	}
	if (s[0] == '[') {
		const char *rb = strchr(s, ']');

		if (!rb || rb[1] != ':')
			return -EINVAL;
		h = s + 1;
		hl = (size_t)(rb - h);
		colon = rb + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			return -EINVAL;
		hl = (size_t)(colon - s);
	}
	if (!hl || hl >= sizeof(host))
		return -EINVAL;
	memcpy(host, h, hl);
	host[hl] = '\0';
	errno = 0;
	port = strtoul(colon + 1, &end, 10);
	if (errno || end == colon + 1 || *end || colon[1] == '-' || colon[1] == '+' || port > 65535)
		return -EINVAL;
	memset(ss, 0, sizeof(*ss));
	if (s[0] != '[') {
		struct sockaddr_in *a = (struct sockaddr_in *)ss;

		if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
			return -EINVAL;
		a->sin_family = AF_INET;
		a->sin_port = htons((uint16_t)port);
		*ss_len = sizeof(*a);
	} else {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;

		if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1)
			return -EINVAL;
		a->sin6_family = AF_INET6;
		a->sin6_port = htons((uint16_t)port);
		*ss_len = sizeof(*a);
	}
	return 0;
}
