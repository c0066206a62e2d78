/*
 * vmm/guest_mem.h — the guest's physical memory map and its one owner.
 *
 * Guest RAM is one anonymous private mapping (MAP_PRIVATE|MAP_ANONYMOUS, so
 * KSM and userfaultfd can work on it), 2 MiB aligned so that transparent
 * huge pages can back it.  Its layout around the PCI hole (struct
 * vmm_mem_layout of vmm/boot.h) gives the KVM memory slots, at most two:
 *
 *   slot 0: gpa [0, low)              = RAM offset [0, low)
 *   slot 1: gpa [4 GiB, 4 GiB + high) = RAM offset [low, low + high)
 *
 * and the e820 map the guest is told (vmm_e820_build: the EBDA and the BIOS
 * area are reserved inside slot 0).  Everything that converts between a
 * guest-physical address, a host address and an offset into the RAM mapping
 * (the reclaim engine's page index is offset / 4096) asks this object; no
 * other file knows where the slots are, except that the boot code (vmm/boot.c
 * and load_guest in vmm/vm.c) writes the kernel, initrd and firmware tables
 * below the PCI hole at ram + gpa: slot 0 maps gpa 0 at offset 0.
 *
 * Devices give guest RAM back with vmm_guest_mem_discard_range(gpa, len):
 * the range is validated here, once (page aligned, e820 RAM, inside one
 * slot), turned into a RAM offset and handed to the sink: the reclaim
 * engine's region when it runs (vmm_memory_discard), else MADV_DONTNEED.
 *
 * Threads: the map is fixed once created; the lookups read it only and are
 * async-signal safe (the SIGBUS handler uses vmm_guest_mem_gpa).  The sink
 * is set before the vCPUs start.
 */
#ifndef EBB_VMM_GUEST_MEM_H
#define EBB_VMM_GUEST_MEM_H

#include <stdbool.h>
#include <stdint.h>

#include "vmm/boot.h"

#define VMM_GUEST_MEM_MAX_SLOTS 2
#define VMM_GUEST_MEM_MAX_E820 8

struct vmm_guest_mem_slot {
	uint32_t id;              /* KVM memory slot number */
	vmm_gpa_t gpa;            /* where the guest sees it */
	uint64_t ram_off;         /* where it starts in the RAM mapping */
	uint64_t bytes;
};

/* Where released RAM goes: [ram_off, ram_off + len), page aligned, inside
 * one slot.  0 or -errno. */
typedef int (*vmm_guest_mem_sink_fn)(void *ctx, uint64_t ram_off, uint64_t len);

struct vmm_guest_mem {
	struct vmm_mem_layout layout;
	uint8_t *ram;             /* the mapping; NULL until vmm_guest_mem_map */
	struct vmm_guest_mem_slot slots[VMM_GUEST_MEM_MAX_SLOTS];
	unsigned nr_slots;
	struct boot_e820_entry e820[VMM_GUEST_MEM_MAX_E820];
	unsigned nr_e820;
	vmm_guest_mem_sink_fn sink;   /* NULL: MADV_DONTNEED */
	void *sink_ctx;
};

/* The map for mem_bytes of RAM (no mapping yet): -EINVAL / -ERANGE as
 * vmm_mem_layout_init. */
int vmm_guest_mem_init(struct vmm_guest_mem *gm, uint64_t mem_bytes);
/* Maps the RAM.  -ENOMEM (err says so) when it cannot. */
int vmm_guest_mem_map(struct vmm_guest_mem *gm, char *err, size_t err_len);
/* Registers the slots with KVM (KVM_SET_USER_MEMORY_REGION, flags).  0 or
 * -errno. */
int vmm_guest_mem_set_slots(struct vmm_guest_mem *gm, int vm_fd, uint32_t flags);
/* Unmaps the RAM; safe on a map never mapped. */
void vmm_guest_mem_unmap(struct vmm_guest_mem *gm);
/* Where released ranges go (the reclaim engine); NULL fn: MADV_DONTNEED. */
void vmm_guest_mem_set_sink(struct vmm_guest_mem *gm, vmm_guest_mem_sink_fn fn, void *ctx);

/* Highest RAM address + 1. */
vmm_gpa_t vmm_guest_mem_end_gpa(const struct vmm_guest_mem *gm);
/* RAM offset of [gpa, gpa + len) when all of it lies in one slot. */
bool vmm_guest_mem_offset(const struct vmm_guest_mem *gm, vmm_gpa_t gpa, uint64_t len,
			  uint64_t *ram_off);
/* Host pointer for [gpa, gpa + len) when all of it is RAM in one slot, else
 * NULL (also before the RAM is mapped). */
void *vmm_guest_mem_hva(const struct vmm_guest_mem *gm, vmm_gpa_t gpa, uint64_t len);
/* Guest-physical address of RAM offset ram_off; false beyond the RAM. */
bool vmm_guest_mem_gpa(const struct vmm_guest_mem *gm, uint64_t ram_off, vmm_gpa_t *gpa);
/* Is [gpa, gpa + len) wholly inside RAM entries of the guest's e820 map?
 * Reserved ranges (EBDA, the MP table / BIOS area), holes and overflow:
 * false. */
bool vmm_guest_mem_ram_ok(const struct vmm_guest_mem *gm, vmm_gpa_t gpa, uint64_t len);
/* The same check against the e820 map of a layout (tests, boot). */
bool vmm_mem_layout_ram_ok(const struct vmm_mem_layout *mem, vmm_gpa_t gpa, uint64_t len);

/*
 * GUEST: the guest gave up [gpa, gpa + len) (balloon inflate, free page
 * reporting).  Validated here, once, for every device: page aligned, e820
 * RAM, one slot; then handed to the sink.  -EINVAL when the range is not
 * RAM the guest may give up (nothing is discarded), else the sink's 0 /
 * -errno.
 */
int vmm_guest_mem_discard_range(struct vmm_guest_mem *gm, vmm_gpa_t gpa, uint64_t len);

#endif
