/*
 * vmm/boot.h — the x86-64 Linux boot protocol, as a loader sees it
 * (Documentation/arch/x86/boot.rst): parsing and validating a bzImage's setup
 * header, choosing where kernel, initrd and command line go, the e820 map,
 * the zero page (struct boot_params), and the identity-mapped page tables and
 * GDT that the 64-bit entry point expects.
 *
 * Everything here is pure: it works on byte buffers and a description of the
 * guest's memory, so tests run it without KVM.  The bzImage is a file the user
 * gives and is treated as hostile: every field used is range-checked.
 *
 * Guest-physical layout (low memory):
 *   0x00500  GDT (null, null, __BOOT_CS 0x10, __BOOT_DS 0x18, TSS 0x20)
 *   0x07000  zero page (boot_params)
 *   0x09000  PML4, 0x0a000 PDPT, 0x0b000-0x0efff four PDs: 0-4 GiB, 2 MiB pages
 *   0x20000  kernel command line (up to 64 KiB)
 *   0x9fc00  reserved (EBDA)        0xf0000-0xfffff reserved (MP table lives here)
 *   0x100000 RAM; the kernel at its pref_address; the initrd as high as it may go
 * RAM above VMM_PCI_HOLE_START is moved to 4 GiB, leaving the PCI hole.
 */
#ifndef EBB_VMM_BOOT_H
#define EBB_VMM_BOOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <asm/bootparam.h>

typedef uint64_t vmm_gpa_t;

#define VMM_BOOT_GDT_GPA          0x500ull
#define VMM_BOOT_PARAMS_GPA       0x7000ull
#define VMM_BOOT_PML4_GPA         0x9000ull
#define VMM_BOOT_PDPT_GPA         0xa000ull
#define VMM_BOOT_PD_GPA           0xb000ull   /* 4 pages */
#define VMM_BOOT_CMDLINE_GPA      0x20000ull
#define VMM_BOOT_CMDLINE_MAX_BYTES 0x10000u
#define VMM_EBDA_GPA              0x9fc00ull
#define VMM_BIOS_GPA              0xf0000ull  /* to 0xfffff: MP table, then ACPI */
#define VMM_ACPI_GPA              0xf8000ull  /* ACPI tables (RSDP first) */
#define VMM_BIOS_END_GPA          0x100000ull
#define VMM_HIGH_MEM_GPA          0x100000ull
#define VMM_PCI_HOLE_START        0xc0000000ull
#define VMM_4G                    0x100000000ull

#define VMM_BOOT_CS 0x10
#define VMM_BOOT_DS 0x18
#define VMM_BOOT_TSS 0x20
#define VMM_BOOT_GDT_ENTRIES 5

/* Setup header flags we rely on (boot.rst). */
#define VMM_LOADED_HIGH      0x01
#define VMM_CAN_USE_HEAP     0x80
#define VMM_XLF_KERNEL_64    0x01
#define VMM_BOOT_MIN_VERSION 0x020c  /* 2.12: xloadflags, 64-bit entry */
#define VMM_BZIMAGE_MAX_BYTES (256ull << 20)

/* What the loader learnt from a validated bzImage. */
struct vmm_bzimage {
	const uint8_t *setup;       /* the image itself (setup sectors first) */
	size_t setup_bytes;         /* (setup_sects + 1) * 512 */
	const uint8_t *kernel;      /* protected-mode kernel: loaded at load_gpa */
	size_t kernel_bytes;
	size_t header_end;          /* offset one past the setup header in the file */
	uint16_t version;
	uint64_t pref_gpa;          /* where to load it */
	uint32_t init_size_bytes;   /* memory the kernel needs from load_gpa on */
	uint32_t initrd_addr_max;   /* last byte the initrd may occupy */
	uint32_t cmdline_max_bytes; /* without the NUL */
	bool relocatable;
	uint32_t alignment_bytes;
};

/*
 * CLIENT: buf is a user-supplied file.  Returns 0, or -ENOEXEC with a reason
 * in err (for the user: "not a bzImage: ...") when the file is not an
 * x86-64 bzImage this loader can boot.
 */
int vmm_bzimage_parse(const uint8_t *buf, size_t len, struct vmm_bzimage *out,
		      char *err, size_t err_len);

/* Guest RAM as the boot code sees it. */
struct vmm_mem_layout {
	uint64_t mem_bytes;       /* total RAM */
	uint64_t low_bytes;       /* RAM at [0, low_bytes) */
	uint64_t high_bytes;      /* RAM at [4 GiB, 4 GiB + high_bytes) */
};

/* Splits mem_bytes around the PCI hole.  -EINVAL for sizes not a multiple of
 * 4 KiB or below VMM_MIN_MEM_BYTES; -ERANGE above VMM_MAX_MEM_BYTES. */
#define VMM_MIN_MEM_BYTES (32ull << 20)
#define VMM_MAX_MEM_BYTES (1ull << 40)
int vmm_mem_layout_init(uint64_t mem_bytes, struct vmm_mem_layout *out);

/* Where things go. */
struct vmm_boot_plan {
	vmm_gpa_t kernel_gpa;
	vmm_gpa_t kernel_end_gpa;   /* kernel_gpa + init_size, page aligned */
	vmm_gpa_t initrd_gpa;
	uint64_t initrd_bytes;
	vmm_gpa_t cmdline_gpa;
	size_t cmdline_bytes;       /* without the NUL */
	vmm_gpa_t entry_gpa;        /* 64-bit entry: kernel_gpa + 0x200 */
};

/*
 * Chooses the load addresses.  Errors, each with a message in err:
 *   -E2BIG   command line longer than the kernel accepts
 *   -ENOMEM  kernel (init_size) or initrd do not fit: err says how much
 *            memory would be needed
 */
int vmm_boot_plan(const struct vmm_bzimage *img, const struct vmm_mem_layout *mem,
		  uint64_t initrd_bytes, size_t cmdline_bytes, struct vmm_boot_plan *out,
		  char *err, size_t err_len);

/* e820 map for the layout; returns the number of entries (<= max). */
#define VMM_E820_RAM 1
#define VMM_E820_RESERVED 2
unsigned vmm_e820_build(const struct vmm_mem_layout *mem, struct boot_e820_entry *out,
			unsigned max);

/* Fills the zero page (zeroed first) from the image's setup header, the plan
 * and the layout. */
void vmm_boot_params_build(struct boot_params *bp, const struct vmm_bzimage *img,
			   const struct vmm_boot_plan *plan, const struct vmm_mem_layout *mem);

/*
 * Writes GDT, page tables, zero page, command line, kernel and initrd into
 * guest RAM.  ram points at guest-physical 0 and covers at least
 * mem->low_bytes.  initrd may be NULL when plan->initrd_bytes is 0.
 */
void vmm_boot_load(uint8_t *ram, const struct vmm_mem_layout *mem, const struct vmm_bzimage *img,
		   const struct vmm_boot_plan *plan, const char *cmdline, const uint8_t *initrd);

/* GDT entries as written by vmm_boot_load (exported for tests). */
void vmm_boot_gdt(uint64_t gdt[VMM_BOOT_GDT_ENTRIES]);

#endif
