/*
 * host-reclaim/ebbd/metrics.h — ebbd's figures in the Prometheus text
 * exposition format (version 0.0.4): a small writer (HELP/TYPE once per
 * family, label values escaped) and the renderer of one snapshot of the
 * pool, the daemon's counters and every VM.  Pure formatting: no I/O, no
 * clock, no locks (the daemon renders on its event thread and hands the
 * text to the HTTP server, host-reclaim/bin/ebbd_http.c).
 *
 * Every metric and its meaning: docs/operations.md.  Units are in the names
 * (_bytes, _seconds, _total); VM memory is also published under the names
 * of the libvirt exporter (libvirt_domain_memory_stats_*) where the meaning
 * is the same.
 */
#ifndef EBB_EBBD_METRICS_H
#define EBB_EBBD_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "host-reclaim/balancer.h"
#include "host-reclaim/ebbd/ebbd.h"

#define EBBD_METRICS_MAX_BYTES (8u << 20)  /* a snapshot never grows past this */

/* A growing text buffer; a failed allocation sets oom and drops the rest. */
struct ebbd_metrics_buf {
	char *text;
	size_t len, cap;
	bool oom;
};

void ebbd_metrics_buf_release(struct ebbd_metrics_buf *b);
/* "# HELP name help\n# TYPE name type\n" (type: gauge, counter). */
void ebbd_metrics_family(struct ebbd_metrics_buf *b, const char *name, const char *type,
			 const char *help);
/* One sample: name{k1="v1",k2="v2"} value.  @labels is NULL or a
 * NULL-terminated list of key, value pairs; values are escaped. */
void ebbd_metrics_sample(struct ebbd_metrics_buf *b, const char *name,
			 const char *const *labels, double value);

/* One VM in a snapshot. */
struct ebbd_metrics_vm {
	const char *name;
	bool observed;                         /* its last `stats` call succeeded */
	const struct ebb_bal_vm_obs *obs;
	bool have_state;                       /* st is the balancer's view */
	struct ebb_bal_vm_state st;
	bool have_last;                        /* the last action ebbd applied to it */
	enum ebb_bal_action_kind last_kind;
	enum ebb_bal_reason last_reason;
	uint64_t last_unix_ms;
};

struct ebbd_metrics_in {
	const struct ebb_bal_pool_state *pool;
	const struct ebbd_counters *c;
	/* decisions[kind][reason]: actions the balancer decided, by kind and why */
	const uint64_t (*decisions)[EBB_BAL_NR_REASONS];
	const struct ebbd_metrics_vm *vms;
	size_t nr_vms;
	uint64_t mem_total_bytes, mem_available_bytes;
	uint64_t ksm_pages_sharing;
	uint64_t page_bytes;
	uint64_t config_reloads, config_reload_failures;
};

#define EBBD_METRICS_DEFAULT_ADDR "127.0.0.1:9848"

/*
 * CLIENT: parses the listen address of the metrics server: "IPv4:PORT",
 * "[IPv6]:PORT" or "off" (*off set, ss untouched).  Port 0 lets the kernel
 * choose.  Numeric addresses only (no name lookups).  0 or -EINVAL.
 */
struct sockaddr_storage;
int ebbd_metrics_parse_addr(const char *s, struct sockaddr_storage *ss, unsigned *ss_len,
			    bool *off);

/* Renders the snapshot into @out (appended).  0 or -ENOMEM. */
int ebbd_metrics_render(const struct ebbd_metrics_in *in, struct ebbd_metrics_buf *out);

#endif
