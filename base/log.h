/*
 * base/log.h — the logging contract every ebb library shares.
 *
 * Libraries never print: each takes an ebb_log_fn and an opaque pointer from
 * its config (a NULL function drops every line) and hands it one formatted
 * line at a time, without a trailing newline.  Lines that a guest, a client
 * or a failing disk can trigger at will go through a struct ebb_ratelimit,
 * one per call site or class of message, kept in the object that logs:
 * at most `burst` lines per window pass, the rest are counted.  Each library
 * decides how the count is reported (a counter it exports, or a note on the
 * next line that passes).
 *
 * Header only (static inline), like the rest of base/: the static guest
 * agent must link nothing but its own library and libc, and no library
 * should need a second one to log.  Nothing here is global.
 */
#ifndef EBB_BASE_LOG_H
#define EBB_BASE_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

enum ebb_log_level {
	EBB_LOG_ERROR = 0,
	EBB_LOG_WARN = 1,
	EBB_LOG_INFO = 2,
	EBB_LOG_DEBUG = 3,
};

/* Receives one formatted line without a trailing newline. */
typedef void (*ebb_log_fn)(void *opaque, enum ebb_log_level level, const char *msg);

/* The longest line a library formats; longer ones are cut. */
#define EBB_LOG_LINE_BYTES 512

/* Format one line and hand it to @fn (nothing when @fn is NULL). */
static inline void ebb_vlogf(ebb_log_fn fn, void *opaque, enum ebb_log_level level,
			     const char *fmt, va_list ap) __attribute__((format(printf, 4, 0)));
static inline void ebb_vlogf(ebb_log_fn fn, void *opaque, enum ebb_log_level level,
			     const char *fmt, va_list ap)
{
	char line[EBB_LOG_LINE_BYTES];

	if (!fn)
		return;
	vsnprintf(line, sizeof(line), fmt, ap);
	fn(opaque, level, line);
}

/* CLOCK_MONOTONIC in nanoseconds: the default clock of the rate limiter. */
static inline uint64_t ebb_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/*
 * The rate limiter: zero-initialise it.  Not thread safe: the lock of the
 * object that owns it protects it.
 */
struct ebb_ratelimit {
	uint64_t window_start_ns;
	uint32_t nr_in_window;
	bool started;
	uint64_t nr_suppressed;   /* dropped since the last line let through */
};

/* The usual limits: 10 lines per 5 s. */
#define EBB_RATELIMIT_BURST 10
#define EBB_RATELIMIT_WINDOW_NS 5000000000ull

/*
 * Returns true when a line may be logged at @now_ns: at most @burst lines
 * per @window_ns (a clock that goes back starts a new window).  A line
 * refused is counted in rl->nr_suppressed; when one is let through,
 * *nr_suppressed_out (optional) gets that count and it restarts from zero.
 */
static inline bool ebb_ratelimit_ok(struct ebb_ratelimit *rl, uint64_t now_ns, uint32_t burst,
				    uint64_t window_ns, uint64_t *nr_suppressed_out)
{
	if (!rl->started || now_ns - rl->window_start_ns >= window_ns) {
		rl->started = true;
		rl->window_start_ns = now_ns;
		rl->nr_in_window = 0;
	}
	if (rl->nr_in_window >= burst) {
		rl->nr_suppressed++;
		return false;
	}
	rl->nr_in_window++;
	if (nr_suppressed_out)
		*nr_suppressed_out = rl->nr_suppressed;
	rl->nr_suppressed = 0;
	return true;
}

#endif /* EBB_BASE_LOG_H */
