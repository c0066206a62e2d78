/*
 * client/discover.c — the runtime directory as a set of VM names, kept
 * current with inotify (see discover.h).
 *
 * Every batch of inotify events just triggers a rescan: listing the
 * directory is cheap (one entry per VM and file) and makes the result
 * independent of event order, coalescing and queue overflow.  The rescan
 * diffs the sorted listing against the sorted known set and reports the
 * differences.
 */
#include "client/discover.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <unistd.h>

#include "client/rundir.h"

struct ebb_discover {
	struct ebb_discover_cfg cfg;
	char *rundir;
	int fd;
	char **names;              /* sorted, owned */
	size_t nr_names;
	struct ebb_discover_stats st;
};

struct listing {
	char **names;
	size_t n, cap;
	int err;
};

static void collect(void *opaque, const char *name)
{
	struct listing *l = opaque;
	char *dup;

	if (l->err || strcmp(name, EBB_DISCOVER_RESERVED_NAME) == 0)
		return;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		char **p = realloc(l->names, cap * sizeof(*p));

		if (!p) {
			l->err = -ENOMEM;
			return;
		}
		l->names = p;
		l->cap = cap;
	}
	dup = strdup(name);
	if (!dup) {
		l->err = -ENOMEM;
		return;
	}
	l->names[l->n++] = dup;   /* vmm_list_names reports in sorted order */
}

static void free_names(char **names, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

int ebb_discover_rescan(struct ebb_discover *d)
{
	struct listing l = { 0 };
	size_t i = 0, j = 0;
	int ret;

	d->st.nr_rescans++;
	ret = vmm_list_names(d->rundir, collect, &l);
	if (ret < 0 || l.err) {
		free_names(l.names, l.n);
		return ret < 0 ? ret : l.err;
	}
	/* Merge two sorted lists: only in old = left, only in new = joined. */
	while (i < d->nr_names || j < l.n) {
		int c = i == d->nr_names ? 1 : j == l.n ? -1 : strcmp(d->names[i], l.names[j]);

		if (c < 0) {
			d->st.nr_left++;
			if (d->cfg.on_leave)
				d->cfg.on_leave(d->cfg.opaque, d->names[i]);
			i++;
		} else if (c > 0) {
			d->st.nr_joined++;
			if (d->cfg.on_join)
				d->cfg.on_join(d->cfg.opaque, l.names[j]);
			j++;
		} else {
			i++;
			j++;
		}
	}
	free_names(d->names, d->nr_names);
	d->names = l.names;
	d->nr_names = l.n;
	return 0;
}

int ebb_discover_create(const struct ebb_discover_cfg *cfg, struct ebb_discover **out)
{
	struct ebb_discover *d = calloc(1, sizeof(*d));
	int ret;

	*out = NULL;
	if (!d)
		return -ENOMEM;
	d->cfg = *cfg;
	d->fd = -1;
	d->rundir = strdup(cfg->rundir);
	if (!d->rundir) {
		ret = -ENOMEM;
		goto fail;
	}
	d->cfg.rundir = d->rundir;
	d->fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (d->fd < 0) {
		ret = -errno;
		goto fail;
	}
	/* A socket appears by bind() (IN_CREATE) or rename (IN_MOVED_TO) and
	 * goes by unlink or rename; the directory itself may go away. */
	if (inotify_add_watch(d->fd, d->rundir, IN_CREATE | IN_DELETE | IN_MOVED_TO |
			      IN_MOVED_FROM | IN_DELETE_SELF | IN_ONLYDIR) < 0) {
		ret = -errno;
		goto fail;
	}
	ret = ebb_discover_rescan(d);
	if (ret)
		goto fail;
	*out = d;
	return 0;
fail:
	ebb_discover_destroy(d);
	return ret;
}

void ebb_discover_destroy(struct ebb_discover *d)
{
	if (!d)
		return;
	if (d->fd >= 0)
		close(d->fd);
	free_names(d->names, d->nr_names);
	free(d->rundir);
	free(d);
}

int ebb_discover_fd(const struct ebb_discover *d)
{
	return d->fd;
}

int ebb_discover_process(struct ebb_discover *d)
{
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	bool any = false;
	ssize_t n;
	size_t off;

	for (;;) {
		n = read(d->fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		for (off = 0; off + sizeof(struct inotify_event) <= (size_t)n;) {
			const struct inotify_event *ev = (const void *)(buf + off);

			d->st.nr_events++;
			if (ev->mask & IN_Q_OVERFLOW)
				d->st.nr_overflows++;
			any = true;
			off += sizeof(*ev) + ev->len;
		}
	}
	if (n < 0 && errno != EAGAIN)
		return -errno;
	return any ? ebb_discover_rescan(d) : 0;
}

bool ebb_discover_has(const struct ebb_discover *d, const char *name)
{
	size_t i;

	for (i = 0; i < d->nr_names; i++)
		if (strcmp(d->names[i], name) == 0)
			return true;
	return false;
}

void ebb_discover_forget(struct ebb_discover *d, const char *name)
{
	size_t i;

	for (i = 0; i < d->nr_names; i++) {
		if (strcmp(d->names[i], name) == 0) {
			free(d->names[i]);
			memmove(&d->names[i], &d->names[i + 1],
				(d->nr_names - i - 1) * sizeof(d->names[0]));
			d->nr_names--;
			return;
		}
	}
}

void ebb_discover_foreach(const struct ebb_discover *d, void (*fn)(void *opaque, const char *name),
			  void *opaque)
{
	size_t i;

	for (i = 0; i < d->nr_names; i++)
		fn(opaque, d->names[i]);
}

void ebb_discover_get_stats(const struct ebb_discover *d, struct ebb_discover_stats *out)
{
	*out = d->st;
}
