/*
 * tests/unit/test_vmm_poolctl.c — vmm/poolctl.c on a real region (real
 * userfaultfd, no KVM) and a real event loop: ebbd's per-VM settings (min,
 * low, weight; hostile values refused and counted), a clamp of max held as a
 * lease that expires on its own back to the configured limits (also after a
 * `set` during the clamp), a lift, the `stats` object, and guest data intact
 * through a clamp far below the data's size.
 */
#include <errno.h>
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
#include "client/evloop.h"
#include "vmm/memory.h"
#include "vmm/poolctl.h"

#define MiB (1ull << 20)

typedef enum vmm_ctl_err (*cmd_fn)(struct vmm_poolctl *, const struct vmm_ctl_request *,
				   struct json_object **, char *, size_t);

static enum vmm_ctl_err call(struct vmm_poolctl *pc, cmd_fn fn, const char *line,
			     struct json_object **out)
{
	struct vmm_ctl_request req;
	struct json_object *r = NULL;
	char msg[256];
	enum vmm_ctl_err e;

	assert_int_equal(vmm_ctl_parse_request(line, strlen(line), NULL, NULL, &req, msg, sizeof(msg)),
			 VMM_CTL_OK);
	e = fn(pc, &req, &r, msg, sizeof(msg));
	vmm_ctl_request_release(&req);
	if (out)
		*out = r;
	else
		json_object_put(r);
	return e;
}

static void limits(struct vmm_memory *m, uint64_t *high, uint64_t *max)
{
	struct ebb_region_counters c;

	ebb_region_get_counters(vmm_memory_region(m), &c);
	*high = c.high_pages;
	*max = c.max_pages;
}

struct events {
	char log[512];
};

static void on_event(void *opaque, const char *event, struct json_object *fields)
{
	struct events *ev = opaque;

	snprintf(ev->log + strlen(ev->log), sizeof(ev->log) - strlen(ev->log), "%s ", event);
	json_object_put(fields);
}

static uint64_t pattern(uint64_t page, uint64_t word)
{
	return (page * 0x9e3779b97f4a7c15ull) ^ (word + 1) * 0xbf58476d1ce4e5b9ull;
}

static void test_lease(void **state)
{
	const uint64_t mem = 16 * MiB, nr = mem / 4096;
	const struct vmm_guest_mem_slot slot = { .id = 0, .gpa = 0, .ram_off = 0, .bytes = mem };
	struct vmm_memory_cfg cfg = { 0 };
	struct vmm_memory *m = NULL;
	struct vmm_poolctl *pc = NULL;
	struct vmm_poolctl_counters pcc;
	struct vmm_evloop *loop = NULL;
	struct json_object *r, *o;
	struct events ev = { { 0 } };
	char err[256], dir[] = "/tmp/ebb-test-poolctl-XXXXXX";
	uint64_t features, high, max, i, w, bad = 0, t0;
	uint64_t *ram;

	(void)state;
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
	cfg.opts.enable = true;
	assert_int_equal(vmm_mem_size_parse("12M", &cfg.opts.max), 0);
	if (vmm_memory_create(&cfg, &m, err, sizeof(err)))
		fail_msg("create: %s", err);
	assert_int_equal(vmm_evloop_create(&loop), 0);
	{
		struct vmm_poolctl_cfg pcfg = { .memory = m, .loop = loop, .mem_bytes = mem,
						.notify = on_event, .notify_opaque = &ev };

		assert_int_equal(vmm_poolctl_create(&pcfg, &pc), 0);
	}
	limits(m, &high, &max);
	assert_int_equal(max, 3072);

	/* Settings: stored and reported; hostile values refused and counted. */
	assert_int_equal(call(pc, vmm_poolctl_set, "{\"cmd\":\"set\",\"args\":{\"min_bytes\":"
			      "2097152,\"low_bytes\":4194304,\"weight\":300}}", &r), VMM_CTL_OK);
	assert_true(json_object_object_get_ex(r, "pool", &o));
	assert_int_equal(json_object_get_int64(json_object_object_get(o, "weight")), 300);
	assert_int_equal(json_object_get_int64(json_object_object_get(o, "low_bytes")), 4 * MiB);
	json_object_put(r);
	assert_int_equal(call(pc, vmm_poolctl_set, "{\"cmd\":\"set\",\"args\":{\"weight\":0}}",
			      NULL), VMM_CTL_ERR_INVALID);
	assert_int_equal(call(pc, vmm_poolctl_set, "{\"cmd\":\"set\",\"args\":{\"min_bytes\":"
			      "8388608}}", NULL), VMM_CTL_ERR_INVALID);   /* above low */
	assert_int_equal(call(pc, vmm_poolctl_set, "{\"cmd\":\"set\",\"args\":{\"low_bytes\":"
			      "-1}}", NULL), VMM_CTL_ERR_INVALID);
	assert_int_equal(call(pc, vmm_poolctl_set, "{\"cmd\":\"set\",\"args\":{}}", NULL),
			 VMM_CTL_ERR_INVALID);
	assert_int_equal(call(pc, vmm_poolctl_clamp, "{\"cmd\":\"clamp\",\"args\":{\"max_bytes\":"
			      "4194304}}", NULL), VMM_CTL_ERR_INVALID);   /* no lease */
	assert_int_equal(call(pc, vmm_poolctl_clamp, "{\"cmd\":\"clamp\",\"args\":{\"max_bytes\":"
			      "4194304,\"lease_ms\":700000}}", NULL), VMM_CTL_ERR_INVALID);
	/* KSM on guest RAM, live. */
	assert_int_equal(call(pc, vmm_poolctl_set, "{\"cmd\":\"set\",\"args\":{\"ksm\":1}}", NULL),
			 VMM_CTL_ERR_INVALID);
	assert_int_equal(call(pc, vmm_poolctl_set, "{\"cmd\":\"set\",\"args\":{\"ksm\":true}}", &r),
			 VMM_CTL_OK);
	assert_true(json_object_get_boolean(json_object_object_get(r, "ksm")));
	json_object_put(r);
	assert_true(vmm_memory_ksm(m));
	assert_int_equal(call(pc, vmm_poolctl_set, "{\"cmd\":\"set\",\"args\":{\"ksm\":false}}",
			      NULL), VMM_CTL_OK);
	assert_false(vmm_memory_ksm(m));
	vmm_poolctl_get_counters(pc, &pcc);
	assert_int_equal(pcc.nr_bad_requests, 7);

	/* Data in all of RAM, then a clamp to a third of it. */
	for (i = 0; i < nr; i++)
		for (w = 0; w < 512; w += 64)
			ram[i * 512 + w] = pattern(i, w);
	/* 16 MiB more resident: one "grow" event (the step is 4 MiB, but one
	 * sample sees it all). */
	vmm_poolctl_sample(pc);
	vmm_poolctl_sample(pc);
	assert_string_equal(ev.log, "grow ");
	assert_int_equal(call(pc, vmm_poolctl_clamp, "{\"cmd\":\"clamp\",\"args\":{\"max_bytes\":"
			      "4194304,\"lease_ms\":300}}", NULL), VMM_CTL_OK);
	limits(m, &high, &max);
	assert_int_equal(max, 1024);
	assert_int_equal(high, 1024 - 64);
	/* An operator's set during the clamp changes the configured limit only. */
	assert_int_equal(call(pc, vmm_poolctl_set, "{\"cmd\":\"set\",\"args\":{\"max_bytes\":"
			      "14680064}}", NULL), VMM_CTL_OK);
	limits(m, &high, &max);
	assert_int_equal(max, 1024);
	/* The guest keeps working under the clamp: every page reads back. */
	for (i = 0; i < nr; i++)
		for (w = 0; w < 512; w += 64)
			bad += ram[i * 512 + w] != pattern(i, w);
	assert_int_equal(bad, 0);
	assert_int_equal(call(pc, vmm_poolctl_clamp,
			      "{\"cmd\":\"clamp\",\"args\":{\"max_bytes\":4194304,"
			      "\"lease_ms\":300}}", NULL), VMM_CTL_OK);   /* renew */
	r = NULL;
	assert_int_equal(vmm_poolctl_stats(pc, &r, err, sizeof(err)), VMM_CTL_OK);
	assert_int_equal(json_object_get_int64(json_object_object_get(r, "max_bytes")), 4 * MiB);
	assert_true(json_object_get_int64(json_object_object_get(r, "resident_bytes")) <= (int64_t)(6 * MiB));
	json_object_put(r);

	/* Nobody renews: the lease runs out on the event loop alone. */
	t0 = vmm_now_ns();
	while (vmm_now_ns() - t0 < 3000000000ull) {
		vmm_poolctl_get_counters(pc, &pcc);
		if (pcc.nr_lease_expired)
			break;
		vmm_evloop_run_once(loop, 50);
	}
	assert_int_equal(pcc.nr_lease_expired, 1);
	assert_true(vmm_now_ns() - t0 >= 250000000ull);
	assert_non_null(strstr(ev.log, "lease-expired"));
	limits(m, &high, &max);
	assert_int_equal(max, 3584);                 /* the set during the clamp */
	assert_int_equal(high, 3584 - 3584 / 16);

	/* Clamp and lift. */
	assert_int_equal(call(pc, vmm_poolctl_clamp, "{\"cmd\":\"clamp\",\"args\":{\"high_bytes\":"
			      "2097152,\"lease_ms\":60000}}", NULL), VMM_CTL_OK);
	limits(m, &high, &max);
	assert_int_equal(high, 512);
	assert_int_equal(max, 3584);
	assert_int_equal(call(pc, vmm_poolctl_clamp, "{\"cmd\":\"clamp\",\"args\":{\"lift\":true}}",
			      NULL), VMM_CTL_OK);
	limits(m, &high, &max);
	assert_int_equal(high, 3584 - 3584 / 16);
	vmm_poolctl_get_counters(pc, &pcc);
	assert_int_equal(pcc.nr_lifts, 1);
	assert_int_equal(pcc.nr_clamps, 3);
	/* A clamp still active at destroy is lifted. */
	assert_int_equal(call(pc, vmm_poolctl_clamp, "{\"cmd\":\"clamp\",\"args\":{\"max_bytes\":"
			      "2097152,\"lease_ms\":60000}}", NULL), VMM_CTL_OK);
	vmm_poolctl_destroy(pc);
	limits(m, &high, &max);
	assert_int_equal(max, 3584);
	for (i = 0; i < nr; i++)
		for (w = 0; w < 512; w += 64)
			bad += ram[i * 512 + w] != pattern(i, w);
	assert_int_equal(bad, 0);
	vmm_evloop_destroy(loop);
	vmm_memory_destroy(m);
	munmap(ram, mem);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lease),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
