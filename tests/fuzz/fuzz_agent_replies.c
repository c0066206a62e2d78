/*
 * tests/fuzz/fuzz_agent_replies.c — libFuzzer target for the reply decoders
 * of client/agent_client.c, which fuzz_agent_client does not reach:
 * that one feeds bytes with no request in flight, so every reply is stray
 * and only unsolicited messages are decoded.  Here the guest's bytes wait in
 * a real socket while the client makes its four requests in turn (hello,
 * report, reclaim, config; request ids 1..4, so seeds carry "id":1 ...);
 * each call decodes whatever answers it.
 *
 * Invariants (docs/agent-protocol.md, "Host client contract"): no crash or
 * sanitizer report; every call returns 0 or -errno; what
 * a successful call returns is in range (sizes <= 1 PiB, free <= total,
 * percentages <= 100 %, strings terminated); queued events likewise.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "client/agent_client.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define PIB (1ull << 50)
#define FAIL(why) do { fprintf(stderr, "fuzz_agent_replies: %s\n", why); abort(); } while (0)

static void check_rc(int rc)
{
	/* agent_client.h: 0, -ETIMEDOUT, -EREMOTEIO, -EPROTO, -EPIPE "or another
	 * -errno" (hello: -EPROTONOSUPPORT for another protocol version). */
	if (rc > 0 || rc < -4095)
		FAIL("not 0 or -errno");
}

static void check_report(const struct agent_report *r)
{
	if (r->have_meminfo && (r->meminfo.total_bytes > PIB ||
				r->meminfo.free_bytes > r->meminfo.total_bytes))
		FAIL("report: meminfo out of range");
	if (r->have_psi && ((r->psi_some.present && (r->psi_some.avg10_centipct > 10000 ||
						      r->psi_some.avg60_centipct > 10000 ||
						      r->psi_some.avg300_centipct > 10000)) ||
			    (r->psi_full.present && (r->psi_full.avg10_centipct > 10000 ||
						      r->psi_full.avg60_centipct > 10000 ||
						      r->psi_full.avg300_centipct > 10000))))
		FAIL("report: psi over 100 %");
	if (r->have_estimate && (r->give_back_bytes > PIB || r->safe_target_bytes > PIB))
		FAIL("report: estimate over 1 PiB");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct agent_client_cfg cfg = { .max_line_bytes = 4096 };
	struct agent_reclaim_result rr;
	const struct agent_error *err;
	struct agent_hello hello;
	struct agent_report rep;
	struct agent_client *c;
	struct agent_event ev;
	size_t off = 0;
	int sv[2], rc;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
		return 0;
	/* All of the guest's answer is there before the first request; then
	 * the stream ends, so no call waits for more than is there. */
	while (off < size) {
		ssize_t n = send(sv[1], data + off, size - off, MSG_DONTWAIT | MSG_NOSIGNAL);

		if (n <= 0)
			break;
		off += (size_t)n;
	}
	shutdown(sv[1], SHUT_WR);
	cfg.fd = sv[0];
	if (agent_client_create(&cfg, &c)) {
		close(sv[0]);
		close(sv[1]);
		return 0;
	}
	memset(&hello, 0, sizeof(hello));
	rc = agent_client_hello(c, 50, &hello);
	check_rc(rc);
	if (rc == 0 && (hello.version == 0 || hello.max_line_bytes > (1u << 20)))
		FAIL("hello out of range");
	memset(&rep, 0, sizeof(rep));
	rc = agent_client_report(c, 50, &rep);
	check_rc(rc);
	if (rc == 0)
		check_report(&rep);
	memset(&rr, 0, sizeof(rr));
	rc = agent_client_reclaim(c, AGENT_RECLAIM_PROACTIVE, 1 << 20, false, 50, &rr);
	check_rc(rc);
	if (rc == 0 && (rr.freed_bytes > PIB || rr.free_before_bytes > PIB ||
			rr.free_after_bytes > PIB))
		FAIL("reclaim result over 1 PiB");
	rc = agent_client_config(c, 1000, 100000, 1000000, 50);
	check_rc(rc);
	err = agent_client_last_error(c);
	if (memchr(err->code, '\0', sizeof(err->code)) == NULL ||
	    memchr(err->message, '\0', sizeof(err->message)) == NULL)
		FAIL("last error not terminated");
	while (agent_client_pop_event(c, &ev) == 0) {
		if (ev.type == AGENT_EV_REPORT)
			check_report(&ev.u.report);
		else if (ev.type == AGENT_EV_PRESSURE &&
			 (ev.u.pressure.free_bytes > ev.u.pressure.total_bytes ||
			  ev.u.pressure.some_avg10_centipct > 10000))
			FAIL("pressure event out of range");
	}
	agent_client_destroy(c);
	close(sv[1]);
	return 0;
}
