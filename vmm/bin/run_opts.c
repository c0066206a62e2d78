/*
 * vmm/bin/run_opts.c — the memory options of `ebb run`, see run_opts.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host-reclaim/region.h"
#include "vmm/bin/run_opts.h"

static int onoff(const char *val, bool *out)
{
	if (val && !strcmp(val, "on"))
		*out = true;
	else if (val && !strcmp(val, "off"))
		*out = false;
	else
		return -EINVAL;
	return 0;
}

/* An option that only means something under the engine asks for it. */
static void ask_engine(struct vmm_memory_opts *o)
{
	o->enable = true;
	o->off = false;
}

int ebb_memory_opt(struct vmm_memory_opts *o, const char *name, const char *val, char *err,
		   size_t err_len)
{
	bool b;

	if (!strcmp(name, "mem-high") || !strcmp(name, "mem-max")) {
		struct vmm_mem_size *s = name[4] == 'h' ? &o->high : &o->max;

		if (vmm_mem_size_parse(val, s)) {
			snprintf(err, err_len, "bad --%s '%s': give a size (400M, 1G) or a percentage "
				 "of --mem (30%%)", name, val ? val : "");
			return -EINVAL;
		}
		ask_engine(o);
		return 0;
	}
	if (!strcmp(name, "swappiness")) {
		char *end;
		long v;

		errno = 0;
		v = val ? strtol(val, &end, 10) : -1;
		if (!val || errno || *end || end == val || v < 0 || v > 200) {
			snprintf(err, err_len, "bad --swappiness '%s': give 0 to 200", val ? val : "");
			return -EINVAL;
		}
		o->swappiness = (int)v;
		ask_engine(o);
		return 0;
	}
	if (!strcmp(name, "fault-around")) {
		char *end;
		long v;

		errno = 0;
		v = val ? strtol(val, &end, 10) : -1;
		if (!val || errno || *end || end == val || v < 1 || v > EBB_FAULT_AROUND_MAX ||
		    (v & (v - 1))) {
			snprintf(err, err_len, "bad --fault-around '%s': give a power of two from 1 "
				 "(off) to %u pages", val ? val : "", EBB_FAULT_AROUND_MAX);
			return -EINVAL;
		}
		o->fault_around_pages = (uint32_t)v;
		ask_engine(o);
		return 0;
	}
	if (!strcmp(name, "swap-dir")) {
		if (!val || !*val) {
			snprintf(err, err_len, "--swap-dir needs a directory");
			return -EINVAL;
		}
		o->swap_dir = val;
		ask_engine(o);
		return 0;
	}
	if (!strcmp(name, "swap-compress")) {
		if (val && !strcmp(val, "lz4"))
			o->compress = VMM_SWAP_LZ4;
		else if (val && !strcmp(val, "zstd"))
			o->compress = VMM_SWAP_ZSTD;
		else if (val && !strcmp(val, "none"))
			o->compress = VMM_SWAP_NONE;
		else {
			snprintf(err, err_len, "bad --swap-compress '%s': give lz4, zstd or none",
				 val ? val : "");
			return -EINVAL;
		}
		ask_engine(o);
		return 0;
	}
	if (!strcmp(name, "swap-encrypt")) {
		if (onoff(val, &b)) {
			snprintf(err, err_len, "bad --swap-encrypt '%s': give on or off", val ? val : "");
			return -EINVAL;
		}
		o->no_swap_encrypt = !b;
		ask_engine(o);
		return 0;
	}
	if (!strcmp(name, "ksm") || !strcmp(name, "reclaim") || !strcmp(name, "dirty-log")) {
		if (onoff(val, &b)) {
			snprintf(err, err_len, "bad --%s '%s': give on or off", name, val ? val : "");
			return -EINVAL;
		}
		if (name[0] == 'r') {
			o->enable = b;
			o->off = !b;
			return 0;
		}
		if (name[0] == 'k')
			o->ksm = b;
		else
			o->no_dirty_log = !b;
		ask_engine(o);
		return 0;
	}
	return -ENOENT;
}
