/*
 * kvm_idle: do the nested-paging accessed bits of a KVM guest reach the host
 * through idle page tracking?  Prints TAP; run inside the host-box
 * (tests/box/scenarios/kvm_idle.sh).  Where there is no /dev/kvm or no
 * /sys/kernel/mm/page_idle/bitmap it prints why and exits 77.
 *
 * The path under test: writing a page's bit in /sys/kernel/mm/page_idle/bitmap
 * walks the page's rmap and calls the MMU notifiers' clear_young, so KVM clears
 * the accessed bit of the NPT entry mapping that page; reading the bitmap calls
 * clear_young again and reports the page not idle when KVM found the bit set.
 * Whether the bit is set again when the guest touches the page is up to the
 * CPU — here QEMU TCG's emulation of AMD nested paging.
 *
 * A VM with a code slot (one page, real mode) and a data slot of DATA_PAGES
 * pages, each filled by the host with a distinct byte.  The guest code:
 *   warm-up: reads one byte of every data page (so every page has an NPT
 *            entry: a page never mapped would be trivially "not accessed"),
 *            sends the byte sum to port 0x12, HLT;
 *   round r: reads the pages of set r (never writes), sends the sum, HLT.
 * Before each round the host marks every data page idle (PFNs from
 * /proc/self/pagemap, one batched read-modify-write of the bitmap words) and
 * reads the bitmap back: all must be idle.  After the round, exactly the set's
 * pages must be not idle, and the byte sum must match (the guest really read
 * the host's data).  --expect-wrong adds a page the guest never reads to the
 * expected set of round 1: that run must fail (the scenario checks it does).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#define PAGE_BYTES 4096u
#define CODE_GPA 0x0u
#define DATA_GPA 0x10000u
#define DATA_PAGES 64u
#define MAX_EXITS 16
#define IDLE_PATH "/sys/kernel/mm/page_idle/bitmap"
#define PM_PFN_MASK ((1ULL << 55) - 1)
#define PM_PRESENT (1ULL << 63)

static unsigned int nr_tests, nr_failed;

static void tap(int ok, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void tap(int ok, const char *fmt, ...)
{
	va_list ap;

	nr_tests++;
	if (!ok)
		nr_failed++;
	printf("%sok %u - ", ok ? "" : "not ", nr_tests);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

struct code {
	uint8_t bytes[PAGE_BYTES];
	size_t len;
};

static void emit(struct code *c, const uint8_t *b, size_t n)
{
	if (c->len + n > sizeof(c->bytes)) {
		fprintf(stderr, "kvm_idle: code does not fit in a page\n");
		exit(1);
	}
	memcpy(c->bytes + c->len, b, n);
	c->len += n;
}

/* Sum the bytes at offset 0 of each page in @bits into BL, send BL to port
 * 0x12, HLT.  Real mode: DS = page's GPA >> 4, so every page is at [0]. */
static void emit_round(struct code *c, uint64_t bits)
{
	static const uint8_t clear_bl[] = { 0x30, 0xdb };		    /* xor bl, bl */
	static const uint8_t tail[] = { 0x88, 0xd8, 0xe6, 0x12, 0xf4 }; /* mov al, bl; out 0x12, al; hlt */

	emit(c, clear_bl, sizeof(clear_bl));
	for (unsigned int p = 0; p < DATA_PAGES; p++) {
		uint16_t seg = (uint16_t)((DATA_GPA + p * PAGE_BYTES) >> 4);
		const uint8_t b[] = { 0xb8, seg & 0xff, seg >> 8, /* mov ax, seg */
				      0x8e, 0xd8,		  /* mov ds, ax */
				      0x02, 0x1e, 0x00, 0x00 };	  /* add bl, [0] */

		if (bits & (1ULL << p))
			emit(c, b, sizeof(b));
	}
	emit(c, tail, sizeof(tail));
}

static uint8_t page_byte(unsigned int p)
{
	return (uint8_t)(0x11 + 7 * p);
}

struct vm {
	int kvm, vm, vcpu;
	struct kvm_run *run;
	size_t run_bytes;
	uint8_t *code, *data;
	int idle_fd, pagemap_fd;
	uint64_t pfn[DATA_PAGES];
};

/* Runs to HLT; *port_val gets the last byte sent to port 0x12.  0 or -1. */
static int run_to_hlt(struct vm *v, int *port_val, char *why, size_t why_len)
{
	*port_val = -1;
	for (int n = 0; n < MAX_EXITS; n++) {
		if (ioctl(v->vcpu, KVM_RUN, 0) < 0) {
			snprintf(why, why_len, "KVM_RUN: %s", strerror(errno));
			return -1;
		}
		if (v->run->exit_reason == KVM_EXIT_HLT)
			return 0;
		if (v->run->exit_reason == KVM_EXIT_IO) {
			/* GUEST: size, count and data offset come from the guest's exit. */
			uint64_t off = v->run->io.data_offset;

			if (v->run->io.direction != KVM_EXIT_IO_OUT || v->run->io.size != 1 ||
			    v->run->io.count != 1 || v->run->io.port != 0x12 || off >= v->run_bytes) {
				snprintf(why, why_len, "unexpected I/O exit: port 0x%x", v->run->io.port);
				return -1;
			}
			*port_val = ((uint8_t *)v->run)[off];
			continue;
		}
		snprintf(why, why_len, "unexpected exit reason %u", v->run->exit_reason);
		return -1;
	}
	snprintf(why, why_len, "no HLT after %d exits", MAX_EXITS);
	return -1;
}

/* The host PFN of every data page, from one pagemap read. */
static int read_pfns(struct vm *v)
{
	uint64_t ent[DATA_PAGES];
	off_t off = (off_t)((uintptr_t)v->data / PAGE_BYTES * 8);

	if (pread(v->pagemap_fd, ent, sizeof(ent), off) != (ssize_t)sizeof(ent))
		return -1;
	for (unsigned int p = 0; p < DATA_PAGES; p++) {
		if (!(ent[p] & PM_PRESENT) || (ent[p] & PM_PFN_MASK) == 0)
			return -1; /* not resident, or PFNs hidden (needs CAP_SYS_ADMIN) */
		v->pfn[p] = ent[p] & PM_PFN_MASK;
	}
	return 0;
}

/*
 * One pass over the bitmap words that hold our PFNs: with @mark, writes a 1
 * for each of our pages (marks it idle); always reads the words back and
 * returns the set of our pages that are NOT idle (accessed) in *used.
 * Words are read/written one at a time here (this is a test, not the engine:
 * the engine's batched harvest is host-reclaim/refsrc.c).
 */
static int idle_pass(struct vm *v, int mark, uint64_t *used)
{
	*used = 0;
	for (unsigned int p = 0; p < DATA_PAGES; p++) {
		off_t off = (off_t)(v->pfn[p] / 64 * 8);
		uint64_t bit = 1ULL << (v->pfn[p] % 64), word;

		if (mark && pwrite(v->idle_fd, &bit, 8, off) != 8)
			return -1;
		if (pread(v->idle_fd, &word, 8, off) != 8)
			return -1;
		if (!(word & bit))
			*used |= 1ULL << p;
	}
	return 0;
}

static void fmt_set(char *buf, size_t len, uint64_t bits)
{
	size_t used = 0;

	buf[0] = '\0';
	for (unsigned int p = 0; p < DATA_PAGES && used < len; p++)
		if (bits & (1ULL << p))
			used += (size_t)snprintf(buf + used, len - used, "%s%u", used ? "," : "", p);
	if (!used)
		snprintf(buf, len, "none");
}

static uint8_t expected_sum(uint64_t bits)
{
	uint8_t s = 0;

	for (unsigned int p = 0; p < DATA_PAGES; p++)
		if (bits & (1ULL << p))
			s = (uint8_t)(s + page_byte(p));
	return s;
}

int main(int argc, char **argv)
{
	/* Rounds: scattered pages, a run of 16, a single page. */
	static const uint64_t rounds[] = {
		(1ULL << 1) | (1ULL << 5) | (1ULL << 6) | (1ULL << 20) | (1ULL << 33) | (1ULL << 63),
		0xffffULL << 40,
		1ULL << 9,
	};
	const unsigned int nr_rounds = sizeof(rounds) / sizeof(rounds[0]);
	struct vm v = { .kvm = -1, .vm = -1, .vcpu = -1, .idle_fd = -1, .pagemap_fd = -1 };
	struct kvm_userspace_memory_region code_slot, data_slot;
	struct kvm_sregs sregs;
	struct kvm_regs regs;
	struct code *code;
	char why[160], got_s[256], want_s[256];
	int rc, val, expect_wrong = 0;
	uint64_t used;

	if (argc == 2 && strcmp(argv[1], "--expect-wrong") == 0)
		expect_wrong = 1;
	else if (argc != 1) {
		fprintf(stderr, "usage: kvm_idle [--expect-wrong]\n");
		return 2;
	}
	v.kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (v.kvm < 0) {
		printf("kvm_idle: cannot open /dev/kvm: %s (needs KVM: run it in the host-box)\n",
		       strerror(errno));
		return 77;
	}
	v.idle_fd = open(IDLE_PATH, O_RDWR | O_CLOEXEC);
	if (v.idle_fd < 0) {
		printf("kvm_idle: cannot open %s: %s (kernel without CONFIG_IDLE_PAGE_TRACKING: "
		       "use the ebb box kernel)\n", IDLE_PATH, strerror(errno));
		return 77;
	}
	v.pagemap_fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	v.vm = ioctl(v.kvm, KVM_CREATE_VM, 0);
	if (v.pagemap_fd < 0 || v.vm < 0) {
		tap(0, "open pagemap / KVM_CREATE_VM: %s", strerror(errno));
		goto out;
	}
	v.code = mmap(NULL, PAGE_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	v.data = mmap(NULL, DATA_PAGES * PAGE_BYTES, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (v.code == MAP_FAILED || v.data == MAP_FAILED) {
		tap(0, "mmap guest memory: %s", strerror(errno));
		goto out;
	}
	/* 4 KiB pages: a THP would give all 64 pages one idle bit. */
	(void)madvise(v.data, DATA_PAGES * PAGE_BYTES, MADV_NOHUGEPAGE);
	for (unsigned int p = 0; p < DATA_PAGES; p++)
		memset(v.data + p * PAGE_BYTES, page_byte(p), PAGE_BYTES);

	code = calloc(1, sizeof(*code));
	if (!code) {
		tap(0, "out of memory");
		goto out;
	}
	emit_round(code, ~0ULL);
	for (unsigned int r = 0; r < nr_rounds; r++)
		emit_round(code, rounds[r]);
	memcpy(v.code, code->bytes, code->len);
	free(code);

	code_slot = (struct kvm_userspace_memory_region){
		.slot = 0, .guest_phys_addr = CODE_GPA, .memory_size = PAGE_BYTES,
		.userspace_addr = (uintptr_t)v.code,
	};
	data_slot = (struct kvm_userspace_memory_region){
		.slot = 1, .guest_phys_addr = DATA_GPA,
		.memory_size = DATA_PAGES * PAGE_BYTES, .userspace_addr = (uintptr_t)v.data,
	};
	if (ioctl(v.vm, KVM_SET_USER_MEMORY_REGION, &code_slot) < 0 ||
	    ioctl(v.vm, KVM_SET_USER_MEMORY_REGION, &data_slot) < 0) {
		tap(0, "KVM_SET_USER_MEMORY_REGION: %s", strerror(errno));
		goto out;
	}
	v.vcpu = ioctl(v.vm, KVM_CREATE_VCPU, 0);
	rc = ioctl(v.kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (v.vcpu < 0 || rc <= 0) {
		tap(0, "KVM_CREATE_VCPU / KVM_GET_VCPU_MMAP_SIZE: %s", strerror(errno));
		goto out;
	}
	v.run_bytes = (size_t)rc;
	v.run = mmap(NULL, v.run_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, v.vcpu, 0);
	if (v.run == MAP_FAILED) {
		v.run = NULL;
		tap(0, "mmap kvm_run: %s", strerror(errno));
		goto out;
	}
	if (ioctl(v.vcpu, KVM_GET_SREGS, &sregs) < 0) {
		tap(0, "KVM_GET_SREGS: %s", strerror(errno));
		goto out;
	}
	sregs.cs.base = 0;
	sregs.cs.selector = 0;
	memset(&regs, 0, sizeof(regs));
	regs.rip = CODE_GPA;
	regs.rflags = 0x2;
	if (ioctl(v.vcpu, KVM_SET_SREGS, &sregs) < 0 || ioctl(v.vcpu, KVM_SET_REGS, &regs) < 0) {
		tap(0, "KVM_SET_SREGS / KVM_SET_REGS: %s", strerror(errno));
		goto out;
	}

	rc = run_to_hlt(&v, &val, why, sizeof(why));
	tap(rc == 0 && val == expected_sum(~0ULL),
	    "warm-up: the guest read all %u data pages (byte sum 0x%x, expected 0x%x)%s%s",
	    DATA_PAGES, val, expected_sum(~0ULL), rc ? ": " : "", rc ? why : "");
	if (rc)
		goto out;
	/* Anonymous pages reach the LRU through a per-CPU batch; page_idle only
	 * sees LRU pages.  MADV_COLD drains this CPU's batch (the box has one). */
	(void)madvise(v.data, DATA_PAGES * PAGE_BYTES, MADV_COLD);
	if (read_pfns(&v)) {
		tap(0, "host PFNs of the data pages from /proc/self/pagemap (root needed)");
		goto out;
	}

	for (unsigned int r = 0; r < nr_rounds; r++) {
		uint64_t want = rounds[r];

		if (idle_pass(&v, 1, &used)) {
			tap(0, "round %u: %s: %s", r + 1, IDLE_PATH, strerror(errno));
			goto out;
		}
		fmt_set(got_s, sizeof(got_s), used);
		tap(used == 0, "round %u: after marking, all %u pages read back idle (not idle: {%s})",
		    r + 1, DATA_PAGES, got_s);
		rc = run_to_hlt(&v, &val, why, sizeof(why));
		tap(rc == 0 && val == expected_sum(want),
		    "round %u: the guest read its pages (byte sum 0x%x, expected 0x%x)%s%s", r + 1,
		    val, expected_sum(want), rc ? ": " : "", rc ? why : "");
		if (rc)
			goto out;
		if (idle_pass(&v, 0, &used)) {
			tap(0, "round %u: reading %s: %s", r + 1, IDLE_PATH, strerror(errno));
			goto out;
		}
		if (expect_wrong && r == 0)
			want |= 1ULL << 2; /* the guest never reads page 2 */
		fmt_set(got_s, sizeof(got_s), used);
		fmt_set(want_s, sizeof(want_s), want);
		tap(used == want, "round %u: pages seen accessed {%s}, expected exactly {%s}",
		    r + 1, got_s, want_s);
	}
out:
	if (v.run)
		munmap(v.run, v.run_bytes);
	if (v.vcpu >= 0)
		close(v.vcpu);
	if (v.vm >= 0)
		close(v.vm);
	if (v.pagemap_fd >= 0)
		close(v.pagemap_fd);
	if (v.idle_fd >= 0)
		close(v.idle_fd);
	close(v.kvm);
	printf("1..%u\n", nr_tests);
	return nr_failed ? 1 : 0;
}
