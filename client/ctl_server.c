/*
 * client/ctl_server.c — the control socket server, see ctl_server.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "base/sock.h"
#include "client/ctl_server.h"
#include "client/peer.h"

struct client {
	struct vmm_ctl_server *srv;
	int fd;
	struct vmm_ev_watch *watch;
	char in[VMM_CTL_MAX_LINE_BYTES + 1];
	size_t in_len;
	bool discarding;           /* inside an over-long line */
	char *out;
	size_t out_len, out_cap;
	uint64_t last_active_ns;   /* accept, a request, or output taken */
	bool watching;             /* subscribed to events */
	struct client *next;
};

/* A registered command: its owner's handler and context. */
struct cmd {
	const char *name;
	vmm_ctl_handler_fn fn;
	void *opaque;
};

struct vmm_ctl_server {
	struct vmm_ctl_server_cfg cfg;
	char *path;
	int fd;
	struct vmm_ev_watch *watch;
	int timer_fd;              /* idle sweep */
	struct vmm_ev_watch *timer_watch;
	uint64_t idle_timeout_ns;
	struct client *clients;
	unsigned nr_clients;
	unsigned nr_watching;
	struct vmm_ctl_server_stats stats;
	struct ebb_ratelimit rl;
	struct cmd *cmds;          /* registered, by name */
	size_t nr_cmds, cap_cmds;
};

/* Frees a client already unlinked from srv->clients. */
static void client_free(struct client *c)
{
	c->srv->nr_clients--;
	if (c->watching)
		c->srv->nr_watching--;
	vmm_evloop_del(c->srv->cfg.loop, c->watch);
	close(c->fd);
	free(c->out);
	free(c);
}

static void client_close(struct client *c)
{
	struct client **pp;

	for (pp = &c->srv->clients; *pp; pp = &(*pp)->next) {
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	}
	client_free(c);
}

/* Writes what the socket takes now.  Returns false when the client is gone. */
static bool client_flush(struct client *c)
{
	while (c->out_len) {
		ssize_t n = send(c->fd, c->out, c->out_len, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				break;
			return false;
		}
		memmove(c->out, c->out + n, c->out_len - (size_t)n);
		c->out_len -= (size_t)n;
		if (n > 0)
			c->last_active_ns = vmm_now_ns();
	}
	vmm_evloop_mod(c->srv->cfg.loop, c->watch, EPOLLIN | (c->out_len ? EPOLLOUT : 0));
	return true;
}

/* Queues a line (consumes it).  Returns false when the client had to go. */
static bool client_queue(struct client *c, char *line)
{
	size_t len;

	if (!line)
		return true;  /* ENOMEM: drop this response, keep the client */
	len = strlen(line);
	if (c->out_len + len > VMM_CTL_MAX_OUT_BYTES) {
		free(line);
		c->srv->stats.nr_slow_clients++;
		vmm_logf_rl(&c->srv->cfg.log, &c->srv->rl, EBB_LOG_WARN,
			    "ctl: client does not read its responses; disconnecting it");
		return false;
	}
	if (c->out_len + len > c->out_cap) {
		size_t cap = (c->out_len + len) * 2;
		char *p = realloc(c->out, cap);

		if (!p) {
			free(line);
			return true;
		}
		c->out = p;
		c->out_cap = cap;
	}
	memcpy(c->out + c->out_len, line, len);
	c->out_len += len;
	free(line);
	return client_flush(c);
}

static const struct cmd *cmd_find(const struct vmm_ctl_server *srv, const char *name)
{
	for (size_t i = 0; i < srv->nr_cmds; i++)
		if (strcmp(srv->cmds[i].name, name) == 0)
			return &srv->cmds[i];
	return NULL;
}

/* For vmm_ctl_parse_request: `watch` and what was registered. */
static bool cmd_known(void *opaque, const char *name)
{
	return strcmp(name, "watch") == 0 || cmd_find(opaque, name);
}

/* CLIENT: one complete line from a client. */
static bool handle_line(struct client *c, const char *line, size_t len)
{
	struct vmm_ctl_server *srv = c->srv;
	struct vmm_ctl_request req;
	struct json_object *result = NULL;
	enum vmm_ctl_err err;
	char msg[512];  /* one error line; debug-poison's is the longest */
	char *resp;

	if (len && line[len - 1] == '\r')
		len--;
	if (len == 0)
		return true;  /* blank lines are ignored (and do not count as activity) */
	srv->stats.nr_requests++;
	c->last_active_ns = vmm_now_ns();
	err = vmm_ctl_parse_request(line, len, cmd_known, srv, &req, msg, sizeof(msg));
	if (err == VMM_CTL_OK && strcmp(req.cmd, "watch") == 0) {
		if (!c->watching && srv->nr_watching >= VMM_CTL_MAX_WATCHERS) {
			snprintf(msg, sizeof(msg), "at most %u watchers", VMM_CTL_MAX_WATCHERS);
			err = VMM_CTL_ERR_BUSY;
		} else {
			if (!c->watching) {
				c->watching = true;
				srv->nr_watching++;
				srv->stats.nr_watchers++;
			}
			result = json_object_new_object();
			if (result)
				json_object_object_add(result, "watching", json_object_new_boolean(1));
		}
	} else if (err == VMM_CTL_OK) {
		const struct cmd *cmd = cmd_find(srv, req.cmd);   /* found: cmd_known said so */

		msg[0] = '\0';
		err = cmd->fn(cmd->opaque, &req, &result, msg, sizeof(msg));
	}
	if (err == VMM_CTL_OK) {
		resp = vmm_ctl_format_ok(req.id, result);
	} else {
		json_object_put(result);
		srv->stats.nr_bad_requests++;
		resp = vmm_ctl_format_error(req.id, err, msg);
	}
	vmm_ctl_request_release(&req);
	return client_queue(c, resp);
}

static void client_event(void *opaque, uint32_t events)
{
	struct client *c = opaque;
	char buf[4096];
	ssize_t n;

	if ((events & EPOLLOUT) && !client_flush(c)) {
		client_close(c);
		return;
	}
	if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR)))
		return;
	n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		/* EOF or error: a partial request dies with its client. */
		client_close(c);
		return;
	}
	for (ssize_t i = 0; i < n; i++) {
		char ch = buf[i];

		if (ch == '\n') {
			bool keep = true;

			if (!c->discarding)
				keep = handle_line(c, c->in, c->in_len);
			c->discarding = false;
			c->in_len = 0;
			if (!keep) {
				client_close(c);
				return;
			}
			continue;
		}
		if (c->discarding)
			continue;
		if (c->in_len == VMM_CTL_MAX_LINE_BYTES) {
			char msg[64];

			c->srv->stats.nr_long_lines++;
			c->srv->stats.nr_bad_requests++;
			snprintf(msg, sizeof(msg), "line longer than %u bytes", VMM_CTL_MAX_LINE_BYTES);
			c->discarding = true;
			c->in_len = 0;
			if (!client_queue(c, vmm_ctl_format_error(NULL, VMM_CTL_ERR_LINE_TOO_LONG, msg))) {
				client_close(c);
				return;
			}
			continue;
		}
		c->in[c->in_len++] = ch;
	}
}

/* Drops the clients that made no request and took no output for the idle
 * timeout: max_clients idle connections must not lock everyone else out. */
static void timer_event(void *opaque, uint32_t events)
{
	struct vmm_ctl_server *srv = opaque;
	uint64_t expirations, now = vmm_now_ns();
	struct client **pp = &srv->clients;

	if (read(srv->timer_fd, &expirations, sizeof(expirations)) < 0) {
		/* EAGAIN: nothing to read; sweep anyway */
	}
	while (*pp) {
		struct client *c = *pp;

		if (c->watching || now - c->last_active_ns < srv->idle_timeout_ns) {
			pp = &c->next;
			continue;
		}
		*pp = c->next;
		srv->stats.nr_idle_clients++;
		vmm_logf_rl(&srv->cfg.log, &srv->rl, EBB_LOG_INFO,
			    "ctl: dropping a client idle for more than %llu ms",
			    (unsigned long long)(srv->idle_timeout_ns / 1000000));
		client_free(c);
	}
}

static int timer_start(struct vmm_ctl_server *srv)
{
	uint64_t period_ns = srv->idle_timeout_ns / 4;
	struct itimerspec its;

	if (period_ns < 10000000ull)
		period_ns = 10000000ull;
	if (period_ns > 1000000000ull)
		period_ns = 1000000000ull;
	its.it_interval.tv_sec = (time_t)(period_ns / 1000000000ull);
	its.it_interval.tv_nsec = (long)(period_ns % 1000000000ull);
	its.it_value = its.it_interval;
	srv->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (srv->timer_fd < 0)
		return -errno;
	if (timerfd_settime(srv->timer_fd, 0, &its, NULL) < 0)
		return -errno;
	return vmm_evloop_add(srv->cfg.loop, srv->timer_fd, EPOLLIN, timer_event, srv,
			      &srv->timer_watch);
}

static void accept_event(void *opaque, uint32_t events)
{
	struct vmm_ctl_server *srv = opaque;
	unsigned max = srv->cfg.max_clients ? srv->cfg.max_clients : VMM_CTL_DEFAULT_MAX_CLIENTS;
	struct client *c;
	int fd;

	fd = accept4(srv->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
	if (fd < 0)
		return;
	if (!vmm_peer_allowed(fd)) {  /* CLIENT: another user (the dir is 0700: defence in depth) */
		srv->stats.nr_clients_bad_peer++;
		vmm_logf_rl(&srv->cfg.log, &srv->rl, EBB_LOG_WARN,
			    "ctl: refusing a client of another user (not root)");
		close(fd);
		return;
	}
	if (srv->nr_clients >= max) {
		char *line = vmm_ctl_format_error(NULL, VMM_CTL_ERR_BUSY, "too many clients");

		srv->stats.nr_clients_refused++;
		vmm_logf_rl(&srv->cfg.log, &srv->rl, EBB_LOG_WARN,
			    "ctl: refusing a client: %u already connected", srv->nr_clients);
		if (line && send(fd, line, strlen(line), MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
			/* best effort */
		}
		free(line);
		close(fd);
		return;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		return;
	}
	c->srv = srv;
	c->fd = fd;
	c->last_active_ns = vmm_now_ns();
	if (vmm_evloop_add(srv->cfg.loop, fd, EPOLLIN, client_event, c, &c->watch)) {
		close(fd);
		free(c);
		return;
	}
	c->next = srv->clients;
	srv->clients = c;
	srv->nr_clients++;
	srv->stats.nr_clients_accepted++;
}

int vmm_ctl_server_create(const struct vmm_ctl_server_cfg *cfg, struct vmm_ctl_server **out)
{
	struct vmm_ctl_server *srv;
	int ret;

	*out = NULL;
	if (!cfg->path || !cfg->loop)
		return -EINVAL;
	srv = calloc(1, sizeof(*srv));
	if (!srv)
		return -ENOMEM;
	srv->cfg = *cfg;
	srv->fd = -1;
	srv->timer_fd = -1;
	srv->idle_timeout_ns = (uint64_t)(cfg->idle_timeout_ms ? cfg->idle_timeout_ms
							       : VMM_CTL_DEFAULT_IDLE_TIMEOUT_MS) *
			       1000000ull;
	srv->path = strdup(cfg->path);
	if (!srv->path) {
		free(srv);
		return -ENOMEM;
	}
	/* 0600 (the runtime directory is 0700 as well) */
	srv->fd = ebb_sock_listen(cfg->path, SOCK_NONBLOCK, 16);
	if (srv->fd < 0) {
		ret = srv->fd;
		goto fail;
	}
	ret = timer_start(srv);
	if (!ret)
		ret = vmm_evloop_add(cfg->loop, srv->fd, EPOLLIN, accept_event, srv, &srv->watch);
	if (ret) {
		unlink(cfg->path);
		goto fail;
	}
	*out = srv;
	return 0;
fail:
	vmm_evloop_del(cfg->loop, srv->timer_watch);
	if (srv->timer_fd >= 0)
		close(srv->timer_fd);
	if (srv->fd >= 0)
		close(srv->fd);
	free(srv->path);
	free(srv);
	return ret;
}

void vmm_ctl_server_destroy(struct vmm_ctl_server *srv)
{
	if (!srv)
		return;
	while (srv->clients) {
		struct client *c = srv->clients;

		srv->clients = c->next;
		client_flush(c);
		client_free(c);
	}
	vmm_evloop_del(srv->cfg.loop, srv->watch);
	vmm_evloop_del(srv->cfg.loop, srv->timer_watch);
	close(srv->timer_fd);
	close(srv->fd);
	unlink(srv->path);
	free(srv->path);
	free(srv->cmds);
	free(srv);
}

void vmm_ctl_server_notify(struct vmm_ctl_server *srv, const char *event,
			   struct json_object *fields)
{
	struct json_object *o;
	struct client *c, *next;
	const char *text;

	if (!srv || !srv->nr_watching) {
		json_object_put(fields);
		return;
	}
	o = json_object_new_object();
	if (!o) {
		json_object_put(fields);
		return;
	}
	json_object_object_add(o, "event", json_object_new_string(event));
	if (fields) {
		struct json_object_iterator it = json_object_iter_begin(fields);
		struct json_object_iterator end = json_object_iter_end(fields);

		for (; !json_object_iter_equal(&it, &end); json_object_iter_next(&it))
			json_object_object_add(o, json_object_iter_peek_name(&it),
					       json_object_get(json_object_iter_peek_value(&it)));
		json_object_put(fields);
	}
	text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN);
	for (c = srv->clients; c; c = next) {
		char *line;

		next = c->next;
		if (!c->watching)
			continue;
		if (asprintf(&line, "%s\n", text) < 0)
			break;
		srv->stats.nr_events++;
		if (!client_queue(c, line))
			client_close(c);
	}
	json_object_put(o);
}

int vmm_ctl_server_register(struct vmm_ctl_server *srv, const char *name,
			    vmm_ctl_handler_fn fn, void *opaque)
{
	if (!srv || !fn || !name || !name[0] || strlen(name) > VMM_CTL_MAX_CMD_BYTES ||
	    strcmp(name, "watch") == 0)
		return -EINVAL;
	if (cmd_find(srv, name))
		return -EEXIST;
	if (srv->nr_cmds == srv->cap_cmds) {
		size_t cap = srv->cap_cmds ? srv->cap_cmds * 2 : 16;
		struct cmd *p = realloc(srv->cmds, cap * sizeof(*p));

		if (!p)
			return -ENOMEM;
		srv->cmds = p;
		srv->cap_cmds = cap;
	}
	srv->cmds[srv->nr_cmds++] = (struct cmd){ .name = name, .fn = fn, .opaque = opaque };
	return 0;
}

int vmm_ctl_server_register_all(struct vmm_ctl_server *srv, const struct vmm_ctl_command *cmds,
				size_t nr, void *opaque)
{
	int ret = 0;

	for (size_t i = 0; i < nr && !ret; i++)
		ret = vmm_ctl_server_register(srv, cmds[i].name, cmds[i].fn, opaque);
	return ret;
}

void vmm_ctl_server_get_stats(struct vmm_ctl_server *srv, struct vmm_ctl_server_stats *out)
{
	*out = srv->stats;
}

unsigned vmm_ctl_server_nr_clients(struct vmm_ctl_server *srv)
{
	return srv->nr_clients;
}
