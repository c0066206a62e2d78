/*
 * tests/unit/test_libvirt_cgroup.c — host-reclaim/libvirt/lv_cgroup.c, the
 * choice of a QEMU's cgroup v2 memory.reclaim, run against a fake /proc and
 * cgroup tree built in a temporary directory (this host's memory controller
 * need not be on cgroup v2): libvirt's layout (threaded emulator/ and vcpuN/
 * under the domain's libvirt/ group), a plain cgroup of its own, and hostile
 * or unusable inputs: no /proc/PID/cgroup, v1-only lines, "..", ".", "//",
 * control characters, over-long lines and paths, no or a sub-tree cgroup2
 * mount, no memory.reclaim, other pids, pid missing, garbage pids, a procs
 * file too big to read, a domain child cgroup; and the reclaim write.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "host-reclaim/libvirt/lv_cgroup.h"

#define PID 4242
#define SCOPE "/machine.slice/machine-qemu\\x2d1\\x2dvm.scope"

static char root[64];            /* the temporary tree */
static char proc[128], cg[128];  /* ROOT/proc, ROOT/cg (the cgroup2 mount) */

static void put(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

static void mkdirs(const char *path)
{
	char p[1024], *s;

	snprintf(p, sizeof(p), "%s", path);
	for (s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		mkdir(p, 0755);
		*s = '/';
	}
	mkdir(p, 0755);
}

/* A cgroup directory CG/REL with a cgroup.type and, for a domain, the
 * memory files. */
static void cgroup(const char *rel, const char *type, const char *procs, bool reclaim)
{
	char d[512], f[600];

	snprintf(d, sizeof(d), "%s%s", cg, rel);
	mkdirs(d);
	snprintf(f, sizeof(f), "%s/cgroup.type", d);
	put(f, type);
	if (procs) {
		snprintf(f, sizeof(f), "%s/cgroup.procs", d);
		put(f, procs);
	}
	if (reclaim) {
		snprintf(f, sizeof(f), "%s/memory.reclaim", d);
		put(f, "");
	}
}

static void proc_cgroup(const char *text)
{
	char f[256];

	snprintf(f, sizeof(f), "%s/%d", proc, PID);
	mkdirs(f);
	snprintf(f, sizeof(f), "%s/%d/cgroup", proc, PID);
	put(f, text);
}

static void mountinfo(const char *extra_before)
{
	char f[256], text[8192];

	snprintf(f, sizeof(f), "%s/self", proc);
	mkdirs(f);
	snprintf(f, sizeof(f), "%s/self/mountinfo", proc);
	snprintf(text, sizeof(text),
		 "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n"
		 "%s"
		 "30 22 0:26 / %s rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 "
		 "rw,nsdelegate,memory_recursiveprot\n"
		 "31 22 0:27 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n",
		 extra_before, cg);
	put(f, text);
}

/* libvirt's cgroup v2 layout: the QEMU's main thread in libvirt/emulator,
 * threaded, under the domain's libvirt/ (a threaded domain). */
static void libvirt_layout(const char *procs)
{
	cgroup(SCOPE, "domain\n", NULL, true);
	cgroup(SCOPE "/libvirt", "domain threaded\n", procs, true);
	cgroup(SCOPE "/libvirt/emulator", "threaded\n", NULL, false);
	cgroup(SCOPE "/libvirt/vcpu0", "threaded\n", NULL, false);
	proc_cgroup("0::" SCOPE "/libvirt/emulator\n");
	mountinfo("");
}

static int setup(void **state)
{
	(void)state;
	snprintf(root, sizeof(root), "/tmp/ebb-cgtest.XXXXXX");
	if (!mkdtemp(root))
		return -1;
	snprintf(proc, sizeof(proc), "%s/proc", root);
	snprintf(cg, sizeof(cg), "%s/cg", root);
	mkdirs(proc);
	mkdirs(cg);
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	return system(cmd) == 0 ? 0 : -1;
}

static int find(char *dir, size_t len)
{
	return ebbd_lv_cgroup_find(proc, PID, dir, len);
}

static void test_libvirt_layout(void **state)
{
	char dir[EBBD_LV_CG_PATH_MAX], want[512];

	(void)state;
	libvirt_layout("4242\n");
	assert_int_equal(find(dir, sizeof(dir)), 0);
	snprintf(want, sizeof(want), "%s%s/libvirt", cg, SCOPE);
	assert_string_equal(dir, want);
	/* the same with the v1 lines of a hybrid host around the v2 one */
	proc_cgroup("12:memory:/machine.slice/x\n0::" SCOPE "/libvirt/emulator\n1:name=systemd:/\n");
	assert_int_equal(find(dir, sizeof(dir)), 0);
	assert_string_equal(dir, want);
	/* @dir too small for the answer */
	assert_int_equal(find(dir, 16), -ENAMETOOLONG);
}

static void test_own_cgroup(void **state)
{
	char dir[EBBD_LV_CG_PATH_MAX], want[512];

	(void)state;
	cgroup("/ebb-test", "domain\n", "4242\n", true);
	proc_cgroup("0::/ebb-test\n");
	mountinfo("");
	assert_int_equal(find(dir, sizeof(dir)), 0);
	snprintf(want, sizeof(want), "%s/ebb-test", cg);
	assert_string_equal(dir, want);
}

static void test_no_proc_file(void **state)
{
	char dir[EBBD_LV_CG_PATH_MAX];

	(void)state;
	mountinfo("");
	assert_int_equal(find(dir, sizeof(dir)), -ENOENT);
	assert_int_equal(ebbd_lv_cgroup_find(proc, 0, dir, sizeof(dir)), -EINVAL);
	assert_int_equal(ebbd_lv_cgroup_find(proc, -1, dir, sizeof(dir)), -EINVAL);
}

static void test_v1_only(void **state)
{
	char dir[EBBD_LV_CG_PATH_MAX];

	(void)state;
	libvirt_layout("4242\n");
	proc_cgroup("12:memory:/machine.slice/x\n1:name=systemd:/machine.slice/x\n");
	assert_int_equal(find(dir, sizeof(dir)), -ENOENT);
	proc_cgroup("");
	assert_int_equal(find(dir, sizeof(dir)), -ENOENT);
	/* "0:" without the second ':' is not the v2 line either */
	proc_cgroup("0:/ebb-test\n");
	assert_int_equal(find(dir, sizeof(dir)), -ENOENT);
}

static void test_bad_paths(void **state)
{
	static const char *const bad[] = {
		"0::/machine.slice/vm.scope/../../etc\n",
		"0::/..\n",
		"0::/a/..\n",
		"0::/a/./b\n",
		"0::/a//b\n",
		"0::/a/\n",
		"0::relative/path\n",
		"0::\n",
		"0::/a\tb\n",
		"0::/a\177b\n",
	};
	char dir[EBBD_LV_CG_PATH_MAX];
	size_t i;

	(void)state;
	libvirt_layout("4242\n");
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		proc_cgroup(bad[i]);
		assert_int_equal(find(dir, sizeof(dir)), -EINVAL);
	}
	/* ".." inside a name is a name */
	cgroup("/a..b", "domain\n", "4242\n", true);
	proc_cgroup("0::/a..b\n");
	assert_int_equal(find(dir, sizeof(dir)), 0);
}

static void test_long_lines(void **state)
{
	char dir[EBBD_LV_CG_PATH_MAX], *text, *pre;
	size_t n = 6000;

	(void)state;
	libvirt_layout("4242\n");
	/* a v2 path over the line bound */
	text = malloc(n + 8);
	assert_non_null(text);
	memcpy(text, "0::/", 4);
	memset(text + 4, 'a', n);
	memcpy(text + 4 + n, "\n", 2);
	proc_cgroup(text);
	assert_int_equal(find(dir, sizeof(dir)), -ENAMETOOLONG);
	/* within the line bound, over the path bound */
	memcpy(text + 4 + 1000, "\n", 2);
	proc_cgroup(text);
	assert_int_equal(find(dir, sizeof(dir)), -ENAMETOOLONG);
	/* a long v1 line before a good v2 line: the file is refused whole */
	memset(text + 4, 'a', n);
	text[0] = '9';
	memcpy(text + 4 + n, "\n", 2);
	pre = malloc(n + 200);
	assert_non_null(pre);
	snprintf(pre, n + 200, "%s0::%s/libvirt/emulator\n", text, SCOPE);
	proc_cgroup(pre);
	assert_int_equal(find(dir, sizeof(dir)), -ENAMETOOLONG);
	/* a long mountinfo line before the cgroup2 one is skipped, not fatal */
	proc_cgroup("0::" SCOPE "/libvirt/emulator\n");
	text[0] = '2';
	mountinfo(text);
	assert_int_equal(find(dir, sizeof(dir)), 0);
	free(pre);
	free(text);
}

static void test_mounts(void **state)
{
	char dir[EBBD_LV_CG_PATH_MAX], f[256];

	(void)state;
	libvirt_layout("4242\n");
	/* no cgroup2 mount at all */
	snprintf(f, sizeof(f), "%s/self/mountinfo", proc);
	put(f, "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n"
	       "31 22 0:27 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n");
	assert_int_equal(find(dir, sizeof(dir)), -ENOENT);
	/* a cgroup2 mount of a sub-tree only (root not "/") */
	put(f, "22 1 8:1 / / rw - ext4 /dev/sda1 rw\n"
	       "30 22 0:26 /machine.slice /srv/cg rw - cgroup2 cgroup2 rw\n");
	assert_int_equal(find(dir, sizeof(dir)), -ENOENT);
	/* an escaped mount point (\040: a space) is skipped */
	put(f, "30 22 0:26 / /srv/my\\040cg rw - cgroup2 cgroup2 rw\n");
	assert_int_equal(find(dir, sizeof(dir)), -ENOENT);
	/* truncated lines */
	put(f, "30 22 0:26 / - cgroup2 cgroup2 rw\n30 22 - cgroup2\n - cgroup2 \n");
	assert_int_equal(find(dir, sizeof(dir)), -ENOENT);
	/* no mountinfo */
	unlink(f);
	assert_int_equal(find(dir, sizeof(dir)), -ENOENT);
}

static void test_no_reclaim_file(void **state)
{
	char dir[EBBD_LV_CG_PATH_MAX], f[600];

	(void)state;
	libvirt_layout("4242\n");
	snprintf(f, sizeof(f), "%s%s/libvirt/memory.reclaim", cg, SCOPE);
	unlink(f);
	assert_int_equal(find(dir, sizeof(dir)), -ENOENT);
	/* the cgroup directory itself missing (QEMU's cgroup removed) */
	proc_cgroup("0::/gone/emulator\n");
	assert_int_equal(find(dir, sizeof(dir)), -ENOENT);
}

static void test_not_writable(void **state)
{
	char dir[EBBD_LV_CG_PATH_MAX], f[600];

	(void)state;
	if (geteuid() == 0) {
		/* root's access() ignores the mode bits of a plain file */
		print_message("skipped: running as root, a read-only fake "
			      "memory.reclaim is still writable to root\n");
		skip();
	}
	libvirt_layout("4242\n");
	snprintf(f, sizeof(f), "%s%s/libvirt/memory.reclaim", cg, SCOPE);
	assert_int_equal(chmod(f, 0444), 0);
	assert_int_equal(find(dir, sizeof(dir)), -EACCES);
}

static void test_procs(void **state)
{
	char dir[EBBD_LV_CG_PATH_MAX], *big;
	size_t i;

	(void)state;
	libvirt_layout("4242\n4243\n");
	assert_int_equal(find(dir, sizeof(dir)), -EBUSY);
	libvirt_layout("1\n4242\n");
	assert_int_equal(find(dir, sizeof(dir)), -EBUSY);
	libvirt_layout("4243\n");
	assert_int_equal(find(dir, sizeof(dir)), -EBUSY);
	libvirt_layout("");
	assert_int_equal(find(dir, sizeof(dir)), -ESRCH);
	libvirt_layout("4242x\n");
	assert_int_equal(find(dir, sizeof(dir)), -EINVAL);
	libvirt_layout("-4242\n");
	assert_int_equal(find(dir, sizeof(dir)), -EINVAL);
	libvirt_layout("99999999999999999999\n");
	assert_int_equal(find(dir, sizeof(dir)), -EINVAL);
	/* a procs file bigger than is read: others, whatever they are */
	big = malloc(10000);
	assert_non_null(big);
	for (i = 0; i + 5 < 10000; i += 5)
		memcpy(big + i, "4242\n", 5);
	big[i] = '\0';
	libvirt_layout(big);
	assert_int_equal(find(dir, sizeof(dir)), -EBUSY);
	free(big);
	/* no procs file */
	cgroup("/noprocs", "domain\n", NULL, true);
	proc_cgroup("0::/noprocs\n");
	assert_int_equal(find(dir, sizeof(dir)), -ENOENT);
}

static void test_domain_child(void **state)
{
	char dir[EBBD_LV_CG_PATH_MAX];

	(void)state;
	libvirt_layout("4242\n");
	cgroup(SCOPE "/libvirt/other", "domain\n", "", false);
	assert_int_equal(find(dir, sizeof(dir)), -EBUSY);
	/* its plain files (cgroup.type, cgroup.procs, ...) are not children */
	cgroup("/own", "domain\n", "4242\n", true);
	proc_cgroup("0::/own\n");
	assert_int_equal(find(dir, sizeof(dir)), 0);
}

static void test_threaded_walk_bounded(void **state)
{
	char dir[EBBD_LV_CG_PATH_MAX], rel[256] = "", line[300];
	int i;

	(void)state;
	mountinfo("");
	/* threaded all the way to the mount: no domain to use */
	for (i = 0; i < 3; i++) {
		strcat(rel, "/t");
		cgroup(rel, "threaded\n", "4242\n", true);
	}
	snprintf(line, sizeof(line), "0::%s\n", rel);
	proc_cgroup(line);
	assert_int_equal(find(dir, sizeof(dir)), -ENOENT);
	/* more threaded levels than are walked */
	rel[0] = '\0';
	cgroup("/d", "domain threaded\n", "4242\n", true);
	strcat(rel, "/d");
	for (i = 0; i < 20; i++) {
		strcat(rel, "/t");
		cgroup(rel, "threaded\n", NULL, false);
	}
	snprintf(line, sizeof(line), "0::%s\n", rel);
	proc_cgroup(line);
	assert_int_equal(find(dir, sizeof(dir)), -EINVAL);
}

static void test_reclaim_write(void **state)
{
	char d[256], f[300], buf[64];
	ssize_t n;
	int fd;

	(void)state;
	snprintf(d, sizeof(d), "%s/w", cg);
	mkdirs(d);
	snprintf(f, sizeof(f), "%s/memory.reclaim", d);
	assert_int_equal(ebbd_lv_cgroup_reclaim(d, 104857600), -ENOENT);
	put(f, "");
	assert_int_equal(ebbd_lv_cgroup_reclaim(d, 104857600), 0);
	fd = open(f, O_RDONLY);
	assert_true(fd >= 0);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	assert_true(n > 0);
	buf[n] = '\0';
	assert_string_equal(buf, "104857600");
	/* nothing asked: nothing written */
	put(f, "");
	assert_int_equal(ebbd_lv_cgroup_reclaim(d, 0), 0);
	fd = open(f, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(read(fd, buf, sizeof(buf)), 0);
	close(fd);
	assert_non_null(strstr(ebbd_lv_cgroup_why(-EBUSY), "other processes"));
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_libvirt_layout),
		T(test_own_cgroup),
		T(test_no_proc_file),
		T(test_v1_only),
		T(test_bad_paths),
		T(test_long_lines),
		T(test_mounts),
		T(test_no_reclaim_file),
		T(test_not_writable),
		T(test_procs),
		T(test_domain_child),
		T(test_threaded_walk_bounded),
		T(test_reclaim_write),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
