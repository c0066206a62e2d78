/*
 * tests/fuzz/fuzz_agent_requests.c — libFuzzer target for the guest agent's
 * request side (guest-agent/agent.c and agent_json.c): everything the host
 * can write to the agent's port, fed in chunks whose sizes the fuzzer also
 * chooses (the first byte), with ticks in between.  The agent runs against
 * a fake /proc and cgroup directory made once in /tmp (it writes "1" or "3"
 * to a file there for drop_caches, never to the real /proc).
 *
 * Invariants: no crash or sanitizer report; the output the agent queues is
 * whole lines of at most AGENT_OUT_BYTES in all, each a JSON object
 * starting with {"type": (the agent answers every line it takes, even
 * garbage, with one of its messages); counters only grow.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "guest-agent/agent.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char root[64], cg[96];

static void put(const char *dir, const char *name, const char *text)
{
	char path[192];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	if (!f)
		abort();
	fputs(text, f);
	fclose(f);
}

static void make_proc(void)
{
	char p[160];

	strcpy(root, "/tmp/fuzz_agent_requests.XXXXXX");
	if (!mkdtemp(root))
		abort();
	snprintf(p, sizeof(p), "%s/pressure", root);
	mkdir(p, 0755);
	snprintf(p, sizeof(p), "%s/sys", root);
	mkdir(p, 0755);
	snprintf(p, sizeof(p), "%s/sys/vm", root);
	mkdir(p, 0755);
	snprintf(cg, sizeof(cg), "%s/cg", root);
	mkdir(cg, 0755);
	put(root, "meminfo", "MemTotal: 500000 kB\nMemFree: 100000 kB\nMemAvailable: 300000 kB\n"
			     "Buffers: 1000 kB\nCached: 200000 kB\nActive(file): 100000 kB\n"
			     "Inactive(file): 90000 kB\nShmem: 1000 kB\n");
	put(root, "vmstat", "pgscan_kswapd 5\npgscan_direct 1\npswpin 0\npswpout 0\n");
	put(root, "pressure/memory", "some avg10=1.50 avg60=0.20 avg300=0.00 total=12345\n"
				     "full avg10=0.00 avg60=0.00 avg300=0.00 total=0\n");
	put(root, "sys/vm/drop_caches", "");
	put(root, "sys/vm/compact_memory", "");
	put(cg, "memory.reclaim", "");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct agent_cfg cfg = { 0 };
	struct agent_counters before, after;
	struct agent *a;
	uint64_t now_ms = 1000;
	size_t chunk, off;

	if (!root[0])
		make_proc();
	cfg.proc_root = root;
	cfg.cgroup_dir = cg;
	cfg.report_period_ms = 50;
	if (agent_create(&cfg, &a))
		abort();
	agent_set_psi_armed(a, true);
	chunk = size ? (size_t)data[0] % 97 + 1 : 1;
	memset(&before, 0, sizeof(before));
	for (off = size ? 1 : 0; off < size; off += chunk) {
		size_t n = size - off < chunk ? size - off : chunk;
		const char *out;
		size_t out_len, i, line_start = 0;

		agent_input(a, (const char *)data + off, n, now_ms);
		now_ms += data[off] % 64;
		agent_tick(a, now_ms);
		if (data[off] == 'P')
			agent_pressure(a, now_ms);
		agent_output(a, &out, &out_len);
		if (out_len > AGENT_OUT_BYTES)
			abort();
		for (i = 0; i < out_len; i++) {
			if (out[i] != '\n')
				continue;
			if (i - line_start < 9 || memcmp(out + line_start, "{\"type\":", 8) != 0)
				abort();
			line_start = i + 1;
		}
		/* Consume whole lines only, sometimes none (the host is slow). */
		if (data[off] & 1)
			agent_output_consume(a, line_start);
		agent_get_counters(a, &after);
		if (after.nr_requests < before.nr_requests ||
		    after.nr_bad_requests < before.nr_bad_requests ||
		    after.nr_long_lines < before.nr_long_lines)
			abort();
		before = after;
	}
	agent_destroy(a);
	return 0;
}
