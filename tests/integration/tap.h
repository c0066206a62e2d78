/*
 * tap.h — the TAP helpers every integration program shares: ok() prints one
 * numbered "ok"/"not ok" line and counts failures.  Header-only (static), so
 * each test program stays one file plus the libraries it tests.
 */
#ifndef EBB_TESTS_TAP_H
#define EBB_TESTS_TAP_H

#include <stdarg.h>
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

#endif
