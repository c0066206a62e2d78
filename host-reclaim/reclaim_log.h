/*
 * reclaim_log.h — the logging contract of the host-reclaim library.
 *
 * The library never prints: every object takes an ebb_reclaim_log_fn and a
 * context from its config (NULL means "drop messages").  Messages caused by
 * guest or client input, and I/O errors that can repeat, go through a
 * per-call-site rate limiter: the first EBB_RL_BURST messages in each window
 * are passed on, the rest are only counted and the count is reported with the
 * next message that passes.
 */
#ifndef EBB_HOST_RECLAIM_LOG_H
#define EBB_HOST_RECLAIM_LOG_H

#include <stdint.h>

enum ebb_log_level {
	EBB_LOG_ERROR = 0,
	EBB_LOG_WARN = 1,
	EBB_LOG_INFO = 2,
	EBB_LOG_DEBUG = 3,
};

typedef void (*ebb_reclaim_log_fn)(void *ctx, enum ebb_log_level level,
				   const char *msg);

/* A rate limiter for one call site; zero-initialise it. */
struct ebb_ratelimit {
	uint64_t window_start_ns;
	uint32_t nr_in_window;
	uint64_t nr_suppressed;
};

#define EBB_RL_WINDOW_NS (5ULL * 1000 * 1000 * 1000)
#define EBB_RL_BURST 10

/*
 * Format and deliver one message, subject to @rl when it is non-NULL.
 * @now_ns comes from the owner's clock.  Thread-safety: the caller holds
 * whatever lock protects @rl.
 */
void ebb_reclaim_logf(ebb_reclaim_log_fn fn, void *ctx, struct ebb_ratelimit *rl,
		      uint64_t now_ns, enum ebb_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));

#endif /* EBB_HOST_RECLAIM_LOG_H */
