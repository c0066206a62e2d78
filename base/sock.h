/*
 * base/sock.h — connecting to a unix stream socket by path, the one copy the
 * control client, the agent client and the guest agent share.  Header only,
 * like the rest of base/, so the static guest agent links no second library.
 */
#ifndef EBB_BASE_SOCK_H
#define EBB_BASE_SOCK_H

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/*
 * Fill @sa for @path: 0, or -ENAMETOOLONG when the path does not fit in
 * sun_path with its terminating NUL.
 */
static inline int ebb_sock_addr(struct sockaddr_un *sa, const char *path)
{
	size_t len = strlen(path);

	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (len >= sizeof(sa->sun_path))
		return -ENAMETOOLONG;
	memcpy(sa->sun_path, path, len + 1);
	return 0;
}

/*
 * Connect a new SOCK_STREAM socket to the unix socket at @path; @flags are
 * added to its type (SOCK_CLOEXEC is always set; SOCK_NONBLOCK on request).
 * Returns the descriptor, or -errno.
 */
static inline int ebb_sock_connect(const char *path, int flags)
{
	struct sockaddr_un sa;
	int fd, ret;

	ret = ebb_sock_addr(&sa, path);
	if (ret)
		return ret;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | flags, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		ret = -errno;
		close(fd);
		return ret;
	}
	return fd;
}

#endif /* EBB_BASE_SOCK_H */
