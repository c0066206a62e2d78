/*
 * tests/unit/test_vmm_evloop.c — the event loop (client/evloop.c) on real
 * eventfds and pipes: dispatch, a handler deleting its own and another
 * pending watch in the same batch (no use after free: run under ASan),
 * stop from another thread, and the idle hook that keeps the loop from
 * sleeping while it reports pending work.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "client/evloop.h"
#include "client/log.h"

struct ctx {
	struct vmm_evloop *loop;
	struct vmm_ev_watch *self, *other;
	int fd;
	unsigned calls;
};

static void on_event(void *opaque, uint32_t events)
{
	struct ctx *c = opaque;
	uint64_t v;

	c->calls++;
	if (read(c->fd, &v, sizeof(v)) < 0) {
		/* drained by an earlier round */
	}
	if (c->other) {
		/* Delete the other watch (its event is in this same batch) and ourselves. */
		vmm_evloop_del(c->loop, c->other);
		vmm_evloop_del(c->loop, c->self);
	}
}

static void test_dispatch_and_delete_in_batch(void **state)
{
	struct vmm_evloop *loop;
	struct ctx a = { 0 }, b = { 0 };
	uint64_t one = 1;

	assert_int_equal(vmm_evloop_create(&loop), 0);
	a.loop = b.loop = loop;
	a.fd = eventfd(0, EFD_NONBLOCK);
	b.fd = eventfd(0, EFD_NONBLOCK);
	assert_int_equal(vmm_evloop_add(loop, a.fd, EPOLLIN, on_event, &a, &a.self), 0);
	assert_int_equal(vmm_evloop_add(loop, b.fd, EPOLLIN, on_event, &b, &b.self), 0);
	/* Plain dispatch first. */
	assert_int_equal(write(a.fd, &one, 8), 8);
	assert_int_equal(vmm_evloop_run_once(loop, 1000), 1);
	assert_int_equal(a.calls, 1);
	/* Both ready; whichever runs first deletes both: exactly one call. */
	a.other = b.self;
	b.other = a.self;
	assert_int_equal(write(a.fd, &one, 8), 8);
	assert_int_equal(write(b.fd, &one, 8), 8);
	assert_int_equal(vmm_evloop_run_once(loop, 1000), 2);
	assert_int_equal(a.calls + b.calls, 2);
	/* Neither is watched any more. */
	assert_int_equal(write(a.fd, &one, 8), 8);
	assert_int_equal(vmm_evloop_run_once(loop, 50), 0);
	assert_int_equal(a.calls + b.calls, 2);
	vmm_evloop_del(loop, NULL);
	assert_int_equal(vmm_evloop_add(loop, -1, EPOLLIN, on_event, &a, NULL), -EBADF);
	close(a.fd);
	close(b.fd);
	vmm_evloop_destroy(loop);
	vmm_evloop_destroy(NULL);
}

static void *stopper(void *arg)
{
	usleep(50000);
	vmm_evloop_stop(arg);
	return NULL;
}

static void test_stop_from_another_thread(void **state)
{
	struct vmm_evloop *loop;
	pthread_t t;
	uint64_t t0 = vmm_now_ns();

	assert_int_equal(vmm_evloop_create(&loop), 0);
	assert_int_equal(pthread_create(&t, NULL, stopper, loop), 0);
	assert_int_equal(vmm_evloop_run(loop), 0);  /* returns once stopped */
	pthread_join(t, NULL);
	assert_true(vmm_now_ns() - t0 >= 40000000ull);
	vmm_evloop_destroy(loop);
}

static unsigned idle_calls;

static bool idle(void *opaque)
{
	return ++idle_calls < *(unsigned *)opaque;
}

static void test_idle_hook(void **state)
{
	struct vmm_evloop *loop;
	unsigned rounds = 3;
	uint64_t t0;

	assert_int_equal(vmm_evloop_create(&loop), 0);
	vmm_evloop_set_idle(loop, idle, &rounds);
	/* While the hook has work, waits do not sleep: 3 rounds with a 10 s
	 * timeout take no time at all. */
	t0 = vmm_now_ns();
	vmm_evloop_run_once(loop, 10000);
	vmm_evloop_run_once(loop, 10000);
	vmm_evloop_run_once(loop, 10000);
	assert_true(vmm_now_ns() - t0 < 2000000000ull);
	assert_int_equal(idle_calls, 3);
	/* Done: now the loop sleeps for the timeout. */
	t0 = vmm_now_ns();
	vmm_evloop_run_once(loop, 100);
	assert_true(vmm_now_ns() - t0 >= 90000000ull);
	vmm_evloop_destroy(loop);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_dispatch_and_delete_in_batch),
		cmocka_unit_test(test_stop_from_another_thread),
		cmocka_unit_test(test_idle_hook),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
