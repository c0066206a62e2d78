/*
 * vmm/iobus.c — range dispatch for PIO and MMIO, see iobus.h.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/iobus.h"

struct range {
	uint64_t base, len;
	vmm_io_fn fn;
	void *opaque;
};

struct vmm_iobus {
	pthread_rwlock_t lock;        /* protects ranges, nr_ranges, cap */
	struct range *ranges;         /* sorted by base, non-overlapping */
	unsigned nr_ranges, cap;
	uint64_t nr_access;           /* atomic */
	uint64_t nr_unclaimed;        /* atomic */
};

int vmm_iobus_create(struct vmm_iobus **out)
{
	struct vmm_iobus *bus = calloc(1, sizeof(*bus));

	*out = NULL;
	if (!bus)
		return -ENOMEM;
	if (pthread_rwlock_init(&bus->lock, NULL)) {
		free(bus);
		return -ENOMEM;
	}
	*out = bus;
	return 0;
}

void vmm_iobus_destroy(struct vmm_iobus *bus)
{
	if (!bus)
		return;
	pthread_rwlock_destroy(&bus->lock);
	free(bus->ranges);
	free(bus);
}

/* Index of the first range with base > addr. */
static unsigned upper(const struct vmm_iobus *bus, uint64_t addr)
{
	unsigned lo = 0, hi = bus->nr_ranges;

	while (lo < hi) {
		unsigned mid = lo + (hi - lo) / 2;

		if (bus->ranges[mid].base <= addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

int vmm_iobus_register(struct vmm_iobus *bus, uint64_t base, uint64_t len, vmm_io_fn fn,
		       void *opaque)
{
	uint64_t end;
	unsigned i;
	int ret = 0;

	if (len == 0 || !fn || __builtin_add_overflow(base, len, &end))
		return -EINVAL;
	pthread_rwlock_wrlock(&bus->lock);
	i = upper(bus, base);
	if ((i > 0 && bus->ranges[i - 1].base + bus->ranges[i - 1].len > base) ||
	    (i < bus->nr_ranges && bus->ranges[i].base < end)) {
		ret = -EEXIST;
		goto out;
	}
	if (bus->nr_ranges == bus->cap) {
		unsigned cap = bus->cap ? bus->cap * 2 : 16;
		struct range *r = realloc(bus->ranges, cap * sizeof(*r));

		if (!r) {
			ret = -ENOMEM;
			goto out;
		}
		bus->ranges = r;
		bus->cap = cap;
	}
	memmove(&bus->ranges[i + 1], &bus->ranges[i], (bus->nr_ranges - i) * sizeof(struct range));
	bus->ranges[i] = (struct range){ .base = base, .len = len, .fn = fn, .opaque = opaque };
	bus->nr_ranges++;
out:
	pthread_rwlock_unlock(&bus->lock);
	return ret;
}

int vmm_iobus_unregister(struct vmm_iobus *bus, uint64_t base)
{
	unsigned i;
	int ret = -ENOENT;

	pthread_rwlock_wrlock(&bus->lock);
	i = upper(bus, base);
	if (i > 0 && bus->ranges[i - 1].base == base) {
		memmove(&bus->ranges[i - 1], &bus->ranges[i],
			(bus->nr_ranges - i) * sizeof(struct range));
		bus->nr_ranges--;
		ret = 0;
	}
	pthread_rwlock_unlock(&bus->lock);
	return ret;
}

/* GUEST: addr/size from a vCPU exit; the range check covers the whole access. */
bool vmm_iobus_dispatch(struct vmm_iobus *bus, uint64_t addr, uint8_t *data, unsigned size,
			bool is_write)
{
	const struct range *r = NULL;
	unsigned i;
	uint64_t end;

	__atomic_add_fetch(&bus->nr_access, 1, __ATOMIC_RELAXED);
	pthread_rwlock_rdlock(&bus->lock);
	i = upper(bus, addr);
	if (i > 0 && !__builtin_add_overflow(addr, (uint64_t)size, &end)) {
		r = &bus->ranges[i - 1];
		if (end > r->base + r->len)
			r = NULL;
	}
	if (r)
		r->fn(r->opaque, addr - r->base, data, size, is_write);
	pthread_rwlock_unlock(&bus->lock);
	if (!r) {
		__atomic_add_fetch(&bus->nr_unclaimed, 1, __ATOMIC_RELAXED);
		if (!is_write)
			memset(data, 0xff, size);
	}
	return r != NULL;
}

void vmm_iobus_get_stats(struct vmm_iobus *bus, struct vmm_iobus_stats *out)
{
	out->nr_access = __atomic_load_n(&bus->nr_access, __ATOMIC_RELAXED);
	out->nr_unclaimed = __atomic_load_n(&bus->nr_unclaimed, __ATOMIC_RELAXED);
}
