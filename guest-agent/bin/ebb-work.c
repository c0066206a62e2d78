/*
 * ebb-work — the guest workloads of `ebb bench density` (docs/density.md).
 * A static program in the guest image (/bin/ebb-work), no ebb libraries.
 *
 *   ebb-work KIND [--seed N] [--data-pct P] [--hot-pct P] [--rate RPS]
 *                 [--report S] [--duration S] [--file PATH]
 *
 * Every kind serves "requests" at a fixed rate (open loop: a request is due
 * every 1/RPS seconds; one more than 1 s behind is skipped and counted as
 * late), times each one (its service time, CLOCK_MONOTONIC) and every
 * --report seconds prints one line
 *
 *   ebb-work: t=S kind=K reqs=N rps=X p50_us=A p99_us=B max_us=C late=L errors=E
 *
 * (reqs, late and errors cumulative; rps and the percentiles over the last
 * interval, nearest rank).  Sizes are percentages of the guest's MemTotal, so
 * one command line fits every VM size.  The kinds:
 *
 *   idle   a big cold set (default 50%) written once; 20 requests/s, each
 *          reads 4 pages of a small hot set (2%) and one in 200 also one page
 *          of the cold set: an idle-heavy guest.
 *   web    a data set (40%) with a hot set (10%) at its start; 100 requests/s,
 *          each reads 16 random hot pages and rewrites one of them; one in 200
 *          also reads a page anywhere in the set (the long cold tail: 0.5% of
 *          the requests, so it shows in p99.5 and above, not in p99).
 *   batch  a working set that grows to 40% over 20 s, is held for 30 s, then
 *          freed (MADV_DONTNEED) for 20 s, over and over; 50 requests/s, each
 *          reads 8 random pages of what is filled and rewrites one (while the
 *          set is freed a request touches nothing).
 *   cache  a file (40%) written once, then 100 requests/s, each reading 4
 *          blocks with pread, 9 in 10 from its first fifth.  The guest image
 *          has no disk: the file lives in /tmp, a tmpfs, so its page cache
 *          cannot be dropped by the guest (shmem), only swapped by the host.
 *
 * Data: page i of a set holds a seeded pattern (1 KiB of xorshift noise, then
 * 3 KiB of a repeated word pair: compressible) with its index, the seed and a
 * generation word; a rewrite bumps the generation (kept in a small array).
 * Every page a request reads is compared whole against what it must hold; a
 * difference counts one error (the first 10 are printed as
 * "ebb-work: BAD ...").  Deterministic from the seed: the same seed gives the
 * same pages and the same request sequence.
 *
 * Exit: after --duration seconds (0, the default: never) with a final
 * "ebb-work: done ... errors=E" line, status 1 if E > 0; SIGTERM/SIGINT end
 * it the same way.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PAGE		4096u
#define PAGE_WORDS	(PAGE / 8)
#define NOISE_WORDS	(1024 / 8)
#define MAX_SAMPLES	16384u
#define MAX_BAD_PRINTED	10

enum kind { K_IDLE, K_WEB, K_BATCH, K_CACHE };
static const char *const kind_names[] = { "idle", "web", "batch", "cache" };

struct work_cfg {
	enum kind kind;
	uint64_t seed;
	unsigned data_pct, hot_pct;
	unsigned rate;		/* requests per second */
	unsigned report_s, duration_s;
	const char *file;
};

struct work {
	struct work_cfg cfg;
	uint64_t rng;			/* request sequence */
	uint8_t *mem;			/* idle, web, batch: the data set */
	uint32_t *gen;			/* generation of each page */
	uint64_t nr_pages, nr_hot, nr_filled;
	int fd;				/* cache: the file */
	unsigned batch_cycle;
	/* counters */
	uint64_t nr_reqs, nr_late, nr_errors, nr_bad_printed;
	uint64_t ivl_reqs;
	uint32_t samples_ns[MAX_SAMPLES];
	unsigned nr_samples;
	uint64_t ivl_max_ns;
};

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return x ? x : 0x9e3779b97f4a7c15ull;
}

static uint64_t rnd(uint64_t *s)
{
	*s = mix64(*s + 0x9e3779b97f4a7c15ull);
	return *s;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* The content page i of generation g must hold. */
static void make_page(uint64_t *p, uint64_t seed, uint64_t i, uint32_t g)
{
	uint64_t x = mix64(seed * 0x100000001b3ull + i);
	unsigned w;

	for (w = 0; w < NOISE_WORDS; w++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[w] = x;
	}
	for (; w < PAGE_WORDS; w++)
		p[w] = (w & 1) ? x : ~x + w / 2;
	p[0] = i;
	p[1] = seed;
	p[2] = g;
}

static void check_page(struct work *wk, const void *got, uint64_t i, uint32_t g)
{
	const uint64_t *have = got;
	uint64_t want[PAGE_WORDS];
	unsigned w, nr_bad = 0, first = 0;

	make_page(want, wk->cfg.seed, i, g);
	if (!memcmp(got, want, PAGE))
		return;
	wk->nr_errors++;
	if (wk->nr_bad_printed >= MAX_BAD_PRINTED)
		return;
	wk->nr_bad_printed++;
	for (w = 0; w < PAGE_WORDS; w++) {
		if (have[w] == want[w])
			continue;
		if (!nr_bad++)
			first = w;
	}
	printf("ebb-work: BAD page %llu gen %u: %u of %u words differ, the first at byte %u: "
	       "%016llx want %016llx (page index word %016llx)\n", (unsigned long long)i, g, nr_bad,
	       PAGE_WORDS, first * 8, (unsigned long long)have[first],
	       (unsigned long long)want[first], (unsigned long long)have[0]);
}

static uint64_t mem_total_bytes(void)
{
	FILE *f = fopen("/proc/meminfo", "r");
	unsigned long long kb = 0;
	char line[128];

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "MemTotal:", 9)) {
			kb = strtoull(line + 9, NULL, 10);
			break;
		}
	}
	fclose(f);
	return (uint64_t)kb * 1024;
}

static void *map_pages(uint64_t nr)
{
	void *p = mmap(NULL, nr * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED) {
		printf("ebb-work: mmap of %llu pages: %s\n", (unsigned long long)nr, strerror(errno));
		exit(2);
	}
	return p;
}

static void fill_pages(struct work *wk, uint64_t from, uint64_t to)
{
	uint64_t i;

	for (i = from; i < to; i++)
		make_page((uint64_t *)(wk->mem + i * PAGE), wk->cfg.seed, i, wk->gen[i]);
}

/* Reads page i (and checks it); with write, rewrites it as its next generation. */
static void touch(struct work *wk, uint64_t i, bool write)
{
	uint8_t *p = wk->mem + i * PAGE;

	check_page(wk, p, i, wk->gen[i]);
	if (write) {
		wk->gen[i]++;
		((volatile uint64_t *)p)[2] = wk->gen[i];
	}
}

static void read_block(struct work *wk, uint64_t i)
{
	uint64_t buf[PAGE_WORDS];
	ssize_t n = pread(wk->fd, buf, PAGE, (off_t)(i * PAGE));

	if (n != (ssize_t)PAGE) {
		wk->nr_errors++;
		if (wk->nr_bad_printed++ < MAX_BAD_PRINTED)
			printf("ebb-work: BAD read of block %llu: %zd\n", (unsigned long long)i, n);
		return;
	}
	check_page(wk, buf, i, 0);
}

static void request(struct work *wk)
{
	uint64_t r, i;
	unsigned k;

	switch (wk->cfg.kind) {
	case K_IDLE:
		for (k = 0; k < 4; k++)
			touch(wk, rnd(&wk->rng) % wk->nr_hot, false);
		r = rnd(&wk->rng);
		if (r % 200 == 0)
			touch(wk, wk->nr_hot + (r >> 8) % (wk->nr_pages - wk->nr_hot), false);
		break;
	case K_WEB:
		for (k = 0; k < 16; k++)
			touch(wk, rnd(&wk->rng) % wk->nr_hot, k == 0);
		r = rnd(&wk->rng);
		if (r % 200 == 0)
			touch(wk, (r >> 8) % wk->nr_pages, false);
		break;
	case K_BATCH:
		if (!wk->nr_filled)
			break;
		for (k = 0; k < 8; k++)
			touch(wk, rnd(&wk->rng) % wk->nr_filled, k == 0);
		break;
	case K_CACHE:
		for (k = 0; k < 4; k++) {
			r = rnd(&wk->rng);
			if (r % 10 != 0)
				i = (r >> 8) % (wk->nr_pages / 5 ? wk->nr_pages / 5 : 1);
			else
				i = (r >> 8) % wk->nr_pages;
			read_block(wk, i);
		}
		break;
	}
}

/* batch: grow for 20 s, hold 30 s, freed for 20 s; t_s since the start. */
static void batch_phase(struct work *wk, uint64_t t_ms)
{
	uint64_t period = 70000, c = t_ms / period, in = t_ms % period, want, i;

	if (c != wk->batch_cycle) {
		wk->batch_cycle = (unsigned)c;
		wk->nr_filled = 0;
	}
	if (in < 20000)
		want = wk->nr_pages * in / 20000;
	else if (in < 50000)
		want = wk->nr_pages;
	else
		want = 0;
	if (want > wk->nr_filled) {
		for (i = wk->nr_filled; i < want; i++)
			wk->gen[i] = (uint32_t)c;
		fill_pages(wk, wk->nr_filled, want);
		wk->nr_filled = want;
	} else if (want == 0 && wk->nr_filled) {
		madvise(wk->mem, wk->nr_pages * PAGE, MADV_DONTNEED);
		wk->nr_filled = 0;
	}
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return (x > y) - (x < y);
}

/* Nearest rank: the smallest sample with at least p% of them at or below it. */
static uint64_t pct_ns(const uint32_t *s, unsigned n, unsigned p)
{
	unsigned rank;

	if (!n)
		return 0;
	rank = (unsigned)(((uint64_t)n * p + 99) / 100);
	return s[rank ? rank - 1 : 0];
}

static void report(struct work *wk, uint64_t t_ns, uint64_t ivl_ns)
{
	qsort(wk->samples_ns, wk->nr_samples, sizeof(wk->samples_ns[0]), cmp_u32);
	printf("ebb-work: t=%.3f kind=%s reqs=%llu rps=%.1f p50_us=%llu p99_us=%llu max_us=%llu "
	       "late=%llu errors=%llu\n", (double)t_ns / 1e9, kind_names[wk->cfg.kind],
	       (unsigned long long)wk->nr_reqs,
	       ivl_ns ? (double)wk->ivl_reqs * 1e9 / (double)ivl_ns : 0.0,
	       (unsigned long long)(pct_ns(wk->samples_ns, wk->nr_samples, 50) / 1000),
	       (unsigned long long)(pct_ns(wk->samples_ns, wk->nr_samples, 99) / 1000),
	       (unsigned long long)(wk->ivl_max_ns / 1000), (unsigned long long)wk->nr_late,
	       (unsigned long long)wk->nr_errors);
	fflush(stdout);
	wk->ivl_reqs = 0;
	wk->nr_samples = 0;
	wk->ivl_max_ns = 0;
}

static void setup(struct work *wk)
{
	uint64_t total = mem_total_bytes(), t0 = now_ns(), i;
	struct work_cfg *c = &wk->cfg;

	if (!total) {
		printf("ebb-work: cannot read MemTotal from /proc/meminfo\n");
		exit(2);
	}
	wk->nr_pages = total / 100 * c->data_pct / PAGE;
	if (wk->nr_pages < 16)
		wk->nr_pages = 16;
	wk->nr_hot = total / 100 * c->hot_pct / PAGE;
	if (wk->nr_hot < 1)
		wk->nr_hot = 1;
	if (wk->nr_hot > wk->nr_pages)
		wk->nr_hot = wk->nr_pages;
	if (c->kind == K_IDLE && wk->nr_hot == wk->nr_pages)
		wk->nr_hot = wk->nr_pages - 1;
	wk->rng = mix64(c->seed ^ 0x5eedull);
	wk->fd = -1;
	if (c->kind == K_CACHE) {
		uint64_t buf[PAGE_WORDS];

		wk->fd = open(c->file, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (wk->fd < 0) {
			printf("ebb-work: open %s: %s\n", c->file, strerror(errno));
			exit(2);
		}
		for (i = 0; i < wk->nr_pages; i++) {
			make_page(buf, c->seed, i, 0);
			if (pwrite(wk->fd, buf, PAGE, (off_t)(i * PAGE)) != (ssize_t)PAGE) {
				printf("ebb-work: write %s: %s\n", c->file, strerror(errno));
				exit(2);
			}
		}
	} else {
		wk->mem = map_pages(wk->nr_pages);
		wk->gen = calloc(wk->nr_pages, sizeof(*wk->gen));
		if (!wk->gen) {
			printf("ebb-work: out of memory for %llu generations\n",
			       (unsigned long long)wk->nr_pages);
			exit(2);
		}
		if (c->kind != K_BATCH)
			fill_pages(wk, 0, wk->nr_pages);
	}
	printf("ebb-work: ready kind=%s seed=%llu data_mib=%llu hot_mib=%llu rate=%u fill_ms=%llu\n",
	       kind_names[c->kind], (unsigned long long)c->seed,
	       (unsigned long long)(wk->nr_pages * PAGE >> 20),
	       (unsigned long long)(c->kind == K_WEB || c->kind == K_IDLE ? wk->nr_hot * PAGE >> 20 : 0),
	       c->rate, (unsigned long long)((now_ns() - t0) / 1000000));
	fflush(stdout);
}

static int run(struct work *wk)
{
	uint64_t period_ns = 1000000000ull / wk->cfg.rate, t0 = now_ns(), next = t0, last_report = t0;
	uint64_t report_ns = (uint64_t)wk->cfg.report_s * 1000000000ull, t, a, d;
	struct timespec ts;

	while (!stop) {
		t = now_ns();
		if (wk->cfg.duration_s && t - t0 >= (uint64_t)wk->cfg.duration_s * 1000000000ull)
			break;
		if (t - last_report >= report_ns) {
			report(wk, t - t0, t - last_report);
			last_report = t;
		}
		if (wk->cfg.kind == K_BATCH)
			batch_phase(wk, (t - t0) / 1000000);
		if (t < next) {
			d = next - t;
			if (d > 100000000ull)
				d = 100000000ull;	/* wake for reports and signals */
			ts.tv_sec = (time_t)(d / 1000000000ull);
			ts.tv_nsec = (long)(d % 1000000000ull);
			nanosleep(&ts, NULL);
			continue;
		}
		/* More than a second behind: skip what is due (counted as late). */
		while (t - next > 1000000000ull) {
			next += period_ns;
			wk->nr_late++;
		}
		a = now_ns();
		request(wk);
		d = now_ns() - a;
		next += period_ns;
		wk->nr_reqs++;
		wk->ivl_reqs++;
		if (wk->nr_samples < MAX_SAMPLES)
			wk->samples_ns[wk->nr_samples++] = d > UINT32_MAX ? UINT32_MAX : (uint32_t)d;
		if (d > wk->ivl_max_ns)
			wk->ivl_max_ns = d;
	}
	printf("ebb-work: done kind=%s reqs=%llu late=%llu errors=%llu\n", kind_names[wk->cfg.kind],
	       (unsigned long long)wk->nr_reqs, (unsigned long long)wk->nr_late,
	       (unsigned long long)wk->nr_errors);
	return wk->nr_errors ? 1 : 0;
}

static unsigned long num(const char *s, const char *what, unsigned long lo, unsigned long hi)
{
	unsigned long v;
	char *end;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || end == s || s[0] == '-' || v < lo || v > hi) {
		fprintf(stderr, "ebb-work: bad %s '%s' (%lu to %lu)\n", what, s, lo, hi);
		exit(2);
	}
	return v;
}

static const char usage[] =
	"usage: ebb-work idle|web|batch|cache [--seed N] [--data-pct P] [--hot-pct P]\n"
	"                [--rate RPS] [--report S] [--duration S] [--file PATH]\n";

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "seed", required_argument, NULL, 's' },
		{ "data-pct", required_argument, NULL, 'd' },
		{ "hot-pct", required_argument, NULL, 'H' },
		{ "rate", required_argument, NULL, 'r' },
		{ "report", required_argument, NULL, 'R' },
		{ "duration", required_argument, NULL, 'D' },
		{ "file", required_argument, NULL, 'f' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	/* defaults per kind: data %, hot %, rate */
	static const unsigned def[4][3] = { { 50, 2, 20 }, { 40, 10, 100 }, { 40, 0, 50 },
					     { 40, 0, 100 } };
	static struct work wk;
	struct sigaction sa = { .sa_handler = on_signal };
	long data = -1, hot = -1, rate = -1;
	unsigned k;
	int c;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		fputs(usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	for (k = 0; k < 4; k++)
		if (!strcmp(argv[1], kind_names[k]))
			break;
	if (k == 4) {
		fprintf(stderr, "ebb-work: unknown kind '%s'\n%s", argv[1], usage);
		return 2;
	}
	wk.cfg = (struct work_cfg){ .kind = (enum kind)k, .seed = 1, .report_s = 5,
				    .file = "/tmp/ebb-work.cache" };
	optind = 2;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 's': wk.cfg.seed = num(optarg, "--seed", 0, ~0ul); break;
		case 'd': data = (long)num(optarg, "--data-pct", 1, 90); break;
		case 'H': hot = (long)num(optarg, "--hot-pct", 1, 90); break;
		case 'r': rate = (long)num(optarg, "--rate", 1, 100000); break;
		case 'R': wk.cfg.report_s = (unsigned)num(optarg, "--report", 1, 3600); break;
		case 'D': wk.cfg.duration_s = (unsigned)num(optarg, "--duration", 0, 1u << 30); break;
		case 'f': wk.cfg.file = optarg; break;
		case 'h': fputs(usage, stdout); return 0;
		default: fputs(usage, stderr); return 2;
		}
	}
	if (optind != argc) {
		fprintf(stderr, "ebb-work: unexpected argument '%s'\n%s", argv[optind], usage);
		return 2;
	}
	wk.cfg.data_pct = data > 0 ? (unsigned)data : def[k][0];
	wk.cfg.hot_pct = hot > 0 ? (unsigned)hot : def[k][1];
	wk.cfg.rate = rate > 0 ? (unsigned)rate : def[k][2];
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	setup(&wk);
	return run(&wk);
}
