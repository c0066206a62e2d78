/*
 * client/peer.c — the SO_PEERCRED rule of peer.h.
 */
#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include "client/peer.h"

int vmm_peer_check(int fd, uid_t *uid_out)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return -errno;
	if (len != sizeof(cred))
		return -EPROTO;
	if (uid_out)
		*uid_out = cred.uid;
	if (cred.uid != geteuid() && cred.uid != 0)
		return -EPERM;
	return 0;
}

bool vmm_peer_allowed(int fd)
{
	return vmm_peer_check(fd, NULL) == 0;
}
