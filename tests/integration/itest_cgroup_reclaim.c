/*
 * itest_cgroup_reclaim — ebbd's host-side reclaim through a cgroup v2
 * memory.reclaim (host-reclaim/libvirt/lv_cgroup.c), for real: the same
 * ebbd_lv_cgroup_find() and ebbd_lv_cgroup_reclaim() the libvirt backend
 * calls for a domain's QEMU, on a child process standing in for QEMU.
 *
 * The child maps 64 MiB of anonymous memory and writes a known pattern
 * (mix() of the word index and a seed) into every 8-byte word.  The test
 * puts it alone in a cgroup of its own (MOUNT/ebb-itest.PID/vm), checks
 * the discovery finds that cgroup, asks memory.reclaim for 64 MiB and
 * checks the child's VmRSS fell by at least 48 MiB; then the child reads
 * every word back (bit-identical, or not ok).  Then libvirt's layout:
 * the child moves into a threaded vm/emulator and the discovery must walk
 * up to vm/ (where memory is charged), the reclaim works again, the data
 * verifies again; a second process in vm/ must make the discovery refuse
 * (-EBUSY) and its exit make it accept again.
 *
 * Needs a cgroup2 mount with the memory controller (cgroup.controllers
 * lists "memory"), host swap (anonymous pages must go somewhere), and
 * root; else it says why and exits 77.  This machine binds memory to
 * cgroup v1, so it runs in the host-box (tests/box/scenarios/
 * cgroup_reclaim.sh mounts cgroup2 and puts zram swap on).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "host-reclaim/libvirt/lv_cgroup.h"
#include "tests/integration/tap.h"

#define MIB (1ull << 20)
#define SIZE (64 * MIB)
#define WORDS (SIZE / 8)
#define SEED 0x5eed15ull

static char mnt[256], base[320], vm[384], emu[448];

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static bool put(const char *dir, const char *file, const char *text)
{
	char path[512];
	int fd;
	ssize_t n;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0) {
		printf("# open %s: %s\n", path, strerror(errno));
		return false;
	}
	n = write(fd, text, strlen(text));
	if (n < 0)
		printf("# write '%s' to %s: %s\n", text, path, strerror(errno));
	close(fd);
	return n == (ssize_t)strlen(text);
}

static bool has_word(const char *path, const char *word)
{
	char buf[512], *tok, *save = NULL;
	FILE *f = fopen(path, "re");
	bool found = false;

	if (!f)
		return false;
	if (fgets(buf, sizeof(buf), f))
		for (tok = strtok_r(buf, " \n", &save); tok && !found;
		     tok = strtok_r(NULL, " \n", &save))
			found = strcmp(tok, word) == 0;
	fclose(f);
	return found;
}

/* The first cgroup2 mount whose root lists the memory controller. */
static bool find_mount(void)
{
	char line[1024], path[512];
	FILE *f = fopen("/proc/self/mountinfo", "re");

	if (!f)
		return false;
	while (fgets(line, sizeof(line), f)) {
		char root[256], point[256];
		char *sep = strstr(line, " - cgroup2 ");

		if (!sep || sscanf(line, "%*s %*s %*s %255s %255s", root, point) != 2 ||
		    strcmp(root, "/") != 0)
			continue;
		snprintf(path, sizeof(path), "%s/cgroup.controllers", point);
		if (has_word(path, "memory")) {
			snprintf(mnt, sizeof(mnt), "%s", point);
			fclose(f);
			return true;
		}
	}
	fclose(f);
	return false;
}

/* VmRSS of @pid in KiB (0: unreadable). */
static uint64_t rss_kib(int pid)
{
	char path[64], line[256];
	uint64_t v = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", pid);
	f = fopen(path, "re");
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, "VmRSS:", 6) == 0) {
			v = strtoull(line + 6, NULL, 10);
			break;
		}
	fclose(f);
	return v;
}

/* The stand-in for QEMU: on 'g' (once it is in its cgroup: a page is
 * charged to the cgroup it was first touched in, moving a process does not
 * move its charges in cgroup v2) fills and says 'f'; on each 'v' verifies
 * every word and answers 'y' (all identical) or 'n'; exits on 'q' or EOF. */
static void child(int cmd, int ans)
{
	uint64_t *mem = mmap(NULL, SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			     -1, 0);
	uint64_t i, bad;
	char c;

	if (mem == MAP_FAILED || read(cmd, &c, 1) != 1 || c != 'g')
		_exit(2);
	for (i = 0; i < WORDS; i++)
		mem[i] = mix(SEED ^ i);
	if (write(ans, "f", 1) != 1)
		_exit(2);
	while (read(cmd, &c, 1) == 1 && c == 'v') {
		for (i = 0, bad = 0; i < WORDS; i++)
			bad += mem[i] != mix(SEED ^ i);
		if (write(ans, bad ? "n" : "y", 1) != 1)
			_exit(2);
	}
	_exit(0);
}

static char ask(int cmd, int ans, char c)
{
	char r = '?';

	if (write(cmd, &c, 1) != 1 || read(ans, &r, 1) != 1)
		return '?';
	return r;
}

/* One reclaim of 64 MiB through the cgroup found for @pid in @want_dir. */
static void reclaim_round(const char *what, int pid, const char *want_dir, int cmd, int ans)
{
	char dir[EBBD_LV_CG_PATH_MAX];
	uint64_t before, after, t0, ms;
	bool good;
	int ret;

	ret = ebbd_lv_cgroup_find("/proc", pid, dir, sizeof(dir));
	ok(ret == 0 && strcmp(dir, want_dir) == 0, "%s: discovery finds %s (%s%s%s)", what,
	   want_dir, ret ? ebbd_lv_cgroup_why(ret) : "got ", ret ? "" : dir, "");
	if (ret)
		return;
	before = rss_kib(pid);
	t0 = now_ms();
	ret = ebbd_lv_cgroup_reclaim(dir, SIZE);
	ms = now_ms() - t0;
	after = rss_kib(pid);
	ok(ret == 0 || ret == -EAGAIN, "%s: memory.reclaim of 64 MiB: %s in %" PRIu64 " ms",
	   what, ret == 0 ? "all" : ret == -EAGAIN ? "less than asked (EAGAIN)" : strerror(-ret),
	   ms);
	ok(before >= SIZE / 1024 && before >= after + 48 * 1024,
	   "%s: the process's VmRSS fell by at least 48 MiB: %" PRIu64 " -> %" PRIu64 " KiB",
	   what, before, after);
	good = ask(cmd, ans, 'v') == 'y';   /* before the RSS: argument order is unspecified */
	ok(good, "%s: all 64 MiB read back bit-identical (VmRSS then %" PRIu64 " KiB)", what,
	   rss_kib(pid));
}

int main(void)
{
	char dir[EBBD_LV_CG_PATH_MAX], num[32];
	int cmd[2], ans[2], pid, other, ret, st;
	bool filled;

	if (geteuid() != 0) {
		printf("itest_cgroup_reclaim: needs root (makes cgroups) # SKIP\n");
		return 77;
	}
	if (!find_mount()) {
		printf("itest_cgroup_reclaim: no cgroup2 mount with the memory controller "
		       "(memory bound to cgroup v1 here?); the host-box scenario "
		       "cgroup_reclaim.sh runs it # SKIP\n");
		return 77;
	}
	if (!ebbd_lv_host_has_swap()) {
		printf("itest_cgroup_reclaim: no swap: anonymous memory cannot be reclaimed "
		       "# SKIP\n");
		return 77;
	}
	snprintf(base, sizeof(base), "%s/ebb-itest.%d", mnt, (int)getpid());
	snprintf(vm, sizeof(vm), "%s/vm", base);
	snprintf(emu, sizeof(emu), "%s/emulator", vm);
	printf("# cgroup2 at %s, test cgroup %s\n", mnt, base);
	snprintf(dir, sizeof(dir), "%s/cgroup.subtree_control", mnt);
	if (!has_word(dir, "memory"))
		(void)put(mnt, "cgroup.subtree_control", "+memory");
	ok(mkdir(base, 0755) == 0 && put(base, "cgroup.subtree_control", "+memory") &&
	   mkdir(vm, 0755) == 0, "cgroups %s and vm/ made, memory on", base);

	if (pipe(cmd) || pipe(ans))
		return 1;
	pid = fork();
	if (pid < 0)
		return 1;
	if (pid == 0) {
		close(cmd[1]);
		close(ans[0]);
		child(cmd[0], ans[1]);
	}
	close(cmd[0]);
	close(ans[1]);
	snprintf(num, sizeof(num), "%d", pid);
	ok(put(vm, "cgroup.procs", num), "child %d moved into vm/", pid);
	filled = ask(cmd[1], ans[0], 'g') == 'f';
	ok(filled, "child filled 64 MiB in vm/ (VmRSS %" PRIu64 " KiB)", rss_kib(pid));

	/* a cgroup of its own */
	reclaim_round("own cgroup", pid, vm, cmd[1], ans[0]);

	/* libvirt's layout: QEMU in a threaded emulator/ under vm/ */
	ok(mkdir(emu, 0755) == 0 && put(emu, "cgroup.type", "threaded") &&
	   put(emu, "cgroup.procs", num), "child moved into threaded vm/emulator/");
	reclaim_round("threaded emulator/", pid, vm, cmd[1], ans[0]);

	/* another process in the domain: refused, then accepted when it left */
	other = fork();
	if (other == 0) {
		pause();
		_exit(0);
	}
	snprintf(num, sizeof(num), "%d", other);
	ok(other > 0 && put(vm, "cgroup.procs", num), "a second process %d put into vm/", other);
	ret = ebbd_lv_cgroup_find("/proc", pid, dir, sizeof(dir));
	ok(ret == -EBUSY, "with it there the discovery refuses: %s", ebbd_lv_cgroup_why(ret));
	if (other > 0) {
		kill(other, SIGKILL);
		waitpid(other, &st, 0);
	}
	ret = ebbd_lv_cgroup_find("/proc", pid, dir, sizeof(dir));
	ok(ret == 0 && strcmp(dir, vm) == 0, "once it exited the discovery accepts again: %s",
	   ret ? ebbd_lv_cgroup_why(ret) : dir);

	close(cmd[1]);   /* EOF: the child exits */
	waitpid(pid, &st, 0);
	ok(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child exited cleanly");
	rmdir(emu);
	rmdir(vm);
	ok(rmdir(base) == 0, "test cgroups removed");
	printf("1..%d\n", tap_n);
	return tap_failed ? 1 : 0;
}
