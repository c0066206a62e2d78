/*
 * client/evloop.h — the VMM's event loop: one epoll instance run by one thread
 * (the event thread), for device back ends, timers and the control socket.
 * Any thread may ask it to stop or to wake up (an eventfd).
 *
 * Handlers run on the event thread.  A handler may add or delete watches,
 * including its own: deleted entries are freed only after the current batch
 * of events has been dispatched.
 */
#ifndef EBB_VMM_EVLOOP_H
#define EBB_VMM_EVLOOP_H

#include <stdbool.h>
#include <stdint.h>

typedef void (*vmm_ev_fn)(void *opaque, uint32_t events);

struct vmm_evloop;
struct vmm_ev_watch;

int vmm_evloop_create(struct vmm_evloop **out);
void vmm_evloop_destroy(struct vmm_evloop *loop);

/* events: EPOLLIN / EPOLLOUT ...; returns 0 and *out (optional), or -errno. */
int vmm_evloop_add(struct vmm_evloop *loop, int fd, uint32_t events, vmm_ev_fn fn, void *opaque,
		   struct vmm_ev_watch **out);
int vmm_evloop_mod(struct vmm_evloop *loop, struct vmm_ev_watch *w, uint32_t events);
/* Stops watching (does not close fd).  NULL is a no-op. */
void vmm_evloop_del(struct vmm_evloop *loop, struct vmm_ev_watch *w);

/* Runs until vmm_evloop_stop().  Returns 0, or -errno if epoll fails. */
int vmm_evloop_run(struct vmm_evloop *loop);
/* One round: waits up to timeout_ms (-1: forever), dispatches.  Returns the
 * number of events, or -errno. */
int vmm_evloop_run_once(struct vmm_evloop *loop, int timeout_ms);
/* Thread safe, async-signal safe. */
void vmm_evloop_stop(struct vmm_evloop *loop);

/*
 * Optional work after every round of events (e.g. virtio_pci_poll for
 * budget-limited devices): fn returns true while work is still pending, and
 * the next wait then does not sleep.  One hook per loop; NULL removes it.
 */
void vmm_evloop_set_idle(struct vmm_evloop *loop, bool (*fn)(void *opaque), void *opaque);

#endif
