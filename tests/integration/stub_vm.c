/*
 * tests/integration/stub_vm.c — a VMM-side stub for ebbd's integration test:
 * no KVM and no guest, but the real parts ebbd talks to.  It serves the real
 * control protocol on NAME.sock in the run dir (client/ctl_server.c, the
 * VMM's `stats`, `set`, `clamp` from vmm/poolctl.c, `query`, `stop`), holds
 * NAME.lock like `ebb run`, and runs the real reclaim engine (vmm/memory.c:
 * userfaultfd, LRU, compressed and file swap) on real anonymous memory that
 * a worker thread uses as a guest would: a hot set it writes and checks
 * over and over, whose size the test changes through a file.
 *
 *   stub_vm --rundir DIR --name NAME --mem MIB [--max MIB] [--hot MIB]
 *           [--hot-file PATH] [--swap-dir DIR] [--balloon]
 *
 * --balloon: also serve `balloon` (vmm/ctl_virtio.c's arguments and
 * answer) with a model of a guest's balloon driver, for the CLI's
 * `ebb balloon --wait`: the balloon moves toward its target at 64 MiB/s,
 * but never takes the hot set nor the 4 MiB beyond it (an inflate past
 * that stalls, as a guest that has nothing more to give); its stats say
 * how much the guest has available.  No page moves: it is the CLI's peer,
 * not a balloon (the real one is tested in the box).
 *
 * Every page holds a pattern derived from its index and its write
 * generation; a page that reads back anything else is counted bad.  On
 * SIGTERM/SIGINT or `stop`, all pages ever written are checked once more,
 * one line "stub NAME: pages_checked=N bad=M" goes to stdout, and the exit
 * status is 0 only when nothing was bad.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "client/ctl_server.h"
#include "client/evloop.h"
#include "client/rundir.h"
#include "vmm/ctl_virtio.h"
#include "vmm/memory.h"
#include "vmm/poolctl.h"
#include "vmm/virtio_devs.h"

#define MiB (1ull << 20)
#define PAGE 4096ull
#define WORDS_CHECKED 8      /* one word every 512 bytes */

struct stub {
	const char *name, *hot_file;
	uint64_t mem_bytes, nr_pages;
	uint64_t *ram;
	uint32_t *gen;                   /* per page; 0 = never written */
	_Atomic uint64_t hot_pages;
	_Atomic bool stop;
	_Atomic uint64_t nr_checked, nr_bad;
	struct vmm_memory *mem;
	struct vmm_poolctl *pc;
	struct vmm_evloop *loop;
	struct vmm_ctl_server *srv;
	int sig_fd;
	/* --balloon: the driver model (pages; actual at set_ns was from) */
	bool balloon;
	uint64_t bal_target, bal_from, bal_set_ns;
};

#define BALLOON_PAGES_PER_S (64ull * MiB / PAGE)

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Where the modelled driver has got to by now. */
static uint64_t balloon_actual(const struct stub *s)
{
	uint64_t moved = (mono_ns() - s->bal_set_ns) / 1000 * BALLOON_PAGES_PER_S / 1000000;
	uint64_t keep = atomic_load(&s->hot_pages) + 4 * MiB / PAGE;
	uint64_t most = s->nr_pages > keep ? s->nr_pages - keep : 0;

	if (s->bal_target >= s->bal_from) {
		uint64_t a = s->bal_from + moved < s->bal_target ? s->bal_from + moved : s->bal_target;

		return a < most ? a : (s->bal_from > most ? s->bal_from : most);
	}
	return s->bal_from > s->bal_target + moved ? s->bal_from - moved : s->bal_target;
}

static enum vmm_ctl_err balloon_cmd(struct stub *s, const struct vmm_ctl_request *req,
				    struct json_object **result, char *msg, size_t msg_len)
{
	struct vmm_balloon_info bi;
	struct json_object *b;
	enum vmm_ctl_err err;
	uint64_t size = 0;
	bool have;

	err = vmm_ctl_balloon_args(req->args, s->mem_bytes, &size, &have, msg, msg_len);
	if (err)
		return err;
	if (have) {
		s->bal_from = balloon_actual(s);
		s->bal_set_ns = mono_ns();
		s->bal_target = (s->mem_bytes - size) / PAGE;
	}
	memset(&bi, 0, sizeof(bi));
	bi.mem_bytes = s->mem_bytes;
	bi.driver_ok = true;
	bi.target_pages = s->bal_target;
	bi.actual_pages = balloon_actual(s);
	bi.nr_ballooned_pages = bi.actual_pages;
	bi.have_stats = true;
	bi.stats_valid_mask = 1u << 4 | 1u << 5 | 1u << 6;   /* free, total, available */
	bi.stats[5] = s->mem_bytes;
	bi.stats[4] = bi.stats[6] = (s->nr_pages - bi.actual_pages - atomic_load(&s->hot_pages)) * PAGE;
	/* the VMM's answer: the balloon object itself */
	b = vmm_ctl_balloon_json(&bi);
	return vmm_ctl_result(b, result, msg, msg_len);
}

static void notify(void *opaque, const char *event, struct json_object *fields)
{
	struct stub *s = opaque;

	vmm_ctl_server_notify(s->srv, event, fields);
}

static uint64_t pattern(uint64_t page, uint32_t gen, unsigned w)
{
	return (page * 0x9e3779b97f4a7c15ull) ^ ((uint64_t)gen << 40) ^ (w * 0xbf58476d1ce4e5b9ull);
}

static void check_page(struct stub *s, uint64_t p)
{
	uint64_t *pg = s->ram + p * (PAGE / 8);
	unsigned w;

	for (w = 0; w < WORDS_CHECKED; w++) {
		uint64_t want = s->gen[p] ? pattern(p, s->gen[p], w) : 0;

		if (pg[w * 64] != want) {
			atomic_fetch_add(&s->nr_bad, 1);
			if (atomic_load(&s->nr_bad) <= 5)
				fprintf(stderr, "stub %s: page %llu word %u: %#llx, want %#llx\n",
					s->name, (unsigned long long)p, w,
					(unsigned long long)pg[w * 64], (unsigned long long)want);
			break;
		}
	}
	atomic_fetch_add(&s->nr_checked, 1);
}

static void write_page(struct stub *s, uint64_t p)
{
	uint64_t *pg = s->ram + p * (PAGE / 8);
	unsigned w;

	s->gen[p]++;
	for (w = 0; w < WORDS_CHECKED; w++)
		pg[w * 64] = pattern(p, s->gen[p], w);
}

static void read_hot_file(struct stub *s)
{
	FILE *f;
	unsigned long long mib;

	if (!s->hot_file || !(f = fopen(s->hot_file, "r")))
		return;
	if (fscanf(f, "%llu", &mib) == 1 && mib * MiB <= s->mem_bytes)
		atomic_store(&s->hot_pages, mib * MiB / PAGE);
	fclose(f);
}

/* The "guest": check and rewrite the hot set, pass after pass. */
static void *worker(void *opaque)
{
	struct stub *s = opaque;
	struct timespec nap = { 0, 20 * 1000 * 1000 };
	unsigned pass = 0;

	while (!atomic_load(&s->stop)) {
		uint64_t hot = atomic_load(&s->hot_pages), p;

		for (p = 0; p < hot && !atomic_load(&s->stop); p++) {
			check_page(s, p);
			write_page(s, p);
		}
		if (++pass % 5 == 0)
			read_hot_file(s);
		nanosleep(&nap, NULL);
	}
	return NULL;
}

/* The stub's commands, as a VM's: query, stats, balloon, stop; set and clamp
 * are poolctl's own (vmm_poolctl_register). */
static enum vmm_ctl_err ctl_query(void *opaque, const struct vmm_ctl_request *req,
				  struct json_object **result, char *msg, size_t msg_len)
{
	struct stub *s = opaque;
	struct json_object *r = json_object_new_object();

	if (!r)
		return vmm_ctl_result(NULL, result, msg, msg_len);
	json_object_object_add(r, "name", json_object_new_string(s->name));
	json_object_object_add(r, "pid", json_object_new_int64(getpid()));
	json_object_object_add(r, "state", json_object_new_string("running"));
	json_object_object_add(r, "mem_bytes", json_object_new_int64((int64_t)s->mem_bytes));
	json_object_object_add(r, "stub_pages_checked",
			       json_object_new_int64((int64_t)atomic_load(&s->nr_checked)));
	json_object_object_add(r, "stub_bad_pages",
			       json_object_new_int64((int64_t)atomic_load(&s->nr_bad)));
	json_object_object_add(r, "stub_hot_bytes",
			       json_object_new_int64((int64_t)(atomic_load(&s->hot_pages) * PAGE)));
	vmm_memory_query(s->mem, r);
	vmm_poolctl_query(s->pc, r);
	return vmm_ctl_result(r, result, msg, msg_len);
}

static enum vmm_ctl_err ctl_stats(void *opaque, const struct vmm_ctl_request *req,
				  struct json_object **result, char *msg, size_t msg_len)
{
	struct stub *s = opaque;

	return vmm_poolctl_stats(s->pc, result, msg, msg_len);
}

static enum vmm_ctl_err ctl_balloon(void *opaque, const struct vmm_ctl_request *req,
				    struct json_object **result, char *msg, size_t msg_len)
{
	struct stub *s = opaque;

	if (s->balloon)
		return balloon_cmd(s, req, result, msg, msg_len);
	snprintf(msg, msg_len, "this VM has no balloon device (started with --virtio off)");
	return VMM_CTL_ERR_STATE;
}

static enum vmm_ctl_err ctl_stop(void *opaque, const struct vmm_ctl_request *req,
				 struct json_object **result, char *msg, size_t msg_len)
{
	struct stub *s = opaque;
	struct json_object *r = json_object_new_object();

	vmm_evloop_stop(s->loop);
	if (r)
		json_object_object_add(r, "state", json_object_new_string("stopping"));
	return vmm_ctl_result(r, result, msg, msg_len);
}

static int ctl_register(struct stub *s)
{
	static const struct vmm_ctl_command cmds[] = {
		{ "query", ctl_query },
		{ "stats", ctl_stats },
		{ "balloon", ctl_balloon },
		{ "stop", ctl_stop },
	};
	int ret = vmm_ctl_server_register_all(s->srv, cmds, sizeof(cmds) / sizeof(cmds[0]), s);

	/* set and clamp: poolctl's own handlers, as in the VMM */
	return ret ? ret : vmm_poolctl_register(s->pc, s->srv);
}

static void on_signal(void *opaque, uint32_t events)
{
	struct stub *s = opaque;
	struct signalfd_siginfo si;

	(void)events;
	while (read(s->sig_fd, &si, sizeof(si)) == (ssize_t)sizeof(si))
		vmm_evloop_stop(s->loop);
}

static void log_cb(void *opaque, enum ebb_log_level level, const char *msg)
{
	const struct stub *s = opaque;

	if (level <= EBB_LOG_INFO)
		fprintf(stderr, "stub %s: %s\n", s->name, msg);
}

static void die(const char *what, int err)
{
	fprintf(stderr, "stub_vm: %s: %s\n", what, strerror(err));
	exit(2);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "rundir", required_argument, NULL, 'r' }, { "name", required_argument, NULL, 'n' },
		{ "mem", required_argument, NULL, 'm' }, { "max", required_argument, NULL, 'x' },
		{ "hot", required_argument, NULL, 'h' }, { "hot-file", required_argument, NULL, 'f' },
		{ "swap-dir", required_argument, NULL, 's' }, { "balloon", no_argument, NULL, 'b' },
		{ NULL, 0, NULL, 0 },
	};
	struct stub s = { .name = "stub" };
	const char *rundir = NULL, *swap_dir = "/var/tmp";
	uint64_t max_mib = 0, hot_mib = 0, p;
	struct vmm_memory_cfg mc = { 0 };
	struct vmm_guest_mem_slot slot;
	pthread_t th;
	char err[256], path[512];
	sigset_t set;
	int c, ret, lock_fd;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'r': rundir = optarg; break;
		case 'n': s.name = optarg; break;
		case 'm': s.mem_bytes = strtoull(optarg, NULL, 10) * MiB; break;
		case 'x': max_mib = strtoull(optarg, NULL, 10); break;
		case 'h': hot_mib = strtoull(optarg, NULL, 10); break;
		case 'f': s.hot_file = optarg; break;
		case 's': swap_dir = optarg; break;
		case 'b': s.balloon = true; break;
		default: return 2;
		}
	}
	if (!rundir || !s.mem_bytes || hot_mib * MiB > s.mem_bytes)
		die("usage: --rundir DIR --name NAME --mem MIB [--max MIB] [--hot MIB]", EINVAL);
	s.nr_pages = s.mem_bytes / PAGE;
	atomic_store(&s.hot_pages, hot_mib * MiB / PAGE);
	lock_fd = vmm_name_lock(rundir, s.name);
	if (lock_fd < 0)
		die("name lock", -lock_fd);
	s.ram = mmap(NULL, s.mem_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	s.gen = calloc(s.nr_pages, sizeof(*s.gen));
	if (s.ram == MAP_FAILED || !s.gen)
		die("memory", ENOMEM);

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);   /* before the engine's threads */

	mc.name = s.name;
	mc.ram = s.ram;
	mc.mem_bytes = s.mem_bytes;
	slot = (struct vmm_guest_mem_slot){ .id = 0, .gpa = 0, .ram_off = 0, .bytes = s.mem_bytes };
	mc.slots = &slot;
	mc.nr_slots = 1;
	mc.vm_fd = -1;
	mc.nr_vcpus = 1;
	mc.opts.enable = true;
	mc.opts.swappiness = -1;
	mc.opts.swap_dir = swap_dir;
	if (max_mib) {
		mc.opts.max.set = true;
		mc.opts.max.value = max_mib * MiB;
	}
	mc.log.fn = log_cb;
	mc.log.opaque = &s;
	ret = vmm_memory_create(&mc, &s.mem, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "stub_vm: %s\n", err);
		return ret == -EOPNOTSUPP ? 77 : 2;
	}
	if ((ret = vmm_evloop_create(&s.loop)))
		die("event loop", -ret);
	{
		struct vmm_poolctl_cfg pcc = { .memory = s.mem, .loop = s.loop,
					       .mem_bytes = s.mem_bytes, .notify = notify,
					       .notify_opaque = &s, .log = mc.log };

		if ((ret = vmm_poolctl_create(&pcc, &s.pc)))
			die("poolctl", -ret);
	}
	s.sig_fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (s.sig_fd < 0 || vmm_evloop_add(s.loop, s.sig_fd, EPOLLIN, on_signal, &s, NULL))
		die("signalfd", errno);
	if ((ret = vmm_sock_path(rundir, s.name, path, sizeof(path))))
		die("socket path", -ret);
	{
		struct vmm_ctl_server_cfg cc = { .path = path, .loop = s.loop, .log = mc.log };

		if ((ret = vmm_ctl_server_create(&cc, &s.srv)))
			die("control socket", -ret);
		if ((ret = ctl_register(&s)))
			die("control commands", -ret);
	}
	if (pthread_create(&th, NULL, worker, &s))
		die("thread", EAGAIN);

	vmm_evloop_run(s.loop);

	atomic_store(&s.stop, true);
	pthread_join(th, NULL);
	vmm_ctl_server_destroy(s.srv);
	s.srv = NULL;
	for (p = 0; p < s.nr_pages; p++)
		if (s.gen[p])
			check_page(&s, p);
	printf("stub %s: pages_checked=%llu bad=%llu\n", s.name,
	       (unsigned long long)atomic_load(&s.nr_checked),
	       (unsigned long long)atomic_load(&s.nr_bad));
	fflush(stdout);
	ret = atomic_load(&s.nr_bad) ? 1 : 0;
	vmm_poolctl_destroy(s.pc);
	vmm_evloop_destroy(s.loop);
	vmm_memory_destroy(s.mem);
	munmap(s.ram, s.mem_bytes);
	free(s.gen);
	close(lock_fd);
	unlink(path);
	return ret;
}
