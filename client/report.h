/*
 * client/report.h — one field table per reported object drives both its JSON
 * (what the server puts in a response) and its text (what `ebb stat` shows
 * people).  A table lists the object's fields in JSON order: the member's
 * name and JSON type, where its value is in the server's C struct (an
 * offset), and, for the fields people see, a text template with the unit
 * the value is shown in.  The server encodes a struct with
 * vmm_report_json(); a client formats the JSON it received with
 * vmm_report_text() — the same table, so that a field added to the object
 * is one line here and shows in both (docs/control-protocol.md).
 */
#ifndef EBB_CLIENT_REPORT_H
#define EBB_CLIENT_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

/* How the value is stored in the struct and encoded in JSON. */
enum vmm_field_type {
	VMM_FIELD_U64,        /* uint64_t, a JSON integer */
	VMM_FIELD_I64_OPT,    /* int64_t, a JSON integer; the member is left out when < 0 */
	VMM_FIELD_I64_NULL,   /* int64_t, a JSON integer; null when < 0 */
	VMM_FIELD_INT,        /* int, a JSON integer */
	VMM_FIELD_BOOL,       /* bool */
	VMM_FIELD_DOUBLE,     /* double */
	VMM_FIELD_STR,        /* const char *, a string (NULL: null) */
	VMM_FIELD_OBJ,        /* built by .json (NULL: null) */
};

/* How the text shows the value. */
enum vmm_field_unit {
	VMM_UNIT_NUM,         /* the integer (or string) as it is */
	VMM_UNIT_PAGES_MIB,   /* 4 KiB pages, as "12.5 MiB" */
	VMM_UNIT_BYTES_KIB,   /* bytes, as "1024 KiB" */
	VMM_UNIT_PCT,         /* a percentage, as "0.25%" */
	VMM_UNIT_SIZE,        /* bytes, as "512 MiB" (vmm_format_size) */
	VMM_UNIT_MS,          /* milliseconds, as "1.5s", "3m05s", "2h10m"; "-" for null */
};

struct vmm_field {
	const char *name;             /* JSON member */
	enum vmm_field_type type;
	size_t off;                   /* of the value in the struct */
	/* VMM_FIELD_OBJ: the member's value from the whole struct */
	struct json_object *(*json)(const void *obj);
	/*
	 * Text: a template with one %s for the value (and a second for the
	 * member named by .with), NULL for JSON only.  A
	 * field starts a new line when .line is set; the text skips fields the
	 * JSON does not have.  VMM_FIELD_OBJ fields are shown by .text_fn
	 * (returns the bytes written, snprintf semantics; 0 to show nothing).
	 */
	const char *text;
	enum vmm_field_unit unit;
	bool line;
	const char *with;             /* a second %s in text shows this member (same unit) */
	int (*text_fn)(struct json_object *v, char *buf, size_t len);
};

/* Adds the fields of obj (a struct the table describes) to out. */
void vmm_report_json(const struct vmm_field *f, size_t nr, const void *obj,
		     struct json_object *out);

/*
 * CLIENT (the JSON came from a server): formats the object o for people,
 * every line starting with indent except the first, which starts with head;
 * ends with a newline.  Returns the number of bytes written (snprintf
 * semantics: >= len when truncated).
 */
int vmm_report_text(const struct vmm_field *f, size_t nr, struct json_object *o,
		    const char *head, const char *indent, char *buf, size_t len);

/* "1.5s", "3m05s", "2h10m"; "-" for a negative ms.  Returns buf. */
char *vmm_format_ms(int64_t ms, char *buf, size_t len);

#endif
