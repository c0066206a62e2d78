/*
 * host-reclaim/bin/ebbd_http.c — GET /metrics for ebbd (see ebbd_http.h).
 *
 * A request is answered on its first callback: /metrics with the last
 * rendered text plus this server's own counters, anything else 404, a
 * method other than GET/HEAD 405, any request that announces a body 413
 * (nothing here reads one).  libmicrohttpd bounds the rest: connections
 * (total and per address), the idle time, and the memory of one request
 * (its line and headers; a longer one gets 431 / 414 from the library).
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#include "host-reclaim/bin/ebbd_http.h"
#include "host-reclaim/ebbd/metrics.h"

struct ebbd_http {
	struct MHD_Daemon *mhd;
	struct ebbd *d;
	struct vmm_log log;
	_Atomic uint64_t nr_scrapes, nr_rejected;
};

static enum MHD_Result reply(struct MHD_Connection *c, unsigned code, const char *text)
{
	struct MHD_Response *r = MHD_create_response_from_buffer(strlen(text), (void *)text,
								 MHD_RESPMEM_PERSISTENT);
	enum MHD_Result ret;

	if (!r)
		return MHD_NO;
	(void)MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, "text/plain; charset=utf-8");
	ret = MHD_queue_response(c, code, r);
	MHD_destroy_response(r);
	return ret;
}

/* CLIENT: url, method, headers are the client's. */
static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url,
			       const char *method, const char *version, const char *upload_data,
			       size_t *upload_data_size, void **con_cls)
{
	struct ebbd_http *h = cls;
	struct ebbd_metrics_buf extra = { 0 };
	struct MHD_Response *r;
	const char *cl, *te;
	enum MHD_Result ret;
	char *text;
	size_t len;

	(void)version;
	(void)upload_data;
	(void)con_cls;
	if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0) {
		h->nr_rejected++;
		return reply(c, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET /metrics is served\n");
	}
	cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	te = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
	if ((cl && strcmp(cl, "0") != 0) || te || *upload_data_size) {
		h->nr_rejected++;
		*upload_data_size = 0;
		return reply(c, MHD_HTTP_CONTENT_TOO_LARGE, "no request body is read here\n");
	}
	if (strcmp(url, "/metrics") != 0) {
		h->nr_rejected++;
		return reply(c, MHD_HTTP_NOT_FOUND, "ebbd serves /metrics\n");
	}
	if (ebbd_metrics_copy(h->d, &text, &len))
		return reply(c, MHD_HTTP_SERVICE_UNAVAILABLE, "out of memory\n");
	h->nr_scrapes++;
	ebbd_metrics_family(&extra, "ebbd_metrics_scrapes_total", "counter",
			    "Scrapes of /metrics served (this one included).");
	ebbd_metrics_sample(&extra, "ebbd_metrics_scrapes_total", NULL, (double)h->nr_scrapes);
	ebbd_metrics_family(&extra, "ebbd_metrics_rejected_requests_total", "counter",
			    "HTTP requests refused (path, method, body).");
	ebbd_metrics_sample(&extra, "ebbd_metrics_rejected_requests_total", NULL,
			    (double)h->nr_rejected);
	if (!extra.oom && extra.len) {
		char *t = realloc(text, len + extra.len + 1);

		if (t) {
			memcpy(t + len, extra.text, extra.len + 1);
			text = t;
			len += extra.len;
		}
	}
	ebbd_metrics_buf_release(&extra);
	r = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
	if (!r) {
		free(text);
		return MHD_NO;
	}
	(void)MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE,
				      "text/plain; version=0.0.4; charset=utf-8");
	ret = MHD_queue_response(c, MHD_HTTP_OK, r);
	MHD_destroy_response(r);
	return ret;
}

int ebbd_http_create(struct ebbd *d, const struct sockaddr *addr, socklen_t addr_len,
		     const struct vmm_log *log, struct ebbd_http **out, char *err, size_t err_len)
{
	struct ebbd_http *h = calloc(1, sizeof(*h));
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL;

	*out = NULL;
	if (!h)
		return -ENOMEM;
	(void)addr_len;
	h->d = d;
	h->log = *log;
	if (addr->sa_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	errno = 0;
	h->mhd = MHD_start_daemon(flags, 0, NULL, NULL, handler, h,
				  MHD_OPTION_SOCK_ADDR, addr,
				  MHD_OPTION_CONNECTION_LIMIT, (unsigned)EBBD_HTTP_MAX_CONNECTIONS,
				  MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)EBBD_HTTP_MAX_PER_IP,
				  MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)EBBD_HTTP_TIMEOUT_S,
				  MHD_OPTION_CONNECTION_MEMORY_LIMIT,
				  (size_t)EBBD_HTTP_MEMORY_LIMIT_BYTES,
				  MHD_OPTION_END);
	if (!h->mhd) {
		int e = errno ? errno : EADDRNOTAVAIL;

		snprintf(err, err_len, "%s", strerror(e));
		free(h);
		return -e;
	}
	*out = h;
	return 0;
}

uint16_t ebbd_http_port(const struct ebbd_http *h)
{
	const union MHD_DaemonInfo *i = MHD_get_daemon_info(h->mhd, MHD_DAEMON_INFO_BIND_PORT);

	return i ? i->port : 0;
}

void ebbd_http_destroy(struct ebbd_http *h)
{
	if (!h)
		return;
	MHD_stop_daemon(h->mhd);
	free(h);
}
