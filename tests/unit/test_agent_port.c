/*
 * test_agent_port.c - finding the agent's virtio-serial port through a sysfs
 * tree (built in a temporary directory with the kernel's layout) and creating
 * its device node when there is none or a wrong one.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cmocka.h>

#include "guest-agent/agent_port.h"

struct fx {
	char root[64];
	char sys[96];
	char dev[96];
};

static void put(const struct fx *fx, const char *port, const char *file, const char *text)
{
	char p[256];
	FILE *f;

	snprintf(p, sizeof(p), "%s/class/virtio-ports/%s", fx->sys, port);
	mkdir(p, 0755);
	snprintf(p, sizeof(p), "%s/class/virtio-ports/%s/%s", fx->sys, port, file);
	f = fopen(p, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static int setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));
	char p[160];

	snprintf(fx->root, sizeof(fx->root), "/tmp/test_agent_port.XXXXXX");
	if (!mkdtemp(fx->root))
		return -1;
	snprintf(fx->sys, sizeof(fx->sys), "%s/sys", fx->root);
	snprintf(fx->dev, sizeof(fx->dev), "%s/dev", fx->root);
	mkdir(fx->sys, 0755);
	mkdir(fx->dev, 0755);
	snprintf(p, sizeof(p), "%s/class", fx->sys);
	mkdir(p, 0755);
	snprintf(p, sizeof(p), "%s/class/virtio-ports", fx->sys);
	mkdir(p, 0755);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fx *fx = *state;
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->root);
	if (system(cmd) != 0)
		return -1;
	free(fx);
	return 0;
}

static void test_parse_dev(void **state)
{
	unsigned a, b;

	(void)state;
	assert_int_equal(agent_port_parse_dev("251:3\n", &a, &b), 0);
	assert_int_equal(a, 251);
	assert_int_equal(b, 3);
	assert_int_equal(agent_port_parse_dev("0:0", &a, &b), 0);
	assert_int_equal(agent_port_parse_dev("", &a, &b), -EINVAL);
	assert_int_equal(agent_port_parse_dev("251", &a, &b), -EINVAL);
	assert_int_equal(agent_port_parse_dev("251:", &a, &b), -EINVAL);
	assert_int_equal(agent_port_parse_dev(":3", &a, &b), -EINVAL);
	assert_int_equal(agent_port_parse_dev("-1:3", &a, &b), -EINVAL);
	assert_int_equal(agent_port_parse_dev("251:-3", &a, &b), -EINVAL);
	assert_int_equal(agent_port_parse_dev("251:3x", &a, &b), -EINVAL);
	assert_int_equal(agent_port_parse_dev("4096:1", &a, &b), -EINVAL);
	assert_int_equal(agent_port_parse_dev("1:1048576", &a, &b), -EINVAL);
	assert_int_equal(agent_port_parse_dev("99999999999999999999999:1", &a, &b), -EINVAL);
}

static void test_find(void **state)
{
	struct fx *fx = *state;
	char path[256], want[256];
	struct stat st;
	int rc;

	assert_int_equal(agent_port_find(fx->sys, fx->dev, "org.ebb.agent.0", path, sizeof(path)),
			 -ENOENT);
	put(fx, "vport0p1", "name", "org.qemu.guest_agent.0\n");
	put(fx, "vport0p1", "dev", "250:1\n");
	put(fx, "vport1p0", "name", "");    /* the console port has an empty name */
	put(fx, "vport1p0", "dev", "250:2\n");
	put(fx, "vport1p2", "name", "org.ebb.agent.0\n");
	put(fx, "vport1p2", "dev", "250:7\n");
	snprintf(want, sizeof(want), "%s/vport1p2", fx->dev);

	rc = agent_port_find(fx->sys, fx->dev, "org.ebb.agent.0", path, sizeof(path));
	if (rc == -EPERM) {
		skip();   /* no CAP_MKNOD here */
		return;
	}
	assert_int_equal(rc, 0);
	assert_string_equal(path, want);
	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISCHR(st.st_mode));
	assert_int_equal(major(st.st_rdev), 250);
	assert_int_equal(minor(st.st_rdev), 7);
	/* Again: the node is right, left alone. */
	assert_int_equal(agent_port_find(fx->sys, fx->dev, "org.ebb.agent.0", path, sizeof(path)), 0);
	/* Something wrong at that path (a regular file) is replaced. */
	unlink(want);
	put(fx, "vport1p2", "dev", "250:8\n");
	{
		FILE *f = fopen(want, "w");

		assert_non_null(f);
		fclose(f);
	}
	assert_int_equal(agent_port_find(fx->sys, fx->dev, "org.ebb.agent.0", path, sizeof(path)), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISCHR(st.st_mode));
	assert_int_equal(minor(st.st_rdev), 8);
	/* A stale node with the old number is remade. */
	put(fx, "vport1p2", "dev", "250:9\n");
	assert_int_equal(agent_port_find(fx->sys, fx->dev, "org.ebb.agent.0", path, sizeof(path)), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(minor(st.st_rdev), 9);
	/* A name that only starts like ours does not match. */
	assert_int_equal(agent_port_find(fx->sys, fx->dev, "org.ebb.agent", path, sizeof(path)),
			 -ENOENT);
	/* Path buffer too small. */
	assert_int_equal(agent_port_find(fx->sys, fx->dev, "org.ebb.agent.0", path, 8),
			 -ENAMETOOLONG);
}

static void test_find_hostile_sysfs(void **state)
{
	struct fx *fx = *state;
	char path[256];
	char longname[1000];

	/* Our name, but a garbage dev file: refused, nothing created. */
	put(fx, "vport2p1", "name", "org.ebb.agent.0");
	put(fx, "vport2p1", "dev", "banana\n");
	assert_int_equal(agent_port_find(fx->sys, fx->dev, "org.ebb.agent.0", path, sizeof(path)),
			 -EINVAL);
	snprintf(path, sizeof(path), "%s/vport2p1", fx->dev);
	assert_int_equal(access(path, F_OK), -1);
	/* A name file longer than the read buffer does not match or overflow. */
	memset(longname, 'o', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	put(fx, "vport2p1", "name", longname);
	assert_int_equal(agent_port_find(fx->sys, fx->dev, "org.ebb.agent.0", path, sizeof(path)),
			 -ENOENT);
	/* No sysfs at all. */
	assert_int_equal(agent_port_find("/nonexistent", fx->dev, "org.ebb.agent.0", path,
					 sizeof(path)), -ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_dev),
		cmocka_unit_test_setup_teardown(test_find, setup, teardown),
		cmocka_unit_test_setup_teardown(test_find_hostile_sysfs, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
