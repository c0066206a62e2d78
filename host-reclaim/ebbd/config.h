/*
 * host-reclaim/ebbd/config.h — ebbd's configuration file, /etc/ebb/ebbd.conf
 * (INI, read with Debian's libinih).  Every key is checked where it is read:
 * an unknown section or key, a key given twice, a bad size, a value out of
 * range, or a line that is not INI is an error naming the file, the line
 * and what is allowed.  The keys: docs/operations.md, "Configuration".
 *
 *   [pool]     budget, wmark_min, wmark_low, wmark_high, policy, vms_only,
 *              tick_ms, lease_ms, ksm, rundir
 *   [metrics]  listen
 *   [vm]       min, low, weight, ksm_allowed, opt_out   (defaults for every VM)
 *   [vm NAME]  the same keys, for the VM called NAME
 *
 * The same struct carries the command line's choices (the has_ flags say
 * what was given), so that ebbd_config_merge() lets the command line win.
 * Pure: no globals; the parser's state is on the caller's stack.
 */
#ifndef EBB_EBBD_CONFIG_H
#define EBB_EBBD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "host-reclaim/ebbd/ebbd.h"

#define EBBD_CONFIG_PATH "/etc/ebb/ebbd.conf"
#define EBBD_CONFIG_MAX_VMS 1024u

struct ebbd_file_cfg {
	bool has_budget, has_wmark_min, has_wmark_low, has_wmark_high, has_policy,
	     has_vms_only, has_tick_ms, has_lease_ms, has_ksm, has_rundir, has_metrics;
	uint64_t budget_bytes;          /* or ... */
	uint32_t budget_percent;        /* ... N% of MemTotal */
	uint64_t wmark_min_bytes, wmark_low_bytes, wmark_high_bytes;
	enum ebb_bal_policy policy;
	bool vms_only;
	uint32_t tick_ms, lease_ms;
	bool ksm;                       /* may ebbd steer KSM */
	char rundir[256];
	char metrics[128];              /* "ADDR:PORT" or "off" */
	struct ebbd_vm_settings vm_default;
	struct ebbd_vm_rule *vms;       /* [vm NAME] sections */
	size_t nr_vms;
};

/* Reads @path.  0, or -errno / -EINVAL with "PATH:LINE: what is wrong"
 * in err.  @out is released on error. */
int ebbd_config_load(const char *path, struct ebbd_file_cfg *out, char *err, size_t err_len);
/* The same from a string (tests); @name stands for the file in messages. */
int ebbd_config_load_string(const char *name, const char *text, struct ebbd_file_cfg *out,
			    char *err, size_t err_len);
void ebbd_config_release(struct ebbd_file_cfg *c);

/* One value as the file and the command line write it (shared with the
 * command line's parser): 0 or -EINVAL with what is allowed in err. */
int ebbd_config_set(struct ebbd_file_cfg *c, const char *section, const char *key,
		    const char *value, char *err, size_t err_len);

/* @top's given values over @base's: the result in @out (vms: @base's list
 * borrowed, not copied). */
void ebbd_config_merge(const struct ebbd_file_cfg *base, const struct ebbd_file_cfg *top,
		       struct ebbd_file_cfg *out);

/* Fills the daemon's configuration from a merged one (pointers into @c). */
void ebbd_config_to_cfg(const struct ebbd_file_cfg *c, struct ebbd_cfg *cfg);

#endif
