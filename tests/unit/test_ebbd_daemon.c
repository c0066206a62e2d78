/*
 * tests/unit/test_ebbd_daemon.c — host-reclaim/ebbd against a fake VM: a real
 * control-protocol server (client/ctl_server.c) in a thread of the test,
 * whose `stats` replies are hostile on purpose (wrong types, negative
 * numbers, a missing pool object, resident above the guest's size), and
 * ebbd's own socket given hostile requests.  ebbd must count the bad
 * replies, keep the VM, keep serving, and observe the VM once its replies
 * are sane.  The daemon runs on its own thread; the test talks to it over
 * ebbd.sock like any client.  And a backend attached by another source (as
 * the libvirt driver does): opted out by the configuration it is refused,
 * else it gets the configured settings with `set`; a reload that opts it
 * out takes it out of the pool.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "client/ctl_server.h"
#include "client/evloop.h"
#include "client/rundir.h"
#include "host-reclaim/ebbd/backend.h"
#include "host-reclaim/ebbd/ebbd.h"

struct fake_vm {
	struct vmm_evloop *loop;
	struct vmm_ctl_server *srv;
	_Atomic int mode;             /* which stats reply */
	_Atomic unsigned nr_stats, nr_clamps;
};

static enum vmm_ctl_err fake_handler(void *opaque, const struct vmm_ctl_request *req,
				     struct json_object **result, char *msg, size_t msg_len)
{
	struct fake_vm *f = opaque;
	struct json_object *r = json_object_new_object(), *pool;

	if (strcmp(req->cmd, "clamp") == 0 || strcmp(req->cmd, "balloon") == 0) {
		f->nr_clamps++;
		*result = r;
		return VMM_CTL_OK;
	}
	f->nr_stats++;
	pool = json_object_new_object();
	json_object_object_add(pool, "min_bytes", json_object_new_int64(0));
	json_object_object_add(pool, "low_bytes", json_object_new_int64(0));
	json_object_object_add(pool, "weight", json_object_new_int64(100));
	json_object_object_add(pool, "cfg_high_bytes", json_object_new_int64(0));
	json_object_object_add(pool, "cfg_max_bytes", json_object_new_int64(0));
	json_object_object_add(r, "engine", json_object_new_boolean(1));
	json_object_object_add(r, "mem_bytes", json_object_new_int64(64 << 20));
	switch (f->mode) {
	case 0:   /* numbers as strings */
		json_object_object_add(r, "resident_bytes", json_object_new_string("lots"));
		json_object_object_add(r, "pool", pool);
		break;
	case 1:   /* negative numbers */
		json_object_object_add(r, "resident_bytes", json_object_new_int64(-4096));
		json_object_object_add(r, "pool", pool);
		break;
	case 2:   /* no pool object */
		json_object_put(pool);
		json_object_object_add(r, "pool", json_object_new_string("x"));
		break;
	default:  /* sane, but resident above the guest (the balancer clamps it) */
		json_object_object_add(r, "pool", pool);
		break;
	}
	if (f->mode >= 3) {
		static const char *const keys[] = {
			"compressed_bytes", "compressed_pages", "file_pages", "high_bytes",
			"max_bytes", "swappiness", "nr_refaults", "nr_swapped_in", "psi_some_us",
			"psi_full_us",
		};
		unsigned i;

		json_object_object_add(r, "resident_bytes",
				       json_object_new_int64(f->mode == 3 ? (int64_t)1 << 40 : 16 << 20));
		for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
			json_object_object_add(r, keys[i], json_object_new_int64(0));
	}
	*result = r;
	return VMM_CTL_OK;
}

static void *fake_thread(void *arg)
{
	struct fake_vm *f = arg;

	vmm_evloop_run(f->loop);
	return NULL;
}

static void *ebbd_thread(void *arg)
{
	ebbd_run(arg);
	return NULL;
}

static int call(const char *rundir, const char *line_cmd, struct json_object *args,
		struct vmm_ctl_response *resp)
{
	int fd = vmm_ctl_connect(rundir, "ebbd"), ret;

	if (fd < 0)
		return fd;
	ret = vmm_ctl_call(fd, line_cmd, args, 2000, resp);
	close(fd);
	return ret;
}

static int64_t daemon_counter(const char *rundir, const char *key)
{
	struct vmm_ctl_response resp;
	struct json_object *d, *v;
	int64_t x = -1;

	if (call(rundir, "pool", NULL, &resp))
		return -1;
	if (resp.ok && json_object_object_get_ex(resp.result, "daemon", &d) &&
	    json_object_object_get_ex(d, key, &v))
		x = json_object_get_int64(v);
	vmm_ctl_response_release(&resp);
	return x;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static void test_hostile_vm_and_clients(void **state)
{
	char dir[] = "/tmp/ebb-test-ebbd-XXXXXX", path[256], err[256];
	struct fake_vm f = { 0 };
	struct ebbd_cfg cfg = { 0 };
	struct vmm_ctl_response resp;
	struct json_object *args;
	struct ebbd *d;
	pthread_t ft, dt;
	int64_t bad, ok_obs;
	int mode, i;

	(void)state;
	assert_non_null(mkdtemp(dir));
	assert_int_equal(vmm_evloop_create(&f.loop), 0);
	snprintf(path, sizeof(path), "%s/evil.sock", dir);
	{
		struct vmm_ctl_server_cfg sc = { .path = path, .loop = f.loop };

		assert_int_equal(vmm_ctl_server_create(&sc, &f.srv), 0);
		assert_int_equal(vmm_ctl_server_register(f.srv, "stats", fake_handler, &f), 0);
		assert_int_equal(vmm_ctl_server_register(f.srv, "clamp", fake_handler, &f), 0);
		assert_int_equal(vmm_ctl_server_register(f.srv, "balloon", fake_handler, &f), 0);
	}
	assert_int_equal(pthread_create(&ft, NULL, fake_thread, &f), 0);

	cfg.rundir = dir;
	cfg.vms_only = true;
	cfg.ksm_dir = "";
	cfg.tick_ms = 20;
	cfg.bal.step_ms = 20;
	cfg.bal.pool.budget_bytes = 32 << 20;
	if (ebbd_create(&cfg, &d, err, sizeof(err)))
		fail_msg("ebbd_create: %s", err);
	assert_int_equal(pthread_create(&dt, NULL, ebbd_thread, d), 0);

	/* Three kinds of bad replies: counted, the VM stays, ebbd serves on. */
	for (mode = 0; mode < 3; mode++) {
		unsigned before = f.nr_stats;

		f.mode = mode;
		for (i = 0; i < 200 && f.nr_stats < before + 3; i++)
			sleep_ms(10);
		assert_true(f.nr_stats >= before + 3);
	}
	bad = daemon_counter(dir, "nr_bad_vm_replies");
	assert_true(bad >= 6);
	assert_int_equal(daemon_counter(dir, "nr_vms_left"), 0);

	/* Absurd but well-typed: observed, the balancer copes. */
	f.mode = 3;
	sleep_ms(200);
	f.mode = 4;
	sleep_ms(200);
	assert_int_equal(call(dir, "vms", NULL, &resp), 0);
	assert_true(resp.ok);
	{
		struct json_object *arr, *vm, *v;

		assert_true(json_object_object_get_ex(resp.result, "vms", &arr));
		assert_int_equal(json_object_array_length(arr), 1);
		vm = json_object_array_get_idx(arr, 0);
		assert_true(json_object_object_get_ex(vm, "observed", &v) && json_object_get_boolean(v));
		assert_true(json_object_object_get_ex(vm, "name", &v));
		assert_string_equal(json_object_get_string(v), "evil");
	}
	vmm_ctl_response_release(&resp);
	ok_obs = daemon_counter(dir, "nr_bad_vm_replies");
	assert_true(ok_obs >= bad);

	/* Hostile requests on ebbd.sock: refused, answered, nothing breaks. */
	assert_int_equal(call(dir, "set", NULL, &resp), 0);
	assert_false(resp.ok);
	assert_string_equal(resp.error_code, "invalid-request");
	vmm_ctl_response_release(&resp);
	args = json_object_new_object();
	json_object_object_add(args, "name", json_object_new_string("nosuchvm"));
	assert_int_equal(call(dir, "set", args, &resp), 0);
	assert_false(resp.ok);
	vmm_ctl_response_release(&resp);
	args = json_object_new_object();
	json_object_object_add(args, "policy", json_object_new_string("greedy"));
	assert_int_equal(call(dir, "policy", args, &resp), 0);
	assert_false(resp.ok);
	vmm_ctl_response_release(&resp);
	args = json_object_new_object();
	json_object_object_add(args, "last", json_object_new_int64(-1));
	assert_int_equal(call(dir, "trace", args, &resp), 0);
	assert_false(resp.ok);
	vmm_ctl_response_release(&resp);
	assert_int_equal(call(dir, "stop", NULL, &resp), 0);
	assert_false(resp.ok);
	assert_string_equal(resp.error_code, "unknown-command");
	vmm_ctl_response_release(&resp);
	args = json_object_new_object();
	json_object_object_add(args, "policy", json_object_new_string("static"));
	assert_int_equal(call(dir, "policy", args, &resp), 0);
	assert_true(resp.ok);
	vmm_ctl_response_release(&resp);
	assert_int_equal(call(dir, "trace", NULL, &resp), 0);
	assert_true(resp.ok);
	vmm_ctl_response_release(&resp);

	/* A second ebbd on the same run dir is refused. */
	{
		struct ebbd *d2;

		assert_int_equal(ebbd_create(&cfg, &d2, err, sizeof(err)), -EBUSY);
		assert_non_null(strstr(err, "another ebbd"));
	}

	ebbd_stop(d);
	pthread_join(dt, NULL);
	ebbd_destroy(d);
	vmm_evloop_stop(f.loop);
	pthread_join(ft, NULL);
	vmm_ctl_server_destroy(f.srv);
	vmm_evloop_destroy(f.loop);
	snprintf(path, sizeof(path), "%s/ebbd.lock", dir);
	unlink(path);
	assert_int_equal(rmdir(dir), 0);
}

/* ---- a backend attached from outside (the libvirt driver's way) ---------- */

struct fake_be {
	struct ebbd_backend be;
	int *nr_destroyed;
	int64_t set_weight;           /* what `set` carried; -1: no set */
};

static int fb_observe(struct ebbd_backend *be, struct ebb_bal_vm_obs *obs)
{
	(void)be;
	obs->guest_bytes = obs->resident_bytes = 64 << 20;
	obs->cur_high_bytes = obs->cur_max_bytes = EBB_BAL_NO_LIMIT;
	return 0;
}

static int fb_apply(struct ebbd_backend *be, const struct ebb_bal_action *a, uint64_t now_ns)
{
	(void)be;
	(void)a;
	(void)now_ns;
	return -EOPNOTSUPP;
}

static int fb_renew(struct ebbd_backend *be, uint64_t now_ns)
{
	(void)be;
	(void)now_ns;
	return 0;
}

static void fb_release(struct ebbd_backend *be)
{
	(void)be;
}

static void fb_destroy(struct ebbd_backend *be)
{
	struct fake_be *f = (struct fake_be *)be;

	(*f->nr_destroyed)++;
}

static int fb_watch_open(struct ebbd_backend *be)
{
	(void)be;
	return -EOPNOTSUPP;
}

static int fb_watch_read(struct ebbd_backend *be)
{
	(void)be;
	return 0;
}

static int fb_agent_fd(struct ebbd_backend *be)
{
	(void)be;
	return -1;
}

static int fb_agent_poll(struct ebbd_backend *be)
{
	(void)be;
	return -ENOTCONN;
}

static int fb_call(struct ebbd_backend *be, const char *cmd, struct json_object *args,
		   struct json_object **result, char *err, size_t err_len)
{
	struct fake_be *f = (struct fake_be *)be;
	struct json_object *v;

	(void)result;
	(void)err;
	(void)err_len;
	if (strcmp(cmd, "set") == 0 && json_object_object_get_ex(args, "weight", &v))
		f->set_weight = json_object_get_int64(v);
	return 0;
}

static const struct ebbd_backend_ops fb_ops = {
	.kind = "fake", .observe = fb_observe, .apply = fb_apply, .renew = fb_renew,
	.release = fb_release, .destroy = fb_destroy, .watch_open = fb_watch_open,
	.watch_read = fb_watch_read, .agent_fd = fb_agent_fd, .agent_poll = fb_agent_poll,
	.call = fb_call,
};

static void test_attached_backend_settings(void **state)
{
	char dir[] = "/tmp/ebb-test-ebbd-XXXXXX", err[256];
	struct ebbd_vm_rule rules[2] = {
		{ .name = "batch", .s = { .has_opt_out = true, .opt_out = true } },
		{ .name = "web1", .s = { .has_weight = true, .weight = 400 } },
	};
	struct fake_be a = { .be.ops = &fb_ops, .set_weight = -1 };
	struct fake_be b = { .be.ops = &fb_ops, .set_weight = -1 };
	struct ebbd_cfg cfg = { 0 };
	struct ebbd *d;
	int nr_destroyed = 0;

	(void)state;
	assert_non_null(mkdtemp(dir));
	a.nr_destroyed = b.nr_destroyed = &nr_destroyed;
	cfg.rundir = dir;
	cfg.vms_only = true;
	cfg.ksm_dir = "";
	cfg.bal.pool.budget_bytes = 32 << 20;
	cfg.vm_rules = rules;
	cfg.nr_vm_rules = 2;
	if (ebbd_create(&cfg, &d, err, sizeof(err)))
		fail_msg("ebbd_create: %s", err);
	assert_true(ebbd_vm_opted_out(d, "batch"));
	assert_false(ebbd_vm_opted_out(d, "web1"));
	assert_false(ebbd_vm_opted_out(d, "other"));
	/* opted out: refused, its backend released */
	assert_int_equal(ebbd_vm_attach(d, "batch", &a.be), -EPERM);
	assert_int_equal(nr_destroyed, 1);
	/* configured: joins and is sent its settings */
	assert_int_equal(ebbd_vm_attach(d, "web1", &b.be), 0);
	assert_int_equal(b.set_weight, 400);
	assert_true(ebbd_run_once(d, 50) >= 0);   /* a step observes it */
	/* a reload that opts web1 out takes it out of the pool */
	assert_int_equal(ebbd_config_generation(d), 0);
	rules[1].s.has_opt_out = rules[1].s.opt_out = true;
	assert_int_equal(ebbd_reconfigure(d, &cfg, err, sizeof(err)), 0);
	assert_int_equal(ebbd_config_generation(d), 1);
	assert_int_equal(nr_destroyed, 2);
	assert_int_equal(ebbd_vm_detach(d, "web1", "test"), -ENOENT);
	ebbd_destroy(d);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hostile_vm_and_clients),
		cmocka_unit_test(test_attached_backend_settings),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
