/*
 * test_agent_proto.c - the guest-agent protocol both ways: the agent core
 * (guest-agent/agent.c) run against sample /proc files in a temporary
 * directory, and the host client (client/agent_client.c) talking to it
 * over a socketpair, plus hostile and garbage input in both directions.
 */
#include <errno.h>
#include <pthread.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "guest-agent/agent.h"
#include "client/agent_client.h"

#define MIB ((uint64_t)1024 * 1024)
/* Feed a string literal, embedded NULs included. */
#define FEED(cl, lit) agent_client_feed(cl, lit, sizeof(lit) - 1)

static const char meminfo_txt[] =
	"MemTotal:         524288 kB\n"
	"MemFree:          262144 kB\n"
	"MemAvailable:     393216 kB\n"
	"Buffers:           65536 kB\n"
	"Cached:            32768 kB\n"
	"Active(file):      32768 kB\n"
	"Inactive(file):    65536 kB\n"
	"Dirty:              1024 kB\n"
	"Writeback:             0 kB\n";
static const char vmstat_txt[] =
	"pgscan_kswapd 10\npgscan_direct 11\npgsteal_kswapd 12\npgsteal_direct 13\n"
	"workingset_refault_anon 1\nworkingset_refault_file 2\npswpin 3\npswpout 4\n"
	"oom_kill 5\n";
static const char psi_txt[] =
	"some avg10=1.25 avg60=0.50 avg300=0.10 total=777\n"
	"full avg10=0.75 avg60=0.00 avg300=0.00 total=55\n";

struct fx {
	char dir[64];
	char cg[96];
	struct agent *a;
};

static void write_text(const char *dir, const char *name, const char *text)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static char *read_text(const char *dir, const char *name)
{
	static char buf[256];
	char path[256];
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "r");
	if (!f)
		return NULL;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static int setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));
	struct agent_cfg cfg = { 0 };
	char p[160];

	snprintf(fx->dir, sizeof(fx->dir), "/tmp/test_agent_proto.XXXXXX");
	if (!mkdtemp(fx->dir))
		return -1;
	snprintf(p, sizeof(p), "%s/pressure", fx->dir);
	mkdir(p, 0755);
	snprintf(p, sizeof(p), "%s/sys", fx->dir);
	mkdir(p, 0755);
	snprintf(p, sizeof(p), "%s/sys/vm", fx->dir);
	mkdir(p, 0755);
	snprintf(fx->cg, sizeof(fx->cg), "%s/cg", fx->dir);
	mkdir(fx->cg, 0755);
	write_text(fx->dir, "meminfo", meminfo_txt);
	write_text(fx->dir, "vmstat", vmstat_txt);
	write_text(fx->dir, "pressure/memory", psi_txt);
	write_text(fx->dir, "sys/vm/drop_caches", "");
	write_text(fx->dir, "sys/vm/compact_memory", "");
	write_text(fx->cg, "memory.reclaim", "");
	cfg.proc_root = fx->dir;
	cfg.cgroup_dir = fx->cg;
	if (agent_create(&cfg, &fx->a))
		return -1;
	agent_set_psi_armed(fx->a, true);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fx *fx = *state;
	char cmd[128];

	agent_destroy(fx->a);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->dir);
	if (system(cmd) != 0)
		return -1;
	free(fx);
	return 0;
}

/* Feed a string; return (and consume) all output as one static string. */
static const char *say(struct agent *a, const char *in)
{
	static char buf[AGENT_OUT_BYTES + 1];
	const char *out;
	size_t len;

	agent_input(a, in, strlen(in), 1000);
	agent_output(a, &out, &len);
	memcpy(buf, out, len);
	buf[len] = '\0';
	agent_output_consume(a, len);
	return buf;
}

static void test_agent_needs_hello(void **state)
{
	struct fx *fx = *state;
	const char *r;

	r = say(fx->a, "{\"type\":\"report\",\"id\":1}\n");
	assert_string_equal(r, "{\"type\":\"error\",\"id\":1,\"error\":\"need_hello\","
			    "\"message\":\"say hello first\"}\n");
	r = say(fx->a, "{\"type\":\"hello\",\"id\":2}\n");
	assert_non_null(strstr(r, "\"error\":\"bad_request\""));
	assert_false(agent_session_up(fx->a));
	r = say(fx->a, "{\"type\":\"hello\",\"id\":3,\"version\":1}\n");
	assert_non_null(strstr(r, "{\"type\":\"hello\",\"id\":3,\"version\":1,"));
	assert_non_null(strstr(r, "\"caps\":[\"report\",\"config\",\"reclaim.drop_caches\","
			       "\"reclaim.compact\",\"reclaim.proactive\",\"pressure\"]"));
	assert_true(agent_session_up(fx->a));
	/* A reset (host reconnected) needs a new hello. */
	agent_reset_session(fx->a);
	r = say(fx->a, "{\"type\":\"report\",\"id\":4}\n");
	assert_non_null(strstr(r, "need_hello"));
}

static void test_agent_report_and_split_input(void **state)
{
	struct fx *fx = *state;
	const char *r;

	say(fx->a, "{\"type\":\"hello\",\"id\":1,\"version\":1}\n");
	/* One request split across three reads, then two in one read. */
	assert_string_equal(say(fx->a, "{\"type\":\"rep"), "");
	assert_string_equal(say(fx->a, "ort\",\"id\""), "");
	r = say(fx->a, ":2}\r\n");
	assert_non_null(strstr(r, "\"type\":\"report\",\"id\":2,\"meminfo\":{\"total_bytes\":536870912,"
			       "\"free_bytes\":268435456,\"available_bytes\":402653184,"
			       "\"buffers_bytes\":67108864,\"cached_bytes\":33554432,"));
	assert_non_null(strstr(r, "\"pgscan_kswapd\":10,\"pgscan_direct\":11,\"pgsteal_kswapd\":12,"
			       "\"pgsteal_direct\":13,\"workingset_refault\":3,"));
	assert_non_null(strstr(r, "\"oom_kill\":5,"));
	assert_non_null(strstr(r, "\"psi\":{\"some\":{\"avg10\":1.25,\"avg60\":0.50,\"avg300\":0.10,"
			       "\"total_us\":777},\"full\":{\"avg10\":0.75,"));
	/* 512 MiB: reserve 32, floor 32; clean file 96-1 = 95 MiB;
	 * give back (256-32) + (95-32) = 287 MiB. */
	assert_non_null(strstr(r, "\"estimate\":{\"give_back_bytes\":300941312,"
			       "\"safe_target_bytes\":235929600,\"clean_file_bytes\":99614720,"));
	r = say(fx->a, "{\"type\":\"report\",\"id\":3}\n{\"type\":\"report\",\"id\":4}\n");
	assert_non_null(strstr(r, "\"id\":3,"));
	assert_non_null(strstr(r, "\"id\":4,"));
	/* A missing source is reported as null, not invented. */
	write_text(fx->dir, "vmstat", "");
	r = say(fx->a, "{\"type\":\"report\",\"id\":5}\n");
	assert_non_null(strstr(r, "\"vmstat\":null"));
}

static void test_agent_reclaim(void **state)
{
	struct fx *fx = *state;
	const char *r;

	say(fx->a, "{\"type\":\"hello\",\"id\":1,\"version\":1}\n");
	r = say(fx->a, "{\"type\":\"reclaim\",\"id\":2,\"op\":\"drop_caches\"}\n");
	assert_non_null(strstr(r, "{\"type\":\"reclaim\",\"id\":2,\"op\":\"drop_caches\","
			       "\"complete\":true,\"freed_bytes\":0,"));
	assert_string_equal(read_text(fx->dir, "sys/vm/drop_caches"), "1");
	say(fx->a, "{\"type\":\"reclaim\",\"id\":3,\"op\":\"drop_caches\",\"slab\":true}\n");
	assert_string_equal(read_text(fx->dir, "sys/vm/drop_caches"), "3");
	r = say(fx->a, "{\"type\":\"reclaim\",\"id\":4,\"op\":\"compact\"}\n");
	assert_non_null(strstr(r, "\"op\":\"compact\""));
	assert_string_equal(read_text(fx->dir, "sys/vm/compact_memory"), "1");
	r = say(fx->a, "{\"type\":\"reclaim\",\"id\":5,\"op\":\"proactive\",\"bytes\":1048576}\n");
	assert_non_null(strstr(r, "\"op\":\"proactive\""));
	assert_string_equal(read_text(fx->cg, "memory.reclaim"), "1048576");
	/* Hostile: bytes out of range, wrong types, unknown op. */
	r = say(fx->a, "{\"type\":\"reclaim\",\"id\":6,\"op\":\"proactive\",\"bytes\":536870913}\n");
	assert_non_null(strstr(r, "\"id\":6,\"error\":\"bad_request\""));
	r = say(fx->a, "{\"type\":\"reclaim\",\"id\":7,\"op\":\"proactive\",\"bytes\":-4096}\n");
	assert_non_null(strstr(r, "\"id\":7,\"error\":\"bad_request\""));
	r = say(fx->a, "{\"type\":\"reclaim\",\"id\":8,\"op\":\"proactive\",\"bytes\":\"4096\"}\n");
	assert_non_null(strstr(r, "\"id\":8,\"error\":\"bad_request\""));
	r = say(fx->a, "{\"type\":\"reclaim\",\"id\":9,\"op\":\"rm -rf\"}\n");
	assert_non_null(strstr(r, "\"id\":9,\"error\":\"bad_request\""));
	r = say(fx->a, "{\"type\":\"reclaim\",\"id\":10,\"op\":7}\n");
	assert_non_null(strstr(r, "\"id\":10,\"error\":\"bad_request\""));
	assert_string_equal(read_text(fx->cg, "memory.reclaim"), "1048576");
	/* The kernel's file missing -> an io error, not a crash. */
	write_text(fx->dir, "sys/vm/compact_memory", "");
	chmod(fx->dir, 0755);
	{
		char p[160];

		snprintf(p, sizeof(p), "%s/sys/vm/compact_memory", fx->dir);
		unlink(p);
	}
	r = say(fx->a, "{\"type\":\"reclaim\",\"id\":11,\"op\":\"compact\"}\n");
	assert_non_null(strstr(r, "\"id\":11,\"error\":\"io\""));
}

static void test_agent_garbage(void **state)
{
	struct fx *fx = *state;
	struct agent_counters c;
	char big[3000];
	const char *r;

	say(fx->a, "{\"type\":\"hello\",\"id\":1,\"version\":1}\n");
	r = say(fx->a, "hello?\n");
	assert_string_equal(r, "{\"type\":\"error\",\"id\":null,\"error\":\"bad_json\","
			    "\"message\":\"not a JSON object\"}\n");
	r = say(fx->a, "{\"type\":\"report\"}\n");
	assert_non_null(strstr(r, "\"id\":null,\"error\":\"bad_request\""));
	r = say(fx->a, "{\"type\":\"report\",\"id\":9007199254740992}\n");
	assert_non_null(strstr(r, "\"id\":null,\"error\":\"bad_request\""));
	r = say(fx->a, "{\"type\":5,\"id\":2}\n");
	assert_non_null(strstr(r, "\"id\":2,\"error\":\"bad_request\""));
	r = say(fx->a, "{\"type\":\"frobnicate\",\"id\":3,\"extra\":{\"x\":[1,2]}}\n");
	assert_non_null(strstr(r, "\"id\":3,\"error\":\"unknown_type\""));
	r = say(fx->a, "\n\n  \r\n");
	assert_string_equal(r, "");
	/* An overlong line, fed in pieces: one error, then the agent resyncs. */
	memset(big, '{', sizeof(big));
	agent_input(fx->a, big, sizeof(big), 1000);
	agent_input(fx->a, big, sizeof(big), 1000);
	r = say(fx->a, "}}}\n{\"type\":\"report\",\"id\":4}\n");
	assert_non_null(strstr(r, "\"error\":\"line_too_long\""));
	/* Exactly one error for the long line, and nothing for its tail. */
	assert_null(strstr(strstr(r, "line_too_long") + 1, "\"error\""));
	assert_non_null(strstr(r, "{\"type\":\"report\",\"id\":4,"));
	agent_get_counters(fx->a, &c);
	assert_int_equal(c.nr_long_lines, 1);
	assert_int_equal(c.nr_bad_requests, 6);
	assert_true(agent_session_up(fx->a));
}

static void test_agent_config_and_periodic(void **state)
{
	struct fx *fx = *state;
	uint32_t stall, window;
	bool changed;
	const char *out;
	size_t len;
	const char *r;

	say(fx->a, "{\"type\":\"hello\",\"id\":1,\"version\":1}\n");
	assert_int_equal(agent_tick(fx->a, 1000), UINT32_MAX);
	r = say(fx->a, "{\"type\":\"config\",\"id\":2,\"report_period_ms\":50}\n");
	assert_non_null(strstr(r, "\"id\":2,\"error\":\"bad_request\""));
	r = say(fx->a, "{\"type\":\"config\",\"id\":3,\"psi_stall_us\":2000000,\"psi_window_us\":1000000}\n");
	assert_non_null(strstr(r, "\"id\":3,\"error\":\"bad_request\""));
	r = say(fx->a, "{\"type\":\"config\",\"id\":4,\"psi_window_us\":100}\n");
	assert_non_null(strstr(r, "\"id\":4,\"error\":\"bad_request\""));
	agent_psi_config(fx->a, &stall, &window, &changed);
	assert_false(changed);
	r = say(fx->a, "{\"type\":\"config\",\"id\":5,\"report_period_ms\":500,"
		       "\"psi_stall_us\":150000,\"psi_window_us\":2000000}\n");
	assert_string_equal(r, "{\"type\":\"config\",\"id\":5,\"report_period_ms\":500,"
			    "\"psi_stall_us\":150000,\"psi_window_us\":2000000}\n");
	agent_psi_config(fx->a, &stall, &window, &changed);
	assert_true(changed);
	assert_int_equal(stall, 150000);
	assert_int_equal(window, 2000000);
	agent_psi_config(fx->a, &stall, &window, &changed);
	assert_false(changed);
	/* say() ran at t=1000 ms: the first report is due at 1500. */
	assert_int_equal(agent_tick(fx->a, 1200), 300);
	agent_output(fx->a, &out, &len);
	assert_int_equal(len, 0);
	assert_int_equal(agent_tick(fx->a, 1500), 500);
	agent_output(fx->a, &out, &len);
	assert_true(len > 0);
	assert_memory_equal(out, "{\"type\":\"report\",\"meminfo\":", 27);
	agent_output_consume(fx->a, len);
}

static void test_agent_pressure(void **state)
{
	struct fx *fx = *state;
	struct agent_counters c;
	const char *out;
	char buf[1024];
	size_t len;

	/* No session: counted, not sent. */
	agent_pressure(fx->a, 10);
	agent_output(fx->a, &out, &len);
	assert_int_equal(len, 0);
	say(fx->a, "{\"type\":\"hello\",\"id\":1,\"version\":1}\n");
	agent_pressure(fx->a, 20);
	agent_output(fx->a, &out, &len);
	assert_true(len < 1024);
	memcpy(buf, out, len);
	buf[len] = '\0';
	/* comfort max(64 MiB, 512/8) = 64 MiB < available 384 MiB: the minimum
	 * step max(16 MiB, 512/32) = 16 MiB. */
	assert_string_equal(buf, "{\"type\":\"pressure\",\"seq\":2,\"need_bytes\":16777216,"
			    "\"total_bytes\":536870912,\"free_bytes\":268435456,"
			    "\"available_bytes\":402653184,\"some_avg10\":1.25,\"full_avg10\":0.75,"
			    "\"some_total_us\":777,\"psi_stall_us\":100000,\"psi_window_us\":1000000}\n");
	agent_output_consume(fx->a, len);
	agent_get_counters(fx->a, &c);
	assert_int_equal(c.nr_pressure_events, 2);
	assert_int_equal(c.nr_pressure_sent, 1);
}

static void test_agent_output_bounded(void **state)
{
	struct fx *fx = *state;
	struct agent_counters c;
	const char *out;
	size_t len;

	say(fx->a, "{\"type\":\"hello\",\"id\":1,\"version\":1}\n");
	/* The host never reads: the queue fills and messages are dropped. */
	for (int i = 0; i < 200; i++)
		agent_input(fx->a, "{\"type\":\"report\",\"id\":7}\n", strlen("{\"type\":\"report\",\"id\":7}\n"), 1000);
	agent_output(fx->a, &out, &len);
	assert_true(len <= AGENT_OUT_BYTES);
	agent_get_counters(fx->a, &c);
	assert_true(c.nr_dropped_msgs > 0);
	assert_int_equal(c.nr_requests, 201);
	/* Every queued byte is a whole line. */
	assert_int_equal(out[len - 1], '\n');
	agent_output_consume(fx->a, len);
}

/* --- the client against the agent over a socketpair ------------------------- */

struct peer {
	struct agent *a;
	int fd;
	bool fire_pressure;    /* after the first report, push a pressure message */
};

static void *agent_thread(void *arg)
{
	struct peer *p = arg;
	char buf[4096];
	int reports = 0;

	for (;;) {
		const char *out;
		size_t len;
		ssize_t n = read(p->fd, buf, sizeof(buf));
		struct agent_counters c;

		if (n <= 0)
			break;
		agent_input(p->a, buf, (size_t)n, 1);
		agent_get_counters(p->a, &c);
		if (p->fire_pressure && (int)c.nr_requests > reports) {
			reports = (int)c.nr_requests;
			if (reports == 2)
				agent_pressure(p->a, 2);
		}
		agent_output(p->a, &out, &len);
		while (len) {
			ssize_t w = write(p->fd, out, len);

			if (w <= 0)
				return NULL;
			agent_output_consume(p->a, (size_t)w);
			agent_output(p->a, &out, &len);
		}
	}
	return NULL;
}

static void test_client_roundtrip(void **state)
{
	struct fx *fx = *state;
	struct agent_client_cfg cfg = { 0 };
	struct agent_client *cl;
	struct agent_hello h;
	struct agent_report r;
	struct agent_reclaim_result rr;
	struct agent_event ev;
	struct peer p = { .a = fx->a, .fire_pressure = true };
	pthread_t th;
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	p.fd = sv[1];
	assert_int_equal(pthread_create(&th, NULL, agent_thread, &p), 0);
	cfg.fd = sv[0];
	assert_int_equal(agent_client_create(&cfg, &cl), 0);

	assert_int_equal(agent_client_report(cl, 2000, &r), -EREMOTEIO);
	assert_string_equal(agent_client_last_error(cl)->code, "need_hello");
	assert_int_equal(agent_client_hello(cl, 2000, &h), 0);
	assert_int_equal(h.version, 1);
	assert_int_equal(h.caps, AGENT_CAP_REPORT | AGENT_CAP_CONFIG | AGENT_CAP_DROP |
			 AGENT_CAP_COMPACT | AGENT_CAP_PROACTIVE | AGENT_CAP_PRESSURE);
	assert_int_equal(h.max_line_bytes, AGENT_MAX_LINE_BYTES);
	assert_int_equal(h.pid, getpid());

	assert_int_equal(agent_client_report(cl, 2000, &r), 0);
	assert_true(r.have_meminfo && r.have_vmstat && r.have_psi && r.have_estimate && r.have_agent);
	assert_false(r.unsolicited);
	assert_int_equal(r.meminfo.total_bytes, 512 * MIB);
	assert_int_equal(r.meminfo.free_bytes, 256 * MIB);
	assert_int_equal(r.meminfo.buffers_bytes, 64 * MIB);
	assert_int_equal(r.vmstat.workingset_refault, 3);
	assert_int_equal(r.vmstat.oom_kill, 5);
	assert_int_equal(r.psi_some.avg10_centipct, 125);
	assert_int_equal(r.psi_full.avg10_centipct, 75);
	assert_int_equal(r.psi_some.total_us, 777);
	assert_int_equal(r.give_back_bytes, 287 * MIB);
	assert_int_equal(r.safe_target_bytes, 225 * MIB);

	/* The agent pushed a pressure message after that report. */
	assert_int_equal(agent_client_next_event(cl, 2000, &ev), 0);
	assert_int_equal(ev.type, AGENT_EV_PRESSURE);
	assert_int_equal(ev.u.pressure.need_bytes, 16 * MIB);
	assert_int_equal(ev.u.pressure.some_avg10_centipct, 125);

	assert_int_equal(agent_client_reclaim(cl, AGENT_RECLAIM_DROP_CACHES, 0, true, 2000, &rr), 0);
	assert_true(rr.complete);
	assert_string_equal(read_text(fx->dir, "sys/vm/drop_caches"), "3");
	assert_int_equal(agent_client_reclaim(cl, AGENT_RECLAIM_PROACTIVE, 2 * MIB, false, 2000, &rr), 0);
	assert_string_equal(read_text(fx->cg, "memory.reclaim"), "2097152");
	assert_int_equal(agent_client_reclaim(cl, AGENT_RECLAIM_PROACTIVE, 0, false, 2000, &rr),
			 -EREMOTEIO);
	assert_string_equal(agent_client_last_error(cl)->code, "bad_request");
	assert_int_equal(agent_client_config(cl, 1000, 200000, 2000000, 2000), 0);
	assert_int_equal(agent_client_config(cl, 1, -1, -1, 2000), -EREMOTEIO);

	/* The agent side goes away: requests fail with -EPIPE, not hang. */
	shutdown(sv[1], SHUT_RDWR);
	pthread_join(th, NULL);
	close(sv[1]);
	assert_int_equal(agent_client_report(cl, 2000, &r), -EPIPE);
	assert_int_equal(agent_client_next_event(cl, 100, &ev), -EPIPE);
	agent_client_destroy(cl);
	agent_client_destroy(NULL);

	/* Event-loop style on a fresh pair (the agent thread is gone): poll the
	 * fd, read once, pop. */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	cfg.fd = sv[0];
	assert_int_equal(agent_client_create(&cfg, &cl), 0);
	agent_pressure(fx->a, 3);
	{
		const char *out;
		size_t len;
		struct pollfd pfd = { .fd = agent_client_fd(cl), .events = POLLIN };

		agent_output(fx->a, &out, &len);
		assert_true(len > 0);
		assert_int_equal(write(sv[1], out, len), (ssize_t)len);
		agent_output_consume(fx->a, len);
		assert_int_equal(poll(&pfd, 1, 2000), 1);
		assert_int_equal(agent_client_read(cl), 0);
		assert_int_equal(agent_client_pop_event(cl, &ev), 0);
		assert_int_equal(ev.type, AGENT_EV_PRESSURE);
		assert_int_equal(agent_client_read(cl), 0);   /* nothing there: no block */
		close(sv[1]);
		assert_int_equal(agent_client_read(cl), -EPIPE);
	}
	agent_client_destroy(cl);
}

/* --- the client against a hostile guest ------------------------------------- */

struct logcount {
	int n;
};

static void count_log(void *ctx, enum ebb_log_level level, const char *msg)
{
	struct logcount *lc = ctx;

	(void)level;
	(void)msg;
	lc->n++;
}

static const char good_pressure[] =
	"{\"type\":\"pressure\",\"seq\":%d,\"need_bytes\":1048576,\"total_bytes\":100000000,"
	"\"free_bytes\":1,\"available_bytes\":2,\"some_avg10\":3.5,\"full_avg10\":0,"
	"\"some_total_us\":1,\"psi_stall_us\":1,\"psi_window_us\":2}\n";

static void test_client_hostile(void **state)
{
	static const char *const bad[] = {
		"not json\n",
		"[1,2,3]\n",
		"{\"type\":\"pressure\"\n",
		"{\"type\":\"pressure\"} trailing\n",
		"{\"type\":\"pressure\",\"seq\":NaN}\n",
		"{\"a\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}\n",
		"{\"type\":\"pressure\",\"seq\":1,\"need_bytes\":-1,\"total_bytes\":1,\"free_bytes\":0,"
		"\"available_bytes\":0,\"some_avg10\":0,\"full_avg10\":0,\"some_total_us\":0,"
		"\"psi_stall_us\":1,\"psi_window_us\":1}\n",
		"{\"type\":\"pressure\",\"seq\":1,\"need_bytes\":1e300,\"total_bytes\":1,\"free_bytes\":0,"
		"\"available_bytes\":0,\"some_avg10\":0,\"full_avg10\":0,\"some_total_us\":0,"
		"\"psi_stall_us\":1,\"psi_window_us\":1}\n",
		"{\"type\":\"pressure\",\"seq\":1,\"need_bytes\":99999999999999999999999,"
		"\"total_bytes\":1,\"free_bytes\":0,\"available_bytes\":0,\"some_avg10\":0,"
		"\"full_avg10\":0,\"some_total_us\":0,\"psi_stall_us\":1,\"psi_window_us\":1}\n",
		/* free > total */
		"{\"type\":\"pressure\",\"seq\":1,\"need_bytes\":1,\"total_bytes\":1,\"free_bytes\":2,"
		"\"available_bytes\":0,\"some_avg10\":0,\"full_avg10\":0,\"some_total_us\":0,"
		"\"psi_stall_us\":1,\"psi_window_us\":1}\n",
		/* percentage over 100 */
		"{\"type\":\"pressure\",\"seq\":1,\"need_bytes\":1,\"total_bytes\":1,\"free_bytes\":0,"
		"\"available_bytes\":0,\"some_avg10\":100.5,\"full_avg10\":0,\"some_total_us\":0,"
		"\"psi_stall_us\":1,\"psi_window_us\":1}\n",
		"{\"type\":\"pressure\",\"seq\":\"1\"}\n",
		"{\"type\":\"report\",\"meminfo\":5}\n",
		"{\"type\":\"report\",\"meminfo\":{\"total_bytes\":1}}\n",
		"{\"type\":7}\n",
		"{\"type\":\"error\",\"error\":42}\n",
		"{\"type\":\"pressure\",\"id\":-3}\n",
		"{\"type\":\"pressure\",\"id\":1.5}\n",
	};
	struct logcount lc = { 0 };
	struct agent_client_cfg cfg = { .max_line_bytes = 1024, .log = count_log, .log_ctx = &lc,
					.log_burst = 5, .log_window_ms = 60000 };
	struct agent_client_counters n;
	struct agent_client *cl;
	struct agent_event ev;
	char line[600], big[5000];
	int sv[2];

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	cfg.fd = sv[0];
	assert_int_equal(agent_client_create(&cfg, &cl), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		agent_client_feed(cl, bad[i], strlen(bad[i]));
	/* A NUL inside a line, an overlong line, an unknown type, a stray reply. */
	FEED(cl, "{\"type\":\"pres\0sure\"}\n");
	memset(big, 'x', sizeof(big));
	agent_client_feed(cl, big, sizeof(big));
	FEED(cl, "\n");
	FEED(cl, "{\"type\":\"newfangled\",\"x\":1}\n");
	FEED(cl, "{\"type\":\"report\",\"id\":77}\n");
	assert_int_equal(agent_client_pop_event(cl, &ev), -EAGAIN);
	agent_client_get_counters(cl, &n);
	/* json-c's strict mode still parses NaN: that line is caught by the
	 * type check (invalid), not the parser. */
	assert_int_equal(n.nr_bad_json, 6);
	assert_int_equal(n.nr_invalid, 13);
	assert_int_equal(n.nr_long_lines, 1);
	assert_int_equal(n.nr_unknown_type, 1);
	assert_int_equal(n.nr_stray_replies, 1);
	assert_int_equal(n.nr_events, 0);
	/* Rate-limited: 5 per window, the rest counted. */
	assert_int_equal(lc.n, 5);
	assert_true(n.nr_logs_suppressed >= 15);

	/* Still parses good input afterwards, split at every byte. */
	snprintf(line, sizeof(line), good_pressure, 1);
	for (size_t i = 0; line[i]; i++)
		agent_client_feed(cl, &line[i], 1);
	assert_int_equal(agent_client_pop_event(cl, &ev), 0);
	assert_int_equal(ev.type, AGENT_EV_PRESSURE);
	assert_int_equal(ev.u.pressure.seq, 1);
	assert_int_equal(ev.u.pressure.some_avg10_centipct, 350);

	/* Event queue is bounded: the oldest are dropped. */
	for (int i = 0; i < AGENT_CLIENT_MAX_EVENTS + 4; i++) {
		snprintf(line, sizeof(line), good_pressure, 100 + i);
		agent_client_feed(cl, line, strlen(line));
	}
	agent_client_get_counters(cl, &n);
	assert_int_equal(n.nr_events_dropped, 4);
	assert_int_equal(agent_client_pop_event(cl, &ev), 0);
	assert_int_equal(ev.u.pressure.seq, 104);
	for (int i = 1; i < AGENT_CLIENT_MAX_EVENTS; i++)
		assert_int_equal(agent_client_pop_event(cl, &ev), 0);
	assert_int_equal(ev.u.pressure.seq, 100 + AGENT_CLIENT_MAX_EVENTS + 3);
	assert_int_equal(agent_client_pop_event(cl, &ev), -EAGAIN);

	/* Unattributed agent errors are events. */
	FEED(cl, "{\"type\":\"error\",\"id\":null,\"error\":\"bad_json\",\"message\":\"m\"}\n");
	assert_int_equal(agent_client_pop_event(cl, &ev), 0);
	assert_int_equal(ev.type, AGENT_EV_ERROR);
	assert_string_equal(ev.u.error.code, "bad_json");
	assert_int_equal(ev.u.error.id, -1);

	/* Nobody answers: a request times out. */
	{
		struct agent_report r;

		assert_int_equal(agent_client_report(cl, 50, &r), -ETIMEDOUT);
	}
	agent_client_destroy(cl);
	close(sv[1]);
}

/* A reply of the wrong shape to a request is -EPROTO, not trusted. */
static void *liar_thread(void *arg)
{
	int fd = *(int *)arg;
	char buf[512];
	ssize_t n = read(fd, buf, sizeof(buf));
	static const char lie1[] =
		"{\"type\":\"hello\",\"id\":1,\"version\":1,\"pid\":1,\"page_size\":4097,"
		"\"max_line_bytes\":1024,\"caps\":[],\"report_period_ms\":0,\"psi_stall_us\":1,"
		"\"psi_window_us\":1}\n";
	static const char lie2[] = "{\"type\":\"report\",\"id\":2,\"meminfo\":{\"total_bytes\":1}}\n";
	static const char lie3[] = "{\"type\":\"config\",\"id\":3}\n";

	if (n <= 0 || write(fd, lie1, sizeof(lie1) - 1) < 0)
		return NULL;
	if (read(fd, buf, sizeof(buf)) <= 0 || write(fd, lie2, sizeof(lie2) - 1) < 0)
		return NULL;
	if (read(fd, buf, sizeof(buf)) <= 0 || write(fd, lie3, sizeof(lie3) - 1) < 0)
		return NULL;
	return NULL;
}

static void test_client_lying_replies(void **state)
{
	struct agent_client_cfg cfg = { 0 };
	struct agent_client *cl;
	struct agent_hello h;
	struct agent_report r;
	struct agent_reclaim_result rr;
	pthread_t th;
	int sv[2];

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	cfg.fd = sv[0];
	assert_int_equal(agent_client_create(&cfg, &cl), 0);
	assert_int_equal(pthread_create(&th, NULL, liar_thread, &sv[1]), 0);
	assert_int_equal(agent_client_hello(cl, 2000, &h), -EPROTO);       /* page_size 4097 */
	assert_int_equal(agent_client_report(cl, 2000, &r), -EPROTO);      /* fields missing */
	assert_int_equal(agent_client_reclaim(cl, AGENT_RECLAIM_COMPACT, 0, false, 2000, &rr),
			 -EPROTO);                                         /* config reply */
	pthread_join(th, NULL);
	agent_client_destroy(cl);
	close(sv[1]);
}

/* Random mutations of real agent output fed to the client: no crash (this
 * bites under SANITIZE=address,undefined), and whatever is accepted still
 * satisfies the documented ranges. */
static void test_client_mutations(void **state)
{
	struct fx *fx = *state;
	struct agent_client_cfg cfg = { 0 };
	struct agent_client_counters n;
	struct agent_client *cl;
	struct agent_event ev;
	static char lines[AGENT_OUT_BYTES];
	char buf[4096];
	const char *out;
	size_t len, nlines = 0, starts[8] = { 0 };
	unsigned accepted = 0;
	int sv[2];

	say(fx->a, "{\"type\":\"hello\",\"id\":1,\"version\":1}\n");
	agent_tick(fx->a, 1000);
	say(fx->a, "{\"type\":\"config\",\"id\":2,\"report_period_ms\":100}\n");
	agent_tick(fx->a, 5000);              /* an unsolicited report */
	agent_pressure(fx->a, 5000);          /* a pressure message */
	agent_input(fx->a, "junk\n", 5, 5000); /* an unattributed error */
	agent_output(fx->a, &out, &len);
	assert_true(len < sizeof(lines));
	memcpy(lines, out, len);
	agent_output_consume(fx->a, len);
	for (size_t i = 0; i < len && nlines < 8; i++)
		if (i == 0 || lines[i - 1] == '\n')
			starts[nlines++] = i;
	assert_int_equal(nlines, 3);

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	cfg.fd = sv[0];
	assert_int_equal(agent_client_create(&cfg, &cl), 0);
	/* Unmutated, all three are accepted. */
	agent_client_feed(cl, lines, len);
	for (int k = 0; k < 3; k++)
		assert_int_equal(agent_client_pop_event(cl, &ev), 0);
	srand(777);
	for (int it = 0; it < 20000; it++) {
		size_t k = (size_t)rand() % nlines;
		size_t end = k + 1 < nlines ? starts[k + 1] : len;
		size_t l = end - starts[k];

		assert_true(l <= sizeof(buf));
		memcpy(buf, lines + starts[k], l);
		for (int m = 0; m < 1 + rand() % 3; m++) {
			size_t pos = (size_t)rand() % (l - 1);   /* keep the newline */

			buf[pos] = "0123456789-.e\"{}[],:x \\\x00\xff"[rand() % 25];
		}
		agent_client_feed(cl, buf, l);
		while (agent_client_pop_event(cl, &ev) == 0) {
			accepted++;
			if (ev.type == AGENT_EV_PRESSURE) {
				assert_true(ev.u.pressure.free_bytes <= ev.u.pressure.total_bytes);
				assert_true(ev.u.pressure.some_avg10_centipct <= 10000);
			} else if (ev.type == AGENT_EV_REPORT && ev.u.report.have_meminfo) {
				assert_true(ev.u.report.meminfo.free_bytes <=
					    ev.u.report.meminfo.total_bytes);
				if (ev.u.report.have_estimate)
					assert_true(ev.u.report.give_back_bytes <=
						    ev.u.report.meminfo.total_bytes);
			} else if (ev.type == AGENT_EV_ERROR) {
				assert_true(strlen(ev.u.error.code) < sizeof(ev.u.error.code));
			}
		}
	}
	agent_client_get_counters(cl, &n);
	/* Some mutations keep a message valid (a digit for a digit). */
	assert_true(accepted > 0);
	assert_true(n.nr_bad_json + n.nr_invalid > 1000);
	agent_client_destroy(cl);
	close(sv[1]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_agent_needs_hello, setup, teardown),
		cmocka_unit_test_setup_teardown(test_agent_report_and_split_input, setup, teardown),
		cmocka_unit_test_setup_teardown(test_agent_reclaim, setup, teardown),
		cmocka_unit_test_setup_teardown(test_agent_garbage, setup, teardown),
		cmocka_unit_test_setup_teardown(test_agent_config_and_periodic, setup, teardown),
		cmocka_unit_test_setup_teardown(test_agent_pressure, setup, teardown),
		cmocka_unit_test_setup_teardown(test_agent_output_bounded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_client_roundtrip, setup, teardown),
		cmocka_unit_test(test_client_hostile),
		cmocka_unit_test_setup_teardown(test_client_mutations, setup, teardown),
		cmocka_unit_test(test_client_lying_replies),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
