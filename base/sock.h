/*
 * base/sock.h — unix stream sockets by path: connecting (the control client,
 * the agent client and the guest agent) and listening with a socket file
 * only its owner may open (the control server and the VMM's agent bridge).
 * Header only, like the rest of base/, so the static guest agent links no
 * second library.
 */
#ifndef EBB_BASE_SOCK_H
#define EBB_BASE_SOCK_H

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
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

/* A new SOCK_STREAM unix socket for @path, its address in @sa; -errno. */
static inline int ebb_sock_open(struct sockaddr_un *sa, const char *path, int flags)
{
	int fd, ret = ebb_sock_addr(sa, path);

	if (ret)
		return ret;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | flags, 0);
	return fd < 0 ? -errno : fd;
}

/*
 * Connect a new SOCK_STREAM socket to the unix socket at @path; @flags are
 * added to its type (SOCK_CLOEXEC is always set; SOCK_NONBLOCK on request).
 * Returns the descriptor, or -errno.
 */
static inline int ebb_sock_connect(const char *path, int flags)
{
	struct sockaddr_un sa;
	int fd = ebb_sock_open(&sa, path, flags), ret;

	if (fd < 0)
		return fd;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		ret = -errno;
		close(fd);
		return ret;
	}
	return fd;
}

/*
 * Listen on a new SOCK_STREAM socket bound to @path (@flags as for
 * ebb_sock_connect()), replacing any file there: the caller holds the
 * lock of the name, so one there is stale.  The socket file is 0600 from
 * the start (Linux takes a unix socket file's mode from the socket's inode,
 * which fchmod() sets before bind(); a chmod() after makes sure), so no
 * process-wide umask is touched.  Returns the descriptor, or -errno with
 * nothing left at @path.
 */
static inline int ebb_sock_listen(const char *path, int flags, int backlog)
{
	struct sockaddr_un sa;
	int fd = ebb_sock_open(&sa, path, flags), ret;

	if (fd < 0)
		return fd;
	unlink(path);
	if ((fchmod(fd, 0600) < 0 && errno != EINVAL) ||
	    bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		ret = -errno;
		close(fd);
		return ret;
	}
	if (chmod(path, 0600) < 0 || listen(fd, backlog) < 0) {
		ret = -errno;
		unlink(path);
		close(fd);
		return ret;
	}
	return fd;
}

#endif /* EBB_BASE_SOCK_H */
