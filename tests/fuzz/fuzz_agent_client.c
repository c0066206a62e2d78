/*
 * libFuzzer target: everything a guest can send to the host over the agent
 * channel, fed to the host-side client (client/agent_client) in chunks
 * whose sizes the fuzzer also chooses.  Unsolicited messages come out of the
 * event queue; each must satisfy the ranges the client promises its callers
 * (docs/agent-protocol.md, "client contract"), whatever the guest wrote.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "client/agent_client.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_event(const struct agent_event *ev)
{
	switch (ev->type) {
	case AGENT_EV_REPORT: {
		const struct agent_report *r = &ev->u.report;

		if (r->have_meminfo && r->meminfo.free_bytes > r->meminfo.total_bytes)
			abort();
		if (r->have_psi && r->psi_some.present && r->psi_some.avg10_centipct > 10000)
			abort();
		if (r->have_psi && r->psi_full.present && r->psi_full.avg10_centipct > 10000)
			abort();
		break;
	}
	case AGENT_EV_PRESSURE:
		if (ev->u.pressure.free_bytes > ev->u.pressure.total_bytes ||
		    ev->u.pressure.some_avg10_centipct > 10000 ||
		    ev->u.pressure.full_avg10_centipct > 10000)
			abort();
		break;
	case AGENT_EV_ERROR:
		if (memchr(ev->u.error.code, '\0', sizeof(ev->u.error.code)) == NULL ||
		    memchr(ev->u.error.message, '\0', sizeof(ev->u.error.message)) == NULL)
			abort();
		break;
	default:
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct agent_client_cfg cfg = { .max_line_bytes = 512 };
	struct agent_client *c;
	struct agent_event ev;
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		return 0;
	cfg.fd = sv[0];
	if (agent_client_create(&cfg, &c)) {
		close(sv[0]);
		close(sv[1]);
		return 0;
	}
	/* The first byte picks the chunk size, so lines get split anywhere. */
	size_t chunk = size ? (size_t)data[0] % 64 + 1 : 1;
	for (size_t off = size ? 1 : 0; off < size; off += chunk) {
		size_t n = size - off < chunk ? size - off : chunk;

		agent_client_feed(c, (const char *)data + off, n);
		while (agent_client_pop_event(c, &ev) == 0)
			check_event(&ev);
	}
	agent_client_destroy(c);
	close(sv[1]);
	return 0;
}
