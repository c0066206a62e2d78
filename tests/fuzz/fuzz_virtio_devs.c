/*
 * tests/fuzz/fuzz_virtio_devs.c — libFuzzer target for the VMM's virtio
 * devices where they run without KVM (vmm/virtio_devs.c created without a
 * VM): the agent socket bridge (vmm/agent_bridge.c) and its event loop,
 * driven by a program of host clients connecting, sending, half-closing,
 * hanging up and crowding in, with console input, balloon targets and
 * queries in between.  The guest
 * never opens the agent port here, the case where a client's bytes cannot go
 * anywhere.  Invariants trap when broken: the event loop goes quiet once
 * nothing happens (no spinning on a hangup), the single agent slot is free
 * again once its client is gone, extra clients are refused and counted.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "client/evloop.h"
#include "vmm/virtio_devs.h"

#define MAX_CLIENTS 4

struct rd {
	const uint8_t *p;
	size_t left;
};

static uint8_t u8(struct rd *r)
{
	if (!r->left)
		return 0;
	r->left--;
	return *r->p++;
}

static int client_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		abort();
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return -1; /* backlog full: a client may be refused by the kernel */
	}
	return fd;
}

/* Runs the loop until it has nothing to do; traps if it never gets there. */
static void settle(struct vmm_evloop *loop)
{
	unsigned quiet = 0;

	for (unsigned i = 0; i < 64; i++) {
		int n = vmm_evloop_run_once(loop, 0);

		if (n < 0)
			abort();
		if (n == 0 && ++quiet == 2)
			return;
	}
	__builtin_trap(); /* still events after 64 turns: spinning */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static char dir[64];
	char path[128];
	struct vmm_virtio_devs_cfg cfg = {
		.mem_bytes = 64ull << 20, .ram_end_gpa = 64ull << 20, .console_out_fd = -1,
	};
	struct vmm_virtio_devs *d;
	struct vmm_evloop *loop;
	struct vmm_console_info ci;
	int clients[MAX_CLIENTS];
	struct rd r = { data, size };
	uint8_t buf[256];

	if (!dir[0]) {
		snprintf(dir, sizeof(dir), "/tmp/ebb-fuzz-devs-XXXXXX");
		if (!mkdtemp(dir))
			abort();
	}
	snprintf(path, sizeof(path), "%s/vm.agent", dir);
	if (vmm_evloop_create(&loop) || vmm_virtio_devs_create(&cfg, &d) || !d ||
	    vmm_virtio_devs_start(d, loop, path))
		abort();
	for (unsigned i = 0; i < MAX_CLIENTS; i++)
		clients[i] = -1;

	for (unsigned ops = 0; r.left && ops < 32; ops++) {
		uint8_t op = u8(&r);
		unsigned c = (op >> 4) % MAX_CLIENTS;

		switch (op % 8) {
		case 0: /* connect */
			if (clients[c] < 0)
				clients[c] = client_connect(path);
			break;
		case 1: { /* send */
			size_t n = u8(&r);
			memset(buf, op, n);
			if (clients[c] >= 0 && n && send(clients[c], buf, n, MSG_NOSIGNAL) < 0 &&
			    errno != EAGAIN && errno != EPIPE && errno != ECONNRESET)
				abort();
			break;
		}
		case 2: /* half-close */
			if (clients[c] >= 0)
				shutdown(clients[c], (op & 0x80) ? SHUT_RDWR : SHUT_WR);
			break;
		case 3: /* hang up */
			if (clients[c] >= 0)
				close(clients[c]);
			clients[c] = -1;
			break;
		case 4: { /* console input from the user */
			size_t n = u8(&r);
			memset(buf, 'x', n);
			vmm_virtio_console_input(d, buf, n);
			break;
		}
		case 5: { /* a balloon target from a client */
			uint64_t bytes = (uint64_t)u8(&r) << 20;
			int ret = vmm_virtio_balloon_set_size(d, bytes);
			if ((bytes <= cfg.mem_bytes) != (ret == 0))
				__builtin_trap();
			break;
		}
		case 6: { /* a query */
			struct vmm_balloon_info bi;
			if (vmm_virtio_balloon_info(d, &bi) || bi.driver_ok)
				__builtin_trap();
			break;
		}
		case 7: /* read what the client got (nothing: no guest) */
			if (clients[c] >= 0 && recv(clients[c], buf, sizeof(buf), MSG_DONTWAIT) > 0)
				__builtin_trap();
			break;
		}
		settle(loop);
		if (vmm_virtio_console_info(d, &ci))
			__builtin_trap();
		/* No client left: the slot is free (none stuck behind a hangup). */
		bool any = false;
		for (unsigned i = 0; i < MAX_CLIENTS; i++)
			any |= clients[i] >= 0;
		if (!any && ci.agent_client)
			__builtin_trap();
	}
	for (unsigned i = 0; i < MAX_CLIENTS; i++)
		if (clients[i] >= 0)
			close(clients[i]);
	settle(loop);
	if (vmm_virtio_console_info(d, &ci) || ci.agent_client)
		__builtin_trap();
	vmm_virtio_devs_destroy(d);
	vmm_evloop_destroy(loop);
	return 0;
}
