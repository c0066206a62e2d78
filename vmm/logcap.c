/*
 * vmm/logcap.c — the size-capped log writer, see logcap.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "vmm/logcap.h"

int vmm_logcap_open(const char *path)
{
	int fd;

	if (unlink(path) < 0 && errno != ENOENT)
		return -errno;
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	return fd < 0 ? -errno : fd;
}

static bool write_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = write(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		buf += n;
		len -= (size_t)n;
	}
	return true;
}

struct writer {
	const char *path;
	uint64_t max_bytes;
	int fd;
	uint64_t size_bytes;       /* of NAME.log */
	uint64_t old_size_bytes;   /* of NAME.log.1 */
	struct vmm_logcap_stats *st;
};

/* NAME.log -> NAME.log.1, a new NAME.log starting with a marker line.  On
 * failure w->fd stays -1 and output is dropped (counted). */
static void rotate(struct writer *w)
{
	char old[4096 + 8], marker[256];
	const char *base = strrchr(w->path, '/');
	int n;

	base = base ? base + 1 : w->path;
	n = snprintf(old, sizeof(old), "%s.1", w->path);
	if (w->fd >= 0)
		close(w->fd);
	w->st->nr_bytes_dropped += w->old_size_bytes;
	w->old_size_bytes = w->size_bytes;
	if (n < 0 || (size_t)n >= sizeof(old) || rename(w->path, old) < 0) {
		w->st->nr_bytes_dropped += w->old_size_bytes;
		w->old_size_bytes = 0;
	}
	w->st->nr_rotations++;
	w->size_bytes = 0;
	w->fd = vmm_logcap_open(w->path);
	if (w->fd < 0)
		return;
	n = snprintf(marker, sizeof(marker),
		     "ebb: log rotated: at most %llu bytes per file, the part before this is in "
		     "%.64s.1\n", (unsigned long long)w->max_bytes, base);
	if (n > 0 && (size_t)n < sizeof(marker) && write_all(w->fd, marker, (size_t)n))
		w->size_bytes = (uint64_t)n;
}

int vmm_logcap_copy(int in_fd, const char *path, uint64_t max_bytes,
		    struct vmm_logcap_stats *stats)
{
	struct vmm_logcap_stats local = { 0 };
	struct writer w = { .path = path, .max_bytes = max_bytes, .st = stats ? stats : &local };
	char buf[16384];
	int ret;

	if (w.max_bytes < VMM_LOGCAP_MIN_MAX_BYTES)
		w.max_bytes = VMM_LOGCAP_MIN_MAX_BYTES;
	memset(w.st, 0, sizeof(*w.st));
	w.fd = vmm_logcap_open(path);
	ret = w.fd < 0 ? w.fd : 0;
	for (;;) {
		ssize_t n = read(in_fd, buf, sizeof(buf));
		size_t off = 0;

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		w.st->nr_bytes_in += (uint64_t)n;
		while (off < (size_t)n) {
			size_t chunk = (size_t)n - off;

			if (w.fd >= 0 && w.size_bytes >= w.max_bytes)
				rotate(&w);
			if (w.fd >= 0 && chunk > w.max_bytes - w.size_bytes)
				chunk = (size_t)(w.max_bytes - w.size_bytes);
			if (w.fd < 0 || !write_all(w.fd, buf + off, chunk))
				w.st->nr_bytes_dropped += chunk;
			else
				w.size_bytes += chunk;
			off += chunk;
		}
	}
	if (w.fd >= 0)
		close(w.fd);
	return ret;
}
