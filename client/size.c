/*
 * client/size.c — see size.h.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "client/size.h"

int vmm_parse_size(const char *str, uint64_t default_unit_bytes, uint64_t *out_bytes)
{
	uint64_t value = 0, unit;
	const char *p = str;

	if (!str || !out_bytes || default_unit_bytes == 0)
		return -EINVAL;
	if (*p < '0' || *p > '9')
		return -EINVAL;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (__builtin_mul_overflow(value, 10, &value) ||
		    __builtin_add_overflow(value, (uint64_t)(*p - '0'), &value))
			return -ERANGE;
	}
	switch (*p) {
	case '\0':
		unit = default_unit_bytes;
		break;
	case 'b': case 'B':
		unit = 1;
		break;
	case 'k': case 'K':
		unit = 1ull << 10;
		break;
	case 'm': case 'M':
		unit = 1ull << 20;
		break;
	case 'g': case 'G':
		unit = 1ull << 30;
		break;
	case 't': case 'T':
		unit = 1ull << 40;
		break;
	default:
		return -EINVAL;
	}
	if (*p) {
		char u = *p++;

		if (u != 'b' && u != 'B' && *p &&
		    strcasecmp(p, "ib") != 0 && strcasecmp(p, "b") != 0)
			return -EINVAL;
		if ((u == 'b' || u == 'B') && *p)
			return -EINVAL;
	}
	if (__builtin_mul_overflow(value, unit, out_bytes))
		return -ERANGE;
	return 0;
}

char *vmm_format_size(uint64_t bytes, char *buf, size_t buf_len)
{
	static const char *const names[] = { "KiB", "MiB", "GiB", "TiB" };
	int i;

	if (!buf || buf_len == 0)
		return buf;
	for (i = 3; i >= 0; i--) {
		uint64_t unit = 1ull << (10 * (i + 1));

		if (bytes >= unit) {
			if (bytes % unit == 0)
				snprintf(buf, buf_len, "%llu %s", (unsigned long long)(bytes / unit), names[i]);
			else
				snprintf(buf, buf_len, "%.1f %s", (double)bytes / (double)unit, names[i]);
			return buf;
		}
	}
	snprintf(buf, buf_len, "%llu bytes", (unsigned long long)bytes);
	return buf;
}
