/*
 * tests/unit/test_virtio_devs.c — the VMM's agent bridge
 * (vmm/agent_bridge.c, through vmm/virtio_devs.c) against real unix
 * sockets and its real event loop, with devices created without a VM (no
 * guest: the agent port is closed, as before the guest agent starts).  A host client that sends and hangs up
 * while the guest cannot take its bytes must not make the event loop spin,
 * and must free the single agent slot for the next client.  Also the VM's
 * e820 check of guest ranges given back (balloon, reporting).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "vmm/boot.h"
#include "client/evloop.h"
#include "vmm/virtio_devs.h"
#include "vmm/vm.h"

struct env {
	char dir[64], path[96];
	struct vmm_evloop *loop;
	struct vmm_virtio_devs *d;
};

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void setup(struct env *e)
{
	struct vmm_virtio_devs_cfg cfg = {
		.vm = NULL, .mem_bytes = 64ull << 20, .ram_end_gpa = 64ull << 20,
		.console_out_fd = -1,
	};

	snprintf(e->dir, sizeof(e->dir), "/tmp/ebb-agent-test-XXXXXX");
	assert_non_null(mkdtemp(e->dir));
	snprintf(e->path, sizeof(e->path), "%s/vm.agent", e->dir);
	assert_int_equal(vmm_evloop_create(&e->loop), 0);
	assert_int_equal(vmm_virtio_devs_create(&cfg, &e->d), 0);
	assert_non_null(e->d);
	assert_int_equal(vmm_virtio_devs_start(e->d, e->loop, e->path), 0);
}

static void teardown(struct env *e)
{
	vmm_virtio_devs_destroy(e->d);
	vmm_evloop_destroy(e->loop);
	rmdir(e->dir);
}

static int connect_client(struct env *e)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", e->path);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

/* Runs the loop for ms milliseconds; returns the events it dispatched. */
static unsigned run_for(struct env *e, unsigned ms)
{
	uint64_t end = mono_ms() + ms;
	unsigned events = 0;

	while (mono_ms() < end) {
		int n = vmm_evloop_run_once(e->loop, 20);

		assert_true(n >= 0);
		events += (unsigned)n;
	}
	return events;
}

static void test_hangup_while_port_closed_frees_slot(void **state)
{
	struct vmm_console_info ci;
	struct env e;
	unsigned events;
	int fd;

	setup(&e);
	fd = connect_client(&e);
	run_for(&e, 50);
	assert_int_equal(vmm_virtio_console_info(e.d, &ci), 0);
	assert_true(ci.agent_client);
	assert_false(ci.agent_guest_open);
	/* A request the guest cannot take (port closed), then the client goes. */
	assert_int_equal(write(fd, "{\"id\":1}\n", 9), 9);
	close(fd);
	events = run_for(&e, 500);
	/* Idle: a couple of 200 ms ticks and wakeups; spinning: thousands. */
	printf("# %u events in 500 ms after the hangup\n", events);
	assert_true(events < 50);
	assert_int_equal(vmm_virtio_console_info(e.d, &ci), 0);
	assert_false(ci.agent_client);
	assert_int_equal(ci.nr_agent_hangups, 1);
	/* The slot is free: the next client is taken, not refused. */
	fd = connect_client(&e);
	run_for(&e, 50);
	assert_int_equal(vmm_virtio_console_info(e.d, &ci), 0);
	assert_true(ci.agent_client);
	assert_int_equal(ci.nr_agent_refused, 0);
	close(fd);
	run_for(&e, 50);
	teardown(&e);
}

/* Issue 11 #2: the VM's one check of guest ranges follows its e820 map. */
static void test_e820_ram_ok(void **state)
{
	struct vmm_mem_layout mem;

	assert_int_equal(vmm_mem_layout_init(5ull << 30, &mem), 0); /* RAM above 4 GiB too */
	assert_true(vmm_mem_layout_ram_ok(&mem, 0x1000, 0x1000));
	assert_true(vmm_mem_layout_ram_ok(&mem, 0x9e000, 0x1000));
	assert_false(vmm_mem_layout_ram_ok(&mem, 0x9f000, 0x1000));   /* EBDA */
	assert_false(vmm_mem_layout_ram_ok(&mem, 0xa0000, 0x1000));   /* VGA hole */
	assert_false(vmm_mem_layout_ram_ok(&mem, 0xf0000, 0x1000));   /* MP table */
	assert_false(vmm_mem_layout_ram_ok(&mem, 0x9e000, 0x2000));   /* straddles */
	assert_true(vmm_mem_layout_ram_ok(&mem, 0x100000, 0x200000));
	assert_true(vmm_mem_layout_ram_ok(&mem, mem.low_bytes - 0x1000, 0x1000));
	assert_false(vmm_mem_layout_ram_ok(&mem, mem.low_bytes - 0x1000, 0x2000)); /* PCI hole */
	assert_false(vmm_mem_layout_ram_ok(&mem, mem.low_bytes, 0x1000));
	assert_true(vmm_mem_layout_ram_ok(&mem, 0x100000000ull, mem.high_bytes));
	assert_false(vmm_mem_layout_ram_ok(&mem, 0x100000000ull, mem.high_bytes + 0x1000));
	assert_false(vmm_mem_layout_ram_ok(&mem, UINT64_MAX - 0xfff, 0x2000));  /* wraps */
	assert_false(vmm_mem_layout_ram_ok(&mem, 0x1000, 0));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hangup_while_port_closed_frees_slot),
		cmocka_unit_test(test_e820_ram_ok),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
