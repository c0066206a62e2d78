/*
 * client/log.c — formatting into the embedder's log callback through the
 * rate limiter of base/log.h, and the monotonic clock.
 */
#include <stdio.h>

#include "client/log.h"

uint64_t vmm_now_ns(void)
{
	return ebb_mono_ns();
}

void vmm_vlogf(const struct vmm_log *log, enum ebb_log_level level, const char *fmt, va_list ap)
{
	if (log)
		ebb_vlogf(log->fn, log->opaque, level, fmt, ap);
}

void vmm_logf(const struct vmm_log *log, enum ebb_log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmm_vlogf(log, level, fmt, ap);
	va_end(ap);
}

void vmm_logf_rl(const struct vmm_log *log, struct ebb_ratelimit *rl, enum ebb_log_level level,
		 const char *fmt, ...)
{
	char line[448];
	uint64_t nr_suppressed = 0;
	va_list ap;

	if (!log || !log->fn ||
	    !ebb_ratelimit_ok(rl, vmm_now_ns(), EBB_RATELIMIT_BURST, EBB_RATELIMIT_WINDOW_NS,
			      &nr_suppressed))
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (nr_suppressed)
		vmm_logf(log, level, "%s (%llu similar lines suppressed)", line,
			 (unsigned long long)nr_suppressed);
	else
		vmm_logf(log, level, "%s", line);
}
