/*
 * agent_json.c - allocation-free JSON reader (flat objects) and writer.
 *
 * Overview: the reader is a recursive-descent parser over a bounded buffer.
 * Top-level members are stored into a fixed array of fields; nested values are
 * walked (to validate and find their end) with an explicit depth bound and
 * recorded only as AGENT_J_OTHER.  Strings are unescaped into the field; a
 * \u escape of a non-ASCII code point is stored as UTF-8, a NUL is refused.
 * The writer appends with snprintf into the caller's buffer, escaping
 * strings, and keeps the comma state per depth in a bitmask.
 */
#include "guest-agent/agent_json.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

struct jp {
	const char *p;
	const char *end;
};

static void ws(struct jp *j)
{
	while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' ||
				 *j->p == '\r'))
		j->p++;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Parse a string at j->p (which is at '"').  Store up to cap-1 bytes into out
 * (out may be NULL to only skip).  -E2BIG if it does not fit. */
static int parse_string(struct jp *j, char *out, size_t cap)
{
	size_t n = 0;

	j->p++; /* opening quote */
	while (j->p < j->end) {
		unsigned char c = (unsigned char)*j->p++;
		char enc[4];
		size_t enc_len = 1;

		if (c == '"') {
			if (out)
				out[n] = '\0';
			return 0;
		}
		if (c < 0x20)
			return -EINVAL;
		enc[0] = (char)c;
		if (c == '\\') {
			if (j->p >= j->end)
				return -EINVAL;
			c = (unsigned char)*j->p++;
			switch (c) {
			case '"': case '\\': case '/': enc[0] = (char)c; break;
			case 'b': enc[0] = '\b'; break;
			case 'f': enc[0] = '\f'; break;
			case 'n': enc[0] = '\n'; break;
			case 'r': enc[0] = '\r'; break;
			case 't': enc[0] = '\t'; break;
			case 'u': {
				unsigned cp = 0;

				if (j->end - j->p < 4)
					return -EINVAL;
				for (int i = 0; i < 4; i++) {
					int h = hexval(j->p[i]);

					if (h < 0)
						return -EINVAL;
					cp = cp << 4 | (unsigned)h;
				}
				j->p += 4;
				/* No NULs; surrogates are not decoded (the protocol is
				 * ASCII): refuse them rather than store garbage. */
				if (cp == 0 || (cp >= 0xd800 && cp <= 0xdfff))
					return -EINVAL;
				if (cp < 0x80) {
					enc[0] = (char)cp;
				} else if (cp < 0x800) {
					enc[0] = (char)(0xc0 | cp >> 6);
					enc[1] = (char)(0x80 | (cp & 0x3f));
					enc_len = 2;
				} else {
					enc[0] = (char)(0xe0 | cp >> 12);
					enc[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
					enc[2] = (char)(0x80 | (cp & 0x3f));
					enc_len = 3;
				}
				break;
			}
			default:
				return -EINVAL;
			}
		}
		if (out) {
			if (n + enc_len >= cap)
				return -E2BIG;
			memcpy(out + n, enc, enc_len);
		}
		n += enc_len;
	}
	return -EINVAL;
}

/* A JSON number.  *is_int and *v set when it is an integer that fits. */
static int parse_number(struct jp *j, bool *is_int, int64_t *v)
{
	bool neg = false, overflow = false, frac = false;
	uint64_t mag = 0;

	if (j->p < j->end && *j->p == '-') {
		neg = true;
		j->p++;
	}
	if (j->p >= j->end || *j->p < '0' || *j->p > '9')
		return -EINVAL;
	if (*j->p == '0' && j->p + 1 < j->end && j->p[1] >= '0' && j->p[1] <= '9')
		return -EINVAL; /* no leading zeros */
	while (j->p < j->end && *j->p >= '0' && *j->p <= '9') {
		if (__builtin_mul_overflow(mag, 10, &mag) ||
		    __builtin_add_overflow(mag, (uint64_t)(*j->p - '0'), &mag))
			overflow = true;
		j->p++;
	}
	if (j->p < j->end && *j->p == '.') {
		frac = true;
		j->p++;
		if (j->p >= j->end || *j->p < '0' || *j->p > '9')
			return -EINVAL;
		while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
			j->p++;
	}
	if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
		frac = true;
		j->p++;
		if (j->p < j->end && (*j->p == '+' || *j->p == '-'))
			j->p++;
		if (j->p >= j->end || *j->p < '0' || *j->p > '9')
			return -EINVAL;
		while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
			j->p++;
	}
	*is_int = false;
	if (frac || overflow)
		return 0;
	if (!neg && mag <= (uint64_t)INT64_MAX) {
		*v = (int64_t)mag;
		*is_int = true;
	} else if (neg && mag <= (uint64_t)INT64_MAX + 1) {
		*v = mag == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)mag;
		*is_int = true;
	}
	return 0;
}

static bool word(struct jp *j, const char *w)
{
	size_t n = strlen(w);

	if ((size_t)(j->end - j->p) < n || memcmp(j->p, w, n) != 0)
		return false;
	j->p += n;
	return true;
}

/* Parse any value; store scalars into f when f is non-NULL. */
static int parse_value(struct jp *j, struct agent_jfield *f, unsigned depth)
{
	int rc;

	ws(j);
	if (j->p >= j->end)
		return -EINVAL;
	switch (*j->p) {
	case '"':
		if (f)
			f->type = AGENT_J_STRING;
		return parse_string(j, f ? f->str : NULL, sizeof(f->str));
	case 't':
		if (!word(j, "true"))
			return -EINVAL;
		if (f) {
			f->type = AGENT_J_BOOL;
			f->b = true;
		}
		return 0;
	case 'f':
		if (!word(j, "false"))
			return -EINVAL;
		if (f) {
			f->type = AGENT_J_BOOL;
			f->b = false;
		}
		return 0;
	case 'n':
		if (!word(j, "null"))
			return -EINVAL;
		if (f)
			f->type = AGENT_J_NULL;
		return 0;
	case '{':
	case '[': {
		char close = *j->p == '{' ? '}' : ']';
		bool obj = close == '}';

		if (depth + 1 > AGENT_J_MAX_DEPTH)
			return -E2BIG;
		if (f)
			f->type = AGENT_J_OTHER;
		j->p++;
		ws(j);
		if (j->p < j->end && *j->p == close) {
			j->p++;
			return 0;
		}
		for (;;) {
			ws(j);
			if (obj) {
				if (j->p >= j->end || *j->p != '"')
					return -EINVAL;
				rc = parse_string(j, NULL, 0);
				if (rc)
					return rc;
				ws(j);
				if (j->p >= j->end || *j->p != ':')
					return -EINVAL;
				j->p++;
			}
			rc = parse_value(j, NULL, depth + 1);
			if (rc)
				return rc;
			ws(j);
			if (j->p >= j->end)
				return -EINVAL;
			if (*j->p == ',') {
				j->p++;
				continue;
			}
			if (*j->p == close) {
				j->p++;
				return 0;
			}
			return -EINVAL;
		}
	}
	default: {
		bool is_int;
		int64_t v = 0;

		rc = parse_number(j, &is_int, &v);
		if (rc)
			return rc;
		if (f) {
			f->type = is_int ? AGENT_J_INT : AGENT_J_OTHER;
			f->num = v;
		}
		return 0;
	}
	}
}

int agent_json_parse_flat(const char *s, size_t len, struct agent_jobj *out)
{
	struct jp j = { s, s + len };
	int rc;

	out->nr_fields = 0;
	ws(&j);
	if (j.p >= j.end || *j.p != '{')
		return -EINVAL;
	j.p++;
	ws(&j);
	if (j.p < j.end && *j.p == '}') {
		j.p++;
		goto tail;
	}
	for (;;) {
		struct agent_jfield *f;

		ws(&j);
		if (j.p >= j.end || *j.p != '"')
			return -EINVAL;
		if (out->nr_fields >= AGENT_J_MAX_FIELDS)
			return -E2BIG;
		f = &out->f[out->nr_fields];
		memset(f, 0, sizeof(*f));
		rc = parse_string(&j, f->key, sizeof(f->key));
		if (rc)
			return rc;
		if (agent_json_get(out, f->key))
			return -EINVAL; /* duplicate key */
		ws(&j);
		if (j.p >= j.end || *j.p != ':')
			return -EINVAL;
		j.p++;
		rc = parse_value(&j, f, 1);
		if (rc)
			return rc;
		out->nr_fields++;
		ws(&j);
		if (j.p >= j.end)
			return -EINVAL;
		if (*j.p == ',') {
			j.p++;
			continue;
		}
		if (*j.p == '}') {
			j.p++;
			break;
		}
		return -EINVAL;
	}
tail:
	ws(&j);
	return j.p == j.end ? 0 : -EINVAL;
}

const struct agent_jfield *agent_json_get(const struct agent_jobj *o, const char *key)
{
	for (unsigned i = 0; i < o->nr_fields; i++)
		if (strcmp(o->f[i].key, key) == 0)
			return &o->f[i];
	return NULL;
}

/* --- writer -------------------------------------------------------------- */

void agent_jw_init(struct agent_jw *w, char *buf, size_t cap)
{
	memset(w, 0, sizeof(*w));
	w->buf = buf;
	w->cap = cap;
	if (cap)
		buf[0] = '\0';
}

static void put(struct agent_jw *w, const char *s, size_t n)
{
	if (w->overflow)
		return;
	if (w->cap == 0 || n >= w->cap - w->len) {
		w->overflow = true;
		return;
	}
	memcpy(w->buf + w->len, s, n);
	w->len += n;
	w->buf[w->len] = '\0';
}

static void puts_raw(struct agent_jw *w, const char *s)
{
	put(w, s, strlen(s));
}

static void put_escaped(struct agent_jw *w, const char *s)
{
	put(w, "\"", 1);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		char esc[8];

		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			put(w, esc, 2);
		} else if (c < 0x20 || c == 0x7f) {
			snprintf(esc, sizeof(esc), "\\u%04x", c);
			put(w, esc, 6);
		} else {
			put(w, (const char *)&c, 1);
		}
	}
	put(w, "\"", 1);
}

/* Comma and key before a value at the current depth. */
static void prefix(struct agent_jw *w, const char *key)
{
	uint32_t bit = 1u << (w->depth & 31);

	if (w->need_comma & bit)
		put(w, ",", 1);
	w->need_comma |= bit;
	if (key) {
		put_escaped(w, key);
		put(w, ":", 1);
	}
}

static void open_(struct agent_jw *w, const char *key, const char *c)
{
	if (w->depth)
		prefix(w, key);
	puts_raw(w, c);
	if (w->depth >= 31) {
		w->overflow = true;
		return;
	}
	w->depth++;
	w->need_comma &= ~(1u << w->depth);
}

static void close_(struct agent_jw *w, const char *c)
{
	if (w->depth == 0) {
		w->overflow = true;
		return;
	}
	w->depth--;
	puts_raw(w, c);
}

void agent_jw_obj_begin(struct agent_jw *w, const char *key) { open_(w, key, "{"); }
void agent_jw_obj_end(struct agent_jw *w) { close_(w, "}"); }
void agent_jw_arr_begin(struct agent_jw *w, const char *key) { open_(w, key, "["); }
void agent_jw_arr_end(struct agent_jw *w) { close_(w, "]"); }

void agent_jw_str(struct agent_jw *w, const char *key, const char *val)
{
	prefix(w, key);
	put_escaped(w, val);
}

void agent_jw_u64(struct agent_jw *w, const char *key, uint64_t val)
{
	char tmp[24];

	prefix(w, key);
	snprintf(tmp, sizeof(tmp), "%" PRIu64, val);
	puts_raw(w, tmp);
}

void agent_jw_i64(struct agent_jw *w, const char *key, int64_t val)
{
	char tmp[24];

	prefix(w, key);
	snprintf(tmp, sizeof(tmp), "%" PRId64, val);
	puts_raw(w, tmp);
}

void agent_jw_bool(struct agent_jw *w, const char *key, bool val)
{
	prefix(w, key);
	puts_raw(w, val ? "true" : "false");
}

void agent_jw_null(struct agent_jw *w, const char *key)
{
	prefix(w, key);
	puts_raw(w, "null");
}

void agent_jw_centi(struct agent_jw *w, const char *key, uint32_t centi)
{
	char tmp[24];

	prefix(w, key);
	snprintf(tmp, sizeof(tmp), "%u.%02u", centi / 100, centi % 100);
	puts_raw(w, tmp);
}

int agent_jw_finish(struct agent_jw *w)
{
	if (w->depth != 0)
		w->overflow = true;
	put(w, "\n", 1);
	if (w->overflow)
		return -ENOSPC;
	return (int)w->len;
}
