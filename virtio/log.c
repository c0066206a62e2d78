/*
 * virtio/log.c — the library's logging: formatting into the host's log
 * callback, a per-device rate limiter for guest-triggered lines, and the
 * clock that drives it.  Nothing here is global.
 */
#include <stdio.h>
#include <time.h>

#include "virtio/virtio.h"

uint64_t virtio_host_now_ns(const struct virtio_host *host)
{
	struct timespec ts;

	if (host && host->now_ns)
		return host->now_ns(host->opaque);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void virtio_log(const struct virtio_host *host, enum virtio_log_level level,
		const char *fmt, ...)
{
	char line[256];
	va_list ap;

	if (!host || !host->log)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	host->log(host->opaque, level, line);
}

void virtio_log_ratelimited(const struct virtio_host *host, struct virtio_ratelimit *rl,
			    uint64_t *nr_suppressed, const char *fmt, ...)
{
	uint64_t now = virtio_host_now_ns(host);
	char line[256];
	va_list ap;

	if (!rl->started || now - rl->window_start_ns >= VIRTIO_LOG_INTERVAL_NS) {
		rl->started = true;
		rl->window_start_ns = now;
		rl->nr_in_window = 0;
	}
	if (rl->nr_in_window >= VIRTIO_LOG_BURST) {
		if (nr_suppressed)
			(*nr_suppressed)++;
		return;
	}
	rl->nr_in_window++;
	if (!host || !host->log)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	host->log(host->opaque, VIRTIO_LOG_WARN, line);
}
