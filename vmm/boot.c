/*
 * vmm/boot.c — the x86-64 Linux boot protocol: bzImage validation, load
 * plan, e820 map, zero page, GDT and identity page tables.  See boot.h for
 * the guest-physical layout.
 *
 * Overview.  A bzImage starts with the real-mode setup sectors; the setup
 * header sits at offset 0x1f1 and describes the protected-mode kernel that
 * follows.  With the 64-bit boot protocol (2.12+, XLF_KERNEL_64) a loader
 * skips the real-mode code entirely: it copies the setup header into a
 * zeroed boot_params, fills in memory map, command line and initrd, loads
 * the protected-mode kernel at an address it may use (pref_address, or any
 * kernel_alignment-aligned address if relocatable) and jumps to load + 0x200
 * in long mode with identity paging, __BOOT_CS/__BOOT_DS and %rsi pointing
 * at boot_params.  The kernel then needs init_size bytes from its load
 * address for decompression; the initrd must lie within initrd_addr_max.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "base/page.h"
#include "vmm/boot.h"

#define SETUP_HEADER_OFFSET 0x1f1
#define HDRS_MAGIC 0x53726448u  /* "HdrS" */
#define BOOT_FLAG 0xaa55

static uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t rd64(const uint8_t *p)
{
	return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

#define HDR_OFF(field) (SETUP_HEADER_OFFSET + offsetof(struct setup_header, field))

/* CLIENT: the bzImage is user input; nothing is trusted until checked here. */
int vmm_bzimage_parse(const uint8_t *buf, size_t len, struct vmm_bzimage *out,
		      char *err, size_t err_len)
{
	unsigned setup_sects;
	size_t setup_bytes, header_end;
	uint32_t syssize, init_size, align;
	uint64_t sys_bytes;
	uint16_t version, xloadflags;
	uint8_t loadflags;

#define FAIL(...) do { snprintf(err, err_len, __VA_ARGS__); return -ENOEXEC; } while (0)
	memset(out, 0, sizeof(*out));
	if (!buf || len < 1024)
		FAIL("file too small (%zu bytes) to be a bzImage", len);
	if (len > VMM_BZIMAGE_MAX_BYTES)
		FAIL("file too large (%zu bytes) for a kernel image", len);
	if (rd16(buf + HDR_OFF(boot_flag)) != BOOT_FLAG)
		FAIL("no 0xAA55 boot flag at offset 0x1fe");
	if (rd32(buf + HDR_OFF(header)) != HDRS_MAGIC)
		FAIL("no \"HdrS\" setup header signature at offset 0x202 (is this a vmlinux or a compressed file? give the bzImage, e.g. /boot/vmlinuz-*)");
	version = rd16(buf + HDR_OFF(version));
	if (version < VMM_BOOT_MIN_VERSION)
		FAIL("boot protocol %u.%02u is too old: 64-bit entry needs 2.12 (Linux 3.8 or newer)",
		     (unsigned)version >> 8, (unsigned)version & 0xffu);
	setup_sects = buf[HDR_OFF(setup_sects)];
	if (setup_sects == 0)
		setup_sects = 4;
	setup_bytes = ((size_t)setup_sects + 1) * 512;
	if (setup_bytes >= len)
		FAIL("setup sectors (%zu bytes) cover the whole file: no kernel follows", setup_bytes);
	/* The header's length is given by the jump at 0x200: 0x202 + its offset. */
	header_end = 0x202 + (size_t)buf[0x201];
	if (header_end > SETUP_HEADER_OFFSET + sizeof(struct setup_header))
		header_end = SETUP_HEADER_OFFSET + sizeof(struct setup_header);
	if (header_end < HDR_OFF(handover_offset) || header_end > setup_bytes)
		FAIL("setup header is truncated (ends at 0x%zx)", header_end);
	loadflags = buf[HDR_OFF(loadflags)];
	if (!(loadflags & VMM_LOADED_HIGH))
		FAIL("kernel is not loaded high (zImage): only bzImage is supported");
	xloadflags = rd16(buf + HDR_OFF(xloadflags));
	if (!(xloadflags & VMM_XLF_KERNEL_64))
		FAIL("kernel has no 64-bit entry point (XLF_KERNEL_64): is it a 32-bit kernel?");
	syssize = rd32(buf + HDR_OFF(syssize));
	sys_bytes = (uint64_t)syssize * 16;
	if (syssize == 0 || sys_bytes > (uint64_t)(len - setup_bytes) + 15)
		FAIL("syssize (%llu bytes) does not match the file (%zu bytes after setup)",
		     (unsigned long long)sys_bytes, len - setup_bytes);
	init_size = rd32(buf + HDR_OFF(init_size));
	if (init_size < len - setup_bytes)
		FAIL("init_size (%u) smaller than the kernel itself (%zu)", init_size, len - setup_bytes);
	if (init_size > (1u << 30))
		FAIL("init_size (%u bytes) is implausibly large", init_size);
	out->relocatable = buf[HDR_OFF(relocatable_kernel)] != 0;
	align = rd32(buf + HDR_OFF(kernel_alignment));
	if (out->relocatable && (align == 0 || (align & (align - 1)) || align > (1u << 30)))
		FAIL("kernel_alignment 0x%x is not a sane power of two", align);
	out->alignment_bytes = align;
	out->pref_gpa = rd64(buf + HDR_OFF(pref_address));
	if (out->pref_gpa < VMM_HIGH_MEM_GPA || out->pref_gpa >= VMM_PCI_HOLE_START ||
	    (out->pref_gpa & (EBB_PAGE_BYTES - 1)))
		FAIL("pref_address 0x%llx is not a usable load address",
		     (unsigned long long)out->pref_gpa);
	if (out->relocatable && (out->pref_gpa & (align - 1)))
		FAIL("pref_address 0x%llx is not aligned to kernel_alignment 0x%x",
		     (unsigned long long)out->pref_gpa, align);
	out->cmdline_max_bytes = rd32(buf + HDR_OFF(cmdline_size));
	if (out->cmdline_max_bytes == 0)
		FAIL("cmdline_size is 0");
	if (out->cmdline_max_bytes > VMM_BOOT_CMDLINE_MAX_BYTES - 1)
		out->cmdline_max_bytes = VMM_BOOT_CMDLINE_MAX_BYTES - 1;
	out->initrd_addr_max = rd32(buf + HDR_OFF(initrd_addr_max));
	if (out->initrd_addr_max == 0)
		out->initrd_addr_max = 0x37ffffff;  /* boot.rst: default for old kernels */
	out->setup = buf;
	out->setup_bytes = setup_bytes;
	out->kernel = buf + setup_bytes;
	out->kernel_bytes = len - setup_bytes;
	out->header_end = header_end;
	out->version = version;
	out->init_size_bytes = init_size;
	return 0;
#undef FAIL
}

int vmm_mem_layout_init(uint64_t mem_bytes, struct vmm_mem_layout *out)
{
	memset(out, 0, sizeof(*out));
	if (mem_bytes < VMM_MIN_MEM_BYTES || mem_bytes % EBB_PAGE_BYTES)
		return -EINVAL;
	if (mem_bytes > VMM_MAX_MEM_BYTES)
		return -ERANGE;
	out->mem_bytes = mem_bytes;
	out->low_bytes = mem_bytes < VMM_PCI_HOLE_START ? mem_bytes : VMM_PCI_HOLE_START;
	out->high_bytes = mem_bytes - out->low_bytes;
	return 0;
}

static uint64_t align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) & ~(a - 1);
}

int vmm_boot_plan(const struct vmm_bzimage *img, const struct vmm_mem_layout *mem,
		  uint64_t initrd_bytes, size_t cmdline_bytes, struct vmm_boot_plan *out,
		  char *err, size_t err_len)
{
	uint64_t top, initrd_gpa;

	memset(out, 0, sizeof(*out));
	if (cmdline_bytes > img->cmdline_max_bytes) {
		snprintf(err, err_len, "kernel command line is %zu bytes; this kernel accepts at most %u",
			 cmdline_bytes, img->cmdline_max_bytes);
		return -E2BIG;
	}
	out->kernel_gpa = img->pref_gpa;
	out->kernel_end_gpa = align_up(img->pref_gpa + img->init_size_bytes, EBB_PAGE_BYTES);
	if (out->kernel_end_gpa > mem->low_bytes) {
		snprintf(err, err_len,
			 "the kernel needs memory up to %llu MiB to decompress; give --mem %lluM or more",
			 (unsigned long long)(out->kernel_end_gpa >> 20),
			 (unsigned long long)(out->kernel_end_gpa >> 20) + 64);
		return -ENOMEM;
	}
	out->entry_gpa = out->kernel_gpa + 0x200;
	out->cmdline_gpa = VMM_BOOT_CMDLINE_GPA;
	out->cmdline_bytes = cmdline_bytes;
	out->initrd_bytes = initrd_bytes;
	if (initrd_bytes == 0)
		return 0;
	/* As high as allowed: the last byte at or below initrd_addr_max and in low RAM. */
	top = (uint64_t)img->initrd_addr_max + 1;
	if (top > mem->low_bytes)
		top = mem->low_bytes;
	initrd_gpa = top > initrd_bytes ? (top - initrd_bytes) & ~(EBB_PAGE_BYTES - 1) : 0;
	if (top <= initrd_bytes || initrd_gpa < out->kernel_end_gpa) {
		uint64_t need = out->kernel_end_gpa + align_up(initrd_bytes, EBB_PAGE_BYTES);

		if (need > (uint64_t)img->initrd_addr_max + 1)
			snprintf(err, err_len,
				 "initrd (%llu MiB) does not fit below this kernel's initrd_addr_max "
				 "(0x%x) after the kernel; use a smaller initrd",
				 (unsigned long long)(initrd_bytes >> 20), img->initrd_addr_max);
		else
			snprintf(err, err_len,
				 "initrd (%llu MiB) does not fit in guest memory next to the kernel; "
				 "give --mem %lluM or more, or use a smaller initrd",
				 (unsigned long long)(initrd_bytes >> 20),
				 (unsigned long long)(need >> 20) + 64);
		return -ENOMEM;
	}
	out->initrd_gpa = initrd_gpa;
	return 0;
}

static unsigned e820_add(struct boot_e820_entry *out, unsigned n, unsigned max,
			 uint64_t addr, uint64_t size, uint32_t type)
{
	if (n >= max || size == 0)
		return n;
	out[n].addr = addr;
	out[n].size = size;
	out[n].type = type;
	return n + 1;
}

unsigned vmm_e820_build(const struct vmm_mem_layout *mem, struct boot_e820_entry *out,
			unsigned max)
{
	unsigned n = 0;

	n = e820_add(out, n, max, 0, VMM_EBDA_GPA, VMM_E820_RAM);
	n = e820_add(out, n, max, VMM_EBDA_GPA, 0xa0000 - VMM_EBDA_GPA, VMM_E820_RESERVED);
	n = e820_add(out, n, max, VMM_BIOS_GPA, VMM_BIOS_END_GPA - VMM_BIOS_GPA, VMM_E820_RESERVED);
	n = e820_add(out, n, max, VMM_HIGH_MEM_GPA, mem->low_bytes - VMM_HIGH_MEM_GPA, VMM_E820_RAM);
	n = e820_add(out, n, max, VMM_4G, mem->high_bytes, VMM_E820_RAM);
	return n;
}

void vmm_boot_params_build(struct boot_params *bp, const struct vmm_bzimage *img,
			   const struct vmm_boot_plan *plan, const struct vmm_mem_layout *mem)
{
	memset(bp, 0, sizeof(*bp));
	memcpy((uint8_t *)bp + SETUP_HEADER_OFFSET, img->setup + SETUP_HEADER_OFFSET,
	       img->header_end - SETUP_HEADER_OFFSET);
	bp->hdr.type_of_loader = 0xff;  /* undefined loader */
	bp->hdr.loadflags |= VMM_CAN_USE_HEAP;
	bp->hdr.heap_end_ptr = 0xfe00;
	bp->hdr.vid_mode = 0xffff;      /* "normal" */
	bp->hdr.code32_start = (uint32_t)plan->kernel_gpa;
	bp->hdr.cmd_line_ptr = (uint32_t)plan->cmdline_gpa;
	bp->ext_cmd_line_ptr = (uint32_t)(plan->cmdline_gpa >> 32);
	bp->hdr.ramdisk_image = (uint32_t)plan->initrd_gpa;
	bp->ext_ramdisk_image = (uint32_t)(plan->initrd_gpa >> 32);
	bp->hdr.ramdisk_size = (uint32_t)plan->initrd_bytes;
	bp->ext_ramdisk_size = (uint32_t)(plan->initrd_bytes >> 32);
	bp->e820_entries = (uint8_t)vmm_e820_build(mem, bp->e820_table, E820_MAX_ENTRIES_ZEROPAGE);
}

/* Segment descriptor: base 0, limit 0xfffff (4 GiB with G). */
static uint64_t gdt_entry(uint16_t flags, uint32_t base, uint32_t limit)
{
	return ((uint64_t)(base & 0xff000000u) << 32) | ((uint64_t)(flags & 0xf0ff) << 40) |
	       ((uint64_t)(limit & 0x000f0000u) << 32) | ((uint64_t)(base & 0x00ffffffu) << 16) |
	       (uint64_t)(limit & 0x0000ffffu);
}

void vmm_boot_gdt(uint64_t gdt[VMM_BOOT_GDT_ENTRIES])
{
	gdt[0] = 0;
	gdt[1] = 0;
	gdt[2] = gdt_entry(0xa09b, 0, 0xfffff);  /* code: P, DPL0, S, exec/read, L, G */
	gdt[3] = gdt_entry(0xc093, 0, 0xfffff);  /* data: P, DPL0, S, read/write, DB, G */
	gdt[4] = gdt_entry(0x808b, 0, 0xfffff);  /* TSS: P, busy 32/64-bit TSS, G */
}

static void wr64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, sizeof(v));
}

void vmm_boot_load(uint8_t *ram, const struct vmm_mem_layout *mem, const struct vmm_bzimage *img,
		   const struct vmm_boot_plan *plan, const char *cmdline, const uint8_t *initrd)
{
	uint64_t gdt[VMM_BOOT_GDT_ENTRIES];
	struct boot_params *bp = (struct boot_params *)(ram + VMM_BOOT_PARAMS_GPA);
	unsigned i, j;

	vmm_boot_gdt(gdt);
	memcpy(ram + VMM_BOOT_GDT_GPA, gdt, sizeof(gdt));

	/* Identity map 0-4 GiB with 2 MiB pages: PML4[0] -> PDPT[0..3] -> PD. */
	memset(ram + VMM_BOOT_PML4_GPA, 0, 6 * EBB_PAGE_BYTES);
	wr64(ram + VMM_BOOT_PML4_GPA, VMM_BOOT_PDPT_GPA | 0x3);
	for (i = 0; i < 4; i++) {
		uint64_t pd = VMM_BOOT_PD_GPA + i * EBB_PAGE_BYTES;

		wr64(ram + VMM_BOOT_PDPT_GPA + i * 8, pd | 0x3);
		for (j = 0; j < 512; j++)
			wr64(ram + pd + j * 8, (((uint64_t)i * 512 + j) << 21) | 0x83);
	}

	vmm_boot_params_build(bp, img, plan, mem);
	memset(ram + plan->cmdline_gpa, 0, plan->cmdline_bytes + 1);
	memcpy(ram + plan->cmdline_gpa, cmdline, plan->cmdline_bytes);
	memcpy(ram + plan->kernel_gpa, img->kernel, img->kernel_bytes);
	if (initrd && plan->initrd_bytes)
		memcpy(ram + plan->initrd_gpa, initrd, plan->initrd_bytes);
}
