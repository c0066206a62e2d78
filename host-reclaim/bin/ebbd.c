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
#include <arpa/inet.h>
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
#include "host-reclaim/bin/ebbd_http.h"
#include "host-reclaim/ebbd/config.h"
#include "host-reclaim/ebbd/ebbd.h"
#include "host-reclaim/ebbd/metrics.h"
#include "host-reclaim/libvirt/ebbd_libvirt.h"

#define MAX_LIBVIRT_URIS 8

static FILE *log_file;
static int log_level = EBB_LOG_INFO;

static void log_cb(void *opaque, enum ebb_log_level level, const char *msg)
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
		names[level <= EBB_LOG_DEBUG ? level : EBB_LOG_DEBUG], msg);
	fflush(log_file);
}

static void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
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
	      "  --metrics ADDR:PORT  serve Prometheus metrics on http://ADDR:PORT/metrics\n"
	      "                       (default " EBBD_METRICS_DEFAULT_ADDR "; [V6ADDR]:PORT; off)\n"
	      "  --config FILE        read FILE (default " EBBD_CONFIG_PATH " if it exists);\n"
	      "                       options given here win over it; SIGHUP reads it again\n"
	      "  --check-config       check the configuration (file and options) and exit\n"
	      "  --libvirt URI        also manage the running domains of this libvirt\n"
	      "                       connection (e.g. qemu:///system); repeatable\n"
	      "  --log FILE           append the log to FILE (default: stderr)\n"
	      "  --foreground         run in the foreground (the only mode today)\n"
	      "  --verbose            debug messages too\n", f);
}

/* One command-line value, checked as the file's would be. */
static void opt_set(struct ebbd_file_cfg *cl, const char *opt, const char *section, const char *key,
		    const char *val)
{
	char err[400];

	if (ebbd_config_set(cl, section, key, val, err, sizeof(err)))
		die("%s: %s", opt, err);
}

struct sig_ctx {
	struct ebbd *d;
	struct vmm_log log;
	int fd;
	const char *conf_path;          /* the file to read again on SIGHUP */
	bool conf_required;             /* --config given: it must exist */
	const struct ebbd_file_cfg *cl; /* the command line wins over the file */
	struct ebbd_http *http;
	char metrics[128];              /* what http listens on ("off": nothing) */
	char rundir[256];
	uint32_t lease_ms;
	bool ksm;
};

/* The file (if any) with the command line over it.  0 or -errno, err set. */
static int load(const char *path, bool required, const struct ebbd_file_cfg *cl,
		struct ebbd_file_cfg *file, struct ebbd_file_cfg *eff, char *err, size_t err_len)
{
	int ret;

	memset(file, 0, sizeof(*file));
	if (path && (required || access(path, F_OK) == 0)) {
		ret = ebbd_config_load(path, file, err, err_len);
		if (ret)
			return ret;
	}
	ebbd_config_merge(file, cl, eff);
	if (!eff->has_metrics) {
		snprintf(eff->metrics, sizeof(eff->metrics), "%s", EBBD_METRICS_DEFAULT_ADDR);
		eff->has_metrics = true;
	}
	return 0;
}

static int http_start(struct ebbd *d, const char *addr, const struct vmm_log *log,
		      struct ebbd_http **out, char *err, size_t err_len)
{
	struct sockaddr_storage ss;
	unsigned len = 0;
	bool off;
	char host[INET6_ADDRSTRLEN] = "?", why[256];

	*out = NULL;
	if (ebbd_metrics_parse_addr(addr, &ss, &len, &off)) {
		snprintf(err, err_len, "metrics: bad address \"%s\"", addr);
		return -EINVAL;
	}
	if (off)
		return 0;
	if (ebbd_http_create(d, (struct sockaddr *)&ss, (socklen_t)len, log, out, why,
			     sizeof(why))) {
		snprintf(err, err_len, "metrics: cannot listen on %s: %s (choose another with "
			 "--metrics ADDR:PORT or [metrics] listen, or turn it off)", addr, why);
		return -EADDRINUSE;
	}
	if (ss.ss_family == AF_INET6)
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, host, sizeof(host));
	else
		inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, host, sizeof(host));
	vmm_logf(log, EBB_LOG_INFO, "metrics on http://%s%s%s:%u/metrics",
		 ss.ss_family == AF_INET6 ? "[" : "", host, ss.ss_family == AF_INET6 ? "]" : "",
		 ebbd_http_port(*out));
	return 0;
}

/* SIGHUP: all or nothing.  A bad file, a pool this host cannot make, or a
 * metrics address that cannot be bound keeps the old configuration. */
static void reload(struct sig_ctx *s)
{
	struct ebbd_file_cfg file, eff;
	struct ebbd_cfg cfg = { 0 };
	struct ebbd_http *http = NULL;
	bool new_http = false;
	char err[512];

	if (load(s->conf_path, s->conf_required, s->cl, &file, &eff, err, sizeof(err))) {
		vmm_logf(&s->log, EBB_LOG_ERROR, "SIGHUP: configuration kept: %s", err);
		ebbd_note_reload_failure(s->d);
		return;
	}
	if (strcmp(eff.metrics, s->metrics) != 0) {
		/* the old server is stopped first when the address is the same port */
		if (http_start(s->d, eff.metrics, &s->log, &http, err, sizeof(err))) {
			vmm_logf(&s->log, EBB_LOG_ERROR, "SIGHUP: configuration kept: %s", err);
			ebbd_note_reload_failure(s->d);
			ebbd_config_release(&file);
			return;
		}
		new_http = true;
	}
	ebbd_config_to_cfg(&eff, &cfg);
	if (ebbd_reconfigure(s->d, &cfg, err, sizeof(err))) {
		vmm_logf(&s->log, EBB_LOG_ERROR, "SIGHUP: configuration kept: %s", err);
		ebbd_http_destroy(http);
		ebbd_config_release(&file);
		return;
	}
	if (new_http) {
		ebbd_http_destroy(s->http);
		s->http = http;
		snprintf(s->metrics, sizeof(s->metrics), "%s", eff.metrics);
	}
	if ((eff.has_rundir && strcmp(eff.rundir, s->rundir) != 0) ||
	    (eff.has_lease_ms ? eff.lease_ms : 0) != s->lease_ms ||
	    (eff.has_ksm ? eff.ksm : true) != s->ksm)
		vmm_logf(&s->log, EBB_LOG_WARN, "SIGHUP: rundir, lease_ms and ksm change at the "
			 "next start only");
	ebbd_config_release(&file);
}

static void on_signal(void *opaque, uint32_t events)
{
	struct sig_ctx *s = opaque;
	struct signalfd_siginfo si;

	(void)events;
	while (read(s->fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGHUP) {
			vmm_logf(&s->log, EBB_LOG_INFO, "SIGHUP: reading %s again",
				 s->conf_path ? s->conf_path : "(no file)");
			reload(s);
			continue;
		}
		vmm_logf(&s->log, EBB_LOG_INFO, "signal %u: lifting clamps, restoring ksm, exiting",
			 si.ssi_signo);
		ebbd_stop(s->d);
	}
}

int main(int argc, char **argv)
{
	enum { O_BUDGET = 256, O_POLICY, O_WMIN, O_WLOW, O_WHIGH, O_RUNDIR, O_VMS_ONLY, O_TICK,
	       O_LEASE, O_NO_KSM, O_LOG, O_FG, O_VERBOSE, O_HELP, O_METRICS, O_CONFIG, O_CHECK,
	       O_LIBVIRT };
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
		{ "metrics", required_argument, NULL, O_METRICS },
		{ "config", required_argument, NULL, O_CONFIG },
		{ "check-config", no_argument, NULL, O_CHECK },
		{ "foreground", no_argument, NULL, O_FG },
		{ "verbose", no_argument, NULL, O_VERBOSE },
		{ "help", no_argument, NULL, O_HELP },
		{ "libvirt", required_argument, NULL, O_LIBVIRT },
		{ NULL, 0, NULL, 0 },
	};
	struct ebbd_file_cfg cl = { 0 }, file, eff;
	struct ebbd_cfg cfg = { 0 };
	struct sig_ctx sig = { 0 };
	const char *conf_path = EBBD_CONFIG_PATH;
	bool conf_required = false, check = false;
	struct ebbd *d;
	const char *lv_uris[MAX_LIBVIRT_URIS];
	struct ebbd_libvirt *lv[MAX_LIBVIRT_URIS] = { NULL };
	int nr_lv = 0, i;
	char err[512];
	sigset_t set;
	int c, ret;

	log_file = stderr;
	while ((c = getopt_long(argc, argv, "hv", opts, NULL)) != -1) {
		switch (c) {
		case O_BUDGET:
			opt_set(&cl, "--budget", "pool", "budget", optarg);
			break;
		case O_POLICY:
			opt_set(&cl, "--policy", "pool", "policy", optarg);
			break;
		case O_WMIN:
			opt_set(&cl, "--wmark-min", "pool", "wmark_min", optarg);
			break;
		case O_WLOW:
			opt_set(&cl, "--wmark-low", "pool", "wmark_low", optarg);
			break;
		case O_WHIGH:
			opt_set(&cl, "--wmark-high", "pool", "wmark_high", optarg);
			break;
		case O_RUNDIR:
			if (strlen(optarg) >= sizeof(cl.rundir))
				die("--rundir: at most %zu characters", sizeof(cl.rundir) - 1);
			snprintf(cl.rundir, sizeof(cl.rundir), "%s", optarg);   /* relative is fine here */
			cl.has_rundir = true;
			break;
		case O_VMS_ONLY:
			opt_set(&cl, "--vms-only", "pool", "vms_only", "true");
			break;
		case O_TICK:
			opt_set(&cl, "--tick-ms", "pool", "tick_ms", optarg);
			break;
		case O_LEASE:
			opt_set(&cl, "--lease-ms", "pool", "lease_ms", optarg);
			break;
		case O_NO_KSM:
			opt_set(&cl, "--no-ksm", "pool", "ksm", "false");
			break;
		case O_METRICS:
			opt_set(&cl, "--metrics", "metrics", "listen", optarg);
			break;
		case O_CONFIG:
			conf_path = optarg;
			conf_required = true;
			break;
		case O_CHECK:
			check = true;
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
			log_level = EBB_LOG_DEBUG;
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
	if (load(conf_path, conf_required || check, &cl, &file, &eff, err, sizeof(err)))
		die("%s", err);
	ebbd_config_to_cfg(&eff, &cfg);
	if (check) {
		struct ebb_pool_wmarks wm = { 0 };
		char buf[4096];
		FILE *f = fopen("/proc/meminfo", "r");
		unsigned long long total_kb = 0;

		while (f && fgets(buf, sizeof(buf), f)) {
			if (!strncmp(buf, "MemTotal:", 9)) {
				total_kb = strtoull(buf + 9, NULL, 10);
				break;
			}
		}
		if (f)
			fclose(f);
		if (ebb_pool_wmarks_compute(&cfg.bal.pool, total_kb * 1024, &wm))
			die("%s: no pool can be made of this host's %llu MiB with this budget and these "
			    "watermarks (need min < low < high, a budget of at least 4 x high and at "
			    "most MemTotal)", conf_path, total_kb >> 10);
		printf("%s: ok (budget %llu MiB, watermarks min %llu / low %llu / high %llu MiB, "
		       "policy %s, %zu VM sections, metrics %s)\n", conf_path,
		       (unsigned long long)(wm.budget_bytes >> 20),
		       (unsigned long long)(wm.min_bytes >> 20), (unsigned long long)(wm.low_bytes >> 20),
		       (unsigned long long)(wm.high_bytes >> 20), ebb_bal_policy_name(cfg.bal.policy),
		       eff.nr_vms, eff.metrics);
		ebbd_config_release(&file);
		return 0;
	}
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
	sig.conf_path = conf_path;
	sig.conf_required = conf_required;
	sig.cl = &cl;
	snprintf(sig.metrics, sizeof(sig.metrics), "%s", eff.metrics);
	snprintf(sig.rundir, sizeof(sig.rundir), "%s", eff.has_rundir ? eff.rundir : "");
	sig.lease_ms = eff.has_lease_ms ? eff.lease_ms : 0;
	sig.ksm = eff.has_ksm ? eff.ksm : true;
	ebbd_config_release(&file);   /* the daemon copied the VM sections */
	if (http_start(d, sig.metrics, &cfg.log, &sig.http, err, sizeof(err))) {
		ebbd_destroy(d);
		die("%s", err);
	}
	sig.fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sig.fd < 0 || ebbd_add_fd(d, sig.fd, on_signal, &sig))
		die("signalfd: %s", strerror(errno));
	for (i = 0; i < nr_lv; i++) {
		struct ebbd_libvirt_cfg lc = { .uri = lv_uris[i], .log = cfg.log };

		ret = ebbd_libvirt_create(&lc, d, &lv[i]);
		if (ret)
			die("--libvirt %s: %s", lv_uris[i], strerror(-ret));
	}
	vmm_logf(&cfg.log, EBB_LOG_INFO, "running (policy %s)", ebb_bal_policy_name(cfg.bal.policy));
	ret = ebbd_run(d);
	ebbd_http_destroy(sig.http);
	ebbd_destroy(d);
	for (i = 0; i < nr_lv; i++)   /* after the daemon: its VMs point into them */
		ebbd_libvirt_destroy(lv[i]);
	close(sig.fd);
	return ret ? 1 : 0;
}
