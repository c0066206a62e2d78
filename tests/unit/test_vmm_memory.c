/*
 * tests/unit/test_vmm_memory.c — vmm/memory.c: sizes in percent (the
 * options of `ebb run` are tests/unit/test_ebb_run_opts.c), and the glue
 * on a real region (real userfaultfd, no KVM: vm_fd -1, so no dirty log):
 * limits through the control protocol's `set` (hostile requests refused),
 * balloon discard through the region, the query's page accounting adding
 * up, and data surviving a squeeze.
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "host-reclaim/region.h"
#include "host-reclaim/uffd_compat.h"
#include "vmm/memory.h"

#define MiB (1ull << 20)

static void test_size_parse(void **state)
{
	struct vmm_mem_size s;

	assert_int_equal(vmm_mem_size_parse("30%", &s), 0);
	assert_true(s.set && s.is_pct && s.value == 30);
	assert_int_equal(vmm_mem_size_pages(&s, 256 * MiB), 65536 * 30 / 100);
	assert_int_equal(vmm_mem_size_parse("400M", &s), 0);
	assert_true(s.set && !s.is_pct && s.value == 400 * MiB);
	assert_int_equal(vmm_mem_size_pages(&s, 1024 * MiB), 400 * MiB / 4096);
	assert_int_equal(vmm_mem_size_pages(&s, 256 * MiB), 65536);  /* capped at RAM */
	assert_int_equal(vmm_mem_size_parse("100%", &s), 0);
	assert_int_equal(vmm_mem_size_pages(&s, 256 * MiB), 65536);
	assert_int_equal(vmm_mem_size_parse("101%", &s), -EINVAL);
	assert_int_equal(vmm_mem_size_parse("-5%", &s), -EINVAL);
	assert_int_equal(vmm_mem_size_parse("%", &s), -EINVAL);
	assert_int_equal(vmm_mem_size_parse("3x%", &s), -EINVAL);
	assert_int_equal(vmm_mem_size_parse("", &s), -EINVAL);
	assert_int_equal(vmm_mem_size_parse(NULL, &s), -EINVAL);
	assert_int_equal(vmm_mem_size_parse("lots", &s), -EINVAL);
}

/* Sends one control line to vmm_memory_ctl_set. */
static enum vmm_ctl_err set(struct vmm_memory *m, const char *line, struct json_object **res)
{
	struct vmm_ctl_request req;
	char msg[256];
	enum vmm_ctl_err e;

	*res = NULL;
	e = vmm_ctl_parse_request(line, strlen(line), NULL, NULL, &req, msg, sizeof(msg));
	assert_int_equal(e, VMM_CTL_OK);
	assert_string_equal(req.cmd, "set");
	e = vmm_memory_ctl_set(m, &req, res, msg, sizeof(msg));
	vmm_ctl_request_release(&req);
	return e;
}

static int64_t jint(struct json_object *o, const char *k)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, k, &v))
		fail_msg("no %s", k);
	return json_object_get_int64(v);
}

static uint64_t page_word(uint64_t i)
{
	return (i * 0x9e3779b97f4a7c15ull) ^ 0xabcdef;
}

/* Threads of this process other than the caller that do not block SIGTERM. */
static int threads_taking_sigterm(void)
{
	char path[320], line[256];
	struct dirent *d;
	int n = 0;
	DIR *dir = opendir("/proc/self/task");

	assert_non_null(dir);
	while ((d = readdir(dir))) {
		unsigned long long blk = 0;
		FILE *f;

		if (d->d_name[0] == '.' || atoi(d->d_name) == (int)gettid())
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/status", d->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		while (fgets(line, sizeof(line), f))
			if (sscanf(line, "SigBlk: %llx", &blk) == 1)
				break;
		fclose(f);
		n += !(blk & (1ull << (SIGTERM - 1)));
	}
	closedir(dir);
	return n;
}

static void test_region(void **state)
{
	const uint64_t mem = 16 * MiB, nr = mem / 4096;
	const struct vmm_guest_mem_slot slot = { .id = 0, .gpa = 0, .ram_off = 0, .bytes = mem };
	struct vmm_memory_cfg cfg = { 0 };
	struct vmm_memory *m = NULL;
	struct json_object *q, *r, *o;
	char err[256], dir[] = "/tmp/ebb-test-mem-XXXXXX", buf[1024];
	uint64_t features, i, bad = 0;
	uint8_t *ram;
	int ret;

	if (ebb_region_probe(&features)) {
		print_message("# SKIP userfaultfd here can neither move nor write-protect pages\n");
		skip();
	}
	assert_non_null(mkdtemp(dir));
	ram = mmap(NULL, mem, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(ram != MAP_FAILED);
	cfg.name = "t";
	cfg.ram = ram;
	cfg.mem_bytes = mem;
	cfg.slots = &slot;
	cfg.nr_slots = 1;
	cfg.vm_fd = -1;
	cfg.nr_vcpus = 1;
	cfg.opts.swappiness = -1;
	cfg.opts.swap_dir = dir;
	cfg.opts.compress = *(const enum vmm_swap_compress *)*state;
	/* Engine off: nothing created, set refused. */
	cfg.opts.off = true;
	assert_int_equal(vmm_memory_create(&cfg, &m, err, sizeof(err)), 0);
	assert_null(m);
	assert_int_equal(set(NULL, "{\"cmd\":\"set\",\"args\":{\"max_percent\":50}}", &r),
			 VMM_CTL_ERR_STATE);
	/* By default a region that cannot be made leaves the VM unmanaged (a
	 * warning); asked for, it is an error that says why. */
	cfg.opts.off = false;
	cfg.opts.swap_dir = "/nonexistent/ebb-swap";
	assert_int_equal(vmm_memory_create(&cfg, &m, err, sizeof(err)), 0);
	assert_null(m);
	cfg.opts.enable = true;
	assert_int_not_equal(vmm_memory_create(&cfg, &m, err, sizeof(err)), 0);
	assert_null(m);
	assert_non_null(strstr(err, "/nonexistent/ebb-swap"));
	cfg.opts.swap_dir = dir;
	ret = vmm_memory_create(&cfg, &m, err, sizeof(err));
	if (ret)
		fail_msg("create: %s", err);
	/* The engine's threads leave SIGTERM to the VMM's signalfd. */
	assert_int_equal(threads_taking_sigterm(), 0);

	for (i = 0; i < nr; i++)
		for (unsigned w = 0; w < 512; w += 64)
			((uint64_t *)(ram + i * 4096))[w] = page_word(i) + w;

	/* Hostile / bad set requests. */
	assert_int_equal(set(m, "{\"cmd\":\"set\",\"args\":{\"max_percent\":101}}", &r),
			 VMM_CTL_ERR_INVALID);
	assert_int_equal(set(m, "{\"cmd\":\"set\",\"args\":{\"max_bytes\":-1}}", &r),
			 VMM_CTL_ERR_INVALID);
	assert_int_equal(set(m, "{\"cmd\":\"set\",\"args\":{\"max_bytes\":\"1\"}}", &r),
			 VMM_CTL_ERR_INVALID);
	assert_int_equal(set(m, "{\"cmd\":\"set\",\"args\":{\"max_bytes\":1, \"max_percent\":1}}",
			     &r), VMM_CTL_ERR_INVALID);
	assert_int_equal(set(m, "{\"cmd\":\"set\",\"args\":{\"max_bytes\":99999999999}}", &r),
			 VMM_CTL_ERR_INVALID);
	assert_int_equal(set(m, "{\"cmd\":\"set\",\"args\":{\"high_percent\":60,"
			     "\"max_percent\":50}}", &r), VMM_CTL_ERR_INVALID);
	assert_int_equal(set(m, "{\"cmd\":\"set\",\"args\":{\"swappiness\":201}}", &r),
			 VMM_CTL_ERR_INVALID);
	assert_int_equal(set(m, "{\"cmd\":\"set\"}", &r), VMM_CTL_ERR_INVALID);
	/* max=0 would read as "no limit": refused, whether 0%, 0 bytes or a
	 * byte count under one page; the limits stay as they were. */
	assert_int_equal(set(m, "{\"cmd\":\"set\",\"args\":{\"max_percent\":50}}", &r),
			 VMM_CTL_OK);
	json_object_put(r);
	assert_int_equal(set(m, "{\"cmd\":\"set\",\"args\":{\"max_percent\":0}}", &r),
			 VMM_CTL_ERR_INVALID);
	assert_int_equal(set(m, "{\"cmd\":\"set\",\"args\":{\"max_bytes\":0}}", &r),
			 VMM_CTL_ERR_INVALID);
	assert_int_equal(set(m, "{\"cmd\":\"set\",\"args\":{\"max_bytes\":100}}", &r),
			 VMM_CTL_ERR_INVALID);
	q = json_object_new_object();
	vmm_memory_query(m, q);
	assert_true(json_object_object_get_ex(q, "memory", &o));
	assert_int_equal(jint(o, "max_pages"), (int64_t)(nr / 2));
	json_object_put(q);

	/* Balloon 1 MiB at 2 MiB; then squeeze to 25%. */
	assert_int_equal(vmm_memory_discard(m, 2 * MiB, MiB), 0);
	assert_int_equal(vmm_memory_discard(m, mem, 4096), -ERANGE);
	assert_int_equal(vmm_memory_discard(m, (uint64_t)-4096, 4096), -ERANGE);
	assert_int_equal(vmm_memory_discard(m, 1, 4096), -ERANGE);
	assert_int_equal(set(m, "{\"cmd\":\"set\",\"args\":{\"max_percent\":25,"
			     "\"swappiness\":100}}", &r), VMM_CTL_OK);
	assert_int_equal(jint(r, "max_pages"), (int64_t)(nr / 4));
	assert_int_equal(jint(r, "high_pages"), (int64_t)(nr / 4 - nr / 4 / 16));
	assert_int_equal(jint(r, "swappiness"), 100);
	json_object_put(r);
	for (i = 0; i < 100; i++) {
		struct ebb_region_counters dummy;

		(void)dummy;
		q = json_object_new_object();
		vmm_memory_query(m, q);
		assert_true(json_object_object_get_ex(q, "memory", &o));
		if (jint(o, "resident_pages") <= (int64_t)(nr / 4)) {
			json_object_put(q);
			break;
		}
		json_object_put(q);
		usleep(50000);
	}
	/* Read everything back (under max: swap-ins evict others). */
	for (i = 0; i < nr; i++) {
		bool in_balloon = i >= 512 && i < 768;

		for (unsigned w = 0; w < 512; w += 64) {
			uint64_t got = ((uint64_t *)(ram + i * 4096))[w];

			bad += in_balloon ? got != 0 : got != page_word(i) + w;
		}
	}
	assert_int_equal(bad, 0);
	q = json_object_new_object();
	vmm_memory_query(m, q);
	assert_true(json_object_object_get_ex(q, "memory", &o));
	assert_int_equal(jint(o, "accounted_pages"), (int64_t)nr);
	assert_int_equal(jint(o, "total_pages"), (int64_t)nr);
	assert_true(jint(o, "nr_swapped_out") > 0);
	assert_true(jint(o, "nr_swapped_in") > 0);
	/* Sparse pages: the compressed tier (LZ4 or zstd) holds them. */
	assert_true(jint(o, "compressed_pages") > 0);
	/* Host RAM = resident pages + the compressed tier + metadata (max bounds the first). */
	assert_int_equal(jint(o, "host_memory_bytes"),
			 jint(o, "resident_pages") * 4096 + jint(o, "compressed_bytes") +
			 jint(o, "metadata_bytes"));
	/* The file tier's live bytes never exceed what the file holds on disk. */
	assert_true(jint(o, "file_allocated_bytes") >= jint(o, "file_bytes"));
	assert_true(jint(o, "resident_pages") <= (int64_t)(nr / 4 + 8));
	assert_int_equal(jint(o, "nr_errors"), 0);
	/* Per-process KSM figures are read where the kernel has them. */
	if (access("/proc/self/ksm_merging_pages", R_OK) == 0)
		assert_true(jint(o, "ksm_merging_pages") >= 0);
	if (access("/proc/self/ksm_stat", R_OK) == 0)
		assert_true(jint(o, "ksm_rmap_items") >= 0);
	assert_true(vmm_memory_format(q, buf, sizeof(buf)) > 0);
	assert_non_null(strstr(buf, "sum 4096 of 4096 pages"));
	json_object_put(q);
	vmm_memory_destroy(m);
	vmm_memory_destroy(NULL);
	munmap(ram, mem);
	/* The swap file never had a name. */
	assert_int_equal(rmdir(dir), 0);
	q = json_object_new_object();
	assert_true(vmm_memory_format(q, buf, sizeof(buf)) > 0);
	assert_non_null(strstr(buf, "not managed"));
	json_object_put(q);
}

/* --ksm on: eviction by write-protect (MOVE cannot take KSM-merged pages). */
static void test_ksm_evict_mode(void **state)
{
	const uint64_t mem = 4 * MiB;
	const struct vmm_guest_mem_slot slot = { .id = 0, .gpa = 0, .ram_off = 0, .bytes = mem };
	struct vmm_memory_cfg cfg = { 0 };
	struct vmm_memory *m = NULL;
	struct json_object *q, *o, *v;
	char err[256], dir[] = "/tmp/ebb-test-ksm-XXXXXX";
	uint64_t features;
	uint8_t *ram;

	(void)state;
	if (ebb_region_probe(&features) || !(features & UFFD_FEATURE_PAGEFAULT_FLAG_WP)) {
		print_message("# SKIP userfaultfd here has no write-protect faults\n");
		skip();
	}
	assert_non_null(mkdtemp(dir));
	for (int ksm = 0; ksm < 2; ksm++) {
		ram = mmap(NULL, mem, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		assert_true(ram != MAP_FAILED);
		memset(&cfg, 0, sizeof(cfg));
		cfg.name = "k";
		cfg.ram = ram;
		cfg.mem_bytes = mem;
		cfg.slots = &slot;
		cfg.nr_slots = 1;
		cfg.vm_fd = -1;
		cfg.nr_vcpus = 1;
		cfg.opts.swappiness = -1;
		cfg.opts.swap_dir = dir;
		cfg.opts.enable = true;
		cfg.opts.ksm = ksm;
		if (vmm_memory_create(&cfg, &m, err, sizeof(err)))
			fail_msg("create: %s", err);
		q = json_object_new_object();
		vmm_memory_query(m, q);
		assert_true(json_object_object_get_ex(q, "memory", &o));
		assert_true(json_object_object_get_ex(o, "evict_mode", &v));
		if (ksm)
			assert_string_equal(json_object_get_string(v), "wp");
		else
			assert_string_equal(json_object_get_string(v),
					    features & UFFD_FEATURE_MOVE ? "move" : "wp");
		json_object_put(q);
		vmm_memory_destroy(m);
		munmap(ram, mem);
	}
	assert_int_equal(rmdir(dir), 0);
}

int main(void)
{
	static const enum vmm_swap_compress lz4 = VMM_SWAP_LZ4, zstd = VMM_SWAP_ZSTD;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_size_parse),
		cmocka_unit_test_prestate(test_region, (void *)&lz4),
		cmocka_unit_test_prestate(test_region, (void *)&zstd),
		cmocka_unit_test(test_ksm_evict_mode),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
