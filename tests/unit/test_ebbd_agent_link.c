/*
 * test_ebbd_agent_link.c — ebbd's end of a VM's agent channel
 * (host-reclaim/ebbd/agent_link.h) against fake peers on a real unix
 * socket: one that speaks the protocol (hello, a pressure message, EOF) and
 * one that sends garbage (one log line however often it is retried, the
 * channel dropped and retried with backoff, no agent fields).
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
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

#include "host-reclaim/ebbd/agent_link.h"

enum peer_mode { PEER_GOOD, PEER_GARBAGE, PEER_JUNK_THEN_GOOD };

struct peer {
	enum peer_mode mode;
	char dir[64];
	char path[96];
	int lfd;
	int nr_accepted;
	_Atomic int hangup;           /* the good peer closes its connection */
	pthread_t th;
};

struct logs {
	int nr_warn, nr_bad;
};

static void log_fn(void *opaque, enum ebb_log_level level, const char *msg)
{
	struct logs *l = opaque;

	if (level == EBB_LOG_WARN)
		l->nr_warn++;
	if (strstr(msg, "not the agent protocol"))
		l->nr_bad++;
}

static void say(int fd, const char *s)
{
	ssize_t n = send(fd, s, strlen(s), MSG_NOSIGNAL);

	(void)n;
}

/* The good peer: answers every hello (echoing its id), sends one pressure
 * message after the first, and hangs up (the agent went away) when the test
 * sets hangup. */
static void serve_good(struct peer *p, int fd)
{
	char buf[4096], line[512];
	bool pressure_sent = false;

	if (p->mode == PEER_JUNK_THEN_GOOD)
		say(fd, "s\":1}\n");   /* the tail of a line cut off earlier */
	while (!p->hangup) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		const char *at;
		ssize_t n;

		if (poll(&pfd, 1, 20) <= 0)
			continue;
		n = read(fd, buf, sizeof(buf) - 1);
		if (n <= 0)
			break;
		buf[n] = '\0';
		for (at = strstr(buf, "\"id\":"); at; at = strstr(at + 1, "\"id\":")) {
			snprintf(line, sizeof(line), "{\"type\":\"hello\",\"id\":%ld,\"version\":1,"
				 "\"agent\":\"ebb-agent\",\"pid\":93,\"page_size\":4096,"
				 "\"max_line_bytes\":1024,\"caps\":[\"pressure\"],"
				 "\"report_period_ms\":0,\"psi_stall_us\":100000,"
				 "\"psi_window_us\":1000000}\n", strtol(at + 5, NULL, 10));
			say(fd, line);
		}
		if (!pressure_sent) {
			usleep(50000);
			say(fd, "{\"type\":\"pressure\",\"seq\":1,\"need_bytes\":33071104,"
			    "\"total_bytes\":479645696,\"free_bytes\":4616192,"
			    "\"available_bytes\":34037760,\"some_avg10\":0.00,"
			    "\"full_avg10\":0.00,\"some_total_us\":115758,"
			    "\"psi_stall_us\":100000,\"psi_window_us\":1000000}\n");
			pressure_sent = true;
		}
	}
	p->hangup = 0;
}

/* Serves connections until the listening socket is shut down. */
static void *peer_thread(void *arg)
{
	struct peer *p = arg;
	char buf[4096];

	for (;;) {
		int fd = accept(p->lfd, NULL, NULL);

		if (fd < 0)
			return NULL;
		p->nr_accepted++;
		if (p->mode != PEER_GARBAGE) {
			serve_good(p, fd);
			close(fd);
			continue;
		}
		/* the bad one speaks garbage every 50 ms until the host gives up */
		for (;;) {
			struct pollfd pfd = { .fd = fd, .events = POLLIN };

			say(fd, "hello?\n{\"type\":\"hello\",\"id\":1,\"version\":\"one\"}\n");
			say(fd, "\x01\x02 not json at all\n");
			if (poll(&pfd, 1, 50) > 0 && read(fd, buf, sizeof(buf)) <= 0)
				break;
		}
		close(fd);
	}
}

static void peer_start(struct peer *p, enum peer_mode mode)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	memset(p, 0, sizeof(*p));
	p->mode = mode;
	snprintf(p->dir, sizeof(p->dir), "/tmp/test_agent_link.XXXXXX");
	assert_non_null(mkdtemp(p->dir));
	snprintf(p->path, sizeof(p->path), "%s/vm.agent", p->dir);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", p->path);
	p->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(p->lfd >= 0);
	assert_int_equal(bind(p->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(p->lfd, 4), 0);
	assert_int_equal(pthread_create(&p->th, NULL, peer_thread, p), 0);
}

static void peer_stop(struct peer *p)
{
	shutdown(p->lfd, SHUT_RDWR);
	pthread_join(p->th, NULL);
	close(p->lfd);
	unlink(p->path);
	rmdir(p->dir);
}

/* A peer of @mode, a link to it, and its first observations: until the
 * hello went through, or for the garbage peer until the link dropped it
 * (a loaded machine may make the hello miss its 200 ms, and one batch of
 * junk before a hello is forgiven). */
struct fx {
	struct logs logs;
	struct vmm_log log;
	struct ebbd_agent_link l;
	struct ebb_bal_vm_obs obs;
	struct peer p;
};

static void fx_start(struct fx *f, enum peer_mode mode)
{
	memset(f, 0, sizeof(*f));
	f->log.fn = log_fn;
	f->log.opaque = &f->logs;
	peer_start(&f->p, mode);
	ebbd_agent_link_init(&f->l, "vm1", &f->log);
	ebbd_agent_link_observe(&f->l, f->p.path, &f->obs);
	for (int i = 0; i < 50 && (mode == PEER_GARBAGE ? !f->l.c.nr_drops : !f->l.hello_ok);
	     i++)
		ebbd_agent_link_observe(&f->l, f->p.path, &f->obs);
}

static void fx_stop(struct fx *f)
{
	ebbd_agent_link_fini(&f->l);
	peer_stop(&f->p);
}

static void test_good_agent(void **state)
{
	struct fx f;
	struct pollfd pfd;
	int fd, n = 0;

	(void)state;
	fx_start(&f, PEER_GOOD);
	assert_int_equal(f.l.c.nr_hellos, 1);
	assert_true(f.obs.caps & EBB_BAL_CAP_AGENT);
	assert_false(f.obs.agent_present);   /* no report capability: no report */
	fd = ebbd_agent_link_fd(&f.l);
	assert_true(fd >= 0);
	/* the pressure message arrives on the daemon's loop */
	pfd.fd = fd;
	pfd.events = POLLIN;
	for (n = 0; n < 100 && f.l.nr_pressure == 0; n++) {
		(void)poll(&pfd, 1, 50);
		assert_true(ebbd_agent_link_poll(&f.l) >= 0);
	}
	assert_int_equal(f.l.nr_pressure, 1);
	memset(&f.obs, 0, sizeof(f.obs));
	ebbd_agent_link_observe(&f.l, f.p.path, &f.obs);
	assert_int_equal(f.obs.agent_nr_pressure, 1);
	assert_int_equal(f.obs.agent_pressure_need_bytes, 33071104);
	/* the agent hangs up: dropped, then retried only after the backoff */
	f.p.hangup = 1;
	assert_int_equal(poll(&pfd, 1, 2000), 1);
	while (ebbd_agent_link_poll(&f.l) >= 0)
		assert_int_equal(poll(&pfd, 1, 2000), 1);
	assert_int_equal(ebbd_agent_link_fd(&f.l), -1);
	assert_int_equal(f.l.c.nr_drops, 1);
	ebbd_agent_link_observe(&f.l, f.p.path, &f.obs);
	assert_int_equal(f.l.c.nr_connects, 1);
	usleep(1100000);
	ebbd_agent_link_observe(&f.l, f.p.path, &f.obs);
	assert_int_equal(f.l.c.nr_connects, 2);
	for (n = 0; n < 50 && !f.l.hello_ok; n++)
		ebbd_agent_link_observe(&f.l, f.p.path, &f.obs);
	assert_int_equal(f.l.c.nr_connects, 2);
	assert_int_equal(f.l.c.nr_hellos, 2);
	assert_int_equal(f.logs.nr_warn, 0);
	fx_stop(&f);
}

static void test_garbage_agent(void **state)
{
	struct fx f;

	(void)state;
	fx_start(&f, PEER_GARBAGE);
	assert_int_equal(f.l.c.nr_connects, 1);
	assert_int_equal(f.l.c.nr_hellos, 0);
	assert_int_equal(f.l.c.nr_drops, 1);
	assert_true(f.l.c.nr_bad_lines >= 1);
	assert_int_equal(ebbd_agent_link_fd(&f.l), -1);
	assert_false(f.obs.caps & EBB_BAL_CAP_AGENT);
	assert_false(f.obs.agent_present);
	/* within the backoff: not tried again */
	ebbd_agent_link_observe(&f.l, f.p.path, &f.obs);
	assert_int_equal(f.l.c.nr_connects, 1);
	/* after it: tried, dropped again, and still one log line */
	usleep(1100000);
	for (int i = 0; i < 50 && f.l.c.nr_drops < 2; i++)
		ebbd_agent_link_observe(&f.l, f.p.path, &f.obs);
	assert_int_equal(f.l.c.nr_connects, 2);
	assert_int_equal(f.l.c.nr_drops, 2);
	assert_true(f.l.backoff_ms >= 4000);
	assert_false(f.obs.caps & EBB_BAL_CAP_AGENT);
	assert_int_equal(f.logs.nr_bad, 1);
	assert_int_equal(f.l.c.nr_bad_logged, 1);
	fx_stop(&f);
}

/* Junk before a valid hello (a line cut off when the last client left) is
 * counted and logged, but the agent that then answers is kept. */
static void test_junk_then_hello(void **state)
{
	struct fx f;

	(void)state;
	fx_start(&f, PEER_JUNK_THEN_GOOD);
	assert_int_equal(f.l.c.nr_hellos, 1);
	assert_int_equal(f.l.c.nr_drops, 0);
	assert_int_equal(f.l.c.nr_bad_lines, 1);
	assert_int_equal(f.logs.nr_bad, 1);
	assert_true(f.obs.caps & EBB_BAL_CAP_AGENT);
	assert_true(ebbd_agent_link_fd(&f.l) >= 0);
	fx_stop(&f);
}

static void test_no_socket(void **state)
{
	struct logs logs = { 0 };
	struct vmm_log log = { .fn = log_fn, .opaque = &logs };
	struct ebbd_agent_link l;
	struct ebb_bal_vm_obs obs = { 0 };

	(void)state;
	ebbd_agent_link_init(&l, "vm1", &log);
	ebbd_agent_link_observe(&l, "/nonexistent/vm.agent", &obs);
	ebbd_agent_link_observe(&l, NULL, &obs);
	ebbd_agent_link_observe(&l, "", &obs);
	assert_int_equal(l.c.nr_connects, 0);
	assert_int_equal(ebbd_agent_link_fd(&l), -1);
	assert_int_equal(ebbd_agent_link_poll(&l), -ENOTCONN);
	assert_int_equal(logs.nr_warn, 0);
	ebbd_agent_link_fini(&l);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good_agent),
		cmocka_unit_test(test_garbage_agent),
		cmocka_unit_test(test_junk_then_hello),
		cmocka_unit_test(test_no_socket),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
