/*
 * client/rundir.c — runtime directory, names, locks and the control client; see
 * rundir.h.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "base/sock.h"
#include "client/log.h"
#include "client/peer.h"
#include "client/rundir.h"

static int mkdir_p(const char *path, mode_t mode)
{
	char tmp[512];
	size_t i, len = strlen(path);

	if (len >= sizeof(tmp))
		return -ENAMETOOLONG;
	memcpy(tmp, path, len + 1);
	for (i = 1; i <= len; i++) {
		if (tmp[i] == '/' || tmp[i] == '\0') {
			char c = tmp[i];

			tmp[i] = '\0';
			if (mkdir(tmp, mode) < 0) {
				if (errno != EEXIST)
					return -errno;
			} else if (c == '\0' && chmod(tmp, mode) < 0) {
				return -errno;  /* ours, new: exactly mode, whatever the umask */
			}
			tmp[i] = c;
		}
	}
	return 0;
}

/*
 * The directory must be ours alone: a real directory (not a symlink), owned
 * by our euid, mode 0700.  Anything else is refused, never repaired: another
 * local user who could create /tmp/ebb-UID first could otherwise plant
 * sockets and symlinks there.
 */
int vmm_rundir_check(const char *path)
{
	struct stat st;

	if (lstat(path, &st) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode))
		return -ENOTDIR;
	if (st.st_uid != geteuid())
		return -EPERM;
	if ((st.st_mode & 07777) != 0700)
		return -EACCES;
	return 0;
}

int vmm_rundir(char *buf, size_t len, bool create)
{
	const char *env = getenv("EBB_RUNTIME_DIR");
	int n, ret;

	if (env && *env)
		n = snprintf(buf, len, "%s", env);
	else if ((env = getenv("XDG_RUNTIME_DIR")) && *env)
		n = snprintf(buf, len, "%s/ebb", env);
	else if (geteuid() == 0)
		n = snprintf(buf, len, "/run/ebb");
	else
		n = snprintf(buf, len, "/tmp/ebb-%u", (unsigned)geteuid());
	if (n < 0 || (size_t)n >= len)
		return -ENAMETOOLONG;
	/* Strip trailing slashes so that lstat() sees the last component
	 * itself, not what a symlink there points to. */
	while (n > 1 && buf[n - 1] == '/')
		buf[--n] = '\0';
	if (create) {
		ret = mkdir_p(buf, 0700);
		if (ret)
			return ret;
	}
	ret = vmm_rundir_check(buf);
	if (ret == -ENOENT && !create)
		return 0;  /* no VM ever ran: nothing to find there */
	return ret;
}

const char *vmm_rundir_strerror(int err)
{
	switch (err) {
	case -ENOTDIR:
		return "it is not a directory (a symlink or a file is refused): remove it, or set "
		       "EBB_RUNTIME_DIR to a directory of your own with mode 0700";
	case -EPERM:
		return "it belongs to another user: remove it (as root) or set EBB_RUNTIME_DIR to a "
		       "directory of your own with mode 0700";
	case -EACCES:
		return "its mode is not 0700: run chmod 700 on it (check first that nobody planted "
		       "files there), or set EBB_RUNTIME_DIR";
	default:
		return NULL;
	}
}

bool vmm_name_valid(const char *name)
{
	size_t i;

	if (!name || !name[0] || name[0] == '.' || name[0] == '-')
		return false;
	for (i = 0; name[i]; i++) {
		char c = name[i];

		if (i >= VMM_NAME_MAX_BYTES)
			return false;
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '.' || c == '-'))
			return false;
	}
	return true;
}

int vmm_sock_path(const char *rundir, const char *name, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s/%s.sock", rundir, name);

	if (n < 0 || (size_t)n >= len || (size_t)n >= sizeof(((struct sockaddr_un *)0)->sun_path))
		return -ENAMETOOLONG;
	return 0;
}

int vmm_name_lock(const char *rundir, const char *name)
{
	char path[512];
	int fd, n;

	if (!vmm_name_valid(name))
		return -EINVAL;
	n = snprintf(path, sizeof(path), "%s/%s.lock", rundir, name);
	if (n < 0 || (size_t)n >= sizeof(path))
		return -ENAMETOOLONG;
	fd = open(path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int err = errno;

		close(fd);
		return err == EWOULDBLOCK ? -EBUSY : -err;
	}
	return fd;
}

int vmm_ctl_connect(const char *rundir, const char *name)
{
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	int fd, ret;

	if (!vmm_name_valid(name))
		return -EINVAL;
	ret = vmm_sock_path(rundir, name, path, sizeof(path));
	if (ret)
		return ret;
	fd = ebb_sock_connect(path, 0);
	if (fd < 0)
		return fd;
	/* Only our own VMs (or root's) may answer us. */
	ret = vmm_peer_check(fd, NULL);
	if (ret) {
		close(fd);
		return ret;
	}
	return fd;
}

static int64_t ms_left(uint64_t deadline_ns)
{
	uint64_t now = vmm_now_ns();

	return now >= deadline_ns ? 0 : (int64_t)((deadline_ns - now) / 1000000 + 1);
}

/* Waits for one reply line; *buf grows up to VMM_CTL_MAX_REPLY_BYTES. */
static int read_reply(int fd, uint64_t deadline, char **bufp, size_t *cap, size_t *line_len)
{
	size_t len = 0;

	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		int64_t left = ms_left(deadline);
		char *nl;
		ssize_t n;
		int ret;

		if (left <= 0)
			return -ETIMEDOUT;
		ret = poll(&pfd, 1, (int)left);
		if (ret < 0 && errno == EINTR)
			continue;
		if (ret < 0)
			return -errno;
		if (ret == 0)
			return -ETIMEDOUT;
		if (len == *cap) {
			size_t ncap = *cap * 2 > VMM_CTL_MAX_REPLY_BYTES + 1 ?
				      VMM_CTL_MAX_REPLY_BYTES + 1 : *cap * 2;
			char *p;

			if (*cap == VMM_CTL_MAX_REPLY_BYTES + 1)
				return -EMSGSIZE;   /* no newline in a whole reply */
			p = realloc(*bufp, ncap);
			if (!p)
				return -ENOMEM;
			*bufp = p;
			*cap = ncap;
		}
		n = recv(fd, *bufp + len, *cap - len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -ECONNRESET;
		nl = memchr(*bufp + len, '\n', (size_t)n);
		len += (size_t)n;
		if (nl) {
			*line_len = (size_t)(nl - *bufp);
			return 0;
		}
	}
}

int vmm_ctl_call(int fd, const char *cmd, struct json_object *args, int timeout_ms,
		 struct vmm_ctl_response *resp)
{
	uint64_t deadline = vmm_now_ns() + (uint64_t)timeout_ms * 1000000ull;
	char *line = vmm_ctl_format_request(1, cmd, args);
	size_t cap = 8192, off = 0, line_len;
	char *buf;
	int ret;

	if (!line)
		return -ENOMEM;
	line_len = strlen(line);
	while (off < line_len) {
		ssize_t n = send(fd, line + off, line_len - off, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			ret = -errno;
			free(line);
			return ret;
		}
		off += (size_t)n;
	}
	free(line);
	buf = malloc(cap);
	if (!buf)
		return -ENOMEM;
	ret = read_reply(fd, deadline, &buf, &cap, &line_len);
	if (!ret)
		ret = vmm_ctl_parse_response(buf, line_len, resp);
	free(buf);
	return ret;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int vmm_list_names(const char *rundir, void (*fn)(void *opaque, const char *name),
		   void *opaque)
{
	DIR *d = opendir(rundir);
	struct dirent *de;
	char **names = NULL;
	size_t n = 0, cap = 0, i;

	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while ((de = readdir(d))) {
		size_t len = strlen(de->d_name);
		char *name;

		if (len <= 5 || strcmp(de->d_name + len - 5, ".sock") != 0)
			continue;
		name = strndup(de->d_name, len - 5);
		if (!name || !vmm_name_valid(name)) {
			free(name);
			continue;
		}
		if (n == cap) {
			char **p = realloc(names, (cap ? cap * 2 : 16) * sizeof(*p));

			if (!p) {
				free(name);
				break;
			}
			names = p;
			cap = cap ? cap * 2 : 16;
		}
		names[n++] = name;
	}
	closedir(d);
	if (n)
		qsort(names, n, sizeof(*names), cmp_str);
	for (i = 0; i < n; i++) {
		fn(opaque, names[i]);
		free(names[i]);
	}
	free(names);
	return (int)n;
}

struct json_object *vmm_ctl_query(const char *rundir, const char *name, const char *cmd,
				  int timeout_ms)
{
	struct vmm_ctl_response resp = { 0 };
	struct json_object *res = NULL;
	int fd = vmm_ctl_connect(rundir, name);

	if (fd < 0)
		return NULL;
	if (!vmm_ctl_call(fd, cmd, NULL, timeout_ms, &resp)) {
		if (resp.ok && resp.result && json_object_is_type(resp.result, json_type_object)) {
			res = resp.result;
			resp.result = NULL;
		}
		vmm_ctl_response_release(&resp);
	}
	close(fd);
	return res;
}

int64_t vmm_json_int(struct json_object *o, const char *key, int64_t def)
{
	struct json_object *v;

	if (!o || !json_object_object_get_ex(o, key, &v) || !v ||
	    !json_object_is_type(v, json_type_int))
		return def;
	return json_object_get_int64(v);
}
