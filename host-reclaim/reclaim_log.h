/*
 * reclaim_log.h — how the host-reclaim library logs, on the contract of
 * base/log.h.
 *
 * The library never prints: every object takes an ebb_log_fn and a context
 * from its config (NULL means "drop messages").  Messages caused by guest or
 * client input, and I/O errors that can repeat, go through a per-call-site
 * struct ebb_ratelimit: the first EBB_RATELIMIT_BURST messages in each window
 * are passed on, the rest are only counted and the count is reported with the
 * next message that passes.
 */
#ifndef EBB_HOST_RECLAIM_LOG_H
#define EBB_HOST_RECLAIM_LOG_H

#include <stdint.h>

#include "base/log.h"

/*
 * Format and deliver one message, subject to @rl when it is non-NULL.
 * @now_ns comes from the owner's clock.  Thread-safety: the caller holds
 * whatever lock protects @rl.
 */
void ebb_reclaim_logf(ebb_log_fn fn, void *ctx, struct ebb_ratelimit *rl,
		      uint64_t now_ns, enum ebb_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));

#endif /* EBB_HOST_RECLAIM_LOG_H */
