/*
 * client/peer.h — who may talk to a VM's sockets.  The control socket
 * (NAME.sock) and the agent socket (NAME.agent) live in the runtime
 * directory, which is 0700 and owned by the VM's user (rundir.c refuses
 * anything else); this is the second check, at accept time, on the kernel's
 * word about the peer (SO_PEERCRED): the same effective uid as ours, or
 * root.  Clients apply the same rule to the server they reach.
 */
#ifndef EBB_VMM_PEER_H
#define EBB_VMM_PEER_H

#include <stdbool.h>
#include <sys/types.h>

/* 0 when the peer of the connected Unix socket fd is our euid or root,
 * -EPERM when it is someone else, -errno when the kernel cannot tell.
 * *uid_out (optional) gets the peer's uid when known. */
int vmm_peer_check(int fd, uid_t *uid_out);

/* vmm_peer_check(fd, NULL) == 0. */
bool vmm_peer_allowed(int fd);

#endif
