/*
 * tests/unit/test_vmm_ctl.c — the control protocol (client/ctl.c) and its
 * server (client/ctl_server.c).  The parser gets good requests and a catalogue
 * of hostile ones; every error carries its code and, where one could be
 * read, the client's id.  The server runs on a real Unix socket and a real
 * event loop, stepped from the test: malformed lines and unknown commands get
 * errors and the connection stays usable, over-long lines are refused and
 * skipped, a client vanishing mid-request harms nothing, the client limit
 * holds, the socket is 0600, and the client helpers in client/rundir.c talk to it.
 * Trust: the runtime directory is refused unless ours and 0700 (a symlink,
 * another owner, a wider mode); NAME.lock never follows a symlink; clients
 * of another uid are refused (SO_PEERCRED) by the server and servers of
 * another uid by the client; idle clients are dropped so that max_clients
 * idle connections cannot lock others out.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <time.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "client/ctl.h"
#include "client/ctl_server.h"
#include "client/peer.h"
#include "client/rundir.h"

/* The commands the parser tests know: a server's registered ones. */
static bool known(void *opaque, const char *name)
{
	static const char *const names[] = { "query", "stop", "version" };

	(void)opaque;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(name, names[i]) == 0)
			return true;
	return false;
}

static enum vmm_ctl_err parse(const char *line, struct vmm_ctl_request *req)
{
	char msg[256];

	return vmm_ctl_parse_request(line, strlen(line), known, NULL, req, msg, sizeof(msg));
}

static void test_parse_good(void **state)
{
	struct vmm_ctl_request req;

	assert_int_equal(parse("{\"id\":7,\"cmd\":\"query\"}", &req), VMM_CTL_OK);
	assert_string_equal(req.cmd, "query");
	assert_int_equal(json_object_get_int64(req.id), 7);
	assert_null(req.args);
	vmm_ctl_request_release(&req);

	assert_int_equal(parse(" {\"cmd\":\"stop\",\"id\":\"abc\",\"version\":1,\"args\":{\"x\":1}}\r", &req),
			 VMM_CTL_OK);
	assert_string_equal(req.cmd, "stop");
	assert_string_equal(json_object_get_string(req.id), "abc");
	assert_non_null(req.args);
	vmm_ctl_request_release(&req);

	/* No id is fine (the response then has "id": null); unknown keys are ignored. */
	assert_int_equal(parse("{\"cmd\":\"version\",\"future\":[1,2]}", &req), VMM_CTL_OK);
	assert_null(req.id);
	vmm_ctl_request_release(&req);
}

static void test_parse_hostile(void **state)
{
	static const struct { const char *line; enum vmm_ctl_err err; bool has_id; } bad[] = {
		{ "", VMM_CTL_ERR_PARSE, false },
		{ "hello", VMM_CTL_ERR_PARSE, false },
		{ "{", VMM_CTL_ERR_PARSE, false },
		{ "{\"cmd\":\"query\"", VMM_CTL_ERR_PARSE, false },
		{ "{\"cmd\":\"query\"}}", VMM_CTL_ERR_PARSE, false },
		{ "{\"cmd\":\"query\"} {\"cmd\":\"stop\"}", VMM_CTL_ERR_PARSE, false },
		{ "{'cmd':'query'}", VMM_CTL_ERR_PARSE, false },
		{ "{\"cmd\":\"query\",}", VMM_CTL_ERR_PARSE, false },
		{ "[1,2,3]", VMM_CTL_ERR_INVALID, false },
		{ "\"query\"", VMM_CTL_ERR_INVALID, false },
		{ "null", VMM_CTL_ERR_INVALID, false },
		{ "{}", VMM_CTL_ERR_INVALID, false },
		{ "{\"id\":1}", VMM_CTL_ERR_INVALID, true },
		{ "{\"id\":1,\"cmd\":42}", VMM_CTL_ERR_INVALID, true },
		{ "{\"id\":1,\"cmd\":null}", VMM_CTL_ERR_INVALID, true },
		{ "{\"id\":1,\"cmd\":\"reboot-the-host\"}", VMM_CTL_ERR_UNKNOWN_CMD, true },
		{ "{\"id\":1,\"cmd\":\"QUERY\"}", VMM_CTL_ERR_UNKNOWN_CMD, true },
		{ "{\"id\":1,\"cmd\":\"query\\u0000x\"}", VMM_CTL_ERR_UNKNOWN_CMD, true },
		{ "{\"id\":1,\"cmd\":\"query\",\"version\":2}", VMM_CTL_ERR_VERSION, true },
		{ "{\"id\":1,\"cmd\":\"query\",\"version\":\"1\"}", VMM_CTL_ERR_VERSION, true },
		{ "{\"id\":1,\"cmd\":\"query\",\"args\":[]}", VMM_CTL_ERR_INVALID, true },
		{ "{\"id\":1,\"cmd\":\"query\",\"args\":\"x\"}", VMM_CTL_ERR_INVALID, true },
		{ "{\"id\":{\"a\":1},\"cmd\":\"query\"}", VMM_CTL_ERR_INVALID, false },
		{ "{\"id\":1.5,\"cmd\":\"query\"}", VMM_CTL_ERR_INVALID, false },
		{ "{\"id\":[1],\"cmd\":\"query\"}", VMM_CTL_ERR_INVALID, false },
		{ "{\"id\":true,\"cmd\":\"query\"}", VMM_CTL_ERR_INVALID, false },
		{ "{\"cmd\":\"query\",\"x\":[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]}", VMM_CTL_ERR_PARSE, false },
		{ "{\"cmd\":\"qu\xff\xfe\"}", VMM_CTL_ERR_PARSE, false },
	};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct vmm_ctl_request req;
		char msg[256] = "";
		enum vmm_ctl_err err = vmm_ctl_parse_request(bad[i].line, strlen(bad[i].line), known,
							     NULL, &req, msg, sizeof(msg));

		if (err != bad[i].err)
			fail_msg("'%s': got %s (%s), wanted %s", bad[i].line, vmm_ctl_err_code(err), msg,
				 vmm_ctl_err_code(bad[i].err));
		assert_true(msg[0] != '\0');           /* always a reason */
		assert_int_equal(req.id != NULL, bad[i].has_id);
		assert_null(req.args);
		vmm_ctl_request_release(&req);
	}
}

static void test_parse_limits(void **state)
{
	char *line = malloc(VMM_CTL_MAX_LINE_BYTES + 2);
	struct vmm_ctl_request req;
	char id[VMM_CTL_MAX_ID_BYTES + 2], buf[512], msg[128];

	/* A long but legal line; then one byte too many. */
	memset(line, ' ', VMM_CTL_MAX_LINE_BYTES + 1);
	memcpy(line, "{\"cmd\":\"query\"}", 15);
	assert_int_equal(vmm_ctl_parse_request(line, VMM_CTL_MAX_LINE_BYTES, known, NULL, &req, msg,
					       sizeof(msg)), VMM_CTL_OK);
	vmm_ctl_request_release(&req);
	assert_int_equal(vmm_ctl_parse_request(line, VMM_CTL_MAX_LINE_BYTES + 1, known, NULL, &req, msg,
					       sizeof(msg)), VMM_CTL_ERR_LINE_TOO_LONG);
	/* A NUL byte inside the line. */
	memcpy(buf, "{\"cmd\":\"query\"}\0{}", 18);
	assert_int_equal(vmm_ctl_parse_request(buf, 18, known, NULL, &req, msg, sizeof(msg)),
			 VMM_CTL_ERR_PARSE);
	/* Ids up to the limit are echoed; longer ones refused. */
	memset(id, 'i', sizeof(id));
	id[VMM_CTL_MAX_ID_BYTES] = '\0';
	snprintf(buf, sizeof(buf), "{\"id\":\"%s\",\"cmd\":\"query\"}", id);
	assert_int_equal(parse(buf, &req), VMM_CTL_OK);
	vmm_ctl_request_release(&req);
	id[VMM_CTL_MAX_ID_BYTES] = 'i';
	id[VMM_CTL_MAX_ID_BYTES + 1] = '\0';
	snprintf(buf, sizeof(buf), "{\"id\":\"%s\",\"cmd\":\"query\"}", id);
	assert_int_equal(parse(buf, &req), VMM_CTL_ERR_INVALID);
	vmm_ctl_request_release(&req);
	/* Not NUL-terminated input is only read up to len. */
	assert_int_equal(vmm_ctl_parse_request("{\"cmd\":\"stop\"}garbage", 14, known, NULL, &req,
					       msg, sizeof(msg)), VMM_CTL_OK);
	vmm_ctl_request_release(&req);
	/* Without a list of known commands any name is taken, up to
	 * VMM_CTL_MAX_CMD_BYTES and without a NUL. */
	snprintf(buf, sizeof(buf), "{\"cmd\":\"reboot-the-host\"}");
	assert_int_equal(vmm_ctl_parse_request(buf, strlen(buf), NULL, NULL, &req, msg, sizeof(msg)),
			 VMM_CTL_OK);
	assert_string_equal(req.cmd, "reboot-the-host");
	vmm_ctl_request_release(&req);
	snprintf(buf, sizeof(buf), "{\"cmd\":\"query\\u0000x\"}");
	assert_int_equal(vmm_ctl_parse_request(buf, strlen(buf), NULL, NULL, &req, msg, sizeof(msg)),
			 VMM_CTL_ERR_UNKNOWN_CMD);
	vmm_ctl_request_release(&req);
	snprintf(buf, sizeof(buf), "{\"cmd\":\"%033d\"}", 0);
	assert_int_equal(vmm_ctl_parse_request(buf, strlen(buf), NULL, NULL, &req, msg, sizeof(msg)),
			 VMM_CTL_ERR_UNKNOWN_CMD);
	vmm_ctl_request_release(&req);
	free(line);
}

static void test_format_roundtrip(void **state)
{
	struct json_object *id = json_object_new_int(42), *res = json_object_new_object();
	struct vmm_ctl_response resp;
	char *line;

	json_object_object_add(res, "vcpus", json_object_new_int(2));
	line = vmm_ctl_format_ok(id, res);
	assert_non_null(line);
	assert_int_equal(line[strlen(line) - 1], '\n');
	assert_null(strchr(line, '\n') == line + strlen(line) - 1 ? NULL : line);  /* one line */
	assert_int_equal(vmm_ctl_parse_response(line, strlen(line) - 1, &resp), 0);
	assert_true(resp.ok);
	assert_int_equal(json_object_get_int(resp.id), 42);
	{
		struct json_object *v;

		assert_true(json_object_object_get_ex(resp.result, "vcpus", &v));
		assert_int_equal(json_object_get_int(v), 2);
	}
	vmm_ctl_response_release(&resp);
	free(line);

	line = vmm_ctl_format_error(id, VMM_CTL_ERR_UNKNOWN_CMD, "no \"such\"\ncommand");
	assert_non_null(line);
	assert_ptr_equal(strchr(line, '\n'), line + strlen(line) - 1);  /* newline escaped */
	assert_int_equal(vmm_ctl_parse_response(line, strlen(line) - 1, &resp), 0);
	assert_false(resp.ok);
	assert_string_equal(resp.error_code, "unknown-command");
	assert_string_equal(resp.error_message, "no \"such\"\ncommand");
	vmm_ctl_response_release(&resp);
	free(line);
	json_object_put(id);

	/* a handler's result: the object, or internal-error when it is NULL */
	{
		struct json_object *r = NULL;
		char m[64] = "";

		assert_int_equal(vmm_ctl_result(NULL, &r, m, sizeof(m)), VMM_CTL_ERR_INTERNAL);
		assert_null(r);
		assert_string_equal(m, "out of memory");
		assert_int_equal(vmm_ctl_result(json_object_new_object(), &r, m, sizeof(m)),
				 VMM_CTL_OK);
		assert_non_null(r);
		json_object_put(r);
	}

	line = vmm_ctl_format_request(9, "query", NULL);
	assert_string_equal(line, "{\"id\":9,\"version\":1,\"cmd\":\"query\"}\n");
	free(line);

	/* Responses are checked too. */
	assert_int_equal(vmm_ctl_parse_response("{\"ok\":true}", 11, &resp), -EPROTO);
	assert_int_equal(vmm_ctl_parse_response("{\"ok\":1,\"result\":{}}", 20, &resp), -EPROTO);
	assert_int_equal(vmm_ctl_parse_response("{\"ok\":false,\"error\":5}", 22, &resp), -EPROTO);
	assert_int_equal(vmm_ctl_parse_response("[]", 2, &resp), -EPROTO);
}

/* ---- the server ------------------------------------------------------------ */

struct srv_env {
	char dir[64], path[128];
	struct vmm_evloop *loop;
	struct vmm_ctl_server *srv;
	unsigned nr_handled;
	bool stop_seen;
};

static enum vmm_ctl_err handler(void *opaque, const struct vmm_ctl_request *req,
				struct json_object **result, char *msg, size_t msg_len)
{
	struct srv_env *e = opaque;

	e->nr_handled++;
	if (strcmp(req->cmd, "stop") == 0) {
		if (e->stop_seen) {
			snprintf(msg, msg_len, "already stopping");
			return VMM_CTL_ERR_STATE;
		}
		e->stop_seen = true;
	}
	*result = json_object_new_object();
	json_object_object_add(*result, "handled", json_object_new_int((int)e->nr_handled));
	return VMM_CTL_OK;
}

static void srv_setup_idle(struct srv_env *e, unsigned max_clients, unsigned idle_timeout_ms)
{
	struct vmm_ctl_server_cfg cfg;

	memset(e, 0, sizeof(*e));
	strcpy(e->dir, "/tmp/test_vmm_ctl.XXXXXX");
	assert_non_null(mkdtemp(e->dir));
	snprintf(e->path, sizeof(e->path), "%s/t.sock", e->dir);
	assert_int_equal(vmm_evloop_create(&e->loop), 0);
	cfg = (struct vmm_ctl_server_cfg){
		.path = e->path, .loop = e->loop,
		.max_clients = max_clients, .idle_timeout_ms = idle_timeout_ms,
	};
	assert_int_equal(vmm_ctl_server_create(&cfg, &e->srv), 0);
	assert_int_equal(vmm_ctl_server_register(e->srv, "query", handler, e), 0);
	assert_int_equal(vmm_ctl_server_register(e->srv, "stop", handler, e), 0);
	assert_int_equal(vmm_ctl_server_register(e->srv, "version", handler, e), 0);
}

static void srv_setup(struct srv_env *e, unsigned max_clients)
{
	srv_setup_idle(e, max_clients, 0);
}

static void srv_teardown(struct srv_env *e)
{
	char lock[160];

	vmm_ctl_server_destroy(e->srv);
	assert_int_equal(access(e->path, F_OK), -1);  /* socket removed */
	vmm_evloop_destroy(e->loop);
	snprintf(lock, sizeof(lock), "%s/t.lock", e->dir);
	unlink(lock);
	rmdir(e->dir);
}

static int connect_to(const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	assert_true(fd >= 0);
	strcpy(a.sun_path, path);
	assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	return fd;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void pump(struct srv_env *e)
{
	int i;

	for (i = 0; i < 5; i++)
		vmm_evloop_run_once(e->loop, 20);
}

static void send_str(int fd, const char *s)
{
	assert_int_equal(send(fd, s, strlen(s), MSG_NOSIGNAL), (ssize_t)strlen(s));
}

/* Reads whatever lines are there (after pumping the server). */
static size_t recv_all(struct srv_env *e, int fd, char *buf, size_t len)
{
	size_t n = 0;
	ssize_t r;

	pump(e);
	while (n < len - 1 && (r = recv(fd, buf + n, len - 1 - n, MSG_DONTWAIT)) > 0)
		n += (size_t)r;
	buf[n] = '\0';
	return n;
}

static unsigned count_lines(const char *s)
{
	unsigned n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

static void test_server_session(void **state)
{
	struct srv_env e;
	struct stat st;
	char buf[8192];
	int fd;

	srv_setup(&e, 4);
	assert_int_equal(stat(e.path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0600);

	fd = connect_to(e.path);
	/* Garbage, then an unknown command, then a good request: three answers,
	 * in order, on the same connection. */
	send_str(fd, "this is not json\n{\"id\":1,\"cmd\":\"frobnicate\"}\n{\"id\":2,\"cmd\":\"query\"}\n");
	recv_all(&e, fd, buf, sizeof(buf));
	assert_int_equal(count_lines(buf), 3);
	assert_non_null(strstr(buf, "\"code\":\"parse-error\""));
	assert_non_null(strstr(buf, "{\"id\":1,\"ok\":false,\"error\":{\"code\":\"unknown-command\""));
	assert_non_null(strstr(buf, "{\"id\":2,\"ok\":true,\"result\":{\"handled\":1}}"));

	/* A request split over several writes; blank lines ignored. */
	send_str(fd, "\n\r\n{\"id\":3,");
	recv_all(&e, fd, buf, sizeof(buf));
	assert_int_equal(buf[0], '\0');
	send_str(fd, "\"cmd\":\"stop\"}\n");
	recv_all(&e, fd, buf, sizeof(buf));
	assert_non_null(strstr(buf, "{\"id\":3,\"ok\":true"));
	/* The handler's own errors reach the client. */
	send_str(fd, "{\"id\":4,\"cmd\":\"stop\"}\n");
	recv_all(&e, fd, buf, sizeof(buf));
	assert_non_null(strstr(buf, "\"code\":\"invalid-state\""));
	close(fd);
	srv_teardown(&e);
}

static void test_server_long_line(void **state)
{
	struct vmm_ctl_server_stats st;
	size_t big = 3 * VMM_CTL_MAX_LINE_BYTES;
	char *line = malloc(big + 64), buf[8192];
	struct srv_env e;
	int fd;

	srv_setup(&e, 4);
	fd = connect_to(e.path);
	memset(line, 'x', big);
	strcpy(line + big, "\n{\"id\":5,\"cmd\":\"query\"}\n");
	send_str(fd, line);
	pump(&e);
	recv_all(&e, fd, buf, sizeof(buf));
	/* One error for the whole long line, then the next request works. */
	assert_int_equal(count_lines(buf), 2);
	assert_non_null(strstr(buf, "\"code\":\"line-too-long\""));
	assert_non_null(strstr(buf, "{\"id\":5,\"ok\":true"));
	vmm_ctl_server_get_stats(e.srv, &st);
	assert_int_equal(st.nr_long_lines, 1);
	assert_int_equal(e.nr_handled, 1);
	close(fd);
	free(line);
	srv_teardown(&e);
}

static void test_server_disconnects_and_limits(void **state)
{
	struct vmm_ctl_server_stats st;
	struct srv_env e;
	char buf[4096];
	int fds[4], extra, i;

	srv_setup(&e, 3);
	/* A client that leaves mid-request: nothing handled, nothing leaked. */
	fds[0] = connect_to(e.path);
	send_str(fds[0], "{\"id\":1,\"cmd\":\"qu");
	pump(&e);
	close(fds[0]);
	pump(&e);
	assert_int_equal(vmm_ctl_server_nr_clients(e.srv), 0);
	assert_int_equal(e.nr_handled, 0);
	/* A client that sends and leaves before reading: the server survives
	 * writing to a closed socket (no SIGPIPE). */
	fds[0] = connect_to(e.path);
	send_str(fds[0], "{\"id\":1,\"cmd\":\"query\"}\n");
	close(fds[0]);
	pump(&e);
	assert_int_equal(vmm_ctl_server_nr_clients(e.srv), 0);

	/* The limit: the fourth client is told "busy" and closed. */
	for (i = 0; i < 3; i++)
		fds[i] = connect_to(e.path);
	pump(&e);
	assert_int_equal(vmm_ctl_server_nr_clients(e.srv), 3);
	extra = connect_to(e.path);
	recv_all(&e, extra, buf, sizeof(buf));
	assert_non_null(strstr(buf, "\"code\":\"busy\""));
	assert_int_equal(recv(extra, buf, sizeof(buf), 0), 0);  /* closed */
	close(extra);
	/* The others still work. */
	send_str(fds[2], "{\"id\":\"last\",\"cmd\":\"version\"}\n");
	recv_all(&e, fds[2], buf, sizeof(buf));
	assert_non_null(strstr(buf, "{\"id\":\"last\",\"ok\":true"));
	vmm_ctl_server_get_stats(e.srv, &st);
	assert_int_equal(st.nr_clients_refused, 1);
	for (i = 0; i < 3; i++)
		close(fds[i]);
	pump(&e);
	assert_int_equal(vmm_ctl_server_nr_clients(e.srv), 0);
	srv_teardown(&e);
}

static void add_name(void *opaque, const char *name)
{
	strcat(opaque, name);
	strcat(opaque, ",");
}

static void test_client_helpers(void **state)
{
	char rundir[128], names[256] = "";
	struct vmm_ctl_response resp;
	struct srv_env e;
	int fd, lock, lock2;

	srv_setup(&e, 4);
	snprintf(rundir, sizeof(rundir), "%s", e.dir);
	assert_true(vmm_name_valid("web1"));
	assert_true(vmm_name_valid("a.b-c_d"));
	assert_false(vmm_name_valid(""));
	assert_false(vmm_name_valid(".hidden"));
	assert_false(vmm_name_valid("-x"));
	assert_false(vmm_name_valid("a/b"));
	assert_false(vmm_name_valid("a b"));
	assert_false(vmm_name_valid("0123456789012345678901234567890123456789012345678901234567890123456789"));

	/* Name locks: a second holder is refused with -EBUSY. */
	lock = vmm_name_lock(rundir, "t");
	assert_true(lock >= 0);
	lock2 = vmm_name_lock(rundir, "t");
	assert_int_equal(lock2, -EBUSY);
	close(lock);
	lock2 = vmm_name_lock(rundir, "t");
	assert_true(lock2 >= 0);
	close(lock2);

	/* The socket "t.sock" is listed as "t"; nothing else is. */
	assert_int_equal(vmm_list_names(rundir, add_name, names), 1);
	assert_string_equal(names, "t,");
	assert_int_equal(vmm_ctl_connect(rundir, "nope"), -ENOENT);
	assert_int_equal(vmm_ctl_connect(rundir, "../x"), -EINVAL);

	/* A call times out when nobody serves the socket ... */
	fd = vmm_ctl_connect(rundir, "t");
	assert_true(fd >= 0);
	assert_int_equal(vmm_ctl_call(fd, "query", NULL, 100, &resp), -ETIMEDOUT);
	/* ... and gets the answer (to the first request, still queued) once it does. */
	pump(&e);
	assert_int_equal(vmm_ctl_call(fd, "query", NULL, 1000, &resp), 0);
	assert_true(resp.ok);
	vmm_ctl_response_release(&resp);
	close(fd);
	srv_teardown(&e);
}

/*
 * Replies may be far longer than requests: a busy VM's query is over 4 KiB,
 * ebbd's "vms" grows with its VMs.  A writer thread plays the server.
 */
struct reply_writer {
	int fd;
	size_t len;        /* bytes of reply text */
	bool newline;      /* end it with a newline */
};

static void *write_reply(void *arg)
{
	struct reply_writer *w = arg;
	static const char head[] = "{\"id\":1,\"ok\":true,\"result\":{\"pad\":\"";
	char chunk[4096];
	size_t off = 0;

	memset(chunk, 'p', sizeof(chunk));
	if (send(w->fd, head, sizeof(head) - 1, MSG_NOSIGNAL) < 0)
		return NULL;
	off = sizeof(head) - 1;
	while (off + 3 < w->len) {
		size_t n = w->len - 3 - off < sizeof(chunk) ? w->len - 3 - off : sizeof(chunk);
		ssize_t r = send(w->fd, chunk, n, MSG_NOSIGNAL);

		if (r <= 0)
			return NULL;
		off += (size_t)r;
	}
	send(w->fd, w->newline ? "\"}}\n" : "\"}}", w->newline ? 4 : 3, MSG_NOSIGNAL);
	return NULL;
}

static int call_with_reply(size_t len, bool newline, struct vmm_ctl_response *resp)
{
	struct reply_writer w = { .len = len, .newline = newline };
	pthread_t t;
	int sv[2], ret;

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	w.fd = sv[1];
	assert_int_equal(pthread_create(&t, NULL, write_reply, &w), 0);
	ret = vmm_ctl_call(sv[0], "query", NULL, 5000, resp);
	close(sv[0]);
	pthread_join(t, NULL);
	close(sv[1]);
	return ret;
}

static void test_call_long_reply(void **state)
{
	struct vmm_ctl_response resp;
	struct json_object *v;

	/* 6 KiB and 300 KiB replies are read whole and parsed. */
	assert_int_equal(call_with_reply(6000, true, &resp), 0);
	assert_true(resp.ok);
	assert_true(json_object_object_get_ex(resp.result, "pad", &v));
	assert_int_equal(json_object_get_string_len(v), 6000 - 38);
	vmm_ctl_response_release(&resp);
	assert_int_equal(call_with_reply(300 * 1024, true, &resp), 0);
	assert_true(resp.ok);
	vmm_ctl_response_release(&resp);
	/* Just at the limit, and over it: refused, not read forever. */
	assert_int_equal(call_with_reply(VMM_CTL_MAX_REPLY_BYTES, true, &resp), 0);
	vmm_ctl_response_release(&resp);
	assert_int_equal(call_with_reply(VMM_CTL_MAX_REPLY_BYTES + 1, true, &resp), -EMSGSIZE);
	assert_int_equal(call_with_reply(VMM_CTL_MAX_REPLY_BYTES + 4096, false, &resp),
			 -EMSGSIZE);
}

/* ---- trust: run dir, lock file, peers, idle clients ---------------------------- */

static int rundir_for(const char *path)
{
	char buf[256];

	setenv("EBB_RUNTIME_DIR", path, 1);
	return vmm_rundir(buf, sizeof(buf), false);
}

static void test_rundir_refused(void **state)
{
	char base[64], dir[128], link[128], made[128], buf[256];
	mode_t old_umask;
	struct stat st;

	strcpy(base, "/tmp/test_vmm_rundir.XXXXXX");
	assert_non_null(mkdtemp(base));
	snprintf(dir, sizeof(dir), "%s/d", base);
	snprintf(link, sizeof(link), "%s/l", base);
	snprintf(made, sizeof(made), "%s/made/ebb", base);
	assert_int_equal(mkdir(dir, 0700), 0);

	assert_int_equal(rundir_for(dir), 0);
	/* Trailing slashes do not let a symlink through. */
	assert_int_equal(symlink(dir, link), 0);
	assert_int_equal(rundir_for(link), -ENOTDIR);
	snprintf(buf, sizeof(buf), "%s/", link);
	assert_int_equal(rundir_for(buf), -ENOTDIR);
	assert_int_equal(chmod(dir, 0755), 0);
	assert_int_equal(rundir_for(dir), -EACCES);
	assert_non_null(vmm_rundir_strerror(-EACCES));
	assert_int_equal(chmod(dir, 0700), 0);
	assert_int_equal(chmod(dir, 01700), 0);
	assert_int_equal(rundir_for(dir), -EACCES);
	assert_int_equal(chmod(dir, 0700), 0);
	if (geteuid() == 0) {
		assert_int_equal(chown(dir, 65534, 65534), 0);
		assert_int_equal(rundir_for(dir), -EPERM);
		assert_int_equal(chown(dir, 0, 0), 0);
	} else {
		print_message("# skip the other-owner case: needs root to chown\n");
	}
	/* A file is not a directory. */
	snprintf(buf, sizeof(buf), "%s/f", base);
	close(open(buf, O_CREAT | O_WRONLY, 0600));
	assert_int_equal(rundir_for(buf), -ENOTDIR);
	unlink(buf);
	/* Missing is fine for clients (no VM ever ran) ... */
	assert_int_equal(rundir_for(made), 0);
	/* ... and created 0700 by run, even under a permissive umask. */
	old_umask = umask(0);
	assert_int_equal(vmm_rundir(buf, sizeof(buf), true), 0);
	umask(old_umask);
	assert_string_equal(buf, made);
	assert_int_equal(lstat(made, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);
	/* A second run accepts its own directory. */
	assert_int_equal(vmm_rundir(buf, sizeof(buf), true), 0);
	unsetenv("EBB_RUNTIME_DIR");

	rmdir(made);
	snprintf(buf, sizeof(buf), "%s/made", base);
	rmdir(buf);
	unlink(link);
	rmdir(dir);
	rmdir(base);
}

static void test_lock_nofollow(void **state)
{
	char dir[64], victim[128], lock[128];
	struct stat st;
	int fd;

	strcpy(dir, "/tmp/test_vmm_lock.XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(victim, sizeof(victim), "%s/victim", dir);
	snprintf(lock, sizeof(lock), "%s/vm.lock", dir);
	fd = open(victim, O_CREAT | O_WRONLY, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "keep", 4), 4);
	close(fd);
	assert_int_equal(symlink(victim, lock), 0);
	assert_int_equal(vmm_name_lock(dir, "vm"), -ELOOP);
	assert_int_equal(stat(victim, &st), 0);
	assert_int_equal(st.st_size, 4);
	unlink(lock);
	unlink(victim);
	rmdir(dir);
}

/* Another user connects and asks: the server must close without an answer. */
static int nobody_asks(void *arg)
{
	const char *path = arg;
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	const char *req = "{\"id\":1,\"cmd\":\"query\"}\n";
	struct timeval tv = { .tv_sec = 2 };
	char buf[256];
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	strcpy(a.sun_path, path);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
		return 2;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (send(fd, req, strlen(req), MSG_NOSIGNAL) < 0) {
		/* already closed: fine */
	}
	return recv(fd, buf, sizeof(buf), 0) > 0 ? 1 : 0;  /* an answer is a failure */
}

/* Another user serves a socket; we must refuse to talk to it. */
static int nobody_serves(void *arg)
{
	const char *path = arg;
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0), c;

	strcpy(a.sun_path, path);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || chmod(path, 0666) < 0 ||
	    listen(fd, 1) < 0)
		return 2;
	c = accept(fd, NULL, NULL);  /* the parent's connect (refused after) */
	close(c);
	close(fd);
	return 0;
}

static void test_peer_cred(void **state)
{
	struct vmm_ctl_server_stats st;
	struct srv_env e;
	char rundir[128], path[192];
	pid_t pid;
	int fd, status, tries;

	if (geteuid() != 0) {
		print_message("# skip test_peer_cred: needs root to act as another user\n");
		skip();
	}
	srv_setup(&e, 4);
	/* Open the door on purpose so that only the credential check stands. */
	assert_int_equal(chmod(e.dir, 0755), 0);
	assert_int_equal(chmod(e.path, 0666), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (setgid(65534) < 0 || setuid(65534) < 0)
			_exit(99);
		_exit(nobody_asks(e.path));
	}
	for (tries = 0; tries < 100 && waitpid(pid, &status, WNOHANG) == 0; tries++)
		vmm_evloop_run_once(e.loop, 20);
	if (tries == 100)
		assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	vmm_ctl_server_get_stats(e.srv, &st);
	assert_int_equal(st.nr_clients_bad_peer, 1);
	assert_int_equal(e.nr_handled, 0);
	/* Our own uid (and root) still gets in. */
	fd = connect_to(e.path);
	pump(&e);
	assert_true(vmm_peer_allowed(fd));
	assert_int_equal(vmm_ctl_server_nr_clients(e.srv), 1);
	close(fd);
	srv_teardown(&e);

	/* The client side: a socket served by another user is refused. */
	strcpy(rundir, "/tmp/test_vmm_peer.XXXXXX");
	assert_non_null(mkdtemp(rundir));
	assert_int_equal(chmod(rundir, 0777), 0);
	snprintf(path, sizeof(path), "%s/evil.sock", rundir);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		if (setgid(65534) < 0 || setuid(65534) < 0)
			_exit(99);
		_exit(nobody_serves(path));
	}
	for (tries = 0; tries < 200 && access(path, F_OK) != 0; tries++)
		usleep(10000);
	usleep(20000);  /* listen() after bind() */
	assert_int_equal(vmm_ctl_connect(rundir, "evil"), -EPERM);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	unlink(path);
	rmdir(rundir);
}

static void test_idle_clients_dropped(void **state)
{
	struct vmm_ctl_server_stats st;
	struct srv_env e;
	char buf[4096];
	int idle[2], busy, late, i;
	uint64_t t0;

	srv_setup_idle(&e, 3, 1000);
	idle[0] = connect_to(e.path);
	idle[1] = connect_to(e.path);
	busy = connect_to(e.path);
	pump(&e);
	assert_int_equal(vmm_ctl_server_nr_clients(e.srv), 3);
	/* Full: a fourth is refused now ... */
	late = connect_to(e.path);
	recv_all(&e, late, buf, sizeof(buf));
	assert_non_null(strstr(buf, "\"code\":\"busy\""));
	close(late);
	/* ... 3 s later the two idle ones (1 s timeout) are gone, the
	 * busy one is not (a request every pump, ~100 ms: a 10x margin on a
	 * loaded machine; a partial line or a blank one would not count as
	 * activity). */
	for (i = 0, t0 = now_ms(); now_ms() - t0 < 3000; i++) {
		send_str(busy, "{\"id\":1,\"cmd\":\"version\"}\n");
		if (send(idle[0], "\n", 1, MSG_NOSIGNAL) < 0) {
			/* dropped already: what we expect in the end */
		}
		recv_all(&e, busy, buf, sizeof(buf));
		assert_non_null(strstr(buf, "\"ok\":true"));
	}
	vmm_ctl_server_get_stats(e.srv, &st);
	assert_int_equal(st.nr_idle_clients, 2);
	assert_int_equal(vmm_ctl_server_nr_clients(e.srv), 1);
	assert_int_equal(recv(idle[0], buf, sizeof(buf), 0), 0);  /* closed */
	assert_int_equal(recv(idle[1], buf, sizeof(buf), 0), 0);
	late = connect_to(e.path);
	send_str(late, "{\"id\":2,\"cmd\":\"version\"}\n");
	recv_all(&e, late, buf, sizeof(buf));
	assert_non_null(strstr(buf, "{\"id\":2,\"ok\":true"));
	close(late);
	close(busy);
	close(idle[0]);
	close(idle[1]);
	srv_teardown(&e);
}

/* Command registration: a request goes by its command's name to the handler
 * registered for it, with its owner's context; one owner per name, `watch`
 * stays the server's, a bad name is refused; what nobody registered is
 * unknown (even a name another server serves). */
static enum vmm_ctl_err owned_handler(void *opaque, const struct vmm_ctl_request *req,
				      struct json_object **result, char *msg, size_t msg_len)
{
	int *calls = opaque;

	(*calls)++;
	*result = json_object_new_object();
	json_object_object_add(*result, "owner", json_object_new_string(req->cmd));
	return VMM_CTL_OK;
}

static void test_command_registration(void **state)
{
	struct srv_env e;
	char buf[4096];
	int fd, calls = 0;

	(void)state;
	srv_setup_idle(&e, 4, 0);
	assert_int_equal(vmm_ctl_server_register(e.srv, "set", owned_handler, &calls), 0);
	assert_int_equal(vmm_ctl_server_register(e.srv, "set", owned_handler, &calls), -EEXIST);
	assert_int_equal(vmm_ctl_server_register(e.srv, "query", owned_handler, &calls), -EEXIST);
	assert_int_equal(vmm_ctl_server_register(e.srv, "watch", owned_handler, &calls), -EINVAL);
	assert_int_equal(vmm_ctl_server_register(e.srv, "", owned_handler, &calls), -EINVAL);
	assert_int_equal(vmm_ctl_server_register(e.srv, NULL, owned_handler, &calls), -EINVAL);
	assert_int_equal(vmm_ctl_server_register(e.srv, "a-name-longer-than-thirty-two-bytes",
						 owned_handler, &calls), -EINVAL);
	assert_int_equal(vmm_ctl_server_register(e.srv, "clamp", NULL, &calls), -EINVAL);
	{
		/* a module's list in one call: stops at the first error */
		static const struct vmm_ctl_command cmds[] = {
			{ "clamp", owned_handler }, { "set", owned_handler }, { "pool", owned_handler },
		};

		assert_int_equal(vmm_ctl_server_register_all(e.srv, cmds, 3, &calls), -EEXIST);
		assert_int_equal(vmm_ctl_server_register(e.srv, "clamp", owned_handler, &calls),
				 -EEXIST);
		assert_int_equal(vmm_ctl_server_register(e.srv, "pool", owned_handler, &calls), 0);
	}
	fd = connect_to(e.path);
	send_str(fd, "{\"id\":1,\"cmd\":\"set\",\"args\":{}}\n");
	recv_all(&e, fd, buf, sizeof(buf));
	assert_non_null(strstr(buf, "\"owner\":\"set\""));
	assert_int_equal(calls, 1);
	send_str(fd, "{\"id\":2,\"cmd\":\"query\"}\n");   /* another owner's */
	recv_all(&e, fd, buf, sizeof(buf));
	assert_non_null(strstr(buf, "\"handled\":1"));
	assert_int_equal(calls, 1);
	close(fd);
	srv_teardown(&e);

	/* only `version` registered: what nobody registered is unknown, and
	 * said so before its args are looked at */
	{
		struct vmm_ctl_server_cfg cfg;

		memset(&e, 0, sizeof(e));
		strcpy(e.dir, "/tmp/test_vmm_ctl.XXXXXX");
		assert_non_null(mkdtemp(e.dir));
		snprintf(e.path, sizeof(e.path), "%s/t.sock", e.dir);
		assert_int_equal(vmm_evloop_create(&e.loop), 0);
		cfg = (struct vmm_ctl_server_cfg){ .path = e.path, .loop = e.loop };
		assert_int_equal(vmm_ctl_server_create(&cfg, &e.srv), 0);
		assert_int_equal(vmm_ctl_server_register(e.srv, "version", owned_handler, &calls),
				 0);
		fd = connect_to(e.path);
		send_str(fd, "{\"id\":3,\"cmd\":\"version\"}\n");
		recv_all(&e, fd, buf, sizeof(buf));
		assert_non_null(strstr(buf, "\"owner\":\"version\""));
		send_str(fd, "{\"id\":4,\"cmd\":\"stop\"}\n");
		recv_all(&e, fd, buf, sizeof(buf));
		assert_non_null(strstr(buf, "unknown-command"));
		assert_non_null(strstr(buf, "unknown command \\\"stop\\\""));
		send_str(fd, "{\"id\":5,\"cmd\":\"frob\",\"args\":7}\n");
		recv_all(&e, fd, buf, sizeof(buf));
		assert_non_null(strstr(buf, "{\"id\":5,\"ok\":false,\"error\":{\"code\":\"unknown-command\""));
		assert_int_equal(calls, 2);
		close(fd);
		srv_teardown(&e);
	}
}

/* `watch`: subscribers get event lines besides their responses, are not
 * dropped as idle, and are capped at VMM_CTL_MAX_WATCHERS; others see no
 * events. */
static void test_watch_events(void **state)
{
	struct vmm_ctl_server_stats st;
	struct srv_env e;
	char buf[4096];
	int w[VMM_CTL_MAX_WATCHERS + 1], plain;
	unsigned i;
	struct json_object *f;

	(void)state;
	srv_setup_idle(&e, 16, 100);
	for (i = 0; i <= VMM_CTL_MAX_WATCHERS; i++) {
		w[i] = connect_to(e.path);
		send_str(w[i], "{\"id\":1,\"cmd\":\"watch\"}\n");
		recv_all(&e, w[i], buf, sizeof(buf));
		if (i < VMM_CTL_MAX_WATCHERS)
			assert_non_null(strstr(buf, "{\"id\":1,\"ok\":true,\"result\":{\"watching\":true}}"));
		else
			assert_non_null(strstr(buf, "\"code\":\"busy\""));
	}
	assert_int_equal(e.nr_handled, 0);   /* the server answers watch itself */
	plain = connect_to(e.path);
	f = json_object_new_object();
	json_object_object_add(f, "resident_bytes", json_object_new_int64(42));
	vmm_ctl_server_notify(e.srv, "grow", f);
	recv_all(&e, w[0], buf, sizeof(buf));
	assert_string_equal(buf, "{\"event\":\"grow\",\"resident_bytes\":42}\n");
	recv_all(&e, w[VMM_CTL_MAX_WATCHERS - 1], buf, sizeof(buf));
	assert_int_equal(count_lines(buf), 1);
	recv_all(&e, plain, buf, sizeof(buf));
	assert_int_equal(count_lines(buf), 0);
	recv_all(&e, w[VMM_CTL_MAX_WATCHERS], buf, sizeof(buf));
	assert_int_equal(count_lines(buf), 0);
	/* 300 ms idle: the watchers stay, the others go. */
	for (i = 0; i < 6; i++) {
		vmm_evloop_run_once(e.loop, 60);
	}
	pump(&e);
	vmm_ctl_server_notify(e.srv, "lease-expired", NULL);
	recv_all(&e, w[1], buf, sizeof(buf));
	assert_string_equal(buf, "{\"event\":\"grow\",\"resident_bytes\":42}\n"
			    "{\"event\":\"lease-expired\"}\n");
	vmm_ctl_server_get_stats(e.srv, &st);
	assert_int_equal(st.nr_watchers, VMM_CTL_MAX_WATCHERS);
	assert_int_equal(st.nr_events, 2 * VMM_CTL_MAX_WATCHERS);
	assert_int_equal(vmm_ctl_server_nr_clients(e.srv), VMM_CTL_MAX_WATCHERS);
	for (i = 0; i <= VMM_CTL_MAX_WATCHERS; i++)
		close(w[i]);
	close(plain);
	srv_teardown(&e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_good),
		cmocka_unit_test(test_parse_hostile),
		cmocka_unit_test(test_parse_limits),
		cmocka_unit_test(test_format_roundtrip),
		cmocka_unit_test(test_server_session),
		cmocka_unit_test(test_server_long_line),
		cmocka_unit_test(test_server_disconnects_and_limits),
		cmocka_unit_test(test_client_helpers),
		cmocka_unit_test(test_rundir_refused),
		cmocka_unit_test(test_lock_nofollow),
		cmocka_unit_test(test_peer_cred),
		cmocka_unit_test(test_idle_clients_dropped),
		cmocka_unit_test(test_command_registration),
		cmocka_unit_test(test_watch_events),
		cmocka_unit_test(test_call_long_reply),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
