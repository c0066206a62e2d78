/*
 * client/ctl.c — control protocol parsing and formatting, see ctl.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "client/ctl.h"

static const char *const err_codes[] = {
	[VMM_CTL_OK] = "ok",
	[VMM_CTL_ERR_PARSE] = "parse-error",
	[VMM_CTL_ERR_INVALID] = "invalid-request",
	[VMM_CTL_ERR_UNKNOWN_CMD] = "unknown-command",
	[VMM_CTL_ERR_VERSION] = "unsupported-version",
	[VMM_CTL_ERR_LINE_TOO_LONG] = "line-too-long",
	[VMM_CTL_ERR_BUSY] = "busy",
	[VMM_CTL_ERR_INTERNAL] = "internal-error",
	[VMM_CTL_ERR_STATE] = "invalid-state",
};

const char *vmm_ctl_err_code(enum vmm_ctl_err err)
{
	if ((unsigned)err >= sizeof(err_codes) / sizeof(err_codes[0]))
		return "internal-error";
	return err_codes[err];
}

/* Parses exactly one JSON value spanning the whole buffer (whitespace
 * around it allowed), with a depth limit.  NULL on any error. */
static struct json_object *parse_one(const char *line, size_t len, size_t max_len, char *msg,
				     size_t msg_len, bool *is_null)
{
	struct json_tokener *tok;
	struct json_object *obj;
	size_t i, used;

	if (len > max_len) {
		snprintf(msg, msg_len, "line longer than %zu bytes", max_len);
		return NULL;
	}
	if (memchr(line, '\0', len)) {
		snprintf(msg, msg_len, "NUL byte in line");
		return NULL;
	}
	tok = json_tokener_new_ex(VMM_CTL_MAX_DEPTH);
	if (!tok) {
		snprintf(msg, msg_len, "out of memory");
		return NULL;
	}
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	obj = json_tokener_parse_ex(tok, line, (int)len);
	/* A bare scalar ("null", "42") is complete only at the end of input:
	 * a NUL byte tells json-c the input ended. */
	if (!obj && json_tokener_get_error(tok) == json_tokener_continue)
		obj = json_tokener_parse_ex(tok, "", 1);
	if (!obj) {
		enum json_tokener_error jerr = json_tokener_get_error(tok);

		/* json-c represents a parsed JSON null as NULL. */
		*is_null = jerr == json_tokener_success;

		snprintf(msg, msg_len, "%s",
			 jerr == json_tokener_continue ? "incomplete JSON" : json_tokener_error_desc(jerr));
		json_tokener_free(tok);
		return NULL;
	}
	used = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);
	for (i = used; i < len; i++) {
		if (line[i] != ' ' && line[i] != '\t' && line[i] != '\r') {
			snprintf(msg, msg_len, "trailing data after the JSON object");
			json_object_put(obj);
			return NULL;
		}
	}
	return obj;
}

static bool id_ok(struct json_object *id)
{
	switch (json_object_get_type(id)) {
	case json_type_int:
		return true;
	case json_type_string:
		return (size_t)json_object_get_string_len(id) <= VMM_CTL_MAX_ID_BYTES;
	default:
		return false;
	}
}

/* CLIENT: everything in line is hostile. */
enum vmm_ctl_err vmm_ctl_parse_request(const char *line, size_t len, vmm_ctl_known_fn known,
				       void *known_ctx, struct vmm_ctl_request *req, char *msg,
				       size_t msg_len)
{
	struct json_object *obj, *v;
	enum vmm_ctl_err err = VMM_CTL_OK;
	const char *name;
	bool is_null = false;
	size_t name_len;

	memset(req, 0, sizeof(*req));
	if (msg_len)
		msg[0] = '\0';
	if (len > VMM_CTL_MAX_LINE_BYTES) {
		snprintf(msg, msg_len, "line longer than %u bytes", VMM_CTL_MAX_LINE_BYTES);
		return VMM_CTL_ERR_LINE_TOO_LONG;
	}
	obj = parse_one(line, len, VMM_CTL_MAX_LINE_BYTES, msg, msg_len, &is_null);
	if (!obj && is_null) {
		snprintf(msg, msg_len, "a request is a JSON object");
		return VMM_CTL_ERR_INVALID;
	}
	if (!obj)
		return VMM_CTL_ERR_PARSE;
	if (!json_object_is_type(obj, json_type_object)) {
		snprintf(msg, msg_len, "a request is a JSON object");
		err = VMM_CTL_ERR_INVALID;
		goto out;
	}
	if (json_object_object_get_ex(obj, "id", &v) && v) {
		if (!id_ok(v)) {
			snprintf(msg, msg_len, "\"id\" must be an integer or a string of at most %u bytes",
				 VMM_CTL_MAX_ID_BYTES);
			err = VMM_CTL_ERR_INVALID;
			goto out;
		}
		req->id = json_object_get(v);
	}
	if (json_object_object_get_ex(obj, "version", &v)) {
		if (!json_object_is_type(v, json_type_int) ||
		    json_object_get_int64(v) != VMM_CTL_PROTOCOL_VERSION) {
			snprintf(msg, msg_len, "this server speaks protocol version %d",
				 VMM_CTL_PROTOCOL_VERSION);
			err = VMM_CTL_ERR_VERSION;
			goto out;
		}
	}
	if (!json_object_object_get_ex(obj, "cmd", &v) || !json_object_is_type(v, json_type_string)) {
		snprintf(msg, msg_len, "\"cmd\" (a string) is required");
		err = VMM_CTL_ERR_INVALID;
		goto out;
	}
	name = json_object_get_string(v);
	name_len = (size_t)json_object_get_string_len(v);
	if (name_len > VMM_CTL_MAX_CMD_BYTES || strlen(name) != name_len ||
	    (known && !known(known_ctx, name))) {
		snprintf(msg, msg_len, "unknown command \"%.40s\"", name);
		err = VMM_CTL_ERR_UNKNOWN_CMD;
		goto out;
	}
	memcpy(req->cmd, name, name_len + 1);
	if (json_object_object_get_ex(obj, "args", &v) && v) {
		if (!json_object_is_type(v, json_type_object)) {
			snprintf(msg, msg_len, "\"args\" must be an object");
			err = VMM_CTL_ERR_INVALID;
			goto out;
		}
		req->args = json_object_get(v);
	}
out:
	json_object_put(obj);
	if (err != VMM_CTL_OK) {
		json_object_put(req->args);
		req->args = NULL;
	}
	return err;
}

void vmm_ctl_request_release(struct vmm_ctl_request *req)
{
	if (!req)
		return;
	json_object_put(req->id);
	json_object_put(req->args);
	req->id = req->args = NULL;
}

static char *to_line(struct json_object *obj)
{
	const char *s = json_object_to_json_string_ext(obj, JSON_C_TO_STRING_PLAIN |
							    JSON_C_TO_STRING_NOSLASHESCAPE);
	char *line = NULL;

	if (s && asprintf(&line, "%s\n", s) < 0)
		line = NULL;
	json_object_put(obj);
	return line;
}

char *vmm_ctl_format_ok(struct json_object *id, struct json_object *result)
{
	struct json_object *obj = json_object_new_object();

	if (!obj) {
		json_object_put(result);
		return NULL;
	}
	json_object_object_add(obj, "id", json_object_get(id));
	json_object_object_add(obj, "ok", json_object_new_boolean(1));
	json_object_object_add(obj, "result", result ? result : json_object_new_object());
	return to_line(obj);
}

char *vmm_ctl_format_error(struct json_object *id, enum vmm_ctl_err err, const char *msg)
{
	struct json_object *obj = json_object_new_object(), *e = json_object_new_object();

	if (!obj || !e) {
		json_object_put(obj);
		json_object_put(e);
		return NULL;
	}
	json_object_object_add(e, "code", json_object_new_string(vmm_ctl_err_code(err)));
	json_object_object_add(e, "message", json_object_new_string(msg ? msg : ""));
	json_object_object_add(obj, "id", json_object_get(id));
	json_object_object_add(obj, "ok", json_object_new_boolean(0));
	json_object_object_add(obj, "error", e);
	return to_line(obj);
}

enum vmm_ctl_err vmm_ctl_result(struct json_object *r, struct json_object **result, char *msg,
				size_t msg_len)
{
	if (!r) {
		snprintf(msg, msg_len, "out of memory");
		return VMM_CTL_ERR_INTERNAL;
	}
	*result = r;
	return VMM_CTL_OK;
}

char *vmm_ctl_format_request(long long id, const char *cmd, struct json_object *args)
{
	struct json_object *obj = json_object_new_object();

	if (!obj) {
		json_object_put(args);
		return NULL;
	}
	json_object_object_add(obj, "id", json_object_new_int64(id));
	json_object_object_add(obj, "version", json_object_new_int(VMM_CTL_PROTOCOL_VERSION));
	json_object_object_add(obj, "cmd", json_object_new_string(cmd));
	if (args)
		json_object_object_add(obj, "args", args);
	return to_line(obj);
}

int vmm_ctl_parse_response(const char *line, size_t len, struct vmm_ctl_response *resp)
{
	struct json_object *obj, *v, *e;
	char msg[128];
	bool is_null = false;

	memset(resp, 0, sizeof(*resp));
	obj = parse_one(line, len, VMM_CTL_MAX_REPLY_BYTES, msg, sizeof(msg), &is_null);
	if (!obj)
		return -EPROTO;
	if (!json_object_is_type(obj, json_type_object) ||
	    !json_object_object_get_ex(obj, "ok", &v) || !json_object_is_type(v, json_type_boolean))
		goto bad;
	resp->ok = json_object_get_boolean(v);
	if (json_object_object_get_ex(obj, "id", &v) && v)
		resp->id = json_object_get(v);
	if (resp->ok) {
		if (!json_object_object_get_ex(obj, "result", &v) ||
		    !json_object_is_type(v, json_type_object))
			goto bad;
		resp->result = json_object_get(v);
	} else {
		if (!json_object_object_get_ex(obj, "error", &e) ||
		    !json_object_is_type(e, json_type_object))
			goto bad;
		if (json_object_object_get_ex(e, "code", &v) && json_object_is_type(v, json_type_string))
			snprintf(resp->error_code, sizeof(resp->error_code), "%s",
				 json_object_get_string(v));
		if (json_object_object_get_ex(e, "message", &v) &&
		    json_object_is_type(v, json_type_string))
			snprintf(resp->error_message, sizeof(resp->error_message), "%s",
				 json_object_get_string(v));
	}
	json_object_put(obj);
	return 0;
bad:
	json_object_put(obj);
	vmm_ctl_response_release(resp);
	return -EPROTO;
}

void vmm_ctl_response_release(struct vmm_ctl_response *resp)
{
	if (!resp)
		return;
	json_object_put(resp->id);
	json_object_put(resp->result);
	resp->id = resp->result = NULL;
}

int vmm_ctl_arg_uint(struct json_object *args, const char *key, uint64_t *out, bool *present)
{
	struct json_object *v;
	int64_t n;

	*present = args && json_object_object_get_ex(args, key, &v);
	if (!*present)
		return 0;
	if (!json_object_is_type(v, json_type_int))
		return -EINVAL;
	errno = 0;
	n = json_object_get_int64(v);
	if (n < 0 || errno)
		return -EINVAL;
	*out = (uint64_t)n;
	return 0;
}
