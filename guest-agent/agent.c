/*
 * agent.c - the ebb guest agent's core: line framing, request dispatch,
 * reports, cooperative reclaim and pressure messages.
 *
 * Overview: bytes from the host are framed into lines of at most
 * AGENT_MAX_LINE_BYTES (longer ones are discarded up to the next newline and
 * answered with one "line_too_long" error).  Each line is parsed by the
 * allocation-free flat JSON reader and dispatched on "type".  The first request
 * of every session must be "hello"; anything else before it gets "need_hello".
 * Every reply is formatted into one preallocated scratch buffer and appended to
 * a bounded output queue; when the queue is full the message is dropped and
 * counted (the host's requests time out and it retries, which is better than
 * the agent growing in a squeezed guest).  Unsolicited messages (periodic
 * "report", "pressure") are only sent while a session is up.
 */
#include "guest-agent/agent.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "guest-agent/agent_json.h"

#define MEMINFO_BYTES 8192
#define VMSTAT_BYTES  16384
#define PSI_BYTES     512
#define MSG_BYTES     8192
#define PATH_BYTES    512

#define LOG_WINDOW_NS   10000000000ull  /* EBB_RATELIMIT_BURST lines per window */

/* JSON numbers are exact up to 2^53 in most host-side parsers. */
#define MAX_JSON_ID ((1ll << 53) - 1)

struct agent {
	struct agent_cfg cfg;
	char proc_root[PATH_BYTES / 2];
	char cgroup_dir[PATH_BYTES / 2];
	bool have_cgroup;

	/* Session state. */
	bool session;
	bool discarding;          /* inside an overlong line */
	size_t in_len;
	char in[AGENT_MAX_LINE_BYTES];

	/* Output queue: bytes out[out_off..out_len). */
	size_t out_off, out_len;
	char out[AGENT_OUT_BYTES];

	/* Scratch, preallocated so that no path allocates. */
	char msg[MSG_BYTES];
	char meminfo_buf[MEMINFO_BYTES];
	char vmstat_buf[VMSTAT_BYTES];
	char psi_buf[PSI_BYTES];
	char path[PATH_BYTES];
	struct agent_jobj req;

	/* Periodic reports and PSI. */
	uint32_t report_period_ms;
	uint64_t next_report_ms;
	uint32_t psi_stall_us, psi_window_us;
	bool psi_changed;
	bool psi_armed;

	/* Rate-limited logging. */
	struct ebb_ratelimit rl;
	uint64_t now_ms;

	struct agent_counters c;
};

static void agent_log(struct agent *a, enum ebb_log_level lvl, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void agent_log(struct agent *a, enum ebb_log_level lvl, const char *fmt, ...)
{
	uint64_t nr_suppressed = 0;
	va_list ap;

	if (!a->cfg.log)
		return;
	if (!ebb_ratelimit_ok(&a->rl, a->now_ms * 1000000u, EBB_RATELIMIT_BURST, LOG_WINDOW_NS,
			      &nr_suppressed)) {
		a->c.nr_logs_suppressed++;
		return;
	}
	if (nr_suppressed) {
		char line[80];

		snprintf(line, sizeof(line), "log: %llu messages suppressed so far",
			 (unsigned long long)a->c.nr_logs_suppressed);
		a->cfg.log(a->cfg.log_ctx, EBB_LOG_WARN, line);
	}
	va_start(ap, fmt);
	ebb_vlogf(a->cfg.log, a->cfg.log_ctx, lvl, fmt, ap);
	va_end(ap);
}

static uint64_t mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

int agent_create(const struct agent_cfg *cfg, struct agent **out)
{
	struct agent *a;
	const char *root = cfg && cfg->proc_root ? cfg->proc_root : "/proc";

	*out = NULL;
	if (strlen(root) >= sizeof(a->proc_root) ||
	    (cfg && cfg->cgroup_dir && strlen(cfg->cgroup_dir) >= sizeof(a->cgroup_dir)))
		return -ENAMETOOLONG;
	a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	if (cfg)
		a->cfg = *cfg;
	strcpy(a->proc_root, root);
	a->cfg.proc_root = a->proc_root;
	if (cfg && cfg->cgroup_dir) {
		strcpy(a->cgroup_dir, cfg->cgroup_dir);
		a->cfg.cgroup_dir = a->cgroup_dir;
		a->have_cgroup = true;
	}
	a->report_period_ms = a->cfg.report_period_ms;
	a->psi_stall_us = a->cfg.psi_stall_us ? a->cfg.psi_stall_us : 100000;
	a->psi_window_us = a->cfg.psi_window_us ? a->cfg.psi_window_us : 1000000;
	*out = a;
	return 0;
}

void agent_destroy(struct agent *a)
{
	free(a);
}

void agent_reset_session(struct agent *a)
{
	a->session = false;
	a->discarding = false;
	a->in_len = 0;
	a->out_off = a->out_len = 0;
}

bool agent_session_up(const struct agent *a)
{
	return a->session;
}

void agent_get_counters(const struct agent *a, struct agent_counters *out)
{
	*out = a->c;
}

void agent_set_psi_armed(struct agent *a, bool armed)
{
	a->psi_armed = armed;
}

void agent_psi_applied(struct agent *a, uint32_t stall_us, uint32_t window_us)
{
	a->psi_stall_us = stall_us;
	a->psi_window_us = window_us;
}

void agent_psi_config(struct agent *a, uint32_t *stall_us, uint32_t *window_us,
		      bool *changed)
{
	*stall_us = a->psi_stall_us;
	*window_us = a->psi_window_us;
	*changed = a->psi_changed;
	a->psi_changed = false;
}

void agent_output(const struct agent *a, const char **data, size_t *len)
{
	*data = a->out + a->out_off;
	*len = a->out_len - a->out_off;
}

void agent_output_consume(struct agent *a, size_t n)
{
	if (n > a->out_len - a->out_off)
		n = a->out_len - a->out_off;
	a->out_off += n;
	if (a->out_off == a->out_len)
		a->out_off = a->out_len = 0;
}

/* Append one finished message (from agent_jw_finish) to the queue. */
static void queue_msg(struct agent *a, struct agent_jw *w)
{
	int n = agent_jw_finish(w);

	if (n < 0) {
		a->c.nr_dropped_msgs++;
		agent_log(a, EBB_LOG_ERROR, "message did not fit %d bytes", MSG_BYTES);
		return;
	}
	if (a->out_off && (size_t)n > sizeof(a->out) - a->out_len) {
		memmove(a->out, a->out + a->out_off, a->out_len - a->out_off);
		a->out_len -= a->out_off;
		a->out_off = 0;
	}
	if ((size_t)n > sizeof(a->out) - a->out_len) {
		a->c.nr_dropped_msgs++;
		agent_log(a, EBB_LOG_WARN, "output queue full, message dropped");
		return;
	}
	memcpy(a->out + a->out_len, a->msg, (size_t)n);
	a->out_len += (size_t)n;
}

/* Read a whole small file into buf (NUL-terminated).  Returns its length or
 * -errno.  A file larger than the buffer is truncated (the fields we want
 * come first in meminfo; vmstat's buffer has room to spare). */
static ssize_t read_file(struct agent *a, const char *dir, const char *name,
			 char *buf, size_t cap)
{
	ssize_t n, total = 0;
	int fd;

	if ((size_t)snprintf(a->path, sizeof(a->path), "%s/%s", dir, name) >= sizeof(a->path))
		return -ENAMETOOLONG;
	fd = open(a->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	while ((size_t)total < cap - 1) {
		n = read(fd, buf + total, cap - 1 - (size_t)total);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			n = -errno;
			close(fd);
			return n;
		}
		if (n == 0)
			break;
		total += n;
	}
	close(fd);
	buf[total] = '\0';
	return total;
}

static int write_file(struct agent *a, const char *dir, const char *name, const char *val)
{
	size_t len = strlen(val);
	ssize_t n;
	int fd, rc = 0;

	if ((size_t)snprintf(a->path, sizeof(a->path), "%s/%s", dir, name) >= sizeof(a->path))
		return -ENAMETOOLONG;
	fd = open(a->path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	do {
		n = write(fd, val, len);
	} while (n < 0 && errno == EINTR);
	if (n < 0)
		rc = -errno;
	else if ((size_t)n != len)
		rc = -EIO;
	close(fd);
	return rc;
}

static int read_meminfo(struct agent *a, struct agent_meminfo *mi)
{
	ssize_t n = read_file(a, a->proc_root, "meminfo", a->meminfo_buf, sizeof(a->meminfo_buf));

	if (n < 0) {
		memset(mi, 0, sizeof(*mi));
		return (int)n;
	}
	return agent_meminfo_parse(a->meminfo_buf, (size_t)n, mi);
}

static int read_vmstat(struct agent *a, struct agent_vmstat *vs)
{
	ssize_t n = read_file(a, a->proc_root, "vmstat", a->vmstat_buf, sizeof(a->vmstat_buf));

	if (n < 0) {
		memset(vs, 0, sizeof(*vs));
		return (int)n;
	}
	return agent_vmstat_parse(a->vmstat_buf, (size_t)n, vs);
}

static int read_psi(struct agent *a, struct agent_psi *psi)
{
	ssize_t n = read_file(a, a->proc_root, "pressure/memory", a->psi_buf, sizeof(a->psi_buf));

	if (n < 0) {
		memset(psi, 0, sizeof(*psi));
		return (int)n;
	}
	return agent_psi_parse(a->psi_buf, (size_t)n, psi);
}

/* --- message builders ------------------------------------------------------ */

static void begin(struct agent *a, struct agent_jw *w, const char *type, const int64_t *id)
{
	agent_jw_init(w, a->msg, sizeof(a->msg));
	agent_jw_obj_begin(w, NULL);
	agent_jw_str(w, "type", type);
	if (id)
		agent_jw_i64(w, "id", *id);
}

static void send_error(struct agent *a, const int64_t *id, const char *code,
		       const char *message)
{
	struct agent_jw w;

	a->c.nr_bad_requests++;
	agent_jw_init(&w, a->msg, sizeof(a->msg));
	agent_jw_obj_begin(&w, NULL);
	agent_jw_str(&w, "type", "error");
	if (id)
		agent_jw_i64(&w, "id", *id);
	else
		agent_jw_null(&w, "id");
	agent_jw_str(&w, "error", code);
	agent_jw_str(&w, "message", message);
	agent_jw_obj_end(&w);
	queue_msg(a, &w);
}

static void put_meminfo(struct agent_jw *w, const struct agent_meminfo *mi)
{
	agent_jw_obj_begin(w, "meminfo");
	agent_jw_u64(w, "total_bytes", mi->total_bytes);
	agent_jw_u64(w, "free_bytes", mi->free_bytes);
	agent_jw_u64(w, "available_bytes", mi->available_bytes);
	agent_jw_u64(w, "buffers_bytes", mi->buffers_bytes);
	agent_jw_u64(w, "cached_bytes", mi->cached_bytes);
	agent_jw_u64(w, "swap_cached_bytes", mi->swap_cached_bytes);
	agent_jw_u64(w, "active_anon_bytes", mi->active_anon_bytes);
	agent_jw_u64(w, "inactive_anon_bytes", mi->inactive_anon_bytes);
	agent_jw_u64(w, "active_file_bytes", mi->active_file_bytes);
	agent_jw_u64(w, "inactive_file_bytes", mi->inactive_file_bytes);
	agent_jw_u64(w, "unevictable_bytes", mi->unevictable_bytes);
	agent_jw_u64(w, "mlocked_bytes", mi->mlocked_bytes);
	agent_jw_u64(w, "swap_total_bytes", mi->swap_total_bytes);
	agent_jw_u64(w, "swap_free_bytes", mi->swap_free_bytes);
	agent_jw_u64(w, "dirty_bytes", mi->dirty_bytes);
	agent_jw_u64(w, "writeback_bytes", mi->writeback_bytes);
	agent_jw_u64(w, "anon_pages_bytes", mi->anon_pages_bytes);
	agent_jw_u64(w, "mapped_bytes", mi->mapped_bytes);
	agent_jw_u64(w, "shmem_bytes", mi->shmem_bytes);
	agent_jw_u64(w, "sreclaimable_bytes", mi->sreclaimable_bytes);
	agent_jw_u64(w, "sunreclaim_bytes", mi->sunreclaim_bytes);
	agent_jw_obj_end(w);
}

static void put_psi_line(struct agent_jw *w, const char *key, const struct agent_psi_line *l)
{
	if (!l->present) {
		agent_jw_null(w, key);
		return;
	}
	agent_jw_obj_begin(w, key);
	agent_jw_centi(w, "avg10", l->avg10_centipct);
	agent_jw_centi(w, "avg60", l->avg60_centipct);
	agent_jw_centi(w, "avg300", l->avg300_centipct);
	agent_jw_u64(w, "total_us", l->total_us);
	agent_jw_obj_end(w);
}

static void build_report(struct agent *a, struct agent_jw *w, const int64_t *id)
{
	struct agent_meminfo mi;
	struct agent_vmstat vs;
	struct agent_psi psi;
	struct agent_estimate est;
	int mrc = read_meminfo(a, &mi);
	int vrc = read_vmstat(a, &vs);
	int prc = read_psi(a, &psi);

	begin(a, w, "report", id);
	if (mrc == 0) {
		put_meminfo(w, &mi);
	} else {
		agent_jw_null(w, "meminfo");
		agent_log(a, EBB_LOG_WARN, "meminfo: %s", strerror(-mrc));
	}
	if (vrc == 0) {
		agent_jw_obj_begin(w, "vmstat");
		agent_jw_u64(w, "pgscan_kswapd", vs.pgscan_kswapd);
		agent_jw_u64(w, "pgscan_direct", vs.pgscan_direct);
		agent_jw_u64(w, "pgsteal_kswapd", vs.pgsteal_kswapd);
		agent_jw_u64(w, "pgsteal_direct", vs.pgsteal_direct);
		agent_jw_u64(w, "workingset_refault", vs.workingset_refault);
		agent_jw_u64(w, "workingset_refault_anon", vs.workingset_refault_anon);
		agent_jw_u64(w, "workingset_refault_file", vs.workingset_refault_file);
		agent_jw_u64(w, "pswpin", vs.pswpin);
		agent_jw_u64(w, "pswpout", vs.pswpout);
		agent_jw_u64(w, "oom_kill", vs.oom_kill);
		agent_jw_u64(w, "pgmajfault", vs.pgmajfault);
		agent_jw_u64(w, "allocstall", vs.allocstall);
		agent_jw_u64(w, "compact_stall", vs.compact_stall);
		agent_jw_obj_end(w);
	} else {
		agent_jw_null(w, "vmstat");
	}
	if (prc == 0) {
		agent_jw_obj_begin(w, "psi");
		put_psi_line(w, "some", &psi.some);
		put_psi_line(w, "full", &psi.full);
		agent_jw_obj_end(w);
	} else {
		agent_jw_null(w, "psi");
	}
	if (mrc == 0) {
		agent_estimate_compute(&mi, &a->cfg.est, &est);
		agent_jw_obj_begin(w, "estimate");
		agent_jw_u64(w, "give_back_bytes", est.give_back_bytes);
		agent_jw_u64(w, "safe_target_bytes", est.safe_target_bytes);
		agent_jw_u64(w, "clean_file_bytes", est.clean_file_bytes);
		agent_jw_u64(w, "free_reserve_bytes", est.free_reserve_bytes);
		agent_jw_u64(w, "cache_floor_bytes", est.cache_floor_bytes);
		agent_jw_obj_end(w);
	} else {
		agent_jw_null(w, "estimate");
	}
	agent_jw_obj_begin(w, "agent");
	agent_jw_i64(w, "pid", (int64_t)getpid());
	agent_jw_u64(w, "nr_sessions", a->c.nr_sessions);
	agent_jw_u64(w, "nr_requests", a->c.nr_requests);
	agent_jw_u64(w, "nr_bad_requests", a->c.nr_bad_requests);
	agent_jw_u64(w, "nr_long_lines", a->c.nr_long_lines);
	agent_jw_u64(w, "nr_pressure_events", a->c.nr_pressure_events);
	agent_jw_u64(w, "nr_pressure_sent", a->c.nr_pressure_sent);
	agent_jw_u64(w, "nr_dropped_msgs", a->c.nr_dropped_msgs);
	agent_jw_obj_end(w);
	agent_jw_obj_end(w);
}

static bool can_proactive(struct agent *a)
{
	if (!a->have_cgroup)
		return false;
	if ((size_t)snprintf(a->path, sizeof(a->path), "%s/memory.reclaim", a->cgroup_dir) >=
	    sizeof(a->path))
		return false;
	return access(a->path, W_OK) == 0;
}

/* --- requests ---------------------------------------------------------------- */

static void do_hello(struct agent *a, int64_t id)
{
	const struct agent_jfield *v = agent_json_get(&a->req, "version");
	struct agent_jw w;

	/* CLIENT: the host's protocol version: an integer >= 1. */
	if (!v || v->type != AGENT_J_INT || v->num < 1) {
		send_error(a, &id, "bad_request", "hello needs an integer version >= 1");
		return;
	}
	a->session = true;
	a->c.nr_sessions++;
	a->next_report_ms = a->now_ms + a->report_period_ms;
	begin(a, &w, "hello", &id);
	agent_jw_i64(&w, "version", AGENT_PROTO_VERSION);
	agent_jw_str(&w, "agent", "ebb-agent");
	agent_jw_i64(&w, "pid", (int64_t)getpid());
	agent_jw_i64(&w, "page_size", (int64_t)sysconf(_SC_PAGESIZE));
	agent_jw_i64(&w, "max_line_bytes", AGENT_MAX_LINE_BYTES);
	agent_jw_arr_begin(&w, "caps");
	agent_jw_str(&w, NULL, "report");
	agent_jw_str(&w, NULL, "config");
	agent_jw_str(&w, NULL, "reclaim.drop_caches");
	agent_jw_str(&w, NULL, "reclaim.compact");
	if (can_proactive(a))
		agent_jw_str(&w, NULL, "reclaim.proactive");
	if (a->psi_armed)
		agent_jw_str(&w, NULL, "pressure");
	agent_jw_arr_end(&w);
	agent_jw_u64(&w, "report_period_ms", a->report_period_ms);
	agent_jw_u64(&w, "psi_stall_us", a->psi_stall_us);
	agent_jw_u64(&w, "psi_window_us", a->psi_window_us);
	agent_jw_obj_end(&w);
	queue_msg(a, &w);
}

static void do_reclaim(struct agent *a, int64_t id)
{
	const struct agent_jfield *op = agent_json_get(&a->req, "op");
	const struct agent_jfield *fb = agent_json_get(&a->req, "bytes");
	const struct agent_jfield *fs = agent_json_get(&a->req, "slab");
	struct agent_meminfo before, after;
	uint64_t t0, t1, cache_before, cache_after;
	bool complete = true;
	struct agent_jw w;
	char val[32];
	int rc;

	/* CLIENT: op is one of three names; bytes (proactive) is bounded by the
	 * guest's own memory size below. */
	if (!op || op->type != AGENT_J_STRING) {
		send_error(a, &id, "bad_request", "reclaim needs a string op");
		return;
	}
	if (fs && fs->type != AGENT_J_BOOL) {
		send_error(a, &id, "bad_request", "slab must be a boolean");
		return;
	}
	if (read_meminfo(a, &before) != 0) {
		send_error(a, &id, "io", "cannot read meminfo");
		return;
	}
	t0 = mono_us();
	if (strcmp(op->str, "drop_caches") == 0) {
		rc = write_file(a, a->proc_root, "sys/vm/drop_caches", fs && fs->b ? "3" : "1");
	} else if (strcmp(op->str, "compact") == 0) {
		rc = write_file(a, a->proc_root, "sys/vm/compact_memory", "1");
	} else if (strcmp(op->str, "proactive") == 0) {
		if (!fb || fb->type != AGENT_J_INT || fb->num <= 0 ||
		    (uint64_t)fb->num > before.total_bytes) {
			send_error(a, &id, "bad_request",
				   "proactive needs bytes in 1..MemTotal");
			return;
		}
		if (!can_proactive(a)) {
			send_error(a, &id, "unsupported", "no cgroup v2 memory.reclaim");
			return;
		}
		snprintf(val, sizeof(val), "%lld", (long long)fb->num);
		rc = write_file(a, a->cgroup_dir, "memory.reclaim", val);
		/* The kernel says EAGAIN when it reclaimed less than asked. */
		if (rc == -EAGAIN) {
			complete = false;
			rc = 0;
		}
	} else {
		send_error(a, &id, "bad_request", "unknown reclaim op");
		return;
	}
	t1 = mono_us();
	if (rc) {
		agent_log(a, EBB_LOG_WARN, "reclaim %s: %s", op->str, strerror(-rc));
		send_error(a, &id, "io", strerror(-rc));
		return;
	}
	if (read_meminfo(a, &after) != 0) {
		send_error(a, &id, "io", "cannot read meminfo");
		return;
	}
	cache_before = before.cached_bytes + before.buffers_bytes;
	cache_after = after.cached_bytes + after.buffers_bytes;
	begin(a, &w, "reclaim", &id);
	agent_jw_str(&w, "op", op->str);
	agent_jw_bool(&w, "complete", complete);
	agent_jw_u64(&w, "freed_bytes",
		     after.free_bytes > before.free_bytes ? after.free_bytes - before.free_bytes : 0);
	agent_jw_u64(&w, "cache_dropped_bytes",
		     cache_before > cache_after ? cache_before - cache_after : 0);
	agent_jw_u64(&w, "free_before_bytes", before.free_bytes);
	agent_jw_u64(&w, "free_after_bytes", after.free_bytes);
	agent_jw_u64(&w, "cache_before_bytes", cache_before);
	agent_jw_u64(&w, "cache_after_bytes", cache_after);
	agent_jw_u64(&w, "duration_us", t1 - t0);
	agent_jw_obj_end(&w);
	queue_msg(a, &w);
}

static bool get_u32_field(struct agent *a, int64_t id, const char *key, int64_t lo,
			  int64_t hi, bool allow_zero, uint32_t *out, bool *bad)
{
	const struct agent_jfield *f = agent_json_get(&a->req, key);
	char msg[96];

	if (!f)
		return false;
	/* CLIENT: every config value is an integer within its documented range. */
	if (f->type != AGENT_J_INT || ((f->num < lo || f->num > hi) && !(allow_zero && f->num == 0))) {
		snprintf(msg, sizeof(msg), "%s must be an integer in %lld..%lld%s", key,
			 (long long)lo, (long long)hi, allow_zero ? " or 0" : "");
		send_error(a, &id, "bad_request", msg);
		*bad = true;
		return false;
	}
	*out = (uint32_t)f->num;
	return true;
}

static void do_config(struct agent *a, int64_t id)
{
	uint32_t period = a->report_period_ms, stall = a->psi_stall_us, window = a->psi_window_us;
	bool bad = false, set_period, set_stall, set_window;
	struct agent_jw w;

	set_period = get_u32_field(a, id, "report_period_ms", 100, 3600000, true, &period, &bad);
	if (bad)
		return;
	/* The kernel accepts PSI windows of 500 ms..10 s; unprivileged users
	 * only multiples of 2 s.  The agent runs as root. */
	set_stall = get_u32_field(a, id, "psi_stall_us", 1000, 10000000, false, &stall, &bad);
	if (bad)
		return;
	set_window = get_u32_field(a, id, "psi_window_us", 500000, 10000000, false, &window, &bad);
	if (bad)
		return;
	if (stall > window) {
		send_error(a, &id, "bad_request", "psi_stall_us must not exceed psi_window_us");
		return;
	}
	if (set_period) {
		a->report_period_ms = period;
		a->next_report_ms = a->now_ms + period;
	}
	if ((set_stall || set_window) &&
	    (stall != a->psi_stall_us || window != a->psi_window_us)) {
		a->psi_stall_us = stall;
		a->psi_window_us = window;
		a->psi_changed = true;
	}
	begin(a, &w, "config", &id);
	agent_jw_u64(&w, "report_period_ms", a->report_period_ms);
	agent_jw_u64(&w, "psi_stall_us", a->psi_stall_us);
	agent_jw_u64(&w, "psi_window_us", a->psi_window_us);
	agent_jw_obj_end(&w);
	queue_msg(a, &w);
}

/* CLIENT: one complete line from the host, without its newline. */
static void handle_line(struct agent *a, const char *line, size_t len)
{
	const struct agent_jfield *type, *idf;
	struct agent_jw w;
	int64_t id;
	int rc;

	while (len && (line[len - 1] == '\r' || line[len - 1] == ' '))
		len--;
	if (len == 0)
		return;
	rc = agent_json_parse_flat(line, len, &a->req);
	if (rc) {
		agent_log(a, EBB_LOG_WARN, "bad request line (%zu bytes): %s", len,
			  rc == -E2BIG ? "too many or too long fields" : "not a JSON object");
		send_error(a, NULL, rc == -E2BIG ? "too_big" : "bad_json",
			   rc == -E2BIG ? "too many or too long fields" : "not a JSON object");
		return;
	}
	idf = agent_json_get(&a->req, "id");
	if (!idf || idf->type != AGENT_J_INT || idf->num < 0 || idf->num > MAX_JSON_ID) {
		send_error(a, NULL, "bad_request", "id must be an integer in 0..2^53-1");
		return;
	}
	id = idf->num;
	type = agent_json_get(&a->req, "type");
	if (!type || type->type != AGENT_J_STRING) {
		send_error(a, &id, "bad_request", "type must be a string");
		return;
	}
	if (strcmp(type->str, "hello") == 0) {
		a->c.nr_requests++;
		do_hello(a, id);
		return;
	}
	if (!a->session) {
		send_error(a, &id, "need_hello", "say hello first");
		return;
	}
	if (strcmp(type->str, "report") == 0) {
		a->c.nr_requests++;
		build_report(a, &w, &id);
		queue_msg(a, &w);
	} else if (strcmp(type->str, "reclaim") == 0) {
		a->c.nr_requests++;
		do_reclaim(a, id);
	} else if (strcmp(type->str, "config") == 0) {
		a->c.nr_requests++;
		do_config(a, id);
	} else {
		send_error(a, &id, "unknown_type", "unknown request type");
	}
}

void agent_input(struct agent *a, const char *data, size_t len, uint64_t now_ms)
{
	a->now_ms = now_ms;
	while (len) {
		const char *nl = memchr(data, '\n', len);
		size_t chunk = nl ? (size_t)(nl - data) : len;

		if (a->discarding) {
			if (nl)
				a->discarding = false;
		} else if (a->in_len + chunk > sizeof(a->in)) {
			/* CLIENT: cap the line length. */
			a->c.nr_long_lines++;
			agent_log(a, EBB_LOG_WARN, "request line over %d bytes discarded",
				  AGENT_MAX_LINE_BYTES);
			send_error(a, NULL, "line_too_long", "request line too long");
			a->in_len = 0;
			a->discarding = nl == NULL;
		} else {
			memcpy(a->in + a->in_len, data, chunk);
			a->in_len += chunk;
			if (nl) {
				handle_line(a, a->in, a->in_len);
				a->in_len = 0;
			}
		}
		if (!nl)
			break;
		data = nl + 1;
		len -= chunk + 1;
	}
}

uint32_t agent_tick(struct agent *a, uint64_t now_ms)
{
	struct agent_jw w;

	a->now_ms = now_ms;
	if (!a->session || !a->report_period_ms)
		return UINT32_MAX;
	if (now_ms >= a->next_report_ms) {
		build_report(a, &w, NULL);
		queue_msg(a, &w);
		a->c.nr_reports_sent++;
		a->next_report_ms = now_ms + a->report_period_ms;
	}
	return (uint32_t)(a->next_report_ms - now_ms);
}

void agent_pressure(struct agent *a, uint64_t now_ms)
{
	struct agent_meminfo mi;
	struct agent_psi psi;
	struct agent_jw w;

	a->now_ms = now_ms;
	a->c.nr_pressure_events++;
	if (!a->session)
		return;
	if (read_meminfo(a, &mi) != 0)
		return;
	if (read_psi(a, &psi) != 0)
		memset(&psi, 0, sizeof(psi));
	begin(a, &w, "pressure", NULL);
	agent_jw_u64(&w, "seq", a->c.nr_pressure_events);
	agent_jw_u64(&w, "need_bytes",
		     agent_need_bytes(&mi, a->cfg.comfort_bytes, a->cfg.min_step_bytes));
	agent_jw_u64(&w, "total_bytes", mi.total_bytes);
	agent_jw_u64(&w, "free_bytes", mi.free_bytes);
	agent_jw_u64(&w, "available_bytes", mi.available_bytes);
	agent_jw_centi(&w, "some_avg10", psi.some.avg10_centipct);
	agent_jw_centi(&w, "full_avg10", psi.full.avg10_centipct);
	agent_jw_u64(&w, "some_total_us", psi.some.total_us);
	agent_jw_u64(&w, "psi_stall_us", a->psi_stall_us);
	agent_jw_u64(&w, "psi_window_us", a->psi_window_us);
	agent_jw_obj_end(&w);
	queue_msg(a, &w);
	a->c.nr_pressure_sent++;
}
