/*
 * tests/fuzz/fuzz_ctl_server.c — libFuzzer target for the control server's
 * framing (client/ctl_server.c), not only its parser: real Unix sockets and a
 * real event loop, driven by a script the fuzzer writes.  Each 2-byte
 * record picks an operation and a client (of up to 24, more than the
 * server's limit of 4): connect, send the next chunk of input bytes (any
 * length: partial lines, lines far over the limit, NULs, CR), half-close,
 * close, read what came back, or run the loop.  Idle timeouts are short
 * (20 ms) so that they fire inside an input.
 *
 * Invariants: no crash or sanitizer report; the server never holds more
 * clients than its limit; everything a client reads back is whole lines,
 * each a response that parses; once every client is gone the server holds
 * none (nothing leaks from one input to the next).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "client/ctl_server.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NR_CLIENTS 24
#define MAX_CLIENTS 4

struct client {
	int fd;
	char buf[8192];   /* unparsed tail of what came back */
	size_t len;
};

static struct vmm_evloop *loop;
static struct vmm_ctl_server *srv;
static char sock_path[108];

static enum vmm_ctl_err handler(void *opaque, const struct vmm_ctl_request *req,
				struct json_object **result, char *msg, size_t msg_len)
{
	(void)opaque;
	if (strcmp(req->cmd, "stop") == 0) {
		snprintf(msg, msg_len, "not here");
		return VMM_CTL_ERR_STATE;
	}
	*result = json_object_new_object();
	return VMM_CTL_OK;
}

static void setup(void)
{
	static const char *const names[] = { "query", "stop", "version", "balloon", "set", "stats",
					     "clamp", "pool", "vms", "policy", "trace" };
	char dir[] = "/tmp/fuzz_ctl_server.XXXXXX";
	struct vmm_ctl_server_cfg cfg;

	if (!mkdtemp(dir))
		abort();
	snprintf(sock_path, sizeof(sock_path), "%s/f.sock", dir);
	if (vmm_evloop_create(&loop))
		abort();
	cfg = (struct vmm_ctl_server_cfg){
		.path = sock_path, .loop = loop,
		.max_clients = MAX_CLIENTS, .idle_timeout_ms = 20,
	};
	if (vmm_ctl_server_create(&cfg, &srv))
		abort();
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (vmm_ctl_server_register(srv, names[i], handler, NULL))
			abort();
}

static void pump(int rounds)
{
	while (rounds--) {
		vmm_evloop_run_once(loop, 0);
		if (vmm_ctl_server_nr_clients(srv) > MAX_CLIENTS)
			abort();
	}
}

/* Reads what is there; every complete line must be a response. */
static void drain(struct client *c)
{
	for (;;) {
		ssize_t n;
		char *nl;

		if (c->len == sizeof(c->buf))
			abort();  /* a response line longer than 8 KiB: not ours */
		n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, MSG_DONTWAIT);
		if (n <= 0)
			return;
		c->len += (size_t)n;
		while ((nl = memchr(c->buf, '\n', c->len))) {
			struct vmm_ctl_response resp;
			size_t line = (size_t)(nl - c->buf);

			if (vmm_ctl_parse_response(c->buf, line, &resp) != 0)
				abort();
			vmm_ctl_response_release(&resp);
			memmove(c->buf, nl + 1, c->len - line - 1);
			c->len -= line + 1;
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct client clients[NR_CLIENTS];
	size_t pos = 0;
	int i, rounds;

	if (!srv)
		setup();
	for (i = 0; i < NR_CLIENTS; i++)
		clients[i].fd = -1;
	while (pos + 2 <= size) {
		uint8_t op = data[pos], arg = data[pos + 1];
		struct client *c = &clients[arg % NR_CLIENTS];

		pos += 2;
		switch (op % 7) {
		case 0: {  /* connect */
			struct sockaddr_un a = { .sun_family = AF_UNIX };

			if (c->fd >= 0)
				break;
			c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
			c->len = 0;
			strcpy(a.sun_path, sock_path);
			if (c->fd >= 0 && connect(c->fd, (struct sockaddr *)&a, sizeof(a)) < 0 &&
			    errno != EAGAIN) {
				close(c->fd);
				c->fd = -1;
			}
			break;
		}
		case 1:
		case 2: {  /* send the next chunk: its length is the next byte, x1 or x64 */
			size_t len;

			if (pos >= size)
				break;
			len = data[pos++];
			if (op & 0x80)
				len *= 64;   /* long lines without that many input bytes */
			if (c->fd < 0)
				break;
			if (op & 0x80) {
				char *big = malloc(len + 1);

				if (!big)
					break;
				memset(big, 'x', len);
				big[len] = (char)(arg & 1 ? '\n' : 'x');
				if (send(c->fd, big, len + 1, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
					/* full or gone: the server decides */
				}
				free(big);
				break;
			}
			if (len > size - pos)
				len = size - pos;
			if (send(c->fd, data + pos, len, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
				/* full or gone */
			}
			pos += len;
			break;
		}
		case 3:  /* half-close: no more requests, still reading */
			if (c->fd >= 0)
				shutdown(c->fd, SHUT_WR);
			break;
		case 4:  /* close */
			if (c->fd >= 0) {
				close(c->fd);
				c->fd = -1;
			}
			break;
		case 5:
			if (c->fd >= 0)
				drain(c);
			break;
		default:
			pump(1 + arg % 4);
			if (arg & 0x80)
				usleep(1000 * (arg % 32));  /* let idle timeouts fire */
			break;
		}
	}
	pump(4);
	for (i = 0; i < NR_CLIENTS; i++) {
		if (clients[i].fd >= 0) {
			drain(&clients[i]);
			close(clients[i].fd);
		}
	}
	/* Every client gone: the server lets go of all of them. */
	for (rounds = 0; rounds < 50 && vmm_ctl_server_nr_clients(srv); rounds++)
		vmm_evloop_run_once(loop, 1);
	if (vmm_ctl_server_nr_clients(srv))
		abort();
	return 0;
}
