/*
 * vmm/console.h — reading the guest's console output line by line for the
 * few events the VMM must learn from it: the first sighting of a "ready"
 * marker (timed for ebb stat), a kernel panic ("Kernel panic - not
 * syncing"), and the kernel halting or powering down ("reboot: System
 * halted", "reboot: Power down").  Without ACPI a guest has no other way to
 * say it powered off: `poweroff -f` ends in a halt that never exits to the
 * VMM.  The guest controls its console, so these lines are only trusted to
 * end or time the guest itself.  Pure functions; the caller serializes.
 */
#ifndef EBB_VMM_CONSOLE_H
#define EBB_VMM_CONSOLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VMM_CONSOLE_LINE_BYTES 256

struct vmm_console_line {
	char buf[VMM_CONSOLE_LINE_BYTES];  /* NUL-terminated when complete */
	size_t len;
};

/* GUEST: one output byte.  Returns true when buf holds a complete line
 * (newline seen, or VMM_CONSOLE_LINE_BYTES - 1 bytes: long lines are cut);
 * '\r' is dropped. */
bool vmm_console_feed(struct vmm_console_line *l, uint8_t byte);

/* Console text is written by whoever holds the console, guest users
 * included: PANIC and HALT are informative only (the panic line is quoted in
 * the exit message of a pvpanic panic); power-off and panic themselves come
 * from ACPI and pvpanic (acpi.h). */
enum vmm_console_event {
	VMM_CONSOLE_NONE,
	VMM_CONSOLE_READY,    /* the line contains the ready marker */
	VMM_CONSOLE_PANIC,
	VMM_CONSOLE_HALT,     /* halted or powered down */
};

/* ready_marker may be NULL or empty (never matches). */
enum vmm_console_event vmm_console_classify(const char *line, const char *ready_marker);

#endif
