/*
 * tests/unit/test_ebbd_metrics.c — host-reclaim/ebbd/metrics.c: a snapshot
 * of a pool and VMs rendered in the Prometheus text format (every family's
 * HELP and TYPE exactly once and before its samples, label values escaped,
 * figures where they belong, absent limits absent), and the metrics listen
 * address refused when hostile.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "host-reclaim/ebbd/metrics.h"

#define MiB (1ull << 20)

static size_t count(const char *text, const char *needle)
{
	size_t n = 0;
	const char *p = text;

	while ((p = strstr(p, needle))) {
		n++;
		p += strlen(needle);
	}
	return n;
}

static void render(struct ebbd_metrics_buf *b, struct ebb_bal_vm_obs *obs, size_t nr)
{
	static uint64_t decisions[EBB_BAL_NR_ACTIONS][EBB_BAL_NR_REASONS];
	struct ebb_bal_pool_state pool = { 0 };
	struct ebbd_counters c = { 0 };
	struct ebbd_metrics_vm vms[4] = { 0 };
	struct ebbd_metrics_in in = { 0 };
	size_t i;

	pool.budget_bytes = 512 * MiB;
	pool.used_bytes = 300 * MiB;
	pool.free_bytes = 212 * MiB;
	pool.state = EBB_BAL_BALANCING;
	pool.priority = 9;
	pool.stats.reclaimed_bytes[EBB_BAL_SRC_HIGH] = 7 * MiB;
	c.nr_ticks = 42;
	c.nr_actions_failed = 3;
	decisions[EBB_BAL_ACT_SET_HIGH][EBB_BAL_WHY_RECLAIM] = 5;
	for (i = 0; i < nr; i++) {
		vms[i].name = obs[i].name;
		vms[i].observed = true;
		vms[i].obs = &obs[i];
	}
	in.pool = &pool;
	in.c = &c;
	in.decisions = (const uint64_t (*)[EBB_BAL_NR_REASONS])decisions;
	in.vms = vms;
	in.nr_vms = nr;
	in.page_bytes = 4096;
	assert_int_equal(ebbd_metrics_render(&in, b), 0);
	assert_non_null(b->text);
}

static void test_render(void **state)
{
	struct ebb_bal_vm_obs obs[2] = { 0 };
	struct ebbd_metrics_buf b = { 0 };
	const char *line, *p;
	char seen[256][96];
	size_t nr_seen = 0, i;

	(void)state;
	snprintf(obs[0].name, sizeof(obs[0].name), "web1");
	obs[0].guest_bytes = 256 * MiB;
	obs[0].resident_bytes = 200 * MiB;
	obs[0].balloon_actual_bytes = 56 * MiB;
	obs[0].cur_high_bytes = EBB_BAL_NO_LIMIT;
	obs[0].cur_max_bytes = 220 * MiB;
	obs[0].psi_some_ns_total = 1500000000ull;
	/* GUEST/CLIENT: a name with the three characters that must be escaped */
	snprintf(obs[1].name, sizeof(obs[1].name), "q\"b\\c\nd");
	obs[1].guest_bytes = 64 * MiB;
	obs[1].cur_high_bytes = EBB_BAL_NO_LIMIT;
	obs[1].cur_max_bytes = EBB_BAL_NO_LIMIT;
	render(&b, obs, 2);

	assert_non_null(strstr(b.text, "\nebb_pool_budget_bytes 536870912\n"));
	assert_non_null(strstr(b.text, "ebb_pool_balancer_state{state=\"balancing\"} 1\n"));
	assert_non_null(strstr(b.text, "ebb_pool_balancer_state{state=\"sleeping\"} 0\n"));
	assert_non_null(strstr(b.text, "ebb_pool_reclaim_requested_bytes_total{source=\"high\"} 7340032\n"));
	assert_non_null(strstr(b.text, "ebb_balancer_decisions_total{action=\"set-high\",reason=\"reclaim\"} 5\n"));
	assert_non_null(strstr(b.text, "ebbd_actions_total{result=\"failed\"} 3\n"));
	assert_non_null(strstr(b.text, "ebb_vm_resident_bytes{vm=\"web1\"} 209715200\n"));
	assert_non_null(strstr(b.text, "ebb_vm_pressure_some_seconds_total{vm=\"web1\"} 1.5\n"));
	assert_non_null(strstr(b.text, "libvirt_domain_memory_stats_rss_bytes{domain=\"web1\"} 209715200\n"));
	/* libvirt's actual balloon: what the guest has */
	assert_non_null(strstr(b.text, "libvirt_domain_memory_stats_actual_balloon_bytes{domain=\"web1\"} 209715200\n"));
	assert_non_null(strstr(b.text, "ebb_vm_max_bytes{vm=\"web1\"} 230686720\n"));
	/* no high on web1, no limits at all on the other: no sample */
	assert_null(strstr(b.text, "ebb_vm_high_bytes{"));
	assert_int_equal(count(b.text, "ebb_vm_max_bytes{"), 1);
	/* escaped, never raw */
	assert_non_null(strstr(b.text, "ebb_vm_guest_memory_bytes{vm=\"q\\\"b\\\\c\\nd\"} 67108864\n"));
	assert_null(strstr(b.text, "q\"b"));
	/* no agent: no agent memory figures */
	assert_null(strstr(b.text, "ebb_vm_agent_free_bytes{"));

	/* every sample's family has its HELP and TYPE once, before it */
	for (line = b.text; *line; line = p + 1) {
		char name[96];
		size_t n;

		p = strchr(line, '\n');
		assert_non_null(p);
		if (strncmp(line, "# TYPE ", 7) == 0) {
			n = strcspn(line + 7, " ");
			assert_true(n < sizeof(name));
			memcpy(name, line + 7, n);
			name[n] = '\0';
			for (i = 0; i < nr_seen; i++)
				assert_string_not_equal(seen[i], name);
			assert_true(nr_seen < 256);
			snprintf(seen[nr_seen++], sizeof(seen[0]), "%s", name);
			continue;
		}
		if (line[0] == '#')
			continue;
		n = strcspn(line, "{ ");
		assert_true(n < sizeof(name) && nr_seen > 0);
		memcpy(name, line, n);
		name[n] = '\0';
		assert_string_equal(seen[nr_seen - 1], name);
	}
	assert_true(nr_seen > 50);
	ebbd_metrics_buf_release(&b);
}

static void test_addr(void **state)
{
	static const char *const bad[] = {
		"", "127.0.0.1", "127.0.0.1:", ":9848", "127.0.0.1:65536", "127.0.0.1:-1",
		"127.0.0.1:+5", "127.0.0.1:80x", "localhost:9848", "[::1]9848", "[::1:9848",
		"[127.0.0.1]:80", "1.2.3.4.5:80", "[]:80", "Off",
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa:1",
	};
	struct sockaddr_storage ss;
	unsigned len = 0;
	bool off;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(ebbd_metrics_parse_addr(bad[i], &ss, &len, &off), -EINVAL);
	assert_int_equal(ebbd_metrics_parse_addr("off", &ss, &len, &off), 0);
	assert_true(off);
	assert_int_equal(ebbd_metrics_parse_addr("127.0.0.1:9848", &ss, &len, &off), 0);
	assert_false(off);
	assert_int_equal(ss.ss_family, AF_INET);
	assert_int_equal(len, sizeof(struct sockaddr_in));
	assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), 9848);
	assert_int_equal(ebbd_metrics_parse_addr("[::1]:0", &ss, &len, &off), 0);
	assert_int_equal(ss.ss_family, AF_INET6);
	assert_int_equal(len, sizeof(struct sockaddr_in6));
	assert_int_equal(ebbd_metrics_parse_addr(EBBD_METRICS_DEFAULT_ADDR, &ss, &len, &off), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_render),
		cmocka_unit_test(test_addr),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
