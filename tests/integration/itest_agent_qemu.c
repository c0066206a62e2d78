/*
 * itest_agent_qemu - the guest agent end to end in one QEMU TCG boot.
 *
 * Boots the guest image ($BUILD/images/guest) with the current
 * $BUILD/bin/ebb-agent and $BUILD/progs/memhog appended to its initrd, a
 * virtio-serial port org.ebb.agent.0 on a unix socket, and a 96 MiB virtio-blk
 * disk (module virtio_blk.ko from the image's kernel package, appended too).
 * Reading the disk fills the block device's page cache: clean, reclaimable
 * cache, which a file in the initramfs (tmpfs/ramfs) is not.  The script
 * keeps /dev/vda open, because the kernel truncates a block device's cache
 * when its last opener closes it.  The guest script
 * prints its /proc/meminfo to the console; this program drives the agent with
 * client/agent_client and checks, in order:
 *   hello + caps; report vs the guest's own /proc/meminfo; garbage does not
 *   kill the agent; host disconnect + reconnect; drop_caches frees the disk
 *   cache; compaction and proactive reclaim answer; a memory hog in the guest
 *   makes the PSI trigger fire and a "pressure" message arrive; the agent
 *   still answers after the squeeze; QEMU's balloon (inflated through QMP on
 *   top of a smaller hog) makes pressure again, the host deflates on the
 *   message and the guest's MemAvailable comes back.
 * Exits 77 with the reason when QEMU, the image or the agent are missing.
 */
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <poll.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "client/agent_client.h"
#include "tests/integration/tap.h"

#define MIB ((uint64_t)1024 * 1024)

static char tmpdir[256], console_path[300], sock_path[300], qmp_path[300];
static pid_t qemu_pid = -1;

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void client_log(void *ctx, enum ebb_log_level level, const char *msg)
{
	(void)ctx;
	(void)level;
	printf("# client: %s\n", msg);
}

/* The whole console so far (malloc'd, NUL-terminated). */
static char *read_console(void)
{
	FILE *f = fopen(console_path, "rb");
	char *buf;
	long n;

	if (!f)
		return strdup("");
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t)n + 1);
	n = (long)fread(buf, 1, (size_t)n, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static bool qemu_alive(void)
{
	int st;

	return qemu_pid > 0 && waitpid(qemu_pid, &st, WNOHANG) == 0;
}

/* Wait for a console line containing `marker`; false on timeout or QEMU exit. */
static bool wait_console(const char *marker, double timeout_s)
{
	double end = now_s() + timeout_s;

	while (now_s() < end) {
		char *c = read_console();
		bool found = strstr(c, marker) != NULL;

		free(c);
		if (found)
			return true;
		if (!qemu_alive())
			return false;
		usleep(200000);
	}
	return false;
}

/* "<prefix> Key:   123 kB" from the console, in bytes; -1 if absent. */
static long long console_kb(const char *prefix, const char *key)
{
	char *c = read_console(), pat[64], *p;
	long long v = -1;

	snprintf(pat, sizeof(pat), "%s %s:", prefix, key);
	p = strstr(c, pat);
	if (p)
		v = strtoll(p + strlen(pat), NULL, 10) * 1024;
	free(c);
	return v;
}

static long long console_meminfo(const char *key)
{
	return console_kb("EBB-MI", key);
}

static void dump_console_tail(void)
{
	char *c = read_console();
	size_t len = strlen(c);
	char *p = len > 6000 ? c + len - 6000 : c;

	for (char *line = strtok(p, "\n"); line; line = strtok(NULL, "\n"))
		printf("# console: %s\n", line);
	free(c);
}

/* A minimal QMP client for the test's own QEMU (trusted): send one command
 * line, read lines until the one carrying "return" (or "error"). */
static int qmp_cmd(int qfd, const char *cmd, char *reply, size_t cap)
{
	size_t len = 0;
	double end = now_s() + 30;

	if (write(qfd, cmd, strlen(cmd)) != (ssize_t)strlen(cmd))
		return -EIO;
	while (now_s() < end) {
		struct pollfd pfd = { .fd = qfd, .events = POLLIN };
		char *nl;
		ssize_t n;

		if (poll(&pfd, 1, 1000) <= 0)
			continue;
		n = read(qfd, reply + len, cap - 1 - len);
		if (n <= 0)
			return -EPIPE;
		len += (size_t)n;
		reply[len] = '\0';
		while ((nl = strchr(reply, '\n'))) {
			*nl = '\0';
			if (strstr(reply, "\"return\""))
				return 0;
			if (strstr(reply, "\"error\""))
				return -EREMOTEIO;
			len -= (size_t)(nl + 1 - reply);
			memmove(reply, nl + 1, len + 1);
		}
		if (len >= cap - 1)
			len = 0;
	}
	return -ETIMEDOUT;
}

static int qmp_connect(void)
{
	char buf[4096];
	int qfd = -1;
	double end = now_s() + 10;

	while (now_s() < end && agent_client_connect_unix(qmp_path, &qfd) != 0)
		usleep(100000);
	if (qfd < 0)
		return -1;
	if (qmp_cmd(qfd, "{\"execute\":\"qmp_capabilities\"}\n", buf, sizeof(buf)) != 0) {
		close(qfd);
		return -1;
	}
	return qfd;
}

static int qmp_balloon(int qfd, uint64_t bytes)
{
	char cmd[128], buf[4096];

	snprintf(cmd, sizeof(cmd), "{\"execute\":\"balloon\",\"arguments\":{\"value\":%" PRIu64 "}}\n",
		 bytes);
	return qmp_cmd(qfd, cmd, buf, sizeof(buf));
}

static int run(const char *cmd)
{
	int rc = system(cmd);

	return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static void cleanup(void)
{
	char cmd[400];

	if (qemu_pid > 0) {
		kill(qemu_pid, SIGKILL);
		waitpid(qemu_pid, NULL, 0);
		qemu_pid = -1;
	}
	if (tmpdir[0]) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
		run(cmd);
	}
}

static void need(bool cond, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void need(bool cond, const char *fmt, ...)
{
	va_list ap;

	if (cond)
		return;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	cleanup();
	exit(77);
}

/* The guest's script: fill the page cache from the disk, print meminfo, wait
 * until the host dropped the cache, then squeeze memory. */
static const char guest_script[] =
	"insmod /lib/modules/ebb-test/virtio_blk.ko\n"
	"i=0; while [ ! -b /dev/vda ] && [ $i -lt 100 ]; do sleep 1; i=$((i+1)); done\n"
	/* The kernel drops a block device's cache on its last close: hold it open. */
	"exec 3</dev/vda\n"
	"dd if=/dev/vda of=/dev/null bs=1M 2>/dev/null\n"
	"echo EBB-T filled\n"
	"sed 's/^/EBB-MI /' /proc/meminfo\n"
	"echo EBB-T meminfo-done\n"
	"i=0; while [ $(awk '/^Buffers:/{print $2}' /proc/meminfo) -gt 16384 ] && [ $i -lt 180 ];"
	" do sleep 1; i=$((i+1)); done\n"
	"echo EBB-T dropped\n"
	"memhog -l 40 -t 25 -r /dev/vda\n"
	"echo EBB-T hog-done\n"
	/* Phase 2: a smaller hog; the host inflates the balloon on top of it. */
	"echo EBB-T phase2\n"
	"memhog -l 0 -m 160 -t 40 -r /dev/vda\n"
	"echo EBB-T phase2-done\n"
	"grep -E '^(VmRSS|VmLck|VmHWM):' /proc/$(pidof ebb-agent)/status | sed 's/^/EBB-AG /'\n"
	"sleep 3\n";

int main(void)
{
	const char *build = getenv("BUILD") ? getenv("BUILD") : "build";
	char kernel[300], initrd[300], agent[300], memhog[300], cmd[4096], b64[2048];
	char initrd2[300], disk[300], append[2600];
	struct agent_client_cfg ccfg = { .log = client_log };
	struct agent_client *cl = NULL;
	struct agent_hello hello;
	struct agent_report rep, rep2;
	struct agent_reclaim_result rr;
	struct agent_client_counters cnt;
	struct agent_event ev;
	glob_t g;
	double t0 = now_s(), end;
	int fd = -1, rc;
	FILE *f;

	setvbuf(stdout, NULL, _IOLBF, 0);
	snprintf(kernel, sizeof(kernel), "%s/images/guest/vmlinuz", build);
	snprintf(initrd, sizeof(initrd), "%s/images/guest/initrd.img", build);
	snprintf(agent, sizeof(agent), "%s/bin/ebb-agent", build);
	snprintf(memhog, sizeof(memhog), "%s/progs/memhog", build);
	need(run("command -v qemu-system-x86_64 >/dev/null") == 0, "qemu-system-x86_64 not installed");
	need(access(kernel, R_OK) == 0 && access(initrd, R_OK) == 0,
	     "no guest image %s (run make images)", kernel);
	need(access(agent, X_OK) == 0, "no %s (run make)", agent);
	need(access(memhog, X_OK) == 0, "no %s (run make)", memhog);
	snprintf(cmd, sizeof(cmd), "%s/images/pkgs/*/lib/modules/*/kernel/drivers/block/virtio_blk.ko",
		 build);
	need(glob(cmd, 0, NULL, &g) == 0 && g.gl_pathc > 0,
	     "no virtio_blk.ko under %s/images/pkgs (run make images)", build);

	snprintf(tmpdir, sizeof(tmpdir), "/tmp/ebb-itest-agent.XXXXXX");
	need(mkdtemp(tmpdir) != NULL, "mkdtemp: %s", strerror(errno));
	snprintf(console_path, sizeof(console_path), "%s/console.log", tmpdir);
	snprintf(sock_path, sizeof(sock_path), "%s/agent.sock", tmpdir);
	snprintf(initrd2, sizeof(initrd2), "%s/initrd.img", tmpdir);
	snprintf(disk, sizeof(disk), "%s/disk.img", tmpdir);
	snprintf(qmp_path, sizeof(qmp_path), "%s/qmp.sock", tmpdir);

	/* The extra cpio: current agent and memhog, and virtio_blk.ko. */
	snprintf(cmd, sizeof(cmd),
		 "set -e; r='%s/root'; mkdir -p \"$r/bin\" \"$r/usr/bin\" \"$r/lib/modules/ebb-test\";"
		 "cp '%s' \"$r/bin/ebb-agent\"; cp '%s' \"$r/usr/bin/memhog\";"
		 "cp '%s' \"$r/lib/modules/ebb-test/\";"
		 "(cd \"$r\" && find . | cpio -o -H newc -R 0:0 --quiet | gzip -n) >'%s/extra.gz';"
		 "cat '%s' '%s/extra.gz' >'%s'; truncate -s 96M '%s'",
		 tmpdir, agent, memhog, g.gl_pathv[0], tmpdir, initrd, tmpdir, initrd2, disk);
	globfree(&g);
	need(run(cmd) == 0, "could not build the test initrd (cpio, gzip)");

	snprintf(cmd, sizeof(cmd), "%s/script.sh", tmpdir);
	f = fopen(cmd, "w");
	need(f != NULL, "cannot write %s", cmd);
	fputs(guest_script, f);
	fclose(f);
	snprintf(cmd, sizeof(cmd), "base64 -w0 '%s/script.sh' >'%s/script.b64'", tmpdir, tmpdir);
	need(run(cmd) == 0, "base64 failed");
	snprintf(cmd, sizeof(cmd), "%s/script.b64", tmpdir);
	f = fopen(cmd, "r");
	need(f && fgets(b64, sizeof(b64), f), "cannot read the base64 script");
	fclose(f);
	/* psi=1: Debian kernels build PSI but leave it off by default. */
	snprintf(append, sizeof(append), "console=ttyS0 panic=-1 quiet psi=1 ebb.cmd=%s", b64);

	qemu_pid = fork();
	need(qemu_pid >= 0, "fork: %s", strerror(errno));
	if (qemu_pid == 0) {
		char chardev[400], drive[400], qmp[400];
		int out = open(console_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		int in = open("/dev/null", O_RDONLY);

		dup2(in, 0);
		dup2(out, 1);
		dup2(out, 2);
		snprintf(chardev, sizeof(chardev), "socket,id=ag,path=%s,server=on,wait=off", sock_path);
		snprintf(drive, sizeof(drive), "file=%s,if=virtio,format=raw,readonly=on", disk);
		snprintf(qmp, sizeof(qmp), "unix:%s,server=on,wait=off", qmp_path);
		execlp("qemu-system-x86_64", "qemu-system-x86_64", "-accel", "tcg", "-m", "512",
		       "-nographic", "-no-reboot", "-nic", "none", "-kernel", kernel,
		       "-initrd", initrd2, "-append", append,
		       "-device", "virtio-serial", "-chardev", chardev,
		       "-device", "virtserialport,chardev=ag,name=org.ebb.agent.0",
		       "-drive", drive, "-device", "virtio-balloon-pci,id=balloon0",
		       "-qmp", qmp, (char *)NULL);
		_exit(127);
	}

	/* Connect to QEMU's socket as soon as it exists. */
	end = now_s() + 20;
	while (now_s() < end && agent_client_connect_unix(sock_path, &fd) != 0)
		usleep(100000);
	if (fd < 0) {
		ok(false, "connect to QEMU's virtserialport socket");
		dump_console_tail();
		cleanup();
		return 1;
	}
	ccfg.fd = fd;
	rc = agent_client_create(&ccfg, &cl);
	if (rc) {
		printf("Bail out! agent_client_create: %s\n", strerror(-rc));
		cleanup();
		return 1;
	}

	/* 1. hello, retried until the guest booted and the agent opened its port. */
	end = now_s() + 120;
	do {
		rc = agent_client_hello(cl, 2000, &hello);
	} while (rc == -ETIMEDOUT && now_s() < end && qemu_alive());
	ok(rc == 0 && hello.version == 1 && (hello.caps & AGENT_CAP_REPORT) &&
	   (hello.caps & AGENT_CAP_DROP) && hello.page_size == 4096,
	   "hello: rc %d, version %u, pid %" PRId64 ", caps 0x%x (after %.1fs)", rc, hello.version,
	   hello.pid, hello.caps, now_s() - t0);
	if (rc) {
		dump_console_tail();
		agent_client_destroy(cl);
		cleanup();
		return 1;
	}
	ok(hello.caps & AGENT_CAP_PRESSURE, "the PSI trigger is armed (caps has pressure)");

	/* 2. the report matches the guest's own /proc/meminfo, printed to the
	 * console at about the same moment. */
	if (!wait_console("EBB-T meminfo-done", 180)) {
		ok(false, "guest printed its meminfo");
		dump_console_tail();
	} else {
		long long total = console_meminfo("MemTotal"), mfree = console_meminfo("MemFree");
		long long buffers = console_meminfo("Buffers"), cached = console_meminfo("Cached");
		long long avail = console_meminfo("MemAvailable");
		long long tol = 8 * MIB;

		rc = agent_client_report(cl, 10000, &rep);
		ok(rc == 0 && rep.have_meminfo && rep.have_vmstat && rep.have_psi &&
		   rep.have_estimate && rep.agent_pid == hello.pid,
		   "report: rc %d, meminfo/vmstat/psi/estimate present", rc);
		printf("# guest /proc/meminfo: total %lld free %lld avail %lld buffers %lld cached %lld\n",
		       total, mfree, avail, buffers, cached);
		printf("# agent report:        total %" PRIu64 " free %" PRIu64 " avail %" PRIu64
		       " buffers %" PRIu64 " cached %" PRIu64 "\n",
		       rep.meminfo.total_bytes, rep.meminfo.free_bytes, rep.meminfo.available_bytes,
		       rep.meminfo.buffers_bytes, rep.meminfo.cached_bytes);
		printf("# estimate: give_back %" PRIu64 " MiB, safe_target %" PRIu64
		       " MiB, clean_file %" PRIu64 " MiB; psi some avg10 %u.%02u\n",
		       rep.give_back_bytes / MIB, rep.safe_target_bytes / MIB,
		       rep.clean_file_bytes / MIB, rep.psi_some.avg10_centipct / 100,
		       rep.psi_some.avg10_centipct % 100);
		ok(rc == 0 && total > 0 && (long long)rep.meminfo.total_bytes == total,
		   "MemTotal equals the guest's (%lld)", total);
		ok(rc == 0 && llabs((long long)rep.meminfo.free_bytes - mfree) <= tol &&
		   llabs((long long)rep.meminfo.available_bytes - avail) <= tol &&
		   llabs((long long)rep.meminfo.buffers_bytes - buffers) <= tol &&
		   llabs((long long)rep.meminfo.cached_bytes - cached) <= tol,
		   "MemFree/MemAvailable/Buffers/Cached within 8 MiB of the guest's");
		ok(rc == 0 && rep.meminfo.buffers_bytes >= 80 * MIB &&
		   rep.clean_file_bytes >= 80 * MIB &&
		   rep.give_back_bytes >= rep.clean_file_bytes - rep.cache_floor_bytes &&
		   rep.safe_target_bytes + rep.give_back_bytes == rep.meminfo.total_bytes,
		   "the disk filled the page cache (%" PRIu64 " MiB) and the estimate counts it",
		   rep.meminfo.buffers_bytes / MIB);
	}

	/* 3. garbage on the channel: error replies, the agent keeps running. */
	{
		static const char garbage[] =
			"not json at all\n"
			"\x01\x02\xff\xfe\x00\x7f\n"
			"{\"type\":\"no_such_request\",\"id\":900001}\n"
			"{\"type\":\"report\",\"id\":\"seven\"}\n"
			"{\"type\":\"reclaim\",\"id\":900002,\"op\":\"drop_caches\",\"slab\":\"yes\"}\n"
			"{\"type\":\"reclaim\",\"id\":900003,\"op\":\"proactive\",\"bytes\":-1}\n"
			"{\"type\":\"config\",\"id\":900004,\"psi_window_us\":1}\n"
			"{\"a\":[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]}\n"
			"{\"type\":\"hello\",\"id\":900005,\"version\":1.5}\n"
			"\n\r\n";
		char big[6000];
		uint64_t bad_before = rep.agent_nr_bad_requests;
		unsigned nr_err_events = 0;
		ssize_t w;

		memset(big, 'A', sizeof(big) - 1);
		big[sizeof(big) - 1] = '\n';
		w = write(fd, garbage, sizeof(garbage) - 1);
		w += write(fd, big, sizeof(big));
		rc = agent_client_report(cl, 10000, &rep2);
		while (agent_client_pop_event(cl, &ev) == 0)
			nr_err_events += ev.type == AGENT_EV_ERROR;
		agent_client_get_counters(cl, &cnt);
		ok(w == (ssize_t)(sizeof(garbage) - 1 + sizeof(big)) && rc == 0 &&
		   rep2.agent_pid == hello.pid &&
		   rep2.agent_nr_bad_requests - bad_before == 10 && rep2.agent_nr_long_lines == 1,
		   "garbage: agent alive (same pid %" PRId64 "), %" PRIu64 " bad requests counted, "
		   "%u unattributed error events, %" PRIu64 " stray replies (late hellos, errors to ids)",
		   rep2.agent_pid, rep2.agent_nr_bad_requests - bad_before, nr_err_events,
		   cnt.nr_stray_replies);
	}

	/* 4. host goes away and comes back. */
	agent_client_destroy(cl);
	cl = NULL;
	fd = -1;
	usleep(500000);
	end = now_s() + 20;
	while (now_s() < end && agent_client_connect_unix(sock_path, &fd) != 0)
		usleep(100000);
	ccfg.fd = fd;
	if (fd < 0 || agent_client_create(&ccfg, &cl) != 0) {
		ok(false, "reconnect to the socket");
		cleanup();
		return 1;
	}
	end = now_s() + 30;
	do {
		rc = agent_client_hello(cl, 2000, &hello);
	} while (rc == -ETIMEDOUT && now_s() < end);
	if (rc == 0)
		rc = agent_client_report(cl, 10000, &rep2);
	ok(rc == 0 && rep2.agent_pid == hello.pid && rep2.agent_nr_sessions >= 2,
	   "reconnect: new session (sessions %" PRIu64 ", rc %d)", rep2.agent_nr_sessions, rc);

	/* 5. cooperative reclaim: proactive first, while the disk cache is there
	 * to reclaim, then drop the rest. */
	if (hello.caps & AGENT_CAP_PROACTIVE) {
		rc = agent_client_reclaim(cl, AGENT_RECLAIM_PROACTIVE, 16 * MIB, false, 30000, &rr);
		ok(rc == 0 && rr.complete && rr.cache_dropped_bytes >= 8 * MIB,
		   "proactive 16 MiB via memory.reclaim: rc %d, complete %d, cache dropped %" PRIu64
		   " MiB, freed %" PRIu64 " MiB", rc, rr.complete, rr.cache_dropped_bytes / MIB,
		   rr.freed_bytes / MIB);
	} else {
		skip("proactive reclaim", "agent has no cgroup v2 memory.reclaim");
	}
	rc = agent_client_reclaim(cl, AGENT_RECLAIM_DROP_CACHES, 0, false, 30000, &rr);
	ok(rc == 0 && rr.cache_dropped_bytes >= 48 * MIB && rr.freed_bytes >= 48 * MIB &&
	   rr.cache_after_bytes < 16 * MIB,
	   "drop_caches: rc %d, cache dropped %" PRIu64 " MiB, freed %" PRIu64 " MiB in %" PRIu64
	   " us, %" PRIu64 " MiB cache left", rc, rr.cache_dropped_bytes / MIB, rr.freed_bytes / MIB,
	   rr.duration_us, rr.cache_after_bytes / MIB);
	rc = agent_client_reclaim(cl, AGENT_RECLAIM_COMPACT, 0, false, 30000, &rr);
	ok(rc == 0, "compact: rc %d, %" PRIu64 " us", rc, rr.duration_us);
	ok(agent_client_config(cl, 2000, -1, -1, 5000) == 0, "config: periodic reports every 2 s");

	/* 6. pressure: the hog squeezes the guest; a pressure message arrives. */
	{
		bool got_pressure = false, got_periodic = false;
		struct agent_pressure pr = { 0 };
		double pressure_after_s = 0;

		/* A thrashing guest can wake its agent late for both the PSI
		 * trigger and the report timer at once: then the pressure message
		 * and the overdue report leave in one write, pressure first.  So
		 * keep reading (10 s at most) after the pressure message for a
		 * periodic report that has not been seen yet. */
		end = now_s() + 150;
		while (now_s() < end && !(got_pressure && got_periodic)) {
			if (got_pressure && now_s() > t0 + pressure_after_s + 10)
				break;
			rc = agent_client_next_event(cl, 1000, &ev);
			if (rc == 0 && ev.type == AGENT_EV_PRESSURE) {
				if (!got_pressure) {
					pr = ev.u.pressure;
					pressure_after_s = now_s() - t0;
				}
				got_pressure = true;
			} else if (rc == 0 && ev.type == AGENT_EV_REPORT) {
				got_periodic = true;
			} else if (rc == -EPIPE || (rc == -ETIMEDOUT && !qemu_alive())) {
				break;
			}
		}
		ok(got_periodic, "periodic report arrived");
		ok(got_pressure && pr.need_bytes > 0 && pr.total_bytes > 0,
		   "pressure message under the memory hog: need %" PRIu64 " MiB, available %" PRIu64
		   " MiB, some avg10 %u.%02u%% (after %.1fs)", pr.need_bytes / MIB,
		   pr.available_bytes / MIB, pr.some_avg10_centipct / 100,
		   pr.some_avg10_centipct % 100, pressure_after_s);
	}
	agent_client_config(cl, 0, -1, -1, 5000);
	rc = agent_client_report(cl, 20000, &rep2);
	ok(rc == 0 && rep2.agent_pid == hello.pid && rep2.agent_nr_pressure_sent >= 1,
	   "agent answers after the squeeze: pressure events %" PRIu64 ", sent %" PRIu64
	   ", pgscan %" PRIu64 ", oom_kill %" PRIu64, rep2.agent_nr_pressure_events,
	   rep2.agent_nr_pressure_sent, rep2.vmstat.pgscan_kswapd + rep2.vmstat.pgscan_direct,
	   rep2.vmstat.oom_kill);

	/* 7. closing the loop: the host squeezes the guest with QEMU's balloon on
	 * top of a smaller hog; on the pressure message it deflates at once, and
	 * the guest's MemAvailable comes back. */
	{
		struct agent_pressure pr = { 0 };
		struct agent_report after;
		bool got = false;
		/* Inflate only once the hog holds its memory, so that the
		 * pressure comes from the balloon. */
		int qfd = wait_console("memhog: held 160 MiB", 180) ? qmp_connect() : -1;
		struct agent_report squeezed = { 0 };
		double t_inflate = 0, t_pressure = 0;

		uint64_t seq0 = 0, avail0 = UINT64_MAX;

		/* A report pumps the channel: every earlier pressure message is
		 * queued by then and its seq is at most nr_pressure_events.  The
		 * hog alone may still raise one after it: only a message that
		 * sees the balloon's bite (32 MiB less available than now)
		 * counts. */
		if (agent_client_report(cl, 20000, &after) == 0) {
			seq0 = after.agent_nr_pressure_events;
			avail0 = after.meminfo.available_bytes;
		}
		while (agent_client_pop_event(cl, &ev) == 0)
			;
		if (qfd >= 0 && qmp_balloon(qfd, 200 * MIB) == 0) {
			t_inflate = now_s();
			end = now_s() + 40;
			while (now_s() < end && !got) {
				rc = agent_client_next_event(cl, 1000, &ev);
				if (rc == 0 && ev.type == AGENT_EV_PRESSURE && ev.u.pressure.seq > seq0 &&
				    (avail0 == UINT64_MAX ||
				     ev.u.pressure.available_bytes + 32 * MIB <= avail0)) {
					got = true;
					pr = ev.u.pressure;
					t_pressure = now_s();
				} else if (rc == -EPIPE) {
					break;
				}
			}
		}
		/* What the guest looks like squeezed, then deflate at once. */
		rc = got ? agent_client_report(cl, 20000, &squeezed) : -1;
		if (rc == 0)
			rc = qmp_balloon(qfd, 512 * MIB);
		if (rc == 0) {
			sleep(3);
			rc = agent_client_report(cl, 20000, &after);
		}
		ok(got && rc == 0 &&
		   after.meminfo.available_bytes >= squeezed.meminfo.available_bytes + 32 * MIB,
		   "balloon squeeze -> pressure %.1fs after inflating (need %" PRIu64 " MiB, "
		   "available %" PRIu64 " MiB) -> host deflated -> available %" PRIu64 " -> %" PRIu64
		   " MiB", t_pressure - t_inflate, pr.need_bytes / MIB, pr.available_bytes / MIB,
		   squeezed.meminfo.available_bytes / MIB,
		   rc == 0 ? after.meminfo.available_bytes / MIB : 0);
		if (qfd >= 0)
			close(qfd);
	}
	ok(wait_console("ebb-guest: exit 0", 120), "guest script finished (exit 0)");
	{
		long long rss = console_kb("EBB-AG", "VmRSS"), hwm = console_kb("EBB-AG", "VmHWM");
		long long lck = console_kb("EBB-AG", "VmLck");

		ok(rss > 0 && hwm > 0 && hwm <= 8 * (long long)MIB && lck > 0,
		   "agent footprint after the squeeze: VmRSS %lld KiB, VmHWM %lld KiB, VmLck %lld KiB"
		   " (peak must stay under 8 MiB, memory locked)", rss / 1024, hwm / 1024, lck / 1024);
	}
	agent_client_get_counters(cl, &cnt);
	ok(cnt.nr_bad_json == 0 && cnt.nr_invalid == 0,
	   "client saw no malformed message from the agent (bad json %" PRIu64 ", invalid %" PRIu64 ")",
	   cnt.nr_bad_json, cnt.nr_invalid);
	if (tap_failed)
		dump_console_tail();
	agent_client_destroy(cl);
	printf("# total %.1fs\n", now_s() - t0);
	printf("1..%d\n", tap_n);
	cleanup();
	return tap_failed ? 1 : 0;
}
