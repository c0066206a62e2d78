/*
 * host-reclaim/libvirt/lv_cgroup.c — a QEMU's cgroup v2 memory.reclaim
 * (lv_cgroup.h says what is checked and why).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "host-reclaim/libvirt/lv_cgroup.h"

#define LINE_MAX_LEN 4096            /* a longer line in /proc is not one we use */
#define PROCS_MAX_LEN 4096           /* cgroup.procs: ~500 pids is "others" anyway */
#define MAX_THREADED_UP 16           /* threaded levels walked up to the domain */

/*
 * One line of @f into @buf without its '\n'.  1: a line; 0: end of file;
 * -ENAMETOOLONG: the line did not fit (the rest of it is skipped, so the
 * next call reads the next line).
 */
static int read_line(FILE *f, char *buf, size_t len)
{
	size_t n;
	int c;

	if (!fgets(buf, (int)len, f))
		return 0;
	n = strlen(buf);
	if (n && buf[n - 1] == '\n') {
		buf[n - 1] = '\0';
		return 1;
	}
	if (n + 1 < len)             /* the last line, with no '\n' */
		return 1;
	while ((c = fgetc(f)) != EOF && c != '\n')
		;
	return -ENAMETOOLONG;
}

/*
 * A whole small file into @buf, NUL-terminated: its length, or -errno
 * (-EFBIG: it does not fit).  cgroupfs files are read until EOF: a
 * seq_file may hand them out in several reads.
 */
static long read_small(const char *path, char *buf, size_t len)
{
	size_t n = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	buf[0] = '\0';
	for (;;) {
		ssize_t r;
		char extra;

		if (n == len - 1) {  /* full: one more byte says whether there is more */
			r = read(fd, &extra, 1);
			close(fd);
			if (r < 0)
				return -EIO;
			return r ? -EFBIG : (long)n;
		}
		r = read(fd, buf + n, len - 1 - n);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			close(fd);
			return r;
		}
		buf[n + (size_t)r] = '\0';
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	return (long)n;
}

/*
 * A cgroup path as /proc/PID/cgroup gives it: absolute, no empty, "." or
 * ".." component (it is joined to the mount point and must stay under it),
 * no control character.  Backslashes are allowed: systemd names scopes
 * like "machine-qemu\x2d1\x2dvm.scope", literally.
 */
static bool cg_path_ok(const char *p)
{
	const char *c;

	if (p[0] != '/')
		return false;
	if (p[1] == '\0')
		return true;         /* the root cgroup (its procs decide) */
	for (c = p; *c; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			return false;
	for (c = p; *c;) {       /* at a '/': the component after it */
		const char *e = strchr(c + 1, '/');
		size_t l = e ? (size_t)(e - c - 1) : strlen(c + 1);

		if (l == 0 || (l == 1 && c[1] == '.') || (l == 2 && c[1] == '.' && c[2] == '.'))
			return false;
		c += l + 1;
	}
	return true;
}

/* The "0::/path" line of PROC_ROOT/PID/cgroup into @path. */
static int proc_cgroup_path(const char *proc_root, int pid, char *path, size_t len)
{
	char file[EBBD_LV_CG_PATH_MAX], line[LINE_MAX_LEN];
	int ret = -ENOENT, r;
	FILE *f;

	if (pid <= 0)
		return -EINVAL;
	if ((size_t)snprintf(file, sizeof(file), "%s/%d/cgroup", proc_root, pid) >= sizeof(file))
		return -ENAMETOOLONG;
	f = fopen(file, "re");
	if (!f)
		return -errno;
	while ((r = read_line(f, line, sizeof(line))) != 0) {
		if (r < 0) {
			/* a v1 line too long is not ours to mind; the v2 one we
			 * cannot tell from its start: refuse the whole file */
			ret = -ENAMETOOLONG;
			break;
		}
		if (strncmp(line, "0::", 3) != 0)
			continue;    /* a v1 hierarchy's line */
		if (!cg_path_ok(line + 3)) {
			ret = -EINVAL;
			break;
		}
		if ((size_t)snprintf(path, len, "%s", line + 3) >= len) {
			ret = -ENAMETOOLONG;
			break;
		}
		ret = 0;
		break;
	}
	fclose(f);
	return ret;
}

/*
 * The mount point of the first cgroup2 mount in PROC_ROOT/self/mountinfo
 * whose root is "/" (a mount of a sub-tree would need the path rebased).
 * Lines: ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE
 * SOURCE SUPEROPTS; ROOT and MOUNTPOINT have spaces and backslashes
 * escaped as \ooo: a mount point with a backslash is skipped rather than
 * unescaped.
 */
static int cgroup2_mount(const char *proc_root, char *mnt, size_t len)
{
	char file[EBBD_LV_CG_PATH_MAX], line[LINE_MAX_LEN];
	int ret = -ENOENT, r;
	FILE *f;

	if ((size_t)snprintf(file, sizeof(file), "%s/self/mountinfo", proc_root) >= sizeof(file))
		return -ENAMETOOLONG;
	f = fopen(file, "re");
	if (!f)
		return -errno;
	while ((r = read_line(f, line, sizeof(line))) != 0) {
		char *sep, *fld[5], *save = NULL, *p;
		int i;

		if (r < 0)
			continue;    /* not a line we can read: not ours */
		sep = strstr(line, " - ");
		if (!sep || strncmp(sep + 3, "cgroup2 ", 8) != 0)
			continue;
		*sep = '\0';
		for (i = 0, p = line; i < 5; i++, p = NULL)
			if (!(fld[i] = strtok_r(p, " ", &save)))
				break;
		if (i < 5 || strcmp(fld[3], "/") != 0 || fld[4][0] != '/' ||
		    strchr(fld[4], '\\'))
			continue;
		if ((size_t)snprintf(mnt, len, "%s", fld[4]) >= len) {
			ret = -ENAMETOOLONG;
			continue;
		}
		ret = 0;
		break;
	}
	fclose(f);
	return ret;
}

/* DIR/NAME into @out: -ENAMETOOLONG if it does not fit. */
static int join(char *out, size_t len, const char *dir, const char *name)
{
	if ((size_t)snprintf(out, len, "%s/%s", dir, name) >= len)
		return -ENAMETOOLONG;
	return 0;
}

/* Is DIR a threaded cgroup (cgroup.type "threaded")?  -errno if unreadable. */
static int is_threaded(const char *dir)
{
	char file[EBBD_LV_CG_PATH_MAX + 32], buf[64] = "";
	long n;

	if (join(file, sizeof(file), dir, "cgroup.type"))
		return -ENAMETOOLONG;
	n = read_small(file, buf, sizeof(buf));
	if (n < 0)
		return (int)n;
	return strcmp(buf, "threaded\n") == 0 || strcmp(buf, "threaded") == 0;
}

/*
 * Does DIR/cgroup.procs list @pid and nothing else?  0, -EBUSY (others, or
 * too many to read), -ESRCH (@pid not there), -EINVAL (not pids).
 */
static int procs_only(const char *dir, int pid)
{
	char file[EBBD_LV_CG_PATH_MAX + 32], buf[PROCS_MAX_LEN] = "", *p, *end;
	bool found = false;
	long n;

	if (join(file, sizeof(file), dir, "cgroup.procs"))
		return -ENAMETOOLONG;
	n = read_small(file, buf, sizeof(buf));
	if (n == -EFBIG)
		return -EBUSY;
	if (n < 0)
		return (int)n;
	for (p = buf; *p;) {
		long v;

		if (*p == '\n') {
			p++;
			continue;
		}
		if (*p < '0' || *p > '9')
			return -EINVAL;
		errno = 0;
		v = strtol(p, &end, 10);
		if (errno || v <= 0 || v > 0x3fffffff || (*end && *end != '\n'))
			return -EINVAL;
		if (v != pid)
			return -EBUSY;
		found = true;
		p = end;
	}
	return found ? 0 : -ESRCH;
}

/* Every child cgroup of DIR threaded?  0 or -EBUSY (-errno: unreadable). */
static int children_threaded(const char *dir)
{
	char sub[EBBD_LV_CG_PATH_MAX];
	struct dirent *e;
	int ret = 0;
	DIR *d = opendir(dir);

	if (!d)
		return -errno;
	while (!ret && (e = readdir(d))) {
		struct stat st;
		int t;

		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if (join(sub, sizeof(sub), dir, e->d_name)) {
			ret = -ENAMETOOLONG;
			break;
		}
		if (e->d_type != DT_DIR &&
		    (e->d_type != DT_UNKNOWN || lstat(sub, &st) || !S_ISDIR(st.st_mode)))
			continue;
		t = is_threaded(sub);
		if (t < 0)
			ret = t;
		else if (!t)
			ret = -EBUSY;
	}
	closedir(d);
	return ret;
}

int ebbd_lv_cgroup_find(const char *proc_root, int pid, char *dir, size_t dir_len)
{
	char path[EBBD_LV_CG_PATH_MAX], mnt[EBBD_LV_CG_PATH_MAX];
	char cg[EBBD_LV_CG_PATH_MAX], file[EBBD_LV_CG_PATH_MAX + 32];
	size_t mnt_len;
	int ret, i;

	ret = proc_cgroup_path(proc_root, pid, path, sizeof(path));
	if (ret)
		return ret;
	ret = cgroup2_mount(proc_root, mnt, sizeof(mnt));
	if (ret)
		return ret;
	mnt_len = strlen(mnt);
	while (mnt_len > 1 && mnt[mnt_len - 1] == '/')
		mnt[--mnt_len] = '\0';
	if ((size_t)snprintf(cg, sizeof(cg), "%s%s", mnt_len > 1 ? mnt : "",
			     strcmp(path, "/") ? path : "") >= sizeof(cg))
		return -ENAMETOOLONG;
	if (cg[0] == '\0')
		snprintf(cg, sizeof(cg), "/");
	/* up past threaded cgroups, never above the mount point */
	for (i = 0;; i++) {
		char *slash;
		int t = is_threaded(cg);

		if (t < 0)
			return t;   /* -ENOENT: the root, or not a cgroup2 directory */
		if (!t)
			break;
		slash = strrchr(cg, '/');
		if (i >= MAX_THREADED_UP || !slash || (size_t)(slash - cg) < mnt_len ||
		    slash == cg)
			return -EINVAL;
		*slash = '\0';
	}
	if (join(file, sizeof(file), cg, "memory.reclaim"))
		return -ENAMETOOLONG;
	if (faccessat(AT_FDCWD, file, F_OK, AT_EACCESS))
		return -ENOENT;
	if (faccessat(AT_FDCWD, file, W_OK, AT_EACCESS))
		return -EACCES;
	ret = procs_only(cg, pid);
	if (ret)
		return ret;
	ret = children_threaded(cg);
	if (ret)
		return ret;
	if ((size_t)snprintf(dir, dir_len, "%s", cg) >= dir_len)
		return -ENAMETOOLONG;
	return 0;
}

const char *ebbd_lv_cgroup_why(int err)
{
	switch (err) {
	case 0:
		return "usable";
	case -ENOENT:
		return "no cgroup v2 memory.reclaim for it (cgroup v1 memory controller, "
		       "or a kernel before 5.19)";
	case -EACCES:
		return "memory.reclaim not writable";
	case -EBUSY:
		return "its cgroup holds other processes";
	case -ESRCH:
		return "the process is not in its cgroup's procs (gone or moved)";
	case -ENAMETOOLONG:
		return "a path or line too long";
	case -EINVAL:
		return "a malformed cgroup path or file";
	default:
		return strerror(-err);
	}
}

int ebbd_lv_cgroup_reclaim(const char *dir, uint64_t bytes)
{
	char file[EBBD_LV_CG_PATH_MAX + 32], num[24];
	ssize_t n;
	int fd, len;

	if (!bytes)
		return 0;
	if (join(file, sizeof(file), dir, "memory.reclaim"))
		return -ENAMETOOLONG;
	len = snprintf(num, sizeof(num), "%" PRIu64, bytes);
	fd = open(file, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = write(fd, num, (size_t)len);
	if (n < 0)   /* a signal stops the kernel's reclaim loop: a short round too */
		n = errno == EINTR ? -EAGAIN : -errno;
	else if (n != len)
		n = -EIO;
	else
		n = 0;
	close(fd);
	return (int)n;
}

bool ebbd_lv_host_has_swap(void)
{
	char line[256];
	int nr = 0;
	FILE *f = fopen("/proc/swaps", "re");

	if (!f)
		return false;
	while (fgets(line, sizeof(line), f))
		nr++;
	fclose(f);
	return nr > 1;   /* the first line is the header */
}
