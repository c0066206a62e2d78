/*
 * vmm/virtio_devs.c — the generic glue between virtio/'s devices and the VM:
 * the device list (VMM_VIRTIO_DEVICES of vmm/virtio_dev.h, one file per
 * device), one PCI function per device on the bus, BAR and config accesses
 * forwarded to the device's transport, doorbells through ioeventfds kept
 * where the bus maps BAR0 (its bar_changed callback), interrupts through
 * KVM_SIGNAL_MSI / KVM_IRQ_LINE, the one guest-log limiter, and the event
 * thread's wake eventfd and tick.  Owns no device: the console and its agent
 * bridge, the balloon and its discard live in their files.  See
 * vmm/virtio_devs.h for the threading.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "virtio/pci.h"
#include "vmm/pci.h"
#include "vmm/virtio_dev.h"
#include "vmm/virtio_devs.h"
#include "vmm/vm.h"

#define TICK_PERIOD_NS 200000000ull          /* balloon tick / housekeeping */
#define MAX_QUEUES 8u                        /* console has 6, balloon 4 */

/* The registered devices, in PCI slot order. */
#define VMM_VDEV_ENTRY(name) &vmm_vdev_##name,
static const struct vmm_vdev_type *const vdev_types[] = { VMM_VIRTIO_DEVICES(VMM_VDEV_ENTRY) };
#undef VMM_VDEV_ENTRY
#define NR_DEVS (sizeof(vdev_types) / sizeof(vdev_types[0]))

/* One doorbell: queue q of a device. */
struct doorbell {
	struct vmm_vdev *dev;
	uint16_t q;
	int efd;
	uint64_t registered_gpa;   /* 0: not registered with KVM */
	struct vmm_ev_watch *watch;
};

/* One virtio-pci function. */
struct vmm_vdev {
	struct vmm_virtio_devs *owner;
	const struct vmm_vdev_type *type;
	const char *name;
	void *priv;                  /* the device file's state */
	pthread_mutex_t lock;        /* around every call into tp / the device */
	struct virtio_host host;
	struct virtio_pci *tp;       /* the device's transport (owned by the device) */
	struct vmm_pci_dev *pci;
	struct doorbell bells[MAX_QUEUES];
	uint16_t nr_queues;
	uint32_t fallback_kicks;     /* atomic: bit q = notify write reached the VMM */
	uint64_t nr_fallback_kicks;  /* atomic */
	bool cfg_dirty;              /* atomic: BAR0 moved: re-register bells */
};

struct vmm_virtio_devs {
	struct vmm_vm *vm;
	struct vmm_virtio_devs_cfg cfg;
	struct vmm_evloop *loop;
	struct vmm_vdev devs[NR_DEVS];
	unsigned nr_devs;            /* created so far */

	int wake_fd;                 /* eventfd: deferred work, fallback kicks, BAR moves */
	int timer_fd;
	struct vmm_ev_watch *wake_watch, *timer_watch;

	/*
	 * Every line a guest can cause (the devices' own, already limited per
	 * device, and the glue's) passes this one limiter; log_lock is a leaf
	 * (taken under a device lock or none).
	 */
	pthread_mutex_t log_lock;
	struct ebb_ratelimit guest_rl;     /* log_lock */
	uint64_t nr_logs_suppressed;       /* log_lock: lines dropped, in total */
};

static void wake(struct vmm_virtio_devs *d)
{
	uint64_t one = 1;

	if (d->wake_fd >= 0 && write(d->wake_fd, &one, sizeof(one)) < 0) {
		/* counter full: a wakeup is pending anyway */
	}
}

static void guest_vlog(struct vmm_virtio_devs *d, enum ebb_log_level level, const char *fmt,
		       va_list ap) __attribute__((format(printf, 3, 0)));
static void guest_vlog(struct vmm_virtio_devs *d, enum ebb_log_level level, const char *fmt,
		       va_list ap)
{
	uint64_t nr_dropped = 0;
	char line[320];
	bool ok;

	pthread_mutex_lock(&d->log_lock);
	ok = ebb_ratelimit_ok(&d->guest_rl, vmm_now_ns(), EBB_RATELIMIT_BURST,
			      EBB_RATELIMIT_WINDOW_NS, &nr_dropped);
	if (!ok)
		d->nr_logs_suppressed++;
	pthread_mutex_unlock(&d->log_lock);
	if (!ok)
		return;
	vsnprintf(line, sizeof(line), fmt, ap);
	if (nr_dropped)
		vmm_logf(&d->cfg.log, level, "%s (%llu similar lines suppressed)", line,
			 (unsigned long long)nr_dropped);
	else
		vmm_logf(&d->cfg.log, level, "%s", line);
}

/* GUEST: a line the guest caused, through the one limiter (any thread). */
static void guest_log(struct vmm_virtio_devs *d, enum ebb_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void guest_log(struct vmm_virtio_devs *d, enum ebb_log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	guest_vlog(d, level, fmt, ap);
	va_end(ap);
}

/* ---- for the device files ----------------------------------------------------- */

void *vmm_virtio_devs_find(struct vmm_virtio_devs *d, const struct vmm_vdev_type *type)
{
	unsigned i;

	if (!d)
		return NULL;
	for (i = 0; i < d->nr_devs; i++)
		if (d->devs[i].type == type)
			return d->devs[i].priv;
	return NULL;
}

void vmm_vdev_lock(struct vmm_vdev *v)
{
	pthread_mutex_lock(&v->lock);
}

void vmm_vdev_unlock(struct vmm_vdev *v)
{
	pthread_mutex_unlock(&v->lock);
}

void vmm_vdev_after_call(struct vmm_vdev *v)
{
	if (virtio_pci_has_pending(v->tp))
		wake(v->owner);
}

void vmm_vdev_wake(struct vmm_vdev *v)
{
	wake(v->owner);
}

void vmm_vdev_guest_log(struct vmm_vdev *v, enum ebb_log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	guest_vlog(v->owner, level, fmt, ap);
	va_end(ap);
}

uint64_t vmm_vdev_nr_logs_suppressed(struct vmm_vdev *v)
{
	uint64_t n;

	pthread_mutex_lock(&v->owner->log_lock);
	n = v->owner->nr_logs_suppressed;
	pthread_mutex_unlock(&v->owner->log_lock);
	return n;
}

uint64_t vmm_vdev_nr_exit_kicks(struct vmm_vdev *v)
{
	return __atomic_load_n(&v->nr_fallback_kicks, __ATOMIC_RELAXED);
}

struct vmm_vm *vmm_vdev_vm(struct vmm_vdev *v)
{
	return v->owner->vm;
}

/* ---- virtio_host callbacks (device lock held) ------------------------------- */

static void *host_translate(void *opaque, virtio_gpa_t gpa, uint64_t len)
{
	struct vmm_vdev *v = opaque;

	return v->owner->vm ? vmm_vm_translate(v->owner->vm, gpa, len) : NULL;
}

/* Every line of the virtio library is about the guest (or rare): limited. */
static void host_log(void *opaque, enum ebb_log_level level, const char *msg)
{
	struct vmm_vdev *v = opaque;

	guest_log(v->owner, level, "virtio-%s: %s", v->name, msg);
}

static void host_raise_msi(void *opaque, uint16_t vector, uint64_t addr, uint32_t data)
{
	struct vmm_vdev *v = opaque;

	if (v->owner->vm)
		vmm_vm_signal_msi(v->owner->vm, addr, data);
}

static void host_set_intx(void *opaque, bool level)
{
	struct vmm_vdev *v = opaque;

	if (v->owner->vm && v->pci)
		vmm_vm_irq_line(v->owner->vm, vmm_pci_dev_gsi(v->pci), level);
}

/* GUEST: may the balloon take [gpa, gpa + len)?  Only e820 RAM. */
static bool host_ram_ok(void *opaque, virtio_gpa_t gpa, uint64_t len)
{
	struct vmm_vdev *v = opaque;

	return v->owner->vm && vmm_vm_ram_ok(v->owner->vm, gpa, len);
}

/* ---- PCI bus callbacks (vCPU threads) ---------------------------------------- */

static bool is_notify(struct vmm_vdev *v, uint64_t off, unsigned size, uint16_t *q)
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
	struct vmm_vdev *v = opaque;
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

/* GUEST: config write (bus lock held: pci -> device).  The header (below
 * 0x40, BARs and command included) is the bus's: its moves of BAR0 come
 * through bar_changed.  The capabilities are the transport's; a kick or
 * DRIVER_OK through the PCI_CFG window leaves work pending for the event
 * thread. */
static void cfg_write(void *opaque, unsigned off, const uint8_t *data, unsigned size)
{
	struct vmm_vdev *v = opaque;
	bool pending;

	if (off < 0x40)
		return;
	pthread_mutex_lock(&v->lock);
	virtio_pci_cfg_write(v->tp, off, data, size);
	pending = virtio_pci_has_pending(v->tp);
	pthread_mutex_unlock(&v->lock);
	if (pending)
		wake(v->owner);
}

/* GUEST: the standard header (< 0x40, BARs included) is the bus's; the
 * capabilities, MSI-X and the PCI_CFG window are the transport's. */
static void cfg_read(void *opaque, unsigned off, uint8_t *data, unsigned size)
{
	struct vmm_vdev *v = opaque;

	if (off < 0x40)
		return;
	pthread_mutex_lock(&v->lock);
	virtio_pci_cfg_read(v->tp, off, data, size);
	pthread_mutex_unlock(&v->lock);
}

/*
 * The bus moved BAR0's mapping (a config write on a vCPU thread, bus lock
 * held: the guest moved the BAR or toggled memory decoding): the event
 * thread moves the doorbells.  Only changes arrive here, so a guest cannot
 * make us retry in a loop.
 */
static void bar_changed(void *opaque, unsigned bar, uint64_t mapped)
{
	struct vmm_vdev *v = opaque;

	if (bar != 0)
		return;
	__atomic_store_n(&v->cfg_dirty, true, __ATOMIC_RELEASE);
	wake(v->owner);
}

static const struct vmm_pci_dev_ops vdev_pci_ops = {
	.bar_io = bar_io, .cfg_write = cfg_write, .cfg_read = cfg_read,
	.bar_changed = bar_changed,
};

static void vdev_init(struct vmm_virtio_devs *d, struct vmm_vdev *v,
		      const struct vmm_vdev_type *type)
{
	unsigned i;

	v->owner = d;
	v->type = type;
	v->name = type->name;
	pthread_mutex_init(&v->lock, NULL);
	v->host = (struct virtio_host){
		.translate = host_translate, .log = host_log, .raise_msi = host_raise_msi,
		.set_intx = host_set_intx, .ram_ok = host_ram_ok, .opaque = v,
	};
	for (i = 0; i < MAX_QUEUES; i++) {
		v->bells[i].dev = v;
		v->bells[i].q = (uint16_t)i;
		v->bells[i].efd = -1;
	}
}

/* The bus owns the header and BAR0; the transport the capabilities (from
 * VIRTIO_PCI_CAP_COMMON_AT on): no copy of either. */
static int vdev_add_pci(struct vmm_virtio_devs *d, struct vmm_vdev *v)
{
	uint16_t virtio_id = v->type->virtio_id;
	struct vmm_pci_dev_cfg pc = {
		.vendor_id = VIRTIO_PCI_VENDOR_ID,
		.device_id = (uint16_t)(VIRTIO_PCI_DEVICE_ID_BASE + virtio_id),
		.subsys_vendor_id = VIRTIO_PCI_VENDOR_ID,
		.subsys_id = (uint16_t)(0x40 + virtio_id),
		.class_code = v->type->pci_class, .revision = 1, .irq_pin = 1,
		.cap_ptr = VIRTIO_PCI_CAP_COMMON_AT,
		.bars = { [0] = { .size_bytes = VIRTIO_PCI_BAR0_SIZE, .is_io = false } },
		.ops = &vdev_pci_ops, .opaque = v,
	};

	v->nr_queues = virtio_pci_nr_queues(v->tp);
	if (v->nr_queues > MAX_QUEUES)
		return -EINVAL;
	return vmm_pci_add(vmm_vm_pci(d->vm), &pc, &v->pci);
}

/* ---- event thread --------------------------------------------------------------- */

static void bell_event(void *opaque, uint32_t events)
{
	struct doorbell *b = opaque;
	struct vmm_vdev *v = b->dev;
	uint64_t cnt;

	if (read(b->efd, &cnt, sizeof(cnt)) < 0) {
		/* spurious */
	}
	pthread_mutex_lock(&v->lock);
	virtio_pci_notify(v->tp, b->q);
	vmm_vdev_after_call(v);
	pthread_mutex_unlock(&v->lock);
	if (v->type->serviced)
		v->type->serviced(v->priv);
}

/*
 * Keeps each doorbell's ioeventfd at BAR0 + notify offset (event thread),
 * where the bus has BAR0 mapped: memory decoding on, inside the MMIO window
 * and not on top of another device's BAR.  Anywhere else no ioeventfd is
 * registered (a kick there reaches nobody, as on real hardware).
 */
static void bells_sync(struct vmm_vdev *v)
{
	uint64_t base, gpa;
	uint16_t q;

	if (!v->pci)
		return;
	base = vmm_pci_dev_bar_mapped(v->pci, 0);

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
				guest_log(v->owner, EBB_LOG_WARN,
					  "virtio-%s: KVM_IOEVENTFD at 0x%llx for queue %u: %s "
					  "(kicks will exit to the VMM)", v->name,
					  (unsigned long long)gpa, q, strerror(-ret));
		}
	}
}

static void vdev_service(struct vmm_vdev *v)
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
	vmm_vdev_after_call(v);
	pthread_mutex_unlock(&v->lock);
}

static void wake_event(void *opaque, uint32_t events)
{
	struct vmm_virtio_devs *d = opaque;
	uint64_t cnt;
	unsigned i;

	if (read(d->wake_fd, &cnt, sizeof(cnt)) < 0) {
		/* nothing pending */
	}
	for (i = 0; i < d->nr_devs; i++) {
		vdev_service(&d->devs[i]);
		if (d->devs[i].type->serviced)
			d->devs[i].type->serviced(d->devs[i].priv);
	}
}

static void timer_event(void *opaque, uint32_t events)
{
	struct vmm_virtio_devs *d = opaque;
	uint64_t cnt;
	unsigned i;

	if (read(d->timer_fd, &cnt, sizeof(cnt)) < 0) {
		/* spurious */
	}
	for (i = 0; i < d->nr_devs; i++) {
		struct vmm_vdev *v = &d->devs[i];

		if (!v->type->tick)
			continue;
		pthread_mutex_lock(&v->lock);
		v->type->tick(v->priv, vmm_now_ns());
		vmm_vdev_after_call(v);
		pthread_mutex_unlock(&v->lock);
	}
	/* Lost wakeups are caught here too (BAR moves arrive by bar_changed). */
	wake_event(d, 0);
}


/* ---- create / start / destroy ------------------------------------------------------ */

int vmm_virtio_devs_create(const struct vmm_virtio_devs_cfg *cfg, struct vmm_virtio_devs **out)
{
	struct vmm_virtio_devs *d;
	unsigned i;
	int ret;

	*out = NULL;
	if (cfg->opts.disable)
		return 0;
	d = calloc(1, sizeof(*d));
	if (!d)
		return -ENOMEM;
	d->vm = cfg->vm;
	d->cfg = *cfg;
	d->wake_fd = d->timer_fd = -1;
	pthread_mutex_init(&d->log_lock, NULL);
	for (i = 0; i < NR_DEVS; i++) {
		struct vmm_vdev *v = &d->devs[i];

		vdev_init(d, v, vdev_types[i]);
		d->nr_devs = i + 1;
		ret = v->type->create(v, cfg, &v->host, &v->priv, &v->tp);
		if (ret)
			goto fail;
	}
	/* without a VM (tests): no PCI functions */
	for (i = 0; cfg->vm && i < d->nr_devs; i++) {
		ret = vdev_add_pci(d, &d->devs[i]);
		if (ret)
			goto fail;
	}
	*out = d;
	return 0;
fail:
	vmm_virtio_devs_destroy(d);
	return ret;
}

static int vdev_start(struct vmm_virtio_devs *d, struct vmm_vdev *v)
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
	unsigned i;
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
	    (ret = vmm_evloop_add(loop, d->timer_fd, EPOLLIN, timer_event, d, &d->timer_watch)))
		return ret;
	for (i = 0; i < d->nr_devs; i++)
		if ((ret = vdev_start(d, &d->devs[i])))
			return ret;
	for (i = 0; i < d->nr_devs; i++) {
		const struct vmm_vdev_type *t = d->devs[i].type;

		if (t->start && (ret = t->start(d->devs[i].priv, loop, agent_path)))
			return ret;
	}
	return 0;
}

static void vdev_stop(struct vmm_virtio_devs *d, struct vmm_vdev *v)
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
}

void vmm_virtio_devs_destroy(struct vmm_virtio_devs *d)
{
	unsigned i;

	if (!d)
		return;
	if (d->wake_fd >= 0) {
		vmm_evloop_del(d->loop, d->wake_watch);
		close(d->wake_fd);
	}
	if (d->timer_fd >= 0) {
		vmm_evloop_del(d->loop, d->timer_watch);
		close(d->timer_fd);
	}
	for (i = 0; i < d->nr_devs; i++)
		vdev_stop(d, &d->devs[i]);
	/* The PCI functions stay on the bus (it has no removal); the bus is
	 * destroyed after us and no vCPU runs any more. */
	for (i = 0; i < d->nr_devs; i++) {
		d->devs[i].type->destroy(d->devs[i].priv);
		pthread_mutex_destroy(&d->devs[i].lock);
	}
	pthread_mutex_destroy(&d->log_lock);
	free(d);
}

/* ---- queries ---------------------------------------------------------------------- */

int vmm_virtio_pci_stats(struct vmm_virtio_devs *d, struct vmm_pci_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (!d || !d->vm)
		return -ENODEV;
	vmm_pci_get_stats(vmm_vm_pci(d->vm), out);
	return 0;
}
