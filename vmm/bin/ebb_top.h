/*
 * vmm/bin/ebb_top.h — `ebb top`: the host's live view (docs/operations.md).
 */
#ifndef EBB_BIN_EBB_TOP_H
#define EBB_BIN_EBB_TOP_H

/* argv[0] is "top".  Returns the exit status. */
int ebb_top_main(int argc, char **argv);

#endif
