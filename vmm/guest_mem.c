/*
 * vmm/guest_mem.c — the guest's memory map: the RAM mapping, its KVM slots,
 * its e820 map, the conversions between guest-physical addresses, host
 * addresses and RAM offsets, and the one check of a range a device gives
 * back.  See vmm/guest_mem.h.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>

#include <linux/kvm.h>

#include "vmm/guest_mem.h"

#define RAM_ALIGN (2ull << 20)   /* THP can back a 2 MiB aligned mapping */
#define PAGE_MASK_ 4095ull

int vmm_guest_mem_init(struct vmm_guest_mem *gm, uint64_t mem_bytes)
{
	int ret;

	memset(gm, 0, sizeof(*gm));
	ret = vmm_mem_layout_init(mem_bytes, &gm->layout);
	if (ret)
		return ret;
	gm->slots[gm->nr_slots++] = (struct vmm_guest_mem_slot){
		.id = 0, .gpa = 0, .ram_off = 0, .bytes = gm->layout.low_bytes,
	};
	if (gm->layout.high_bytes)
		gm->slots[gm->nr_slots++] = (struct vmm_guest_mem_slot){
			.id = 1, .gpa = VMM_4G, .ram_off = gm->layout.low_bytes,
			.bytes = gm->layout.high_bytes,
		};
	gm->nr_e820 = vmm_e820_build(&gm->layout, gm->e820, VMM_GUEST_MEM_MAX_E820);
	return 0;
}

int vmm_guest_mem_map(struct vmm_guest_mem *gm, char *err, size_t err_len)
{
	uint64_t mem = gm->layout.mem_bytes;
	size_t len = mem + RAM_ALIGN, head;
	uint8_t *p;

	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
		 -1, 0);
	if (p == MAP_FAILED) {
		snprintf(err, err_len, "cannot map %llu MiB of guest memory: %s",
			 (unsigned long long)(mem >> 20), strerror(errno));
		return -ENOMEM;
	}
	head = (RAM_ALIGN - ((uintptr_t)p & (RAM_ALIGN - 1))) & (RAM_ALIGN - 1);
	if (head)
		munmap(p, head);
	if (len - head > mem)
		munmap(p + head + mem, len - head - mem);
	gm->ram = p + head;
	return 0;
}

int vmm_guest_mem_set_slots(struct vmm_guest_mem *gm, int vm_fd, uint32_t flags)
{
	unsigned i;

	for (i = 0; i < gm->nr_slots; i++) {
		const struct vmm_guest_mem_slot *s = &gm->slots[i];
		struct kvm_userspace_memory_region r = {
			.slot = s->id, .flags = flags, .guest_phys_addr = s->gpa,
			.memory_size = s->bytes, .userspace_addr = (uintptr_t)(gm->ram + s->ram_off),
		};

		if (ioctl(vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0)
			return -errno;
	}
	return 0;
}

void vmm_guest_mem_unmap(struct vmm_guest_mem *gm)
{
	if (gm->ram)
		munmap(gm->ram, gm->layout.mem_bytes);
	gm->ram = NULL;
}

void vmm_guest_mem_set_sink(struct vmm_guest_mem *gm, vmm_guest_mem_sink_fn fn, void *ctx)
{
	gm->sink = fn;
	gm->sink_ctx = ctx;
}

/* ---- lookups ------------------------------------------------------------------ */

vmm_gpa_t vmm_guest_mem_end_gpa(const struct vmm_guest_mem *gm)
{
	const struct vmm_guest_mem_slot *last = &gm->slots[gm->nr_slots - 1];

	return last->gpa + last->bytes;
}

bool vmm_guest_mem_offset(const struct vmm_guest_mem *gm, vmm_gpa_t gpa, uint64_t len,
			  uint64_t *ram_off)
{
	uint64_t end;
	unsigned i;

	if (len == 0 || __builtin_add_overflow(gpa, len, &end))
		return false;
	for (i = 0; i < gm->nr_slots; i++) {
		const struct vmm_guest_mem_slot *s = &gm->slots[i];

		if (gpa >= s->gpa && end - s->gpa <= s->bytes) {
			*ram_off = s->ram_off + (gpa - s->gpa);
			return true;
		}
	}
	return false;
}

void *vmm_guest_mem_hva(const struct vmm_guest_mem *gm, vmm_gpa_t gpa, uint64_t len)
{
	uint64_t off;

	if (!gm->ram || !vmm_guest_mem_offset(gm, gpa, len, &off))
		return NULL;
	return gm->ram + off;
}

bool vmm_guest_mem_gpa(const struct vmm_guest_mem *gm, uint64_t ram_off, vmm_gpa_t *gpa)
{
	unsigned i;

	for (i = 0; i < gm->nr_slots; i++) {
		const struct vmm_guest_mem_slot *s = &gm->slots[i];

		if (ram_off >= s->ram_off && ram_off - s->ram_off < s->bytes) {
			*gpa = s->gpa + (ram_off - s->ram_off);
			return true;
		}
	}
	return false;
}

static bool e820_ram_ok(const struct boot_e820_entry *map, unsigned n, vmm_gpa_t gpa,
			uint64_t len)
{
	uint64_t end;
	unsigned i;

	if (len == 0 || __builtin_add_overflow(gpa, len, &end))
		return false;
	for (i = 0; i < n; i++)  /* RAM entries neither touch nor overlap */
		if (map[i].type == VMM_E820_RAM && gpa >= map[i].addr &&
		    end - map[i].addr <= map[i].size)
			return true;
	return false;
}

bool vmm_guest_mem_ram_ok(const struct vmm_guest_mem *gm, vmm_gpa_t gpa, uint64_t len)
{
	return e820_ram_ok(gm->e820, gm->nr_e820, gpa, len);
}

bool vmm_mem_layout_ram_ok(const struct vmm_mem_layout *mem, vmm_gpa_t gpa, uint64_t len)
{
	struct boot_e820_entry map[VMM_GUEST_MEM_MAX_E820];

	return e820_ram_ok(map, vmm_e820_build(mem, map, VMM_GUEST_MEM_MAX_E820), gpa, len);
}

/* ---- ranges given back ------------------------------------------------------------ */

int vmm_guest_mem_discard_range(struct vmm_guest_mem *gm, vmm_gpa_t gpa, uint64_t len)
{
	uint64_t off;

	/* GUEST: the one check of a range a device releases. */
	if ((gpa | len) & PAGE_MASK_ || !vmm_guest_mem_ram_ok(gm, gpa, len) ||
	    !vmm_guest_mem_offset(gm, gpa, len, &off) || !gm->ram)
		return -EINVAL;
	if (gm->sink)
		return gm->sink(gm->sink_ctx, off, len);
	return madvise(gm->ram + off, len, MADV_DONTNEED) < 0 ? -errno : 0;
}
