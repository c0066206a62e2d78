/*
 * test_zslab.c — unit tests of the compressed tier's size-class slab: class
 * boundaries and refused sizes, bytes kept intact across many allocations
 * and frees of mixed sizes (checked against a model), freed slots reused
 * before new chunks, chunks given back when they empty, and held_bytes
 * never below the live payload.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "host-reclaim/zslab.h"

static uint64_t rnd_state = 0x243F6A8885A308D3ULL;

static uint64_t rnd(void)
{
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 7;
	rnd_state ^= rnd_state << 17;
	return rnd_state;
}

static void pattern(unsigned char *p, size_t len, uint32_t seed)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (unsigned char)(seed * 131 + i * 7 + (i >> 8));
}

static void test_sizes(void **state)
{
	struct zslab z;
	uint32_t h;
	static const size_t ok[] = { 1, 15, 16, 17, 63, 64, 65, 2048, 4095, 4096 };

	(void)state;
	zslab_init(&z);
	assert_int_equal(zslab_alloc(&z, 0, &h), -EINVAL);
	assert_int_equal(zslab_alloc(&z, ZSLAB_MAX_OBJ + 1, &h), -EINVAL);
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		unsigned char *p;

		assert_int_equal(zslab_alloc(&z, ok[i], &h), 0);
		p = zslab_ptr(&z, h);
		memset(p, 0xa5, ok[i]);   /* ASan: the whole length is ours */
	}
	zslab_destroy(&z);
}

#define NR_LIVE 3000

/* Random allocs and frees of random sizes; every live object keeps its bytes. */
static void test_model(void **state)
{
	static uint32_t handle[NR_LIVE];
	static uint16_t len[NR_LIVE];
	static unsigned char want[ZSLAB_MAX_OBJ];
	struct zslab z;
	uint64_t payload = 0;

	(void)state;
	zslab_init(&z);
	memset(len, 0, sizeof(len));
	for (int round = 0; round < 60000; round++) {
		uint32_t i = (uint32_t)(rnd() % NR_LIVE);

		if (len[i]) {
			pattern(want, len[i], i);
			assert_memory_equal(zslab_ptr(&z, handle[i]), want, len[i]);
			zslab_free(&z, handle[i]);
			payload -= len[i];
			len[i] = 0;
		} else {
			/* mostly mid-sized, like compressed pages, some at the extremes */
			uint16_t l = (uint16_t)(rnd() % 8 ? 200 + rnd() % 2800 : 1 + rnd() % ZSLAB_MAX_OBJ);

			assert_int_equal(zslab_alloc(&z, l, &handle[i]), 0);
			pattern(zslab_ptr(&z, handle[i]), l, i);
			len[i] = l;
			payload += l;
		}
		assert_true(zslab_held_bytes(&z) >= payload);
	}
	for (uint32_t i = 0; i < NR_LIVE; i++) {
		if (!len[i])
			continue;
		pattern(want, len[i], i);
		assert_memory_equal(zslab_ptr(&z, handle[i]), want, len[i]);
		zslab_free(&z, handle[i]);
	}
	assert_int_equal(zslab_held_bytes(&z), 0);
	assert_int_equal(z.nr_chunks, 0);
	zslab_destroy(&z);
}

/* A freed slot is handed out again before any new chunk is made. */
static void test_reuse_and_release(void **state)
{
	static uint32_t h[200];
	struct zslab z;
	uint64_t held;
	uint32_t again;

	(void)state;
	zslab_init(&z);
	for (int i = 0; i < 200; i++)
		assert_int_equal(zslab_alloc(&z, 1000, &h[i]), 0);
	held = zslab_held_bytes(&z);
	assert_true(held >= 200 * 1000);
	/* 16 slots of 1000 bytes a chunk: 200 objects in 13 chunks */
	assert_int_equal(z.nr_chunks, 13);
	zslab_free(&z, h[17]);
	assert_int_equal(zslab_alloc(&z, 1000, &again), 0);
	assert_int_equal(again, h[17]);
	assert_int_equal(zslab_held_bytes(&z), held);
	/* Emptying the first chunk gives it back; the others stay. */
	for (int i = 0; i < 16; i++)
		zslab_free(&z, h[i]);
	assert_int_equal(z.nr_chunks, 12);
	assert_true(zslab_held_bytes(&z) < held);
	/* Its number is reused for the next chunk. */
	for (int i = 0; i < 16 - 200 % 16; i++)
		assert_int_equal(zslab_alloc(&z, 1000, &again), 0);
	assert_int_equal(z.nr_chunks, 12);
	assert_int_equal(zslab_alloc(&z, 1000, &again), 0);
	assert_int_equal(z.nr_chunks, 13);
	assert_int_equal(again >> ZSLAB_SLOT_BITS, h[0] >> ZSLAB_SLOT_BITS);
	zslab_destroy(&z);
	assert_int_equal(zslab_held_bytes(&z), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sizes),
		cmocka_unit_test(test_model),
		cmocka_unit_test(test_reuse_and_release),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
