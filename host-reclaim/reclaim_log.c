/*
 * reclaim_log.c — formatting and rate limiting for the host-reclaim
 * library's log callback (see reclaim_log.h).  No global state: the rate
 * limiter lives in the caller's object.
 */
#include "host-reclaim/reclaim_log.h"

#include <stdarg.h>
#include <stdio.h>

void ebb_reclaim_logf(ebb_reclaim_log_fn fn, void *ctx, struct ebb_ratelimit *rl,
		      uint64_t now_ns, enum ebb_log_level level, const char *fmt, ...)
{
	char msg[512];
	size_t off = 0;
	va_list ap;

	if (rl) {
		if (now_ns - rl->window_start_ns >= EBB_RL_WINDOW_NS ||
		    now_ns < rl->window_start_ns) {
			rl->window_start_ns = now_ns;
			rl->nr_in_window = 0;
		}
		if (rl->nr_in_window >= EBB_RL_BURST) {
			rl->nr_suppressed++;
			return;
		}
		rl->nr_in_window++;
	}
	if (!fn)
		return;
	if (rl && rl->nr_suppressed) {
		int n = snprintf(msg, sizeof(msg), "(%llu similar messages suppressed) ",
				 (unsigned long long)rl->nr_suppressed);
		if (n > 0 && (size_t)n < sizeof(msg))
			off = (size_t)n;
		rl->nr_suppressed = 0;
	}
	va_start(ap, fmt);
	vsnprintf(msg + off, sizeof(msg) - off, fmt, ap);
	va_end(ap);
	fn(ctx, level, msg);
}
