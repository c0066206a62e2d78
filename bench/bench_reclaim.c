/*
 * bench_reclaim.c — ebb's pager next to the kernel's own swap path, in one
 * run on the same machine, plus the cost of an aging pass.
 *
 *   swap-out: ebb evicts a region (LZ4 compressed tier; both eviction modes:
 *             UFFDIO_MOVE, and the uffd-wp fallback) vs the
 *             kernel paging the same data out with MADV_PAGEOUT to a zram
 *             device (lz4) this benchmark sets up and removes again;
 *   swap-in:  latency of touching evicted pages in random order: ebb's
 *             userfaultfd fault + UFFDIO_COPY vs the kernel's swap-in from
 *             zram (vm.page-cluster set to 0 for the run so neither side
 *             reads ahead; restored after), and vs the floor of the
 *             mechanism: a bare userfaultfd round trip (MISSING fault, a
 *             handler thread blocked in poll(), one UFFDIO_COPY of a ready
 *             page), and the same with a handler spinning on the
 *             non-blocking uffd; ebb with its adaptive polling off and on,
 *             with the CPU the polling costs (during the touches, and over
 *             1 s idle after them);
 *   file tier: ebb's swap-out to a swap file and swap-in from it, plaintext
 *             vs encrypted (--swap-encrypt), side by side with the ratio;
 *   aging:    CPU time of one ebb reference harvest (PAGEMAP_SCAN over the
 *             region + applying the bits to the LRU) per GiB, with no page
 *             written and with every page written.
 * Figures are printed side by side with the ratio ebb/kernel.  If zram cannot
 * be set up (not root, no zram), ebb's figures are printed alone, marked as
 * lacking the peer, with the reason.  Size: EBB_BENCH_MB (default 256).
 *   metadata: bytes ebb holds per page of a 1 GiB and a 16 GiB region with
 *             every page stored, allocator overhead included.
 * --swapin-only skips the file tier, the aging pass and the metadata;
 * --metadata-only runs the metadata figure alone; --metadata-quick only its
 * 1 GiB region (seconds instead of minutes, for iterating).
 * --burn: a CPU burner runs on the other core for the whole run (the output
 * says whether it ran): a fault hand-off to an idle CPU and one to a busy
 * machine cost very different wakes.
 */
#include "host-reclaim/region.h"
#include "host-reclaim/uffd_compat.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PG 4096u

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static uint64_t cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static uint64_t mix(uint64_t x)
{
	x += 0x9E3779B97F4A7C15ULL;
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
	x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
	return x ^ (x >> 31);
}

/* Same data for both sides: 512 bytes of noise then a repeated pattern. */
static void fill(uint8_t *mem, uint64_t nr)
{
	for (uint64_t pfn = 0; pfn < nr; pfn++) {
		uint64_t *p = (uint64_t *)(mem + pfn * PG);

		for (unsigned w = 0; w < PG / 8; w++)
			p[w] = w < 64 ? mix(pfn * 512 + w) : pfn * 0x10001ULL;
	}
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

struct lat {
	double p50_us, p99_us;
	uint64_t bad;
};

#define NR_PHASES 3
static const unsigned phase_threads[NR_PHASES] = { 1, 2, 4 };

struct toucher {
	uint8_t *mem;
	const uint64_t *pfns;
	uint64_t n;
	uint64_t *t;              /* one latency per touch */
	uint64_t bad;
	pthread_barrier_t *go;
};

static void *toucher_main(void *arg)
{
	struct toucher *w = arg;

	pthread_barrier_wait(w->go);
	for (uint64_t i = 0; i < w->n; i++) {
		uint64_t pfn = w->pfns[i];
		volatile uint64_t *p = (volatile uint64_t *)(w->mem + pfn * PG);
		uint64_t t0 = now_ns();
		uint64_t v = p[1];

		w->t[i] = now_ns() - t0;
		if (v != mix(pfn * 512 + 1))
			w->bad++;
	}
	return NULL;
}

static struct lat lat_of(uint64_t *t, uint64_t n, uint64_t bad)
{
	struct lat l = { 0, 0, bad };

	qsort(t, n, sizeof(*t), cmp_u64);
	l.p50_us = (double)t[n / 2] / 1000.0;
	l.p99_us = (double)t[n * 99 / 100] / 1000.0;
	return l;
}

/*
 * Touch evicted pages in random order, each page once (no page is touched
 * twice: a second touch would time a resident page), timing every touch:
 * @n pages with 1 faulting thread, the next @n with 2, the next @n with 4
 * (the faulting threads start together and share the pages).  @out gets
 * the latencies of each phase.  Needs 3 n <= nr.
 */
static void touch_phases(uint8_t *mem, uint64_t nr, uint64_t n, struct lat out[NR_PHASES])
{
	uint64_t *perm = malloc(nr * sizeof(*perm)), *t = malloc(n * sizeof(*t));
	uint64_t seed = 99;

	memset(out, 0, NR_PHASES * sizeof(*out));
	if (!perm || !t || 3 * n > nr) {
		free(perm);
		free(t);
		return;
	}
	for (uint64_t i = 0; i < nr; i++)
		perm[i] = i;
	for (uint64_t i = nr - 1; i > 0; i--) {
		uint64_t j, x;

		seed = mix(seed);
		j = seed % (i + 1);
		x = perm[i];
		perm[i] = perm[j];
		perm[j] = x;
	}
	for (unsigned ph = 0; ph < NR_PHASES; ph++) {
		unsigned nt = phase_threads[ph];
		struct toucher w[4];
		pthread_t th[4];
		pthread_barrier_t go;
		uint64_t bad = 0;

		pthread_barrier_init(&go, NULL, nt);
		for (unsigned k = 0; k < nt; k++) {
			uint64_t from = n * k / nt, to = n * (k + 1) / nt;

			w[k] = (struct toucher){ .mem = mem, .pfns = perm + ph * n + from, .n = to - from,
						 .t = t + from, .go = &go };
			if (k && pthread_create(&th[k], NULL, toucher_main, &w[k]) != 0)
				w[k].n = 0, w[k].bad = 1;   /* counted as a failure */
		}
		toucher_main(&w[0]);
		for (unsigned k = 1; k < nt; k++)
			if (w[k].n)
				pthread_join(th[k], NULL);
		for (unsigned k = 0; k < nt; k++)
			bad += w[k].bad;
		pthread_barrier_destroy(&go);
		out[ph] = lat_of(t, n, bad);
	}
	free(perm);
	free(t);
}

static uint64_t count_resident(uint8_t *mem, uint64_t nr)
{
	unsigned char *v = malloc(nr);
	uint64_t n = 0;

	if (!v || mincore(mem, nr * PG, v) != 0) {
		free(v);
		return UINT64_MAX;
	}
	for (uint64_t i = 0; i < nr; i++)
		n += v[i] & 1;
	free(v);
	return n;
}

/* ---- ebb ---------------------------------------------------------------- */

struct side {
	double out_mib_s;
	struct lat in;                /* 1 faulting thread (= mt[0]) */
	struct lat mt[NR_PHASES];     /* 1, 2, 4 faulting threads */
	bool ok;
	char why[200];
	/* ebb only: the fault handler during the touches and 1 s idle after */
	uint64_t touch_wall_ns, touch_cpu_ns, idle_wall_ns, idle_cpu_ns;
	uint64_t spin_ns, hits, misses, window_ns, faults;
	uint64_t cycle_on_ns, cycle_off_ns, epochs_off;
};

static uint64_t bad_of(const struct side *s)
{
	uint64_t bad = 0;

	for (unsigned ph = 0; ph < NR_PHASES; ph++)
		bad += s->mt[ph].bad;
	return bad;
}

/* @file_tier: no compressed tier, everything to a swap file in /var/tmp,
 * encrypted when @encrypt. */
static struct side bench_ebb_ex(uint64_t size, uint64_t nr_touch, enum ebb_evict_mode mode,
				bool file_tier, bool encrypt, uint64_t poll_max_ns)
{
	struct side s = { 0 };
	uint64_t nr = size / PG;
	uint8_t *mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct ebb_region_cfg cfg;
	struct ebb_region *r;
	struct ebb_region_counters c;
	int ret;

	if (mem == MAP_FAILED) {
		snprintf(s.why, sizeof(s.why), "mmap: %s", strerror(errno));
		return s;
	}
	madvise(mem, size, MADV_NOHUGEPAGE);
	fill(mem, nr);
	ebb_region_cfg_init(&cfg);
	cfg.name = "bench";
	cfg.base = mem;
	cfg.size_bytes = size;
	cfg.swap.zpool_budget_bytes = size;   /* all in the compressed tier, like zram */
	if (file_tier) {
		cfg.swap.zpool_budget_bytes = 0;
		cfg.swap.dir = getenv("EBB_SWAP_DIR") ? getenv("EBB_SWAP_DIR") : "/var/tmp";
		cfg.swap.file_size_bytes = size;
		cfg.swap.file_encrypt = encrypt;
	}
	cfg.readahead_pages = 1;
	cfg.keep_clean_copies = false;
	cfg.evict_mode = mode;
	cfg.poll_max_ns = poll_max_ns;
	ret = ebb_region_create(&cfg, &r);
	if (ret) {
		snprintf(s.why, sizeof(s.why), "region: %s", strerror(-ret));
		munmap(mem, size);
		return s;
	}
	ebb_region_start(r);
	uint64_t t0 = now_ns();

	for (int i = 0; i < 64; i++) {
		struct ebb_scan_control sc = { .nr_to_reclaim = nr, .priority = 0, .swappiness = 200,
					       .may_swap = true, .may_writepage = true };

		ebb_region_reclaim(r, &sc);
		ebb_region_get_counters(r, &c);
		if (c.resident_pages == 0)
			break;
	}
	uint64_t t1 = now_ns();

	ebb_region_get_counters(r, &c);
	s.out_mib_s = (double)(nr - c.resident_pages) * PG / (1 << 20) / ((double)(t1 - t0) / 1e9);
	printf("# ebb (%s%s): evicted %llu of %llu pages (%llu compressed, %llu bytes)\n",
	       mode == EBB_EVICT_WP ? "uffd-wp" : "UFFDIO_MOVE",
	       file_tier ? (encrypt ? ", file tier encrypted" : ", file tier plaintext") : "",
	       (unsigned long long)(nr - c.resident_pages), (unsigned long long)nr,
	       (unsigned long long)c.compressed_pages, (unsigned long long)c.compressed_bytes);
	uint64_t resident_left = c.resident_pages;
	struct ebb_region_counters c0, c1, c2;

	usleep(300 * 1000);                  /* let the polling window settle at 0 */
	ebb_region_get_counters(r, &c0);
	uint64_t w0 = now_ns();

	touch_phases(mem, nr, nr_touch, s.mt);
	s.in = s.mt[0];
	uint64_t w1 = now_ns();

	usleep(150 * 1000);                  /* the handler publishes its CPU once a turn */
	ebb_region_get_counters(r, &c1);
	uint64_t w2 = now_ns();

	usleep(1000 * 1000);                 /* idle: what does polling cost now? */
	ebb_region_get_counters(r, &c2);
	uint64_t w3 = now_ns();

	s.touch_wall_ns = w1 - w0;
	s.touch_cpu_ns = c1.handler_cpu_ns - c0.handler_cpu_ns;
	s.idle_wall_ns = w3 - w2;
	s.idle_cpu_ns = c2.handler_cpu_ns - c1.handler_cpu_ns;
	s.spin_ns = c1.poll_spin_ns - c0.poll_spin_ns;
	s.hits = c1.nr_poll_hits - c0.nr_poll_hits;
	s.misses = c1.nr_poll_misses - c0.nr_poll_misses;
	s.faults = c1.nr_faults - c0.nr_faults;
	s.window_ns = c2.poll_window_ns;
	s.cycle_on_ns = c1.poll_cycle_on_ns;
	s.cycle_off_ns = c1.poll_cycle_off_ns;
	s.epochs_off = c1.nr_poll_epochs_off;
	s.ok = resident_left == 0 && bad_of(&s) == 0 && c2.nr_errors == 0;
	if (!s.ok)
		snprintf(s.why, sizeof(s.why), "%llu pages not evicted, %llu bad reads, %llu errors",
			 (unsigned long long)resident_left, (unsigned long long)bad_of(&s),
			 (unsigned long long)c2.nr_errors);
	ebb_region_destroy(r);
	munmap(mem, size);
	return s;
}

static struct side bench_ebb(uint64_t size, uint64_t nr_touch, enum ebb_evict_mode mode,
			     uint64_t poll_max_ns)
{
	return bench_ebb_ex(size, nr_touch, mode, false, false, poll_max_ns);
}

/* ---- the floor: a bare userfaultfd round trip ----------------------------- */

struct floor_ctx {
	int uffd;
	bool spin;            /* spin on the non-blocking uffd instead of poll() */
	atomic_bool stop;
	uint8_t *page;        /* the ready page UFFDIO_COPY copies */
	uint64_t base;
};

static void *floor_main(void *arg)
{
	struct floor_ctx *f = arg;
	struct uffd_msg m[16];

	while (!atomic_load_explicit(&f->stop, memory_order_relaxed)) {
		if (!f->spin) {
			struct pollfd pfd = { .fd = f->uffd, .events = POLLIN };

			if (poll(&pfd, 1, 100) <= 0)
				continue;
		}
		ssize_t n = read(f->uffd, m, sizeof(m));

		if (n <= 0) {
			if (f->spin)
				sched_yield();
			continue;
		}
		for (ssize_t i = 0; i < n / (ssize_t)sizeof(m[0]); i++) {
			uint64_t addr = m[i].arg.pagefault.address & ~(uint64_t)(PG - 1);
			struct uffdio_copy cp = { .dst = addr, .src = (uint64_t)(uintptr_t)f->page,
						  .len = PG, .mode = 0 };

			if (m[i].event != UFFD_EVENT_PAGEFAULT)
				continue;
			/* the word touch_random checks, so the floor's reads are checked too */
			((uint64_t *)f->page)[1] = mix((addr - f->base) / PG * 512 + 1);
			ioctl(f->uffd, UFFDIO_COPY, &cp);
		}
	}
	return NULL;
}

static struct side bench_floor(uint64_t size, uint64_t nr_touch, bool spin)
{
	struct side s = { 0 };
	struct floor_ctx f = { .uffd = -1, .spin = spin };
	struct uffdio_api api = { .api = UFFD_API, .features = 0 };
	uint8_t *mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	pthread_t th;

	f.page = aligned_alloc(PG, PG);
	if (mem == MAP_FAILED || !f.page) {
		snprintf(s.why, sizeof(s.why), "out of memory");
		goto out;
	}
	memset(f.page, 0x5a, PG);
	madvise(mem, size, MADV_NOHUGEPAGE);
	f.base = (uint64_t)(uintptr_t)mem;
	f.uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (f.uffd < 0 || ioctl(f.uffd, UFFDIO_API, &api) < 0) {
		snprintf(s.why, sizeof(s.why), "userfaultfd: %s", strerror(errno));
		goto out;
	}
	struct uffdio_register reg = { .range = { f.base, size }, .mode = UFFDIO_REGISTER_MODE_MISSING };

	if (ioctl(f.uffd, UFFDIO_REGISTER, &reg) < 0) {
		snprintf(s.why, sizeof(s.why), "UFFDIO_REGISTER: %s", strerror(errno));
		goto out;
	}
	if (pthread_create(&th, NULL, floor_main, &f) != 0) {
		snprintf(s.why, sizeof(s.why), "pthread_create failed");
		goto out;
	}
	touch_phases(mem, size / PG, nr_touch, s.mt);
	s.in = s.mt[0];
	atomic_store(&f.stop, true);
	pthread_join(th, NULL);
	s.ok = bad_of(&s) == 0;
	if (!s.ok)
		snprintf(s.why, sizeof(s.why), "%llu bad reads", (unsigned long long)bad_of(&s));
out:
	if (f.uffd >= 0)
		close(f.uffd);
	if (mem != MAP_FAILED)
		munmap(mem, size);
	free(f.page);
	return s;
}

/* ---- the burner ------------------------------------------------------------ */

/* A child process spinning on the last CPU; returns its pid, or -1. */
static pid_t burner_start(int *cpu_out)
{
	long nr_cpu = sysconf(_SC_NPROCESSORS_ONLN);
	int cpu = nr_cpu > 1 ? (int)nr_cpu - 1 : 0;
	pid_t pid = fork();

	if (pid == 0) {
		cpu_set_t set;
		volatile uint64_t x = 0;

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		CPU_ZERO(&set);
		CPU_SET(cpu, &set);
		sched_setaffinity(0, sizeof(set), &set);
		for (;;)
			x++;
	}
	*cpu_out = cpu;
	return pid;
}

/* ---- kernel + zram -------------------------------------------------------- */

static int write_str(const char *path, const char *v)
{
	int fd = open(path, O_WRONLY);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = write(fd, v, strlen(v));
	close(fd);
	return n < 0 ? -errno : 0;
}

static int read_str(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = 0;
	buf[strcspn(buf, "\n")] = 0;
	return 0;
}

static int run(const char *cmd)
{
	int st = system(cmd);

	return (st != -1 && WIFEXITED(st) && WEXITSTATUS(st) == 0) ? 0 : -1;
}

static struct side bench_kernel(uint64_t size, uint64_t nr_touch)
{
	struct side s = { 0 };
	uint64_t nr = size / PG;
	char id[32] = "", path[256], dev[64], cmd[256], cluster[32] = "";
	bool swapped_on = false;
	uint8_t *mem = MAP_FAILED;

	if (geteuid() != 0) {
		snprintf(s.why, sizeof(s.why), "not root: cannot set up zram/swapon");
		return s;
	}
	if (access("/sys/class/zram-control/hot_add", R_OK) != 0)
		run("modprobe zram num_devices=0 >/dev/null 2>&1");
	if (read_str("/sys/class/zram-control/hot_add", id, sizeof(id)) != 0 || !id[0]) {
		snprintf(s.why, sizeof(s.why), "no zram (modprobe zram / hot_add failed)");
		return s;
	}
	snprintf(dev, sizeof(dev), "/dev/zram%s", id);
	snprintf(path, sizeof(path), "/sys/block/zram%s/comp_algorithm", id);
	write_str(path, "lz4");
	snprintf(path, sizeof(path), "/sys/block/zram%s/disksize", id);
	snprintf(cmd, sizeof(cmd), "%llu", (unsigned long long)(size * 2));
	if (write_str(path, cmd) != 0) {
		snprintf(s.why, sizeof(s.why), "zram disksize: %s", strerror(errno));
		goto out;
	}
	snprintf(cmd, sizeof(cmd), "mkswap %s >/dev/null 2>&1 && swapon -p 32767 %s", dev, dev);
	if (run(cmd) != 0) {
		snprintf(s.why, sizeof(s.why), "mkswap/swapon %s failed", dev);
		goto out;
	}
	swapped_on = true;
	read_str("/proc/sys/vm/page-cluster", cluster, sizeof(cluster));
	write_str("/proc/sys/vm/page-cluster", "0");

	mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED) {
		snprintf(s.why, sizeof(s.why), "mmap: %s", strerror(errno));
		goto out;
	}
	madvise(mem, size, MADV_NOHUGEPAGE);
	fill(mem, nr);
	uint64_t t0 = now_ns();

	if (madvise(mem, size, MADV_PAGEOUT) != 0) {
		snprintf(s.why, sizeof(s.why), "MADV_PAGEOUT: %s", strerror(errno));
		goto out;
	}
	uint64_t t1 = now_ns();
	uint64_t left = count_resident(mem, nr);

	printf("# kernel: MADV_PAGEOUT to %s (lz4) left %llu of %llu pages resident\n", dev,
	       (unsigned long long)left, (unsigned long long)nr);
	s.out_mib_s = (double)(nr - left) * PG / (1 << 20) / ((double)(t1 - t0) / 1e9);
	touch_phases(mem, nr, nr_touch, s.mt);
	s.in = s.mt[0];
	s.ok = left < nr / 100 && bad_of(&s) == 0;
	if (!s.ok)
		snprintf(s.why, sizeof(s.why), "kernel left %llu pages resident / %llu bad reads",
			 (unsigned long long)left, (unsigned long long)bad_of(&s));
out:
	if (mem != MAP_FAILED)
		munmap(mem, size);
	if (cluster[0])
		write_str("/proc/sys/vm/page-cluster", cluster);
	if (swapped_on) {
		snprintf(cmd, sizeof(cmd), "swapoff %s", dev);
		run(cmd);
	}
	snprintf(path, sizeof(path), "/sys/block/zram%s/reset", id);
	write_str(path, "1");
	write_str("/sys/class/zram-control/hot_remove", id);
	return s;
}

/* ---- metadata ------------------------------------------------------------ */

/*
 * Everything ebb holds per 4 KiB page of a region whose every page is
 * stored in the compressed tier: page state + store tables (metadata_bytes)
 * + the allocator's rounding and headers of the compressed objects (not the
 * compressed payload itself: that is the data).  Filled and evicted 256 MiB
 * at a time so a 16 GiB region needs ~256 MiB resident plus the store.
 */
static void bench_metadata(uint64_t gib)
{
	uint64_t size = gib << 30, nr = size / PG, chunk = (256ULL << 20) / PG;
	uint8_t *mem = mmap(NULL, size, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	struct ebb_region_cfg cfg;
	struct ebb_region *r;
	struct ebb_region_counters c;
	uint64_t t0 = now_ns();

	if (mem == MAP_FAILED) {
		printf("  %3llu GiB: cannot map (%s)\n", (unsigned long long)gib, strerror(errno));
		return;
	}
	madvise(mem, size, MADV_NOHUGEPAGE);
	ebb_region_cfg_init(&cfg);
	cfg.name = "bench-meta";
	cfg.base = mem;
	cfg.size_bytes = size;
	cfg.swap.zpool_budget_bytes = size;
	cfg.keep_clean_copies = false;
	cfg.readahead_pages = 1;
	if (ebb_region_create(&cfg, &r) != 0 || ebb_region_start(r) != 0) {
		printf("  %3llu GiB: cannot create the region\n", (unsigned long long)gib);
		munmap(mem, size);
		return;
	}
	for (uint64_t first = 0; first < nr; first += chunk) {
		fill(mem + first * PG, chunk);
		/* fill() wrote the pattern of pfns 0..chunk-1: make each page unique */
		for (uint64_t pfn = first; pfn < first + chunk; pfn++)
			((uint64_t *)(mem + pfn * PG))[0] = mix(pfn);
		for (int i = 0; i < 64; i++) {
			struct ebb_scan_control sc = { .nr_to_reclaim = chunk, .priority = 0,
						       .swappiness = 200, .may_swap = true,
						       .may_writepage = true };

			ebb_region_reclaim(r, &sc);
			ebb_region_get_counters(r, &c);
			if (c.resident_pages == 0)
				break;
		}
	}
	ebb_region_get_counters(r, &c);
	uint64_t total = c.metadata_bytes + c.compressed_overhead_bytes;

	printf("  %3llu GiB region, %llu of %llu pages stored compressed: %6.2f bytes/page "
	       "(%.2f page state + store tables, %.2f allocator overhead; %.1f s to fill)\n",
	       (unsigned long long)gib, (unsigned long long)c.compressed_pages, (unsigned long long)nr,
	       (double)total / (double)nr, (double)c.metadata_bytes / (double)nr,
	       (double)c.compressed_overhead_bytes / (double)nr, (double)(now_ns() - t0) / 1e9);
	ebb_region_destroy(r);
	munmap(mem, size);
}

/* ---- aging -------------------------------------------------------------- */

static void bench_aging(uint64_t size)
{
	uint64_t nr = size / PG;
	uint8_t *mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct ebb_region_cfg cfg;
	struct ebb_region *r;
	double gib = (double)size / (1 << 30);

	if (mem == MAP_FAILED)
		return;
	madvise(mem, size, MADV_NOHUGEPAGE);
	memset(mem, 1, size);
	ebb_region_cfg_init(&cfg);
	cfg.base = mem;
	cfg.size_bytes = size;
	if (ebb_region_create(&cfg, &r) != 0) {
		munmap(mem, size);
		return;
	}
	ebb_region_age(r);   /* settle */
	uint64_t c0 = cpu_ns();
	int64_t young_idle = ebb_region_age(r);
	uint64_t c1 = cpu_ns();

	for (uint64_t pfn = 0; pfn < nr; pfn++)
		mem[pfn * PG] = 2;
	uint64_t c2 = cpu_ns();
	int64_t young_all = ebb_region_age(r);
	uint64_t c3 = cpu_ns();

	printf("aging pass (PAGEMAP_SCAN harvest + LRU update), %llu MiB region, all resident:\n",
	       (unsigned long long)(size >> 20));
	printf("  no page written:    %8.2f ms CPU per GiB  (%lld pages young)\n",
	       (double)(c1 - c0) / 1e6 / gib, (long long)young_idle);
	printf("  every page written: %8.2f ms CPU per GiB  (%lld pages young)\n",
	       (double)(c3 - c2) / 1e6 / gib, (long long)young_all);
	ebb_region_destroy(r);
	munmap(mem, size);
}

static void print_in_row(const char *name, const struct side *x, const struct side *k,
			 const struct side *fl)
{
	if (!x->ok) {
		printf("  %-34s INVALID: %s\n", name, x->why);
		return;
	}
	printf("  %-34s %8.1f %8.1f", name, x->in.p50_us, x->in.p99_us);
	if (k->ok)
		printf(" %9.2f %9.2f", x->in.p50_us / k->in.p50_us, x->in.p99_us / k->in.p99_us);
	else
		printf(" %9s %9s", "n/a", "n/a");
	if (fl->ok)
		printf(" %9.2f %9.2f\n", x->in.p50_us / fl->in.p50_us, x->in.p99_us / fl->in.p99_us);
	else
		printf(" %9s %9s\n", "n/a", "n/a");
}

static void print_mt_row(const char *name, const struct side *x, const struct side *k)
{
	if (!x->ok) {
		printf("  %-34s INVALID: %s\n", name, x->why);
		return;
	}
	printf("  %-34s", name);
	for (unsigned ph = 0; ph < NR_PHASES; ph++)
		printf("  %6.1f / %7.1f", x->mt[ph].p50_us, x->mt[ph].p99_us);
	if (k->ok && x != k)
		printf("   p50/kern %.2f %.2f %.2f", x->mt[0].p50_us / k->mt[0].p50_us,
		       x->mt[1].p50_us / k->mt[1].p50_us, x->mt[2].p50_us / k->mt[2].p50_us);
	printf("\n");
}

static void print_poll_cost(const char *name, const struct side *x)
{
	if (!x->ok)
		return;
	printf("  %-34s %7.1f%% of a core (%5.2f us CPU/fault; spinning %5.2f us wall/fault, %llu hits, %llu misses); "
	       "idle after: %.3f%% (%.1f us in %.1f s), window %llu ns\n",
	       name, 100.0 * (double)x->touch_cpu_ns / (double)x->touch_wall_ns,
	       x->faults ? (double)x->touch_cpu_ns / 1e3 / (double)x->faults : 0.0,
	       x->faults ? (double)x->spin_ns / 1e3 / (double)x->faults : 0.0,
	       (unsigned long long)x->hits, (unsigned long long)x->misses,
	       100.0 * (double)x->idle_cpu_ns / (double)x->idle_wall_ns, (double)x->idle_cpu_ns / 1e3,
	       (double)x->idle_wall_ns / 1e9, (unsigned long long)x->window_ns);
	if (x->cycle_on_ns || x->cycle_off_ns)
		printf("  %-34s storm cycle (fault to fault) %.1f us polling, %.1f us not: %s "
		       "(%llu epochs of %d faults without)\n", "", (double)x->cycle_on_ns / 1e3,
		       (double)x->cycle_off_ns / 1e3,
		       x->cycle_on_ns <= x->cycle_off_ns ? "polling kept" : "polling dropped",
		       (unsigned long long)x->epochs_off, EBB_POLL_EPOCH);
}

int main(int argc, char **argv)
{
	const char *mb = getenv("EBB_BENCH_MB");
	uint64_t size = (mb ? strtoull(mb, NULL, 10) : 256) << 20;
	uint64_t nr_touch = 20000;
	bool burn = false, swapin_only = false, metadata_only = false, metadata_quick = false;
	pid_t burner = -1;
	int burn_cpu = -1, ret;
	double load[1] = { -1 };

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--burn")) {
			burn = true;
		} else if (!strcmp(argv[i], "--swapin-only")) {
			swapin_only = true;
		} else if (!strcmp(argv[i], "--metadata-only")) {
			metadata_only = true;
		} else if (!strcmp(argv[i], "--metadata-quick")) {
			metadata_only = metadata_quick = true;
		} else {
			fprintf(stderr, "usage: %s [--burn] [--swapin-only | --metadata-only | --metadata-quick]\n"
				"  --burn         a CPU burner on the other core for the whole run\n"
				"  --swapin-only  swap-out/in vs kernel and floor only (no file tier, no aging)\n"
				"  --metadata-only  metadata bytes per page at 1 and 16 GiB only\n"
				"  --metadata-quick metadata bytes per page at 1 GiB only\n",
				argv[0]);
			return 2;
		}
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	if ((ret = ebb_region_probe(NULL)) != 0) {
		printf("bench_reclaim: cannot run: userfaultfd without UFFDIO_MOVE (%s)\n", strerror(-ret));
		return 0;
	}
	if (nr_touch > size / PG / 3)
		nr_touch = size / PG / 3;
	getloadavg(load, 1);
	if (metadata_only) {
		printf("metadata per 4 KiB page, every page stored (target: 16 bytes):\n");
		bench_metadata(1);
		if (!metadata_quick)
			bench_metadata(16);
		return 0;
	}
	if (burn)
		burner = burner_start(&burn_cpu);
	if (burn && burner < 0) {
		printf("bench_reclaim: cannot start the burner: %s\n", strerror(errno));
		return 1;
	}
	struct side fl = bench_floor(size, nr_touch, false);
	struct side fs = bench_floor(size, nr_touch, true);
	struct side k = bench_kernel(size, nr_touch);
	struct side e0 = bench_ebb(size, nr_touch, EBB_EVICT_MOVE, 0);
	struct side e = bench_ebb(size, nr_touch, EBB_EVICT_MOVE, EBB_POLL_DEFAULT_MAX_NS);
	struct side w = bench_ebb(size, nr_touch, EBB_EVICT_WP, EBB_POLL_DEFAULT_MAX_NS);

	printf("bench_reclaim: %llu MiB of half-compressible data, %llu random touches a phase (1, 2, 4 faulting threads), each page once\n",
	       (unsigned long long)(size >> 20), (unsigned long long)nr_touch);
	if (burn)
		printf("  other core: BUSY (a CPU burner pinned to CPU %d for the whole run)\n", burn_cpu);
	else
		printf("  other core: no burner (load average %.2f at the start: other work on the machine counts)\n",
		       load[0]);
	if (!e.ok)
		printf("  ebb (MOVE) run INVALID: %s\n", e.why);
	if (!w.ok)
		printf("  ebb (wp) run INVALID: %s\n", w.why);
	if (k.ok) {
		printf("  %-28s %14s %14s %14s %10s %10s\n", "", "ebb MOVE", "ebb wp", "kernel+zram",
		       "MOVE/kern", "wp/kern");
		printf("  %-28s %8.1f MiB/s %8.1f MiB/s %8.1f MiB/s %10.2f %10.2f\n", "swap-out throughput",
		       e.out_mib_s, w.out_mib_s, k.out_mib_s, e.out_mib_s / k.out_mib_s,
		       w.out_mib_s / k.out_mib_s);
	} else {
		printf("  NO PEER (kernel+zram could not be measured: %s) - ebb alone:\n", k.why);
		printf("  swap-out: MOVE %.1f MiB/s, wp %.1f MiB/s\n", e.out_mib_s, w.out_mib_s);
	}
	printf("  %-34s %8s %8s %9s %9s %9s %9s\n", "swap-in fault latency (us)", "p50", "p99",
	       "p50/kern", "p99/kern", "p50/floor", "p99/floor");
	print_in_row("kernel: MADV_PAGEOUT -> zram", &k, &k, &fl);
	print_in_row("floor: uffd, handler in poll()", &fl, &k, &fl);
	print_in_row("floor: uffd, handler spinning", &fs, &k, &fl);
	print_in_row("ebb MOVE, polling off", &e0, &k, &fl);
	print_in_row("ebb MOVE, adaptive polling", &e, &k, &fl);
	print_in_row("ebb wp, adaptive polling", &w, &k, &fl);
	printf("  (floor = bare userfaultfd round trip, handler in poll(); latency: lower is better)\n");
	printf("  %-34s %17s %17s %17s   (p50 / p99 us; each page touched once)\n",
	       "swap-in at 1 / 2 / 4 faulting threads", "1 thread", "2 threads", "4 threads");
	print_mt_row("kernel: MADV_PAGEOUT -> zram", &k, &k);
	print_mt_row("floor: uffd, handler in poll()", &fl, &k);
	print_mt_row("ebb MOVE, polling off", &e0, &k);
	print_mt_row("ebb MOVE, adaptive polling", &e, &k);
	print_mt_row("ebb wp, adaptive polling", &w, &k);
	printf("  fault handler thread CPU during the touches, and over 1 s idle after them\n"
	       "  (spinning wall time includes turns given to other threads by sched_yield):\n");
	print_poll_cost("ebb MOVE, polling off", &e0);
	print_poll_cost("ebb MOVE, adaptive polling", &e);
	print_poll_cost("ebb wp, adaptive polling", &w);
	if (swapin_only) {
		if (burner > 0) {
			kill(burner, SIGKILL);
			waitpid(burner, NULL, 0);
		}
		return e0.ok && e.ok && w.ok && fl.ok && fs.ok ? 0 : 1;
	}
	/* The file tier, plaintext vs encrypted (XChaCha20-Poly1305), same run. */
	struct side fp = bench_ebb_ex(size, nr_touch, EBB_EVICT_MOVE, true, false, EBB_POLL_DEFAULT_MAX_NS);
	struct side fe = bench_ebb_ex(size, nr_touch, EBB_EVICT_MOVE, true, true, EBB_POLL_DEFAULT_MAX_NS);

	printf("file tier (MOVE, /var/tmp or EBB_SWAP_DIR), plaintext vs encrypted:\n");
	if (!fp.ok || !fe.ok) {
		printf("  run INVALID: %s %s\n", fp.why, fe.why);
	} else {
		printf("  %-28s %14s %14s %10s\n", "", "plaintext", "encrypted", "enc/plain");
		printf("  %-28s %8.1f MiB/s %8.1f MiB/s %10.2f\n", "swap-out throughput", fp.out_mib_s,
		       fe.out_mib_s, fe.out_mib_s / fp.out_mib_s);
		printf("  %-28s %8.1f us    %8.1f us    %10.2f\n", "swap-in fault latency p50", fp.in.p50_us,
		       fe.in.p50_us, fe.in.p50_us / fp.in.p50_us);
		printf("  %-28s %8.1f us    %8.1f us    %10.2f\n", "swap-in fault latency p99", fp.in.p99_us,
		       fe.in.p99_us, fe.in.p99_us / fp.in.p99_us);
	}
	bench_aging(size);
	printf("metadata per 4 KiB page, every page stored (target: 16 bytes):\n");
	bench_metadata(1);
	bench_metadata(16);
	if (burner > 0) {
		kill(burner, SIGKILL);
		waitpid(burner, NULL, 0);
	}
	return e0.ok && e.ok && w.ok && fl.ok && fs.ok && fp.ok && fe.ok ? 0 : 1;
}
