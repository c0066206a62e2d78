/*
 * client/evloop.c — epoll event loop, see evloop.h.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "client/evloop.h"

#define MAX_EVENTS 32

struct vmm_ev_watch {
	int fd;
	vmm_ev_fn fn;
	void *opaque;
	bool dead;
	struct vmm_ev_watch *next_dead;
};

struct vmm_evloop {
	int epfd;
	int wake_fd;                    /* eventfd: stop / wake */
	int stop;                       /* atomic */
	struct vmm_ev_watch *dead;      /* freed after the current batch */
	bool dispatching;
	bool (*idle_fn)(void *opaque);
	void *idle_opaque;
	bool idle_pending;              /* the idle hook has more work */
};

void vmm_evloop_set_idle(struct vmm_evloop *loop, bool (*fn)(void *opaque), void *opaque)
{
	loop->idle_fn = fn;
	loop->idle_opaque = opaque;
	loop->idle_pending = fn != NULL;
}

int vmm_evloop_create(struct vmm_evloop **out)
{
	struct vmm_evloop *loop = calloc(1, sizeof(*loop));
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };
	int ret;

	*out = NULL;
	if (!loop)
		return -ENOMEM;
	loop->epfd = epoll_create1(EPOLL_CLOEXEC);
	loop->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (loop->epfd < 0 || loop->wake_fd < 0 ||
	    epoll_ctl(loop->epfd, EPOLL_CTL_ADD, loop->wake_fd, &ev) < 0) {
		ret = -errno;
		vmm_evloop_destroy(loop);
		return ret;
	}
	*out = loop;
	return 0;
}

static void free_dead(struct vmm_evloop *loop)
{
	while (loop->dead) {
		struct vmm_ev_watch *w = loop->dead;

		loop->dead = w->next_dead;
		free(w);
	}
}

void vmm_evloop_destroy(struct vmm_evloop *loop)
{
	if (!loop)
		return;
	free_dead(loop);
	if (loop->epfd >= 0)
		close(loop->epfd);
	if (loop->wake_fd >= 0)
		close(loop->wake_fd);
	free(loop);
}

int vmm_evloop_add(struct vmm_evloop *loop, int fd, uint32_t events, vmm_ev_fn fn, void *opaque,
		   struct vmm_ev_watch **out)
{
	struct vmm_ev_watch *w = calloc(1, sizeof(*w));
	struct epoll_event ev = { .events = events };
	int ret;

	if (out)
		*out = NULL;
	if (!w)
		return -ENOMEM;
	w->fd = fd;
	w->fn = fn;
	w->opaque = opaque;
	ev.data.ptr = w;
	if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		ret = -errno;
		free(w);
		return ret;
	}
	if (out)
		*out = w;
	return 0;
}

int vmm_evloop_mod(struct vmm_evloop *loop, struct vmm_ev_watch *w, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = w };

	return epoll_ctl(loop->epfd, EPOLL_CTL_MOD, w->fd, &ev) < 0 ? -errno : 0;
}

void vmm_evloop_del(struct vmm_evloop *loop, struct vmm_ev_watch *w)
{
	if (!w || w->dead)
		return;
	epoll_ctl(loop->epfd, EPOLL_CTL_DEL, w->fd, NULL);
	w->dead = true;
	w->next_dead = loop->dead;
	loop->dead = w;
	if (!loop->dispatching)
		free_dead(loop);
}

int vmm_evloop_run_once(struct vmm_evloop *loop, int timeout_ms)
{
	struct epoll_event events[MAX_EVENTS];
	int n, i;

	n = epoll_wait(loop->epfd, events, MAX_EVENTS, loop->idle_pending ? 0 : timeout_ms);
	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	loop->dispatching = true;
	for (i = 0; i < n; i++) {
		struct vmm_ev_watch *w = events[i].data.ptr;

		if (!w) {
			uint64_t v;

			if (read(loop->wake_fd, &v, sizeof(v)) < 0) {
				/* EAGAIN: another round already drained it. */
			}
			continue;
		}
		if (!w->dead)
			w->fn(w->opaque, events[i].events);
	}
	loop->dispatching = false;
	free_dead(loop);
	if (loop->idle_fn)
		loop->idle_pending = loop->idle_fn(loop->idle_opaque);
	return n;
}

int vmm_evloop_run(struct vmm_evloop *loop)
{
	while (!__atomic_load_n(&loop->stop, __ATOMIC_ACQUIRE)) {
		int ret = vmm_evloop_run_once(loop, -1);

		if (ret < 0)
			return ret;
	}
	return 0;
}

void vmm_evloop_stop(struct vmm_evloop *loop)
{
	uint64_t one = 1;

	__atomic_store_n(&loop->stop, 1, __ATOMIC_RELEASE);
	if (write(loop->wake_fd, &one, sizeof(one)) < 0) {
		/* EAGAIN: the counter is already non-zero, the loop will wake. */
	}
}
