/*
 * kvm_smoke: proves that /dev/kvm works the way ebb needs it to, and prints
 * TAP.  Run inside the host-box (tests/box/scenarios/kvm_smoke.sh); where
 * there is no /dev/kvm it prints why and exits 77.
 *
 * It creates a VM with two memory slots: slot 0 (one page at GPA 0) holds
 * real-mode code and is NOT dirty-logged (KVM also reports a logged page that
 * was only executed from, the first time; see docs/box.md), slot 1 (16 pages
 * at GPA 0x10000) is data with KVM_MEM_LOG_DIRTY_PAGES.  The code is assembled
 * here from two page sets:
 *   phase 0: read a word the host put in page 7, send it to port 0x12, HLT;
 *   phase 1: store a tagged word in each page of set A, read page 7 again
 *            (port 0x12), "out 0x10, al" and a 16-bit "out dx, ax" to port
 *            0x1234, then HLT;
 *   phase 2: (resumed after the HLT) store into each page of set B, signal
 *            port 0x10, HLT.
 * After phases 1 and 2 KVM_GET_DIRTY_LOG must report exactly that phase's set
 * (non-manual mode: the read also re-arms dirty tracking, so phase 2 must not
 * see phase 1's pages, and the re-read of page 7 must not count), the stored
 * words must be visible in the host's mapping, and the port values must have
 * arrived at the expected ports.  Any mismatch is a "not ok".
 *
 * Why phase 0: KVM marks a page dirty when it first maps it writable, and on
 * a read fault it maps a page writable when the host page is (page 7 is: the
 * host wrote it).  So the first harvest after a page's first mapping can list
 * a page the guest only read (measured in the box: {7}).  Phase 0 maps page 7
 * and its harvest is reported as a comment only; from then on reads are clean.  --expect-wrong adds a page the guest never writes to the
 * expected phase 1 set: that run must fail (the scenario checks it does).
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
#include <time.h>
#include <unistd.h>

#define PAGE_BYTES 4096u
#define CODE_GPA 0x0u
#define DATA_GPA 0x10000u
#define DATA_PAGES 16u
#define STORE_OFFSET_BYTES 0x10u
#define READ_PAGE 7u
#define READ_MAGIC 0x5a3cu
#define MAX_EXITS 64

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

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

struct code {
	uint8_t bytes[PAGE_BYTES];
	size_t len;
};

static void emit(struct code *c, const uint8_t *b, size_t n)
{
	if (c->len + n > sizeof(c->bytes)) {
		fprintf(stderr, "kvm_smoke: code does not fit in a page\n");
		exit(1);
	}
	memcpy(c->bytes + c->len, b, n);
	c->len += n;
}

static uint16_t tag(unsigned int phase, unsigned int page)
{
	return (uint16_t)(0xe000u | (phase << 8) | page);
}

/* mov word [page * 4096 + STORE_OFFSET_BYTES], tag  (DS base = DATA_GPA) */
static void emit_store(struct code *c, unsigned int phase, unsigned int page)
{
	uint16_t off = (uint16_t)(page * PAGE_BYTES + STORE_OFFSET_BYTES);
	uint16_t v = tag(phase, page);
	uint8_t b[] = { 0xc7, 0x06, off & 0xff, off >> 8, v & 0xff, v >> 8 };

	emit(c, b, sizeof(b));
}

static void emit_out_al(struct code *c, uint8_t port, uint8_t val)
{
	uint8_t b[] = { 0xb0, val, 0xe6, port }; /* mov al, val; out port, al */

	emit(c, b, sizeof(b));
}

static void assemble(struct code *c, const unsigned int *set_a, size_t na,
		     const unsigned int *set_b, size_t nb)
{
	static const uint8_t set_ds[] = { 0xb8, DATA_GPA >> 4 & 0xff, DATA_GPA >> 12, /* mov ax, 0x1000 */
					  0x8e, 0xd8 };				  /* mov ds, ax */
	uint16_t roff = READ_PAGE * PAGE_BYTES + STORE_OFFSET_BYTES;
	const uint8_t read_out[] = { 0xa1, roff & 0xff, roff >> 8, /* mov ax, [roff] */
				     0xba, 0x12, 0x00,		   /* mov dx, 0x12 */
				     0xef };			   /* out dx, ax */
	static const uint8_t out16[] = { 0xba, 0x34, 0x12, /* mov dx, 0x1234 */
					 0xb8, 0xef, 0xbe, /* mov ax, 0xbeef */
					 0xef };	   /* out dx, ax */
	static const uint8_t hlt[] = { 0xf4 };
	size_t i;

	emit(c, set_ds, sizeof(set_ds));
	emit(c, read_out, sizeof(read_out));
	emit(c, hlt, sizeof(hlt));
	for (i = 0; i < na; i++)
		emit_store(c, 1, set_a[i]);
	emit(c, read_out, sizeof(read_out));
	emit_out_al(c, 0x10, 0x41);
	emit(c, out16, sizeof(out16));
	emit(c, hlt, sizeof(hlt));
	for (i = 0; i < nb; i++)
		emit_store(c, 2, set_b[i]);
	emit_out_al(c, 0x10, 0x42);
	emit(c, hlt, sizeof(hlt));
}

struct io_rec {
	uint16_t port;
	uint8_t size_bytes;
	uint32_t value;
};

struct vm {
	int kvm, vm, vcpu;
	struct kvm_run *run;
	size_t run_bytes;
	uint8_t *code, *data;
};

/*
 * Runs the vCPU until HLT.  Records port writes in ios[]; returns 0 on HLT,
 * -1 (with a reason in why) on any other exit or error.
 */
static int run_to_hlt(struct vm *v, struct io_rec *ios, size_t *nr_ios, size_t max_ios,
		      char *why, size_t why_len)
{
	int n;

	*nr_ios = 0;
	for (n = 0; n < MAX_EXITS; n++) {
		if (ioctl(v->vcpu, KVM_RUN, 0) < 0) {
			snprintf(why, why_len, "KVM_RUN: %s", strerror(errno));
			return -1;
		}
		switch (v->run->exit_reason) {
		case KVM_EXIT_HLT:
			return 0;
		case KVM_EXIT_IO: {
			/* GUEST: size, count and the data offset come from the guest's exit. */
			uint64_t off = v->run->io.data_offset;
			uint32_t val = 0;

			if (v->run->io.direction != KVM_EXIT_IO_OUT || v->run->io.count != 1 ||
			    (v->run->io.size != 1 && v->run->io.size != 2 && v->run->io.size != 4) ||
			    off > v->run_bytes || v->run_bytes - off < v->run->io.size) {
				snprintf(why, why_len, "unexpected I/O exit: port 0x%x dir %u size %u count %u",
					 v->run->io.port, v->run->io.direction, v->run->io.size,
					 v->run->io.count);
				return -1;
			}
			memcpy(&val, (uint8_t *)v->run + off, v->run->io.size);
			if (*nr_ios < max_ios) {
				ios[*nr_ios].port = v->run->io.port;
				ios[*nr_ios].size_bytes = v->run->io.size;
				ios[*nr_ios].value = val;
				(*nr_ios)++;
			}
			break;
		}
		default:
			snprintf(why, why_len, "unexpected exit reason %u", v->run->exit_reason);
			return -1;
		}
	}
	snprintf(why, why_len, "no HLT after %d exits", MAX_EXITS);
	return -1;
}

static const struct io_rec *find_io(const struct io_rec *ios, size_t n, uint16_t port)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (ios[i].port == port)
			return &ios[i];
	return NULL;
}

static void fmt_set(char *buf, size_t len, uint64_t bits)
{
	size_t used = 0;
	unsigned int p;

	buf[0] = '\0';
	for (p = 0; p < DATA_PAGES && used < len; p++)
		if (bits & (1ull << p))
			used += (size_t)snprintf(buf + used, len - used, "%s%u", used ? "," : "", p);
	if (!used)
		snprintf(buf, len, "none");
}

static uint64_t set_bits(const unsigned int *set, size_t n)
{
	uint64_t bits = 0;
	size_t i;

	for (i = 0; i < n; i++)
		bits |= 1ull << set[i];
	return bits;
}

/* Checks one phase: dirty log == expect, and the stored words are in memory. */
static void check_phase(struct vm *v, unsigned int phase, uint64_t expect_bits,
			const unsigned int *set, size_t n)
{
	uint64_t bitmap[(DATA_PAGES + 63) / 64] = { 0 };
	struct kvm_dirty_log log = { .slot = 1, .dirty_bitmap = bitmap };
	char got_s[128], want_s[128];
	size_t i, bad = 0;

	if (ioctl(v->vm, KVM_GET_DIRTY_LOG, &log) < 0) {
		tap(0, "phase %u: KVM_GET_DIRTY_LOG: %s", phase, strerror(errno));
		return;
	}
	fmt_set(got_s, sizeof(got_s), bitmap[0]);
	fmt_set(want_s, sizeof(want_s), expect_bits);
	tap(bitmap[0] == expect_bits, "phase %u: dirty log reports pages {%s}, expected {%s}",
	    phase, got_s, want_s);
	for (i = 0; i < n; i++) {
		uint16_t w;

		memcpy(&w, v->data + set[i] * PAGE_BYTES + STORE_OFFSET_BYTES, sizeof(w));
		if (w != tag(phase, set[i]))
			bad++;
	}
	tap(bad == 0, "phase %u: the guest's %zu stores are visible in host memory (%zu wrong)",
	    phase, n, bad);
}

int main(int argc, char **argv)
{
	static const unsigned int set_a[] = { 1, 3, 4, 9 };
	static const unsigned int set_b[] = { 2, 9, 15 };
	const size_t na = sizeof(set_a) / sizeof(set_a[0]), nb = sizeof(set_b) / sizeof(set_b[0]);
	struct vm v = { .kvm = -1, .vm = -1, .vcpu = -1 };
	struct kvm_userspace_memory_region code_slot, data_slot;
	struct kvm_sregs sregs;
	struct kvm_regs regs;
	struct io_rec ios[8];
	const struct io_rec *io;
	struct code *code;
	uint64_t expect_a = set_bits(set_a, na);
	size_t nr_ios;
	char why[160];
	double t0;
	int api, rc, expect_wrong = 0;
	uint16_t magic = READ_MAGIC;

	if (argc == 2 && strcmp(argv[1], "--expect-wrong") == 0)
		expect_wrong = 1;
	else if (argc != 1) {
		fprintf(stderr, "usage: kvm_smoke [--expect-wrong]\n");
		return 2;
	}
	if (expect_wrong)
		expect_a |= 1ull << 5; /* the guest never writes page 5 */

	v.kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (v.kvm < 0) {
		printf("kvm_smoke: cannot open /dev/kvm: %s (needs KVM: run it in the host-box)\n",
		       strerror(errno));
		return 77;
	}
	api = ioctl(v.kvm, KVM_GET_API_VERSION, 0);
	tap(api == KVM_API_VERSION, "KVM_GET_API_VERSION is %d", api);

	t0 = now_ms();
	v.vm = ioctl(v.kvm, KVM_CREATE_VM, 0);
	if (v.vm < 0) {
		tap(0, "KVM_CREATE_VM: %s", strerror(errno));
		goto out;
	}
	v.code = mmap(NULL, PAGE_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	v.data = mmap(NULL, DATA_PAGES * PAGE_BYTES, PROT_READ | PROT_WRITE,
		      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (v.code == MAP_FAILED || v.data == MAP_FAILED) {
		tap(0, "mmap guest memory: %s", strerror(errno));
		goto out;
	}
	code = (struct code *)calloc(1, sizeof(*code));
	if (!code) {
		tap(0, "out of memory");
		goto out;
	}
	assemble(code, set_a, na, set_b, nb);
	memcpy(v.code, code->bytes, code->len);
	free(code);
	memcpy(v.data + READ_PAGE * PAGE_BYTES + STORE_OFFSET_BYTES, &magic, sizeof(magic));

	code_slot = (struct kvm_userspace_memory_region){
		.slot = 0, .guest_phys_addr = CODE_GPA, .memory_size = PAGE_BYTES,
		.userspace_addr = (uintptr_t)v.code,
	};
	data_slot = (struct kvm_userspace_memory_region){
		.slot = 1, .flags = KVM_MEM_LOG_DIRTY_PAGES, .guest_phys_addr = DATA_GPA,
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
	tap(1, "VM, vCPU and two memory slots (one dirty-logged) created in %.1f ms", now_ms() - t0);

	/* Real mode at GPA 0: CS base 0, IP 0. */
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

	/* Phase 0: first mapping of page 7 (a read); its harvest is only noted. */
	rc = run_to_hlt(&v, ios, &nr_ios, sizeof(ios) / sizeof(ios[0]), why, sizeof(why));
	io = find_io(ios, nr_ios, 0x12);
	tap(rc == 0 && io && io->value == READ_MAGIC,
	    "phase 0: guest read the host's word 0x%x from page %u and halted (sent 0x%x)%s%s",
	    READ_MAGIC, READ_PAGE, io ? io->value : 0, rc ? ": " : "", rc ? why : "");
	if (rc)
		goto out;
	{
		uint64_t bitmap[(DATA_PAGES + 63) / 64] = { 0 };
		struct kvm_dirty_log log = { .slot = 1, .dirty_bitmap = bitmap };
		char s0[128];

		if (ioctl(v.vm, KVM_GET_DIRTY_LOG, &log) < 0) {
			tap(0, "phase 0: KVM_GET_DIRTY_LOG: %s", strerror(errno));
			goto out;
		}
		fmt_set(s0, sizeof(s0), bitmap[0]);
		printf("# phase 0: first harvest after a read-only first touch reports {%s} (not checked)\n",
		       s0);
	}

	/* Phase 1. */
	t0 = now_ms();
	rc = run_to_hlt(&v, ios, &nr_ios, sizeof(ios) / sizeof(ios[0]), why, sizeof(why));
	tap(rc == 0, "phase 1: guest ran to HLT in %.2f ms with %zu port exits%s%s", now_ms() - t0,
	    nr_ios, rc ? ": " : "", rc ? why : "");
	if (rc)
		goto out;
	io = find_io(ios, nr_ios, 0x10);
	tap(io && io->size_bytes == 1 && io->value == 0x41,
	    "phase 1: out 0x10, al delivered 0x41 to port 0x10 (got %s0x%x)", io ? "" : "nothing, ",
	    io ? io->value : 0);
	io = find_io(ios, nr_ios, 0x1234);
	tap(io && io->size_bytes == 2 && io->value == 0xbeef,
	    "phase 1: 16-bit out dx, ax delivered 0xbeef to port 0x1234 (got %s0x%x)",
	    io ? "" : "nothing, ", io ? io->value : 0);
	io = find_io(ios, nr_ios, 0x12);
	tap(io && io->value == READ_MAGIC,
	    "phase 1: guest re-read the host's word 0x%x from page %u (sent 0x%x)", READ_MAGIC,
	    READ_PAGE, io ? io->value : 0);
	check_phase(&v, 1, expect_a, set_a, na);

	/* Phase 2: resumes after the HLT. */
	rc = run_to_hlt(&v, ios, &nr_ios, sizeof(ios) / sizeof(ios[0]), why, sizeof(why));
	io = find_io(ios, nr_ios, 0x10);
	tap(rc == 0 && io && io->value == 0x42, "phase 2: guest resumed, signalled 0x42, halted%s%s",
	    rc ? ": " : "", rc ? why : "");
	if (rc)
		goto out;
	check_phase(&v, 2, set_bits(set_b, nb), set_b, nb);

out:
	if (v.run)
		munmap(v.run, v.run_bytes);
	if (v.vcpu >= 0)
		close(v.vcpu);
	if (v.vm >= 0)
		close(v.vm);
	if (v.code && v.code != MAP_FAILED)
		munmap(v.code, PAGE_BYTES);
	if (v.data && v.data != MAP_FAILED)
		munmap(v.data, DATA_PAGES * PAGE_BYTES);
	close(v.kvm);
	printf("1..%u\n", nr_tests);
	return nr_failed ? 1 : 0;
}
