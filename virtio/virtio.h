/*
 * virtio/virtio.h — what every part of ebb's virtio library shares: the
 * guest-memory accessor through which all guest memory is reached, the log
 * callback with its rate limiter, the injected clock, and the per-device
 * error counters that tests and the VMM read.
 *
 * The library has no KVM dependency and no global mutable state: a VMM (or a
 * unit test with a fake guest RAM in ordinary memory) hands each device a
 * `struct virtio_host` describing how to reach guest memory, how to log and
 * how to raise interrupts.  Threading: every entry point of a device is
 * called from one thread (the VMM's event thread); devices take no locks.
 * The only state read from other threads is the balloon bitmap, whose words
 * are updated atomically (see virtio/balloon.h).
 */
#ifndef EBB_VIRTIO_VIRTIO_H
#define EBB_VIRTIO_VIRTIO_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/log.h"
#include "base/page.h"

/* A guest-physical address and a 4 KiB guest page frame number. */
typedef uint64_t virtio_gpa_t;
typedef uint64_t virtio_pfn_t;

/*
 * Everything a device needs from its host (the VMM, or a test).
 *
 * translate: return a host pointer to the guest-physical range
 *   [gpa, gpa + len_bytes), or NULL unless every byte of it is guest RAM in
 *   one contiguous host mapping (ranges touching the PCI hole, MMIO, beyond
 *   the end of RAM or overflowing must fail).  len_bytes is >= 1.  A pointer
 *   returned must stay valid until the device is destroyed (guest RAM is one
 *   long-lived mapping; MADV_DONTNEED on it is fine).
 * log: optional; receives one formatted line without a trailing newline.
 *   Device logs about guest behaviour are rate limited (see below).
 * now_ns: optional monotonic clock; CLOCK_MONOTONIC when NULL.  Drives the
 *   log rate limiter only (the balloon's stats period uses the `now_ns`
 *   passed to its tick).
 * raise_msi: deliver MSI-X `vector` of this function, whose message is
 *   (addr, data) as programmed by the guest in the MSI-X table.  The VMM
 *   maps it to KVM_SIGNAL_MSI or to an irqfd whose route it keeps in sync.
 * set_intx: optional; drive the INTx line (level) when the guest has not
 *   enabled MSI-X.  Lowered again when the guest reads the ISR.
 * ram_ok: optional; may a device give [gpa, gpa + len_bytes) back to the
 *   host (balloon inflate, free page reporting)?  True only for RAM the
 *   guest was told is RAM (the e820 map): not firmware tables or reserved
 *   ranges that translate() can still reach.  NULL: translate decides.
 */
struct virtio_host {
	void *(*translate)(void *opaque, virtio_gpa_t gpa, uint64_t len_bytes);
	ebb_log_fn log;
	uint64_t (*now_ns)(void *opaque);
	void (*raise_msi)(void *opaque, uint16_t vector, uint64_t addr, uint32_t data);
	void (*set_intx)(void *opaque, bool level);
	void (*bar_changed)(void *opaque, int bar, virtio_gpa_t gpa, uint64_t size_bytes,
			    bool decoding);
	bool (*ram_ok)(void *opaque, virtio_gpa_t gpa, uint64_t len_bytes);
	void *opaque;
};

/*
 * Counters of hostile or broken guest behaviour, one set per device and
 * shared by its queues.  They are API: the VMM exports them, tests assert on
 * them.  Every increment is also logged (rate limited).
 */
struct virtio_dev_errors {
	uint64_t nr_bad_desc_index;   /* head or next index >= queue size */
	uint64_t nr_chain_loop;       /* chain longer than its table: a loop */
	uint64_t nr_bad_indirect;     /* indirect table of bad length, or INDIRECT|NEXT */
	uint64_t nr_nested_indirect;  /* INDIRECT inside an indirect table */
	uint64_t nr_bad_addr;         /* buffer or ring outside guest RAM */
	uint64_t nr_avail_jump;       /* avail idx ran ahead more than queue size */
	uint64_t nr_chain_too_long;   /* more segments than the device accepts */
	uint64_t nr_bad_order;        /* device-readable after device-writable */
	uint64_t nr_bad_queue_setup;  /* bad size / alignment at queue enable */
	uint64_t nr_bad_register;     /* bad access to a transport register */
	uint64_t nr_bad_request;      /* device-level malformed request */
	uint64_t nr_needs_reset;      /* times the device entered NEEDS_RESET */
	uint64_t nr_logs_suppressed;  /* log lines dropped by the rate limiter */
};

/*
 * Guest-triggered lines go through a struct ebb_ratelimit (base/log.h), one
 * per device: at most EBB_RATELIMIT_BURST lines per VIRTIO_LOG_INTERVAL_NS
 * (a short window: every dropped line is counted in nr_logs_suppressed).
 */
#define VIRTIO_LOG_INTERVAL_NS 1000000000ull

uint64_t virtio_host_now_ns(const struct virtio_host *host);

/* Log unconditionally (host events, not guest-triggered). */
void virtio_log(const struct virtio_host *host, enum ebb_log_level level,
		const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/*
 * Log a line about guest misbehaviour through `rl`; when over the limit the
 * line is dropped and *nr_suppressed is incremented.
 */
void virtio_log_ratelimited(const struct virtio_host *host, struct ebb_ratelimit *rl,
			    uint64_t *nr_suppressed, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#endif /* EBB_VIRTIO_VIRTIO_H */
