/*
 * vmm/console.c — console line assembly and classification, see console.h.
 */
#include <string.h>

#include "vmm/console.h"

bool vmm_console_feed(struct vmm_console_line *l, uint8_t byte)
{
	if (l->len >= VMM_CONSOLE_LINE_BYTES - 1)
		l->len = 0;  /* the previous (cut) line was consumed */
	if (byte == '\r')
		return false;
	if (byte == '\n') {
		l->buf[l->len] = '\0';
		l->len = VMM_CONSOLE_LINE_BYTES - 1;  /* next byte starts a new line */
		return true;
	}
	l->buf[l->len++] = (char)byte;
	if (l->len == VMM_CONSOLE_LINE_BYTES - 1) {
		l->buf[l->len] = '\0';
		return true;
	}
	return false;
}

enum vmm_console_event vmm_console_classify(const char *line, const char *ready_marker)
{
	if (strstr(line, "Kernel panic - not syncing"))
		return VMM_CONSOLE_PANIC;
	if (strstr(line, "reboot: System halted") || strstr(line, "reboot: Power down"))
		return VMM_CONSOLE_HALT;
	if (ready_marker && *ready_marker && strstr(line, ready_marker))
		return VMM_CONSOLE_READY;
	return VMM_CONSOLE_NONE;
}
