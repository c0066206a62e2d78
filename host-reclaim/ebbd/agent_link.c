/*
 * host-reclaim/ebbd/agent_link.c — one VM's ebb agent channel (see
 * agent_link.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "host-reclaim/ebbd/agent_link.h"

#define BACKOFF_MIN_MS 1000u
#define BACKOFF_MAX_MS 10000u
#define REPORT_EVERY_NS (2ull * 1000 * 1000 * 1000)
#define BAD_LOG_EVERY_NS (60ull * 1000 * 1000 * 1000)
#define TIMEOUT_MS 500
#define HELLO_TIMEOUT_MS 200
#define RECLAIM_TIMEOUT_MS 5000

void ebbd_agent_link_init(struct ebbd_agent_link *l, const char *name, const struct vmm_log *log)
{
	memset(l, 0, sizeof(*l));
	l->name = name;
	l->log = *log;
	l->backoff_ms = BACKOFF_MIN_MS;
}

static uint64_t bad_lines(const struct agent_client *c)
{
	struct agent_client_counters k;

	agent_client_get_counters(c, &k);
	return k.nr_bad_json + k.nr_invalid + k.nr_long_lines;
}

/* Counts what the client refused since the last look; true if anything. */
static bool account_bad(struct ebbd_agent_link *l)
{
	uint64_t now_bad, now = vmm_now_ns(), fresh;

	if (!l->agent)
		return false;
	now_bad = bad_lines(l->agent);
	fresh = now_bad - l->bad_seen;
	l->bad_seen = now_bad;
	if (!fresh)
		return false;
	l->c.nr_bad_lines += fresh;
	l->bad_unlogged += fresh;
	if (!l->bad_log_ns || now - l->bad_log_ns >= BAD_LOG_EVERY_NS) {
		vmm_logf(&l->log, EBB_LOG_WARN, "%s: the agent channel sent %" PRIu64 " lines "
			 "that are not the agent protocol (a channel that does so without a "
			 "valid hello, or after one, is dropped and retried with backoff; the VM "
			 "is managed without it meanwhile)", l->name, l->bad_unlogged);
		l->bad_log_ns = now;
		l->bad_unlogged = 0;
		l->c.nr_bad_logged++;
	}
	return true;
}

static void drop(struct ebbd_agent_link *l)
{
	uint64_t now = vmm_now_ns();

	if (!l->agent)
		return;
	agent_client_destroy(l->agent);   /* closes the fd */
	l->agent = NULL;
	l->hello_ok = false;
	l->have_report = false;
	l->bad_seen = 0;
	l->c.nr_drops++;
	l->next_try_ns = now + (uint64_t)l->backoff_ms * 1000000ull;
	l->backoff_ms = l->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : l->backoff_ms * 2;
}

void ebbd_agent_link_fini(struct ebbd_agent_link *l)
{
	agent_client_destroy(l->agent);
	l->agent = NULL;
	l->hello_ok = false;
	l->have_report = false;
}

/* Takes what is queued: reports and pressure messages.  Pressure count or
 * -errno (the channel is gone or the peer is hostile). */
static int drain(struct ebbd_agent_link *l)
{
	struct agent_event ev;
	int nr = 0, ret;

	ret = agent_client_read(l->agent);
	while (!agent_client_pop_event(l->agent, &ev)) {
		if (ev.type == AGENT_EV_REPORT) {
			l->report = ev.u.report;
			l->have_report = true;
			l->report_ns = vmm_now_ns();
			l->backoff_ms = BACKOFF_MIN_MS;
		} else if (ev.type == AGENT_EV_PRESSURE) {
			l->nr_pressure++;
			l->pressure_need_bytes = ev.u.pressure.need_bytes;
			nr++;
		}
	}
	if (account_bad(l))
		return -EPROTO;
	return ret < 0 ? ret : nr;
}

/*
 * Connects when due, then says hello until the agent answers: the guest
 * learns that the port opened only when we connect, and its agent may take a
 * while (booting, reconnect backoff, a slow nested guest) — so a hello that
 * times out in silence keeps the connection and is tried again next time; one
 * that fails over lines that are not the protocol drops it.  One batch of
 * junk before a valid hello (the tail of a line cut off when the last client
 * left) is counted and forgiven, even when the hello is slow; more junk
 * before the hello drops the channel.
 */
static void try_hello(struct ebbd_agent_link *l, const char *path)
{
	struct agent_client_cfg ac = { .fd = -1, .log_burst = 1, .log_window_ms = 60000 };
	struct agent_hello hello;
	uint64_t now = vmm_now_ns();
	int ret;

	if (!l->agent) {
		if (!path || !path[0] || now < l->next_try_ns)
			return;
		if (agent_client_connect_unix(path, &ac.fd)) {
			/* no socket (yet), or another client holds it */
			l->next_try_ns = now + (uint64_t)l->backoff_ms * 1000000ull;
			l->backoff_ms = l->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS :
				l->backoff_ms * 2;
			return;
		}
		if (agent_client_create(&ac, &l->agent)) {
			close(ac.fd);
			return;
		}
		l->hello_ok = false;
		l->junk_forgiven = false;
		l->bad_seen = 0;
		l->c.nr_connects++;
	}
	if (l->hello_ok)
		return;
	ret = agent_client_hello(l->agent, HELLO_TIMEOUT_MS, &hello);
	if (account_bad(l) && ret) {
		if (ret != -ETIMEDOUT || l->junk_forgiven) {
			drop(l);
			return;
		}
		l->junk_forgiven = true;
	}
	if (ret == -ETIMEDOUT)
		return;   /* no agent answering yet: keep the channel, ask again */
	if (ret) {
		drop(l);
		return;
	}
	l->hello_ok = true;
	l->caps = hello.caps;
	l->c.nr_hellos++;
	vmm_logf(&l->log, EBB_LOG_INFO, "%s: agent channel up (agent pid %lld)", l->name,
		 (long long)hello.pid);
}

void ebbd_agent_link_observe(struct ebbd_agent_link *l, const char *path,
			     struct ebb_bal_vm_obs *obs)
{
	struct agent_report rep;
	uint64_t now;

	try_hello(l, path);
	if (!l->agent || !l->hello_ok)
		return;
	if (drain(l) < 0) {
		drop(l);
		return;
	}
	now = vmm_now_ns();
	if ((l->caps & AGENT_CAP_REPORT) &&
	    (!l->have_report || now - l->report_ns >= REPORT_EVERY_NS)) {
		int ret = agent_client_report(l->agent, TIMEOUT_MS, &rep);

		if (account_bad(l)) {
			drop(l);
			return;
		}
		if (!ret) {
			l->report = rep;
			l->have_report = true;
			l->report_ns = vmm_now_ns();
			l->backoff_ms = BACKOFF_MIN_MS;
		} else if (ret != -ETIMEDOUT && ret != -EREMOTEIO) {
			drop(l);
			return;
		}
	}
	obs->caps |= EBB_BAL_CAP_AGENT;
	if (l->caps & AGENT_CAP_DROP)
		obs->caps |= EBB_BAL_CAP_AGENT_DROP;
	if (l->caps & AGENT_CAP_PROACTIVE)
		obs->caps |= EBB_BAL_CAP_AGENT_PROACTIVE;
	obs->agent_nr_pressure = l->nr_pressure;
	obs->agent_pressure_need_bytes = l->pressure_need_bytes;
	if (!l->have_report)
		return;
	obs->agent_present = true;
	obs->agent_report_ns = l->report_ns;
	if (l->report.have_meminfo)
		obs->agent_free_bytes = l->report.meminfo.free_bytes;
	if (l->report.have_estimate) {
		obs->agent_cache_bytes = l->report.clean_file_bytes;
		obs->agent_give_back_bytes = l->report.give_back_bytes;
	}
}

int ebbd_agent_link_fd(const struct ebbd_agent_link *l)
{
	return l->agent && l->hello_ok ? agent_client_fd(l->agent) : -1;
}

int ebbd_agent_link_poll(struct ebbd_agent_link *l)
{
	int ret;

	if (!l->agent)
		return -ENOTCONN;
	ret = drain(l);
	if (ret < 0)
		drop(l);
	return ret;
}

int ebbd_agent_link_reclaim(struct ebbd_agent_link *l, const struct ebb_bal_action *a)
{
	struct agent_reclaim_result res;
	int ret;

	if (!l->agent || !l->hello_ok)
		return -ENOTCONN;
	ret = agent_client_reclaim(l->agent, a->kind == EBB_BAL_ACT_AGENT_DROP_CACHE ?
				   AGENT_RECLAIM_DROP_CACHES : AGENT_RECLAIM_PROACTIVE,
				   a->kind == EBB_BAL_ACT_AGENT_RECLAIM ? a->value : 0,
				   false, RECLAIM_TIMEOUT_MS, &res);
	if (account_bad(l) || ret == -EPIPE)
		drop(l);
	return ret;
}
