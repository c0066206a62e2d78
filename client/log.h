/*
 * client/log.h — logging for the client and vmm libraries, on the contract of
 * base/log.h: a callback the embedding program supplies (the library never
 * prints) and the base rate limiter for lines that a guest or a client can
 * trigger at will.  Nothing here is global: each object that logs holds a
 * `struct vmm_log` (copied from its config) and one `struct ebb_ratelimit`
 * per class of hostile-input message.
 */
#ifndef EBB_VMM_LOG_H
#define EBB_VMM_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/log.h"

struct vmm_log {
	ebb_log_fn fn;   /* NULL: logging off */
	void *opaque;
};

void vmm_logf(const struct vmm_log *log, enum ebb_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void vmm_vlogf(const struct vmm_log *log, enum ebb_log_level level, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));

/*
 * Logs through @rl (EBB_RATELIMIT_BURST lines per EBB_RATELIMIT_WINDOW_NS,
 * CLOCK_MONOTONIC); the lines suppressed are counted and reported with the
 * next line let through.  The caller holds the lock that protects @rl.
 */
void vmm_logf_rl(const struct vmm_log *log, struct ebb_ratelimit *rl, enum ebb_log_level level,
		 const char *fmt, ...) __attribute__((format(printf, 4, 5)));

uint64_t vmm_now_ns(void);

#endif
