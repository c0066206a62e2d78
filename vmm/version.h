/*
 * vmm/version.h — ebb's version string, shown by `ebb version` and the
 * control protocol's "version" command.
 */
#ifndef EBB_VMM_VERSION_H
#define EBB_VMM_VERSION_H

#define EBB_VERSION "0.1.0"

#endif
