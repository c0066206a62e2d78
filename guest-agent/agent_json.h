/*
 * agent_json.h - the agent's allocation-free JSON: a reader for the flat
 * request objects the host sends and a writer for the agent's replies.
 *
 * The agent must keep working in a guest that is out of memory, so it does not
 * use a general JSON library (which allocates per value).  Requests are flat
 * objects of strings, integers, booleans and nulls; nested values and
 * non-integer numbers are accepted syntactically (depth-bounded) and reported
 * as AGENT_J_OTHER so the caller can reject or ignore them.  Everything has a
 * fixed cap: AGENT_J_MAX_FIELDS fields, keys and strings of bounded length.
 */
#ifndef EBB_GUEST_AGENT_JSON_H
#define EBB_GUEST_AGENT_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AGENT_J_MAX_FIELDS 16
#define AGENT_J_MAX_KEY    32   /* bytes, including the NUL */
#define AGENT_J_MAX_STR    128  /* bytes, including the NUL */
#define AGENT_J_MAX_DEPTH  8    /* nesting allowed inside skipped values */

enum agent_jtype {
	AGENT_J_STRING,
	AGENT_J_INT,     /* fits int64_t, no fraction or exponent */
	AGENT_J_BOOL,
	AGENT_J_NULL,
	AGENT_J_OTHER,   /* object, array, float, or integer out of range */
};

struct agent_jfield {
	char key[AGENT_J_MAX_KEY];
	enum agent_jtype type;
	char str[AGENT_J_MAX_STR];  /* AGENT_J_STRING: NUL-terminated, no NUL inside */
	int64_t num;                /* AGENT_J_INT */
	bool b;                     /* AGENT_J_BOOL */
};

struct agent_jobj {
	struct agent_jfield f[AGENT_J_MAX_FIELDS];
	unsigned nr_fields;
};

/* Parse one JSON object occupying all of s[0..len) (surrounding whitespace
 * allowed).  Returns 0; -EINVAL for malformed JSON, a non-object, a duplicate
 * key, a NUL or control character inside a string; -E2BIG when a cap is hit. */
int agent_json_parse_flat(const char *s, size_t len, struct agent_jobj *out);

/* The field called `key`, or NULL. */
const struct agent_jfield *agent_json_get(const struct agent_jobj *o, const char *key);

/* Writer into a caller-provided buffer.  Errors are sticky: after an
 * overflow every call is a no-op and agent_jw_finish() returns -ENOSPC. */
struct agent_jw {
	char *buf;
	size_t cap;
	size_t len;
	unsigned depth;
	uint32_t need_comma;   /* bit d: a value was already written at depth d */
	bool overflow;
};

void agent_jw_init(struct agent_jw *w, char *buf, size_t cap);
/* key is NULL inside arrays and for the top-level object. */
void agent_jw_obj_begin(struct agent_jw *w, const char *key);
void agent_jw_obj_end(struct agent_jw *w);
void agent_jw_arr_begin(struct agent_jw *w, const char *key);
void agent_jw_arr_end(struct agent_jw *w);
void agent_jw_str(struct agent_jw *w, const char *key, const char *val);
void agent_jw_u64(struct agent_jw *w, const char *key, uint64_t val);
void agent_jw_i64(struct agent_jw *w, const char *key, int64_t val);
void agent_jw_bool(struct agent_jw *w, const char *key, bool val);
void agent_jw_null(struct agent_jw *w, const char *key);
/* 1234 -> 12.34 */
void agent_jw_centi(struct agent_jw *w, const char *key, uint32_t centi);
/* Close the line with '\n'.  Returns its length, or -ENOSPC. */
int agent_jw_finish(struct agent_jw *w);

#endif
