/*
 * client/size.h — parsing and printing memory sizes as users write them on the
 * command line and in control requests: "512M", "2G", "1536MiB", "4096K",
 * "1T", "65536B".  Units are binary (K = KiB = 1024 bytes).  A bare number
 * takes the caller's default unit (the CLI uses MiB for --mem, like kvmtool).
 */
#ifndef EBB_VMM_SIZE_H
#define EBB_VMM_SIZE_H

#include <stddef.h>
#include <stdint.h>

/*
 * CLIENT: str comes from a user.  Accepts digits, then optionally one of
 * B, K, M, G, T (any case), optionally followed by "iB" or "B" ("KB", "KiB",
 * "MiB" ...).  No sign, no spaces, no fractions, no overflow.
 * Returns 0 and *out_bytes, or -EINVAL (malformed), -ERANGE (overflow).
 */
int vmm_parse_size(const char *str, uint64_t default_unit_bytes, uint64_t *out_bytes);

/* "512 MiB", "1.5 GiB", "4096 bytes"; returns buf. */
char *vmm_format_size(uint64_t bytes, char *buf, size_t buf_len);

#endif
