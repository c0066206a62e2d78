/*
 * client/log.h — logging for the vmm library: a callback the embedding program
 * supplies (the library never prints), and a rate limiter for lines that a
 * guest or a client can trigger at will.  Nothing here is global: each
 * object that logs holds a `struct vmm_log` (copied from its config) and one
 * `struct vmm_ratelimit` per class of hostile-input message.
 */
#ifndef EBB_VMM_LOG_H
#define EBB_VMM_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>

enum vmm_log_level {
	VMM_LOG_ERR,
	VMM_LOG_WARN,
	VMM_LOG_INFO,
	VMM_LOG_DEBUG,
};

/* Receives one formatted line without a trailing newline. */
typedef void (*vmm_log_fn)(void *opaque, enum vmm_log_level level, const char *msg);

struct vmm_log {
	vmm_log_fn fn;   /* NULL: logging off */
	void *opaque;
};

void vmm_logf(const struct vmm_log *log, enum vmm_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void vmm_vlogf(const struct vmm_log *log, enum vmm_log_level level, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));

/*
 * At most VMM_RATELIMIT_BURST lines per VMM_RATELIMIT_WINDOW_NS; the lines
 * suppressed are counted and reported with the next line let through.
 * Not thread safe: protect it with the lock of the object that owns it.
 */
#define VMM_RATELIMIT_BURST 10
#define VMM_RATELIMIT_WINDOW_NS 5000000000ull

struct vmm_ratelimit {
	uint64_t window_start_ns;
	uint32_t nr_in_window;
	uint64_t nr_suppressed;
};

/* Returns true when a line may be logged now; *nr_suppressed_out (optional)
 * gets the count of lines dropped since the last one let through. */
bool vmm_ratelimit_ok(struct vmm_ratelimit *rl, uint64_t now_ns, uint64_t *nr_suppressed_out);

/* Logs through the rate limiter (CLOCK_MONOTONIC). */
void vmm_logf_rl(const struct vmm_log *log, struct vmm_ratelimit *rl, enum vmm_log_level level,
		 const char *fmt, ...) __attribute__((format(printf, 4, 5)));

uint64_t vmm_now_ns(void);

#endif
