/*
 * host-reclaim/bin/ebbd_http.h — ebbd's metrics endpoint: GET /metrics over
 * HTTP (libmicrohttpd), serving the text the daemon rendered last
 * (ebbd_metrics_copy()).  Part of the ebbd program only: the library stays
 * free of HTTP.
 *
 * Threading: libmicrohttpd's one internal thread serves every connection;
 * it never takes a lock the balancer holds for more than a copy, so a slow
 * or hostile client cannot hold a step back.
 */
#ifndef EBB_BIN_EBBD_HTTP_H
#define EBB_BIN_EBBD_HTTP_H

#include <stdint.h>
#include <sys/socket.h>

#include "client/log.h"
#include "host-reclaim/ebbd/ebbd.h"

/* Bounds on clients (CLIENT: hostile). */
#define EBBD_HTTP_MAX_CONNECTIONS 16u
#define EBBD_HTTP_MAX_PER_IP 4u
#define EBBD_HTTP_TIMEOUT_S 10u
#define EBBD_HTTP_MEMORY_LIMIT_BYTES (16u << 10)   /* request line + headers */

struct ebbd_http;

/* Listens on @addr and serves.  0 or -errno (message in err). */
int ebbd_http_create(struct ebbd *d, const struct sockaddr *addr, socklen_t addr_len,
		     const struct vmm_log *log, struct ebbd_http **out, char *err, size_t err_len);
/* The port it listens on (useful with port 0). */
uint16_t ebbd_http_port(const struct ebbd_http *h);
/* Stops the thread, closes every connection.  NULL is a no-op. */
void ebbd_http_destroy(struct ebbd_http *h);

#endif
