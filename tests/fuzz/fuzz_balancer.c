/*
 * tests/fuzz/fuzz_balancer.c — libFuzzer target for ebbd's balancer: every
 * number a VM, its agent or the host reports is fuzzer-chosen.  The input is
 * a program: a header picks the policy and the pool, then each step takes a
 * time increment, a host observation and up to 8 VM observations as raw
 * bytes (ids from a small set, so VMs join, leave, repeat and collide),
 * sometimes a policy switch.  After every step the invariants are checked
 * and trap when broken: the step succeeds; every action has a valid kind and
 * names a VM of this step by id and by its index in the caller's array;
 * balloon targets stay inside the guest and value2 = guest - value; a high
 * set is not below the VM's min; a clamp carries a lease; the pool's
 * watermarks are ordered.  Reporting calls (pool, vm, trace, format) run on
 * the result.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "host-reclaim/balancer.h"

#define MAX_VMS 8
#define MAX_ACTS 64

struct in {
	const uint8_t *p;
	size_t n;
};

static void take(struct in *in, void *dst, size_t len)
{
	size_t k = in->n < len ? in->n : len;

	memset(dst, 0, len);
	memcpy(dst, in->p, k);
	in->p += k;
	in->n -= k;
}

static uint8_t byte(struct in *in)
{
	uint8_t b = 0;

	take(in, &b, 1);
	return b;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct in in = { data, size };
	struct ebb_bal_cfg cfg;
	struct ebb_balancer *b = NULL;
	struct ebb_bal_vm_obs vms[MAX_VMS];
	struct ebb_bal_action acts[MAX_ACTS];
	uint64_t now = 0;

	memset(&cfg, 0, sizeof(cfg));
	cfg.policy = (enum ebb_bal_policy)(byte(&in) % EBB_BAL_NR_POLICIES);
	cfg.ksm_steer = byte(&in) & 1;
	uint8_t pool_kind = byte(&in);
	if (pool_kind & 1)
		cfg.pool.budget_bytes = ((uint64_t)byte(&in) + 1) << 26;   /* 64 MiB .. 16 GiB */
	else
		cfg.pool.budget_percent = byte(&in) % 101;
	if (pool_kind & 2)
		cfg.pool.scale_factor = (uint32_t)byte(&in) * 20;
	if (ebb_bal_create(&cfg, &b) != 0)
		return 0;

	for (int step = 0; step < 64 && in.n > 0; step++) {
		struct ebb_bal_host_obs h;
		size_t nr = byte(&in) % (MAX_VMS + 1), n = 0;
		uint8_t flags = byte(&in);

		now += (uint64_t)byte(&in) * 250000000ULL;     /* 0 .. 64 s */
		take(&in, &h, sizeof(h));
		/* raw bytes, but bools and enums as C can hold them (the daemon
		 * builds these structs from parsed, typed values) */
		h.ksm_available = *(volatile uint8_t *)&h.ksm_available & 1;
		h.ksm_running = *(volatile uint8_t *)&h.ksm_running & 1;
		for (size_t i = 0; i < nr; i++) {
			struct ebb_bal_vm_obs *o = &vms[i];
			take(&in, o, sizeof(*o));
			o->id = o->id % 12;                         /* join, leave, collide, 0 */
			o->backend = (enum ebb_bal_backend_kind)(*(volatile uint8_t *)&o->backend & 1);
			o->cfg.ksm_allowed = *(volatile uint8_t *)&o->cfg.ksm_allowed & 1;
			o->max_clamped = *(volatile uint8_t *)&o->max_clamped & 1;
			o->agent_present = *(volatile uint8_t *)&o->agent_present & 1;
			o->ws.valid = *(volatile uint8_t *)&o->ws.valid & 1;
			o->ksm_advised = *(volatile uint8_t *)&o->ksm_advised & 1;
		}
		if (flags & 1)
			ebb_bal_set_policy(b, (enum ebb_bal_policy)(flags >> 1));
		uint64_t t = (flags & 0x80) && now > 1000 ? now - 1000 : now;   /* time going back */
		if (ebb_bal_step(b, t, &h, vms, nr, acts, MAX_ACTS, &n) != 0)
			__builtin_trap();
		if (n > MAX_ACTS)
			__builtin_trap();
		for (size_t k = 0; k < n; k++) {
			const struct ebb_bal_action *a = &acts[k];
			char line[512];
			if ((unsigned)a->kind >= EBB_BAL_NR_ACTIONS ||
			    (unsigned)a->why.reason >= EBB_BAL_NR_REASONS)
				__builtin_trap();
			ebb_bal_format_action(a, (k & 1) ? "vm" : NULL, line, sizeof(line));
			if (a->kind == EBB_BAL_ACT_KSMD) {
				if (a->vm_id != 0 || a->vm_index != UINT32_MAX)
					__builtin_trap();
				continue;
			}
			if (a->vm_index >= nr || vms[a->vm_index].id != a->vm_id || a->vm_id == 0)
				__builtin_trap();
			const struct ebb_bal_vm_obs *o = &vms[a->vm_index];
			uint64_t g = o->guest_bytes & ~4095ULL;
			switch (a->kind) {
			case EBB_BAL_ACT_BALLOON:
				if (a->value > g || a->value2 != g - a->value)
					__builtin_trap();
				break;
			case EBB_BAL_ACT_SET_HIGH:
				if (a->value < (o->cfg.min_bytes < g ? o->cfg.min_bytes : g))
					__builtin_trap();
				break;
			case EBB_BAL_ACT_CLAMP_MAX:
				if (a->lease_ms == 0)
					__builtin_trap();
				break;
			default:
				break;
			}
		}
		struct ebb_bal_pool_state ps;
		ebb_bal_get_pool(b, &ps);
		if (ps.budget_bytes &&
		    !(ps.wmark_min_bytes < ps.wmark_low_bytes && ps.wmark_low_bytes < ps.wmark_high_bytes))
			__builtin_trap();
		for (size_t i = 0; i < nr; i++) {
			struct ebb_bal_vm_state vs;
			ebb_bal_get_vm(b, vms[i].id, &vs);
		}
	}
	struct ebb_bal_action tr[EBB_BAL_TRACE_LEN];
	size_t nt = ebb_bal_trace(b, tr, EBB_BAL_TRACE_LEN);
	if (nt > EBB_BAL_TRACE_LEN)
		__builtin_trap();
	ebb_bal_destroy(b);
	return 0;
}
