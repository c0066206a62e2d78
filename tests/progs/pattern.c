/*
 * pattern — a guest-side data integrity checker and hot-set workload for
 * the reclaim tests (tests/box/scenarios/squeeze_*.sh).  Static, no ebb
 * libraries.
 *
 *   pattern fill MIB SEED ROUNDS PAUSE_S
 *       maps MIB MiB, writes a known, per-page seeded pattern into every page,
 *       prints "pattern: filled ...", then ROUNDS times (0 = forever): sleeps
 *       PAUSE_S seconds and verifies every byte, printing one line per round
 *       ("pattern: verify round R pages=N bad_pages=B bad_bytes=X ms=T").
 *       Exit 0 only if no round found a difference.
 *   pattern hot MIB HOT_MIB SECONDS REPORT_S [warm]
 *       maps MIB MiB and fills it once, then for SECONDS reads and rewrites
 *       the first HOT_MIB MiB over and over (a 64-bit add per 64 bytes, every
 *       byte of each page read), printing "pattern: hot t=S mib_per_s=X"
 *       every REPORT_S seconds, "pattern: hot warm t=S" when the first pass
 *       over the hot set is done, "pattern: hot loop done t=S" when the timed
 *       loop ends, then verifies every page (hot and cold) and prints
 *       "pattern: hot done mib_per_s=X bad_pages=B" (B must be 0).  With
 *       "warm", the SECONDS start after the first pass: a hot set the host
 *       swapped out while the rest was filled comes back in that pass, at
 *       whatever speed the machine has, and the timed loop is all steady state.
 *   pattern hotread MIB HOT_MIB SECONDS REPORT_S
 *       the same, but the loop only reads the hot set (a read-mostly guest:
 *       the KVM dirty log never sees its hot pages; squeeze_read.sh).
 *
 * Page content (4 KiB pages, index i, seed s): the kinds mix so that every
 * path of the host's swap store is exercised and none hides a bug:
 *   i % 16 == 3   all zero (the zero-page path)
 *   i % 16 == 7   one fixed page derived from the seed only (dedup path)
 *   i % 4  == 0   4 KiB of xorshift noise seeded by (s, i) (incompressible:
 *                 the file tier)
 *   otherwise     1 KiB of noise, then a 16-byte word pattern depending on
 *                 (s, i) repeated (compresses well: the LZ4 tier)
 * Every non-zero page starts with its index and the seed, so a page
 * returned at the wrong place is caught even where contents look alike.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096u

static uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return x ? x : 0x9e3779b97f4a7c15ull;
}

static void make_page(uint64_t *p, uint64_t i, uint64_t seed)
{
	unsigned w, nw = PAGE / 8, noise;
	uint64_t x;

	if (i % 16 == 3) {
		memset(p, 0, PAGE);
		return;
	}
	if (i % 16 == 7)
		x = mix(seed ^ 0xd00dull);
	else
		x = mix(seed * 0x100000001b3ull + i);
	noise = i % 4 == 0 ? nw : 1024 / 8;
	for (w = 0; w < noise; w++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[w] = x;
	}
	for (; w < nw; w++)
		p[w] = (w & 1) ? x : ~x + w / 2;
	if (i % 16 != 7) {
		p[0] = i;
		p[1] = seed;
	}
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint8_t *map_mib(uint64_t mib)
{
	void *p = mmap(NULL, mib << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED) {
		printf("pattern: mmap %llu MiB: %s\n", (unsigned long long)mib, strerror(errno));
		exit(2);
	}
	return p;
}

static void fill(uint8_t *mem, uint64_t nr_pages, uint64_t seed)
{
	uint64_t i;

	for (i = 0; i < nr_pages; i++)
		make_page((uint64_t *)(mem + i * PAGE), i, seed);
}

/* Returns the number of bad pages; *bad_bytes gets the differing bytes. */
static uint64_t verify(const uint8_t *mem, uint64_t first, uint64_t nr_pages, uint64_t seed,
		       uint64_t *bad_bytes, int *nr_reported)
{
	static uint64_t want[PAGE / 8];
	uint64_t i, bad = 0;
	unsigned b;

	*bad_bytes = 0;
	for (i = first; i < first + nr_pages; i++) {
		const uint8_t *got = mem + i * PAGE;

		make_page(want, i, seed);
		if (!memcmp(got, want, PAGE))
			continue;
		bad++;
		for (b = 0; b < PAGE; b++)
			*bad_bytes += got[b] != ((const uint8_t *)want)[b];
		if (*nr_reported < 10) {
			(*nr_reported)++;
			printf("pattern: BAD page %llu: first words %016llx %016llx want %016llx "
			       "%016llx\n", (unsigned long long)i,
			       (unsigned long long)((const uint64_t *)got)[0],
			       (unsigned long long)((const uint64_t *)got)[1],
			       (unsigned long long)want[0], (unsigned long long)want[1]);
		}
	}
	return bad;
}

static uint64_t arg(const char *s, const char *what)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 0);
	if (errno || *end || end == s) {
		printf("pattern: bad %s '%s'\n", what, s);
		exit(2);
	}
	return v;
}

static int cmd_fill(uint64_t mib, uint64_t seed, uint64_t rounds, uint64_t pause_s)
{
	uint64_t nr = (mib << 20) / PAGE, r, t0, bad, bad_bytes, total_bad = 0;
	uint8_t *mem = map_mib(mib);
	int reported = 0;

	t0 = now_ms();
	fill(mem, nr, seed);
	printf("pattern: filled pages=%llu mib=%llu seed=%llu ms=%llu\n", (unsigned long long)nr,
	       (unsigned long long)mib, (unsigned long long)seed,
	       (unsigned long long)(now_ms() - t0));
	fflush(stdout);
	for (r = 1; !rounds || r <= rounds; r++) {
		sleep((unsigned)pause_s);
		t0 = now_ms();
		bad = verify(mem, 0, nr, seed, &bad_bytes, &reported);
		total_bad += bad;
		printf("pattern: verify round %llu pages=%llu bad_pages=%llu bad_bytes=%llu ms=%llu\n",
		       (unsigned long long)r, (unsigned long long)nr, (unsigned long long)bad,
		       (unsigned long long)bad_bytes, (unsigned long long)(now_ms() - t0));
		fflush(stdout);
	}
	printf("pattern: done bad_pages=%llu\n", (unsigned long long)total_bad);
	return total_bad ? 1 : 0;
}

static int cmd_hot(uint64_t mib, uint64_t hot_mib, uint64_t seconds, uint64_t report_s, int write,
		   int after_warm)
{
	uint64_t nr = (mib << 20) / PAGE, hot = (hot_mib << 20) / PAGE;
	uint64_t t0, tl, now, bytes = 0, bytes_l = 0, sum = 0, i, w, bad, bad_bytes, loop_t0;
	uint8_t *mem = map_mib(mib);
	int reported = 0, warm = 0;

	if (hot > nr)
		hot = nr;
	fill(mem, nr, 7);
	printf("pattern: hot filled pages=%llu hot_pages=%llu\n", (unsigned long long)nr,
	       (unsigned long long)hot);
	fflush(stdout);
	t0 = tl = loop_t0 = now_ms();
	do {
		/* Read every word of the hot set, rewrite one word per page with the
		 * same value (the page gets written, its content stays known). */
		for (i = 0; i < hot; i++) {
			volatile uint64_t *p = (volatile uint64_t *)(mem + i * PAGE);

			for (w = 0; w < PAGE / 8; w += 8)
				sum += p[w];
			if (write)
				p[2] = p[2];
		}
		bytes += hot * PAGE;
		now = now_ms();
		if (!warm) {
			warm = 1;
			printf("pattern: hot warm t=%llu\n", (unsigned long long)((now - t0) / 1000));
			if (after_warm)
				loop_t0 = now;
		}
		if (now - tl >= report_s * 1000) {
			printf("pattern: hot t=%llu mib_per_s=%.1f\n",
			       (unsigned long long)((now - t0) / 1000),
			       (double)(bytes - bytes_l) / 1048576.0 / ((double)(now - tl) / 1000.0));
			fflush(stdout);
			bytes_l = bytes;
			tl = now;
		}
	} while (now - loop_t0 < seconds * 1000);
	/* Marks the end of the timed loop: the check below reads everything. */
	printf("pattern: hot loop done t=%llu\n", (unsigned long long)((now - t0) / 1000));
	fflush(stdout);
	bad = verify(mem, 0, nr, 7, &bad_bytes, &reported);
	printf("pattern: hot done mib_per_s=%.1f bad_pages=%llu sum=%llx\n",
	       (double)bytes / 1048576.0 / ((double)(now - t0) / 1000.0), (unsigned long long)bad,
	       (unsigned long long)sum);
	return bad ? 1 : 0;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 6 && !strcmp(argv[1], "fill"))
		return cmd_fill(arg(argv[2], "MIB"), arg(argv[3], "SEED"), arg(argv[4], "ROUNDS"),
				arg(argv[5], "PAUSE_S"));
	if ((argc == 6 || (argc == 7 && !strcmp(argv[6], "warm"))) &&
	    (!strcmp(argv[1], "hot") || !strcmp(argv[1], "hotread")))
		return cmd_hot(arg(argv[2], "MIB"), arg(argv[3], "HOT_MIB"), arg(argv[4], "SECONDS"),
			       arg(argv[5], "REPORT_S"), !strcmp(argv[1], "hot"), argc == 7);
	fprintf(stderr, "usage: pattern fill MIB SEED ROUNDS PAUSE_S | "
		"pattern hot|hotread MIB HOT_MIB SECONDS REPORT_S [warm]\n");
	return 2;
}
