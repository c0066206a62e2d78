/*
 * vmm/legacy.h — the PC legacy devices a Linux guest without ACPI needs
 * besides the UART: the i8042 keyboard controller, only as far as its reset
 * line (reboot=k writes 0xfe to port 0x64) and the probe Linux's i8042
 * driver runs (self test, CTR read/write), and the CMOS real-time clock
 * (ports 0x70/0x71: the time in BCD, 24 h, UIP never set; no alarms or
 * periodic interrupts; bytes 0x0e-0x7f are plain RAM).
 *
 * Locking: each device has its own mutex; the reset callback is called
 * without it.
 */
#ifndef EBB_VMM_LEGACY_H
#define EBB_VMM_LEGACY_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#define VMM_I8042_DATA_PORT 0x60
#define VMM_I8042_CMD_PORT 0x64
#define VMM_I8042_NR_PORTS 5          /* 0x60-0x64; 0x61-0x63 read as 0xff */
#define VMM_CMOS_PORT 0x70
#define VMM_CMOS_NR_PORTS 2

struct vmm_i8042;
struct vmm_cmos;

/* reset: the guest pulsed the CPU reset line. */
int vmm_i8042_create(void (*reset)(void *opaque), void *opaque, struct vmm_i8042 **out);
void vmm_i8042_destroy(struct vmm_i8042 *k);
/* GUEST: offset from 0x60 (0..4), any size (only 1 is meaningful). */
void vmm_i8042_io(struct vmm_i8042 *k, unsigned offset, uint8_t *data, unsigned size,
		  bool is_write);

/* now: optional clock (NULL: time()). */
int vmm_cmos_create(time_t (*now)(void *opaque), void *opaque, struct vmm_cmos **out);
void vmm_cmos_destroy(struct vmm_cmos *c);
/* GUEST: offset from 0x70 (0..1). */
void vmm_cmos_io(struct vmm_cmos *c, unsigned offset, uint8_t *data, unsigned size, bool is_write);

#endif
