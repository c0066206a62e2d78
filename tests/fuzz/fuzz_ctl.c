/*
 * tests/fuzz/fuzz_ctl.c — libFuzzer target for the control protocol parser
 * (client/ctl.c): every byte string a client can send as one line, through the
 * request parser (and, for accepted requests, the response formatter, whose
 * output must parse back with the same id), and through the client's
 * response parser.  Built with ASan + UBSan by `make fuzz`.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "client/ctl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct vmm_ctl_request req;
	struct vmm_ctl_response resp;
	enum vmm_ctl_err err;
	char msg[256];
	char *line;

	err = vmm_ctl_parse_request((const char *)data, size, NULL, NULL, &req, msg, sizeof(msg));
	if (memchr(msg, '\0', sizeof(msg)) == NULL)
		abort();  /* the message must always be terminated */
	if (err == VMM_CTL_OK) {
		line = vmm_ctl_format_ok(req.id, NULL);
	} else {
		if (req.args)
			abort();  /* no args survive an error */
		line = vmm_ctl_format_error(req.id, err, msg);
	}
	if (line) {
		size_t len = strlen(line);

		/* A response is exactly one line and parses back, id intact. */
		if (len == 0 || line[len - 1] != '\n' || memchr(line, '\n', len - 1))
			abort();
		if (vmm_ctl_parse_response(line, len - 1, &resp) != 0)
			abort();
		if (resp.ok != (err == VMM_CTL_OK))
			abort();
		if ((resp.id == NULL) != (req.id == NULL))
			abort();
		if (req.id && strcmp(json_object_to_json_string(resp.id),
				     json_object_to_json_string(req.id)) != 0)
			abort();
		vmm_ctl_response_release(&resp);
		free(line);
	}
	vmm_ctl_request_release(&req);

	/* The client side parses server output; a hostile server is fuzzed too. */
	if (vmm_ctl_parse_response((const char *)data, size, &resp) == 0)
		vmm_ctl_response_release(&resp);
	return 0;
}
