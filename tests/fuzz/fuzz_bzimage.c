/*
 * tests/fuzz/fuzz_bzimage.c — libFuzzer target for the bzImage loader
 * (vmm/boot.c): any file a user passes as --kernel goes through
 * vmm_bzimage_parse; whatever it accepts is planned into 64 MiB and 4 GiB
 * guests with the fuzzer's initrd and command-line sizes, and, when the plan
 * succeeds, loaded into a real buffer of the smaller guest's size (ASan sees
 * any write outside it).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/boot.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SMALL_MEM_BYTES (64ull << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t *ram;
	struct vmm_bzimage img;
	struct vmm_mem_layout mem;
	struct vmm_boot_plan plan;
	uint64_t initrd_bytes = 0;
	size_t cmdline_bytes = 0;
	char err[256], cmdline[4096];

	if (size >= 8) {
		/* The last 8 bytes choose initrd and command line sizes. */
		memcpy(&initrd_bytes, data + size - 8, 4);
		memcpy(&cmdline_bytes, data + size - 4, 2);
		cmdline_bytes %= sizeof(cmdline);
		initrd_bytes &= (64u << 20) - 1;
	}
	if (vmm_bzimage_parse(data, size, &img, err, sizeof(err)) != 0)
		return 0;
	if (img.setup_bytes + img.kernel_bytes != size || img.header_end > img.setup_bytes)
		abort();
	vmm_mem_layout_init(4ull << 30, &mem);
	if (vmm_boot_plan(&img, &mem, initrd_bytes, cmdline_bytes, &plan, err, sizeof(err)) == 0 &&
	    (plan.kernel_end_gpa > mem.low_bytes ||
	     plan.initrd_gpa + plan.initrd_bytes > mem.low_bytes ||
	     (plan.initrd_bytes && plan.initrd_gpa < plan.kernel_end_gpa)))
		abort();
	vmm_mem_layout_init(SMALL_MEM_BYTES, &mem);
	if (vmm_boot_plan(&img, &mem, initrd_bytes, cmdline_bytes, &plan, err, sizeof(err)) != 0)
		return 0;
	if (!ram && !(ram = malloc(SMALL_MEM_BYTES)))
		return 0;
	memset(cmdline, 'c', cmdline_bytes);
	vmm_boot_load(ram, &mem, &img, &plan, cmdline, NULL);
	return 0;
}
