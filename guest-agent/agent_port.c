/*
 * agent_port.c - find the agent's virtio-serial port by name through sysfs and
 * create its device node when the guest has no udev (see agent_port.h).
 */
#include "guest-agent/agent_port.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

/* Read a small sysfs file, strip trailing newlines/spaces. */
static int read_small(const char *path, char *buf, size_t cap)
{
	ssize_t n;
	int fd;

	buf[0] = '\0';
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno ? -errno : -EIO;
	n = read(fd, buf, cap - 1);
	if (n < 0) {
		n = errno ? -errno : -EIO;
		close(fd);
		return (int)n;
	}
	close(fd);
	buf[n] = '\0';
	while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
		buf[--n] = '\0';
	return (int)n;
}

int agent_port_parse_dev(const char *s, unsigned *major, unsigned *minor)
{
	unsigned long a, b;
	char *end;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	a = strtoul(s, &end, 10);
	if (errno || *end != ':' || a > 0xfff)
		return -EINVAL;
	s = end + 1;
	if (*s < '0' || *s > '9')
		return -EINVAL;
	b = strtoul(s, &end, 10);
	if (errno || b > 0xfffff || (*end != '\0' && *end != '\n'))
		return -EINVAL;
	*major = (unsigned)a;
	*minor = (unsigned)b;
	return 0;
}

int agent_port_find(const char *sysfs_root, const char *dev_dir, const char *name,
		    char *path, size_t cap)
{
	char dir[512], buf[256], file[800];
	struct dirent *de;
	DIR *d;
	int rc = -ENOENT;

	if ((size_t)snprintf(dir, sizeof(dir), "%s/class/virtio-ports", sysfs_root) >= sizeof(dir))
		return -ENAMETOOLONG;
	d = opendir(dir);
	if (!d)
		return errno == ENOENT ? -ENOENT : -errno;
	while ((de = readdir(d))) {
		unsigned maj, min;
		struct stat st;

		if (de->d_name[0] == '.')
			continue;
		snprintf(file, sizeof(file), "%s/%s/name", dir, de->d_name);
		if (read_small(file, buf, sizeof(buf)) < 0 || strcmp(buf, name) != 0)
			continue;
		snprintf(file, sizeof(file), "%s/%s/dev", dir, de->d_name);
		if (read_small(file, buf, sizeof(buf)) < 0 ||
		    agent_port_parse_dev(buf, &maj, &min) != 0) {
			rc = -EINVAL;
			break;
		}
		if (strchr(de->d_name, '/') ||
		    (size_t)snprintf(path, cap, "%s/%s", dev_dir, de->d_name) >= cap) {
			rc = -ENAMETOOLONG;
			break;
		}
		if (stat(path, &st) == 0 && S_ISCHR(st.st_mode) &&
		    st.st_rdev == makedev(maj, min)) {
			rc = 0;
			break;
		}
		/* Missing, or something else is there: (re)make the node. */
		if (unlink(path) != 0 && errno != ENOENT) {
			rc = -errno;
			break;
		}
		rc = mknod(path, S_IFCHR | 0600, makedev(maj, min)) == 0 ? 0 : -errno;
		break;
	}
	closedir(d);
	return rc;
}
