/*
 * itest_reclaim_pressure.c — the reclaim engine under a moving limit, on real
 * memory with the real userfaultfd (every part checks every page's content):
 *   1. a large drop of max while a thread keeps faulting: direct reclaim is
 *      bounded, so a reader of the counters never waits for the whole
 *      excess to be reclaimed (the time of a counters read right after the
 *      drop is printed next to the time before it, as a ratio), resident
 *      never grows past its level at the drop, and the background reclaimer
 *      brings it under max (+ one cluster of slack) within seconds;
 *   2. swappiness 0 with nothing but dirty pages: max still holds (no OOM
 *      grant, resident ≤ max + one cluster);
 *   3. a page swapped in by a read is mapped write-protected (pagemap's
 *      uffd-wp bit) and its first write un-protects it through one WP fault;
 *      then a real KVM guest (a real-mode program, where /dev/kvm exists)
 *      reads a read-mostly set round after round under max, aged by the KVM
 *      dirty log as the VMM ages it: pages swapped in and only read keep their
 *      copies (clean drops vs stores are printed and bounded).  Where KVM maps
 *      a page writable on a guest read (SVM/VMX; not the PVM /dev/kvm of the
 *      CI machine) a writable swap-in made that read look like a write.
 * Needs userfaultfd with MOVE or WP eviction; skips with the reason otherwise.
 * EBB_ITEST_ONLY=drop,swp0,readmostly selects parts.
 */
#include "host-reclaim/refsrc.h"
#include "host-reclaim/region.h"
#include "tests/integration/tap.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PG 4096u
#define WORDS (PG / 8)

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* Half random, half a repeated word: compresses about 2:1. */
static void fill_page(uint8_t *mem, uint64_t pfn, uint64_t seed)
{
	uint64_t *p = (uint64_t *)(mem + pfn * PG);

	for (unsigned w = 0; w < WORDS; w++)
		p[w] = w & 1 ? seed ^ pfn : mix(seed ^ (pfn * 4096 + w));
}

static bool page_ok(const uint8_t *mem, uint64_t pfn, uint64_t seed)
{
	const volatile uint64_t *p = (const volatile uint64_t *)(mem + pfn * PG);

	for (unsigned w = 0; w < WORDS; w++)
		if (p[w] != (w & 1 ? seed ^ pfn : mix(seed ^ (pfn * 4096 + w))))
			return false;
	return true;
}

static bool page_zero(const uint8_t *mem, uint64_t pfn)
{
	const volatile uint64_t *p = (const volatile uint64_t *)(mem + pfn * PG);

	for (unsigned w = 0; w < WORDS; w++)
		if (p[w])
			return false;
	return true;
}

static void quiet_log(void *ctx, enum ebb_log_level lvl, const char *msg)
{
	(void)ctx;
	if (lvl <= EBB_LOG_ERROR)
		fprintf(stderr, "# engine: %s\n", msg);
}

/* EBB_ITEST_EVICT=wp: the eviction path of kernels without UFFDIO_MOVE. */
static void cfg_evict_mode(struct ebb_region_cfg *cfg)
{
	const char *m = getenv("EBB_ITEST_EVICT");

	if (m && !strcmp(m, "wp"))
		cfg->evict_mode = EBB_EVICT_WP;
}

static uint64_t read_counters_ns(struct ebb_region *r, struct ebb_region_counters *c)
{
	uint64_t t0 = mono_ns();

	ebb_region_get_counters(r, c);
	return mono_ns() - t0;
}

/* ---- 1. a large drop of max under faults ---- */

struct toucher {
	uint8_t *mem;
	uint64_t first, nr;
	uint64_t seed;
	atomic_bool stop;
	atomic_uint_fast64_t nr_written;   /* pages written at least once: first..first+n */
};

static void *toucher_main(void *arg)
{
	struct toucher *t = arg;
	uint64_t i = 0;

	while (!atomic_load(&t->stop)) {
		fill_page(t->mem, t->first + i, t->seed);
		if (atomic_load(&t->nr_written) < t->nr && i + 1 > atomic_load(&t->nr_written))
			atomic_store(&t->nr_written, i + 1);
		i = (i + 1) % t->nr;
	}
	return NULL;
}

static void test_max_drop(const char *dir)
{
	const uint64_t nr = 131072, half = nr / 2;   /* 512 MiB, half of it filled */
	const uint64_t max = 4096, seed = 0x5eed1;
	struct ebb_region_cfg cfg;
	struct ebb_region *r;
	struct ebb_region_counters c;
	struct toucher t = { 0 };
	pthread_t th;
	uint8_t *mem;
	uint64_t before_ns = 0, after_ns = 0, resident_at_drop, peak = 0, under_ms = UINT64_MAX;
	uint64_t bad = 0, t0, nr_reads_during = 0;
	int ret;

	mem = mmap(NULL, nr * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED) {
		ok(0, "max drop: mmap: %s", strerror(errno));
		return;
	}
	ebb_region_cfg_init(&cfg);
	cfg.name = "drop";
	cfg.base = mem;
	cfg.size_bytes = nr * PG;
	cfg.log = quiet_log;
	cfg_evict_mode(&cfg);
	cfg.swappiness = 100;
	cfg.swap.zpool_budget_bytes = 32ULL << 20;
	cfg.swap.dir = dir;
	cfg.swap.file_size_bytes = nr * PG;
	cfg.max_wait_ns = 200ULL * 1000 * 1000;
	ret = ebb_region_create(&cfg, &r);
	if (ret) {
		ok(0, "max drop: region create: %s", strerror(-ret));
		munmap(mem, nr * PG);
		return;
	}
	ebb_region_start(r);
	for (uint64_t p = 0; p < half; p++)
		fill_page(mem, p, seed);
	t.mem = mem;
	t.first = half;
	t.nr = half;
	t.seed = seed ^ 0xabc;
	pthread_create(&th, NULL, toucher_main, &t);
	usleep(100000);
	for (int i = 0; i < 50; i++) {
		uint64_t d = read_counters_ns(r, &c);

		before_ns = d > before_ns ? d : before_ns;
		usleep(1000);
	}
	ebb_region_set_limits(r, max - max / 16, max);
	t0 = mono_ns();
	/* The level at the drop: read once the new limits hold (the toucher
	 * keeps faulting up to then; with fault-around 16 pages a fault). */
	ebb_region_get_counters(r, &c);
	resident_at_drop = c.resident_pages;
	while (mono_ns() - t0 < 20ULL * 1000000000ULL) {
		uint64_t d = read_counters_ns(r, &c);

		if (mono_ns() - t0 < 3ULL * 1000000000ULL)
			after_ns = d > after_ns ? d : after_ns;
		if (under_ms == UINT64_MAX)
			nr_reads_during++;
		/* Resident may still grow by the faults in flight at the drop. */
		peak = c.resident_pages > peak ? c.resident_pages : peak;
		if (c.resident_pages <= max + EBB_SWAP_CLUSTER_MAX && under_ms == UINT64_MAX)
			under_ms = (mono_ns() - t0) / 1000000;
		if (under_ms != UINT64_MAX && mono_ns() - t0 > 3ULL * 1000000000ULL)
			break;
		usleep(1000);
	}
	atomic_store(&t.stop, true);
	pthread_join(th, NULL);
	printf("# max drop %llu -> %llu pages: counters read max %.2f ms after the drop vs %.2f ms before (ratio %.1f); "
	       "%llu reads done while the excess was reclaimed; under max+%u after %llu ms; peak resident %llu\n",
	       (unsigned long long)resident_at_drop, (unsigned long long)max, after_ns / 1e6,
	       before_ns / 1e6, before_ns ? (double)after_ns / (double)before_ns : 0.0,
	       (unsigned long long)nr_reads_during, EBB_SWAP_CLUSTER_MAX, (unsigned long long)under_ms,
	       (unsigned long long)peak);
	/*
	 * A reader must not wait for the whole excess: before bounded direct
	 * reclaim, the first read after the drop waited until all of it was
	 * reclaimed (1-2 reads in that time).  Counted, not timed, so that
	 * the machine's load cannot decide it; the longest read is printed.
	 */
	ok(under_ms != UINT64_MAX && nr_reads_during >= 10,
	   "max drop: %llu counter reads got through while the excess was reclaimed (%llu ms; longest read %.2f ms)",
	   (unsigned long long)nr_reads_during, (unsigned long long)under_ms, after_ns / 1e6);
	ok(peak <= resident_at_drop + 64, "max drop: resident never grew past its level at the drop (+64 in flight): %llu vs %llu",
	   (unsigned long long)peak, (unsigned long long)resident_at_drop);
	ok(under_ms != UINT64_MAX, "max drop: resident under max + %u within 20 s (%llu ms)", EBB_SWAP_CLUSTER_MAX,
	   (unsigned long long)under_ms);
	ebb_region_get_counters(r, &c);
	ok(c.nr_oom == 0, "max drop: no OOM grant (nr_oom %llu)", (unsigned long long)c.nr_oom);
	for (uint64_t p = 0; p < half; p++)
		bad += !page_ok(mem, p, seed);
	for (uint64_t p = 0; p < half; p++)
		bad += p < atomic_load(&t.nr_written) ? !page_ok(mem, half + p, t.seed) :
			!(page_ok(mem, half + p, t.seed) || page_zero(mem, half + p));
	ebb_region_get_counters(r, &c);
	ok(bad == 0 && c.nr_errors == 0, "max drop: all %llu pages intact (bad %llu, errors %llu)",
	   (unsigned long long)nr, (unsigned long long)bad, (unsigned long long)c.nr_errors);
	ok(c.resident_pages <= max + EBB_SWAP_CLUSTER_MAX,
	   "max drop: after reading everything back resident %llu <= max %llu + %u",
	   (unsigned long long)c.resident_pages, (unsigned long long)max, EBB_SWAP_CLUSTER_MAX);
	ebb_region_destroy(r);
	munmap(mem, nr * PG);
}

/* ---- 2. swappiness 0, all dirty ---- */

static void test_swappiness_zero(const char *dir)
{
	const uint64_t nr = 8192, max = 2048, seed = 0x0bad5eed;
	struct ebb_region_cfg cfg;
	struct ebb_region *r;
	struct ebb_region_counters c;
	uint64_t bad = 0, peak = 0;
	uint8_t *mem;
	int ret;

	mem = mmap(NULL, nr * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED) {
		ok(0, "swappiness 0: mmap: %s", strerror(errno));
		return;
	}
	ebb_region_cfg_init(&cfg);
	cfg.name = "swp0";
	cfg.base = mem;
	cfg.size_bytes = nr * PG;
	cfg.log = quiet_log;
	cfg_evict_mode(&cfg);
	cfg.swappiness = 0;
	cfg.swap.dir = dir;
	cfg.swap.file_size_bytes = nr * PG;
	cfg.high_pages = max - max / 16;
	cfg.max_pages = max;
	ret = ebb_region_create(&cfg, &r);
	if (ret) {
		ok(0, "swappiness 0: region create: %s", strerror(-ret));
		munmap(mem, nr * PG);
		return;
	}
	ebb_region_start(r);
	/* Written pages with no copy anywhere: only the dirty class exists. */
	for (int round = 0; round < 2; round++)
		for (uint64_t p = 0; p < nr; p++) {
			fill_page(mem, p, seed + (uint64_t)round);
			if (p % 256 == 0) {
				ebb_region_get_counters(r, &c);
				peak = c.resident_pages > peak ? c.resident_pages : peak;
			}
		}
	for (uint64_t p = 0; p < nr; p++)
		bad += !page_ok(mem, p, seed + 1);
	ebb_region_get_counters(r, &c);
	peak = c.resident_pages > peak ? c.resident_pages : peak;
	printf("# swappiness 0: resident peak %llu for max %llu; swapped out %llu, nr_oom %llu\n",
	       (unsigned long long)peak, (unsigned long long)max,
	       (unsigned long long)c.nr_swapped_out, (unsigned long long)c.nr_oom);
	ok(peak <= max + EBB_SWAP_CLUSTER_MAX, "swappiness 0: resident peak %llu <= max %llu + %u",
	   (unsigned long long)peak, (unsigned long long)max, EBB_SWAP_CLUSTER_MAX);
	ok(c.nr_oom == 0, "swappiness 0: no page granted over max (nr_oom %llu)", (unsigned long long)c.nr_oom);
	ok(bad == 0 && c.nr_errors == 0, "swappiness 0: all pages intact (bad %llu, errors %llu)",
	   (unsigned long long)bad, (unsigned long long)c.nr_errors);
	ebb_region_destroy(r);
	munmap(mem, nr * PG);
}

/* Wait (up to 5 s) until the background reclaimer has brought resident to @pages. */
static void wait_resident(struct ebb_region *r, uint64_t pages)
{
	struct ebb_region_counters c;

	for (int i = 0; i < 5000; i++) {
		ebb_region_get_counters(r, &c);
		if (c.resident_pages <= pages)
			return;
		usleep(1000);
	}
}

/* Bit 57 of a /proc/self/pagemap entry: the PTE is uffd-wp protected (5.13+). */
static int pagemap_uffd_wp(const void *addr)
{
	uint64_t e = 0;
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = pread(fd, &e, sizeof(e), (off_t)((uintptr_t)addr / PG * 8));
	close(fd);
	if (n != (ssize_t)sizeof(e) || !(e >> 63))
		return -1;
	return (int)(e >> 57 & 1);
}

/*
 * A page swapped in by a read is mapped write-protected (so that KVM maps it
 * read-only on a guest read and its dirty log does not call it written); the
 * first write is a WP fault that un-protects it and drops its copy.
 */
static void test_swapin_wp(void)
{
	const uint64_t nr = 256, seed = 0x3e4d;
	struct ebb_region_cfg cfg;
	struct ebb_region *r = NULL;
	struct ebb_region_counters c;
	uint64_t bad = 0;
	int wp_read, wp_written, ret;
	uint8_t *mem;
	volatile uint64_t sink = 0;

	mem = mmap(NULL, nr * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED) {
		ok(0, "swap-in WP: mmap: %s", strerror(errno));
		return;
	}
	for (uint64_t p = 0; p < nr; p++)
		fill_page(mem, p, seed);
	ebb_region_cfg_init(&cfg);
	cfg.name = "swapin-wp";
	cfg.base = mem;
	cfg.size_bytes = nr * PG;
	cfg.log = quiet_log;
	cfg_evict_mode(&cfg);
	cfg.dirty_tracking = EBB_DIRTY_OFF;     /* as the VMM */
	ret = ebb_region_create(&cfg, &r);
	if (ret) {
		ok(0, "swap-in WP: region create: %s", strerror(-ret));
		munmap(mem, nr * PG);
		return;
	}
	ebb_region_start(r);
	ebb_region_set_limits(r, 8, 16);
	wait_resident(r, 16);
	ebb_region_set_limits(r, 0, 0);
	sink += ((volatile uint64_t *)(mem + 100 * PG))[3];   /* read: swap-in */
	wp_read = pagemap_uffd_wp(mem + 100 * PG);
	ebb_region_get_counters(r, &c);
	uint64_t wpf0 = c.nr_wp_faults;

	((volatile uint64_t *)(mem + 100 * PG))[0] = mix(seed ^ (100 * 4096));  /* same value: a write */
	wp_written = pagemap_uffd_wp(mem + 100 * PG);
	ebb_region_get_counters(r, &c);
	ok(wp_read == 1 && wp_written == 0 && c.nr_wp_faults == wpf0 + 1,
	   "swap-in WP: a page swapped in by a read is write-protected (pagemap uffd-wp %d), its first write "
	   "un-protects it (%d) through one WP fault (%llu)", wp_read, wp_written,
	   (unsigned long long)(c.nr_wp_faults - wpf0));
	/* Squeeze again: the written page is stored anew, the read ones dropped clean. */
	for (uint64_t p = 0; p < nr; p++)
		sink += ((volatile uint64_t *)(mem + p * PG))[5];
	ebb_region_set_limits(r, 8, 16);
	wait_resident(r, 16);
	ebb_region_set_limits(r, 0, 0);
	for (uint64_t p = 0; p < nr; p++)
		bad += !page_ok(mem, p, seed);
	ebb_region_get_counters(r, &c);
	ok(bad == 0 && c.nr_errors == 0 && c.nr_clean_dropped > 0,
	   "swap-in WP: all pages intact (bad %llu, errors %llu), %llu clean drops", (unsigned long long)bad,
	   (unsigned long long)c.nr_errors, (unsigned long long)c.nr_clean_dropped);
	(void)sink;
	ebb_region_destroy(r);
	munmap(mem, nr * PG);
}

/* ---- 3. read-mostly data under a real KVM guest with the dirty log ---- */

#define KVM_CODE_GPA 0x0u
#define KVM_DATA_GPA 0x10000u
#define KVM_DATA_PAGES 128u        /* GPA 0x10000..0x90000: segments 0x1000..0x8000 */

struct kvm_vm {
	int kvm, vm, vcpu;
	struct kvm_run *run;
	size_t run_bytes;
	uint8_t *code;
};

/*
 * Real-mode guest: read one word of each data page, HLT, and again from the
 * top when resumed.  It never writes guest RAM.
 *   0: mov ax, 0x1000      3: mov ds, ax      5: xor bx, bx
 *   7: mov dx, [bx]        9: add bx, 0x1000  13: jnz 7
 *  15: add ax, 0x1000     18: cmp ax, 0x9000  21: jb 3
 *  23: hlt                24: jmp 0
 */
static const uint8_t reader_code[] = {
	0xb8, 0x00, 0x10, 0x8e, 0xd8, 0x31, 0xdb, 0x8b, 0x17, 0x81, 0xc3, 0x00, 0x10,
	0x75, 0xf8, 0x05, 0x00, 0x10, 0x3d, 0x00, 0x90, 0x72, 0xec, 0xf4, 0xeb, 0xe6,
};

static int kvm_run_to_hlt(struct kvm_vm *v)
{
	for (int n = 0; n < 16; n++) {
		if (ioctl(v->vcpu, KVM_RUN, 0) < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (v->run->exit_reason == KVM_EXIT_HLT)
			return 0;
		return -EIO;
	}
	return -ETIMEDOUT;
}

/* The VMM's dirty-log reference source, as vmm/memory.c has it. */
static int kvm_dirty_harvest(void *ctx, uint64_t nr_pages, uint64_t *bitmap)
{
	struct kvm_vm *v = ctx;
	struct kvm_dirty_log log = { .slot = 1, .dirty_bitmap = bitmap };

	(void)nr_pages;
	return ioctl(v->vm, KVM_GET_DIRTY_LOG, &log) < 0 ? -errno : 0;
}

static const struct ebb_refsrc_ops kvm_dirty_ops = {
	.name = "kvm-dirty-log", .kind = EBB_REF_WRITTEN, .harvest = kvm_dirty_harvest,
};

static int kvm_vm_create(struct kvm_vm *v, uint8_t *data, char *why, size_t why_len)
{
	struct kvm_userspace_memory_region code_slot, data_slot;
	struct kvm_sregs sregs;
	struct kvm_regs regs;
	int rc;

	memset(v, 0, sizeof(*v));
	v->kvm = v->vm = v->vcpu = -1;
	v->kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (v->kvm < 0) {
		snprintf(why, why_len, "no /dev/kvm (%s)", strerror(errno));
		return -1;
	}
	v->vm = ioctl(v->kvm, KVM_CREATE_VM, 0);
	v->code = mmap(NULL, PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (v->vm < 0 || v->code == MAP_FAILED) {
		snprintf(why, why_len, "KVM_CREATE_VM: %s", strerror(errno));
		return -1;
	}
	memcpy(v->code, reader_code, sizeof(reader_code));
	code_slot = (struct kvm_userspace_memory_region){
		.slot = 0, .guest_phys_addr = KVM_CODE_GPA, .memory_size = PG,
		.userspace_addr = (uintptr_t)v->code,
	};
	data_slot = (struct kvm_userspace_memory_region){
		.slot = 1, .flags = KVM_MEM_LOG_DIRTY_PAGES, .guest_phys_addr = KVM_DATA_GPA,
		.memory_size = KVM_DATA_PAGES * PG, .userspace_addr = (uintptr_t)data,
	};
	v->vcpu = -1;
	if (ioctl(v->vm, KVM_SET_USER_MEMORY_REGION, &code_slot) < 0 ||
	    ioctl(v->vm, KVM_SET_USER_MEMORY_REGION, &data_slot) < 0 ||
	    (v->vcpu = ioctl(v->vm, KVM_CREATE_VCPU, 0)) < 0) {
		snprintf(why, why_len, "KVM slots / vCPU: %s", strerror(errno));
		return -1;
	}
	rc = ioctl(v->kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (rc <= 0) {
		snprintf(why, why_len, "KVM_GET_VCPU_MMAP_SIZE: %s", strerror(errno));
		return -1;
	}
	v->run_bytes = (size_t)rc;
	v->run = mmap(NULL, v->run_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, v->vcpu, 0);
	if (v->run == MAP_FAILED) {
		v->run = NULL;
		snprintf(why, why_len, "mmap kvm_run: %s", strerror(errno));
		return -1;
	}
	if (ioctl(v->vcpu, KVM_GET_SREGS, &sregs) < 0) {
		snprintf(why, why_len, "KVM_GET_SREGS: %s", strerror(errno));
		return -1;
	}
	sregs.cs.base = 0;
	sregs.cs.selector = 0;
	memset(&regs, 0, sizeof(regs));
	regs.rip = KVM_CODE_GPA;
	regs.rflags = 0x2;
	if (ioctl(v->vcpu, KVM_SET_SREGS, &sregs) < 0 || ioctl(v->vcpu, KVM_SET_REGS, &regs) < 0) {
		snprintf(why, why_len, "KVM_SET_SREGS / KVM_SET_REGS: %s", strerror(errno));
		return -1;
	}
	return 0;
}

static void kvm_vm_destroy(struct kvm_vm *v)
{
	if (v->run)
		munmap(v->run, v->run_bytes);
	if (v->vcpu >= 0)
		close(v->vcpu);
	if (v->vm >= 0)
		close(v->vm);
	if (v->kvm >= 0)
		close(v->kvm);
	if (v->code && v->code != MAP_FAILED)
		munmap(v->code, PG);
}

static void test_read_mostly_dirty_log(void)
{
	const uint64_t nr = KVM_DATA_PAGES, seed = 0x7ead;
	const int rounds = 10;
	struct ebb_region_cfg cfg;
	struct ebb_region *r = NULL;
	struct ebb_region_counters c0, c;
	struct kvm_vm v;
	char why[160];
	uint64_t bad = 0;
	uint8_t *mem;
	int ret;

	mem = mmap(NULL, nr * PG, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (mem == MAP_FAILED) {
		ok(0, "read-mostly: mmap: %s", strerror(errno));
		return;
	}
	for (uint64_t p = 0; p < nr; p++)
		fill_page(mem, p, seed);
	if (kvm_vm_create(&v, mem, why, sizeof(why))) {
		printf("ok %d - read-mostly data under the KVM dirty log # SKIP %s\n", ++tap_n, why);
		kvm_vm_destroy(&v);
		munmap(mem, nr * PG);
		return;
	}
	ebb_region_cfg_init(&cfg);
	cfg.name = "readmostly";
	cfg.base = mem;
	cfg.size_bytes = nr * PG;
	cfg.log = quiet_log;
	cfg_evict_mode(&cfg);
	cfg.swappiness = 100;
	cfg.dirty_tracking = EBB_DIRTY_OFF;     /* as the VMM: the KVM dirty log ages pages */
	cfg.aging_interval_ns = 1000000;        /* harvest before nearly every reclaim pass */
	ret = ebb_region_create(&cfg, &r);
	if (ret) {
		ok(0, "read-mostly: region create: %s", strerror(-ret));
		goto out;
	}
	ebb_region_add_refsrc(r, &kvm_dirty_ops, &v);
	ebb_region_start(r);
	/* One pass with everything resident; the harvest resets the log. */
	ret = kvm_run_to_hlt(&v);
	if (ret) {
		ok(0, "read-mostly: guest pass: %s", strerror(-ret));
		goto out;
	}
	ebb_region_age(r);
	ebb_region_set_limits(r, 24, 32);
	ret = kvm_run_to_hlt(&v);          /* the first squeeze stores every page once */
	wait_resident(r, 32);
	ebb_region_get_counters(r, &c0);
	for (int i = 0; i < rounds && !ret; i++) {
		ret = kvm_run_to_hlt(&v);
		wait_resident(r, 32);
	}
	ok(ret == 0, "read-mostly: the guest read all %llu pages %d more times under max 32 (%s)",
	   (unsigned long long)nr, rounds, ret ? strerror(-ret) : "ok");
	ebb_region_get_counters(r, &c);
	uint64_t d_clean = c.nr_clean_dropped - c0.nr_clean_dropped;
	uint64_t d_store = c.nr_swapped_out - c0.nr_swapped_out;
	uint64_t d_in = c.nr_swapped_in - c0.nr_swapped_in;

	printf("# read-mostly under the dirty log, %d rounds: %llu swap-ins, %llu clean drops, %llu stores "
	       "(clean/store %.1f), %llu write faults\n", rounds, (unsigned long long)d_in,
	       (unsigned long long)d_clean, (unsigned long long)d_store,
	       d_store ? (double)d_clean / (double)d_store : (double)d_clean, (unsigned long long)c.nr_wp_faults);
	ok(d_in >= (uint64_t)rounds * (nr - 32) / 2 && d_clean >= 4 * d_store,
	   "read-mostly: pages swapped in and only read keep their copies: %llu clean drops vs %llu stores",
	   (unsigned long long)d_clean, (unsigned long long)d_store);
	/* A write to a page swapped in read-only is seen: stored anew, not dropped. */
	for (uint64_t p = 0; p < nr; p += 2)
		fill_page(mem, p, seed + 1);
	for (uint64_t p = 0; p < nr; p++)
		bad += !page_ok(mem, p, p % 2 ? seed : seed + 1);
	ebb_region_get_counters(r, &c);
	ok(bad == 0 && c.nr_errors == 0, "read-mostly: all pages intact after the rounds and a write to every other page "
	   "(bad %llu, errors %llu)", (unsigned long long)bad, (unsigned long long)c.nr_errors);
out:
	ebb_region_destroy(r);
	kvm_vm_destroy(&v);
	munmap(mem, nr * PG);
}

int main(void)
{
	char dir[] = "/var/tmp/ebb-itest-pressure-XXXXXX";
	uint64_t features;

	printf("TAP version 13\n");
	if (ebb_region_probe(&features)) {
		printf("1..0 # SKIP userfaultfd here can neither move nor write-protect pages\n");
		return 0;
	}
	if (!mkdtemp(dir)) {
		printf("1..0 # SKIP mkdtemp: %s\n", strerror(errno));
		return 0;
	}
	/* EBB_ITEST_ONLY=drop,swp0,readmostly: the parts to run (default all). */
	const char *only = getenv("EBB_ITEST_ONLY");

	if (only && !*only)
		only = NULL;
	if (!only || strstr(only, "drop"))
		test_max_drop(dir);
	if (!only || strstr(only, "swp0"))
		test_swappiness_zero(dir);
	if (!only || strstr(only, "readmostly")) {
		test_swapin_wp();
		test_read_mostly_dirty_log();
	}
	rmdir(dir);
	printf("1..%d\n", tap_n);
	return 0;
}
