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
 *   6. every page of every stub intact (their exit status and counters).
 * TAP; exit 77 when userfaultfd here cannot run the engine.
 * Runs under flock /tmp/ebb-integ.lock when started by the suite.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

static pid_t start_ebbd(void)
{
	char bin[512], log[512];
	char *argv[] = { bin, "--rundir", rundir, "--budget", "56M", "--vms-only", "--tick-ms",
			 "200", "--lease-ms", "2000", "--no-ksm", "--log", log, NULL };

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

int main(void)
{
	const char *b = getenv("BUILD");
	char top[] = "/tmp/ebb-itest-ebbd-XXXXXX", path[512];
	pid_t a, bb, c, d;
	uint64_t features, t0, worst_ms = 0, below_since = 0;
	int64_t res_a = -1, res_b = -1;
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
	printf("1..15\n");

	/* 1. discovery */
	set_hot("a", 40);
	set_hot("b", 8);
	a = start_stub("a", "64", "60", "40");
	bb = start_stub("b", "64", NULL, "8");
	sleep_ms(500);
	d = start_ebbd();
	ok(wait_vms("a,b,", 5000), "ebbd finds the two stubs already running");
	set_hot("c", 4);
	c = start_stub("c", "16", NULL, "4");
	ok(wait_vms("a,b,c,", 5000), "a stub started later joins the pool");
	rc = stop_child(c, SIGTERM);
	ok(rc == 0, "stub c exits cleanly, its pages intact (status %d)", rc);
	ok(wait_vms("a,b,", 5000), "a stub that exits leaves the pool");

	/* 2. memory flows from a (hot set shrinks) to b (grows) */
	sleep_ms(2000);
	set_hot("a", 8);
	set_hot("b", 40);
	t0 = now_ms();
	while (now_ms() - t0 < 40000) {
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

	/* 3. watermarks held while b runs at its new size */
	t0 = now_ms();
	while (now_ms() - t0 < 10000) {
		struct json_object *p = call("ebbd", "pool");
		int64_t free_b = jint(p, "free_bytes"), min_b = jint(p, "wmark_min_bytes");

		json_object_put(p);
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

	/* 5. restart */
	d = start_ebbd();
	ok(wait_vms("a,b,", 5000), "a restarted ebbd picks both stubs up");
	t0 = now_ms();
	while (now_ms() - t0 < 10000 && !clamped("a") && !clamped("b"))
		sleep_ms(50);
	rc = stop_child(d, SIGTERM);
	ok(rc == 0 && !clamped("a") && !clamped("b"),
	   "its clean exit (status %d) lifts its clamps at once", rc);

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
