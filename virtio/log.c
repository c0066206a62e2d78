/*
 * virtio/log.c — the library's logging: formatting into the host's log
 * callback, the per-device rate limiter (base/log.h) for guest-triggered
 * lines, and the clock that drives it.  Nothing here is global.
 */
#include "virtio/virtio.h"

uint64_t virtio_host_now_ns(const struct virtio_host *host)
{
	if (host && host->now_ns)
		return host->now_ns(host->opaque);
	return ebb_mono_ns();
}

void virtio_log(const struct virtio_host *host, enum ebb_log_level level,
		const char *fmt, ...)
{
	va_list ap;

	if (!host)
		return;
	va_start(ap, fmt);
	ebb_vlogf(host->log, host->opaque, level, fmt, ap);
	va_end(ap);
}

void virtio_log_ratelimited(const struct virtio_host *host, struct ebb_ratelimit *rl,
			    uint64_t *nr_suppressed, const char *fmt, ...)
{
	va_list ap;

	if (!ebb_ratelimit_ok(rl, virtio_host_now_ns(host), EBB_RATELIMIT_BURST,
			      VIRTIO_LOG_INTERVAL_NS, NULL)) {
		if (nr_suppressed)
			(*nr_suppressed)++;
		return;
	}
	if (!host)
		return;
	va_start(ap, fmt);
	ebb_vlogf(host->log, host->opaque, EBB_LOG_WARN, fmt, ap);
	va_end(ap);
}
