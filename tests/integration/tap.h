/*
 * tap.h — the TAP helpers every integration program shares: ok() prints one
 * numbered "ok"/"not ok" line and counts failures, skip() one skipped line;
 * mix() is the splitmix64 finaliser the programs derive their known page
 * contents from.  Header-only (static), so
 * each test program stays one file plus the libraries it tests.
 */
#ifndef EBB_TESTS_TAP_H
#define EBB_TESTS_TAP_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>

static int tap_n;       /* lines printed so far */
static int tap_failed;  /* of them "not ok" */

static void ok(int cond, const char *fmt, ...) __attribute__((format(printf, 2, 3), unused));
static void ok(int cond, const char *fmt, ...)
{
	va_list ap;

	if (!cond)
		tap_failed++;
	printf("%sok %d - ", cond ? "" : "not ", ++tap_n);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

static void skip(const char *what, const char *why) __attribute__((unused));
static void skip(const char *what, const char *why)
{
	printf("ok %d - %s # SKIP %s\n", ++tap_n, what, why);
	fflush(stdout);
}

static uint64_t mix(uint64_t x) __attribute__((unused));
static uint64_t mix(uint64_t x)
{
	x += 0x9E3779B97F4A7C15ULL;
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
	x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
	return x ^ (x >> 31);
}

#endif
