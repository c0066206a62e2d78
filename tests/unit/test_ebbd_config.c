/*
 * tests/unit/test_ebbd_config.c — host-reclaim/ebbd/config.c with the real
 * libinih: a full file read into every field; each kind of mistake (unknown
 * section, unknown key, a key twice, a bad size, out of range, a line that
 * is not INI, a bad VM name, low below min) refused with one message naming
 * the file and the line; the command line winning over the file; a real
 * file on disk and a missing one; a libvirt domain's settings: opt_out by
 * name, [vm NAME] merged under the domain's <ebb:memory> metadata (which
 * wins) and over its memtune (a floor).
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

#include "host-reclaim/ebbd/config.h"
#include "host-reclaim/libvirt/lv_stats.h"

#define MiB (1ull << 20)

static void test_good(void **state)
{
	struct ebbd_file_cfg c;
	struct ebbd_cfg cfg = { 0 };
	char err[512] = "";

	(void)state;
	assert_int_equal(ebbd_config_load_string("t.conf",
		"# the pool\n"
		"[pool]\n"
		"budget = 75%\n"
		"wmark_min = 64M\n"
		"wmark_low = 128M\n"
		"wmark_high = 256M\n"
		"policy = mom\n"
		"vms_only = yes\n"
		"tick_ms = 500\n"
		"lease_ms = 10000\n"
		"ksm = off\n"
		"rundir = /run/ebb\n"
		"\n[metrics]\nlisten = [::1]:9100\n"
		"\n[vm]\nweight = 120\nksm_allowed = false\n"
		"\n[vm web1]\nmin = 1G\nlow = 2G\n"
		"\n[vm \"db-2\"]\nweight = 400\nksm_allowed = true\n",
		&c, err, sizeof(err)), 0);
	assert_true(c.has_budget);
	assert_int_equal(c.budget_percent, 75);
	assert_int_equal(c.budget_bytes, 0);
	assert_int_equal(c.wmark_min_bytes, 64 * MiB);
	assert_int_equal(c.wmark_high_bytes, 256 * MiB);
	assert_int_equal(c.policy, EBB_BAL_POLICY_MOM);
	assert_true(c.vms_only);
	assert_int_equal(c.tick_ms, 500);
	assert_int_equal(c.lease_ms, 10000);
	assert_true(c.has_ksm && !c.ksm);
	assert_string_equal(c.rundir, "/run/ebb");
	assert_string_equal(c.metrics, "[::1]:9100");
	assert_true(c.vm_default.has_weight && c.vm_default.weight == 120);
	assert_false(c.vm_default.has_min);
	assert_int_equal(c.nr_vms, 2);
	assert_string_equal(c.vms[0].name, "web1");
	assert_int_equal(c.vms[0].s.min_bytes, 1024 * MiB);
	assert_int_equal(c.vms[0].s.low_bytes, 2048 * MiB);
	assert_false(c.vms[0].s.has_weight);
	assert_string_equal(c.vms[1].name, "db-2");
	assert_true(c.vms[1].s.has_ksm_allowed && c.vms[1].s.ksm_allowed);
	ebbd_config_to_cfg(&c, &cfg);
	assert_int_equal(cfg.bal.pool.budget_percent, 75);
	assert_int_equal(cfg.tick_ms, 500);
	assert_int_equal(cfg.bal.step_ms, 500);
	assert_string_equal(cfg.ksm_dir, "");
	assert_int_equal(cfg.nr_vm_rules, 2);
	ebbd_config_release(&c);
}

static void test_errors(void **state)
{
	static const struct { const char *text, *msg; } cases[] = {
		{ "[pool]\nbudget = 1G\n[colour]\nx = 1\n", "t.conf:4: unknown section [colour]" },
		{ "[pool]\n\nbudgit = 1G\n", "t.conf:3: unknown key \"budgit\" in [pool]" },
		{ "[pool]\nbudget = 1G\nbudget = 2G\n", "t.conf:3: \"budget\" given twice in [pool]" },
		{ "[pool]\nbudget = 12Q\n", "t.conf:2: budget: cannot read \"12Q\" as a size" },
		{ "[pool]\nbudget = 0\n", "t.conf:2: budget: must be more than 0" },
		{ "[pool]\nbudget = 101%\n", "t.conf:2: budget (percent of MemTotal): expected a whole "
		  "number from 1 to 100" },
		{ "[pool]\ntick_ms = 9\n", "t.conf:2: tick_ms: expected a whole number from 10 to 20000" },
		{ "[pool]\ntick_ms = -100\n", "t.conf:2: tick_ms: expected a whole number" },
		{ "[pool]\nlease_ms = 600001\n", "t.conf:2: lease_ms: expected a whole number from 100 "
		  "to 600000" },
		{ "[pool]\npolicy = fast\n", "t.conf:2: policy: one of ebb, mom, static" },
		{ "[pool]\nvms_only = maybe\n", "t.conf:2: vms_only: expected true or false" },
		{ "[pool]\nrundir = run/ebb\n", "t.conf:2: rundir: an absolute path" },
		{ "[metrics]\nlisten = localhost:80\n", "t.conf:2: listen: expected IPV4:PORT" },
		{ "[vm]\nweight = 0\n", "t.conf:2: weight: expected a whole number from 1 to 10000" },
		{ "[vm]\nmin = 2G\nlow = 1G\n", "t.conf:3: low (1073741824 bytes) must not be below min" },
		{ "[vm ../etc]\nmin = 1G\n", "t.conf:2: [vm ../etc]: not a valid VM name" },
		{ "[vm a]\nswappiness = 1\n", "t.conf:2: unknown key \"swappiness\" in [vm a]" },
		{ "[vm a]\nopt_out = perhaps\n", "t.conf:2: opt_out: expected true or false" },
		{ "[vm a]\nopt_out = yes\nopt_out = no\n", "t.conf:3: \"opt_out\" given twice" },
		{ "budget = 1G\n", "t.conf:1: \"budget\" outside any section" },
		{ "[pool]\nbudget 1G\n", "t.conf:2: not INI" },
		{ "[pool\nbudget = 1G\n", "t.conf:1: not INI" },
		/* the first error is the one reported */
		{ "[pool]\nx = 1\ny = 2\n", "t.conf:2: unknown key \"x\"" },
	};
	struct ebbd_file_cfg c;
	char err[512];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		err[0] = '\0';
		assert_int_equal(ebbd_config_load_string("t.conf", cases[i].text, &c, err,
							 sizeof(err)), -EINVAL);
		if (strncmp(err, cases[i].msg, strlen(cases[i].msg)) != 0)
			fail_msg("case %zu: got \"%s\", want \"%s...\"", i, err, cases[i].msg);
		assert_null(c.vms);
	}
}

static void test_merge_and_files(void **state)
{
	struct ebbd_file_cfg file, cl = { 0 }, eff;
	char path[] = "/tmp/ebb-test-conf-XXXXXX", err[512];
	int fd;

	(void)state;
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "[pool]\nbudget = 4G\npolicy = mom\n[vm]\nweight = 50\n", 48), 48);
	close(fd);
	assert_int_equal(ebbd_config_load(path, &file, err, sizeof(err)), 0);
	assert_int_equal(ebbd_config_set(&cl, "pool", "budget", "2G", err, sizeof(err)), 0);
	assert_int_equal(ebbd_config_set(&cl, "pool", "tick_ms", "300", err, sizeof(err)), 0);
	assert_int_equal(ebbd_config_set(&cl, "pool", "tick_ms", "3", err, sizeof(err)), -EINVAL);
	ebbd_config_merge(&file, &cl, &eff);
	assert_int_equal(eff.budget_bytes, 2048 * MiB);   /* the command line wins */
	assert_int_equal(eff.policy, EBB_BAL_POLICY_MOM); /* the file where it is alone */
	assert_int_equal(eff.tick_ms, 300);
	assert_int_equal(eff.vm_default.weight, 50);
	ebbd_config_release(&file);
	unlink(path);
	assert_int_equal(ebbd_config_load(path, &file, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, path));
}

/* Per-domain settings: the config file's [vm NAME] for libvirt domains. */
static void test_domain_settings(void **state)
{
	struct ebbd_file_cfg c;
	struct ebbd_lv_memtune mt = { 0 };
	struct ebbd_lv_meta meta = { 0 };
	struct ebb_bal_vm_cfg out;
	char err[512] = "";

	(void)state;
	assert_int_equal(ebbd_config_load_string("t.conf",
		"[vm]\nweight = 150\n"
		"[vm web1]\nmin = 512M\nlow = 1G\nweight = 400\n"
		"[vm batch]\nopt_out = yes\n"
		"[vm db]\nopt_out = no\nmin = 256M\n",
		&c, err, sizeof(err)), 0);
	assert_int_equal(c.nr_vms, 3);
	assert_false(c.vms[0].s.has_opt_out);
	assert_true(c.vms[1].s.has_opt_out && c.vms[1].s.opt_out);
	assert_true(c.vms[2].s.has_opt_out && !c.vms[2].s.opt_out);
	assert_false(c.vm_default.has_opt_out);

	/* the configuration alone */
	ebbd_lv_settings(&mt, &meta, &c.vms[0].s, &out);
	assert_int_equal(out.min_bytes, 512 * MiB);
	assert_int_equal(out.balloon_floor_bytes, 512 * MiB);
	assert_int_equal(out.low_bytes, 1024 * MiB);
	assert_int_equal(out.weight, 400);
	assert_int_equal(out.max_bytes, EBB_BAL_NO_LIMIT);
	/* the metadata wins, value by value */
	meta.weight = 300;
	meta.min_mib = 160;
	ebbd_lv_settings(&mt, &meta, &c.vms[0].s, &out);
	assert_int_equal(out.weight, 300);
	assert_int_equal(out.min_bytes, 160 * MiB);
	assert_int_equal(out.low_bytes, 1024 * MiB);   /* not in the metadata: the file's */
	meta.low_mib = 200;
	ebbd_lv_settings(&mt, &meta, &c.vms[0].s, &out);
	assert_int_equal(out.low_bytes, 200 * MiB);
	/* memtune is a floor under both: min_guarantee, soft_limit; hard_limit the max */
	mt.min_guarantee_kib = 300 * 1024;
	mt.soft_kib = 400 * 1024;
	mt.hard_kib = 2048 * 1024;
	ebbd_lv_settings(&mt, &meta, &c.vms[0].s, &out);
	assert_int_equal(out.min_bytes, 300 * MiB);
	assert_int_equal(out.low_bytes, 400 * MiB);
	assert_int_equal(out.max_bytes, 2048 * MiB);
	/* neither: memtune and the default weight */
	memset(&meta, 0, sizeof(meta));
	ebbd_lv_settings(&mt, &meta, NULL, &out);
	assert_int_equal(out.weight, EBB_BAL_DEF_WEIGHT);
	assert_int_equal(out.min_bytes, 300 * MiB);
	/* low is never under min, whoever gave them */
	memset(&mt, 0, sizeof(mt));
	meta.low_mib = 100;
	ebbd_lv_settings(&mt, &meta, &c.vms[2].s, &out);
	assert_int_equal(out.min_bytes, 256 * MiB);
	assert_int_equal(out.low_bytes, 256 * MiB);
	ebbd_config_release(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_merge_and_files),
		cmocka_unit_test(test_domain_settings),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
