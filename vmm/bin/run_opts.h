/*
 * vmm/bin/run_opts.h — the memory options of `ebb run` (--reclaim, --mem-high,
 * --mem-max, --swappiness, --swap-dir, --swap-compress, --swap-encrypt,
 * --ksm, --dirty-log) into the struct vmm_memory_opts the VMM library takes:
 * the option names are the program's, the library only sees their values.
 */
#ifndef EBB_BIN_RUN_OPTS_H
#define EBB_BIN_RUN_OPTS_H

#include <stddef.h>

#include "vmm/memory.h"

/*
 * CLIENT: one `ebb run` option (name without the dashes: "mem-high",
 * "mem-max", "swappiness", "swap-dir", "swap-compress", "swap-encrypt", "ksm",
 * "reclaim", "dirty-log").  Any of them except "reclaim off" asks for the
 * engine (enable: failing to set it up is then an error).  Returns 0,
 * -ENOENT for an unknown name, -EINVAL with a message in err.
 */
int ebb_memory_opt(struct vmm_memory_opts *o, const char *name, const char *val, char *err,
		   size_t err_len);

#endif
