/*
 * tests/unit/test_vmm_boot.c — the x86-64 boot protocol code in vmm/boot.c:
 * bzImage validation (a synthetic image built here, then broken one field at
 * a time), load planning (kernel, initrd limits, command line), the e820 map
 * around the PCI hole, the zero page, and what vmm_boot_load writes (GDT,
 * identity page tables, kernel, command line).  Also vmm_vm_create's early
 * checks, which reject bad user files before touching /dev/kvm.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "vmm/boot.h"
#include "vmm/vm.h"

#define IMG_BYTES (64 * 1024)
#define SETUP_SECTS 4
#define HDR 0x1f1
#define OFF(f) (HDR + offsetof(struct setup_header, f))

static void put16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }
static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void put64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }

/* A minimal image that satisfies the 2.15 boot protocol header. */
static uint8_t *make_image(size_t len)
{
	uint8_t *b = calloc(1, len);
	size_t setup = (SETUP_SECTS + 1) * 512;
	size_t i;

	assert_non_null(b);
	b[OFF(setup_sects)] = SETUP_SECTS;
	put16(b + OFF(boot_flag), 0xaa55);
	b[0x200] = 0xeb;
	b[0x201] = 0x66;  /* header ends at 0x268 */
	put32(b + OFF(header), 0x53726448);
	put16(b + OFF(version), 0x020f);
	b[OFF(loadflags)] = 0x01;
	put32(b + OFF(syssize), (uint32_t)((len - setup + 15) / 16));
	put32(b + OFF(initrd_addr_max), 0x7fffffff);
	put32(b + OFF(kernel_alignment), 0x200000);
	b[OFF(relocatable_kernel)] = 1;
	put16(b + OFF(xloadflags), 0x1);
	put32(b + OFF(cmdline_size), 2047);
	put64(b + OFF(pref_address), 0x1000000);
	put32(b + OFF(init_size), 0x2000000);
	for (i = setup; i < len; i++)
		b[i] = (uint8_t)(i * 7);
	return b;
}

static int parse(const uint8_t *b, size_t len, struct vmm_bzimage *img, char *err)
{
	return vmm_bzimage_parse(b, len, img, err, 256);
}

static void test_parse_valid(void **state)
{
	uint8_t *b = make_image(IMG_BYTES);
	struct vmm_bzimage img;
	char err[256];

	assert_int_equal(parse(b, IMG_BYTES, &img, err), 0);
	assert_int_equal(img.setup_bytes, (SETUP_SECTS + 1) * 512);
	assert_int_equal(img.kernel_bytes, IMG_BYTES - img.setup_bytes);
	assert_ptr_equal(img.kernel, b + img.setup_bytes);
	assert_int_equal(img.version, 0x020f);
	assert_int_equal(img.pref_gpa, 0x1000000);
	assert_int_equal(img.init_size_bytes, 0x2000000);
	assert_int_equal(img.cmdline_max_bytes, 2047);
	assert_int_equal(img.header_end, 0x268);
	assert_true(img.relocatable);
	free(b);
}

struct mutation {
	const char *what;
	size_t off;
	unsigned width;   /* 1, 2, 4, 8 */
	uint64_t value;
	const char *expect;  /* substring of the error */
};

static void test_parse_rejects_each_bad_field(void **state)
{
	static const struct mutation m[] = {
		{ "boot flag", OFF(boot_flag), 2, 0x1234, "0xAA55" },
		{ "signature", OFF(header), 4, 0x12345678, "HdrS" },
		{ "old protocol", OFF(version), 2, 0x0204, "too old" },
		{ "zImage", OFF(loadflags), 1, 0x00, "loaded high" },
		{ "32-bit kernel", OFF(xloadflags), 2, 0x0, "64-bit" },
		{ "syssize zero", OFF(syssize), 4, 0, "syssize" },
		{ "syssize beyond file", OFF(syssize), 4, 0x100000, "syssize" },
		{ "init_size too small", OFF(init_size), 4, 100, "init_size" },
		{ "init_size huge", OFF(init_size), 4, 0xffffffff, "init_size" },
		{ "alignment not pow2", OFF(kernel_alignment), 4, 0x300000, "kernel_alignment" },
		{ "alignment zero", OFF(kernel_alignment), 4, 0, "kernel_alignment" },
		{ "pref below 1M", OFF(pref_address), 8, 0x1000, "pref_address" },
		{ "pref in PCI hole", OFF(pref_address), 8, 0xd0000000ull, "pref_address" },
		{ "pref misaligned", OFF(pref_address), 8, 0x1001000, "pref_address" },
		{ "pref way out", OFF(pref_address), 8, 0xffffffffffff0000ull, "pref_address" },
		{ "cmdline_size 0", OFF(cmdline_size), 4, 0, "cmdline_size" },
		{ "setup covers file", OFF(setup_sects), 1, 200, "setup sectors" },
		{ "header truncated", 0x201, 1, 0x10, "truncated" },
	};
	size_t i;

	for (i = 0; i < sizeof(m) / sizeof(m[0]); i++) {
		uint8_t *b = make_image(IMG_BYTES);
		struct vmm_bzimage img;
		char err[256] = "";

		switch (m[i].width) {
		case 1: b[m[i].off] = (uint8_t)m[i].value; break;
		case 2: put16(b + m[i].off, (uint16_t)m[i].value); break;
		case 4: put32(b + m[i].off, (uint32_t)m[i].value); break;
		case 8: put64(b + m[i].off, m[i].value); break;
		}
		if (parse(b, IMG_BYTES, &img, err) != -ENOEXEC || !strstr(err, m[i].expect))
			fail_msg("mutation '%s' gave '%s', wanted an error about '%s'", m[i].what, err,
				 m[i].expect);
		free(b);
	}
}

static void test_parse_short_and_garbage(void **state)
{
	uint8_t *b = make_image(IMG_BYTES);
	struct vmm_bzimage img;
	char err[256];
	size_t len;

	assert_int_equal(parse(b, 1023, &img, err), -ENOEXEC);
	assert_non_null(strstr(err, "too small"));
	assert_int_equal(parse(NULL, 0, &img, err), -ENOEXEC);
	/* Truncating the kernel part makes syssize point past the end. */
	assert_int_equal(parse(b, 8192, &img, err), -ENOEXEC);
	/* Random bytes are never accepted, and never crash. */
	srand(7);
	for (len = 0; len < 200; len++) {
		size_t i;

		for (i = 0; i < IMG_BYTES; i++)
			b[i] = (uint8_t)rand();
		assert_int_equal(parse(b, IMG_BYTES, &img, err), -ENOEXEC);
	}
	free(b);
}

static void test_mem_layout(void **state)
{
	struct vmm_mem_layout m;

	assert_int_equal(vmm_mem_layout_init(256ull << 20, &m), 0);
	assert_int_equal(m.low_bytes, 256ull << 20);
	assert_int_equal(m.high_bytes, 0);
	assert_int_equal(vmm_mem_layout_init(3ull << 30, &m), 0);
	assert_int_equal(m.low_bytes, 3ull << 30);
	assert_int_equal(m.high_bytes, 0);
	assert_int_equal(vmm_mem_layout_init(6ull << 30, &m), 0);
	assert_int_equal(m.low_bytes, VMM_PCI_HOLE_START);
	assert_int_equal(m.high_bytes, 3ull << 30);
	assert_int_equal(vmm_mem_layout_init(1ull << 20, &m), -EINVAL);
	assert_int_equal(vmm_mem_layout_init((256ull << 20) + 1, &m), -EINVAL);
	assert_int_equal(vmm_mem_layout_init(2ull << 40, &m), -ERANGE);
}

static void test_e820(void **state)
{
	struct boot_e820_entry e[8];
	struct vmm_mem_layout m;
	uint64_t ram = 0;
	unsigned n, i;

	vmm_mem_layout_init(256ull << 20, &m);
	n = vmm_e820_build(&m, e, 8);
	assert_int_equal(n, 4);
	assert_int_equal(e[0].addr, 0);
	assert_int_equal(e[0].size, 0x9fc00);
	assert_int_equal(e[0].type, VMM_E820_RAM);
	assert_int_equal(e[1].type, VMM_E820_RESERVED);
	assert_int_equal(e[2].addr, 0xf0000);
	assert_int_equal(e[2].type, VMM_E820_RESERVED);
	assert_int_equal(e[3].addr, 0x100000);
	assert_int_equal(e[3].addr + e[3].size, 256ull << 20);

	vmm_mem_layout_init(5ull << 30, &m);
	n = vmm_e820_build(&m, e, 8);
	assert_int_equal(n, 5);
	assert_int_equal(e[3].addr + e[3].size, VMM_PCI_HOLE_START);
	assert_int_equal(e[4].addr, VMM_4G);
	assert_int_equal(e[4].size, 2ull << 30);
	for (i = 0; i < n; i++) {
		if (e[i].type == VMM_E820_RAM)
			ram += e[i].size;
		if (i)
			assert_true(e[i].addr >= e[i - 1].addr + e[i - 1].size);  /* sorted, disjoint */
	}
	/* Everything but the EBDA and the BIOS area 0xa0000-0x100000 is RAM. */
	assert_int_equal(ram, (5ull << 30) - (0x100000 - 0x9fc00));
	/* The map never overflows the caller's array. */
	assert_int_equal(vmm_e820_build(&m, e, 2), 2);
}

static void test_plan(void **state)
{
	uint8_t *b = make_image(IMG_BYTES);
	struct vmm_bzimage img;
	struct vmm_mem_layout m;
	struct vmm_boot_plan p;
	char err[256];

	assert_int_equal(parse(b, IMG_BYTES, &img, err), 0);
	vmm_mem_layout_init(256ull << 20, &m);

	assert_int_equal(vmm_boot_plan(&img, &m, 10ull << 20, 100, &p, err, sizeof(err)), 0);
	assert_int_equal(p.kernel_gpa, 0x1000000);
	assert_int_equal(p.entry_gpa, 0x1000200);
	assert_int_equal(p.kernel_end_gpa, 0x3000000);
	assert_int_equal(p.initrd_gpa % 4096, 0);
	assert_true(p.initrd_gpa >= p.kernel_end_gpa);
	assert_true(p.initrd_gpa + p.initrd_bytes <= m.low_bytes);
	assert_true(p.initrd_gpa + p.initrd_bytes > m.low_bytes - 4096);  /* as high as possible */

	/* initrd_addr_max caps the placement. */
	put32(b + OFF(initrd_addr_max), 0x5ffffff);
	assert_int_equal(parse(b, IMG_BYTES, &img, err), 0);
	assert_int_equal(vmm_boot_plan(&img, &m, 10ull << 20, 100, &p, err, sizeof(err)), 0);
	assert_true(p.initrd_gpa + p.initrd_bytes <= 0x6000000);

	/* An initrd larger than memory allows: a clear error naming --mem. */
	assert_int_equal(vmm_boot_plan(&img, &m, 300ull << 20, 100, &p, err, sizeof(err)), -ENOMEM);
	assert_non_null(strstr(err, "initrd"));
	put32(b + OFF(initrd_addr_max), 0x7fffffff);
	assert_int_equal(parse(b, IMG_BYTES, &img, err), 0);
	assert_int_equal(vmm_boot_plan(&img, &m, 250ull << 20, 100, &p, err, sizeof(err)), -ENOMEM);
	assert_non_null(strstr(err, "--mem"));
	/* An initrd of exactly the room left fits. */
	assert_int_equal(vmm_boot_plan(&img, &m, (256ull << 20) - 0x3000000, 0, &p, err, sizeof(err)), 0);
	assert_int_equal(p.initrd_gpa, 0x3000000);

	/* Command line: up to cmdline_size bytes. */
	assert_int_equal(vmm_boot_plan(&img, &m, 0, 2047, &p, err, sizeof(err)), 0);
	assert_int_equal(vmm_boot_plan(&img, &m, 0, 2048, &p, err, sizeof(err)), -E2BIG);
	assert_non_null(strstr(err, "2047"));

	/* Memory too small for the kernel's init_size. */
	vmm_mem_layout_init(40ull << 20, &m);
	assert_int_equal(vmm_boot_plan(&img, &m, 0, 10, &p, err, sizeof(err)), -ENOMEM);
	assert_non_null(strstr(err, "--mem"));
	free(b);
}

static void test_boot_params_and_load(void **state)
{
	uint8_t *b = make_image(IMG_BYTES);
	const char *cmdline = "console=ttyS0 hello";
	struct vmm_bzimage img;
	struct vmm_mem_layout m;
	struct vmm_boot_plan p;
	struct boot_params *bp;
	uint64_t gdt[VMM_BOOT_GDT_ENTRIES], pte;
	uint8_t *ram;
	char err[256];

	assert_int_equal(parse(b, IMG_BYTES, &img, err), 0);
	vmm_mem_layout_init(64ull << 20, &m);
	assert_int_equal(vmm_boot_plan(&img, &m, 1 << 20, strlen(cmdline), &p, err, sizeof(err)), 0);
	ram = calloc(1, m.low_bytes);
	assert_non_null(ram);
	memset(ram + VMM_BOOT_PARAMS_GPA, 0xcc, 4096);  /* must be zeroed first */
	vmm_boot_load(ram, &m, &img, &p, cmdline, NULL);

	bp = (struct boot_params *)(ram + VMM_BOOT_PARAMS_GPA);
	assert_int_equal(bp->hdr.boot_flag, 0xaa55);
	assert_int_equal(bp->hdr.header, 0x53726448);
	assert_int_equal(bp->hdr.type_of_loader, 0xff);
	assert_int_equal(bp->hdr.vid_mode, 0xffff);
	assert_true(bp->hdr.loadflags & 0x80);
	assert_int_equal(bp->hdr.cmd_line_ptr, VMM_BOOT_CMDLINE_GPA);
	assert_int_equal(bp->hdr.ramdisk_image, p.initrd_gpa);
	assert_int_equal(bp->hdr.ramdisk_size, 1 << 20);
	assert_int_equal(bp->ext_ramdisk_image, 0);
	assert_int_equal(bp->e820_entries, 4);
	assert_int_equal(bp->_pad7[0], 0);  /* nothing past the header copied */
	assert_int_equal(bp->hdr.init_size, 0x2000000);
	assert_string_equal((char *)ram + VMM_BOOT_CMDLINE_GPA, cmdline);
	assert_memory_equal(ram + p.kernel_gpa, img.kernel, img.kernel_bytes);

	/* GDT: __BOOT_CS is 64-bit code, __BOOT_DS flat data. */
	memcpy(gdt, ram + VMM_BOOT_GDT_GPA, sizeof(gdt));
	assert_int_equal(gdt[0], 0);
	assert_int_equal(gdt[VMM_BOOT_CS / 8], 0x00af9b000000ffffull);
	assert_int_equal(gdt[VMM_BOOT_DS / 8], 0x00cf93000000ffffull);

	/* Page tables: PML4[0] -> PDPT, PDPT[i] -> PD i, 2 MiB identity pages. */
	memcpy(&pte, ram + VMM_BOOT_PML4_GPA, 8);
	assert_int_equal(pte, VMM_BOOT_PDPT_GPA | 3);
	memcpy(&pte, ram + VMM_BOOT_PDPT_GPA + 3 * 8, 8);
	assert_int_equal(pte, (VMM_BOOT_PD_GPA + 3 * 4096) | 3);
	memcpy(&pte, ram + VMM_BOOT_PD_GPA + 8 * 8, 8);
	assert_int_equal(pte, (8ull << 21) | 0x83);
	memcpy(&pte, ram + VMM_BOOT_PD_GPA + 3 * 4096 + 511 * 8, 8);
	assert_int_equal(pte, ((3ull * 512 + 511) << 21) | 0x83);  /* maps the last 2 MiB below 4 GiB */
	free(ram);
	free(b);
}

static void test_create_rejects_bad_files_before_kvm(void **state)
{
	char dir[] = "/tmp/test_vmm_boot.XXXXXX", path[64], initrd[64], err[512];
	uint8_t *b = make_image(IMG_BYTES);
	struct vmm_vm_cfg cfg = {
		.name = "t1", .mem_bytes = 64ull << 20, .nr_cpus = 1, .console_in_fd = -1,
		.console_out_fd = -1, .kvm_path = "/nonexistent/kvm",
	};
	struct vmm_vm *vm = (void *)1;
	FILE *f;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/notakernel", dir);
	f = fopen(path, "w");
	fputs("#!/bin/sh\necho I am not a kernel\n", f);
	fclose(f);
	cfg.kernel_path = path;
	assert_int_equal(vmm_vm_create(&cfg, &vm, err, sizeof(err)), -ENOEXEC);
	assert_null(vm);
	assert_non_null(strstr(err, "not a bootable x86-64 bzImage"));

	/* A good kernel with an initrd too large for --mem 64M. */
	snprintf(path, sizeof(path), "%s/bzImage", dir);
	f = fopen(path, "w");
	fwrite(b, 1, IMG_BYTES, f);
	fclose(f);
	snprintf(initrd, sizeof(initrd), "%s/initrd", dir);
	f = fopen(initrd, "w");
	fclose(f);
	assert_int_equal(truncate(initrd, 60 << 20), 0);
	cfg.initrd_path = initrd;
	assert_int_equal(vmm_vm_create(&cfg, &vm, err, sizeof(err)), -ENOMEM);
	assert_non_null(strstr(err, "initrd"));
	assert_non_null(strstr(err, "--mem"));

	/* With a small initrd the next problem is the missing KVM device. */
	assert_int_equal(truncate(initrd, 1 << 20), 0);
	assert_int_equal(vmm_vm_create(&cfg, &vm, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "no KVM"));

	/* A bad name is refused first of all. */
	cfg.name = "../etc";
	assert_int_equal(vmm_vm_create(&cfg, &vm, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "name"));

	unlink(initrd);
	unlink(path);
	snprintf(path, sizeof(path), "%s/notakernel", dir);
	unlink(path);
	rmdir(dir);
	free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_valid),
		cmocka_unit_test(test_parse_rejects_each_bad_field),
		cmocka_unit_test(test_parse_short_and_garbage),
		cmocka_unit_test(test_mem_layout),
		cmocka_unit_test(test_e820),
		cmocka_unit_test(test_plan),
		cmocka_unit_test(test_boot_params_and_load),
		cmocka_unit_test(test_create_rejects_bad_files_before_kvm),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
