/*
 * host-reclaim/bin/ebbd.c — the host memory daemon: option parsing, logging,
 * signals; everything else is host-reclaim/ebbd/ (the daemon) and
 * host-reclaim/balancer.c (the decisions).  See docs/ebbd.md.
 *
 *   ebbd [--budget SIZE|N%] [--policy ebb|mom|static] [--wmark-min SIZE]
 *        [--wmark-low SIZE] [--wmark-high SIZE] [--rundir DIR] [--vms-only]
 *        [--tick-ms N] [--lease-ms N] [--no-ksm] [--log FILE] [--foreground]
 *        [--verbose] [--libvirt URI]...
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "client/rundir.h"
#include "client/size.h"
#include "host-reclaim/ebbd/ebbd.h"
#include "host-reclaim/libvirt/ebbd_libvirt.h"

#define MAX_LIBVIRT_URIS 8

static FILE *log_file;
static int log_level = VMM_LOG_INFO;

static void log_cb(void *opaque, enum vmm_log_level level, const char *msg)
{
	static const char *const names[] = { "error", "warning", "info", "debug" };
	struct timespec ts;
	struct tm tm;
	char when[32];

	(void)opaque;
	if ((int)level > log_level)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(when, sizeof(when), "%H:%M:%S", &tm);
	fprintf(log_file, "%s.%03ld ebbd %s: %s\n", when, ts.tv_nsec / 1000000,
		names[level <= VMM_LOG_DEBUG ? level : VMM_LOG_DEBUG], msg);
	fflush(log_file);
}

static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("ebbd: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(2);
}

static void usage(FILE *f)
{
	fputs("usage: ebbd [options]\n"
	      "  --budget SIZE|N%     memory pool for the VMs and the host (default: MemTotal\n"
	      "                       minus a reserve); SIZE like 640M, 2G\n"
	      "  --policy P           ebb (default), mom or static\n"
	      "  --wmark-min SIZE, --wmark-low SIZE, --wmark-high SIZE\n"
	      "                       override the derived watermarks\n"
	      "  --vms-only           the budget is the VMs' alone (the host's own use is\n"
	      "                       not counted)\n"
	      "  --rundir DIR         where the VMs' sockets are (default as `ebb ls`)\n"
	      "  --tick-ms N          longest time between two steps (default 1000)\n"
	      "  --lease-ms N         lease of a clamp (default 30000)\n"
	      "  --no-ksm             leave /sys/kernel/mm/ksm alone\n"
	      "  --libvirt URI        also manage the running domains of this libvirt\n"
	      "                       connection (e.g. qemu:///system); repeatable\n"
	      "  --log FILE           append the log to FILE (default: stderr)\n"
	      "  --foreground         run in the foreground (the only mode today)\n"
	      "  --verbose            debug messages too\n", f);
}

static uint64_t size_arg(const char *opt, const char *val)
{
	uint64_t v;

	if (vmm_parse_size(val, 1ull << 20, &v))
		die("%s: cannot read \"%s\" as a size (e.g. 640M, 2G)", opt, val);
	return v;
}

static uint32_t uint_arg(const char *opt, const char *val, uint32_t lo, uint32_t hi)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(val, &end, 10);
	if (errno || *end || end == val || val[0] == '-' || v < lo || v > hi)
		die("%s: expected a number from %u to %u, got \"%s\"", opt, lo, hi, val);
	return (uint32_t)v;
}

struct sig_ctx {
	struct ebbd *d;
	struct vmm_log log;
	int fd;
};

static void on_signal(void *opaque, uint32_t events)
{
	struct sig_ctx *s = opaque;
	struct signalfd_siginfo si;

	(void)events;
	while (read(s->fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGHUP) {
			vmm_logf(&s->log, VMM_LOG_INFO, "SIGHUP: configuration reload is not "
				 "implemented yet; ignored");
			continue;
		}
		vmm_logf(&s->log, VMM_LOG_INFO, "signal %u: lifting clamps, restoring ksm, exiting",
			 si.ssi_signo);
		ebbd_stop(s->d);
	}
}

int main(int argc, char **argv)
{
	enum { O_BUDGET = 256, O_POLICY, O_WMIN, O_WLOW, O_WHIGH, O_RUNDIR, O_VMS_ONLY, O_TICK,
	       O_LEASE, O_NO_KSM, O_LOG, O_FG, O_VERBOSE, O_HELP, O_LIBVIRT };
	static const struct option opts[] = {
		{ "budget", required_argument, NULL, O_BUDGET },
		{ "policy", required_argument, NULL, O_POLICY },
		{ "wmark-min", required_argument, NULL, O_WMIN },
		{ "wmark-low", required_argument, NULL, O_WLOW },
		{ "wmark-high", required_argument, NULL, O_WHIGH },
		{ "rundir", required_argument, NULL, O_RUNDIR },
		{ "vms-only", no_argument, NULL, O_VMS_ONLY },
		{ "tick-ms", required_argument, NULL, O_TICK },
		{ "lease-ms", required_argument, NULL, O_LEASE },
		{ "no-ksm", no_argument, NULL, O_NO_KSM },
		{ "log", required_argument, NULL, O_LOG },
		{ "foreground", no_argument, NULL, O_FG },
		{ "verbose", no_argument, NULL, O_VERBOSE },
		{ "help", no_argument, NULL, O_HELP },
		{ "libvirt", required_argument, NULL, O_LIBVIRT },
		{ NULL, 0, NULL, 0 },
	};
	struct ebbd_cfg cfg = { 0 };
	struct sig_ctx sig = { 0 };
	struct ebbd *d;
	const char *lv_uris[MAX_LIBVIRT_URIS];
	struct ebbd_libvirt *lv[MAX_LIBVIRT_URIS] = { NULL };
	int nr_lv = 0, i;
	char err[512];
	sigset_t set;
	int c, ret;

	log_file = stderr;
	cfg.bal.policy = EBB_BAL_POLICY_EBB;
	while ((c = getopt_long(argc, argv, "hv", opts, NULL)) != -1) {
		switch (c) {
		case O_BUDGET: {
			size_t n = strlen(optarg);

			if (n && optarg[n - 1] == '%') {
				char pct[8];

				if (n > sizeof(pct))
					die("--budget: bad percentage \"%s\"", optarg);
				memcpy(pct, optarg, n - 1);
				pct[n - 1] = '\0';
				cfg.bal.pool.budget_percent = uint_arg("--budget", pct, 1, 100);
			} else {
				cfg.bal.pool.budget_bytes = size_arg("--budget", optarg);
			}
			break;
		}
		case O_POLICY:
			if (ebb_bal_policy_parse(optarg, &cfg.bal.policy))
				die("--policy: one of ebb, mom, static (got \"%s\")", optarg);
			break;
		case O_WMIN:
			cfg.bal.pool.wmark_min_bytes = size_arg("--wmark-min", optarg);
			break;
		case O_WLOW:
			cfg.bal.pool.wmark_low_bytes = size_arg("--wmark-low", optarg);
			break;
		case O_WHIGH:
			cfg.bal.pool.wmark_high_bytes = size_arg("--wmark-high", optarg);
			break;
		case O_RUNDIR:
			cfg.rundir = optarg;
			break;
		case O_VMS_ONLY:
			cfg.vms_only = true;
			break;
		case O_TICK:
			cfg.tick_ms = uint_arg("--tick-ms", optarg, 10, 20000);  /* under the VMs' idle timeout */
			cfg.bal.step_ms = cfg.tick_ms;
			break;
		case O_LEASE:
			cfg.bal.lease_ms = uint_arg("--lease-ms", optarg, 100, 600000);
			break;
		case O_NO_KSM:
			cfg.ksm_dir = "";
			break;
		case O_LOG:
			log_file = fopen(optarg, "a");
			if (!log_file)
				die("--log %s: %s", optarg, strerror(errno));
			break;
		case O_FG:
			break;
		case O_LIBVIRT:
			if (nr_lv >= MAX_LIBVIRT_URIS)
				die("--libvirt: at most %d connections", MAX_LIBVIRT_URIS);
			lv_uris[nr_lv++] = optarg;
			break;
		case 'v':
		case O_VERBOSE:
			log_level = VMM_LOG_DEBUG;
			break;
		case 'h':
		case O_HELP:
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc)
		die("unexpected argument \"%s\" (see ebbd --help)", argv[optind]);
	cfg.log.fn = log_cb;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	ret = ebbd_create(&cfg, &d, err, sizeof(err));
	if (ret)
		die("%s", err[0] ? err : strerror(-ret));
	sig.d = d;
	sig.log = cfg.log;
	sig.fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sig.fd < 0 || ebbd_add_fd(d, sig.fd, on_signal, &sig))
		die("signalfd: %s", strerror(errno));
	for (i = 0; i < nr_lv; i++) {
		struct ebbd_libvirt_cfg lc = { .uri = lv_uris[i], .log = cfg.log };

		ret = ebbd_libvirt_create(&lc, d, &lv[i]);
		if (ret)
			die("--libvirt %s: %s", lv_uris[i], strerror(-ret));
	}
	vmm_logf(&cfg.log, VMM_LOG_INFO, "running (policy %s)", ebb_bal_policy_name(cfg.bal.policy));
	ret = ebbd_run(d);
	ebbd_destroy(d);
	for (i = 0; i < nr_lv; i++)   /* after the daemon: its VMs point into them */
		ebbd_libvirt_destroy(lv[i]);
	close(sig.fd);
	return ret ? 1 : 0;
}
