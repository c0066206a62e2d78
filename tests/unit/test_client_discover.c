/*
 * tests/unit/test_client_discover.c — client/discover.c against a real
 * directory and real inotify: names present at start join, a socket bound
 * later joins, an unlinked one leaves, the reserved name and other files are
 * never reported, and a forgotten name is offered again.
 */
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "client/discover.h"

struct seen {
	char log[1024];
};

static void on_join(void *opaque, const char *name)
{
	struct seen *s = opaque;

	snprintf(s->log + strlen(s->log), sizeof(s->log) - strlen(s->log), "+%s ", name);
}

static void on_leave(void *opaque, const char *name)
{
	struct seen *s = opaque;

	snprintf(s->log + strlen(s->log), sizeof(s->log) - strlen(s->log), "-%s ", name);
}

static int bind_sock(const char *dir, const char *file)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/%s", dir, file);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

static void wait_process(struct ebb_discover *d)
{
	struct pollfd p = { .fd = ebb_discover_fd(d), .events = POLLIN };

	assert_int_equal(poll(&p, 1, 2000), 1);
	assert_int_equal(ebb_discover_process(d), 0);
}

static void test_discover(void **state)
{
	char dir[] = "/tmp/ebb-test-disc-XXXXXX", path[256];
	struct seen s = { { 0 } };
	struct ebb_discover_cfg cfg = { .on_join = on_join, .on_leave = on_leave, .opaque = &s };
	struct ebb_discover_stats st;
	struct ebb_discover *d;
	int a, b, e;

	(void)state;
	assert_non_null(mkdtemp(dir));
	a = bind_sock(dir, "alpha.sock");
	e = bind_sock(dir, "ebbd.sock");
	cfg.rundir = dir;
	assert_int_equal(ebb_discover_create(&cfg, &d), 0);
	assert_string_equal(s.log, "+alpha ");
	/* A VM started later joins; other files do not count. */
	b = bind_sock(dir, "beta.sock");
	wait_process(d);
	assert_string_equal(s.log, "+alpha +beta ");
	snprintf(path, sizeof(path), "%s/beta.lock", dir);
	close(open(path, O_CREAT | O_WRONLY, 0600));
	wait_process(d);
	assert_string_equal(s.log, "+alpha +beta ");
	/* One that exits leaves. */
	snprintf(path, sizeof(path), "%s/alpha.sock", dir);
	unlink(path);
	wait_process(d);
	assert_string_equal(s.log, "+alpha +beta -alpha ");
	assert_true(ebb_discover_has(d, "beta"));
	assert_false(ebb_discover_has(d, "alpha"));
	assert_false(ebb_discover_has(d, "ebbd"));
	/* Forgotten (found stale by the caller): offered again by a rescan. */
	ebb_discover_forget(d, "beta");
	assert_int_equal(ebb_discover_rescan(d), 0);
	assert_string_equal(s.log, "+alpha +beta -alpha +beta ");
	ebb_discover_get_stats(d, &st);
	assert_int_equal(st.nr_joined, 3);
	assert_int_equal(st.nr_left, 1);
	assert_true(st.nr_events >= 3);
	ebb_discover_destroy(d);
	close(a);
	close(b);
	close(e);
	unlink(path);
	snprintf(path, sizeof(path), "%s/beta.sock", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/beta.lock", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/ebbd.sock", dir);
	unlink(path);
	assert_int_equal(rmdir(dir), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_discover),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
