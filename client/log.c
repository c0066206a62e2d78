/*
 * client/log.c — formatting into the embedder's log callback, the rate limiter
 * for guest- and client-triggered lines, and the monotonic clock.
 */
#include <stdio.h>
#include <time.h>

#include "client/log.h"

uint64_t vmm_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void vmm_vlogf(const struct vmm_log *log, enum vmm_log_level level, const char *fmt, va_list ap)
{
	char line[512];

	if (!log || !log->fn)
		return;
	vsnprintf(line, sizeof(line), fmt, ap);
	log->fn(log->opaque, level, line);
}

void vmm_logf(const struct vmm_log *log, enum vmm_log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vmm_vlogf(log, level, fmt, ap);
	va_end(ap);
}

bool vmm_ratelimit_ok(struct vmm_ratelimit *rl, uint64_t now_ns, uint64_t *nr_suppressed_out)
{
	if (now_ns - rl->window_start_ns >= VMM_RATELIMIT_WINDOW_NS || rl->window_start_ns == 0) {
		rl->window_start_ns = now_ns ? now_ns : 1;
		rl->nr_in_window = 0;
	}
	if (rl->nr_in_window >= VMM_RATELIMIT_BURST) {
		rl->nr_suppressed++;
		return false;
	}
	rl->nr_in_window++;
	if (nr_suppressed_out)
		*nr_suppressed_out = rl->nr_suppressed;
	rl->nr_suppressed = 0;
	return true;
}

void vmm_logf_rl(const struct vmm_log *log, struct vmm_ratelimit *rl, enum vmm_log_level level,
		 const char *fmt, ...)
{
	char line[448];
	uint64_t nr_suppressed = 0;
	va_list ap;

	if (!log || !log->fn || !vmm_ratelimit_ok(rl, vmm_now_ns(), &nr_suppressed))
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
