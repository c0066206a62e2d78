/*
 * reclaim_log.c — formatting for the host-reclaim library's log callback,
 * through the rate limiter of base/log.h (see reclaim_log.h).  No global
 * state: the rate limiter lives in the caller's object.
 */
#include "host-reclaim/reclaim_log.h"

#include <stdarg.h>
#include <stdio.h>

void ebb_reclaim_logf(ebb_log_fn fn, void *ctx, struct ebb_ratelimit *rl,
		      uint64_t now_ns, enum ebb_log_level level, const char *fmt, ...)
{
	char msg[EBB_LOG_LINE_BYTES];
	uint64_t nr_suppressed = 0;
	size_t off = 0;
	va_list ap;

	if (rl && !ebb_ratelimit_ok(rl, now_ns, EBB_RATELIMIT_BURST, EBB_RATELIMIT_WINDOW_NS,
				    &nr_suppressed))
		return;
	if (!fn)
		return;
	if (nr_suppressed) {
		int n = snprintf(msg, sizeof(msg), "(%llu similar messages suppressed) ",
				 (unsigned long long)nr_suppressed);
		if (n > 0 && (size_t)n < sizeof(msg))
			off = (size_t)n;
	}
	va_start(ap, fmt);
	vsnprintf(msg + off, sizeof(msg) - off, fmt, ap);
	va_end(ap);
	fn(ctx, level, msg);
}
