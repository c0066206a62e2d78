/*
 * agent_client.c - host side of the guest-agent protocol.
 *
 * Overview: bytes from the guest are framed into lines (capped; an overlong
 * line is discarded up to its newline), each line is parsed with json-c in
 * strict mode with a depth limit, and then decoded field by field into plain
 * structs with type and range checks -- the json_object never escapes this
 * file.  A line carrying an "id" is a reply: it is kept if it answers the one
 * request in flight, otherwise counted as stray.  A line without an id is an
 * unsolicited message (periodic report, pressure, or an error the agent could
 * not attribute) and goes to a bounded event queue.  Requests are synchronous:
 * write one line, then read and feed until the reply arrives or time runs out.
 */
#include "client/agent_client.h"

#include <errno.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <math.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base/sock.h"

#define DEFAULT_MAX_LINE  16384
#define MAX_DEPTH         8
#define MAX_BYTES         (1ull << 50)          /* 1 PiB: no guest has more */
#define MAX_COUNTER       ((uint64_t)INT64_MAX)
#define MAX_ID            ((1ll << 53) - 1)

struct agent_client {
	struct agent_client_cfg cfg;
	int fd;
	bool eof;

	char *in;                /* current partial line, cfg.max_line_bytes */
	size_t in_len;
	bool discarding;
	struct json_tokener *tok;

	int64_t next_id;
	int64_t await_id;        /* -1: no request in flight */
	struct json_object *reply;

	struct agent_event ev[AGENT_CLIENT_MAX_EVENTS];
	unsigned ev_head, ev_count;

	struct agent_error last_error;
	struct agent_client_counters n;

	struct ebb_ratelimit rl;       /* clog_() */
};

static uint64_t mono_ms(void)
{
	return ebb_mono_ns() / 1000000u;
}

static void clog_(struct agent_client *c, enum ebb_log_level lvl, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Counted and rate-limited: at most log_burst lines per log_window_ms. */
static void clog_(struct agent_client *c, enum ebb_log_level lvl, const char *fmt, ...)
{
	va_list ap;

	if (!c->cfg.log)
		return;
	if (!ebb_ratelimit_ok(&c->rl, ebb_mono_ns(), c->cfg.log_burst,
			      (uint64_t)c->cfg.log_window_ms * 1000000u, NULL)) {
		c->n.nr_logs_suppressed++;
		return;
	}
	va_start(ap, fmt);
	ebb_vlogf(c->cfg.log, c->cfg.log_ctx, lvl, fmt, ap);
	va_end(ap);
}

int agent_client_create(const struct agent_client_cfg *cfg, struct agent_client **out)
{
	struct agent_client *c;

	*out = NULL;
	if (!cfg || cfg->fd < 0 || cfg->max_line_bytes > (1u << 20))
		return -EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->cfg = *cfg;
	if (!c->cfg.max_line_bytes)
		c->cfg.max_line_bytes = DEFAULT_MAX_LINE;
	if (!c->cfg.log_burst)
		c->cfg.log_burst = 10;
	if (!c->cfg.log_window_ms)
		c->cfg.log_window_ms = 10000;
	c->fd = cfg->fd;
	c->await_id = -1;
	c->in = malloc(c->cfg.max_line_bytes);
	c->tok = json_tokener_new_ex(MAX_DEPTH);
	if (!c->in || !c->tok) {
		free(c->in);
		if (c->tok)
			json_tokener_free(c->tok);
		free(c);
		return -ENOMEM;
	}
	json_tokener_set_flags(c->tok, JSON_TOKENER_STRICT);
	c->last_error.id = -1;
	*out = c;
	return 0;
}

void agent_client_destroy(struct agent_client *c)
{
	if (!c)
		return;
	if (c->reply)
		json_object_put(c->reply);
	json_tokener_free(c->tok);
	free(c->in);
	if (c->fd >= 0)
		close(c->fd);
	free(c);
}

int agent_client_connect_unix(const char *path, int *fd_out)
{
	int fd = ebb_sock_connect(path, 0);

	if (fd < 0)
		return fd;
	*fd_out = fd;
	return 0;
}

const struct agent_error *agent_client_last_error(const struct agent_client *c)
{
	return &c->last_error;
}

void agent_client_get_counters(const struct agent_client *c, struct agent_client_counters *out)
{
	*out = c->n;
}

/* --- field decoding (GUEST: every accessor checks type and range) ---------- */

static bool get_u64(struct json_object *o, const char *key, uint64_t max, uint64_t *out)
{
	struct json_object *v;
	int64_t x;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_int))
		return false;
	x = json_object_get_int64(v);
	if (x < 0 || (uint64_t)x > max)
		return false;
	*out = (uint64_t)x;
	return true;
}

static bool get_u32(struct json_object *o, const char *key, uint32_t max, uint32_t *out)
{
	uint64_t v;

	if (!get_u64(o, key, max, &v))
		return false;
	*out = (uint32_t)v;
	return true;
}

/* A percentage 0..100 with up to two decimals, as hundredths. */
static bool get_centi(struct json_object *o, const char *key, uint32_t *out)
{
	struct json_object *v;
	double d;

	if (!json_object_object_get_ex(o, key, &v))
		return false;
	if (!json_object_is_type(v, json_type_double) && !json_object_is_type(v, json_type_int))
		return false;
	d = json_object_get_double(v);
	if (!isfinite(d) || d < 0 || d > 100)
		return false;
	*out = (uint32_t)lround(d * 100);
	return true;
}

static bool get_str(struct json_object *o, const char *key, char *buf, size_t cap)
{
	struct json_object *v;
	int len;

	if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return false;
	len = json_object_get_string_len(v);
	if (len < 0 || (size_t)len >= cap || memchr(json_object_get_string(v), '\0', (size_t)len))
		return false;
	memcpy(buf, json_object_get_string(v), (size_t)len);
	buf[len] = '\0';
	return true;
}

/* A sub-object: 1 present, 0 null (the agent could not read the source),
 * -1 missing or of the wrong type. */
static int get_obj(struct json_object *o, const char *key, struct json_object **out)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v))
		return -1;
	if (!v)
		return 0;   /* json null */
	if (!json_object_is_type(v, json_type_object))
		return -1;
	*out = v;
	return 1;
}

#define U64(o, k, max, dst) ok = ok && get_u64(o, k, max, dst)

static bool decode_meminfo(struct json_object *o, struct agent_guest_meminfo *m)
{
	bool ok = true;

	U64(o, "total_bytes", MAX_BYTES, &m->total_bytes);
	U64(o, "free_bytes", MAX_BYTES, &m->free_bytes);
	U64(o, "available_bytes", MAX_BYTES, &m->available_bytes);
	U64(o, "buffers_bytes", MAX_BYTES, &m->buffers_bytes);
	U64(o, "cached_bytes", MAX_BYTES, &m->cached_bytes);
	U64(o, "swap_cached_bytes", MAX_BYTES, &m->swap_cached_bytes);
	U64(o, "active_anon_bytes", MAX_BYTES, &m->active_anon_bytes);
	U64(o, "inactive_anon_bytes", MAX_BYTES, &m->inactive_anon_bytes);
	U64(o, "active_file_bytes", MAX_BYTES, &m->active_file_bytes);
	U64(o, "inactive_file_bytes", MAX_BYTES, &m->inactive_file_bytes);
	U64(o, "unevictable_bytes", MAX_BYTES, &m->unevictable_bytes);
	U64(o, "mlocked_bytes", MAX_BYTES, &m->mlocked_bytes);
	U64(o, "swap_total_bytes", MAX_BYTES, &m->swap_total_bytes);
	U64(o, "swap_free_bytes", MAX_BYTES, &m->swap_free_bytes);
	U64(o, "dirty_bytes", MAX_BYTES, &m->dirty_bytes);
	U64(o, "writeback_bytes", MAX_BYTES, &m->writeback_bytes);
	U64(o, "anon_pages_bytes", MAX_BYTES, &m->anon_pages_bytes);
	U64(o, "mapped_bytes", MAX_BYTES, &m->mapped_bytes);
	U64(o, "shmem_bytes", MAX_BYTES, &m->shmem_bytes);
	U64(o, "sreclaimable_bytes", MAX_BYTES, &m->sreclaimable_bytes);
	U64(o, "sunreclaim_bytes", MAX_BYTES, &m->sunreclaim_bytes);
	/* Consistency: nothing free that does not exist. */
	return ok && m->free_bytes <= m->total_bytes && m->available_bytes <= m->total_bytes &&
	       m->swap_free_bytes <= m->swap_total_bytes;
}

static bool decode_vmstat(struct json_object *o, struct agent_guest_vmstat *v)
{
	bool ok = true;

	U64(o, "pgscan_kswapd", MAX_COUNTER, &v->pgscan_kswapd);
	U64(o, "pgscan_direct", MAX_COUNTER, &v->pgscan_direct);
	U64(o, "pgsteal_kswapd", MAX_COUNTER, &v->pgsteal_kswapd);
	U64(o, "pgsteal_direct", MAX_COUNTER, &v->pgsteal_direct);
	U64(o, "workingset_refault", MAX_COUNTER, &v->workingset_refault);
	U64(o, "workingset_refault_anon", MAX_COUNTER, &v->workingset_refault_anon);
	U64(o, "workingset_refault_file", MAX_COUNTER, &v->workingset_refault_file);
	U64(o, "pswpin", MAX_COUNTER, &v->pswpin);
	U64(o, "pswpout", MAX_COUNTER, &v->pswpout);
	U64(o, "oom_kill", MAX_COUNTER, &v->oom_kill);
	U64(o, "pgmajfault", MAX_COUNTER, &v->pgmajfault);
	U64(o, "allocstall", MAX_COUNTER, &v->allocstall);
	U64(o, "compact_stall", MAX_COUNTER, &v->compact_stall);
	return ok;
}

static bool decode_psi_line(struct json_object *parent, const char *key,
			    struct agent_guest_psi_line *l)
{
	struct json_object *o = NULL;
	int r = get_obj(parent, key, &o);
	bool ok = true;

	memset(l, 0, sizeof(*l));
	if (r <= 0)
		return r == 0;
	ok = ok && get_centi(o, "avg10", &l->avg10_centipct);
	ok = ok && get_centi(o, "avg60", &l->avg60_centipct);
	ok = ok && get_centi(o, "avg300", &l->avg300_centipct);
	U64(o, "total_us", MAX_COUNTER, &l->total_us);
	l->present = ok;
	return ok;
}

static bool decode_report(struct json_object *o, struct agent_report *r)
{
	struct json_object *sub = NULL;
	uint64_t total;
	bool ok = true;
	int k;

	memset(r, 0, sizeof(*r));
	if ((k = get_obj(o, "meminfo", &sub)) < 0 || (k && !decode_meminfo(sub, &r->meminfo)))
		return false;
	r->have_meminfo = k;
	if ((k = get_obj(o, "vmstat", &sub)) < 0 || (k && !decode_vmstat(sub, &r->vmstat)))
		return false;
	r->have_vmstat = k;
	if ((k = get_obj(o, "psi", &sub)) < 0)
		return false;
	if (k && (!decode_psi_line(sub, "some", &r->psi_some) ||
		  !decode_psi_line(sub, "full", &r->psi_full)))
		return false;
	r->have_psi = k;
	if ((k = get_obj(o, "estimate", &sub)) < 0)
		return false;
	if (k) {
		total = r->have_meminfo ? r->meminfo.total_bytes : MAX_BYTES;
		U64(sub, "give_back_bytes", total, &r->give_back_bytes);
		U64(sub, "safe_target_bytes", total, &r->safe_target_bytes);
		U64(sub, "clean_file_bytes", MAX_BYTES, &r->clean_file_bytes);
		U64(sub, "free_reserve_bytes", MAX_BYTES, &r->free_reserve_bytes);
		U64(sub, "cache_floor_bytes", MAX_BYTES, &r->cache_floor_bytes);
		if (!ok)
			return false;
	}
	r->have_estimate = k;
	if ((k = get_obj(o, "agent", &sub)) < 0)
		return false;
	if (k) {
		uint64_t pid = 0;

		U64(sub, "pid", INT32_MAX, &pid);
		U64(sub, "nr_sessions", MAX_COUNTER, &r->agent_nr_sessions);
		U64(sub, "nr_requests", MAX_COUNTER, &r->agent_nr_requests);
		U64(sub, "nr_bad_requests", MAX_COUNTER, &r->agent_nr_bad_requests);
		U64(sub, "nr_long_lines", MAX_COUNTER, &r->agent_nr_long_lines);
		U64(sub, "nr_pressure_events", MAX_COUNTER, &r->agent_nr_pressure_events);
		U64(sub, "nr_pressure_sent", MAX_COUNTER, &r->agent_nr_pressure_sent);
		U64(sub, "nr_dropped_msgs", MAX_COUNTER, &r->agent_nr_dropped_msgs);
		if (!ok)
			return false;
		r->agent_pid = (int64_t)pid;
	}
	r->have_agent = k;
	return true;
}

static bool decode_pressure(struct json_object *o, struct agent_pressure *p)
{
	bool ok = true;

	memset(p, 0, sizeof(*p));
	U64(o, "seq", MAX_COUNTER, &p->seq);
	U64(o, "need_bytes", MAX_BYTES, &p->need_bytes);
	U64(o, "total_bytes", MAX_BYTES, &p->total_bytes);
	U64(o, "free_bytes", MAX_BYTES, &p->free_bytes);
	U64(o, "available_bytes", MAX_BYTES, &p->available_bytes);
	ok = ok && get_centi(o, "some_avg10", &p->some_avg10_centipct);
	ok = ok && get_centi(o, "full_avg10", &p->full_avg10_centipct);
	U64(o, "some_total_us", MAX_COUNTER, &p->some_total_us);
	ok = ok && get_u32(o, "psi_stall_us", UINT32_MAX, &p->psi_stall_us);
	ok = ok && get_u32(o, "psi_window_us", UINT32_MAX, &p->psi_window_us);
	return ok && p->free_bytes <= p->total_bytes && p->available_bytes <= p->total_bytes;
}

static bool decode_error(struct json_object *o, int64_t id, struct agent_error *e)
{
	memset(e, 0, sizeof(*e));
	e->id = id;
	if (!get_str(o, "error", e->code, sizeof(e->code)))
		return false;
	/* The message is informative only: a missing or long one is tolerated. */
	if (!get_str(o, "message", e->message, sizeof(e->message)))
		e->message[0] = '\0';
	return true;
}

static bool decode_hello(struct json_object *o, struct agent_hello *h)
{
	static const struct { const char *name; uint32_t bit; } caps[] = {
		{ "report", AGENT_CAP_REPORT }, { "config", AGENT_CAP_CONFIG },
		{ "reclaim.drop_caches", AGENT_CAP_DROP }, { "reclaim.compact", AGENT_CAP_COMPACT },
		{ "reclaim.proactive", AGENT_CAP_PROACTIVE }, { "pressure", AGENT_CAP_PRESSURE },
	};
	struct json_object *arr;
	uint64_t pid = 0;
	bool ok = true;
	size_t n;

	memset(h, 0, sizeof(*h));
	ok = ok && get_u32(o, "version", 1000, &h->version);
	U64(o, "pid", INT32_MAX, &pid);
	ok = ok && get_u32(o, "page_size", 1u << 30, &h->page_size);
	ok = ok && get_u32(o, "max_line_bytes", 1u << 20, &h->max_line_bytes);
	ok = ok && get_u32(o, "report_period_ms", UINT32_MAX, &h->report_period_ms);
	ok = ok && get_u32(o, "psi_stall_us", UINT32_MAX, &h->psi_stall_us);
	ok = ok && get_u32(o, "psi_window_us", UINT32_MAX, &h->psi_window_us);
	if (!ok || h->version < 1 || h->page_size < 4096 ||
	    (h->page_size & (h->page_size - 1)) || h->max_line_bytes < 256)
		return false;
	h->pid = (int64_t)pid;
	if (!json_object_object_get_ex(o, "caps", &arr) || !json_object_is_type(arr, json_type_array))
		return false;
	n = json_object_array_length(arr);
	if (n > 64)
		return false;
	for (size_t i = 0; i < n; i++) {
		struct json_object *s = json_object_array_get_idx(arr, i);
		bool known = false;

		if (!json_object_is_type(s, json_type_string))
			return false;
		for (size_t k = 0; k < sizeof(caps) / sizeof(caps[0]); k++)
			if (strcmp(json_object_get_string(s), caps[k].name) == 0) {
				h->caps |= caps[k].bit;
				known = true;
			}
		if (!known)
			h->nr_unknown_caps++;
	}
	return true;
}

#undef U64

/* --- framing and dispatch ---------------------------------------------------- */

static void queue_event(struct agent_client *c, const struct agent_event *ev)
{
	unsigned slot;

	if (c->ev_count == AGENT_CLIENT_MAX_EVENTS) {
		/* Drop the oldest: fresh pressure news matters more. */
		c->ev_head = (c->ev_head + 1) % AGENT_CLIENT_MAX_EVENTS;
		c->ev_count--;
		c->n.nr_events_dropped++;
	}
	slot = (c->ev_head + c->ev_count) % AGENT_CLIENT_MAX_EVENTS;
	c->ev[slot] = *ev;
	c->ev_count++;
	c->n.nr_events++;
}

int agent_client_pop_event(struct agent_client *c, struct agent_event *out)
{
	if (!c->ev_count)
		return -EAGAIN;
	*out = c->ev[c->ev_head];
	c->ev_head = (c->ev_head + 1) % AGENT_CLIENT_MAX_EVENTS;
	c->ev_count--;
	return 0;
}

/* GUEST: one complete line from the agent, without its newline. */
static void handle_line(struct agent_client *c, const char *line, size_t len)
{
	struct json_object *o, *idv, *tv;
	struct agent_event ev;
	const char *type;
	int64_t id = -1;
	size_t end;

	c->n.nr_lines++;
	while (len && (line[len - 1] == '\r' || line[len - 1] == ' ' || line[len - 1] == '\t'))
		len--;
	if (len == 0)
		return;
	if (memchr(line, '\0', len)) {
		c->n.nr_bad_json++;
		clog_(c, EBB_LOG_WARN, "agent: NUL byte in a %zu-byte line", len);
		return;
	}
	json_tokener_reset(c->tok);
	o = json_tokener_parse_ex(c->tok, line, (int)len);
	end = json_tokener_get_parse_end(c->tok);
	if (!o || json_tokener_get_error(c->tok) != json_tokener_success || end != len ||
	    !json_object_is_type(o, json_type_object)) {
		c->n.nr_bad_json++;
		clog_(c, EBB_LOG_WARN, "agent: bad JSON line (%zu bytes): %s", len,
		      o ? "trailing data or not an object"
			: json_tokener_error_desc(json_tokener_get_error(c->tok)));
		if (o)
			json_object_put(o);
		return;
	}
	if (!json_object_object_get_ex(o, "type", &tv) || !json_object_is_type(tv, json_type_string)) {
		c->n.nr_invalid++;
		clog_(c, EBB_LOG_WARN, "agent: message without a string type");
		goto out;
	}
	type = json_object_get_string(tv);
	if (json_object_object_get_ex(o, "id", &idv) && idv) {
		if (!json_object_is_type(idv, json_type_int) || json_object_get_int64(idv) < 0 ||
		    json_object_get_int64(idv) > MAX_ID) {
			c->n.nr_invalid++;
			clog_(c, EBB_LOG_WARN, "agent: bad id in a %s message", type);
			goto out;
		}
		id = json_object_get_int64(idv);
		if (id != c->await_id || c->reply) {
			c->n.nr_stray_replies++;
			clog_(c, EBB_LOG_INFO, "agent: stray reply id %" PRId64, id);
			goto out;
		}
		c->reply = o;
		return;
	}
	memset(&ev, 0, sizeof(ev));
	if (strcmp(type, "report") == 0) {
		ev.type = AGENT_EV_REPORT;
		if (!decode_report(o, &ev.u.report))
			goto invalid;
		ev.u.report.unsolicited = true;
	} else if (strcmp(type, "pressure") == 0) {
		ev.type = AGENT_EV_PRESSURE;
		if (!decode_pressure(o, &ev.u.pressure))
			goto invalid;
	} else if (strcmp(type, "error") == 0) {
		ev.type = AGENT_EV_ERROR;
		if (!decode_error(o, -1, &ev.u.error))
			goto invalid;
	} else {
		c->n.nr_unknown_type++;
		clog_(c, EBB_LOG_INFO, "agent: ignoring unknown message type");
		goto out;
	}
	queue_event(c, &ev);
	goto out;
invalid:
	c->n.nr_invalid++;
	clog_(c, EBB_LOG_WARN, "agent: invalid %s message dropped", type);
out:
	json_object_put(o);
}

void agent_client_feed(struct agent_client *c, const char *data, size_t len)
{
	while (len) {
		const char *nl = memchr(data, '\n', len);
		size_t chunk = nl ? (size_t)(nl - data) : len;

		if (c->discarding) {
			if (nl)
				c->discarding = false;
		} else if (chunk > c->cfg.max_line_bytes - c->in_len) {
			/* GUEST: cap the line length. */
			c->n.nr_long_lines++;
			clog_(c, EBB_LOG_WARN, "agent: line over %zu bytes discarded",
			      c->cfg.max_line_bytes);
			c->in_len = 0;
			c->discarding = nl == NULL;
		} else {
			memcpy(c->in + c->in_len, data, chunk);
			c->in_len += chunk;
			if (nl) {
				handle_line(c, c->in, c->in_len);
				c->in_len = 0;
			}
		}
		if (!nl)
			break;
		data = nl + 1;
		len -= chunk + 1;
	}
}

/* Read what is there (waiting up to timeout_ms) and feed it. */
static int pump(struct agent_client *c, int timeout_ms)
{
	struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
	char buf[4096];
	ssize_t n;
	int rc;

	if (c->eof)
		return -EPIPE;
	rc = poll(&pfd, 1, timeout_ms);
	if (rc < 0)
		return errno == EINTR ? 0 : -errno;
	if (rc == 0)
		return -ETIMEDOUT;
	n = read(c->fd, buf, sizeof(buf));
	if (n < 0)
		return errno == EINTR || errno == EAGAIN ? 0 : -errno;
	if (n == 0) {
		c->eof = true;
		return -EPIPE;
	}
	agent_client_feed(c, buf, (size_t)n);
	return 0;
}

int agent_client_fd(const struct agent_client *c)
{
	return c->fd;
}

int agent_client_read(struct agent_client *c)
{
	int rc = pump(c, 0);

	return rc == -ETIMEDOUT ? 0 : rc;
}

static int remaining_ms(uint64_t deadline)
{
	uint64_t now = mono_ms();

	return now >= deadline ? 0 : (int)(deadline - now > INT32_MAX ? INT32_MAX : deadline - now);
}

static int write_all(struct agent_client *c, const char *s, size_t len, uint64_t deadline)
{
	while (len) {
		ssize_t n = send(c->fd, s, len, MSG_NOSIGNAL);

		if (n < 0 && errno == ENOTSOCK)
			n = write(c->fd, s, len);
		if (n < 0) {
			struct pollfd pfd = { .fd = c->fd, .events = POLLOUT };

			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				return errno == EPIPE ? -EPIPE : -errno;
			if (poll(&pfd, 1, remaining_ms(deadline)) == 0)
				return -ETIMEDOUT;
			continue;
		}
		s += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Send `line` (the id is inserted by the caller) and wait for the reply of
 * the expected type.  On success *reply holds it (caller puts it). */
static int request(struct agent_client *c, int64_t id, const char *line, const char *want,
		   int timeout_ms, struct json_object **reply)
{
	uint64_t deadline = mono_ms() + (uint64_t)(timeout_ms < 0 ? 0 : timeout_ms);
	struct json_object *tv;
	int rc;

	*reply = NULL;
	if (c->reply) {
		json_object_put(c->reply);
		c->reply = NULL;
	}
	c->await_id = id;
	rc = write_all(c, line, strlen(line), deadline);
	while (!rc && !c->reply) {
		rc = pump(c, remaining_ms(deadline));
		if (rc == -ETIMEDOUT || (!rc && !c->reply && remaining_ms(deadline) == 0))
			rc = -ETIMEDOUT;
	}
	c->await_id = -1;
	if (!c->reply)
		return rc ? rc : -ETIMEDOUT;
	*reply = c->reply;
	c->reply = NULL;
	json_object_object_get_ex(*reply, "type", &tv);
	if (strcmp(json_object_get_string(tv), "error") == 0) {
		if (!decode_error(*reply, id, &c->last_error)) {
			c->n.nr_invalid++;
			rc = -EPROTO;
		} else {
			rc = -EREMOTEIO;
		}
	} else if (strcmp(json_object_get_string(tv), want) != 0) {
		c->n.nr_invalid++;
		clog_(c, EBB_LOG_WARN, "agent: %s reply to a %s request",
		      json_object_get_string(tv), want);
		rc = -EPROTO;
	} else {
		return 0;
	}
	json_object_put(*reply);
	*reply = NULL;
	return rc;
}

int agent_client_hello(struct agent_client *c, int timeout_ms, struct agent_hello *out)
{
	int64_t id = ++c->next_id;
	struct json_object *r;
	char line[128];
	int rc;

	snprintf(line, sizeof(line), "{\"type\":\"hello\",\"id\":%" PRId64 ",\"version\":%d,"
		 "\"client\":\"ebb\"}\n", id, AGENT_CLIENT_PROTO_VERSION);
	rc = request(c, id, line, "hello", timeout_ms, &r);
	if (rc)
		return rc;
	if (!decode_hello(r, out)) {
		c->n.nr_invalid++;
		clog_(c, EBB_LOG_WARN, "agent: invalid hello reply");
		rc = -EPROTO;
	} else if (out->version != AGENT_CLIENT_PROTO_VERSION) {
		clog_(c, EBB_LOG_ERROR, "agent speaks protocol %u, we speak %d",
		      out->version, AGENT_CLIENT_PROTO_VERSION);
		rc = -EPROTONOSUPPORT;
	}
	json_object_put(r);
	return rc;
}

int agent_client_report(struct agent_client *c, int timeout_ms, struct agent_report *out)
{
	int64_t id = ++c->next_id;
	struct json_object *r;
	char line[64];
	int rc;

	snprintf(line, sizeof(line), "{\"type\":\"report\",\"id\":%" PRId64 "}\n", id);
	rc = request(c, id, line, "report", timeout_ms, &r);
	if (rc)
		return rc;
	if (!decode_report(r, out)) {
		c->n.nr_invalid++;
		clog_(c, EBB_LOG_WARN, "agent: invalid report reply");
		rc = -EPROTO;
	}
	json_object_put(r);
	return rc;
}

int agent_client_reclaim(struct agent_client *c, enum agent_reclaim_op op, uint64_t bytes,
			 bool slab, int timeout_ms, struct agent_reclaim_result *out)
{
	static const char *const names[] = {
		[AGENT_RECLAIM_DROP_CACHES] = "drop_caches",
		[AGENT_RECLAIM_COMPACT] = "compact",
		[AGENT_RECLAIM_PROACTIVE] = "proactive",
	};
	int64_t id = ++c->next_id;
	struct json_object *r;
	char line[192], opname[32];
	bool ok = true;
	int rc;

	if ((unsigned)op >= sizeof(names) / sizeof(names[0]) || bytes > MAX_BYTES)
		return -EINVAL;
	snprintf(line, sizeof(line),
		 "{\"type\":\"reclaim\",\"id\":%" PRId64 ",\"op\":\"%s\",\"bytes\":%" PRIu64
		 ",\"slab\":%s}\n", id, names[op], bytes, slab ? "true" : "false");
	rc = request(c, id, line, "reclaim", timeout_ms, &r);
	if (rc)
		return rc;
	memset(out, 0, sizeof(*out));
	{
		struct json_object *v;

		ok = get_str(r, "op", opname, sizeof(opname)) && strcmp(opname, names[op]) == 0;
		ok = ok && json_object_object_get_ex(r, "complete", &v) &&
		     json_object_is_type(v, json_type_boolean);
		if (ok)
			out->complete = json_object_get_boolean(v);
	}
	ok = ok && get_u64(r, "freed_bytes", MAX_BYTES, &out->freed_bytes);
	ok = ok && get_u64(r, "cache_dropped_bytes", MAX_BYTES, &out->cache_dropped_bytes);
	ok = ok && get_u64(r, "free_before_bytes", MAX_BYTES, &out->free_before_bytes);
	ok = ok && get_u64(r, "free_after_bytes", MAX_BYTES, &out->free_after_bytes);
	ok = ok && get_u64(r, "cache_before_bytes", MAX_BYTES, &out->cache_before_bytes);
	ok = ok && get_u64(r, "cache_after_bytes", MAX_BYTES, &out->cache_after_bytes);
	ok = ok && get_u64(r, "duration_us", MAX_COUNTER, &out->duration_us);
	if (!ok) {
		c->n.nr_invalid++;
		clog_(c, EBB_LOG_WARN, "agent: invalid reclaim reply");
		rc = -EPROTO;
	}
	json_object_put(r);
	return rc;
}

int agent_client_config(struct agent_client *c, int64_t report_period_ms,
			int64_t psi_stall_us, int64_t psi_window_us, int timeout_ms)
{
	int64_t id = ++c->next_id;
	struct json_object *r;
	char line[256];
	int n, rc;

	n = snprintf(line, sizeof(line), "{\"type\":\"config\",\"id\":%" PRId64, id);
	if (report_period_ms >= 0)
		n += snprintf(line + n, sizeof(line) - (size_t)n, ",\"report_period_ms\":%" PRId64,
			      report_period_ms);
	if (psi_stall_us >= 0)
		n += snprintf(line + n, sizeof(line) - (size_t)n, ",\"psi_stall_us\":%" PRId64,
			      psi_stall_us);
	if (psi_window_us >= 0)
		n += snprintf(line + n, sizeof(line) - (size_t)n, ",\"psi_window_us\":%" PRId64,
			      psi_window_us);
	snprintf(line + n, sizeof(line) - (size_t)n, "}\n");
	rc = request(c, id, line, "config", timeout_ms, &r);
	if (rc)
		return rc;
	json_object_put(r);
	return 0;
}

int agent_client_next_event(struct agent_client *c, int timeout_ms, struct agent_event *out)
{
	uint64_t deadline = mono_ms() + (uint64_t)(timeout_ms < 0 ? 0 : timeout_ms);
	int rc;

	while (agent_client_pop_event(c, out) != 0) {
		rc = pump(c, remaining_ms(deadline));
		if (rc == -ETIMEDOUT || rc == -EPIPE)
			return agent_client_pop_event(c, out) == 0 ? 0 : rc;
		if (rc)
			return rc;
		if (remaining_ms(deadline) == 0 && c->ev_count == 0)
			return -ETIMEDOUT;
	}
	return 0;
}
