/*
 * vmm/virtio_devs.c — plugs virtio/'s console and balloon into the VM: PCI
 * functions on the bus, BAR and config accesses forwarded to the transports,
 * doorbells through ioeventfds, interrupts through KVM_SIGNAL_MSI /
 * KVM_IRQ_LINE, the agent port bridged to a unix socket, the balloon's runs
 * turned into MADV_DONTNEED.  See vmm/virtio_devs.h for the threading.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <linux/virtio_ids.h>

#include "virtio/balloon.h"
#include "virtio/console.h"
#include "virtio/pci.h"
#include "vmm/pci.h"
#include "client/peer.h"
#include "vmm/virtio_devs.h"
#include "vmm/vm.h"

#define TICK_PERIOD_NS 200000000ull          /* balloon tick / housekeeping */
#define DEFAULT_STATS_PERIOD_MS 2000u
#define MAX_QUEUES 8u                        /* console has 6, balloon 4 */

struct vdev;

/* One doorbell: queue q of a device. */
struct doorbell {
	struct vdev *dev;
	uint16_t q;
	int efd;
	uint64_t registered_gpa;   /* 0: not registered with KVM */
	struct vmm_ev_watch *watch;
};

/* One virtio-pci function. */
struct vdev {
	struct vmm_virtio_devs *owner;
	const char *name;
	pthread_mutex_t lock;        /* around every call into tp / the device */
	struct virtio_host host;
	struct virtio_pci *tp;       /* the device's transport (owned by the device) */
	struct vmm_pci_dev *pci;
	struct doorbell bells[MAX_QUEUES];
	uint16_t nr_queues;
	uint32_t fallback_kicks;     /* atomic: bit q = notify write reached the VMM */
	uint64_t nr_fallback_kicks;  /* atomic */
	bool cfg_dirty;              /* atomic: BARs may have moved: re-register bells */
};

struct vmm_virtio_devs {
	struct vmm_vm *vm;
	struct vmm_virtio_devs_cfg cfg;
	struct vmm_evloop *loop;
	struct vdev con, bal;
	struct virtio_console *console;
	struct virtio_balloon *balloon;

	int wake_fd;                 /* eventfd: deferred work, fallback kicks, BAR moves */
	int timer_fd;
	struct vmm_ev_watch *wake_watch, *timer_watch;

	/* Agent bridge: event thread only, except the want_* flags (atomics,
	 * set from console callbacks under con.lock). */
	char *agent_path;
	int agent_listen_fd, agent_fd;
	struct vmm_ev_watch *agent_listen_watch, *agent_watch;
	uint32_t agent_events;       /* what agent_watch polls now */
	bool want_agent_in;          /* the guest may take input */
	bool want_agent_out;         /* we hold guest output the socket refused */
	uint64_t nr_agent_refused;   /* extra clients turned away */

	/* Balloon host-side figures: written under bal.lock. */
	uint64_t nr_madvise_calls, nr_discarded_pages, madvise_ns, nr_madvise_errors;
	struct vmm_ratelimit rl;     /* bal.lock */
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void wake(struct vmm_virtio_devs *d)
{
	uint64_t one = 1;

	if (d->wake_fd >= 0 && write(d->wake_fd, &one, sizeof(one)) < 0) {
		/* counter full: a wakeup is pending anyway */
	}
}

/* ---- virtio_host callbacks (device lock held) ------------------------------- */

static void *host_translate(void *opaque, virtio_gpa_t gpa, uint64_t len)
{
	struct vdev *v = opaque;

	return vmm_vm_translate(v->owner->vm, gpa, len);
}

static void host_log(void *opaque, enum virtio_log_level level, const char *msg)
{
	struct vdev *v = opaque;
	static const enum vmm_log_level map[] = {
		[VIRTIO_LOG_ERR] = VMM_LOG_ERR, [VIRTIO_LOG_WARN] = VMM_LOG_WARN,
		[VIRTIO_LOG_INFO] = VMM_LOG_INFO, [VIRTIO_LOG_DEBUG] = VMM_LOG_DEBUG,
	};

	vmm_logf(&v->owner->cfg.log, level <= VIRTIO_LOG_DEBUG ? map[level] : VMM_LOG_DEBUG,
		 "virtio-%s: %s", v->name, msg);
}

static void host_raise_msi(void *opaque, uint16_t vector, uint64_t addr, uint32_t data)
{
	struct vdev *v = opaque;

	vmm_vm_signal_msi(v->owner->vm, addr, data);
}

static void host_set_intx(void *opaque, bool level)
{
	struct vdev *v = opaque;

	vmm_vm_irq_line(v->owner->vm, vmm_pci_dev_gsi(v->pci), level);
}

/* ---- PCI bus callbacks (vCPU threads) ---------------------------------------- */

static bool is_notify(struct vdev *v, uint64_t off, unsigned size, uint16_t *q)
{
	uint64_t rel;

	if (off < VIRTIO_PCI_NOTIFY_OFFSET)
		return false;
	rel = off - VIRTIO_PCI_NOTIFY_OFFSET;
	if (rel % VIRTIO_PCI_NOTIFY_MULTIPLIER || rel / VIRTIO_PCI_NOTIFY_MULTIPLIER >= v->nr_queues ||
	    size > VIRTIO_PCI_NOTIFY_MULTIPLIER)
		return false;
	*q = (uint16_t)(rel / VIRTIO_PCI_NOTIFY_MULTIPLIER);
	return true;
}

/* GUEST: offset and size were checked against the BAR by the bus. */
static void bar_io(void *opaque, unsigned bar, uint64_t offset, uint8_t *data, unsigned size,
		   bool is_write)
{
	struct vdev *v = opaque;
	uint16_t q;
	bool pending;

	if (is_write && bar == 0 && is_notify(v, offset, size, &q)) {
		/* The kick is served on the event thread, as an ioeventfd would. */
		__atomic_fetch_or(&v->fallback_kicks, 1u << q, __ATOMIC_RELEASE);
		__atomic_fetch_add(&v->nr_fallback_kicks, 1, __ATOMIC_RELAXED);
		wake(v->owner);
		return;
	}
	pthread_mutex_lock(&v->lock);
	if (is_write)
		virtio_pci_bar_write(v->tp, (int)bar, offset, data, size);
	else
		virtio_pci_bar_read(v->tp, (int)bar, offset, data, size);
	pending = virtio_pci_has_pending(v->tp);
	pthread_mutex_unlock(&v->lock);
	if (pending || is_write)
		wake(v->owner);  /* deferred work, agent watch changes (status writes) */
}

/* GUEST: config write (bus lock held: pci -> device). */
static void cfg_write(void *opaque, unsigned off, const uint8_t *data, unsigned size)
{
	struct vdev *v = opaque;

	pthread_mutex_lock(&v->lock);
	virtio_pci_cfg_write(v->tp, off, data, size);
	pthread_mutex_unlock(&v->lock);
	if (off < 0x40) {  /* command or BAR registers: doorbells may need to move */
		__atomic_store_n(&v->cfg_dirty, true, __ATOMIC_RELEASE);
		wake(v->owner);
	}
}

/* GUEST: the standard header (< 0x40, BARs included) is the bus's; the
 * capabilities, MSI-X and the PCI_CFG window are the transport's. */
static void cfg_read(void *opaque, unsigned off, uint8_t *data, unsigned size)
{
	struct vdev *v = opaque;

	if (off < 0x40)
		return;
	pthread_mutex_lock(&v->lock);
	virtio_pci_cfg_read(v->tp, off, data, size);
	pthread_mutex_unlock(&v->lock);
}

static const struct vmm_pci_dev_ops vdev_pci_ops = {
	.bar_io = bar_io, .cfg_write = cfg_write, .cfg_read = cfg_read,
};

static void vdev_init(struct vmm_virtio_devs *d, struct vdev *v, const char *name)
{
	unsigned i;

	v->owner = d;
	v->name = name;
	pthread_mutex_init(&v->lock, NULL);
	v->host = (struct virtio_host){
		.translate = host_translate, .log = host_log, .raise_msi = host_raise_msi,
		.set_intx = host_set_intx, .opaque = v,
	};
	for (i = 0; i < MAX_QUEUES; i++) {
		v->bells[i].dev = v;
		v->bells[i].q = (uint16_t)i;
		v->bells[i].efd = -1;
	}
}

static int vdev_add_pci(struct vmm_virtio_devs *d, struct vdev *v, uint16_t virtio_id,
			uint32_t class_code)
{
	uint8_t image[VIRTIO_PCI_CFG_SPACE_SIZE], wmask[VIRTIO_PCI_CFG_SPACE_SIZE];
	struct vmm_pci_dev_cfg pc = {
		.vendor_id = VIRTIO_PCI_VENDOR_ID,
		.device_id = (uint16_t)(VIRTIO_PCI_DEVICE_ID_BASE + virtio_id),
		.subsys_vendor_id = VIRTIO_PCI_VENDOR_ID,
		.subsys_id = (uint16_t)(0x40 + virtio_id),
		.class_code = class_code, .revision = 1, .irq_pin = 1,
		.bars = { [0] = { .size_bytes = VIRTIO_PCI_BAR0_SIZE, .is_io = false } },
		.ops = &vdev_pci_ops, .opaque = v,
	};
	uint8_t *space;
	unsigned off;
	int ret;

	v->nr_queues = virtio_pci_nr_queues(v->tp);
	if (v->nr_queues > MAX_QUEUES)
		return -EINVAL;
	ret = vmm_pci_add(vmm_vm_pci(d->vm), &pc, &v->pci);
	if (ret)
		return ret;
	virtio_pci_cfg_layout(v->tp, image, wmask);
	space = vmm_pci_dev_cfg(v->pci);
	space[0x06] |= image[0x06] & 0x10;  /* capability list */
	space[0x34] = image[0x34];
	for (off = 0x40; off < VIRTIO_PCI_CFG_SPACE_SIZE; off++) {
		space[off] = image[off];
		vmm_pci_dev_set_wmask(v->pci, off, 1, wmask[off]);
	}
	return 0;
}

/* ---- console ------------------------------------------------------------------ */

static ssize_t con_port_write(void *opaque, enum virtio_console_port port, const void *buf,
			      size_t len)
{
	struct vmm_virtio_devs *d = opaque;
	ssize_t n;

	if (port == VIRTIO_CONSOLE_PORT_CONSOLE) {
		size_t done = 0;

		if (d->cfg.console_out_fd < 0)
			return (ssize_t)len;
		while (done < len) {
			n = write(d->cfg.console_out_fd, (const char *)buf + done, len - done);
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				break;  /* terminal gone: drop the rest */
			done += (size_t)n;
		}
		return (ssize_t)len;
	}
	if (d->agent_fd < 0)
		return (ssize_t)len;  /* nobody listening: the library counts nothing lost */
	n = send(d->agent_fd, buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
		__atomic_store_n(&d->want_agent_out, true, __ATOMIC_RELAXED);
		return -EAGAIN;
	}
	if (n < 0)
		return (ssize_t)len;  /* client broken: its EPOLLHUP ends it */
	if ((size_t)n < len)
		__atomic_store_n(&d->want_agent_out, true, __ATOMIC_RELAXED);
	return n;
}

static void con_port_open(void *opaque, enum virtio_console_port port, bool open)
{
	struct vmm_virtio_devs *d = opaque;

	if (port == VIRTIO_CONSOLE_PORT_AGENT) {
		__atomic_store_n(&d->want_agent_in, open, __ATOMIC_RELAXED);
		wake(d);
	}
}

static void con_rx_ready(void *opaque, enum virtio_console_port port)
{
	struct vmm_virtio_devs *d = opaque;

	if (port == VIRTIO_CONSOLE_PORT_AGENT) {
		__atomic_store_n(&d->want_agent_in, true, __ATOMIC_RELAXED);
		wake(d);
	}
}

/* ---- balloon ------------------------------------------------------------------ */

static void bal_released(void *opaque, enum virtio_balloon_reason why, virtio_pfn_t pfn,
			 uint64_t nr_pages)
{
	struct vmm_virtio_devs *d = opaque;
	uint64_t len, t0;
	void *hva;
	int ret;

	if (__builtin_mul_overflow(nr_pages, (uint64_t)VIRTIO_PAGE_SIZE_BYTES, &len) ||
	    pfn > UINT64_MAX >> VIRTIO_PAGE_SHIFT)
		hva = NULL;
	else  /* GUEST: the run is checked again here: only RAM of one slot. */
		hva = vmm_vm_translate(d->vm, pfn << VIRTIO_PAGE_SHIFT, len);
	if (!hva) {
		d->nr_madvise_errors++;
		vmm_logf_rl(&d->cfg.log, &d->rl, VMM_LOG_WARN,
			    "balloon: run pfn 0x%llx + %llu is not guest RAM; kept",
			    (unsigned long long)pfn, (unsigned long long)nr_pages);
		return;
	}
	t0 = now_ns();
	/* MADV_DONTNEED, or the reclaim engine's ballooned state when it runs. */
	ret = vmm_vm_discard_ram(d->vm, hva, len);
	if (ret < 0) {
		d->nr_madvise_errors++;
		vmm_logf_rl(&d->cfg.log, &d->rl, VMM_LOG_WARN, "balloon: releasing RAM: %s",
			    strerror(-ret));
		return;
	}
	d->madvise_ns += now_ns() - t0;
	d->nr_madvise_calls++;
	d->nr_discarded_pages += nr_pages;
	(void)why;
}

/* ---- event thread --------------------------------------------------------------- */

static void agent_update(struct vmm_virtio_devs *d);

static void after_device_call(struct vmm_virtio_devs *d, struct vdev *v)
{
	if (virtio_pci_has_pending(v->tp))
		wake(d);
}

static void bell_event(void *opaque, uint32_t events)
{
	struct doorbell *b = opaque;
	struct vdev *v = b->dev;
	uint64_t cnt;

	if (read(b->efd, &cnt, sizeof(cnt)) < 0) {
		/* spurious */
	}
	pthread_mutex_lock(&v->lock);
	virtio_pci_notify(v->tp, b->q);
	after_device_call(v->owner, v);
	pthread_mutex_unlock(&v->lock);
	if (v == &v->owner->con)
		agent_update(v->owner);
}

/* Keeps each doorbell's ioeventfd at BAR0 + notify offset (event thread). */
static void bells_sync(struct vdev *v)
{
	uint64_t base = vmm_pci_dev_bar_addr(v->pci, 0), gpa;
	uint16_t q;

	for (q = 0; q < v->nr_queues; q++) {
		struct doorbell *b = &v->bells[q];

		gpa = base ? base + virtio_pci_notify_offset(v->tp, q) : 0;
		if (b->efd < 0 || gpa == b->registered_gpa)
			continue;
		if (b->registered_gpa)
			vmm_vm_ioeventfd(v->owner->vm, b->efd, b->registered_gpa, 2, false, false);
		b->registered_gpa = 0;
		if (gpa) {
			int ret = vmm_vm_ioeventfd(v->owner->vm, b->efd, gpa, 2, false, true);

			if (ret == 0)
				b->registered_gpa = gpa;
			else
				vmm_logf(&v->owner->cfg.log, VMM_LOG_WARN,
					 "virtio-%s: KVM_IOEVENTFD at 0x%llx for queue %u: %s "
					 "(kicks will exit to the VMM)", v->name,
					 (unsigned long long)gpa, q, strerror(-ret));
		}
	}
}

static void vdev_service(struct vdev *v)
{
	uint32_t kicks = __atomic_exchange_n(&v->fallback_kicks, 0, __ATOMIC_ACQUIRE);
	uint16_t q;

	if (__atomic_exchange_n(&v->cfg_dirty, false, __ATOMIC_ACQUIRE))
		bells_sync(v);
	pthread_mutex_lock(&v->lock);
	for (q = 0; q < v->nr_queues; q++)
		if (kicks & (1u << q))
			virtio_pci_notify(v->tp, q);
	if (virtio_pci_has_pending(v->tp))
		virtio_pci_poll(v->tp);
	after_device_call(v->owner, v);
	pthread_mutex_unlock(&v->lock);
}

static void wake_event(void *opaque, uint32_t events)
{
	struct vmm_virtio_devs *d = opaque;
	uint64_t cnt;

	if (read(d->wake_fd, &cnt, sizeof(cnt)) < 0) {
		/* nothing pending */
	}
	vdev_service(&d->con);
	vdev_service(&d->bal);
	agent_update(d);
}

static void timer_event(void *opaque, uint32_t events)
{
	struct vmm_virtio_devs *d = opaque;
	uint64_t cnt;

	if (read(d->timer_fd, &cnt, sizeof(cnt)) < 0) {
		/* spurious */
	}
	pthread_mutex_lock(&d->bal.lock);
	virtio_balloon_tick(d->balloon, now_ns());
	after_device_call(d, &d->bal);
	pthread_mutex_unlock(&d->bal.lock);
	/* Belt and braces: BAR moves and lost wakeups are caught here too. */
	__atomic_store_n(&d->con.cfg_dirty, true, __ATOMIC_RELAXED);
	__atomic_store_n(&d->bal.cfg_dirty, true, __ATOMIC_RELAXED);
	wake_event(d, 0);
}

/* ---- agent socket (event thread) ------------------------------------------------- */

static void agent_disconnect(struct vmm_virtio_devs *d)
{
	if (d->agent_fd < 0)
		return;
	vmm_evloop_del(d->loop, d->agent_watch);
	d->agent_watch = NULL;
	close(d->agent_fd);
	d->agent_fd = -1;
	d->agent_events = 0;
	__atomic_store_n(&d->want_agent_out, false, __ATOMIC_RELAXED);
	pthread_mutex_lock(&d->con.lock);
	virtio_console_set_host_connected(d->console, VIRTIO_CONSOLE_PORT_AGENT, false);
	pthread_mutex_unlock(&d->con.lock);
}

static void agent_client_event(void *opaque, uint32_t events)
{
	struct vmm_virtio_devs *d = opaque;
	ssize_t n = 0;

	if (events & EPOLLOUT) {
		__atomic_store_n(&d->want_agent_out, false, __ATOMIC_RELAXED);
		pthread_mutex_lock(&d->con.lock);
		virtio_console_host_writable(d->console, VIRTIO_CONSOLE_PORT_AGENT);
		after_device_call(d, &d->con);
		pthread_mutex_unlock(&d->con.lock);
	}
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
		pthread_mutex_lock(&d->con.lock);
		n = virtio_console_read_fd(d->console, VIRTIO_CONSOLE_PORT_AGENT, d->agent_fd);
		after_device_call(d, &d->con);
		pthread_mutex_unlock(&d->con.lock);
		if (n == -ENOBUFS || n == -ENOTCONN)  /* wait for rx_ready / port_open */
			__atomic_store_n(&d->want_agent_in, false, __ATOMIC_RELAXED);
		else if (n == 0 || (n < 0 && n != -EAGAIN && n != -EINTR)) {
			agent_disconnect(d);
			return;
		}
	}
	agent_update(d);
}

/* Makes the client's watch match what the device can take now. */
static void agent_update(struct vmm_virtio_devs *d)
{
	uint32_t ev = 0;

	if (d->agent_fd < 0)
		return;
	if (__atomic_load_n(&d->want_agent_in, __ATOMIC_RELAXED))
		ev |= EPOLLIN;
	if (__atomic_load_n(&d->want_agent_out, __ATOMIC_RELAXED))
		ev |= EPOLLOUT;
	if (ev != d->agent_events && vmm_evloop_mod(d->loop, d->agent_watch, ev) == 0)
		d->agent_events = ev;
}

static void agent_accept(void *opaque, uint32_t events)
{
	struct vmm_virtio_devs *d = opaque;
	int fd = accept4(d->agent_listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

	if (fd < 0)
		return;
	if (d->agent_fd >= 0 || !vmm_peer_allowed(fd)) {  /* CLIENT: one at a time, our uid or root */
		d->nr_agent_refused++;
		close(fd);
		return;
	}
	if (vmm_evloop_add(d->loop, fd, 0, agent_client_event, d, &d->agent_watch)) {
		close(fd);
		return;
	}
	d->agent_fd = fd;
	d->agent_events = 0;
	pthread_mutex_lock(&d->con.lock);
	virtio_console_set_host_connected(d->console, VIRTIO_CONSOLE_PORT_AGENT, true);
	if (virtio_console_guest_open(d->console, VIRTIO_CONSOLE_PORT_AGENT))
		__atomic_store_n(&d->want_agent_in, true, __ATOMIC_RELAXED);
	after_device_call(d, &d->con);
	pthread_mutex_unlock(&d->con.lock);
	agent_update(d);
}

static int agent_listen(struct vmm_virtio_devs *d, const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	mode_t old;
	int fd, ret;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	unlink(path);  /* our name lock is held: a file here is stale */
	old = umask(0077);
	ret = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (ret < 0 || chmod(path, 0600) < 0 || listen(fd, 4) < 0) {
		ret = -errno;
		close(fd);
		return ret;
	}
	d->agent_listen_fd = fd;
	d->agent_path = strdup(path);
	if (!d->agent_path)
		return -ENOMEM;
	return vmm_evloop_add(d->loop, fd, EPOLLIN, agent_accept, d, &d->agent_listen_watch);
}

/* ---- create / start / destroy ------------------------------------------------------ */

int vmm_virtio_devs_create(const struct vmm_virtio_devs_cfg *cfg, struct vmm_virtio_devs **out)
{
	struct vmm_virtio_devs *d;
	uint32_t period_ms;
	int ret;

	*out = NULL;
	if (cfg->opts.disable)
		return 0;
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->vm = cfg->vm;
	d->cfg = *cfg;
	d->wake_fd = d->timer_fd = d->agent_listen_fd = d->agent_fd = -1;
	vdev_init(d, &d->con, "console");
	vdev_init(d, &d->bal, "balloon");

	{
		struct virtio_console_cfg cc = {
			.host = &d->con.host, .port_write = con_port_write,
			.port_open = con_port_open, .rx_ready = con_rx_ready, .opaque = d,
		};

		ret = virtio_console_create(&cc, &d->console);
		if (ret)
			goto fail;
		d->con.tp = virtio_console_pci(d->console);
	}
	period_ms = cfg->opts.balloon_stats_period_ms ? cfg->opts.balloon_stats_period_ms
						      : DEFAULT_STATS_PERIOD_MS;
	{
		struct virtio_balloon_cfg bc = {
			.host = &d->bal.host,
			.guest_pfn_limit = cfg->ram_end_gpa >> VIRTIO_PAGE_SHIFT,
			.stats_vq = true,
			.deflate_on_oom = cfg->opts.balloon_deflate_on_oom,
			.free_page_reporting = !cfg->opts.balloon_no_reporting,
			.stats_period_ns = (uint64_t)period_ms * 1000000ull,
			.pages_released = bal_released, .opaque = d,
		};

		ret = virtio_balloon_create(&bc, &d->balloon);
		if (ret)
			goto fail;
		d->bal.tp = virtio_balloon_pci(d->balloon);
	}
	ret = vdev_add_pci(d, &d->con, VIRTIO_ID_CONSOLE, 0x078000);
	if (!ret)
		ret = vdev_add_pci(d, &d->bal, VIRTIO_ID_BALLOON, 0x058000);
	if (ret)
		goto fail;
	*out = d;
	return 0;
fail:
	vmm_virtio_devs_destroy(d);
	return ret;
}

static int vdev_start(struct vmm_virtio_devs *d, struct vdev *v)
{
	uint16_t q;
	int ret;

	for (q = 0; q < v->nr_queues; q++) {
		struct doorbell *b = &v->bells[q];

		b->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (b->efd < 0)
			return -errno;
		ret = vmm_evloop_add(d->loop, b->efd, EPOLLIN, bell_event, b, &b->watch);
		if (ret)
			return ret;
	}
	bells_sync(v);
	return 0;
}

int vmm_virtio_devs_start(struct vmm_virtio_devs *d, struct vmm_evloop *loop,
			  const char *agent_path)
{
	struct itimerspec its = {
		.it_interval = { .tv_nsec = (long)TICK_PERIOD_NS },
		.it_value = { .tv_nsec = (long)TICK_PERIOD_NS },
	};
	int ret;

	if (!d)
		return 0;
	d->loop = loop;
	d->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	d->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (d->wake_fd < 0 || d->timer_fd < 0)
		return -errno;
	if (timerfd_settime(d->timer_fd, 0, &its, NULL) < 0)
		return -errno;
	if ((ret = vmm_evloop_add(loop, d->wake_fd, EPOLLIN, wake_event, d, &d->wake_watch)) ||
	    (ret = vmm_evloop_add(loop, d->timer_fd, EPOLLIN, timer_event, d, &d->timer_watch)) ||
	    (ret = vdev_start(d, &d->con)) || (ret = vdev_start(d, &d->bal)))
		return ret;
	if (agent_path)
		return agent_listen(d, agent_path);
	return 0;
}

static void vdev_stop(struct vmm_virtio_devs *d, struct vdev *v)
{
	unsigned q;

	for (q = 0; q < MAX_QUEUES; q++) {
		struct doorbell *b = &v->bells[q];

		if (b->watch)
			vmm_evloop_del(d->loop, b->watch);
		if (b->registered_gpa)
			vmm_vm_ioeventfd(d->vm, b->efd, b->registered_gpa, 2, false, false);
		if (b->efd >= 0)
			close(b->efd);
	}
	pthread_mutex_destroy(&v->lock);
}

void vmm_virtio_devs_destroy(struct vmm_virtio_devs *d)
{
	if (!d)
		return;
	if (d->agent_fd >= 0) {
		vmm_evloop_del(d->loop, d->agent_watch);
		close(d->agent_fd);
	}
	if (d->agent_listen_fd >= 0) {
		vmm_evloop_del(d->loop, d->agent_listen_watch);
		close(d->agent_listen_fd);
	}
	if (d->agent_path) {
		unlink(d->agent_path);
		free(d->agent_path);
	}
	if (d->wake_fd >= 0) {
		vmm_evloop_del(d->loop, d->wake_watch);
		close(d->wake_fd);
	}
	if (d->timer_fd >= 0) {
		vmm_evloop_del(d->loop, d->timer_watch);
		close(d->timer_fd);
	}
	vdev_stop(d, &d->con);
	vdev_stop(d, &d->bal);
	/* The PCI functions stay on the bus (it has no removal); the bus is
	 * destroyed after us and no vCPU runs any more. */
	virtio_console_destroy(d->console);
	virtio_balloon_destroy(d->balloon);
	free(d);
}

/* ---- queries ---------------------------------------------------------------------- */

struct virtio_balloon *vmm_virtio_balloon(struct vmm_virtio_devs *d)
{
	return d ? d->balloon : NULL;
}

int vmm_virtio_balloon_set_size(struct vmm_virtio_devs *d, uint64_t guest_bytes)
{
	uint64_t pages;

	if (!d || !d->balloon)
		return -ENODEV;
	/* CLIENT: at most the guest's RAM; the balloon takes the rest. */
	if (guest_bytes > d->cfg.mem_bytes)
		return -EINVAL;
	pages = (d->cfg.mem_bytes - guest_bytes) >> VIRTIO_PAGE_SHIFT;
	if (pages > UINT32_MAX)
		return -ERANGE;
	pthread_mutex_lock(&d->bal.lock);
	virtio_balloon_set_target_pages(d->balloon, (uint32_t)pages);
	pthread_mutex_unlock(&d->bal.lock);
	return 0;
}

int vmm_virtio_balloon_info(struct vmm_virtio_devs *d, struct vmm_balloon_info *out)
{
	const struct virtio_balloon_counters *c;
	struct virtio_balloon_stats st;
	unsigned t;

	memset(out, 0, sizeof(*out));
	if (!d || !d->balloon)
		return -ENODEV;
	pthread_mutex_lock(&d->bal.lock);
	out->mem_bytes = d->cfg.mem_bytes;
	out->target_pages = virtio_balloon_target_pages(d->balloon);
	out->actual_pages = virtio_balloon_actual_pages(d->balloon);
	out->nr_ballooned_pages = virtio_balloon_nr_ballooned_pages(d->balloon);
	out->driver_ok = virtio_pci_driver_ok(d->bal.tp);
	out->features = virtio_pci_features(d->bal.tp);
	c = virtio_balloon_counters(d->balloon);
	out->nr_inflated_pages = c->nr_inflated_pages;
	out->nr_deflated_pages = c->nr_deflated_pages;
	out->nr_oom_deflated_pages = c->nr_oom_deflated_pages;
	out->nr_reported_pages = c->nr_reported_pages;
	out->nr_bad_pfns = c->nr_bad_pfns;
	out->nr_madvise_calls = d->nr_madvise_calls;
	out->nr_discarded_pages = d->nr_discarded_pages;
	out->madvise_ns = d->madvise_ns;
	out->nr_madvise_errors = d->nr_madvise_errors;
	out->nr_exit_kicks = __atomic_load_n(&d->bal.nr_fallback_kicks, __ATOMIC_RELAXED);
	out->have_stats = virtio_balloon_get_stats(d->balloon, &st);
	pthread_mutex_unlock(&d->bal.lock);
	if (out->have_stats) {
		uint64_t now = now_ns();

		out->stats_age_ms = now > st.updated_ns ? (int64_t)((now - st.updated_ns) / 1000000) : 0;
		out->stats_valid_mask = st.valid_mask;
		for (t = 0; t < 16 && t < VIRTIO_BALLOON_STATS_MAX_TAGS; t++)
			out->stats[t] = st.values[t];
	} else {
		out->stats_age_ms = -1;
	}
	return 0;
}

const char *vmm_balloon_stat_name(unsigned tag)
{
	/* The tag numbers of the virtio spec (5.5.6.3), also newer than our headers. */
	static const char *const names[] = {
		"swap_in", "swap_out", "major_faults", "minor_faults", "free_memory",
		"total_memory", "available_memory", "disk_caches", "hugetlb_allocations",
		"hugetlb_failures", "oom_kills", "alloc_stalls", "async_scans",
		"direct_scans", "async_reclaims", "direct_reclaims",
	};

	return tag < sizeof(names) / sizeof(names[0]) ? names[tag] : NULL;
}

void vmm_virtio_console_input(struct vmm_virtio_devs *d, const void *buf, size_t len)
{
	if (!d || !d->console)
		return;
	pthread_mutex_lock(&d->con.lock);
	if (virtio_console_guest_open(d->console, VIRTIO_CONSOLE_PORT_CONSOLE))
		virtio_console_write(d->console, VIRTIO_CONSOLE_PORT_CONSOLE, buf, len);
	after_device_call(d, &d->con);
	pthread_mutex_unlock(&d->con.lock);
}

int vmm_virtio_console_info(struct vmm_virtio_devs *d, struct vmm_console_info *out)
{
	const struct virtio_console_counters *c;

	memset(out, 0, sizeof(*out));
	if (!d || !d->console)
		return -ENODEV;
	out->agent_client = d->agent_fd >= 0;
	pthread_mutex_lock(&d->con.lock);
	out->agent_guest_open = virtio_console_guest_open(d->console, VIRTIO_CONSOLE_PORT_AGENT);
	c = virtio_console_counters(d->console);
	out->agent_tx_bytes = c->nr_tx_bytes[VIRTIO_CONSOLE_PORT_AGENT];
	out->agent_rx_bytes = c->nr_rx_bytes[VIRTIO_CONSOLE_PORT_AGENT];
	out->console_tx_bytes = c->nr_tx_bytes[VIRTIO_CONSOLE_PORT_CONSOLE];
	pthread_mutex_unlock(&d->con.lock);
	return 0;
}
