/*
 * client/report.c — field tables to JSON and to text, see report.h.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/page.h"
#include "client/report.h"
#include "client/size.h"

void vmm_report_json(const struct vmm_field *f, size_t nr, const void *obj,
		     struct json_object *out)
{
	const char *base = obj;

	for (size_t i = 0; i < nr; i++, f++) {
		const void *p = base + f->off;
		struct json_object *v = NULL;
		int64_t opt;

		switch (f->type) {
		case VMM_FIELD_U64:
			v = json_object_new_int64((int64_t)*(const uint64_t *)p);
			break;
		case VMM_FIELD_I64_OPT:
			opt = *(const int64_t *)p;
			if (opt < 0)
				continue;
			v = json_object_new_int64(opt);
			break;
		case VMM_FIELD_I64_NULL:
			opt = *(const int64_t *)p;
			if (opt >= 0)
				v = json_object_new_int64(opt);
			break;
		case VMM_FIELD_INT:
			v = json_object_new_int(*(const int *)p);
			break;
		case VMM_FIELD_BOOL:
			v = json_object_new_boolean(*(const bool *)p);
			break;
		case VMM_FIELD_DOUBLE:
			v = json_object_new_double(*(const double *)p);
			break;
		case VMM_FIELD_STR:
			if (*(const char *const *)p)
				v = json_object_new_string(*(const char *const *)p);
			break;
		case VMM_FIELD_OBJ:
			v = f->json ? f->json(obj) : NULL;
			break;
		}
		json_object_object_add(out, f->name, v);
	}
}

/* Appends to buf at *n with snprintf semantics: *n counts what did not fit. */
__attribute__((format(printf, 4, 5)))
static void append(char *buf, size_t len, int *n, const char *fmt, ...)
{
	va_list ap;
	int m;

	va_start(ap, fmt);
	if ((size_t)*n < len)
		m = vsnprintf(buf + *n, len - (size_t)*n, fmt, ap);
	else
		m = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (m > 0)
		*n += m;
}

char *vmm_format_ms(int64_t ms, char *buf, size_t len)
{
	if (ms < 0)
		snprintf(buf, len, "-");
	else if (ms < 60000)
		snprintf(buf, len, "%.1fs", (double)ms / 1000.0);
	else if (ms < 3600000)
		snprintf(buf, len, "%lldm%02llds", (long long)(ms / 60000), (long long)(ms / 1000 % 60));
	else
		snprintf(buf, len, "%lldh%02lldm", (long long)(ms / 3600000),
			 (long long)(ms / 60000 % 60));
	return buf;
}

/* The value of one field as people read it: a string as it is, a number in
 * the field's unit (formatted into tmp), "?" for anything else. */
static const char *value_text(const struct vmm_field *f, struct json_object *v, char *tmp,
			      size_t len)
{
	if (json_object_is_type(v, json_type_string))
		return json_object_get_string(v);
	if (f->unit == VMM_UNIT_MS && !v)
		return vmm_format_ms(-1, tmp, len);
	if (f->unit == VMM_UNIT_PCT) {
		if (json_object_is_type(v, json_type_double) || json_object_is_type(v, json_type_int))
			snprintf(tmp, len, "%.2f%%", json_object_get_double(v));
		else
			snprintf(tmp, len, "?");
		return tmp;
	}
	if (!json_object_is_type(v, json_type_int)) {
		snprintf(tmp, len, "?");
		return tmp;
	}
	switch (f->unit) {
	case VMM_UNIT_PAGES_MIB:
		snprintf(tmp, len, "%.1f MiB", (double)json_object_get_int64(v) * EBB_PAGE_SIZE / 1048576.0);
		break;
	case VMM_UNIT_BYTES_KIB:
		snprintf(tmp, len, "%lld KiB", (long long)(json_object_get_int64(v) / 1024));
		break;
	case VMM_UNIT_SIZE:
		vmm_format_size((uint64_t)json_object_get_int64(v), tmp, len);
		break;
	case VMM_UNIT_MS:
		vmm_format_ms(json_object_get_int64(v), tmp, len);
		break;
	default:
		snprintf(tmp, len, "%lld", (long long)json_object_get_int64(v));
		break;
	}
	return tmp;
}

int vmm_report_text(const struct vmm_field *f, size_t nr, struct json_object *o,
		    const char *head, const char *indent, char *buf, size_t len)
{
	bool first = true;
	int n = 0;

	if (len)
		buf[0] = '\0';
	for (size_t i = 0; i < nr; i++, f++) {
		struct json_object *v;
		const char *hole, *tmpl, *val[2];
		char tmp[2][64];

		if (!f->text && !f->text_fn)
			continue;
		if (!json_object_object_get_ex(o, f->name, &v))
			continue;
		if (f->text_fn && (!v || !f->text_fn(v, NULL, 0)))
			continue;  /* nothing to show (e.g. no histogram yet) */
		if (first || f->line)
			append(buf, len, &n, "%s%s", first ? "" : "\n", first ? head : indent);
		first = false;
		if (f->text_fn) {
			int m = f->text_fn(v, (size_t)n < len ? buf + n : NULL,
					   (size_t)n < len ? len - (size_t)n : 0);

			n += m > 0 ? m : 0;
			continue;
		}
		val[0] = value_text(f, v, tmp[0], sizeof(tmp[0]));
		val[1] = "?";
		if (f->with && json_object_object_get_ex(o, f->with, &v))
			val[1] = value_text(f, v, tmp[1], sizeof(tmp[1]));
		/* the template with its %s holes filled in order */
		tmpl = f->text;
		for (int k = 0; k < 2 && (hole = strstr(tmpl, "%s")); k++) {
			append(buf, len, &n, "%.*s%s", (int)(hole - tmpl), tmpl, val[k]);
			tmpl = hole + 2;
		}
		append(buf, len, &n, "%s", tmpl);
	}
	if (!first)
		append(buf, len, &n, "\n");
	return n;
}
