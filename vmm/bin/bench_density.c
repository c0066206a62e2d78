/*
 * vmm/bin/bench_density.c — `ebb bench density` (docs/density.md): how many
 * VMs of a workload mix fit a host budget while every one of them keeps its
 * service level, under each ebbd policy.
 *
 * Method:
 *   1. baseline: each workload kind of the mix alone in one VM, no limit,
 *      under ebbd with policy static (which observes every VM as the others
 *      do but moves nothing: the baseline pays the same observation costs,
 *      so the SLO measures what a policy's memory decisions cost): after it
 *      is warm, one step of --step seconds gives that kind's reference p99
 *      and throughput;
 *   2. for each policy: ebbd (--policy P --budget B --vms-only) on a private
 *      runtime directory; VMs start one by one (kinds by the mix, in a fixed
 *      order), and once the newest is warm every VM is measured for one step:
 *      the step holds when every VM keeps its p99 <= slo-p99 x baseline, its
 *      throughput >= slo-tput x baseline, has no OOM kill and no data error,
 *      and the pool stays within the budget (ebbd's used_bytes, the mean over
 *      the second half of the step).  The first step that does not hold, or
 *      --max-vms, ends the policy; its density is the last count that held.
 *
 * The VMs are `ebb run` processes (this same binary) whose console comes to
 * us on a pipe: the guest's ebb-work prints its report lines there (parsed
 * as hostile input, density.c) and the guest kernel its OOM kills.  Every
 * child is in its own process group, is stopped with SIGTERM (SIGKILL after
 * 20 s) and reaped, also on SIGINT/SIGTERM of the bench.  The pure parts
 * (mixes, reports, metrics, SLO, CSV) are in density.c.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <sodium.h>

#include "client/discover.h"
#include "client/rundir.h"
#include "client/size.h"
#include "vmm/bin/bench_density.h"
#include "vmm/bin/density.h"

#define CALL_MS		5000
#define STOP_GRACE_MS	20000
#define SAMPLE_MS	2000
#define MAX_POLICIES	3
#define MAX_VMS_LIMIT	256

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

struct opts {
	const char *kernel, *initrd, *ebb, *ebbd, *out, *cmdline;
	uint64_t mem_bytes, budget_bytes;
	unsigned cpus, max_vms, step_s, report_s, boot_timeout_s, warm_s;
	uint64_t seed;
	struct dens_mix mix;
	const char *policies[MAX_POLICIES];
	unsigned nr_policies;
	struct dens_slo slo;
	const char *ebbd_args[16];
	unsigned nr_ebbd_args;
};

struct vm {
	char name[32];
	enum dens_kind kind;
	pid_t pid;
	int out_fd;		/* the console, -1 once at EOF */
	FILE *log;		/* a copy of the console */
	char line[DENS_LINE_MAX_BYTES + 1];
	size_t len;
	bool overlong;		/* the current line is past the limit: dropped */
	bool booted, ready, died, collecting;
	unsigned nr_after_ready, nr_oom, nr_bad_lines;
	uint64_t max_errors;
	double ready_at;
	struct dens_report rep[DENS_MAX_REPORTS];
	size_t nr_rep;
};

struct run {
	const struct opts *o;
	char rundir[200];	/* the private runtime dir of the running phase */
	char tmpdir[160];
	const char *phase;	/* "baseline" or the policy */
	struct vm *vms;
	unsigned nr_vms;
	pid_t ebbd_pid;
	FILE *steps_csv, *mem_csv;
	double t0;		/* of the bench */
	struct dens_metrics base[DENS_NR_KINDS];
	bool have_base[DENS_NR_KINDS];
	struct dens_result res[MAX_POLICIES];
	unsigned nr_res;
	/* for the plots: per policy, "nr_vms worst_p99_ratio min_rps_ratio" */
	FILE *slo_dat[MAX_POLICIES], *mem_dat[MAX_POLICIES];
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void __attribute__((format(printf, 1, 2))) say(const char *fmt, ...)
{
	va_list ap;

	fputs("density: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static void __attribute__((format(printf, 1, 2), noreturn)) usage_die(const char *fmt, ...)
{
	va_list ap;

	fputs("ebb bench density: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\n(ebb bench density --help for the options)\n", stderr);
	exit(2);
}

/* ---- options ----------------------------------------------------------------- */

static const char usage_density[] =
	"usage: ebb bench density --kernel PATH --initrd PATH --budget SIZE [OPTIONS]\n"
	"\n"
	"How many VMs of a workload mix fit a host memory budget while every VM keeps\n"
	"its service level, under each ebbd policy (docs/density.md).\n"
	"\n"
	"Method: first a baseline: each workload kind of the mix alone in one VM (no\n"
	"limit; ebbd with policy static, which observes but moves nothing) for one\n"
	"step gives its reference p99 latency and throughput.\n"
	"Then, per policy, ebbd runs with that policy on the budget (--vms-only, a\n"
	"private runtime directory) and VMs start one by one; once the newest is warm,\n"
	"every VM is measured for one step.  The step holds if every VM keeps the SLO\n"
	"and the pool stays within the budget (ebbd's used memory, mean of the second\n"
	"half of the step).  The first step that does not hold, or --max-vms, ends\n"
	"the policy: its density is the largest count that held.\n"
	"\n"
	"The guest image must hold ebb-work (ebb's own image does: /bin/ebb-work);\n"
	"each VM runs 'ebb-work KIND --seed N' as its ebb.cmd, with the agent on.\n"
	"\n"
	"Options:\n"
	"  --kernel PATH        guest kernel (bzImage)                        [required]\n"
	"  --initrd PATH        guest initrd holding /bin/ebb-work            [required]\n"
	"  --budget SIZE        the host pool handed to ebbd (--vms-only), e.g. 1G\n"
	"                                                                     [required]\n"
	"  --mem SIZE           each VM's memory (default 256M, at least 64M)\n"
	"  --cpus N             each VM's vCPUs (default 1, at most 64)\n"
	"  --mix MIX            a kind (idle, web, batch, cache: all VMs of it) or\n"
	"                       KIND=PERCENT,... summing to 100, e.g.\n"
	"                       idle=60,web=30,batch=10 (default web)\n"
	"  --mix-file FILE      the mix from a file: one 'KIND PERCENT' per line,\n"
	"                       '#' comments, blank lines ignored, summing to 100\n"
	"  --policies LIST      comma-separated, from ebb, mom, static, each once\n"
	"                       (default ebb,mom,static; run in that order)\n"
	"  --slo-p99 F          every VM's p99 <= F x its kind's baseline (default 1.1)\n"
	"  --slo-tput F         every VM's throughput >= F x baseline (default 0.9)\n"
	"                       (and always: no guest OOM kill, no data error)\n"
	"  --step SECONDS       the measuring time per step (default 60, 10-3600)\n"
	"  --max-vms N          stop a policy at N VMs (default 8, at most 256)\n"
	"  --report SECONDS     the workloads' report interval (default 5; a step\n"
	"                       needs at least 2 reports)\n"
	"  --warm SECONDS       after a VM's workload is ready and has reported twice,\n"
	"                       wait this long before it counts as warm (default 20)\n"
	"  --boot-timeout S     the longest wait for a VM to be warm (default 900)\n"
	"  --seed N             the workloads' seed (VM i gets N+i; default 1)\n"
	"  --cmdline STR        more guest kernel parameters\n"
	"  --out DIR            where the results go (default ./ebb-density)\n"
	"  --ebb PATH           the ebb binary for the VMs (default: this one)\n"
	"  --ebbd PATH          the ebbd binary (default: the ebbd beside this ebb)\n"
	"  --ebbd-arg ARG       one more argument for ebbd (repeatable, e.g.\n"
	"                       --ebbd-arg=--no-ksm)\n"
	"\n"
	"Output: a progress line per event on stderr, a table at the end (VMs held\n"
	"per policy, where and why it broke, the memory committed against the budget,\n"
	"ratios against static and mom, reclaimed memory by source), and in --out:\n"
	"  summary.csv   one row per policy (the table)\n"
	"  steps.csv     one row per VM per step (p99, throughput, their ratios to the\n"
	"                baseline, verdict, host memory by source)\n"
	"  baseline.csv  the reference figures per kind\n"
	"  memory.csv    memory by source over time, every 2 s (per policy)\n"
	"  density-slo.png, density-memory.png   plots, when gnuplot is installed\n"
	"                (Debian: gnuplot-nox); else a note and the .gp script\n"
	"  logs/         every VM's console and stderr, ebbd's log\n"
	"\n"
	"Exit status: 0 when every policy ran (whatever its density), 1 on an error\n"
	"(a baseline that failed, a child that could not start), 2 on bad options,\n"
	"130 when interrupted.  Needs /dev/kvm; runs VMs as this user.\n";

static unsigned parse_uint(const char *s, const char *what, unsigned lo, unsigned hi)
{
	unsigned long v;
	char *end;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || end == s || s[0] == '-' || s[0] == '+' || v < lo || v > hi)
		usage_die("bad %s '%s': give a whole number from %u to %u", what, s, lo, hi);
	return (unsigned)v;
}

static double parse_factor(const char *s, const char *what, double lo, double hi)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno || *end || end == s || !isfinite(v) || v < lo || v > hi)
		usage_die("bad %s '%s': give a number from %g to %g", what, s, lo, hi);
	return v;
}

static uint64_t parse_bytes(const char *s, const char *what, uint64_t min)
{
	uint64_t v;
	int ret = vmm_parse_size(s, 1ull << 20, &v);

	if (ret)
		usage_die("bad %s '%s': %s; write it like 256M or 2G", what, s,
			  ret == -ERANGE ? "too large" : "not a size");
	if (v < min)
		usage_die("%s '%s' is below the least of %llu MiB", what, s,
			  (unsigned long long)(min >> 20));
	return v;
}

static void parse_policies(const char *s, struct opts *o)
{
	static const char *const names[] = { "ebb", "mom", "static" };
	const char *p = s;

	o->nr_policies = 0;
	for (;;) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		unsigned i, k;

		for (k = 0; k < 3; k++)
			if (strlen(names[k]) == len && !strncmp(p, names[k], len))
				break;
		if (k == 3)
			usage_die("bad --policies '%s': '%.*s' is not ebb, mom or static", s,
				  (int)(len > 16 ? 16 : len), p);
		for (i = 0; i < o->nr_policies; i++)
			if (o->policies[i] == names[k])
				usage_die("bad --policies '%s': %s given twice", s, names[k]);
		o->policies[o->nr_policies++] = names[k];
		if (!comma)
			break;
		p = comma + 1;
	}
}

static void read_mix_file(const char *path, struct dens_mix *mix)
{
	char *buf = malloc(DENS_MIX_FILE_MAX_BYTES + 1), err[256];
	size_t n;
	FILE *f;

	if (!buf)
		usage_die("out of memory");
	f = fopen(path, "r");
	if (!f)
		usage_die("cannot open --mix-file %s: %s", path, strerror(errno));
	n = fread(buf, 1, DENS_MIX_FILE_MAX_BYTES + 1, f);
	if (ferror(f))
		usage_die("cannot read --mix-file %s: %s", path, strerror(errno));
	fclose(f);
	if (dens_mix_parse_text(buf, n, mix, err, sizeof(err)))
		usage_die("bad --mix-file %s: %s", path, err);
	free(buf);
}

static void self_dir_prog(const char *prog, char *buf, size_t len)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	char *slash;

	if (n <= 0)
		usage_die("cannot find this program (/proc/self/exe): give --ebb and --ebbd");
	self[n] = '\0';
	if (!prog) {
		snprintf(buf, len, "%s", self);
		return;
	}
	slash = strrchr(self, '/');
	if (slash)
		*slash = '\0';
	snprintf(buf, len, "%s/%s", self, prog);
}

static void parse_opts(int argc, char **argv, struct opts *o)
{
	enum { O_KERNEL = 256, O_INITRD, O_BUDGET, O_MEM, O_CPUS, O_MIX, O_MIX_FILE, O_POLICIES,
	       O_SLO_P99, O_SLO_TPUT, O_STEP, O_MAX_VMS, O_REPORT, O_BOOT_TIMEOUT, O_WARM, O_SEED,
	       O_CMDLINE, O_OUT, O_EBB, O_EBBD, O_EBBD_ARG };
	static const struct option lopts[] = {
		{ "kernel", required_argument, NULL, O_KERNEL },
		{ "initrd", required_argument, NULL, O_INITRD },
		{ "budget", required_argument, NULL, O_BUDGET },
		{ "mem", required_argument, NULL, O_MEM },
		{ "cpus", required_argument, NULL, O_CPUS },
		{ "mix", required_argument, NULL, O_MIX },
		{ "mix-file", required_argument, NULL, O_MIX_FILE },
		{ "policies", required_argument, NULL, O_POLICIES },
		{ "slo-p99", required_argument, NULL, O_SLO_P99 },
		{ "slo-tput", required_argument, NULL, O_SLO_TPUT },
		{ "step", required_argument, NULL, O_STEP },
		{ "max-vms", required_argument, NULL, O_MAX_VMS },
		{ "report", required_argument, NULL, O_REPORT },
		{ "boot-timeout", required_argument, NULL, O_BOOT_TIMEOUT },
		{ "warm", required_argument, NULL, O_WARM },
		{ "seed", required_argument, NULL, O_SEED },
		{ "cmdline", required_argument, NULL, O_CMDLINE },
		{ "out", required_argument, NULL, O_OUT },
		{ "ebb", required_argument, NULL, O_EBB },
		{ "ebbd", required_argument, NULL, O_EBBD },
		{ "ebbd-arg", required_argument, NULL, O_EBBD_ARG },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static char ebb_path[PATH_MAX + 8], ebbd_path[PATH_MAX + 8];
	const char *mix = NULL, *mix_file = NULL;
	char err[256];
	int c;

	*o = (struct opts){ .mem_bytes = 256ull << 20, .cpus = 1, .max_vms = 8, .step_s = 60,
			    .report_s = 5, .boot_timeout_s = 900, .warm_s = 20, .seed = 1, .out = "ebb-density",
			    .slo = { .p99_factor = 1.1, .tput_factor = 0.9 } };
	parse_policies("ebb,mom,static", o);
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", lopts, NULL)) != -1) {
		switch (c) {
		case O_KERNEL: o->kernel = optarg; break;
		case O_INITRD: o->initrd = optarg; break;
		case O_BUDGET: o->budget_bytes = parse_bytes(optarg, "--budget", 64ull << 20); break;
		case O_MEM: o->mem_bytes = parse_bytes(optarg, "--mem", 64ull << 20); break;
		case O_CPUS: o->cpus = parse_uint(optarg, "--cpus", 1, 64); break;
		case O_MIX: mix = optarg; break;
		case O_MIX_FILE: mix_file = optarg; break;
		case O_POLICIES: parse_policies(optarg, o); break;
		case O_SLO_P99: o->slo.p99_factor = parse_factor(optarg, "--slo-p99", 1.0, 100.0); break;
		case O_SLO_TPUT: o->slo.tput_factor = parse_factor(optarg, "--slo-tput", 0.0, 1.0); break;
		case O_STEP: o->step_s = parse_uint(optarg, "--step", 10, 3600); break;
		case O_MAX_VMS: o->max_vms = parse_uint(optarg, "--max-vms", 1, MAX_VMS_LIMIT); break;
		case O_REPORT: o->report_s = parse_uint(optarg, "--report", 1, 600); break;
		case O_BOOT_TIMEOUT:
			o->boot_timeout_s = parse_uint(optarg, "--boot-timeout", 10, 86400);
			break;
		case O_WARM: o->warm_s = parse_uint(optarg, "--warm", 0, 3600); break;
		case O_SEED: o->seed = parse_uint(optarg, "--seed", 0, 1u << 30); break;
		case O_CMDLINE: o->cmdline = optarg; break;
		case O_OUT: o->out = optarg; break;
		case O_EBB: o->ebb = optarg; break;
		case O_EBBD: o->ebbd = optarg; break;
		case O_EBBD_ARG:
			if (o->nr_ebbd_args >= sizeof(o->ebbd_args) / sizeof(o->ebbd_args[0]))
				usage_die("at most 16 --ebbd-arg");
			o->ebbd_args[o->nr_ebbd_args++] = optarg;
			break;
		case 'h': fputs(usage_density, stdout); exit(0);
		default: usage_die("unknown option");
		}
	}
	if (optind != argc)
		usage_die("unexpected argument '%s'", argv[optind]);
	if (!o->kernel || !o->initrd)
		usage_die("--kernel and --initrd are required (ebb's own image: "
			  "build/images/guest/vmlinuz and initrd.img)");
	if (access(o->kernel, R_OK) || access(o->initrd, R_OK))
		usage_die("cannot read %s: %s", access(o->kernel, R_OK) ? o->kernel : o->initrd,
			  strerror(errno));
	if (!o->budget_bytes)
		usage_die("--budget is required (the host memory the VMs may use together)");
	if (mix && mix_file)
		usage_die("give --mix or --mix-file, not both");
	if (mix_file)
		read_mix_file(mix_file, &o->mix);
	else if (dens_mix_parse(mix ? mix : "web", &o->mix, err, sizeof(err)))
		usage_die("bad --mix '%s': %s", mix, err);
	if (o->step_s < 2 * o->report_s)
		usage_die("--step %u is shorter than two reports (--report %u)", o->step_s,
			  o->report_s);
	if (o->cmdline && strlen(o->cmdline) > 512)
		usage_die("--cmdline is longer than 512 characters");
	if (strlen(o->out) > 1024)
		usage_die("--out is longer than 1024 characters");
	if (!o->ebb) {
		self_dir_prog(NULL, ebb_path, sizeof(ebb_path));
		o->ebb = ebb_path;
	}
	if (!o->ebbd) {
		self_dir_prog("ebbd", ebbd_path, sizeof(ebbd_path));
		o->ebbd = ebbd_path;
	}
	if (access(o->ebb, X_OK))
		usage_die("cannot run %s: %s (give --ebb)", o->ebb, strerror(errno));
	if (access(o->ebbd, X_OK))
		usage_die("cannot run %s: %s (give --ebbd)", o->ebbd, strerror(errno));
}

/* ---- children ------------------------------------------------------------------ */

/* fork + exec argv with stdout to out_fd (or the log), stderr to err_path,
 * stdin from /dev/null, in its own process group, EBB_RUNTIME_DIR=rundir. */
static pid_t spawn(char *const argv[], int out_fd, const char *err_path, const char *rundir)
{
	pid_t pid = fork();

	if (pid < 0)
		return -errno;
	if (pid == 0) {
		int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
		int err = open(err_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		sigset_t none;

		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		setpgid(0, 0);
		if (null < 0 || err < 0 || dup2(null, 0) < 0 || dup2(err, 2) < 0 ||
		    dup2(out_fd >= 0 ? out_fd : err, 1) < 0)
			_exit(127);
		if (rundir)
			setenv("EBB_RUNTIME_DIR", rundir, 1);
		execv(argv[0], argv);
		dprintf(2, "ebb bench density: exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	setpgid(pid, pid);
	return pid;
}

static int start_vm(struct run *r, struct vm *v, unsigned index)
{
	const struct opts *o = r->o;
	char script[160], enc[sodium_base64_ENCODED_LEN(sizeof(script), sodium_base64_VARIANT_ORIGINAL)];
	char cmdline[1024], mem[32], cpus[16], path[1200];
	char *argv[20];
	int pfd[2], n = 0;

	snprintf(script, sizeof(script), "ebb-work %s --seed %llu --report %u\n",
		 dens_kind_name(v->kind), (unsigned long long)o->seed + index, o->report_s);
	sodium_bin2base64(enc, sizeof(enc), (const unsigned char *)script, strlen(script),
			  sodium_base64_VARIANT_ORIGINAL);
	snprintf(cmdline, sizeof(cmdline), "quiet %s%sebb.cmd=%s", o->cmdline ? o->cmdline : "",
		 o->cmdline ? " " : "", enc);
	snprintf(mem, sizeof(mem), "%lluK", (unsigned long long)(o->mem_bytes >> 10));
	snprintf(cpus, sizeof(cpus), "%u", o->cpus);
	argv[n++] = (char *)o->ebb;
	argv[n++] = "run";
	argv[n++] = "--kernel";
	argv[n++] = (char *)o->kernel;
	argv[n++] = "--initrd";
	argv[n++] = (char *)o->initrd;
	argv[n++] = "--mem";
	argv[n++] = mem;
	argv[n++] = "--cpus";
	argv[n++] = cpus;
	argv[n++] = "--name";
	argv[n++] = v->name;
	argv[n++] = "--cmdline";
	argv[n++] = cmdline;
	argv[n] = NULL;
	if (pipe2(pfd, O_CLOEXEC))
		return -errno;
	snprintf(path, sizeof(path), "%s/logs/%s-%s.console", o->out, r->phase, v->name);
	v->log = fopen(path, "w");
	snprintf(path, sizeof(path), "%s/logs/%s-%s.err", o->out, r->phase, v->name);
	v->pid = spawn(argv, pfd[1], path, r->rundir);
	close(pfd[1]);
	if (v->pid < 0) {
		close(pfd[0]);
		return (int)v->pid;
	}
	v->out_fd = pfd[0];
	fcntl(v->out_fd, F_SETFL, O_NONBLOCK);
	return 0;
}

/* One whole console line of a VM. */
static void vm_line(struct run *r, struct vm *v, const char *l, size_t len)
{
	struct dens_report rep;

	if (v->log) {
		fprintf(v->log, "%.3f %.*s\n", now_s() - r->t0, (int)len, l);
		fflush(v->log);
	}
	if (dens_line_is_oom(l, len)) {
		v->nr_oom++;
		return;
	}
	if (!v->booted && memmem(l, len, "ebb-guest: ready", 16))
		v->booted = true;
	if (!v->ready && memmem(l, len, "ebb-work: ready", 15)) {
		v->ready = true;
		v->ready_at = now_s();
		return;
	}
	if (!memmem(l, len, "ebb-work: t=", 12))
		return;
	if (dens_parse_report(l, len, &rep) || rep.kind != v->kind) {
		v->nr_bad_lines++;
		return;
	}
	if (rep.nr_errors > v->max_errors)
		v->max_errors = rep.nr_errors;
	if (v->ready)
		v->nr_after_ready++;
	if (v->collecting && v->nr_rep < DENS_MAX_REPORTS)
		v->rep[v->nr_rep++] = rep;
}

/* Reads what a VM's console has; lines past DENS_LINE_MAX_BYTES are dropped. */
static void vm_read(struct run *r, struct vm *v)
{
	char buf[4096];
	ssize_t n, i;

	for (;;) {
		n = read(v->out_fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return;
		if (n == 0) {
			close(v->out_fd);
			v->out_fd = -1;
			return;
		}
		for (i = 0; i < n; i++) {
			char ch = buf[i];

			if (ch == '\n') {
				if (!v->overlong)
					vm_line(r, v, v->line, v->len);
				v->len = 0;
				v->overlong = false;
			} else if (ch == '\r') {
				continue;
			} else if (v->len < DENS_LINE_MAX_BYTES) {
				v->line[v->len++] = ch;
			} else {
				v->overlong = true;
				v->nr_bad_lines++;
			}
		}
	}
}

static void reap(struct run *r)
{
	unsigned i;
	int st;

	for (i = 0; i < r->nr_vms; i++) {
		struct vm *v = &r->vms[i];

		if (v->pid > 0 && waitpid(v->pid, &st, WNOHANG) == v->pid) {
			v->pid = 0;
			v->died = true;
		}
	}
}

/* Serves every console for up to ms. */
static void pump(struct run *r, int ms)
{
	struct pollfd pfds[MAX_VMS_LIMIT + 1];
	struct vm *who[MAX_VMS_LIMIT + 1];
	unsigned i, n = 0;

	for (i = 0; i < r->nr_vms; i++) {
		if (r->vms[i].out_fd < 0)
			continue;
		pfds[n] = (struct pollfd){ .fd = r->vms[i].out_fd, .events = POLLIN };
		who[n++] = &r->vms[i];
	}
	if (poll(pfds, n, ms) > 0)
		for (i = 0; i < n; i++)
			if (pfds[i].revents)
				vm_read(r, who[i]);
	reap(r);
}

static void stop_pids(struct run *r, pid_t *pids, unsigned n)
{
	double until = now_s() + STOP_GRACE_MS / 1000.0;
	pid_t pgids[MAX_VMS_LIMIT];
	unsigned i, left;
	int st;

	for (i = 0; i < n && i < MAX_VMS_LIMIT; i++)
		pgids[i] = pids[i];

	/* each child leads its own process group (spawn): the group gets the
	 * signals, so nothing it started outlives it */
	for (i = 0; i < n; i++)
		if (pids[i] > 0)
			kill(-pids[i], SIGTERM);
	do {
		pump(r, 100);
		left = 0;
		for (i = 0; i < n; i++) {
			if (pids[i] > 0 && waitpid(pids[i], &st, WNOHANG) == pids[i])
				pids[i] = 0;
			left += pids[i] > 0;
		}
	} while (left && now_s() < until);
	for (i = 0; i < n; i++) {
		if (pids[i] > 0) {
			kill(-pids[i], SIGKILL);
			waitpid(pids[i], &st, 0);
		}
		pids[i] = 0;
		if (pgids[i] > 0)
			kill(-pgids[i], SIGKILL);	/* what is left of the group */
	}
}

/* Stops every VM of the phase, then ebbd; reaps them all. */
static void stop_all(struct run *r)
{
	pid_t pids[MAX_VMS_LIMIT];
	unsigned i, n = 0;

	for (i = 0; i < r->nr_vms; i++) {
		if (r->vms[i].pid > 0)
			pids[n++] = r->vms[i].pid;
		r->vms[i].pid = 0;
	}
	stop_pids(r, pids, n);
	if (r->ebbd_pid > 0)
		stop_pids(r, &r->ebbd_pid, 1);
	r->ebbd_pid = 0;
	for (i = 0; i < r->nr_vms; i++) {
		if (r->vms[i].out_fd >= 0)
			close(r->vms[i].out_fd);
		if (r->vms[i].log)
			fclose(r->vms[i].log);
		r->vms[i].out_fd = -1;
		r->vms[i].log = NULL;
	}
	r->nr_vms = 0;
}

/* ---- control sockets ---------------------------------------------------------- */

/* CLIENT-side reads of hostile replies: the wrong type is the default. */
static int64_t jget(struct json_object *o, const char *key, int64_t def)
{
	return vmm_json_int(o, key, def);
}

static struct json_object *call(const char *rundir, const char *name, const char *cmd)
{
	return vmm_ctl_query(rundir, name, cmd, CALL_MS);
}

/* A VM's host memory by source into row (left at -1 when it does not answer). */
static void vm_memory(struct run *r, struct vm *v, struct dens_row *row)
{
	struct json_object *s = call(r->rundir, v->name, "stats"), *b;
	int64_t ksm;

	row->resident_bytes = row->balloon_bytes = row->compressed_bytes = -1;
	row->compressed_host_bytes = row->file_bytes = row->ksm_bytes = -1;
	if (!s)
		return;
	row->resident_bytes = jget(s, "resident_bytes", -1);
	row->compressed_bytes = jget(s, "compressed_pages", -1) >= 0 ?
					jget(s, "compressed_pages", 0) * 4096 : -1;
	row->compressed_host_bytes = jget(s, "compressed_bytes", -1);
	row->file_bytes = jget(s, "file_pages", -1) >= 0 ? jget(s, "file_pages", 0) * 4096 : -1;
	ksm = jget(s, "ksm_merging_pages", -1);	/* null while KSM is off: none merged */
	row->ksm_bytes = ksm >= 0 ? ksm * 4096 : 0;
	row->balloon_bytes = 0;
	if (json_object_object_get_ex(s, "balloon", &b) && json_object_is_type(b, json_type_object))
		row->balloon_bytes = jget(b, "actual_pages", 0) * 4096;
	json_object_put(s);
}

struct pool_obs {
	int64_t used, budget, bal_balloon, bal_high, bal_ksm;
};

static bool pool_observe(struct run *r, struct pool_obs *p)
{
	struct json_object *o = call(r->rundir, EBB_DISCOVER_RESERVED_NAME, "pool"), *b = NULL;

	*p = (struct pool_obs){ -1, -1, -1, -1, -1 };
	if (!o)
		return false;
	p->used = jget(o, "used_bytes", -1);
	p->budget = jget(o, "budget_bytes", -1);
	if (json_object_object_get_ex(o, "balancer", &b) && json_object_is_type(b, json_type_object)) {
		p->bal_balloon = jget(b, "reclaimed_balloon_bytes", -1);
		p->bal_high = jget(b, "reclaimed_high_bytes", -1);
		p->bal_ksm = jget(b, "reclaimed_ksm_bytes", -1);
	}
	json_object_put(o);
	return p->used >= 0;
}

static int64_t add_known(int64_t a, int64_t b)
{
	if (b < 0)
		return a;
	return a < 0 ? b : a + b;
}

/* One line of memory.csv (and of the plot's data): the sums over the VMs. */
static void sample_memory(struct run *r, int pol)
{
	struct dens_row sum = { .resident_bytes = -1, .balloon_bytes = -1, .compressed_bytes = -1,
				.file_bytes = -1, .ksm_bytes = -1 };
	struct pool_obs p = { -1, -1, -1, -1, -1 };
	double t = now_s() - r->t0;
	unsigned i;

	for (i = 0; i < r->nr_vms; i++) {
		struct dens_row one;

		if (r->vms[i].pid <= 0)
			continue;
		vm_memory(r, &r->vms[i], &one);
		sum.resident_bytes = add_known(sum.resident_bytes, one.resident_bytes);
		sum.balloon_bytes = add_known(sum.balloon_bytes, one.balloon_bytes);
		sum.compressed_bytes = add_known(sum.compressed_bytes, one.compressed_bytes);
		sum.file_bytes = add_known(sum.file_bytes, one.file_bytes);
		sum.ksm_bytes = add_known(sum.ksm_bytes, one.ksm_bytes);
	}
	if (r->ebbd_pid > 0)
		pool_observe(r, &p);
	fprintf(r->mem_csv, "%.1f,%s,%u,%lld,%lld,%lld,%lld,%lld,%lld\n", t, r->phase, r->nr_vms,
		(long long)sum.resident_bytes, (long long)sum.balloon_bytes,
		(long long)sum.compressed_bytes, (long long)sum.file_bytes,
		(long long)sum.ksm_bytes, (long long)p.used);
	fflush(r->mem_csv);
	if (pol >= 0 && r->mem_dat[pol])
		fprintf(r->mem_dat[pol], "%.1f %.1f %.1f %.1f %.1f %.1f %.1f\n", t,
			(double)(sum.resident_bytes > 0 ? sum.resident_bytes : 0) / 1048576.0,
			(double)(sum.balloon_bytes > 0 ? sum.balloon_bytes : 0) / 1048576.0,
			(double)(sum.compressed_bytes > 0 ? sum.compressed_bytes : 0) / 1048576.0,
			(double)(sum.file_bytes > 0 ? sum.file_bytes : 0) / 1048576.0,
			(double)(sum.ksm_bytes > 0 ? sum.ksm_bytes : 0) / 1048576.0,
			(double)(p.used > 0 ? p.used : 0) / 1048576.0);
}

/* The step's per-report p99s of a VM, "317,468,..." (the first report left
 * out, as in dens_metrics_of), for the progress lines: how noisy a step was. */
static void fmt_p99s(const struct vm *v, char *buf, size_t len)
{
	size_t i, off = 0;

	buf[0] = '\0';
	for (i = 1; i < v->nr_rep && i <= 16 && off + 24 < len; i++)
		off += (size_t)snprintf(buf + off, len - off, "%s%llu", i > 1 ? "," : "",
					(unsigned long long)v->rep[i].p99_us);
}

/* ---- phases ---------------------------------------------------------------------- */

static int make_rundir(struct run *r, const char *phase)
{
	snprintf(r->rundir, sizeof(r->rundir), "%s/%s", r->tmpdir, phase);
	if (mkdir(r->rundir, 0700) && errno != EEXIST)
		return -errno;
	return vmm_rundir_check(r->rundir);
}

/* ebbd with this policy on the phase's runtime dir; its log is logs/ebbd-TAG.log. */
static int start_ebbd(struct run *r, const char *policy, const char *tag)
{
	const struct opts *o = r->o;
	char budget[32], log[1200], err[1200];
	char *argv[40];
	double until;
	unsigned i;
	int n = 0;

	snprintf(budget, sizeof(budget), "%lluK", (unsigned long long)(o->budget_bytes >> 10));
	snprintf(log, sizeof(log), "%s/logs/ebbd-%s.log", o->out, tag);
	snprintf(err, sizeof(err), "%s/logs/ebbd-%s.err", o->out, tag);
	argv[n++] = (char *)o->ebbd;
	argv[n++] = "--policy";
	argv[n++] = (char *)policy;
	argv[n++] = "--budget";
	argv[n++] = budget;
	argv[n++] = "--vms-only";
	argv[n++] = "--rundir";
	argv[n++] = r->rundir;
	argv[n++] = "--metrics";
	argv[n++] = "off";
	argv[n++] = "--log";
	argv[n++] = log;
	for (i = 0; i < o->nr_ebbd_args; i++)
		argv[n++] = (char *)o->ebbd_args[i];
	argv[n] = NULL;
	r->ebbd_pid = spawn(argv, -1, err, r->rundir);
	if (r->ebbd_pid < 0)
		return (int)r->ebbd_pid;
	until = now_s() + 20;
	while (now_s() < until && !interrupted) {
		struct json_object *v = call(r->rundir, EBB_DISCOVER_RESERVED_NAME, "version");
		int st;

		if (v) {
			json_object_put(v);
			return 0;
		}
		if (waitpid(r->ebbd_pid, &st, WNOHANG) == r->ebbd_pid) {
			r->ebbd_pid = 0;
			say("ebbd exited at start (status %d): see %s", WEXITSTATUS(st), err);
			return -ECHILD;
		}
		usleep(200000);
	}
	say("ebbd did not answer on %s/ebbd.sock within 20 s", r->rundir);
	return -ETIMEDOUT;
}

/* Adds a VM of kind and waits until it is warm: its workload ready, two
 * reports after, then --warm seconds.  Returns DENS_OK or the reason it is not. */
static enum dens_verdict add_vm(struct run *r, enum dens_kind kind, const char *name,
				unsigned index, int pol)
{
	struct vm *v = &r->vms[r->nr_vms];
	double start = now_s(), last_sample = 0, reported = 0;
	int ret;

	memset(v, 0, sizeof(*v));
	v->out_fd = -1;
	v->kind = kind;
	snprintf(v->name, sizeof(v->name), "%s", name);
	ret = start_vm(r, v, index);
	if (ret) {
		say("cannot start VM %s: %s", name, strerror(-ret));
		return DENS_BREAK_DIED;
	}
	r->nr_vms++;
	while (!interrupted) {
		pump(r, 200);
		if (v->ready && v->nr_after_ready >= 2 && !reported)
			reported = now_s();
		if (reported && now_s() - reported >= r->o->warm_s)
			break;
		if (v->died || (v->out_fd < 0 && !v->ready)) {
			say("%s: VM %s ended before it was warm (logs/%s-%s.err)", r->phase, name,
			    r->phase, name);
			return DENS_BREAK_DIED;
		}
		if (now_s() - start > r->o->boot_timeout_s) {
			say("%s: VM %s not warm after %u s (booted: %s, workload ready: %s)", r->phase,
			    name, r->o->boot_timeout_s, v->booted ? "yes" : "no",
			    v->ready ? "yes" : "no");
			return DENS_BREAK_BOOT;
		}
		if (now_s() - last_sample >= SAMPLE_MS / 1000.0) {
			sample_memory(r, pol);
			last_sample = now_s();
		}
	}
	if (interrupted)
		return DENS_BREAK_DIED;
	say("%s: VM %s (%s) warm after %.0f s", r->phase, name, dens_kind_name(kind),
	    now_s() - start);
	return DENS_OK;
}

/* Measures every VM for one step; with ebbd, also the pool (mean used over
 * the second half).  Returns 0, or -EINTR. */
static int measure(struct run *r, int pol, double *pool_used_mean)
{
	double start = now_s(), end = start + r->o->step_s, last_sample = 0, sum = 0;
	unsigned i, nr = 0;

	for (i = 0; i < r->nr_vms; i++) {
		r->vms[i].nr_rep = 0;
		r->vms[i].collecting = true;
	}
	while (now_s() < end && !interrupted) {
		pump(r, 200);
		if (now_s() - last_sample >= SAMPLE_MS / 1000.0) {
			struct pool_obs p;

			sample_memory(r, pol);
			last_sample = now_s();
			if (r->ebbd_pid > 0 && now_s() >= start + r->o->step_s / 2.0 &&
			    pool_observe(r, &p)) {
				sum += (double)p.used;
				nr++;
			}
		}
	}
	for (i = 0; i < r->nr_vms; i++)
		r->vms[i].collecting = false;
	*pool_used_mean = nr ? sum / nr : -1;
	return interrupted ? -EINTR : 0;
}

static int baseline(struct run *r, FILE *csv)
{
	const struct opts *o = r->o;
	unsigned k;
	double unused;
	int ret;

	r->phase = "baseline";
	ret = make_rundir(r, "baseline");
	if (ret) {
		say("cannot make the runtime directory %s: %s", r->rundir, strerror(-ret));
		return -1;
	}
	fputs("kind,reports,p50_us,p99_us,rps\n", csv);
	for (k = 0; k < DENS_NR_KINDS; k++) {
		struct dens_metrics *m = &r->base[k];
		char name[32], p99s[256];
		struct vm *v;

		if (!o->mix.pct[k])
			continue;
		snprintf(name, sizeof(name), "base-%s", dens_kind_name((enum dens_kind)k));
		ret = start_ebbd(r, "static", name);
		if (ret) {
			say("baseline: cannot start ebbd: %s", strerror(-ret));
			stop_all(r);
			return -1;
		}
		say("baseline: %s alone, ebbd with policy static: booting %s",
		    dens_kind_name((enum dens_kind)k), name);
		if (add_vm(r, (enum dens_kind)k, name, 0, -1) != DENS_OK) {
			stop_all(r);
			say("baseline of %s failed: no reference to measure against",
			    dens_kind_name((enum dens_kind)k));
			return -1;
		}
		say("baseline: %s: measuring %u s", dens_kind_name((enum dens_kind)k), o->step_s);
		if (measure(r, -1, &unused)) {
			stop_all(r);
			return -1;
		}
		v = &r->vms[0];
		ret = dens_metrics_of(v->rep, v->nr_rep, m);
		if (ret || v->max_errors || v->nr_oom || v->died) {
			say("baseline of %s failed: %zu reports, %llu data errors, %u OOM lines%s",
			    dens_kind_name((enum dens_kind)k), v->nr_rep,
			    (unsigned long long)v->max_errors, v->nr_oom,
			    v->died ? ", the VM died" : "");
			stop_all(r);
			return -1;
		}
		r->have_base[k] = true;
		fprintf(csv, "%s,%u,%.0f,%.0f,%.2f\n", dens_kind_name((enum dens_kind)k),
			m->nr_reports, m->p50_us, m->p99_us, m->rps);
		fflush(csv);
		fmt_p99s(v, p99s, sizeof(p99s));
		say("baseline: %s: p50 %.0f us, p99 %.0f us (per report: %s), %.1f req/s (%u reports)",
		    dens_kind_name((enum dens_kind)k), m->p50_us, m->p99_us, p99s, m->rps,
		    m->nr_reports);
		stop_all(r);
	}
	return 0;
}

static void policy_run(struct run *r, int pol)
{
	const struct opts *o = r->o;
	const char *policy = o->policies[pol];
	struct dens_result *res = &r->res[pol];
	unsigned n;
	int ret;

	*res = (struct dens_result){ .policy = policy, .broke_vm = -1, .mem_bytes = o->mem_bytes,
				     .budget_bytes = o->budget_bytes, .resident_bytes = -1,
				     .balloon_bytes = -1, .compressed_bytes = -1, .file_bytes = -1,
				     .ksm_bytes = -1, .bal_balloon_bytes = -1, .bal_high_bytes = -1,
				     .bal_ksm_bytes = -1 };
	r->nr_res = (unsigned)pol + 1;
	r->phase = policy;
	ret = make_rundir(r, policy);
	if (!ret)
		ret = start_ebbd(r, policy, policy);
	if (ret) {
		say("%s: cannot start ebbd: %s", policy, strerror(-ret));
		res->why = DENS_BREAK_DIED;
		res->broke_at = 1;
		stop_all(r);
		return;
	}
	say("%s: ebbd up (budget %llu MiB, VMs of %llu MiB)", policy,
	    (unsigned long long)(o->budget_bytes >> 20), (unsigned long long)(o->mem_bytes >> 20));
	for (n = 1; n <= o->max_vms && !interrupted; n++) {
		enum dens_kind kind = dens_mix_assign(&o->mix, n - 1);
		enum dens_verdict worst = DENS_OK, v;
		double pool_mean, worst_p99 = 0, min_rps = -1;
		int64_t tot[5] = { -1, -1, -1, -1, -1 };
		struct pool_obs p;
		char name[32];
		unsigned i;

		snprintf(name, sizeof(name), "d%u", n);
		say("%s: starting VM %u of at most %u (%s)", policy, n, o->max_vms,
		    dens_kind_name(kind));
		v = add_vm(r, kind, name, n - 1, pol);
		if (v != DENS_OK) {
			res->broke_at = n;
			res->why = v;
			res->broke_vm = (int)n - 1;
			break;
		}
		say("%s: %u VMs warm: measuring %u s", policy, n, o->step_s);
		if (measure(r, pol, &pool_mean))
			break;
		for (i = 0; i < r->nr_vms; i++) {
			struct vm *vm = &r->vms[i];
			struct dens_row row = { .policy = policy, .nr_vms = n, .vm = i,
						.kind = vm->kind, .base = r->base[vm->kind],
						.nr_oom = vm->nr_oom };
			char p99s[256];

			dens_metrics_of(vm->rep, vm->nr_rep, &row.m);
			if (vm->max_errors > row.m.nr_errors)
				row.m.nr_errors = vm->max_errors;
			row.verdict = vm->died ? DENS_BREAK_DIED :
				      dens_slo_check(&o->slo, &row.base, &row.m, vm->nr_oom);
			vm_memory(r, vm, &row);
			dens_csv_steps_row(r->steps_csv, &row);
			if (row.verdict != DENS_OK && worst == DENS_OK) {
				worst = row.verdict;
				res->broke_vm = (int)i;
			}
			if (row.base.p99_us > 0 && row.m.p99_us / row.base.p99_us > worst_p99)
				worst_p99 = row.m.p99_us / row.base.p99_us;
			if (row.base.rps > 0 && (min_rps < 0 || row.m.rps / row.base.rps < min_rps))
				min_rps = row.m.rps / row.base.rps;
			tot[0] = add_known(tot[0], row.resident_bytes);
			tot[1] = add_known(tot[1], row.balloon_bytes);
			tot[2] = add_known(tot[2], row.compressed_bytes);
			tot[3] = add_known(tot[3], row.file_bytes);
			tot[4] = add_known(tot[4], row.ksm_bytes);
			fmt_p99s(vm, p99s, sizeof(p99s));
			say("%s: %u VMs: %s (%s) p99 %.0f us (per report: %s; base %.0f), %.1f req/s "
			    "(base %.1f), errors %llu, OOM %u: %s", policy, n, vm->name,
			    dens_kind_name(vm->kind), row.m.p99_us, p99s, row.base.p99_us, row.m.rps,
			    row.base.rps,
			    (unsigned long long)row.m.nr_errors, vm->nr_oom,
			    dens_verdict_name(row.verdict));
		}
		fflush(r->steps_csv);
		if (r->slo_dat[pol])
			fprintf(r->slo_dat[pol], "%u %.3f %.3f\n", n, worst_p99, min_rps < 0 ? 0 : min_rps);
		say("%s: %u VMs: pool used %.0f MiB (mean of the second half) of %llu MiB", policy, n,
		    pool_mean / 1048576.0, (unsigned long long)(o->budget_bytes >> 20));
		if (worst == DENS_OK && (pool_mean < 0 || pool_mean > (double)o->budget_bytes)) {
			worst = DENS_BREAK_BUDGET;
			res->broke_vm = -1;
		}
		if (worst != DENS_OK) {
			res->broke_at = n;
			res->why = worst;
			say("%s: the SLO broke at %u VMs (%s)", policy, n, dens_verdict_name(worst));
			break;
		}
		res->nr_held = n;
		res->resident_bytes = tot[0];
		res->balloon_bytes = tot[1];
		res->compressed_bytes = tot[2];
		res->file_bytes = tot[3];
		res->ksm_bytes = tot[4];
		if (pool_observe(r, &p)) {
			res->bal_balloon_bytes = p.bal_balloon;
			res->bal_high_bytes = p.bal_high;
			res->bal_ksm_bytes = p.bal_ksm;
		}
		say("%s: %u VMs held", policy, n);
	}
	stop_all(r);
}

/* ---- output -------------------------------------------------------------------- */

static const struct dens_result *find_res(const struct run *r, const char *policy)
{
	unsigned i;

	for (i = 0; i < r->nr_res; i++)
		if (!strcmp(r->res[i].policy, policy))
			return &r->res[i];
	return NULL;
}

static void mib_or_dash(char *buf, size_t len, int64_t b)
{
	if (b < 0)
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, "%.0f", (double)b / 1048576.0);
}

static void print_table(const struct run *r, FILE *f)
{
	const struct opts *o = r->o;
	const struct dens_result *st = find_res(r, "static"), *mom = find_res(r, "mom");
	char mix[128], b[8][24];
	unsigned i, k;

	dens_mix_format(&o->mix, mix, sizeof(mix));
	fprintf(f, "\nebb bench density: mix %s, VMs of %llu MiB, budget %llu MiB, step %u s, "
		"SLO p99 <= %.2fx, throughput >= %.2fx, no OOM kill, no data error\n", mix,
		(unsigned long long)(o->mem_bytes >> 20), (unsigned long long)(o->budget_bytes >> 20),
		o->step_s, o->slo.p99_factor, o->slo.tput_factor);
	for (k = 0; k < DENS_NR_KINDS; k++)
		if (r->have_base[k])
			fprintf(f, "baseline %-5s (one VM alone, ebbd static): p50 %.0f us, p99 %.0f us, %.1f req/s\n",
				dens_kind_name((enum dens_kind)k), r->base[k].p50_us, r->base[k].p99_us,
				r->base[k].rps);
	fprintf(f, "\n%-7s %5s %-26s %10s %10s %11s %9s %7s\n", "policy", "held",
		"broke at (why, which VM)", "committed", "overcommit", "vs static", "x static", "x mom");
	for (i = 0; i < r->nr_res; i++) {
		const struct dens_result *x = &r->res[i];
		uint64_t committed = (uint64_t)x->nr_held * x->mem_bytes;
		double rs = dens_ratio(x, st), rm = dens_ratio(x, mom);
		char broke[64];

		if (x->broke_at)
			snprintf(broke, sizeof(broke), "%u (%s, %s%d)", x->broke_at,
				 dens_verdict_name(x->why), x->broke_vm >= 0 ? "d" : "pool",
				 x->broke_vm >= 0 ? x->broke_vm + 1 : 0);
		else
			snprintf(broke, sizeof(broke), "- (held at --max-vms)");
		if (x->broke_vm < 0 && x->broke_at)
			snprintf(broke, sizeof(broke), "%u (%s)", x->broke_at, dens_verdict_name(x->why));
		snprintf(b[0], sizeof(b[0]), "%llu MiB", (unsigned long long)(committed >> 20));
		snprintf(b[1], sizeof(b[1]), "%.2fx", (double)committed / (double)x->budget_bytes);
		if (st)
			snprintf(b[2], sizeof(b[2]), "%+lld MiB",
				 ((long long)x->nr_held - (long long)st->nr_held) *
					 (long long)(x->mem_bytes >> 20));
		else
			snprintf(b[2], sizeof(b[2]), "-");
		if (rs >= 0)
			snprintf(b[3], sizeof(b[3]), "%.2fx", rs);
		else
			snprintf(b[3], sizeof(b[3]), "-");
		if (rm >= 0)
			snprintf(b[4], sizeof(b[4]), "%.2fx", rm);
		else
			snprintf(b[4], sizeof(b[4]), "-");
		fprintf(f, "%-7s %5u %-26s %10s %10s %11s %9s %7s\n", x->policy, x->nr_held, broke,
			b[0], b[1], b[2], b[3], b[4]);
	}
	fprintf(f, "\nhost memory at the last step that held, summed over the VMs (MiB):\n");
	fprintf(f, "%-7s %9s %8s %11s %6s %5s   %s\n", "policy", "resident", "balloon",
		"compressed", "file", "ksm", "ebbd reclaimed: balloon / high / ksm");
	for (i = 0; i < r->nr_res; i++) {
		const struct dens_result *x = &r->res[i];

		mib_or_dash(b[0], sizeof(b[0]), x->resident_bytes);
		mib_or_dash(b[1], sizeof(b[1]), x->balloon_bytes);
		mib_or_dash(b[2], sizeof(b[2]), x->compressed_bytes);
		mib_or_dash(b[3], sizeof(b[3]), x->file_bytes);
		mib_or_dash(b[4], sizeof(b[4]), x->ksm_bytes);
		mib_or_dash(b[5], sizeof(b[5]), x->bal_balloon_bytes);
		mib_or_dash(b[6], sizeof(b[6]), x->bal_high_bytes);
		mib_or_dash(b[7], sizeof(b[7]), x->bal_ksm_bytes);
		fprintf(f, "%-7s %9s %8s %11s %6s %5s   %s / %s / %s\n", x->policy, b[0], b[1], b[2],
			b[3], b[4], b[5], b[6], b[7]);
	}
}

static bool in_path(const char *prog, char *buf, size_t len)
{
	const char *path = getenv("PATH"), *p;

	if (!path)
		path = "/usr/bin:/bin";
	for (p = path; *p;) {
		const char *colon = strchr(p, ':');
		size_t l = colon ? (size_t)(colon - p) : strlen(p);

		snprintf(buf, len, "%.*s/%s", (int)l, p, prog);
		if (l && !access(buf, X_OK))
			return true;
		if (!colon)
			break;
		p = colon + 1;
	}
	return false;
}

static void plot(const struct run *r)
{
	const struct opts *o = r->o;
	char gp[1200], gnuplot[PATH_MAX], log[1200];
	char *argv[3];
	unsigned i;
	pid_t pid;
	FILE *f;
	int st;

	snprintf(gp, sizeof(gp), "%s/density.gp", o->out);
	f = fopen(gp, "w");
	if (!f) {
		say("cannot write %s: %s", gp, strerror(errno));
		return;
	}
	fprintf(f, "# gnuplot script written by ebb bench density\n"
		"set terminal png size 900,600\nset output 'density-slo.png'\n"
		"set title 'worst p99 / baseline p99 by VM count (SLO %.2f)'\n"
		"set xlabel 'VMs'\nset ylabel 'p99 ratio'\nset key left top\nset grid\n"
		"set xtics 1\n",
		o->slo.p99_factor);
	fprintf(f, "plot %.2f title 'SLO' with lines dashtype 2", o->slo.p99_factor);
	for (i = 0; i < r->nr_res; i++)
		fprintf(f, ", 'slo-%s.dat' using 1:2 title '%s' with linespoints", r->res[i].policy,
			r->res[i].policy);
	fprintf(f, "\nset output 'density-memory.png'\nset terminal png size 900,%u\n"
		"set multiplot layout %u,1\nset xtics autofreq\nset xlabel 'seconds'\n"
		"set ylabel 'MiB'\nset key outside right\n", 300 * (r->nr_res ? r->nr_res : 1), r->nr_res ? r->nr_res : 1);
	for (i = 0; i < r->nr_res; i++)
		fprintf(f, "set title 'memory by source: %s'\n"
			"plot 'mem-%s.dat' using 1:2 title 'resident' with lines, "
			"'' using 1:3 title 'balloon' with lines, '' using 1:4 title 'compressed' with lines, "
			"'' using 1:5 title 'file' with lines, '' using 1:6 title 'ksm' with lines, "
			"'' using 1:7 title 'pool used' with lines, %llu title 'budget' with lines dashtype 2\n",
			r->res[i].policy, r->res[i].policy, (unsigned long long)(o->budget_bytes >> 20));
	fputs("unset multiplot\n", f);
	fclose(f);
	if (!in_path("gnuplot", gnuplot, sizeof(gnuplot))) {
		say("gnuplot is not installed (Debian: apt-get install gnuplot-nox): no PNG; the "
		    "script is %s", gp);
		return;
	}
	snprintf(log, sizeof(log), "%s/logs/gnuplot.log", o->out);
	argv[0] = gnuplot;
	argv[1] = "density.gp";
	argv[2] = NULL;
	pid = fork();
	if (pid == 0) {
		if (chdir(o->out))
			_exit(127);
		int fd = open("logs/gnuplot.log", O_WRONLY | O_CREAT | O_TRUNC, 0644);

		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execv(argv[0], argv);
		_exit(127);
	}
	if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st)) {
		say("gnuplot failed: see %s", log);
		return;
	}
	say("plots: %s/density-slo.png, %s/density-memory.png", o->out, o->out);
}

static FILE *out_file(const struct opts *o, const char *name)
{
	char path[1200];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", o->out, name);
	f = fopen(path, "w");
	if (!f)
		say("cannot write %s: %s", path, strerror(errno));
	return f;
}

/* Empties and removes a phase's runtime dir: ours alone (mkdtemp, 0700);
 * what is left there is lock files (ebbd.lock, NAME.lock) and the sockets of
 * a child that was killed. */
static void rm_phase_dir(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;

	if (!d)
		return;
	while ((e = readdir(d)))
		if (e->d_type != DT_DIR)
			unlinkat(dirfd(d), e->d_name, 0);
	closedir(d);
	rmdir(path);
}

static void rm_tree_rundir(struct run *r)
{
	unsigned i;
	char p[300];

	snprintf(p, sizeof(p), "%s/baseline", r->tmpdir);
	rm_phase_dir(p);
	for (i = 0; i < r->o->nr_policies; i++) {
		snprintf(p, sizeof(p), "%s/%s", r->tmpdir, r->o->policies[i]);
		rm_phase_dir(p);
	}
	rmdir(r->tmpdir);
}

static int density_main(int argc, char **argv)
{
	struct sigaction sa = { .sa_handler = on_signal };
	struct run r = { .ebbd_pid = 0 };
	struct opts o;
	char path[1200];
	const char *tmp = getenv("TMPDIR");
	FILE *base_csv, *sum_csv;
	int status = 0;
	unsigned i;

	parse_opts(argc, argv, &o);
	r.o = &o;
	if (mkdir(o.out, 0755) && errno != EEXIST)
		usage_die("cannot make --out %s: %s", o.out, strerror(errno));
	snprintf(path, sizeof(path), "%s/logs", o.out);
	if (mkdir(path, 0755) && errno != EEXIST)
		usage_die("cannot make %s: %s", path, strerror(errno));
	snprintf(r.tmpdir, sizeof(r.tmpdir), "%s/ebb-density.XXXXXX",
		 tmp && strlen(tmp) < 60 ? tmp : "/tmp");
	if (!mkdtemp(r.tmpdir))
		usage_die("cannot make a runtime directory in %s: %s", tmp ? tmp : "/tmp",
			  strerror(errno));
	r.vms = calloc(o.max_vms + 1, sizeof(*r.vms));
	base_csv = out_file(&o, "baseline.csv");
	sum_csv = out_file(&o, "summary.csv");
	r.steps_csv = out_file(&o, "steps.csv");
	r.mem_csv = out_file(&o, "memory.csv");
	if (!r.vms || !base_csv || !sum_csv || !r.steps_csv || !r.mem_csv)
		usage_die("cannot set up the output in %s", o.out);
	dens_csv_steps_header(r.steps_csv);
	fputs("t_s,phase,nr_vms,resident_bytes,balloon_bytes,compressed_bytes,file_bytes,"
	      "ksm_bytes,pool_used_bytes\n", r.mem_csv);
	for (i = 0; i < o.nr_policies; i++) {
		char name[64];

		snprintf(name, sizeof(name), "slo-%s.dat", o.policies[i]);
		r.slo_dat[i] = out_file(&o, name);
		snprintf(name, sizeof(name), "mem-%s.dat", o.policies[i]);
		r.mem_dat[i] = out_file(&o, name);
	}
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	r.t0 = now_s();
	say("results in %s, runtime directory %s", o.out, r.tmpdir);
	if (baseline(&r, base_csv)) {
		status = interrupted ? 130 : 1;
		goto out;
	}
	for (i = 0; i < o.nr_policies && !interrupted; i++)
		policy_run(&r, (int)i);
	if (interrupted) {
		status = 130;
		say("interrupted: the table below holds the policies finished so far");
	}
	dens_csv_summary_header(sum_csv);
	for (i = 0; i < r.nr_res; i++)
		dens_csv_summary_row(sum_csv, &r.res[i], find_res(&r, "static"), find_res(&r, "mom"));
	for (i = 0; i < o.nr_policies; i++) {
		if (r.slo_dat[i])
			fclose(r.slo_dat[i]);
		if (r.mem_dat[i])
			fclose(r.mem_dat[i]);
		r.slo_dat[i] = r.mem_dat[i] = NULL;
	}
	print_table(&r, stdout);
	fflush(stdout);
	if (r.nr_res)
		plot(&r);
out:
	stop_all(&r);
	for (i = 0; i < o.nr_policies; i++) {
		if (r.slo_dat[i])
			fclose(r.slo_dat[i]);
		if (r.mem_dat[i])
			fclose(r.mem_dat[i]);
	}
	fclose(base_csv);
	fclose(sum_csv);
	fclose(r.steps_csv);
	fclose(r.mem_csv);
	rm_tree_rundir(&r);
	free(r.vms);
	say("CSV: %s/summary.csv, steps.csv, baseline.csv, memory.csv", o.out);
	return status;
}

int ebb_bench_main(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		fputs("usage: ebb bench density [OPTIONS]   (ebb bench density --help)\n",
		      argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	if (!strcmp(argv[1], "density"))
		return density_main(argc - 1, argv + 1);
	fprintf(stderr, "ebb bench: unknown benchmark '%s' (there is: density)\n", argv[1]);
	return 2;
}
