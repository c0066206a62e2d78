/*
 * tests/integration/itest_ebbd.c — ebbd with VMM-side stubs on this machine
 * (no KVM needed): the real ebbd binary, the real control protocol, the
 * real reclaim engine on real memory in each stub (tests/integration/
 * stub_vm.c), a small pool budget (--vms-only).
 *
 * Checks, in order:
 *   1. discovery: two stubs running before ebbd join; a third started later
 *      joins, and leaves when it exits;
 *   2. memory flows: stub a's hot set shrinks and b's grows past what the
 *      budget allows for both; ebbd takes a's cold memory and b gets it;
 *   3. watermarks held: pool free below min never for more than a few
 *      seconds at a time while b runs at its new size;
 *   4. kill -9 of ebbd while it holds clamps: the stubs keep running and,
 *      after the lease, are back at their configured limits;
 *   5. a restarted ebbd picks both up; its clean exit (SIGTERM) lifts its
 *      clamps at once;
 *   6. every page of every stub intact (their exit status and counters);
 *   7. metrics: /metrics scraped with curl about once a second while memory
 *      flows (step 2), each scrape valid for `promtool check metrics`, the
 *      figures moving with the pool; 20 idle HTTP connections held open do
 *      not stop the balancer, and a scrape works again once they close;
 *   9. `ebb top` in batch mode: with ebbd, the pool line and a row per stub
 *      whose resident figure agrees with the stub's own `stats`, the working
 *      set and rates filled in the second frame; full screen on a
 *      pseudo-terminal, paused and quit by keys; with ebbd killed, and
 *      without -b and without a terminal, the VMs alone;
 *   8. configuration: an ebbd started with --config gives the [vm] and
 *      [vm NAME] settings to the stubs; a SIGHUP with a broken file keeps
 *      everything and logs the file and line; one with a good file switches
 *      the policy and the settings live.
 * TAP; exit 77 when userfaultfd here cannot run the engine.
 * Runs under flock /tmp/ebb-integ.lock when started by the suite.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "client/rundir.h"
#include "host-reclaim/region.h"
#include "tests/integration/tap.h"

#define MiB (1ull << 20)
#define LEASE_MS 2000

static char build[256], rundir[256];

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static pid_t spawn(char *const argv[], const char *out)
{
	pid_t pid;

	fflush(stdout);  /* else a child that reopens stdout writes our buffer again */
	pid = fork();

	if (pid == 0) {
		if (out && !freopen(out, "w", stdout))
			_exit(127);
		execv(argv[0], argv);
		_exit(127);
	}
	return pid;
}

static pid_t start_stub(const char *name, const char *mem, const char *max, const char *hot)
{
	char bin[512], hotfile[512], out[512];
	char *argv[16];
	int n = 0;

	snprintf(bin, sizeof(bin), "%s/tests/integration/stub_vm", build);
	snprintf(hotfile, sizeof(hotfile), "%s/../%s.hot", rundir, name);
	snprintf(out, sizeof(out), "%s/../%s.out", rundir, name);
	argv[n++] = bin;
	argv[n++] = "--rundir";
	argv[n++] = rundir;
	argv[n++] = "--name";
	argv[n++] = (char *)name;
	argv[n++] = "--mem";
	argv[n++] = (char *)mem;
	argv[n++] = "--hot";
	argv[n++] = (char *)hot;
	argv[n++] = "--hot-file";
	argv[n++] = hotfile;
	argv[n++] = "--swap-dir";
	argv[n++] = rundir;
	if (max) {
		argv[n++] = "--max";
		argv[n++] = (char *)max;
	}
	argv[n] = NULL;
	return spawn(argv, out);
}

static pid_t start_ebbd(const char *conf)
{
	char bin[512], log[512];
	char *argv[] = { bin, "--rundir", rundir, "--budget", "56M", "--vms-only", "--tick-ms",
			 "200", "--lease-ms", "2000", "--no-ksm", "--log", log,
			 "--metrics", "127.0.0.1:0", conf ? "--config" : NULL, (char *)conf, NULL };

	snprintf(bin, sizeof(bin), "%s/bin/ebbd", build);
	snprintf(log, sizeof(log), "%s/../ebbd.log", rundir);
	return spawn(argv, NULL);
}

static void set_hot(const char *name, unsigned mib)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/../%s.hot", rundir, name);
	f = fopen(path, "w");
	if (f) {
		fprintf(f, "%u\n", mib);
		fclose(f);
	}
}

/* One call; the result object (caller puts) or NULL. */
static struct json_object *call(const char *name, const char *cmd)
{
	struct vmm_ctl_response resp;
	struct json_object *r = NULL;
	int fd = vmm_ctl_connect(rundir, name);

	if (fd < 0)
		return NULL;
	if (!vmm_ctl_call(fd, cmd, NULL, 3000, &resp)) {
		if (resp.ok) {
			r = resp.result;
			resp.result = NULL;
		}
		vmm_ctl_response_release(&resp);
	}
	close(fd);
	return r;
}

static int64_t jint(struct json_object *o, const char *key)
{
	struct json_object *v;

	return o && json_object_object_get_ex(o, key, &v) ? json_object_get_int64(v) : -1;
}

/* The names in ebbd's `vms`, as "a,b," (sorted by the caller's expectation). */
static bool vms_are(const char *want)
{
	struct json_object *r = call("ebbd", "vms"), *arr;
	char got[256] = "";
	size_t i, n;
	bool same;

	if (!r)
		return false;
	if (json_object_object_get_ex(r, "vms", &arr)) {
		n = json_object_array_length(arr);
		for (i = 0; i < n; i++) {
			const char *nm = json_object_get_string(
				json_object_object_get(json_object_array_get_idx(arr, i), "name"));
			char probe[80];

			snprintf(probe, sizeof(probe), "%s,", nm);
			if (!strstr(want, probe)) {
				json_object_put(r);
				return false;
			}
			strncat(got, probe, sizeof(got) - strlen(got) - 1);
		}
	}
	same = strlen(got) == strlen(want);
	json_object_put(r);
	return same;
}

static bool wait_vms(const char *want, unsigned ms)
{
	uint64_t t0 = now_ms();

	while (now_ms() - t0 < ms) {
		if (vms_are(want))
			return true;
		sleep_ms(100);
	}
	return false;
}

static int64_t stat_of(const char *name, const char *key)
{
	struct json_object *r = call(name, "stats");
	int64_t v = jint(r, key);

	json_object_put(r);
	return v;
}

/* One of the VM's pool settings (`stats` .pool.KEY), -1 if absent. */
static int64_t setting_of(const char *name, const char *key)
{
	struct json_object *r = call(name, "stats"), *pool;
	int64_t v = r && json_object_object_get_ex(r, "pool", &pool) ? jint(pool, key) : -1;

	json_object_put(r);
	return v;
}

static const char *policy_now(char *buf, size_t len)
{
	struct json_object *r = call("ebbd", "pool"), *v;

	snprintf(buf, len, "%s", r && json_object_object_get_ex(r, "policy", &v) ?
		 json_object_get_string(v) : "?");
	json_object_put(r);
	return buf;
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	if (f) {
		fputs(text, f);
		fclose(f);
	}
}

static bool log_has(const char *needle)
{
	char path[512], line[1024];
	bool found = false;
	FILE *f;

	snprintf(path, sizeof(path), "%s/../ebbd.log", rundir);
	f = fopen(path, "r");
	while (f && fgets(line, sizeof(line), f))
		if (strstr(line, needle))
			found = true;
	if (f)
		fclose(f);
	return found;
}

/* ---- ebb top -------------------------------------------------------------------- */

/* Runs `ebb top ARGS` with stdout to @out; its exit status. */
static int run_top(const char *args, const char *out)
{
	char cmd[1400];
	int rc;

	snprintf(cmd, sizeof(cmd), "EBB_RUNTIME_DIR=%s %s/bin/ebb top %s > %s 2>&1 < /dev/null",
		 rundir, build, args, out);
	rc = system(cmd);
	return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

/* The columns of @name's row in the last frame of @file (0: no row). */
static int top_row(const char *file, const char *name, char cols[18][32])
{
	char line[512], last[512] = "";
	size_t n = strlen(name);
	FILE *f = fopen(file, "r");

	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, name, n) && line[n] == ' ')
			snprintf(last, sizeof(last), "%s", line);
	if (f)
		fclose(f);
	return sscanf(last, "%31s %31s %31s %31s %31s %31s %31s %31s %31s %31s %31s %31s %31s %31s "
		      "%31s %31s %31s %31s", cols[0], cols[1], cols[2], cols[3], cols[4], cols[5],
		      cols[6], cols[7], cols[8], cols[9], cols[10], cols[11], cols[12], cols[13],
		      cols[14], cols[15], cols[16], cols[17]);
}

static int count_in(const char *file, const char *needle)
{
	char line[512];
	int n = 0;
	FILE *f = fopen(file, "r");

	while (f && fgets(line, sizeof(line), f))
		if (strstr(line, needle))
			n++;
	if (f)
		fclose(f);
	return n;
}

/* "33M" / "1.5G" / "512K" in bytes; -1 for "-". */
static double top_size(const char *s)
{
	char *end;
	double v = strtod(s, &end);

	if (end == s)
		return -1;
	return *end == 'G' ? v * (double)(1 << 30) : *end == 'M' ? v * (double)MiB :
	       *end == 'K' ? v * 1024 : v;
}

static bool clamped(const char *name)
{
	struct json_object *r = call(name, "stats"), *pool, *c = NULL;
	bool on = r && json_object_object_get_ex(r, "pool", &pool) &&
		  json_object_object_get_ex(pool, "clamp", &c) && c;

	json_object_put(r);
	return on;
}

static int stop_child(pid_t pid, int sig)
{
	int status = -1;

	if (pid <= 0)
		return -1;
	kill(pid, sig);
	if (waitpid(pid, &status, 0) < 0)
		return -1;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* ---- metrics ------------------------------------------------------------------ */

static bool have_curl, have_promtool;

/* The port of the newest "metrics on http://127.0.0.1:PORT/metrics" line. */
static unsigned metrics_port(void)
{
	char path[512], line[512];
	unsigned port = 0, p;
	uint64_t t0 = now_ms();
	FILE *f;

	snprintf(path, sizeof(path), "%s/../ebbd.log", rundir);
	while (!port && now_ms() - t0 < 5000) {
		f = fopen(path, "r");
		while (f && fgets(line, sizeof(line), f)) {
			const char *m = strstr(line, "metrics on http://127.0.0.1:");

			if (m && sscanf(m, "metrics on http://127.0.0.1:%u/", &p) == 1)
				port = p;
		}
		if (f)
			fclose(f);
		if (!port)
			sleep_ms(50);
	}
	return port;
}

/* curl's exit status for one scrape into @out. */
static int scrape(unsigned port, const char *out)
{
	char cmd[1024];
	int rc;

	snprintf(cmd, sizeof(cmd), "curl -sf --max-time 5 -o %s http://127.0.0.1:%u/metrics", out,
		 port);
	rc = system(cmd);
	return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static bool promtool_ok(const char *file)
{
	char cmd[1400];

	snprintf(cmd, sizeof(cmd), "promtool check metrics < %s > %s.promtool 2>&1", file, file);
	return system(cmd) == 0;
}

/* The value of the sample whose line starts with @series ("name{labels}"). */
static double metric(const char *file, const char *series)
{
	char line[1024];
	size_t n = strlen(series);
	double v = -1;
	FILE *f = fopen(file, "r");

	while (f && fgets(line, sizeof(line), f))
		if (strncmp(line, series, n) == 0 && line[n] == ' ')
			v = strtod(line + n + 1, NULL);
	if (f)
		fclose(f);
	return v;
}

static bool have_prog(const char *name)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "command -v %s > /dev/null 2>&1", name);
	return system(cmd) == 0;
}

/* Scrapes taken while the pool changes. */
struct scrapes {
	unsigned port;
	const char *file;
	unsigned nr, nr_ok, nr_valid;
	double b_first, b_last, steps_first, steps_last;
	uint64_t last_ms;
};

static void take_scrape(struct scrapes *s)
{
	double v, st;

	char file[600];

	if (!have_curl || !s->port)
		return;
	s->last_ms = now_ms();
	/* each kept for promtool afterwards (not run here: the test must not
	 * starve the stubs of CPU while memory moves) */
	snprintf(file, sizeof(file), "%s.%u", s->file, s->nr++);
	if (scrape(s->port, file))
		return;
	v = metric(file, "ebb_vm_resident_bytes{vm=\"b\"}");
	st = metric(file, "ebb_balancer_steps_total");
	s->nr_ok++;
	if (s->b_first < 0)
		s->b_first = v;
	s->b_last = v;
	if (s->steps_first < 0)
		s->steps_first = st;
	s->steps_last = st;
}

int main(void)
{
	const char *b = getenv("BUILD");
	char top[] = "/tmp/ebb-itest-ebbd-XXXXXX", path[512];
	pid_t a, bb, c, d;
	uint64_t features, t0, worst_ms = 0, below_since = 0;
	int64_t res_a = -1, res_b = -1;
	struct scrapes sc = { .b_first = -1, .b_last = -1, .steps_first = -1, .steps_last = -1 };
	unsigned port;
	char mfile[512];
	bool flowed = false, a_clamped, b_clamped;
	int rc;

	if (ebb_region_probe(&features)) {
		printf("1..0 # SKIP userfaultfd here can neither move nor write-protect pages\n");
		return 77;
	}
	snprintf(build, sizeof(build), "%s", b && *b ? b : "build");
	snprintf(path, sizeof(path), "%s/bin/ebbd", build);
	if (access(path, X_OK)) {
		printf("1..0 # SKIP %s not built\n", path);
		return 77;
	}
	if (!mkdtemp(top))
		return 1;
	snprintf(rundir, sizeof(rundir), "%s/run", top);
	mkdir(rundir, 0700);
	have_curl = have_prog("curl");
	have_promtool = have_prog("promtool");
	printf("1..32\n");

	/* 1. discovery */
	set_hot("a", 40);
	set_hot("b", 8);
	a = start_stub("a", "64", "60", "40");
	bb = start_stub("b", "64", NULL, "8");
	sleep_ms(500);
	d = start_ebbd(NULL);
	ok(wait_vms("a,b,", 5000), "ebbd finds the two stubs already running");
	set_hot("c", 4);
	c = start_stub("c", "16", NULL, "4");
	ok(wait_vms("a,b,c,", 5000), "a stub started later joins the pool");
	rc = stop_child(c, SIGTERM);
	ok(rc == 0, "stub c exits cleanly, its pages intact (status %d)", rc);
	ok(wait_vms("a,b,", 5000), "a stub that exits leaves the pool");

	/* 2. memory flows from a (hot set shrinks) to b (grows), scraped all along */
	port = metrics_port();
	snprintf(mfile, sizeof(mfile), "%s/../metrics.txt", rundir);
	sc.port = port;
	sc.file = mfile;
	sleep_ms(2000);
	take_scrape(&sc);   /* before: b small */
	set_hot("a", 8);
	set_hot("b", 40);
	t0 = now_ms();
	while (now_ms() - t0 < 40000) {
		if (now_ms() - sc.last_ms >= 1000)
			take_scrape(&sc);
		res_a = stat_of("a", "resident_bytes");
		res_b = stat_of("b", "resident_bytes");
		if (res_b >= (int64_t)(32 * MiB) && res_a >= 0 && res_a <= (int64_t)(24 * MiB)) {
			flowed = true;
			break;
		}
		sleep_ms(250);
	}
	ok(flowed, "memory flows to the stub that grows: a %lld MiB, b %lld MiB after %llu ms",
	   (long long)(res_a >> 20), (long long)(res_b >> 20), (unsigned long long)(now_ms() - t0));
	if (!flowed) {
		/* what the balancer saw, for the failure's diagnosis */
		const char *what[] = { "pool", "vms", "trace" };

		for (size_t i = 0; i < sizeof(what) / sizeof(what[0]); i++) {
			struct json_object *o = call("ebbd", what[i]);

			printf("# ebbd %s: %s\n", what[i],
			       o ? json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN) : "(no answer)");
			json_object_put(o);
		}
	}

	/* 3. watermarks held while b runs at its new size */
	t0 = now_ms();
	while (now_ms() - t0 < 10000) {
		struct json_object *p = call("ebbd", "pool");
		int64_t free_b = jint(p, "free_bytes"), min_b = jint(p, "wmark_min_bytes");

		json_object_put(p);
		if (now_ms() - sc.last_ms >= 1000)
			take_scrape(&sc);
		if (free_b >= 0 && free_b < min_b) {
			if (!below_since)
				below_since = now_ms();
			if (now_ms() - below_since > worst_ms)
				worst_ms = now_ms() - below_since;
		} else {
			below_since = 0;
		}
		sleep_ms(100);
	}
	ok(worst_ms <= 5000, "pool free below min for at most %llu ms at a time (bound 5000)",
	   (unsigned long long)worst_ms);
	{
		struct json_object *p = call("ebbd", "pool"), *dm = NULL;
		int64_t ev = -1, wk = -1;

		if (p && json_object_object_get_ex(p, "daemon", &dm)) {
			ev = jint(dm, "nr_vm_events");
			wk = jint(dm, "nr_event_wakeups");
		}
		json_object_put(p);
		ok(ev > 0 && wk > 0, "the stubs' events woke the balancer (%lld events, %lld wakeups)",
		   (long long)ev, (long long)wk);
	}

	/* 9a. ebb top with ebbd */
	{
		char out[600], cols[18][32];
		int rc_top, na, nb;
		int64_t res;
		double top_res;

		snprintf(out, sizeof(out), "%s/../top1.txt", rundir);
		rc_top = run_top("-b -n 2 -d 0.5 -s n", out);
		res = stat_of("b", "resident_bytes") + stat_of("b", "compressed_bytes");
		na = top_row(out, "a", cols);
		nb = top_row(out, "b", cols);
		top_res = top_size(cols[1]);

		ok(rc_top == 0 && count_in(out, "ebb top - ") == 2 &&
		   count_in(out, "pool: budget 56M") == 2 && na >= 17 && nb >= 17,
		   "ebb top -b -n 2: two frames, the pool line, a row for each stub (status %d)", rc_top);
		ok(top_res >= 0 && fabs(top_res - (double)res) <= (double)(6 * MiB),
		   "its resident for b (%s) agrees with b's stats (%lld MiB)", cols[1],
		   (long long)(res >> 20));
		ok(strcmp(cols[6], "-") && strcmp(cols[7], "-") && strcmp(cols[9], "-"),
		   "the second frame has the working set (%s) and rates (refaults/s %s, psi some %s%%)",
		   cols[6], cols[7], cols[9]);
		/* the full-screen mode on a pseudo-terminal (script(1)): keys pause and quit */
		if (have_prog("script")) {
			char cmd[1400];
			uint64_t t_top = now_ms();

			snprintf(out, sizeof(out), "%s/../top-tty.txt", rundir);
			snprintf(cmd, sizeof(cmd), "(sleep 1; printf ' '; sleep 0.5; printf q) | "
				 "TERM=xterm EBB_RUNTIME_DIR=%s timeout 20 script -qec "
				 "'%s/bin/ebb top -d 0.3' /dev/null > %s 2>&1", rundir, build, out);
			rc_top = system(cmd);
			ok(rc_top == 0 && count_in(out, "ebb top - ") >= 1 && count_in(out, "PAUSED") >= 1 &&
			   now_ms() - t_top < 10000,
			   "on a terminal: full screen, space pauses, q quits (status %d, %llu ms)",
			   rc_top, (unsigned long long)(now_ms() - t_top));
		} else {
			printf("ok %d # SKIP script(1) (util-linux) not installed\n", ++tap_n);
		}
		if (tap_failed) {
			char cmd[700];

			snprintf(cmd, sizeof(cmd), "sed 's/^/# /' %s", out);
			if (system(cmd) < 0)
				perror("system");
		}
	}

	/* 7a. the scrapes taken while the pool changed */
	if (!have_curl || !port) {
		printf("ok %d # SKIP %s\n", ++tap_n, !have_curl ? "curl not installed" :
		       "ebbd logged no metrics address");
		printf("ok %d # SKIP no scrapes\n", ++tap_n);
		printf("ok %d # SKIP no scrapes\n", ++tap_n);
	} else {
		ok(sc.nr >= 5 && sc.nr_ok == sc.nr,
		   "curl scraped /metrics %u times while memory flowed, %u answered", sc.nr,
		   sc.nr_ok);
		if (have_promtool) {
			char bad[600] = "", probe[600];
			unsigned i;
			bool rejects;
			FILE *f;

			/* promtool must be able to say no: a counter without _total
			 * and a sample with no value */
			snprintf(probe, sizeof(probe), "%s.probe", mfile);
			f = fopen(probe, "w");
			if (f) {
				fputs("# HELP x_bytes x\n# TYPE x_bytes counter\nx_bytes 1\ny{a=\"b\"}\n", f);
				fclose(f);
			}
			rejects = f && !promtool_ok(probe);

			for (i = 0; i < sc.nr; i++) {
				char file[600];

				snprintf(file, sizeof(file), "%s.%u", mfile, i);
				if (access(file, R_OK) == 0 && promtool_ok(file))
					sc.nr_valid++;
				else if (access(file, R_OK) == 0 && !bad[0])
					snprintf(bad, sizeof(bad), "%s", file);   /* shown below */
			}
			ok(rejects && sc.nr_valid == sc.nr_ok, "promtool check metrics accepts %u of %u "
			   "scrapes (and rejects a broken probe: %s)", sc.nr_valid, sc.nr_ok,
			   rejects ? "yes" : "NO");
			if (sc.nr_valid != sc.nr_ok) {
				char cmd[600];

				snprintf(cmd, sizeof(cmd), "sed 's/^/# /' %.500s.promtool", bad);
				if (system(cmd) < 0)
					perror("system");
			}
		} else {
			printf("ok %d # SKIP promtool not installed (Debian package prometheus)\n",
			       ++tap_n);
		}
		ok(sc.b_first >= 0 && sc.b_last - sc.b_first >= (double)(16 * MiB) &&
		   sc.steps_last > sc.steps_first,
		   "the metrics moved with the pool: b resident %.0f -> %.0f MiB, balancer steps "
		   "%.0f -> %.0f", sc.b_first / (double)MiB, sc.b_last / (double)MiB, sc.steps_first,
		   sc.steps_last);
	}

	/* 7b. idle HTTP clients do not hold the balancer back */
	if (!have_curl || !port) {
		printf("ok %d # SKIP %s\n", ++tap_n, !have_curl ? "curl not installed" : "no port");
		printf("ok %d # SKIP %s\n", ++tap_n, !have_curl ? "curl not installed" : "no port");
		printf("ok %d # SKIP %s\n", ++tap_n, !have_curl ? "curl not installed" : "no port");
	} else {
		int fds[20], i, nr_open = 0, rc_held;
		struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
		struct json_object *p;
		int64_t s0, s1;

		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		for (i = 0; i < 20; i++) {
			fds[i] = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
			if (fds[i] >= 0 && connect(fds[i], (struct sockaddr *)&sa, sizeof(sa)) == 0) {
				nr_open++;
				/* half a request line, never finished */
				if (write(fds[i], "GET /metr", 9) < 0)
					perror("write");
			}
		}
		p = call("ebbd", "pool");
		s0 = p ? jint(json_object_object_get(p, "balancer"), "nr_steps") : -1;
		json_object_put(p);
		sleep_ms(2000);
		p = call("ebbd", "pool");
		s1 = p ? jint(json_object_object_get(p, "balancer"), "nr_steps") : -1;
		json_object_put(p);
		ok(nr_open > 0 && s0 >= 0 && s1 > s0,
		   "with %d idle HTTP connections held open the balancer keeps stepping "
		   "(%lld -> %lld steps in 2 s)", nr_open, (long long)s0, (long long)s1);
		rc_held = scrape(port, mfile);
		ok(rc_held != 0, "meanwhile a further scrape is refused (connection caps; curl "
		   "status %d)", rc_held);
		for (i = 0; i < 20; i++)
			if (fds[i] >= 0)
				close(fds[i]);
		sleep_ms(300);
		rc_held = scrape(port, mfile);
		ok(rc_held == 0 && metric(mfile, "ebb_pool_vms") == 2,
		   "once they close a scrape works again (curl status %d, ebb_pool_vms %.0f)",
		   rc_held, metric(mfile, "ebb_pool_vms"));
	}

	/* 4. kill -9 of ebbd while it holds clamps */
	t0 = now_ms();
	do {
		a_clamped = clamped("a");
		b_clamped = clamped("b");
		if (a_clamped || b_clamped)
			break;
		sleep_ms(50);
	} while (now_ms() - t0 < 10000);
	ok(a_clamped || b_clamped, "ebbd holds a clamp at the moment it is killed (a %d, b %d)",
	   a_clamped, b_clamped);
	rc = stop_child(d, SIGKILL);
	sleep_ms(LEASE_MS + 1500);
	ok(!clamped("a") && !clamped("b"), "after the lease both stubs are unclamped");
	ok(stat_of("a", "max_bytes") == (int64_t)(60 * MiB) && stat_of("b", "max_bytes") == 0,
	   "and back at their configured limits (a max %lld MiB, b max %lld)",
	   (long long)(stat_of("a", "max_bytes") >> 20), (long long)stat_of("b", "max_bytes"));
	ok(kill(a, 0) == 0 && kill(bb, 0) == 0, "both stubs kept running without ebbd");

	/* 9b. ebb top without ebbd, without -b, without a terminal */
	{
		char out[600], cols[18][32];
		int rc_top, na, nb;

		snprintf(out, sizeof(out), "%s/../top2.txt", rundir);
		rc_top = run_top("-n 1", out);
		na = top_row(out, "a", cols);
		nb = top_row(out, "b", cols);
		ok(rc_top == 0 && count_in(out, "ebbd is not running") == 1 && na >= 17 && nb >= 17 &&
		   !strcmp(cols[6], "-"),
		   "ebb top -n 1 with no ebbd and no terminal: one text frame, VMs only (status %d, "
		   "rows %d %d, WSS '%s')", rc_top, na, nb, cols[6]);
	}

	/* 5. restart */
	d = start_ebbd(NULL);
	ok(wait_vms("a,b,", 5000), "a restarted ebbd picks both stubs up");
	t0 = now_ms();
	while (now_ms() - t0 < 10000 && !clamped("a") && !clamped("b"))
		sleep_ms(50);
	rc = stop_child(d, SIGTERM);
	ok(rc == 0 && !clamped("a") && !clamped("b"),
	   "its clean exit (status %d) lifts its clamps at once", rc);

	/* 8. configuration file and SIGHUP */
	{
		char conf[512], pol[32], want[600];
		int64_t w_a, w_b, min_b;
		bool kept;

		snprintf(conf, sizeof(conf), "%s/../ebbd.conf", rundir);
		write_file(conf, "; ebbd for the test\n[pool]\npolicy = ebb\n\n[vm]\nweight = 150\n\n"
			   "[vm b]\nmin = 4M\nweight = 250\n");
		d = start_ebbd(conf);
		ok(wait_vms("a,b,", 5000), "an ebbd started with --config picks both stubs up");
		sleep_ms(500);
		w_a = setting_of("a", "weight");
		w_b = setting_of("b", "weight");
		min_b = setting_of("b", "min_bytes");
		ok(w_a == 150 && w_b == 250 && min_b == (int64_t)(4 * MiB),
		   "and gives them the file's settings: a weight %lld ([vm]), b weight %lld min %lld MiB "
		   "([vm b])", (long long)w_a, (long long)w_b, (long long)(min_b >> 20));
		write_file(conf, "[pool]\npolicy = static\n\n[vm b]\nweight = 20000\n");
		kill(d, SIGHUP);
		sleep_ms(700);
		snprintf(want, sizeof(want), "configuration kept: %s:5: weight: expected a whole "
			 "number from 1 to 10000", conf);
		kept = log_has(want);
		ok(kept && !strcmp(policy_now(pol, sizeof(pol)), "ebb") &&
		   setting_of("b", "weight") == 250,
		   "SIGHUP with a bad value keeps everything (policy %s, b weight %lld) and logs "
		   "file:line (%s)", pol, (long long)setting_of("b", "weight"), kept ? "yes" : "no");
		write_file(conf, "[pool]\npolicy = static\nbudget = 40M\nwmark_min = 1M\n"
			   "wmark_low = 2M\nwmark_high = 3M\n\n[vm b]\nweight = 400\n");
		kill(d, SIGHUP);
		sleep_ms(700);
		ok(!strcmp(policy_now(pol, sizeof(pol)), "static") && setting_of("b", "weight") == 400 &&
		   setting_of("a", "weight") == 150 && kill(a, 0) == 0 && kill(bb, 0) == 0,
		   "SIGHUP with a good file switches live: policy %s, b weight %lld, a weight %lld, "
		   "stubs still running", pol, (long long)setting_of("b", "weight"),
		   (long long)setting_of("a", "weight"));
		{
			struct json_object *p = call("ebbd", "pool");
			int64_t low = jint(p, "wmark_low_bytes"), budget = jint(p, "budget_bytes");

			json_object_put(p);
			ok(low == (int64_t)(2 * MiB) && budget == (int64_t)(56 * MiB),
			   "and the new watermarks (low %lld KiB), while --budget 56M on the command "
			   "line wins over the file's 40M (budget %lld MiB)", (long long)(low >> 10),
			   (long long)(budget >> 20));
		}
		rc = stop_child(d, SIGTERM);
		ok(rc == 0, "that ebbd exits cleanly (status %d)", rc);
	}

	/* 6. every page intact */
	rc = stop_child(a, SIGTERM);
	ok(rc == 0, "stub a: every page intact (status %d)", rc);
	rc = stop_child(bb, SIGTERM);
	ok(rc == 0, "stub b: every page intact (status %d)", rc);

	if (tap_failed) {
		char cmd[600];

		snprintf(cmd, sizeof(cmd), "tail -n 20 %s/ebbd.log | sed 's/^/# /'", top);
		if (system(cmd) < 0)
			perror("system");
	}
	if (getenv("EBB_TEST_KEEP")) {
		printf("# kept %s (EBB_TEST_KEEP)\n", top);
	} else {
		snprintf(path, sizeof(path), "rm -rf %s", top);
		if (system(path) < 0)
			perror("system");
	}
	return tap_failed ? 1 : 0;
}
